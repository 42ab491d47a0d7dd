/*
 * trials_int.h - shared within trials/: one function per trial kind, and the
 * data preparation every learning kind shares.
 */
#ifndef EG_TRIALS_INT_H
#define EG_TRIALS_INT_H

#include "kernels/dataset.h"
#include "kernels/net.h"
#include "trials/trials.h"

/* Train, test and (when train.val_split > 0) validation sets of a trial,
 * prepared as dataset.* asks: class subset, sizes, label noise, split,
 * normalization.  `val.n` is 0 without a split. */
typedef struct eg__data {
	eg_dataset train, test, val;
} eg__data;

int eg__data_prepare(const eg_val *params, eg__data *out, eg_diag *d);
void eg__data_free(eg__data *data);

int eg__trial_noop(const eg_val *params, const eg_trial_hooks *hooks,
		   eg_val **result, eg_diag *d);
int eg__trial_train(const eg_val *params, const eg_trial_hooks *hooks,
		    eg_val **result, eg_diag *d);
int eg__trial_coverify(const eg_val *params, const eg_trial_hooks *hooks,
		       eg_val **result, eg_diag *d);

/* The training half of a train trial, for kinds that train a network
 * first (coverify): trains on `data` per model.*, init.*, train.* and adds
 * "metrics" and "curve" to the map `result`.  On success *net receives the
 * trained network (the caller frees it); on failure *net is NULL and
 * `result` may hold a partial curve (the caller frees it). */
int eg__train_network(const eg_val *params, const eg_trial_hooks *hooks,
		      const eg__data *data, eg_net **net, eg_val *result,
		      eg_diag *d);

int eg__trial_lottery(const eg_val *params, const eg_trial_hooks *hooks,
		      eg_val **result, eg_diag *d);

/* Shared by the learning kinds (train.c): the eg_net_config of a trial's
 * model.*, init.* and train.* for the prepared data; one curve point
 * (train/test/val loss and accuracy, diagnostics) with the loss that picks
 * best_epoch (validation if there is a split, else test); the final
 * metrics copied from a curve point; and params_total, params_nonzero,
 * sparsity and compression of a net. */
int eg__net_config(const eg_val *params, const eg__data *data,
		   eg_net_config *c, eg_diag *d);
int eg__epoch_point(eg_net *net, const eg__data *data, int epoch,
		    eg_val **out, double *sel_loss);
int eg__final_metrics(const eg_val *last, eg_val *metrics);
int eg__net_metrics(const eg_net *net, eg_val *metrics);

/* Wall-clock seconds from a monotonic clock. */
double eg__now(void);

#endif
