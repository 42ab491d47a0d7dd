/*
 * server.c - the coordinator's event loop: the TCP server, agent sessions,
 * the protocol state machine, and the hand-over of batches to the database
 * thread (coord.h).
 *
 * A session is HELLO_WAIT -> PROOF_WAIT -> READY.  Before READY only the
 * next handshake message is accepted; the handshake must finish within
 * handshake_ms, and a READY session that sends nothing for idle_ms is
 * closed.  Every read goes through the session's frame decoder (max_frame),
 * every frame through the strict message decoder; any error, an unexpected
 * message type or a write failure closes that session with a logged reason
 * and nothing else.  Output is coalesced per session into one buffer and
 * written with one uv_write at a time; a peer that stops reading while
 * more than OUT_MAX bytes wait for it is closed, so a slow client cannot
 * make the daemon buffer without bound.  Connections beyond max_conns are
 * accepted and closed at once.
 *
 * Leases: the loop remembers which session holds which (trial, attempt,
 * grid), to send CANCEL when a grid is cancelled (the database forgets the
 * owner of a cancelled trial) and to know when a drain is complete.  A
 * session that closes puts its lease owner into the next batch, which
 * requeues its leases at once.  A RESULT is forwarded whoever holds the
 * trial (a reconnecting worker resends results of leases that were
 * requeued meanwhile); the database accepts the first and the loop ACKs
 * every one of them.
 *
 * Threads: everything here runs on the loop thread; the database thread
 * only calls db_notify (uv_async_send).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/json.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "proto/auth.h"
#include "proto/frame.h"
#include "proto/msg.h"

#define OUT_MAX ((size_t)64 << 20) /* unsent bytes before a peer is dropped */
#define WANT_MAX 4096              /* unfilled slots remembered per agent */
#define TICK_MS 100

enum co_state { S_HELLO, S_PROOF, S_READY, S_CLOSING };

struct held {
	int64_t trial, attempt, grid;
};

struct conn {
	uv_tcp_t tcp;
	struct server *srv;
	uint64_t id;
	unsigned slot;
	enum co_state state;
	eg_frame_dec *dec;
	uint8_t nonce[EG_MSG_NONCE_LEN];
	char addr[64];
	char *name, *role, *owner, *targets;
	char *caps; /* HELLO capabilities as JSON, until WELCOME */
	uint64_t started, last_rx; /* uv_now */
	int want;          /* unfilled slots */
	int want_inflight; /* slots asked for in the running batch */
	bool starved;      /* the last lease came back short */
	co_vec(struct held) held;
	eg_buf out, wbuf; /* pending output, output being written */
	uv_write_t wreq;
	bool writing;
};

struct server {
	const struct co_opts *o;
	const eg_proto_token *tok;
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t tick;
	uv_signal_t sigterm, sigint;
	uv_async_t async;
	struct co_db *db;
	bool db_busy;
	struct co_batch *next;
	struct conn **slots; /* max_conns entries */
	unsigned nconns;
	uint64_t gen;
	uint64_t boot;
	uint64_t last_sweep;
	bool draining;
	uint64_t drain_deadline;
	bool closing;
	int exit_code;
	char addr_path[4200], pid_path[4200];
};

static char rdbuf[64 * 1024]; /* the loop reads into one buffer */

static void conn_close(struct conn *c, const char *why);
static void kick(struct server *s);

/* ---- output ---- */

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	c->writing = false;
	eg_buf_reset(&c->wbuf);
	if (status < 0) {
		char why[128];

		snprintf(why, sizeof(why), "write failed: %s",
			 uv_strerror(status));
		conn_close(c, why);
		return;
	}
	if (c->state == S_CLOSING)
		return;
	if (c->out.len > 0) {
		eg_buf t = c->wbuf;
		uv_buf_t b;
		int rc;

		c->wbuf = c->out;
		c->out = t;
		b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
		c->wreq.data = c;
		rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1,
			      on_written);
		if (rc < 0)
			conn_close(c, "write failed");
		else
			c->writing = true;
	}
}

static void flush(struct conn *c)
{
	uv_buf_t b;
	eg_buf t;
	int rc;

	if (c->writing || c->out.len == 0 || c->state == S_CLOSING)
		return;
	t = c->wbuf;
	c->wbuf = c->out;
	c->out = t;
	b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
	c->wreq.data = c;
	rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (rc < 0) {
		eg_buf_reset(&c->wbuf);
		conn_close(c, "write failed");
		return;
	}
	c->writing = true;
}

/* Queues one message; closes the session if it cannot. */
static void send_msg(struct conn *c, const eg_msg *m)
{
	eg_diag d = {{0}};
	int rc;

	if (c->state == S_CLOSING)
		return;
	rc = eg_msg_encode(m, &c->out, c->srv->o->max_frame, &d);
	if (rc != EG_OK || eg_buf_failed(&c->out)) {
		eg_log(EG_LOG_ERROR, "%s: cannot encode %s: %s", c->addr,
		       eg_msg_type_name(m->type), eg_diag_msg(&d, rc));
		conn_close(c, "encoding failed");
		return;
	}
	if (c->out.len + c->wbuf.len > OUT_MAX)
		conn_close(c, "peer is not reading (output limit)");
}

static void send_bye(struct conn *c, const char *reason)
{
	eg_msg m;

	eg_msg_init(&m, EG_MSG_BYE);
	m.reason = (char *)reason;
	send_msg(c, &m);
	m.reason = NULL;
	flush(c);
}

/* ---- sessions ---- */

static struct conn *conn_find(struct server *s, uint64_t id)
{
	unsigned slot = (unsigned)(id & 0xffff);
	struct conn *c;

	if (slot >= (unsigned)s->o->max_conns)
		return NULL;
	c = s->slots[slot];
	return c != NULL && c->id == id && c->state != S_CLOSING ? c : NULL;
}

static void on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	eg_frame_dec_free(c->dec);
	free(c->name);
	free(c->role);
	free(c->owner);
	free(c->targets);
	free(c->caps);
	free(c->held.v);
	eg_buf_free(&c->out);
	eg_buf_free(&c->wbuf);
	free(c);
}

static char *xstrdup(const char *p)
{
	return p != NULL ? strdup(p) : NULL;
}

/* Drops what the next batch says about agent `name` (connected or not),
 * so that it carries only the latest of the two. */
static void agents_forget(struct co_batch *b, const char *name)
{
	for (size_t i = 0; i < b->agents_up.n;) {
		struct co_agent *a = &b->agents_up.v[i];

		if (a->name != NULL && strcmp(a->name, name) == 0) {
			free(a->name);
			free(a->role);
			free(a->caps);
			free(a->addr);
			b->agents_up.v[i] = b->agents_up.v[--b->agents_up.n];
		} else {
			i++;
		}
	}
	for (size_t i = 0; i < b->agents_down.n;) {
		if (b->agents_down.v[i] != NULL &&
		    strcmp(b->agents_down.v[i], name) == 0) {
			free(b->agents_down.v[i]);
			b->agents_down.v[i] =
				b->agents_down.v[--b->agents_down.n];
		} else {
			i++;
		}
	}
}

static void conn_close(struct conn *c, const char *why)
{
	struct server *s = c->srv;

	if (c->state == S_CLOSING)
		return;
	if (why != NULL)
		eg_log(c->state == S_READY ? EG_LOG_INFO : EG_LOG_WARN,
		       "%s%s%s: closed: %s", c->addr, c->name ? " " : "",
		       c->name ? c->name : "", why);
	if (c->state == S_READY) {
		char **o, **n;

		agents_forget(s->next, c->name);
		o = co_push(&s->next->owners_gone);
		n = co_push(&s->next->agents_down);

		if (o != NULL)
			*o = xstrdup(c->owner);
		if (n != NULL)
			*n = xstrdup(c->name);
		kick(s);
	}
	c->state = S_CLOSING;
	s->slots[c->slot] = NULL;
	s->nconns--;
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void held_add(struct conn *c, int64_t trial, int64_t attempt,
		     int64_t grid)
{
	struct held *h = co_push(&c->held);

	if (h != NULL) {
		h->trial = trial;
		h->attempt = attempt;
		h->grid = grid;
	}
}

static void held_del(struct conn *c, int64_t trial)
{
	for (size_t i = 0; i < c->held.n; i++)
		if (c->held.v[i].trial == trial) {
			c->held.v[i] = c->held.v[--c->held.n];
			return;
		}
}

/* capabilities.target (a string or a list of strings) as a JSON array. */
static char *targets_of(const eg_val *caps)
{
	const eg_val *t = eg_val_get(caps, "target");
	eg_buf b = EG_BUF_INIT;
	eg_json j;

	eg_json_init(&j, &b);
	eg_json_arr_begin(&j);
	if (eg_val_type_of(t) == EG_VAL_STR)
		eg_json_str(&j, eg_val_as_str(t));
	for (size_t i = 0; eg_val_type_of(t) == EG_VAL_LIST &&
			   i < eg_val_len(t); i++)
		if (eg_val_type_of(eg_val_at(t, i)) == EG_VAL_STR)
			eg_json_str(&j, eg_val_as_str(eg_val_at(t, i)));
	eg_json_arr_end(&j);
	if (eg_buf_failed(&b))
		return NULL;
	if (b.data == NULL)
		return strdup("[]");
	return b.data;
}

/*
 * PostgreSQL rejects text that is not UTF-8, and one such string would
 * fail the whole batch it travels in, so strings bound for the database
 * are checked here (the protocol expects UTF-8 but the codec does not
 * check it).  Overlong forms, surrogates and code points past U+10FFFF
 * are invalid, as in PostgreSQL.
 */
static bool utf8_valid(const char *p)
{
	const unsigned char *s = (const unsigned char *)p;

	while (*s != 0) {
		unsigned c = *s++, n, cp, min;

		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		for (unsigned i = 0; i < n; i++, s++) {
			if ((*s & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (*s & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

/* Whether every key and string of a tree is UTF-8. */
static bool tree_utf8(const eg_val *v)
{
	switch (eg_val_type_of(v)) {
	case EG_VAL_STR:
		return utf8_valid(eg_val_as_str(v));
	case EG_VAL_MAP:
		for (size_t i = 0; i < eg_val_len(v); i++)
			if (!utf8_valid(eg_val_key_at(v, i)) ||
			    !tree_utf8(eg_val_at(v, i)))
				return false;
		return true;
	case EG_VAL_LIST:
		for (size_t i = 0; i < eg_val_len(v); i++)
			if (!tree_utf8(eg_val_at(v, i)))
				return false;
		return true;
	default:
		return true;
	}
}

/* Replaces every byte of an invalid sequence by '?', in place. */
static void utf8_scrub(char *p)
{
	char one[5];

	for (size_t i = 0; p[i] != '\0';) {
		unsigned c = (unsigned char)p[i];
		size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		size_t k;

		for (k = 0; k < n && p[i + k] != '\0'; k++)
			one[k] = p[i + k];
		one[k] = '\0';
		if (k == n && utf8_valid(one)) {
			i += n;
		} else {
			p[i] = '?';
			i++;
		}
	}
}

static void on_hello(struct conn *c, eg_msg *m)
{
	eg_msg ch;

	if (strcmp(m->role, "worker") != 0 && strcmp(m->role, "hwagent") != 0) {
		send_bye(c, "unknown role");
		conn_close(c, "HELLO with an unknown role");
		return;
	}
	if (!utf8_valid(m->name) || !tree_utf8(m->capabilities)) {
		send_bye(c, "name and capabilities must be UTF-8");
		conn_close(c, "HELLO with invalid UTF-8");
		return;
	}
	c->name = m->name;
	c->role = m->role;
	m->name = m->role = NULL;
	c->targets = targets_of(m->capabilities);
	{
		eg_buf cj = EG_BUF_INIT;

		eg_val_to_json(m->capabilities, &cj);
		c->caps = eg_buf_failed(&cj) ? NULL : cj.data;
	}
	if (c->targets == NULL || c->caps == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	eg_msg_init(&ch, EG_MSG_CHALLENGE);
	eg_proto_nonce(c->nonce);
	memcpy(ch.nonce, c->nonce, sizeof(c->nonce));
	send_msg(c, &ch);
	c->state = S_PROOF;
}

static void on_proof(struct conn *c, eg_msg *m)
{
	struct server *s = c->srv;
	struct co_agent *a;
	eg_diag d = {{0}};
	char owner[512];
	eg_msg w;

	if (eg_proto_verify(s->tok, c->nonce, m->proof, &d) != EG_OK) {
		/* No BYE: a peer without the token learns nothing. */
		conn_close(c, "authentication failed (wrong token)");
		return;
	}
	snprintf(owner, sizeof(owner), "%s/%llx.%llu", c->name,
		 (unsigned long long)s->boot, (unsigned long long)c->id);
	c->owner = strdup(owner);
	agents_forget(s->next, c->name);
	a = co_push(&s->next->agents_up);
	if (c->owner == NULL || a == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	a->name = strdup(c->name);
	a->role = strdup(c->role);
	a->caps = c->caps;
	c->caps = NULL;
	a->addr = strdup(c->addr);
	eg_msg_init(&w, EG_MSG_WELCOME);
	w.version = EG_PROTO_VERSION;
	send_msg(c, &w);
	c->state = S_READY;
	eg_log(EG_LOG_INFO, "%s: agent %s (%s) connected, targets %s",
	       c->addr, c->name, c->role, c->targets);
	kick(s);
}

static void on_ready_msg(struct conn *c, eg_msg *m)
{
	struct server *s = c->srv;
	struct co_batch *b = s->next;

	switch (m->type) {
	case EG_MSG_WANT:
		c->want += (int)m->slots;
		if (c->want > WANT_MAX)
			c->want = WANT_MAX;
		if (m->slots > 0)
			kick(s);
		return;
	case EG_MSG_HEARTBEAT:
		for (size_t i = 0; i < m->nleases; i++) {
			struct co_beat *bt = co_push(&b->beats);

			if (bt == NULL)
				break;
			bt->trial = m->leases[i].trial;
			bt->attempt = m->leases[i].attempt;
			bt->owner = strdup(c->owner);
			bt->ms = s->o->lease_ms;
		}
		kick(s);
		return;
	case EG_MSG_PROGRESS: {
		struct co_progress *p;
		struct co_beat *bt;

		if (!tree_utf8(m->metrics)) {
			eg_log(EG_LOG_WARN, "%s: PROGRESS of trial %lld with "
			       "invalid UTF-8 dropped", c->name,
			       (long long)m->trial);
			return;
		}
		p = co_push(&b->progress);
		bt = co_push(&b->beats);
		if (p != NULL) {
			p->trial = m->trial;
			p->attempt = m->attempt;
			p->metrics = m->metrics;
			m->metrics = NULL;
		}
		if (bt != NULL) {
			bt->trial = m->trial;
			bt->attempt = m->attempt;
			bt->owner = strdup(c->owner);
			bt->ms = s->o->lease_ms;
		}
		kick(s);
		return;
	}
	case EG_MSG_RESULT: {
		struct co_result *r;

		if (!tree_utf8(m->payload)) {
			/* Unstorable: the attempt fails instead (and is
			 * ACKed), so the agent does not resend it forever. */
			struct co_fail *f = co_push(&b->fails);

			eg_log(EG_LOG_WARN, "%s: RESULT of trial %lld with "
			       "invalid UTF-8 recorded as a failure", c->name,
			       (long long)m->trial);
			if (f == NULL) {
				conn_close(c, "out of memory");
				return;
			}
			f->conn = c->id;
			f->trial = m->trial;
			f->attempt = m->attempt;
			f->error = strdup("result payload is not valid UTF-8");
			held_del(c, m->trial);
			kick(s);
			return;
		}
		r = co_push(&b->results);
		if (r == NULL) {
			conn_close(c, "out of memory");
			return;
		}
		r->conn = c->id;
		r->trial = m->trial;
		r->attempt = m->attempt;
		r->agent = strdup(c->name);
		r->payload = m->payload;
		m->payload = NULL;
		held_del(c, m->trial);
		kick(s);
		return;
	}
	case EG_MSG_FAIL: {
		struct co_fail *f = co_push(&b->fails);

		if (f == NULL) {
			conn_close(c, "out of memory");
			return;
		}
		f->conn = c->id;
		f->trial = m->trial;
		f->attempt = m->attempt;
		f->error = m->error;
		m->error = NULL;
		utf8_scrub(f->error);
		held_del(c, m->trial);
		kick(s);
		return;
	}
	case EG_MSG_BYE:
		conn_close(c, m->reason != NULL && m->reason[0] != '\0'
				      ? m->reason
				      : "BYE");
		return;
	default: {
		char why[96];

		snprintf(why, sizeof(why), "unexpected %s from an agent",
			 eg_msg_type_name(m->type));
		conn_close(c, why);
		return;
	}
	}
}

static void on_frame(struct conn *c, const uint8_t *body, size_t len)
{
	eg_diag d = {{0}};
	eg_msg m;
	int rc;

	eg_msg_init(&m, EG_MSG_NONE);
	rc = eg_msg_decode(body, len, &m, &d);
	if (rc != EG_OK) {
		char why[600];

		if (rc == EG_EVERSION && c->state == S_HELLO)
			send_bye(c, d.msg);
		snprintf(why, sizeof(why), "bad message: %s",
			 eg_diag_msg(&d, rc));
		conn_close(c, why);
		return;
	}
	switch (c->state) {
	case S_HELLO:
		if (m.type != EG_MSG_HELLO) {
			conn_close(c, "expected HELLO");
			break;
		}
		on_hello(c, &m);
		break;
	case S_PROOF:
		if (m.type != EG_MSG_PROOF) {
			conn_close(c, "expected PROOF");
			break;
		}
		on_proof(c, &m);
		break;
	case S_READY:
		on_ready_msg(c, &m);
		break;
	case S_CLOSING:
		break;
	}
	eg_msg_clear(&m);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	(void)h;
	(void)size;
	*buf = uv_buf_init(rdbuf, sizeof(rdbuf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = st->data;
	const char *p = buf->base;
	size_t n;

	if (nread < 0) {
		conn_close(c, nread == UV_EOF ? "peer closed the connection"
					      : uv_strerror((int)nread));
		return;
	}
	n = (size_t)nread;
	c->last_rx = uv_now(c->srv->loop);
	while (n > 0 && c->state != S_CLOSING) {
		eg_diag d = {{0}};
		size_t used = 0;
		int rc = eg_frame_dec_feed(c->dec, p, n, &used, &d);

		if (rc < 0) {
			char why[600];

			snprintf(why, sizeof(why), "bad frame: %s",
				 eg_diag_msg(&d, rc));
			conn_close(c, why);
			return;
		}
		p += used;
		n -= used;
		if (rc == 1) {
			size_t len;
			const uint8_t *body = eg_frame_dec_body(c->dec, &len);

			on_frame(c, body, len);
		}
	}
	if (c->state != S_CLOSING)
		flush(c);
}

static void on_connection(uv_stream_t *ls, int status)
{
	struct server *s = ls->data;
	struct conn *c;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	unsigned slot;

	if (status < 0) {
		eg_log(EG_LOG_WARN, "accept: %s", uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || uv_tcp_init(s->loop, &c->tcp) != 0) {
		free(c);
		return;
	}
	c->tcp.data = c;
	c->srv = s;
	c->state = S_HELLO;
	if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
		c->state = S_CLOSING;
		uv_close((uv_handle_t *)&c->tcp, on_closed);
		return;
	}
	snprintf(c->addr, sizeof(c->addr), "?");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		char host[48] = "?";
		int port = 0;

		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			uv_ip4_name(a, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			uv_ip6_name(a, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
		snprintf(c->addr, sizeof(c->addr), "%s:%d", host, port);
	}
	for (slot = 0; slot < (unsigned)s->o->max_conns; slot++)
		if (s->slots[slot] == NULL)
			break;
	if (slot == (unsigned)s->o->max_conns ||
	    eg_frame_dec_new(s->o->max_frame, &c->dec) != EG_OK) {
		eg_log(EG_LOG_WARN, "%s: refused: %u connections open",
		       c->addr, s->nconns);
		c->state = S_CLOSING;
		uv_close((uv_handle_t *)&c->tcp, on_closed);
		return;
	}
	c->slot = slot;
	c->id = (++s->gen << 16) | slot;
	s->slots[slot] = c;
	s->nconns++;
	c->started = c->last_rx = uv_now(s->loop);
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		conn_close(c, "read failed");
}

/* ---- batches ---- */

static bool want_pending(struct server *s)
{
	if (s->draining)
		return false;
	for (int i = 0; i < s->o->max_conns; i++) {
		struct conn *c = s->slots[i];

		if (c != NULL && c->state == S_READY && c->want > 0 &&
		    c->want_inflight == 0 && !c->starved)
			return true;
	}
	return false;
}

/* Hands the next batch to the database thread if it is idle and there is
 * anything to do; adds the WANTs of every agent with unfilled slots. */
static void kick(struct server *s)
{
	struct co_batch *b = s->next, *nb;

	if (s->db_busy || s->db == NULL)
		return;
	if (eg__coord_batch_empty(b) && !want_pending(s))
		return;
	nb = eg__coord_batch_new();
	if (nb == NULL)
		return;
	for (int i = 0; !s->draining && i < s->o->max_conns; i++) {
		struct conn *c = s->slots[i];
		struct co_want *w;

		if (c == NULL || c->state != S_READY || c->want <= 0 ||
		    c->want_inflight > 0 || c->starved)
			continue;
		w = co_push(&b->wants);
		if (w == NULL)
			break;
		w->conn = c->id;
		w->owner = strdup(c->owner);
		w->targets = strdup(c->targets);
		w->slots = c->want > EG_MSG_SLOTS_MAX ? EG_MSG_SLOTS_MAX
						      : c->want;
		c->want_inflight = w->slots;
	}
	s->next = nb;
	s->db_busy = true;
	b->work = true;
	eg__coord_db_submit(s->db, b);
}

static void wake_starved(struct server *s)
{
	for (int i = 0; i < s->o->max_conns; i++)
		if (s->slots[i] != NULL)
			s->slots[i]->starved = false;
}

static void send_cancels(struct server *s, int64_t grid)
{
	int n = 0;

	for (int i = 0; i < s->o->max_conns; i++) {
		struct conn *c = s->slots[i];

		if (c == NULL || c->state != S_READY)
			continue;
		for (size_t k = 0; k < c->held.n; k++) {
			eg_msg m;

			if (c->held.v[k].grid != grid)
				continue;
			eg_msg_init(&m, EG_MSG_CANCEL);
			m.trial = c->held.v[k].trial;
			send_msg(c, &m);
			n++;
			if (c->state == S_CLOSING)
				break;
		}
		if (c->state != S_CLOSING)
			flush(c);
	}
	eg_log(EG_LOG_INFO, "grid %lld cancelled: CANCEL sent for %d "
	       "running trials", (long long)grid, n);
}

static void send_ack(struct server *s, uint64_t conn, int64_t trial,
		     int64_t attempt)
{
	struct conn *c = conn_find(s, conn);
	eg_msg m;

	if (c == NULL)
		return;
	eg_msg_init(&m, EG_MSG_ACK);
	m.trial = trial;
	m.attempt = attempt;
	send_msg(c, &m);
}

static void apply(struct server *s, struct co_batch *b)
{
	bool wake = false;

	for (size_t i = 0; i < b->notes.n; i++) {
		if (b->notes.v[i].kind == CO_NOTE_GRID) {
			eg_log(EG_LOG_INFO, "grid %lld submitted",
			       (long long)b->notes.v[i].grid);
			wake = true;
		} else {
			send_cancels(s, b->notes.v[i].grid);
		}
	}
	if (b->rc != EG_OK) {
		if (!eg__coord_batch_empty(b))
			eg_log(EG_LOG_ERROR, "database batch failed, nothing "
			       "acknowledged (agents resend): %s", b->err);
		/* Wants that got nothing: ask again later. */
		for (size_t i = 0; i < b->wants.n; i++) {
			struct conn *c = conn_find(s, b->wants.v[i].conn);

			if (c != NULL)
				c->want_inflight = 0;
		}
		return;
	}
	for (size_t i = 0; i < b->results.n; i++) {
		const struct co_result *r = &b->results.v[i];

		if (!r->accepted)
			eg_log(EG_LOG_INFO, "trial %lld: result of attempt "
			       "%lld from %s ignored (already finished)",
			       (long long)r->trial, (long long)r->attempt,
			       r->agent);
		send_ack(s, r->conn, r->trial, r->attempt);
	}
	for (size_t i = 0; i < b->fails.n; i++) {
		const struct co_fail *f = &b->fails.v[i];

		eg_log(EG_LOG_INFO, "trial %lld attempt %lld failed: %.200s",
		       (long long)f->trial, (long long)f->attempt, f->error);
		send_ack(s, f->conn, f->trial, f->attempt);
	}
	if (b->requeued > 0 || b->failed > 0)
		eg_log(EG_LOG_INFO, "leases: %lld requeued, %lld failed",
		       (long long)b->requeued, (long long)b->failed);
	if (b->grids_done > 0)
		eg_log(EG_LOG_INFO, "%lld grid(s) done",
		       (long long)b->grids_done);
	if (b->accepted > 0 || b->fails_applied > 0 || b->requeued > 0)
		wake = true;
	for (size_t i = 0; i < b->wants.n; i++) {
		struct co_want *w = &b->wants.v[i];
		struct conn *c = conn_find(s, w->conn);

		if (c == NULL) {
			/* Gone while its leases were being taken. */
			if (w->nleases > 0) {
				char **o = co_push(&s->next->owners_gone);

				if (o != NULL)
					*o = xstrdup(w->owner);
			}
			continue;
		}
		c->want_inflight = 0;
		c->want -= (int)w->nleases;
		if (c->want < 0)
			c->want = 0;
		if ((int)w->nleases < w->slots)
			c->starved = true;
		for (size_t k = 0; k < w->nleases; k++)
			held_add(c, w->leases[k].trial, w->leases[k].attempt,
				 w->leases[k].grid);
		if (w->frames.len > 0) {
			eg_buf_append(&c->out, w->frames.data, w->frames.len);
			if (eg_buf_failed(&c->out))
				conn_close(c, "out of memory");
		}
	}
	if (wake)
		wake_starved(s);
	for (int i = 0; i < s->o->max_conns; i++)
		if (s->slots[i] != NULL)
			flush(s->slots[i]);
}

static void shutdown_now(struct server *s);

static void on_async(uv_async_t *a)
{
	struct server *s = a->data;
	struct co_batch *b = eg__coord_db_take(s->db), *nx;

	for (; b != NULL; b = nx) {
		nx = b->next;
		if (b->work)
			s->db_busy = false;
		apply(s, b);
		eg__coord_batch_free(b);
	}
	kick(s);
}

static void db_notify(void *ud)
{
	struct server *s = ud;

	uv_async_send(&s->async);
}

/* ---- timers, signals, shutdown ---- */

static size_t leases_held(struct server *s)
{
	size_t n = 0;

	for (int i = 0; i < s->o->max_conns; i++)
		if (s->slots[i] != NULL && s->slots[i]->state == S_READY)
			n += s->slots[i]->held.n;
	return n;
}

static void on_tick(uv_timer_t *t)
{
	struct server *s = t->data;
	uint64_t now = uv_now(s->loop);

	for (int i = 0; i < s->o->max_conns; i++) {
		struct conn *c = s->slots[i];

		if (c == NULL)
			continue;
		if (c->state != S_READY &&
		    now - c->started > (uint64_t)s->o->handshake_ms)
			conn_close(c, "handshake timeout");
		else if (c->state == S_READY &&
			 now - c->last_rx > (uint64_t)s->o->idle_ms)
			conn_close(c, "idle timeout");
	}
	if (now - s->last_sweep >= (uint64_t)s->o->sweep_ms) {
		s->last_sweep = now;
		s->next->sweep = true;
		wake_starved(s);
	}
	if (s->draining) {
		bool idle = !s->db_busy && eg__coord_batch_empty(s->next);

		if ((leases_held(s) == 0 && idle) ||
		    (now >= s->drain_deadline && idle) ||
		    now >= s->drain_deadline + 5000) {
			shutdown_now(s);
			return;
		}
		s->next->sweep = false;
	}
	kick(s);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void shutdown_now(struct server *s)
{
	if (s->closing)
		return;
	s->closing = true;
	eg_log(EG_LOG_INFO, "drained (%zu leases still held); exiting",
	       leases_held(s));
	for (int i = 0; i < s->o->max_conns; i++) {
		struct conn *c = s->slots[i];

		if (c == NULL)
			continue;
		/* No BYE: agents treat BYE as "stop", but a coordinator that
		 * exits is usually replaced, and they should reconnect to the
		 * next one with their unACKed results.  Leases of agents still
		 * connected stay leased: they expire, or the agent adopts them
		 * after reconnecting. */
		free(c->owner);
		c->owner = NULL;
		c->state = S_CLOSING;
		s->slots[i] = NULL;
		uv_close((uv_handle_t *)&c->tcp, on_closed);
	}
	uv_timer_stop(&s->tick);
	/* Join the database thread before the async handle closes, so it
	 * never signals a closed handle. */
	eg__coord_db_stop(s->db);
	s->db = NULL;
	uv_walk(s->loop, close_walk, NULL);
	uv_stop(s->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *s = h->data;

	if (s->draining)
		return;
	s->draining = true;
	s->drain_deadline = uv_now(s->loop) + (uint64_t)s->o->drain_ms;
	eg_log(EG_LOG_INFO, "%s: draining (no new leases; waiting up to %d ms "
	       "for %zu leases)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
	       s->o->drain_ms, leases_held(s));
}

/* Writes `text` to path atomically (temp file + rename). */
static int write_atomic(const char *path, const char *text)
{
	char tmp[4300];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	f = fopen(tmp, "w");
	if (f == NULL)
		return -1;
	fputs(text, f);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		return -1;
	}
	fclose(f);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int eg__coord_run(const struct co_opts *o, const eg_proto_token *tok,
		  const char *conninfo)
{
	struct server srv, *s = &srv;
	struct sockaddr_storage ss;
	char host[64], text[128], rundir[4096];
	int len = sizeof(ss), rc, port = 0;

	memset(s, 0, sizeof(*s));
	s->o = o;
	s->tok = tok;
	s->exit_code = 1;
	s->loop = uv_default_loop();
	s->boot = (uint64_t)time(NULL);
	s->slots = calloc((size_t)o->max_conns, sizeof(*s->slots));
	s->next = eg__coord_batch_new();
	if (s->slots == NULL || s->next == NULL) {
		eg_log(EG_LOG_ERROR, "out of memory");
		goto out;
	}
	s->next->sweep = true; /* recover expired leases at once */
	if (uv_ip4_addr(o->listen_host, o->listen_port,
			(struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(o->listen_host, o->listen_port,
			(struct sockaddr_in6 *)&ss) != 0) {
		eg_log(EG_LOG_ERROR, "--listen: bad address %s",
		       o->listen_host);
		goto out;
	}
	uv_tcp_init(s->loop, &s->listener);
	s->listener.data = s;
	rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
	if (rc != 0) {
		eg_log(EG_LOG_ERROR, "listen on %s:%d: %s", o->listen_host,
		       o->listen_port, uv_strerror(rc));
		fprintf(stderr, "expgrid-coordinator: listen on %s:%d: %s\n",
			o->listen_host, o->listen_port, uv_strerror(rc));
		goto out;
	}
	uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
	if (ss.ss_family == AF_INET6) {
		uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		snprintf(text, sizeof(text), "[%s]:%d\n", host, port);
	} else {
		uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		snprintf(text, sizeof(text), "%s:%d\n", host, port);
	}
	if (eg__coord_db_start(conninfo, o->lease_ms, o->max_frame, db_notify,
			       s, &s->db) != EG_OK) {
		eg_log(EG_LOG_ERROR, "cannot start the database thread");
		goto out;
	}
	uv_async_init(s->loop, &s->async, on_async);
	s->async.data = s;
	uv_timer_init(s->loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
	uv_signal_init(s->loop, &s->sigterm);
	uv_signal_init(s->loop, &s->sigint);
	s->sigterm.data = s->sigint.data = s;
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	signal(SIGPIPE, SIG_IGN);

	snprintf(rundir, sizeof(rundir), "%s/run", o->home);
	mkdir(rundir, 0755);
	snprintf(s->addr_path, sizeof(s->addr_path), "%s/coordinator.addr",
		 rundir);
	snprintf(s->pid_path, sizeof(s->pid_path), "%s/coordinator.pid",
		 rundir);
	{
		char pid[32];

		snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (write_atomic(s->pid_path, pid) != 0 ||
		    write_atomic(s->addr_path, text) != 0) {
			eg_log(EG_LOG_ERROR, "cannot write %s: %s", rundir,
			       strerror(errno));
			goto out;
		}
	}
	eg_log(EG_LOG_INFO, "listening on %.*s (lease %lld ms, max %d "
	       "connections)", (int)strlen(text) - 1, text,
	       (long long)o->lease_ms, o->max_conns);
	kick(s);
	uv_run(s->loop, UV_RUN_DEFAULT);
	/* Let the close callbacks run. */
	uv_run(s->loop, UV_RUN_DEFAULT);
	s->exit_code = 0;
	unlink(s->addr_path);
	unlink(s->pid_path);
out:
	if (s->db != NULL)
		eg__coord_db_stop(s->db);
	eg__coord_batch_free(s->next);
	free(s->slots);
	if (s->exit_code != 0) {
		uv_walk(s->loop, close_walk, NULL);
		uv_run(s->loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(s->loop);
	return s->exit_code;
}
