/*
 * itest_stack.c - the local stack end to end, and its faults: real
 * PostgreSQL (the embedded cluster), the real coordinator, real `mpirun`
 * with expgrid-worker ranks, real sockets and real kill -9, all driven
 * through the `expgrid` command line as a user would.
 *
 * Each test brings a stack up under its own short EXPGRID_HOME in its
 * scratch directory and takes it down at the end; an atexit handler runs
 * `expgrid down` too, because the daemons live in sessions of their own,
 * out of reach of the runner's process-group kill, and a failed check
 * exits early.  Timing-sensitive tests use noop trials (noop.ms); the end
 * to end test runs real (tiny, synthetic-blobs) training trials.
 *
 * What "recorded once" means here: every trial of the grid is done and
 * `results` has exactly one row per trial (count(*) = count(DISTINCT
 * trial_id) = trials), whatever died on the way.
 */
#include <dirent.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
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

/* A fresh home under the scratch directory, and `expgrid up`. */
static void up(int workers)
{
	char *out = NULL;
	int st;

	snprintf(home, sizeof(home), "%s/h", eg_test_tmpdir());
	setenv("EXPGRID_HOME", home, 1);
	unsetenv("EXPGRID_DB");
	unsetenv("EXPGRID_TOKEN");
	unsetenv("EXPGRID_COORDINATOR");
	atexit(down_at_exit);
	stack_up = true;
	st = eg_test_runf(&out, "bin/expgrid up --workers %d", workers);
	EG_CHECK_MSG(st == 0, "expgrid up: %d\n%s", st, out);
	EG_CHECK_MSG(strstr(out, "coordinator: started") != NULL, "%s", out);
	EG_CHECK_MSG(strstr(out, "workers: started") != NULL, "%s", out);
	free(out);
}

static void down(void)
{
	char *out = NULL;
	int st = eg_test_runf(&out, "bin/expgrid down");

	stack_up = false;
	EG_CHECK_MSG(st == 0, "expgrid down: %d\n%s", st, out);
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

/* Alive and not a zombie. */
static bool alive(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	size_t n;
	const char *p;

	if (pid <= 0 || kill(pid, 0) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] && p[2] != 'Z' && p[2] != 'X';
}

/* One integer from SQL (with %lld for the grid id); -1 if the database
 * cannot answer right now. */
static long long sql_int(const char *fmt, long long grid)
{
	char sql[1024];
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
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			v = atoll(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

static long long count_state(long long grid, const char *state)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM trials WHERE grid_id = %%lld AND "
		 "state = '%s'",
		 state);
	return sql_int(sql, grid);
}

/* Writes a noop grid of n trials of ms milliseconds; returns its path. */
static const char *noop_grid(const char *name, int n, int ms)
{
	char text[4096];
	int len;

	len = snprintf(text, sizeof(text),
		       "name: %s\ntrial:\n  kind: noop\n  noop: {ms: %d}\n"
		       "sweep:\n  seed: [",
		       name, ms);
	for (int i = 0; i < n; i++)
		len += snprintf(text + len, sizeof(text) - (size_t)len, "%s%d",
				i ? ", " : "", i);
	snprintf(text + len, sizeof(text) - (size_t)len, "]\n");
	return eg_test_write_file("grid.yaml", text);
}

/* `expgrid submit` without waiting; returns the grid id. */
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

/* Waits until SQL `fmt` (on grid) returns at least `want`. */
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

/* The grid is finished with every trial done and one result row each. */
static void check_recorded_once(long long grid, long long n)
{
	EG_CHECK_INT(count_state(grid, "done"), n);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results r JOIN trials t "
			     "ON t.id = r.trial_id WHERE t.grid_id = %lld",
			     grid),
		     n);
	EG_CHECK_INT(sql_int("SELECT count(DISTINCT r.trial_id) FROM results "
			     "r JOIN trials t ON t.id = r.trial_id WHERE "
			     "t.grid_id = %lld",
			     grid),
		     n);
}

/* Whether the file holds `needle`. */
static bool file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	FILE *f;
	size_t n;
	const char *p;
	unsigned long ut = 0, st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				       "%*u %*u %lu %lu",
				&ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

/* ---- tests ---- */

/* Real training trials through up + submit --wait. */
EG_TEST(grid_end_to_end)
{
	const char *grid = eg_test_write_file(
		"blobs.yaml",
		"name: blobs-e2e\n"
		"trial:\n"
		"  dataset: {name: blobs, train_size: 400, test_size: 200, "
		"dim: 16, num_classes: 4}\n"
		"  model: {arch: mlp, hidden: [32]}\n"
		"  train: {epochs: 3, batch: 32, lr: 0.05}\n"
		"sweep:\n"
		"  seed: [0, 1, 2, 3, 4, 5]\n"
		"  model.activation: [relu, tanh]\n");
	char *out = NULL;
	long long id;
	int st;

	up(2);
	st = eg_test_runf(&out, "bin/expgrid submit --wait %s", grid);
	EG_CHECK_MSG(st == 0, "submit --wait: %d\n%s", st, out);
	EG_CHECK_MSG(strstr(out, "12/12") != NULL, "no final bar:\n%s", out);
	id = atoll(out);
	free(out);
	check_recorded_once(id, 12);
	/* The results are the trials' own: accuracies in range, a curve of
	 * three epochs, and per-epoch progress in `metrics`. */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results r JOIN trials t ON "
			     "t.id = r.trial_id WHERE t.grid_id = %lld AND "
			     "(r.metrics->>'test_acc')::float8 BETWEEN 0 AND 1 "
			     "AND jsonb_array_length(r.curve) = 3",
			     id),
		     12);
	st = eg_test_runf(&out, "bin/expgrid query best %lld", id);
	EG_CHECK_MSG(st == 0 && strstr(out, "test_acc") != NULL, "%s", out);
	free(out);
	down();
}

/* kill -9 of a compute rank mid-grid: mpirun ends the job, the
 * coordinator requeues its leases, `up` restarts the workers. */
EG_TEST(kill_compute_rank)
{
	long long id;
	pid_t rank1, mpirun;
	char *out = NULL;
	double end;
	int st;

	up(2);
	id = submit(noop_grid("killrank", 16, 700));
	wait_for("trials done", "SELECT count(*) FROM trials WHERE grid_id = "
				"%lld AND state = 'done'",
		 id, 2, 60);
	rank1 = pid_of("worker-rank1.pid");
	mpirun = pid_of("worker.pid");
	EG_CHECK(alive(rank1) && alive(mpirun));
	EG_CHECK_INT(kill(rank1, SIGKILL), 0);
	end = eg_test_now() + 30;
	while (alive(mpirun) && eg_test_now() < end)
		eg_test_sleep_ms(100);
	EG_CHECK_MSG(!alive(mpirun), "mpirun survived the death of a rank");
	st = eg_test_runf(&out, "bin/expgrid up --workers 2");
	EG_CHECK_MSG(st == 0 && strstr(out, "workers: started") != NULL &&
			     strstr(out, "coordinator: already running"),
		     "%s", out);
	free(out);
	st = eg_test_runf(&out, "bin/expgrid submit --wait %s", eg_test_path("grid.yaml"));
	EG_CHECK_MSG(st == 0, "submit --wait: %d\n%s", st, out);
	free(out);
	check_recorded_once(id, 16);
	/* The kill hit a running trial: some trial needed a second attempt. */
	EG_CHECK(sql_int("SELECT max(attempts) FROM trials WHERE grid_id = %lld",
			 id) >= 2);
	down();
}

/* kill -9 of the coordinator mid-grid: the workers keep computing and
 * reconnect to the new one (new port) that `up` starts; unACKed results
 * are resent. */
EG_TEST(kill_coordinator)
{
	char wlog[PATH_MAX + 32];
	long long id;
	pid_t coord, mpirun;
	char *out = NULL;
	int st;

	up(2);
	mpirun = pid_of("worker.pid");
	id = submit(noop_grid("killcoord", 16, 700));
	wait_for("trials done", "SELECT count(*) FROM trials WHERE grid_id = "
				"%lld AND state = 'done'",
		 id, 2, 60);
	coord = pid_of("coordinator.pid");
	EG_CHECK(alive(coord));
	EG_CHECK_INT(kill(coord, SIGKILL), 0);
	eg_test_sleep_ms(1500); /* trials finish meanwhile, unacknowledged */
	st = eg_test_runf(&out, "bin/expgrid up --workers 2");
	EG_CHECK_MSG(st == 0 && strstr(out, "coordinator: started") != NULL &&
			     strstr(out, "workers: already running") != NULL,
		     "%s", out);
	free(out);
	st = eg_test_runf(&out, "bin/expgrid submit --wait %s", eg_test_path("grid.yaml"));
	EG_CHECK_MSG(st == 0, "submit --wait: %d\n%s", st, out);
	free(out);
	check_recorded_once(id, 16);
	EG_CHECK_MSG(alive(mpirun), "the workers did not survive");
	snprintf(wlog, sizeof(wlog), "%s/log/worker.log", home);
	EG_CHECK(file_has(wlog, "reconnected to coordinator"));
	/* Both slots were running 0.7 s trials when the coordinator died
	 * 1.5 s before the restart: their results waited, unACKed. */
	EG_CHECK(file_has(wlog, "unacknowledged result"));
	down();
}

/* PostgreSQL stopped and started mid-grid: nothing else is restarted. */
EG_TEST(postgres_restart)
{
	long long id;
	char *out = NULL;
	int st;

	up(2);
	id = submit(noop_grid("pgrestart", 16, 700));
	wait_for("trials done", "SELECT count(*) FROM trials WHERE grid_id = "
				"%lld AND state = 'done'",
		 id, 2, 60);
	st = eg_test_runf(&out, "bin/expgrid db stop");
	EG_CHECK_MSG(st == 0, "db stop: %s", out);
	free(out);
	eg_test_sleep_ms(2000);
	st = eg_test_runf(&out, "bin/expgrid db start");
	EG_CHECK_MSG(st == 0, "db start: %s", out);
	free(out);
	st = eg_test_runf(&out, "bin/expgrid submit --wait %s", eg_test_path("grid.yaml"));
	EG_CHECK_MSG(st == 0, "submit --wait: %d\n%s", st, out);
	free(out);
	check_recorded_once(id, 16);
	down();
}

/* Cancel mid-grid: running trials stop (not after their 30 s), end up
 * cancelled with no result, and the workers stay up. */
EG_TEST(cancel_mid_grid)
{
	char wlog[PATH_MAX + 32];
	long long id;
	pid_t mpirun;
	char *out = NULL;
	double t0;
	int st;

	up(2);
	mpirun = pid_of("worker.pid");
	id = submit(noop_grid("cancelme", 6, 30000));
	wait_for("trials running", "SELECT count(*) FROM trials WHERE grid_id "
				   "= %lld AND state IN ('leased', 'running')",
		 id, 2, 60);
	snprintf(wlog, sizeof(wlog), "%s/log/worker.log", home);
	/* Both slots really run a trial before the cancel. */
	t0 = eg_test_now();
	while (eg_test_now() - t0 < 20 && !file_has(wlog, "-> rank 2"))
		eg_test_sleep_ms(100);
	EG_CHECK(file_has(wlog, "-> rank 1") && file_has(wlog, "-> rank 2"));
	t0 = eg_test_now();
	st = eg_test_runf(&out, "bin/expgrid cancel %lld", id);
	EG_CHECK_MSG(st == 0, "cancel: %d\n%s", st, out);
	free(out);
	while (eg_test_now() - t0 < 20 && !file_has(wlog, "failed: cancelled"))
		eg_test_sleep_ms(100);
	EG_CHECK_MSG(file_has(wlog, "cancelling trial"),
		     "the compute rank never logged the cancel");
	EG_CHECK_MSG(eg_test_now() - t0 < 10, "trials stopped %.1f s after cancel",
		     eg_test_now() - t0);
	EG_CHECK_INT(count_state(id, "cancelled"), 6);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results r JOIN trials t ON "
			     "t.id = r.trial_id WHERE t.grid_id = %lld",
			     id),
		     0);
	eg_test_sleep_ms(500);
	EG_CHECK_MSG(alive(mpirun), "the workers exited after a cancel");
	/* And they still work: a new grid runs to the end. */
	st = eg_test_runf(&out, "bin/expgrid submit --wait %s",
		 noop_grid("aftercancel", 4, 50));
	EG_CHECK_MSG(st == 0, "submit --wait: %d\n%s", st, out);
	free(out);
	down();
}

/* A worker with the wrong token: the whole MPI job exits non-zero and
 * says why; the coordinator is unaffected. */
EG_TEST(wrong_token_refused)
{
	char *out = NULL;
	int st;

	up(1);
	st = eg_test_runf(&out,
		 "EXPGRID_TOKEN=this-is-not-the-token timeout 60 "
		 "bin/expgrid-worker");
	EG_CHECK_MSG(st != 0 && st != 124, "single process: %d\n%s", st, out);
	EG_CHECK_MSG(strstr(out, "refused the handshake") != NULL, "%s", out);
	free(out);
	st = eg_test_runf(&out,
		 "EXPGRID_TOKEN=this-is-not-the-token timeout 60 mpirun %s "
		 "--oversubscribe --bind-to none --mca btl self,vader "
		 "--mca btl_vader_single_copy_mechanism none -np 3 "
		 "bin/expgrid-worker",
		 geteuid() == 0 ? "--allow-run-as-root" : "");
	EG_CHECK_MSG(st != 0 && st != 124, "mpirun: %d\n%s", st, out);
	EG_CHECK_MSG(strstr(out, "refused the handshake") != NULL, "%s", out);
	free(out);
	EG_CHECK(alive(pid_of("coordinator.pid")));
	down();
}

/* `up` twice starts nothing the second time; the idle gateway sleeps. */
EG_TEST(up_twice_and_idle)
{
	pid_t coord, mpirun, gw;
	char *out = NULL;
	long t0, t1;
	int st;

	up(1);
	coord = pid_of("coordinator.pid");
	mpirun = pid_of("worker.pid");
	st = eg_test_runf(&out, "bin/expgrid up --workers 1");
	EG_CHECK_MSG(st == 0, "%s", out);
	EG_CHECK_MSG(strstr(out, "started") == NULL, "started again:\n%s", out);
	EG_CHECK_MSG(strstr(out, "PostgreSQL: already running") != NULL &&
			     strstr(out, "coordinator: already running") !=
				     NULL &&
			     strstr(out, "workers: already running") != NULL,
		     "%s", out);
	free(out);
	EG_CHECK_INT(pid_of("coordinator.pid"), coord);
	EG_CHECK_INT(pid_of("worker.pid"), mpirun);
	/* Idle: no trials anywhere.  Over 3 s the gateway may use at most
	 * 5 % of a core (a spinning MPI wait would use 100 %). */
	gw = pid_of("worker-rank0.pid");
	EG_CHECK(alive(gw));
	eg_test_sleep_ms(500);
	t0 = cpu_ticks(gw);
	eg_test_sleep_ms(3000);
	t1 = cpu_ticks(gw);
	EG_CHECK(t0 >= 0 && t1 >= 0);
	EG_CHECK_MSG((double)(t1 - t0) / sysconf(_SC_CLK_TCK) < 0.15,
		     "gateway used %ld ticks in 3 s", t1 - t0);
	down();
}

/* `down` leaves nothing running, and a second `down` is harmless. */
EG_TEST(down_stops_everything)
{
	pid_t pids[8];
	char path[PATH_MAX + 32];
	char *out = NULL;
	FILE *f;
	long pg = 0;
	int n = 0, st;

	up(2);
	pids[n++] = pid_of("coordinator.pid");
	pids[n++] = pid_of("worker.pid");
	pids[n++] = pid_of("worker-rank0.pid");
	pids[n++] = pid_of("worker-rank1.pid");
	pids[n++] = pid_of("worker-rank2.pid");
	snprintf(path, sizeof(path), "%s/pg/postmaster.pid", home);
	f = fopen(path, "r");
	EG_CHECK(f != NULL && fscanf(f, "%ld", &pg) == 1);
	fclose(f);
	pids[n++] = (pid_t)pg;
	for (int i = 0; i < n; i++)
		EG_CHECK_MSG(alive(pids[i]), "pid %d (#%d) not running",
			     (int)pids[i], i);
	down();
	for (int i = 0; i < n; i++)
		EG_CHECK_MSG(!alive(pids[i]), "pid %d (#%d) still running",
			     (int)pids[i], i);
	st = eg_test_runf(&out, "bin/expgrid down");
	EG_CHECK_MSG(st == 0 && strstr(out, "nothing was running"), "%s", out);
	free(out);
}

EG_TEST_MAIN({"grid_end_to_end", grid_end_to_end, 120},
	     {"kill_compute_rank", kill_compute_rank, 120},
	     {"kill_coordinator", kill_coordinator, 120},
	     {"postgres_restart", postgres_restart, 120},
	     {"cancel_mid_grid", cancel_mid_grid, 120},
	     {"wrong_token_refused", wrong_token_refused, 90},
	     {"up_twice_and_idle", up_twice_and_idle, 90},
	     {"down_stops_everything", down_stops_everything, 90})
