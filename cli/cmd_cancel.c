/*
 * cmd_cancel.c - `expgrid cancel GRID`: every pending, leased or running
 * trial of the grid becomes cancelled in one transaction, with NOTIFY
 * expgrid_cancel so a coordinator stops the running ones.  Done and failed
 * trials keep their results.  Cancelling twice is not an error.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/store.h"

int eg_cmd_cancel(int argc, char **argv)
{
	eg_diag d = {{0}};
	eg_store *s = NULL;
	int64_t grid = 0, n = 0;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		printf("usage: expgrid cancel GRID\nCancels every unfinished "
		       "trial of GRID (id or name).\n");
		return EG_EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: expgrid cancel GRID\n");
		return EG_EXIT_USAGE;
	}
	rc = eg_store_connect(NULL, &s, &d);
	if (rc == EG_OK)
		rc = eg_store_find_grid(s, argv[1], &grid, &d);
	if (rc == EG_OK)
		rc = eg_store_cancel(s, grid, &n, &d);
	eg_store_close(s);
	if (rc != EG_OK) {
		eg_cli_error("cancel: %s", eg_diag_msg(&d, rc));
		return rc == EG_ENOENT ? EG_EXIT_USAGE : EG_EXIT_FAIL;
	}
	printf("grid %lld: %lld trials cancelled\n", (long long)grid,
	       (long long)n);
	return EG_EXIT_OK;
}
