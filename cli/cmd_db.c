/*
 * cmd_db.c - `expgrid db start|stop|url|migrate|psql`: the embedded
 * PostgreSQL cluster under $EXPGRID_HOME and the migrations.
 *
 * `start` is idempotent and applies migrations; `url` prints $EXPGRID_DB if
 * set, else the embedded cluster's URI (whether or not it is running), so
 * that psql "$(expgrid db url)" works; `migrate` works on whatever database
 * the connection string names; `psql` execs psql on it with any further
 * arguments.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <stdbool.h>

#include "cli/cli.h"
#include "store/cluster.h"
#include "store/store.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid db start|stop|url|migrate|psql [PSQL ARGS]\n"
		"  start    initdb on first use, start the embedded PostgreSQL\n"
		"           under $EXPGRID_HOME (default ./var), migrate\n"
		"  stop     stop it\n"
		"  url      print the connection URI ($EXPGRID_DB if set)\n"
		"  migrate  apply pending migrations/NNNN_name.sql\n"
		"  psql     run psql on the database\n");
}

static int migrate(const char *conninfo)
{
	eg_diag d = {{0}};
	eg_store *s = NULL;
	int applied = 0, rc;

	rc = eg_store_connect(conninfo, &s, &d);
	if (rc == EG_OK)
		rc = eg_store_migrate(s, NULL, &applied, &d);
	eg_store_close(s);
	if (rc != EG_OK) {
		eg_cli_error("db migrate: %s", eg_diag_msg(&d, rc));
		return EG_EXIT_FAIL;
	}
	printf("%d migration%s applied\n", applied, applied == 1 ? "" : "s");
	return EG_EXIT_OK;
}

static int db_start(void)
{
	eg_diag d = {{0}};
	eg_cluster *c = NULL;
	int rc;

	rc = eg_cluster_open(NULL, &c, &d);
	if (rc == EG_OK)
		rc = eg_cluster_start(c, &d);
	if (rc != EG_OK) {
		eg_cli_error("db start: %s", eg_diag_msg(&d, rc));
		eg_cluster_free(c);
		return EG_EXIT_FAIL;
	}
	printf("PostgreSQL is running: %s\n", eg_cluster_url(c));
	rc = migrate(eg_cluster_url(c));
	eg_cluster_free(c);
	return rc;
}

static int db_stop(void)
{
	eg_diag d = {{0}};
	eg_cluster *c = NULL;
	bool was = false;
	int rc;

	rc = eg_cluster_open(NULL, &c, &d);
	if (rc == EG_OK)
		rc = eg_cluster_stop(c, &was, &d);
	eg_cluster_free(c);
	if (rc != EG_OK) {
		eg_cli_error("db stop: %s", eg_diag_msg(&d, rc));
		return EG_EXIT_FAIL;
	}
	printf("%s\n", was ? "PostgreSQL stopped" : "PostgreSQL was not running");
	return EG_EXIT_OK;
}

/*
 * Moves the connection string's settings into libpq's environment variables
 * (PGHOST, PGPASSWORD, ...) so that psql finds them there: a password in
 * EXPGRID_DB must not appear on psql's command line, which every local user
 * can read in /proc.  Returns false (and changes nothing) if some setting
 * has no environment variable, in which case the string is passed as is.
 */
static bool conninfo_to_env(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);

	if (opts == NULL)
		return false;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val != NULL && o->val[0] != '\0' && o->envvar == NULL) {
			PQconninfoFree(opts);
			return false;
		}
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (o->val != NULL && o->val[0] != '\0')
			setenv(o->envvar, o->val, 1);
	PQconninfoFree(opts);
	return true;
}

static int db_psql(char *conninfo, int argc, char **argv)
{
	char bindir[PATH_MAX], prog[PATH_MAX + 8];
	char **args = calloc((size_t)argc + 3, sizeof(char *));
	eg_diag d = {{0}};
	int n = 0;

	if (args == NULL)
		return EG_EXIT_FAIL;
	if (eg_cluster_bindir(bindir, sizeof(bindir), &d) == EG_OK)
		snprintf(prog, sizeof(prog), "%s/psql", bindir);
	if (eg_cluster_bindir(bindir, sizeof(bindir), &d) != EG_OK ||
	    access(prog, X_OK) != 0)
		snprintf(prog, sizeof(prog), "/usr/bin/psql");
	args[n++] = prog;
	if (!conninfo_to_env(conninfo))
		args[n++] = conninfo;
	for (int i = 0; i < argc; i++)
		args[n++] = argv[i];
	execv(prog, args);
	eg_cli_error("db psql: cannot run %s: %m", prog);
	free(args);
	return EG_EXIT_FAIL;
}

int eg_cmd_db(int argc, char **argv)
{
	eg_diag d = {{0}};
	char *conninfo = NULL;
	const char *sub;
	int rc;

	if (argc < 2) {
		usage(stderr);
		return EG_EXIT_USAGE;
	}
	sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		usage(stdout);
		return EG_EXIT_OK;
	}
	if (strcmp(sub, "psql") != 0 && argc != 2) {
		usage(stderr);
		return EG_EXIT_USAGE;
	}
	if (strcmp(sub, "start") == 0)
		return db_start();
	if (strcmp(sub, "stop") == 0)
		return db_stop();
	if (strcmp(sub, "url") != 0 && strcmp(sub, "migrate") != 0 &&
	    strcmp(sub, "psql") != 0) {
		eg_cli_error("db: unknown subcommand '%s'", sub);
		usage(stderr);
		return EG_EXIT_USAGE;
	}
	rc = eg_store_conninfo(&conninfo, &d);
	if (rc != EG_OK) {
		eg_cli_error("db %s: %s", sub, eg_diag_msg(&d, rc));
		return EG_EXIT_FAIL;
	}
	if (strcmp(sub, "url") == 0) {
		printf("%s\n", conninfo);
		rc = EG_EXIT_OK;
	} else if (strcmp(sub, "migrate") == 0) {
		rc = migrate(conninfo);
	} else {
		rc = db_psql(conninfo, argc - 2, argv + 2);
	}
	free(conninfo);
	return rc;
}
