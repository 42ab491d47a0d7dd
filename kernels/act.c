/*
 * act.c - activations and the fused bias + activation epilogue of a dense
 * layer.
 *
 * The epilogue is the only pass the forward step makes over a layer's
 * output after sgemm: it adds the bias, applies phi and, when training,
 * stores phi' for the backward step (which multiplies it in place by the
 * incoming error, so the buffer later holds delta).  The switch on the
 * activation is outside the loops, and each loop body is branch-free on the
 * options, so the compiler can vectorize it.
 *
 * ReLU is written `a < 0 ? 0 : a` so that a NaN passes through (a max()
 * would turn it into 0 and hide a diverged step); its derivative at 0 is 0.
 */
#include <math.h>

#include "kernels/net_int.h"

/* One loop per (activation, has bias, wants derivative) combination; DPHI
 * may use x (the pre-activation) and p (phi(x)). */
#define EG__ACT_LOOPS(PHI, DPHI)                                       \
	do {                                                           \
		for (size_t i = 0; i < n; i++) {                       \
			const float *ar = a + i * m;                   \
			float *orow = out + i * m;                     \
			float *drow = dphi != NULL ? dphi + i * m : NULL; \
			if (b != NULL && drow != NULL) {               \
				for (size_t j = 0; j < m; j++) {       \
					float x = ar[j] + b[j];        \
					float p = PHI;                 \
					drow[j] = DPHI;                \
					orow[j] = p;                   \
				}                                      \
			} else if (b != NULL) {                        \
				for (size_t j = 0; j < m; j++) {       \
					float x = ar[j] + b[j];        \
					orow[j] = PHI;                 \
				}                                      \
			} else if (drow != NULL) {                     \
				for (size_t j = 0; j < m; j++) {       \
					float x = ar[j];               \
					float p = PHI;                 \
					drow[j] = DPHI;                \
					orow[j] = p;                   \
				}                                      \
			} else {                                       \
				for (size_t j = 0; j < m; j++) {       \
					float x = ar[j];               \
					orow[j] = PHI;                 \
				}                                      \
			}                                              \
		}                                                      \
	} while (0)

static inline float sigmoidf(float x)
{
	return 1.0f / (1.0f + expf(-x));
}

void eg__act_epilogue(eg_act act, const float *a, const float *b, size_t n,
		      size_t m, float *out, float *dphi)
{
	switch (act) {
	case EG_ACT_RELU:
		EG__ACT_LOOPS(x < 0.0f ? 0.0f : x, x > 0.0f ? 1.0f : 0.0f);
		break;
	case EG_ACT_SIN:
		EG__ACT_LOOPS(sinf(x), cosf(x));
		break;
	case EG_ACT_TANH:
		/* phi' from p = phi(x), so tanhf runs once per element. */
		EG__ACT_LOOPS(tanhf(x), 1.0f - p * p);
		break;
	case EG_ACT_SIGMOID:
		EG__ACT_LOOPS(sigmoidf(x), p * (1.0f - p));
		break;
	case EG_ACT_LINEAR:
	default:
		EG__ACT_LOOPS(x, 1.0f);
		break;
	}
}

void eg_act_apply(eg_act act, const float *a, size_t n, float *out,
		  float *dphi)
{
	if (out != NULL) {
		eg__act_epilogue(act, a, NULL, 1, n, out, dphi);
		return;
	}
	if (dphi == NULL)
		return;
	/* Derivative only: run the epilogue into dphi for phi', which means
	 * computing phi into a throwaway; do it element by element so that
	 * nothing needs allocating (this path is for tests and tools). */
	for (size_t i = 0; i < n; i++) {
		float o;
		eg__act_epilogue(act, a + i, NULL, 1, 1, &o, dphi + i);
	}
}
