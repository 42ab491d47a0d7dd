/*
 * store.h - expgrid's results database through libpq: connection,
 * migrations, grid submission, status, cancel, metric ingest and the reads
 * behind `expgrid query`.
 *
 * Every statement is parametrized (PQexecParams / prepared statements) or a
 * COPY whose text rows are escaped by copy_escape() in store.c; no value is
 * ever interpolated into SQL.  The SQL text lives in store/ (*.c) only: the
 * named statements (eg_store_sql) are what the coordinator will send
 * asynchronously with PQsendQueryPrepared on its own connection.
 *
 * Errors: libpq failures return EG_EDB with PostgreSQL's own message
 * (PQresultErrorMessage / PQerrorMessage) in the eg_diag.  An eg_store is one
 * connection; one thread at a time.
 *
 * The schema itself is migrations/NNNN_name.sql, documented in
 * docs/schema.md.
 */
#ifndef EG_STORE_H
#define EG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "grid/grid.h"

typedef struct eg_store eg_store;

/* The connection string: $EXPGRID_DB if set, else the embedded cluster's
 * URI under $EXPGRID_HOME (which need not be running).  Caller frees. */
int eg_store_conninfo(char **out, eg_diag *d);

/* Connects (conninfo NULL: eg_store_conninfo).  A server that is down gives
 * EG_EDB with libpq's message and a hint to run `expgrid db start`. */
int eg_store_connect(const char *conninfo, eg_store **out, eg_diag *d);
void eg_store_close(eg_store *s); /* accepts NULL */
/* The libpq connection (a PGconn *), for callers that drive it themselves. */
void *eg_store_pgconn(eg_store *s);

/* ---- migrations (store/migrate.c) ---- */

/* The migrations directory: $EXPGRID_MIGRATIONS, else <exe dir>/../migrations,
 * else ./migrations (first that exists) into out. */
int eg_store_migrations_dir(char *out, size_t outlen, eg_diag *d);
/* Applies every migrations/NNNN_name.sql not yet recorded in
 * schema_migrations, in order, each in its own transaction, under an
 * advisory lock so concurrent migrators serialize.  An applied migration
 * whose file changed (checksum) is refused with EG_ECORRUPT, and so is a
 * recorded migration whose file is missing.  *applied (may be NULL) gets
 * the number applied now.  dir NULL: eg_store_migrations_dir. */
int eg_store_migrate(eg_store *s, const char *dir, int *applied, eg_diag *d);

/* ---- grids and trials ---- */

/*
 * Inserts the grid and all its trials in one transaction (COPY), then
 * NOTIFY expgrid_grids with the grid id.  The same grid (same name and
 * eg_grid_hash) returns the existing id with *created = false and adds
 * nothing; concurrent submitters serialize on an advisory lock on (name,
 * hash).  Trials whose key repeats within the grid are stored once.  An
 * expansion error rolls everything back and returns the grid's own code
 * (EG_ERANGE, ...), not EG_EDB.  *ntrials gets the grid's trial count.
 */
int eg_store_submit(eg_store *s, const eg_grid *g, int64_t *grid_id,
		    bool *created, int64_t *ntrials, eg_diag *d);
/*
 * As eg_store_submit, and `note` (may be NULL) is called after the commit
 * with each line the user should read about the submission (today: a
 * coverify.network whose trial could not hand over its network, so a fresh
 * companion was added).  A coverify.network that names no trial, a trial
 * that is not a train trial, or one whose model.* or dataset widths differ
 * fails with EG_ENOENT / EG_EINVAL (the grid's fault: nothing written);
 * in a grid whose target is not fpga:<type>, with EG_ENOTSUP.
 */
int eg_store_submit_noted(eg_store *s, const eg_grid *g, int64_t *grid_id,
			  bool *created, int64_t *ntrials,
			  void (*note)(void *ud, const char *line), void *ud,
			  eg_diag *d);

/* Finds a grid by id ("12") or name (the newest of that name). */
int eg_store_find_grid(eg_store *s, const char *id_or_name, int64_t *grid_id,
		       eg_diag *d);

typedef struct eg_store_status {
	int64_t grid;
	char name[256];  /* truncated if longer */
	char state[16];  /* the grid's: active, done, cancelled */
	int64_t total, pending, leased, running, done, failed, cancelled;
} eg_store_counts;

/* Counts per trial state for one grid. */
int eg_store_status(eg_store *s, int64_t grid_id, eg_store_counts *st,
		    eg_diag *d);
/* Calls fn for every grid, oldest first; a non-zero return stops and is
 * returned. */
int eg_store_status_all(eg_store *s,
			int (*fn)(void *ud, const eg_store_counts *st),
			void *ud, eg_diag *d);

/* Every pending, leased or running trial of the grid -> cancelled, the grid
 * -> cancelled, and NOTIFY expgrid_cancel with the grid id, in one
 * transaction.  *ncancelled (may be NULL) gets the number of trials. */
int eg_store_cancel(eg_store *s, int64_t grid_id, int64_t *ncancelled,
		    eg_diag *d);

/* ---- metric ingest ---- */

typedef struct eg_store_metric {
	int64_t trial_id;
	int attempt;
	int epoch;        /* < 0: NULL */
	int round;        /* < 0: NULL */
	const char *name; /* any text: COPY-escaped */
	double value;     /* NaN and infinities are stored as such */
} eg_store_metric;

/* Appends n rows to `metrics` with one COPY (atomic: all or none). */
int eg_store_metrics_write(eg_store *s, const eg_store_metric *rows, size_t n,
			   eg_diag *d);

/* ---- reads for `expgrid query` ---- */

/* A result table; cells are text as PostgreSQL prints them. */
typedef struct eg_store_rows eg_store_rows;

enum eg_store_query_kind {
	EG_STORE_Q_TRIALS,    /* every trial: id, idx, state, attempts, the
				 params that vary in the grid, final metrics */
	EG_STORE_Q_BEST,      /* the same, done trials ranked by `metric` */
	EG_STORE_Q_PARADIGMS  /* paradigm_comparison rows of the grid */
};

/* metric: for BEST (NULL: test_acc; names ending in _loss, wall_s and
 * rel_l2 rank ascending); limit: rows for BEST (<= 0: 10). */
int eg_store_query(eg_store *s, enum eg_store_query_kind kind, int64_t grid_id,
		   const char *metric, int limit, eg_store_rows **out,
		   eg_diag *d);
void eg_store_rows_free(eg_store_rows *r); /* accepts NULL */
int eg_store_rows_ncols(const eg_store_rows *r);
int eg_store_rows_nrows(const eg_store_rows *r);
const char *eg_store_rows_name(const eg_store_rows *r, int col);
/* The cell's text, or NULL for SQL NULL. */
const char *eg_store_rows_value(const eg_store_rows *r, int row, int col);
/* Whether the cell is a number (print it unquoted in JSON): always for
 * numeric columns; for parameter columns, when the value reads as one. */
bool eg_store_rows_is_number(const eg_store_rows *r, int row, int col);
/* Whether the column is json/jsonb (embed as JSON in JSON output). */
bool eg_store_rows_is_json(const eg_store_rows *r, int col);

/* ---- reads for `expgrid report` (store/report.c) ---- */

enum eg_store_report_kind {
	/* One row: id, name, spec, spec_hash, target, state, priority,
	 * max_attempts, trial_count, created_at (text, UTC). */
	EG_STORE_R_GRID,
	/* One row per parameter that varies in the grid, in the order of
	 * `query trials`' columns: column 0 the path as a text[] literal,
	 * column 1 the dotted name ("model.activation") that titles it. */
	EG_STORE_R_VARYING,
	/* The per-epoch curve of `metric` (NULL: test_acc) from `metrics`
	 * for up to `limit` trials (<= 0: 24), those with the highest final
	 * value first: rows trial_id, epoch, value, ordered by trial and
	 * epoch, plus `curves`, how many trials have such a curve at all.
	 * Per trial only the attempt that produced the result (else the
	 * latest) counts, and a lottery trial's first round. */
	EG_STORE_R_CURVES,
	/* Lottery rounds of up to `limit` trials (<= 0: 24), best final
	 * test_acc first: trial_id, round, remaining, test_acc, plus
	 * `trials`, how many trials have rounds. */
	EG_STORE_R_ROUNDS,
	/* Failed trials: id, idx, attempts, last_error, ordered by idx. */
	EG_STORE_R_FAILED
};

/* Runs one of the reads above for grid_id; the rows are as for
 * eg_store_query (caller frees with eg_store_rows_free). */
int eg_store_report(eg_store *s, enum eg_store_report_kind kind,
		    int64_t grid_id, const char *metric, int limit,
		    eg_store_rows **out, eg_diag *d);

/* ---- named statements for asynchronous users ---- */

/* The SQL text and parameter count of a named statement ("submit_find",
 * "status_counts", "cancel_trials", ...), or NULL if unknown. */
const char *eg_store_sql(const char *name, int *nparams);

#endif
