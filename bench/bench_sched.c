/*
 * bench_sched.c - end-to-end scheduler throughput with durable state, and
 * per-trial overhead next to GNU parallel (DESIGN.md: at least 5,000 noop
 * trials/s through one coordinator, at least 10x lower per-trial overhead
 * than GNU parallel).
 *
 * Starts a private embedded PostgreSQL under a fresh /tmp directory and a
 * real bin/expgrid-coordinator on it, submits an N-trial `kind: noop` grid
 * through eg_store_submit, and runs K fake agents as threads that speak the
 * protocol like a worker gateway: one WANT for S slots at start, a RESULT
 * for every ASSIGN at once, and a new WANT for the slots that freed up,
 * written together whenever the socket has nothing more to read.  The clock
 * runs from the agents' first WANT until every trial is `done` in the
 * database (results committed, which is what the coordinator ACKs).
 * Overhead per trial is wall time / N.  Then it times `parallel -j2 true`
 * over the same number of jobs (fed on stdin, fork/exec, no shell) and
 * prints both and their ratio, plus the coordinator's peak RSS.
 *
 * Usage: bench_sched [-n TRIALS] [-k AGENTS] [-s SLOTS] [-p PARALLEL_JOBS]
 * (defaults 20000, 4, 256, the same as -n; -p 0 skips GNU parallel).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "grid/grid.h"
#include "proto/auth.h"
#include "proto/io.h"
#include "store/cluster.h"
#include "store/store.h"

#define TOKEN "bench-sched-token-0123456789abcdef"

static int port;
static int slots = 256;
static atomic_bool stop_agents;
static atomic_long acked;
static eg_proto_token *tok;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int connect_coord(void)
{
	struct sockaddr_in a = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		perror("bench_sched: connect");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int handshake(int fd, eg_frame_dec *dec, const char *name)
{
	eg_msg m;
	uint8_t nonce[EG_MSG_NONCE_LEN];
	eg_val *l = eg_val_list();
	int rc;

	eg_msg_init(&m, EG_MSG_HELLO);
	m.version = EG_PROTO_VERSION;
	m.role = strdup("worker");
	m.name = strdup(name);
	m.capabilities = eg_val_map();
	eg_val_push(l, eg_val_str("cpu"));
	eg_val_set(m.capabilities, "target", l);
	rc = eg_proto_send(fd, &m, 0, NULL);
	if (rc == EG_OK)
		rc = eg_proto_recv(fd, dec, &m, 5000, NULL);
	if (rc == EG_OK && m.type != EG_MSG_CHALLENGE)
		rc = EG_EPROTO;
	if (rc == EG_OK) {
		memcpy(nonce, m.nonce, sizeof(nonce));
		eg_msg_clear(&m);
		eg_msg_init(&m, EG_MSG_PROOF);
		eg_proto_proof(tok, nonce, m.proof);
		rc = eg_proto_send(fd, &m, 0, NULL);
	}
	if (rc == EG_OK)
		rc = eg_proto_recv(fd, dec, &m, 5000, NULL);
	if (rc == EG_OK && m.type != EG_MSG_WELCOME)
		rc = EG_EAUTH;
	eg_msg_clear(&m);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One fake worker gateway. */
static void *agent(void *arg)
{
	long idx = (long)arg;
	eg_frame_dec *dec = NULL;
	eg_buf out = EG_BUF_INIT;
	eg_msg m, r;
	char name[32];
	int fd, freed = 0;

	snprintf(name, sizeof(name), "bench-%ld", idx);
	fd = connect_coord();
	if (fd < 0 || eg_frame_dec_new(0, &dec) != EG_OK ||
	    handshake(fd, dec, name) != EG_OK) {
		fprintf(stderr, "bench_sched: %s: handshake failed\n", name);
		goto out;
	}
	eg_msg_init(&m, EG_MSG_WANT);
	m.slots = slots;
	eg_msg_encode(&m, &out, 0, NULL);
	eg_msg_init(&r, EG_MSG_RESULT);
	r.payload = eg_val_map();
	eg_val_set(r.payload, "metrics", eg_val_map());
	eg_msg_init(&m, EG_MSG_NONE);
	while (!atomic_load(&stop_agents)) {
		struct pollfd p = {fd, POLLIN, 0};
		int rc;

		/* Nothing more to read now: send what piled up. */
		if (poll(&p, 1, 0) == 0) {
			if (freed > 0) {
				eg_msg w;

				eg_msg_init(&w, EG_MSG_WANT);
				w.slots = freed > EG_MSG_SLOTS_MAX
						  ? EG_MSG_SLOTS_MAX
						  : freed;
				freed -= (int)w.slots;
				eg_msg_encode(&w, &out, 0, NULL);
			}
			if (out.len > 0 && write_all(fd, out.data, out.len) != 0)
				break;
			eg_buf_reset(&out);
		}
		rc = eg_proto_recv(fd, dec, &m, 100, NULL);
		if (rc == EG_ETIMEOUT)
			continue;
		if (rc != EG_OK)
			break;
		if (m.type == EG_MSG_ASSIGN) {
			r.trial = m.trial;
			r.attempt = m.attempt;
			eg_msg_encode(&r, &out, 0, NULL);
			freed++;
		} else if (m.type == EG_MSG_ACK) {
			atomic_fetch_add(&acked, 1);
		}
		eg_msg_clear(&m);
	}
	eg_msg_clear(&m);
	eg_msg_clear(&r);
out:
	if (fd >= 0)
		close(fd);
	eg_frame_dec_free(dec);
	eg_buf_free(&out);
	return NULL;
}

static long long sql_int(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long long v = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static long rss_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtol(line + strlen(field), NULL, 10);
	fclose(f);
	return v;
}

/* Times `parallel -j2 true` over n jobs (arguments on its stdin). */
static double time_parallel(long n)
{
	int in[2];
	pid_t pid;
	double t0, t1;
	int st;
	FILE *w;

	if (pipe(in) != 0)
		return -1;
	t0 = now_s();
	pid = fork();
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);

		dup2(in[0], 0);
		dup2(dn, 1);
		close(in[0]);
		close(in[1]);
		execlp("parallel", "parallel", "-j2", "true", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	w = fdopen(in[1], "w");
	for (long i = 0; i < n; i++)
		fprintf(w, "%ld\n", i);
	fclose(w);
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		return -1;
	t1 = now_s();
	return t1 - t0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
		    struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

int main(int argc, char **argv)
{
	long n = 20000, k = 4, pn = -1;
	char home[] = "/tmp/eg-bench-sched-XXXXXX", addr[128], buf[256];
	eg_cluster *cl = NULL;
	eg_store *s = NULL;
	eg_grid *g = NULL;
	eg_buf y = EG_BUF_INIT;
	eg_diag d = {{0}};
	pthread_t th[64];
	pid_t coord = -1;
	PGconn *pc = NULL;
	int64_t gid = 0, nt = 0;
	bool created;
	double t0, t1, ts0, ts1, el;
	long peak = -1, done = 0;
	int opt, rc = 1;
	FILE *f;

	while ((opt = getopt(argc, argv, "n:k:s:p:")) != -1) {
		switch (opt) {
		case 'n': n = atol(optarg); break;
		case 'k': k = atol(optarg); break;
		case 's': slots = atoi(optarg); break;
		case 'p': pn = atol(optarg); break;
		default:
			fprintf(stderr, "usage: bench_sched [-n TRIALS] [-k "
				"AGENTS] [-s SLOTS] [-p PARALLEL_JOBS]\n");
			return 2;
		}
	}
	if (n < 1 || k < 1 || k > 64 || slots < 1 || slots > EG_MSG_SLOTS_MAX)
		return 2;
	if (pn < 0)
		pn = n;
	if (mkdtemp(home) == NULL)
		return 1;
	chmod(home, 0755);
	setenv("EXPGRID_HOME", home, 1);
	unsetenv("EXPGRID_DB");
	setenv("EXPGRID_TOKEN", TOKEN, 1);
	if (eg_proto_init() != EG_OK ||
	    eg_proto_token_from(TOKEN, strlen(TOKEN), &tok, &d) != EG_OK)
		goto out;
	if ((rc = eg_cluster_open(home, &cl, &d)) != EG_OK ||
	    (rc = eg_cluster_start(cl, &d)) != EG_OK ||
	    (rc = eg_store_connect(eg_cluster_url(cl), &s, &d)) != EG_OK ||
	    (rc = eg_store_migrate(s, NULL, NULL, &d)) != EG_OK) {
		fprintf(stderr, "bench_sched: database: %s\n",
			eg_diag_msg(&d, rc));
		rc = 1;
		goto out;
	}
	rc = 1;
	coord = fork();
	if (coord == 0) {
		/* EG_COORDINATOR: another build of the daemon. */
		const char *exe = getenv("EG_COORDINATOR") != NULL
					  ? getenv("EG_COORDINATOR")
					  : "bin/expgrid-coordinator";

		execl(exe, exe, "--log-level", "warn", "--log-file", "-",
		      (char *)NULL);
		_exit(127);
	}
	snprintf(addr, sizeof(addr), "%s/run/coordinator.addr", home);
	for (int i = 0; i < 500 && (f = fopen(addr, "r")) == NULL; i++)
		usleep(20000);
	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL) {
		fprintf(stderr, "bench_sched: the coordinator did not start "
			"(is bin/expgrid-coordinator built?)\n");
		if (f != NULL)
			fclose(f);
		goto out;
	}
	fclose(f);
	port = atoi(strchr(buf, ':') + 1);

	eg_buf_printf(&y, "name: bench-sched\ntrial: {kind: noop}\n"
		      "sweep:\n  seed: [");
	for (long i = 0; i < n; i++)
		eg_buf_printf(&y, "%s%ld", i ? ", " : "", i);
	eg_buf_puts(&y, "]\n");
	if ((rc = eg_grid_parse(y.data, y.len, "bench.yaml", &g, &d)) != EG_OK)
		goto dbfail;
	ts0 = now_s();
	if ((rc = eg_store_submit(s, g, &gid, &created, &nt, &d)) != EG_OK)
		goto dbfail;
	ts1 = now_s();
	printf("submitted %lld noop trials in %.2f s; %ld agents, %d slots "
	       "each\n", (long long)nt, ts1 - ts0, k, slots);

	pc = PQconnectdb(eg_cluster_url(cl));
	t0 = now_s();
	for (long i = 0; i < k; i++)
		pthread_create(&th[i], NULL, agent, (void *)i);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM trials WHERE grid_id = %lld AND "
		 "state = 'done'", (long long)gid);
	while ((done = (long)sql_int(pc, buf)) < n && now_s() - t0 < 600) {
		long r = rss_kib(coord, "VmRSS:");

		if (r > peak)
			peak = r;
		usleep(20000);
	}
	t1 = now_s();
	atomic_store(&stop_agents, true);
	for (long i = 0; i < k; i++)
		pthread_join(th[i], NULL);
	if (rss_kib(coord, "VmHWM:") > peak)
		peak = rss_kib(coord, "VmHWM:");
	if (done < n) {
		fprintf(stderr, "bench_sched: only %ld of %ld trials done\n",
			done, n);
		goto out;
	}
	el = t1 - t0;
	printf("%ld trials done in %.3f s: %.0f trials/s, %.1f us per trial; "
	       "results rows %lld; coordinator peak RSS %.1f MiB\n",
	       n, el, n / el, el / n * 1e6,
	       sql_int(pc, "SELECT count(*) FROM results"), peak / 1024.0);
	printf("RESULT sched_noop trials_per_s=%.0f overhead_us=%.1f "
	       "trials=%ld agents=%ld coord_rss_mib=%.1f\n",
	       n / el, el / n * 1e6, n, k, peak / 1024.0);
	if (pn > 0) {
		double pt = time_parallel(pn);

		if (pt <= 0) {
			fprintf(stderr, "bench_sched: GNU parallel failed or "
				"is missing (make bench-deps)\n");
		} else {
			printf("RESULT parallel_true jobs_per_s=%.0f "
			       "overhead_us=%.1f jobs=%ld\n",
			       pn / pt, pt / pn * 1e6, pn);
			printf("RESULT sched_vs_parallel overhead_ratio=%.1f\n",
			       (pt / pn) / (el / n));
		}
	}
	rc = 0;
	goto out;
dbfail:
	fprintf(stderr, "bench_sched: %s\n", eg_diag_msg(&d, rc));
	rc = 1;
out:
	if (coord > 0) {
		int st = 0;

		kill(coord, SIGTERM);
		waitpid(coord, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "bench_sched: the coordinator exited "
				"with status %d\n", st);
			rc = 1;
		}
	}
	if (pc != NULL)
		PQfinish(pc);
	eg_store_close(s);
	eg_grid_free(g);
	eg_buf_free(&y);
	if (cl != NULL) {
		eg_cluster_stop(cl, NULL, NULL);
		eg_cluster_free(cl);
		nftw(home, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	eg_proto_token_free(tok);
	return rc;
}
