/*
 * bench_board.c - the simulated board's throughput: inferences per second
 * of kernels/board_sim.h on a 784-128-64-10 ReLU MLP with <16, 6, rnd,
 * sat> types and a 32-bit accumulator (the sim16 boards `expgrid up
 * --boards N` makes), one example at a time as the board streams them,
 * and for comparison the design model (kernels/qdense.h) on the same
 * batch.  The board is the bit-exact reference, not a fast path: every
 * product is accumulated and re-quantized in order, so its rate bounds how
 * many probes a coverify trial can afford.  Weights are He-scaled normal
 * draws (xoshiro256**), inputs uniform in [0, 1) like normalized pixels.
 *
 * Output: human-readable lines and
 *     RESULT board_sim inferences_per_s=... us_per_inference=...
 *         design_inferences_per_s=... macs_per_s=...
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/board_sim.h"
#include "kernels/qdense.h"
#include "kernels/rng.h"

#define BATCH 64
#define MIN_SECONDS 1.5

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
	static const int sizes[4] = {784, 128, 64, 10};
	eg_qdense_layer layers[3];
	float *w[3] = {NULL}, *b[3] = {NULL}, *x = NULL;
	int64_t *codes = NULL;
	void *scratch = NULL;
	eg_board_config cfg;
	eg_board_sim *board = NULL;
	eg_diag d = {{0}};
	eg_rng rng;
	double t0, t, sim_rate, design_rate;
	size_t runs = 0, macs = 0, ssize;
	int rc = 1;

	eg_rng_seed(&rng, 42);
	for (int l = 0; l < 3; l++) {
		size_t rows = (size_t)sizes[l + 1], cols = (size_t)sizes[l];
		double sd = sqrt(2.0 / (double)cols);

		w[l] = malloc(rows * cols * sizeof(float));
		b[l] = malloc(rows * sizeof(float));
		if (w[l] == NULL || b[l] == NULL)
			goto out;
		for (size_t i = 0; i < rows * cols; i++)
			w[l][i] = (float)(sd * eg_rng_normal(&rng));
		for (size_t i = 0; i < rows; i++)
			b[l][i] = (float)(0.01 * eg_rng_normal(&rng));
		layers[l] = (eg_qdense_layer){(int)rows, (int)cols, w[l], b[l]};
		macs += rows * cols;
	}
	x = malloc((size_t)BATCH * 784 * sizeof(float));
	if (x == NULL)
		goto out;
	for (size_t i = 0; i < (size_t)BATCH * 784; i++)
		x[i] = (float)eg_rng_uniform(&rng);
	if (eg_qdense_types_hls(16, 6, "rnd", "sat", 32, 16, &cfg.types, &d) !=
	    EG_OK)
		goto fail;
	eg_board_config_default(&cfg);
	if (eg_board_sim_create(&cfg, &board, &d) != EG_OK ||
	    eg_board_sim_load(board, EG_ACT_RELU, layers, 3, NULL, &d) != EG_OK)
		goto fail;
	codes = malloc(eg_board_sim_outputs_len(board, BATCH) * sizeof(*codes));
	ssize = eg_qdense_scratch_size(layers, 3, BATCH);
	scratch = malloc(ssize);
	if (codes == NULL || scratch == NULL)
		goto out;

	t0 = now_s();
	do {
		if (eg_board_sim_run(board, x, BATCH, NULL, codes, NULL, NULL,
				     &d) != EG_OK)
			goto fail;
		runs++;
		t = now_s() - t0;
	} while (t < MIN_SECONDS);
	sim_rate = (double)(runs * BATCH) / t;

	runs = 0;
	t0 = now_s();
	do {
		if (eg_qdense_forward(&cfg.types, EG_ACT_RELU, layers, 3, x, BATCH,
				      scratch, ssize, codes, NULL, &d) != EG_OK)
			goto fail;
		runs++;
		t = now_s() - t0;
	} while (t < MIN_SECONDS);
	design_rate = (double)(runs * BATCH) / t;

	printf("sim board, 784-128-64-10 relu, <16,6,rnd,sat>, acc <32,16>: "
	       "%.0f inferences/s (%.1f us each, %.1f M MAC/s)\n",
	       sim_rate, 1e6 / sim_rate, sim_rate * (double)macs / 1e6);
	printf("design model (qdense) on the same batches: %.0f inferences/s\n",
	       design_rate);
	printf("RESULT board_sim inferences_per_s=%.1f us_per_inference=%.2f "
	       "design_inferences_per_s=%.1f macs_per_s=%.0f\n",
	       sim_rate, 1e6 / sim_rate, design_rate, sim_rate * (double)macs);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bench_board: %s\n", eg_diag_msg(&d, EG_EINVAL));
out:
	eg_board_sim_free(board);
	for (int l = 0; l < 3; l++) {
		free(w[l]);
		free(b[l]);
	}
	free(x);
	free(codes);
	free(scratch);
	return rc;
}
