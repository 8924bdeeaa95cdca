/* runtime/gemm.c - see gemm.h.
 *
 * y is cut into chunks of up to GEMM_MC rows and a few panels; the
 * runtime's threads take chunks as they come (kernel_par_run()).  A chunk
 * goes over k in blocks of at most GEMM_KC; in each, every block of up
 * to GEMM_MR rows of a runs against the chunk's panels: a tile keeps its
 * rows' sums in ymm registers, reading one panel row (two ymm of b) and
 * broadcasting one float of each row of a per step.  The block's rows of
 * a (6 x GEMM_KC floats) stay in L1 and the chunk's panels in L2, however
 * large k is.  Between k blocks the sums wait in y, as the floats they
 * are, so blocking changes no bit of the result; after the last one the
 * tile writes alpha * sum + beta * c.  Fewer rows leave registers free,
 * so such a block runs against several panels at once: batch-1 products
 * (one row, a GEMV) keep eight sums going instead of waiting on one FMA
 * chain.
 *
 * On a CPU with AVX-512F, products of GEMM_MR rows or more take zmm
 * tiles instead: one zmm a panel row, four panels at once.
 *
 * The AVX2 and AVX-512 code is compiled for those targets alone (function
 * attributes) and reached only when the CPU has them; the build as a
 * whole stays plain x86-64. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* -DGEMM_PORTABLE builds without the AVX2 kernel, as for a CPU without
 * it: nothing is packed and the products stay on cblas_sgemm. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(GEMM_PORTABLE)
#include <immintrin.h>
#define GEMM_X86	1
#endif

#include "common/cpu.h"
#include "runtime/gemm.h"
#include "runtime/kernels.h"

#define GEMM_MR		6	/* rows of a tile: 12 ymm sums */
#define GEMM_MC		96	/* rows of a chunk, a multiple of GEMM_MR */
#define GEMM_KC		1024	/* largest k block: 24 KiB of a per tile */
#define GEMM_L2_FLOATS	(64u << 10)	/* a chunk's k block of b: 256 KiB */
/* Products smaller than this (a batch-1 MLP layer) stay on one thread:
 * the workers' wake-up and their spinning afterwards cost a loaded
 * machine more than the split saves. */
#define GEMM_PAR_MIN	(1u << 21)	/* m * n * k */
#define GEMM_PAR_CHUNKS	4	/* chunks per thread, for balance */

/* Panels a short block of rows (1..GEMM_MR) takes at once, in its wide
 * tile (tiles_wide[] below): fewer rows leave registers for more panels. */
static const size_t	wide_np[GEMM_MR + 1] = { 1, 4, 3, 2, 1, 1, 1 };
/* Panels the zmm tiles take at once, one zmm of sums per row and panel:
 * up to 24 sums.  They run the blocks of products of at least
 * GEMM_MR rows (a batch-64 layer: FMA-bound); fewer rows (a batch-1
 * layer, bound by the stream of b) keep the ymm tiles, whose eight sums
 * come from four panels, where zmm tiles need eight panels for as many:
 * a batch-1 784x512 layer took a third longer that way, with twice the
 * streams. */
#define GEMM_WIDE512	4

/* One product, as gemm_chunk() reads it. */
struct gemm_job {
	float		*y;		/* (m, n) */
	const float	*a;		/* (m, k), rows lda apart */
	size_t		 lda;
	const float	*bp;		/* np panels of (k, GEMM_NR) */
	size_t		 m, n, k, np;
	float		 alpha, beta;
	const float	*c;		/* (cm, cn) broadcast, or NULL */
	size_t		 cm, cn;
	size_t		 pc;		/* panels per chunk */
	size_t		 ngroups;	/* chunks across the panels */
	size_t		 kc;		/* k block, >= 1 */
	size_t		 mc;		/* rows of a chunk, GEMM_MR * n */
	int		 isa;		/* GEMM_ISA_*, read by the caller */
	bool		 relu;		/* max(y, 0) as y is written */
};

/* The kernels a job runs on (gemm_isa()). */
#define GEMM_ISA_PLAIN	0
#define GEMM_ISA_AVX2	1	/* ymm tiles, AVX2 and FMA */
#define GEMM_ISA_AVX512	2	/* zmm tiles, AVX-512F */

static void	gemm_chunk(void *, size_t);
static int	gemm_isa(void);
#ifdef GEMM_X86
static void	chunk_avx2(const struct gemm_job *, size_t, size_t, size_t,
		    size_t);
static void	chunk_avx512(const struct gemm_job *, size_t, size_t, size_t,
		    size_t);
#endif
static void	chunk_plain(const struct gemm_job *, size_t, size_t, size_t,
		    size_t);

bool
gemm_fast(void)
{
#ifdef GEMM_X86
	static int	have = -1;

	if (have == -1)
		have = !cpu_portable() && __builtin_cpu_supports("avx2") &&
		    __builtin_cpu_supports("fma");
	return have == 1;
#else
	return false;
#endif
}

/* AVX-512F when the CPU has it: a core that runs a zmm FMA in one go
 * (Zen 5) does twice the work of the ymm tiles (a batch-64 MLP took half
 * the time); one that splits it in two halves (Zen 4) does the same. */
static int
gemm_isa(void)
{
#ifdef GEMM_X86
	static int	isa = -1;

	if (isa == -1) {
		isa = GEMM_ISA_PLAIN;
		if (gemm_fast())
			isa = __builtin_cpu_supports("avx512f") ?
			    GEMM_ISA_AVX512 : GEMM_ISA_AVX2;
	}
	return isa;
#else
	return GEMM_ISA_PLAIN;
#endif
}

size_t
gemm_pack_floats(size_t k, size_t n)
{
	return (n + GEMM_NR - 1) / GEMM_NR * GEMM_NR * k;
}

void
gemm_pack(float *dst, const float *b, size_t k, size_t n, bool trans)
{
	size_t	np = (n + GEMM_NR - 1) / GEMM_NR;

	for (size_t p = 0; p < np; p++) {
		size_t	j0 = p * GEMM_NR;
		size_t	nr = n - j0 < GEMM_NR ? n - j0 : GEMM_NR;

		for (size_t kk = 0; kk < k; kk++, dst += GEMM_NR) {
			size_t	jj;

			for (jj = 0; jj < nr; jj++)
				dst[jj] = trans ? b[(j0 + jj) * k + kk] :
				    b[kk * n + j0 + jj];
			for (; jj < GEMM_NR; jj++)
				dst[jj] = 0.0f;
		}
	}
}

void
gemm_run(float *y, const float *a, size_t lda, const float *bp, size_t m,
    size_t n, size_t k, float alpha, const float *c, size_t cm, size_t cn,
    float beta)
{
	gemm_run_act(y, a, lda, bp, m, n, k, alpha, c, cm, cn, beta, false);
}

void
gemm_run_act(float *y, const float *a, size_t lda, const float *bp,
    size_t m, size_t n, size_t k, float alpha, const float *c, size_t cm,
    size_t cn, float beta, bool relu)
{
	struct gemm_job	j = { y, a, lda, bp, m, n, k, 0, alpha, beta, c, cm,
			    cn, 0, 0, 1, GEMM_MC, gemm_isa(), relu };
	size_t		nrc = (m + GEMM_MC - 1) / GEMM_MC, want, per, nkb, tw;
	int		nthr = 1;

	if (j.isa == GEMM_ISA_AVX512 && m < GEMM_MR)
		j.isa = GEMM_ISA_AVX2;	/* GEMM_WIDE512 */
	if (m == 0 || n == 0)
		return;
	j.np = (n + GEMM_NR - 1) / GEMM_NR;
	/* Blocks of equal size: 1500 is two of 750, not 1024 and 476. */
	nkb = (k + GEMM_KC - 1) / GEMM_KC;
	if (nkb > 0)
		j.kc = (k + nkb - 1) / nkb;
	/* As many panels as keep a chunk's share of b in L2. */
	j.pc = GEMM_L2_FLOATS / (j.kc * GEMM_NR);
	if (j.pc == 0)
		j.pc = 1;
	if (m * n * k >= GEMM_PAR_MIN)
		nthr = kernel_par_threads();
	if (nthr > 1 && nrc * ((j.np + j.pc - 1) / j.pc) <
	    (size_t)nthr * GEMM_PAR_CHUNKS) {
		/* Few rows: cut across the panels instead. */
		want = (size_t)nthr * GEMM_PAR_CHUNKS;
		per = (want + nrc - 1) / nrc;
		j.pc = j.np / per;
		if (j.pc == 0)
			j.pc = 1;
	}
	if (j.pc > j.np)
		j.pc = j.np;
	/* Whole wide tiles: a short block's panels left over from them run
	 * one at a time, on one FMA chain per ymm (a batch-1 layer of k 784
	 * in groups of five panels spent a fifth of its time on the fifth). */
	tw = j.isa == GEMM_ISA_AVX512 ? GEMM_WIDE512 : wide_np[m < GEMM_MR ?
	    m : GEMM_MR];
	if (j.pc > tw)
		j.pc -= j.pc % tw;
	j.ngroups = (j.np + j.pc - 1) / j.pc;
	if (nthr > 1 && nrc * j.ngroups < (size_t)nthr * GEMM_PAR_CHUNKS) {
		/* Few panels too (an MLP's last layer, ten wide): cut the
		 * rows finer, down to one tile's. */
		per = ((size_t)nthr * GEMM_PAR_CHUNKS + j.ngroups - 1) /
		    j.ngroups;
		j.mc = (m + per - 1) / per;
		j.mc = (j.mc + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
		nrc = (m + j.mc - 1) / j.mc;
	}
	if (nthr > 1 && nrc * j.ngroups > 1)
		kernel_par_run(gemm_chunk, &j, nrc * j.ngroups);
	else
		for (size_t t = 0; t < nrc * j.ngroups; t++)
			gemm_chunk(&j, t);
}

/* Chunk t: row chunk t / ngroups, panel group t % ngroups (neighbouring
 * chunks share rows of a). */
static void
gemm_chunk(void *arg, size_t t)
{
	const struct gemm_job	*j = arg;
	size_t			 i0 = t / j->ngroups * j->mc;
	size_t			 p0 = t % j->ngroups * j->pc;
	size_t			 i1 = i0 + j->mc, p1 = p0 + j->pc;

	if (i1 > j->m)
		i1 = j->m;
	if (p1 > j->np)
		p1 = j->np;
#ifdef GEMM_X86
	if (j->isa == GEMM_ISA_AVX512) {
		chunk_avx512(j, i0, i1, p0, p1);
		return;
	}
	if (j->isa == GEMM_ISA_AVX2) {
		chunk_avx2(j, i0, i1, p0, p1);
		return;
	}
#endif
	chunk_plain(j, i0, i1, p0, p1);
}

/* --- portable --- */

/* The same sums in the same order without vectors: fmaf keeps one
 * rounding per step as the FMA does, so results match the AVX2 and
 * AVX-512 paths. */
static void
chunk_plain(const struct gemm_job *j, size_t i0, size_t i1, size_t p0,
    size_t p1)
{
	for (size_t i = i0; i < i1; i++) {
		const float	*ar = j->a + i * j->lda;
		const float	*cr = j->c == NULL ? NULL :
				    j->c + (j->cm == 1 ? 0 : i * j->cn);

		for (size_t p = p0; p < p1; p++) {
			const float	*b = j->bp + p * j->k * GEMM_NR;
			size_t		 j0 = p * GEMM_NR;
			size_t		 nr = j->n - j0 < GEMM_NR ? j->n - j0 :
					    GEMM_NR;

			for (size_t jj = 0; jj < nr; jj++) {
				float	s = 0.0f;

				for (size_t kk = 0; kk < j->k; kk++)
					s = fmaf(ar[kk], b[kk * GEMM_NR + jj],
					    s);
				s *= j->alpha;
				if (cr != NULL)
					s = fmaf(j->beta,
					    cr[j->cn == 1 ? 0 : j0 + jj], s);
				if (j->relu)
					s = s > 0.0f ? s : 0.0f;
				j->y[i * j->n + j0 + jj] = s;
			}
		}
	}
}

/* --- AVX2 + FMA --- */

#ifdef GEMM_X86
#define GEMM_AVX2	__attribute__((target("avx2,fma")))
#define GEMM_TILE	static inline __attribute__((always_inline, \
			    target("avx2,fma")))

/* The sums of row i of y from column col on (up to GEMM_NR of them),
 * as an earlier k block left them. */
GEMM_TILE void
load_row(const struct gemm_job *j, size_t i, size_t col, __m256 *v0,
    __m256 *v1)
{
	const float	*yr = j->y + i * j->n + col;
	size_t		 nr = j->n - col < GEMM_NR ? j->n - col : GEMM_NR;
	float		 t[GEMM_NR];

	if (nr == GEMM_NR) {
		*v0 = _mm256_loadu_ps(yr);
		*v1 = _mm256_loadu_ps(yr + 8);
		return;
	}
	memset(t, 0, sizeof(t));
	memcpy(t, yr, nr * sizeof(*t));
	*v0 = _mm256_loadu_ps(t);
	*v1 = _mm256_loadu_ps(t + 8);
}

/* Stores v0, v1 into row i of y from column col on: the sums as they
 * are, or, after the last k block (done), alpha * sum + beta * c. */
GEMM_TILE void
store_row(const struct gemm_job *j, size_t i, size_t col, __m256 v0,
    __m256 v1, bool done)
{
	float		*yr = j->y + i * j->n + col;
	size_t		 nr = j->n - col < GEMM_NR ? j->n - col : GEMM_NR;
	float		 t[GEMM_NR];

	if (done) {
		const __m256	al = _mm256_set1_ps(j->alpha);

		v0 = _mm256_mul_ps(v0, al);
		v1 = _mm256_mul_ps(v1, al);
	}
	if (done && j->c != NULL) {
		const float	*cr = j->c + (j->cm == 1 ? 0 : i * j->cn);
		const __m256	 be = _mm256_set1_ps(j->beta);
		__m256		 c0, c1;

		if (j->cn == 1)
			c0 = c1 = _mm256_set1_ps(cr[0]);
		else if (nr == GEMM_NR) {
			c0 = _mm256_loadu_ps(cr + col);
			c1 = _mm256_loadu_ps(cr + col + 8);
		} else {
			memset(t, 0, sizeof(t));
			memcpy(t, cr + col, nr * sizeof(*t));
			c0 = _mm256_loadu_ps(t);
			c1 = _mm256_loadu_ps(t + 8);
		}
		v0 = _mm256_fmadd_ps(be, c0, v0);
		v1 = _mm256_fmadd_ps(be, c1, v1);
	}
	if (done && j->relu) {
		/* max(v, 0) is 0 for NaN and -0 too, as x > 0 ? x : 0. */
		v0 = _mm256_max_ps(v0, _mm256_setzero_ps());
		v1 = _mm256_max_ps(v1, _mm256_setzero_ps());
	}
	if (nr == GEMM_NR) {
		_mm256_storeu_ps(yr, v0);
		_mm256_storeu_ps(yr + 8, v1);
	} else {
		_mm256_storeu_ps(t, v0);
		_mm256_storeu_ps(t + 8, v1);
		memcpy(yr, t, nr * sizeof(*t));
	}
}

/* Rows i0..i0+MR of y against panels p..p+NP over k in [k0, k1): MR * NP
 * * 2 sums.  MR and NP are constants at every call, so the arrays live in
 * registers. */
GEMM_TILE void
tile(const struct gemm_job *j, size_t i0, size_t p, size_t k0, size_t k1,
    const int MR, const int NP)
{
	const size_t	 lda = j->lda, ps = j->k * GEMM_NR;
	const float	*a = j->a + i0 * lda + k0;
	const float	*b = j->bp + p * ps + k0 * GEMM_NR;
	const size_t	 kn = k1 - k0;
	const bool	 done = k1 == j->k;
	__m256		 s[GEMM_MR][4][2];

#pragma GCC unroll 6
	for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
		for (int q = 0; q < NP; q++) {
			if (k0 == 0)
				s[r][q][0] = s[r][q][1] = _mm256_setzero_ps();
			else
				load_row(j, i0 + r, (p + q) * GEMM_NR,
				    &s[r][q][0], &s[r][q][1]);
		}
	for (size_t kk = 0; kk < kn; kk++, b += GEMM_NR) {
		__m256	b0[4], b1[4];

#pragma GCC unroll 4
		for (int q = 0; q < NP; q++) {
			b0[q] = _mm256_loadu_ps(b + q * ps);
			b1[q] = _mm256_loadu_ps(b + q * ps + 8);
		}
#pragma GCC unroll 6
		for (int r = 0; r < MR; r++) {
			const __m256	av = _mm256_broadcast_ss(a + r * lda +
					    kk);

#pragma GCC unroll 4
			for (int q = 0; q < NP; q++) {
				s[r][q][0] = _mm256_fmadd_ps(av, b0[q],
				    s[r][q][0]);
				s[r][q][1] = _mm256_fmadd_ps(av, b1[q],
				    s[r][q][1]);
			}
		}
	}
#pragma GCC unroll 6
	for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
		for (int q = 0; q < NP; q++)
			store_row(j, i0 + r, (p + q) * GEMM_NR, s[r][q][0],
			    s[r][q][1], done);
}

/* Each tile shape its own function, kernel_MRxNP compiled for attr (the
 * ymm tiles' or the zmm ones'), so that the compiler allocates registers
 * for one shape at a time. */
#define GEMM_TILE_FN(attr, kernel, mr, np)				\
attr static void							\
kernel##_##mr##x##np(const struct gemm_job *j, size_t i0, size_t p,	\
    size_t k0, size_t k1)						\
{									\
	kernel(j, i0, p, k0, k1, mr, np);				\
}
GEMM_TILE_FN(GEMM_AVX2, tile, 6, 1)
GEMM_TILE_FN(GEMM_AVX2, tile, 5, 1)
GEMM_TILE_FN(GEMM_AVX2, tile, 4, 1)
GEMM_TILE_FN(GEMM_AVX2, tile, 3, 2)
GEMM_TILE_FN(GEMM_AVX2, tile, 3, 1)
GEMM_TILE_FN(GEMM_AVX2, tile, 2, 3)
GEMM_TILE_FN(GEMM_AVX2, tile, 2, 1)
GEMM_TILE_FN(GEMM_AVX2, tile, 1, 4)
GEMM_TILE_FN(GEMM_AVX2, tile, 1, 1)

/* A tile: rows i0.. of a block against panels p.. over k in [k0, k1). */
typedef void	(*tile_fn)(const struct gemm_job *, size_t, size_t, size_t,
		    size_t);

/* Per block height: the tile over one panel and, for short blocks, the
 * wider one over wide_np[] panels. */
static const tile_fn	tiles_one[GEMM_MR + 1] = { NULL, tile_1x1, tile_2x1,
			    tile_3x1, tile_4x1, tile_5x1, tile_6x1 };
static const tile_fn	tiles_wide[GEMM_MR + 1] = { NULL, tile_1x4,
			    tile_2x3, tile_3x2, tile_4x1, tile_5x1, tile_6x1 };

/* Asks for rows i..i+GEMM_MR (below i1) of a, columns [k0, k1), to be
 * brought into L2 while the tiles of the rows before them run.  A large
 * a (a transformer's 8192 tokens) comes from memory, and the first tile
 * of each block of rows would wait on six streams of it; the others
 * find it in cache. */
GEMM_TILE void
prefetch_rows(const struct gemm_job *j, size_t i, size_t i1, size_t k0,
    size_t k1)
{
	size_t	end = i + GEMM_MR < i1 ? i + GEMM_MR : i1;

	for (; i < end; i++) {
		const char	*r = (const char *)(j->a + i * j->lda + k0);
		const char	*e = (const char *)(j->a + i * j->lda + k1);

		for (; r < e; r += 64)
			_mm_prefetch(r, _MM_HINT_T1);
	}
}

/* Rows [i0, i1) of y against panels [p0, p1), block by block of rows
 * and of k, on one kind of tiles: for block height mr, wide[mr] over
 * np[mr] panels at a time, then one[mr] over each panel left. */
GEMM_AVX2 static void
chunk_tiles(const struct gemm_job *j, size_t i0, size_t i1, size_t p0,
    size_t p1, const tile_fn *one, const tile_fn *wide, const size_t *np)
{
	size_t	k0 = 0, k1;

	/* At least one block, so that k = 0 writes beta * c. */
	do {
		k1 = j->k - k0 < j->kc ? j->k : k0 + j->kc;
		for (size_t i = i0; i < i1; i += GEMM_MR) {
			size_t	mr = i1 - i < GEMM_MR ? i1 - i : GEMM_MR;
			size_t	p = p0, w = np[mr];

			prefetch_rows(j, i + GEMM_MR, i1, k0, k1);

			for (; w > 1 && p + w <= p1; p += w)
				wide[mr](j, i, p, k0, k1);
			for (; p < p1; p++)
				one[mr](j, i, p, k0, k1);
		}
		k0 = k1;
	} while (k0 < j->k);
}

static void
chunk_avx2(const struct gemm_job *j, size_t i0, size_t i1, size_t p0,
    size_t p1)
{
	chunk_tiles(j, i0, i1, p0, p1, tiles_one, tiles_wide, wide_np);
}

/* --- AVX-512F ---
 *
 * The AVX2 path's tiles with one zmm per row and panel: each sum is the
 * same FMA chain over k, then alpha, beta * c and the Relu, so the bits
 * are the AVX2 path's.  Partial panels use masked loads and stores. */

#define GEMM_AVX512	__attribute__((target("avx512f,avx2,fma")))
#define GEMM_TILE512	static inline __attribute__((always_inline, \
			    target("avx512f,avx2,fma")))

/* The lanes of a panel from column col that lie inside y. */
GEMM_TILE512 __mmask16
col_mask(const struct gemm_job *j, size_t col)
{
	size_t	nr = j->n - col < GEMM_NR ? j->n - col : GEMM_NR;

	return (__mmask16)((1u << nr) - 1u);
}

/* store_row() with one zmm: alpha * sum + beta * c after the last k
 * block (done), else the sum as it is. */
GEMM_TILE512 void
store_row512(const struct gemm_job *j, size_t i, size_t col, __m512 v,
    bool done)
{
	const __mmask16	mk = col_mask(j, col);

	if (done) {
		v = _mm512_mul_ps(v, _mm512_set1_ps(j->alpha));
		if (j->c != NULL) {
			const float	*cr = j->c + (j->cm == 1 ? 0 :
					    i * j->cn);
			__m512		 c = j->cn == 1 ?
					    _mm512_set1_ps(cr[0]) :
					    _mm512_maskz_loadu_ps(mk, cr + col);

			v = _mm512_fmadd_ps(_mm512_set1_ps(j->beta), c, v);
		}
		if (j->relu)
			v = _mm512_max_ps(v, _mm512_setzero_ps());
	}
	_mm512_mask_storeu_ps(j->y + i * j->n + col, mk, v);
}

/* tile() with zmm sums: rows i0..i0+MR against panels p..p+NP over k in
 * [k0, k1). */
GEMM_TILE512 void
tile512(const struct gemm_job *j, size_t i0, size_t p, size_t k0,
    size_t k1, const int MR, const int NP)
{
	const size_t	 lda = j->lda, ps = j->k * GEMM_NR;
	const float	*a = j->a + i0 * lda + k0;
	const float	*b = j->bp + p * ps + k0 * GEMM_NR;
	const size_t	 kn = k1 - k0;
	const bool	 done = k1 == j->k;
	__m512		 s[GEMM_MR][8];

#pragma GCC unroll 6
	for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
		for (int q = 0; q < NP; q++) {
			size_t	col = (p + q) * GEMM_NR;

			s[r][q] = k0 == 0 ? _mm512_setzero_ps() :
			    _mm512_maskz_loadu_ps(col_mask(j, col), j->y +
			    (i0 + r) * j->n + col);
		}
	for (size_t kk = 0; kk < kn; kk++, b += GEMM_NR) {
		__m512	bv[8];

#pragma GCC unroll 8
		for (int q = 0; q < NP; q++)
			bv[q] = _mm512_loadu_ps(b + q * ps);
#pragma GCC unroll 6
		for (int r = 0; r < MR; r++) {
			const __m512	av = _mm512_set1_ps(a[r * lda + kk]);

#pragma GCC unroll 8
			for (int q = 0; q < NP; q++)
				s[r][q] = _mm512_fmadd_ps(av, bv[q], s[r][q]);
		}
	}
#pragma GCC unroll 6
	for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
		for (int q = 0; q < NP; q++)
			store_row512(j, i0 + r, (p + q) * GEMM_NR, s[r][q],
			    done);
}

GEMM_TILE_FN(GEMM_AVX512, tile512, 6, 4)
GEMM_TILE_FN(GEMM_AVX512, tile512, 6, 1)
GEMM_TILE_FN(GEMM_AVX512, tile512, 5, 4)
GEMM_TILE_FN(GEMM_AVX512, tile512, 5, 1)
GEMM_TILE_FN(GEMM_AVX512, tile512, 4, 4)
GEMM_TILE_FN(GEMM_AVX512, tile512, 4, 1)
GEMM_TILE_FN(GEMM_AVX512, tile512, 3, 4)
GEMM_TILE_FN(GEMM_AVX512, tile512, 3, 1)
GEMM_TILE_FN(GEMM_AVX512, tile512, 2, 4)
GEMM_TILE_FN(GEMM_AVX512, tile512, 2, 1)
GEMM_TILE_FN(GEMM_AVX512, tile512, 1, 4)
GEMM_TILE_FN(GEMM_AVX512, tile512, 1, 1)

/* The zmm tiles per block height, wide ones over GEMM_WIDE512 panels. */
static const tile_fn	tiles512_one[GEMM_MR + 1] = { NULL, tile512_1x1,
			    tile512_2x1, tile512_3x1, tile512_4x1, tile512_5x1,
			    tile512_6x1 };
static const tile_fn	tiles512_wide[GEMM_MR + 1] = { NULL, tile512_1x4,
			    tile512_2x4, tile512_3x4, tile512_4x4, tile512_5x4,
			    tile512_6x4 };
static const size_t	wide512_np[GEMM_MR + 1] = { 1, GEMM_WIDE512,
			    GEMM_WIDE512, GEMM_WIDE512, GEMM_WIDE512,
			    GEMM_WIDE512, GEMM_WIDE512 };

static void
chunk_avx512(const struct gemm_job *j, size_t i0, size_t i1, size_t p0,
    size_t p1)
{
	chunk_tiles(j, i0, i1, p0, p1, tiles512_one, tiles512_wide,
	    wide512_np);
}
#endif
