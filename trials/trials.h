/*
 * trials.h - what one trial does: parameters in, metrics out.
 *
 * trials/ is the only code that maps grid parameters (a canonical eg_val
 * map, see grid/grid.h) onto the kernels.  The same entry point serves
 * `expgrid run --local` (in-process), the MPI worker's compute ranks and the
 * hardware agent, so progress and cancellation go through a small hook
 * struct rather than through any transport.
 *
 * Result shape (an eg_val map the caller owns and frees):
 *     {"metrics": {name: number, ...},
 *      "curve":   [{"epoch": 1, name: number, ...}, ...],      (train)
 *      "rounds":  [...],  "layers": [...]}                     (later kinds)
 * Metric names are those of DESIGN.md.  A trial that fails returns an eg_err
 * and a message in the eg_diag; nothing is partially returned.
 *
 * Threading: eg_trial_run may be called from any one thread at a time per
 * process (it sets the OpenBLAS thread count when hooks->threads > 0 and
 * keeps a process-wide cache of loaded datasets).
 */
#ifndef EG_TRIALS_H
#define EG_TRIALS_H

#include "common/err.h"
#include "common/value.h"

typedef struct eg_trial_hooks {
	void *ud;
	/* Called after each epoch (or round) with the curve point just
	 * appended to the result; the point stays owned by the trial. */
	void (*progress)(void *ud, const eg_val *point);
	/* Checked between batches; non-zero -> EG_ECANCELLED. */
	const volatile int *cancel;
	/* OpenBLAS threads for this trial; 0 leaves the setting alone. */
	int threads;
} eg_trial_hooks;

/* Runs the trial described by canonical `params` (defaults filled).
 * `hooks` may be NULL. */
int eg_trial_run(const eg_val *params, const eg_trial_hooks *hooks,
		 eg_val **result, eg_diag *d);

/* Releases the process-wide dataset cache (for leak checkers and tests). */
void eg_trial_cache_clear(void);

#endif
