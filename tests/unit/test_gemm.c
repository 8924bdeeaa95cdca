/* tests/unit/test_gemm.c - runtime/gemm.c against a triple loop in
 * double: every row count from 1 to 70 (whole and partial tiles), widths
 * and depths that are not multiples of the panel, b packed both ways,
 * alpha, every broadcast of c, a's rows wider apart than k, k = 0, on
 * one thread and on two.  Also: results do not depend on the thread
 * count or on the rows around a row (bit for bit), and the portable loop
 * gives the same bits as the AVX2 tiles.
 *
 * The module's .c is included to reach its portable path. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>

#include "runtime/gemm.c"

#define TOL	1e-5

static uint64_t	rng_state = 2024;

static float
frand(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((rng_state >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
}

static float *
randv(size_t n)
{
	float	*v = malloc(n * sizeof(*v) + 1);

	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = frand();
	return v;
}

/* One product: a (m, k) with rows lda apart, b (k, n) or (n, k) if
 * trans, c (cm, cn) if with_c. */
struct gcase {
	size_t	m, n, k, lda;
	bool	trans;
	float	alpha, beta;
	bool	with_c;
	size_t	cm, cn;
};

struct operands {
	float	*a, *b, *c, *bp;
};

static void
operands_new(struct operands *o, const struct gcase *g)
{
	o->a = randv(g->m * g->lda);
	o->b = randv(g->k * g->n);
	o->c = g->with_c ? randv(g->cm * g->cn) : NULL;
	o->bp = malloc(gemm_pack_floats(g->k, g->n) * sizeof(float) + 1);
	assert_non_null(o->bp);
	gemm_pack(o->bp, o->b, g->k, g->n, g->trans);
}

static void
operands_free(struct operands *o)
{
	free(o->a);
	free(o->b);
	free(o->c);
	free(o->bp);
}

static float *
run(const struct gcase *g, const struct operands *o)
{
	float	*y = randv(g->m * g->n);	/* garbage must not leak in */

	gemm_run(y, o->a, g->lda, o->bp, g->m, g->n, g->k, g->alpha, o->c,
	    g->cm, g->cn, g->beta);
	return y;
}

/* |y - ref| <= TOL * (1 + sum of the magnitudes of the terms). */
static void
check(const struct gcase *g, const struct operands *o, const float *y)
{
	for (size_t i = 0; i < g->m; i++)
		for (size_t j = 0; j < g->n; j++) {
			double	s = 0, mag = 0, t, want, d;

			for (size_t p = 0; p < g->k; p++) {
				t = (double)o->a[i * g->lda + p] *
				    (g->trans ? o->b[j * g->k + p] :
				    o->b[p * g->n + j]);
				s += t;
				mag += fabs(t);
			}
			want = g->alpha * s;
			mag *= fabs(g->alpha);
			if (o->c != NULL) {
				t = (double)g->beta * o->c[(g->cm == 1 ? 0 :
				    i * g->cn) + (g->cn == 1 ? 0 : j)];
				want += t;
				mag += fabs(t);
			}
			d = fabs((double)y[i * g->n + j] - want);
			if (d > TOL * (1.0 + mag))
				fail_msg("m %zu n %zu k %zu trans %d: "
				    "y[%zu][%zu] = %.9g, want %.9g", g->m,
				    g->n, g->k,
				    g->trans, i, j, (double)y[i * g->n + j],
				    want);
		}
}

/* Checks g on one thread and on two, which must agree bit for bit. */
static void
check_case(const struct gcase *g)
{
	struct operands	 o;
	float		*y1, *y2;

	operands_new(&o, g);
	openblas_set_num_threads(1);
	y1 = run(g, &o);
	check(g, &o, y1);
	openblas_set_num_threads(2);
	y2 = run(g, &o);
	openblas_set_num_threads(1);
	assert_memory_equal(y1, y2, g->m * g->n * sizeof(float));
	free(y1);
	free(y2);
	operands_free(&o);
}

static void
test_pack(void **state)
{
	const float	b[3 * 2] = { 1, 2, 3, 4, 5, 6 };	/* (3, 2) */
	float		p[16 * 3], q[16 * 3];

	(void)state;
	assert_int_equal(gemm_pack_floats(3, 2), 16 * 3);
	assert_int_equal(gemm_pack_floats(5, 16), 16 * 5);
	assert_int_equal(gemm_pack_floats(5, 17), 32 * 5);
	gemm_pack(p, b, 3, 2, false);
	for (size_t kk = 0; kk < 3; kk++)
		for (size_t j = 0; j < 16; j++)
			assert_true(p[kk * 16 + j] ==
			    (j < 2 ? b[kk * 2 + j] : 0.0f));
	/* The same matrix given as its transpose (2, 3). */
	gemm_pack(q, (const float[]){ 1, 3, 5, 2, 4, 6 }, 3, 2, true);
	assert_memory_equal(p, q, sizeof(p));
}

/* Every row count, against shapes with partial panels and depths. */
static void
test_rows(void **state)
{
	static const size_t	nk[][2] = {
		{ 1, 1 }, { 16, 16 }, { 17, 5 }, { 40, 33 }, { 10, 64 },
		{ 70, 3 }
	};

	(void)state;
	for (size_t m = 1; m <= 70; m++)
		for (size_t s = 0; s < sizeof(nk) / sizeof(nk[0]); s++) {
			struct gcase	g = { m, nk[s][0], nk[s][1], nk[s][1],
					    (m + s) % 2 == 1, 1.0f, 1.0f, false,
					    1, 1 };

			check_case(&g);
		}
}

/* alpha, beta and c broadcast every way; a's rows apart by more than k;
 * products big enough to be split between threads, across rows and
 * across panels. */
static void
test_shapes(void **state)
{
	static const struct gcase	cases[] = {
		{ 7, 23, 9, 9, false, 0.5f, 2.0f, true, 7, 23 },
		{ 7, 23, 9, 9, true, 1.0f, 1.0f, true, 1, 23 },
		{ 13, 5, 31, 31, false, -1.5f, 0.25f, true, 13, 1 },
		{ 13, 5, 31, 31, true, 1.0f, -1.0f, true, 1, 1 },
		{ 12, 40, 20, 27, false, 1.0f, 1.0f, true, 1, 40 },
		{ 1, 1000, 200, 200, true, 1.0f, 1.0f, true, 1, 1000 },
		{ 1, 2000, 1500, 1500, false, 1.0f, 1.0f, true, 1, 2000 },
		{ 1, 510, 784, 790, false, 0.75f, 1.0f, false, 1, 1 },
		{ 64, 520, 300, 300, false, 1.0f, 1.0f, true, 1, 520 },
		{ 64, 10, 512, 512, true, 1.0f, 1.0f, true, 64, 10 },
		{ 200, 77, 150, 150, true, 2.0f, 0.5f, true, 200, 77 },
		{ 301, 33, 64, 64, false, 1.0f, 1.0f, true, 301, 1 },
		/* Deeper than a k block: the sums wait in y between
		 * blocks (2 of 550 here). */
		{ 70, 40, 1100, 1103, true, 0.5f, 1.0f, true, 70, 40 },
		{ 5, 100, 3100, 3100, false, 1.0f, 1.0f, true, 1, 100 },
		/* An empty sum: beta * c alone. */
		{ 3, 20, 0, 0, false, 1.0f, 0.5f, true, 3, 20 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

/* A row's result does not depend on the rows computed with it (a batch
 * of one gives the same bits as that row in a batch of 64), and the
 * portable loop, in one pass over k, gives the bits of the vector tiles,
 * in k blocks: the AVX2 ones and, on a CPU with AVX-512F, the zmm ones,
 * over every block height and panel count (the wide tiles and the
 * one-panel ones after them, a last panel cut short). */
static void
test_same_bits(void **state)
{
	const struct gcase	g = { 64, 200, 1029, 1029, false, 0.5f,
				    1.0f, true, 1, 200 };
	struct operands		o;
	struct gemm_job		j;
	float			*y, *y1, *yp;

	(void)state;
	operands_new(&o, &g);
	openblas_set_num_threads(2);
	y = run(&g, &o);
	y1 = malloc(g.n * sizeof(float));
	assert_non_null(y1);
	for (size_t i = 0; i < g.m; i += 7) {
		gemm_run(y1, o.a + i * g.lda, g.lda, o.bp, 1, g.n, g.k,
		    g.alpha, o.c, 1, g.cn, g.beta);
		assert_memory_equal(y1, y + i * g.n, g.n * sizeof(float));
	}
	openblas_set_num_threads(1);
	yp = randv(g.m * g.n);
	j = (struct gemm_job){ yp, o.a, g.lda, o.bp, g.m, g.n, g.k,
	    (g.n + GEMM_NR - 1) / GEMM_NR, g.alpha, g.beta, o.c, g.cm, g.cn,
	    1, 1, 1, GEMM_MC, GEMM_ISA_PLAIN, false };
	chunk_plain(&j, 0, g.m, 0, j.np);
	assert_memory_equal(yp, y, g.m * g.n * sizeof(float));
	free(yp);
	free(y1);
	free(y);
	operands_free(&o);
}

#ifdef GEMM_X86
static void
chunk_isa(const struct gemm_job *j, size_t i0, size_t i1, size_t p0,
    size_t p1)
{
	if (j->isa == GEMM_ISA_AVX512)
		chunk_avx512(j, i0, i1, p0, p1);
	else
		chunk_avx2(j, i0, i1, p0, p1);
}
#else
static void
chunk_isa(const struct gemm_job *j, size_t i0, size_t i1, size_t p0,
    size_t p1)
{
	chunk_plain(j, i0, i1, p0, p1);
}
#endif

/* Each vector path against the portable loop on one chunk per block
 * height: rows i0..i0+mr (mr 1 to GEMM_MR) over panels p0..p1, in k
 * blocks of 300, with the Relu and a row-wise c. */
static void
test_isa_bits(void **state)
{
	const struct gcase	g = { 6, 200, 700, 700, true, 0.5f, 1.0f,
				    true, 6, 1 };
	struct operands		o;
	size_t			np = (g.n + GEMM_NR - 1) / GEMM_NR;
	float			*yp, *yv;
	int			isas[2], nisa = 0;

	(void)state;
#ifdef GEMM_X86
	if (gemm_fast())
		isas[nisa++] = GEMM_ISA_AVX2;
	if (gemm_isa() == GEMM_ISA_AVX512)
		isas[nisa++] = GEMM_ISA_AVX512;
	else
		print_message("no AVX-512F: zmm tiles not tested\n");
#endif
	operands_new(&o, &g);
	yp = malloc(g.m * g.n * sizeof(float));
	yv = malloc(g.m * g.n * sizeof(float));
	assert_non_null(yp);
	assert_non_null(yv);
	for (int v = 0; v < nisa; v++)
		for (size_t mr = 1; mr <= GEMM_MR; mr++)
			for (size_t p0 = 0; p0 < 3; p0++)
				for (size_t p1 = p0 + 1; p1 <= np; p1++) {
					struct gemm_job	j = { NULL, o.a, g.lda,
					    o.bp, mr, g.n, g.k, np, g.alpha,
					    g.beta, o.c, g.cm, g.cn, 1, 1, 300,
					    GEMM_MC, GEMM_ISA_PLAIN, true };

					memset(yp, 0, g.m * g.n * sizeof(float));
					memset(yv, 0, g.m * g.n * sizeof(float));
					j.y = yp;
					chunk_plain(&j, 0, mr, p0, p1);
					j.y = yv;
					j.isa = isas[v];
					chunk_isa(&j, 0, mr, p0, p1);
					if (memcmp(yp, yv, g.m * g.n *
					    sizeof(float)) != 0)
						fail_msg("isa %d: %zu rows, panels "
						    "%zu..%zu differ", isas[v],
						    mr, p0, p1);
				}
	free(yv);
	free(yp);
	operands_free(&o);
}

/* Per chunk, the runs kernel_par_run() and kernel_par_tasks() made of
 * it, and per task whether its thread index was in range. */
static _Atomic int	par_runs[1000];
static _Atomic int	par_bad_thread;

static void
par_count(void *arg, size_t c)
{
	(void)arg;
	atomic_fetch_add(&par_runs[c], 1);
}

static void
par_count_task(void *arg, size_t c, int thread)
{
	if (thread < 0 || thread >= *(int *)arg)
		atomic_store(&par_bad_thread, 1);
	atomic_fetch_add(&par_runs[c], 1);
}

/* The pool runs each chunk exactly once, for chunk counts below, at and
 * above the thread count, on 2 to 4 threads: every share, the ones
 * taken whole from their backs by the others included; and a task's
 * thread index stays below the thread count, also once it has gone
 * down. */
static void
test_par_chunks_once(void **state)
{
	(void)state;
	/* Up, then down: workers started for 4 threads stay, and a job for
	 * fewer must still not hand a task to one past its count. */
	for (int u = 0; u < 6; u++) {
		int	t = u < 3 ? 2 + u : 7 - u;

		openblas_set_num_threads(t);
		for (size_t n = 0; n <= 1000; n += n < 20 ? 1 : 97) {
			for (size_t c = 0; c < 1000; c++)
				atomic_store(&par_runs[c], 0);
			if (n % 2 == 0)
				kernel_par_run(par_count, NULL, n);
			else
				kernel_par_tasks(par_count_task, &t, n);
			for (size_t c = 0; c < 1000; c++)
				if (atomic_load(&par_runs[c]) != (c < n))
					fail_msg("%d threads, %zu chunks: chunk "
					    "%zu ran %d times", t, n, c,
					    atomic_load(&par_runs[c]));
			assert_int_equal(atomic_load(&par_bad_thread), 0);
		}
	}
	openblas_set_num_threads(1);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_pack),
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_same_bits),
		cmocka_unit_test(test_isa_bits),
		cmocka_unit_test(test_par_chunks_once),
	};

	if (!gemm_fast())
		print_message("no AVX2+FMA: testing the portable path\n");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
