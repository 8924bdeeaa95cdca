/* runtime/share.h - how both thread pools of maas-runtime (kernels.c for
 * the ONNX operators, llm/model.c for the LLM forward pass) hand a job's
 * items out: cut into one share of consecutive items per thread, each
 * thread claims its own share's items from the front, then the others'
 * from their backs, until none is left.
 *
 * So while all threads run, each one reads one run of consecutive items
 * (a product's weight rows as one stream, whose next rows the kernels
 * prefetch; the same panels of an ONNX product request after request,
 * which then stay in its L2), and a thread that is slow to start or is
 * preempted leaves the rest of its share to the others.  Handing items
 * out in turn instead broke every thread's stream at each item:
 * streaming a 100 MB F16 matrix against four vectors in items of 128 KiB
 * on 2 threads read 10% slower that way.
 *
 * A share is one word on a cache line of its own, packing the job's
 * generation (16 bits), the share's end and its next item (24 bits
 * each), so that one compare-and-swap both sees that an item is left
 * and claims it, and a thread still claiming for an earlier job takes
 * nothing from a later one.  A pool stores whatever its items read (the
 * job) before share_post(), and reads it after share_next() returned an
 * item. */
#ifndef RUNTIME_SHARE_H
#define RUNTIME_SHARE_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHARE_MAX	0xffffffu	/* items of a job, at most */

struct share {
	_Alignas(64) _Atomic uint64_t	w;
};

#define SHARE_GEN(w)	((uint32_t)((w) >> 48))
#define SHARE_END(w)	((uint32_t)((w) >> 24) & SHARE_MAX)
#define SHARE_NEXT(w)	((uint32_t)(w) & SHARE_MAX)

/* Cuts items (<= SHARE_MAX) of job gen into the n shares s[0..n). */
static inline void
share_post(struct share *s, int n, size_t items, uint32_t gen)
{
	for (int i = 0; i < n; i++)
		atomic_store_explicit(&s[i].w, (uint64_t)(gen & 0xffff) << 48 |
		    (uint64_t)(items * (size_t)(i + 1) / (size_t)n) << 24 |
		    (uint64_t)(items * (size_t)i / (size_t)n),
		    memory_order_release);
}

/* An item of job gen, now claimed by thread self (< n): the next of its
 * own share, else the last of another's; -1 if none is left. */
static inline long
share_next(struct share *s, int n, int self, uint32_t gen)
{
	for (int k = 0; k < n; k++) {
		_Atomic uint64_t	*w = &s[(self + k) % n].w;
		uint64_t		 t = atomic_load_explicit(w,
					    memory_order_acquire);

		while (SHARE_NEXT(t) < SHARE_END(t) &&
		    SHARE_GEN(t) == (gen & 0xffff)) {
			uint64_t	c = k == 0 ? t + 1 :
					    t - ((uint64_t)1 << 24);

			/* Fails if another thread took it (t reloaded). */
			if (atomic_compare_exchange_weak_explicit(w, &t, c,
			    memory_order_acq_rel, memory_order_acquire))
				return k == 0 ? (long)SHARE_NEXT(t) :
				    (long)SHARE_END(t) - 1;
		}
	}
	return -1;
}
#endif
