/*
 * grid_int.h - internals shared by the files of grid/: the parameter table
 * (params.c), the YAML reader (yaml.c), error formatting, and the trial
 * builder that loading (grid.c) and expansion (expand.c) share.
 *
 * Parameters are identified by their index in the one table eg__params[].
 * A trial under construction is an array of eg__nparams value pointers (a
 * "slot" per parameter, NULL when the user did not give it); defaults and
 * the computed prune.output_rate are resolved from the slots on demand, so
 * that building a trial never copies a tree.  Nothing here is public API.
 */
#ifndef EG_GRID_INT_H
#define EG_GRID_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/value.h"

/* Room for the table (checked at start-up of every load). */
#define EG__MAX_PARAMS 96

enum eg__ptype {
	EG__P_INT,     /* int64; integral floats accepted and made ints */
	EG__P_NUM,     /* int or float */
	EG__P_BOOL,
	EG__P_STR,     /* non-empty string */
	EG__P_ENUM,    /* one of `choices`, exactly */
	EG__P_INTLIST, /* list of ints, each checked against lo */
	EG__P_CONV,    /* list of {filters, kernel, pool} */
	EG__P_FAULT,   /* null or {layer, kind, bit, rate} */
	EG__P_METRICS, /* map of name -> number */
	EG__P_KEY      /* null or a trial key: EG_KEY_HEX lowercase hex */
};

/* Which kinds of trial get a parameter's default. */
enum {
	EG__K_TRAIN = 1,
	EG__K_LOTTERY = 2,
	EG__K_COVERIFY = 4,
	EG__K_NOOP = 8,
	EG__K_NET = EG__K_TRAIN | EG__K_LOTTERY | EG__K_COVERIFY,
	EG__K_ALL = EG__K_NET | EG__K_NOOP
};

/* Range and shape flags. */
enum {
	EG__R_LO = 1 << 0,       /* value >= lo (> lo with LO_OPEN) */
	EG__R_LO_OPEN = 1 << 1,
	EG__R_HI = 1 << 2,       /* value <= hi (< hi with HI_OPEN) */
	EG__R_HI_OPEN = 1 << 3,
	EG__R_POW2 = 1 << 4,     /* 0 or a power of two */
	EG__R_NULL = 1 << 5,     /* null is a legal value */
	EG__R_DISTINCT = 1 << 6, /* list elements distinct */
	EG__R_NONEMPTY = 1 << 7, /* list must not be empty */
	EG__R_COMPUTED = 1 << 8  /* default computed per trial */
};

/* The default applies only for this dataset.name (dataset group). */
enum { EG__DS_ANY = 0, EG__DS_BLOBS, EG__DS_IDX };

struct eg__param {
	const char *name;            /* "train.lr" */
	enum eg__ptype type;
	unsigned flags;
	double lo, hi;
	const char *const *choices;  /* EG__P_ENUM: NULL-terminated */
	const char *dflt;            /* YAML flow text; NULL: none */
	unsigned kinds;              /* EG__K_* that get the default */
	int ds;                      /* EG__DS_* condition on the default */
	const char *doc;             /* one line for docs and --help */
};

extern const struct eg__param eg__params[];
extern const size_t eg__nparams;

/* Well-known indices, found once by name (eg__params_init). */
struct eg__pidx {
	int kind, dataset_name, model_arch, model_conv, prune_rate,
	    prune_output_rate, dataset_classes, transfer_classes,
	    dataset_num_classes, idx[4];
};
extern struct eg__pidx eg__pi;
/* Resolves eg__pi and parses the defaults, once per process (pthread_once);
 * cheap and thread-safe after the first call. */
void eg__params_init(void);

int eg__param_find(const char *name);       /* index or -1 */
int eg__param_findn(const char *name, size_t n);
bool eg__param_is_group(const char *prefix); /* "train", "dataset" ... */
/* Bit of a kind name, 0 if unknown. */
unsigned eg__kind_bit(const char *kind);

/* Where a value came from, for messages. */
struct eg__ydoc;
typedef struct eg__where {
	const char *file; /* grid name; messages "file:line:col: " */
	const char *set;  /* non-NULL: "--set <set>: " instead */
	const struct eg__ydoc *doc; /* key positions, if any */
} eg__where;

/* Formats "<where>: <what>" into d and returns code; line 0 = no position. */
int eg__err(const eg__where *w, eg_diag *d, int code, int line, int col,
	    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
#define EG__POS(v) eg_val_line(v), eg_val_col(v)

/* Validates value v of parameter p (type, range, enum, shape) and returns a
 * normalized deep copy in *out (integral floats made ints where the type is
 * int, map keys sorted, conv pool defaulted).  Positions are kept. */
int eg__param_check(int p, const eg_val *v, const eg__where *w,
		    eg_val **out, eg_diag *d);
/* The parsed, validated defaults by parameter index (NULL where none),
 * shared and immutable for the life of the process. */
int eg__params_defaults(const eg_val *const **dflt, eg_diag *d);

/* ---- YAML (yaml.c) ---- */

struct eg__keypos {
	const eg_val *map;
	size_t idx;
	int line, col;
};

typedef struct eg__ydoc {
	eg_val *root; /* NULL for an empty stream */
	struct eg__keypos *keys;
	size_t nkeys, cap;
} eg__ydoc;

/* Parses one YAML document into a typed tree (see yaml.c for the scalar
 * rules); rejects anchors, aliases, tags, merge keys and duplicate keys. */
int eg__yaml_parse(const char *text, size_t len, const eg__where *w,
		   eg__ydoc *doc, eg_diag *d);
void eg__ydoc_free(eg__ydoc *doc);
/* Position of key i of map (0, 0 if unknown). */
void eg__ydoc_keypos(const eg__ydoc *doc, const eg_val *map, size_t i,
		     int *line, int *col);

/* ---- trial resolution (expand.c) ---- */

/* A trial's user-given values by parameter index (NULL = not given) and the
 * values it resolves to with defaults. */
struct eg__resolver {
	const eg_val *const *dflt; /* the shared defaults */
	eg_val *computed;          /* owned: prune.output_rate default */
};

int eg__resolver_init(struct eg__resolver *r, eg_diag *d);
void eg__resolver_free(struct eg__resolver *r);
/* Effective values: eff[p] = slot[p], else the default where it applies to
 * the trial's kind and dataset, else NULL.  `computed` is refreshed. */
int eg__resolve(struct eg__resolver *r, const eg_val *const *slot,
		const eg_val **eff);
/* Per-trial cross-field checks on effective values. */
int eg__cross_check(const eg_val *const *eff, const eg__where *w,
		    size_t trial, eg_diag *d);
/* Builds a fresh canonical tree (sorted, defaults filled) from eff. */
int eg__build_tree(const eg_val *const *eff, eg_val **out);

/* ---- the grid object (grid.c loads it, expand.c walks it) ---- */

struct eg__axis {
	int param;
	int zip;        /* -1: a sweep axis; else its zip group */
	size_t digit;   /* odometer position (set by eg__layout) */
	eg_val *values; /* owned list of normalized values */
	int line, col;  /* of the axis key */
};

struct eg__excl {
	size_t n;
	int *params;
	eg_val **vals; /* owned, normalized */
};

struct eg_grid {
	char *file;   /* name in messages */
	char *text;   /* as read */
	char *name, *target;
	int max_attempts, priority;
	eg_val *base[EG__MAX_PARAMS]; /* owned; NULL = not in `trial` */
	struct eg__axis *axes;        /* file order */
	size_t naxes, nzip;
	struct eg__excl *excl;
	size_t nexcl;
	int size_line, size_col;      /* where a too-big grid is reported */
	size_t ndigits;
	size_t radix[EG__MAX_PARAMS];
	uint64_t total;               /* before exclusion */
	size_t count;                 /* after exclusion */
	struct eg__resolver res;
	char hash[65];
};

/* Assigns odometer digits (sweep axes in file order, then zip groups) and
 * computes total with overflow checks; EG_ETOO_BIG over the limit. */
int eg__layout(struct eg_grid *g, eg_diag *d);
/* Visits every non-excluded trial in order with its effective values,
 * running the cross-field checks; stops at the first non-zero return. */
typedef int (*eg__visit_fn)(void *ud, size_t index, const eg_val *const *eff,
			    eg_diag *d);
int eg__walk(const struct eg_grid *g, struct eg__resolver *r,
	     eg__visit_fn fn, void *ud, eg_diag *d);

#endif
