/*
 * agent.c - expgrid-hwagent's main loop: the boards, the one connection to
 * the coordinator, the watchdog and the journal.
 *
 * Invariants:
 *   - a board gets work only when its health is good and it is idle; WANT
 *     asks for exactly the idle good boards not already asked for (WANT
 *     is additive on the coordinator's side); an ASSIGN beyond them (a
 *     board went bad after the WANT) waits in a queue, covered by
 *     heartbeats, for the next free board of its type, and fails only if
 *     its type has no good board left; HELLO advertises
 *     `fpga:<type>` for the types that have a good board (plus the board
 *     list, state and health, in capabilities.boards);
 *   - every RESULT and FAIL is appended to the journal (fsync) before it
 *     is sent, and leaves it only on the coordinator's ACK; after any
 *     (re)connect, and so after a restart of the agent, the journal is
 *     sent again before anything else.  The coordinator accepts a trial's
 *     first result only, so a resend is harmless;
 *   - the watchdog: a board run older than the board's timeout_ms is
 *     cancelled (the backend's cancel flag), one still running GRACE_MS
 *     later is reset (exec: its process group killed), and one still
 *     running GRACE_MS after that is abandoned: FAIL is sent, the board is
 *     marked bad and its thread left to end on its own.  A job that ends
 *     by the watchdog or by any error other than a CANCEL is followed by a
 *     health check (board.c) that sets the board good or bad;
 *   - when the set of healthy types changes the agent says HELLO again
 *     (reconnects) as soon as no job is running, so the coordinator stops
 *     offering a type it has no good board for;
 *   - the connection is reconnected with exponential backoff (100 ms to
 *     2 s), re-reading $EXPGRID_HOME/run/coordinator.addr each time, as
 *     the worker gateway does; computing never waits for it.
 * An ASSIGN names its grid's target in params.target (added by the
 * coordinator for fpga targets), so the agent picks a board of that type.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "hwagent/agent.h"
#include "proto/auth.h"
#include "proto/frame.h"
#include "proto/io.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CONNECT_TIMEOUT_MS 2000
#define HANDSHAKE_TIMEOUT_MS 5000
#define SEND_TIMEOUT_S 10
#define DEFAULT_LEASE_MS 30000
#define IDLE_BEAT_MS 15000
#define GRACE_MS 2000
#define PROOF_CLOSES_MAX 3

volatile sig_atomic_t eg__hwagent_stop;

struct agent {
	const eg__hwagent_opts *o;
	eg_proto_token *token;
	eg__hw_spec *specs;
	size_t nspecs;
	eg__board *boards;
	eg__wake wake;
	bool wake_ok;
	eg__journal *journal;
	int fd;
	eg_frame_dec *dec;
	char addr[512];
	char hello_types[1024]; /* the types advertised on this connection */
	eg_msg *queue; /* ASSIGNs waiting for a busy board of their type */
	size_t nqueue, capqueue;
	int64_t lease_ms, next_hb, next_connect;
	int backoff_ms, proof_closes, asked;
	bool connected_once, warned_down, refused, stop;
};

/* ---- the connection (proto/io.h does the protocol's part) ---- */

static int find_addr(struct agent *a, eg_diag *d)
{
	char path[PATH_MAX + 64];
	FILE *f;
	size_t n;

	if (a->o->coordinator != NULL) {
		snprintf(a->addr, sizeof(a->addr), "%s", a->o->coordinator);
		return EG_OK;
	}
	snprintf(path, sizeof(path), "%s/run/coordinator.addr", a->o->home);
	f = fopen(path, "r");
	if (f == NULL)
		return eg_diag_set(d, EG_ENOENT, "%s: %s (is the coordinator "
				   "running? set EXPGRID_COORDINATOR otherwise)",
				   path, strerror(errno));
	n = fread(a->addr, 1, sizeof(a->addr) - 1, f);
	fclose(f);
	a->addr[n] = '\0';
	a->addr[strcspn(a->addr, "\r\n \t")] = '\0';
	if (a->addr[0] == '\0')
		return eg_diag_set(d, EG_ENOENT, "%s is empty", path);
	return EG_OK;
}

static bool board_usable(const eg__board *b)
{
	return b->health == EG__HEALTH_GOOD;
}

/* "fpga:a,fpga:b": the types with a good board, in file order. */
static void healthy_types(const struct agent *a, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < a->nspecs; i++) {
		const char *t = a->specs[i].type;
		bool seen = false;

		if (!board_usable(&a->boards[i]))
			continue;
		for (size_t k = 0; k < i && !seen; k++)
			seen = board_usable(&a->boards[k]) &&
			       strcmp(a->specs[k].type, t) == 0;
		if (!seen)
			used += (size_t)snprintf(out + used,
						 used < len ? len - used : 0,
						 "%sfpga:%s", used ? "," : "", t);
	}
}

static int capabilities(struct agent *a, eg_val **out)
{
	eg_val *caps = eg_val_map(), *targets = eg_val_list(),
	       *boards = eg_val_list();
	char types[1024], *save = NULL, *tok;
	int rc = caps && targets && boards ? EG_OK : EG_ENOMEM;

	if (rc == EG_OK) {
		rc = eg_val_set(caps, "target", targets);
		targets = NULL;
	}
	if (rc == EG_OK) {
		rc = eg_val_set(caps, "boards", boards);
		boards = NULL;
	}
	healthy_types(a, types, sizeof(types));
	snprintf(a->hello_types, sizeof(a->hello_types), "%s", types);
	for (tok = strtok_r(types, ",", &save); rc == EG_OK && tok != NULL;
	     tok = strtok_r(NULL, ",", &save))
		rc = eg_val_push(eg_val_get(caps, "target"), eg_val_str(tok));
	for (size_t i = 0; rc == EG_OK && i < a->nspecs; i++) {
		eg_val *b = eg_val_map();

		rc = eg_val_push(eg_val_get(caps, "boards"), b);
		if (rc == EG_OK)
			rc = eg_val_set_str(b, "name", a->specs[i].name);
		if (rc == EG_OK)
			rc = eg_val_set_str(b, "type", a->specs[i].type);
		if (rc == EG_OK)
			rc = eg_val_set_str(b, "backend",
					    a->boards[i].ops->name);
		if (rc == EG_OK)
			rc = eg_val_set_str(b, "state", eg__board_state_name(
							       a->boards[i].state));
		if (rc == EG_OK)
			rc = eg_val_set_str(b, "health", eg__board_health_name(
								a->boards[i].health));
		if (rc == EG_OK && a->boards[i].last_error[0] != '\0')
			rc = eg_val_set_str(b, "last_error",
					    a->boards[i].last_error);
	}
	eg_val_free(targets);
	eg_val_free(boards);
	if (rc != EG_OK) {
		eg_val_free(caps);
		return rc;
	}
	*out = caps;
	return EG_OK;
}

/* HELLO, CHALLENGE, PROOF, WELCOME; EG_EAUTH means refused for good. */
static int handshake(struct agent *a, int fd, eg_diag *d)
{
	eg_val *caps = NULL;
	bool after_proof;
	int rc = capabilities(a, &caps);

	if (rc != EG_OK)
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	rc = eg_proto_handshake(fd, a->dec, a->token, "hwagent", a->o->name,
				caps, HANDSHAKE_TIMEOUT_MS, &after_proof, d);
	if (after_proof && ++a->proof_closes >= PROOF_CLOSES_MAX)
		rc = eg_diag_set(d, EG_EAUTH, "the coordinator closed the "
				 "connection after our proof %d times",
				 a->proof_closes);
	if (rc == EG_OK)
		a->proof_closes = 0;
	return rc;
}

static void disconnect(struct agent *a, const char *why, bool quiet)
{
	if (a->fd < 0)
		return;
	if (!quiet)
		eg_log(EG_LOG_WARN, "lost the coordinator at %s: %s; "
				    "reconnecting", a->addr, why);
	close(a->fd);
	a->fd = -1;
	eg_frame_dec_reset(a->dec);
	a->backoff_ms = BACKOFF_MIN_MS;
	a->next_connect = eg__hw_now_ms() + (quiet ? 0 : a->backoff_ms);
}

static void send_msg(struct agent *a, const eg_msg *m)
{
	eg_diag d = {{0}};
	int rc;

	if (a->fd < 0)
		return;
	rc = eg_proto_send(a->fd, m, 0, &d);
	if (rc != EG_OK)
		disconnect(a, eg_diag_msg(&d, rc), false);
}

static int jobs_live(const struct agent *a)
{
	int n = 0;

	for (size_t i = 0; i < a->nspecs; i++)
		n += a->boards[i].thread_live;
	return n;
}

static void send_want(struct agent *a)
{
	int idle = 0, more;
	eg_msg m;

	if (a->fd < 0)
		return;
	for (size_t i = 0; i < a->nspecs; i++)
		idle += board_usable(&a->boards[i]) && !a->boards[i].thread_live;
	more = idle - (int)a->nqueue - a->asked;
	if (more <= 0)
		return;
	eg_msg_init(&m, EG_MSG_WANT);
	m.slots = more;
	a->asked += more;
	send_msg(a, &m);
}

static void send_heartbeat(struct agent *a)
{
	eg_msg m;
	size_t n = 0;

	a->next_hb = eg__hw_now_ms() + (jobs_live(a) || a->nqueue
						 ? a->lease_ms / 3
						 : IDLE_BEAT_MS);
	eg_msg_init(&m, EG_MSG_HEARTBEAT);
	m.leases = calloc(a->nspecs + a->nqueue + 1, sizeof(*m.leases));
	if (m.leases == NULL)
		return;
	for (size_t i = 0; i < a->nspecs; i++)
		if (a->boards[i].thread_live && a->boards[i].wd_stage < 3)
			m.leases[n++] = (eg_msg_lease){a->boards[i].trial,
						       a->boards[i].attempt};
	for (size_t i = 0; i < a->nqueue; i++)
		m.leases[n++] = (eg_msg_lease){a->queue[i].trial,
					       a->queue[i].attempt};
	m.nleases = n;
	send_msg(a, &m);
	eg_msg_clear(&m);
}

static void on_connected(struct agent *a)
{
	eg_diag d = {{0}};
	size_t n = eg__journal_count(a->journal);

	eg_log(EG_LOG_INFO, "%s coordinator at %s as %s (targets: %s)",
	       a->connected_once ? "reconnected to" : "connected to", a->addr,
	       a->o->name, a->hello_types[0] ? a->hello_types : "none");
	if (n > 0)
		eg_log(EG_LOG_INFO, "resending %zu unacknowledged result%s from "
		       "the journal", n, n == 1 ? "" : "s");
	a->connected_once = true;
	a->warned_down = false;
	a->asked = 0;
	for (size_t i = 0; i < n && a->fd >= 0; i++) {
		const eg_buf *f = eg__journal_at(a->journal, i, NULL, NULL);
		int rc = eg_proto_write_all(a->fd, f->data, f->len, &d);

		if (rc != EG_OK)
			disconnect(a, eg_diag_msg(&d, rc), false);
	}
	send_heartbeat(a);
	send_want(a);
}

static void try_connect(struct agent *a)
{
	eg_diag d = {{0}};
	int fd = -1, rc;

	rc = find_addr(a, &d);
	if (rc == EG_OK)
		rc = eg_proto_connect(a->addr, CONNECT_TIMEOUT_MS, SEND_TIMEOUT_S,
				      &fd, &d);
	if (rc == EG_OK) {
		eg_frame_dec_reset(a->dec);
		rc = handshake(a, fd, &d);
	}
	if (rc == EG_OK) {
		a->fd = fd;
		a->backoff_ms = BACKOFF_MIN_MS;
		on_connected(a);
		return;
	}
	if (fd >= 0)
		close(fd);
	if (rc == EG_EAUTH) {
		fprintf(stderr, "expgrid-hwagent: the coordinator at %s refused "
			"the handshake: %s (check EXPGRID_TOKEN or "
			"$EXPGRID_HOME/run/token)\n", a->addr,
			eg_diag_msg(&d, rc));
		eg_log(EG_LOG_ERROR, "handshake refused by %s: %s", a->addr,
		       eg_diag_msg(&d, rc));
		a->refused = true;
		a->stop = true;
		return;
	}
	if (!a->warned_down) {
		eg_log(EG_LOG_WARN, "cannot reach the coordinator: %s; retrying "
		       "with backoff", eg_diag_msg(&d, rc));
		a->warned_down = true;
	}
	a->next_connect = eg__hw_now_ms() + a->backoff_ms;
	a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							   : a->backoff_ms * 2;
}

/* ---- results ---- */

/* Journals `m` (RESULT or FAIL) and sends it; takes its contents. */
static void report(struct agent *a, eg_msg *m)
{
	eg_buf frame = EG_BUF_INIT;
	eg_diag d = {{0}};
	int rc = eg_msg_encode(m, &frame, 0, &d);

	if (rc != EG_OK) {
		/* Too big or invalid: a FAIL instead, so the trial does not
		 * wait for its lease to expire. */
		eg_msg f;

		eg_log(EG_LOG_ERROR, "trial %lld: result not sendable: %s",
		       (long long)m->trial, eg_diag_msg(&d, rc));
		eg_msg_init(&f, EG_MSG_FAIL);
		f.trial = m->trial;
		f.attempt = m->attempt;
		f.error = strdup(eg_diag_msg(&d, rc));
		eg_buf_free(&frame);
		rc = f.error != NULL ? eg_msg_encode(&f, &frame, 0, &d)
				     : EG_ENOMEM;
		eg_msg_clear(&f);
		if (rc != EG_OK)
			goto out;
	}
	rc = eg__journal_append(a->journal, m->trial, m->attempt, frame.data,
				frame.len, &d);
	if (rc != EG_OK)
		eg_log(EG_LOG_ERROR, "trial %lld: journal: %s (sending it "
		       "anyway)", (long long)m->trial, eg_diag_msg(&d, rc));
	if (a->fd >= 0) {
		rc = eg_proto_write_all(a->fd, frame.data, frame.len, &d);
		if (rc != EG_OK)
			disconnect(a, eg_diag_msg(&d, rc), false);
	}
out:
	eg_buf_free(&frame);
	eg_msg_clear(m);
}

static void fail_trial(struct agent *a, int64_t trial, int64_t attempt,
		       const char *why)
{
	eg_msg f;

	eg_msg_init(&f, EG_MSG_FAIL);
	f.trial = trial;
	f.attempt = attempt;
	f.error = strdup(why);
	if (f.error != NULL)
		report(a, &f);
	eg_msg_clear(&f);
}

static void set_health(eg__board *b, eg__board_health h, const char *why)
{
	if (b->health == h)
		return;
	if (h == EG__HEALTH_GOOD)
		eg_log(EG_LOG_INFO, "board %s: health %s -> good", b->spec->name,
		       eg__board_health_name(b->health));
	else
		eg_log(EG_LOG_WARN, "board %s: health %s -> %s%s%s",
		       b->spec->name, eg__board_health_name(b->health),
		       eg__board_health_name(h), why[0] ? ": " : "", why);
	b->health = h;
	snprintf(b->last_error, sizeof(b->last_error), "%s", why);
}

/* The job of board b ended (its thread stored the outcome). */
static void job_done(struct agent *a, eg__board *b)
{
	eg_msg m;
	bool abandoned = b->wd_stage >= 3;

	pthread_join(b->thread, NULL);
	b->thread_live = false;
	b->state = EG__BOARD_IDLE;
	eg_val_free(b->params);
	b->params = NULL;
	if (abandoned) {
		/* Reported and marked bad when it was abandoned. */
		eg_val_free(b->result);
		b->result = NULL;
		return;
	}
	if (b->result != NULL) {
		eg_log(EG_LOG_INFO, "trial %lld attempt %lld done on board %s",
		       (long long)b->trial, (long long)b->attempt,
		       b->spec->name);
		eg_msg_init(&m, EG_MSG_RESULT);
		m.payload = b->result;
		b->result = NULL;
	} else {
		char why[1200];

		if (b->by_watchdog)
			snprintf(why, sizeof(why), "board %s: watchdog: no "
				 "result within %lld ms; cancelled (%s)",
				 b->spec->name, (long long)b->spec->timeout_ms,
				 b->error);
		else
			snprintf(why, sizeof(why), "%s", b->error);
		eg_log(EG_LOG_WARN, "trial %lld attempt %lld failed on board "
		       "%s: %s", (long long)b->trial, (long long)b->attempt,
		       b->spec->name, why);
		eg_msg_init(&m, EG_MSG_FAIL);
		m.error = strdup(why);
		if (b->health_ran) {
			/* Any error makes the health unknown until the check
			 * that followed it says otherwise. */
			set_health(b, EG__HEALTH_UNKNOWN, why);
			if (b->health_rc == EG_OK) {
				eg_log(EG_LOG_INFO, "board %s: health check "
				       "after the error passed",
				       b->spec->name);
				set_health(b, EG__HEALTH_GOOD, "");
			} else {
				set_health(b, EG__HEALTH_BAD, b->health_msg);
			}
		}
	}
	m.trial = b->trial;
	m.attempt = b->attempt;
	report(a, &m);
}

/* ---- the coordinator's messages ---- */

static eg__board *board_for(struct agent *a, const char *target,
			    bool *any_good)
{
	const char *type = target != NULL && strncmp(target, "fpga:", 5) == 0
				   ? target + 5
				   : NULL;

	*any_good = false;
	for (size_t i = 0; i < a->nspecs; i++) {
		eg__board *b = &a->boards[i];

		if (!board_usable(b) ||
		    (type != NULL && strcmp(b->spec->type, type) != 0))
			continue;
		*any_good = true;
		if (!b->thread_live)
			return b;
	}
	return NULL;
}

/* Starts m on board b (takes m's params). */
static void dispatch(struct agent *a, eg__board *b, eg_msg *m)
{
	eg_diag d = {{0}};
	int rc;

	eg_log(EG_LOG_INFO, "trial %lld attempt %lld -> board %s",
	       (long long)m->trial, (long long)m->attempt, b->spec->name);
	rc = eg__board_start(b, &a->wake, m->trial, m->attempt, m->params, &d);
	m->params = NULL;
	if (rc != EG_OK)
		fail_trial(a, m->trial, m->attempt, eg_diag_msg(&d, rc));
	else
		send_heartbeat(a); /* leased -> running at once */
}

/* Queued ASSIGNs whose type now has an idle good board start; those whose
 * type has no good board left fail (the coordinator retries them). */
static void drain_queue(struct agent *a)
{
	for (size_t i = 0; i < a->nqueue;) {
		eg_msg *m = &a->queue[i];
		const char *target = eg_val_get_str(m->params, "target", NULL);
		bool any_good;
		eg__board *b = board_for(a, target, &any_good);

		if (b == NULL && any_good) {
			i++;
			continue;
		}
		if (b != NULL) {
			dispatch(a, b, m);
		} else {
			char why[256];

			snprintf(why, sizeof(why), "hwagent %s: no healthy "
				 "board of type %s", a->o->name,
				 target ? target : "(any)");
			eg_log(EG_LOG_WARN, "trial %lld: %s",
			       (long long)m->trial, why);
			fail_trial(a, m->trial, m->attempt, why);
		}
		eg_msg_clear(m);
		memmove(a->queue + i, a->queue + i + 1,
			(a->nqueue - i - 1) * sizeof(*a->queue));
		a->nqueue--;
	}
}

static void on_assign(struct agent *a, eg_msg *m)
{
	const char *target = eg_val_get_str(m->params, "target", NULL);
	bool any_good;
	eg__board *b;

	if (a->asked > 0)
		a->asked--;
	if (m->lease_ms > 0 && m->lease_ms != a->lease_ms) {
		a->lease_ms = m->lease_ms;
		if (a->next_hb > eg__hw_now_ms() + a->lease_ms / 3)
			a->next_hb = eg__hw_now_ms() + a->lease_ms / 3;
	}
	b = board_for(a, target, &any_good);
	if (b != NULL) {
		dispatch(a, b, m);
		return;
	}
	if (!any_good) {
		char why[256];

		snprintf(why, sizeof(why), "hwagent %s: no healthy board of "
			 "type %s", a->o->name, target ? target : "(any)");
		eg_log(EG_LOG_WARN, "trial %lld: %s", (long long)m->trial, why);
		fail_trial(a, m->trial, m->attempt, why);
		return;
	}
	/* More than the idle boards of its type (a WANT crossed a board
	 * going bad, or types share slots): hold it for the next free board
	 * of that type; heartbeats cover its lease meanwhile. */
	if (a->nqueue == a->capqueue) {
		size_t cap = a->capqueue ? a->capqueue * 2 : 4;
		eg_msg *v = realloc(a->queue, cap * sizeof(*v));

		if (v == NULL) {
			fail_trial(a, m->trial, m->attempt, "out of memory");
			return;
		}
		a->queue = v;
		a->capqueue = cap;
	}
	eg_log(EG_LOG_INFO, "trial %lld attempt %lld waits for a board of "
	       "type %s", (long long)m->trial, (long long)m->attempt,
	       target ? target : "(any)");
	a->queue[a->nqueue++] = *m;
	eg_msg_init(m, EG_MSG_NONE);
	send_heartbeat(a);
}

static void on_coord(struct agent *a, eg_msg *m)
{
	eg_diag d = {{0}};

	switch (m->type) {
	case EG_MSG_ASSIGN:
		on_assign(a, m);
		break;
	case EG_MSG_CANCEL:
		for (size_t i = 0; i < a->nqueue; i++) {
			if (a->queue[i].trial != m->trial)
				continue;
			fail_trial(a, m->trial, a->queue[i].attempt,
				   "cancelled");
			eg_msg_clear(&a->queue[i]);
			memmove(a->queue + i, a->queue + i + 1,
				(a->nqueue - i - 1) * sizeof(*a->queue));
			a->nqueue--;
			break;
		}
		for (size_t i = 0; i < a->nspecs; i++) {
			eg__board *b = &a->boards[i];

			if (b->thread_live && b->trial == m->trial) {
				eg_log(EG_LOG_INFO, "cancel trial %lld on "
				       "board %s", (long long)m->trial,
				       b->spec->name);
				b->cancelled = true;
				b->cancel = 1;
			}
		}
		break;
	case EG_MSG_ACK:
		if (eg__journal_ack(a->journal, m->trial, m->attempt, NULL, &d) !=
		    EG_OK)
			eg_log(EG_LOG_ERROR, "journal: %s", eg_diag_msg(&d, 0));
		break;
	case EG_MSG_BYE:
		eg_log(EG_LOG_INFO, "coordinator said BYE (%s); stopping",
		       m->reason ? m->reason : "no reason");
		a->stop = true;
		break;
	default:
		eg_log(EG_LOG_WARN, "coordinator sent %s; ignored",
		       eg_msg_type_name(m->type));
	}
}

static void read_socket(struct agent *a)
{
	char buf[65536];
	ssize_t n = recv(a->fd, buf, sizeof(buf), MSG_DONTWAIT);
	size_t off = 0;
	eg_diag d = {{0}};
	eg_msg m;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		disconnect(a, n == 0 ? "connection closed" : strerror(errno),
			   false);
		return;
	}
	eg_msg_init(&m, EG_MSG_NONE);
	while (off < (size_t)n && a->fd >= 0) {
		size_t used = 0, len;
		const uint8_t *body;
		int rc = eg_frame_dec_feed(a->dec, buf + off, (size_t)n - off,
					   &used, &d);

		off += used;
		if (rc < 0) {
			disconnect(a, eg_diag_msg(&d, rc), false);
			break;
		}
		if (rc == 0)
			break;
		body = eg_frame_dec_body(a->dec, &len);
		rc = eg_msg_decode(body, len, &m, &d);
		if (rc != EG_OK) {
			disconnect(a, eg_diag_msg(&d, rc), false);
			break;
		}
		on_coord(a, &m);
		eg_msg_clear(&m);
	}
	eg_msg_clear(&m);
}

/* ---- the watchdog ---- */

static void watchdog(struct agent *a, int64_t now)
{
	for (size_t i = 0; i < a->nspecs; i++) {
		eg__board *b = &a->boards[i];
		int64_t since = b->hw_since_ms;

		if (!b->thread_live || b->wd_stage >= 3)
			continue;
		b->state = since != 0 ? EG__BOARD_RUNNING : EG__BOARD_RESERVED;
		if (since == 0)
			continue;
		/* An exec board's command has the same budget and is killed
		 * by the backend itself, which says so more precisely; the
		 * watchdog comes GRACE_MS later as the second line. */
		if (b->wd_stage == 0 &&
		    now - since > b->spec->timeout_ms +
				  (b->spec->backend == EG__HW_EXEC ? GRACE_MS
								   : 0)) {
			eg_log(EG_LOG_WARN, "watchdog: board %s, trial %lld: "
			       "no result after %lld ms; cancelling",
			       b->spec->name, (long long)b->trial,
			       (long long)(now - since));
			b->by_watchdog = true;
			b->cancel = 1;
			b->wd_stage = 1;
			b->wd_at_ms = now;
		} else if (b->wd_stage == 1 && now - b->wd_at_ms > GRACE_MS) {
			eg_log(EG_LOG_WARN, "watchdog: board %s did not stop "
			       "within %d ms of the cancel; resetting it",
			       b->spec->name, GRACE_MS);
			b->ops->reset(b);
			b->wd_stage = 2;
			b->wd_at_ms = now;
		} else if (b->wd_stage == 2 && now - b->wd_at_ms > GRACE_MS) {
			char why[256];

			snprintf(why, sizeof(why), "board %s: watchdog: hung "
				 "and did not recover from a reset",
				 b->spec->name);
			eg_log(EG_LOG_ERROR, "%s; abandoning trial %lld",
			       why, (long long)b->trial);
			b->wd_stage = 3;
			set_health(b, EG__HEALTH_BAD, why);
			fail_trial(a, b->trial, b->attempt, why);
		}
	}
}

/* ---- the loop ---- */

static int agent_init(struct agent *a, const eg__hwagent_opts *o, eg_diag *d)
{
	char path[PATH_MAX + 64];
	int rc;

	a->o = o;
	a->fd = -1;
	a->lease_ms = DEFAULT_LEASE_MS;
	a->backoff_ms = BACKOFF_MIN_MS;
	rc = eg_frame_dec_new(0, &a->dec);
	if (rc != EG_OK)
		return eg_diag_set(d, rc, "out of memory");
	snprintf(path, sizeof(path), "%s/run/token", o->home);
	rc = eg_proto_token_load(path, &a->token, d);
	if (rc != EG_OK)
		return eg_diag_prefix(d, rc, "token");
	rc = eg__hw_specs_load(o->boards_file, &a->specs, &a->nspecs, d);
	if (rc != EG_OK)
		return rc;
	/* A board host of its own has no run/ yet (the coordinator's host
	 * gets it from the coordinator or `expgrid up`). */
	snprintf(path, sizeof(path), "%s/run", o->home);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return eg_diag_set(d, eg_err_from_errno(errno), "%s: %s", path,
				   strerror(errno));
	snprintf(path, sizeof(path), "%s/run/hwagent-%s.journal", o->home,
		 o->name);
	rc = eg__journal_open(path, &a->journal, d);
	if (rc != EG_OK)
		return rc;
	if (eg__journal_dropped(a->journal) > 0)
		eg_log(EG_LOG_WARN, "journal %s: dropped a torn record at its "
		       "end", path);
	if (pthread_mutex_init(&a->wake.mu, NULL) != 0 ||
	    pipe2(a->wake.pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return eg_diag_set(d, EG_EIO, "pipe: %s", strerror(errno));
	a->wake_ok = true;
	a->boards = calloc(a->nspecs, sizeof(*a->boards));
	if (a->boards == NULL)
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	for (size_t i = 0; i < a->nspecs; i++) {
		rc = eg__board_init(&a->boards[i], &a->specs[i], d);
		if (rc != EG_OK)
			return rc;
	}
	/* The known-answer check of every board before it gets work. */
	for (size_t i = 0; i < a->nspecs; i++) {
		eg__board *b = &a->boards[i];
		eg_diag hd = {{0}};

		if (b->health == EG__HEALTH_MAINTENANCE) {
			eg_log(EG_LOG_INFO, "board %s (%s, %s): in maintenance",
			       b->spec->name, b->spec->type, b->ops->name);
			continue;
		}
		rc = eg__board_check(b, &hd);
		if (rc == EG_OK) {
			b->health = EG__HEALTH_GOOD;
			eg_log(EG_LOG_INFO, "board %s (%s, %s): health check "
			       "passed", b->spec->name, b->spec->type,
			       b->ops->name);
		} else {
			b->health = EG__HEALTH_BAD;
			snprintf(b->last_error, sizeof(b->last_error), "%s",
				 eg_diag_msg(&hd, rc));
			eg_log(EG_LOG_WARN, "board %s (%s, %s): health check "
			       "failed, marked bad: %s", b->spec->name,
			       b->spec->type, b->ops->name,
			       eg_diag_msg(&hd, rc));
		}
	}
	return EG_OK;
}

static void agent_free(struct agent *a)
{
	for (size_t i = 0; a->boards != NULL && i < a->nspecs; i++) {
		/* An abandoned job's thread may still hold its board. */
		if (a->boards[i].wd_stage >= 3 && a->boards[i].thread_live)
			continue;
		eg__board_fini(&a->boards[i]);
	}
	free(a->boards);
	for (size_t i = 0; i < a->nqueue; i++)
		eg_msg_clear(&a->queue[i]);
	free(a->queue);
	eg__hw_specs_free(a->specs, a->nspecs);
	eg__journal_close(a->journal);
	if (a->fd >= 0)
		close(a->fd);
	eg_frame_dec_free(a->dec);
	eg_proto_token_free(a->token);
	if (a->wake_ok) {
		close(a->wake.pipe[0]);
		close(a->wake.pipe[1]);
	}
}

int eg__hwagent_run(const eg__hwagent_opts *o)
{
	struct agent a = {0};
	eg_diag d = {{0}};
	int rc, code = 1;
	int64_t now;

	rc = agent_init(&a, o, &d);
	if (rc != EG_OK) {
		fprintf(stderr, "expgrid-hwagent: %s\n", eg_diag_msg(&d, rc));
		eg_log(EG_LOG_ERROR, "%s", eg_diag_msg(&d, rc));
		code = 2;
		goto out;
	}
	eg_log(EG_LOG_INFO, "hwagent %s up: %zu board%s from %s, %zu "
	       "unacknowledged result%s in the journal", o->name, a.nspecs,
	       a.nspecs == 1 ? "" : "s", o->boards_file,
	       eg__journal_count(a.journal),
	       eg__journal_count(a.journal) == 1 ? "" : "s");
	while (!a.stop && !eg__hwagent_stop) {
		struct pollfd p[2];
		int np = 0;
		char types[1024];

		now = eg__hw_now_ms();
		if (a.fd < 0 && now >= a.next_connect) {
			try_connect(&a);
			if (a.stop)
				break;
		}
		p[np++] = (struct pollfd){a.wake.pipe[0], POLLIN, 0};
		if (a.fd >= 0)
			p[np++] = (struct pollfd){a.fd, POLLIN, 0};
		if (poll(p, (nfds_t)np, 20) > 0) {
			char drain[64];

			while (read(a.wake.pipe[0], drain, sizeof(drain)) > 0)
				;
			if (np > 1 && p[1].revents != 0)
				read_socket(&a);
		}
		for (size_t i = 0; i < a.nspecs; i++) {
			eg__board *b = &a.boards[i];
			bool done;

			pthread_mutex_lock(&a.wake.mu);
			done = b->thread_live && b->done;
			pthread_mutex_unlock(&a.wake.mu);
			if (done) {
				job_done(&a, b);
				drain_queue(&a);
				send_want(&a);
			}
		}
		now = eg__hw_now_ms();
		watchdog(&a, now);
		if (a.nqueue > 0)
			drain_queue(&a);
		/* A type gained or lost its last good board: HELLO again once
		 * nothing is running, so the coordinator's view follows. */
		healthy_types(&a, types, sizeof(types));
		if (a.fd >= 0 && strcmp(types, a.hello_types) != 0 &&
		    jobs_live(&a) == 0 && a.nqueue == 0) {
			eg_log(EG_LOG_INFO, "healthy board types now '%s'; "
			       "saying HELLO again", types);
			disconnect(&a, "board types changed", true);
			continue;
		}
		if (a.fd >= 0 && now >= a.next_hb)
			send_heartbeat(&a);
	}
	if (a.refused) {
		code = 3;
	} else {
		eg_log(EG_LOG_INFO, "stopping: cancelling %d running job%s",
		       jobs_live(&a), jobs_live(&a) == 1 ? "" : "s");
		if (a.fd >= 0) {
			eg_msg bye;

			eg_msg_init(&bye, EG_MSG_BYE);
			bye.reason = strdup("hwagent stopping");
			send_msg(&a, &bye);
			eg_msg_clear(&bye);
		}
		code = 0;
	}
out:
	agent_free(&a);
	return code;
}
