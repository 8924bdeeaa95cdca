/* tests/unit/alloccount.c - see alloccount.h. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "tests/unit/alloccount.h"

unsigned long	n_allocs;

#ifdef COUNT_ALLOCS
extern void	*__libc_malloc(size_t);
extern void	*__libc_calloc(size_t, size_t);
extern void	*__libc_realloc(void *, size_t);
extern void	*__libc_memalign(size_t, size_t);

void *
malloc(size_t n)
{
	n_allocs++;
	return __libc_malloc(n);
}

void *
calloc(size_t n, size_t m)
{
	n_allocs++;
	return __libc_calloc(n, m);
}

void *
realloc(void *p, size_t n)
{
	n_allocs++;
	return __libc_realloc(p, n);
}

int
posix_memalign(void **p, size_t align, size_t n)
{
	n_allocs++;
	return (*p = __libc_memalign(align, n)) != NULL ? 0 : ENOMEM;
}
#endif
