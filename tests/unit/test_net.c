/*
 * test_net.c - the dense network kernels (kernels/net.h): losses,
 * activations and every parameter gradient against central finite
 * differences of an independent double-precision forward pass written here;
 * FA, DFA and BDFA updates against a plain-loop reference; the optimizers
 * against hand-computed updates; alignment against O(n^2) pairwise sums and
 * materialized per-example gradients; determinism; training to accuracy;
 * divergence; config validation; and no allocation inside training (a
 * counting malloc interposed in this binary).
 *
 * Tolerances: the net computes in float (relative rounding ~6e-8 per
 * operation, a few dozen operations deep in these tiny nets); the reference
 * and its finite differences are in double with h = 1e-5, whose truncation
 * error O(h^2) ~ 1e-10 is negligible.  So an analytic float gradient should
 * agree with the reference to ~1e-5 relative; the checks allow 1e-3
 * relative plus 1e-5 absolute (for entries near zero), far below the size
 * of any real error (a wrong sign, a missing factor, a wrong index).
 */
#include <malloc.h>
#include <stdint.h>
#include <string.h>

#include "kernels/net.h"
#include "kernels/rng.h"
#include "tests/harness.h"

#define MAXD 64
#define MAXN 64
#define MAXL 4

/* ------------------------------------------------------------------ */
/* A counting allocator: every allocation of this process goes through it
 * (symbol interposition reaches OpenBLAS too).  Not under AddressSanitizer,
 * which owns malloc itself. */
#if defined(__SANITIZE_ADDRESS__)
#define EG_COUNT_MALLOC 0
#else
#define EG_COUNT_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static long alloc_count;

void *malloc(size_t n)
{
	__atomic_add_fetch(&alloc_count, 1, __ATOMIC_RELAXED);
	return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
	__atomic_add_fetch(&alloc_count, 1, __ATOMIC_RELAXED);
	return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
	__atomic_add_fetch(&alloc_count, 1, __ATOMIC_RELAXED);
	return __libc_realloc(p, n);
}
void free(void *p)
{
	__libc_free(p);
}
int posix_memalign(void **out, size_t al, size_t n)
{
	__atomic_add_fetch(&alloc_count, 1, __ATOMIC_RELAXED);
	*out = __libc_memalign(al, n);
	return *out != NULL ? 0 : 12 /* ENOMEM */;
}
void *aligned_alloc(size_t al, size_t n)
{
	__atomic_add_fetch(&alloc_count, 1, __ATOMIC_RELAXED);
	return __libc_memalign(al, n);
}
void *memalign(size_t al, size_t n)
{
	__atomic_add_fetch(&alloc_count, 1, __ATOMIC_RELAXED);
	return __libc_memalign(al, n);
}
#endif

/* ------------------------------------------------------------------ */
/* The double-precision reference network. */

typedef struct ref_net {
	int L, dim[MAXL + 1];
	double w[MAXL][MAXD * MAXD], b[MAXL][MAXD];
	int has_bias;
	eg_act act;
	eg_loss loss;
} ref_net;

static double ref_act(eg_act act, double a)
{
	switch (act) {
	case EG_ACT_RELU: return a > 0 ? a : 0;
	case EG_ACT_SIN: return sin(a);
	case EG_ACT_TANH: return tanh(a);
	case EG_ACT_SIGMOID: return 1 / (1 + exp(-a));
	default: return a;
	}
}

static double ref_dact(eg_act act, double a)
{
	switch (act) {
	case EG_ACT_RELU: return a > 0 ? 1 : 0;
	case EG_ACT_SIN: return cos(a);
	case EG_ACT_TANH: return 1 - tanh(a) * tanh(a);
	case EG_ACT_SIGMOID: {
		double s = 1 / (1 + exp(-a));
		return s * (1 - s);
	}
	default: return 1;
	}
}

/* The per-example loss straight from PAPERS.md §1. */
static double ref_loss1(eg_loss loss, const double *z, int k, int y)
{
	double l = 0;
	if (loss == EG_LOSS_XENT) {
		double se = 0;
		for (int j = 0; j < k; j++)
			se += exp(z[j]);
		return log(se) - z[y];
	}
	if (loss == EG_LOSS_MSE) {
		for (int j = 0; j < k; j++)
			l += (z[j] - (j == y)) * (z[j] - (j == y));
		return l / k;
	}
	for (int j = 0; j < k; j++)
		if (j != y && 1 + z[j] - z[y] > 0)
			l += 1 + z[j] - z[y];
	return l;
}

/* Its gradient, derived by hand (checked against differences below). */
static void ref_dloss1(eg_loss loss, const double *z, int k, int y, double *dz)
{
	if (loss == EG_LOSS_XENT) {
		double se = 0;
		for (int j = 0; j < k; j++)
			se += exp(z[j]);
		for (int j = 0; j < k; j++)
			dz[j] = exp(z[j]) / se - (j == y);
	} else if (loss == EG_LOSS_MSE) {
		for (int j = 0; j < k; j++)
			dz[j] = 2 * (z[j] - (j == y)) / k;
	} else {
		dz[y] = 0;
		for (int j = 0; j < k; j++) {
			if (j == y)
				continue;
			dz[j] = 1 + z[j] - z[y] > 0;
			dz[y] -= dz[j];
		}
	}
}

static void ref_from_net(ref_net *r, eg_net *net)
{
	const eg_net_config *c = eg_net_config_of(net);
	memset(r, 0, sizeof(*r));
	r->L = c->n_hidden + 1;
	r->act = c->act;
	r->loss = c->loss;
	r->has_bias = c->bias;
	for (int l = 0; l < r->L; l++) {
		float *w, *b;
		int rows, cols;
		EG_CHECK_OK(eg_net_layer(net, l, &w, &b, &rows, &cols));
		EG_CHECK(rows <= MAXD && cols <= MAXD);
		r->dim[l] = cols;
		r->dim[l + 1] = rows;
		for (int i = 0; i < rows * cols; i++)
			r->w[l][i] = w[i];
		EG_CHECK((b != NULL) == (c->bias != 0));
		for (int i = 0; b != NULL && i < rows; i++)
			r->b[l][i] = b[i];
	}
}

/* Forward of one example: pre-activations a[l] and outputs h[l] (h[L-1]
 * = logits); returns the example's loss. */
static double ref_forward(const ref_net *r, const float *x, int y,
			  double a[MAXL][MAXD], double h[MAXL][MAXD])
{
	double in[MAXD];
	for (int j = 0; j < r->dim[0]; j++)
		in[j] = x[j];
	for (int l = 0; l < r->L; l++) {
		int rows = r->dim[l + 1], cols = r->dim[l];
		for (int i = 0; i < rows; i++) {
			double s = r->b[l][i];
			for (int j = 0; j < cols; j++)
				s += r->w[l][i * cols + j] * in[j];
			a[l][i] = s;
			h[l][i] = l == r->L - 1 ? s : ref_act(r->act, s);
		}
		memcpy(in, h[l], sizeof(double) * rows);
	}
	return ref_loss1(r->loss, h[r->L - 1], r->dim[r->L], y);
}

static double ref_mean_loss(const ref_net *r, const float *x,
			    const int32_t *y, int n)
{
	double a[MAXL][MAXD], h[MAXL][MAXD], s = 0;
	for (int i = 0; i < n; i++)
		s += ref_forward(r, x + i * r->dim[0], y[i], a, h);
	return s / n;
}

/*
 * Reference gradients of the mean loss under `algo` in plain loops:
 * fb[l] is hidden layer l's feedback matrix (as net.h documents it).
 */
static void ref_grads(const ref_net *r, eg_algo algo, float *const fb[MAXL],
		      const float *x, const int32_t *y, int n,
		      double dw[MAXL][MAXD * MAXD], double db[MAXL][MAXD])
{
	static double A[MAXN][MAXL][MAXD], H[MAXN][MAXL][MAXD];
	static double D[MAXN][MAXL][MAXD];
	const int L = r->L, K = r->dim[L];

	memset(dw, 0, sizeof(double) * MAXL * MAXD * MAXD);
	memset(db, 0, sizeof(double) * MAXL * MAXD);
	for (int i = 0; i < n; i++) {
		ref_forward(r, x + i * r->dim[0], y[i], A[i], H[i]);
		ref_dloss1(r->loss, H[i][L - 1], K, y[i], D[i][L - 1]);
		for (int k = 0; k < K; k++)
			D[i][L - 1][k] /= n;
		for (int l = L - 2; l >= 0; l--) {
			int m = r->dim[l + 1], up = r->dim[l + 2];
			for (int j = 0; j < m; j++) {
				double g = 0;
				if (algo == EG_ALGO_BP)
					for (int u = 0; u < up; u++)
						g += r->w[l + 1][u * m + j] *
						     D[i][l + 1][u];
				else if (algo == EG_ALGO_FA)
					for (int u = 0; u < up; u++)
						g += fb[l][j * up + u] *
						     D[i][l + 1][u];
				else
					for (int k = 0; k < K; k++)
						g += fb[l][j * K + k] *
						     D[i][L - 1][k];
				D[i][l][j] = g * ref_dact(r->act, A[i][l][j]);
			}
		}
		for (int l = 0; l < L; l++) {
			int rows = r->dim[l + 1], cols = r->dim[l];
			for (int u = 0; u < rows; u++) {
				db[l][u] += D[i][l][u];
				for (int v = 0; v < cols; v++) {
					double hin = l == 0 ? x[i * cols + v]
							    : H[i][l - 1][v];
					dw[l][u * cols + v] += D[i][l][u] * hin;
				}
			}
		}
	}
}

#define TOL_REL 1e-3
#define TOL_ABS 1e-5
static void check_close(double got, double want, const char *what, int l,
			int i)
{
	EG_CHECK_MSG(fabs(got - want) <= TOL_REL * fabs(want) + TOL_ABS,
		     "%s layer %d entry %d: %.9g vs reference %.9g", what, l,
		     i, got, want);
}

/* ------------------------------------------------------------------ */
/* Data. */

static void randn(eg_rng *r, float *v, size_t n, double sd)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (float)(sd * eg_rng_normal(r));
}

/* Gaussian blobs: K class means at deviation `sep`, unit noise, each
 * example then standardized (zero mean, unit variance, as PAPERS.md §1
 * prepares its inputs). */
static void blobs(uint64_t seed, int n, int dim, int K, double sep, float *x,
		  int32_t *y)
{
	eg_rng r;
	float means[16 * 64];
	eg_rng_seed_stream(&r, 42, "means"); /* same classes for every seed */
	randn(&r, means, (size_t)K * dim, sep);
	eg_rng_seed_stream(&r, seed, "blobs");
	for (int i = 0; i < n; i++) {
		y[i] = (int32_t)eg_rng_below(&r, (uint64_t)K);
		for (int j = 0; j < dim; j++)
			x[i * dim + j] = means[y[i] * dim + j] +
					 (float)eg_rng_normal(&r);
		double m = 0, v = 0;
		for (int j = 0; j < dim; j++)
			m += x[i * dim + j];
		m /= dim;
		for (int j = 0; j < dim; j++)
			v += (x[i * dim + j] - m) * (x[i * dim + j] - m);
		v = sqrt(v / dim);
		for (int j = 0; j < dim; j++)
			x[i * dim + j] = (float)((x[i * dim + j] - m) / v);
	}
}

static eg_net_config small_cfg(int nin, int h1, int h2, int nout)
{
	eg_net_config c;
	eg_net_config_default(&c);
	c.n_in = nin;
	c.n_hidden = (h1 > 0) + (h2 > 0);
	c.hidden[0] = h1;
	c.hidden[1] = h2;
	c.n_out = nout;
	c.batch = 8;
	c.seed = 7;
	return c;
}

/* Every parameter's gradient from one train_batch against central
 * differences of the reference's mean loss at the pre-step weights. */
static void fd_check_net(const eg_net_config *c, uint64_t dseed)
{
	eg_net *net;
	eg_diag d;
	static ref_net r;
	float x[8 * MAXD];
	int32_t y[8];
	eg_rng g;
	const double h = 1e-5;
	int n = c->batch;

	EG_CHECK_MSG(eg_net_create(c, &net, &d) == EG_OK, "%s", d.msg);
	eg_rng_seed(&g, dseed);
	randn(&g, x, (size_t)n * c->n_in, 1.0);
	for (int i = 0; i < n; i++)
		y[i] = (int32_t)eg_rng_below(&g, (uint64_t)c->n_out);
	/* Biases start at 0; give them values so their effect is tested. */
	for (int l = 0; l <= c->n_hidden && c->bias; l++) {
		float *b;
		int rows;
		EG_CHECK_OK(eg_net_layer(net, l, NULL, &b, &rows, NULL));
		randn(&g, b, (size_t)rows, 0.3);
	}
	ref_from_net(&r, net);
	double loss;
	EG_CHECK_OK(eg_net_train_batch(net, x, y, n, &loss));
	EG_CHECK_NEAR(loss, ref_mean_loss(&r, x, y, n), 1e-5 * (1 + loss));

	for (int l = 0; l < r.L; l++) {
		float *dw, *db;
		int rows = r.dim[l + 1], cols = r.dim[l];
		EG_CHECK_OK(eg_net_grads(net, l, &dw, &db));
		for (int i = 0; i < rows * cols; i++) {
			double keep = r.w[l][i];
			r.w[l][i] = keep + h;
			double lp = ref_mean_loss(&r, x, y, n);
			r.w[l][i] = keep - h;
			double lm = ref_mean_loss(&r, x, y, n);
			r.w[l][i] = keep;
			check_close(dw[i], (lp - lm) / (2 * h), "dW", l, i);
		}
		EG_CHECK((db != NULL) == (c->bias != 0));
		for (int i = 0; db != NULL && i < rows; i++) {
			double keep = r.b[l][i];
			r.b[l][i] = keep + h;
			double lp = ref_mean_loss(&r, x, y, n);
			r.b[l][i] = keep - h;
			double lm = ref_mean_loss(&r, x, y, n);
			r.b[l][i] = keep;
			check_close(db[i], (lp - lm) / (2 * h), "db", l, i);
		}
	}
	eg_net_free(net);
}

/* ------------------------------------------------------------------ */

EG_TEST(loss_values_and_gradients)
{
	const eg_loss losses[] = {EG_LOSS_XENT, EG_LOSS_MSE, EG_LOSS_HINGE};
	enum { N = 6, K = 5 };
	float z[N * K], dz[N * K];
	int32_t y[N];
	eg_rng g;

	eg_rng_seed(&g, 3);
	randn(&g, z, N * K, 1.5);
	for (int i = 0; i < N; i++)
		y[i] = (int32_t)eg_rng_below(&g, K);
	z[3] = 80.0f; /* a logit whose exp overflows float: xent must cope */
	for (size_t t = 0; t < 3; t++) {
		double zd[N * K], ref = 0;
		for (int i = 0; i < N * K; i++)
			zd[i] = z[i];
		for (int i = 0; i < N; i++)
			ref += ref_loss1(losses[t], zd + i * K, K, y[i]) / N;
		double got = eg_loss_forward_backward(losses[t], z, y, N, K, dz);
		EG_CHECK_NEAR(got, ref, 1e-5 * (1 + fabs(ref)));
		for (int i = 0; i < N * K; i++) {
			const double h = 1e-5;
			double keep = zd[i], lp = 0, lm = 0;
			int row = i / K;
			zd[i] = keep + h;
			lp = ref_loss1(losses[t], zd + row * K, K, y[row]);
			zd[i] = keep - h;
			lm = ref_loss1(losses[t], zd + row * K, K, y[row]);
			zd[i] = keep;
			check_close(dz[i], (lp - lm) / (2 * h) / N, "dz",
				    (int)t, i);
		}
	}
	/* Known answers at z = 0: log K, 1/K, K - 1. */
	float z0[K] = {0};
	int32_t y0 = 2;
	EG_CHECK_NEAR(eg_loss_forward_backward(EG_LOSS_XENT, z0, &y0, 1, K, dz),
		      log(K), 1e-6);
	EG_CHECK_NEAR(eg_loss_forward_backward(EG_LOSS_MSE, z0, &y0, 1, K, dz),
		      1.0 / K, 1e-7);
	EG_CHECK_NEAR(eg_loss_forward_backward(EG_LOSS_HINGE, z0, &y0, 1, K, dz),
		      K - 1, 0);
	EG_CHECK_NEAR(dz[2], -(K - 1), 0);
	EG_CHECK_NEAR(dz[0], 1, 0);
}

EG_TEST(activation_values_and_derivatives)
{
	const eg_act acts[] = {EG_ACT_RELU, EG_ACT_SIN, EG_ACT_TANH,
			       EG_ACT_SIGMOID, EG_ACT_LINEAR};
	const float a[] = {-2.5f, -0.3f, 0.2f, 1.7f, 4.0f};
	float out[5], dp[5], dp_only[5];

	for (size_t t = 0; t < 5; t++) {
		eg_act_apply(acts[t], a, 5, out, dp);
		eg_act_apply(acts[t], a, 5, NULL, dp_only);
		for (int i = 0; i < 5; i++) {
			const double h = 1e-6;
			double fd = (ref_act(acts[t], a[i] + h) -
				     ref_act(acts[t], a[i] - h)) / (2 * h);
			EG_CHECK_NEAR(out[i], ref_act(acts[t], a[i]), 1e-6);
			EG_CHECK_NEAR(dp[i], fd, 1e-5);
			EG_CHECK(dp_only[i] == dp[i]);
		}
	}
	/* ReLU lets a NaN through (so a diverged step is seen). */
	float nanv = NAN;
	eg_act_apply(EG_ACT_RELU, &nanv, 1, out, NULL);
	EG_CHECK(isnan(out[0]));
}

EG_TEST(activation_gradients_one_hidden_layer)
{
	const eg_act acts[] = {EG_ACT_RELU, EG_ACT_SIN, EG_ACT_TANH,
			       EG_ACT_SIGMOID, EG_ACT_LINEAR};
	for (size_t t = 0; t < 5; t++) {
		eg_net_config c = small_cfg(5, 7, 0, 3);
		c.act = acts[t];
		fd_check_net(&c, 100 + t);
	}
}

EG_TEST(dense_gradients_two_hidden_layers)
{
	const eg_loss losses[] = {EG_LOSS_XENT, EG_LOSS_MSE, EG_LOSS_HINGE};
	for (int bias = 0; bias <= 1; bias++)
		for (size_t t = 0; t < 3; t++) {
			eg_net_config c = small_cfg(6, 5, 4, 3);
			c.bias = bias;
			c.loss = losses[t];
			c.act = t == 1 ? EG_ACT_TANH : EG_ACT_RELU;
			c.init = EG_INIT_GLOROT;
			fd_check_net(&c, 200 + 10 * bias + t);
		}
	/* No hidden layer: the output layer alone. */
	eg_net_config c = small_cfg(6, 0, 0, 4);
	fd_check_net(&c, 300);
}

/* FA, DFA and BDFA: gradients and the SGD step against ref_grads. */
static void feedback_case(eg_algo algo, eg_feedback fbk, eg_act act)
{
	eg_net_config c = small_cfg(6, 5, 4, 3);
	eg_net *net;
	eg_diag d;
	static ref_net r;
	static double dw[MAXL][MAXD * MAXD], db[MAXL][MAXD];
	float *fb[MAXL] = {0};
	float x[8 * 6];
	int32_t y[8];
	eg_rng g;

	c.algo = algo;
	c.feedback = fbk;
	c.act = act;
	c.lr = 0.1;
	EG_CHECK_MSG(eg_net_create(&c, &net, &d) == EG_OK, "%s", d.msg);
	eg_rng_seed(&g, 11);
	randn(&g, x, 8 * 6, 1.0);
	for (int i = 0; i < 8; i++)
		y[i] = (int32_t)eg_rng_below(&g, 3);
	for (int l = 0; l < 2; l++) {
		int rows, cols;
		EG_CHECK_OK(eg_net_feedback(net, l, &fb[l], &rows, &cols));
		EG_CHECK_INT(rows, c.hidden[l]);
		EG_CHECK_INT(cols, algo == EG_ALGO_FA ? (l == 0 ? 4 : 3) : 3);
	}
	EG_CHECK_INT(eg_net_feedback(net, 2, NULL, NULL, NULL), EG_ERANGE);
	ref_from_net(&r, net);
	ref_grads(&r, algo, fb, x, y, 8, dw, db);
	EG_CHECK_OK(eg_net_train_batch(net, x, y, 8, NULL));
	for (int l = 0; l < 3; l++) {
		float *w, *b, *gw, *gb;
		int rows = r.dim[l + 1], cols = r.dim[l];
		EG_CHECK_OK(eg_net_layer(net, l, &w, &b, NULL, NULL));
		EG_CHECK_OK(eg_net_grads(net, l, &gw, &gb));
		for (int i = 0; i < rows * cols; i++) {
			check_close(gw[i], dw[l][i], "feedback dW", l, i);
			/* Plain SGD: w' = w - lr g. */
			check_close(w[i], r.w[l][i] - 0.1 * dw[l][i], "w'", l, i);
		}
		for (int i = 0; i < rows; i++) {
			check_close(gb[i], db[l][i], "feedback db", l, i);
			check_close(b[i], -0.1 * db[l][i], "b'", l, i);
		}
	}
	/* The algorithm really differs from BP where it should: the
	 * hidden-layer gradients are not BP's. */
	ref_grads(&r, EG_ALGO_BP, fb, x, y, 8, dw, db);
	float *gw0;
	EG_CHECK_OK(eg_net_grads(net, 0, &gw0, NULL));
	double diff = 0;
	for (int i = 0; i < 5 * 6; i++)
		diff += fabs(gw0[i] - dw[0][i]);
	EG_CHECK(diff > 1e-4);
	eg_net_free(net);
}

EG_TEST(feedback_algorithms_match_reference)
{
	feedback_case(EG_ALGO_FA, EG_FB_DEFAULT, EG_ACT_RELU);
	feedback_case(EG_ALGO_FA, EG_FB_UNIFORM, EG_ACT_TANH);
	feedback_case(EG_ALGO_DFA, EG_FB_DEFAULT, EG_ACT_TANH);
	feedback_case(EG_ALGO_DFA, EG_FB_BINARY, EG_ACT_SIN);
	feedback_case(EG_ALGO_BDFA, EG_FB_DEFAULT, EG_ACT_RELU);
}

/* Deviation of n floats around 0. */
static double rms(const float *v, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)v[i] * v[i];
	return sqrt(s / n);
}

EG_TEST(feedback_entries_and_scales)
{
	eg_net_config c = small_cfg(20, 300, 200, 10);
	eg_net *net;
	float *B;
	int rows, cols;

	/* BDFA: exactly +-1/sqrt(K) by default, both signs present. */
	c.algo = EG_ALGO_BDFA;
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	for (int l = 0; l < 2; l++) {
		int pos = 0;
		EG_CHECK_OK(eg_net_feedback(net, l, &B, &rows, &cols));
		EG_CHECK_INT(cols, 10);
		for (int i = 0; i < rows * cols; i++) {
			EG_CHECK(fabsf(B[i]) == (float)(1 / sqrt(10.0)));
			pos += B[i] > 0;
		}
		EG_CHECK(pos > rows * cols * 4 / 10 && pos < rows * cols * 6 / 10);
	}
	eg_net_free(net);
	/* An explicit scale is the magnitude itself. */
	c.feedback_scale = 0.25;
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK_OK(eg_net_feedback(net, 1, &B, &rows, &cols));
	for (int i = 0; i < rows * cols; i++)
		EG_CHECK(B[i] == 0.25f || B[i] == -0.25f);
	eg_net_free(net);
	/* FA automatic: deviation of W_{l+1}'s init (he: sqrt(2/300) for
	 * B_0, which stands in for W_1^T of shape 300 x 200).  With 60000
	 * draws the sample deviation is within 2 % (about 7 sigma). */
	c.algo = EG_ALGO_FA;
	c.feedback_scale = 0;
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK_OK(eg_net_feedback(net, 0, &B, &rows, &cols));
	EG_CHECK_INT(rows, 300);
	EG_CHECK_INT(cols, 200);
	EG_CHECK_NEAR(rms(B, 60000) / sqrt(2.0 / 300), 1.0, 0.02);
	eg_net_free(net);
	/* Uniform: same deviation, bounded by sqrt(3) s. */
	c.algo = EG_ALGO_DFA;
	c.feedback = EG_FB_UNIFORM;
	c.feedback_scale = 0.5;
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK_OK(eg_net_feedback(net, 0, &B, &rows, &cols));
	for (int i = 0; i < rows * cols; i++)
		EG_CHECK(fabsf(B[i]) <= 0.5f * sqrtf(3.0f));
	EG_CHECK_NEAR(rms(B, (size_t)rows * cols), 0.5, 0.5 * 0.05);
	eg_net_free(net);
	/* Init schemes: init_scale multiplies the first layer's deviation
	 * only; `normal` is N(0, scale^2) there and LeCun after it.  Layer 0
	 * is 20 -> 300 (6,000 draws: 5 % is about 5 sigma of the sample
	 * deviation), layer 1 is 300 -> 200 (60,000 draws, 2 %). */
	const eg_init schemes[] = {EG_INIT_HE, EG_INIT_GLOROT, EG_INIT_LECUN,
				   EG_INIT_NORMAL};
	const double want0[] = {3 * sqrt(2.0 / 20), 3 * sqrt(2.0 / 320),
				3 * sqrt(1.0 / 20), 3};
	const double want1[] = {sqrt(2.0 / 300), sqrt(2.0 / 500),
				sqrt(1.0 / 300), sqrt(1.0 / 300)};
	c = small_cfg(20, 300, 200, 10);
	c.init_scale = 3;
	for (int t = 0; t < 4; t++) {
		c.init = schemes[t];
		EG_CHECK_OK(eg_net_create(&c, &net, NULL));
		EG_CHECK_OK(eg_net_layer(net, 0, &B, NULL, &rows, &cols));
		EG_CHECK_NEAR(rms(B, 6000) / want0[t], 1.0, 0.05);
		EG_CHECK_OK(eg_net_layer(net, 1, &B, NULL, &rows, &cols));
		EG_CHECK_NEAR(rms(B, 60000) / want1[t], 1.0, 0.02);
		eg_net_free(net);
	}
}

/* Runs `steps` steps and checks each update against the optimizer's
 * formula, applied here in double to the gradients the net reports. */
static void optimizer_case(eg_optim opt, double mom, double wd)
{
	eg_net_config c = small_cfg(4, 3, 0, 2);
	eg_net *net;
	float x[8 * 4], *w0, *b0, *w1, *b1, *gw, *gb;
	int32_t y[8];
	double pw[2][12], pb[2][3], s1w[2][12] = {{0}}, s1b[2][3] = {{0}};
	double s2w[2][12] = {{0}}, s2b[2][3] = {{0}};
	eg_rng g;

	c.optim = opt;
	c.momentum = mom;
	c.weight_decay = wd;
	c.lr = 0.05;
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	eg_rng_seed(&g, 5);
	randn(&g, x, 8 * 4, 1.0);
	for (int i = 0; i < 8; i++)
		y[i] = (int32_t)eg_rng_below(&g, 2);
	EG_CHECK_OK(eg_net_layer(net, 0, &w0, &b0, NULL, NULL));
	EG_CHECK_OK(eg_net_layer(net, 1, &w1, &b1, NULL, NULL));
	for (int step = 1; step <= 4; step++) {
		for (int i = 0; i < 12; i++)
			pw[0][i] = w0[i];
		for (int i = 0; i < 6; i++)
			pw[1][i] = w1[i];
		for (int i = 0; i < 3; i++)
			pb[0][i] = b0[i];
		for (int i = 0; i < 2; i++)
			pb[1][i] = b1[i];
		EG_CHECK_OK(eg_net_train_batch(net, x, y, 8, NULL));
		for (int l = 0; l < 2; l++) {
			int nw = l == 0 ? 12 : 6, nb = l == 0 ? 3 : 2;
			float *w = l == 0 ? w0 : w1, *b = l == 0 ? b0 : b1;
			EG_CHECK_OK(eg_net_grads(net, l, &gw, &gb));
			for (int i = 0; i < nw + nb; i++) {
				int isb = i >= nw, j = isb ? i - nw : i;
				double p = isb ? pb[l][j] : pw[l][j];
				double gr = (isb ? gb[j] : gw[j]) +
					    (isb ? 0 : wd * p);
				double *s1 = isb ? &s1b[l][j] : &s1w[l][j];
				double *s2 = isb ? &s2b[l][j] : &s2w[l][j];
				double want;
				if (opt == EG_OPT_SGD) {
					*s1 = mom * *s1 + gr;
					want = p - 0.05 * *s1;
				} else {
					*s1 = 0.9 * *s1 + 0.1 * gr;
					*s2 = 0.999 * *s2 + 0.001 * gr * gr;
					double mh = *s1 / (1 - pow(0.9, step));
					double vh = *s2 / (1 - pow(0.999, step));
					want = p - 0.05 * mh / (sqrt(vh) + 1e-8);
				}
				double got = isb ? b[j] : w[j];
				/* float state: 1e-5 relative of the step */
				EG_CHECK_MSG(fabs(got - want) <=
						     1e-5 * fabs(p) + 1e-6,
					     "step %d layer %d param %d: %.9g vs %.9g",
					     step, l, i, got, want);
			}
		}
	}
	eg_net_free(net);
}

EG_TEST(sgd_momentum_weight_decay_and_adam)
{
	optimizer_case(EG_OPT_SGD, 0.0, 0.0);
	optimizer_case(EG_OPT_SGD, 0.9, 0.01);
	optimizer_case(EG_OPT_ADAM, 0.0, 0.0);
	optimizer_case(EG_OPT_ADAM, 0.0, 0.02);

	/* Hand-computed SGD: one input x = 1, W = [0, 0] set by hand, label
	 * 0, squared loss, lr 0.1, momentum 0.5, weight decay 0.1.
	 * Step 1: z = 0, dz = 2 (z - onehot) / 2 = [-1, 0] = g, v = g,
	 * w = [0.1, 0].  Step 2: z = [0.1, 0], g = [-0.9, 0],
	 * v = 0.5 (-1) + (-0.9 + 0.1 * 0.1) = -1.39, w = 0.1 + 0.139. */
	{
		eg_net_config sc = small_cfg(1, 0, 0, 2);
		eg_net *sn;
		float one = 1, *sw;
		int32_t zero = 0;
		double l1, l2;
		sc.bias = false;
		sc.loss = EG_LOSS_MSE;
		sc.lr = 0.1;
		sc.momentum = 0.5;
		sc.weight_decay = 0.1;
		EG_CHECK_OK(eg_net_create(&sc, &sn, NULL));
		EG_CHECK_OK(eg_net_layer(sn, 0, &sw, NULL, NULL, NULL));
		sw[0] = sw[1] = 0;
		EG_CHECK_OK(eg_net_train_batch(sn, &one, &zero, 1, &l1));
		EG_CHECK_NEAR(l1, 0.5, 1e-7);
		EG_CHECK_NEAR(sw[0], 0.1, 1e-7);
		EG_CHECK_NEAR(sw[1], 0.0, 0);
		EG_CHECK_OK(eg_net_train_batch(sn, &one, &zero, 1, &l2));
		EG_CHECK_NEAR(l2, 0.81 / 2, 1e-7);
		EG_CHECK_NEAR(sw[0], 0.239, 1e-6);
		eg_net_free(sn);
	}

	/* Hand-computed: Adam's first step is lr * sign(g) (bias-corrected
	 * m / sqrt(v) = g / |g|), whatever the size of g. */
	eg_net_config c = small_cfg(3, 0, 0, 2);
	eg_net *net;
	float x[3] = {1, -2, 0.5f}, *w, *gw, before[6];
	int32_t y = 1;
	c.optim = EG_OPT_ADAM;
	c.lr = 0.01;
	c.bias = false;
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK_OK(eg_net_layer(net, 0, &w, NULL, NULL, NULL));
	memcpy(before, w, sizeof(before));
	EG_CHECK_OK(eg_net_train_batch(net, x, &y, 1, NULL));
	EG_CHECK_OK(eg_net_grads(net, 0, &gw, NULL));
	for (int i = 0; i < 6; i++)
		EG_CHECK_NEAR(w[i], before[i] - 0.01 * (gw[i] > 0 ? 1 : -1),
			      1e-6);
	eg_net_free(net);
}

/* Omega by the definition: n sum_{i != j} <g_i, g_j> / ((n-1)(sum ||g_i||)^2). */
static double pairwise_omega(const double *g, int n, int dim)
{
	double cross = 0, norms = 0;
	for (int i = 0; i < n; i++) {
		double s = 0;
		for (int k = 0; k < dim; k++)
			s += g[i * dim + k] * g[i * dim + k];
		norms += sqrt(s);
		for (int j = 0; j < n; j++) {
			if (j == i)
				continue;
			for (int k = 0; k < dim; k++)
				cross += g[i * dim + k] * g[j * dim + k];
		}
	}
	return n * cross / ((n - 1) * norms * norms);
}

EG_TEST(alignment_against_pairwise)
{
	enum { N = 9, DIM = 300, LD = 310 };
	static float g[N * LD];
	static double gd[N * DIM];
	eg_rng r;

	eg_rng_seed(&r, 9);
	for (int i = 0; i < N * LD; i++)
		g[i] = (float)(eg_rng_normal(&r) + 0.4);
	for (int i = 0; i < N; i++)
		for (int k = 0; k < DIM; k++)
			gd[i * DIM + k] = g[i * LD + k];
	double want = pairwise_omega(gd, N, DIM);
	EG_CHECK(want > 0.05); /* the common offset makes it positive */
	EG_CHECK_NEAR(eg_alignment(g, N, DIM, LD), want, 1e-6);
	/* Identical vectors: 1; orthogonal: 0; opposite pair: -1... */
	float same[3 * 4] = {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4};
	float orth[3 * 3] = {1, 0, 0, 0, 2, 0, 0, 0, 3};
	float opp[2 * 2] = {1, 1, -1, -1};
	EG_CHECK_NEAR(eg_alignment(same, 3, 4, 4), 1.0, 1e-7);
	EG_CHECK_NEAR(eg_alignment(orth, 3, 3, 3), 0.0, 1e-12);
	EG_CHECK_NEAR(eg_alignment(opp, 2, 2, 2), -1.0, 1e-7);
	EG_CHECK(isnan(eg_alignment(same, 1, 4, 4)));
	float zero[8] = {0};
	EG_CHECK(isnan(eg_alignment(zero, 2, 4, 4)));
}

EG_TEST(diagnostics_against_materialized_gradients)
{
	/* 3 classes: 6, 5 and 1 example(s) (the last is skipped), batch 4
	 * so classes span chunks. */
	enum { N = 12, NIN = 5, H1 = 4 };
	eg_net_config c = small_cfg(NIN, H1, 3, 3);
	eg_net *net;
	static ref_net r;
	float x[N * NIN];
	int32_t y[N] = {0, 1, 0, 0, 1, 2, 0, 1, 0, 1, 0, 1};
	double a[MAXL][MAXD], h[MAXL][MAXD];
	static double gi[N][H1 * NIN], reps[N][H1], gsum[H1 * NIN];
	eg_net_diag dg;
	eg_rng g;

	c.batch = 4;
	c.act = EG_ACT_TANH;
	c.algo = EG_ALGO_DFA; /* diagnostics use the true gradient anyway */
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	eg_rng_seed(&g, 21);
	randn(&g, x, N * NIN, 1.0);
	ref_from_net(&r, net);
	memset(gsum, 0, sizeof(gsum));
	for (int i = 0; i < N; i++) {
		const double hh = 1e-5;
		ref_forward(&r, x + i * NIN, y[i], a, h);
		memcpy(reps[i], h[0], sizeof(reps[i]));
		/* The per-example gradient of W1, materialized, by central
		 * differences of the example's loss. */
		for (int p = 0; p < H1 * NIN; p++) {
			double keep = r.w[0][p];
			r.w[0][p] = keep + hh;
			double lp = ref_forward(&r, x + i * NIN, y[i], a, h);
			r.w[0][p] = keep - hh;
			double lm = ref_forward(&r, x + i * NIN, y[i], a, h);
			r.w[0][p] = keep;
			gi[i][p] = (lp - lm) / (2 * hh);
			gsum[p] += gi[i][p] / N;
		}
	}
	double ag = 0, ar = 0;
	for (int cls = 0; cls < 2; cls++) {
		static double gg[N * H1 * NIN], rr[N * H1];
		int m = 0;
		for (int i = 0; i < N; i++) {
			if (y[i] != cls)
				continue;
			memcpy(gg + m * H1 * NIN, gi[i], sizeof(gi[i]));
			memcpy(rr + m * H1, reps[i], sizeof(reps[i]));
			m++;
		}
		ag += pairwise_omega(gg, m, H1 * NIN) / 2;
		ar += pairwise_omega(rr, m, H1) / 2;
	}
	double gn = 0, wn = 0;
	for (int p = 0; p < H1 * NIN; p++) {
		gn += gsum[p] * gsum[p];
		wn += r.w[0][p] * r.w[0][p];
	}
	EG_CHECK_OK(eg_net_diagnostics(net, x, y, N, &dg));
	if (getenv("EG_NET_VERBOSE"))
		printf("align_grad %.6f (ref %.6f) align_repr %.6f (ref %.6f) "
		       "ratio %.6g (ref %.6g)\n", dg.align_grad, ag,
		       dg.align_repr, ar, dg.grad_ratio_w1, sqrt(gn / wn));
	EG_CHECK_NEAR(dg.align_grad, ag, 1e-4);
	EG_CHECK_NEAR(dg.align_repr, ar, 1e-5);
	EG_CHECK_NEAR(dg.grad_ratio_w1, sqrt(gn / wn), 1e-4 * sqrt(gn / wn));
	EG_CHECK(fabs(ag - ar) > 1e-3); /* the two are different numbers */
	eg_net_free(net);

	/* Without a hidden layer the alignments are NaN. */
	c = small_cfg(NIN, 0, 0, 3);
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK_OK(eg_net_diagnostics(net, x, y, N, &dg));
	EG_CHECK(isnan(dg.align_repr) && isnan(dg.align_grad));
	EG_CHECK(dg.grad_ratio_w1 > 0 && isfinite(dg.grad_ratio_w1));
	eg_net_free(net);
}

static void train_steps(eg_net *net, const float *x, const int32_t *y,
			int n, int steps)
{
	for (int s = 0; s < steps; s++)
		EG_CHECK_OK(eg_net_train_batch(net, x, y, n, NULL));
}

static int same_weights(eg_net *a, eg_net *b, int L)
{
	for (int l = 0; l < L; l++) {
		float *wa, *wb, *ba, *bb;
		int rows, cols;
		EG_CHECK_OK(eg_net_layer(a, l, &wa, &ba, &rows, &cols));
		EG_CHECK_OK(eg_net_layer(b, l, &wb, &bb, NULL, NULL));
		if (memcmp(wa, wb, sizeof(float) * rows * cols) != 0 ||
		    memcmp(ba, bb, sizeof(float) * rows) != 0)
			return 0;
	}
	return 1;
}

EG_TEST(determinism_by_seed)
{
	const eg_algo algos[] = {EG_ALGO_BP, EG_ALGO_DFA};
	enum { N = 64, NIN = 40 };
	static float x[N * NIN];
	int32_t y[N];
	blobs(1, N, NIN, 5, 1.0, x, y);
	for (int t = 0; t < 2; t++) {
		eg_net_config c = small_cfg(NIN, 128, 64, 5);
		eg_net *a, *b, *other;
		c.batch = N;
		c.algo = algos[t];
		c.momentum = 0.9;
		c.seed = 1234;
		EG_CHECK_OK(eg_net_create(&c, &a, NULL));
		EG_CHECK_OK(eg_net_create(&c, &b, NULL));
		c.seed = 1235;
		EG_CHECK_OK(eg_net_create(&c, &other, NULL));
		train_steps(a, x, y, N, 5);
		train_steps(b, x, y, N, 5);
		train_steps(other, x, y, N, 5);
		EG_CHECK(same_weights(a, b, 3));
		EG_CHECK(!same_weights(a, other, 3));
		eg_net_free(a);
		eg_net_free(b);
		eg_net_free(other);
	}
}

EG_TEST(training_reaches_accuracy)
{
	const eg_algo algos[] = {EG_ALGO_BP, EG_ALGO_FA, EG_ALGO_DFA,
				 EG_ALGO_BDFA};
	const eg_loss losses[] = {EG_LOSS_XENT, EG_LOSS_MSE, EG_LOSS_HINGE};
	const char *an[] = {"bp", "fa", "dfa", "bdfa"};
	const char *ln[] = {"xent", "mse", "hinge"};
	enum { N = 600, NT = 400, NIN = 20, K = 4 };
	static float x[N * NIN], xt[NT * NIN];
	static int32_t y[N], yt[NT], order[N];
	eg_rng r;

	/* Class means of deviation 2 per coordinate in 20 dimensions: about
	 * 12 noise deviations apart, linearly separable (nearly surely).
	 * lr 0.01 with momentum 0.9: at twice that, FA, DFA and BDFA with
	 * the squared loss diverge (their error is unbounded and not yet
	 * aligned), while BP does not. */
	blobs(1, N, NIN, K, 2.0, x, y);
	blobs(2, NT, NIN, K, 2.0, xt, yt);
	for (int a = 0; a < 4; a++)
		for (int l = 0; l < 3; l++) {
			eg_net_config c = small_cfg(NIN, 32, 32, K);
			eg_net *net;
			double loss, acc, l0;
			c.algo = algos[a];
			c.loss = losses[l];
			c.batch = 32;
			c.lr = 0.01;
			c.momentum = 0.9;
			EG_CHECK_OK(eg_net_create(&c, &net, NULL));
			EG_CHECK_OK(eg_net_evaluate(net, xt, yt, NT, &l0, NULL));
			eg_rng_seed_stream(&r, 3, "shuffle");
			for (int e = 0; e < 10; e++) {
				for (int i = 0; i < N; i++)
					order[i] = i;
				eg_rng_shuffle(&r, order, N);
				EG_CHECK_OK(eg_net_train_epoch(net, x, y, N, order,
							       NULL, &loss));
			}
			EG_CHECK_OK(eg_net_evaluate(net, xt, yt, NT, &loss, &acc));
			if (getenv("EG_NET_VERBOSE"))
				printf("%s/%s: %.3f\n", an[a], ln[l], acc);
			EG_CHECK_MSG(acc > 0.95 && loss < l0,
				     "%s/%s: test accuracy %.3f, loss %.4f from %.4f",
				     an[a], ln[l], acc, loss, l0);
			eg_net_free(net);
		}
}

EG_TEST(nan_input_diverges_without_update)
{
	eg_net_config c = small_cfg(4, 6, 0, 3);
	eg_net *net;
	float x[2 * 4] = {1, 2, 3, 4, 0.5f, NAN, 1, 1}, *w, before[24];
	int32_t y[2] = {0, 2};
	double loss;

	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK_OK(eg_net_layer(net, 0, &w, NULL, NULL, NULL));
	memcpy(before, w, sizeof(before));
	EG_CHECK_INT(eg_net_train_batch(net, x, y, 2, &loss), EG_EDIVERGED);
	EG_CHECK(!isfinite(loss));
	EG_CHECK(memcmp(before, w, sizeof(before)) == 0);
	/* An infinite input gives inf - inf in the logits: divergence. */
	float big[4] = {INFINITY, 1, 1, 1};
	EG_CHECK_INT(eg_net_train_batch(net, big, y, 1, NULL), EG_EDIVERGED);
	/* And bad calls are EINVAL, not divergence. */
	int32_t bad = 3;
	EG_CHECK_INT(eg_net_train_batch(net, x, &bad, 1, NULL), EG_EINVAL);
	EG_CHECK_INT(eg_net_train_batch(net, x, y, 9, NULL), EG_EINVAL);
	EG_CHECK_INT(eg_net_train_batch(net, x, y, 0, NULL), EG_EINVAL);
	eg_net_free(net);
}

/* Bad config number i and the field its message must name. */
static const char *mutate(eg_net_config *c, int i)
{
	switch (i) {
	case 0: c->n_in = 0; return "n_in";
	case 1: c->n_hidden = EG_NET_MAX_LAYERS; return "n_hidden";
	case 2: c->hidden[1] = -4; return "hidden[1]";
	case 3: c->n_out = 1; return "n_out";
	case 4: c->act = (eg_act)17; return "act";
	case 5: c->init_scale = 0; return "init_scale";
	case 6: c->init_scale = NAN; return "init_scale";
	case 7: c->loss = (eg_loss)9; return "loss";
	case 8: c->algo = (eg_algo)9; return "algo";
	case 9: c->feedback = (eg_feedback)9; return "feedback";
	case 10: c->algo = EG_ALGO_BDFA; c->feedback = EG_FB_NORMAL;
		return "feedback";
	case 11: c->feedback_scale = -1; return "feedback_scale";
	case 12: c->optim = (eg_optim)5; return "optim";
	case 13: c->lr = -0.1; return "lr";
	case 14: c->lr = INFINITY; return "lr";
	case 15: c->momentum = 1; return "momentum";
	case 16: c->weight_decay = -1e-4; return "weight_decay";
	case 17: c->adam_beta1 = 1.5; return "adam_beta1";
	case 18: c->adam_beta2 = -0.5; return "adam_beta2";
	case 19: c->adam_eps = -1; return "adam_eps";
	case 20: c->batch = 0; return "batch";
	case 21: c->init = (eg_init)8; return "init";
	default: return NULL;
	}
}

EG_TEST(create_rejects_bad_configs)
{
	for (int i = 0;; i++) {
		eg_net_config c = small_cfg(4, 3, 3, 2);
		eg_net *net = (eg_net *)&c; /* must be reset to NULL */
		eg_diag d = {{0}};
		const char *field = mutate(&c, i);
		if (field == NULL)
			break;
		int rc = eg_net_create(&c, &net, &d);
		EG_CHECK_MSG(rc == EG_EINVAL || rc == EG_ERANGE,
			     "case %d (%s): rc %d", i, field, rc);
		EG_CHECK(net == NULL);
		/* The message starts with the field name, then a space or
		 * colon (so "init" is not satisfied by "init_scale"). */
		size_t fl = strlen(field);
		EG_CHECK_MSG(strncmp(d.msg, field, fl) == 0 &&
				     (d.msg[fl] == ' ' || d.msg[fl] == ':'),
			     "case %d: message \"%s\" should name %s", i,
			     d.msg, field);
	}
	/* The defaults plus sizes are valid. */
	eg_net_config c = small_cfg(4, 3, 3, 2);
	eg_net *net;
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK_INT(eg_net_params_total(net), 4 * 3 + 3 + 3 * 3 + 3 + 3 * 2 + 2);
	/* Biases start at zero, weights do not. */
	EG_CHECK_INT(eg_net_params_nonzero(net), 4 * 3 + 3 * 3 + 3 * 2);
	eg_net_free(net);
}

EG_TEST(epoch_order_cancel_predict)
{
	enum { N = 50, NIN = 6, K = 3 };
	float x[N * NIN], z[N * K], dz[N * K];
	int32_t y[N], ident[N];
	eg_net_config c = small_cfg(NIN, 8, 0, K);
	eg_net *a, *b;
	double la, lb, loss, acc;
	volatile int cancel = 0;

	blobs(4, N, NIN, K, 1.0, x, y);
	for (int i = 0; i < N; i++)
		ident[i] = i;
	c.batch = 16; /* 50 = 3 full batches and one of 2 */
	EG_CHECK_OK(eg_net_create(&c, &a, NULL));
	EG_CHECK_OK(eg_net_create(&c, &b, NULL));
	EG_CHECK_OK(eg_net_train_epoch(a, x, y, N, NULL, &cancel, &la));
	EG_CHECK_OK(eg_net_train_epoch(b, x, y, N, ident, NULL, &lb));
	EG_CHECK(la == lb && same_weights(a, b, 2));
	cancel = 1;
	EG_CHECK_INT(eg_net_train_epoch(a, x, y, N, NULL, &cancel, &la),
		     EG_ECANCELLED);
	EG_CHECK(same_weights(a, b, 2));
	ident[3] = N; /* not a permutation index */
	EG_CHECK_INT(eg_net_train_epoch(a, x, y, N, ident, NULL, &la),
		     EG_EINVAL);

	/* predict's logits give evaluate's loss and accuracy. */
	EG_CHECK_OK(eg_net_predict(a, x, N, z));
	EG_CHECK_OK(eg_net_evaluate(a, x, y, N, &loss, &acc));
	int hits = 0;
	for (int i = 0; i < N; i++) {
		int arg = 0;
		for (int k = 1; k < K; k++)
			if (z[i * K + k] > z[i * K + arg])
				arg = k;
		hits += arg == y[i];
	}
	EG_CHECK_NEAR(acc, (double)hits / N, 1e-12);
	EG_CHECK_NEAR(loss, eg_loss_forward_backward(EG_LOSS_XENT, z, y, N, K, dz),
		      1e-6);
	eg_net_free(a);
	eg_net_free(b);
}

EG_TEST(no_allocation_while_training)
{
#if EG_COUNT_MALLOC
	enum { N = 300, NIN = 30 };
	static float x[N * NIN];
	static int32_t y[N], order[N];
	const eg_algo algos[] = {EG_ALGO_BP, EG_ALGO_FA, EG_ALGO_DFA,
				 EG_ALGO_BDFA};
	blobs(5, N, NIN, 4, 1.0, x, y);
	for (int i = 0; i < N; i++)
		order[N - 1 - i] = i;
	for (int t = 0; t < 4; t++) {
		eg_net_config c = small_cfg(NIN, 64, 32, 4);
		eg_net *net;
		double loss, acc;
		c.algo = algos[t];
		c.optim = t % 2 ? EG_OPT_ADAM : EG_OPT_SGD;
		c.batch = 64;
		EG_CHECK_OK(eg_net_create(&c, &net, NULL));
		/* One warm-up epoch lets OpenBLAS set up its buffers. */
		EG_CHECK_OK(eg_net_train_epoch(net, x, y, N, order, NULL, &loss));
		long before = __atomic_load_n(&alloc_count, __ATOMIC_RELAXED);
		for (int e = 0; e < 3; e++)
			EG_CHECK_OK(eg_net_train_epoch(net, x, y, N, order,
						       NULL, &loss));
		EG_CHECK_OK(eg_net_train_batch(net, x, y, 17, &loss));
		EG_CHECK_OK(eg_net_evaluate(net, x, y, N, &loss, &acc));
		long after = __atomic_load_n(&alloc_count, __ATOMIC_RELAXED);
		EG_CHECK_MSG(after == before, "%ld allocations while training",
			     after - before);
		eg_net_free(net);
	}
	/* Conv + pool (BP and hybrid) and circulant layers, masked too:
	 * still nothing allocated once created and pruned.  (The conv output
	 * is 8 x 2 x 3 = 48 wide: this machine's OpenBLAS small-matrix sgemm
	 * kernel, sgemm_small_kernel_b0_nn, mallocs by itself for some
	 * widths such as 8, 24 or 100, which is OpenBLAS's doing, not the
	 * net's.) */
	for (int t = 0; t < 3; t++) {
		eg_net_config c = small_cfg(NIN, 64, 32, 4);
		eg_net *net;
		double loss;
		if (t < 2) {
			c.n_in = 30;
			c.in_c = 1;
			c.in_h = 5;
			c.in_w = 6;
			c.n_conv = 1;
			c.conv[0] = (eg_net_conv){8, 3, 2};
			c.algo = t == 0 ? EG_ALGO_BP : EG_ALGO_HYBRID;
		} else {
			c.circulant_block = 8;
			c.optim = EG_OPT_ADAM;
		}
		c.batch = 64;
		EG_CHECK_OK(eg_net_create(&c, &net, NULL));
		EG_CHECK_OK(eg_net_prune(net, 0.3, 0.1, EG_PRUNE_LAYER, NULL));
		EG_CHECK_OK(eg_net_train_epoch(net, x, y, N, order, NULL, &loss));
		long before = __atomic_load_n(&alloc_count, __ATOMIC_RELAXED);
		for (int e = 0; e < 2; e++)
			EG_CHECK_OK(eg_net_train_epoch(net, x, y, N, order,
						       NULL, &loss));
		long after = __atomic_load_n(&alloc_count, __ATOMIC_RELAXED);
		EG_CHECK_MSG(after == before, "kind %d: %ld allocations while "
			     "training", t, after - before);
		eg_net_free(net);
	}
	/* The counter works: creating a net allocates. */
	long before = alloc_count;
	eg_net_config c = small_cfg(3, 2, 0, 2);
	eg_net *net;
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK(alloc_count > before);
	eg_net_free(net);
#else
	EG_SKIP("malloc is owned by AddressSanitizer in this build");
#endif
}

EG_TEST_MAIN({"loss_values_and_gradients", loss_values_and_gradients, 10},
	     {"activation_values_and_derivatives",
	      activation_values_and_derivatives, 10},
	     {"activation_gradients_one_hidden_layer",
	      activation_gradients_one_hidden_layer, 10},
	     {"dense_gradients_two_hidden_layers",
	      dense_gradients_two_hidden_layers, 10},
	     {"feedback_algorithms_match_reference",
	      feedback_algorithms_match_reference, 10},
	     {"feedback_entries_and_scales", feedback_entries_and_scales, 10},
	     {"sgd_momentum_weight_decay_and_adam",
	      sgd_momentum_weight_decay_and_adam, 10},
	     {"alignment_against_pairwise", alignment_against_pairwise, 10},
	     {"diagnostics_against_materialized_gradients",
	      diagnostics_against_materialized_gradients, 10},
	     {"determinism_by_seed", determinism_by_seed, 10},
	     {"training_reaches_accuracy", training_reaches_accuracy, 20},
	     {"nan_input_diverges_without_update",
	      nan_input_diverges_without_update, 10},
	     {"create_rejects_bad_configs", create_rejects_bad_configs, 10},
	     {"epoch_order_cancel_predict", epoch_order_cancel_predict, 10},
	     {"no_allocation_while_training", no_allocation_while_training, 20})
