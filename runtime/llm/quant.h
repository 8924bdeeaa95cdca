/* runtime/llm/quant.h - rows of GGUF weights: dequantization and dot
 * products straight from the mapped blocks (F32, F16, BF16, Q8_0, Q4_0,
 * Q4_K, Q5_K, Q6_K).
 *
 * A row is n elements of one type (n a whole number of blocks, checked by
 * the loader); w may be unaligned for the block types.  Nothing here
 * allocates or fails.  Every function computes in a fixed order that does
 * not depend on anything but its arguments, so the same row and vector
 * always give the same bits. */
#ifndef RUNTIME_LLM_QUANT_H
#define RUNTIME_LLM_QUANT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/llm/gguf.h"

/* Builds the F16 lookup table; call once before anything else here
 * (thread-safe, idempotent). */
void	quant_init(void);
/* Can the functions below read rows of type t? */
bool	quant_supported(enum ggml_type t);
float	quant_f16(uint16_t h);
/* dst[0..n) = row w. */
void	quant_dequant(enum ggml_type t, const void *w, float *dst, size_t n);
/* Sum of w[i] * x[i] for i < n. */
float	quant_dot(enum ggml_type t, const void *w, const float *x, size_t n);
/* y[r * ldy] = quant_dot(t, w, x + r * ldx, n) for r < nx, bit for bit,
 * reading the row once for up to four vectors at a time (a decode step's
 * batch shares each weight row this way). */
void	quant_dot_n(enum ggml_type t, const void *w, const float *x,
	    size_t ldx, int nx, size_t n, float *y, size_t ldy);
/* quant_dot_n() for nrows rows rb bytes apart: y[o + r * ldy] for row
 * o < nrows and vector r < nx, bit for bit.  F32, F16 and BF16 rows go
 * four at a time on a CPU with AVX-512F. */
void	quant_dot_rows(enum ggml_type t, const void *w, size_t rb,
	    size_t nrows, const float *x, size_t ldx, int nx, size_t n,
	    float *y, size_t ldy);
/* One query's attention over nk cached positions (F32, head size hd):
 * att[t] = softmax over t of scale * (q . k_t), out = sum of att[t] v_t,
 * key and value t at k + t * ld and v + t * ld; att holds nk floats. */
void	quant_attend(const float *q, const float *k, const float *v,
	    size_t ld, int nk, int hd, float scale, float *att, float *out);
/* quant_attend() over a cache of F16 entries: the same as quant_attend()
 * over the floats they hold, bit for bit. */
void	quant_attend_f16(const float *q, const uint16_t *k,
	    const uint16_t *v, size_t ld, int nk, int hd, float scale,
	    float *att, float *out);
/* f rounded to the nearest F16 (ties to even; overflow to inf). */
uint16_t quant_to_f16(float f);
/* dst[i] = quant_to_f16(src[i]) for i < n. */
void	quant_to_f16_n(uint16_t *dst, const float *src, size_t n);
/* The name of the kernels in use ("avx2+fma+f16c" or "generic"). */
const char *quant_kernels(void);
#endif
