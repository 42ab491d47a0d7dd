/*
 * yaml.c - reads one YAML document into an eg_val tree with libyaml's
 * event API, keeping the 1-based line:column of every node and every map
 * key (eg__ydoc.keys), because a grid error has to point at the key or value
 * the user wrote.
 *
 * Scalar typing is deliberately smaller than YAML 1.1's: a plain scalar is
 * an int when it is [+-]digits, a float when it is a decimal or exponent
 * number (0.1, 1e-3, .5, 1.0), a bool for true/false (any case of the YAML
 * 1.2 core spellings), null for null/~/nothing, and a string otherwise
 * (so `yes`, `on`, `0x10` and `.inf` stay strings and fail type checks
 * instead of silently meaning something).  Quoted and block scalars are
 * always strings.  Anchors, aliases, tags and merge keys are refused: a
 * grid should read the same to a person as to the program.  A duplicate key
 * in one map is an error naming both positions.  Nesting is limited to
 * MAX_DEPTH so a hostile file cannot exhaust the stack.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "grid/grid.h"
#include "grid/grid_int.h"

#define MAX_DEPTH 64

struct yp {
	yaml_parser_t p;
	const eg__where *w;
	eg__ydoc *doc;
	eg_diag *d;
};

static int ev_line(const yaml_event_t *ev) { return (int)ev->start_mark.line + 1; }
static int ev_col(const yaml_event_t *ev) { return (int)ev->start_mark.column + 1; }

static int parser_error(struct yp *y)
{
	const yaml_parser_t *p = &y->p;
	const yaml_mark_t *m = &p->problem_mark;

	if (p->error == YAML_MEMORY_ERROR)
		return EG_ENOMEM;
	if (p->context != NULL)
		return eg__err(y->w, y->d, EG_EPARSE, (int)m->line + 1,
			       (int)m->column + 1, "YAML: %s %s",
			       p->problem ? p->problem : "syntax error",
			       p->context);
	return eg__err(y->w, y->d, EG_EPARSE, (int)m->line + 1,
		       (int)m->column + 1, "YAML: %s",
		       p->problem ? p->problem : "syntax error");
}

static int next(struct yp *y, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&y->p, ev))
		return parser_error(y);
	return EG_OK;
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* [+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?  with a '.' or an exponent. */
static bool is_float(const char *s, size_t n)
{
	size_t i = 0, intd = 0, fracd = 0;
	bool dot = false, exp = false;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, intd++;
	if (i < n && s[i] == '.') {
		dot = true;
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, fracd++;
	}
	if (intd + fracd == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e0;

		exp = true;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		e0 = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == e0)
			return false;
	}
	return i == n && (dot || exp);
}

static bool is_one_of(const char *s, size_t n, const char *const *words)
{
	for (int i = 0; words[i] != NULL; i++)
		if (strlen(words[i]) == n && memcmp(s, words[i], n) == 0)
			return true;
	return false;
}

static int plain_scalar(struct yp *y, const yaml_event_t *ev, eg_val **out)
{
	static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	char tmp[128];

	if (n == 0 || is_one_of(s, n, nulls)) {
		*out = eg_val_null();
	} else if (is_one_of(s, n, trues) || is_one_of(s, n, falses)) {
		*out = eg_val_bool(is_one_of(s, n, trues));
	} else if ((all_digits(s, n) ||
		    ((s[0] == '-' || s[0] == '+') && all_digits(s + 1, n - 1))) &&
		   n < sizeof(tmp)) {
		long long v;

		memcpy(tmp, s, n);
		tmp[n] = '\0';
		errno = 0;
		v = strtoll(tmp, NULL, 10);
		if (errno == ERANGE)
			return eg__err(y->w, y->d, EG_ERANGE, ev_line(ev),
				       ev_col(ev),
				       "integer %s does not fit in 64 bits", tmp);
		*out = eg_val_int(v);
	} else if (n < sizeof(tmp) && is_float(s, n)) {
		double v;

		memcpy(tmp, s, n);
		tmp[n] = '\0';
		v = strtod(tmp, NULL);
		if (!isfinite(v))
			return eg__err(y->w, y->d, EG_ERANGE, ev_line(ev),
				       ev_col(ev), "number %s is too large",
				       tmp);
		*out = eg_val_float(v);
	} else {
		*out = eg_val_strn(s, n);
	}
	return *out != NULL ? EG_OK : EG_ENOMEM;
}

/* Refuses what the grid language leaves out of YAML. */
static int check_props(struct yp *y, const yaml_event_t *ev,
		       const yaml_char_t *anchor, const yaml_char_t *tag,
		       bool implicit)
{
	if (anchor != NULL)
		return eg__err(y->w, y->d, EG_EPARSE, ev_line(ev), ev_col(ev),
			       "anchors (&%s) are not supported; write the "
			       "value out",
			       (const char *)anchor);
	if (tag != NULL && !implicit)
		return eg__err(y->w, y->d, EG_EPARSE, ev_line(ev), ev_col(ev),
			       "tags (%s) are not supported",
			       (const char *)tag);
	return EG_OK;
}

static int parse_node(struct yp *y, yaml_event_t *ev, int depth,
		      eg_val **out);

static int parse_seq(struct yp *y, eg_val *list, int depth)
{
	for (;;) {
		yaml_event_t ev;
		eg_val *item = NULL;
		int rc = next(y, &ev);

		if (rc != EG_OK)
			return rc;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return EG_OK;
		}
		rc = parse_node(y, &ev, depth + 1, &item);
		if (rc == EG_OK)
			rc = eg_val_push(list, item);
		if (rc != EG_OK)
			return rc;
	}
}

static int record_key(struct yp *y, const eg_val *map, size_t idx, int line,
		      int col)
{
	eg__ydoc *doc = y->doc;

	if (doc->nkeys == doc->cap) {
		size_t cap = doc->cap ? doc->cap * 2 : 32;
		struct eg__keypos *k = realloc(doc->keys, cap * sizeof(*k));

		if (k == NULL)
			return EG_ENOMEM;
		doc->keys = k;
		doc->cap = cap;
	}
	doc->keys[doc->nkeys++] = (struct eg__keypos){map, idx, line, col};
	return EG_OK;
}

static int parse_map(struct yp *y, eg_val *map, int depth)
{
	for (;;) {
		yaml_event_t kev, vev;
		eg_val *item = NULL;
		char *key;
		int rc = next(y, &kev), line, col;

		if (rc != EG_OK)
			return rc;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			return EG_OK;
		}
		line = ev_line(&kev);
		col = ev_col(&kev);
		if (kev.type != YAML_SCALAR_EVENT) {
			yaml_event_delete(&kev);
			return eg__err(y->w, y->d, EG_EPARSE, line, col,
				       kev.type == YAML_ALIAS_EVENT
					   ? "aliases are not supported"
					   : "map keys must be plain strings");
		}
		rc = check_props(y, &kev, kev.data.scalar.anchor,
				 kev.data.scalar.tag,
				 kev.data.scalar.plain_implicit ||
				     kev.data.scalar.quoted_implicit);
		if (rc == EG_OK && kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    strcmp((char *)kev.data.scalar.value, "<<") == 0)
			rc = eg__err(y->w, y->d, EG_EPARSE, line, col,
				     "merge keys (<<) are not supported");
		key = rc == EG_OK ? strndup((char *)kev.data.scalar.value,
					    kev.data.scalar.length)
				  : NULL;
		yaml_event_delete(&kev);
		if (rc != EG_OK)
			return rc;
		if (key == NULL)
			return EG_ENOMEM;
		if (eg_val_get(map, key) != NULL) {
			int fl = 0, fc = 0;

			for (size_t i = 0; i < eg_val_len(map); i++)
				if (strcmp(eg_val_key_at(map, i), key) == 0)
					eg__ydoc_keypos(y->doc, map, i, &fl, &fc);
			rc = eg__err(y->w, y->d, EG_EPARSE, line, col,
				     "duplicate key '%s' (first at %d:%d)", key,
				     fl, fc);
			free(key);
			return rc;
		}
		rc = next(y, &vev);
		if (rc == EG_OK)
			rc = parse_node(y, &vev, depth + 1, &item);
		if (rc == EG_OK)
			rc = record_key(y, map, eg_val_len(map), line, col);
		if (rc == EG_OK)
			rc = eg_val_set(map, key, item);
		else
			eg_val_free(item);
		free(key);
		if (rc != EG_OK)
			return rc;
	}
}

/* Consumes `ev` (deleting it) and everything belonging to the node. */
static int parse_node(struct yp *y, yaml_event_t *ev, int depth,
		      eg_val **out)
{
	int line = ev_line(ev), col = ev_col(ev), rc;
	eg_val *v = NULL;

	*out = NULL;
	if (depth > MAX_DEPTH) {
		rc = eg__err(y->w, y->d, EG_EPARSE, line, col,
			     "nested deeper than %d levels", MAX_DEPTH);
		goto done;
	}
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		rc = eg__err(y->w, y->d, EG_EPARSE, line, col,
			     "aliases (*%s) are not supported; write the value "
			     "out",
			     (const char *)ev->data.alias.anchor);
		break;
	case YAML_SCALAR_EVENT:
		rc = check_props(y, ev, ev->data.scalar.anchor,
				 ev->data.scalar.tag,
				 ev->data.scalar.plain_implicit ||
				     ev->data.scalar.quoted_implicit);
		if (rc != EG_OK)
			break;
		if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
			rc = plain_scalar(y, ev, &v);
		else
			rc = (v = eg_val_strn((const char *)ev->data.scalar.value,
					      ev->data.scalar.length)) != NULL
				 ? EG_OK
				 : EG_ENOMEM;
		break;
	case YAML_SEQUENCE_START_EVENT:
		rc = check_props(y, ev, ev->data.sequence_start.anchor,
				 ev->data.sequence_start.tag,
				 ev->data.sequence_start.implicit);
		if (rc == EG_OK)
			rc = (v = eg_val_list()) != NULL ? EG_OK : EG_ENOMEM;
		if (rc == EG_OK)
			rc = parse_seq(y, v, depth);
		break;
	case YAML_MAPPING_START_EVENT:
		rc = check_props(y, ev, ev->data.mapping_start.anchor,
				 ev->data.mapping_start.tag,
				 ev->data.mapping_start.implicit);
		if (rc == EG_OK)
			rc = (v = eg_val_map()) != NULL ? EG_OK : EG_ENOMEM;
		if (rc == EG_OK)
			rc = parse_map(y, v, depth);
		break;
	default:
		rc = eg__err(y->w, y->d, EG_EPARSE, line, col,
			     "YAML: unexpected event");
	}
done:
	yaml_event_delete(ev);
	if (rc != EG_OK) {
		eg_val_free(v);
		return rc;
	}
	eg_val_set_pos(v, line, col);
	*out = v;
	return EG_OK;
}

int eg__yaml_parse(const char *text, size_t len, const eg__where *w,
		   eg__ydoc *doc, eg_diag *d)
{
	struct yp y = {.w = w, .doc = doc, .d = d};
	yaml_event_t ev;
	int rc;

	memset(doc, 0, sizeof(*doc));
	if (!yaml_parser_initialize(&y.p))
		return EG_ENOMEM;
	yaml_parser_set_input_string(&y.p, (const unsigned char *)text, len);
	/* STREAM-START, then DOCUMENT-START or STREAM-END (empty input). */
	rc = next(&y, &ev);
	if (rc != EG_OK)
		goto out;
	yaml_event_delete(&ev);
	rc = next(&y, &ev);
	if (rc != EG_OK)
		goto out;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		goto out;
	}
	yaml_event_delete(&ev);
	rc = next(&y, &ev);
	if (rc == EG_OK)
		rc = parse_node(&y, &ev, 0, &doc->root);
	if (rc == EG_OK)
		rc = next(&y, &ev); /* DOCUMENT-END */
	if (rc != EG_OK)
		goto out;
	yaml_event_delete(&ev);
	rc = next(&y, &ev);
	if (rc != EG_OK)
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT)
		rc = eg__err(w, d, EG_EPARSE, ev_line(&ev), ev_col(&ev),
			     "only one YAML document is allowed");
	yaml_event_delete(&ev);
out:
	yaml_parser_delete(&y.p);
	if (rc != EG_OK)
		eg__ydoc_free(doc);
	return rc;
}

int eg_grid_yaml_load(const char *text, size_t len, const char *file,
		      eg_val **out, eg_diag *d)
{
	eg__where w = {file, NULL, NULL};
	eg__ydoc doc;
	int rc = eg__yaml_parse(text, len, &w, &doc, d);

	*out = NULL;
	if (rc != EG_OK)
		return rc;
	*out = doc.root;
	doc.root = NULL;
	eg__ydoc_free(&doc);
	return EG_OK;
}

void eg__ydoc_free(eg__ydoc *doc)
{
	if (doc == NULL)
		return;
	eg_val_free(doc->root);
	free(doc->keys);
	memset(doc, 0, sizeof(*doc));
}

void eg__ydoc_keypos(const eg__ydoc *doc, const eg_val *map, size_t i,
		     int *line, int *col)
{
	*line = *col = 0;
	for (size_t k = 0; doc != NULL && k < doc->nkeys; k++)
		if (doc->keys[k].map == map && doc->keys[k].idx == i) {
			*line = doc->keys[k].line;
			*col = doc->keys[k].col;
			return;
		}
}
