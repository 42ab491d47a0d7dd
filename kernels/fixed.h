/*
 * fixed.h - HLS ap_fixed<W, I, Q, O> emulation: the number format of the
 * fixed-point design model of PAPERS.md §5.
 *
 * A type is W total bits (1 .. 64), I integer bits including the sign (any
 * value in [EG_FX_I_MIN, EG_FX_I_MAX]: I <= 0 makes every value smaller than
 * one half, I >= W makes the least significant bit weigh 2^(I-W) >= 1), a
 * rounding mode Q and an overflow mode O.  F = W - I is the number of
 * fraction bits (negative when I > W).  A value is held as its raw two's
 * complement code, an int64_t in [-2^(W-1), 2^(W-1) - 1], and means
 * code * 2^-F.  Codes are always sign-extended to 64 bits, so two codes of
 * one type compare and subtract as plain integers.
 *
 * Quantization happens on assignment and nowhere else, exactly as in HLS:
 * the input is an exact value - a double, or a wide code v * 2^-F' (a product
 * of two codes, which needs F1 + F2 fraction bits and up to 127 bits, or an
 * accumulator plus such a product) - and the result is
 *
 *     floor(value * 2^F) + round_bit      (qb, r, s as in PAPERS.md §5)
 *
 * followed by the overflow mode.  Everything is integer arithmetic on the
 * exact binary value (a double is split by frexp into a 53-bit integer
 * mantissa and an exponent); nothing is multiplied and rounded in floating
 * point, so the results are the same on every machine and compiler.
 *
 * Rounding, with qb the first dropped bit, r the OR of the lower dropped
 * bits, s the sign and lsb the kept least significant bit, the increment
 * added to the floor is: TRN 0; RND qb; RND_ZERO qb&(s|r); RND_MIN_INF qb&r;
 * RND_INF qb&(!s|r); RND_CONV qb&(lsb|r); TRN_ZERO s&(qb|r).
 * Overflow, applied after rounding: WRAP keeps the low W bits (sign-extended),
 * SAT clamps to [-2^(W-1), 2^(W-1) - 1] codes, SAT_SYM to
 * [-(2^(W-1) - 1), 2^(W-1) - 1] codes.
 *
 * Everything here is pure: no allocation, no global state, thread-safe.
 * The functions on codes are meant for inner loops; a type is validated once
 * by eg_fx_type_init and the loop functions trust it.
 */
#ifndef EG_FIXED_H
#define EG_FIXED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Integer bits accepted by eg_fx_type_init: wide enough for every sensible
 * design, small enough that 2^-F and 2^(I-1) are finite normal doubles. */
#define EG_FX_I_MIN (-900)
#define EG_FX_I_MAX 900

typedef enum eg_fx_round {
	EG_FX_TRN,         /* "trn": floor (the HLS default) */
	EG_FX_RND,         /* "rnd": nearest, ties toward +inf */
	EG_FX_RND_ZERO,    /* "rnd_zero": nearest, ties toward zero */
	EG_FX_RND_MIN_INF, /* "rnd_min_inf": nearest, ties toward -inf */
	EG_FX_RND_INF,     /* "rnd_inf": nearest, ties away from zero */
	EG_FX_RND_CONV,    /* "rnd_conv": nearest, ties to even */
	EG_FX_TRN_ZERO     /* "trn_zero": toward zero */
} eg_fx_round;

typedef enum eg_fx_ovf {
	EG_FX_WRAP,   /* "wrap": low W bits (the HLS default) */
	EG_FX_SAT,    /* "sat": clamp to [min, max] */
	EG_FX_SAT_SYM /* "sat_sym": clamp to [-max, max] */
} eg_fx_ovf;

/* A type descriptor, a plain value: copy it freely. */
typedef struct eg_fx_type {
	int w;           /* total bits, 1 .. 64 */
	int i;           /* integer bits including sign */
	eg_fx_round round;
	eg_fx_ovf ovf;
} eg_fx_type;

/* Fills *t after checking 1 <= w <= 64, EG_FX_I_MIN <= i <= EG_FX_I_MAX and
 * the enums (EG_ERANGE / EG_EINVAL with the detail in d, which may be NULL). */
int eg_fx_type_init(eg_fx_type *t, int w, int i, eg_fx_round round,
		    eg_fx_ovf ovf, eg_diag *d);

/* The hls.round / hls.overflow spellings above, lower case exactly;
 * EG_EINVAL (with the accepted names in d) for anything else. */
int eg_fx_round_parse(const char *name, eg_fx_round *out, eg_diag *d);
int eg_fx_ovf_parse(const char *name, eg_fx_ovf *out, eg_diag *d);
/* The spelling of a mode ("?" for a value outside the enum). */
const char *eg_fx_round_name(eg_fx_round r);
const char *eg_fx_ovf_name(eg_fx_ovf o);

/* Fraction bits F = W - I. */
static inline int eg_fx_frac(const eg_fx_type *t) { return t->w - t->i; }

/* Smallest and largest code of the type (-2^(W-1) and 2^(W-1) - 1). */
int64_t eg_fx_code_min(const eg_fx_type *t);
int64_t eg_fx_code_max(const eg_fx_type *t);
/* The same as values: -2^(I-1), 2^(I-1) - 2^-F (rounded to double when
 * W > 53), and the weight of one code step, epsilon = 2^-F. */
double eg_fx_min(const eg_fx_type *t);
double eg_fx_max(const eg_fx_type *t);
double eg_fx_eps(const eg_fx_type *t);

/* The value of a code, code * 2^-F: exact for |code| <= 2^53, otherwise
 * rounded to nearest double once. */
double eg_fx_value(const eg_fx_type *t, int64_t code);

/*
 * Quantizes the double x exactly.  Non-finite inputs have no binary value:
 * NaN gives code 0 and +-inf the largest / smallest code (as if saturated,
 * whatever the overflow mode); *flags, when not NULL, receives
 * EG_FX_FLAG_* bits (or-ed in, never cleared) so a caller can count them.
 */
#define EG_FX_FLAG_OVERFLOW 1u  /* the rounded value did not fit in W bits */
#define EG_FX_FLAG_INEXACT 2u   /* dropped bits were not all zero */
#define EG_FX_FLAG_NONFINITE 4u /* NaN or infinity */

int64_t eg_fx_from_double(const eg_fx_type *t, double x, unsigned *flags);

/*
 * Quantizes the exact value v * 2^-vfrac (any 128-bit v, any vfrac: a
 * product of two codes with F1 + F2 fraction bits, a sum, a code of another
 * type) into t.
 */
int64_t eg_fx_requant(const eg_fx_type *t, __int128 v, int vfrac,
		      unsigned *flags);

/*
 * acc = acc + v * 2^-vfrac assigned to t, where acc is a code of t: the
 * sum is formed exactly (never rounded before the assignment) and then
 * quantized once, which is what HLS does for `acc = acc + prod` (or
 * `acc += prod`) with acc declared ap_fixed<t>.
 */
int64_t eg_fx_add_requant(const eg_fx_type *t, int64_t acc, __int128 v,
			  int vfrac, unsigned *flags);

/* Array forms: codes[k] = eg_fx_from_double(t, x[k]) and values[k] =
 * eg_fx_value(t, codes[k]); *flags as above (may be NULL). */
void eg_fx_quantize_f32(const eg_fx_type *t, const float *x, size_t n,
			int64_t *codes, unsigned *flags);
void eg_fx_quantize_f64(const eg_fx_type *t, const double *x, size_t n,
			int64_t *codes, unsigned *flags);
void eg_fx_values(const eg_fx_type *t, const int64_t *codes, size_t n,
		  double *values);

#endif
