/*
 * msg.c - the message codec: a field table per message type drives
 * validation, encoding (msgpack_packer writing straight into the caller's
 * eg_buf behind a reserved length prefix) and decoding (a bounds pre-scan,
 * then msgpack_unpack_next into a zone, then typed extraction).
 *
 * Why a pre-scan: msgpack-c's C unpacker has no limits.  It allocates a
 * container's declared element count before it reads any element, so a
 * five-byte body announcing a 2^32-element array asks the allocator for
 * ~100 GB, and its nesting limit surfaces as an out-of-memory error.  The
 * pre-scan only reads headers and lengths (it builds nothing) and rejects a
 * container that announces more elements than bytes remain, nesting deeper
 * than EG_MSG_DEPTH_MAX, more than EG_MSG_NODES_MAX objects and trailing
 * bytes; after it, msgpack-c's allocations are bounded by a small multiple
 * of the frame size, and the recursive conversion below cannot recurse
 * deeper than EG_MSG_DEPTH_MAX.
 *
 * The one source of the rules is the field table: eg_msg_validate() applies
 * ranges and bounds for both directions, decode adds type checks while it
 * extracts, encode writes exactly the table's fields.
 */
#include "proto/msg.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/auth.h"
#include "proto/frame.h"

enum ftype { F_INT, F_STR, F_NONCE, F_PROOF, F_MAP, F_LEASES };

struct field {
	const char *key;
	enum ftype t;
	size_t off;     /* of the member in eg_msg */
	int64_t lo, hi; /* F_INT: value range; F_STR: length range */
	bool optional;
};

#define FINT(k, m, lo, hi) {k, F_INT, offsetof(eg_msg, m), lo, hi, false}
#define FSTR(k, m, lo, hi, opt) {k, F_STR, offsetof(eg_msg, m), lo, hi, opt}
#define FMAP(k, m) {k, F_MAP, offsetof(eg_msg, m), 0, 0, false}
#define TRIAL FINT("trial", trial, 1, INT64_MAX)
#define ATTEMPT FINT("attempt", attempt, 1, INT32_MAX)
#define VERSION FINT("version", version, 1, INT32_MAX)

static const struct field hello_f[] = {
	VERSION,
	FSTR("role", role, 1, EG_MSG_ROLE_MAX, false),
	FSTR("name", name, 1, EG_MSG_NAME_MAX, false),
	FMAP("capabilities", capabilities),
};
static const struct field challenge_f[] = {
	{"nonce", F_NONCE, offsetof(eg_msg, nonce), 0, 0, false},
};
static const struct field proof_f[] = {
	{"proof", F_PROOF, offsetof(eg_msg, proof), 0, 0, false},
};
static const struct field welcome_f[] = {VERSION};
static const struct field want_f[] = {
	FINT("slots", slots, 0, EG_MSG_SLOTS_MAX),
};
static const struct field assign_f[] = {
	TRIAL, ATTEMPT, FMAP("params", params),
	FINT("lease_ms", lease_ms, 1, INT32_MAX),
};
static const struct field heartbeat_f[] = {
	{"leases", F_LEASES, offsetof(eg_msg, leases), 0, 0, false},
};
static const struct field progress_f[] = {
	TRIAL, ATTEMPT, FMAP("metrics", metrics),
};
static const struct field result_f[] = {
	TRIAL, ATTEMPT, FMAP("payload", payload),
};
static const struct field fail_f[] = {
	TRIAL, ATTEMPT, FSTR("error", error, 0, EG_MSG_ERROR_MAX, false),
};
static const struct field cancel_f[] = {TRIAL};
/* ACK{trial, attempt}: the coordinator has durably recorded (or recognized
 * as a duplicate) that attempt's RESULT or FAIL, so the agent may forget it. */
static const struct field ack_f[] = {TRIAL, ATTEMPT};
static const struct field bye_f[] = {
	FSTR("reason", reason, 0, EG_MSG_REASON_MAX, true),
};

#define SPEC(name, f) {name, f, sizeof(f) / sizeof(f[0])}
static const struct spec {
	const char *name;
	const struct field *f;
	size_t n;
} specs[EG_MSG__COUNT] = {
	[EG_MSG_NONE] = {NULL, NULL, 0},
	[EG_MSG_HELLO] = SPEC("HELLO", hello_f),
	[EG_MSG_CHALLENGE] = SPEC("CHALLENGE", challenge_f),
	[EG_MSG_PROOF] = SPEC("PROOF", proof_f),
	[EG_MSG_WELCOME] = SPEC("WELCOME", welcome_f),
	[EG_MSG_WANT] = SPEC("WANT", want_f),
	[EG_MSG_ASSIGN] = SPEC("ASSIGN", assign_f),
	[EG_MSG_HEARTBEAT] = SPEC("HEARTBEAT", heartbeat_f),
	[EG_MSG_PROGRESS] = SPEC("PROGRESS", progress_f),
	[EG_MSG_RESULT] = SPEC("RESULT", result_f),
	[EG_MSG_FAIL] = SPEC("FAIL", fail_f),
	[EG_MSG_CANCEL] = SPEC("CANCEL", cancel_f),
	[EG_MSG_BYE] = SPEC("BYE", bye_f),
	[EG_MSG_ACK] = SPEC("ACK", ack_f),
};

/* Typed access to a member named by a table entry. */
#define MEMBER(m, f, T) ((T *)(void *)((char *)(m) + (f)->off))
#define CMEMBER(m, f, T) ((const T *)(const void *)((const char *)(m) + (f)->off))

void eg_msg_init(eg_msg *m, eg_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
}

void eg_msg_clear(eg_msg *m)
{
	if (m == NULL)
		return;
	free(m->role);
	free(m->name);
	free(m->error);
	free(m->reason);
	free(m->leases);
	eg_val_free(m->capabilities);
	eg_val_free(m->params);
	eg_val_free(m->metrics);
	eg_val_free(m->payload);
	memset(m, 0, sizeof(*m));
}

const char *eg_msg_type_name(eg_msg_type t)
{
	return t > EG_MSG_NONE && t < EG_MSG__COUNT ? specs[t].name : NULL;
}

eg_msg_type eg_msg_type_from_name(const char *name, size_t len)
{
	for (int t = EG_MSG_NONE + 1; t < EG_MSG__COUNT; t++)
		if (strlen(specs[t].name) == len &&
		    memcmp(specs[t].name, name, len) == 0)
			return (eg_msg_type)t;
	return EG_MSG_NONE;
}

/* Copies at most 40 bytes of untrusted text into `dst` for a message,
 * replacing what would not print. */
static const char *printable(char *dst, size_t cap, const char *s, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n && k + 4 < cap && i < 40; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[k++] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
	}
	if (i < n) {
		memcpy(dst + k, "...", 3);
		k += 3;
	}
	dst[k] = '\0';
	return dst;
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */

static int validate_field(const eg_msg *m, const char *tn,
			  const struct field *f, eg_diag *diag)
{
	switch (f->t) {
	case F_INT: {
		int64_t v = *CMEMBER(m, f, int64_t);

		if (v < f->lo || v > f->hi)
			return eg_diag_set(diag, EG_ERANGE,
					   "%s: %s = %lld is outside %lld..%lld",
					   tn, f->key, (long long)v,
					   (long long)f->lo, (long long)f->hi);
		return EG_OK;
	}
	case F_STR: {
		const char *s = *CMEMBER(m, f, char *);
		size_t n;

		if (s == NULL)
			return f->optional ? EG_OK
					   : eg_diag_set(diag, EG_EINVAL,
							 "%s: %s is missing",
							 tn, f->key);
		n = strlen(s);
		if ((int64_t)n > f->hi)
			return eg_diag_set(diag, EG_ETOO_BIG,
					   "%s: %s of %zu bytes exceeds %lld",
					   tn, f->key, n, (long long)f->hi);
		if ((int64_t)n < f->lo)
			return eg_diag_set(diag, EG_ERANGE,
					   "%s: %s must not be empty", tn,
					   f->key);
		return EG_OK;
	}
	case F_MAP: {
		const eg_val *v = *CMEMBER(m, f, eg_val *);

		if (v == NULL)
			return eg_diag_set(diag, EG_EINVAL,
					   "%s: %s is missing", tn, f->key);
		if (eg_val_type_of(v) != EG_VAL_MAP)
			return eg_diag_set(diag, EG_ETYPE,
					   "%s: %s is a %s, not a map", tn,
					   f->key,
					   eg_val_type_name(eg_val_type_of(v)));
		return EG_OK;
	}
	case F_LEASES:
		if (m->nleases > EG_MSG_LEASES_MAX)
			return eg_diag_set(diag, EG_ETOO_BIG,
					   "%s: %zu leases exceed %d", tn,
					   m->nleases, EG_MSG_LEASES_MAX);
		if (m->nleases > 0 && m->leases == NULL)
			return eg_diag_set(diag, EG_EINVAL,
					   "%s: leases is missing", tn);
		for (size_t i = 0; i < m->nleases; i++)
			if (m->leases[i].trial < 1 ||
			    m->leases[i].attempt < 1 ||
			    m->leases[i].attempt > INT32_MAX)
				return eg_diag_set(
					diag, EG_ERANGE,
					"%s: lease %zu (trial %lld, attempt "
					"%lld) is out of range",
					tn, i, (long long)m->leases[i].trial,
					(long long)m->leases[i].attempt);
		return EG_OK;
	case F_NONCE:
	case F_PROOF:
		return EG_OK; /* fixed-size arrays: always present */
	}
	return EG_EINVAL;
}

int eg_msg_validate(const eg_msg *m, eg_diag *diag)
{
	const struct spec *s;

	if (m->type <= EG_MSG_NONE || m->type >= EG_MSG__COUNT)
		return eg_diag_set(diag, EG_EINVAL, "invalid message type %d",
				   (int)m->type);
	s = &specs[m->type];
	for (size_t i = 0; i < s->n; i++) {
		int rc = validate_field(m, s->name, &s->f[i], diag);

		if (rc != EG_OK)
			return rc;
	}
	return EG_OK;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

/* msgpack_packer's write callback: append to the eg_buf (which records
 * an allocation failure; checked once at the end). */
static int buf_write(void *data, const char *p, size_t n)
{
	eg_buf_append(data, p, n);
	return eg_buf_failed(data) ? -1 : 0;
}

static int pack_val(msgpack_packer *pk, const eg_val *v, int depth,
		    eg_diag *diag)
{
	size_t n = eg_val_len(v);

	if (depth > EG_MSG_DEPTH_MAX)
		return eg_diag_set(diag, EG_ETOO_BIG,
				   "nested deeper than %d", EG_MSG_DEPTH_MAX);
	switch (eg_val_type_of(v)) {
	case EG_VAL_NULL:
		return msgpack_pack_nil(pk) == 0 ? EG_OK : EG_ENOMEM;
	case EG_VAL_BOOL:
		return (eg_val_as_bool(v) ? msgpack_pack_true(pk)
					  : msgpack_pack_false(pk)) == 0
			       ? EG_OK
			       : EG_ENOMEM;
	case EG_VAL_INT:
		return msgpack_pack_int64(pk, eg_val_as_int(v)) == 0
			       ? EG_OK
			       : EG_ENOMEM;
	case EG_VAL_FLOAT:
		return msgpack_pack_double(pk, eg_val_as_num(v)) == 0
			       ? EG_OK
			       : EG_ENOMEM;
	case EG_VAL_STR: {
		const char *s = eg_val_as_str(v);

		return msgpack_pack_str_with_body(pk, s, strlen(s)) == 0
			       ? EG_OK
			       : EG_ENOMEM;
	}
	case EG_VAL_LIST:
		if (msgpack_pack_array(pk, n) != 0)
			return EG_ENOMEM;
		for (size_t i = 0; i < n; i++) {
			int rc = pack_val(pk, eg_val_at(v, i), depth + 1, diag);

			if (rc != EG_OK)
				return rc;
		}
		return EG_OK;
	case EG_VAL_MAP:
		if (n > EG_MSG_MAP_MAX)
			return eg_diag_set(diag, EG_ETOO_BIG,
					   "a map of %zu entries exceeds %d",
					   n, EG_MSG_MAP_MAX);
		if (msgpack_pack_map(pk, n) != 0)
			return EG_ENOMEM;
		for (size_t i = 0; i < n; i++) {
			const char *k = eg_val_key_at(v, i);
			size_t kn = strlen(k);
			int rc;

			if (kn > EG_MSG_KEY_MAX)
				return eg_diag_set(diag, EG_ETOO_BIG,
						   "a key of %zu bytes exceeds "
						   "%d", kn, EG_MSG_KEY_MAX);
			if (msgpack_pack_str_with_body(pk, k, kn) != 0)
				return EG_ENOMEM;
			rc = pack_val(pk, eg_val_at(v, i), depth + 1, diag);
			if (rc != EG_OK)
				return eg_diag_prefix(diag, rc, "%s", k);
		}
		return EG_OK;
	}
	return EG_EINVAL;
}

static int pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	return msgpack_pack_str_with_body(pk, s, n) == 0 ? EG_OK : EG_ENOMEM;
}

static int pack_field(msgpack_packer *pk, const eg_msg *m,
		      const struct field *f, eg_diag *diag)
{
	int rc = pack_str(pk, f->key);

	if (rc != EG_OK)
		return rc;
	switch (f->t) {
	case F_INT:
		return msgpack_pack_int64(pk, *CMEMBER(m, f, int64_t)) == 0
			       ? EG_OK
			       : EG_ENOMEM;
	case F_STR:
		return pack_str(pk, *CMEMBER(m, f, char *));
	case F_NONCE:
	case F_PROOF:
		return msgpack_pack_bin_with_body(pk, CMEMBER(m, f, uint8_t),
						  EG_MSG_NONCE_LEN) == 0
			       ? EG_OK
			       : EG_ENOMEM;
	case F_MAP:
		rc = pack_val(pk, *CMEMBER(m, f, eg_val *), 2, diag);
		return rc == EG_OK ? rc
				   : eg_diag_prefix(diag, rc, "%s: %s",
						    specs[m->type].name,
						    f->key);
	case F_LEASES:
		if (msgpack_pack_array(pk, m->nleases) != 0)
			return EG_ENOMEM;
		for (size_t i = 0; i < m->nleases; i++)
			if (msgpack_pack_array(pk, 2) != 0 ||
			    msgpack_pack_int64(pk, m->leases[i].trial) != 0 ||
			    msgpack_pack_int64(pk, m->leases[i].attempt) != 0)
				return EG_ENOMEM;
		return EG_OK;
	}
	return EG_EINVAL;
}

static int prescan(const uint8_t *p, size_t len, eg_diag *diag);

int eg_msg_encode(const eg_msg *m, eg_buf *out, size_t max, eg_diag *diag)
{
	static const uint8_t zero[EG_FRAME_HDR_LEN];
	const struct spec *s;
	msgpack_packer pk;
	size_t start = out->len, nfields = 1, body;
	int rc;

	if (max == 0 || max > EG_FRAME_MAX_LIMIT)
		max = max == 0 ? EG_FRAME_MAX_DEFAULT : EG_FRAME_MAX_LIMIT;
	rc = eg_msg_validate(m, diag);
	if (rc != EG_OK)
		return rc;
	s = &specs[m->type];
	for (size_t i = 0; i < s->n; i++)
		if (!s->f[i].optional ||
		    *CMEMBER(m, &s->f[i], char *) != NULL)
			nfields++;

	/* Reserve the length prefix, pack the body behind it, then patch. */
	eg_buf_append(out, zero, sizeof(zero));
	msgpack_packer_init(&pk, out, buf_write);
	rc = msgpack_pack_map(&pk, nfields) == 0 ? pack_str(&pk, "type")
						  : EG_ENOMEM;
	if (rc == EG_OK)
		rc = pack_str(&pk, s->name);
	for (size_t i = 0; rc == EG_OK && i < s->n; i++)
		if (!s->f[i].optional ||
		    *CMEMBER(m, &s->f[i], char *) != NULL)
			rc = pack_field(&pk, m, &s->f[i], diag);
	if (rc == EG_OK && eg_buf_failed(out))
		rc = EG_ENOMEM;
	if (rc == EG_ENOMEM)
		eg_diag_set(diag, rc, "%s: no memory to encode", s->name);
	if (rc != EG_OK)
		goto err;
	body = out->len - start - EG_FRAME_HDR_LEN;
	if (body > max) {
		rc = eg_diag_set(diag, EG_ETOO_BIG,
				 "%s: body of %zu bytes exceeds the maximum "
				 "frame of %zu", s->name, body, max);
		goto err;
	}
	/* The peer's limits on depth and object count, checked here too. */
	rc = prescan((const uint8_t *)out->data + start + EG_FRAME_HDR_LEN,
		     body, diag);
	if (rc != EG_OK) {
		eg_diag_prefix(diag, rc, "%s", s->name);
		goto err;
	}
	eg_frame_put_len((uint8_t *)out->data + start, (uint32_t)body);
	return EG_OK;

err:
	if (!eg_buf_failed(out) && out->data != NULL) {
		out->len = start;
		out->data[start] = '\0';
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

/* Reads an n-byte big-endian unsigned integer at *pos. */
static bool rd_be(const uint8_t *p, size_t len, size_t *pos, size_t n,
		  uint64_t *v)
{
	if (len - *pos < n)
		return false;
	*v = 0;
	for (size_t i = 0; i < n; i++)
		*v = *v << 8 | p[*pos + i];
	*pos += n;
	return true;
}

/*
 * Walks the msgpack headers of the body without building anything; see
 * the file comment for why.  left[d] counts the objects still expected at
 * nesting level d (level 0 is the one top-level object).
 */
static int prescan(const uint8_t *p, size_t len, eg_diag *diag)
{
	uint64_t left[EG_MSG_DEPTH_MAX + 1];
	size_t pos = 0, nodes = 0;
	int depth = 0;

	left[0] = 1;
	while (depth >= 0) {
		uint64_t n = 0, items = 0;
		size_t lenbytes = 0, extra = 0;
		int kind = 0; /* 0 scalar with n payload bytes, 1 array, 2 map */
		uint8_t b;

		if (left[depth] == 0) {
			depth--;
			continue;
		}
		left[depth]--;
		if (pos >= len)
			return eg_diag_set(diag, EG_ETRUNCATED,
					   "msgpack body ends inside an "
					   "object (%zu bytes)", len);
		if (++nodes > EG_MSG_NODES_MAX)
			return eg_diag_set(diag, EG_ETOO_BIG,
					   "more than %zu objects in one "
					   "message", EG_MSG_NODES_MAX);
		b = p[pos++];
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 ||
		    b == 0xc3) {
			n = 0;
		} else if (b <= 0x8f) {
			kind = 2, n = b & 0x0f;
		} else if (b <= 0x9f) {
			kind = 1, n = b & 0x0f;
		} else if (b <= 0xbf) {
			n = b & 0x1f;
		} else {
			switch (b) {
			case 0xc4: case 0xd9: lenbytes = 1; break;
			case 0xc5: case 0xda: lenbytes = 2; break;
			case 0xc6: case 0xdb: lenbytes = 4; break;
			case 0xc7: lenbytes = 1, extra = 1; break; /* ext */
			case 0xc8: lenbytes = 2, extra = 1; break;
			case 0xc9: lenbytes = 4, extra = 1; break;
			case 0xca: n = 4; break;
			case 0xcb: n = 8; break;
			case 0xcc: case 0xd0: n = 1; break;
			case 0xcd: case 0xd1: n = 2; break;
			case 0xce: case 0xd2: n = 4; break;
			case 0xcf: case 0xd3: n = 8; break;
			case 0xd4: n = 2; break; /* fixext: type + data */
			case 0xd5: n = 3; break;
			case 0xd6: n = 5; break;
			case 0xd7: n = 9; break;
			case 0xd8: n = 17; break;
			case 0xdc: kind = 1, lenbytes = 2; break;
			case 0xdd: kind = 1, lenbytes = 4; break;
			case 0xde: kind = 2, lenbytes = 2; break;
			case 0xdf: kind = 2, lenbytes = 4; break;
			default: /* 0xc1: never used */
				return eg_diag_set(diag, EG_EPROTO,
						   "invalid msgpack byte 0x%02x "
						   "at offset %zu", b, pos - 1);
			}
			if (lenbytes > 0 && !rd_be(p, len, &pos, lenbytes, &n))
				return eg_diag_set(diag, EG_ETRUNCATED,
						   "msgpack body ends inside a "
						   "length (%zu bytes)", len);
			if (kind == 0)
				n += extra;
		}
		if (kind == 0) {
			if (n > len - pos)
				return eg_diag_set(diag, EG_ETRUNCATED,
						   "msgpack body ends inside "
						   "an object (%zu bytes)",
						   len);
			pos += (size_t)n;
			continue;
		}
		items = kind == 2 ? 2 * n : n;
		/* Every object takes at least one byte. */
		if (items > len - pos)
			return eg_diag_set(diag, EG_ETRUNCATED,
					   "a container announces %llu "
					   "objects but %zu bytes remain",
					   (unsigned long long)items,
					   len - pos);
		if (items == 0)
			continue;
		if (depth == EG_MSG_DEPTH_MAX)
			return eg_diag_set(diag, EG_ETOO_BIG,
					   "nested deeper than %d",
					   EG_MSG_DEPTH_MAX);
		left[++depth] = items;
	}
	if (pos != len)
		return eg_diag_set(diag, EG_EPROTO,
				   "%zu bytes after the message map",
				   len - pos);
	return EG_OK;
}

static const char *obj_type_name(msgpack_object_type t)
{
	switch (t) {
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_BOOLEAN: return "bool";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return "float";
	case MSGPACK_OBJECT_STR: return "str";
	case MSGPACK_OBJECT_ARRAY: return "array";
	case MSGPACK_OBJECT_MAP: return "map";
	case MSGPACK_OBJECT_BIN: return "bin";
	case MSGPACK_OBJECT_EXT: return "ext";
	}
	return "?";
}

static int get_i64(const msgpack_object *o, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return EG_OK;
	}
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return EG_ETYPE;
	if (o->via.u64 > (uint64_t)INT64_MAX)
		return EG_ERANGE;
	*v = (int64_t)o->via.u64;
	return EG_OK;
}

static int obj_to_val(const msgpack_object *o, int depth, eg_val **out,
		      eg_diag *diag)
{
	eg_val *v = NULL;
	int64_t i;
	int rc = EG_OK;

	*out = NULL;
	if (depth > EG_MSG_DEPTH_MAX)
		return eg_diag_set(diag, EG_ETOO_BIG, "nested deeper than %d",
				   EG_MSG_DEPTH_MAX);
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		v = eg_val_null();
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		v = eg_val_bool(o->via.boolean);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		rc = get_i64(o, &i);
		if (rc != EG_OK)
			return eg_diag_set(diag, rc, "integer %llu exceeds "
					   "int64",
					   (unsigned long long)o->via.u64);
		v = eg_val_int(i);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		v = eg_val_float(o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
			return eg_diag_set(diag, EG_EPROTO,
					   "string contains a NUL byte");
		v = eg_val_strn(o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		v = eg_val_list();
		for (uint32_t k = 0; v != NULL && k < o->via.array.size; k++) {
			eg_val *item;

			rc = obj_to_val(&o->via.array.ptr[k], depth + 1, &item,
					diag);
			if (rc == EG_OK)
				rc = eg_val_push(v, item);
			if (rc != EG_OK) {
				eg_diag_prefix(diag, rc, "[%u]", k);
				goto err;
			}
		}
		break;
	case MSGPACK_OBJECT_MAP:
		if (o->via.map.size > EG_MSG_MAP_MAX)
			return eg_diag_set(diag, EG_ETOO_BIG,
					   "a map of %u entries exceeds %d",
					   o->via.map.size, EG_MSG_MAP_MAX);
		v = eg_val_map();
		for (uint32_t k = 0; v != NULL && k < o->via.map.size; k++) {
			const msgpack_object *key = &o->via.map.ptr[k].key;
			char kbuf[EG_MSG_KEY_MAX + 1];
			eg_val *item;

			if (key->type != MSGPACK_OBJECT_STR) {
				rc = eg_diag_set(diag, EG_EPROTO,
						 "map key %u is a %s, not a "
						 "string", k,
						 obj_type_name(key->type));
				goto err;
			}
			if (key->via.str.size > EG_MSG_KEY_MAX ||
			    memchr(key->via.str.ptr, '\0',
				   key->via.str.size) != NULL) {
				rc = eg_diag_set(diag, EG_EPROTO,
						 "map key %u is longer than %d "
						 "bytes or holds a NUL", k,
						 EG_MSG_KEY_MAX);
				goto err;
			}
			memcpy(kbuf, key->via.str.ptr, key->via.str.size);
			kbuf[key->via.str.size] = '\0';
			rc = obj_to_val(&o->via.map.ptr[k].val, depth + 1,
					&item, diag);
			if (rc == EG_OK)
				rc = eg_val_set(v, kbuf, item);
			if (rc != EG_OK) {
				eg_diag_prefix(diag, rc, "%s", kbuf);
				goto err;
			}
		}
		break;
	case MSGPACK_OBJECT_BIN:
	case MSGPACK_OBJECT_EXT:
		return eg_diag_set(diag, EG_ETYPE,
				   "msgpack %s values are not accepted",
				   obj_type_name(o->type));
	}
	if (v == NULL)
		return eg_diag_set(diag, EG_ENOMEM, "no memory to decode");
	*out = v;
	return EG_OK;

err:
	if (rc == EG_ENOMEM)
		eg_diag_set(diag, rc, "no memory to decode");
	eg_val_free(v);
	return rc;
}

/* The value of `key` in the top map, NULL if absent; a repeated known key
 * is an error, since two readers could disagree on which one counts. */
static int top_get(const msgpack_object_map *map, const char *key,
		   const msgpack_object **val, eg_diag *diag)
{
	size_t kn = strlen(key);

	*val = NULL;
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key;

		if (k->via.str.size != kn ||
		    memcmp(k->via.str.ptr, key, kn) != 0)
			continue;
		if (*val != NULL)
			return eg_diag_set(diag, EG_EPROTO,
					   "field \"%s\" appears twice", key);
		*val = &map->ptr[i].val;
	}
	return EG_OK;
}

static int decode_field(eg_msg *m, const char *tn, const struct field *f,
			const msgpack_object *o, eg_diag *diag)
{
	const char *want = NULL;
	int rc;

	switch (f->t) {
	case F_INT:
		rc = get_i64(o, MEMBER(m, f, int64_t));
		if (rc == EG_ERANGE)
			return eg_diag_set(diag, rc, "%s: %s = %llu exceeds "
					   "int64", tn, f->key,
					   (unsigned long long)o->via.u64);
		want = "int";
		break;
	case F_STR:
		if (o->type != MSGPACK_OBJECT_STR) {
			rc = EG_ETYPE, want = "str";
			break;
		}
		if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
			return eg_diag_set(diag, EG_EPROTO,
					   "%s: %s contains a NUL byte", tn,
					   f->key);
		if ((int64_t)o->via.str.size > f->hi)
			return eg_diag_set(diag, EG_ETOO_BIG,
					   "%s: %s of %u bytes exceeds %lld",
					   tn, f->key, o->via.str.size,
					   (long long)f->hi);
		*MEMBER(m, f, char *) = strndup(o->via.str.ptr,
						o->via.str.size);
		rc = *MEMBER(m, f, char *) == NULL ? EG_ENOMEM : EG_OK;
		break;
	case F_NONCE:
	case F_PROOF:
		if (o->type != MSGPACK_OBJECT_BIN) {
			rc = EG_ETYPE, want = "bin";
			break;
		}
		if (o->via.bin.size != EG_MSG_NONCE_LEN)
			return eg_diag_set(diag, EG_ERANGE,
					   "%s: %s is %u bytes, not %d", tn,
					   f->key, o->via.bin.size,
					   EG_MSG_NONCE_LEN);
		memcpy(MEMBER(m, f, uint8_t), o->via.bin.ptr,
		       EG_MSG_NONCE_LEN);
		rc = EG_OK;
		break;
	case F_MAP:
		if (o->type != MSGPACK_OBJECT_MAP) {
			rc = EG_ETYPE, want = "map";
			break;
		}
		rc = obj_to_val(o, 2, MEMBER(m, f, eg_val *), diag);
		if (rc != EG_OK)
			return eg_diag_prefix(diag, rc, "%s: %s", tn, f->key);
		break;
	case F_LEASES:
		if (o->type != MSGPACK_OBJECT_ARRAY) {
			rc = EG_ETYPE, want = "array";
			break;
		}
		if (o->via.array.size > EG_MSG_LEASES_MAX)
			return eg_diag_set(diag, EG_ETOO_BIG,
					   "%s: %u leases exceed %d", tn,
					   o->via.array.size,
					   EG_MSG_LEASES_MAX);
		if (o->via.array.size == 0) {
			rc = EG_OK;
			break;
		}
		m->leases = calloc(o->via.array.size, sizeof(*m->leases));
		if (m->leases == NULL)
			return eg_diag_set(diag, EG_ENOMEM,
					   "no memory to decode");
		m->nleases = o->via.array.size;
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			const msgpack_object *e = &o->via.array.ptr[i];

			if (e->type != MSGPACK_OBJECT_ARRAY ||
			    e->via.array.size != 2 ||
			    get_i64(&e->via.array.ptr[0],
				    &m->leases[i].trial) != EG_OK ||
			    get_i64(&e->via.array.ptr[1],
				    &m->leases[i].attempt) != EG_OK)
				return eg_diag_set(diag, EG_ETYPE,
						   "%s: lease %u is not a "
						   "[trial, attempt] pair of "
						   "integers", tn, i);
		}
		rc = EG_OK;
		break;
	default:
		rc = EG_EINVAL;
	}
	if (rc == EG_ETYPE)
		return eg_diag_set(diag, rc, "%s: %s is a %s, not a %s", tn,
				   f->key, obj_type_name(o->type), want);
	if (rc == EG_ENOMEM)
		return eg_diag_set(diag, rc, "no memory to decode");
	return rc;
}

static int decode_map(const msgpack_object *top, eg_msg *m, eg_diag *diag)
{
	const msgpack_object_map *map = &top->via.map;
	const msgpack_object *o;
	const struct spec *s;
	eg_msg_type t;
	char shown[64];
	int rc;

	if (top->type != MSGPACK_OBJECT_MAP)
		return eg_diag_set(diag, EG_EPROTO,
				   "message is a msgpack %s, not a map",
				   obj_type_name(top->type));
	for (uint32_t i = 0; i < map->size; i++)
		if (map->ptr[i].key.type != MSGPACK_OBJECT_STR)
			return eg_diag_set(diag, EG_EPROTO,
					   "message key %u is a %s, not a "
					   "string", i,
					   obj_type_name(map->ptr[i].key.type));
	rc = top_get(map, "type", &o, diag);
	if (rc != EG_OK)
		return rc;
	if (o == NULL)
		return eg_diag_set(diag, EG_EPROTO, "message has no type");
	if (o->type != MSGPACK_OBJECT_STR)
		return eg_diag_set(diag, EG_ETYPE,
				   "message type is a %s, not a string",
				   obj_type_name(o->type));
	t = eg_msg_type_from_name(o->via.str.ptr, o->via.str.size);
	if (t == EG_MSG_NONE)
		return eg_diag_set(diag, EG_EPROTO,
				   "unknown message type \"%s\"",
				   printable(shown, sizeof(shown),
					     o->via.str.ptr, o->via.str.size));
	eg_msg_init(m, t);
	s = &specs[t];

	/* The version first, so a newer peer gets the real reason. */
	if (t == EG_MSG_HELLO || t == EG_MSG_WELCOME) {
		int64_t v;

		rc = top_get(map, "version", &o, diag);
		if (rc != EG_OK)
			return rc;
		if (o != NULL && get_i64(o, &v) == EG_OK) {
			rc = eg_proto_check_version(v, diag);
			if (rc != EG_OK)
				return rc;
		}
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct field *f = &s->f[i];

		rc = top_get(map, f->key, &o, diag);
		if (rc != EG_OK)
			return eg_diag_prefix(diag, rc, "%s", s->name);
		if (o == NULL) {
			if (f->optional)
				continue;
			return eg_diag_set(diag, EG_EPROTO,
					   "%s: missing field \"%s\"",
					   s->name, f->key);
		}
		rc = decode_field(m, s->name, f, o, diag);
		if (rc != EG_OK)
			return rc;
	}
	return eg_msg_validate(m, diag);
}

int eg_msg_decode(const void *body, size_t len, eg_msg *out, eg_diag *diag)
{
	msgpack_unpacked up;
	size_t off = 0;
	int rc;

	eg_msg_init(out, EG_MSG_NONE);
	if (len == 0)
		return eg_diag_set(diag, EG_EPROTO, "empty message body");
	rc = prescan(body, len, diag);
	if (rc != EG_OK)
		return rc;
	msgpack_unpacked_init(&up);
	switch (msgpack_unpack_next(&up, body, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
	case MSGPACK_UNPACK_EXTRA_BYTES:
		rc = off == len ? EG_OK
				: eg_diag_set(diag, EG_EPROTO,
					      "%zu bytes after the message map",
					      len - off);
		break;
	case MSGPACK_UNPACK_CONTINUE:
		rc = eg_diag_set(diag, EG_ETRUNCATED,
				 "msgpack body ends inside an object");
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		rc = eg_diag_set(diag, EG_ENOMEM, "no memory to unpack");
		break;
	default:
		rc = eg_diag_set(diag, EG_EPROTO, "malformed msgpack");
		break;
	}
	if (rc == EG_OK)
		rc = decode_map(&up.data, out, diag);
	msgpack_unpacked_destroy(&up);
	if (rc != EG_OK)
		eg_msg_clear(out);
	return rc;
}
