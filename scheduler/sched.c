/* scheduler/sched.c - deployments, their FIFO queues and placement.
 *
 * Each deployment keeps a queue of jobs in maasd; a replica takes the next
 * job only when it is idle, so a replica holds at most one request and the
 * choice of which job runs next stays here.  Replicas are supervised in
 * replica.c, which calls back sched_replica_live(), sched_job_finish() and
 * sched_dispatch(). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "scheduler/internal.h"

static void	sched_sigchld_cb(evutil_socket_t, short, void *);
static struct deployment *sched_find(struct sched *, const char *);
static void	deployment_free(struct deployment *);

int64_t
sched_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct sched *
sched_new(struct event_base *base, const struct sched_config *cfg)
{
	struct sched	*s = xcalloc(1, sizeof(*s));

	s->base = base;
	s->cfg = *cfg;
	if (s->cfg.max_queue == 0)
		s->cfg.max_queue = 1024;
	TAILQ_INIT(&s->deployments);
	s->sigchld = evsignal_new(base, SIGCHLD, sched_sigchld_cb, s);
	event_add(s->sigchld, NULL);
	return s;
}

void
sched_free(struct sched *s)
{
	struct deployment	*dep;

	if (s == NULL)
		return;
	s->stopping = true;
	while ((dep = TAILQ_FIRST(&s->deployments)) != NULL) {
		TAILQ_REMOVE(&s->deployments, dep, entry);
		deployment_free(dep);
	}
	for (size_t i = 0; i < s->n_probes; i++) {
		struct replica	*r = s->probes[i];

		if (r->probe_cb != NULL)
			r->probe_cb(r->probe_arg, NULL,
			    "the server is shutting down");
		replica_free(r);
	}
	free(s->probes);
	/* Runtimes got EOF or SIGKILL; collect what has already exited. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	event_free(s->sigchld);
	free(s);
}

static void
deployment_free(struct deployment *dep)
{
	struct sched_job	*job;
	struct sched_result	 res = {
		.status = SCHED_SHUTDOWN,
		.message = "the server is shutting down",
	};

	while ((job = TAILQ_FIRST(&dep->queue)) != NULL) {
		TAILQ_REMOVE(&dep->queue, job, entry);
		dep->queued--;
		sched_job_finish(job, &res);
	}
	for (int i = 0; i < dep->n_replicas; i++)
		replica_free(dep->replicas[i]);
	free(dep->replicas);
	ipc_meta_release(&dep->meta);
	free(dep->name);
	free(dep->model);
	free(dep->version);
	free(dep->path);
	free(dep);
}

static void
sched_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct sched	*s = arg;
	pid_t		 pid;
	int		 status;

	(void)sig;
	(void)what;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		replica_reaped(s, pid, status);
}

static struct deployment *
sched_find(struct sched *s, const char *name)
{
	struct deployment	*dep;

	TAILQ_FOREACH(dep, &s->deployments, entry)
		if (strcmp(dep->name, name) == 0)
			return dep;
	return NULL;
}

/* --- probes --- */

void
sched_probe(struct sched *s, const char *path, sched_probe_fn *cb, void *arg)
{
	struct replica	*r = replica_new(s, NULL, -1);

	r->probe_cb = cb;
	r->probe_arg = arg;
	s->probes = xreallocarray(s->probes, s->n_probes + 1,
	    sizeof(*s->probes));
	s->probes[s->n_probes++] = r;
	replica_start(r, path, 1);
}

void
sched_probe_done(struct replica *r)
{
	struct sched	*s = r->s;

	for (size_t i = 0; i < s->n_probes; i++) {
		if (s->probes[i] != r)
			continue;
		s->probes[i] = s->probes[--s->n_probes];
		break;
	}
	replica_free(r);
}

/* --- deployments --- */

int
sched_deploy(struct sched *s, const struct sched_deploy_spec *spec)
{
	struct deployment	*dep;

	if (sched_find(s, spec->name) != NULL)
		return -1;
	dep = xcalloc(1, sizeof(*dep));
	dep->s = s;
	dep->name = xstrdup(spec->name);
	dep->model = xstrdup(spec->model);
	dep->version = xstrdup(spec->version);
	dep->path = xstrdup(spec->path);
	dep->threads = spec->threads > 0 ? spec->threads : 1;
	dep->n_replicas = spec->replicas > 0 ? spec->replicas : 1;
	dep->replicas = xcalloc((size_t)dep->n_replicas,
	    sizeof(*dep->replicas));
	TAILQ_INIT(&dep->queue);
	TAILQ_INSERT_TAIL(&s->deployments, dep, entry);
	for (int i = 0; i < dep->n_replicas; i++) {
		dep->replicas[i] = replica_new(s, dep, i);
		replica_start(dep->replicas[i], dep->path, dep->threads);
	}
	log_info("deployment '%s' -> %s:%s, %d replica(s)", dep->name,
	    dep->model, dep->version, dep->n_replicas);
	return 0;
}

void
sched_replica_live(struct replica *r, const struct ipc_meta *meta)
{
	struct deployment	*dep = r->dep;

	if (!dep->have_meta) {
		ipc_meta_copy(&dep->meta, meta);
		dep->have_meta = true;
	}
	log_info("runtime of '%s' replica %d (pid %d) is live", dep->name,
	    r->idx, (int)r->pid);
	sched_dispatch(dep);
}

const struct ipc_meta *
sched_meta(struct sched *s, const char *name, const char **version)
{
	struct deployment	*dep = sched_find(s, name);

	if (dep == NULL || !dep->have_meta)
		return NULL;
	if (version != NULL)
		*version = dep->version;
	return &dep->meta;
}

bool
sched_exists(struct sched *s, const char *name)
{
	return sched_find(s, name) != NULL;
}

static bool
deployment_live(const struct deployment *dep)
{
	for (int i = 0; i < dep->n_replicas; i++)
		if (dep->replicas[i]->state == REPLICA_LIVE)
			return true;
	return false;
}

bool
sched_deployment_ready(struct sched *s, const char *name)
{
	struct deployment	*dep = sched_find(s, name);

	return dep != NULL && deployment_live(dep);
}

bool
sched_ready(struct sched *s)
{
	struct deployment	*dep;

	TAILQ_FOREACH(dep, &s->deployments, entry)
		if (!deployment_live(dep))
			return false;
	return true;
}

size_t
sched_replica_pids(struct sched *s, const char *name, pid_t *pids,
    size_t max)
{
	struct deployment	*dep = sched_find(s, name);
	size_t			 n = 0;

	if (dep == NULL)
		return 0;
	for (int i = 0; i < dep->n_replicas && n < max; i++)
		if (dep->replicas[i]->state == REPLICA_LIVE &&
		    dep->replicas[i]->pid > 0)
			pids[n++] = dep->replicas[i]->pid;
	return n;
}

/* --- jobs --- */

struct sched_job *
sched_submit(struct sched *s, const char *name, const char *tenant_id,
    struct wbuf *payload, sched_done_fn *done, void *arg)
{
	struct deployment	*dep = sched_find(s, name);
	struct sched_job	*job;

	if (dep == NULL)
		return NULL;
	job = xcalloc(1, sizeof(*job));
	job->dep = dep;
	job->id = ++s->next_req_id;
	snprintf(job->tenant_id, sizeof(job->tenant_id), "%s",
	    tenant_id ? tenant_id : "");
	job->payload = *payload;
	wbuf_init(payload);
	job->done = done;
	job->arg = arg;
	job->enqueued_us = sched_now_us();
	s->inflight++;
	if (s->stopping || dep->queued >= s->cfg.max_queue) {
		struct sched_result	res = {
			.status = s->stopping ? SCHED_SHUTDOWN :
			    SCHED_OVERLOADED,
			.message = s->stopping ? "the server is shutting down" :
			    "too many requests queued for this model",
		};

		sched_job_finish(job, &res);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&dep->queue, job, entry);
	dep->queued++;
	sched_dispatch(dep);
	return job;
}

void
sched_cancel(struct sched_job *job)
{
	struct deployment	*dep = job->dep;

	if (job->on != NULL) {
		job->cancelled = true;	/* dropped when the reply comes */
		return;
	}
	TAILQ_REMOVE(&dep->queue, job, entry);
	dep->queued--;
	job->cancelled = true;
	sched_job_finish(job, NULL);
}

size_t
sched_inflight(struct sched *s)
{
	return s->inflight;
}

void
sched_dispatch(struct deployment *dep)
{
	struct sched_job	*job;

	for (int i = 0; i < dep->n_replicas; i++) {
		struct replica	*r = dep->replicas[i];

		if (r->state != REPLICA_LIVE || r->job != NULL)
			continue;
		if ((job = TAILQ_FIRST(&dep->queue)) == NULL)
			return;
		TAILQ_REMOVE(&dep->queue, job, entry);
		dep->queued--;
		job->on = r;
		job->started_us = sched_now_us();
		r->job = job;
		if (replica_send(r, IPC_INFER, job->id, job->payload.data,
		    job->payload.len) == -1)
			replica_fail(r, "cannot send request");
	}
}

/* Completes a job: calls done unless cancelled, then frees it.  res NULL
 * only for cancelled jobs. */
void
sched_job_finish(struct sched_job *job, const struct sched_result *res)
{
	struct sched	*s = job->dep->s;

	if (!job->cancelled && res != NULL) {
		struct sched_result	r = *res;
		int64_t			now = sched_now_us();

		r.queue_us = (job->started_us ? job->started_us : now) -
		    job->enqueued_us;
		job->done(job->arg, &r);
	}
	s->inflight--;
	wbuf_release(&job->payload);
	free(job);
}
