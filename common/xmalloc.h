/* common/xmalloc.h - allocation that never returns NULL.
 * On failure the process logs the size and call site and aborts; the
 * supervisor restarts it.  Sizes from outside must be bounded by the caller
 * before they reach these functions. */
#ifndef COMMON_XMALLOC_H
#define COMMON_XMALLOC_H
#include <stddef.h>

#define xmalloc(n)		xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, m)		xcalloc_at((n), (m), __FILE__, __LINE__)
#define xrealloc(p, n)		xrealloc_at((p), (n), __FILE__, __LINE__)
#define xreallocarray(p, n, m)	xreallocarray_at((p), (n), (m), __FILE__, __LINE__)
#define xstrdup(s)		xstrdup_at((s), __FILE__, __LINE__)
#define xstrndup(s, n)		xstrndup_at((s), (n), __FILE__, __LINE__)

void	*xmalloc_at(size_t, const char *, int);
void	*xcalloc_at(size_t, size_t, const char *, int);
void	*xrealloc_at(void *, size_t, const char *, int);
void	*xreallocarray_at(void *, size_t, size_t, const char *, int);
char	*xstrdup_at(const char *, const char *, int);
char	*xstrndup_at(const char *, size_t, const char *, int);

/* Test builds: make the nth allocation from now fail (0 disables). */
void	 xmalloc_fail_after(unsigned long n);
#endif
