/*
 * worker_int.h - shared within worker/ (expgrid-worker, one MPI program).
 *
 * Rank 0 is the gateway (gateway.c): the only rank that talks to the
 * coordinator.  Ranks 1..N-1 compute (compute.c).  Between ranks every
 * message is an eg_msg encoded exactly as on the wire (proto's msgpack
 * frame, length prefix included) and sent as MPI_BYTE with one tag, so one
 * codec serves the socket and MPI: ASSIGN, CANCEL and BYE go down, PROGRESS,
 * RESULT and FAIL come up.  With a single rank the gateway runs the same
 * job object (job.c) in-process, so "talk and compute" is one code path.
 *
 * Nothing in worker/ busy-waits: Open MPI's blocking calls spin, so every
 * wait is poll() with a short timeout (a pipe of the job and the socket as
 * descriptors) followed by MPI_Iprobe/MPI_Test.  Sends between ranks are
 * MPI_Isend with the buffer kept until MPI_Test completes, so two ranks
 * sending large messages to each other at once cannot deadlock.
 *
 * Threading: MPI is called by each process's main thread only
 * (MPI_THREAD_FUNNELED); a job's trial thread touches nothing but its job.
 */
#ifndef EG_WORKER_INT_H
#define EG_WORKER_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/msg.h"

#define EG__WORKER_TAG 7

/* Options of one run, filled by main.c. */
typedef struct eg__wopts {
	const char *coordinator; /* host:port, or NULL: read the addr file */
	const char *home;        /* EXPGRID_HOME (absolute or relative) */
	const char *name;        /* HELLO name */
	int threads;             /* OpenBLAS threads per trial */
	int rank, size;
} eg__wopts;

/* Set by SIGTERM/SIGINT. */
extern volatile sig_atomic_t eg__worker_stop;

/* ---- job.c: one trial at a time in a thread ---- */

typedef struct eg__job eg__job;

/* A job whose trials use `threads` OpenBLAS threads.  Caller frees. */
int eg__job_new(int threads, eg__job **out, eg_diag *d);
/* Cancels a running trial, joins its thread, frees pending events;
 * accepts NULL. */
void eg__job_free(eg__job *j);
/* Starts the trial of `assign` (an ASSIGN message; params are copied).
 * EG_ESTATE if a trial is already running. */
int eg__job_start(eg__job *j, const eg_msg *assign, eg_diag *d);
/* Asks the running trial to stop at its next batch boundary (its FAIL
 * "cancelled" follows as an event); no-op when idle or another trial. */
void eg__job_cancel(eg__job *j, int64_t trial);
/* Whether a trial is running or its final event is still queued. */
bool eg__job_busy(const eg__job *j);
/* The trial and attempt of the running job (0 when idle). */
int64_t eg__job_trial(const eg__job *j);
int64_t eg__job_attempt(const eg__job *j);
/* A descriptor that polls readable when events are queued. */
int eg__job_fd(const eg__job *j);
/* Moves the next event (PROGRESS, then exactly one RESULT or FAIL) into
 * *m (which must be cleared) and returns 1, or returns 0 if none.  After
 * the final event the job is idle again. */
int eg__job_next(eg__job *j, eg_msg *m);

/* ---- mpi.c: message transport between ranks ---- */

typedef struct eg__outq eg__outq;

int eg__outq_new(eg__outq **out);
/* Waits (sleeping, at most timeout_ms) for pending sends, then frees. */
void eg__outq_free(eg__outq *q, int timeout_ms);
/* Encodes `m` and starts an MPI_Isend to `dest`; the buffer is kept until
 * the send completes. */
int eg__outq_send(eg__outq *q, int dest, const eg_msg *m, eg_diag *d);
/* Completes finished sends (MPI_Test); returns how many remain. */
size_t eg__outq_progress(eg__outq *q);
/* Receives one pending message from any rank into *m (cleared first):
 * 1 and *src set, 0 if none is waiting, negative on error. */
int eg__mpi_poll(eg_buf *scratch, eg_msg *m, int *src, eg_diag *d);

/* ---- shared helpers ---- */

int64_t eg__now_ms(void);
/* Sleeps in poll() on fd (or -1) for at most ms; returns poll's revents. */
int eg__wait_fd(int fd, int ms);
/* Writes "<home>/run/<name>" into out. */
void eg__run_path(char *out, size_t len, const char *home, const char *name);

/* The two roles' main loops; each returns the process exit code. */
int eg__gateway_main(const eg__wopts *o);
int eg__compute_main(const eg__wopts *o);

#endif
