/* buf.c - growable byte buffer with a sticky failure flag. */
#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool eg_buf_reserve(eg_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return false;
	need = b->len + n + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap != 0 ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void eg_buf_append(eg_buf *b, const void *p, size_t n)
{
	if (!eg_buf_reserve(b, n))
		return;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void eg_buf_puts(eg_buf *b, const char *s)
{
	eg_buf_append(b, s, strlen(s));
}

void eg_buf_putc(eg_buf *b, char c)
{
	eg_buf_append(b, &c, 1);
}

void eg_buf_printf(eg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !eg_buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void eg_buf_reset(eg_buf *b)
{
	b->len = 0;
	b->failed = false;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void eg_buf_free(eg_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}
