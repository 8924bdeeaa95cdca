/* runtime/serve.h - maas-runtime's request loop over its IPC socket.
 * Requests are served one at a time, each answered with its request id:
 * INFER and INFER_SHM with INFER_OK or INFER_ERR, PING with PONG.  Any other frame, a
 * frame that fails to decode, or one cut short is a peer breaking the
 * protocol, and the loop ends. */
#ifndef RUNTIME_SERVE_H
#define RUNTIME_SERVE_H
#include <stddef.h>
#include <stdint.h>

struct onnx_model;

#define SERVE_EOF	0	/* maasd closed the socket */
#define SERVE_EIO	1	/* the socket failed */
#define SERVE_EPROTO	2	/* maasd broke the protocol */

/* The read-ahead thread: while a large request computes, it reads the
 * next one from the socket, so that its copy overlaps the work instead
 * of following it.  Started before the sandbox, which allows no new
 * thread or fd: NULL (logged) if it cannot be, and serving goes on
 * without.  serve_ahead_fd() is the fd the sandbox must keep open. */
struct serve_ahead;
struct serve_ahead	*serve_ahead_start(int fd);
int			 serve_ahead_fd(const struct serve_ahead *);
void			 serve_ahead_free(struct serve_ahead *);

/* Serves m (borrowed) on fd until one of the above, which it returns and
 * which is the process's exit status; a, from serve_ahead_start(fd), may
 * be NULL; shm is the window maasd writes INFER_SHM payloads into
 * (ipc_shm_map()), or NULL when it gave none, and then an INFER_SHM
 * breaks the protocol. */
int	serve_loop(int fd, struct onnx_model *m, struct serve_ahead *a,
	    const uint8_t *shm, size_t shm_len);
#endif
