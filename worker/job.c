/*
 * job.c - runs one trial at a time in a thread of its own, so that the
 * rank's main thread stays free to watch MPI (or the socket) and can cancel
 * the trial between batches through hooks.cancel.
 *
 * Invariants: at most one trial thread exists; `busy` is true from
 * eg__job_start until the final RESULT/FAIL event has been taken by
 * eg__job_next, which also joins the thread.  Events are eg_msg nodes in a
 * FIFO under `mu`; every push writes one byte to a non-blocking pipe so the
 * owner's poll() wakes up (a full pipe already means "wake up", so a failed
 * write is harmless).  The trial thread owns `params` while it runs; the
 * main thread only reads trial/attempt, which do not change while busy.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trials/trials.h"
#include "worker/worker_int.h"

struct ev {
	struct ev *next;
	eg_msg m;
};

struct eg__job {
	pthread_mutex_t mu;
	struct ev *head, *tail; /* under mu */
	int pipe[2];
	pthread_t thread;
	bool thread_live;
	bool busy;
	int threads;
	volatile int cancel;
	int64_t trial, attempt;
	eg_val *params; /* the trial thread's while it runs */
};

int eg__job_new(int threads, eg__job **out, eg_diag *d)
{
	eg__job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	if (pipe2(j->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		int e = errno;

		free(j);
		return eg_diag_set(d, eg_err_from_errno(e), "pipe: %s",
				   strerror(e));
	}
	pthread_mutex_init(&j->mu, NULL);
	j->threads = threads;
	*out = j;
	return EG_OK;
}

static void push(eg__job *j, struct ev *e)
{
	char c = 1;

	pthread_mutex_lock(&j->mu);
	if (j->tail != NULL)
		j->tail->next = e;
	else
		j->head = e;
	j->tail = e;
	pthread_mutex_unlock(&j->mu);
	if (write(j->pipe[1], &c, 1) < 0) {
		/* EAGAIN: the pipe is full, so the reader will wake anyway. */
	}
}

/* hooks.progress: a curve point becomes a PROGRESS event.  Out of memory
 * drops the point (progress is advisory; the result carries the curve). */
static void on_progress(void *ud, const eg_val *point)
{
	eg__job *j = ud;
	struct ev *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return;
	eg_msg_init(&e->m, EG_MSG_PROGRESS);
	e->m.trial = j->trial;
	e->m.attempt = j->attempt;
	e->m.metrics = eg_val_copy(point);
	if (e->m.metrics == NULL) {
		free(e);
		return;
	}
	push(j, e);
}

static void *run(void *arg)
{
	eg__job *j = arg;
	eg_trial_hooks hooks = {j, on_progress, &j->cancel, j->threads};
	eg_val *result = NULL;
	eg_diag d = {{0}};
	struct ev *e = calloc(1, sizeof(*e));
	int rc;

	rc = eg_trial_run(j->params, &hooks, &result, &d);
	if (e == NULL) {
		/* Nothing can be reported; the lease will expire and the
		 * coordinator retries the trial elsewhere. */
		eg_val_free(result);
		abort();
	}
	if (rc == EG_OK) {
		eg_msg_init(&e->m, EG_MSG_RESULT);
		e->m.payload = result;
	} else {
		eg_msg_init(&e->m, EG_MSG_FAIL);
		/* The protocol's word for a stopped trial is "cancelled". */
		e->m.error = strdup(rc == EG_ECANCELLED ? "cancelled"
							: eg_diag_msg(&d, rc));
	}
	e->m.trial = j->trial;
	e->m.attempt = j->attempt;
	push(j, e);
	return NULL;
}

int eg__job_start(eg__job *j, const eg_msg *assign, eg_diag *d)
{
	int rc;

	if (j->busy)
		return eg_diag_set(d, EG_ESTATE, "a trial is already running");
	j->params = eg_val_copy(assign->params);
	if (j->params == NULL)
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	j->trial = assign->trial;
	j->attempt = assign->attempt;
	j->cancel = 0;
	rc = pthread_create(&j->thread, NULL, run, j);
	if (rc != 0) {
		eg_val_free(j->params);
		j->params = NULL;
		return eg_diag_set(d, eg_err_from_errno(rc),
				   "pthread_create: %s", strerror(rc));
	}
	j->thread_live = true;
	j->busy = true;
	return EG_OK;
}

void eg__job_cancel(eg__job *j, int64_t trial)
{
	if (j->busy && j->trial == trial)
		j->cancel = 1;
}

bool eg__job_busy(const eg__job *j) { return j->busy; }
int64_t eg__job_trial(const eg__job *j) { return j->busy ? j->trial : 0; }
int64_t eg__job_attempt(const eg__job *j) { return j->busy ? j->attempt : 0; }
int eg__job_fd(const eg__job *j) { return j->pipe[0]; }

int eg__job_next(eg__job *j, eg_msg *m)
{
	struct ev *e;
	char drain[64];

	while (read(j->pipe[0], drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&j->mu);
	e = j->head;
	if (e != NULL) {
		j->head = e->next;
		if (j->head == NULL)
			j->tail = NULL;
	}
	pthread_mutex_unlock(&j->mu);
	if (e == NULL)
		return 0;
	*m = e->m;
	free(e);
	if (m->type == EG_MSG_RESULT || m->type == EG_MSG_FAIL) {
		pthread_join(j->thread, NULL);
		j->thread_live = false;
		eg_val_free(j->params);
		j->params = NULL;
		j->busy = false;
	} else {
		/* More events may be queued behind this one: keep the pipe
		 * readable so the owner's next poll returns at once. */
		char c = 1;

		pthread_mutex_lock(&j->mu);
		if (j->head != NULL && write(j->pipe[1], &c, 1) < 0) {
			/* full: readable anyway */
		}
		pthread_mutex_unlock(&j->mu);
	}
	return 1;
}

void eg__job_free(eg__job *j)
{
	struct ev *e;

	if (j == NULL)
		return;
	if (j->thread_live) {
		j->cancel = 1;
		pthread_join(j->thread, NULL);
	}
	while ((e = j->head) != NULL) {
		j->head = e->next;
		eg_msg_clear(&e->m);
		free(e);
	}
	eg_val_free(j->params);
	close(j->pipe[0]);
	close(j->pipe[1]);
	pthread_mutex_destroy(&j->mu);
	free(j);
}
