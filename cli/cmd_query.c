/*
 * cmd_query.c - `expgrid query trials|best|paradigms GRID [--csv|--json]
 * [--metric NAME] [--limit N]`: the store's result tables printed as an
 * aligned table (default), CSV (RFC 4180, header first) or JSON Lines
 * (one object per row; numbers unquoted, SQL NULL as null).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/json.h"
#include "store/store.h"

enum fmt { FMT_TABLE, FMT_CSV, FMT_JSON };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid query trials|best|paradigms GRID [--csv|--json]\n"
		"                     [--metric NAME] [--limit N] [--columns A,B,...]\n"
		"  trials     every trial: state, varying params, final metrics\n"
		"  best       done trials ranked by --metric (default test_acc;\n"
		"             *_loss, wall_s, rel_l2 rank ascending), --limit N\n"
		"  paradigms  software/design/hardware agreement per layer\n"
		"  --columns  print only these columns, in this order\n");
}

static void csv_cell(eg_buf *b, const char *v)
{
	if (v == NULL)
		return;
	if (strpbrk(v, ",\"\r\n") == NULL) {
		eg_buf_puts(b, v);
		return;
	}
	eg_buf_putc(b, '"');
	for (; *v != '\0'; v++) {
		if (*v == '"')
			eg_buf_putc(b, '"');
		eg_buf_putc(b, *v);
	}
	eg_buf_putc(b, '"');
}

static void print_csv(const eg_store_rows *r, const int *cols, int nc,
		      eg_buf *b)
{
	int nr = eg_store_rows_nrows(r);

	for (int k = 0; k < nc; k++) {
		if (k > 0)
			eg_buf_putc(b, ',');
		csv_cell(b, eg_store_rows_name(r, cols[k]));
	}
	eg_buf_puts(b, "\r\n");
	for (int i = 0; i < nr; i++) {
		for (int k = 0; k < nc; k++) {
			if (k > 0)
				eg_buf_putc(b, ',');
			csv_cell(b, eg_store_rows_value(r, i, cols[k]));
		}
		eg_buf_puts(b, "\r\n");
	}
}

static void print_json(const eg_store_rows *r, const int *cols, int nc,
		       eg_buf *b)
{
	int nr = eg_store_rows_nrows(r);

	for (int i = 0; i < nr; i++) {
		eg_json j;

		eg_json_init(&j, b);
		eg_json_obj_begin(&j);
		for (int k = 0; k < nc; k++) {
			int c = cols[k];
			const char *v = eg_store_rows_value(r, i, c);

			eg_json_key(&j, eg_store_rows_name(r, c));
			if (v == NULL)
				eg_json_null(&j);
			else if (eg_store_rows_is_json(r, c) ||
				 eg_store_rows_is_number(r, i, c))
				eg_json_raw(&j, v);
			else
				eg_json_str(&j, v);
		}
		eg_json_obj_end(&j);
		eg_buf_putc(b, '\n');
	}
}

/* Display width of UTF-8 text: code points, not bytes. */
static size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

static void pad(eg_buf *b, size_t n)
{
	while (n-- > 0)
		eg_buf_putc(b, ' ');
}

/*
 * The text of a table cell: numbers with a fraction are shown with four
 * significant digits (0.8976666666666666 -> 0.8977) so that a table of
 * metrics fits a terminal; --csv and --json keep every digit.
 */
static const char *display(const eg_store_rows *r, int row, int col,
			   char *tmp, size_t len)
{
	const char *v = eg_store_rows_value(r, row, col);
	char *end;
	double x;

	if (v == NULL)
		return "";
	if (!eg_store_rows_is_number(r, row, col) ||
	    strpbrk(v, ".eE") == NULL)
		return v;
	x = strtod(v, &end);
	if (*end != '\0')
		return v;
	snprintf(tmp, len, "%.4g", x);
	return tmp;
}

static void print_table(const eg_store_rows *r, const int *cols, int nc,
			eg_buf *b)
{
	char tmp[64];
	int nr = eg_store_rows_nrows(r);
	size_t *w = calloc((size_t)nc + 1, sizeof(size_t));
	bool *right = calloc((size_t)nc + 1, sizeof(bool));

	if (w == NULL || right == NULL) {
		b->failed = true;
		goto out;
	}
	for (int k = 0; k < nc; k++) {
		w[k] = text_width(eg_store_rows_name(r, cols[k]));
		right[k] = nr > 0;
		for (int i = 0; i < nr; i++) {
			const char *v = eg_store_rows_value(r, i, cols[k]);
			size_t vw = text_width(
				display(r, i, cols[k], tmp, sizeof(tmp)));

			if (vw > w[k])
				w[k] = vw;
			if (v != NULL && !eg_store_rows_is_number(r, i, cols[k]))
				right[k] = false;
		}
	}
	for (int k = 0; k < nc; k++) {
		const char *name = eg_store_rows_name(r, cols[k]);

		if (k > 0)
			eg_buf_puts(b, "  ");
		if (right[k])
			pad(b, w[k] - text_width(name));
		eg_buf_puts(b, name);
		if (!right[k] && k < nc - 1)
			pad(b, w[k] - text_width(name));
	}
	eg_buf_putc(b, '\n');
	for (int k = 0; k < nc; k++) {
		if (k > 0)
			eg_buf_puts(b, "  ");
		for (size_t n = 0; n < w[k]; n++)
			eg_buf_putc(b, '-');
	}
	eg_buf_putc(b, '\n');
	for (int i = 0; i < nr; i++) {
		for (int k = 0; k < nc; k++) {
			const char *v = display(r, i, cols[k], tmp, sizeof(tmp));

			if (k > 0)
				eg_buf_puts(b, "  ");
			if (right[k])
				pad(b, w[k] - text_width(v));
			eg_buf_puts(b, v);
			if (!right[k] && k < nc - 1)
				pad(b, w[k] - text_width(v));
		}
		eg_buf_putc(b, '\n');
	}
	eg_buf_printf(b, "(%d row%s)\n", nr, nr == 1 ? "" : "s");
out:
	free(w);
	free(right);
}

static int col_of(const eg_store_rows *r, const char *name)
{
	for (int c = 0; c < eg_store_rows_ncols(r); c++)
		if (strcmp(eg_store_rows_name(r, c), name) == 0)
			return c;
	return -1;
}

/*
 * Under the paradigms table: the first layer (in network order) where
 * design and hardware are not bit-exact in some trial, which is the layer
 * to debug first (docs/coverify.md); the rows come ordered by layer.
 */
static void first_divergent(const eg_store_rows *r, eg_buf *out)
{
	int cl = col_of(r, "layer"), cn = col_of(r, "name"),
	    cp = col_of(r, "pair"), cb = col_of(r, "s_bit_min");

	if (cl < 0 || cn < 0 || cp < 0 || cb < 0 || eg_store_rows_nrows(r) == 0)
		return;
	for (int i = 0; i < eg_store_rows_nrows(r); i++) {
		const char *pair = eg_store_rows_value(r, i, cp);
		const char *sb = eg_store_rows_value(r, i, cb);

		if (pair == NULL || strcmp(pair, "design-hardware") != 0 ||
		    sb == NULL || strtod(sb, NULL) >= 100)
			continue;
		eg_buf_printf(out, "first divergent layer: %s (%s), "
			      "design-hardware S_bit down to %.4g %%\n",
			      eg_store_rows_value(r, i, cl),
			      eg_store_rows_value(r, i, cn), strtod(sb, NULL));
		return;
	}
	eg_buf_puts(out, "first divergent layer: none (design and hardware "
			 "bit-exact on every layer)\n");
}

/*
 * The columns to print: all of them, or those named in --columns
 * ("idx,train.algo,test_acc"), in that order.  Returns the count, or -1
 * after printing which name is unknown.
 */
static int select_columns(const eg_store_rows *r, const char *list,
			  int *cols)
{
	int nc = eg_store_rows_ncols(r), n = 0;
	char *copy, *save = NULL;

	if (list == NULL) {
		for (int c = 0; c < nc; c++)
			cols[c] = c;
		return nc;
	}
	copy = strdup(list);
	if (copy == NULL)
		return -1;
	for (char *name = strtok_r(copy, ",", &save); name != NULL;
	     name = strtok_r(NULL, ",", &save)) {
		int c = col_of(r, name);

		if (c < 0 || n >= nc) {
			eg_cli_error("query: --columns: no column '%s' in this "
				     "table", name);
			free(copy);
			return -1;
		}
		cols[n++] = c;
	}
	free(copy);
	return n;
}

int eg_cmd_query(int argc, char **argv)
{
	static const struct option opts[] = {
		{"csv", no_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"metric", required_argument, NULL, 'm'},
		{"limit", required_argument, NULL, 'n'},
		{"columns", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	enum fmt fmt = FMT_TABLE;
	enum eg_store_query_kind kind;
	const char *metric = NULL, *what, *columns = NULL;
	int *cols = NULL, ncols;
	long limit = 10;
	eg_diag d = {{0}};
	eg_store *s = NULL;
	eg_store_rows *rows = NULL;
	eg_buf out = EG_BUF_INIT;
	int64_t grid = 0;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "cjm:n:C:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			fmt = FMT_CSV;
			break;
		case 'j':
			fmt = FMT_JSON;
			break;
		case 'm':
			metric = optarg;
			break;
		case 'C':
			columns = optarg;
			break;
		case 'n':
			limit = eg_cli_parse_count(optarg);
			if (limit <= 0 || limit > 1000000000) {
				eg_cli_error("query: --limit needs a positive "
					     "count");
				return EG_EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return EG_EXIT_OK;
		default:
			usage(stderr);
			return EG_EXIT_USAGE;
		}
	}
	if (optind != argc - 2) {
		usage(stderr);
		return EG_EXIT_USAGE;
	}
	what = argv[optind];
	if (strcmp(what, "trials") == 0) {
		kind = EG_STORE_Q_TRIALS;
	} else if (strcmp(what, "best") == 0) {
		kind = EG_STORE_Q_BEST;
	} else if (strcmp(what, "paradigms") == 0) {
		kind = EG_STORE_Q_PARADIGMS;
	} else {
		eg_cli_error("query: unknown table '%s' (trials, best, "
			     "paradigms)",
			     what);
		return EG_EXIT_USAGE;
	}
	rc = eg_store_connect(NULL, &s, &d);
	if (rc == EG_OK)
		rc = eg_store_find_grid(s, argv[optind + 1], &grid, &d);
	if (rc == EG_OK)
		rc = eg_store_query(s, kind, grid, metric, (int)limit, &rows,
				    &d);
	eg_store_close(s);
	if (rc != EG_OK) {
		eg_cli_error("query: %s", eg_diag_msg(&d, rc));
		return rc == EG_ENOENT ? EG_EXIT_USAGE : EG_EXIT_FAIL;
	}
	cols = calloc((size_t)eg_store_rows_ncols(rows) + 1, sizeof(int));
	ncols = cols != NULL ? select_columns(rows, columns, cols) : -1;
	if (ncols < 0) {
		free(cols);
		eg_store_rows_free(rows);
		return cols != NULL ? EG_EXIT_USAGE : EG_EXIT_FAIL;
	}
	if (fmt == FMT_CSV)
		print_csv(rows, cols, ncols, &out);
	else if (fmt == FMT_JSON)
		print_json(rows, cols, ncols, &out);
	else
		print_table(rows, cols, ncols, &out);
	free(cols);
	if (fmt != FMT_CSV && fmt != FMT_JSON && kind == EG_STORE_Q_PARADIGMS)
		first_divergent(rows, &out);
	eg_store_rows_free(rows);
	rc = eg_buf_failed(&out) ||
	     fwrite(out.data != NULL ? out.data : "", 1, out.len, stdout) !=
		     out.len ||
	     fflush(stdout) != 0;
	eg_buf_free(&out);
	if (rc) {
		eg_cli_error("query: cannot write the output");
		return EG_EXIT_FAIL;
	}
	return EG_EXIT_OK;
}
