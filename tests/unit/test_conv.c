/*
 * test_conv.c - conv2d and max-pool layers (kernels/conv.h).
 *
 * The references are the test's own: a direct 7-loop convolution in double
 * (batch, filter, output row, output column, channel, kernel row, kernel
 * column) straight from the formula in conv.h, and central finite
 * differences of a scalar loss through eg_conv_forward / eg_pool_forward.
 *
 * Finite differences: the conv loss is L = 1/2 ||out - T||^2 in double.
 * The output is linear in each of w, b and x, so L is quadratic in each
 * parameter and a central difference is exact up to rounding whatever the
 * step; the step H_CONV = 1/8 (a power of two, so w +- h is exact for
 * |w| < 4) keeps the rounding of L (float outputs, ~1e-7 relative) far
 * below the tolerance.  The pool loss is <R, pool(x)> with inputs spaced
 * at least 1/16 apart within a window, so a step of 1/128 never changes an
 * argmax and the difference is exact up to rounding too.  Tolerances are
 * relative to the gradient's largest entry: a wrong index, a transposed
 * kernel or a missing batch term is off by O(1) of it, rounding by ~1e-6.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv.h"
#include "kernels/rng.h"
#include "tests/harness.h"

#define H_CONV 0.125
#define TOL_FD 2e-4
#define TOL_FWD 1e-5

struct case_ {
	int c, f, h, w, k, stride, pad, n;
	int bias;
};

/* K in {1, 3, 5}, non-square inputs, batch > 1; "same" padding, valid
 * (pad 0), strides 2 and 3, a pointwise kernel (no im2col) and a strided
 * 1 x 1 (im2col with k = 1), a kernel as wide as the padded input. */
static const struct case_ cases[] = {
    {1, 1, 4, 6, 1, 1, 0, 2, 1},
    {3, 2, 5, 4, 1, 1, 0, 3, 0},
    {2, 3, 5, 7, 3, 1, 1, 2, 1},
    {3, 2, 6, 5, 5, 1, 2, 2, 1},
    {1, 4, 7, 3, 5, 1, 2, 3, 0},
    {2, 2, 7, 6, 3, 2, 1, 2, 1},
    {2, 3, 6, 8, 3, 1, 0, 2, 1},
    {3, 2, 9, 7, 5, 2, 2, 2, 0},
    {2, 2, 5, 6, 1, 2, 0, 2, 1},
    {1, 2, 3, 5, 5, 1, 2, 2, 1},
    {4, 3, 4, 4, 3, 3, 2, 2, 1},
    /* Degenerate "same" shapes for im2col's shifted-block path: a
     * single column (no kernel column but the centre is ever valid),
     * kernels taller than the image; and a padding that is neither
     * "same" nor "valid". */
    {2, 1, 3, 1, 3, 1, 1, 2, 1},
    {1, 2, 2, 1, 5, 1, 2, 3, 1},
    {1, 2, 1, 4, 5, 1, 2, 2, 0},
    {2, 2, 6, 7, 5, 1, 1, 2, 1},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void shape_of(const struct case_ *t, eg_conv_shape *s)
{
	s->c = t->c;
	s->f = t->f;
	s->h = t->h;
	s->w = t->w;
	s->k = t->k;
	s->stride = t->stride;
	s->pad = t->pad;
}

static void fill_normal(float *a, size_t len, eg_rng *rng)
{
	for (size_t t = 0; t < len; t++)
		a[t] = (float)eg_rng_normal(rng);
}

static void *xmalloc(size_t bytes)
{
	void *p = malloc(bytes > 0 ? bytes : 1);

	EG_CHECK(p != NULL);
	return p;
}

/* One output of the direct convolution: the inner three loops (channel,
 * kernel row, kernel column) over example xi and filter wf, in double;
 * *mag receives the sum of |terms|, the scale of float rounding. */
static double ref_point(const eg_conv_shape *s, const float *xi,
			const float *wf, int y, int xo, double *mag)
{
	double acc = 0, m = 0;

	for (int c = 0; c < s->c; c++)
		for (int u = 0; u < s->k; u++)
			for (int v = 0; v < s->k; v++) {
				int iy = y * s->stride - s->pad + u;
				int ix = xo * s->stride - s->pad + v;
				double p;

				if (iy < 0 || iy >= s->h || ix < 0 ||
				    ix >= s->w)
					continue;
				p = (double)wf[(c * s->k + u) * s->k + v] *
				    xi[(c * s->h + iy) * s->w + ix];
				acc += p;
				m += fabs(p);
			}
	*mag = m;
	return acc;
}

/* out[i, f, y, x] and its rounding scale mag: the outer four loops. */
static void ref_conv(const eg_conv_shape *s, int n, const float *x,
		     const float *w, const float *b, double *out, double *mag)
{
	int ho = eg_conv_out_h(s), wo = eg_conv_out_w(s);
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		const float *xi = x + (size_t)i * eg_conv_in_len(s);

		for (int f = 0; f < s->f; f++) {
			const float *wf = w + (size_t)f * s->c * s->k * s->k;

			for (int y = 0; y < ho; y++)
				for (int xo = 0; xo < wo; xo++, o++) {
					double m;

					out[o] =
					    ref_point(s, xi, wf, y, xo, &m);
					mag[o] = m;
					if (b != NULL) {
						out[o] += b[f];
						mag[o] += fabs(b[f]);
					}
				}
		}
	}
}

EG_TEST(conv_output_sizes)
{
	eg_conv_shape s;
	eg_pool_shape p;
	eg_diag d;

	/* LeNet-ish: 28 -> same 5x5 -> 28 -> pool 2 -> 14 -> 5x5 -> 14 ->
	 * pool 2 -> 7 -> pool 2 -> 3 (odd: the last row and column drop). */
	eg_conv_shape_same(&s, 1, 28, 28, 32, 5);
	EG_CHECK_INT(s.pad, 2);
	EG_CHECK_INT(s.stride, 1);
	EG_CHECK_OK(eg_conv_check(&s, NULL));
	EG_CHECK_INT(eg_conv_out_h(&s), 28);
	EG_CHECK_INT(eg_conv_out_w(&s), 28);
	EG_CHECK_INT(eg_conv_weights_len(&s), 32 * 25);
	EG_CHECK_INT(eg_conv_col_len(&s), 25 * 784);
	EG_CHECK_INT(eg_conv_scratch_size(&s), 25 * 784 * sizeof(float));
	EG_CHECK_NEAR(eg_conv_macs(&s), 32.0 * 25 * 784, 0);
	p = (eg_pool_shape){32, 28, 28, 2};
	EG_CHECK_OK(eg_pool_check(&p, NULL));
	EG_CHECK_INT(eg_pool_out_h(&p), 14);
	EG_CHECK_INT(eg_pool_out_len(&p), 32 * 14 * 14);
	p = (eg_pool_shape){64, 7, 7, 2};
	EG_CHECK_INT(eg_pool_out_h(&p), 3);
	EG_CHECK_INT(eg_pool_out_w(&p), 3);
	EG_CHECK_INT(eg_pool_out_len(&p), 64 * 9);

	/* Odd and non-square: 13 x 11, 3x3, stride 2, pad 1 -> 7 x 6; pool 3
	 * -> 2 x 2; a valid 5x5 -> 9 x 7. */
	s = (eg_conv_shape){2, 13, 11, 4, 3, 2, 1};
	EG_CHECK_OK(eg_conv_check(&s, NULL));
	EG_CHECK_INT(eg_conv_out_h(&s), 7);
	EG_CHECK_INT(eg_conv_out_w(&s), 6);
	EG_CHECK_INT(eg_conv_out_len(&s), 4 * 7 * 6);
	p = (eg_pool_shape){4, 7, 6, 3};
	EG_CHECK_INT(eg_pool_out_h(&p), 2);
	EG_CHECK_INT(eg_pool_out_w(&p), 2);
	s = (eg_conv_shape){1, 13, 11, 1, 5, 1, 0};
	EG_CHECK_INT(eg_conv_out_h(&s), 9);
	EG_CHECK_INT(eg_conv_out_w(&s), 7);
	/* Pointwise needs no scratch. */
	s = (eg_conv_shape){3, 5, 5, 2, 1, 1, 0};
	EG_CHECK_INT(eg_conv_scratch_size(&s), 0);

	/* Rejected shapes name what is wrong. */
	s = (eg_conv_shape){1, 5, 5, 1, 3, 1, 3};
	EG_CHECK_INT(eg_conv_check(&s, &d), EG_EINVAL);
	EG_CHECK(strstr(d.msg, "pad") != NULL);
	s = (eg_conv_shape){1, 2, 9, 1, 5, 1, 1};
	EG_CHECK_INT(eg_conv_check(&s, &d), EG_EINVAL);
	EG_CHECK(strstr(d.msg, "larger") != NULL);
	s = (eg_conv_shape){1, 5, 5, 0, 3, 1, 1};
	EG_CHECK_INT(eg_conv_check(&s, NULL), EG_EINVAL);
	s = (eg_conv_shape){1, 5, 5, 1, 3, 0, 1};
	EG_CHECK_INT(eg_conv_check(&s, NULL), EG_EINVAL);
	s = (eg_conv_shape){65536, 256, 256, 1, 3, 1, 1};
	EG_CHECK_INT(eg_conv_check(&s, &d), EG_ETOO_BIG);
	p = (eg_pool_shape){1, 3, 5, 4};
	EG_CHECK_INT(eg_pool_check(&p, &d), EG_EINVAL);
	EG_CHECK(strstr(d.msg, "window") != NULL);
	p = (eg_pool_shape){1, 3, 5, 0};
	EG_CHECK_INT(eg_pool_check(&p, NULL), EG_EINVAL);
}

EG_TEST(conv_forward_matches_direct_loops)
{
	eg_rng rng;

	eg_rng_seed(&rng, 11);
	for (size_t ci = 0; ci < NCASES; ci++) {
		const struct case_ *t = &cases[ci];
		eg_conv_shape s;
		size_t nx, nw, no;
		float *x, *w, *b, *out;
		double *ref, *mag;
		void *scratch;

		shape_of(t, &s);
		EG_CHECK_OK(eg_conv_check(&s, NULL));
		nx = (size_t)t->n * eg_conv_in_len(&s);
		nw = eg_conv_weights_len(&s);
		no = (size_t)t->n * eg_conv_out_len(&s);
		x = xmalloc(nx * sizeof(float));
		w = xmalloc(nw * sizeof(float));
		b = xmalloc((size_t)s.f * sizeof(float));
		out = xmalloc(no * sizeof(float));
		ref = xmalloc(no * sizeof(double));
		mag = xmalloc(no * sizeof(double));
		scratch = xmalloc(eg_conv_scratch_size(&s));
		fill_normal(x, nx, &rng);
		fill_normal(w, nw, &rng);
		fill_normal(b, (size_t)s.f, &rng);
		for (size_t o = 0; o < no; o++)
			out[o] = NAN; /* every output must be written */
		EG_CHECK_OK(eg_conv_forward(&s, (size_t)t->n, x, w,
					    t->bias ? b : NULL, out, scratch,
					    eg_conv_scratch_size(&s)));
		ref_conv(&s, t->n, x, w, t->bias ? b : NULL, ref, mag);
		for (size_t o = 0; o < no; o++)
			EG_CHECK_MSG(fabs(out[o] - ref[o]) <=
					 TOL_FWD * mag[o] + 1e-30,
				     "case %zu output %zu: %.9g vs %.9g", ci, o,
				     out[o], ref[o]);
		free(x);
		free(w);
		free(b);
		free(out);
		free(ref);
		free(mag);
		free(scratch);
	}
}

/* <im2col(x), y> = <x, col2im(y)> for random x and y, and col2im of all
 * ones counts how many windows read each pixel (known answer for 3x3
 * "same" on 4 x 5: 4 at corners, 6 on edges, 9 inside). */
EG_TEST(im2col_col2im_adjoint)
{
	eg_rng rng;

	eg_rng_seed(&rng, 12);
	for (size_t ci = 0; ci < NCASES; ci++) {
		eg_conv_shape s;
		size_t nx, nc;
		float *x, *y, *col, *back;
		double lhs = 0, rhs = 0, mag = 0;

		shape_of(&cases[ci], &s);
		nx = eg_conv_in_len(&s);
		nc = eg_conv_col_len(&s);
		x = xmalloc(nx * sizeof(float));
		y = xmalloc(nc * sizeof(float));
		col = xmalloc(nc * sizeof(float));
		back = xmalloc(nx * sizeof(float));
		fill_normal(x, nx, &rng);
		fill_normal(y, nc, &rng);
		for (size_t t = 0; t < nx; t++)
			back[t] = NAN; /* col2im overwrites */
		eg_conv_im2col(&s, x, col);
		eg_conv_col2im(&s, y, back);
		for (size_t t = 0; t < nc; t++) {
			lhs += (double)col[t] * y[t];
			mag += fabs((double)col[t] * y[t]);
		}
		for (size_t t = 0; t < nx; t++)
			rhs += (double)x[t] * back[t];
		EG_CHECK_MSG(fabs(lhs - rhs) <= 1e-6 * mag,
			     "case %zu: %.9g vs %.9g", ci, lhs, rhs);
		free(x);
		free(y);
		free(col);
		free(back);
	}

	{
		eg_conv_shape s;
		float ones[9 * 20], cnt[20];

		eg_conv_shape_same(&s, 1, 4, 5, 1, 3);
		for (size_t t = 0; t < 9 * 20; t++)
			ones[t] = 1.0f;
		EG_CHECK_INT(eg_conv_col_len(&s), 9 * 20);
		eg_conv_col2im(&s, ones, cnt);
		for (int yy = 0; yy < 4; yy++)
			for (int xx = 0; xx < 5; xx++) {
				int ry = (yy == 0 || yy == 3) ? 2 : 3;
				int rx = (xx == 0 || xx == 4) ? 2 : 3;

				EG_CHECK_INT(cnt[yy * 5 + xx], ry * rx);
			}
	}
}

/* L = 1/2 ||conv(x, w, b) - T||^2 in double. */
static double conv_loss(const eg_conv_shape *s, int n, const float *x,
			const float *w, const float *b, const float *target,
			float *out, void *scratch)
{
	size_t no = (size_t)n * eg_conv_out_len(s);
	double l = 0;

	EG_CHECK_OK(eg_conv_forward(s, (size_t)n, x, w, b, out, scratch,
				    eg_conv_scratch_size(s)));
	for (size_t o = 0; o < no; o++) {
		double e = (double)out[o] - target[o];

		l += 0.5 * e * e;
	}
	return l;
}

static double max_abs(const float *a, size_t len)
{
	double m = 0;

	for (size_t t = 0; t < len; t++)
		if (fabs(a[t]) > m)
			m = fabs(a[t]);
	return m;
}

/* Central difference of conv_loss in parameter p[j], compared with g[j]
 * for every j (the shapes are small enough to check them all). */
static void fd_check(const char *what, size_t ci, const eg_conv_shape *s, int n,
		     float *x, float *w, float *b, const float *target,
		     float *out, void *scratch, float *p, size_t len,
		     const float *g)
{
	double gmax = max_abs(g, len);

	EG_CHECK_MSG(gmax > 0, "case %zu: %s gradient is all zero", ci, what);
	for (size_t j = 0; j < len; j++) {
		float keep = p[j];
		double lp, lm, fd;

		p[j] = keep + (float)H_CONV;
		lp = conv_loss(s, n, x, w, b, target, out, scratch);
		p[j] = keep - (float)H_CONV;
		lm = conv_loss(s, n, x, w, b, target, out, scratch);
		p[j] = keep;
		fd = (lp - lm) / (2 * H_CONV);
		EG_CHECK_MSG(fabs(fd - g[j]) <= TOL_FD * gmax,
			     "case %zu: d%s[%zu] = %.9g, finite difference "
			     "%.9g (max %.3g)",
			     ci, what, j, g[j], fd, gmax);
	}
}

EG_TEST(conv_backward_finite_differences)
{
	eg_rng rng;

	eg_rng_seed(&rng, 13);
	for (size_t ci = 0; ci < NCASES; ci++) {
		const struct case_ *t = &cases[ci];
		eg_conv_shape s;
		size_t nx, nw, no, ss;
		float *x, *w, *b, *bias, *target, *out, *dout, *dx, *dw, *db;
		float *dx2, *dw2, *db2;
		void *scratch;

		shape_of(t, &s);
		nx = (size_t)t->n * eg_conv_in_len(&s);
		nw = eg_conv_weights_len(&s);
		no = (size_t)t->n * eg_conv_out_len(&s);
		ss = eg_conv_scratch_size(&s);
		x = xmalloc(nx * sizeof(float));
		w = xmalloc(nw * sizeof(float));
		b = xmalloc((size_t)s.f * sizeof(float));
		target = xmalloc(no * sizeof(float));
		out = xmalloc(no * sizeof(float));
		dout = xmalloc(no * sizeof(float));
		dx = xmalloc(nx * sizeof(float));
		dw = xmalloc(nw * sizeof(float));
		db = xmalloc((size_t)s.f * sizeof(float));
		dx2 = xmalloc(nx * sizeof(float));
		dw2 = xmalloc(nw * sizeof(float));
		db2 = xmalloc((size_t)s.f * sizeof(float));
		scratch = xmalloc(ss);
		fill_normal(x, nx, &rng);
		fill_normal(w, nw, &rng);
		fill_normal(b, (size_t)s.f, &rng);
		fill_normal(target, no, &rng);
		bias = t->bias ? b : NULL;

		conv_loss(&s, t->n, x, w, bias, target, out, scratch);
		for (size_t o = 0; o < no; o++)
			dout[o] = out[o] - target[o];
		/* NaN fill: the outputs must be overwritten, not added to. */
		for (size_t j = 0; j < nx; j++)
			dx[j] = NAN;
		for (size_t j = 0; j < nw; j++)
			dw[j] = NAN;
		for (int j = 0; j < s.f; j++)
			db[j] = NAN;
		EG_CHECK_OK(eg_conv_backward(&s, (size_t)t->n, x, w, dout, dw,
					     db, dx, scratch, ss));
		fd_check("w", ci, &s, t->n, x, w, bias, target, out, scratch, w,
			 nw, dw);
		fd_check("x", ci, &s, t->n, x, w, bias, target, out, scratch, x,
			 nx, dx);
		if (bias != NULL)
			fd_check("b", ci, &s, t->n, x, w, bias, target, out,
				 scratch, b, (size_t)s.f, db);

		/* Skipping outputs changes none of the others: dx alone,
		 * then dw and db alone, bit for bit. */
		EG_CHECK_OK(eg_conv_backward(&s, (size_t)t->n, x, w, dout, NULL,
					     NULL, dx2, scratch, ss));
		EG_CHECK(memcmp(dx, dx2, nx * sizeof(float)) == 0);
		EG_CHECK_OK(eg_conv_backward(&s, (size_t)t->n, x, NULL, dout,
					     dw2, db2, NULL, scratch, ss));
		EG_CHECK(memcmp(dw, dw2, nw * sizeof(float)) == 0);
		EG_CHECK(memcmp(db, db2, (size_t)s.f * sizeof(float)) == 0);

		free(x);
		free(w);
		free(b);
		free(target);
		free(out);
		free(dout);
		free(dx);
		free(dw);
		free(db);
		free(dx2);
		free(dw2);
		free(db2);
		free(scratch);
	}
}

EG_TEST(conv_rejects_bad_calls)
{
	eg_conv_shape s;
	float x[2 * 16], w[9], out[2 * 16];
	float scratch[9 * 16];

	eg_conv_shape_same(&s, 1, 4, 4, 1, 3);
	memset(x, 0, sizeof(x));
	memset(w, 0, sizeof(w));
	EG_CHECK_INT(
	    eg_conv_forward(&s, 0, x, w, NULL, out, scratch, sizeof(scratch)),
	    EG_EINVAL);
	EG_CHECK_INT(eg_conv_forward(&s, 2, x, w, NULL, out, scratch,
				     sizeof(scratch) - 1),
		     EG_EINVAL);
	EG_CHECK_INT(
	    eg_conv_forward(&s, 2, x, w, NULL, out, NULL, sizeof(scratch)),
	    EG_EINVAL);
	EG_CHECK_INT(
	    eg_conv_backward(&s, 2, x, w, out, NULL, NULL, x, scratch, 8),
	    EG_EINVAL);
	s.pad = 3; /* pad must stay below the kernel side */
	EG_CHECK_INT(
	    eg_conv_forward(&s, 2, x, w, NULL, out, scratch, sizeof(scratch)),
	    EG_EINVAL);
}

/* Inputs of one example: a random permutation of 0 .. len-1 times 1/16,
 * so every two values differ by at least 1/16. */
static void fill_distinct(float *a, size_t len, eg_rng *rng)
{
	int32_t *perm = xmalloc(len * sizeof(int32_t));

	for (size_t t = 0; t < len; t++)
		perm[t] = (int32_t)t;
	eg_rng_shuffle(rng, perm, len);
	for (size_t t = 0; t < len; t++)
		a[t] = (float)perm[t] / 16.0f - (float)len / 32.0f;
	free(perm);
}

EG_TEST(pool_backward_finite_differences)
{
	/* Odd sizes drop trailing rows/columns; p = 1 is the identity. */
	static const eg_pool_shape shapes[] = {
	    {1, 4, 4, 2}, {2, 7, 5, 2}, {3, 9, 9, 3},
	    {2, 6, 4, 4}, {1, 5, 3, 1}, {2, 8, 11, 3},
	};
	const int n = 3;
	const double h = 1.0 / 128;
	eg_rng rng;

	eg_rng_seed(&rng, 14);
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		const eg_pool_shape *s = &shapes[si];
		size_t nx = (size_t)n * eg_pool_in_len(s);
		size_t no = (size_t)n * eg_pool_out_len(s);
		float *x = xmalloc(nx * sizeof(float));
		float *r = xmalloc(no * sizeof(float));
		float *out = xmalloc(no * sizeof(float));
		float *dx = xmalloc(nx * sizeof(float));
		int32_t *am = xmalloc(no * sizeof(int32_t));
		size_t hits = 0;

		EG_CHECK_OK(eg_pool_check(s, NULL));
		for (int i = 0; i < n; i++)
			fill_distinct(x + (size_t)i * eg_pool_in_len(s),
				      eg_pool_in_len(s), &rng);
		fill_normal(r, no, &rng);
		EG_CHECK_OK(eg_pool_forward(s, (size_t)n, x, out, am));
		for (size_t j = 0; j < nx; j++)
			dx[j] = NAN;
		EG_CHECK_OK(eg_pool_backward(s, (size_t)n, r, am, dx));
		for (size_t j = 0; j < nx; j++) {
			float keep = x[j];
			double lp = 0, lm = 0, fd;

			x[j] = keep + (float)h;
			EG_CHECK_OK(
			    eg_pool_forward(s, (size_t)n, x, out, NULL));
			for (size_t o = 0; o < no; o++)
				lp += (double)r[o] * out[o];
			x[j] = keep - (float)h;
			EG_CHECK_OK(
			    eg_pool_forward(s, (size_t)n, x, out, NULL));
			for (size_t o = 0; o < no; o++)
				lm += (double)r[o] * out[o];
			x[j] = keep;
			fd = (lp - lm) / (2 * h);
			EG_CHECK_MSG(fabs(fd - dx[j]) <= 1e-4 * (1 + fabs(fd)),
				     "shape %zu dx[%zu] = %.9g, fd %.9g", si, j,
				     dx[j], fd);
			hits += dx[j] != 0.0f;
		}
		/* Exactly one input per window receives gradient. */
		EG_CHECK_INT(hits, no);
		free(x);
		free(r);
		free(out);
		free(dx);
		free(am);
	}
}

EG_TEST(pool_known_answers_ties_and_nan)
{
	/* One example, 2 channels of 3 x 5, 2 x 2 windows -> 1 x 2 each;
	 * the last row and column are outside every window. */
	/* clang-format off */
	static const float x[2 * 15] = {
		/* channel 0: window (0,0) is all 5s; window (0,1) has
		 * two 3s, at (0,3) and (1,2) */
		5, 5, 1, 3, 99,
		5, 5, 3, 2, 99,
		99, 99, 99, 99, 99,
		/* channel 1: a NaN after a larger value, and -inf only */
		7, NAN, -INFINITY, -INFINITY, 0,
		1, 2, -INFINITY, -INFINITY, 0,
		0, 0, 0, 0, 0,
	};
	/* clang-format on */
	eg_pool_shape s = {2, 3, 5, 2};
	float out[4], g[4] = {1, 2, 3, 4}, dx[30];
	int32_t am[4];

	EG_CHECK_INT(eg_pool_out_len(&s), 4);
	EG_CHECK_OK(eg_pool_forward(&s, 1, x, out, am));
	/* Ties go to the first maximum: (0,0) of the first window. */
	EG_CHECK(out[0] == 5.0f);
	EG_CHECK_INT(am[0], 0);
	/* ...and in the second window (columns 2-3) the first 3 in
	 * row-major order is at row 0, column 3, not row 1, column 2. */
	EG_CHECK(out[1] == 3.0f);
	EG_CHECK_INT(am[1], 3);
	/* A NaN wins over a larger earlier value and is reported. */
	EG_CHECK(isnan(out[2]));
	EG_CHECK_INT(am[2], 15 + 1);
	EG_CHECK(out[3] == -INFINITY);
	EG_CHECK_INT(am[3], 15 + 2);

	EG_CHECK_OK(eg_pool_backward(&s, 1, g, am, dx));
	for (int t = 0; t < 30; t++) {
		float want = t == 0    ? 1
			     : t == 3  ? 2
			     : t == 16 ? 3
			     : t == 17 ? 4
				       : 0;

		EG_CHECK_MSG(dx[t] == want, "dx[%d] = %g, want %g", t, dx[t],
			     want);
	}
	EG_CHECK_INT(eg_pool_forward(&s, 0, x, out, am), EG_EINVAL);
	s.p = 4;
	EG_CHECK_INT(eg_pool_forward(&s, 1, x, out, am), EG_EINVAL);
	EG_CHECK_INT(eg_pool_backward(&s, 1, g, am, dx), EG_EINVAL);
}

EG_TEST_MAIN(
    {"conv_output_sizes", conv_output_sizes, 10},
    {"conv_forward_matches_direct_loops", conv_forward_matches_direct_loops,
     10},
    {"im2col_col2im_adjoint", im2col_col2im_adjoint, 10},
    {"conv_backward_finite_differences", conv_backward_finite_differences, 30},
    {"conv_rejects_bad_calls", conv_rejects_bad_calls, 10},
    {"pool_backward_finite_differences", pool_backward_finite_differences, 10},
    {"pool_known_answers_ties_and_nan", pool_known_answers_ties_and_nan, 10})
