/*
 * main.c - expgrid-hwagent: options, logging and signals around the loop
 * in agent.c.  Logs go to $EXPGRID_HOME/log/hwagent.log unless --log-file
 * says otherwise ("-" = stderr); the pid is written to run/hwagent.pid by
 * `expgrid up`, which starts it.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "hwagent/agent.h"
#include "proto/auth.h"

static void on_signal(int sig)
{
	(void)sig;
	eg__hwagent_stop = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid-hwagent [--boards FILE] [--name NAME]\n"
		"           [--coordinator HOST:PORT] [--log-file PATH|-]\n"
		"           [--log-level LEVEL]\n"
		"Owns the boards of FILE (default $EXPGRID_HOME/boards.yaml;\n"
		"docs/coverify.md describes it), checks each with a known-answer\n"
		"inference, registers their types with the coordinator as\n"
		"fpga:<type> and runs coverify trials on them.  Unacknowledged\n"
		"results are kept in $EXPGRID_HOME/run/hwagent-NAME.journal.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"boards", required_argument, NULL, 'b'},
		{"name", required_argument, NULL, 'n'},
		{"coordinator", required_argument, NULL, 'c'},
		{"log-file", required_argument, NULL, 'f'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	char boards[PATH_MAX + 32], logpath[PATH_MAX + 32], name[128];
	const char *logfile = NULL;
	eg__hwagent_opts o = {0};
	struct sigaction sa;
	FILE *log = stderr;
	int opt, level, code;

	o.home = getenv("EXPGRID_HOME");
	if (o.home == NULL || o.home[0] == '\0')
		o.home = "var";
	o.coordinator = getenv("EXPGRID_COORDINATOR");
	if (o.coordinator != NULL && o.coordinator[0] == '\0')
		o.coordinator = NULL;
	snprintf(boards, sizeof(boards), "%s/boards.yaml", o.home);
	o.boards_file = boards;
	o.name = "hwagent";
	while ((opt = getopt_long(argc, argv, "b:n:c:f:l:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			o.boards_file = optarg;
			break;
		case 'n':
			if (optarg[0] == '\0' || strchr(optarg, '/') != NULL ||
			    strlen(optarg) >= sizeof(name)) {
				fprintf(stderr, "expgrid-hwagent: --name: 1 to "
					"127 characters without '/'\n");
				return 2;
			}
			o.name = optarg;
			break;
		case 'c':
			o.coordinator = optarg;
			break;
		case 'f':
			logfile = optarg;
			break;
		case 'l':
			level = eg_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "expgrid-hwagent: unknown log "
					"level '%s'\n", optarg);
				return 2;
			}
			eg_log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	mkdir(o.home, 0755); /* a fresh home on a board host */
	if (logfile == NULL) {
		snprintf(logpath, sizeof(logpath), "%s/log", o.home);
		mkdir(logpath, 0755);
		snprintf(logpath, sizeof(logpath), "%s/log/hwagent.log", o.home);
		logfile = logpath;
	}
	if (strcmp(logfile, "-") != 0) {
		log = fopen(logfile, "ae");
		if (log == NULL) {
			fprintf(stderr, "expgrid-hwagent: %s: %s\n", logfile,
				strerror(errno));
			return 2;
		}
		setvbuf(log, NULL, _IOLBF, 0);
	}
	eg_log_open("expgrid-hwagent", log);
	if (eg_proto_init() != EG_OK) {
		fprintf(stderr, "expgrid-hwagent: cannot initialize libsodium\n");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	code = eg__hwagent_run(&o);
	eg_log(EG_LOG_INFO, "exiting with status %d", code);
	if (log != stderr)
		fclose(log);
	return code;
}
