/* scheduler/fairq.c - see fairq.h.
 *
 * Backlogged flows sit in a binary min-heap ordered by their head job's
 * tag, so picking the next job costs O(log flows) however many jobs are
 * queued.  Flows are found by tenant through a chained hash that doubles
 * when it gets as long as it is wide. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "scheduler/internal.h"

#define FAIRQ_BUCKETS_MIN	16

static uint64_t	flow_hash(const char *);
static bool	flow_before(const struct flow *, const struct flow *);
static void	heap_swap(struct fairq *, size_t, size_t);
static void	heap_up(struct fairq *, size_t);
static void	heap_down(struct fairq *, size_t);
static void	heap_insert(struct fairq *, struct flow *);
static void	heap_delete(struct fairq *, struct flow *);
static void	heap_fix(struct fairq *, struct flow *);
static void	flow_tag(struct fairq *, struct flow *);
static struct sched_job *flow_head(const struct flow *);

void
fairq_init(struct fairq *q)
{
	memset(q, 0, sizeof(*q));
	q->n_buckets = FAIRQ_BUCKETS_MIN;
	q->buckets = xcalloc(q->n_buckets, sizeof(*q->buckets));
	TAILQ_INIT(&q->flows);
}

void
fairq_release(struct fairq *q)
{
	struct flow	*f;

	while ((f = TAILQ_FIRST(&q->flows)) != NULL) {
		TAILQ_REMOVE(&q->flows, f, entry);
		free(f);
	}
	free(q->buckets);
	free(q->heap);
	memset(q, 0, sizeof(*q));
}

/* FNV-1a: tenant ids are ours, not chosen by an attacker. */
static uint64_t
flow_hash(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct flow *
fairq_flow(struct fairq *q, const char *tenant_id)
{
	uint64_t	 h = flow_hash(tenant_id);
	struct flow	*f;

	for (f = q->buckets[h & (q->n_buckets - 1)]; f != NULL; f = f->hnext)
		if (strcmp(f->tenant_id, tenant_id) == 0)
			return f;
	if (q->n_flows >= q->n_buckets) {
		size_t		 n = q->n_buckets * 2;
		struct flow	**b = xcalloc(n, sizeof(*b)), *g;

		TAILQ_FOREACH(g, &q->flows, entry) {
			size_t	i = flow_hash(g->tenant_id) & (n - 1);

			g->hnext = b[i];
			b[i] = g;
		}
		free(q->buckets);
		q->buckets = b;
		q->n_buckets = n;
	}
	f = xcalloc(1, sizeof(*f));
	snprintf(f->tenant_id, sizeof(f->tenant_id), "%s", tenant_id);
	f->weight = 1;
	for (int p = 0; p < SCHED_PRIO_MAX; p++)
		TAILQ_INIT(&f->fifo[p]);
	f->heap_idx = FAIRQ_NONE;
	f->last_finish = q->vtime;
	f->stats.tenant_id = f->tenant_id;
	f->hnext = q->buckets[h & (q->n_buckets - 1)];
	q->buckets[h & (q->n_buckets - 1)] = f;
	TAILQ_INSERT_TAIL(&q->flows, f, entry);
	q->n_flows++;
	return f;
}

/* --- the heap of backlogged flows --- */

static bool
flow_before(const struct flow *a, const struct flow *b)
{
	if (a->head_tag != b->head_tag)
		return a->head_tag < b->head_tag;
	/* Equal tags: the tenant with less in the system goes first, which
	 * is what keeps an interactive tenant's latency low beside a
	 * flooding one without changing either's share. */
	if (a->queued + a->running != b->queued + b->running)
		return a->queued + a->running < b->queued + b->running;
	return a->head_seq < b->head_seq;
}

static void
heap_swap(struct fairq *q, size_t i, size_t j)
{
	struct flow	*t = q->heap[i];

	q->heap[i] = q->heap[j];
	q->heap[j] = t;
	q->heap[i]->heap_idx = i;
	q->heap[j]->heap_idx = j;
}

static void
heap_up(struct fairq *q, size_t i)
{
	while (i > 0 && flow_before(q->heap[i], q->heap[(i - 1) / 2])) {
		heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct fairq *q, size_t i)
{
	for (;;) {
		size_t	l = 2 * i + 1, r = l + 1, m = i;

		if (l < q->n_heap && flow_before(q->heap[l], q->heap[m]))
			m = l;
		if (r < q->n_heap && flow_before(q->heap[r], q->heap[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(q, i, m);
		i = m;
	}
}

static void
heap_insert(struct fairq *q, struct flow *f)
{
	if (q->n_heap == q->heap_cap) {
		q->heap_cap = q->heap_cap ? q->heap_cap * 2 : 16;
		q->heap = xreallocarray(q->heap, q->heap_cap,
		    sizeof(*q->heap));
	}
	f->heap_idx = q->n_heap;
	q->heap[q->n_heap++] = f;
	heap_up(q, f->heap_idx);
}

static void
heap_delete(struct fairq *q, struct flow *f)
{
	size_t	i = f->heap_idx;

	f->heap_idx = FAIRQ_NONE;
	if (i != --q->n_heap) {
		struct flow	*m = q->heap[q->n_heap];

		q->heap[i] = m;
		m->heap_idx = i;
		heap_up(q, i);
		heap_down(q, m->heap_idx);
	}
}

/* The flow's order may have changed (its tag, or its load for ties). */
static void
heap_fix(struct fairq *q, struct flow *f)
{
	if (f->heap_idx == FAIRQ_NONE)
		return;
	heap_up(q, f->heap_idx);
	heap_down(q, f->heap_idx);
}

/* Tags the flow's (new) head job. */
static void
flow_tag(struct fairq *q, struct flow *f)
{
	unsigned	w = f->weight ? f->weight : 1;

	f->head_start = q->vtime > f->last_finish ? q->vtime : f->last_finish;
	f->head_tag = f->head_start + FAIRQ_COST / w;
	f->head_seq = ++q->seq;
}

static struct sched_job *
flow_head(const struct flow *f)
{
	for (int p = 0; p < SCHED_PRIO_MAX; p++)
		if (!TAILQ_EMPTY(&f->fifo[p]))
			return TAILQ_FIRST(&f->fifo[p]);
	return NULL;
}

/* --- jobs --- */

void
fairq_push(struct fairq *q, struct sched_job *job)
{
	struct flow	*f = job->flow;

	TAILQ_INSERT_TAIL(&f->fifo[job->prio], job, entry);
	job->queued = true;
	f->queued++;
	f->stats.queued = f->queued;
	q->queued++;
	if (f->heap_idx == FAIRQ_NONE) {
		flow_tag(q, f);
		heap_insert(q, f);
	} else
		heap_fix(q, f);
}

void
fairq_push_front(struct fairq *q, struct sched_job *job)
{
	struct flow	*f = job->flow;

	TAILQ_INSERT_HEAD(&f->fifo[job->prio], job, entry);
	job->queued = true;
	f->queued++;
	f->stats.queued = f->queued;
	q->queued++;
	if (f->heap_idx == FAIRQ_NONE) {
		flow_tag(q, f);
		heap_insert(q, f);
	} else
		heap_fix(q, f);
}

struct sched_job *
fairq_peek(const struct fairq *q)
{
	return q->n_heap ? flow_head(q->heap[0]) : NULL;
}

struct sched_job *
fairq_pop(struct fairq *q)
{
	struct flow		*f;
	struct sched_job	*job;

	if (q->n_heap == 0)
		return NULL;
	f = q->heap[0];
	job = flow_head(f);
	TAILQ_REMOVE(&f->fifo[job->prio], job, entry);
	job->queued = false;
	f->queued--;
	f->stats.queued = f->queued;
	q->queued--;
	q->vtime = f->head_start;
	f->last_finish = f->head_tag;
	f->running++;
	if (f->queued > 0) {
		flow_tag(q, f);
		heap_fix(q, f);
	} else
		heap_delete(q, f);
	return job;
}

void
fairq_finished(struct fairq *q, struct flow *f)
{
	f->running--;
	heap_fix(q, f);
}

void
fairq_remove(struct fairq *q, struct sched_job *job)
{
	struct flow	*f = job->flow;

	TAILQ_REMOVE(&f->fifo[job->prio], job, entry);
	job->queued = false;
	f->queued--;
	f->stats.queued = f->queued;
	q->queued--;
	/* The head's tag stays with the flow: it was the flow's turn, not
	 * that job's. */
	if (f->queued == 0)
		heap_delete(q, f);
	else
		heap_fix(q, f);
}

struct sched_job *
fairq_victim(const struct fairq *q, const char *tenant_id)
{
	const struct flow	*big = NULL;
	size_t			 mine = 0;

	for (size_t i = 0; i < q->n_heap; i++) {
		const struct flow	*f = q->heap[i];

		if (strcmp(f->tenant_id, tenant_id) == 0)
			mine = f->queued;
		if (big == NULL || f->queued > big->queued)
			big = f;
	}
	if (big == NULL || big->queued <= mine + 1)
		return NULL;
	for (int p = SCHED_PRIO_MAX - 1; p >= 0; p--)
		if (!TAILQ_EMPTY(&big->fifo[p]))
			return TAILQ_LAST(&big->fifo[p], job_queue);
	return NULL;
}
