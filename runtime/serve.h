/* runtime/serve.h - maas-runtime's request loop over its IPC socket.
 * Requests are served one at a time, each answered with its request id:
 * INFER with INFER_OK or INFER_ERR, PING with PONG.  Any other frame, a
 * frame that fails to decode, or one cut short is a peer breaking the
 * protocol, and the loop ends. */
#ifndef RUNTIME_SERVE_H
#define RUNTIME_SERVE_H

struct onnx_model;

#define SERVE_EOF	0	/* maasd closed the socket */
#define SERVE_EIO	1	/* the socket failed */
#define SERVE_EPROTO	2	/* maasd broke the protocol */

/* Serves m (borrowed) on fd until one of the above, which it returns and
 * which is the process's exit status. */
int	serve_loop(int fd, struct onnx_model *m);
#endif
