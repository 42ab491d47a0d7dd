/*
 * sched.c - the scheduler's statements (see sched.h for the state machine).
 *
 * Batched inputs are one jsonb parameter expanded with jsonb_to_recordset.
 * The numbers in it come from the JSON writer, which prints finite doubles
 * and int64s only (non-finite values become null), so the ::float8 casts
 * below cannot fail on hostile input and one bad payload cannot poison a
 * whole batch; epochs and rounds are range-checked before ::int.
 *
 * Leasing walks the active grids in scheduling order (a handful of rows)
 * and takes trials of each through the partial index trials_pending
 * (target, id) WHERE state = 'pending', which yields them in id order, so a
 * lease never sorts a grid's pending set: a 1,000,000-trial grid costs the
 * same per lease as a 10-trial one.
 */
#include "store/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define REQUEUE_STATE                                                  \
	"state = CASE WHEN t.attempts >= t.max_attempts THEN 'failed' " \
	"ELSE 'pending' END, "                                         \
	"finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() " \
	"ELSE NULL END, lease_owner = NULL, lease_expires = NULL"

/* A grid is served for its own target and for any other target it has
 * pending trials of (the companion train trials of an fpga grid, which run
 * on cpu), one row per (grid, target) pair. */
static const char sql_grids[] =
	"SELECT g.id, x.t FROM grids g, "
	"jsonb_array_elements_text($1::jsonb) x(t) WHERE g.state = 'active' "
	"AND (g.target = x.t OR EXISTS (SELECT 1 FROM trials t WHERE "
	"t.grid_id = g.id AND t.target = x.t AND t.state = 'pending')) "
	"ORDER BY g.priority DESC, g.created_at, g.id, x.t";

static const char sql_lease[] =
	"WITH c AS (SELECT t.id FROM trials t WHERE t.state = 'pending' "
	" AND t.target = $2 AND t.grid_id = $1::bigint AND t.id > $6::bigint"
	" AND (t.depends_on IS NULL OR EXISTS (SELECT 1 FROM trials d"
	"  WHERE d.id = t.depends_on AND d.state = 'done'))"
	" ORDER BY t.id LIMIT $3::int FOR UPDATE SKIP LOCKED) "
	"UPDATE trials t SET state = 'leased', attempts = t.attempts + 1, "
	"lease_owner = $4, lease_expires = clock_timestamp() + "
	"$5::bigint * interval '1 millisecond', "
	"started_at = coalesce(t.started_at, now()) "
	"FROM c WHERE t.id = c.id "
	"RETURNING t.id, t.attempts, t.grid_id, (t.params "
	/* A trial others depend on returns its network (trials/coverify.h);
	 * a dependent trial gets its dependency's network. */
	" || CASE WHEN EXISTS (SELECT 1 FROM trials x WHERE x.depends_on = t.id)"
	"  THEN '{\"export_network\": true}'::jsonb ELSE '{}'::jsonb END"
	" || CASE WHEN t.depends_on IS NULL THEN '{}'::jsonb ELSE coalesce(("
	"  SELECT jsonb_build_object('network', a.data) FROM artifacts a"
	"  WHERE a.trial_id = t.depends_on AND a.name = 'network'),"
	"  '{}'::jsonb) END"
	/* A hardware agent picks a board of the trial's target type. */
	" || CASE WHEN t.target LIKE 'fpga:%' THEN jsonb_build_object("
	"  'target', t.target) ELSE '{}'::jsonb END)::text";

/* A number field of a jsonb row `v`, or NULL if it is not a number. */
#define NUM(key)                                                       \
	"CASE WHEN jsonb_typeof(v->'" key "') = 'number' THEN "        \
	"(v->'" key "')::float8 END"

static const char sql_results[] =
	"WITH x AS (SELECT DISTINCT ON (trial) * FROM "
	" jsonb_to_recordset($1::jsonb) AS "
	" x(trial bigint, attempt int, agent text, payload jsonb)), "
	"up AS (UPDATE trials t SET state = 'done', finished_at = now(), "
	" lease_owner = NULL, lease_expires = NULL FROM x "
	" WHERE t.id = x.trial AND t.state IN ('pending', 'leased', 'running')"
	" RETURNING t.id), "
	"acc AS (SELECT x.* FROM x JOIN up ON up.id = x.trial), "
	"ins AS (INSERT INTO results (trial_id, attempt, metrics, curve, "
	" rounds, layers, wall_s, agent) SELECT trial, attempt, "
	" CASE WHEN jsonb_typeof(payload->'metrics') = 'object' "
	"  THEN payload->'metrics' ELSE '{}'::jsonb END, "
	" payload->'curve', payload->'rounds', payload->'layers', "
	" CASE WHEN jsonb_typeof(coalesce(payload->'wall_s', "
	"  payload->'metrics'->'wall_s')) = 'number' THEN (coalesce("
	"  payload->'wall_s', payload->'metrics'->'wall_s'))::float8 END, "
	" agent FROM acc ON CONFLICT (trial_id) DO NOTHING RETURNING trial_id), "
	"series AS (SELECT acc.trial, acc.attempt, e.v, s.kind FROM acc, "
	" LATERAL (VALUES ('curve'), ('rounds')) s(kind), "
	" LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof("
	"  acc.payload->s.kind) = 'array' THEN acc.payload->s.kind "
	"  ELSE '[]'::jsonb END) e(v) WHERE jsonb_typeof(e.v) = 'object'), "
	"cur AS (INSERT INTO metrics (trial_id, attempt, epoch, round, name, "
	" value) SELECT trial, attempt, "
	" CASE WHEN kind = 'curve' AND jsonb_typeof(v->'epoch') = 'number' "
	"  AND abs((v->'epoch')::float8) < 2e9 THEN (v->'epoch')::float8::int END, "
	" CASE WHEN kind = 'rounds' AND jsonb_typeof(v->'round') = 'number' "
	"  AND abs((v->'round')::float8) < 2e9 THEN (v->'round')::float8::int END, "
	" kv.key, kv.value::float8 FROM series, LATERAL jsonb_each(v) kv "
	" WHERE jsonb_typeof(kv.value) = 'number' "
	" AND kv.key NOT IN ('epoch', 'round') RETURNING 1), "
	/* Co-verification rows (docs/coverify.md): `layers` into
	 * layer_similarity, `outputs` into layer_outputs; a train trial's
	 * `network` into artifacts.  Values of the wrong JSON type become
	 * NULL (or skip the row) instead of failing the batch. */
	"lay AS (SELECT acc.trial, e.v FROM acc, LATERAL jsonb_array_elements("
	" CASE WHEN jsonb_typeof(acc.payload->'layers') = 'array' THEN "
	" acc.payload->'layers' ELSE '[]'::jsonb END) e(v) "
	" WHERE jsonb_typeof(e.v) = 'object' "
	" AND jsonb_typeof(e.v->'layer') = 'number' "
	" AND abs((e.v->'layer')::float8) < 2e9), "
	"sim AS (INSERT INTO layer_similarity (trial_id, layer, name, pair, "
	" s_tol, s_bit, max_abs, rel_l2, top1_agree) SELECT trial, "
	" (v->'layer')::float8::int, coalesce(v->>'name', ''), v->>'pair', "
	" " NUM("s_tol") ", " NUM("s_bit") ", " NUM("max_abs") ", "
	" " NUM("rel_l2") ", " NUM("top1_agree") " FROM lay "
	" WHERE v->>'pair' IN ('software-design', 'design-hardware', "
	" 'software-hardware') ON CONFLICT DO NOTHING RETURNING 1), "
	"outp AS (SELECT acc.trial, e.v FROM acc, LATERAL jsonb_array_elements("
	" CASE WHEN jsonb_typeof(acc.payload->'outputs') = 'array' THEN "
	" acc.payload->'outputs' ELSE '[]'::jsonb END) e(v) "
	" WHERE jsonb_typeof(e.v) = 'object' "
	" AND jsonb_typeof(e.v->'layer') = 'number' "
	" AND abs((e.v->'layer')::float8) < 2e9), "
	"lo AS (INSERT INTO layer_outputs (trial_id, layer, name, source, n, "
	" checksum, est_cycles, est_energy_nj) SELECT trial, "
	" (v->'layer')::float8::int, coalesce(v->>'name', ''), v->>'source', "
	" CASE WHEN jsonb_typeof(v->'n') = 'number' AND "
	"  abs((v->'n')::float8) < 2e9 THEN (v->'n')::float8::int END, "
	" v->>'checksum', "
	" CASE WHEN jsonb_typeof(v->'est_cycles') = 'number' AND "
	"  abs((v->'est_cycles')::float8) < 9e18 THEN "
	"  (v->'est_cycles')::float8::bigint END, " NUM("est_energy_nj")
	" FROM outp WHERE v->>'source' IN ('software', 'design', 'hardware') "
	" ON CONFLICT DO NOTHING RETURNING 1), "
	"art AS (INSERT INTO artifacts (trial_id, name, data) SELECT trial, "
	" 'network', payload->'network' FROM acc "
	" WHERE jsonb_typeof(payload->'network') = 'object' "
	" ON CONFLICT DO NOTHING RETURNING 1) "
	"SELECT trial_id, (SELECT count(*) FROM cur) FROM ins";

static const char sql_fails[] =
	"UPDATE trials t SET " REQUEUE_STATE ", last_error = x.error "
	"FROM jsonb_to_recordset($1::jsonb) AS x(trial bigint, attempt int, "
	"error text) WHERE t.id = x.trial AND t.attempts = x.attempt "
	"AND t.state IN ('leased', 'running')";

static const char sql_renew[] =
	"UPDATE trials t SET lease_expires = clock_timestamp() + "
	"x.ms * interval '1 millisecond', state = 'running', "
	"lease_owner = x.owner "
	"FROM jsonb_to_recordset($1::jsonb) AS x(trial bigint, attempt int, "
	"owner text, ms bigint) WHERE t.id = x.trial AND t.attempts = x.attempt "
	"AND t.state IN ('leased', 'running')";

static const char sql_requeue_owners[] =
	"UPDATE trials t SET " REQUEUE_STATE ", last_error = $2 || "
	"' (attempt ' || t.attempts || ')' "
	"WHERE t.state IN ('leased', 'running') AND t.lease_owner IN "
	"(SELECT jsonb_array_elements_text($1::jsonb))";

static const char sql_sweep[] =
	"UPDATE trials t SET " REQUEUE_STATE ", last_error = "
	"'lease expired (attempt ' || t.attempts || ')' "
	"WHERE t.state IN ('leased', 'running') "
	"AND t.lease_expires < clock_timestamp() "
	"RETURNING t.state = 'failed'";

static const char sql_sweep_deps[] =
	"UPDATE trials t SET state = 'failed', finished_at = now(), "
	"last_error = 'dependency ' || d.id || ' ' || d.state "
	"FROM trials d WHERE t.state = 'pending' AND t.depends_on = d.id "
	"AND d.state IN ('failed', 'cancelled')";

/* LIMIT 1 makes the planner stop at the first unfinished trial through
 * trials_grid_state instead of building a bitmap of all of them. */
static const char sql_grids_done[] =
	"UPDATE grids g SET state = 'done' WHERE g.state = 'active' "
	"AND (SELECT count(*) FROM (SELECT 1 FROM trials t WHERE "
	"t.grid_id = g.id AND t.state IN ('pending', 'leased', 'running') "
	"LIMIT 1) u) = 0";

/* Agents upserted as connected; a hardware agent's capabilities.boards
 * (name, type, backend, state, health, last_error) become its rows of
 * `boards`, as of this HELLO, and boards it no longer lists go away. */
static const char sql_agents_up[] =
	"WITH x AS (SELECT DISTINCT ON (name) name, role, "
	"coalesce(capabilities, '[]'::jsonb) AS caps, address "
	"FROM jsonb_to_recordset($1::jsonb) AS x(name text, "
	"role text, capabilities jsonb, address text)), "
	"up AS (INSERT INTO agents AS a (name, role, capabilities, address, "
	"state) SELECT name, role, caps, address, 'connected' FROM x "
	"ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
	"capabilities = excluded.capabilities, address = excluded.address, "
	"state = 'connected', connected_at = now(), last_seen = now() "
	"RETURNING a.id, a.capabilities), "
	"b AS (SELECT up.id, e.v FROM up, LATERAL jsonb_array_elements("
	" CASE WHEN jsonb_typeof(up.capabilities->'boards') = 'array' "
	" THEN up.capabilities->'boards' ELSE '[]'::jsonb END) e(v) "
	" WHERE jsonb_typeof(e.v) = 'object' AND e.v->>'name' IS NOT NULL "
	" AND e.v->>'type' IS NOT NULL "
	" AND e.v->>'backend' IN ('sim', 'exec')), "
	"gone AS (DELETE FROM boards d USING up WHERE d.agent_id = up.id "
	" AND NOT EXISTS (SELECT 1 FROM b WHERE b.id = up.id "
	" AND b.v->>'name' = d.name)) "
	"INSERT INTO boards (agent_id, name, type, backend, state, health, "
	"last_check, last_error) SELECT DISTINCT ON (id, v->>'name') id, "
	"v->>'name', v->>'type', v->>'backend', "
	"CASE WHEN v->>'state' IN ('idle', 'reserved', 'running') "
	" THEN v->>'state' ELSE 'idle' END, "
	"CASE WHEN v->>'health' IN ('good', 'unknown', 'bad', 'maintenance') "
	" THEN v->>'health' ELSE 'unknown' END, now(), v->>'last_error' "
	"FROM b ON CONFLICT (agent_id, name) DO UPDATE SET "
	"type = excluded.type, backend = excluded.backend, "
	"state = excluded.state, health = excluded.health, "
	"last_check = excluded.last_check, last_error = excluded.last_error";

static const char sql_agents_down[] =
	"UPDATE agents SET state = 'disconnected', last_seen = now() "
	"WHERE name IN (SELECT jsonb_array_elements_text($1::jsonb))";

int eg_sched_begin(eg_store *s, eg_diag *d)
{
	return eg__store_cmd(s, "BEGIN", d);
}

int eg_sched_commit(eg_store *s, eg_diag *d)
{
	return eg__store_cmd(s, "COMMIT", d);
}

void eg_sched_rollback(eg_store *s)
{
	PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* Runs a command and adds its affected-row count to *n (if n). */
static int run_count(eg_store *s, const char *sql, int np,
		     const char *const *p, int64_t *n, eg_diag *d)
{
	PGresult *r = eg__store_exec(s, sql, np, p, PGRES_COMMAND_OK, d);

	if (r == NULL)
		return EG_EDB;
	if (n != NULL)
		*n += strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return EG_OK;
}

struct eg_sched_cursors {
	struct {
		int64_t grid, last;
	} *v;
	size_t n, cap;
};

int eg_sched_cursors_new(eg_sched_cursors **out)
{
	*out = calloc(1, sizeof(**out));
	return *out != NULL ? EG_OK : EG_ENOMEM;
}

void eg_sched_cursors_free(eg_sched_cursors *c)
{
	if (c != NULL)
		free(c->v);
	free(c);
}

void eg_sched_cursors_reset(eg_sched_cursors *c)
{
	c->n = 0;
}

static int64_t cursor_get(const eg_sched_cursors *c, int64_t grid)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].grid == grid)
			return c->v[i].last;
	return 0;
}

/* Remembers `last` for the grid (forgetting is always safe: a cursor is
 * only a hint, so out of memory just drops it). */
static void cursor_set(eg_sched_cursors *c, int64_t grid, int64_t last)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].grid == grid) {
			c->v[i].last = last;
			return;
		}
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 8;
		void *g = realloc(c->v, nc * sizeof(*c->v));

		if (g == NULL)
			return;
		c->v = g;
		c->cap = nc;
	}
	c->v[c->n].grid = grid;
	c->v[c->n++].last = last;
}

void eg_sched_leases_free(eg_sched_leased *l, size_t n)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(l[i].params);
	free(l);
}

int eg_sched_lease(eg_store *s, eg_sched_cursors *cur, const char *owner,
		   const char *targets_json, int slots, int64_t lease_ms,
		   eg_sched_leased **out, size_t *n, eg_diag *d)
{
	const char *gp[1] = {targets_json};
	PGresult *grids = NULL, *r = NULL;
	char lim[24], ms[24], from[24];
	int rc = EG_OK, left = slots;

	if (slots <= 0)
		return EG_OK;
	grids = eg__store_exec(s, sql_grids, 1, gp, PGRES_TUPLES_OK, d);
	if (grids == NULL)
		return EG_EDB;
	snprintf(ms, sizeof(ms), "%lld", (long long)lease_ms);
	for (int g = 0; g < PQntuples(grids) && left > 0; g++) {
		const char *p[6] = {PQgetvalue(grids, g, 0),
				    PQgetvalue(grids, g, 1), lim, owner, ms,
				    from};
		int64_t gid = strtoll(p[0], NULL, 10), last;
		eg_sched_leased *grown;
		int rows;

		snprintf(lim, sizeof(lim), "%d", left);
		last = cursor_get(cur, gid);
		snprintf(from, sizeof(from), "%lld", (long long)last);
		r = eg__store_exec(s, sql_lease, 6, p, PGRES_TUPLES_OK, d);
		if (r == NULL) {
			rc = EG_EDB;
			goto out;
		}
		rows = PQntuples(r);
		if (rows == 0) {
			PQclear(r);
			r = NULL;
			continue;
		}
		grown = realloc(*out, (*n + (size_t)rows) * sizeof(**out));
		if (grown == NULL) {
			rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
			goto out;
		}
		*out = grown;
		for (int i = 0; i < rows; i++) {
			eg_sched_leased *l = &(*out)[*n];

			l->trial = strtoll(PQgetvalue(r, i, 0), NULL, 10);
			l->attempt = strtoll(PQgetvalue(r, i, 1), NULL, 10);
			l->grid = strtoll(PQgetvalue(r, i, 2), NULL, 10);
			l->params = strdup(PQgetvalue(r, i, 3));
			if (l->trial > last)
				last = l->trial;
			if (l->params == NULL) {
				rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
				goto out;
			}
			(*n)++;
		}
		cursor_set(cur, gid, last);
		left -= rows;
		PQclear(r);
		r = NULL;
	}
out:
	PQclear(r);
	PQclear(grids);
	return rc;
}

int eg_sched_results(eg_store *s, const char *items_json, int64_t *accepted,
		     size_t *naccepted, eg_diag *d)
{
	const char *p[1] = {items_json};
	PGresult *r = eg__store_exec(s, sql_results, 1, p, PGRES_TUPLES_OK, d);

	*naccepted = 0;
	if (r == NULL)
		return EG_EDB;
	for (int i = 0; i < PQntuples(r); i++)
		accepted[(*naccepted)++] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
	PQclear(r);
	return EG_OK;
}

int eg_sched_fails(eg_store *s, const char *items_json, int64_t *n,
		   eg_diag *d)
{
	const char *p[1] = {items_json};

	return run_count(s, sql_fails, 1, p, n, d);
}

int eg_sched_renew(eg_store *s, const char *items_json, int64_t *n,
		   eg_diag *d)
{
	const char *p[1] = {items_json};

	return run_count(s, sql_renew, 1, p, n, d);
}

int eg_sched_requeue_owners(eg_store *s, const char *owners_json,
			    const char *why, int64_t *n, eg_diag *d)
{
	const char *p[2] = {owners_json, why};

	return run_count(s, sql_requeue_owners, 2, p, n, d);
}

int eg_sched_sweep(eg_store *s, int64_t *requeued, int64_t *failed,
		   eg_diag *d)
{
	PGresult *r = eg__store_exec(s, sql_sweep, 0, NULL, PGRES_TUPLES_OK, d);
	int64_t nf = 0, nr = 0;

	if (r == NULL)
		return EG_EDB;
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetvalue(r, i, 0)[0] == 't')
			nf++;
		else
			nr++;
	}
	PQclear(r);
	if (run_count(s, sql_sweep_deps, 0, NULL, &nf, d) != EG_OK)
		return EG_EDB;
	if (requeued != NULL)
		*requeued = nr;
	if (failed != NULL)
		*failed = nf;
	return EG_OK;
}

int eg_sched_grids_done(eg_store *s, int64_t *n, eg_diag *d)
{
	return run_count(s, sql_grids_done, 0, NULL, n, d);
}

int eg_sched_agents_up(eg_store *s, const char *items_json, eg_diag *d)
{
	const char *p[1] = {items_json};

	return run_count(s, sql_agents_up, 1, p, NULL, d);
}

int eg_sched_agents_down(eg_store *s, const char *names_json, eg_diag *d)
{
	const char *p[1] = {names_json};

	return run_count(s, sql_agents_down, 1, p, NULL, d);
}

int eg_sched_listen(eg_store *s, eg_diag *d)
{
	int rc = eg__store_cmd(s, "LISTEN expgrid_grids", d);

	if (rc == EG_OK)
		rc = eg__store_cmd(s, "LISTEN expgrid_cancel", d);
	return rc;
}
