/*
 * err.h - the one list of expgrid error codes.
 *
 * Every fallible function in expgrid returns an `int` that is 0 (EG_OK) on
 * success or one of the negative codes below.  The list is written once, as an
 * X-macro, and the enum, eg_strerror() and eg_err_name() are generated from it
 * (libuv's UV_ERRNO_MAP).  Foreign failures (errno, libpq, MPI, libyaml,
 * msgpack) are mapped into this list at the boundary where they happen; the
 * human-readable detail travels separately in an eg_diag (see below) or on the
 * object that failed, the way libpq keeps PQerrorMessage() on the connection.
 */
#ifndef EG_ERR_H
#define EG_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define EG_ERR_MAP(XX)                                                 \
	XX(NOMEM, "out of memory")                                     \
	XX(INVAL, "invalid argument")                                  \
	XX(IO, "input/output error")                                   \
	XX(NOENT, "no such file or directory")                         \
	XX(PERM, "permission denied")                                  \
	XX(NOSPC, "no space left on device")                           \
	XX(PARSE, "syntax error")                                      \
	XX(TYPE, "wrong type")                                         \
	XX(RANGE, "value out of range")                                \
	XX(UNKNOWN_KEY, "unknown key")                                 \
	XX(TOO_BIG, "too large")                                       \
	XX(CORRUPT, "corrupt data")                                    \
	XX(TRUNCATED, "truncated data")                                \
	XX(NOTSUP, "not supported")                                    \
	XX(MISSING_DEP, "missing dependency")                          \
	XX(CANCELLED, "cancelled")                                     \
	XX(TIMEOUT, "timed out")                                       \
	XX(DIVERGED, "training diverged")                              \
	XX(DB, "database error")                                       \
	XX(PROTO, "protocol error")                                    \
	XX(AUTH, "authentication failed")                              \
	XX(VERSION, "protocol version mismatch")                       \
	XX(CLOSED, "connection closed")                                \
	XX(MPI, "MPI error")                                           \
	XX(CHILD, "child process failed")                              \
	XX(STATE, "operation not valid in this state")

/* Positions in the list; EG_E<name> is the negated position. */
enum eg__err_index {
	EG__ERR_INDEX_OK = 0,
#define XX(name, msg) EG__ERR_INDEX_##name,
	EG_ERR_MAP(XX)
#undef XX
	EG__ERR_INDEX_COUNT
};

typedef enum eg_err {
	EG_OK = 0,
#define XX(name, msg) EG_E##name = -EG__ERR_INDEX_##name,
	EG_ERR_MAP(XX)
#undef XX
} eg_err;

/* A static English sentence for `err`; never NULL, also for unknown codes. */
const char *eg_strerror(int err);
/* The code's name without prefix ("NOMEM"); "OK" for 0, "UNKNOWN" otherwise. */
const char *eg_err_name(int err);
/* Maps an errno value (ENOMEM, ENOENT, EACCES, ENOSPC ...) into the list. */
int eg_err_from_errno(int errnum);

/*
 * eg_diag carries the detail of a failure: which file, line, key, value,
 * peer.  Functions that can fail with a detail take an `eg_diag *` that may
 * be NULL; they fill it and return the code.  The message is complete and
 * ready to print after "expgrid: ".
 */
typedef struct eg_diag {
	char msg[1024];
} eg_diag;

/* Formats the message into `d` (if not NULL) and returns `err`, so that a
 * failure reads `return eg_diag_set(d, EG_ERANGE, "%s:%d:%d: ...", ...)`. */
int eg_diag_set(eg_diag *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int eg_diag_vset(eg_diag *d, int err, const char *fmt, va_list ap);
/* Prepends "<prefix>: " to the existing message (adding context on the way up). */
int eg_diag_prefix(eg_diag *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The message, or eg_strerror(err) if nothing was recorded. */
const char *eg_diag_msg(const eg_diag *d, int err);
void eg_diag_clear(eg_diag *d);

#endif
