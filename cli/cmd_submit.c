/*
 * cmd_submit.c - `expgrid submit GRID.yaml [--set key=value]...`: loads and
 * validates the grid, applies pending migrations, and inserts the grid and
 * all its trials in one transaction (store/store.c).  The grid id is the
 * first line of stdout, so scripts can take `| head -1`; --wait then shows
 * `status GRID --watch` until the grid has finished.  A bad grid exits 2
 * and writes nothing; a database failure exits 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "grid/grid.h"
#include "store/store.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid submit GRID.yaml [--set key=value]... [--wait]\n"
		"Adds the grid and its trials to the database (EXPGRID_DB, or\n"
		"the embedded cluster) and prints the grid id as the first\n"
		"line.  Submitting the same grid again adds nothing and prints\n"
		"the same id.  --wait shows a progress bar until every trial\n"
		"has finished.\n");
}

int eg_cmd_submit(int argc, char **argv)
{
	static const struct option opts[] = {
		{"set", required_argument, NULL, 's'},
		{"wait", no_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	char **sets = calloc((size_t)argc + 1, sizeof(char *));
	int nsets = 0, opt, rc, exit_code = EG_EXIT_FAIL;
	eg_diag d = {{0}};
	eg_grid *g = NULL;
	eg_store *s = NULL;
	int64_t id = 0, n = 0;
	bool created = false, wait = false;

	if (sets == NULL)
		return EG_EXIT_FAIL;
	while ((opt = getopt_long(argc, argv, "s:wh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sets[nsets++] = optarg;
			break;
		case 'w':
			wait = true;
			break;
		case 'h':
			usage(stdout);
			exit_code = EG_EXIT_OK;
			goto out;
		default:
			usage(stderr);
			exit_code = EG_EXIT_USAGE;
			goto out;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		exit_code = EG_EXIT_USAGE;
		goto out;
	}
	rc = eg_grid_load(argv[optind], &g, &d);
	for (int i = 0; rc == EG_OK && i < nsets; i++)
		rc = eg_grid_set(g, sets[i], &d);
	if (rc != EG_OK) {
		eg_cli_error("%s", eg_diag_msg(&d, rc));
		exit_code = rc == EG_ENOMEM ? EG_EXIT_FAIL : EG_EXIT_USAGE;
		goto out;
	}
	rc = eg_store_connect(NULL, &s, &d);
	if (rc == EG_OK)
		rc = eg_store_migrate(s, NULL, NULL, &d);
	if (rc != EG_OK) {
		eg_cli_error("submit: %s", eg_diag_msg(&d, rc));
		goto out;
	}
	rc = eg_store_submit(s, g, &id, &created, &n, &d);
	if (rc != EG_OK) {
		/* A grid that fails during expansion is bad input; anything
		 * else is the database or the machine. */
		eg_cli_error("submit: %s", eg_diag_msg(&d, rc));
		exit_code = rc == EG_EDB || rc == EG_ENOMEM || rc == EG_EIO ?
				    EG_EXIT_FAIL :
				    EG_EXIT_USAGE;
		goto out;
	}
	printf("%lld\n", (long long)id);
	if (created)
		printf("grid %lld (%s): %lld trials submitted\n", (long long)id,
		       eg_grid_name(g), (long long)n);
	else
		printf("grid %lld (%s) was already submitted with %lld trials; "
		       "nothing added\n",
		       (long long)id, eg_grid_name(g), (long long)n);
	exit_code = fflush(stdout) == 0 ? EG_EXIT_OK : EG_EXIT_FAIL;
	if (exit_code == EG_EXIT_OK && wait) {
		/* The progress bar of `status GRID --watch`, which returns
		 * when nothing is pending, leased or running. */
		char idtxt[24], watch[] = "--watch", status[] = "status";
		char *wargv[] = {status, idtxt, watch, NULL};

		snprintf(idtxt, sizeof(idtxt), "%lld", (long long)id);
		eg_store_close(s);
		s = NULL;
		optind = 0; /* getopt_long starts afresh */
		exit_code = eg_cmd_status(3, wargv);
	}
out:
	eg_store_close(s);
	eg_grid_free(g);
	free(sets);
	return exit_code;
}
