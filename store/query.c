/*
 * query.c - the reads behind `expgrid query trials|best|paradigms`.
 *
 * `trials` and `best` show, per trial, its id, index, state and attempts,
 * then one column per parameter that varies within the grid (found by
 * query_varying) and one per final metric present in its results.  Their
 * column list is built at run time, but only out of placeholders: each
 * parameter path and metric name is passed as a parameter ($2, $3, ...), and
 * the column titles are kept here rather than in SQL aliases, so names with
 * quotes or SQL metacharacters never reach the SQL text.
 */
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "store/store_int.h"

enum col_kind { COL_TEXT, COL_NUMBER, COL_AUTO, COL_JSON };

struct eg_store_rows {
	PGresult *res;
	int ncols;
	char **names;            /* owned */
	unsigned char *kinds;    /* enum col_kind per column */
};

void eg_store_rows_free(eg_store_rows *r)
{
	if (r == NULL)
		return;
	PQclear(r->res);
	for (int i = 0; r->names != NULL && i < r->ncols; i++)
		free(r->names[i]);
	free(r->names);
	free(r->kinds);
	free(r);
}

int eg_store_rows_ncols(const eg_store_rows *r) { return r->ncols; }
int eg_store_rows_nrows(const eg_store_rows *r) { return PQntuples(r->res); }
const char *eg_store_rows_name(const eg_store_rows *r, int col)
{
	return r->names[col];
}

const char *eg_store_rows_value(const eg_store_rows *r, int row, int col)
{
	return PQgetisnull(r->res, row, col) ? NULL :
					       PQgetvalue(r->res, row, col);
}

/* Whether s is a number in JSON's grammar:
 * -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * strtod alone also takes "0x1A", ".5", "1.", "+1", "007" and leading
 * blanks, which a text value (a parameter path, a string metric) may be and
 * which would make `query --json` print invalid JSON. */
static bool json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return false;
	if (*s == '.') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

bool eg_store_rows_is_number(const eg_store_rows *r, int row, int col)
{
	const char *v = eg_store_rows_value(r, row, col);
	char *end;
	double x;

	if (v == NULL)
		return false;
	if (r->kinds[col] == COL_NUMBER)
		return isfinite(strtod(v, NULL)); /* NaN is not JSON */
	if (r->kinds[col] != COL_AUTO || !json_number(v))
		return false;
	x = strtod(v, &end);
	return *end == '\0' && isfinite(x);
}

bool eg_store_rows_is_json(const eg_store_rows *r, int col)
{
	return r->kinds[col] == COL_JSON;
}

static bool oid_is_number(Oid t)
{
	/* int8, int2, int4, oid, float4, float8, numeric */
	return t == 20 || t == 21 || t == 23 || t == 26 || t == 700 ||
	       t == 701 || t == 1700;
}

/* Wraps res; column names from `names` (count ncols) or from the result. */
static int rows_new(PGresult *res, char **names, const unsigned char *kinds,
		    eg_store_rows **out, eg_diag *d)
{
	eg_store_rows *r = calloc(1, sizeof(*r));
	int n = PQnfields(res);

	if (r == NULL)
		goto oom;
	r->res = res;
	r->ncols = n;
	r->names = calloc((size_t)n + 1, sizeof(char *));
	r->kinds = calloc((size_t)n + 1, 1);
	if (r->names == NULL || r->kinds == NULL)
		goto oom;
	for (int i = 0; i < n; i++) {
		Oid t = PQftype(res, i);

		r->names[i] = strdup(names != NULL ? names[i] : PQfname(res, i));
		if (r->names[i] == NULL)
			goto oom;
		r->kinds[i] = kinds != NULL ? kinds[i] :
			      oid_is_number(t) ? COL_NUMBER :
			      (t == 114 || t == 3802) ? COL_JSON : COL_TEXT;
	}
	*out = r;
	return EG_OK;
oom:
	if (r != NULL)
		r->res = NULL;
	eg_store_rows_free(r);
	return eg_diag_set(d, EG_ENOMEM, "out of memory");
}

/* Wraps a tuples result whose column names and types come from the SQL
 * (store/report.c's reads); takes res on success only. */
int eg__store_rows_new(PGresult *res, eg_store_rows **out, eg_diag *d)
{
	return rows_new(res, NULL, NULL, out, d);
}

/* Whether smaller is better for a metric. */
static bool ascending_metric(const char *m)
{
	size_t n = strlen(m);

	return (n >= 5 && strcmp(m + n - 5, "_loss") == 0) ||
	       strcmp(m, "wall_s") == 0 || strcmp(m, "rel_l2") == 0 ||
	       strcmp(m, "max_abs") == 0;
}

static int query_paradigms(eg_store *s, const char *gid, eg_store_rows **out,
			   eg_diag *d)
{
	const char *p[1] = {gid};
	PGresult *res = eg__store_exec(s, eg_store_sql("query_paradigms", NULL),
				       1, p, PGRES_TUPLES_OK, d);
	int rc;

	if (res == NULL)
		return EG_EDB;
	rc = rows_new(res, NULL, NULL, out, d);
	if (rc != EG_OK)
		PQclear(res);
	return rc;
}

static int query_trials(eg_store *s, bool best, const char *gid,
			const char *metric, int limit, eg_store_rows **out,
			eg_diag *d)
{
	static const char *const fixed[] = {"id", "idx", "state", "attempts"};
	static const unsigned char fixed_kinds[] = {COL_NUMBER, COL_NUMBER,
						    COL_TEXT, COL_NUMBER};
	const char *p1[1] = {gid};
	PGresult *paths = NULL, *mnames = NULL, *res = NULL;
	const char **params = NULL;
	char **names = NULL;
	unsigned char *kinds = NULL;
	eg_buf sql = EG_BUF_INIT;
	char limitbuf[16];
	int np, nm, ncols = 0, nparams = 1, rc = EG_OK;

	paths = eg__store_exec(s, eg_store_sql("query_varying", NULL), 1, p1,
			       PGRES_TUPLES_OK, d);
	if (paths == NULL)
		return EG_EDB;
	mnames = eg__store_exec(s, eg_store_sql("query_metric_names", NULL), 1,
				p1, PGRES_TUPLES_OK, d);
	if (mnames == NULL) {
		rc = EG_EDB;
		goto out;
	}
	np = PQntuples(paths);
	nm = PQntuples(mnames);
	params = calloc((size_t)(np + nm + 3), sizeof(*params));
	names = calloc((size_t)(np + nm + 5), sizeof(*names));
	kinds = calloc((size_t)(np + nm + 5), 1);
	if (params == NULL || names == NULL || kinds == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
		goto out;
	}
	params[0] = gid;
	eg_buf_puts(&sql, "SELECT t.id, t.idx, t.state, t.attempts");
	for (int i = 0; i < 4; i++) {
		names[ncols] = (char *)fixed[i];
		kinds[ncols++] = fixed_kinds[i];
	}
	for (int i = 0; i < np; i++) {
		params[nparams++] = PQgetvalue(paths, i, 0); /* text[] literal */
		eg_buf_printf(&sql, ", t.params #>> $%d::text[]", nparams);
		names[ncols] = PQgetvalue(paths, i, 1);
		kinds[ncols++] = COL_AUTO;
	}
	for (int i = 0; i < nm; i++) {
		params[nparams++] = PQgetvalue(mnames, i, 0);
		eg_buf_printf(&sql, ", r.metrics ->> $%d", nparams);
		names[ncols] = PQgetvalue(mnames, i, 0);
		kinds[ncols++] = COL_AUTO;
	}
	eg_buf_puts(&sql, " FROM trials t LEFT JOIN results r ON "
			  "r.trial_id = t.id WHERE t.grid_id = $1");
	if (best) {
		snprintf(limitbuf, sizeof(limitbuf), "%d", limit > 0 ? limit : 10);
		params[nparams++] = metric;
		eg_buf_printf(&sql,
			      " AND t.state = 'done' AND jsonb_typeof("
			      "r.metrics -> $%d) = 'number' ORDER BY "
			      "(r.metrics ->> $%d)::double precision %s, t.idx",
			      nparams, nparams,
			      ascending_metric(metric) ? "ASC" : "DESC");
		params[nparams++] = limitbuf;
		eg_buf_printf(&sql, " LIMIT $%d::bigint", nparams);
	} else {
		eg_buf_puts(&sql, " ORDER BY t.idx, t.id");
	}
	if (eg_buf_failed(&sql)) {
		rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
		goto out;
	}
	res = eg__store_exec(s, sql.data, nparams, params, PGRES_TUPLES_OK, d);
	if (res == NULL) {
		rc = EG_EDB;
		goto out;
	}
	rc = rows_new(res, names, kinds, out, d);
	if (rc == EG_OK)
		res = NULL;
out:
	PQclear(res);
	PQclear(paths);
	PQclear(mnames);
	free(params);
	free(names);
	free(kinds);
	eg_buf_free(&sql);
	return rc;
}

int eg_store_query(eg_store *s, enum eg_store_query_kind kind, int64_t grid_id,
		   const char *metric, int limit, eg_store_rows **out,
		   eg_diag *d)
{
	char gid[24];

	*out = NULL;
	snprintf(gid, sizeof(gid), "%lld", (long long)grid_id);
	switch (kind) {
	case EG_STORE_Q_TRIALS:
		return query_trials(s, false, gid, NULL, 0, out, d);
	case EG_STORE_Q_BEST:
		return query_trials(s, true, gid,
				    metric != NULL ? metric : "test_acc", limit,
				    out, d);
	case EG_STORE_Q_PARADIGMS:
		return query_paradigms(s, gid, out, d);
	}
	return eg_diag_set(d, EG_EINVAL, "unknown query");
}
