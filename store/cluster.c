/*
 * cluster.c - the embedded PostgreSQL cluster (see cluster.h for the layout
 * and the root / postgres-user rules).
 *
 * Invariants: every path kept in an eg_cluster is absolute; data_dir and
 * run_dir are the real directories (after following the pg/ and run/
 * symlinks), because the postgres user may not be able to follow a path
 * through $EXPGRID_HOME.  Only this file starts or stops the server; it
 * never runs a shell.  The server runs in its own session (double fork, so
 * it is reparented and reaped by init, and a test runner's process-group
 * kill does not reach it), which is why callers must stop it explicitly.
 */
#include "store/cluster.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/hash.h"

#define PG_PORT "5432"
#define PG_USER "postgres"
#define PG_DB "expgrid"
#define START_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 60000
/* sun_path is 108 bytes; the socket is run_dir + "/.s.PGSQL.5432.lock". */
#define MAX_RUN_DIR 88

struct eg_cluster {
	char home[PATH_MAX];
	char data_dir[PATH_MAX];
	char run_dir[PATH_MAX];
	char log_dir[PATH_MAX];
	char log_path[PATH_MAX];
	char outside[PATH_MAX]; /* "" or the /var/tmp/expgrid-<hash> base */
	char url[PATH_MAX * 3 + 128];
	char bindir[PATH_MAX];
	bool as_postgres; /* we are root: run initdb and the server as postgres */
	uid_t pg_uid;
	gid_t pg_gid;
};

/* out = a + b; a too-long result is cut, which only makes a later open
 * fail with ENOENT (paths here are under PATH_MAX in practice). */
static void pjoin(char *out, size_t n, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la >= n)
		la = n - 1;
	if (lb >= n - la)
		lb = n - la - 1;
	memmove(out, a, la);
	memcpy(out + la, b, lb);
	out[la + lb] = '\0';
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return EG_EINVAL;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return eg_err_from_errno(errno);
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return eg_err_from_errno(errno);
	return EG_OK;
}

/* Drops to the postgres user in a forked child; exits on failure. */
static void child_become_postgres(const eg_cluster *c)
{
	if (!c->as_postgres)
		return;
	if (initgroups(PG_USER, c->pg_gid) != 0 || setgid(c->pg_gid) != 0 ||
	    setuid(c->pg_uid) != 0)
		_exit(126);
}

/* Whether the postgres user can search every directory down to `path`. */
static bool postgres_can_reach(const eg_cluster *c, const char *path)
{
	pid_t pid;
	int status;

	if (!c->as_postgres)
		return true;
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		child_become_postgres(c);
		_exit(access(path, X_OK) == 0 ? 0 : 1);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int eg_cluster_bindir(char *out, size_t outlen, eg_diag *d)
{
	const char *env = getenv("EXPGRID_PG_BINDIR");
	glob_t gl;
	int best = -1, best_ver = -1;
	char probe[PATH_MAX];

	if (env != NULL && env[0] != '\0') {
		snprintf(out, outlen, "%s", env);
		return EG_OK;
	}
	/* Debian keeps the server binaries off PATH, one directory per major
	 * version; take the newest that has a postgres binary. */
	if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &gl) == 0) {
		for (size_t i = 0; i < gl.gl_pathc; i++) {
			int ver = atoi(gl.gl_pathv[i] + strlen("/usr/lib/postgresql/"));

			if (ver > best_ver) {
				best_ver = ver;
				best = (int)i;
			}
		}
		if (best >= 0) {
			snprintf(out, outlen, "%s", gl.gl_pathv[best]);
			*strrchr(out, '/') = '\0';
		}
		globfree(&gl);
		if (best >= 0)
			return EG_OK;
	}
	/* Other layouts (a source build, PGDG RPMs) put them beside pg_ctl. */
	static const char *const dirs[] = {"/usr/local/pgsql/bin",
					   "/usr/pgsql/bin", "/usr/bin",
					   "/usr/local/bin"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		pjoin(probe, sizeof(probe), dirs[i], "/initdb");
		if (access(probe, X_OK) == 0) {
			snprintf(out, outlen, "%s", dirs[i]);
			return EG_OK;
		}
	}
	return eg_diag_set(d, EG_EMISSING_DEP,
			   "PostgreSQL server binaries not found (install the "
			   "postgresql package or set EXPGRID_PG_BINDIR)");
}

/* Percent-encodes a path for a URI query value. */
static void uri_encode(eg_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~' || ch == '/') {
			eg_buf_putc(b, (char)ch);
		} else {
			eg_buf_putc(b, '%');
			eg_buf_putc(b, hex[ch >> 4]);
			eg_buf_putc(b, hex[ch & 15]);
		}
	}
}

/* Follows home/<name> if it is a symlink (the outside layout). */
static void resolve_link(const char *home, const char *name, char *out,
			 size_t outlen)
{
	char link[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "%s/%s", home, name);
	n = readlink(link, out, outlen - 1);
	if (n > 0)
		out[n] = '\0';
	else
		snprintf(out, outlen, "%s", link);
}

int eg_cluster_open(const char *home, eg_cluster **out, eg_diag *d)
{
	eg_cluster *c;
	char link[PATH_MAX];
	struct stat st;
	eg_buf url = EG_BUF_INIT;
	int rc;

	*out = NULL;
	if (home == NULL || home[0] == '\0')
		home = getenv("EXPGRID_HOME");
	if (home == NULL || home[0] == '\0')
		home = "./var";
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	rc = mkdir_p(home, 0755);
	if (rc != EG_OK) {
		eg_diag_set(d, rc, "cannot create EXPGRID_HOME %s: %s", home,
			    strerror(errno));
		goto fail;
	}
	if (realpath(home, c->home) == NULL) {
		rc = eg_diag_set(d, eg_err_from_errno(errno), "%s: %s", home,
				 strerror(errno));
		goto fail;
	}
	rc = eg_cluster_bindir(c->bindir, sizeof(c->bindir), d);
	if (rc != EG_OK)
		goto fail;
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(PG_USER);

		if (pw == NULL) {
			rc = eg_diag_set(d, EG_EMISSING_DEP,
					 "running as root, but there is no "
					 "'%s' system user to run PostgreSQL as "
					 "(install the postgresql package)",
					 PG_USER);
			goto fail;
		}
		c->as_postgres = true;
		c->pg_uid = pw->pw_uid;
		c->pg_gid = pw->pw_gid;
	}
	pjoin(c->log_dir, sizeof(c->log_dir), c->home, "/log");
	pjoin(c->log_path, sizeof(c->log_path), c->log_dir, "/postgres.log");

	pjoin(link, sizeof(link), c->home, "/pg");
	if (lstat(link, &st) == 0) {
		/* Already laid out: the symlinks (if any) are the record. */
		resolve_link(c->home, "pg", c->data_dir, sizeof(c->data_dir));
		resolve_link(c->home, "run", c->run_dir, sizeof(c->run_dir));
		if (S_ISLNK(st.st_mode)) {
			snprintf(c->outside, sizeof(c->outside), "%s",
				 c->data_dir);
			*strrchr(c->outside, '/') = '\0';
		}
	} else {
		pjoin(c->data_dir, sizeof(c->data_dir), c->home, "/pg");
		pjoin(c->run_dir, sizeof(c->run_dir), c->home, "/run");
		if (strlen(c->run_dir) > MAX_RUN_DIR ||
		    !postgres_can_reach(c, c->home)) {
			char hex[65];

			eg_hash_sha256_hex(c->home, strlen(c->home), hex);
			hex[16] = '\0';
			snprintf(c->outside, sizeof(c->outside),
				 "/var/tmp/expgrid-%s", hex);
			pjoin(c->data_dir, sizeof(c->data_dir), c->outside, "/pg");
			pjoin(c->run_dir, sizeof(c->run_dir), c->outside, "/run");
		}
	}

	eg_buf_puts(&url, "postgresql:///" PG_DB "?host=");
	uri_encode(&url, c->run_dir);
	eg_buf_puts(&url, "&port=" PG_PORT "&user=" PG_USER);
	if (eg_buf_failed(&url) || url.len >= sizeof(c->url)) {
		rc = eg_diag_set(d, EG_ENOMEM, "socket path too long");
		goto fail;
	}
	memcpy(c->url, url.data, url.len + 1);
	eg_buf_free(&url);
	*out = c;
	return EG_OK;
fail:
	eg_buf_free(&url);
	free(c);
	return rc;
}

void eg_cluster_free(eg_cluster *c)
{
	free(c);
}

const char *eg_cluster_url(const eg_cluster *c) { return c->url; }
const char *eg_cluster_home(const eg_cluster *c) { return c->home; }
const char *eg_cluster_data_dir(const eg_cluster *c) { return c->data_dir; }
const char *eg_cluster_log_path(const eg_cluster *c) { return c->log_path; }

bool eg_cluster_initialized(const eg_cluster *c)
{
	char path[PATH_MAX];

	pjoin(path, sizeof(path), c->data_dir, "/PG_VERSION");
	return access(path, F_OK) == 0;
}

bool eg_cluster_running(const eg_cluster *c)
{
	return PQping(c->url) == PQPING_OK;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Whether `pid` is a live postgres process (a reused pid or a zombie is
 * not: that is what makes a leftover postmaster.pid stale).  check_comm is
 * false for the pid we just forked, which may not have exec'd yet. */
static bool process_alive(pid_t pid, bool check_comm)
{
	char path[64], comm[64] = "", stat[256] = "";
	FILE *f;
	char *p;

	if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return true; /* no /proc: trust kill() */
	if (fgets(comm, sizeof(comm), f) == NULL)
		comm[0] = '\0';
	fclose(f);
	if (check_comm && strncmp(comm, "postgres", 8) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f != NULL) {
		if (fgets(stat, sizeof(stat), f) == NULL)
			stat[0] = '\0';
		fclose(f);
	}
	p = strrchr(stat, ')');
	return p == NULL || p[1] == '\0' || p[2] != 'Z';
}

/* Whether pid is alive and is the postmaster of this data directory: a
 * recycled pid now used by another cluster's postgres must not make us wait
 * for a server that is not ours.  Our servers run as `postgres -D <dir>`. */
static bool postmaster_alive(const eg_cluster *c, pid_t pid)
{
	char path[64], args[PATH_MAX + 64];
	ssize_t n;
	int fd;

	if (!process_alive(pid, true))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, args, sizeof(args) - 1);
	close(fd);
	if (n <= 0)
		return true;
	args[n] = '\0';
	for (char *a = args; a < args + n; a += strlen(a) + 1)
		if (strcmp(a, "-D") == 0 && a + 3 < args + n)
			return strcmp(a + 3, c->data_dir) == 0;
	return true; /* started some other way (pg_ctl): trust the pid */
}

/* The pid in postmaster.pid, or 0. */
static pid_t read_postmaster_pid(const eg_cluster *c)
{
	char path[PATH_MAX];
	FILE *f;
	long pid = 0;

	pjoin(path, sizeof(path), c->data_dir, "/postmaster.pid");
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 0 ? (pid_t)pid : 0;
}

/* Appends the last lines of `path` to the diagnostic, so that a failed start
 * says why without the user hunting for the log. */
static int fail_with_log(eg_diag *d, int rc, const char *what,
			 const char *path)
{
	char tail[700] = "";
	FILE *f = fopen(path, "r");

	if (f != NULL) {
		long size;
		size_t n;

		fseek(f, 0, SEEK_END);
		size = ftell(f);
		fseek(f, size > (long)sizeof(tail) - 1 ?
				 size - (long)sizeof(tail) + 1 : 0,
		      SEEK_SET);
		n = fread(tail, 1, sizeof(tail) - 1, f);
		tail[n] = '\0';
		fclose(f);
	}
	return eg_diag_set(d, rc, "%s (log %s):\n%s", what, path,
			   tail[0] != '\0' ? tail : "(empty)");
}

/* Runs argv (as postgres when root) with stdout and stderr appended to
 * log_path; returns the exit status, or -1. */
static int run_logged(const eg_cluster *c, char *const argv[],
		      const char *log_path)
{
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	pid_t pid;
	int status;

	if (fd < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fd);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		child_become_postgres(c);
		/* The postgres user may not be able to stay in our cwd. */
		if (chdir("/") != 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int own_dir(const eg_cluster *c, const char *path, mode_t mode,
		   eg_diag *d)
{
	struct stat st;

	/* In /var/tmp anyone could have planted a symlink at our name: use
	 * only a real directory (chown and chmod would follow a link). */
	if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode))
		return eg_diag_set(d, EG_EPERM,
				   "%s exists and is not a directory; remove it",
				   path);
	if (mkdir(path, mode) != 0 && errno != EEXIST)
		return eg_diag_set(d, eg_err_from_errno(errno),
				   "cannot create %s: %s", path,
				   strerror(errno));
	if (c->as_postgres && chown(path, c->pg_uid, c->pg_gid) != 0)
		return eg_diag_set(d, eg_err_from_errno(errno),
				   "cannot give %s to the postgres user: %s",
				   path, strerror(errno));
	if (chmod(path, mode) != 0)
		return eg_diag_set(d, eg_err_from_errno(errno), "chmod %s: %s",
				   path, strerror(errno));
	return EG_OK;
}

/* Creates pg/, run/ and log/ (and the outside base with its symlinks). */
static int prepare_dirs(const eg_cluster *c, eg_diag *d)
{
	char link[PATH_MAX];
	int rc;

	rc = mkdir_p(c->log_dir, 0755);
	if (rc != EG_OK)
		return eg_diag_set(d, rc, "cannot create %s", c->log_dir);
	if (c->outside[0] != '\0') {
		rc = own_dir(c, c->outside, 0700, d);
		if (rc != EG_OK)
			return rc;
	}
	rc = own_dir(c, c->data_dir, 0700, d);
	if (rc == EG_OK)
		rc = own_dir(c, c->run_dir, 0700, d);
	if (rc != EG_OK || c->outside[0] == '\0')
		return rc;
	pjoin(link, sizeof(link), c->home, "/pg");
	if (symlink(c->data_dir, link) != 0 && errno != EEXIST)
		return eg_diag_set(d, eg_err_from_errno(errno), "symlink %s: %s",
				   link, strerror(errno));
	pjoin(link, sizeof(link), c->home, "/run");
	if (symlink(c->run_dir, link) != 0 && errno != EEXIST)
		return eg_diag_set(d, eg_err_from_errno(errno), "symlink %s: %s",
				   link, strerror(errno));
	return EG_OK;
}

static int initdb(const eg_cluster *c, eg_diag *d)
{
	char prog[PATH_MAX], log[PATH_MAX], conf[PATH_MAX];
	char *argv[] = {prog,          "-D",        (char *)c->data_dir,
			"-U",          PG_USER,     "-E",
			"UTF8",        "--locale=C", "--auth-local=trust",
			"--auth-host=reject", NULL};
	FILE *f;
	int rc;

	rc = prepare_dirs(c, d);
	if (rc != EG_OK)
		return rc;
	pjoin(prog, sizeof(prog), c->bindir, "/initdb");
	pjoin(log, sizeof(log), c->log_dir, "/initdb.log");
	if (run_logged(c, argv, log) != 0)
		return fail_with_log(d, EG_ECHILD, "initdb failed", log);
	/* Our settings live in expgrid.conf, rewritten at every start so that
	 * a moved socket directory is picked up. */
	pjoin(conf, sizeof(conf), c->data_dir, "/postgresql.conf");
	f = fopen(conf, "a");
	if (f == NULL || fputs("\ninclude_if_exists = 'expgrid.conf'\n", f) < 0 ||
	    fclose(f) != 0)
		return eg_diag_set(d, EG_EIO, "cannot write %s", conf);
	return EG_OK;
}

/* Writes a conf string literal: single quotes doubled. */
static void conf_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

static int write_conf(const eg_cluster *c, eg_diag *d)
{
	char path[PATH_MAX];
	FILE *f;

	pjoin(path, sizeof(path), c->data_dir, "/expgrid.conf");
	f = fopen(path, "w");
	if (f == NULL)
		return eg_diag_set(d, eg_err_from_errno(errno), "%s: %s", path,
				   strerror(errno));
	fputs("# Written by expgrid at every `db start`; edits are lost.\n"
	      "# A private cluster: Unix socket only, trust on that socket\n"
	      "# (only its owner can enter the 0700 socket directory).\n"
	      "listen_addresses = ''\n"
	      "port = " PG_PORT "\n"
	      "unix_socket_permissions = 0700\n"
	      "fsync = on\n"
	      "synchronous_commit = on\n"
	      "unix_socket_directories = ",
	      f);
	conf_quote(f, c->run_dir);
	fputc('\n', f);
	if (fclose(f) != 0)
		return eg_diag_set(d, EG_EIO, "cannot write %s", path);
	chmod(path, 0644);
	return EG_OK;
}

/* Starts the postmaster in its own session; returns its pid or -1. */
static pid_t spawn_postmaster(const eg_cluster *c)
{
	char prog[PATH_MAX];
	char *argv[] = {prog, "-D", (char *)c->data_dir, NULL};
	int pfd[2], fd;
	pid_t pid, server = -1;
	int status;

	pjoin(prog, sizeof(prog), c->bindir, "/postgres");
	fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		close(fd);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		pid_t g;

		setsid();
		g = fork();
		if (g == 0) {
			int null = open("/dev/null", O_RDONLY);

			dup2(null, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			signal(SIGPIPE, SIG_DFL);
			child_become_postgres(c);
			if (chdir("/") != 0)
				_exit(126);
			execv(prog, argv);
			_exit(127);
		}
		if (write(pfd[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		_exit(0);
	}
	close(fd);
	close(pfd[1]);
	if (pid > 0) {
		if (read(pfd[0], &server, sizeof(server)) != sizeof(server))
			server = -1;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	close(pfd[0]);
	return server;
}

static int lock_home(const eg_cluster *c, eg_diag *d)
{
	char path[PATH_MAX];
	int fd;

	pjoin(path, sizeof(path), c->home, "/cluster.lock");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return eg_diag_set(d, eg_err_from_errno(errno), "%s: %s", path,
				   strerror(errno));
	while (flock(fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			close(fd);
			return eg_diag_set(d, EG_EIO, "flock %s: %s", path,
					   strerror(errno));
		}
	return fd;
}

/* Creates the expgrid database if it is missing (first start). */
static int ensure_database(const eg_cluster *c, eg_diag *d)
{
	const char *keys[] = {"host", "port", "user", "dbname", NULL};
	const char *vals[] = {c->run_dir, PG_PORT, PG_USER, "postgres", NULL};
	PGconn *conn;
	PGresult *res = NULL;
	const char *params[1] = {PG_DB};
	int rc = EG_OK;

	conn = PQconnectdbParams(keys, vals, 0);
	if (PQstatus(conn) != CONNECTION_OK) {
		rc = eg_diag_set(d, EG_EDB, "%s", PQerrorMessage(conn));
		goto out;
	}
	res = PQexecParams(conn, "SELECT 1 FROM pg_database WHERE datname = $1",
			   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = eg_diag_set(d, EG_EDB, "%s", PQresultErrorMessage(res));
		goto out;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		/* An identifier cannot be a parameter; this one is a constant. */
		res = PQexec(conn, "CREATE DATABASE " PG_DB);
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    strstr(PQresultErrorMessage(res), "already exists") == NULL)
			rc = eg_diag_set(d, EG_EDB, "%s",
					 PQresultErrorMessage(res));
	}
out:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

int eg_cluster_start(eg_cluster *c, eg_diag *d)
{
	char pidfile[PATH_MAX];
	pid_t pid;
	int lock, rc = EG_OK;
	long waited;

	lock = lock_home(c, d);
	if (lock < 0)
		return lock;
	if (eg_cluster_running(c))
		goto db;
	if (!eg_cluster_initialized(c)) {
		rc = initdb(c, d);
		if (rc != EG_OK)
			goto out;
	} else {
		rc = prepare_dirs(c, d); /* /var/tmp may have been cleaned */
		if (rc != EG_OK)
			goto out;
	}
	pid = read_postmaster_pid(c);
	if (pid > 0 && !postmaster_alive(c, pid)) {
		/* Stale: a crashed server or a reboot.  PostgreSQL would
		 * usually cope, but not when the pid now belongs to another
		 * process of the postgres user. */
		pjoin(pidfile, sizeof(pidfile), c->data_dir, "/postmaster.pid");
		unlink(pidfile);
		pid = 0;
	}
	if (pid <= 0) {
		rc = write_conf(c, d);
		if (rc != EG_OK)
			goto out;
		pid = spawn_postmaster(c);
		if (pid <= 0) {
			rc = eg_diag_set(d, EG_ECHILD,
					 "cannot start postgres: %s",
					 strerror(errno));
			goto out;
		}
	}
	/* Wait until it accepts connections (or a live one finishes its
	 * recovery), failing early if the process dies. */
	for (waited = 0; !eg_cluster_running(c); waited += 100) {
		if (!process_alive(pid, false) || waited >= START_TIMEOUT_MS) {
			rc = fail_with_log(d, EG_ECHILD,
					   waited >= START_TIMEOUT_MS ?
						   "PostgreSQL did not start "
						   "within 60 s" :
						   "PostgreSQL exited at start",
					   c->log_path);
			goto out;
		}
		sleep_ms(100);
	}
db:
	rc = ensure_database(c, d);
out:
	close(lock);
	return rc;
}

int eg_cluster_stop(eg_cluster *c, bool *was_running, eg_diag *d)
{
	pid_t pid;
	int lock, rc = EG_OK;
	long waited;

	if (was_running != NULL)
		*was_running = false;
	lock = lock_home(c, d);
	if (lock < 0)
		return lock;
	pid = read_postmaster_pid(c);
	if (pid <= 0 || !postmaster_alive(c, pid))
		goto out;
	if (was_running != NULL)
		*was_running = true;
	/* SIGINT is PostgreSQL's fast shutdown: roll back sessions, write a
	 * checkpoint; SIGQUIT (immediate) only if that hangs. */
	kill(pid, SIGINT);
	for (waited = 0; postmaster_alive(c, pid); waited += 50) {
		if (waited == STOP_TIMEOUT_MS)
			kill(pid, SIGQUIT);
		if (waited > STOP_TIMEOUT_MS + 10000) {
			rc = fail_with_log(d, EG_ETIMEOUT,
					   "PostgreSQL did not stop",
					   c->log_path);
			goto out;
		}
		sleep_ms(50);
	}
out:
	close(lock);
	return rc;
}
