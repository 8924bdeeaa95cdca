/* bench/onnx/fmapeak.c - the machine's float multiply-add peak, the
 * physical limit of a product-bound model: THREADS threads each run
 * independent chains of vector FMAs on registers alone (12 of ymm, 16
 * registers being all AVX2 has, and 24 of zmm where the CPU has
 * AVX-512), passes of about 0.1 s; each thread times its own passes
 * between barriers, and the peak printed (FLOP/s, 2 a multiply-add, a
 * bare number) is the best pass's sum over the threads of the better of
 * the two widths.  Built and run by bench/onnx/run; never part of maas.
 *
 *   fmapeak THREADS
 */
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS		(1L << 22)
#define PASSES		5
#define MAX_THREADS	64

static pthread_barrier_t	bar;
static int			wide;		/* the CPU has AVX-512F */
static double			rate[MAX_THREADS][2];	/* best FLOP/s */
/* Read at run time, so that no pass is folded away. */
static volatile float		mul = 0.999999f, add = 1e-7f;
static volatile float		sink;

static double
now(void)
{
	struct timespec	t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* FLOPs done: 2 x 8 lanes x 12 chains a step. */
__attribute__((target("avx2,fma"), noinline)) static double
pass8(void)
{
	__m256	a[12], m = _mm256_set1_ps(mul), c = _mm256_set1_ps(add);
	float	out[8];

	for (int i = 0; i < 12; i++)
		a[i] = _mm256_set1_ps((float)i);
	for (long n = 0; n < ITERS; n++) {
#pragma GCC unroll 12
		for (int i = 0; i < 12; i++)
			a[i] = _mm256_fmadd_ps(a[i], m, c);
	}
	for (int i = 1; i < 12; i++)
		a[0] = _mm256_add_ps(a[0], a[i]);
	_mm256_storeu_ps(out, a[0]);
	sink = out[0];
	return 2.0 * 8 * 12 * (double)ITERS;
}

/* FLOPs done: 2 x 16 lanes x 24 chains a step, half the steps. */
__attribute__((target("avx512f"), noinline)) static double
pass16(void)
{
	__m512	a[24], m = _mm512_set1_ps(mul), c = _mm512_set1_ps(add);

	for (int i = 0; i < 24; i++)
		a[i] = _mm512_set1_ps((float)i);
	for (long n = 0; n < ITERS / 2; n++) {
#pragma GCC unroll 24
		for (int i = 0; i < 24; i++)
			a[i] = _mm512_fmadd_ps(a[i], m, c);
	}
	for (int i = 1; i < 24; i++)
		a[0] = _mm512_add_ps(a[0], a[i]);
	sink = _mm512_reduce_add_ps(a[0]);
	return 2.0 * 16 * 24 * (double)(ITERS / 2);
}

static void *
worker(void *arg)
{
	double	*best = arg;

	for (int p = 0; p < 2 * PASSES; p++) {
		int	w = p % 2;
		double	t, flop;

		pthread_barrier_wait(&bar);
		if (w == 1 && !wide)
			continue;
		t = now();
		flop = w == 1 ? pass16() : pass8();
		t = now() - t;
		if (t > 0.0 && flop / t > best[w])
			best[w] = flop / t;
	}
	return NULL;
}

int
main(int argc, char *argv[])
{
	pthread_t	th[MAX_THREADS];
	double		sum[2] = { 0.0, 0.0 };
	char		*end = NULL;
	long		nt = 1;

	if (argc > 1) {
		errno = 0;
		nt = strtol(argv[1], &end, 10);
	}
	if (argc > 2 || (argc > 1 && (errno != 0 || end == argv[1] ||
	    *end != '\0')) || nt < 1 || nt > MAX_THREADS) {
		fprintf(stderr, "usage: fmapeak THREADS (1..%d)\n",
		    MAX_THREADS);
		return 2;
	}
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
		fprintf(stderr, "fmapeak: the CPU has no AVX2 and FMA\n");
		return 1;
	}
	wide = __builtin_cpu_supports("avx512f");
	pthread_barrier_init(&bar, NULL, (unsigned)nt);
	for (long i = 0; i < nt; i++)
		if (pthread_create(&th[i], NULL, worker, rate[i]) != 0) {
			fprintf(stderr, "fmapeak: pthread_create failed\n");
			return 1;
		}
	for (long i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		sum[0] += rate[i][0];
		sum[1] += rate[i][1];
	}
	printf("%.0f\n", sum[1] > sum[0] ? sum[1] : sum[0]);
	return 0;
}
