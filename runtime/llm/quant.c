/* runtime/llm/quant.c - see quant.h.
 *
 * Block layouts, as ggml defines them:
 *   BF16: the top 16 bits of an F32.
 *   Q8_0: 32 elements in 34 bytes, F16 scale d then int8 q[32]; x = d * q.
 *   Q4_0: 32 elements in 18 bytes, F16 scale d then 16 bytes of nibbles;
 *         x[j] = d * ((b[j] & 15) - 8), x[j + 16] = d * ((b[j] >> 4) - 8).
 *   Q4_K: 256 elements in 144 bytes: F16 d and dmin, 12 bytes of eight
 *         6-bit scales and mins, 128 bytes of nibbles; sub-block s (32
 *         elements) is x = d * sc[s] * q - dmin * m[s], q the low nibbles
 *         of bytes 32 * (s / 2) .. for even s, the high ones for odd s.
 *   Q5_K: Q4_K's layout with 32 bytes of high bits after the scales (bit
 *         s of byte l is element l's fifth bit in sub-block s), so 176
 *         bytes and q in 0..31.
 *   Q6_K: 256 elements in 210 bytes: 128 bytes of low nibbles, 64 of
 *         high bit pairs, sixteen int8 scales (one per 16 elements), F16
 *         d; x = d * sc * (q - 32), q 6 bits.
 * The K types are here so that the files most often shared (Q4_K_M mixes
 * Q4_K and Q6_K, Q5_K_M Q5_K and Q6_K) load: their avx2 kernels
 * dequantize each weight exactly as quant_dequant() does (one product and
 * one difference for Q4_K and Q5_K, two products for Q6_K) and
 * multiply-add it; the generic set dequantizes a block at a time.
 *
 * Two sets of kernels, chosen once in quant_init() by what the CPU has:
 *   avx2     x86-64 with AVX2, FMA and F16C: intrinsics, fused
 *            multiply-adds, F16 rows converted by vcvtph2ps; with
 *            AVX-512F as well, quant_dot_rows() takes F32, F16 and
 *            BF16 rows four at a time in zmm registers, the same sums
 *            in the same order (avx512_rows4());
 *   generic  GCC vector extensions (8 float lanes), anything else.
 * A process uses one set for its whole life, and within a set every dot
 * product is computed in an order fixed by n alone: one vector or four
 * sharing the row, the same accumulators in the same order.  So a row and
 * a vector always give the same bits, whatever else is in the batch.
 * Decode is bound by memory bandwidth: the point of quant_dot_n is that a
 * weight row is read from memory once per step for up to four sequences,
 * and the point of the avx2 set is to keep up with the memory at all on
 * one core (F16 by table lookups cannot). */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define QUANT_X86	1
#define AVX2		__attribute__((target("avx2,fma,f16c")))
#define AVX512		__attribute__((target("avx512f,avx2,fma,f16c")))
#endif
/* Bytes ahead of the loads that the kernels prefetch.  A decode step
 * streams every weight once, and the hardware prefetchers stop at each
 * 4 KiB page: asking for the row's next lines this far ahead keeps the
 * misses overlapped across page (and row) boundaries.  Past the end of
 * the matrix it fetches a little of whatever follows, or nothing:
 * prefetches never fault. */
#ifndef PF_AHEAD
#define PF_AHEAD	2048
#endif
/* The address is computed as an integer: it may lie past the row's
 * object, where pointer arithmetic would be undefined. */
#define PREFETCH(p)	_mm_prefetch((const char *)((uintptr_t)(p) + \
	    PF_AHEAD), _MM_HINT_T0)
/* With three or four vectors the kernel spends more time on each line
 * and the near prefetch into L1 no longer hides the memory's latency:
 * those kernels ask for lines into L2 this far ahead instead (a 4-vector
 * step went from 21 to 15 ms per 389 MB on one core; with one or two
 * vectors the near prefetch stays faster). */
#ifndef PF_FAR
#define PF_FAR	8192
#endif
#define PREFETCH_FAR(p)	_mm_prefetch((const char *)((uintptr_t)(p) + \
	    PF_FAR), _MM_HINT_T1)

#include "common/cpu.h"
#include "runtime/llm/pgemm.h"
#include "runtime/llm/quant.h"


typedef float	v8f __attribute__((vector_size(32)));
typedef int8_t	v8b __attribute__((vector_size(8)));
typedef int32_t	v8i __attribute__((vector_size(32)));

static float		 f16_table[65536];
static pthread_once_t	 f16_once = PTHREAD_ONCE_INIT;
static bool		 use_avx2;	/* set once, by f16_fill() */
static bool		 use_avx512;	/* avx2 and AVX-512F, likewise */

static void	f16_fill(void);
static float	f16_compute(uint16_t);
static float	dot_f32(const float *, const float *, size_t);
static float	dot_f16(const uint8_t *, const float *, size_t, bool);
static float	dot_q8_0(const uint8_t *, const float *, size_t);
static float	dot_q4_0(const uint8_t *, const float *, size_t);
static void	dequant_q4k(const uint8_t *, float *);
static void	dequant_q5k(const uint8_t *, float *);
static void	dequant_q6k(const uint8_t *, float *);
static float	dot_kblocks(enum ggml_type, const uint8_t *, const float *,
		    size_t);
static float	dot_generic(enum ggml_type, const void *, const float *,
		    size_t);
#ifdef QUANT_X86
static void	avx2_dequant_f16(const uint8_t *, float *, size_t);
static void	avx512_dequant_f16(const uint8_t *, float *, size_t);
static void	avx2_f32_nx(const float *, const float *, size_t, int,
		    size_t, float *, size_t);
static void	avx2_f16_nx(const uint8_t *, const float *, size_t, int,
		    size_t, float *, size_t, bool);
static void	avx2_q8_0(const uint8_t *, const float *, size_t, int,
		    size_t, float *, size_t);
static void	avx2_q4_0(const uint8_t *, const float *, size_t, int,
		    size_t, float *, size_t);
static void	avx2_kquant_nx(enum ggml_type, const uint8_t *,
		    const float *, size_t, int, size_t, float *, size_t);
#endif

static float
f16_compute(uint16_t h)
{
	uint32_t	sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t	e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
	float		f;

	if (e == 0) {
		/* Zero or subnormal: m * 2^-24, exact in a float. */
		f = (float)m * 0x1.0p-24f;
		return sign ? -f : f;
	}
	if (e == 0x1f)
		x = sign | 0x7f800000 | (m << 13);
	else
		x = sign | ((e - 15 + 127) << 23) | (m << 13);
	memcpy(&f, &x, 4);
	return f;
}

static void
f16_fill(void)
{
	for (uint32_t i = 0; i < 65536; i++)
		f16_table[i] = f16_compute((uint16_t)i);
#ifdef QUANT_X86
	{
		unsigned int	a, b, c, d;

		/* F16C by cpuid (leaf 1, ecx bit 29): clang's
		 * __builtin_cpu_supports does not know it. */
		__builtin_cpu_init();
		use_avx2 = !cpu_portable() &&
		    __builtin_cpu_supports("avx2") &&
		    __builtin_cpu_supports("fma") &&
		    __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
		use_avx512 = use_avx2 && __builtin_cpu_supports("avx512f");
	}
#endif
}

const char *
quant_kernels(void)
{
	quant_init();
	if (use_avx512)
		return "avx512f+avx2+fma+f16c";
	return use_avx2 ? "avx2+fma+f16c" : "generic";
}

void
quant_init(void)
{
	pthread_once(&f16_once, f16_fill);
}

bool
quant_supported(enum ggml_type t)
{
	return t == GGML_T_F32 || t == GGML_T_F16 || t == GGML_T_BF16 ||
	    t == GGML_T_Q8_0 || t == GGML_T_Q4_0 || t == GGML_T_Q4_K ||
	    t == GGML_T_Q5_K || t == GGML_T_Q6_K;
}

float
quant_f16(uint16_t h)
{
	return f16_table[h];
}

static inline uint16_t
le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* A BF16 value: the top 16 bits of an F32. */
static inline float
bf16(uint16_t h)
{
	uint32_t	u = (uint32_t)h << 16;
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* Scale and min of Q4_K sub-block j (0..7) from the block's 12 bytes:
 * 0..3 in the low 6 bits of bytes j and j + 4, 4..7 in the nibbles of
 * byte j + 4 and the top 2 bits of bytes j - 4 and j. */
static inline void
q4k_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4;
		*m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
	}
}

/* The 256 elements of a Q4_K block (qh NULL) or a Q5_K one (qh its 32
 * bytes of high bits) at p, the nibbles at q. */
static void
dequant_k45(const uint8_t *p, const uint8_t *qh, const uint8_t *q, float *y)
{
	float		 d = f16_table[le16(p)], dmin = f16_table[le16(p + 2)];
	const uint8_t	*sc = p + 4;
	int		 s, m;

	for (int j = 0; j < 8; j += 2, q += 32, y += 64) {
		float	d1, m1, d2, m2;

		q4k_scale_min(j, sc, &s, &m);
		d1 = d * (float)s;
		m1 = dmin * (float)m;
		q4k_scale_min(j + 1, sc, &s, &m);
		d2 = d * (float)s;
		m2 = dmin * (float)m;
		for (int l = 0; l < 32; l++) {
			int	lo = q[l] & 15, hi = q[l] >> 4;

			if (qh != NULL) {
				lo |= (qh[l] >> j & 1) << 4;
				hi |= (qh[l] >> (j + 1) & 1) << 4;
			}
			y[l] = d1 * (float)lo - m1;
			y[32 + l] = d2 * (float)hi - m2;
		}
	}
}

/* The 256 elements of the Q4_K block at p. */
static void
dequant_q4k(const uint8_t *p, float *y)
{
	dequant_k45(p, NULL, p + 16, y);
}

/* The 256 elements of the Q5_K block at p. */
static void
dequant_q5k(const uint8_t *p, float *y)
{
	dequant_k45(p, p + 16, p + 48, y);
}

/* The 256 elements of the Q6_K block at p: each half of 128 takes 64
 * bytes of low nibbles, 32 of high bit pairs and 8 scales. */
static void
dequant_q6k(const uint8_t *p, float *y)
{
	const uint8_t	*ql = p, *qh = p + 128;
	const int8_t	*sc = (const int8_t *)(const void *)(p + 192);
	float		 d = f16_table[le16(p + 208)];

	for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128)
		for (int l = 0; l < 32; l++) {
			int	is = l / 16;
			int	q1 = ((ql[l] & 15) | (qh[l] & 3) << 4) - 32;
			int	q2 = ((ql[l + 32] & 15) | (qh[l] >> 2 & 3) <<
				    4) - 32;
			int	q3 = ((ql[l] >> 4) | (qh[l] >> 4 & 3) << 4) -
				    32;
			int	q4 = ((ql[l + 32] >> 4) | (qh[l] >> 6 & 3) <<
				    4) - 32;

			y[l] = d * (float)sc[is] * (float)q1;
			y[l + 32] = d * (float)sc[is + 2] * (float)q2;
			y[l + 64] = d * (float)sc[is + 4] * (float)q3;
			y[l + 96] = d * (float)sc[is + 6] * (float)q4;
		}
}

void
quant_dequant(enum ggml_type t, const void *w, float *dst, size_t n)
{
	const uint8_t	*p = w;

	switch (t) {
	case GGML_T_F32:
		memcpy(dst, w, n * sizeof(float));
		break;
	case GGML_T_F16:
#ifdef QUANT_X86
		if (use_avx512) {
			avx512_dequant_f16(p, dst, n);
			break;
		}
		if (use_avx2) {
			avx2_dequant_f16(p, dst, n);
			break;
		}
#endif
		for (size_t i = 0; i < n; i++)
			dst[i] = f16_table[le16(p + 2 * i)];
		break;
	case GGML_T_BF16:
		for (size_t i = 0; i < n; i++)
			dst[i] = bf16(le16(p + 2 * i));
		break;
	case GGML_T_Q8_0:
		for (size_t b = 0; b < n / 32; b++, p += 34) {
			float	d = f16_table[le16(p)];

			for (int j = 0; j < 32; j++)
				dst[b * 32 + j] = d * (float)(int8_t)p[2 + j];
		}
		break;
	case GGML_T_Q4_0:
		for (size_t b = 0; b < n / 32; b++, p += 18) {
			float	d = f16_table[le16(p)];

			for (int j = 0; j < 16; j++) {
				dst[b * 32 + j] = d * (float)((p[2 + j] & 15) -
				    8);
				dst[b * 32 + j + 16] = d * (float)((p[2 + j] >>
				    4) - 8);
			}
		}
		break;
	case GGML_T_Q4_K:
		for (size_t b = 0; b < n / 256; b++)
			dequant_q4k(p + b * 144, dst + b * 256);
		break;
	case GGML_T_Q5_K:
		for (size_t b = 0; b < n / 256; b++)
			dequant_q5k(p + b * 176, dst + b * 256);
		break;
	case GGML_T_Q6_K:
		for (size_t b = 0; b < n / 256; b++)
			dequant_q6k(p + b * 210, dst + b * 256);
		break;
	default:
		memset(dst, 0, n * sizeof(float));
		break;
	}
}

/* Sum of the lanes, in a fixed order (a macro: passing a vector by value
 * to a function would depend on the target's ABI). */
#define HSUM(v)	((((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + \
	    (((v)[2] + (v)[6]) + ((v)[3] + (v)[7])))

/* Element i of a: F32, or F16 (half, widened exactly). */
static inline float
elem(const void *a, size_t i, bool half)
{
	return half ? f16_table[((const uint16_t *)a)[i]] :
	    ((const float *)a)[i];
}

/* Sum of a[i] * x[i], a F32 or F16 (half): the F16 sum is the F32 sum of
 * the floats the entries hold, bit for bit. */
static inline float
dot_any(const void *a, const float *x, size_t n, bool half)
{
	v8f	acc0 = { 0 }, acc1 = { 0 }, va, vx, vb, vy;
	size_t	i = 0;
	float	s;

	for (; i + 16 <= n; i += 16) {
		if (half)
			for (int j = 0; j < 8; j++) {
				va[j] = elem(a, i + (size_t)j, true);
				vb[j] = elem(a, i + 8 + (size_t)j, true);
			}
		else {
			memcpy(&va, (const float *)a + i, sizeof(va));
			memcpy(&vb, (const float *)a + i + 8, sizeof(vb));
		}
		memcpy(&vx, x + i, sizeof(vx));
		memcpy(&vy, x + i + 8, sizeof(vy));
		acc0 += va * vx;
		acc1 += vb * vy;
	}
	acc0 += acc1;
	s = HSUM(acc0);
	for (; i < n; i++)
		s += elem(a, i, half) * x[i];
	return s;
}

static float
dot_f32(const float *a, const float *x, size_t n)
{
	return dot_any(a, x, n, false);
}

/* F16 or, if bf, BF16 weights. */
static float
dot_f16(const uint8_t *p, const float *x, size_t n, bool bf)
{
	v8f	acc = { 0 }, va = { 0 }, vx;
	size_t	i = 0;
	float	s;

	for (; i + 8 <= n; i += 8) {
		for (int j = 0; j < 8; j++)
			va[j] = bf ? bf16(le16(p + 2 * (i + j))) :
			    f16_table[le16(p + 2 * (i + j))];
		memcpy(&vx, x + i, sizeof(vx));
		acc += va * vx;
	}
	s = HSUM(acc);
	for (; i < n; i++)
		s += (bf ? bf16(le16(p + 2 * i)) : f16_table[le16(p + 2 *
		    i)]) * x[i];
	return s;
}

static float
dot_q8_0(const uint8_t *p, const float *x, size_t n)
{
	v8f	acc = { 0 };

	for (size_t b = 0; b < n / 32; b++, p += 34) {
		v8f	blk = { 0 }, vx;
		v8b	q;
		float	d = f16_table[le16(p)];

		for (int j = 0; j < 32; j += 8) {
			memcpy(&q, p + 2 + j, sizeof(q));
			memcpy(&vx, x + b * 32 + j, sizeof(vx));
			blk += __builtin_convertvector(q, v8f) * vx;
		}
		acc += blk * d;
	}
	return HSUM(acc);
}

static float
dot_q4_0(const uint8_t *p, const float *x, size_t n)
{
	v8f	acc = { 0 };

	for (size_t b = 0; b < n / 32; b++, p += 18) {
		v8f	blk = { 0 }, vx;
		v8i	lo, hi;
		float	d = f16_table[le16(p)];

		for (int j = 0; j < 16; j += 8) {
			for (int k = 0; k < 8; k++) {
				lo[k] = (p[2 + j + k] & 15) - 8;
				hi[k] = (p[2 + j + k] >> 4) - 8;
			}
			memcpy(&vx, x + b * 32 + j, sizeof(vx));
			blk += __builtin_convertvector(lo, v8f) * vx;
			memcpy(&vx, x + b * 32 + 16 + j, sizeof(vx));
			blk += __builtin_convertvector(hi, v8f) * vx;
		}
		acc += blk * d;
	}
	return HSUM(acc);
}

/* A K-type row against x: each block dequantized (quant_dequant()),
 * then its products added into eight lanes as dot_f32's are. */
static float
dot_kblocks(enum ggml_type t, const uint8_t *p, const float *x, size_t n)
{
	float	blk[256];
	v8f	acc = { 0 }, va, vx;
	size_t	bsz = (size_t)ggml_nbytes(t, 256);

	for (size_t b = 0; b < n / 256; b++, p += bsz) {
		quant_dequant(t, p, blk, 256);
		for (int j = 0; j < 256; j += 8) {
			memcpy(&va, blk + j, sizeof(va));
			memcpy(&vx, x + b * 256 + (size_t)j, sizeof(vx));
			acc += va * vx;
		}
	}
	return HSUM(acc);
}

static float
dot_generic(enum ggml_type t, const void *w, const float *x, size_t n)
{
	switch (t) {
	case GGML_T_Q4_K:
	case GGML_T_Q5_K:
	case GGML_T_Q6_K:
		return dot_kblocks(t, w, x, n);
	case GGML_T_F32:
		return dot_f32(w, x, n);
	case GGML_T_F16:
	case GGML_T_BF16:
		return dot_f16(w, x, n, t == GGML_T_BF16);
	case GGML_T_Q8_0:
		return dot_q8_0(w, x, n);
	case GGML_T_Q4_0:
		return dot_q4_0(w, x, n);
	default:
		return 0.0f;
	}
}

#ifdef QUANT_X86
/* --- avx2 --- */

/* Sum of the lanes of v plus s, in a fixed order. */
AVX2 static inline float
avx2_hsum(__m256 v, float s)
{
	__m128	q = _mm_add_ps(_mm256_castps256_ps128(v),
		    _mm256_extractf128_ps(v, 1));

	q = _mm_add_ps(q, _mm_movehl_ps(q, q));
	q = _mm_add_ss(q, _mm_movehdup_ps(q));
	return _mm_cvtss_f32(q) + s;
}

/* The same conversion sixteen halves at a time, for prefill, which widens
 * every F16 weight row once a chunk: a fifth less time than the AVX2
 * loop where the rows are in cache. */
AVX512 static void
avx512_dequant_f16(const uint8_t *p, float *dst, size_t n)
{
	size_t	i = 0;

	for (; i + 32 <= n; i += 32) {
		__m512	a = _mm512_cvtph_ps(_mm256_loadu_si256(
			    (const __m256i *)(const void *)(p + 2 * i)));
		__m512	b = _mm512_cvtph_ps(_mm256_loadu_si256(
			    (const __m256i *)(const void *)(p + 2 * i + 32)));

		_mm512_storeu_ps(dst + i, a);
		_mm512_storeu_ps(dst + i + 16, b);
	}
	avx2_dequant_f16(p + 2 * i, dst + i, n - i);
}

AVX2 static void
avx2_dequant_f16(const uint8_t *p, float *dst, size_t n)
{
	size_t	i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
		    (const __m128i *)(const void *)(p + 2 * i))));
	for (; i < n; i++)
		dst[i] = f16_table[le16(p + 2 * i)];
}

/* The kernels take up to four vectors (nx 1..4); the loops over them are
 * unrolled so the accumulators stay in registers.  Each vector has its
 * own two accumulators (even and odd groups of 8), summed the same way
 * for any nx, so one vector's bits do not depend on the others. */
AVX2 static inline __attribute__((always_inline)) void
avx2_f32(const float *w, const float *x, size_t ldx, int nx, size_t n,
    float *y, size_t ldy)
{
	__m256	a0[4], a1[4];
	size_t	i = 0, nv = n & ~(size_t)15;

#pragma GCC unroll 4
	for (int r = 0; r < 4; r++)
		a0[r] = a1[r] = _mm256_setzero_ps();
	for (; i < nv; i += 16) {
		__m256	w0 = _mm256_loadu_ps(w + i);
		__m256	w1 = _mm256_loadu_ps(w + i + 8);

		if (nx >= 3)
			PREFETCH_FAR(w + i);
		else
			PREFETCH(w + i);

#pragma GCC unroll 4
		for (int r = 0; r < 4; r++) {
			if (r >= nx)
				break;
			a0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x +
			    r * ldx + i), a0[r]);
			a1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x +
			    r * ldx + i + 8), a1[r]);
		}
	}
	for (int r = 0; r < nx; r++) {
		const float	*xr = x + r * ldx;
		float		 s = 0.0f;

		for (size_t j = nv; j < n; j++)
			s += w[j] * xr[j];
		y[r * ldy] = avx2_hsum(_mm256_add_ps(a0[r], a1[r]), s);
	}
}

/* Eight 16-bit weights at p as floats: F16, or BF16 (bf), the top half
 * of an F32. */
AVX2 static inline __attribute__((always_inline)) __m256
avx2_h8(const uint8_t *p, const bool bf)
{
	__m128i	h = _mm_loadu_si128((const __m128i *)(const void *)p);

	if (bf)
		return _mm256_castsi256_ps(_mm256_slli_epi32(
		    _mm256_cvtepu16_epi32(h), 16));
	return _mm256_cvtph_ps(h);
}

/* Sixteen F16 (BF16 if bf) weights at p + 2 * i against each vector's x
 * + i: the even group of 8 into a0, the odd into a1. */
AVX2 static inline __attribute__((always_inline)) void
avx2_f16_16(const uint8_t *p, const float *x, size_t ldx, int nx, size_t i,
    __m256 *a0, __m256 *a1, const bool bf)
{
	__m256	w0 = avx2_h8(p + 2 * i, bf);
	__m256	w1 = avx2_h8(p + 2 * i + 16, bf);

#pragma GCC unroll 4
	for (int r = 0; r < 4; r++) {
		if (r >= nx)
			break;
		a0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * ldx + i),
		    a0[r]);
		a1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + r * ldx + i +
		    8), a1[r]);
	}
}

/* A line of F16 (BF16) weights (32) a step, one prefetch each, then the
 * last 16 if any: the same sums in the same order as 16 at a time. */
AVX2 static inline __attribute__((always_inline)) void
avx2_f16(const uint8_t *p, const float *x, size_t ldx, int nx, size_t n,
    float *y, size_t ldy, const bool bf)
{
	__m256	a0[4], a1[4];
	size_t	i = 0, nv = n & ~(size_t)15;

#pragma GCC unroll 4
	for (int r = 0; r < 4; r++)
		a0[r] = a1[r] = _mm256_setzero_ps();
	for (; i + 32 <= nv; i += 32) {
		if (nx >= 3)
			PREFETCH_FAR(p + 2 * i);
		else
			PREFETCH(p + 2 * i);
		avx2_f16_16(p, x, ldx, nx, i, a0, a1, bf);
		avx2_f16_16(p, x, ldx, nx, i + 16, a0, a1, bf);
	}
	if (i < nv) {
		avx2_f16_16(p, x, ldx, nx, i, a0, a1, bf);
		i += 16;
	}
	for (int r = 0; r < nx; r++) {
		const float	*xr = x + r * ldx;
		float		 s = 0.0f;

		for (size_t j = nv; j < n; j++)
			s += (bf ? bf16(le16(p + 2 * j)) :
			    f16_table[le16(p + 2 * j)]) * xr[j];
		y[r * ldy] = avx2_hsum(_mm256_add_ps(a0[r], a1[r]), s);
	}
}

/* The F32 and F16 kernels compiled for each nx, so that the loops over
 * the vectors have constant bounds: the weight stream's loop then holds
 * only loads and multiply-adds. */
AVX2 static void
avx2_f32_nx(const float *w, const float *x, size_t ldx, int nx, size_t n,
    float *y, size_t ldy)
{
	switch (nx) {
	case 1:
		avx2_f32(w, x, ldx, 1, n, y, ldy);
		break;
	case 2:
		avx2_f32(w, x, ldx, 2, n, y, ldy);
		break;
	case 3:
		avx2_f32(w, x, ldx, 3, n, y, ldy);
		break;
	default:
		avx2_f32(w, x, ldx, 4, n, y, ldy);
		break;
	}
}

AVX2 static void
avx2_f16_nx(const uint8_t *p, const float *x, size_t ldx, int nx, size_t n,
    float *y, size_t ldy, bool bf)
{
#define HCASE(k)							\
	if (bf)								\
		avx2_f16(p, x, ldx, k, n, y, ldy, true);		\
	else								\
		avx2_f16(p, x, ldx, k, n, y, ldy, false);		\
	break
	switch (nx) {
	case 1:
		HCASE(1);
	case 2:
		HCASE(2);
	case 3:
		HCASE(3);
	default:
		HCASE(4);
	}
#undef HCASE
}

/* --- avx512: four rows at a time --- */

/* The row types avx512_rows4() reads: 4-byte floats, or 2-byte halves. */
enum wkind { WK_F32, WK_F16, WK_BF16 };

/* Sixteen weights of a row of kind k from element i on. */
AVX512 static inline __attribute__((always_inline)) __m512
avx512_w16(const uint8_t *p, size_t i, const enum wkind k)
{
	__m256i	h;

	if (k == WK_F32)
		return _mm512_loadu_ps((const float *)(const void *)p + i);
	h = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i));
	if (k == WK_BF16)
		return _mm512_castsi512_ps(_mm512_slli_epi32(
		    _mm512_cvtepu16_epi32(h), 16));
	return _mm512_cvtph_ps(h);
}

/* Rows p, p + rb, p + 2 rb and p + 3 rb (n elements, n a multiple of 16)
 * against each vector's x: y[r * ldy + o] for row o and vector r.  The
 * one-row kernels above keep two ymm sums a vector, the even groups of 8
 * in a0 and the odd in a1; here one zmm sum a row and vector takes both,
 * a0's lanes in its low half and a1's in its high half, each lane the
 * same multiply-adds in the same order, and the last step adds the
 * halves and sums the lanes as they do: the same bits.  What changes is
 * that each 16 values of a vector are loaded once for four rows instead
 * of once a row, so the loads no longer hold the multiply-adds back.
 *
 * With two vectors or more, each row's next 16 weights are loaded an
 * iteration ahead of their multiply-adds (wc; the last iteration loads
 * its own again), so that the loads of the stream do not wait behind the
 * multiply-adds of the weights before them.  The sums and their order do
 * not change.  On the 2-core VM, 110M F32 decode of 4 sequences went
 * from 354-381 to 417-421 tok/s (llmspeed, alternated), of 8 from
 * 525-564 to 578-638; of one it lost 10% this way, so one vector keeps
 * the plain loop. */
AVX512 static inline __attribute__((always_inline)) void
avx512_rows4(const uint8_t *p, size_t rb, size_t ahead, const float *x,
    size_t ldx, int nx, size_t n, float *y, size_t ldy, const enum wkind k)
{
	const size_t	es = k == WK_F32 ? 4 : 2;
	__m512		a[4][4], wc[4];

#pragma GCC unroll 4
	for (int o = 0; o < 4; o++)
#pragma GCC unroll 4
		for (int r = 0; r < 4; r++)
			a[o][r] = _mm512_setzero_ps();
	if (nx > 1 && n > 0)
#pragma GCC unroll 4
		for (int o = 0; o < 4; o++)
			wc[o] = avx512_w16(p + o * rb, 0, k);
	for (size_t i = 0; i < n; i += 16) {
		__m512	xv[4];

		/* A line of rows ahead at this column (ahead rows on,
		 * f32_ahead()).  F16 and BF16: the next four rows', into
		 * L2: the one-row kernels' distances ahead would land
		 * mostly in the rows being read.  On the 2-core VM, one
		 * thread streaming a 100 MB F16 matrix for one vector read
		 * 27 GB/s this way, 11 GB/s with those distances.  F32,
		 * twice the bytes a row: non-temporal, further ahead, so
		 * that the stream keeps going while several vectors'
		 * multiply-adds hold the core (on Zen 5, sixteen rows
		 * ahead took 110M F32 decode of 4 sequences from 455 to
		 * 492 tok/s, of one from 140 to 147; F16 lost 8% this
		 * way). */
		if ((i * es) % 64 == 0) {
#pragma GCC unroll 4
			for (int o = 0; o < 4; o++) {
				if (k == WK_F32)
					_mm_prefetch((const char *)((uintptr_t)
					    p + (ahead + (size_t)o) * rb +
					    i * es), _MM_HINT_NTA);
				else
					_mm_prefetch((const char *)((uintptr_t)
					    p + (4 + o) * rb + i * es),
					    _MM_HINT_T1);
			}
		}
#pragma GCC unroll 4
		for (int r = 0; r < 4; r++) {
			if (r >= nx)
				break;
			xv[r] = _mm512_loadu_ps(x + r * ldx + i);
		}
#pragma GCC unroll 4
		for (int o = 0; o < 4; o++) {
			__m512	w;

			if (nx == 1) {
				w = avx512_w16(p + o * rb, i, k);
			} else {
				w = wc[o];
				wc[o] = avx512_w16(p + o * rb,
				    i + 16 < n ? i + 16 : i, k);
			}
#pragma GCC unroll 4
			for (int r = 0; r < 4; r++) {
				if (r >= nx)
					break;
				a[o][r] = _mm512_fmadd_ps(w, xv[r], a[o][r]);
			}
		}
	}
#pragma GCC unroll 4
	for (int o = 0; o < 4; o++)
#pragma GCC unroll 4
		for (int r = 0; r < 4; r++) {
			__m256	lo, hi;

			if (r >= nx)
				break;
			lo = _mm512_castps512_ps256(a[o][r]);
			hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(
			    _mm512_castps_pd(a[o][r]), 1));
			y[r * ldy + o] = avx2_hsum(_mm256_add_ps(lo, hi), 0.0f);
		}
}

/* How many rows ahead avx512_rows4() prefetches F32 rows of rb bytes
 * for nx vectors.  One vector: sixteen.  More: about 24 KiB ahead (8
 * rows of 768 floats, 4 of 2048), a multiple of 4 rows, at least 4.
 * Sixteen rows of 2048 floats are 128 KiB, which the core's other
 * lines pushed out of its 48 KiB L1 before their turn came when
 * several vectors' multiply-adds slowed the stream down: on the 2-core
 * VM, 110M F32 decode (llmspeed, 128 steps, alternated with sixteen
 * rows) of 4 sequences went from 449 and 461 tok/s to 477 and 494 (two
 * runs of 8 pairs, 15 of the 16 pairs faster), of 8 from 571 to 592;
 * one vector lost 4% this way. */
static size_t
f32_ahead(size_t rb, int nx)
{
	size_t	r = (24576 / rb + 3) & ~(size_t)3;

	return nx == 1 ? 16 : r < 4 ? 4 : r;
}

/* avx512_rows4() compiled for each row kind and nx (1..4). */
AVX512 static void
avx512_rows4_nx(enum wkind k, const uint8_t *p, size_t rb, size_t ahead,
    const float *x, size_t ldx, int nx, size_t n, float *y, size_t ldy)
{
#define RCASE(c)							\
	if (k == WK_F32)						\
		avx512_rows4(p, rb, ahead, x, ldx, c, n, y, ldy, WK_F32); \
	else if (k == WK_F16)						\
		avx512_rows4(p, rb, ahead, x, ldx, c, n, y, ldy, WK_F16); \
	else								\
		avx512_rows4(p, rb, ahead, x, ldx, c, n, y, ldy,	\
		    WK_BF16);						\
	break
	switch (nx) {
	case 1:
		RCASE(1);
	case 2:
		RCASE(2);
	case 3:
		RCASE(3);
	default:
		RCASE(4);
	}
#undef RCASE
}

/* Eight int8 at p as floats. */
#define Q8F(p)	_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64( \
	    (const __m128i *)(const void *)(p))))

/* One block of 32 quantized weights, as floats q0..q3 with scale d,
 * against each vector's 32 values at x (vectors ldx apart) into acc. */
AVX2 static inline __attribute__((always_inline)) void
avx2_block32(__m256 *acc, __m256 q0, __m256 q1, __m256 q2, __m256 q3,
    __m256 d, const float *x, size_t ldx, int nx)
{
#pragma GCC unroll 4
	for (int r = 0; r < 4; r++) {
		const float	*xb = x + r * ldx;
		__m256		 blk;

		if (r >= nx)
			break;
		blk = _mm256_mul_ps(q0, _mm256_loadu_ps(xb));
		blk = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xb + 8), blk);
		blk = _mm256_fmadd_ps(q2, _mm256_loadu_ps(xb + 16), blk);
		blk = _mm256_fmadd_ps(q3, _mm256_loadu_ps(xb + 24), blk);
		acc[r] = _mm256_fmadd_ps(blk, d, acc[r]);
	}
}

AVX2 static void
avx2_q8_0(const uint8_t *p, const float *x, size_t ldx, int nx, size_t n,
    float *y, size_t ldy)
{
	__m256	acc[4];

#pragma GCC unroll 4
	for (int r = 0; r < 4; r++)
		acc[r] = _mm256_setzero_ps();
	for (size_t b = 0; b < n / 32; b++, p += 34) {
		__m256	d = _mm256_set1_ps(f16_table[le16(p)]);
		__m256	q0 = Q8F(p + 2), q1 = Q8F(p + 10);
		__m256	q2 = Q8F(p + 18), q3 = Q8F(p + 26);

		PREFETCH(p);

		avx2_block32(acc, q0, q1, q2, q3, d, x + b * 32, ldx, nx);
	}
	for (int r = 0; r < nx; r++)
		y[r * ldy] = avx2_hsum(acc[r], 0.0f);
}

AVX2 static void
avx2_q4_0(const uint8_t *p, const float *x, size_t ldx, int nx, size_t n,
    float *y, size_t ldy)
{
	const __m128i	lowmask = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
	__m256		acc[4];

#pragma GCC unroll 4
	for (int r = 0; r < 4; r++)
		acc[r] = _mm256_setzero_ps();
	for (size_t b = 0; b < n / 32; b++, p += 18) {
		__m256	d = _mm256_set1_ps(f16_table[le16(p)]);
		__m128i	raw = _mm_loadu_si128((const __m128i *)(const void *)
			    (p + 2));
		__m128i	lo = _mm_sub_epi8(_mm_and_si128(raw, lowmask), eight);
		__m128i	hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4),
			    lowmask), eight);
		__m256	q0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
		__m256	q1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
			    _mm_srli_si128(lo, 8)));
		__m256	q2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
		__m256	q3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
			    _mm_srli_si128(hi, 8)));

		if ((b & 3) == 0)
			PREFETCH(p);
		avx2_block32(acc, q0, q1, q2, q3, d, x + b * 32, ldx, nx);
	}
	for (int r = 0; r < nx; r++)
		y[r * ldy] = avx2_hsum(acc[r], 0.0f);
}

/* Eight weights w (dequantized exactly as quant_dequant() does) against
 * each vector's eight values at x: into a0 for an even group of eight of
 * the block, a1 for an odd one, as avx2_f32() adds them. */
AVX2 static inline __attribute__((always_inline)) void
avx2_k8(__m256 w, const float *x, size_t ldx, int nx, __m256 *acc)
{
#pragma GCC unroll 4
	for (int r = 0; r < 4; r++) {
		if (r >= nx)
			break;
		acc[r] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + r * ldx),
		    acc[r]);
	}
}

/* Unsigned bytes 8k..8k+7 of v as floats. */
AVX2 static inline __attribute__((always_inline)) __m256
avx2_u8f(__m128i v, int k)
{
	if (k & 1)
		v = _mm_srli_si128(v, 8);
	return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
}

/* Q4_K rows (five false) or Q5_K ones: each pair of sub-blocks is one
 * 32-byte load, its low nibbles the first sub-block, its high ones the
 * second, and for Q5_K bit s of the block's 32 high-bit bytes adds 16 to
 * sub-block s; a weight is d1 * q - m1, a product and a difference, as in
 * quant_dequant(). */
AVX2 static inline __attribute__((always_inline)) void
avx2_q45k(const uint8_t *p, const float *x, size_t ldx, int nx, size_t n,
    float *y, size_t ldy, const bool five)
{
	const __m256i	m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
	const size_t	bsz = five ? 176 : 144, qoff = five ? 48 : 16;
	__m256		a0[4], a1[4];

#pragma GCC unroll 4
	for (int r = 0; r < 4; r++)
		a0[r] = a1[r] = _mm256_setzero_ps();
	for (size_t b = 0; b < n / 256; b++, p += bsz) {
		float		 d = f16_table[le16(p)];
		float		 dmin = f16_table[le16(p + 2)];
		float		 ds[8], ms[8];
		const float	*xb = x + b * 256;
		int		 sc, m;
		__m256i		 hb = _mm256_setzero_si256();

		PREFETCH(p);
		PREFETCH(p + 64);
		PREFETCH(p + 128);
		if (five) {
			PREFETCH(p + 175);
			hb = _mm256_loadu_si256((const __m256i *)(const void *)
			    (p + 16));
		}
		for (int j = 0; j < 8; j++) {
			q4k_scale_min(j, p + 4, &sc, &m);
			ds[j] = d * (float)sc;
			ms[j] = dmin * (float)m;
		}
#pragma GCC unroll 4
		for (int j = 0; j < 8; j += 2) {
			__m256i	qv = _mm256_loadu_si256((const __m256i *)
				    (const void *)(p + qoff + 16 * j));
			__m256i	lo = _mm256_and_si256(qv, m4);
			__m256i	hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4),
				    m4);

			if (five) {
				/* Bits j and j + 1 of each byte, moved to
				 * bit 4 (16 bits at a time: the masks keep
				 * each byte's own). */
				lo = _mm256_or_si256(lo, _mm256_slli_epi16(
				    _mm256_and_si256(_mm256_srli_epi16(hb, j),
				    one), 4));
				hi = _mm256_or_si256(hi, _mm256_slli_epi16(
				    _mm256_and_si256(_mm256_srli_epi16(hb,
				    j + 1), one), 4));
			}

#pragma GCC unroll 2
			for (int h = 0; h < 2; h++) {
				__m256i	 q = h ? hi : lo;
				__m128i	 q0 = _mm256_castsi256_si128(q);
				__m128i	 q1 = _mm256_extracti128_si256(q, 1);
				__m256	 dv = _mm256_set1_ps(ds[j + h]);
				__m256	 mv = _mm256_set1_ps(ms[j + h]);
				const float *xs = xb + 32 * (j + h);

#pragma GCC unroll 4
				for (int k = 0; k < 4; k++) {
					__m256	w = _mm256_sub_ps(_mm256_mul_ps(
						    dv, avx2_u8f(k < 2 ? q0 : q1,
						    k)), mv);

					avx2_k8(w, xs + 8 * k, ldx, nx,
					    k & 1 ? a1 : a0);
				}
			}
		}
	}
	for (int r = 0; r < nx; r++)
		y[r * ldy] = avx2_hsum(_mm256_add_ps(a0[r], a1[r]), 0.0f);
}

/* Q6_K rows: per half block, the four quarters' 6-bit values are put
 * together from the low nibbles and the high bit pairs 32 at a time; a
 * weight is (d * scale) * (q - 32), as in quant_dequant(). */
AVX2 static inline __attribute__((always_inline)) void
avx2_q6k(const uint8_t *p, const float *x, size_t ldx, int nx, size_t n,
    float *y, size_t ldy)
{
	const __m256i	m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
	const __m256i	off = _mm256_set1_epi8(32);
	__m256		a0[4], a1[4];

#pragma GCC unroll 4
	for (int r = 0; r < 4; r++)
		a0[r] = a1[r] = _mm256_setzero_ps();
	for (size_t b = 0; b < n / 256; b++, p += 210) {
		const int8_t	*sc = (const int8_t *)(const void *)(p + 192);
		float		 d = f16_table[le16(p + 208)];

		PREFETCH(p);
		PREFETCH(p + 64);
		PREFETCH(p + 128);
		PREFETCH(p + 192);
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			const uint8_t	*ql = p + 64 * h, *qh = p + 128 + 32 * h;
			__m256i		 l0 = _mm256_loadu_si256((const __m256i *)
					    (const void *)ql);
			__m256i		 l1 = _mm256_loadu_si256((const __m256i *)
					    (const void *)(ql + 32));
			__m256i		 hb = _mm256_loadu_si256((const __m256i *)
					    (const void *)qh);
			__m256i		 qq[4];

			qq[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
			    _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
			qq[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
			    _mm256_slli_epi16(_mm256_and_si256(
			    _mm256_srli_epi16(hb, 2), m2), 4));
			qq[2] = _mm256_or_si256(_mm256_and_si256(
			    _mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(
			    _mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
			qq[3] = _mm256_or_si256(_mm256_and_si256(
			    _mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(
			    _mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				__m256i		 q = _mm256_sub_epi8(qq[k], off);
				__m128i		 q0 = _mm256_castsi256_si128(q);
				__m128i		 q1 = _mm256_extracti128_si256(q,
						    1);
				const float	*xs = x + b * 256 + 128 * h +
						    32 * k;

#pragma GCC unroll 4
				for (int g = 0; g < 4; g++) {
					__m128i	v = g < 2 ? q0 : q1;
					__m256	dv = _mm256_set1_ps(d *
						    (float)sc[8 * h + 2 * k +
						    g / 2]);
					__m256	w;

					if (g & 1)
						v = _mm_srli_si128(v, 8);
					w = _mm256_mul_ps(dv,
					    _mm256_cvtepi32_ps(
					    _mm256_cvtepi8_epi32(v)));
					avx2_k8(w, xs + 8 * g, ldx, nx,
					    g & 1 ? a1 : a0);
				}
			}
		}
	}
	for (int r = 0; r < nx; r++)
		y[r * ldy] = avx2_hsum(_mm256_add_ps(a0[r], a1[r]), 0.0f);
}

/* The K kernels compiled for each nx, as avx2_f32_nx(). */
AVX2 static void
avx2_kquant_nx(enum ggml_type t, const uint8_t *p, const float *x,
    size_t ldx, int nx, size_t n, float *y, size_t ldy)
{
#define KCASE(k)							\
	if (t == GGML_T_Q4_K)						\
		avx2_q45k(p, x, ldx, k, n, y, ldy, false);		\
	else if (t == GGML_T_Q5_K)					\
		avx2_q45k(p, x, ldx, k, n, y, ldy, true);		\
	else								\
		avx2_q6k(p, x, ldx, k, n, y, ldy);			\
	break
	switch (nx) {
	case 1:
		KCASE(1);
	case 2:
		KCASE(2);
	case 3:
		KCASE(3);
	default:
		KCASE(4);
	}
#undef KCASE
}
#endif

float
quant_dot(enum ggml_type t, const void *w, const float *x, size_t n)
{
	float	y;

	quant_dot_n(t, w, x, 0, 1, n, &y, 0);
	return y;
}

void
quant_dot_n(enum ggml_type t, const void *w, const float *x, size_t ldx,
    int nx, size_t n, float *y, size_t ldy)
{
	for (int r0 = 0; r0 < nx; r0 += 4) {
		int		 k = nx - r0 < 4 ? nx - r0 : 4;
		const float	*xr = x + (size_t)r0 * ldx;
		float		*yr = y + (size_t)r0 * ldy;

#ifdef QUANT_X86
		if (use_avx2) {
			switch (t) {
			case GGML_T_F32:
				avx2_f32_nx(w, xr, ldx, k, n, yr, ldy);
				continue;
			case GGML_T_F16:
			case GGML_T_BF16:
				avx2_f16_nx(w, xr, ldx, k, n, yr, ldy,
				    t == GGML_T_BF16);
				continue;
			case GGML_T_Q8_0:
				avx2_q8_0(w, xr, ldx, k, n, yr, ldy);
				continue;
			case GGML_T_Q4_0:
				avx2_q4_0(w, xr, ldx, k, n, yr, ldy);
				continue;
			case GGML_T_Q4_K:
			case GGML_T_Q5_K:
			case GGML_T_Q6_K:
				avx2_kquant_nx(t, w, xr, ldx, k, n, yr, ldy);
				continue;
			default:
				break;
			}
		}
#endif
		for (int r = 0; r < k; r++)
			yr[(size_t)r * ldy] = dot_generic(t, w, xr +
			    (size_t)r * ldx, n);
	}
}

void
quant_dot_rows(enum ggml_type t, const void *w, size_t rb, size_t nrows,
    const float *x, size_t ldx, int nx, size_t n, float *y, size_t ldy)
{
	const uint8_t	*p = w;
	size_t		 o = 0;

#ifdef QUANT_X86
	if (use_avx512 && n % 16 == 0 && (t == GGML_T_F32 ||
	    t == GGML_T_F16 || t == GGML_T_BF16)) {
		enum wkind	k = t == GGML_T_F32 ? WK_F32 :
				    t == GGML_T_F16 ? WK_F16 : WK_BF16;
		size_t		ahead = f32_ahead(rb, nx);

		for (; o + 4 <= nrows; o += 4)
			for (int r0 = 0; r0 < nx; r0 += 4)
				avx512_rows4_nx(k, p + o * rb, rb, ahead,
				    x + (size_t)r0 * ldx, ldx,
				    nx - r0 < 4 ? nx - r0 : 4, n,
				    y + (size_t)r0 * ldy + o, ldy);
	}
#endif
	for (; o < nrows; o++)
		quant_dot_n(t, p + o * rb, x, ldx, nx, n, y + o, ldy);
}

/* --- decode attention --- */

#ifdef QUANT_X86
/* Eight cached floats from element i of p: F32, or F16 (half) widened,
 * which is exact, so attention over F16 entries is attention over the
 * floats they hold. */
AVX2 static inline __attribute__((always_inline)) __m256
kv_load8(const void *p, size_t i, bool half)
{
	if (half)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)
		    (const void *)((const uint16_t *)p + i)));
	return _mm256_loadu_ps((const float *)p + i);
}

/* att[t] = scale * (q . key t) for the nk (1..4) keys at k, ld elements
 * apart: each key has its own two sums (even and odd groups of 8), so a
 * key's score does not depend on the keys beside it. */
AVX2 static inline __attribute__((always_inline)) void
avx2_scores(const float *q, const void *k, size_t ld, int nk, int hd,
    float scale, float *att, bool half)
{
	__m256	a0[4], a1[4];
	int	i = 0, nv = hd & ~15;

#pragma GCC unroll 4
	for (int r = 0; r < 4; r++)
		a0[r] = a1[r] = _mm256_setzero_ps();
	for (; i < nv; i += 16) {
		__m256	q0 = _mm256_loadu_ps(q + i);
		__m256	q1 = _mm256_loadu_ps(q + i + 8);

#pragma GCC unroll 4
		for (int r = 0; r < 4; r++) {
			if (r >= nk)
				break;
			a0[r] = _mm256_fmadd_ps(q0, kv_load8(k, (size_t)r *
			    ld + (size_t)i, half), a0[r]);
			a1[r] = _mm256_fmadd_ps(q1, kv_load8(k, (size_t)r *
			    ld + (size_t)i + 8, half), a1[r]);
		}
	}
	for (int r = 0; r < nk; r++) {
		float	s = 0.0f;

		for (int j = nv; j < hd; j++)
			s += q[j] * elem(k, (size_t)r * ld + (size_t)j,
			    half);
		att[r] = avx2_hsum(_mm256_add_ps(a0[r], a1[r]), s) * scale;
	}
}

/* att[0..8) = scale * (q . key t) for the eight keys at k, ld elements
 * apart, hd a multiple of 8: a sum of eight lanes per key, reduced for
 * all eight keys at once (three rounds of pairwise adds across the
 * vectors) instead of key by key. */
AVX2 static inline __attribute__((always_inline)) void
avx2_scores8(const float *q, const void *k, size_t ld, int hd, float scale,
    float *att, bool half)
{
	__m256	a[8], h01, h23, h45, h67, h03, h47;

#pragma GCC unroll 8
	for (int r = 0; r < 8; r++)
		a[r] = _mm256_setzero_ps();
	for (int i = 0; i < hd; i += 8) {
		__m256	qv = _mm256_loadu_ps(q + i);

#pragma GCC unroll 8
		for (int r = 0; r < 8; r++)
			a[r] = _mm256_fmadd_ps(qv, kv_load8(k, (size_t)r * ld +
			    (size_t)i, half), a[r]);
	}
	h01 = _mm256_hadd_ps(a[0], a[1]);
	h23 = _mm256_hadd_ps(a[2], a[3]);
	h45 = _mm256_hadd_ps(a[4], a[5]);
	h67 = _mm256_hadd_ps(a[6], a[7]);
	h03 = _mm256_hadd_ps(h01, h23);	/* keys 0-3, low and high halves */
	h47 = _mm256_hadd_ps(h45, h67);
	_mm256_storeu_ps(att, _mm256_mul_ps(_mm256_add_ps(
	    _mm256_permute2f128_ps(h03, h47, 0x20),
	    _mm256_permute2f128_ps(h03, h47, 0x31)), _mm256_set1_ps(scale)));
}

/* Keys ahead that attention prefetches.  A head's keys (and values) are
 * one stream (ld elements apart; the model passes head_dim), short, a
 * few pages, which the hardware prefetchers take up late: on the 2-core
 * VM, with the cache on 4 KiB pages, decode attention of 4 sequences
 * took 1360-1535 us a step without these prefetches and 1190-1280 with
 * them. */
#define ATT_AHEAD	32

/* Prefetches the first hd elements (es bytes each) of rows t..t+n of p
 * (ld apart), the left of them that exist. */
AVX2 static inline __attribute__((always_inline)) void
att_prefetch(const void *p, size_t t, size_t ld, int n, int hd, int left,
    size_t es)
{
	for (int r = 0; r < n && r < left; r++)
		for (size_t i = 0; i < (size_t)hd * es; i += 64)
			_mm_prefetch((const char *)p + ((t + (size_t)r) *
			    ld) * es + i, _MM_HINT_T0);
}

/* out[0..nc*8) = inv * sum over t of att[t] * v[t * ld + ...], nc <= 8
 * groups of 8 columns kept in registers over all the keys. */
AVX2 static inline __attribute__((always_inline)) void
avx2_mix(const float *att, const void *v, size_t ld, int nk, int nc,
    float inv, float *out, bool half)
{
	size_t	es = half ? 2 : 4;
	__m256	acc[8];

#pragma GCC unroll 8
	for (int j = 0; j < 8; j++)
		acc[j] = _mm256_setzero_ps();
	for (int t = 0; t < nk; t++) {
		__m256	p = _mm256_set1_ps(att[t]);

		att_prefetch(v, (size_t)t + ATT_AHEAD, ld, 1, 8 * nc,
		    nk - t - ATT_AHEAD, es);

#pragma GCC unroll 8
		for (int j = 0; j < 8; j++) {
			if (j >= nc)
				break;
			acc[j] = _mm256_fmadd_ps(p, kv_load8(v, (size_t)t *
			    ld + 8 * (size_t)j, half), acc[j]);
		}
	}
	for (int j = 0; j < nc; j++)
		_mm256_storeu_ps(out + 8 * j, _mm256_mul_ps(acc[j],
		    _mm256_set1_ps(inv)));
}

AVX2 static inline __attribute__((always_inline)) void
avx2_attend(const float *q, const void *k, const void *v, size_t ld,
    int nk, int hd, float scale, float *att, float *out, bool half)
{
	size_t	es = half ? 2 : 4;
	float	mx = -INFINITY, sum = 0.0f, inv;
	int	t = 0, c = 0, hv = hd & ~7;

	for (; hd % 8 == 0 && t + 8 <= nk; t += 8) {
		att_prefetch(k, (size_t)t + ATT_AHEAD, ld, 8, hd,
		    nk - t - ATT_AHEAD, es);
		att_prefetch(v, (size_t)t, ld, 8, hd, nk - t, es);
		avx2_scores8(q, (const char *)k + (size_t)t * ld * es, ld, hd,
		    scale, att + t, half);
	}
	for (; t + 4 <= nk; t += 4) {
		att_prefetch(k, (size_t)t + ATT_AHEAD, ld, 4, hd,
		    nk - t - ATT_AHEAD, es);
		avx2_scores(q, (const char *)k + (size_t)t * ld * es, ld, 4,
		    hd, scale, att + t, half);
	}
	/* The rest with its key count a constant. */
#define SCASE(n)							\
	case n:								\
		avx2_scores(q, (const char *)k + (size_t)t * ld * es, ld,	\
		    n, hd, scale, att + t, half);			\
		break
	switch (nk - t) {
	SCASE(3);
	SCASE(2);
	SCASE(1);
	default:
		break;
	}
#undef SCASE
	/* Prefill's vector softmax where there is one (pgemm.c): sixteen
	 * keys an exponential instead of a call to expf() a key. */
	if (pgemm_fast()) {
		pgemm_softmax(att, (size_t)nk, (size_t)nk);
		inv = 1.0f;
	} else {
		for (t = 0; t < nk; t++)
			if (att[t] > mx)
				mx = att[t];
		for (t = 0; t < nk; t++) {
			att[t] = expf(att[t] - mx);
			sum += att[t];
		}
		inv = 1.0f / sum;
	}
	for (; c + 64 <= hv; c += 64)
		avx2_mix(att, (const char *)v + (size_t)c * es, ld, nk, 8,
		    inv, out + c, half);
	/* The rest with its group count a constant, so that the loop over
	 * the keys holds only loads and multiply-adds (hd 48: six). */
#define MCASE(g)							\
	case g:								\
		avx2_mix(att, (const char *)v + (size_t)c * es, ld, nk, g,	\
		    inv, out + c, half);				\
		break
	switch ((hv - c) / 8) {
	MCASE(7);
	MCASE(6);
	MCASE(5);
	MCASE(4);
	MCASE(3);
	MCASE(2);
	MCASE(1);
	default:
		break;
	}
#undef MCASE
	for (c = hv; c < hd; c++) {
		float	s = 0.0f;

		for (t = 0; t < nk; t++)
			s += att[t] * elem(v, (size_t)t * ld + (size_t)c,
			    half);
		out[c] = s * inv;
	}
}

AVX2 static void
avx2_attend_f32(const float *q, const float *k, const float *v, size_t ld,
    int nk, int hd, float scale, float *att, float *out)
{
	avx2_attend(q, k, v, ld, nk, hd, scale, att, out, false);
}

AVX2 static void
avx2_attend_f16(const float *q, const uint16_t *k, const uint16_t *v,
    size_t ld, int nk, int hd, float scale, float *att, float *out)
{
	avx2_attend(q, k, v, ld, nk, hd, scale, att, out, true);
}

AVX2 static void
avx2_to_f16(uint16_t *dst, const float *src, size_t n)
{
	size_t	i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(void *)(dst + i),
		    _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
		    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		dst[i] = quant_to_f16(src[i]);
}
#endif

/* The portable attention: F32 entries, or F16 (half) read through the
 * table. */
static void
attend_plain(const float *q, const void *k, const void *v, size_t ld,
    int nk, int hd, float scale, float *att, float *out, bool half)
{
	float	mx = -INFINITY, sum = 0.0f, inv;
	size_t	es = half ? 2 : 4;

	for (int t = 0; t < nk; t++) {
		att[t] = dot_any((const char *)k + (size_t)t * ld * es, q,
		    (size_t)hd, half) * scale;
		if (att[t] > mx)
			mx = att[t];
	}
	for (int t = 0; t < nk; t++) {
		att[t] = expf(att[t] - mx);
		sum += att[t];
	}
	inv = 1.0f / sum;
	memset(out, 0, (size_t)hd * sizeof(float));
	for (int t = 0; t < nk; t++)
		for (int c = 0; c < hd; c++)
			out[c] += att[t] * elem(v, (size_t)t * ld + (size_t)c,
			    half);
	for (int c = 0; c < hd; c++)
		out[c] *= inv;
}

/* The attention kernel for the CPU, over F32 or F16 (half) entries. */
static void
attend_any(const float *q, const void *k, const void *v, size_t ld, int nk,
    int hd, float scale, float *att, float *out, bool half)
{
#ifdef QUANT_X86
	if (use_avx2 && half)
		avx2_attend_f16(q, k, v, ld, nk, hd, scale, att, out);
	else if (use_avx2)
		avx2_attend_f32(q, k, v, ld, nk, hd, scale, att, out);
	if (use_avx2)
		return;
#endif
	attend_plain(q, k, v, ld, nk, hd, scale, att, out, half);
}

void
quant_attend(const float *q, const float *k, const float *v, size_t ld,
    int nk, int hd, float scale, float *att, float *out)
{
	attend_any(q, k, v, ld, nk, hd, scale, att, out, false);
}

void
quant_attend_f16(const float *q, const uint16_t *k, const uint16_t *v,
    size_t ld, int nk, int hd, float scale, float *att, float *out)
{
	attend_any(q, k, v, ld, nk, hd, scale, att, out, true);
}

uint16_t
quant_to_f16(float f)
{
	uint32_t	x, sign, e, m, r;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	e = (x >> 23) & 0xff;
	m = x & 0x7fffff;
	if (e == 0xff)		/* inf, or a NaN kept quiet */
		return (uint16_t)(sign | 0x7c00 | (m != 0 ? 0x200 |
		    (m >> 13) : 0));
	if (e >= 143)		/* 65520 and up round to inf */
		return (uint16_t)(sign | 0x7c00);
	if (e >= 113) {		/* normal: round the 13 bits dropped */
		r = ((e - 112) << 10) | (m >> 13);
		if ((m & 0x1fff) > 0x1000 || ((m & 0x1fff) == 0x1000 &&
		    (r & 1)))
			r++;	/* may carry into the exponent, rightly */
		return (uint16_t)(sign | r);
	}
	if (e < 102)		/* below half the smallest subnormal */
		return (uint16_t)sign;
	/* Subnormal: the implicit bit made explicit, shifted down. */
	m |= 0x800000;
	{
		uint32_t	sh = 126 - e, lost = m & ((1u << sh) - 1),
				half = 1u << (sh - 1);

		r = m >> sh;
		if (lost > half || (lost == half && (r & 1)))
			r++;
	}
	return (uint16_t)(sign | r);
}

void
quant_to_f16_n(uint16_t *dst, const float *src, size_t n)
{
#ifdef QUANT_X86
	if (use_avx2) {
		avx2_to_f16(dst, src, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		dst[i] = quant_to_f16(src[i]);
}
