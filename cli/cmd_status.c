/*
 * cmd_status.c - `expgrid status [GRID] [--json] [--watch [--interval S]]`:
 * trial counts per state for one grid (id or name) or for every grid.
 *
 * --json prints one object per grid and line:
 *   {"grid","total","pending","leased","running","done","failed","cancelled"}
 * --watch redraws a progress bar on stderr (finished = done + failed +
 * cancelled) with the finish rate since the watch began and an ETA, until
 * nothing is pending, leased or running; without GRID it sums every grid.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/json.h"
#include "store/store.h"

#define BAR_WIDTH 30

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid status [GRID] [--json] [--watch] [--interval S]\n"
		"Trial counts per state of GRID (id or name), or of every grid.\n");
}

struct status_ctx {
	bool json;
	bool header_done;
	eg_store_counts sum;
};

static void print_counts(struct status_ctx *c, const eg_store_counts *st)
{
	if (c->json) {
		eg_buf b = EG_BUF_INIT;
		eg_json j;

		eg_json_init(&j, &b);
		eg_json_obj_begin(&j);
		eg_json_key(&j, "grid");
		eg_json_int(&j, st->grid);
		eg_json_key(&j, "total");
		eg_json_int(&j, st->total);
		eg_json_key(&j, "pending");
		eg_json_int(&j, st->pending);
		eg_json_key(&j, "leased");
		eg_json_int(&j, st->leased);
		eg_json_key(&j, "running");
		eg_json_int(&j, st->running);
		eg_json_key(&j, "done");
		eg_json_int(&j, st->done);
		eg_json_key(&j, "failed");
		eg_json_int(&j, st->failed);
		eg_json_key(&j, "cancelled");
		eg_json_int(&j, st->cancelled);
		eg_json_obj_end(&j);
		printf("%s\n", eg_buf_str(&b));
		eg_buf_free(&b);
		return;
	}
	if (!c->header_done) {
		printf("%6s  %-24s %-9s %8s %8s %7s %7s %8s %7s %9s\n", "grid",
		       "name", "state", "total", "pending", "leased", "running",
		       "done", "failed", "cancelled");
		c->header_done = true;
	}
	printf("%6lld  %-24.24s %-9s %8lld %8lld %7lld %7lld %8lld %7lld %9lld\n",
	       (long long)st->grid, st->name, st->state, (long long)st->total,
	       (long long)st->pending, (long long)st->leased,
	       (long long)st->running, (long long)st->done,
	       (long long)st->failed, (long long)st->cancelled);
}

static int each_grid(void *ud, const eg_store_counts *st)
{
	print_counts(ud, st);
	return 0;
}

static int sum_grid(void *ud, const eg_store_counts *st)
{
	struct status_ctx *c = ud;

	c->sum.total += st->total;
	c->sum.pending += st->pending;
	c->sum.leased += st->leased;
	c->sum.running += st->running;
	c->sum.done += st->done;
	c->sum.failed += st->failed;
	c->sum.cancelled += st->cancelled;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void draw_bar(const eg_store_counts *st, double rate, bool final)
{
	int64_t fin = st->done + st->failed + st->cancelled;
	double frac = st->total > 0 ? (double)fin / (double)st->total : 1.0;
	int filled = (int)(frac * BAR_WIDTH + 0.5);
	char eta[32] = "--:--";

	if (rate > 0 && fin < st->total) {
		long secs = (long)((double)(st->total - fin) / rate + 0.5);

		snprintf(eta, sizeof(eta), "%ld:%02ld:%02ld", secs / 3600,
			 secs / 60 % 60, secs % 60);
	}
	fprintf(stderr, "\r[");
	for (int i = 0; i < BAR_WIDTH; i++)
		fputc(i < filled ? '#' : '.', stderr);
	fprintf(stderr,
		"] %5.1f%% %lld/%lld  run %lld  fail %lld  %.1f/s  ETA %s ",
		frac * 100, (long long)fin, (long long)st->total,
		(long long)(st->leased + st->running), (long long)st->failed,
		rate, eta);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static int watch(eg_store *s, int64_t grid, double interval, eg_diag *d)
{
	double t0 = now_s();
	int64_t fin0 = -1;
	int rc;

	for (;;) {
		struct status_ctx c = {0};
		eg_store_counts *st = &c.sum;
		int64_t fin;
		double rate;

		if (grid > 0)
			rc = eg_store_status(s, grid, st, d);
		else
			rc = eg_store_status_all(s, sum_grid, &c, d);
		if (rc != EG_OK)
			return rc;
		fin = st->done + st->failed + st->cancelled;
		if (fin0 < 0)
			fin0 = fin;
		rate = now_s() > t0 ? (double)(fin - fin0) / (now_s() - t0) : 0;
		if (st->pending + st->leased + st->running == 0) {
			draw_bar(st, rate, true);
			return EG_OK;
		}
		draw_bar(st, rate, false);
		usleep((useconds_t)(interval * 1e6));
	}
}

int eg_cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"watch", no_argument, NULL, 'w'},
		{"interval", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct status_ctx c = {0};
	bool do_watch = false;
	double interval = 1.0;
	eg_diag d = {{0}};
	eg_store *s = NULL;
	int64_t grid = 0;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "jwi:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			c.json = true;
			break;
		case 'w':
			do_watch = true;
			break;
		case 'i':
			interval = atof(optarg);
			if (interval <= 0) {
				eg_cli_error("status: --interval must be > 0");
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
	if (optind < argc - 1) {
		usage(stderr);
		return EG_EXIT_USAGE;
	}
	rc = eg_store_connect(NULL, &s, &d);
	if (rc == EG_OK && optind == argc - 1)
		rc = eg_store_find_grid(s, argv[optind], &grid, &d);
	if (rc == EG_OK && do_watch) {
		rc = watch(s, grid, interval, &d);
	} else if (rc == EG_OK && grid > 0) {
		rc = eg_store_status(s, grid, &c.sum, &d);
		if (rc == EG_OK)
			print_counts(&c, &c.sum);
	} else if (rc == EG_OK) {
		rc = eg_store_status_all(s, each_grid, &c, &d);
		if (rc == EG_OK && !c.json && !c.header_done)
			printf("no grids yet (expgrid submit GRID.yaml)\n");
	}
	eg_store_close(s);
	if (rc != EG_OK) {
		eg_cli_error("status: %s", eg_diag_msg(&d, rc));
		return rc == EG_ENOENT ? EG_EXIT_USAGE : EG_EXIT_FAIL;
	}
	return fflush(stdout) == 0 ? EG_EXIT_OK : EG_EXIT_FAIL;
}
