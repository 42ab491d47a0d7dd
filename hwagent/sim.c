/*
 * sim.c - the `sim` board backend: a kernels/board_sim.h board built from
 * the board type's declared configuration (the boards file's options), with
 * the file's hang switch and permanent fault, if any.
 *
 * A trial's own coverify.fault is injected for that run only and the
 * board's permanent fault (or none) restored afterwards, so a planted
 * fault never outlives its trial and never spoils the board's health.  The
 * hardware uses the board's types, the design model the trial's hls.*
 * types: when they differ the layer table shows it, as it would on a real
 * board built for another format (the `board` summary says whether they
 * match).
 *
 * `hang: true` models a board that answers when idle and hangs once it is
 * given work: the start-up health check passes, every run hangs until
 * cancelled, and every health check after that reports the hang.
 */
#include <string.h>

#include "hwagent/hwagent_int.h"

static int sim_open(eg__board *b, eg_diag *d)
{
	eg_board_sim *s = NULL;
	int rc = eg_board_sim_create(&b->spec->cfg, &s, d);

	if (rc == EG_OK && b->spec->has_fault)
		rc = eg_board_sim_set_fault(s, &b->spec->fault, d);
	if (rc != EG_OK) {
		eg_board_sim_free(s);
		return eg_diag_prefix(d, rc, "board %s", b->spec->name);
	}
	/* A `hang: true` board answers its idle health check, so it is
	 * admitted; it hangs from its first job on (sim_run), which is the
	 * fault the watchdog exists for. */
	eg_board_sim_set_hang(s, false);
	b->impl = s;
	return EG_OK;
}

static void sim_close(eg__board *b)
{
	eg_board_sim_free(b->impl);
	b->impl = NULL;
}

static int sim_health(eg__board *b, eg_diag *d)
{
	return eg_board_sim_health(b->impl, &b->spec->cfg.types, d);
}

static bool types_equal(const eg_qdense_types *a, const eg_qdense_types *b)
{
	const eg_fx_type *x[4] = {&a->weight, &a->bias, &a->act, &a->accum};
	const eg_fx_type *y[4] = {&b->weight, &b->bias, &b->act, &b->accum};

	for (int i = 0; i < 4; i++)
		if (x[i]->w != y[i]->w || x[i]->i != y[i]->i ||
		    x[i]->round != y[i]->round || x[i]->ovf != y[i]->ovf)
			return false;
	return true;
}

static int summary(eg__board *b, eg_coverify_hw *hw, const eg_diag *hd)
{
	const eg_board_config *c = &b->spec->cfg;
	eg_val *m = eg_val_map();
	int rc = m != NULL ? EG_OK : EG_ENOMEM;

	if (rc == EG_OK)
		rc = eg_val_set_str(m, "backend", "sim");
	if (rc == EG_OK)
		rc = eg_val_set_str(m, "name", b->spec->name);
	if (rc == EG_OK)
		rc = eg_val_set_str(m, "type", b->spec->type);
	if (rc == EG_OK)
		rc = eg_val_set_int(m, "parallelism", c->parallelism);
	if (rc == EG_OK)
		rc = eg_val_set_num(m, "clock_mhz", c->clock_mhz);
	if (rc == EG_OK)
		rc = eg_val_set_num(m, "pj_per_mac", c->pj_per_mac);
	if (rc == EG_OK)
		rc = eg_val_set_num(m, "pj_per_access", c->pj_per_access);
	if (rc == EG_OK)
		rc = eg_val_set_bool(m, "types_match",
				     types_equal(&c->types, hw->types));
	if (rc == EG_OK)
		rc = eg_val_set_str(m, "health", hw->health_ok ? "good" : "bad");
	if (rc == EG_OK && !hw->health_ok)
		rc = eg_val_set_str(m, "health_error",
				    eg_diag_msg(hd, EG_ECORRUPT));
	if (rc != EG_OK) {
		eg_val_free(m);
		return rc;
	}
	hw->board = m;
	return EG_OK;
}

static int sim_run(eg__board *b, eg_coverify_hw *hw, eg_diag *d)
{
	eg_board_sim *s = b->impl;
	eg_diag hd = {{0}};
	int rc;

	if (b->spec->hang)
		eg_board_sim_set_hang(s, true);
	rc = eg_board_sim_load(s, hw->act, hw->layers, hw->n_layers,
			       hw->blocks, d);
	if (rc == EG_OK && hw->fault != NULL)
		rc = eg_board_sim_set_fault(s, hw->fault, d);
	if (rc != EG_OK)
		goto out;
	hw->health_ok = eg_board_sim_health(s, &b->spec->cfg.types, &hd) ==
			EG_OK;
	rc = eg_board_sim_run(s, hw->x, hw->n, hw->cancel, hw->codes,
			      hw->values, hw->overflows, d);
	if (rc == EG_OK)
		rc = eg_board_sim_estimate(s, hw->est, &hw->total);
	if (rc == EG_OK) {
		hw->clock_mhz = b->spec->cfg.clock_mhz;
		rc = summary(b, hw, &hd);
		if (rc != EG_OK)
			eg_diag_set(d, rc, "%s", eg_strerror(rc));
	}
out:
	/* The trial's fault ends with the trial. */
	if (hw->fault != NULL)
		eg_board_sim_set_fault(s, b->spec->has_fault ? &b->spec->fault
							     : NULL, NULL);
	return rc;
}

static void sim_reset(eg__board *b)
{
	/* board_sim honours the cancel flag within 5 ms even when hung, so
	 * there is nothing harder to pull; the watchdog has raised it. */
	b->cancel = 1;
}

const eg__backend_ops eg__sim_ops = {"sim", sim_open, sim_close, sim_health,
				     sim_run, sim_reset};
