/*
 * rng.c - xoshiro256** (Blackman and Vigna, 2018) seeded through splitmix64.
 *
 * Invariants: the state is never all zero (splitmix64 of any seed yields four
 * words that are not all zero with overwhelming probability, and seeding
 * checks it anyway).  Every function is a pure function of the state, so the
 * same seed gives the same numbers on every machine and compiler: no libm
 * call whose last bit may differ matters to the integer outputs, and the
 * floating-point ones use only log, sqrt and IEEE arithmetic.
 *
 * eg_rng_normal uses the Marsaglia polar method and draws a fresh pair on
 * every call, discarding the second value: the struct has no room for a
 * cached value, and a cache would make a generator's output depend on
 * whether a caller mixed normal and uniform draws.  The cost (about two
 * uniforms and one log per normal) is irrelevant next to training.
 */
#include "kernels/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void eg_rng_seed(eg_rng *r, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
	if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
		r->s[0] = 1; /* the one state xoshiro cannot leave */
}

/* FNV-1a, 64 bit: enough to separate stream names, not a security hash. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void eg_rng_seed_stream(eg_rng *r, uint64_t seed, const char *stream)
{
	uint64_t x = fnv1a(stream != NULL ? stream : "");

	/* Pass the name hash through splitmix64 before combining so that
	 * (seed, name) pairs whose raw XOR collides still differ. */
	eg_rng_seed(r, seed ^ splitmix64(&x));
}

uint64_t eg_rng_u64(eg_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double eg_rng_uniform(eg_rng *r)
{
	/* The top 53 bits as a dyadic fraction: every value is exact. */
	return (double)(eg_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t eg_rng_below(eg_rng *r, uint64_t n)
{
	/* Lemire's multiply-and-reject (2019): unbiased, usually one draw. */
	unsigned __int128 m;
	uint64_t lo;

	if (n == 0) /* an empty range has no value; 0 rather than a trap */
		return 0;
	m = (unsigned __int128)eg_rng_u64(r) * n;
	lo = (uint64_t)m;
	if (lo < n) {
		uint64_t thresh = (0 - n) % n;

		while (lo < thresh) {
			m = (unsigned __int128)eg_rng_u64(r) * n;
			lo = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

double eg_rng_normal(eg_rng *r)
{
	double u, v, s;

	do {
		u = 2.0 * eg_rng_uniform(r) - 1.0;
		v = 2.0 * eg_rng_uniform(r) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	return u * sqrt(-2.0 * log(s) / s);
}

void eg_rng_shuffle(eg_rng *r, int32_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)eg_rng_below(r, i);
		int32_t t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}
