/*
 * lottery.c - `kind: lottery`: iterative magnitude pruning (IMP) and the
 * lottery-ticket experiments of PAPERS.md §3, with optional sparse
 * transfer to other classes.
 *
 * IMP.  The net is created from model.*, init.*, train.* as a train trial
 * would be, and theta_0 is kept.  Round 0 trains the dense net; each later
 * round prunes the fraction prune.rate of the SURVIVING weights of the
 * previous round's trained net (per layer or globally, prune.scope; the
 * output layer at prune.output_rate, default rate / 2, filled by grid/),
 * resets the survivors and trains again (train.epochs epochs, a fresh
 * optimizer, the same data order every round, so rounds differ only in the
 * mask and the initial weights).  prune.rounds rounds of pruning follow the
 * dense round, so there are prune.rounds + 1 records.  Resets:
 *   init    survivors back to theta_0 (Frankle & Carbin);
 *   rewind  survivors back to theta_k, the weights after prune.rewind_epoch
 *           epochs of the dense round (0 = theta_0, i.e. init);
 *   random  the control: the masks are those IMP finds with init resets
 *           (the same seed gives the very masks of prune.reset: init), and
 *           each pruned round's numbers come from training a fresh random
 *           initialization (eg_net_reinit, seed + round) under that mask.
 *           This costs a second training per pruned round.
 * `remaining` is the fraction of prunable weights still live: the weights of
 * every layer, output layer included, biases excluded (eg_net_remaining).
 * After n rounds it is (1 - p)^n for layer scope up to the output layer's
 * rate and rounding.
 *
 * best_epoch is the epoch of minimum VALIDATION loss (PAPERS.md §3's
 * early-stopping metric, "tickets learn faster"); the validation split is
 * train.val_split, and 0.1 when train.val_split is 0 (the default), since a
 * lottery trial needs a validation set to report it.  The split is carved
 * from the training set (dataset.train_size counts it).
 *
 * Result: metrics = the final round's (train_acc, test_acc, losses,
 * best_epoch, remaining, params_*, sparsity, compression) plus
 * dense_test_acc (round 0's test_acc), rounds (records) and wall_s;
 * rounds = [{round, remaining, train_acc, test_acc, test_loss, val_loss,
 * best_epoch}]; curve = the final round's epochs.
 *
 * Sparse transfer (transfer.classes not null).  The ticket is found as
 * above on dataset.classes (all classes if null).  Then a target net with
 * the same architecture and a NEW output layer sized for transfer.classes
 * (a dense, unmasked head from the target net's own init) trains on
 * transfer.classes (relabelled 0.., same dataset sizes) with the ticket's
 * masks on every other layer, which start from (transfer.init) source: the
 * final round's trained weights and biases, init: theta_0, or random: a
 * fresh draw (stream "reinit" of the seed).  transfer.freeze: features
 * freezes every layer but the head (weights and biases keep their values;
 * masks stay).  Then metrics are the TARGET task's, with the ticket's
 * remaining, source_test_acc (the final source round) and dense_test_acc
 * (the dense source round); rounds are the source IMP's and curve the
 * target training's.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/net.h"
#include "kernels/rng.h"
#include "trials/trials_int.h"

#define LOTTERY_VAL_SPLIT 0.1

struct run_out {
	eg_val *curve;     /* owned; every epoch's point */
	int best_epoch, epochs, diverged;
};

/*
 * Trains `net` for `epochs` epochs (data order from the seed's "shuffle"
 * stream, restarted each call) and fills `out`; snapshots the weights into
 * `snap` after epoch `snap_epoch` when snap is not NULL.
 */
static int train_run(eg_net *net, const eg__data *data, const eg_val *params,
		     const eg_trial_hooks *hooks, int round, int snap_epoch,
		     float *snap, int32_t *order, struct run_out *out,
		     eg_diag *d)
{
	int epochs = (int)eg_val_get_int(params, "train.epochs", 10);
	uint64_t seed = (uint64_t)eg_val_get_int(params, "seed", 0);
	double best = INFINITY, sel;
	eg_val *point = NULL;
	eg_rng rng;
	int rc = EG_OK;

	memset(out, 0, sizeof(*out));
	out->curve = eg_val_list();
	if (out->curve == NULL)
		return eg_diag_set(d, EG_ENOMEM, "lottery: out of memory");
	for (size_t i = 0; i < data->train.n; i++)
		order[i] = (int32_t)i;
	eg_rng_seed_stream(&rng, seed, "shuffle");
	if (snap != NULL && snap_epoch == 0)
		eg_net_snapshot(net, snap);
	for (int epoch = 1; epoch <= epochs; epoch++) {
		double loss;

		eg_rng_shuffle(&rng, order, data->train.n);
		rc = eg_net_train_epoch(net, data->train.x, data->train.y,
					data->train.n, order, hooks->cancel,
					&loss);
		if (rc == EG_EDIVERGED) {
			out->diverged = 1;
			rc = EG_OK;
			break;
		}
		if (rc != EG_OK)
			return eg_diag_set(d, rc, "lottery: round %d, epoch "
					   "%d: %s", round, epoch,
					   eg_strerror(rc));
		if (snap != NULL && epoch == snap_epoch)
			eg_net_snapshot(net, snap);
		rc = eg__epoch_point(net, data, epoch, &point, &sel);
		if (rc == EG_OK && round >= 0)
			rc = eg_val_set_int(point, "round", round);
		if (rc == EG_OK) {
			rc = eg_val_push(out->curve, point);
			point = NULL;
		}
		if (rc != EG_OK) {
			eg_val_free(point);
			return eg_diag_set(d, rc, "lottery: round %d: %s",
					   round, eg_strerror(rc));
		}
		out->epochs = epoch;
		if (sel < best) {
			best = sel;
			out->best_epoch = epoch;
		}
		if (hooks->progress != NULL)
			hooks->progress(hooks->ud, eg_val_at(out->curve,
						(size_t)epoch - 1));
	}
	/* A snapshot epoch past the end (or never reached) keeps the last
	 * weights, so a rewind is never to garbage. */
	if (snap != NULL && snap_epoch > out->epochs)
		eg_net_snapshot(net, snap);
	return EG_OK;
}

/* The final (or, with no epoch, an untrained) point of a run. */
static int last_point(eg_net *net, const eg__data *data,
		      const struct run_out *r, eg_val **owned,
		      const eg_val **out)
{
	double sel;

	*owned = NULL;
	if (eg_val_len(r->curve) > 0) {
		*out = eg_val_at(r->curve, eg_val_len(r->curve) - 1);
		return EG_OK;
	}
	int rc = eg__epoch_point(net, data, 0, owned, &sel);
	*out = *owned;
	return rc;
}

static int round_record(eg_net *net, const eg__data *data, int round,
			const struct run_out *r, eg_val *rounds)
{
	eg_val *rec = eg_val_map(), *owned;
	const eg_val *last;
	int rc = last_point(net, data, r, &owned, &last);
	static const char *const keys[] = {"train_acc", "test_acc",
					   "test_loss", "val_loss"};

	if (rc == EG_OK)
		rc = eg_val_set_int(rec, "round", round);
	if (rc == EG_OK)
		rc = eg_val_set_num(rec, "remaining",
				    eg_net_remaining(net, NULL, NULL));
	for (size_t i = 0; rc == EG_OK && i < sizeof(keys) / sizeof(*keys); i++)
		if (eg_val_get(last, keys[i]) != NULL)
			rc = eg_val_set(rec, keys[i],
					eg_val_copy(eg_val_get(last, keys[i])));
	if (rc == EG_OK)
		rc = eg_val_set_int(rec, "best_epoch", r->best_epoch);
	if (rc == EG_OK && r->diverged)
		rc = eg_val_set_int(rec, "diverged", 1);
	eg_val_free(owned);
	if (rc == EG_OK)
		return eg_val_push(rounds, rec);
	eg_val_free(rec);
	return rc;
}

/* The trial's params with train.val_split defaulted for lottery and,
 * when `classes` is not NULL, dataset.classes replaced. */
static eg_val *lottery_params(const eg_val *params, const eg_val *classes)
{
	eg_val *p = eg_val_copy(params);

	if (p == NULL)
		return NULL;
	if (eg_val_get_num(params, "train.val_split", 0) == 0 &&
	    eg_val_set_path(p, "train.val_split",
			    eg_val_float(LOTTERY_VAL_SPLIT)) != EG_OK)
		goto err;
	if (classes != NULL &&
	    eg_val_set_path(p, "dataset.classes", eg_val_copy(classes)) != EG_OK)
		goto err;
	return p;
err:
	eg_val_free(p);
	return NULL;
}

/* Everything the IMP part hands on. */
struct imp {
	eg_net *net;        /* trained final round (of the reported path) */
	float *theta0;
	eg_val *rounds;     /* owned */
	struct run_out last; /* the final round's run (curve owned) */
	double dense_test_acc;
};

static void imp_free(struct imp *m)
{
	eg_net_free(m->net);
	free(m->theta0);
	eg_val_free(m->rounds);
	eg_val_free(m->last.curve);
}

static int imp_run(const eg_val *params, const eg__data *data,
		   const eg_trial_hooks *hooks, struct imp *m, eg_diag *d)
{
	const int rounds = (int)eg_val_get_int(params, "prune.rounds", 5);
	const double rate = eg_val_get_num(params, "prune.rate", 0.2);
	const double orate = eg_val_get_num(params, "prune.output_rate", rate / 2);
	const char *scope_s = eg_val_get_str(params, "prune.scope", "layer");
	const char *reset = eg_val_get_str(params, "prune.reset", "init");
	const int rewind_epoch = (int)eg_val_get_int(params, "prune.rewind_epoch", 1);
	const uint64_t seed = (uint64_t)eg_val_get_int(params, "seed", 0);
	eg_prune_scope scope = strcmp(scope_s, "global") == 0 ? EG_PRUNE_GLOBAL
							       : EG_PRUNE_LAYER;
	bool rewind = strcmp(reset, "rewind") == 0;
	bool random = strcmp(reset, "random") == 0;
	float *thetak = NULL;
	int32_t *order = NULL;
	eg_net_config cfg;
	struct run_out run = {0};
	int rc;

	if (!rewind && !random && strcmp(reset, "init") != 0)
		return eg_diag_set(d, EG_ENOTSUP, "prune.reset: '%s' is not "
				   "supported", reset);
	if (strcmp(scope_s, "layer") != 0 && strcmp(scope_s, "global") != 0)
		return eg_diag_set(d, EG_ENOTSUP, "prune.scope: '%s' is not "
				   "supported", scope_s);
	rc = eg__net_config(params, data, &cfg, d);
	if (rc == EG_OK)
		rc = eg_net_create(&cfg, &m->net, d);
	if (rc != EG_OK)
		return rc;
	size_t slen = eg_net_snapshot_len(m->net);
	m->theta0 = malloc(slen * sizeof(float));
	thetak = rewind ? malloc(slen * sizeof(float)) : NULL;
	order = malloc((data->train.n ? data->train.n : 1) * sizeof(*order));
	m->rounds = eg_val_list();
	if (m->theta0 == NULL || (rewind && thetak == NULL) || order == NULL ||
	    m->rounds == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "lottery: out of memory");
		goto out;
	}
	eg_net_snapshot(m->net, m->theta0);

	for (int r = 0; r <= rounds; r++) {
		if (r > 0) {
			rc = eg_net_prune(m->net, rate, orate, scope, d);
			if (rc != EG_OK)
				goto out;
			eg_net_restore(m->net, rewind ? thetak : m->theta0);
		}
		if (random && r > 0) {
			/* The control reports; the ticket path below (init
			 * reset) only finds the next mask. */
			eg_val_free(run.curve);
			eg_net_reinit(m->net, seed + (uint64_t)r);
			rc = train_run(m->net, data, params, hooks, r, -1, NULL,
				       order, &run, d);
			if (rc == EG_OK)
				rc = round_record(m->net, data, r, &run,
						  m->rounds);
			if (rc != EG_OK || r == rounds)
				goto out;
			eg_net_restore(m->net, m->theta0);
			struct run_out ticket;
			rc = train_run(m->net, data, params, hooks, r, -1, NULL,
				       order, &ticket, d);
			eg_val_free(ticket.curve);
			if (rc != EG_OK)
				goto out;
			continue;
		}
		eg_val_free(run.curve);
		rc = train_run(m->net, data, params, hooks, r,
			       r == 0 && rewind ? rewind_epoch : -1, thetak,
			       order, &run, d);
		if (rc == EG_OK)
			rc = round_record(m->net, data, r, &run, m->rounds);
		if (rc != EG_OK)
			goto out;
		if (r == 0)
			m->dense_test_acc = eg_val_get_num(
				eg_val_at(m->rounds, 0), "test_acc", NAN);
	}
out:
	m->last = run;
	free(thetak);
	free(order);
	return rc;
}

/* Copies the metric keys of a point into `metrics`. */
static int add_point_metrics(eg_net *net, const eg__data *data,
			     const struct run_out *r, eg_val *metrics)
{
	eg_val *owned;
	const eg_val *last;
	int rc = last_point(net, data, r, &owned, &last);

	if (rc == EG_OK)
		rc = eg__final_metrics(last, metrics);
	eg_val_free(owned);
	if (rc == EG_OK)
		rc = eg_val_set_int(metrics, "best_epoch", r->best_epoch);
	if (rc == EG_OK)
		rc = eg_val_set_int(metrics, "epochs", r->epochs);
	if (rc == EG_OK && r->diverged)
		rc = eg_val_set_int(metrics, "diverged", 1);
	if (rc == EG_OK)
		rc = eg__net_metrics(net, metrics);
	return rc;
}

/*
 * The transfer half: a target net on `tdata` whose non-output layers take
 * the ticket's masks and (per transfer.init) the source's weights.
 */
static int transfer_run(const eg_val *params, const eg__data *tdata,
			const eg_trial_hooks *hooks, struct imp *m,
			eg_val *metrics, eg_val **curve, eg_diag *d)
{
	const char *init = eg_val_get_str(params, "transfer.init", "source");
	const char *freeze = eg_val_get_str(params, "transfer.freeze", "none");
	const uint64_t seed = (uint64_t)eg_val_get_int(params, "seed", 0);
	eg_net_config cfg;
	eg_net *t = NULL;
	int32_t *order = NULL;
	struct run_out run = {0};
	int rc;

	if (strcmp(init, "source") != 0 && strcmp(init, "init") != 0 &&
	    strcmp(init, "random") != 0)
		return eg_diag_set(d, EG_ENOTSUP, "transfer.init: '%s' is not "
				   "supported", init);
	rc = eg__net_config(params, tdata, &cfg, d);
	if (rc == EG_OK)
		rc = eg_net_create(&cfg, &t, d);
	if (rc != EG_OK)
		return rc;
	order = malloc((tdata->train.n ? tdata->train.n : 1) * sizeof(*order));
	if (order == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "lottery: out of memory");
		goto out;
	}
	if (strcmp(init, "init") == 0)
		eg_net_restore(m->net, m->theta0); /* the source net is done */
	if (strcmp(init, "random") == 0)
		eg_net_reinit(t, seed);
	const int L = eg_net_layers(t);
	for (int l = 0; l < L - 1; l++) {
		float *sw, *sb, *tw, *tb;
		size_t snw, snb, tnw, tnb;
		const float *mask;

		eg_net_params(m->net, l, &sw, &snw, &sb, &snb);
		eg_net_params(t, l, &tw, &tnw, &tb, &tnb);
		if (snw != tnw || snb != tnb) {
			rc = eg_diag_set(d, EG_ESTATE, "lottery: transfer: "
					 "layer %d differs between source and "
					 "target", l);
			goto out;
		}
		if (strcmp(init, "random") != 0) {
			memcpy(tw, sw, snw * sizeof(float));
			if (snb > 0)
				memcpy(tb, sb, snb * sizeof(float));
		}
		eg_net_mask(m->net, l, &mask);
		if (mask != NULL && (rc = eg_net_set_mask(t, l, mask)) != EG_OK) {
			rc = eg_diag_set(d, rc, "lottery: transfer: %s",
					 eg_strerror(rc));
			goto out;
		}
		if (strcmp(freeze, "features") == 0)
			eg_net_set_frozen(t, l, true);
	}
	eg_net_params_changed(t);
	eg_net_reset_optimizer(t);
	rc = train_run(t, tdata, params, hooks, -1, -1, NULL, order, &run, d);
	if (rc == EG_OK)
		rc = add_point_metrics(t, tdata, &run, metrics);
	if (rc == EG_OK)
		rc = eg_val_set_num(metrics, "transfer_remaining",
				    eg_net_remaining(t, NULL, NULL));
	if (rc == EG_OK) {
		*curve = run.curve;
		run.curve = NULL;
	}
out:
	eg_val_free(run.curve);
	free(order);
	eg_net_free(t);
	return rc;
}

int eg__trial_lottery(const eg_val *params, const eg_trial_hooks *hooks,
		      eg_val **result, eg_diag *d)
{
	const eg_val *tclasses = eg_val_get_path(params, "transfer.classes");
	bool transfer = tclasses != NULL && eg_val_len(tclasses) > 0;
	double t0 = eg__now();
	eg_val *sp = NULL, *tp = NULL, *res = NULL, *metrics = NULL;
	eg_val *curve = NULL;
	eg__data data = {0}, tdata = {0};
	struct imp m = {0};
	int rc;

	if (hooks->threads > 0)
		openblas_set_num_threads(hooks->threads);
	sp = lottery_params(params, NULL);
	tp = transfer ? lottery_params(params, tclasses) : NULL;
	res = eg_val_map();
	metrics = eg_val_map();
	if (sp == NULL || (transfer && tp == NULL) || res == NULL ||
	    metrics == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "lottery: out of memory");
		goto out;
	}
	rc = eg__data_prepare(sp, &data, d);
	if (rc == EG_OK && transfer)
		rc = eg__data_prepare(tp, &tdata, d);
	if (rc == EG_OK)
		rc = imp_run(sp, &data, hooks, &m, d);
	if (rc != EG_OK)
		goto out;

	double remaining = eg_net_remaining(m.net, NULL, NULL);
	if (transfer) {
		double src_acc = eg_val_get_num(
			eg_val_at(m.rounds, eg_val_len(m.rounds) - 1),
			"test_acc", NAN);
		rc = transfer_run(tp, &tdata, hooks, &m, metrics, &curve, d);
		if (rc == EG_OK)
			rc = eg_val_set_num(metrics, "source_test_acc", src_acc);
	} else {
		rc = add_point_metrics(m.net, &data, &m.last, metrics);
		curve = m.last.curve;
		m.last.curve = NULL;
	}
	if (rc == EG_OK)
		rc = eg_val_set_num(metrics, "remaining", remaining);
	if (rc == EG_OK)
		rc = eg_val_set_num(metrics, "dense_test_acc", m.dense_test_acc);
	if (rc == EG_OK)
		rc = eg_val_set_int(metrics, "rounds",
				    (int64_t)eg_val_len(m.rounds));
	if (rc == EG_OK)
		rc = eg_val_set_num(metrics, "wall_s", eg__now() - t0);
	if (rc == EG_OK) {
		rc = eg_val_set(res, "metrics", metrics);
		metrics = NULL;
	}
	if (rc == EG_OK) {
		rc = eg_val_set(res, "curve", curve);
		curve = NULL;
	}
	if (rc == EG_OK) {
		rc = eg_val_set(res, "rounds", m.rounds);
		m.rounds = NULL;
	}
	if (rc != EG_OK && d != NULL && d->msg[0] == '\0')
		eg_diag_set(d, rc, "lottery: %s", eg_strerror(rc));
out:
	imp_free(&m);
	eg__data_free(&data);
	eg__data_free(&tdata);
	eg_val_free(sp);
	eg_val_free(tp);
	eg_val_free(metrics);
	eg_val_free(curve);
	if (rc != EG_OK) {
		eg_val_free(res);
		return rc;
	}
	*result = res;
	return EG_OK;
}
