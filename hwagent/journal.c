/*
 * journal.c - RESULT and FAIL frames the coordinator has not ACKed yet,
 * kept on disk so that neither a dead coordinator nor a restarted agent
 * loses a board's result (record format in hwagent_int.h).
 *
 * Invariants: the file holds exactly the records in memory, in order,
 * after every successful call; an append is on disk (fsync) before
 * eg__journal_append returns, so the caller may send the frame right
 * after; removal rewrites the whole file through a temp file, fsync and
 * rename, and fsyncs the directory, so a crash leaves either the old or
 * the new file, never a mix.  The set is small (one record per board job
 * in flight or unacknowledged), so rewriting is cheaper than any index.
 * CRC-32 is zlib's.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "hwagent/hwagent_int.h"

#define HDR 24 /* length, crc, trial, attempt */
#define FRAME_MAX ((size_t)1 << 30)

struct rec {
	int64_t trial, attempt;
	eg_buf frame;
};

struct eg__journal {
	char path[PATH_MAX];
	int fd; /* open for appends */
	struct rec *v;
	size_t n, cap;
	size_t dropped;
};

static void put32(unsigned char *p, uint32_t x)
{
	p[0] = (unsigned char)(x >> 24);
	p[1] = (unsigned char)(x >> 16);
	p[2] = (unsigned char)(x >> 8);
	p[3] = (unsigned char)x;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put64(unsigned char *p, uint64_t x)
{
	put32(p, (uint32_t)(x >> 32));
	put32(p + 4, (uint32_t)x);
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* The 24-byte header of a record. */
static void header(unsigned char h[HDR], int64_t trial, int64_t attempt,
		   const void *frame, size_t len)
{
	uLong crc;

	put32(h, (uint32_t)len);
	put64(h + 8, (uint64_t)trial);
	put64(h + 16, (uint64_t)attempt);
	crc = crc32(0L, h + 8, 16);
	crc = crc32(crc, frame, (uInt)len);
	put32(h + 4, (uint32_t)crc);
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int push(eg__journal *j, int64_t trial, int64_t attempt,
		const void *frame, size_t len)
{
	struct rec *r;

	if (j->n == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 8;
		struct rec *v = realloc(j->v, cap * sizeof(*v));

		if (v == NULL)
			return EG_ENOMEM;
		j->v = v;
		j->cap = cap;
	}
	r = &j->v[j->n];
	r->trial = trial;
	r->attempt = attempt;
	r->frame = (eg_buf)EG_BUF_INIT;
	eg_buf_append(&r->frame, frame, len);
	if (eg_buf_failed(&r->frame)) {
		eg_buf_free(&r->frame);
		return EG_ENOMEM;
	}
	j->n++;
	return EG_OK;
}

static void fsync_dir(const char *path)
{
	char copy[PATH_MAX];
	int fd;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Writes every record to a temp file and renames it over the journal,
 * reopening the append descriptor on the new file. */
static int rewrite(eg__journal *j, eg_diag *d)
{
	char tmp[PATH_MAX + 8];
	int fd, e;

	snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	for (size_t i = 0; i < j->n; i++) {
		unsigned char h[HDR];

		header(h, j->v[i].trial, j->v[i].attempt, j->v[i].frame.data,
		       j->v[i].frame.len);
		if (write_all(fd, h, HDR) != 0 ||
		    write_all(fd, j->v[i].frame.data, j->v[i].frame.len) != 0)
			goto fail;
	}
	if (fsync(fd) != 0 || rename(tmp, j->path) != 0)
		goto fail;
	fsync_dir(j->path);
	if (j->fd >= 0)
		close(j->fd);
	/* The offset is at the end: appends continue the new file. */
	j->fd = fd;
	return EG_OK;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return eg_diag_set(d, eg_err_from_errno(e), "journal %s: %s", j->path,
			   strerror(e));
}

int eg__journal_open(const char *path, eg__journal **out, eg_diag *d)
{
	eg__journal *j = calloc(1, sizeof(*j));
	unsigned char *data = NULL;
	struct stat st;
	size_t off = 0, size;
	int rc = EG_OK, fd = -1;

	*out = NULL;
	if (j == NULL)
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	j->fd = -1;
	snprintf(j->path, sizeof(j->path), "%s", path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = eg_diag_set(d, eg_err_from_errno(errno), "journal %s: %s",
				 path, strerror(errno));
		goto out;
	}
	size = (size_t)st.st_size;
	data = malloc(size ? size : 1);
	if (data == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t got = 0; got < size;) {
		ssize_t r = pread(fd, data + got, size - got, (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = eg_diag_set(d, EG_EIO, "journal %s: read: %s", path,
					 r < 0 ? strerror(errno) : "short");
			goto out;
		}
		got += (size_t)r;
	}
	while (size - off >= HDR) {
		size_t len = get32(data + off);
		unsigned char h[HDR];

		if (len == 0 || len > FRAME_MAX || size - off - HDR < len)
			break;
		header(h, (int64_t)get64(data + off + 8),
		       (int64_t)get64(data + off + 16), data + off + HDR, len);
		if (memcmp(h + 4, data + off + 4, 4) != 0)
			break;
		rc = push(j, (int64_t)get64(data + off + 8),
			  (int64_t)get64(data + off + 16), data + off + HDR, len);
		if (rc != EG_OK) {
			eg_diag_set(d, rc, "out of memory");
			goto out;
		}
		off += HDR + len;
	}
	if (off < size) {
		/* A torn append or damage: keep what reads back intact. */
		j->dropped = 1;
		rc = rewrite(j, d);
		if (rc != EG_OK)
			goto out;
		close(fd);
		fd = -1;
	} else {
		j->fd = fd;
		fd = -1;
		lseek(j->fd, 0, SEEK_END);
	}
	*out = j;
	j = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(data);
	eg__journal_close(j);
	return rc;
}

void eg__journal_close(eg__journal *j)
{
	if (j == NULL)
		return;
	if (j->fd >= 0)
		close(j->fd);
	for (size_t i = 0; i < j->n; i++)
		eg_buf_free(&j->v[i].frame);
	free(j->v);
	free(j);
}

size_t eg__journal_count(const eg__journal *j) { return j->n; }
size_t eg__journal_dropped(const eg__journal *j) { return j->dropped; }

const eg_buf *eg__journal_at(const eg__journal *j, size_t i, int64_t *trial,
			     int64_t *attempt)
{
	if (i >= j->n)
		return NULL;
	if (trial != NULL)
		*trial = j->v[i].trial;
	if (attempt != NULL)
		*attempt = j->v[i].attempt;
	return &j->v[i].frame;
}

static void remove_at(eg__journal *j, size_t i)
{
	eg_buf_free(&j->v[i].frame);
	memmove(j->v + i, j->v + i + 1, (j->n - i - 1) * sizeof(*j->v));
	j->n--;
}

int eg__journal_append(eg__journal *j, int64_t trial, int64_t attempt,
		       const void *frame, size_t len, eg_diag *d)
{
	unsigned char h[HDR];
	int rc;

	if (len == 0 || len > FRAME_MAX)
		return eg_diag_set(d, EG_ERANGE, "journal: a frame of %zu "
				   "bytes", len);
	for (size_t i = 0; i < j->n; i++)
		if (j->v[i].trial == trial && j->v[i].attempt == attempt) {
			/* A replacement: drop the old one in the rewrite. */
			remove_at(j, i);
			rc = push(j, trial, attempt, frame, len);
			if (rc != EG_OK)
				return eg_diag_set(d, rc, "out of memory");
			return rewrite(j, d);
		}
	rc = push(j, trial, attempt, frame, len);
	if (rc != EG_OK)
		return eg_diag_set(d, rc, "out of memory");
	header(h, trial, attempt, frame, len);
	if (write_all(j->fd, h, HDR) != 0 || write_all(j->fd, frame, len) != 0 ||
	    fdatasync(j->fd) != 0) {
		int e = errno;

		/* Whatever half-record reached the file is cut off by the
		 * rewrite, which also retries the append. */
		rc = rewrite(j, d);
		if (rc != EG_OK) {
			remove_at(j, j->n - 1);
			return eg_diag_set(d, eg_err_from_errno(e),
					   "journal %s: %s", j->path,
					   strerror(e));
		}
	}
	return EG_OK;
}

int eg__journal_ack(eg__journal *j, int64_t trial, int64_t attempt,
		    bool *found, eg_diag *d)
{
	if (found != NULL)
		*found = false;
	for (size_t i = 0; i < j->n; i++) {
		if (j->v[i].trial == trial && j->v[i].attempt == attempt) {
			remove_at(j, i);
			if (found != NULL)
				*found = true;
			return rewrite(j, d);
		}
	}
	return EG_OK;
}
