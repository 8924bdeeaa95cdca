/* runtime/gemm.h - FP32 matrix products whose right operand is a constant.
 *
 * A model's weight matrix b never changes, so it is rearranged once, at
 * load, into column panels of GEMM_NR floats (the last one padded with
 * zeros): panel p holds, for every kk in [0, k), the GEMM_NR values
 * b[kk][p * GEMM_NR ..].  The product then streams each panel once per
 * block of rows of a, with no per-call packing (which cblas_sgemm does on
 * every call) and no allocation.  The micro-kernels need AVX2 and FMA
 * (ymm tiles; zmm ones too on a CPU with AVX-512F, the same bits);
 * gemm_fast() says whether this CPU has them, and callers keep their
 * cblas_sgemm path for when it has not.
 *
 * Every element of y is one FMA chain over k in order, then alpha, then
 * beta * c, whatever m, the thread count or the work split: the same row
 * of a gives the same row of y, bit for bit.  Work is spread over the
 * runtime's threads (kernel_par_run()); gemm_run() must be called from
 * one thread at a time, as the other kernels. */
#ifndef RUNTIME_GEMM_H
#define RUNTIME_GEMM_H
#include <stdbool.h>
#include <stddef.h>

#define GEMM_NR		16	/* columns of a panel */

/* Whether the CPU can run the packed kernel (AVX2 and FMA). */
bool	gemm_fast(void);

/* Floats that the packed form of a (k, n) matrix takes. */
size_t	gemm_pack_floats(size_t k, size_t n);

/* Packs b into dst (gemm_pack_floats(k, n) floats, owned by the caller):
 * b is (k, n) row-major, or (n, k) if trans (then b's transpose is
 * packed). */
void	gemm_pack(float *dst, const float *b, size_t k, size_t n, bool trans);

/* y (m, n) = alpha * a bp + beta * c, where a is (m, k) row-major with
 * rows lda floats apart, bp is b (k, n) as gemm_pack() left it, and c is
 * broadcast from (cm, cn), cm in {1, m}, cn in {1, n}; c may be NULL
 * (then beta is ignored).  y is dense and does not alias a or c.  Only
 * when gemm_fast(). */
void	gemm_run(float *y, const float *a, size_t lda, const float *bp,
	    size_t m, size_t n, size_t k, float alpha, const float *c,
	    size_t cm, size_t cn, float beta);
/* gemm_run(), then y = max(y, 0) if relu, as each element is written
 * (a Gemm followed by a Relu, fused): the bits of a Relu over y. */
void	gemm_run_act(float *y, const float *a, size_t lda, const float *bp,
	    size_t m, size_t n, size_t k, float alpha, const float *c,
	    size_t cm, size_t cn, float beta, bool relu);
#endif
