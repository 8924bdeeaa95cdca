/* scheduler/sched.h - deployments, replica pools and job placement.
 *
 * The scheduler moves jobs: opaque IPC INFER payloads built by the gateway,
 * queued per deployment and sent to one of its replicas, each a
 * maas-runtime process spawned and supervised here (scheduler/replica.c).
 * It knows nothing of HTTP or JSON.  Everything here runs on maasd's event
 * loop thread.
 *
 * Queues live in maasd, so that placement is decided here and a replica
 * that dies loses only what it was computing:
 *  - each deployment has one sub-queue per tenant, served by weighted fair
 *    queuing (scheduler/fairq.h); within a tenant, higher priorities go
 *    first, then arrival order;
 *  - a job that is not on a replica by its deadline fails with
 *    SCHED_TIMED_OUT; a full queue refuses with SCHED_OVERLOADED, taking
 *    room from the tenant with the most queued jobs first;
 *  - a replica computes one INFER at a time; with max_batch > 1, compatible
 *    queued jobs are concatenated along dimension 0 into one INFER (up to
 *    max_batch rows) and the outputs split back (scheduler/batch.h); an
 *    idle replica waits up to max_queue_delay_us for a fuller batch, but
 *    only while the last INFER was a batch (requests arriving one at a
 *    time are not delayed);
 *  - a job whose runtime dies is retried once; one that was on two
 *    runtimes that crashed is quarantined (SCHED_QUARANTINED), and the
 *    same input sent again is refused at once; a runtime that computes
 *    past its deadline or misses a PING is killed and restarted with
 *    exponential backoff.  While every runtime of a deployment is down
 *    and none restarts within 2 s, jobs are refused (SCHED_UNAVAILABLE)
 *    instead of queued;
 *  - between min_replicas and max_replicas, a deployment grows with its
 *    queue and shrinks when a replica idles (see sched_config). */
#ifndef SCHEDULER_SCHED_H
#define SCHEDULER_SCHED_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc.h"

struct event_base;
struct sched;
struct sched_job;

struct sched_config {
	const char	*runtime_path;	/* bin/maas-runtime */
	uid_t		 uid;		/* runtimes drop to this when root */
	gid_t		 gid;
	int		 mem_limit_mb;	/* per runtime, 0: none */
	size_t		 max_queue;	/* jobs per deployment, 0: 1024 */
	int		 ping_interval_ms;	/* idle replicas, 0: 5000 */
	int		 ping_timeout_ms;	/* PONG deadline, 0: 10000 */
	/* A replica computing one INFER for longer than this is killed as
	 * hung (0: 10000).  The deadline stretches for jobs that a
	 * deployment's own recent service times say are slow. */
	int		 compute_timeout_ms;
	/* Autoscaling (deployments with min_replicas < max_replicas): add a
	 * replica after the queue held 2 requests per replica this long (0:
	 * 1000), remove one after a replica idled this long (0: 30000). */
	int		 autoscale_up_ms;
	int		 autoscale_idle_ms;
	/* Node memory for replicas, in bytes (0: unlimited); see "node
	 * memory budget" below. */
	uint64_t	 memory_budget;
};

struct sched_deploy_spec {
	const char	*name;		/* public name */
	const char	*model;		/* registered model name */
	const char	*version;	/* registered model version */
	const char	*path;		/* model file */
	int		 replicas;	/* to start with */
	int		 min_replicas;	/* autoscaling bounds, 0: replicas */
	int		 max_replicas;
	int		 threads;	/* OpenBLAS threads per replica */
	int		 max_batch;	/* rows per INFER, <= 1: no batching */
	int64_t		 max_queue_delay_us;	/* wait to fill a batch */
	uint64_t	 mem_bytes;	/* per replica, from registration */
	uint64_t	 file_bytes;	/* model files, shared by replicas */
};

enum sched_status {
	SCHED_OK = 0,
	SCHED_BAD_INPUT,	/* the runtime rejected the input */
	SCHED_TOO_LARGE,	/* beyond the runtime's limits */
	SCHED_INTERNAL,		/* the runtime failed computing it */
	SCHED_UNAVAILABLE,	/* replicas died with it, or none can start */
	SCHED_OVERLOADED,	/* queue full */
	SCHED_SHUTDOWN,		/* maasd is stopping */
	SCHED_TIMED_OUT,	/* not started before its deadline */
	SCHED_QUARANTINED,	/* it crashed two runtimes: never retried */
	SCHED_CANCELLED,	/* the caller lost interest (stats only) */
	SCHED_CONTEXT,		/* the prompt does not fit the context */
	SCHED_STATUS_MAX
};

enum sched_priority {
	SCHED_PRIO_HIGH = 0,
	SCHED_PRIO_NORMAL,
	SCHED_PRIO_LOW,
	SCHED_PRIO_MAX
};

/* How a job is queued.  tenant_id is copied. */
struct sched_job_opts {
	const char		*tenant_id;	/* fair-queuing flow */
	unsigned		 weight;	/* 1..SCHED_WEIGHT_MAX; 0: 1 */
	enum sched_priority	 priority;	/* within the tenant */
	int64_t			 timeout_us;	/* to start; 0: 30 s */
	const char		*version;	/* pinned; NULL: by weight */
};
#define SCHED_WEIGHT_MAX	1000
#define SCHED_DEFAULT_TIMEOUT_US	(30 * 1000000LL)

struct sched_result {
	enum sched_status	 status;
	const uint8_t		*payload;	/* INFER_OK tensors, borrowed */
	size_t			 len;
	const char		*message;	/* error text, borrowed */
	const char		*version;	/* version that served it */
	int64_t			 queue_us;	/* submit to (last) start */
	int64_t			 compute_us;	/* its share of the INFER */
	int			 retry_after_s;	/* SCHED_OVERLOADED: a hint */
	unsigned		 attempts;	/* runtimes it was sent to */
	unsigned		 batch_rows;	/* rows of its INFER */
};

/* Called once per job on the loop thread; the result is borrowed for the
 * duration of the call. */
typedef void	sched_done_fn(void *arg, const struct sched_result *);
/* meta is NULL on failure; error is then a message naming the problem. */
typedef void	sched_probe_fn(void *arg, const struct ipc_meta *meta,
		    const char *error);

struct sched	*sched_new(struct event_base *, const struct sched_config *);
/* Kills every runtime (EOF first, SIGKILL after a grace period), fails
 * queued jobs with SCHED_SHUTDOWN.  NULL is ok. */
void		 sched_free(struct sched *);

/* Loads the model at path in a throw-away runtime and reports its metadata
 * or why it cannot be loaded. */
void		 sched_probe(struct sched *, const char *path,
		    sched_probe_fn *, void *arg);

/* Creates a deployment and starts its replicas.  -1 if the name exists. */
int		 sched_deploy(struct sched *, const struct sched_deploy_spec *);
/* Sets a deployment's replica count and autoscaling bounds (0: replicas;
 * 1 <= min <= replicas <= max <= 64).  Extra replicas drain: they take no
 * new job, finish the one they compute and then stop; no request is lost.
 * -1 if no such deployment or the numbers are out of bounds. */
int		 sched_scale(struct sched *, const char *name, int replicas,
		    int min_replicas, int max_replicas);

/* One version of a deployment's traffic split. */
struct sched_version_spec {
	const char	*version;
	const char	*path;		/* model file */
	unsigned	 weight;	/* 0: drain and stop */
	int		 replicas;	/* 0: keep (1 when new) */
	uint64_t	 mem_bytes;	/* as in sched_deploy_spec */
	uint64_t	 file_bytes;
};
/* Sets the versions a deployment's name serves and their weights: new
 * versions start replicas (threads and batching copied from the
 * deployment), versions left out or at weight 0 take no new request,
 * finish what they have queued and running, then stop.  -1 if no such
 * deployment, no version has a weight, or a number is out of bounds. */
int		 sched_traffic(struct sched *, const char *name,
		    const struct sched_version_spec *, size_t n);
/* Drains every version of a deployment and forgets it: new requests see
 * no such deployment, queued and running ones finish.  -1 if none. */
int		 sched_remove(struct sched *, const char *name);
/* A version to send a request to, with probability weight / sum among
 * the versions whose model has loaded; NULL if none.  Borrowed until the
 * deployment changes. */
const char	*sched_pick(struct sched *, const char *name);
/* Metadata of one version once it loaded (a draining one too, for what
 * sched_pick() returns), else NULL; *exists tells whether the deployment
 * serves that version (not draining). */
const struct ipc_meta *sched_meta_version(struct sched *, const char *name,
		    const char *version, bool *exists);

/* Metadata of a deployment's model once a replica said HELLO, else NULL.
 * Borrowed until the deployment changes. */
const struct ipc_meta *sched_meta(struct sched *, const char *name,
		    const char **version);
bool		 sched_exists(struct sched *, const char *name);
/* True when the deployment has at least one live replica. */
bool		 sched_deployment_ready(struct sched *, const char *name);
/* True when every deployment has at least one live replica. */
bool		 sched_ready(struct sched *);
/* Live replica processes' pids of a deployment, for tests and metrics;
 * returns how many were written (at most max). */
size_t		 sched_replica_pids(struct sched *, const char *name,
		    pid_t *pids, size_t max);

/* Queues a job for a deployment.  Takes ownership of payload's memory (the
 * wbuf is emptied).  done is called exactly once unless the job is
 * cancelled first.  Returns NULL, having called nothing, if the deployment
 * does not exist; returns NULL after calling done (SCHED_OVERLOADED or
 * SCHED_SHUTDOWN) if the job cannot be queued.  opts NULL: tenant "",
 * weight 1, normal priority, default timeout. */
struct sched_job *sched_submit_opts(struct sched *, const char *name,
		    const struct sched_job_opts *, struct wbuf *payload,
		    sched_done_fn *done, void *arg);
/* sched_submit_opts() with default options for tenant_id. */
struct sched_job *sched_submit(struct sched *, const char *name,
		    const char *tenant_id, struct wbuf *payload,
		    sched_done_fn *done, void *arg);
/* The caller lost interest (client went away): done will not be called.
 * A job already on a replica finishes there and its result is dropped. */
void		 sched_cancel(struct sched_job *);
/* --- streaming generation jobs (GGUF deployments) ---
 * payload is an IPC GENERATE payload (struct ipc_gen_req).  The job is
 * queued and fair-shared like any other; a replica runs up to its HELLO's
 * max_seqs of them at once (continuous batching).  on_token is called for
 * every TOKEN frame (payload borrowed for the call), then done exactly once
 * with the DONE payload (status SCHED_OK) or an error.  A job that has
 * produced a token is never retried on another replica.
 * sched_stream_cancel: the client went away; a queued job ends at once
 * (done with SCHED_CANCELLED, no payload), a running one is sent CANCEL and
 * done comes with the runtime's DONE (SCHED_CANCELLED, payload set: the
 * tokens produced are billed).  on_token is not called any more. */
typedef void	sched_token_fn(void *arg, const uint8_t *payload, size_t len);
struct sched_job *sched_submit_stream(struct sched *, const char *name,
		    const struct sched_job_opts *, struct wbuf *payload,
		    sched_token_fn *on_token, sched_done_fn *done, void *arg);
void		 sched_stream_cancel(struct sched_job *);

/* Jobs queued or running. */
size_t		 sched_inflight(struct sched *);

/* --- node memory budget ---
 * Each replica reserves its model's mem_bytes (private memory: the heap,
 * the activation arena; the registration's figure until a replica's
 * HELLO gives its own), and each model file that has replicas reserves
 * its size once: replicas map the weights read-only and share those
 * pages.  Only versions that serve count; draining ones are on their way
 * out.  The check is the caller's: the sched_mem_*() functions say by
 * how many bytes a change would go past cfg.memory_budget, 0 when it fits,
 * when it does not grow the reservation, or with no budget.  The
 * autoscaler stops growing a deployment at the budget.
 *
 * A change applied later (after a database write) takes the
 * sched_mem_hold_*() form: when it fits, what it adds is held in *hold
 * until sched_mem_release(), so that other changes checked meanwhile
 * count it.  Release it right after applying the change (sched_deploy(),
 * sched_scale(), sched_traffic()), or when giving up on it; *hold is NULL
 * when the change does not fit.  A hold may outlive the scheduler (it is
 * then only freed). */
struct sched_memory {
	uint64_t	 budget;	/* 0: unlimited */
	uint64_t	 reserved;	/* by serving replicas now */
};
void		 sched_memory(struct sched *, struct sched_memory *);
uint64_t	 sched_mem_deploy(struct sched *,
		    const struct sched_deploy_spec *);
uint64_t	 sched_mem_scale(struct sched *, const char *name,
		    int replicas);
uint64_t	 sched_mem_traffic(struct sched *, const char *name,
		    const struct sched_version_spec *, size_t n);
struct sched_mem_hold;
uint64_t	 sched_mem_hold_deploy(struct sched *,
		    const struct sched_deploy_spec *, struct sched_mem_hold **);
uint64_t	 sched_mem_hold_scale(struct sched *, const char *name,
		    int replicas, struct sched_mem_hold **);
uint64_t	 sched_mem_hold_traffic(struct sched *, const char *name,
		    const struct sched_version_spec *, size_t n,
		    struct sched_mem_hold **);
void		 sched_mem_release(struct sched_mem_hold *);	/* NULL ok */

/* --- statistics, for metrics --- */
/* Histogram bucket upper bounds; counts are per bucket (not cumulative),
 * with one more bucket for +Inf. */
#define SCHED_TIME_BUCKETS	16
#define SCHED_ROWS_BUCKETS	11
extern const int64_t	sched_time_bounds_us[SCHED_TIME_BUCKETS];
extern const unsigned	sched_rows_bounds[SCHED_ROWS_BUCKETS];

struct sched_time_hist {
	uint64_t	counts[SCHED_TIME_BUCKETS + 1];
	uint64_t	n;
	int64_t		sum_us;
};

struct sched_rows_hist {
	uint64_t	counts[SCHED_ROWS_BUCKETS + 1];
	uint64_t	n;
	uint64_t	sum;
};

struct sched_tenant_stats {
	const char		*tenant_id;
	unsigned		 weight;
	size_t			 queued;
	uint64_t		 requests[SCHED_STATUS_MAX];	/* finished */
	struct sched_time_hist	 queue;		/* of jobs that started */
	struct sched_time_hist	 compute;	/* of SCHED_OK jobs */
};

struct sched_deploy_stats {
	const char		*name;
	size_t			 queued;
	size_t			 running;	/* on replicas */
	int			 replicas;	/* wanted */
	int			 min_replicas;
	int			 max_replicas;
	uint64_t		 scale_ups;	/* by the autoscaler */
	uint64_t		 scale_downs;
	/* The autoscaler wants another replica that the node's memory
	 * budget has no room for (the queue is served by what runs). */
	bool			 at_memory_budget;
	int			 live;		/* serving */
	uint64_t		 restarts;	/* runtime restarts */
	uint64_t		 retries;	/* jobs re-run after a death */
	uint64_t		 hangs;		/* runtimes killed as hung */
	struct sched_rows_hist	 batch;		/* rows per INFER */
};

/* Calls dep_fn once per deployment and tenant_fn once per tenant that has
 * used it; the structs are borrowed for the call. */
typedef void	sched_dep_stats_fn(void *arg,
		    const struct sched_deploy_stats *);
typedef void	sched_tenant_stats_fn(void *arg, const char *deployment,
		    const struct sched_tenant_stats *);
void		 sched_stats(struct sched *, sched_dep_stats_fn *,
		    sched_tenant_stats_fn *, void *arg);
/* "ok", "bad_input", ..., for labels and logs. */
const char	*sched_status_name(enum sched_status);
#endif
