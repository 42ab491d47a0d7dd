/*
 * circulant.h - a block-circulant fully-connected layer on FFTW (PAPERS.md
 * section 4): an m x n weight matrix cut into k x k blocks, each circulant
 * and stored as one vector of k floats.
 *
 * Convention (the one the gradient formulas need): the stored vector w_ij is
 * the block's FIRST COLUMN, W_ij[r, c] = w_ij[(r - c) mod k].  With
 * p = ceil(m / k) block rows and q = ceil(n / k) block columns the layer
 * stores p * q * k floats, laid out block row by block row:
 * w[(i * q + j) * k + t] = w_ij[t].  An input whose length n is not a multiple
 * of k is zero-padded to q * k; outputs beyond m are computed and dropped, so
 * the layer is exactly the dense m x n matrix eg_circ_expand() produces
 * (the top-left m x n corner of the padded pk x qk block matrix).
 *
 * Computation: forward a_i = IFFT(sum_j FFT(w_ij) o FFT(x_j)); backward
 * dL/dw_ij = IFFT(sum_batch FFT(g_i) o conj(FFT(x_j))) and
 * dL/dx_j = IFFT(sum_i FFT(g_i) o conj(FFT(w_ij))), with g = dL/da.  All
 * transforms are real-to-complex / complex-to-real of length k in single
 * precision (fftw3f); FFT(x_j) is computed once per example and block
 * column, the sums stay in the frequency domain (one cblas_cgemm per
 * frequency bin), and there is one inverse transform per output block.
 * FFT(w_ij) is cached in the layer: after changing the weights through
 * eg_circ_weights() call eg_circ_weights_changed(), or forward and
 * backward keep using the old spectrum.
 *
 * Memory: eg_circ_create allocates everything - weights, weight spectrum,
 * FFTW plans and scratch for up to max_batch examples - so forward and
 * backward allocate nothing and never plan.
 *
 * Threads: FFTW's planner is not thread-safe, so eg_circ_create and
 * eg_circ_free must not run concurrently with each other or with any other
 * FFTW planning in the process (serialize them, e.g. create layers before
 * starting worker threads).  Forward and backward only execute plans
 * (fftwf_execute_dft_*, which FFTW documents as thread-safe) and call
 * cblas_cgemm; one eg_circ is still used by one thread at a time because
 * it owns its scratch.  The transforms are single-threaded; cgemm uses
 * OpenBLAS's thread count (openblas_set_num_threads, set by the caller),
 * but OpenBLAS runs products as small as these on the calling thread.
 *
 * Determinism: with EG_CIRC_PLAN_ESTIMATE the plans depend only on the
 * shape, so results are bit-identical from run to run on one machine (and
 * OpenBLAS thread count, as for the dense layers); EG_CIRC_PLAN_MEASURE
 * times candidate algorithms at create time, which is faster to execute
 * but may choose differently on each run (and each algorithm rounds
 * differently).
 */
#ifndef EG_CIRCULANT_H
#define EG_CIRCULANT_H

#include <stddef.h>

#include "common/err.h"
#include "kernels/rng.h"

typedef struct eg_circ eg_circ;

typedef enum eg_circ_plan {
	/* Heuristic plans: instant to make, reproducible; the default for
	 * training trials, whose results must not depend on timing noise. */
	EG_CIRC_PLAN_ESTIMATE = 0,
	/* Measured plans (FFTW_MEASURE): slower to create (tens of ms per
	 * shape, free for a shape FFTW has already measured in this process),
	 * faster to run; for benchmarks and long inference runs. */
	EG_CIRC_PLAN_MEASURE = 1
} eg_circ_plan;

/*
 * Creates a layer with m outputs, n inputs, block size k (a power of two,
 * 1 allowed) and scratch for batches of up to max_batch examples.  The
 * weights start at zero.  On success *out owns everything; free it with
 * eg_circ_free.  Errors: EG_EINVAL (a zero dimension, k not a power of two),
 * EG_ETOO_BIG (sizes overflow), EG_ENOMEM, EG_ENOTSUP (FFTW made no plan),
 * with the detail in d (may be NULL).  Not thread-safe (FFTW's planner).
 */
int eg_circ_create(eg_circ **out, size_t m, size_t n, size_t k,
		   size_t max_batch, eg_circ_plan plan, eg_diag *d);
/* Frees the layer and its plans; accepts NULL.  Not thread-safe. */
void eg_circ_free(eg_circ *c);

/* Shape: outputs m, inputs n, block k, block rows p, block columns q. */
size_t eg_circ_m(const eg_circ *c);
size_t eg_circ_n(const eg_circ *c);
size_t eg_circ_k(const eg_circ *c);
size_t eg_circ_p(const eg_circ *c);
size_t eg_circ_q(const eg_circ *c);
size_t eg_circ_max_batch(const eg_circ *c);

/* Weights actually stored, p * q * k (the params_total metric). */
size_t eg_circ_params_stored(const eg_circ *c);
/* Weights of the dense layer it replaces, m * n. */
size_t eg_circ_params_dense(const eg_circ *c);
/* params_dense / params_stored (the compression metric); k when k divides
 * both m and n, less when padding wastes part of the edge blocks. */
double eg_circ_compression(const eg_circ *c);
/* Bytes the layer holds in all: weights, three p*q spectrum arrays (cached
 * weight spectra, gradient spectra and their transpose) and the scratch for
 * max_batch examples; FFTW's plans not counted. */
size_t eg_circ_bytes(const eg_circ *c);

/*
 * The p * q * k weights, owned by the layer and valid until eg_circ_free.
 * Write through the pointer to initialize or update them, then call
 * eg_circ_weights_changed before the next forward or backward.
 */
float *eg_circ_weights(eg_circ *c);
const float *eg_circ_weights_const(const eg_circ *c);
/* Recomputes the cached FFT(w_ij) from the weights (p * q transforms;
 * call once per optimizer step, not per batch element). */
void eg_circ_weights_changed(eg_circ *c);
/* Draws every stored weight from N(0, stddev^2) with `rng`, in storage
 * order, and refreshes the spectrum.  Each entry of the expanded matrix is
 * then N(0, stddev^2) as in a dense layer with the same deviation. */
void eg_circ_init_normal(eg_circ *c, eg_rng *rng, double stddev);

/*
 * out (batch x m, row-major, caller-owned) = x (batch x n, row-major) times
 * the layer's matrix transposed, i.e. out[b] = W x[b].  1 <= batch <=
 * max_batch, else EG_EINVAL.  Allocates nothing.
 */
int eg_circ_forward(eg_circ *c, const float *x, size_t batch, float *out);

/*
 * Given the input x (batch x n) of a forward pass and dout = dL/d out
 * (batch x m), writes dw = dL/dw summed over the batch (p * q * k, same
 * layout as the weights; overwritten, not accumulated) and, if dx is not
 * NULL, dx = dL/dx (batch x n, overwritten).  The weight spectrum must be
 * current (see eg_circ_weights_changed).  FFT(x) is recomputed here, so x
 * need not be the input of the latest forward call.  dw may be NULL to skip
 * the weight gradient (e.g. a frozen layer).  Allocates nothing.
 */
int eg_circ_backward(eg_circ *c, const float *x, const float *dout,
		     size_t batch, float *dx, float *dw);

/*
 * Writes the dense m x n matrix (row-major, caller-owned) of a layer whose
 * p * q * k weights are w: dense[r * n + c] = w_ij[(r - c) mod k] with
 * i = r / k, j = c / k (q = ceil(n / k) block columns; any k >= 1).  Needs
 * no layer object, so the fixed-point design model can expand stored
 * weights too.
 */
void eg_circ_expand(size_t m, size_t n, size_t k, const float *w, float *dense);
/* eg_circ_expand of the layer's own weights. */
void eg_circ_to_dense(const eg_circ *c, float *dense);

#endif
