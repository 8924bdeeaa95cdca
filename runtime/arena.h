/* runtime/arena.h - the grow-only activation buffer of maas-runtime.
 * The executor plans offsets into one block per request shape; the block
 * only ever grows, so once the largest shape has been seen serving
 * allocates nothing.  Contents are not preserved across growth. */
#ifndef RUNTIME_ARENA_H
#define RUNTIME_ARENA_H
#include <stddef.h>

#define ARENA_ALIGN	64	/* offsets planned into an arena use this */

struct arena {
	void	*base;		/* owned; ARENA_ALIGN-aligned, or NULL */
	size_t	 cap;		/* bytes at base */
};

void	arena_init(struct arena *);
void	arena_release(struct arena *);	/* accepts a zeroed arena */
/* Ensures cap >= n; 0, or -1 if memory is short (the arena is then
 * unchanged).  Never shrinks. */
int	arena_reserve(struct arena *, size_t n);
#endif
