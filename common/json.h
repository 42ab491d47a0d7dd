/*
 * json.h - a streaming JSON writer into an eg_buf.
 *
 * The writer inserts commas and colons itself: call eg_json_key() before each
 * value inside an object, nothing between array elements.  Strings are
 * escaped per RFC 8259 (quote, backslash, control characters as \uXXXX;
 * other bytes, including UTF-8, pass through).  JSON has no NaN or infinity:
 * a non-finite number is written as null, explicitly and always, so that
 * every line expgrid prints parses.  Doubles are written in the shortest form
 * that reads back to the same double, and integral values below 2^53 without
 * a fraction, so 1 and 1.0 print alike (this is what makes trial keys
 * independent of how a number was spelled).
 */
#ifndef EG_JSON_H
#define EG_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

#define EG_JSON_MAX_DEPTH 64

typedef struct eg_json {
	eg_buf *out;
	int depth;
	bool need_comma[EG_JSON_MAX_DEPTH];
	bool after_key;
} eg_json;

/* Starts writing into `out` (appending to what it holds). */
void eg_json_init(eg_json *j, eg_buf *out);

void eg_json_obj_begin(eg_json *j);
void eg_json_obj_end(eg_json *j);
void eg_json_arr_begin(eg_json *j);
void eg_json_arr_end(eg_json *j);
void eg_json_key(eg_json *j, const char *key);
void eg_json_str(eg_json *j, const char *s);
void eg_json_strn(eg_json *j, const char *s, size_t n);
void eg_json_int(eg_json *j, int64_t v);
void eg_json_num(eg_json *j, double v); /* non-finite -> null */
void eg_json_bool(eg_json *j, bool v);
void eg_json_null(eg_json *j);
/* Appends already-serialized JSON as one value (trusted input only). */
void eg_json_raw(eg_json *j, const char *text);

/* Shortest round-tripping text of `v` into `out` (at least 32 bytes);
 * integral values below 2^53 print without a fraction or exponent.  For
 * non-finite values writes "nan", "inf" or "-inf". */
void eg_json_fmt_double(char *out, size_t outlen, double v);
/* Appends `s` (n bytes) as a quoted, escaped JSON string to `b`. */
void eg_json_escape(eg_buf *b, const char *s, size_t n);

#endif
