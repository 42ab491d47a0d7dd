/*
 * net_int.h - internals shared by the dense-network files of kernels/
 * (act.c, loss.c, optim.c, net.c).  Not for use outside kernels/.
 *
 * All functions here work on caller-owned float buffers, allocate nothing and
 * are meant to be called from the training loop: each makes exactly one pass
 * over its output.
 */
#ifndef EG_NET_INT_H
#define EG_NET_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/net.h"

/*
 * The fused epilogue of a dense layer: for an n x m row-major block `a`
 * holding H W^T, adds the bias b (m entries, or NULL), writes phi(a + b) to
 * `out` (which may be `a` itself) and phi'(a + b) to `dphi` (NULL when only
 * the forward value is wanted).
 */
void eg__act_epilogue(eg_act act, const float *a, const float *b, size_t n,
		      size_t m, float *out, float *dphi);

/*
 * Loss of n rows of logits z (n x k) against labels y: returns the SUM of
 * the per-example losses (double accumulation) and, if dz is not NULL,
 * writes scale * d(per-example loss)/dz into dz (so scale = 1/n gives the
 * gradient of the batch mean).  If db is not NULL it also receives the
 * column sums of dz (the output bias gradient) in the same pass; if correct
 * is not NULL it receives how many rows have their first arg max at y.
 * Labels must be in [0, k); rows with other labels give NaN.
 */
double eg__loss_rows(eg_loss loss, const float *z, const int32_t *y, int n,
		     int k, float scale, float *dz, float *db, int *correct);

/* SGD with momentum and L2 weight decay over n parameters:
 * v = mu v + (g + wd w); w -= lr v. */
void eg__optim_sgd(float *w, const float *g, float *v, size_t n, float lr,
		   float mu, float wd);

/* Adam (Kingma & Ba) with L2 weight decay added to the gradient:
 * g' = g + wd w; m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2;
 * w -= lr (m c1) / (sqrt(v c2) + eps) with c1 = 1 / (1 - b1^t) and
 * c2 = 1 / (1 - b2^t) the bias corrections of step t. */
void eg__optim_adam(float *w, const float *g, float *m, float *v, size_t n,
		    float lr, float b1, float b2, float eps, float c1,
		    float c2, float wd);

#endif
