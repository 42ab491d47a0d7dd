/*
 * fixed.c - ap_fixed quantization in exact integer arithmetic.
 *
 * Every entry point reduces to one question: given an exact value
 * base * 2^-F + v * 2^-vfrac (base a code of the target type, v any 128-bit
 * integer), what code does HLS assign?  The answer is computed as
 *
 *     q  = floor(value * 2^F)       (an integer, usually an __int128)
 *     qb = first dropped bit, r = OR of the lower dropped bits
 *     q += round increment(qb, r, sign, lsb of q)
 *     overflow mode on q
 *
 * Two cases make the floor easy.  If vfrac <= F nothing is dropped: the
 * value is base + (v << (F - vfrac)).  If vfrac > F, with d = vfrac - F,
 * floor(base + v / 2^d) = base + (v >> d) (arithmetic shift), and the dropped
 * bits are exactly the low d bits of v's two's complement form (bits above
 * bit 127 are copies of the sign), because base is an integer.
 *
 * The only thing that can outgrow 128 bits is the left shift (a huge double,
 * or a narrow code requantized into a type with many more fraction bits).
 * Such a value is far outside every W <= 64 type, so it is carried as
 * "huge" with its sign, plus its residue modulo 2^128 - which is all WRAP
 * needs, since WRAP keeps only the low W <= 64 bits.
 *
 * Invariant relied on by finish(): when huge == 0, |q| < 2^127 - 1, so the
 * round increment cannot overflow.  In the right-shift case
 * |v >> d| <= 2^126 and |base| <= 2^63; in the left-shift case nothing is
 * dropped, so the increment is 0.
 */
#include <math.h>
#include <string.h>

#include "kernels/fixed.h"

typedef __int128 i128;
typedef unsigned __int128 u128;

static const char *const round_names[] = {
	[EG_FX_TRN] = "trn",
	[EG_FX_RND] = "rnd",
	[EG_FX_RND_ZERO] = "rnd_zero",
	[EG_FX_RND_MIN_INF] = "rnd_min_inf",
	[EG_FX_RND_INF] = "rnd_inf",
	[EG_FX_RND_CONV] = "rnd_conv",
	[EG_FX_TRN_ZERO] = "trn_zero",
};

static const char *const ovf_names[] = {
	[EG_FX_WRAP] = "wrap",
	[EG_FX_SAT] = "sat",
	[EG_FX_SAT_SYM] = "sat_sym",
};

#define NROUND (sizeof(round_names) / sizeof(round_names[0]))
#define NOVF (sizeof(ovf_names) / sizeof(ovf_names[0]))

int eg_fx_type_init(eg_fx_type *t, int w, int i, eg_fx_round round,
		    eg_fx_ovf ovf, eg_diag *d)
{
	if (w < 1 || w > 64)
		return eg_diag_set(d, EG_ERANGE,
				   "fixed-point word of %d bits: must be 1 to 64",
				   w);
	if (i < EG_FX_I_MIN || i > EG_FX_I_MAX)
		return eg_diag_set(d, EG_ERANGE,
				   "fixed-point integer bits %d: must be %d to %d",
				   i, EG_FX_I_MIN, EG_FX_I_MAX);
	if ((unsigned)round >= NROUND)
		return eg_diag_set(d, EG_EINVAL, "unknown rounding mode %d",
				   (int)round);
	if ((unsigned)ovf >= NOVF)
		return eg_diag_set(d, EG_EINVAL, "unknown overflow mode %d",
				   (int)ovf);
	t->w = w;
	t->i = i;
	t->round = round;
	t->ovf = ovf;
	return EG_OK;
}

int eg_fx_round_parse(const char *name, eg_fx_round *out, eg_diag *d)
{
	for (size_t k = 0; name != NULL && k < NROUND; k++) {
		if (strcmp(name, round_names[k]) == 0) {
			*out = (eg_fx_round)k;
			return EG_OK;
		}
	}
	return eg_diag_set(d, EG_EINVAL,
			   "rounding mode \"%s\": expected trn, rnd, rnd_zero, "
			   "rnd_min_inf, rnd_inf, rnd_conv or trn_zero",
			   name != NULL ? name : "(null)");
}

int eg_fx_ovf_parse(const char *name, eg_fx_ovf *out, eg_diag *d)
{
	for (size_t k = 0; name != NULL && k < NOVF; k++) {
		if (strcmp(name, ovf_names[k]) == 0) {
			*out = (eg_fx_ovf)k;
			return EG_OK;
		}
	}
	return eg_diag_set(d, EG_EINVAL,
			   "overflow mode \"%s\": expected wrap, sat or sat_sym",
			   name != NULL ? name : "(null)");
}

const char *eg_fx_round_name(eg_fx_round r)
{
	return (unsigned)r < NROUND ? round_names[r] : "?";
}

const char *eg_fx_ovf_name(eg_fx_ovf o)
{
	return (unsigned)o < NOVF ? ovf_names[o] : "?";
}

int64_t eg_fx_code_min(const eg_fx_type *t)
{
	/* -2^(W-1) without shifting into the sign bit. */
	return -(int64_t)((UINT64_C(1) << (t->w - 1)) - 1) - 1;
}

int64_t eg_fx_code_max(const eg_fx_type *t)
{
	return (int64_t)((UINT64_C(1) << (t->w - 1)) - 1);
}

double eg_fx_min(const eg_fx_type *t)
{
	return -ldexp(1.0, t->i - 1);
}

double eg_fx_max(const eg_fx_type *t)
{
	return eg_fx_value(t, eg_fx_code_max(t));
}

double eg_fx_eps(const eg_fx_type *t)
{
	return ldexp(1.0, -eg_fx_frac(t));
}

double eg_fx_value(const eg_fx_type *t, int64_t code)
{
	/* (double)code is exact up to 2^53; ldexp by a power of two is exact
	 * while the result stays normal, which EG_FX_I_MIN/MAX guarantee. */
	return ldexp((double)code, -eg_fx_frac(t));
}

/* The low W bits of q, sign-extended: two's complement wrap-around. */
static inline int64_t wrap_bits(u128 q, int w)
{
	uint64_t u = (uint64_t)q << (64 - w);

	/* Arithmetic right shift of a negative int64_t: GCC documents it as
	 * sign-extending, which is the behaviour wanted. */
	return (int64_t)u >> (64 - w);
}

/*
 * Rounds and applies the overflow mode.  q is floor(value * 2^F) (modulo
 * 2^128 when huge != 0, huge then being the value's sign), qb and r the
 * dropped bits.
 */
static inline int64_t finish(const eg_fx_type *t, i128 q, int huge, bool qb,
			     bool r, unsigned *flags)
{
	bool s = huge != 0 ? huge < 0 : q < 0;
	bool lsb = (q & 1) != 0;
	bool inc;
	int64_t lo = eg_fx_code_min(t), hi = eg_fx_code_max(t);
	unsigned fl = 0;

	switch (t->round) {
	case EG_FX_RND: inc = qb; break;
	case EG_FX_RND_ZERO: inc = qb && (s || r); break;
	case EG_FX_RND_MIN_INF: inc = qb && r; break;
	case EG_FX_RND_INF: inc = qb && (!s || r); break;
	case EG_FX_RND_CONV: inc = qb && (lsb || r); break;
	case EG_FX_TRN_ZERO: inc = s && (qb || r); break;
	case EG_FX_TRN:
	default: inc = false; break;
	}
	if (qb || r)
		fl |= EG_FX_FLAG_INEXACT;
	/* Unsigned, so that the huge residue wraps instead of overflowing. */
	q = (i128)((u128)q + (u128)inc);

	int64_t code;
	if (huge == 0 && q >= lo && q <= hi) {
		code = (int64_t)q;
		if (t->ovf == EG_FX_SAT_SYM && code == lo) {
			code = -hi;
			fl |= EG_FX_FLAG_OVERFLOW;
		}
	} else {
		bool neg = huge != 0 ? huge < 0 : q < 0;

		fl |= EG_FX_FLAG_OVERFLOW;
		switch (t->ovf) {
		case EG_FX_SAT: code = neg ? lo : hi; break;
		case EG_FX_SAT_SYM: code = neg ? -hi : hi; break;
		case EG_FX_WRAP:
		default: code = wrap_bits((u128)q, t->w); break;
		}
	}
	if (flags != NULL)
		*flags |= fl;
	return code;
}

/*
 * floor(v / 2^d), the first dropped bit and the OR of the rest, for d >= 1
 * and v != 0, treating v as sign-extended to infinity.
 */
static inline void split(i128 v, long d, i128 *fl, bool *qb, bool *r)
{
	u128 u = (u128)v;

	if (d <= 127) {
		*fl = v >> d;
		*qb = ((u >> (d - 1)) & 1) != 0;
		*r = d > 1 && (u & ((((u128)1) << (d - 1)) - 1)) != 0;
	} else {
		/* Every kept bit is a sign bit; the dropped ones are all of v
		 * plus (for d > 128) more sign bits. */
		*fl = v < 0 ? -1 : 0;
		*qb = v < 0;
		if (d == 128)
			*r = (u & ((((u128)1) << 127) - 1)) != 0;
		else
			*r = true; /* v != 0: some bit below d - 1 is set */
	}
}

/* Q_t(base * 2^-F + v * 2^-vfrac); see the top of the file. */
static inline int64_t quant(const eg_fx_type *t, int64_t base, i128 v,
			    long vfrac, unsigned *flags)
{
	long f = eg_fx_frac(t);

	if (v == 0)
		return finish(t, base, 0, false, false, flags);
	if (vfrac > f) {
		i128 fl;
		bool qb, r;

		split(v, vfrac - f, &fl, &qb, &r);
		return finish(t, fl + base, 0, qb, r, flags);
	}

	long d = f - vfrac;
	int huge = 0;
	i128 q = 0;
	if (d >= 127) {
		/* |v| >= 1, so |v| * 2^d >= 2^127: out of any range. */
		huge = v < 0 ? -1 : 1;
		q = d >= 128 ? 0 : (i128)((u128)v << d);
	} else {
		q = (i128)((u128)v << d);
		if ((q >> d) != v)
			huge = v < 0 ? -1 : 1;
	}
	if (huge != 0) {
		q = (i128)((u128)q + (u128)(i128)base);
	} else if (__builtin_add_overflow(q, (i128)base, &q)) {
		/* Both addends had the sum's true sign. */
		huge = base < 0 ? -1 : 1;
	}
	return finish(t, q, huge, false, false, flags);
}

int64_t eg_fx_from_double(const eg_fx_type *t, double x, unsigned *flags)
{
	if (!isfinite(x)) {
		if (flags != NULL)
			*flags |= EG_FX_FLAG_NONFINITE;
		if (isnan(x))
			return 0;
		return x > 0 ? eg_fx_code_max(t) : eg_fx_code_min(t);
	}
	if (x == 0)
		return finish(t, 0, 0, false, false, flags);

	/* x = fr * 2^e with 0.5 <= |fr| < 1, so fr * 2^53 is an integer
	 * (also for subnormals, whose mantissa has fewer bits) and the
	 * scaling by a power of two is exact: x = m * 2^-(53 - e). */
	int e;
	double fr = frexp(x, &e);
	int64_t m = (int64_t)ldexp(fr, 53);

	return quant(t, 0, m, 53L - e, flags);
}

int64_t eg_fx_requant(const eg_fx_type *t, __int128 v, int vfrac,
		      unsigned *flags)
{
	return quant(t, 0, v, vfrac, flags);
}

int64_t eg_fx_add_requant(const eg_fx_type *t, int64_t acc, __int128 v,
			  int vfrac, unsigned *flags)
{
	return quant(t, acc, v, vfrac, flags);
}

void eg_fx_quantize_f32(const eg_fx_type *t, const float *x, size_t n,
			int64_t *codes, unsigned *flags)
{
	for (size_t k = 0; k < n; k++)
		codes[k] = eg_fx_from_double(t, (double)x[k], flags);
}

void eg_fx_quantize_f64(const eg_fx_type *t, const double *x, size_t n,
			int64_t *codes, unsigned *flags)
{
	for (size_t k = 0; k < n; k++)
		codes[k] = eg_fx_from_double(t, x[k], flags);
}

void eg_fx_values(const eg_fx_type *t, const int64_t *codes, size_t n,
		  double *values)
{
	for (size_t k = 0; k < n; k++)
		values[k] = eg_fx_value(t, codes[k]);
}
