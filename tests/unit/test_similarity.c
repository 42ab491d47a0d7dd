/*
 * test_similarity.c - the co-verification scores (kernels/similarity.h) on
 * hand-made vectors whose scores are worked out in the comments.
 */
#include <stdint.h>

#include "kernels/similarity.h"
#include "tests/harness.h"

EG_TEST(s_tol_threshold_and_slack)
{
	/* max|r| = 4, tau = 0.01, F = 10: threshold 0.04 + 2^-10 =
	 * 0.0409765625.  Differences 0.03 (in), 0.05 (out), 0.1 (out),
	 * 0.001 (in): 50 %. */
	double r[4] = {1, -2, 4, 0}, y[4] = {1.03, -2.05, 3.9, 0.001};
	EG_CHECK_NEAR(eg_sim_s_tol(r, y, 4, 0.01, 10), 50.0, 1e-12);
	/* tau = 0.03: threshold 0.12 + 2^-10, all four in. */
	EG_CHECK_NEAR(eg_sim_s_tol(r, y, 4, 0.03, 10), 100.0, 1e-12);

	/* An all-zero reference: only the slack 2^-F remains, and the
	 * comparison is <=: 2^-10 passes, 2^-9 does not. */
	double z[2] = {0, 0}, yz[2] = {0.0009765625, 0.001953125};
	EG_CHECK_NEAR(eg_sim_s_tol(z, yz, 2, 0.01, 10), 50.0, 1e-12);
	/* With F = 9 the slack is 2^-9 and both pass. */
	EG_CHECK_NEAR(eg_sim_s_tol(z, yz, 2, 0.01, 9), 100.0, 1e-12);
	/* A NaN never agrees. */
	double yn[2] = {NAN, 0};
	EG_CHECK_NEAR(eg_sim_s_tol(z, yn, 2, 0.01, 10), 50.0, 1e-12);
	EG_CHECK_NEAR(eg_sim_s_tol(z, yn, 0, 0.01, 10), 100.0, 0);
}

EG_TEST(s_bit_counts_equal_codes)
{
	int64_t a[4] = {1, 2, 3, -4}, b[4] = {1, 2, 0, -4};
	int64_t c[3] = {INT64_MIN, 0, 7}, e[3] = {INT64_MAX, 0, 7};

	EG_CHECK_NEAR(eg_sim_s_bit(a, b, 4), 75.0, 1e-12);
	EG_CHECK_NEAR(eg_sim_s_bit(a, a, 4), 100.0, 0);
	EG_CHECK_NEAR(eg_sim_s_bit(c, e, 3), 200.0 / 3, 1e-12);
}

EG_TEST(max_abs_and_rel_l2)
{
	double r[4] = {1, -2, 4, 0}, y[4] = {1.03, -2.05, 3.9, 0.001};
	EG_CHECK_NEAR(eg_sim_max_abs(r, y, 4), 0.1, 1e-12);

	/* ||r|| = 5, ||y - r|| = ||(0.3, 0.4)|| = 0.5: 0.1. */
	double r2[2] = {3, 4}, y2[2] = {3.3, 4.4};
	EG_CHECK_NEAR(eg_sim_rel_l2(r2, y2, 2), 0.1, 1e-12);
	/* Scaled norms: the same at 1e200 (a naive sum of squares would
	 * overflow to inf / inf = NaN) and at 1e-200 (underflow to 0/0). */
	double rb[2] = {3e200, 4e200}, yb[2] = {3.3e200, 4.4e200};
	EG_CHECK_NEAR(eg_sim_rel_l2(rb, yb, 2), 0.1, 1e-12);
	double rs[2] = {3e-200, 4e-200}, ys[2] = {3.3e-200, 4.4e-200};
	EG_CHECK_NEAR(eg_sim_rel_l2(rs, ys, 2), 0.1, 1e-12);
	/* ||r|| = 0: 0 when y is also zero, +inf otherwise. */
	double z[2] = {0, 0}, yz[2] = {0, 1e-9};
	EG_CHECK(eg_sim_rel_l2(z, z, 2) == 0.0);
	EG_CHECK(isinf(eg_sim_rel_l2(z, yz, 2)));
	/* NaN propagates. */
	double yn[2] = {3, NAN};
	EG_CHECK(isnan(eg_sim_rel_l2(r2, yn, 2)));
	EG_CHECK(isnan(eg_sim_max_abs(r2, yn, 2)));
}

EG_TEST(top1_first_argmax_with_stride)
{
	/* Rows (stride 4, last column is padding that must be ignored):
	 * r argmax 2, 0, 0 (tie 1 1 -> first); y argmax 2, 1, 0. */
	double r[12] = {1, 2, 3, 99, 3, 2, 1, 99, 1, 1, 0, 99};
	double y[12] = {0, 0, 5, -99, 1, 2, 0, -99, .5, .5, 0, -99};

	EG_CHECK_NEAR(eg_sim_top1(r, y, 3, 3, 4), 200.0 / 3, 1e-12);
	/* Including the padding column moves every r argmax to 3 and no y
	 * argmax: 0 %. */
	EG_CHECK_NEAR(eg_sim_top1(r, y, 3, 4, 4), 0.0, 0);
	EG_CHECK_NEAR(eg_sim_top1(r, r, 3, 3, 4), 100.0, 0);
}

EG_TEST(layer_scores_match_the_single_functions)
{
	double r[6] = {0.5, -1.25, 2, 0, 3e-3, -7};
	double y[6] = {0.52, -1.25, 1.9, 0.001, 3e-3, -7.2};
	eg_sim_scores s;

	eg_sim_layer(r, y, 6, 0.01, 8, &s);
	/* threshold 0.07 + 2^-8 = 0.07390625: diffs .02 .0 .1 .001 0 .2
	 * -> 4 of 6 in. */
	EG_CHECK_NEAR(s.s_tol, 400.0 / 6, 1e-12);
	EG_CHECK(s.s_tol == eg_sim_s_tol(r, y, 6, 0.01, 8));
	EG_CHECK_NEAR(s.max_abs, 0.2, 1e-12);
	EG_CHECK(s.max_abs == eg_sim_max_abs(r, y, 6));
	EG_CHECK_NEAR(s.rel_l2, eg_sim_rel_l2(r, y, 6), 1e-15);
	/* sqrt(.02^2 + .1^2 + .001^2 + .2^2) / sqrt(.25 + 1.5625 + 4 +
	 * 9e-6 + 49). */
	double want = sqrt(0.0004 + 0.01 + 0.000001 + 0.04) /
		      sqrt(0.25 + 1.5625 + 4 + 9e-6 + 49);
	EG_CHECK_NEAR(s.rel_l2, want, 1e-12);
}

EG_TEST_MAIN({"s_tol_threshold_and_slack", s_tol_threshold_and_slack, 0},
	     {"s_bit_counts_equal_codes", s_bit_counts_equal_codes, 0},
	     {"max_abs_and_rel_l2", max_abs_and_rel_l2, 0},
	     {"top1_first_argmax_with_stride", top1_first_argmax_with_stride, 0},
	     {"layer_scores_match_the_single_functions",
	      layer_scores_match_the_single_functions, 0})
