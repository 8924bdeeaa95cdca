/* tools/genutil.h - what the model generators (maas-genmodel,
 * maas-gengguf) share: their seeded random stream and their numeric
 * option parsing. */
#ifndef TOOLS_GENUTIL_H
#define TOOLS_GENUTIL_H
#include <stdint.h>

/* The next value of the splitmix64 stream whose state is *s. */
uint64_t	gen_splitmix64(uint64_t *s);
/* Uniform in [-bound, bound), from 24 random bits (exact in a float). */
float		gen_uniform(uint64_t *s, float bound);
/* s as a decimal integer from min to max; else exits with a message
 * naming the option what. */
long long	gen_num_arg(const char *what, const char *s, long long min,
		    long long max);
#endif
