/*
 * compute.c - the loop of ranks 1..N-1: take ASSIGN, CANCEL and BYE from
 * rank 0, run one trial at a time through job.c, send PROGRESS and the
 * final RESULT or FAIL back up.
 *
 * The rank sleeps in poll() on its job's event pipe between MPI_Iprobe
 * calls: 1 ms after any activity, doubling to 20 ms when nothing happens,
 * so an idle rank costs well under 1 % of a core and a busy one reacts to a
 * cancel within 20 ms.  On SIGTERM (mpirun forwards it) the rank cancels its
 * trial and waits a short while for rank 0's BYE, so that the job ends
 * through MPI_Finalize rather than as an abnormal exit; rank 0 does the
 * talking to the coordinator, whose leases return the trial to pending.
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/worker_int.h"

#define IDLE_MAX_MS 20
#define STOP_GRACE_MS 3000

int eg__compute_main(const eg__wopts *o)
{
	eg__job *job = NULL;
	eg__outq *q = NULL;
	eg_buf scratch = EG_BUF_INIT;
	eg_msg m, ev;
	eg_diag d = {{0}};
	int nap = 1, src, rc, code = 1;
	int64_t stop_at = 0;
	bool bye = false;

	eg_msg_init(&m, EG_MSG_NONE);
	eg_msg_init(&ev, EG_MSG_NONE);
	rc = eg__job_new(o->threads, &job, &d);
	if (rc == EG_OK && eg__outq_new(&q) != EG_OK)
		rc = eg_diag_set(&d, EG_ENOMEM, "out of memory");
	if (rc != EG_OK) {
		eg_log(EG_LOG_ERROR, "%s", eg_diag_msg(&d, rc));
		goto out;
	}
	eg_log(EG_LOG_INFO, "compute rank %d of %d ready, %d BLAS thread%s",
	       o->rank, o->size, o->threads, o->threads == 1 ? "" : "s");
	while (!bye) {
		bool active = false;

		if (eg__worker_stop && stop_at == 0) {
			stop_at = eg__now_ms() + STOP_GRACE_MS;
			if (eg__job_busy(job))
				eg__job_cancel(job, eg__job_trial(job));
		}
		if (stop_at != 0 && eg__now_ms() > stop_at) {
			eg_log(EG_LOG_WARN, "no BYE from rank 0 after a "
					    "signal; exiting");
			eg__job_free(job);
			_exit(0);
		}
		while ((rc = eg__mpi_poll(&scratch, &m, &src, &d)) == 1) {
			active = true;
			switch (m.type) {
			case EG_MSG_ASSIGN:
				rc = eg__job_start(job, &m, &d);
				if (rc != EG_OK) {
					/* Tell rank 0 at once rather than
					 * let the lease time out. */
					eg_msg_clear(&ev);
					eg_msg_init(&ev, EG_MSG_FAIL);
					ev.trial = m.trial;
					ev.attempt = m.attempt;
					ev.error = strdup(eg_diag_msg(&d, rc));
					eg__outq_send(q, 0, &ev, &d);
				}
				break;
			case EG_MSG_CANCEL:
				if (eg__job_trial(job) == m.trial)
					eg_log(EG_LOG_INFO,
					       "cancelling trial %lld",
					       (long long)m.trial);
				eg__job_cancel(job, m.trial);
				break;
			case EG_MSG_BYE:
				bye = true;
				break;
			default:
				eg_log(EG_LOG_WARN, "rank 0 sent %s; ignored",
				       eg_msg_type_name(m.type));
			}
		}
		if (rc < 0) {
			eg_log(EG_LOG_ERROR, "%s", eg_diag_msg(&d, rc));
			goto out;
		}
		while (eg__job_next(job, &ev) == 1) {
			active = true;
			rc = eg__outq_send(q, 0, &ev, &d);
			eg_msg_clear(&ev);
			if (rc != EG_OK) {
				eg_log(EG_LOG_ERROR, "%s", eg_diag_msg(&d, rc));
				goto out;
			}
		}
		eg__outq_progress(q);
		if (bye)
			break;
		nap = active ? 1 : (nap * 2 > IDLE_MAX_MS ? IDLE_MAX_MS : nap * 2);
		eg__wait_fd(eg__job_fd(job), nap);
	}
	code = 0;
out:
	eg_msg_clear(&m);
	eg_msg_clear(&ev);
	eg__job_free(job); /* cancels and joins a trial still running */
	eg__outq_free(q, 1000);
	eg_buf_free(&scratch);
	return code;
}
