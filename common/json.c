/* json.c - streaming JSON writer; see json.h for the number and string rules. */
#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eg_json_init(eg_json *j, eg_buf *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
}

/* Called before every value and key: writes the separating comma. */
static void before_value(eg_json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth > 0) {
		if (j->need_comma[j->depth - 1])
			eg_buf_putc(j->out, ',');
		j->need_comma[j->depth - 1] = true;
	}
}

static void open_container(eg_json *j, char c)
{
	before_value(j);
	eg_buf_putc(j->out, c);
	if (j->depth < EG_JSON_MAX_DEPTH)
		j->need_comma[j->depth] = false;
	else
		j->out->failed = true; /* deeper than we can track */
	j->depth++;
}

static void close_container(eg_json *j, char c)
{
	if (j->depth > 0)
		j->depth--;
	eg_buf_putc(j->out, c);
}

void eg_json_obj_begin(eg_json *j) { open_container(j, '{'); }
void eg_json_obj_end(eg_json *j) { close_container(j, '}'); }
void eg_json_arr_begin(eg_json *j) { open_container(j, '['); }
void eg_json_arr_end(eg_json *j) { close_container(j, ']'); }

void eg_json_escape(eg_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	eg_buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			if (c < 0x20) {
				memcpy(u, "\\u00", 4);
				u[4] = hex[c >> 4];
				u[5] = hex[c & 15];
				u[6] = '\0';
				esc = u;
			}
		}
		if (esc == NULL)
			continue;
		eg_buf_append(b, s + run, i - run);
		eg_buf_puts(b, esc);
		run = i + 1;
	}
	eg_buf_append(b, s + run, n - run);
	eg_buf_putc(b, '"');
}

void eg_json_key(eg_json *j, const char *key)
{
	before_value(j);
	eg_json_escape(j->out, key, strlen(key));
	eg_buf_putc(j->out, ':');
	j->after_key = true;
}

void eg_json_strn(eg_json *j, const char *s, size_t n)
{
	before_value(j);
	eg_json_escape(j->out, s, n);
}

void eg_json_str(eg_json *j, const char *s)
{
	if (s == NULL) {
		eg_json_null(j);
		return;
	}
	eg_json_strn(j, s, strlen(s));
}

void eg_json_int(eg_json *j, int64_t v)
{
	before_value(j);
	eg_buf_printf(j->out, "%lld", (long long)v);
}

void eg_json_fmt_double(char *out, size_t outlen, double v)
{
	if (isnan(v)) {
		snprintf(out, outlen, "nan");
		return;
	}
	if (isinf(v)) {
		snprintf(out, outlen, v > 0 ? "inf" : "-inf");
		return;
	}
	if (v == 0) {
		snprintf(out, outlen, "0"); /* -0 and 0 are one parameter */
		return;
	}
	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		snprintf(out, outlen, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

void eg_json_num(eg_json *j, double v)
{
	char tmp[40];

	if (!isfinite(v)) {
		eg_json_null(j);
		return;
	}
	before_value(j);
	eg_json_fmt_double(tmp, sizeof(tmp), v);
	eg_buf_puts(j->out, tmp);
}

void eg_json_bool(eg_json *j, bool v)
{
	before_value(j);
	eg_buf_puts(j->out, v ? "true" : "false");
}

void eg_json_null(eg_json *j)
{
	before_value(j);
	eg_buf_puts(j->out, "null");
}

void eg_json_raw(eg_json *j, const char *text)
{
	before_value(j);
	eg_buf_puts(j->out, text);
}
