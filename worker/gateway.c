/*
 * gateway.c - rank 0 of expgrid-worker: the one connection to the
 * coordinator, and the dispatcher of trials onto compute slots.
 *
 * Slots are ranks 1..N-1, or with a single rank one local job (job.c) that
 * runs in a thread of this process.  The loop sleeps in poll() on the socket
 * and the local job's pipe with a timeout that grows from 1 ms after any
 * activity to 20 ms when idle (MPI_Iprobe has no descriptor to poll), and is
 * bounded by the next timer, so an idle gateway costs well under 1 % of a
 * core.
 *
 * Invariants:
 *   - a slot is busy from the ASSIGN sent to it until its RESULT or FAIL
 *     comes back; only then is it offered again.  WANT is additive on the
 *     coordinator's side, so `asked` counts the slots requested on this
 *     connection and not yet filled, and a WANT asks only for the rest;
 *   - every RESULT and FAIL is kept, encoded, in `un` until the coordinator
 *     ACKs that [trial, attempt] (it does so once the row is durable); after
 *     a reconnect all of them are sent again before anything else, so a
 *     result survives a coordinator or network failure, and the
 *     coordinator's once-per-trial rule makes the resend harmless;
 *   - computing never waits for the connection: a disconnected gateway keeps
 *     collecting results while it reconnects with exponential backoff
 *     (100 ms doubling to 2 s), re-reading $EXPGRID_HOME/run/coordinator.addr
 *     each time because a restarted coordinator may listen on a new port;
 *   - a handshake the coordinator refuses (BYE or close after PROOF, the
 *     latter three times running) is final: the whole MPI job exits
 *     non-zero with a message saying so, since retrying a wrong token only
 *     fills logs;
 *   - SIGTERM or a BYE from the coordinator cancels the running trials (no
 *     FAIL is sent: the dropped connection returns their leases to pending,
 *     which is what a stopped worker means), tells the compute ranks BYE,
 *     and exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/auth.h"
#include "proto/frame.h"
#include "proto/io.h"
#include "worker/worker_int.h"

#define IDLE_MAX_MS 20
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CONNECT_TIMEOUT_MS 2000
#define HANDSHAKE_TIMEOUT_MS 5000
#define SEND_TIMEOUT_S 10
#define DEFAULT_LEASE_MS 30000
#define PROOF_CLOSES_MAX 3

enum { EXIT_REFUSED = 3 };

struct slot {
	int rank; /* 0: the local job */
	bool busy;
	bool dead; /* a trial could not be handed to it: never offered again */
	int64_t trial, attempt;
};

struct unacked {
	int64_t trial, attempt;
	eg_buf frame;
};

struct gw {
	const eg__wopts *o;
	eg_proto_token *token;
	char name[EG_MSG_NAME_MAX];
	int fd;
	eg_frame_dec *dec;
	char addr[512];
	struct slot *slots;
	int nslots;
	eg__job *job; /* single-rank mode only */
	eg__outq *q;
	eg_msg *queue; /* ASSIGNs beyond free slots, oldest first */
	size_t nqueue, capqueue;
	struct unacked *un;
	size_t nun, capun;
	int64_t lease_ms;
	int64_t next_hb, next_connect;
	int backoff_ms;
	int proof_closes;
	bool connected_once, warned_down, stop, refused;
	int asked; /* slots WANTed on this connection, not yet ASSIGNed */
};

/* ---- the connection ---- */

/* The coordinator's host:port: --coordinator / EXPGRID_COORDINATOR, else
 * the file the coordinator writes when it listens. */
static int find_addr(struct gw *g, eg_diag *d)
{
	char path[4096];
	FILE *f;
	size_t n;

	if (g->o->coordinator != NULL) {
		snprintf(g->addr, sizeof(g->addr), "%s", g->o->coordinator);
		return EG_OK;
	}
	eg__run_path(path, sizeof(path), g->o->home, "coordinator.addr");
	f = fopen(path, "r");
	if (f == NULL)
		return eg_diag_set(d, EG_ENOENT,
				   "%s: %s (is the coordinator running? set "
				   "EXPGRID_COORDINATOR otherwise)",
				   path, strerror(errno));
	n = fread(g->addr, 1, sizeof(g->addr) - 1, f);
	fclose(f);
	g->addr[n] = '\0';
	while (n > 0 && (g->addr[n - 1] == '\n' || g->addr[n - 1] == ' ' ||
			 g->addr[n - 1] == '\r' || g->addr[n - 1] == '\t'))
		g->addr[--n] = '\0';
	if (n == 0)
		return eg_diag_set(d, EG_ENOENT, "%s is empty", path);
	return EG_OK;
}

/* HELLO, CHALLENGE, PROOF, WELCOME.  EG_EAUTH means refused for good. */
static int handshake(struct gw *g, int fd, eg_diag *d)
{
	eg_val *caps = eg_val_map(), *targets = eg_val_list();
	bool after_proof;
	int rc;

	/* eg_val_set and eg_val_push own their item even when they fail. */
	rc = eg_val_set(caps, "target", targets);
	if (rc == EG_OK)
		rc = eg_val_push(targets, eg_val_str("cpu"));
	if (rc == EG_OK)
		rc = eg_val_set_int(caps, "slots", g->nslots);
	if (rc != EG_OK) {
		eg_val_free(caps);
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	}
	rc = eg_proto_handshake(fd, g->dec, g->token, "worker", g->name, caps,
				HANDSHAKE_TIMEOUT_MS, &after_proof, d);
	if (after_proof && ++g->proof_closes >= PROOF_CLOSES_MAX)
		rc = eg_diag_set(d, EG_EAUTH, "the coordinator closed the "
				 "connection after our proof %d times",
				 g->proof_closes);
	if (rc == EG_OK)
		g->proof_closes = 0;
	return rc;
}

static void disconnect(struct gw *g, const char *why)
{
	if (g->fd < 0)
		return;
	eg_log(EG_LOG_WARN, "lost the coordinator at %s: %s; reconnecting",
	       g->addr, why);
	close(g->fd);
	g->fd = -1;
	eg_frame_dec_reset(g->dec);
	g->backoff_ms = BACKOFF_MIN_MS;
	g->next_connect = eg__now_ms() + g->backoff_ms;
}

static void send_msg(struct gw *g, const eg_msg *m)
{
	eg_diag d = {{0}};
	int rc;

	if (g->fd < 0)
		return;
	rc = eg_proto_send(g->fd, m, 0, &d);
	if (rc != EG_OK)
		disconnect(g, eg_diag_msg(&d, rc));
}

static int free_slots(const struct gw *g)
{
	int n = 0;

	for (int i = 0; i < g->nslots; i++)
		n += !g->slots[i].busy;
	n -= (int)g->nqueue;
	return n > 0 ? n : 0;
}

/* WANT is additive (the coordinator adds it to the slots it still owes
 * this connection and fills them as trials appear), so ask only for free
 * slots not already asked for. */
static void send_want(struct gw *g)
{
	eg_msg m;
	int more = free_slots(g) - g->asked;

	if (more <= 0 || g->fd < 0)
		return;
	eg_msg_init(&m, EG_MSG_WANT);
	m.slots = more;
	g->asked += more;
	send_msg(g, &m);
}

static void send_heartbeat(struct gw *g)
{
	eg_msg m;
	size_t n = 0;

	g->next_hb = eg__now_ms() + g->lease_ms / 3;
	eg_msg_init(&m, EG_MSG_HEARTBEAT);
	m.leases = calloc((size_t)g->nslots + g->nqueue + 1, sizeof(*m.leases));
	if (m.leases == NULL)
		return;
	for (int i = 0; i < g->nslots; i++)
		if (g->slots[i].busy && !g->slots[i].dead)
			m.leases[n++] = (eg_msg_lease){g->slots[i].trial,
						       g->slots[i].attempt};
	for (size_t i = 0; i < g->nqueue; i++)
		m.leases[n++] = (eg_msg_lease){g->queue[i].trial,
					       g->queue[i].attempt};
	m.nleases = n;
	/* Sent also when empty: it keeps an idle session from the
	 * coordinator's idle timeout. */
	send_msg(g, &m);
	eg_msg_clear(&m);
}

/* After WELCOME: unACKed results first, then capacity. */
static void on_connected(struct gw *g)
{
	eg_diag d = {{0}};

	eg_log(EG_LOG_INFO, "%s coordinator at %s as %s (%d slot%s)",
	       g->connected_once ? "reconnected to" : "connected to", g->addr,
	       g->name, g->nslots, g->nslots == 1 ? "" : "s");
	if (g->nun > 0)
		eg_log(EG_LOG_INFO, "resending %zu unacknowledged result%s",
		       g->nun, g->nun == 1 ? "" : "s");
	g->connected_once = true;
	g->warned_down = false;
	g->asked = 0; /* a new connection owes us nothing */
	for (size_t i = 0; i < g->nun && g->fd >= 0; i++) {
		int rc = eg_proto_write_all(g->fd, g->un[i].frame.data,
				   g->un[i].frame.len, &d);

		if (rc != EG_OK)
			disconnect(g, eg_diag_msg(&d, rc));
	}
	send_heartbeat(g);
	send_want(g);
}

static void try_connect(struct gw *g)
{
	eg_diag d = {{0}};
	int fd = -1, rc;

	rc = find_addr(g, &d);
	if (rc == EG_OK)
		rc = eg_proto_connect(g->addr, CONNECT_TIMEOUT_MS, SEND_TIMEOUT_S,
				      &fd, &d);
	if (rc == EG_OK) {
		eg_frame_dec_reset(g->dec);
		rc = handshake(g, fd, &d);
	}
	if (rc == EG_OK) {
		g->fd = fd;
		g->backoff_ms = BACKOFF_MIN_MS;
		on_connected(g);
		return;
	}
	if (fd >= 0)
		close(fd);
	if (rc == EG_EAUTH) {
		fprintf(stderr,
			"expgrid-worker: the coordinator at %s refused the "
			"handshake: %s (check EXPGRID_TOKEN or "
			"$EXPGRID_HOME/run/token)\n",
			g->addr, eg_diag_msg(&d, rc));
		eg_log(EG_LOG_ERROR, "handshake refused by %s: %s", g->addr,
		       eg_diag_msg(&d, rc));
		g->refused = true;
		g->stop = true;
		return;
	}
	if (!g->warned_down) {
		eg_log(EG_LOG_WARN, "cannot reach the coordinator: %s; "
				    "retrying with backoff",
		       eg_diag_msg(&d, rc));
		g->warned_down = true;
	} else {
		eg_log(EG_LOG_DEBUG, "reconnect: %s", eg_diag_msg(&d, rc));
	}
	g->next_connect = eg__now_ms() + g->backoff_ms;
	g->backoff_ms = g->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							   : g->backoff_ms * 2;
}

/* ---- slots ---- */

static void keep_result(struct gw *g, eg_msg *m);

static void dispatch(struct gw *g, struct slot *s, eg_msg *assign)
{
	eg_diag d = {{0}};
	int rc;

	s->busy = true;
	s->trial = assign->trial;
	s->attempt = assign->attempt;
	rc = s->rank == 0 ? eg__job_start(g->job, assign, &d)
			  : eg__outq_send(g->q, s->rank, assign, &d);
	if (rc != EG_OK) {
		/* A rank we cannot reach must not be offered again, so the
		 * slot stays busy; its trial is reported failed at once (not
		 * left to a lease that heartbeats would renew forever). */
		eg_msg fail;

		eg_log(EG_LOG_ERROR, "trial %lld to rank %d: %s",
		       (long long)assign->trial, s->rank, eg_diag_msg(&d, rc));
		s->dead = true;
		eg_msg_init(&fail, EG_MSG_FAIL);
		fail.trial = assign->trial;
		fail.attempt = assign->attempt;
		fail.error = strdup(eg_diag_msg(&d, rc));
		if (fail.error != NULL)
			keep_result(g, &fail);
		eg_msg_clear(&fail);
		return;
	}
	eg_log(EG_LOG_INFO, "trial %lld attempt %lld -> rank %d",
	       (long long)assign->trial, (long long)assign->attempt, s->rank);
}

static struct slot *idle_slot(struct gw *g)
{
	for (int i = 0; i < g->nslots; i++)
		if (!g->slots[i].busy)
			return &g->slots[i];
	return NULL;
}

static struct slot *slot_of_rank(struct gw *g, int rank)
{
	for (int i = 0; i < g->nslots; i++)
		if (g->slots[i].rank == rank)
			return &g->slots[i];
	return NULL;
}

/* Takes ownership of *m's contents (leaves it cleared). */
static void keep_result(struct gw *g, eg_msg *m)
{
	struct unacked *u;
	eg_diag d = {{0}};
	int rc;

	if (g->nun == g->capun) {
		size_t cap = g->capun ? g->capun * 2 : 16;
		struct unacked *v = realloc(g->un, cap * sizeof(*v));

		if (v == NULL) {
			eg_log(EG_LOG_ERROR, "out of memory keeping a result");
			return;
		}
		g->un = v;
		g->capun = cap;
	}
	u = &g->un[g->nun];
	u->trial = m->trial;
	u->attempt = m->attempt;
	u->frame = (eg_buf)EG_BUF_INIT;
	rc = eg_msg_encode(m, &u->frame, 0, &d);
	if (rc != EG_OK) {
		/* Too big or invalid: report it as a failure instead, so the
		 * trial does not hang until its lease expires. */
		eg_buf_free(&u->frame);
		eg_msg tmp;

		eg_log(EG_LOG_ERROR, "trial %lld: result not sendable: %s",
		       (long long)m->trial, eg_diag_msg(&d, rc));
		eg_msg_init(&tmp, EG_MSG_FAIL);
		tmp.trial = m->trial;
		tmp.attempt = m->attempt;
		tmp.error = strdup(eg_diag_msg(&d, rc));
		if (tmp.error == NULL ||
		    eg_msg_encode(&tmp, &u->frame, 0, &d) != EG_OK) {
			eg_msg_clear(&tmp);
			eg_buf_free(&u->frame);
			return;
		}
		eg_msg_clear(&tmp);
	}
	g->nun++;
	if (g->fd >= 0) {
		rc = eg_proto_write_all(g->fd, u->frame.data, u->frame.len, &d);
		if (rc != EG_OK)
			disconnect(g, eg_diag_msg(&d, rc));
	}
}

/* An event from a compute slot (PROGRESS, RESULT, FAIL). */
static void on_event(struct gw *g, struct slot *s, eg_msg *m)
{
	switch (m->type) {
	case EG_MSG_PROGRESS:
		send_msg(g, m);
		return;
	case EG_MSG_RESULT:
	case EG_MSG_FAIL:
		if (m->type == EG_MSG_FAIL)
			eg_log(EG_LOG_INFO, "trial %lld attempt %lld failed: %s",
			       (long long)m->trial, (long long)m->attempt,
			       m->error);
		else
			eg_log(EG_LOG_INFO, "trial %lld attempt %lld done",
			       (long long)m->trial, (long long)m->attempt);
		keep_result(g, m);
		if (s != NULL && s->busy && s->trial == m->trial) {
			s->busy = false;
			s->dead = false;
			if (g->nqueue > 0) {
				eg_msg next = g->queue[0];

				memmove(g->queue, g->queue + 1,
					(g->nqueue - 1) * sizeof(*g->queue));
				g->nqueue--;
				dispatch(g, s, &next);
				eg_msg_clear(&next);
			} else if (!g->stop) {
				send_want(g);
			}
		}
		return;
	default:
		eg_log(EG_LOG_WARN, "rank %d sent %s; ignored",
		       s ? s->rank : -1, eg_msg_type_name(m->type));
	}
}

static void on_cancel(struct gw *g, int64_t trial)
{
	eg_log(EG_LOG_INFO, "cancel trial %lld", (long long)trial);
	for (size_t i = 0; i < g->nqueue; i++) {
		if (g->queue[i].trial == trial) {
			eg_msg f;

			eg_msg_init(&f, EG_MSG_FAIL);
			f.trial = trial;
			f.attempt = g->queue[i].attempt;
			f.error = strdup("cancelled");
			eg_msg_clear(&g->queue[i]);
			memmove(g->queue + i, g->queue + i + 1,
				(g->nqueue - i - 1) * sizeof(*g->queue));
			g->nqueue--;
			if (f.error != NULL)
				keep_result(g, &f);
			eg_msg_clear(&f);
			return;
		}
	}
	for (int i = 0; i < g->nslots; i++) {
		struct slot *s = &g->slots[i];
		eg_msg c;
		eg_diag d = {{0}};

		if (!s->busy || s->trial != trial)
			continue;
		if (s->rank == 0) {
			eg__job_cancel(g->job, trial);
			continue;
		}
		eg_msg_init(&c, EG_MSG_CANCEL);
		c.trial = trial;
		if (eg__outq_send(g->q, s->rank, &c, &d) != EG_OK)
			eg_log(EG_LOG_ERROR, "cancel to rank %d: %s", s->rank,
			       eg_diag_msg(&d, EG_EMPI));
	}
}

static void on_ack(struct gw *g, int64_t trial, int64_t attempt)
{
	for (size_t i = 0; i < g->nun; i++) {
		if (g->un[i].trial == trial && g->un[i].attempt == attempt) {
			eg_buf_free(&g->un[i].frame);
			g->un[i] = g->un[--g->nun];
			return;
		}
	}
}

/* A message from the coordinator; takes ownership of *m's contents. */
static void on_coord(struct gw *g, eg_msg *m)
{
	struct slot *s;

	switch (m->type) {
	case EG_MSG_ASSIGN:
		if (g->asked > 0)
			g->asked--;
		if (m->lease_ms < g->lease_ms || g->lease_ms == DEFAULT_LEASE_MS) {
			g->lease_ms = m->lease_ms;
			if (g->next_hb > eg__now_ms() + g->lease_ms / 3)
				g->next_hb = eg__now_ms() + g->lease_ms / 3;
		}
		s = idle_slot(g);
		if (s != NULL) {
			dispatch(g, s, m);
			break;
		}
		/* More than we asked for (a WANT crossed a finished trial):
		 * hold it, heartbeats cover its lease. */
		if (g->nqueue == g->capqueue) {
			size_t cap = g->capqueue ? g->capqueue * 2 : 4;
			eg_msg *v = realloc(g->queue, cap * sizeof(*v));

			if (v == NULL)
				break;
			g->queue = v;
			g->capqueue = cap;
		}
		g->queue[g->nqueue++] = *m;
		eg_msg_init(m, EG_MSG_NONE);
		break;
	case EG_MSG_CANCEL:
		on_cancel(g, m->trial);
		break;
	case EG_MSG_ACK:
		on_ack(g, m->trial, m->attempt);
		break;
	case EG_MSG_BYE:
		eg_log(EG_LOG_INFO, "coordinator said BYE (%s); stopping",
		       m->reason ? m->reason : "no reason");
		g->stop = true;
		break;
	default:
		eg_log(EG_LOG_WARN, "coordinator sent %s; ignored",
		       eg_msg_type_name(m->type));
	}
}

static void read_socket(struct gw *g)
{
	char buf[65536];
	ssize_t n = recv(g->fd, buf, sizeof(buf), MSG_DONTWAIT);
	size_t off = 0;
	eg_diag d = {{0}};
	eg_msg m;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		disconnect(g, n == 0 ? "connection closed" : strerror(errno));
		return;
	}
	eg_msg_init(&m, EG_MSG_NONE);
	while (off < (size_t)n && g->fd >= 0) {
		size_t used = 0, len;
		const uint8_t *body;
		int rc = eg_frame_dec_feed(g->dec, buf + off, (size_t)n - off,
					   &used, &d);

		off += used;
		if (rc < 0) {
			disconnect(g, eg_diag_msg(&d, rc));
			break;
		}
		if (rc == 0)
			break;
		body = eg_frame_dec_body(g->dec, &len);
		rc = eg_msg_decode(body, len, &m, &d);
		if (rc != EG_OK) {
			disconnect(g, eg_diag_msg(&d, rc));
			break;
		}
		on_coord(g, &m);
		eg_msg_clear(&m);
	}
	eg_msg_clear(&m);
}

/* ---- the loop ---- */

static int gw_init(struct gw *g, const eg__wopts *o, eg_diag *d)
{
	char path[4096], host[200] = "localhost";
	int rc;

	g->o = o;
	g->fd = -1;
	g->lease_ms = DEFAULT_LEASE_MS;
	g->backoff_ms = BACKOFF_MIN_MS;
	gethostname(host, sizeof(host) - 1);
	if (o->name != NULL)
		snprintf(g->name, sizeof(g->name), "%s", o->name);
	else
		snprintf(g->name, sizeof(g->name), "worker@%s:%d", host,
			 (int)getpid());
	/* The queue first: even a failed start must reach the compute
	 * ranks with BYE, or they would wait for it forever. */
	rc = eg__outq_new(&g->q);
	if (rc == EG_OK)
		rc = eg_frame_dec_new(0, &g->dec);
	if (rc != EG_OK)
		return eg_diag_set(d, rc, "out of memory");
	eg__run_path(path, sizeof(path), o->home, "token");
	rc = eg_proto_token_load(path, &g->token, d);
	if (rc != EG_OK)
		return eg_diag_prefix(d, rc, "token");
	g->nslots = o->size > 1 ? o->size - 1 : 1;
	g->slots = calloc((size_t)g->nslots, sizeof(*g->slots));
	if (g->slots == NULL)
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	for (int i = 0; i < g->nslots; i++)
		g->slots[i].rank = o->size > 1 ? i + 1 : 0;
	if (o->size == 1)
		return eg__job_new(o->threads, &g->job, d);
	return EG_OK;
}

static void gw_free(struct gw *g)
{
	eg__job_free(g->job);
	if (g->fd >= 0)
		close(g->fd);
	eg_frame_dec_free(g->dec);
	eg_proto_token_free(g->token);
	for (size_t i = 0; i < g->nqueue; i++)
		eg_msg_clear(&g->queue[i]);
	free(g->queue);
	for (size_t i = 0; i < g->nun; i++)
		eg_buf_free(&g->un[i].frame);
	free(g->un);
	free(g->slots);
}

int eg__gateway_main(const eg__wopts *o)
{
	struct gw g = {0};
	eg_buf scratch = EG_BUF_INIT;
	eg_diag d = {{0}};
	eg_msg m;
	int rc, nap = 1, src, code = 1;

	eg_msg_init(&m, EG_MSG_NONE);
	rc = gw_init(&g, o, &d);
	if (rc != EG_OK) {
		fprintf(stderr, "expgrid-worker: %s\n", eg_diag_msg(&d, rc));
		eg_log(EG_LOG_ERROR, "%s", eg_diag_msg(&d, rc));
		code = 2;
		goto out;
	}
	eg_log(EG_LOG_INFO, "gateway up: %d compute slot%s, %d BLAS thread%s "
			    "per trial",
	       g.nslots, g.nslots == 1 ? "" : "s", o->threads,
	       o->threads == 1 ? "" : "s");
	while (!g.stop && !eg__worker_stop) {
		struct pollfd p[2];
		int np = 0, timeout;
		bool active = false;
		int64_t now = eg__now_ms();

		if (g.fd < 0 && now >= g.next_connect) {
			try_connect(&g);
			if (g.stop)
				break;
			active = g.fd >= 0;
		}
		if (g.fd >= 0)
			p[np++] = (struct pollfd){g.fd, POLLIN, 0};
		if (g.job != NULL)
			p[np++] = (struct pollfd){eg__job_fd(g.job), POLLIN, 0};
		timeout = nap;
		if (poll(p, (nfds_t)np, timeout) > 0) {
			active = true;
			if (g.fd >= 0 && p[0].revents != 0)
				read_socket(&g);
		}
		if (g.job != NULL) {
			while (eg__job_next(g.job, &m) == 1) {
				active = true;
				on_event(&g, &g.slots[0], &m);
				eg_msg_clear(&m);
			}
		}
		if (o->size > 1) {
			while ((rc = eg__mpi_poll(&scratch, &m, &src, &d)) == 1) {
				active = true;
				on_event(&g, slot_of_rank(&g, src), &m);
				eg_msg_clear(&m);
			}
			if (rc < 0)
				eg_log(EG_LOG_ERROR, "%s", eg_diag_msg(&d, rc));
			eg__outq_progress(g.q);
		}
		now = eg__now_ms();
		if (g.fd >= 0 && now >= g.next_hb)
			send_heartbeat(&g);
		nap = active ? 1 : (nap * 2 > IDLE_MAX_MS ? IDLE_MAX_MS : nap * 2);
	}
	if (g.refused) {
		code = EXIT_REFUSED;
	} else {
		eg_log(EG_LOG_INFO, "stopping: cancelling %d running trial%s",
		       g.nslots - free_slots(&g) - (int)g.nqueue,
		       g.nslots - free_slots(&g) - (int)g.nqueue == 1 ? "" : "s");
		if (g.fd >= 0) {
			eg_msg bye;

			eg_msg_init(&bye, EG_MSG_BYE);
			bye.reason = strdup("worker stopping");
			send_msg(&g, &bye);
			eg_msg_clear(&bye);
		}
		code = 0;
	}
out:
	if (o->size > 1 && g.q != NULL) {
		eg_msg bye;

		eg_msg_init(&bye, EG_MSG_BYE);
		for (int r = 1; r < o->size; r++)
			eg__outq_send(g.q, r, &bye, &d);
		eg__outq_free(g.q, 3000);
	} else {
		eg__outq_free(g.q, 0);
	}
	eg_msg_clear(&m);
	eg_buf_free(&scratch);
	gw_free(&g);
	return code;
}
