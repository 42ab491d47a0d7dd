/*
 * sched.h - the scheduler's SQL: leasing, lease renewal, results, failures,
 * requeueing of expired and orphaned leases, grid completion and the agents
 * table.  Used by the coordinator's database thread, which wraps one batch
 * of these calls in one transaction (eg_sched_begin / eg_sched_commit), so
 * that throughput follows the batch size rather than the commit latency.
 *
 * Every call is a parametrized statement.  Batched inputs travel as one
 * jsonb parameter (an array of objects built by the caller with the JSON
 * writer) and are expanded server-side with jsonb_to_recordset, so no value
 * is ever spliced into SQL and no array-literal quoting is needed.
 *
 * State machine (DESIGN.md, "Scheduling semantics"):
 *   pending --lease--> leased --first HEARTBEAT/PROGRESS--> running
 *   leased|running --RESULT--> done
 *   leased|running --FAIL, expiry, owner gone--> pending (attempts <
 *       max_attempts) or failed with last_error
 *   pending --dependency failed or cancelled--> failed
 * `attempts` counts leases handed out: a lease carries attempt = attempts
 * after the increment, so a requeued trial is next leased with attempt + 1.
 * A RESULT is accepted for any trial that is not done, failed or cancelled,
 * whatever attempt it comes from (the first result wins); FAIL and renewal
 * only act on the current attempt, which fences off late messages of an
 * expired lease.
 *
 * Ownership: output arrays are malloc'ed and owned by the caller
 * (eg_sched_leases_free).  Blocking; one thread per eg_store.  Errors are
 * EG_EDB with PostgreSQL's message.
 */
#ifndef EG_STORE_SCHED_H
#define EG_STORE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

typedef struct eg_sched_leased {
	int64_t trial;
	int64_t attempt;
	int64_t grid;
	char *params; /* the trial's params as JSON text; owned */
} eg_sched_leased;

int eg_sched_begin(eg_store *s, eg_diag *d);
int eg_sched_commit(eg_store *s, eg_diag *d);
void eg_sched_rollback(eg_store *s);

/*
 * Where each grid's next pending trial may be: leasing scans a grid's
 * pending trials in id order from the last id it leased, so that the dead
 * index entries of trials already taken (a few hundred thousand in a big
 * grid, until vacuum) are not walked again by every lease.  A trial that
 * becomes pending again behind the cursor (requeued, failed, a dependency
 * now done) is found after eg_sched_cursors_reset, which the caller does
 * whenever it requeues and at every sweep.  Owned by the caller; one thread.
 */
typedef struct eg_sched_cursors eg_sched_cursors;
int eg_sched_cursors_new(eg_sched_cursors **out);
void eg_sched_cursors_free(eg_sched_cursors *c); /* accepts NULL */
void eg_sched_cursors_reset(eg_sched_cursors *c);

/*
 * Leases up to `slots` pending trials whose target is one of `targets_json`
 * (a JSON array of strings) to `owner` for lease_ms: active grids by
 * priority desc, created_at, id; within a grid by trial id; a trial whose
 * depends_on is not done is skipped; FOR UPDATE SKIP LOCKED.  Appends to
 * *out (realloc'ed) and adds to *n.
 */
int eg_sched_lease(eg_store *s, eg_sched_cursors *cur, const char *owner,
		   const char *targets_json, int slots, int64_t lease_ms,
		   eg_sched_leased **out, size_t *n, eg_diag *d);
void eg_sched_leases_free(eg_sched_leased *l, size_t n);

/*
 * Records results.  items_json: [{"trial", "attempt", "agent", "payload"}]
 * with at most one item per trial.  A trial not yet done/failed/cancelled
 * becomes done and gets its `results` row (metrics, curve, rounds, layers,
 * wall_s from the payload) and its curve and rounds as `metrics` rows.  The
 * ids accepted are written to accepted[] (caller-allocated, room for every
 * item) and their number to *naccepted; the others were duplicates or late.
 */
int eg_sched_results(eg_store *s, const char *items_json, int64_t *accepted,
		     size_t *naccepted, eg_diag *d);

/* FAILs: [{"trial", "attempt", "error"}], current attempt only: pending
 * again, or failed with last_error once attempts >= max_attempts.  *n gets
 * the number of trials that changed. */
int eg_sched_fails(eg_store *s, const char *items_json, int64_t *n,
		   eg_diag *d);

/* Renewals: [{"trial", "attempt", "owner", "ms"}]: the current attempt's
 * lease runs ms from now, leased becomes running, and the lease is adopted
 * by `owner` (an agent that reconnected after a coordinator restart). */
int eg_sched_renew(eg_store *s, const char *items_json, int64_t *n,
		   eg_diag *d);

/* Every lease held by one of owners_json (a JSON array of strings) goes back
 * to pending (or failed), with last_error naming `why`. */
int eg_sched_requeue_owners(eg_store *s, const char *owners_json,
			    const char *why, int64_t *n, eg_diag *d);

/* Expired leases back to pending (or failed); pending trials whose
 * dependency failed or was cancelled -> failed.  Counts may be NULL. */
int eg_sched_sweep(eg_store *s, int64_t *requeued, int64_t *failed,
		   eg_diag *d);

/* Active grids with no unfinished trial -> done (an explicit UPDATE, run by
 * the coordinator after each batch that finished trials). */
int eg_sched_grids_done(eg_store *s, int64_t *n, eg_diag *d);

/* Agents: items_json [{"name", "role", "capabilities", "address"}] upserted
 * as connected; names_json (array of strings) marked disconnected. */
int eg_sched_agents_up(eg_store *s, const char *items_json, eg_diag *d);
int eg_sched_agents_down(eg_store *s, const char *names_json, eg_diag *d);

/* LISTENs on expgrid_grids and expgrid_cancel (after every reconnect). */
int eg_sched_listen(eg_store *s, eg_diag *d);

#endif
