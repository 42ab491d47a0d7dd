/*
 * agent.h - the entry point of expgrid-hwagent's main loop (agent.c), and
 * the options main.c fills.
 */
#ifndef EG_HWAGENT_AGENT_H
#define EG_HWAGENT_AGENT_H

#include <signal.h>

#include "hwagent/hwagent_int.h"

typedef struct eg__hwagent_opts {
	const char *home;        /* EXPGRID_HOME */
	const char *boards_file; /* the boards file */
	const char *coordinator; /* host:port, or NULL: the addr file */
	const char *name;        /* HELLO name; also names the journal */
} eg__hwagent_opts;

/* Set by SIGTERM/SIGINT: the loop cancels its jobs, says BYE, returns. */
extern volatile sig_atomic_t eg__hwagent_stop;

/* Runs until stopped.  Returns the exit code: 0 stopped, 2 bad boards
 * file or token, 3 handshake refused by the coordinator. */
int eg__hwagent_run(const eg__hwagent_opts *o);

#endif
