/*
 * err.c - eg_strerror, eg_err_name and errno mapping, generated from the
 * X-macro list in err.h; and the eg_diag detail buffer.
 */
#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *eg_strerror(int err)
{
	switch (err) {
	case EG_OK:
		return "success";
#define XX(name, msg)                                                  \
	case EG_E##name:                                               \
		return msg;
		EG_ERR_MAP(XX)
#undef XX
	default:
		return "unknown error";
	}
}

const char *eg_err_name(int err)
{
	switch (err) {
	case EG_OK:
		return "OK";
#define XX(name, msg)                                                  \
	case EG_E##name:                                               \
		return #name;
		EG_ERR_MAP(XX)
#undef XX
	default:
		return "UNKNOWN";
	}
}

int eg_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0:
		return EG_OK;
	case ENOMEM:
		return EG_ENOMEM;
	case ENOENT:
	case ENOTDIR:
		return EG_ENOENT;
	case EACCES:
	case EPERM:
	case EROFS:
		return EG_EPERM;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return EG_ENOSPC;
	case EINVAL:
		return EG_EINVAL;
	case ETIMEDOUT:
		return EG_ETIMEOUT;
	case ECONNRESET:
	case EPIPE:
	case ECONNREFUSED:
		return EG_ECLOSED;
	default:
		return EG_EIO;
	}
}

int eg_diag_vset(eg_diag *d, int err, const char *fmt, va_list ap)
{
	if (d != NULL)
		vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
	return err;
}

int eg_diag_set(eg_diag *d, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	eg_diag_vset(d, err, fmt, ap);
	va_end(ap);
	return err;
}

int eg_diag_prefix(eg_diag *d, int err, const char *fmt, ...)
{
	char prefix[512], old[sizeof(d->msg)];
	char joined[sizeof(prefix) + sizeof(old) + 2];
	size_t n;
	va_list ap;

	if (d == NULL)
		return err;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, d->msg, sizeof(old));
	snprintf(joined, sizeof(joined), "%s: %s", prefix,
		 old[0] != '\0' ? old : eg_strerror(err));
	n = strlen(joined);
	if (n >= sizeof(d->msg))
		n = sizeof(d->msg) - 1;
	memcpy(d->msg, joined, n);
	d->msg[n] = '\0';
	return err;
}

const char *eg_diag_msg(const eg_diag *d, int err)
{
	if (d == NULL || d->msg[0] == '\0')
		return eg_strerror(err);
	return d->msg;
}

void eg_diag_clear(eg_diag *d)
{
	if (d != NULL)
		d->msg[0] = '\0';
}
