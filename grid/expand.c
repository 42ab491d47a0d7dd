/*
 * expand.c - turns a loaded grid into trials: the odometer over sweep axes
 * and zip groups, exclusion, defaults, per-trial cross-field checks, and the
 * canonical tree, JSON and key of each trial.
 *
 * Workload: up to EG_GRID_MAX_TRIALS trials per call, so nothing here
 * copies a parameter tree per trial.  A trial is first an array of value
 * pointers into the grid (base values, axis values, defaults); the
 * canonical tree handed to the callback is kept between trials and only the
 * leaves whose source changed are replaced (usually one or two: the fastest
 * axes).  The tree is rebuilt only when the set of present parameters
 * changes, which happens when `kind` or `dataset.name` changes between
 * trials.  The JSON buffer is reused.  Keys are sorted once per rebuild and
 * replacing a leaf keeps its place, so the JSON is always canonical.
 *
 * Invariant: the canonical tree of a trial equals eg__build_tree(eff) of the
 * same effective values (a unit test compares the two for every trial of a
 * grid whose kind changes on the fastest axis).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "grid/grid.h"
#include "grid/grid_int.h"

int eg__resolver_init(struct eg__resolver *r, eg_diag *d)
{
	r->computed = NULL;
	return eg__params_defaults(&r->dflt, d);
}

void eg__resolver_free(struct eg__resolver *r)
{
	eg_val_free(r->computed);
	r->computed = NULL;
}

int eg__resolve(struct eg__resolver *r, const eg_val *const *slot,
		const eg_val **eff)
{
	const eg_val *k = slot[eg__pi.kind], *ds;
	unsigned kb = eg__kind_bit(k != NULL ? eg_val_as_str(k) : "train");
	int dsk = EG__DS_ANY;
	const char *dsname;

	ds = slot[eg__pi.dataset_name];
	if (ds == NULL && (kb & EG__K_NET))
		ds = r->dflt[eg__pi.dataset_name];
	dsname = eg_val_as_str(ds);
	if (dsname != NULL && strcmp(dsname, "blobs") == 0)
		dsk = EG__DS_BLOBS;
	else if (dsname != NULL && strcmp(dsname, "idx") == 0)
		dsk = EG__DS_IDX;
	for (size_t p = 0; p < eg__nparams; p++) {
		const struct eg__param *P = &eg__params[p];

		if (slot[p] != NULL)
			eff[p] = slot[p];
		else if ((P->kinds & kb) && (P->ds == EG__DS_ANY || P->ds == dsk))
			eff[p] = r->dflt[p];
		else
			eff[p] = NULL;
	}
	if (slot[eg__pi.prune_output_rate] == NULL &&
	    (eg__params[eg__pi.prune_output_rate].kinds & kb)) {
		double half = eg_val_as_num(eff[eg__pi.prune_rate]) / 2;

		if (r->computed == NULL || eg_val_as_num(r->computed) != half) {
			eg_val *c = eg_val_float(half);

			if (c == NULL)
				return EG_ENOMEM;
			eg_val_free(r->computed);
			r->computed = c;
		}
		eff[eg__pi.prune_output_rate] = r->computed;
	}
	return EG_OK;
}

static int class_bound(const eg_val *classes, int64_t bound, const char *name,
		       const char *why, const eg__where *w, size_t trial,
		       eg_diag *d)
{
	for (size_t i = 0; i < eg_val_len(classes); i++) {
		const eg_val *c = eg_val_at(classes, i);

		if (eg_val_as_int(c) >= bound)
			return eg__err(w, d, EG_ERANGE, EG__POS(c),
				       "trial %zu: %s: class %lld does not "
				       "exist (%s has %lld classes)",
				       trial, name, (long long)eg_val_as_int(c),
				       why, (long long)bound);
	}
	return EG_OK;
}

int eg__cross_check(const eg_val *const *eff, const eg__where *w,
		    size_t trial, eg_diag *d)
{
	const eg_val *k = eff[eg__pi.kind];
	unsigned kb = eg__kind_bit(k != NULL ? eg_val_as_str(k) : "train");
	const eg_val *ds = eff[eg__pi.dataset_name];
	const char *dsname = eg_val_as_str(ds);
	const eg_val *conv = eff[eg__pi.model_conv];
	const char *arch = eg_val_as_str(eff[eg__pi.model_arch]);
	int64_t bound = 0;
	const char *why = NULL;
	int rc;

	if (!(kb & EG__K_NET) || dsname == NULL)
		return EG_OK;
	if (strcmp(dsname, "idx") == 0)
		for (int i = 0; i < 4; i++)
			if (eff[eg__pi.idx[i]] == NULL)
				return eg__err(w, d, EG_EINVAL, EG__POS(ds),
					       "trial %zu: dataset.name is idx "
					       "but %s is not given",
					       trial,
					       eg__params[eg__pi.idx[i]].name);
	if (eg_val_len(conv) > 0 && arch != NULL && strcmp(arch, "cnn") != 0)
		return eg__err(w, d, EG_EINVAL, EG__POS(conv),
			       "trial %zu: model.conv needs model.arch cnn "
			       "(model.arch is %s)",
			       trial, arch);
	if (strcmp(dsname, "fashion-mnist") == 0) {
		bound = 10;
		why = "fashion-mnist";
	} else if (strcmp(dsname, "blobs") == 0) {
		bound = eg_val_as_int(eff[eg__pi.dataset_num_classes]);
		why = "dataset.num_classes";
	}
	if (why == NULL)
		return EG_OK;
	rc = class_bound(eff[eg__pi.dataset_classes], bound, "dataset.classes",
			 why, w, trial, d);
	if (rc == EG_OK)
		rc = class_bound(eff[eg__pi.transfer_classes], bound,
				 "transfer.classes", why, w, trial, d);
	return rc;
}

int eg__build_tree(const eg_val *const *eff, eg_val **out)
{
	eg_val *root = eg_val_map();
	int rc = root != NULL ? EG_OK : EG_ENOMEM;

	for (size_t p = 0; p < eg__nparams && rc == EG_OK; p++)
		if (eff[p] != NULL)
			rc = eg_val_set_path(root, eg__params[p].name,
					     eg_val_copy(eff[p]));
	if (rc != EG_OK) {
		eg_val_free(root);
		return rc;
	}
	eg_val_sort_keys(root);
	*out = root;
	return EG_OK;
}

int eg__layout(struct eg_grid *g, eg_diag *d)
{
	eg__where w = {g->file, NULL, NULL};
	size_t nsweep = 0;
	uint64_t total = 1;
	bool over = false;

	for (size_t i = 0; i < g->naxes; i++)
		if (g->axes[i].zip < 0)
			g->axes[i].digit = nsweep++;
	for (size_t i = 0; i < g->naxes; i++)
		if (g->axes[i].zip >= 0)
			g->axes[i].digit = nsweep + (size_t)g->axes[i].zip;
	g->ndigits = nsweep + g->nzip;
	for (size_t i = 0; i < g->naxes; i++)
		g->radix[g->axes[i].digit] = eg_val_len(g->axes[i].values);
	for (size_t i = 0; i < g->ndigits; i++)
		if (__builtin_mul_overflow(total, (uint64_t)g->radix[i], &total))
			over = true;
	g->total = total;
	if (over)
		return eg__err(&w, d, EG_ETOO_BIG, g->size_line, g->size_col,
			       "grid has more than 2^64 trials, over the limit "
			       "of %d",
			       EG_GRID_MAX_TRIALS);
	if (total > EG_GRID_MAX_TRIALS)
		return eg__err(&w, d, EG_ETOO_BIG, g->size_line, g->size_col,
			       "grid has %llu trials, over the limit of %d",
			       (unsigned long long)total, EG_GRID_MAX_TRIALS);
	return EG_OK;
}

static bool excluded(const struct eg_grid *g, const eg_val *const *eff)
{
	for (size_t e = 0; e < g->nexcl; e++) {
		const struct eg__excl *x = &g->excl[e];
		size_t k = 0;

		while (k < x->n && eff[x->params[k]] != NULL &&
		       eg_val_equal(eff[x->params[k]], x->vals[k]))
			k++;
		if (k == x->n)
			return true;
	}
	return false;
}

int eg__walk(const struct eg_grid *g, struct eg__resolver *r,
	     eg__visit_fn fn, void *ud, eg_diag *d)
{
	eg__where w = {g->file, NULL, NULL};
	const eg_val *slot[EG__MAX_PARAMS], *eff[EG__MAX_PARAMS];
	size_t digit[EG__MAX_PARAMS] = {0}, index = 0;
	int rc;

	for (uint64_t t = 0; t < g->total; t++) {
		for (size_t p = 0; p < eg__nparams; p++)
			slot[p] = g->base[p];
		for (size_t a = 0; a < g->naxes; a++)
			slot[g->axes[a].param] =
				eg_val_at(g->axes[a].values, digit[g->axes[a].digit]);
		rc = eg__resolve(r, slot, eff);
		if (rc != EG_OK)
			return rc;
		if (!excluded(g, eff)) {
			rc = eg__cross_check(eff, &w, index, d);
			if (rc == EG_OK)
				rc = fn(ud, index, eff, d);
			if (rc != EG_OK)
				return rc;
			index++;
		}
		/* The last digit moves fastest. */
		for (size_t i = g->ndigits; i-- > 0;) {
			if (++digit[i] < g->radix[i])
				break;
			digit[i] = 0;
		}
	}
	return EG_OK;
}

/* The expansion's reusable state: the canonical tree of the previous
 * trial, which parameters it holds, where each leaf lives, and the JSON of
 * the tree cut into the fixed text between leaves (`pre`, rebuilt with the
 * tree) and each leaf's own JSON (`frag`, redone when the leaf changes).
 * Formatting numbers dominates writing JSON, so a trial formats only the
 * values that changed since the previous one. */
struct expander {
	eg_grid_fn fn;
	void *ud;
	eg_val *tree;
	uint64_t shape[2];
	const eg_val *src[EG__MAX_PARAMS]; /* value each leaf was copied from */
	eg_val *parent[EG__MAX_PARAMS];    /* map holding the leaf */
	const char *leaf[EG__MAX_PARAMS];  /* its key there */
	eg_buf frag[EG__MAX_PARAMS];       /* JSON of each leaf */
	int order[EG__MAX_PARAMS];         /* leaves in JSON order */
	size_t pre_off[EG__MAX_PARAMS + 1], pre_len[EG__MAX_PARAMS + 1];
	size_t nleaves;
	eg_buf pre;                        /* text before each leaf, then the end */
	eg_buf json;
};

static void put_key(eg_buf *b, const char *sep, const char *key)
{
	eg_buf_puts(b, sep);
	eg_json_escape(b, key, strlen(key));
	eg_buf_putc(b, ':');
}

/* Cuts the JSON of the (sorted) tree into the text before each leaf. */
static int rebuild_template(struct expander *x)
{
	const char *pending = "{";
	char full[160];

	eg_buf_reset(&x->pre);
	x->nleaves = 0;
	for (size_t i = 0; i < eg_val_len(x->tree); i++) {
		const char *top = eg_val_key_at(x->tree, i);
		const eg_val *v = eg_val_at(x->tree, i);
		int p = eg__param_find(top);
		size_t start = x->pre.len;

		if (p >= 0) {
			eg_buf_puts(&x->pre, pending);
			put_key(&x->pre, "", top);
			x->pre_off[x->nleaves] = start;
			x->pre_len[x->nleaves] = x->pre.len - start;
			x->order[x->nleaves++] = p;
			pending = ",";
			continue;
		}
		for (size_t k = 0; k < eg_val_len(v); k++) {
			snprintf(full, sizeof(full), "%s.%s", top,
				 eg_val_key_at(v, k));
			p = eg__param_find(full);
			if (p < 0)
				return EG_ECORRUPT;
			start = x->pre.len;
			eg_buf_puts(&x->pre, pending);
			if (k == 0) {
				put_key(&x->pre, "", top);
				eg_buf_putc(&x->pre, '{');
			}
			put_key(&x->pre, "", eg_val_key_at(v, k));
			x->pre_off[x->nleaves] = start;
			x->pre_len[x->nleaves] = x->pre.len - start;
			x->order[x->nleaves++] = p;
			pending = ",";
		}
		/* The group's closing brace goes before the next leaf. */
		if (i + 1 == eg_val_len(x->tree))
			pending = "}";
		else
			pending = "},";
	}
	x->pre_off[x->nleaves] = x->pre.len;
	if (x->nleaves > 0 && strcmp(pending, "}") == 0)
		eg_buf_puts(&x->pre, "}}");
	else if (x->nleaves > 0)
		eg_buf_puts(&x->pre, "}");
	else
		eg_buf_puts(&x->pre, "{}");
	x->pre_len[x->nleaves] = x->pre.len - x->pre_off[x->nleaves];
	return eg_buf_failed(&x->pre) ? EG_ENOMEM : EG_OK;
}

static void set_frag(struct expander *x, int p, const eg_val *v)
{
	eg_buf_reset(&x->frag[p]);
	eg_val_to_json(v, &x->frag[p]);
}

static int rebuild(struct expander *x, const eg_val *const *eff)
{
	int rc;

	eg_val_free(x->tree);
	x->tree = NULL;
	rc = eg__build_tree(eff, &x->tree);
	if (rc != EG_OK)
		return rc;
	for (size_t p = 0; p < eg__nparams; p++) {
		const char *name = eg__params[p].name, *dot = strchr(name, '.');
		char group[64];

		x->src[p] = eff[p];
		if (eff[p] == NULL)
			continue;
		set_frag(x, (int)p, eff[p]);
		if (dot == NULL) {
			x->parent[p] = x->tree;
			x->leaf[p] = name;
			continue;
		}
		memcpy(group, name, (size_t)(dot - name));
		group[dot - name] = '\0';
		x->parent[p] = eg_val_get(x->tree, group);
		x->leaf[p] = dot + 1;
	}
	return rebuild_template(x);
}

static int expand_one(void *ud, size_t index, const eg_val *const *eff,
		      eg_diag *d)
{
	struct expander *x = ud;
	uint64_t shape[2] = {0, 0};
	eg_trial_spec spec;
	int rc;

	(void)d;
	for (size_t p = 0; p < eg__nparams; p++)
		if (eff[p] != NULL)
			shape[p / 64] |= (uint64_t)1 << (p % 64);
	if (x->tree == NULL || shape[0] != x->shape[0] ||
	    shape[1] != x->shape[1]) {
		rc = rebuild(x, eff);
		if (rc != EG_OK)
			return rc;
		x->shape[0] = shape[0];
		x->shape[1] = shape[1];
	} else {
		for (size_t p = 0; p < eg__nparams; p++) {
			bool computed = (int)p == eg__pi.prune_output_rate;

			if (eff[p] == NULL || (!computed && eff[p] == x->src[p]))
				continue;
			/* The computed default is compared by value: its
			 * node may be reallocated at the same address. */
			if (computed &&
			    eg_val_equal(eg_val_get(x->parent[p], x->leaf[p]),
					 eff[p]))
				continue;
			rc = eg_val_set(x->parent[p], x->leaf[p],
					eg_val_copy(eff[p]));
			if (rc != EG_OK)
				return rc;
			set_frag(x, (int)p, eff[p]);
			x->src[p] = eff[p];
		}
	}
	eg_buf_reset(&x->json);
	for (size_t i = 0; i < x->nleaves; i++) {
		const eg_buf *f = &x->frag[x->order[i]];

		eg_buf_append(&x->json, x->pre.data + x->pre_off[i], x->pre_len[i]);
		eg_buf_append(&x->json, f->data, f->len);
	}
	eg_buf_append(&x->json, x->pre.data + x->pre_off[x->nleaves],
		      x->pre_len[x->nleaves]);
	if (eg_buf_failed(&x->json))
		return EG_ENOMEM;
	for (size_t i = 0; i < x->nleaves; i++)
		if (eg_buf_failed(&x->frag[x->order[i]]))
			return EG_ENOMEM;
	spec.index = index;
	spec.params = x->tree;
	spec.canonical_json = eg_buf_str(&x->json);
	rc = eg_hash_key_hex(x->json.data, x->json.len, spec.key);
	if (rc != EG_OK)
		return rc;
	return x->fn(x->ud, &spec);
}

int eg_grid_expand(const eg_grid *g, eg_grid_fn fn, void *ud, eg_diag *d)
{
	struct expander *x = calloc(1, sizeof(*x));
	struct eg__resolver r = g->res; /* shares the defaults */
	int rc;

	if (x == NULL)
		return EG_ENOMEM;
	x->fn = fn;
	x->ud = ud;
	r.computed = NULL;
	rc = eg__walk(g, &r, expand_one, x, d);
	eg_val_free(r.computed);
	eg_val_free(x->tree);
	for (size_t p = 0; p < EG__MAX_PARAMS; p++)
		eg_buf_free(&x->frag[p]);
	eg_buf_free(&x->pre);
	eg_buf_free(&x->json);
	free(x);
	return rc;
}
