/*
 * circulant.c - the block-circulant layer of circulant.h on single-precision
 * FFTW, with the frequency-domain sums done by OpenBLAS's cgemm.
 *
 * Why cgemm: for one frequency bin t the forward sum
 * A_bi(t) = sum_j Wf_ij(t) X_bj(t) is a complex matrix product,
 * A(t) [batch x p] = X(t) [batch x q] * Wf(t)^T, and so are both gradients.
 * Storing every spectrum bin-major (bin t, then block index) turns the
 * p * q * (k/2+1) * batch multiply-adds of each pass into k/2+1 cgemm calls
 * that run at BLAS speed, instead of a hand-written complex loop; FFTW
 * writes and reads the bin-major layouts directly through its strides.
 *
 * Arrays (fftwf_malloc, zeroed at create; "spectrum" = kc = k/2+1 bins):
 *   w     p*q*k floats, the weights in the public layout (block stride k)
 *   v     V(t) = Wf(t)^T / k: v[(t*q + j)*p + i] = FFT(w_ij)[t] / k, the
 *         cached weight spectra, refreshed by eg_circ_weights_changed
 *   dwc   conj of the batch-summed weight gradient spectra, bin-major
 *         [t][i][j] (see backward for why conjugated)
 *   spec  p*q spectra block-major at stride kcs: the weight spectra on
 *         their way into v, the weight gradient spectra on their way out
 *         of dwc (a plain transpose loop plus contiguous transforms
 *         measured faster than FFTW transforms reading bins p*q complex
 *         apart, one cache line per bin)
 *   xf    per example b at b*xs: [t][j] = FFT(x_bj)[t]; backward reuses it
 *         for dL/dx_bj once dL/dw no longer needs FFT(x)
 *   af    per example b at b*as: [t][i], the output spectra in forward and
 *         FFT(g_bi) in backward
 *   rbuf  p*q real blocks at stride ks: time-domain input and
 *         output of the transforms (padded inputs, inverse results)
 * ks = k rounded up to 16 floats, kcs, xs and as rounded up to 8 complex, so
 * every block and every example's slice starts on a 64-byte boundary.
 * That is what lets the per-example plans, made once on the base of these
 * arrays, run on any example's slice through the new-array execute
 * functions: FFTW requires the new arrays to have the planning arrays'
 * alignment (fftwf_alignment_of), and 64-byte offsets from fftwf_malloc'ed
 * bases keep it for any SIMD width.
 *
 * Plans (rank 1, length k, fftwf_plan_many_dft_*, made once at create):
 *   r2c_w  p*q blocks rbuf -> spec   (weights)
 *   r2c_x  q blocks rbuf -> xf slice (inputs, one example a call)
 *   r2c_g  p blocks rbuf -> af slice (output gradients g_b)
 *   c2r_a  p spectra af slice -> rbuf (outputs)
 *   c2r_x  q spectra xf slice -> rbuf (dL/dx)
 *   c2r_w  p*q spectra spec -> rbuf  (dL/dw)
 * c2r destroys its input; every spectrum it consumes is scratch recomputed
 * before its next use.  c2r is unnormalized (k times the inverse), so the
 * 1/k is folded into v (for outputs and dL/dx) and into the transpose of
 * the weight gradient: one multiply per stored spectrum value instead of a
 * pass over every output, and exact, k being a power of two.  Only the
 * k/2+1 non-redundant bins are stored and multiplied: products and
 * conjugate products of spectra of real signals are again Hermitian, so
 * the half spectrum determines them.
 *
 * Workload per call with batch B: B*q + B*p transforms in forward, at most
 * B*(p + 2q) + p*q in backward, and one cgemm per bin per product.  FFT(x)
 * is recomputed in backward rather than kept from forward: B*q transforms
 * (about a sixth of the transforms of a forward + backward step), and in
 * exchange the caller need not pair each backward with the latest forward.
 *
 * Threads: the transforms are single-threaded.  cgemm runs on OpenBLAS's
 * thread count, but OpenBLAS keeps a product with m*n*k at most 65536 *
 * GEMM_MULTITHREAD_THRESHOLD (4 by default; interface/gemm.c) on the
 * calling thread: every per-bin product of the 4096 x 4096, k = 256 layer
 * up to batch 1024.
 */
#include <cblas.h>
#include <fftw3.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/circulant.h"

#define EG__CIRC_RALIGN 16 /* floats per 64 bytes */
#define EG__CIRC_CALIGN 8  /* complex per 64 bytes */

struct eg_circ {
	size_t m, n, k, p, q, max_batch;
	size_t kc;     /* k/2 + 1 bins per spectrum */
	size_t ks;     /* real block stride (floats) */
	size_t kcs;    /* spectrum stride in spec (complex) */
	size_t xs, as; /* per-example stride of xf and af (complex) */
	size_t bytes;  /* everything allocated, for eg_circ_bytes */
	float *w;
	fftwf_complex *v, *dwc, *spec, *xf, *af;
	float *rbuf;
	fftwf_plan r2c_w, r2c_x, r2c_g, c2r_a, c2r_x, c2r_w;
};

static const float c_one[2] = {1.0f, 0.0f};
static const float c_zero[2] = {0.0f, 0.0f};

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

/* a*b, clearing *ok on overflow. */
static size_t mul(size_t a, size_t b, int *ok)
{
	size_t r;

	if (__builtin_mul_overflow(a, b, &r)) {
		*ok = 0;
		return 0;
	}
	return r;
}

static void *zalloc(size_t bytes)
{
	void *p = fftwf_malloc(bytes);

	if (p != NULL)
		memset(p, 0, bytes);
	return p;
}

/* howmany real blocks of rbuf (stride ks) -> spectra, bin t of block h at
 * out[t * stride + h * dist]. */
static fftwf_plan plan_r2c(eg_circ *c, size_t howmany, fftwf_complex *out,
			   size_t stride, size_t dist, unsigned flags)
{
	int nk = (int)c->k;

	return fftwf_plan_many_dft_r2c(1, &nk, (int)howmany, c->rbuf, NULL, 1,
				       (int)c->ks, out, NULL, (int)stride,
				       (int)dist, flags);
}

/* The inverse: spectra laid out as above -> howmany real blocks of rbuf. */
static fftwf_plan plan_c2r(eg_circ *c, size_t howmany, fftwf_complex *in,
			   size_t stride, size_t dist, unsigned flags)
{
	int nk = (int)c->k;

	return fftwf_plan_many_dft_c2r(1, &nk, (int)howmany, in, NULL,
				       (int)stride, (int)dist, c->rbuf, NULL, 1,
				       (int)c->ks, flags);
}

int eg_circ_create(eg_circ **out, size_t m, size_t n, size_t k,
		   size_t max_batch, eg_circ_plan plan, eg_diag *d)
{
	eg_circ *c = NULL;
	unsigned flags;
	size_t nw, nv, nxf, naf, nr, pq;
	int ok = 1, rc;

	*out = NULL;
	if (m == 0 || n == 0 || max_batch == 0)
		return eg_diag_set(
		    d, EG_EINVAL,
		    "circulant layer: m, n and max_batch must be "
		    "positive (got %zu, %zu, %zu)",
		    m, n, max_batch);
	if (k == 0 || (k & (k - 1)) != 0)
		return eg_diag_set(d, EG_EINVAL,
				   "circulant layer: block size %zu is not a "
				   "power of two",
				   k);
	if (k > (size_t)1 << 24 || m > INT32_MAX || n > INT32_MAX ||
	    max_batch > INT32_MAX)
		return eg_diag_set(d, EG_ETOO_BIG,
				   "circulant layer: %zu x %zu with k = %zu, "
				   "batch %zu is too large",
				   m, n, k, max_batch);

	c = zalloc(sizeof(*c));
	if (c == NULL)
		goto oom;
	c->m = m;
	c->n = n;
	c->k = k;
	c->p = (m + k - 1) / k;
	c->q = (n + k - 1) / k;
	c->max_batch = max_batch;
	c->kc = k / 2 + 1;
	c->ks = round_up(k, EG__CIRC_RALIGN);
	c->kcs = round_up(c->kc, EG__CIRC_CALIGN);

	/* FFTW and CBLAS take int counts, strides and leading dimensions:
	 * every element count (not only the byte sizes) must fit an int. */
	pq = mul(c->p, c->q, &ok);
	nw = mul(pq, k, &ok);
	nv = mul(pq, c->kcs, &ok);
	c->xs = round_up(mul(c->q, c->kc, &ok), EG__CIRC_CALIGN);
	c->as = round_up(mul(c->p, c->kc, &ok), EG__CIRC_CALIGN);
	nxf = mul(max_batch, c->xs, &ok);
	naf = mul(max_batch, c->as, &ok);
	nr = mul(pq, c->ks, &ok); /* p*q >= p, q: the largest group */
	if (!ok || nw > INT32_MAX || nv > INT32_MAX || nxf > INT32_MAX ||
	    naf > INT32_MAX || nr > INT32_MAX) {
		eg_circ_free(c);
		return eg_diag_set(d, EG_ETOO_BIG,
				   "circulant layer: %zu x %zu, k = %zu, batch "
				   "%zu overflows the scratch sizes",
				   m, n, k, max_batch);
	}

	c->w = zalloc(nw * sizeof(float));
	c->v = zalloc(nv * sizeof(fftwf_complex));
	c->dwc = zalloc(nv * sizeof(fftwf_complex));
	c->spec = zalloc(nv * sizeof(fftwf_complex));
	c->xf = zalloc(nxf * sizeof(fftwf_complex));
	c->af = zalloc(naf * sizeof(fftwf_complex));
	c->rbuf = zalloc(nr * sizeof(float));
	c->bytes = sizeof(*c) + nw * sizeof(float) +
		   3 * nv * sizeof(fftwf_complex) +
		   (nxf + naf) * sizeof(fftwf_complex) + nr * sizeof(float);
	if (c->w == NULL || c->v == NULL || c->dwc == NULL || c->spec == NULL ||
	    c->xf == NULL || c->af == NULL || c->rbuf == NULL)
		goto oom;

	/* FFTW_MEASURE overwrites the planning arrays; nothing is stored in
	 * them yet.  c2r may destroy its input (FFTW's default for c2r),
	 * which every caller below allows for. */
	flags = plan == EG_CIRC_PLAN_MEASURE ? FFTW_MEASURE : FFTW_ESTIMATE;
	c->r2c_w = plan_r2c(c, pq, c->spec, 1, c->kcs, flags);
	c->r2c_x = plan_r2c(c, c->q, c->xf, c->q, 1, flags);
	c->r2c_g = plan_r2c(c, c->p, c->af, c->p, 1, flags);
	c->c2r_a = plan_c2r(c, c->p, c->af, c->p, 1, flags);
	c->c2r_x = plan_c2r(c, c->q, c->xf, c->q, 1, flags);
	c->c2r_w = plan_c2r(c, pq, c->spec, 1, c->kcs, flags);
	if (c->r2c_w == NULL || c->r2c_x == NULL || c->r2c_g == NULL ||
	    c->c2r_a == NULL || c->c2r_x == NULL || c->c2r_w == NULL) {
		rc = eg_diag_set(d, EG_ENOTSUP,
				 "circulant layer: FFTW made no plan for "
				 "length %zu",
				 k);
		goto err;
	}
	/* The weights are zero, and so must their spectrum be. */
	memset(c->v, 0, nv * sizeof(fftwf_complex));
	*out = c;
	return EG_OK;

oom:
	rc = eg_diag_set(d, EG_ENOMEM,
			 "circulant layer %zu x %zu, k = %zu: out of memory", m,
			 n, k);
err:
	eg_circ_free(c);
	return rc;
}

void eg_circ_free(eg_circ *c)
{
	fftwf_plan *plans[6];

	if (c == NULL)
		return;
	plans[0] = &c->r2c_w;
	plans[1] = &c->r2c_x;
	plans[2] = &c->r2c_g;
	plans[3] = &c->c2r_a;
	plans[4] = &c->c2r_x;
	plans[5] = &c->c2r_w;
	for (int t = 0; t < 6; t++)
		if (*plans[t] != NULL)
			fftwf_destroy_plan(*plans[t]);
	fftwf_free(c->w);
	fftwf_free(c->v);
	fftwf_free(c->dwc);
	fftwf_free(c->spec);
	fftwf_free(c->xf);
	fftwf_free(c->af);
	fftwf_free(c->rbuf);
	fftwf_free(c);
}

size_t eg_circ_m(const eg_circ *c)
{
	return c->m;
}

size_t eg_circ_n(const eg_circ *c)
{
	return c->n;
}

size_t eg_circ_k(const eg_circ *c)
{
	return c->k;
}

size_t eg_circ_p(const eg_circ *c)
{
	return c->p;
}

size_t eg_circ_q(const eg_circ *c)
{
	return c->q;
}

size_t eg_circ_max_batch(const eg_circ *c)
{
	return c->max_batch;
}

size_t eg_circ_params_stored(const eg_circ *c)
{
	return c->p * c->q * c->k;
}

size_t eg_circ_params_dense(const eg_circ *c)
{
	return c->m * c->n;
}

size_t eg_circ_bytes(const eg_circ *c)
{
	return c->bytes;
}

double eg_circ_compression(const eg_circ *c)
{
	return (double)eg_circ_params_dense(c) /
	       (double)eg_circ_params_stored(c);
}

float *eg_circ_weights(eg_circ *c)
{
	return c->w;
}

const float *eg_circ_weights_const(const eg_circ *c)
{
	return c->w;
}

void eg_circ_weights_changed(eg_circ *c)
{
	size_t k = c->k, p = c->p, q = c->q;
	float *v = (float *)c->v;
	const float *spec = (const float *)c->spec;
	float scale = 1.0f / (float)k;

	for (size_t h = 0; h < p * q; h++)
		memcpy(c->rbuf + h * c->ks, c->w + h * k, k * sizeof(float));
	fftwf_execute_dft_r2c(c->r2c_w, c->rbuf, c->spec);
	/* V(t) = Wf(t)^T / k, q x p row-major. */
	for (size_t t = 0; t < c->kc; t++)
		for (size_t j = 0; j < q; j++)
			for (size_t i = 0; i < p; i++) {
				size_t to = 2 * ((t * q + j) * p + i);
				size_t from = 2 * ((i * q + j) * c->kcs + t);

				v[to] = spec[from] * scale;
				v[to + 1] = spec[from + 1] * scale;
			}
}

void eg_circ_init_normal(eg_circ *c, eg_rng *rng, double stddev)
{
	size_t nw = eg_circ_params_stored(c);

	for (size_t t = 0; t < nw; t++)
		c->w[t] = (float)(stddev * eg_rng_normal(rng));
	eg_circ_weights_changed(c);
}

/* Copies one example's `len` floats into rbuf as nb blocks of k at stride
 * ks, zero-padding the last block, and transforms them into `spec`. */
static void load_and_transform(eg_circ *c, fftwf_plan plan, const float *src,
			       size_t len, size_t nb, fftwf_complex *spec)
{
	size_t k = c->k;

	for (size_t j = 0; j < nb; j++) {
		float *dst = c->rbuf + j * c->ks;
		size_t off = j * k;
		size_t take = len - off < k ? len - off : k;

		memcpy(dst, src + off, take * sizeof(float));
		if (take < k)
			memset(dst + take, 0, (k - take) * sizeof(float));
	}
	fftwf_execute_dft_r2c(plan, c->rbuf, spec);
}

/* Inverse-transforms nb spectra (destroying them) and writes the first `len`
 * values of the nb*k result to dst (the spectra carry the 1/k already). */
static void inverse_and_store(eg_circ *c, fftwf_plan plan, fftwf_complex *spec,
			      size_t nb, float *dst, size_t len)
{
	size_t k = c->k;

	fftwf_execute_dft_c2r(plan, spec, c->rbuf);
	for (size_t j = 0; j < nb; j++) {
		size_t off = j * k;
		size_t take = len - off < k ? len - off : k;

		memcpy(dst + off, c->rbuf + j * c->ks, take * sizeof(float));
	}
}

int eg_circ_forward(eg_circ *c, const float *x, size_t batch, float *out)
{
	int B = (int)batch, p = (int)c->p, q = (int)c->q;

	if (batch == 0 || batch > c->max_batch)
		return EG_EINVAL;

	/* FFT(x_bj) once per example and block column. */
	for (size_t b = 0; b < batch; b++)
		load_and_transform(c, c->r2c_x, x + b * c->n, c->n, c->q,
				   c->xf + b * c->xs);

	/* Per bin: A(t) [B x p] = X(t) [B x q] * V(t) [q x p], i.e.
	 * a_bi(t) = sum_j FFT(w_ij)(t) FFT(x_bj)(t), summed in frequency. */
	for (size_t t = 0; t < c->kc; t++)
		cblas_cgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, p, q,
			    c_one, c->xf + t * c->q, (int)c->xs,
			    c->v + t * c->q * c->p, p, c_zero, c->af + t * c->p,
			    (int)c->as);

	/* One inverse per output block. */
	for (size_t b = 0; b < batch; b++)
		inverse_and_store(c, c->c2r_a, c->af + b * c->as, c->p,
				  out + b * c->m, c->m);
	return EG_OK;
}

int eg_circ_backward(eg_circ *c, const float *x, const float *dout,
		     size_t batch, float *dx, float *dw)
{
	size_t k = c->k, kc = c->kc;
	int B = (int)batch, p = (int)c->p, q = (int)c->q;

	if (batch == 0 || batch > c->max_batch)
		return EG_EINVAL;

	/* FFT(g_bi) into af; FFT(x_bj) into xf (only dL/dw needs it). */
	for (size_t b = 0; b < batch; b++) {
		load_and_transform(c, c->r2c_g, dout + b * c->m, c->m, c->p,
				   c->af + b * c->as);
		if (dw != NULL)
			load_and_transform(c, c->r2c_x, x + b * c->n, c->n,
					   c->q, c->xf + b * c->xs);
	}

	if (dw != NULL) {
		/*
		 * dL/dw_ij = IFFT(sum_b FFT(g_bi) o conj(FFT(x_bj))).  As a
		 * product per bin that is G(t)^T conj(X(t)), which standard
		 * CBLAS cannot express (no conjugate-without-transpose); its
		 * conjugate G(t)^H X(t) it can, and the transpose into spec
		 * conjugates it back.
		 */
		size_t pq = c->p * c->q;
		const float *dwc = (const float *)c->dwc;
		float *spec = (float *)c->spec;
		float scale = 1.0f / (float)k;

		for (size_t t = 0; t < kc; t++)
			cblas_cgemm(CblasRowMajor, CblasConjTrans, CblasNoTrans,
				    p, q, B, c_one, c->af + t * c->p,
				    (int)c->as, c->xf + t * c->q, (int)c->xs,
				    c_zero, c->dwc + t * pq, q);
		for (size_t h = 0; h < pq; h++)
			for (size_t t = 0; t < kc; t++) {
				const float *z = dwc + 2 * (t * pq + h);

				spec[2 * (h * c->kcs + t)] = z[0] * scale;
				spec[2 * (h * c->kcs + t) + 1] = -z[1] * scale;
			}
		fftwf_execute_dft_c2r(c->c2r_w, c->spec, c->rbuf);
		for (size_t h = 0; h < pq; h++)
			memcpy(dw + h * k, c->rbuf + h * c->ks,
			       k * sizeof(float));
	}

	if (dx != NULL) {
		/* dL/dx_bj = IFFT(sum_i FFT(g_bi) o conj(FFT(w_ij))): per bin
		 * dX(t) [B x q] = G(t) [B x p] * V(t)^H, V^H = conj(Wf).  xf
		 * (FFT(x) no longer needed) receives it. */
		for (size_t t = 0; t < kc; t++)
			cblas_cgemm(CblasRowMajor, CblasNoTrans, CblasConjTrans,
				    B, q, p, c_one, c->af + t * c->p,
				    (int)c->as, c->v + t * c->q * c->p, p,
				    c_zero, c->xf + t * c->q, (int)c->xs);
		for (size_t b = 0; b < batch; b++)
			inverse_and_store(c, c->c2r_x, c->xf + b * c->xs, c->q,
					  dx + b * c->n, c->n);
	}
	return EG_OK;
}

void eg_circ_expand(size_t m, size_t n, size_t k, const float *w, float *dense)
{
	size_t q = (n + k - 1) / k;

	for (size_t r = 0; r < m; r++) {
		size_t i = r / k, rr = r % k;

		for (size_t col = 0; col < n; col++) {
			size_t j = col / k, cc = col % k;

			/* (rr - cc) mod k without going negative. */
			dense[r * n + col] =
			    w[(i * q + j) * k + (rr + k - cc) % k];
		}
	}
}

void eg_circ_to_dense(const eg_circ *c, float *dense)
{
	eg_circ_expand(c->m, c->n, c->k, c->w, dense);
}
