/*
 * trials_int.h - shared within trials/: one function per trial kind, and the
 * data preparation every learning kind shares.
 */
#ifndef EG_TRIALS_INT_H
#define EG_TRIALS_INT_H

#include "kernels/dataset.h"
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

/* Wall-clock seconds from a monotonic clock. */
double eg__now(void);

#endif
