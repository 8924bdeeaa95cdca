/* runtime/serve.c - see serve.h.
 *
 * Everything a request needs is allocated once and reused: the frame
 * buffer and the reply buffer only grow, the model's arena only grows.
 * Tensor contents are tenant data and are never logged.  Frames come
 * through a buffered reader (ipc.h): a batch-1 request, header and
 * payload, costs one read(), taken by the poll that noticed it.
 *
 * Right after answering, the loop polls the socket for SERVE_SPIN_NS
 * before it blocks: a client at batch 1 sends its next request within
 * microseconds, and a CPU gone idle in a blocking read() takes longer
 * than that to wake.  The spin is bounded and only follows an answer, so
 * an idle runtime sleeps.
 *
 * The product workers (kernels.h) get the same care: a large request
 * wakes them as its header arrives, so that their wake-up overlaps the
 * payload's read instead of its first product.
 *
 * While a large request computes, the read-ahead thread reads what comes
 * next into a second reader: the copy of a batch's input from the socket
 * (tens of microseconds for a batch-64 MLP's 200 KB) then overlaps the
 * work before it, as it does in a server whose clients queue requests.
 * The frame being computed stays in the first reader, untouched; the
 * loop takes the second one back when the request is answered, waiting
 * at most for a read under way, never for the thread to wake (a request
 * that nothing follows would otherwise make the next one wait that long),
 * and the first becomes the spare.
 *
 * maasd sends most INFERs through the shared window instead (INFER_SHM,
 * common/ipc.h): their payloads are decoded and computed on where maasd
 * wrote them, and the socket carries only the 36-byte frame naming
 * them, so neither a copy nor a read-ahead is needed. */
#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "runtime/kernels.h"
#include "runtime/onnx/onnx.h"
#include "runtime/serve.h"

#define SERVE_ERRLEN	512
#define SERVE_SPIN_NS	80000	/* 80 us */
/* An INFER payload this large holds a batch or a long sequence, whose
 * products the workers will share; a single row of the models served
 * stays on one thread and leaves them asleep. */
#define SERVE_WAKE_BYTES	(64u << 10)

struct serve_ahead {
	pthread_t		 th;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 fd;		/* the IPC socket */
	int			 wakefd;	/* eventfd: ends its poll() */
	bool			 job;		/* under mu: a read to do */
	bool			 quit;		/* under mu */
	struct ipc_reader	*rd;		/* the job's, as state says */
	atomic_int		 state;		/* enum ipc_ahead */
};

struct server {
	int			 fd;
	struct onnx_model	*m;		/* borrowed */
	struct serve_ahead	*ahead;		/* or NULL */
	const uint8_t		*shm;		/* the window, or NULL */
	size_t			 shm_len;
	struct ipc_reader	 rds[2];	/* frames from maasd */
	int			 cur;		/* the reader in use */
	/* The last large request found the next one there as it ended:
	 * the read-ahead is worth starting.  A request nothing follows
	 * gains nothing from it, and its thread's wake-ups cost the
	 * product workers. */
	bool			 queued;
	struct wbuf		 out;		/* reply payload, reused */
	struct ipc_tensor	*in;		/* IPC_MAX_TENSORS decoded */
	int			*want;		/* IPC_MAX_TENSORS outputs */
	char			 err[SERVE_ERRLEN];
};

static int	serve_infer(struct server *, uint64_t, const uint8_t *,
		    size_t);
static int	reply_err(struct server *, uint64_t, enum ipc_err);
static void	*ahead_main(void *);
static bool	ahead_begin(struct server *);
static int	ahead_end(struct server *);

struct serve_ahead *
serve_ahead_start(int fd)
{
	struct serve_ahead	*a = xcalloc(1, sizeof(*a));

	a->fd = fd;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if ((a->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		log_warn("eventfd: serving without read-ahead");
		goto fail;
	}
	if ((errno = pthread_create(&a->th, NULL, ahead_main, a)) != 0) {
		log_warn("pthread_create: serving without read-ahead");
		close(a->wakefd);
		goto fail;
	}
	(void)pthread_setname_np(a->th, "maas-io");
	return a;
 fail:
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
	return NULL;
}

int
serve_ahead_fd(const struct serve_ahead *a)
{
	return a != NULL ? a->wakefd : -1;
}

void
serve_ahead_free(struct serve_ahead *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->quit = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->th, NULL);
	close(a->wakefd);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
}

static void *
ahead_main(void *arg)
{
	struct serve_ahead	*a = arg;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->job && !a->quit)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->quit)
			break;
		a->job = false;
		pthread_mutex_unlock(&a->mu);
		/* Its failure, if any, is left in the reader. */
		(void)ipc_reader_ahead(a->fd, a->rd, a->wakefd, &a->state,
		    IPC_MAX_PAYLOAD);
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* Hands what the reader in use holds past the frame just taken to the
 * spare one and sets the thread reading into it, unless the next frame is
 * there already or the thread has yet to leave a read-ahead cut short.
 * True if it did. */
static bool
ahead_begin(struct server *s)
{
	struct serve_ahead	*a = s->ahead;
	struct ipc_reader	*cur = &s->rds[s->cur], *next = &s->rds[!s->cur];

	if (a == NULL || atomic_load(&a->state) != IPC_AHEAD_IDLE ||
	    ipc_reader_whole(cur, IPC_MAX_PAYLOAD) ||
	    ipc_reader_move(cur, next) == -1)
		return false;
	a->rd = next;
	atomic_store(&a->state, IPC_AHEAD_RUN);
	pthread_mutex_lock(&a->mu);
	a->job = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return true;
}

/* Takes the read-ahead's reader back and moves on to it: -1, or
 * SERVE_EIO if the socket failed under it. */
static int
ahead_end(struct server *s)
{
	struct serve_ahead	*a = s->ahead;
	struct ipc_reader	*next = &s->rds[!s->cur];
	bool			 done;

	done = ipc_reader_reclaim(&a->state, a->wakefd);
	s->cur = !s->cur;
	if (!done || next->ahead_err == 0)
		return -1;
	if (next->ahead_err == ENOMEM) {
		/* The spare's buffer goes back to the allocator, for the
		 * frame that could not fit beside it. */
		ipc_reader_free(&s->rds[!s->cur]);
		return -1;
	}
	errno = next->ahead_err;
	log_warn("cannot read from maasd");
	return SERVE_EIO;
}

static int
reply_err(struct server *s, uint64_t req, enum ipc_err code)
{
	wbuf_reset(&s->out);
	wbuf_u16(&s->out, (uint16_t)code);
	wbuf_str16(&s->out, s->err);
	log_debug("req=%llu infer failed: %s", (unsigned long long)req,
	    s->err);
	if (ipc_write_frame(s->fd, IPC_INFER_ERR, req, s->out.data,
	    s->out.len) == -1) {
		log_warn("cannot write to maasd");
		return SERVE_EIO;
	}
	return -1;
}

/* -1 when the request was answered, or a SERVE_* status to end with. */
static int
serve_infer(struct server *s, uint64_t req, const uint8_t *payload,
    size_t len)
{
	struct ipc_tensor_desc	 d;
	struct rbuf		 r;
	struct timespec		 t0, t1;
	enum onnx_status	 st;
	const uint8_t		*name;
	uint64_t		 us, nb, total = 12;
	uint32_t		 nwant;
	uint16_t		 nlen;
	int			 n, idx;

	s->err[0] = '\0';
	rbuf_init(&r, payload, len);
	if ((n = ipc_get_tensors(&r, s->in, IPC_MAX_TENSORS)) == -1 ||
	    rbuf_u32(&r, &nwant) == -1 || nwant > IPC_MAX_TENSORS)
		return SERVE_EPROTO;
	for (uint32_t i = 0; i < nwant; i++) {
		if (rbuf_u16(&r, &nlen) == -1 ||
		    rbuf_bytes(&r, &name, nlen) == -1)
			return SERVE_EPROTO;
		if (s->err[0] != '\0')
			continue;	/* keep the first problem */
		if ((idx = onnx_output_index(s->m, (const char *)name,
		    nlen)) == -1)
			snprintf(s->err, sizeof(s->err), "unknown output "
			    "'%.*s'", nlen > 64 ? 64 : (int)nlen, name);
		for (uint32_t j = 0; idx != -1 && j < i; j++)
			if (s->want[j] == idx)
				snprintf(s->err, sizeof(s->err), "output "
				    "'%.*s' is requested twice", (int)nlen,
				    name);
		s->want[i] = idx;
	}
	if (rbuf_left(&r) != 0 || r.err)
		return SERVE_EPROTO;
	if (s->err[0] != '\0') {
		for (char *p = s->err; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		return reply_err(s, req, IPC_ERR_BAD_INPUT);
	}
	if (nwant == 0) {
		nwant = (uint32_t)onnx_n_outputs(s->m);
		for (uint32_t i = 0; i < nwant; i++)
			s->want[i] = (int)i;
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	st = onnx_run(s->m, s->in, (size_t)n, s->err, sizeof(s->err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (st != ONNX_OK)
		return reply_err(s, req, st == ONNX_EINPUT ?
		    IPC_ERR_BAD_INPUT : IPC_ERR_TOO_LARGE);
	us = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000 +
	    (uint64_t)((t1.tv_nsec - t0.tv_nsec) / 1000);

	/* Size the reply before building it: it must fit one frame. */
	for (uint32_t i = 0; i < nwant; i++) {
		onnx_output(s->m, (size_t)s->want[i], &d, &nb);
		total += 2 + strlen(d.name) + 2 + 8 * (uint64_t)d.ndim + 8 + nb;
	}
	if (total > IPC_MAX_PAYLOAD) {
		snprintf(s->err, sizeof(s->err), "outputs take %llu bytes, "
		    "more than a frame can carry", (unsigned long long)total);
		return reply_err(s, req, IPC_ERR_TOO_LARGE);
	}
	wbuf_reset(&s->out);
	wbuf_u64(&s->out, us);
	wbuf_u32(&s->out, nwant);
	for (uint32_t i = 0; i < nwant; i++) {
		const void	*data = onnx_output(s->m, (size_t)s->want[i],
				    &d, &nb);

		ipc_put_tensor(&s->out, &d, data, nb);
	}
	log_debug("req=%llu infer ok: %d inputs, %u outputs, %llu bytes, "
	    "%llu us", (unsigned long long)req, n, nwant,
	    (unsigned long long)s->out.len, (unsigned long long)us);
	if (ipc_write_frame(s->fd, IPC_INFER_OK, req, s->out.data,
	    s->out.len) == -1) {
		log_warn("cannot write to maasd");
		return SERVE_EIO;
	}
	return -1;
}

int
serve_loop(int fd, struct onnx_model *m, struct serve_ahead *a,
    const uint8_t *shm, size_t shm_len)
{
	struct server	 s = { .fd = fd, .m = m, .ahead = a, .shm = shm,
			    .shm_len = shm_len };
	struct ipc_hdr	 h;
	const uint8_t	*payload = NULL;
	uint64_t	 off, len;
	int		 ret, r, r2;
	bool		 answered = false, ahead, big;

	ipc_reader_init(&s.rds[0]);
	ipc_reader_init(&s.rds[1]);
	wbuf_init(&s.out);
	s.in = xcalloc(IPC_MAX_TENSORS, sizeof(*s.in));
	s.want = xcalloc(IPC_MAX_TENSORS, sizeof(*s.want));
	for (;;) {
		/* Whatever the socket holds once something came: a small
		 * frame whole, a large one's header, which wakes the product
		 * workers while the rest is read.  Errors and EOF are
		 * ipc_reader_frame()'s to report. */
		if (ipc_reader_wait(fd, &s.rds[s.cur], answered ?
		    SERVE_SPIN_NS : 0) == 1 && ipc_reader_peek(&s.rds[s.cur],
		    &h, IPC_MAX_PAYLOAD) &&
		    h.type == IPC_INFER && h.len >= SERVE_WAKE_BYTES)
			kernel_par_wake();
		answered = false;
		errno = 0;
		r = ipc_reader_frame(fd, &s.rds[s.cur], &h, &payload,
		    IPC_MAX_PAYLOAD);
		if (r == 0) {
			ret = SERVE_EOF;
			break;
		}
		if (r == -1 && errno == ENOMEM && h.type == IPC_INFER) {
			/* Dropped unread: more than RLIMIT_AS leaves room
			 * for.  The request is refused, serving goes on. */
			snprintf(s.err, sizeof(s.err), "request of %u bytes "
			    "exceeds the runtime's memory limit", h.len);
			if ((ret = reply_err(&s, h.req_id,
			    IPC_ERR_TOO_LARGE)) != -1)
				break;
			continue;
		}
		if (r == -1 && errno == ENOMEM) {
			/* Only INFER carries a payload worth refusing. */
			log_warnx("req=%llu: bad %s frame from maasd",
			    (unsigned long long)h.req_id,
			    ipc_type_name((enum ipc_type)h.type));
			ret = SERVE_EPROTO;
			break;
		}
		if (r == -1 && (errno == EPROTO || errno == 0)) {
			log_warnx("malformed or truncated frame from maasd");
			ret = SERVE_EPROTO;
			break;
		}
		if (r == -1) {
			log_warn("cannot read from maasd");
			ret = SERVE_EIO;
			break;
		}
		if (h.type == IPC_INFER) {
			big = h.len >= SERVE_WAKE_BYTES;
			ahead = big && s.queued && ahead_begin(&s);
			ret = serve_infer(&s, h.req_id, payload, h.len);
			if (ahead && (r2 = ahead_end(&s)) != -1 && ret == -1)
				ret = r2;
			/* Whether requests queue: the next one came while
			 * this one computed (the read-ahead leaves it in the
			 * reader, which answers without a syscall). */
			if (big)
				s.queued = ipc_reader_pending(fd,
				    &s.rds[s.cur]);
		} else if (h.type == IPC_INFER_SHM) {
			if (s.shm == NULL || ipc_shm_ref_decode(payload, h.len,
			    s.shm_len, &off, &len) == -1)
				ret = SERVE_EPROTO;
			else {
				if (len >= SERVE_WAKE_BYTES)
					kernel_par_wake();
				ret = serve_infer(&s, h.req_id, s.shm + off,
				    (size_t)len);
			}
		} else if (h.type == IPC_PING && h.len == 0)
			ret = ipc_write_frame(fd, IPC_PONG, h.req_id, NULL,
			    0) == -1 ? SERVE_EIO : -1;
		else
			ret = SERVE_EPROTO;
		if (ret == SERVE_EPROTO)
			log_warnx("req=%llu: bad %s frame from maasd",
			    (unsigned long long)h.req_id,
			    ipc_type_name((enum ipc_type)h.type));
		if (ret != -1)
			break;
		answered = true;
	}
	ipc_reader_free(&s.rds[0]);
	ipc_reader_free(&s.rds[1]);
	free(s.in);
	free(s.want);
	wbuf_release(&s.out);
	return ret;
}
