/* runtime/main.c - maas-runtime: serves one model to maasd.
 *
 *   maas-runtime --fd N --model PATH [--threads T] [--mem-limit-mb M]
 *	[--uid U --gid G] [--max-seqs S] [--shm-fd W]
 *
 * The model is an ONNX file or, when it starts with the magic "GGUF", a
 * language model served by runtime/llm/engine.c (up to S sequences at
 * once, default 8; its weights stay mapped for the process's life).
 * maasd spawns it with fd N a connected SOCK_STREAM unix socket.  It loads
 * the model (a failure is reported in one IPC_ERROR frame, then exit 1),
 * runs one warm-up inference, enters the sandbox, sends HELLO and serves
 * until maasd closes the socket (exit 0).  A peer breaking the protocol
 * ends it with exit 2.  Logs go to stderr.  fd W, when given, is the
 * shared window of common/ipc.h, which an ONNX model's requests may come
 * through (mapped read-only; a GGUF runtime has no use for it).  The
 * memory limit M bounds the address space, the window's included. */
#include <sys/mman.h>
#include <sys/stat.h>

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "runtime/kernels.h"
#include "runtime/llm/engine.h"
#include "runtime/modelfile.h"
#include "runtime/onnx/onnx.h"
#include "runtime/sandbox.h"
#include "runtime/serve.h"

#define RT_ERRLEN	1024
#define RT_MAX_THREADS	256

struct rt_opts {
	int		 fd;		/* IPC socket */
	const char	*model;		/* path */
	int		 threads;	/* OpenBLAS threads */
	uint64_t	 mem_mb;	/* RLIMIT_AS; 0 none */
	long long	 uid, gid;	/* -1: not given */
	int		 max_seqs;	/* GGUF: sequences at once */
	int		 shm_fd;	/* the shared window, or -1 */
};

static void	usage(void) __attribute__((noreturn));
static long long num_arg(const char *, const char *, long long, long long);
static void	parse_args(int, char *[], struct rt_opts *);
static int	send_error(int, const char *, const char *);
static int	serve_gguf(const struct rt_opts *, struct sandbox_cfg *,
		    struct modelfile *);

static void
usage(void)
{
	fprintf(stderr, "usage: maas-runtime --fd N --model PATH [--threads T] "
	    "[--mem-limit-mb M] [--uid U --gid G] [--max-seqs S] "
	    "[--shm-fd W]\n");
	exit(1);
}

static long long
num_arg(const char *opt, const char *s, long long min, long long max)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		fatalx("--%s: '%s' is not a number from %lld to %lld", opt, s,
		    min, max);
	return v;
}

static void
parse_args(int argc, char *argv[], struct rt_opts *o)
{
	static const struct option longopts[] = {
		{ "fd", required_argument, NULL, 'f' },
		{ "model", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "mem-limit-mb", required_argument, NULL, 'M' },
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "max-seqs", required_argument, NULL, 's' },
		{ "shm-fd", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 }
	};
	int	ch;

	*o = (struct rt_opts){ .fd = -1, .threads = 1, .uid = -1, .gid = -1,
	    .max_seqs = ENGINE_DEFAULT_SEQS, .shm_fd = -1 };
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			o->fd = (int)num_arg("fd", optarg, 0, 65535);
			break;
		case 'm':
			o->model = optarg;
			break;
		case 't':
			o->threads = (int)num_arg("threads", optarg, 1,
			    RT_MAX_THREADS);
			break;
		case 'M':
			o->mem_mb = (uint64_t)num_arg("mem-limit-mb", optarg,
			    1, 1LL << 30);
			break;
		case 'u':
			o->uid = num_arg("uid", optarg, 1, 4294967294LL);
			break;
		case 'g':
			o->gid = num_arg("gid", optarg, 1, 4294967294LL);
			break;
		case 's':
			o->max_seqs = (int)num_arg("max-seqs", optarg, 1,
			    ENGINE_MAX_SEQS);
			break;
		case 'w':
			o->shm_fd = (int)num_arg("shm-fd", optarg, 0, 65535);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || o->fd == -1 || o->model == NULL ||
	    o->shm_fd == o->fd)
		usage();
}

/* The one frame that tells maasd why this runtime cannot serve. */
static int
send_error(int fd, const char *model, const char *msg)
{
	struct wbuf	w;
	int		r;

	log_warnx("model '%s': %s", model, msg);
	wbuf_init(&w);
	wbuf_str16(&w, msg);
	r = ipc_write_frame(fd, IPC_ERROR, 0, w.data, w.len);
	wbuf_release(&w);
	return r;
}

/* A GGUF language model: load, warm up, sandbox, HELLO, serve.  The
 * mapping stays: the weights are read from it.  Returns the exit status. */
static int
serve_gguf(const struct rt_opts *o, struct sandbox_cfg *sb,
    struct modelfile *mf)
{
	struct engine	*e = NULL;
	struct ipc_meta	 meta;
	struct wbuf	 w;
	char		 err[RT_ERRLEN];
	int		 ret = 1;

	if (engine_load(mf->data, mf->len, o->max_seqs, &e, err,
	    sizeof(err)) == -1) {
		send_error(o->fd, o->model, err);
		return 1;
	}
	if (o->threads > 1 && engine_set_threads(e, o->threads < 16 ?
	    o->threads : 16) == -1) {
		send_error(o->fd, o->model, "cannot start the decode threads");
		goto out;
	}
	engine_meta(e, &meta);
	log_info("loaded '%s': %llu KiB resident with its KV caches, %ld MiB "
	    "virtual, %d threads", o->model,
	    (unsigned long long)(meta.mem_bytes >> 10), sandbox_mapped_mib(),
	    o->threads);
	sb->keep_fds[0] = o->fd;
	sb->keep_fds[1] = mf->fd;
	if (sandbox_enter(sb) == -1) {
		send_error(o->fd, o->model, "cannot enter the sandbox");
		goto out;
	}
	wbuf_init(&w);
	ipc_meta_encode(&w, &meta);	/* meta's strings are e's: no release */
	if (ipc_write_frame(o->fd, IPC_HELLO, 0, w.data, w.len) == -1)
		log_warn("cannot send HELLO");
	else
		ret = engine_serve(e, o->fd);
	wbuf_release(&w);
 out:
	engine_free(e);
	return ret;
}

int
main(int argc, char *argv[])
{
	struct rt_opts		 o;
	struct sandbox_cfg	 sb;
	struct modelfile	 mf = { .fd = -1, .dirfd = -1 };
	struct onnx_source	 src;
	struct onnx_model	*m = NULL;
	struct serve_ahead	*ahead = NULL;
	struct ipc_meta		 meta;
	struct stat		 st;
	struct wbuf		 w;
	const uint8_t		*shm = NULL;
	size_t			 shm_len = 0;
	char			 err[RT_ERRLEN], msg[RT_ERRLEN + 64];
	int			 ret = 1;

	log_init("maas-runtime", false);
	parse_args(argc, argv, &o);
	sb = (struct sandbox_cfg){
		.parent = getppid(),
		.mem_limit = o.mem_mb << 20,
		.uid = o.uid != -1 ? (uid_t)o.uid : SANDBOX_NOBODY,
		.gid = o.gid != -1 ? (gid_t)o.gid : SANDBOX_NOBODY,
	};
	if (fstat(o.fd, &st) == -1 || !S_ISSOCK(st.st_mode))
		fatalx("--fd %d is not a socket", o.fd);
	/* Writes to a closed socket fail with EPIPE; past RLIMIT_FSIZE, with
	 * EFBIG.  Neither may kill us. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	if (fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode))
		log_warnx("stderr is a regular file: logs stop at the sandbox "
		    "(RLIMIT_FSIZE 0); give maas-runtime a pipe");
	if (geteuid() != 0 && ((o.uid != -1 && o.uid != getuid()) ||
	    (o.gid != -1 && o.gid != getgid()))) {
		send_error(o.fd, o.model, "cannot switch uid or gid: not "
		    "running as root");
		goto out;
	}
	if (geteuid() != 0) {
		sb.uid = getuid();
		sb.gid = getgid();
	}
	/* maasd sends INFER_SHM to a runtime it gave a window: one that
	 * cannot map it cannot serve. */
	if (o.shm_fd != -1 && (shm = ipc_shm_map(o.shm_fd, IPC_SHM_SIZE,
	    &shm_len)) == NULL) {
		send_error(o.fd, o.model, "cannot map the shared window");
		goto out;
	}
	/* OpenBLAS's threads and work buffer first, then the memory limit,
	 * which also bounds what loading a hostile model may take. */
	openblas_set_num_threads(o.threads);
	if (kernel_warmup() == -1) {
		send_error(o.fd, o.model, "out of memory starting OpenBLAS");
		goto out;
	}
	if (o.mem_mb != 0 &&
	    sandbox_limit_memory(sb.mem_limit, err, sizeof(err)) == -1) {
		send_error(o.fd, o.model, err);
		goto out;
	}

	if (modelfile_open(&mf, o.model, ENGINE_MAX_FILE > ONNX_MAX_FILE ?
	    ENGINE_MAX_FILE : ONNX_MAX_FILE, err, sizeof(err)) == -1) {
		send_error(o.fd, o.model, err);
		goto out;
	}
	if (mf.len >= 4 && memcmp(mf.data, "GGUF", 4) == 0) {
		if (shm != NULL)
			munmap((void *)(uintptr_t)shm, shm_len);
		shm = NULL;
		ret = serve_gguf(&o, &sb, &mf);
		goto out;
	}
	if (mf.len > ONNX_MAX_FILE) {
		snprintf(err, sizeof(err), "model '%s' is too large (%zu "
		    "bytes, limit %llu)", o.model, mf.len,
		    (unsigned long long)ONNX_MAX_FILE);
		send_error(o.fd, o.model, err);
		goto out;
	}
	/* The weights stay in the file's mapping, shared with every other
	 * runtime of this model; external data files are mapped now, while
	 * open() is still allowed. */
	src = (struct onnx_source){ .buf = mf.data, .len = mf.len,
	    .borrow = true, .ext = modelfile_external, .ext_arg = &mf };
	if ((m = onnx_load_source(&src, err, sizeof(err))) == NULL) {
		send_error(o.fd, o.model, err);
		goto out;
	}
	modelfile_seal(&mf);

	/* One inference before the sandbox: the arena comes to exist and
	 * the kernels run while every syscall is still allowed. */
	switch (onnx_run_dummy(m, 1, err, sizeof(err))) {
	case ONNX_OK:
		break;
	case ONNX_EINPUT:
		/* Batch 1 does not fit this model (a Reshape may want a
		 * multiple of something); requests will tell. */
		log_warnx("warm-up skipped: %s", err);
		break;
	case ONNX_ETOOBIG:
		snprintf(msg, sizeof(msg), "warm-up inference failed: %s", err);
		send_error(o.fd, o.model, msg);
		goto out;
	}
	log_info("loaded '%s': opset %lld, %llu KiB private, %llu KiB mapped "
	    "from files, %ld MiB virtual, %d threads", o.model,
	    (long long)onnx_opset(m),
	    (unsigned long long)(onnx_mem_bytes(m) >> 10),
	    (unsigned long long)(modelfile_mapped(&mf) >> 10),
	    sandbox_mapped_mib(), o.threads);

	ahead = serve_ahead_start(o.fd);
	sb.keep_fds[0] = o.fd;
	sb.keep_fds[1] = mf.fd;
	sb.keep_fds[2] = serve_ahead_fd(ahead);
	if (sandbox_enter(&sb) == -1) {
		send_error(o.fd, o.model, "cannot enter the sandbox");
		goto out;
	}

	onnx_meta(m, &meta);
	meta.shared_bytes = modelfile_mapped(&mf);
	wbuf_init(&w);
	ipc_meta_encode(&w, &meta);
	ipc_meta_release(&meta);
	if (ipc_write_frame(o.fd, IPC_HELLO, 0, w.data, w.len) == -1)
		log_warn("cannot send HELLO");
	else
		ret = serve_loop(o.fd, m, ahead, shm, shm_len);
	wbuf_release(&w);
 out:
	if (shm != NULL)
		munmap((void *)(uintptr_t)shm, shm_len);
	serve_ahead_free(ahead);
	onnx_free(m);
	modelfile_close(&mf);
	return ret;
}
