/* test_grid.c - grid files: parsing, validation with positions, expansion
 * counts and order, defaults, canonical keys, --set, size limits. */
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "grid/grid.h"
#include "tests/harness.h"

#define NAME "grids/x.yaml"

static eg_grid *parse_ok(const char *text)
{
	eg_diag d = {{0}};
	eg_grid *g = NULL;
	int rc = eg_grid_parse(text, strlen(text), NAME, &g, &d);

	EG_CHECK_MSG(rc == EG_OK, "parse failed (%s): %s", eg_err_name(rc),
		     d.msg);
	return g;
}

/* Every trial's index, key and canonical JSON. */
struct trials {
	size_t n, cap;
	char (*key)[EG_KEY_HEX + 1];
	char **json;
};

static int collect(void *ud, const eg_trial_spec *t)
{
	struct trials *c = ud;

	EG_CHECK_INT(t->index, c->n);
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->key = realloc(c->key, c->cap * sizeof(*c->key));
		c->json = realloc(c->json, c->cap * sizeof(*c->json));
		EG_CHECK(c->key != NULL && c->json != NULL);
	}
	memcpy(c->key[c->n], t->key, sizeof(c->key[0]));
	c->json[c->n] = strdup(t->canonical_json);
	c->n++;
	return 0;
}

static struct trials expand_all(const eg_grid *g)
{
	struct trials c = {0, 0, NULL, NULL};
	eg_diag d = {{0}};

	EG_CHECK_MSG(eg_grid_expand(g, collect, &c, &d) == EG_OK, "%s", d.msg);
	EG_CHECK_INT(c.n, eg_grid_count(g));
	return c;
}

static void trials_free(struct trials *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->json[i]);
	free(c->json);
	free(c->key);
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, EG_KEY_HEX);
}

/* Sorted keys of a grid, for comparing trial sets. */
static struct trials sorted_keys(const char *text)
{
	eg_grid *g = parse_ok(text);
	struct trials c = expand_all(g);

	qsort(c.key, c.n, sizeof(c.key[0]), cmp_key);
	eg_grid_free(g);
	return c;
}

static size_t count_of(const char *text)
{
	eg_grid *g = parse_ok(text);
	size_t n = eg_grid_count(g);

	eg_grid_free(g);
	return n;
}

EG_TEST(counts_sweep_only)
{
	EG_CHECK_INT(count_of("sweep:\n  seed: [0, 1, 2]\n"
			      "  init.scale: [0.001, 0.01, 0.1, 1]\n"
			      "  model.activation: [sin, relu]\n"),
		     24);
	EG_CHECK_INT(count_of("name: one\n"), 1);
	EG_CHECK_INT(count_of("sweep: {}\n"), 1);
}

EG_TEST(counts_sweep_zip_exclude)
{
	static const char design[] =
		"name: memorization\n"
		"trial:\n"
		"  dataset: {name: fashion-mnist, train_size: 5000, test_size: 2000}\n"
		"  model: {arch: mlp, hidden: [1024], activation: sin, bias: false}\n"
		"  init: {scheme: normal, scale: 0.01}\n"
		"  train: {algo: bp, loss: xent, optimizer: sgd, lr: 0.01, batch: 128, epochs: 20}\n"
		"sweep:\n"
		"  model.activation: [sin, relu]\n"
		"  init.scale: [0.001, 0.01, 0.1, 1]\n"
		"  seed: [0, 1, 2]\n"
		"zip:\n"
		"  - {train.lr: [0.1, 0.01], train.batch: [256, 64]}\n"
		"exclude:\n"
		"  - {model.activation: relu, init.scale: 1}\n"
		"target: cpu\nmax_attempts: 3\npriority: 0\n";
	eg_grid *g = parse_ok(design);

	/* 2 x 4 x 3 x 2 = 48, minus relu x scale 1 x 3 seeds x 2 zip = 6. */
	EG_CHECK_INT(eg_grid_count(g), 42);
	EG_CHECK_STR(eg_grid_name(g), "memorization");
	eg_grid_free(g);
	/* Two zip groups multiply; 1.0 in an exclude matches 1. */
	EG_CHECK_INT(count_of("sweep: {seed: [0, 1]}\n"
			      "zip:\n"
			      "  - {train.lr: [0.1, 0.2, 0.3], train.batch: [1, 2, 3]}\n"
			      "  - {init.scale: [1, 2], model.activation: [sin, tanh]}\n"
			      "exclude:\n"
			      "  - {init.scale: 1.0, seed: 1}\n"),
		     2 * 3 * 2 - 3);
	/* An exclude entry matches defaults too: train.epochs is 10. */
	EG_CHECK_INT(count_of("sweep: {seed: [0, 1, 2]}\n"
			      "exclude:\n  - {train.epochs: 10, seed: 2}\n"),
		     2);
	/* Every trial excluded leaves an empty grid, not an error. */
	EG_CHECK_INT(count_of("sweep: {seed: [0, 1]}\n"
			      "exclude:\n  - {kind: train}\n"),
		     0);
}

static int collect_order(void *ud, const eg_trial_spec *t)
{
	eg_buf *b = ud;

	eg_buf_printf(b, "%lld%s%lld|", (long long)eg_val_get_int(t->params, "seed", -1),
		      eg_val_get_str(t->params, "model.activation", "?"),
		      (long long)eg_val_get_int(t->params, "train.batch", -1));
	return 0;
}

EG_TEST(expansion_order)
{
	eg_grid *g = parse_ok("zip:\n  - {train.batch: [8, 16]}\n"
			      "sweep:\n  seed: [1, 2]\n"
			      "  model.activation: [sin, tanh]\n"
			      "exclude:\n  - {seed: 2, model.activation: sin}\n");
	eg_buf b = EG_BUF_INIT;
	eg_diag d = {{0}};

	EG_CHECK_OK(eg_grid_expand(g, collect_order, &b, &d));
	/* Sweep axes slowest first in file order, then the zip group
	 * fastest; excluded combinations are skipped, not numbered. */
	EG_CHECK_STR(eg_buf_str(&b), "1sin8|1sin16|1tanh8|1tanh16|2tanh8|2tanh16|");
	eg_buf_free(&b);
	eg_grid_free(g);
}

static int stop_at_two(void *ud, const eg_trial_spec *t)
{
	(void)ud;
	return t->index == 2 ? 42 : 0;
}

EG_TEST(expand_stops_on_callback_error)
{
	eg_grid *g = parse_ok("sweep: {seed: [1, 2, 3, 4]}\n");

	EG_CHECK_INT(eg_grid_expand(g, stop_at_two, NULL, NULL), 42);
	eg_grid_free(g);
}

EG_TEST(keys_stable_under_reordering_nesting_and_number_spelling)
{
	struct trials a = sorted_keys(
		"trial:\n  train: {lr: 1, epochs: 10}\n  model: {hidden: [64]}\n"
		"sweep:\n  seed: [0, 1]\n  init.scale: [0.5, 2]\n");
	struct trials b = sorted_keys(
		"sweep:\n  init: {scale: [0.50, 2.0]}\n  seed: [0.0, 1.0]\n"
		"trial:\n  model.hidden: [64.0]\n  train.epochs: 1e1\n  train.lr: 1.0\n");
	struct trials c = sorted_keys(
		"trial:\n  train: {lr: 1, epochs: 10}\n  model: {hidden: [64]}\n"
		"sweep:\n  seed: [0, 1]\n  init.scale: [0.5, 2.5]\n");

	EG_CHECK_INT(a.n, 4);
	EG_CHECK_INT(b.n, 4);
	for (size_t i = 0; i < a.n; i++)
		EG_CHECK_STR(a.key[i], b.key[i]);
	/* One changed value gives two trials with new keys. */
	EG_CHECK(memcmp(a.key, c.key, sizeof(a.key[0]) * a.n) != 0);
	trials_free(&a);
	trials_free(&b);
	trials_free(&c);
}

EG_TEST(keys_distinct_and_match_canonicalize)
{
	eg_grid *g = parse_ok("sweep:\n  kind: [train, lottery, coverify, noop]\n"
			      "  prune.rate: [0.2, 0.5]\n  seed: [0, 1, 2]\n");
	struct trials c = expand_all(g);
	struct trials s;

	EG_CHECK_INT(c.n, 24);
	/* prune.rate is given, so it is kept (and keyed) also for the
	 * kinds that do not use it: all 24 trials differ. */
	s = c;
	s.key = malloc(c.n * sizeof(*c.key));
	memcpy(s.key, c.key, c.n * sizeof(*c.key));
	qsort(s.key, s.n, sizeof(s.key[0]), cmp_key);
	for (size_t i = 1; i < s.n; i++)
		EG_CHECK(strcmp(s.key[i - 1], s.key[i]) != 0);
	free(s.key);
	eg_grid_free(g);
	trials_free(&c);
}

struct recheck {
	size_t n;
};

/* The cached tree of expansion equals a fresh canonicalization of the
 * same parameters, for every trial (kind changes on a fast axis, so the
 * cache is rebuilt and patched in turn). */
static int recanonicalize(void *ud, const eg_trial_spec *t)
{
	struct recheck *r = ud;
	eg_val *canon = NULL;
	eg_diag d = {{0}};
	char key[EG_KEY_HEX + 1];
	eg_buf b = EG_BUF_INIT;

	EG_CHECK_MSG(eg_grid_canonicalize(t->params, &canon, &d) == EG_OK, "%s",
		     d.msg);
	EG_CHECK(eg_val_equal(canon, t->params));
	eg_val_to_json(canon, &b);
	EG_CHECK_STR(eg_buf_str(&b), t->canonical_json);
	EG_CHECK_OK(eg_grid_key(canon, key));
	EG_CHECK_STR(key, t->key);
	eg_val_free(canon);
	eg_buf_free(&b);
	r->n++;
	return 0;
}

EG_TEST(expansion_tree_cache_matches_fresh_canonical)
{
	eg_grid *g = parse_ok(
		"sweep:\n  prune.rate: [0.2, 0.4]\n  dataset.name: [blobs, fashion-mnist]\n"
		"  seed: [0, 1]\n  kind: [lottery, train, noop, coverify, lottery]\n");
	struct recheck r = {0};

	EG_CHECK_OK(eg_grid_expand(g, recanonicalize, &r, NULL));
	EG_CHECK_INT(r.n, 2 * 2 * 2 * 5);
	eg_grid_free(g);
}

EG_TEST(canonicalize_nested_dotted_and_numbers)
{
	eg_val *a = eg_val_map(), *b = eg_val_map(), *ca = NULL, *cb = NULL;
	char ka[EG_KEY_HEX + 1], kb[EG_KEY_HEX + 1];
	eg_diag d = {{0}};
	struct trials t;

	EG_CHECK_OK(eg_val_set(a, "train.lr", eg_val_float(1.0)));
	EG_CHECK_OK(eg_val_set(a, "seed", eg_val_int(3)));
	EG_CHECK_OK(eg_val_set_path(b, "seed", eg_val_float(3.0)));
	EG_CHECK_OK(eg_val_set_path(b, "train.lr", eg_val_int(1)));
	EG_CHECK_OK(eg_grid_canonicalize(a, &ca, &d));
	EG_CHECK_OK(eg_grid_canonicalize(b, &cb, &d));
	EG_CHECK_OK(eg_grid_key(ca, ka));
	EG_CHECK_OK(eg_grid_key(cb, kb));
	EG_CHECK_STR(ka, kb);
	/* The same trial from a grid file has the same key. */
	t = sorted_keys("trial: {seed: 3, train: {lr: 1}}\n");
	EG_CHECK_INT(t.n, 1);
	EG_CHECK_STR(t.key[0], ka);
	trials_free(&t);
	eg_val_free(cb);
	/* And a different value gives a different key. */
	EG_CHECK_OK(eg_val_set_path(b, "train.lr", eg_val_float(1.5)));
	EG_CHECK_OK(eg_grid_canonicalize(b, &cb, &d));
	EG_CHECK_OK(eg_grid_key(cb, kb));
	EG_CHECK(strcmp(ka, kb) != 0);
	/* Validation applies here too, without a file position. */
	EG_CHECK_OK(eg_val_set_path(b, "train.lr", eg_val_float(-1)));
	eg_val_free(ca);
	EG_CHECK_INT(eg_grid_canonicalize(b, &ca, &d), EG_ERANGE);
	EG_CHECK_STR(d.msg, "params: train.lr: must be > 0 (got -1)");
	eg_val_free(a);
	eg_val_free(b);
	eg_val_free(cb);
}

/* The canonical JSON of a one-trial grid. */
static char *one_json(const char *text)
{
	eg_grid *g = parse_ok(text);
	struct trials c = expand_all(g);
	char *s;

	EG_CHECK_INT(c.n, 1);
	s = c.json[0];
	c.json[0] = NULL;
	c.n = 0;
	trials_free(&c);
	eg_grid_free(g);
	return s;
}

EG_TEST(defaults_filled_per_kind)
{
	char *train = one_json("name: t\n");
	char *lot = one_json("trial: {kind: lottery, prune.rate: 0.3}\n");
	char *cov = one_json("trial: {kind: coverify}\n");
	char *noop = one_json("trial: {kind: noop, noop.metrics: {b: 1.0, a: 2}}\n");
	char *blobs = one_json("trial: {dataset.name: blobs, hls.word_bits: 8}\n");

	EG_CHECK(strstr(train, "\"lr\":0.01") != NULL);
	EG_CHECK(strstr(train, "\"hidden\":[256]") != NULL);
	EG_CHECK(strstr(train, "\"classes\":null") != NULL);
	EG_CHECK(strstr(train, "\"activation\":\"relu\"") != NULL);
	EG_CHECK(strstr(train, "\"kind\":\"train\"") != NULL);
	EG_CHECK(strstr(train, "\"prune\"") == NULL);
	EG_CHECK(strstr(train, "\"hls\"") == NULL);
	EG_CHECK(strstr(train, "\"noop\"") == NULL);
	EG_CHECK(strstr(train, "\"dim\"") == NULL);
	EG_CHECK(strstr(train, "train_images") == NULL);
	/* Keys are sorted at every level. */
	{
		static const char head[] = "{\"dataset\":{\"classes\":null,\"label_noise\":0,";

		EG_CHECK(strncmp(train, head, strlen(head)) == 0);
	}
	/* prune.output_rate defaults to half the trial's prune.rate. */
	EG_CHECK(strstr(lot, "\"output_rate\":0.15") != NULL);
	EG_CHECK(strstr(lot, "\"rate\":0.3") != NULL);
	EG_CHECK(strstr(lot, "\"transfer\":{\"classes\":null,\"freeze\":\"none\",\"init\":\"source\"}") != NULL);
	EG_CHECK(strstr(lot, "\"hls\"") == NULL);
	EG_CHECK(strstr(cov, "\"hls\":{\"accum_bits\":32,\"accum_int_bits\":16,\"int_bits\":6,"
			     "\"overflow\":\"wrap\",\"round\":\"trn\",\"word_bits\":16}") != NULL);
	EG_CHECK(strstr(cov, "\"coverify\":{\"fault\":null,\"probes\":32,\"tolerance\":0.01}") != NULL);
	EG_CHECK(strstr(cov, "\"prune\"") == NULL);
	EG_CHECK_STR(noop, "{\"kind\":\"noop\",\"noop\":{\"fail\":false,\"metrics\":{\"a\":2,\"b\":1},"
			   "\"ms\":0},\"seed\":0}");
	/* blobs adds its own keys; another kind's group given is kept. */
	EG_CHECK(strstr(blobs, "\"dim\":20") != NULL);
	EG_CHECK(strstr(blobs, "\"num_classes\":10") != NULL);
	EG_CHECK(strstr(blobs, "\"spread\":1") != NULL);
	EG_CHECK(strstr(blobs, "\"hls\":{\"word_bits\":8}") != NULL);
	free(train);
	free(lot);
	free(cov);
	free(noop);
	free(blobs);
}

EG_TEST(list_and_map_axis_values)
{
	eg_grid *g = parse_ok(
		"trial: {kind: coverify, model.arch: cnn}\n"
		"sweep:\n"
		"  model.hidden: [[], [128], [256, 128]]\n"
		"  model.conv: [[{filters: 8, kernel: 3}], [{kernel: 5, pool: 2, filters: 4}]]\n"
		"  coverify.fault: [null, {layer: 1, kind: bitflip, bit: 3}]\n");
	struct trials c = expand_all(g);

	EG_CHECK_INT(c.n, 12);
	EG_CHECK(strstr(c.json[0], "\"hidden\":[]") != NULL);
	EG_CHECK(strstr(c.json[0], "\"conv\":[{\"filters\":8,\"kernel\":3,\"pool\":1}]") != NULL);
	EG_CHECK(strstr(c.json[0], "\"fault\":null") != NULL);
	EG_CHECK(strstr(c.json[1], "\"fault\":{\"bit\":3,\"kind\":\"bitflip\",\"layer\":1,\"rate\":1}") != NULL);
	EG_CHECK(strstr(c.json[2], "\"conv\":[{\"filters\":4,\"kernel\":5,\"pool\":2}]") != NULL);
	EG_CHECK(strstr(c.json[11], "\"hidden\":[256,128]") != NULL);
	trials_free(&c);
	eg_grid_free(g);
}

EG_TEST(set_overrides_and_collapses)
{
	eg_grid *g = parse_ok("trial: {train.lr: 0.1}\n"
			      "sweep:\n  seed: [0, 1, 2]\n  model.hidden: [[8], [16]]\n"
			      "zip:\n  - {train.batch: [1, 2], train.epochs: [3, 4]}\n");
	eg_diag d = {{0}};
	char hash0[65];
	struct trials c;

	EG_CHECK_INT(eg_grid_count(g), 12);
	snprintf(hash0, sizeof(hash0), "%s", eg_grid_hash(g));
	EG_CHECK_OK(eg_grid_set(g, "train.lr=0.5", &d));
	EG_CHECK(strcmp(hash0, eg_grid_hash(g)) != 0);
	EG_CHECK_OK(eg_grid_set(g, "model.hidden=[1024, 512]", &d));
	EG_CHECK_INT(eg_grid_count(g), 6);
	c = expand_all(g);
	for (size_t i = 0; i < c.n; i++) {
		EG_CHECK(strstr(c.json[i], "\"lr\":0.5") != NULL);
		EG_CHECK(strstr(c.json[i], "\"hidden\":[1024,512]") != NULL);
	}
	trials_free(&c);
	/* Refused on a zip axis, and a bad value names the assignment;
	 * the grid is unchanged after a refusal. */
	EG_CHECK_INT(eg_grid_set(g, "train.batch=7", &d), EG_EINVAL);
	EG_CHECK(strncmp(d.msg, "--set train.batch=7: ", 21) == 0);
	EG_CHECK_INT(eg_grid_set(g, "train.lr=-2", &d), EG_ERANGE);
	EG_CHECK_STR(d.msg, "--set train.lr=-2: train.lr: must be > 0 (got -2)");
	EG_CHECK_INT(eg_grid_set(g, "train.lrr=1", &d), EG_EUNKNOWN_KEY);
	EG_CHECK_INT(eg_grid_set(g, "noequals", &d), EG_EINVAL);
	EG_CHECK_INT(eg_grid_set(g, "model.hidden=[1, 2", &d), EG_EPARSE);
	EG_CHECK(strncmp(d.msg, "--set model.hidden=[1, 2: YAML: ", 32) == 0);
	/* A combination error (conv without cnn) is refused and rolled back. */
	EG_CHECK_INT(eg_grid_set(g, "model.conv=[{filters: 2, kernel: 3}]", &d), EG_EINVAL);
	EG_CHECK_INT(eg_grid_count(g), 6);
	EG_CHECK_OK(eg_grid_set(g, "seed=9", &d));
	EG_CHECK_INT(eg_grid_count(g), 2);
	eg_grid_free(g);
}

EG_TEST(grid_hash_ignores_spelling)
{
	eg_grid *a = parse_ok("name: g\ntrial: {train: {lr: 1}}\nsweep: {seed: [1, 2]}\n");
	eg_grid *b = parse_ok("name: g\nsweep:\n  seed: [1.0, 2]\ntrial:\n  train.lr: 1.0\n");
	eg_grid *c = parse_ok("name: g\ntrial: {train: {lr: 1}}\nsweep: {seed: [1, 3]}\n");

	EG_CHECK_STR(eg_grid_hash(a), eg_grid_hash(b));
	EG_CHECK(strcmp(eg_grid_hash(a), eg_grid_hash(c)) != 0);
	EG_CHECK_INT(strlen(eg_grid_hash(a)), 64);
	EG_CHECK_STR(eg_grid_target(a), "cpu");
	EG_CHECK_INT(eg_grid_max_attempts(a), 3);
	EG_CHECK_INT(eg_grid_priority(a), 0);
	EG_CHECK(strstr(eg_grid_text(b), "train.lr: 1.0") != NULL);
	eg_grid_free(a);
	eg_grid_free(b);
	eg_grid_free(c);
}

EG_TEST(scalars_and_scheduling_fields)
{
	eg_grid *g = parse_ok("target: fpga:pynq-z2\nmax_attempts: 1e2\npriority: -5\n"
			      "trial: {dataset.label_noise: .5, model.bias: FALSE, "
			      "seed: +7, train.weight_decay: 1e-3, dataset.classes: [0, 3]}\n");
	struct trials c = expand_all(g);

	EG_CHECK_STR(eg_grid_target(g), "fpga:pynq-z2");
	EG_CHECK_INT(eg_grid_max_attempts(g), 100);
	EG_CHECK_INT(eg_grid_priority(g), -5);
	EG_CHECK_STR(eg_grid_name(g), "x");
	EG_CHECK(strstr(c.json[0], "\"label_noise\":0.5") != NULL);
	EG_CHECK(strstr(c.json[0], "\"bias\":false") != NULL);
	EG_CHECK(strstr(c.json[0], "\"seed\":7") != NULL);
	EG_CHECK(strstr(c.json[0], "\"weight_decay\":0.001") != NULL);
	EG_CHECK(strstr(c.json[0], "\"classes\":[0,3]") != NULL);
	trials_free(&c);
	eg_grid_free(g);
}

struct bad {
	const char *text;
	const char *prefix; /* "grids/x.yaml:L:C: " */
	int rc;
};

static const struct bad bad_grids[] = {
	{"foo: 1\n", NAME ":1:1: unknown key 'foo'", EG_EUNKNOWN_KEY},
	{"trial:\n  train.lrr: 0.1\n", NAME ":2:3: unknown parameter 'train.lrr'", EG_EUNKNOWN_KEY},
	{"trial:\n  train:\n    lrr: 1\n", NAME ":3:5: unknown parameter 'train.lrr'", EG_EUNKNOWN_KEY},
	{"trial:\n  train.batch: abc\n", NAME ":2:16: train.batch: expected an integer", EG_ETYPE},
	{"trial:\n  train.lr: -0.1\n", NAME ":2:13: train.lr: must be > 0 (got -0.1)", EG_ERANGE},
	{"trial: {model.activation: relux}\n", NAME ":1:27: model.activation: must be one of", EG_ERANGE},
	{"trial: [1, 2\n", NAME ":2:1: YAML: ", EG_EPARSE},
	{"name: x\nname: y\n", NAME ":2:1: duplicate key 'name' (first at 1:1)", EG_EPARSE},
	{"trial: &a {seed: 1}\n", NAME ":1:8: anchors", EG_EPARSE},
	{"trial: {seed: 1}\nsweep: {seed: *x}\n", NAME ":2:15: aliases", EG_EPARSE},
	{"trial:\n  <<: {seed: 1}\n", NAME ":2:3: merge keys", EG_EPARSE},
	{"zip:\n  - {train.lr: [0.1, 0.2], train.batch: [1, 2, 3]}\n",
	 NAME ":2:28: zip group 1: train.lr has 2 values but train.batch has 3", EG_ERANGE},
	{"sweep:\n  seed: []\n", NAME ":2:9: seed: an axis needs at least one value", EG_ERANGE},
	{"sweep:\n  seed: 3\n", NAME ":2:9: seed: an axis needs a list", EG_ETYPE},
	{"sweep:\n  seed: [1]\nzip:\n  - {seed: [1, 2]}\n", NAME ":4:6: seed is already an axis (at 2:3)", EG_EINVAL},
	{"exclude:\n  - {train.lrr: 1}\n", NAME ":2:6: unknown parameter 'train.lrr'", EG_EUNKNOWN_KEY},
	{"exclude:\n  - {train.lr: -1}\n", NAME ":2:16: train.lr: must be > 0", EG_ERANGE},
	{"trial:\n  model.arch: cnn\n  model.conv: [{filters: 8, kernal: 3}]\n",
	 NAME ":3:29: model.conv[0]: unknown key 'kernal'", EG_EUNKNOWN_KEY},
	{"trial:\n  model.arch: cnn\n  model.conv: [{filters: 8}]\n",
	 NAME ":3:16: model.conv[0]: missing key 'kernel'", EG_ETYPE},
	{"trial: {model.circulant_block: 12}\n", NAME ":1:32: model.circulant_block: must be 0 or a power of two", EG_ERANGE},
	{"target: gpu\n", NAME ":1:9: target: must be cpu or fpga:<board type>", EG_ERANGE},
	{"target: \"fpga:\"\n", NAME ":1:9: target: must be cpu", EG_ERANGE},
	{"trial:\n  dataset.name: idx\n  dataset.train_images: a\n",
	 NAME ":2:17: trial 0: dataset.name is idx but dataset.train_labels is not given", EG_EINVAL},
	{"max_attempts: 0\n", NAME ":1:15: max_attempts: must be in [1, 100] (got 0)", EG_ERANGE},
	/* Sizes the kernels keep in ints have upper bounds: 2^32 + 8 must
	 * not become 8 hidden units. */
	{"trial: {model.hidden: [4294967304]}\n", NAME ":1:24: model.hidden", EG_ERANGE},
	{"trial: {train.batch: 4294967296}\n", NAME ":1:22: train.batch", EG_ERANGE},
	{"trial:\n  model.arch: cnn\n  model.conv: [{filters: 8, kernel: 3, pool: 99999999999}]\n",
	 NAME ":3:46: model.conv[0].pool: must be in [1, 1024]", EG_ERANGE},
	{"trial:\n  train.lr: 0.1\n  train:\n    lr: 0.2\n", NAME ":4:5: train.lr is given twice (first at 2:3)", EG_EINVAL},
	{"trial: {model.bias: \"true\"}\n", NAME ":1:21: model.bias: expected a bool", EG_ETYPE},
	{"trial:\n  model.conv: [{filters: 8, kernel: 3}]\n", NAME ":2:15: trial 0: model.conv needs model.arch cnn", EG_EINVAL},
	{"trial: {dataset.classes: [1, 2, 1]}\n", NAME ":1:33: dataset.classes: 1 is listed twice", EG_ERANGE},
	{"trial: {dataset.classes: [3, 10]}\n", NAME ":1:30: trial 0: dataset.classes: class 10 does not exist", EG_ERANGE},
	{"trial: {seed: !!int 3}\n", NAME ":1:15: tags", EG_EPARSE},
	{"trial: {seed: 99999999999999999999}\n", NAME ":1:15: integer 99999999999999999999 does not fit", EG_ERANGE},
	{"name: a\n---\nname: b\n", NAME ":2:1: only one YAML document", EG_EPARSE},
	{"- 1\n", NAME ":1:1: a grid must be a map", EG_ETYPE},
	{"", NAME ":1:1: the grid is empty", EG_EPARSE},
	{"trial: {kind: coverify, coverify.fault: {layer: 0, kind: flip}}\n",
	 NAME ":1:58: coverify.fault.kind: must be one of bitflip, stuck0, stuck1", EG_ERANGE},
	{"trial: {train.epochs: 100001}\n", NAME ":1:23: train.epochs: must be in [0, 100000] (got 100001)", EG_ERANGE},
	{"trial: {hls.word_bits: 1}\n", NAME ":1:24: hls.word_bits: must be in [2, 64]", EG_ERANGE},
	{"trial: {train.momentum: 1}\n", NAME ":1:25: train.momentum: must be in [0, 1) (got 1)", EG_ERANGE},
	{"trial:\n  train: 3\n", NAME ":2:10: train: expected a map", EG_ETYPE},
	{"trial: {kind: noop, noop.metrics: {acc: high}}\n", NAME ":1:41: noop.metrics.acc: expected a number", EG_ETYPE},
	{"zip:\n  - {}\n", NAME ":2:5: zip group 1 is empty", EG_ERANGE},
	{"priority: 1.5\n", NAME ":1:11: priority: expected an integer", EG_ETYPE},
	{"trial: {train.batch: 12.5}\n", NAME ":1:22: train.batch: expected an integer, got float 12.5", EG_ETYPE},
	{"name: \"\"\n", NAME ":1:7: name: expected a non-empty string", EG_ERANGE},
	{"trial: {prune.rate: 1}\n", NAME ":1:21: prune.rate: must be in (0, 1) (got 1)", EG_ERANGE},
	{"trial: {kind: traine}\n", NAME ":1:15: kind: must be one of train, lottery, coverify, noop", EG_ERANGE},
	{"sweep:\n  model: {hidden: [[0]]}\n", NAME ":2:21: model.hidden: must be in [1, 16777216] (got 0)", EG_ERANGE},
	{"exclude:\n  - {}\n", NAME ":2:5: exclude entry 1 is empty", EG_ERANGE},
	/* A group map with no parameters in it is as empty as {}. */
	{"zip:\n  - {train: {}}\n", NAME ":2:5: zip group 1 is empty", EG_ERANGE},
	{"trial: {kind: noop}\nexclude:\n  - {train: {}}\n", NAME ":3:5: exclude entry 1 is empty", EG_ERANGE},
	{"trial:\n  dataset.classes: []\n", NAME ":2:20: dataset.classes: must not be empty", EG_ERANGE},
};

EG_TEST(malformed_grids_name_their_position)
{
	size_t n = sizeof(bad_grids) / sizeof(bad_grids[0]);

	EG_CHECK(n >= 25);
	for (size_t i = 0; i < n; i++) {
		eg_diag d = {{0}};
		eg_grid *g = NULL;
		int rc = eg_grid_parse(bad_grids[i].text, strlen(bad_grids[i].text),
				       NAME, &g, &d);

		EG_CHECK_MSG(rc == bad_grids[i].rc, "case %zu (%s): %s instead of %s: %s",
			     i, bad_grids[i].text, eg_err_name(rc),
			     eg_err_name(bad_grids[i].rc), d.msg);
		EG_CHECK(g == NULL);
		EG_CHECK_MSG(strncmp(d.msg, bad_grids[i].prefix,
				     strlen(bad_grids[i].prefix)) == 0,
			     "case %zu: got \"%s\", want prefix \"%s\"", i, d.msg,
			     bad_grids[i].prefix);
	}
}

EG_TEST(missing_file_is_enoent)
{
	eg_diag d = {{0}};
	eg_grid *g = NULL;
	const char *path = eg_test_path("no-such-grid.yaml");
	char want[4200];

	EG_CHECK_INT(eg_grid_load(path, &g, &d), EG_ENOENT);
	EG_CHECK(g == NULL);
	snprintf(want, sizeof(want), "%s: ", path);
	EG_CHECK(strncmp(d.msg, want, strlen(want)) == 0);
}

EG_TEST(load_from_file_uses_stem)
{
	const char *path = eg_test_write_file("my-grid.yaml",
					      "sweep: {seed: [1, 2]}\n");
	eg_diag d = {{0}};
	eg_grid *g = NULL;

	EG_CHECK_MSG(eg_grid_load(path, &g, &d) == EG_OK, "%s", d.msg);
	EG_CHECK_STR(eg_grid_name(g), "my-grid");
	EG_CHECK_INT(eg_grid_count(g), 2);
	eg_grid_free(g);
}

/* "sweep:\n  seed: [0, 1, ... a-1]\n  train.batch: [1, ... b]\n" */
static char *big_grid(size_t a, size_t b)
{
	eg_buf t = EG_BUF_INIT;

	eg_buf_puts(&t, "sweep:\n  seed: [");
	for (size_t i = 0; i < a; i++)
		eg_buf_printf(&t, "%s%zu", i ? ", " : "", i);
	eg_buf_puts(&t, "]\n  train.batch: [");
	for (size_t i = 0; i < b; i++)
		eg_buf_printf(&t, "%s%zu", i ? ", " : "", i + 1);
	eg_buf_puts(&t, "]\n");
	return t.data;
}

EG_TEST(size_limit)
{
	char *ok = big_grid(1000, 1000), *over = big_grid(101, 9901);
	eg_diag d = {{0}};
	eg_grid *g = NULL;

	EG_CHECK_OK(eg_grid_parse(ok, strlen(ok), NAME, &g, &d));
	EG_CHECK_INT(eg_grid_count(g), 1000000);
	eg_grid_free(g);
	EG_CHECK_INT(eg_grid_parse(over, strlen(over), NAME, &g, &d), EG_ETOO_BIG);
	EG_CHECK_STR(d.msg, NAME ":1:1: grid has 1000001 trials, over the limit of 1000000");
	free(ok);
	free(over);
	/* Products that overflow 64 bits are caught, not wrapped. */
	{
		eg_buf t = EG_BUF_INIT;

		eg_buf_puts(&t, "name: huge\nzip:\n");
		for (int grp = 0; grp < 8; grp++) {
			eg_buf_puts(&t, "  - {");
			eg_buf_printf(&t, "%s: [", grp == 0 ? "seed" : grp == 1 ? "train.batch" :
				      grp == 2 ? "train.epochs" : grp == 3 ? "noop.ms" :
				      grp == 4 ? "prune.rounds" : grp == 5 ? "coverify.probes" :
				      grp == 6 ? "dataset.train_size" : "dataset.test_size");
			for (int i = 0; i < 300; i++)
				eg_buf_printf(&t, "%s%d", i ? ", " : "", i + 1);
			eg_buf_puts(&t, "]}\n");
		}
		EG_CHECK_INT(eg_grid_parse(t.data, t.len, NAME, &g, &d), EG_ETOO_BIG);
		EG_CHECK_STR(d.msg, NAME ":2:1: grid has more than 2^64 trials, over the limit of 1000000");
		eg_buf_free(&t);
	}
}

static int count_keys(void *ud, const eg_trial_spec *t)
{
	uint64_t *acc = ud;

	/* Fold the keys so the work cannot be skipped. */
	acc[0]++;
	acc[1] ^= strtoull(t->key + 16, NULL, 16);
	return 0;
}

EG_TEST(expansion_rate)
{
	char *text = big_grid(250, 800);
	eg_grid *g = NULL;
	eg_diag d = {{0}};
	uint64_t acc[2] = {0, 0};
	struct timespec t0, t1;
	double s;

	EG_CHECK_OK(eg_grid_parse(text, strlen(text), NAME, &g, &d));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EG_CHECK_OK(eg_grid_expand(g, count_keys, acc, &d));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	EG_CHECK_INT(acc[0], 200000);
	EG_CHECK(acc[1] != 0);
	fprintf(stderr, "expanded 200000 trials in %.3f s (%.0f trials/s)\n", s,
		200000 / s);
	/* 1,000,000 trials in well under 30 s means > 33,000/s with margin
	 * for a loaded machine and sanitizers. */
	EG_CHECK(200000 / s > 20000);
	eg_grid_free(g);
	free(text);
}

EG_TEST(docs_list_every_parameter)
{
	FILE *f = fopen("docs/grid.md", "rb");
	eg_buf b = EG_BUF_INIT;
	char chunk[4096];
	size_t n;

	EG_CHECK(f != NULL);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		eg_buf_append(&b, chunk, n);
	fclose(f);
	EG_CHECK(eg_grid_param_count() > 50);
	for (size_t i = 0; i < eg_grid_param_count(); i++) {
		char want[128];

		snprintf(want, sizeof(want), "`%s`", eg_grid_param_name(i));
		EG_CHECK_MSG(strstr(eg_buf_str(&b), want) != NULL,
			     "docs/grid.md does not document %s", want);
	}
	EG_CHECK(eg_grid_param_name(eg_grid_param_count()) == NULL);
	eg_buf_free(&b);
}

EG_TEST_MAIN({"counts_sweep_only", counts_sweep_only, 10},
	     {"counts_sweep_zip_exclude", counts_sweep_zip_exclude, 10},
	     {"expansion_order", expansion_order, 10},
	     {"expand_stops_on_callback_error", expand_stops_on_callback_error, 10},
	     {"keys_stable_under_reordering_nesting_and_number_spelling",
	      keys_stable_under_reordering_nesting_and_number_spelling, 10},
	     {"keys_distinct_and_match_canonicalize", keys_distinct_and_match_canonicalize, 10},
	     {"expansion_tree_cache_matches_fresh_canonical",
	      expansion_tree_cache_matches_fresh_canonical, 10},
	     {"canonicalize_nested_dotted_and_numbers", canonicalize_nested_dotted_and_numbers, 10},
	     {"defaults_filled_per_kind", defaults_filled_per_kind, 10},
	     {"list_and_map_axis_values", list_and_map_axis_values, 10},
	     {"set_overrides_and_collapses", set_overrides_and_collapses, 10},
	     {"grid_hash_ignores_spelling", grid_hash_ignores_spelling, 10},
	     {"scalars_and_scheduling_fields", scalars_and_scheduling_fields, 10},
	     {"malformed_grids_name_their_position", malformed_grids_name_their_position, 10},
	     {"missing_file_is_enoent", missing_file_is_enoent, 10},
	     {"load_from_file_uses_stem", load_from_file_uses_stem, 10},
	     {"size_limit", size_limit, 20},
	     {"expansion_rate", expansion_rate, 30},
	     {"docs_list_every_parameter", docs_list_every_parameter, 10})
