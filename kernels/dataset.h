/*
 * dataset.h - datasets as dense float tensors: the IDX file format (any
 * IDX file, gzip-compressed or not), Fashion-MNIST at its Debian path, the
 * `blobs` synthetic generator, and the transforms a grid can ask for (class
 * subsets relabelled from 0, a random subset of n examples, per-image or
 * global standardization, label noise, a validation split).
 *
 * An eg_dataset owns its two arrays; eg_dataset_free releases them and
 * accepts a zeroed struct.  Nothing here logs; failures return an eg_err with
 * the detail (file, offset, what was expected) in the eg_diag.
 */
#ifndef EG_DATASET_H
#define EG_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct eg_dataset {
	size_t n;       /* examples */
	int c, h, w;    /* shape of one example (c = 1, h = 1 for vectors) */
	size_t dim;     /* c * h * w */
	int classes;    /* labels are 0 .. classes - 1 */
	float *x;       /* n * dim, row-major, owned */
	int32_t *y;     /* n labels, owned */
} eg_dataset;

/* One IDX file: the element type code (0x08 ubyte, 0x09 sbyte, 0x0B short,
 * 0x0C int, 0x0D float, 0x0E double), its dimensions, and every element
 * converted to float (no scaling). */
typedef struct eg_idx {
	int type;
	int ndim;
	uint32_t dims[8];
	size_t count; /* product of dims */
	float *data;  /* owned */
} eg_idx;

/* Reads `path`, gunzipping when it starts with the gzip magic.  Corrupt,
 * truncated or oversized files fail with EG_ECORRUPT / EG_ETRUNCATED /
 * EG_ETOO_BIG naming the file and what was wrong. */
int eg_idx_read(const char *path, eg_idx *out, eg_diag *d);
void eg_idx_free(eg_idx *idx);

/* An image IDX (n x h x w or n x c x h x w; ubyte scaled to [0, 1]) and a
 * label IDX (n) into a dataset; the counts must agree. */
int eg_dataset_from_idx(const char *images, const char *labels,
			eg_dataset *out, eg_diag *d);

/* Fashion-MNIST from $EG_FASHION_MNIST_DIR or
 * /usr/share/datasets/fashion-mnist; a missing file fails with
 * EG_EMISSING_DEP and a message naming the Debian package
 * dataset-fashion-mnist. */
int eg_dataset_fashion_mnist(bool train, eg_dataset *out, eg_diag *d);

/* `n` examples of `classes` Gaussian clusters in `dim` dimensions.  The
 * class centres depend only on `centers_seed` (so a train and a test set
 * drawn with different `sample_seed`s share them); centres are N(0, 1) per
 * coordinate scaled by sqrt(8 / dim) (two centres are 4 apart on average in
 * any dimension, so `spread` sets the difficulty alike in 20 or 784
 * dimensions: see docs/datasets.md) and points are centre + spread *
 * N(0, 1).  Labels are balanced, in random order.  EG_EINVAL for dim or
 * classes < 1, a negative spread, or more than 2^31 values. */
int eg_dataset_blobs(size_t n, size_t dim, int classes, double spread,
		     uint64_t centers_seed, uint64_t sample_seed,
		     eg_dataset *out);

/* Keeps only examples whose label is in classes[0..k-1], relabelled to its
 * position in that list. */
int eg_dataset_select_classes(eg_dataset *ds, const int *classes, int k,
			      eg_diag *d);
/* Keeps a random subset of n examples (order shuffled by `seed`); n larger
 * than the set is an error. */
int eg_dataset_take(eg_dataset *ds, size_t n, uint64_t seed, eg_diag *d);
/* Moves a fraction `frac` of the examples (chosen by `seed`) into `val`. */
int eg_dataset_split(eg_dataset *ds, double frac, uint64_t seed,
		     eg_dataset *val, eg_diag *d);
/* Zero mean, unit variance per example (constant examples become zero). */
void eg_dataset_standardize_per_image(eg_dataset *ds);
/* Per-feature mean and deviation of `train`, applied to `train` and (if not
 * NULL) `other`. */
int eg_dataset_standardize_global(eg_dataset *train, eg_dataset *other);
/* Replaces the label of a fraction `frac` of the examples (chosen by
 * `seed`) with a uniformly drawn different class. */
void eg_dataset_label_noise(eg_dataset *ds, double frac, uint64_t seed);
void eg_dataset_free(eg_dataset *ds);

#endif
