/* test_hwagent.c - the hardware agent's pieces without a stack: the boards
 * file, the journal, the sim and exec backends' health checks and the
 * trained network as data (trials/coverify.h). */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hwagent/hwagent_int.h"
#include "kernels/net.h"
#include "tests/harness.h"

static int parse(const char *text, eg__hw_spec **s, size_t *n, eg_diag *d)
{
	return eg__hw_specs_parse(text, strlen(text), "b.yaml", s, n, d);
}

EG_TEST(boards_file_parses)
{
	const char *text =
		"boards:\n"
		"  - name: sim0\n"
		"    type: sim16\n"
		"    backend: sim\n"
		"    options: {word_bits: 16, int_bits: 6, round: rnd, overflow: sat,\n"
		"              parallelism: 32, clock_mhz: 100, timeout_ms: 500,\n"
		"              fault: {layer: 3, kind: stuck1, bit: 2}}\n"
		"  - name: pynq-0\n"
		"    type: pynq.z2\n"
		"    backend: exec\n"
		"    maintenance: true\n"
		"    options: {command: [python3, board.py, --fast], workdir: /tmp,\n"
		"              word_bits: 8, int_bits: 4}\n";
	eg__hw_spec *s = NULL;
	eg_diag d = {{0}};
	size_t n = 0;
	int rc = parse(text, &s, &n, &d);

	EG_CHECK_MSG(rc == EG_OK, "%s", d.msg);
	EG_CHECK_INT(n, 2);
	EG_CHECK_STR(s[0].name, "sim0");
	EG_CHECK_STR(s[0].type, "sim16");
	EG_CHECK(s[0].backend == EG__HW_SIM && !s[0].maintenance);
	EG_CHECK_INT(s[0].cfg.types.act.w, 16);
	EG_CHECK_INT(s[0].cfg.types.act.i, 6);
	EG_CHECK(s[0].cfg.types.act.round == EG_FX_RND);
	EG_CHECK(s[0].cfg.types.act.ovf == EG_FX_SAT);
	EG_CHECK_INT(s[0].cfg.parallelism, 32);
	EG_CHECK_NEAR(s[0].cfg.clock_mhz, 100, 0);
	EG_CHECK_INT(s[0].timeout_ms, 500);
	EG_CHECK(s[0].has_fault && s[0].fault.layer == 3 &&
		 s[0].fault.kind == EG_BOARD_FAULT_STUCK1 && s[0].fault.bit == 2 &&
		 s[0].fault.rate == 1);
	EG_CHECK(s[1].backend == EG__HW_EXEC && s[1].maintenance);
	EG_CHECK_STR(s[1].argv[0], "python3");
	EG_CHECK_STR(s[1].argv[2], "--fast");
	EG_CHECK(s[1].argv[3] == NULL);
	EG_CHECK_STR(s[1].workdir, "/tmp");
	EG_CHECK_INT(s[1].cfg.types.act.w, 8);
	/* Defaults: the cost model's and the watchdog's. */
	EG_CHECK_INT(s[1].cfg.parallelism, EG_BOARD_DEFAULT_PARALLELISM);
	EG_CHECK_INT(s[1].timeout_ms, EG__HW_TIMEOUT_MS_DEFAULT);
	eg__hw_specs_free(s, n);
}

/* Each bad file fails with its code and a message holding `want`. */
static void bad(const char *text, int code, const char *want)
{
	eg__hw_spec *s = NULL;
	eg_diag d = {{0}};
	size_t n = 7;
	int rc = parse(text, &s, &n, &d);

	EG_CHECK_MSG(rc == code, "%s: got %d (%s), want %d", text, rc, d.msg,
		     code);
	EG_CHECK_MSG(strstr(d.msg, want) != NULL, "'%s' lacks '%s'", d.msg,
		     want);
	EG_CHECK(s == NULL && n == 0);
}

EG_TEST(boards_file_errors_name_the_place)
{
	bad("boards: []\n", EG_EINVAL, "non-empty list");
	bad("board: []\n", EG_EUNKNOWN_KEY, "b.yaml:1:");
	bad("boards:\n  - {name: a, type: t, colour: red}\n", EG_EUNKNOWN_KEY,
	    "b.yaml:2:");
	bad("boards:\n  - {name: a, type: t}\n  - {name: a, type: u}\n",
	    EG_EINVAL, "used twice");
	bad("boards:\n  - {name: a, type: t, backend: fpga}\n", EG_EINVAL,
	    "backend 'fpga'");
	bad("boards:\n  - {name: a, type: t, backend: exec}\n", EG_EINVAL,
	    "needs options.command");
	/* Options of the other backend are refused, not ignored. */
	bad("boards:\n  - {name: a, type: t, options: {command: [x]}}\n",
	    EG_EUNKNOWN_KEY, "unknown key 'command'");
	bad("boards:\n  - {name: a, type: t, backend: exec, options: "
	    "{command: [x], hang: true}}\n",
	    EG_EUNKNOWN_KEY, "unknown key 'hang'");
	bad("boards:\n  - {name: a, type: t, options: {word_bits: sixteen}}\n",
	    EG_ETYPE, "b.yaml:2:");
	bad("boards:\n  - {name: a, type: t, options: {round: up}}\n",
	    EG_EINVAL, "board a");
	bad("boards:\n  - {name: a, type: t, options: {fault: {layer: 1}}}\n",
	    EG_EINVAL, "kind");
	bad("boards:\n  - {name: 'a b', type: t}\n", EG_EINVAL, "board name");
	bad("boards:\n  - {name: a, type: t, options: {timeout_ms: 0}}\n",
	    EG_ERANGE, "timeout_ms");
}

static size_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : (size_t)-1;
}

EG_TEST(journal_keeps_until_ack_and_survives_reopen)
{
	const char *path = eg_test_path("j.journal");
	char p2[4096];
	eg__journal *j = NULL;
	eg_diag d = {{0}};
	int64_t t = 0, a = 0;
	bool found;

	snprintf(p2, sizeof(p2), "%s", path);
	EG_CHECK_OK(eg__journal_open(p2, &j, &d));
	EG_CHECK_INT(eg__journal_count(j), 0);
	EG_CHECK_OK(eg__journal_append(j, 5, 1, "frame-five", 10, &d));
	EG_CHECK_OK(eg__journal_append(j, 6, 2, "frame-six!!", 11, &d));
	EG_CHECK_OK(eg__journal_append(j, 7, 1, "seven", 5, &d));
	EG_CHECK_INT(file_size(p2), 3 * 24 + 10 + 11 + 5);
	/* The same [trial, attempt] again replaces, it does not add. */
	EG_CHECK_OK(eg__journal_append(j, 6, 2, "six-again", 9, &d));
	EG_CHECK_INT(eg__journal_count(j), 3);
	EG_CHECK_OK(eg__journal_ack(j, 5, 1, &found, &d));
	EG_CHECK(found);
	EG_CHECK_OK(eg__journal_ack(j, 5, 1, &found, &d));
	EG_CHECK(!found);
	EG_CHECK_OK(eg__journal_ack(j, 7, 2, &found, &d)); /* other attempt */
	EG_CHECK(!found);
	eg__journal_close(j);

	/* What was not ACKed is there after a restart, in order. */
	EG_CHECK_OK(eg__journal_open(p2, &j, &d));
	EG_CHECK_INT(eg__journal_count(j), 2);
	EG_CHECK_INT(eg__journal_dropped(j), 0);
	{
		const eg_buf *f0 = eg__journal_at(j, 0, &t, &a);

		EG_CHECK(t == 7 && a == 1 && f0->len == 5 &&
			 memcmp(f0->data, "seven", 5) == 0);
	}
	{
		const eg_buf *f1 = eg__journal_at(j, 1, &t, &a);

		EG_CHECK(t == 6 && a == 2 && f1->len == 9 &&
			 memcmp(f1->data, "six-again", 9) == 0);
	}
	EG_CHECK_OK(eg__journal_ack(j, 7, 1, NULL, &d));
	EG_CHECK_OK(eg__journal_ack(j, 6, 2, NULL, &d));
	EG_CHECK_INT(file_size(p2), 0);
	eg__journal_close(j);
}

EG_TEST(journal_drops_a_torn_tail)
{
	const char *path = eg_test_path("t.journal");
	char p2[4096];
	eg__journal *j = NULL;
	eg_diag d = {{0}};
	size_t whole;
	int fd;

	snprintf(p2, sizeof(p2), "%s", path);
	EG_CHECK_OK(eg__journal_open(p2, &j, &d));
	EG_CHECK_OK(eg__journal_append(j, 1, 1, "first", 5, &d));
	EG_CHECK_OK(eg__journal_append(j, 2, 1, "second", 6, &d));
	eg__journal_close(j);
	whole = file_size(p2);
	/* A crash in the middle of the second append. */
	EG_CHECK(truncate(p2, (off_t)(whole - 3)) == 0);
	EG_CHECK_OK(eg__journal_open(p2, &j, &d));
	EG_CHECK_INT(eg__journal_count(j), 1);
	EG_CHECK_INT(eg__journal_dropped(j), 1);
	EG_CHECK_INT(file_size(p2), 24 + 5);
	EG_CHECK_OK(eg__journal_append(j, 3, 1, "third", 5, &d));
	eg__journal_close(j);
	/* A flipped byte in a record ends the readable part there. */
	fd = open(p2, O_WRONLY);
	EG_CHECK(fd >= 0 && pwrite(fd, "X", 1, 24 + 2) == 1);
	close(fd);
	EG_CHECK_OK(eg__journal_open(p2, &j, &d));
	EG_CHECK_INT(eg__journal_count(j), 0);
	eg__journal_close(j);
}

static const char *spec_text(const char *body)
{
	static char text[2048];

	snprintf(text, sizeof(text), "boards:\n%s", body);
	return text;
}

/* Opens one board from a one-board file and runs its health check. */
static int health_of(const char *body, eg_diag *d)
{
	eg__hw_spec *s = NULL;
	size_t n = 0;
	eg__board b;
	int rc;

	EG_CHECK_OK(parse(spec_text(body), &s, &n, d));
	rc = eg__board_init(&b, &s[0], d);
	if (rc == EG_OK)
		rc = eg__board_check(&b, d);
	eg__board_fini(&b);
	eg__hw_specs_free(s, n);
	return rc;
}

EG_TEST(sim_board_health)
{
	eg_diag d = {{0}};

	EG_CHECK_OK(health_of("  - {name: a, type: t, options: {round: rnd}}\n",
			      &d));
	/* A stuck bit in the known-answer network's layers fails it. */
	EG_CHECK_INT(health_of("  - {name: a, type: t, options: {fault: "
			       "{layer: 1, kind: stuck1, bit: 12}}}\n", &d),
		     EG_ECORRUPT);
	/* A hang board answers when idle (it hangs once it has work). */
	EG_CHECK_OK(health_of("  - {name: a, type: t, options: {hang: true}}\n",
			      &d));
}

EG_TEST(exec_board_health_and_bad_scripts)
{
	char body[2048], cwd[1024];
	eg_diag d = {{0}};
	int rc;

	EG_CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	if (access("/usr/bin/python3", X_OK) != 0)
		EG_SKIP("python3 is not installed");
	/* The documented example script is a correct board, for several
	 * types. */
	snprintf(body, sizeof(body),
		 "  - {name: a, type: t, backend: exec, options: {command: "
		 "[python3, %s/docs/examples/board_exec_example.py], "
		 "word_bits: 8, int_bits: 4, round: trn, overflow: wrap, "
		 "workdir: %s}}\n", cwd, eg_test_tmpdir());
	rc = health_of(body, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", d.msg);
	snprintf(body, sizeof(body),
		 "  - {name: a, type: t, backend: exec, options: {command: "
		 "[python3, %s/docs/examples/board_exec_example.py], "
		 "word_bits: 12, int_bits: 3, round: rnd_conv, overflow: "
		 "sat_sym, accum_bits: 20, accum_int_bits: 6}}\n", cwd);
	rc = health_of(body, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", d.msg);
	/* Garbage output: a clear error naming the board and the rule. */
	eg_test_write_file("junk.sh", "echo '{\"outputs\": 7}' > \"$1/outputs.json\"\n");
	snprintf(body, sizeof(body),
		 "  - {name: junk, type: t, backend: exec, options: {command: "
		 "[sh, %s]}}\n", eg_test_path("junk.sh"));
	rc = health_of(body, &d);
	EG_CHECK_INT(rc, EG_ECORRUPT);
	EG_CHECK_MSG(strstr(d.msg, "board junk: malformed output") != NULL &&
			     strstr(d.msg, "`outputs` must be a list of 3 "
					   "layers") != NULL,
		     "%s", d.msg);
	/* Not JSON at all. */
	eg_test_write_file("nojson.sh", "echo 'hello' > \"$1/outputs.json\"\n");
	snprintf(body, sizeof(body),
		 "  - {name: nj, type: t, backend: exec, options: {command: "
		 "[sh, %s]}}\n", eg_test_path("nojson.sh"));
	EG_CHECK_INT(health_of(body, &d), EG_ECORRUPT);
	/* Exit status. */
	eg_test_write_file("fail.sh", "echo broken >&2; exit 3\n");
	snprintf(body, sizeof(body),
		 "  - {name: f, type: t, backend: exec, options: {command: "
		 "[sh, %s]}}\n", eg_test_path("fail.sh"));
	EG_CHECK_INT(health_of(body, &d), EG_ECHILD);
	EG_CHECK_MSG(strstr(d.msg, "exited with status 3") != NULL &&
			     strstr(d.msg, "broken") != NULL,
		     "%s", d.msg);
	/* A command that never ends is killed at its timeout. */
	eg_test_write_file("slow.sh", "sleep 30\n");
	snprintf(body, sizeof(body),
		 "  - {name: s, type: t, backend: exec, options: {command: "
		 "[sh, %s], timeout_ms: 300}}\n", eg_test_path("slow.sh"));
	EG_CHECK_INT(health_of(body, &d), EG_ETIMEOUT);
	EG_CHECK_MSG(strstr(d.msg, "timed out after 300 ms") != NULL, "%s",
		     d.msg);
}

/* A relative workdir: the command runs inside the job directory, so the
 * directory it is given must still name that directory from there. */
EG_TEST(exec_board_relative_workdir)
{
	char body[2048], cwd[1024];
	eg_diag d = {{0}};
	int rc;

	EG_CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	if (access("/usr/bin/python3", X_OK) != 0)
		EG_SKIP("python3 is not installed");
	EG_CHECK(chdir(eg_test_tmpdir()) == 0);
	EG_CHECK(mkdir("jobs", 0755) == 0);
	snprintf(body, sizeof(body),
		 "  - {name: a, type: t, backend: exec, options: {command: "
		 "[python3, %s/docs/examples/board_exec_example.py], "
		 "workdir: jobs}}\n", cwd);
	rc = health_of(body, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", d.msg);
}

/* A fresh EXPGRID_HOME (a board host other than the coordinator's has no
 * run/ directory) is enough to start; an unreachable "[v6]:port"
 * coordinator is then named as given, brackets included. */
EG_TEST(fresh_home_and_unreachable_v6_coordinator)
{
	char cmd[4096], *out = NULL;
	const char *boards = eg_test_write_file(
		"boards.yaml", "boards:\n  - {name: s0, type: t}\n");

	setenv("EXPGRID_TOKEN", "0123456789abcdef0123456789abcdef", 1);
	setenv("EXPGRID_HOME", eg_test_tmpdir(), 1);
	snprintf(cmd, sizeof(cmd),
		 "timeout -s TERM 2 bin/expgrid-hwagent --boards %s "
		 "--coordinator '[::1]:1' --log-file - 2>&1", boards);
	eg_test_run(cmd, &out);
	EG_CHECK(out != NULL);
	EG_CHECK_MSG(strstr(out, "cannot reach the coordinator") != NULL,
		     "%s", out);
	EG_CHECK_MSG(strstr(out, "cannot reach the coordinator: connect "
				 "[::1]:1: ") != NULL,
		     "%s", out);
	free(out);
}

EG_TEST(network_as_data_round_trips)
{
	eg_net_config c;
	eg_net *a = NULL, *b = NULL;
	eg_val *res = eg_val_map();
	eg_diag d = {{0}};
	float *wa, *ba, *wb, *bb;
	size_t nwa, nba, nwb, nbb;

	eg_net_config_default(&c);
	c.n_in = 7;
	c.n_hidden = 1;
	c.hidden[0] = 5;
	c.n_out = 3;
	c.seed = 1;
	EG_CHECK_OK(eg_net_create(&c, &a, &d));
	c.seed = 2;
	EG_CHECK_OK(eg_net_create(&c, &b, &d));
	EG_CHECK_OK(eg_coverify_network_export(a, res, &d));
	EG_CHECK_OK(eg_coverify_network_import(eg_val_get(res, "network"), b,
					       &d));
	for (int l = 0; l < 2; l++) {
		EG_CHECK_OK(eg_net_params(a, l, &wa, &nwa, &ba, &nba));
		EG_CHECK_OK(eg_net_params(b, l, &wb, &nwb, &bb, &nbb));
		EG_CHECK(nwa == nwb && nba == nbb);
		EG_CHECK(memcmp(wa, wb, nwa * sizeof(float)) == 0);
		EG_CHECK(memcmp(ba, bb, nba * sizeof(float)) == 0);
	}
	eg_net_free(b);
	/* Another shape is refused with the layer named. */
	c.hidden[0] = 6;
	EG_CHECK_OK(eg_net_create(&c, &b, &d));
	EG_CHECK_INT(eg_coverify_network_import(eg_val_get(res, "network"), b,
						&d),
		     EG_EINVAL);
	EG_CHECK_MSG(strstr(d.msg, "network layer 0") != NULL, "%s", d.msg);
	eg_net_free(a);
	eg_net_free(b);
	eg_val_free(res);
}

EG_TEST_MAIN({"boards_file_parses", boards_file_parses, 10},
	     {"boards_file_errors_name_the_place",
	      boards_file_errors_name_the_place, 10},
	     {"journal_keeps_until_ack_and_survives_reopen",
	      journal_keeps_until_ack_and_survives_reopen, 10},
	     {"journal_drops_a_torn_tail", journal_drops_a_torn_tail, 10},
	     {"sim_board_health", sim_board_health, 10},
	     {"exec_board_health_and_bad_scripts",
	      exec_board_health_and_bad_scripts, 30},
	     {"exec_board_relative_workdir", exec_board_relative_workdir, 30},
	     {"fresh_home_and_unreachable_v6_coordinator",
	      fresh_home_and_unreachable_v6_coordinator, 10},
	     {"network_as_data_round_trips", network_as_data_round_trips, 10})
