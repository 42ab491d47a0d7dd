/*
 * dataset.c - datasets as dense float tensors: IDX pairs into datasets,
 * Fashion-MNIST at its Debian path, the `blobs` generator, and the
 * transforms a grid asks for (class subsets, random subsets, validation
 * splits, standardization, label noise).
 *
 * Invariants of an eg_dataset: x holds n * dim floats and y n labels, each
 * in 0 .. classes - 1; dim = c * h * w.  Every transform keeps them.  A
 * transform that fails leaves the dataset as it was.  Randomness comes from
 * named rng streams of the caller's seed ("take", "split", "noise",
 * "blobs.centers", "blobs.samples"), so one seed drives all of them without
 * one draw shifting another.
 *
 * Blobs: the header promises centres N(0, 1) per coordinate and points
 * centre + spread * N(0, 1).  The centres are additionally scaled by
 * sqrt(8 / dim), which makes the expected distance between two centres 4
 * whatever the dimension (|c_a - c_b|^2 has expectation 2 * dim * 8 / dim).
 * The classifier that matters sees the noise projected on the line between
 * two centres, whose deviation is `spread`; so at spread 1 two classes are
 * two deviations from their midpoint (pairwise Bayes error about 2.3 %),
 * separable but not trivially, and `spread` sets the difficulty on the
 * same scale in 2 or 784 dimensions.  Without the scaling, 784-dimensional
 * blobs would be 40 deviations apart and every test trivial.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/dataset.h"
#include "kernels/rng.h"

#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
/* Labels are stored as floats by the IDX reader; 2^16 classes is far more
 * than any classification set and keeps one-hot layers allocatable. */
#define MAX_CLASSES 65536

void eg_dataset_free(eg_dataset *ds)
{
	if (ds == NULL)
		return;
	free(ds->x);
	free(ds->y);
	memset(ds, 0, sizeof(*ds));
}

int eg_dataset_from_idx(const char *images, const char *labels,
			eg_dataset *out, eg_diag *d)
{
	eg_idx im = {0}, lb = {0};
	int32_t *y = NULL;
	size_t n, dim;
	int c, h, w, maxlab = -1, rc;

	memset(out, 0, sizeof(*out));
	rc = eg_idx_read(images, &im, d);
	if (rc != EG_OK)
		goto err;
	rc = eg_idx_read(labels, &lb, d);
	if (rc != EG_OK)
		goto err;
	for (int i = 1; i < im.ndim; i++)
		if (im.dims[i] > INT_MAX) {
			rc = eg_diag_set(d, EG_ETOO_BIG,
					 "%s: dimension %d is %u, too large",
					 images, i, (unsigned)im.dims[i]);
			goto err;
		}
	switch (im.ndim) {
	case 2:
		c = 1, h = 1, w = (int)im.dims[1];
		break;
	case 3:
		c = 1, h = (int)im.dims[1], w = (int)im.dims[2];
		break;
	case 4:
		c = (int)im.dims[1], h = (int)im.dims[2], w = (int)im.dims[3];
		break;
	default:
		rc = eg_diag_set(d, EG_EINVAL,
				 "%s: %d dimensions; images must have 2 "
				 "(n, dim), 3 (n, h, w) or 4 (n, c, h, w)",
				 images, im.ndim);
		goto err;
	}
	if (lb.ndim != 1) {
		rc = eg_diag_set(d, EG_EINVAL,
				 "%s: %d dimensions; labels must have 1",
				 labels, lb.ndim);
		goto err;
	}
	n = im.dims[0];
	if (lb.dims[0] != n) {
		rc = eg_diag_set(d, EG_EINVAL,
				 "%s has %zu examples but %s has %u labels",
				 images, n, labels, (unsigned)lb.dims[0]);
		goto err;
	}
	dim = (size_t)c * (size_t)h * (size_t)w;
	y = malloc((n > 0 ? n : 1) * sizeof(*y));
	if (y == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "%s: out of memory", labels);
		goto err;
	}
	for (size_t i = 0; i < n; i++) {
		float v = lb.data[i];

		if (!(v >= 0 && v < MAX_CLASSES) || v != floorf(v)) {
			rc = eg_diag_set(d, EG_ERANGE,
					 "%s: label %zu is %g; labels must be "
					 "integers from 0 to %d",
					 labels, i, (double)v,
					 MAX_CLASSES - 1);
			goto err;
		}
		y[i] = (int32_t)v;
		if (y[i] > maxlab)
			maxlab = y[i];
	}
	if (im.type == 0x08) {
		const float s = 1.0f / 255.0f;

		for (size_t i = 0; i < im.count; i++)
			im.data[i] *= s;
	}
	out->n = n;
	out->c = c, out->h = h, out->w = w;
	out->dim = dim;
	out->classes = maxlab + 1;
	out->x = im.data; /* the images' array becomes the dataset's */
	out->y = y;
	if (out->x == NULL) { /* zero elements: keep x non-NULL for callers */
		out->x = malloc(sizeof(float));
		if (out->x == NULL) {
			rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
			memset(out, 0, sizeof(*out));
			goto err;
		}
	}
	im.data = NULL;
	eg_idx_free(&lb);
	return EG_OK;

err:
	eg_idx_free(&im);
	eg_idx_free(&lb);
	free(y);
	return rc;
}

int eg_dataset_fashion_mnist(bool train, eg_dataset *out, eg_diag *d)
{
	const char *dir = getenv("EG_FASHION_MNIST_DIR");
	const char *pre = train ? "train" : "t10k";
	char images[4096], labels[4096];
	const char *paths[2] = {images, labels};
	int rc;

	memset(out, 0, sizeof(*out));
	if (dir == NULL || dir[0] == '\0')
		dir = FMNIST_DEFAULT_DIR;
	if (snprintf(images, sizeof(images), "%s/%s-images-idx3-ubyte.gz",
		     dir, pre) >= (int)sizeof(images) ||
	    snprintf(labels, sizeof(labels), "%s/%s-labels-idx1-ubyte.gz",
		     dir, pre) >= (int)sizeof(labels))
		return eg_diag_set(d, EG_EINVAL,
				   "EG_FASHION_MNIST_DIR: path too long");
	for (int i = 0; i < 2; i++) {
		struct stat st;

		if (stat(paths[i], &st) == 0)
			continue;
		if (errno != ENOENT && errno != ENOTDIR)
			return eg_diag_set(d, eg_err_from_errno(errno),
					   "%s: %s", paths[i],
					   strerror(errno));
		return eg_diag_set(
			d, EG_EMISSING_DEP,
			"%s: not found; install the Debian package "
			"dataset-fashion-mnist (make deps does)%s",
			paths[i],
			getenv("EG_FASHION_MNIST_DIR") != NULL
				? ", or point EG_FASHION_MNIST_DIR at a "
				  "directory that holds its files"
				: "");
	}
	rc = eg_dataset_from_idx(images, labels, out, d);
	if (rc != EG_OK)
		return rc;
	if (out->c != 1 || out->h != 28 || out->w != 28) {
		eg_dataset_free(out);
		return eg_diag_set(d, EG_ECORRUPT,
				   "%s: images are not 28x28 as Fashion-MNIST's "
				   "are",
				   images);
	}
	return EG_OK;
}

int eg_dataset_blobs(size_t n, size_t dim, int classes, double spread,
		     uint64_t centers_seed, uint64_t sample_seed,
		     eg_dataset *out)
{
	eg_rng rcen, rs;
	double *centres = NULL;
	double scale;
	float *x = NULL;
	int32_t *y = NULL;

	memset(out, 0, sizeof(*out));
	if (dim == 0 || dim > INT_MAX || classes < 1 ||
	    classes > MAX_CLASSES || !(spread >= 0) || !isfinite(spread) ||
	    (n > 0 && dim > ((size_t)1 << 31) / n))
		return EG_EINVAL;
	centres = malloc((size_t)classes * dim * sizeof(*centres));
	x = malloc((n > 0 ? n * dim : 1) * sizeof(*x));
	y = malloc((n > 0 ? n : 1) * sizeof(*y));
	if (centres == NULL || x == NULL || y == NULL)
		goto oom;

	/* Centres depend on centers_seed alone (see the top comment for
	 * the scale). */
	eg_rng_seed_stream(&rcen, centers_seed, "blobs.centers");
	scale = sqrt(8.0 / (double)dim);
	for (size_t i = 0; i < (size_t)classes * dim; i++)
		centres[i] = scale * eg_rng_normal(&rcen);

	/* Balanced labels (counts differ by at most one) in random order. */
	eg_rng_seed_stream(&rs, sample_seed, "blobs.samples");
	for (size_t i = 0; i < n; i++)
		y[i] = (int32_t)(i % (size_t)classes);
	eg_rng_shuffle(&rs, y, n);
	for (size_t i = 0; i < n; i++) {
		const double *ctr = centres + (size_t)y[i] * dim;
		float *row = x + i * dim;

		for (size_t j = 0; j < dim; j++)
			row[j] = (float)(ctr[j] + spread * eg_rng_normal(&rs));
	}
	free(centres);
	out->n = n;
	out->c = 1, out->h = 1, out->w = (int)dim;
	out->dim = dim;
	out->classes = classes;
	out->x = x;
	out->y = y;
	return EG_OK;

oom:
	free(centres);
	free(x);
	free(y);
	return EG_ENOMEM;
}

/* Keeps the examples whose keep[i] is set, in their order, in place. */
static void compact(eg_dataset *ds, const unsigned char *keep)
{
	size_t k = 0;

	for (size_t i = 0; i < ds->n; i++) {
		if (!keep[i])
			continue;
		if (k != i) {
			memcpy(ds->x + k * ds->dim, ds->x + i * ds->dim,
			       ds->dim * sizeof(float));
			ds->y[k] = ds->y[i];
		}
		k++;
	}
	ds->n = k;
}

int eg_dataset_select_classes(eg_dataset *ds, const int *classes, int k,
			      eg_diag *d)
{
	int *map = NULL;
	unsigned char *keep = NULL;
	int rc = EG_OK;

	if (k < 1)
		return eg_diag_set(d, EG_EINVAL,
				   "dataset.classes: the list is empty");
	map = malloc((size_t)(ds->classes > 0 ? ds->classes : 1) *
		     sizeof(*map));
	keep = malloc(ds->n > 0 ? ds->n : 1);
	if (map == NULL || keep == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
		goto out;
	}
	for (int c = 0; c < ds->classes; c++)
		map[c] = -1;
	for (int i = 0; i < k; i++) {
		int c = classes[i];

		if (c < 0 || c >= ds->classes) {
			rc = eg_diag_set(d, EG_ERANGE,
					 "dataset.classes: class %d does not "
					 "exist (the dataset has classes 0 to "
					 "%d)",
					 c, ds->classes - 1);
			goto out;
		}
		if (map[c] >= 0) {
			rc = eg_diag_set(d, EG_EINVAL,
					 "dataset.classes: class %d is listed "
					 "twice",
					 c);
			goto out;
		}
		map[c] = i;
	}
	for (size_t i = 0; i < ds->n; i++)
		keep[i] = map[ds->y[i]] >= 0;
	compact(ds, keep);
	for (size_t i = 0; i < ds->n; i++)
		ds->y[i] = map[ds->y[i]];
	ds->classes = k;
out:
	free(map);
	free(keep);
	return rc;
}

/* A permutation of 0 .. n-1 drawn from `stream` of `seed`. */
static int32_t *permutation(size_t n, uint64_t seed, const char *stream)
{
	int32_t *p = malloc((n > 0 ? n : 1) * sizeof(*p));
	eg_rng r;

	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		p[i] = (int32_t)i;
	eg_rng_seed_stream(&r, seed, stream);
	eg_rng_shuffle(&r, p, n);
	return p;
}

/* A new x/y holding rows idx[0..m-1] of ds, in that order. */
static int gather(const eg_dataset *ds, const int32_t *idx, size_t m,
		  float **xo, int32_t **yo)
{
	float *x = malloc((m > 0 ? m * ds->dim : 1) * sizeof(*x));
	int32_t *y = malloc((m > 0 ? m : 1) * sizeof(*y));

	if (x == NULL || y == NULL) {
		free(x);
		free(y);
		return EG_ENOMEM;
	}
	for (size_t i = 0; i < m; i++) {
		memcpy(x + i * ds->dim, ds->x + (size_t)idx[i] * ds->dim,
		       ds->dim * sizeof(float));
		y[i] = ds->y[idx[i]];
	}
	*xo = x;
	*yo = y;
	return EG_OK;
}

int eg_dataset_take(eg_dataset *ds, size_t n, uint64_t seed, eg_diag *d)
{
	int32_t *perm, *y;
	float *x;

	if (n > ds->n)
		return eg_diag_set(d, EG_ERANGE,
				   "dataset: asked for %zu examples but the "
				   "set has %zu",
				   n, ds->n);
	if (ds->n > INT32_MAX)
		return eg_diag_set(d, EG_ETOO_BIG, "dataset: too many examples");
	perm = permutation(ds->n, seed, "take");
	if (perm == NULL || gather(ds, perm, n, &x, &y) != EG_OK) {
		free(perm);
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	}
	free(perm);
	free(ds->x);
	free(ds->y);
	ds->x = x;
	ds->y = y;
	ds->n = n;
	return EG_OK;
}

int eg_dataset_split(eg_dataset *ds, double frac, uint64_t seed,
		     eg_dataset *val, eg_diag *d)
{
	int32_t *perm = NULL;
	unsigned char *keep = NULL;
	size_t m;
	float *x;
	int32_t *y;

	memset(val, 0, sizeof(*val));
	if (!(frac >= 0 && frac <= 1))
		return eg_diag_set(d, EG_ERANGE,
				   "validation fraction %g is not in [0, 1]",
				   frac);
	if (ds->n > INT32_MAX)
		return eg_diag_set(d, EG_ETOO_BIG, "dataset: too many examples");
	m = (size_t)llround(frac * (double)ds->n);
	perm = permutation(ds->n, seed, "split");
	keep = malloc(ds->n > 0 ? ds->n : 1);
	if (perm == NULL || keep == NULL ||
	    gather(ds, perm, m, &x, &y) != EG_OK) {
		free(perm);
		free(keep);
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	}
	memset(keep, 1, ds->n);
	for (size_t i = 0; i < m; i++)
		keep[perm[i]] = 0;
	compact(ds, keep);
	free(perm);
	free(keep);
	val->n = m;
	val->c = ds->c, val->h = ds->h, val->w = ds->w;
	val->dim = ds->dim;
	val->classes = ds->classes;
	val->x = x;
	val->y = y;
	return EG_OK;
}

void eg_dataset_standardize_per_image(eg_dataset *ds)
{
	for (size_t i = 0; i < ds->n; i++) {
		float *row = ds->x + i * ds->dim;
		double sum = 0, sq = 0, mean, sd;

		for (size_t j = 0; j < ds->dim; j++)
			sum += row[j];
		mean = sum / (double)ds->dim;
		for (size_t j = 0; j < ds->dim; j++) {
			double t = row[j] - mean;

			sq += t * t;
		}
		sd = sqrt(sq / (double)ds->dim);
		if (sd < 1e-8) {
			/* A constant image carries no signal: zero, not
			 * noise amplified by a tiny divisor. */
			memset(row, 0, ds->dim * sizeof(float));
			continue;
		}
		for (size_t j = 0; j < ds->dim; j++)
			row[j] = (float)((row[j] - mean) / sd);
	}
}

static void apply_affine(eg_dataset *ds, const double *mean,
			 const double *inv)
{
	for (size_t i = 0; i < ds->n; i++) {
		float *row = ds->x + i * ds->dim;

		for (size_t j = 0; j < ds->dim; j++)
			row[j] = (float)((row[j] - mean[j]) * inv[j]);
	}
}

int eg_dataset_standardize_global(eg_dataset *train, eg_dataset *other)
{
	size_t dim = train->dim;
	double *mean, *inv;

	if (other != NULL && other->dim != dim)
		return EG_EINVAL;
	if (train->n == 0)
		return EG_EINVAL;
	mean = calloc(dim, sizeof(*mean));
	inv = calloc(dim, sizeof(*inv));
	if (mean == NULL || inv == NULL) {
		free(mean);
		free(inv);
		return EG_ENOMEM;
	}
	/* Two passes, row-major so every pass streams through x once. */
	for (size_t i = 0; i < train->n; i++) {
		const float *row = train->x + i * dim;

		for (size_t j = 0; j < dim; j++)
			mean[j] += row[j];
	}
	for (size_t j = 0; j < dim; j++)
		mean[j] /= (double)train->n;
	for (size_t i = 0; i < train->n; i++) {
		const float *row = train->x + i * dim;

		for (size_t j = 0; j < dim; j++) {
			double t = row[j] - mean[j];

			inv[j] += t * t;
		}
	}
	for (size_t j = 0; j < dim; j++) {
		double sd = sqrt(inv[j] / (double)train->n);

		/* A feature (nearly) constant on train, like Fashion-MNIST's
		 * border pixels, is only centred: dividing by a floor would
		 * turn whatever the other set has there into huge values. */
		inv[j] = sd < 1e-8 ? 1.0 : 1.0 / sd;
	}
	apply_affine(train, mean, inv);
	if (other != NULL)
		apply_affine(other, mean, inv);
	free(mean);
	free(inv);
	return EG_OK;
}

void eg_dataset_label_noise(eg_dataset *ds, double frac, uint64_t seed)
{
	eg_rng r;
	size_t m, left;

	if (ds->classes < 2 || !(frac > 0))
		return;
	if (frac > 1)
		frac = 1;
	m = (size_t)llround(frac * (double)ds->n);
	eg_rng_seed_stream(&r, seed, "noise");
	/* Selection sampling (Knuth's Algorithm S): exactly m distinct
	 * examples, uniformly, in one pass and with no allocation, so this
	 * cannot fail. */
	left = ds->n;
	for (size_t i = 0; i < ds->n && m > 0; i++, left--) {
		if (eg_rng_below(&r, left) >= m)
			continue;
		ds->y[i] = (int32_t)((ds->y[i] + 1 +
				      (int32_t)eg_rng_below(
					      &r, (uint64_t)ds->classes - 1)) %
				     ds->classes);
		m--;
	}
}
