/*
 * noop.c - `kind: noop`: waits noop.ms milliseconds (checking the cancel
 * flag every 10 ms) and reports noop.metrics.  The scheduler's tests and
 * benchmarks use it to measure expgrid itself rather than a kernel; with
 * noop.fail it reports a failure, for retry and max_attempts tests.
 */
#include <time.h>

#include "trials/trials_int.h"

int eg__trial_noop(const eg_val *params, const eg_trial_hooks *hooks,
		   eg_val **result, eg_diag *d)
{
	int64_t ms = eg_val_get_int(params, "noop.ms", 0);
	const eg_val *want = eg_val_get_path(params, "noop.metrics");
	double t0 = eg__now();
	eg_val *res = NULL, *metrics;

	while (ms > 0) {
		int64_t step = ms < 10 ? ms : 10;
		struct timespec ts = {0, (long)step * 1000000L};

		if (hooks->cancel != NULL && *hooks->cancel)
			return eg_diag_set(d, EG_ECANCELLED, "noop: cancelled");
		nanosleep(&ts, NULL);
		ms -= step;
	}
	if (eg_val_get_bool(params, "noop.fail", false))
		return eg_diag_set(d, EG_ECHILD,
				   "noop: failed because noop.fail is true");

	res = eg_val_map();
	metrics = want != NULL ? eg_val_copy(want) : eg_val_map();
	if (eg_val_set(res, "metrics", metrics) != EG_OK ||
	    eg_val_set_num(metrics, "wall_s", eg__now() - t0) != EG_OK) {
		eg_val_free(res);
		return eg_diag_set(d, EG_ENOMEM, "noop: out of memory");
	}
	*result = res;
	return EG_OK;
}
