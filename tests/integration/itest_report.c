/*
 * itest_report.c - `expgrid report` against a real PostgreSQL server,
 * started per test under its scratch directory through the embedded-cluster
 * code (as itest_store.c does) and stopped at exit.
 *
 * No coordinator runs: the tests submit grids with `expgrid submit`, then
 * write what a coordinator would have written (trial states, results,
 * `metrics` rows with progress duplicates and a stale attempt, lottery
 * rounds, layer_similarity rows) with parametrized SQL and
 * eg_store_metrics_write, and read the HTML page back: well-nested tags,
 * every database string escaped (the grid name, a parameter and an error
 * hold <script>&"'), one table row per trial, one line per trial with a
 * curve, formatted numbers, the lottery chart and the paradigm table with
 * its first divergent layer.  Exit codes: a missing grid 2, bad usage 2,
 * the database down 1.  When /usr/bin/chromium exists the page is also
 * rendered headless to a PNG.
 */
#include <ctype.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "store/cluster.h"
#include "store/sched.h"
#include "store/store.h"
#include "tests/harness.h"

static eg_cluster *cluster;

static void stop_cluster(void)
{
	if (cluster != NULL) {
		eg_cluster_stop(cluster, NULL, NULL);
		eg_cluster_free(cluster);
		cluster = NULL;
	}
}

/* Starts a cluster under <tmpdir>/home and points EXPGRID_HOME at it. */
static void start_cluster(void)
{
	char home[PATH_MAX];
	eg_diag d = {{0}};
	int rc;

	snprintf(home, sizeof(home), "%s/home", eg_test_tmpdir());
	setenv("EXPGRID_HOME", home, 1);
	unsetenv("EXPGRID_DB");
	EG_CHECK_OK(eg_cluster_open(home, &cluster, &d));
	atexit(stop_cluster);
	rc = eg_cluster_start(cluster, &d);
	EG_CHECK_MSG(rc == EG_OK, "start: %s", eg_diag_msg(&d, rc));
}

/* Runs `bin/expgrid ARGS` and returns the exit code; *out gets the output. */
static int cli(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int cli(char **out, const char *fmt, ...)
{
	char args[2048], cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "bin/expgrid %s", args);
	return eg_test_run(cmd, out);
}

static void exec_params(PGconn *c, const char *sql, int n,
			const char *const *p)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);

	EG_CHECK_MSG(PQresultStatus(r) == PGRES_COMMAND_OK ||
			     PQresultStatus(r) == PGRES_TUPLES_OK,
		     "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* The ids of a grid's trials in expansion order; returns how many. */
static int trial_ids(PGconn *c, const char *grid, long long *ids, int max)
{
	const char *p[1] = {grid};
	PGresult *r = PQexecParams(c, "SELECT id FROM trials WHERE grid_id = $1 "
				      "ORDER BY idx", 1, NULL, p, NULL, NULL, 0);
	int n;

	EG_CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
	n = PQntuples(r);
	EG_CHECK(n <= max);
	for (int i = 0; i < n; i++)
		ids[i] = atoll(PQgetvalue(r, i, 0));
	PQclear(r);
	return n;
}

/* Marks a trial finished: state, attempts, error, and a result row when
 * metrics_json is not NULL. */
static void finish(PGconn *c, long long id, const char *state, int attempt,
		   const char *error, const char *metrics_json, double wall)
{
	char sid[24], satt[16], swall[32];
	const char *p[4] = {sid, state, satt, error};

	snprintf(sid, sizeof(sid), "%lld", id);
	snprintf(satt, sizeof(satt), "%d", attempt);
	snprintf(swall, sizeof(swall), "%.17g", wall);
	exec_params(c, "UPDATE trials SET state = $2, attempts = $3::int, "
		       "last_error = $4, finished_at = now() WHERE id = $1",
		    4, p);
	if (metrics_json != NULL) {
		const char *q[4] = {sid, satt, metrics_json, swall};

		exec_params(c, "INSERT INTO results (trial_id, attempt, metrics, "
			       "wall_s, agent) VALUES ($1, $2::int, $3::jsonb, "
			       "$4::float8, 'itest')",
			    4, q);
	}
}

static void write_metrics(const eg_store_metric *m, size_t n)
{
	eg_store *s = NULL;
	eg_diag d = {{0}};
	int rc;

	EG_CHECK_OK(eg_store_connect(eg_cluster_url(cluster), &s, &d));
	rc = eg_store_metrics_write(s, m, n, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	eg_store_close(s);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	eg_buf b = EG_BUF_INIT;
	char chunk[8192];
	size_t n;

	EG_CHECK_MSG(f != NULL, "cannot open %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		eg_buf_append(&b, chunk, n);
	fclose(f);
	EG_CHECK(!eg_buf_failed(&b) && b.len > 0);
	return b.data;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(hay, needle); p != NULL;
	     p = strstr(p + strlen(needle), needle))
		n++;
	return n;
}

/* The text of the element that starts at `open` (e.g. "<section
 * id=\"curves\"") up to the next `close` ("</section>"), as a new string. */
static char *slice(const char *page, const char *open, const char *close)
{
	const char *a = strstr(page, open), *z;

	EG_CHECK_MSG(a != NULL, "no %s in the page", open);
	z = strstr(a, close);
	EG_CHECK_MSG(z != NULL, "%s is not closed", open);
	return strndup(a, (size_t)(z - a) + strlen(close));
}

/*
 * Checks that tags nest: every start tag is closed by the matching end tag
 * in order, except HTML's void elements and "/>" self-closed SVG elements.
 * Inside <style> nothing is a tag.  Fails the test on the first mismatch.
 */
static void check_nesting(const char *page)
{
	static const char *const voids[] = {"meta", "br", "hr", "img",
					    "input", "link", NULL};
	char stack[128][16];
	int depth = 0;
	const char *p = page;

	while ((p = strchr(p, '<')) != NULL) {
		char name[16];
		size_t n = 0;
		bool closing = p[1] == '/';
		const char *q = p + 1 + closing, *end;

		if (p[1] == '!') { /* doctype */
			p = strchr(p, '>');
			EG_CHECK(p != NULL);
			continue;
		}
		while (isalnum((unsigned char)*q) && n < sizeof(name) - 1)
			name[n++] = (char)tolower((unsigned char)*q++);
		name[n] = '\0';
		EG_CHECK_MSG(n > 0, "a '<' that opens no tag at offset %ld",
			     (long)(p - page));
		end = strchr(q, '>');
		EG_CHECK_MSG(end != NULL, "tag %s not ended", name);
		if (closing) {
			EG_CHECK_MSG(depth > 0 && strcmp(stack[depth - 1], name) == 0,
				     "</%s> closes <%s> at offset %ld", name,
				     depth > 0 ? stack[depth - 1] : "nothing",
				     (long)(p - page));
			depth--;
		} else if (end[-1] != '/') {
			bool is_void = false;

			for (int i = 0; voids[i] != NULL; i++)
				is_void |= strcmp(voids[i], name) == 0;
			if (!is_void) {
				EG_CHECK(depth < 128);
				snprintf(stack[depth++], sizeof(stack[0]), "%s",
					 name);
			}
			if (strcmp(name, "style") == 0) {
				end = strstr(end, "</style>");
				EG_CHECK(end != NULL);
				p = end;
				continue;
			}
		}
		p = end + 1;
	}
	EG_CHECK_MSG(depth == 0, "%d elements left open (innermost <%s>)",
		     depth, depth > 0 ? stack[depth - 1] : "");
}

/* A grid whose name and one swept parameter hold HTML metacharacters. */
static const char grid_yaml[] =
	"name: \"rep <script>&\\\"' grid\"\n"
	"trial:\n"
	"  dataset: {name: idx, train_images: tr.idx, train_labels: tl.idx,\n"
	"            test_images: te.idx, test_labels: tel.idx}\n"
	"  model: {hidden: [8]}\n"
	"  train: {epochs: 5}\n"
	"sweep:\n"
	"  dataset.train_images: [\"x<script>alert(1)</script>&\\\"'.idx\", "
	"plain.idx]\n"
	"  seed: [0, 1]\n";

/* Submits grid_yaml and fills in results: trials 0-2 done with curves
 * (trial 2 one epoch short), trial 3 failed with a hostile error.  The
 * grid id goes into grid[32]. */
static void populate(PGconn *c, char *grid, long long *ids)
{
	char *out = NULL;
	int rc;
	/* Final test_acc 0.81 < 0.87 < 0.93: trial 2 is the best. */
	static const double acc[3][5] = {{0.41, 0.6, 0.72, 0.79, 0.81},
					 {0.45, 0.66, 0.8, 0.85, 0.87},
					 {0.5, 0.75, 0.88, 0.93, NAN}};
	eg_store_metric m[64];
	size_t n = 0;

	eg_test_write_file("g.yaml", grid_yaml);
	rc = cli(&out, "submit %s", eg_test_path("g.yaml"));
	EG_CHECK_MSG(rc == 0, "submit: %d %s", rc, out);
	snprintf(grid, 32, "%.*s", (int)strcspn(out, "\n"), out);
	free(out);
	EG_CHECK(atoll(grid) > 0);
	EG_CHECK_INT(trial_ids(c, grid, ids, 8), 4);

	finish(c, ids[0], "done", 1, NULL,
	       "{\"test_acc\": 0.81, \"train_acc\": 0.9012345, "
	       "\"test_loss\": 0.61234567, \"wall_s\": 12.3456, "
	       "\"params_total\": 6442}",
	       12.3456);
	finish(c, ids[1], "done", 1, NULL,
	       "{\"test_acc\": 0.87, \"train_acc\": 0.95, \"test_loss\": 0.4, "
	       "\"wall_s\": 11.5, \"params_total\": 6442}",
	       11.5);
	/* Trial 2 succeeded on its second attempt. */
	finish(c, ids[2], "done", 2, NULL,
	       "{\"test_acc\": 0.93, \"train_acc\": 0.97, \"test_loss\": 0.25, "
	       "\"wall_s\": 9.75, \"params_total\": 6442}",
	       9.75);
	finish(c, ids[3], "failed", 3,
	       "boom <b>bad</b> & \"quoted\" 'single' <script>x</script>",
	       NULL, 0);
	for (int t = 0; t < 3; t++)
		for (int e = 1; e <= (t == 2 ? 4 : 5); e++) {
			int att = t == 2 ? 2 : 1;

			m[n++] = (eg_store_metric){ids[t], att, e, -1,
						   "test_acc", acc[t][e - 1]};
			/* the result's copy of the progress point */
			m[n++] = (eg_store_metric){ids[t], att, e, -1,
						   "test_acc", acc[t][e - 1]};
			m[n++] = (eg_store_metric){ids[t], att, e, -1,
						   "train_loss", 2.0 / e};
		}
	/* Progress of trial 2's abandoned first attempt: must not show. */
	for (int e = 1; e <= 3; e++)
		m[n++] = (eg_store_metric){ids[2], 1, e, -1, "test_acc", 0.1111};
	write_metrics(m, n);
}

EG_TEST(report_page)
{
	char grid[32], path[PATH_MAX];
	long long ids[8];
	char *out = NULL, *page, *sec;
	PGconn *c;
	int rc;

	start_cluster();
	c = PQconnectdb(eg_cluster_url(cluster));
	EG_CHECK(PQstatus(c) == CONNECTION_OK);
	populate(c, grid, ids);

	snprintf(path, sizeof(path), "%s/out.html", eg_test_tmpdir());
	rc = cli(&out, "report %s -o %s", grid, path);
	EG_CHECK_MSG(rc == 0, "report: %d %s", rc, out);
	free(out);
	page = read_file(path);

	/* One document, well nested, nothing fetched, no script. */
	EG_CHECK(strncmp(page, "<!DOCTYPE html>", 15) == 0);
	EG_CHECK_INT(count(page, "<html"), 1);
	EG_CHECK_INT(count(page, "</html>"), 1);
	EG_CHECK_INT(count(page, "<svg"), count(page, "</svg>"));
	check_nesting(page);
	EG_CHECK(strcasestr(page, "<script") == NULL);
	EG_CHECK(strstr(page, "http://") == NULL ||
		 count(page, "http://") == count(page, "xmlns=\"http://www.w3.org/2000/svg\""));
	EG_CHECK(strstr(page, "https://") == NULL);
	EG_CHECK(strstr(page, " src=") == NULL && strstr(page, "<link") == NULL);

	/* Database strings arrive escaped: name, parameter, error. */
	EG_CHECK(strstr(page, "<title>expgrid report: rep &lt;script&gt;&amp;"
			      "&quot;&#39; grid (grid ") != NULL);
	EG_CHECK(strstr(page, "<h1>rep &lt;script&gt;&amp;&quot;&#39; grid</h1>") !=
		 NULL);
	EG_CHECK(strstr(page, "x&lt;script&gt;alert(1)&lt;/script&gt;&amp;"
			      "&quot;&#39;.idx") != NULL);
	EG_CHECK(strstr(page, "boom &lt;b&gt;bad&lt;/b&gt; &amp; &quot;quoted&quot; "
			      "&#39;single&#39; &lt;script&gt;x&lt;/script&gt;") !=
		 NULL);
	/* The spec is in a <pre>, escaped. */
	sec = slice(page, "<section id=\"spec\"", "</section>");
	EG_CHECK(strstr(sec, "name: &quot;rep &lt;script&gt;&amp;\\&quot;&#39; "
			     "grid&quot;") != NULL);
	free(sec);

	/* Header counts. */
	EG_CHECK(strstr(page, "<b>4</b><span>total</span>") != NULL);
	EG_CHECK(strstr(page, "<b>3</b><span>done</span>") != NULL);
	EG_CHECK(strstr(page, "<b>1</b><span>failed</span>") != NULL);
	EG_CHECK(strstr(page, "<b>0</b><span>pending</span>") != NULL);

	/* Every trial a row; the varying parameters are columns, the fixed
	 * ones are not; numbers formatted to 4 significant digits. */
	sec = slice(page, "<section id=\"trials\"", "</section>");
	EG_CHECK_INT(count(sec, "<tr>"), 1 + 4);
	EG_CHECK(strstr(sec, "<th>dataset.train_images</th>") != NULL);
	EG_CHECK(strstr(sec, "<th>seed</th>") != NULL);
	EG_CHECK(strstr(sec, "model.hidden") == NULL);
	EG_CHECK(strstr(sec, ">12.35<") != NULL);  /* wall_s 12.3456 */
	EG_CHECK(strstr(sec, ">0.9012<") != NULL); /* train_acc */
	EG_CHECK(strstr(sec, ">0.6123<") != NULL); /* test_loss */
	EG_CHECK(strstr(sec, ">6442<") != NULL);   /* params_total */
	EG_CHECK(strstr(sec, "0.9012345") == NULL);
	EG_CHECK_INT(count(sec, "st-failed"), 1);
	EG_CHECK_INT(count(sec, "st-done"), 3);
	/* Headline metrics first: test_acc before train_acc before
	 * params_total. */
	EG_CHECK(strstr(sec, "test_acc</th>") < strstr(sec, "train_acc</th>"));
	EG_CHECK(strstr(sec, "wall_s</th>") < strstr(sec, "params_total</th>"));
	free(sec);

	/* The best trials, best first. */
	sec = slice(page, "<section id=\"best\"", "</section>");
	EG_CHECK_INT(count(sec, "<tr>"), 1 + 3);
	EG_CHECK(strstr(sec, ">0.93<") != NULL &&
		 strstr(sec, ">0.93<") < strstr(sec, ">0.87<") &&
		 strstr(sec, ">0.87<") < strstr(sec, ">0.81<"));
	free(sec);

	/* One line per trial with a curve (not the failed one), legend in
	 * the same order as the final values, the stale attempt ignored. */
	sec = slice(page, "<section id=\"curves\"", "</section>");
	EG_CHECK_INT(count(sec, "<polyline"), 3);
	EG_CHECK_INT(count(sec, "<li>"), 3);
	EG_CHECK(strstr(sec, "0.1111") == NULL);
	EG_CHECK(strstr(sec, "<span class=\"last\">0.93</span>") <
		 strstr(sec, "<span class=\"last\">0.87</span>"));
	/* 5 + 5 + 4 epoch points, duplicates merged: one marker each. */
	EG_CHECK_INT(count(sec, "<circle"), 14);
	EG_CHECK(strstr(sec, ">epoch</text>") != NULL);
	EG_CHECK(strstr(sec, "Showing") == NULL);
	free(sec);
	/* No lottery or co-verification data: no such sections. */
	EG_CHECK(strstr(page, "id=\"lottery\"") == NULL);
	EG_CHECK(strstr(page, "id=\"paradigms\"") == NULL);
	/* The footer says how to get the same data. */
	EG_CHECK(strstr(page, "trial_summary WHERE grid_id = ") != NULL);
	free(page);

	/* A grid by name works too; a missing grid and bad usage are 2. */
	rc = cli(&out, "report 'rep <script>&\"'\\'' grid' -o %s/byname.html",
		 eg_test_tmpdir());
	EG_CHECK_MSG(rc == 0, "%d %s", rc, out);
	free(out);
	rc = cli(&out, "report 99999 -o %s/missing.html", eg_test_tmpdir());
	EG_CHECK_MSG(rc == 2 && strstr(out, "expgrid: report: no grid '99999'") !=
					 NULL,
		     "%d %s", rc, out);
	free(out);
	EG_CHECK(access(eg_test_path("missing.html"), F_OK) != 0);
	rc = cli(&out, "report %s", grid);
	EG_CHECK_MSG(rc == 2 && strstr(out, "usage:") != NULL, "%d %s", rc, out);
	free(out);
	/* An unwritable destination is a failed run, with the reason. */
	rc = cli(&out, "report %s -o %s/no/such/dir/x.html", grid,
		 eg_test_tmpdir());
	EG_CHECK_MSG(rc == 1 && strstr(out, "cannot write") != NULL, "%d %s", rc,
		     out);
	free(out);
	PQfinish(c);
}

EG_TEST(report_lottery_and_coverify)
{
	char grid[32], path[PATH_MAX], sid[24], sl[16], sv[4][32];
	long long ids[8];
	char *out = NULL, *page, *sec;
	PGconn *c;
	eg_store_metric m[32];
	size_t n = 0;
	static const char *const pairs[] = {"software-design", "design-hardware",
					    "software-hardware"};
	int rc;

	start_cluster();
	c = PQconnectdb(eg_cluster_url(cluster));
	EG_CHECK(PQstatus(c) == CONNECTION_OK);
	eg_test_write_file("lc.yaml", "name: lc\ntrial: {kind: noop}\n"
				      "sweep:\n  seed: [0, 1]\n");
	rc = cli(&out, "submit %s", eg_test_path("lc.yaml"));
	EG_CHECK_MSG(rc == 0, "submit: %d %s", rc, out);
	snprintf(grid, sizeof(grid), "%.*s", (int)strcspn(out, "\n"), out);
	free(out);
	EG_CHECK_INT(trial_ids(c, grid, ids, 8), 2);
	finish(c, ids[0], "done", 1, NULL, "{\"test_acc\": 0.88}", 1);
	finish(c, ids[1], "done", 1, NULL, "{\"test_acc\": 0.9}", 1);
	/* Rounds: remaining falls by 20 % a round. */
	for (int t = 0; t < 2; t++)
		for (int r = 0; r < 4; r++) {
			m[n++] = (eg_store_metric){ids[t], 1, -1, r, "remaining",
						   pow(0.8, r)};
			m[n++] = (eg_store_metric){ids[t], 1, -1, r, "test_acc",
						   0.9 - 0.01 * r * r + 0.01 * t};
		}
	write_metrics(m, n);
	/* Co-verification of trial 0: design and hardware part at layer 2;
	 * layer names with markup. */
	snprintf(sid, sizeof(sid), "%lld", ids[0]);
	for (int l = 0; l < 4; l++)
		for (int p = 0; p < 3; p++) {
			const char *prm[8] = {sid, sl, l % 2 ? "relu<1>" : "dense&1",
					      pairs[p], sv[0], sv[1], sv[2], sv[3]};

			snprintf(sl, sizeof(sl), "%d", l);
			snprintf(sv[0], sizeof(sv[0]), "%g", l >= 2 ? 98.5 : 100.0);
			snprintf(sv[1], sizeof(sv[1]), "%g",
				 p == 1 ? (l >= 2 ? 97.25 : 100.0) : 100.0);
			snprintf(sv[2], sizeof(sv[2]), "%g", 0.001 * (l + 1));
			snprintf(sv[3], sizeof(sv[3]), "%g", 1e-4 * (l + 1));
			exec_params(c,
				    "INSERT INTO layer_similarity (trial_id, layer, "
				    "name, pair, s_tol, s_bit, max_abs, rel_l2) "
				    "VALUES ($1, $2::int, $3, $4, $5::float8, "
				    "$6::float8, $7::float8, $8::float8)",
				    8, prm);
		}

	snprintf(path, sizeof(path), "%s/lc.html", eg_test_tmpdir());
	rc = cli(&out, "report lc -o %s", path);
	EG_CHECK_MSG(rc == 0, "report: %d %s", rc, out);
	free(out);
	page = read_file(path);
	check_nesting(page);

	/* The lottery chart: a line per trial, 4 rounds each, on a log axis
	 * of the percent remaining (100 at the left). */
	sec = slice(page, "<section id=\"lottery\"", "</section>");
	EG_CHECK_INT(count(sec, "<polyline"), 2);
	EG_CHECK_INT(count(sec, "<circle"), 8);
	EG_CHECK(strstr(sec, "weights remaining") != NULL);
	EG_CHECK(strstr(sec, ">100</text>") != NULL);
	EG_CHECK(strstr(sec, ">50</text>") != NULL);
	free(sec);
	/* No per-epoch data: the curves section says so. */
	sec = slice(page, "<section id=\"curves\"", "</section>");
	EG_CHECK(strstr(sec, "<polyline") == NULL);
	EG_CHECK(strstr(sec, "No per-epoch test_acc") != NULL);
	free(sec);

	/* The paradigm table: 4 layers x 3 pairs, layer 2 highlighted. */
	sec = slice(page, "<section id=\"paradigms\"", "</section>");
	EG_CHECK_INT(count(sec, "<tr"), 1 + 12);
	EG_CHECK(strstr(sec, "First divergent layer: <b>2</b> "
			     "(design-hardware)") != NULL);
	EG_CHECK_INT(count(sec, "<tr class=\"div\">"), 3);
	EG_CHECK(strstr(sec, "relu&lt;1&gt;") != NULL);
	EG_CHECK(strstr(sec, "dense&amp;1") != NULL);
	EG_CHECK(strstr(sec, ">97.25<") != NULL);
	EG_CHECK(strstr(sec, ">1.000e-04<") != NULL);
	/* design-hardware s_bit below 100 at layers 2 and 3, plus s_tol
	 * 98.5 (mean and min) at layers 2 and 3 for 3 pairs. */
	EG_CHECK_INT(count(sec, "n low"), 2 * 2 + 2 * 2 * 3);
	/* top1_agree is NULL on every row here: no such column. */
	EG_CHECK(strstr(sec, "top1_agree") == NULL);
	free(sec);
	free(page);
	PQfinish(c);
}

/*
 * The rows as the coordinator writes them: PROGRESS points (a lottery's
 * carry epoch and round) through eg_store_metrics_write as run_progress
 * does, then the RESULT through eg_sched_results, which copies the curve
 * (epochs repeating in every round, round NULL) and the rounds into
 * `metrics` and the layers into layer_similarity.  The report must plot
 * round 0's epochs once each, the rounds, and the layers.
 */
EG_TEST(report_from_coordinator_writes)
{
	char grid[32], path[PATH_MAX];
	long long ids[8];
	char *out = NULL, *page, *sec;
	eg_store *s = NULL;
	eg_diag d = {{0}};
	eg_buf items = EG_BUF_INIT;
	eg_store_metric m[64];
	int64_t acc[2];
	size_t n = 0, nacc = 0;
	PGconn *c;
	int rc;

	start_cluster();
	c = PQconnectdb(eg_cluster_url(cluster));
	EG_CHECK(PQstatus(c) == CONNECTION_OK);
	eg_test_write_file("lt.yaml", "name: lt\ntrial: {kind: noop}\n"
				      "sweep:\n  seed: [0, 1]\n");
	rc = cli(&out, "submit %s", eg_test_path("lt.yaml"));
	EG_CHECK_MSG(rc == 0, "submit: %d %s", rc, out);
	snprintf(grid, sizeof(grid), "%.*s", (int)strcspn(out, "\n"), out);
	free(out);
	EG_CHECK_INT(trial_ids(c, grid, ids, 8), 2);
	EG_CHECK_OK(eg_store_connect(eg_cluster_url(cluster), &s, &d));
	/* Progress: 2 rounds x 3 epochs per trial, test_acc and test_loss. */
	for (int t = 0; t < 2; t++)
		for (int r = 0; r < 2; r++)
			for (int e = 1; e <= 3; e++) {
				double a = 0.5 + 0.1 * e + 0.01 * t - 0.05 * r;

				m[n++] = (eg_store_metric){ids[t], 1, e, r,
							   "test_acc", a};
				m[n++] = (eg_store_metric){ids[t], 1, e, r,
							   "test_loss", 1 - a};
			}
	rc = eg_store_metrics_write(s, m, n, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	eg_buf_puts(&items, "[");
	for (int t = 0; t < 2; t++) {
		eg_buf_printf(&items, "%s{\"trial\": %lld, \"attempt\": 1, "
			      "\"agent\": \"w<1>\", \"payload\": {"
			      "\"metrics\": {\"test_acc\": %g, \"remaining\": 0.64}, "
			      "\"curve\": [", t ? ", " : "", ids[t], 0.75 + 0.01 * t);
		for (int r = 0; r < 2; r++)
			for (int e = 1; e <= 3; e++)
				eg_buf_printf(&items, "%s{\"epoch\": %d, \"round\": %d, "
					      "\"test_acc\": %g}",
					      r || e > 1 ? ", " : "", e, r,
					      0.5 + 0.1 * e + 0.01 * t - 0.05 * r);
		eg_buf_printf(&items, "], \"rounds\": [{\"round\": 0, "
			      "\"remaining\": 1, \"test_acc\": %g}, {\"round\": 1, "
			      "\"remaining\": 0.8, \"test_acc\": %g}], \"layers\": ["
			      "{\"layer\": 0, \"name\": \"dense1\", \"pair\": "
			      "\"software-design\", \"s_tol\": 100, \"s_bit\": null, "
			      "\"max_abs\": 0.002, \"rel_l2\": 0.0005}, "
			      "{\"layer\": 1, \"name\": \"out\", \"pair\": "
			      "\"software-design\", \"s_tol\": 95.5, \"s_bit\": null, "
			      "\"max_abs\": 0.02, \"rel_l2\": 0.004, "
			      "\"top1_agree\": 99}]}}",
			      0.8 + 0.01 * t, 0.75 + 0.01 * t);
	}
	eg_buf_puts(&items, "]");
	EG_CHECK(!eg_buf_failed(&items));
	rc = eg_sched_results(s, eg_buf_str(&items), acc, &nacc, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	EG_CHECK_INT(nacc, 2);
	eg_store_close(s);
	eg_buf_free(&items);
	PQfinish(c);

	snprintf(path, sizeof(path), "%s/lt.html", eg_test_tmpdir());
	rc = cli(&out, "report %s -o %s", grid, path);
	EG_CHECK_MSG(rc == 0, "report: %d %s", rc, out);
	free(out);
	page = read_file(path);
	check_nesting(page);
	EG_CHECK(strstr(page, "<b>2</b><span>done</span>") != NULL);
	/* Curves: round 0 only, each epoch once (3 markers per trial), the
	 * last value that of round 0's epoch 3. */
	sec = slice(page, "<section id=\"curves\"", "</section>");
	EG_CHECK_INT(count(sec, "<polyline"), 2);
	EG_CHECK_INT(count(sec, "<circle"), 6);
	EG_CHECK(strstr(sec, "<span class=\"last\">0.81</span>") != NULL);
	EG_CHECK(strstr(sec, "<span class=\"last\">0.8</span>") != NULL);
	free(sec);
	sec = slice(page, "<section id=\"lottery\"", "</section>");
	EG_CHECK_INT(count(sec, "<polyline"), 2);
	EG_CHECK_INT(count(sec, "<circle"), 4);
	free(sec);
	/* Layers: no hardware, so the first layer out of tolerance. */
	sec = slice(page, "<section id=\"paradigms\"", "</section>");
	EG_CHECK(strstr(sec, "First divergent layer: <b>1</b> "
			     "(software-design)") != NULL);
	EG_CHECK_INT(count(sec, "<tr class=\"div\">"), 1);
	EG_CHECK(strstr(sec, "s_bit_mean") == NULL);
	EG_CHECK(strstr(sec, "top1_agree_mean") != NULL);
	free(sec);
	free(page);
}

EG_TEST(report_renders_in_chromium)
{
	char grid[32], html[PATH_MAX], png[PATH_MAX], cmd[PATH_MAX * 4];
	long long ids[8];
	char *out = NULL;
	struct stat st;
	unsigned char magic[8];
	FILE *f;
	PGconn *c;
	int rc;

	if (access("/usr/bin/chromium", X_OK) != 0)
		EG_SKIP("/usr/bin/chromium is not installed");
	start_cluster();
	c = PQconnectdb(eg_cluster_url(cluster));
	EG_CHECK(PQstatus(c) == CONNECTION_OK);
	populate(c, grid, ids);
	PQfinish(c);
	snprintf(html, sizeof(html), "%s/out.html", eg_test_tmpdir());
	snprintf(png, sizeof(png), "%s/out.png", eg_test_tmpdir());
	rc = cli(&out, "report %s -o %s", grid, html);
	EG_CHECK_MSG(rc == 0, "report: %d %s", rc, out);
	free(out);
	snprintf(cmd, sizeof(cmd),
		 "timeout 90 /usr/bin/chromium --headless --no-sandbox "
		 "--disable-gpu --disable-background-networking "
		 "--disable-component-update --disable-sync --no-first-run "
		 "--user-data-dir=%s/chromium --screenshot=%s "
		 "--window-size=1200,2000 file://%s",
		 eg_test_tmpdir(), png, html);
	rc = eg_test_run(cmd, &out);
	EG_CHECK_MSG(rc == 0 && stat(png, &st) == 0, "chromium: %d %s", rc, out);
	free(out);
	fprintf(stderr, "screenshot: %s, %lld bytes\n", png,
		(long long)st.st_size);
	EG_CHECK_MSG(st.st_size > 20 * 1024, "a %lld-byte screenshot",
		     (long long)st.st_size);
	f = fopen(png, "rb");
	EG_CHECK(f != NULL && fread(magic, 1, 8, f) == 8);
	fclose(f);
	EG_CHECK(memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0);
}

EG_TEST(report_database_down)
{
	char env[PATH_MAX];
	char *out = NULL;
	int rc;

	EG_CHECK(mkdir(eg_test_path("nosock"), 0755) == 0);
	snprintf(env, sizeof(env),
		 "host=%s/nosock port=5432 user=postgres dbname=expgrid "
		 "connect_timeout=3",
		 eg_test_tmpdir());
	setenv("EXPGRID_DB", env, 1);
	rc = cli(&out, "report 1 -o %s/x.html", eg_test_tmpdir());
	EG_CHECK_MSG(rc == 1 && strncmp(out, "expgrid: report: cannot connect "
					     "to the database", 47) == 0,
		     "%d %s", rc, out);
	free(out);
	EG_CHECK(access(eg_test_path("x.html"), F_OK) != 0);
}

EG_TEST_MAIN({"report_page", report_page, 120},
	     {"report_lottery_and_coverify", report_lottery_and_coverify, 120},
	     {"report_from_coordinator_writes", report_from_coordinator_writes,
	      120},
	     {"report_renders_in_chromium", report_renders_in_chromium, 180},
	     {"report_database_down", report_database_down, 30})
