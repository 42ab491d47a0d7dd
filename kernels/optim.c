/*
 * optim.c - the parameter updates: SGD with momentum and weight decay, and
 * Adam.  Each is one pass over a parameter array and its gradient and
 * state; the caller passes weight decay 0 for biases.
 *
 * Adam's square root and division keep the compiler from vectorizing the
 * loop (sqrtf may set errno, and the Makefile's -O2 does not vectorize
 * loops with a remainder anyway), which made it three times slower than
 * memory bandwidth allows.  So on x86-64 it is written with SSE
 * intrinsics, four lanes at a time; _mm_sqrt_ps and _mm_div_ps are
 * correctly rounded like sqrtf and '/', so (unless the compiler contracts
 * the scalar loop into FMAs) both paths give bit-identical results; the
 * scalar loop finishes the remainder.  Either way a build is deterministic.
 */
#include <math.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "kernels/net_int.h"

void eg__optim_sgd(float *restrict w, const float *restrict g,
		   float *restrict v, size_t n, float lr, float mu, float wd)
{
	for (size_t i = 0; i < n; i++) {
		float vi = mu * v[i] + (g[i] + wd * w[i]);
		v[i] = vi;
		w[i] -= lr * vi;
	}
}

void eg__optim_adam(float *restrict w, const float *restrict g,
		    float *restrict m, float *restrict v, size_t n, float lr,
		    float b1, float b2, float eps, float c1, float c2, float wd)
{
	size_t i = 0;
#if defined(__SSE2__)
	const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2);
	const __m128 va1 = _mm_set1_ps(1.0f - b1), va2 = _mm_set1_ps(1.0f - b2);
	const __m128 vwd = _mm_set1_ps(wd), vlr = _mm_set1_ps(lr);
	const __m128 vc1 = _mm_set1_ps(c1), vc2 = _mm_set1_ps(c2);
	const __m128 veps = _mm_set1_ps(eps);
	for (; i + 4 <= n; i += 4) {
		/* The same operations in the same order as the scalar loop. */
		__m128 wi = _mm_loadu_ps(w + i);
		__m128 gi = _mm_add_ps(_mm_loadu_ps(g + i), _mm_mul_ps(vwd, wi));
		__m128 mi = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(m + i)),
				       _mm_mul_ps(va1, gi));
		__m128 vi = _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(v + i)),
				       _mm_mul_ps(_mm_mul_ps(va2, gi), gi));
		_mm_storeu_ps(m + i, mi);
		_mm_storeu_ps(v + i, vi);
		__m128 num = _mm_mul_ps(vlr, _mm_mul_ps(mi, vc1));
		__m128 den = _mm_add_ps(_mm_sqrt_ps(_mm_mul_ps(vi, vc2)), veps);
		_mm_storeu_ps(w + i, _mm_sub_ps(wi, _mm_div_ps(num, den)));
	}
#endif
	for (; i < n; i++) {
		float gi = g[i] + wd * w[i];
		float mi = b1 * m[i] + (1.0f - b1) * gi;
		float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		w[i] -= (lr * (mi * c1)) / (sqrtf(vi * c2) + eps);
	}
}
