/*
 * qdense.c - fixed-point and float per-layer inference of a dense stack.
 *
 * The fixed-point pass keeps every number as an int64_t code and does all
 * arithmetic in integers: a product of two codes is formed in __int128
 * (at most 2 * 63 + 1 bits, exact), and each accumulation step goes
 * through eg_fx_add_requant, which forms acc + product exactly and assigns
 * it to the accumulator type.  That per-step assignment is the reason the
 * inner loop is not a plain dot product: with TRN or SAT an accumulator
 * narrower than the products changes the result at every step, and the
 * model has to be bit-exact with the design.
 *
 * Scratch layout (int64_t, in this order): the weight codes of every layer,
 * the bias codes of every layer (rows each, also for layers without bias,
 * to keep the offsets simple), the input codes (n x cols of layer 0).
 * The activation outputs double as the next layer's input codes, so no
 * per-layer buffer is needed.
 *
 * The float pass ping-pongs between two n x max_width float buffers: the
 * dense output and activation are computed in place in one, widened into
 * `out`, and the next layer reads it while writing the other.
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "kernels/net_int.h"
#include "kernels/qdense.h"

int eg_qdense_types_hls(int word_bits, int int_bits, const char *round,
			const char *overflow, int accum_bits,
			int accum_int_bits, eg_qdense_types *out,
			eg_diag *d)
{
	eg_fx_round q;
	eg_fx_ovf o;
	int rc;

	if ((rc = eg_fx_round_parse(round, &q, d)) != EG_OK)
		return eg_diag_prefix(d, rc, "hls.round");
	if ((rc = eg_fx_ovf_parse(overflow, &o, d)) != EG_OK)
		return eg_diag_prefix(d, rc, "hls.overflow");
	if ((rc = eg_fx_type_init(&out->weight, word_bits, int_bits, q, o,
				  d)) != EG_OK)
		return eg_diag_prefix(d, rc, "hls.word_bits/hls.int_bits");
	if ((rc = eg_fx_type_init(&out->accum, accum_bits, accum_int_bits, q,
				  o, d)) != EG_OK)
		return eg_diag_prefix(d, rc,
				      "hls.accum_bits/hls.accum_int_bits");
	out->bias = out->weight;
	out->act = out->weight;
	return EG_OK;
}

int eg_qdense_from_net(eg_net *net, eg_qdense_layer *layers, int max,
		       int *n_layers)
{
	int L = eg_net_config_of(net)->n_hidden + 1;

	if (L > max)
		return EG_ERANGE;
	for (int l = 0; l < L; l++) {
		float *w, *b;
		int rc = eg_net_layer(net, l, &w, &b, &layers[l].rows,
				      &layers[l].cols);
		if (rc != EG_OK)
			return rc;
		layers[l].w = w;
		layers[l].b = b;
	}
	*n_layers = L;
	return EG_OK;
}

int eg_qdense_check(const eg_qdense_layer *layers, int n_layers, eg_diag *d)
{
	if (layers == NULL || n_layers < 1)
		return eg_diag_set(d, EG_EINVAL, "dense stack: no layers");
	for (int l = 0; l < n_layers; l++) {
		const eg_qdense_layer *y = &layers[l];

		if (y->rows < 1 || y->cols < 1 || y->w == NULL)
			return eg_diag_set(d, EG_EINVAL,
					   "dense layer %d: %d x %d%s", l,
					   y->rows, y->cols,
					   y->w == NULL ? " without weights"
							: "");
		if (l > 0 && y->cols != layers[l - 1].rows)
			return eg_diag_set(d, EG_EINVAL,
					   "dense layer %d takes %d inputs but "
					   "layer %d has %d outputs",
					   l, y->cols, l - 1, layers[l - 1].rows);
	}
	return EG_OK;
}

size_t eg_qdense_output_offset(const eg_qdense_layer *layers, int n_layers,
			       size_t n, int j, size_t *len)
{
	size_t off = 0;

	for (int k = 0; k < j && k < eg_qdense_output_count(n_layers); k++)
		off += n * (size_t)layers[k / 2].rows;
	if (len != NULL)
		*len = n * (size_t)layers[j / 2].rows;
	return off;
}

size_t eg_qdense_outputs_len(const eg_qdense_layer *layers, int n_layers,
			     size_t n)
{
	return eg_qdense_output_offset(layers, n_layers, n,
				       eg_qdense_output_count(n_layers) - 1,
				       NULL) +
	       n * (size_t)layers[n_layers - 1].rows;
}

size_t eg_qdense_scratch_size(const eg_qdense_layer *layers, int n_layers,
			      size_t n)
{
	size_t words = n * (size_t)layers[0].cols;

	for (int l = 0; l < n_layers; l++)
		words += (size_t)layers[l].rows * ((size_t)layers[l].cols + 1);
	return words * sizeof(int64_t);
}

static int check_scratch(const void *scratch, size_t have, size_t need,
			 size_t align, eg_diag *d)
{
	if (have < need || (need > 0 && scratch == NULL))
		return eg_diag_set(d, EG_EINVAL,
				   "scratch of %zu bytes, %zu needed", have,
				   need);
	if ((uintptr_t)scratch % align != 0)
		return eg_diag_set(d, EG_EINVAL,
				   "scratch not aligned to %zu bytes", align);
	return EG_OK;
}

/* phi of a code of t, for the activations that are not piecewise linear. */
static int64_t act_code(const eg_fx_type *t, eg_act act, int64_t c)
{
	double v = eg_fx_value(t, c), p;

	switch (act) {
	case EG_ACT_RELU: return c > 0 ? c : 0;
	case EG_ACT_LINEAR: return c;
	case EG_ACT_SIN: p = sin(v); break;
	case EG_ACT_TANH: p = tanh(v); break;
	case EG_ACT_SIGMOID: p = 1.0 / (1.0 + exp(-v)); break;
	default: p = v; break;
	}
	return eg_fx_from_double(t, p, NULL);
}

/* One dense layer: out (n x rows) = Q_act(Q_acc(b + sum_k w x_k)). */
static void dense_fixed(const eg_qdense_types *ty, const int64_t *wq,
			const int64_t *bq, int rows, int cols,
			const int64_t *in, size_t n, int64_t *out)
{
	const eg_fx_type *acc_t = &ty->accum;
	int fp = eg_fx_frac(&ty->weight) + eg_fx_frac(&ty->act);
	int fb = eg_fx_frac(&ty->bias), fa = eg_fx_frac(acc_t);

	for (size_t i = 0; i < n; i++) {
		const int64_t *x = in + i * (size_t)cols;

		for (int o = 0; o < rows; o++) {
			const int64_t *w = wq + (size_t)o * (size_t)cols;
			int64_t acc = bq != NULL
				? eg_fx_requant(acc_t, bq[o], fb, NULL) : 0;

			for (int k = 0; k < cols; k++)
				acc = eg_fx_add_requant(
					acc_t, acc, (__int128)w[k] * x[k], fp,
					NULL);
			out[i * (size_t)rows + (size_t)o] =
				eg_fx_requant(&ty->act, acc, fa, NULL);
		}
	}
}

int eg_qdense_forward(const eg_qdense_types *ty, eg_act act,
		      const eg_qdense_layer *layers, int n_layers,
		      const float *x, size_t n, void *scratch,
		      size_t scratch_size, int64_t *codes, double *values,
		      eg_diag *d)
{
	int rc = eg_qdense_check(layers, n_layers, d);

	if (rc != EG_OK)
		return rc;
	rc = check_scratch(scratch, scratch_size,
			   eg_qdense_scratch_size(layers, n_layers, n),
			   sizeof(int64_t), d);
	if (rc != EG_OK)
		return rc;

	int64_t *wq = scratch, *p = wq;
	for (int l = 0; l < n_layers; l++)
		p += (size_t)layers[l].rows * (size_t)layers[l].cols;
	int64_t *bq = p;
	for (int l = 0; l < n_layers; l++)
		p += layers[l].rows;
	int64_t *xq = p;

	eg_fx_quantize_f32(&ty->act, x, n * (size_t)layers[0].cols, xq, NULL);
	int64_t *wl = wq, *bl = bq;
	const int64_t *in = xq;
	for (int l = 0; l < n_layers; l++) {
		const eg_qdense_layer *y = &layers[l];
		size_t nw = (size_t)y->rows * (size_t)y->cols, len;
		int64_t *out = codes + eg_qdense_output_offset(
					       layers, n_layers, n, 2 * l, &len);

		eg_fx_quantize_f32(&ty->weight, y->w, nw, wl, NULL);
		if (y->b != NULL)
			eg_fx_quantize_f32(&ty->bias, y->b, (size_t)y->rows,
					   bl, NULL);
		dense_fixed(ty, wl, y->b != NULL ? bl : NULL, y->rows, y->cols,
			    in, n, out);
		if (l + 1 < n_layers) {
			int64_t *a = out + len;

			for (size_t k = 0; k < len; k++)
				a[k] = act_code(&ty->act, act, out[k]);
			in = a;
		}
		wl += nw;
		bl += y->rows;
	}
	if (values != NULL)
		eg_fx_values(&ty->act, codes,
			     eg_qdense_outputs_len(layers, n_layers, n),
			     values);
	return EG_OK;
}

static int max_width(const eg_qdense_layer *layers, int n_layers)
{
	int m = 0;

	for (int l = 0; l < n_layers; l++)
		if (layers[l].rows > m)
			m = layers[l].rows;
	return m;
}

size_t eg_qdense_float_scratch_size(const eg_qdense_layer *layers,
				    int n_layers, size_t n)
{
	return 2 * n * (size_t)max_width(layers, n_layers) * sizeof(float);
}

static void widen(const float *f, size_t len, double *out)
{
	for (size_t k = 0; k < len; k++)
		out[k] = (double)f[k];
}

int eg_qdense_float_forward(eg_act act, const eg_qdense_layer *layers,
			    int n_layers, const float *x, size_t n,
			    void *scratch, size_t scratch_size, double *out,
			    eg_diag *d)
{
	int rc = eg_qdense_check(layers, n_layers, d);

	if (rc != EG_OK)
		return rc;
	if (n > INT_MAX)
		return eg_diag_set(d, EG_EINVAL, "batch of %zu rows", n);
	rc = check_scratch(scratch, scratch_size,
			   eg_qdense_float_scratch_size(layers, n_layers, n),
			   sizeof(float), d);
	if (rc != EG_OK)
		return rc;

	float *buf[2] = {scratch,
			 (float *)scratch + n * (size_t)max_width(layers,
								  n_layers)};
	const float *in = x;
	for (int l = 0; l < n_layers; l++) {
		const eg_qdense_layer *y = &layers[l];
		float *o = buf[l % 2];
		size_t len;
		double *dst = out + eg_qdense_output_offset(layers, n_layers,
							    n, 2 * l, &len);

		/* The same call and epilogue order as net.c's forward, so
		 * the reference is bit-identical to eg_net_predict. */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n,
			    y->rows, y->cols, 1.0f, in, y->cols, y->w,
			    y->cols, 0.0f, o, y->rows);
		if (y->b != NULL)
			eg__act_epilogue(EG_ACT_LINEAR, o, y->b, n,
					 (size_t)y->rows, o, NULL);
		widen(o, len, dst);
		if (l + 1 < n_layers) {
			eg__act_epilogue(act, o, NULL, n, (size_t)y->rows, o,
					 NULL);
			widen(o, len, dst + len);
		}
		in = o;
	}
	return EG_OK;
}
