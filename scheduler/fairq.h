/* scheduler/fairq.h - a deployment's queue: one FIFO per tenant and
 * priority, served by weighted fair queuing.
 *
 * Each tenant is a flow.  When a flow has a job at its head, that job
 * carries a virtual finish tag
 *	F = max(vtime, the flow's last finish) + cost / weight
 * and the queue serves the smallest tag first (ties: the flow with fewer
 * jobs in the system, then the older tag).  vtime is the virtual start of
 * the job served last (self-clocked), so a tenant that was idle starts
 * level with the busiest one instead of behind it, and one that sent more
 * than its share waits for the others to catch up.  Tags are computed
 * when a job reaches the head of its flow, so priorities reorder a
 * tenant's own jobs without changing its share.  Cost is 1 per request.
 *
 * Flows are kept for the deployment's lifetime (tenants are few and made
 * by an operator); they also hold the tenant's statistics.  Not
 * thread-safe; the scheduler's loop thread only. */
#ifndef SCHEDULER_FAIRQ_H
#define SCHEDULER_FAIRQ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "scheduler/sched.h"

struct sched_job;
/* Jobs in a FIFO, or in a replica's INFER. */
TAILQ_HEAD(job_queue, sched_job);

/* Virtual time unit of one request at weight 1: divisible by every weight
 * up to 16, so common weights keep exact tags. */
#define FAIRQ_COST	720720ULL

struct flow {
	char			 tenant_id[64];
	unsigned		 weight;
	struct job_queue	 fifo[SCHED_PRIO_MAX];
	size_t			 queued;	/* jobs in fifo[] */
	size_t			 running;	/* jobs on replicas */
	uint64_t		 last_finish;	/* tag of its last served job */
	uint64_t		 head_start;	/* of the head job's tag */
	uint64_t		 head_tag;	/* valid while queued > 0 */
	uint64_t		 head_seq;	/* tie-break: when tagged */
	size_t			 heap_idx;	/* in heap, or FAIRQ_NONE */
	struct flow		*hnext;		/* hash chain */
	TAILQ_ENTRY(flow)	 entry;		/* fairq.flows, oldest first */
	struct sched_tenant_stats stats;	/* tenant_id points above */
};
TAILQ_HEAD(flow_list, flow);
#define FAIRQ_NONE	((size_t)-1)

struct fairq {
	struct flow		**buckets;	/* hash of flows by tenant */
	size_t			 n_buckets;	/* power of two */
	size_t			 n_flows;
	struct flow_list	 flows;
	struct flow		**heap;		/* flows with queued jobs */
	size_t			 n_heap;
	size_t			 heap_cap;
	uint64_t		 vtime;
	uint64_t		 seq;
	size_t			 queued;	/* jobs in every flow */
};

void		 fairq_init(struct fairq *);
/* Frees the flows; the queue must be empty. */
void		 fairq_release(struct fairq *);
/* The tenant's flow, created on first use with weight 1. */
struct flow	*fairq_flow(struct fairq *, const char *tenant_id);
/* Appends job (job->flow and job->prio set) to its flow's FIFO. */
void		 fairq_push(struct fairq *, struct sched_job *);
/* Puts job back at the head of its flow's FIFO (a retry). */
void		 fairq_push_front(struct fairq *, struct sched_job *);
/* The job fair queuing serves next, left queued; NULL if empty. */
struct sched_job *fairq_peek(const struct fairq *);
/* Removes and returns the job fair queuing serves next, advances virtual
 * time and counts the job as running in its flow; NULL if empty. */
struct sched_job *fairq_pop(struct fairq *);
/* A popped job of f left its replica (finished, or to be pushed back). */
void		 fairq_finished(struct fairq *, struct flow *);
/* Takes a queued job out (cancelled, expired, dropped); it does not
 * consume its flow's share. */
void		 fairq_remove(struct fairq *, struct sched_job *);
/* When the queue is full: the job to refuse so that a new one of
 * tenant_id fits, the newest lowest-priority job of the flow with most
 * queued jobs if that flow has more than tenant_id's; NULL to refuse the
 * new job itself. */
struct sched_job *fairq_victim(const struct fairq *, const char *tenant_id);
#endif
