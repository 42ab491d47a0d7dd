/*
 * log.h - the one logging function of the daemons (redis serverLog style).
 *
 * The level is tested before anything is formatted, so a disabled debug line
 * costs one comparison.  Libraries (kernels, grid, proto) never log: they
 * return errors; only daemons and the command line log.  Not thread-safe
 * beyond what stdio's own locking gives: each line is written with one
 * fprintf call.
 */
#ifndef EG_LOG_H
#define EG_LOG_H

#include <stdio.h>

enum eg_log_level {
	EG_LOG_DEBUG = 0,
	EG_LOG_INFO = 1,
	EG_LOG_WARN = 2,
	EG_LOG_ERROR = 3,
	EG_LOG_OFF = 4
};

extern int eg_log_level;

/* Where lines go (default stderr) and the program name written on each. */
void eg_log_open(const char *progname, FILE *out);
void eg_log_set_level(int level);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int eg_log_level_parse(const char *name);

void eg__log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define eg_log(level, ...)                                             \
	do {                                                           \
		if ((level) >= eg_log_level)                           \
			eg__log((level), __VA_ARGS__);                 \
	} while (0)

#endif
