/*
 * similarity.h - the per-layer similarity scores of the co-verification
 * (PAPERS.md §5), used to compare software (float), design (fixed-point
 * model) and hardware (board) outputs of the same layer, on one machine or
 * across machines.
 *
 * For a reference r and a candidate y of N elements:
 *
 *     S_tol   = 100 * #{i : |y_i - r_i| <= tau * max_j |r_j| + 2^-F} / N
 *     S_bit   = 100 * #{i : code_i(a) == code_i(b)} / N     (raw codes)
 *     max_abs = max_i |y_i - r_i|
 *     rel_l2  = ||y - r||_2 / ||r||_2
 *     top1    = 100 * #{rows whose first arg max agrees} / rows
 *
 * The slack 2^-F is one step of the fixed-point type the layer is held in
 * (F its fraction bits), so that a value that is one rounding step away
 * from a tiny reference still counts as agreeing.
 *
 * Conventions for degenerate inputs, chosen so that a score is always a
 * number a database can store and "identical" always scores best:
 * N = 0 gives S_tol = S_bit = top1 = 100, max_abs = rel_l2 = 0.
 * ||r|| = 0 gives rel_l2 = 0 if y is also all zero, else +inf.
 * Any NaN in r or y fails its element in S_tol (comparisons with NaN are
 * false) and makes max_abs and rel_l2 NaN, so a diverged layer cannot pass.
 *
 * Pure functions on caller-owned arrays; no allocation, thread-safe.
 * Sums are accumulated in double in index order, so every machine computes
 * the same score from the same inputs.
 */
#ifndef EG_SIMILARITY_H
#define EG_SIMILARITY_H

#include <stddef.h>
#include <stdint.h>

/* S_tol in percent; tau >= 0 is coverify.tolerance, frac_bits the F of the
 * layer's fixed-point type. */
double eg_sim_s_tol(const double *r, const double *y, size_t n, double tau,
		    int frac_bits);
/* S_bit in percent over raw codes. */
double eg_sim_s_bit(const int64_t *a, const int64_t *b, size_t n);
double eg_sim_max_abs(const double *r, const double *y, size_t n);
double eg_sim_rel_l2(const double *r, const double *y, size_t n);
/* Top-1 agreement in percent over `rows` rows of `k` scores (row-major,
 * row stride ld >= k): the first index of the maximum is compared. */
double eg_sim_top1(const double *r, const double *y, size_t rows, size_t k,
		   size_t ld);

/* All the value scores of one layer at once (one pass for the norms). */
typedef struct eg_sim_scores {
	double s_tol;   /* percent */
	double max_abs;
	double rel_l2;
} eg_sim_scores;

void eg_sim_layer(const double *r, const double *y, size_t n, double tau,
		  int frac_bits, eg_sim_scores *out);

#endif
