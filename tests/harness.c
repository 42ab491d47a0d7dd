/* harness.c - test binary main, assertions and scratch files; see harness.h. */
#include "tests/harness.h"

#include "grid/grid.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[4096];
static char pathbuf[4096];

void eg__test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(NULL);
	exit(1);
}

void eg_test_skip(const char *why)
{
	fprintf(stderr, "skip: %s\n", why);
	fflush(NULL);
	exit(EG_SKIP_CODE);
}

const char *eg_test_tmpdir(void)
{
	const char *env;

	if (tmpdir[0] != '\0')
		return tmpdir;
	env = getenv("EG_TEST_TMPDIR");
	if (env != NULL && env[0] != '\0') {
		snprintf(tmpdir, sizeof(tmpdir), "%s", env);
	} else {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/eg-test-XXXXXX");
		if (mkdtemp(tmpdir) == NULL)
			eg__test_fail(__FILE__, __LINE__, "mkdtemp failed");
	}
	return tmpdir;
}

const char *eg_test_path(const char *name)
{
	snprintf(pathbuf, sizeof(pathbuf), "%s/%s", eg_test_tmpdir(), name);
	return pathbuf;
}

const char *eg_test_write_file(const char *name, const char *text)
{
	const char *path = eg_test_path(name);
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		eg__test_fail(__FILE__, __LINE__, "cannot write %s", path);
	return path;
}

int eg_test_run(const char *cmd, char **out)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	char chunk[4096];
	size_t n;
	int status;
	char *full;
	FILE *p;

	if (asprintf(&full, "(%s) 2>&1", cmd) < 0)
		return -1;
	p = popen(full, "r");
	free(full);
	if (p == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		memcpy(buf + len, chunk, n);
		len += n;
	}
	if (buf == NULL)
		buf = calloc(1, 1);
	else
		buf[len] = '\0';
	status = pclose(p);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int eg_test_runf(char **out, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return eg_test_run(cmd, out);
}

void eg_test_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

double eg_test_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int eg_test_main(int argc, char **argv, const struct eg_test *tests,
		 size_t ntests)
{
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < ntests; i++)
			printf("%s %d\n", tests[i].name, tests[i].timeout_s);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: %s --list | TEST\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < ntests; i++) {
		if (strcmp(argv[1], tests[i].name) == 0) {
			tests[i].fn();
			fflush(NULL);
			return 0;
		}
	}
	fprintf(stderr, "%s: no test named %s\n", argv[0], argv[1]);
	return 2;
}

static int take_first(void *ud, const eg_trial_spec *t)
{
	*(eg_val **)ud = eg_val_copy(t->params);
	return *(eg_val **)ud != NULL ? EG_OK : EG_ENOMEM;
}

eg_val *eg_test_params(const char *const *kv)
{
	eg_buf yaml = EG_BUF_INIT;
	eg_diag d = {{0}};
	eg_grid *g = NULL;
	eg_val *out = NULL;
	int rc;

	eg_buf_puts(&yaml, "name: test\ntrial:\n");
	for (; kv[0] != NULL; kv += 2)
		eg_buf_printf(&yaml, "  %s: %s\n", kv[0], kv[1]);
	rc = eg_grid_parse(yaml.data, yaml.len, "test-params", &g, &d);
	if (rc == EG_OK)
		rc = eg_grid_expand(g, take_first, &out, &d);
	if (rc != EG_OK)
		eg__test_fail(__FILE__, __LINE__, "test params: %s\n%s",
			      eg_diag_msg(&d, rc), eg_buf_str(&yaml));
	eg_grid_free(g);
	eg_buf_free(&yaml);
	return out;
}
