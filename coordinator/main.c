/*
 * main.c - expgrid-coordinator: options, token, log file, then the server
 * (server.c) until SIGTERM/SIGINT has drained it.
 *
 * Exit status: 0 after a drain, 1 when it cannot start (no token, listen
 * failure, ...), 2 on bad usage.  Errors before the log is open go to
 * stderr as `expgrid-coordinator: <what>: <why>`.  The token is loaded
 * once and never logged.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "coordinator/coord.h"
#include "proto/auth.h"
#include "proto/frame.h"
#include "store/store.h"

static void usage(FILE *f)
{
	fputs("usage: expgrid-coordinator [options]\n"
	      "  --listen HOST:PORT          address to listen on "
	      "(default 127.0.0.1:0, any free port)\n"
	      "  --log-file PATH             default $EXPGRID_HOME/log/"
	      "coordinator.log; - for stderr\n"
	      "  --log-level LEVEL           debug, info (default), warn, "
	      "error, off\n"
	      "  --max-frame BYTES           largest accepted frame "
	      "(default 16777216)\n"
	      "  --handshake-timeout-ms MS   default 5000\n"
	      "  --idle-timeout-ms MS        default 60000\n"
	      "  --lease-ms MS               lease length (default 30000)\n"
	      "  --sweep-ms MS               expired-lease sweep period "
	      "(default 500)\n"
	      "  --drain-ms MS               SIGTERM drain deadline "
	      "(default 10000)\n"
	      "  --max-conns N               simultaneous connections "
	      "(default 1024)\n"
	      "Environment: EXPGRID_HOME (default ./var), EXPGRID_DB, "
	      "EXPGRID_TOKEN (else $EXPGRID_HOME/run/token).\n",
	      f);
}

static int num(const char *opt, const char *v, long long lo, long long hi,
	       long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || *out < lo || *out > hi) {
		fprintf(stderr, "expgrid-coordinator: --%s: expected an integer "
			"in %lld..%lld, got '%s'\n", opt, lo, hi, v);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"log-file", required_argument, NULL, 'f'},
		{"log-level", required_argument, NULL, 'v'},
		{"max-frame", required_argument, NULL, 'm'},
		{"handshake-timeout-ms", required_argument, NULL, 'H'},
		{"idle-timeout-ms", required_argument, NULL, 'I'},
		{"lease-ms", required_argument, NULL, 'L'},
		{"sweep-ms", required_argument, NULL, 'S'},
		{"drain-ms", required_argument, NULL, 'D'},
		{"max-conns", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct co_opts o = {
		.listen_host = "127.0.0.1",
		.listen_port = 0,
		.max_frame = EG_FRAME_MAX_DEFAULT,
		.handshake_ms = 5000,
		.idle_ms = 60000,
		.drain_ms = 10000,
		.sweep_ms = 500,
		.lease_ms = 30000,
		.max_conns = 1024,
	};
	char host[256], path[PATH_MAX + 64];
	const char *log_file = NULL, *env;
	eg_proto_token *tok = NULL;
	char *conninfo = NULL;
	eg_diag d = {{0}};
	FILE *logf = NULL;
	long long v;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': {
			const char *colon = strrchr(optarg, ':');
			size_t n = colon != NULL ? (size_t)(colon - optarg) : 0;

			if (colon == NULL || n == 0 || n >= sizeof(host) ||
			    num("listen", colon + 1, 0, 65535, &v) != 0) {
				fprintf(stderr, "expgrid-coordinator: --listen: "
					"expected HOST:PORT\n");
				return 2;
			}
			memcpy(host, optarg, n);
			host[n] = '\0';
			if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
				memmove(host, host + 1, n - 2);
				host[n - 2] = '\0';
			}
			o.listen_host = host;
			o.listen_port = (int)v;
			break;
		}
		case 'f':
			log_file = optarg;
			break;
		case 'v':
			if (eg_log_level_parse(optarg) < 0) {
				fprintf(stderr, "expgrid-coordinator: "
					"--log-level: unknown level '%s'\n",
					optarg);
				return 2;
			}
			eg_log_set_level(eg_log_level_parse(optarg));
			break;
		case 'm':
			if (num("max-frame", optarg, 64, EG_FRAME_MAX_LIMIT,
				&v) != 0)
				return 2;
			o.max_frame = (size_t)v;
			break;
		case 'H':
			if (num("handshake-timeout-ms", optarg, 1, 3600000,
				&v) != 0)
				return 2;
			o.handshake_ms = (int)v;
			break;
		case 'I':
			if (num("idle-timeout-ms", optarg, 1, 86400000, &v) != 0)
				return 2;
			o.idle_ms = (int)v;
			break;
		case 'L':
			if (num("lease-ms", optarg, 100, INT32_MAX, &v) != 0)
				return 2;
			o.lease_ms = v;
			break;
		case 'S':
			if (num("sweep-ms", optarg, 10, 3600000, &v) != 0)
				return 2;
			o.sweep_ms = (int)v;
			break;
		case 'D':
			if (num("drain-ms", optarg, 0, 3600000, &v) != 0)
				return 2;
			o.drain_ms = (int)v;
			break;
		case 'C':
			if (num("max-conns", optarg, 1, 60000, &v) != 0)
				return 2;
			o.max_conns = (int)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	/* Agents heartbeat every lease_ms / 3 and are otherwise silent while
	 * they compute: an idle timeout shorter than a lease would drop busy
	 * agents and requeue their trials. */
	if ((int64_t)o.idle_ms < o.lease_ms)
		o.idle_ms = o.lease_ms > INT32_MAX ? INT32_MAX : (int)o.lease_ms;
	if (optind != argc) {
		fprintf(stderr, "expgrid-coordinator: unexpected argument "
			"'%s'\n", argv[optind]);
		return 2;
	}
	env = getenv("EXPGRID_HOME");
	o.home = env != NULL && env[0] != '\0' ? env : "./var";
	snprintf(path, sizeof(path), "%s/log", o.home);
	mkdir(o.home, 0755);
	mkdir(path, 0755);
	if (log_file == NULL || strcmp(log_file, "-") != 0) {
		if (log_file == NULL) {
			snprintf(path, sizeof(path), "%s/log/coordinator.log",
				 o.home);
			log_file = path;
		}
		logf = fopen(log_file, "a");
		if (logf == NULL) {
			fprintf(stderr, "expgrid-coordinator: %s: %s\n",
				log_file, strerror(errno));
			return 1;
		}
		setvbuf(logf, NULL, _IOLBF, 0);
	}
	eg_log_open("expgrid-coordinator", logf != NULL ? logf : stderr);

	if (eg_proto_init() != EG_OK) {
		fprintf(stderr, "expgrid-coordinator: libsodium: cannot "
			"initialize\n");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/run/token", o.home);
	rc = eg_proto_token_load(path, &tok, &d);
	if (rc != EG_OK) {
		if (rc == EG_ENOENT)
			fprintf(stderr, "expgrid-coordinator: no token: set "
				"EXPGRID_TOKEN or create %s (`expgrid up` "
				"generates it)\n", path);
		else
			fprintf(stderr, "expgrid-coordinator: token: %s\n",
				eg_diag_msg(&d, rc));
		eg_log(EG_LOG_ERROR, "cannot load the token: %s",
		       eg_diag_msg(&d, rc));
		rc = 1;
		goto out;
	}
	rc = eg_store_conninfo(&conninfo, &d);
	if (rc != EG_OK) {
		fprintf(stderr, "expgrid-coordinator: database: %s\n",
			eg_diag_msg(&d, rc));
		rc = 1;
		goto out;
	}
	rc = eg__coord_run(&o, tok, conninfo);
	eg_log(EG_LOG_INFO, "exit %d", rc);
out:
	free(conninfo);
	eg_proto_token_free(tok);
	if (logf != NULL)
		fclose(logf);
	return rc;
}
