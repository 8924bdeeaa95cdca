/* common/cpu.h - the choice between the SIMD kernels a CPU can run and
 * the portable code every build has.
 *
 * MAAS_KERNELS=portable in the environment makes each kernel set
 * (runtime/gemm.c, runtime/llm/quant.c, runtime/llm/pgemm.c) take its
 * portable path, as on a CPU without AVX2 or AVX-512: the tests run the
 * fallbacks on this machine that way, and an operator can rule the
 * vector code out when chasing a numerical difference.  Each set reads it
 * once, before its first use, and keeps its choice for the process's
 * life. */
#ifndef COMMON_CPU_H
#define COMMON_CPU_H
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static inline bool
cpu_portable(void)
{
	const char	*e = getenv("MAAS_KERNELS");

	return e != NULL && strcmp(e, "portable") == 0;
}
#endif
