/*
 * cmd_expand.c - `expgrid expand GRID [--set key=value]...`: the grid's
 * trials as JSON Lines {"index", "key", "params"}, with no side effects.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "grid/grid.h"

int eg_cli_load_grid(const char *path, char **sets, int nsets,
		     struct eg_grid **out)
{
	eg_diag d = {{0}};
	eg_grid *g = NULL;
	int rc = eg_grid_load(path, &g, &d);

	for (int i = 0; rc == EG_OK && i < nsets; i++)
		rc = eg_grid_set(g, sets[i], &d);
	if (rc != EG_OK) {
		eg_cli_error("%s", eg_diag_msg(&d, rc));
		eg_grid_free(g);
		return EG_EXIT_USAGE;
	}
	*out = g;
	return EG_EXIT_OK;
}

struct expand_ctx {
	eg_buf line;
};

static int print_trial(void *ud, const eg_trial_spec *t)
{
	struct expand_ctx *c = ud;
	eg_json j;

	eg_buf_reset(&c->line);
	eg_json_init(&j, &c->line);
	eg_json_obj_begin(&j);
	eg_json_key(&j, "index");
	eg_json_int(&j, (int64_t)t->index);
	eg_json_key(&j, "key");
	eg_json_str(&j, t->key);
	eg_json_key(&j, "params");
	eg_json_raw(&j, t->canonical_json);
	eg_json_obj_end(&j);
	eg_buf_putc(&c->line, '\n');
	if (eg_buf_failed(&c->line))
		return EG_ENOMEM;
	if (fwrite(c->line.data, 1, c->line.len, stdout) != c->line.len)
		return EG_EIO;
	return EG_OK;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: expgrid expand GRID.yaml [--set key=value]...\n"
		     "Prints every trial of the grid as one JSON object per line:\n"
		     "{\"index\", \"key\", \"params\"} with defaults filled.\n");
}

int eg_cmd_expand(int argc, char **argv)
{
	static const struct option opts[] = {
		{"set", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	char **sets = calloc((size_t)argc, sizeof(char *));
	int nsets = 0, opt, rc;
	struct expand_ctx ctx = {EG_BUF_INIT};
	eg_grid *g = NULL;
	eg_diag d = {{0}};

	if (sets == NULL)
		return EG_EXIT_FAIL;
	while ((opt = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sets[nsets++] = optarg;
			break;
		case 'h':
			usage(stdout);
			free(sets);
			return EG_EXIT_OK;
		default:
			usage(stderr);
			free(sets);
			return EG_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		free(sets);
		return EG_EXIT_USAGE;
	}
	rc = eg_cli_load_grid(argv[optind], sets, nsets, &g);
	free(sets);
	if (rc != EG_EXIT_OK)
		return rc;
	rc = eg_grid_expand(g, print_trial, &ctx, &d);
	eg_buf_free(&ctx.line);
	eg_grid_free(g);
	if (rc == EG_EIO || fflush(stdout) != 0) {
		eg_cli_error("expand: cannot write to standard output");
		return EG_EXIT_FAIL;
	}
	if (rc != EG_OK) {
		eg_cli_error("%s", eg_diag_msg(&d, rc));
		return rc == EG_ENOMEM ? EG_EXIT_FAIL : EG_EXIT_USAGE;
	}
	return EG_EXIT_OK;
}
