/* scheduler/batch.c - see batch.h.  Tensor lists are walked in place with
 * an rbuf (the IPC wire format of common/ipc.h); nothing is decoded into
 * per-tensor arrays, so a batch costs one pass over its bytes. */
#include <string.h>

#include "common/ipc.h"
#include "common/tensor.h"
#include "scheduler/batch.h"

/* One tensor header as it sits in a payload. */
struct thdr {
	const uint8_t	*name;		/* borrowed, nlen bytes */
	uint16_t	 nlen;
	uint8_t		 dtype;
	uint8_t		 ndim;
	int64_t		 dims[TENSOR_MAX_DIMS];
	uint64_t	 nbytes;
	const uint8_t	*data;		/* borrowed, nbytes */
};

static int	thdr_get(struct rbuf *, struct thdr *);
static void	thdr_put(struct wbuf *, const struct thdr *, int64_t dim0,
		    uint64_t nbytes);
static uint64_t	hash_bytes(uint64_t, const void *, size_t);

/* Reads and checks one tensor: a fixed-size dtype, dims >= 0 whose
 * product matches nbytes. */
static int
thdr_get(struct rbuf *r, struct thdr *t)
{
	uint64_t	count;
	size_t		esz;

	if (rbuf_u16(r, &t->nlen) == -1 ||
	    rbuf_bytes(r, &t->name, t->nlen) == -1 ||
	    rbuf_u8(r, &t->dtype) == -1 || rbuf_u8(r, &t->ndim) == -1)
		return -1;
	if (t->ndim > TENSOR_MAX_DIMS)
		return -1;
	for (int i = 0; i < t->ndim; i++)
		if (rbuf_i64(r, &t->dims[i]) == -1)
			return -1;
	if (rbuf_u64(r, &t->nbytes) == -1)
		return -1;
	if (!dtype_valid(t->dtype) || (esz = dtype_size(t->dtype)) == 0 ||
	    tensor_count(t->dims, t->ndim, esz, IPC_MAX_PAYLOAD,
	    &count) == -1 || count * esz != t->nbytes ||
	    t->nbytes > rbuf_left(r))
		return -1;
	return rbuf_bytes(r, &t->data, (size_t)t->nbytes);
}

static void
thdr_put(struct wbuf *w, const struct thdr *t, int64_t dim0,
    uint64_t nbytes)
{
	wbuf_u16(w, t->nlen);
	wbuf_put(w, t->name, t->nlen);
	wbuf_u8(w, t->dtype);
	wbuf_u8(w, t->ndim);
	wbuf_i64(w, dim0);
	for (int i = 1; i < t->ndim; i++)
		wbuf_i64(w, t->dims[i]);
	wbuf_u64(w, nbytes);
}

static uint64_t
hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t	*b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

uint32_t
batch_rows(const uint8_t *payload, size_t len, uint64_t *sig)
{
	struct rbuf	r;
	struct thdr	t;
	uint64_t	h = 1469598103934665603ULL;
	uint32_t	n;
	int64_t		rows = -1;

	rbuf_init(&r, payload, len);
	if (rbuf_u32(&r, &n) == -1 || n == 0 || n > IPC_MAX_TENSORS)
		return 0;
	h = hash_bytes(h, &n, sizeof(n));
	for (uint32_t i = 0; i < n; i++) {
		if (thdr_get(&r, &t) == -1 || t.ndim == 0)
			return 0;
		if (rows == -1)
			rows = t.dims[0];
		if (t.dims[0] != rows)
			return 0;
		/* Rows of equal size only (not BYTES tensors, whose elements
		 * vary): that is what batch_concat and batch_split cut by. */
		if (rows < 1 || t.nbytes % (uint64_t)rows != 0)
			return 0;
		h = hash_bytes(h, t.name, t.nlen);
		h = hash_bytes(h, &t.dtype, 1);
		h = hash_bytes(h, &t.ndim, 1);
		h = hash_bytes(h, t.dims + 1, sizeof(t.dims[0]) *
		    (size_t)(t.ndim - 1));
	}
	if (rows < 1 || rows > UINT32_MAX)
		return 0;
	{
		/* The requested outputs must parse to the end as well. */
		struct rbuf	o = r;
		const uint8_t	*name;
		uint32_t	 nout;
		uint16_t	 nlen;

		if (rbuf_u32(&o, &nout) == -1 || nout > IPC_MAX_TENSORS)
			return 0;
		for (uint32_t i = 0; i < nout; i++)
			if (rbuf_u16(&o, &nlen) == -1 ||
			    rbuf_bytes(&o, &name, nlen) == -1)
				return 0;
		if (rbuf_left(&o) != 0)
			return 0;
	}
	/* The rest is the requested outputs: the same bytes or no batch. */
	h = hash_bytes(h, payload + r.off, rbuf_left(&r));
	*sig = h;
	return (uint32_t)rows;
}

bool
batch_compatible(const uint8_t *a, size_t alen, const uint8_t *b,
    size_t blen)
{
	struct rbuf	ra, rb;
	struct thdr	ta, tb;
	uint32_t	na, nb;

	rbuf_init(&ra, a, alen);
	rbuf_init(&rb, b, blen);
	if (rbuf_u32(&ra, &na) == -1 || rbuf_u32(&rb, &nb) == -1 || na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++) {
		if (thdr_get(&ra, &ta) == -1 || thdr_get(&rb, &tb) == -1)
			return false;
		if (ta.nlen != tb.nlen || memcmp(ta.name, tb.name, ta.nlen) ||
		    ta.dtype != tb.dtype || ta.ndim != tb.ndim ||
		    ta.ndim == 0 || memcmp(ta.dims + 1, tb.dims + 1,
		    sizeof(ta.dims[0]) * (size_t)(ta.ndim - 1)) != 0)
			return false;
	}
	return rbuf_left(&ra) == rbuf_left(&rb) &&
	    memcmp(a + ra.off, b + rb.off, rbuf_left(&ra)) == 0;
}

int
batch_concat(struct wbuf *out, const struct wbuf *const *parts, size_t n,
    uint32_t total, size_t max)
{
	struct rbuf	r[BATCH_MAX_JOBS];
	struct thdr	t;
	uint64_t	size = 4;
	uint32_t	nt = 0, nj;

	if (n == 0 || n > BATCH_MAX_JOBS)
		return -1;
	for (size_t j = 0; j < n; j++) {
		rbuf_init(&r[j], parts[j]->data, parts[j]->len);
		if (rbuf_u32(&r[j], &nj) == -1 || (j > 0 && nj != nt))
			return -1;
		nt = nj;
		size += parts[j]->len;
	}
	if (size > max)
		return -1;
	wbuf_reset(out);
	wbuf_u32(out, nt);
	for (uint32_t i = 0; i < nt; i++) {
		uint64_t	row_bytes = 0;

		for (size_t j = 0; j < n; j++) {
			if (thdr_get(&r[j], &t) == -1 || t.ndim == 0 ||
			    t.dims[0] < 1)
				return -1;
			if (j == 0) {
				row_bytes = t.nbytes / (uint64_t)t.dims[0];
				thdr_put(out, &t, total, row_bytes * total);
			}
			if (t.nbytes != row_bytes * (uint64_t)t.dims[0])
				return -1;
			wbuf_put(out, t.data, (size_t)t.nbytes);
		}
	}
	/* Requested outputs, the same in every part. */
	wbuf_put(out, parts[0]->data + r[0].off, rbuf_left(&r[0]));
	return 0;
}

int
batch_split(struct wbuf *out, const uint8_t *list, size_t len,
    uint32_t total, uint32_t first, uint32_t rows)
{
	struct rbuf	r;
	struct thdr	t;
	uint32_t	n;

	if (total == 0 || rows == 0 || first > total ||
	    rows > total - first)
		return -1;
	rbuf_init(&r, list, len);
	if (rbuf_u32(&r, &n) == -1 || n > IPC_MAX_TENSORS)
		return -1;
	wbuf_reset(out);
	wbuf_u32(out, n);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t	row_bytes;

		if (thdr_get(&r, &t) == -1 || t.ndim == 0 ||
		    t.dims[0] != (int64_t)total)
			return -1;
		row_bytes = t.nbytes / total;
		thdr_put(out, &t, rows, row_bytes * rows);
		wbuf_put(out, t.data + row_bytes * first,
		    (size_t)(row_bytes * rows));
	}
	return rbuf_left(&r) == 0 ? 0 : -1;
}
