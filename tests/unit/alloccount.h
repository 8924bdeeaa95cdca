/* tests/unit/alloccount.h - counts the process's heap allocations, so a
 * test can show that serving a shape seen before allocates nothing.
 * alloccount.c replaces malloc, calloc, realloc and posix_memalign with
 * counting wrappers around glibc's own entry points.  Under ASan, which
 * has its own allocator, nothing is counted and COUNT_ALLOCS is left
 * undefined. */
#ifndef TESTS_UNIT_ALLOCCOUNT_H
#define TESTS_UNIT_ALLOCCOUNT_H
#if !defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS	1
#endif

extern unsigned long	n_allocs;	/* allocations so far */
#endif
