/*
 * test_circulant.c - the block-circulant layer (kernels/circulant.h).
 *
 * References are independent of the library's FFT path: the test expands
 * the stored vectors to a dense matrix itself (first-column convention,
 * W_ij[r, c] = w_ij[(r - c) mod k]) and computes products and gradients in
 * double.  Tolerances: a length-k float FFT product has an error of about
 * eps * log2(k) relative to ||w_ij|| ||x_j||; summed over blocks that is
 * bounded by eps * log2(k) * ||w|| ||x|| (Cauchy-Schwarz), under 5e-7 of
 * ||w|| ||x|| for k <= 256.  The checks use TOL_REL * ||w|| * ||x|| with
 * TOL_REL = 1e-6: the worst error measured over these shapes is between
 * 3e-8 and 1e-7 of ||w|| ||x||, and any wrong index convention, padding,
 * conjugation or scaling errs by O(||W_r|| ||x||), about 1 / sqrt(n) of
 * ||w|| ||x|| and so far above the tolerance.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/circulant.h"
#include "kernels/rng.h"
#include "tests/harness.h"

#define TOL_REL 1e-6

/*
 * Allocation counter for allocates_nothing: this executable's definitions
 * of the glibc allocation entry points take precedence over libc's for
 * every caller, FFTW and OpenBLAS included, and forward to glibc's own
 * implementations.  Not under AddressSanitizer, which owns these symbols.
 */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#else
#define COUNT_ALLOCS 1
static int counting;
static long n_allocs;

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t a, size_t b);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t a, size_t n);
void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
int posix_memalign(void **p, size_t a, size_t n);
void *memalign(size_t a, size_t n);
void *aligned_alloc(size_t a, size_t n);

void *malloc(size_t n)
{
	n_allocs += counting;
	return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	n_allocs += counting;
	return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	n_allocs += counting;
	return __libc_realloc(p, n);
}

int posix_memalign(void **p, size_t a, size_t n)
{
	n_allocs += counting;
	*p = __libc_memalign(a, n);
	return *p != NULL ? 0 : 12 /* ENOMEM */;
}

void *memalign(size_t a, size_t n)
{
	n_allocs += counting;
	return __libc_memalign(a, n);
}

void *aligned_alloc(size_t a, size_t n)
{
	n_allocs += counting;
	return __libc_memalign(a, n);
}
#endif

struct shape {
	size_t m, n, k;
};

/* Non-multiples of k, k = 1 (dense), k larger than m or n, k = 256. */
static const struct shape shapes[] = {
    {8, 8, 1},	  {5, 3, 1},	 {6, 10, 2},   {16, 16, 4},
    {12, 20, 4},  {37, 50, 16},	 {16, 48, 16}, {130, 70, 64},
    {64, 64, 64}, {40, 100, 64}, {20, 7, 64},  {300, 260, 256},
};
#define NSHAPES (sizeof(shapes) / sizeof(shapes[0]))

static void fill_normal(float *a, size_t len, eg_rng *rng)
{
	for (size_t t = 0; t < len; t++)
		a[t] = (float)eg_rng_normal(rng);
}

static double norm2(const float *a, size_t len)
{
	double s = 0;

	for (size_t t = 0; t < len; t++)
		s += (double)a[t] * a[t];
	return sqrt(s);
}

/* The test's own expansion; first_col selects the convention, the other
 * being the (wrong) first-row one, W_ij[r, c] = w_ij[(c - r) mod k]. */
static double *ref_dense(size_t m, size_t n, size_t k, const float *w,
			 int first_col)
{
	size_t q = (n + k - 1) / k;
	double *W = malloc(m * n * sizeof(double));

	EG_CHECK(W != NULL);
	for (size_t r = 0; r < m; r++)
		for (size_t c = 0; c < n; c++) {
			long rr = (long)(r % k), cc = (long)(c % k);
			long t = first_col ? rr - cc : cc - rr;

			t = ((t % (long)k) + (long)k) % (long)k;
			W[r * n + c] = w[((r / k) * q + c / k) * k + (size_t)t];
		}
	return W;
}

/* out[b] = W x[b] in double. */
static void ref_forward(size_t m, size_t n, const double *W, const float *x,
			size_t batch, double *out)
{
	for (size_t b = 0; b < batch; b++)
		for (size_t r = 0; r < m; r++) {
			double s = 0;

			for (size_t c = 0; c < n; c++)
				s += W[r * n + c] * x[b * n + c];
			out[b * m + r] = s;
		}
}

/* A layer with random weights, x (batch x n) and R (batch x m). */
struct fixture {
	eg_circ *c;
	size_t m, n, k, batch;
	float *x, *r, *out, *dx, *dw;
};

static void fixture_init(struct fixture *f, const struct shape *s, size_t batch,
			 uint64_t seed)
{
	eg_rng rng;
	size_t nw;

	memset(f, 0, sizeof(*f));
	f->m = s->m;
	f->n = s->n;
	f->k = s->k;
	f->batch = batch;
	EG_CHECK_OK(eg_circ_create(&f->c, s->m, s->n, s->k, batch,
				   EG_CIRC_PLAN_ESTIMATE, NULL));
	nw = eg_circ_params_stored(f->c);
	eg_rng_seed(&rng, seed);
	eg_circ_init_normal(f->c, &rng, 1.0);
	f->x = malloc(batch * s->n * sizeof(float));
	f->r = malloc(batch * s->m * sizeof(float));
	f->out = malloc(batch * s->m * sizeof(float));
	f->dx = malloc(batch * s->n * sizeof(float));
	f->dw = malloc(nw * sizeof(float));
	EG_CHECK(f->x && f->r && f->out && f->dx && f->dw);
	fill_normal(f->x, batch * s->n, &rng);
	fill_normal(f->r, batch * s->m, &rng);
}

static void fixture_free(struct fixture *f)
{
	eg_circ_free(f->c);
	free(f->x);
	free(f->r);
	free(f->out);
	free(f->dx);
	free(f->dw);
}

/* sum_b,r R[b,r] * out[b,r] of the layer's forward, in double. */
static double loss(struct fixture *f)
{
	double s = 0;

	EG_CHECK_OK(eg_circ_forward(f->c, f->x, f->batch, f->out));
	for (size_t t = 0; t < f->batch * f->m; t++)
		s += (double)f->r[t] * f->out[t];
	return s;
}

EG_TEST(forward_matches_dense_expansion)
{
	for (size_t si = 0; si < NSHAPES; si++) {
		static const size_t batches[] = {1, 3};

		for (size_t bi = 0; bi < 2; bi++) {
			const struct shape *s = &shapes[si];
			struct fixture f;
			double *W, *ref;
			double wn;

			fixture_init(&f, s, batches[bi], 11 + si);
			W = ref_dense(s->m, s->n, s->k, eg_circ_weights(f.c),
				      1);
			ref = malloc(f.batch * s->m * sizeof(double));
			EG_CHECK(ref != NULL);
			ref_forward(s->m, s->n, W, f.x, f.batch, ref);
			EG_CHECK_OK(eg_circ_forward(f.c, f.x, f.batch, f.out));
			wn = norm2(eg_circ_weights(f.c),
				   eg_circ_params_stored(f.c));
			for (size_t b = 0; b < f.batch; b++) {
				double tol =
				    TOL_REL * wn * norm2(f.x + b * s->n, s->n);

				for (size_t r = 0; r < s->m; r++)
					EG_CHECK_MSG(fabs(f.out[b * s->m + r] -
							  ref[b * s->m + r]) <=
							 tol,
						     "m=%zu n=%zu k=%zu b=%zu "
						     "r=%zu: %g vs %g",
						     s->m, s->n, s->k, b, r,
						     f.out[b * s->m + r],
						     ref[b * s->m + r]);
			}
			free(W);
			free(ref);
			fixture_free(&f);
		}
	}
}

/* The library's expansion is the test's, entry for entry. */
EG_TEST(expand_matches_first_column_convention)
{
	for (size_t si = 0; si < NSHAPES; si++) {
		const struct shape *s = &shapes[si];
		struct fixture f;
		float *D = malloc(s->m * s->n * sizeof(float));
		double *W;

		EG_CHECK(D != NULL);
		fixture_init(&f, s, 1, 5);
		W = ref_dense(s->m, s->n, s->k, eg_circ_weights(f.c), 1);
		eg_circ_to_dense(f.c, D);
		for (size_t t = 0; t < s->m * s->n; t++)
			EG_CHECK((double)D[t] == W[t]);
		free(D);
		free(W);
		fixture_free(&f);
	}
}

/* A transposed (first-row) convention must not pass: the forward pass is
 * far from that expansion while matching the first-column one. */
EG_TEST(first_row_convention_rejected)
{
	const struct shape s = {37, 50, 16};
	struct fixture f;
	double *Wc, *Wr, *refc, *refr;
	double errc = 0, errr = 0;

	fixture_init(&f, &s, 2, 3);
	Wc = ref_dense(s.m, s.n, s.k, eg_circ_weights(f.c), 1);
	Wr = ref_dense(s.m, s.n, s.k, eg_circ_weights(f.c), 0);
	refc = malloc(2 * s.m * sizeof(double));
	refr = malloc(2 * s.m * sizeof(double));
	EG_CHECK(refc && refr);
	ref_forward(s.m, s.n, Wc, f.x, 2, refc);
	ref_forward(s.m, s.n, Wr, f.x, 2, refr);
	EG_CHECK_OK(eg_circ_forward(f.c, f.x, 2, f.out));
	for (size_t t = 0; t < 2 * s.m; t++) {
		errc = fmax(errc, fabs(f.out[t] - refc[t]));
		errr = fmax(errr, fabs(f.out[t] - refr[t]));
	}
	EG_CHECK_MSG(errc < 1e-3, "first column: max error %g", errc);
	EG_CHECK_MSG(errr > 1.0, "first row matched too: max error %g", errr);
	free(Wc);
	free(Wr);
	free(refc);
	free(refr);
	fixture_free(&f);
}

/*
 * dL/dw and dL/dx against central differences of L = sum R o out.  L is
 * linear in every weight and input, so central differences have no
 * truncation error for any step; h = 1 (the scale of the values) keeps the
 * float rounding of L, at most sum_b ||R_b||_1 * TOL_REL ||w|| ||x_b|| per
 * evaluation, small after dividing by 2h.
 */
EG_TEST(gradients_match_finite_differences)
{
	static const struct shape fd[] = {
	    {5, 3, 1},	  {6, 10, 2},  {12, 20, 4},
	    {37, 50, 16}, {20, 7, 64}, {130, 70, 64},
	};
	const double h = 1.0;

	for (size_t si = 0; si < sizeof(fd) / sizeof(fd[0]); si++) {
		const struct shape *s = &fd[si];
		struct fixture f;
		float *w;
		size_t nw;
		double wn, rx = 0, tolw, tolx;

		fixture_init(&f, s, 3, 100 + si);
		w = eg_circ_weights(f.c);
		nw = eg_circ_params_stored(f.c);
		EG_CHECK_OK(
		    eg_circ_backward(f.c, f.x, f.r, f.batch, f.dx, f.dw));
		wn = norm2(w, nw);
		for (size_t b = 0; b < f.batch; b++) {
			double r1 = 0;

			for (size_t r = 0; r < s->m; r++)
				r1 += fabs(f.r[b * s->m + r]);
			/* ||x_b|| grows by at most h under the step. */
			rx += r1 * (norm2(f.x + b * s->n, s->n) + h);
		}
		tolw = 2 * TOL_REL * (wn + h) * rx / (2 * h);
		tolx = 2 * TOL_REL * wn * rx / (2 * h);

		for (size_t t = 0; t < nw; t++) {
			float keep = w[t];
			double lp, lm;

			w[t] = keep + (float)h;
			eg_circ_weights_changed(f.c);
			lp = loss(&f);
			w[t] = keep - (float)h;
			eg_circ_weights_changed(f.c);
			lm = loss(&f);
			w[t] = keep;
			EG_CHECK_MSG(
			    fabs((lp - lm) / (2 * h) - f.dw[t]) <= tolw,
			    "k=%zu dw[%zu]: fd %g vs %g (tol %g)", s->k, t,
			    (lp - lm) / (2 * h), f.dw[t], tolw);
		}
		eg_circ_weights_changed(f.c);
		for (size_t t = 0; t < f.batch * s->n; t++) {
			float keep = f.x[t];
			double lp, lm;

			f.x[t] = keep + (float)h;
			lp = loss(&f);
			f.x[t] = keep - (float)h;
			lm = loss(&f);
			f.x[t] = keep;
			EG_CHECK_MSG(
			    fabs((lp - lm) / (2 * h) - f.dx[t]) <= tolx,
			    "k=%zu dx[%zu]: fd %g vs %g (tol %g)", s->k, t,
			    (lp - lm) / (2 * h), f.dx[t], tolx);
		}
		fixture_free(&f);
	}
}

/*
 * Backward against the dense layer's gradients in double: dX = R W and
 * dW = sum_b R_b x_b^T projected onto the circulant structure,
 * dw_ij[t] = sum over the block's (r, c) with (r - c) mod k = t.
 */
EG_TEST(backward_matches_dense_gradients)
{
	for (size_t si = 0; si < NSHAPES; si++) {
		static const size_t batches[] = {1, 4};

		for (size_t bi = 0; bi < 2; bi++) {
			const struct shape *s = &shapes[si];
			size_t m = s->m, n = s->n, k = s->k, B = batches[bi];
			size_t q = (n + k - 1) / k, nw;
			struct fixture f;
			double *W, *dwref;
			double wn, sxr = 0;

			fixture_init(&f, s, B, 40 + si);
			nw = eg_circ_params_stored(f.c);
			W = ref_dense(m, n, k, eg_circ_weights(f.c), 1);
			dwref = calloc(nw, sizeof(double));
			EG_CHECK(dwref != NULL);
			for (size_t r = 0; r < m; r++)
				for (size_t c = 0; c < n; c++) {
					double g = 0;
					size_t t = (r % k + k - c % k) % k;

					for (size_t b = 0; b < B; b++)
						g += (double)f.r[b * m + r] *
						     f.x[b * n + c];
					dwref[((r / k) * q + c / k) * k + t] +=
					    g;
				}
			EG_CHECK_OK(
			    eg_circ_backward(f.c, f.x, f.r, B, f.dx, f.dw));
			wn = norm2(eg_circ_weights(f.c), nw);
			for (size_t b = 0; b < B; b++) {
				double rn = norm2(f.r + b * m, m);

				sxr += rn * norm2(f.x + b * n, n);
				for (size_t c = 0; c < n; c++) {
					double g = 0;

					for (size_t r = 0; r < m; r++)
						g += W[r * n + c] *
						     f.r[b * m + r];
					EG_CHECK_MSG(
					    fabs(f.dx[b * n + c] - g) <=
						TOL_REL * wn * rn,
					    "m=%zu n=%zu k=%zu dx[%zu][%zu]"
					    ": %g vs %g",
					    m, n, k, b, c, f.dx[b * n + c], g);
				}
			}
			for (size_t t = 0; t < nw; t++)
				EG_CHECK_MSG(
				    fabs(f.dw[t] - dwref[t]) <= TOL_REL * sxr,
				    "m=%zu n=%zu k=%zu dw[%zu]: %g vs %g", m, n,
				    k, t, f.dw[t], dwref[t]);
			free(W);
			free(dwref);
			fixture_free(&f);
		}
	}
}

/*
 * A batch gives each example exactly what a batch of one gives it (the
 * per-example arithmetic runs in the same order), and dw of the batch is
 * the sum of the examples' dw.
 */
EG_TEST(batch_equals_single_examples)
{
	const struct shape s = {40, 100, 16};
	const size_t B = 5;
	struct fixture f;
	float *out1, *dx1, *dw1;
	double *dwsum;
	size_t nw;

	fixture_init(&f, &s, B, 77);
	nw = eg_circ_params_stored(f.c);
	out1 = malloc(s.m * sizeof(float));
	dx1 = malloc(s.n * sizeof(float));
	dw1 = malloc(nw * sizeof(float));
	dwsum = calloc(nw, sizeof(double));
	EG_CHECK(out1 && dx1 && dw1 && dwsum);
	EG_CHECK_OK(eg_circ_forward(f.c, f.x, B, f.out));
	EG_CHECK_OK(eg_circ_backward(f.c, f.x, f.r, B, f.dx, f.dw));
	for (size_t b = 0; b < B; b++) {
		EG_CHECK_OK(eg_circ_forward(f.c, f.x + b * s.n, 1, out1));
		EG_CHECK(memcmp(out1, f.out + b * s.m, s.m * sizeof(float)) ==
			 0);
		EG_CHECK_OK(eg_circ_backward(f.c, f.x + b * s.n, f.r + b * s.m,
					     1, dx1, dw1));
		EG_CHECK(memcmp(dx1, f.dx + b * s.n, s.n * sizeof(float)) == 0);
		for (size_t t = 0; t < nw; t++)
			dwsum[t] += dw1[t];
	}
	for (size_t t = 0; t < nw; t++)
		EG_CHECK_NEAR(f.dw[t], dwsum[t],
			      1e-5 * (1 + fabs(dwsum[t])) * 10);
	/* dx = NULL and dw = NULL each skip only their own part. */
	EG_CHECK_OK(eg_circ_backward(f.c, f.x, f.r, B, NULL, dw1));
	EG_CHECK(memcmp(dw1, f.dw, nw * sizeof(float)) == 0);
	memset(dx1, 0, s.n * sizeof(float));
	EG_CHECK_OK(eg_circ_backward(f.c, f.x, f.r, 1, dx1, NULL));
	EG_CHECK(memcmp(dx1, f.dx, s.n * sizeof(float)) == 0);
	free(out1);
	free(dx1);
	free(dw1);
	free(dwsum);
	fixture_free(&f);
}

/*
 * One layer, many calls with varying batch sizes: the plans made at
 * create serve every call and give the same bits each time.  The weight
 * spectrum is a cache: a weight change is invisible to forward until
 * eg_circ_weights_changed, and then fully visible.
 */
EG_TEST(plans_reused_and_weight_spectrum_cached)
{
	const struct shape s = {64, 96, 32};
	const size_t B = 6;
	struct fixture f;
	float *first, *again;
	double *W, *ref;

	fixture_init(&f, &s, B, 9);
	first = malloc(B * s.m * sizeof(float));
	again = malloc(B * s.m * sizeof(float));
	ref = malloc(B * s.m * sizeof(double));
	EG_CHECK(first && again && ref);
	EG_CHECK_OK(eg_circ_forward(f.c, f.x, B, first));
	for (int it = 0; it < 200; it++) {
		size_t b = 1 + (size_t)it % B;

		EG_CHECK_OK(eg_circ_forward(f.c, f.x, b, again));
		EG_CHECK(memcmp(again, first, b * s.m * sizeof(float)) == 0);
		EG_CHECK_OK(eg_circ_backward(f.c, f.x, f.r, b, f.dx, f.dw));
	}

	eg_circ_weights(f.c)[5] += 3.0f;
	EG_CHECK_OK(eg_circ_forward(f.c, f.x, B, again));
	EG_CHECK(memcmp(again, first, B * s.m * sizeof(float)) == 0);
	eg_circ_weights_changed(f.c);
	EG_CHECK_OK(eg_circ_forward(f.c, f.x, B, again));
	EG_CHECK(memcmp(again, first, B * s.m * sizeof(float)) != 0);
	W = ref_dense(s.m, s.n, s.k, eg_circ_weights(f.c), 1);
	ref_forward(s.m, s.n, W, f.x, B, ref);
	for (size_t t = 0; t < B * s.m; t++)
		EG_CHECK_NEAR(again[t], ref[t], 1e-3);
	free(W);
	free(first);
	free(again);
	free(ref);
	fixture_free(&f);
}

/*
 * Forward, backward and the spectrum refresh allocate nothing, FFTW and
 * OpenBLAS included; create does (the counter is live).  This also shows
 * that they never plan: FFTW's planner allocates.
 */
EG_TEST(allocates_nothing)
{
#if COUNT_ALLOCS
	const struct shape s = {100, 77, 16};
	const size_t B = 4;
	struct fixture f;
	eg_circ *other = NULL;
	long during;

	fixture_init(&f, &s, B, 8);
	EG_CHECK_OK(eg_circ_forward(f.c, f.x, B, f.out));
	EG_CHECK_OK(eg_circ_backward(f.c, f.x, f.r, B, f.dx, f.dw));
	counting = 1;
	n_allocs = 0;
	for (size_t it = 0; it < 20; it++) {
		size_t b = 1 + it % B;

		eg_circ_forward(f.c, f.x, b, f.out);
		eg_circ_backward(f.c, f.x, f.r, b, f.dx, f.dw);
		eg_circ_backward(f.c, f.x, f.r, b, NULL, f.dw);
		eg_circ_weights_changed(f.c);
	}
	during = n_allocs;
	eg_circ_create(&other, 64, 64, 16, 2, EG_CIRC_PLAN_ESTIMATE, NULL);
	counting = 0;
	EG_CHECK_INT(during, 0);
	EG_CHECK_MSG(n_allocs > 0, "the counter saw no allocation in create");
	eg_circ_free(other);
	fixture_free(&f);
#else
	EG_SKIP("allocation counting is not possible under AddressSanitizer");
#endif
}

/* FFTW_MEASURE plans compute the same layer (up to rounding). */
EG_TEST(measured_plans_agree)
{
	const struct shape s = {100, 130, 64};
	struct fixture f;
	eg_circ *cm = NULL;
	float *out2, *dx2, *dw2;
	size_t nw;

	fixture_init(&f, &s, 2, 21);
	nw = eg_circ_params_stored(f.c);
	EG_CHECK_OK(
	    eg_circ_create(&cm, s.m, s.n, s.k, 2, EG_CIRC_PLAN_MEASURE, NULL));
	memcpy(eg_circ_weights(cm), eg_circ_weights(f.c), nw * sizeof(float));
	eg_circ_weights_changed(cm);
	out2 = malloc(2 * s.m * sizeof(float));
	dx2 = malloc(2 * s.n * sizeof(float));
	dw2 = malloc(nw * sizeof(float));
	EG_CHECK(out2 && dx2 && dw2);
	EG_CHECK_OK(eg_circ_forward(f.c, f.x, 2, f.out));
	EG_CHECK_OK(eg_circ_forward(cm, f.x, 2, out2));
	EG_CHECK_OK(eg_circ_backward(f.c, f.x, f.r, 2, f.dx, f.dw));
	EG_CHECK_OK(eg_circ_backward(cm, f.x, f.r, 2, dx2, dw2));
	for (size_t t = 0; t < 2 * s.m; t++)
		EG_CHECK_NEAR(f.out[t], out2[t], 1e-3);
	for (size_t t = 0; t < 2 * s.n; t++)
		EG_CHECK_NEAR(f.dx[t], dx2[t], 1e-3);
	for (size_t t = 0; t < nw; t++)
		EG_CHECK_NEAR(f.dw[t], dw2[t], 1e-3);
	free(out2);
	free(dx2);
	free(dw2);
	eg_circ_free(cm);
	fixture_free(&f);
}

EG_TEST(param_counts_and_compression)
{
	eg_circ *c = NULL;

	EG_CHECK_OK(eg_circ_create(&c, 4096, 4096, 256, 1,
				   EG_CIRC_PLAN_ESTIMATE, NULL));
	EG_CHECK_INT(eg_circ_p(c), 16);
	EG_CHECK_INT(eg_circ_q(c), 16);
	EG_CHECK_INT(eg_circ_params_stored(c), 65536);
	EG_CHECK_INT(eg_circ_params_dense(c), 4096 * 4096);
	EG_CHECK_NEAR(eg_circ_compression(c), 256.0, 0);
	/* All of it - weights, spectra, scratch - is still ~1/49 of the
	 * dense weights alone. */
	EG_CHECK(eg_circ_bytes(c) > 65536 * sizeof(float));
	EG_CHECK(eg_circ_bytes(c) < 4096 * 4096 * sizeof(float) / 40);
	eg_circ_free(c);

	/* Padding: 37 x 50 at k = 16 stores 3 x 4 blocks. */
	EG_CHECK_OK(
	    eg_circ_create(&c, 37, 50, 16, 1, EG_CIRC_PLAN_ESTIMATE, NULL));
	EG_CHECK_INT(eg_circ_params_stored(c), 3 * 4 * 16);
	EG_CHECK_INT(eg_circ_params_dense(c), 37 * 50);
	EG_CHECK_NEAR(eg_circ_compression(c), 1850.0 / 192.0, 1e-12);
	eg_circ_free(c);

	/* k = 1 is the dense layer: compression 1. */
	EG_CHECK_OK(
	    eg_circ_create(&c, 7, 9, 1, 1, EG_CIRC_PLAN_ESTIMATE, NULL));
	EG_CHECK_INT(eg_circ_params_stored(c), 63);
	EG_CHECK_NEAR(eg_circ_compression(c), 1.0, 0);
	eg_circ_free(c);
}

EG_TEST(rejects_bad_arguments)
{
	eg_circ *c = (eg_circ *)&c;
	eg_diag d = {{0}};
	float x[16] = {0}, out[16];

	EG_CHECK_INT(
	    eg_circ_create(&c, 16, 16, 12, 1, EG_CIRC_PLAN_ESTIMATE, &d),
	    EG_EINVAL);
	EG_CHECK(c == NULL);
	EG_CHECK(strstr(d.msg, "power of two") != NULL);
	EG_CHECK_INT(
	    eg_circ_create(&c, 16, 16, 0, 1, EG_CIRC_PLAN_ESTIMATE, NULL),
	    EG_EINVAL);
	EG_CHECK_INT(
	    eg_circ_create(&c, 0, 16, 4, 1, EG_CIRC_PLAN_ESTIMATE, NULL),
	    EG_EINVAL);
	EG_CHECK_INT(
	    eg_circ_create(&c, 16, 16, 4, 0, EG_CIRC_PLAN_ESTIMATE, NULL),
	    EG_EINVAL);
	EG_CHECK_INT(eg_circ_create(&c, (size_t)1 << 40, 16, 4, 1,
				    EG_CIRC_PLAN_ESTIMATE, &d),
		     EG_ETOO_BIG);

	EG_CHECK_OK(
	    eg_circ_create(&c, 16, 16, 4, 1, EG_CIRC_PLAN_ESTIMATE, NULL));
	EG_CHECK_INT(eg_circ_forward(c, x, 2, out), EG_EINVAL);
	EG_CHECK_INT(eg_circ_forward(c, x, 0, out), EG_EINVAL);
	EG_CHECK_INT(eg_circ_backward(c, x, x, 2, out, NULL), EG_EINVAL);
	/* Zero weights give zero output. */
	for (size_t t = 0; t < 16; t++)
		x[t] = (float)t;
	EG_CHECK_OK(eg_circ_forward(c, x, 1, out));
	for (size_t t = 0; t < 16; t++)
		EG_CHECK(out[t] == 0.0f);
	eg_circ_free(c);
	eg_circ_free(NULL);
}

/* Same seed, same weights; deviation as asked. */
EG_TEST(init_normal_deterministic_and_scaled)
{
	eg_circ *a = NULL, *b = NULL;
	eg_rng ra, rb;
	size_t nw;
	double s = 0, s2 = 0;

	EG_CHECK_OK(
	    eg_circ_create(&a, 256, 512, 16, 1, EG_CIRC_PLAN_ESTIMATE, NULL));
	EG_CHECK_OK(
	    eg_circ_create(&b, 256, 512, 16, 1, EG_CIRC_PLAN_ESTIMATE, NULL));
	nw = eg_circ_params_stored(a);
	eg_rng_seed_stream(&ra, 4, "init");
	eg_rng_seed_stream(&rb, 4, "init");
	eg_circ_init_normal(a, &ra, 0.05);
	eg_circ_init_normal(b, &rb, 0.05);
	EG_CHECK(memcmp(eg_circ_weights(a), eg_circ_weights(b),
			nw * sizeof(float)) == 0);
	for (size_t t = 0; t < nw; t++) {
		s += eg_circ_weights(a)[t];
		s2 += (double)eg_circ_weights(a)[t] * eg_circ_weights(a)[t];
	}
	EG_CHECK_NEAR(s / nw, 0.0, 0.005);
	EG_CHECK_NEAR(sqrt(s2 / nw), 0.05, 0.0025);
	eg_circ_free(a);
	eg_circ_free(b);
}

EG_TEST_MAIN(
    {"forward_matches_dense_expansion", forward_matches_dense_expansion, 20},
    {"expand_matches_first_column_convention",
     expand_matches_first_column_convention, 10},
    {"first_row_convention_rejected", first_row_convention_rejected, 10},
    {"gradients_match_finite_differences", gradients_match_finite_differences,
     30},
    {"backward_matches_dense_gradients", backward_matches_dense_gradients, 20},
    {"batch_equals_single_examples", batch_equals_single_examples, 10},
    {"plans_reused_and_weight_spectrum_cached",
     plans_reused_and_weight_spectrum_cached, 10},
    {"allocates_nothing", allocates_nothing, 10},
    {"measured_plans_agree", measured_plans_agree, 30},
    {"param_counts_and_compression", param_counts_and_compression, 10},
    {"rejects_bad_arguments", rejects_bad_arguments, 10},
    {"init_normal_deterministic_and_scaled",
     init_normal_deterministic_and_scaled, 10})
