/*
 * boards.c - the hardware agent's boards file:
 *
 *     boards:
 *       - name: sim0              # unique; [A-Za-z0-9_.-], 1..63 bytes
 *         type: sim16             # the capability is fpga:sim16
 *         backend: sim            # sim | exec
 *         maintenance: false      # true: owned but given no work
 *         options:
 *           word_bits: 16         # the type's declared ap_fixed types
 *           int_bits: 6           #   (hls.* spelling and defaults)
 *           round: rnd
 *           overflow: sat
 *           accum_bits: 32
 *           accum_int_bits: 16
 *           parallelism: 64       # cost model (sim)
 *           clock_mhz: 200
 *           pj_per_mac: 1
 *           pj_per_access: 5
 *           timeout_ms: 60000     # watchdog budget of one board run
 *           hang: false           # sim: never finish (watchdog tests)
 *           fault: {layer: 2, kind: bitflip, bit: 3, rate: 1}   # sim
 *           command: [python3, board.py]    # exec: argv, run as
 *                                           #   argv... <job directory>
 *           workdir: /tmp         # exec: where job directories go
 *
 * Parsed with the grid reader's YAML rules (eg_grid_yaml_load), so every
 * error names file:line:col.  Options that do not apply to the backend
 * are refused rather than ignored, since a misplaced `command` on a sim
 * board is a mistake worth hearing about.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grid/grid.h"
#include "hwagent/hwagent_int.h"

struct ctx {
	const char *file;
	eg_diag *d;
};

static int err_at(const struct ctx *c, const eg_val *v, int code,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int err_at(const struct ctx *c, const eg_val *v, int code,
		  const char *fmt, ...)
{
	char what[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (v != NULL && eg_val_line(v) > 0)
		return eg_diag_set(c->d, code, "%s:%d:%d: %s", c->file,
				   eg_val_line(v), eg_val_col(v), what);
	return eg_diag_set(c->d, code, "%s: %s", c->file, what);
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= EG__HW_NAME_MAX)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789_.-") == n;
}

static int get_int(const struct ctx *c, const eg_val *m, const char *key,
		   int64_t lo, int64_t hi, int64_t *out)
{
	const eg_val *v = eg_val_get(m, key);

	if (v == NULL)
		return EG_OK;
	if (eg_val_type_of(v) != EG_VAL_INT)
		return err_at(c, v, EG_ETYPE, "%s: expected an integer, got %s",
			      key, eg_val_type_name(eg_val_type_of(v)));
	if (eg_val_as_int(v) < lo || eg_val_as_int(v) > hi)
		return err_at(c, v, EG_ERANGE, "%s: %lld is outside %lld..%lld",
			      key, (long long)eg_val_as_int(v), (long long)lo,
			      (long long)hi);
	*out = eg_val_as_int(v);
	return EG_OK;
}

static int get_num(const struct ctx *c, const eg_val *m, const char *key,
		   double lo, double *out)
{
	const eg_val *v = eg_val_get(m, key);

	if (v == NULL)
		return EG_OK;
	if (!eg_val_is_num(v))
		return err_at(c, v, EG_ETYPE, "%s: expected a number, got %s",
			      key, eg_val_type_name(eg_val_type_of(v)));
	if (!(eg_val_as_num(v) >= lo))
		return err_at(c, v, EG_ERANGE, "%s: must be at least %g", key,
			      lo);
	*out = eg_val_as_num(v);
	return EG_OK;
}

static int get_str(const struct ctx *c, const eg_val *m, const char *key,
		   const char **out)
{
	const eg_val *v = eg_val_get(m, key);

	if (v == NULL)
		return EG_OK;
	if (eg_val_type_of(v) != EG_VAL_STR)
		return err_at(c, v, EG_ETYPE, "%s: expected a string, got %s",
			      key, eg_val_type_name(eg_val_type_of(v)));
	*out = eg_val_as_str(v);
	return EG_OK;
}

static int get_bool(const struct ctx *c, const eg_val *m, const char *key,
		    bool *out)
{
	const eg_val *v = eg_val_get(m, key);

	if (v == NULL)
		return EG_OK;
	if (eg_val_type_of(v) != EG_VAL_BOOL)
		return err_at(c, v, EG_ETYPE, "%s: expected true or false, "
			      "got %s", key,
			      eg_val_type_name(eg_val_type_of(v)));
	*out = eg_val_as_bool(v);
	return EG_OK;
}

/* Every key of map m must be in allowed (NULL-terminated). */
static int known_keys(const struct ctx *c, const eg_val *m,
		      const char *const *allowed, const char *where)
{
	for (size_t i = 0; i < eg_val_len(m); i++) {
		const char *k = eg_val_key_at(m, i);
		size_t a = 0;

		while (allowed[a] != NULL && strcmp(allowed[a], k) != 0)
			a++;
		if (allowed[a] == NULL)
			return err_at(c, eg_val_at(m, i), EG_EUNKNOWN_KEY,
				      "%s: unknown key '%s'", where, k);
	}
	return EG_OK;
}

static int parse_fault(const struct ctx *c, const eg_val *v, eg__hw_spec *s)
{
	static const char *const keys[] = {"layer", "kind", "bit", "rate",
					   NULL};
	const char *kind = NULL;
	int64_t layer = 0, bit = 0;
	double rate = 1;
	eg_diag kd = {{0}};
	int rc;

	if (eg_val_type_of(v) == EG_VAL_NULL)
		return EG_OK;
	if (eg_val_type_of(v) != EG_VAL_MAP)
		return err_at(c, v, EG_ETYPE, "fault: expected a map or null");
	rc = known_keys(c, v, keys, "fault");
	if (rc == EG_OK)
		rc = get_int(c, v, "layer", 0, 1000, &layer);
	if (rc == EG_OK)
		rc = get_int(c, v, "bit", 0, 63, &bit);
	if (rc == EG_OK)
		rc = get_num(c, v, "rate", 0, &rate);
	if (rc == EG_OK)
		rc = get_str(c, v, "kind", &kind);
	if (rc != EG_OK)
		return rc;
	if (kind == NULL)
		return err_at(c, v, EG_EINVAL, "fault: `kind` is required "
			      "(bitflip, stuck0, stuck1)");
	if (eg_board_fault_kind_parse(kind, &s->fault.kind, &kd) != EG_OK)
		return err_at(c, eg_val_get(v, "kind"), EG_EINVAL, "fault: %s",
			      eg_diag_msg(&kd, EG_EINVAL));
	if (!(rate > 0 && rate <= 1))
		return err_at(c, eg_val_get(v, "rate"), EG_ERANGE,
			      "fault: rate must be in (0, 1]");
	s->fault.layer = (int)layer;
	s->fault.bit = (int)bit;
	s->fault.rate = rate;
	s->fault.seed = 0;
	s->has_fault = true;
	return EG_OK;
}

static int parse_command(const struct ctx *c, const eg_val *v,
			 eg__hw_spec *s)
{
	size_t n = eg_val_len(v);

	if (eg_val_type_of(v) != EG_VAL_LIST || n == 0)
		return err_at(c, v, EG_ETYPE, "command: expected a non-empty "
			      "list of strings (argv)");
	s->argv = calloc(n + 1, sizeof(char *));
	if (s->argv == NULL)
		return eg_diag_set(c->d, EG_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const eg_val *a = eg_val_at(v, i);

		if (eg_val_type_of(a) != EG_VAL_STR)
			return err_at(c, a, EG_ETYPE, "command[%zu]: expected "
				      "a string", i);
		s->argv[i] = strdup(eg_val_as_str(a));
		if (s->argv[i] == NULL)
			return eg_diag_set(c->d, EG_ENOMEM, "out of memory");
	}
	return EG_OK;
}

static int parse_options(const struct ctx *c, const eg_val *o,
			 eg__hw_spec *s)
{
	static const char *const sim_keys[] = {
		"word_bits", "int_bits", "round", "overflow", "accum_bits",
		"accum_int_bits", "parallelism", "clock_mhz", "pj_per_mac",
		"pj_per_access", "timeout_ms", "hang", "fault", NULL};
	static const char *const exec_keys[] = {
		"word_bits", "int_bits", "round", "overflow", "accum_bits",
		"accum_int_bits", "parallelism", "clock_mhz", "pj_per_mac",
		"pj_per_access", "timeout_ms", "command", "workdir", NULL};
	int64_t wb = 16, ib = 6, ab = 32, aib = 16, par = 0;
	const char *round = "trn", *ovf = "wrap", *workdir = NULL;
	double clock = 0;
	eg_diag td = {{0}};
	int rc;

	if (eg_val_type_of(o) != EG_VAL_MAP)
		return err_at(c, o, EG_ETYPE, "options: expected a map");
	eg_board_config_default(&s->cfg);
	s->timeout_ms = EG__HW_TIMEOUT_MS_DEFAULT;
	rc = known_keys(c, o, s->backend == EG__HW_SIM ? sim_keys : exec_keys,
			"options");
	if (rc == EG_OK)
		rc = get_int(c, o, "word_bits", 1, 64, &wb);
	if (rc == EG_OK)
		rc = get_int(c, o, "int_bits", -64, 64, &ib);
	if (rc == EG_OK)
		rc = get_int(c, o, "accum_bits", 1, 64, &ab);
	if (rc == EG_OK)
		rc = get_int(c, o, "accum_int_bits", -64, 64, &aib);
	if (rc == EG_OK)
		rc = get_str(c, o, "round", &round);
	if (rc == EG_OK)
		rc = get_str(c, o, "overflow", &ovf);
	if (rc == EG_OK)
		rc = get_int(c, o, "parallelism", 1, 1 << 30, &par);
	if (rc == EG_OK && par > 0)
		s->cfg.parallelism = (int)par;
	if (rc == EG_OK)
		rc = get_num(c, o, "clock_mhz", 0, &clock);
	if (rc == EG_OK && eg_val_get(o, "clock_mhz") != NULL) {
		if (clock <= 0)
			rc = err_at(c, eg_val_get(o, "clock_mhz"), EG_ERANGE,
				    "clock_mhz must be positive");
		s->cfg.clock_mhz = clock;
	}
	if (rc == EG_OK)
		rc = get_num(c, o, "pj_per_mac", 0, &s->cfg.pj_per_mac);
	if (rc == EG_OK)
		rc = get_num(c, o, "pj_per_access", 0, &s->cfg.pj_per_access);
	if (rc == EG_OK)
		rc = get_int(c, o, "timeout_ms", 1, INT32_MAX, &s->timeout_ms);
	if (rc == EG_OK)
		rc = get_bool(c, o, "hang", &s->hang);
	if (rc == EG_OK && eg_val_get(o, "fault") != NULL)
		rc = parse_fault(c, eg_val_get(o, "fault"), s);
	if (rc == EG_OK && eg_val_get(o, "command") != NULL)
		rc = parse_command(c, eg_val_get(o, "command"), s);
	if (rc == EG_OK)
		rc = get_str(c, o, "workdir", &workdir);
	if (rc == EG_OK && workdir != NULL)
		snprintf(s->workdir, sizeof(s->workdir), "%s", workdir);
	if (rc == EG_OK &&
	    eg_qdense_types_hls((int)wb, (int)ib, round, ovf, (int)ab, (int)aib,
				&s->cfg.types, &td) != EG_OK)
		rc = err_at(c, o, EG_EINVAL, "board %s: %s", s->name,
			    eg_diag_msg(&td, EG_EINVAL));
	if (rc == EG_OK && s->backend == EG__HW_EXEC && s->argv == NULL)
		rc = err_at(c, o, EG_EINVAL, "board %s: an exec board needs "
			    "options.command", s->name);
	return rc;
}

static int parse_board(const struct ctx *c, const eg_val *m, eg__hw_spec *s)
{
	static const char *const keys[] = {"name", "type", "backend",
					   "maintenance", "options", NULL};
	const char *name = NULL, *type = NULL, *backend = "sim";
	const eg_val *opts;
	eg_val *empty = NULL;
	int rc;

	if (eg_val_type_of(m) != EG_VAL_MAP)
		return err_at(c, m, EG_ETYPE, "a board must be a map");
	rc = known_keys(c, m, keys, "board");
	if (rc == EG_OK)
		rc = get_str(c, m, "name", &name);
	if (rc == EG_OK)
		rc = get_str(c, m, "type", &type);
	if (rc == EG_OK)
		rc = get_str(c, m, "backend", &backend);
	if (rc == EG_OK)
		rc = get_bool(c, m, "maintenance", &s->maintenance);
	if (rc != EG_OK)
		return rc;
	if (name == NULL || !name_ok(name))
		return err_at(c, name ? eg_val_get(m, "name") : m, EG_EINVAL,
			      "board name: 1 to %d characters of letters, "
			      "digits, '_', '.', '-' required",
			      EG__HW_NAME_MAX - 1);
	if (type == NULL || !name_ok(type))
		return err_at(c, type ? eg_val_get(m, "type") : m, EG_EINVAL,
			      "board %s: type: 1 to %d characters of letters, "
			      "digits, '_', '.', '-' required", name,
			      EG__HW_NAME_MAX - 1);
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->type, sizeof(s->type), "%s", type);
	if (strcmp(backend, "sim") == 0)
		s->backend = EG__HW_SIM;
	else if (strcmp(backend, "exec") == 0)
		s->backend = EG__HW_EXEC;
	else
		return err_at(c, eg_val_get(m, "backend"), EG_EINVAL,
			      "board %s: backend '%s' (sim or exec)", name,
			      backend);
	opts = eg_val_get(m, "options");
	if (opts == NULL)
		opts = empty = eg_val_map();
	if (opts == NULL)
		return eg_diag_set(c->d, EG_ENOMEM, "out of memory");
	rc = parse_options(c, opts, s);
	eg_val_free(empty);
	return rc;
}

void eg__hw_specs_free(eg__hw_spec *s, size_t n)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (s[i].argv != NULL)
			for (char **a = s[i].argv; *a != NULL; a++)
				free(*a);
		free(s[i].argv);
	}
	free(s);
}

int eg__hw_specs_parse(const char *text, size_t len, const char *file,
		       eg__hw_spec **out, size_t *n, eg_diag *d)
{
	struct ctx c = {file, d};
	eg_val *root = NULL;
	const eg_val *list;
	eg__hw_spec *s = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	rc = eg_grid_yaml_load(text, len, file, &root, d);
	if (rc != EG_OK)
		return rc;
	if (eg_val_type_of(root) != EG_VAL_MAP) {
		rc = err_at(&c, root, EG_ETYPE, "expected a map with a "
			    "`boards` list");
		goto out;
	}
	{
		static const char *const keys[] = {"boards", NULL};

		rc = known_keys(&c, root, keys, "top level");
		if (rc != EG_OK)
			goto out;
	}
	list = eg_val_get(root, "boards");
	if (eg_val_type_of(list) != EG_VAL_LIST || eg_val_len(list) == 0) {
		rc = err_at(&c, list != NULL ? list : root, EG_EINVAL,
			    "`boards` must be a non-empty list");
		goto out;
	}
	count = eg_val_len(list);
	s = calloc(count, sizeof(*s));
	if (s == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		rc = parse_board(&c, eg_val_at(list, i), &s[i]);
		if (rc != EG_OK)
			goto out;
		for (size_t k = 0; k < i; k++)
			if (strcmp(s[k].name, s[i].name) == 0) {
				rc = err_at(&c, eg_val_get(eg_val_at(list, i),
							   "name"),
					    EG_EINVAL, "board name '%s' is used "
					    "twice", s[i].name);
				goto out;
			}
	}
	*out = s;
	*n = count;
	s = NULL;
out:
	eg__hw_specs_free(s, count);
	eg_val_free(root);
	return rc;
}

int eg__hw_specs_load(const char *path, eg__hw_spec **out, size_t *n,
		      eg_diag *d)
{
	FILE *f = fopen(path, "rb");
	eg_buf b = EG_BUF_INIT;
	char chunk[4096];
	size_t got;
	int rc;

	*out = NULL;
	*n = 0;
	if (f == NULL)
		return eg_diag_set(d, eg_err_from_errno(errno), "%s: %s", path,
				   strerror(errno));
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		eg_buf_append(&b, chunk, got);
	rc = ferror(f) ? eg_diag_set(d, EG_EIO, "%s: read error", path)
	     : eg_buf_failed(&b) ? eg_diag_set(d, EG_ENOMEM, "out of memory")
				 : EG_OK;
	fclose(f);
	if (rc == EG_OK)
		rc = eg__hw_specs_parse(eg_buf_str(&b), b.len, path, out, n, d);
	eg_buf_free(&b);
	return rc;
}
