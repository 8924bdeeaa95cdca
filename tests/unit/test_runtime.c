/* tests/unit/test_runtime.c - the maas-runtime process, driven the way
 * maasd drives it: over a socketpair, with the frames of common/ipc.h.
 *
 * A demo MLP comes from maas-genmodel (same seed, same bytes); its answers
 * are checked against a forward pass in double computed here from the
 * model's own initializers.  Also: the sandbox as seen from /proc (seccomp
 * mode 2, only stdio + model + socket open, limits, dropped uid), every
 * exit status (0 on EOF, 2 on a broken protocol, 1 with one ERROR frame on
 * a model that cannot load), and the parent-death signal.
 *
 * The binaries are MAAS_RUNTIME and MAAS_GENMODEL from the environment, or
 * the ones of this build.  The runtime's log goes to /dev/null unless
 * MAAS_TEST_VERBOSE is set. */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc.h"
#include "common/wire.h"
#include "common/xmalloc.h"
#include "tools/onnxb.h"

#ifndef MAAS_RUNTIME_BIN
#define MAAS_RUNTIME_BIN	"bin/maas-runtime"
#endif

struct rt {
	pid_t	 pid;
	int	 fd;		/* our end of the socketpair */
	uint8_t	*buf;		/* last frame's payload */
	size_t	 cap;
};

static char	tmpdir[64];
static char	demo[128];	/* demo MLP 784,128,64,10 seed 42 */
static char	rt_bin[512], gm_bin[512];

/* --- plumbing --- */

static void
run_cmd(char *const argv[])
{
	pid_t	pid;
	int	st;

	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("%s failed", argv[0]);
}

/* In a child: makes sock fd 3 (and window, if not -1, fd 4, the shared
 * window) and execs the runtime on model. */
static void
exec_runtime(int sock, const char *model, const char *mem_mb, int window)
{
	const char	*argv[16];
	int		 argc = 0, null = open("/dev/null", O_RDWR | O_CLOEXEC);

	dup2(sock, 3);
	if (window != -1)
		dup2(window, 4);
	dup2(null, 0);
	dup2(null, 1);
	if (getenv("MAAS_TEST_VERBOSE") == NULL)
		dup2(null, 2);
	argv[argc++] = rt_bin;
	argv[argc++] = "--fd";
	argv[argc++] = "3";
	argv[argc++] = "--model";
	argv[argc++] = model;
	argv[argc++] = "--threads";
	argv[argc++] = "2";
	if (mem_mb != NULL) {
		argv[argc++] = "--mem-limit-mb";
		argv[argc++] = mem_mb;
	}
	if (window != -1) {
		argv[argc++] = "--shm-fd";
		argv[argc++] = "4";
	}
	argv[argc] = NULL;
	execv(rt_bin, (char *const *)(uintptr_t)argv);
	_exit(127);
}

static void
socks(int sv[2])
{
	struct timeval	tv = { .tv_sec = 60 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
}

static void
rt_spawn(struct rt *r, const char *model, const char *mem_mb)
{
	int	sv[2];

	memset(r, 0, sizeof(*r));
	socks(sv);
	assert_true((r->pid = fork()) != -1);
	if (r->pid == 0)
		exec_runtime(sv[1], model, mem_mb, -1);
	close(sv[1]);
	r->fd = sv[0];
}

/* As rt_spawn(), with a shared window made as maasd makes it, mapped
 * writable at *win (IPC_SHM_SIZE bytes, the caller unmaps). */
static void
rt_spawn_window(struct rt *r, const char *model, uint8_t **win)
{
	int	sv[2], w;

	memset(r, 0, sizeof(*r));
	socks(sv);
	assert_true((w = ipc_shm_create(IPC_SHM_SIZE, win)) >= 0);
	assert_true((r->pid = fork()) != -1);
	if (r->pid == 0)
		exec_runtime(sv[1], model, NULL, w);
	close(sv[1]);
	close(w);
	r->fd = sv[0];
}

/* Sends the INFER payload w through the window at off. */
static void
rt_send_window(struct rt *r, uint8_t *win, uint64_t req, size_t off,
    const struct wbuf *w)
{
	uint8_t	ref[IPC_SHM_REF_LEN];

	memcpy(win + off, w->data, w->len);
	ipc_shm_ref_encode(ref, off, w->len);
	assert_int_equal(ipc_write_frame(r->fd, IPC_INFER_SHM, req, ref,
	    sizeof(ref)), 0);
}

/* The runtime's exit status, 128 + signal if killed. */
static int
rt_wait(struct rt *r)
{
	int	st;

	close(r->fd);
	free(r->buf);
	assert_int_equal(waitpid(r->pid, &st, 0), r->pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
rt_send(struct rt *r, enum ipc_type t, uint64_t req, const struct wbuf *w)
{
	assert_int_equal(ipc_write_frame(r->fd, t, req, w ? w->data : NULL,
	    w ? w->len : 0), 0);
}

static void
rt_recv(struct rt *r, struct ipc_hdr *h)
{
	assert_int_equal(ipc_read_frame(r->fd, h, &r->buf, &r->cap,
	    IPC_MAX_PAYLOAD), 1);
}

/* The str16 in an ERROR payload starts with want (is want if exact). */
static void
assert_error_prefix(struct rt *r, const char *want, bool exact)
{
	struct ipc_hdr	h;
	struct rbuf	rb;
	char		msg[1024];

	rt_recv(r, &h);
	assert_int_equal(h.type, IPC_ERROR);
	assert_int_equal(h.req_id, 0);
	rbuf_init(&rb, r->buf, h.len);
	assert_int_equal(rbuf_str16(&rb, msg, sizeof(msg)), 0);
	if (exact ? strcmp(msg, want) != 0 :
	    strncmp(msg, want, strlen(want)) != 0)
		fail_msg("want \"%s\", got \"%s\"", want, msg);
	assert_int_equal(rt_wait(r), 1);
}

static void
assert_error_frame(struct rt *r, const char *want)
{
	assert_error_prefix(r, want, true);
}

static void
hello(struct rt *r, struct ipc_meta *meta)
{
	struct ipc_hdr	h;
	struct rbuf	rb;

	rt_recv(r, &h);
	assert_int_equal(h.type, IPC_HELLO);
	rbuf_init(&rb, r->buf, h.len);
	assert_int_equal(ipc_meta_decode(&rb, meta), 0);
	assert_int_equal(rbuf_left(&rb), 0);
}

static void
infer_payload(struct wbuf *w, const char *name, int64_t batch, int64_t width,
    const float *x, const char *want_output)
{
	struct ipc_tensor_desc	d = { .dtype = DT_FP32, .ndim = 2,
				    .dims = { batch, width } };

	snprintf(d.name, sizeof(d.name), "%s", name);
	wbuf_reset(w);
	wbuf_u32(w, 1);
	ipc_put_tensor(w, &d, x, (uint64_t)(batch * width) * sizeof(float));
	wbuf_u32(w, want_output != NULL ? 1 : 0);
	if (want_output != NULL)
		wbuf_str16(w, want_output);
}

/* --- the reference forward pass, from the model's own weights --- */

static const Onnx__TensorProto *
init_find(const Onnx__GraphProto *g, const char *name)
{
	for (size_t i = 0; i < g->n_initializer; i++)
		if (strcmp(g->initializer[i]->name, name) == 0)
			return g->initializer[i];
	fail_msg("no initializer '%s'", name);
	return NULL;
}

static float
raw_f32(const Onnx__TensorProto *t, size_t i)
{
	uint32_t	bits = le32_get(t->raw_data.data + 4 * i);
	float		f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* Gemm(transB=1) / Relu / Softmax chains, as maas-genmodel writes. */
static void
ref_forward(const Onnx__ModelProto *p, const float *x, size_t batch,
    size_t width, double *out, size_t *out_width)
{
	const Onnx__GraphProto	*g = p->graph;
	double			*a = xcalloc(batch * 1024, sizeof(double));
	double			*h = xcalloc(batch * 1024, sizeof(double));
	size_t			 w = width;

	for (size_t i = 0; i < batch * width; i++)
		a[i] = x[i];
	for (size_t n = 0; n < g->n_node; n++) {
		const Onnx__NodeProto	*nd = g->node[n];

		if (strcmp(nd->op_type, "Gemm") == 0) {
			const Onnx__TensorProto	*W = init_find(g, nd->input[1]);
			const Onnx__TensorProto	*B = init_find(g, nd->input[2]);
			size_t			 o = (size_t)W->dims[0];

			assert_int_equal(W->dims[1], w);
			for (size_t r = 0; r < batch; r++)
				for (size_t j = 0; j < o; j++) {
					double	s = raw_f32(B, j);

					for (size_t k = 0; k < w; k++)
						s += a[r * w + k] *
						    raw_f32(W, j * w + k);
					h[r * o + j] = s;
				}
			w = o;
		} else if (strcmp(nd->op_type, "Relu") == 0) {
			for (size_t i = 0; i < batch * w; i++)
				h[i] = a[i] > 0 ? a[i] : 0;
		} else if (strcmp(nd->op_type, "Softmax") == 0) {
			for (size_t r = 0; r < batch; r++) {
				double	max = a[r * w], sum = 0;

				for (size_t j = 1; j < w; j++)
					max = fmax(max, a[r * w + j]);
				for (size_t j = 0; j < w; j++)
					sum += exp(a[r * w + j] - max);
				for (size_t j = 0; j < w; j++)
					h[r * w + j] = exp(a[r * w + j] - max) /
					    sum;
			}
		} else
			fail_msg("unexpected op %s", nd->op_type);
		memcpy(a, h, batch * w * sizeof(double));
	}
	memcpy(out, a, batch * w * sizeof(double));
	*out_width = w;
	free(a);
	free(h);
}

static Onnx__ModelProto *
read_model(const char *path)
{
	Onnx__ModelProto	*p;
	struct stat		 st;
	uint8_t			*buf;
	int			 fd;

	assert_true((fd = open(path, O_RDONLY)) != -1);
	assert_int_equal(fstat(fd, &st), 0);
	buf = xmalloc((size_t)st.st_size);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	assert_non_null(p = onnx__model_proto__unpack(NULL,
	    (size_t)st.st_size, buf));
	free(buf);
	return p;
}

/* --- /proc --- */

static void
proc_field(pid_t pid, const char *file, const char *key, char *out,
    size_t outsz)
{
	char	path[64], line[256];
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	assert_non_null(f = fopen(path, "r"));
	out[0] = '\0';
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0) {
			snprintf(out, outsz, "%s", line + strlen(key));
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	fclose(f);
}

/* The number a /proc field starts with; fails the test if there is none
 * (atoi would read "unlimited" as 0). */
static long long
proc_num(const char *v)
{
	char		*end;
	long long	 n;

	errno = 0;
	n = strtoll(v, &end, 10);
	assert_true(errno == 0 && end != v);
	return n;
}

static void
check_sandbox(pid_t pid)
{
	char	v[256], path[64], target[512];
	int	n = 0, model = 0, sock = 0, evfd = 0, maxfd = 0;
	ssize_t	len;

	proc_field(pid, "status", "Seccomp:", v, sizeof(v));
	assert_int_equal(proc_num(v), 2);
	proc_field(pid, "status", "NoNewPrivs:", v, sizeof(v));
	assert_int_equal(proc_num(v), 1);
	if (geteuid() == 0) {
		proc_field(pid, "status", "Uid:", v, sizeof(v));
		assert_string_equal(v, "\t65534\t65534\t65534\t65534");
		proc_field(pid, "status", "Gid:", v, sizeof(v));
		assert_string_equal(v, "\t65534\t65534\t65534\t65534");
		proc_field(pid, "status", "Groups:", v, sizeof(v));
		assert_null(strpbrk(v, "0123456789"));
	}
	proc_field(pid, "limits", "Max core file size", v, sizeof(v));
	assert_int_equal(proc_num(v), 0);
	proc_field(pid, "limits", "Max file size", v, sizeof(v));
	assert_int_equal(proc_num(v), 0);
#ifndef __SANITIZE_ADDRESS__	/* ASan needs terabytes: no limit there */
	proc_field(pid, "limits", "Max address space", v, sizeof(v));
	assert_int_equal(proc_num(v), 1024LL << 20);
#endif
	/* Only stdio, the model, the socket and the read-ahead thread's
	 * eventfd.  (Not dumpable: only root may look.) */
	if (geteuid() != 0)
		return;
	for (int fd = 0; fd < 64; fd++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
		if ((len = readlink(path, target, sizeof(target) - 1)) == -1)
			continue;
		target[len] = '\0';
		n++;
		maxfd = fd;
		model += strcmp(target, demo) == 0;
		sock += strncmp(target, "socket:", 7) == 0;
		evfd += strcmp(target, "anon_inode:[eventfd]") == 0;
	}
	assert_int_equal(n, 6);
	assert_int_equal(model, 1);
	assert_int_equal(sock, 1);
	assert_int_equal(evfd, 1);
	/* Just above the highest fd in use. */
	proc_field(pid, "limits", "Max open files", v, sizeof(v));
	assert_int_equal(proc_num(v), maxfd + 1);
}

/* --- tests --- */

static void
test_genmodel_deterministic(void **state)
{
	char		 again[160];
	char *const	 argv[] = { gm_bin, "mlp", "--layers", "784,128,64,10",
			    "--seed", "42", "-o", again, NULL };
	FILE		*a, *b;
	int		 ca, cb;

	(void)state;
	snprintf(again, sizeof(again), "%s/again.onnx", tmpdir);
	run_cmd(argv);
	assert_non_null(a = fopen(demo, "rb"));
	assert_non_null(b = fopen(again, "rb"));
	do {
		ca = getc(a);
		cb = getc(b);
		assert_int_equal(ca, cb);
	} while (ca != EOF);
	fclose(a);
	fclose(b);
	unlink(again);
}

static void
test_serve_demo(void **state)
{
	static const int64_t	 batches[] = { 1, 5, 64, 5, 1 };
	Onnx__ModelProto	*p = read_model(demo);
	struct ipc_tensor	 out[4];
	struct ipc_meta		 meta;
	struct ipc_hdr		 h;
	struct rbuf		 rb;
	struct wbuf		 w;
	struct rt		 r;
	float			*x = xcalloc(64 * 784, sizeof(float));
	double			*ref = xcalloc(64 * 10, sizeof(double));
	double			 maxdiff = 0;
	uint64_t		 us, s = 99;
	uint16_t		 code;
	size_t			 rw;
	char			 msg[256];

	(void)state;
	rt_spawn(&r, demo, "1024");
	hello(&r, &meta);
	assert_int_equal(meta.format, MODEL_FORMAT_ONNX);
	assert_int_equal(meta.n_inputs, 1);
	assert_string_equal(meta.inputs[0].name, "input");
	assert_int_equal(meta.inputs[0].dtype, DT_FP32);
	assert_int_equal(meta.inputs[0].ndim, 2);
	assert_int_equal(meta.inputs[0].dims[0], -1);
	assert_int_equal(meta.inputs[0].dims[1], 784);
	assert_int_equal(meta.n_outputs, 1);
	assert_string_equal(meta.outputs[0].name, "output");
	assert_int_equal(meta.outputs[0].dims[0], -1);
	assert_int_equal(meta.outputs[0].dims[1], 10);
	/* maas-genmodel aligns the weights: they stay in the file's
	 * mapping, shared between replicas, and are not private memory.
	 * What is private: the activations and, where runtime/gemm.c runs,
	 * the copies of the two large weight matrices it packs at load
	 * (never a copy of the weights as well). */
	assert_true(meta.shared_bytes >= (784 * 128 + 128 * 64 + 64 * 10) * 4);
	assert_true(meta.mem_bytes < 2 * (784 * 128 + 128 * 64 + 64 * 10) * 4);
	ipc_meta_release(&meta);
	check_sandbox(r.pid);

	wbuf_init(&w);
	for (size_t i = 0; i < 64 * 784; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		x[i] = (float)((s >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
	}
	for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
		infer_payload(&w, "input", batches[k], 784, x,
		    k % 2 ? "output" : NULL);
		rt_send(&r, IPC_INFER, 100 + k, &w);
		rt_recv(&r, &h);
		assert_int_equal(h.type, IPC_INFER_OK);
		assert_int_equal(h.req_id, 100 + k);
		rbuf_init(&rb, r.buf, h.len);
		assert_int_equal(rbuf_u64(&rb, &us), 0);
		assert_int_equal(ipc_get_tensors(&rb, out, 4), 1);
		assert_int_equal(rbuf_left(&rb), 0);
		assert_string_equal(out[0].desc.name, "output");
		assert_int_equal(out[0].desc.ndim, 2);
		assert_int_equal(out[0].desc.dims[0], batches[k]);
		assert_int_equal(out[0].desc.dims[1], 10);
		ref_forward(p, x, (size_t)batches[k], 784, ref, &rw);
		assert_int_equal(rw, 10);
		for (int64_t i = 0; i < batches[k] * 10; i++) {
			float	got;

			memcpy(&got, out[0].data + 4 * i, 4);
			maxdiff = fmax(maxdiff, fabs(got - ref[i]));
		}
	}
	print_message("demo-mlp max abs diff against double: %.3g\n", maxdiff);
	assert_true(maxdiff < 1e-5);

	/* A bad request is answered, and serving goes on. */
	infer_payload(&w, "input", 2, 783, x, NULL);
	rt_send(&r, IPC_INFER, 7, &w);
	rt_recv(&r, &h);
	assert_int_equal(h.type, IPC_INFER_ERR);
	assert_int_equal(h.req_id, 7);
	rbuf_init(&rb, r.buf, h.len);
	assert_int_equal(rbuf_u16(&rb, &code), 0);
	assert_int_equal(code, IPC_ERR_BAD_INPUT);
	assert_int_equal(rbuf_str16(&rb, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "input 'input': expected shape [-1,784], "
	    "got [2,783]");
	infer_payload(&w, "input", 2, 784, x, "logits");
	rt_send(&r, IPC_INFER, 8, &w);
	rt_recv(&r, &h);
	assert_int_equal(h.type, IPC_INFER_ERR);
	rbuf_init(&rb, r.buf, h.len);
	assert_int_equal(rbuf_u16(&rb, &code), 0);
	assert_int_equal(rbuf_str16(&rb, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "unknown output 'logits'");

	rt_send(&r, IPC_PING, 0xfeedface12345678ULL, NULL);
	rt_recv(&r, &h);
	assert_int_equal(h.type, IPC_PONG);
	assert_int_equal(h.req_id, 0xfeedface12345678ULL);
	assert_int_equal(h.len, 0);
	check_sandbox(r.pid);		/* still, after serving */

	assert_int_equal(rt_wait(&r), 0);	/* EOF: a clean exit */
	wbuf_release(&w);
	free(x);
	free(ref);
	onnx__model_proto__free_unpacked(p, NULL);
}

/* INFER_SHM: the same answers, to the bit, as INFER gives for the same
 * payload, in either slot, wherever the elements lie (on 64 bytes, read
 * in place; on 4 or unaligned, copied first); the window is never
 * written; a reference outside it breaks the protocol. */
static void
test_serve_window(void **state)
{
	static const int64_t	 batches[] = { 1, 64, 5, 64 };
	struct ipc_meta		 meta;
	struct ipc_hdr		 h;
	struct wbuf		 w;
	struct rt		 r;
	uint8_t			*win, ref[IPC_SHM_REF_LEN];
	uint8_t			*want = NULL;
	float			*x = xcalloc(64 * 784, sizeof(float));
	uint64_t		 s = 7;
	size_t			 pad, off, wantlen = 0;

	(void)state;
	for (size_t i = 0; i < 64 * 784; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		x[i] = (float)((s >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
	}
	rt_spawn_window(&r, demo, &win);
	hello(&r, &meta);
	ipc_meta_release(&meta);
	wbuf_init(&w);
	for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
		infer_payload(&w, "input", batches[k], 784, x, NULL);
		rt_send(&r, IPC_INFER, 1, &w);
		rt_recv(&r, &h);
		assert_int_equal(h.type, IPC_INFER_OK);
		want = xrealloc(want, h.len);
		memcpy(want, r.buf, h.len);
		wantlen = h.len;
		pad = ipc_shm_pad(w.data, w.len);
		for (size_t j = 0; j < 3; j++) {
			size_t	shift = j == 0 ? 0 : j == 1 ? 1 : 4;

			/* compute_us (the first 8 bytes) may differ */
			off = (k % 2) * IPC_SHM_SLOT + pad + shift;
			rt_send_window(&r, win, 2 + shift, off, &w);
			rt_recv(&r, &h);
			assert_int_equal(h.type, IPC_INFER_OK);
			assert_int_equal(h.req_id, 2 + shift);
			assert_int_equal(h.len, wantlen);
			assert_memory_equal(r.buf + 8, want + 8, wantlen - 8);
			assert_memory_equal(win + off, w.data, w.len);
		}
	}
	/* The window's end exactly: fine; one byte past it: status 2. */
	infer_payload(&w, "input", 1, 784, x, NULL);
	rt_send_window(&r, win, 3, IPC_SHM_SIZE - w.len, &w);
	rt_recv(&r, &h);
	assert_int_equal(h.type, IPC_INFER_OK);
	ipc_shm_ref_encode(ref, IPC_SHM_SIZE - w.len + 1, w.len);
	assert_int_equal(ipc_write_frame(r.fd, IPC_INFER_SHM, 4, ref,
	    sizeof(ref)), 0);
	assert_int_equal(rt_wait(&r), 2);
	munmap(win, IPC_SHM_SIZE);
	wbuf_release(&w);
	free(want);
	free(x);
}

/* Each way of breaking the protocol ends the runtime with status 2. */
static void
test_protocol_errors(void **state)
{
	struct ipc_meta	meta;
	struct wbuf	w;
	struct rt	r;
	uint8_t		hdr[IPC_HDR_LEN];
	struct ipc_hdr	bad = { 0x12345678, IPC_VERSION, IPC_PING, 1, 0 };
	float		x[784] = { 0 };

	(void)state;
	wbuf_init(&w);
	for (int k = 0; k < 7; k++) {
		rt_spawn(&r, demo, NULL);
		hello(&r, &meta);
		ipc_meta_release(&meta);
		wbuf_reset(&w);
		switch (k) {
		case 0:		/* bad magic */
			ipc_hdr_encode(&bad, hdr);
			assert_int_equal(write(r.fd, hdr, sizeof(hdr)),
			    (ssize_t)sizeof(hdr));
			break;
		case 1:		/* a frame only maasd may receive */
			rt_send(&r, IPC_HELLO, 1, NULL);
			break;
		case 2:		/* cut short */
			bad.magic = IPC_MAGIC;
			bad.type = IPC_INFER;
			bad.len = 100;
			ipc_hdr_encode(&bad, hdr);
			assert_int_equal(write(r.fd, hdr, sizeof(hdr)),
			    (ssize_t)sizeof(hdr));
			assert_int_equal(write(r.fd, hdr, 10), 10);
			shutdown(r.fd, SHUT_WR);
			break;
		case 3:		/* a tensor list that does not decode */
			wbuf_u32(&w, 1);
			wbuf_str16(&w, "input");
			wbuf_u8(&w, DT_FP32);
			wbuf_u8(&w, 9);
			rt_send(&r, IPC_INFER, 2, &w);
			break;
		case 4:		/* trailing bytes */
			infer_payload(&w, "input", 1, 784, x, NULL);
			wbuf_u8(&w, 0);
			rt_send(&r, IPC_INFER, 3, &w);
			break;
		case 5:		/* PING with a payload */
			wbuf_u8(&w, 0);
			rt_send(&r, IPC_PING, 4, &w);
			break;
		case 6:		/* the window, to a runtime given none */
			wbuf_u64(&w, 0);
			wbuf_u64(&w, 16);
			rt_send(&r, IPC_INFER_SHM, 5, &w);
			break;
		}
		if (rt_wait(&r) != 2)
			fail_msg("case %d: want exit status 2", k);
	}
	wbuf_release(&w);
}

static void
test_load_errors(void **state)
{
	Onnx__ModelProto	*p;
	struct rt		 r;
	char			 path[160];
	FILE			*f;

	(void)state;
	rt_spawn(&r, "/nonexistent/model.onnx", NULL);
	assert_error_frame(&r, "cannot open model '/nonexistent/model.onnx': "
	    "No such file or directory");

	snprintf(path, sizeof(path), "%s/m.gguf", tmpdir);
	assert_non_null(f = fopen(path, "wb"));
	fputs("GGUF\3\0\0\0", f);
	fclose(f);
	rt_spawn(&r, path, NULL);
	assert_error_frame(&r, "version at byte 4 runs past the end of the "
	    "file");

	assert_non_null(f = fopen(path, "wb"));
	fputs("this is not a model at all, just some text\n", f);
	fclose(f);
	rt_spawn(&r, path, NULL);
	assert_error_frame(&r, "not a valid ONNX model: protobuf parse "
	    "failed");

	p = onnxb_model(8, 13, "t");
	onnxb_input(p, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4,
	    (int64_t[]){ ONNXB_DYN, 3, 8, 8 }, "N");
	onnxb_node(p, "StringNormalizer", "c", (const char *[]){ "x", NULL },
	    "c");
	onnxb_node(p, "TfIdfVectorizer", "l", (const char *[]){ "c", NULL },
	    "l");
	onnxb_node(p, "Relu", "r", (const char *[]){ "l", NULL }, "y");
	onnxb_output(p, "y", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
	    ONNXB_NOSHAPE, NULL, NULL);
	assert_int_equal(onnxb_write(p, path), 0);
	onnxb_free(p);
	rt_spawn(&r, path, NULL);
	assert_error_frame(&r, "unsupported operators: StringNormalizer "
	    "(node 'c'), TfIdfVectorizer (node 'l')");
	unlink(path);

#ifndef __SANITIZE_ADDRESS__	/* which sets no memory limit */
	/* Below what OpenBLAS maps already: refused, rather than failing
	 * every allocation later. */
	rt_spawn(&r, demo, "64");
	assert_error_prefix(&r, "memory limit of 64 MiB is below the ",
	    false);
#endif
}

/* A request too big for what RLIMIT_AS leaves is refused with TOO_LARGE
 * (413 at the gateway), and the runtime goes on serving: the frame is
 * skipped, not buffered, and nothing aborts. */
static void
test_too_large_for_limit(void **state)
{
#ifdef __SANITIZE_ADDRESS__	/* no RLIMIT_AS under ASan */
	(void)state;
	skip();
#else
	struct ipc_meta	 meta;
	struct ipc_hdr	 h;
	struct rbuf	 rb;
	struct wbuf	 w;
	struct rt	 r;
	float		*x;
	const int64_t	 big = (16 << 20) / (784 * 4) + 1;	/* > 16 MiB */
	char		 v[256], lim[32];
	uint16_t	 code;
	long		 idle_kb;

	(void)state;
	/* The idle size of this runtime, then a limit 8 MiB above it. */
	rt_spawn(&r, demo, "1024");
	hello(&r, &meta);
	ipc_meta_release(&meta);
	proc_field(r.pid, "status", "VmSize:", v, sizeof(v));
	assert_true((idle_kb = atol(v)) > 0);
	assert_int_equal(rt_wait(&r), 0);
	snprintf(lim, sizeof(lim), "%ld", (idle_kb >> 10) + 8);

	x = xcalloc((size_t)big * 784, sizeof(float));
	wbuf_init(&w);
	rt_spawn(&r, demo, lim);
	hello(&r, &meta);
	ipc_meta_release(&meta);
	for (uint64_t req = 40; req < 42; req++) {	/* twice: no leak */
		infer_payload(&w, "input", big, 784, x, NULL);
		assert_true(w.len > 16u << 20);
		rt_send(&r, IPC_INFER, req, &w);
		rt_recv(&r, &h);
		assert_int_equal(h.type, IPC_INFER_ERR);
		assert_int_equal(h.req_id, req);
		rbuf_init(&rb, r.buf, h.len);
		assert_int_equal(rbuf_u16(&rb, &code), 0);
		assert_int_equal(code, IPC_ERR_TOO_LARGE);
	}
	/* Still in step: a small request is served. */
	infer_payload(&w, "input", 1, 784, x, NULL);
	rt_send(&r, IPC_INFER, 43, &w);
	rt_recv(&r, &h);
	assert_int_equal(h.type, IPC_INFER_OK);
	assert_int_equal(h.req_id, 43);
	rt_send(&r, IPC_PING, 44, NULL);
	rt_recv(&r, &h);
	assert_int_equal(h.type, IPC_PONG);
	assert_int_equal(rt_wait(&r), 0);
	wbuf_release(&w);
	free(x);
#endif
}

/* When its parent dies, the runtime dies with it, even with its socket
 * still open at the other end. */
static void
test_parent_death(void **state)
{
	struct ipc_meta	meta;
	struct rt	r = { 0 };
	pid_t		mid;
	int		sv[2], st;

	(void)state;
	/* Orphans come back to us rather than to init. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	socks(sv);
	assert_true((mid = fork()) != -1);
	if (mid == 0) {
		/* Should this test fail, do not outlive it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fork() == 0)
			exec_runtime(sv[1], demo, NULL, -1);
		pause();
		_exit(0);
	}
	close(sv[1]);
	r.fd = sv[0];
	hello(&r, &meta);		/* sandboxed and serving */
	ipc_meta_release(&meta);
	assert_int_equal(kill(mid, SIGKILL), 0);
	assert_int_equal(waitpid(mid, &st, 0), mid);
	assert_true(waitpid(-1, &st, 0) > 0);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	close(r.fd);
	free(r.buf);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

static int
setup(void **state)
{
	const char	*e;
	char *const	 argv[] = { gm_bin, "mlp", "--layers", "784,128,64,10",
			    "--seed", "42", "-o", demo, NULL };

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(rt_bin, sizeof(rt_bin), "%s",
	    (e = getenv("MAAS_RUNTIME")) ? e : MAAS_RUNTIME_BIN);
	snprintf(gm_bin, sizeof(gm_bin), "%.*s/maas-genmodel",
	    (int)(strrchr(rt_bin, '/') - rt_bin), rt_bin);
	if ((e = getenv("MAAS_GENMODEL")) != NULL)
		snprintf(gm_bin, sizeof(gm_bin), "%s", e);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/maas-rt-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(demo, sizeof(demo), "%s/demo-mlp.onnx", tmpdir);
	run_cmd(argv);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(demo);
	rmdir(tmpdir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_genmodel_deterministic),
		cmocka_unit_test(test_serve_demo),
		cmocka_unit_test(test_serve_window),
		cmocka_unit_test(test_protocol_errors),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_too_large_for_limit),
		cmocka_unit_test(test_parent_death),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
