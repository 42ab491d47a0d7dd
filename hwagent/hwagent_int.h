/*
 * hwagent_int.h - shared within hwagent/ (expgrid-hwagent, the daemon that
 * owns FPGA boards and runs coverify trials on them).
 *
 * Pieces and who uses them:
 *   boards.c   the boards file (YAML): name, type, backend, options;
 *   journal.c  RESULT/FAIL frames not yet ACKed, on disk (fsync), so a
 *              result survives a dead coordinator and a restarted agent;
 *   board.c    the runtime board: state (idle, reserved, running) and
 *              health (good, unknown, bad, maintenance), the known-answer
 *              health check and the job thread with its watchdog hooks;
 *   sim.c      the `sim` backend (kernels/board_sim.h);
 *   exec.c     the `exec` backend: a user command with a file contract
 *              (docs/coverify.md, "The exec backend");
 *   agent.c    the connection to the coordinator and the main loop;
 *   main.c     options and logging.
 * boards.c and journal.c do no logging and touch no sockets, so the unit
 * tests (tests/unit/test_hwagent.c) use them directly.
 *
 * Threading: the main thread owns every board's state, health and the
 * connection; a job thread per running board owns that board's backend
 * object while it runs and hands its outcome back through the board's
 * event slot (under the agent's mutex) and a pipe that wakes poll().  The
 * cancel flag is the one field both threads write.
 */
#ifndef EG_HWAGENT_INT_H
#define EG_HWAGENT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/value.h"
#include "kernels/board_sim.h"
#include "trials/coverify.h"

/* ---- boards.c: the boards file ---- */

typedef enum eg__hw_backend {
	EG__HW_SIM,
	EG__HW_EXEC
} eg__hw_backend;

/* Default watchdog budget of one board run, and of one health check. */
#define EG__HW_TIMEOUT_MS_DEFAULT 60000
#define EG__HW_NAME_MAX 64

typedef struct eg__hw_spec {
	char name[EG__HW_NAME_MAX];   /* unique in the file */
	char type[EG__HW_NAME_MAX];   /* capability fpga:<type> */
	eg__hw_backend backend;
	bool maintenance;             /* gets no work, reported as such */
	int64_t timeout_ms;           /* watchdog: one board run */
	/* The board type's declared types and cost model: the sim board is
	 * built with them, the exec board's codes are in them, and the
	 * health check compares against the design model of them. */
	eg_board_config cfg;
	/* sim */
	bool hang;
	bool has_fault;
	eg_board_fault fault;
	/* exec */
	char **argv;                  /* NULL-terminated; owned */
	char workdir[PATH_MAX];       /* "" = $TMPDIR or /tmp */
} eg__hw_spec;

/* Parses a boards file's text (`file` names it in messages, which read
 * "<file>:line:col: ..."); *out is an array of *n specs the caller frees
 * with eg__hw_specs_free.  Unknown keys, wrong types, duplicate names and
 * a missing `boards` list are errors. */
int eg__hw_specs_parse(const char *text, size_t len, const char *file,
		       eg__hw_spec **out, size_t *n, eg_diag *d);
int eg__hw_specs_load(const char *path, eg__hw_spec **out, size_t *n,
		      eg_diag *d);
void eg__hw_specs_free(eg__hw_spec *s, size_t n); /* accepts NULL */

/* ---- journal.c: unacknowledged results on disk ---- */

/*
 * The journal file holds records [u32 length][u32 crc32][i64 trial]
 * [i64 attempt][frame], big-endian, where crc32 covers the trial, attempt
 * and frame.  Appends are written and fsynced before the frame is sent; an
 * ACK removes the record by rewriting the file (temp file, fsync, rename),
 * which keeps it as small as the set of unACKed frames.  A torn record at
 * the end (a crash during an append) is dropped when the file is opened;
 * a corrupt one in the middle ends the readable part there.
 */
typedef struct eg__journal eg__journal;

/* Opens (creating) the journal at path and loads its records. */
int eg__journal_open(const char *path, eg__journal **out, eg_diag *d);
void eg__journal_close(eg__journal *j); /* accepts NULL */
size_t eg__journal_count(const eg__journal *j);
/* Record i (in append order): its frame (owned by the journal, valid until
 * the next call that changes it), trial and attempt. */
const eg_buf *eg__journal_at(const eg__journal *j, size_t i, int64_t *trial,
			     int64_t *attempt);
/* Records of the tail dropped as torn or corrupt when the file was opened. */
size_t eg__journal_dropped(const eg__journal *j);
/* Appends a frame (durably) for [trial, attempt]; a record for the same
 * pair is replaced. */
int eg__journal_append(eg__journal *j, int64_t trial, int64_t attempt,
		       const void *frame, size_t len, eg_diag *d);
/* Removes [trial, attempt] if present (rewriting the file); *found (may be
 * NULL) says whether it was. */
int eg__journal_ack(eg__journal *j, int64_t trial, int64_t attempt,
		    bool *found, eg_diag *d);

/* ---- board.c, sim.c, exec.c: boards at run time ---- */

typedef enum eg__board_state {
	EG__BOARD_IDLE,
	EG__BOARD_RESERVED,
	EG__BOARD_RUNNING
} eg__board_state;

typedef enum eg__board_health {
	EG__HEALTH_GOOD,
	EG__HEALTH_UNKNOWN,
	EG__HEALTH_BAD,
	EG__HEALTH_MAINTENANCE
} eg__board_health;

const char *eg__board_state_name(eg__board_state s);
const char *eg__board_health_name(eg__board_health h);

typedef struct eg__board eg__board;

/* A backend: what differs between sim and exec boards. */
typedef struct eg__backend_ops {
	const char *name;
	/* Creates the backend object (at start and after a reset). */
	int (*open)(eg__board *b, eg_diag *d);
	void (*close)(eg__board *b);
	/* The known-answer check on the board's datapath against the design
	 * model of its declared types: EG_OK, or the first mismatch (a
	 * timeout or malformed output is an error too). */
	int (*health)(eg__board *b, eg_diag *d);
	/* The hardware paradigm of one coverify trial (trials/coverify.h). */
	int (*run)(eg__board *b, eg_coverify_hw *hw, eg_diag *d);
	/* Watchdog escalation from the main thread: make a stuck run return
	 * (exec: kill the command's process group). */
	void (*reset)(eg__board *b);
} eg__backend_ops;

extern const eg__backend_ops eg__sim_ops, eg__exec_ops;

struct eg__board {
	const eg__hw_spec *spec;
	const eg__backend_ops *ops;
	eg__board_state state;      /* main thread */
	eg__board_health health;    /* main thread */
	char last_error[512];       /* main thread */
	volatile int cancel;        /* main sets, job reads */
	void *impl;                 /* the backend object (job thread while
				       running, main thread otherwise) */
	volatile pid_t child;       /* exec: the running command's pgid */
	/* The job (main thread until started, then the job thread). */
	pthread_t thread;
	bool thread_live;
	int64_t trial, attempt;
	eg_val *params;
	/* Watchdog, main thread: the board run's deadline (0 = the job is not
	 * on the board right now) and the escalation stage reached. */
	volatile int64_t hw_since_ms; /* job thread sets, 0 when off board */
	int wd_stage;                 /* 0 none, 1 cancelled, 2 reset */
	int64_t wd_at_ms;
	bool by_watchdog;             /* the job ended because of it */
	bool cancelled;               /* CANCEL from the coordinator */
	/* The job's outcome, set by the job thread under the agent's mutex. */
	bool done;
	eg_val *result;             /* RESULT payload, or NULL */
	char error[1024];           /* FAIL text when result is NULL */
	int health_rc;              /* the health check after an error */
	char health_msg[512];
	bool health_ran;
};

int64_t eg__hw_now_ms(void);

/* What job threads share with the main thread: the mutex over every
 * board's outcome fields and a non-blocking pipe that wakes its poll(). */
typedef struct eg__wake {
	pthread_mutex_t mu;
	int pipe[2];
} eg__wake;

/* Sets up b for spec (backend object opened; health unknown, or
 * maintenance).  eg__board_fini accepts a board whose init failed. */
int eg__board_init(eg__board *b, const eg__hw_spec *spec, eg_diag *d);
void eg__board_fini(eg__board *b);
/* Runs the health check now, in the calling thread (start-up). */
int eg__board_check(eg__board *b, eg_diag *d);
/* Starts the job of an ASSIGN on an idle board (takes `params`): a thread
 * runs the coverify trial with this board as its hardware, runs the
 * health check if the trial failed for any reason but a CANCEL, stores
 * the outcome and wakes the loop. */
int eg__board_start(eg__board *b, eg__wake *w, int64_t trial,
		    int64_t attempt, eg_val *params, eg_diag *d);

#endif
