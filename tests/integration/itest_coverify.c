/*
 * itest_coverify.c - `kind: coverify` through the `expgrid` binary: run
 * --local --json on a small blobs network with a clean and a faulty sim
 * board, parsed back by Python's json module; and the example coverify
 * grids expand.
 */
#include "tests/harness.h"

static const char *grid(void)
{
	return eg_test_write_file("cov.yaml",
		"name: cov\n"
		"trial:\n"
		"  kind: coverify\n"
		"  dataset: {name: blobs, dim: 12, num_classes: 3, spread: 0.5,"
		" train_size: 300, test_size: 150}\n"
		"  model: {hidden: [16, 8]}\n"
		"  train: {epochs: 3, lr: 0.05, batch: 32}\n"
		"  coverify: {probes: 20}\n"
		"sweep:\n"
		"  coverify.fault: [null, {layer: 2, kind: stuck1, bit: 12}]\n");
}

EG_TEST(run_json_has_three_pairs_per_layer)
{
	char *out = NULL, cmd[8192];
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "bin/expgrid run %s --local --json --threads 1 | python3 -c '"
		 "import sys, json\n"
		 "rows = [json.loads(l) for l in sys.stdin]\n"
		 "assert len(rows) == 2, rows\n"
		 "pairs = {\"software-design\", \"design-hardware\", \"software-hardware\"}\n"
		 "names = [\"dense0\", \"relu0\", \"dense1\", \"relu1\", \"dense2\"]\n"
		 "for r in rows:\n"
		 "    assert \"error\" not in r, r\n"
		 "    L = r[\"layers\"]\n"
		 "    assert len(L) == 15, len(L)\n"
		 "    for j in range(5):\n"
		 "        mine = [x for x in L if x[\"layer\"] == j]\n"
		 "        assert {x[\"pair\"] for x in mine} == pairs, mine\n"
		 "        assert all(x[\"name\"] == names[j] for x in mine)\n"
		 "        for x in mine:\n"
		 "            assert 0 <= x[\"s_tol\"] <= 100 and x[\"rel_l2\"] >= 0\n"
		 "            assert (x[\"s_bit\"] is None) == (x[\"pair\"] != \"design-hardware\")\n"
		 "            assert (x[\"top1_agree\"] is None) == (j != 4)\n"
		 "    assert len(r[\"outputs\"]) == 15\n"
		 "    assert all(o[\"est_cycles\"] > 0 for o in r[\"outputs\"] if o[\"source\"] == \"hardware\")\n"
		 "    assert len(r[\"curve\"]) == 3\n"
		 "m0, m1 = rows[0][\"metrics\"], rows[1][\"metrics\"]\n"
		 "assert rows[0][\"params\"][\"coverify\"][\"fault\"] is None\n"
		 "assert m0[\"first_divergent_layer\"] == -1 and m0[\"l1_hw_health\"] == 1, m0\n"
		 "assert all(x[\"s_bit\"] == 100 for x in rows[0][\"layers\"] if x[\"s_bit\"] is not None)\n"
		 "assert m1[\"first_divergent_layer\"] == 2 and m1[\"l1_hw_health\"] == 0, m1\n"
		 "bad = [x for x in rows[1][\"layers\"] if x[\"pair\"] == \"design-hardware\"]\n"
		 "assert [x[\"s_bit\"] == 100 for x in bad][:2] == [True, True]\n"
		 "assert bad[2][\"s_bit\"] < 100, bad\n"
		 "assert m0[\"est_cycles\"] == m1[\"est_cycles\"] > 0\n"
		 "print(\"ok\")'", grid());
	rc = eg_test_run(cmd, &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "ok") != NULL, "rc %d: %s", rc, out);
	free(out);
}

EG_TEST(example_grids_expand)
{
	char *out = NULL;
	int rc;

	rc = eg_test_run("bin/expgrid expand grids/coverify.yaml | python3 -c '"
			 "import sys, json\n"
			 "rows = [json.loads(l) for l in sys.stdin]\n"
			 "assert all(r[\"params\"][\"kind\"] == \"coverify\" for r in rows)\n"
			 "w = {r[\"params\"][\"hls\"][\"word_bits\"] for r in rows}\n"
			 "assert w == {16, 12, 8}, w\n"
			 "assert any(r[\"params\"][\"coverify\"][\"fault\"] for r in rows)\n"
			 "print(\"ok\", len(rows))'", &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "ok") != NULL, "rc %d: %s", rc, out);
	free(out);
	rc = eg_test_run("bin/expgrid expand grids/fixedpoint.yaml | python3 -c '"
			 "import sys, json\n"
			 "rows = [json.loads(l) for l in sys.stdin]\n"
			 "assert all(r[\"params\"][\"kind\"] == \"coverify\" for r in rows)\n"
			 "assert not any(r[\"params\"][\"coverify\"][\"fault\"] for r in rows)\n"
			 "assert len({r[\"params\"][\"hls\"][\"word_bits\"] for r in rows}) >= 5\n"
			 "print(\"ok\", len(rows))'", &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "ok") != NULL, "rc %d: %s", rc, out);
	free(out);
	rc = eg_test_run("bin/expgrid expand grids/circulant_hw.yaml | python3 -c '"
			 "import sys, json\n"
			 "rows = [json.loads(l) for l in sys.stdin]\n"
			 "k = [r[\"params\"][\"model\"][\"circulant_block\"] for r in rows]\n"
			 "assert 0 in k and max(k) > 1, k\n"
			 "assert all(r[\"params\"][\"kind\"] == \"coverify\" for r in rows)\n"
			 "print(\"ok\", len(rows))'", &out);
	EG_CHECK_MSG(rc == 0 && strstr(out, "ok") != NULL, "rc %d: %s", rc, out);
	free(out);
}

EG_TEST(bad_fault_exits_1_with_message)
{
	const char *path = eg_test_write_file("bad.yaml",
		"name: bad\n"
		"trial:\n"
		"  kind: coverify\n"
		"  dataset: {name: blobs, dim: 6, num_classes: 2, train_size: 100,"
		" test_size: 50}\n"
		"  model: {hidden: [4]}\n"
		"  train: {epochs: 1}\n"
		"  coverify: {fault: {layer: 7, kind: bitflip}}\n");
	char *out = NULL, cmd[8192];
	int rc;

	snprintf(cmd, sizeof(cmd), "bin/expgrid run %s --local", path);
	rc = eg_test_run(cmd, &out);
	EG_CHECK_INT(rc, 1);
	EG_CHECK_MSG(strstr(out, "fault layer 7") != NULL, "%s", out);
	free(out);
}

EG_TEST_MAIN({"run_json_has_three_pairs_per_layer",
	      run_json_has_three_pairs_per_layer, 60},
	     {"example_grids_expand", example_grids_expand, 30},
	     {"bad_fault_exits_1_with_message", bad_fault_exits_1_with_message,
	      30})
