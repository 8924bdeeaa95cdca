/* bench/onnx/ipcbench.c - times INFER round trips to maas-runtime from C.
 *
 *   ipcbench RUNTIME MODEL THREADS SECONDS FRAME[@DEPTH]...
 *
 * Spawns RUNTIME (maas-runtime) on one end of a unix socketpair with
 * --fd, --model MODEL and --threads THREADS, the way maasd and
 * bench/onnx/run do, and waits for its HELLO.  Then, for each FRAME (a
 * file holding one complete INFER frame, header and payload, built by
 * bench/onnx/run), it sends the frame 3 times to warm up and then again
 * and again for SECONDS (at least 5 times), timing each round trip from
 * the first byte written to the last byte of the INFER_OK read, and
 * prints one JSON line per frame:
 *   {"runs", "seconds", "median_us", "compute_median_us", "p10_us",
 *    "compute_p10_us"}
 * compute_* are the runtime's own compute times, which INFER_OK reports;
 * the tenth percentiles say what a quiet machine would show when others
 * share it.  A FRAME may also be a PING, whose PONG round trip is the
 * floor under any INFER's (compute 0).  This is what maasd does per
 * request, minus its event loop: a C client with a prebuilt frame, so that
 * the measurement holds the runtime's cost and the socket, not a
 * scripting language's packing and reads.
 *
 * FRAME@DEPTH keeps DEPTH copies of the frame in flight, as maasd does
 * under load with a large INFER (REPLICA_PIPELINE in
 * scheduler/replica.h): a new one is written as each answer is read
 * (then waited for in a blocking read, as maasd waits in its event
 * loop), and the times are those between answers, what the runtime's
 * throughput is made of.
 *
 * INFER frames go as maasd sends them (scheduler/replica.c): their
 * payloads through the shared window of common/ipc.h, a memfd this tool
 * creates, seals and gives the runtime with --shm-fd, written there
 * afresh for every request (maasd copies each request's payload into a
 * slot) and named by a 36-byte INFER_SHM frame; a payload larger than a
 * slot, or frames more in flight than there are slots, go through the
 * socket.  -DIB_SHM=0 sends every frame through the socket.
 *
 * A bench tool, not part of the product: it trusts the runtime it
 * starts, but still bounds every length it reads. */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IB_MAGIC	0x5341414dU
#define IB_VERSION	1
#define IB_HDR		20
#define IB_MAX_PAYLOAD	(256U << 20)
#define IB_MAX_RUNS	(1U << 22)
#define IB_HELLO	1
#define IB_ERROR	2
#define IB_INFER_OK	4
#define IB_PONG		11
/* Socket buffers as maasd sets them (scheduler/replica.c): a batch-64
 * frame fits whole.  -DIB_SOCKBUF=0 keeps the kernel's defaults. */
/* How long a reply is polled for before blocking (see spin_reply());
 * -DIB_SPIN_US=0 blocks at once.  After IB_HOT_US of it, each poll
 * yields the CPU to any thread waiting for one. */
#ifndef IB_SPIN_US
#define IB_SPIN_US	200
#endif
#ifndef IB_HOT_US
#define IB_HOT_US	50
#endif
#ifndef IB_SOCKBUF
#define IB_SOCKBUF	(1 << 20)
#endif
#ifndef IB_SHM
#define IB_SHM		1
#endif
#define IB_INFER	3
#define IB_INFER_SHM	12
#define IB_SHM_SLOTS	2		/* IPC_SHM_SLOTS, IPC_SHM_SLOT */
#define IB_SHM_SLOT	(16U << 20)

/* The window and how one frame goes out: whole through the socket, or
 * its payload into the next slot and a reference through the socket. */
static uint8_t	*shm;
struct frame {
	const uint8_t	*f;		/* header and payload */
	size_t		 len;
	int		 shm;		/* through the window */
	size_t		 pad;		/* 64-aligns the first tensor's data */
	unsigned	 next;		/* slot of the next send */
};

/* Writes a frame each time the reader grants a credit (an answer read),
 * on its own thread: a runtime's answer can be as large as a request,
 * and one thread that wrote a second request before reading the first
 * answer would wait on a full socket while the runtime waits on its
 * answer, as maasd, which reads and writes as the socket allows, never
 * does. */
struct writer {
	int			 fd;
	struct frame		*fr;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 credits;
	int			 stop;
	size_t			 sent;
};

/* Bytes read from the runtime ahead of the frame being taken: replies are
 * read as maasd's event loop reads them, whatever the socket holds in one
 * read() (a small reply's header and payload together), not header and
 * payload apart.  Only the main thread reads. */
#define IB_STAGE	(64 << 10)
static struct {
	uint8_t	buf[IB_STAGE];
	size_t	off, len;
} rx;

struct reply {
	uint16_t	 type;
	uint32_t	 len;
	uint8_t		*buf;		/* payload, grown */
	size_t		 cap;
};

static void	die(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static uint32_t	le32(const uint8_t *);
static uint64_t	le64(const uint8_t *);
static void	read_full(int, void *, size_t);
static void	take(int, void *, size_t);
static void	write_full(int, const void *, size_t);
static void	read_reply(int, struct reply *, int);
static void	spin_reply(int);
static double	now_us(void);
static int	cmp_double(const void *, const void *);
static double	median(double *, size_t);
static void	*load_frame(const char *, size_t *);
static void	bench(int, const char *, int, double);
static void	*writer_main(void *);
static void	le64_put(uint8_t *, uint64_t);
static void	send_frame(int, struct frame *);

static void
die(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fputs("ipcbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void
le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* As maasd sends an INFER: the payload copied into the next slot, then
 * a frame that says where it lies. */
static void
send_frame(int fd, struct frame *fr)
{
	uint8_t		 h[IB_HDR + 16];
	size_t		 plen = fr->len - IB_HDR;
	uint64_t	 off;

	if (!fr->shm) {
		write_full(fd, fr->f, fr->len);
		return;
	}
	off = (uint64_t)(fr->next++ % IB_SHM_SLOTS) * IB_SHM_SLOT + fr->pad;
	memcpy(shm + off, fr->f + IB_HDR, plen);
	memcpy(h, fr->f, IB_HDR);
	h[6] = IB_INFER_SHM;
	h[7] = 0;
	h[16] = 16;
	h[17] = h[18] = h[19] = 0;
	le64_put(h + IB_HDR, off);
	le64_put(h + IB_HDR + 8, plen);
	write_full(fd, h, sizeof(h));
}

static void
read_full(int fd, void *p, size_t n)
{
	uint8_t	*b = p;
	ssize_t	 r;

	while (n > 0) {
		if ((r = read(fd, b, n)) == -1 && errno == EINTR)
			continue;
		if (r == -1)
			die("read: %s", strerror(errno));
		if (r == 0)
			die("maas-runtime closed the socket");
		b += r;
		n -= (size_t)r;
	}
}

/* n bytes of the runtime's stream: the staged ones first, then a read()
 * of up to IB_STAGE at a time (or straight into p, for a large rest). */
static void
take(int fd, void *p, size_t n)
{
	uint8_t	*b = p;
	size_t	 k;
	ssize_t	 r;

	for (;;) {
		k = rx.len - rx.off < n ? rx.len - rx.off : n;
		memcpy(b, rx.buf + rx.off, k);
		rx.off += k;
		b += k;
		n -= k;
		if (n == 0)
			return;
		if (n >= IB_STAGE) {
			read_full(fd, b, n);
			return;
		}
		while ((r = read(fd, rx.buf, IB_STAGE)) == -1 && errno == EINTR)
			;
		if (r == -1)
			die("read: %s", strerror(errno));
		if (r == 0)
			die("maas-runtime closed the socket");
		rx.off = 0;
		rx.len = (size_t)r;
	}
}

static void
write_full(int fd, const void *p, size_t n)
{
	const uint8_t	*b = p;
	ssize_t		 r;

	while (n > 0) {
		if ((r = write(fd, b, n)) == -1 && errno == EINTR)
			continue;
		if (r == -1)
			die("write: %s", strerror(errno));
		b += r;
		n -= (size_t)r;
	}
}

/* Polls fd for up to IB_SPIN_US before the blocking read, as the runtime
 * polls for the next request after answering: on this machine (a VM) a
 * thread that sleeps in read() waits 20-40 us for its halted vCPU to be
 * woken, which would be counted in every batch-1 round trip.  Past
 * IB_HOT_US (longer than a batch-1 request takes) the poll yields between
 * tries: a runtime with as many threads as the machine has CPUs would
 * otherwise find one of them taken by this client for most of the first
 * 200 us of a batch-64 request, which maasd, asleep in its event loop,
 * does not do to it. */
static void
spin_reply(int fd)
{
	double	t0 = now_us(), t;
	ssize_t	n;

	if (rx.off < rx.len)
		return;
	while (IB_SPIN_US > 0 && (t = now_us() - t0) < IB_SPIN_US) {
		if ((n = recv(fd, rx.buf, IB_STAGE, MSG_DONTWAIT)) > 0) {
			rx.off = 0;
			rx.len = (size_t)n;
			return;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR))
			return;		/* take() reports it */
		if (t >= IB_HOT_US)
			sched_yield();
	}
}

/* One frame into r; its length is checked before the buffer grows.  With
 * spin false it blocks at once, as maasd's event loop does. */
static void
read_reply(int fd, struct reply *r, int spin)
{
	uint8_t	h[IB_HDR];

	if (spin)
		spin_reply(fd);
	take(fd, h, sizeof(h));
	if (le32(h) != IB_MAGIC || (h[4] | h[5] << 8) != IB_VERSION)
		die("bad frame header from maas-runtime");
	r->type = (uint16_t)(h[6] | h[7] << 8);
	r->len = le32(h + 16);
	if (r->len > IB_MAX_PAYLOAD)
		die("frame of %u bytes from maas-runtime", r->len);
	if (r->len > r->cap) {
		free(r->buf);
		if ((r->buf = malloc(r->len)) == NULL)
			die("out of memory");
		r->cap = r->len;
	}
	take(fd, r->buf, r->len);
}

static double
now_us(void)
{
	struct timespec	t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void *
load_frame(const char *path, size_t *len)
{
	struct stat	 st;
	uint8_t		*p;
	int		 fd;

	if ((fd = open(path, O_RDONLY)) == -1 || fstat(fd, &st) == -1)
		die("%s: %s", path, strerror(errno));
	if (st.st_size < IB_HDR || (uint64_t)st.st_size > IB_HDR +
	    (uint64_t)IB_MAX_PAYLOAD)
		die("%s: not one frame", path);
	*len = (size_t)st.st_size;
	if ((p = malloc(*len)) == NULL)
		die("out of memory");
	read_full(fd, p, *len);
	close(fd);
	if (le32(p) != IB_MAGIC || le32(p + 16) != *len - IB_HDR)
		die("%s: not one frame", path);
	return p;
}

/* Times one frame, depth of them in flight, and prints its JSON line. */
static void
bench(int fd, const char *path, int depth, double seconds)
{
	struct reply	 r = { 0 };
	struct frame	 fr = { 0 };
	double		*lat, *comp, t0, a, b, limit;
	size_t		 len, n = 0;
	uint8_t		*f = load_frame(path, &len);

	fr.f = f;
	fr.len = len;
	if (shm != NULL && f[6] == IB_INFER && depth <= IB_SHM_SLOTS) {
		const uint8_t	*p = f + IB_HDR;
		size_t		 plen = len - IB_HDR, off;

		/* As ipc_shm_pad(): the first tensor's elements on a
		 * 64-byte boundary. */
		if (plen >= 6 && le32(p) != 0 &&
		    (off = 6 + (size_t)(p[4] | p[5] << 8)) + 2 <= plen) {
			off += 2 + 8 * (size_t)p[off + 1] + 8;
			fr.pad = (64 - off % 64) % 64;
		}
		fr.shm = fr.pad + plen <= IB_SHM_SLOT;
	}

	lat = calloc(IB_MAX_RUNS, sizeof(*lat));
	comp = calloc(IB_MAX_RUNS, sizeof(*comp));
	if (lat == NULL || comp == NULL)
		die("out of memory");
	for (int i = 0; i < 3; i++) {
		send_frame(fd, &fr);
		read_reply(fd, &r, depth == 1);
		if (r.type != IB_INFER_OK && r.type != IB_PONG)
			die("maas-runtime answered frame type %u", r.type);
	}
	t0 = now_us();
	limit = t0 + seconds * 1e6;
	b = t0;
	if (depth > 1) {
		/* Frames through the window are small and never fill the
		 * socket: the next one is written as each answer is read,
		 * on this thread, as maasd's event loop does. */
		struct writer	w = { .fd = fd, .fr = &fr,
				    .credits = depth };
		pthread_t	th;
		size_t		got = 0, sent = 0;

		if (fr.shm)
			for (; sent < (size_t)depth; sent++)
				send_frame(fd, &fr);
		else {
			pthread_mutex_init(&w.mu, NULL);
			pthread_cond_init(&w.cv, NULL);
			if (pthread_create(&th, NULL, writer_main, &w) != 0)
				die("pthread_create failed");
		}
		while ((b < limit || n < 5) && n < IB_MAX_RUNS) {
			a = b;
			read_reply(fd, &r, 0);
			got++;
			if (fr.shm) {
				send_frame(fd, &fr);
				sent++;
			} else {
				pthread_mutex_lock(&w.mu);
				w.credits++;
				pthread_cond_signal(&w.cv);
				pthread_mutex_unlock(&w.mu);
			}
			b = now_us();
			if (r.type != IB_INFER_OK || r.len < 8)
				die("maas-runtime answered frame type %u",
				    r.type);
			comp[n] = (double)le64(r.buf);
			lat[n] = b - a;
			n++;
		}
		if (fr.shm) {
			for (; got < sent; got++)
				read_reply(fd, &r, 0);
		} else {
			pthread_mutex_lock(&w.mu);
			w.stop = 1;
			pthread_cond_signal(&w.cv);
			pthread_mutex_unlock(&w.mu);
			/* Answers keep coming while the writer finishes a
			 * frame. */
			for (;;) {
				size_t	sent;

				pthread_mutex_lock(&w.mu);
				sent = w.sent;
				pthread_mutex_unlock(&w.mu);
				if (got >= sent)
					break;
				read_reply(fd, &r, 0);
				got++;
			}
			pthread_join(th, NULL);
			while (got < w.sent) {
				read_reply(fd, &r, 0);
				got++;
			}
			pthread_mutex_destroy(&w.mu);
			pthread_cond_destroy(&w.cv);
		}
	} else while ((b < limit || n < 5) && n < IB_MAX_RUNS) {
		a = now_us();
		send_frame(fd, &fr);
		read_reply(fd, &r, depth == 1);
		b = now_us();
		if (r.type == IB_PONG)
			comp[n] = 0;	/* a PING: the IPC floor */
		else if (r.type == IB_INFER_OK && r.len >= 8)
			comp[n] = (double)le64(r.buf);
		else
			die("maas-runtime answered frame type %u", r.type);
		lat[n] = b - a;
		n++;
	}
	/* median() sorts: the tenth percentile is read after it. */
	printf("{\"runs\": %zu, \"seconds\": %.6f, \"median_us\": %.3f, "
	    "\"compute_median_us\": %.1f, ", n, (b - t0) / 1e6,
	    median(lat, n), median(comp, n));
	printf("\"p10_us\": %.3f, \"compute_p10_us\": %.1f}\n", lat[n / 10],
	    comp[n / 10]);
	fflush(stdout);
	free(lat);
	free(comp);
	free(r.buf);
	free(f);
}

static void *
writer_main(void *arg)
{
	struct writer	*w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->credits == 0 && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		w->credits--;
		pthread_mutex_unlock(&w->mu);
		send_frame(w->fd, w->fr);
		pthread_mutex_lock(&w->mu);
		w->sent++;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int
main(int argc, char *argv[])
{
	struct reply	 r = { 0 };
	char		 fdarg[16], shmarg[16];
	double		 seconds;
	pid_t		 pid;
	int		 sv[2], status, shmfd = -1;

	if (argc < 6)
		die("usage: ipcbench RUNTIME MODEL THREADS SECONDS "
		    "FRAME[@DEPTH]...");
	seconds = strtod(argv[4], NULL);
	if (!(seconds >= 0 && seconds <= 3600))
		die("bad SECONDS '%s'", argv[4]);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		die("socketpair: %s", strerror(errno));
	for (int i = 0; i < 2 && IB_SOCKBUF > 0; i++) {
		int	sz = IB_SOCKBUF;

		(void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz,
		    sizeof(sz));
		(void)setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz,
		    sizeof(sz));
	}
	if (IB_SHM) {
		/* As ipc_shm_create(): ours writable, sealed, so that the
		 * runtime can map it only read-only and never resize it. */
		size_t	sz = (size_t)IB_SHM_SLOTS * IB_SHM_SLOT;

		if ((shmfd = memfd_create("maas-ipc", MFD_ALLOW_SEALING)) ==
		    -1 || ftruncate(shmfd, (off_t)sz) == -1 ||
		    (shm = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED,
		    shmfd, 0)) == MAP_FAILED ||
		    fcntl(shmfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
		    F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) == -1)
			die("shared window: %s", strerror(errno));
	}
	if ((pid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char	 envthr[64];
		char	*env[] = { envthr, NULL };

		/* The runtime's end stays open across exec; ours does not. */
		if (fcntl(sv[1], F_SETFD, 0) == -1)
			_exit(127);
		snprintf(fdarg, sizeof(fdarg), "%d", sv[1]);
		/* As maasd starts it: an environment built from nothing but
		 * OpenBLAS sized to the replica from its first thread on.
		 * Whatever else this shell has (an OPENBLAS_CORETYPE that
		 * holds OpenBLAS to its AVX2 kernels, say) would time a
		 * runtime unlike the one maasd runs. */
		snprintf(envthr, sizeof(envthr), "OPENBLAS_NUM_THREADS=%s",
		    argv[3]);
		snprintf(shmarg, sizeof(shmarg), "%d", shmfd);
		if (shmfd == -1)
			execle(argv[1], argv[1], "--fd", fdarg, "--model",
			    argv[2], "--threads", argv[3], (char *)NULL, env);
		else
			execle(argv[1], argv[1], "--fd", fdarg, "--model",
			    argv[2], "--threads", argv[3], "--shm-fd", shmarg,
			    (char *)NULL, env);
		_exit(127);
	}
	close(sv[1]);
	if (shmfd != -1)
		close(shmfd);
	read_reply(sv[0], &r, 1);
	if (r.type == IB_ERROR)
		die("maas-runtime refused the model");
	if (r.type != IB_HELLO)
		die("maas-runtime sent frame type %u first", r.type);
	for (int i = 5; i < argc; i++) {
		char	*at = strrchr(argv[i], '@');
		long	 depth = 1;

		if (at != NULL) {
			*at = '\0';
			depth = strtol(at + 1, NULL, 10);
			if (depth < 1 || depth > 16)
				die("bad depth '%s'", at + 1);
		}
		bench(sv[0], argv[i], (int)depth, seconds);
	}
	close(sv[0]);
	free(r.buf);
	if (waitpid(pid, &status, 0) == -1)
		die("waitpid: %s", strerror(errno));
	return 0;
}
