/*
 * db.c - the coordinator's database thread: one libpq connection, one batch
 * at a time, one transaction per batch (see coord.h for the hand-over).
 *
 * Order inside a transaction: agents up, results, fails, renewals,
 * progress rows, requeue of dropped owners, the expiry sweep, grid
 * completion, then leases, so that a trial freed by this very batch (a
 * FAIL, an expiry) can be leased again in it, and a RESULT that completes
 * a dependency releases its dependents at once.
 *
 * The same connection LISTENs on expgrid_grids and expgrid_cancel; between
 * batches the thread waits on its condition variable at most POLL_MS and
 * then reads notifications without blocking (PQconsumeInput, PQnotifies),
 * posting them to the loop.  A lost connection (PostgreSQL restarted) is
 * retried with a doubling backoff from 100 ms to 2 s, logged once per
 * outage; the batch that was running is rolled back and run again after
 * reconnecting, so nothing the agents sent is lost while the server is
 * away (their ACKs are simply late).  Any other SQL error drops the batch
 * with a logged reason and no ACKs, so the agents resend.
 *
 * ASSIGN frames are encoded here (JSON params -> eg_val -> msgpack) so the
 * loop only copies bytes.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "proto/msg.h"
#include "store/store.h"

#define POLL_MS 50

struct co_db {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct co_batch *in;          /* submitted, not yet taken */
	struct co_batch *done, *tail; /* completed */
	bool stop;
	char *conninfo;
	int64_t lease_ms;
	size_t max_frame;
	eg_store *store;
	eg_sched_cursors *cursors;
	void (*notify)(void *);
	void *ud;
};

void *eg__coord_grow(void **v, size_t *n, size_t *cap, size_t elem)
{
	char *p;

	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		void *g = realloc(*v, nc * elem);

		if (g == NULL)
			return NULL;
		*v = g;
		*cap = nc;
	}
	p = (char *)*v + (*n)++ * elem;
	memset(p, 0, elem);
	return p;
}

struct co_batch *eg__coord_batch_new(void)
{
	return calloc(1, sizeof(struct co_batch));
}

void eg__coord_batch_free(struct co_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->results.n; i++) {
		free(b->results.v[i].agent);
		eg_val_free(b->results.v[i].payload);
	}
	for (size_t i = 0; i < b->fails.n; i++)
		free(b->fails.v[i].error);
	for (size_t i = 0; i < b->beats.n; i++)
		free(b->beats.v[i].owner);
	for (size_t i = 0; i < b->progress.n; i++)
		eg_val_free(b->progress.v[i].metrics);
	for (size_t i = 0; i < b->wants.n; i++) {
		struct co_want *w = &b->wants.v[i];

		free(w->owner);
		free(w->targets);
		eg_sched_leases_free(w->leases, w->nleases);
		eg_buf_free(&w->frames);
	}
	for (size_t i = 0; i < b->agents_up.n; i++) {
		struct co_agent *a = &b->agents_up.v[i];

		free(a->name);
		free(a->role);
		free(a->caps);
		free(a->addr);
	}
	for (size_t i = 0; i < b->agents_down.n; i++)
		free(b->agents_down.v[i]);
	for (size_t i = 0; i < b->owners_gone.n; i++)
		free(b->owners_gone.v[i]);
	free(b->results.v);
	free(b->fails.v);
	free(b->beats.v);
	free(b->progress.v);
	free(b->wants.v);
	free(b->agents_up.v);
	free(b->agents_down.v);
	free(b->owners_gone.v);
	free(b->notes.v);
	free(b);
}

bool eg__coord_batch_empty(const struct co_batch *b)
{
	return b->results.n == 0 && b->fails.n == 0 && b->beats.n == 0 &&
	       b->progress.n == 0 && b->wants.n == 0 && b->agents_up.n == 0 &&
	       b->agents_down.n == 0 && b->owners_gone.n == 0 && !b->sweep;
}

/* Clears the outputs before a (re)run. */
static void reset_outputs(struct co_batch *b)
{
	b->rc = EG_OK;
	b->err[0] = '\0';
	b->requeued = b->failed = b->renewed = b->fails_applied = 0;
	b->grids_done = 0;
	b->accepted = 0;
	for (size_t i = 0; i < b->results.n; i++)
		b->results.v[i].accepted = false;
	for (size_t i = 0; i < b->wants.n; i++) {
		struct co_want *w = &b->wants.v[i];

		eg_sched_leases_free(w->leases, w->nleases);
		w->leases = NULL;
		w->nleases = 0;
		eg_buf_reset(&w->frames);
	}
}

/* ---- JSON (PostgreSQL's jsonb text) to eg_val ---- */

static eg_val *from_json(json_t *j, int depth)
{
	eg_val *v = NULL;
	const char *k;
	json_t *x;
	size_t i;

	if (depth > EG_MSG_DEPTH_MAX)
		return NULL;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		v = eg_val_map();
		if (v == NULL)
			return NULL;
		json_object_foreach(j, k, x)
		{
			eg_val *c = from_json(x, depth + 1);

			/* eg_val_set owns c, also when it fails. */
			if (c == NULL || eg_val_set(v, k, c) != 0) {
				eg_val_free(v);
				return NULL;
			}
		}
		return v;
	case JSON_ARRAY:
		v = eg_val_list();
		json_array_foreach(j, i, x)
		{
			eg_val *c = from_json(x, depth + 1);

			if (v == NULL || c == NULL || eg_val_push(v, c) != 0) {
				eg_val_free(v);
				return NULL;
			}
		}
		return v;
	case JSON_STRING:
		return eg_val_strn(json_string_value(j), json_string_length(j));
	case JSON_INTEGER:
		return eg_val_int((int64_t)json_integer_value(j));
	case JSON_REAL:
		return eg_val_float(json_real_value(j));
	case JSON_TRUE:
		return eg_val_bool(true);
	case JSON_FALSE:
		return eg_val_bool(false);
	default:
		return eg_val_null();
	}
}

/* Encodes the ASSIGN frames of a want's leases. */
static int encode_assigns(struct co_db *db, struct co_want *w, eg_diag *d)
{
	for (size_t i = 0; i < w->nleases; i++) {
		eg_sched_leased *l = &w->leases[i];
		json_error_t je;
		json_t *j = json_loads(l->params, JSON_DECODE_ANY, &je);
		eg_msg m;
		int rc;

		eg_msg_init(&m, EG_MSG_ASSIGN);
		m.trial = l->trial;
		m.attempt = l->attempt;
		m.lease_ms = db->lease_ms;
		m.params = j != NULL && json_is_object(j) ? from_json(j, 1)
							  : NULL;
		json_decref(j);
		if (m.params == NULL) {
			eg_msg_clear(&m);
			return eg_diag_set(d, EG_ECORRUPT,
					   "trial %lld: params are not a map",
					   (long long)l->trial);
		}
		rc = eg_msg_encode(&m, &w->frames, db->max_frame, d);
		eg_msg_clear(&m);
		if (rc != EG_OK)
			return rc;
	}
	return EG_OK;
}

/* ---- building the jsonb parameters ---- */

static void j_str_array(eg_buf *b, char *const *v, size_t n)
{
	eg_json j;

	eg_json_init(&j, b);
	eg_json_arr_begin(&j);
	for (size_t i = 0; i < n; i++)
		eg_json_str(&j, v[i]);
	eg_json_arr_end(&j);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int run_results(struct co_db *db, struct co_batch *b, eg_diag *d)
{
	eg_buf buf = EG_BUF_INIT;
	int64_t *acc = NULL;
	size_t nacc = 0;
	eg_json j;
	int rc = EG_OK;

	if (b->results.n == 0)
		return EG_OK;
	eg_json_init(&j, &buf);
	eg_json_arr_begin(&j);
	for (size_t i = 0; i < b->results.n; i++) {
		struct co_result *r = &b->results.v[i];

		eg_json_obj_begin(&j);
		eg_json_key(&j, "trial");
		eg_json_int(&j, r->trial);
		eg_json_key(&j, "attempt");
		eg_json_int(&j, r->attempt);
		eg_json_key(&j, "agent");
		eg_json_str(&j, r->agent);
		eg_json_key(&j, "payload");
		eg_val_write_json(r->payload, &j);
		eg_json_obj_end(&j);
	}
	eg_json_arr_end(&j);
	acc = malloc(b->results.n * sizeof(*acc));
	if (eg_buf_failed(&buf) || acc == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
		goto out;
	}
	rc = eg_sched_results(db->store, eg_buf_str(&buf), acc, &nacc, d);
	if (rc != EG_OK)
		goto out;
	/* Mark the accepted ones: sort the answer once, then look up. */
	qsort(acc, nacc, sizeof(*acc), cmp_i64);
	for (size_t i = 0; i < b->results.n; i++)
		b->results.v[i].accepted =
			bsearch(&b->results.v[i].trial, acc, nacc,
				sizeof(*acc), cmp_i64) != NULL;
	b->accepted = nacc;
out:
	free(acc);
	eg_buf_free(&buf);
	return rc;
}

static int run_fails(struct co_db *db, struct co_batch *b, eg_diag *d)
{
	eg_buf buf = EG_BUF_INIT;
	eg_json j;
	int rc;

	if (b->fails.n == 0)
		return EG_OK;
	eg_json_init(&j, &buf);
	eg_json_arr_begin(&j);
	for (size_t i = 0; i < b->fails.n; i++) {
		eg_json_obj_begin(&j);
		eg_json_key(&j, "trial");
		eg_json_int(&j, b->fails.v[i].trial);
		eg_json_key(&j, "attempt");
		eg_json_int(&j, b->fails.v[i].attempt);
		eg_json_key(&j, "error");
		eg_json_str(&j, b->fails.v[i].error);
		eg_json_obj_end(&j);
	}
	eg_json_arr_end(&j);
	rc = eg_buf_failed(&buf)
		     ? eg_diag_set(d, EG_ENOMEM, "out of memory")
		     : eg_sched_fails(db->store, eg_buf_str(&buf),
				      &b->fails_applied, d);
	eg_buf_free(&buf);
	return rc;
}

static int run_beats(struct co_db *db, struct co_batch *b, eg_diag *d)
{
	eg_buf buf = EG_BUF_INIT;
	eg_json j;
	int rc;

	if (b->beats.n == 0)
		return EG_OK;
	eg_json_init(&j, &buf);
	eg_json_arr_begin(&j);
	for (size_t i = 0; i < b->beats.n; i++) {
		eg_json_obj_begin(&j);
		eg_json_key(&j, "trial");
		eg_json_int(&j, b->beats.v[i].trial);
		eg_json_key(&j, "attempt");
		eg_json_int(&j, b->beats.v[i].attempt);
		eg_json_key(&j, "owner");
		eg_json_str(&j, b->beats.v[i].owner);
		eg_json_key(&j, "ms");
		eg_json_int(&j, b->beats.v[i].ms);
		eg_json_obj_end(&j);
	}
	eg_json_arr_end(&j);
	rc = eg_buf_failed(&buf)
		     ? eg_diag_set(d, EG_ENOMEM, "out of memory")
		     : eg_sched_renew(db->store, eg_buf_str(&buf),
				      &b->renewed, d);
	eg_buf_free(&buf);
	return rc;
}

/* PROGRESS metrics -> `metrics` rows through one binary COPY: every
 * numeric entry except epoch and round, which locate the row. */
static int run_progress(struct co_db *db, struct co_batch *b, eg_diag *d)
{
	co_vec(eg_store_metric) rows = {0};
	int rc = EG_OK;

	for (size_t i = 0; i < b->progress.n; i++) {
		const struct co_progress *p = &b->progress.v[i];
		const eg_val *m = p->metrics;
		const eg_val *ep = eg_val_get(m, "epoch");
		const eg_val *rd = eg_val_get(m, "round");
		int epoch = -1, round = -1;

		if (ep != NULL && eg_val_is_num(ep) &&
		    eg_val_as_num(ep) >= 0 && eg_val_as_num(ep) < 2e9)
			epoch = (int)eg_val_as_num(ep);
		if (rd != NULL && eg_val_is_num(rd) &&
		    eg_val_as_num(rd) >= 0 && eg_val_as_num(rd) < 2e9)
			round = (int)eg_val_as_num(rd);
		for (size_t k = 0; k < eg_val_len(m); k++) {
			const char *name = eg_val_key_at(m, k);
			const eg_val *v = eg_val_at(m, k);
			eg_store_metric *row;

			if (!eg_val_is_num(v) || strcmp(name, "epoch") == 0 ||
			    strcmp(name, "round") == 0)
				continue;
			row = co_push(&rows);
			if (row == NULL) {
				rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
				goto out;
			}
			row->trial_id = p->trial;
			row->attempt = (int)p->attempt;
			row->epoch = epoch;
			row->round = round;
			row->name = name;
			row->value = eg_val_as_num(v);
		}
	}
	rc = eg_store_metrics_write(db->store, rows.v, rows.n, d);
out:
	free(rows.v);
	return rc;
}

static int run_agents(struct co_db *db, struct co_batch *b, eg_diag *d)
{
	eg_buf buf = EG_BUF_INIT;
	eg_json j;
	int rc = EG_OK;

	if (b->agents_up.n > 0) {
		eg_json_init(&j, &buf);
		eg_json_arr_begin(&j);
		for (size_t i = 0; i < b->agents_up.n; i++) {
			const struct co_agent *a = &b->agents_up.v[i];

			eg_json_obj_begin(&j);
			eg_json_key(&j, "name");
			eg_json_str(&j, a->name);
			eg_json_key(&j, "role");
			eg_json_str(&j, a->role);
			eg_json_key(&j, "address");
			eg_json_str(&j, a->addr);
			eg_json_key(&j, "capabilities");
			eg_json_raw(&j, a->caps);
			eg_json_obj_end(&j);
		}
		eg_json_arr_end(&j);
		rc = eg_buf_failed(&buf)
			     ? eg_diag_set(d, EG_ENOMEM, "out of memory")
			     : eg_sched_agents_up(db->store, eg_buf_str(&buf), d);
		eg_buf_reset(&buf);
	}
	if (rc == EG_OK && b->agents_down.n > 0) {
		j_str_array(&buf, b->agents_down.v, b->agents_down.n);
		rc = eg_buf_failed(&buf)
			     ? eg_diag_set(d, EG_ENOMEM, "out of memory")
			     : eg_sched_agents_down(db->store,
						    eg_buf_str(&buf), d);
	}
	eg_buf_free(&buf);
	return rc;
}

static int run_batch(struct co_db *db, struct co_batch *b, eg_diag *d)
{
	int rc;

	rc = eg_sched_begin(db->store, d);
	if (rc != EG_OK)
		return rc;
	if ((rc = run_agents(db, b, d)) != EG_OK ||
	    (rc = run_results(db, b, d)) != EG_OK ||
	    (rc = run_fails(db, b, d)) != EG_OK ||
	    (rc = run_beats(db, b, d)) != EG_OK ||
	    (rc = run_progress(db, b, d)) != EG_OK)
		goto fail;
	if (b->owners_gone.n > 0) {
		eg_buf buf = EG_BUF_INIT;

		j_str_array(&buf, b->owners_gone.v, b->owners_gone.n);
		rc = eg_sched_requeue_owners(db->store, eg_buf_str(&buf),
					     "agent disconnected", &b->requeued,
					     d);
		eg_buf_free(&buf);
		if (rc != EG_OK)
			goto fail;
	}
	if (b->sweep) {
		int64_t rq = 0, fl = 0;

		rc = eg_sched_sweep(db->store, &rq, &fl, d);
		if (rc != EG_OK)
			goto fail;
		b->requeued += rq;
		b->failed += fl;
	}
	/* Grid completion is checked once per sweep period rather than per
	 * batch: it costs an index probe per active grid, and a grid's done
	 * state may lag its last trial by one sweep. */
	if (b->sweep) {
		rc = eg_sched_grids_done(db->store, &b->grids_done, d);
		if (rc != EG_OK)
			goto fail;
	}
	/* Anything that may have made a trial behind a lease cursor
	 * pending or leasable again rewinds the cursors. */
	if (b->sweep || b->requeued > 0 || b->fails_applied > 0 ||
	    b->failed > 0)
		eg_sched_cursors_reset(db->cursors);
	for (size_t i = 0; i < b->wants.n; i++) {
		struct co_want *w = &b->wants.v[i];

		rc = eg_sched_lease(db->store, db->cursors, w->owner,
				    w->targets, w->slots, db->lease_ms,
				    &w->leases, &w->nleases, d);
		if (rc != EG_OK)
			goto fail;
	}
	rc = eg_sched_commit(db->store, d);
	if (rc != EG_OK)
		goto fail;
	/* Encode after the commit: a lease that is not durable is never
	 * offered.  An undecodable params text fails only that want. */
	for (size_t i = 0; i < b->wants.n; i++) {
		eg_diag ed = {{0}};
		struct co_want *w = &b->wants.v[i];

		if (encode_assigns(db, w, &ed) != EG_OK) {
			eg_log(EG_LOG_ERROR, "ASSIGN encoding: %s; leases "
			       "return to pending at expiry", ed.msg);
			eg_buf_reset(&w->frames);
			eg_sched_leases_free(w->leases, w->nleases);
			w->leases = NULL;
			w->nleases = 0;
		}
	}
	return EG_OK;
fail:
	eg_sched_rollback(db->store);
	/* The cursors may have moved past leases that were rolled back. */
	eg_sched_cursors_reset(db->cursors);
	return rc;
}

static bool conn_ok(struct co_db *db)
{
	return db->store != NULL &&
	       PQstatus((PGconn *)eg_store_pgconn(db->store)) == CONNECTION_OK;
}

static bool stopping(struct co_db *db)
{
	bool s;

	pthread_mutex_lock(&db->mu);
	s = db->stop;
	pthread_mutex_unlock(&db->mu);
	return s;
}

/* (Re)connects with backoff until connected or asked to stop. */
static void ensure_conn(struct co_db *db)
{
	int backoff = 100;
	bool logged = false;

	while (!conn_ok(db)) {
		eg_diag d = {{0}};
		int rc;

		eg_store_close(db->store);
		db->store = NULL;
		rc = eg_store_connect(db->conninfo, &db->store, &d);
		if (rc == EG_OK)
			rc = eg_sched_listen(db->store, &d);
		if (rc == EG_OK) {
			if (logged)
				eg_log(EG_LOG_WARN, "database: reconnected");
			break;
		}
		if (!logged) {
			eg_log(EG_LOG_WARN, "database: %s; retrying with "
			       "backoff up to 2 s", eg_diag_msg(&d, rc));
			logged = true;
		}
		if (stopping(db) && backoff >= 2000)
			return;
		struct timespec ts = {backoff / 1000,
				      (long)(backoff % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
}

/* Reads pending notifications without blocking into b->notes. */
static void read_notes(struct co_db *db, struct co_batch *b)
{
	PGconn *c;
	PGnotify *n;

	if (!conn_ok(db))
		return;
	c = eg_store_pgconn(db->store);
	PQconsumeInput(c);
	while ((n = PQnotifies(c)) != NULL) {
		struct co_note *note = co_push(&b->notes);

		if (note != NULL) {
			note->kind = strcmp(n->relname, "expgrid_cancel") == 0
					     ? CO_NOTE_CANCEL
					     : CO_NOTE_GRID;
			note->grid = strtoll(n->extra, NULL, 10);
		}
		PQfreemem(n);
	}
}

static void post(struct co_db *db, struct co_batch *b)
{
	pthread_mutex_lock(&db->mu);
	b->next = NULL;
	if (db->tail != NULL)
		db->tail->next = b;
	else
		db->done = b;
	db->tail = b;
	pthread_mutex_unlock(&db->mu);
	db->notify(db->ud);
}

static void *db_main(void *arg)
{
	struct co_db *db = arg;

	ensure_conn(db);
	for (;;) {
		struct co_batch *b;
		struct timespec ts;

		pthread_mutex_lock(&db->mu);
		if (db->in == NULL && !db->stop) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += POLL_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&db->cv, &db->mu, &ts);
		}
		b = db->in;
		db->in = NULL;
		if (b == NULL && db->stop) {
			pthread_mutex_unlock(&db->mu);
			break;
		}
		pthread_mutex_unlock(&db->mu);

		if (b == NULL) {
			/* Idle: only notifications. */
			struct co_batch *nb;

			if (!conn_ok(db))
				ensure_conn(db);
			nb = eg__coord_batch_new();
			if (nb == NULL)
				continue;
			read_notes(db, nb);
			if (nb->notes.n > 0)
				post(db, nb);
			else
				eg__coord_batch_free(nb);
			continue;
		}
		for (;;) {
			eg_diag d = {{0}};
			struct timespec t0, t1;
			int rc;

			ensure_conn(db);
			clock_gettime(CLOCK_MONOTONIC, &t0);
			reset_outputs(b);
			if (!conn_ok(db)) {
				/* Stopping with the database away. */
				b->rc = EG_EDB;
				snprintf(b->err, sizeof(b->err),
					 "database unreachable at shutdown");
				break;
			}
			rc = run_batch(db, b, &d);
			if (rc == EG_OK) {
				size_t nl = 0;

				clock_gettime(CLOCK_MONOTONIC, &t1);
				for (size_t i = 0; i < b->wants.n; i++)
					nl += b->wants.v[i].nleases;
				eg_log(EG_LOG_DEBUG, "batch: %zu results (%zu "
				       "new), %zu fails, %zu renewals, %zu "
				       "progress, %zu leases for %zu wants, "
				       "%.1f ms", b->results.n, b->accepted,
				       b->fails.n, b->beats.n, b->progress.n,
				       nl, b->wants.n,
				       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
					       (double)(t1.tv_nsec - t0.tv_nsec) /
						       1e6);
				break;
			}
			if (conn_ok(db)) {
				b->rc = rc;
				snprintf(b->err, sizeof(b->err), "%s",
					 eg_diag_msg(&d, rc));
				reset_outputs(b);
				b->rc = rc;
				break;
			}
			eg_log(EG_LOG_WARN, "database: connection lost (%s); "
			       "the batch will be retried", eg_diag_msg(&d, rc));
		}
		read_notes(db, b);
		post(db, b);
	}
	eg_store_close(db->store);
	db->store = NULL;
	return NULL;
}

int eg__coord_db_start(const char *conninfo, int64_t lease_ms,
		       size_t max_frame, void (*notify)(void *), void *ud,
		       struct co_db **out)
{
	struct co_db *db = calloc(1, sizeof(*db));

	if (db == NULL)
		return EG_ENOMEM;
	db->conninfo = strdup(conninfo);
	if (db->conninfo == NULL) {
		free(db);
		return EG_ENOMEM;
	}
	if (eg_sched_cursors_new(&db->cursors) != EG_OK) {
		free(db->conninfo);
		free(db);
		return EG_ENOMEM;
	}
	db->lease_ms = lease_ms;
	db->max_frame = max_frame;
	db->notify = notify;
	db->ud = ud;
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->cv, NULL);
	if (pthread_create(&db->thread, NULL, db_main, db) != 0) {
		eg_sched_cursors_free(db->cursors);
		free(db->conninfo);
		free(db);
		return EG_ENOMEM;
	}
	*out = db;
	return EG_OK;
}

void eg__coord_db_submit(struct co_db *db, struct co_batch *b)
{
	pthread_mutex_lock(&db->mu);
	db->in = b;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
}

struct co_batch *eg__coord_db_take(struct co_db *db)
{
	struct co_batch *b;

	pthread_mutex_lock(&db->mu);
	b = db->done;
	db->done = db->tail = NULL;
	pthread_mutex_unlock(&db->mu);
	return b;
}

void eg__coord_db_stop(struct co_db *db)
{
	struct co_batch *b;

	if (db == NULL)
		return;
	pthread_mutex_lock(&db->mu);
	db->stop = true;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
	pthread_join(db->thread, NULL);
	eg__coord_batch_free(db->in);
	while ((b = db->done) != NULL) {
		db->done = b->next;
		eg__coord_batch_free(b);
	}
	pthread_mutex_destroy(&db->mu);
	pthread_cond_destroy(&db->cv);
	eg_sched_cursors_free(db->cursors);
	free(db->conninfo);
	free(db);
}
