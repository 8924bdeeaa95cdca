/* runtime/arena.c - see arena.h.  Uses posix_memalign directly rather
 * than xmalloc: a request asking for too much memory is refused with
 * IPC_ERR_TOO_LARGE, it must not kill the runtime. */
#include <stdlib.h>

#include "runtime/arena.h"

void
arena_init(struct arena *a)
{
	a->base = NULL;
	a->cap = 0;
}

void
arena_release(struct arena *a)
{
	if (a == NULL)
		return;
	free(a->base);
	arena_init(a);
}

int
arena_reserve(struct arena *a, size_t n)
{
	void	*p;

	if (n <= a->cap)
		return 0;
	if (posix_memalign(&p, ARENA_ALIGN, n) != 0)
		return -1;
	free(a->base);
	a->base = p;
	a->cap = n;
	return 0;
}
