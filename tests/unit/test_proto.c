/*
 * test_proto.c - frames, message codec, handshake and token files.
 *
 * Messages are built with every field set, pushed through the encoder, the
 * incremental frame decoder and the strict message decoder, and compared
 * field by field.  Hostile bodies are built byte by byte or with msgpack-c's
 * packer so that the decoder sees exactly what a broken or malicious peer
 * would send.
 */
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/value.h"
#include "proto/auth.h"
#include "proto/frame.h"
#include "proto/io.h"
#include "proto/msg.h"
#include "tests/harness.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static eg_val *sample_tree(int salt)
{
	eg_val *m = eg_val_map(), *l = eg_val_list(), *inner = eg_val_map();

	EG_CHECK(m != NULL && l != NULL && inner != NULL);
	EG_CHECK_OK(eg_val_set_str(m, "arch", "mlp"));
	EG_CHECK_OK(eg_val_set_num(m, "lr", 0.01 * (salt + 1)));
	EG_CHECK_OK(eg_val_set_int(m, "seed", -42 - salt));
	EG_CHECK_OK(eg_val_set_bool(m, "bias", salt % 2 == 0));
	EG_CHECK_OK(eg_val_set(m, "none", eg_val_null()));
	EG_CHECK_OK(eg_val_push(l, eg_val_int(1024)));
	EG_CHECK_OK(eg_val_push(l, eg_val_float(-1.5e300)));
	EG_CHECK_OK(eg_val_push(l, eg_val_str("")));
	EG_CHECK_OK(eg_val_set_int(inner, "big", INT64_MIN));
	EG_CHECK_OK(eg_val_set_int(inner, "max", INT64_MAX));
	EG_CHECK_OK(eg_val_push(l, inner));
	EG_CHECK_OK(eg_val_set(m, "hidden", l));
	return m;
}

static void fill(eg_msg *m, eg_msg_type t)
{
	eg_msg_init(m, t);
	switch (t) {
	case EG_MSG_HELLO:
		m->version = EG_PROTO_VERSION;
		m->role = strdup("worker");
		m->name = strdup("node-17/rank-3");
		m->capabilities = sample_tree(1);
		break;
	case EG_MSG_CHALLENGE:
		for (int i = 0; i < EG_MSG_NONCE_LEN; i++)
			m->nonce[i] = (uint8_t)(i * 7 + 1);
		break;
	case EG_MSG_PROOF:
		for (int i = 0; i < EG_MSG_PROOF_LEN; i++)
			m->proof[i] = (uint8_t)(255 - i);
		break;
	case EG_MSG_WELCOME:
		m->version = EG_PROTO_VERSION;
		break;
	case EG_MSG_WANT:
		m->slots = 1024;
		break;
	case EG_MSG_ASSIGN:
		m->trial = INT64_MAX;
		m->attempt = 3;
		m->params = sample_tree(2);
		m->lease_ms = 30000;
		break;
	case EG_MSG_HEARTBEAT:
		m->nleases = 3;
		m->leases = calloc(3, sizeof(*m->leases));
		for (int i = 0; i < 3; i++) {
			m->leases[i].trial = 1000 + i;
			m->leases[i].attempt = 1 + i;
		}
		break;
	case EG_MSG_PROGRESS:
		m->trial = 5;
		m->attempt = 1;
		m->metrics = sample_tree(3);
		break;
	case EG_MSG_RESULT:
		m->trial = 6;
		m->attempt = 2;
		m->payload = sample_tree(4);
		break;
	case EG_MSG_FAIL:
		m->trial = 7;
		m->attempt = 1;
		m->error = strdup("training diverged: loss is nan at epoch 3");
		break;
	case EG_MSG_CANCEL:
		m->trial = 8;
		break;
	case EG_MSG_BYE:
		m->reason = strdup("shutting down");
		break;
	case EG_MSG_ACK:
		m->trial = 9;
		m->attempt = 2;
		break;
	default:
		EG_CHECK(0);
	}
}

static int streq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_same(const eg_msg *a, const eg_msg *b)
{
	EG_CHECK_INT(a->type, b->type);
	EG_CHECK_INT(a->version, b->version);
	EG_CHECK(streq(a->role, b->role));
	EG_CHECK(streq(a->name, b->name));
	EG_CHECK(streq(a->error, b->error));
	EG_CHECK(streq(a->reason, b->reason));
	EG_CHECK(eg_val_equal(a->capabilities, b->capabilities));
	EG_CHECK(eg_val_equal(a->params, b->params));
	EG_CHECK(eg_val_equal(a->metrics, b->metrics));
	EG_CHECK(eg_val_equal(a->payload, b->payload));
	EG_CHECK(memcmp(a->nonce, b->nonce, sizeof(a->nonce)) == 0);
	EG_CHECK(memcmp(a->proof, b->proof, sizeof(a->proof)) == 0);
	EG_CHECK_INT(a->slots, b->slots);
	EG_CHECK_INT(a->trial, b->trial);
	EG_CHECK_INT(a->attempt, b->attempt);
	EG_CHECK_INT(a->lease_ms, b->lease_ms);
	EG_CHECK_INT(a->nleases, b->nleases);
	for (size_t i = 0; i < a->nleases; i++) {
		EG_CHECK_INT(a->leases[i].trial, b->leases[i].trial);
		EG_CHECK_INT(a->leases[i].attempt, b->leases[i].attempt);
	}
}

/* Decodes a raw body and returns the code (the message is discarded). */
static int decode_raw(const void *p, size_t n, eg_diag *d)
{
	eg_msg m;
	int rc = eg_msg_decode(p, n, &m, d);

	eg_msg_clear(&m);
	return rc;
}

/* An sbuffer-backed packer for building hostile bodies. */
struct pk {
	msgpack_sbuffer sb;
	msgpack_packer p;
};

static void pk_init(struct pk *k)
{
	msgpack_sbuffer_init(&k->sb);
	msgpack_packer_init(&k->p, &k->sb, msgpack_sbuffer_write);
}

static void pk_str(struct pk *k, const char *s)
{
	msgpack_pack_str_with_body(&k->p, s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* Codec round trips                                                   */

EG_TEST(every_type_round_trips)
{
	for (int t = EG_MSG_NONE + 1; t < EG_MSG__COUNT; t++) {
		eg_msg in, out;
		eg_buf b = EG_BUF_INIT;
		eg_diag d = {{0}};
		eg_frame_dec *dec;
		const uint8_t *body;
		size_t used, len;

		fill(&in, (eg_msg_type)t);
		EG_CHECK_OK(eg_msg_encode(&in, &b, 0, &d));
		EG_CHECK_INT(eg_frame_get_len((const uint8_t *)b.data),
			     b.len - EG_FRAME_HDR_LEN);
		EG_CHECK_OK(eg_frame_dec_new(0, &dec));
		EG_CHECK_INT(eg_frame_dec_feed(dec, b.data, b.len, &used, &d),
			     1);
		EG_CHECK_INT(used, b.len);
		body = eg_frame_dec_body(dec, &len);
		EG_CHECK_MSG(eg_msg_decode(body, len, &out, &d) == EG_OK,
			     "%s: %s", eg_msg_type_name(t), d.msg);
		check_same(&in, &out);
		EG_CHECK_STR(eg_msg_type_name(out.type), eg_msg_type_name(t));
		eg_msg_clear(&in);
		eg_msg_clear(&out);
		eg_frame_dec_free(dec);
		eg_buf_free(&b);
	}
}

/* All twelve messages back to back in one buffer. */
static void encode_all(eg_buf *b)
{
	for (int t = EG_MSG_NONE + 1; t < EG_MSG__COUNT; t++) {
		eg_msg m;

		fill(&m, (eg_msg_type)t);
		EG_CHECK_OK(eg_msg_encode(&m, b, 0, NULL));
		eg_msg_clear(&m);
	}
}

/* Feeds `b` in chunks of `step` bytes and checks the frames in order. */
static void feed_in_steps(const eg_buf *b, size_t step)
{
	eg_frame_dec *dec;
	size_t off = 0;
	int seen = 0;

	EG_CHECK_OK(eg_frame_dec_new(0, &dec));
	while (off < b->len) {
		size_t n = b->len - off < step ? b->len - off : step, used;
		int rc = eg_frame_dec_feed(dec, b->data + off, n, &used, NULL);

		EG_CHECK(rc == 0 || rc == 1);
		EG_CHECK(used <= n);
		EG_CHECK(rc == 1 || used == n);
		off += used;
		if (rc == 1) {
			eg_msg got, want;
			size_t len;
			const uint8_t *body = eg_frame_dec_body(dec, &len);

			seen++;
			fill(&want, (eg_msg_type)seen);
			EG_CHECK_OK(eg_msg_decode(body, len, &got, NULL));
			check_same(&want, &got);
			eg_msg_clear(&want);
			eg_msg_clear(&got);
		}
	}
	EG_CHECK_INT(seen, EG_MSG__COUNT - 1);
	EG_CHECK(!eg_frame_dec_partial(dec));
	eg_frame_dec_free(dec);
}

EG_TEST(decoder_byte_by_byte)
{
	eg_buf b = EG_BUF_INIT;

	encode_all(&b);
	feed_in_steps(&b, 1);
	feed_in_steps(&b, 3);
	feed_in_steps(&b, 4);
	eg_buf_free(&b);
}

EG_TEST(decoder_many_frames_in_one_chunk)
{
	eg_buf b = EG_BUF_INIT;

	encode_all(&b);
	feed_in_steps(&b, b.len);
	eg_buf_free(&b);
}

EG_TEST(oversized_length_rejected_before_body)
{
	eg_frame_dec *dec;
	eg_diag d = {{0}};
	uint8_t hdr[4 + 16];
	size_t used;

	EG_CHECK_OK(eg_frame_dec_new(1024, &dec));
	eg_frame_put_len(hdr, 1025);
	memset(hdr + 4, 0x90, 16);
	/* Three length bytes: nothing decided yet. */
	EG_CHECK_INT(eg_frame_dec_feed(dec, hdr, 3, &used, &d), 0);
	EG_CHECK_INT(used, 3);
	/* The fourth byte decides; the body bytes behind it are not taken. */
	EG_CHECK_INT(eg_frame_dec_feed(dec, hdr + 3, 17, &used, &d),
		     EG_ETOO_BIG);
	EG_CHECK_INT(used, 1);
	EG_CHECK(strstr(d.msg, "1025") != NULL && strstr(d.msg, "1024"));
	/* Sticky: the stream lost sync. */
	EG_CHECK_INT(eg_frame_dec_feed(dec, hdr + 4, 1, &used, NULL),
		     EG_ETOO_BIG);
	eg_frame_dec_reset(dec);
	eg_frame_put_len(hdr, 1024);
	EG_CHECK_INT(eg_frame_dec_feed(dec, hdr, 4, &used, &d), 0);
	EG_CHECK_INT(eg_frame_dec_want(dec), 1024);
	eg_frame_dec_free(dec);

	/* The default maximum is 16 MiB. */
	EG_CHECK_OK(eg_frame_dec_new(0, &dec));
	eg_frame_put_len(hdr, (16u << 20) + 1);
	EG_CHECK_INT(eg_frame_dec_feed(dec, hdr, 4, &used, &d), EG_ETOO_BIG);
	eg_frame_dec_free(dec);
	EG_CHECK_INT(eg_frame_dec_new(EG_FRAME_MAX_LIMIT + 1, &dec),
		     EG_EINVAL);
}

EG_TEST(zero_length_frame)
{
	eg_frame_dec *dec;
	uint8_t hdr[4] = {0, 0, 0, 0};
	size_t used;
	eg_buf b = EG_BUF_INIT;

	EG_CHECK_OK(eg_frame_dec_new(0, &dec));
	EG_CHECK_INT(eg_frame_dec_feed(dec, hdr, 4, &used, NULL), EG_EPROTO);
	eg_frame_dec_free(dec);
	EG_CHECK_INT(eg_frame_encode(&b, "", 0, 0, NULL), EG_ETOO_BIG);
	EG_CHECK_INT(eg_frame_encode(&b, "abcd", 4, 3, NULL), EG_ETOO_BIG);
	EG_CHECK_OK(eg_frame_encode(&b, "abcd", 4, 4, NULL));
	EG_CHECK_INT(b.len, 8);
	EG_CHECK(memcmp(b.data, "\0\0\0\4abcd", 8) == 0);
	eg_buf_free(&b);
}

/* A small deterministic generator for garbage (splitmix64). */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

EG_TEST(garbage_bytes_rejected)
{
	static const uint8_t c1[] = {0xc1};
	static const uint8_t junk[] = "GET / HTTP/1.1\r\n\r\n";
	uint64_t seed = 12345;
	uint8_t buf[256];
	int ok = 0;

	EG_CHECK_INT(decode_raw(c1, sizeof(c1), NULL), EG_EPROTO);
	/* Text from a confused client parses as a run of fixints. */
	EG_CHECK(decode_raw(junk, sizeof(junk) - 1, NULL) < 0);
	/* Random bodies: must never crash and (almost) always fail. */
	for (int i = 0; i < 20000; i++) {
		size_t n = 1 + mix(&seed) % sizeof(buf);

		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)mix(&seed);
		if (i % 2 == 0)
			buf[0] = 0x80 | (buf[0] & 0x0f); /* a fixmap header */
		if (decode_raw(buf, n, NULL) == EG_OK)
			ok++;
	}
	EG_CHECK_INT(ok, 0);
}

EG_TEST(truncated_body)
{
	eg_msg m;
	eg_buf b = EG_BUF_INIT;
	eg_diag d = {{0}};
	const char *body;
	size_t n;

	fill(&m, EG_MSG_ASSIGN);
	EG_CHECK_OK(eg_msg_encode(&m, &b, 0, NULL));
	body = b.data + EG_FRAME_HDR_LEN;
	n = b.len - EG_FRAME_HDR_LEN;
	EG_CHECK_INT(decode_raw(body, n - 1, &d), EG_ETRUNCATED);
	for (size_t k = 1; k < n; k++)
		EG_CHECK_MSG(decode_raw(body, k, NULL) < 0, "prefix %zu", k);
	/* And a trailing byte is not ignored. */
	eg_buf_putc(&b, (char)0xc0);
	EG_CHECK_INT(decode_raw(body, n + 1, &d), EG_EPROTO);
	EG_CHECK(strstr(d.msg, "after") != NULL);
	eg_msg_clear(&m);
	eg_buf_free(&b);
}

EG_TEST(body_not_a_map)
{
	struct pk k;
	eg_diag d = {{0}};

	pk_init(&k);
	msgpack_pack_array(&k.p, 2);
	pk_str(&k, "type");
	pk_str(&k, "BYE");
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, &d), EG_EPROTO);
	EG_CHECK(strstr(d.msg, "not a map") != NULL);
	msgpack_sbuffer_destroy(&k.sb);

	pk_init(&k);
	pk_str(&k, "BYE");
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, NULL), EG_EPROTO);
	msgpack_sbuffer_destroy(&k.sb);
}

EG_TEST(non_string_key)
{
	struct pk k;
	eg_diag d = {{0}};

	pk_init(&k);
	msgpack_pack_map(&k.p, 2);
	pk_str(&k, "type");
	pk_str(&k, "BYE");
	msgpack_pack_int(&k.p, 1);
	pk_str(&k, "x");
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, &d), EG_EPROTO);
	EG_CHECK(strstr(d.msg, "not a string") != NULL);
	msgpack_sbuffer_destroy(&k.sb);

	/* Inside a tree as well. */
	pk_init(&k);
	msgpack_pack_map(&k.p, 4);
	pk_str(&k, "type");
	pk_str(&k, "PROGRESS");
	pk_str(&k, "trial");
	msgpack_pack_int(&k.p, 1);
	pk_str(&k, "attempt");
	msgpack_pack_int(&k.p, 1);
	pk_str(&k, "metrics");
	msgpack_pack_map(&k.p, 1);
	msgpack_pack_true(&k.p);
	msgpack_pack_int(&k.p, 1);
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, &d), EG_EPROTO);
	EG_CHECK(strstr(d.msg, "metrics") != NULL);
	msgpack_sbuffer_destroy(&k.sb);
}

EG_TEST(unknown_type)
{
	struct pk k;
	eg_diag d = {{0}};

	pk_init(&k);
	msgpack_pack_map(&k.p, 1);
	pk_str(&k, "type");
	pk_str(&k, "HELO");
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, &d), EG_EPROTO);
	EG_CHECK(strstr(d.msg, "unknown message type \"HELO\"") != NULL);
	msgpack_sbuffer_destroy(&k.sb);

	/* Type names are exact: no case folding. */
	pk_init(&k);
	msgpack_pack_map(&k.p, 1);
	pk_str(&k, "type");
	pk_str(&k, "bye");
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, NULL), EG_EPROTO);
	msgpack_sbuffer_destroy(&k.sb);
}

/* Re-packs the map `top` dropping key index `drop` (or none if -1) and
 * replacing the value of key index `swap` with the result of `wrong`. */
static void repack(const msgpack_object *top, int drop, int swap, int wrong,
		   struct pk *k)
{
	uint32_t n = top->via.map.size;

	pk_init(k);
	msgpack_pack_map(&k->p, drop >= 0 ? n - 1 : n);
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object_kv *kv = &top->via.map.ptr[i];

		if ((int)i == drop)
			continue;
		msgpack_pack_object(&k->p, kv->key);
		if ((int)i != swap) {
			msgpack_pack_object(&k->p, kv->val);
			continue;
		}
		switch (wrong) {
		case 0:
			msgpack_pack_nil(&k->p);
			break;
		case 1:
			msgpack_pack_double(&k->p, 1.0);
			break;
		case 2:
			if (kv->val.type == MSGPACK_OBJECT_STR)
				msgpack_pack_int(&k->p, 7);
			else
				pk_str(k, "7");
			break;
		default:
			if (kv->val.type == MSGPACK_OBJECT_BIN)
				msgpack_pack_array(&k->p, 0);
			else
				msgpack_pack_bin_with_body(&k->p, "abc", 3);
		}
	}
}

EG_TEST(each_field_dropped_or_mistyped)
{
	/* 1 + the number of fields of each type (BYE's reason is optional). */
	static const uint32_t nkeys[EG_MSG__COUNT] = {
		0, 5, 2, 2, 2, 2, 5, 2, 4, 4, 4, 2, 2, 3};

	for (int t = EG_MSG_NONE + 1; t < EG_MSG__COUNT; t++) {
		msgpack_unpacked up;
		eg_buf b = EG_BUF_INIT;
		eg_msg m;
		size_t off = 0;
		uint32_t n;

		fill(&m, (eg_msg_type)t);
		EG_CHECK_OK(eg_msg_encode(&m, &b, 0, NULL));
		eg_msg_clear(&m);
		msgpack_unpacked_init(&up);
		EG_CHECK_INT(msgpack_unpack_next(&up, b.data + 4, b.len - 4,
						 &off),
			     MSGPACK_UNPACK_SUCCESS);
		n = up.data.via.map.size;
		EG_CHECK_INT(n, nkeys[t]);
		/* Untouched and with an unknown extra field: accepted. */
		{
			struct pk k;

			repack(&up.data, -1, -1, 0, &k);
			EG_CHECK_OK(decode_raw(k.sb.data, k.sb.size, NULL));
			msgpack_sbuffer_destroy(&k.sb);
		}
		for (uint32_t i = 0; i < n; i++) {
			const msgpack_object *key = &up.data.via.map.ptr[i].key;
			char name[64];
			struct pk k;
			eg_diag d = {{0}};
			int rc;

			snprintf(name, sizeof(name), "%.*s",
				 (int)key->via.str.size, key->via.str.ptr);
			repack(&up.data, (int)i, -1, 0, &k);
			rc = decode_raw(k.sb.data, k.sb.size, &d);
			msgpack_sbuffer_destroy(&k.sb);
			if (t == EG_MSG_BYE && strcmp(name, "reason") == 0)
				EG_CHECK_OK(rc); /* optional */
			else
				EG_CHECK_MSG(rc == EG_EPROTO,
					     "%s without %s: %d",
					     eg_msg_type_name(t), name, rc);
			if (rc != EG_OK && strcmp(name, "type") != 0)
				EG_CHECK_MSG(strstr(d.msg, name) != NULL,
					     "%s", d.msg);
			for (int w = 0; w < 4; w++) {
				repack(&up.data, -1, (int)i, w, &k);
				rc = decode_raw(k.sb.data, k.sb.size, &d);
				msgpack_sbuffer_destroy(&k.sb);
				EG_CHECK_MSG(rc == EG_ETYPE || rc == EG_EPROTO,
					     "%s with %s of wrong type %d: "
					     "%d",
					     eg_msg_type_name(t), name, w, rc);
			}
		}
		msgpack_unpacked_destroy(&up);
		eg_buf_free(&b);
	}
}

EG_TEST(unknown_fields_ignored)
{
	struct pk k;
	eg_msg m;

	pk_init(&k);
	msgpack_pack_map(&k.p, 3);
	pk_str(&k, "type");
	pk_str(&k, "CANCEL");
	pk_str(&k, "future_field");
	msgpack_pack_bin_with_body(&k.p, "\0\1", 2);
	pk_str(&k, "trial");
	msgpack_pack_int(&k.p, 99);
	EG_CHECK_OK(eg_msg_decode(k.sb.data, k.sb.size, &m, NULL));
	EG_CHECK_INT(m.type, EG_MSG_CANCEL);
	EG_CHECK_INT(m.trial, 99);
	eg_msg_clear(&m);
	msgpack_sbuffer_destroy(&k.sb);
}

/* {type: ASSIGN, trial, attempt, params: {}, lease_ms} with raw values. */
static int assign_with(int64_t trial, int64_t attempt, int64_t lease,
		       eg_diag *d)
{
	struct pk k;
	int rc;

	pk_init(&k);
	msgpack_pack_map(&k.p, 5);
	pk_str(&k, "type");
	pk_str(&k, "ASSIGN");
	pk_str(&k, "trial");
	msgpack_pack_int64(&k.p, trial);
	pk_str(&k, "attempt");
	msgpack_pack_int64(&k.p, attempt);
	pk_str(&k, "params");
	msgpack_pack_map(&k.p, 0);
	pk_str(&k, "lease_ms");
	msgpack_pack_int64(&k.p, lease);
	rc = decode_raw(k.sb.data, k.sb.size, d);
	msgpack_sbuffer_destroy(&k.sb);
	return rc;
}

EG_TEST(integer_ranges)
{
	struct pk k;
	eg_diag d = {{0}};
	eg_msg m;
	eg_buf b = EG_BUF_INIT;

	EG_CHECK_OK(assign_with(1, 1, 1, NULL));
	EG_CHECK_INT(assign_with(0, 1, 1, &d), EG_ERANGE);
	EG_CHECK(strstr(d.msg, "trial") != NULL);
	EG_CHECK_INT(assign_with(-5, 1, 1, NULL), EG_ERANGE);
	EG_CHECK_INT(assign_with(1, 0, 1, &d), EG_ERANGE);
	EG_CHECK(strstr(d.msg, "attempt") != NULL);
	EG_CHECK_INT(assign_with(1, 1, 0, &d), EG_ERANGE);
	EG_CHECK(strstr(d.msg, "lease_ms") != NULL);

	/* uint64 above INT64_MAX. */
	pk_init(&k);
	msgpack_pack_map(&k.p, 2);
	pk_str(&k, "type");
	pk_str(&k, "CANCEL");
	pk_str(&k, "trial");
	msgpack_pack_uint64(&k.p, UINT64_MAX);
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, NULL), EG_ERANGE);
	msgpack_sbuffer_destroy(&k.sb);

	for (int s = -1; s <= 1025; s += 1026) {
		pk_init(&k);
		msgpack_pack_map(&k.p, 2);
		pk_str(&k, "type");
		pk_str(&k, "WANT");
		pk_str(&k, "slots");
		msgpack_pack_int(&k.p, s);
		EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, NULL),
			     EG_ERANGE);
		msgpack_sbuffer_destroy(&k.sb);
	}

	/* A nonce of the wrong length. */
	pk_init(&k);
	msgpack_pack_map(&k.p, 2);
	pk_str(&k, "type");
	pk_str(&k, "CHALLENGE");
	pk_str(&k, "nonce");
	msgpack_pack_bin_with_body(&k.p, "0123456789012345678901234567890",
				   31);
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, NULL), EG_ERANGE);
	msgpack_sbuffer_destroy(&k.sb);

	/* The encoder refuses what the decoder would, leaving `b` intact. */
	eg_buf_puts(&b, "xy");
	eg_msg_init(&m, EG_MSG_WANT);
	m.slots = 2000;
	EG_CHECK_INT(eg_msg_encode(&m, &b, 0, &d), EG_ERANGE);
	EG_CHECK_INT(b.len, 2);
	fill(&m, EG_MSG_HELLO);
	free(m.name);
	m.name = strdup("");
	EG_CHECK_INT(eg_msg_encode(&m, &b, 0, NULL), EG_ERANGE);
	eg_msg_clear(&m);
	fill(&m, EG_MSG_ASSIGN);
	eg_val_free(m.params);
	m.params = eg_val_list();
	EG_CHECK_INT(eg_msg_encode(&m, &b, 0, NULL), EG_ETYPE);
	eg_msg_clear(&m);
	EG_CHECK_INT(b.len, 2);
	eg_buf_free(&b);
}

EG_TEST(string_bounds_and_nul)
{
	struct pk k;
	char big[EG_MSG_NAME_MAX + 2];
	eg_diag d = {{0}};

	memset(big, 'n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pk_init(&k);
	msgpack_pack_map(&k.p, 5);
	pk_str(&k, "type");
	pk_str(&k, "HELLO");
	pk_str(&k, "version");
	msgpack_pack_int(&k.p, EG_PROTO_VERSION);
	pk_str(&k, "role");
	pk_str(&k, "worker");
	pk_str(&k, "name");
	pk_str(&k, big);
	pk_str(&k, "capabilities");
	msgpack_pack_map(&k.p, 0);
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, &d), EG_ETOO_BIG);
	EG_CHECK(strstr(d.msg, "name") != NULL);
	msgpack_sbuffer_destroy(&k.sb);

	pk_init(&k);
	msgpack_pack_map(&k.p, 4);
	pk_str(&k, "type");
	pk_str(&k, "FAIL");
	pk_str(&k, "trial");
	msgpack_pack_int(&k.p, 1);
	pk_str(&k, "attempt");
	msgpack_pack_int(&k.p, 1);
	pk_str(&k, "error");
	msgpack_pack_str_with_body(&k.p, "a\0b", 3);
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, NULL), EG_EPROTO);
	msgpack_sbuffer_destroy(&k.sb);
}

EG_TEST(nesting_depth_bomb)
{
	enum { N = 100000 };
	uint8_t *bomb = malloc(N + 16);
	static const uint8_t huge[] = {0x81, 0xa1, 'x', 0xdd,
				       0xff, 0xff, 0xff, 0xff};
	eg_diag d = {{0}};
	eg_msg m;
	eg_val *deep, *cur;
	eg_buf b = EG_BUF_INIT;

	/* {"x": [[[[...]]]]} 100000 levels deep. */
	EG_CHECK(bomb != NULL);
	bomb[0] = 0x81;
	bomb[1] = 0xa1;
	bomb[2] = 'x';
	memset(bomb + 3, 0x91, N);
	bomb[N + 3] = 0xc0;
	EG_CHECK_INT(decode_raw(bomb, N + 4, &d), EG_ETOO_BIG);
	EG_CHECK(strstr(d.msg, "deeper") != NULL);
	free(bomb);
	/* An array announcing 2^32-1 elements in an 8-byte body. */
	EG_CHECK_INT(decode_raw(huge, sizeof(huge), &d), EG_ETRUNCATED);

	/* The limit counts the top map: params holds 30 more levels. */
	for (int extra = 30; extra <= 31; extra++) {
		fill(&m, EG_MSG_ASSIGN);
		deep = eg_val_list();
		cur = deep;
		for (int i = 1; i < extra; i++) {
			eg_val *l = eg_val_list();

			EG_CHECK_OK(eg_val_push(cur, l));
			cur = l;
		}
		EG_CHECK_OK(eg_val_set(m.params, "deep", deep));
		eg_buf_reset(&b);
		if (extra == 30) {
			eg_msg out;

			EG_CHECK_OK(eg_msg_encode(&m, &b, 0, &d));
			EG_CHECK_OK(eg_msg_decode(b.data + 4, b.len - 4, &out,
						  &d));
			check_same(&m, &out);
			eg_msg_clear(&out);
		} else {
			EG_CHECK_INT(eg_msg_encode(&m, &b, 0, &d),
				     EG_ETOO_BIG);
		}
		eg_msg_clear(&m);
	}
	eg_buf_free(&b);
}

EG_TEST(ten_thousand_element_payload)
{
	eg_msg m, out;
	eg_val *curve = eg_val_list();
	eg_buf b = EG_BUF_INIT;
	eg_diag d = {{0}};

	eg_msg_init(&m, EG_MSG_RESULT);
	m.trial = 12;
	m.attempt = 1;
	m.payload = eg_val_map();
	for (int i = 0; i < 10000; i++)
		EG_CHECK_OK(eg_val_push(curve, eg_val_float(i * 0.5)));
	EG_CHECK_OK(eg_val_set(m.payload, "curve", curve));
	EG_CHECK_OK(eg_msg_encode(&m, &b, 0, &d));
	EG_CHECK_OK(eg_msg_decode(b.data + 4, b.len - 4, &out, &d));
	EG_CHECK_INT(eg_val_len(eg_val_get(out.payload, "curve")), 10000);
	check_same(&m, &out);
	eg_msg_clear(&out);
	/* Through the frame decoder in 1000-byte reads (its buffer grows). */
	{
		eg_frame_dec *dec;
		size_t off = 0, used, len = 0;
		int rc = 0;

		EG_CHECK_OK(eg_frame_dec_new(0, &dec));
		while (rc == 0 && off < b.len) {
			size_t n = b.len - off < 1000 ? b.len - off : 1000;

			rc = eg_frame_dec_feed(dec, b.data + off, n, &used, &d);
			off += used;
		}
		EG_CHECK_INT(rc, 1);
		EG_CHECK_INT(off, b.len);
		const uint8_t *body = eg_frame_dec_body(dec, &len);

		EG_CHECK_OK(eg_msg_decode(body, len, &out, &d));
		EG_CHECK_INT(len, b.len - 4);
		check_same(&m, &out);
		eg_frame_dec_free(dec);
	}
	/* The same body over a 64 KiB frame limit is refused on encode. */
	eg_buf_reset(&b);
	EG_CHECK_INT(eg_msg_encode(&m, &b, 65536, &d), EG_ETOO_BIG);
	EG_CHECK_INT(b.len, 0);
	eg_msg_clear(&m);
	eg_msg_clear(&out);
	eg_buf_free(&b);
}

/* Found by the fuzzer as a false alarm of its own check; kept to pin that a
 * diverged trial's NaN metrics travel intact. */
EG_TEST(nan_metric_round_trips)
{
	eg_msg m, out;
	eg_buf b = EG_BUF_INIT;

	eg_msg_init(&m, EG_MSG_PROGRESS);
	m.trial = 1;
	m.attempt = 1;
	m.metrics = eg_val_map();
	EG_CHECK_OK(eg_val_set_num(m.metrics, "train_loss", NAN));
	EG_CHECK_OK(eg_val_set_num(m.metrics, "test_loss", -INFINITY));
	EG_CHECK_OK(eg_msg_encode(&m, &b, 0, NULL));
	EG_CHECK_OK(eg_msg_decode(b.data + 4, b.len - 4, &out, NULL));
	EG_CHECK(isnan(eg_val_get_num(out.metrics, "train_loss", 0)));
	EG_CHECK(isinf(eg_val_get_num(out.metrics, "test_loss", 0)));
	eg_msg_clear(&m);
	eg_msg_clear(&out);
	eg_buf_free(&b);
}

EG_TEST(binary_in_tree_rejected)
{
	struct pk k;
	eg_diag d = {{0}};

	pk_init(&k);
	msgpack_pack_map(&k.p, 4);
	pk_str(&k, "type");
	pk_str(&k, "RESULT");
	pk_str(&k, "trial");
	msgpack_pack_int(&k.p, 1);
	pk_str(&k, "attempt");
	msgpack_pack_int(&k.p, 1);
	pk_str(&k, "payload");
	msgpack_pack_map(&k.p, 1);
	pk_str(&k, "blob");
	msgpack_pack_bin_with_body(&k.p, "ab", 2);
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, &d), EG_ETYPE);
	EG_CHECK(strstr(d.msg, "payload: blob") != NULL);
	msgpack_sbuffer_destroy(&k.sb);
}

/* ------------------------------------------------------------------ */
/* Handshake                                                           */

static eg_proto_token *token_of(const char *s)
{
	eg_proto_token *t;

	EG_CHECK_OK(eg_proto_token_from(s, strlen(s), &t, NULL));
	return t;
}

EG_TEST(hmac_known_answer)
{
	/* HMAC-SHA256 computed independently (Python's hmac module). */
	static const char want[] = "da7164a2bac13505f97e4d5e630fa9e5"
				   "9f47e8ea74fb7b30c59a1ec4cb355363";
	eg_proto_token *t;
	uint8_t nonce[EG_MSG_NONCE_LEN], proof[EG_MSG_PROOF_LEN];
	char hex[2 * EG_MSG_PROOF_LEN + 1];

	EG_CHECK_OK(eg_proto_init());
	t = token_of("0123456789abcdef0123456789abcdef");
	for (int i = 0; i < EG_MSG_NONCE_LEN; i++)
		nonce[i] = (uint8_t)i;
	eg_proto_proof(t, nonce, proof);
	for (int i = 0; i < EG_MSG_PROOF_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", proof[i]);
	EG_CHECK_STR(hex, want);
	eg_proto_token_free(t);
}

EG_TEST(handshake_proofs)
{
	eg_proto_token *good, *bad;
	uint8_t n1[EG_MSG_NONCE_LEN], n2[EG_MSG_NONCE_LEN];
	uint8_t p[EG_MSG_PROOF_LEN];
	eg_diag d = {{0}};

	EG_CHECK_OK(eg_proto_init());
	good = token_of("correct horse battery staple");
	bad = token_of("correct horse battery stapler");
	eg_proto_nonce(n1);
	eg_proto_nonce(n2);
	EG_CHECK(memcmp(n1, n2, sizeof(n1)) != 0);
	eg_proto_proof(good, n1, p);
	EG_CHECK_OK(eg_proto_verify(good, n1, p, &d));
	EG_CHECK_INT(eg_proto_verify(bad, n1, p, &d), EG_EAUTH);
	EG_CHECK_INT(eg_proto_verify(good, n2, p, &d), EG_EAUTH);
	p[EG_MSG_PROOF_LEN - 1] ^= 1;
	EG_CHECK_INT(eg_proto_verify(good, n1, p, &d), EG_EAUTH);
	EG_CHECK(strstr(d.msg, "correct") == NULL);
	eg_proto_token_free(bad);
	EG_CHECK_INT(eg_proto_token_from("short", 5, &bad, &d), EG_EINVAL);
	EG_CHECK(bad == NULL);
	eg_proto_token_free(good);
}

EG_TEST(version_mismatch_names_both)
{
	eg_msg m, out;
	eg_buf b = EG_BUF_INIT;
	eg_diag d = {{0}};
	struct pk k;

	fill(&m, EG_MSG_HELLO);
	m.version = 2;
	EG_CHECK_OK(eg_msg_encode(&m, &b, 0, &d));
	EG_CHECK_INT(eg_msg_decode(b.data + 4, b.len - 4, &out, &d),
		     EG_EVERSION);
	EG_CHECK_MSG(strstr(d.msg, "version 2") != NULL &&
			     strstr(d.msg, "version 1") != NULL,
		     "%s", d.msg);
	eg_msg_clear(&m);
	/* A future HELLO of another shape still reports the version. */
	pk_init(&k);
	msgpack_pack_map(&k.p, 3);
	pk_str(&k, "type");
	pk_str(&k, "HELLO");
	pk_str(&k, "version");
	msgpack_pack_int(&k.p, 7);
	pk_str(&k, "role");
	msgpack_pack_array(&k.p, 0);
	EG_CHECK_INT(decode_raw(k.sb.data, k.sb.size, &d), EG_EVERSION);
	EG_CHECK(strstr(d.msg, "version 7") != NULL);
	msgpack_sbuffer_destroy(&k.sb);
	EG_CHECK_INT(eg_proto_check_version(3, &d), EG_EVERSION);
	EG_CHECK_OK(eg_proto_check_version(EG_PROTO_VERSION, &d));
	eg_buf_free(&b);
}

EG_TEST(token_file_generated_0600)
{
	const char *p = eg_test_path("token");
	char path[4096], text[256];
	eg_proto_token *t, *t2;
	struct stat st;
	int fd;
	ssize_t n;
	uint8_t nonce[EG_MSG_NONCE_LEN], p1[32], p2[32];

	EG_CHECK_OK(eg_proto_init());
	unsetenv(EG_PROTO_TOKEN_ENV);
	snprintf(path, sizeof(path), "%s", p);
	umask(0); /* the file must be 0600 regardless of the umask */
	EG_CHECK_OK(eg_proto_token_generate(path, &t, NULL));
	EG_CHECK_OK(stat(path, &st));
	EG_CHECK_INT(st.st_mode & 07777, 0600);
	fd = open(path, O_RDONLY);
	EG_CHECK(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	EG_CHECK_INT(n, 65);
	text[n] = '\0';
	EG_CHECK_INT(strspn(text, "0123456789abcdef"), 64);
	EG_CHECK_INT(text[64], '\n');
	EG_CHECK_OK(eg_proto_token_load(path, &t2, NULL));
	EG_CHECK_INT(eg_proto_token_len(t2), 64);
	eg_proto_nonce(nonce);
	eg_proto_proof(t, nonce, p1);
	eg_proto_proof(t2, nonce, p2);
	EG_CHECK(memcmp(p1, p2, 32) == 0);
	/* Never overwrites an existing token. */
	EG_CHECK(eg_proto_token_generate(path, NULL, NULL) != EG_OK);
	eg_proto_token_free(t);
	eg_proto_token_free(t2);
}

EG_TEST(token_file_0644_refused)
{
	char path[4096];
	eg_proto_token *t = NULL;
	eg_diag d = {{0}};

	unsetenv(EG_PROTO_TOKEN_ENV);
	snprintf(path, sizeof(path), "%s",
		 eg_test_write_file("open-token",
				    "0123456789abcdef0123456789abcdef\n"));
	EG_CHECK_OK(chmod(path, 0644));
	EG_CHECK_INT(eg_proto_token_load(path, &t, &d), EG_EPERM);
	EG_CHECK(t == NULL);
	EG_CHECK_MSG(strstr(d.msg, path) != NULL &&
			     strstr(d.msg, "0644") != NULL,
		     "%s", d.msg);
	EG_CHECK_OK(chmod(path, 0640));
	EG_CHECK_INT(eg_proto_token_load(path, &t, NULL), EG_EPERM);
	EG_CHECK_OK(chmod(path, 0600));
	EG_CHECK_OK(eg_proto_token_load(path, &t, NULL));
	EG_CHECK_INT(eg_proto_token_len(t), 32); /* newline dropped */
	eg_proto_token_free(t);

	snprintf(path, sizeof(path), "%s",
		 eg_test_write_file("short-token", "tooshort\n"));
	EG_CHECK_OK(chmod(path, 0600));
	EG_CHECK_INT(eg_proto_token_load(path, &t, &d), EG_EINVAL);
	EG_CHECK(strstr(d.msg, path) != NULL);
	EG_CHECK_INT(eg_proto_token_load(eg_test_path("absent"), &t, NULL),
		     EG_ENOENT);
	EG_CHECK_INT(eg_proto_token_load(NULL, &t, NULL), EG_ENOENT);
}

EG_TEST(token_env_preferred)
{
	static const char env[] = "environment-token-0123";
	char path[4096];
	eg_proto_token *t, *e;
	uint8_t nonce[EG_MSG_NONCE_LEN], p1[32], p2[32];

	EG_CHECK_OK(eg_proto_init());
	snprintf(path, sizeof(path), "%s",
		 eg_test_write_file("file-token",
				    "file-token-0123456789abcdef\n"));
	EG_CHECK_OK(chmod(path, 0644)); /* not even read when env is set */
	EG_CHECK_OK(setenv(EG_PROTO_TOKEN_ENV, env, 1));
	EG_CHECK_OK(eg_proto_token_load(path, &t, NULL));
	EG_CHECK_INT(eg_proto_token_len(t), strlen(env));
	e = token_of(env);
	eg_proto_nonce(nonce);
	eg_proto_proof(t, nonce, p1);
	eg_proto_proof(e, nonce, p2);
	EG_CHECK(memcmp(p1, p2, 32) == 0);
	eg_proto_token_free(t);
	eg_proto_token_free(e);
	EG_CHECK_OK(setenv(EG_PROTO_TOKEN_ENV, "short", 1));
	EG_CHECK_INT(eg_proto_token_load(path, &t, NULL), EG_EINVAL);
	unsetenv(EG_PROTO_TOKEN_ENV);
}

EG_TEST(token_never_on_the_wire)
{
	char path[4096], text[128];
	eg_proto_token *t;
	eg_msg hello, ch, pr, wel;
	eg_buf wire = EG_BUF_INIT;
	int fd;
	ssize_t n;
	uint8_t raw[32];

	EG_CHECK_OK(eg_proto_init());
	unsetenv(EG_PROTO_TOKEN_ENV);
	snprintf(path, sizeof(path), "%s", eg_test_path("tok"));
	EG_CHECK_OK(eg_proto_token_generate(path, &t, NULL));
	fd = open(path, O_RDONLY);
	n = read(fd, text, sizeof(text));
	close(fd);
	EG_CHECK_INT(n, 65);
	/* The token also as the 32 raw bytes its hex spells. */
	for (int i = 0; i < 32; i++) {
		unsigned v;

		sscanf(text + 2 * i, "%2x", &v);
		raw[i] = (uint8_t)v;
	}

	fill(&hello, EG_MSG_HELLO);
	EG_CHECK_OK(eg_msg_encode(&hello, &wire, 0, NULL));
	eg_msg_init(&ch, EG_MSG_CHALLENGE);
	eg_proto_nonce(ch.nonce);
	EG_CHECK_OK(eg_msg_encode(&ch, &wire, 0, NULL));
	eg_msg_init(&pr, EG_MSG_PROOF);
	eg_proto_proof(t, ch.nonce, pr.proof);
	EG_CHECK_OK(eg_msg_encode(&pr, &wire, 0, NULL));
	eg_msg_init(&wel, EG_MSG_WELCOME);
	wel.version = EG_PROTO_VERSION;
	EG_CHECK_OK(eg_msg_encode(&wel, &wire, 0, NULL));
	EG_CHECK_OK(eg_proto_verify(t, ch.nonce, pr.proof, NULL));

	/* No 8-byte window of the token, in either spelling. */
	for (int i = 0; i + 8 <= 64; i++)
		EG_CHECK(memmem(wire.data, wire.len, text + i, 8) == NULL);
	for (int i = 0; i + 8 <= 32; i++)
		EG_CHECK(memmem(wire.data, wire.len, raw + i, 8) == NULL);
	/* The search works: the proof itself is there. */
	EG_CHECK(memmem(wire.data, wire.len, pr.proof, 32) != NULL);
	eg_msg_clear(&hello);
	eg_proto_token_free(t);
	eg_buf_free(&wire);
}

/* ------------------------------------------------------------------ */
/* Blocking helpers over a real socket pair                            */

/* The coordinator side of the handshake, in a child process. */
static int serve_handshake(int fd, const char *secret)
{
	eg_proto_token *t = NULL;
	eg_frame_dec *dec = NULL;
	eg_msg m, reply;
	int rc;

	eg_msg_init(&m, EG_MSG_NONE);
	if (eg_proto_init() != EG_OK ||
	    eg_proto_token_from(secret, strlen(secret), &t, NULL) != EG_OK ||
	    eg_frame_dec_new(0, &dec) != EG_OK)
		return 10;
	rc = eg_proto_recv(fd, dec, &m, 5000, NULL);
	if (rc != EG_OK || m.type != EG_MSG_HELLO)
		return 11;
	eg_msg_init(&reply, EG_MSG_CHALLENGE);
	eg_proto_nonce(reply.nonce);
	if (eg_proto_send(fd, &reply, 0, NULL) != EG_OK)
		return 12;
	if (eg_proto_recv(fd, dec, &m, 5000, NULL) != EG_OK ||
	    m.type != EG_MSG_PROOF)
		return 13;
	if (eg_proto_verify(t, reply.nonce, m.proof, NULL) != EG_OK) {
		eg_msg_init(&reply, EG_MSG_BYE);
		reply.reason = strdup("authentication failed");
		eg_proto_send(fd, &reply, 0, NULL);
		eg_msg_clear(&reply);
		return 0;
	}
	eg_msg_init(&reply, EG_MSG_WELCOME);
	reply.version = EG_PROTO_VERSION;
	if (eg_proto_send(fd, &reply, 0, NULL) != EG_OK)
		return 14;
	eg_msg_clear(&m);
	eg_frame_dec_free(dec);
	eg_proto_token_free(t);
	return 0;
}

static eg_msg_type client_handshake(const char *server_secret,
				    const char *client_secret)
{
	int sv[2], status;
	pid_t pid;
	eg_proto_token *t;
	eg_frame_dec *dec;
	eg_msg m;
	eg_msg_type got;

	EG_CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	pid = fork();
	EG_CHECK(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(serve_handshake(sv[1], server_secret));
	}
	close(sv[1]);
	t = token_of(client_secret);
	EG_CHECK_OK(eg_frame_dec_new(0, &dec));
	fill(&m, EG_MSG_HELLO);
	EG_CHECK_OK(eg_proto_send(sv[0], &m, 0, NULL));
	EG_CHECK_OK(eg_proto_recv(sv[0], dec, &m, 5000, NULL));
	EG_CHECK_INT(m.type, EG_MSG_CHALLENGE);
	{
		uint8_t nonce[EG_MSG_NONCE_LEN];

		memcpy(nonce, m.nonce, sizeof(nonce));
		eg_msg_init(&m, EG_MSG_PROOF);
		eg_proto_proof(t, nonce, m.proof);
	}
	EG_CHECK_OK(eg_proto_send(sv[0], &m, 0, NULL));
	EG_CHECK_OK(eg_proto_recv(sv[0], dec, &m, 5000, NULL));
	got = m.type;
	eg_msg_clear(&m);
	EG_CHECK_INT(waitpid(pid, &status, 0), pid);
	EG_CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		     "server status %d", status);
	close(sv[0]);
	eg_frame_dec_free(dec);
	eg_proto_token_free(t);
	return got;
}

EG_TEST(handshake_over_socket)
{
	EG_CHECK_OK(eg_proto_init());
	EG_CHECK_INT(client_handshake("shared-secret-0123456789",
				      "shared-secret-0123456789"),
		     EG_MSG_WELCOME);
	EG_CHECK_INT(client_handshake("shared-secret-0123456789",
				      "guessed-secret-0123456789"),
		     EG_MSG_BYE);
}

EG_TEST(recv_timeout_close_and_no_overread)
{
	int sv[2];
	eg_frame_dec *dec;
	eg_buf b = EG_BUF_INIT;
	eg_msg m;
	eg_diag d = {{0}};

	EG_CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	EG_CHECK_OK(eg_frame_dec_new(0, &dec));
	eg_msg_init(&m, EG_MSG_NONE);
	/* Two frames in one write: two receives, nothing lost. */
	encode_all(&b);
	EG_CHECK_INT(write(sv[1], b.data, b.len), (ssize_t)b.len);
	for (int t = EG_MSG_NONE + 1; t < EG_MSG__COUNT; t++) {
		EG_CHECK_OK(eg_proto_recv(sv[0], dec, &m, 1000, &d));
		EG_CHECK_INT(m.type, t);
	}
	/* Half a frame, then silence: a timeout. */
	EG_CHECK_INT(write(sv[1], b.data, 6), 6);
	EG_CHECK_INT(eg_proto_recv(sv[0], dec, &m, 100, &d), EG_ETIMEOUT);
	/* Then the peer closes inside the frame. */
	close(sv[1]);
	EG_CHECK_INT(eg_proto_recv(sv[0], dec, &m, 1000, &d), EG_ETRUNCATED);
	close(sv[0]);

	/* A clean close between frames, and sending to a closed peer. */
	EG_CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	eg_frame_dec_reset(dec);
	close(sv[1]);
	EG_CHECK_INT(eg_proto_recv(sv[0], dec, &m, 1000, &d), EG_ECLOSED);
	fill(&m, EG_MSG_CANCEL);
	EG_CHECK_INT(eg_proto_send(sv[0], &m, 0, &d), EG_ECLOSED);
	close(sv[0]);
	eg_msg_clear(&m);
	eg_frame_dec_free(dec);
	eg_buf_free(&b);
}

EG_TEST_MAIN({"every_type_round_trips", every_type_round_trips, 10},
	     {"decoder_byte_by_byte", decoder_byte_by_byte, 10},
	     {"decoder_many_frames_in_one_chunk",
	      decoder_many_frames_in_one_chunk, 10},
	     {"oversized_length_rejected_before_body",
	      oversized_length_rejected_before_body, 10},
	     {"zero_length_frame", zero_length_frame, 10},
	     {"garbage_bytes_rejected", garbage_bytes_rejected, 20},
	     {"truncated_body", truncated_body, 10},
	     {"body_not_a_map", body_not_a_map, 10},
	     {"non_string_key", non_string_key, 10},
	     {"unknown_type", unknown_type, 10},
	     {"each_field_dropped_or_mistyped",
	      each_field_dropped_or_mistyped, 10},
	     {"unknown_fields_ignored", unknown_fields_ignored, 10},
	     {"integer_ranges", integer_ranges, 10},
	     {"string_bounds_and_nul", string_bounds_and_nul, 10},
	     {"nesting_depth_bomb", nesting_depth_bomb, 10},
	     {"ten_thousand_element_payload", ten_thousand_element_payload,
	      10},
	     {"nan_metric_round_trips", nan_metric_round_trips, 10},
	     {"binary_in_tree_rejected", binary_in_tree_rejected, 10},
	     {"hmac_known_answer", hmac_known_answer, 10},
	     {"handshake_proofs", handshake_proofs, 10},
	     {"version_mismatch_names_both", version_mismatch_names_both, 10},
	     {"token_file_generated_0600", token_file_generated_0600, 10},
	     {"token_file_0644_refused", token_file_0644_refused, 10},
	     {"token_env_preferred", token_env_preferred, 10},
	     {"token_never_on_the_wire", token_never_on_the_wire, 10},
	     {"handshake_over_socket", handshake_over_socket, 10},
	     {"recv_timeout_close_and_no_overread",
	      recv_timeout_close_and_no_overread, 10})
