/*
 * mpi.c - messages between ranks, and the small time helpers of worker/.
 *
 * A message is a whole proto frame (4-byte length + msgpack body) sent as
 * MPI_BYTE with EG__WORKER_TAG.  Sends are non-blocking: the encoded buffer
 * stays in the queue until MPI_Test reports the send complete, because a
 * blocking MPI_Send of a large message waits for the receiver to post its
 * receive, and two ranks doing that to each other would deadlock.  Receives
 * are MPI_Iprobe then MPI_Recv of exactly the probed size, so they never
 * block.  The queue holds few entries (a rank sends a handful of messages
 * per trial), so a linear array is enough.
 */
#include <mpi.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/frame.h"
#include "worker/worker_int.h"

struct pending {
	MPI_Request req;
	eg_buf buf;
};

struct eg__outq {
	struct pending *v;
	size_t n, cap;
};

int64_t eg__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int eg__wait_fd(int fd, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};

	if (poll(&p, fd >= 0 ? 1 : 0, ms) <= 0)
		return 0;
	return p.revents;
}

void eg__run_path(char *out, size_t len, const char *home, const char *name)
{
	snprintf(out, len, "%s/run/%s", home, name);
}

int eg__outq_new(eg__outq **out)
{
	*out = calloc(1, sizeof(**out));
	return *out != NULL ? EG_OK : EG_ENOMEM;
}

int eg__outq_send(eg__outq *q, int dest, const eg_msg *m, eg_diag *d)
{
	struct pending *p;
	int rc;

	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 8;
		struct pending *v = realloc(q->v, cap * sizeof(*v));

		if (v == NULL)
			return eg_diag_set(d, EG_ENOMEM, "out of memory");
		q->v = v;
		q->cap = cap;
	}
	p = &q->v[q->n];
	p->buf = (eg_buf)EG_BUF_INIT;
	rc = eg_msg_encode(m, &p->buf, 0, d);
	if (rc != EG_OK) {
		eg_buf_free(&p->buf);
		return rc;
	}
	if (p->buf.len > (size_t)INT32_MAX ||
	    MPI_Isend(p->buf.data, (int)p->buf.len, MPI_BYTE, dest,
		      EG__WORKER_TAG, MPI_COMM_WORLD, &p->req) != MPI_SUCCESS) {
		eg_buf_free(&p->buf);
		return eg_diag_set(d, EG_EMPI, "MPI_Isend to rank %d failed",
				   dest);
	}
	q->n++;
	return EG_OK;
}

size_t eg__outq_progress(eg__outq *q)
{
	size_t i = 0;

	while (i < q->n) {
		int done = 0;

		MPI_Test(&q->v[i].req, &done, MPI_STATUS_IGNORE);
		if (done) {
			eg_buf_free(&q->v[i].buf);
			q->v[i] = q->v[--q->n];
		} else {
			i++;
		}
	}
	return q->n;
}

void eg__outq_free(eg__outq *q, int timeout_ms)
{
	int64_t end = eg__now_ms() + timeout_ms;

	if (q == NULL)
		return;
	while (eg__outq_progress(q) > 0 && eg__now_ms() < end)
		eg__wait_fd(-1, 2);
	for (size_t i = 0; i < q->n; i++) {
		/* A peer that never received: cancel so the buffer may go. */
		MPI_Cancel(&q->v[i].req);
		MPI_Request_free(&q->v[i].req);
		eg_buf_free(&q->v[i].buf);
	}
	free(q->v);
	free(q);
}

int eg__mpi_poll(eg_buf *scratch, eg_msg *m, int *src, eg_diag *d)
{
	MPI_Status st;
	int flag = 0, count = 0;

	eg_msg_clear(m);
	if (MPI_Iprobe(MPI_ANY_SOURCE, EG__WORKER_TAG, MPI_COMM_WORLD, &flag,
		       &st) != MPI_SUCCESS)
		return eg_diag_set(d, EG_EMPI, "MPI_Iprobe failed");
	if (!flag)
		return 0;
	MPI_Get_count(&st, MPI_BYTE, &count);
	eg_buf_reset(scratch);
	if (!eg_buf_reserve(scratch, (size_t)count + 1))
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	if (MPI_Recv(scratch->data, count, MPI_BYTE, st.MPI_SOURCE,
		     EG__WORKER_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE) !=
	    MPI_SUCCESS)
		return eg_diag_set(d, EG_EMPI, "MPI_Recv from rank %d failed",
				   st.MPI_SOURCE);
	*src = st.MPI_SOURCE;
	if (count <= EG_FRAME_HDR_LEN)
		return eg_diag_set(d, EG_EPROTO,
				   "rank %d sent a %d-byte message",
				   st.MPI_SOURCE, count);
	return eg_msg_decode(scratch->data + EG_FRAME_HDR_LEN,
			     (size_t)count - EG_FRAME_HDR_LEN, m, d) == EG_OK
		       ? 1
		       : eg_diag_prefix(d, EG_EPROTO, "from rank %d",
					st.MPI_SOURCE);
}
