/*
 * grid.c - loading a grid file: the top-level keys, the `trial` map, sweep
 * axes, zip groups and exclude entries, each flattened from nested maps or
 * dotted keys to parameters of the one table (params.c) and validated; then
 * the size check, one dry walk over every trial (to count what exclusion
 * leaves and to run the per-trial checks, so that a grid that loads also
 * expands), and the grid's own hash.  Also --set, and canonical keys for
 * parameter maps that come from elsewhere.
 *
 * Invariants of a loaded eg_grid: every stored value is a validated,
 * normalized copy owning its source position; no parameter is both a sweep
 * axis and a zip axis, or an axis twice; zip groups have equal lengths;
 * total <= EG_GRID_MAX_TRIALS; count and hash describe the current state
 * (eg_grid_set recomputes them, and leaves the grid unchanged if it fails).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "grid/grid.h"
#include "grid/grid_int.h"

/* ---- flattening nested maps and dotted keys into parameters ---- */

typedef int (*leaf_fn)(void *ud, int param, const eg_val *v, int kline,
		       int kcol, eg_diag *d);

/* What one map (the trial, one zip group, one exclude entry, the sweep)
 * has already given, so that `train.lr` and `train: {lr}` together are
 * caught as the same parameter given twice. */
struct seen {
	int line[EG__MAX_PARAMS], col[EG__MAX_PARAMS];
	bool given[EG__MAX_PARAMS];
};

struct flat {
	const eg__ydoc *doc;
	const eg__where *w;
	struct seen seen;
	leaf_fn fn;
	void *ud;
};

static int flatten(struct flat *f, const eg_val *map, const char *prefix,
		   eg_diag *d)
{
	for (size_t i = 0; i < eg_val_len(map); i++) {
		const char *key = eg_val_key_at(map, i);
		const eg_val *v = eg_val_at(map, i);
		char full[160];
		int line, col, p, rc;

		eg__ydoc_keypos(f->doc, map, i, &line, &col);
		if (line == 0) {
			line = eg_val_line(v);
			col = eg_val_col(v);
		}
		if ((size_t)snprintf(full, sizeof(full), "%s%s%s", prefix,
				     prefix[0] ? "." : "", key) >= sizeof(full))
			return eg__err(f->w, d, EG_EUNKNOWN_KEY, line, col,
				       "unknown parameter '%.60s...'", full);
		p = eg__param_find(full);
		if (p >= 0) {
			if (f->seen.given[p])
				return eg__err(f->w, d, EG_EINVAL, line, col,
					       "%s is given twice (first at "
					       "%d:%d)",
					       full, f->seen.line[p],
					       f->seen.col[p]);
			f->seen.given[p] = true;
			f->seen.line[p] = line;
			f->seen.col[p] = col;
			rc = f->fn(f->ud, p, v, line, col, d);
		} else if (eg__param_is_group(full)) {
			if (eg_val_type_of(v) != EG_VAL_MAP)
				return eg__err(f->w, d, EG_ETYPE, EG__POS(v),
					       "%s: expected a map of %s.* "
					       "parameters, got %s",
					       full, full,
					       eg_val_type_name(eg_val_type_of(v)));
			rc = flatten(f, v, full, d);
		} else {
			return eg__err(f->w, d, EG_EUNKNOWN_KEY, line, col,
				       "unknown parameter '%s'", full);
		}
		if (rc != EG_OK)
			return rc;
	}
	return EG_OK;
}

static int flatten_map(const eg__ydoc *doc, const eg__where *w,
		       const eg_val *map, leaf_fn fn, void *ud, eg_diag *d)
{
	struct flat f;

	memset(&f, 0, sizeof(f));
	f.doc = doc;
	f.w = w;
	f.fn = fn;
	f.ud = ud;
	return flatten(&f, map, "", d);
}

/* ---- the sections of a grid file ---- */

struct loader {
	struct eg_grid *g;
	const eg__ydoc *doc;
	eg__where w;
	int zip;               /* current zip group while loading zip */
	size_t zip_len;        /* its length so far (0 = none yet) */
	int zip_param;         /* the axis that set zip_len */
	struct eg__excl *excl; /* entry being filled */
	eg_val **slots;        /* eg_grid_canonicalize's target */
};

static int base_leaf(void *ud, int p, const eg_val *v, int kl, int kc,
		     eg_diag *d)
{
	struct loader *L = ud;
	eg_val *n;
	int rc;

	(void)kl, (void)kc;
	rc = eg__param_check(p, v, &L->w, &n, d);
	if (rc != EG_OK)
		return rc;
	eg_val_free(L->g->base[p]);
	L->g->base[p] = n;
	return EG_OK;
}

static struct eg__axis *find_axis(const struct eg_grid *g, int p)
{
	for (size_t i = 0; i < g->naxes; i++)
		if (g->axes[i].param == p)
			return &g->axes[i];
	return NULL;
}

static int axis_leaf(void *ud, int p, const eg_val *v, int kl, int kc,
		     eg_diag *d)
{
	struct loader *L = ud;
	struct eg_grid *g = L->g;
	const struct eg__axis *other = find_axis(g, p);
	const char *name = eg__params[p].name;
	struct eg__axis *ax;
	eg_val *list;
	int rc = EG_OK;

	if (other != NULL)
		return eg__err(&L->w, d, EG_EINVAL, kl, kc,
			       "%s is already an axis (at %d:%d); a parameter "
			       "may be in one axis only",
			       name, other->line, other->col);
	if (eg_val_type_of(v) != EG_VAL_LIST)
		return eg__err(&L->w, d, EG_ETYPE, EG__POS(v),
			       "%s: an axis needs a list of values, got %s",
			       name, eg_val_type_name(eg_val_type_of(v)));
	if (eg_val_len(v) == 0)
		return eg__err(&L->w, d, EG_ERANGE, EG__POS(v),
			       "%s: an axis needs at least one value", name);
	if (L->zip >= 0 && L->zip_len != 0 && eg_val_len(v) != L->zip_len)
		return eg__err(&L->w, d, EG_ERANGE, kl, kc,
			       "zip group %d: %s has %zu values but %s has %zu",
			       L->zip + 1, eg__params[L->zip_param].name,
			       L->zip_len, name, eg_val_len(v));
	list = eg_val_list();
	if (list == NULL)
		return EG_ENOMEM;
	eg_val_set_pos(list, EG__POS(v));
	for (size_t i = 0; i < eg_val_len(v) && rc == EG_OK; i++) {
		eg_val *n;

		rc = eg__param_check(p, eg_val_at(v, i), &L->w, &n, d);
		if (rc == EG_OK)
			rc = eg_val_push(list, n);
	}
	if (rc == EG_OK && g->naxes >= EG__MAX_PARAMS)
		rc = eg__err(&L->w, d, EG_ETOO_BIG, kl, kc, "too many axes");
	if (rc == EG_OK) {
		ax = realloc(g->axes, (g->naxes + 1) * sizeof(*ax));
		if (ax == NULL)
			rc = EG_ENOMEM;
		else
			g->axes = ax;
	}
	if (rc != EG_OK) {
		eg_val_free(list);
		return rc;
	}
	g->axes[g->naxes++] = (struct eg__axis){p, L->zip, 0, list, kl, kc};
	if (L->zip >= 0 && L->zip_len == 0) {
		L->zip_len = eg_val_len(v);
		L->zip_param = p;
	}
	return EG_OK;
}

static int excl_leaf(void *ud, int p, const eg_val *v, int kl, int kc,
		     eg_diag *d)
{
	struct loader *L = ud;
	struct eg__excl *x = L->excl;
	eg_val *n, **vals;
	int *params, rc;

	(void)kl, (void)kc;
	rc = eg__param_check(p, v, &L->w, &n, d);
	if (rc != EG_OK)
		return rc;
	params = realloc(x->params, (x->n + 1) * sizeof(*params));
	if (params != NULL)
		x->params = params;
	vals = params != NULL ? realloc(x->vals, (x->n + 1) * sizeof(*vals))
			      : NULL;
	if (vals == NULL) {
		eg_val_free(n);
		return EG_ENOMEM;
	}
	x->vals = vals;
	x->params[x->n] = p;
	x->vals[x->n++] = n;
	return EG_OK;
}

static int section_type(struct loader *L, const char *key, const eg_val *v,
			eg_val_type want, eg_diag *d)
{
	if (eg_val_type_of(v) == want)
		return EG_OK;
	return eg__err(&L->w, d, EG_ETYPE, EG__POS(v),
		       "%s: expected a %s, got %s", key, eg_val_type_name(want),
		       eg_val_type_name(eg_val_type_of(v)));
}

static int load_zip(struct loader *L, const eg_val *v, eg_diag *d)
{
	int rc = section_type(L, "zip", v, EG_VAL_LIST, d);

	for (size_t i = 0; rc == EG_OK && i < eg_val_len(v); i++) {
		const eg_val *grp = eg_val_at(v, i);

		rc = section_type(L, "zip group", grp, EG_VAL_MAP, d);
		if (rc == EG_OK && eg_val_len(grp) == 0)
			rc = eg__err(&L->w, d, EG_ERANGE, EG__POS(grp),
				     "zip group %zu is empty", i + 1);
		if (rc != EG_OK)
			break;
		L->zip = (int)L->g->nzip;
		L->zip_len = 0;
		rc = flatten_map(L->doc, &L->w, grp, axis_leaf, L, d);
		/* `{train: {}}` has a key but no axis: as empty as `{}`, and
		 * a group without an axis would be an odometer digit of
		 * radix 0 (no trials at all) and, repeated, overrun radix[]. */
		if (rc == EG_OK && L->zip_len == 0)
			rc = eg__err(&L->w, d, EG_ERANGE, EG__POS(grp),
				     "zip group %zu is empty", i + 1);
		L->zip = -1;
		L->g->nzip++;
	}
	return rc;
}

static int load_exclude(struct loader *L, const eg_val *v, eg_diag *d)
{
	struct eg_grid *g = L->g;
	int rc = section_type(L, "exclude", v, EG_VAL_LIST, d);

	for (size_t i = 0; rc == EG_OK && i < eg_val_len(v); i++) {
		const eg_val *e = eg_val_at(v, i);
		struct eg__excl *x;

		rc = section_type(L, "exclude entry", e, EG_VAL_MAP, d);
		if (rc == EG_OK && eg_val_len(e) == 0)
			rc = eg__err(&L->w, d, EG_ERANGE, EG__POS(e),
				     "exclude entry %zu is empty (it would "
				     "exclude every trial)",
				     i + 1);
		if (rc != EG_OK)
			break;
		x = realloc(g->excl, (g->nexcl + 1) * sizeof(*x));
		if (x == NULL)
			return EG_ENOMEM;
		g->excl = x;
		L->excl = &g->excl[g->nexcl++];
		memset(L->excl, 0, sizeof(*L->excl));
		rc = flatten_map(L->doc, &L->w, e, excl_leaf, L, d);
		/* `{train: {}}` names no parameter and would match every
		 * trial, like `{}`. */
		if (rc == EG_OK && L->excl->n == 0)
			rc = eg__err(&L->w, d, EG_ERANGE, EG__POS(e),
				     "exclude entry %zu is empty (it would "
				     "exclude every trial)",
				     i + 1);
	}
	return rc;
}

static bool valid_target(const char *t)
{
	if (strcmp(t, "cpu") == 0)
		return true;
	if (strncmp(t, "fpga:", 5) != 0 || t[5] == '\0')
		return false;
	for (t += 5; *t != '\0'; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		      (*t >= '0' && *t <= '9') || *t == '_' || *t == '-' ||
		      *t == '.'))
			return false;
	return true;
}

static int load_int(struct loader *L, const char *key, const eg_val *v,
		    int64_t lo, int64_t hi, int *out, eg_diag *d)
{
	int64_t i = eg_val_as_int(v);

	/* 3 and 3.0 are the same number here as everywhere in a grid. */
	if (eg_val_type_of(v) != EG_VAL_INT &&
	    !(eg_val_type_of(v) == EG_VAL_FLOAT && (double)i == eg_val_as_num(v)))
		return eg__err(&L->w, d, EG_ETYPE, EG__POS(v),
			       "%s: expected an integer, got %s", key,
			       eg_val_type_name(eg_val_type_of(v)));
	if (i < lo || i > hi)
		return eg__err(&L->w, d, EG_ERANGE, EG__POS(v),
			       "%s: must be in [%lld, %lld] (got %lld)", key,
			       (long long)lo, (long long)hi, (long long)i);
	*out = (int)i;
	return EG_OK;
}

static int load_str(struct loader *L, const char *key, const eg_val *v,
		    char **out, eg_diag *d)
{
	const char *s = eg_val_as_str(v);

	if (s == NULL || s[0] == '\0')
		return eg__err(&L->w, d, s == NULL ? EG_ETYPE : EG_ERANGE,
			       EG__POS(v), "%s: expected a non-empty string",
			       key);
	free(*out);
	*out = strdup(s);
	return *out != NULL ? EG_OK : EG_ENOMEM;
}

static int load_top(struct loader *L, const eg_val *root, eg_diag *d)
{
	struct eg_grid *g = L->g;
	int rc = EG_OK;

	if (root == NULL)
		return eg__err(&L->w, d, EG_EPARSE, 1, 1, "the grid is empty");
	if (eg_val_type_of(root) != EG_VAL_MAP)
		return eg__err(&L->w, d, EG_ETYPE, EG__POS(root),
			       "a grid must be a map, got %s",
			       eg_val_type_name(eg_val_type_of(root)));
	for (size_t i = 0; i < eg_val_len(root) && rc == EG_OK; i++) {
		const char *k = eg_val_key_at(root, i);
		const eg_val *v = eg_val_at(root, i);
		int kl, kc;

		eg__ydoc_keypos(L->doc, root, i, &kl, &kc);
		if (strcmp(k, "name") == 0) {
			rc = load_str(L, k, v, &g->name, d);
		} else if (strcmp(k, "target") == 0) {
			rc = load_str(L, k, v, &g->target, d);
			if (rc == EG_OK && !valid_target(g->target))
				rc = eg__err(&L->w, d, EG_ERANGE, EG__POS(v),
					     "target: must be cpu or "
					     "fpga:<board type> (got '%s')",
					     g->target);
		} else if (strcmp(k, "max_attempts") == 0) {
			rc = load_int(L, k, v, 1, 100, &g->max_attempts, d);
		} else if (strcmp(k, "priority") == 0) {
			rc = load_int(L, k, v, -2147483647 - 1, 2147483647,
				      &g->priority, d);
		} else if (strcmp(k, "trial") == 0) {
			if (eg_val_type_of(v) == EG_VAL_NULL)
				continue;
			rc = section_type(L, k, v, EG_VAL_MAP, d);
			if (rc == EG_OK)
				rc = flatten_map(L->doc, &L->w, v, base_leaf, L, d);
		} else if (strcmp(k, "sweep") == 0) {
			if (eg_val_type_of(v) == EG_VAL_NULL)
				continue;
			if (g->size_line == 0) {
				g->size_line = kl;
				g->size_col = kc;
			}
			rc = section_type(L, k, v, EG_VAL_MAP, d);
			if (rc == EG_OK)
				rc = flatten_map(L->doc, &L->w, v, axis_leaf, L, d);
		} else if (strcmp(k, "zip") == 0) {
			if (eg_val_type_of(v) == EG_VAL_NULL)
				continue;
			if (g->size_line == 0) {
				g->size_line = kl;
				g->size_col = kc;
			}
			rc = load_zip(L, v, d);
		} else if (strcmp(k, "exclude") == 0) {
			if (eg_val_type_of(v) == EG_VAL_NULL)
				continue;
			rc = load_exclude(L, v, d);
		} else {
			rc = eg__err(&L->w, d, EG_EUNKNOWN_KEY, kl, kc,
				     "unknown key '%s' (a grid has name, trial, "
				     "sweep, zip, exclude, target, "
				     "max_attempts, priority)",
				     k);
		}
	}
	return rc;
}

/* ---- counting and hashing ---- */

static int count_one(void *ud, size_t index, const eg_val *const *eff,
		     eg_diag *d)
{
	(void)index, (void)eff, (void)d;
	(*(size_t *)ud)++;
	return EG_OK;
}

static void write_axis(eg_json *j, const struct eg__axis *a)
{
	eg_json_arr_begin(j);
	eg_json_str(j, eg__params[a->param].name);
	eg_val_write_json(a->values, j);
	eg_json_arr_end(j);
}

/* The grid's identity: everything that decides its trials and how they
 * run, independent of spelling (nesting, number format, whitespace). */
static int grid_hash(struct eg_grid *g)
{
	eg_buf b = EG_BUF_INIT;
	eg_json j;
	eg_val *base = NULL;
	int rc = eg__build_tree((const eg_val *const *)g->base, &base);

	if (rc != EG_OK)
		return rc;
	eg_json_init(&j, &b);
	eg_json_obj_begin(&j);
	eg_json_key(&j, "exclude");
	eg_json_arr_begin(&j);
	for (size_t e = 0; e < g->nexcl; e++) {
		eg_json_arr_begin(&j);
		for (size_t k = 0; k < g->excl[e].n; k++) {
			eg_json_str(&j, eg__params[g->excl[e].params[k]].name);
			eg_val_write_json(g->excl[e].vals[k], &j);
		}
		eg_json_arr_end(&j);
	}
	eg_json_arr_end(&j);
	eg_json_key(&j, "max_attempts");
	eg_json_int(&j, g->max_attempts);
	eg_json_key(&j, "name");
	eg_json_str(&j, g->name);
	eg_json_key(&j, "priority");
	eg_json_int(&j, g->priority);
	eg_json_key(&j, "sweep");
	eg_json_arr_begin(&j);
	for (size_t a = 0; a < g->naxes; a++)
		if (g->axes[a].zip < 0)
			write_axis(&j, &g->axes[a]);
	eg_json_arr_end(&j);
	eg_json_key(&j, "target");
	eg_json_str(&j, g->target);
	eg_json_key(&j, "trial");
	eg_val_write_json(base, &j);
	eg_json_key(&j, "zip");
	eg_json_arr_begin(&j);
	for (size_t z = 0; z < g->nzip; z++) {
		eg_json_arr_begin(&j);
		for (size_t a = 0; a < g->naxes; a++)
			if (g->axes[a].zip == (int)z)
				write_axis(&j, &g->axes[a]);
		eg_json_arr_end(&j);
	}
	eg_json_arr_end(&j);
	eg_json_obj_end(&j);
	rc = eg_buf_failed(&b) ? EG_ENOMEM
			       : eg_hash_sha256_hex(b.data, b.len, g->hash);
	eg_val_free(base);
	eg_buf_free(&b);
	return rc;
}

/* Layout, dry walk, hash: what must be recomputed after any change. */
static int finish(struct eg_grid *g, eg_diag *d)
{
	size_t count = 0;
	int rc = eg__layout(g, d);

	if (rc == EG_OK) {
		struct eg__resolver r = g->res;

		r.computed = NULL;
		rc = eg__walk(g, &r, count_one, &count, d);
		eg_val_free(r.computed);
	}
	if (rc == EG_OK)
		rc = grid_hash(g);
	if (rc == EG_OK)
		g->count = count;
	return rc;
}

/* ---- public ---- */

static char *file_stem(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;

	base = base != NULL ? base + 1 : path;
	dot = strrchr(base, '.');
	if (dot == NULL || dot == base)
		dot = base + strlen(base);
	return strndup(base, (size_t)(dot - base));
}

void eg_grid_free(eg_grid *g)
{
	if (g == NULL)
		return;
	for (size_t p = 0; p < EG__MAX_PARAMS; p++)
		eg_val_free(g->base[p]);
	for (size_t a = 0; a < g->naxes; a++)
		eg_val_free(g->axes[a].values);
	for (size_t e = 0; e < g->nexcl; e++) {
		for (size_t k = 0; k < g->excl[e].n; k++)
			eg_val_free(g->excl[e].vals[k]);
		free(g->excl[e].params);
		free(g->excl[e].vals);
	}
	eg__resolver_free(&g->res);
	free(g->axes);
	free(g->excl);
	free(g->file);
	free(g->text);
	free(g->name);
	free(g->target);
	free(g);
}

int eg_grid_parse(const char *text, size_t len, const char *name,
		  eg_grid **out, eg_diag *d)
{
	struct eg_grid *g = calloc(1, sizeof(*g));
	struct loader L = {.g = g, .zip = -1};
	eg__ydoc doc = {0};
	int rc;

	*out = NULL;
	if (g == NULL)
		return EG_ENOMEM;
	eg__params_init();
	g->file = strdup(name);
	g->text = strndup(text, len);
	g->target = strdup("cpu");
	g->max_attempts = 3;
	if (g->file == NULL || g->text == NULL || g->target == NULL) {
		rc = EG_ENOMEM;
		goto fail;
	}
	L.w.file = g->file;
	L.w.doc = &doc;
	L.doc = &doc;
	rc = eg__resolver_init(&g->res, d);
	if (rc == EG_OK)
		rc = eg__yaml_parse(text, len, &L.w, &doc, d);
	if (rc == EG_OK)
		rc = load_top(&L, doc.root, d);
	if (rc != EG_OK)
		goto fail;
	if (g->name == NULL && (g->name = file_stem(name)) == NULL) {
		rc = EG_ENOMEM;
		goto fail;
	}
	if (g->size_line == 0)
		g->size_line = g->size_col = 1;
	rc = finish(g, d);
	if (rc != EG_OK)
		goto fail;
	eg__ydoc_free(&doc);
	*out = g;
	return EG_OK;
fail:
	eg__ydoc_free(&doc);
	eg_grid_free(g);
	return rc;
}

int eg_grid_load(const char *path, eg_grid **out, eg_diag *d)
{
	FILE *f = fopen(path, "rb");
	eg_buf b = EG_BUF_INIT;
	char chunk[65536];
	size_t n;
	int rc;

	*out = NULL;
	if (f == NULL) {
		int e = errno;
		return eg_diag_set(d, eg_err_from_errno(e), "%s: %s", path,
				   strerror(e));
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		eg_buf_append(&b, chunk, n);
	if (ferror(f)) {
		int e = errno;
		rc = eg_diag_set(d, EG_EIO, "%s: %s", path, strerror(e));
	} else if (eg_buf_failed(&b)) {
		rc = EG_ENOMEM;
	} else {
		rc = eg_grid_parse(eg_buf_str(&b), b.len, path, out, d);
	}
	fclose(f);
	eg_buf_free(&b);
	return rc;
}

int eg_grid_set(eg_grid *g, const char *assignment, eg_diag *d)
{
	eg__where w = {NULL, assignment, NULL};
	const char *eq = strchr(assignment, '=');
	eg__ydoc doc = {0};
	eg_val *n = NULL, *old;
	struct eg__axis *ax, removed = {0};
	size_t at = 0;
	int p, rc;

	if (eq == NULL || eq == assignment)
		return eg__err(&w, d, EG_EINVAL, 0, 0,
			       "expected key=value");
	p = eg__param_findn(assignment, (size_t)(eq - assignment));
	if (p < 0)
		return eg__err(&w, d, EG_EUNKNOWN_KEY, 0, 0,
			       "unknown parameter '%.*s'",
			       (int)(eq - assignment), assignment);
	ax = find_axis(g, p);
	if (ax != NULL && ax->zip >= 0)
		return eg__err(&w, d, EG_EINVAL, 0, 0,
			       "%s is in zip group %d; setting it would break "
			       "the group (edit the grid instead)",
			       eg__params[p].name, ax->zip + 1);
	rc = eg__yaml_parse(eq + 1, strlen(eq + 1), &w, &doc, d);
	if (rc == EG_OK) {
		if (doc.root == NULL)
			doc.root = eg_val_null(); /* "key=" means null */
		rc = doc.root != NULL ? eg__param_check(p, doc.root, &w, &n, d)
				      : EG_ENOMEM;
	}
	eg__ydoc_free(&doc);
	if (rc != EG_OK)
		return rc;
	old = g->base[p];
	g->base[p] = n;
	if (ax != NULL) {
		at = (size_t)(ax - g->axes);
		removed = *ax;
		memmove(ax, ax + 1, (g->naxes - at - 1) * sizeof(*ax));
		g->naxes--;
	}
	rc = finish(g, d);
	if (rc != EG_OK) {
		/* Put the grid back as it was. */
		g->base[p] = old;
		eg_val_free(n);
		if (ax != NULL) {
			memmove(&g->axes[at + 1], &g->axes[at],
				(g->naxes - at) * sizeof(*ax));
			g->axes[at] = removed;
			g->naxes++;
		}
		finish(g, NULL);
		return rc;
	}
	if (ax != NULL)
		eg_val_free(removed.values);
	eg_val_free(old);
	return EG_OK;
}

const char *eg_grid_name(const eg_grid *g) { return g->name; }
const char *eg_grid_target(const eg_grid *g) { return g->target; }
int eg_grid_max_attempts(const eg_grid *g) { return g->max_attempts; }
int eg_grid_priority(const eg_grid *g) { return g->priority; }
const char *eg_grid_text(const eg_grid *g) { return g->text; }
const char *eg_grid_hash(const eg_grid *g) { return g->hash; }
size_t eg_grid_count(const eg_grid *g) { return g->count; }

static int slot_leaf(void *ud, int p, const eg_val *v, int kl, int kc,
		     eg_diag *d)
{
	struct loader *L = ud;

	(void)kl, (void)kc;
	return eg__param_check(p, v, &L->w, &L->slots[p], d);
}

int eg_grid_canonicalize(const eg_val *params, eg_val **out, eg_diag *d)
{
	eg_val *slots[EG__MAX_PARAMS] = {0};
	const eg_val *eff[EG__MAX_PARAMS];
	struct eg__resolver r;
	struct loader L = {.zip = -1, .slots = slots, .w = {"params", NULL, NULL}};
	int rc;

	*out = NULL;
	eg__params_init();
	if (eg_val_type_of(params) != EG_VAL_MAP)
		return eg__err(&L.w, d, EG_ETYPE, EG__POS(params),
			       "parameters must be a map");
	rc = eg__resolver_init(&r, d);
	if (rc != EG_OK)
		return rc;
	rc = flatten_map(NULL, &L.w, params, slot_leaf, &L, d);
	if (rc == EG_OK)
		rc = eg__resolve(&r, (const eg_val *const *)slots, eff);
	if (rc == EG_OK)
		rc = eg__cross_check(eff, &L.w, 0, d);
	if (rc == EG_OK)
		rc = eg__build_tree(eff, out);
	for (size_t p = 0; p < eg__nparams; p++)
		eg_val_free(slots[p]);
	eg__resolver_free(&r);
	return rc;
}

int eg_grid_key(const eg_val *canonical, char key[EG_KEY_HEX + 1])
{
	eg_buf b = EG_BUF_INIT;
	eg_val *sorted = eg_val_copy(canonical);
	int rc;

	if (sorted == NULL)
		return EG_ENOMEM;
	/* Canonical maps are sorted already; sorting a copy makes the key
	 * right also for a map a caller assembled by hand. */
	eg_val_sort_keys(sorted);
	eg_val_to_json(sorted, &b);
	rc = eg_buf_failed(&b) ? EG_ENOMEM
			       : eg_hash_key_hex(b.data, b.len, key);
	eg_val_free(sorted);
	eg_buf_free(&b);
	return rc;
}

size_t eg_grid_param_count(void) { return eg__nparams; }

const char *eg_grid_param_name(size_t i)
{
	return i < eg__nparams ? eg__params[i].name : NULL;
}
