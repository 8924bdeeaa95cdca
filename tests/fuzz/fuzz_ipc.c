/* tests/fuzz/fuzz_ipc.c - libFuzzer target for the IPC decoders of
 * common/ipc.c: frame header, tensor list (as INFER and INFER_OK carry
 * them), HELLO metadata (with its llm part) and the LLM frames GENERATE,
 * TOKEN and DONE.  Whatever decodes must re-encode to something that
 * decodes to the same thing.  The stream readers too: the buffered
 * ipc_reader_frame() must take the same frames from the same bytes, and
 * stop at the same point for the same reason, as ipc_read_frame(), and so
 * must the pair of readers taking turns with ipc_reader_ahead(). */
#include <sys/socket.h>

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/wire.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct ipc_tensor	t1[IPC_MAX_TENSORS], t2[IPC_MAX_TENSORS];

static void
fuzz_hdr(const uint8_t *data, size_t size)
{
	struct ipc_hdr	h, h2;
	uint8_t		b[IPC_HDR_LEN];

	if (size < IPC_HDR_LEN || ipc_hdr_decode(data, &h, IPC_MAX_PAYLOAD))
		return;
	ipc_hdr_encode(&h, b);
	assert(memcmp(b, data, IPC_HDR_LEN) == 0);
	assert(ipc_hdr_decode(b, &h2, IPC_MAX_PAYLOAD) == 0);
	assert(h2.type > 0 && h2.type < IPC_TYPE_MAX);
}

/* A window reference: accepted only inside the window; the pad of any
 * payload is below 64. */
static void
fuzz_shm(const uint8_t *data, size_t size)
{
	uint64_t	off, len;
	size_t		win = size >= 24 ? (size_t)le64_get(data + 16) : 4096;

	if (ipc_shm_ref_decode(data, size < IPC_SHM_REF_LEN ? size :
	    IPC_SHM_REF_LEN, win, &off, &len) == 0)
		assert(off <= win && len <= win - off &&
		    len <= IPC_MAX_PAYLOAD);
	assert(ipc_shm_pad(data, size) < 64);
}

static void
fuzz_tensors(const uint8_t *data, size_t size)
{
	struct wbuf	w;
	struct rbuf	r;
	uint8_t		sum = 0;
	int		n;

	rbuf_init(&r, data, size);
	if ((n = ipc_get_tensors(&r, t1, IPC_MAX_TENSORS)) == -1)
		return;
	wbuf_init(&w);
	wbuf_u32(&w, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		/* The data must lie inside the input. */
		assert(t1[i].data >= data &&
		    t1[i].data + t1[i].nbytes <= data + size);
		for (uint64_t k = 0; k < t1[i].nbytes; k++)
			sum ^= t1[i].data[k];
		ipc_put_tensor(&w, &t1[i].desc, t1[i].data, t1[i].nbytes);
	}
	rbuf_init(&r, w.data, w.len);
	assert(ipc_get_tensors(&r, t2, IPC_MAX_TENSORS) == n);
	assert(rbuf_left(&r) == 0);
	for (int i = 0; i < n; i++) {
		assert(memcmp(&t1[i].desc, &t2[i].desc, sizeof(t1[i].desc)) ==
		    0);
		assert(t1[i].nbytes == t2[i].nbytes);
	}
	wbuf_release(&w);
	(void)sum;
}

static void
fuzz_meta(const uint8_t *data, size_t size)
{
	struct ipc_meta	m, m2;
	struct wbuf	w;
	struct rbuf	r;

	rbuf_init(&r, data, size);
	if (ipc_meta_decode(&r, &m) == -1)
		return;
	wbuf_init(&w);
	ipc_meta_encode(&w, &m);
	rbuf_init(&r, w.data, w.len);
	assert(ipc_meta_decode(&r, &m2) == 0);
	assert(m.n_inputs == m2.n_inputs && m.n_outputs == m2.n_outputs);
	assert(m.n_inputs == 0 || memcmp(m.inputs, m2.inputs,
	    m.n_inputs * sizeof(*m.inputs)) == 0);
	assert(m.n_outputs == 0 || memcmp(m.outputs, m2.outputs,
	    m.n_outputs * sizeof(*m.outputs)) == 0);
	ipc_meta_release(&m);
	ipc_meta_release(&m2);
	wbuf_release(&w);
}

static int
str_same(struct ipc_str a, struct ipc_str b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void
fuzz_gen_req(const uint8_t *data, size_t size)
{
	struct ipc_gen_req	q, q2;
	struct wbuf		w;
	struct rbuf		r;

	rbuf_init(&r, data, size);
	if (ipc_gen_req_decode(&r, &q) == -1)
		return;
	assert(rbuf_left(&r) == 0);
	wbuf_init(&w);
	ipc_gen_req_encode(&w, &q);
	assert(w.len == size && memcmp(w.data, data, size) == 0);
	rbuf_init(&r, w.data, w.len);
	assert(ipc_gen_req_decode(&r, &q2) == 0);
	assert(q.n_msgs == q2.n_msgs && q.n_stop == q2.n_stop &&
	    q.n_bias == q2.n_bias && str_same(q.prompt, q2.prompt));
	for (uint32_t i = 0; i < q.n_msgs; i++)
		assert(str_same(q.contents[i], q2.contents[i]));
	ipc_gen_req_release(&q);
	ipc_gen_req_release(&q2);
	wbuf_release(&w);
}

static void
fuzz_gen_token(const uint8_t *data, size_t size)
{
	struct ipc_gen_token	t;
	struct wbuf		w;
	struct rbuf		r;

	rbuf_init(&r, data, size);
	if (ipc_gen_token_decode(&r, &t) == -1)
		return;
	wbuf_init(&w);
	ipc_gen_token_encode(&w, &t);
	assert(w.len == size && memcmp(w.data, data, size) == 0);
	wbuf_release(&w);
}

static void
fuzz_gen_done(const uint8_t *data, size_t size)
{
	struct ipc_gen_done	d;
	struct wbuf		w;
	struct rbuf		r;

	rbuf_init(&r, data, size);
	if (ipc_gen_done_decode(&r, &d) == -1)
		return;
	assert(d.cached_tokens <= d.prompt_tokens);
	assert(d.n_embd == 0 || (d.embd >= data &&
	    d.embd + (size_t)d.n_embd * 4 <= data + size));
	wbuf_init(&w);
	ipc_gen_done_encode(&w, &d);
	assert(w.len == size && memcmp(w.data, data, size) == 0);
	wbuf_release(&w);
}

static void
fuzz_llm_meta(const uint8_t *data, size_t size)
{
	struct ipc_llm_meta	l;
	struct wbuf		w;
	struct rbuf		r;

	rbuf_init(&r, data, size);
	if (ipc_llm_meta_decode(&r, &l) == -1)
		return;
	assert(l.arch.n > 0 && l.arch.n <= IPC_LLM_STR_MAX);
	wbuf_init(&w);
	ipc_llm_meta_encode(&w, &l);
	assert(w.len == size && memcmp(w.data, data, size) == 0);
	wbuf_release(&w);
}

/* A socket whose peer wrote data and closed. */
static int
stream_of(const uint8_t *data, size_t size)
{
	int	sv[2], sz = 1 << 20;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (size > 0 && write(sv[0], data, size) != (ssize_t)size)
		abort();
	close(sv[0]);
	return sv[1];
}

/* The third reading of the stream, as runtime/serve.c reads with its
 * read-ahead: after each frame, what follows it moves to the other reader
 * and ipc_reader_ahead() fills that one (here on this thread, as the
 * writer is gone and poll() cannot wait) while the frame's payload must
 * stay as it was. */
static int
frame_ahead(int fd, struct ipc_reader rds[2], int *cur, struct ipc_hdr *h,
    const uint8_t **p)
{
	atomic_int	state = IPC_AHEAD_RUN;
	int		r;

	if ((r = ipc_reader_frame(fd, &rds[*cur], h, p, 4096)) != 1)
		return r;
	if (ipc_reader_move(&rds[*cur], &rds[!*cur]) == -1)
		abort();
	(void)ipc_reader_ahead(fd, &rds[!*cur], -1, &state, 4096);
	if (!ipc_reader_reclaim(&state, -1) ||
	    atomic_load(&state) != IPC_AHEAD_IDLE)
		abort();
	*cur = !*cur;
	return r;
}

static void
fuzz_readers(const uint8_t *data, size_t size)
{
	struct ipc_reader	 rd, rds[2];
	struct ipc_hdr		 h1, h2, h3;
	const uint8_t		*p, *p3;
	uint8_t			*buf = NULL;
	size_t			 cap = 0;
	int			 a, b, c, r1, r2, r3, e1, e2, e3, cur = 0;

	if (size > (64u << 10))
		return;
	a = stream_of(data, size);
	b = stream_of(data, size);
	c = stream_of(data, size);
	ipc_reader_init(&rd);
	ipc_reader_init(&rds[0]);
	ipc_reader_init(&rds[1]);
	/* A small limit, so that oversized frames are met too. */
	do {
		errno = 0;
		r1 = ipc_read_frame(a, &h1, &buf, &cap, 4096);
		e1 = errno;
		errno = 0;
		r2 = ipc_reader_frame(b, &rd, &h2, &p, 4096);
		e2 = errno;
		errno = 0;
		r3 = frame_ahead(c, rds, &cur, &h3, &p3);
		e3 = errno;
		assert(r1 == r2 && r1 == r3);
		if (r1 == 1) {
			assert(h1.type == h2.type && h1.req_id == h2.req_id &&
			    h1.len == h2.len);
			assert(h1.type == h3.type && h1.req_id == h3.req_id &&
			    h1.len == h3.len);
			assert(h1.len == 0 || memcmp(buf, p, h1.len) == 0);
			assert(h1.len == 0 || memcmp(buf, p3, h1.len) == 0);
		} else if (r1 == -1)
			assert(e1 == e2 && e1 == e3);
	} while (r1 == 1);
	ipc_reader_free(&rd);
	ipc_reader_free(&rds[0]);
	ipc_reader_free(&rds[1]);
	free(buf);
	close(a);
	close(b);
	close(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_hdr(data, size);
	fuzz_shm(data, size);
	/* Payloads usually follow a header; try both framings. */
	fuzz_tensors(data, size);
	fuzz_meta(data, size);
	fuzz_gen_req(data, size);
	fuzz_gen_token(data, size);
	fuzz_gen_done(data, size);
	fuzz_llm_meta(data, size);
	fuzz_readers(data, size);
	if (size >= IPC_HDR_LEN) {
		fuzz_tensors(data + IPC_HDR_LEN, size - IPC_HDR_LEN);
		fuzz_meta(data + IPC_HDR_LEN, size - IPC_HDR_LEN);
		fuzz_gen_req(data + IPC_HDR_LEN, size - IPC_HDR_LEN);
		fuzz_gen_token(data + IPC_HDR_LEN, size - IPC_HDR_LEN);
		fuzz_gen_done(data + IPC_HDR_LEN, size - IPC_HDR_LEN);
	}
	return 0;
}
