/*
 * main.c - `expgrid COMMAND [ARGS]`: finds the command in the table and
 * hands it the rest of the command line.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"expand", eg_cmd_expand, "print a grid's trials as JSON Lines"},
	{"run", eg_cmd_run, "run a grid's trials in this process (--local)"},
	{"db", eg_cmd_db, "the embedded PostgreSQL: start, stop, url, migrate, psql"},
	{"submit", eg_cmd_submit, "add a grid and its trials to the database"},
	{"status", eg_cmd_status, "trial counts per state (--json, --watch)"},
	{"cancel", eg_cmd_cancel, "cancel every unfinished trial of a grid"},
	{"query", eg_cmd_query, "print trials, best trials or paradigm tables"},
	{"report", eg_cmd_report, "write a self-contained HTML report of a grid"},
	{"up", eg_cmd_up, "start the local stack: database, coordinator, workers"},
	{"down", eg_cmd_down, "stop everything started under EXPGRID_HOME"},
};

void eg_cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("expgrid: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

long eg_cli_parse_count(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	/* Callers store counts in ints: anything larger is not a count. */
	if (*end != '\0' || errno == ERANGE || v < 0 || v > INT_MAX)
		return -1;
	return v;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: expgrid COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(out, "\n`expgrid COMMAND --help` describes one command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EG_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EG_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	eg_cli_error("unknown command '%s' (see expgrid --help)", argv[1]);
	return EG_EXIT_USAGE;
}
