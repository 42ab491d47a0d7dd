/*
 * data.c - the train, test and validation sets of a learning trial, made
 * from dataset.* parameters in a fixed order:
 *
 *   1. load (Fashion-MNIST and IDX files are read once per process and
 *      cached: a grid of hundreds of trials reads them once);
 *   2. class subset (relabelled 0..k-1) and a seeded random subset of
 *      train_size / test_size examples, in one copy from the cached set;
 *   3. label noise on the training set;
 *   4. normalization (per-image, or global with the training set's
 *      statistics applied to the test set);
 *   5. the validation split, carved from the normalized training set.
 *
 * Every random choice draws from the trial's seed through a named stream,
 * so changing train_size does not change which test examples are used.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rng.h"
#include "trials/trials_int.h"

/* Blobs with the same dim and class count are one fixed problem: the
 * centres do not depend on the trial seed, only the samples do. */
#define BLOBS_CENTERS_SEED 0x5eedb10bULL
#define BLOBS_TRAIN_N 2000
#define BLOBS_TEST_N 1000

/* The process-wide cache of loaded datasets (one entry per source). */
struct cached {
	char source[4096];
	eg_dataset train, test;
	struct cached *next;
};
static struct cached *cache;

void eg_trial_cache_clear(void)
{
	while (cache != NULL) {
		struct cached *next = cache->next;

		eg_dataset_free(&cache->train);
		eg_dataset_free(&cache->test);
		free(cache);
		cache = next;
	}
}

static int load_source(const eg_val *params, struct cached **out,
		       eg_diag *d)
{
	const char *name = eg_val_get_str(params, "dataset.name", "fashion-mnist");
	char source[4096];
	struct cached *c;
	int rc;

	if (strcmp(name, "idx") == 0)
		snprintf(source, sizeof(source), "idx:%s|%s|%s|%s",
			 eg_val_get_str(params, "dataset.train_images", ""),
			 eg_val_get_str(params, "dataset.train_labels", ""),
			 eg_val_get_str(params, "dataset.test_images", ""),
			 eg_val_get_str(params, "dataset.test_labels", ""));
	else
		snprintf(source, sizeof(source), "%s", name);
	for (c = cache; c != NULL; c = c->next) {
		if (strcmp(c->source, source) == 0) {
			*out = c;
			return EG_OK;
		}
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return eg_diag_set(d, EG_ENOMEM, "dataset: out of memory");
	snprintf(c->source, sizeof(c->source), "%s", source);
	if (strcmp(name, "fashion-mnist") == 0) {
		rc = eg_dataset_fashion_mnist(true, &c->train, d);
		if (rc == EG_OK)
			rc = eg_dataset_fashion_mnist(false, &c->test, d);
	} else if (strcmp(name, "idx") == 0) {
		rc = eg_dataset_from_idx(
			eg_val_get_str(params, "dataset.train_images", ""),
			eg_val_get_str(params, "dataset.train_labels", ""),
			&c->train, d);
		if (rc == EG_OK)
			rc = eg_dataset_from_idx(
				eg_val_get_str(params, "dataset.test_images", ""),
				eg_val_get_str(params, "dataset.test_labels", ""),
				&c->test, d);
	} else {
		rc = eg_diag_set(d, EG_EINVAL, "dataset.name: unknown '%s'", name);
	}
	if (rc != EG_OK) {
		eg_dataset_free(&c->train);
		eg_dataset_free(&c->test);
		free(c);
		return rc;
	}
	c->next = cache;
	cache = c;
	*out = c;
	return EG_OK;
}

/*
 * Copies into `out` up to `want` examples of `src` (all if want == 0)
 * whose label is in `classes` (all if nclasses == 0), relabelled to the
 * position in that list, chosen at random by `rng`.
 */
static int subset(const eg_dataset *src, const int64_t *classes,
		  int nclasses, size_t want, eg_rng *rng, const char *what,
		  eg_dataset *out, eg_diag *d)
{
	int32_t *idx = malloc((src->n ? src->n : 1) * sizeof(*idx));
	/* One entry per class of the source (IDX labels and blobs go far
	 * past any fixed size): a label without an entry would silently
	 * drop its examples. */
	int *map = malloc((size_t)(src->classes > 0 ? src->classes : 1) *
			  sizeof(*map));
	size_t n = 0;

	if (idx == NULL || map == NULL) {
		free(idx);
		free(map);
		return eg_diag_set(d, EG_ENOMEM, "dataset: out of memory");
	}
	for (int c = 0; c < src->classes; c++)
		map[c] = nclasses == 0 ? c : -1;
	for (int k = 0; k < nclasses; k++) {
		if (classes[k] < 0 || classes[k] >= src->classes) {
			free(idx);
			free(map);
			return eg_diag_set(d, EG_ERANGE,
					   "dataset.classes: class %lld does "
					   "not exist (the dataset has %d "
					   "classes)",
					   (long long)classes[k], src->classes);
		}
		map[classes[k]] = k;
	}
	for (size_t i = 0; i < src->n; i++)
		if (src->y[i] >= 0 && src->y[i] < src->classes &&
		    map[src->y[i]] >= 0)
			idx[n++] = (int32_t)i;
	eg_rng_shuffle(rng, idx, n);
	if (want > n) {
		free(idx);
		free(map);
		return eg_diag_set(d, EG_ERANGE,
				   "dataset.%s_size: %zu examples asked, the "
				   "set has %zu", what, want, n);
	}
	if (want != 0)
		n = want;

	memset(out, 0, sizeof(*out));
	out->c = src->c;
	out->h = src->h;
	out->w = src->w;
	out->dim = src->dim;
	out->classes = nclasses != 0 ? nclasses : src->classes;
	out->n = n;
	out->x = malloc((n ? n : 1) * src->dim * sizeof(float));
	out->y = malloc((n ? n : 1) * sizeof(int32_t));
	if (out->x == NULL || out->y == NULL) {
		free(idx);
		free(map);
		eg_dataset_free(out);
		return eg_diag_set(d, EG_ENOMEM, "dataset: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(out->x + i * src->dim, src->x + (size_t)idx[i] * src->dim,
		       src->dim * sizeof(float));
		out->y[i] = map[src->y[idx[i]]];
	}
	free(idx);
	free(map);
	return EG_OK;
}

int eg__data_prepare(const eg_val *params, eg__data *out, eg_diag *d)
{
	uint64_t seed = (uint64_t)eg_val_get_int(params, "seed", 0);
	const char *name = eg_val_get_str(params, "dataset.name", "fashion-mnist");
	const char *norm = eg_val_get_str(params, "dataset.normalize", "per-image");
	size_t train_n = (size_t)eg_val_get_int(params, "dataset.train_size", 0);
	size_t test_n = (size_t)eg_val_get_int(params, "dataset.test_size", 0);
	double noise = eg_val_get_num(params, "dataset.label_noise", 0);
	double val_split = eg_val_get_num(params, "train.val_split", 0);
	const eg_val *cls = eg_val_get_path(params, "dataset.classes");
	int64_t *classes = NULL;
	int nclasses = 0;
	eg_rng rng;
	int rc;

	memset(out, 0, sizeof(*out));
	/* Kept as int64 until subset() range-checks them: an int cast would
	 * turn class 2^32 into class 0.  Distinct classes of a set of at most
	 * MAX_CLASSES (kernels/dataset.c) make a longer list an error there. */
	if (eg_val_len(cls) > INT_MAX)
		return eg_diag_set(d, EG_ETOO_BIG, "dataset.classes: too long");
	classes = malloc((eg_val_len(cls) ? eg_val_len(cls) : 1) *
			 sizeof(*classes));
	if (classes == NULL)
		return eg_diag_set(d, EG_ENOMEM, "dataset: out of memory");
	for (size_t i = 0; i < eg_val_len(cls); i++)
		classes[nclasses++] = eg_val_as_int(eg_val_at(cls, i));

	if (strcmp(name, "blobs") == 0) {
		size_t dim = (size_t)eg_val_get_int(params, "dataset.dim", 20);
		int k = (int)eg_val_get_int(params, "dataset.num_classes", 10);
		double spread = eg_val_get_num(params, "dataset.spread", 1.0);
		eg_dataset full_train = {0}, full_test = {0};

		rc = eg_dataset_blobs(train_n ? train_n : BLOBS_TRAIN_N, dim, k,
				      spread, BLOBS_CENTERS_SEED, seed * 2 + 1,
				      &full_train);
		if (rc == EG_OK)
			rc = eg_dataset_blobs(test_n ? test_n : BLOBS_TEST_N,
					      dim, k, spread, BLOBS_CENTERS_SEED,
					      seed * 2 + 2, &full_test);
		if (rc != EG_OK) {
			eg_dataset_free(&full_train);
			eg_dataset_free(&full_test);
			free(classes);
			return eg_diag_set(d, rc, "dataset blobs: %s",
					   eg_strerror(rc));
		}
		eg_rng_seed_stream(&rng, seed, "train-subset");
		rc = subset(&full_train, classes, nclasses, 0, &rng, "train",
			    &out->train, d);
		eg_rng_seed_stream(&rng, seed, "test-subset");
		if (rc == EG_OK)
			rc = subset(&full_test, classes, nclasses, 0, &rng,
				    "test", &out->test, d);
		eg_dataset_free(&full_train);
		eg_dataset_free(&full_test);
	} else {
		struct cached *src = NULL;

		rc = load_source(params, &src, d);
		if (rc != EG_OK) {
			free(classes);
			return rc;
		}
		eg_rng_seed_stream(&rng, seed, "train-subset");
		rc = subset(&src->train, classes, nclasses, train_n, &rng,
			    "train", &out->train, d);
		eg_rng_seed_stream(&rng, seed, "test-subset");
		if (rc == EG_OK)
			rc = subset(&src->test, classes, nclasses, test_n, &rng,
				    "test", &out->test, d);
	}
	free(classes);
	if (rc != EG_OK)
		goto err;

	if (noise > 0)
		eg_dataset_label_noise(&out->train, noise, seed ^ 0x401ULL);
	if (strcmp(norm, "per-image") == 0) {
		eg_dataset_standardize_per_image(&out->train);
		eg_dataset_standardize_per_image(&out->test);
	} else if (strcmp(norm, "global") == 0) {
		rc = eg_dataset_standardize_global(&out->train, &out->test);
		if (rc != EG_OK) {
			eg_diag_set(d, rc, "dataset.normalize: %s", eg_strerror(rc));
			goto err;
		}
	}
	if (val_split > 0) {
		rc = eg_dataset_split(&out->train, val_split, seed ^ 0x5b1eULL,
				      &out->val, d);
		if (rc != EG_OK)
			goto err;
	}
	return EG_OK;
err:
	eg__data_free(out);
	return rc;
}

void eg__data_free(eg__data *data)
{
	eg_dataset_free(&data->train);
	eg_dataset_free(&data->test);
	eg_dataset_free(&data->val);
}
