/*
 * trial.c - dispatch by `kind`, and the helpers every kind shares.
 */
#include <string.h>
#include <time.h>

#include "trials/trials_int.h"

double eg__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int eg_trial_run(const eg_val *params, const eg_trial_hooks *hooks,
		 eg_val **result, eg_diag *d)
{
	static const eg_trial_hooks none = {0};
	const char *kind = eg_val_get_str(params, "kind", "train");

	*result = NULL;
	if (hooks == NULL)
		hooks = &none;
	if (strcmp(kind, "noop") == 0)
		return eg__trial_noop(params, hooks, result, d);
	if (strcmp(kind, "train") == 0)
		return eg__trial_train(params, hooks, result, d);
	if (strcmp(kind, "coverify") == 0)
		return eg__trial_coverify(params, hooks, result, d);
	if (strcmp(kind, "lottery") == 0)
		return eg__trial_lottery(params, hooks, result, d);
	return eg_diag_set(d, EG_ENOTSUP,
			   "kind %s: this build of expgrid cannot run it yet",
			   kind);
}
