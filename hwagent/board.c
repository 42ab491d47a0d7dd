/*
 * board.c - a board at run time: backend, state, health, and the job
 * thread that runs one coverify trial on it (see hwagent_int.h for who owns
 * which field).
 *
 * A job is the whole of a coverify trial's stage 2 (trials/coverify.h):
 * the software and design outputs on the host, then the hardware outputs
 * on this board.  Only the board part is under the watchdog: the job
 * thread stamps hw_since_ms while the backend runs, and the main loop
 * escalates when that stamp is older than the board's timeout_ms.  When a
 * job fails for any reason other than a CANCEL from the coordinator the
 * thread runs the board's health check before reporting, so the main loop
 * learns the board's new health together with the failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hwagent/hwagent_int.h"

struct job {
	eg__board *b;
	eg__wake *w;
};

int64_t eg__hw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *eg__board_state_name(eg__board_state s)
{
	switch (s) {
	case EG__BOARD_IDLE: return "idle";
	case EG__BOARD_RESERVED: return "reserved";
	case EG__BOARD_RUNNING: return "running";
	}
	return "?";
}

const char *eg__board_health_name(eg__board_health h)
{
	switch (h) {
	case EG__HEALTH_GOOD: return "good";
	case EG__HEALTH_UNKNOWN: return "unknown";
	case EG__HEALTH_BAD: return "bad";
	case EG__HEALTH_MAINTENANCE: return "maintenance";
	}
	return "?";
}

int eg__board_init(eg__board *b, const eg__hw_spec *spec, eg_diag *d)
{
	memset(b, 0, sizeof(*b));
	b->spec = spec;
	b->ops = spec->backend == EG__HW_SIM ? &eg__sim_ops : &eg__exec_ops;
	b->state = EG__BOARD_IDLE;
	b->health = spec->maintenance ? EG__HEALTH_MAINTENANCE
				      : EG__HEALTH_UNKNOWN;
	return b->ops->open(b, d);
}

void eg__board_fini(eg__board *b)
{
	if (b->ops == NULL)
		return;
	if (b->thread_live) {
		b->cancel = 1;
		b->ops->reset(b);
		pthread_join(b->thread, NULL);
		b->thread_live = false;
	}
	eg_val_free(b->params);
	b->params = NULL;
	eg_val_free(b->result);
	b->result = NULL;
	b->ops->close(b);
}

int eg__board_check(eg__board *b, eg_diag *d)
{
	return b->ops->health(b, d);
}

/* The hardware paradigm of the trial: this board, under the watchdog. */
static int on_board(void *ud, eg_coverify_hw *hw, eg_diag *d)
{
	eg__board *b = ud;
	int rc;

	b->hw_since_ms = eg__hw_now_ms();
	rc = b->ops->run(b, hw, d);
	b->hw_since_ms = 0;
	return rc;
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	eg__board *b = j->b;
	eg__wake *w = j->w;
	eg_trial_hooks hooks = {NULL, NULL, &b->cancel, 1};
	const char *kind = eg_val_get_str(b->params, "kind", "train");
	eg_val *result = NULL;
	eg_diag d = {{0}}, hd = {{0}};
	int rc, hrc = EG_OK;
	bool checked = false;
	char c = 1;

	free(j);
	if (strcmp(kind, "coverify") != 0)
		rc = eg_diag_set(&d, EG_ENOTSUP, "kind %s: a hardware agent "
				 "runs coverify trials only (give the grid "
				 "target cpu)", kind);
	else
		rc = eg_coverify_run_network(b->params,
					     eg_val_get(b->params, "network"),
					     on_board, b, &hooks, &result, &d);
	/* A failure may be the board's: check it before it gets more work.
	 * A trial that never reached the board (bad params, no network)
	 * says nothing about the board, and neither does a CANCEL. */
	if (rc != EG_OK && rc != EG_ENOTSUP && !(b->cancelled && !b->by_watchdog)) {
		b->cancel = 0;
		hrc = b->ops->health(b, &hd);
		checked = true;
	}
	pthread_mutex_lock(&w->mu);
	b->result = rc == EG_OK ? result : NULL;
	if (rc != EG_OK)
		snprintf(b->error, sizeof(b->error), "%s",
			 rc == EG_ECANCELLED && !b->by_watchdog
				 ? "cancelled"
				 : eg_diag_msg(&d, rc));
	b->health_ran = checked;
	b->health_rc = hrc;
	snprintf(b->health_msg, sizeof(b->health_msg), "%s",
		 checked && hrc != EG_OK ? eg_diag_msg(&hd, hrc) : "");
	b->done = true;
	pthread_mutex_unlock(&w->mu);
	if (write(w->pipe[1], &c, 1) < 0) {
		/* EAGAIN: the pipe is full, so the loop wakes anyway. */
	}
	return NULL;
}

int eg__board_start(eg__board *b, eg__wake *w, int64_t trial,
		    int64_t attempt, eg_val *params, eg_diag *d)
{
	struct job *j = malloc(sizeof(*j));
	int rc;

	if (j == NULL) {
		eg_val_free(params);
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	}
	j->b = b;
	j->w = w;
	b->trial = trial;
	b->attempt = attempt;
	b->params = params;
	b->cancel = 0;
	b->cancelled = false;
	b->by_watchdog = false;
	b->wd_stage = 0;
	b->hw_since_ms = 0;
	b->done = false;
	b->result = NULL;
	b->error[0] = '\0';
	b->health_ran = false;
	b->state = EG__BOARD_RESERVED;
	rc = pthread_create(&b->thread, NULL, job_main, j);
	if (rc != 0) {
		free(j);
		eg_val_free(params);
		b->params = NULL;
		b->state = EG__BOARD_IDLE;
		return eg_diag_set(d, eg_err_from_errno(rc),
				   "pthread_create: %s", strerror(rc));
	}
	b->thread_live = true;
	return EG_OK;
}
