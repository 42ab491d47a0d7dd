/*
 * test_prune.c - masks, magnitude pruning, snapshots, resets and frozen
 * layers of eg_net (kernels/net.h, PAPERS.md §3): the exact number of
 * weights each round removes (per layer and global, the output layer at
 * its own rate) and that they are the smallest survivors; masked weights
 * exactly zero after training with momentum, weight decay and Adam, for
 * dense, conv and circulant layers; each reset's semantics (restore =
 * theta * mask with a fresh optimizer, rewind to a mid-training snapshot,
 * reinit = a new draw under the same mask); frozen layers.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/net.h"
#include "kernels/rng.h"
#include "tests/harness.h"

enum { N = 256, NIN = 36, K = 4 };
static float X[N * NIN];
static int32_t Y[N];

static void make_data(void)
{
	static float mu[K * NIN];
	eg_rng g;
	eg_rng_seed(&g, 21);
	for (int i = 0; i < K * NIN; i++)
		mu[i] = (float)eg_rng_normal(&g);
	for (int i = 0; i < N; i++) {
		Y[i] = i % K;
		for (int j = 0; j < NIN; j++)
			X[i * NIN + j] = mu[Y[i] * NIN + j] +
					 (float)eg_rng_normal(&g);
	}
}

static eg_net_config mlp(void)
{
	eg_net_config c;
	eg_net_config_default(&c);
	c.n_in = NIN;
	c.n_hidden = 2;
	c.hidden[0] = 40;
	c.hidden[1] = 20;
	c.n_out = K;
	c.batch = 32;
	c.lr = 0.05;
	c.momentum = 0.9;
	c.weight_decay = 1e-3;
	c.seed = 9;
	return c;
}

static size_t live_of(eg_net *net, int l)
{
	const float *m;
	eg_net_layer_desc ds;
	size_t n = 0;
	EG_CHECK_OK(eg_net_mask(net, l, &m));
	EG_CHECK_OK(eg_net_layer_info(net, l, &ds));
	if (m == NULL)
		return ds.weights;
	for (size_t i = 0; i < ds.weights; i++)
		n += m[i] != 0.0f;
	return n;
}

/* Every masked weight is exactly 0 and every mask entry 0 or 1. */
static void check_masked_zero(eg_net *net)
{
	for (int l = 0; l < eg_net_layers(net); l++) {
		const float *m;
		float *w;
		size_t nw;
		EG_CHECK_OK(eg_net_mask(net, l, &m));
		EG_CHECK_OK(eg_net_params(net, l, &w, &nw, NULL, NULL));
		for (size_t i = 0; m != NULL && i < nw; i++) {
			EG_CHECK(m[i] == 0.0f || m[i] == 1.0f);
			if (m[i] == 0.0f)
				EG_CHECK_MSG(w[i] == 0.0f, "layer %d weight %zu "
					     "masked but %g", l, i, w[i]);
		}
	}
}

EG_TEST(layer_pruning_exact_counts_smallest_first)
{
	eg_net_config c = mlp();
	eg_net *net;
	size_t live[3], before_w[3];
	static float keep[40 * NIN];
	make_data();
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	EG_CHECK_NEAR(eg_net_remaining(net, NULL, NULL), 1.0, 0);
	for (int l = 0; l < 3; l++)
		live[l] = before_w[l] = live_of(net, l);
	for (int round = 1; round <= 4; round++) {
		double loss;
		EG_CHECK_OK(eg_net_train_epoch(net, X, Y, N, NULL, NULL, &loss));
		/* Remember layer 0 to check which weights go. */
		float *w0;
		EG_CHECK_OK(eg_net_params(net, 0, &w0, NULL, NULL, NULL));
		memcpy(keep, w0, 40 * NIN * sizeof(float));
		EG_CHECK_OK(eg_net_prune(net, 0.2, 0.1, EG_PRUNE_LAYER, NULL));
		for (int l = 0; l < 3; l++) {
			double rate = l == 2 ? 0.1 : 0.2;
			live[l] -= (size_t)llround(rate * (double)live[l]);
			EG_CHECK_INT(live_of(net, l), live[l]);
		}
		/* The removed weights of layer 0 are no larger than any kept. */
		const float *m;
		EG_CHECK_OK(eg_net_mask(net, 0, &m));
		float max_gone = 0, min_kept = INFINITY;
		for (int i = 0; i < 40 * NIN; i++) {
			if (keep[i] == 0.0f)
				continue; /* gone in an earlier round */
			if (m[i] == 0.0f)
				max_gone = fmaxf(max_gone, fabsf(keep[i]));
			else
				min_kept = fminf(min_kept, fabsf(keep[i]));
		}
		EG_CHECK(max_gone <= min_kept);
		check_masked_zero(net);
	}
	size_t lv, tot;
	double rem = eg_net_remaining(net, &lv, &tot);
	EG_CHECK_INT(tot, before_w[0] + before_w[1] + before_w[2]);
	EG_CHECK_INT(lv, live[0] + live[1] + live[2]);
	EG_CHECK_NEAR(rem, (double)lv / (double)tot, 1e-12);
	/* Four rounds at 20 %: the hidden layers keep 0.8^4 up to rounding. */
	EG_CHECK_NEAR((double)live[0] / before_w[0], pow(0.8, 4), 2e-3);
	/* Biases are never pruned. */
	EG_CHECK_INT(eg_net_params_total(net),
		     before_w[0] + before_w[1] + before_w[2] + 40 + 20 + K);
	eg_net_free(net);
}

EG_TEST(global_pruning_pools_hidden_layers)
{
	eg_net_config c = mlp();
	eg_net *net;
	make_data();
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	/* Make layer 1's weights much smaller than layer 0's: a global
	 * ranking must take them first. */
	float *w1;
	size_t n1;
	EG_CHECK_OK(eg_net_params(net, 1, &w1, &n1, NULL, NULL));
	for (size_t i = 0; i < n1; i++)
		w1[i] *= 1e-6f;
	eg_net_params_changed(net);
	size_t h0 = live_of(net, 0), h1 = live_of(net, 1), o = live_of(net, 2);
	EG_CHECK_OK(eg_net_prune(net, 0.25, 0.5, EG_PRUNE_GLOBAL, NULL));
	size_t drop = (size_t)llround(0.25 * (double)(h0 + h1));
	EG_CHECK(drop < h1);
	EG_CHECK_INT(live_of(net, 0), h0);        /* untouched */
	EG_CHECK_INT(live_of(net, 1), h1 - drop); /* took it all */
	EG_CHECK_INT(live_of(net, 2), o - (size_t)llround(0.5 * (double)o));
	eg_diag d = {{0}};
	EG_CHECK(eg_net_prune(net, 1.0, 0.1, EG_PRUNE_LAYER, &d) == EG_ERANGE);
	EG_CHECK(eg_net_prune(net, 0.1, -0.1, EG_PRUNE_LAYER, &d) == EG_ERANGE);
	eg_net_free(net);
}

/* Train a pruned net of every layer kind with SGD momentum + weight decay
 * and with Adam: masked weights never move. */
EG_TEST(masked_weights_stay_zero_through_training)
{
	make_data();
	for (int t = 0; t < 6; t++) {
		eg_net_config c = mlp();
		eg_net *net;
		double loss;
		c.optim = t % 2 ? EG_OPT_ADAM : EG_OPT_SGD;
		if (t % 2)
			c.lr = 0.005;
		if (t / 2 == 1) {
			c.circulant_block = 4;
		} else if (t / 2 == 2) {
			c.in_c = 1;
			c.in_h = c.in_w = 6;
			c.n_conv = 1;
			c.conv[0] = (eg_net_conv){3, 3, 2};
			c.algo = EG_ALGO_HYBRID;
			c.act = EG_ACT_TANH;
		}
		EG_CHECK_OK(eg_net_create(&c, &net, NULL));
		EG_CHECK_OK(eg_net_train_epoch(net, X, Y, N, NULL, NULL, &loss));
		/* Prune mid-training: momentum and Adam state exist now. */
		EG_CHECK_OK(eg_net_prune(net, 0.5, 0.3, EG_PRUNE_LAYER, NULL));
		check_masked_zero(net);
		double rem = eg_net_remaining(net, NULL, NULL);
		for (int e = 0; e < 3; e++)
			EG_CHECK_OK(eg_net_train_epoch(net, X, Y, N, NULL, NULL,
						       &loss));
		check_masked_zero(net);
		EG_CHECK_NEAR(eg_net_remaining(net, NULL, NULL), rem, 0);
		/* Live weights did train: the net still fits the blobs. */
		double acc;
		EG_CHECK_OK(eg_net_evaluate(net, X, Y, N, &loss, &acc));
		EG_CHECK_MSG(acc > 0.8, "kind %d: accuracy %.3f", t, acc);
		EG_CHECK(eg_net_params_nonzero(net) <
			 eg_net_params_total(net));
		eg_net_free(net);
	}
}

EG_TEST(resets_restore_rewind_reinit)
{
	eg_net_config c = mlp();
	eg_net *net, *fresh;
	double loss, l2;
	make_data();
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	size_t len = eg_net_snapshot_len(net);
	EG_CHECK_INT(len, eg_net_params_total(net));
	float *t0 = malloc(len * sizeof(float)), *tk = malloc(len * sizeof(float));
	float *now = malloc(len * sizeof(float));
	EG_CHECK(t0 && tk && now);
	eg_net_snapshot(net, t0);

	/* restore(theta_0) with no mask gives back the very net a fresh
	 * create makes: same weights AND a cleared optimizer (the next step
	 * is bit-identical). */
	EG_CHECK_OK(eg_net_train_epoch(net, X, Y, N, NULL, NULL, &loss));
	eg_net_snapshot(net, tk);
	EG_CHECK_OK(eg_net_train_epoch(net, X, Y, N, NULL, NULL, &loss));
	eg_net_restore(net, t0);
	EG_CHECK_OK(eg_net_create(&c, &fresh, NULL));
	EG_CHECK_OK(eg_net_train_batch(net, X, Y, 32, &loss));
	EG_CHECK_OK(eg_net_train_batch(fresh, X, Y, 32, &l2));
	EG_CHECK(loss == l2);
	eg_net_snapshot(net, now);
	float *fw = malloc(len * sizeof(float));
	eg_net_snapshot(fresh, fw);
	EG_CHECK(memcmp(now, fw, len * sizeof(float)) == 0);
	free(fw);
	eg_net_free(fresh);

	/* Prune, then reset to theta_0: exactly theta_0 * m, biases too. */
	EG_CHECK_OK(eg_net_prune(net, 0.6, 0.2, EG_PRUNE_LAYER, NULL));
	eg_net_restore(net, t0);
	eg_net_snapshot(net, now);
	size_t off = 0, masked = 0;
	for (int l = 0; l < eg_net_layers(net); l++) {
		const float *m;
		size_t nw, nb;
		EG_CHECK_OK(eg_net_mask(net, l, &m));
		EG_CHECK_OK(eg_net_params(net, l, NULL, &nw, NULL, &nb));
		for (size_t i = 0; i < nw; i++) {
			EG_CHECK(now[off + i] == (m[i] != 0.0f ? t0[off + i] : 0.0f));
			masked += m[i] == 0.0f;
		}
		for (size_t i = 0; i < nb; i++)
			EG_CHECK(now[off + nw + i] == t0[off + nw + i]);
		off += nw + nb;
	}
	EG_CHECK(masked > 0);

	/* Rewind: the epoch-1 snapshot under the same mask. */
	eg_net_restore(net, tk);
	eg_net_snapshot(net, now);
	off = 0;
	for (int l = 0; l < eg_net_layers(net); l++) {
		const float *m;
		size_t nw, nb;
		eg_net_mask(net, l, &m);
		eg_net_params(net, l, NULL, &nw, NULL, &nb);
		for (size_t i = 0; i < nw; i++)
			EG_CHECK(now[off + i] == (m[i] != 0.0f ? tk[off + i] : 0.0f));
		off += nw + nb;
	}

	/* Reinit: new values where live (same scale), zero where masked,
	 * biases 0, deterministic in the seed. */
	eg_net_reinit(net, 123);
	eg_net_snapshot(net, now);
	float *again = malloc(len * sizeof(float));
	eg_net_reinit(net, 123);
	eg_net_snapshot(net, again);
	EG_CHECK(memcmp(now, again, len * sizeof(float)) == 0);
	eg_net_reinit(net, 124);
	eg_net_snapshot(net, again);
	EG_CHECK(memcmp(now, again, len * sizeof(float)) != 0);
	free(again);
	check_masked_zero(net);
	const float *m0;
	size_t nw0, nb0;
	eg_net_mask(net, 0, &m0);
	eg_net_params(net, 0, NULL, &nw0, NULL, &nb0);
	double ss_new = 0, ss_old = 0;
	size_t same = 0, lv = 0;
	eg_net_reinit(net, 123);
	eg_net_snapshot(net, now);
	for (size_t i = 0; i < nw0; i++) {
		if (m0[i] == 0.0f)
			continue;
		lv++;
		same += now[i] == t0[i];
		ss_new += (double)now[i] * now[i];
		ss_old += (double)t0[i] * t0[i];
	}
	EG_CHECK(same == 0);
	/* Survivors of magnitude pruning are the large draws of theta_0, so
	 * compare the new draw with the init deviation itself (He: 2/fan_in). */
	EG_CHECK_NEAR(sqrt(ss_new / lv), sqrt(2.0 / NIN), 0.1 * sqrt(2.0 / NIN));
	EG_CHECK(ss_old / lv > ss_new / lv);
	for (size_t i = 0; i < nb0; i++)
		EG_CHECK(now[nw0 + i] == 0.0f);
	free(t0);
	free(tk);
	free(now);
	eg_net_free(net);
}

EG_TEST(frozen_layers_keep_their_values)
{
	eg_net_config c = mlp();
	eg_net *net;
	double loss;
	make_data();
	EG_CHECK_OK(eg_net_create(&c, &net, NULL));
	size_t len = eg_net_snapshot_len(net);
	float *a = malloc(len * sizeof(float)), *b = malloc(len * sizeof(float));
	EG_CHECK(a && b);
	EG_CHECK_OK(eg_net_set_frozen(net, 0, true));
	EG_CHECK_OK(eg_net_set_frozen(net, 1, true));
	EG_CHECK(eg_net_set_frozen(net, 3, true) == EG_ERANGE);
	eg_net_snapshot(net, a);
	EG_CHECK_OK(eg_net_train_epoch(net, X, Y, N, NULL, NULL, &loss));
	eg_net_snapshot(net, b);
	size_t n01 = (size_t)(40 * NIN + 40 + 20 * 40 + 20);
	EG_CHECK(memcmp(a, b, n01 * sizeof(float)) == 0);
	EG_CHECK(memcmp(a + n01, b + n01, (len - n01) * sizeof(float)) != 0);
	free(a);
	free(b);
	eg_net_free(net);
}

EG_TEST_MAIN({"layer_pruning_exact_counts_smallest_first",
	      layer_pruning_exact_counts_smallest_first, 20},
	     {"global_pruning_pools_hidden_layers",
	      global_pruning_pools_hidden_layers, 10},
	     {"masked_weights_stay_zero_through_training",
	      masked_weights_stay_zero_through_training, 20},
	     {"resets_restore_rewind_reinit", resets_restore_rewind_reinit, 20},
	     {"frozen_layers_keep_their_values",
	      frozen_layers_keep_their_values, 10})
