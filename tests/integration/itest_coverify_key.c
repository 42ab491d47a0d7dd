/*
 * itest_coverify_key.c - `coverify.network: <key>`: a coverify trial that
 * verifies the network of an existing train trial, named by its key,
 * instead of training a companion of its own (docs/coverify.md, "On the
 * cluster"; store/store.c resolves the key at submit).
 *
 * Real PostgreSQL, the real coordinator, a single-rank worker and a
 * hardware agent with two sim boards, driven through the `expgrid` command
 * line, as in itest_hwagent.c (whose helpers are repeated here in the
 * small).  Grids are coverify trials on a blobs MLP 20-16-8 (layers dense0,
 * relu0, dense1) targeting fpga:sim16.
 *
 * What is checked: a second grid naming the first grid's companion train
 * trial depends on that trial and gets no companion, runs on the boards,
 * and verifies that very network (its float test_acc equals the train
 * trial's); a train trial that finished without exporting its network is
 * replaced by a fresh companion with its parameters, and submit says so;
 * a key naming no trial, a trial that is not a train trial, a network of
 * another shape, or a cpu grid are refused with exit 2 and nothing
 * written; `run --local` refuses the parameter.
 */
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store.h"
#include "tests/harness.h"

static char home[PATH_MAX];
static bool stack_up;

static void down_at_exit(void)
{
	if (stack_up) {
		stack_up = false;
		eg_test_run("bin/expgrid down", NULL);
	}
}

static void up(void)
{
	char *out = NULL;
	int st;

	snprintf(home, sizeof(home), "%s/h", eg_test_tmpdir());
	setenv("EXPGRID_HOME", home, 1);
	unsetenv("EXPGRID_DB");
	unsetenv("EXPGRID_TOKEN");
	unsetenv("EXPGRID_COORDINATOR");
	mkdir(home, 0755);
	atexit(down_at_exit);
	stack_up = true;
	st = eg_test_runf(&out, "bin/expgrid up --workers 1 --boards 2");
	EG_CHECK_MSG(st == 0, "expgrid up: %d\n%s", st, out);
	free(out);
}

/* The first cell of a one-row query (%lld = arg) as text, malloc'ed; NULL
 * if there is no such row. */
static char *sql_text(const char *fmt, long long arg)
{
	char sql[2048], *url = NULL, *v = NULL;
	PGconn *c;
	PGresult *r;

	snprintf(sql, sizeof(sql), fmt, arg);
	if (eg_store_conninfo(&url, NULL) != EG_OK)
		return NULL;
	c = PQconnectdb(url);
	free(url);
	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		    !PQgetisnull(r, 0, 0))
			v = strdup(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

static long long sql_int(const char *fmt, long long arg)
{
	char *t = sql_text(fmt, arg);
	long long v = t != NULL ? atoll(t) : -1;

	free(t);
	return v;
}

static void wait_grid_done(long long g, int timeout_s)
{
	double end = eg_test_now() + timeout_s;

	while (eg_test_now() < end) {
		if (sql_int("SELECT count(*) FROM grids WHERE id = %lld AND "
			    "state = 'done'", g) == 1)
			return;
		eg_test_sleep_ms(200);
	}
	EG_CHECK_MSG(false, "grid %lld not done after %d s", g, timeout_s);
}

/* Waits until grid g's (noop) trial holds the worker. */
static void wait_busy(long long g)
{
	double end = eg_test_now() + 30;

	while (eg_test_now() < end) {
		if (sql_int("SELECT count(*) FROM trials WHERE grid_id = %lld "
			    "AND state IN ('leased', 'running')", g) == 1)
			return;
		eg_test_sleep_ms(50);
	}
	EG_CHECK_MSG(false, "grid %lld never started", g);
}

/* A coverify grid on fpga:sim16 (see the top); `model` is the model map,
 * `extra` is appended (coverify.network, a sweep, ...). */
static const char *grid(const char *file, const char *name, const char *model,
			const char *target, const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "name: %s\n"
		 "trial:\n"
		 "  kind: coverify\n"
		 "  dataset: {name: blobs, train_size: 400, test_size: 100}\n"
		 "  model: %s\n"
		 "  train: {epochs: 2, batch: 32, lr: 0.05}\n"
		 "  hls: {word_bits: 16, int_bits: 6, round: rnd, "
		 "overflow: sat}\n"
		 "  coverify: {probes: 8}\n"
		 "target: %s\n%s",
		 name, model, target, extra);
	return eg_test_write_file(file, text);
}

#define MLP16 "{arch: mlp, hidden: [16], activation: relu}"

/* Submits; returns the grid id (the first line), *out the whole output. */
static long long submit(const char *file, char **out)
{
	int st = eg_test_runf(out, "bin/expgrid submit %s", file);

	EG_CHECK_MSG(st == 0, "submit %s: %d\n%s", file, st, *out);
	return atoll(*out);
}

/* A submission that must be refused: exit 2, `why` in the message, and
 * no grid of that name written. */
static void refused(const char *file, const char *name, const char *why)
{
	long long before = sql_int("SELECT count(*) FROM trials WHERE %lld > 0",
				   1);
	char *out = NULL, sql[256];
	int st = eg_test_runf(&out, "bin/expgrid submit %s", file);

	EG_CHECK_MSG(st == 2 && strstr(out, why) != NULL,
		     "submit %s: exit %d, wanted 2 and '%s':\n%s", file, st, why,
		     out);
	free(out);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM grids WHERE name = '%s' AND %%lld >= 0",
		 name);
	EG_CHECK_INT(sql_int(sql, 0), 0);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE %lld > 0", 1),
		     before);
}

/* Every trial of grid g done, one result each, nine layer_similarity rows
 * per coverify trial, and every coverify trial's float network scoring
 * what the train trial it depends on measured (the network arrived). */
static void check_results(long long g, long long ncov)
{
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE grid_id = "
			     "%lld AND kind = 'coverify' AND state = 'done'", g),
		     ncov);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results r JOIN trials t ON "
			     "t.id = r.trial_id WHERE t.grid_id = %lld AND "
			     "t.kind = 'coverify'", g),
		     ncov);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM layer_similarity s JOIN "
			     "trials t ON t.id = s.trial_id WHERE t.grid_id = "
			     "%lld", g),
		     9 * ncov);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results rc JOIN trials c ON "
			     "c.id = rc.trial_id JOIN results rt ON "
			     "rt.trial_id = c.depends_on WHERE c.grid_id = "
			     "%lld AND rc.metrics->'test_acc' = "
			     "rt.metrics->'test_acc'", g),
		     ncov);
}

EG_TEST(network_named_by_key)
{
	char extra[512], *out = NULL, *key = NULL, *cov_key = NULL;
	long long g1, g2, gt, g3, gn, gd, ge, train_id, ntrials;

	up();
	/* Stage 0: a coverify grid with its companion. */
	g1 = submit(grid("a.yaml", "key-a", MLP16, "fpga:sim16", ""), &out);
	free(out);
	wait_grid_done(g1, 90);
	key = sql_text("SELECT key FROM trials WHERE grid_id = %lld AND "
		       "kind = 'train'", g1);
	cov_key = sql_text("SELECT key FROM trials WHERE grid_id = %lld AND "
			   "kind = 'coverify'", g1);
	train_id = sql_int("SELECT id FROM trials WHERE grid_id = %lld AND "
			   "kind = 'train'", g1);
	EG_CHECK(key != NULL && cov_key != NULL && train_id > 0);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM artifacts WHERE trial_id = "
			     "%lld", train_id), 1);

	/* A second grid names that train trial: two word lengths, no
	 * companion, both depend on grid 1's trial. */
	snprintf(extra, sizeof(extra),
		 "sweep:\n  hls.word_bits: [16, 12]\n"
		 "  coverify.network: ['%s']\n", key);
	g2 = submit(grid("b.yaml", "key-b", MLP16, "fpga:sim16", extra), &out);
	EG_CHECK_MSG(strstr(out, "2 trials submitted") != NULL, "%s", out);
	EG_CHECK_MSG(strstr(out, "note:") == NULL, "%s", out);
	free(out);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE grid_id = %lld "
			     "AND kind = 'train'", g2), 0);
	{
		char sql[256];

		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM trials WHERE grid_id = %%lld "
			 "AND kind = 'coverify' AND depends_on = %lld",
			 train_id);
		EG_CHECK_INT(sql_int(sql, g2), 2);
	}
	wait_grid_done(g2, 90);
	check_results(g2, 2);
	/* The 16-bit board matches the design bit for bit on every layer. */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM layer_similarity s JOIN "
			     "trials t ON t.id = s.trial_id WHERE t.grid_id = "
			     "%lld AND s.pair = 'design-hardware' AND "
			     "s.s_bit = 100 AND (t.params->'hls'->>'word_bits')"
			     "::int = 16", g2),
		     3);
	/* Grid 1's train trial ran once: still one result. */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results WHERE trial_id = "
			     "%lld", train_id), 1);

	/* Refusals: exit 2, nothing written. */
	refused(grid("nokey.yaml", "key-none", MLP16, "fpga:sim16",
		     "sweep:\n  coverify.network: "
		     "['0123456789abcdef0123456789abcdef']\n"),
		"key-none", "no trial has key 0123456789abcdef0123456789abcdef");
	snprintf(extra, sizeof(extra), "sweep:\n  coverify.network: ['%s']\n",
		 cov_key);
	refused(grid("notrain.yaml", "key-cov", MLP16, "fpga:sim16", extra),
		"key-cov", "is a coverify trial");
	snprintf(extra, sizeof(extra), "sweep:\n  coverify.network: ['%s']\n",
		 key);
	refused(grid("shape.yaml", "key-shape",
		     "{arch: mlp, hidden: [8], activation: relu}",
		     "fpga:sim16", extra),
		"key-shape", "model.hidden differs: [8] here, [16] in trial");
	refused(grid("act.yaml", "key-act",
		     "{arch: mlp, hidden: [16], activation: tanh}",
		     "fpga:sim16", extra),
		"key-act", "model.activation differs");
	refused(grid("cpu.yaml", "key-cpu", MLP16, "cpu", extra), "key-cpu",
		"coverify.network needs a grid whose target is fpga");
	EG_CHECK_INT(eg_test_runf(&out, "bin/expgrid run --local %s",
			 eg_test_path("cpu.yaml")), 2);
	EG_CHECK_MSG(strstr(out, "--local has none") != NULL, "%s", out);
	free(out);
	EG_CHECK_INT(eg_test_runf(&out, "bin/expgrid expand %s",
			 grid("upper.yaml", "key-upper", MLP16, "fpga:sim16",
			      "sweep:\n  coverify.network: "
			      "['0123456789ABCDEF0123456789abcdef']\n")), 2);
	EG_CHECK_MSG(strstr(out, "coverify.network: expected a trial key") !=
			     NULL, "%s", out);
	free(out);

	/* A train trial that ran before anyone asked for its network (a cpu
	 * train grid, three epochs: another key) has no artifact; naming it
	 * adds a fresh companion with its parameters to the new grid. */
	gt = submit(eg_test_write_file(
			    "train.yaml",
			    "name: key-train\n"
			    "trial:\n"
			    "  dataset: {name: blobs, train_size: 400, "
			    "test_size: 100}\n"
			    "  model: " MLP16 "\n"
			    "  train: {epochs: 3, batch: 32, lr: 0.05}\n"),
		    &out);
	free(out);
	wait_grid_done(gt, 90);
	free(key);
	key = sql_text("SELECT key FROM trials WHERE grid_id = %lld", gt);
	EG_CHECK(key != NULL);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM artifacts a JOIN trials t ON "
			     "t.id = a.trial_id WHERE t.grid_id = %lld", gt),
		     0);
	snprintf(extra, sizeof(extra), "sweep:\n  coverify.network: ['%s']\n",
		 key);
	g3 = submit(grid("c.yaml", "key-c", MLP16, "fpga:sim16", extra), &out);
	EG_CHECK_MSG(strstr(out, "2 trials submitted") != NULL &&
			     strstr(out, "note: coverify.network ") != NULL &&
			     strstr(out, "did not export its network; added a "
					 "companion train trial") != NULL,
		     "%s", out);
	free(out);
	{
		char sql[512];

		/* The companion has the referenced trial's key and params. */
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM trials c JOIN trials t ON "
			 "t.id = c.depends_on JOIN trials o ON o.key = t.key "
			 "AND o.grid_id = %lld WHERE c.grid_id = %%lld AND "
			 "t.grid_id = c.grid_id AND t.kind = 'train' AND "
			 "t.target = 'cpu' AND t.params = o.params",
			 gt);
		EG_CHECK_INT(sql_int(sql, g3), 1);
	}
	wait_grid_done(g3, 90);
	check_results(g3, 1);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM artifacts a JOIN trials t ON "
			     "t.id = a.trial_id WHERE t.grid_id = %lld", g3),
		     1);
	/* A pending train trial (the only worker rank is busy with a noop
	 * trial) is taken as it is: it exports its network when leased,
	 * because a trial now depends on it. */
	gn = submit(eg_test_write_file("noop.yaml",
				       "name: key-noop\n"
				       "trial: {kind: noop, noop.ms: 2500}\n"),
		    &out);
	free(out);
	wait_busy(gn);
	gd = submit(grid("d.yaml", "key-d", MLP16, "fpga:sim16",
			 "sweep:\n  seed: [7]\n"), &out);
	free(out);
	free(key);
	key = sql_text("SELECT key FROM trials WHERE grid_id = %lld AND "
		       "kind = 'train'", gd);
	train_id = sql_int("SELECT id FROM trials WHERE grid_id = %lld AND "
			   "kind = 'train'", gd);
	EG_CHECK(key != NULL && train_id > 0);
	snprintf(extra, sizeof(extra),
		 "sweep:\n  seed: [7]\n  coverify.network: ['%s']\n", key);
	ge = submit(grid("e.yaml", "key-e", MLP16, "fpga:sim16", extra), &out);
	EG_CHECK_MSG(strstr(out, "1 trials submitted") != NULL &&
			     strstr(out, "note:") == NULL, "%s", out);
	free(out);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE id = %lld AND "
			     "state = 'pending'", train_id), 1);
	{
		char sql[256];

		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM trials WHERE grid_id = %%lld "
			 "AND kind = 'coverify' AND depends_on = %lld",
			 train_id);
		EG_CHECK_INT(sql_int(sql, ge), 1);
	}
	wait_grid_done(gd, 90);
	wait_grid_done(ge, 90);
	check_results(gd, 1);
	check_results(ge, 1);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results WHERE trial_id = "
			     "%lld", train_id), 1);

	/* Submitting the same grid again adds nothing (and resolves
	 * nothing). */
	EG_CHECK_INT(eg_test_runf(&out, "bin/expgrid submit %s", eg_test_path("c.yaml")),
		     0);
	EG_CHECK_MSG(strstr(out, "nothing added") != NULL, "%s", out);
	free(out);
	ntrials = sql_int("SELECT count(*) FROM trials WHERE %lld > 0", 1);
	EG_CHECK_INT(ntrials, 2 + 2 + 1 + 2 + 1 + 2 + 1);
	free(key);
	free(cov_key);
	stack_up = false;
	EG_CHECK_INT(eg_test_runf(NULL, "bin/expgrid down"), 0);
}

EG_TEST_MAIN({"network_named_by_key", network_named_by_key, 240})
