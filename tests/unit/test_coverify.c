/*
 * test_coverify.c - the coverify trial kind through eg_trial_run: a small
 * network trained on blobs, then compared layer by layer as software
 * (float), design (ap_fixed model) and hardware (a sim board).
 */
#include <unistd.h>

#include "grid/grid.h"
#include "tests/harness.h"
#include "trials/trials.h"


#define BLOBS                                                             \
	"kind", "coverify", "dataset.name", "blobs", "dataset.dim", "20",  \
	"dataset.num_classes", "4", "dataset.train_size", "600",           \
	"dataset.test_size", "300", "dataset.spread", "0.5",               \
	"model.hidden", "[32, 16]", "train.epochs", "4", "train.lr", "0.05", \
	"train.momentum", "0.9", "train.batch", "32", "coverify.probes", "64"

/* Runs a coverify trial; `fault` (may be NULL) is set as coverify.fault. */
static eg_val *run(const char *const *kv, eg_val *fault)
{
	eg_val *p = eg_test_params(kv), *res = NULL;
	eg_diag d = {{0}};
	int rc;

	if (fault != NULL)
		EG_CHECK_OK(eg_val_set_path(p, "coverify.fault", fault));
	rc = eg_trial_run(p, NULL, &res, &d);
	EG_CHECK_MSG(rc == EG_OK, "coverify: %s", eg_diag_msg(&d, rc));
	eg_val_free(p);
	return res;
}

/* The `layers` row of layer j and pair (NULL if absent). */
static const eg_val *row(const eg_val *res, int j, const char *pair)
{
	const eg_val *layers = eg_val_get(res, "layers");

	for (size_t i = 0; i < eg_val_len(layers); i++) {
		const eg_val *r = eg_val_at(layers, i);

		if (eg_val_get_int(r, "layer", -1) == j &&
		    strcmp(eg_val_get_str(r, "pair", ""), pair) == 0)
			return r;
	}
	return NULL;
}

/* Network 20 -> 32 -> 16 -> 4: dense, relu, dense, relu, dense. */
#define NOUT 5

EG_TEST(design_matches_float_and_board_is_bit_exact)
{
	/* rnd: truncation (trn, the HLS default) biases every weight by half
	 * an lsb on average, which accumulates over each dot product; on
	 * Fashion-MNIST MLPs it costs the logits a few percent of S_tol even
	 * at 16 bits (docs/coverify.md), so the 99 % claim is made for rnd. */
	static const char *const kv[] = {BLOBS, "hls.round", "rnd", NULL};
	eg_val *res = run(kv, NULL);
	const eg_val *m = eg_val_get(res, "metrics");

	EG_CHECK_INT(eg_val_len(eg_val_get(res, "layers")), 3 * NOUT);
	EG_CHECK_INT(eg_val_len(eg_val_get(res, "outputs")), 3 * NOUT);
	EG_CHECK_INT(eg_val_len(eg_val_get(res, "curve")), 4);
	EG_CHECK(eg_val_get_num(m, "test_acc", 0) > 0.9);
	for (int j = 0; j < NOUT; j++) {
		const eg_val *sd = row(res, j, "software-design");
		const eg_val *dh = row(res, j, "design-hardware");
		const eg_val *sh = row(res, j, "software-hardware");

		EG_CHECK(sd != NULL && dh != NULL && sh != NULL);
		/* 16 bits (the hls defaults, trn) keep >= 99 % of the
		 * values within tolerance on every layer. */
		EG_CHECK_MSG(eg_val_get_num(sd, "s_tol", 0) >= 99,
			     "layer %d s_tol %g", j, eg_val_get_num(sd, "s_tol", 0));
		EG_CHECK_NEAR(eg_val_get_num(dh, "s_bit", 0), 100, 0);
		EG_CHECK_NEAR(eg_val_get_num(dh, "max_abs", 1), 0, 0);
		EG_CHECK(eg_val_type_of(eg_val_get(sd, "s_bit")) == EG_VAL_NULL);
		EG_CHECK(eg_val_get_num(sd, "rel_l2", 1) < 0.05);
		/* The board equals the design, so it agrees with software
		 * exactly as well as the design does. */
		EG_CHECK_NEAR(eg_val_get_num(sh, "s_tol", 0),
			      eg_val_get_num(sd, "s_tol", 1), 0);
		EG_CHECK_STR(eg_val_get_str(sd, "name", ""),
			     j % 2 ? (j == 1 ? "relu0" : "relu1")
				   : (j == 0 ? "dense0" : j == 2 ? "dense1" : "dense2"));
		EG_CHECK((j == NOUT - 1) ==
			 (eg_val_type_of(eg_val_get(sd, "top1_agree")) != EG_VAL_NULL));
	}
	EG_CHECK_INT(eg_val_get_int(m, "first_divergent_layer", 99), -1);
	EG_CHECK(eg_val_get_num(m, "min_s_tol_sd", 0) >= 99);
	EG_CHECK(eg_val_get_num(m, "top1_agree_sd", 0) >= 95);
	EG_CHECK_INT(eg_val_get_int(m, "probes", 0), 64);
	EG_CHECK_INT(eg_val_get_int(m, "l1_sw_mismatch", -1), 0);
	EG_CHECK_INT(eg_val_get_int(m, "l1_hw_health", 0), 1);
	EG_CHECK_INT(eg_val_get_int(m, "l1_design_out_of_range", -1), 0);
	EG_CHECK_INT(eg_val_get_int(m, "l1_hw_overflow", -1), 0);
	EG_CHECK(fabs(eg_val_get_num(m, "design_test_acc", 0) -
		      eg_val_get_num(m, "test_acc", 1)) < 0.02);
	/* 20*32 + 32*16 + 16*4 = 1216 MACs per inference. */
	EG_CHECK_INT(eg_val_get_int(m, "est_macs", 0), 1216);
	EG_CHECK(eg_val_get_int(m, "est_cycles", 0) >= 1216 / 64);
	EG_CHECK(eg_val_get_num(m, "est_energy_nj", 0) > 0);
	/* Design and hardware outputs have equal checksums. */
	{
		const eg_val *outs = eg_val_get(res, "outputs");

		for (size_t i = 0; i + 2 < eg_val_len(outs); i += 3) {
			EG_CHECK_STR(eg_val_get_str(eg_val_at(outs, i + 1), "checksum", "a"),
				     eg_val_get_str(eg_val_at(outs, i + 2), "checksum", "b"));
			EG_CHECK_STR(eg_val_get_str(eg_val_at(outs, i + 2), "source", ""),
				     "hardware");
		}
	}
	eg_val_free(res);
}

EG_TEST(fashion_mnist_sixteen_bits)
{
	static const char *const kv[] = {
		"kind", "coverify", "dataset.train_size", "1500",
		"dataset.test_size", "300", "model.hidden", "[64]",
		"train.epochs", "2", "train.momentum", "0.9", "train.batch", "64",
		"hls.round", "rnd", "coverify.probes", "64", NULL};
	eg_val *res;
	const eg_val *m;

	if (access("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
		   R_OK) != 0)
		EG_SKIP("Fashion-MNIST is not installed");
	res = run(kv, NULL);
	m = eg_val_get(res, "metrics");
	for (int j = 0; j < 3; j++)
		EG_CHECK_MSG(eg_val_get_num(row(res, j, "software-design"),
					    "s_tol", 0) >= 99,
			     "layer %d", j);
	EG_CHECK_INT(eg_val_get_int(m, "first_divergent_layer", 99), -1);
	EG_CHECK(eg_val_get_num(m, "test_acc", 0) > 0.6);
	EG_CHECK(fabs(eg_val_get_num(m, "design_test_acc", 0) -
		      eg_val_get_num(m, "test_acc", 1)) < 0.01);
	eg_val_free(res);
}

EG_TEST(planted_fault_is_reported)
{
	static const char *const kv[] = {BLOBS, NULL};

	for (int layer = 1; layer <= 3; layer += 2) {
		eg_val *f = eg_val_map(), *res;
		const eg_val *m;

		eg_val_set_int(f, "layer", layer);
		eg_val_set_str(f, "kind", "bitflip");
		eg_val_set_int(f, "bit", 9);
		eg_val_set_num(f, "rate", 0.25);
		res = run(kv, f);
		m = eg_val_get(res, "metrics");
		EG_CHECK_INT(eg_val_get_int(m, "first_divergent_layer", 99), layer);
		for (int j = 0; j < layer; j++)
			EG_CHECK_NEAR(eg_val_get_num(row(res, j, "design-hardware"),
						     "s_bit", 0), 100, 0);
		double sb = eg_val_get_num(row(res, layer, "design-hardware"),
					   "s_bit", 100);
		EG_CHECK_MSG(sb < 90 && sb > 60, "s_bit %g at the fault", sb);
		/* A fault on the known-answer net's layers fails health. */
		EG_CHECK_INT(eg_val_get_int(m, "l1_hw_health", 1),
			     layer < 3 ? 0 : 1);
		EG_CHECK_STR(eg_val_get_str(res, "board.health", ""),
			     layer < 3 ? "bad" : "good");
		EG_CHECK((eg_val_get_path(res, "board.health_error") != NULL) ==
			 (layer < 3));
		/* The design itself is untouched. */
		EG_CHECK(eg_val_get_num(m, "min_s_tol_sd", 0) >= 99);
		eg_val_free(res);
	}
}

EG_TEST(narrow_words_cost_similarity)
{
	static const char *const kv[] = {BLOBS, "hls.word_bits", "6",
					 "hls.int_bits", "3", "hls.round",
					 "rnd", NULL};
	eg_val *res = run(kv, NULL);
	const eg_val *m = eg_val_get(res, "metrics");

	/* Three fraction bits cannot follow the float network within 1 %,
	 * but design and board still agree bit for bit. */
	EG_CHECK_MSG(eg_val_get_num(m, "min_s_tol_sd", 100) < 90, "%g",
		     eg_val_get_num(m, "min_s_tol_sd", 100));
	EG_CHECK_INT(eg_val_get_int(m, "first_divergent_layer", 99), -1);
	eg_val_free(res);
}

EG_TEST(circulant_network_on_the_board)
{
	static const char *const kv[] = {BLOBS, "model.circulant_block", "4",
					 "hls.round", "rnd", NULL};
	static const char *const dense_kv[] = {BLOBS, "hls.round", "rnd", NULL};
	eg_val *res = run(kv, NULL), *dres = run(dense_kv, NULL);
	const eg_val *m = eg_val_get(res, "metrics");

	EG_CHECK_STR(eg_val_get_str(row(res, 0, "design-hardware"), "name", ""),
		     "circ0");
	EG_CHECK_STR(eg_val_get_str(row(res, 2, "design-hardware"), "name", ""),
		     "circ1");
	EG_CHECK_STR(eg_val_get_str(row(res, 4, "design-hardware"), "name", ""),
		     "dense2");
	EG_CHECK_INT(eg_val_get_int(m, "first_divergent_layer", 99), -1);
	EG_CHECK(eg_val_get_num(m, "min_s_tol_sd", 0) >= 99);
	/* The dense expansion in float is the same function as the FFT
	 * network, up to float rounding. */
	EG_CHECK(eg_val_get_num(m, "l1_sw_max_abs", 1) < 1e-4);
	EG_CHECK(eg_val_get_num(m, "compression", 0) > 2);
	EG_CHECK(eg_val_get_int(m, "est_macs", 0) <
		 eg_val_get_int(eg_val_get(dres, "metrics"), "est_macs", 0));
	eg_val_free(res);
	eg_val_free(dres);
}

EG_TEST(bad_fault_layer_fails)
{
	static const char *const kv[] = {BLOBS, NULL};
	eg_val *p = eg_test_params(kv), *f = eg_val_map(), *res = NULL;
	eg_diag d = {{0}};

	/* The fault is refused before any training, so epochs do not matter. */
	eg_val_set_int(f, "layer", NOUT);
	eg_val_set_str(f, "kind", "stuck1");
	EG_CHECK_OK(eg_val_set_path(p, "coverify.fault", f));
	EG_CHECK_INT(eg_trial_run(p, NULL, &res, &d), EG_ERANGE);
	EG_CHECK(res == NULL);
	EG_CHECK_MSG(strstr(d.msg, "fault layer") != NULL, "%s", d.msg);
	eg_val_free(p);
}

EG_TEST(cancelled_before_training)
{
	static const char *const kv[] = {BLOBS, NULL};
	eg_val *p = eg_test_params(kv), *res = NULL;
	volatile int cancel = 1;
	eg_trial_hooks hooks = {NULL, NULL, &cancel, 0};

	EG_CHECK_INT(eg_trial_run(p, &hooks, &res, NULL), EG_ECANCELLED);
	EG_CHECK(res == NULL);
	eg_val_free(p);
}

EG_TEST_MAIN({"design_matches_float_and_board_is_bit_exact",
	      design_matches_float_and_board_is_bit_exact, 30},
	     {"fashion_mnist_sixteen_bits", fashion_mnist_sixteen_bits, 30},
	     {"planted_fault_is_reported", planted_fault_is_reported, 30},
	     {"narrow_words_cost_similarity", narrow_words_cost_similarity, 30},
	     {"circulant_network_on_the_board", circulant_network_on_the_board, 30},
	     {"bad_fault_layer_fails", bad_fault_layer_fails, 30},
	     {"cancelled_before_training", cancelled_before_training, 30})
