/*
 * cmd_down.c - `expgrid down`: stops what `up` and `db start` started under
 * $EXPGRID_HOME.  Today that is the embedded PostgreSQL cluster; the
 * coordinator, workers and hwagent join here with the distributed-execution
 * issue.  Stopping what is not running is not an error.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/cluster.h"

int eg_cmd_down(int argc, char **argv)
{
	eg_diag d = {{0}};
	eg_cluster *c = NULL;
	bool was = false;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		printf("usage: expgrid down\nStops everything `expgrid up` and "
		       "`expgrid db start` started under $EXPGRID_HOME.\n");
		return EG_EXIT_OK;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: expgrid down\n");
		return EG_EXIT_USAGE;
	}
	rc = eg_cluster_open(NULL, &c, &d);
	if (rc == EG_OK)
		rc = eg_cluster_stop(c, &was, &d);
	eg_cluster_free(c);
	if (rc != EG_OK) {
		eg_cli_error("down: %s", eg_diag_msg(&d, rc));
		return EG_EXIT_FAIL;
	}
	printf("%s\n", was ? "PostgreSQL stopped" : "nothing was running");
	return EG_EXIT_OK;
}
