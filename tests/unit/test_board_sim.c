/*
 * test_board_sim.c - the simulated board (kernels/board_sim.h): bit-exact
 * agreement with the design model, the known-answer health check, fault
 * injection, the cost model and the hang switch.
 *
 * The known answers for the default types were computed outside expgrid,
 * with Python's exact rationals (every float32 constant converted exactly,
 * floor for TRN, floor(v + 1/2) for RND, wrap by a remainder), so the
 * table checks the design model and the board against an independent
 * derivation, not against themselves.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/board_sim.h"
#include "kernels/circulant.h"
#include "kernels/qdense.h"
#include "kernels/rng.h"
#include "kernels/similarity.h"
#include "tests/harness.h"

/* ap_fixed<16,6,TRN,WRAP> with a <32,16> accumulator (the hls defaults),
 * and ap_fixed<8,4,RND,WRAP> with the same accumulator. */
static const int64_t kat_16_6_trn[EG_BOARD_KAT_CODES] = {
	2799, 182, 35, -3110, 2932, -992, 2799, 182,
	35, 0, 2932, 0, 2619, -1656, -3212, 1896};
static const int64_t kat_8_4_rnd[EG_BOARD_KAT_CODES] = {
	45, 4, 2, -49, 45, -16, 45, 4, 2, 0, 45, 0, 40, -24, -48, 29};

static void types(eg_qdense_types *t, int w, int i, const char *round,
		  const char *ovf)
{
	EG_CHECK_OK(eg_qdense_types_hls(w, i, round, ovf, 32, 16, t, NULL));
}

static eg_board_sim *board_with(const eg_qdense_types *t, int parallelism)
{
	eg_board_config c;
	eg_board_sim *b = NULL;

	c.types = *t;
	eg_board_config_default(&c);
	c.parallelism = parallelism;
	EG_CHECK_OK(eg_board_sim_create(&c, &b, NULL));
	return b;
}

/* A random dense stack dims[0] -> ... -> dims[L], He-scaled, with biases. */
struct stack {
	int L;
	float *w[4], *b[4];
	eg_qdense_layer layers[4];
};

static void stack_make(struct stack *s, int L, const int *dims, double scale,
		       uint64_t seed)
{
	eg_rng rng;

	eg_rng_seed(&rng, seed);
	s->L = L;
	for (int l = 0; l < L; l++) {
		int r = dims[l + 1], c = dims[l];

		s->w[l] = malloc(sizeof(float) * (size_t)(r * c));
		s->b[l] = malloc(sizeof(float) * (size_t)r);
		EG_CHECK(s->w[l] != NULL && s->b[l] != NULL);
		for (int k = 0; k < r * c; k++)
			s->w[l][k] = (float)(scale * sqrt(2.0 / c) *
					     eg_rng_normal(&rng));
		for (int k = 0; k < r; k++)
			s->b[l][k] = (float)(0.1 * eg_rng_normal(&rng));
		s->layers[l] = (eg_qdense_layer){r, c, s->w[l], s->b[l]};
	}
}

static void stack_free(struct stack *s)
{
	for (int l = 0; l < s->L; l++) {
		free(s->w[l]);
		free(s->b[l]);
	}
}

static float *inputs(size_t n, int dim, uint64_t seed)
{
	float *x = malloc(sizeof(float) * n * (size_t)dim);
	eg_rng rng;

	EG_CHECK(x != NULL);
	eg_rng_seed(&rng, seed);
	for (size_t k = 0; k < n * (size_t)dim; k++)
		x[k] = (float)eg_rng_normal(&rng);
	return x;
}

/* Design codes of a stack (caller frees). */
static int64_t *design(const eg_qdense_types *t, eg_act act,
		       const struct stack *s, const float *x, size_t n)
{
	size_t len = eg_qdense_outputs_len(s->layers, s->L, n);
	size_t ss = eg_qdense_scratch_size(s->layers, s->L, n);
	int64_t *codes = malloc(len * sizeof(int64_t));
	void *scratch = malloc(ss);

	EG_CHECK(codes != NULL && scratch != NULL);
	EG_CHECK_OK(eg_qdense_forward(t, act, s->layers, s->L, x, n, scratch,
				      ss, codes, NULL, NULL));
	free(scratch);
	return codes;
}

EG_TEST(matches_design_bit_exact)
{
	static const struct {
		int w, i;
		const char *round, *ovf;
		eg_act act;
	} cases[] = {
		{16, 6, "trn", "wrap", EG_ACT_RELU},
		{8, 3, "rnd", "sat", EG_ACT_RELU},
		{12, 4, "rnd_conv", "sat_sym", EG_ACT_TANH},
		{10, 3, "trn_zero", "wrap", EG_ACT_SIN},
		{14, 5, "rnd_inf", "sat", EG_ACT_SIGMOID},
		{6, 2, "trn", "wrap", EG_ACT_LINEAR},
	};
	static const int dims[4] = {20, 16, 12, 5};
	const size_t n = 24;
	float *x = inputs(n, dims[0], 7);

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		eg_qdense_types t;
		struct stack s;
		eg_board_sim *b;
		int64_t *want, *got;
		double *vals;
		size_t len;

		types(&t, cases[c].w, cases[c].i, cases[c].round, cases[c].ovf);
		stack_make(&s, 3, dims, 1.5, 100 + c);
		want = design(&t, cases[c].act, &s, x, n);
		b = board_with(&t, 16);
		EG_CHECK_OK(eg_board_sim_load(b, cases[c].act, s.layers, 3, NULL, NULL));
		EG_CHECK_INT(eg_board_sim_output_count(b), 5);
		len = eg_board_sim_outputs_len(b, n);
		EG_CHECK_INT(len, eg_qdense_outputs_len(s.layers, 3, n));
		got = malloc(len * sizeof(int64_t));
		vals = malloc(len * sizeof(double));
		EG_CHECK(got != NULL && vals != NULL);
		EG_CHECK_OK(eg_board_sim_run(b, x, n, NULL, got, vals, NULL,
					     NULL));
		for (size_t k = 0; k < len; k++) {
			EG_CHECK_MSG(got[k] == want[k],
				     "case %zu element %zu: board %lld design %lld",
				     c, k, (long long)got[k], (long long)want[k]);
			EG_CHECK(vals[k] == eg_fx_value(&t.act, got[k]));
		}
		for (int j = 0; j < 5; j++) {
			size_t l1, l2;
			size_t o1 = eg_board_sim_output_offset(b, n, j, &l1);
			size_t o2 = eg_qdense_output_offset(s.layers, 3, n, j, &l2);

			EG_CHECK_INT(o1, o2);
			EG_CHECK_INT(l1, l2);
		}
		free(got);
		free(vals);
		free(want);
		eg_board_sim_free(b);
		stack_free(&s);
	}
	free(x);
}

EG_TEST(known_answer_table)
{
	int64_t got[EG_BOARD_KAT_CODES];
	eg_qdense_types t;
	eg_board_sim *b;

	types(&t, 16, 6, "trn", "wrap");
	EG_CHECK_OK(eg_board_kat_expected(&t, got, NULL));
	for (int k = 0; k < EG_BOARD_KAT_CODES; k++)
		EG_CHECK_INT(got[k], kat_16_6_trn[k]);
	b = board_with(&t, 64);
	/* Health needs no loaded network and leaves one alone. */
	EG_CHECK_OK(eg_board_sim_health(b, &t, NULL));
	EG_CHECK_OK(eg_board_sim_health(b, NULL, NULL));
	eg_board_sim_free(b);

	types(&t, 8, 4, "rnd", "wrap");
	EG_CHECK_OK(eg_board_kat_expected(&t, got, NULL));
	for (int k = 0; k < EG_BOARD_KAT_CODES; k++)
		EG_CHECK_INT(got[k], kat_8_4_rnd[k]);
	b = board_with(&t, 64);
	EG_CHECK_OK(eg_board_sim_health(b, &t, NULL));
	eg_board_sim_free(b);
}

EG_TEST(health_detects_corrupt_config_and_faults)
{
	eg_qdense_types declared, corrupt;
	eg_board_fault f = {2, EG_BOARD_FAULT_STUCK1, 3, 1.0, 1};
	eg_board_sim *b;
	eg_diag d = {{0}};

	types(&declared, 16, 6, "trn", "wrap");
	/* One field off at a time: rounding, integer bits, accumulator. */
	types(&corrupt, 16, 6, "rnd", "wrap");
	b = board_with(&corrupt, 64);
	EG_CHECK_INT(eg_board_sim_health(b, &declared, &d), EG_ECORRUPT);
	EG_CHECK(strstr(d.msg, "known-answer") != NULL);
	/* Against its own (wrong) types the datapath itself is fine. */
	EG_CHECK_OK(eg_board_sim_health(b, NULL, NULL));
	eg_board_sim_free(b);

	types(&corrupt, 16, 7, "trn", "wrap");
	b = board_with(&corrupt, 64);
	EG_CHECK_INT(eg_board_sim_health(b, &declared, NULL), EG_ECORRUPT);
	eg_board_sim_free(b);

	corrupt = declared;
	corrupt.accum.w = 12;
	corrupt.accum.i = 4;
	b = board_with(&corrupt, 64);
	EG_CHECK_INT(eg_board_sim_health(b, &declared, NULL), EG_ECORRUPT);
	eg_board_sim_free(b);

	/* A stuck bit on the output layer of the known-answer net. */
	b = board_with(&declared, 64);
	EG_CHECK_OK(eg_board_sim_set_fault(b, &f, NULL));
	EG_CHECK_INT(eg_board_sim_health(b, &declared, &d), EG_ECORRUPT);
	EG_CHECK(strstr(d.msg, "layer 2") != NULL);
	EG_CHECK_OK(eg_board_sim_set_fault(b, NULL, NULL));
	EG_CHECK_OK(eg_board_sim_health(b, &declared, NULL));
	eg_board_sim_free(b);
}

/* Runs a 3-layer relu stack on a board with fault f; returns codes. */
static int64_t *run_fault(const eg_qdense_types *t, const struct stack *s,
			  const float *x, size_t n, const eg_board_fault *f)
{
	eg_board_sim *b = board_with(t, 16);
	size_t len;
	int64_t *codes;

	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s->layers, s->L, NULL, NULL));
	EG_CHECK_OK(eg_board_sim_set_fault(b, f, NULL));
	len = eg_board_sim_outputs_len(b, n);
	codes = malloc(len * sizeof(int64_t));
	EG_CHECK(codes != NULL);
	EG_CHECK_OK(eg_board_sim_run(b, x, n, NULL, codes, NULL, NULL, NULL));
	eg_board_sim_free(b);
	return codes;
}

EG_TEST(planted_fault_is_first_divergent_layer)
{
	static const int dims[4] = {16, 24, 24, 6};
	const size_t n = 16;
	eg_qdense_types t;
	struct stack s;
	float *x = inputs(n, dims[0], 3);

	types(&t, 16, 6, "trn", "wrap");
	stack_make(&s, 3, dims, 1.0, 11);
	int64_t *want = design(&t, EG_ACT_RELU, &s, x, n);
	for (int layer = 0; layer < 5; layer++) {
		eg_board_fault f = {layer, EG_BOARD_FAULT_BITFLIP, 9, 1.0, 5};
		int64_t *got = run_fault(&t, &s, x, n, &f);
		int first = -1;

		for (int j = 0; j < 5; j++) {
			size_t len, off = eg_qdense_output_offset(s.layers, 3,
								  n, j, &len);
			double sb = eg_sim_s_bit(want + off, got + off, len);

			if (j < layer)
				EG_CHECK_NEAR(sb, 100.0, 0);
			if (j == layer)
				EG_CHECK_NEAR(sb, 0.0, 0); /* rate 1 flips all */
			if (sb < 100 && first < 0)
				first = j;
		}
		EG_CHECK_INT(first, layer);
		free(got);
	}
	free(want);
	stack_free(&s);
	free(x);
}

EG_TEST(stuck_bits_semantics)
{
	static const int dims[3] = {10, 40, 8};
	const size_t n = 20;
	eg_qdense_types t;
	struct stack s;
	float *x = inputs(n, dims[0], 4);
	size_t len, off;

	types(&t, 12, 5, "trn", "wrap");
	stack_make(&s, 2, dims, 1.0, 12);
	int64_t *want = design(&t, EG_ACT_RELU, &s, x, n);
	off = eg_qdense_output_offset(s.layers, 2, n, 0, &len);

	eg_board_fault f0 = {0, EG_BOARD_FAULT_STUCK0, 4, 1.0, 0};
	int64_t *g0 = run_fault(&t, &s, x, n, &f0);
	eg_board_fault f1 = {0, EG_BOARD_FAULT_STUCK1, 4, 1.0, 0};
	int64_t *g1 = run_fault(&t, &s, x, n, &f1);
	eg_board_fault fs = {0, EG_BOARD_FAULT_STUCK1, 11, 1.0, 0};
	int64_t *gs = run_fault(&t, &s, x, n, &fs);
	size_t had = 0;

	for (size_t k = off; k < off + len; k++) {
		bool set = (want[k] >> 4) & 1;

		had += set;
		EG_CHECK(((g0[k] >> 4) & 1) == 0);
		EG_CHECK(((g1[k] >> 4) & 1) == 1);
		/* Only bit 4 changes, and only when it was not already so. */
		EG_CHECK_INT(g0[k], set ? want[k] - 16 : want[k]);
		EG_CHECK_INT(g1[k], set ? want[k] : want[k] + 16);
		/* The sign bit stuck at 1: every code is negative, and the
		 * low 11 bits are kept (two's complement in 12 bits). */
		EG_CHECK(gs[k] < 0);
		EG_CHECK_INT(gs[k], want[k] < 0 ? want[k] : want[k] - 2048);
	}
	/* Both cases occurred, so the checks above meant something. */
	EG_CHECK(had > 0 && had < len);
	free(g0);
	free(g1);
	free(gs);
	free(want);
	stack_free(&s);
	free(x);
}

EG_TEST(fault_rate_half_is_deterministic)
{
	static const int dims[3] = {16, 200, 4};
	const size_t n = 40;
	eg_qdense_types t;
	struct stack s;
	float *x = inputs(n, dims[0], 5);
	eg_board_fault f = {1, EG_BOARD_FAULT_BITFLIP, 2, 0.5, 42};
	size_t len, off, changed = 0, differ = 0;

	types(&t, 16, 6, "trn", "wrap");
	stack_make(&s, 2, dims, 1.0, 13);
	int64_t *want = design(&t, EG_ACT_RELU, &s, x, n);
	int64_t *a = run_fault(&t, &s, x, n, &f);
	int64_t *b = run_fault(&t, &s, x, n, &f);
	f.seed = 43;
	int64_t *c = run_fault(&t, &s, x, n, &f);

	off = eg_qdense_output_offset(s.layers, 2, n, 1, &len);
	for (size_t k = off; k < off + len; k++) {
		changed += a[k] != want[k];
		differ += a[k] != c[k];
	}
	/* 8000 elements: half +- 5 % is over 8 standard deviations. */
	EG_CHECK_MSG(changed > len * 45 / 100 && changed < len * 55 / 100,
		     "%zu of %zu changed", changed, len);
	EG_CHECK(memcmp(a, b, eg_qdense_outputs_len(s.layers, 2, n) *
				      sizeof(int64_t)) == 0);
	EG_CHECK(differ > len / 4); /* another seed, other elements */
	free(a);
	free(b);
	free(c);
	free(want);
	stack_free(&s);
	free(x);
}

EG_TEST(cost_model_scales)
{
	static const int d1[2] = {32, 10}, d2[2] = {64, 10};
	static const int d3[3] = {64, 16, 10};
	eg_qdense_types t;
	struct stack s1, s2, s3;
	eg_board_est e1, e2, per[3], e3;
	eg_board_sim *b;

	types(&t, 16, 6, "trn", "wrap");
	stack_make(&s1, 1, d1, 1.0, 1);
	stack_make(&s2, 1, d2, 1.0, 2);
	stack_make(&s3, 2, d3, 1.0, 3);
	b = board_with(&t, 8);
	EG_CHECK_INT(eg_board_sim_estimate(b, NULL, &e1), EG_ESTATE);
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s1.layers, 1, NULL, NULL));
	EG_CHECK_OK(eg_board_sim_estimate(b, NULL, &e1));
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s2.layers, 1, NULL, NULL));
	EG_CHECK_OK(eg_board_sim_estimate(b, NULL, &e2));
	EG_CHECK_INT(e1.macs, 320);
	EG_CHECK_INT(e1.cycles, 40);
	EG_CHECK_INT(e2.macs, 640);
	EG_CHECK_INT(e2.cycles, 2 * e1.cycles);
	/* accesses: weights + biases + inputs + outputs */
	EG_CHECK_INT(e1.accesses, 320 + 10 + 32 + 10);
	EG_CHECK_NEAR(e1.energy_nj, (1.0 * 320 + 5.0 * 372) / 1000, 1e-12);
	eg_board_sim_free(b);

	/* Twice the parallelism halves the cycles; energy is unchanged. */
	b = board_with(&t, 16);
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s1.layers, 1, NULL, NULL));
	EG_CHECK_OK(eg_board_sim_estimate(b, NULL, &e2));
	EG_CHECK_INT(e2.cycles, e1.cycles / 2);
	EG_CHECK_NEAR(e2.energy_nj, e1.energy_nj, 1e-12);

	/* Per layer, activation layers included, and the total their sum. */
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s3.layers, 2, NULL, NULL));
	EG_CHECK_OK(eg_board_sim_estimate(b, per, &e3));
	EG_CHECK_INT(per[0].cycles, 64);           /* 1024 / 16 */
	EG_CHECK_INT(per[1].cycles, 1);            /* 16 / 16 */
	EG_CHECK_INT(per[1].macs, 0);
	EG_CHECK_INT(per[2].cycles, 10);           /* 160 / 16 */
	EG_CHECK_INT(e3.cycles, 75);
	EG_CHECK_NEAR(e3.energy_nj, per[0].energy_nj + per[1].energy_nj +
			      per[2].energy_nj, 1e-12);
	eg_board_sim_free(b);
	stack_free(&s1);
	stack_free(&s2);
	stack_free(&s3);
}

EG_TEST(circulant_layers_cost_their_fft_datapath)
{
	/* 40 x 24 in 8 x 8 blocks: p = 5, q = 3, 15 defining vectors. */
	const int m = 40, n = 24, k = 8, p = 5, q = 3;
	float *v = malloc(sizeof(float) * (size_t)(p * q * k));
	float *w = malloc(sizeof(float) * (size_t)(m * n));
	float bias[40] = {0};
	int blocks[1] = {k}, dense_blk[1] = {0};
	eg_qdense_types t;
	eg_qdense_layer layer = {m, n, w, bias};
	eg_board_est e, dense;
	eg_board_sim *b;
	eg_rng rng;
	eg_diag d = {{0}};
	float *x = inputs(4, n, 3);
	int64_t got[4 * 40];

	EG_CHECK(v != NULL && w != NULL);
	eg_rng_seed(&rng, 8);
	for (int i = 0; i < p * q * k; i++)
		v[i] = (float)(0.3 * eg_rng_normal(&rng));
	eg_circ_expand((size_t)m, (size_t)n, (size_t)k, v, w);
	types(&t, 16, 6, "rnd", "sat");
	b = board_with(&t, 16);
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, &layer, 1, dense_blk, NULL));
	EG_CHECK_OK(eg_board_sim_estimate(b, NULL, &dense));
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, &layer, 1, blocks, NULL));
	EG_CHECK_OK(eg_board_sim_estimate(b, NULL, &e));
	/* 4 p q (k/2 + 1) + (p + q) k log2 k = 300 + 192 */
	EG_CHECK_INT(e.macs, 4 * 5 * 3 * 5 + (5 + 3) * 8 * 3);
	EG_CHECK_INT(e.cycles, (492 + 15) / 16);
	EG_CHECK_INT(e.accesses, 5 * 3 * 10 + 40 + 24 + 40);
	EG_CHECK_INT(dense.macs, 960);
	EG_CHECK(e.energy_nj < dense.energy_nj);
	/* The datapath multiplies by the expansion: same codes as the
	 * design model of that dense matrix. */
	{
		struct stack s = {1, {NULL}, {NULL}, {layer}};
		int64_t *want = design(&t, EG_ACT_RELU, &s, x, 4);

		EG_CHECK_OK(eg_board_sim_run(b, x, 4, NULL, got, NULL, NULL, NULL));
		for (int i = 0; i < 4 * 40; i++)
			EG_CHECK_INT(got[i], want[i]);
		free(want);
	}
	/* One element off the circulant structure is refused. */
	w[5 * n + 17] += 1.0f;
	EG_CHECK_INT(eg_board_sim_load(b, EG_ACT_RELU, &layer, 1, blocks, &d),
		     EG_EINVAL);
	EG_CHECK(strstr(d.msg, "block-circulant") != NULL);
	blocks[0] = 6;
	EG_CHECK_INT(eg_board_sim_load(b, EG_ACT_RELU, &layer, 1, blocks, NULL),
		     EG_EINVAL);
	eg_board_sim_free(b);
	free(v);
	free(w);
	free(x);
}

struct canceller {
	volatile int *flag;
	long ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	struct timespec ts = {0, c->ms * 1000000L};

	nanosleep(&ts, NULL);
	*c->flag = 1;
	return NULL;
}

EG_TEST(hang_until_cancelled)
{
	static const int dims[2] = {4, 2};
	volatile int flag = 0;
	struct canceller c = {&flag, 150};
	eg_qdense_types t;
	struct stack s;
	eg_board_sim *b;
	int64_t codes[8];
	float x[4] = {1, 2, 3, 4};
	pthread_t th;
	double t0;

	types(&t, 16, 6, "trn", "wrap");
	stack_make(&s, 1, dims, 1.0, 1);
	b = board_with(&t, 4);
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s.layers, 1, NULL, NULL));
	eg_board_sim_set_hang(b, true);
	EG_CHECK_INT(eg_board_sim_health(b, &t, NULL), EG_ETIMEOUT);
	t0 = eg_test_now();
	EG_CHECK(pthread_create(&th, NULL, cancel_later, &c) == 0);
	EG_CHECK_INT(eg_board_sim_run(b, x, 1, &flag, codes, NULL, NULL, NULL),
		     EG_ECANCELLED);
	EG_CHECK(eg_test_now() - t0 >= 0.14);
	pthread_join(th, NULL);
	/* Unhung, it answers again (and a raised flag still cancels). */
	eg_board_sim_set_hang(b, false);
	flag = 0;
	EG_CHECK_OK(eg_board_sim_run(b, x, 1, &flag, codes, NULL, NULL, NULL));
	flag = 1;
	EG_CHECK_INT(eg_board_sim_run(b, x, 1, &flag, codes, NULL, NULL, NULL),
		     EG_ECANCELLED);
	eg_board_sim_free(b);
	stack_free(&s);
}

EG_TEST(rejects_bad_configs)
{
	static const int dims[3] = {4, 3, 2};
	eg_board_config c;
	eg_board_sim *b = NULL;
	eg_qdense_types t;
	struct stack s;
	int64_t codes[16];
	float x[4] = {1, 2, 3, 4};
	eg_board_fault f = {0, EG_BOARD_FAULT_BITFLIP, 16, 1.0, 0};
	eg_board_fault_kind kind;
	eg_diag d = {{0}};

	types(&t, 16, 6, "trn", "wrap");
	c.types = t;
	eg_board_config_default(&c);
	c.parallelism = 0;
	EG_CHECK_INT(eg_board_sim_create(&c, &b, &d), EG_ERANGE);
	EG_CHECK(b == NULL && strstr(d.msg, "parallelism") != NULL);
	eg_board_config_default(&c);
	c.clock_mhz = 0;
	EG_CHECK_INT(eg_board_sim_create(&c, &b, NULL), EG_ERANGE);
	eg_board_config_default(&c);
	c.types.act.w = 0;
	EG_CHECK(eg_board_sim_create(&c, &b, NULL) != EG_OK);

	b = board_with(&t, 4);
	EG_CHECK_INT(eg_board_sim_run(b, x, 1, NULL, codes, NULL, NULL, NULL),
		     EG_ESTATE);
	EG_CHECK_INT(eg_board_sim_set_fault(b, &f, NULL), EG_ERANGE); /* bit 16 */
	f.bit = 15;
	f.rate = 0;
	EG_CHECK_INT(eg_board_sim_set_fault(b, &f, NULL), EG_ERANGE);
	f.rate = 0.5;
	f.layer = 3; /* the network has layers 0..2 */
	EG_CHECK_OK(eg_board_sim_set_fault(b, &f, NULL));
	stack_make(&s, 2, dims, 1.0, 1);
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s.layers, 2, NULL, NULL));
	EG_CHECK_INT(eg_board_sim_run(b, x, 1, NULL, codes, NULL, NULL, &d),
		     EG_ERANGE);
	EG_CHECK(strstr(d.msg, "0..2") != NULL);
	EG_CHECK_OK(eg_board_fault_kind_parse("stuck0", &kind, NULL));
	EG_CHECK_INT(kind, EG_BOARD_FAULT_STUCK0);
	EG_CHECK_INT(eg_board_fault_kind_parse("flip", &kind, NULL), EG_EINVAL);
	eg_board_sim_free(b);
	stack_free(&s);
	eg_board_sim_free(NULL);
}

EG_TEST(overflow_counters)
{
	static const int dims[3] = {16, 12, 4};
	const size_t n = 8;
	eg_qdense_types small, wide;
	struct stack s;
	float *x = inputs(n, dims[0], 9);
	uint64_t ovf[3];
	int64_t *codes = malloc(sizeof(int64_t) * n * 28);
	eg_board_sim *b;

	EG_CHECK(codes != NULL);
	/* Weights ~ 4 sqrt(2/16) and inputs ~ N(0,1): sums of several
	 * units cannot fit in ap_fixed<8,2> (range [-2, 2)). */
	stack_make(&s, 2, dims, 4.0, 21);
	types(&small, 8, 2, "trn", "wrap");
	types(&wide, 24, 12, "trn", "wrap");
	b = board_with(&small, 4);
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s.layers, 2, NULL, NULL));
	EG_CHECK_OK(eg_board_sim_run(b, x, n, NULL, codes, NULL, ovf, NULL));
	EG_CHECK(ovf[0] > 0);
	EG_CHECK_INT(ovf[1], 0); /* relu never overflows */
	eg_board_sim_free(b);
	b = board_with(&wide, 4);
	EG_CHECK_OK(eg_board_sim_load(b, EG_ACT_RELU, s.layers, 2, NULL, NULL));
	EG_CHECK_OK(eg_board_sim_run(b, x, n, NULL, codes, NULL, ovf, NULL));
	EG_CHECK_INT(ovf[0] + ovf[1] + ovf[2], 0);
	eg_board_sim_free(b);
	stack_free(&s);
	free(codes);
	free(x);
}

EG_TEST(layer_names)
{
	char buf[32];

	eg_board_layer_name(EG_ACT_RELU, 0, buf, sizeof(buf));
	EG_CHECK_STR(buf, "dense0");
	eg_board_layer_name(EG_ACT_TANH, 3, buf, sizeof(buf));
	EG_CHECK_STR(buf, "tanh1");
	eg_board_layer_name(EG_ACT_SIN, 4, buf, sizeof(buf));
	EG_CHECK_STR(buf, "dense2");
}

EG_TEST_MAIN({"matches_design_bit_exact", matches_design_bit_exact, 20},
	     {"known_answer_table", known_answer_table, 10},
	     {"health_detects_corrupt_config_and_faults",
	      health_detects_corrupt_config_and_faults, 10},
	     {"planted_fault_is_first_divergent_layer",
	      planted_fault_is_first_divergent_layer, 10},
	     {"stuck_bits_semantics", stuck_bits_semantics, 10},
	     {"fault_rate_half_is_deterministic",
	      fault_rate_half_is_deterministic, 10},
	     {"cost_model_scales", cost_model_scales, 10},
	     {"circulant_layers_cost_their_fft_datapath",
	      circulant_layers_cost_their_fft_datapath, 10},
	     {"hang_until_cancelled", hang_until_cancelled, 10},
	     {"rejects_bad_configs", rejects_bad_configs, 10},
	     {"overflow_counters", overflow_counters, 10},
	     {"layer_names", layer_names, 5})
