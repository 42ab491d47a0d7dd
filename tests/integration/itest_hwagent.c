/*
 * itest_hwagent.c - the board farm end to end: real PostgreSQL, the real
 * coordinator, a single-rank worker (it trains the networks), and
 * expgrid-hwagent with sim and exec boards, driven through the `expgrid`
 * command line; faults by kill -9 and by boards that hang, time out or
 * answer garbage.
 *
 * Every test brings a stack up under its own EXPGRID_HOME in its scratch
 * directory and takes it down again (also from an atexit handler, since
 * the daemons live in sessions of their own).  Grids are coverify trials
 * on small synthetic `blobs` networks targeting fpga:<type>, so each one
 * is its companion train trial on the worker plus a second stage on a
 * board, a few seconds in all.
 *
 * "Recorded once": every trial of the grid is done and `results` has
 * exactly one row per trial, and layer_similarity nine rows (three layers,
 * three pairs) per coverify trial, whatever died on the way.
 */
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static void set_home(void)
{
	snprintf(home, sizeof(home), "%s/h", eg_test_tmpdir());
	setenv("EXPGRID_HOME", home, 1);
	unsetenv("EXPGRID_DB");
	unsetenv("EXPGRID_TOKEN");
	unsetenv("EXPGRID_COORDINATOR");
	mkdir(home, 0755);
}

/* `expgrid up --workers 1` plus `extra`; the hwagent must start. */
static void up(const char *extra)
{
	char *out = NULL;
	int st;

	if (!stack_up)
		atexit(down_at_exit);
	stack_up = true;
	st = eg_test_runf(&out, "bin/expgrid up --workers 1 %s", extra);
	EG_CHECK_MSG(st == 0, "expgrid up: %d\n%s", st, out);
	EG_CHECK_MSG(strstr(out, "hwagent: started") != NULL ||
			     strstr(out, "hwagent: already running") != NULL,
		     "%s", out);
	free(out);
}

static void down(void)
{
	char *out = NULL;
	int st = eg_test_runf(&out, "bin/expgrid down");

	stack_up = false;
	EG_CHECK_MSG(st == 0, "expgrid down: %d\n%s", st, out);
	EG_CHECK_MSG(strstr(out, "hwagent stopped") != NULL, "%s", out);
	free(out);
}

static pid_t pid_of(const char *file)
{
	char path[PATH_MAX + 64];
	FILE *f;
	long pid = 0;

	snprintf(path, sizeof(path), "%s/run/%s", home, file);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/* One integer from SQL (%lld = the grid id); -1 if it cannot answer. */
static long long sql_int(const char *fmt, long long grid)
{
	char sql[2048];
	char *url = NULL;
	PGconn *c;
	PGresult *r;
	long long v = -1;

	snprintf(sql, sizeof(sql), fmt, grid);
	if (eg_store_conninfo(&url, NULL) != EG_OK)
		return -1;
	c = PQconnectdb(url);
	free(url);
	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		    !PQgetisnull(r, 0, 0))
			v = atoll(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

static void wait_for(const char *what, const char *fmt, long long grid,
		     long long want, int timeout_s)
{
	double end = eg_test_now() + timeout_s;
	long long v = -1;

	while (eg_test_now() < end) {
		v = sql_int(fmt, grid);
		if (v >= want)
			return;
		eg_test_sleep_ms(100);
	}
	EG_CHECK_MSG(false, "%s: %lld < %lld after %d s", what, v, want,
		     timeout_s);
}

/* Whether the hwagent's log contains `s`. */
static bool log_has(const char *s)
{
	char path[PATH_MAX + 64], *text = NULL, cmd[PATH_MAX + 96];
	bool yes;

	snprintf(path, sizeof(path), "%s/log/hwagent.log", home);
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	eg_test_run(cmd, &text);
	yes = text != NULL && strstr(text, s) != NULL;
	free(text);
	return yes;
}

static void wait_log(const char *s, int timeout_s)
{
	double end = eg_test_now() + timeout_s;

	while (eg_test_now() < end) {
		if (log_has(s))
			return;
		eg_test_sleep_ms(100);
	}
	EG_CHECK_MSG(false, "hwagent.log never said '%s'", s);
}

/*
 * A coverify grid on `target` of a blobs MLP 20-16-8... (layers dense0,
 * relu0, dense1), trained one epoch by its companion train trial; `extra`
 * is appended to the file (a sweep, max_attempts).
 */
static const char *cov_grid(const char *file, const char *name,
			    const char *target, int probes, const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "name: %s\n"
		 "trial:\n"
		 "  kind: coverify\n"
		 "  dataset: {name: blobs, train_size: 400, test_size: 100}\n"
		 "  model: {arch: mlp, hidden: [16], activation: relu}\n"
		 "  train: {epochs: 2, batch: 32, lr: 0.05}\n"
		 "  hls: {word_bits: 16, int_bits: 6, round: rnd, "
		 "overflow: sat}\n"
		 "  coverify: {probes: %d}\n"
		 "target: %s\n%s",
		 name, probes, target, extra);
	return eg_test_write_file(file, text);
}

static long long submit(const char *grid)
{
	char *out = NULL;
	int st = eg_test_runf(&out, "bin/expgrid submit %s", grid);
	long long id;

	EG_CHECK_MSG(st == 0, "submit: %d\n%s", st, out);
	id = atoll(out);
	free(out);
	EG_CHECK(id > 0);
	return id;
}

static void wait_grid_done(long long g, int timeout_s)
{
	wait_for("grid done", "SELECT count(*) FROM grids WHERE id = %lld "
		 "AND state = 'done'", g, 1, timeout_s);
}

/* Every trial done and its result recorded exactly once. */
static void check_once(long long g)
{
	long long n = sql_int("SELECT count(*) FROM trials WHERE grid_id = "
			      "%lld", g);

	EG_CHECK(n >= 2);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE grid_id = "
			     "%lld AND state = 'done'", g), n);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results r JOIN trials t ON "
			     "t.id = r.trial_id WHERE t.grid_id = %lld", g), n);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM layer_similarity s JOIN "
			     "trials t ON t.id = s.trial_id WHERE t.grid_id = "
			     "%lld", g),
		     9 * sql_int("SELECT count(*) FROM trials WHERE grid_id = "
				 "%lld AND kind = 'coverify'", g));
}

/* The boards file for the next `up`, with $PWD spliced in for scripts. */
static void boards_file(const char *text)
{
	char path[PATH_MAX + 32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/boards.yaml", home);
	f = fopen(path, "w");
	EG_CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
}

EG_TEST(coverify_on_two_sim_boards)
{
	long long g1, g2;
	char *out = NULL;
	int st;

	set_home();
	up("--boards 2");
	/* Healthy: design and board bit-exact on every layer. */
	g1 = submit(cov_grid("ok.yaml", "hw-ok", "fpga:sim16", 16,
			     "sweep:\n  seed: [0, 1]\n"));
	/* A planted fault at layer 2 (dense1, the logits). */
	g2 = submit(cov_grid("bad.yaml", "hw-fault", "fpga:sim16", 16,
			     "sweep:\n  coverify.fault: [{layer: 2, kind: "
			     "bitflip, bit: 3, rate: 1}]\n"));
	wait_grid_done(g1, 90);
	wait_grid_done(g2, 90);
	check_once(g1);
	check_once(g2);
	/* Two coverify trials, each with its own companion (seed differs). */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE grid_id = "
			     "%lld AND kind = 'train' AND target = 'cpu'", g1),
		     2);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials c JOIN trials t ON "
			     "t.id = c.depends_on WHERE c.grid_id = %lld AND "
			     "t.kind = 'train'", g1),
		     2);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM layer_similarity s JOIN "
			     "trials t ON t.id = s.trial_id WHERE t.grid_id = "
			     "%lld AND s.pair = 'design-hardware' AND "
			     "s.s_bit = 100", g1),
		     6);
	/* The network arrived intact: the board trial's float network
	 * scores what the train trial measured. */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results rc JOIN trials c ON "
			     "c.id = rc.trial_id JOIN results rt ON "
			     "rt.trial_id = c.depends_on WHERE c.grid_id = "
			     "%lld AND rc.metrics->'test_acc' = "
			     "rt.metrics->'test_acc'", g1),
		     2);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM layer_outputs o JOIN "
			     "trials t ON t.id = o.trial_id WHERE t.grid_id = "
			     "%lld AND o.source = 'hardware' AND "
			     "o.est_cycles > 0", g1),
		     6);
	st = eg_test_runf(&out, "bin/expgrid query paradigms %lld", g1);
	EG_CHECK_MSG(st == 0 && strstr(out, "design-hardware") != NULL &&
			     strstr(out, "first divergent layer: none") != NULL,
		     "%s", out);
	free(out);
	EG_CHECK_INT(sql_int("SELECT min(s.layer) FROM layer_similarity s JOIN "
			     "trials t ON t.id = s.trial_id WHERE t.grid_id = "
			     "%lld AND s.pair = 'design-hardware' AND "
			     "s.s_bit < 100", g2),
		     2);
	EG_CHECK_INT(sql_int("SELECT (r.metrics->>'first_divergent_layer')::int "
			     "FROM results r JOIN trials t ON t.id = r.trial_id "
			     "WHERE t.grid_id = %lld AND t.kind = 'coverify'",
			     g2),
		     2);
	st = eg_test_runf(&out, "bin/expgrid query paradigms %lld", g2);
	EG_CHECK_MSG(st == 0 && strstr(out, "first divergent layer: 2 "
					    "(dense1)") != NULL,
		     "%s", out);
	free(out);
	/* The boards are registered with the coordinator, and in the
	 * boards table. */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM boards b JOIN agents a ON "
			     "a.id = b.agent_id WHERE a.role = 'hwagent' AND "
			     "b.type = 'sim16' AND b.backend = 'sim' AND "
			     "b.health = 'good' AND b.name IN ('sim0', 'sim1') "
			     "AND %lld > 0", 1),
		     2);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM agents WHERE role = "
			     "'hwagent' AND capabilities->'target' ? "
			     "'fpga:sim16' AND jsonb_array_length("
			     "capabilities->'boards') = %lld", 2),
		     1);
	down();
}

EG_TEST(hung_board_escalates_and_trial_reruns)
{
	long long g;

	set_home();
	boards_file("boards:\n"
		    "  - {name: good0, type: sim16, backend: sim, options: "
		    "{word_bits: 16, int_bits: 6, round: rnd, overflow: sat}}\n"
		    "  - {name: hung1, type: sim16, backend: sim, options: "
		    "{word_bits: 16, int_bits: 6, round: rnd, overflow: sat, "
		    "hang: true, timeout_ms: 1500}}\n");
	up("");
	/* One companion for all three, so they become ready together and
	 * both boards get one. */
	g = submit(cov_grid("g.yaml", "hw-hang", "fpga:sim16", 8,
			    "sweep:\n  coverify.tolerance: [0.01, 0.02, "
			    "0.03]\n"));
	wait_grid_done(g, 90);
	check_once(g);
	/* One companion train trial, shared by the three. */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE grid_id = "
			     "%lld AND kind = 'train'", g),
		     1);
	EG_CHECK_INT(sql_int("SELECT count(DISTINCT depends_on) FROM trials "
			     "WHERE grid_id = %lld AND kind = 'coverify'", g),
		     1);
	/* A trial was given to the hung board (both boards were idle when
	 * the trials became ready), timed out and ran again. */
	EG_CHECK(log_has("watchdog: board hung1"));
	EG_CHECK(log_has("board hung1: health unknown -> bad"));
	EG_CHECK(sql_int("SELECT max(attempts) FROM trials WHERE grid_id = "
			 "%lld AND kind = 'coverify'", g) == 2);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results r JOIN trials t ON "
			     "t.id = r.trial_id WHERE t.grid_id = %lld AND "
			     "r.agent IS NOT NULL AND t.kind = 'coverify' AND "
			     "r.metrics->>'l1_hw_health' = '1'", g),
		     3);
	down();
}

/* An exec board that sleeps before computing: a job long enough to be
 * killed in the middle of. */
static void slow_exec_boards(int sleep_s)
{
	char text[4096], cwd[1024];

	EG_CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	snprintf(text, sizeof(text),
		 "#!/bin/sh\n"
		 "# slow on real jobs, prompt on the 2-example health check\n"
		 "grep -q '\"n\":2,' \"$1/inputs.json\" || sleep %d\n"
		 "exec python3 %s/docs/examples/board_exec_example.py \"$1\"\n",
		 sleep_s, cwd);
	eg_test_write_file("slow.sh", text);
	snprintf(text, sizeof(text),
		 "boards:\n  - {name: slow0, type: slow, backend: exec, "
		 "options: {command: [sh, %s], word_bits: 16, int_bits: 6, "
		 "round: rnd, overflow: sat, timeout_ms: 60000}}\n",
		 eg_test_path("slow.sh"));
	boards_file(text);
}

EG_TEST(hwagent_killed_mid_job_requeues_once)
{
	long long g;
	pid_t agent;

	set_home();
	slow_exec_boards(4);
	up("");
	g = submit(cov_grid("g.yaml", "hw-kill", "fpga:slow", 8, ""));
	wait_for("coverify running", "SELECT count(*) FROM trials WHERE "
		 "grid_id = %lld AND kind = 'coverify' AND state = 'running'",
		 g, 1, 60);
	eg_test_sleep_ms(500);
	agent = pid_of("hwagent.pid");
	EG_CHECK(agent > 0);
	EG_CHECK(kill(agent, SIGKILL) == 0);
	/* The dropped connection hands the trial back at once. */
	wait_for("requeued", "SELECT count(*) FROM trials WHERE grid_id = "
		 "%lld AND kind = 'coverify' AND state = 'pending' AND "
		 "attempts = 1", g, 1, 20);
	up("");
	wait_grid_done(g, 90);
	check_once(g);
	EG_CHECK_INT(sql_int("SELECT attempts FROM trials WHERE grid_id = "
			     "%lld AND kind = 'coverify'", g),
		     2);
	down();
}

EG_TEST(journal_resends_after_coordinator_and_agent_restart)
{
	char path[PATH_MAX + 64];
	long long g;
	struct stat st;
	pid_t coord, agent;

	set_home();
	slow_exec_boards(3);
	up("");
	g = submit(cov_grid("g.yaml", "hw-journal", "fpga:slow", 8, ""));
	wait_for("coverify running", "SELECT count(*) FROM trials WHERE "
		 "grid_id = %lld AND kind = 'coverify' AND state = 'running'",
		 g, 1, 60);
	coord = pid_of("coordinator.pid");
	EG_CHECK(coord > 0 && kill(coord, SIGKILL) == 0);
	/* The board finishes while nobody listens: the result goes to the
	 * journal only. */
	wait_log("done on board slow0", 30);
	snprintf(path, sizeof(path), "%s/run/hwagent-hwagent.journal", home);
	EG_CHECK(stat(path, &st) == 0 && st.st_size > 0);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results r JOIN trials t ON "
			     "t.id = r.trial_id WHERE t.grid_id = %lld AND "
			     "t.kind = 'coverify'", g),
		     0);
	/* And the agent dies too: the journal outlives it. */
	agent = pid_of("hwagent.pid");
	EG_CHECK(agent > 0 && kill(agent, SIGKILL) == 0);
	eg_test_sleep_ms(200);
	up("");
	wait_grid_done(g, 60);
	check_once(g);
	EG_CHECK_INT(sql_int("SELECT attempts FROM trials WHERE grid_id = "
			     "%lld AND kind = 'coverify'", g),
		     1);
	EG_CHECK(log_has("resending 1 unacknowledged result"));
	/* ACKed: the journal is empty again. */
	for (int i = 0; i < 50 && stat(path, &st) == 0 && st.st_size > 0; i++)
		eg_test_sleep_ms(100);
	EG_CHECK(stat(path, &st) == 0 && st.st_size == 0);
	down();
}

EG_TEST(exec_backend_scripts)
{
	char text[8192], cwd[1024], hang[1024], garbage[1024];
	long long ok, slow, bad;
	char *out = NULL;

	set_home();
	EG_CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	/* Each fake board answers the 2-example known-answer check right
	 * (through the example script) and misbehaves on real jobs. */
	snprintf(text, sizeof(text),
		 "#!/bin/sh\n"
		 "grep -q '\"n\":2,' \"$1/inputs.json\" || exec sleep 600\n"
		 "exec python3 %s/docs/examples/board_exec_example.py \"$1\"\n",
		 cwd);
	eg_test_write_file("hang.sh", text);
	snprintf(text, sizeof(text),
		 "#!/bin/sh\n"
		 "if grep -q '\"n\":2,' \"$1/inputs.json\"; then\n"
		 "  exec python3 %s/docs/examples/board_exec_example.py \"$1\"\n"
		 "fi\n"
		 "echo '{\"outputs\": [{\"name\": \"dense0\", \"codes\": "
		 "[1, 2, \"x\"]}' > \"$1/outputs.json\"\n",
		 cwd);
	eg_test_write_file("garbage.sh", text);
	/* eg_test_path's buffer is reused by the next call: copy. */
	snprintf(hang, sizeof(hang), "%s", eg_test_path("hang.sh"));
	snprintf(garbage, sizeof(garbage), "%s", eg_test_path("garbage.sh"));
	snprintf(text, sizeof(text),
		 "boards:\n"
		 "  - {name: py0, type: pyok, backend: exec, options: {command: "
		 "[python3, %s/docs/examples/board_exec_example.py], "
		 "word_bits: 16, int_bits: 6, round: rnd, overflow: sat}}\n"
		 "  - {name: hang0, type: pyslow, backend: exec, options: "
		 "{command: [sh, %s], word_bits: 16, int_bits: 6, round: rnd, "
		 "overflow: sat, timeout_ms: 1500}}\n"
		 "  - {name: junk0, type: pybad, backend: exec, options: "
		 "{command: [sh, %s], word_bits: 16, int_bits: 6, round: rnd, "
		 "overflow: sat, timeout_ms: 20000}}\n",
		 cwd, hang, garbage);
	boards_file(text);
	up("");
	EG_CHECK(log_has("board py0 (pyok, exec): health check passed"));
	EG_CHECK(log_has("board hang0 (pyslow, exec): health check passed"));
	EG_CHECK(log_has("board junk0 (pybad, exec): health check passed"));
	ok = submit(cov_grid("ok.yaml", "x-ok", "fpga:pyok", 8, ""));
	slow = submit(cov_grid("slow.yaml", "x-slow", "fpga:pyslow", 8,
			       "max_attempts: 1\n"));
	bad = submit(cov_grid("bad.yaml", "x-bad", "fpga:pybad", 8,
			      "max_attempts: 1\n"));
	wait_grid_done(ok, 90);
	wait_grid_done(slow, 90);
	wait_grid_done(bad, 90);
	/* The correct script: bit-exact with the design model. */
	check_once(ok);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM layer_similarity s JOIN "
			     "trials t ON t.id = s.trial_id WHERE t.grid_id = "
			     "%lld AND s.pair = 'design-hardware' AND "
			     "s.s_bit = 100", ok),
		     3);
	/* The one that never finishes: killed at its timeout, the trial
	 * failed with that reason, the board checked again. */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE grid_id = "
			     "%lld AND kind = 'coverify' AND state = 'failed' "
			     "AND last_error LIKE '%%board hang0: command timed out after 1500 ms%%'",
			     slow),
		     1);
	/* Garbage: a clear error naming the rule, health unknown, then the
	 * health check (which the script passes: good again). */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE grid_id = "
			     "%lld AND kind = 'coverify' AND state = 'failed' "
			     "AND last_error LIKE '%%board junk0: malformed "
			     "output%%'", bad),
		     1);
	EG_CHECK(log_has("board junk0: health good -> unknown: coverify: "
			 "hardware: board junk0: malformed output"));
	EG_CHECK(log_has("board junk0: health check after the error passed"));
	EG_CHECK(log_has("board junk0: health unknown -> good"));
	EG_CHECK(log_has("board hang0: health unknown -> good"));
	free(out);
	down();
}

EG_TEST_MAIN({"coverify_on_two_sim_boards", coverify_on_two_sim_boards, 150},
	     {"hung_board_escalates_and_trial_reruns",
	      hung_board_escalates_and_trial_reruns, 120},
	     {"hwagent_killed_mid_job_requeues_once",
	      hwagent_killed_mid_job_requeues_once, 120},
	     {"journal_resends_after_coordinator_and_agent_restart",
	      journal_resends_after_coordinator_and_agent_restart, 120},
	     {"exec_backend_scripts", exec_backend_scripts, 150})
