/*
 * value.h - eg_val, the typed tree that carries parameters and results.
 *
 * A grid file parses into eg_val trees, a trial's parameters are an eg_val
 * map nested like the grid's trial map, and a trial's result (metrics, curve,
 * rounds, layers) is an eg_val map that the CLI prints as JSON, the worker
 * sends as msgpack and the store writes as jsonb.  One tree type keeps those
 * conversions in one place each.
 *
 * Types: null, bool, int (int64), float (double), string, list, map.  Maps
 * keep insertion order (the grid's order, for messages) and reject duplicate
 * keys at insert time by replacing the old value.  Every node may carry the
 * source position it was parsed from (1-based line and column; 0 = none) so
 * that a validation error far from the parser can still name file:line:col.
 *
 * Ownership: a node belongs to at most one parent.  Functions that take an
 * `eg_val *` to insert take ownership of it, also when they fail (it is then
 * freed).  eg_val_free(NULL) is a no-op.  Not thread-safe; a tree is used by
 * one thread at a time.
 */
#ifndef EG_VALUE_H
#define EG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/json.h"

typedef enum eg_val_type {
	EG_VAL_NULL,
	EG_VAL_BOOL,
	EG_VAL_INT,
	EG_VAL_FLOAT,
	EG_VAL_STR,
	EG_VAL_LIST,
	EG_VAL_MAP
} eg_val_type;

typedef struct eg_val eg_val;

/* Constructors; NULL on out of memory. */
eg_val *eg_val_null(void);
eg_val *eg_val_bool(bool b);
eg_val *eg_val_int(int64_t i);
eg_val *eg_val_float(double d);
eg_val *eg_val_str(const char *s);
eg_val *eg_val_strn(const char *s, size_t n);
eg_val *eg_val_list(void);
eg_val *eg_val_map(void);
void eg_val_free(eg_val *v);
eg_val *eg_val_copy(const eg_val *v); /* deep; keeps positions */

eg_val_type eg_val_type_of(const eg_val *v);
const char *eg_val_type_name(eg_val_type t); /* "int", "map", ... */
bool eg_val_is_num(const eg_val *v);          /* int or float */

/* Scalar access; wrong types return false / 0 / NULL. */
bool eg_val_as_bool(const eg_val *v);
int64_t eg_val_as_int(const eg_val *v); /* float truncated */
double eg_val_as_num(const eg_val *v);  /* int or float as double */
const char *eg_val_as_str(const eg_val *v);

/* Source position (0 when unknown). */
void eg_val_set_pos(eg_val *v, int line, int col);
int eg_val_line(const eg_val *v);
int eg_val_col(const eg_val *v);

/* Lists and maps: number of elements (0 for scalars). */
size_t eg_val_len(const eg_val *v);
/* List element i, or map value i in order; NULL if out of range. */
eg_val *eg_val_at(const eg_val *v, size_t i);
/* Map key i in order; NULL if out of range or not a map. */
const char *eg_val_key_at(const eg_val *v, size_t i);

int eg_val_push(eg_val *list, eg_val *item);                  /* owns item */
int eg_val_set(eg_val *map, const char *key, eg_val *item);   /* owns item */
eg_val *eg_val_get(const eg_val *map, const char *key);       /* one level */
/* Removes and frees map[key]; returns whether it was there. */
bool eg_val_del(eg_val *map, const char *key);
/* Detaches map[key] and returns it (caller owns), or NULL. */
eg_val *eg_val_take(eg_val *map, const char *key);

/*
 * Dotted paths: "train.lr" walks nested maps.  eg_val_set_path creates the
 * intermediate maps (failing with EG_ETYPE if one of them is a scalar).
 */
eg_val *eg_val_get_path(const eg_val *root, const char *path);
int eg_val_set_path(eg_val *root, const char *path, eg_val *item);
bool eg_val_del_path(eg_val *root, const char *path);

/* Typed lookups by dotted path with a default when absent or null. */
int64_t eg_val_get_int(const eg_val *root, const char *path, int64_t dflt);
double eg_val_get_num(const eg_val *root, const char *path, double dflt);
const char *eg_val_get_str(const eg_val *root, const char *path,
			   const char *dflt);
bool eg_val_get_bool(const eg_val *root, const char *path, bool dflt);

/* Convenience setters for building results: eg_val_set with a new scalar. */
int eg_val_set_int(eg_val *map, const char *key, int64_t i);
int eg_val_set_num(eg_val *map, const char *key, double d);
int eg_val_set_str(eg_val *map, const char *key, const char *s);
int eg_val_set_bool(eg_val *map, const char *key, bool b);

/* Sorts map keys bytewise, recursively through maps and lists. */
void eg_val_sort_keys(eg_val *v);

/*
 * Equality with numbers normalized: int 1 equals float 1.0; maps compare as
 * key sets regardless of order; lists element by element.
 */
bool eg_val_equal(const eg_val *a, const eg_val *b);

/* Writes `v` as one JSON value (map keys in their current order; numbers by
 * eg_json_num, so integral floats print as integers, non-finite as null). */
void eg_val_write_json(const eg_val *v, eg_json *j);
/* Appends `v` as JSON text to `b`. */
void eg_val_to_json(const eg_val *v, eg_buf *b);

#endif
