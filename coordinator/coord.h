/*
 * coord.h - internals shared by the coordinator's sources: the batch that
 * travels between the event loop and the database thread.
 *
 * The loop (server.c) owns every socket and never touches PostgreSQL.  It
 * collects what agents send (RESULT, FAIL, HEARTBEAT, PROGRESS, WANT) and
 * what happened to connections (agents up and down) into the *next* batch.
 * Whenever the database thread is idle the loop hands it that batch and
 * starts a new one; the thread runs the whole batch in one transaction,
 * fills in the outputs and posts it back through a uv_async; the loop then
 * applies the outputs (ACKs, ASSIGN frames, CANCELs, wake-ups).  So every
 * message that arrived while one transaction ran goes into the next one,
 * and throughput follows the batch size, not the commit latency.
 *
 * Ownership: a batch belongs to exactly one side at a time (the loop while
 * filling and applying, the thread while running); handing it over through
 * eg__coord_db_submit and the completion callback transfers ownership, so
 * nothing in it is locked.  Connections are named by a 64-bit id (slot and
 * generation) because one may close while its batch is away.
 */
#ifndef EG_COORD_H
#define EG_COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/value.h"
#include "proto/msg.h"
#include "store/sched.h"

/* A growable array of T: co_vec(T) v; co_push(&v) returns a zeroed slot
 * (NULL on out of memory). */
#define co_vec(T)                                                      \
	struct {                                                       \
		T *v;                                                  \
		size_t n, cap;                                         \
	}
void *eg__coord_grow(void **v, size_t *n, size_t *cap, size_t elem);
#define co_push(vec)                                                   \
	((__typeof__((vec)->v))eg__coord_grow((void **)&(vec)->v,      \
					      &(vec)->n, &(vec)->cap,  \
					      sizeof(*(vec)->v)))

struct co_result {
	uint64_t conn;
	int64_t trial, attempt;
	char *agent;     /* owned */
	eg_val *payload; /* owned */
	bool accepted;   /* out */
};

struct co_fail {
	uint64_t conn;
	int64_t trial, attempt;
	char *error; /* owned */
};

struct co_beat {
	int64_t trial, attempt;
	char *owner; /* owned */
	int64_t ms;
};

struct co_progress {
	int64_t trial, attempt;
	eg_val *metrics; /* owned */
};

struct co_want {
	uint64_t conn;
	char *owner;   /* owned */
	char *targets; /* owned: JSON array of strings */
	int slots;
	/* out: the leases and their ASSIGN frames, ready to write */
	eg_sched_leased *leases;
	size_t nleases;
	eg_buf frames;
};

struct co_agent {
	char *name, *role, *caps, *addr; /* owned; caps is JSON text made by
					  * the JSON writer (trusted) */
};

enum co_note_kind { CO_NOTE_GRID, CO_NOTE_CANCEL };
struct co_note {
	enum co_note_kind kind;
	int64_t grid;
};

struct co_batch {
	co_vec(struct co_result) results;
	co_vec(struct co_fail) fails;
	co_vec(struct co_beat) beats;
	co_vec(struct co_progress) progress;
	co_vec(struct co_want) wants;
	co_vec(struct co_agent) agents_up;
	co_vec(char *) agents_down; /* names */
	co_vec(char *) owners_gone; /* lease owners whose connection dropped */
	bool sweep;
	bool work; /* handed over by the loop (not a notification-only post) */
	/* out */
	int rc;            /* EG_OK, or the batch was not committed */
	char err[512];
	int64_t requeued, failed, renewed, fails_applied, grids_done;
	size_t accepted;
	co_vec(struct co_note) notes;
	struct co_batch *next; /* completion list link */
};

struct co_batch *eg__coord_batch_new(void);
void eg__coord_batch_free(struct co_batch *b);
bool eg__coord_batch_empty(const struct co_batch *b);

/* ---- the database thread (db.c) ---- */
struct co_db;
/* Starts the thread; `notify` is called on the thread after each batch or
 * notification is posted (it does uv_async_send). */
int eg__coord_db_start(const char *conninfo, int64_t lease_ms,
		       size_t max_frame, void (*notify)(void *), void *ud,
		       struct co_db **out);
/* Hands a batch to the thread (which must be idle); ownership moves. */
void eg__coord_db_submit(struct co_db *db, struct co_batch *b);
/* Takes every completed batch (a list through ->next), or NULL. */
struct co_batch *eg__coord_db_take(struct co_db *db);
/* Asks the thread to finish its batch and exit, joins it, frees. */
void eg__coord_db_stop(struct co_db *db);

/* ---- the server (server.c) ---- */
struct co_opts {
	const char *home;
	const char *listen_host;
	int listen_port;
	size_t max_frame;
	int handshake_ms, idle_ms, drain_ms, sweep_ms;
	int64_t lease_ms;
	int max_conns;
};
struct eg_proto_token;
int eg__coord_run(const struct co_opts *o, const struct eg_proto_token *tok,
		  const char *conninfo);

#endif
