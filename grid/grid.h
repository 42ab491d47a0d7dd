/*
 * grid.h - grid files: parse (libyaml), validate, expand, canonical keys.
 *
 * A grid file (DESIGN.md "Grid files") has a base `trial` map, `sweep` axes
 * (cartesian product), `zip` groups (axes that advance together), `exclude`
 * entries, and scheduling fields (name, target, max_attempts, priority).
 * Loading parses and validates everything that can be checked without
 * expanding: every key, type and range of the parameter table (grid/params.c
 * has the one table of parameters, types, ranges and defaults).  Every error
 * names file:line:column.
 *
 * Trials are numbered 0 .. count-1 in expansion order: sweep axes vary
 * slowest-first in file order (the last axis fastest), then zip groups in file
 * order, with excluded combinations skipped (and not numbered).  A trial's
 * parameters are the base map, overridden by its axis values, with defaults
 * filled, keys sorted and numbers normalized (1 == 1.0); its key is the first
 * 128 bits of SHA-256 of that canonical JSON (common/hash.h).
 *
 * An eg_grid is immutable after loading except for eg_grid_set; one thread
 * at a time.
 */
#ifndef EG_GRID_H
#define EG_GRID_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/hash.h"
#include "common/value.h"

/* Grids larger than this are refused (EG_ETOO_BIG) before expansion. */
#define EG_GRID_MAX_TRIALS 1000000

typedef struct eg_grid eg_grid;

/* Parses and validates a grid file.  Errors: EG_ENOENT/EG_EIO (file),
 * EG_EPARSE (YAML), EG_EUNKNOWN_KEY, EG_ETYPE, EG_ERANGE, EG_ETOO_BIG; the
 * message starts with "path:line:col: ". */
int eg_grid_load(const char *path, eg_grid **out, eg_diag *d);
/* The same from memory; `name` stands for the file in messages. */
int eg_grid_parse(const char *text, size_t len, const char *name,
		  eg_grid **out, eg_diag *d);
void eg_grid_free(eg_grid *g);

/* Applies a command-line override "key=value" (value in YAML flow syntax:
 * 0.1, relu, [1024, 512], {a: 1}): fixes parameter `key` to the value in
 * every trial.  If `key` is a sweep axis, that axis is dropped; if it is in
 * a zip group, the assignment is refused (EG_EINVAL).  Validated like a
 * grid entry; the message names "--set key=value". */
int eg_grid_set(eg_grid *g, const char *assignment, eg_diag *d);

const char *eg_grid_name(const eg_grid *g);   /* `name`, or the file stem */
const char *eg_grid_target(const eg_grid *g); /* "cpu" or "fpga:<type>" */
int eg_grid_max_attempts(const eg_grid *g);   /* default 3 */
int eg_grid_priority(const eg_grid *g);       /* default 0 */
/* The file's text as read (stored with the grid in the database). */
const char *eg_grid_text(const eg_grid *g);
/* SHA-256 hex of the canonical grid (after --set), so that reformatting a
 * file does not make it a different grid. */
const char *eg_grid_hash(const eg_grid *g);

/* Number of trials after exclusion. */
size_t eg_grid_count(const eg_grid *g);

/* One expanded trial. */
typedef struct eg_trial_spec {
	size_t index;                /* 0 .. count-1 */
	char key[EG_KEY_HEX + 1];    /* hash of the canonical params */
	const eg_val *params;        /* canonical, defaults filled; valid only
					during the callback */
	const char *canonical_json;  /* the text that was hashed; likewise */
} eg_trial_spec;

/* Calls fn for every trial in order, stopping at the first non-zero return
 * (which eg_grid_expand then returns).  A value that is only invalid in
 * combination (checked per trial) fails with file:line:col of the value. */
typedef int (*eg_grid_fn)(void *ud, const eg_trial_spec *t);
int eg_grid_expand(const eg_grid *g, eg_grid_fn fn, void *ud, eg_diag *d);

/* Canonical form of a parameter map: defaults filled, keys sorted, numbers
 * normalized; `params` may use dotted keys or nested maps.  Used for trials
 * that did not come from a grid file (and by tests). */
int eg_grid_canonicalize(const eg_val *params, eg_val **out, eg_diag *d);
/* Key of a canonical parameter map. */
int eg_grid_key(const eg_val *canonical, char key[EG_KEY_HEX + 1]);

/* Parses one YAML document with the grid reader's rules (typed scalars, no
 * anchors, aliases, tags or duplicate keys) into *out (caller frees; NULL
 * for an empty document); values keep their line and column, errors read
 * "<file>:line:col: ...".  For other YAML files expgrid reads (the
 * hardware agent's boards file). */
int eg_grid_yaml_load(const char *text, size_t len, const char *file,
		      eg_val **out, eg_diag *d);

/* The parameter table (grid/params.c), for documentation and --help:
 * names in table order, "group.key" or a top-level name. */
size_t eg_grid_param_count(void);
const char *eg_grid_param_name(size_t i); /* NULL past the end */

#endif
