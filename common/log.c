/*
 * log.c - timestamped, levelled log lines: "2026-11-27T04:30:00.123Z
 * coordinator[123] INFO message".
 */
#include "common/log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int eg_log_level = EG_LOG_INFO;
static const char *log_prog = "expgrid";
static FILE *log_out;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void eg_log_open(const char *progname, FILE *out)
{
	if (progname != NULL)
		log_prog = progname;
	log_out = out;
}

void eg_log_set_level(int level)
{
	eg_log_level = level;
}

int eg_log_level_parse(const char *name)
{
	static const char *const names[] = {"debug", "info", "warn", "error",
					    "off"};

	for (int i = 0; i < 5; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

void eg__log(int level, const char *fmt, ...)
{
	char msg[2048], stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	FILE *out = log_out != NULL ? log_out : stderr;

	if (level < EG_LOG_DEBUG || level > EG_LOG_ERROR)
		level = EG_LOG_ERROR;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(out, "%s.%03dZ %s[%d] %s %s\n", stamp, (int)(tv.tv_usec / 1000),
		log_prog, (int)getpid(), level_names[level], msg);
	fflush(out);
}
