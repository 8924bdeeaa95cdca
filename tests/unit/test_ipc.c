/* tests/unit/test_ipc.c - common/ipc.c and common/wire.c: frame headers,
 * blocking frame I/O over a socketpair, the shared window, tensor lists
 * and HELLO metadata,
 * including every truncation of valid input (decoders must fail cleanly;
 * inputs are exact-size heap copies so ASan sees any over-read). */
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc.h"
#include "common/wire.h"
#include "common/xmalloc.h"

static void
hdr_bytes(uint8_t *out, uint32_t magic, uint16_t ver, uint16_t type,
    uint64_t req, uint32_t len)
{
	struct ipc_hdr	h = { magic, ver, type, req, len };

	ipc_hdr_encode(&h, out);
}

static void
test_hdr_roundtrip(void **state)
{
	struct ipc_hdr	in = { IPC_MAGIC, IPC_VERSION, IPC_INFER,
			    0x0102030405060708ULL, 1234 }, out;
	uint8_t		b[IPC_HDR_LEN];

	(void)state;
	ipc_hdr_encode(&in, b);
	assert_memory_equal(b, "MAAS", 4);	/* magic reads as LE */
	assert_int_equal(b[8], 0x08);		/* req_id little-endian */
	assert_int_equal(ipc_hdr_decode(b, &out, IPC_MAX_PAYLOAD), 0);
	assert_int_equal(out.magic, in.magic);
	assert_int_equal(out.version, in.version);
	assert_int_equal(out.type, in.type);
	assert_int_equal(out.req_id, in.req_id);
	assert_int_equal(out.len, in.len);
	for (int t = IPC_HELLO; t < IPC_TYPE_MAX; t++) {
		hdr_bytes(b, IPC_MAGIC, IPC_VERSION, (uint16_t)t, 1, 0);
		assert_int_equal(ipc_hdr_decode(b, &out, 0), 0);
		assert_string_not_equal(ipc_type_name((enum ipc_type)t),
		    "UNKNOWN");
	}
	assert_string_equal(ipc_type_name(0), "UNKNOWN");
	assert_string_equal(ipc_type_name(IPC_TYPE_MAX), "UNKNOWN");
}

static void
test_hdr_bad(void **state)
{
	struct ipc_hdr	h;
	uint8_t		b[IPC_HDR_LEN];

	(void)state;
	hdr_bytes(b, IPC_MAGIC ^ 1, IPC_VERSION, IPC_PING, 1, 0);
	assert_int_equal(ipc_hdr_decode(b, &h, 100), -1);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION + 1, IPC_PING, 1, 0);
	assert_int_equal(ipc_hdr_decode(b, &h, 100), -1);
	hdr_bytes(b, IPC_MAGIC, 0, IPC_PING, 1, 0);
	assert_int_equal(ipc_hdr_decode(b, &h, 100), -1);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, 0, 1, 0);
	assert_int_equal(ipc_hdr_decode(b, &h, 100), -1);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_TYPE_MAX, 1, 0);
	assert_int_equal(ipc_hdr_decode(b, &h, 100), -1);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, 0xffff, 1, 0);
	assert_int_equal(ipc_hdr_decode(b, &h, 100), -1);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_INFER, 1, 100);
	assert_int_equal(ipc_hdr_decode(b, &h, 100), 0);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_INFER, 1, 101);
	assert_int_equal(ipc_hdr_decode(b, &h, 100), -1);
	/* The hard cap holds whatever the caller allows. */
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_INFER, 1,
	    IPC_MAX_PAYLOAD + 1);
	assert_int_equal(ipc_hdr_decode(b, &h, UINT32_MAX), -1);
}

/* --- frame I/O --- */

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void
test_frame_io(void **state)
{
	struct ipc_hdr	 h;
	uint8_t		*buf = NULL;
	size_t		 cap = 0;
	int		 sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(ipc_write_frame(sv[0], IPC_INFER, 42, "hello", 5),
	    0);
	assert_int_equal(ipc_write_frame(sv[0], IPC_PING, 43, NULL, 0), 0);
	assert_int_equal(ipc_read_frame(sv[1], &h, &buf, &cap, 1024), 1);
	assert_int_equal(h.type, IPC_INFER);
	assert_int_equal(h.req_id, 42);
	assert_int_equal(h.len, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(ipc_read_frame(sv[1], &h, &buf, &cap, 1024), 1);
	assert_int_equal(h.type, IPC_PING);
	assert_int_equal(h.len, 0);
	close(sv[0]);
	/* Clean EOF between frames. */
	assert_int_equal(ipc_read_frame(sv[1], &h, &buf, &cap, 1024), 0);
	close(sv[1]);
	free(buf);
}

static void
test_frame_truncated_header(void **state)
{
	struct ipc_hdr	 h;
	uint8_t		 b[IPC_HDR_LEN], *buf = NULL;
	size_t		 cap = 0;
	int		 sv[2];

	(void)state;
	pair(sv);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_PING, 1, 0);
	assert_int_equal(write(sv[0], b, 11), 11);
	close(sv[0]);
	errno = 0;
	assert_int_equal(ipc_read_frame(sv[1], &h, &buf, &cap, 1024), -1);
	assert_int_equal(errno, EPROTO);
	close(sv[1]);
	free(buf);
}

static void
test_frame_truncated_payload(void **state)
{
	struct ipc_hdr	 h;
	uint8_t		 b[IPC_HDR_LEN + 50] = { 0 }, *buf = NULL;
	size_t		 cap = 0;
	int		 sv[2];

	(void)state;
	pair(sv);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_INFER, 7, 100);
	assert_int_equal(write(sv[0], b, sizeof(b)), (ssize_t)sizeof(b));
	close(sv[0]);		/* the writer gives up half-way */
	errno = 0;
	assert_int_equal(ipc_read_frame(sv[1], &h, &buf, &cap, 1024), -1);
	close(sv[1]);
	free(buf);

	/* Closed right after the header. */
	pair(sv);
	assert_int_equal(write(sv[0], b, IPC_HDR_LEN), IPC_HDR_LEN);
	close(sv[0]);
	buf = NULL;
	cap = 0;
	errno = 0;
	assert_int_equal(ipc_read_frame(sv[1], &h, &buf, &cap, 1024), -1);
	close(sv[1]);
	free(buf);
}

static void
test_frame_oversized(void **state)
{
	struct ipc_hdr	 h;
	uint8_t		 b[IPC_HDR_LEN], *buf = NULL;
	size_t		 cap = 0;
	int		 sv[2];

	(void)state;
	pair(sv);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_INFER, 1, 1025);
	assert_int_equal(write(sv[0], b, sizeof(b)), (ssize_t)sizeof(b));
	errno = 0;
	assert_int_equal(ipc_read_frame(sv[1], &h, &buf, &cap, 1024), -1);
	assert_int_equal(errno, EPROTO);
	assert_null(buf);		/* refused before allocating */
	assert_int_equal(cap, 0);
	/* Bad magic on the wire too. */
	hdr_bytes(b, 0xdeadbeef, IPC_VERSION, IPC_INFER, 1, 0);
	assert_int_equal(write(sv[0], b, sizeof(b)), (ssize_t)sizeof(b));
	assert_int_equal(ipc_read_frame(sv[1], &h, &buf, &cap, 1024), -1);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(ipc_write_frame(-1, IPC_PING, 1, NULL, 0), -1);
}

/* --- buffered reader --- */

struct slow_writer {
	int		 fd;
	const uint8_t	*p;
	size_t		 len, piece;
};

/* Writes its bytes in pieces with pauses, so the reader meets a frame
 * that has come in part. */
static void *
slow_write(void *arg)
{
	struct slow_writer	*w = arg;

	for (size_t o = 0; o < w->len; o += w->piece) {
		size_t	n = w->len - o < w->piece ? w->len - o : w->piece;

		if (write(w->fd, w->p + o, n) != (ssize_t)n)
			break;
		usleep(2000);
	}
	close(w->fd);
	return NULL;
}

static void
test_reader_frames(void **state)
{
	struct ipc_reader	 rd;
	struct ipc_hdr		 h;
	const uint8_t		*p;
	int			 sv[2];

	(void)state;
	pair(sv);
	ipc_reader_init(&rd);
	assert_false(ipc_reader_pending(sv[1], &rd));
	/* Three frames waiting: the first read takes all of them. */
	assert_int_equal(ipc_write_frame(sv[0], IPC_INFER, 42, "hello", 5),
	    0);
	assert_int_equal(ipc_write_frame(sv[0], IPC_PING, 43, NULL, 0), 0);
	assert_int_equal(ipc_write_frame(sv[0], IPC_INFER, 44, "xy", 2), 0);
	assert_true(ipc_reader_pending(sv[1], &rd));	/* in the socket */
	assert_int_equal(ipc_reader_wait(sv[1], &rd, 0), 1);
	assert_true(ipc_reader_pending(sv[1], &rd));	/* buffered */
	assert_true(ipc_reader_peek(&rd, &h, 1024));
	assert_int_equal(h.req_id, 42);
	assert_int_equal(rd.len, 3 * IPC_HDR_LEN + 7);
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1024), 1);
	assert_int_equal(h.type, IPC_INFER);
	assert_int_equal(h.req_id, 42);
	assert_int_equal(h.len, 5);
	assert_memory_equal(p, "hello", 5);
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1024), 1);
	assert_int_equal(h.type, IPC_PING);
	assert_int_equal(h.len, 0);
	assert_int_equal(ipc_reader_wait(sv[1], &rd, 100000), 1);
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1024), 1);
	assert_int_equal(h.req_id, 44);
	assert_memory_equal(p, "xy", 2);
	assert_false(ipc_reader_pending(sv[1], &rd));
	/* Nothing more: waiting polls, then sleeps until EOF. */
	close(sv[0]);
	assert_int_equal(ipc_reader_wait(sv[1], &rd, 1000), 0);
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1024), 0);
	close(sv[1]);
	ipc_reader_free(&rd);
}

static void
test_reader_large(void **state)
{
	struct ipc_reader	 rd;
	struct ipc_hdr		 h;
	struct slow_writer	 w;
	struct wbuf		 f;
	pthread_t		 th;
	const uint8_t		*p;
	uint8_t			*big = malloc(300000);
	int			 sv[2];

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < 300000; i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	/* A small frame, one larger than the first buffer, a small one,
	 * sent in 50000-byte pieces: frames come in part and the pieces
	 * cut across them. */
	wbuf_init(&f);
	ipc_frame_build(&f, IPC_PING, 1, NULL, 0);
	ipc_frame_build(&f, IPC_INFER, 2, big, 300000);
	ipc_frame_build(&f, IPC_INFER, 3, big + 5, 1000);
	pair(sv);
	w = (struct slow_writer){ sv[0], f.data, f.len, 50000 };
	assert_int_equal(pthread_create(&th, NULL, slow_write, &w), 0);
	ipc_reader_init(&rd);
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1u << 20), 1);
	assert_int_equal(h.req_id, 1);
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1u << 20), 1);
	assert_int_equal(h.req_id, 2);
	assert_int_equal(h.len, 300000);
	assert_memory_equal(p, big, 300000);
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1u << 20), 1);
	assert_int_equal(h.req_id, 3);
	assert_memory_equal(p, big + 5, 1000);
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1u << 20), 0);
	pthread_join(th, NULL);
	close(sv[1]);
	ipc_reader_free(&rd);
	wbuf_release(&f);
	free(big);
}

/* ipc_reader_ahead() on its own thread, as runtime/serve.c runs it. */
struct ahead_job {
	int			 fd, wakefd, ret;
	struct ipc_reader	*rd;
	atomic_int		 state;
	pthread_t		 th;
};

static void *
ahead_thread(void *arg)
{
	struct ahead_job	*j = arg;

	j->ret = ipc_reader_ahead(j->fd, j->rd, j->wakefd, &j->state,
	    1u << 20);
	return NULL;
}

/* Hands r to a reading thread, as runtime/serve.c does. */
static void
ahead_start(struct ahead_job *j, struct ipc_reader *r)
{
	assert_int_equal(atomic_load(&j->state), IPC_AHEAD_IDLE);
	j->rd = r;
	atomic_store(&j->state, IPC_AHEAD_RUN);
	assert_int_equal(pthread_create(&j->th, NULL, ahead_thread, j), 0);
}

/* Waits for the thread to stop by itself, then takes the reader back. */
static void
ahead_join(struct ahead_job *j, int ret)
{
	pthread_join(j->th, NULL);
	assert_int_equal(j->ret, ret);
	assert_int_equal(atomic_load(&j->state), IPC_AHEAD_DONE);
	assert_true(ipc_reader_reclaim(&j->state, j->wakefd));
	assert_int_equal(atomic_load(&j->state), IPC_AHEAD_IDLE);
}

static void
test_reader_ahead(void **state)
{
	struct ipc_reader	 a, b;
	struct ipc_hdr		 h;
	struct slow_writer	 w;
	struct ahead_job	 j;
	struct wbuf		 f;
	pthread_t		 tr;
	const uint8_t		*p, *p1;
	uint8_t			*big = malloc(300000);
	uint64_t		 one = 1;
	size_t			 tail;
	bool			 done;
	int			 sv[2];

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < 300000; i++)
		big[i] = (uint8_t)(i * 5 + i / 253);
	wbuf_init(&f);
	ipc_frame_build(&f, IPC_INFER, 1, "hello", 5);
	ipc_frame_build(&f, IPC_INFER, 2, big, 300000);
	ipc_frame_build(&f, IPC_INFER, 3, big + 9, 1000);
	pair(sv);
	j = (struct ahead_job){ .fd = sv[1], .wakefd = eventfd(0,
	    EFD_NONBLOCK) };
	assert_true(j.wakefd >= 0);
	ipc_reader_init(&a);
	ipc_reader_init(&b);
	/* The first frame and part of the second come in one read. */
	assert_int_equal(write(sv[0], f.data, 70000), 70000);
	assert_int_equal(ipc_reader_frame(sv[1], &a, &h, &p1, 1u << 20), 1);
	assert_int_equal(h.req_id, 1);
	assert_false(ipc_reader_whole(&a, 1u << 20));
	assert_true(a.len > a.off);
	tail = a.len - a.off;
	/* The rest moves to b; frame 1's payload stays where it was. */
	assert_int_equal(ipc_reader_move(&a, &b), 0);
	assert_int_equal(a.len, a.off);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, tail);
	w = (struct slow_writer){ sv[0], f.data + 70000, f.len - 70000,
	    40000 };
	assert_int_equal(pthread_create(&tr, NULL, slow_write, &w), 0);
	ahead_start(&j, &b);
	/* It stops at a whole frame: 2 is there, 3 need not be. */
	ahead_join(&j, 1);
	assert_true(ipc_reader_whole(&b, 1u << 20));
	assert_memory_equal(p1, "hello", 5);
	assert_int_equal(ipc_reader_frame(sv[1], &b, &h, &p, 1u << 20), 1);
	assert_int_equal(h.req_id, 2);
	assert_memory_equal(p, big, 300000);
	/* Reading frame 3 ahead, back into a: EOF follows it. */
	assert_int_equal(ipc_reader_move(&b, &a), 0);
	ahead_start(&j, &a);
	ahead_join(&j, 1);
	pthread_join(tr, NULL);
	assert_int_equal(ipc_reader_frame(sv[1], &a, &h, &p, 1u << 20), 1);
	assert_int_equal(h.req_id, 3);
	assert_memory_equal(p, big + 9, 1000);
	assert_int_equal(ipc_reader_move(&a, &b), 0);
	ahead_start(&j, &b);
	ahead_join(&j, 0);
	close(sv[1]);

	/* Nothing comes: the reader is taken back at once, and the
	 * wake-up that comes with it ends the thread's wait in poll(). */
	pair(sv);
	j.fd = sv[1];
	assert_int_equal(ipc_reader_move(&b, &a), 0);
	ahead_start(&j, &a);
	usleep(20000);
	done = ipc_reader_reclaim(&j.state, j.wakefd);
	assert_false(done);
	pthread_join(j.th, NULL);
	assert_int_equal(j.ret, 1);
	assert_int_equal(atomic_load(&j.state), IPC_AHEAD_IDLE);
	assert_int_equal(a.len, a.off);
	/* A stray wake-up is drained and reading goes on; a bad header
	 * ends it, for the consumer to report. */
	assert_int_equal(write(j.wakefd, &one, sizeof(one)), sizeof(one));
	ahead_start(&j, &a);
	usleep(20000);
	assert_int_equal(write(sv[0], "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", 32),
	    32);
	ahead_join(&j, 1);
	errno = 0;
	assert_int_equal(ipc_reader_frame(sv[1], &a, &h, &p, 1u << 20), -1);
	assert_int_equal(errno, EPROTO);
	close(sv[0]);
	close(sv[1]);
	close(j.wakefd);
	ipc_reader_free(&a);
	ipc_reader_free(&b);
	wbuf_release(&f);
	free(big);
}

/* The reader's answer to the n bytes at b, the writer gone after them
 * (or, with stay, still there): -1 with errno EPROTO, room made for no
 * more than a header. */
static void
reader_refuses(const uint8_t *b, size_t n, bool stay)
{
	struct ipc_reader	 rd;
	struct ipc_hdr		 h;
	const uint8_t		*p;
	int			 sv[2];

	pair(sv);
	ipc_reader_init(&rd);
	assert_int_equal(write(sv[0], b, n), (ssize_t)n);
	if (!stay)
		close(sv[0]);
	errno = 0;
	assert_int_equal(ipc_reader_frame(sv[1], &rd, &h, &p, 1024), -1);
	assert_int_equal(errno, EPROTO);
	assert_true(rd.cap <= 64u << 10);
	if (stay)
		close(sv[0]);
	close(sv[1]);
	ipc_reader_free(&rd);
}

static void
test_reader_bad(void **state)
{
	uint8_t	b[IPC_HDR_LEN + 50] = { 0 };

	(void)state;
	/* EOF inside a header, then inside a payload. */
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_PING, 1, 0);
	reader_refuses(b, 11, false);
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_INFER, 7, 100);
	reader_refuses(b, sizeof(b), false);
	/* Over the limit, and a bad magic: refused from the header alone,
	 * the writer still there. */
	hdr_bytes(b, IPC_MAGIC, IPC_VERSION, IPC_INFER, 1, 1025);
	reader_refuses(b, IPC_HDR_LEN, true);
	hdr_bytes(b, 0xdeadbeef, IPC_VERSION, IPC_INFER, 1, 0);
	reader_refuses(b, IPC_HDR_LEN, true);
}

/* --- tensor lists --- */

static const float	f6[6] = { 1, 2, 3, 4, 5, 6 };
static const int64_t	i4[4] = { -1, 0, 1, INT64_MAX };

static void
build_list(struct wbuf *w)
{
	struct ipc_tensor_desc	a = { .name = "x", .dtype = DT_FP32,
				    .ndim = 2, .dims = { 2, 3 } };
	struct ipc_tensor_desc	b = { .name = "ids", .dtype = DT_INT64,
				    .ndim = 1, .dims = { 4 } };
	struct ipc_tensor_desc	c = { .name = "s", .dtype = DT_FP32,
				    .ndim = 0 };

	wbuf_u32(w, 3);
	ipc_put_tensor(w, &a, f6, sizeof(f6));
	ipc_put_tensor(w, &b, i4, sizeof(i4));
	ipc_put_tensor(w, &c, f6, 4);
}

/* Decodes exactly len bytes from a fresh heap copy. */
static int
decode_copy(const uint8_t *p, size_t len, struct ipc_tensor *out,
    size_t max)
{
	uint8_t		*copy = xmalloc(len);
	struct rbuf	 r;
	int		 n;

	if (len > 0)
		memcpy(copy, p, len);
	rbuf_init(&r, copy, len);
	n = ipc_get_tensors(&r, out, max);
	free(copy);
	return n;
}

static void
test_tensors_roundtrip(void **state)
{
	struct ipc_tensor	t[4];
	struct wbuf		w;
	struct rbuf		r;

	(void)state;
	wbuf_init(&w);
	build_list(&w);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_get_tensors(&r, t, 4), 3);
	assert_int_equal(rbuf_left(&r), 0);
	assert_string_equal(t[0].desc.name, "x");
	assert_int_equal(t[0].desc.dtype, DT_FP32);
	assert_int_equal(t[0].desc.ndim, 2);
	assert_int_equal(t[0].desc.dims[1], 3);
	assert_int_equal(t[0].nbytes, sizeof(f6));
	assert_memory_equal(t[0].data, f6, sizeof(f6));
	assert_string_equal(t[1].desc.name, "ids");
	assert_memory_equal(t[1].data, i4, sizeof(i4));
	assert_int_equal(t[2].desc.ndim, 0);
	assert_int_equal(t[2].nbytes, 4);
	/* More tensors than the caller has room for. */
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_get_tensors(&r, t, 2), -1);
	wbuf_release(&w);
}

static void
test_tensors_truncated(void **state)
{
	struct ipc_tensor	t[4];
	struct wbuf		w;

	(void)state;
	wbuf_init(&w);
	build_list(&w);
	for (size_t len = 0; len < w.len; len++)
		assert_int_equal(decode_copy(w.data, len, t, 4), -1);
	assert_int_equal(decode_copy(w.data, w.len, t, 4), 3);
	wbuf_release(&w);
}

/* One tensor with the given header fields and nbytes of payload. */
static int
decode_one(uint8_t dtype, uint8_t ndim, const int64_t *dims,
    uint64_t nbytes, size_t payload)
{
	struct ipc_tensor	t[1];
	struct wbuf		w;
	int			n;

	wbuf_init(&w);
	wbuf_u32(&w, 1);
	wbuf_str16(&w, "t");
	wbuf_u8(&w, dtype);
	wbuf_u8(&w, ndim);
	for (int i = 0; i < ndim; i++)
		wbuf_i64(&w, dims[i]);
	wbuf_u64(&w, nbytes);
	memset(wbuf_reserve(&w, payload), 0, payload);
	n = decode_copy(w.data, w.len, t, 1);
	wbuf_release(&w);
	return n;
}

static void
test_tensors_malformed(void **state)
{
	int64_t			 d9[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	int64_t			 d2[2] = { 2, 3 };
	int64_t			 big[2] = { INT64_MAX, 4 };
	int64_t			 over[3] = { 1LL << 32, 1LL << 32, 1LL << 2 };
	int64_t			 neg[2] = { -1, 3 };
	struct ipc_tensor	 t[1];
	uint8_t			 cnt[4];

	(void)state;
	assert_int_equal(decode_one(DT_FP32, 2, d2, 24, 24), 1);
	assert_int_equal(decode_one(DT_INVALID, 2, d2, 24, 24), -1);
	assert_int_equal(decode_one(DT_MAX, 2, d2, 24, 24), -1);
	assert_int_equal(decode_one(200, 2, d2, 24, 24), -1);
	assert_int_equal(decode_one(DT_FP32, 8, d9, 4, 4), 1);
	assert_int_equal(decode_one(DT_FP32, 9, d9, 4, 4), -1);
	assert_int_equal(decode_one(DT_FP32, 2, d2, 20, 20), -1);
	assert_int_equal(decode_one(DT_FP32, 2, d2, 28, 28), -1);
	assert_int_equal(decode_one(DT_FP32, 2, d2, 24, 23), -1);
	assert_int_equal(decode_one(DT_FP32, 2, big, 0, 0), -1);
	assert_int_equal(decode_one(DT_FP32, 3, over, 0, 0), -1);
	assert_int_equal(decode_one(DT_FP32, 2, neg, 12, 12), -1);
	/* A count far beyond anything: refused before reading on. */
	le32_put(cnt, UINT32_MAX);
	assert_int_equal(decode_copy(cnt, 4, t, 1), -1);
	le32_put(cnt, IPC_MAX_TENSORS + 1);
	assert_int_equal(decode_copy(cnt, 4, t, 1), -1);
	le32_put(cnt, 0);
	assert_int_equal(decode_copy(cnt, 4, t, 1), 0);
}

/* --- metadata --- */

static void
sample_meta(struct ipc_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->format = MODEL_FORMAT_ONNX;
	m->mem_bytes = 123456789;
	m->n_inputs = 2;
	m->n_outputs = 1;
	m->inputs = xcalloc(2, sizeof(*m->inputs));
	m->outputs = xcalloc(1, sizeof(*m->outputs));
	m->inputs[0] = (struct ipc_tensor_desc){ "input", DT_FP32, 2,
	    { -1, 784 } };
	m->inputs[1] = (struct ipc_tensor_desc){ "mask", DT_INT64, 1,
	    { -1 } };
	m->outputs[0] = (struct ipc_tensor_desc){ "output", DT_FP32, 2,
	    { -1, 10 } };
}

static void
test_meta_roundtrip(void **state)
{
	struct ipc_meta	m, d, c;
	struct wbuf	w;
	struct rbuf	r;

	(void)state;
	sample_meta(&m);
	wbuf_init(&w);
	ipc_meta_encode(&w, &m);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &d), 0);
	assert_int_equal(rbuf_left(&r), 0);
	assert_int_equal(d.format, MODEL_FORMAT_ONNX);
	assert_int_equal(d.mem_bytes, 123456789);
	assert_int_equal(d.n_inputs, 2);
	assert_int_equal(d.n_outputs, 1);
	assert_memory_equal(d.inputs, m.inputs, 2 * sizeof(*d.inputs));
	assert_memory_equal(d.outputs, m.outputs, sizeof(*d.outputs));
	ipc_meta_copy(&c, &d);
	assert_memory_equal(c.inputs, m.inputs, 2 * sizeof(*c.inputs));
	ipc_meta_release(&c);
	ipc_meta_release(&d);
	ipc_meta_release(&m);
	ipc_meta_release(NULL);

	/* Every truncation fails, and frees what it had decoded. */
	for (size_t len = 0; len < w.len; len++) {
		uint8_t	*copy = xmalloc(len ? len : 1);

		memcpy(copy, w.data, len);
		rbuf_init(&r, copy, len);
		assert_int_equal(ipc_meta_decode(&r, &d), -1);
		assert_null(d.inputs);
		free(copy);
	}
	wbuf_release(&w);
}

static void
test_meta_malformed(void **state)
{
	struct ipc_meta	m, d;
	struct wbuf	w;
	struct rbuf	r;

	(void)state;
	sample_meta(&m);
	wbuf_init(&w);
	ipc_meta_encode(&w, &m);
	ipc_meta_release(&m);

	w.data[0] = 3;				/* unknown format */
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &d), -1);
	w.data[0] = MODEL_FORMAT_ONNX;
	le32_put(w.data + 9, 100000);		/* n_inputs beyond input */
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &d), -1);
	le32_put(w.data + 9, 2);
	w.data[9 + 4 + 2 + 5] = 0;		/* input 0: dtype invalid */
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &d), -1);
	w.data[9 + 4 + 2 + 5] = DT_FP32;
	w.data[9 + 4 + 2 + 5 + 1] = 9;		/* input 0: ndim 9 */
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &d), -1);
	w.data[9 + 4 + 2 + 5 + 1] = 2;
	le64_put(w.data + 9 + 4 + 2 + 5 + 2, (uint64_t)-2);	/* dim -2 */
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &d), -1);
	le64_put(w.data + 9 + 4 + 2 + 5 + 2, (uint64_t)-1);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &d), 0);
	ipc_meta_release(&d);
	wbuf_release(&w);
}

/* --- the shared window --- */

static void
test_shm_window(void **state)
{
	struct ipc_tensor_desc	 d = { .dtype = DT_FP32, .ndim = 2,
				    .dims = { 3, 4 } };
	const uint8_t		*ro;
	uint8_t			*rw;
	float			 x[12] = { 1, 2, 3 };
	struct wbuf		 w;
	size_t			 size = 0, pad;
	int			 fd, fd2;

	(void)state;
	/* maasd's writable mapping; the runtime's is read-only, sees what
	 * maasd writes, and can be neither resized nor made writable. */
	assert_true((fd = ipc_shm_create(1 << 20, &rw)) >= 0);
	assert_true((fd2 = dup(fd)) >= 0);
	assert_int_equal(ftruncate(fd, 1 << 10), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, 2 << 20), -1);
	assert_int_equal(errno, EPERM);
	assert_true(mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0) == MAP_FAILED);
	assert_int_equal(errno, EPERM);
	assert_int_equal(write(fd, "x", 1), -1);
	assert_int_equal(errno, EPERM);
	assert_non_null(ro = ipc_shm_map(fd, 1 << 20, &size));
	assert_int_equal(size, 1 << 20);
	assert_int_equal(fcntl(fd, F_GETFD), -1);	/* closed */
	memcpy(rw + 4096, "window", 6);
	assert_memory_equal(ro + 4096, "window", 6);
	assert_int_equal(mprotect((void *)(uintptr_t)ro, size, PROT_READ |
	    PROT_WRITE), -1);
	assert_int_equal(errno, EACCES);
	/* A window larger than the runtime takes, or a file that is not
	 * sealed, is refused (and its fd closed all the same). */
	assert_null(ipc_shm_map(fd2, 1 << 19, &size));
	assert_int_equal(fcntl(fd2, F_GETFD), -1);
	{
		char	path[] = "/tmp/maas-shm-XXXXXX";
		int	tf = mkstemp(path);

		assert_true(tf >= 0);
		unlink(path);
		assert_int_equal(ftruncate(tf, 4096), 0);
		assert_null(ipc_shm_map(tf, 1 << 20, &size));
	}
	munmap((void *)(uintptr_t)ro, 1 << 20);
	munmap(rw, 1 << 20);

	/* The pad puts the first tensor's elements on 64 bytes. */
	wbuf_init(&w);
	for (int len = 0; len < 70; len++) {
		memset(d.name, 0, sizeof(d.name));
		memset(d.name, 'a', (size_t)len % (IPC_NAME_MAX - 1));
		d.ndim = 1 + len % 3;
		wbuf_reset(&w);
		wbuf_u32(&w, 1);
		ipc_put_tensor(&w, &d, x, sizeof(x));
		pad = ipc_shm_pad(w.data, w.len);
		assert_true(pad < 64);
		assert_int_equal((pad + w.len - sizeof(x)) % 64, 0);
		/* A payload too short to say, or with no tensor: no pad. */
		assert_true(ipc_shm_pad(w.data, 7 + (size_t)len % 3) < 64);
	}
	wbuf_reset(&w);
	wbuf_u32(&w, 0);
	wbuf_u32(&w, 0);
	assert_int_equal(ipc_shm_pad(w.data, w.len), 0);
	wbuf_release(&w);

	/* References: exactly 16 bytes, inside the window, at most a
	 * frame long. */
	{
		uint8_t		ref[IPC_SHM_REF_LEN + 1];
		uint64_t	off, len;

		ipc_shm_ref_encode(ref, 64, 100);
		assert_int_equal(ipc_shm_ref_decode(ref, IPC_SHM_REF_LEN, 164,
		    &off, &len), 0);
		assert_int_equal(off, 64);
		assert_int_equal(len, 100);
		assert_int_equal(ipc_shm_ref_decode(ref, IPC_SHM_REF_LEN, 163,
		    &off, &len), -1);
		assert_int_equal(ipc_shm_ref_decode(ref, IPC_SHM_REF_LEN - 1,
		    164, &off, &len), -1);
		assert_int_equal(ipc_shm_ref_decode(ref, IPC_SHM_REF_LEN + 1,
		    164, &off, &len), -1);
		ipc_shm_ref_encode(ref, UINT64_MAX - 10, 100);
		assert_int_equal(ipc_shm_ref_decode(ref, IPC_SHM_REF_LEN,
		    SIZE_MAX, &off, &len), -1);
		ipc_shm_ref_encode(ref, 10, UINT64_MAX - 5);
		assert_int_equal(ipc_shm_ref_decode(ref, IPC_SHM_REF_LEN,
		    SIZE_MAX, &off, &len), -1);
		ipc_shm_ref_encode(ref, 0, (uint64_t)IPC_MAX_PAYLOAD + 1);
		assert_int_equal(ipc_shm_ref_decode(ref, IPC_SHM_REF_LEN,
		    SIZE_MAX, &off, &len), -1);
		ipc_shm_ref_encode(ref, 0, 0);
		assert_int_equal(ipc_shm_ref_decode(ref, IPC_SHM_REF_LEN, 0,
		    &off, &len), 0);
	}
}

/* --- wire --- */

static void
test_wire(void **state)
{
	struct wbuf	 w;
	struct rbuf	 r;
	const uint8_t	*p;
	char		 s[4];
	uint64_t	 v64;
	uint32_t	 v32;
	uint16_t	 v16;
	uint8_t		 v8;

	(void)state;
	wbuf_init(&w);
	for (int i = 0; i < 1000; i++)	/* grows past the first block */
		wbuf_u32(&w, (uint32_t)i);
	assert_int_equal(w.len, 4000);
	assert_int_equal(le32_get(w.data + 4 * 999), 999);
	wbuf_reset(&w);
	wbuf_u8(&w, 0xab);
	wbuf_u16(&w, 0xbeef);
	wbuf_u64(&w, 0x1122334455667788ULL);
	wbuf_str16(&w, "abc");
	wbuf_str16(&w, "abcd");
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(rbuf_u8(&r, &v8), 0);
	assert_int_equal(v8, 0xab);
	assert_int_equal(rbuf_u16(&r, &v16), 0);
	assert_int_equal(v16, 0xbeef);
	assert_int_equal(rbuf_u64(&r, &v64), 0);
	assert_int_equal(v64, 0x1122334455667788ULL);
	assert_int_equal(rbuf_str16(&r, s, sizeof(s)), 0);
	assert_string_equal(s, "abc");
	/* Too long for s: fails, and stays failed. */
	assert_int_equal(rbuf_str16(&r, s, sizeof(s)), -1);
	assert_true(r.err);
	assert_int_equal(rbuf_left(&r), 0);
	assert_int_equal(rbuf_u8(&r, &v8), -1);
	assert_int_equal(rbuf_bytes(&r, &p, 0), -1);

	/* A NUL inside a string is refused. */
	wbuf_reset(&w);
	wbuf_u16(&w, 3);
	wbuf_put(&w, "a\0b", 3);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(rbuf_str16(&r, s, sizeof(s)), -1);
	/* Reading past the end. */
	rbuf_init(&r, w.data, 3);
	assert_int_equal(rbuf_u32(&r, &v32), -1);
	wbuf_release(&w);
}

/* --- LLM generation --- */

#define S(lit)	((struct ipc_str){ (lit), sizeof(lit) - 1 })

static struct ipc_str	sample_roles[2], sample_contents[2];
static int32_t		sample_btok[2] = { 7, 1000 };
static float		sample_bval[2] = { -100.0f, 2.5f };

static void
sample_req(struct ipc_gen_req *q)
{
	memset(q, 0, sizeof(*q));
	sample_roles[0] = S("system");
	sample_roles[1] = S("user");
	sample_contents[0] = S("be brief");
	sample_contents[1] = S("hello <|im_end|> \xc3\xa9");
	q->mode = IPC_GEN_CHAT;
	q->tenant = S("ten_abc");
	q->n_msgs = 2;
	q->roles = sample_roles;
	q->contents = sample_contents;
	q->max_tokens = 17;
	q->temperature = 0.7f;
	q->top_p = 0.9f;
	q->min_p = 0.05f;
	q->presence_penalty = -1.5f;
	q->frequency_penalty = 2.0f;
	q->top_k = 40;
	q->seed = 0x0102030405060708ULL;
	q->logprobs = 1;
	q->top_logprobs = 5;
	q->n_stop = 2;
	q->stop[0] = S("\n\n");
	q->stop[1] = S("END");
	q->n_bias = 2;
	q->bias_tok = sample_btok;
	q->bias_val = sample_bval;
}

static bool
str_eq(struct ipc_str a, struct ipc_str b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Decodes an exact-size heap copy of in[0..len) with dec. */
typedef int	decode_fn(struct rbuf *, void *);

static int
dec_req(struct rbuf *r, void *o)
{
	return ipc_gen_req_decode(r, o);
}

static int
dec_tok(struct rbuf *r, void *o)
{
	return ipc_gen_token_decode(r, o);
}

static int
dec_done(struct rbuf *r, void *o)
{
	return ipc_gen_done_decode(r, o);
}

static int
dec_llm(struct rbuf *r, void *o)
{
	return ipc_llm_meta_decode(r, o);
}

static int
gen_decode(decode_fn *dec, const uint8_t *in, size_t len, void *out)
{
	uint8_t		*copy = xmalloc(len ? len : 1);
	struct rbuf	 r;
	int		 ret;

	memcpy(copy, in, len);
	rbuf_init(&r, copy, len);
	ret = dec(&r, out);
	if (ret == 0)
		assert_int_equal(rbuf_left(&r), 0);
	else
		assert_true(r.err);
	if (dec == dec_req && ret == 0)
		ipc_gen_req_release(out);
	free(copy);
	return ret;
}

/* Every proper prefix fails and so does one trailing byte. */
static void
assert_exact(decode_fn *dec, const struct wbuf *w, void *out)
{
	uint8_t	*longer = xmalloc(w->len + 1);

	for (size_t len = 0; len < w->len; len++)
		assert_int_equal(gen_decode(dec, w->data, len, out), -1);
	memcpy(longer, w->data, w->len);
	longer[w->len] = 0;
	assert_int_equal(gen_decode(dec, longer, w->len + 1, out), -1);
	assert_int_equal(gen_decode(dec, w->data, w->len, out), 0);
	free(longer);
}

static void
test_gen_req_roundtrip(void **state)
{
	struct ipc_gen_req	q, d;
	struct wbuf		w;
	struct rbuf		r;

	(void)state;
	sample_req(&q);
	wbuf_init(&w);
	ipc_gen_req_encode(&w, &q);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_gen_req_decode(&r, &d), 0);
	assert_int_equal(d.mode, IPC_GEN_CHAT);
	assert_true(str_eq(d.tenant, q.tenant));
	assert_int_equal(d.n_msgs, 2);
	for (int i = 0; i < 2; i++) {
		assert_true(str_eq(d.roles[i], q.roles[i]));
		assert_true(str_eq(d.contents[i], q.contents[i]));
	}
	assert_int_equal(d.prompt.n, 0);
	assert_int_equal(d.max_tokens, 17);
	assert_true(d.temperature == q.temperature && d.top_p == q.top_p &&
	    d.min_p == q.min_p && d.presence_penalty == q.presence_penalty &&
	    d.frequency_penalty == q.frequency_penalty);
	assert_int_equal(d.top_k, 40);
	assert_int_equal(d.seed, q.seed);
	assert_int_equal(d.logprobs, 1);
	assert_int_equal(d.top_logprobs, 5);
	assert_int_equal(d.n_stop, 2);
	assert_true(str_eq(d.stop[0], q.stop[0]));
	assert_true(str_eq(d.stop[1], q.stop[1]));
	assert_int_equal(d.n_bias, 2);
	assert_int_equal(d.bias_tok[1], 1000);
	assert_true(d.bias_val[0] == -100.0f);
	ipc_gen_req_release(&d);
	ipc_gen_req_release(NULL);
	assert_exact(dec_req, &w, &d);

	/* A completion with a prompt and nothing optional. */
	memset(&q, 0, sizeof(q));
	q.mode = IPC_GEN_COMPLETION;
	q.prompt = S("Once upon a time");
	q.top_p = 1;
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_gen_req_decode(&r, &d), 0);
	assert_int_equal(d.mode, IPC_GEN_COMPLETION);
	assert_true(str_eq(d.prompt, q.prompt));
	assert_int_equal(d.n_msgs, 0);
	assert_int_equal(d.n_bias, 0);
	ipc_gen_req_release(&d);
	assert_exact(dec_req, &w, &d);
	wbuf_release(&w);
}

static void
test_gen_req_malformed(void **state)
{
	struct ipc_gen_req	q, d;
	struct wbuf		w;
	char			big[IPC_STOP_LEN + 1];
	float			nan = NAN;

	(void)state;
	wbuf_init(&w);
	/* Mode 0 and 4. */
	for (int m = 0; m <= 4; m += 4) {
		sample_req(&q);
		q.mode = (enum ipc_gen_mode)m;
		wbuf_reset(&w);
		ipc_gen_req_encode(&w, &q);
		assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	}
	/* Too many stop strings, one too long, one empty. */
	sample_req(&q);
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), 0);
	memset(big, 'x', sizeof(big));
	q.stop[0] = (struct ipc_str){ big, IPC_STOP_LEN + 1 };
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	q.stop[0] = (struct ipc_str){ big, IPC_STOP_LEN };
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), 0);
	q.stop[0] = (struct ipc_str){ big, 0 };
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	/* top_logprobs over 20, logprobs not a boolean. */
	sample_req(&q);
	q.top_logprobs = IPC_TOP_MAX + 1;
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	sample_req(&q);
	q.logprobs = 2;
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	/* A NaN sampling parameter, an infinite bias. */
	sample_req(&q);
	q.temperature = nan;
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	sample_req(&q);
	sample_bval[1] = INFINITY;
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	sample_bval[1] = 2.5f;

	/* Counts beyond the maxima or the bytes left, before allocating:
	 * hand-built so that the encoder's own loops are not run. */
	wbuf_reset(&w);
	wbuf_u8(&w, IPC_GEN_CHAT);
	wbuf_u16(&w, 0);
	wbuf_u32(&w, IPC_IMSG_MAX + 1);
	for (int i = 0; i < (IPC_IMSG_MAX + 1) * 6 + 64; i++)
		wbuf_u8(&w, 0);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	wbuf_reset(&w);
	wbuf_u8(&w, IPC_GEN_CHAT);
	wbuf_u16(&w, 0);
	wbuf_u32(&w, 1000);			/* 1000 messages, 12 bytes */
	wbuf_u32(&w, 0);
	wbuf_u64(&w, 0);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	/* A content length past the end. */
	wbuf_reset(&w);
	wbuf_u8(&w, IPC_GEN_COMPLETION);
	wbuf_u16(&w, 0);
	wbuf_u32(&w, 0);
	wbuf_u32(&w, 0xffffffffU);		/* prompt */
	wbuf_u64(&w, 0);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	/* n_stop 5, n_bias over the maximum. */
	memset(&q, 0, sizeof(q));
	q.mode = IPC_GEN_COMPLETION;
	wbuf_reset(&w);
	ipc_gen_req_encode(&w, &q);
	le32_put(w.data + w.len - 8, IPC_STOP_MAX + 1);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	le32_put(w.data + w.len - 8, 0);
	le32_put(w.data + w.len - 4, IPC_BIAS_MAX + 1);
	for (int i = 0; i < (IPC_BIAS_MAX + 1) * 8; i++)
		wbuf_u8(&w, 0);
	assert_int_equal(gen_decode(dec_req, w.data, w.len, &d), -1);
	wbuf_release(&w);
}

static void
test_gen_token(void **state)
{
	struct ipc_gen_token	t, d;
	struct wbuf		w;
	struct rbuf		r;

	(void)state;
	memset(&t, 0, sizeof(t));
	t.id = 1234;
	t.text = S("h\xc3\xa9");
	t.lp = (struct ipc_gen_logprob){ S("h\xc3\xa9"), -0.25f };
	t.n_top = 2;
	t.top[0] = (struct ipc_gen_logprob){ S("h\xc3\xa9"), -0.25f };
	t.top[1] = (struct ipc_gen_logprob){ S("x"), -3.0f };
	wbuf_init(&w);
	ipc_gen_token_encode(&w, &t);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_gen_token_decode(&r, &d), 0);
	assert_int_equal(d.id, 1234);
	assert_true(str_eq(d.text, t.text));
	assert_true(str_eq(d.lp.token, t.lp.token));
	assert_true(d.lp.logprob == -0.25f);
	assert_int_equal(d.n_top, 2);
	assert_true(str_eq(d.top[1].token, t.top[1].token));
	assert_true(d.top[1].logprob == -3.0f);
	assert_exact(dec_tok, &w, &d);

	/* The end-of-text flush: id -1, empty logprob. */
	memset(&t, 0, sizeof(t));
	t.id = -1;
	t.text = S("tail");
	wbuf_reset(&w);
	ipc_gen_token_encode(&w, &t);
	assert_int_equal(gen_decode(dec_tok, w.data, w.len, &d), 0);
	/* Ids below -1, a positive logprob, too many top entries. */
	t.id = -2;
	wbuf_reset(&w);
	ipc_gen_token_encode(&w, &t);
	assert_int_equal(gen_decode(dec_tok, w.data, w.len, &d), -1);
	t.id = 5;
	t.lp.logprob = 0.5f;
	wbuf_reset(&w);
	ipc_gen_token_encode(&w, &t);
	assert_int_equal(gen_decode(dec_tok, w.data, w.len, &d), -1);
	t.lp.logprob = NAN;
	wbuf_reset(&w);
	ipc_gen_token_encode(&w, &t);
	assert_int_equal(gen_decode(dec_tok, w.data, w.len, &d), -1);
	t.lp.logprob = 0;
	wbuf_reset(&w);
	ipc_gen_token_encode(&w, &t);
	w.data[w.len - 1] = IPC_TOP_MAX + 1;	/* n_top */
	for (int i = 0; i < (IPC_TOP_MAX + 1) * 6; i++)
		wbuf_u8(&w, 0);
	assert_int_equal(gen_decode(dec_tok, w.data, w.len, &d), -1);
	wbuf_release(&w);
}

static void
test_gen_done(void **state)
{
	struct ipc_gen_done	g, d;
	struct wbuf		w;
	struct rbuf		r;
	float			v[3] = { 0.6f, 0.8f, 0 };

	(void)state;
	g = (struct ipc_gen_done){ IPC_FINISH_LENGTH, 10, 4, 7, 12345, 0,
	    NULL };
	wbuf_init(&w);
	ipc_gen_done_encode(&w, &g);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_gen_done_decode(&r, &d), 0);
	assert_int_equal(d.finish, IPC_FINISH_LENGTH);
	assert_int_equal(d.prompt_tokens, 10);
	assert_int_equal(d.cached_tokens, 4);
	assert_int_equal(d.completion_tokens, 7);
	assert_int_equal(d.compute_us, 12345);
	assert_int_equal(d.n_embd, 0);
	assert_exact(dec_done, &w, &d);

	/* An embedding. */
	g = (struct ipc_gen_done){ IPC_FINISH_STOP, 3, 0, 0, 1, 3,
	    (const uint8_t *)v };
	wbuf_reset(&w);
	ipc_gen_done_encode(&w, &g);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_gen_done_decode(&r, &d), 0);
	assert_int_equal(d.n_embd, 3);
	assert_memory_equal(d.embd, v, sizeof(v));
	assert_exact(dec_done, &w, &d);
	/* n_embd disagreeing with the bytes that follow. */
	le32_put(w.data + 21, 4);
	assert_int_equal(gen_decode(dec_done, w.data, w.len, &d), -1);
	le32_put(w.data + 21, 0x40000000U);
	assert_int_equal(gen_decode(dec_done, w.data, w.len, &d), -1);
	le32_put(w.data + 21, 3);
	/* Unknown finish, cached above prompt. */
	w.data[0] = 0;
	assert_int_equal(gen_decode(dec_done, w.data, w.len, &d), -1);
	w.data[0] = IPC_FINISH_CANCELLED + 1;
	assert_int_equal(gen_decode(dec_done, w.data, w.len, &d), -1);
	w.data[0] = IPC_FINISH_CANCELLED;
	le32_put(w.data + 5, 4);
	assert_int_equal(gen_decode(dec_done, w.data, w.len, &d), -1);
	le32_put(w.data + 5, 3);
	assert_int_equal(gen_decode(dec_done, w.data, w.len, &d), 0);
	wbuf_release(&w);
}

static void
sample_llm(struct ipc_llm_meta *l)
{
	*l = (struct ipc_llm_meta){ 2048, 32000, 288, 8, S("llama"),
	    S("chatml") };
}

static void
test_llm_meta(void **state)
{
	struct ipc_llm_meta	l, d;
	struct ipc_meta		m, md, mc;
	struct wbuf		w;
	struct rbuf		r;
	char			big[IPC_LLM_STR_MAX + 1];

	(void)state;
	sample_llm(&l);
	wbuf_init(&w);
	ipc_llm_meta_encode(&w, &l);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_llm_meta_decode(&r, &d), 0);
	assert_int_equal(d.n_ctx, 2048);
	assert_int_equal(d.n_vocab, 32000);
	assert_int_equal(d.n_embd, 288);
	assert_int_equal(d.max_seqs, 8);
	assert_true(str_eq(d.arch, l.arch));
	assert_true(str_eq(d.chat_template, l.chat_template));
	assert_exact(dec_llm, &w, &d);

	/* No template is fine; zero counts, long or NUL names are not. */
	l.chat_template = S("");
	wbuf_reset(&w);
	ipc_llm_meta_encode(&w, &l);
	assert_int_equal(gen_decode(dec_llm, w.data, w.len, &d), 0);
	for (int i = 0; i < 4; i++) {
		sample_llm(&l);
		(&l.n_ctx)[i] = 0;
		wbuf_reset(&w);
		ipc_llm_meta_encode(&w, &l);
		assert_int_equal(gen_decode(dec_llm, w.data, w.len, &d), -1);
	}
	sample_llm(&l);
	memset(big, 'a', sizeof(big));
	l.arch = (struct ipc_str){ big, IPC_LLM_STR_MAX + 1 };
	wbuf_reset(&w);
	ipc_llm_meta_encode(&w, &l);
	assert_int_equal(gen_decode(dec_llm, w.data, w.len, &d), -1);
	l.arch = (struct ipc_str){ "lla\0ma", 6 };
	wbuf_reset(&w);
	ipc_llm_meta_encode(&w, &l);
	assert_int_equal(gen_decode(dec_llm, w.data, w.len, &d), -1);
	l.arch = S("");
	wbuf_reset(&w);
	ipc_llm_meta_encode(&w, &l);
	assert_int_equal(gen_decode(dec_llm, w.data, w.len, &d), -1);

	/* A GGUF HELLO: no tensors, the llm part owned by the meta. */
	memset(&m, 0, sizeof(m));
	m.format = MODEL_FORMAT_GGUF;
	m.mem_bytes = 1 << 20;
	sample_llm(&m.llm);
	wbuf_reset(&w);
	ipc_meta_encode(&w, &m);
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &md), 0);
	assert_int_equal(md.format, MODEL_FORMAT_GGUF);
	assert_int_equal(md.llm.max_seqs, 8);
	assert_string_equal(md.llm.arch.p, "llama");
	assert_string_equal(md.llm.chat_template.p, "chatml");
	ipc_meta_copy(&mc, &md);
	ipc_meta_release(&md);
	assert_string_equal(mc.llm.arch.p, "llama");
	assert_int_equal(mc.llm.chat_template.n, 6);
	ipc_meta_release(&mc);
	for (size_t len = 0; len < w.len; len++) {
		uint8_t	*copy = xmalloc(len ? len : 1);

		memcpy(copy, w.data, len);
		rbuf_init(&r, copy, len);
		assert_int_equal(ipc_meta_decode(&r, &md), -1);
		assert_null(md.llm.arch.p);
		free(copy);
	}
	/* The same bytes with the ONNX format leave the llm part over:
	 * an ONNX HELLO is unchanged, and stops after its tensors. */
	w.data[0] = MODEL_FORMAT_ONNX;
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(ipc_meta_decode(&r, &md), 0);
	assert_int_not_equal(rbuf_left(&r), 0);
	assert_null(md.llm.arch.p);
	ipc_meta_release(&md);
	wbuf_release(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_roundtrip),
		cmocka_unit_test(test_hdr_bad),
		cmocka_unit_test(test_frame_io),
		cmocka_unit_test(test_frame_truncated_header),
		cmocka_unit_test(test_frame_truncated_payload),
		cmocka_unit_test(test_frame_oversized),
		cmocka_unit_test(test_reader_frames),
		cmocka_unit_test(test_reader_large),
		cmocka_unit_test(test_reader_ahead),
		cmocka_unit_test(test_reader_bad),
		cmocka_unit_test(test_tensors_roundtrip),
		cmocka_unit_test(test_tensors_truncated),
		cmocka_unit_test(test_tensors_malformed),
		cmocka_unit_test(test_meta_roundtrip),
		cmocka_unit_test(test_meta_malformed),
		cmocka_unit_test(test_shm_window),
		cmocka_unit_test(test_wire),
		cmocka_unit_test(test_gen_req_roundtrip),
		cmocka_unit_test(test_gen_req_malformed),
		cmocka_unit_test(test_gen_token),
		cmocka_unit_test(test_gen_done),
		cmocka_unit_test(test_llm_meta),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
