/*
 * idx.c - the IDX reader (LeCun's MNIST format, used by Fashion-MNIST and by
 * anyone who converts CIFAR-10 or SmallNORB to it).
 *
 * Format: two zero bytes, a type byte (0x08 ubyte, 0x09 sbyte, 0x0B int16,
 * 0x0C int32, 0x0D float32, 0x0E float64), a dimension count 1..8, that many
 * big-endian uint32 dimensions, then exactly prod(dims) big-endian elements.
 * The file goes through zlib's gzread, which gunzips a gzip file and passes
 * any other file through unchanged, so one code path reads both.
 *
 * The reader trusts nothing in the file: the header is validated before any
 * element is read, the element count is bounded (EG_IDX_MAX_ELEMS) before it
 * is multiplied by an element size, and the output array grows with the data
 * actually present rather than with the count the header claims, so a
 * corrupt header claiming two billion elements in a 100-byte file costs no
 * more than the 100 bytes.  Every failure names the file.
 *
 * Workload: the 60k Fashion-MNIST training images are 47 MB of ubytes;
 * they are read in 256 KiB chunks and converted by one tight loop per type.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "kernels/dataset.h"

/* 2^31 elements: 8 GiB of floats, far beyond any dataset this tool trains
 * on, and small enough that count * 8 cannot overflow a size_t. */
#define EG_IDX_MAX_ELEMS ((size_t)1 << 31)
#define CHUNK ((size_t)256 * 1024) /* a multiple of every element size */

static size_t type_size(int type)
{
	switch (type) {
	case 0x08:
	case 0x09:
		return 1;
	case 0x0B:
		return 2;
	case 0x0C:
	case 0x0D:
		return 4;
	case 0x0E:
		return 8;
	default:
		return 0;
	}
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Converts `n` big-endian elements of `type` at `p` to floats at `out`. */
static void convert(int type, const unsigned char *p, size_t n, float *out)
{
	size_t i;

	switch (type) {
	case 0x08:
		for (i = 0; i < n; i++)
			out[i] = (float)p[i];
		break;
	case 0x09:
		for (i = 0; i < n; i++)
			out[i] = (float)(int8_t)p[i];
		break;
	case 0x0B:
		for (i = 0; i < n; i++)
			out[i] = (float)(int16_t)(uint16_t)(p[2 * i] << 8 |
							    p[2 * i + 1]);
		break;
	case 0x0C:
		for (i = 0; i < n; i++)
			out[i] = (float)(int32_t)be32(p + 4 * i);
		break;
	case 0x0D:
		for (i = 0; i < n; i++) {
			uint32_t u = be32(p + 4 * i);

			memcpy(&out[i], &u, 4);
		}
		break;
	case 0x0E:
		for (i = 0; i < n; i++) {
			uint64_t u = be64(p + 8 * i);
			double v;

			memcpy(&v, &u, 8);
			out[i] = (float)v;
		}
		break;
	}
}

/*
 * Turns a short or failed gzread into an error.  `want` bytes were asked
 * for at uncompressed offset `off`, `got` arrived (-1 = error).  zlib
 * reports a bad deflate stream or a CRC/length mismatch as Z_DATA_ERROR
 * (corrupt) and a stream that stops mid-member as Z_BUF_ERROR (truncated).
 */
static int read_error(gzFile f, const char *path, const char *what,
		      size_t off, size_t want, int got, eg_diag *d)
{
	int zerr = Z_OK;
	const char *zmsg = gzerror(f, &zerr);

	/* zlib prefixes its message with the path; we add our own. */
	size_t plen = strlen(path);

	if (zmsg != NULL && strncmp(zmsg, path, plen) == 0 &&
	    strncmp(zmsg + plen, ": ", 2) == 0)
		zmsg += plen + 2;
	/* No offset here: zlib inflates ahead of what has been asked for,
	 * so the failing position is not the caller's read position. */
	if (zerr == Z_DATA_ERROR)
		return eg_diag_set(d, EG_ECORRUPT,
				   "%s: corrupt gzip data (%s)", path, zmsg);
	if (zerr == Z_ERRNO)
		return eg_diag_set(d, eg_err_from_errno(errno),
				   "%s: read error: %s", path,
				   strerror(errno));
	if (zerr == Z_MEM_ERROR)
		return eg_diag_set(d, EG_ENOMEM, "%s: out of memory", path);
	if (zerr == Z_BUF_ERROR)
		return eg_diag_set(d, EG_ETRUNCATED,
				   "%s: truncated gzip stream in the %s: "
				   "expected %zu bytes at offset %zu, found %d",
				   path, what, want, off, got < 0 ? 0 : got);
	return eg_diag_set(d, EG_ETRUNCATED,
			   "%s: truncated %s: expected %zu bytes at offset "
			   "%zu, found %d",
			   path, what, want, off, got < 0 ? 0 : got);
}

int eg_idx_read(const char *path, eg_idx *out, eg_diag *d)
{
	unsigned char hdr[4 + 4 * 8];
	unsigned char *chunk = NULL;
	float *data = NULL;
	size_t esize, count = 1, cap = 0, done = 0, off;
	struct stat st;
	gzFile f = NULL;
	int rc, got, ndim, type;

	memset(out, 0, sizeof(*out));
	if (stat(path, &st) != 0)
		return eg_diag_set(d, eg_err_from_errno(errno), "%s: %s", path,
				   strerror(errno));
	if (S_ISDIR(st.st_mode))
		return eg_diag_set(d, EG_EINVAL,
				   "%s: is a directory, not an IDX file", path);
	f = gzopen(path, "rb");
	if (f == NULL) {
		rc = errno != 0 ? eg_err_from_errno(errno) : EG_ENOMEM;
		return eg_diag_set(d, rc, "%s: cannot open: %s", path,
				   errno != 0 ? strerror(errno) : "zlib");
	}
	gzbuffer(f, 128 * 1024);

	got = gzread(f, hdr, 4);
	if (got == 0 && gzeof(f)) {
		rc = eg_diag_set(d, EG_ETRUNCATED,
				 "%s: empty (expected an IDX header)",
				 path);
		goto err;
	}
	if (got != 4) {
		rc = read_error(f, path, "header", 0, 4, got, d);
		goto err;
	}
	if (hdr[0] != 0 || hdr[1] != 0) {
		rc = eg_diag_set(d, EG_ECORRUPT,
				 "%s: bad magic %02x %02x (an IDX file starts "
				 "with two zero bytes)",
				 path, hdr[0], hdr[1]);
		goto err;
	}
	type = hdr[2];
	ndim = hdr[3];
	esize = type_size(type);
	if (esize == 0) {
		rc = eg_diag_set(d, EG_ECORRUPT,
				 "%s: unknown IDX element type 0x%02x", path,
				 type);
		goto err;
	}
	if (ndim < 1 || ndim > 8) {
		rc = eg_diag_set(d, EG_ECORRUPT,
				 "%s: %d dimensions (an IDX file has 1 to 8)",
				 path, ndim);
		goto err;
	}
	got = gzread(f, hdr + 4, (unsigned)(4 * ndim));
	if (got != 4 * ndim) {
		rc = read_error(f, path, "header", 4, (size_t)(4 * ndim), got,
				d);
		goto err;
	}
	for (int i = 0; i < ndim; i++) {
		uint32_t dim = be32(hdr + 4 + 4 * i);

		out->dims[i] = dim;
		/* Bound before multiplying: count <= 2^31 and dim < 2^32, so
		 * the product fits in 64 bits and the test is exact. */
		if (dim != 0 && (uint64_t)count * dim > EG_IDX_MAX_ELEMS) {
			rc = eg_diag_set(d, EG_ETOO_BIG,
					 "%s: dimensions multiply past the "
					 "limit of %zu elements",
					 path, EG_IDX_MAX_ELEMS);
			goto err;
		}
		count *= dim;
	}
	for (int i = 0; i < ndim; i++)
		if (out->dims[i] == 0)
			count = 0;

	chunk = malloc(CHUNK);
	if (chunk == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "%s: out of memory", path);
		goto err;
	}
	off = 4 + 4 * (size_t)ndim;
	while (done < count) {
		size_t n = count - done;
		size_t want;

		if (n > CHUNK / esize)
			n = CHUNK / esize;
		want = n * esize;
		if (done + n > cap) {
			/* Grow with the data, not with the header's claim. */
			size_t ncap = cap == 0 ? ((size_t)1 << 20) : 2 * cap;
			float *p;

			if (ncap > count)
				ncap = count;
			p = realloc(data, ncap * sizeof(float));
			if (p == NULL) {
				rc = eg_diag_set(d, EG_ENOMEM,
						 "%s: out of memory for %zu "
						 "elements",
						 path, count);
				goto err;
			}
			data = p;
			cap = ncap;
		}
		got = gzread(f, chunk, (unsigned)want);
		if (got < 0 || (size_t)got != want) {
			int zerr = Z_OK;

			gzerror(f, &zerr);
			if (got >= 0 && (zerr == Z_OK || zerr == Z_BUF_ERROR)) {
				rc = eg_diag_set(
					d, EG_ETRUNCATED,
					"%s: truncated data%s: expected %zu "
					"bytes of elements (%zu x %zu bytes), "
					"found %zu",
					path,
					zerr == Z_BUF_ERROR
						? " (gzip stream ends early)"
						: "",
					count * esize, count, esize,
					done * esize + (size_t)got);
				goto err;
			}
			rc = read_error(f, path, "data", off, want, got, d);
			goto err;
		}
		convert(type, chunk, n, data + done);
		done += n;
		off += want;
	}
	/* One more byte must not exist.  This read is also what makes zlib
	 * check the gzip trailer (CRC-32 and length). */
	got = gzread(f, chunk, 1);
	if (got > 0) {
		rc = eg_diag_set(d, EG_ECORRUPT,
				 "%s: trailing garbage after %zu elements "
				 "(byte %zu)",
				 path, count, off);
		goto err;
	}
	if (got < 0) {
		rc = read_error(f, path, "trailer", off, 0, got, d);
		goto err;
	}
	{
		int zerr = Z_OK;

		gzerror(f, &zerr);
		if (zerr != Z_OK) {
			rc = read_error(f, path, "trailer", off, 0, got, d);
			goto err;
		}
	}
	gzclose(f);
	free(chunk);
	out->type = type;
	out->ndim = ndim;
	out->count = count;
	out->data = data;
	return EG_OK;

err:
	if (f != NULL)
		gzclose(f);
	free(chunk);
	free(data);
	memset(out, 0, sizeof(*out));
	return rc;
}

void eg_idx_free(eg_idx *idx)
{
	if (idx == NULL)
		return;
	free(idx->data);
	memset(idx, 0, sizeof(*idx));
}
