/*
 * buf.h - a growable byte buffer, the output of the JSON writer and of
 * anything else that builds text or frames.  The bytes are always followed by
 * a NUL (not counted in len), so text can be used as a C string.  After an
 * allocation failure the buffer is marked failed and further appends are
 * ignored; check eg_buf_failed() once at the end instead of after each append.
 */
#ifndef EG_BUF_H
#define EG_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct eg_buf {
	char *data; /* owned; NUL-terminated; NULL until the first append */
	size_t len;
	size_t cap;
	bool failed;
} eg_buf;

#define EG_BUF_INIT {NULL, 0, 0, false}

void eg_buf_append(eg_buf *b, const void *p, size_t n);
void eg_buf_puts(eg_buf *b, const char *s);
void eg_buf_putc(eg_buf *b, char c);
void eg_buf_printf(eg_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Makes room for `n` more bytes; returns false (and marks failed) on OOM. */
bool eg_buf_reserve(eg_buf *b, size_t n);
void eg_buf_reset(eg_buf *b); /* len = 0, keeps the memory */
void eg_buf_free(eg_buf *b);  /* frees and reinitializes; accepts NULL */
static inline bool eg_buf_failed(const eg_buf *b) { return b->failed; }
/* The text so far ("" when empty). */
static inline const char *eg_buf_str(const eg_buf *b)
{
	return b->data != NULL ? b->data : "";
}

#endif
