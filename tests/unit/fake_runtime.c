/* tests/unit/fake_runtime.c - a stand-in for maas-runtime that speaks the
 * IPC protocol (common/ipc.h) with a model of one input "x" FP32 (-1, 4)
 * and one output "y" FP32 (-1, 4), y = 2x.  For test_sched only: it is
 * never installed, and its misbehaviours are chosen by the input, the way
 * a real model's bugs would be:
 *	a row whose first value is 666	abort() (a crash)
 *	777				sleep forever (a hang)
 *	555				INFER_ERR bad input
 * and by the "model path" maasd passes: "slow:N" sleeps N ms per INFER.
 * Each INFER appends its row count to the file named by the model path's
 * ",log=FILE" suffix, so tests can see how requests were batched.
 * Requests come as INFER or, through the shared window maasd gives with
 * --shm-fd, as INFER_SHM (common/ipc.h); the log line of one that came
 * through the window ends in " shm". */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"

static int	fd = -1;
static int	slow_ms;
static char	logpath[512];

static void
hello(void)
{
	struct ipc_tensor_desc	in, out;
	struct ipc_meta		m;
	struct wbuf		w;

	memset(&in, 0, sizeof(in));
	snprintf(in.name, sizeof(in.name), "x");
	in.dtype = DT_FP32;
	in.ndim = 2;
	in.dims[0] = -1;
	in.dims[1] = 4;
	out = in;
	snprintf(out.name, sizeof(out.name), "y");
	memset(&m, 0, sizeof(m));
	m.format = MODEL_FORMAT_ONNX;
	m.n_inputs = 1;
	m.n_outputs = 1;
	m.inputs = &in;
	m.outputs = &out;
	wbuf_init(&w);
	ipc_meta_encode(&w, &m);
	if (ipc_write_frame(fd, IPC_HELLO, 0, w.data, w.len) == -1)
		exit(1);
	wbuf_release(&w);
}

static void
reply_err(uint64_t id, const char *msg)
{
	struct wbuf	w;

	wbuf_init(&w);
	wbuf_u16(&w, IPC_ERR_BAD_INPUT);
	wbuf_str16(&w, msg);
	ipc_write_frame(fd, IPC_INFER_ERR, id, w.data, w.len);
	wbuf_release(&w);
}

static void
infer(uint64_t id, const uint8_t *p, size_t len, bool shm)
{
	struct ipc_tensor	t[4];
	struct ipc_tensor_desc	d;
	struct rbuf		r;
	struct wbuf		w;
	float			*y;
	size_t			 n;
	int			 nt;

	rbuf_init(&r, p, len);
	if ((nt = ipc_get_tensors(&r, t, 4)) != 1 || t[0].desc.ndim != 2 ||
	    t[0].desc.dims[1] != 4) {
		reply_err(id, "want one (n, 4) tensor");
		return;
	}
	n = (size_t)(t[0].nbytes / 4);
	y = calloc(n ? n : 1, sizeof(float));
	memcpy(y, t[0].data, t[0].nbytes);
	if (logpath[0] != '\0') {
		FILE	*f = fopen(logpath, "a");

		if (f != NULL) {
			fprintf(f, "%lld%s\n", (long long)t[0].desc.dims[0],
			    shm ? " shm" : "");
			fclose(f);
		}
	}
	for (size_t i = 0; i < n; i += 4) {
		if (y[i] == 666.0f)
			abort();
		if (y[i] == 777.0f)
			for (;;)
				pause();
		if (y[i] == 555.0f) {
			free(y);
			reply_err(id, "555 is not a valid input");
			return;
		}
	}
	if (slow_ms > 0) {
		struct timespec	ts = { slow_ms / 1000,
		    (slow_ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	/* Read again after the sleep: an input that changed while it
	 * computed (a slot of the window reused too soon) shows. */
	memcpy(y, t[0].data, t[0].nbytes);
	for (size_t i = 0; i < n; i++)
		y[i] *= 2;
	d = t[0].desc;
	snprintf(d.name, sizeof(d.name), "y");
	wbuf_init(&w);
	wbuf_u64(&w, (uint64_t)(slow_ms > 0 ? slow_ms * 1000 : 7));
	wbuf_u32(&w, 1);
	ipc_put_tensor(&w, &d, y, t[0].nbytes);
	ipc_write_frame(fd, IPC_INFER_OK, id, w.data, w.len);
	wbuf_release(&w);
	free(y);
}

/* A non-negative int ending the string or at one of the stop characters;
 * anything else is a bug in the test that started us. */
static long
parse_num(const char *s, const char *stop)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || v < 0 || v > INT32_MAX ||
	    (*end != '\0' && strchr(stop, *end) == NULL))
		fatalx("bad number '%s'", s);
	return v;
}

int
main(int argc, char *argv[])
{
	struct ipc_hdr	 h;
	uint8_t		*buf = NULL;
	size_t		 cap = 0;
	const char	*model = "";
	const uint8_t	*shm = NULL;
	size_t		 shm_len = 0;
	uint64_t	 off, len;
	char		*l;

	log_init("fake-runtime", false);
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--fd") == 0)
			fd = (int)parse_num(argv[i + 1], "");
		else if (strcmp(argv[i], "--model") == 0)
			model = argv[i + 1];
		else if (strcmp(argv[i], "--shm-fd") == 0 &&
		    (shm = ipc_shm_map((int)parse_num(argv[i + 1], ""),
		    IPC_SHM_SIZE, &shm_len)) == NULL)
			fatalx("cannot map the shared window");
	}
	if (fd < 0)
		return 0;	/* run without arguments: nothing to do */
	if (strncmp(model, "slow:", 5) == 0)
		slow_ms = (int)parse_num(model + 5, ",");
	if ((l = strstr(model, ",log=")) != NULL)
		snprintf(logpath, sizeof(logpath), "%s", l + 5);
	hello();
	while (ipc_read_frame(fd, &h, &buf, &cap, IPC_MAX_PAYLOAD) == 1) {
		if (h.type == IPC_PING)
			ipc_write_frame(fd, IPC_PONG, h.req_id, NULL, 0);
		else if (h.type == IPC_INFER)
			infer(h.req_id, buf, h.len, false);
		else if (h.type == IPC_INFER_SHM && shm != NULL &&
		    ipc_shm_ref_decode(buf, h.len, shm_len, &off, &len) == 0)
			infer(h.req_id, shm + off, (size_t)len, true);
		else
			return 2;
	}
	free(buf);
	return 0;
}
