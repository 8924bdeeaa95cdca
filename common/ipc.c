/* common/ipc.c - see ipc.h.  The decoders here read bytes from a peer that
 * may be compromised, so every length is checked before use. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/xmalloc.h"

static const char *ipc_type_names[IPC_TYPE_MAX] = {
	[IPC_HELLO] = "HELLO", [IPC_ERROR] = "ERROR", [IPC_INFER] = "INFER",
	[IPC_INFER_OK] = "INFER_OK", [IPC_INFER_ERR] = "INFER_ERR",
	[IPC_GENERATE] = "GENERATE", [IPC_TOKEN] = "TOKEN",
	[IPC_DONE] = "DONE", [IPC_CANCEL] = "CANCEL", [IPC_PING] = "PING",
	[IPC_PONG] = "PONG", [IPC_INFER_SHM] = "INFER_SHM",
};

static int	ipc_get_desc(struct rbuf *, struct ipc_tensor_desc *);
static void	ipc_put_desc(struct wbuf *, const struct ipc_tensor_desc *);
static int	skip_payload(int, size_t);
static char	*str_dup(const struct ipc_str *);
static void	put_str16(struct wbuf *, const struct ipc_str *);
static void	put_str32(struct wbuf *, const struct ipc_str *);
static int	get_str16(struct rbuf *, struct ipc_str *, size_t);
static int	get_str32(struct rbuf *, struct ipc_str *, size_t);
static void	put_f32(struct wbuf *, float);
static int	get_f32(struct rbuf *, float *);

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

/* Writes n buffers in full, in one call where the socket takes them: a
 * frame's header and payload then reach the peer together, which wakes
 * once per frame instead of once per part.  Consumes iov.  0, or -1. */
static int
write_iov(int fd, struct iovec *iov, int n)
{
	struct msghdr	mh;

	while (n > 0) {
		ssize_t	r;

		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)n;
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == ENOTSOCK)
			r = writev(fd, iov, n);
		if (r <= 0)
			return -1;
		for (; n > 0 && (size_t)r >= iov->iov_len; iov++, n--)
			r -= (ssize_t)iov->iov_len;
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* How long read_all() polls for the rest of a frame that arrived in part
 * before it sleeps in read().  A large frame (a batch-64 tensor) crosses
 * the socket in pieces while the writer is still copying; sleeping between
 * them costs a wake-up each time (tens of microseconds on a VM whose idle
 * vCPU halts), polling costs at most this much CPU per frame. */
#define IPC_SPIN_NS	100000
/* Polls of the read-ahead's state before the consumer yields the CPU. */
#define IPC_AHEAD_SPIN	4000

/* Reads what is there without blocking, for up to spin_ns: the byte
 * count, 0 at EOF, or -1 with errno EAGAIN when nothing came in time (or
 * fd is no socket) and another error otherwise. */
static ssize_t
read_spin(int fd, void *p, size_t n, int64_t spin_ns)
{
	struct timespec	t0, t;
	ssize_t		r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if ((r = recv(fd, p, n, MSG_DONTWAIT)) != -1)
			return r;
		if (errno == ENOTSOCK) {
			errno = EAGAIN;
			return -1;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((int64_t)(t.tv_sec - t0.tv_sec) * 1000000000 +
		    (t.tv_nsec - t0.tv_nsec) >= spin_ns) {
			errno = EAGAIN;
			return -1;
		}
	}
}

/* 1: filled, 0: EOF before any byte, -1: error or EOF mid-way.  Once part
 * of n has come, the rest is polled for before read() may sleep. */
static int
read_all(int fd, void *buf, size_t n)
{
	uint8_t	*p = buf;
	size_t	 got = 0;

	while (got < n) {
		ssize_t	r = -1;

		if (got > 0 && (r = read_spin(fd, p + got, n - got,
		    IPC_SPIN_NS)) == -1 &&
		    errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (r == -1)
			r = read(fd, p + got, n - got);
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
	struct iovec	iov[2];
	struct ipc_hdr	h = {
		.magic = IPC_MAGIC, .version = IPC_VERSION,
		.type = (uint16_t)type, .req_id = req_id, .len = (uint32_t)len
	};

	if (len > IPC_MAX_PAYLOAD) {
		errno = EMSGSIZE;
		return -1;
	}
	ipc_hdr_encode(&h, hdr);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)payload;
	iov[1].iov_len = len;
	return write_iov(fd, iov, len ? 2 : 1);
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

/* --- buffered frame reader --- */

#define IPC_READER_MIN	(64u << 10)	/* first buffer */

void
ipc_reader_init(struct ipc_reader *r)
{
	memset(r, 0, sizeof(*r));
}

void
ipc_reader_free(struct ipc_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

/* Room for want bytes from r->off on: the unread bytes moved to the
 * front if that makes it, else the buffer grown.  -1 (errno ENOMEM) if
 * it cannot grow. */
static int
reader_room(struct ipc_reader *r, size_t want)
{
	uint8_t	*nb;
	size_t	 ncap;

	if (r->cap - r->off >= want)
		return 0;
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->cap >= want)
		return 0;
	ncap = want < IPC_READER_MIN ? IPC_READER_MIN : want;
	/* Not xrealloc: a frame the peer may send but we cannot hold
	 * (RLIMIT_AS) is skipped and reported, not fatal. */
	if ((nb = realloc(r->buf, ncap)) == NULL)
		return -1;
	r->buf = nb;
	r->cap = ncap;
	return 0;
}

/* One read of what fd has, into the free end of the buffer: the want
 * bytes the frame lacks and what may follow them, up to IPC_READER_MIN
 * in all (so that a small frame behind comes in the same read, but never
 * much of a large one, which the next frame would move to the front);
 * polled for up to spin_ns, then blocking.  As read(): the count, 0 at
 * EOF, -1. */
static ssize_t
reader_fill(int fd, struct ipc_reader *r, size_t want, int64_t spin_ns)
{
	size_t	max = want > IPC_READER_MIN ? want : IPC_READER_MIN;
	ssize_t	n = -1;

	if (max > r->cap - r->len)
		max = r->cap - r->len;
	if (spin_ns > 0 && (n = read_spin(fd, r->buf + r->len, max,
	    spin_ns)) == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
		return -1;
	while (n == -1 && (n = read(fd, r->buf + r->len, max)) == -1 &&
	    errno == EINTR)
		;
	if (n > 0)
		r->len += (size_t)n;
	return n;
}

int
ipc_reader_wait(int fd, struct ipc_reader *r, int64_t spin_ns)
{
	ssize_t	n;

	if (r->len > r->off)
		return 1;
	r->off = r->len = 0;
	if (reader_room(r, IPC_READER_MIN) == -1)
		return -1;
	if ((n = reader_fill(fd, r, 0, spin_ns)) > 0)
		return 1;
	return n == 0 ? 0 : -1;
}

bool
ipc_reader_peek(const struct ipc_reader *r, struct ipc_hdr *h,
    uint32_t max_payload)
{
	return r->len - r->off >= IPC_HDR_LEN &&
	    ipc_hdr_decode(r->buf + r->off, h, max_payload) == 0;
}

int
ipc_reader_frame(int fd, struct ipc_reader *r, struct ipc_hdr *h,
    const uint8_t **payload, uint32_t max_payload)
{
	size_t	need, have;
	ssize_t	n;

	if (r->off == r->len)
		r->off = r->len = 0;
	while (r->len - r->off < IPC_HDR_LEN) {
		if (reader_room(r, IPC_HDR_LEN) == -1)
			return -1;
		if ((n = reader_fill(fd, r, IPC_HDR_LEN - (r->len - r->off),
		    r->len > r->off ? IPC_SPIN_NS : 0)) <= 0) {
			if (n == 0 && r->len == r->off)
				return 0;
			if (n == 0)
				errno = EPROTO;	/* EOF inside a header */
			return -1;
		}
	}
	if (ipc_hdr_decode(r->buf + r->off, h, max_payload) == -1) {
		errno = EPROTO;
		return -1;
	}
	need = IPC_HDR_LEN + (size_t)h->len;
	if (reader_room(r, need) == -1) {
		/* Drop the payload: what is buffered, then the rest. */
		have = r->len - r->off - IPC_HDR_LEN;
		r->off = r->len = 0;
		return skip_payload(fd, h->len - have);
	}
	while (r->len - r->off < need) {
		if ((n = reader_fill(fd, r, need - (r->len - r->off),
		    IPC_SPIN_NS)) <= 0) {
			if (n == 0)
				errno = EPROTO;	/* EOF inside the frame */
			return -1;
		}
	}
	*payload = r->buf + r->off + IPC_HDR_LEN;
	r->off += need;
	return 1;
}

bool
ipc_reader_whole(const struct ipc_reader *r, uint32_t max_payload)
{
	struct ipc_hdr	h;

	return ipc_reader_peek(r, &h, max_payload) &&
	    r->len - r->off - IPC_HDR_LEN >= h.len;
}

bool
ipc_reader_pending(int fd, const struct ipc_reader *r)
{
	uint8_t	b;

	return r->len > r->off ||
	    recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

int
ipc_reader_move(struct ipc_reader *from, struct ipc_reader *to)
{
	size_t	n = from->len - from->off;

	to->off = to->len = 0;
	to->ahead_err = 0;
	if (reader_room(to, n > IPC_READER_MIN ? n : IPC_READER_MIN) == -1)
		return -1;
	memcpy(to->buf, from->buf + from->off, n);
	to->len = n;
	from->len = from->off;
	return 0;
}

/* The reading thread's claim on the reader: false once the consumer has
 * taken it back. */
static bool
ahead_claim(atomic_int *state)
{
	int	run = IPC_AHEAD_RUN;

	return atomic_compare_exchange_strong(state, &run, IPC_AHEAD_READ);
}

int
ipc_reader_ahead(int fd, struct ipc_reader *r, int wakefd, atomic_int *state,
    uint32_t max_payload)
{
	struct pollfd	pf[2] = { { .fd = fd, .events = POLLIN },
			    { .fd = wakefd, .events = POLLIN } };
	struct ipc_hdr	h;
	uint64_t	drain;
	size_t		have, want;
	ssize_t		n;
	int		ret;

	for (;;) {
		if (!ahead_claim(state))
			break;
		have = r->len - r->off;
		if (have < IPC_HDR_LEN)
			want = IPC_HDR_LEN - have;
		else if (ipc_hdr_decode(r->buf + r->off, &h, max_payload) ==
		    -1 || have - IPC_HDR_LEN >= h.len) {
			ret = 1;	/* whole, or bad for the consumer to
					 * report */
			goto done;
		} else
			want = IPC_HDR_LEN + h.len - have;
		if (reader_room(r, have + want) == -1) {
			ret = -1;
			goto done;
		}
		atomic_store(state, IPC_AHEAD_RUN);
		if (poll(pf, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			if (!ahead_claim(state))
				break;
			ret = -1;
			goto done;
		}
		if (pf[1].revents != 0 &&
		    read(wakefd, &drain, sizeof(drain)) == -1) {
			/* EAGAIN: drained already; a wake-up is all it is. */
		}
		if (pf[0].revents == 0)
			continue;
		if (!ahead_claim(state))
			break;
		if ((n = reader_fill(fd, r, want, 0)) == 0) {
			ret = 0;
			goto done;
		}
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			ret = -1;
			goto done;
		}
		atomic_store(state, IPC_AHEAD_RUN);
	}
	/* Taken back: the reader is the consumer's. */
	atomic_store(state, IPC_AHEAD_IDLE);
	return 1;
 done:
	r->ahead_err = ret == -1 ? errno : 0;
	atomic_store(state, IPC_AHEAD_DONE);
	return ret;
}

bool
ipc_reader_reclaim(atomic_int *state, int wakefd)
{
	uint64_t	one = 1;
	int		s;

	for (int i = 0;; i++) {
		s = IPC_AHEAD_RUN;
		if (atomic_compare_exchange_strong(state, &s,
		    IPC_AHEAD_STOP)) {
			if (write(wakefd, &one, sizeof(one)) == -1) {
				/* Full (EAGAIN) is awake enough. */
			}
			return false;
		}
		if (s == IPC_AHEAD_DONE) {
			atomic_store(state, IPC_AHEAD_IDLE);
			return true;
		}
		if (s != IPC_AHEAD_READ)
			return false;	/* IDLE or STOP: not running */
		/* A read of what the socket holds: microseconds, unless the
		 * thread lost its CPU, which yielding gives back. */
		if (i >= IPC_AHEAD_SPIN)
			sched_yield();
	}
}

/* --- the shared window --- */

size_t
ipc_shm_pad(const uint8_t *p, size_t len)
{
	size_t	off;

	/* u32 count | str16 name | u8 dtype | u8 ndim | ndim x i64 |
	 * u64 nbytes | elements */
	if (len < 6 || le32_get(p) == 0)
		return 0;
	off = 6 + le16_get(p + 4);
	if (off + 2 > len)
		return 0;
	off += 2 + 8 * (size_t)p[off + 1] + 8;
	return (64 - off % 64) % 64;
}

int
ipc_shm_create(size_t size, uint8_t **map)
{
	int	fd, saved;

	if ((fd = memfd_create("maas-ipc", MFD_CLOEXEC |
	    MFD_ALLOW_SEALING)) == -1)
		return -1;
	if (ftruncate(fd, (off_t)size) == -1 ||
	    (*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	    0)) == MAP_FAILED)
		goto fail;
	/* The writable mapping above stays writable; no other may be made,
	 * and the size is fixed. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) == -1) {
		saved = errno;
		munmap(*map, size);
		errno = saved;
		goto fail;
	}
	return fd;
 fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

const uint8_t *
ipc_shm_map(int fd, size_t max, size_t *size)
{
	struct stat	 st;
	void		*p = MAP_FAILED;
	int		 seals;

	seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size <= max && seals != -1 &&
	    (seals & F_SEAL_SHRINK) != 0) {
		*size = (size_t)st.st_size;
		p = mmap(NULL, *size, PROT_READ, MAP_SHARED, fd, 0);
	}
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

void
ipc_shm_ref_encode(uint8_t out[IPC_SHM_REF_LEN], uint64_t off, uint64_t len)
{
	le64_put(out, off);
	le64_put(out + 8, len);
}

int
ipc_shm_ref_decode(const uint8_t *p, size_t n, size_t size, uint64_t *off,
    uint64_t *len)
{
	if (n != IPC_SHM_REF_LEN)
		return -1;
	*off = le64_get(p);
	*len = le64_get(p + 8);
	if (*off > size || *len > size - *off || *len > IPC_MAX_PAYLOAD)
		return -1;
	return 0;
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
	wbuf_u64(w, m->shared_bytes);
	if (m->format == MODEL_FORMAT_GGUF)
		ipc_llm_meta_encode(w, &m->llm);
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
	    ipc_get_desc_list(r, &m->n_outputs, &m->outputs) == -1 ||
	    rbuf_u64(r, &m->shared_bytes) == -1)
		goto bad;
	if (m->format == MODEL_FORMAT_GGUF) {
		struct ipc_llm_meta	l;

		/* The llm part ends the payload; its strings are copied
		 * so that the meta outlives the frame. */
		if (ipc_llm_meta_decode(r, &l) == -1)
			goto bad;
		m->llm = l;
		m->llm.arch.p = str_dup(&l.arch);
		m->llm.chat_template.p = str_dup(&l.chat_template);
	}
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
	free((char *)(uintptr_t)m->llm.arch.p);
	free((char *)(uintptr_t)m->llm.chat_template.p);
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
	dst->llm.arch.p = src->llm.arch.p ? str_dup(&src->llm.arch) : NULL;
	dst->llm.chat_template.p = src->llm.chat_template.p ?
	    str_dup(&src->llm.chat_template) : NULL;
}

/* --- LLM generation --- */

/* Strings on the wire: u16 (names, stop strings, token text) or u32
 * (prompts and message contents) length, then the bytes. */

static char *
str_dup(const struct ipc_str *s)
{
	char	*p = xmalloc((size_t)s->n + 1);

	if (s->n)
		memcpy(p, s->p, s->n);
	p[s->n] = '\0';
	return p;
}

static void
put_str16(struct wbuf *w, const struct ipc_str *s)
{
	uint16_t	n = s->n > UINT16_MAX ? UINT16_MAX : (uint16_t)s->n;

	wbuf_u16(w, n);
	wbuf_put(w, s->p, n);
}

static void
put_str32(struct wbuf *w, const struct ipc_str *s)
{
	wbuf_u32(w, s->n);
	wbuf_put(w, s->p, s->n);
}

/* Borrows the bytes from r; -1 past max bytes or the input's end. */
static int
get_str16(struct rbuf *r, struct ipc_str *s, size_t max)
{
	const uint8_t	*p;
	uint16_t	 n;

	if (rbuf_u16(r, &n) == -1)
		return -1;
	if (n > max) {
		r->err = true;
		return -1;
	}
	if (rbuf_bytes(r, &p, n) == -1)
		return -1;
	s->p = (const char *)p;
	s->n = n;
	return 0;
}

static int
get_str32(struct rbuf *r, struct ipc_str *s, size_t max)
{
	const uint8_t	*p;
	uint32_t	 n;

	if (rbuf_u32(r, &n) == -1)
		return -1;
	if (n > max || n > rbuf_left(r)) {
		r->err = true;
		return -1;
	}
	if (rbuf_bytes(r, &p, n) == -1)
		return -1;
	s->p = (const char *)p;
	s->n = n;
	return 0;
}

static void
put_f32(struct wbuf *w, float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	wbuf_u32(w, u);
}

/* Only finite numbers: NaN and infinities are refused here, once. */
static int
get_f32(struct rbuf *r, float *f)
{
	uint32_t	u;

	if (rbuf_u32(r, &u) == -1)
		return -1;
	memcpy(f, &u, sizeof(*f));
	if (!isfinite(*f)) {
		r->err = true;
		return -1;
	}
	return 0;
}

/* Wire form of GENERATE:
 *   u8 mode | str16 tenant | u32 n_msgs, n x (str16 role, str32 content) |
 *   str32 prompt | u32 max_tokens | f32 temperature, top_p, min_p,
 *   presence_penalty, frequency_penalty | u32 top_k | u64 seed |
 *   u8 logprobs | u8 top_logprobs | u32 n_stop, n x str16 |
 *   u32 n_bias, n x (i32 token, f32 value) */
void
ipc_gen_req_encode(struct wbuf *w, const struct ipc_gen_req *q)
{
	wbuf_u8(w, (uint8_t)q->mode);
	put_str16(w, &q->tenant);
	wbuf_u32(w, q->n_msgs);
	for (uint32_t i = 0; i < q->n_msgs; i++) {
		put_str16(w, &q->roles[i]);
		put_str32(w, &q->contents[i]);
	}
	put_str32(w, &q->prompt);
	wbuf_u32(w, q->max_tokens);
	put_f32(w, q->temperature);
	put_f32(w, q->top_p);
	put_f32(w, q->min_p);
	put_f32(w, q->presence_penalty);
	put_f32(w, q->frequency_penalty);
	wbuf_u32(w, q->top_k);
	wbuf_u64(w, q->seed);
	wbuf_u8(w, q->logprobs);
	wbuf_u8(w, q->top_logprobs);
	wbuf_u32(w, q->n_stop);
	for (uint32_t i = 0; i < q->n_stop && i < IPC_STOP_MAX; i++)
		put_str16(w, &q->stop[i]);
	wbuf_u32(w, q->n_bias);
	for (uint32_t i = 0; i < q->n_bias; i++) {
		wbuf_u32(w, (uint32_t)q->bias_tok[i]);
		put_f32(w, q->bias_val[i]);
	}
}

int
ipc_gen_req_decode(struct rbuf *r, struct ipc_gen_req *q)
{
	uint32_t	u;
	uint8_t		mode;

	memset(q, 0, sizeof(*q));
	if (rbuf_u8(r, &mode) == -1 || mode < IPC_GEN_CHAT ||
	    mode > IPC_GEN_EMBEDDING)
		goto bad;
	q->mode = (enum ipc_gen_mode)mode;
	if (get_str16(r, &q->tenant, IPC_NAME_MAX) == -1 ||
	    rbuf_u32(r, &q->n_msgs) == -1)
		goto bad;
	/* A message takes at least 6 bytes (two empty strings). */
	if (q->n_msgs > IPC_IMSG_MAX || q->n_msgs > rbuf_left(r) / 6)
		goto bad;
	q->roles = xcalloc(q->n_msgs ? q->n_msgs : 1, sizeof(*q->roles));
	q->contents = xcalloc(q->n_msgs ? q->n_msgs : 1,
	    sizeof(*q->contents));
	for (uint32_t i = 0; i < q->n_msgs; i++)
		if (get_str16(r, &q->roles[i], IPC_NAME_MAX) == -1 ||
		    get_str32(r, &q->contents[i], IPC_MAX_PAYLOAD) == -1)
			goto bad;
	if (get_str32(r, &q->prompt, IPC_MAX_PAYLOAD) == -1 ||
	    rbuf_u32(r, &q->max_tokens) == -1 ||
	    get_f32(r, &q->temperature) == -1 ||
	    get_f32(r, &q->top_p) == -1 || get_f32(r, &q->min_p) == -1 ||
	    get_f32(r, &q->presence_penalty) == -1 ||
	    get_f32(r, &q->frequency_penalty) == -1 ||
	    rbuf_u32(r, &q->top_k) == -1 || rbuf_u64(r, &q->seed) == -1 ||
	    rbuf_u8(r, &q->logprobs) == -1 ||
	    rbuf_u8(r, &q->top_logprobs) == -1 ||
	    rbuf_u32(r, &q->n_stop) == -1)
		goto bad;
	if (q->logprobs > 1 || q->top_logprobs > IPC_TOP_MAX ||
	    q->n_stop > IPC_STOP_MAX)
		goto bad;
	for (uint32_t i = 0; i < q->n_stop; i++)
		if (get_str16(r, &q->stop[i], IPC_STOP_LEN) == -1 ||
		    q->stop[i].n == 0)
			goto bad;
	if (rbuf_u32(r, &q->n_bias) == -1)
		goto bad;
	if (q->n_bias > IPC_BIAS_MAX || q->n_bias > rbuf_left(r) / 8)
		goto bad;
	q->bias_tok = xcalloc(q->n_bias ? q->n_bias : 1,
	    sizeof(*q->bias_tok));
	q->bias_val = xcalloc(q->n_bias ? q->n_bias : 1,
	    sizeof(*q->bias_val));
	for (uint32_t i = 0; i < q->n_bias; i++) {
		if (rbuf_u32(r, &u) == -1 || get_f32(r, &q->bias_val[i]) == -1)
			goto bad;
		q->bias_tok[i] = (int32_t)u;
	}
	if (r->err || rbuf_left(r) != 0)
		goto bad;
	return 0;
 bad:
	ipc_gen_req_release(q);
	r->err = true;
	return -1;
}

void
ipc_gen_req_release(struct ipc_gen_req *q)
{
	if (q == NULL)
		return;
	free(q->roles);
	free(q->contents);
	free(q->bias_tok);
	free(q->bias_val);
	memset(q, 0, sizeof(*q));
}

/* Wire form of TOKEN:
 *   i32 id | str16 text | str16 lp token, f32 lp logprob |
 *   u8 n_top, n x (str16 token, f32 logprob) */
void
ipc_gen_token_encode(struct wbuf *w, const struct ipc_gen_token *t)
{
	uint32_t	n = t->n_top > IPC_TOP_MAX ? IPC_TOP_MAX : t->n_top;

	wbuf_u32(w, (uint32_t)t->id);
	put_str16(w, &t->text);
	put_str16(w, &t->lp.token);
	put_f32(w, t->lp.logprob);
	wbuf_u8(w, (uint8_t)n);
	for (uint32_t i = 0; i < n; i++) {
		put_str16(w, &t->top[i].token);
		put_f32(w, t->top[i].logprob);
	}
}

/* Log-probabilities are finite (a token that cannot be drawn is not
 * reported) and never positive. */
static int
get_logprob(struct rbuf *r, struct ipc_gen_logprob *lp)
{
	if (get_str16(r, &lp->token, UINT16_MAX) == -1 ||
	    get_f32(r, &lp->logprob) == -1)
		return -1;
	if (lp->logprob > 0) {
		r->err = true;
		return -1;
	}
	return 0;
}

int
ipc_gen_token_decode(struct rbuf *r, struct ipc_gen_token *t)
{
	uint32_t	id;
	uint8_t		n;

	memset(t, 0, sizeof(*t));
	if (rbuf_u32(r, &id) == -1 || get_str16(r, &t->text, UINT16_MAX) ==
	    -1 || get_logprob(r, &t->lp) == -1 || rbuf_u8(r, &n) == -1)
		goto bad;
	t->id = (int32_t)id;
	if (t->id < -1 || n > IPC_TOP_MAX)
		goto bad;
	t->n_top = n;
	for (uint32_t i = 0; i < n; i++)
		if (get_logprob(r, &t->top[i]) == -1)
			goto bad;
	if (r->err || rbuf_left(r) != 0)
		goto bad;
	return 0;
 bad:
	memset(t, 0, sizeof(*t));
	r->err = true;
	return -1;
}

/* Wire form of DONE:
 *   u8 finish | u32 prompt_tokens | u32 cached_tokens |
 *   u32 completion_tokens | u64 compute_us | u32 n_embd | n_embd x f32 */
void
ipc_gen_done_encode(struct wbuf *w, const struct ipc_gen_done *d)
{
	wbuf_u8(w, (uint8_t)d->finish);
	wbuf_u32(w, d->prompt_tokens);
	wbuf_u32(w, d->cached_tokens);
	wbuf_u32(w, d->completion_tokens);
	wbuf_u64(w, d->compute_us);
	wbuf_u32(w, d->n_embd);
	wbuf_put(w, d->embd, (size_t)d->n_embd * 4);
}

int
ipc_gen_done_decode(struct rbuf *r, struct ipc_gen_done *d)
{
	uint8_t	fin;

	memset(d, 0, sizeof(*d));
	if (rbuf_u8(r, &fin) == -1 || fin < IPC_FINISH_STOP ||
	    fin > IPC_FINISH_CANCELLED)
		goto bad;
	d->finish = (enum ipc_finish)fin;
	if (rbuf_u32(r, &d->prompt_tokens) == -1 ||
	    rbuf_u32(r, &d->cached_tokens) == -1 ||
	    rbuf_u32(r, &d->completion_tokens) == -1 ||
	    rbuf_u64(r, &d->compute_us) == -1 ||
	    rbuf_u32(r, &d->n_embd) == -1)
		goto bad;
	if (d->cached_tokens > d->prompt_tokens ||
	    d->n_embd != rbuf_left(r) / 4 || rbuf_left(r) % 4 != 0)
		goto bad;
	if (d->n_embd > 0 && rbuf_bytes(r, &d->embd,
	    (size_t)d->n_embd * 4) == -1)
		goto bad;
	if (r->err || rbuf_left(r) != 0)
		goto bad;
	return 0;
 bad:
	memset(d, 0, sizeof(*d));
	r->err = true;
	return -1;
}

/* Wire form of the llm part of HELLO:
 *   u32 n_ctx | u32 n_vocab | u32 n_embd | u32 max_seqs | str16 arch |
 *   str16 chat_template */
void
ipc_llm_meta_encode(struct wbuf *w, const struct ipc_llm_meta *l)
{
	wbuf_u32(w, l->n_ctx);
	wbuf_u32(w, l->n_vocab);
	wbuf_u32(w, l->n_embd);
	wbuf_u32(w, l->max_seqs);
	put_str16(w, &l->arch);
	put_str16(w, &l->chat_template);
}

int
ipc_llm_meta_decode(struct rbuf *r, struct ipc_llm_meta *l)
{
	memset(l, 0, sizeof(*l));
	if (rbuf_u32(r, &l->n_ctx) == -1 || rbuf_u32(r, &l->n_vocab) == -1 ||
	    rbuf_u32(r, &l->n_embd) == -1 || rbuf_u32(r, &l->max_seqs) == -1 ||
	    get_str16(r, &l->arch, IPC_LLM_STR_MAX) == -1 ||
	    get_str16(r, &l->chat_template, IPC_LLM_STR_MAX) == -1)
		goto bad;
	/* A runtime serves at least one sequence of at least one token. */
	if (l->n_ctx == 0 || l->n_vocab == 0 || l->n_embd == 0 ||
	    l->max_seqs == 0 || l->arch.n == 0 ||
	    memchr(l->arch.p, '\0', l->arch.n) != NULL ||
	    (l->chat_template.n > 0 &&
	    memchr(l->chat_template.p, '\0', l->chat_template.n) != NULL))
		goto bad;
	if (r->err || rbuf_left(r) != 0)
		goto bad;
	return 0;
 bad:
	memset(l, 0, sizeof(*l));
	r->err = true;
	return -1;
}
