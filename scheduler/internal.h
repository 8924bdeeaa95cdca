/* scheduler/internal.h - structures shared by the scheduler's modules:
 * sched.c (deployments, placement), fairq.c (per-tenant queues), batch.c
 * (concatenating and splitting tensors) and replica.c (runtime
 * processes).  Nothing outside scheduler/ includes this. */
#ifndef SCHEDULER_INTERNAL_H
#define SCHEDULER_INTERNAL_H
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "common/wire.h"
#include "scheduler/fairq.h"
#include "scheduler/replica.h"
#include "scheduler/sched.h"

struct sched_job {
	/* In its flow's FIFO while queued; in its replica's batch while
	 * computing; never both. */
	TAILQ_ENTRY(sched_job)	 entry;
	struct deployment	*dep;
	struct flow		*flow;		/* its tenant's queue */
	struct replica		*on;		/* replica computing it */
	uint64_t		 id;		/* for logs (not the INFER's) */
	enum sched_priority	 prio;
	struct wbuf		 payload;	/* INFER body, kept to retry */
	sched_done_fn		*done;
	void			*arg;
	struct event		 deadline_ev;	/* pending while queued */
	int64_t			 enqueued_us;
	int64_t			 started_us;	/* last sent to a replica */
	int64_t			 timeout_us;	/* to start, from enqueued_us */
	uint64_t		 sig;		/* batch compatibility hash */
	uint32_t		 rows;		/* dim 0 of inputs, 0: none */
	uint8_t			 attempts;	/* runtimes that died with it */
	uint8_t			 crashes;	/* deaths it may have caused */
	bool			 solo;		/* never batch it again */
	bool			 queued;	/* in its flow's FIFO */
	bool			 in_rows;	/* in dep->queued_rows */
	bool			 cancelled;	/* result is dropped */
	/* Streaming generation (GGUF): several run on one replica, each
	 * under its own IPC request id. */
	sched_token_fn		*on_token;	/* non-NULL: a stream */
	uint64_t		 ipc_id;	/* its GENERATE's id */
	bool			 streamed;	/* a TOKEN came: never retried */
	bool			 stopping;	/* CANCEL asked: no more tokens */
};

#define SCHED_QUARANTINE_MAX	64	/* inputs remembered per deployment */
#define SCHED_DIGEST_LEN	32	/* SHA-256 */

struct deployment {
	TAILQ_ENTRY(deployment)	 entry;
	struct sched		*s;
	char			*name;
	char			*model;
	char			*version;
	char			*path;
	unsigned		 weight;	/* share of its name's traffic */
	/* Weight 0 or deleted: takes no new job, drains its queue and
	 * replicas, then is gone (kept for its retired replicas' sake, and
	 * revived if its version comes back). */
	bool			 retiring;
	bool			 gone;
	int			 threads;
	int			 max_batch;	/* rows per INFER */
	int64_t			 max_delay_us;	/* to wait for a fuller batch */
	bool			 batchable;	/* model's dim 0 is dynamic */
	struct replica		**replicas;	/* n_replicas slots */
	int			 n_replicas;	/* slots, draining ones too */
	int			 wanted;	/* replicas to keep serving */
	int			 min_replicas;	/* autoscaling bounds */
	int			 max_replicas;
	int64_t			 busy_since_us;	/* queue deep since, 0: not */
	int64_t			 idle_since_us;	/* one idle since, 0: not */
	int64_t			 scaled_us;	/* last change of wanted */
	struct ipc_meta		 meta;		/* from the first HELLO */
	bool			 have_meta;
	struct fairq		 q;
	size_t			 queued_rows;	/* of batchable queued jobs */
	size_t			 last_jobs;	/* in the last INFER sent */
	struct event		*batch_ev;	/* waiting to fill a batch */
	int64_t			 us_per_row;	/* EWMA of compute time */
	/* Digests of the INFER payloads that crashed two runtimes, the
	 * newest SCHED_QUARANTINE_MAX: refused at once if sent again. */
	uint8_t			 quarantined[SCHED_QUARANTINE_MAX]
				    [SCHED_DIGEST_LEN];
	size_t			 n_quarantined;
	size_t			 next_quarantined;
	struct sched_deploy_stats stats;
	uint64_t		 gone_restarts;	/* of replicas removed */
	uint64_t		 mem_bytes;	/* per replica (budget) */
	uint64_t		 file_bytes;	/* shared model files */
	bool			 at_budget;	/* autoscaler was held back */
};
TAILQ_HEAD(deployment_list, deployment);
TAILQ_HEAD(sched_mem_hold_list, sched_mem_hold);

struct sched {
	struct event_base	*base;
	struct sched_config	 cfg;
	struct deployment_list	 deployments;
	/* Room held for admin changes checked but not yet applied. */
	struct sched_mem_hold_list mem_holds;
	struct replica		**probes;	/* running probes */
	size_t			 n_probes;
	struct replica		**retired;	/* draining, gone from deps */
	size_t			 n_retired;
	struct event		*sigchld;
	struct event		*autoscale_ev;	/* periodic */
	uint64_t		 next_req_id;
	size_t			 inflight;	/* jobs queued or running */
	struct wbuf		 split;		/* one job's share of a reply */
	bool			 stopping;
};

int64_t	sched_now_us(void);
/* Called by replica.c. */
void	sched_replica_live(struct replica *, const struct ipc_meta *);
/* Finishes a job: records stats, calls done unless cancelled, frees it.
 * res NULL only for cancelled jobs. */
void	sched_job_finish(struct sched_job *, const struct sched_result *);
/* Puts a job that was on a dead replica back at the head of its queue. */
void	sched_job_requeue(struct sched_job *);
void	sched_dispatch(struct deployment *);
void	sched_probe_done(struct replica *);
/* A draining replica is done: it leaves its deployment and retires;
 * freed at once if its process is already reaped. */
void	sched_replica_gone(struct replica *);
/* A retired replica was reaped: frees it. */
void	sched_retired_done(struct replica *);
void	sched_hist_rows(struct sched_rows_hist *, unsigned rows);
/* Remembers a job's input as one that crashes the model. */
void	sched_quarantine(struct sched_job *);
/* memory.c: sched_mem_scale() for one version. */
uint64_t sched_mem_resize(struct deployment *, int replicas);
/* memory.c: at sched_free(), leaves the holds to their owners. */
void	sched_mem_detach(struct sched *);
/* Records an INFER's compute time per row, for hang deadlines. */
void	sched_observe_compute(struct deployment *, int64_t us,
	    uint32_t rows);
#endif
