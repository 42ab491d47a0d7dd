/*
 * coverify.c - `kind: coverify`: two-level, three-way co-verification of
 * one trained network (PAPERS.md §5) with a simulated board, in-process.
 *
 * Stage 1 trains the network exactly as a train trial with the same
 * dataset.*, model.*, init.*, train.* and seed would (eg__train_network),
 * so the result carries the training curve and metrics.  Stage 2 takes the
 * first coverify.probes examples of the test set (fewer if the set is
 * smaller) and computes every layer's output three ways:
 *
 *   software  the float reference of kernels/qdense.h (bit-identical to
 *             eg_net_predict);
 *   design    the ap_fixed model of kernels/qdense.h with the hls.* types;
 *   hardware  a sim board (kernels/board_sim.h) configured with the same
 *             hls.* types and the default cost model, with coverify.fault
 *             injected when set (seeded by the trial seed).
 *
 * Level 2 (the paradigms against each other) gives a `layers` row per
 * layer and pair: s_tol (tolerance coverify.tolerance, slack one lsb of
 * the activation type), s_bit (design-hardware only: raw codes; null for
 * pairs with software, which has no codes), max_abs, rel_l2, and
 * top1_agree on the final layer (null elsewhere).  first_divergent_layer
 * is the first layer whose design-hardware S_bit is below 100 (-1 if
 * none).
 *
 * Level 1 (each paradigm against its own expected behaviour), cheap
 * checks chosen to be real:
 *   software  the per-layer reference's final layer equals eg_net_predict
 *             bit for bit (l1_sw_mismatch: elements that differ);
 *   design    every software value lies inside the activation type's
 *             range, else the design must wrap or saturate there
 *             (l1_design_out_of_range, per layer in `outputs`);
 *   hardware  the board's known-answer health check against the design
 *             model of the declared hls.* types (l1_hw_health 1/0) and the
 *             board's overflow counters (l1_hw_overflow, per layer).
 *
 * `board` records the sim board's cost model and its health verdict
 * ("good" / "bad", with the first mismatching known-answer code).
 *
 * `outputs` holds a row per layer and paradigm (the layer_outputs table):
 * layer, name, source, n, checksum (first 128 bits of the SHA-256 of the
 * codes, or of the doubles for software, in machine byte order) and, for
 * hardware, est_cycles and est_energy_nj per inference.
 *
 * The hardware paradigm is a callback (trials/coverify.h): `run --local`
 * uses eg_coverify_hw_sim below, a hardware agent its own boards through
 * eg_coverify_run_network, which rebuilds the network from the data a
 * train trial exported instead of training it.
 *
 * Accuracies: test_acc is the float network on the whole test set (from
 * training); design_test_acc the design model on the whole test set;
 * hw_test_acc the board on the probes only (boards are the scarce
 * resource), next to sw_probe_acc, the float network on the same probes.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "kernels/board_sim.h"
#include "kernels/circulant.h"
#include "kernels/qdense.h"
#include "kernels/similarity.h"
#include "trials/coverify.h"
#include "trials/trials_int.h"

/* Test examples the design model classifies per call, to bound memory. */
#define DESIGN_CHUNK 256

static const char *const pair_names[3] = {
	"software-design", "design-hardware", "software-hardware"};
static const char *const source_names[3] = {"software", "design",
					     "hardware"};

/* Everything stage 2 allocates, freed in one place. */
struct bufs {
	double *sw, *dv, *hv;
	int64_t *dc, *hc;
	float *logits;
	void *qscratch, *fscratch;
	uint64_t *ovf;
	int64_t *chunk_codes;
	void *chunk_scratch;
	float *expanded[EG_NET_MAX_LAYERS]; /* dense forms of circulant layers */
};

static void bufs_free(struct bufs *b)
{
	free(b->sw);
	free(b->dv);
	free(b->hv);
	free(b->dc);
	free(b->hc);
	free(b->logits);
	free(b->qscratch);
	free(b->fscratch);
	free(b->ovf);
	free(b->chunk_codes);
	free(b->chunk_scratch);
	for (int l = 0; l < EG_NET_MAX_LAYERS; l++)
		free(b->expanded[l]);
}

/*
 * The network as a dense stack: dense layers as they are, block-circulant
 * layers expanded to the dense matrix they stand for (their block size in
 * blocks[l], 0 for dense), conv layers refused.
 */
static int stack_of(eg_net *net, eg_qdense_layer *layers, int *blocks,
		    int *n_layers, struct bufs *b, eg_diag *d)
{
	int L = eg_net_layers(net);
	int k = eg_net_config_of(net)->circulant_block;

	if (L < 1 || L > EG_NET_MAX_LAYERS)
		return eg_diag_set(d, EG_ERANGE, "coverify: %d layers", L);
	for (int l = 0; l < L; l++) {
		eg_net_layer_desc desc;
		float *w, *bias;
		size_t nw, nb;
		int rc = eg_net_layer_info(net, l, &desc);

		if (rc != EG_OK)
			return eg_diag_set(d, rc, "coverify: layer %d: %s", l,
					   eg_strerror(rc));
		blocks[l] = 0;
		if (desc.kind == EG_LAYER_DENSE) {
			float *bb;

			rc = eg_net_layer(net, l, &w, &bb, &layers[l].rows,
					  &layers[l].cols);
			layers[l].w = w;
			layers[l].b = bb;
		} else if (desc.kind == EG_LAYER_CIRCULANT) {
			size_t m = (size_t)desc.out_len, n = (size_t)desc.in_len;

			rc = eg_net_params(net, l, &w, &nw, &bias, &nb);
			if (rc == EG_OK &&
			    (b->expanded[l] = malloc(m * n * sizeof(float))) == NULL)
				return eg_diag_set(d, EG_ENOMEM,
						   "coverify: out of memory");
			if (rc == EG_OK)
				eg_circ_expand(m, n, (size_t)k, w, b->expanded[l]);
			layers[l] = (eg_qdense_layer){desc.out_len, desc.in_len,
						      b->expanded[l],
						      nb > 0 ? bias : NULL};
			blocks[l] = k;
		} else {
			return eg_diag_set(d, EG_ENOTSUP, "coverify: layer %d is "
					   "a conv layer; the design model and "
					   "the sim board take dense and "
					   "block-circulant layers only", l);
		}
		if (rc != EG_OK)
			return eg_diag_set(d, rc, "coverify: layer %d: %s", l,
					   eg_strerror(rc));
	}
	*n_layers = L;
	return EG_OK;
}

static size_t argmax_d(const double *v, size_t k)
{
	size_t best = 0;

	for (size_t j = 1; j < k; j++)
		if (v[j] > v[best])
			best = j;
	return best;
}

static size_t argmax_c(const int64_t *v, size_t k)
{
	size_t best = 0;

	for (size_t j = 1; j < k; j++)
		if (v[j] > v[best])
			best = j;
	return best;
}

/* Accuracy of the design model over the whole test set, in chunks. */
static int design_accuracy(const eg_qdense_types *ty, eg_act act,
			   const eg_qdense_layer *layers, int L,
			   const eg_dataset *test, struct bufs *b,
			   const volatile int *cancel, double *acc,
			   eg_diag *d)
{
	size_t k = (size_t)layers[L - 1].rows, cols = (size_t)layers[0].cols;
	size_t ssize = eg_qdense_scratch_size(layers, L, DESIGN_CHUNK);
	size_t right = 0;
	int nout = eg_qdense_output_count(L);

	b->chunk_codes = malloc(eg_qdense_outputs_len(layers, L, DESIGN_CHUNK) *
				sizeof(int64_t));
	b->chunk_scratch = malloc(ssize);
	if (b->chunk_codes == NULL || b->chunk_scratch == NULL)
		return eg_diag_set(d, EG_ENOMEM, "coverify: out of memory");
	for (size_t i = 0; i < test->n; i += DESIGN_CHUNK) {
		size_t n = test->n - i < DESIGN_CHUNK ? test->n - i : DESIGN_CHUNK;
		size_t off = eg_qdense_output_offset(layers, L, n, nout - 1, NULL);
		int rc;

		if (cancel != NULL && *cancel)
			return eg_diag_set(d, EG_ECANCELLED, "coverify: cancelled");
		rc = eg_qdense_forward(ty, act, layers, L, test->x + i * cols, n,
				       b->chunk_scratch, ssize, b->chunk_codes,
				       NULL, d);
		if (rc != EG_OK)
			return rc;
		for (size_t r = 0; r < n; r++)
			right += argmax_c(b->chunk_codes + off + r * k, k) ==
				 (size_t)test->y[i + r];
	}
	*acc = test->n ? (double)right / (double)test->n : 0;
	return EG_OK;
}

static double probe_accuracy(const double *final, const int32_t *y,
			     size_t n, size_t k)
{
	size_t right = 0;

	for (size_t r = 0; r < n; r++)
		right += argmax_d(final + r * k, k) == (size_t)y[r];
	return n ? (double)right / (double)n : 0;
}

/* Reads coverify.fault (null or {layer, kind, bit, rate}). */
static int fault_from_params(const eg_val *params, eg_board_fault *f,
			     bool *set, eg_diag *d)
{
	const eg_val *v = eg_val_get_path(params, "coverify.fault");
	int rc;

	*set = false;
	if (v == NULL || eg_val_type_of(v) == EG_VAL_NULL)
		return EG_OK;
	if (eg_val_type_of(v) != EG_VAL_MAP)
		return eg_diag_set(d, EG_ETYPE, "coverify.fault: expected a "
				   "map or null");
	memset(f, 0, sizeof(*f));
	f->layer = (int)eg_val_get_int(v, "layer", 0);
	f->bit = (int)eg_val_get_int(v, "bit", 0);
	f->rate = eg_val_get_num(v, "rate", 1.0);
	f->seed = (uint64_t)eg_val_get_int(params, "seed", 0);
	rc = eg_board_fault_kind_parse(eg_val_get_str(v, "kind", ""), &f->kind, d);
	if (rc != EG_OK)
		return eg_diag_prefix(d, rc, "coverify.fault");
	*set = true;
	return EG_OK;
}

static int set_num_or_null(eg_val *m, const char *key, bool present,
			   double v)
{
	return present ? eg_val_set_num(m, key, v)
		       : eg_val_set(m, key, eg_val_null());
}

/* Appends the three `layers` rows of output j. */
static int layer_rows(eg_val *list, int j, const char *name, size_t off,
		      size_t len, bool final, size_t probes, size_t k,
		      double tau, int frac, const struct bufs *b,
		      double s_tol[3], double *s_bit)
{
	const double *val[3] = {b->sw + off, b->dv + off, b->hv + off};
	static const int ref[3] = {0, 1, 0}, cand[3] = {1, 2, 2};
	int rc = EG_OK;

	*s_bit = eg_sim_s_bit(b->dc + off, b->hc + off, len);
	for (int p = 0; rc == EG_OK && p < 3; p++) {
		eg_val *row = eg_val_map();
		eg_sim_scores sc;

		if (row == NULL)
			return EG_ENOMEM;
		eg_sim_layer(val[ref[p]], val[cand[p]], len, tau, frac, &sc);
		s_tol[p] = sc.s_tol;
		rc = eg_val_set_int(row, "layer", j);
		if (rc == EG_OK)
			rc = eg_val_set_str(row, "name", name);
		if (rc == EG_OK)
			rc = eg_val_set_str(row, "pair", pair_names[p]);
		if (rc == EG_OK)
			rc = eg_val_set_num(row, "s_tol", sc.s_tol);
		if (rc == EG_OK)
			rc = set_num_or_null(row, "s_bit", p == 1, *s_bit);
		if (rc == EG_OK)
			rc = eg_val_set_num(row, "max_abs", sc.max_abs);
		if (rc == EG_OK)
			rc = eg_val_set_num(row, "rel_l2", sc.rel_l2);
		if (rc == EG_OK)
			rc = set_num_or_null(
				row, "top1_agree", final,
				final ? eg_sim_top1(val[ref[p]], val[cand[p]],
						    probes, k, k)
				      : 0);
		if (rc == EG_OK)
			rc = eg_val_push(list, row);
		else
			eg_val_free(row);
	}
	return rc;
}

/* Appends the three `outputs` rows of output j. */
static int output_rows(eg_val *list, int j, const char *name, size_t off,
		       size_t len, const struct bufs *b,
		       const eg_board_est *est, const eg_fx_type *act_t,
		       uint64_t *out_of_range)
{
	double lo = eg_fx_min(act_t), hi = eg_fx_max(act_t);
	uint64_t oor = 0;
	int rc = EG_OK;

	for (size_t i = 0; i < len; i++)
		oor += b->sw[off + i] < lo || b->sw[off + i] > hi;
	*out_of_range = oor;
	for (int s = 0; rc == EG_OK && s < 3; s++) {
		const void *data = s == 0 ? (const void *)(b->sw + off)
			: s == 1 ? (const void *)(b->dc + off)
				 : (const void *)(b->hc + off);
		char sum[EG_KEY_HEX + 1];
		eg_val *row = eg_val_map();

		if (row == NULL)
			return EG_ENOMEM;
		rc = eg_hash_key_hex(data, len * 8, sum);
		if (rc == EG_OK)
			rc = eg_val_set_int(row, "layer", j);
		if (rc == EG_OK)
			rc = eg_val_set_str(row, "name", name);
		if (rc == EG_OK)
			rc = eg_val_set_str(row, "source", source_names[s]);
		if (rc == EG_OK)
			rc = eg_val_set_int(row, "n", (int64_t)len);
		if (rc == EG_OK)
			rc = eg_val_set_str(row, "checksum", sum);
		if (rc == EG_OK && s == 0)
			rc = eg_val_set_int(row, "out_of_range", (int64_t)oor);
		if (rc == EG_OK && s == 2)
			rc = eg_val_set_int(row, "est_cycles",
					    (int64_t)est[j].cycles);
		if (rc == EG_OK && s == 2)
			rc = eg_val_set_num(row, "est_energy_nj",
					    est[j].energy_nj);
		if (rc == EG_OK && s == 2)
			rc = eg_val_set_int(row, "overflow",
					    (int64_t)b->ovf[j]);
		if (rc == EG_OK)
			rc = eg_val_push(list, row);
		else
			eg_val_free(row);
	}
	return rc;
}

/* The sim board's configuration and health verdict, as result.board. */
static int board_summary(eg_val **out, const eg_board_config *cfg,
			 int health_ok, const eg_diag *hd)
{
	eg_val *m = eg_val_map();
	int rc = m != NULL ? EG_OK : EG_ENOMEM;

	if (rc == EG_OK)
		rc = eg_val_set_str(m, "backend", "sim");
	if (rc == EG_OK)
		rc = eg_val_set_int(m, "parallelism", cfg->parallelism);
	if (rc == EG_OK)
		rc = eg_val_set_num(m, "clock_mhz", cfg->clock_mhz);
	if (rc == EG_OK)
		rc = eg_val_set_num(m, "pj_per_mac", cfg->pj_per_mac);
	if (rc == EG_OK)
		rc = eg_val_set_num(m, "pj_per_access", cfg->pj_per_access);
	if (rc == EG_OK)
		rc = eg_val_set_str(m, "health", health_ok ? "good" : "bad");
	if (rc == EG_OK && !health_ok)
		rc = eg_val_set_str(m, "health_error", eg_diag_msg(hd, EG_ECORRUPT));
	if (rc != EG_OK) {
		eg_val_free(m);
		return rc;
	}
	*out = m;
	return EG_OK;
}

int eg_coverify_hw_sim(void *ud, eg_coverify_hw *hw, eg_diag *d)
{
	eg_board_config cfg;
	eg_board_sim *board = NULL;
	eg_diag hd = {{0}};
	int rc;

	(void)ud;
	cfg.types = *hw->types;
	eg_board_config_default(&cfg);
	rc = eg_board_sim_create(&cfg, &board, d);
	if (rc == EG_OK)
		rc = eg_board_sim_load(board, hw->act, hw->layers, hw->n_layers,
				       hw->blocks, d);
	if (rc == EG_OK && hw->fault != NULL)
		rc = eg_board_sim_set_fault(board, hw->fault, d);
	if (rc != EG_OK)
		goto out;
	/* Health first; a failing board still runs: the layer table is what
	 * says where it goes wrong. */
	hw->health_ok = eg_board_sim_health(board, hw->types, &hd) == EG_OK;
	rc = eg_board_sim_run(board, hw->x, hw->n, hw->cancel, hw->codes,
			      hw->values, hw->overflows, d);
	if (rc == EG_OK)
		rc = eg_board_sim_estimate(board, hw->est, &hw->total);
	if (rc == EG_OK) {
		hw->clock_mhz = cfg.clock_mhz;
		rc = board_summary(&hw->board, &cfg, hw->health_ok, &hd);
		if (rc != EG_OK)
			eg_diag_set(d, rc, "%s", eg_strerror(rc));
	}
out:
	eg_board_sim_free(board);
	return rc;
}

/* Stage 2 on a trained network; adds layers, outputs and metrics. */
static int verify(const eg_val *params, const eg_trial_hooks *hooks,
		  const eg__data *data, eg_net *net, eg_coverify_hw_fn hwfn,
		  void *ud, eg_val *res, eg_diag *d)
{
	eg_qdense_layer layers[EG_NET_MAX_LAYERS];
	eg_board_est est[2 * EG_NET_MAX_LAYERS];
	eg_qdense_types ty;
	eg_board_fault fault;
	eg_coverify_hw hw;
	struct bufs b;
	eg_val *metrics = eg_val_get(res, "metrics"), *lrows, *orows;
	eg_act act = eg_net_config_of(net)->act;
	double tau = eg_val_get_num(params, "coverify.tolerance", 0.01);
	size_t probes = (size_t)eg_val_get_int(params, "coverify.probes", 32);
	double min_s_tol[3] = {100, 100, 100}, design_acc = 0;
	int L = 0, nout, first_div = -1, frac, rc;
	bool has_fault;
	uint64_t oor_total = 0, ovf_total = 0, sw_mismatch = 0;
	size_t len, k, fin_off;
	int blocks[EG_NET_MAX_LAYERS];
	double sw_max_abs = 0;

	memset(&b, 0, sizeof(b));
	memset(&hw, 0, sizeof(hw));
	memset(est, 0, sizeof(est));
	rc = stack_of(net, layers, blocks, &L, &b, d);
	if (rc != EG_OK)
		goto out;
	rc = eg_qdense_types_hls(
		(int)eg_val_get_int(params, "hls.word_bits", 16),
		(int)eg_val_get_int(params, "hls.int_bits", 6),
		eg_val_get_str(params, "hls.round", "trn"),
		eg_val_get_str(params, "hls.overflow", "wrap"),
		(int)eg_val_get_int(params, "hls.accum_bits", 32),
		(int)eg_val_get_int(params, "hls.accum_int_bits", 16), &ty, d);
	if (rc == EG_OK)
		rc = fault_from_params(params, &fault, &has_fault, d);
	if (rc != EG_OK)
		goto out;
	if (probes > data->test.n)
		probes = data->test.n;
	if (probes == 0) {
		rc = eg_diag_set(d, EG_ERANGE, "coverify: the test set is empty");
		goto out;
	}
	nout = eg_qdense_output_count(L);
	len = eg_qdense_outputs_len(layers, L, probes);
	k = (size_t)layers[L - 1].rows;
	fin_off = eg_qdense_output_offset(layers, L, probes, nout - 1, NULL);
	frac = eg_fx_frac(&ty.act);

	b.sw = malloc(len * sizeof(double));
	b.dv = malloc(len * sizeof(double));
	b.hv = malloc(len * sizeof(double));
	b.dc = malloc(len * sizeof(int64_t));
	b.hc = malloc(len * sizeof(int64_t));
	b.logits = malloc(probes * k * sizeof(float));
	b.qscratch = malloc(eg_qdense_scratch_size(layers, L, probes));
	b.fscratch = malloc(eg_qdense_float_scratch_size(layers, L, probes));
	b.ovf = calloc((size_t)nout, sizeof(uint64_t));
	if (!b.sw || !b.dv || !b.hv || !b.dc || !b.hc || !b.logits ||
	    !b.qscratch || !b.fscratch || !b.ovf) {
		rc = eg_diag_set(d, EG_ENOMEM, "coverify: out of memory");
		goto out;
	}

	/* Software, and its level-1 check against the trained network. */
	rc = eg_qdense_float_forward(act, layers, L, data->test.x, probes,
				     b.fscratch,
				     eg_qdense_float_scratch_size(layers, L, probes),
				     b.sw, d);
	if (rc == EG_OK)
		rc = eg_net_predict(net, data->test.x, probes, b.logits);
	if (rc != EG_OK)
		goto out;
	for (size_t i = 0; i < probes * k; i++) {
		double e = fabs((double)b.logits[i] - b.sw[fin_off + i]);

		sw_mismatch += e != 0;
		if (!(e <= sw_max_abs))
			sw_max_abs = e; /* NaN sticks */
	}

	/* Design. */
	rc = eg_qdense_forward(&ty, act, layers, L, data->test.x, probes,
			       b.qscratch,
			       eg_qdense_scratch_size(layers, L, probes), b.dc,
			       b.dv, d);
	if (rc == EG_OK)
		rc = design_accuracy(&ty, act, layers, L, &data->test, &b,
				     hooks->cancel, &design_acc, d);
	if (rc != EG_OK)
		goto out;

	/* Hardware, on whatever board the caller has. */
	hw.act = act;
	hw.layers = layers;
	hw.n_layers = L;
	hw.blocks = blocks;
	hw.types = &ty;
	hw.fault = has_fault ? &fault : NULL;
	hw.x = data->test.x;
	hw.n = probes;
	hw.cancel = hooks->cancel;
	hw.codes = b.hc;
	hw.values = b.hv;
	hw.overflows = b.ovf;
	hw.est = est;
	rc = hwfn(ud, &hw, d);
	if (rc != EG_OK) {
		eg_diag_prefix(d, rc, "coverify: hardware");
		goto out;
	}

	/* Level 2 and the per-paradigm rows. */
	lrows = eg_val_list();
	orows = eg_val_list();
	rc = eg_val_set(res, "layers", lrows);
	if (rc == EG_OK)
		rc = eg_val_set(res, "outputs", orows);
	else
		eg_val_free(orows);
	for (int j = 0; rc == EG_OK && j < nout; j++) {
		size_t off, n;
		double st[3], sb;
		uint64_t oor;
		char name[32];

		off = eg_qdense_output_offset(layers, L, probes, j, &n);
		if (j % 2 == 0 && blocks[j / 2] > 1)
			snprintf(name, sizeof(name), "circ%d", j / 2);
		else
			eg_board_layer_name(act, j, name, sizeof(name));
		rc = layer_rows(lrows, j, name, off, n, j == nout - 1, probes,
				k, tau, frac, &b, st, &sb);
		if (rc == EG_OK)
			rc = output_rows(orows, j, name, off, n, &b, est,
					 &ty.act, &oor);
		if (rc != EG_OK)
			break;
		for (int p = 0; p < 3; p++)
			if (st[p] < min_s_tol[p])
				min_s_tol[p] = st[p];
		if (sb < 100 && first_div < 0)
			first_div = j;
		oor_total += oor;
		ovf_total += b.ovf[j];
	}

#define SETN(key, v) if (rc == EG_OK) rc = eg_val_set_num(metrics, key, v)
#define SETI(key, v) if (rc == EG_OK) rc = eg_val_set_int(metrics, key, (int64_t)(v))
	SETI("probes", probes);
	SETN("design_test_acc", design_acc);
	SETN("sw_probe_acc", probe_accuracy(b.sw + fin_off, data->test.y,
					    probes, k));
	SETN("hw_test_acc", probe_accuracy(b.hv + fin_off, data->test.y,
					   probes, k));
	SETI("first_divergent_layer", first_div);
	SETN("min_s_tol_sd", min_s_tol[0]);
	SETN("min_s_tol_dh", min_s_tol[1]);
	SETN("min_s_tol_sh", min_s_tol[2]);
	SETN("top1_agree_sd", eg_sim_top1(b.sw + fin_off, b.dv + fin_off,
					  probes, k, k));
	SETN("top1_agree_sh", eg_sim_top1(b.sw + fin_off, b.hv + fin_off,
					  probes, k, k));
	SETI("est_macs", hw.total.macs);
	SETI("est_cycles", hw.total.cycles);
	if (hw.clock_mhz > 0)
		SETN("est_latency_us", (double)hw.total.cycles / hw.clock_mhz);
	SETN("est_energy_nj", hw.total.energy_nj);
	SETI("l1_sw_mismatch", sw_mismatch);
	SETN("l1_sw_max_abs", sw_max_abs);
	SETI("l1_design_out_of_range", oor_total);
	SETI("l1_hw_health", hw.health_ok);
	SETI("l1_hw_overflow", ovf_total);
#undef SETN
#undef SETI
	if (rc == EG_OK && hw.board != NULL) {
		rc = eg_val_set(res, "board", hw.board);
		hw.board = NULL;
	}
	if (rc != EG_OK)
		eg_diag_set(d, rc, "coverify: %s", eg_strerror(rc));
out:
	eg_val_free(hw.board);
	bufs_free(&b);
	return rc;
}

int eg__trial_coverify(const eg_val *params, const eg_trial_hooks *hooks,
		       eg_val **result, eg_diag *d)
{
	double t0 = eg__now();
	eg__data data;
	eg_net *net = NULL;
	eg_val *res;
	int rc = eg__data_prepare(params, &data, d);

	if (rc != EG_OK)
		return rc;
	res = eg_val_map();
	if (res == NULL)
		rc = eg_diag_set(d, EG_ENOMEM, "coverify: out of memory");
	else
		rc = eg__train_network(params, hooks, &data, &net, res, d);
	if (rc == EG_OK)
		rc = verify(params, hooks, &data, net, eg_coverify_hw_sim, NULL,
			    res, d);
	if (rc == EG_OK)
		rc = eg_val_set_num(eg_val_get(res, "metrics"), "wall_s",
				    eg__now() - t0);
	eg_net_free(net);
	eg__data_free(&data);
	if (rc != EG_OK) {
		eg_val_free(res);
		return rc;
	}
	*result = res;
	return EG_OK;
}

/* The dataset cache of data.c is process-wide and unlocked (trials.h: one
 * trial at a time per process); a hardware agent runs one job per board,
 * so the preparation is serialized here. */
static pthread_mutex_t data_mu = PTHREAD_MUTEX_INITIALIZER;

int eg_coverify_run_network(const eg_val *params, const eg_val *network,
			    eg_coverify_hw_fn hwfn, void *ud,
			    const eg_trial_hooks *hooks, eg_val **result,
			    eg_diag *d)
{
	static const eg_trial_hooks none = {0};
	double t0 = eg__now(), sel;
	eg__data data;
	eg_net_config cfg;
	eg_net *net = NULL;
	eg_val *res = NULL, *metrics = NULL, *point = NULL;
	int rc;

	*result = NULL;
	if (hooks == NULL)
		hooks = &none;
	if (network == NULL || eg_val_type_of(network) != EG_VAL_MAP)
		return eg_diag_set(d, EG_EINVAL, "coverify: no network in the "
				   "trial's params (the train trial it "
				   "depends on did not export one)");
	pthread_mutex_lock(&data_mu);
	rc = eg__data_prepare(params, &data, d);
	pthread_mutex_unlock(&data_mu);
	if (rc != EG_OK)
		return rc;
	rc = eg__net_config(params, &data, &cfg, d);
	if (rc == EG_OK)
		rc = eg_net_create(&cfg, &net, d);
	if (rc == EG_OK)
		rc = eg_coverify_network_import(network, net, d);
	if (rc != EG_OK)
		goto out;
	res = eg_val_map();
	metrics = eg_val_map();
	rc = res != NULL && metrics != NULL ? eg_val_set(res, "metrics", metrics)
					    : EG_ENOMEM;
	if (res == NULL)
		eg_val_free(metrics);
	/* The network's own numbers, recomputed from the weights: they equal
	 * the train trial's final metrics when the network arrived intact. */
	if (rc == EG_OK)
		rc = eg__epoch_point(net, &data, 0, &point, &sel);
	if (rc == EG_OK)
		rc = eg__final_metrics(point, metrics);
	if (rc == EG_OK)
		rc = eg__net_metrics(net, metrics);
	if (rc != EG_OK) {
		eg_diag_set(d, rc, "coverify: %s", eg_strerror(rc));
		goto out;
	}
	rc = verify(params, hooks, &data, net, hwfn, ud, res, d);
	if (rc == EG_OK)
		rc = eg_val_set_num(metrics, "wall_s", eg__now() - t0);
out:
	eg_val_free(point);
	eg_net_free(net);
	pthread_mutex_lock(&data_mu);
	eg__data_free(&data);
	pthread_mutex_unlock(&data_mu);
	if (rc != EG_OK) {
		eg_val_free(res);
		return rc;
	}
	*result = res;
	return EG_OK;
}
