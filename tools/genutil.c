/* tools/genutil.c - see genutil.h.  A seed must go on giving the same
 * weights, so the stream and its scaling are fixed. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/log.h"
#include "tools/genutil.h"

uint64_t
gen_splitmix64(uint64_t *s)
{
	uint64_t	z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

float
gen_uniform(uint64_t *s, float bound)
{
	float	u = (float)(gen_splitmix64(s) >> 40) * 0x1.0p-24f;

	return (2.0f * u - 1.0f) * bound;
}

long long
gen_num_arg(const char *what, const char *s, long long min, long long max)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		fatalx("%s: '%s' is not a number from %lld to %lld", what, s,
		    min, max);
	return v;
}
