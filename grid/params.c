/*
 * params.c - the one table of trial parameters: name, type, range, default,
 * and which kinds of trial get the default; and the validation of one value
 * against its entry.
 *
 * Everything else in expgrid that knows a parameter's default or range reads
 * it from here (docs/grid.md is the same table in prose, and a unit test
 * checks that every name below appears there).  Defaults are written as YAML
 * flow text and parsed by the grid's own reader, so a default goes through
 * exactly the validation a user's value does: a table entry whose default
 * violates its own range fails every load, loudly, instead of producing
 * trials nobody asked for.
 *
 * Invariants: names are unique; a parameter's group is the text before its
 * first dot and no group name is also a parameter name; enum choices are
 * exact, case-sensitive strings.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/hash.h"
#include "common/json.h"
#include "grid/grid_int.h"

static const char *const kinds_e[] = {"train", "lottery", "coverify", "noop",
				      NULL};
static const char *const dsname_e[] = {"fashion-mnist", "blobs", "idx", NULL};
static const char *const normalize_e[] = {"per-image", "global", "none", NULL};
static const char *const arch_e[] = {"mlp", "cnn", NULL};
static const char *const act_e[] = {"relu", "sin", "tanh", "sigmoid",
				    "linear", NULL};
static const char *const scheme_e[] = {"he", "glorot", "lecun", "normal",
				       NULL};
static const char *const algo_e[] = {"bp", "fa", "dfa", "bdfa", "hybrid",
				     NULL};
static const char *const hybrid_e[] = {"conv-dfa", "fc-dfa", NULL};
static const char *const fbinit_e[] = {"default", "uniform", "normal",
				       "binary", NULL};
static const char *const loss_e[] = {"xent", "mse", "hinge", NULL};
static const char *const opt_e[] = {"sgd", "adam", NULL};
static const char *const scope_e[] = {"layer", "global", NULL};
static const char *const reset_e[] = {"init", "rewind", "random", NULL};
static const char *const tinit_e[] = {"source", "init", "random", NULL};
static const char *const freeze_e[] = {"none", "features", NULL};
static const char *const round_e[] = {"trn",	     "rnd",	"rnd_zero",
				      "rnd_min_inf", "rnd_inf", "rnd_conv",
				      "trn_zero",    NULL};
static const char *const overflow_e[] = {"wrap", "sat", "sat_sym", NULL};
static const char *const fault_e[] = {"bitflip", "stuck0", "stuck1", NULL};

#define GE0 EG__R_LO, 0, 0
#define GE1 EG__R_LO, 1, 0
#define GT0 EG__R_LO | EG__R_LO_OPEN, 0, 0
#define IN(lo, hi) EG__R_LO | EG__R_HI, lo, hi
#define IN_HO(lo, hi) EG__R_LO | EG__R_HI | EG__R_HI_OPEN, lo, hi
#define ENUM(e) EG__P_ENUM, 0, 0, 0, e
#define NET EG__K_NET
#define LOT EG__K_LOTTERY
#define COV EG__K_COVERIFY

const struct eg__param eg__params[] = {
	{"kind", ENUM(kinds_e), "train", EG__K_ALL, 0,
	 "what the trial does"},
	{"seed", EG__P_INT, GE0, NULL, "0", EG__K_ALL, 0,
	 "seed of every random choice of the trial"},

	{"dataset.name", ENUM(dsname_e), "fashion-mnist", NET, 0,
	 "the data set"},
	{"dataset.train_size", EG__P_INT, IN(0, 100000000), NULL, "0", NET, 0,
	 "training examples used (0 = the whole set)"},
	{"dataset.test_size", EG__P_INT, IN(0, 100000000), NULL, "0", NET, 0,
	 "test examples used (0 = the whole set)"},
	{"dataset.classes", EG__P_INTLIST,
	 EG__R_LO | EG__R_NULL | EG__R_DISTINCT | EG__R_NONEMPTY, 0, 0, NULL,
	 "null", NET, 0, "subset of classes, relabelled 0.. (null = all)"},
	{"dataset.normalize", ENUM(normalize_e), "per-image", NET, 0,
	 "input standardization"},
	{"dataset.label_noise", EG__P_NUM, IN(0, 1), NULL, "0", NET, 0,
	 "fraction of training labels replaced at random"},
	{"dataset.dim", EG__P_INT, IN(1, 16777216), NULL, "20", NET, EG__DS_BLOBS,
	 "input dimension (blobs)"},
	{"dataset.num_classes", EG__P_INT, IN(2, 65536), NULL, "10", NET,
	 EG__DS_BLOBS, "number of classes (blobs)"},
	{"dataset.spread", EG__P_NUM, GT0, NULL, "1.0", NET, EG__DS_BLOBS,
	 "standard deviation of each cluster (blobs)"},
	{"dataset.train_images", EG__P_STR, 0, 0, 0, NULL, NULL, 0, EG__DS_IDX,
	 "IDX file of training images (idx; required)"},
	{"dataset.train_labels", EG__P_STR, 0, 0, 0, NULL, NULL, 0, EG__DS_IDX,
	 "IDX file of training labels (idx; required)"},
	{"dataset.test_images", EG__P_STR, 0, 0, 0, NULL, NULL, 0, EG__DS_IDX,
	 "IDX file of test images (idx; required)"},
	{"dataset.test_labels", EG__P_STR, 0, 0, 0, NULL, NULL, 0, EG__DS_IDX,
	 "IDX file of test labels (idx; required)"},

	{"model.arch", ENUM(arch_e), "mlp", NET, 0, "network family"},
	{"model.hidden", EG__P_INTLIST, IN(1, 16777216), NULL, "[256]", NET, 0,
	 "widths of the hidden dense layers"},
	{"model.conv", EG__P_CONV, 0, 0, 0, NULL, "[]", NET, 0,
	 "conv layers {filters, kernel, pool} (cnn only)"},
	{"model.activation", ENUM(act_e), "relu", NET, 0,
	 "hidden-layer activation"},
	{"model.bias", EG__P_BOOL, 0, 0, 0, NULL, "true", NET, 0,
	 "layers have biases"},
	{"model.circulant_block", EG__P_INT, EG__R_LO | EG__R_POW2, 0, 0, NULL,
	 "0", NET, 0, "block-circulant block size k (0 = dense)"},

	{"init.scheme", ENUM(scheme_e), "he", NET, 0, "weight initialization"},
	{"init.scale", EG__P_NUM, GT0, NULL, "1", NET, 0,
	 "multiplies the first layer's deviation (normal: is that deviation)"},

	{"train.algo", ENUM(algo_e), "bp", NET, 0, "training algorithm"},
	{"train.hybrid", ENUM(hybrid_e), "conv-dfa", NET, 0,
	 "which layers use DFA under algo hybrid"},
	{"train.feedback_init", ENUM(fbinit_e), "default", NET, 0,
	 "distribution of the fixed feedback matrices"},
	{"train.feedback_scale", EG__P_NUM, GE0, NULL, "0", NET, 0,
	 "feedback scale (0 = automatic)"},
	{"train.loss", ENUM(loss_e), "xent", NET, 0, "loss function"},
	{"train.optimizer", ENUM(opt_e), "sgd", NET, 0, "optimizer"},
	{"train.lr", EG__P_NUM, GT0, NULL, "0.01", NET, 0, "learning rate"},
	{"train.momentum", EG__P_NUM, IN_HO(0, 1), NULL, "0", NET, 0,
	 "SGD momentum"},
	{"train.weight_decay", EG__P_NUM, GE0, NULL, "0", NET, 0,
	 "L2 weight decay"},
	{"train.batch", EG__P_INT, IN(1, 1048576), NULL, "128", NET, 0, "minibatch size"},
	{"train.epochs", EG__P_INT, IN(0, 100000), NULL, "10", NET, 0,
	 "training epochs"},
	{"train.val_split", EG__P_NUM, IN_HO(0, 1), NULL, "0", NET, 0,
	 "fraction of train held out for validation"},

	{"prune.rate", EG__P_NUM,
	 EG__R_LO | EG__R_LO_OPEN | EG__R_HI | EG__R_HI_OPEN, 0, 1, NULL, "0.2",
	 LOT, 0, "fraction of surviving weights pruned per round"},
	{"prune.rounds", EG__P_INT, IN(0, 1000), NULL, "5", LOT, 0, "pruning rounds"},
	{"prune.scope", ENUM(scope_e), "layer", LOT, 0,
	 "prune per layer or globally"},
	{"prune.output_rate", EG__P_NUM,
	 EG__R_LO | EG__R_HI | EG__R_HI_OPEN | EG__R_COMPUTED, 0, 1, NULL, NULL,
	 LOT, 0, "pruning rate of the output layer (prune.rate / 2)"},
	{"prune.reset", ENUM(reset_e), "init", LOT, 0,
	 "what survivors are reset to"},
	{"prune.rewind_epoch", EG__P_INT, GE0, NULL, "1", LOT, 0,
	 "epoch whose weights reset rewind uses"},

	{"transfer.classes", EG__P_INTLIST,
	 EG__R_LO | EG__R_NULL | EG__R_DISTINCT | EG__R_NONEMPTY, 0, 0, NULL,
	 "null", LOT, 0, "target-task classes (null = no transfer)"},
	{"transfer.init", ENUM(tinit_e), "source", LOT, 0,
	 "initialization of the target network"},
	{"transfer.freeze", ENUM(freeze_e), "none", LOT, 0,
	 "freeze the pruned feature layers"},

	{"hls.word_bits", EG__P_INT, IN(2, 64), NULL, "16", COV, 0,
	 "ap_fixed W of weights and activations"},
	{"hls.int_bits", EG__P_INT, IN(-64, 128), NULL, "6", COV, 0,
	 "ap_fixed I (integer bits incl. sign)"},
	{"hls.round", ENUM(round_e), "trn", COV, 0, "ap_fixed Q mode"},
	{"hls.overflow", ENUM(overflow_e), "wrap", COV, 0, "ap_fixed O mode"},
	{"hls.accum_bits", EG__P_INT, IN(2, 64), NULL, "32", COV, 0,
	 "accumulator W"},
	{"hls.accum_int_bits", EG__P_INT, IN(-64, 128), NULL, "16", COV, 0,
	 "accumulator I"},

	{"coverify.probes", EG__P_INT, IN(1, 1000000), NULL, "32", COV, 0,
	 "probe inputs compared layer by layer"},
	{"coverify.tolerance", EG__P_NUM, GE0, NULL, "0.01", COV, 0,
	 "tau of S_tol"},
	{"coverify.fault", EG__P_FAULT, EG__R_NULL, 0, 0, NULL, "null", COV, 0,
	 "injected fault {layer, kind, bit, rate} (sim boards)"},
	/* No default (not even null): an unset network keeps the canonical
	 * params, and so the keys, of every coverify trial as they were. */
	{"coverify.network", EG__P_KEY, EG__R_NULL, 0, 0, NULL, NULL, 0, 0,
	 "key of the train trial whose network is verified (fpga grids)"},

	{"noop.ms", EG__P_INT, IN(0, 86400000), NULL, "0", EG__K_NOOP, 0,
	 "milliseconds the trial waits"},
	{"noop.metrics", EG__P_METRICS, 0, 0, 0, NULL, "{}", EG__K_NOOP, 0,
	 "metrics the trial reports"},
	{"noop.fail", EG__P_BOOL, 0, 0, 0, NULL, "false", EG__K_NOOP, 0,
	 "the trial reports failure"},
};

const size_t eg__nparams = sizeof(eg__params) / sizeof(eg__params[0]);

struct eg__pidx eg__pi;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static eg_val *defaults[EG__MAX_PARAMS];
static int defaults_rc;
static eg_diag defaults_diag;

int eg__param_findn(const char *name, size_t n)
{
	for (size_t i = 0; i < eg__nparams; i++)
		if (strncmp(eg__params[i].name, name, n) == 0 &&
		    eg__params[i].name[n] == '\0')
			return (int)i;
	return -1;
}

int eg__param_find(const char *name)
{
	return eg__param_findn(name, strlen(name));
}

bool eg__param_is_group(const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i < eg__nparams; i++)
		if (strncmp(eg__params[i].name, prefix, n) == 0 &&
		    eg__params[i].name[n] == '.')
			return true;
	return false;
}

unsigned eg__kind_bit(const char *kind)
{
	for (int i = 0; kind != NULL && kinds_e[i] != NULL; i++)
		if (strcmp(kind, kinds_e[i]) == 0)
			return 1u << i;
	return 0;
}

static void parse_defaults(void);

static void init_all(void)
{
	eg__pi.kind = eg__param_find("kind");
	eg__pi.dataset_name = eg__param_find("dataset.name");
	eg__pi.model_arch = eg__param_find("model.arch");
	eg__pi.model_conv = eg__param_find("model.conv");
	eg__pi.prune_rate = eg__param_find("prune.rate");
	eg__pi.prune_output_rate = eg__param_find("prune.output_rate");
	eg__pi.dataset_classes = eg__param_find("dataset.classes");
	eg__pi.transfer_classes = eg__param_find("transfer.classes");
	eg__pi.dataset_num_classes = eg__param_find("dataset.num_classes");
	eg__pi.idx[0] = eg__param_find("dataset.train_images");
	eg__pi.idx[1] = eg__param_find("dataset.train_labels");
	eg__pi.idx[2] = eg__param_find("dataset.test_images");
	eg__pi.idx[3] = eg__param_find("dataset.test_labels");
	parse_defaults();
}

void eg__params_init(void)
{
	pthread_once(&init_once, init_all);
}

int eg__err(const eg__where *w, eg_diag *d, int code, int line, int col,
	    const char *fmt, ...)
{
	char what[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (w != NULL && w->set != NULL)
		return eg_diag_set(d, code, "--set %s: %s", w->set, what);
	if (line > 0)
		return eg_diag_set(d, code, "%s:%d:%d: %s",
				   w != NULL && w->file ? w->file : "params",
				   line, col, what);
	return eg_diag_set(d, code, "%s: %s",
			   w != NULL && w->file ? w->file : "params", what);
}

/* "int 5", "string 'abc'", "list" - what the user wrote, for messages. */
static void describe(const eg_val *v, char *out, size_t n)
{
	char num[40];

	switch (eg_val_type_of(v)) {
	case EG_VAL_INT:
	case EG_VAL_FLOAT:
		eg_json_fmt_double(num, sizeof(num), eg_val_as_num(v));
		snprintf(out, n, "%s %s", eg_val_type_name(eg_val_type_of(v)),
			 num);
		break;
	case EG_VAL_STR:
		snprintf(out, n, "string '%.60s'", eg_val_as_str(v));
		break;
	case EG_VAL_BOOL:
		snprintf(out, n, "bool %s", eg_val_as_bool(v) ? "true" : "false");
		break;
	default:
		snprintf(out, n, "%s", eg_val_type_name(eg_val_type_of(v)));
	}
}

static void range_text(unsigned fl, double lo, double hi, char *out, size_t n)
{
	char a[40], b[40];

	eg_json_fmt_double(a, sizeof(a), lo);
	eg_json_fmt_double(b, sizeof(b), hi);
	if ((fl & EG__R_LO) && (fl & EG__R_HI))
		snprintf(out, n, "be in %c%s, %s%c",
			 (fl & EG__R_LO_OPEN) ? '(' : '[', a, b,
			 (fl & EG__R_HI_OPEN) ? ')' : ']');
	else if (fl & EG__R_LO)
		snprintf(out, n, "be %s %s", (fl & EG__R_LO_OPEN) ? ">" : ">=",
			 a);
	else
		snprintf(out, n, "be %s %s", (fl & EG__R_HI_OPEN) ? "<" : "<=",
			 b);
}

static bool in_range(unsigned fl, double lo, double hi, double x)
{
	if ((fl & EG__R_LO) && ((fl & EG__R_LO_OPEN) ? !(x > lo) : !(x >= lo)))
		return false;
	if ((fl & EG__R_HI) && ((fl & EG__R_HI_OPEN) ? !(x < hi) : !(x <= hi)))
		return false;
	return true;
}

/* An int, or a float with an integral value that fits: the YAML spelling
 * of a number must not decide whether it is accepted. */
static bool as_integer(const eg_val *v, int64_t *out)
{
	double x;

	if (eg_val_type_of(v) == EG_VAL_INT) {
		*out = eg_val_as_int(v);
		return true;
	}
	if (eg_val_type_of(v) != EG_VAL_FLOAT)
		return false;
	x = eg_val_as_num(v);
	if (!isfinite(x) || x != floor(x) || fabs(x) > 9007199254740992.0)
		return false;
	*out = (int64_t)x;
	return true;
}

static eg_val *pos_copy(eg_val *n, const eg_val *from)
{
	eg_val_set_pos(n, eg_val_line(from), eg_val_col(from));
	return n;
}

/* Checks an integer (lo/hi from flags) and returns a normalized int node. */
static int check_int(const char *name, const eg_val *v, unsigned fl,
		     double lo, double hi, const eg__where *w, eg_val **out,
		     eg_diag *d)
{
	char got[96], rng[96];
	int64_t i;

	if (!as_integer(v, &i)) {
		describe(v, got, sizeof(got));
		return eg__err(w, d, EG_ETYPE, EG__POS(v),
			       "%s: expected an integer, got %s", name, got);
	}
	if (!in_range(fl, lo, hi, (double)i)) {
		range_text(fl, lo, hi, rng, sizeof(rng));
		return eg__err(w, d, EG_ERANGE, EG__POS(v),
			       "%s: must %s (got %lld)", name, rng,
			       (long long)i);
	}
	if ((fl & EG__R_POW2) && i != 0 && (i & (i - 1)) != 0)
		return eg__err(w, d, EG_ERANGE, EG__POS(v),
			       "%s: must be 0 or a power of two (got %lld)",
			       name, (long long)i);
	*out = pos_copy(eg_val_int(i), v);
	return *out != NULL ? EG_OK : EG_ENOMEM;
}

static int check_num(const char *name, const eg_val *v, unsigned fl,
		     double lo, double hi, const eg__where *w, eg_val **out,
		     eg_diag *d)
{
	char got[96], rng[96];

	if (!eg_val_is_num(v)) {
		describe(v, got, sizeof(got));
		return eg__err(w, d, EG_ETYPE, EG__POS(v),
			       "%s: expected a number, got %s", name, got);
	}
	if (!in_range(fl, lo, hi, eg_val_as_num(v))) {
		range_text(fl, lo, hi, rng, sizeof(rng));
		describe(v, got, sizeof(got));
		return eg__err(w, d, EG_ERANGE, EG__POS(v),
			       "%s: must %s (got %s)", name, rng,
			       strchr(got, ' ') + 1);
	}
	*out = eg_val_copy(v);
	return *out != NULL ? EG_OK : EG_ENOMEM;
}

static int check_enum(const char *name, const eg_val *v,
		      const char *const *choices, const eg__where *w,
		      eg_val **out, eg_diag *d)
{
	char got[96], list[256] = "";
	const char *s = eg_val_as_str(v);

	for (int i = 0; s != NULL && choices[i] != NULL; i++)
		if (strcmp(s, choices[i]) == 0) {
			*out = eg_val_copy(v);
			return *out != NULL ? EG_OK : EG_ENOMEM;
		}
	for (int i = 0; choices[i] != NULL; i++) {
		size_t n = strlen(list);
		snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
			 choices[i]);
	}
	describe(v, got, sizeof(got));
	return eg__err(w, d, s != NULL ? EG_ERANGE : EG_ETYPE, EG__POS(v),
		       "%s: must be one of %s (got %s)", name, list, got);
}

static int check_intlist(const struct eg__param *p, const eg_val *v,
			 const eg__where *w, eg_val **out, eg_diag *d)
{
	char got[96];
	eg_val *l;
	int rc;

	if (eg_val_type_of(v) == EG_VAL_NULL && (p->flags & EG__R_NULL)) {
		*out = eg_val_copy(v);
		return *out != NULL ? EG_OK : EG_ENOMEM;
	}
	if (eg_val_type_of(v) != EG_VAL_LIST) {
		describe(v, got, sizeof(got));
		return eg__err(w, d, EG_ETYPE, EG__POS(v),
			       "%s: expected a list of integers%s, got %s",
			       p->name, (p->flags & EG__R_NULL) ? " or null" : "",
			       got);
	}
	if ((p->flags & EG__R_NONEMPTY) && eg_val_len(v) == 0)
		return eg__err(w, d, EG_ERANGE, EG__POS(v),
			       "%s: must not be empty (use null)", p->name);
	l = pos_copy(eg_val_list(), v);
	if (l == NULL)
		return EG_ENOMEM;
	for (size_t i = 0; i < eg_val_len(v); i++) {
		const eg_val *e = eg_val_at(v, i);
		eg_val *n = NULL;

		rc = check_int(p->name, e, p->flags & (EG__R_LO | EG__R_HI),
			       p->lo, p->hi, w, &n, d);
		if (rc != EG_OK)
			goto fail;
		for (size_t j = 0; (p->flags & EG__R_DISTINCT) && j < i; j++)
			if (eg_val_equal(eg_val_at(l, j), n)) {
				eg_val_free(n);
				rc = eg__err(w, d, EG_ERANGE, EG__POS(e),
					     "%s: %lld is listed twice",
					     p->name,
					     (long long)eg_val_as_int(e));
				goto fail;
			}
		rc = eg_val_push(l, n);
		if (rc != EG_OK)
			goto fail;
	}
	*out = l;
	return EG_OK;
fail:
	eg_val_free(l);
	return rc;
}

/* Fields of a map-valued parameter entry (conv layer, fault). */
struct field {
	const char *key;
	enum eg__ptype type;
	unsigned flags;
	double lo, hi;
	const char *const *choices;
	bool required;
	double dflt; /* when not required (numbers only) */
};

static const struct field conv_f[] = {
	{"filters", EG__P_INT, IN(1, 65536), NULL, true, 0},
	{"kernel", EG__P_INT, IN(1, 1024), NULL, true, 0},
	{"pool", EG__P_INT, IN(1, 1024), NULL, false, 1},
	{NULL, 0, 0, 0, 0, NULL, false, 0},
};

static const struct field fault_f[] = {
	{"layer", EG__P_INT, GE0, NULL, true, 0},
	{"kind", ENUM(fault_e), true, 0},
	{"bit", EG__P_INT, GE0, NULL, false, 0},
	{"rate", EG__P_NUM, EG__R_LO | EG__R_LO_OPEN | EG__R_HI, 0, 1, NULL,
	 false, 1},
	{NULL, 0, 0, 0, 0, NULL, false, 0},
};

/* Checks a map against `fields`; the output has every field (defaults
 * filled) in sorted key order. */
static int check_record(const char *name, const eg_val *v,
			const struct field *fields, const eg__where *w,
			eg_val **out, eg_diag *d)
{
	char got[96], sub[160];
	eg_val *m;
	int rc = EG_OK;

	if (eg_val_type_of(v) != EG_VAL_MAP) {
		describe(v, got, sizeof(got));
		return eg__err(w, d, EG_ETYPE, EG__POS(v),
			       "%s: expected a map, got %s", name, got);
	}
	for (size_t i = 0; i < eg_val_len(v); i++) {
		const char *k = eg_val_key_at(v, i);
		bool known = false;

		int line, col;

		for (const struct field *f = fields; f->key != NULL; f++)
			known = known || strcmp(f->key, k) == 0;
		if (known)
			continue;
		eg__ydoc_keypos(w->doc, v, i, &line, &col);
		if (line == 0) {
			line = eg_val_line(eg_val_at(v, i));
			col = eg_val_col(eg_val_at(v, i));
		}
		return eg__err(w, d, EG_EUNKNOWN_KEY, line, col,
			       "%s: unknown key '%s'", name, k);
	}
	m = pos_copy(eg_val_map(), v);
	if (m == NULL)
		return EG_ENOMEM;
	for (const struct field *f = fields; f->key != NULL; f++) {
		const eg_val *fv = eg_val_get(v, f->key);
		eg_val *n = NULL;

		snprintf(sub, sizeof(sub), "%s.%s", name, f->key);
		if (fv == NULL && f->required) {
			rc = eg__err(w, d, EG_ETYPE, EG__POS(v),
				     "%s: missing key '%s'", name, f->key);
			goto fail;
		}
		if (fv == NULL)
			n = f->type == EG__P_INT ? eg_val_int((int64_t)f->dflt)
						 : eg_val_float(f->dflt);
		else if (f->type == EG__P_INT)
			rc = check_int(sub, fv, f->flags, f->lo, f->hi, w, &n, d);
		else if (f->type == EG__P_NUM)
			rc = check_num(sub, fv, f->flags, f->lo, f->hi, w, &n, d);
		else
			rc = check_enum(sub, fv, f->choices, w, &n, d);
		if (rc == EG_OK)
			rc = eg_val_set(m, f->key, n);
		if (rc != EG_OK)
			goto fail;
	}
	eg_val_sort_keys(m);
	*out = m;
	return EG_OK;
fail:
	eg_val_free(m);
	return rc;
}

/* A trial key as `expgrid expand` prints it: exactly EG_KEY_HEX lowercase
 * hex digits (the store looks it up as text, so "ABC..." would never match
 * and is refused here rather than at submit), or null (unset). */
static int check_key(const char *name, const eg_val *v, const eg__where *w,
		     eg_val **out, eg_diag *d)
{
	const char *s = eg_val_as_str(v);
	char got[96];

	if (eg_val_type_of(v) == EG_VAL_NULL ||
	    (s != NULL && strlen(s) == EG_KEY_HEX &&
	     strspn(s, "0123456789abcdef") == EG_KEY_HEX)) {
		*out = eg_val_copy(v);
		return *out != NULL ? EG_OK : EG_ENOMEM;
	}
	describe(v, got, sizeof(got));
	return eg__err(w, d, s != NULL ? EG_ERANGE : EG_ETYPE, EG__POS(v),
		       "%s: expected a trial key (%d lowercase hex digits, "
		       "as `expgrid expand` prints it) or null, got %s",
		       name, EG_KEY_HEX, got);
}

int eg__param_check(int pi, const eg_val *v, const eg__where *w,
		    eg_val **out, eg_diag *d)
{
	const struct eg__param *p = &eg__params[pi];
	char got[96];
	eg_val *l = NULL;
	int rc;

	*out = NULL;
	switch (p->type) {
	case EG__P_INT:
		return check_int(p->name, v, p->flags, p->lo, p->hi, w, out, d);
	case EG__P_NUM:
		return check_num(p->name, v, p->flags, p->lo, p->hi, w, out, d);
	case EG__P_ENUM:
		return check_enum(p->name, v, p->choices, w, out, d);
	case EG__P_INTLIST:
		return check_intlist(p, v, w, out, d);
	case EG__P_FAULT:
		if (eg_val_type_of(v) == EG_VAL_NULL) {
			*out = eg_val_copy(v);
			return *out != NULL ? EG_OK : EG_ENOMEM;
		}
		return check_record(p->name, v, fault_f, w, out, d);
	case EG__P_BOOL:
	case EG__P_STR:
		if (eg_val_type_of(v) == (p->type == EG__P_BOOL ? EG_VAL_BOOL
								: EG_VAL_STR)) {
			if (p->type == EG__P_STR && eg_val_as_str(v)[0] == '\0')
				return eg__err(w, d, EG_ERANGE, EG__POS(v),
					       "%s: must not be empty",
					       p->name);
			*out = eg_val_copy(v);
			return *out != NULL ? EG_OK : EG_ENOMEM;
		}
		describe(v, got, sizeof(got));
		return eg__err(w, d, EG_ETYPE, EG__POS(v),
			       "%s: expected a %s, got %s", p->name,
			       p->type == EG__P_BOOL ? "bool (true or false)"
						     : "string",
			       got);
	case EG__P_CONV:
		if (eg_val_type_of(v) != EG_VAL_LIST) {
			describe(v, got, sizeof(got));
			return eg__err(w, d, EG_ETYPE, EG__POS(v),
				       "%s: expected a list of {filters, "
				       "kernel, pool}, got %s",
				       p->name, got);
		}
		l = pos_copy(eg_val_list(), v);
		if (l == NULL)
			return EG_ENOMEM;
		for (size_t i = 0; i < eg_val_len(v); i++) {
			eg_val *n = NULL;
			char sub[96];

			snprintf(sub, sizeof(sub), "%s[%zu]", p->name, i);
			rc = check_record(sub, eg_val_at(v, i), conv_f, w, &n, d);
			if (rc == EG_OK)
				rc = eg_val_push(l, n);
			if (rc != EG_OK) {
				eg_val_free(l);
				return rc;
			}
		}
		*out = l;
		return EG_OK;
	case EG__P_METRICS:
		if (eg_val_type_of(v) != EG_VAL_MAP) {
			describe(v, got, sizeof(got));
			return eg__err(w, d, EG_ETYPE, EG__POS(v),
				       "%s: expected a map of name -> number, "
				       "got %s",
				       p->name, got);
		}
		for (size_t i = 0; i < eg_val_len(v); i++)
			if (!eg_val_is_num(eg_val_at(v, i))) {
				describe(eg_val_at(v, i), got, sizeof(got));
				return eg__err(w, d, EG_ETYPE,
					       EG__POS(eg_val_at(v, i)),
					       "%s.%s: expected a number, got %s",
					       p->name, eg_val_key_at(v, i), got);
			}
		*out = eg_val_copy(v);
		if (*out == NULL)
			return EG_ENOMEM;
		eg_val_sort_keys(*out);
		return EG_OK;
	case EG__P_KEY:
		return check_key(p->name, v, w, out, d);
	}
	return EG_EINVAL;
}

/* Runs once: a table entry whose default fails its own check makes every
 * load fail with that message (a bug in this file, caught by any test). */
static void parse_defaults(void)
{
	eg__where w = {"grid/params.c", NULL, NULL};
	int rc = EG_OK;

	for (size_t i = 0; i < eg__nparams && rc == EG_OK; i++) {
		eg__ydoc doc = {0};

		if (eg__params[i].dflt == NULL)
			continue;
		rc = eg__yaml_parse(eg__params[i].dflt,
				    strlen(eg__params[i].dflt), &w, &doc,
				    &defaults_diag);
		if (rc == EG_OK)
			rc = eg__param_check((int)i, doc.root, &w, &defaults[i],
					     &defaults_diag);
		eg__ydoc_free(&doc);
		/* Defaults have no position in the user's file. */
		eg_val_set_pos(defaults[i], 0, 0);
	}
	if (rc == EG_OK && eg__nparams > EG__MAX_PARAMS)
		rc = eg_diag_set(&defaults_diag, EG_ETOO_BIG,
				 "grid/params.c: more than %d parameters",
				 EG__MAX_PARAMS);
	defaults_rc = rc;
}

int eg__params_defaults(const eg_val *const **dflt, eg_diag *d)
{
	eg__params_init();
	if (defaults_rc != EG_OK) {
		if (d != NULL)
			*d = defaults_diag;
		return defaults_rc;
	}
	*dflt = (const eg_val *const *)defaults;
	return EG_OK;
}
