/*
 * itest_store.c - the results database against a real PostgreSQL server,
 * started by each test under its scratch directory through the same
 * embedded-cluster code `expgrid db start` uses, and stopped at exit (also
 * when a check fails: the server runs in its own session, out of reach of
 * the runner's process-group kill, so an atexit handler stops it).
 *
 * Covered: cluster start/idempotence/stale pid/stop; a home the postgres
 * user cannot enter; migrations from empty, re-run, an added one, an edited
 * one refused, a failing one rolled back; submit idempotence, concurrent
 * submitters, a bad grid writing nothing, NOTIFY on submit and cancel;
 * status and cancel; query trials/best/paradigms; metric ingest with
 * hostile names; a 100,000-trial grid; the database down.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "grid/grid.h"
#include "store/cluster.h"
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

/* Starts a cluster under <tmpdir>/<name> and points EXPGRID_HOME at it. */
static void start_cluster(const char *name)
{
	char home[PATH_MAX];
	eg_diag d = {{0}};
	int rc;

	snprintf(home, sizeof(home), "%s/%s", eg_test_tmpdir(), name);
	setenv("EXPGRID_HOME", home, 1);
	unsetenv("EXPGRID_DB");
	EG_CHECK_OK(eg_cluster_open(home, &cluster, &d));
	atexit(stop_cluster);
	rc = eg_cluster_start(cluster, &d);
	EG_CHECK_MSG(rc == EG_OK, "start: %s", eg_diag_msg(&d, rc));
}

static PGconn *connect_url(const char *url)
{
	PGconn *c = PQconnectdb(url);

	EG_CHECK_MSG(PQstatus(c) == CONNECTION_OK, "connect: %s",
		     PQerrorMessage(c));
	return c;
}

/* The single value of a query, as a long long. */
static long long sql_int(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long long v;

	EG_CHECK_MSG(PQresultStatus(r) == PGRES_TUPLES_OK &&
			     PQntuples(r) == 1,
		     "%s: %s", sql, PQresultErrorMessage(r));
	v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void sql_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);

	EG_CHECK_MSG(PQresultStatus(r) == PGRES_COMMAND_OK ||
			     PQresultStatus(r) == PGRES_TUPLES_OK,
		     "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

static void copy_file(const char *from, const char *to, const char *append)
{
	char buf[8192];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");

	EG_CHECK(in != NULL && out != NULL);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		EG_CHECK(fwrite(buf, 1, n, out) == n);
	if (append != NULL)
		fputs(append, out);
	fclose(in);
	EG_CHECK(fclose(out) == 0);
}

/* The migrations shipped in `dir` (NNNN_name.sql), copied into `to` when
 * it is not NULL; returns how many. */
static int shipped_migrations(const char *dir, const char *to)
{
	char from[PATH_MAX + 300], dst[PATH_MAX + 300];
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;

	EG_CHECK(dp != NULL);
	while ((e = readdir(dp)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len < 9 || strcmp(e->d_name + len - 4, ".sql") != 0 ||
		    e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		n++;
		if (to == NULL)
			continue;
		snprintf(from, sizeof(from), "%s/%s", dir, e->d_name);
		snprintf(dst, sizeof(dst), "%s/%s", to, e->d_name);
		copy_file(from, dst, NULL);
	}
	closedir(dp);
	return n;
}

EG_TEST(cluster_and_migrations)
{
	char mig[PATH_MAX], copy[PATH_MAX], from[PATH_MAX + 32], to[PATH_MAX + 32];
	eg_diag d = {{0}};
	eg_store *s = NULL;
	PGconn *c;
	struct stat st;
	int applied = -1, rc;
	bool was = false;

	chmod(eg_test_tmpdir(), 0755);
	start_cluster("home");
	EG_CHECK(eg_cluster_running(cluster));
	EG_CHECK(eg_cluster_initialized(cluster));
	/* A reachable, short home keeps everything inside it. */
	EG_CHECK(lstat(eg_test_path("home/pg"), &st) == 0 && S_ISDIR(st.st_mode));
	EG_CHECK(access(eg_test_path("home/log/postgres.log"), R_OK) == 0);
	/* Idempotent start: the same server keeps running. */
	c = connect_url(eg_cluster_url(cluster));
	EG_CHECK_INT(sql_int(c, "SELECT setting::int FROM pg_settings "
				"WHERE name = 'port'"),
		     5432);
	EG_CHECK_INT(sql_int(c, "SELECT (setting = 'on')::int FROM pg_settings "
				"WHERE name = 'fsync'"),
		     1);
	EG_CHECK_INT(sql_int(c, "SELECT (setting = '')::int FROM pg_settings "
				"WHERE name = 'listen_addresses'"),
		     1);
	EG_CHECK_OK(eg_cluster_start(cluster, &d));
	EG_CHECK(PQstatus(c) == CONNECTION_OK);
	EG_CHECK_INT(sql_int(c, "SELECT 1"), 1); /* same session survives */
	PQfinish(c);

	/* Migrations from empty, then a re-run that applies nothing. */
	EG_CHECK_OK(eg_store_migrations_dir(mig, sizeof(mig), &d));
	EG_CHECK_OK(eg_store_connect(eg_cluster_url(cluster), &s, &d));
	rc = eg_store_migrate(s, mig, &applied, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	EG_CHECK(applied >= 1);
	EG_CHECK_OK(eg_store_migrate(s, mig, &applied, &d));
	EG_CHECK_INT(applied, 0);
	c = connect_url(eg_cluster_url(cluster));
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM information_schema.tables "
				"WHERE table_schema = 'public' AND table_name IN "
				"('grids','trials','results','metrics',"
				"'layer_outputs','layer_similarity','agents',"
				"'boards','trial_summary','paradigm_comparison',"
				"'schema_migrations')"),
		     11);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM schema_migrations "
				"WHERE version = 1 AND length(checksum) = 64"),
		     1);

	/* A copy of the migrations plus a new one: only the new one runs.
	 * (Test migrations are numbered 0900+, after any shipped one.) */
	snprintf(copy, sizeof(copy), "%s/mig", eg_test_tmpdir());
	EG_CHECK(mkdir(copy, 0755) == 0);
	EG_CHECK(shipped_migrations(mig, copy) >= 1);
	snprintf(from, sizeof(from), "%s/0001_init.sql", mig);
	snprintf(to, sizeof(to), "%s/0001_init.sql", copy);
	eg_test_write_file("mig/0900_extra.sql",
			   "CREATE TABLE extra (x text);\n");
	EG_CHECK_OK(eg_store_migrate(s, copy, &applied, &d));
	EG_CHECK_INT(applied, 1);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM extra"), 0);

	/* A failing migration rolls back entirely and says why. */
	eg_test_write_file("mig/0901_bad.sql",
			   "CREATE TABLE bad (x int);\nSELECT no_such_fn();\n");
	rc = eg_store_migrate(s, copy, &applied, &d);
	EG_CHECK_INT(rc, EG_EDB);
	EG_CHECK_MSG(strstr(d.msg, "0901_bad.sql") != NULL &&
			     strstr(d.msg, "no_such_fn") != NULL,
		     "%s", d.msg);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM information_schema.tables "
				"WHERE table_name = 'bad'"),
		     0);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM schema_migrations "
				"WHERE version = 901"),
		     0);
	unlink(eg_test_path("mig/0901_bad.sql"));

	/* An applied migration that was edited is refused. */
	copy_file(from, to, "\n-- an innocent-looking edit\n");
	rc = eg_store_migrate(s, copy, &applied, &d);
	EG_CHECK_INT(rc, EG_ECORRUPT);
	EG_CHECK_MSG(strstr(d.msg, "0001_init.sql") != NULL &&
			     strstr(d.msg, "edited") != NULL,
		     "%s", d.msg);
	/* And the original directory no longer knows 0900: refused too. */
	rc = eg_store_migrate(s, mig, &applied, &d);
	EG_CHECK_INT(rc, EG_ECORRUPT);
	EG_CHECK_MSG(strstr(d.msg, "0900_extra.sql") != NULL, "%s", d.msg);
	eg_store_close(s);
	PQfinish(c);

	/* Stale pid file: kill the postmaster outright; start recovers. */
	{
		FILE *f;
		char path[PATH_MAX];
		long old = 0;

		snprintf(path, sizeof(path), "%s/postmaster.pid",
			 eg_cluster_data_dir(cluster));
		f = fopen(path, "r");
		EG_CHECK(f != NULL && fscanf(f, "%ld", &old) == 1);
		fclose(f);
		EG_CHECK(kill((pid_t)old, SIGKILL) == 0);
		for (int i = 0; i < 100 && kill((pid_t)old, 0) == 0; i++)
			usleep(50000);
		EG_CHECK(!eg_cluster_running(cluster));
		EG_CHECK(access(path, F_OK) == 0); /* left behind */
		/* Its backends notice the postmaster's death and exit. */
		usleep(1500000);
		rc = eg_cluster_start(cluster, &d);
		EG_CHECK_MSG(rc == EG_OK, "restart: %s", eg_diag_msg(&d, rc));
		EG_CHECK(eg_cluster_running(cluster));
	}

	EG_CHECK_OK(eg_cluster_stop(cluster, &was, &d));
	EG_CHECK(was);
	EG_CHECK(!eg_cluster_running(cluster));
	EG_CHECK_OK(eg_cluster_stop(cluster, &was, &d));
	EG_CHECK(!was);

	/* A pid file naming a live process that is not our postmaster (a
	 * recycled pid: here, this test) does not block the start either. */
	{
		char path[PATH_MAX], text[64];
		FILE *f;

		snprintf(path, sizeof(path), "%s/postmaster.pid",
			 eg_cluster_data_dir(cluster));
		snprintf(text, sizeof(text), "%d\n", (int)getpid());
		f = fopen(path, "w");
		EG_CHECK(f != NULL && fputs(text, f) >= 0 && fclose(f) == 0);
		rc = eg_cluster_start(cluster, &d);
		EG_CHECK_MSG(rc == EG_OK, "start over a recycled pid: %s",
			     eg_diag_msg(&d, rc));
		EG_CHECK(eg_cluster_running(cluster));
		EG_CHECK_OK(eg_cluster_stop(cluster, &was, &d));
		EG_CHECK(was);
	}
}

EG_TEST(untraversable_home)
{
	char cmd[PATH_MAX * 2], home[PATH_MAX], target[PATH_MAX];
	char *out = NULL;
	PGconn *c;
	ssize_t n;
	int rc;

	if (geteuid() != 0)
		EG_SKIP("needs root: the case is postgres not entering root's "
			"0700 directory");
	/* Like a checkout under /root: postgres cannot enter `locked`. */
	EG_CHECK(mkdir(eg_test_path("locked"), 0700) == 0);
	EG_CHECK(chmod(eg_test_path("locked"), 0700) == 0);
	snprintf(home, sizeof(home), "%s/locked/home", eg_test_tmpdir());
	setenv("EXPGRID_HOME", home, 1);
	unsetenv("EXPGRID_DB");
	/* The atexit stop covers a failure after the start. */
	EG_CHECK_OK(eg_cluster_open(home, &cluster, NULL));
	atexit(stop_cluster);
	rc = eg_test_run("bin/expgrid db start", &out);
	EG_CHECK_MSG(rc == 0, "db start: %d\n%s", rc, out);
	free(out);
	/* Idempotent, and the symlinks lead the second start to the cluster. */
	rc = eg_test_run("bin/expgrid db start", &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "0 migrations applied") != NULL,
		     "db start again: %d\n%s", rc, out);
	free(out);
	n = readlink(eg_test_path("locked/home/pg"), target, sizeof(target) - 1);
	EG_CHECK(n > 0);
	target[n] = '\0';
	EG_CHECK_MSG(strncmp(target, "/var/tmp/expgrid-", 17) == 0, "%s",
		     target);
	rc = eg_test_run("bin/expgrid db url", &out);
	EG_CHECK_INT(rc, 0);
	out[strcspn(out, "\n")] = '\0';
	c = connect_url(out);
	{
		char mig[PATH_MAX];

		EG_CHECK_OK(eg_store_migrations_dir(mig, sizeof(mig), NULL));
		EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM schema_migrations"),
			     shipped_migrations(mig, NULL));
	}
	PQfinish(c);
	/* psql accepts the URI too. */
	snprintf(cmd, sizeof(cmd),
		 "psql \"$(bin/expgrid db url)\" -tAc 'SELECT 40 + 2'");
	free(out);
	rc = eg_test_run(cmd, &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "42") != NULL, "%s", out);
	free(out);
	/* `db psql` with a password in EXPGRID_DB: it connects, and the
	 * password is on no process's command line while psql runs. */
	rc = eg_test_run("bin/expgrid db url", &out);
	EG_CHECK_INT(rc, 0);
	out[strcspn(out, "\n")] = '\0';
	{
		char db[PATH_MAX + 64];

		snprintf(db, sizeof(db), "%s%spassword=hunter2-Secret", out,
			 strchr(out, '?') != NULL ? "&" : "?");
		setenv("EXPGRID_DB", db, 1);
	}
	free(out);
	rc = eg_test_run("bin/expgrid db psql -tAc 'SELECT 6 * 7, pg_sleep(1)' & "
			 "sleep 0.5; grep -l 'hunter2-Secre[t]' /proc/[0-9]*/cmdline; "
			 "wait", &out);
	unsetenv("EXPGRID_DB");
	EG_CHECK_MSG(rc == 0 && strstr(out, "42|") != NULL &&
			     strstr(out, "cmdline") == NULL,
		     "%s", out);
	free(out);
	rc = eg_test_run("bin/expgrid down", &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "stopped") != NULL, "%s", out);
	free(out);
	EG_CHECK(!eg_cluster_running(cluster));
	/* Leave nothing behind in /var/tmp. */
	target[strlen(target) - strlen("/pg")] = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", target);
	EG_CHECK_INT(eg_test_run(cmd, NULL), 0);
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

static const char *const hostile =
	"it's \"quoted\"; DROP TABLE grids; -- \\ $1 %s";

/* Waits up to 5 s for a notification on c; returns its payload or NULL. */
static char *wait_notify(PGconn *c, const char *channel)
{
	for (int i = 0; i < 50; i++) {
		PGnotify *n;

		PQconsumeInput(c);
		while ((n = PQnotifies(c)) != NULL) {
			char *p = strcmp(n->relname, channel) == 0 ?
					  strdup(n->extra) :
					  NULL;

			PQfreemem(n);
			if (p != NULL)
				return p;
		}
		usleep(100000);
	}
	return NULL;
}

EG_TEST(submit_status_cancel_query)
{
	char *out = NULL, *payload;
	char sql[512], grid1[32], grid2[32];
	PGconn *c, *listener;
	PGresult *r;
	const char *p[1];
	int rc;

	start_cluster("home");
	c = connect_url(eg_cluster_url(cluster));
	listener = connect_url(eg_cluster_url(cluster));
	sql_ok(listener, "LISTEN expgrid_grids");
	sql_ok(listener, "LISTEN expgrid_cancel");

	/* A name full of SQL and YAML metacharacters (YAML-escaped). */
	eg_test_write_file("g1.yaml",
			   "name: \"it's \\\"quoted\\\"; DROP TABLE grids; -- "
			   "\\\\ $1 %s\"\n"
			   "trial: {kind: noop}\n"
			   "sweep:\n  seed: [0, 1, 2]\n  noop.ms: [1, 2]\n");
	rc = cli(&out, "submit %s", eg_test_path("g1.yaml"));
	EG_CHECK_MSG(rc == 0, "submit: %d %s", rc, out);
	snprintf(grid1, sizeof(grid1), "%.*s", (int)strcspn(out, "\n"), out);
	EG_CHECK(atoll(grid1) > 0);
	free(out);
	payload = wait_notify(listener, "expgrid_grids");
	EG_CHECK(payload != NULL);
	EG_CHECK_STR(payload, grid1);
	free(payload);

	/* The same grid again: the same id, nothing added. */
	rc = cli(&out, "submit %s", eg_test_path("g1.yaml"));
	EG_CHECK_INT(rc, 0);
	EG_CHECK(strncmp(out, grid1, strlen(grid1)) == 0 &&
		 out[strlen(grid1)] == '\n');
	free(out);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM grids"), 1);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM trials"), 6);
	/* The name is stored and read back intact. */
	r = PQexec(c, "SELECT name FROM grids");
	EG_CHECK_STR(PQgetvalue(r, 0, 0), hostile);
	PQclear(r);
	EG_CHECK_INT(sql_int(c, "SELECT count(DISTINCT key) FROM trials"), 6);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM trials WHERE kind = "
				"'noop' AND state = 'pending' AND "
				"params->>'seed' IS NOT NULL"),
		     6);

	/* Two processes submitting the same new grid at once. */
	eg_test_write_file("g2.yaml",
			   "name: race\ntrial: {kind: noop}\n"
			   "sweep:\n  seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
			   "  noop.ms: [0, 1, 2, 3, 4]\n");
	{
		char cmd[1024];
		const char *t = eg_test_tmpdir();

		snprintf(cmd, sizeof(cmd),
			 "bin/expgrid submit %s/g2.yaml > %s/o1 & "
			 "bin/expgrid submit %s/g2.yaml > %s/o2 & wait",
			 t, t, t, t);
		EG_CHECK_INT(eg_test_run(cmd, NULL), 0);
	}
	{
		char a[64] = "", b[64] = "";
		FILE *f1 = fopen(eg_test_path("o1"), "r");
		FILE *f2 = fopen(eg_test_path("o2"), "r");

		EG_CHECK(f1 != NULL && f2 != NULL);
		EG_CHECK(fgets(a, sizeof(a), f1) != NULL);
		EG_CHECK(fgets(b, sizeof(b), f2) != NULL);
		fclose(f1);
		fclose(f2);
		EG_CHECK_STR(a, b);
		snprintf(grid2, sizeof(grid2), "%.*s", (int)strcspn(a, "\n"), a);
	}
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM grids WHERE name = 'race'"),
		     1);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM trials WHERE grid_id = %s", grid2);
	EG_CHECK_INT(sql_int(c, sql), 50);
	payload = wait_notify(listener, "expgrid_grids");
	EG_CHECK(payload != NULL);
	EG_CHECK_STR(payload, grid2);
	free(payload);

	/* A bad grid exits 2 and writes nothing. */
	eg_test_write_file("bad.yaml", "name: bad\ntrial: {kind: noop, "
				       "no_such_param: 1}\n");
	rc = cli(&out, "submit %s", eg_test_path("bad.yaml"));
	EG_CHECK_MSG(rc == 2 && strstr(out, "expgrid: ") != NULL, "%d %s", rc,
		     out);
	free(out);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM grids"), 2);
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM trials"), 56);

	/* status, by id and by the hostile name. */
	rc = cli(&out, "status %s --json", grid1);
	EG_CHECK_INT(rc, 0);
	EG_CHECK_MSG(strstr(out, "\"total\":6,\"pending\":6,\"leased\":0,"
				 "\"running\":0,\"done\":0,\"failed\":0,"
				 "\"cancelled\":0}") != NULL,
		     "%s", out);
	free(out);
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd),
			 "bin/expgrid status 'it'\\''s \"quoted\"; DROP TABLE "
			 "grids; -- \\ $1 %%s' --json");
		rc = eg_test_run(cmd, &out);
		EG_CHECK_MSG(rc == 0 && strstr(out, "\"total\":6") != NULL,
			     "%s", out);
		free(out);
	}
	rc = cli(&out, "status no-such-grid");
	EG_CHECK_MSG(rc == 2 && strstr(out, "no grid") != NULL, "%s", out);
	free(out);

	/* Some results for grid 2: trials 0..9 done, test_acc = idx / 100. */
	snprintf(sql, sizeof(sql),
		 "WITH d AS (UPDATE trials SET state = 'done', attempts = 1 "
		 "WHERE grid_id = %s AND idx < 10 RETURNING id, idx) "
		 "INSERT INTO results (trial_id, attempt, metrics, wall_s) "
		 "SELECT id, 1, jsonb_build_object('test_acc', idx / 100.0, "
		 "'test_loss', 1 - idx / 100.0), 0.5 FROM d",
		 grid2);
	sql_ok(c, sql);
	snprintf(sql, sizeof(sql),
		 "UPDATE trials SET state = 'running' WHERE grid_id = %s "
		 "AND idx BETWEEN 10 AND 11", grid2);
	sql_ok(c, sql);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO layer_similarity (trial_id, layer, name, pair, "
		 "s_tol, s_bit, max_abs, rel_l2) SELECT id, l, 'dense' || l, "
		 "'software-design', 0.9 + l / 100.0, 0.5, 0.01, 0.001 FROM "
		 "trials, generate_series(0, 1) l WHERE grid_id = %s AND idx < 4",
		 grid2);
	sql_ok(c, sql);

	rc = cli(&out, "query best %s --json --limit 3", grid2);
	EG_CHECK_MSG(rc == 0, "%s", out);
	EG_CHECK_MSG(strncmp(out, "{\"id\":", 6) == 0 &&
			     strstr(out, "\"idx\":9,") != NULL &&
			     strstr(out, "\"test_acc\":0.09") != NULL,
		     "%s", out);
	EG_CHECK(strstr(out, "\"idx\":7,") != NULL &&
		 strstr(out, "\"idx\":6,") == NULL);
	free(out);
	rc = cli(&out, "query best %s --json --metric test_loss --limit 1",
		 grid2);
	EG_CHECK_MSG(rc == 0 && strstr(out, "\"idx\":9,") != NULL, "%s", out);
	free(out);
	rc = cli(&out, "query trials %s --csv", grid2);
	EG_CHECK_MSG(rc == 0 && strncmp(out, "id,idx,state,attempts,noop.ms,"
					      "seed,test_acc,test_loss\r\n",
					 55) == 0,
		     "%s", out);
	free(out);
	rc = cli(&out, "query trials %s", grid2);
	EG_CHECK_MSG(rc == 0 && strstr(out, "(50 rows)") != NULL, "%s", out);
	free(out);
	/* Tables show four significant digits and --columns picks and
	 * orders columns; CSV keeps every digit. */
	snprintf(sql, sizeof(sql),
		 "UPDATE results SET metrics = metrics || "
		 "'{\"test_acc\": 0.123456789}' WHERE trial_id = (SELECT id "
		 "FROM trials WHERE grid_id = %s AND idx = 9)", grid2);
	sql_ok(c, sql);
	rc = cli(&out, "query best %s --limit 1 --columns test_acc,idx", grid2);
	EG_CHECK_MSG(rc == 0 && strncmp(out, "test_acc  idx\n", 14) == 0 &&
			     strstr(out, "  0.1235    9\n") != NULL,
		     "%s", out);
	free(out);
	rc = cli(&out, "query best %s --limit 1 --csv --columns idx,test_acc",
		 grid2);
	EG_CHECK_MSG(rc == 0 && strstr(out, "idx,test_acc\r\n9,0.123456789\r\n") != NULL,
		     "%s", out);
	free(out);
	/* A string value that strtod would take (hex, a bare fraction) is
	 * still a string in JSON, never an invalid bare token. */
	snprintf(sql, sizeof(sql),
		 "UPDATE results SET metrics = metrics || "
		 "'{\"note\": \"0x1A\", \"frac\": \".5\"}' WHERE trial_id = "
		 "(SELECT id FROM trials WHERE grid_id = %s AND idx = 9)", grid2);
	sql_ok(c, sql);
	rc = cli(&out, "query best %s --json --limit 1", grid2);
	EG_CHECK_MSG(rc == 0 && strstr(out, "\"note\":\"0x1A\"") != NULL &&
			     strstr(out, "\"frac\":\".5\"") != NULL &&
			     strstr(out, "\"test_acc\":0.123456789") != NULL,
		     "%s", out);
	free(out);
	rc = cli(&out, "query trials %s --columns idx,nope", grid2);
	EG_CHECK_MSG(rc == 2 && strstr(out, "no column 'nope'") != NULL, "%s", out);
	free(out);
	rc = cli(&out, "query paradigms %s --json", grid2);
	EG_CHECK_MSG(rc == 0 &&
			     strstr(out, "{\"layer\":0,\"name\":\"dense0\","
					 "\"pair\":\"software-design\","
					 "\"trials\":4,\"s_tol_mean\":0.9,") !=
				     NULL,
		     "%s", out);
	free(out);

	/* cancel: unfinished trials only, with a NOTIFY. */
	rc = cli(&out, "cancel %s", grid2);
	EG_CHECK_MSG(rc == 0 && strstr(out, "40 trials cancelled") != NULL,
		     "%s", out);
	free(out);
	payload = wait_notify(listener, "expgrid_cancel");
	EG_CHECK(payload != NULL);
	EG_CHECK_STR(payload, grid2);
	free(payload);
	rc = cli(&out, "status %s --json", grid2);
	EG_CHECK_MSG(strstr(out, "\"total\":50,\"pending\":0,\"leased\":0,"
				 "\"running\":0,\"done\":10,\"failed\":0,"
				 "\"cancelled\":40}") != NULL,
		     "%s", out);
	free(out);
	/* Nothing left to wait for: --watch draws the full bar and returns. */
	rc = cli(&out, "status %s --watch --interval 0.1", grid2);
	EG_CHECK_MSG(rc == 0 && strstr(out, "100.0% 50/50") != NULL, "%s", out);
	free(out);
	/* submit --wait on a finished grid: the same id at once, and exit 1
	 * because the grid was cancelled (not every trial succeeded). */
	rc = cli(&out, "submit %s --wait", eg_test_path("g2.yaml"));
	EG_CHECK_MSG(rc == 1 && strncmp(out, grid2, strlen(grid2)) == 0 &&
			     strstr(out, "was cancelled") != NULL,
		     "%s", out);
	free(out);
	/* --set makes it another grid (another canonical hash). */
	rc = cli(&out, "submit %s --set noop.ms=7", eg_test_path("g2.yaml"));
	EG_CHECK_MSG(rc == 0 && atoll(out) > atoll(grid2) &&
			     strstr(out, "10 trials submitted") != NULL,
		     "%s", out);
	free(out);
	p[0] = grid2;
	r = PQexecParams(c, "SELECT state FROM grids WHERE id = $1", 1, NULL, p,
			 NULL, NULL, 0);
	EG_CHECK_STR(PQgetvalue(r, 0, 0), "cancelled");
	PQclear(r);

	/* Metric ingest keeps hostile names and special values intact. */
	{
		eg_store *s = NULL;
		eg_diag d = {{0}};
		long long tid = sql_int(c, "SELECT min(id) FROM trials");
		eg_store_metric m[3] = {
			{tid, 1, 1, -1, "tab\there\nnew\\line 'q' \"dq\"", 0.1},
			{tid, 1, 2, -1, hostile, -1e300},
			{tid, 2, -1, 3, "nan", NAN}};

		EG_CHECK_OK(eg_store_connect(eg_cluster_url(cluster), &s, &d));
		rc = eg_store_metrics_write(s, m, 3, &d);
		EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
		eg_store_close(s);
		r = PQexec(c, "SELECT name, value::text, epoch, round FROM "
			      "metrics ORDER BY attempt, epoch");
		EG_CHECK_INT(PQntuples(r), 3);
		EG_CHECK_STR(PQgetvalue(r, 0, 0), m[0].name);
		EG_CHECK_STR(PQgetvalue(r, 0, 1), "0.1");
		EG_CHECK_STR(PQgetvalue(r, 1, 0), hostile);
		EG_CHECK_STR(PQgetvalue(r, 1, 1), "-1e+300");
		EG_CHECK_STR(PQgetvalue(r, 2, 1), "NaN");
		EG_CHECK(PQgetisnull(r, 2, 2) && !PQgetisnull(r, 2, 3));
		PQclear(r);
	}
	PQfinish(listener);
	PQfinish(c);
}

EG_TEST(submit_100k_trials)
{
	eg_buf y = EG_BUF_INIT;
	eg_diag d = {{0}};
	eg_grid *g = NULL;
	eg_store *s = NULL;
	int64_t id = 0, id2 = 0, n = 0;
	bool created = false;
	double t0, t1;
	PGconn *c;
	int rc;

	start_cluster("home");
	eg_buf_puts(&y, "name: big\ntrial: {kind: noop}\nsweep:\n  seed: [");
	for (int i = 0; i < 1000; i++)
		eg_buf_printf(&y, "%s%d", i ? ", " : "", i);
	eg_buf_puts(&y, "]\n  noop.ms: [");
	for (int i = 0; i < 100; i++)
		eg_buf_printf(&y, "%s%d", i ? ", " : "", i);
	eg_buf_puts(&y, "]\n");
	rc = eg_grid_parse(y.data, y.len, "big.yaml", &g, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	EG_CHECK_INT(eg_grid_count(g), 100000);
	EG_CHECK_OK(eg_store_connect(eg_cluster_url(cluster), &s, &d));
	EG_CHECK_OK(eg_store_migrate(s, NULL, NULL, &d));
	t0 = eg_test_now();
	rc = eg_store_submit(s, g, &id, &created, &n, &d);
	t1 = eg_test_now();
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	EG_CHECK(created);
	EG_CHECK_INT(n, 100000);
	fprintf(stderr, "100,000-trial submit: %.2f s\n", t1 - t0);
	c = connect_url(eg_cluster_url(cluster));
	EG_CHECK_INT(sql_int(c, "SELECT count(*) FROM trials"), 100000);
	EG_CHECK_INT(sql_int(c, "SELECT count(DISTINCT idx) FROM trials"),
		     100000);
	EG_CHECK_INT(sql_int(c, "SELECT trial_count FROM grids"), 100000);
	PQfinish(c);
	rc = eg_store_submit(s, g, &id2, &created, &n, &d);
	EG_CHECK_OK(rc);
	EG_CHECK(!created);
	EG_CHECK_INT(id2, id);
	EG_CHECK_INT(n, 100000);
	eg_store_close(s);
	eg_grid_free(g);
	eg_buf_free(&y);
}

EG_TEST(database_down)
{
	char env[PATH_MAX];
	char *out = NULL;
	int rc;

	/* A socket directory with no server behind it. */
	EG_CHECK(mkdir(eg_test_path("nosock"), 0755) == 0);
	snprintf(env, sizeof(env),
		 "host=%s/nosock port=5432 user=postgres dbname=expgrid "
		 "connect_timeout=3",
		 eg_test_tmpdir());
	setenv("EXPGRID_DB", env, 1);
	rc = cli(&out, "status");
	EG_CHECK_MSG(rc == 1, "exit %d: %s", rc, out);
	EG_CHECK_MSG(strncmp(out, "expgrid: status: cannot connect to the "
				  "database",
			     47) == 0 &&
			     strstr(out, "nosock") != NULL,
		     "%s", out);
	free(out);
	eg_test_write_file("g.yaml", "name: g\ntrial: {kind: noop}\n");
	rc = cli(&out, "submit %s", eg_test_path("g.yaml"));
	EG_CHECK_MSG(rc == 1 && strstr(out, "cannot connect") != NULL, "%s",
		     out);
	free(out);
	rc = cli(&out, "cancel 1");
	EG_CHECK_INT(rc, 1);
	free(out);
	/* The embedded cluster, not started, says how to start it. */
	unsetenv("EXPGRID_DB");
	setenv("EXPGRID_HOME", eg_test_path("home"), 1);
	rc = cli(&out, "query trials 1");
	EG_CHECK_MSG(rc == 1 && strstr(out, "expgrid db start") != NULL, "%s",
		     out);
	free(out);
}

EG_TEST_MAIN({"cluster_and_migrations", cluster_and_migrations, 90},
	     {"untraversable_home", untraversable_home, 90},
	     {"submit_status_cancel_query", submit_status_cancel_query, 120},
	     {"submit_100k_trials", submit_100k_trials, 120},
	     {"database_down", database_down, 30})
