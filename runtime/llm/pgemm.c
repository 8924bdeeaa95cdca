/* runtime/llm/pgemm.c - see pgemm.h.
 *
 * A tile is up to PG_TP panels (48 rows of x) against PGEMM_NR weight
 * rows: 24 zmm sums, each 16 rows of x for one weight row.  A step of k
 * loads one zmm of each panel and broadcasts one float of each weight
 * row, 24 FMAs for 11 loads, so the FMA units set the pace.  The sums
 * stay in registers over all of k (no k blocks): the panels of a tile
 * (48 x n_in floats) come from L2 and the weight rows (8 x n_in) from L1
 * and L2 as sequential streams the hardware prefetches, and a tile's
 * result is written once.  Fewer than PGEMM_NR weight rows take the
 * one-row kernel per row.
 *
 * The kernels are compiled for AVX-512F alone (function attributes) and
 * reached only when the CPU has it; the build as a whole stays plain
 * x86-64. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(PGEMM_PORTABLE)
#include <immintrin.h>
#define PG_X86		1
#define PG_AVX512	__attribute__((target("avx512f")))
#define PG_INLINE	static inline __attribute__((always_inline, \
			    target("avx512f")))
#endif

#include "common/cpu.h"
#include "runtime/llm/pgemm.h"

#define PG_TP		3	/* panels per tile */

#ifdef PG_X86
PG_AVX512 static size_t	pack16(float *, const float *, size_t, size_t,
			    size_t);
PG_AVX512 static __m512	exp16(__m512);
PG_AVX512 static void	tile(float *, size_t, const float *, size_t, size_t,
			    int, const float *, size_t, int, const char *,
			    size_t, size_t);
#endif

bool
pgemm_fast(void)
{
#ifdef PG_X86
	static int	have = -1;

	if (have == -1) {
		__builtin_cpu_init();
		have = !cpu_portable() &&
		    __builtin_cpu_supports("avx512f") != 0;
	}
	return have == 1;
#else
	return false;
#endif
}

size_t
pgemm_packed_len(size_t rows, size_t n_in)
{
	return (rows + PGEMM_PANEL - 1) / PGEMM_PANEL * PGEMM_PANEL * n_in;
}

void
pgemm_pack(float *xp, const float *x, size_t ldx, size_t rows, size_t n_in,
    size_t p)
{
	size_t	r0 = p * PGEMM_PANEL, k0 = 0;
	size_t	nr = rows - r0 < PGEMM_PANEL ? rows - r0 : PGEMM_PANEL;

	xp += p * n_in * PGEMM_PANEL;
	x += r0 * ldx;
#ifdef PG_X86
	k0 = pack16(xp, x, ldx, nr, n_in);
#endif
	for (size_t r = 0; r < nr; r++) {
		const float	*xr = x + r * ldx;

		for (size_t k = k0; k < n_in; k++)
			xp[k * PGEMM_PANEL + r] = xr[k];
	}
	for (size_t r = nr; r < PGEMM_PANEL; r++) {
		for (size_t k = k0; k < n_in; k++)
			xp[k * PGEMM_PANEL + r] = 0.0f;
	}
}

#ifdef PG_X86
/* Packs the columns of the panel's nr rows of x in whole blocks of 16
 * (16 x 16 transposes in registers; missing rows read as zero), so that
 * each line of xp is written whole, once; returns the columns done. */
PG_AVX512 static size_t
pack16(float *xp, const float *x, size_t ldx, size_t nr, size_t n_in)
{
	size_t	k;

	for (k = 0; k + 16 <= n_in; k += 16) {
		__m512	r[16], t[16], u[16];

		for (size_t i = 0; i < 16; i++)
			r[i] = i < nr ? _mm512_loadu_ps(x + i * ldx + k) :
			    _mm512_setzero_ps();
		/* Rows 4g..4g+3: u[4g + j] holds, in 128-bit lane l,
		 * column 4l + j of the four rows. */
		for (int i = 0; i < 16; i += 2) {
			t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
			t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
		}
		for (int g = 0; g < 16; g += 4) {
			u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
			u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xee);
			u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
			u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xee);
		}
		/* Then lane l of u[j], u[4 + j], u[8 + j], u[12 + j] is
		 * column 4l + j of all 16 rows. */
		for (int j = 0; j < 4; j++) {
			__m512	v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
			__m512	v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
			__m512	v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j],
				    0x88);
			__m512	v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j],
				    0xdd);
			float	*c = xp + (k + (size_t)j) * PGEMM_PANEL;

			_mm512_storeu_ps(c, _mm512_shuffle_f32x4(v0, v2,
			    0x88));
			_mm512_storeu_ps(c + 4 * PGEMM_PANEL,
			    _mm512_shuffle_f32x4(v1, v3, 0x88));
			_mm512_storeu_ps(c + 8 * PGEMM_PANEL,
			    _mm512_shuffle_f32x4(v0, v2, 0xdd));
			_mm512_storeu_ps(c + 12 * PGEMM_PANEL,
			    _mm512_shuffle_f32x4(v1, v3, 0xdd));
		}
	}
	return k;
}

/* Writes the sums of one panel against PGEMM_NR weight rows (a[j]: the
 * panel's 16 rows for weight row j) to its first n rows of y, eight
 * floats a row.  4x4 transposes within each 128-bit lane of a[0..3] and
 * of a[4..7] leave row 4i + c of the panel in lane i of u[c] and v[c]. */
PG_INLINE void
store8(float *y, size_t ldy, const __m512 *a, size_t n)
{
	__m512	u[4], v[4];

	for (int h = 0; h < 2; h++) {
		const __m512	*s = a + 4 * h;
		__m512		*d = h == 0 ? u : v;
		__m512		 t0 = _mm512_unpacklo_ps(s[0], s[1]);
		__m512		 t1 = _mm512_unpacklo_ps(s[2], s[3]);
		__m512		 t2 = _mm512_unpackhi_ps(s[0], s[1]);
		__m512		 t3 = _mm512_unpackhi_ps(s[2], s[3]);

		d[0] = _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0));
		d[1] = _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2));
		d[2] = _mm512_shuffle_ps(t2, t3, _MM_SHUFFLE(1, 0, 1, 0));
		d[3] = _mm512_shuffle_ps(t2, t3, _MM_SHUFFLE(3, 2, 3, 2));
	}
#define PG_ST(i)							\
	for (int c = 0; c < 4 && (size_t)(4 * (i) + c) < n; c++) {	\
		float	*yr = y + (size_t)(4 * (i) + c) * ldy;		\
									\
		_mm_storeu_ps(yr, _mm512_extractf32x4_ps(u[c], (i)));	\
		_mm_storeu_ps(yr + 4, _mm512_extractf32x4_ps(v[c], (i))); \
	}
	PG_ST(0)
	PG_ST(1)
	PG_ST(2)
	PG_ST(3)
#undef PG_ST
}

/* The sums of np panels (np <= PG_TP, constant after inlining) against
 * nr weight rows (1 or PGEMM_NR), then written to the rows of y that
 * exist (nrows from the tile's first). */
PG_INLINE void
tile_k(float *y, size_t ldy, const float *xp, size_t n_in, size_t nrows,
    const int np, const float *w, size_t ldw, const int nr, const char *pf,
    size_t pf_ld, size_t pf_len)
{
	__m512		acc[PG_TP][PGEMM_NR];
	const size_t	ps = n_in * PGEMM_PANEL;

#pragma GCC unroll 4
	for (int p = 0; p < np; p++) {
#pragma GCC unroll 8
		for (int j = 0; j < nr; j++)
			acc[p][j] = _mm512_setzero_ps();
	}
	for (size_t k = 0; k < n_in; k++) {
		__m512	a[PG_TP];

		/* A line of each next row every 16 steps: the F32 rows'
		 * pace; shorter rows are done early. */
		if (pf != NULL && (k & 15) == 0 && 4 * k < pf_len) {
#pragma GCC unroll 8
			for (int j = 0; j < PGEMM_NR; j++)
				_mm_prefetch(pf + j * pf_ld + 4 * k,
				    _MM_HINT_T1);
		}
#pragma GCC unroll 4
		for (int p = 0; p < np; p++)
			a[p] = _mm512_loadu_ps(xp + p * ps + k * PGEMM_PANEL);
#pragma GCC unroll 8
		for (int j = 0; j < nr; j++) {
			__m512	b = _mm512_set1_ps(w[j * ldw + k]);

#pragma GCC unroll 4
			for (int p = 0; p < np; p++)
				acc[p][j] = _mm512_fmadd_ps(a[p], b,
				    acc[p][j]);
		}
	}
	for (int p = 0; p < np; p++) {
		float	*yp = y + (size_t)p * PGEMM_PANEL * ldy;
		size_t	 n = nrows - (size_t)p * PGEMM_PANEL;

		if (n > PGEMM_PANEL)
			n = PGEMM_PANEL;
		if (nr == PGEMM_NR)
			store8(yp, ldy, acc[p], n);
		else {
			float	t[PGEMM_PANEL];

			_mm512_storeu_ps(t, acc[p][0]);
			for (size_t r = 0; r < n; r++)
				yp[r * ldy] = t[r];
		}
	}
}

/* One tile: np panels from xp, nr weight rows (1 or PGEMM_NR). */
PG_AVX512 static void
tile(float *y, size_t ldy, const float *xp, size_t n_in, size_t nrows,
    int np, const float *w, size_t ldw, int nr, const char *pf, size_t pf_ld,
    size_t pf_len)
{
#define PG_TILE(np_, nr_)	tile_k(y, ldy, xp, n_in, nrows, (np_), w, \
				    ldw, (nr_), pf, pf_ld, pf_len)
	if (nr == PGEMM_NR) {
		switch (np) {
		case 3:
			PG_TILE(3, PGEMM_NR);
			break;
		case 2:
			PG_TILE(2, PGEMM_NR);
			break;
		default:
			PG_TILE(1, PGEMM_NR);
			break;
		}
		return;
	}
	switch (np) {
	case 3:
		PG_TILE(3, 1);
		break;
	case 2:
		PG_TILE(2, 1);
		break;
	default:
		PG_TILE(1, 1);
		break;
	}
#undef PG_TILE
}
#endif

void
pgemm_rows(float *y, size_t ldy, const float *xp, size_t rows, size_t n_in,
    const float *w, size_t ldw, size_t nr, const void *next, size_t next_ld,
    size_t next_len)
{
#ifdef PG_X86
	size_t		 npan = (rows + PGEMM_PANEL - 1) / PGEMM_PANEL;
	const char	*pf = next;

	/* The first tile alone prefetches: it reads the weight rows
	 * from memory too, and the rest find them in cache. */
	for (size_t p = 0; p < npan; p += PG_TP, pf = NULL) {
		int	np = npan - p < PG_TP ? (int)(npan - p) : PG_TP;
		size_t	r0 = p * PGEMM_PANEL;

		if (nr == PGEMM_NR) {
			tile(y + r0 * ldy, ldy, xp + p * n_in * PGEMM_PANEL,
			    n_in, rows - r0, np, w, ldw, PGEMM_NR, pf,
			    next_ld, next_len);
			continue;
		}
		for (size_t o = 0; o < nr; o++)
			tile(y + r0 * ldy + o, ldy, xp + p * n_in *
			    PGEMM_PANEL, n_in, rows - r0, np, w + o * ldw,
			    ldw, 1, o == 0 ? pf : NULL, next_ld, next_len);
	}
#else
	(void)y, (void)ldy, (void)xp, (void)rows, (void)n_in, (void)w;
	(void)ldw, (void)nr, (void)next, (void)next_ld, (void)next_len;
#endif
}

/* --- element-wise --- */

#ifdef PG_X86
/* e^x: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so r is
 * exact), e^r by its Taylor series to r^6 (relative error under 2e-7 on
 * that range), then scaled by 2^n; below -104 it is 0, above 88.7 inf. */
PG_AVX512 static __m512
exp16(__m512 x)
{
	__m512	n, r, p;

	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)),
	    _mm512_set1_ps(88.8f));
	n = _mm512_roundscale_ps(_mm512_mul_ps(x,
	    _mm512_set1_ps(1.44269504089f)),
	    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
	p = _mm512_set1_ps(1.0f / 720.0f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

/* Lanes [0, n) of a block of 16. */
#define PG_MASK(n)	((__mmask16)((n) >= 16 ? 0xffff : (1u << (n)) - 1))

PG_AVX512 static void
softmax16(float *s, size_t n, size_t nz)
{
	__m512	vm = _mm512_set1_ps(-INFINITY), vs = _mm512_setzero_ps();
	__m512	mx, inv;

	for (size_t i = 0; i < n; i += 16)
		vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(vm,
		    PG_MASK(n - i), s + i));
	mx = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
	for (size_t i = 0; i < n; i += 16) {
		__mmask16	k = PG_MASK(n - i);
		__m512		e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k,
				    s + i), mx));

		_mm512_mask_storeu_ps(s + i, k, e);
		vs = _mm512_mask_add_ps(vs, k, vs, e);
	}
	inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vs));
	for (size_t i = 0; i < n; i += 16) {
		__mmask16	k = PG_MASK(n - i);

		_mm512_mask_storeu_ps(s + i, k, _mm512_mul_ps(
		    _mm512_maskz_loadu_ps(k, s + i), inv));
	}
	if (nz > n)
		memset(s + n, 0, (nz - n) * sizeof(float));
}

PG_AVX512 static void
swiglu16(float *g, const float *u, size_t n)
{
	const __m512	one = _mm512_set1_ps(1.0f);

	for (size_t i = 0; i < n; i += 16) {
		__mmask16	k = PG_MASK(n - i);
		__m512		x = _mm512_maskz_loadu_ps(k, g + i);
		__m512		d = _mm512_add_ps(one, exp16(
				    _mm512_sub_ps(_mm512_setzero_ps(), x)));

		_mm512_mask_storeu_ps(g + i, k, _mm512_mul_ps(_mm512_div_ps(x,
		    d), _mm512_maskz_loadu_ps(k, u + i)));
	}
}

PG_AVX512 static void
exp_shift16(float *dst, const float *src, size_t n, float sub, float scale)
{
	const __m512	vsub = _mm512_set1_ps(sub), vsc = _mm512_set1_ps(scale);
	const __m512	ninf = _mm512_set1_ps(-INFINITY);

	for (size_t i = 0; i < n; i += 16) {
		__mmask16	k = PG_MASK(n - i);
		__m512		x = _mm512_maskz_loadu_ps(k, src + i);
		__mmask16	live = _mm512_mask_cmp_ps_mask(k, x, ninf,
				    _CMP_NEQ_OQ);

		_mm512_mask_storeu_ps(dst + i, k, _mm512_maskz_mov_ps(live,
		    exp16(_mm512_mul_ps(_mm512_sub_ps(x, vsub), vsc))));
	}
}
#endif

void
pgemm_softmax(float *s, size_t n, size_t nz)
{
#ifdef PG_X86
	softmax16(s, n, nz);
#else
	(void)s, (void)n, (void)nz;
#endif
}

void
pgemm_swiglu(float *g, const float *u, size_t n)
{
#ifdef PG_X86
	swiglu16(g, u, n);
#else
	(void)g, (void)u, (void)n;
#endif
}

void
pgemm_exp(float *dst, const float *src, size_t n, float sub, float scale)
{
#ifdef PG_X86
	exp_shift16(dst, src, n, sub, scale);
#else
	(void)dst, (void)src, (void)n, (void)sub, (void)scale;
#endif
}
