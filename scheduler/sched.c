/* scheduler/sched.c - deployments, their fair queues and placement.
 *
 * Each deployment keeps its queued jobs in maasd (fairq.c); a replica takes
 * work only when it is idle, so the choice of what runs next stays here
 * until the last moment: fair queuing picks the next job, and with
 * batching on, the jobs right after it that are compatible join it in the
 * same INFER.  Replicas are supervised in replica.c, which calls back
 * sched_replica_live(), sched_job_finish(), sched_job_requeue() and
 * sched_dispatch().
 *
 * A job carries an embedded deadline event, armed while it is queued: no
 * allocation per job beyond the job itself. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "scheduler/batch.h"
#include "scheduler/internal.h"

#define DEFAULT_MAX_QUEUE	1024
#define DEFAULT_PING_MS		5000
#define DEFAULT_PING_TIMEOUT_MS	10000
#define DEFAULT_COMPUTE_MS	10000
#define MAX_REPLICAS		64
#define RETRY_AFTER_MAX_S	60
#define RESTART_SOON_US		(2 * 1000000LL)	/* worth queuing for */
#define AUTOSCALE_TICK_MS	250
#define AUTOSCALE_UP_QUEUE	2	/* queued per replica: add one */
#define PIPE_MIN_BYTES		(64u << 10)	/* INFER sent behind another */
#define DEFAULT_SCALE_UP_MS	1000
#define DEFAULT_SCALE_IDLE_MS	30000

const int64_t	sched_time_bounds_us[SCHED_TIME_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
const unsigned	sched_rows_bounds[SCHED_ROWS_BUCKETS] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
};

static const char *const status_names[SCHED_STATUS_MAX] = {
	[SCHED_OK] = "ok",
	[SCHED_BAD_INPUT] = "bad_input",
	[SCHED_TOO_LARGE] = "too_large",
	[SCHED_INTERNAL] = "internal",
	[SCHED_UNAVAILABLE] = "unavailable",
	[SCHED_OVERLOADED] = "overloaded",
	[SCHED_SHUTDOWN] = "shutdown",
	[SCHED_TIMED_OUT] = "timed_out",
	[SCHED_QUARANTINED] = "quarantined",
	[SCHED_CANCELLED] = "cancelled",
	[SCHED_CONTEXT] = "context",
};

static void	sched_sigchld_cb(evutil_socket_t, short, void *);
static void	sched_deadline_cb(evutil_socket_t, short, void *);
static void	sched_batch_cb(evutil_socket_t, short, void *);
static struct deployment *sched_find(struct sched *, const char *);
static struct deployment *sched_find_version(struct sched *, const char *,
		    const char *);
static struct deployment *deployment_new(struct sched *,
		    const struct sched_deploy_spec *);
static void	deployment_retire(struct deployment *);
static bool	name_waits(struct sched *, const char *);
static void	deployment_free(struct deployment *);
static bool	deployment_live(const struct deployment *);
static int	deployment_live_count(const struct deployment *);
static void	deployment_add_replica(struct deployment *);
static void	deployment_resize(struct deployment *, int);
static void	sched_autoscale_cb(evutil_socket_t, short, void *);
static void	job_arm_deadline(struct sched_job *);
static void	job_count_rows(struct sched_job *, bool queued);
static void	job_unqueue(struct sched_job *);
static struct sched_job *job_take(struct deployment *);
static bool	job_batchable(const struct deployment *,
		    const struct sched_job *);
static int	retry_after(const struct deployment *);
static int64_t	deployment_wait_us(const struct deployment *);
static void	hist_time(struct sched_time_hist *, int64_t us);
static bool	pipe_worth(const struct deployment *,
		    const struct sched_job *);
static bool	dispatch_one(struct deployment *, struct replica *, bool);
static void	dispatch_streams(struct deployment *);
static void	job_refuse(struct deployment *, struct sched_job *,
		    const char *);
static struct sched_job *job_submit(struct sched *, const char *,
		    const struct sched_job_opts *, struct wbuf *,
		    sched_token_fn *, sched_done_fn *, void *);
static bool	payload_digest(const struct wbuf *,
		    uint8_t[SCHED_DIGEST_LEN]);
static bool	deployment_quarantined(const struct deployment *,
		    const struct wbuf *);

int64_t
sched_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *
sched_status_name(enum sched_status st)
{
	return (unsigned)st < SCHED_STATUS_MAX ? status_names[st] : "unknown";
}

struct sched *
sched_new(struct event_base *base, const struct sched_config *cfg)
{
	struct sched	*s = xcalloc(1, sizeof(*s));

	s->base = base;
	s->cfg = *cfg;
	if (s->cfg.max_queue == 0)
		s->cfg.max_queue = DEFAULT_MAX_QUEUE;
	if (s->cfg.ping_interval_ms <= 0)
		s->cfg.ping_interval_ms = DEFAULT_PING_MS;
	if (s->cfg.ping_timeout_ms <= 0)
		s->cfg.ping_timeout_ms = DEFAULT_PING_TIMEOUT_MS;
	if (s->cfg.compute_timeout_ms <= 0)
		s->cfg.compute_timeout_ms = DEFAULT_COMPUTE_MS;
	if (s->cfg.autoscale_up_ms <= 0)
		s->cfg.autoscale_up_ms = DEFAULT_SCALE_UP_MS;
	if (s->cfg.autoscale_idle_ms <= 0)
		s->cfg.autoscale_idle_ms = DEFAULT_SCALE_IDLE_MS;
	TAILQ_INIT(&s->deployments);
	TAILQ_INIT(&s->mem_holds);
	wbuf_init(&s->split);
	s->sigchld = evsignal_new(base, SIGCHLD, sched_sigchld_cb, s);
	event_add(s->sigchld, NULL);
	s->autoscale_ev = event_new(base, -1, EV_PERSIST, sched_autoscale_cb,
	    s);
	{
		struct timeval	tv = { 0, AUTOSCALE_TICK_MS * 1000 };

		event_add(s->autoscale_ev, &tv);
	}
	return s;
}

void
sched_free(struct sched *s)
{
	struct deployment	*dep;

	if (s == NULL)
		return;
	s->stopping = true;
	sched_mem_detach(s);
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
	for (size_t i = 0; i < s->n_retired; i++)
		replica_free(s->retired[i]);
	free(s->retired);
	/* Runtimes got EOF or SIGKILL; collect what has already exited. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	event_free(s->sigchld);
	event_free(s->autoscale_ev);
	wbuf_release(&s->split);
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

	while ((job = fairq_peek(&dep->q)) != NULL) {
		job_unqueue(job);
		sched_job_finish(job, &res);
	}
	/* Jobs on replicas fail there with SCHED_SHUTDOWN. */
	for (int i = 0; i < dep->n_replicas; i++)
		replica_free(dep->replicas[i]);
	free(dep->replicas);
	event_free(dep->batch_ev);
	fairq_release(&dep->q);
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
		(void)replica_reaped(s, pid, status);
}

/* The serving version of name with the largest weight (the first one on
 * a tie): what name-wide operations (scale, metadata) apply to. */
static struct deployment *
sched_find(struct sched *s, const char *name)
{
	struct deployment	*dep, *best = NULL;

	TAILQ_FOREACH(dep, &s->deployments, entry)
		if (!dep->retiring && !dep->gone &&
		    strcmp(dep->name, name) == 0 &&
		    (best == NULL || dep->weight > best->weight))
			best = dep;
	return best;
}

/* One version of name, serving or retiring, not gone. */
static struct deployment *
sched_find_version(struct sched *s, const char *name, const char *version)
{
	struct deployment	*dep;

	TAILQ_FOREACH(dep, &s->deployments, entry)
		if (!dep->gone && strcmp(dep->name, name) == 0 &&
		    strcmp(dep->version, version) == 0)
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

/* --- deployments and replicas --- */

int
sched_deploy(struct sched *s, const struct sched_deploy_spec *spec)
{
	struct deployment	*dep;

	if (sched_find(s, spec->name) != NULL)
		return -1;
	/* A version still draining from a deleted deployment of the same
	 * name keeps draining: this is a new one. */
	dep = deployment_new(s, spec);
	dep->weight = 100;
	return 0;
}

static struct deployment *
deployment_new(struct sched *s, const struct sched_deploy_spec *spec)
{
	struct deployment	*dep;
	int			 n;

	dep = xcalloc(1, sizeof(*dep));
	dep->s = s;
	dep->name = xstrdup(spec->name);
	dep->model = xstrdup(spec->model);
	dep->version = xstrdup(spec->version);
	dep->path = xstrdup(spec->path);
	dep->threads = spec->threads > 0 ? spec->threads : 1;
	dep->max_batch = spec->max_batch > 1 ? spec->max_batch : 1;
	dep->max_delay_us = spec->max_queue_delay_us > 0 ?
	    spec->max_queue_delay_us : 0;
	dep->mem_bytes = spec->mem_bytes;
	dep->file_bytes = spec->file_bytes;
	n = spec->replicas > 0 ? spec->replicas : 1;
	if (n > MAX_REPLICAS)
		n = MAX_REPLICAS;
	dep->wanted = n;
	dep->min_replicas = spec->min_replicas > 0 &&
	    spec->min_replicas <= n ? spec->min_replicas : n;
	dep->max_replicas = spec->max_replicas >= n &&
	    spec->max_replicas <= MAX_REPLICAS ? spec->max_replicas : n;
	dep->stats.name = dep->name;
	fairq_init(&dep->q);
	dep->batch_ev = evtimer_new(s->base, sched_batch_cb, dep);
	TAILQ_INSERT_TAIL(&s->deployments, dep, entry);
	for (int i = 0; i < n; i++)
		deployment_add_replica(dep);
	log_info("deployment '%s' -> %s:%s, %d replica(s), batch %d, "
	    "delay %lld us", dep->name, dep->model, dep->version,
	    dep->n_replicas, dep->max_batch, (long long)dep->max_delay_us);
	return dep;
}

/* Takes no new job; the autoscale tick stops it once it is empty. */
static void
deployment_retire(struct deployment *dep)
{
	if (dep->retiring)
		return;
	dep->retiring = true;
	dep->weight = 0;
	log_info("deployment '%s' version %s: draining", dep->name,
	    dep->version);
}

/* True while name has serving versions but none has loaded yet: the
 * versions it retires keep serving until then. */
static bool
name_waits(struct sched *s, const char *name)
{
	struct deployment	*dep;
	bool			 serving = false;

	TAILQ_FOREACH(dep, &s->deployments, entry) {
		if (dep->retiring || dep->gone || strcmp(dep->name, name) != 0)
			continue;
		if (dep->have_meta)
			return false;
		serving = true;
	}
	return serving;
}

int
sched_traffic(struct sched *s, const char *name,
    const struct sched_version_spec *v, size_t n)
{
	struct deployment	*tmpl = sched_find(s, name), *dep;
	struct sched_deploy_spec spec;
	unsigned		 sum = 0;

	if (tmpl == NULL || n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i].replicas < 0 || v[i].replicas > MAX_REPLICAS ||
		    v[i].version == NULL || v[i].path == NULL)
			return -1;
		sum += v[i].weight;
	}
	if (sum == 0)
		return -1;
	/* Versions left out drain; listed ones with weight 0 too. */
	TAILQ_FOREACH(dep, &s->deployments, entry) {
		bool	listed = false;

		if (dep->gone || dep->retiring || strcmp(dep->name, name) != 0)
			continue;
		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i].version, dep->version) == 0 &&
			    v[i].weight > 0)
				listed = true;
		if (!listed)
			deployment_retire(dep);
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i].weight == 0)
			continue;
		dep = sched_find_version(s, name, v[i].version);
		if (dep != NULL && dep->retiring) {
			/* Back before it stopped: serves again. */
			dep->retiring = false;
			if (dep->wanted == 0 || v[i].replicas > 0)
				deployment_resize(dep, v[i].replicas > 0 ?
				    v[i].replicas : dep->min_replicas > 0 ?
				    dep->min_replicas : 1);
		} else if (dep == NULL) {
			memset(&spec, 0, sizeof(spec));
			spec.name = name;
			spec.model = tmpl->model;
			spec.version = v[i].version;
			spec.path = v[i].path;
			spec.replicas = v[i].replicas > 0 ? v[i].replicas : 1;
			spec.threads = tmpl->threads;
			spec.max_batch = tmpl->max_batch;
			spec.max_queue_delay_us = tmpl->max_delay_us;
			spec.mem_bytes = v[i].mem_bytes;
			spec.file_bytes = v[i].file_bytes;
			dep = deployment_new(s, &spec);
		} else if (v[i].replicas > 0 && v[i].replicas != dep->wanted) {
			if (dep->min_replicas > v[i].replicas)
				dep->min_replicas = v[i].replicas;
			if (dep->max_replicas < v[i].replicas)
				dep->max_replicas = v[i].replicas;
			deployment_resize(dep, v[i].replicas);
		}
		dep->weight = v[i].weight;
	}
	return 0;
}

int
sched_remove(struct sched *s, const char *name)
{
	struct deployment	*dep;
	int			 n = 0;

	TAILQ_FOREACH(dep, &s->deployments, entry) {
		if (dep->gone || dep->retiring || strcmp(dep->name, name) != 0)
			continue;
		deployment_retire(dep);
		n++;
	}
	return n > 0 ? 0 : -1;
}

const char *
sched_pick(struct sched *s, const char *name)
{
	struct deployment	*dep, *last = NULL;
	uint64_t		 sum = 0, x;

	TAILQ_FOREACH(dep, &s->deployments, entry)
		if (!dep->retiring && !dep->gone && dep->have_meta &&
		    strcmp(dep->name, name) == 0)
			sum += dep->weight;
	if (sum == 0) {
		/* The new versions are loading: the retiring ones serve. */
		TAILQ_FOREACH(dep, &s->deployments, entry)
			if (dep->retiring && !dep->gone && dep->have_meta &&
			    dep->wanted > 0 && strcmp(dep->name, name) == 0 &&
			    name_waits(s, name))
				return dep->version;
		return NULL;
	}
	x = ((uint64_t)random() << 31 ^ (uint64_t)random()) % sum;
	TAILQ_FOREACH(dep, &s->deployments, entry) {
		if (dep->retiring || dep->gone || !dep->have_meta ||
		    strcmp(dep->name, name) != 0)
			continue;
		last = dep;
		if (x < dep->weight)
			return dep->version;
		x -= dep->weight;
	}
	return last != NULL ? last->version : NULL;
}

const struct ipc_meta *
sched_meta_version(struct sched *s, const char *name, const char *version,
    bool *exists)
{
	struct deployment	*dep = sched_find_version(s, name, version);

	if (exists != NULL)
		*exists = dep != NULL && !dep->retiring;
	return dep != NULL && dep->have_meta ? &dep->meta : NULL;
}

static void
deployment_add_replica(struct deployment *dep)
{
	struct replica	*r;

	dep->replicas = xreallocarray(dep->replicas,
	    (size_t)dep->n_replicas + 1, sizeof(*dep->replicas));
	r = replica_new(dep->s, dep, dep->n_replicas);
	dep->replicas[dep->n_replicas++] = r;
	replica_start(r, dep->path, dep->threads);
}

int
sched_scale(struct sched *s, const char *name, int replicas,
    int min_replicas, int max_replicas)
{
	struct deployment	*dep = sched_find(s, name);

	if (min_replicas <= 0)
		min_replicas = replicas;
	if (max_replicas <= 0)
		max_replicas = replicas;
	if (dep == NULL || min_replicas < 1 || max_replicas > MAX_REPLICAS ||
	    replicas < min_replicas || replicas > max_replicas)
		return -1;
	dep->min_replicas = min_replicas;
	dep->max_replicas = max_replicas;
	dep->scaled_us = sched_now_us();
	deployment_resize(dep, replicas);
	return 0;
}

/* Serves with n replicas: starts new ones, or drains the surplus (idle
 * ones first, from the end): a draining replica takes no new job,
 * finishes its INFER and then stops. */
static void
deployment_resize(struct deployment *dep, int n)
{
	int	serving = 0;

	dep->wanted = n;
	for (int i = 0; i < dep->n_replicas; i++)
		serving += !dep->replicas[i]->draining;
	for (int pass = 0; pass < 2 && serving > n; pass++) {
		for (int i = dep->n_replicas - 1; i >= 0 && serving > n; i--) {
			struct replica	*r = dep->replicas[i];

			if (r->draining || (pass == 0 && (r->n_jobs > 0 ||
			    r->dying)))
				continue;
			r->draining = true;
			serving--;
			log_info("'%s': draining replica %d (pid %d)",
			    dep->name, r->idx, (int)r->pid);
			if (r->n_jobs == 0 && !r->dying)
				sched_replica_gone(r);	/* slots move down */
		}
	}
	while (serving++ < n)
		deployment_add_replica(dep);
	log_info("deployment '%s' runs %d replica(s) (%d to %d)", dep->name,
	    n, dep->min_replicas, dep->max_replicas);
	sched_dispatch(dep);
}

/* --- autoscaling --- */

/* Every AUTOSCALE_TICK_MS, each deployment whose bounds allow it grows by
 * one replica after its queue held at least AUTOSCALE_UP_QUEUE requests
 * per serving replica for a whole autoscale_up_ms, and shrinks by one
 * after it had an empty queue and an idle replica for a whole
 * autoscale_idle_ms.  The two conditions cannot hold together and each
 * needs its state to last, and a change restarts both clocks: that is
 * the hysteresis. */
static void
sched_autoscale_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched		*s = arg;
	struct deployment	*dep;
	int64_t			 now = sched_now_us();

	(void)fd;
	(void)what;
	TAILQ_FOREACH(dep, &s->deployments, entry) {
		size_t	running = 0, waiting = dep->q.queued;
		int	serving = 0;
		bool	busy, idle;

		if (dep->gone)
			continue;
		if (dep->retiring) {
			/* Its queue ran dry and what replaces it has loaded:
			 * its replicas drain and stop. */
			if (dep->q.queued == 0 && dep->wanted > 0 &&
			    !name_waits(s, dep->name))
				deployment_resize(dep, 0);
			if (dep->q.queued == 0 && dep->n_replicas == 0) {
				dep->gone = true;
				log_info("deployment '%s' version %s stopped",
				    dep->name, dep->version);
			}
			continue;
		}
		if (dep->min_replicas >= dep->max_replicas)
			continue;
		for (int i = 0; i < dep->n_replicas; i++) {
			if (dep->replicas[i]->draining)
				continue;
			serving++;
			running += dep->replicas[i]->n_jobs;
			waiting += replica_waiting(dep->replicas[i]);
		}
		/* Jobs sent behind a computing INFER wait all the same. */
		busy = waiting >= (size_t)(AUTOSCALE_UP_QUEUE *
		    (serving ? serving : 1));
		idle = dep->q.queued == 0 && running < (size_t)serving;
		if (!busy) {
			dep->busy_since_us = 0;
			dep->at_budget = false;	/* wants no more */
		} else if (dep->busy_since_us == 0)
			dep->busy_since_us = now;
		if (!idle)
			dep->idle_since_us = 0;
		else if (dep->idle_since_us == 0)
			dep->idle_since_us = now;
		if (busy && dep->wanted < dep->max_replicas &&
		    now - dep->busy_since_us >=
		    (int64_t)s->cfg.autoscale_up_ms * 1000 &&
		    now - dep->scaled_us >= (int64_t)s->cfg.autoscale_up_ms *
		    1000 && sched_mem_resize(dep, dep->wanted + 1) > 0) {
			/* At the node's memory budget: serve with what
			 * runs (said once per stretch of it). */
			if (!dep->at_budget)
				log_warnx("'%s': %zu queued for %d replica(s), "
				    "but another replica does not fit the "
				    "memory budget: not scaling up", dep->name,
				    waiting, serving);
			dep->at_budget = true;
		} else if (busy && dep->wanted < dep->max_replicas &&
		    now - dep->busy_since_us >=
		    (int64_t)s->cfg.autoscale_up_ms * 1000 &&
		    now - dep->scaled_us >= (int64_t)s->cfg.autoscale_up_ms *
		    1000) {
			dep->at_budget = false;
			log_info("'%s': %zu queued for %d replica(s): scaling "
			    "up", dep->name, waiting, serving);
			dep->scaled_us = now;
			dep->busy_since_us = 0;
			dep->stats.scale_ups++;
			deployment_resize(dep, dep->wanted + 1);
		} else if (idle && dep->wanted > dep->min_replicas &&
		    now - dep->idle_since_us >=
		    (int64_t)s->cfg.autoscale_idle_ms * 1000 &&
		    now - dep->scaled_us >= (int64_t)s->cfg.autoscale_idle_ms *
		    1000) {
			log_info("'%s': idle: scaling down", dep->name);
			dep->scaled_us = now;
			dep->idle_since_us = 0;
			dep->stats.scale_downs++;
			deployment_resize(dep, dep->wanted - 1);
		}
	}
}

void
sched_replica_gone(struct replica *r)
{
	struct deployment	*dep = r->dep;
	struct sched		*s = r->s;
	int			 i;

	for (i = 0; i < dep->n_replicas; i++)
		if (dep->replicas[i] == r)
			break;
	if (i == dep->n_replicas)
		return;
	memmove(dep->replicas + i, dep->replicas + i + 1,
	    sizeof(*dep->replicas) * (size_t)(dep->n_replicas - i - 1));
	dep->n_replicas--;
	for (int j = i; j < dep->n_replicas; j++)
		dep->replicas[j]->idx = j;
	dep->gone_restarts += r->restarts;
	replica_retire(r);
	if (r->pid == 0) {
		replica_free(r);
		return;
	}
	s->retired = xreallocarray(s->retired, s->n_retired + 1,
	    sizeof(*s->retired));
	s->retired[s->n_retired++] = r;
}

void
sched_retired_done(struct replica *r)
{
	struct sched	*s = r->s;

	for (size_t i = 0; i < s->n_retired; i++) {
		if (s->retired[i] != r)
			continue;
		s->retired[i] = s->retired[--s->n_retired];
		replica_free(r);
		return;
	}
}

void
sched_replica_live(struct replica *r, const struct ipc_meta *meta)
{
	struct deployment	*dep = r->dep;

	/* What the runtime measured replaces registration's estimate. */
	if (meta->mem_bytes > 0)
		dep->mem_bytes = meta->mem_bytes;
	if (meta->shared_bytes > 0)
		dep->file_bytes = meta->shared_bytes;
	if (!dep->have_meta) {
		ipc_meta_copy(&dep->meta, meta);
		dep->have_meta = true;
		/* Batching needs a dynamic first dimension on every input
		 * and output. */
		dep->batchable = meta->n_inputs > 0 && meta->n_outputs > 0;
		for (uint32_t i = 0; i < meta->n_inputs; i++)
			if (meta->inputs[i].ndim < 1 ||
			    meta->inputs[i].dims[0] != -1)
				dep->batchable = false;
		for (uint32_t i = 0; i < meta->n_outputs; i++)
			if (meta->outputs[i].ndim < 1 ||
			    meta->outputs[i].dims[0] != -1)
				dep->batchable = false;
		if (dep->max_batch > 1 && !dep->batchable)
			log_warnx("'%s': the model has no dynamic first "
			    "dimension; requests are not batched", dep->name);
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

static int
deployment_live_count(const struct deployment *dep)
{
	int	n = 0;

	for (int i = 0; i < dep->n_replicas; i++)
		if (dep->replicas[i]->state == REPLICA_LIVE &&
		    !dep->replicas[i]->draining)
			n++;
	return n;
}

static bool
deployment_live(const struct deployment *dep)
{
	return deployment_live_count(dep) > 0;
}

bool
sched_deployment_ready(struct sched *s, const char *name)
{
	struct deployment	*dep;

	TAILQ_FOREACH(dep, &s->deployments, entry)
		if (!dep->retiring && !dep->gone &&
		    strcmp(dep->name, name) == 0 && deployment_live(dep))
			return true;
	return false;
}

bool
sched_ready(struct sched *s)
{
	struct deployment	*dep;

	TAILQ_FOREACH(dep, &s->deployments, entry)
		if (!dep->retiring && !dep->gone && !deployment_live(dep))
			return false;
	return true;
}

size_t
sched_replica_pids(struct sched *s, const char *name, pid_t *pids,
    size_t max)
{
	struct deployment	*dep;
	size_t			 n = 0;

	TAILQ_FOREACH(dep, &s->deployments, entry) {
		if (dep->retiring || dep->gone || strcmp(dep->name, name) != 0)
			continue;
		for (int i = 0; i < dep->n_replicas && n < max; i++)
			if (dep->replicas[i]->state == REPLICA_LIVE &&
			    !dep->replicas[i]->draining &&
			    dep->replicas[i]->pid > 0)
				pids[n++] = dep->replicas[i]->pid;
	}
	return n;
}

/* --- jobs --- */

struct sched_job *
sched_submit(struct sched *s, const char *name, const char *tenant_id,
    struct wbuf *payload, sched_done_fn *done, void *arg)
{
	struct sched_job_opts	o = { .tenant_id = tenant_id };

	return sched_submit_opts(s, name, &o, payload, done, arg);
}

struct sched_job *
sched_submit_opts(struct sched *s, const char *name,
    const struct sched_job_opts *opts, struct wbuf *payload,
    sched_done_fn *done, void *arg)
{
	return job_submit(s, name, opts, payload, NULL, done, arg);
}

struct sched_job *
sched_submit_stream(struct sched *s, const char *name,
    const struct sched_job_opts *opts, struct wbuf *payload,
    sched_token_fn *on_token, sched_done_fn *done, void *arg)
{
	return job_submit(s, name, opts, payload, on_token, done, arg);
}

/* A stream (on_token set) or an INFER job. */
static struct sched_job *
job_submit(struct sched *s, const char *name,
    const struct sched_job_opts *opts, struct wbuf *payload,
    sched_token_fn *on_token, sched_done_fn *done, void *arg)
{
	struct deployment	*dep;
	struct sched_job	*job, *victim;
	struct sched_result	 res;
	const char		*tenant = opts && opts->tenant_id ?
				    opts->tenant_id : "";
	const char		*version = opts ? opts->version : NULL;

	if (version == NULL)
		version = sched_pick(s, name);
	dep = version != NULL ? sched_find_version(s, name, version) :
	    sched_find(s, name);
	/* A retiring version takes jobs only while it still stands in for
	 * versions that are loading (sched_pick()). */
	if (dep == NULL || (dep->retiring && (dep->wanted == 0 ||
	    !name_waits(s, name))))
		return NULL;
	job = xcalloc(1, sizeof(*job));
	job->dep = dep;
	job->id = ++s->next_req_id;
	job->flow = fairq_flow(&dep->q, tenant);
	if (opts != NULL && opts->weight > 0)
		job->flow->weight = opts->weight > SCHED_WEIGHT_MAX ?
		    SCHED_WEIGHT_MAX : opts->weight;
	job->flow->stats.weight = job->flow->weight;
	job->prio = opts != NULL && (unsigned)opts->priority <
	    SCHED_PRIO_MAX ? opts->priority : SCHED_PRIO_NORMAL;
	job->timeout_us = opts != NULL && opts->timeout_us > 0 ?
	    opts->timeout_us : SCHED_DEFAULT_TIMEOUT_US;
	job->payload = *payload;
	wbuf_init(payload);
	job->on_token = on_token;
	job->rows = on_token != NULL ? 0 : batch_rows(job->payload.data,
	    job->payload.len, &job->sig);
	job->done = done;
	job->arg = arg;
	job->enqueued_us = sched_now_us();
	evtimer_assign(&job->deadline_ev, s->base, sched_deadline_cb, job);
	s->inflight++;

	memset(&res, 0, sizeof(res));
	if (s->stopping) {
		res.status = SCHED_SHUTDOWN;
		res.message = "the server is shutting down";
		sched_job_finish(job, &res);
		return NULL;
	}
	if (dep->have_meta && (dep->meta.format == MODEL_FORMAT_GGUF) !=
	    (on_token != NULL)) {
		res.status = SCHED_BAD_INPUT;
		res.message = on_token != NULL ? "this model does not "
		    "generate text" : "this model takes no tensor requests";
		sched_job_finish(job, &res);
		return NULL;
	}
	if (dep->n_quarantined > 0 &&
	    deployment_quarantined(dep, &job->payload)) {
		/* The very input that crashed this model before: answered
		 * without costing two more runtimes. */
		res.status = SCHED_QUARANTINED;
		res.message = "this input crashes the model";
		sched_job_finish(job, &res);
		return NULL;
	}
	if (deployment_wait_us(dep) > RESTART_SOON_US) {
		/* Every runtime is down and none restarts soon (a crash
		 * loop backing off): refuse rather than queue for nothing. */
		int64_t	w = deployment_wait_us(dep);

		res.status = SCHED_UNAVAILABLE;
		res.message = "no runtime of this model is running; it is "
		    "being restarted";
		res.retry_after_s = w / 1000000 >= RETRY_AFTER_MAX_S ?
		    RETRY_AFTER_MAX_S : (int)(w / 1000000) + 1;
		sched_job_finish(job, &res);
		return NULL;
	}
	if (dep->q.queued >= s->cfg.max_queue) {
		/* Full: the room goes to the tenant with fewer jobs queued,
		 * so a flood refuses its own requests, not others'. */
		res.status = SCHED_OVERLOADED;
		res.message = "too many requests queued for this model";
		res.retry_after_s = retry_after(dep);
		if ((victim = fairq_victim(&dep->q, tenant)) == NULL) {
			sched_job_finish(job, &res);
			return NULL;
		}
		job_unqueue(victim);
		sched_job_finish(victim, &res);
	}
	fairq_push(&dep->q, job);
	job_count_rows(job, true);
	job_arm_deadline(job);
	sched_dispatch(dep);
	return job;
}

/* --- quarantine --- */

static bool
payload_digest(const struct wbuf *p, uint8_t md[SCHED_DIGEST_LEN])
{
	unsigned int	n = 0;

	return EVP_Digest(p->data, p->len, md, &n, EVP_sha256(), NULL) == 1 &&
	    n == SCHED_DIGEST_LEN;
}

void
sched_quarantine(struct sched_job *job)
{
	struct deployment	*dep = job->dep;

	if (!payload_digest(&job->payload,
	    dep->quarantined[dep->next_quarantined]))
		return;
	dep->next_quarantined = (dep->next_quarantined + 1) %
	    SCHED_QUARANTINE_MAX;
	if (dep->n_quarantined < SCHED_QUARANTINE_MAX)
		dep->n_quarantined++;
}

static bool
deployment_quarantined(const struct deployment *dep, const struct wbuf *p)
{
	uint8_t	md[SCHED_DIGEST_LEN];

	if (!payload_digest(p, md))
		return false;
	for (size_t i = 0; i < dep->n_quarantined; i++)
		if (memcmp(dep->quarantined[i], md, sizeof(md)) == 0)
			return true;
	return false;
}

/* How long until some replica may serve: 0 if one is live or loading,
 * else the time to the nearest pending restart (INT64_MAX: none). */
static int64_t
deployment_wait_us(const struct deployment *dep)
{
	int64_t	now = sched_now_us(), best = INT64_MAX;

	for (int i = 0; i < dep->n_replicas; i++) {
		const struct replica	*r = dep->replicas[i];

		if (r->draining)
			continue;
		if (r->state != REPLICA_DEAD || r->dying)
			return 0;
		if (evtimer_pending(r->restart_ev, NULL) &&
		    r->restart_at_us - now < best)
			best = r->restart_at_us > now ? r->restart_at_us - now :
			    0;
	}
	return best;
}

/* Seconds until the queue would likely have room, for Retry-After. */
static int
retry_after(const struct deployment *dep)
{
	int	live = deployment_live_count(dep);
	int64_t	us;

	if (live == 0 || dep->us_per_row == 0)
		return 1;
	us = dep->us_per_row * (int64_t)dep->q.queued / live;
	if (us / 1000000 >= RETRY_AFTER_MAX_S)
		return RETRY_AFTER_MAX_S;
	return (int)(us / 1000000) + 1;
}

static bool
job_batchable(const struct deployment *dep, const struct sched_job *job)
{
	return dep->max_batch > 1 && dep->batchable && !job->solo &&
	    job->rows > 0 && job->rows < (uint32_t)dep->max_batch;
}

/* Keeps dep->queued_rows, the rows queued jobs could bring to a batch. */
static void
job_count_rows(struct sched_job *job, bool queued)
{
	struct deployment	*dep = job->dep;

	if (queued && job_batchable(dep, job)) {
		dep->queued_rows += job->rows;
		job->in_rows = true;
	} else if (!queued && job->in_rows) {
		dep->queued_rows -= job->rows;
		job->in_rows = false;
	}
}

static void
job_arm_deadline(struct sched_job *job)
{
	int64_t		left = job->enqueued_us + job->timeout_us -
			    sched_now_us();
	struct timeval	tv;

	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000000;
	tv.tv_usec = left % 1000000;
	evtimer_add(&job->deadline_ev, &tv);
}

/* Takes a queued job out of its queue and disarms its deadline. */
static void
job_unqueue(struct sched_job *job)
{
	struct deployment	*dep = job->dep;

	job_count_rows(job, false);
	fairq_remove(&dep->q, job);
	evtimer_del(&job->deadline_ev);
}

/* Takes the job fair queuing serves next (the one fairq_peek() showed)
 * for a replica. */
static struct sched_job *
job_take(struct deployment *dep)
{
	struct sched_job	*job = fairq_pop(&dep->q);

	job_count_rows(job, false);
	evtimer_del(&job->deadline_ev);
	return job;
}

static void
sched_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched_job	*job = arg;
	struct sched_result	 res;

	(void)fd;
	(void)what;
	if (!job->queued)
		return;
	/* libevent measures timeouts from the loop's cached time, which
	 * may be a little older than enqueued_us: never fire early. */
	if (sched_now_us() < job->enqueued_us + job->timeout_us) {
		job_arm_deadline(job);
		return;
	}
	job_unqueue(job);
	memset(&res, 0, sizeof(res));
	res.status = SCHED_TIMED_OUT;
	res.message = job->attempts ? "the request could not be run again "
	    "before its deadline" : "the request was not started before its "
	    "deadline";
	res.attempts = job->attempts;
	sched_job_finish(job, &res);
}

void
sched_job_requeue(struct sched_job *job)
{
	struct deployment	*dep = job->dep;

	fairq_push_front(&dep->q, job);
	job_count_rows(job, true);
	job_arm_deadline(job);
}

void
sched_cancel(struct sched_job *job)
{
	job->cancelled = true;
	if (job->on != NULL)
		return;		/* dropped when the reply comes */
	if (job->queued)
		job_unqueue(job);
	sched_job_finish(job, NULL);
}

void
sched_stream_cancel(struct sched_job *job)
{
	struct sched_result	res;

	if (job->stopping)
		return;
	job->stopping = true;
	if (job->on != NULL) {
		/* DONE follows; if the runtime dies first, the job is
		 * settled as cancelled. */
		replica_send(job->on, IPC_CANCEL, job->ipc_id, NULL, 0);
		return;
	}
	if (job->queued)
		job_unqueue(job);
	memset(&res, 0, sizeof(res));
	res.status = SCHED_CANCELLED;
	res.message = "cancelled";
	sched_job_finish(job, &res);
}

size_t
sched_inflight(struct sched *s)
{
	return s->inflight;
}

static void
sched_batch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct deployment	*dep = arg;

	(void)fd;
	(void)what;
	sched_dispatch(dep);
}

/* Is the INFER that would start with first worth sending behind one
 * still computing?  Only a full one (a partial batch gathers more rows
 * in the queue until the replica is idle) of PIPE_MIN_BYTES or more:
 * there the runtime's wait for it (maasd waking, building and writing
 * hundreds of KB) is worth hiding, while a small request keeps its exact
 * place in the fair queue until a replica is free. */
static bool
pipe_worth(const struct deployment *dep, const struct sched_job *first)
{
	size_t	bytes = first->payload.len;

	if (job_batchable(dep, first)) {
		if (dep->queued_rows < (size_t)dep->max_batch)
			return false;
		bytes = bytes / first->rows * (size_t)dep->max_batch;
	}
	return bytes >= PIPE_MIN_BYTES;
}

/* Gives replica r its next INFER; false if r should wait (for a fuller
 * batch) or nothing is queued.  behind: r computes one already. */
static bool
dispatch_one(struct deployment *dep, struct replica *r, bool behind)
{
	struct sched_job	*first, *next;
	struct job_queue	 batch;
	uint32_t		 rows, n;
	int64_t			 now;

	/* A stream sent before the model was known to be ONNX. */
	while ((first = fairq_peek(&dep->q)) != NULL &&
	    first->on_token != NULL)
		job_refuse(dep, job_take(dep), "this model does not generate "
		    "text");
	if (first == NULL)
		return false;
	if (behind && !pipe_worth(dep, first))
		return false;
	/* Waiting for company pays only under concurrent load, which the
	 * last INFER shows: one that carried a single job says requests
	 * come one at a time, and waiting would only add latency. */
	if (job_batchable(dep, first) && dep->max_delay_us > 0 &&
	    dep->last_jobs > 1 &&
	    dep->queued_rows < (size_t)dep->max_batch) {
		int64_t	wait;

		now = sched_now_us();
		wait = first->enqueued_us + dep->max_delay_us - now;
		if (wait > 0) {
			struct timeval	tv = { wait / 1000000,
			    wait % 1000000 };

			if (!evtimer_pending(dep->batch_ev, NULL))
				evtimer_add(dep->batch_ev, &tv);
			return false;
		}
	}
	evtimer_del(dep->batch_ev);
	job_take(dep);
	TAILQ_INIT(&batch);
	TAILQ_INSERT_TAIL(&batch, first, entry);
	n = 1;
	rows = first->rows;
	if (job_batchable(dep, first)) {
		while (n < BATCH_MAX_JOBS &&
		    (next = fairq_peek(&dep->q)) != NULL &&
		    job_batchable(dep, next) && next->sig == first->sig &&
		    rows + next->rows <= (uint32_t)dep->max_batch &&
		    batch_compatible(first->payload.data, first->payload.len,
		    next->payload.data, next->payload.len)) {
			job_take(dep);
			TAILQ_INSERT_TAIL(&batch, next, entry);
			n++;
			rows += next->rows;
		}
	}
	dep->last_jobs = n;
	sched_hist_rows(&dep->stats.batch, rows ? rows : 1);
	replica_infer(r, &batch, n, rows);
	return true;
}

/* A popped job the deployment's model cannot run. */
static void
job_refuse(struct deployment *dep, struct sched_job *job, const char *why)
{
	struct sched_result	res;

	fairq_finished(&dep->q, job->flow);
	memset(&res, 0, sizeof(res));
	res.status = SCHED_BAD_INPUT;
	res.message = why;
	sched_job_finish(job, &res);
}

/* GGUF deployments: each replica runs up to its max_seqs streams at once
 * (continuous batching in the runtime); the next job in fair order goes
 * to the replica with the fewest. */
static void
dispatch_streams(struct deployment *dep)
{
	struct replica		*best, *r;
	struct sched_job	*job;

	while (dep->q.queued > 0) {
		best = NULL;
		for (int i = 0; i < dep->n_replicas; i++) {
			r = dep->replicas[i];
			if (replica_room(r) && (best == NULL ||
			    r->n_jobs < best->n_jobs))
				best = r;
		}
		if (best == NULL)
			return;
		job = job_take(dep);
		if (job->on_token == NULL) {
			job_refuse(dep, job, "this model takes no tensor "
			    "requests");
			continue;
		}
		replica_generate(best, job);
	}
}

void
sched_dispatch(struct deployment *dep)
{
	if (dep->s->stopping)
		return;
	if (dep->have_meta && dep->meta.format == MODEL_FORMAT_GGUF) {
		dispatch_streams(dep);
		return;
	}
	/* Idle replicas first, then a second INFER behind a busy one. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < dep->n_replicas && dep->q.queued > 0;
		    i++) {
			struct replica	*r = dep->replicas[i];

			if (pass == 0 ? !replica_idle(r) : !replica_pipe(r))
				continue;
			if (!dispatch_one(dep, r, pass == 1))
				return;
		}
}

void
sched_job_finish(struct sched_job *job, const struct sched_result *res)
{
	struct sched		*s = job->dep->s;
	struct sched_tenant_stats *ts = &job->flow->stats;

	evtimer_del(&job->deadline_ev);
	if (job->started_us != 0)
		hist_time(&ts->queue, job->started_us - job->enqueued_us);
	if (res == NULL || job->cancelled)
		ts->requests[SCHED_CANCELLED]++;
	else
		ts->requests[res->status]++;
	if (res != NULL && res->status == SCHED_OK)
		hist_time(&ts->compute, res->compute_us);
	if (!job->cancelled && res != NULL) {
		struct sched_result	r = *res;
		int64_t			now = sched_now_us();

		r.queue_us = (job->started_us ? job->started_us : now) -
		    job->enqueued_us;
		if (r.attempts == 0)
			r.attempts = job->attempts + (job->started_us != 0);
		job->done(job->arg, &r);
	}
	s->inflight--;
	wbuf_release(&job->payload);
	free(job);
}

void
sched_observe_compute(struct deployment *dep, int64_t us, uint32_t rows)
{
	int64_t	per = us / (rows ? rows : 1);

	/* EWMA with weight 1/8: settles in a few dozen requests. */
	if (dep->us_per_row == 0)
		dep->us_per_row = per > 0 ? per : 1;
	else
		dep->us_per_row += (per - dep->us_per_row) / 8;
}

/* --- statistics --- */

static void
hist_time(struct sched_time_hist *h, int64_t us)
{
	int	i;

	if (us < 0)
		us = 0;
	for (i = 0; i < SCHED_TIME_BUCKETS; i++)
		if (us <= sched_time_bounds_us[i])
			break;
	h->counts[i]++;
	h->n++;
	h->sum_us += us;
}

void
sched_hist_rows(struct sched_rows_hist *h, unsigned rows)
{
	int	i;

	for (i = 0; i < SCHED_ROWS_BUCKETS; i++)
		if (rows <= sched_rows_bounds[i])
			break;
	h->counts[i]++;
	h->n++;
	h->sum += rows;
}

void
sched_stats(struct sched *s, sched_dep_stats_fn *dep_fn,
    sched_tenant_stats_fn *tenant_fn, void *arg)
{
	struct deployment	*dep;
	struct flow		*f;

	TAILQ_FOREACH(dep, &s->deployments, entry) {
		if (dep->gone)
			continue;
		if (dep_fn != NULL) {
			dep->stats.queued = dep->q.queued;
			dep->stats.replicas = dep->wanted;
			dep->stats.min_replicas = dep->min_replicas;
			dep->stats.max_replicas = dep->max_replicas;
			dep->stats.live = deployment_live_count(dep);
			dep->stats.at_memory_budget = dep->at_budget;
			dep->stats.restarts = dep->gone_restarts;
			dep->stats.running = 0;
			for (int i = 0; i < dep->n_replicas; i++) {
				dep->stats.restarts +=
				    dep->replicas[i]->restarts;
				dep->stats.running += dep->replicas[i]->n_jobs;
			}
			dep_fn(arg, &dep->stats);
		}
		if (tenant_fn != NULL)
			TAILQ_FOREACH(f, &dep->q.flows, entry)
				tenant_fn(arg, dep->name, &f->stats);
	}
}
