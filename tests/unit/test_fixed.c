/*
 * test_fixed.c - ap_fixed emulation (kernels/fixed.h).
 *
 * Every expected code in the tables was derived by hand with exact integer
 * arithmetic: v = x * 2^F written as floor + fraction, qb / r / s / lsb read
 * off the fraction, the PAPERS.md §5 increment added, then the overflow
 * rule applied to the W-bit range.  The comments give that derivation.
 * A second, independent check (random_against_float_reference) recomputes
 * the same rules with exactly representable double arithmetic.
 */
#include <stdint.h>

#include "kernels/fixed.h"
#include "tests/harness.h"

enum { TRN, RND, RZ, RMI, RINF, RCONV, TZ }; /* column order of the tables */

static const eg_fx_round modes[7] = {
	EG_FX_TRN, EG_FX_RND, EG_FX_RND_ZERO, EG_FX_RND_MIN_INF,
	EG_FX_RND_INF, EG_FX_RND_CONV, EG_FX_TRN_ZERO,
};

static eg_fx_type ty(int w, int i, eg_fx_round q, eg_fx_ovf o)
{
	eg_fx_type t;

	if (eg_fx_type_init(&t, w, i, q, o, NULL) != EG_OK)
		eg__test_fail(__FILE__, __LINE__, "bad type <%d,%d>", w, i);
	return t;
}

/* One input under all seven rounding modes (overflow WRAP, no overflow
 * happens in these rows). */
struct round_row {
	int w, i;
	double x;
	int64_t want[7]; /* TRN RND RND_ZERO RND_MIN_INF RND_INF RND_CONV TRN_ZERO */
	const char *why;
};

static const struct round_row round_rows[] = {
	/* <8,4>: F = 4, one code = 1/16. */
	{8, 4, 2.5 / 16, {2, 3, 2, 2, 3, 2, 2},
	 "v = 2.5: floor 2, qb 1, r 0, s 0, lsb 0 (positive tie, even floor)"},
	{8, 4, 3.5 / 16, {3, 4, 3, 3, 4, 4, 3},
	 "v = 3.5: floor 3, qb 1, r 0, lsb 1 (positive tie, odd floor)"},
	{8, 4, -2.5 / 16, {-3, -2, -2, -3, -3, -2, -2},
	 "v = -2.5: floor -3, qb 1, r 0, s 1, lsb 1 (negative tie)"},
	{8, 4, -3.5 / 16, {-4, -3, -3, -4, -4, -4, -3},
	 "v = -3.5: floor -4, qb 1, r 0, s 1, lsb 0"},
	{8, 4, 2.5625 / 16, {2, 3, 3, 3, 3, 3, 2},
	 "v = 2.5625 (just above a tie): floor 2, qb 1, r 1"},
	{8, 4, 2.4375 / 16, {2, 2, 2, 2, 2, 2, 2},
	 "v = 2.4375 (just below a tie): floor 2, qb 0, r 1"},
	{8, 4, -2.5625 / 16, {-3, -3, -3, -3, -3, -3, -2},
	 "v = -2.5625: floor -3, fraction .4375: qb 0, r 1, s 1"},
	{8, 4, -2.4375 / 16, {-3, -2, -2, -2, -2, -2, -2},
	 "v = -2.4375: floor -3, fraction .5625: qb 1, r 1, s 1"},
	{8, 4, -0.5 / 16, {-1, 0, 0, -1, -1, 0, 0},
	 "v = -0.5: floor -1, qb 1, r 0, s 1, lsb 1 (tie between -1 and 0)"},
	{8, 4, -0.25 / 16, {-1, 0, 0, 0, 0, 0, 0},
	 "v = -0.25: floor -1, fraction .75: qb 1, r 1"},
	{8, 4, 0.5 / 16, {0, 1, 0, 0, 1, 0, 0},
	 "v = 0.5: floor 0, qb 1, r 0, lsb 0"},
	{8, 4, 5.0, {80, 80, 80, 80, 80, 80, 80}, "exact: 5 * 16"},
	{8, 4, -8.0, {-128, -128, -128, -128, -128, -128, -128},
	 "exact minimum: -8 * 16 = -2^7"},
	/* <8,10>: F = -2, one code = 4 (I >= W). */
	{8, 10, 6.0, {1, 2, 1, 1, 2, 2, 1}, "v = 6/4 = 1.5: floor 1, qb 1, lsb 1"},
	{8, 10, 10.0, {2, 3, 2, 2, 3, 2, 2}, "v = 2.5: floor 2, qb 1, lsb 0"},
	{8, 10, -6.0, {-2, -1, -1, -2, -2, -2, -1},
	 "v = -1.5: floor -2, qb 1, r 0, s 1, lsb 0"},
	{8, 10, 3.0, {0, 1, 1, 1, 1, 1, 0}, "v = 0.75: floor 0, qb 1, r 1"},
	{8, 10, 1.0, {0, 0, 0, 0, 0, 0, 0}, "v = 0.25: qb 0, r 1"},
	{8, 10, -1.0, {-1, 0, 0, 0, 0, 0, 0},
	 "v = -0.25 = -1 + .75: floor -1, qb 1, r 1, s 1"},
	/* <8,-2>: F = 10, all values in [-1/8, 1/8). */
	{8, -2, 0.1, {102, 102, 102, 102, 102, 102, 102},
	 "v = 0.1 * 1024 = 102.4 (0.1 as a double is m 2^-56, "
	 "m = 0x1999999999999a, v = m >> 46 = 102, fraction .4): qb 0, r 1"},
	{8, -2, -0.1, {-103, -102, -102, -102, -102, -102, -102},
	 "v = -102.4: floor -103, fraction .6: qb 1, r 1"},
	{8, -2, 0.0615234375, {63, 63, 63, 63, 63, 63, 63},
	 "exact 63 / 1024"},
	/* <1,0>: F = 1, codes -1 and 0 (values -0.5 and 0). */
	{1, 0, -0.25, {-1, 0, 0, -1, -1, 0, 0},
	 "v = -0.5: floor -1, qb 1, r 0, s 1, lsb 1"},
	/* <64,32>: F = 32. */
	{64, 32, 3.0 / 17179869184.0 /* 3 * 2^-34 */, {0, 1, 1, 1, 1, 1, 0},
	 "v = 3 * 2^-2 = 0.75: qb 1, r 1"},
	{64, 32, -3.0 / 17179869184.0, {-1, -1, -1, -1, -1, -1, 0},
	 "v = -0.75 = -1 + .25: qb 0, r 1"},
};

EG_TEST(rounding_table)
{
	for (size_t k = 0; k < sizeof(round_rows) / sizeof(round_rows[0]); k++) {
		const struct round_row *row = &round_rows[k];

		for (int m = 0; m < 7; m++) {
			eg_fx_type t = ty(row->w, row->i, modes[m], EG_FX_WRAP);
			int64_t got = eg_fx_from_double(&t, row->x, NULL);

			EG_CHECK_MSG(got == row->want[m],
				     "<%d,%d> %s x=%.17g: got %lld want %lld (%s)",
				     row->w, row->i, eg_fx_round_name(modes[m]),
				     row->x, (long long)got,
				     (long long)row->want[m], row->why);
		}
	}
}

/* One input under one rounding mode and the three overflow modes. */
struct ovf_row {
	int w, i;
	eg_fx_round q;
	double x;
	int64_t wrap, sat, sat_sym;
	const char *why;
};

static const struct ovf_row ovf_rows[] = {
	/* <8,4>: codes -128 .. 127. */
	{8, 4, EG_FX_RND, 127.5 / 16, -128, 127, 127,
	 "rounding carry: v = 127.5 rounds to 128 = 2^7, which wraps to -128"},
	{8, 4, EG_FX_RND_CONV, 127.5 / 16, -128, 127, 127,
	 "carry under convergent rounding (lsb of 127 is 1)"},
	{8, 4, EG_FX_RND_ZERO, 127.5 / 16, 127, 127, 127,
	 "positive tie toward zero: no carry"},
	{8, 4, EG_FX_TRN, 127.5 / 16, 127, 127, 127, "floor 127 fits"},
	{8, 4, EG_FX_TRN, -128.5 / 16, 127, -128, -127,
	 "floor -129 = -2^7 - 1: low 8 bits 0x7f = 127"},
	{8, 4, EG_FX_RND, -128.5 / 16, -128, -128, -127,
	 "RND gives -128, in range except for SAT_SYM"},
	{8, 4, EG_FX_TRN, 100.0, 64, 127, 127,
	 "v = 1600 = 0x640: low 8 bits 0x40 = 64"},
	{8, 4, EG_FX_TRN, -100.0, -64, -128, -127,
	 "v = -1600: -1600 + 7 * 256 = 192 = 0xc0, i.e. -64"},
	{8, 4, EG_FX_TRN, 200.0, -128, 127, 127,
	 "v = 3200 = 0xc80: low 8 bits 0x80 = -128"},
	{8, 4, EG_FX_TRN, 1e30, 0, 127, 127,
	 "1e30 = m 2^47 with m < 2^53; v = m 2^51: low 8 bits all 0"},
	{8, 4, EG_FX_TRN, -1e30, 0, -128, -127, "as above, negative"},
	/* <8,-2>: F = 10, codes -128 .. 127 = [-0.125, 0.1240234375]. */
	{8, -2, EG_FX_TRN, 0.2, -52, 127, 127,
	 "v = 204.8: floor 204 = 0xcc, i.e. -52 in 8 bits"},
	{8, -2, EG_FX_TRN, -0.125, -128, -128, -127, "v = -128 exactly"},
	/* <8,10>: lsb weight 4, range [-512, 508]. */
	{8, 10, EG_FX_RND, 510.0, -128, 127, 127,
	 "v = 127.5 rounds to 128: carry out of the top"},
	{8, 10, EG_FX_TRN, -513.0, 127, -128, -127,
	 "v = -128.25: floor -129, wraps to 127"},
	/* <1,1>: F = 0, codes -1 and 0. */
	{1, 1, EG_FX_RND, 0.5, -1, 0, 0,
	 "v = 0.5 rounds to 1: one bit 1 reads as -1; SAT max is 0"},
	{1, 1, EG_FX_TRN, -1.0, -1, -1, 0, "-1 is the minimum; SAT_SYM max 0"},
	{1, 1, EG_FX_TRN, -0.5, -1, -1, 0, "v = -0.5: floor -1"},
	{1, 1, EG_FX_RND, -0.5, 0, 0, 0, "v = -0.5: RND adds qb = 1 -> 0"},
	{1, 1, EG_FX_TRN, 3.0, -1, 0, 0, "v = 3 = 0b11: low bit 1 -> -1"},
	/* <64,32>: F = 32, codes -2^63 .. 2^63 - 1. */
	{64, 32, EG_FX_TRN, -2147483648.0, INT64_MIN, INT64_MIN, -INT64_MAX,
	 "v = -2^31 * 2^32 = -2^63 exactly"},
	{64, 32, EG_FX_TRN, 2147483648.0, INT64_MIN, INT64_MAX, INT64_MAX,
	 "v = 2^63: one past the maximum"},
	{64, 32, EG_FX_TRN, 6442450944.0 /* 3 * 2^31 */, INT64_MIN, INT64_MAX,
	 INT64_MAX, "v = 3 * 2^63: low 64 bits are 2^63 -> -2^63"},
};

EG_TEST(overflow_table)
{
	for (size_t k = 0; k < sizeof(ovf_rows) / sizeof(ovf_rows[0]); k++) {
		const struct ovf_row *row = &ovf_rows[k];
		eg_fx_ovf om[3] = {EG_FX_WRAP, EG_FX_SAT, EG_FX_SAT_SYM};
		int64_t want[3] = {row->wrap, row->sat, row->sat_sym};

		for (int m = 0; m < 3; m++) {
			eg_fx_type t = ty(row->w, row->i, row->q, om[m]);
			int64_t got = eg_fx_from_double(&t, row->x, NULL);

			EG_CHECK_MSG(got == want[m],
				     "<%d,%d,%s,%s> x=%.17g: got %lld want %lld (%s)",
				     row->w, row->i, eg_fx_round_name(row->q),
				     eg_fx_ovf_name(om[m]), row->x,
				     (long long)got, (long long)want[m],
				     row->why);
		}
	}
}

EG_TEST(flags_report_overflow_and_inexact)
{
	eg_fx_type t = ty(8, 4, EG_FX_RND, EG_FX_SAT);
	unsigned f = 0;

	EG_CHECK_INT(eg_fx_from_double(&t, 5.0, &f), 80);
	EG_CHECK_INT(f, 0);
	EG_CHECK_INT(eg_fx_from_double(&t, 2.5 / 16, &f), 3);
	EG_CHECK_INT(f, EG_FX_FLAG_INEXACT);
	f = 0;
	EG_CHECK_INT(eg_fx_from_double(&t, 127.5 / 16, &f), 127);
	EG_CHECK_INT(f, EG_FX_FLAG_INEXACT | EG_FX_FLAG_OVERFLOW);
	f = 0;
	EG_CHECK_INT(eg_fx_from_double(&t, NAN, &f), 0);
	EG_CHECK_INT(eg_fx_from_double(&t, -INFINITY, &f), -128);
	EG_CHECK_INT(f, EG_FX_FLAG_NONFINITE);
	t.ovf = EG_FX_WRAP;
	EG_CHECK_INT(eg_fx_from_double(&t, INFINITY, NULL), 127);
}

/*
 * 0.1 is not a float and not a short binary fraction: as a double it is
 * exactly m * 2^-56 with m = 0x1999999999999a.  The expected codes below
 * are m shifted by integer arithmetic in the test, not by the library.
 */
EG_TEST(double_not_representable_in_float)
{
	const int64_t m = 0x1999999999999aLL;

	EG_CHECK(ldexp((double)m, -56) == 0.1);
	EG_CHECK((double)0.1f != 0.1);

	/* <32,0>: F = 32, v = m * 2^-24: floor m >> 24, dropped low 24 bits
	 * 0x99999a (top bit set, rest non-zero): RND adds 1. */
	eg_fx_type t = ty(32, 0, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_from_double(&t, 0.1, NULL), m >> 24);
	EG_CHECK_INT(m >> 24, 0x19999999);
	EG_CHECK(((m >> 23) & 1) == 1 && (m & 0x7fffff) != 0);
	t.round = EG_FX_RND;
	EG_CHECK_INT(eg_fx_from_double(&t, 0.1, NULL), (m >> 24) + 1);
	/* The float 0.1f would give 0x1.99999ap-4 * 2^32 = 0x199999a0. */
	EG_CHECK_INT(eg_fx_from_double(&t, (double)0.1f, NULL), 0x199999a0);

	/* <64,0>: F = 64, v = m * 2^8 exactly: no bit is dropped. */
	t = ty(64, 0, EG_FX_RND, EG_FX_SAT);
	unsigned f = 0;
	EG_CHECK_INT(eg_fx_from_double(&t, 0.1, &f), m << 8);
	EG_CHECK_INT(f, 0);
	/* <64,4>: v = m * 2^4. */
	t = ty(64, 4, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_from_double(&t, -0.1, NULL), -(m << 4));

	/* <16,1>: F = 15, v = m * 2^-41: floor 3276 (0xccc), dropped bits
	 * 0x199999999a & (2^41 - 1): bit 40 set (0.8 = .1100...b). */
	t = ty(16, 1, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_from_double(&t, 0.1, NULL), m >> 41);
	EG_CHECK_INT(m >> 41, 3276);
	t.round = EG_FX_RND;
	EG_CHECK_INT(eg_fx_from_double(&t, 0.1, NULL), 3277);
	t.round = EG_FX_TRN_ZERO;
	EG_CHECK_INT(eg_fx_from_double(&t, -0.1, NULL), -3276);
	t.round = EG_FX_TRN;
	EG_CHECK_INT(eg_fx_from_double(&t, -0.1, NULL), -3277);

	/* A subnormal: 2^-1074 into <8,0> is a positive value far below half
	 * an lsb: TRN 0, RND 0, TRN toward -inf of its negation -1. */
	t = ty(8, 0, EG_FX_RND, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_from_double(&t, 4.9406564584124654e-324, NULL), 0);
	t.round = EG_FX_TRN;
	EG_CHECK_INT(eg_fx_from_double(&t, -4.9406564584124654e-324, NULL), -1);
	t.round = EG_FX_RND_MIN_INF;
	EG_CHECK_INT(eg_fx_from_double(&t, -4.9406564584124654e-324, NULL), 0);
}

/* Re-quantization of exact wide codes (products, sums). */
EG_TEST(requant_wide_codes)
{
	/* 1.5 * -2.25 in <16,6>: codes 1536 and -2304 (F = 10), product
	 * -3538944 with F = 20, value -3.375. */
	__int128 p = (__int128)1536 * -2304;
	eg_fx_type t = ty(16, 6, EG_FX_TRN, EG_FX_WRAP);

	EG_CHECK_INT(eg_fx_requant(&t, p, 20, NULL), -3456);  /* -3.375*1024 */
	t = ty(8, 4, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_requant(&t, p, 20, NULL), -54);    /* -3.375*16 */
	t = ty(8, 2, EG_FX_TRN, EG_FX_WRAP);                   /* F = 6 */
	EG_CHECK_INT(eg_fx_requant(&t, p, 20, NULL), 40);     /* -216+256 */
	t.ovf = EG_FX_SAT;
	EG_CHECK_INT(eg_fx_requant(&t, p, 20, NULL), -128);

	/* 3 * 2^-20 into F = 10: v = 3 / 1024: floor 0, qb 0, r 1.  -3:
	 * floor -1, dropped bits 1021 = 0b1111111101: qb 1, r 1. */
	int64_t want3[7] = {0, 0, 0, 0, 0, 0, 0};
	int64_t wantm3[7] = {-1, 0, 0, 0, 0, 0, 0};
	/* +-512 * 2^-20 = +-half an lsb of F = 10: exact ties. */
	int64_t want512[7] = {0, 1, 0, 0, 1, 0, 0};
	int64_t wantm512[7] = {-1, 0, 0, -1, -1, 0, 0};
	for (int m = 0; m < 7; m++) {
		t = ty(16, 6, modes[m], EG_FX_WRAP);
		EG_CHECK_INT(eg_fx_requant(&t, 3, 20, NULL), want3[m]);
		EG_CHECK_INT(eg_fx_requant(&t, -3, 20, NULL), wantm3[m]);
		EG_CHECK_INT(eg_fx_requant(&t, 512, 20, NULL), want512[m]);
		EG_CHECK_INT(eg_fx_requant(&t, -512, 20, NULL), wantm512[m]);
	}

	/* A 127-bit product: (-2^63)^2 = 2^126 with F = 126 is 1.0. */
	__int128 big = (__int128)INT64_MIN * INT64_MIN;
	t = ty(8, 2, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_requant(&t, big, 126, NULL), 64);
	/* 2^126 with F = 0 into <8,4>: v = 2^130, no low bits left. */
	t = ty(8, 4, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_requant(&t, big, 0, NULL), 0);
	t.ovf = EG_FX_SAT;
	EG_CHECK_INT(eg_fx_requant(&t, big, 0, NULL), 127);
	EG_CHECK_INT(eg_fx_requant(&t, -big, 0, NULL), -128);
	/* Dropping more than 128 bits: -1 * 2^-300 -> floor -1, RND 0. */
	EG_CHECK_INT(eg_fx_requant(&t, -1, 300, NULL), -1);
	t.round = EG_FX_RND;
	EG_CHECK_INT(eg_fx_requant(&t, -1, 300, NULL), 0);
	EG_CHECK_INT(eg_fx_requant(&t, 1, 300, NULL), 0);

	/* More fraction bits than the source: 0.75 (3, F = 2) -> 768. */
	t = ty(16, 6, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_requant(&t, 3, 2, NULL), 768);
	/* Fewer: <8,10> (F = -2) of 6 * 2^0 = 6: v = 1.5, RND 2. */
	t = ty(8, 10, EG_FX_RND, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_requant(&t, 6, 0, NULL), 2);
}

EG_TEST(add_requant_forms_sum_exactly)
{
	/* <8,4>: acc 100 (6.25) + 448 * 2^-6 (7.0) = 13.25 -> v = 212:
	 * wraps to 212 - 256 = -44, saturates to 127. */
	eg_fx_type t = ty(8, 4, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_add_requant(&t, 100, 448, 6, NULL), -44);
	t.ovf = EG_FX_SAT;
	EG_CHECK_INT(eg_fx_add_requant(&t, 100, 448, 6, NULL), 127);

	/* acc -5 plus 1 * 2^-5 (half an lsb at F = 4): v = -4.5, floor -5,
	 * qb 1, r 0, s 1, lsb 1. */
	int64_t want[7] = {-5, -4, -4, -5, -5, -4, -4};
	/* acc -1 plus 2^-5: v = -0.5, floor -1, the same bits: the sign
	 * must come from the exact sum, not from either addend. */
	int64_t want2[7] = {-1, 0, 0, -1, -1, 0, 0};
	/* acc 2 plus -1 * 2^-5: v = 1.5, floor 1, qb 1, s 0, lsb 1. */
	int64_t want3[7] = {1, 2, 1, 1, 2, 2, 1};
	for (int m = 0; m < 7; m++) {
		t = ty(8, 4, modes[m], EG_FX_WRAP);
		EG_CHECK_INT(eg_fx_add_requant(&t, -5, 1, 5, NULL), want[m]);
		EG_CHECK_INT(eg_fx_add_requant(&t, -1, 1, 5, NULL), want2[m]);
		EG_CHECK_INT(eg_fx_add_requant(&t, 2, -1, 5, NULL), want3[m]);
	}
	/* Accumulating INT64_MAX-sized terms in <64,64> (F = 0) with SAT:
	 * the exact sum overflows 64 bits and must saturate, not wrap. */
	t = ty(64, 64, EG_FX_TRN, EG_FX_SAT);
	EG_CHECK_INT(eg_fx_add_requant(&t, INT64_MAX, INT64_MAX, 0, NULL),
		     INT64_MAX);
	t.ovf = EG_FX_WRAP;
	EG_CHECK_INT(eg_fx_add_requant(&t, INT64_MAX, 1, 0, NULL), INT64_MIN);
	/* Left shift that overflows 128 bits, plus a base: 1 * 2^200 into
	 * F = 0 added to 5: wraps to 5 (2^200 has no low 64 bits). */
	EG_CHECK_INT(eg_fx_add_requant(&t, 5, 1, -200, NULL), 5);
	t.ovf = EG_FX_SAT_SYM;
	EG_CHECK_INT(eg_fx_add_requant(&t, 5, -1, -200, NULL), -INT64_MAX);
}

EG_TEST(type_bounds_and_names)
{
	eg_fx_type t = ty(8, 4, EG_FX_TRN, EG_FX_WRAP);
	eg_diag d = {{0}};

	EG_CHECK_INT(eg_fx_code_min(&t), -128);
	EG_CHECK_INT(eg_fx_code_max(&t), 127);
	EG_CHECK(eg_fx_min(&t) == -8.0);
	EG_CHECK(eg_fx_max(&t) == 7.9375);
	EG_CHECK(eg_fx_eps(&t) == 0.0625);
	EG_CHECK(eg_fx_value(&t, -3) == -0.1875);
	t = ty(8, 10, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK(eg_fx_eps(&t) == 4.0 && eg_fx_max(&t) == 508.0 &&
		 eg_fx_min(&t) == -512.0);
	t = ty(8, -2, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK(eg_fx_max(&t) == 0.1240234375 && eg_fx_min(&t) == -0.125);
	t = ty(64, 1, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_code_min(&t), INT64_MIN);
	EG_CHECK_INT(eg_fx_code_max(&t), INT64_MAX);
	EG_CHECK(eg_fx_min(&t) == -1.0);
	t = ty(1, 1, EG_FX_TRN, EG_FX_WRAP);
	EG_CHECK_INT(eg_fx_code_min(&t), -1);
	EG_CHECK_INT(eg_fx_code_max(&t), 0);

	EG_CHECK_INT(eg_fx_type_init(&t, 0, 0, EG_FX_TRN, EG_FX_WRAP, &d),
		     EG_ERANGE);
	EG_CHECK(strstr(d.msg, "0 bits") != NULL);
	EG_CHECK_INT(eg_fx_type_init(&t, 65, 0, EG_FX_TRN, EG_FX_WRAP, NULL),
		     EG_ERANGE);
	EG_CHECK_INT(eg_fx_type_init(&t, 8, 5000, EG_FX_TRN, EG_FX_WRAP, NULL),
		     EG_ERANGE);

	static const char *rn[7] = {"trn", "rnd", "rnd_zero", "rnd_min_inf",
				    "rnd_inf", "rnd_conv", "trn_zero"};
	for (int m = 0; m < 7; m++) {
		eg_fx_round q;
		EG_CHECK_OK(eg_fx_round_parse(rn[m], &q, NULL));
		EG_CHECK_INT(q, modes[m]);
		EG_CHECK_STR(eg_fx_round_name(q), rn[m]);
	}
	static const char *on[3] = {"wrap", "sat", "sat_sym"};
	static const eg_fx_ovf ov[3] = {EG_FX_WRAP, EG_FX_SAT, EG_FX_SAT_SYM};
	for (int m = 0; m < 3; m++) {
		eg_fx_ovf o;
		EG_CHECK_OK(eg_fx_ovf_parse(on[m], &o, NULL));
		EG_CHECK_INT(o, ov[m]);
		EG_CHECK_STR(eg_fx_ovf_name(o), on[m]);
	}
	eg_fx_round q;
	eg_fx_ovf o;
	EG_CHECK_INT(eg_fx_round_parse("RND", &q, &d), EG_EINVAL);
	EG_CHECK(strstr(d.msg, "rnd_conv") != NULL);
	EG_CHECK_INT(eg_fx_ovf_parse("saturate", &o, NULL), EG_EINVAL);
}

/*
 * An independent check over many random values and every mode: the
 * reference scales by 2^F with ldexp (exact for these magnitudes: a 20-bit
 * integer times a power of two, far from underflow), takes floor and the
 * exact fraction in double, and applies the rules and the W-bit wrap with
 * int64 remainder arithmetic - a different route from the library's shifts.
 */
static int64_t ref_quant(int w, int i, eg_fx_round q, eg_fx_ovf o, double x)
{
	double v = ldexp(x, w - i), fl = floor(v), fr = v - fl;
	bool qb = fr >= 0.5, r = fr != 0 && fr != 0.5, s = x < 0;
	int64_t c = (int64_t)fl;
	bool lsb = (c % 2) != 0, inc = false;

	switch (q) {
	case EG_FX_TRN: inc = false; break;
	case EG_FX_RND: inc = qb; break;
	case EG_FX_RND_ZERO: inc = qb && (s || r); break;
	case EG_FX_RND_MIN_INF: inc = qb && r; break;
	case EG_FX_RND_INF: inc = qb && (!s || r); break;
	case EG_FX_RND_CONV: inc = qb && (lsb || r); break;
	case EG_FX_TRN_ZERO: inc = s && (qb || r); break;
	}
	c += inc;
	int64_t span = (int64_t)1 << w, hi = span / 2 - 1, lo = -span / 2;
	if (o == EG_FX_SAT)
		return c > hi ? hi : c < lo ? lo : c;
	if (o == EG_FX_SAT_SYM)
		return c > hi ? hi : c < -hi ? -hi : c;
	c %= span;
	if (c < 0)
		c += span;
	return c > hi ? c - span : c;
}

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 11;
}

EG_TEST(random_against_float_reference)
{
	static const int ws[] = {1, 2, 5, 8, 13, 16, 24, 32};
	uint64_t seed = 12345;
	long checked = 0;

	for (size_t a = 0; a < sizeof(ws) / sizeof(ws[0]); a++) {
		for (int i = -3; i <= ws[a] + 3; i++) {
			for (int n = 0; n < 60; n++) {
				int64_t k = (int64_t)(lcg(&seed) % (1u << 20)) -
					    (1 << 19);
				int e = -(int)(lcg(&seed) % 30);
				double x = ldexp((double)k, e);

				for (int m = 0; m < 7; m++) {
					for (int o = 0; o < 3; o++) {
						eg_fx_type t = ty(ws[a], i, modes[m],
								  (eg_fx_ovf)o);
						int64_t got = eg_fx_from_double(&t, x, NULL);
						int64_t want = ref_quant(ws[a], i, modes[m],
									 (eg_fx_ovf)o, x);
						EG_CHECK_MSG(got == want,
							     "<%d,%d,%s,%s> x=%.17g: %lld vs %lld",
							     ws[a], i,
							     eg_fx_round_name(modes[m]),
							     eg_fx_ovf_name((eg_fx_ovf)o), x,
							     (long long)got, (long long)want);
						checked++;
					}
				}
			}
		}
	}
	EG_CHECK(checked > 100000);
}

EG_TEST(array_forms)
{
	eg_fx_type t = ty(8, 4, EG_FX_RND, EG_FX_SAT);
	float xf[4] = {0.15625f, -0.15625f, 100.0f, -8.0f};
	double xd[4] = {0.15625, -0.15625, 100.0, -8.0};
	int64_t c[4], c2[4];
	double v[4];
	unsigned f = 0;

	eg_fx_quantize_f32(&t, xf, 4, c, &f);
	eg_fx_quantize_f64(&t, xd, 4, c2, NULL);
	/* v = 2.5 -> 3, -2.5 -> -2, 1600 -> 127, -128. */
	EG_CHECK(c[0] == 3 && c[1] == -2 && c[2] == 127 && c[3] == -128);
	EG_CHECK(memcmp(c, c2, sizeof(c)) == 0);
	EG_CHECK_INT(f, EG_FX_FLAG_INEXACT | EG_FX_FLAG_OVERFLOW);
	eg_fx_values(&t, c, 4, v);
	EG_CHECK(v[0] == 0.1875 && v[1] == -0.125 && v[2] == 7.9375 &&
		 v[3] == -8.0);
}

EG_TEST_MAIN({"rounding_table", rounding_table, 0},
	     {"overflow_table", overflow_table, 0},
	     {"flags_report_overflow_and_inexact",
	      flags_report_overflow_and_inexact, 0},
	     {"double_not_representable_in_float",
	      double_not_representable_in_float, 0},
	     {"requant_wide_codes", requant_wide_codes, 0},
	     {"add_requant_forms_sum_exactly", add_requant_forms_sum_exactly, 0},
	     {"type_bounds_and_names", type_bounds_and_names, 0},
	     {"random_against_float_reference", random_against_float_reference,
	      0},
	     {"array_forms", array_forms, 0})
