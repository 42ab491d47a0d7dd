/*
 * bench_dense.c - dense training throughput of kernels/net against the
 * OpenBLAS sgemm rate on the same shapes (DESIGN.md "Targets to beat": MLP
 * 784-1024-1024-10, batch 128, fp32, 2 threads; at least 60 % of the sgemm
 * rate, at least 1.5x PyTorch, which bench/torch_dense.py measures).
 *
 * What is timed, each for about --seconds (default 3) after a warm-up, in
 * turns of 60 ms, step by step, the median step counting (measure_all()):
 *
 *   bp, fa, dfa, bdfa  eg_net_train_batch on random data (fixed seed, a pool
 *                      of POOL batches cycled through), relu, bias, SGD
 *                      momentum 0.9, the same network and seed for each;
 *   sgemm              exactly the cblas_sgemm calls a BP step makes (same
 *                      shapes, transposes, leading dimensions and order as
 *                      kernels/net.c), on preallocated buffers, nothing else.
 *
 * GFLOP/s counts the useful flops of a BP step: forward 2 B sum n_in n_out,
 * weight gradients the same again, input gradients of every layer but the
 * first.  The same count divided by the sgemm sequence's time is the sgemm
 * rate, and the ratio of the two rates is "% of sgemm": what the step loses
 * to everything that is not sgemm (epilogues, loss, bias sums, the
 * optimizer's passes over 1.9 M parameters, memory traffic between them).
 *
 * Threads: openblas_set_num_threads(T), T = --threads or $EG_BENCH_THREADS
 * or 2, and the count OpenBLAS then reports is checked; an
 * OPENBLAS_NUM_THREADS that disagrees is overridden (and said so) rather
 * than obeyed, so the number printed is always the number used.
 *
 * Output: human-readable lines, then one `RESULT dense_<measure> k=v ...`
 * line per measure for bench/run.sh.  Exit 0 on success, 1 if a step
 * fails or sgemm miscomputes (checked against double sums), 2 on bad usage.
 */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "kernels/net.h"
#include "kernels/rng.h"

enum { N_IN = 784, HIDDEN = 1024, N_OUT = 10, BATCH = 128, POOL = 8 };
enum { NL = 3 };                 /* layers: two hidden and the output */
enum { NGEMM = 3 * NL - 1 };     /* forward, weight grad, input grad but l=0 */

static const int dims[NL + 1] = {N_IN, HIDDEN, HIDDEN, N_OUT};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Useful flops of one BP step (see the top of the file). */
static double bp_flops(void)
{
	double fwd = 0.0, dgrad = 0.0;

	for (int l = 0; l < NL; l++) {
		double mn = (double)dims[l] * dims[l + 1];
		fwd += 2.0 * BATCH * mn;
		if (l > 0)
			dgrad += 2.0 * BATCH * mn;
	}
	return 2.0 * fwd + dgrad;
}

/* ---- timing ---------------------------------------------------------- */

typedef int (*step_fn)(void *ctx, long i);

typedef struct timing {
	double median_ms; /* the reported step time */
	double min_ms;    /* the fastest step: the cost with no neighbour */
	double mean_ms;
	long steps;
} timing;

/* One thing to time: a step function, its context, its step times. */
typedef struct measure {
	step_fn fn;
	void *ctx;
	long i;           /* steps taken, warm-up included */
	long n;           /* timed steps in s[] */
	double *s;        /* MAX_STEPS entries */
	timing t;
} measure;

enum { NMEASURE = 5, MAX_STEPS = 1 << 14 };
enum { SLICE_MS = 60 }; /* each measure's turn in a round */
static double step_s[NMEASURE][MAX_STEPS];

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Times every measure for about `seconds` each, in rounds: each takes a
 * turn of SLICE_MS (at least one step), every step timed on its own.  Six
 * engineers share this machine's two cores, and a neighbour that takes a
 * core for a moment stalls every OpenBLAS barrier in the steps it
 * overlaps; taking turns gives every measure the same share of the
 * disturbance, so their ratios (BP against sgemm, DFA against BP) stay
 * meaningful, and the median step ignores the disturbed ones.
 * clock_gettime costs tens of nanoseconds against steps of milliseconds.
 * Warm-up first: 10 steps and 0.3 s each.
 */
static int measure_all(measure *m, int nm, double seconds)
{
	double t0, start, end;
	int rc;

	for (int k = 0; k < nm; k++) {
		m[k].i = m[k].n = 0;
		t0 = now_s();
		while (m[k].i < 10 || now_s() - t0 < 0.3)
			if ((rc = m[k].fn(m[k].ctx, m[k].i++)) != EG_OK)
				return rc;
	}
	start = now_s();
	end = start + seconds * nm;
	for (bool full = false; now_s() < end && !full;) {
		for (int k = 0; k < nm; k++) {
			measure *q = &m[k];
			double turn = now_s() + SLICE_MS * 1e-3;
			t0 = now_s();
			do {
				if ((rc = q->fn(q->ctx, q->i++)) != EG_OK)
					return rc;
				double t1 = now_s();
				q->s[q->n++] = t1 - t0;
				t0 = t1;
			} while (t0 < turn && q->n < MAX_STEPS);
			full = full || q->n == MAX_STEPS;
		}
	}
	for (int k = 0; k < nm; k++) {
		measure *q = &m[k];
		long n = q->n;
		double sum = 0.0;
		for (long j = 0; j < n; j++)
			sum += q->s[j];
		qsort(q->s, (size_t)n, sizeof q->s[0], cmp_double);
		q->t.median_ms = 1e3 * (n % 2 ? q->s[n / 2]
				  : 0.5 * (q->s[n / 2 - 1] + q->s[n / 2]));
		q->t.min_ms = 1e3 * q->s[0];
		q->t.mean_ms = 1e3 * sum / (double)n;
		q->t.steps = n;
	}
	return EG_OK;
}

/* ---- the network steps ------------------------------------------------ */

typedef struct train_ctx {
	eg_net *net;
	const float *x;     /* POOL x BATCH x N_IN */
	const int32_t *y;   /* POOL x BATCH */
} train_ctx;

static int train_step(void *ctx, long i)
{
	train_ctx *c = ctx;
	size_t k = (size_t)(i % POOL);

	return eg_net_train_batch(c->net, c->x + k * BATCH * N_IN,
				  c->y + k * BATCH, BATCH, NULL);
}

/* ---- the reference sgemm sequence ------------------------------------ */

typedef struct gemm_call {
	char what[16];
	CBLAS_TRANSPOSE ta, tb;
	int m, n, k, lda, ldb, ldc;
	const float *a, *b;
	float *c;
	double min_s;       /* fastest single call of the breakdown run */
} gemm_call;

typedef struct gemm_ctx {
	gemm_call call[NGEMM];
	int ncall;
	int timed;          /* accumulate per-call seconds */
	float *mem;
} gemm_ctx;

static void add_call(gemm_ctx *g, const char *what, int l,
		     CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n,
		     int k, const float *a, int lda, const float *b, int ldb,
		     float *c, int ldc)
{
	gemm_call *q = &g->call[g->ncall++];

	snprintf(q->what, sizeof q->what, "%s%d", what, l);
	q->ta = ta;
	q->tb = tb;
	q->m = m;
	q->n = n;
	q->k = k;
	q->a = a;
	q->lda = lda;
	q->b = b;
	q->ldb = ldb;
	q->c = c;
	q->ldc = ldc;
	q->min_s = INFINITY;
}

/*
 * Buffers shaped like the net's (x, h[l], W_l, dW_l, delta_l, g), filled
 * with random values; the calls in the order kernels/net.c makes them:
 * forward l = 0..2 (H W^T), then for l = 2..0 the weight gradient
 * delta_l^T h_{l-1} and (l >= 1) the error layer l - 1 needs, delta_l W_l.
 * Deltas are fixed random inputs here (their values do not change the
 * cost), so no call writes what a later call reads; the two input-gradient
 * calls share the output g, as in net.c.
 */
static int gemm_setup(gemm_ctx *g, eg_rng *r)
{
	size_t off[5 * NL + 1], total = 0, k = 0;
	float *x, *h[NL], *w[NL], *dw[NL], *dl[NL], *gin;

	/* x, h[0..2], w, dw, delta per layer, g: sizes first. */
	size_t sz[5 * NL + 1];
	sz[k++] = (size_t)BATCH * N_IN;
	for (int l = 0; l < NL; l++) {
		sz[k++] = (size_t)BATCH * dims[l + 1];        /* h[l] / z */
		sz[k++] = (size_t)dims[l + 1] * dims[l];      /* w */
		sz[k++] = (size_t)dims[l + 1] * dims[l];      /* dw */
		sz[k++] = (size_t)BATCH * dims[l + 1];        /* delta */
	}
	sz[k++] = (size_t)BATCH * HIDDEN;                     /* g */
	for (size_t i = 0; i < k; i++) {
		off[i] = total;
		total += (sz[i] + 15) & ~(size_t)15;           /* 64-byte rows */
	}
	if (posix_memalign((void **)&g->mem, 64, total * sizeof(float)) != 0)
		return EG_ENOMEM;
	for (size_t i = 0; i < total; i++)
		g->mem[i] = (float)(0.1 * eg_rng_normal(r));

	k = 0;
	x = g->mem + off[k++];
	for (int l = 0; l < NL; l++) {
		h[l] = g->mem + off[k++];
		w[l] = g->mem + off[k++];
		dw[l] = g->mem + off[k++];
		dl[l] = g->mem + off[k++];
	}
	gin = g->mem + off[k++];

	g->ncall = 0;
	for (int l = 0; l < NL; l++) {
		int r_ = dims[l + 1], c = dims[l];
		add_call(g, "fwd", l, CblasNoTrans, CblasTrans, BATCH, r_, c,
			 l == 0 ? x : h[l - 1], c, w[l], c, h[l], r_);
	}
	for (int l = NL - 1; l >= 0; l--) {
		int r_ = dims[l + 1], c = dims[l];
		add_call(g, "wgrad", l, CblasTrans, CblasNoTrans, r_, c,
			 BATCH, dl[l], r_, l == 0 ? x : h[l - 1], c, dw[l],
			 c);
		if (l >= 1)
			add_call(g, "dgrad", l, CblasNoTrans, CblasNoTrans,
				 BATCH, c, r_, dl[l], r_, w[l], c, gin, c);
	}
	return EG_OK;
}

static void run_call(gemm_call *q)
{
	cblas_sgemm(CblasRowMajor, q->ta, q->tb, q->m, q->n, q->k, 1.0f,
		    q->a, q->lda, q->b, q->ldb, 0.0f, q->c, q->ldc);
}

static int gemm_step(void *ctx, long i)
{
	gemm_ctx *g = ctx;
	(void)i;

	for (int j = 0; j < g->ncall; j++) {
		gemm_call *q = &g->call[j];
		if (g->timed) {
			double t0 = now_s();
			run_call(q);
			double el = now_s() - t0;
			if (el < q->min_s)
				q->min_s = el;
		} else {
			run_call(q);
		}
	}
	return EG_OK;
}

/* Element (i, j) of op(A) op(B) in double, for the row-major layouts above. */
static double ref_elem(const gemm_call *q, int i, int j)
{
	double s = 0.0;

	for (int p = 0; p < q->k; p++) {
		float a = q->ta == CblasNoTrans ? q->a[(size_t)i * q->lda + p]
						: q->a[(size_t)p * q->lda + i];
		float b = q->tb == CblasNoTrans ? q->b[(size_t)p * q->ldb + j]
						: q->b[(size_t)j * q->ldb + p];
		s += (double)a * b;
	}
	return s;
}

/*
 * Some OpenBLAS builds miscompute on some processors (hence
 * OPENBLAS_CORETYPE on those machines); a rate measured on wrong answers
 * means nothing, so every call's output is checked at 64 random entries.
 */
static int check(gemm_ctx *g, eg_rng *r, char *bad, size_t badlen)
{
	for (int j = 0; j < g->ncall; j++) {
		gemm_call *q = &g->call[j];
		/* Checked right after the call: the two input-gradient calls
		 * share one output buffer, as in kernels/net.c. */
		run_call(q);
		for (int t = 0; t < 64; t++) {
			int i = (int)eg_rng_below(r, (uint64_t)q->m);
			int c = (int)eg_rng_below(r, (uint64_t)q->n);
			double want = ref_elem(q, i, c);
			double got = q->c[(size_t)i * q->ldc + c];
			/* Far above fp32 rounding over k terms of ~0.01, far
			 * below what a wrong kernel gives (the size of C). */
			double tol = 1e-4 * sqrt((double)q->k) + 1e-4 * fabs(want);
			if (fabs(got - want) > tol) {
				snprintf(bad, badlen,
					 "%s (%dx%dx%d) C[%d][%d] = %.6g, expected %.6g",
					 q->what, q->m, q->n, q->k, i, c, got,
					 want);
				return EG_ECORRUPT;
			}
		}
	}
	return EG_OK;
}

/* ---- main ------------------------------------------------------------ */

static const char *algo_name[] = {"bp", "fa", "dfa", "bdfa"};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_dense [--threads N] [--seconds S]\n"
		"  Times BP/FA/DFA/BDFA training steps of an MLP %d-%d-%d-%d at\n"
		"  batch %d against the sgemm calls of the same BP step.\n"
		"  --threads N   OpenBLAS threads (default $EG_BENCH_THREADS or 2)\n"
		"  --seconds S   time per measure (default 3)\n",
		N_IN, HIDDEN, HIDDEN, N_OUT, BATCH);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"threads", required_argument, NULL, 't'},
		{"seconds", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *envt = getenv("EG_BENCH_THREADS");
	int threads = envt != NULL && atoi(envt) > 0 ? atoi(envt) : 2;
	double seconds = 3.0;
	float *x = NULL;
	int32_t *y = NULL;
	eg_net *nets[4] = {NULL, NULL, NULL, NULL};
	gemm_ctx g = {0};
	train_ctx tc[4];
	measure ms[NMEASURE];
	timing tt[4], tg;
	eg_rng r;
	eg_diag d;
	char bad[256];
	int opt, rc, status = 1;

	while ((opt = getopt_long(argc, argv, "t:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			threads = atoi(optarg);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || threads < 1 || threads > 256 ||
	    !(seconds > 0.0 && seconds < 3600.0)) {
		usage(stderr);
		return 2;
	}

	/* OpenBLAS sized its pool from the environment when it loaded; the
	 * call below resizes it, which is what we report. */
	const char *envb = getenv("OPENBLAS_NUM_THREADS");
	if (envb != NULL && atoi(envb) != threads)
		printf("note: OPENBLAS_NUM_THREADS=%s overridden: using %d threads\n",
		       envb, threads);
	openblas_set_num_threads(threads);
	if (openblas_get_num_threads() != threads) {
		fprintf(stderr, "bench_dense: OpenBLAS runs %d threads, not %d\n",
			openblas_get_num_threads(), threads);
		return 1;
	}
	const char *ct = getenv("OPENBLAS_CORETYPE");
	const char *l2 = getenv("OPENBLAS_L2_SIZE");
	printf("OpenBLAS core %s, %d threads (%s)%s%s%s%s\n",
	       openblas_get_corename(), openblas_get_num_threads(),
	       openblas_get_config(), ct ? ", OPENBLAS_CORETYPE=" : "",
	       ct ? ct : "", l2 ? ", OPENBLAS_L2_SIZE=" : "", l2 ? l2 : "");
	printf("MLP %d-%d-%d-%d, relu, bias, SGD momentum 0.9, batch %d, "
	       "%.1f s per measure\n", N_IN, HIDDEN, HIDDEN, N_OUT, BATCH,
	       seconds);

	/* Random data: standard normal inputs, uniform labels. */
	eg_rng_seed_stream(&r, 42, "bench_dense");
	x = malloc((size_t)POOL * BATCH * N_IN * sizeof(*x));
	y = malloc((size_t)POOL * BATCH * sizeof(*y));
	if (x == NULL || y == NULL)
		goto oom;
	for (size_t i = 0; i < (size_t)POOL * BATCH * N_IN; i++)
		x[i] = (float)eg_rng_normal(&r);
	for (size_t i = 0; i < (size_t)POOL * BATCH; i++)
		y[i] = (int32_t)eg_rng_below(&r, N_OUT);

	/* The sgemm sequence first: check it computes, then time it. */
	if ((rc = gemm_setup(&g, &r)) != EG_OK)
		goto oom;
	if (check(&g, &r, bad, sizeof bad) != EG_OK) {
		fprintf(stderr, "bench_dense: sgemm miscomputes: %s\n", bad);
		goto out;
	}
	for (int a = 0; a < 4; a++) {
		eg_net_config c;

		eg_net_config_default(&c);
		c.n_in = N_IN;
		c.n_hidden = 2;
		c.hidden[0] = HIDDEN;
		c.hidden[1] = HIDDEN;
		c.n_out = N_OUT;
		c.act = EG_ACT_RELU;
		c.bias = true;
		c.optim = EG_OPT_SGD;
		c.lr = 0.01;
		c.momentum = 0.9;
		c.batch = BATCH;
		c.seed = 1;
		c.algo = (eg_algo)a;
		if ((rc = eg_net_create(&c, &nets[a], &d)) != EG_OK) {
			fprintf(stderr, "bench_dense: %s\n", eg_diag_msg(&d, rc));
			goto out;
		}
		tc[a].net = nets[a];
		tc[a].x = x;
		tc[a].y = y;
		ms[a] = (measure){.fn = train_step, .ctx = &tc[a],
				  .s = step_s[a]};
	}
	ms[4] = (measure){.fn = gemm_step, .ctx = &g, .s = step_s[4]};
	g.timed = 0;
	if ((rc = measure_all(ms, NMEASURE, seconds)) != EG_OK)
		goto fail;
	for (int a = 0; a < 4; a++)
		tt[a] = ms[a].t;
	tg = ms[4].t;


	/* A short extra run, each call timed on its own, for the breakdown
	 * of where the sgemm time goes; the fastest call of each is its cost
	 * undisturbed by the neighbours (not used for the rates). */
	g.timed = 1;
	{
		double sum = 0.0, t0 = now_s();
		long n = 0;
		while (now_s() - t0 < 0.5)
			gemm_step(&g, n++);
		for (int j = 0; j < g.ncall; j++)
			sum += g.call[j].min_s;
		printf("sgemm calls of one BP step (fastest call; share; rate):\n");
		for (int j = 0; j < g.ncall; j++) {
			const gemm_call *q = &g.call[j];
			double fc = 2.0 * q->m * q->n * q->k;
			printf("  %-7s %c%c m=%-4d n=%-4d k=%-4d %7.3f ms %5.1f %% %7.2f GFLOP/s\n",
			       q->what, q->ta == CblasNoTrans ? 'N' : 'T',
			       q->tb == CblasNoTrans ? 'N' : 'T', q->m, q->n,
			       q->k, 1e3 * q->min_s, 100.0 * q->min_s / sum,
			       fc / q->min_s / 1e9);
		}
	}

	double fl = bp_flops();
	double bp_gf = fl / (tt[0].median_ms * 1e-3) / 1e9;
	double sg_gf = fl / (tg.median_ms * 1e-3) / 1e9;
	double bp_sps = BATCH / (tt[0].median_ms * 1e-3);

	printf("sgemm sequence  %8.3f ms  %8.2f GFLOP/s  (%.1f MFLOP/step; "
	       "min %.3f, mean %.3f ms)\n", tg.median_ms, sg_gf, fl / 1e6,
	       tg.min_ms, tg.mean_ms);
	for (int a = 0; a < 4; a++)
		printf("%-4s step       %8.3f ms  %10.1f samples/s  %5.2fx BP time"
		       "  (min %.3f, mean %.3f ms, %ld steps)\n", algo_name[a],
		       tt[a].median_ms, BATCH / (tt[a].median_ms * 1e-3),
		       tt[a].median_ms / tt[0].median_ms, tt[a].min_ms,
		       tt[a].mean_ms, tt[a].steps);
	printf("BP: %.2f GFLOP/s = %.1f %% of the sgemm rate; "
	       "not-sgemm time %.3f ms/step (%.1f %%)\n", bp_gf,
	       100.0 * bp_gf / sg_gf, tt[0].median_ms - tg.median_ms,
	       100.0 * (tt[0].median_ms - tg.median_ms) / tt[0].median_ms);

	printf("RESULT dense_sgemm gflops=%.2f step_ms=%.4f min_step_ms=%.4f "
	       "threads=%d\n", sg_gf, tg.median_ms, tg.min_ms, threads);
	printf("RESULT dense_bp samples_per_s=%.1f step_ms=%.4f "
	       "min_step_ms=%.4f gflops=%.2f sgemm_gflops=%.2f pct_sgemm=%.1f "
	       "threads=%d\n", bp_sps, tt[0].median_ms, tt[0].min_ms, bp_gf,
	       sg_gf, 100.0 * bp_gf / sg_gf, threads);
	for (int a = 1; a < 4; a++)
		printf("RESULT dense_%s samples_per_s=%.1f step_ms=%.4f "
		       "min_step_ms=%.4f rel_bp=%.3f threads=%d\n",
		       algo_name[a], BATCH / (tt[a].median_ms * 1e-3),
		       tt[a].median_ms, tt[a].min_ms,
		       tt[a].median_ms / tt[0].median_ms, threads);
	status = 0;
	goto out;
fail:
	fprintf(stderr, "bench_dense: %s\n", eg_strerror(rc));
	goto out;
oom:
	fprintf(stderr, "bench_dense: out of memory\n");
out:
	for (int a = 0; a < 4; a++)
		eg_net_free(nets[a]);
	free(g.mem);
	free(x);
	free(y);
	return status;
}
