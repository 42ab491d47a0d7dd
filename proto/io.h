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

#include <stdbool.h>

#include "common/err.h"
#include "proto/auth.h"
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

/* Writes all n bytes (an already encoded frame, say from a journal). */
int eg_proto_write_all(int fd, const void *p, size_t n, eg_diag *diag);

/*
 * The agent side of a connection, shared by the worker's gateway and the
 * hardware agent.
 *
 * eg_proto_connect: a TCP connection to "host:port" ("[v6]:port" too),
 * giving up after connect_timeout_ms; the socket is then blocking, with
 * TCP_NODELAY and sends bounded by send_timeout_s so that a stalled peer
 * cannot hold a sender.  Messages name `addr` as given.
 *
 * eg_proto_handshake: HELLO{version, role, name, capabilities} (it takes
 * ownership of `caps`), PROOF for the CHALLENGE, then WELCOME; each answer
 * within timeout_ms.  EG_EAUTH when the coordinator refused with BYE.  A
 * connection closed right after our PROOF is EG_ECLOSED with
 * *closed_after_proof set: that is how a coordinator refuses a wrong token,
 * but one that died at that instant looks the same, so callers treat only
 * repeats as final.  EG_EPROTO for anything out of order.
 */
int eg_proto_connect(const char *addr, int connect_timeout_ms,
		     int send_timeout_s, int *fd, eg_diag *diag);
int eg_proto_handshake(int fd, eg_frame_dec *dec, const eg_proto_token *t,
		       const char *role, const char *name, eg_val *caps,
		       int timeout_ms, bool *closed_after_proof, eg_diag *diag);

#endif
