/*
 * itest_coordinator.c - bin/expgrid-coordinator against real sockets and a
 * real PostgreSQL.  Each test starts an embedded cluster under its scratch
 * directory (store/cluster.h), migrates, submits small noop grids through
 * eg_store_submit, starts the coordinator as a child with EXPGRID_HOME set,
 * reads run/coordinator.addr, and talks to it with a client built on
 * proto/io.h and proto/auth.h.  The coordinator is killed and the cluster
 * stopped from an atexit handler too, since the server runs in its own
 * session beyond the runner's process-group kill.
 *
 * Covered: handshake and WELCOME; wrong token; version mismatch; WANT ->
 * ASSIGN -> RESULT -> ACK -> results row; a duplicate RESULT; FAILs up to
 * max_attempts; priority and age order; dependencies; cancel -> CANCEL;
 * lease expiry (attempt 2) and a dropped connection; hostile clients
 * (garbage, a 2 GiB length, bad msgpack, forged HELLOs, WANT before the
 * handshake, 200 idle connections) while a good client keeps being served;
 * kill -9 and restart; PostgreSQL restarted underneath; SIGTERM drain.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
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
#include "tests/harness.h"

#define TOKEN "itest-coordinator-token-0123456789"

static eg_cluster *cluster;
static pid_t coord = -1;
static int coord_port;
static char home[PATH_MAX];
static eg_proto_token *tok;

static void kill_coord(void)
{
	if (coord > 0) {
		kill(coord, SIGKILL);
		waitpid(coord, NULL, 0);
		coord = -1;
	}
}

static void cleanup(void)
{
	kill_coord();
	if (cluster != NULL) {
		eg_cluster_stop(cluster, NULL, NULL);
		eg_cluster_free(cluster);
		cluster = NULL;
	}
}

/* ---- database ---- */

static PGconn *db(void)
{
	static PGconn *c;

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		if (c != NULL)
			PQfinish(c);
		c = PQconnectdb(eg_cluster_url(cluster));
		EG_CHECK_MSG(PQstatus(c) == CONNECTION_OK, "connect: %s",
			     PQerrorMessage(c));
	}
	return c;
}

static long long sql_int(const char *sql)
{
	PGresult *r = PQexec(db(), sql);
	long long v;

	EG_CHECK_MSG(PQresultStatus(r) == PGRES_TUPLES_OK &&
			     PQntuples(r) == 1,
		     "%s: %s", sql, PQresultErrorMessage(r));
	v = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void sql_text(const char *sql, char *out, size_t n)
{
	PGresult *r = PQexec(db(), sql);

	EG_CHECK_MSG(PQresultStatus(r) == PGRES_TUPLES_OK &&
			     PQntuples(r) == 1,
		     "%s: %s", sql, PQresultErrorMessage(r));
	snprintf(out, n, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

static void sql_ok(const char *sql)
{
	PGresult *r = PQexec(db(), sql);

	EG_CHECK_MSG(PQresultStatus(r) == PGRES_COMMAND_OK ||
			     PQresultStatus(r) == PGRES_TUPLES_OK,
		     "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* Waits until `sql` returns `want` (up to timeout_s). */
static void wait_sql(const char *sql, long long want, double timeout_s)
{
	double t0 = eg_test_now();
	long long v;

	while ((v = sql_int(sql)) != want && eg_test_now() - t0 < timeout_s)
		eg_test_sleep_ms(50);
	EG_CHECK_MSG(v == want, "%s: %lld, expected %lld", sql, v, want);
}

static void start_cluster(void)
{
	eg_diag d = {{0}};
	eg_store *s = NULL;
	int rc;

	snprintf(home, sizeof(home), "%s/home", eg_test_tmpdir());
	setenv("EXPGRID_HOME", home, 1);
	unsetenv("EXPGRID_DB");
	setenv("EXPGRID_TOKEN", TOKEN, 1);
	EG_CHECK_OK(eg_proto_init());
	EG_CHECK_OK(eg_proto_token_from(TOKEN, strlen(TOKEN), &tok, NULL));
	EG_CHECK_OK(eg_cluster_open(home, &cluster, &d));
	atexit(cleanup);
	rc = eg_cluster_start(cluster, &d);
	EG_CHECK_MSG(rc == EG_OK, "start: %s", eg_diag_msg(&d, rc));
	EG_CHECK_OK(eg_store_connect(eg_cluster_url(cluster), &s, &d));
	rc = eg_store_migrate(s, NULL, NULL, &d);
	EG_CHECK_MSG(rc == EG_OK, "migrate: %s", eg_diag_msg(&d, rc));
	eg_store_close(s);
}

/* Submits a grid given as YAML; returns its id. */
static int64_t submit(const char *yaml)
{
	eg_diag d = {{0}};
	eg_grid *g = NULL;
	eg_store *s = NULL;
	int64_t id = 0, n = 0;
	bool created;
	int rc;

	rc = eg_grid_parse(yaml, strlen(yaml), "t.yaml", &g, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	EG_CHECK_OK(eg_store_connect(eg_cluster_url(cluster), &s, &d));
	rc = eg_store_submit(s, g, &id, &created, &n, &d);
	EG_CHECK_MSG(rc == EG_OK, "submit: %s", eg_diag_msg(&d, rc));
	eg_store_close(s);
	eg_grid_free(g);
	return id;
}

/* ---- the coordinator process ---- */

static char *read_file(const char *path)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static bool log_has(const char *needle)
{
	char path[PATH_MAX + 32];
	const char *t;

	snprintf(path, sizeof(path), "%s/log/coordinator.log", home);
	t = read_file(path);
	return t != NULL && strstr(t, needle) != NULL;
}

static void wait_log(const char *needle, double timeout_s)
{
	double t0 = eg_test_now();

	while (!log_has(needle) && eg_test_now() - t0 < timeout_s)
		eg_test_sleep_ms(50);
	EG_CHECK_MSG(log_has(needle), "log lacks \"%s\"", needle);
}

/* Starts bin/expgrid-coordinator with extra options (NULL-terminated). */
static void start_coord(const char *a1, const char *a2, const char *a3,
			const char *a4)
{
	char addr[PATH_MAX + 32];
	const char *argv[16] = {"bin/expgrid-coordinator", "--lease-ms", "30000",
				"--log-level", "debug"};
	int argc = 5;
	double t0;
	char *t;

	snprintf(addr, sizeof(addr), "%s/run/coordinator.addr", home);
	unlink(addr);
	if (a1 != NULL)
		argv[argc++] = a1;
	if (a2 != NULL)
		argv[argc++] = a2;
	if (a3 != NULL)
		argv[argc++] = a3;
	if (a4 != NULL)
		argv[argc++] = a4;
	argv[argc] = NULL;
	/* EG_COORDINATOR: another build of the daemon (e.g. sanitized). */
	if (getenv("EG_COORDINATOR") != NULL)
		argv[0] = getenv("EG_COORDINATOR");
	coord = fork();
	EG_CHECK(coord >= 0);
	if (coord == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	t0 = eg_test_now();
	while ((t = read_file(addr)) == NULL && eg_test_now() - t0 < 10) {
		int st;

		EG_CHECK_MSG(waitpid(coord, &st, WNOHANG) == 0,
			     "coordinator exited early (status %d)", st);
		eg_test_sleep_ms(20);
	}
	EG_CHECK_MSG(t != NULL, "no %s", addr);
	EG_CHECK(strncmp(t, "127.0.0.1:", 10) == 0);
	coord_port = atoi(t + 10);
	EG_CHECK(coord_port > 0);
}

/* ---- a test client ---- */

struct client {
	int fd;
	eg_frame_dec *dec;
};

static int tcp_connect(void)
{
	struct sockaddr_in a = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	EG_CHECK(fd >= 0);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)coord_port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	EG_CHECK_MSG(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
		     "connect: %s", strerror(errno));
	return fd;
}

static void send_msg(struct client *c, const eg_msg *m)
{
	eg_diag d = {{0}};
	int rc = eg_proto_send(c->fd, m, 0, &d);

	EG_CHECK_MSG(rc == EG_OK, "send %s: %s", eg_msg_type_name(m->type),
		     eg_diag_msg(&d, rc));
}

/* Receives one message (m cleared first); returns the eg_err. */
static int recv_msg(struct client *c, eg_msg *m, int timeout_ms)
{
	eg_msg_clear(m);
	return eg_proto_recv(c->fd, c->dec, m, timeout_ms, NULL);
}

/* Connects and handshakes with `token`; returns EG_OK on WELCOME. */
static int client_open(struct client *c, const char *name,
		       const eg_proto_token *t)
{
	eg_msg m;
	int rc;

	c->fd = tcp_connect();
	EG_CHECK_OK(eg_frame_dec_new(0, &c->dec));
	eg_msg_init(&m, EG_MSG_HELLO);
	m.version = EG_PROTO_VERSION;
	m.role = strdup("worker");
	m.name = strdup(name);
	m.capabilities = eg_val_map();
	{
		eg_val *l = eg_val_list();

		eg_val_push(l, eg_val_str("cpu"));
		eg_val_set(m.capabilities, "target", l);
	}
	send_msg(c, &m);
	rc = recv_msg(c, &m, 5000);
	if (rc != EG_OK)
		goto out;
	EG_CHECK_INT(m.type, EG_MSG_CHALLENGE);
	{
		uint8_t nonce[EG_MSG_NONCE_LEN];

		memcpy(nonce, m.nonce, sizeof(nonce));
		eg_msg_clear(&m);
		eg_msg_init(&m, EG_MSG_PROOF);
		eg_proto_proof(t, nonce, m.proof);
	}
	send_msg(c, &m);
	rc = recv_msg(c, &m, 5000);
	if (rc == EG_OK && m.type != EG_MSG_WELCOME)
		rc = EG_EPROTO;
out:
	eg_msg_clear(&m);
	return rc;
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	eg_frame_dec_free(c->dec);
	c->dec = NULL;
}

static void want(struct client *c, int slots)
{
	eg_msg m;

	eg_msg_init(&m, EG_MSG_WANT);
	m.slots = slots;
	send_msg(c, &m);
}

/* Waits for an ASSIGN (skipping nothing else: any other type fails). */
static void expect_assign(struct client *c, int64_t *trial, int64_t *attempt,
			  int timeout_ms)
{
	eg_msg m;
	int rc;

	eg_msg_init(&m, EG_MSG_NONE);
	rc = recv_msg(c, &m, timeout_ms);
	EG_CHECK_MSG(rc == EG_OK, "no ASSIGN: %s", eg_err_name(rc));
	EG_CHECK_MSG(m.type == EG_MSG_ASSIGN, "got %s",
		     eg_msg_type_name(m.type));
	EG_CHECK_STR(eg_val_get_str(m.params, "kind", ""), "noop");
	EG_CHECK(m.lease_ms > 0);
	*trial = m.trial;
	*attempt = m.attempt;
	eg_msg_clear(&m);
}

static void expect_nothing(struct client *c, int timeout_ms)
{
	eg_msg m;
	int rc;

	eg_msg_init(&m, EG_MSG_NONE);
	rc = recv_msg(c, &m, timeout_ms);
	EG_CHECK_MSG(rc == EG_ETIMEOUT, "expected silence, got %s / %s",
		     eg_err_name(rc), eg_msg_type_name(m.type));
	eg_msg_clear(&m);
}

static void send_result(struct client *c, int64_t trial, int64_t attempt,
			double acc)
{
	eg_msg m;
	eg_val *metrics = eg_val_map(), *curve = eg_val_list(),
	       *e1 = eg_val_map();

	eg_msg_init(&m, EG_MSG_RESULT);
	m.trial = trial;
	m.attempt = attempt;
	m.payload = eg_val_map();
	eg_val_set_num(metrics, "test_acc", acc);
	eg_val_set_num(metrics, "wall_s", 0.25);
	eg_val_set(m.payload, "metrics", metrics);
	eg_val_set_int(e1, "epoch", 1);
	eg_val_set_num(e1, "train_loss", 0.5);
	eg_val_push(curve, e1);
	eg_val_set(m.payload, "curve", curve);
	send_msg(c, &m);
	eg_msg_clear(&m);
}

static void send_fail(struct client *c, int64_t trial, int64_t attempt,
		      const char *error)
{
	eg_msg m;

	eg_msg_init(&m, EG_MSG_FAIL);
	m.trial = trial;
	m.attempt = attempt;
	m.error = strdup(error);
	send_msg(c, &m);
	eg_msg_clear(&m);
}

static void expect_ack(struct client *c, int64_t trial, int64_t attempt,
		       int timeout_ms)
{
	eg_msg m;
	int rc;

	eg_msg_init(&m, EG_MSG_NONE);
	rc = recv_msg(c, &m, timeout_ms);
	EG_CHECK_MSG(rc == EG_OK, "no ACK: %s", eg_err_name(rc));
	EG_CHECK_MSG(m.type == EG_MSG_ACK, "got %s", eg_msg_type_name(m.type));
	EG_CHECK_INT(m.trial, trial);
	EG_CHECK_INT(m.attempt, attempt);
	eg_msg_clear(&m);
}

/* One whole WANT -> ASSIGN -> RESULT -> ACK cycle; returns the trial. */
static int64_t cycle(struct client *c, int timeout_ms)
{
	int64_t t, a;

	want(c, 1);
	expect_assign(c, &t, &a, timeout_ms);
	send_result(c, t, a, 0.5);
	expect_ack(c, t, a, timeout_ms);
	return t;
}

/* Whether the server closed fd within timeout_ms (EOF or reset). */
static bool closed_by_peer(int fd, int timeout_ms)
{
	double t0 = eg_test_now();
	char buf[4096];

	while ((eg_test_now() - t0) * 1000 < timeout_ms) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return true;
	}
	return false;
}

#define NOOP_GRID(name, n, extra)                                      \
	"name: " name "\ntrial: {kind: noop}\nsweep:\n  seed: [" n "]\n" extra

/* ---- tests ---- */

EG_TEST(handshake_cycle_and_semantics)
{
	struct client c = {-1, NULL}, bad = {-1, NULL};
	eg_proto_token *wrong = NULL;
	int64_t g1, t, a, t2, a2, first, second;
	char buf[256];
	eg_msg m;

	start_cluster();
	start_coord(NULL, NULL, NULL, NULL);

	/* Handshake, WELCOME, and the agent is registered. */
	EG_CHECK_OK(client_open(&c, "w1", tok));
	wait_sql("SELECT count(*) FROM agents WHERE name = 'w1' AND "
		 "state = 'connected' AND capabilities->'target' ? 'cpu'", 1, 5);

	/* A wrong token: no WELCOME, closed, logged. */
	EG_CHECK_OK(eg_proto_token_from("not-the-right-token-at-all", 26,
					&wrong, NULL));
	EG_CHECK(client_open(&bad, "intruder", wrong) != EG_OK);
	client_close(&bad);
	wait_log("authentication failed", 5);
	EG_CHECK(!log_has(TOKEN));

	/* A full cycle: results row, curve in metrics, trial done. */
	g1 = submit(NOOP_GRID("one", "7", "max_attempts: 2\n"));
	want(&c, 1);
	expect_assign(&c, &t, &a, 5000);
	EG_CHECK_INT(a, 1);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM trials WHERE id = %lld AND state = "
		 "'leased' AND lease_owner LIKE 'w1/%%'", (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	/* PROGRESS: metric rows located by epoch, and leased -> running. */
	{
		eg_msg pm;

		eg_msg_init(&pm, EG_MSG_PROGRESS);
		pm.trial = t;
		pm.attempt = a;
		pm.metrics = eg_val_map();
		eg_val_set_int(pm.metrics, "epoch", 3);
		eg_val_set_num(pm.metrics, "train_acc", 0.625);
		eg_val_set_str(pm.metrics, "note", "not a number: skipped");
		send_msg(&c, &pm);
		eg_msg_clear(&pm);
		snprintf(buf, sizeof(buf),
			 "SELECT count(*) FROM metrics WHERE trial_id = %lld AND "
			 "epoch = 3 AND name = 'train_acc' AND value = 0.625",
			 (long long)t);
		wait_sql(buf, 1, 5);
		EG_CHECK_INT(sql_int("SELECT count(*) FROM metrics WHERE "
				     "name IN ('note', 'epoch')"), 0);
		snprintf(buf, sizeof(buf),
			 "SELECT count(*) FROM trials WHERE id = %lld AND "
			 "state = 'running'", (long long)t);
		EG_CHECK_INT(sql_int(buf), 1);
	}
	send_result(&c, t, a, 0.875);
	expect_ack(&c, t, a, 5000);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM results r JOIN trials t ON t.id = "
		 "r.trial_id WHERE t.id = %lld AND t.state = 'done' AND "
		 "(r.metrics->>'test_acc')::float8 = 0.875 AND r.wall_s = 0.25 "
		 "AND r.agent = 'w1'", (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM metrics WHERE trial_id = %lld AND "
		 "name = 'train_loss' AND epoch = 1 AND value = 0.5",
		 (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM grids WHERE id = %lld AND state = 'done'",
		 (long long)g1);
	wait_sql(buf, 1, 5);

	/* The same RESULT twice: ACKed, still one row. */
	send_result(&c, t, a, 0.1);
	expect_ack(&c, t, a, 5000);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM results WHERE trial_id = %lld AND "
		 "(metrics->>'test_acc')::float8 = 0.875", (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results"), 1);
	wait_log("ignored (already finished)", 5);

	/* FAILs until max_attempts (2): pending, then failed. */
	submit(NOOP_GRID("fails", "1", "max_attempts: 2\n"));
	want(&c, 1);
	expect_assign(&c, &t, &a, 5000);
	EG_CHECK_INT(a, 1);
	send_fail(&c, t, a, "first failure");
	expect_ack(&c, t, a, 5000);
	want(&c, 1);
	expect_assign(&c, &t2, &a2, 5000);
	EG_CHECK_INT(t2, t);
	EG_CHECK_INT(a2, 2);
	send_fail(&c, t, a2, "second failure");
	expect_ack(&c, t, a2, 5000);
	snprintf(buf, sizeof(buf),
		 "SELECT last_error FROM trials WHERE id = %lld AND state = "
		 "'failed' AND attempts = 2", (long long)t);
	sql_text(buf, buf, sizeof(buf));
	EG_CHECK_STR(buf, "second failure");

	/* Priority first, then age: an older low-priority grid, a newer
	 * high-priority grid, then an even newer one of the same priority. */
	submit(NOOP_GRID("low", "1", "priority: 0\n"));
	submit(NOOP_GRID("high", "1", "priority: 5\n"));
	submit(NOOP_GRID("high2", "1", "priority: 5\n"));
	{
		const char *order[3] = {"high", "high2", "low"};

		for (int i = 0; i < 3; i++) {
			want(&c, 1);
			expect_assign(&c, &t, &a, 5000);
			snprintf(buf, sizeof(buf),
				 "SELECT g.name FROM trials t JOIN grids g ON "
				 "g.id = t.grid_id WHERE t.id = %lld",
				 (long long)t);
			sql_text(buf, buf, sizeof(buf));
			EG_CHECK_STR(buf, order[i]);
			send_result(&c, t, a, 0.5);
			expect_ack(&c, t, a, 5000);
		}
	}

	/* A dependency: the dependent trial is not leased before the one it
	 * depends on is done, and is leased as soon as it is. */
	submit(NOOP_GRID("deps", "1, 2", ""));
	sql_ok("UPDATE trials SET depends_on = (SELECT min(t.id) FROM trials t "
	       "JOIN grids g ON g.id = t.grid_id WHERE g.name = 'deps') "
	       "WHERE id = (SELECT max(t.id) FROM trials t JOIN grids g ON "
	       "g.id = t.grid_id WHERE g.name = 'deps')");
	first = sql_int("SELECT min(t.id) FROM trials t JOIN grids g ON g.id "
			"= t.grid_id WHERE g.name = 'deps'");
	second = sql_int("SELECT max(t.id) FROM trials t JOIN grids g ON "
			 "g.id = t.grid_id WHERE g.name = 'deps'");
	want(&c, 2);
	expect_assign(&c, &t, &a, 5000);
	EG_CHECK_INT(t, first);
	expect_nothing(&c, 700);
	send_result(&c, t, a, 0.5);
	expect_ack(&c, t, a, 5000);
	expect_assign(&c, &t, &a, 5000);
	EG_CHECK_INT(t, second);
	send_result(&c, t, a, 0.5);
	expect_ack(&c, t, a, 5000);

	/* Cancel: the holder of the grid's trials gets CANCEL for each. */
	{
		int64_t g = submit(NOOP_GRID("cancelme", "1, 2, 3", ""));
		int64_t held[2];
		eg_store *s = NULL;
		int64_t n = 0;
		int got = 0;

		want(&c, 2);
		expect_assign(&c, &held[0], &a, 5000);
		expect_assign(&c, &held[1], &a, 5000);
		EG_CHECK_OK(eg_store_connect(eg_cluster_url(cluster), &s, NULL));
		EG_CHECK_OK(eg_store_cancel(s, g, &n, NULL));
		eg_store_close(s);
		EG_CHECK_INT(n, 3);
		eg_msg_init(&m, EG_MSG_NONE);
		for (int i = 0; i < 2; i++) {
			EG_CHECK_OK(recv_msg(&c, &m, 5000));
			EG_CHECK_INT(m.type, EG_MSG_CANCEL);
			EG_CHECK(m.trial == held[0] || m.trial == held[1]);
			got++;
		}
		eg_msg_clear(&m);
		EG_CHECK_INT(got, 2);
		/* The worker answers FAIL "cancelled": ACKed, stays cancelled. */
		send_fail(&c, held[0], a, "cancelled");
		expect_ack(&c, held[0], a, 5000);
		snprintf(buf, sizeof(buf),
			 "SELECT count(*) FROM trials WHERE grid_id = %lld AND "
			 "state = 'cancelled'", (long long)g);
		EG_CHECK_INT(sql_int(buf), 3);
	}
	client_close(&c);
	eg_proto_token_free(wrong);
}

EG_TEST(version_mismatch_closed_with_reason)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct client c = {-1, NULL};
	eg_msg m;
	uint8_t hdr[4];
	int rc;

	start_cluster();
	start_coord("--max-conns", "3", NULL, NULL);
	c.fd = tcp_connect();
	EG_CHECK_OK(eg_frame_dec_new(0, &c.dec));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str_with_body(&pk, "type", 4);
	msgpack_pack_str_with_body(&pk, "HELLO", 5);
	msgpack_pack_str_with_body(&pk, "version", 7);
	msgpack_pack_int(&pk, 2);
	msgpack_pack_str_with_body(&pk, "role", 4);
	msgpack_pack_str_with_body(&pk, "worker", 6);
	msgpack_pack_str_with_body(&pk, "name", 4);
	msgpack_pack_str_with_body(&pk, "future", 6);
	msgpack_pack_str_with_body(&pk, "capabilities", 12);
	msgpack_pack_map(&pk, 0);
	eg_frame_put_len(hdr, (uint32_t)sb.size);
	EG_CHECK_INT(write(c.fd, hdr, 4), 4);
	EG_CHECK_INT(write(c.fd, sb.data, sb.size), (long long)sb.size);
	msgpack_sbuffer_destroy(&sb);
	eg_msg_init(&m, EG_MSG_NONE);
	rc = recv_msg(&c, &m, 5000);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_err_name(rc));
	EG_CHECK_INT(m.type, EG_MSG_BYE);
	EG_CHECK_MSG(m.reason != NULL && strstr(m.reason, "version 2") != NULL,
		     "%s", m.reason ? m.reason : "(none)");
	eg_msg_clear(&m);
	EG_CHECK(closed_by_peer(c.fd, 3000));
	wait_log("version", 3);
	client_close(&c);

	/* The connection cap (3 here): a fourth is accepted and closed at
	 * once, and a slot freed is usable again. */
	{
		int fds[3], extra;

		for (int i = 0; i < 3; i++)
			fds[i] = tcp_connect();
		eg_test_sleep_ms(200);
		extra = tcp_connect();
		EG_CHECK(closed_by_peer(extra, 2000));
		close(extra);
		EG_CHECK(!closed_by_peer(fds[0], 300));
		close(fds[2]);
		eg_test_sleep_ms(200);
		EG_CHECK_OK(client_open(&c, "fits", tok));
		client_close(&c);
		close(fds[0]);
		close(fds[1]);
		wait_log("refused: 3 connections open", 3);
	}
}

EG_TEST(no_token_refuses_to_start)
{
	char cmd[PATH_MAX + 200], *out = NULL;
	int st;

	snprintf(cmd, sizeof(cmd),
		 "EXPGRID_HOME=%s/nohome EXPGRID_TOKEN= "
		 "bin/expgrid-coordinator --log-file - 2>&1",
		 eg_test_tmpdir());
	st = eg_test_run(cmd, &out);
	EG_CHECK_INT(st, 1);
	EG_CHECK_MSG(out != NULL && strstr(out, "no token") != NULL &&
			     strstr(out, "expgrid up") != NULL,
		     "%s", out ? out : "");
	free(out);
	EG_CHECK(access(eg_test_path("nohome/run/coordinator.addr"), F_OK) != 0);
}

EG_TEST(lease_expiry_and_dropped_connection)
{
	struct client c = {-1, NULL}, d = {-1, NULL};
	int64_t t, a, t2, a2;
	char buf[256];

	start_cluster();
	start_coord("--lease-ms", "600", "--sweep-ms", "100");
	submit(NOOP_GRID("expire", "1", "max_attempts: 3\n"));
	EG_CHECK_OK(client_open(&c, "sleepy", tok));
	want(&c, 1);
	expect_assign(&c, &t, &a, 5000);
	EG_CHECK_INT(a, 1);
	/* No heartbeat: the lease expires and the trial comes back as
	 * attempt 2 to whoever asks. */
	EG_CHECK_OK(client_open(&d, "eager", tok));
	want(&d, 1);
	expect_assign(&d, &t2, &a2, 5000);
	EG_CHECK_INT(t2, t);
	EG_CHECK_INT(a2, 2);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM trials WHERE id = %lld AND attempts = 2 "
		 "AND lease_owner LIKE 'eager/%%'", (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	/* A heartbeat keeps attempt 2 alive well past lease_ms. */
	for (int i = 0; i < 6; i++) {
		eg_msg m;

		eg_msg_init(&m, EG_MSG_HEARTBEAT);
		m.nleases = 1;
		m.leases = calloc(1, sizeof(*m.leases));
		m.leases[0].trial = t;
		m.leases[0].attempt = a2;
		send_msg(&d, &m);
		eg_msg_clear(&m);
		eg_test_sleep_ms(200);
	}
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM trials WHERE id = %lld AND attempts = 2 "
		 "AND state = 'running'", (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	/* The late result of attempt 1 is still the first result. */
	send_result(&c, t, a, 0.25);
	expect_ack(&c, t, a, 5000);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM results WHERE trial_id = %lld AND "
		 "attempt = 1", (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	send_result(&d, t2, a2, 0.75);
	expect_ack(&d, t2, a2, 5000);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results"), 1);

	/* A dropped connection requeues at once (long before expiry). */
	submit(NOOP_GRID("drop", "1", ""));
	want(&c, 1);
	expect_assign(&c, &t, &a, 5000);
	client_close(&c);
	want(&d, 1);
	expect_assign(&d, &t2, &a2, 3000);
	EG_CHECK_INT(t2, t);
	EG_CHECK_INT(a2, 2);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM agents WHERE name = 'sleepy' AND "
		 "state = 'disconnected'");
	wait_sql(buf, 1, 5);
	client_close(&d);
}

static void raw_write(int fd, const void *p, size_t n)
{
	EG_CHECK_INT(write(fd, p, n), (long long)n);
}

EG_TEST(hostile_clients_do_no_harm)
{
	static int idle[200];
	struct client good = {-1, NULL}, c = {-1, NULL};
	double t0;
	eg_msg m;

	start_cluster();
	start_coord("--handshake-timeout-ms", "1500", NULL, NULL);
	submit(NOOP_GRID("many", "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", ""));
	EG_CHECK_OK(client_open(&good, "good", tok));
	cycle(&good, 2000);

	/* Garbage bytes. */
	{
		int fd = tcp_connect();

		raw_write(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
		EG_CHECK(closed_by_peer(fd, 3000));
		close(fd);
	}
	cycle(&good, 2000);
	/* A 2 GiB length prefix: closed before any body arrives. */
	{
		int fd = tcp_connect();

		raw_write(fd, "\x80\x00\x00\x00", 4);
		EG_CHECK(closed_by_peer(fd, 3000));
		close(fd);
	}
	cycle(&good, 2000);
	/* Bad msgpack: 0xc1 is never valid. */
	{
		int fd = tcp_connect();

		raw_write(fd, "\x00\x00\x00\x02\xc1\xc1", 6);
		EG_CHECK(closed_by_peer(fd, 3000));
		close(fd);
	}
	cycle(&good, 2000);
	/* WANT before the handshake. */
	c.fd = tcp_connect();
	EG_CHECK_OK(eg_frame_dec_new(0, &c.dec));
	want(&c, 5);
	EG_CHECK(closed_by_peer(c.fd, 3000));
	client_close(&c);
	/* A forged HELLO: HELLO, then WANT instead of PROOF. */
	c.fd = tcp_connect();
	EG_CHECK_OK(eg_frame_dec_new(0, &c.dec));
	eg_msg_init(&m, EG_MSG_HELLO);
	m.version = EG_PROTO_VERSION;
	m.role = strdup("worker");
	m.name = strdup("forger");
	m.capabilities = eg_val_map();
	send_msg(&c, &m);
	EG_CHECK_OK(recv_msg(&c, &m, 3000));
	EG_CHECK_INT(m.type, EG_MSG_CHALLENGE);
	eg_msg_clear(&m);
	want(&c, 5);
	EG_CHECK(closed_by_peer(c.fd, 3000));
	client_close(&c);
	/* ... and HELLO then a wrong PROOF (all zero). */
	c.fd = tcp_connect();
	EG_CHECK_OK(eg_frame_dec_new(0, &c.dec));
	eg_msg_init(&m, EG_MSG_HELLO);
	m.version = EG_PROTO_VERSION;
	m.role = strdup("worker");
	m.name = strdup("forger");
	m.capabilities = eg_val_map();
	send_msg(&c, &m);
	EG_CHECK_OK(recv_msg(&c, &m, 3000));
	eg_msg_clear(&m);
	eg_msg_init(&m, EG_MSG_PROOF);
	send_msg(&c, &m);
	EG_CHECK(closed_by_peer(c.fd, 3000));
	client_close(&c);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM agents WHERE name = "
			     "'forger'"), 0);
	/* An agent sending a CANCEL (coordinator-only) is dropped. */
	EG_CHECK_OK(client_open(&c, "confused", tok));
	eg_msg_init(&m, EG_MSG_CANCEL);
	m.trial = 1;
	send_msg(&c, &m);
	EG_CHECK(closed_by_peer(c.fd, 3000));
	client_close(&c);
	cycle(&good, 2000);

	/* A RESULT that PostgreSQL could not store (not UTF-8) becomes a
	 * FAIL of that attempt, is ACKed, and poisons no batch. */
	{
		int64_t t, a;
		char q[256];

		want(&good, 1);
		expect_assign(&good, &t, &a, 2000);
		eg_msg_init(&m, EG_MSG_RESULT);
		m.trial = t;
		m.attempt = a;
		m.payload = eg_val_map();
		eg_val_set_str(m.payload, "note", "bad \xff\xfe bytes");
		send_msg(&good, &m);
		eg_msg_clear(&m);
		expect_ack(&good, t, a, 3000);
		snprintf(q, sizeof(q),
			 "SELECT count(*) FROM trials WHERE id = %lld AND "
			 "last_error = 'result payload is not valid UTF-8'",
			 (long long)t);
		EG_CHECK_INT(sql_int(q), 1);
		cycle(&good, 2000);
	}

	/* 200 idle connections at once: the good client is still served
	 * quickly, and the idle ones are closed at the handshake timeout. */
	for (int i = 0; i < 200; i++)
		idle[i] = tcp_connect();
	t0 = eg_test_now();
	cycle(&good, 2000);
	EG_CHECK_MSG(eg_test_now() - t0 < 1.0, "cycle took %.3f s", eg_test_now() - t0);
	for (int i = 0; i < 200; i++) {
		EG_CHECK_MSG(closed_by_peer(idle[i], 4000),
			     "idle connection %d still open", i);
		close(idle[i]);
	}
	cycle(&good, 2000);
	wait_log("handshake timeout", 2);
	wait_log("bad frame", 2);
	EG_CHECK(kill(coord, 0) == 0);
	client_close(&good);
}

EG_TEST(kill9_then_restart_records_once)
{
	struct client c = {-1, NULL};
	int64_t t, a, t2, a2;
	char buf[256];

	start_cluster();
	start_coord(NULL, NULL, NULL, NULL);
	submit(NOOP_GRID("crash", "1, 2, 3", ""));
	EG_CHECK_OK(client_open(&c, "survivor", tok));
	want(&c, 2);
	expect_assign(&c, &t, &a, 5000);
	expect_assign(&c, &t2, &a2, 5000);
	kill(coord, SIGKILL);
	waitpid(coord, NULL, 0);
	coord = -1;
	client_close(&c);
	/* The leases outlive the process: nothing is lost or doubled. */
	EG_CHECK_INT(sql_int("SELECT count(*) FROM trials WHERE state = "
			     "'leased'"), 2);
	start_coord(NULL, NULL, NULL, NULL);
	EG_CHECK_OK(client_open(&c, "survivor", tok));
	/* Resend the finished one twice (the worker kept it, unACKed). */
	send_result(&c, t, a, 0.5);
	expect_ack(&c, t, a, 5000);
	send_result(&c, t, a, 0.5);
	expect_ack(&c, t, a, 5000);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM results WHERE trial_id = %lld",
		 (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	/* The other lease is adopted by a heartbeat and finished. */
	{
		eg_msg m;

		eg_msg_init(&m, EG_MSG_HEARTBEAT);
		m.nleases = 1;
		m.leases = calloc(1, sizeof(*m.leases));
		m.leases[0].trial = t2;
		m.leases[0].attempt = a2;
		send_msg(&c, &m);
		eg_msg_clear(&m);
	}
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM trials WHERE id = %lld AND state = "
		 "'running'", (long long)t2);
	wait_sql(buf, 1, 5);
	send_result(&c, t2, a2, 0.5);
	expect_ack(&c, t2, a2, 5000);
	/* The third trial is served by the new process. */
	cycle(&c, 5000);
	wait_sql("SELECT count(*) FROM grids WHERE name = 'crash' AND state "
		 "= 'done'", 1, 5);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results"), 3);
	client_close(&c);
}

EG_TEST(postgres_restart_underneath)
{
	struct client c = {-1, NULL};
	eg_diag d = {{0}};
	int64_t t, a;
	char buf[256];
	int rc;

	start_cluster();
	start_coord(NULL, NULL, NULL, NULL);
	submit(NOOP_GRID("pgdown", "1, 2, 3", ""));
	EG_CHECK_OK(client_open(&c, "patient", tok));
	cycle(&c, 5000);
	want(&c, 1);
	expect_assign(&c, &t, &a, 5000);
	EG_CHECK_OK(eg_cluster_stop(cluster, NULL, &d));
	/* The result arrives while the database is away. */
	send_result(&c, t, a, 0.5);
	eg_test_sleep_ms(500);
	EG_CHECK(kill(coord, 0) == 0);
	rc = eg_cluster_start(cluster, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	expect_ack(&c, t, a, 15000);
	snprintf(buf, sizeof(buf),
		 "SELECT count(*) FROM results WHERE trial_id = %lld",
		 (long long)t);
	EG_CHECK_INT(sql_int(buf), 1);
	cycle(&c, 5000);
	wait_log("database: reconnected", 5);
	client_close(&c);
}

EG_TEST(idle_timeout_never_below_a_lease)
{
	struct client c = {-1, NULL};
	int64_t t, a;

	/* Asked for a 300 ms idle timeout with 1.5 s leases, the coordinator
	 * keeps a computing agent that is silent for 0.8 s: agents only
	 * heartbeat every lease / 3. */
	start_cluster();
	start_coord("--lease-ms", "1500", "--idle-timeout-ms", "300");
	submit(NOOP_GRID("quiet", "1", ""));
	EG_CHECK_OK(client_open(&c, "quiet", tok));
	want(&c, 1);
	expect_assign(&c, &t, &a, 5000);
	eg_test_sleep_ms(800);
	send_result(&c, t, a, 0.5);
	expect_ack(&c, t, a, 5000);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results"), 1);
	client_close(&c);
}

EG_TEST(sigterm_drains_and_exits)
{
	struct client c = {-1, NULL};
	char addr[PATH_MAX + 32], pid[PATH_MAX + 32];
	int64_t t, a;
	int st = 0;
	double t0;

	start_cluster();
	start_coord("--drain-ms", "8000", NULL, NULL);
	submit(NOOP_GRID("drain", "1, 2, 3", ""));
	snprintf(addr, sizeof(addr), "%s/run/coordinator.addr", home);
	snprintf(pid, sizeof(pid), "%s/run/coordinator.pid", home);
	EG_CHECK(access(pid, R_OK) == 0);
	EG_CHECK_OK(client_open(&c, "drainee", tok));
	want(&c, 1);
	expect_assign(&c, &t, &a, 5000);
	kill(coord, SIGTERM);
	wait_log("draining", 5);
	/* No new leases while draining. */
	want(&c, 2);
	expect_nothing(&c, 500);
	EG_CHECK(waitpid(coord, &st, WNOHANG) == 0);
	/* The in-flight result is still taken, then it exits at once. */
	send_result(&c, t, a, 0.5);
	expect_ack(&c, t, a, 5000);
	t0 = eg_test_now();
	while (waitpid(coord, &st, WNOHANG) == 0 && eg_test_now() - t0 < 5)
		eg_test_sleep_ms(20);
	EG_CHECK_MSG(eg_test_now() - t0 < 5, "no exit after the drain");
	coord = -1;
	EG_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	EG_CHECK(access(addr, F_OK) != 0);
	EG_CHECK(access(pid, F_OK) != 0);
	EG_CHECK_INT(sql_int("SELECT count(*) FROM results"), 1);
	client_close(&c);
}

EG_TEST_MAIN({"handshake_cycle_and_semantics", handshake_cycle_and_semantics,
	      60},
	     {"version_mismatch_closed_with_reason",
	      version_mismatch_closed_with_reason, 30},
	     {"no_token_refuses_to_start", no_token_refuses_to_start, 10},
	     {"lease_expiry_and_dropped_connection",
	      lease_expiry_and_dropped_connection, 40},
	     {"hostile_clients_do_no_harm", hostile_clients_do_no_harm, 60},
	     {"kill9_then_restart_records_once",
	      kill9_then_restart_records_once, 40},
	     {"postgres_restart_underneath", postgres_restart_underneath, 60},
	     {"idle_timeout_never_below_a_lease",
	      idle_timeout_never_below_a_lease, 30},
	     {"sigterm_drains_and_exits", sigterm_drains_and_exits, 40})
