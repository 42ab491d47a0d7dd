/*
 * cli.h - the `expgrid` command line: one file per command (cli/cmd_*.c),
 * dispatched from cli/main.c's table.
 *
 * A command is `int eg_cmd_<name>(int argc, char **argv)` with argv[0] the
 * command's name, so getopt_long works as in a main().  It returns the
 * process exit code: 0 success, 1 a failed run (a trial failed, the
 * database is down), 2 bad usage or bad input (a malformed grid).  Errors
 * go to stderr as "expgrid: <what>: <why>" through eg_cli_error.
 */
#ifndef EG_CLI_H
#define EG_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum { EG_EXIT_OK = 0, EG_EXIT_FAIL = 1, EG_EXIT_USAGE = 2 };

int eg_cmd_expand(int argc, char **argv);
int eg_cmd_run(int argc, char **argv);
int eg_cmd_db(int argc, char **argv);
int eg_cmd_submit(int argc, char **argv);
int eg_cmd_status(int argc, char **argv);
int eg_cmd_cancel(int argc, char **argv);
int eg_cmd_query(int argc, char **argv);
int eg_cmd_down(int argc, char **argv);
int eg_cmd_up(int argc, char **argv);
int eg_cmd_report(int argc, char **argv);

/* Prints "expgrid: " + message + "\n" on stderr. */
void eg_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct eg_grid;

/* Loads and validates a grid file and applies `--set` assignments; prints
 * the error and returns EG_EXIT_USAGE on failure, EG_EXIT_OK on success. */
int eg_cli_load_grid(const char *path, char **sets, int nsets,
		     struct eg_grid **out);

/* Parses a non-negative integer option value up to INT_MAX; -1 if it is
 * not one. */
long eg_cli_parse_count(const char *s);

/* ---- the local stack's processes (cmd_up.c, shared with cmd_down.c) ---- */
/* The absolute $EXPGRID_HOME (default ./var, created), also exported to
 * the environment so daemons inherit it; -1 after printing the error. */
int eg_cli_home(char *out, size_t len);
/* The pid in a pid file, or 0 if there is none. */
pid_t eg_cli_pidfile_read(const char *path);
/* Writes a pid file atomically (temporary file, rename); -1 on failure. */
int eg_cli_pidfile_write(const char *path, pid_t pid);
/* Whether pid is alive and not a zombie. */
bool eg_cli_pid_alive(pid_t pid);
/* Whether pid is alive and its executable's name is one of `names`
 * (NULL-terminated), so that a reused pid is not mistaken for a daemon. */
bool eg_cli_pid_is(pid_t pid, const char *const *names);
/* SIGTERM, then SIGKILL if still alive after deadline_ms; returns whether
 * the process was alive to begin with. */
bool eg_cli_stop_pid(pid_t pid, int deadline_ms);

#endif
