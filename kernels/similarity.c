/*
 * similarity.c - the co-verification scores of similarity.h.
 *
 * Each score is one or two passes over the arrays in index order with
 * double accumulators; the threshold of S_tol needs max |r| first, so
 * S_tol is the only two-pass score.  The norm of rel_l2 is computed with a
 * scale (the largest magnitude seen, as LAPACK's dnrm2 does) so that layers
 * with huge or tiny values neither overflow nor underflow.
 */
#include <math.h>
#include <stdbool.h>

#include "kernels/similarity.h"

static double max_abs_of(const double *r, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++) {
		double a = fabs(r[i]);
		if (a > m)
			m = a;
	}
	return m;
}

double eg_sim_s_tol(const double *r, const double *y, size_t n, double tau,
		    int frac_bits)
{
	if (n == 0)
		return 100.0;
	double thr = tau * max_abs_of(r, n) + ldexp(1.0, -frac_bits);
	size_t ok = 0;

	for (size_t i = 0; i < n; i++)
		ok += fabs(y[i] - r[i]) <= thr;
	return 100.0 * (double)ok / (double)n;
}

double eg_sim_s_bit(const int64_t *a, const int64_t *b, size_t n)
{
	if (n == 0)
		return 100.0;
	size_t ok = 0;

	for (size_t i = 0; i < n; i++)
		ok += a[i] == b[i];
	return 100.0 * (double)ok / (double)n;
}

double eg_sim_max_abs(const double *r, const double *y, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++) {
		double a = fabs(y[i] - r[i]);
		if (isnan(a))
			return NAN;
		if (a > m)
			m = a;
	}
	return m;
}

/* Scaled sum of squares: ||v|| = scale * sqrt(ssq), updated per element. */
static void ssq_add(double v, double *scale, double *ssq)
{
	double a = fabs(v);

	if (a == 0)
		return;
	if (isnan(a) || a > *scale) {
		double q = *scale / a;
		*ssq = 1.0 + *ssq * q * q;
		*scale = a;
	} else {
		double q = a / *scale;
		*ssq += q * q;
	}
}

static double rel_l2_of(double ns, double nq, double ds, double dq)
{
	double nr = ns * sqrt(nq), nd = ds * sqrt(dq);

	if (isnan(nr) || isnan(nd))
		return NAN;
	if (nr == 0)
		return nd == 0 ? 0.0 : INFINITY;
	return nd / nr;
}

double eg_sim_rel_l2(const double *r, const double *y, size_t n)
{
	double ns = 0, nq = 0, ds = 0, dq = 0;

	for (size_t i = 0; i < n; i++) {
		ssq_add(r[i], &ns, &nq);
		ssq_add(y[i] - r[i], &ds, &dq);
	}
	return rel_l2_of(ns, nq, ds, dq);
}

static size_t argmax(const double *v, size_t k)
{
	size_t best = 0;

	for (size_t j = 1; j < k; j++)
		if (v[j] > v[best])
			best = j;
	return best;
}

double eg_sim_top1(const double *r, const double *y, size_t rows, size_t k,
		   size_t ld)
{
	if (rows == 0 || k == 0)
		return 100.0;
	size_t ok = 0;

	for (size_t i = 0; i < rows; i++)
		ok += argmax(r + i * ld, k) == argmax(y + i * ld, k);
	return 100.0 * (double)ok / (double)rows;
}

void eg_sim_layer(const double *r, const double *y, size_t n, double tau,
		  int frac_bits, eg_sim_scores *out)
{
	double ns = 0, nq = 0, ds = 0, dq = 0, m = 0, rmax = 0;
	bool nan_seen = false;

	for (size_t i = 0; i < n; i++) {
		double a = fabs(y[i] - r[i]);

		if (isnan(a))
			nan_seen = true;
		else if (a > m)
			m = a;
		if (fabs(r[i]) > rmax)
			rmax = fabs(r[i]);
		ssq_add(r[i], &ns, &nq);
		ssq_add(y[i] - r[i], &ds, &dq);
	}
	out->max_abs = nan_seen ? NAN : m;
	out->rel_l2 = rel_l2_of(ns, nq, ds, dq);
	if (n == 0) {
		out->s_tol = 100.0;
		return;
	}
	double thr = tau * rmax + ldexp(1.0, -frac_bits);
	size_t ok = 0;
	for (size_t i = 0; i < n; i++)
		ok += fabs(y[i] - r[i]) <= thr;
	out->s_tol = 100.0 * (double)ok / (double)n;
}
