/*
 * report.c - the reads behind `expgrid report` that `expgrid query` does not
 * already have: the grid's own row, the parameters that vary, per-epoch
 * curves and lottery rounds from the `metrics` table, and failed trials
 * with their errors.  Each returns an eg_store_rows like eg_store_query, so
 * the report reads every table through one API.
 *
 * Where curves come from: the coordinator writes every PROGRESS point into
 * `metrics` as it arrives and, when the result is accepted, the result's
 * `curve` and `rounds` once more (store/sched.c), so one epoch can appear
 * twice (progress and result) and once per attempt.  The curve read keeps
 * the attempt that produced the accepted result (else the newest attempt)
 * and averages the duplicates of an epoch, which are equal.  Lottery
 * trials repeat epochs 1..E in every round; their progress rows carry the
 * round and their result rows do not, so the read keeps the lowest round
 * present (round 0: the dense network's training) when any row has one.
 * Rounds themselves (epoch NULL, round set) feed the lottery chart.
 *
 * As everywhere in store/, values travel only as parameters.
 */
#include "store/store.h"

#include <stdio.h>

#include "store/store_int.h"

static const char sql_grid[] =
	"SELECT id, name, spec, spec_hash, target, state, priority, "
	"max_attempts, trial_count, to_char(created_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS \"UTC\"') AS created_at "
	"FROM grids WHERE id = $1";

/* $1 grid, $2 metric, $3 how many trials.  Ranked by the final value of
 * the metric in `results` (numbers only: a string would not cast). */
static const char sql_curves[] =
	"WITH c AS (SELECT DISTINCT m.trial_id FROM metrics m "
	" JOIN trials t ON t.id = m.trial_id WHERE t.grid_id = $1 "
	" AND m.name = $2 AND m.epoch IS NOT NULL), "
	"pick AS (SELECT c.trial_id FROM c JOIN trials t ON t.id = c.trial_id "
	" LEFT JOIN results r ON r.trial_id = c.trial_id "
	" ORDER BY CASE WHEN jsonb_typeof(r.metrics -> $2) = 'number' "
	"  THEN (r.metrics ->> $2)::float8 END DESC NULLS LAST, t.idx "
	" LIMIT $3::bigint), "
	"m AS (SELECT m.trial_id, m.attempt, m.epoch, m.round, m.value "
	" FROM metrics m JOIN pick USING (trial_id) "
	" WHERE m.name = $2 AND m.epoch IS NOT NULL), "
	"a AS (SELECT m.trial_id, CASE WHEN bool_or(m.attempt = r.attempt) "
	"  THEN min(r.attempt) ELSE max(m.attempt) END AS attempt "
	" FROM m LEFT JOIN results r USING (trial_id) GROUP BY m.trial_id), "
	"s AS (SELECT m.trial_id, m.attempt, min(m.round) AS round FROM m "
	" JOIN a USING (trial_id, attempt) GROUP BY m.trial_id, m.attempt) "
	"SELECT m.trial_id, m.epoch, avg(m.value) AS value, "
	" (SELECT count(*) FROM c) AS curves "
	"FROM m JOIN s USING (trial_id, attempt) "
	"WHERE m.round IS NOT DISTINCT FROM s.round "
	"GROUP BY m.trial_id, m.epoch ORDER BY m.trial_id, m.epoch";

/* $1 grid, $2 how many trials.  Round rows come from the accepted result
 * only (PROGRESS points carry an epoch too), so they need no dedup beyond
 * the attempt. */
static const char sql_rounds[] =
	"WITH m AS (SELECT m.trial_id, m.round, m.name, m.value FROM metrics m "
	" JOIN trials t ON t.id = m.trial_id "
	" LEFT JOIN results r ON r.trial_id = m.trial_id "
	" WHERE t.grid_id = $1 AND m.round IS NOT NULL AND m.epoch IS NULL "
	" AND m.name IN ('remaining', 'test_acc') "
	" AND (r.attempt IS NULL OR m.attempt = r.attempt)), "
	"c AS (SELECT DISTINCT trial_id FROM m), "
	"pick AS (SELECT c.trial_id FROM c JOIN trials t ON t.id = c.trial_id "
	" LEFT JOIN results r ON r.trial_id = c.trial_id "
	" ORDER BY CASE WHEN jsonb_typeof(r.metrics -> 'test_acc') = 'number' "
	"  THEN (r.metrics ->> 'test_acc')::float8 END DESC NULLS LAST, t.idx "
	" LIMIT $2::bigint) "
	"SELECT m.trial_id, m.round, "
	" avg(m.value) FILTER (WHERE m.name = 'remaining') AS remaining, "
	" avg(m.value) FILTER (WHERE m.name = 'test_acc') AS test_acc, "
	" (SELECT count(*) FROM c) AS trials "
	"FROM m JOIN pick USING (trial_id) "
	"GROUP BY m.trial_id, m.round ORDER BY m.trial_id, m.round";

static const char sql_failed[] =
	"SELECT id, idx, attempts, last_error FROM trials "
	"WHERE grid_id = $1 AND state = 'failed' ORDER BY idx, id";

int eg_store_report(eg_store *s, enum eg_store_report_kind kind,
		    int64_t grid_id, const char *metric, int limit,
		    eg_store_rows **out, eg_diag *d)
{
	char gid[24], lim[16];
	const char *p[3] = {gid, NULL, NULL};
	const char *sql;
	PGresult *res;
	int np = 1, rc;

	*out = NULL;
	snprintf(gid, sizeof(gid), "%lld", (long long)grid_id);
	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 24);
	switch (kind) {
	case EG_STORE_R_GRID:
		sql = sql_grid;
		break;
	case EG_STORE_R_VARYING:
		sql = eg_store_sql("query_varying", NULL);
		break;
	case EG_STORE_R_CURVES:
		sql = sql_curves;
		p[1] = metric != NULL ? metric : "test_acc";
		p[2] = lim;
		np = 3;
		break;
	case EG_STORE_R_ROUNDS:
		sql = sql_rounds;
		p[1] = lim;
		np = 2;
		break;
	case EG_STORE_R_FAILED:
		sql = sql_failed;
		break;
	default:
		return eg_diag_set(d, EG_EINVAL, "unknown report read");
	}
	res = eg__store_exec(s, sql, np, p, PGRES_TUPLES_OK, d);
	if (res == NULL)
		return EG_EDB;
	rc = eg__store_rows_new(res, out, d);
	if (rc != EG_OK)
		PQclear(res);
	return rc;
}
