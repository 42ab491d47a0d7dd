/*
 * rng.h - the kernels' deterministic random numbers: xoshiro256** seeded
 * through splitmix64, so a trial's seed fixes every initialization, shuffle
 * and noise draw on every machine.  One eg_rng per consumer; not shared
 * between threads.
 */
#ifndef EG_RNG_H
#define EG_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct eg_rng {
	uint64_t s[4];
} eg_rng;

void eg_rng_seed(eg_rng *r, uint64_t seed);
/* A generator for a named sub-stream ("init", "shuffle", ...) of one seed,
 * so that adding draws to one stream does not shift another. */
void eg_rng_seed_stream(eg_rng *r, uint64_t seed, const char *stream);
uint64_t eg_rng_u64(eg_rng *r);
double eg_rng_uniform(eg_rng *r);               /* [0, 1) */
uint64_t eg_rng_below(eg_rng *r, uint64_t n);   /* [0, n), unbiased */
double eg_rng_normal(eg_rng *r);                /* N(0, 1) */
void eg_rng_shuffle(eg_rng *r, int32_t *a, size_t n); /* Fisher-Yates */

#endif
