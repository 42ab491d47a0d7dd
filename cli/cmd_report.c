/*
 * cmd_report.c - `expgrid report GRID -o FILE.html`: one self-contained HTML
 * page about a grid, for a browser or a mail attachment.
 *
 * The page has no script, no external stylesheet, font or image and fetches
 * nothing: the CSS is inline and the charts are SVG written here.  Sections:
 * the header (name, id, created, spec hash, counts per state), the best
 * trials by test_acc, learning curves (test_acc per epoch, one line per
 * trial, at most MAX_LINES lines: the best by final test_acc), test_acc
 * against the weights remaining for lottery grids, the paradigm table of
 * co-verification grids with the first divergent layer highlighted, every
 * trial, failed trials with their errors, the grid file, and how to get the
 * same data with psql.
 *
 * Invariant: every string that comes from the database (names, parameter
 * values, errors, the spec, even states and column titles) goes through
 * html_text() before it reaches the page; only text written in this file is
 * emitted raw.  Numbers are reformatted from PostgreSQL's text so the page
 * shows 4 significant digits rather than 17.
 *
 * All reads go through store/ (eg_store_query for the trial tables and the
 * paradigm table, eg_store_report for the rest); this file has no SQL.  The
 * page is built in memory, written to FILE.tmp.<pid> and renamed over FILE,
 * so a failed run never leaves a half-written report.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "store/store.h"

/* Lines per chart: more are unreadable, and the legend says what was cut. */
#define MAX_LINES 24
/* Rows of the all-trials table; the rest are one `expgrid query` away. */
#define MAX_TABLE_ROWS 10000
#define BEST_ROWS 10

/* The trial-table columns shown first, in this order, when present. */
static const char *const first_metrics[] = {"test_acc", "train_acc",
					    "test_loss", "train_loss",
					    "wall_s"};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid report GRID -o FILE.html\n"
		"  Writes one self-contained HTML page (no scripts, no network)\n"
		"  about GRID (an id or a name): state counts, the grid file,\n"
		"  every trial with its varying parameters and final metrics,\n"
		"  the best trials, learning curves, lottery and co-verification\n"
		"  charts.  -o - writes to standard output.\n");
}

/* ---- text ---- */

/* Appends s with the five HTML metacharacters escaped, so it is safe in
 * element content and in quoted attribute values alike. */
static void html_text(eg_buf *b, const char *s)
{
	if (s == NULL)
		return;
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			eg_buf_puts(b, "&amp;");
			break;
		case '<':
			eg_buf_puts(b, "&lt;");
			break;
		case '>':
			eg_buf_puts(b, "&gt;");
			break;
		case '"':
			eg_buf_puts(b, "&quot;");
			break;
		case '\'':
			eg_buf_puts(b, "&#39;");
			break;
		default:
			eg_buf_putc(b, *s);
		}
	}
}

/* A value for a reader: integers whole, 4 significant digits otherwise,
 * an exponent only for the very large and very small. */
static void fmt_num(char *out, size_t n, double v)
{
	double a = fabs(v);

	if (isnan(v))
		snprintf(out, n, "NaN");
	else if (isinf(v))
		snprintf(out, n, v > 0 ? "\xe2\x88\x9e" : "\xe2\x88\x92\xe2\x88\x9e");
	else if (v == rint(v) && a < 1e15)
		snprintf(out, n, "%.0f", v);
	else if (a >= 1e6 || a < 1e-3)
		snprintf(out, n, "%.3e", v);
	else if (a >= 1000)
		snprintf(out, n, "%.1f", v);
	else {
		snprintf(out, n, "%.4g", v);
		/* 0.99997 must not read as a whole 1 */
		if (strpbrk(out, ".e") == NULL)
			snprintf(out, n, "%.6g", v);
	}
}

static bool parse_num(const char *s, double *v)
{
	char *end;

	if (s == NULL || *s == '\0')
		return false;
	*v = strtod(s, &end);
	return *end == '\0';
}

/* ---- the trials (labels for legends) ---- */

struct trial_label {
	int64_t id;
	char *label; /* owned: "#idx p=v, p=v", HTML not yet escaped */
};

struct report {
	eg_buf *out;
	int64_t grid;
	eg_store_counts counts;
	eg_store_rows *grid_row, *varying, *trials, *best, *curves, *rounds,
		*paradigms, *failed;
	struct trial_label *labels; /* sorted by id */
	size_t nlabels;
	bool *is_param; /* per column of `trials`: a varying parameter */
};

static int col_of(const eg_store_rows *r, const char *name)
{
	for (int c = 0; c < eg_store_rows_ncols(r); c++)
		if (strcmp(eg_store_rows_name(r, c), name) == 0)
			return c;
	return -1;
}

static bool is_varying(const struct report *rp, const char *name)
{
	for (int i = 0; i < eg_store_rows_nrows(rp->varying); i++) {
		const char *v = eg_store_rows_value(rp->varying, i, 1);

		if (v != NULL && strcmp(v, name) == 0)
			return true;
	}
	return false;
}

static int label_cmp(const void *a, const void *b)
{
	const struct trial_label *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/* A label per trial from its index and varying parameters; also marks the
 * parameter columns of the trial table.  Returns false on out of memory. */
static bool build_labels(struct report *rp)
{
	const eg_store_rows *t = rp->trials;
	int nr = eg_store_rows_nrows(t), nc = eg_store_rows_ncols(t);
	int cid = col_of(t, "id"), cidx = col_of(t, "idx");
	eg_buf b = EG_BUF_INIT;

	rp->is_param = calloc((size_t)nc + 1, sizeof(bool));
	rp->labels = calloc((size_t)nr + 1, sizeof(*rp->labels));
	if (rp->is_param == NULL || rp->labels == NULL)
		return false;
	for (int c = 0; c < nc; c++)
		rp->is_param[c] = is_varying(rp, eg_store_rows_name(t, c));
	for (int i = 0; i < nr; i++) {
		const char *sep = " ";

		eg_buf_reset(&b);
		eg_buf_printf(&b, "#%s",
			      cidx >= 0 && eg_store_rows_value(t, i, cidx) ?
				      eg_store_rows_value(t, i, cidx) : "?");
		for (int c = 0; c < nc; c++) {
			const char *v = eg_store_rows_value(t, i, c);

			if (!rp->is_param[c])
				continue;
			eg_buf_printf(&b, "%s%s=%s", sep,
				      eg_store_rows_name(t, c),
				      v != NULL ? v : "-");
			sep = ", ";
		}
		if (eg_buf_failed(&b))
			goto oom;
		rp->labels[i].id = cid >= 0 ?
			strtoll(eg_store_rows_value(t, i, cid), NULL, 10) : 0;
		rp->labels[i].label = strdup(eg_buf_str(&b));
		if (rp->labels[i].label == NULL)
			goto oom;
		rp->nlabels++;
	}
	qsort(rp->labels, rp->nlabels, sizeof(*rp->labels), label_cmp);
	eg_buf_free(&b);
	return true;
oom:
	eg_buf_free(&b);
	return false;
}

static const char *label_of(const struct report *rp, int64_t id)
{
	struct trial_label key = {id, NULL}, *hit;

	hit = bsearch(&key, rp->labels, rp->nlabels, sizeof(key), label_cmp);
	return hit != NULL ? hit->label : "(trial not in grid)";
}

/* ---- charts ---- */

struct series {
	const char *label;
	double *x, *y; /* n points, slices of the chart's arrays */
	size_t n;
	double last; /* last finite y, for ordering the legend */
};

struct chart {
	const char *title, *xlabel, *ylabel;
	struct series *s;
	size_t ns;
	bool logx, reverse_x;
};

/* Tableau 10 plus two: distinguishable, and print well. */
static const char *const palette[] = {
	"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
	"#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#17becf", "#8c564b"};
#define NPALETTE (sizeof(palette) / sizeof(palette[0]))

/* A step of 1, 2 or 5 times a power of ten near range/target. */
static double nice_step(double range, int target)
{
	double raw = range / target, p = pow(10, floor(log10(raw)));
	double m = raw / p;

	return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* The nearest of 1, 2, 5 times a power of ten at or above (up) or at or
 * below v > 0. */
static double tick_125(double v, bool up)
{
	static const double ms[] = {1, 2, 5, 10};
	double p = pow(10, floor(log10(v)));

	if (up) {
		for (int i = 0; i < 4; i++)
			if (ms[i] * p >= v * (1 - 1e-9))
				return ms[i] * p;
	} else {
		for (int i = 3; i >= 0; i--)
			if (ms[i] * p <= v * (1 + 1e-9))
				return ms[i] * p;
	}
	return v;
}

static bool point_ok(const struct chart *c, double x, double y)
{
	return isfinite(x) && isfinite(y) && (!c->logx || x > 0);
}

enum { CW = 880, CH = 380, ML = 64, MR = 24, MT = 16, MB = 52 };

struct frame {
	double x0, x1, y0, y1; /* data range (log10 of x when logx) */
};

static double px(const struct chart *c, const struct frame *f, double x)
{
	double t;

	if (c->logx)
		x = log10(x);
	t = f->x1 > f->x0 ? (x - f->x0) / (f->x1 - f->x0) : 0.5;
	if (c->reverse_x)
		t = 1 - t;
	return ML + t * (CW - ML - MR);
}

static double py(const struct frame *f, double y)
{
	double t = f->y1 > f->y0 ? (y - f->y0) / (f->y1 - f->y0) : 0.5;

	return CH - MB - t * (CH - MT - MB);
}

static void x_tick(eg_buf *b, const struct chart *c, const struct frame *f,
		   double v)
{
	char t[48];
	double x = px(c, f, v);

	fmt_num(t, sizeof(t), v);
	eg_buf_printf(b,
		      "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
		      "y2=\"%d\"/><text x=\"%.1f\" y=\"%d\" "
		      "text-anchor=\"middle\">%s</text>\n",
		      x, MT, x, CH - MB, x, CH - MB + 18, t);
}

/* Writes the chart as inline SVG followed by an HTML legend. */
static void svg_chart(eg_buf *b, const struct chart *c)
{
	struct frame f = {INFINITY, -INFINITY, INFINITY, -INFINITY};
	double step;

	for (size_t i = 0; i < c->ns; i++)
		for (size_t k = 0; k < c->s[i].n; k++) {
			double x = c->s[i].x[k], y = c->s[i].y[k];

			if (!point_ok(c, x, y))
				continue;
			if (c->logx)
				x = log10(x);
			f.x0 = fmin(f.x0, x);
			f.x1 = fmax(f.x1, x);
			f.y0 = fmin(f.y0, y);
			f.y1 = fmax(f.y1, y);
		}
	if (!(f.x0 <= f.x1)) {
		eg_buf_puts(b, "<p class=\"note\">No finite points to plot.</p>\n");
		return;
	}
	/* Round the y range out to whole ticks; give a flat line some room. */
	if (f.y1 - f.y0 < 1e-12) {
		f.y0 -= fabs(f.y0) * 0.05 + 0.5e-3;
		f.y1 += fabs(f.y1) * 0.05 + 0.5e-3;
	}
	step = nice_step(f.y1 - f.y0, 5);
	f.y0 = floor(f.y0 / step + 1e-9) * step;
	f.y1 = ceil(f.y1 / step - 1e-9) * step;
	if (c->logx) { /* widen to the enclosing 1-2-5 ticks */
		f.x0 = log10(tick_125(pow(10, f.x0), false));
		f.x1 = log10(tick_125(pow(10, f.x1), true));
	}
	if (f.x1 - f.x0 < 1e-12) { /* one epoch, or one round */
		f.x0 -= 0.5;
		f.x1 += 0.5;
	}

	eg_buf_printf(b,
		      "<figure><svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
		      "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
		      CW, CH);
	html_text(b, c->title);
	eg_buf_puts(b, "\">\n");
	/* y grid and labels */
	for (double v = f.y0; v <= f.y1 + step * 1e-6; v += step) {
		char t[48];
		double y = py(&f, v);

		fmt_num(t, sizeof(t), fabs(v) < step * 1e-9 ? 0 : v);
		eg_buf_printf(b,
			      "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" "
			      "x2=\"%d\" y2=\"%.1f\"/><text x=\"%d\" y=\"%.1f\" "
			      "text-anchor=\"end\">%s</text>\n",
			      ML, y, CW - MR, y, ML - 8, y + 4, t);
	}
	/* x grid: decades (with 2 and 5 over short ranges) on a log axis,
	 * nice steps on a linear one (whole numbers for epochs) */
	if (c->logx) {
		/* within a decade every digit, up to 2.5 decades 1-2-5,
		 * beyond that the decades only */
		double span = f.x1 - f.x0;

		for (int e = (int)floor(f.x0); e <= (int)ceil(f.x1); e++)
			for (int m = 1; m <= 9; m++) {
				double v = m * pow(10, e), lv = log10(v);

				if (m != 1 && span > 2.5)
					break;
				if ((span > 1.0001 && m != 1 && m != 2 &&
				     m != 5) ||
				    lv < f.x0 - 1e-9 || lv > f.x1 + 1e-9)
					continue;
				x_tick(b, c, &f, v);
			}
	} else {
		double xs = nice_step(f.x1 - f.x0, 8);

		if (xs < 1 && f.x0 == rint(f.x0) && f.x1 == rint(f.x1))
			xs = 1;
		for (double v = ceil(f.x0 / xs - 1e-9) * xs;
		     v <= f.x1 + xs * 1e-6; v += xs)
			x_tick(b, c, &f, v);
	}
	eg_buf_printf(b,
		      "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" "
		      "height=\"%d\"/>\n",
		      ML, MT, CW - ML - MR, CH - MT - MB);
	eg_buf_printf(b, "<text class=\"axis\" x=\"%d\" y=\"%d\" "
			 "text-anchor=\"middle\">",
		      (CW + ML - MR) / 2, CH - 10);
	html_text(b, c->xlabel);
	eg_buf_printf(b, "</text>\n<text class=\"axis\" transform=\"translate(16 %d) "
			 "rotate(-90)\" text-anchor=\"middle\">",
		      (CH - MB + MT) / 2);
	html_text(b, c->ylabel);
	eg_buf_puts(b, "</text>\n");
	for (size_t i = 0; i < c->ns; i++) {
		const struct series *s = &c->s[i];
		const char *color = palette[i % NPALETTE];
		const char *dash = i >= NPALETTE ? " stroke-dasharray=\"7 4\"" : "";

		eg_buf_printf(b, "<polyline class=\"line\" stroke=\"%s\"%s points=\"",
			      color, dash);
		for (size_t k = 0; k < s->n; k++)
			if (point_ok(c, s->x[k], s->y[k]))
				eg_buf_printf(b, "%.1f,%.1f ",
					      px(c, &f, s->x[k]),
					      py(&f, s->y[k]));
		eg_buf_puts(b, "\"><title>");
		html_text(b, s->label);
		eg_buf_puts(b, "</title></polyline>\n");
		/* Markers when points are few, so one point still shows. */
		if (s->n <= 40)
			for (size_t k = 0; k < s->n; k++)
				if (point_ok(c, s->x[k], s->y[k]))
					eg_buf_printf(b,
						      "<circle cx=\"%.1f\" cy=\"%.1f\" "
						      "r=\"2.6\" fill=\"%s\"/>",
						      px(c, &f, s->x[k]),
						      py(&f, s->y[k]), color);
		eg_buf_putc(b, '\n');
	}
	eg_buf_puts(b, "</svg>\n<ol class=\"legend\">\n");
	for (size_t i = 0; i < c->ns; i++) {
		char t[48];

		fmt_num(t, sizeof(t), c->s[i].last);
		eg_buf_printf(b,
			      "<li><svg width=\"26\" height=\"10\"><line x1=\"1\" "
			      "y1=\"5\" x2=\"25\" y2=\"5\" stroke=\"%s\" "
			      "stroke-width=\"3\"%s/></svg>",
			      palette[i % NPALETTE],
			      i >= NPALETTE ? " stroke-dasharray=\"7 4\"" : "");
		html_text(b, c->s[i].label);
		eg_buf_printf(b, " <span class=\"last\">%s</span></li>\n", t);
	}
	eg_buf_puts(b, "</ol></figure>\n");
}

static int series_cmp(const void *a, const void *b)
{
	const struct series *x = a, *y = b;
	bool fx = isfinite(x->last), fy = isfinite(y->last);

	if (fx != fy)
		return fx ? -1 : 1;
	if (fx && x->last != y->last)
		return x->last > y->last ? -1 : 1;
	return 0;
}

/*
 * Groups rows (trial id in column 0, ordered by trial) into series with x
 * from column cx and y from column cy; `xscale` multiplies x.  Arrays are
 * returned in *xs, *ys, *out (caller frees all three).
 */
static bool make_series(const struct report *rp, const eg_store_rows *r,
			int cx, int cy, double xscale, struct series **out,
			size_t *ns, double **xs, double **ys)
{
	int nr = eg_store_rows_nrows(r);
	struct series *s = calloc((size_t)nr + 1, sizeof(*s));
	double *x = calloc((size_t)nr + 1, sizeof(double));
	double *y = calloc((size_t)nr + 1, sizeof(double));
	size_t n = 0;
	const char *prev = NULL;

	*out = s;
	*xs = x;
	*ys = y;
	*ns = 0;
	if (s == NULL || x == NULL || y == NULL)
		return false;
	for (int i = 0; i < nr; i++) {
		const char *tid = eg_store_rows_value(r, i, 0);
		double vx = NAN, vy = NAN;

		if (prev == NULL || strcmp(prev, tid) != 0) {
			s[n].label = label_of(rp, strtoll(tid, NULL, 10));
			s[n].x = x + i;
			s[n].y = y + i;
			s[n].last = NAN;
			n++;
			prev = tid;
		}
		parse_num(eg_store_rows_value(r, i, cx), &vx);
		parse_num(eg_store_rows_value(r, i, cy), &vy);
		x[i] = vx * xscale;
		y[i] = vy;
		s[n - 1].n++;
		if (isfinite(vy))
			s[n - 1].last = vy;
	}
	qsort(s, n, sizeof(*s), series_cmp);
	*ns = n;
	return true;
}

/* ---- sections ---- */

static const char css[] =
	"<style>\n"
	":root{--fg:#1d2330;--mute:#5f6b7a;--line:#dfe3e8;--bg:#fff;"
	"--head:#f4f6f8;--accent:#4e79a7}\n"
	"body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,"
	"Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg);"
	"margin:0 auto;padding:24px 28px 40px;max-width:1120px}\n"
	"h1{font-size:24px;margin:0 0 4px;word-break:break-word}\n"
	"h2{font-size:17px;margin:34px 0 10px;padding-bottom:4px;"
	"border-bottom:2px solid var(--line)}\n"
	".meta{color:var(--mute);margin:0 0 14px}\n"
	".meta code{color:var(--fg)}\n"
	"code,pre,.mono{font-family:ui-monospace,'SFMono-Regular',Menlo,"
	"Consolas,'DejaVu Sans Mono',monospace;font-size:12.5px}\n"
	".cards{display:flex;gap:10px;flex-wrap:wrap;margin:10px 0}\n"
	".card{border:1px solid var(--line);border-radius:6px;padding:6px 14px;"
	"min-width:78px}\n"
	".card b{display:block;font-size:20px;font-variant-numeric:tabular-nums}\n"
	".card span{color:var(--mute);font-size:12px}\n"
	".bar{display:flex;height:8px;border-radius:4px;overflow:hidden;"
	"background:var(--line);margin:8px 0 0}\n"
	".bar i{display:block;height:100%}\n"
	".c-done{background:#59a14f}.c-failed{background:#e15759}"
	".c-cancelled{background:#bab0ac}.c-running{background:#4e79a7}"
	".c-leased{background:#76b7b2}.c-pending{background:#dfe3e8}\n"
	"table{border-collapse:collapse;margin:6px 0;font-size:13px}\n"
	"th,td{padding:4px 10px;border-bottom:1px solid var(--line);"
	"text-align:left;vertical-align:top}\n"
	"th{background:var(--head);font-weight:600;white-space:nowrap}\n"
	"td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;"
	"white-space:nowrap}\n"
	"td.p{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;"
	"word-break:break-all;max-width:260px}\n"
	"td.t{white-space:nowrap}\n"
	"tbody tr:nth-child(even){background:#fafbfc}\n"
	".scroll{overflow-x:auto}\n"
	".st{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;"
	"background:#eef0f3}\n"
	".st-done{background:#e3f1df;color:#2d6a25}"
	".st-failed{background:#fbe3e3;color:#a1262a}"
	".st-running,.st-leased{background:#e1ebf5;color:#2b5580}"
	".st-cancelled{background:#eeeeee;color:#666}\n"
	"tr.div td{background:#fff1c7}\n"
	"td.low{color:#a1262a;font-weight:600}\n"
	".note{color:var(--mute)}\n"
	".err{color:#a1262a;white-space:pre-wrap;word-break:break-word}\n"
	"figure{margin:6px 0}\n"
	"svg.chart{width:100%;height:auto;max-width:880px;display:block}\n"
	"svg.chart text{font-size:12px;fill:var(--mute)}\n"
	"svg.chart text.axis{font-size:13px;fill:var(--fg)}\n"
	"svg.chart .grid{stroke:#eceff2;stroke-width:1}\n"
	"svg.chart .frame{fill:none;stroke:#c5ccd4}\n"
	"svg.chart .line{fill:none;stroke-width:2;stroke-linejoin:round;"
	"stroke-linecap:round}\n"
	"ol.legend{list-style:none;padding:0;margin:8px 0;columns:2 380px;"
	"font-size:12.5px}\n"
	"ol.legend li{break-inside:avoid;padding:1px 0;word-break:break-word}\n"
	"ol.legend svg{vertical-align:middle;margin-right:6px}\n"
	".last{color:var(--mute);font-variant-numeric:tabular-nums}\n"
	"pre{background:var(--head);border:1px solid var(--line);"
	"border-radius:6px;padding:10px 12px;overflow-x:auto;white-space:pre}\n"
	"footer{margin-top:36px;padding-top:10px;border-top:1px solid var(--line);"
	"color:var(--mute);font-size:13px}\n"
	"footer pre{color:var(--fg)}\n"
	"</style>\n";

static const char *grid_field(const struct report *rp, const char *name)
{
	int c = col_of(rp->grid_row, name);
	const char *v = c >= 0 ? eg_store_rows_value(rp->grid_row, 0, c) : NULL;

	return v != NULL ? v : "";
}

static void card(eg_buf *b, const char *what, int64_t n)
{
	eg_buf_printf(b, "<div class=\"card\"><b>%lld</b><span>%s</span></div>",
		      (long long)n, what);
}

static void section_header(struct report *rp)
{
	eg_buf *b = rp->out;
	const eg_store_counts *k = &rp->counts;
	const struct {
		const char *name;
		int64_t n;
	} parts[] = {{"done", k->done},       {"failed", k->failed},
		     {"cancelled", k->cancelled}, {"running", k->running},
		     {"leased", k->leased},   {"pending", k->pending}};

	eg_buf_puts(b, "<header><h1>");
	html_text(b, grid_field(rp, "name"));
	eg_buf_printf(b, "</h1>\n<p class=\"meta\">grid <b>%lld</b> &middot; "
			 "created ",
		      (long long)rp->grid);
	html_text(b, grid_field(rp, "created_at"));
	eg_buf_puts(b, " &middot; target <code>");
	html_text(b, grid_field(rp, "target"));
	eg_buf_puts(b, "</code> &middot; state <code>");
	html_text(b, grid_field(rp, "state"));
	eg_buf_puts(b, "</code><br>spec hash <code>");
	html_text(b, grid_field(rp, "spec_hash"));
	eg_buf_puts(b, "</code></p>\n<div class=\"cards\">");
	card(b, "total", k->total);
	card(b, "done", k->done);
	card(b, "failed", k->failed);
	card(b, "cancelled", k->cancelled);
	card(b, "pending", k->pending);
	if (k->leased + k->running > 0)
		card(b, "running", k->leased + k->running);
	eg_buf_puts(b, "</div>\n<div class=\"bar\">");
	for (size_t i = 0; k->total > 0 && i < sizeof(parts) / sizeof(parts[0]);
	     i++)
		if (parts[i].n > 0)
			eg_buf_printf(b, "<i class=\"c-%s\" style=\"width:%.3f%%\" "
					 "title=\"%s %lld\"></i>",
				      parts[i].name,
				      100.0 * (double)parts[i].n / (double)k->total,
				      parts[i].name, (long long)parts[i].n);
	eg_buf_puts(b, "</div></header>\n");
}

/* Order of the trial-table columns: id, idx, state, attempts, the varying
 * parameters, the headline metrics, the other metrics.  Fills `order`
 * (ncols entries) and returns how many are used. */
static int table_order(const struct report *rp, const eg_store_rows *r,
		       int *order)
{
	int nc = eg_store_rows_ncols(r), n = 0;
	static const char *const fixed[] = {"id", "idx", "state", "attempts"};
	bool *used = calloc((size_t)nc + 1, sizeof(bool));

	if (used == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		int c = col_of(r, fixed[i]);

		if (c >= 0 && !used[c]) {
			order[n++] = c;
			used[c] = true;
		}
	}
	for (int c = 0; c < nc; c++)
		if (!used[c] && is_varying(rp, eg_store_rows_name(r, c))) {
			order[n++] = c;
			used[c] = true;
		}
	for (size_t i = 0; i < sizeof(first_metrics) / sizeof(first_metrics[0]);
	     i++) {
		int c = col_of(r, first_metrics[i]);

		if (c >= 0 && !used[c]) {
			order[n++] = c;
			used[c] = true;
		}
	}
	for (int c = 0; c < nc; c++)
		if (!used[c]) {
			order[n++] = c;
			used[c] = true;
		}
	free(used);
	return n;
}

static void state_badge(eg_buf *b, const char *st)
{
	static const char *const known[] = {"pending", "leased", "running",
					    "done", "failed", "cancelled"};
	const char *cls = "";

	for (size_t i = 0; st != NULL && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(st, known[i]) == 0)
			cls = known[i];
	eg_buf_printf(b, "<span class=\"st%s%s\">", *cls ? " st-" : "", cls);
	html_text(b, st);
	eg_buf_puts(b, "</span>");
}

/* A trial table (all trials, or the best with a rank column). */
static bool trial_table(struct report *rp, const eg_store_rows *r, bool rank,
			int max_rows)
{
	eg_buf *b = rp->out;
	int nc = eg_store_rows_ncols(r), nr = eg_store_rows_nrows(r);
	int *order = calloc((size_t)nc + 1, sizeof(int)), n;

	if (order == NULL || (n = table_order(rp, r, order)) < 0) {
		free(order);
		return false;
	}
	eg_buf_puts(b, "<div class=\"scroll\"><table>\n<thead><tr>");
	if (rank)
		eg_buf_puts(b, "<th class=\"n\">rank</th>");
	for (int k = 0; k < n; k++) {
		const char *name = eg_store_rows_name(r, order[k]);
		bool param = is_varying(rp, name);

		eg_buf_printf(b, "<th%s>", param || strcmp(name, "state") == 0 ?
						   "" : " class=\"n\"");
		html_text(b, name);
		eg_buf_puts(b, "</th>");
	}
	eg_buf_puts(b, "</tr></thead>\n<tbody>\n");
	for (int i = 0; i < nr && i < max_rows; i++) {
		eg_buf_puts(b, "<tr>");
		if (rank)
			eg_buf_printf(b, "<td class=\"n\">%d</td>", i + 1);
		for (int k = 0; k < n; k++) {
			int c = order[k];
			const char *name = eg_store_rows_name(r, c);
			const char *v = eg_store_rows_value(r, i, c);
			double x;

			if (strcmp(name, "state") == 0) {
				eg_buf_puts(b, "<td>");
				state_badge(b, v);
			} else if (is_varying(rp, name)) {
				eg_buf_puts(b, "<td class=\"p\">");
				html_text(b, v != NULL ? v : "");
			} else if (parse_num(v, &x)) {
				char t[48];

				fmt_num(t, sizeof(t), x);
				eg_buf_printf(b, "<td class=\"n\">%s", t);
			} else {
				eg_buf_puts(b, "<td>");
				html_text(b, v != NULL ? v : "");
			}
			eg_buf_puts(b, "</td>");
		}
		eg_buf_puts(b, "</tr>\n");
	}
	eg_buf_puts(b, "</tbody></table></div>\n");
	if (nr > max_rows)
		eg_buf_printf(b, "<p class=\"note\">The first %d of %d trials; "
				 "<code>expgrid query trials %lld --csv</code> "
				 "gives all of them.</p>\n",
			      max_rows, nr, (long long)rp->grid);
	free(order);
	return true;
}

static bool section_best(struct report *rp)
{
	eg_buf *b = rp->out;

	eg_buf_puts(b, "<section id=\"best\"><h2>Best trials by test_acc</h2>\n");
	if (eg_store_rows_nrows(rp->best) == 0) {
		eg_buf_puts(b, "<p class=\"note\">No finished trial reports "
			       "test_acc yet.</p></section>\n");
		return true;
	}
	if (!trial_table(rp, rp->best, true, BEST_ROWS))
		return false;
	eg_buf_puts(b, "</section>\n");
	return true;
}

/* The "showing N of M" line under a capped chart. */
static void cap_note(eg_buf *b, size_t shown, long long total,
		     const char *what)
{
	if (total > (long long)shown)
		eg_buf_printf(b, "<p class=\"note\">Showing %zu of %lld trials "
				 "with %s: the best by final test_acc.</p>\n",
			      shown, total, what);
}

static bool section_curves(struct report *rp)
{
	eg_buf *b = rp->out;
	const eg_store_rows *r = rp->curves;
	struct series *s = NULL;
	double *x = NULL, *y = NULL;
	size_t ns = 0;
	int ctot = col_of(r, "curves");
	struct chart c = {"test_acc per epoch", "epoch", "test_acc", NULL, 0,
			  false, false};

	eg_buf_puts(b, "<section id=\"curves\"><h2>Learning curves</h2>\n");
	if (eg_store_rows_nrows(r) == 0) {
		eg_buf_puts(b, "<p class=\"note\">No per-epoch test_acc "
			       "recorded yet.</p></section>\n");
		return true;
	}
	if (!make_series(rp, r, col_of(r, "epoch"), col_of(r, "value"), 1, &s,
			 &ns, &x, &y))
		goto oom;
	c.s = s;
	c.ns = ns;
	svg_chart(b, &c);
	cap_note(b, ns, strtoll(eg_store_rows_value(r, 0, ctot), NULL, 10),
		 "curves");
	eg_buf_puts(b, "</section>\n");
	free(s);
	free(x);
	free(y);
	return true;
oom:
	free(s);
	free(x);
	free(y);
	return false;
}

static bool section_rounds(struct report *rp)
{
	eg_buf *b = rp->out;
	const eg_store_rows *r = rp->rounds;
	struct series *s = NULL;
	double *x = NULL, *y = NULL, scale = 100;
	size_t ns = 0;
	int cr = col_of(r, "remaining"), ctot = col_of(r, "trials");
	struct chart c = {"test_acc against the weights remaining",
			  "weights remaining (%, log scale)", "test_acc", NULL,
			  0, true, true};

	if (eg_store_rows_nrows(r) == 0)
		return true;
	/* `remaining` is a fraction; a store holding percent already
	 * (anything above 1) is plotted as is. */
	for (int i = 0; i < eg_store_rows_nrows(r); i++) {
		double v;

		if (parse_num(eg_store_rows_value(r, i, cr), &v) && v > 1.000001)
			scale = 1;
	}
	eg_buf_puts(b, "<section id=\"lottery\"><h2>Lottery rounds</h2>\n");
	if (!make_series(rp, r, cr, col_of(r, "test_acc"), scale, &s, &ns, &x,
			 &y))
		goto oom;
	c.s = s;
	c.ns = ns;
	svg_chart(b, &c);
	cap_note(b, ns, strtoll(eg_store_rows_value(r, 0, ctot), NULL, 10),
		 "lottery rounds");
	eg_buf_puts(b, "</section>\n");
	free(s);
	free(x);
	free(y);
	return true;
oom:
	free(s);
	free(x);
	free(y);
	return false;
}

/*
 * The first layer, in network order, where the paradigms part: design and
 * hardware not bit-exact in some trial (s_bit_min below 100 %), as `query
 * paradigms` reports it; a grid without hardware rows falls back to the
 * first layer where any pair is not entirely within tolerance.  Returns
 * the layer's text, or NULL when none diverges.
 */
static const char *first_divergent(const eg_store_rows *r, const char **pair)
{
	int cl = col_of(r, "layer"), cp = col_of(r, "pair"),
	    cb = col_of(r, "s_bit_min"), ct = col_of(r, "s_tol_min");
	bool hw = false;
	double v;

	if (cl < 0 || cp < 0 || cb < 0 || ct < 0)
		return NULL;
	for (int i = 0; i < eg_store_rows_nrows(r); i++) {
		const char *p = eg_store_rows_value(r, i, cp);

		if (p == NULL || strcmp(p, "design-hardware") != 0)
			continue;
		hw = true;
		if (parse_num(eg_store_rows_value(r, i, cb), &v) && v < 100) {
			*pair = p;
			return eg_store_rows_value(r, i, cl);
		}
	}
	if (hw)
		return NULL;
	for (int i = 0; i < eg_store_rows_nrows(r); i++)
		if (parse_num(eg_store_rows_value(r, i, ct), &v) && v < 100) {
			*pair = eg_store_rows_value(r, i, cp);
			return eg_store_rows_value(r, i, cl);
		}
	return NULL;
}

static void section_paradigms(struct report *rp)
{
	eg_buf *b = rp->out;
	const eg_store_rows *r = rp->paradigms;
	int nc = eg_store_rows_ncols(r), cl = col_of(r, "layer");
	const char *pair = NULL, *div = first_divergent(r, &pair);
	/* Columns NULL in every row (top1_agree_mean before the final layer
	 * is reported, s_bit without hardware) are left out. */
	unsigned long shown = 0;

	if (eg_store_rows_nrows(r) == 0)
		return;
	for (int c = 0; c < nc && c < 64; c++)
		for (int i = 0; i < eg_store_rows_nrows(r); i++)
			if (eg_store_rows_value(r, i, c) != NULL)
				shown |= 1UL << c;
	eg_buf_puts(b, "<section id=\"paradigms\"><h2>Software, design and "
		       "hardware per layer</h2>\n<p>");
	if (div != NULL) {
		eg_buf_puts(b, "First divergent layer: <b>");
		html_text(b, div);
		eg_buf_puts(b, "</b> (");
		html_text(b, pair);
		eg_buf_puts(b, "), highlighted. ");
	} else {
		eg_buf_puts(b, "No divergent layer: design and hardware are "
			       "bit-exact on every layer. ");
	}
	eg_buf_puts(b, "<span class=\"note\">s_tol and s_bit are percentages "
		       "over all trials of the grid (mean and minimum); "
		       "values below 100 are in red.</span></p>\n"
		       "<div class=\"scroll\"><table>\n<thead><tr>");
	for (int c = 0; c < nc; c++) {
		const char *name = eg_store_rows_name(r, c);

		if (c < 64 && !(shown & (1UL << c)))
			continue;
		eg_buf_printf(b, "<th%s>",
			      strcmp(name, "name") == 0 ||
					      strcmp(name, "pair") == 0 ?
				      "" : " class=\"n\"");
		html_text(b, name);
		eg_buf_puts(b, "</th>");
	}
	eg_buf_puts(b, "</tr></thead>\n<tbody>\n");
	for (int i = 0; i < eg_store_rows_nrows(r); i++) {
		const char *l = eg_store_rows_value(r, i, cl);

		eg_buf_printf(b, "<tr%s>",
			      div != NULL && l != NULL && strcmp(l, div) == 0 ?
				      " class=\"div\"" : "");
		for (int c = 0; c < nc; c++) {
			const char *name = eg_store_rows_name(r, c);
			const char *v = eg_store_rows_value(r, i, c);
			double x;

			if (c < 64 && !(shown & (1UL << c)))
				continue;
			if (parse_num(v, &x)) {
				char t[48];
				bool low = strncmp(name, "s_", 2) == 0 && x < 100;

				fmt_num(t, sizeof(t), x);
				eg_buf_printf(b, "<td class=\"n%s\">%s</td>",
					      low ? " low" : "", t);
			} else {
				eg_buf_puts(b, "<td class=\"t\">");
				html_text(b, v != NULL ? v : "");
				eg_buf_puts(b, "</td>");
			}
		}
		eg_buf_puts(b, "</tr>\n");
	}
	eg_buf_puts(b, "</tbody></table></div></section>\n");
}

static void section_failed(struct report *rp)
{
	eg_buf *b = rp->out;
	const eg_store_rows *r = rp->failed;
	int nr = eg_store_rows_nrows(r);

	if (nr == 0)
		return;
	eg_buf_puts(b, "<section id=\"failed\"><h2>Failed trials</h2>\n"
		       "<div class=\"scroll\"><table>\n<thead><tr>"
		       "<th class=\"n\">id</th><th class=\"n\">idx</th>"
		       "<th class=\"n\">attempts</th><th>trial</th>"
		       "<th>last error</th></tr></thead>\n<tbody>\n");
	for (int i = 0; i < nr && i < MAX_TABLE_ROWS; i++) {
		const char *id = eg_store_rows_value(r, i, 0);

		eg_buf_puts(b, "<tr><td class=\"n\">");
		html_text(b, id);
		eg_buf_puts(b, "</td><td class=\"n\">");
		html_text(b, eg_store_rows_value(r, i, 1));
		eg_buf_puts(b, "</td><td class=\"n\">");
		html_text(b, eg_store_rows_value(r, i, 2));
		eg_buf_puts(b, "</td><td class=\"p\">");
		html_text(b, label_of(rp, strtoll(id, NULL, 10)));
		eg_buf_puts(b, "</td><td class=\"err\">");
		html_text(b, eg_store_rows_value(r, i, 3));
		eg_buf_puts(b, "</td></tr>\n");
	}
	eg_buf_puts(b, "</tbody></table></div></section>\n");
}

static void section_footer(struct report *rp)
{
	eg_buf *b = rp->out;
	long long g = (long long)rp->grid;
	char when[64];
	time_t now = time(NULL);
	struct tm tm;

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC",
		 gmtime_r(&now, &tm));
	eg_buf_puts(b, "<section id=\"spec\"><h2>Grid file</h2>\n<pre>");
	html_text(b, grid_field(rp, "spec"));
	eg_buf_printf(b,
		      "</pre></section>\n<footer>\n<p>The same data in SQL "
		      "(the schema is documented in docs/schema.md):</p>\n"
		      "<pre>psql \"$(expgrid db url)\"\n"
		      "SELECT * FROM trial_summary WHERE grid_id = %lld ORDER BY idx;\n"
		      "SELECT trial_id, key, test_acc, params FROM trial_summary\n"
		      "  WHERE grid_id = %lld AND test_acc IS NOT NULL\n"
		      "  ORDER BY test_acc DESC LIMIT 10;\n"
		      "SELECT m.trial_id, m.epoch, m.value FROM metrics m\n"
		      "  JOIN trials t ON t.id = m.trial_id\n"
		      "  WHERE t.grid_id = %lld AND m.name = 'test_acc'\n"
		      "  ORDER BY m.trial_id, m.attempt, m.epoch;\n"
		      "SELECT * FROM paradigm_comparison WHERE grid_id = %lld "
		      "ORDER BY layer, pair;</pre>\n"
		      "<p>or <code>expgrid query trials|best|paradigms %lld "
		      "[--csv|--json]</code>. Generated by <code>expgrid "
		      "report</code> on %s.</p>\n</footer>\n",
		      g, g, g, g, g, when);
}

/* ---- the command ---- */

static int read_all(eg_store *s, struct report *rp, eg_diag *d)
{
	int rc;

	if ((rc = eg_store_status(s, rp->grid, &rp->counts, d)) != EG_OK ||
	    (rc = eg_store_report(s, EG_STORE_R_GRID, rp->grid, NULL, 0,
				  &rp->grid_row, d)) != EG_OK ||
	    (rc = eg_store_report(s, EG_STORE_R_VARYING, rp->grid, NULL, 0,
				  &rp->varying, d)) != EG_OK ||
	    (rc = eg_store_query(s, EG_STORE_Q_TRIALS, rp->grid, NULL, 0,
				 &rp->trials, d)) != EG_OK ||
	    (rc = eg_store_query(s, EG_STORE_Q_BEST, rp->grid, "test_acc",
				 BEST_ROWS, &rp->best, d)) != EG_OK ||
	    (rc = eg_store_report(s, EG_STORE_R_CURVES, rp->grid, "test_acc",
				  MAX_LINES, &rp->curves, d)) != EG_OK ||
	    (rc = eg_store_report(s, EG_STORE_R_ROUNDS, rp->grid, NULL,
				  MAX_LINES, &rp->rounds, d)) != EG_OK ||
	    (rc = eg_store_query(s, EG_STORE_Q_PARADIGMS, rp->grid, NULL, 0,
				 &rp->paradigms, d)) != EG_OK ||
	    (rc = eg_store_report(s, EG_STORE_R_FAILED, rp->grid, NULL, 0,
				  &rp->failed, d)) != EG_OK)
		return rc;
	if (eg_store_rows_nrows(rp->grid_row) != 1)
		return eg_diag_set(d, EG_ENOENT, "no grid %lld",
				   (long long)rp->grid);
	return EG_OK;
}

static bool render(struct report *rp)
{
	eg_buf *b = rp->out;

	if (!build_labels(rp))
		return false;
	eg_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
		       "<meta charset=\"utf-8\">\n<meta name=\"viewport\" "
		       "content=\"width=device-width, initial-scale=1\">\n"
		       "<title>expgrid report: ");
	html_text(b, grid_field(rp, "name"));
	eg_buf_printf(b, " (grid %lld)</title>\n", (long long)rp->grid);
	eg_buf_puts(b, css);
	eg_buf_puts(b, "</head>\n<body>\n");
	section_header(rp);
	if (!section_best(rp) || !section_curves(rp) || !section_rounds(rp))
		return false;
	section_paradigms(rp);
	eg_buf_puts(b, "<section id=\"trials\"><h2>All trials</h2>\n");
	if (!trial_table(rp, rp->trials, false, MAX_TABLE_ROWS))
		return false;
	eg_buf_puts(b, "</section>\n");
	section_failed(rp);
	section_footer(rp);
	eg_buf_puts(b, "</body>\n</html>\n");
	return !eg_buf_failed(b);
}

/* Writes the page to path ("-": stdout) through a temporary file and a
 * rename; returns 0 or an errno value. */
static int write_page(const char *path, const eg_buf *b)
{
	char tmp[4096];
	FILE *f;
	int err = 0;

	if (strcmp(path, "-") == 0) {
		if (fwrite(eg_buf_str(b), 1, b->len, stdout) != b->len ||
		    fflush(stdout) != 0)
			return errno != 0 ? errno : EIO;
		return 0;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp))
		return ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (f == NULL)
		return errno;
	if (fwrite(eg_buf_str(b), 1, b->len, f) != b->len)
		err = errno != 0 ? errno : EIO;
	if (fclose(f) != 0 && err == 0)
		err = errno;
	if (err == 0 && rename(tmp, path) != 0)
		err = errno;
	if (err != 0)
		unlink(tmp);
	return err;
}

int eg_cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *path = NULL;
	eg_diag d = {{0}};
	eg_store *s = NULL;
	eg_buf page = EG_BUF_INIT;
	struct report rp;
	int opt, rc, exit_code = EG_EXIT_OK, err;

	memset(&rp, 0, sizeof(rp));
	rp.out = &page;
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return EG_EXIT_OK;
		default:
			usage(stderr);
			return EG_EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || path == NULL || *path == '\0') {
		usage(stderr);
		return EG_EXIT_USAGE;
	}
	rc = eg_store_connect(NULL, &s, &d);
	if (rc == EG_OK)
		rc = eg_store_find_grid(s, argv[optind], &rp.grid, &d);
	if (rc == EG_OK)
		rc = read_all(s, &rp, &d);
	eg_store_close(s);
	if (rc != EG_OK) {
		eg_cli_error("report: %s", eg_diag_msg(&d, rc));
		exit_code = rc == EG_ENOENT ? EG_EXIT_USAGE : EG_EXIT_FAIL;
		goto out;
	}
	if (!render(&rp)) {
		eg_cli_error("report: out of memory");
		exit_code = EG_EXIT_FAIL;
		goto out;
	}
	err = write_page(path, &page);
	if (err != 0) {
		eg_cli_error("report: cannot write %s: %s", path, strerror(err));
		exit_code = EG_EXIT_FAIL;
	}
out:
	for (size_t i = 0; i < rp.nlabels; i++)
		free(rp.labels[i].label);
	free(rp.labels);
	free(rp.is_param);
	eg_store_rows_free(rp.grid_row);
	eg_store_rows_free(rp.varying);
	eg_store_rows_free(rp.trials);
	eg_store_rows_free(rp.best);
	eg_store_rows_free(rp.curves);
	eg_store_rows_free(rp.rounds);
	eg_store_rows_free(rp.paradigms);
	eg_store_rows_free(rp.failed);
	eg_buf_free(&page);
	return exit_code;
}
