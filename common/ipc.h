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
 *   INFER_SHM   maasd -> runtime: u64 offset | u64 length, an INFER whose
 *               payload lies in the shared window (below)
 *   INFER_OK    runtime -> maasd: u64 compute_us, tensor list (outputs)
 *   INFER_ERR   runtime -> maasd: u16 enum ipc_err, str16 message
 *   PING/PONG   empty; PONG echoes PING's request id
 *   GENERATE, TOKEN, DONE, CANCEL: LLM serving, see the end of this file.
 *
 * A tensor list is u32 count, then per tensor:
 *   str16 name | u8 dtype | u8 ndim | ndim x i64 dim | u64 nbytes | bytes
 * with nbytes == product(dims) * dtype_size(dtype) checked by the decoder.
 */
#ifndef COMMON_IPC_H
#define COMMON_IPC_H
#include <stdatomic.h>
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
	IPC_INFER_SHM,
	IPC_TYPE_MAX			/* one past the last valid type */
};

enum ipc_err {
	IPC_ERR_BAD_INPUT = 1,		/* the request is wrong: 400 */
	IPC_ERR_INTERNAL,		/* the runtime failed: 500 */
	IPC_ERR_TOO_LARGE,		/* exceeds the runtime's limits: 413 */
	IPC_ERR_CONTEXT			/* prompt longer than the context: 400 */
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

struct ipc_str {			/* bytes, not NUL-terminated, borrowed */
	const char	*p;
	uint32_t	 n;
};

#define IPC_LLM_STR_MAX		64	/* arch and chat template names */

struct ipc_llm_meta {
	uint32_t	n_ctx;		/* context the runtime serves */
	uint32_t	n_vocab;
	uint32_t	n_embd;		/* embedding size */
	uint32_t	max_seqs;	/* sequences it steps at once */
	struct ipc_str	arch;		/* "llama", "qwen2" */
	struct ipc_str	chat_template;	/* "chatml", "llama2", "llama3"; ""
					   when the model has none (no chat) */
};

/* What a runtime reports about its model in HELLO. */
struct ipc_meta {
	enum model_format	 format;
	uint64_t		 mem_bytes;	/* resident estimate of the model */
	/* Bytes of model files mapped read-only (weights used in place):
	 * one copy in the page cache however many replicas map them.  On
	 * the wire after the outputs. */
	uint64_t		 shared_bytes;
	uint32_t		 n_inputs;
	uint32_t		 n_outputs;
	struct ipc_tensor_desc	*inputs;	/* n_inputs, owned */
	struct ipc_tensor_desc	*outputs;	/* n_outputs, owned */
	/* MODEL_FORMAT_GGUF only.  After ipc_meta_decode and ipc_meta_copy
	 * its strings are owned by the meta (NUL-terminated copies, freed by
	 * ipc_meta_release); an encoder's may be borrowed. */
	struct ipc_llm_meta	 llm;
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
/* A buffered frame reader over a blocking socket, for a peer that takes
 * frames one after another: each read takes whatever the socket holds, so
 * a small frame costs one read() for its header and payload, and a frame
 * that came behind it none.  Frames are checked as ipc_read_frame() checks
 * them. */
struct ipc_reader {
	uint8_t	*buf;
	size_t	 cap;		/* allocated */
	size_t	 off;		/* unread bytes are buf[off, len) */
	size_t	 len;
	int	 ahead_err;	/* errno of a read-ahead that failed, or 0 */
};
void	ipc_reader_init(struct ipc_reader *);
void	ipc_reader_free(struct ipc_reader *);
/* As ipc_read_frame(), the payload at *payload inside the reader's buffer,
 * valid until the next call on the reader. */
int	ipc_reader_frame(int fd, struct ipc_reader *, struct ipc_hdr *,
	    const uint8_t **payload, uint32_t max_payload);
/* Returns once a byte is buffered (1: before or now), at EOF (0) or on an
 * error (-1), polling for up to spin_ns before it sleeps in read(). */
int	ipc_reader_wait(int fd, struct ipc_reader *, int64_t spin_ns);
/* True if the next frame's header is buffered whole and valid, in *h. */
bool	ipc_reader_peek(const struct ipc_reader *, struct ipc_hdr *,
	    uint32_t max_payload);
/* True if the next frame is buffered whole: a valid header and all of its
 * payload. */
bool	ipc_reader_whole(const struct ipc_reader *, uint32_t max_payload);
/* True if bytes of a next frame are buffered or wait in the socket:
 * the peer sent it before it had this one's answer. */
bool	ipc_reader_pending(int fd, const struct ipc_reader *);
/* Moves from's unread bytes into to, in place of to's own, so that from
 * holds only frames already taken (their payloads stay where they are)
 * and to goes on where from stopped.  0, or -1 (errno ENOMEM) with both
 * unchanged. */
int	ipc_reader_move(struct ipc_reader *from, struct ipc_reader *to);
/* Reading ahead on a second thread.  The frames' consumer hands a reader
 * to a reading thread and takes it back when it wants the next frame,
 * without waiting for that thread to wake: *state says whose the reader
 * is.
 *   IPC_AHEAD_IDLE  no read-ahead; the consumer may start one, setting
 *                   RUN before the thread calls ipc_reader_ahead()
 *   IPC_AHEAD_RUN   the reader is the reading thread's
 *   IPC_AHEAD_READ  the thread is looking at it or reading into it
 *   IPC_AHEAD_DONE  the thread stopped by itself; the reader is the
 *                   consumer's again once ipc_reader_reclaim() says so
 *   IPC_AHEAD_STOP  the consumer took it back first; the thread touches
 *                   it no more and sets IDLE as it leaves */
enum ipc_ahead {
	IPC_AHEAD_IDLE, IPC_AHEAD_RUN, IPC_AHEAD_READ, IPC_AHEAD_DONE,
	IPC_AHEAD_STOP
};
/* The reading thread's part: reads into r until the next frame is
 * buffered whole or its header is found bad (1), the peer closes (0) or
 * reading fails (-1, errno, also left in r->ahead_err; ENOMEM when the
 * buffer cannot grow), then sets DONE; or until the consumer takes r back
 * (then 1, and IDLE).
 * wakefd ends its wait in poll() when readable and is drained here. */
int	ipc_reader_ahead(int fd, struct ipc_reader *r, int wakefd,
	    atomic_int *state, uint32_t max_payload);
/* The consumer's part: takes the reader back, waiting only for a read
 * already under way, and makes wakefd readable if the thread may be in
 * poll().  True if the thread had stopped by itself (its result stands),
 * false if it was cut short.  Either way the reader now holds what came
 * after the frames already taken. */
bool	ipc_reader_reclaim(atomic_int *state, int wakefd);
/* Prepends nothing: builds header + payload into one buffer (owned by w). */
void	ipc_frame_build(struct wbuf *w, enum ipc_type, uint64_t req_id,
	    const void *payload, size_t len);

/* --- the shared window ---
 * maasd gives each runtime a memfd of IPC_SHM_SIZE bytes, one slot of
 * IPC_SHM_SLOT per INFER it may have in flight.  It writes an INFER's
 * payload into a free slot and sends INFER_SHM, naming where, instead of
 * the payload itself: through the socket a batch's input costs each
 * process a copy through the kernel (tens of microseconds for a batch-64
 * MLP's 200 KB), and at batch 64 the CPUs that pay them are the ones the
 * products want.  maasd maps the window writable and then seals it
 * (no resizing, no new writable mapping: F_SEAL_FUTURE_WRITE), so the
 * runtime can map it only read-only and can never shrink it under maasd;
 * maasd writes a slot only once the runtime has answered the INFER in it,
 * and never reads the window.  A payload that does not fit a slot goes
 * through the socket as before. */
#define IPC_SHM_SLOTS		2
#define IPC_SHM_SLOT		(16U << 20)
#define IPC_SHM_SIZE		((size_t)IPC_SHM_SLOTS * IPC_SHM_SLOT)
#define IPC_SHM_REF_LEN		16
/* The window's place for the payload: its first tensor's elements are
 * put on a 64-byte boundary, so the runtime computes on them where they
 * lie.  The offset within a slot (0..63) at which to write payload. */
size_t	ipc_shm_pad(const uint8_t *payload, size_t len);
/* maasd's part: a sealed memfd of size bytes, mapped writable at *map;
 * the fd (for the child), or -1 (errno set, nothing left open). */
int	ipc_shm_create(size_t size, uint8_t **map);
/* The runtime's part: maps fd read-only and closes it; the window's size
 * in *size, or NULL if fd is not a window of a size up to max. */
const uint8_t *ipc_shm_map(int fd, size_t max, size_t *size);
void	ipc_shm_ref_encode(uint8_t out[IPC_SHM_REF_LEN], uint64_t off,
	    uint64_t len);
/* 0 and the payload's place if the n bytes at p are a reference that
 * lies inside a window of size bytes and is no longer than a frame; -1
 * else. */
int	ipc_shm_ref_decode(const uint8_t *p, size_t n, size_t size,
	    uint64_t *off, uint64_t *len);

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

/* --- LLM generation (GGUF runtimes) ---
 * GENERATE  maasd -> runtime: struct ipc_gen_req (a chat, a completion or
 *           an embedding).  The runtime applies the chat template,
 *           tokenizes, and steps it with the other sequences it holds
 *           (continuous batching).
 * TOKEN     runtime -> maasd, same request id, once per generated token:
 *           struct ipc_gen_token.  text holds whole UTF-8 characters only
 *           (bytes of an unfinished one wait for the next token) and
 *           never a part of a stop string: text that could still become
 *           a stop string is held back until it cannot.  A token that
 *           ends generation (eos, end of turn) gets no TOKEN but counts
 *           in completion_tokens; text still held back when generation
 *           ends (eos or length) comes in one last TOKEN with id -1 (no
 *           token, no logprobs).  A token that completes a stop string
 *           gets its TOKEN, with the text before the stop string.
 * DONE      runtime -> maasd: struct ipc_gen_done, the exact usage.  Ends
 *           the request (also after CANCEL).  INFER_ERR ends it instead
 *           when it fails before producing anything (IPC_ERR_CONTEXT: the
 *           prompt does not fit the context).
 * CANCEL    maasd -> runtime, empty, the request's id: stop at once; DONE
 *           follows with what was produced (finish IPC_FINISH_CANCELLED).
 * HELLO of a GGUF runtime has format MODEL_FORMAT_GGUF, no tensors, and
 * struct ipc_llm_meta appended after the tensor descriptions. */
#define IPC_IMSG_MAX		4096		/* chat messages per request */
#define IPC_STOP_MAX		4		/* stop strings, as OpenAI */
#define IPC_STOP_LEN		256		/* bytes per stop string */
#define IPC_TOP_MAX		20		/* top_logprobs */
#define IPC_BIAS_MAX		300		/* logit_bias entries */

enum ipc_gen_mode {
	IPC_GEN_CHAT = 1,
	IPC_GEN_COMPLETION,
	IPC_GEN_EMBEDDING
};

enum ipc_finish {
	IPC_FINISH_STOP = 1,		/* eos / end-of-turn token or a stop string */
	IPC_FINISH_LENGTH,		/* max_tokens or the context is full */
	IPC_FINISH_CANCELLED
};

struct ipc_gen_req {
	enum ipc_gen_mode	 mode;
	struct ipc_str		 tenant;	/* caches never cross tenants */
	/* IPC_GEN_CHAT: n_msgs (role, content) pairs; otherwise prompt. */
	uint32_t		 n_msgs;
	struct ipc_str		*roles;		/* n_msgs */
	struct ipc_str		*contents;	/* n_msgs */
	struct ipc_str		 prompt;
	uint32_t		 max_tokens;	/* 0: up to the context */
	float			 temperature, top_p, min_p;
	float			 presence_penalty, frequency_penalty;
	uint32_t		 top_k;
	uint64_t		 seed;
	uint8_t			 logprobs;	/* 0/1 */
	uint8_t			 top_logprobs;	/* 0..IPC_TOP_MAX */
	uint32_t		 n_stop;
	struct ipc_str		 stop[IPC_STOP_MAX];
	uint32_t		 n_bias;
	int32_t			*bias_tok;	/* n_bias */
	float			*bias_val;	/* n_bias */
};

struct ipc_gen_logprob {
	struct ipc_str	token;		/* the token's bytes */
	float		logprob;
};

struct ipc_gen_token {
	int32_t			 id;
	struct ipc_str		 text;		/* may be empty (held back) */
	struct ipc_gen_logprob	 lp;		/* when logprobs were asked */
	uint32_t		 n_top;
	struct ipc_gen_logprob	 top[IPC_TOP_MAX];
};

struct ipc_gen_done {
	enum ipc_finish	 finish;
	uint32_t	 prompt_tokens;
	uint32_t	 cached_tokens;		/* prompt tokens reused */
	uint32_t	 completion_tokens;
	uint64_t	 compute_us;
	uint32_t	 n_embd;		/* IPC_GEN_EMBEDDING: vector */
	const uint8_t	*embd;			/* n_embd LE f32, unaligned */
};

/* Encoders append to w; decoders read all of r (trailing bytes are an
 * error), check every count against the maxima above and the bytes left
 * before allocating, and borrow strings from r's buffer.  ipc_gen_req_decode
 * allocates roles/contents/bias arrays: release with ipc_gen_req_release. */
void	ipc_gen_req_encode(struct wbuf *, const struct ipc_gen_req *);
int	ipc_gen_req_decode(struct rbuf *, struct ipc_gen_req *);
void	ipc_gen_req_release(struct ipc_gen_req *);
void	ipc_gen_token_encode(struct wbuf *, const struct ipc_gen_token *);
int	ipc_gen_token_decode(struct rbuf *, struct ipc_gen_token *);
void	ipc_gen_done_encode(struct wbuf *, const struct ipc_gen_done *);
int	ipc_gen_done_decode(struct rbuf *, struct ipc_gen_done *);
void	ipc_llm_meta_encode(struct wbuf *, const struct ipc_llm_meta *);
int	ipc_llm_meta_decode(struct rbuf *, struct ipc_llm_meta *);

const char *ipc_type_name(enum ipc_type);
#endif
