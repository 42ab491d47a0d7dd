/*
 * cmd_up.c - `expgrid up [--workers N] [--boards N]`: starts, under
 * $EXPGRID_HOME, whatever of the local stack is not already running:
 *
 *   1. the embedded PostgreSQL (unless EXPGRID_DB names another server),
 *      then the migrations, on either;
 *   2. the shared token run/token (0600, only if absent and EXPGRID_TOKEN
 *      is unset);
 *   3. bin/expgrid-coordinator, in its own session, logging to
 *      log/coordinator.log; up waits until run/coordinator.addr exists and
 *      accepts a TCP connection, and shows the log's tail if it does not;
 *   4. `mpirun -np N+1 bin/expgrid-worker` (N compute ranks plus the
 *      gateway), in its own session, logging to log/worker.log;
 *   5. bin/expgrid-hwagent with $EXPGRID_HOME/boards.yaml, when that file
 *      exists or --boards N > 0 asks for one (then written with N sim
 *      boards of type sim16 unless it exists: `up` never overwrites a
 *      boards file a user may have edited), logging to log/hwagent.log.
 *
 * Each daemon's pid is in run/<name>.pid.  "Running" means the pid is alive
 * (not a zombie) and is the right program (/proc/<pid>/exe), so a reused
 * pid is not mistaken for a daemon; run again, up restarts only what died.
 * Our own programs are found next to this binary (/proc/self/exe), never
 * through PATH; mpirun is a system program and comes from PATH.
 *
 * The process helpers at the bottom are shared with cmd_down.c (cli.h).
 * Daemons get an absolute EXPGRID_HOME, since they outlive our directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/auth.h"
#include "store/cluster.h"
#include "store/store.h"

#define COORD_START_TIMEOUT_MS 30000
#define WORKER_SETTLE_MS 1000

static const char *const coord_names[] = {"expgrid-coordinator", NULL};
static const char *const hwagent_names[] = {"expgrid-hwagent", NULL};

/* The board type `up --boards N` writes: 16-bit words with 6 integer bits,
 * round to nearest and saturation (the format the coverify grids target
 * as fpga:sim16; docs/coverify.md explains why rnd). */
#define SIM_BOARD_TYPE "sim16"
#define HWAGENT_SETTLE_MS 700
static const char *const mpirun_names[] = {"orterun", "mpirun", "mpiexec",
					   "prterun", NULL};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid up [--workers N] [--boards N]\n"
		"Starts what is not running under $EXPGRID_HOME (default ./var):\n"
		"the embedded PostgreSQL (unless EXPGRID_DB is set), the\n"
		"coordinator, and `mpirun -np N+1 expgrid-worker` (N compute\n"
		"ranks, default: the number of cores), and the hardware agent\n"
		"when $EXPGRID_HOME/boards.yaml exists or --boards N > 0 asks for\n"
		"N simulated boards of type " SIM_BOARD_TYPE " (grid target fpga:"
		SIM_BOARD_TYPE ").\n"
		"Run again, it restarts only what died.  `expgrid down` stops\n"
		"everything.\n");
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- helpers shared with `down` ---- */

int eg_cli_home(char *out, size_t len)
{
	const char *h = getenv("EXPGRID_HOME");
	char real[PATH_MAX];

	if (h == NULL || *h == '\0')
		h = "var";
	if (mkdir(h, 0755) != 0 && errno != EEXIST) {
		eg_cli_error("cannot create %s: %s", h, strerror(errno));
		return -1;
	}
	if (realpath(h, real) == NULL) {
		eg_cli_error("%s: %s", h, strerror(errno));
		return -1;
	}
	snprintf(out, len, "%s", real);
	setenv("EXPGRID_HOME", real, 1);
	return 0;
}

pid_t eg_cli_pidfile_read(const char *path)
{
	FILE *f = fopen(path, "r");
	long pid = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 0 && pid <= INT32_MAX ? (pid_t)pid : 0;
}

int eg_cli_pidfile_write(const char *path, pid_t pid)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "%d\n", (int)pid);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Alive, not a zombie, and one of `names` by executable or command name. */
bool eg_cli_pid_is(pid_t pid, const char *const *names)
{
	char path[64], exe[PATH_MAX];
	const char *base = NULL;
	ssize_t n;

	if (!eg_cli_pid_alive(pid))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		/* " (deleted)" after a rebuild still names the program. */
		char *del = strstr(exe, " (deleted)");

		if (del != NULL)
			*del = '\0';
		base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
	}
	for (size_t i = 0; names[i] != NULL; i++)
		if (base != NULL && strcmp(base, names[i]) == 0)
			return true;
	return false;
}

bool eg_cli_pid_alive(pid_t pid)
{
	char path[64], stat[512];
	const char *p;
	ssize_t n;
	FILE *f;

	if (pid <= 0 || kill(pid, 0) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	n = (ssize_t)fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n > 0 ? n : 0] = '\0';
	p = strrchr(stat, ')');
	return p != NULL && p[1] != '\0' && p[2] != 'Z' && p[2] != 'X';
}

bool eg_cli_stop_pid(pid_t pid, int deadline_ms)
{
	long end = now_ms() + deadline_ms;

	if (!eg_cli_pid_alive(pid))
		return false;
	kill(pid, SIGTERM);
	while (eg_cli_pid_alive(pid) && now_ms() < end)
		sleep_ms(50);
	if (eg_cli_pid_alive(pid)) {
		kill(pid, SIGKILL);
		end = now_ms() + 5000;
		while (eg_cli_pid_alive(pid) && now_ms() < end)
			sleep_ms(20);
	}
	return true;
}

/* <dir of /proc/self/exe>/<prog> */
static int sibling(const char *prog, char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	snprintf(out, len, "%s/%s", dirname(exe), prog);
	return access(out, X_OK) == 0 ? 0 : -1;
}

/* Forks `argv` in a session of its own with stdout and stderr appended to
 * `log`; returns the pid or -1. */
static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid;
	int out, in;

	out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (out < 0) {
		eg_cli_error("%s: %s", log, strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		eg_cli_error("fork: %s", strerror(errno));
		close(out);
		return -1;
	}
	if (pid == 0) {
		setsid();
		in = open("/dev/null", O_RDONLY);
		if (in >= 0)
			dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		dprintf(2, "expgrid up: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	close(out);
	return pid;
}

/* Prints the last lines of a log on stderr. */
static void log_tail(const char *path)
{
	char buf[2048];
	FILE *f = fopen(path, "r");
	long size;
	size_t n;

	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0,
	      SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	fprintf(stderr, "--- last lines of %s ---\n%s%s", path, buf,
		n > 0 && buf[n - 1] != '\n' ? "\n" : "");
}

/* Whether host:port in the file accepts a TCP connection now. */
static bool addr_accepts(const char *addrfile)
{
	char addr[512], host[512];
	struct addrinfo hints = {0}, *res = NULL;
	FILE *f = fopen(addrfile, "r");
	char *colon;
	bool ok = false;
	size_t n;

	if (f == NULL)
		return false;
	n = fread(addr, 1, sizeof(addr) - 1, f);
	fclose(f);
	addr[n] = '\0';
	addr[strcspn(addr, "\r\n \t")] = '\0';
	colon = strrchr(addr, ':');
	if (colon == NULL)
		return false;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		return false;
	for (struct addrinfo *ai = res; ai != NULL && !ok; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				ai->ai_protocol);

		if (fd < 0)
			continue;
		ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
		close(fd);
	}
	freeaddrinfo(res);
	return ok;
}

/* ---- the parts ---- */

static int up_database(int *started)
{
	eg_diag d = {{0}};
	eg_cluster *c = NULL;
	eg_store *s = NULL;
	int rc = EG_OK, applied = 0;
	const char *db = getenv("EXPGRID_DB");

	*started = 0;
	if (db == NULL || *db == '\0') {
		rc = eg_cluster_open(NULL, &c, &d);
		if (rc == EG_OK) {
			*started = !eg_cluster_running(c);
			rc = eg_cluster_start(c, &d);
		}
		eg_cluster_free(c);
		if (rc != EG_OK) {
			eg_cli_error("up: PostgreSQL: %s", eg_diag_msg(&d, rc));
			return -1;
		}
	}
	rc = eg_store_connect(NULL, &s, &d);
	if (rc == EG_OK)
		rc = eg_store_migrate(s, NULL, &applied, &d);
	eg_store_close(s);
	if (rc != EG_OK) {
		eg_cli_error("up: migrate: %s", eg_diag_msg(&d, rc));
		return -1;
	}
	if (db != NULL && *db != '\0')
		printf("database: EXPGRID_DB (%d migration%s applied)\n", applied,
		       applied == 1 ? "" : "s");
	else
		printf("PostgreSQL: %s\n", *started ? "started" : "already running");
	return 0;
}

static int up_token(const char *home)
{
	char path[PATH_MAX + 16];
	eg_diag d = {{0}};
	const char *env = getenv(EG_PROTO_TOKEN_ENV);
	int rc;

	snprintf(path, sizeof(path), "%s/run/token", home);
	if ((env != NULL && *env != '\0') || access(path, F_OK) == 0)
		return 0;
	rc = eg_proto_init();
	if (rc == EG_OK)
		rc = eg_proto_token_generate(path, NULL, &d);
	if (rc != EG_OK) {
		eg_cli_error("up: token: %s", eg_diag_msg(&d, rc));
		return -1;
	}
	printf("token: created %s\n", path);
	return 0;
}

static int up_coordinator(const char *home)
{
	char prog[PATH_MAX], pidf[PATH_MAX + 32], addrf[PATH_MAX + 32],
		log[PATH_MAX + 32];
	char *argv[2];
	pid_t pid;
	long end;
	int status;

	snprintf(pidf, sizeof(pidf), "%s/run/coordinator.pid", home);
	snprintf(addrf, sizeof(addrf), "%s/run/coordinator.addr", home);
	snprintf(log, sizeof(log), "%s/log/coordinator.log", home);
	pid = eg_cli_pidfile_read(pidf);
	if (eg_cli_pid_is(pid, coord_names)) {
		printf("coordinator: already running (pid %d)\n", (int)pid);
		return 0;
	}
	if (sibling("expgrid-coordinator", prog, sizeof(prog)) != 0) {
		eg_cli_error("up: %s is missing (run make)", prog);
		return -1;
	}
	unlink(addrf); /* a stale address would pass the readiness check */
	argv[0] = prog;
	argv[1] = NULL;
	pid = spawn(argv, log);
	if (pid < 0)
		return -1;
	eg_cli_pidfile_write(pidf, pid);
	end = now_ms() + COORD_START_TIMEOUT_MS;
	while (now_ms() < end) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			eg_cli_error("up: the coordinator exited (status %d)",
				     WIFEXITED(status) ? WEXITSTATUS(status)
						       : 128 + WTERMSIG(status));
			log_tail(log);
			unlink(pidf);
			return -1;
		}
		if (addr_accepts(addrf)) {
			printf("coordinator: started (pid %d)\n", (int)pid);
			return 0;
		}
		sleep_ms(50);
	}
	eg_cli_error("up: the coordinator did not listen within %d s",
		     COORD_START_TIMEOUT_MS / 1000);
	log_tail(log);
	return -1;
}

static void remove_rank_pidfiles(const char *home)
{
	char dir[PATH_MAX + 8], path[PATH_MAX + 300];
	DIR *dp;
	struct dirent *e;

	snprintf(dir, sizeof(dir), "%s/run", home);
	dp = opendir(dir);
	if (dp == NULL)
		return;
	while ((e = readdir(dp)) != NULL) {
		if (strncmp(e->d_name, "worker-rank", 11) == 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	}
	closedir(dp);
}

/*
 * Starts argv as a daemon logging to `log`, records its pid in `pidf`, and
 * waits settle_ms: a program that fails at all (a missing binary, a bad
 * option, a bad file or token) fails at once, and that is reported here
 * with the log's tail instead of being discovered later.  Returns the pid,
 * or -1 with the pid file removed.
 */
static pid_t spawn_settled(char *const argv[], const char *log,
			   const char *pidf, const char *what, int settle_ms)
{
	long end;
	int status;
	pid_t pid = spawn(argv, log);

	if (pid < 0)
		return -1;
	eg_cli_pidfile_write(pidf, pid);
	end = now_ms() + settle_ms;
	while (now_ms() < end) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			eg_cli_error("up: %s exited (status %d)", what,
				     WIFEXITED(status) ? WEXITSTATUS(status)
						       : 128 + WTERMSIG(status));
			log_tail(log);
			unlink(pidf);
			return -1;
		}
		sleep_ms(50);
	}
	return pid;
}

static int up_workers(const char *home, long workers)
{
	char prog[PATH_MAX], pidf[PATH_MAX + 32], log[PATH_MAX + 32], np[32];
	char *argv[24];
	int argc = 0;
	pid_t pid;

	snprintf(pidf, sizeof(pidf), "%s/run/worker.pid", home);
	snprintf(log, sizeof(log), "%s/log/worker.log", home);
	pid = eg_cli_pidfile_read(pidf);
	if (eg_cli_pid_is(pid, mpirun_names)) {
		printf("workers: already running (mpirun pid %d)\n", (int)pid);
		return 0;
	}
	if (sibling("expgrid-worker", prog, sizeof(prog)) != 0) {
		eg_cli_error("up: %s is missing (run make)", prog);
		return -1;
	}
	remove_rank_pidfiles(home);
	snprintf(np, sizeof(np), "%ld", workers + 1);
	argv[argc++] = "mpirun";
	if (geteuid() == 0)
		argv[argc++] = "--allow-run-as-root";
	/* One node, more ranks than cores is normal (the gateway mostly
	 * sleeps); shared memory between ranks; no pinning, since each
	 * compute rank sizes its own BLAS thread pool. */
	argv[argc++] = "--oversubscribe";
	argv[argc++] = "--bind-to";
	argv[argc++] = "none";
	argv[argc++] = "--mca";
	argv[argc++] = "btl";
	argv[argc++] = "self,vader";
	/* Containers often forbid the cross-memory-attach syscalls. */
	argv[argc++] = "--mca";
	argv[argc++] = "btl_vader_single_copy_mechanism";
	argv[argc++] = "none";
	argv[argc++] = "-x";
	argv[argc++] = "EXPGRID_HOME";
	argv[argc++] = "-np";
	argv[argc++] = np;
	argv[argc++] = prog;
	argv[argc] = NULL;
	pid = spawn_settled(argv, log, pidf, "mpirun", WORKER_SETTLE_MS);
	if (pid < 0)
		return -1;
	printf("workers: started %ld compute rank%s (mpirun pid %d)\n", workers,
	       workers == 1 ? "" : "s", (int)pid);
	return 0;
}

/* $EXPGRID_HOME/boards.yaml with n sim boards, unless it exists. */
static int write_boards(const char *path, long n)
{
	char tmp[PATH_MAX + 64];
	FILE *f;
	int bad;

	if (access(path, F_OK) == 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL) {
		eg_cli_error("up: %s: %s", tmp, strerror(errno));
		return -1;
	}
	fprintf(f, "# Written by `expgrid up --boards %ld`: simulated boards "
		   "of type %s\n# (grids target them as fpga:%s).  Edit "
		   "freely: `up` never overwrites\n# this file.  The format is "
		   "in docs/coverify.md.\nboards:\n",
		n, SIM_BOARD_TYPE, SIM_BOARD_TYPE);
	for (long i = 0; i < n; i++)
		fprintf(f,
			"  - name: sim%ld\n"
			"    type: %s\n"
			"    backend: sim\n"
			"    options: {word_bits: 16, int_bits: 6, round: rnd, "
			"overflow: sat,\n"
			"              accum_bits: 32, accum_int_bits: 16, "
			"parallelism: 64, clock_mhz: 200}\n",
			i, SIM_BOARD_TYPE);
	bad = ferror(f);
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path) != 0) {
		eg_cli_error("up: cannot write %s", path);
		unlink(tmp);
		return -1;
	}
	printf("boards: wrote %s (%ld sim board%s of type %s)\n", path, n,
	       n == 1 ? "" : "s", SIM_BOARD_TYPE);
	return 0;
}

static int up_hwagent(const char *home, long boards)
{
	char prog[PATH_MAX], pidf[PATH_MAX + 32], log[PATH_MAX + 32],
		file[PATH_MAX + 32];
	char *argv[5];
	pid_t pid;

	snprintf(file, sizeof(file), "%s/boards.yaml", home);
	if (boards > 0 && write_boards(file, boards) != 0)
		return -1;
	if (access(file, F_OK) != 0)
		return 0; /* no board farm here */
	snprintf(pidf, sizeof(pidf), "%s/run/hwagent.pid", home);
	snprintf(log, sizeof(log), "%s/log/hwagent.log", home);
	pid = eg_cli_pidfile_read(pidf);
	if (eg_cli_pid_is(pid, hwagent_names)) {
		printf("hwagent: already running (pid %d)\n", (int)pid);
		return 0;
	}
	if (sibling("expgrid-hwagent", prog, sizeof(prog)) != 0) {
		eg_cli_error("up: %s is missing (run make)", prog);
		return -1;
	}
	argv[0] = prog;
	argv[1] = "--boards";
	argv[2] = file;
	argv[3] = NULL;
	pid = spawn_settled(argv, log, pidf, "the hwagent", HWAGENT_SETTLE_MS);
	if (pid < 0)
		return -1;
	printf("hwagent: started with %s (pid %d)\n", file, (int)pid);
	return 0;
}

int eg_cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{"workers", required_argument, NULL, 'w'},
		{"boards", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	char home[PATH_MAX], dir[PATH_MAX + 8];
	long workers = sysconf(_SC_NPROCESSORS_ONLN), boards = 0;
	int opt, started = 0;

	while ((opt = getopt_long(argc, argv, "w:b:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			workers = eg_cli_parse_count(optarg);
			if (workers < 1) {
				eg_cli_error("up: --workers wants a positive "
					     "integer, not '%s'", optarg);
				return EG_EXIT_USAGE;
			}
			break;
		case 'b':
			boards = eg_cli_parse_count(optarg);
			if (boards < 0) {
				eg_cli_error("up: --boards wants a count, not "
					     "'%s'", optarg);
				return EG_EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return EG_EXIT_OK;
		default:
			usage(stderr);
			return EG_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EG_EXIT_USAGE;
	}
	if (workers < 1)
		workers = 1;
	if (eg_cli_home(home, sizeof(home)) != 0)
		return EG_EXIT_FAIL;
	snprintf(dir, sizeof(dir), "%s/log", home);
	mkdir(dir, 0755);
	if (up_database(&started) != 0)
		return EG_EXIT_FAIL;
	/* After the cluster: it may have made run/ a symlink elsewhere. */
	snprintf(dir, sizeof(dir), "%s/run", home);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		eg_cli_error("up: cannot create %s: %s", dir, strerror(errno));
		return EG_EXIT_FAIL;
	}
	if (up_token(home) != 0 || up_coordinator(home) != 0 ||
	    up_workers(home, workers) != 0 || up_hwagent(home, boards) != 0)
		return EG_EXIT_FAIL;
	return fflush(stdout) == 0 ? EG_EXIT_OK : EG_EXIT_FAIL;
}
