/* scheduler/replica.c - the supervisor side of one maas-runtime process.
 *
 * The runtime is a child spawned over a socketpair; its end becomes fd 3,
 * and an ONNX model's runtime gets the shared window (common/ipc.h) as
 * fd 4, which its INFERs' payloads go through when they fit a slot.
 * Frames from it are parsed here with the limits of common/ipc.h; any
 * violation (bad header, unexpected type, a reply for a request it was not
 * given) means the runtime is compromised or broken, and it is killed.
 *
 * Death is noticed by EOF on the socket, by SIGCHLD, by the compute
 * deadline or by an unanswered PING.  Every path ends in replica_fail(),
 * which kills the process; the jobs it held are settled in replica_lost()
 * once the exit status is known (see replica.h), and a restart is
 * scheduled with exponential backoff. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "common/cpu.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "scheduler/batch.h"
#include "scheduler/internal.h"

#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		30000
#define STABLE_US		(30 * 1000000LL)	/* resets backoff */
#define PROBE_TIMEOUT_S		120
#define REAP_WAIT_S		2	/* for SIGCHLD after our SIGKILL */
#define RETIRE_GRACE_S		5	/* to exit on EOF before SIGKILL */
#define HANG_SLACK		20	/* times the expected compute time */
#define RUNTIME_FD		3
#define RUNTIME_SHM_FD		4
#define STDERR_LINE_MAX		2048	/* longer runtime lines are cut */
#define REPLICA_MAX_SEQS	1024	/* a HELLO's max_seqs is cut to this */
#define REPLICA_SOCKBUF		(1 << 20)	/* SO_SNDBUF, SO_RCVBUF */

static void	replica_read_cb(struct bufferevent *, void *);
static void	replica_event_cb(struct bufferevent *, short, void *);
static void	replica_restart_cb(evutil_socket_t, short, void *);
static void	replica_ping_cb(evutil_socket_t, short, void *);
static void	replica_hang_cb(evutil_socket_t, short, void *);
static void	replica_reap_cb(evutil_socket_t, short, void *);
static void	replica_probe_timeout_cb(evutil_socket_t, short, void *);
static int	replica_frame(struct replica *, const struct ipc_hdr *,
		    const uint8_t *);
static int	replica_reply(struct replica *, const struct ipc_hdr *,
		    const uint8_t *);
static void	replica_disconnect(struct replica *);
static void	replica_lost(struct replica *);
static bool	replica_crashed(const struct replica *);
static void	replica_settle(struct replica *, bool crashed);
static void	replica_unbatch(struct replica *);
static void	replica_drained(struct replica *);
static int	replica_stream_frame(struct replica *, const struct ipc_hdr *,
		    const uint8_t *);
static void	replica_arm_hang(struct replica *);
static void	replica_arm_infer(struct replica *);
static void	replica_take_infer(struct replica *, struct job_queue *);
static const char *replica_name(const struct replica *);
static void	sock_bufs(int);
static void	replica_unmap(struct replica *);
static int	replica_send_infer(struct replica *, struct replica_infer *,
		    const struct wbuf *);
static void	replica_stderr_cb(struct bufferevent *, void *);
static void	replica_stderr_event_cb(struct bufferevent *, short, void *);

static const char *
replica_name(const struct replica *r)
{
	return r->dep ? r->dep->name : "(probe)";
}

struct replica *
replica_new(struct sched *s, struct deployment *dep, int idx)
{
	struct replica	*r = xcalloc(1, sizeof(*r));
	const struct sched_config *cfg = &s->cfg;
	int		 tick_ms;
	struct timeval	 tv;

	r->s = s;
	r->dep = dep;
	r->idx = idx;
	r->state = REPLICA_DEAD;
	r->backoff_ms = BACKOFF_MIN_MS;
	TAILQ_INIT(&r->jobs);
	wbuf_init(&r->sendbuf);
	r->restart_ev = evtimer_new(s->base, replica_restart_cb, r);
	r->hang_ev = evtimer_new(s->base, replica_hang_cb, r);
	r->reap_ev = evtimer_new(s->base, replica_reap_cb, r);
	/* The liveness tick runs a few times per interval and per timeout
	 * so that a silent runtime is caught within about its timeout. */
	tick_ms = (cfg->ping_interval_ms < cfg->ping_timeout_ms ?
	    cfg->ping_interval_ms : cfg->ping_timeout_ms) / 4;
	if (tick_ms < 10)
		tick_ms = 10;
	tv.tv_sec = tick_ms / 1000;
	tv.tv_usec = (tick_ms % 1000) * 1000;
	r->ping_ev = event_new(s->base, -1, EV_PERSIST, replica_ping_cb, r);
	if (dep != NULL)
		event_add(r->ping_ev, &tv);
	else
		r->probe_timeout = evtimer_new(s->base,
		    replica_probe_timeout_cb, r);
	return r;
}

void
replica_free(struct replica *r)
{
	if (r == NULL)
		return;
	replica_disconnect(r);
	if (r->pid > 0) {
		/* SIGKILL'd processes exit at once; reap here so that none
		 * outlives maasd or lingers as a zombie. */
		kill(r->pid, SIGKILL);
		while (waitpid(r->pid, NULL, 0) == -1 && errno == EINTR)
			;
		r->pid = 0;
	}
	/* Only at shutdown can a replica go with jobs on it. */
	while (!TAILQ_EMPTY(&r->jobs)) {
		struct sched_job	*job = TAILQ_FIRST(&r->jobs);
		struct sched_result	 res = {
			.status = SCHED_SHUTDOWN,
			.message = "the server is shutting down",
		};

		TAILQ_REMOVE(&r->jobs, job, entry);
		r->n_jobs--;
		job->on = NULL;
		fairq_finished(&job->dep->q, job->flow);
		sched_job_finish(job, &res);
	}
	r->n_infers = 0;
	if (r->errbev != NULL)
		bufferevent_free(r->errbev);
	event_free(r->restart_ev);
	event_free(r->ping_ev);
	event_free(r->hang_ev);
	event_free(r->reap_ev);
	if (r->probe_timeout)
		event_free(r->probe_timeout);
	wbuf_release(&r->sendbuf);
	replica_unmap(r);
	free(r);
}

static void
replica_unmap(struct replica *r)
{
	if (r->shm != NULL)
		munmap(r->shm, IPC_SHM_SIZE);
	r->shm = NULL;
}

/* Socket buffers that hold a batch-64 frame (a 784-float MNIST batch
 * is 200 KB) whole: with the default ones the writer stops midway and
 * the two processes take turns waking each other for the rest.  The
 * kernel caps the size at net.core.wmem_max / rmem_max; smaller ones
 * only cost speed, so a failure is not an error. */
static void
sock_bufs(int fd)
{
	int	sz = REPLICA_SOCKBUF;

	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

int
replica_start(struct replica *r, const char *path, int threads)
{
	const struct sched_config *cfg = &r->s->cfg;
	char		 fdarg[16], thr[16], mem[32], uid[16], gid[16];
	char		 shmarg[16], envthr[48];
	char		*argv[22];
	char		*envp[5];
	int		 sv[2] = { -1, -1 }, ep[2] = { -1, -1 }, shm = -1;
	int		 argc = 0, envc = 0;
	pid_t		 pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1) {
		log_warn("socketpair for runtime of '%s'", replica_name(r));
		goto fail;
	}
	sock_bufs(sv[0]);
	sock_bufs(sv[1]);
	replica_unmap(r);
	if (r->dep != NULL && (shm = ipc_shm_create(IPC_SHM_SIZE, &r->shm)) ==
	    -1) {
		/* Requests still go through the socket. */
		log_warn("shared window for runtime of '%s'", replica_name(r));
		r->shm = NULL;
	}
	snprintf(fdarg, sizeof(fdarg), "%d", RUNTIME_FD);
	snprintf(thr, sizeof(thr), "%d", threads > 0 ? threads : 1);
	snprintf(envthr, sizeof(envthr), "OPENBLAS_NUM_THREADS=%s", thr);
	argv[argc++] = (char *)(uintptr_t)cfg->runtime_path;
	argv[argc++] = "--fd";
	argv[argc++] = fdarg;
	argv[argc++] = "--model";
	argv[argc++] = (char *)(uintptr_t)path;
	argv[argc++] = "--threads";
	argv[argc++] = thr;
	if (cfg->mem_limit_mb > 0) {
		snprintf(mem, sizeof(mem), "%d", cfg->mem_limit_mb);
		argv[argc++] = "--mem-limit-mb";
		argv[argc++] = mem;
	}
	if (geteuid() == 0) {
		snprintf(uid, sizeof(uid), "%u", (unsigned)cfg->uid);
		snprintf(gid, sizeof(gid), "%u", (unsigned)cfg->gid);
		argv[argc++] = "--uid";
		argv[argc++] = uid;
		argv[argc++] = "--gid";
		argv[argc++] = gid;
	}
	if (shm != -1) {
		snprintf(shmarg, sizeof(shmarg), "%d", RUNTIME_SHM_FD);
		argv[argc++] = "--shm-fd";
		argv[argc++] = shmarg;
	}
	argv[argc] = NULL;
	envp[envc++] = envthr;
	if (getenv("MAAS_DEBUG") != NULL)
		envp[envc++] = "MAAS_DEBUG=1";
	if (cpu_portable())
		envp[envc++] = "MAAS_KERNELS=portable";
	envp[envc] = NULL;

	if ((pid = fork()) == -1) {
		log_warn("fork for runtime of '%s'", replica_name(r));
		goto fail;
	}
	if (pid == 0) {
		sigset_t	none;

		/* Child: only async-signal-safe calls until execve. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		/* stdin and stdout: /dev/null; stderr: a pipe maasd reads,
		 * so the runtime can log even after RLIMIT_FSIZE is 0. */
		if (dup2(sv[1], RUNTIME_FD) == -1 || dup2(ep[1], 2) == -1 ||
		    (shm != -1 && dup2(shm, RUNTIME_SHM_FD) == -1))
			_exit(127);
		/* dup2() onto itself keeps FD_CLOEXEC. */
		if (shm == RUNTIME_SHM_FD &&
		    fcntl(RUNTIME_SHM_FD, F_SETFD, 0) == -1)
			_exit(127);
		{
			int	nul = open("/dev/null", O_RDWR);

			if (nul == -1 || dup2(nul, 0) == -1 ||
			    dup2(nul, 1) == -1)
				_exit(127);
		}
		close_range(shm != -1 ? RUNTIME_SHM_FD + 1 : RUNTIME_FD + 1,
		    ~0U, 0);
		execve(cfg->runtime_path, argv, envp);
		_exit(127);
	}
	close(sv[1]);
	sv[1] = -1;
	close(ep[1]);
	ep[1] = -1;
	if (shm != -1)
		close(shm);
	shm = -1;
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(ep[0]);
	if (r->errbev != NULL)
		bufferevent_free(r->errbev);
	r->errbev = bufferevent_socket_new(r->s->base, ep[0],
	    BEV_OPT_CLOSE_ON_FREE);			/* errbev owns ep[0] */
	ep[0] = -1;
	bufferevent_setcb(r->errbev, replica_stderr_cb, NULL,
	    replica_stderr_event_cb, r);
	bufferevent_enable(r->errbev, EV_READ);
	r->pid = pid;
	r->state = REPLICA_STARTING;
	r->kill = REPLICA_KILL_NONE;
	r->reaped = false;
	r->dying = false;
	r->ping_id = 0;
	r->active_us = sched_now_us();
	r->live_since_us = 0;
	r->bev = bufferevent_socket_new(r->s->base, sv[0],
	    BEV_OPT_CLOSE_ON_FREE);			/* bev owns sv[0] */
	bufferevent_setcb(r->bev, replica_read_cb, NULL, replica_event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	{
		struct timeval	tv = { PROBE_TIMEOUT_S, 0 };

		/* Loading is watched by the compute deadline's timer. */
		evtimer_add(r->probe_timeout ? r->probe_timeout : r->hang_ev,
		    &tv);
	}
	log_debug("runtime of '%s' replica %d started, pid %d",
	    replica_name(r), r->idx, (int)pid);
	return 0;
 fail:
	if (shm != -1)
		close(shm);
	replica_unmap(r);
	if (sv[0] != -1)
		close(sv[0]);
	if (sv[1] != -1)
		close(sv[1]);
	if (ep[0] != -1)
		close(ep[0]);
	if (ep[1] != -1)
		close(ep[1]);
	replica_fail(r, "cannot spawn runtime", REPLICA_KILL_NONE);
	return -1;
}

int
replica_send(struct replica *r, enum ipc_type type, uint64_t req_id,
    const void *payload, size_t len)
{
	uint8_t		hdr[IPC_HDR_LEN];
	struct ipc_hdr	h = {
		.magic = IPC_MAGIC, .version = IPC_VERSION,
		.type = (uint16_t)type, .req_id = req_id, .len = (uint32_t)len
	};
	struct evbuffer	*out;

	if (r->bev == NULL || len > IPC_MAX_PAYLOAD)
		return -1;
	ipc_hdr_encode(&h, hdr);
	out = bufferevent_get_output(r->bev);
	if (evbuffer_add(out, hdr, sizeof(hdr)) == -1 ||
	    (len > 0 && evbuffer_add(out, payload, len) == -1))
		return -1;
	r->active_us = sched_now_us();
	return 0;
}

bool
replica_idle(const struct replica *r)
{
	return r->state == REPLICA_LIVE && r->bev != NULL &&
	    r->n_jobs == 0 && !r->draining && !r->retiring;
}

bool
replica_pipe(const struct replica *r)
{
	return r->state == REPLICA_LIVE && r->bev != NULL && r->max_seqs == 0 &&
	    r->dep != NULL && r->n_infers > 0 &&
	    r->n_infers < REPLICA_PIPELINE && !r->draining && !r->retiring;
}

size_t
replica_waiting(const struct replica *r)
{
	return r->n_infers > 1 ? r->n_jobs - r->infers[0].n_jobs : 0;
}

void
replica_infer(struct replica *r, struct job_queue *batch, uint32_t n,
    uint32_t rows)
{
	const struct wbuf	*parts[BATCH_MAX_JOBS];
	const struct wbuf	*body;
	struct replica_infer	*inf;
	struct sched_job	*job;
	int64_t			 now = sched_now_us();
	size_t			 k = 0;

	TAILQ_FOREACH(job, batch, entry)
		if (k < BATCH_MAX_JOBS)
			parts[k++] = &job->payload;
	if (k != n || r->n_infers >= REPLICA_PIPELINE ||
	    (n > 1 && batch_concat(&r->sendbuf, parts, n, rows,
	    IPC_MAX_PAYLOAD) == -1)) {
		/* Cannot happen with jobs sched.c found compatible; run
		 * them one by one rather than fail them. */
		log_warnx("'%s': cannot build a batch of %u requests",
		    r->dep->name, n);
		while ((job = TAILQ_FIRST(batch)) != NULL) {
			TAILQ_REMOVE(batch, job, entry);
			job->solo = true;
			fairq_finished(&job->dep->q, job->flow);
			sched_job_requeue(job);
		}
		sched_dispatch(r->dep);
		return;
	}
	body = n == 1 ? parts[0] : &r->sendbuf;
	TAILQ_FOREACH(job, batch, entry) {
		job->on = r;
		job->started_us = now;
	}
	TAILQ_CONCAT(&r->jobs, batch, entry);
	r->n_jobs += n;
	inf = &r->infers[r->n_infers++];
	inf->id = ++r->s->next_req_id;
	inf->rows = rows;
	inf->n_jobs = n;
	if (r->n_infers == 1)
		replica_arm_infer(r);
	if (replica_send_infer(r, inf, body) == -1)
		replica_fail(r, "cannot send request", REPLICA_KILL_PROTOCOL);
}

/* An INFER's payload into a slot of the window that no INFER in flight
 * holds, when there is a window and it fits, else through the socket. */
static int
replica_send_infer(struct replica *r, struct replica_infer *inf,
    const struct wbuf *body)
{
	uint8_t		ref[IPC_SHM_REF_LEN];
	size_t		pad;
	int		slot;

	inf->slot = -1;
	pad = r->shm != NULL ? ipc_shm_pad(body->data, body->len) : 0;
	if (r->shm == NULL || body->len > IPC_SHM_SLOT - pad)
		return replica_send(r, IPC_INFER, inf->id, body->data,
		    body->len);
	for (slot = 0; slot < IPC_SHM_SLOTS; slot++) {
		int	i;

		for (i = 0; i < r->n_infers && r->infers[i].slot != slot; i++)
			;
		if (i == r->n_infers)
			break;
	}
	inf->slot = slot;
	memcpy(r->shm + (size_t)slot * IPC_SHM_SLOT + pad, body->data,
	    body->len);
	ipc_shm_ref_encode(ref, (uint64_t)slot * IPC_SHM_SLOT + pad,
	    body->len);
	return replica_send(r, IPC_INFER_SHM, inf->id, ref, sizeof(ref));
}

/* The oldest INFER starts computing: a runtime is hung when it computes
 * far longer than this deployment's recent requests say it should, and
 * never before the configured deadline. */
static void
replica_arm_infer(struct replica *r)
{
	struct replica_infer	*inf = &r->infers[0];
	int64_t			 hang_us, expect;
	struct timeval		 tv;

	inf->start_us = sched_now_us();
	hang_us = (int64_t)r->s->cfg.compute_timeout_ms * 1000;
	expect = r->dep->us_per_row * (int64_t)inf->rows;
	if (expect > 0 && expect < INT64_MAX / HANG_SLACK &&
	    expect * HANG_SLACK > hang_us)
		hang_us = expect * HANG_SLACK;
	tv.tv_sec = hang_us / 1000000;
	tv.tv_usec = hang_us % 1000000;
	evtimer_add(r->hang_ev, &tv);
}

/* Moves the oldest INFER's jobs from r->jobs to the tail of out; the
 * next INFER, if any, starts computing. */
static void
replica_take_infer(struct replica *r, struct job_queue *out)
{
	struct sched_job	*job;

	evtimer_del(r->hang_ev);
	for (uint32_t i = 0; i < r->infers[0].n_jobs; i++) {
		job = TAILQ_FIRST(&r->jobs);
		TAILQ_REMOVE(&r->jobs, job, entry);
		TAILQ_INSERT_TAIL(out, job, entry);
		r->n_jobs--;
	}
	r->n_infers--;
	memmove(&r->infers[0], &r->infers[1],
	    (size_t)r->n_infers * sizeof(r->infers[0]));
	if (r->n_infers > 0)
		replica_arm_infer(r);
}

bool
replica_room(const struct replica *r)
{
	return r->state == REPLICA_LIVE && r->bev != NULL && r->max_seqs > 0 &&
	    r->n_jobs < r->max_seqs && !r->draining && !r->retiring;
}

/* While a GGUF runtime generates, every TOKEN or DONE restarts its
 * deadline: a runtime silent for the compute timeout is hung. */
static void
replica_arm_hang(struct replica *r)
{
	int64_t		hang_us = (int64_t)r->s->cfg.compute_timeout_ms * 1000;
	struct timeval	tv = { hang_us / 1000000, hang_us % 1000000 };

	evtimer_add(r->hang_ev, &tv);
}

void
replica_generate(struct replica *r, struct sched_job *job)
{
	job->on = r;
	job->started_us = sched_now_us();
	job->ipc_id = ++r->s->next_req_id;
	TAILQ_INSERT_TAIL(&r->jobs, job, entry);
	if (r->n_jobs++ == 0)
		replica_arm_hang(r);
	if (replica_send(r, IPC_GENERATE, job->ipc_id, job->payload.data,
	    job->payload.len) == -1)
		replica_fail(r, "cannot send request", REPLICA_KILL_PROTOCOL);
}

/* TOKEN, DONE or INFER_ERR of one of a GGUF runtime's streams; the frame
 * is checked here so that a runtime that breaks the protocol is killed
 * before a caller sees its bytes. */
static int
replica_stream_frame(struct replica *r, const struct ipc_hdr *h,
    const uint8_t *payload)
{
	struct deployment	*dep = r->dep;
	struct sched_job	*job;
	struct sched_result	 res;
	struct ipc_gen_token	 t;
	struct ipc_gen_done	 d;
	struct rbuf		 rb;
	char			 msg[512];
	uint16_t		 code = 0;

	TAILQ_FOREACH(job, &r->jobs, entry)
		if (job->ipc_id == h->req_id)
			break;
	if (job == NULL) {
		replica_fail(r, "reply for a request it was not given",
		    REPLICA_KILL_PROTOCOL);
		return -1;
	}
	rbuf_init(&rb, payload, h->len);
	memset(&res, 0, sizeof(res));
	res.version = dep->version;
	switch (h->type) {
	case IPC_TOKEN:
		if (ipc_gen_token_decode(&rb, &t) == -1) {
			replica_fail(r, "bad TOKEN", REPLICA_KILL_PROTOCOL);
			return -1;
		}
		replica_arm_hang(r);
		job->streamed = true;
		if (!job->stopping)
			job->on_token(job->arg, payload, h->len);
		return r->bev != NULL ? 0 : -1;
	case IPC_DONE:
		if (ipc_gen_done_decode(&rb, &d) == -1) {
			replica_fail(r, "bad DONE", REPLICA_KILL_PROTOCOL);
			return -1;
		}
		res.status = job->stopping || d.finish ==
		    IPC_FINISH_CANCELLED ? SCHED_CANCELLED : SCHED_OK;
		res.payload = payload;
		res.len = h->len;
		res.compute_us = (int64_t)d.compute_us;
		break;
	default:
		/* INFER_ERR ends a stream only before its first token. */
		if (job->streamed || rbuf_u16(&rb, &code) == -1 ||
		    rbuf_str16(&rb, msg, sizeof(msg)) == -1) {
			replica_fail(r, "bad INFER_ERR", REPLICA_KILL_PROTOCOL);
			return -1;
		}
		res.status = code == IPC_ERR_BAD_INPUT ? SCHED_BAD_INPUT :
		    code == IPC_ERR_CONTEXT ? SCHED_CONTEXT :
		    code == IPC_ERR_TOO_LARGE ? SCHED_TOO_LARGE :
		    SCHED_INTERNAL;
		res.message = msg;
		break;
	}
	TAILQ_REMOVE(&r->jobs, job, entry);
	job->on = NULL;
	if (--r->n_jobs == 0)
		evtimer_del(r->hang_ev);
	else
		replica_arm_hang(r);
	fairq_finished(&dep->q, job->flow);
	sched_job_finish(job, &res);
	if (r->bev == NULL)
		return -1;
	if (r->n_jobs == 0)
		replica_drained(r);
	else
		sched_dispatch(dep);
	return r->bev != NULL ? 0 : -1;
}

/* The INFER of a batch failed in a way that says nothing about which
 * job caused it: each job runs again alone. */
static void
replica_unbatch(struct replica *r)
{
	struct sched_job	*job;
	struct job_queue	 jobs;

	TAILQ_INIT(&jobs);
	replica_take_infer(r, &jobs);
	while ((job = TAILQ_FIRST(&jobs)) != NULL) {
		TAILQ_REMOVE(&jobs, job, entry);
		job->on = NULL;
		job->solo = true;
		if (job->cancelled) {
			fairq_finished(&job->dep->q, job->flow);
			sched_job_finish(job, NULL);
			continue;
		}
		fairq_finished(&job->dep->q, job->flow);
		sched_job_requeue(job);
	}
	replica_drained(r);
}

/* The replica finished an INFER or a stream: stop it if it drains and
 * has no other, else give it the next job. */
static void
replica_drained(struct replica *r)
{
	struct deployment	*dep = r->dep;

	if (r->draining && r->n_jobs == 0)
		sched_replica_gone(r);	/* r is freed once reaped */
	sched_dispatch(dep);
}

static void
replica_read_cb(struct bufferevent *bev, void *arg)
{
	struct replica	*r = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	uint8_t		 hdr[IPC_HDR_LEN];
	struct ipc_hdr	 h;

	while (r->bev != NULL &&
	    evbuffer_get_length(in) >= IPC_HDR_LEN) {
		const uint8_t	*payload;

		evbuffer_copyout(in, hdr, sizeof(hdr));
		if (ipc_hdr_decode(hdr, &h, IPC_MAX_PAYLOAD) == -1) {
			replica_fail(r, "malformed frame header",
			    REPLICA_KILL_PROTOCOL);
			return;
		}
		if (evbuffer_get_length(in) < IPC_HDR_LEN + (size_t)h.len)
			return;
		evbuffer_drain(in, IPC_HDR_LEN);
		payload = h.len ? evbuffer_pullup(in, h.len) : NULL;
		r->active_us = sched_now_us();
		if (replica_frame(r, &h, payload) == -1)
			return;		/* r may be gone from its slot */
		if (r->bev != NULL)
			evbuffer_drain(in, h.len);
	}
}

/* Handles one frame; -1 if the replica was failed or retired because
 * of it (its socket is gone). */
static int
replica_frame(struct replica *r, const struct ipc_hdr *h,
    const uint8_t *payload)
{
	struct ipc_meta		 meta;
	struct rbuf		 rb;
	char			 msg[512];

	rbuf_init(&rb, payload, h->len);
	switch (h->type) {
	case IPC_HELLO:
		if (r->state != REPLICA_STARTING || h->req_id != 0 ||
		    ipc_meta_decode(&rb, &meta) == -1) {
			replica_fail(r, "bad HELLO", REPLICA_KILL_PROTOCOL);
			return -1;
		}
		r->state = REPLICA_LIVE;
		r->live_since_us = sched_now_us();
		r->max_seqs = meta.format != MODEL_FORMAT_GGUF ? 0 :
		    meta.llm.max_seqs > REPLICA_MAX_SEQS ? REPLICA_MAX_SEQS :
		    meta.llm.max_seqs;
		if (meta.format == MODEL_FORMAT_GGUF)
			replica_unmap(r);	/* it takes no INFER */
		evtimer_del(r->hang_ev);
		if (r->dep == NULL) {
			evtimer_del(r->probe_timeout);
			r->probe_cb(r->probe_arg, &meta, NULL);
			ipc_meta_release(&meta);
			r->probe_cb = NULL;
			replica_retire(r);
			sched_probe_done(r);
			return -1;
		}
		sched_replica_live(r, &meta);
		ipc_meta_release(&meta);
		return r->bev != NULL ? 0 : -1;
	case IPC_ERROR:
		if (rbuf_str16(&rb, msg, sizeof(msg)) == -1)
			snprintf(msg, sizeof(msg), "runtime failed to load");
		if (r->dep == NULL && r->probe_cb != NULL) {
			evtimer_del(r->probe_timeout);
			r->probe_cb(r->probe_arg, NULL, msg);
			r->probe_cb = NULL;
			replica_retire(r);
			sched_probe_done(r);
			return -1;
		}
		log_warnx("runtime of '%s' cannot load its model: %s",
		    replica_name(r), msg);
		replica_fail(r, "load error", REPLICA_KILL_PROTOCOL);
		return -1;
	case IPC_PONG:
		if (h->req_id != r->ping_id || r->ping_id == 0) {
			replica_fail(r, "unexpected PONG",
			    REPLICA_KILL_PROTOCOL);
			return -1;
		}
		r->ping_id = 0;
		return 0;
	case IPC_TOKEN:
	case IPC_DONE:
		if (r->max_seqs == 0 || r->dep == NULL) {
			replica_fail(r, "unexpected frame type",
			    REPLICA_KILL_PROTOCOL);
			return -1;
		}
		return replica_stream_frame(r, h, payload);
	case IPC_INFER_OK:
	case IPC_INFER_ERR:
		if (r->max_seqs > 0 && r->dep != NULL &&
		    h->type == IPC_INFER_ERR)
			return replica_stream_frame(r, h, payload);
		if (r->n_infers == 0 || h->req_id != r->infers[0].id) {
			replica_fail(r, "reply for a request it was not given",
			    REPLICA_KILL_PROTOCOL);
			return -1;
		}
		return replica_reply(r, h, payload);
	default:
		replica_fail(r, "unexpected frame type", REPLICA_KILL_PROTOCOL);
		return -1;
	}
}

/* INFER_OK or INFER_ERR for the INFER in flight. */
static int
replica_reply(struct replica *r, const struct ipc_hdr *h,
    const uint8_t *payload)
{
	struct deployment	*dep = r->dep;
	struct sched		*s = r->s;
	struct sched_result	 res;
	struct sched_job	*job;
	struct job_queue	 done;
	struct rbuf		 rb;
	char			 msg[512];
	uint64_t		 cus = 0;
	uint32_t		 total = r->infers[0].rows, first = 0;
	uint32_t		 n = r->infers[0].n_jobs;
	uint16_t		 code = 0;

	rbuf_init(&rb, payload, h->len);
	if (h->type == IPC_INFER_OK ? rbuf_u64(&rb, &cus) == -1 :
	    (rbuf_u16(&rb, &code) == -1 ||
	    rbuf_str16(&rb, msg, sizeof(msg)) == -1)) {
		replica_fail(r, "short reply", REPLICA_KILL_PROTOCOL);
		return -1;
	}
	if (h->type == IPC_INFER_ERR && n > 1) {
		replica_unbatch(r);
		return r->bev != NULL ? 0 : -1;
	}
	if (h->type == IPC_INFER_OK && n > 1 &&
	    batch_split(&s->split, payload + rb.off, h->len - rb.off, total,
	    0, TAILQ_FIRST(&r->jobs)->rows) == -1) {
		log_warnx("'%s': the model's outputs do not have the batch's "
		    "rows first; batching is off for it", dep->name);
		dep->batchable = false;
		replica_unbatch(r);
		return r->bev != NULL ? 0 : -1;
	}
	if (h->type == IPC_INFER_OK)
		sched_observe_compute(dep, (int64_t)cus, total);
	/* Detach the jobs first: a done callback may cancel others. */
	TAILQ_INIT(&done);
	replica_take_infer(r, &done);
	while ((job = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, job, entry);
		job->on = NULL;
		fairq_finished(&dep->q, job->flow);
		memset(&res, 0, sizeof(res));
		res.version = dep->version;
		res.batch_rows = total;
		if (h->type == IPC_INFER_ERR) {
			res.status = code == IPC_ERR_BAD_INPUT ?
			    SCHED_BAD_INPUT : code == IPC_ERR_TOO_LARGE ?
			    SCHED_TOO_LARGE : SCHED_INTERNAL;
			res.message = msg;
		} else if (total == job->rows || job->rows == 0) {
			res.status = SCHED_OK;
			res.compute_us = (int64_t)cus;
			res.payload = payload + rb.off;
			res.len = h->len - rb.off;
		} else {
			/* The first job's share was split (and checked)
			 * above; the others have the same layout. */
			if (first > 0 && batch_split(&s->split, payload +
			    rb.off, h->len - rb.off, total, first,
			    job->rows) == -1)
				fatalx("batch split failed after checking");
			res.status = SCHED_OK;
			res.compute_us = (int64_t)(cus * job->rows / total);
			res.payload = s->split.data;
			res.len = s->split.len;
		}
		first += job->rows;
		sched_job_finish(job, &res);
	}
	if (r->bev == NULL)
		return -1;
	replica_drained(r);
	return r->bev != NULL ? 0 : -1;
}

/* Forwards the runtime's log lines to maasd's stderr, whole lines only so
 * they do not interleave with maasd's own. */
static void
replica_stderr_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line;
	size_t		 n;

	(void)arg;
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		if (n > STDERR_LINE_MAX)
			n = STDERR_LINE_MAX;
		line[n] = '\n';	/* readln leaves room for the NUL */
		(void)!write(STDERR_FILENO, line, n + 1);
		free(line);
	}
	if (evbuffer_get_length(in) > STDERR_LINE_MAX)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void
replica_stderr_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct replica	*r = arg;

	(void)what;
	if (bev == r->errbev) {
		replica_stderr_cb(bev, arg);
		bufferevent_free(r->errbev);
		r->errbev = NULL;
	}
}

static void
replica_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct replica	*r = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		replica_fail(r, what & BEV_EVENT_EOF ?
		    "runtime closed its socket" : "socket error",
		    REPLICA_KILL_EOF);
}

static void
replica_disconnect(struct replica *r)
{
	if (r->bev != NULL) {
		bufferevent_free(r->bev);
		r->bev = NULL;
	}
	r->ping_id = 0;
	if (r->hang_ev != NULL)
		evtimer_del(r->hang_ev);
}

void
replica_fail(struct replica *r, const char *why, enum replica_kill kill_why)
{
	/* Idempotent: EOF and SIGCHLD both arrive here for one death. */
	if (r->bev != NULL)
		log_warnx("runtime of '%s' replica %d (pid %d) failed: %s",
		    replica_name(r), r->idx, (int)r->pid, why);
	replica_disconnect(r);
	if (r->kill == REPLICA_KILL_NONE)
		r->kill = kill_why;
	r->state = REPLICA_DEAD;
	if (r->dep == NULL) {
		if (r->pid > 0)
			kill(r->pid, SIGKILL);	/* reaped by SIGCHLD */
		if (r->probe_cb != NULL) {
			char	msg[256];

			snprintf(msg, sizeof(msg), "runtime failed while "
			    "loading the model: %s", why);
			evtimer_del(r->probe_timeout);
			r->probe_cb(r->probe_arg, NULL, msg);
			r->probe_cb = NULL;
			replica_retire(r);
			sched_probe_done(r);
		}
		return;
	}
	if (r->pid > 0) {
		struct timeval	tv = { REAP_WAIT_S, 0 };

		if (!r->dying) {
			/* Signalling a process that is already exiting does
			 * not change how it died: the status stays true. */
			kill(r->pid, SIGKILL);
			r->dying = true;
			evtimer_add(r->reap_ev, &tv);
		}
		return;
	}
	if (!r->dying)
		replica_lost(r);
}

/* Could the jobs on r have caused its death? */
static bool
replica_crashed(const struct replica *r)
{
	switch (r->kill) {
	case REPLICA_KILL_HANG:
	case REPLICA_KILL_PING:
	case REPLICA_KILL_PROTOCOL:
		return true;
	case REPLICA_KILL_STOP:
		return false;
	default:
		break;
	}
	if (!r->reaped)
		return false;	/* unknown: not held against the input */
	if (WIFSIGNALED(r->wstatus))
		return WTERMSIG(r->wstatus) != SIGKILL;
	return true;		/* exited in the middle of a request */
}

/* Settles the jobs of a dead runtime: each is retried once, quarantined
 * once it was on two runtimes that crashed, or failed. */
static void
replica_settle(struct replica *r, bool crashed)
{
	struct deployment	*dep = r->dep;
	struct sched_job	*job;
	struct job_queue	 lost;
	/* Streams all run at once; of the INFERs only the oldest was
	 * computing, the next one waited in the socket. */
	size_t			 running = r->n_infers > 0 ?
				    r->infers[0].n_jobs : r->n_jobs;
	bool			 batch = running > 1;

	TAILQ_INIT(&lost);
	TAILQ_CONCAT(&lost, &r->jobs, entry);
	r->n_jobs = 0;
	r->n_infers = 0;
	for (size_t i = 0; (job = TAILQ_FIRST(&lost)) != NULL; i++) {
		struct sched_result	res;
		/* The INFER waiting behind never ran: no attempt, no
		 * crash, and it goes back to the queue as it was. */
		bool			ran = i < running;

		TAILQ_REMOVE(&lost, job, entry);
		job->on = NULL;
		fairq_finished(&dep->q, job->flow);
		if (ran) {
			job->attempts++;
			if (crashed)
				job->crashes++;
			/* Whoever crashed a batch runs alone from now on, so
			 * that a second crash points at the job that caused
			 * it. */
			if (crashed || batch)
				job->solo = true;
		}
		memset(&res, 0, sizeof(res));
		res.version = dep->version;
		res.attempts = job->attempts;
		if (job->cancelled)
			sched_job_finish(job, NULL);
		else if (r->s->stopping) {
			res.status = SCHED_SHUTDOWN;
			res.message = "the server is shutting down";
			sched_job_finish(job, &res);
		} else if (!ran) {
			sched_job_requeue(job);
		} else if (job->on_token != NULL && job->stopping) {
			res.status = SCHED_CANCELLED;
			res.message = "cancelled";
			sched_job_finish(job, &res);
		} else if (job->on_token != NULL && job->streamed) {
			/* Its tokens are with the client already: running
			 * it again would send them twice. */
			res.status = SCHED_UNAVAILABLE;
			res.message = "the model runtime stopped while "
			    "generating";
			sched_job_finish(job, &res);
		} else if (job->crashes >= 2) {
			log_warnx("'%s': request %llu of tenant '%s' crashed "
			    "two runtimes: quarantined", dep->name,
			    (unsigned long long)job->id, job->flow->tenant_id);
			sched_quarantine(job);
			res.status = SCHED_QUARANTINED;
			res.message = "this input crashes the model";
			sched_job_finish(job, &res);
		} else if (job->attempts >= 2) {
			res.status = SCHED_UNAVAILABLE;
			res.message = "the model runtime stopped twice while "
			    "computing this request";
			sched_job_finish(job, &res);
		} else {
			dep->stats.retries++;
			sched_job_requeue(job);
		}
	}
}

/* The runtime is dead and reaped (or we gave up waiting): settle its
 * jobs, then restart it or let it go. */
static void
replica_lost(struct replica *r)
{
	struct deployment	*dep = r->dep;
	bool			 was_live = r->live_since_us != 0;
	int64_t			 now = sched_now_us();

	r->dying = false;
	evtimer_del(r->reap_ev);
	if (r->n_jobs > 0)
		replica_settle(r, replica_crashed(r));
	r->kill = REPLICA_KILL_NONE;
	r->reaped = false;
	if (r->retiring) {
		sched_retired_done(r);
		return;
	}
	if (r->draining) {
		sched_replica_gone(r);	/* reaped: r is freed */
		sched_dispatch(dep);
		return;
	}
	if (r->s->stopping)
		return;
	if (was_live && now - r->live_since_us > STABLE_US)
		r->backoff_ms = BACKOFF_MIN_MS;
	r->live_since_us = 0;
	if (!evtimer_pending(r->restart_ev, NULL)) {
		struct timeval	tv = { r->backoff_ms / 1000,
		    (r->backoff_ms % 1000) * 1000 };

		log_info("restarting runtime of '%s' replica %d in %d ms",
		    replica_name(r), r->idx, r->backoff_ms);
		evtimer_add(r->restart_ev, &tv);
		r->restart_at_us = now + (int64_t)r->backoff_ms * 1000;
		r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ?
		    BACKOFF_MAX_MS : r->backoff_ms * 2;
	}
	/* Jobs queued for this deployment may go to another replica. */
	sched_dispatch(dep);
}

static void
replica_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replica	*r = arg;

	(void)fd;
	(void)what;
	if (r->retiring || r->draining || r->s->stopping || r->dep == NULL)
		return;
	r->restarts++;
	replica_start(r, r->dep->path, r->dep->threads);
}

static void
replica_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replica	*r = arg;
	const struct sched_config *cfg = &r->s->cfg;
	int64_t		 now = sched_now_us();

	(void)fd;
	(void)what;
	if (r->state != REPLICA_LIVE || r->bev == NULL)
		return;
	if (r->ping_id != 0) {
		if (now - r->ping_sent_us > (int64_t)cfg->ping_timeout_ms *
		    1000)
			replica_fail(r, "no answer to PING", REPLICA_KILL_PING);
		return;
	}
	/* A busy runtime is watched by its compute deadline instead. */
	if (r->n_jobs > 0 ||
	    now - r->active_us < (int64_t)cfg->ping_interval_ms * 1000)
		return;
	r->ping_id = ++r->s->next_req_id;
	r->ping_sent_us = now;
	replica_send(r, IPC_PING, r->ping_id, NULL, 0);
}

static void
replica_hang_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replica	*r = arg;
	char		 why[96];

	(void)fd;
	(void)what;
	if (r->bev == NULL)
		return;
	if (r->state == REPLICA_STARTING) {
		replica_fail(r, "loading timed out", REPLICA_KILL_HANG);
		return;
	}
	if (r->n_jobs == 0)
		return;
	snprintf(why, sizeof(why), "hung: computing for more than %lld ms",
	    (long long)((sched_now_us() - (r->n_infers > 0 ?
	    r->infers[0].start_us : TAILQ_FIRST(&r->jobs)->started_us)) /
	    1000));
	r->dep->stats.hangs++;
	replica_fail(r, why, REPLICA_KILL_HANG);
}

/* No SIGCHLD after our SIGKILL (cannot normally happen), or a retired
 * runtime that did not exit on EOF. */
static void
replica_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replica	*r = arg;

	(void)fd;
	(void)what;
	if (r->retiring) {
		if (r->pid > 0)
			kill(r->pid, SIGKILL);
		return;
	}
	if (!r->dying)
		return;
	log_warnx("runtime of '%s' replica %d (pid %d) not reaped %d s after "
	    "SIGKILL", replica_name(r), r->idx, (int)r->pid, REAP_WAIT_S);
	r->pid = 0;	/* whatever is left is reaped by the SIGCHLD handler */
	replica_lost(r);
}

static void
replica_probe_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	replica_fail(arg, "loading timed out", REPLICA_KILL_HANG);
}

void
replica_retire(struct replica *r)
{
	r->retiring = true;
	if (r->kill == REPLICA_KILL_NONE)
		r->kill = REPLICA_KILL_STOP;
	replica_disconnect(r);	/* EOF: the runtime exits by itself */
	event_del(r->restart_ev);
	event_del(r->ping_ev);
	r->state = REPLICA_DEAD;
	if (r->dep != NULL && r->pid > 0) {
		struct timeval	tv = { RETIRE_GRACE_S, 0 };

		evtimer_add(r->reap_ev, &tv);
	}
}

bool
replica_reaped(struct sched *s, pid_t pid, int status)
{
	struct deployment	*dep;
	struct replica		*r = NULL;
	char			 why[64];

	TAILQ_FOREACH(dep, &s->deployments, entry)
		for (int i = 0; r == NULL && i < dep->n_replicas; i++)
			if (dep->replicas[i]->pid == pid)
				r = dep->replicas[i];
	for (size_t i = 0; r == NULL && i < s->n_retired; i++)
		if (s->retired[i]->pid == pid)
			r = s->retired[i];
	for (size_t i = 0; r == NULL && i < s->n_probes; i++) {
		if (s->probes[i]->pid != pid)
			continue;
		r = s->probes[i];
		r->pid = 0;
		if (r->bev != NULL || r->probe_cb != NULL) {
			snprintf(why, sizeof(why), "exited (status 0x%x)",
			    (unsigned)status);
			replica_fail(r, why, REPLICA_KILL_NONE);
		}
		return true;
	}
	if (r == NULL)
		return false;
	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d",
		    WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "exited with status %d",
		    WEXITSTATUS(status));
	if (r->bev != NULL || (!r->dying && !r->retiring))
		log_warnx("runtime of '%s' replica %d (pid %d) %s",
		    replica_name(r), r->idx, (int)pid, why);
	else
		log_info("runtime of '%s' replica %d (pid %d) %s",
		    replica_name(r), r->idx, (int)pid, why);
	r->pid = 0;
	r->wstatus = status;
	r->reaped = true;
	if (r->retiring) {
		evtimer_del(r->reap_ev);
		sched_retired_done(r);
		return true;
	}
	if (r->bev != NULL)
		replica_fail(r, why, REPLICA_KILL_NONE);
	else
		replica_lost(r);
	return true;
}
