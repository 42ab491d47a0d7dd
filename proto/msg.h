/*
 * msg.h - the messages of the wire protocol (docs/protocol.md) and their
 * msgpack codec.
 *
 * A frame body is one msgpack map with string keys and a string `type`.
 * Decoding is strict where it matters for safety and lenient where it
 * matters for evolution:
 *   - the body must be exactly one msgpack map (no trailing bytes), its keys
 *     strings without duplicates, `type` one of the names below;
 *   - every required field must be present with its exact msgpack type
 *     (integers must be integers, a float 1.0 is not an attempt number) and
 *     in range (trial ids 1..INT64_MAX, attempt >= 1, slots 0..1024,
 *     lease_ms > 0), strings within the bounds below;
 *   - fields this version does not know are ignored, so that a newer peer
 *     may add optional fields without a version bump (a change in meaning of
 *     an existing field needs EG_PROTO_VERSION + 1);
 *   - eg_val trees (capabilities, params, metrics, payload) may hold nil,
 *     bool, int (int64; larger unsigned values are EG_ERANGE), float (32 or
 *     64 bit, read as double), str (no NUL bytes), array and map (string
 *     keys of at most EG_MSG_KEY_MAX bytes, at most EG_MSG_MAP_MAX entries,
 *     a repeated key keeps its last value).  msgpack bin and ext are
 *     rejected (EG_ETYPE) rather than mapped to strings: a tree is JSON-like
 *     data for the store, and binary silently truncated at a NUL byte
 *     would corrupt it.  Nesting deeper than EG_MSG_DEPTH_MAX containers
 *     and bodies of more than EG_MSG_NODES_MAX objects are EG_ETOO_BIG:
 *     msgpack-c allocates a container's declared size before reading it,
 *     so the body is checked for these limits before it is unpacked.
 *   - a HELLO or WELCOME whose version is not EG_PROTO_VERSION fails with
 *     EG_EVERSION naming both versions, before any other field is checked,
 *     so a future HELLO reports the real problem.
 * Error codes: EG_EPROTO (structure: not a map, bad key, unknown type,
 * missing field, trailing bytes, NUL in a string), EG_ETRUNCATED (the body
 * ends inside an object), EG_ETYPE (a field or tree value of the wrong
 * type), EG_ERANGE (a number out of range), EG_ETOO_BIG (a bound), EG_ENOMEM;
 * the detail names the message type and field.
 *
 * eg_msg is plain data (not opaque): the sender fills the fields of its type,
 * the decoder fills them on the receiving side.  It owns every pointer in it
 * (strings, trees, the lease array); eg_msg_clear() frees them.  Encoding
 * validates the message with the same rules as decoding, so a sender never
 * puts a frame on the wire that its peer must reject.
 */
#ifndef EG_PROTO_MSG_H
#define EG_PROTO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/value.h"

#define EG_MSG_NONCE_LEN 32 /* CHALLENGE nonce bytes */
#define EG_MSG_PROOF_LEN 32 /* PROOF bytes: an HMAC-SHA256 */
#define EG_MSG_ROLE_MAX 32
#define EG_MSG_NAME_MAX 256
#define EG_MSG_ERROR_MAX 65536
#define EG_MSG_REASON_MAX 1024
#define EG_MSG_TYPE_MAX 32 /* the `type` string */
#define EG_MSG_KEY_MAX 256 /* a map key anywhere */
#define EG_MSG_MAP_MAX 4096 /* entries of one map inside a tree */
#define EG_MSG_LEASES_MAX 65536
#define EG_MSG_SLOTS_MAX 1024
#define EG_MSG_DEPTH_MAX 32 /* nested containers, the top map included */
#define EG_MSG_NODES_MAX ((size_t)1 << 20) /* objects in one body */

typedef enum eg_msg_type {
	EG_MSG_NONE = 0,
	EG_MSG_HELLO,     /* agent -> coordinator */
	EG_MSG_CHALLENGE, /* coordinator -> agent */
	EG_MSG_PROOF,     /* agent -> coordinator */
	EG_MSG_WELCOME,   /* coordinator -> agent */
	EG_MSG_WANT,      /* agent: ready for `slots` more trials */
	EG_MSG_ASSIGN,    /* coordinator: run this trial */
	EG_MSG_HEARTBEAT, /* agent: still running these leases */
	EG_MSG_PROGRESS,  /* agent: intermediate metrics */
	EG_MSG_RESULT,    /* agent: final result */
	EG_MSG_FAIL,      /* agent: the attempt failed */
	EG_MSG_CANCEL,    /* coordinator: stop this trial */
	EG_MSG_BYE,       /* either side: orderly close */
	EG_MSG_ACK,       /* coordinator: this RESULT/FAIL is durable */
	EG_MSG__COUNT
} eg_msg_type;

/* One lease in a HEARTBEAT: the attempt matters, since an expired attempt
 * must not be renewed by a late heartbeat. */
typedef struct eg_msg_lease {
	int64_t trial;
	int64_t attempt;
} eg_msg_lease;

typedef struct eg_msg {
	eg_msg_type type;
	int64_t version;       /* HELLO, WELCOME */
	char *role;            /* HELLO: "worker", "hwagent", ... */
	char *name;            /* HELLO: the agent's name */
	eg_val *capabilities;  /* HELLO: map */
	uint8_t nonce[EG_MSG_NONCE_LEN]; /* CHALLENGE */
	uint8_t proof[EG_MSG_PROOF_LEN]; /* PROOF */
	int64_t slots;         /* WANT */
	int64_t trial;         /* ASSIGN PROGRESS RESULT FAIL CANCEL ACK */
	int64_t attempt;       /* ASSIGN PROGRESS RESULT FAIL ACK */
	int64_t lease_ms;      /* ASSIGN */
	eg_val *params;        /* ASSIGN: map */
	eg_val *metrics;       /* PROGRESS: map */
	eg_val *payload;       /* RESULT: map */
	char *error;           /* FAIL */
	char *reason;          /* BYE, optional (NULL = absent) */
	eg_msg_lease *leases;  /* HEARTBEAT */
	size_t nleases;
} eg_msg;

/* Zeroes `m` and sets its type. */
void eg_msg_init(eg_msg *m, eg_msg_type type);
/* Frees everything `m` owns and zeroes it; accepts NULL. */
void eg_msg_clear(eg_msg *m);

/* "HELLO" ..., the wire name; NULL for an invalid type. */
const char *eg_msg_type_name(eg_msg_type t);
/* The type of a wire name, or EG_MSG_NONE. */
eg_msg_type eg_msg_type_from_name(const char *name, size_t len);

/* Checks `m` against the rules decoding applies (presence, ranges, bounds). */
int eg_msg_validate(const eg_msg *m, eg_diag *diag);

/*
 * Appends `m` as one complete frame (length prefix and msgpack body) to
 * `out`; a body over max bytes (0 = EG_FRAME_MAX_DEFAULT) is EG_ETOO_BIG and
 * leaves `out` as it was.
 */
int eg_msg_encode(const eg_msg *m, eg_buf *out, size_t max, eg_diag *diag);

/*
 * Decodes one frame body into `out` (which is overwritten, not freed: pass
 * an initialized or cleared message).  On failure `out` is left cleared.
 */
int eg_msg_decode(const void *body, size_t len, eg_msg *out, eg_diag *diag);

#endif
