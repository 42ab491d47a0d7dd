/*
 * fuzz_frame.c - libFuzzer target for the wire decoder: the input is a byte
 * stream from a hostile peer.  The first byte picks a chunk size so that the
 * incremental decoder is driven both byte by byte and in large reads; every
 * complete frame goes through the strict message decoder.  A body that
 * decodes must re-encode, and that encoding must decode and re-encode to
 * the same bytes, which turns silent misparses into crashes.
 * The input is also decoded directly as one body, so the message decoder is
 * reached without the fuzzer first discovering the length prefix.
 *
 *     make fuzz [FUZZ_SECONDS=60]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "proto/msg.h"

/* Decodes `body`; if accepted, re-encodes, decodes that and re-encodes
 * again: the two encodings must be identical bytes (comparing bytes rather
 * than trees keeps NaN metrics, which never equal themselves, honest). */
static void check_body(const uint8_t *body, size_t len)
{
	eg_msg m, again;
	eg_buf b1 = EG_BUF_INIT, b2 = EG_BUF_INIT;

	if (eg_msg_decode(body, len, &m, NULL) != EG_OK)
		return;
	if (eg_msg_encode(&m, &b1, 0, NULL) != EG_OK)
		abort(); /* accepted input must be re-encodable */
	if (eg_msg_decode(b1.data + EG_FRAME_HDR_LEN,
			  b1.len - EG_FRAME_HDR_LEN, &again, NULL) != EG_OK)
		abort();
	if (eg_msg_encode(&again, &b2, 0, NULL) != EG_OK ||
	    b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
		abort();
	eg_msg_clear(&m);
	eg_msg_clear(&again);
	eg_buf_free(&b1);
	eg_buf_free(&b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	eg_frame_dec *dec;
	size_t step, off = 1;

	if (size == 0)
		return 0;
	check_body(data + 1, size - 1);
	step = (size_t)(data[0] % 16) + 1;
	if (data[0] >= 128)
		step = size; /* everything at once */
	/* A small maximum so the fuzzer reaches the size check. */
	if (eg_frame_dec_new(1 << 16, &dec) != EG_OK)
		abort();
	while (off < size) {
		size_t n = size - off < step ? size - off : step, used, len;
		int rc = eg_frame_dec_feed(dec, data + off, n, &used, NULL);
		const uint8_t *body;

		if (used > n)
			abort();
		off += used;
		if (rc < 0)
			break;
		if (rc == 0) {
			if (used != n)
				abort();
			continue;
		}
		body = eg_frame_dec_body(dec, &len);
		if (body == NULL || len == 0 || len > (1 << 16))
			abort();
		check_body(body, len);
	}
	eg_frame_dec_free(dec);
	return 0;
}
