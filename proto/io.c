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
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t n, eg_diag *diag);

int eg_proto_write_all(int fd, const void *p, size_t n, eg_diag *diag)
{
	return write_all(fd, p, n, diag);
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

int eg_proto_connect(const char *addr, int connect_timeout_ms,
		     int send_timeout_s, int *out, eg_diag *d)
{
	char host[512];
	const char *colon = strrchr(addr, ':');
	const char *h = addr; /* the host part; addr stays whole for messages */
	struct addrinfo hints = {0}, *res = NULL, *ai;
	int fd = -1, rc, one = 1;
	size_t hl;

	if (colon == NULL || colon == addr || colon[1] == '\0')
		return eg_diag_set(d, EG_EINVAL,
				   "coordinator address '%s' is not host:port",
				   addr);
	hl = (size_t)(colon - addr);
	if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return eg_diag_set(d, EG_EINVAL, "host name too long");
	memcpy(host, h, hl);
	host[hl] = '\0';
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc != 0)
		return eg_diag_set(d, EG_EIO, "%s: %s", addr, gai_strerror(rc));
	rc = EG_EIO;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd p;
		int err = 0;
		socklen_t el = sizeof(err);
		struct timeval tv = {send_timeout_s, 0};

		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			if (errno != EINPROGRESS)
				goto next;
			p = (struct pollfd){fd, POLLOUT, 0};
			if (poll(&p, 1, connect_timeout_ms) != 1) {
				errno = ETIMEDOUT;
				goto next;
			}
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err != 0) {
				errno = err;
				goto next;
			}
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		*out = fd;
		rc = EG_OK;
		break;
next:
		eg_diag_set(d, EG_EIO, "connect %s: %s", addr, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return rc;
}

int eg_proto_handshake(int fd, eg_frame_dec *dec, const eg_proto_token *t,
		       const char *role, const char *name, eg_val *caps,
		       int timeout_ms, bool *closed_after_proof, eg_diag *d)
{
	eg_msg m;
	int rc;

	*closed_after_proof = false;
	eg_msg_init(&m, EG_MSG_HELLO);
	m.version = EG_PROTO_VERSION;
	m.role = strdup(role);
	m.name = strdup(name);
	m.capabilities = caps;
	if (m.role == NULL || m.name == NULL || caps == NULL) {
		eg_msg_clear(&m);
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	}
	rc = eg_proto_send(fd, &m, 0, d);
	eg_msg_clear(&m);
	if (rc == EG_OK)
		rc = eg_proto_recv(fd, dec, &m, timeout_ms, d);
	if (rc != EG_OK)
		goto out;
	if (m.type == EG_MSG_BYE) {
		rc = eg_diag_set(d, EG_EAUTH, "coordinator said BYE to HELLO: %s",
				 m.reason ? m.reason : "(no reason)");
		goto out;
	}
	if (m.type != EG_MSG_CHALLENGE) {
		rc = eg_diag_set(d, EG_EPROTO, "expected CHALLENGE, got %s",
				 eg_msg_type_name(m.type));
		goto out;
	}
	{
		uint8_t nonce[EG_MSG_NONCE_LEN];

		memcpy(nonce, m.nonce, sizeof(nonce));
		eg_msg_clear(&m);
		eg_msg_init(&m, EG_MSG_PROOF);
		eg_proto_proof(t, nonce, m.proof);
	}
	rc = eg_proto_send(fd, &m, 0, d);
	eg_msg_clear(&m);
	if (rc == EG_OK)
		rc = eg_proto_recv(fd, dec, &m, timeout_ms, d);
	if (rc == EG_ECLOSED || rc == EG_ETRUNCATED) {
		*closed_after_proof = true;
		rc = eg_diag_set(d, EG_ECLOSED, "connection closed after PROOF");
		goto out;
	}
	if (rc != EG_OK)
		goto out;
	if (m.type == EG_MSG_BYE)
		rc = eg_diag_set(d, EG_EAUTH, "%s",
				 m.reason ? m.reason : "(no reason given)");
	else if (m.type != EG_MSG_WELCOME)
		rc = eg_diag_set(d, EG_EPROTO, "expected WELCOME, got %s",
				 eg_msg_type_name(m.type));
out:
	eg_msg_clear(&m);
	return rc;
}
