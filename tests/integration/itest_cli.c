/*
 * itest_cli.c - the `expgrid` binary as a user runs it: expand and
 * run --local output parsed back as JSON (by Python's json module, an
 * independent parser), exit codes, and error messages naming file:line:col.
 */
#include "tests/harness.h"

static const char *small_grid(void)
{
	return eg_test_write_file("small.yaml",
		"name: small\n"
		"trial:\n"
		"  dataset: {name: blobs, dim: 10, num_classes: 3, spread: 0.5, train_size: 300, test_size: 150}\n"
		"  model: {hidden: [16]}\n"
		"  train: {epochs: 3, lr: 0.05, batch: 32}\n"
		"sweep:\n"
		"  train.algo: [bp, dfa]\n"
		"  seed: [0, 1]\n"
		"exclude:\n"
		"  - {train.algo: dfa, seed: 1}\n");
}

EG_TEST(expand_prints_parseable_json_lines)
{
	char *out = NULL, cmd[8192];
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "bin/expgrid expand grids/memorization.yaml | python3 -c '"
		 "import sys, json\n"
		 "rows = [json.loads(l) for l in sys.stdin]\n"
		 "assert [r[\"index\"] for r in rows] == list(range(30)), rows\n"
		 "assert len({r[\"key\"] for r in rows}) == 30\n"
		 "p = rows[0][\"params\"]\n"
		 "assert p[\"model\"][\"hidden\"] == [1024] and p[\"model\"][\"bias\"] is False\n"
		 "assert p[\"init\"][\"scheme\"] == \"normal\"\n"
		 "assert set(r[\"params\"][\"model\"][\"activation\"] for r in rows) == {\"sin\", \"relu\"}\n"
		 "print(\"ok\", len(rows))'");
	rc = eg_test_run(cmd, &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "ok 30") != NULL, "rc %d: %s", rc, out);
	free(out);
}

EG_TEST(expand_set_overrides)
{
	char *out = NULL, cmd[8192];
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "bin/expgrid expand grids/memorization.yaml --set model.activation=sin "
		 "--set train.epochs=3 | python3 -c '"
		 "import sys, json\n"
		 "rows = [json.loads(l) for l in sys.stdin]\n"
		 "assert len(rows) == 15, len(rows)\n"
		 "assert all(r[\"params\"][\"train\"][\"epochs\"] == 3 for r in rows)\n"
		 "print(\"ok\")'");
	rc = eg_test_run(cmd, &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "ok") != NULL, "rc %d: %s", rc, out);
	free(out);
}

EG_TEST(bad_grid_exits_2_naming_position)
{
	const char *path = eg_test_write_file("bad.yaml",
		"name: bad\n"
		"trial:\n"
		"  train: {lr: -1}\n");
	char *out = NULL, cmd[8192];
	int rc;

	snprintf(cmd, sizeof(cmd), "bin/expgrid expand %s", path);
	rc = eg_test_run(cmd, &out);
	EG_CHECK_INT(rc, 2);
	EG_CHECK_MSG(strstr(out, "expgrid: ") == out, "%s", out);
	EG_CHECK_MSG(strstr(out, "bad.yaml:3:") != NULL, "%s", out);
	EG_CHECK_MSG(strstr(out, "train.lr") != NULL, "%s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "bin/expgrid run %s --local", path);
	EG_CHECK_INT(eg_test_run(cmd, NULL), 2);
	EG_CHECK_INT(eg_test_run("bin/expgrid expand /nonexistent/grid.yaml", &out), 2);
	EG_CHECK_MSG(strstr(out, "/nonexistent/grid.yaml") != NULL, "%s", out);
	free(out);
}

EG_TEST(run_local_json_round_trip)
{
	char *out = NULL, cmd[8192];
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "bin/expgrid run %s --local --json --threads 1 | python3 -c '"
		 "import sys, json\n"
		 "rows = [json.loads(l) for l in sys.stdin]\n"
		 "assert len(rows) == 3, rows\n"
		 "for r in rows:\n"
		 "    m = r[\"metrics\"]\n"
		 "    assert 0 <= m[\"test_acc\"] <= 1 and m[\"epochs\"] == 3, m\n"
		 "    assert len(r[\"curve\"]) == 3 and r[\"curve\"][2][\"epoch\"] == 3\n"
		 "    assert m[\"test_acc\"] > 0.8, m\n"
		 "print(\"ok\")'", small_grid());
	rc = eg_test_run(cmd, &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "ok") != NULL, "rc %d: %s", rc, out);
	free(out);
}

EG_TEST(run_local_table_and_single_trial)
{
	char *out = NULL, cmd[8192];
	int rc;

	snprintf(cmd, sizeof(cmd), "bin/expgrid run %s --local --threads 1",
		 small_grid());
	rc = eg_test_run(cmd, &out);
	EG_CHECK_MSG(rc == 0, "rc %d: %s", rc, out);
	/* Varying parameters become columns, with the main metrics. */
	EG_CHECK_MSG(strstr(out, "train.algo") != NULL && strstr(out, "seed") != NULL &&
		     strstr(out, "test_acc") != NULL && strstr(out, "[3/3]") != NULL,
		     "%s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "bin/expgrid run %s --local --json --trial 2 "
		 "--threads 1 | python3 -c 'import sys, json; "
		 "rows = [json.loads(l) for l in sys.stdin]; "
		 "assert [r[\"index\"] for r in rows] == [2]; print(\"ok\")'",
		 small_grid());
	rc = eg_test_run(cmd, &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "ok") != NULL, "rc %d: %s", rc, out);
	free(out);
	snprintf(cmd, sizeof(cmd), "bin/expgrid run %s --local --trial 3", small_grid());
	EG_CHECK_INT(eg_test_run(cmd, NULL), 2);
}

EG_TEST(failed_trial_exits_1_and_reports_error)
{
	const char *path = eg_test_write_file("fail.yaml",
		"name: fail\n"
		"trial: {kind: noop}\n"
		"sweep: {noop.fail: [false, true]}\n");
	char *out = NULL, cmd[8192];
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "bin/expgrid run %s --local --json | python3 -c '"
		 "import sys, json\n"
		 "rows = [json.loads(l) for l in sys.stdin]\n"
		 "assert \"metrics\" in rows[0] and \"error\" in rows[1], rows\n"
		 "print(\"ok\")'", path);
	rc = eg_test_run(cmd, &out);
	(void)rc;
	EG_CHECK_MSG(strstr(out, "ok") != NULL, "%s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "bin/expgrid run %s --local --json >/dev/null", path);
	EG_CHECK_INT(eg_test_run(cmd, NULL), 1);
}

EG_TEST(usage_errors)
{
	char *out = NULL;

	EG_CHECK_INT(eg_test_run("bin/expgrid", NULL), 2);
	EG_CHECK_INT(eg_test_run("bin/expgrid --help", NULL), 0);
	EG_CHECK_INT(eg_test_run("bin/expgrid frobnicate", &out), 2);
	EG_CHECK(strstr(out, "expgrid: unknown command 'frobnicate'") != NULL);
	free(out);
	EG_CHECK_INT(eg_test_run("bin/expgrid run grids/demo.yaml", &out), 2);
	EG_CHECK(strstr(out, "--local") != NULL);
	free(out);
	EG_CHECK_INT(eg_test_run("bin/expgrid expand --help", NULL), 0);
	EG_CHECK_INT(eg_test_run("bin/expgrid run --help", NULL), 0);
	EG_CHECK_INT(eg_test_run("bin/expgrid expand --bogus x.yaml", NULL), 2);
}

EG_TEST_MAIN({"expand_prints_parseable_json_lines", expand_prints_parseable_json_lines, 30},
	     {"expand_set_overrides", expand_set_overrides, 30},
	     {"bad_grid_exits_2_naming_position", bad_grid_exits_2_naming_position, 30},
	     {"run_local_json_round_trip", run_local_json_round_trip, 60},
	     {"run_local_table_and_single_trial", run_local_table_and_single_trial, 60},
	     {"failed_trial_exits_1_and_reports_error", failed_trial_exits_1_and_reports_error, 30},
	     {"usage_errors", usage_errors, 30})
