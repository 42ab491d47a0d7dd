/*
 * harness.h - the test harness: a table of tests per file, a main that lists
 * or runs them, and assertions that report file:line and exit non-zero.
 *
 * Each tests/unit/test_<module>.c (and tests/integration/itest_<area>.c)
 * defines its tests with EG_TEST and lists them with EG_TEST_MAIN:
 *
 *     EG_TEST(parses_empty) { EG_CHECK(...); }
 *     EG_TEST_MAIN({"parses_empty", parses_empty, 10}, ...)
 *
 * The binary prints its test names with `--list` and runs one test with
 * `<binary> <name>`.  The runner (tests/runner.c) forks every test in its own
 * process under its timeout, so a crash or a hang fails one test, not the
 * suite.  A test that cannot run here calls EG_SKIP("why") (exit 77).
 *
 * Each test runs in a fresh scratch directory whose path is in
 * $EG_TEST_TMPDIR (eg_test_tmpdir()); the working directory is the
 * repository root, so bin/expgrid and grids/ are at their usual paths.
 */
#ifndef EG_TEST_HARNESS_H
#define EG_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct eg_test {
	const char *name;
	void (*fn)(void);
	int timeout_s; /* 0 = the runner's default */
};

#define EG_TEST(name) static void name(void)

int eg_test_main(int argc, char **argv, const struct eg_test *tests,
		 size_t ntests);

#define EG_TEST_MAIN(...)                                              \
	static const struct eg_test eg__tests[] = {__VA_ARGS__};       \
	int main(int argc, char **argv)                                \
	{                                                              \
		return eg_test_main(argc, argv, eg__tests,             \
				    sizeof(eg__tests) /                \
					sizeof(eg__tests[0]));         \
	}

#define EG_SKIP_CODE 77

void eg__test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
void eg_test_skip(const char *why) __attribute__((noreturn));

#define EG_SKIP(why) eg_test_skip(why)

#define EG_CHECK(cond)                                                 \
	do {                                                           \
		if (!(cond))                                           \
			eg__test_fail(__FILE__, __LINE__,              \
				      "check failed: %s", #cond);      \
	} while (0)

#define EG_CHECK_MSG(cond, ...)                                        \
	do {                                                           \
		if (!(cond))                                           \
			eg__test_fail(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

#define EG_CHECK_INT(a, b)                                             \
	do {                                                           \
		long long eg__a = (long long)(a), eg__b = (long long)(b); \
		if (eg__a != eg__b)                                    \
			eg__test_fail(__FILE__, __LINE__,              \
				      "%s == %s: %lld != %lld", #a, #b, \
				      eg__a, eg__b);                   \
	} while (0)

#define EG_CHECK_STR(a, b)                                             \
	do {                                                           \
		const char *eg__a = (a), *eg__b = (b);                 \
		if (eg__a == NULL || eg__b == NULL ||                  \
		    strcmp(eg__a, eg__b) != 0)                         \
			eg__test_fail(__FILE__, __LINE__,              \
				      "%s == %s: \"%s\" != \"%s\"", #a, \
				      #b, eg__a ? eg__a : "(null)",    \
				      eg__b ? eg__b : "(null)");       \
	} while (0)

/* |a - b| <= tol */
#define EG_CHECK_NEAR(a, b, tol)                                       \
	do {                                                           \
		double eg__a = (double)(a), eg__b = (double)(b);       \
		if (!(fabs(eg__a - eg__b) <= (double)(tol)))           \
			eg__test_fail(__FILE__, __LINE__,              \
				      "%s ~ %s: %.9g vs %.9g (tol %g)", \
				      #a, #b, eg__a, eg__b,            \
				      (double)(tol));                  \
	} while (0)

/* Runs `rc = expr` and fails with the code's name unless rc == EG_OK. */
#define EG_CHECK_OK(expr)                                              \
	do {                                                           \
		int eg__rc = (expr);                                   \
		if (eg__rc != 0)                                       \
			eg__test_fail(__FILE__, __LINE__,              \
				      "%s returned %d", #expr, eg__rc); \
	} while (0)

/* The test's scratch directory (created by the runner, or by the harness
 * when a test binary is run by hand). */
const char *eg_test_tmpdir(void);
/* Path of `name` inside the scratch directory (static buffer per call
 * site is not kept: copy it if you need two at once). */
const char *eg_test_path(const char *name);
/* Writes `text` to the scratch file `name`; returns its path. */
const char *eg_test_write_file(const char *name, const char *text);
/* Runs a shell command, capturing stdout+stderr into *out (malloc'ed,
 * may be NULL to discard); returns the exit status (or 128+signal). */
int eg_test_run(const char *cmd, char **out);

/* eg_test_run with a printf-style command line. */
int eg_test_runf(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void eg_test_sleep_ms(int ms);
double eg_test_now(void); /* seconds, CLOCK_MONOTONIC */

/* Canonical trial parameters (defaults filled, as a grid would give them)
 * from pairs of dotted keys and YAML values, NULL-terminated:
 * {"model.hidden", "[32]", "train.lr", "0.05", NULL}.  Parsed and validated
 * by grid/ itself, so a test cannot build parameters a grid could not.
 * Fails the test on a bad pair.  The caller frees the result. */
struct eg_val;
struct eg_val *eg_test_params(const char *const *kv);

#endif
