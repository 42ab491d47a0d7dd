/*
 * io.h - blocking send and receive of messages over a connected socket, for
 * the worker side (the coordinator drives the same framer from libuv).
 *
 * Both handle EINTR and partial transfers.  eg_proto_send never raises
 * SIGPIPE (MSG_NOSIGNAL; a peer that went away is EG_ECLOSED).
 * eg_proto_recv reads no byte past the frame it returns, so the descriptor
 * can be handed to other code between messages.  Neither owns `fd`.  One
 * thread per descriptor and decoder.
 */
#ifndef EG_PROTO_IO_H
#define EG_PROTO_IO_H

#include "common/err.h"
#include "proto/frame.h"
#include "proto/msg.h"

/* Encodes `m` (frames of at most max bytes, 0 = default) and writes it all. */
int eg_proto_send(int fd, const eg_msg *m, size_t max, eg_diag *diag);

/*
 * Reads until one frame is complete and decodes it into `m` (cleared first).
 * timeout_ms bounds the whole call (< 0 waits forever): EG_ETIMEOUT.  A peer
 * that closes between frames is EG_ECLOSED, inside one EG_ETRUNCATED.  Frame
 * errors (EG_ETOO_BIG, EG_EPROTO) leave `dec` failed: close the connection.
 */
int eg_proto_recv(int fd, eg_frame_dec *dec, eg_msg *m, int timeout_ms,
		  eg_diag *diag);

#endif
