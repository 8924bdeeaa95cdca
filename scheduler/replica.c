/* scheduler/replica.c - the supervisor side of one maas-runtime process.
 *
 * The runtime is a child spawned over a socketpair; its end becomes fd 3.
 * Frames from it are parsed here with the limits of common/ipc.h; any
 * violation (bad header, unexpected type, a reply for a request it was not
 * given) means the runtime is compromised or broken, and it is killed.
 * Death is noticed by EOF on the socket or by SIGCHLD, whichever comes
 * first; both paths end in replica_fail(), which fails the job in flight
 * and schedules a restart with exponential backoff. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "scheduler/internal.h"

#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		30000
#define STABLE_US		(30 * 1000000LL)	/* resets backoff */
#define PING_INTERVAL_MS	5000
#define PING_DEADLINE_US	(10 * 1000000LL)
#define PROBE_TIMEOUT_S		120
#define RUNTIME_FD		3

static void	replica_read_cb(struct bufferevent *, void *);
static void	replica_event_cb(struct bufferevent *, short, void *);
static void	replica_restart_cb(evutil_socket_t, short, void *);
static void	replica_ping_cb(evutil_socket_t, short, void *);
static void	replica_probe_timeout_cb(evutil_socket_t, short, void *);
static int	replica_frame(struct replica *, const struct ipc_hdr *,
		    const uint8_t *);
static void	replica_disconnect(struct replica *);
static const char *replica_name(const struct replica *);
static void	replica_stderr_cb(struct bufferevent *, void *);
static void	replica_stderr_event_cb(struct bufferevent *, short, void *);

#define STDERR_LINE_MAX		2048	/* longer runtime lines are cut */

static const char *
replica_name(const struct replica *r)
{
	return r->dep ? r->dep->name : "(probe)";
}

struct replica *
replica_new(struct sched *s, struct deployment *dep, int idx)
{
	struct replica	*r = xcalloc(1, sizeof(*r));

	r->s = s;
	r->dep = dep;
	r->idx = idx;
	r->state = REPLICA_DEAD;
	r->backoff_ms = BACKOFF_MIN_MS;
	r->restart_ev = evtimer_new(s->base, replica_restart_cb, r);
	r->ping_ev = event_new(s->base, -1, EV_PERSIST, replica_ping_cb, r);
	if (dep == NULL)
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
	}
	if (r->errbev != NULL)
		bufferevent_free(r->errbev);
	event_free(r->restart_ev);
	event_free(r->ping_ev);
	if (r->probe_timeout)
		event_free(r->probe_timeout);
	free(r);
}

int
replica_start(struct replica *r, const char *path, int threads)
{
	const struct sched_config *cfg = &r->s->cfg;
	char		 fdarg[16], thr[16], mem[32], uid[16], gid[16];
	char		 envthr[48];
	char		*argv[20];
	char		*envp[4];
	int		 sv[2] = { -1, -1 }, ep[2] = { -1, -1 };
	int		 argc = 0, envc = 0;
	pid_t		 pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1) {
		log_warn("socketpair for runtime of '%s'", replica_name(r));
		goto fail;
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
	argv[argc] = NULL;
	envp[envc++] = envthr;
	if (getenv("MAAS_DEBUG") != NULL)
		envp[envc++] = "MAAS_DEBUG=1";
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
		if (dup2(sv[1], RUNTIME_FD) == -1 || dup2(ep[1], 2) == -1)
			_exit(127);
		{
			int	nul = open("/dev/null", O_RDWR);

			if (nul == -1 || dup2(nul, 0) == -1 ||
			    dup2(nul, 1) == -1)
				_exit(127);
		}
		close_range(RUNTIME_FD + 1, ~0U, 0);
		execve(cfg->runtime_path, argv, envp);
		_exit(127);
	}
	close(sv[1]);
	sv[1] = -1;
	close(ep[1]);
	ep[1] = -1;
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
	r->bev = bufferevent_socket_new(r->s->base, sv[0],
	    BEV_OPT_CLOSE_ON_FREE);			/* bev owns sv[0] */
	bufferevent_setcb(r->bev, replica_read_cb, NULL, replica_event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	if (r->probe_timeout) {
		struct timeval	tv = { PROBE_TIMEOUT_S, 0 };

		evtimer_add(r->probe_timeout, &tv);
	}
	log_debug("runtime of '%s' replica %d started, pid %d",
	    replica_name(r), r->idx, (int)pid);
	return 0;
 fail:
	if (sv[0] != -1)
		close(sv[0]);
	if (sv[1] != -1)
		close(sv[1]);
	if (ep[0] != -1)
		close(ep[0]);
	if (ep[1] != -1)
		close(ep[1]);
	replica_fail(r, "cannot spawn runtime");
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
	return 0;
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
			replica_fail(r, "malformed frame header");
			return;
		}
		if (evbuffer_get_length(in) < IPC_HDR_LEN + (size_t)h.len)
			return;
		evbuffer_drain(in, IPC_HDR_LEN);
		payload = h.len ? evbuffer_pullup(in, h.len) : NULL;
		if (replica_frame(r, &h, payload) == -1)
			return;		/* r may be gone from its slot */
		if (r->bev != NULL)
			evbuffer_drain(in, h.len);
	}
}

/* Handles one frame; -1 if the replica was failed because of it. */
static int
replica_frame(struct replica *r, const struct ipc_hdr *h,
    const uint8_t *payload)
{
	struct sched_result	 res;
	struct sched_job	*job = r->job;
	struct ipc_meta		 meta;
	struct rbuf		 rb;
	char			 msg[512];
	uint16_t		 code;

	rbuf_init(&rb, payload, h->len);
	switch (h->type) {
	case IPC_HELLO:
		if (r->state != REPLICA_STARTING || h->req_id != 0 ||
		    ipc_meta_decode(&rb, &meta) == -1) {
			replica_fail(r, "bad HELLO");
			return -1;
		}
		r->state = REPLICA_LIVE;
		r->live_since_us = sched_now_us();
		if (r->dep == NULL) {
			evtimer_del(r->probe_timeout);
			r->probe_cb(r->probe_arg, &meta, NULL);
			ipc_meta_release(&meta);
			r->probe_cb = NULL;
			replica_retire(r);
			sched_probe_done(r);
			return -1;
		} else {
			struct timeval	tv = { PING_INTERVAL_MS / 1000,
			    (PING_INTERVAL_MS % 1000) * 1000 };

			event_add(r->ping_ev, &tv);
			sched_replica_live(r, &meta);
			ipc_meta_release(&meta);
		}
		return 0;
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
		replica_fail(r, "load error");
		return -1;
	case IPC_PONG:
		if (h->req_id != r->ping_id || r->ping_id == 0) {
			replica_fail(r, "unexpected PONG");
			return -1;
		}
		r->ping_id = 0;
		return 0;
	case IPC_INFER_OK:
	case IPC_INFER_ERR:
		if (job == NULL || h->req_id != job->id) {
			replica_fail(r, "reply for a request it was not given");
			return -1;
		}
		memset(&res, 0, sizeof(res));
		res.version = r->dep->version;
		if (h->type == IPC_INFER_OK) {
			uint64_t	cus;

			if (rbuf_u64(&rb, &cus) == -1) {
				replica_fail(r, "short INFER_OK");
				return -1;
			}
			res.status = SCHED_OK;
			res.compute_us = (int64_t)cus;
			res.payload = payload + rb.off;
			res.len = h->len - rb.off;
		} else {
			if (rbuf_u16(&rb, &code) == -1 ||
			    rbuf_str16(&rb, msg, sizeof(msg)) == -1) {
				replica_fail(r, "short INFER_ERR");
				return -1;
			}
			res.status = code == IPC_ERR_BAD_INPUT ?
			    SCHED_BAD_INPUT : code == IPC_ERR_TOO_LARGE ?
			    SCHED_TOO_LARGE : SCHED_INTERNAL;
			res.message = msg;
		}
		r->job = NULL;
		job->on = NULL;
		sched_job_finish(job, &res);
		if (r->dep != NULL)
			sched_dispatch(r->dep);
		return 0;
	default:
		replica_fail(r, "unexpected frame type");
		return -1;
	}
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
		replica_fail(r, what & BEV_EVENT_EOF ? "runtime closed its socket" :
		    "socket error");
}

static void
replica_disconnect(struct replica *r)
{
	if (r->bev != NULL) {
		bufferevent_free(r->bev);
		r->bev = NULL;
	}
	if (r->ping_ev)
		event_del(r->ping_ev);
	r->ping_id = 0;
}

void
replica_fail(struct replica *r, const char *why)
{
	struct sched_job	*job = r->job;
	bool			 was_live = r->state == REPLICA_LIVE;
	int64_t			 now = sched_now_us();

	/* Idempotent: EOF and SIGCHLD both arrive here for one death. */
	if (r->bev != NULL)
		log_warnx("runtime of '%s' replica %d (pid %d) failed: %s",
		    replica_name(r), r->idx, (int)r->pid, why);
	replica_disconnect(r);
	if (r->pid > 0)
		kill(r->pid, SIGKILL);		/* reaped by SIGCHLD */
	r->state = REPLICA_DEAD;
	if (job != NULL) {
		struct sched_result	res = {
			.status = SCHED_UNAVAILABLE,
			.message = "the model runtime stopped while computing "
			    "this request",
			.version = r->dep ? r->dep->version : NULL,
		};

		r->job = NULL;
		job->on = NULL;
		sched_job_finish(job, &res);
	}
	if (r->dep == NULL) {
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
	if (r->retiring || r->s->stopping)
		return;
	if (was_live && now - r->live_since_us > STABLE_US)
		r->backoff_ms = BACKOFF_MIN_MS;
	if (!evtimer_pending(r->restart_ev, NULL)) {
		struct timeval	tv = { r->backoff_ms / 1000,
		    (r->backoff_ms % 1000) * 1000 };

		log_info("restarting runtime of '%s' replica %d in %d ms",
		    replica_name(r), r->idx, r->backoff_ms);
		evtimer_add(r->restart_ev, &tv);
		r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ?
		    BACKOFF_MAX_MS : r->backoff_ms * 2;
	}
	/* Jobs queued for this deployment may go to another replica. */
	sched_dispatch(r->dep);
}

static void
replica_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replica	*r = arg;

	(void)fd;
	(void)what;
	if (r->retiring || r->s->stopping || r->dep == NULL)
		return;
	r->restarts++;
	replica_start(r, r->dep->path, r->dep->threads);
}

static void
replica_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replica	*r = arg;
	int64_t		 now = sched_now_us();

	(void)fd;
	(void)what;
	if (r->state != REPLICA_LIVE)
		return;
	if (r->ping_id != 0) {
		if (now - r->ping_sent_us > PING_DEADLINE_US)
			replica_fail(r, "no answer to PING");
		return;
	}
	if (r->job != NULL)
		return;		/* busy computing: no PING in between */
	r->ping_id = ++r->s->next_req_id;
	r->ping_sent_us = now;
	replica_send(r, IPC_PING, r->ping_id, NULL, 0);
}

static void
replica_probe_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	replica_fail(arg, "loading timed out");
}

void
replica_retire(struct replica *r)
{
	r->retiring = true;
	replica_disconnect(r);	/* EOF: the runtime exits by itself */
	event_del(r->restart_ev);
	if (r->pid == 0)
		r->state = REPLICA_DEAD;
}

void
replica_reaped(struct sched *s, pid_t pid, int status)
{
	struct deployment	*dep;
	char			 why[64];

	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d",
		    WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "exited with status %d",
		    WEXITSTATUS(status));
	TAILQ_FOREACH(dep, &s->deployments, entry) {
		for (int i = 0; i < dep->n_replicas; i++) {
			struct replica	*r = dep->replicas[i];

			if (r == NULL || r->pid != pid)
				continue;
			r->pid = 0;
			if (r->bev != NULL)
				replica_fail(r, why);
			return;
		}
	}
	for (size_t i = 0; i < s->n_probes; i++) {
		struct replica	*r = s->probes[i];

		if (r->pid != pid)
			continue;
		r->pid = 0;
		if (r->bev != NULL || r->probe_cb != NULL)
			replica_fail(r, why);
		return;
	}
}
