/*
 * loss.c - the three losses of PAPERS.md §1 and their gradients with
 * respect to the logits, each in one pass over a row of logits.
 *
 *   xent   -log softmax(z)_y, computed as log sum exp(z - max) + max - z_y
 *          so that no exp overflows; dz = softmax(z) - onehot(y).
 *   mse    mean_k (z_k - onehot_k)^2; dz = 2 (z - onehot) / k.
 *   hinge  sum_{i != y} max(0, 1 + z_i - z_y); dz_i = 1 where the margin
 *          is violated, dz_y = -(number of violations).  At a kink (margin
 *          exactly 0) the subgradient 0 is used.
 *
 * dz holds scale times the per-example gradient (scale = 1/n for the batch
 * mean).  Per-example losses are summed in double.  A non-finite logit
 * makes the result non-finite, which is how the training step detects
 * divergence: NaN is never clamped away.
 */
#include <math.h>

#include "kernels/net_int.h"

double eg__loss_rows(eg_loss loss, const float *z, const int32_t *y, int n,
		     int k, float scale, float *dz, float *db, int *correct)
{
	double total = 0.0;
	int hits = 0;

	for (int i = 0; i < n; i++) {
		const float *zr = z + (size_t)i * k;
		float *dr = dz != NULL ? dz + (size_t)i * k : NULL;
		int yi = y[i];
		int arg = 0;

		if (yi < 0 || yi >= k) {
			total = NAN;
			continue;
		}
		for (int j = 1; j < k; j++)
			if (zr[j] > zr[arg])
				arg = j;
		hits += arg == yi;

		switch (loss) {
		case EG_LOSS_XENT: {
			float mx = zr[arg];
			float s = 0.0f;
			if (dr != NULL) {
				for (int j = 0; j < k; j++) {
					dr[j] = expf(zr[j] - mx);
					s += dr[j];
				}
				float inv = scale / s;
				for (int j = 0; j < k; j++)
					dr[j] *= inv;
				dr[yi] -= scale;
			} else {
				for (int j = 0; j < k; j++)
					s += expf(zr[j] - mx);
			}
			total += (double)logf(s) + (double)mx - (double)zr[yi];
			break;
		}
		case EG_LOSS_MSE: {
			double l = 0.0;
			float g = 2.0f * scale / (float)k;
			for (int j = 0; j < k; j++) {
				float r = zr[j] - (j == yi ? 1.0f : 0.0f);
				l += (double)r * r;
				if (dr != NULL)
					dr[j] = g * r;
			}
			total += l / k;
			break;
		}
		case EG_LOSS_HINGE:
		default: {
			double l = 0.0;
			int viol = 0;
			float zy = zr[yi];
			for (int j = 0; j < k; j++) {
				float mgn = 1.0f + zr[j] - zy;
				int on = j != yi && mgn > 0.0f;
				if (j != yi && !(mgn <= 0.0f))
					l += mgn; /* NaN margins reach the sum */
				viol += on;
				if (dr != NULL)
					dr[j] = on ? scale : 0.0f;
			}
			if (dr != NULL)
				dr[yi] = -scale * (float)viol;
			total += l;
			break;
		}
		}
		if (db != NULL && dr != NULL) {
			/* The output bias gradient is the column sum of dz;
			 * row 0 assigns, so db needs no clearing. */
			if (i == 0)
				for (int j = 0; j < k; j++)
					db[j] = dr[j];
			else
				for (int j = 0; j < k; j++)
					db[j] += dr[j];
		}
	}
	if (correct != NULL)
		*correct = hits;
	return total;
}

double eg_loss_forward_backward(eg_loss loss, const float *z, const int32_t *y,
				int n, int k, float *dz)
{
	if (n <= 0 || k <= 0)
		return NAN;
	return eg__loss_rows(loss, z, y, n, k, 1.0f / (float)n, dz, NULL,
			     NULL) / n;
}
