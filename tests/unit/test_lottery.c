/*
 * test_lottery.c - `kind: lottery` (trials/lottery.c) through eg_trial_run
 * on synthetic blobs: the rounds records and their exact remaining
 * fractions, best_epoch, the reset semantics seen from outside (rewind to
 * epoch 0 is init; random shares round 0 and the masks' sizes but not the
 * training), sparse transfer's metrics; and the Kernels II parameters of
 * train trials (model.circulant_block's params_total and compression,
 * model.arch cnn, hybrid refused for an MLP).
 */
#include <math.h>
#include <string.h>

#include "grid/grid.h"
#include "tests/harness.h"
#include "trials/trials.h"


#define BLOBS                                                              \
	"dataset.name", "blobs", "dataset.dim", "20", "dataset.num_classes", \
		"4", "dataset.train_size", "800", "dataset.test_size", "400", \
		"dataset.spread", "0.7", "model.hidden", "[32]",              \
		"train.epochs", "3", "train.lr", "0.05", "train.momentum",    \
		"0.9", "train.batch", "32"

static eg_val *run(const char *const *kv)
{
	eg_val *p = eg_test_params(kv), *res = NULL;
	eg_diag d = {{0}};
	int rc = eg_trial_run(p, NULL, &res, &d);
	EG_CHECK_MSG(rc == EG_OK, "trial: %s", eg_diag_msg(&d, rc));
	eg_val_free(p);
	return res;
}

static double rnum(const eg_val *res, int round, const char *key)
{
	return eg_val_get_num(eg_val_at(eg_val_get(res, "rounds"), (size_t)round),
			      key, NAN);
}

EG_TEST(rounds_and_exact_remaining)
{
	static const char *const kv[] = {
		BLOBS, "kind", "lottery", "prune.rate", "0.5", "prune.rounds",
		"3", NULL};
	eg_val *res = run(kv);
	const eg_val *rounds = eg_val_get(res, "rounds");
	/* 20 x 32 hidden (640) at 50 %, 32 x 4 output (128) at 25 %. */
	const double hid[] = {640, 320, 160, 80}, out[] = {128, 96, 72, 54};

	EG_CHECK_INT(eg_val_len(rounds), 4);
	for (int r = 0; r < 4; r++) {
		EG_CHECK_INT((long)rnum(res, r, "round"), r);
		EG_CHECK_NEAR(rnum(res, r, "remaining"), (hid[r] + out[r]) / 768,
			      1e-12);
		double be = rnum(res, r, "best_epoch");
		EG_CHECK(be >= 1 && be <= 3);
		EG_CHECK(rnum(res, r, "test_acc") > 0.5);
		EG_CHECK(isfinite(rnum(res, r, "val_loss")));
	}
	EG_CHECK_NEAR(eg_val_get_num(res, "metrics.remaining", -1),
		      (80.0 + 54.0) / 768, 1e-12);
	EG_CHECK_NEAR(eg_val_get_num(res, "metrics.dense_test_acc", -1),
		      rnum(res, 0, "test_acc"), 0);
	EG_CHECK_NEAR(eg_val_get_num(res, "metrics.test_acc", -1),
		      rnum(res, 3, "test_acc"), 0);
	/* Weights stored do not change; the zeros are counted as such. */
	EG_CHECK_INT(eg_val_get_int(res, "metrics.params_total", 0),
		     640 + 128 + 32 + 4);
	EG_CHECK(eg_val_get_int(res, "metrics.params_nonzero", 0) <=
		 80 + 54 + 36);
	EG_CHECK_INT(eg_val_len(eg_val_get(res, "curve")), 3);
	eg_val_free(res);
}

EG_TEST(reset_semantics)
{
	static const char *const init_kv[] = {
		BLOBS, "kind", "lottery", "prune.rate", "0.5", "prune.rounds",
		"2", "prune.reset", "init", NULL};
	static const char *const rew0_kv[] = {
		BLOBS, "kind", "lottery", "prune.rate", "0.5", "prune.rounds",
		"2", "prune.reset", "rewind", "prune.rewind_epoch", "0", NULL};
	static const char *const rew1_kv[] = {
		BLOBS, "kind", "lottery", "prune.rate", "0.5", "prune.rounds",
		"2", "prune.reset", "rewind", "prune.rewind_epoch", "1", NULL};
	static const char *const rnd_kv[] = {
		BLOBS, "kind", "lottery", "prune.rate", "0.5", "prune.rounds",
		"2", "prune.reset", "random", NULL};
	eg_val *a = run(init_kv), *b = run(rew0_kv), *c = run(rew1_kv);
	eg_val *r = run(rnd_kv);

	for (int k = 0; k < 3; k++) {
		/* Rewinding to epoch 0 IS the init reset. */
		EG_CHECK(rnum(a, k, "test_loss") == rnum(b, k, "test_loss"));
		/* The same masks' sizes for all. */
		EG_CHECK(rnum(a, k, "remaining") == rnum(r, k, "remaining"));
		EG_CHECK(rnum(a, k, "remaining") == rnum(c, k, "remaining"));
	}
	/* Round 0 is the same dense training everywhere ... */
	EG_CHECK(rnum(a, 0, "test_loss") == rnum(r, 0, "test_loss"));
	EG_CHECK(rnum(a, 0, "test_loss") == rnum(c, 0, "test_loss"));
	/* ... and the pruned rounds start from different weights. */
	EG_CHECK(rnum(a, 1, "test_loss") != rnum(c, 1, "test_loss"));
	EG_CHECK(rnum(a, 1, "test_loss") != rnum(r, 1, "test_loss"));
	EG_CHECK(rnum(a, 2, "test_loss") != rnum(r, 2, "test_loss"));
	eg_val_free(a);
	eg_val_free(b);
	eg_val_free(c);
	eg_val_free(r);
}

EG_TEST(sparse_transfer)
{
	static const char *const kv[] = {
		BLOBS, "kind", "lottery", "prune.rate", "0.5", "prune.rounds",
		"2", "dataset.classes", "[0,1]", "transfer.classes", "[2,3]",
		"transfer.freeze", "features", NULL};
	static const char *const kv2[] = {
		BLOBS, "kind", "lottery", "prune.rate", "0.5", "prune.rounds",
		"2", "dataset.classes", "[0,1]", "transfer.classes", "[2,3]",
		"transfer.init", "random", NULL};
	eg_val *res = run(kv), *res2 = run(kv2);

	EG_CHECK_INT(eg_val_len(eg_val_get(res, "rounds")), 3);
	/* 20 x 32 -> 160, 32 x 2 -> 64 * 0.75 * 0.75 = 36. */
	EG_CHECK_NEAR(eg_val_get_num(res, "metrics.remaining", -1),
		      (160.0 + 36.0) / (640 + 64), 1e-12);
	/* The target head is new and dense: 160 + 64 of 704 live. */
	EG_CHECK_NEAR(eg_val_get_num(res, "metrics.transfer_remaining", -1),
		      (160.0 + 64.0) / 704, 1e-12);
	EG_CHECK(eg_val_get_num(res, "metrics.source_test_acc", 0) > 0.5);
	EG_CHECK(eg_val_get_num(res, "metrics.test_acc", 0) > 0.5);
	EG_CHECK(eg_val_get_num(res2, "metrics.test_acc", 0) > 0.5);
	/* Same source IMP, different target training. */
	EG_CHECK(eg_val_get_num(res, "metrics.source_test_acc", 0) ==
		 eg_val_get_num(res2, "metrics.source_test_acc", 1));
	EG_CHECK(eg_val_get_num(res, "metrics.test_loss", 0) !=
		 eg_val_get_num(res2, "metrics.test_loss", 0));
	EG_CHECK_INT(eg_val_len(eg_val_get(res, "curve")), 3);
	eg_val_free(res);
	eg_val_free(res2);
}

EG_TEST(train_trial_circulant_and_cnn)
{
	static const char *const circ[] = {BLOBS, "model.circulant_block", "4",
					   NULL};
	static const char *const cnn[] = {
		BLOBS, "model.arch", "cnn", "train.algo", "hybrid",
		"model.activation", "tanh", NULL};
	static const char *const bad[] = {BLOBS, "train.algo", "hybrid", NULL};
	eg_val *res = run(circ);
	/* 32 x 20 in 4 x 4 blocks: 8 x 5 x 4 = 160 stored of 640. */
	EG_CHECK_INT(eg_val_get_int(res, "metrics.params_total", 0),
		     160 + 128 + 36);
	EG_CHECK_NEAR(eg_val_get_num(res, "metrics.compression", 0),
		      (640.0 + 128 + 36) / (160 + 128 + 36), 1e-12);
	EG_CHECK(eg_val_get_num(res, "metrics.test_acc", 0) > 0.5);
	eg_val_free(res);

	/* A CNN over the 1 x 20 "image" of each blob. */
	eg_val *p = eg_test_params(cnn), *conv = eg_val_list(), *e = eg_val_map();
	eg_val_set_int(e, "filters", 4);
	eg_val_set_int(e, "kernel", 3);
	eg_val_set_int(e, "pool", 2);
	eg_val_push(conv, e);
	EG_CHECK_OK(eg_val_set_path(p, "model.conv", conv));
	eg_diag d = {{0}};
	int rc = eg_trial_run(p, NULL, &res, &d);
	/* 1 x 20 images cannot take a 2 x 2 pool: a clear error. */
	EG_CHECK(rc != EG_OK && strstr(d.msg, "pool") != NULL);
	e = eg_val_at(eg_val_get_path(p, "model.conv"), 0);
	eg_val_set_int(e, "pool", 1);
	rc = eg_trial_run(p, NULL, &res, &d);
	EG_CHECK_MSG(rc == EG_OK, "%s", eg_diag_msg(&d, rc));
	if (rc == EG_OK) {
		EG_CHECK(eg_val_get_num(res, "metrics.test_acc", 0) > 0.5);
		EG_CHECK_NEAR(eg_val_get_num(res, "metrics.compression", 0), 1, 0);
		eg_val_free(res);
	}
	eg_val_free(p);

	p = eg_test_params(bad);
	rc = eg_trial_run(p, NULL, &res, &d);
	EG_CHECK(rc == EG_EINVAL && strstr(d.msg, "hybrid needs conv") != NULL);
	eg_val_free(p);
}

EG_TEST_MAIN({"rounds_and_exact_remaining", rounds_and_exact_remaining, 30},
	     {"reset_semantics", reset_semantics, 30},
	     {"sparse_transfer", sparse_transfer, 30},
	     {"train_trial_circulant_and_cnn", train_trial_circulant_and_cnn,
	      30})
