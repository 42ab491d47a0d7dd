/*
 * train.c - `kind: train`: one network trained on one dataset, with a curve
 * point per epoch and final metrics (DESIGN.md "Metric names").
 *
 * Per epoch: shuffle (the trial seed's "shuffle" stream), one pass of
 * minibatch training, then a full evaluation of the train and test (and
 * validation) sets and the PAPERS.md §1 diagnostics on at most
 * DIAG_EXAMPLES training examples.  train_loss and train_acc are measured
 * after the epoch on the whole training set, not averaged during it, so
 * the curve shows the network as it is at the epoch's end.
 *
 * best_epoch is the epoch of minimum validation loss when train.val_split
 * > 0, else of minimum test loss (a diagnostic, not model selection: the
 * final metrics are those of the last epoch).
 *
 * A loss that stops being finite ends training early; the trial still
 * succeeds and reports metrics.diverged = 1 with the epochs completed, since
 * "this setting diverges" is a result a sweep is looking for.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/net.h"
#include "kernels/rng.h"
#include "trials/coverify.h"
#include "trials/trials_int.h"

#define DIAG_EXAMPLES 1000

struct name_map {
	const char *name;
	int value;
};

static const struct name_map acts[] = {
	{"relu", EG_ACT_RELU}, {"sin", EG_ACT_SIN}, {"tanh", EG_ACT_TANH},
	{"sigmoid", EG_ACT_SIGMOID}, {"linear", EG_ACT_LINEAR}, {NULL, 0}};
static const struct name_map losses[] = {
	{"xent", EG_LOSS_XENT}, {"mse", EG_LOSS_MSE}, {"hinge", EG_LOSS_HINGE},
	{NULL, 0}};
static const struct name_map inits[] = {
	{"he", EG_INIT_HE}, {"glorot", EG_INIT_GLOROT}, {"lecun", EG_INIT_LECUN},
	{"normal", EG_INIT_NORMAL}, {NULL, 0}};
static const struct name_map algos[] = {
	{"bp", EG_ALGO_BP}, {"fa", EG_ALGO_FA}, {"dfa", EG_ALGO_DFA},
	{"bdfa", EG_ALGO_BDFA}, {"hybrid", EG_ALGO_HYBRID}, {NULL, 0}};
static const struct name_map hybrids[] = {
	{"conv-dfa", EG_HYBRID_CONV_DFA}, {"fc-dfa", EG_HYBRID_FC_DFA},
	{NULL, 0}};
static const struct name_map feedbacks[] = {
	{"default", EG_FB_DEFAULT}, {"uniform", EG_FB_UNIFORM},
	{"normal", EG_FB_NORMAL}, {"binary", EG_FB_BINARY}, {NULL, 0}};
static const struct name_map optims[] = {
	{"sgd", EG_OPT_SGD}, {"adam", EG_OPT_ADAM}, {NULL, 0}};

static int lookup(const struct name_map *m, const eg_val *params,
		  const char *path, const char *dflt, int *out, eg_diag *d)
{
	const char *s = eg_val_get_str(params, path, dflt);

	for (; m->name != NULL; m++) {
		if (strcmp(m->name, s) == 0) {
			*out = m->value;
			return EG_OK;
		}
	}
	return eg_diag_set(d, EG_ENOTSUP, "%s: '%s' is not supported by this "
			   "build of expgrid", path, s);
}

/*
 * Maps the trial's model.*, init.* and train.* onto an eg_net_config.
 * model.arch cnn puts the model.conv layers ({filters, kernel, pool}, see
 * net.h: "same" convolutions, stride 1) on the dataset's image shape before
 * the model.hidden layers; model.circulant_block k > 1 makes every hidden
 * fully-connected layer block-circulant (the output layer stays dense).
 */
int eg__net_config(const eg_val *params, const eg__data *data,
		   eg_net_config *c, eg_diag *d)
{
	const eg_val *hidden = eg_val_get_path(params, "model.hidden");
	const eg_val *conv = eg_val_get_path(params, "model.conv");
	const char *arch = eg_val_get_str(params, "model.arch", "mlp");
	int v, rc = EG_OK;

	eg_net_config_default(c);
	c->n_in = (int)data->train.dim;
	c->n_out = data->train.classes;
	if (strcmp(arch, "cnn") == 0) {
		if (eg_val_len(conv) == 0)
			return eg_diag_set(d, EG_EINVAL, "model.arch cnn needs "
					   "at least one model.conv layer");
		if (eg_val_len(conv) + eg_val_len(hidden) >= EG_NET_MAX_LAYERS)
			return eg_diag_set(d, EG_ERANGE, "model.conv + "
					   "model.hidden: at most %d layers",
					   EG_NET_MAX_LAYERS - 1);
		c->n_conv = (int)eg_val_len(conv);
		for (int i = 0; i < c->n_conv; i++) {
			const eg_val *e = eg_val_at(conv, (size_t)i);
			c->conv[i].filters = (int)eg_val_get_int(e, "filters", 1);
			c->conv[i].kernel = (int)eg_val_get_int(e, "kernel", 1);
			c->conv[i].pool = (int)eg_val_get_int(e, "pool", 1);
		}
		c->in_c = data->train.c;
		c->in_h = data->train.h;
		c->in_w = data->train.w;
	} else if (strcmp(arch, "mlp") != 0) {
		return eg_diag_set(d, EG_ENOTSUP, "model.arch %s: not supported "
				   "by this build of expgrid", arch);
	}
	if (eg_val_len(hidden) >= EG_NET_MAX_LAYERS)
		return eg_diag_set(d, EG_ERANGE, "model.hidden: at most %d layers",
				   EG_NET_MAX_LAYERS - 1);
	c->n_hidden = (int)eg_val_len(hidden);
	for (int i = 0; i < c->n_hidden; i++)
		c->hidden[i] = (int)eg_val_as_int(eg_val_at(hidden, (size_t)i));
	c->circulant_block = (int)eg_val_get_int(params, "model.circulant_block", 0);
	c->bias = eg_val_get_bool(params, "model.bias", true);
	c->init_scale = eg_val_get_num(params, "init.scale", 1.0);
	c->feedback_scale = eg_val_get_num(params, "train.feedback_scale", 0);
	c->lr = eg_val_get_num(params, "train.lr", 0.01);
	c->momentum = eg_val_get_num(params, "train.momentum", 0);
	c->weight_decay = eg_val_get_num(params, "train.weight_decay", 0);
	c->batch = (int)eg_val_get_int(params, "train.batch", 128);
	c->seed = (uint64_t)eg_val_get_int(params, "seed", 0);

	rc = lookup(acts, params, "model.activation", "relu", &v, d);
	c->act = (eg_act)v;
	if (rc == EG_OK)
		rc = lookup(losses, params, "train.loss", "xent", &v, d);
	c->loss = (eg_loss)v;
	if (rc == EG_OK)
		rc = lookup(inits, params, "init.scheme", "he", &v, d);
	c->init = (eg_init)v;
	if (rc == EG_OK)
		rc = lookup(algos, params, "train.algo", "bp", &v, d);
	c->algo = (eg_algo)v;
	if (rc == EG_OK)
		rc = lookup(hybrids, params, "train.hybrid", "conv-dfa", &v, d);
	c->hybrid = (eg_hybrid)v;
	if (rc == EG_OK)
		rc = lookup(feedbacks, params, "train.feedback_init", "default",
			    &v, d);
	c->feedback = (eg_feedback)v;
	if (rc == EG_OK)
		rc = lookup(optims, params, "train.optimizer", "sgd", &v, d);
	c->optim = (eg_optim)v;
	return rc;
}

int eg__net_metrics(const eg_net *net, eg_val *metrics)
{
	size_t total = eg_net_params_total(net);
	size_t nonzero = eg_net_params_nonzero(net);
	size_t dense = eg_net_params_dense(net);
	int rc = eg_val_set_int(metrics, "params_total", (int64_t)total);

	if (rc == EG_OK)
		rc = eg_val_set_int(metrics, "params_nonzero", (int64_t)nonzero);
	if (rc == EG_OK)
		rc = eg_val_set_num(metrics, "sparsity",
				    total ? 1.0 - (double)nonzero / (double)total : 0);
	if (rc == EG_OK)
		rc = eg_val_set_num(metrics, "compression",
				    total ? (double)dense / (double)total : 1);
	return rc;
}

/* Evaluates one set into `point` as <prefix>_loss and <prefix>_acc. */
static int eval_into(eg_net *net, const eg_dataset *ds, const char *prefix,
		     eg_val *point, double *loss_out)
{
	char key[64];
	double loss, acc;
	int rc = eg_net_evaluate(net, ds->x, ds->y, ds->n, &loss, &acc);

	if (rc != EG_OK)
		return rc;
	snprintf(key, sizeof(key), "%s_loss", prefix);
	rc = eg_val_set_num(point, key, loss);
	snprintf(key, sizeof(key), "%s_acc", prefix);
	if (rc == EG_OK)
		rc = eg_val_set_num(point, key, acc);
	if (loss_out != NULL)
		*loss_out = loss;
	return rc;
}

int eg__epoch_point(eg_net *net, const eg__data *data, int epoch,
		    eg_val **out, double *sel_loss)
{
	eg_val *p = eg_val_map();
	eg_net_diag diag;
	size_t ndiag = data->train.n < DIAG_EXAMPLES ? data->train.n
						      : DIAG_EXAMPLES;
	double test_loss = 0, val_loss = 0;
	int rc;

	rc = eg_val_set_int(p, "epoch", epoch);
	if (rc == EG_OK)
		rc = eval_into(net, &data->train, "train", p, NULL);
	if (rc == EG_OK)
		rc = eval_into(net, &data->test, "test", p, &test_loss);
	if (rc == EG_OK && data->val.n > 0)
		rc = eval_into(net, &data->val, "val", p, &val_loss);
	if (rc == EG_OK)
		rc = eg_net_diagnostics(net, data->train.x, data->train.y,
					ndiag, &diag);
	if (rc == EG_OK)
		rc = eg_val_set_num(p, "align_repr", diag.align_repr);
	if (rc == EG_OK)
		rc = eg_val_set_num(p, "align_grad", diag.align_grad);
	if (rc == EG_OK)
		rc = eg_val_set_num(p, "grad_ratio_w1", diag.grad_ratio_w1);
	if (rc != EG_OK) {
		eg_val_free(p);
		return rc;
	}
	*sel_loss = data->val.n > 0 ? val_loss : test_loss;
	*out = p;
	return EG_OK;
}

/* Copies the listed keys of the last curve point into the final metrics. */
int eg__final_metrics(const eg_val *last, eg_val *metrics)
{
	static const char *const keys[] = {
		"train_acc", "test_acc", "train_loss", "test_loss", "val_acc",
		"val_loss", "align_repr", "align_grad", "grad_ratio_w1"};
	int rc = EG_OK;

	for (size_t i = 0; rc == EG_OK && i < sizeof(keys) / sizeof(keys[0]); i++) {
		const eg_val *v = eg_val_get(last, keys[i]);

		if (v != NULL)
			rc = eg_val_set(metrics, keys[i], eg_val_copy(v));
	}
	return rc;
}

int eg__train_network(const eg_val *params, const eg_trial_hooks *hooks,
		      const eg__data *data, eg_net **net_out, eg_val *res,
		      eg_diag *d)
{
	int epochs = (int)eg_val_get_int(params, "train.epochs", 10);
	uint64_t seed = (uint64_t)eg_val_get_int(params, "seed", 0);
	double t0 = eg__now(), best = INFINITY;
	eg_net_config cfg;
	eg_net *net = NULL;
	int32_t *order = NULL;
	eg_val *curve, *metrics, *point = NULL;
	int rc, best_epoch = 0, done = 0, diverged = 0;
	double sel;
	eg_rng rng;

	if (hooks->threads > 0)
		openblas_set_num_threads(hooks->threads);
	*net_out = NULL;
	rc = eg__net_config(params, data, &cfg, d);
	if (rc == EG_OK)
		rc = eg_net_create(&cfg, &net, d);
	if (rc != EG_OK)
		goto out;

	curve = eg_val_list();
	metrics = eg_val_map();
	order = malloc((data->train.n ? data->train.n : 1) * sizeof(*order));
	rc = eg_val_set(res, "metrics", metrics);
	if (rc == EG_OK)
		rc = eg_val_set(res, "curve", curve);
	else
		eg_val_free(curve);
	if (rc != EG_OK || order == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "train: out of memory");
		goto out;
	}
	for (size_t i = 0; i < data->train.n; i++)
		order[i] = (int32_t)i;
	eg_rng_seed_stream(&rng, seed, "shuffle");

	for (int epoch = 1; epoch <= epochs; epoch++) {
		double loss;

		eg_rng_shuffle(&rng, order, data->train.n);
		rc = eg_net_train_epoch(net, data->train.x, data->train.y,
					data->train.n, order, hooks->cancel, &loss);
		if (rc == EG_EDIVERGED) {
			diverged = 1;
			rc = EG_OK;
			break;
		}
		if (rc == EG_ECANCELLED) {
			eg_diag_set(d, rc, "train: cancelled in epoch %d", epoch);
			goto out;
		}
		if (rc != EG_OK) {
			eg_diag_set(d, rc, "train: epoch %d: %s", epoch,
				    eg_strerror(rc));
			goto out;
		}
		rc = eg__epoch_point(net, data, epoch, &point, &sel);
		if (rc == EG_OK)
			rc = eg_val_push(curve, point);
		if (rc != EG_OK) {
			eg_diag_set(d, rc, "train: epoch %d: %s", epoch,
				    eg_strerror(rc));
			goto out;
		}
		done = epoch;
		if (sel < best) {
			best = sel;
			best_epoch = epoch;
		}
		if (hooks->progress != NULL)
			hooks->progress(hooks->ud, point);
	}
	if (done == 0) {
		/* Zero epochs (or divergence in the first): the untrained
		 * network's numbers are still the honest result. */
		rc = eg__epoch_point(net, data, 0, &point, &sel);
		if (rc == EG_OK)
			rc = eg__final_metrics(point, metrics);
		eg_val_free(point);
	} else {
		rc = eg__final_metrics(eg_val_at(curve, eg_val_len(curve) - 1),
				   metrics);
	}
	if (rc == EG_OK)
		rc = eg_val_set_int(metrics, "epochs", done);
	if (rc == EG_OK)
		rc = eg_val_set_int(metrics, "best_epoch", best_epoch);
	if (rc == EG_OK)
		rc = eg__net_metrics(net, metrics);
	if (rc == EG_OK && diverged)
		rc = eg_val_set_int(metrics, "diverged", 1);
	if (rc == EG_OK)
		rc = eg_val_set_num(metrics, "wall_s", eg__now() - t0);
	if (rc != EG_OK)
		eg_diag_set(d, rc, "train: %s", eg_strerror(rc));
out:
	free(order);
	if (rc != EG_OK) {
		eg_net_free(net);
		return rc;
	}
	*net_out = net;
	return EG_OK;
}

int eg__trial_train(const eg_val *params, const eg_trial_hooks *hooks,
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
		rc = eg_diag_set(d, EG_ENOMEM, "train: out of memory");
	else
		rc = eg__train_network(params, hooks, &data, &net, res, d);
	/* wall_s counts the data preparation too (docs/metrics.md). */
	if (rc == EG_OK)
		rc = eg_val_set_num(eg_val_get(res, "metrics"), "wall_s",
				    eg__now() - t0);
	/* A coverify trial depends on this one: the coordinator asks for the
	 * weights, which travel in the result (trials/coverify.h). */
	if (rc == EG_OK && eg_val_get_bool(params, "export_network", false))
		rc = eg_coverify_network_export(net, res, d);
	eg_net_free(net);
	eg__data_free(&data);
	if (rc != EG_OK) {
		eg_val_free(res);
		return rc;
	}
	*result = res;
	return EG_OK;
}
