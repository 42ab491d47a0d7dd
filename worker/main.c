/*
 * main.c - expgrid-worker: one MPI program whose rank 0 talks to the
 * coordinator (gateway.c) and whose other ranks run trials (compute.c).
 * Started without mpirun (or with -np 1) it is a single process that both
 * talks and computes, its trials in a thread.
 *
 * OpenBLAS threads per trial: the cores this process may use
 * (sched_getaffinity, which honours Slurm's and cgroups' CPU sets) divided
 * by the compute ranks on the same node (MPI_COMM_TYPE_SHARED), at least 1,
 * so that ranks x threads never oversubscribes a node; --threads overrides.
 *
 * Each rank writes $EXPGRID_HOME/run/worker-rank<N>.pid when that directory
 * exists (the local stack; on a cluster node it usually does not), so that
 * tests and `expgrid down` can find the ranks mpirun started.
 *
 * Exit codes: 0 after SIGTERM/SIGINT or a BYE from the coordinator, 2 for a
 * bad command line or a missing token, 3 when the coordinator refuses the
 * handshake; mpirun passes rank 0's code on.
 */
#include <getopt.h>
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/auth.h"
#include "worker/worker_int.h"

volatile sig_atomic_t eg__worker_stop;

static void on_signal(int sig)
{
	(void)sig;
	eg__worker_stop = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: [mpirun -np N+1] expgrid-worker [--coordinator HOST:PORT]\n"
		"           [--name NAME] [--threads N] [--log-level LEVEL]\n"
		"Rank 0 connects to the coordinator (--coordinator, else\n"
		"$EXPGRID_COORDINATOR, else $EXPGRID_HOME/run/coordinator.addr),\n"
		"authenticates with $EXPGRID_TOKEN or $EXPGRID_HOME/run/token and\n"
		"hands trials to ranks 1..N; a single rank runs them itself.\n");
}

/* Compute ranks sharing this node, and thus its cores. */
static int node_compute_ranks(int rank, int size)
{
	MPI_Comm node;
	int nsize = 1, here0 = 0, is0 = rank == 0;

	if (size == 1)
		return 1;
	if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank,
				MPI_INFO_NULL, &node) != MPI_SUCCESS)
		return size - 1;
	MPI_Comm_size(node, &nsize);
	MPI_Allreduce(&is0, &here0, 1, MPI_INT, MPI_SUM, node);
	MPI_Comm_free(&node);
	nsize -= here0; /* the gateway computes nothing */
	return nsize > 0 ? nsize : 1;
}

static int usable_cores(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"coordinator", required_argument, NULL, 'c'},
		{"name", required_argument, NULL, 'n'},
		{"threads", required_argument, NULL, 't'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	eg__wopts o = {0};
	struct sigaction sa;
	char progname[64], pidfile[PATH_MAX + 32], rundir[PATH_MAX];
	int opt, provided, code, ncompute, level;
	struct stat st;
	bool wrote_pid = false;

	o.coordinator = getenv("EXPGRID_COORDINATOR");
	if (o.coordinator != NULL && o.coordinator[0] == '\0')
		o.coordinator = NULL;
	o.home = getenv("EXPGRID_HOME");
	if (o.home == NULL || o.home[0] == '\0')
		o.home = "var";
	while ((opt = getopt_long(argc, argv, "c:n:t:l:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o.coordinator = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 't':
			o.threads = atoi(optarg);
			if (o.threads < 1) {
				fprintf(stderr, "expgrid-worker: --threads "
						"must be a positive integer\n");
				return 2;
			}
			break;
		case 'l':
			level = eg_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "expgrid-worker: unknown log "
						"level '%s'\n", optarg);
				return 2;
			}
			eg_log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (eg_proto_init() != EG_OK) {
		fprintf(stderr, "expgrid-worker: cannot initialize libsodium\n");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Only each process's main thread calls MPI; trial threads never. */
	if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) !=
	    MPI_SUCCESS) {
		fprintf(stderr, "expgrid-worker: MPI_Init_thread failed\n");
		return 1;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &o.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &o.size);
	snprintf(progname, sizeof(progname), "expgrid-worker.%d", o.rank);
	eg_log_open(progname, stderr);
	ncompute = node_compute_ranks(o.rank, o.size);
	if (o.threads == 0) {
		o.threads = usable_cores() / ncompute;
		if (o.threads < 1)
			o.threads = 1;
	}

	snprintf(rundir, sizeof(rundir), "%s/run", o.home);
	if (stat(rundir, &st) == 0 && S_ISDIR(st.st_mode)) {
		FILE *f;

		long other = 0;

		snprintf(pidfile, sizeof(pidfile), "%s/worker-rank%d.pid",
			 rundir, o.rank);
		/* A second worker job on the same home (a test, an operator
		 * by hand) must not take over the stack's pid files. */
		f = fopen(pidfile, "r");
		if (f != NULL) {
			if (fscanf(f, "%ld", &other) != 1)
				other = 0;
			fclose(f);
		}
		f = other > 0 && kill((pid_t)other, 0) == 0
			    ? NULL
			    : fopen(pidfile, "w");
		if (f != NULL) {
			fprintf(f, "%d\n", (int)getpid());
			wrote_pid = fclose(f) == 0;
		}
	}

	code = o.rank == 0 ? eg__gateway_main(&o) : eg__compute_main(&o);
	eg_log(EG_LOG_INFO, "exiting with status %d", code);
	if (wrote_pid)
		unlink(pidfile);
	MPI_Finalize();
	return code;
}
