/*
 * board_sim.c - the simulated board of board_sim.h.
 *
 * The board keeps a loaded network as a `qnet`: layer sizes, the weight
 * and bias codes (quantized once at load), and the prefix sums of the
 * output widths that place each layer's block in the packed output.  The
 * datapath function runs any qnet, so the health check builds a small
 * qnet of the known-answer network on the stack (fixed-size arrays) and
 * runs it through exactly the code the probes go through, without
 * touching the loaded network.
 *
 * The datapath processes one example at a time (a streaming design): the
 * input row is quantized into the board's scratch row, and each layer
 * reads the previous layer's row straight from the caller's packed output
 * array, so a run needs no memory beyond that one row.
 *
 * Invariants: a loaded qnet has 1 <= L <= EG_NET_MAX_LAYERS layers that
 * chain, and a layer with block[l] = k > 1 holds a block-circulant matrix; `pre` has 2L entries (pre[j] = sum of widths of outputs < j);
 * the fault, when set, has a bit inside the activation word.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/board_sim.h"
#include "kernels/rng.h"

#define MAX_OUT (2 * EG_NET_MAX_LAYERS - 1)

struct qnet {
	int L;
	eg_act act;
	int rows[EG_NET_MAX_LAYERS], cols[EG_NET_MAX_LAYERS];
	int block[EG_NET_MAX_LAYERS];         /* circulant k, 0 = dense */
	const int64_t *wq[EG_NET_MAX_LAYERS]; /* rows x cols codes */
	const int64_t *bq[EG_NET_MAX_LAYERS]; /* rows codes, or NULL */
	size_t pre[MAX_OUT + 1];              /* width prefix sums */
	int64_t *xrow;                        /* cols[0] codes of scratch */
};

struct eg_board_sim {
	eg_board_config cfg;
	bool loaded;
	struct qnet net;
	int64_t *mem; /* weights, biases and the input row of `net` */
	bool has_fault;
	eg_board_fault fault;
	bool hang;
};

void eg_board_config_default(eg_board_config *c)
{
	c->parallelism = EG_BOARD_DEFAULT_PARALLELISM;
	c->clock_mhz = EG_BOARD_DEFAULT_CLOCK_MHZ;
	c->pj_per_mac = EG_BOARD_DEFAULT_PJ_MAC;
	c->pj_per_access = EG_BOARD_DEFAULT_PJ_ACCESS;
}

int eg_board_fault_kind_parse(const char *name, eg_board_fault_kind *out,
			      eg_diag *d)
{
	static const char *const names[] = {"bitflip", "stuck0", "stuck1"};

	for (int k = 0; k < 3; k++) {
		if (name != NULL && strcmp(name, names[k]) == 0) {
			*out = (eg_board_fault_kind)k;
			return EG_OK;
		}
	}
	return eg_diag_set(d, EG_EINVAL, "fault kind '%s': expected bitflip, "
			   "stuck0 or stuck1", name != NULL ? name : "");
}

static int check_type(const eg_fx_type *t, const char *what, eg_diag *d)
{
	eg_fx_type copy;
	int rc = eg_fx_type_init(&copy, t->w, t->i, t->round, t->ovf, d);

	return rc == EG_OK ? EG_OK : eg_diag_prefix(d, rc, "board %s type", what);
}

int eg_board_sim_create(const eg_board_config *cfg, eg_board_sim **out,
			eg_diag *d)
{
	eg_board_sim *b;
	int rc;

	*out = NULL;
	if ((rc = check_type(&cfg->types.weight, "weight", d)) != EG_OK ||
	    (rc = check_type(&cfg->types.bias, "bias", d)) != EG_OK ||
	    (rc = check_type(&cfg->types.act, "activation", d)) != EG_OK ||
	    (rc = check_type(&cfg->types.accum, "accumulator", d)) != EG_OK)
		return rc;
	if (cfg->parallelism < 1)
		return eg_diag_set(d, EG_ERANGE, "board parallelism %d: must "
				   "be at least 1", cfg->parallelism);
	if (!(cfg->clock_mhz > 0) || !isfinite(cfg->clock_mhz))
		return eg_diag_set(d, EG_ERANGE, "board clock %g MHz: must be "
				   "positive", cfg->clock_mhz);
	if (!(cfg->pj_per_mac >= 0) || !(cfg->pj_per_access >= 0) ||
	    !isfinite(cfg->pj_per_mac) || !isfinite(cfg->pj_per_access))
		return eg_diag_set(d, EG_ERANGE, "board energy per MAC / access "
				   "must be finite and non-negative");
	/* Products of two codes must fit the 127 bits eg_fx works in. */
	if (cfg->types.weight.w + cfg->types.act.w > 126)
		return eg_diag_set(d, EG_ERANGE, "board weight and activation "
				   "words of %d + %d bits are too wide",
				   cfg->types.weight.w, cfg->types.act.w);
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return eg_diag_set(d, EG_ENOMEM, "board: out of memory");
	b->cfg = *cfg;
	*out = b;
	return EG_OK;
}

void eg_board_sim_free(eg_board_sim *b)
{
	if (b == NULL)
		return;
	free(b->mem);
	free(b);
}

const eg_board_config *eg_board_sim_config(const eg_board_sim *b)
{
	return &b->cfg;
}

static void qnet_prefix(struct qnet *q)
{
	int nout = 2 * q->L - 1;

	q->pre[0] = 0;
	for (int j = 0; j < nout; j++)
		q->pre[j + 1] = q->pre[j] + (size_t)q->rows[j / 2];
}

/* Whether the rows x cols matrix w is block-circulant with k x k blocks
 * (every element equals the one its block's first column defines;
 * elements whose defining entry lies in the padding are not checked). */
static bool is_block_circulant(const float *w, int rows, int cols, int k)
{
	for (int r = 0; r < rows; r++) {
		for (int c = 0; c < cols; c++) {
			int i = r / k, j = c / k;
			int t = ((r % k) - (c % k) + k) % k;
			int rr = i * k + t;

			if (rr < rows && w[(size_t)rr * (size_t)cols +
					  (size_t)(j * k)] !=
					 w[(size_t)r * (size_t)cols + (size_t)c])
				return false;
		}
	}
	return true;
}

int eg_board_sim_load(eg_board_sim *b, eg_act act,
		      const eg_qdense_layer *layers, int n_layers,
		      const int *blocks, eg_diag *d)
{
	size_t words;
	int64_t *mem, *p;
	int rc = eg_qdense_check(layers, n_layers, d);

	if (rc != EG_OK)
		return rc;
	if (n_layers > EG_NET_MAX_LAYERS)
		return eg_diag_set(d, EG_ERANGE, "board: %d layers, at most %d",
				   n_layers, EG_NET_MAX_LAYERS);
	if ((unsigned)act > EG_ACT_LINEAR)
		return eg_diag_set(d, EG_EINVAL, "board: unknown activation %d",
				   (int)act);
	for (int l = 0; blocks != NULL && l < n_layers; l++) {
		int k = blocks[l];

		if (k < 0 || (k & (k - 1)) != 0)
			return eg_diag_set(d, EG_EINVAL, "board: layer %d block "
					   "size %d is not a power of two", l, k);
		if (k > 1 && !is_block_circulant(layers[l].w, layers[l].rows,
						 layers[l].cols, k))
			return eg_diag_set(d, EG_EINVAL, "board: layer %d is not "
					   "block-circulant with k = %d", l, k);
	}
	words = (size_t)layers[0].cols;
	for (int l = 0; l < n_layers; l++)
		words += (size_t)layers[l].rows * ((size_t)layers[l].cols + 1);
	mem = malloc(words * sizeof(*mem));
	if (mem == NULL)
		return eg_diag_set(d, EG_ENOMEM, "board: out of memory for %zu "
				   "words", words);
	free(b->mem);
	b->mem = mem;
	memset(&b->net, 0, sizeof(b->net));
	b->net.L = n_layers;
	b->net.act = act;
	p = mem;
	for (int l = 0; l < n_layers; l++) {
		const eg_qdense_layer *y = &layers[l];
		size_t nw = (size_t)y->rows * (size_t)y->cols;

		b->net.rows[l] = y->rows;
		b->net.cols[l] = y->cols;
		b->net.block[l] = blocks != NULL && blocks[l] > 1 ? blocks[l] : 0;
		eg_fx_quantize_f32(&b->cfg.types.weight, y->w, nw, p, NULL);
		b->net.wq[l] = p;
		p += nw;
		if (y->b != NULL) {
			eg_fx_quantize_f32(&b->cfg.types.bias, y->b,
					   (size_t)y->rows, p, NULL);
			b->net.bq[l] = p;
		}
		p += y->rows;
	}
	b->net.xrow = p;
	qnet_prefix(&b->net);
	b->loaded = true;
	return EG_OK;
}

int eg_board_sim_output_count(const eg_board_sim *b)
{
	return b->loaded ? 2 * b->net.L - 1 : 0;
}

size_t eg_board_sim_outputs_len(const eg_board_sim *b, size_t n)
{
	return b->loaded ? n * b->net.pre[2 * b->net.L - 1] : 0;
}

size_t eg_board_sim_output_offset(const eg_board_sim *b, size_t n, int j,
				  size_t *len)
{
	if (!b->loaded || j < 0 || j >= 2 * b->net.L - 1) {
		if (len != NULL)
			*len = 0;
		return 0;
	}
	if (len != NULL)
		*len = n * (size_t)b->net.rows[j / 2];
	return n * b->net.pre[j];
}

void eg_board_layer_name(eg_act act, int j, char *buf, size_t len)
{
	static const char *const acts[] = {"relu", "sin", "tanh", "sigmoid",
					   "linear"};
	const char *a = (unsigned)act <= EG_ACT_LINEAR ? acts[act] : "act";

	snprintf(buf, len, "%s%d", j % 2 == 0 ? "dense" : a, j / 2);
}

int eg_board_sim_set_fault(eg_board_sim *b, const eg_board_fault *f,
			   eg_diag *d)
{
	if (f == NULL) {
		b->has_fault = false;
		return EG_OK;
	}
	if (f->layer < 0)
		return eg_diag_set(d, EG_ERANGE, "fault layer %d: negative",
				   f->layer);
	if (f->bit < 0 || f->bit >= b->cfg.types.act.w)
		return eg_diag_set(d, EG_ERANGE, "fault bit %d: the board's "
				   "activation word has bits 0..%d", f->bit,
				   b->cfg.types.act.w - 1);
	if (!(f->rate > 0 && f->rate <= 1))
		return eg_diag_set(d, EG_ERANGE, "fault rate %g: must be in "
				   "(0, 1]", f->rate);
	if ((unsigned)f->kind > EG_BOARD_FAULT_STUCK1)
		return eg_diag_set(d, EG_EINVAL, "fault kind %d: unknown",
				   (int)f->kind);
	b->fault = *f;
	b->has_fault = true;
	return EG_OK;
}

void eg_board_sim_set_hang(eg_board_sim *b, bool hang)
{
	b->hang = hang;
}

/* phi of a code of t: exact for relu and linear, the ideal function
 * correctly quantized for the others (as the design model specifies). */
static int64_t act_code(const eg_fx_type *t, eg_act act, int64_t c,
			unsigned *flags)
{
	double v, p;

	switch (act) {
	case EG_ACT_RELU: return c > 0 ? c : 0;
	case EG_ACT_LINEAR: return c;
	case EG_ACT_SIN: v = eg_fx_value(t, c); p = sin(v); break;
	case EG_ACT_TANH: v = eg_fx_value(t, c); p = tanh(v); break;
	case EG_ACT_SIGMOID:
		v = eg_fx_value(t, c);
		p = 1.0 / (1.0 + exp(-v));
		break;
	default: return c;
	}
	return eg_fx_from_double(t, p, flags);
}

/* The fault's effect on one code of a w-bit word, sign-extended again. */
static int64_t fault_code(int64_t c, const eg_board_fault *f, int w)
{
	uint64_t u = (uint64_t)c, m = (uint64_t)1 << f->bit;

	switch (f->kind) {
	case EG_BOARD_FAULT_BITFLIP: u ^= m; break;
	case EG_BOARD_FAULT_STUCK0: u &= ~m; break;
	case EG_BOARD_FAULT_STUCK1: u |= m; break;
	}
	if (w < 64) {
		/* Sign-extend from bit w - 1 without shifting a negative. */
		uint64_t sign = (uint64_t)1 << (w - 1);

		u &= ((uint64_t)1 << w) - 1;
		u = (u ^ sign) - sign;
	}
	return (int64_t)u;
}

static void apply_fault(const eg_board_fault *f, eg_rng *rng, int w,
			int64_t *row, size_t len)
{
	for (size_t k = 0; k < len; k++)
		if (f->rate >= 1.0 || eg_rng_uniform(rng) < f->rate)
			row[k] = fault_code(row[k], f, w);
}

/*
 * The datapath: n examples through q, outputs packed into codes, overflow
 * events counted per output layer into ovf (may be NULL).  fault may be
 * NULL.  Checks *cancel between examples.
 */
static int datapath(const eg_board_config *cfg, const struct qnet *q,
		    const eg_board_fault *fault, const float *x, size_t n,
		    const volatile int *cancel, int64_t *codes,
		    uint64_t *ovf)
{
	const eg_qdense_types *ty = &cfg->types;
	const eg_fx_type *acc_t = &ty->accum, *act_t = &ty->act;
	int fp = eg_fx_frac(&ty->weight) + eg_fx_frac(act_t);
	int fb = eg_fx_frac(&ty->bias), fa = eg_fx_frac(acc_t);
	int nout = 2 * q->L - 1;
	eg_rng rng;

	if (fault != NULL)
		eg_rng_seed_stream(&rng, fault->seed, "board-fault");
	if (ovf != NULL)
		memset(ovf, 0, (size_t)nout * sizeof(*ovf));
	for (size_t i = 0; i < n; i++) {
		const int64_t *in = q->xrow;

		if (cancel != NULL && *cancel)
			return EG_ECANCELLED;
		eg_fx_quantize_f32(act_t, x + i * (size_t)q->cols[0],
				   (size_t)q->cols[0], q->xrow, NULL);
		for (int l = 0; l < q->L; l++) {
			int rows = q->rows[l], cols = q->cols[l], j = 2 * l;
			int64_t *out = codes + n * q->pre[j] + i * (size_t)rows;
			uint64_t events = 0;

			for (int o = 0; o < rows; o++) {
				const int64_t *w = q->wq[l] + (size_t)o * (size_t)cols;
				unsigned fl = 0;
				int64_t acc = 0;

				if (q->bq[l] != NULL)
					acc = eg_fx_requant(acc_t, q->bq[l][o],
							    fb, &fl);
				events += (fl & EG_FX_FLAG_OVERFLOW) != 0;
				for (int k = 0; k < cols; k++) {
					fl = 0;
					acc = eg_fx_add_requant(
						acc_t, acc,
						(__int128)w[k] * in[k], fp, &fl);
					events += (fl & EG_FX_FLAG_OVERFLOW) != 0;
				}
				fl = 0;
				out[o] = eg_fx_requant(act_t, acc, fa, &fl);
				events += (fl & EG_FX_FLAG_OVERFLOW) != 0;
			}
			if (fault != NULL && fault->layer == j)
				apply_fault(fault, &rng, act_t->w, out,
					    (size_t)rows);
			if (ovf != NULL)
				ovf[j] += events;
			in = out;
			if (l + 1 == q->L)
				break;
			/* The activation layer j + 1. */
			int64_t *a = codes + n * q->pre[j + 1] + i * (size_t)rows;
			events = 0;
			for (int o = 0; o < rows; o++) {
				unsigned fl = 0;

				a[o] = act_code(act_t, q->act, out[o], &fl);
				events += (fl & EG_FX_FLAG_OVERFLOW) != 0;
			}
			if (fault != NULL && fault->layer == j + 1)
				apply_fault(fault, &rng, act_t->w, a,
					    (size_t)rows);
			if (ovf != NULL)
				ovf[j + 1] += events;
			in = a;
		}
	}
	return EG_OK;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int eg_board_sim_run(eg_board_sim *b, const float *x, size_t n,
		     const volatile int *cancel, int64_t *codes,
		     double *values, uint64_t *overflows, eg_diag *d)
{
	int rc;

	if (b->hang) {
		/* A hung board: no result until someone gives up on it. */
		while (cancel == NULL || !*cancel)
			sleep_ms(5);
		return eg_diag_set(d, EG_ECANCELLED, "board: hung job "
				   "cancelled");
	}
	if (!b->loaded)
		return eg_diag_set(d, EG_ESTATE, "board: no network loaded");
	if (b->has_fault && b->fault.layer >= 2 * b->net.L - 1)
		return eg_diag_set(d, EG_ERANGE, "fault layer %d: the network "
				   "has layers 0..%d", b->fault.layer,
				   2 * b->net.L - 2);
	rc = datapath(&b->cfg, &b->net, b->has_fault ? &b->fault : NULL, x, n,
		      cancel, codes, overflows);
	if (rc == EG_ECANCELLED)
		return eg_diag_set(d, rc, "board: run cancelled");
	if (values != NULL)
		eg_fx_values(&b->cfg.types.act, codes,
			     eg_board_sim_outputs_len(b, n), values);
	return EG_OK;
}

int eg_board_sim_estimate(const eg_board_sim *b, eg_board_est *per_layer,
			  eg_board_est *total)
{
	const eg_board_config *c = &b->cfg;
	uint64_t P = (uint64_t)c->parallelism;

	memset(total, 0, sizeof(*total));
	if (!b->loaded)
		return EG_ESTATE;
	for (int j = 0; j < 2 * b->net.L - 1; j++) {
		uint64_t rows = (uint64_t)b->net.rows[j / 2];
		uint64_t cols = (uint64_t)b->net.cols[j / 2];
		eg_board_est e;

		uint64_t k = (uint64_t)b->net.block[j / 2];
		uint64_t nb = b->net.bq[j / 2] != NULL ? rows : 0;

		if (j % 2 == 0 && k > 1) {
			uint64_t p = (rows + k - 1) / k, q = (cols + k - 1) / k;
			uint64_t lg = 0;

			while (((uint64_t)1 << lg) < k)
				lg++;
			e.macs = 4 * p * q * (k / 2 + 1) + (p + q) * k * lg;
			e.cycles = (e.macs + P - 1) / P;
			e.accesses = p * q * (k + 2) + nb + cols + rows;
		} else if (j % 2 == 0) {
			e.macs = rows * cols;
			e.cycles = (e.macs + P - 1) / P;
			e.accesses = rows * cols + nb + cols + rows;
		} else {
			e.macs = 0;
			e.cycles = (rows + P - 1) / P;
			e.accesses = 2 * rows;
		}
		e.energy_nj = (c->pj_per_mac * (double)e.macs +
			       c->pj_per_access * (double)e.accesses) / 1000.0;
		if (per_layer != NULL)
			per_layer[j] = e;
		total->macs += e.macs;
		total->accesses += e.accesses;
		total->cycles += e.cycles;
		total->energy_nj += e.energy_nj;
	}
	return EG_OK;
}

/* The known-answer network: 4 -> 3 (relu) -> 2 with biases, values that
 * are not dyadic so every rounding mode leaves its mark, and small enough
 * for an ap_fixed<8, 4>. */
static const float kat_x[EG_BOARD_KAT_N * EG_BOARD_KAT_IN] = {
	0.75f, -1.3f, 2.2f, 0.1f,
	-0.4f, 1.05f, 0.3f, -2.6f};
static const float kat_w0[3 * 4] = {
	0.5f, -0.3f, 0.8f, 1.1f,
	-0.7f, 0.25f, 0.6f, -0.9f,
	1.3f, 0.45f, -0.2f, 0.35f};
static const float kat_b0[3] = {0.1f, -0.2f, 0.05f};
static const float kat_w1[2 * 3] = {
	0.9f, -1.2f, 0.4f,
	-0.6f, 0.7f, 1.5f};
static const float kat_b1[2] = {0.3f, -0.15f};

static void kat_layers(eg_qdense_layer layers[2])
{
	layers[0] = (eg_qdense_layer){3, 4, kat_w0, kat_b0};
	layers[1] = (eg_qdense_layer){2, 3, kat_w1, kat_b1};
}

void eg_board_kat_network(eg_qdense_layer layers[2], const float **x)
{
	kat_layers(layers);
	*x = kat_x;
}

int eg_board_kat_expected(const eg_qdense_types *types, int64_t *out,
			  eg_diag *d)
{
	eg_qdense_layer layers[2];
	/* weights and biases (12 + 3 + 6 + 2 words) and the inputs (8). */
	int64_t scratch[12 + 3 + 6 + 2 + EG_BOARD_KAT_N * EG_BOARD_KAT_IN];

	kat_layers(layers);
	return eg_qdense_forward(types, EG_ACT_RELU, layers, 2, kat_x,
				 EG_BOARD_KAT_N, scratch, sizeof(scratch), out,
				 NULL, d);
}

int eg_board_sim_health(eg_board_sim *b, const eg_qdense_types *declared,
			eg_diag *d)
{
	eg_qdense_layer layers[2];
	int64_t want[EG_BOARD_KAT_CODES], got[EG_BOARD_KAT_CODES];
	int64_t w0[12], b0[3], w1[6], b1[2], xrow[EG_BOARD_KAT_IN];
	const eg_qdense_types *ty = &b->cfg.types;
	const eg_board_fault *f = NULL;
	struct qnet q;
	int rc;

	if (b->hang)
		return eg_diag_set(d, EG_ETIMEOUT, "board health: the board "
				   "does not answer (hung)");
	rc = eg_board_kat_expected(declared != NULL ? declared : ty, want, d);
	if (rc != EG_OK)
		return eg_diag_prefix(d, rc, "board health: design model");
	kat_layers(layers);
	memset(&q, 0, sizeof(q));
	q.L = 2;
	q.act = EG_ACT_RELU;
	q.rows[0] = 3, q.cols[0] = 4, q.rows[1] = 2, q.cols[1] = 3;
	eg_fx_quantize_f32(&ty->weight, kat_w0, 12, w0, NULL);
	eg_fx_quantize_f32(&ty->bias, kat_b0, 3, b0, NULL);
	eg_fx_quantize_f32(&ty->weight, kat_w1, 6, w1, NULL);
	eg_fx_quantize_f32(&ty->bias, kat_b1, 2, b1, NULL);
	q.wq[0] = w0, q.bq[0] = b0, q.wq[1] = w1, q.bq[1] = b1;
	q.xrow = xrow;
	qnet_prefix(&q);
	if (b->has_fault && b->fault.layer < 3)
		f = &b->fault;
	datapath(&b->cfg, &q, f, kat_x, EG_BOARD_KAT_N, NULL, got, NULL);
	for (int k = 0; k < EG_BOARD_KAT_CODES; k++) {
		if (got[k] != want[k]) {
			int j = 0;

			while (j < 2 && (size_t)k >= EG_BOARD_KAT_N * q.pre[j + 1])
				j++;
			return eg_diag_set(d, EG_ECORRUPT,
					   "board health: known-answer code %d "
					   "(layer %d) is %lld, expected %lld",
					   k, j, (long long)got[k],
					   (long long)want[k]);
		}
	}
	return EG_OK;
}
