/*
 * frame.h - length-prefixed frames: a 4-byte big-endian body length, then
 * the body (one msgpack map, see msg.h).  The same framer serves the
 * coordinator (libuv read callbacks hand it whatever arrived) and the worker
 * (blocking reads, see io.h), so it owns no socket and never blocks.
 *
 * The decoder is a small state machine fed arbitrary chunks: one byte at a
 * time or many frames at once.  It consumes input only up to the end of the
 * next complete frame, so the caller keeps the rest of its chunk and feeds it
 * again after handling the frame; nothing is queued and a hostile peer cannot
 * make it buffer more than one frame.  The length is checked the moment its
 * fourth byte arrives, before any body byte is buffered: 0 is EG_EPROTO and a
 * length over the configured maximum is EG_ETOO_BIG.  The body buffer grows
 * with the bytes that actually arrive, so a length alone reserves nothing.
 * Errors are sticky: the stream has lost sync and the connection must be
 * closed.
 *
 * Ownership: a decoder is owned by one connection and used by one thread.
 * The body returned by eg_frame_dec_body() belongs to the decoder and stays
 * valid until the next eg_frame_dec_feed(), _reset() or _free().
 */
#ifndef EG_PROTO_FRAME_H
#define EG_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define EG_FRAME_HDR_LEN 4
/* Default largest body: 16 MiB (DESIGN.md, "Wire protocol"). */
#define EG_FRAME_MAX_DEFAULT ((size_t)16 << 20)
/* The length field is 32 bits; no maximum may exceed it. */
#define EG_FRAME_MAX_LIMIT ((size_t)UINT32_MAX)

typedef struct eg_frame_dec eg_frame_dec;

/* A decoder accepting bodies of 1..max bytes (max 0 = the default; more
 * than EG_FRAME_MAX_LIMIT is EG_EINVAL).  The caller frees it. */
int eg_frame_dec_new(size_t max, eg_frame_dec **out);
void eg_frame_dec_free(eg_frame_dec *d); /* accepts NULL */
/* Forgets any partial frame and a sticky error (for a new connection). */
void eg_frame_dec_reset(eg_frame_dec *d);

/*
 * Consumes bytes of p[0..n) and sets *used to how many it took.  Returns 1
 * when a frame is complete (read it with eg_frame_dec_body; the remaining
 * n - *used bytes belong to the next frame), 0 when all input was taken and
 * the frame is still incomplete, or a negative eg_err (EG_EPROTO,
 * EG_ETOO_BIG, EG_ENOMEM) with the reason in `diag`.  After an error every
 * call returns the same error until eg_frame_dec_reset().
 */
int eg_frame_dec_feed(eg_frame_dec *d, const void *p, size_t n, size_t *used,
		      eg_diag *diag);
/* The completed frame's body and length, or NULL if none is complete. */
const uint8_t *eg_frame_dec_body(const eg_frame_dec *d, size_t *len);
/* Bytes still needed to finish the current header or body (at least 1), so
 * that a blocking reader never reads past the frame it is waiting for. */
size_t eg_frame_dec_want(const eg_frame_dec *d);
/* Whether part of a frame has been received (EOF now means truncation). */
int eg_frame_dec_partial(const eg_frame_dec *d);

/* Appends the 4-byte length and the body to `out`.  EG_ETOO_BIG if len is 0
 * or over max (0 = the default), EG_ENOMEM if `out` failed. */
int eg_frame_encode(eg_buf *out, const void *body, size_t len, size_t max,
		    eg_diag *diag);
/* Writes len as the 4-byte big-endian header / reads it back. */
void eg_frame_put_len(uint8_t hdr[EG_FRAME_HDR_LEN], uint32_t len);
uint32_t eg_frame_get_len(const uint8_t hdr[EG_FRAME_HDR_LEN]);

#endif
