/*
 * conv.h - 2-D convolution and max-pool layers for the CNNs of PAPERS.md
 * section 2, as layer-level functions that eg_net chains.
 *
 * Layout: activations are NCHW row-major, a batch of n examples each
 * C x H x W, contiguous (example i starts at i * C * H * W).  Convolution
 * weights are F x C x K x K row-major (a square K x K kernel per filter and
 * input channel), the optional bias has F entries.  The layer computes a
 * cross-correlation, as every deep-learning framework does:
 *
 *     out[i, f, y, x] = b[f] + sum_{c, u, v} w[f, c, u, v]
 *                       * in[i, c, y * stride - pad + u, x * stride - pad + v]
 *
 * with in[...] = 0 outside the image (zero padding).  The default shape
 * (eg_conv_shape_same) is stride 1 with pad = K / 2, which keeps H x W for
 * odd K; any stride >= 1 and pad >= 0 is accepted.
 *
 * Computation: per example, im2col unrolls the input into a
 * (C K K) x (Ho Wo) matrix and one cblas_sgemm multiplies the F x (C K K)
 * weights by it, writing the example's F x Ho x Wo output in place (NCHW
 * needs no transpose this way).  Backward, per example, dW += dOut col^T
 * and dX = col2im(W^T dOut), each one sgemm.  The batch is processed one
 * example at a time rather than as one (C K K) x (n Ho Wo) product: on
 * this machine's OpenBLAS the per-example products are as fast or faster
 * (the unrolled matrix of one example stays in cache, e.g. 0.6 MB against
 * 40 MB for a 64-example batch of a 32 -> 64, 5 x 5, 14 x 14 layer), the
 * scratch is n times smaller and the batched form would need a transpose
 * from F x (n Ho Wo) back to NCHW.  A 1 x 1 kernel with stride 1 and no
 * padding skips im2col (the input already is the unrolled matrix).
 *
 * Max-pool: P x P windows with stride P; the output is floor(H / P) x
 * floor(W / P), so trailing rows and columns that do not fill a window are
 * dropped (and receive zero gradient).  Forward records, for each output,
 * the index of the chosen input inside its example's C x H x W volume
 * (c * H * W + y * W + x) in a caller-provided int32 buffer; backward
 * scatters the output gradient to those positions.  Ties go to the FIRST
 * maximum in row-major window order (a later equal value does not replace
 * it).  A NaN in a window is propagated: the output is the first NaN and
 * the gradient goes there, so a diverged layer cannot look healthy.
 *
 * Memory: the BLAS convention.  Every buffer is owned by the caller, the
 * scratch a convolution call needs is queried with eg_conv_scratch_size
 * (bytes, malloc alignment suffices), and nothing is allocated inside.
 * Thread-safe for distinct output and scratch buffers; OpenBLAS may use its
 * own threads inside each sgemm.  Deterministic for a given OpenBLAS thread
 * count.  Nothing here logs; invalid shapes or buffers return EG_EINVAL
 * (eg_conv_check / eg_pool_check give the detail).
 */
#ifndef EG_CONV_H
#define EG_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The shape of one convolution layer; batch size is passed per call. */
typedef struct eg_conv_shape {
	int c, h, w; /* input channels, height, width (>= 1) */
	int f;	     /* filters = output channels (>= 1) */
	int k;	     /* kernel side (>= 1) */
	int stride;  /* >= 1 */
	int pad;     /* zero padding on each side, 0 <= pad < k */
} eg_conv_shape;

/* Fills *s with stride 1 and pad k / 2 ("same" for odd k). */
void eg_conv_shape_same(eg_conv_shape *s, int c, int h, int w, int f, int k);

/* EG_OK if the shape is usable: every size positive, pad in [0, k), the
 * padded input at least k in each direction, and every size the sgemm
 * calls and argmax indices use (C K K, Ho Wo, F, C H W, the unrolled
 * matrix) within INT32_MAX.  Else EG_EINVAL (or EG_ETOO_BIG) with the
 * detail in d (may be NULL). */
int eg_conv_check(const eg_conv_shape *s, eg_diag *d);

/* Output height and width, (h + 2 pad - k) / stride + 1 (floor). */
int eg_conv_out_h(const eg_conv_shape *s);
int eg_conv_out_w(const eg_conv_shape *s);
/* Floats per example of the input (C H W) and output (F Ho Wo), floats of
 * the weights (F C K K), and of one example's unrolled matrix
 * (C K K Ho Wo). */
size_t eg_conv_in_len(const eg_conv_shape *s);
size_t eg_conv_out_len(const eg_conv_shape *s);
size_t eg_conv_weights_len(const eg_conv_shape *s);
size_t eg_conv_col_len(const eg_conv_shape *s);
/* Multiply-adds per example of the forward pass, F C K K Ho Wo (the weight
 * and input gradients cost the same each). */
double eg_conv_macs(const eg_conv_shape *s);

/* Scratch bytes that forward and backward need (independent of the batch
 * size; 0 for a 1 x 1, stride 1, unpadded kernel, where scratch may be
 * NULL). */
size_t eg_conv_scratch_size(const eg_conv_shape *s);

/*
 * One example: col ((C K K) x (Ho Wo) row-major, row (c K + u) K + v,
 * column y Wo + x) = the input window values, zeros in the padding.  col2im
 * is its adjoint: x (C H W) is OVERWRITTEN with the sum, over every col
 * entry, of that entry at the input position it was read from (padding
 * entries are dropped).  The shape must pass eg_conv_check; the two
 * buffers must not overlap.
 */
void eg_conv_im2col(const eg_conv_shape *s, const float *x, float *col);
void eg_conv_col2im(const eg_conv_shape *s, const float *col, float *x);
/* The same with the rows of col `ld` floats apart (ld >= Ho Wo), so that
 * the unrolled matrices of a batch can sit side by side in one
 * (C K K) x (n Ho Wo) matrix (example i at column i Ho Wo, ld = n Ho Wo)
 * for one sgemm per batch (eg_net does this). */
void eg_conv_im2col_ld(const eg_conv_shape *s, const float *x, float *col,
		       size_t ld);
void eg_conv_col2im_ld(const eg_conv_shape *s, const float *col, size_t ld,
		       float *x);

/*
 * out (n x F x Ho x Wo) = conv(x (n x C x H x W), w) + b.  b may be NULL
 * (no bias).  n >= 1; scratch holds at least eg_conv_scratch_size(s) bytes.
 * EG_EINVAL for a bad shape, n or scratch.  Allocates nothing.
 */
int eg_conv_forward(const eg_conv_shape *s, size_t n, const float *x,
		    const float *w, const float *b, float *out, void *scratch,
		    size_t scratch_size);

/*
 * Given the input x of a forward pass and dout = dL/d out (n x F x Ho x Wo),
 * writes, each OVERWRITTEN and summed over the batch: dw = dL/dw (F C K K)
 * unless NULL, db = dL/db (F) unless NULL, and dx = dL/dx (n x C x H x W)
 * unless NULL (the first layer of a network needs no input gradient and
 * saves a third of the work).  w is only read when dx is wanted.
 * EG_EINVAL for a bad shape, n or scratch.  Allocates nothing.
 */
int eg_conv_backward(const eg_conv_shape *s, size_t n, const float *x,
		     const float *w, const float *dout, float *dw, float *db,
		     float *dx, void *scratch, size_t scratch_size);

/* The shape of one max-pool layer: C x H x W input, P x P windows with
 * stride P. */
typedef struct eg_pool_shape {
	int c, h, w; /* >= 1 */
	int p;	     /* window side and stride, 1 <= p <= min(h, w) */
} eg_pool_shape;

/* EG_OK if usable (sizes positive, p <= h and p <= w, C H W within
 * INT32_MAX so that argmax indices fit); else EG_EINVAL with detail. */
int eg_pool_check(const eg_pool_shape *s, eg_diag *d);
int eg_pool_out_h(const eg_pool_shape *s);	/* floor(h / p) */
int eg_pool_out_w(const eg_pool_shape *s);	/* floor(w / p) */
size_t eg_pool_in_len(const eg_pool_shape *s);	/* C H W */
size_t eg_pool_out_len(const eg_pool_shape *s); /* C Ho Wo */

/*
 * out (n x C x Ho x Wo) = the maximum of each window of x (n x C x H x W);
 * argmax (n x C x Ho x Wo int32, may be NULL for inference) = the index of
 * that maximum inside its example's C x H x W volume.  Ties: first maximum
 * in row-major window order.  EG_EINVAL for a bad shape or n = 0.
 */
int eg_pool_forward(const eg_pool_shape *s, size_t n, const float *x,
		    float *out, int32_t *argmax);

/*
 * dx (n x C x H x W, OVERWRITTEN) = dout (n x C x Ho x Wo) scattered to the
 * positions argmax recorded; zero elsewhere.  EG_EINVAL for a bad shape or
 * n = 0.  Indices are trusted (they come from eg_pool_forward).
 */
int eg_pool_backward(const eg_pool_shape *s, size_t n, const float *dout,
		     const int32_t *argmax, float *dx);

#endif
