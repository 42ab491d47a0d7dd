/*
 * net.c - the dense feed-forward network of net.h: creation and
 * initialization, the training step for BP, FA, DFA and BDFA, evaluation,
 * prediction and the PAPERS.md §1 diagnostics.
 *
 * Layers are numbered l = 0 .. L-1 with L = n_hidden + 1; layer l maps
 * dim[l] inputs to dim[l+1] outputs and holds W_l (dim[l+1] x dim[l],
 * row-major) and optionally b_l.  Everything lives in one aligned arena
 * allocated and zeroed by eg_net_create, each array starting on a 64-byte
 * boundary; after that nothing is allocated except the scratch of
 * eg_net_diagnostics (which is not part of the training loop and allocates
 * and frees its own, see there).
 *
 * The scratch for a batch (up to cfg.batch rows):
 *   h[l]     hidden layer l's output phi(a_l), n x dim[l+1]
 *   dp[l]    phi'(a_l) after the forward step; the backward step multiplies
 *            it in place by the incoming error, so it then holds delta_l
 *   z, dz    logits and dL/dz (the output layer's delta)
 *   g        the incoming error of the hidden layer being processed,
 *            n x max hidden width (W^T delta, B delta or B e)
 *   xb, yb   a gathered batch for eg_net_train_epoch with an order
 *
 * One training step: forward (one sgemm per layer, then the fused bias +
 * activation epilogue that also stores phi'); the loss pass writes dz and
 * the output bias gradient; then from the top layer down, the weight
 * gradient dW_l = delta_l^T h_{l-1} (one sgemm, transposes through the BLAS
 * flags, never by copying) and, for hidden layers, the incoming error by
 * the algorithm:
 *   BP    g = delta_{l+1} W_{l+1}             n x dim[l+1] x dim[l+2]
 *   FA    g = delta_{l+1} B_l^T               B_l is dim[l+1] x dim[l+2]
 *   DFA   g = dz B_l^T                        B_l is dim[l+1] x K
 *   BDFA  as DFA with B_l entries exactly +-scale
 * followed by one pass delta_l = g * phi'(a_l) that also sums the bias
 * gradient.  No input gradient is computed for layer 0.  The optimizer then
 * makes one pass over each parameter array.  The updates are applied only
 * after every gradient is computed, so BP's chain uses the weights of the
 * forward step.  If the loss is not finite the step stops before any
 * update and returns EG_EDIVERGED.
 *
 * Feedback matrices (indexed by the hidden layer whose error they give):
 * entries have deviation s, drawn normal N(0, s^2), uniform
 * U(-sqrt(3) s, sqrt(3) s) or binary +-s.  With feedback_scale = 0
 * ("automatic"), s is chosen so the projected error has the magnitude of
 * the true BP error at initialization:
 *   FA        s = the init deviation of W_{l+1} (the matrix B_l stands in
 *             for), so B_l delta has the same distribution as W_{l+1}^T delta;
 *   DFA/BDFA  s = 1/sqrt(K) (PAPERS.md's BDFA default), so each entry of
 *             B_l e has the RMS of the entries of e, the magnitude of the
 *             error at the output.
 * A non-zero feedback_scale is s itself.  Randomness comes from kernels/rng
 * streams "init" (weights, layer by layer, row-major) and "feedback" of
 * cfg.seed, so changing the algorithm does not change the weights.
 *
 * Determinism: every loop here runs in a fixed order; sgemm is
 * deterministic for a fixed OpenBLAS thread count.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/net_int.h"
#include "kernels/rng.h"

#define EG__ALIGN_FLOATS 16 /* 64 bytes */
#define EG__MAX_DIM (1 << 24)

struct eg_net {
	eg_net_config cfg;
	int L;                             /* layers: n_hidden + 1 */
	int dim[EG_NET_MAX_LAYERS + 1];    /* dim[0] = n_in, dim[L] = n_out */
	int max_hidden;                    /* widest hidden layer (0 if none) */
	long step;                         /* optimizer steps taken (Adam t) */
	float *w[EG_NET_MAX_LAYERS], *b[EG_NET_MAX_LAYERS];
	float *dw[EG_NET_MAX_LAYERS], *db[EG_NET_MAX_LAYERS];
	/* SGD: velocity in s1; Adam: first moment in s1, second in s2. */
	float *s1w[EG_NET_MAX_LAYERS], *s1b[EG_NET_MAX_LAYERS];
	float *s2w[EG_NET_MAX_LAYERS], *s2b[EG_NET_MAX_LAYERS];
	float *fb[EG_NET_MAX_LAYERS];      /* hidden layer l's feedback */
	int fb_rows[EG_NET_MAX_LAYERS], fb_cols[EG_NET_MAX_LAYERS];
	float *h[EG_NET_MAX_LAYERS], *dp[EG_NET_MAX_LAYERS];
	float *z, *dz, *g, *xb;
	int32_t *yb;
	float *arena;
};

void eg_net_config_default(eg_net_config *c)
{
	memset(c, 0, sizeof(*c));
	c->act = EG_ACT_RELU;
	c->bias = true;
	c->init = EG_INIT_HE;
	c->init_scale = 1.0;
	c->loss = EG_LOSS_XENT;
	c->algo = EG_ALGO_BP;
	c->feedback = EG_FB_DEFAULT;
	c->optim = EG_OPT_SGD;
	c->lr = 0.01;
	c->batch = 128;
}

const eg_net_config *eg_net_config_of(const eg_net *net)
{
	return &net->cfg;
}

/*
 * The initial deviation of layer l's weights.  init_scale multiplies the
 * FIRST layer's deviation only: it is the sigma that PAPERS.md §1 sweeps
 * ("the first-layer init is N(0, sigma^2)"), and scaling every layer would
 * also blow up the logits and turn a memorization sweep into a
 * saturation sweep.  For the same reason `normal` is N(0, scale^2) for the
 * first layer and LeCun normal (1/fan_in) for the layers after it: a
 * unit-deviation 1024-wide output layer makes logits of magnitude ~30.
 */
static double init_sd(const eg_net_config *c, int l, int fan_in, int fan_out)
{
	double scale = l == 0 ? c->init_scale : 1.0;

	switch (c->init) {
	case EG_INIT_HE:
		return scale * sqrt(2.0 / fan_in);
	case EG_INIT_GLOROT:
		return scale * sqrt(2.0 / (fan_in + fan_out));
	case EG_INIT_LECUN:
		return scale * sqrt(1.0 / fan_in);
	case EG_INIT_NORMAL:
	default:
		return l == 0 ? scale : sqrt(1.0 / fan_in);
	}
}

static bool finite_nonneg(double v)
{
	return isfinite(v) && v >= 0.0;
}

static int validate(const eg_net_config *c, eg_diag *d)
{
	if (c->n_in < 1 || c->n_in > EG__MAX_DIM)
		return eg_diag_set(d, EG_ERANGE, "n_in must be in 1..%d, got %d",
				   EG__MAX_DIM, c->n_in);
	if (c->n_hidden < 0 || c->n_hidden > EG_NET_MAX_LAYERS - 1)
		return eg_diag_set(d, EG_ERANGE,
				   "n_hidden must be in 0..%d, got %d",
				   EG_NET_MAX_LAYERS - 1, c->n_hidden);
	for (int i = 0; i < c->n_hidden; i++)
		if (c->hidden[i] < 1 || c->hidden[i] > EG__MAX_DIM)
			return eg_diag_set(d, EG_ERANGE,
					   "hidden[%d] must be in 1..%d, got %d",
					   i, EG__MAX_DIM, c->hidden[i]);
	if (c->n_out < 2 || c->n_out > EG__MAX_DIM)
		return eg_diag_set(d, EG_ERANGE,
				   "n_out must be in 2..%d, got %d",
				   EG__MAX_DIM, c->n_out);
	if ((unsigned)c->act > EG_ACT_LINEAR)
		return eg_diag_set(d, EG_EINVAL, "act: unknown activation %d",
				   (int)c->act);
	if ((unsigned)c->init > EG_INIT_NORMAL)
		return eg_diag_set(d, EG_EINVAL, "init: unknown scheme %d",
				   (int)c->init);
	if (!isfinite(c->init_scale) || c->init_scale <= 0.0)
		return eg_diag_set(d, EG_ERANGE,
				   "init_scale must be > 0 and finite, got %g",
				   c->init_scale);
	if ((unsigned)c->loss > EG_LOSS_HINGE)
		return eg_diag_set(d, EG_EINVAL, "loss: unknown loss %d",
				   (int)c->loss);
	if ((unsigned)c->algo > EG_ALGO_BDFA)
		return eg_diag_set(d, EG_EINVAL, "algo: unknown algorithm %d",
				   (int)c->algo);
	if ((unsigned)c->feedback > EG_FB_BINARY)
		return eg_diag_set(d, EG_EINVAL,
				   "feedback: unknown initialization %d",
				   (int)c->feedback);
	if (c->algo == EG_ALGO_BDFA && c->feedback != EG_FB_DEFAULT &&
	    c->feedback != EG_FB_BINARY)
		return eg_diag_set(d, EG_EINVAL,
				   "feedback must be binary for bdfa");
	if (!finite_nonneg(c->feedback_scale))
		return eg_diag_set(d, EG_ERANGE,
				   "feedback_scale must be >= 0 and finite, got %g",
				   c->feedback_scale);
	if ((unsigned)c->optim > EG_OPT_ADAM)
		return eg_diag_set(d, EG_EINVAL, "optim: unknown optimizer %d",
				   (int)c->optim);
	if (!isfinite(c->lr) || c->lr <= 0.0)
		return eg_diag_set(d, EG_ERANGE,
				   "lr must be > 0 and finite, got %g", c->lr);
	if (!finite_nonneg(c->momentum) || c->momentum >= 1.0)
		return eg_diag_set(d, EG_ERANGE,
				   "momentum must be in [0, 1), got %g",
				   c->momentum);
	if (!finite_nonneg(c->weight_decay))
		return eg_diag_set(d, EG_ERANGE,
				   "weight_decay must be >= 0 and finite, got %g",
				   c->weight_decay);
	if (!finite_nonneg(c->adam_beta1) || c->adam_beta1 >= 1.0)
		return eg_diag_set(d, EG_ERANGE,
				   "adam_beta1 must be in [0, 1), got %g",
				   c->adam_beta1);
	if (!finite_nonneg(c->adam_beta2) || c->adam_beta2 >= 1.0)
		return eg_diag_set(d, EG_ERANGE,
				   "adam_beta2 must be in [0, 1), got %g",
				   c->adam_beta2);
	if (!finite_nonneg(c->adam_eps))
		return eg_diag_set(d, EG_ERANGE,
				   "adam_eps must be >= 0 and finite, got %g",
				   c->adam_eps);
	if (c->batch < 1 || c->batch > EG__MAX_DIM)
		return eg_diag_set(d, EG_ERANGE, "batch must be in 1..%d, got %d",
				   EG__MAX_DIM, c->batch);
	return EG_OK;
}

/* Carves the arena: first pass (base NULL) only counts floats. */
static size_t carve(eg_net *net, float *base)
{
	size_t off = 0;
	const size_t nb = (size_t)net->cfg.batch;
	const int K = net->dim[net->L];
	const bool adam = net->cfg.optim == EG_OPT_ADAM;
	const bool fbk = net->cfg.algo != EG_ALGO_BP;

#define TAKE(ptr, count)                                               \
	do {                                                           \
		size_t eg__n = (count);                                \
		(ptr) = base != NULL ? base + off : NULL;              \
		off += (eg__n + EG__ALIGN_FLOATS - 1) /                \
		       EG__ALIGN_FLOATS * EG__ALIGN_FLOATS;            \
	} while (0)

	for (int l = 0; l < net->L; l++) {
		size_t r = (size_t)net->dim[l + 1], c = (size_t)net->dim[l];
		TAKE(net->w[l], r * c);
		TAKE(net->dw[l], r * c);
		TAKE(net->s1w[l], r * c);
		if (adam)
			TAKE(net->s2w[l], r * c);
		if (net->cfg.bias) {
			TAKE(net->b[l], r);
			TAKE(net->db[l], r);
			TAKE(net->s1b[l], r);
			if (adam)
				TAKE(net->s2b[l], r);
		}
		if (l < net->L - 1) {
			TAKE(net->h[l], nb * r);
			TAKE(net->dp[l], nb * r);
			if (fbk) {
				net->fb_rows[l] = (int)r;
				net->fb_cols[l] = net->cfg.algo == EG_ALGO_FA
							  ? net->dim[l + 2]
							  : K;
				TAKE(net->fb[l], r * (size_t)net->fb_cols[l]);
			}
		}
	}
	TAKE(net->z, nb * K);
	TAKE(net->dz, nb * K);
	TAKE(net->g, nb * (size_t)net->max_hidden);
	TAKE(net->xb, nb * (size_t)net->dim[0]);
	/* The labels take whole floats' worth of int32 (same size). */
	float *yb;
	TAKE(yb, nb);
	net->yb = (int32_t *)yb;
#undef TAKE
	return off;
}

static void init_params(eg_net *net)
{
	const eg_net_config *c = &net->cfg;
	eg_rng r;

	eg_rng_seed_stream(&r, c->seed, "init");
	for (int l = 0; l < net->L; l++) {
		size_t cnt = (size_t)net->dim[l + 1] * net->dim[l];
		double sd = init_sd(c, l, net->dim[l], net->dim[l + 1]);
		for (size_t i = 0; i < cnt; i++)
			net->w[l][i] = (float)(sd * eg_rng_normal(&r));
	}
	if (c->algo == EG_ALGO_BP)
		return;

	eg_rng_seed_stream(&r, c->seed, "feedback");
	eg_feedback kind = c->feedback;
	if (kind == EG_FB_DEFAULT)
		kind = c->algo == EG_ALGO_BDFA ? EG_FB_BINARY : EG_FB_NORMAL;
	for (int l = 0; l < net->L - 1; l++) {
		double s = c->feedback_scale;
		if (s == 0.0)
			s = c->algo == EG_ALGO_FA
				    ? init_sd(c, l + 1, net->dim[l + 1], net->dim[l + 2])
				    : 1.0 / sqrt((double)net->dim[net->L]);
		size_t cnt = (size_t)net->fb_rows[l] * net->fb_cols[l];
		float *B = net->fb[l];
		for (size_t i = 0; i < cnt; i++) {
			switch (kind) {
			case EG_FB_UNIFORM:
				B[i] = (float)(s * sqrt(3.0) *
					       (2.0 * eg_rng_uniform(&r) - 1.0));
				break;
			case EG_FB_BINARY:
				B[i] = (eg_rng_u64(&r) >> 63) ? (float)s
							      : (float)-s;
				break;
			default:
				B[i] = (float)(s * eg_rng_normal(&r));
				break;
			}
		}
	}
}

int eg_net_create(const eg_net_config *c, eg_net **out, eg_diag *d)
{
	eg_net *net = NULL;
	void *mem = NULL;
	int rc;

	*out = NULL;
	if ((rc = validate(c, d)) != EG_OK)
		return rc;
	net = calloc(1, sizeof(*net));
	if (net == NULL)
		goto oom;
	net->cfg = *c;
	if (net->cfg.adam_beta1 == 0.0)
		net->cfg.adam_beta1 = 0.9;
	if (net->cfg.adam_beta2 == 0.0)
		net->cfg.adam_beta2 = 0.999;
	if (net->cfg.adam_eps == 0.0)
		net->cfg.adam_eps = 1e-8;
	net->L = c->n_hidden + 1;
	net->dim[0] = c->n_in;
	for (int i = 0; i < c->n_hidden; i++) {
		net->dim[i + 1] = c->hidden[i];
		if (c->hidden[i] > net->max_hidden)
			net->max_hidden = c->hidden[i];
	}
	net->dim[net->L] = c->n_out;

	size_t nfloats = carve(net, NULL);
	if (nfloats > SIZE_MAX / sizeof(float) / 2 ||
	    posix_memalign(&mem, 64, nfloats * sizeof(float)) != 0)
		goto oom;
	/* Zeroed once: optimizer state and biases start at 0. */
	memset(mem, 0, nfloats * sizeof(float));
	net->arena = mem;
	carve(net, net->arena);
	init_params(net);
	*out = net;
	return EG_OK;
oom:
	free(net);
	return eg_diag_set(d, EG_ENOMEM, "network of %d layers: out of memory",
			   c->n_hidden + 1);
}

void eg_net_free(eg_net *net)
{
	if (net == NULL)
		return;
	free(net->arena);
	free(net);
}

/*
 * Forward step of n rows of x into the hidden buffers and `zout` (n x K).
 * With want_dphi the epilogue also stores phi' for a backward step.
 */
static void forward(eg_net *net, const float *x, int n, float *zout,
		    bool want_dphi)
{
	const float *in = x;

	for (int l = 0; l < net->L; l++) {
		int r = net->dim[l + 1], c = net->dim[l];
		bool top = l == net->L - 1;
		float *o = top ? zout : net->h[l];

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, c,
			    1.0f, in, c, net->w[l], c, 0.0f, o, r);
		if (top) {
			if (net->b[l] != NULL)
				eg__act_epilogue(EG_ACT_LINEAR, o, net->b[l],
						 (size_t)n, (size_t)r, o, NULL);
		} else {
			eg__act_epilogue(net->cfg.act, o, net->b[l], (size_t)n,
					 (size_t)r, o,
					 want_dphi ? net->dp[l] : NULL);
		}
		in = o;
	}
}

/*
 * delta_l = g .* phi'(a_l) in place in dp[l] (n x m); if db is not NULL
 * it receives the column sums (row 0 assigns, so no clearing).
 */
static void apply_dphi(float *restrict dp, const float *restrict g,
		       float *restrict db, int n, int m)
{
	for (int i = 0; i < n; i++) {
		float *dr = dp + (size_t)i * m;
		const float *gr = g + (size_t)i * m;
		if (db == NULL) {
			for (int j = 0; j < m; j++)
				dr[j] *= gr[j];
		} else if (i == 0) {
			for (int j = 0; j < m; j++)
				db[j] = dr[j] *= gr[j];
		} else {
			for (int j = 0; j < m; j++)
				db[j] += dr[j] *= gr[j];
		}
	}
}

/* The error arriving at hidden layer l (into net->g) under `algo`;
 * needs delta_{l+1} (dp[l+1], or dz for the top layer) for BP and FA. */
static void incoming_error(eg_net *net, eg_algo algo, int l, int n)
{
	int m = net->dim[l + 1], up = net->dim[l + 2], K = net->dim[net->L];
	const float *dnext = l + 1 == net->L - 1 ? net->dz : net->dp[l + 1];

	switch (algo) {
	case EG_ALGO_BP:
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, up,
			    1.0f, dnext, up, net->w[l + 1], m, 0.0f, net->g, m);
		break;
	case EG_ALGO_FA:
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, up,
			    1.0f, dnext, up, net->fb[l], up, 0.0f, net->g, m);
		break;
	case EG_ALGO_DFA:
	case EG_ALGO_BDFA:
	default:
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, K,
			    1.0f, net->dz, K, net->fb[l], K, 0.0f, net->g, m);
		break;
	}
}

static void update(eg_net *net)
{
	const eg_net_config *c = &net->cfg;
	float lr = (float)c->lr, wd = (float)c->weight_decay;

	net->step++;
	if (c->optim == EG_OPT_SGD) {
		float mu = (float)c->momentum;
		for (int l = 0; l < net->L; l++) {
			size_t r = (size_t)net->dim[l + 1];
			eg__optim_sgd(net->w[l], net->dw[l], net->s1w[l],
				      r * net->dim[l], lr, mu, wd);
			if (net->b[l] != NULL)
				eg__optim_sgd(net->b[l], net->db[l],
					      net->s1b[l], r, lr, mu, 0.0f);
		}
		return;
	}
	float b1 = (float)c->adam_beta1, b2 = (float)c->adam_beta2;
	float eps = (float)c->adam_eps;
	float c1 = (float)(1.0 / (1.0 - pow(c->adam_beta1, (double)net->step)));
	float c2 = (float)(1.0 / (1.0 - pow(c->adam_beta2, (double)net->step)));
	for (int l = 0; l < net->L; l++) {
		size_t r = (size_t)net->dim[l + 1];
		eg__optim_adam(net->w[l], net->dw[l], net->s1w[l], net->s2w[l],
			       r * net->dim[l], lr, b1, b2, eps, c1, c2, wd);
		if (net->b[l] != NULL)
			eg__optim_adam(net->b[l], net->db[l], net->s1b[l],
				       net->s2b[l], r, lr, b1, b2, eps, c1, c2,
				       0.0f);
	}
}

static bool labels_ok(const int32_t *y, size_t n, int K)
{
	for (size_t i = 0; i < n; i++)
		if (y[i] < 0 || y[i] >= K)
			return false;
	return true;
}

int eg_net_train_batch(eg_net *net, const float *x, const int32_t *y, int n,
		       double *loss)
{
	const int L = net->L, K = net->dim[L];

	if (x == NULL || y == NULL || n < 1 || n > net->cfg.batch ||
	    !labels_ok(y, (size_t)n, K))
		return EG_EINVAL;
	forward(net, x, n, net->z, true);
	double sum = eg__loss_rows(net->cfg.loss, net->z, y, n, K,
				   1.0f / (float)n, net->dz, net->db[L - 1],
				   NULL);
	double mean = sum / n;
	if (loss != NULL)
		*loss = mean;
	if (!isfinite(mean))
		return EG_EDIVERGED;

	for (int l = L - 1; l >= 0; l--) {
		int r = net->dim[l + 1], c = net->dim[l];
		const float *delta = l == L - 1 ? net->dz : net->dp[l];
		const float *hin = l == 0 ? x : net->h[l - 1];

		if (l < L - 1) {
			incoming_error(net, net->cfg.algo, l, n);
			apply_dphi(net->dp[l], net->g, net->db[l], n, r);
		}
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, c, n,
			    1.0f, delta, r, hin, c, 0.0f, net->dw[l], c);
	}
	update(net);
	return EG_OK;
}

int eg_net_train_epoch(eg_net *net, const float *x, const int32_t *y,
		       size_t n, const int32_t *order,
		       const volatile int *cancel, double *loss)
{
	const size_t B = (size_t)net->cfg.batch, nin = (size_t)net->dim[0];
	double total = 0.0;
	int rc = EG_OK;

	if (x == NULL || y == NULL)
		return EG_EINVAL;
	if (order != NULL)
		for (size_t i = 0; i < n; i++)
			if (order[i] < 0 || (size_t)order[i] >= n)
				return EG_EINVAL;
	for (size_t s = 0; s < n; s += B) {
		int nb = (int)(n - s < B ? n - s : B);
		double l;

		if (cancel != NULL && *cancel) {
			rc = EG_ECANCELLED;
			break;
		}
		if (order == NULL) {
			rc = eg_net_train_batch(net, x + s * nin, y + s, nb, &l);
		} else {
			for (int i = 0; i < nb; i++) {
				size_t src = (size_t)order[s + (size_t)i];
				memcpy(net->xb + (size_t)i * nin,
				       x + src * nin, nin * sizeof(float));
				net->yb[i] = y[src];
			}
			rc = eg_net_train_batch(net, net->xb, net->yb, nb, &l);
		}
		if (rc != EG_OK)
			break;
		total += l * nb;
	}
	if (loss != NULL)
		*loss = n > 0 ? total / (double)n : NAN;
	return rc;
}

int eg_net_evaluate(eg_net *net, const float *x, const int32_t *y, size_t n,
		    double *loss, double *acc)
{
	const size_t B = (size_t)net->cfg.batch, nin = (size_t)net->dim[0];
	const int K = net->dim[net->L];
	double total = 0.0;
	size_t hits = 0;

	if (x == NULL || y == NULL || n == 0 || !labels_ok(y, n, K))
		return EG_EINVAL;
	for (size_t s = 0; s < n; s += B) {
		int nb = (int)(n - s < B ? n - s : B), h;
		forward(net, x + s * nin, nb, net->z, false);
		total += eg__loss_rows(net->cfg.loss, net->z, y + s, nb, K,
				       1.0f, NULL, NULL, &h);
		hits += (size_t)h;
	}
	if (loss != NULL)
		*loss = total / (double)n;
	if (acc != NULL)
		*acc = (double)hits / (double)n;
	return EG_OK;
}

int eg_net_predict(eg_net *net, const float *x, size_t n, float *out)
{
	const size_t B = (size_t)net->cfg.batch, nin = (size_t)net->dim[0];
	const size_t K = (size_t)net->dim[net->L];

	if (x == NULL || out == NULL)
		return EG_EINVAL;
	for (size_t s = 0; s < n; s += B) {
		int nb = (int)(n - s < B ? n - s : B);
		forward(net, x + s * nin, nb, out + s * K, false);
	}
	return EG_OK;
}

/* PAPERS.md §1: n (||sum g||^2 - sum ||g||^2) / ((n - 1) (sum ||g||)^2). */
static double omega(double sum_sq, double sq_norms, double norms, size_t n)
{
	if (n < 2 || !(norms > 0.0))
		return NAN;
	return (double)n * (sum_sq - sq_norms) /
	       ((double)(n - 1) * norms * norms);
}

double eg_alignment(const float *g, int n, int dim, int ld)
{
	/* ||sum_i g_i||^2 column block by column block, so the running sum
	 * fits on the stack and g is still read row by row. */
	enum { BLK = 256 };
	double acc[BLK], sum_sq = 0.0, sq = 0.0, norms = 0.0;

	if (n < 2 || dim < 1)
		return NAN;
	for (int j0 = 0; j0 < dim; j0 += BLK) {
		int bw = dim - j0 < BLK ? dim - j0 : BLK;
		for (int j = 0; j < bw; j++)
			acc[j] = 0.0;
		for (int i = 0; i < n; i++) {
			const float *row = g + (size_t)i * ld + j0;
			for (int j = 0; j < bw; j++)
				acc[j] += row[j];
		}
		for (int j = 0; j < bw; j++)
			sum_sq += acc[j] * acc[j];
	}
	for (int i = 0; i < n; i++) {
		const float *row = g + (size_t)i * ld;
		double s = 0.0;
		for (int j = 0; j < dim; j++)
			s += (double)row[j] * row[j];
		sq += s;
		norms += sqrt(s);
	}
	return omega(sum_sq, sq, norms, (size_t)n);
}

static double sqnorm(const float *v, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += (double)v[i] * v[i];
	return s;
}

/*
 * The diagnostics walk the examples class by class (a counting sort of the
 * indices), in chunks of up to cfg.batch rows gathered into the batch
 * scratch: a forward step, the loss gradient of the mean over all n
 * examples, and the true BP chain down to delta_0.  Per class,
 * M_c = sum_i d_i x_i^T = D_c^T X_c is accumulated by sgemm (beta 1 after
 * the first chunk), so ||M_c||_F^2 gives sum_{i,j} (d_i.d_j)(x_i.x_j) and
 * the per-example gradient norms are ||d_i|| ||x_i||; no per-example
 * gradient is ever formed.  sum_c M_c is the gradient of W_0.  Alignment
 * is averaged over the classes with at least two examples and a defined
 * value.  The scratch (the order, two W_0-sized matrices and a sum vector)
 * is allocated here and freed before returning: this call is not in the
 * training loop.  It overwrites the batch scratch but not the gradients of
 * the last training step.
 */
int eg_net_diagnostics(eg_net *net, const float *x, const int32_t *y,
		       size_t n, eg_net_diag *out)
{
	const int L = net->L, K = net->dim[L];
	const size_t B = (size_t)net->cfg.batch, nin = (size_t)net->dim[0];
	const size_t r0 = (size_t)net->dim[1];
	const bool hidden = L > 1;
	int32_t *order = NULL;
	size_t *start = NULL;
	float *mc = NULL, *tot = NULL;
	double *rsum = NULL;
	int rc = EG_OK;

	out->align_repr = out->align_grad = out->grad_ratio_w1 = NAN;
	if (x == NULL || y == NULL || n == 0 || n > INT32_MAX ||
	    !labels_ok(y, n, K))
		return EG_EINVAL;
	order = malloc(n * sizeof(*order));
	start = calloc((size_t)K + 1, sizeof(*start));
	mc = malloc(r0 * nin * sizeof(*mc));
	tot = calloc(r0 * nin, sizeof(*tot));
	rsum = malloc(r0 * sizeof(*rsum));
	if (!order || !start || !mc || !tot || !rsum) {
		rc = EG_ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		start[y[i] + 1]++;
	for (int c = 0; c < K; c++)
		start[c + 1] += start[c];
	{
		size_t *fill = malloc((size_t)K * sizeof(*fill));
		if (fill == NULL) {
			rc = EG_ENOMEM;
			goto done;
		}
		memcpy(fill, start, (size_t)K * sizeof(*fill));
		for (size_t i = 0; i < n; i++)
			order[fill[y[i]]++] = (int32_t)i;
		free(fill);
	}

	double repr_sum = 0.0, grad_sum = 0.0;
	int repr_cnt = 0, grad_cnt = 0;
	const float scale = 1.0f / (float)n;
	const float *d0 = hidden ? net->dp[0] : net->dz;

	for (int c = 0; c < K; c++) {
		size_t nc = start[c + 1] - start[c];
		double g_sq = 0.0, g_norms = 0.0, r_sq = 0.0, r_norms = 0.0;

		if (nc == 0)
			continue;
		for (size_t j = 0; j < r0; j++)
			rsum[j] = 0.0;
		for (size_t s = 0; s < nc; s += B) {
			int nb = (int)(nc - s < B ? nc - s : B);
			for (int i = 0; i < nb; i++) {
				size_t src = (size_t)order[start[c] + s + (size_t)i];
				memcpy(net->xb + (size_t)i * nin, x + src * nin,
				       nin * sizeof(float));
				net->yb[i] = y[src];
			}
			forward(net, net->xb, nb, net->z, true);
			eg__loss_rows(net->cfg.loss, net->z, net->yb, nb, K,
				      scale, net->dz, NULL, NULL);
			for (int l = L - 2; l >= 0; l--) {
				incoming_error(net, EG_ALGO_BP, l, nb);
				apply_dphi(net->dp[l], net->g, NULL, nb,
					   net->dim[l + 1]);
			}
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
				    (int)r0, (int)nin, nb, 1.0f, d0, (int)r0,
				    net->xb, (int)nin, s == 0 ? 0.0f : 1.0f,
				    mc, (int)nin);
			for (int i = 0; i < nb; i++) {
				double dn = sqnorm(d0 + (size_t)i * r0, r0);
				double xn = sqnorm(net->xb + (size_t)i * nin, nin);
				g_sq += dn * xn;
				g_norms += sqrt(dn * xn);
				if (hidden) {
					const float *hr = net->h[0] + (size_t)i * r0;
					double hn = sqnorm(hr, r0);
					r_sq += hn;
					r_norms += sqrt(hn);
					for (size_t j = 0; j < r0; j++)
						rsum[j] += hr[j];
				}
			}
		}
		size_t cnt = r0 * nin;
		double m_sq = 0.0;
		for (size_t j = 0; j < cnt; j++) {
			m_sq += (double)mc[j] * mc[j];
			tot[j] += mc[j];
		}
		if (!hidden)
			continue;
		double om = omega(m_sq, g_sq, g_norms, nc);
		if (isfinite(om)) {
			grad_sum += om;
			grad_cnt++;
		}
		double rs = 0.0;
		for (size_t j = 0; j < r0; j++)
			rs += rsum[j] * rsum[j];
		om = omega(rs, r_sq, r_norms, nc);
		if (isfinite(om)) {
			repr_sum += om;
			repr_cnt++;
		}
	}
	if (hidden) {
		out->align_repr = repr_cnt > 0 ? repr_sum / repr_cnt : NAN;
		out->align_grad = grad_cnt > 0 ? grad_sum / grad_cnt : NAN;
	}
	double wn = sqnorm(net->w[0], r0 * nin);
	out->grad_ratio_w1 = wn > 0.0 ? sqrt(sqnorm(tot, r0 * nin) / wn) : NAN;
done:
	free(order);
	free(start);
	free(mc);
	free(tot);
	free(rsum);
	return rc;
}

size_t eg_net_params_total(const eg_net *net)
{
	size_t t = 0;
	for (int l = 0; l < net->L; l++)
		t += (size_t)net->dim[l + 1] * net->dim[l] +
		     (net->b[l] != NULL ? (size_t)net->dim[l + 1] : 0);
	return t;
}

size_t eg_net_params_nonzero(const eg_net *net)
{
	size_t t = 0;
	for (int l = 0; l < net->L; l++) {
		size_t r = (size_t)net->dim[l + 1], cnt = r * net->dim[l];
		for (size_t i = 0; i < cnt; i++)
			t += net->w[l][i] != 0.0f;
		if (net->b[l] != NULL)
			for (size_t i = 0; i < r; i++)
				t += net->b[l][i] != 0.0f;
	}
	return t;
}

int eg_net_layer(eg_net *net, int l, float **w, float **b, int *rows,
		 int *cols)
{
	if (l < 0 || l >= net->L)
		return EG_ERANGE;
	if (w != NULL)
		*w = net->w[l];
	if (b != NULL)
		*b = net->b[l];
	if (rows != NULL)
		*rows = net->dim[l + 1];
	if (cols != NULL)
		*cols = net->dim[l];
	return EG_OK;
}

int eg_net_grads(eg_net *net, int l, float **dw, float **db)
{
	if (l < 0 || l >= net->L)
		return EG_ERANGE;
	if (dw != NULL)
		*dw = net->dw[l];
	if (db != NULL)
		*db = net->db[l];
	return EG_OK;
}

int eg_net_feedback(eg_net *net, int l, float **B, int *rows, int *cols)
{
	if (l < 0 || l >= net->L - 1 || net->fb[l] == NULL)
		return EG_ERANGE;
	if (B != NULL)
		*B = net->fb[l];
	if (rows != NULL)
		*rows = net->fb_rows[l];
	if (cols != NULL)
		*cols = net->fb_cols[l];
	return EG_OK;
}
