/*
 * cmd_down.c - `expgrid down`: stops what `up` and `db start` started under
 * $EXPGRID_HOME, in the order that loses nothing: the workers first (they
 * stop taking trials; their leases return to pending), then the
 * coordinator (it has nothing left to record), then PostgreSQL.
 *
 * Each daemon is found through its pid file and must still be the right
 * program (a reused pid is left alone).  Each gets SIGTERM and a deadline,
 * then SIGKILL.  mpirun forwards SIGTERM to its ranks; any rank that
 * outlives mpirun (run/worker-rank<N>.pid) is stopped the same way.
 * Stopping what is not running is not an error.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/cluster.h"

#define WORKER_DEADLINE_MS 10000
#define COORD_DEADLINE_MS 10000

static const char *const coord_names[] = {"expgrid-coordinator", NULL};
static const char *const hwagent_names[] = {"expgrid-hwagent", NULL};
static const char *const mpirun_names[] = {"orterun", "mpirun", "mpiexec",
					   "prterun", NULL};
static const char *const worker_names[] = {"expgrid-worker", NULL};

/* Stops the daemon of one pid file; returns 1 if it was running. */
static int stop_one(const char *home, const char *file,
		    const char *const *names, int deadline_ms)
{
	char path[PATH_MAX + 64];
	pid_t pid;
	int was = 0;

	snprintf(path, sizeof(path), "%s/run/%s", home, file);
	pid = eg_cli_pidfile_read(path);
	if (eg_cli_pid_is(pid, names))
		was = eg_cli_stop_pid(pid, deadline_ms);
	unlink(path);
	return was;
}

/* Ranks that outlived mpirun (it was killed, or died). */
static int stop_ranks(const char *home)
{
	char dir[PATH_MAX + 8], file[300];
	DIR *dp;
	struct dirent *e;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/run", home);
	dp = opendir(dir);
	if (dp == NULL)
		return 0;
	while ((e = readdir(dp)) != NULL) {
		if (strncmp(e->d_name, "worker-rank", 11) != 0 ||
		    strstr(e->d_name, ".pid") == NULL)
			continue;
		snprintf(file, sizeof(file), "%s", e->d_name);
		n += stop_one(home, file, worker_names, 2000);
	}
	closedir(dp);
	return n;
}

int eg_cmd_down(int argc, char **argv)
{
	eg_diag d = {{0}};
	eg_cluster *c = NULL;
	char home[PATH_MAX];
	bool was = false;
	int rc, n = 0;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		printf("usage: expgrid down\nStops everything `expgrid up` and "
		       "`expgrid db start` started under $EXPGRID_HOME.\n");
		return EG_EXIT_OK;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: expgrid down\n");
		return EG_EXIT_USAGE;
	}
	if (eg_cli_home(home, sizeof(home)) != 0)
		return EG_EXIT_FAIL;
	if (stop_one(home, "worker.pid", mpirun_names, WORKER_DEADLINE_MS)) {
		printf("workers stopped\n");
		n++;
	}
	stop_ranks(home);
	if (stop_one(home, "hwagent.pid", hwagent_names, COORD_DEADLINE_MS)) {
		printf("hwagent stopped\n");
		n++;
	}
	if (stop_one(home, "coordinator.pid", coord_names, COORD_DEADLINE_MS)) {
		printf("coordinator stopped\n");
		n++;
	}
	rc = eg_cluster_open(home, &c, &d);
	if (rc == EG_OK)
		rc = eg_cluster_stop(c, &was, &d);
	eg_cluster_free(c);
	if (rc != EG_OK) {
		eg_cli_error("down: %s", eg_diag_msg(&d, rc));
		return EG_EXIT_FAIL;
	}
	if (was) {
		printf("PostgreSQL stopped\n");
		n++;
	}
	if (n == 0)
		printf("nothing was running\n");
	return EG_EXIT_OK;
}
