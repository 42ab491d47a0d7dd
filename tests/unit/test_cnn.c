/*
 * test_cnn.c - eg_net with conv + max-pool layers and with block-circulant
 * layers (kernels/net.h, Kernels II): every parameter gradient of a small
 * CNN and of a circulant MLP under BP against central finite differences of
 * an independent double-precision forward pass written here (direct
 * convolution loops, window maxima, circulant blocks expanded from their
 * first columns); DFA through a pooling conv layer and both hybrid splits
 * against the same reference's intermediates; parameter counts and
 * compression; config refusals; and that CNNs learn.
 *
 * Tolerances as in test_net.c: float analytic gradients against a double
 * reference with h = 1e-5 agree to ~1e-5 relative; the checks allow 1e-3
 * relative plus 1e-5 absolute.  tanh keeps the loss smooth; the random
 * inputs make max-pool ties and kinks (where finite differences would
 * straddle a switch of the maximum) vanishingly unlikely.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/net.h"
#include "kernels/rng.h"
#include "tests/harness.h"

#define TOL_REL 1e-3
#define TOL_ABS 1e-5
#define NB 4        /* batch */
#define MAXV 512    /* longest per-example vector in these nets */
#define MAXW 4096   /* most stored weights of one layer */
#define MAXLY 6

/* ------------------------------------------------------------------ */
/* The reference: layers described from the config, parameters copied
 * from the net as doubles. */

typedef struct rlayer {
	eg_layer_kind kind;
	int c, h, w, f, k, pool; /* conv: input shape, filters, kernel, pool */
	int ho, wo;              /* conv output (before pool) */
	int in_len, out_len, act_len;
	int bk, p, q;            /* circulant block, block rows, columns */
	size_t nw, nb;
	double W[MAXW], b[MAXV];
} rlayer;

typedef struct rnet {
	int L, K;
	rlayer ly[MAXLY];
	/* Intermediates of the last forward, per example. */
	double pre[NB][MAXLY][MAXV], act[NB][MAXLY][MAXV], out[NB][MAXLY][MAXV];
	int amax[NB][MAXLY][MAXV];
	double z[NB][MAXV];
} rnet;

static void ref_from_net(rnet *r, eg_net *net, const eg_net_config *c)
{
	int ch = c->in_c, hh = c->in_h, ww = c->in_w;

	memset(r, 0, sizeof(*r));
	r->L = eg_net_layers(net);
	r->K = c->n_out;
	for (int l = 0; l < r->L; l++) {
		rlayer *y = &r->ly[l];
		eg_net_layer_desc ds;
		float *w, *b;
		EG_CHECK_OK(eg_net_layer_info(net, l, &ds));
		EG_CHECK_OK(eg_net_params(net, l, &w, &y->nw, &b, &y->nb));
		EG_CHECK(y->nw <= MAXW && ds.out_len <= MAXV);
		y->kind = ds.kind;
		y->in_len = ds.in_len;
		y->out_len = ds.out_len;
		y->act_len = ds.out_len;
		if (ds.kind == EG_LAYER_CONV) {
			y->c = ch;
			y->h = hh;
			y->w = ww;
			y->f = c->conv[l].filters;
			y->k = c->conv[l].kernel;
			y->pool = c->conv[l].pool;
			y->ho = hh + 2 * (y->k / 2) - y->k + 1;
			y->wo = ww + 2 * (y->k / 2) - y->k + 1;
			y->act_len = y->f * y->ho * y->wo;
			ch = y->f;
			hh = y->ho / y->pool;
			ww = y->wo / y->pool;
		} else if (ds.kind == EG_LAYER_CIRCULANT) {
			y->bk = c->circulant_block;
			y->p = (ds.out_len + y->bk - 1) / y->bk;
			y->q = (ds.in_len + y->bk - 1) / y->bk;
		}
		for (size_t i = 0; i < y->nw; i++)
			y->W[i] = w[i];
		for (size_t i = 0; i < y->nb; i++)
			y->b[i] = b[i];
	}
}

/* The dense-equivalent weight (r, c) of a circulant layer: block (i, j),
 * first-column convention W_ij[r', c'] = w_ij[(r' - c') mod k]. */
static double circ_w(const rlayer *y, int r, int c)
{
	int k = y->bk, i = r / k, j = c / k;
	int t = ((r % k) - (c % k) + k) % k;
	return y->W[((size_t)i * y->q + j) * k + t];
}

static double ref_forward(rnet *r, const eg_net_config *cfg, const float *x,
			  int e)
{
	double in[MAXV];
	for (int i = 0; i < cfg->n_in; i++)
		in[i] = x[(size_t)e * cfg->n_in + i];
	for (int l = 0; l < r->L; l++) {
		rlayer *y = &r->ly[l];
		bool top = l == r->L - 1;
		double *pre = r->pre[e][l], *act = r->act[e][l];
		double *out = top ? r->z[e] : r->out[e][l];
		if (y->kind == EG_LAYER_CONV) {
			int pad = y->k / 2;
			for (int f = 0; f < y->f; f++)
				for (int oy = 0; oy < y->ho; oy++)
					for (int ox = 0; ox < y->wo; ox++) {
						double s = y->nb ? y->b[f] : 0;
						for (int c = 0; c < y->c; c++)
							for (int u = 0; u < y->k; u++)
								for (int v = 0; v < y->k; v++) {
									int iy = oy - pad + u, ix = ox - pad + v;
									if (iy < 0 || ix < 0 || iy >= y->h || ix >= y->w)
										continue;
									s += y->W[((f * y->c + c) * y->k + u) * y->k + v] *
									     in[(c * y->h + iy) * y->w + ix];
								}
						pre[(f * y->ho + oy) * y->wo + ox] = s;
					}
			for (int i = 0; i < y->act_len; i++)
				act[i] = tanh(pre[i]);
			int P = y->pool, ph = y->ho / P, pw = y->wo / P;
			for (int f = 0; f < y->f; f++)
				for (int oy = 0; oy < ph; oy++)
					for (int ox = 0; ox < pw; ox++) {
						int best = -1;
						for (int u = 0; u < P; u++)
							for (int v = 0; v < P; v++) {
								int idx = (f * y->ho + oy * P + u) * y->wo + ox * P + v;
								if (best < 0 || act[idx] > act[best])
									best = idx;
							}
						int o = (f * ph + oy) * pw + ox;
						out[o] = act[best];
						r->amax[e][l][o] = best;
					}
		} else {
			for (int o = 0; o < y->out_len; o++) {
				double s = y->nb ? y->b[o] : 0;
				for (int i = 0; i < y->in_len; i++)
					s += (y->kind == EG_LAYER_CIRCULANT
						      ? circ_w(y, o, i)
						      : y->W[(size_t)o * y->in_len + i]) *
					     in[i];
				pre[o] = s;
				out[o] = top ? s : tanh(s);
				act[o] = out[o];
			}
		}
		if (!top)
			for (int i = 0; i < y->out_len; i++)
				in[i] = out[i];
	}
	/* Softmax cross-entropy of example e is computed by the caller. */
	return 0;
}

static double ref_loss(rnet *r, const eg_net_config *c, const float *x,
		       const int32_t *lab)
{
	double tot = 0;
	for (int e = 0; e < NB; e++) {
		ref_forward(r, c, x, e);
		double m = r->z[e][0], s = 0;
		for (int k = 1; k < r->K; k++)
			m = fmax(m, r->z[e][k]);
		for (int k = 0; k < r->K; k++)
			s += exp(r->z[e][k] - m);
		tot += log(s) + m - r->z[e][lab[e]];
	}
	return tot / NB;
}

static void check_close(double got, double want, const char *what, int l,
			size_t i)
{
	EG_CHECK_MSG(fabs(got - want) <= TOL_REL * fabs(want) + TOL_ABS,
		     "%s layer %d entry %zu: %.9g vs reference %.9g", what, l,
		     i, got, want);
}

static void randn(eg_rng *g, float *v, size_t n, double sd)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (float)(sd * eg_rng_normal(g));
}

/* A net from c with random biases, a batch, and one train_batch whose
 * gradients are left for the caller.  The reference holds the pre-step
 * parameters. */
static eg_net *setup(const eg_net_config *c, rnet *r, float *x, int32_t *y)
{
	eg_net *net;
	eg_diag d = {{0}};
	eg_rng g;
	double loss;

	EG_CHECK_MSG(eg_net_create(c, &net, &d) == EG_OK, "%s", d.msg);
	eg_rng_seed(&g, 77);
	randn(&g, x, (size_t)NB * c->n_in, 1.0);
	for (int i = 0; i < NB; i++)
		y[i] = (int32_t)eg_rng_below(&g, (uint64_t)c->n_out);
	for (int l = 0; l < eg_net_layers(net); l++) {
		float *b;
		size_t nb;
		EG_CHECK_OK(eg_net_params(net, l, NULL, NULL, &b, &nb));
		randn(&g, b, nb, 0.3);
	}
	ref_from_net(r, net, c);
	EG_CHECK_OK(eg_net_train_batch(net, x, y, NB, &loss));
	EG_CHECK_NEAR(loss, ref_loss(r, c, x, y), 1e-5 * (1 + loss));
	return net;
}

/* Finite differences of every parameter of layers lo..hi. */
static void fd_layers(eg_net *net, rnet *r, const eg_net_config *c,
		      const float *x, const int32_t *y, int lo, int hi)
{
	const double h = 1e-5;
	for (int l = lo; l <= hi; l++) {
		rlayer *ry = &r->ly[l];
		float *dw, *db;
		EG_CHECK_OK(eg_net_grads(net, l, &dw, &db));
		for (size_t i = 0; i < ry->nw; i++) {
			double keep = ry->W[i];
			ry->W[i] = keep + h;
			double lp = ref_loss(r, c, x, y);
			ry->W[i] = keep - h;
			double lm = ref_loss(r, c, x, y);
			ry->W[i] = keep;
			check_close(dw[i], (lp - lm) / (2 * h), "dW", l, i);
		}
		for (size_t i = 0; i < ry->nb; i++) {
			double keep = ry->b[i];
			ry->b[i] = keep + h;
			double lp = ref_loss(r, c, x, y);
			ry->b[i] = keep - h;
			double lm = ref_loss(r, c, x, y);
			ry->b[i] = keep;
			check_close(db[i], (lp - lm) / (2 * h), "db", l, i);
		}
	}
}

/* 2 x 6 x 6 images -> conv 3 filters 3x3 pool 2 (3 x 3 x 3) -> conv 4
 * filters 3x3 no pool (4 x 3 x 3) -> hidden 5 -> 3 classes. */
static eg_net_config small_cnn(void)
{
	eg_net_config c;
	eg_net_config_default(&c);
	c.in_c = 2;
	c.in_h = 6;
	c.in_w = 6;
	c.n_in = 72;
	c.n_conv = 2;
	c.conv[0] = (eg_net_conv){3, 3, 2};
	c.conv[1] = (eg_net_conv){4, 3, 1};
	c.n_hidden = 1;
	c.hidden[0] = 5;
	c.n_out = 3;
	c.act = EG_ACT_TANH;
	c.init = EG_INIT_GLOROT;
	c.batch = NB;
	c.seed = 5;
	return c;
}

static rnet R;

EG_TEST(cnn_gradients_bp)
{
	eg_net_config c = small_cnn();
	float x[NB * 72];
	int32_t y[NB];
	eg_net *net = setup(&c, &R, x, y);
	EG_CHECK_INT(eg_net_layers(net), 4);
	fd_layers(net, &R, &c, x, y, 0, 3);
	eg_net_free(net);
	/* An even kernel and a pool that drops a row still check out. */
	c.conv[0] = (eg_net_conv){2, 4, 4}; /* 6x6 -> 7x7 -> 1x1 */
	c.conv[1] = (eg_net_conv){3, 1, 1};
	net = setup(&c, &R, x, y);
	fd_layers(net, &R, &c, x, y, 0, 3);
	eg_net_free(net);
}

EG_TEST(circulant_mlp_gradients_bp)
{
	eg_net_config c;
	float x[NB * 10];
	int32_t y[NB];
	eg_net_config_default(&c);
	/* 10 inputs pad to 12 with k = 4; hidden 6 pads to 8 outputs. */
	c.n_in = 10;
	c.n_hidden = 2;
	c.hidden[0] = 6;
	c.hidden[1] = 8;
	c.n_out = 3;
	c.act = EG_ACT_TANH;
	c.batch = NB;
	c.circulant_block = 4;
	c.seed = 3;
	eg_net *net = setup(&c, &R, x, y);
	eg_net_layer_desc ds;
	EG_CHECK_OK(eg_net_layer_info(net, 0, &ds));
	EG_CHECK(ds.kind == EG_LAYER_CIRCULANT);
	EG_CHECK_INT(ds.weights, 2 * 3 * 4);
	EG_CHECK_INT(ds.dense_weights, 60);
	EG_CHECK_OK(eg_net_layer_info(net, 1, &ds));
	EG_CHECK(ds.kind == EG_LAYER_CIRCULANT);
	EG_CHECK_INT(ds.weights, 2 * 2 * 4);
	EG_CHECK_OK(eg_net_layer_info(net, 2, &ds));
	EG_CHECK(ds.kind == EG_LAYER_DENSE); /* the output stays dense */
	EG_CHECK_INT(eg_net_params_total(net), 24 + 6 + 16 + 8 + 24 + 3);
	EG_CHECK_INT(eg_net_params_dense(net), 60 + 6 + 48 + 8 + 24 + 3);
	/* A circulant layer has no dense view for quantization. */
	EG_CHECK(eg_net_layer(net, 0, NULL, NULL, NULL, NULL) == EG_ENOTSUP);
	fd_layers(net, &R, &c, x, y, 0, 2);
	eg_net_free(net);

	/* Under FA the circulant layers' feedback is a dense matrix. */
	c.algo = EG_ALGO_FA;
	net = setup(&c, &R, x, y);
	float *B;
	int rows, cols;
	EG_CHECK_OK(eg_net_feedback(net, 0, &B, &rows, &cols));
	EG_CHECK_INT(rows, 6);
	EG_CHECK_INT(cols, 8);
	fd_layers(net, &R, &c, x, y, 2, 2); /* the output is exact */
	eg_net_free(net);

	/* k = 1 is the dense layer itself. */
	c.algo = EG_ALGO_BP;
	c.circulant_block = 1;
	net = setup(&c, &R, x, y);
	EG_CHECK_INT(eg_net_params_total(net), eg_net_params_dense(net));
	EG_CHECK_OK(eg_net_layer(net, 0, NULL, NULL, NULL, NULL));
	eg_net_free(net);
}

/*
 * The DFA weight gradient of conv layer l from the reference's
 * intermediates: g = e B^T on the pooled output, routed to the window
 * maxima, times tanh', then correlated with the layer's input.
 */
static void dfa_conv_ref(eg_net *net, rnet *r, const eg_net_config *c,
			 const float *x, const int32_t *lab, int l,
			 double *dw)
{
	rlayer *y = &r->ly[l];
	float *B;
	int rows, cols;
	EG_CHECK_OK(eg_net_feedback(net, l, &B, &rows, &cols));
	EG_CHECK_INT(rows, y->out_len);
	EG_CHECK_INT(cols, r->K);
	memset(dw, 0, y->nw * sizeof(double));
	for (int e = 0; e < NB; e++) {
		double ez[MAXV], s = 0, m = -INFINITY, g[MAXV], delta[MAXV] = {0};
		double in[MAXV];
		ref_forward(r, c, x, e);
		for (int k = 0; k < r->K; k++)
			m = fmax(m, r->z[e][k]);
		for (int k = 0; k < r->K; k++)
			s += exp(r->z[e][k] - m);
		for (int k = 0; k < r->K; k++)
			ez[k] = (exp(r->z[e][k] - m) / s - (k == lab[e])) / NB;
		for (int o = 0; o < y->out_len; o++) {
			g[o] = 0;
			for (int k = 0; k < r->K; k++)
				g[o] += ez[k] * B[(size_t)o * cols + k];
			delta[r->amax[e][l][o]] += g[o];
		}
		for (int i = 0; i < y->act_len; i++)
			delta[i] *= 1 - tanh(r->pre[e][l][i]) * tanh(r->pre[e][l][i]);
		for (int i = 0; i < y->in_len; i++)
			in[i] = l == 0 ? x[(size_t)e * c->n_in + i]
				       : r->out[e][l - 1][i];
		int pad = y->k / 2;
		for (int f = 0; f < y->f; f++)
			for (int oy = 0; oy < y->ho; oy++)
				for (int ox = 0; ox < y->wo; ox++)
					for (int ch = 0; ch < y->c; ch++)
						for (int u = 0; u < y->k; u++)
							for (int v = 0; v < y->k; v++) {
								int iy = oy - pad + u, ix = ox - pad + v;
								if (iy < 0 || ix < 0 || iy >= y->h || ix >= y->w)
									continue;
								dw[((f * y->c + ch) * y->k + u) * y->k + v] +=
									delta[(f * y->ho + oy) * y->wo + ox] *
									in[(ch * y->h + iy) * y->w + ix];
							}
	}
}

EG_TEST(dfa_and_hybrid_through_conv)
{
	eg_net_config c = small_cnn();
	float x[NB * 72];
	int32_t y[NB];
	static double dw[MAXW];
	float *g;

	/* Pure DFA: each conv layer's gradient from B e through its pool;
	 * the output layer exact. */
	c.algo = EG_ALGO_DFA;
	eg_net *net = setup(&c, &R, x, y);
	for (int l = 0; l < 2; l++) {
		dfa_conv_ref(net, &R, &c, x, y, l, dw);
		EG_CHECK_OK(eg_net_grads(net, l, &g, NULL));
		for (size_t i = 0; i < R.ly[l].nw; i++)
			check_close(g[i], dw[i], "dfa conv dW", l, i);
	}
	fd_layers(net, &R, &c, x, y, 3, 3);
	eg_net_free(net);

	/* conv-dfa: conv layers as above, the fc layers by true BP. */
	c.algo = EG_ALGO_HYBRID;
	c.hybrid = EG_HYBRID_CONV_DFA;
	net = setup(&c, &R, x, y);
	EG_CHECK(eg_net_feedback(net, 2, NULL, NULL, NULL) == EG_ERANGE);
	dfa_conv_ref(net, &R, &c, x, y, 1, dw);
	EG_CHECK_OK(eg_net_grads(net, 1, &g, NULL));
	for (size_t i = 0; i < R.ly[1].nw; i++)
		check_close(g[i], dw[i], "conv-dfa dW", 1, i);
	fd_layers(net, &R, &c, x, y, 2, 3);
	eg_net_free(net);

	/* fc-dfa: the fc hidden layer has feedback, the conv layers none,
	 * and the output layer is exact. */
	c.hybrid = EG_HYBRID_FC_DFA;
	net = setup(&c, &R, x, y);
	EG_CHECK_OK(eg_net_feedback(net, 2, NULL, NULL, NULL));
	EG_CHECK(eg_net_feedback(net, 0, NULL, NULL, NULL) == EG_ERANGE);
	EG_CHECK(eg_net_feedback(net, 1, NULL, NULL, NULL) == EG_ERANGE);
	fd_layers(net, &R, &c, x, y, 3, 3);
	/* ... and its conv gradients differ from BP's (a DFA error below). */
	float *gh;
	EG_CHECK_OK(eg_net_grads(net, 1, &gh, NULL));
	double diff = 0;
	{
		const double h = 1e-5;
		double keep = R.ly[1].W[0];
		R.ly[1].W[0] = keep + h;
		double lp = ref_loss(&R, &c, x, y);
		R.ly[1].W[0] = keep - h;
		double lm = ref_loss(&R, &c, x, y);
		R.ly[1].W[0] = keep;
		diff = fabs(gh[0] - (lp - lm) / (2 * h));
	}
	EG_CHECK(diff > 1e-6);
	eg_net_free(net);
}

EG_TEST(create_refuses_what_is_not_defined)
{
	eg_net_config c = small_cnn();
	eg_net *net;
	eg_diag d = {{0}};

	c.algo = EG_ALGO_FA;
	EG_CHECK(eg_net_create(&c, &net, &d) == EG_EINVAL);
	EG_CHECK(strncmp(d.msg, "algo:", 5) == 0 && strstr(d.msg, "fa") != NULL);
	c = small_cnn();
	c.in_w = 5;
	EG_CHECK(eg_net_create(&c, &net, &d) == EG_EINVAL);
	c = small_cnn();
	c.conv[1].pool = 7; /* larger than the 3 x 3 map */
	EG_CHECK(eg_net_create(&c, &net, &d) != EG_OK);
	EG_CHECK(strstr(d.msg, "conv[1]") != NULL);

	eg_net_config_default(&c);
	c.n_in = 8;
	c.n_hidden = 1;
	c.hidden[0] = 4;
	c.n_out = 2;
	c.algo = EG_ALGO_HYBRID;
	EG_CHECK(eg_net_create(&c, &net, &d) == EG_EINVAL);
	EG_CHECK(strncmp(d.msg, "algo:", 5) == 0 &&
		 strstr(d.msg, "hybrid needs conv") != NULL);
	c.algo = EG_ALGO_BP;
	c.circulant_block = 6;
	EG_CHECK(eg_net_create(&c, &net, &d) == EG_ERANGE);
	EG_CHECK(strncmp(d.msg, "circulant_block", 15) == 0);
}

/* 1 x 8 x 8 "images" of 4 Gaussian classes; BP and both hybrids learn. */
EG_TEST(small_cnn_learns)
{
	enum { N = 400, D = 64, K = 4 };
	static float x[N * D], mu[K * D];
	static int32_t y[N];
	eg_rng g;
	eg_rng_seed(&g, 11);
	randn(&g, mu, K * D, 1.0);
	for (int i = 0; i < N; i++) {
		y[i] = i % K;
		for (int j = 0; j < D; j++)
			x[i * D + j] = mu[y[i] * D + j] + (float)eg_rng_normal(&g);
	}
	const eg_algo algos[] = {EG_ALGO_BP, EG_ALGO_HYBRID, EG_ALGO_HYBRID,
				 EG_ALGO_DFA, EG_ALGO_BDFA};
	for (int t = 0; t < 5; t++) {
		eg_net_config c;
		eg_net *net;
		double loss, acc, acc0;
		eg_net_config_default(&c);
		c.in_c = 1;
		c.in_h = c.in_w = 8;
		c.n_in = D;
		c.n_conv = 1;
		c.conv[0] = (eg_net_conv){4, 3, 2};
		c.n_hidden = 1;
		c.hidden[0] = 16;
		c.n_out = K;
		c.act = EG_ACT_TANH;
		c.algo = algos[t];
		c.hybrid = t == 2 ? EG_HYBRID_FC_DFA : EG_HYBRID_CONV_DFA;
		c.lr = 0.05;
		c.momentum = 0.9;
		c.batch = 32;
		EG_CHECK_OK(eg_net_create(&c, &net, NULL));
		EG_CHECK_OK(eg_net_evaluate(net, x, y, N, &loss, &acc0));
		for (int e = 0; e < 5; e++)
			EG_CHECK_OK(eg_net_train_epoch(net, x, y, N, NULL, NULL,
						       &loss));
		EG_CHECK_OK(eg_net_evaluate(net, x, y, N, &loss, &acc));
		EG_CHECK_MSG(acc > 0.9, "algo %d: accuracy %.3f (from %.3f)", t,
			     acc, acc0);
		eg_net_free(net);
	}
}

EG_TEST_MAIN({"cnn_gradients_bp", cnn_gradients_bp, 20},
	     {"circulant_mlp_gradients_bp", circulant_mlp_gradients_bp, 20},
	     {"dfa_and_hybrid_through_conv", dfa_and_hybrid_through_conv, 20},
	     {"create_refuses_what_is_not_defined",
	      create_refuses_what_is_not_defined, 10},
	     {"small_cnn_learns", small_cnn_learns, 20})
