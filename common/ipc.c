/* common/ipc.c - see ipc.h.  The decoders here read bytes from a peer that
 * may be compromised, so every length is checked before use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/xmalloc.h"

static const char *ipc_type_names[IPC_TYPE_MAX] = {
	[IPC_HELLO] = "HELLO", [IPC_ERROR] = "ERROR", [IPC_INFER] = "INFER",
	[IPC_INFER_OK] = "INFER_OK", [IPC_INFER_ERR] = "INFER_ERR",
	[IPC_GENERATE] = "GENERATE", [IPC_TOKEN] = "TOKEN",
	[IPC_DONE] = "DONE", [IPC_CANCEL] = "CANCEL", [IPC_PING] = "PING",
	[IPC_PONG] = "PONG",
};

static int	ipc_get_desc(struct rbuf *, struct ipc_tensor_desc *);
static void	ipc_put_desc(struct wbuf *, const struct ipc_tensor_desc *);
static int	skip_payload(int, size_t);

const char *
ipc_type_name(enum ipc_type t)
{
	if ((int)t <= 0 || t >= IPC_TYPE_MAX)
		return "UNKNOWN";
	return ipc_type_names[t];
}

/* --- frames --- */

void
ipc_hdr_encode(const struct ipc_hdr *h, uint8_t out[IPC_HDR_LEN])
{
	le32_put(out, h->magic);
	le16_put(out + 4, h->version);
	le16_put(out + 6, h->type);
	le64_put(out + 8, h->req_id);
	le32_put(out + 16, h->len);
}

int
ipc_hdr_decode(const uint8_t in[IPC_HDR_LEN], struct ipc_hdr *h,
    uint32_t max_payload)
{
	h->magic = le32_get(in);
	h->version = le16_get(in + 4);
	h->type = le16_get(in + 6);
	h->req_id = le64_get(in + 8);
	h->len = le32_get(in + 16);
	if (h->magic != IPC_MAGIC || h->version != IPC_VERSION)
		return -1;
	if (h->type == 0 || h->type >= IPC_TYPE_MAX)
		return -1;
	if (h->len > max_payload || h->len > IPC_MAX_PAYLOAD)
		return -1;
	return 0;
}

void
ipc_frame_build(struct wbuf *w, enum ipc_type type, uint64_t req_id,
    const void *payload, size_t len)
{
	struct ipc_hdr	h = {
		.magic = IPC_MAGIC, .version = IPC_VERSION,
		.type = (uint16_t)type, .req_id = req_id, .len = (uint32_t)len
	};

	ipc_hdr_encode(&h, wbuf_reserve(w, IPC_HDR_LEN));
	wbuf_put(w, payload, len);
}

static int
write_all(int fd, const void *buf, size_t n)
{
	const uint8_t	*p = buf;

	while (n > 0) {
		ssize_t	r = send(fd, p, n, MSG_NOSIGNAL);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == ENOTSOCK)
			r = write(fd, p, n);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* 1: filled, 0: EOF before any byte, -1: error or EOF mid-way. */
static int
read_all(int fd, void *buf, size_t n)
{
	uint8_t	*p = buf;
	size_t	 got = 0;

	while (got < n) {
		ssize_t	r = read(fd, p + got, n - got);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 0) {
			if (got == 0)
				return 0;
			errno = EPROTO;
			return -1;
		}
		got += (size_t)r;
	}
	return 1;
}

/* Reads and drops n payload bytes: -1 with errno ENOMEM once they are
 * gone (the stream is still in step), or -1 as read_all fails. */
static int
skip_payload(int fd, size_t n)
{
	uint8_t	tmp[4096];
	size_t	k;
	int	r;

	while (n > 0) {
		k = n < sizeof(tmp) ? n : sizeof(tmp);
		if ((r = read_all(fd, tmp, k)) != 1) {
			if (r == 0)
				errno = EPROTO;	/* EOF inside the frame */
			return -1;
		}
		n -= k;
	}
	errno = ENOMEM;
	return -1;
}

int
ipc_write_frame(int fd, enum ipc_type type, uint64_t req_id,
    const void *payload, size_t len)
{
	uint8_t		hdr[IPC_HDR_LEN];
	struct ipc_hdr	h = {
		.magic = IPC_MAGIC, .version = IPC_VERSION,
		.type = (uint16_t)type, .req_id = req_id, .len = (uint32_t)len
	};

	if (len > IPC_MAX_PAYLOAD) {
		errno = EMSGSIZE;
		return -1;
	}
	ipc_hdr_encode(&h, hdr);
	if (write_all(fd, hdr, sizeof(hdr)) == -1)
		return -1;
	return len ? write_all(fd, payload, len) : 0;
}

/* Beyond what ipc.h says: a payload that cannot be allocated is read and
 * dropped, and -1 returned with errno ENOMEM and *h filled; the stream is
 * still in step, so the caller may refuse just that request. */
int
ipc_read_frame(int fd, struct ipc_hdr *h, uint8_t **buf, size_t *bufcap,
    uint32_t max_payload)
{
	uint8_t	hdr[IPC_HDR_LEN];
	int	r;

	if ((r = read_all(fd, hdr, sizeof(hdr))) <= 0)
		return r;
	if (ipc_hdr_decode(hdr, h, max_payload) == -1) {
		errno = EPROTO;
		return -1;
	}
	if (h->len > *bufcap) {
		uint8_t	*nb;

		/* Not xrealloc: a frame the peer may send but we cannot
		 * hold (RLIMIT_AS) is skipped and reported, not fatal. */
		if ((nb = realloc(*buf, h->len)) == NULL)
			return skip_payload(fd, h->len);
		*buf = nb;
		*bufcap = h->len;
	}
	if (h->len > 0 && read_all(fd, *buf, h->len) != 1) {
		if (errno == 0)
			errno = EPROTO;
		return -1;
	}
	return 1;
}

/* --- tensor lists --- */

static void
ipc_put_desc(struct wbuf *w, const struct ipc_tensor_desc *d)
{
	wbuf_str16(w, d->name);
	wbuf_u8(w, (uint8_t)d->dtype);
	wbuf_u8(w, (uint8_t)d->ndim);
	for (int i = 0; i < d->ndim; i++)
		wbuf_i64(w, d->dims[i]);
}

/* Reads name, dtype, ndim, dims; dims may be -1 (dynamic) here. */
static int
ipc_get_desc(struct rbuf *r, struct ipc_tensor_desc *d)
{
	uint8_t	dt, nd;

	memset(d, 0, sizeof(*d));
	if (rbuf_str16(r, d->name, sizeof(d->name)) == -1 ||
	    rbuf_u8(r, &dt) == -1 || rbuf_u8(r, &nd) == -1)
		return -1;
	if (!dtype_valid(dt) || nd > TENSOR_MAX_DIMS) {
		r->err = true;
		return -1;
	}
	d->dtype = (enum dtype)dt;
	d->ndim = nd;
	for (int i = 0; i < nd; i++) {
		if (rbuf_i64(r, &d->dims[i]) == -1)
			return -1;
		if (d->dims[i] < -1) {
			r->err = true;
			return -1;
		}
	}
	return 0;
}

void
ipc_put_tensor_header(struct wbuf *w, const struct ipc_tensor_desc *d,
    uint64_t nbytes)
{
	ipc_put_desc(w, d);
	wbuf_u64(w, nbytes);
}

void
ipc_put_tensor(struct wbuf *w, const struct ipc_tensor_desc *d,
    const void *data, uint64_t nbytes)
{
	ipc_put_tensor_header(w, d, nbytes);
	wbuf_put(w, data, (size_t)nbytes);
}

int
ipc_get_tensors(struct rbuf *r, struct ipc_tensor *out, size_t max)
{
	uint32_t	n;

	if (rbuf_u32(r, &n) == -1)
		return -1;
	if (n > max || n > IPC_MAX_TENSORS) {
		r->err = true;
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct ipc_tensor	*t = &out[i];
		uint64_t		 count;
		size_t			 esz;

		if (ipc_get_desc(r, &t->desc) == -1 ||
		    rbuf_u64(r, &t->nbytes) == -1)
			return -1;
		esz = dtype_size(t->desc.dtype);
		/* Concrete tensors have no dynamic dims.  BYTES tensors
		 * carry their own framing, bounded by nbytes. */
		if (tensor_count(t->desc.dims, t->desc.ndim, esz,
		    IPC_MAX_PAYLOAD, &count) == -1 ||
		    (esz != 0 && count * esz != t->nbytes) ||
		    t->nbytes > rbuf_left(r)) {
			r->err = true;
			return -1;
		}
		if (rbuf_bytes(r, &t->data, (size_t)t->nbytes) == -1)
			return -1;
	}
	return (int)n;
}

/* --- model metadata --- */

void
ipc_meta_encode(struct wbuf *w, const struct ipc_meta *m)
{
	wbuf_u8(w, (uint8_t)m->format);
	wbuf_u64(w, m->mem_bytes);
	wbuf_u32(w, m->n_inputs);
	for (uint32_t i = 0; i < m->n_inputs; i++)
		ipc_put_desc(w, &m->inputs[i]);
	wbuf_u32(w, m->n_outputs);
	for (uint32_t i = 0; i < m->n_outputs; i++)
		ipc_put_desc(w, &m->outputs[i]);
}

static int
ipc_get_desc_list(struct rbuf *r, uint32_t *n, struct ipc_tensor_desc **out)
{
	if (rbuf_u32(r, n) == -1)
		return -1;
	/* Each desc takes at least 4 bytes on the wire: bound before alloc. */
	if (*n > IPC_MAX_TENSORS || *n > rbuf_left(r) / 4) {
		r->err = true;
		return -1;
	}
	*out = xcalloc(*n ? *n : 1, sizeof(**out));
	for (uint32_t i = 0; i < *n; i++)
		if (ipc_get_desc(r, &(*out)[i]) == -1)
			return -1;
	return 0;
}

int
ipc_meta_decode(struct rbuf *r, struct ipc_meta *m)
{
	uint8_t	fmt;

	memset(m, 0, sizeof(*m));
	if (rbuf_u8(r, &fmt) == -1 || rbuf_u64(r, &m->mem_bytes) == -1)
		goto bad;
	if (fmt != MODEL_FORMAT_ONNX && fmt != MODEL_FORMAT_GGUF)
		goto bad;
	m->format = (enum model_format)fmt;
	if (ipc_get_desc_list(r, &m->n_inputs, &m->inputs) == -1 ||
	    ipc_get_desc_list(r, &m->n_outputs, &m->outputs) == -1)
		goto bad;
	return 0;
 bad:
	ipc_meta_release(m);
	r->err = true;
	return -1;
}

void
ipc_meta_release(struct ipc_meta *m)
{
	if (m == NULL)
		return;
	free(m->inputs);
	free(m->outputs);
	memset(m, 0, sizeof(*m));
}

void
ipc_meta_copy(struct ipc_meta *dst, const struct ipc_meta *src)
{
	*dst = *src;
	dst->inputs = xcalloc(src->n_inputs ? src->n_inputs : 1,
	    sizeof(*dst->inputs));
	dst->outputs = xcalloc(src->n_outputs ? src->n_outputs : 1,
	    sizeof(*dst->outputs));
	if (src->n_inputs)
		memcpy(dst->inputs, src->inputs,
		    src->n_inputs * sizeof(*dst->inputs));
	if (src->n_outputs)
		memcpy(dst->outputs, src->outputs,
		    src->n_outputs * sizeof(*dst->outputs));
}
