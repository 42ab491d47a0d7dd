/*
 * auth.h - the protocol version and the shared-token handshake.
 *
 *     agent                          coordinator
 *     HELLO{version, role, name, capabilities}  ->
 *                                    <-  CHALLENGE{nonce: 32 random bytes}
 *     PROOF{HMAC-SHA256(token, nonce)}          ->
 *                                    <-  WELCOME{version}, or close
 *
 * The token is the shared secret of a deployment (EXPGRID_TOKEN, or the
 * 0600 file `expgrid up` writes under EXPGRID_HOME).  It never crosses the
 * wire: only a fresh nonce and a MAC of it do, and a MAC of one nonce is
 * useless for another, so a recorded handshake cannot be replayed.  The HMAC
 * key is the token's bytes exactly as configured (the 64 hex characters of a
 * generated token, not the 32 bytes they encode), so an operator may also
 * set any passphrase of at least EG_PROTO_TOKEN_MIN bytes.  Proofs are
 * compared in constant time.
 *
 * Ownership: an eg_proto_token is opaque, owned by the caller, immutable
 * after loading and therefore safe to share between threads;
 * eg_proto_token_free() wipes it.  Nothing here logs or prints the token.
 * eg_proto_init() must succeed once before any other function (it
 * initializes libsodium; calling it again is harmless).
 */
#ifndef EG_PROTO_AUTH_H
#define EG_PROTO_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/msg.h"

#define EG_PROTO_VERSION 1
#define EG_PROTO_TOKEN_MIN 16   /* bytes */
#define EG_PROTO_TOKEN_MAX 4096 /* bytes */
#define EG_PROTO_TOKEN_ENV "EXPGRID_TOKEN"

typedef struct eg_proto_token eg_proto_token;

/* Initializes libsodium (EG_EMISSING_DEP if it cannot). */
int eg_proto_init(void);

/* Fills a fresh random nonce for a CHALLENGE. */
void eg_proto_nonce(uint8_t nonce[EG_MSG_NONCE_LEN]);

/* proof = HMAC-SHA256(key = token, message = nonce). */
void eg_proto_proof(const eg_proto_token *t,
		    const uint8_t nonce[EG_MSG_NONCE_LEN],
		    uint8_t proof[EG_MSG_PROOF_LEN]);
/* EG_OK if `proof` is the token's MAC of `nonce` (compared in constant
 * time), else EG_EAUTH with a message that reveals nothing of either. */
int eg_proto_verify(const eg_proto_token *t,
		    const uint8_t nonce[EG_MSG_NONCE_LEN],
		    const uint8_t proof[EG_MSG_PROOF_LEN], eg_diag *diag);

/* EG_OK if the peer speaks EG_PROTO_VERSION, else EG_EVERSION with a
 * message naming both versions. */
int eg_proto_check_version(int64_t peer_version, eg_diag *diag);

/*
 * Loads the token: $EXPGRID_TOKEN if set (and non-empty), else the file at
 * `path` (may be NULL when only the environment is acceptable).  The file
 * must be a regular file whose mode grants nothing to group or others
 * (EG_EPERM, naming the file and its mode); trailing whitespace is dropped;
 * a token shorter than EG_PROTO_TOKEN_MIN bytes is EG_EINVAL.  No token at
 * all is EG_ENOENT.  On success *out is the caller's.
 */
int eg_proto_token_load(const char *path, eg_proto_token **out,
			eg_diag *diag);
/* A token from `len` bytes (same length rules); for tests and callers
 * that hold the secret themselves. */
int eg_proto_token_from(const void *bytes, size_t len, eg_proto_token **out,
			eg_diag *diag);
/*
 * Creates `path` (which must not exist: O_CREAT|O_EXCL, mode 0600) holding
 * 32 random bytes as 64 lowercase hex digits and a newline, fsyncs it, and
 * returns the token in *out if `out` is not NULL.  On failure no file is
 * left behind.
 */
int eg_proto_token_generate(const char *path, eg_proto_token **out,
			    eg_diag *diag);
/* Wipes and frees; accepts NULL. */
void eg_proto_token_free(eg_proto_token *t);
/* The token's length in bytes (never its content). */
size_t eg_proto_token_len(const eg_proto_token *t);

#endif
