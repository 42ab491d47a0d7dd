/*
 * frame.c - the incremental frame decoder and the frame encoder.
 *
 * Invariants: in state HDR, hdr_have < 4 bytes of the length are held; in
 * BODY, body_len is validated (1..max), body_have < body_len bytes are
 * filled and cap >= body_have (the buffer grows as bytes arrive, never past
 * body_len); READY means one whole
 * frame is held and the next feed starts a new one; FAILED keeps `err` until
 * reset.  The body buffer is reused across frames so that steady traffic
 * does not allocate; one that grew past SHRINK_OVER for an unusually large
 * frame is released when a small frame follows, so an idle connection does
 * not pin megabytes.
 */
#include "proto/frame.h"

#include <stdlib.h>
#include <string.h>

#define SHRINK_OVER ((size_t)1 << 20)
#define GROW_FIRST ((size_t)4096)

enum dec_state { DEC_HDR, DEC_BODY, DEC_READY, DEC_FAILED };

struct eg_frame_dec {
	size_t max;
	enum dec_state state;
	int err;
	uint8_t hdr[EG_FRAME_HDR_LEN];
	size_t hdr_have;
	uint8_t *body;
	size_t body_len, body_have, cap;
};

void eg_frame_put_len(uint8_t hdr[EG_FRAME_HDR_LEN], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

uint32_t eg_frame_get_len(const uint8_t hdr[EG_FRAME_HDR_LEN])
{
	return (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	       (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
}

int eg_frame_dec_new(size_t max, eg_frame_dec **out)
{
	eg_frame_dec *d;

	*out = NULL;
	if (max == 0)
		max = EG_FRAME_MAX_DEFAULT;
	if (max > EG_FRAME_MAX_LIMIT)
		return EG_EINVAL;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return EG_ENOMEM;
	d->max = max;
	d->state = DEC_HDR;
	*out = d;
	return EG_OK;
}

void eg_frame_dec_free(eg_frame_dec *d)
{
	if (d == NULL)
		return;
	free(d->body);
	free(d);
}

void eg_frame_dec_reset(eg_frame_dec *d)
{
	d->state = DEC_HDR;
	d->err = EG_OK;
	d->hdr_have = 0;
	d->body_len = d->body_have = 0;
}

static int fail(eg_frame_dec *d, int err)
{
	d->state = DEC_FAILED;
	d->err = err;
	return err;
}

/* Called when the fourth length byte arrived: validate, then make room. */
static int start_body(eg_frame_dec *d, eg_diag *diag)
{
	uint32_t len = eg_frame_get_len(d->hdr);

	if (len == 0)
		return fail(d, eg_diag_set(diag, EG_EPROTO,
					   "frame of length 0"));
	if (len > d->max)
		return fail(d, eg_diag_set(diag, EG_ETOO_BIG,
					   "frame of %lu bytes exceeds the "
					   "maximum of %zu",
					   (unsigned long)len, d->max));
	if (d->cap > SHRINK_OVER && len <= SHRINK_OVER) {
		free(d->body);
		d->body = NULL;
		d->cap = 0;
	}
	d->body_len = len;
	d->body_have = 0;
	d->state = DEC_BODY;
	return EG_OK;
}

/* Makes room for `need` body bytes, doubling up to the announced length:
 * memory follows the bytes that actually arrived, so four bytes announcing
 * 16 MiB cost nothing until the peer sends them. */
static int grow_body(eg_frame_dec *d, size_t need, eg_diag *diag)
{
	size_t cap = d->cap != 0 ? d->cap : GROW_FIRST;
	uint8_t *p;

	if (need <= d->cap)
		return EG_OK;
	while (cap < need)
		cap *= 2;
	if (cap > d->body_len)
		cap = d->body_len;
	p = realloc(d->body, cap);
	if (p == NULL)
		return fail(d, eg_diag_set(diag, EG_ENOMEM,
					   "no memory for a frame of %zu bytes",
					   d->body_len));
	d->body = p;
	d->cap = cap;
	return EG_OK;
}

int eg_frame_dec_feed(eg_frame_dec *d, const void *p, size_t n, size_t *used,
		      eg_diag *diag)
{
	const uint8_t *in = p;
	size_t off = 0;

	*used = 0;
	if (d->state == DEC_FAILED)
		return eg_diag_set(diag, d->err, "frame stream failed earlier: "
				   "%s", eg_strerror(d->err));
	if (d->state == DEC_READY) {
		d->state = DEC_HDR;
		d->hdr_have = 0;
	}
	while (off < n) {
		size_t take;

		if (d->state == DEC_HDR) {
			take = EG_FRAME_HDR_LEN - d->hdr_have;
			if (take > n - off)
				take = n - off;
			memcpy(d->hdr + d->hdr_have, in + off, take);
			d->hdr_have += take;
			off += take;
			if (d->hdr_have == EG_FRAME_HDR_LEN) {
				int rc = start_body(d, diag);

				if (rc != EG_OK) {
					*used = off;
					return rc;
				}
			}
			continue;
		}
		take = d->body_len - d->body_have;
		if (take > n - off)
			take = n - off;
		if (grow_body(d, d->body_have + take, diag) != EG_OK) {
			*used = off;
			return d->err;
		}
		memcpy(d->body + d->body_have, in + off, take);
		d->body_have += take;
		off += take;
		if (d->body_have == d->body_len) {
			d->state = DEC_READY;
			*used = off;
			return 1;
		}
	}
	*used = off;
	return 0;
}

const uint8_t *eg_frame_dec_body(const eg_frame_dec *d, size_t *len)
{
	if (d->state != DEC_READY) {
		*len = 0;
		return NULL;
	}
	*len = d->body_len;
	return d->body;
}

size_t eg_frame_dec_want(const eg_frame_dec *d)
{
	switch (d->state) {
	case DEC_BODY:
		return d->body_len - d->body_have;
	case DEC_HDR:
		return EG_FRAME_HDR_LEN - d->hdr_have;
	default:
		return EG_FRAME_HDR_LEN;
	}
}

int eg_frame_dec_partial(const eg_frame_dec *d)
{
	return (d->state == DEC_HDR && d->hdr_have > 0) ||
	       d->state == DEC_BODY;
}

int eg_frame_encode(eg_buf *out, const void *body, size_t len, size_t max,
		    eg_diag *diag)
{
	uint8_t hdr[EG_FRAME_HDR_LEN];

	if (max == 0 || max > EG_FRAME_MAX_LIMIT)
		max = max == 0 ? EG_FRAME_MAX_DEFAULT : EG_FRAME_MAX_LIMIT;
	if (len == 0 || len > max)
		return eg_diag_set(diag, EG_ETOO_BIG,
				   "frame body of %zu bytes is outside 1..%zu",
				   len, max);
	eg_frame_put_len(hdr, (uint32_t)len);
	eg_buf_append(out, hdr, sizeof(hdr));
	eg_buf_append(out, body, len);
	if (eg_buf_failed(out))
		return eg_diag_set(diag, EG_ENOMEM,
				   "no memory to encode a frame");
	return EG_OK;
}
