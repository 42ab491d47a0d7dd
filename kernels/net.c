/*
 * net.c - the feed-forward network of net.h: creation and initialization,
 * the training step for BP, FA, DFA, BDFA and hybrid through dense,
 * block-circulant and conv + max-pool layers, evaluation, prediction, the
 * PAPERS.md §1 diagnostics, and masks, snapshots and magnitude pruning.
 *
 * Layers are numbered l = 0 .. L-1 (conv layers, hidden fully-connected
 * layers, the output layer).  Layer l reads in_len floats per example and
 * writes out_len; a conv layer first writes its activated output of
 * act_len = F x H x W floats and, when it pools, max-pools that into
 * out_len.  Every array the net owns - weights, gradients, optimizer state,
 * feedback matrices and the scratch for a batch of up to cfg.batch rows -
 * lives in one aligned arena allocated and zeroed by eg_net_create, each
 * array starting on a 64-byte boundary, except the weights of circulant
 * layers, which their eg_circ owns (with its FFT plans and scratch).  After
 * creation nothing is allocated except by the calls net.h says allocate
 * (diagnostics, the first mask, pruning's ranking).
 *
 * The scratch for a batch:
 *   h[l]     layer l's output (pooled, activated), n x out_len
 *   a[l]     a pooling conv layer's activated output before pooling
 *   dp[l]    phi'(pre-activation) after the forward step, n x act_len; the
 *            backward step multiplies it in place by the incoming error,
 *            so it then holds delta_l
 *   argmax   a pooling conv layer's pool positions
 *   z, dz    logits and dL/dz (the output layer's delta)
 *   g, gp    the incoming error of the layer being processed (n x out_len)
 *            and, for a pooling layer, that error routed back through the
 *            pool (n x act_len); gp also holds a conv layer's output or
 *            delta as an F x (n Ho Wo) matrix
 *   col      the unrolled inputs of a batch for a conv layer,
 *            (C K K) x (n Ho Wo) (see conv_forward)
 *
 * One training step: forward, the loss pass (dz and the output bias
 * gradient), then from the top layer down: delta_l = (incoming error,
 * through the pool) * phi'; the weight and bias gradients; and the error
 * that layer l - 1 needs, by layer l - 1's algorithm:
 *   BP    g = delta_l W_l (dense: one sgemm; conv: col2im of W^T delta;
 *         circulant: the frequency-domain input gradient)
 *   FA    g = delta_l B_{l-1}^T            B_{l-1} is out_{l-1} x out_l
 *   DFA   g = dz B_{l-1}^T (computed when layer l - 1 is reached)
 *   BDFA  as DFA with B entries exactly +-scale
 * Gradients of masked weights are zeroed before the optimizer.  No input
 * gradient is computed for layer 0, and the walk stops below the lowest
 * trainable layer.  Updates come after every gradient, so BP's chain uses
 * the weights of the forward step.  A non-finite loss stops the step
 * before any update (EG_EDIVERGED).
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
 * streams "init" (weights, layer by layer, in storage order) and "feedback"
 * of cfg.seed, so changing the algorithm does not change the weights;
 * eg_net_reinit draws from the "reinit" stream of its seed.
 *
 * Pruning ranks (|w|, layer, index) triples with qsort, so the choice is a
 * pure function of the weights: deterministic and tie-safe.
 *
 * Determinism: every loop here runs in a fixed order; sgemm is
 * deterministic for a fixed OpenBLAS thread count, and circulant layers use
 * estimated (not measured) FFTW plans.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/circulant.h"
#include "kernels/conv.h"
#include "kernels/net_int.h"
#include "kernels/rng.h"

#define EG__ALIGN_FLOATS 16 /* 64 bytes */
#define EG__MAX_DIM (1 << 24)
#define EG__MAX_BLOCK (1 << 16)

typedef struct layer {
	eg_layer_kind kind;
	bool top, frozen;
	eg_algo algo;            /* how its incoming error is made (hidden) */
	int in_len, out_len, act_len;
	int rows, cols;          /* dense: out x in; conv: F x C K K */
	size_t nw, nb, dense_nw;
	float *w, *b, *dw, *db, *s1w, *s1b, *s2w, *s2b, *mask;
	eg_conv_shape cs;
	eg_pool_shape ps;
	int pool;
	eg_circ *circ;
	float *h, *a, *dp;
	int32_t *argmax;
	float *fb;
	int fb_rows, fb_cols;
} layer;

struct eg_net {
	eg_net_config cfg;
	int L;
	int K;                   /* classes */
	int max_len;             /* longest per-example vector of any layer */
	long step;               /* optimizer steps taken (Adam t) */
	layer ly[EG_NET_MAX_LAYERS];
	float *z, *dz, *g, *gp, *xb, *col;
	size_t col_len;          /* floats of one example's largest unrolled
				    conv input (C K K Ho Wo) */
	int32_t *yb;
	float *arena, *masks;
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

/* Fan-in and fan-out of layer l (a conv weight sees C K K inputs). */
static void fans(const layer *y, int *fan_in, int *fan_out)
{
	if (y->kind == EG_LAYER_CONV) {
		*fan_in = y->cs.c * y->cs.k * y->cs.k;
		*fan_out = y->cs.f * y->cs.k * y->cs.k;
	} else {
		*fan_in = y->in_len;
		*fan_out = y->out_len;
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
	if (c->n_conv < 0 || c->n_conv + c->n_hidden > EG_NET_MAX_LAYERS - 1)
		return eg_diag_set(d, EG_ERANGE,
				   "n_conv must be in 0..%d - n_hidden, got %d",
				   EG_NET_MAX_LAYERS - 1, c->n_conv);
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
	if ((unsigned)c->algo > EG_ALGO_HYBRID)
		return eg_diag_set(d, EG_EINVAL, "algo: unknown algorithm %d",
				   (int)c->algo);
	if (c->algo == EG_ALGO_HYBRID && c->n_conv == 0)
		return eg_diag_set(d, EG_EINVAL,
				   "algo: hybrid needs conv layers (model.arch "
				   "cnn with model.conv); it splits the network "
				   "into conv and fully-connected parts");
	if (c->algo == EG_ALGO_FA && c->n_conv > 0)
		return eg_diag_set(d, EG_EINVAL,
				   "algo: fa through conv layers is not "
				   "supported (its feedback would have to stand "
				   "in for a transposed convolution); use bp, "
				   "dfa, bdfa or hybrid");
	if ((unsigned)c->hybrid > EG_HYBRID_FC_DFA)
		return eg_diag_set(d, EG_EINVAL, "hybrid: unknown split %d",
				   (int)c->hybrid);
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
	if (c->circulant_block < 0 || c->circulant_block > EG__MAX_BLOCK ||
	    (c->circulant_block & (c->circulant_block - 1)) != 0)
		return eg_diag_set(d, EG_ERANGE,
				   "circulant_block must be 0 or a power of two "
				   "up to %d, got %d", EG__MAX_BLOCK,
				   c->circulant_block);
	if (c->n_conv > 0 &&
	    (c->in_c < 1 || c->in_h < 1 || c->in_w < 1 ||
	     (long long)c->in_c * c->in_h * c->in_w != c->n_in))
		return eg_diag_set(d, EG_EINVAL,
				   "in_c x in_h x in_w (%d x %d x %d) must be "
				   "the image shape of the n_in = %d inputs of "
				   "a net with conv layers", c->in_c, c->in_h,
				   c->in_w, c->n_in);
	return EG_OK;
}

/*
 * Fills the layer shapes and algorithms from the config; creates the
 * circulant layers (which own their weights).  Conv shapes are checked
 * here because they depend on the image size flowing through the stack.
 */
static int plan_layers(eg_net *net, eg_diag *d)
{
	const eg_net_config *c = &net->cfg;
	int ch = c->in_c, hh = c->in_h, ww = c->in_w, in = c->n_in, rc;
	int k = c->circulant_block > 1 ? c->circulant_block : 0;

	net->L = c->n_conv + c->n_hidden + 1;
	net->K = c->n_out;
	net->max_len = in;
	for (int l = 0; l < net->L; l++) {
		layer *y = &net->ly[l];
		y->top = l == net->L - 1;
		y->in_len = in;
		if (l < c->n_conv) {
			const eg_net_conv *cv = &c->conv[l];
			if (cv->filters < 1 || cv->kernel < 1 || cv->pool < 1)
				return eg_diag_set(d, EG_ERANGE,
						   "conv[%d]: filters, kernel and "
						   "pool must be >= 1", l);
			y->kind = EG_LAYER_CONV;
			eg_conv_shape_same(&y->cs, ch, hh, ww, cv->filters,
					   cv->kernel);
			if ((rc = eg_conv_check(&y->cs, d)) != EG_OK)
				return eg_diag_prefix(d, rc, "conv[%d]", l);
			y->act_len = (int)eg_conv_out_len(&y->cs);
			ch = cv->filters;
			hh = eg_conv_out_h(&y->cs);
			ww = eg_conv_out_w(&y->cs);
			y->pool = cv->pool;
			if (cv->pool > 1) {
				y->ps.c = ch;
				y->ps.h = hh;
				y->ps.w = ww;
				y->ps.p = cv->pool;
				if ((rc = eg_pool_check(&y->ps, d)) != EG_OK)
					return eg_diag_prefix(d, rc,
							      "conv[%d] pool", l);
				hh = eg_pool_out_h(&y->ps);
				ww = eg_pool_out_w(&y->ps);
			}
			y->out_len = ch * hh * ww;
			y->rows = cv->filters;
			y->cols = y->cs.c * cv->kernel * cv->kernel;
			y->nw = eg_conv_weights_len(&y->cs);
			y->dense_nw = y->nw;
			y->nb = c->bias ? (size_t)cv->filters : 0;
			if (eg_conv_col_len(&y->cs) > net->col_len)
				net->col_len = eg_conv_col_len(&y->cs);
		} else {
			int out = y->top ? c->n_out : c->hidden[l - c->n_conv];
			y->out_len = y->act_len = out;
			y->rows = out;
			y->cols = in;
			y->dense_nw = (size_t)out * (size_t)in;
			y->nb = c->bias ? (size_t)out : 0;
			if (!y->top && k > 0) {
				y->kind = EG_LAYER_CIRCULANT;
				rc = eg_circ_create(&y->circ, (size_t)out,
						    (size_t)in, (size_t)k,
						    (size_t)c->batch,
						    EG_CIRC_PLAN_ESTIMATE, d);
				if (rc != EG_OK)
					return eg_diag_prefix(d, rc,
							      "hidden[%d]",
							      l - c->n_conv);
				y->nw = eg_circ_params_stored(y->circ);
				y->w = eg_circ_weights(y->circ);
			} else {
				y->kind = EG_LAYER_DENSE;
				y->nw = y->dense_nw;
			}
		}
		if (y->act_len > net->max_len)
			net->max_len = y->act_len;
		if (y->out_len > net->max_len)
			net->max_len = y->out_len;
		in = y->out_len;
		/* The algorithm that makes this (hidden) layer's error. */
		y->algo = c->algo;
		if (c->algo == EG_ALGO_HYBRID) {
			bool conv = y->kind == EG_LAYER_CONV;
			bool dfa = c->hybrid == EG_HYBRID_CONV_DFA ? conv : !conv;
			y->algo = dfa ? EG_ALGO_DFA : EG_ALGO_BP;
		}
		if (y->top)
			y->algo = EG_ALGO_BP;
	}
	return EG_OK;
}

/* Carves the arena: first pass (base NULL) only counts floats. */
static size_t carve(eg_net *net, float *base)
{
	size_t off = 0;
	const size_t nb = (size_t)net->cfg.batch;
	const size_t K = (size_t)net->K;
	const bool adam = net->cfg.optim == EG_OPT_ADAM;

#define TAKE(ptr, count)                                               \
	do {                                                           \
		size_t eg__n = (count);                                \
		(ptr) = base != NULL ? base + off : NULL;              \
		off += (eg__n + EG__ALIGN_FLOATS - 1) /                \
		       EG__ALIGN_FLOATS * EG__ALIGN_FLOATS;            \
	} while (0)

	for (int l = 0; l < net->L; l++) {
		layer *y = &net->ly[l];
		if (y->kind != EG_LAYER_CIRCULANT)
			TAKE(y->w, y->nw);
		TAKE(y->dw, y->nw);
		TAKE(y->s1w, y->nw);
		if (adam)
			TAKE(y->s2w, y->nw);
		if (y->nb > 0) {
			TAKE(y->b, y->nb);
			TAKE(y->db, y->nb);
			TAKE(y->s1b, y->nb);
			if (adam)
				TAKE(y->s2b, y->nb);
		}
		if (y->top)
			continue;
		TAKE(y->h, nb * (size_t)y->out_len);
		TAKE(y->dp, nb * (size_t)y->act_len);
		if (y->kind == EG_LAYER_CONV && y->pool > 1) {
			float *am;
			TAKE(y->a, nb * (size_t)y->act_len);
			TAKE(am, nb * (size_t)y->out_len);
			y->argmax = (int32_t *)am;
		} else {
			y->a = y->h;
		}
		if (y->algo != EG_ALGO_BP) {
			y->fb_rows = y->out_len;
			y->fb_cols = y->algo == EG_ALGO_FA ? net->ly[l + 1].out_len
							   : (int)K;
			TAKE(y->fb, (size_t)y->fb_rows * (size_t)y->fb_cols);
		}
	}
	TAKE(net->z, nb * K);
	TAKE(net->dz, nb * K);
	TAKE(net->g, nb * (size_t)net->max_len);
	TAKE(net->gp, nb * (size_t)net->max_len);
	TAKE(net->xb, nb * (size_t)net->cfg.n_in);
	TAKE(net->col, nb * net->col_len);
	/* The labels take whole floats' worth of int32 (same size). */
	float *yb;
	TAKE(yb, nb);
	net->yb = (int32_t *)yb;
#undef TAKE
	return off;
}

/* Draws every layer's weights from its init distribution with `r`. */
static void draw_weights(eg_net *net, eg_rng *r)
{
	for (int l = 0; l < net->L; l++) {
		layer *y = &net->ly[l];
		int fi, fo;
		fans(y, &fi, &fo);
		double sd = init_sd(&net->cfg, l, fi, fo);
		if (y->kind == EG_LAYER_CIRCULANT) {
			eg_circ_init_normal(y->circ, r, sd);
			continue;
		}
		for (size_t i = 0; i < y->nw; i++)
			y->w[i] = (float)(sd * eg_rng_normal(r));
	}
}

static void init_feedback(eg_net *net)
{
	const eg_net_config *c = &net->cfg;
	eg_rng r;

	eg_rng_seed_stream(&r, c->seed, "feedback");
	eg_feedback kind = c->feedback;
	if (kind == EG_FB_DEFAULT)
		kind = c->algo == EG_ALGO_BDFA ? EG_FB_BINARY : EG_FB_NORMAL;
	for (int l = 0; l < net->L - 1; l++) {
		layer *y = &net->ly[l];
		if (y->fb == NULL)
			continue;
		double s = c->feedback_scale;
		if (s == 0.0) {
			int fi, fo;
			fans(&net->ly[l + 1], &fi, &fo);
			s = y->algo == EG_ALGO_FA
				    ? init_sd(c, l + 1, fi, fo)
				    : 1.0 / sqrt((double)net->K);
		}
		size_t cnt = (size_t)y->fb_rows * y->fb_cols;
		float *B = y->fb;
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
		return eg_diag_set(d, EG_ENOMEM, "network: out of memory");
	net->cfg = *c;
	if (net->cfg.adam_beta1 == 0.0)
		net->cfg.adam_beta1 = 0.9;
	if (net->cfg.adam_beta2 == 0.0)
		net->cfg.adam_beta2 = 0.999;
	if (net->cfg.adam_eps == 0.0)
		net->cfg.adam_eps = 1e-8;
	if ((rc = plan_layers(net, d)) != EG_OK)
		goto err;

	size_t nfloats = carve(net, NULL);
	if (nfloats > SIZE_MAX / sizeof(float) / 2 ||
	    posix_memalign(&mem, 64, nfloats * sizeof(float)) != 0) {
		rc = eg_diag_set(d, EG_ENOMEM,
				 "network of %d layers: out of memory", net->L);
		goto err;
	}
	/* Zeroed once: optimizer state and biases start at 0. */
	memset(mem, 0, nfloats * sizeof(float));
	net->arena = mem;
	carve(net, net->arena);
	eg_rng r;
	eg_rng_seed_stream(&r, c->seed, "init");
	draw_weights(net, &r);
	init_feedback(net);
	*out = net;
	return EG_OK;
err:
	eg_net_free(net);
	return rc;
}

void eg_net_free(eg_net *net)
{
	if (net == NULL)
		return;
	for (int l = 0; l < EG_NET_MAX_LAYERS; l++)
		eg_circ_free(net->ly[l].circ);
	free(net->arena);
	free(net->masks);
	free(net);
}

/*
 * A conv layer over the whole batch with one sgemm per product (conv.h's
 * eg_conv_forward works example by example): the unrolled inputs of the n
 * examples sit side by side in net->col, a (C K K) x (n Ho Wo) matrix, so
 * the forward is one F x (C K K) x (n Ho Wo) product into net->gp, which
 * is then scattered to NCHW with the bias.  Few large products instead of
 * n small ones matter most when OpenBLAS runs several threads: each call
 * synchronizes them, and on a loaded machine every synchronization can
 * wait a scheduler slice.
 */
static void conv_forward(eg_net *net, const layer *y, int n, const float *in,
			 float *out)
{
	const eg_conv_shape *cs = &y->cs;
	const size_t hw = (size_t)eg_conv_out_h(cs) * eg_conv_out_w(cs);
	const size_t ld = (size_t)n * hw, il = eg_conv_in_len(cs);
	const int f = cs->f, ckk = cs->c * cs->k * cs->k;

	for (int i = 0; i < n; i++)
		eg_conv_im2col_ld(cs, in + (size_t)i * il, net->col + i * hw, ld);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, f, (int)ld, ckk,
		    1.0f, y->w, ckk, net->col, (int)ld, 0.0f, net->gp, (int)ld);
	for (int i = 0; i < n; i++)
		for (int c = 0; c < f; c++) {
			const float *src = net->gp + (size_t)c * ld + i * hw;
			float *dst = out + ((size_t)i * f + c) * hw;
			float b = y->b != NULL ? y->b[c] : 0.0f;
			for (size_t p = 0; p < hw; p++)
				dst[p] = src[p] + b;
		}
}

/*
 * Its backward: delta (NCHW) gathered into D = F x (n Ho Wo) in net->gp;
 * db = row sums of D; the unrolled input rebuilt in net->col (cheaper than
 * keeping one per layer); dW = D col^T; and for dx, W^T D into net->col,
 * folded back per example by col2im.
 */
static void conv_backward(eg_net *net, const layer *y, int n, const float *in,
			  const float *delta, float *dw, float *db, float *dx)
{
	const eg_conv_shape *cs = &y->cs;
	const size_t hw = (size_t)eg_conv_out_h(cs) * eg_conv_out_w(cs);
	const size_t ld = (size_t)n * hw, il = eg_conv_in_len(cs);
	const int f = cs->f, ckk = cs->c * cs->k * cs->k;
	float *D = net->gp;

	for (int i = 0; i < n; i++)
		for (int c = 0; c < f; c++)
			memcpy(D + (size_t)c * ld + i * hw,
			       delta + ((size_t)i * f + c) * hw,
			       hw * sizeof(float));
	if (db != NULL)
		for (int c = 0; c < f; c++) {
			const float *row = D + (size_t)c * ld;
			double sum = 0.0;
			for (size_t p = 0; p < ld; p++)
				sum += row[p];
			db[c] = (float)sum;
		}
	if (dw != NULL) {
		for (int i = 0; i < n; i++)
			eg_conv_im2col_ld(cs, in + (size_t)i * il,
					  net->col + i * hw, ld);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, f, ckk,
			    (int)ld, 1.0f, D, (int)ld, net->col, (int)ld, 0.0f,
			    dw, ckk);
	}
	if (dx != NULL) {
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk,
			    (int)ld, f, 1.0f, y->w, ckk, D, (int)ld, 0.0f,
			    net->col, (int)ld);
		for (int i = 0; i < n; i++)
			eg_conv_col2im_ld(cs, net->col + i * hw, ld,
					  dx + (size_t)i * il);
	}
}

/*
 * Forward step of n rows of x into the layer buffers and `zout` (n x K).
 * With want_dphi the epilogues also store phi' for a backward step.
 */
static int forward(eg_net *net, const float *x, int n, float *zout,
		   bool want_dphi)
{
	const float *in = x;
	int rc = EG_OK;

	for (int l = 0; l < net->L && rc == EG_OK; l++) {
		layer *y = &net->ly[l];
		float *o = y->top ? zout : y->h;
		float *ao = y->top ? zout : y->a;

		switch (y->kind) {
		case EG_LAYER_DENSE:
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n,
				    y->out_len, y->in_len, 1.0f, in, y->in_len,
				    y->w, y->in_len, 0.0f, o, y->out_len);
			break;
		case EG_LAYER_CIRCULANT:
			rc = eg_circ_forward(y->circ, in, (size_t)n, o);
			break;
		case EG_LAYER_CONV:
			conv_forward(net, y, n, in, ao);
			break;
		}
		if (rc != EG_OK)
			break;
		if (y->top) {
			if (y->b != NULL)
				eg__act_epilogue(EG_ACT_LINEAR, o, y->b,
						 (size_t)n, (size_t)y->out_len, o,
						 NULL);
		} else if (y->kind == EG_LAYER_CONV) {
			eg__act_epilogue(net->cfg.act, ao, NULL, (size_t)n,
					 (size_t)y->act_len, ao,
					 want_dphi ? y->dp : NULL);
			if (y->pool > 1)
				rc = eg_pool_forward(&y->ps, (size_t)n, ao, o,
						     y->argmax);
		} else {
			eg__act_epilogue(net->cfg.act, o, y->b, (size_t)n,
					 (size_t)y->out_len, o,
					 want_dphi ? y->dp : NULL);
		}
		in = o;
	}
	return rc;
}

/*
 * delta = g .* phi'(a) in place in dp (n x m); if db is not NULL it
 * receives the column sums (row 0 assigns, so no clearing).
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

static void mul_mask(float *restrict v, const float *restrict m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] *= m[i];
}

/*
 * Backward through layer l given its delta (dz for the top layer, dp[l]
 * otherwise): the weight and bias gradients (unless frozen) and, into
 * net->g, the error layer l - 1 needs under BP or FA (want_err).  A dense
 * or circulant layer's bias gradient was summed by apply_dphi (or the loss
 * pass); a conv layer's is computed here.
 */
static int layer_backward(eg_net *net, int l, const float *x, int n,
			  bool want_err)
{
	layer *y = &net->ly[l];
	const float *delta = y->top ? net->dz : y->dp;
	const float *hin = l == 0 ? x : net->ly[l - 1].h;
	eg_algo below = l > 0 ? net->ly[l - 1].algo : EG_ALGO_BP;
	bool bp_err = want_err && below == EG_ALGO_BP;
	float *dw = y->frozen ? NULL : y->dw;
	int rc = EG_OK;

	switch (y->kind) {
	case EG_LAYER_DENSE:
		if (dw != NULL)
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
				    y->out_len, y->in_len, n, 1.0f, delta,
				    y->out_len, hin, y->in_len, 0.0f, dw,
				    y->in_len);
		if (bp_err)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n,
				    y->in_len, y->out_len, 1.0f, delta,
				    y->out_len, y->w, y->in_len, 0.0f, net->g,
				    y->in_len);
		break;
	case EG_LAYER_CIRCULANT:
		if (dw != NULL || bp_err)
			rc = eg_circ_backward(y->circ, hin, delta, (size_t)n,
					      bp_err ? net->g : NULL, dw);
		break;
	case EG_LAYER_CONV:
		if (dw != NULL || bp_err)
			conv_backward(net, y, n, hin, delta, dw,
				      y->frozen ? NULL : y->db,
				      bp_err ? net->g : NULL);
		break;
	}
	if (rc != EG_OK)
		return rc;
	if (want_err && below == EG_ALGO_FA) {
		const layer *yb = &net->ly[l - 1];
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n,
			    yb->out_len, y->out_len, 1.0f, delta, y->out_len,
			    yb->fb, y->out_len, 0.0f, net->g, yb->out_len);
	}
	if (dw != NULL && y->mask != NULL)
		mul_mask(dw, y->mask, y->nw);
	return EG_OK;
}

/*
 * Turns the error arriving at hidden layer l's output into its delta in
 * dp[l] (and a dense or circulant layer's bias gradient).  For DFA and
 * BDFA layers the error is made here from dz; for BP and FA it is already
 * in net->g.
 */
static void layer_delta(eg_net *net, int l, int n)
{
	layer *y = &net->ly[l];
	const float *err = net->g;

	if (y->algo == EG_ALGO_DFA || y->algo == EG_ALGO_BDFA)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n,
			    y->out_len, net->K, 1.0f, net->dz, net->K, y->fb,
			    net->K, 0.0f, net->g, y->out_len);
	if (y->kind == EG_LAYER_CONV && y->pool > 1) {
		eg_pool_backward(&y->ps, (size_t)n, net->g, y->argmax, net->gp);
		err = net->gp;
	}
	apply_dphi(y->dp, err, y->kind == EG_LAYER_CONV || y->frozen ? NULL : y->db,
		   n, y->act_len);
}

static void update(eg_net *net)
{
	const eg_net_config *c = &net->cfg;
	float lr = (float)c->lr, wd = (float)c->weight_decay;
	float b1 = (float)c->adam_beta1, b2 = (float)c->adam_beta2;
	float eps = (float)c->adam_eps, mu = (float)c->momentum;
	float c1 = 0, c2 = 0;

	net->step++;
	if (c->optim == EG_OPT_ADAM) {
		c1 = (float)(1.0 / (1.0 - pow(c->adam_beta1, (double)net->step)));
		c2 = (float)(1.0 / (1.0 - pow(c->adam_beta2, (double)net->step)));
	}
	for (int l = 0; l < net->L; l++) {
		layer *y = &net->ly[l];
		if (y->frozen)
			continue;
		if (c->optim == EG_OPT_SGD) {
			eg__optim_sgd(y->w, y->dw, y->s1w, y->nw, lr, mu, wd);
			if (y->b != NULL)
				eg__optim_sgd(y->b, y->db, y->s1b, y->nb, lr, mu,
					      0.0f);
		} else {
			eg__optim_adam(y->w, y->dw, y->s1w, y->s2w, y->nw, lr,
				       b1, b2, eps, c1, c2, wd);
			if (y->b != NULL)
				eg__optim_adam(y->b, y->db, y->s1b, y->s2b,
					       y->nb, lr, b1, b2, eps, c1, c2,
					       0.0f);
		}
		if (y->circ != NULL)
			eg_circ_weights_changed(y->circ);
	}
}

static bool labels_ok(const int32_t *y, size_t n, int K)
{
	for (size_t i = 0; i < n; i++)
		if (y[i] < 0 || y[i] >= K)
			return false;
	return true;
}

/* The lowest layer the backward walk must reach: the lowest trainable. */
static int lowest_trainable(const eg_net *net)
{
	for (int l = 0; l < net->L; l++)
		if (!net->ly[l].frozen)
			return l;
	return net->L;
}

int eg_net_train_batch(eg_net *net, const float *x, const int32_t *y, int n,
		       double *loss)
{
	const int L = net->L, K = net->K;
	int rc;

	if (x == NULL || y == NULL || n < 1 || n > net->cfg.batch ||
	    !labels_ok(y, (size_t)n, K))
		return EG_EINVAL;
	if ((rc = forward(net, x, n, net->z, true)) != EG_OK)
		return rc;
	double sum = eg__loss_rows(net->cfg.loss, net->z, y, n, K,
				   1.0f / (float)n, net->dz, net->ly[L - 1].db,
				   NULL);
	double mean = sum / n;
	if (loss != NULL)
		*loss = mean;
	if (!isfinite(mean))
		return EG_EDIVERGED;

	int low = lowest_trainable(net);
	for (int l = L - 1; l >= low; l--) {
		if (l < L - 1)
			layer_delta(net, l, n);
		rc = layer_backward(net, l, x, n, l > low);
		if (rc != EG_OK)
			return rc;
	}
	update(net);
	return EG_OK;
}

int eg_net_train_epoch(eg_net *net, const float *x, const int32_t *y,
		       size_t n, const int32_t *order,
		       const volatile int *cancel, double *loss)
{
	const size_t B = (size_t)net->cfg.batch, nin = (size_t)net->cfg.n_in;
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
	const size_t B = (size_t)net->cfg.batch, nin = (size_t)net->cfg.n_in;
	const int K = net->K;
	double total = 0.0;
	size_t hits = 0;
	int rc;

	if (x == NULL || y == NULL || n == 0 || !labels_ok(y, n, K))
		return EG_EINVAL;
	for (size_t s = 0; s < n; s += B) {
		int nb = (int)(n - s < B ? n - s : B), h;
		if ((rc = forward(net, x + s * nin, nb, net->z, false)) != EG_OK)
			return rc;
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
	const size_t B = (size_t)net->cfg.batch, nin = (size_t)net->cfg.n_in;
	const size_t K = (size_t)net->K;
	int rc;

	if (x == NULL || out == NULL)
		return EG_EINVAL;
	for (size_t s = 0; s < n; s += B) {
		int nb = (int)(n - s < B ? n - s : B);
		if ((rc = forward(net, x + s * nin, nb, out + s * K, false)) !=
		    EG_OK)
			return rc;
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

static bool all_dense(const eg_net *net)
{
	for (int l = 0; l < net->L; l++)
		if (net->ly[l].kind != EG_LAYER_DENSE)
			return false;
	return true;
}

/* The true BP error arriving at dense hidden layer l, into net->g. */
static void dense_bp_error(eg_net *net, int l, int n)
{
	const layer *up = &net->ly[l + 1], *y = &net->ly[l];
	const float *dnext = up->top ? net->dz : up->dp;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, y->out_len,
		    up->out_len, 1.0f, dnext, up->out_len, up->w, y->out_len,
		    0.0f, net->g, y->out_len);
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
	const int L = net->L, K = net->K;
	const size_t B = (size_t)net->cfg.batch, nin = (size_t)net->cfg.n_in;
	const size_t r0 = (size_t)net->ly[0].out_len;
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
	if (!all_dense(net))
		return EG_OK;
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
	const float *d0 = hidden ? net->ly[0].dp : net->dz;

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
			if ((rc = forward(net, net->xb, nb, net->z, true)) !=
			    EG_OK)
				goto done;
			eg__loss_rows(net->cfg.loss, net->z, net->yb, nb, K,
				      scale, net->dz, NULL, NULL);
			for (int l = L - 2; l >= 0; l--) {
				dense_bp_error(net, l, nb);
				apply_dphi(net->ly[l].dp, net->g, NULL, nb,
					   net->ly[l].out_len);
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
					const float *hr = net->ly[0].h + (size_t)i * r0;
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
	double wn = sqnorm(net->ly[0].w, r0 * nin);
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
		t += net->ly[l].nw + net->ly[l].nb;
	return t;
}

size_t eg_net_params_dense(const eg_net *net)
{
	size_t t = 0;
	for (int l = 0; l < net->L; l++)
		t += net->ly[l].dense_nw + net->ly[l].nb;
	return t;
}

size_t eg_net_params_nonzero(const eg_net *net)
{
	size_t t = 0;
	for (int l = 0; l < net->L; l++) {
		const layer *y = &net->ly[l];
		for (size_t i = 0; i < y->nw; i++)
			t += y->w[i] != 0.0f;
		for (size_t i = 0; i < y->nb; i++)
			t += y->b[i] != 0.0f;
	}
	return t;
}

int eg_net_layers(const eg_net *net)
{
	return net->L;
}

int eg_net_layer_info(const eg_net *net, int l, eg_net_layer_desc *out)
{
	if (l < 0 || l >= net->L || out == NULL)
		return EG_ERANGE;
	const layer *y = &net->ly[l];
	out->kind = y->kind;
	out->weights = y->nw;
	out->biases = y->nb;
	out->dense_weights = y->dense_nw;
	out->in_len = y->in_len;
	out->out_len = y->out_len;
	out->frozen = y->frozen;
	return EG_OK;
}

int eg_net_params(eg_net *net, int l, float **w, size_t *nw, float **b,
		  size_t *nb)
{
	if (l < 0 || l >= net->L)
		return EG_ERANGE;
	if (w != NULL)
		*w = net->ly[l].w;
	if (nw != NULL)
		*nw = net->ly[l].nw;
	if (b != NULL)
		*b = net->ly[l].b;
	if (nb != NULL)
		*nb = net->ly[l].nb;
	return EG_OK;
}

/* Masks the weights and refreshes circulant spectra after an outside
 * change of the weights. */
static void weights_changed(eg_net *net)
{
	for (int l = 0; l < net->L; l++) {
		layer *y = &net->ly[l];
		if (y->mask != NULL)
			mul_mask(y->w, y->mask, y->nw);
		if (y->circ != NULL)
			eg_circ_weights_changed(y->circ);
	}
}

void eg_net_params_changed(eg_net *net)
{
	weights_changed(net);
}

int eg_net_layer(eg_net *net, int l, float **w, float **b, int *rows,
		 int *cols)
{
	if (l < 0 || l >= net->L)
		return EG_ERANGE;
	const layer *y = &net->ly[l];
	if (y->kind != EG_LAYER_DENSE)
		return EG_ENOTSUP;
	if (w != NULL)
		*w = y->w;
	if (b != NULL)
		*b = y->b;
	if (rows != NULL)
		*rows = y->rows;
	if (cols != NULL)
		*cols = y->cols;
	return EG_OK;
}

int eg_net_grads(eg_net *net, int l, float **dw, float **db)
{
	if (l < 0 || l >= net->L)
		return EG_ERANGE;
	if (dw != NULL)
		*dw = net->ly[l].dw;
	if (db != NULL)
		*db = net->ly[l].db;
	return EG_OK;
}

int eg_net_feedback(eg_net *net, int l, float **B, int *rows, int *cols)
{
	if (l < 0 || l >= net->L - 1 || net->ly[l].fb == NULL)
		return EG_ERANGE;
	if (B != NULL)
		*B = net->ly[l].fb;
	if (rows != NULL)
		*rows = net->ly[l].fb_rows;
	if (cols != NULL)
		*cols = net->ly[l].fb_cols;
	return EG_OK;
}

/* ---- masks, pruning, snapshots ---- */

static int ensure_masks(eg_net *net)
{
	size_t total = 0;

	if (net->masks != NULL)
		return EG_OK;
	for (int l = 0; l < net->L; l++)
		total += net->ly[l].nw;
	net->masks = malloc((total ? total : 1) * sizeof(float));
	if (net->masks == NULL)
		return EG_ENOMEM;
	float *m = net->masks;
	for (int l = 0; l < net->L; l++) {
		net->ly[l].mask = m;
		for (size_t i = 0; i < net->ly[l].nw; i++)
			m[i] = 1.0f;
		m += net->ly[l].nw;
	}
	return EG_OK;
}

/* Zeroes the weight and its optimizer state at masked position i. */
static void kill_weight(layer *y, size_t i)
{
	y->mask[i] = 0.0f;
	y->w[i] = 0.0f;
	y->s1w[i] = 0.0f;
	if (y->s2w != NULL)
		y->s2w[i] = 0.0f;
}

int eg_net_mask(eg_net *net, int l, const float **mask)
{
	if (l < 0 || l >= net->L || mask == NULL)
		return EG_ERANGE;
	*mask = net->ly[l].mask;
	return EG_OK;
}

int eg_net_set_mask(eg_net *net, int l, const float *mask)
{
	if (l < 0 || l >= net->L || mask == NULL)
		return EG_ERANGE;
	if (ensure_masks(net) != EG_OK)
		return EG_ENOMEM;
	layer *y = &net->ly[l];
	for (size_t i = 0; i < y->nw; i++) {
		y->mask[i] = 1.0f;
		if (mask[i] == 0.0f)
			kill_weight(y, i);
	}
	if (y->circ != NULL)
		eg_circ_weights_changed(y->circ);
	return EG_OK;
}

struct rank {
	float mag;
	int32_t layer;
	int64_t index;
};

static int rank_cmp(const void *pa, const void *pb)
{
	const struct rank *a = pa, *b = pb;

	if (a->mag != b->mag)
		return a->mag < b->mag ? -1 : 1;
	if (a->layer != b->layer)
		return a->layer < b->layer ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* Masks the round(rate * live) smallest live weights of layers lo..hi. */
static int prune_group(eg_net *net, int lo, int hi, double rate)
{
	size_t live = 0, k = 0;
	struct rank *r;

	for (int l = lo; l <= hi; l++)
		for (size_t i = 0; i < net->ly[l].nw; i++)
			live += net->ly[l].mask[i] != 0.0f;
	size_t drop = (size_t)llround(rate * (double)live);
	if (drop == 0)
		return EG_OK;
	r = malloc(live * sizeof(*r));
	if (r == NULL)
		return EG_ENOMEM;
	for (int l = lo; l <= hi; l++) {
		const layer *y = &net->ly[l];
		for (size_t i = 0; i < y->nw; i++)
			if (y->mask[i] != 0.0f)
				r[k++] = (struct rank){fabsf(y->w[i]), l,
						       (int64_t)i};
	}
	qsort(r, live, sizeof(*r), rank_cmp);
	for (size_t j = 0; j < drop; j++)
		kill_weight(&net->ly[r[j].layer], (size_t)r[j].index);
	free(r);
	return EG_OK;
}

int eg_net_prune(eg_net *net, double rate, double output_rate,
		 eg_prune_scope scope, eg_diag *d)
{
	const int top = net->L - 1;
	int rc = EG_OK;

	if (!(rate >= 0.0 && rate < 1.0))
		return eg_diag_set(d, EG_ERANGE,
				   "prune rate must be in [0, 1), got %g", rate);
	if (!(output_rate >= 0.0 && output_rate < 1.0))
		return eg_diag_set(d, EG_ERANGE,
				   "prune output_rate must be in [0, 1), got %g",
				   output_rate);
	if ((unsigned)scope > EG_PRUNE_GLOBAL)
		return eg_diag_set(d, EG_EINVAL, "prune scope: unknown %d",
				   (int)scope);
	if (ensure_masks(net) != EG_OK)
		return eg_diag_set(d, EG_ENOMEM, "prune: out of memory");
	if (scope == EG_PRUNE_GLOBAL && top > 0)
		rc = prune_group(net, 0, top - 1, rate);
	for (int l = 0; rc == EG_OK && l < top && scope == EG_PRUNE_LAYER; l++)
		rc = prune_group(net, l, l, rate);
	if (rc == EG_OK)
		rc = prune_group(net, top, top, output_rate);
	if (rc != EG_OK)
		return eg_diag_set(d, rc, "prune: out of memory");
	weights_changed(net);
	return EG_OK;
}

double eg_net_remaining(const eg_net *net, size_t *live, size_t *total)
{
	size_t lv = 0, t = 0;

	for (int l = 0; l < net->L; l++) {
		const layer *y = &net->ly[l];
		t += y->nw;
		if (y->mask == NULL) {
			lv += y->nw;
			continue;
		}
		for (size_t i = 0; i < y->nw; i++)
			lv += y->mask[i] != 0.0f;
	}
	if (live != NULL)
		*live = lv;
	if (total != NULL)
		*total = t;
	return t ? (double)lv / (double)t : 1.0;
}

void eg_net_reset_optimizer(eg_net *net)
{
	net->step = 0;
	for (int l = 0; l < net->L; l++) {
		layer *y = &net->ly[l];
		memset(y->s1w, 0, y->nw * sizeof(float));
		if (y->s2w != NULL)
			memset(y->s2w, 0, y->nw * sizeof(float));
		if (y->nb > 0) {
			memset(y->s1b, 0, y->nb * sizeof(float));
			if (y->s2b != NULL)
				memset(y->s2b, 0, y->nb * sizeof(float));
		}
	}
}

size_t eg_net_snapshot_len(const eg_net *net)
{
	return eg_net_params_total(net);
}

void eg_net_snapshot(const eg_net *net, float *buf)
{
	for (int l = 0; l < net->L; l++) {
		const layer *y = &net->ly[l];
		memcpy(buf, y->w, y->nw * sizeof(float));
		buf += y->nw;
		if (y->nb > 0)
			memcpy(buf, y->b, y->nb * sizeof(float));
		buf += y->nb;
	}
}

void eg_net_restore(eg_net *net, const float *buf)
{
	for (int l = 0; l < net->L; l++) {
		layer *y = &net->ly[l];
		memcpy(y->w, buf, y->nw * sizeof(float));
		buf += y->nw;
		if (y->nb > 0)
			memcpy(y->b, buf, y->nb * sizeof(float));
		buf += y->nb;
	}
	eg_net_reset_optimizer(net);
	weights_changed(net);
}

void eg_net_reinit(eg_net *net, uint64_t seed)
{
	eg_rng r;

	eg_rng_seed_stream(&r, seed, "reinit");
	draw_weights(net, &r);
	for (int l = 0; l < net->L; l++)
		if (net->ly[l].nb > 0)
			memset(net->ly[l].b, 0, net->ly[l].nb * sizeof(float));
	eg_net_reset_optimizer(net);
	weights_changed(net);
}

int eg_net_set_frozen(eg_net *net, int l, bool frozen)
{
	if (l < 0 || l >= net->L)
		return EG_ERANGE;
	net->ly[l].frozen = frozen;
	return EG_OK;
}
