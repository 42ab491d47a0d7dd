/*
 * cmd_submit.c - `expgrid submit GRID.yaml [--set key=value]... [--wait]`:
 * loads and validates the grid, applies pending migrations, and inserts the
 * grid and all its trials in one transaction (store/store.c).  The grid id
 * is the first line of stdout, so scripts can take `| head -1`.  A bad grid
 * exits 2 and writes nothing; a database failure exits 1.
 *
 * --wait then polls eg_store_status twice a second and draws a progress
 * bar on stderr (finished/total, running, failed, the finish rate since the
 * wait began and an ETA) until no trial is pending, leased or running.  On
 * a terminal the bar redraws in place; otherwise a line is written when
 * the counts change, at most every 5 s, so logs stay short.  The database
 * may restart meanwhile (one of the stack's fault tests does exactly that):
 * a failed poll reconnects, and only WAIT_DB_DOWN_S seconds without a
 * database give up.  Exit 1 if any trial failed or the grid was cancelled.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "grid/grid.h"
#include "store/store.h"

#define BAR_WIDTH 30
#define WAIT_POLL_MS 500
#define WAIT_DB_DOWN_S 120
#define PLAIN_EVERY_S 5.0

static void usage(FILE *out)
{
	fprintf(out,
		"usage: expgrid submit GRID.yaml [--set key=value]... [--wait]\n"
		"Adds the grid and its trials to the database (EXPGRID_DB, or\n"
		"the embedded cluster) and prints the grid id as the first\n"
		"line.  Submitting the same grid again adds nothing and prints\n"
		"the same id.  --wait shows a progress bar on stderr and returns\n"
		"when every trial has finished (exit 1 if any failed).\n");
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_eta(char *out, size_t len, double s)
{
	if (!isfinite(s) || s < 0)
		snprintf(out, len, "--");
	else if (s < 60)
		snprintf(out, len, "%.0fs", s);
	else if (s < 3600)
		snprintf(out, len, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(out, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static void draw(const eg_store_counts *st, double rate, bool tty, bool final)
{
	int64_t fin = st->done + st->failed + st->cancelled;
	int fill = st->total > 0 ? (int)(BAR_WIDTH * fin / st->total) : BAR_WIDTH;
	char bar[BAR_WIDTH + 1], eta[32];

	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	fmt_eta(eta, sizeof(eta),
		final ? 0 : rate > 0 ? (double)(st->total - fin) / rate : NAN);
	fprintf(stderr,
		"%s[%s] %lld/%lld finished  running %lld  failed %lld  "
		"%.2f trials/s  ETA %s%s",
		tty ? "\r" : "", bar, (long long)fin, (long long)st->total,
		(long long)(st->running + st->leased), (long long)st->failed,
		rate, eta, tty && !final ? "  " : "\n");
	fflush(stderr);
}

/* Polls until the grid has no unfinished trial; returns the exit code.
 * *sp is reconnected as needed (and may be NULL on return). */
static int wait_grid(eg_store **sp, int64_t id)
{
	eg_store_counts st = {0}, last = {0};
	eg_diag d = {{0}};
	bool tty = isatty(2) != 0;
	double t0 = mono_s(), down_since = 0, last_line = -1e9;
	int64_t fin0 = -1;
	int rc;

	for (;;) {
		struct timespec ts = {0, WAIT_POLL_MS * 1000000L};
		int64_t fin;
		double rate;

		rc = *sp == NULL ? eg_store_connect(NULL, sp, &d) : EG_OK;
		if (rc == EG_OK)
			rc = eg_store_status(*sp, id, &st, &d);
		if (rc != EG_OK) {
			eg_store_close(*sp);
			*sp = NULL;
			if (down_since == 0) {
				down_since = mono_s();
				fprintf(stderr, "%sexpgrid: submit: waiting for "
						"the database: %s\n",
					tty ? "\n" : "", eg_diag_msg(&d, rc));
			} else if (mono_s() - down_since > WAIT_DB_DOWN_S) {
				eg_cli_error("submit: no database for %d s: %s",
					     WAIT_DB_DOWN_S,
					     eg_diag_msg(&d, rc));
				return EG_EXIT_FAIL;
			}
			nanosleep(&ts, NULL);
			continue;
		}
		down_since = 0;
		fin = st.done + st.failed + st.cancelled;
		if (fin0 < 0)
			fin0 = fin;
		rate = mono_s() - t0 > 0.5 ? (double)(fin - fin0) / (mono_s() - t0)
					   : 0;
		if (st.pending + st.leased + st.running == 0) {
			draw(&st, rate, tty, true);
			break;
		}
		if (tty || (memcmp(&st, &last, sizeof(st)) != 0 &&
			    mono_s() - last_line >= PLAIN_EVERY_S)) {
			draw(&st, rate, tty, false);
			last_line = mono_s();
			last = st;
		}
		nanosleep(&ts, NULL);
	}
	if (st.failed > 0) {
		eg_cli_error("submit: %lld of %lld trials failed (`expgrid "
			     "query trials %lld` shows them)",
			     (long long)st.failed, (long long)st.total,
			     (long long)id);
		return EG_EXIT_FAIL;
	}
	if (st.cancelled > 0) {
		eg_cli_error("submit: grid %lld was cancelled (%lld trials)",
			     (long long)id, (long long)st.cancelled);
		return EG_EXIT_FAIL;
	}
	return EG_EXIT_OK;
}

/* Notes of the submission (store.h), after the summary line. */
static void print_note(void *ud, const char *line)
{
	eg_buf *b = ud;

	eg_buf_printf(b, "note: %s\n", line);
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
	eg_buf notes = EG_BUF_INIT;

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
	rc = eg_store_submit_noted(s, g, &id, &created, &n, print_note, &notes,
				   &d);
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
	fputs(eg_buf_str(&notes), stdout);
	exit_code = fflush(stdout) == 0 ? EG_EXIT_OK : EG_EXIT_FAIL;
	if (exit_code == EG_EXIT_OK && wait)
		exit_code = wait_grid(&s, id);
out:
	eg_buf_free(&notes);
	eg_store_close(s);
	eg_grid_free(g);
	free(sets);
	return exit_code;
}
