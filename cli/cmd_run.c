/*
 * cmd_run.c - `expgrid run GRID --local`: runs a grid's trials one after
 * another in this process, through the same trials/ code the MPI workers
 * use, with no database.
 *
 * Output: with --json, one JSON object per trial on stdout as it finishes
 * ({"index","key","params","metrics","curve",...} or, for a failed trial,
 * {"index","key","params","error"}).  Without --json, a progress line per
 * trial on stderr and, at the end, a table on stdout whose columns are the
 * parameters that vary across the grid and the main metrics.  Exit 1 if any
 * trial failed, 2 for a bad grid or usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "grid/grid.h"
#include "trials/trials.h"

struct trial_row {
	size_t index;
	char key[EG_KEY_HEX + 1];
	eg_val *params;
	eg_val *result; /* NULL if failed */
	char *error;
};

struct run_ctx {
	struct trial_row *rows;
	size_t n, cap;
	long only; /* --trial N, or -1 */
	size_t refused; /* 1 + index of a trial naming coverify.network */
};

static volatile int interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int collect(void *ud, const eg_trial_spec *t)
{
	struct run_ctx *c = ud;
	struct trial_row *r;

	if (c->only >= 0 && (long)t->index != c->only)
		return EG_OK;
	/* A network named by trial key lives in the database. */
	if (eg_val_get_str(t->params, "coverify.network", NULL) != NULL) {
		c->refused = t->index + 1;
		return EG_ENOTSUP;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct trial_row *rows = realloc(c->rows, cap * sizeof(*rows));

		if (rows == NULL)
			return EG_ENOMEM;
		c->rows = rows;
		c->cap = cap;
	}
	r = &c->rows[c->n];
	memset(r, 0, sizeof(*r));
	r->index = t->index;
	memcpy(r->key, t->key, sizeof(r->key));
	r->params = eg_val_copy(t->params);
	if (r->params == NULL)
		return EG_ENOMEM;
	c->n++;
	return EG_OK;
}

/* Live progress on a terminal: the latest curve point of the trial. */
struct progress_ctx {
	size_t pos, total;
	const struct trial_row *row;
	int epochs;
};

static void on_progress(void *ud, const eg_val *point)
{
	struct progress_ctx *p = ud;

	fprintf(stderr, "\r[%zu/%zu] %.12s epoch %lld/%d train_acc %.3f test_acc %.3f   ",
		p->pos, p->total, p->row->key,
		(long long)eg_val_get_int(point, "epoch", 0), p->epochs,
		eg_val_get_num(point, "train_acc", 0),
		eg_val_get_num(point, "test_acc", 0));
	fflush(stderr);
}

static void print_json(const struct trial_row *r)
{
	eg_buf b = EG_BUF_INIT;
	eg_json j;

	eg_json_init(&j, &b);
	eg_json_obj_begin(&j);
	eg_json_key(&j, "index");
	eg_json_int(&j, (int64_t)r->index);
	eg_json_key(&j, "key");
	eg_json_str(&j, r->key);
	eg_json_key(&j, "params");
	eg_val_write_json(r->params, &j);
	if (r->result != NULL) {
		for (size_t i = 0; i < eg_val_len(r->result); i++) {
			eg_json_key(&j, eg_val_key_at(r->result, i));
			eg_val_write_json(eg_val_at(r->result, i), &j);
		}
	} else {
		eg_json_key(&j, "error");
		eg_json_str(&j, r->error);
	}
	eg_json_obj_end(&j);
	eg_buf_putc(&b, '\n');
	fwrite(eg_buf_str(&b), 1, b.len, stdout);
	fflush(stdout);
	eg_buf_free(&b);
}

/* Appends "prefix.key" for every leaf of `v` to `names` (deduplicated). */
static void leaf_names(const eg_val *v, const char *prefix, char ***names,
		       size_t *n)
{
	for (size_t i = 0; i < eg_val_len(v); i++) {
		char path[512];
		const eg_val *child = eg_val_at(v, i);
		size_t k;

		snprintf(path, sizeof(path), "%s%s%s", prefix,
			 prefix[0] ? "." : "", eg_val_key_at(v, i));
		if (eg_val_type_of(child) == EG_VAL_MAP &&
		    eg_val_len(child) > 0) {
			leaf_names(child, path, names, n);
			continue;
		}
		for (k = 0; k < *n; k++)
			if (strcmp((*names)[k], path) == 0)
				break;
		if (k < *n)
			continue;
		char **grown = realloc(*names, (*n + 1) * sizeof(char *));
		if (grown == NULL)
			return;
		*names = grown;
		(*names)[(*n)++] = strdup(path);
	}
}

static void cell_text(const eg_val *v, char *out, size_t len)
{
	eg_buf b = EG_BUF_INIT;

	if (v == NULL) {
		snprintf(out, len, "-");
		return;
	}
	if (eg_val_type_of(v) == EG_VAL_STR) {
		snprintf(out, len, "%s", eg_val_as_str(v));
		return;
	}
	if (eg_val_type_of(v) == EG_VAL_FLOAT) {
		snprintf(out, len, "%.4g", eg_val_as_num(v));
		return;
	}
	eg_val_to_json(v, &b);
	snprintf(out, len, "%s", eg_buf_str(&b));
	eg_buf_free(&b);
}

static void print_table(const struct run_ctx *c)
{
	static const char *const train_cols[] = {
		"train_acc", "test_acc", "test_loss", "align_repr",
		"grad_ratio_w1", "epochs", "wall_s"};
	/* With coverify trials in the run: the co-verification summary. */
	static const char *const cov_cols[] = {
		"design_test_acc", "min_s_tol_sd", "first_divergent_layer",
		"l1_hw_health", "est_cycles", "est_energy_nj"};
	enum { NTRAIN = sizeof(train_cols) / sizeof(train_cols[0]),
	       NMAX = NTRAIN + sizeof(cov_cols) / sizeof(cov_cols[0]) };
	const char *metric_cols[NMAX];
	size_t nmet = 0;
	char **names = NULL, **vary = NULL;
	size_t nnames = 0, nvary = 0;
	int width[64 + NMAX];
	char cell[128];
	bool cov = false;

	for (size_t i = 0; i < c->n; i++)
		cov = cov || strcmp(eg_val_get_str(c->rows[i].params, "kind", ""),
				    "coverify") == 0;
	for (size_t k = 0; k < NTRAIN; k++)
		metric_cols[nmet++] = train_cols[k];
	for (size_t k = 0; cov && k < NMAX - NTRAIN; k++)
		metric_cols[nmet++] = cov_cols[k];

	for (size_t i = 0; i < c->n; i++)
		leaf_names(c->rows[i].params, "", &names, &nnames);
	vary = calloc(nnames ? nnames : 1, sizeof(char *));
	if (vary == NULL)
		goto out;
	for (size_t k = 0; k < nnames && nvary < 64; k++) {
		const eg_val *first = eg_val_get_path(c->rows[0].params, names[k]);

		for (size_t i = 1; i < c->n; i++) {
			if (!eg_val_equal(first, eg_val_get_path(c->rows[i].params,
								 names[k]))) {
				vary[nvary++] = names[k];
				break;
			}
		}
	}
	/* Column widths: the widest of header and cells. */
	for (size_t k = 0; k < nvary + nmet; k++) {
		const char *h = k < nvary ? vary[k] : metric_cols[k - nvary];

		width[k] = (int)strlen(h);
		for (size_t i = 0; i < c->n; i++) {
			const eg_val *v = k < nvary
				? eg_val_get_path(c->rows[i].params, vary[k])
				: eg_val_get(eg_val_get(c->rows[i].result, "metrics"),
					     metric_cols[k - nvary]);
			cell_text(v, cell, sizeof(cell));
			if ((int)strlen(cell) > width[k])
				width[k] = (int)strlen(cell);
		}
	}
	printf("%-5s", "#");
	for (size_t k = 0; k < nvary + nmet; k++)
		printf("  %*s", width[k], k < nvary ? vary[k] : metric_cols[k - nvary]);
	printf("\n");
	for (size_t i = 0; i < c->n; i++) {
		const struct trial_row *r = &c->rows[i];

		printf("%-5zu", r->index);
		for (size_t k = 0; k < nvary + nmet; k++) {
			const eg_val *v = k < nvary
				? eg_val_get_path(r->params, vary[k])
				: eg_val_get(eg_val_get(r->result, "metrics"),
					     metric_cols[k - nvary]);
			cell_text(v, cell, sizeof(cell));
			printf("  %*s", width[k], cell);
		}
		if (r->error != NULL)
			printf("  error: %s", r->error);
		printf("\n");
	}
out:
	for (size_t k = 0; k < nnames; k++)
		free(names[k]);
	free(names);
	free(vary);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid run GRID.yaml --local [--json] [--set key=value]...\n"
		"                  [--trial N] [--threads N]\n"
		"Runs the grid's trials one by one in this process (no database).\n"
		"  --json       one JSON object per trial on stdout\n"
		"  --set K=V    fix parameter K to V in every trial\n"
		"  --trial N    run only trial N (its index in `expgrid expand`)\n"
		"  --threads N  OpenBLAS threads (default: the number of cores)\n");
}

int eg_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"local", no_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"set", required_argument, NULL, 's'},
		{"trial", required_argument, NULL, 't'},
		{"threads", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	char **sets = calloc((size_t)argc, sizeof(char *));
	int nsets = 0, opt, rc, local = 0, json = 0, failed = 0;
	long threads = 0;
	struct run_ctx ctx = {NULL, 0, 0, -1, 0};
	eg_grid *g = NULL;
	eg_diag d = {{0}};
	int tty = isatty(2);

	if (sets == NULL)
		return EG_EXIT_FAIL;
	while ((opt = getopt_long(argc, argv, "ljs:t:T:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': local = 1; break;
		case 'j': json = 1; break;
		case 's': sets[nsets++] = optarg; break;
		case 't':
			ctx.only = eg_cli_parse_count(optarg);
			if (ctx.only < 0) {
				eg_cli_error("run: --trial: not a trial index: '%s'", optarg);
				free(sets);
				return EG_EXIT_USAGE;
			}
			break;
		case 'T':
			threads = eg_cli_parse_count(optarg);
			if (threads < 1) {
				eg_cli_error("run: --threads: not a positive number: '%s'", optarg);
				free(sets);
				return EG_EXIT_USAGE;
			}
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
	if (!local) {
		eg_cli_error("run: only --local is supported; to run a grid on "
			     "the cluster use `expgrid submit`");
		free(sets);
		return EG_EXIT_USAGE;
	}
	rc = eg_cli_load_grid(argv[optind], sets, nsets, &g);
	free(sets);
	if (rc != EG_EXIT_OK)
		return rc;
	rc = eg_grid_expand(g, collect, &ctx, &d);
	if (rc != EG_OK && ctx.refused > 0) {
		eg_cli_error("run: trial %zu: coverify.network names a trial "
			     "in the database; --local has none (use `expgrid "
			     "submit` on an fpga:<type> grid, or drop the key "
			     "to train the network in-process)",
			     ctx.refused - 1);
		rc = EG_EXIT_USAGE;
		goto out;
	}
	if (rc != EG_OK) {
		eg_cli_error("%s", eg_diag_msg(&d, rc));
		rc = rc == EG_ENOMEM ? EG_EXIT_FAIL : EG_EXIT_USAGE;
		goto out;
	}
	if (ctx.only >= 0 && ctx.n == 0) {
		eg_cli_error("run: --trial %ld: the grid has %zu trials", ctx.only,
			     eg_grid_count(g));
		rc = EG_EXIT_USAGE;
		goto out;
	}
	if (threads == 0)
		threads = sysconf(_SC_NPROCESSORS_ONLN) > 0
				  ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
	signal(SIGINT, on_sigint);

	for (size_t i = 0; i < ctx.n; i++) {
		struct trial_row *r = &ctx.rows[i];
		struct progress_ctx p = {i + 1, ctx.n, r,
			(int)eg_val_get_int(r->params, "train.epochs", 0)};
		eg_trial_hooks hooks = {&p, tty && !json ? on_progress : NULL,
					&interrupted, (int)threads};
		eg_diag td = {{0}};

		if (interrupted)
			break;
		rc = eg_trial_run(r->params, &hooks, &r->result, &td);
		if (rc != EG_OK) {
			r->error = strdup(eg_diag_msg(&td, rc));
			failed++;
		}
		if (json) {
			print_json(r);
		} else {
			const eg_val *m = eg_val_get(r->result, "metrics");

			if (tty)
				fprintf(stderr, "\r\033[K");
			if (r->error != NULL)
				fprintf(stderr, "[%zu/%zu] %.12s failed: %s\n", i + 1,
					ctx.n, r->key, r->error);
			else
				fprintf(stderr, "[%zu/%zu] %.12s done in %.1f s: "
					"train_acc %.3f test_acc %.3f\n", i + 1, ctx.n,
					r->key, eg_val_get_num(m, "wall_s", 0),
					eg_val_get_num(m, "train_acc", 0),
					eg_val_get_num(m, "test_acc", 0));
		}
	}
	if (!json && ctx.n > 0)
		print_table(&ctx);
	if (interrupted) {
		eg_cli_error("run: interrupted");
		failed++;
	}
	rc = failed ? EG_EXIT_FAIL : EG_EXIT_OK;
out:
	for (size_t i = 0; i < ctx.n; i++) {
		eg_val_free(ctx.rows[i].params);
		eg_val_free(ctx.rows[i].result);
		free(ctx.rows[i].error);
	}
	free(ctx.rows);
	eg_grid_free(g);
	return rc;
}
