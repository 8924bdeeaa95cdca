/* common/ipc.h - the framed protocol between maasd and maas-runtime.
 *
 * A frame is a 20-byte header followed by len payload bytes:
 *   magic u32 | version u16 | type u16 | request_id u64 | len u32
 * all little-endian.  Frames travel over a SOCK_STREAM unix socket.  A peer
 * that sends a bad magic, version or type, or a length above the receiver's
 * maximum, has broken the protocol and is treated as compromised: maasd
 * kills such a runtime; a runtime exits.
 *
 * Payloads (all integers little-endian, strings are u16 length + bytes):
 *   HELLO       runtime -> maasd, req 0, once after load: struct ipc_meta
 *   ERROR       runtime -> maasd, req 0: str16 message; the runtime then exits
 *               (a model that cannot be loaded)
 *   INFER       maasd -> runtime: tensor list (inputs), u32 n, n x str16
 *               output names (0 = all outputs)
 *   INFER_OK    runtime -> maasd: u64 compute_us, tensor list (outputs)
 *   INFER_ERR   runtime -> maasd: u16 enum ipc_err, str16 message
 *   PING/PONG   empty; PONG echoes PING's request id
 *   GENERATE, TOKEN, DONE, CANCEL: reserved for LLM serving.
 *
 * A tensor list is u32 count, then per tensor:
 *   str16 name | u8 dtype | u8 ndim | ndim x i64 dim | u64 nbytes | bytes
 * with nbytes == product(dims) * dtype_size(dtype) checked by the decoder.
 */
#ifndef COMMON_IPC_H
#define COMMON_IPC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"
#include "common/wire.h"

#define IPC_MAGIC		0x5341414dU	/* "MAAS" read as LE u32 */
#define IPC_VERSION		1
#define IPC_HDR_LEN		20
#define IPC_MAX_PAYLOAD		(256U << 20)	/* hard cap for any frame */
#define IPC_MAX_TENSORS		256
#define IPC_NAME_MAX		128		/* tensor name incl. NUL */

enum ipc_type {
	IPC_HELLO = 1,
	IPC_ERROR,
	IPC_INFER,
	IPC_INFER_OK,
	IPC_INFER_ERR,
	IPC_GENERATE,
	IPC_TOKEN,
	IPC_DONE,
	IPC_CANCEL,
	IPC_PING,
	IPC_PONG,
	IPC_TYPE_MAX			/* one past the last valid type */
};

enum ipc_err {
	IPC_ERR_BAD_INPUT = 1,		/* the request is wrong: 400 */
	IPC_ERR_INTERNAL,		/* the runtime failed: 500 */
	IPC_ERR_TOO_LARGE		/* exceeds the runtime's limits: 413 */
};

enum model_format {
	MODEL_FORMAT_ONNX = 1,
	MODEL_FORMAT_GGUF = 2
};

struct ipc_hdr {
	uint32_t	magic;
	uint16_t	version;
	uint16_t	type;		/* enum ipc_type */
	uint64_t	req_id;
	uint32_t	len;		/* payload bytes that follow */
};

/* Describes one input or output of a model; dims of -1 are dynamic. */
struct ipc_tensor_desc {
	char		name[IPC_NAME_MAX];
	enum dtype	dtype;
	int		ndim;
	int64_t		dims[TENSOR_MAX_DIMS];
};

/* What a runtime reports about its model in HELLO. */
struct ipc_meta {
	enum model_format	 format;
	uint64_t		 mem_bytes;	/* resident estimate of the model */
	uint32_t		 n_inputs;
	uint32_t		 n_outputs;
	struct ipc_tensor_desc	*inputs;	/* n_inputs, owned */
	struct ipc_tensor_desc	*outputs;	/* n_outputs, owned */
};

/* A decoded tensor: data borrows from the payload it was decoded from and
 * may be unaligned (copy before computing on it). */
struct ipc_tensor {
	struct ipc_tensor_desc	 desc;
	const uint8_t		*data;
	uint64_t		 nbytes;
};

/* --- frames --- */
void	ipc_hdr_encode(const struct ipc_hdr *, uint8_t out[IPC_HDR_LEN]);
/* 0 if magic, version and type are valid and len <= max_payload; -1 else. */
int	ipc_hdr_decode(const uint8_t in[IPC_HDR_LEN], struct ipc_hdr *,
	    uint32_t max_payload);

/* Blocking frame I/O on a socket, used by the runtime.  ipc_write_frame
 * returns 0 or -1 (errno set).  ipc_read_frame reads one frame into *buf
 * (grown as needed, caller frees; payload length in hdr->len); returns 1 on
 * a frame, 0 on clean EOF before a header, -1 on I/O error, truncation or a
 * header that fails ipc_hdr_decode (errno EPROTO).  A payload that cannot
 * be allocated is read and dropped: -1 with errno ENOMEM and *hdr filled,
 * the stream still in step, so the caller may refuse that one request. */
int	ipc_write_frame(int fd, enum ipc_type, uint64_t req_id,
	    const void *payload, size_t len);
int	ipc_read_frame(int fd, struct ipc_hdr *, uint8_t **buf, size_t *bufcap,
	    uint32_t max_payload);
/* Prepends nothing: builds header + payload into one buffer (owned by w). */
void	ipc_frame_build(struct wbuf *w, enum ipc_type, uint64_t req_id,
	    const void *payload, size_t len);

/* --- tensor lists --- */
/* Writes a tensor's header (desc and nbytes); the caller then appends
 * exactly nbytes of data. */
void	ipc_put_tensor_header(struct wbuf *, const struct ipc_tensor_desc *,
	    uint64_t nbytes);
void	ipc_put_tensor(struct wbuf *, const struct ipc_tensor_desc *,
	    const void *data, uint64_t nbytes);
/* Reads a tensor list: returns the count (<= max) and fills out[], or -1
 * on malformed input (unknown dtype, ndim > TENSOR_MAX_DIMS, negative dim,
 * size overflow, nbytes mismatch, truncation, count > max). */
int	ipc_get_tensors(struct rbuf *, struct ipc_tensor *out, size_t max);

/* --- model metadata (HELLO) --- */
void	ipc_meta_encode(struct wbuf *, const struct ipc_meta *);
int	ipc_meta_decode(struct rbuf *, struct ipc_meta *);	/* -1 bad */
void	ipc_meta_release(struct ipc_meta *);
void	ipc_meta_copy(struct ipc_meta *dst, const struct ipc_meta *src);

const char *ipc_type_name(enum ipc_type);
#endif
