/* scheduler/memory.c - the node memory budget (see sched.h).
 *
 * The reservation is recomputed from the deployments each time it is
 * asked for: there are few of them, and a figure kept up to date at every
 * resize, restart and HELLO would be one more thing to get wrong.  A
 * change is judged by building the list of (model file, bytes per
 * replica, replicas) the node would serve after it.
 *
 * An admin change is checked when it arrives but applied only after its
 * database write, a worker-thread round trip later.  What it adds is held
 * in that list meanwhile (struct sched_mem_hold), so that a second change
 * checked in between sees the room as taken: two concurrent requests
 * cannot both pass the check and together overcommit the node. */
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "scheduler/internal.h"

/* What one serving version holds. */
struct mem_item {
	const char	*path;		/* model file, borrowed */
	uint64_t	 mem;		/* per replica */
	uint64_t	 file;		/* the file's pages, once per path */
	int		 n;		/* replicas */
	const struct deployment *dep;	/* NULL: not deployed yet */
	bool		 held;		/* from a hold, not a deployment */
};

/* Room taken by a change checked but not applied yet: the replicas it
 * adds, as items with no deployment. */
struct sched_mem_hold {
	TAILQ_ENTRY(sched_mem_hold) entry;
	struct sched	*s;		/* NULL once the scheduler is gone */
	size_t		 n;
	struct mem_item	*items;		/* n; paths owned */
};

static size_t	 mem_items(struct sched *, size_t extra, struct mem_item **);
static uint64_t	 mem_sum(const struct mem_item *, size_t);
static uint64_t	 mem_missing(struct sched *, struct mem_item *, size_t,
		    struct sched_mem_hold **);
static void	 mem_hold(struct sched *, const struct mem_item *, size_t,
		    struct sched_mem_hold **);

/* The serving versions and the holds, with room for extra more; caller
 * frees. */
static size_t
mem_items(struct sched *s, size_t extra, struct mem_item **out)
{
	struct deployment	*dep;
	struct sched_mem_hold	*h;
	struct mem_item		*it;
	size_t			 n = 0;

	TAILQ_FOREACH(dep, &s->deployments, entry)
		n++;
	TAILQ_FOREACH(h, &s->mem_holds, entry)
		n += h->n;
	it = xcalloc(n + extra + 1, sizeof(*it));
	n = 0;
	TAILQ_FOREACH(dep, &s->deployments, entry) {
		if (dep->gone || dep->retiring)
			continue;
		it[n++] = (struct mem_item){ dep->path, dep->mem_bytes,
		    dep->file_bytes, dep->wanted, dep, false };
	}
	TAILQ_FOREACH(h, &s->mem_holds, entry)
		for (size_t i = 0; i < h->n; i++)
			it[n++] = h->items[i];
	*out = it;
	return n;
}

static uint64_t
mem_sum(const struct mem_item *it, size_t n)
{
	uint64_t	sum = 0;

	for (size_t i = 0; i < n; i++) {
		size_t	j;

		if (it[i].n <= 0)
			continue;
		sum += (uint64_t)it[i].n * it[i].mem;
		/* A file is mapped once per replica but held once. */
		for (j = 0; j < i; j++)
			if (it[j].n > 0 && it[j].path != NULL &&
			    it[i].path != NULL &&
			    strcmp(it[j].path, it[i].path) == 0)
				break;
		if (j == i)
			sum += it[i].file;
	}
	return sum;
}

/* Frees it.  With hold non-NULL, a change that fits is also held. */
static uint64_t
mem_missing(struct sched *s, struct mem_item *it, size_t n,
    struct sched_mem_hold **hold)
{
	struct sched_memory	now;
	uint64_t		after = mem_sum(it, n), missing = 0;

	sched_memory(s, &now);
	if (now.budget != 0 && after > now.budget && after > now.reserved)
		missing = after - now.budget;
	if (hold != NULL) {
		*hold = NULL;
		if (missing == 0)
			mem_hold(s, it, n, hold);
	}
	free(it);
	return missing;
}

/* Holds what the list it (as a change leaves it) adds to the node: new
 * versions whole, serving ones by the replicas they gain. */
static void
mem_hold(struct sched *s, const struct mem_item *it, size_t n,
    struct sched_mem_hold **out)
{
	struct sched_mem_hold	*h = xcalloc(1, sizeof(*h));

	h->s = s;
	h->items = xcalloc(n + 1, sizeof(*h->items));
	for (size_t i = 0; i < n; i++) {
		struct mem_item	 m = it[i];

		if (m.held)
			continue;
		if (m.dep != NULL)
			m.n -= m.dep->wanted;
		if (m.n <= 0 || m.path == NULL)
			continue;
		m.path = xstrdup(m.path);
		m.dep = NULL;
		m.held = true;
		h->items[h->n++] = m;
	}
	TAILQ_INSERT_TAIL(&s->mem_holds, h, entry);
	*out = h;
}

void
sched_mem_release(struct sched_mem_hold *h)
{
	if (h == NULL)
		return;
	if (h->s != NULL)
		TAILQ_REMOVE(&h->s->mem_holds, h, entry);
	for (size_t i = 0; i < h->n; i++)
		free((char *)(uintptr_t)h->items[i].path);
	free(h->items);
	free(h);
}

void
sched_mem_detach(struct sched *s)
{
	struct sched_mem_hold	*h;

	/* Their owners may still release them, after the scheduler. */
	while ((h = TAILQ_FIRST(&s->mem_holds)) != NULL) {
		TAILQ_REMOVE(&s->mem_holds, h, entry);
		h->s = NULL;
	}
}

void
sched_memory(struct sched *s, struct sched_memory *m)
{
	struct mem_item	*it;
	size_t		 n = mem_items(s, 0, &it);

	m->budget = s->cfg.memory_budget;
	m->reserved = mem_sum(it, n);
	free(it);
}

uint64_t
sched_mem_deploy(struct sched *s, const struct sched_deploy_spec *spec)
{
	return sched_mem_hold_deploy(s, spec, NULL);
}

uint64_t
sched_mem_hold_deploy(struct sched *s, const struct sched_deploy_spec *spec,
    struct sched_mem_hold **hold)
{
	struct mem_item	*it;
	size_t		 n = mem_items(s, 1, &it);

	it[n++] = (struct mem_item){ spec->path, spec->mem_bytes,
	    spec->file_bytes, spec->replicas > 0 ? spec->replicas : 1, NULL,
	    false };
	return mem_missing(s, it, n, hold);
}

uint64_t
sched_mem_scale(struct sched *s, const char *name, int replicas)
{
	return sched_mem_hold_scale(s, name, replicas, NULL);
}

uint64_t
sched_mem_hold_scale(struct sched *s, const char *name, int replicas,
    struct sched_mem_hold **hold)
{
	struct deployment	*dep;
	struct mem_item		*it;
	size_t			 n;

	/* sched_scale() resizes the version sched_find() returns: the
	 * first serving one of that name. */
	TAILQ_FOREACH(dep, &s->deployments, entry)
		if (!dep->gone && !dep->retiring &&
		    strcmp(dep->name, name) == 0)
			break;
	n = mem_items(s, 0, &it);
	for (size_t i = 0; dep != NULL && i < n; i++)
		if (it[i].dep == dep)
			it[i].n = replicas;
	return mem_missing(s, it, n, hold);
}

uint64_t
sched_mem_resize(struct deployment *d, int replicas)
{
	struct mem_item	*it;
	size_t		 n = mem_items(d->s, 0, &it);

	for (size_t i = 0; i < n; i++)
		if (it[i].dep == d)
			it[i].n = replicas;
	return mem_missing(d->s, it, n, NULL);
}

uint64_t
sched_mem_traffic(struct sched *s, const char *name,
    const struct sched_version_spec *v, size_t nv)
{
	return sched_mem_hold_traffic(s, name, v, nv, NULL);
}

uint64_t
sched_mem_hold_traffic(struct sched *s, const char *name,
    const struct sched_version_spec *v, size_t nv,
    struct sched_mem_hold **hold)
{
	struct deployment	*dep;
	struct mem_item		*it;
	size_t			 n = mem_items(s, nv, &it);

	/* As sched_traffic() will leave it: versions not listed with a
	 * weight drain; listed ones keep or take their replica count;
	 * retired ones come back; new ones start. */
	for (size_t i = 0; i < n; i++) {
		size_t	k;

		if (it[i].dep == NULL || strcmp(it[i].dep->name, name) != 0)
			continue;
		for (k = 0; k < nv; k++)
			if (v[k].weight > 0 &&
			    strcmp(v[k].version, it[i].dep->version) == 0)
				break;
		if (k == nv)
			it[i].n = 0;
		else if (v[k].replicas > 0)
			it[i].n = v[k].replicas;
	}
	for (size_t k = 0; k < nv; k++) {
		bool	serving = false;

		if (v[k].weight == 0)
			continue;
		TAILQ_FOREACH(dep, &s->deployments, entry)
			if (!dep->gone && !dep->retiring &&
			    strcmp(dep->name, name) == 0 &&
			    strcmp(dep->version, v[k].version) == 0)
				serving = true;
		if (serving)
			continue;
		it[n++] = (struct mem_item){ v[k].path, v[k].mem_bytes,
		    v[k].file_bytes, v[k].replicas > 0 ? v[k].replicas : 1,
		    NULL, false };
	}
	return mem_missing(s, it, n, hold);
}
