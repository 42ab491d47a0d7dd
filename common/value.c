/*
 * value.c - the eg_val tree.  Lists and maps are plain growable arrays:
 * parameter maps have tens of keys, and lookups by linear scan over them are
 * faster than any hashing at that size.
 */
#include "common/value.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

struct eg_val {
	eg_val_type type;
	int line, col;
	union {
		bool b;
		int64_t i;
		double d;
		char *s;
		struct {
			eg_val **items;
			char **keys; /* maps only */
			size_t len, cap;
		} c;
	} u;
};

static eg_val *val_new(eg_val_type t)
{
	eg_val *v = calloc(1, sizeof(*v));

	if (v != NULL)
		v->type = t;
	return v;
}

eg_val *eg_val_null(void) { return val_new(EG_VAL_NULL); }
eg_val *eg_val_list(void) { return val_new(EG_VAL_LIST); }
eg_val *eg_val_map(void) { return val_new(EG_VAL_MAP); }

eg_val *eg_val_bool(bool b)
{
	eg_val *v = val_new(EG_VAL_BOOL);

	if (v != NULL)
		v->u.b = b;
	return v;
}

eg_val *eg_val_int(int64_t i)
{
	eg_val *v = val_new(EG_VAL_INT);

	if (v != NULL)
		v->u.i = i;
	return v;
}

eg_val *eg_val_float(double d)
{
	eg_val *v = val_new(EG_VAL_FLOAT);

	if (v != NULL)
		v->u.d = d;
	return v;
}

eg_val *eg_val_strn(const char *s, size_t n)
{
	eg_val *v = val_new(EG_VAL_STR);

	if (v == NULL)
		return NULL;
	v->u.s = malloc(n + 1);
	if (v->u.s == NULL) {
		free(v);
		return NULL;
	}
	memcpy(v->u.s, s, n);
	v->u.s[n] = '\0';
	return v;
}

eg_val *eg_val_str(const char *s)
{
	return eg_val_strn(s, strlen(s));
}

void eg_val_free(eg_val *v)
{
	if (v == NULL)
		return;
	if (v->type == EG_VAL_STR) {
		free(v->u.s);
	} else if (v->type == EG_VAL_LIST || v->type == EG_VAL_MAP) {
		for (size_t i = 0; i < v->u.c.len; i++) {
			eg_val_free(v->u.c.items[i]);
			if (v->u.c.keys != NULL)
				free(v->u.c.keys[i]);
		}
		free(v->u.c.items);
		free(v->u.c.keys);
	}
	free(v);
}

eg_val *eg_val_copy(const eg_val *v)
{
	eg_val *c;

	if (v == NULL)
		return NULL;
	switch (v->type) {
	case EG_VAL_STR:
		c = eg_val_str(v->u.s);
		break;
	case EG_VAL_LIST:
	case EG_VAL_MAP:
		c = val_new(v->type);
		for (size_t i = 0; c != NULL && i < v->u.c.len; i++) {
			eg_val *item = eg_val_copy(v->u.c.items[i]);
			int rc = item == NULL ? EG_ENOMEM
				 : v->type == EG_VAL_LIST
				     ? eg_val_push(c, item)
				     : eg_val_set(c, v->u.c.keys[i], item);
			if (rc != EG_OK) {
				eg_val_free(c);
				return NULL;
			}
		}
		break;
	default:
		c = val_new(v->type);
		if (c != NULL)
			c->u = v->u;
	}
	if (c != NULL) {
		c->line = v->line;
		c->col = v->col;
	}
	return c;
}

eg_val_type eg_val_type_of(const eg_val *v)
{
	return v != NULL ? v->type : EG_VAL_NULL;
}

const char *eg_val_type_name(eg_val_type t)
{
	static const char *const names[] = {"null", "bool",   "int", "float",
					    "string", "list", "map"};

	return (unsigned)t < 7 ? names[t] : "?";
}

bool eg_val_is_num(const eg_val *v)
{
	return v != NULL && (v->type == EG_VAL_INT || v->type == EG_VAL_FLOAT);
}

bool eg_val_as_bool(const eg_val *v)
{
	return v != NULL && v->type == EG_VAL_BOOL && v->u.b;
}

int64_t eg_val_as_int(const eg_val *v)
{
	if (v == NULL)
		return 0;
	if (v->type == EG_VAL_INT)
		return v->u.i;
	if (v->type == EG_VAL_FLOAT && isfinite(v->u.d))
		return (int64_t)v->u.d;
	return 0;
}

double eg_val_as_num(const eg_val *v)
{
	if (v == NULL)
		return 0;
	if (v->type == EG_VAL_INT)
		return (double)v->u.i;
	if (v->type == EG_VAL_FLOAT)
		return v->u.d;
	return 0;
}

const char *eg_val_as_str(const eg_val *v)
{
	return v != NULL && v->type == EG_VAL_STR ? v->u.s : NULL;
}

void eg_val_set_pos(eg_val *v, int line, int col)
{
	if (v != NULL) {
		v->line = line;
		v->col = col;
	}
}

int eg_val_line(const eg_val *v) { return v != NULL ? v->line : 0; }
int eg_val_col(const eg_val *v) { return v != NULL ? v->col : 0; }

size_t eg_val_len(const eg_val *v)
{
	if (v == NULL || (v->type != EG_VAL_LIST && v->type != EG_VAL_MAP))
		return 0;
	return v->u.c.len;
}

eg_val *eg_val_at(const eg_val *v, size_t i)
{
	return i < eg_val_len(v) ? v->u.c.items[i] : NULL;
}

const char *eg_val_key_at(const eg_val *v, size_t i)
{
	if (v == NULL || v->type != EG_VAL_MAP || i >= v->u.c.len)
		return NULL;
	return v->u.c.keys[i];
}

static int grow(eg_val *c)
{
	size_t cap;
	eg_val **items;

	if (c->u.c.len < c->u.c.cap)
		return EG_OK;
	cap = c->u.c.cap != 0 ? c->u.c.cap * 2 : 4;
	items = realloc(c->u.c.items, cap * sizeof(*items));
	if (items == NULL)
		return EG_ENOMEM;
	c->u.c.items = items;
	if (c->type == EG_VAL_MAP) {
		char **keys = realloc(c->u.c.keys, cap * sizeof(*keys));
		if (keys == NULL)
			return EG_ENOMEM;
		c->u.c.keys = keys;
	}
	c->u.c.cap = cap;
	return EG_OK;
}

int eg_val_push(eg_val *list, eg_val *item)
{
	int rc;

	if (item == NULL)
		return EG_ENOMEM;
	if (list == NULL || list->type != EG_VAL_LIST) {
		eg_val_free(item);
		return EG_ETYPE;
	}
	rc = grow(list);
	if (rc != EG_OK) {
		eg_val_free(item);
		return rc;
	}
	list->u.c.items[list->u.c.len++] = item;
	return EG_OK;
}

static long find_key(const eg_val *map, const char *key, size_t keylen)
{
	for (size_t i = 0; i < map->u.c.len; i++)
		if (strncmp(map->u.c.keys[i], key, keylen) == 0 &&
		    map->u.c.keys[i][keylen] == '\0')
			return (long)i;
	return -1;
}

int eg_val_set(eg_val *map, const char *key, eg_val *item)
{
	long at;
	char *k;
	int rc;

	if (item == NULL)
		return EG_ENOMEM;
	if (map == NULL || map->type != EG_VAL_MAP) {
		eg_val_free(item);
		return EG_ETYPE;
	}
	at = find_key(map, key, strlen(key));
	if (at >= 0) {
		eg_val_free(map->u.c.items[at]);
		map->u.c.items[at] = item;
		return EG_OK;
	}
	k = strdup(key);
	rc = k == NULL ? EG_ENOMEM : grow(map);
	if (rc != EG_OK) {
		free(k);
		eg_val_free(item);
		return rc;
	}
	map->u.c.keys[map->u.c.len] = k;
	map->u.c.items[map->u.c.len++] = item;
	return EG_OK;
}

eg_val *eg_val_get(const eg_val *map, const char *key)
{
	long at;

	if (map == NULL || map->type != EG_VAL_MAP)
		return NULL;
	at = find_key(map, key, strlen(key));
	return at >= 0 ? map->u.c.items[at] : NULL;
}

eg_val *eg_val_take(eg_val *map, const char *key)
{
	long at;
	eg_val *item;

	if (map == NULL || map->type != EG_VAL_MAP)
		return NULL;
	at = find_key(map, key, strlen(key));
	if (at < 0)
		return NULL;
	item = map->u.c.items[at];
	free(map->u.c.keys[at]);
	memmove(&map->u.c.items[at], &map->u.c.items[at + 1],
		(map->u.c.len - (size_t)at - 1) * sizeof(eg_val *));
	memmove(&map->u.c.keys[at], &map->u.c.keys[at + 1],
		(map->u.c.len - (size_t)at - 1) * sizeof(char *));
	map->u.c.len--;
	return item;
}

bool eg_val_del(eg_val *map, const char *key)
{
	eg_val *item = eg_val_take(map, key);

	eg_val_free(item);
	return item != NULL;
}

/* Walks all but the last component of `path`; returns the parent map and
 * sets *last to the final component. */
static eg_val *walk_parent(const eg_val *root, const char *path,
			  const char **last)
{
	const char *dot;
	const eg_val *cur = root;

	while ((dot = strchr(path, '.')) != NULL) {
		long at;

		if (cur == NULL || cur->type != EG_VAL_MAP)
			return NULL;
		at = find_key(cur, path, (size_t)(dot - path));
		if (at < 0)
			return NULL;
		cur = cur->u.c.items[at];
		path = dot + 1;
	}
	*last = path;
	return (eg_val *)cur;
}

eg_val *eg_val_get_path(const eg_val *root, const char *path)
{
	const char *last;
	eg_val *parent = walk_parent(root, path, &last);

	return eg_val_get(parent, last);
}

int eg_val_set_path(eg_val *root, const char *path, eg_val *item)
{
	const char *dot;
	eg_val *cur = root;

	if (item == NULL)
		return EG_ENOMEM;
	while ((dot = strchr(path, '.')) != NULL) {
		char key[256];
		size_t n = (size_t)(dot - path);
		eg_val *next;

		if (cur == NULL || cur->type != EG_VAL_MAP ||
		    n >= sizeof(key)) {
			eg_val_free(item);
			return cur == NULL || cur->type != EG_VAL_MAP
				   ? EG_ETYPE
				   : EG_ETOO_BIG;
		}
		memcpy(key, path, n);
		key[n] = '\0';
		next = eg_val_get(cur, key);
		if (next == NULL) {
			int rc = eg_val_set(cur, key, eg_val_map());
			if (rc != EG_OK) {
				eg_val_free(item);
				return rc;
			}
			next = eg_val_get(cur, key);
		}
		cur = next;
		path = dot + 1;
	}
	return eg_val_set(cur, path, item);
}

bool eg_val_del_path(eg_val *root, const char *path)
{
	const char *last;
	eg_val *parent = walk_parent(root, path, &last);

	return eg_val_del(parent, last);
}

int64_t eg_val_get_int(const eg_val *root, const char *path, int64_t dflt)
{
	const eg_val *v = eg_val_get_path(root, path);

	return eg_val_is_num(v) ? eg_val_as_int(v) : dflt;
}

double eg_val_get_num(const eg_val *root, const char *path, double dflt)
{
	const eg_val *v = eg_val_get_path(root, path);

	return eg_val_is_num(v) ? eg_val_as_num(v) : dflt;
}

const char *eg_val_get_str(const eg_val *root, const char *path,
			   const char *dflt)
{
	const char *s = eg_val_as_str(eg_val_get_path(root, path));

	return s != NULL ? s : dflt;
}

bool eg_val_get_bool(const eg_val *root, const char *path, bool dflt)
{
	const eg_val *v = eg_val_get_path(root, path);

	return v != NULL && v->type == EG_VAL_BOOL ? v->u.b : dflt;
}

int eg_val_set_int(eg_val *map, const char *key, int64_t i)
{
	return eg_val_set(map, key, eg_val_int(i));
}

int eg_val_set_num(eg_val *map, const char *key, double d)
{
	return eg_val_set(map, key, eg_val_float(d));
}

int eg_val_set_str(eg_val *map, const char *key, const char *s)
{
	return eg_val_set(map, key, eg_val_str(s));
}

int eg_val_set_bool(eg_val *map, const char *key, bool b)
{
	return eg_val_set(map, key, eg_val_bool(b));
}

void eg_val_sort_keys(eg_val *v)
{
	if (v == NULL || (v->type != EG_VAL_LIST && v->type != EG_VAL_MAP))
		return;
	for (size_t i = 0; i < v->u.c.len; i++)
		eg_val_sort_keys(v->u.c.items[i]);
	if (v->type != EG_VAL_MAP)
		return;
	/* Insertion sort: maps are small and often nearly sorted. */
	for (size_t i = 1; i < v->u.c.len; i++) {
		char *k = v->u.c.keys[i];
		eg_val *item = v->u.c.items[i];
		size_t j = i;

		while (j > 0 && strcmp(v->u.c.keys[j - 1], k) > 0) {
			v->u.c.keys[j] = v->u.c.keys[j - 1];
			v->u.c.items[j] = v->u.c.items[j - 1];
			j--;
		}
		v->u.c.keys[j] = k;
		v->u.c.items[j] = item;
	}
}

bool eg_val_equal(const eg_val *a, const eg_val *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (eg_val_is_num(a) && eg_val_is_num(b)) {
		if (a->type == EG_VAL_INT && b->type == EG_VAL_INT)
			return a->u.i == b->u.i;
		return eg_val_as_num(a) == eg_val_as_num(b);
	}
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case EG_VAL_NULL:
		return true;
	case EG_VAL_BOOL:
		return a->u.b == b->u.b;
	case EG_VAL_STR:
		return strcmp(a->u.s, b->u.s) == 0;
	case EG_VAL_LIST:
		if (a->u.c.len != b->u.c.len)
			return false;
		for (size_t i = 0; i < a->u.c.len; i++)
			if (!eg_val_equal(a->u.c.items[i], b->u.c.items[i]))
				return false;
		return true;
	case EG_VAL_MAP:
		if (a->u.c.len != b->u.c.len)
			return false;
		for (size_t i = 0; i < a->u.c.len; i++)
			if (!eg_val_equal(a->u.c.items[i],
					  eg_val_get(b, a->u.c.keys[i])))
				return false;
		return true;
	default:
		return false;
	}
}

void eg_val_write_json(const eg_val *v, eg_json *j)
{
	if (v == NULL) {
		eg_json_null(j);
		return;
	}
	switch (v->type) {
	case EG_VAL_NULL:
		eg_json_null(j);
		break;
	case EG_VAL_BOOL:
		eg_json_bool(j, v->u.b);
		break;
	case EG_VAL_INT:
		eg_json_int(j, v->u.i);
		break;
	case EG_VAL_FLOAT:
		eg_json_num(j, v->u.d);
		break;
	case EG_VAL_STR:
		eg_json_str(j, v->u.s);
		break;
	case EG_VAL_LIST:
		eg_json_arr_begin(j);
		for (size_t i = 0; i < v->u.c.len; i++)
			eg_val_write_json(v->u.c.items[i], j);
		eg_json_arr_end(j);
		break;
	case EG_VAL_MAP:
		eg_json_obj_begin(j);
		for (size_t i = 0; i < v->u.c.len; i++) {
			eg_json_key(j, v->u.c.keys[i]);
			eg_val_write_json(v->u.c.items[i], j);
		}
		eg_json_obj_end(j);
		break;
	}
}

void eg_val_to_json(const eg_val *v, eg_buf *b)
{
	eg_json j;

	eg_json_init(&j, b);
	eg_val_write_json(v, &j);
}
