/*
 * runner.c - runs every test of the given test binaries, each in its own
 * forked process group under a timeout, up to -j at once, and ends with the
 * line "N passed, N failed, N skipped".  Exit status 1 if any test failed.
 *
 *     runner [-j JOBS] [-t DEFAULT_TIMEOUT_S] [-k FILTER] BINARY...
 *
 * A test's output is kept in a log file and printed only when it fails (or
 * with -v).  A timed-out test has its whole process group killed, so stray
 * children (mpirun, servers) die with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct job {
	char bin[1024];
	char name[256];
	int timeout_s;
	pid_t pid;
	double start;
	char log[4096];
	char dir[4096];
};

static int passed, failed, skipped, verbose;
static char rundir[4096];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_log(const char *path)
{
	char line[4096];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		printf("    | %s", line);
	fclose(f);
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');

	return s != NULL ? s + 1 : p;
}

static void start(struct job *j)
{
	static unsigned seq;

	snprintf(j->dir, sizeof(j->dir), "%.3000s/%u-%.200s", rundir, seq++, j->name);
	mkdir(j->dir, 0755);
	snprintf(j->log, sizeof(j->log), "%s.log", j->dir);
	j->start = now();
	j->pid = fork();
	if (j->pid == 0) {
		int fd = open(j->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		setpgid(0, 0);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		setenv("EG_TEST_TMPDIR", j->dir, 1);
		execl(j->bin, j->bin, j->name, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", j->bin, strerror(errno));
		_exit(127);
	}
	if (j->pid > 0)
		setpgid(j->pid, j->pid);
}

static void finish(struct job *j, int status, int timed_out)
{
	double dt = now() - j->start;
	char label[1400];

	snprintf(label, sizeof(label), "%s/%s", base(j->bin), j->name);
	if (timed_out) {
		printf("FAIL %s (timed out after %d s)\n", label, j->timeout_s);
		print_log(j->log);
		failed++;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("ok   %s (%.2f s)\n", label, dt);
		if (verbose)
			print_log(j->log);
		passed++;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		char why[512] = "";
		FILE *f = fopen(j->log, "r");

		if (f != NULL) {
			while (fgets(why, sizeof(why), f) != NULL)
				if (strncmp(why, "skip: ", 6) == 0)
					break;
			fclose(f);
		}
		why[strcspn(why, "\n")] = '\0';
		printf("skip %s (%s)\n", label, why);
		skipped++;
	} else {
		if (WIFSIGNALED(status))
			printf("FAIL %s (signal %d, %.2f s)\n", label,
			       WTERMSIG(status), dt);
		else
			printf("FAIL %s (exit %d, %.2f s)\n", label,
			       WEXITSTATUS(status), dt);
		print_log(j->log);
		failed++;
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int jobs = 1, dflt_timeout = 60, opt, njobs = 0, cap = 0;
	const char *filter = NULL;
	struct job *all = NULL;
	struct job **running;
	int next = 0, active = 0;

	while ((opt = getopt(argc, argv, "j:t:k:v")) != -1) {
		switch (opt) {
		case 'j': jobs = atoi(optarg); break;
		case 't': dflt_timeout = atoi(optarg); break;
		case 'k': filter = optarg; break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: runner [-j N] [-t S] [-k FILTER] [-v] BIN...\n");
			return 2;
		}
	}
	if (jobs < 1)
		jobs = 1;

	/* Collect every test of every binary. */
	for (int i = optind; i < argc; i++) {
		char cmd[2048], line[512];
		FILE *p;

		snprintf(cmd, sizeof(cmd), "'%s' --list", argv[i]);
		p = popen(cmd, "r");
		if (p == NULL)
			continue;
		while (fgets(line, sizeof(line), p) != NULL) {
			char name[256];
			int t = 0;
			char label[1400];

			if (sscanf(line, "%255s %d", name, &t) < 1)
				continue;
			snprintf(label, sizeof(label), "%s/%s", base(argv[i]), name);
			if (filter != NULL && strstr(label, filter) == NULL)
				continue;
			if (njobs == cap) {
				cap = cap ? cap * 2 : 64;
				all = realloc(all, (size_t)cap * sizeof(*all));
				if (all == NULL)
					return 2;
			}
			memset(&all[njobs], 0, sizeof(all[njobs]));
			snprintf(all[njobs].bin, sizeof(all[njobs].bin), "%s", argv[i]);
			snprintf(all[njobs].name, sizeof(all[njobs].name), "%s", name);
			all[njobs].timeout_s = t > 0 ? t : dflt_timeout;
			njobs++;
		}
		if (pclose(p) != 0) {
			printf("FAIL %s (cannot list its tests)\n", argv[i]);
			failed++;
		}
	}

	snprintf(rundir, sizeof(rundir), "%s/eg-tests-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(rundir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	chmod(rundir, 0755);
	running = calloc((size_t)jobs, sizeof(*running));
	if (running == NULL)
		return 2;

	while (next < njobs || active > 0) {
		while (active < jobs && next < njobs) {
			for (int s = 0; s < jobs; s++) {
				if (running[s] == NULL) {
					running[s] = &all[next++];
					start(running[s]);
					active++;
					break;
				}
			}
		}
		for (int s = 0; s < jobs; s++) {
			struct job *j = running[s];
			int status;
			pid_t r;

			if (j == NULL)
				continue;
			r = waitpid(j->pid, &status, WNOHANG);
			if (r == j->pid) {
				kill(-j->pid, SIGKILL); /* strays of the test */
				finish(j, status, 0);
			} else if (now() - j->start > j->timeout_s) {
				kill(-j->pid, SIGKILL);
				waitpid(j->pid, &status, 0);
				finish(j, status, 1);
			} else {
				continue;
			}
			running[s] = NULL;
			active--;
		}
		usleep(10000);
	}
	if (failed == 0) {
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rundir);
		if (system(cmd) != 0)
			fprintf(stderr, "runner: could not remove %s\n", rundir);
	} else {
		printf("logs and scratch directories kept in %s\n", rundir);
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	free(running);
	free(all);
	return failed > 0 ? 1 : 0;
}
