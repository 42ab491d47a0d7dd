/*
 * bench_ingest.c - the results database's two throughput numbers:
 *   1. metric rows per second through eg_store_metrics_write (COPY), the
 *      path the coordinator uses for curves (target: >= 300,000 rows/s);
 *   2. the time to submit a 100,000-trial grid (eg_store_submit: expansion,
 *      keys, one COPY, one transaction; target: a few seconds).
 *
 * Runs against $EXPGRID_DB, or the embedded cluster under $EXPGRID_HOME
 * (default ./var), starting it if needed and stopping it again if it did.
 * Its rows are deleted at the end, so repeated runs measure the same thing.
 * Prints one result line per measure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "grid/grid.h"
#include "store/cluster.h"
#include "store/store.h"

#define METRIC_ROWS 1000000
#define BATCH 50000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what, int rc, const eg_diag *d)
{
	fprintf(stderr, "bench_ingest: %s: %s\n", what, eg_diag_msg(d, rc));
	return 1;
}

static int exec_ok(PGconn *c, const char *sql, const char *const *p, int np)
{
	PGresult *r = PQexecParams(c, sql, np, NULL, p, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
		 PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "bench_ingest: %s", PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : 1;
}

int main(void)
{
	eg_diag d = {{0}};
	eg_cluster *cl = NULL;
	eg_store *s = NULL;
	eg_grid *g = NULL;
	eg_store_metric *rows = NULL;
	eg_buf y = EG_BUF_INIT;
	bool started = false, created = false;
	int64_t gid = 0, n = 0;
	char gidtxt[24];
	const char *p[1] = {gidtxt};
	double t0, t1;
	int rc, ret = 1;
	static const char *const names[] = {"train_acc", "test_acc",
					    "train_loss", "test_loss"};

	if (getenv("EXPGRID_DB") == NULL || getenv("EXPGRID_DB")[0] == '\0') {
		rc = eg_cluster_open(NULL, &cl, &d);
		if (rc != EG_OK)
			return fail("cluster", rc, &d);
		started = !eg_cluster_running(cl);
		rc = eg_cluster_start(cl, &d);
		if (rc != EG_OK) {
			ret = fail("db start", rc, &d);
			goto out;
		}
	}
	rc = eg_store_connect(NULL, &s, &d);
	if (rc == EG_OK)
		rc = eg_store_migrate(s, NULL, NULL, &d);
	if (rc != EG_OK) {
		ret = fail("connect", rc, &d);
		goto out;
	}

	/* 2. A 100,000-trial grid, named uniquely so it is new every run. */
	eg_buf_printf(&y, "name: bench-%ld-%d\ntrial: {kind: noop}\nsweep:\n"
			  "  seed: [",
		      (long)time(NULL), (int)getpid());
	for (int i = 0; i < 1000; i++)
		eg_buf_printf(&y, "%s%d", i ? ", " : "", i);
	eg_buf_puts(&y, "]\n  noop.ms: [");
	for (int i = 0; i < 100; i++)
		eg_buf_printf(&y, "%s%d", i ? ", " : "", i);
	eg_buf_puts(&y, "]\n");
	rc = eg_grid_parse(y.data, y.len, "bench.yaml", &g, &d);
	if (rc != EG_OK) {
		ret = fail("grid", rc, &d);
		goto out;
	}
	t0 = now_s();
	rc = eg_store_submit(s, g, &gid, &created, &n, &d);
	t1 = now_s();
	if (rc != EG_OK || !created) {
		ret = fail("submit", rc, &d);
		goto out;
	}
	printf("store submit: %lld trials in %.2f s (%.0f trials/s; one "
	       "transaction)\n",
	       (long long)n, t1 - t0, (double)n / (t1 - t0));
	printf("RESULT submit_trials trials=%lld seconds=%.3f trials_per_s=%.0f\n",
	       (long long)n, t1 - t0, (double)n / (t1 - t0));
	snprintf(gidtxt, sizeof(gidtxt), "%lld", (long long)gid);

	/* 1. Metric rows: 100 trials x 2,500 epochs x 4 metrics, in COPY
	 * batches of 50,000 rows (what a coordinator flushes at once). */
	rows = calloc(METRIC_ROWS, sizeof(*rows));
	if (rows == NULL) {
		fprintf(stderr, "bench_ingest: out of memory\n");
		goto out;
	}
	{
		PGconn *c = eg_store_pgconn(s);
		PGresult *r = PQexecParams(c, "SELECT min(id) FROM trials "
					      "WHERE grid_id = $1",
					   1, NULL, p, NULL, NULL, 0);
		long long first = atoll(PQgetvalue(r, 0, 0));

		PQclear(r);
		for (size_t i = 0; i < METRIC_ROWS; i++) {
			rows[i].trial_id = first + (int64_t)(i / 10000);
			rows[i].attempt = 1;
			rows[i].epoch = (int)(i / 4 % 2500) + 1;
			rows[i].round = -1;
			rows[i].name = names[i % 4];
			rows[i].value = 1.0 / (double)(i + 1);
		}
	}
	t0 = now_s();
	for (size_t off = 0; off < METRIC_ROWS; off += BATCH) {
		rc = eg_store_metrics_write(s, rows + off, BATCH, &d);
		if (rc != EG_OK) {
			ret = fail("metrics", rc, &d);
			goto out;
		}
	}
	t1 = now_s();
	printf("store metric ingest: %d rows in %.2f s = %.0f rows/s "
	       "(COPY, %d-row batches; target >= 300000)\n",
	       METRIC_ROWS, t1 - t0, METRIC_ROWS / (t1 - t0), BATCH);
	printf("RESULT ingest_metrics rows_per_s=%.0f rows=%d\n",
	       METRIC_ROWS / (t1 - t0), METRIC_ROWS);
	ret = 0;
out:
	if (gid > 0 && s != NULL &&
	    exec_ok(eg_store_pgconn(s), "DELETE FROM grids WHERE id = $1", p,
		    1) != 0)
		ret = 1;
	free(rows);
	eg_buf_free(&y);
	eg_grid_free(g);
	eg_store_close(s);
	if (started && eg_cluster_stop(cl, NULL, &d) != EG_OK)
		ret = fail("db stop", EG_ECHILD, &d);
	eg_cluster_free(cl);
	return ret;
}
