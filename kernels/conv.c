/*
 * conv.c - conv2d (im2col + cblas_sgemm) and max-pool layers; see conv.h
 * for the layout, the formulas and the tie rule.
 *
 * Invariants: every public entry point validates its shape with
 * eg_conv_check / eg_pool_check before touching a buffer, so the int
 * arithmetic below (sizes within INT32_MAX) cannot overflow and the sgemm
 * dimensions are representable.  Per-example offsets are computed in
 * size_t.  Nothing is allocated: the unrolled matrix lives in the
 * caller's scratch, reused example after example.
 *
 * im2col and col2im share one loop structure: for each row (c, u, v) of
 * the unrolled matrix and each output row y, the input row is
 * iy = y stride - pad + u, and the valid output columns x are those with
 * 0 <= x stride - pad + v < W, a contiguous range [x0, x1) computed once
 * per row; outside it the entries are padding.  The common case of the
 * CNNs expgrid trains, stride 1 with "same" width, takes a faster path in
 * im2col (im2col_block_shifted: one copy per (c, u, v) block instead of
 * one per row).  Measured on the LeNet-ish layers of the report, im2col
 * costs 0.4 to 0.5 of the forward sgemm of the same layer, and backward
 * recomputes it rather than keeping n unrolled matrices.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/conv.h"

void eg_conv_shape_same(eg_conv_shape *s, int c, int h, int w, int f, int k)
{
	s->c = c;
	s->h = h;
	s->w = w;
	s->f = f;
	s->k = k;
	s->stride = 1;
	s->pad = k / 2;
}

int eg_conv_out_h(const eg_conv_shape *s)
{
	return (s->h + 2 * s->pad - s->k) / s->stride + 1;
}

int eg_conv_out_w(const eg_conv_shape *s)
{
	return (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

size_t eg_conv_in_len(const eg_conv_shape *s)
{
	return (size_t)s->c * (size_t)s->h * (size_t)s->w;
}

size_t eg_conv_out_len(const eg_conv_shape *s)
{
	return (size_t)s->f * (size_t)eg_conv_out_h(s) *
	       (size_t)eg_conv_out_w(s);
}

size_t eg_conv_weights_len(const eg_conv_shape *s)
{
	return (size_t)s->f * (size_t)s->c * (size_t)s->k * (size_t)s->k;
}

size_t eg_conv_col_len(const eg_conv_shape *s)
{
	return (size_t)s->c * (size_t)s->k * (size_t)s->k *
	       (size_t)eg_conv_out_h(s) * (size_t)eg_conv_out_w(s);
}

double eg_conv_macs(const eg_conv_shape *s)
{
	return (double)s->f * (double)eg_conv_col_len(s);
}

/* A 1 x 1 kernel, stride 1, no padding: the input is its own unrolled
 * matrix (C x HW), so no copy and no scratch. */
static int is_pointwise(const eg_conv_shape *s)
{
	return s->k == 1 && s->stride == 1 && s->pad == 0;
}

size_t eg_conv_scratch_size(const eg_conv_shape *s)
{
	return is_pointwise(s) ? 0 : eg_conv_col_len(s) * sizeof(float);
}

int eg_conv_check(const eg_conv_shape *s, eg_diag *d)
{
	long long ho, wo, ckk;

	if (s == NULL)
		return eg_diag_set(d, EG_EINVAL, "conv: no shape");
	if (s->c < 1 || s->h < 1 || s->w < 1 || s->f < 1 || s->k < 1)
		return eg_diag_set(d, EG_EINVAL,
				   "conv: sizes must be positive (c=%d h=%d "
				   "w=%d filters=%d kernel=%d)",
				   s->c, s->h, s->w, s->f, s->k);
	if (s->stride < 1)
		return eg_diag_set(d, EG_EINVAL, "conv: stride %d < 1",
				   s->stride);
	if (s->pad < 0 || s->pad >= s->k)
		return eg_diag_set(d, EG_EINVAL,
				   "conv: pad %d outside [0, kernel %d)",
				   s->pad, s->k);
	if ((long long)s->h + 2LL * s->pad < s->k ||
	    (long long)s->w + 2LL * s->pad < s->k)
		return eg_diag_set(d, EG_EINVAL,
				   "conv: kernel %d larger than the padded "
				   "%dx%d input",
				   s->k, s->h + 2 * s->pad, s->w + 2 * s->pad);
	ho = ((long long)s->h + 2LL * s->pad - s->k) / s->stride + 1;
	wo = ((long long)s->w + 2LL * s->pad - s->k) / s->stride + 1;
	ckk = (long long)s->c * s->k * s->k;
	/* Each factor is below 2^31, so each product below fits in 2^62
	 * before it is compared. */
	if (ckk > INT32_MAX || ho * wo > INT32_MAX ||
	    (long long)s->c * s->h > INT32_MAX ||
	    (long long)s->c * s->h * s->w > INT32_MAX ||
	    (double)ckk * (double)(ho * wo) > INT32_MAX ||
	    (double)s->f * (double)(ho * wo) > INT32_MAX)
		return eg_diag_set(d, EG_ETOO_BIG,
				   "conv: %dx%dx%d input, %d filters of %dx%d "
				   "is too large",
				   s->c, s->h, s->w, s->f, s->k, s->k);
	return EG_OK;
}

/* The valid output columns [*x0, *x1) of kernel column v: those with
 * 0 <= x stride - pad + v < w. */
static void valid_cols(const eg_conv_shape *s, int wo, int v, int *x0, int *x1)
{
	int off = v - s->pad; /* input column of output column 0 */
	int lo = 0, hi;

	if (off < 0)
		lo = (-off + s->stride - 1) / s->stride;
	/* last x with x stride + off <= w - 1 */
	if (s->w - 1 - off < 0)
		hi = 0;
	else
		hi = (s->w - 1 - off) / s->stride + 1;
	if (hi > wo)
		hi = wo;
	if (lo > hi)
		lo = hi;
	*x0 = lo;
	*x1 = hi;
}

/*
 * im2col's block of kernel offset (u, v) when stride = 1 and Wo = W (the
 * "same" width): entry (y, t) is xc[(y + dy) W + t + off] with dy = u - pad,
 * i.e. the channel shifted by one constant, so the whole valid part is ONE
 * contiguous copy; the few entries that wrapped around a row end (columns
 * outside [x0, x1)) are zeroed afterwards.  This replaces Ho short row
 * copies, whose per-row overhead cost more than the copying.
 */
static void im2col_block_shifted(const eg_conv_shape *s, int ho,
				 const float *restrict xc, int u, int off,
				 int x0, int x1, float *restrict dst)
{
	int w = s->w, dy = u - s->pad;
	int y0 = dy < 0 ? -dy : 0;
	int y1 = s->h - dy < ho ? s->h - dy : ho;

	if (y0 > ho)
		y0 = ho;
	if (y1 < y0 || x1 <= x0)
		y1 = y0; /* no valid entry: x0 + off may even be negative */
	memset(dst, 0, (size_t)y0 * w * sizeof(float));
	if (y1 > y0) {
		/* From (y0, x0) to (y1 - 1, x1): the source starts at row
		 * y0 + dy >= 0, column x0 + off >= 0 and ends inside row
		 * y1 - 1 + dy < H, so it never leaves the channel. */
		size_t a = (size_t)y0 * w + (size_t)x0;
		size_t e = (size_t)(y1 - 1) * w + (size_t)x1;

		memcpy(dst + a, xc + (size_t)(y0 + dy) * w + (size_t)(x0 + off),
		       (e - a) * sizeof(float));
		for (int y = y0; y < y1; y++) {
			float *row = dst + (size_t)y * w;

			for (int t = 0; t < x0; t++)
				row[t] = 0.0f;
			for (int t = x1; t < w; t++)
				row[t] = 0.0f;
		}
	}
	memset(dst + (size_t)y1 * w, 0, (size_t)(ho - y1) * w * sizeof(float));
}

/* im2col's block of kernel offset (u, v) in general (any stride, any
 * padding): one output row y at a time.  A loop rather than memcpy for
 * the valid part: rows are short (Wo floats) and the call overhead
 * dominated. */
static void im2col_block_rows(const eg_conv_shape *s, int ho, int wo,
			      const float *restrict xc, int u, int off, int x0,
			      int x1, float *restrict dst)
{
	int stride = s->stride;

	for (int y = 0; y < ho; y++, dst += wo) {
		int iy = y * stride - s->pad + u;
		const float *src;

		if (iy < 0 || iy >= s->h) {
			memset(dst, 0, (size_t)wo * sizeof(float));
			continue;
		}
		src = xc + (size_t)iy * s->w;
		for (int t = 0; t < x0; t++)
			dst[t] = 0.0f;
		if (stride == 1)
			for (int t = x0; t < x1; t++)
				dst[t] = src[t + off];
		else
			for (int t = x0; t < x1; t++)
				dst[t] = src[t * stride + off];
		for (int t = x1; t < wo; t++)
			dst[t] = 0.0f;
	}
}

void eg_conv_im2col(const eg_conv_shape *s, const float *restrict x,
		    float *restrict col)
{
	eg_conv_im2col_ld(s, x, col,
			  (size_t)eg_conv_out_h(s) * (size_t)eg_conv_out_w(s));
}

void eg_conv_im2col_ld(const eg_conv_shape *s, const float *restrict x,
		       float *restrict col, size_t ld)
{
	int ho = eg_conv_out_h(s), wo = eg_conv_out_w(s);
	int shifted = s->stride == 1 && wo == s->w;

	for (int c = 0; c < s->c; c++) {
		const float *xc = x + (size_t)c * s->h * s->w;

		for (int u = 0; u < s->k; u++)
			for (int v = 0; v < s->k; v++) {
				int x0, x1, off = v - s->pad;

				valid_cols(s, wo, v, &x0, &x1);
				if (shifted)
					im2col_block_shifted(s, ho, xc, u, off,
							     x0, x1, col);
				else
					im2col_block_rows(s, ho, wo, xc, u, off,
							  x0, x1, col);
				col += ld;
			}
	}
}

void eg_conv_col2im(const eg_conv_shape *s, const float *restrict col,
		    float *restrict x)
{
	eg_conv_col2im_ld(s, col,
			  (size_t)eg_conv_out_h(s) * (size_t)eg_conv_out_w(s), x);
}

void eg_conv_col2im_ld(const eg_conv_shape *s, const float *restrict col,
		       size_t ld, float *restrict x)
{
	int ho = eg_conv_out_h(s), wo = eg_conv_out_w(s);
	int stride = s->stride;

	memset(x, 0, eg_conv_in_len(s) * sizeof(float));
	for (int c = 0; c < s->c; c++) {
		float *xc = x + (size_t)c * s->h * s->w;

		for (int u = 0; u < s->k; u++) {
			for (int v = 0; v < s->k; v++) {
				int x0, x1, off = v - s->pad;

				valid_cols(s, wo, v, &x0, &x1);
				for (int y = 0; y < ho; y++) {
					int iy = y * stride - s->pad + u;
					const float *src = col + (size_t)y * wo;

					if (iy < 0 || iy >= s->h)
						continue;
					/* Indexing the row, not offsetting the
					 * pointer: off may be negative. */
					float *dst = xc + (size_t)iy * s->w;

					if (stride == 1)
						for (int t = x0; t < x1; t++)
							dst[t + off] += src[t];
					else
						for (int t = x0; t < x1; t++)
							dst[t * stride + off] +=
							    src[t];
				}
				col += ld;
			}
		}
	}
}

/* Sum of one output map: eight float partial sums (independent, so the
 * compiler can keep them in one vector register instead of waiting on one
 * accumulator per add), combined in double.  Each partial adds at most
 * Ho Wo / 8 terms, so float keeps about 7 significant digits there. */
static double row_sum(const float *g, int len)
{
	float part[8] = {0};
	double acc = 0.0;
	int t = 0;

	for (; t + 8 <= len; t += 8)
		for (int j = 0; j < 8; j++)
			part[j] += g[t + j];
	for (; t < len; t++)
		acc += g[t];
	for (int j = 0; j < 8; j++)
		acc += part[j];
	return acc;
}

/* Checks the shape, the batch and the scratch of a convolution call. */
static int conv_args(const eg_conv_shape *s, size_t n, const void *scratch,
		     size_t scratch_size)
{
	size_t need;

	if (eg_conv_check(s, NULL) != EG_OK || n == 0)
		return EG_EINVAL;
	need = eg_conv_scratch_size(s);
	if (need > 0 && (scratch == NULL || scratch_size < need))
		return EG_EINVAL;
	return EG_OK;
}

int eg_conv_forward(const eg_conv_shape *s, size_t n, const float *x,
		    const float *w, const float *b, float *out, void *scratch,
		    size_t scratch_size)
{
	int rc = conv_args(s, n, scratch, scratch_size);
	int hw, ckk;
	size_t in_len, out_len;
	float *col = scratch;

	if (rc != EG_OK)
		return rc;
	hw = eg_conv_out_h(s) * eg_conv_out_w(s);
	ckk = s->c * s->k * s->k;
	in_len = eg_conv_in_len(s);
	out_len = eg_conv_out_len(s);
	for (size_t i = 0; i < n; i++) {
		const float *xi = x + i * in_len;
		float *oi = out + i * out_len;
		const float *src = xi;
		float beta = 0.0f;

		if (!is_pointwise(s)) {
			eg_conv_im2col(s, xi, col);
			src = col;
		}
		/* The bias is written first and sgemm adds onto it, which
		 * saves a second pass over the output. */
		if (b != NULL) {
			for (int f = 0; f < s->f; f++) {
				float *row = oi + (size_t)f * hw;

				for (int t = 0; t < hw; t++)
					row[t] = b[f];
			}
			beta = 1.0f;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->f, hw,
			    ckk, 1.0f, w, ckk, src, hw, beta, oi, hw);
	}
	return EG_OK;
}

int eg_conv_backward(const eg_conv_shape *s, size_t n, const float *x,
		     const float *w, const float *dout, float *dw, float *db,
		     float *dx, void *scratch, size_t scratch_size)
{
	int rc = conv_args(s, n, scratch, scratch_size);
	int hw, ckk;
	size_t in_len, out_len;
	float *col = scratch;

	if (rc != EG_OK)
		return rc;
	hw = eg_conv_out_h(s) * eg_conv_out_w(s);
	ckk = s->c * s->k * s->k;
	in_len = eg_conv_in_len(s);
	out_len = eg_conv_out_len(s);
	if (db != NULL) {
		/* Double accumulation: a 64-example batch of 28 x 28 maps sums
		 * 50,000 terms per filter. */
		for (int f = 0; f < s->f; f++) {
			double acc = 0.0;

			for (size_t i = 0; i < n; i++)
				acc += row_sum(
				    dout + i * out_len + (size_t)f * hw, hw);
			db[f] = (float)acc;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const float *gi = dout + i * out_len;

		if (dw != NULL) {
			const float *src = x + i * in_len;

			if (!is_pointwise(s)) {
				eg_conv_im2col(s, src, col);
				src = col;
			}
			/* dW (F x CKK) (+)= dOut_i (F x HW) col_i^T */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
				    s->f, ckk, hw, 1.0f, gi, hw, src, hw,
				    i == 0 ? 0.0f : 1.0f, dw, ckk);
		}
		if (dx != NULL) {
			float *xi = dx + i * in_len;
			/* dcol (CKK x HW) = W^T (CKK x F) dOut_i (F x HW); a
			 * pointwise layer's dcol is dx_i itself. */
			float *dst = is_pointwise(s) ? xi : col;

			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
				    ckk, hw, s->f, 1.0f, w, ckk, gi, hw, 0.0f,
				    dst, hw);
			if (!is_pointwise(s))
				eg_conv_col2im(s, col, xi);
		}
	}
	return EG_OK;
}

int eg_pool_check(const eg_pool_shape *s, eg_diag *d)
{
	if (s == NULL)
		return eg_diag_set(d, EG_EINVAL, "pool: no shape");
	if (s->c < 1 || s->h < 1 || s->w < 1 || s->p < 1)
		return eg_diag_set(d, EG_EINVAL,
				   "pool: sizes must be positive (c=%d h=%d "
				   "w=%d pool=%d)",
				   s->c, s->h, s->w, s->p);
	if (s->p > s->h || s->p > s->w)
		return eg_diag_set(
		    d, EG_EINVAL, "pool: window %d larger than the %dx%d input",
		    s->p, s->h, s->w);
	if ((long long)s->c * s->h * s->w > INT32_MAX)
		return eg_diag_set(d, EG_ETOO_BIG,
				   "pool: %dx%dx%d input is too large for "
				   "int32 indices",
				   s->c, s->h, s->w);
	return EG_OK;
}

int eg_pool_out_h(const eg_pool_shape *s)
{
	return s->h / s->p;
}

int eg_pool_out_w(const eg_pool_shape *s)
{
	return s->w / s->p;
}

size_t eg_pool_in_len(const eg_pool_shape *s)
{
	return (size_t)s->c * (size_t)s->h * (size_t)s->w;
}

size_t eg_pool_out_len(const eg_pool_shape *s)
{
	return (size_t)s->c * (size_t)eg_pool_out_h(s) *
	       (size_t)eg_pool_out_w(s);
}

/* The first maximum of the p x p window whose top-left input is xi[at0]
 * (rows w apart); its index goes to *at.  Strict '>' keeps the first of
 * equal values; a NaN is taken when first seen and then kept. */
static float window_max(const float *xi, int32_t at0, int w, int p, int32_t *at)
{
	float best = xi[at0];

	*at = at0;
	for (int u = 0; u < p; u++) {
		int32_t row = at0 + (int32_t)u * w;

		for (int v = 0; v < p; v++) {
			float t = xi[row + v];

			if (isnan(t)) {
				*at = row + v;
				return t;
			}
			if (t > best) {
				best = t;
				*at = row + v;
			}
		}
	}
	return best;
}

int eg_pool_forward(const eg_pool_shape *s, size_t n, const float *x,
		    float *out, int32_t *argmax)
{
	int ho, wo, p;
	size_t in_len, out_len;

	if (eg_pool_check(s, NULL) != EG_OK || n == 0)
		return EG_EINVAL;
	ho = eg_pool_out_h(s);
	wo = eg_pool_out_w(s);
	p = s->p;
	in_len = eg_pool_in_len(s);
	out_len = eg_pool_out_len(s);
	for (size_t i = 0; i < n; i++) {
		const float *xi = x + i * in_len;
		float *oi = out + i * out_len;
		int32_t *ai = argmax != NULL ? argmax + i * out_len : NULL;

		for (int c = 0; c < s->c; c++)
			for (int y = 0; y < ho; y++)
				for (int xo = 0; xo < wo; xo++) {
					int32_t at0 = ((int32_t)c * s->h +
						       (int32_t)y * p) *
							  s->w +
						      (int32_t)xo * p;
					int32_t at;

					*oi++ =
					    window_max(xi, at0, s->w, p, &at);
					if (ai != NULL)
						*ai++ = at;
				}
	}
	return EG_OK;
}

int eg_pool_backward(const eg_pool_shape *s, size_t n, const float *dout,
		     const int32_t *argmax, float *dx)
{
	size_t in_len, out_len;

	if (eg_pool_check(s, NULL) != EG_OK || n == 0)
		return EG_EINVAL;
	in_len = eg_pool_in_len(s);
	out_len = eg_pool_out_len(s);
	memset(dx, 0, n * in_len * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		float *di = dx + i * in_len;
		const float *gi = dout + i * out_len;
		const int32_t *ai = argmax + i * out_len;

		/* Windows do not overlap, so each input gets at most one
		 * term; '+=' keeps that true even if they did. */
		for (size_t t = 0; t < out_len; t++)
			di[ai[t]] += gi[t];
	}
	return EG_OK;
}
