/* scheduler/internal.h - structures shared by sched.c and replica.c.
 * Nothing outside scheduler/ includes this. */
#ifndef SCHEDULER_INTERNAL_H
#define SCHEDULER_INTERNAL_H
#include <sys/queue.h>

#include "common/wire.h"
#include "scheduler/replica.h"
#include "scheduler/sched.h"

struct event;

struct sched_job {
	TAILQ_ENTRY(sched_job)	 entry;		/* in dep->queue while queued */
	struct deployment	*dep;
	struct replica		*on;		/* replica computing it */
	uint64_t		 id;		/* IPC request id */
	char			 tenant_id[64];
	struct wbuf		 payload;	/* INFER body */
	sched_done_fn		*done;
	void			*arg;
	bool			 cancelled;	/* result is dropped */
	int64_t			 enqueued_us;
	int64_t			 started_us;
};
TAILQ_HEAD(job_queue, sched_job);

struct deployment {
	TAILQ_ENTRY(deployment)	 entry;
	struct sched		*s;
	char			*name;
	char			*model;
	char			*version;
	char			*path;
	int			 threads;
	struct replica		**replicas;	/* n_replicas slots */
	int			 n_replicas;
	struct ipc_meta		 meta;		/* from the first HELLO */
	bool			 have_meta;
	struct job_queue	 queue;
	size_t			 queued;
};
TAILQ_HEAD(deployment_list, deployment);

struct sched {
	struct event_base	*base;
	struct sched_config	 cfg;
	struct deployment_list	 deployments;
	struct replica		**probes;	/* running probes */
	size_t			 n_probes;
	struct event		*sigchld;
	uint64_t		 next_req_id;
	size_t			 inflight;	/* jobs queued or running */
	bool			 stopping;
};

int64_t	sched_now_us(void);
/* Called by replica.c. */
void	sched_replica_live(struct replica *, const struct ipc_meta *);
void	sched_job_finish(struct sched_job *, const struct sched_result *);
void	sched_dispatch(struct deployment *);
void	sched_probe_done(struct replica *);
#endif
