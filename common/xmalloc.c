/* common/xmalloc.c - see xmalloc.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"

static unsigned long	xm_fail_countdown;

static void	xm_die(size_t, const char *, int)
		    __attribute__((noreturn));

void
xmalloc_fail_after(unsigned long n)
{
	xm_fail_countdown = n;
}

static void
xm_die(size_t n, const char *file, int line)
{
	char	msg[256];
	int	len;

	len = snprintf(msg, sizeof(msg),
	    "fatal: out of memory allocating %zu bytes at %s:%d\n",
	    n, file, line);
	if (len > 0)
		(void)!write(STDERR_FILENO, msg,
		    (size_t)len < sizeof(msg) ? (size_t)len : sizeof(msg) - 1);
	abort();
}

static int
xm_injected(void)
{
	if (xm_fail_countdown == 0)
		return 0;
	return --xm_fail_countdown == 0;
}

void *
xmalloc_at(size_t n, const char *file, int line)
{
	void	*p;

	if (n == 0)
		n = 1;
	if (xm_injected() || (p = malloc(n)) == NULL)
		xm_die(n, file, line);
	return p;
}

void *
xcalloc_at(size_t n, size_t m, const char *file, int line)
{
	void	*p;

	if (n == 0 || m == 0)
		n = m = 1;
	if (m > SIZE_MAX / n)
		xm_die(SIZE_MAX, file, line);
	if (xm_injected() || (p = calloc(n, m)) == NULL)
		xm_die(n * m, file, line);
	return p;
}

void *
xrealloc_at(void *old, size_t n, const char *file, int line)
{
	void	*p;

	if (n == 0)
		n = 1;
	if (xm_injected() || (p = realloc(old, n)) == NULL)
		xm_die(n, file, line);
	return p;
}

void *
xreallocarray_at(void *old, size_t n, size_t m, const char *file, int line)
{
	if (m != 0 && n > SIZE_MAX / m)
		xm_die(SIZE_MAX, file, line);
	return xrealloc_at(old, n * m, file, line);
}

char *
xstrdup_at(const char *s, const char *file, int line)
{
	size_t	 n = strlen(s) + 1;
	char	*p = xmalloc_at(n, file, line);

	memcpy(p, s, n);
	return p;
}

char *
xstrndup_at(const char *s, size_t max, const char *file, int line)
{
	size_t	 n = strnlen(s, max);
	char	*p = xmalloc_at(n + 1, file, line);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
