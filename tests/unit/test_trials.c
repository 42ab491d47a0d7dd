/* test_trials.c - the noop and train trial kinds through eg_trial_run. */
#include "grid/grid.h"
#include "tests/harness.h"
#include "trials/trials.h"
#include "trials/trials_int.h"


static const char *const blobs[] = {
	"dataset.name", "blobs", "dataset.dim", "20", "dataset.num_classes", "4",
	"dataset.train_size", "800", "dataset.test_size", "400", "dataset.spread", "0.5",
	"model.hidden", "[32]", "train.epochs", "5", "train.lr", "0.05",
	"train.momentum", "0.9", "train.batch", "32", NULL};

EG_TEST(noop_reports_its_metrics)
{
	static const char *const kv[] = {"kind", "noop", "noop.ms", "30", NULL};
	eg_val *p = eg_test_params(kv), *res = NULL;
	eg_diag d = {{0}};

	EG_CHECK_OK(eg_val_set_path(p, "noop.metrics.score", eg_val_float(0.5)));
	EG_CHECK_OK(eg_trial_run(p, NULL, &res, &d));
	EG_CHECK_NEAR(eg_val_get_num(res, "metrics.score", -1), 0.5, 0);
	EG_CHECK(eg_val_get_num(res, "metrics.wall_s", 0) >= 0.025);
	eg_val_free(res);
	eg_val_free(p);
}

EG_TEST(noop_fail_and_cancel)
{
	static const char *const fail[] = {"kind", "noop", "noop.fail", "true", NULL};
	static const char *const slow[] = {"kind", "noop", "noop.ms", "100000", NULL};
	eg_val *p = eg_test_params(fail), *res = NULL;
	eg_diag d = {{0}};
	volatile int cancel = 1;
	eg_trial_hooks hooks = {NULL, NULL, &cancel, 0};

	EG_CHECK(eg_trial_run(p, NULL, &res, &d) != EG_OK);
	EG_CHECK(res == NULL);
	EG_CHECK(strstr(d.msg, "noop.fail") != NULL);
	eg_val_free(p);
	p = eg_test_params(slow);
	EG_CHECK_INT(eg_trial_run(p, &hooks, &res, &d), EG_ECANCELLED);
	eg_val_free(p);
}

EG_TEST(train_learns_blobs_with_full_metrics)
{
	static const char *const keys[] = {
		"train_acc", "test_acc", "train_loss", "test_loss", "epochs",
		"best_epoch", "params_total", "params_nonzero", "sparsity",
		"align_repr", "align_grad", "grad_ratio_w1", "wall_s"};
	eg_val *p = eg_test_params(blobs), *res = NULL;
	eg_diag d = {{0}};
	eg_trial_hooks hooks = {NULL, NULL, NULL, 1};
	int rc = eg_trial_run(p, &hooks, &res, &d);
	const eg_val *m = eg_val_get(res, "metrics");

	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		EG_CHECK_MSG(eg_val_get(m, keys[i]) != NULL, "missing %s", keys[i]);
	EG_CHECK_INT(eg_val_len(eg_val_get(res, "curve")), 5);
	EG_CHECK_INT(eg_val_get_int(m, "epochs", 0), 5);
	EG_CHECK_MSG(eg_val_get_num(m, "test_acc", 0) > 0.9, "test_acc %g",
		     eg_val_get_num(m, "test_acc", 0));
	/* 20*32 + 32 + 32*4 + 4 weights and biases. */
	EG_CHECK_INT(eg_val_get_int(m, "params_total", 0), 20 * 32 + 32 + 32 * 4 + 4);
	EG_CHECK(eg_val_get_num(m, "align_repr", -2) > -1.5);
	/* The last curve point is the final state. */
	EG_CHECK_NEAR(eg_val_get_num(eg_val_at(eg_val_get(res, "curve"), 4),
				     "test_acc", -1),
		      eg_val_get_num(m, "test_acc", -2), 0);
	eg_val_free(res);
	eg_val_free(p);
}

EG_TEST(train_is_deterministic_per_seed)
{
	eg_val *p = eg_test_params(blobs), *a = NULL, *b = NULL, *c = NULL;
	eg_diag d = {{0}};
	eg_trial_hooks hooks = {NULL, NULL, NULL, 1};

	EG_CHECK_OK(eg_trial_run(p, &hooks, &a, &d));
	EG_CHECK_OK(eg_trial_run(p, &hooks, &b, &d));
	EG_CHECK(eg_val_equal(eg_val_get(a, "curve"), eg_val_get(b, "curve")));
	EG_CHECK_OK(eg_val_set_path(p, "seed", eg_val_int(7)));
	EG_CHECK_OK(eg_trial_run(p, &hooks, &c, &d));
	EG_CHECK(!eg_val_equal(eg_val_get(a, "curve"), eg_val_get(c, "curve")));
	eg_val_free(a);
	eg_val_free(b);
	eg_val_free(c);
	eg_val_free(p);
}

static void cancel_after_first(void *ud, const eg_val *point)
{
	(void)point;
	*(volatile int *)ud = 1;
}

EG_TEST(train_cancel_between_epochs)
{
	eg_val *p = eg_test_params(blobs), *res = NULL;
	eg_diag d = {{0}};
	volatile int cancel = 0;
	eg_trial_hooks hooks = {(void *)&cancel, cancel_after_first, &cancel, 1};

	EG_CHECK_INT(eg_trial_run(p, &hooks, &res, &d), EG_ECANCELLED);
	EG_CHECK(res == NULL);
	EG_CHECK(strstr(d.msg, "epoch 2") != NULL);
	eg_val_free(p);
}

EG_TEST(train_zero_epochs_reports_untrained_net)
{
	eg_val *p = eg_test_params(blobs), *res = NULL;
	eg_diag d = {{0}};

	EG_CHECK_OK(eg_val_set_path(p, "train.epochs", eg_val_int(0)));
	EG_CHECK_OK(eg_trial_run(p, NULL, &res, &d));
	EG_CHECK_INT(eg_val_get_int(res, "metrics.epochs", -1), 0);
	EG_CHECK(eg_val_get_num(res, "metrics.test_acc", 1) < 0.6);
	EG_CHECK_INT(eg_val_len(eg_val_get(res, "curve")), 0);
	eg_val_free(res);
	eg_val_free(p);
}

EG_TEST(train_class_subset_relabels)
{
	eg_val *p = eg_test_params(blobs), *res = NULL;
	eg_diag d = {{0}};
	eg_val *cls = eg_val_list();

	eg_val_push(cls, eg_val_int(3));
	eg_val_push(cls, eg_val_int(1));
	EG_CHECK_OK(eg_val_set_path(p, "dataset.classes", cls));
	EG_CHECK_OK(eg_trial_run(p, NULL, &res, &d));
	/* Two classes: the output layer has 2 units. */
	EG_CHECK_INT(eg_val_get_int(res, "metrics.params_total", 0),
		     20 * 32 + 32 + 32 * 2 + 2);
	EG_CHECK(eg_val_get_num(res, "metrics.test_acc", 0) > 0.9);
	eg_val_free(res);
	eg_val_free(p);

	p = eg_test_params(blobs);
	cls = eg_val_list();
	eg_val_push(cls, eg_val_int(9));
	EG_CHECK_OK(eg_val_set_path(p, "dataset.classes", cls));
	EG_CHECK_INT(eg_trial_run(p, NULL, &res, &d), EG_ERANGE);
	EG_CHECK(strstr(d.msg, "class 9") != NULL);
	eg_val_free(p);
}

/* More classes than any fixed table: every example is kept, and a class
 * past 1023 can be selected (the class map once had 1024 entries and
 * silently dropped the examples of every later class). */
EG_TEST(data_keeps_classes_past_1024)
{
	static const char *const kv[] = {
		"dataset.name", "blobs", "dataset.dim", "2",
		"dataset.num_classes", "1100", "dataset.train_size", "2200",
		"dataset.test_size", "1100", NULL};
	eg_val *p = eg_test_params(kv);
	eg_val *cls = eg_val_list();
	eg__data data;
	eg_diag d = {{0}};
	int rc = eg__data_prepare(p, &data, &d);

	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	EG_CHECK_INT(data.train.n, 2200);
	EG_CHECK_INT(data.test.n, 1100);
	EG_CHECK_INT(data.train.classes, 1100);
	eg__data_free(&data);

	eg_val_push(cls, eg_val_int(1050));
	eg_val_push(cls, eg_val_int(7));
	EG_CHECK_OK(eg_val_set_path(p, "dataset.classes", cls));
	rc = eg__data_prepare(p, &data, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	EG_CHECK_INT(data.train.classes, 2);
	EG_CHECK_INT(data.train.n, 4); /* balanced: 2 per class */
	for (size_t i = 0; i < data.train.n; i++)
		EG_CHECK(data.train.y[i] == 0 || data.train.y[i] == 1);
	eg__data_free(&data);

	/* 2^32 is not class 0. */
	cls = eg_val_list();
	eg_val_push(cls, eg_val_int((int64_t)1 << 32));
	EG_CHECK_OK(eg_val_set_path(p, "dataset.classes", cls));
	EG_CHECK_INT(eg__data_prepare(p, &data, &d), EG_ERANGE);
	EG_CHECK_MSG(strstr(d.msg, "4294967296") != NULL, "%s", d.msg);
	eg_val_free(p);
}

EG_TEST(impossible_combinations_say_so)
{
	/* Hybrid training splits conv and fully-connected layers: an MLP
	 * has no conv layer to split off, which only the network can tell. */
	static const char *const kv[] = {"train.algo", "hybrid", NULL};
	eg_val *p = eg_test_params(kv), *res = NULL;
	eg_diag d = {{0}};
	int rc;

	EG_CHECK_OK(eg_val_set_path(p, "dataset.name", eg_val_str("blobs")));
	rc = eg_trial_run(p, NULL, &res, &d);
	EG_CHECK(rc != EG_OK && res == NULL);
	EG_CHECK_MSG(strstr(d.msg, "hybrid") != NULL, "%s", d.msg);
	eg_val_free(p);
}

EG_TEST(fashion_subset_trains)
{
	static const char *const kv[] = {
		"dataset.train_size", "1000", "dataset.test_size", "500",
		"model.hidden", "[64]", "train.epochs", "3", "train.momentum", "0.9", NULL};
	eg_val *p = eg_test_params(kv), *res = NULL;
	eg_diag d = {{0}};
	int rc = eg_trial_run(p, NULL, &res, &d);

	if (rc == EG_EMISSING_DEP)
		EG_SKIP("dataset-fashion-mnist is not installed");
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	EG_CHECK(eg_val_get_num(res, "metrics.test_acc", 0) > 0.6);
	eg_val_free(res);
	eg_val_free(p);
	eg_trial_cache_clear();
}

EG_TEST_MAIN({"noop_reports_its_metrics", noop_reports_its_metrics, 0},
	     {"noop_fail_and_cancel", noop_fail_and_cancel, 0},
	     {"train_learns_blobs_with_full_metrics", train_learns_blobs_with_full_metrics, 60},
	     {"train_is_deterministic_per_seed", train_is_deterministic_per_seed, 60},
	     {"train_cancel_between_epochs", train_cancel_between_epochs, 60},
	     {"train_zero_epochs_reports_untrained_net", train_zero_epochs_reports_untrained_net, 60},
	     {"train_class_subset_relabels", train_class_subset_relabels, 60},
	     {"data_keeps_classes_past_1024", data_keeps_classes_past_1024, 30},
	     {"impossible_combinations_say_so", impossible_combinations_say_so, 60},
	     {"fashion_subset_trains", fashion_subset_trains, 120})
