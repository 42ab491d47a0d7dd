/*
 * io.c - blocking message transfer.  Reads ask the decoder how many bytes
 * the current header or body still needs and read at most that much (up to
 * a 64 KiB stack chunk), so no bytes of a following frame are consumed and
 * nothing has to be kept between calls.  The deadline is absolute
 * (CLOCK_MONOTONIC), so a peer trickling one byte per poll cannot stretch
 * the timeout.
 */
#include "proto/io.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t n, eg_diag *diag)
{
	bool is_sock = true;

	while (n > 0) {
		ssize_t w = is_sock ? send(fd, p, n, MSG_NOSIGNAL)
				    : write(fd, p, n);

		if (w < 0 && errno == ENOTSOCK && is_sock) {
			is_sock = false; /* a pipe, in tests */
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return eg_diag_set(diag, eg_err_from_errno(errno),
					   "send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return EG_OK;
}

int eg_proto_send(int fd, const eg_msg *m, size_t max, eg_diag *diag)
{
	eg_buf b = EG_BUF_INIT;
	int rc = eg_msg_encode(m, &b, max, diag);

	if (rc == EG_OK)
		rc = write_all(fd, b.data, b.len, diag);
	eg_buf_free(&b);
	return rc;
}

int eg_proto_recv(int fd, eg_frame_dec *dec, eg_msg *m, int timeout_ms,
		  eg_diag *diag)
{
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
	char chunk[CHUNK];

	eg_msg_clear(m);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		size_t want = eg_frame_dec_want(dec), used;
		const uint8_t *body;
		ssize_t r;
		int wait = -1, rc;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				goto timeout;
			wait = (int)(left > 1 << 30 ? 1 << 30 : left);
		}
		rc = poll(&pfd, 1, wait);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return eg_diag_set(diag, eg_err_from_errno(errno),
					   "poll: %s", strerror(errno));
		if (rc == 0)
			goto timeout;
		r = read(fd, chunk, want < sizeof(chunk) ? want : sizeof(chunk));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return eg_diag_set(diag, eg_err_from_errno(errno),
					   "recv: %s", strerror(errno));
		if (r == 0)
			return eg_frame_dec_partial(dec)
				       ? eg_diag_set(diag, EG_ETRUNCATED,
						     "connection closed inside "
						     "a frame")
				       : eg_diag_set(diag, EG_ECLOSED,
						     "connection closed");
		rc = eg_frame_dec_feed(dec, chunk, (size_t)r, &used, diag);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		body = eg_frame_dec_body(dec, &want);
		return eg_msg_decode(body, want, m, diag);
	}
timeout:
	return eg_diag_set(diag, EG_ETIMEOUT, "no message within %d ms",
			   timeout_ms);
}
