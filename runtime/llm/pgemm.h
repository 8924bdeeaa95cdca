/* runtime/llm/pgemm.h - the products of a prefill chunk, y = x w^T for a
 * chunk x of up to a few hundred rows, with AVX-512 kernels that read the
 * weight rows where they lie.
 *
 * cblas_sgemm packs both operands again on every call; a chunk's products
 * are split into many calls (one per item of the model's pool), so the
 * same chunk was packed once per item.  Here x is packed once per product
 * (pgemm_pack(), panels of PGEMM_PANEL rows) and every item broadcasts
 * its weight rows straight from memory against those panels.
 *
 * Every element of y is one chain of fused multiply-adds over k in order,
 * whatever the shapes of the calls, so the bits depend on neither the
 * number of threads nor how the work is cut.  The chunk's softmax and
 * SwiGLU passes are here too, for their vector exp.  Nothing allocates. */
#ifndef RUNTIME_LLM_PGEMM_H
#define RUNTIME_LLM_PGEMM_H
#include <stdbool.h>
#include <stddef.h>

#define PGEMM_PANEL	16	/* rows of x per panel */
#define PGEMM_NR	8	/* weight rows per kernel call, at most */

/* Whether the CPU runs the kernels (AVX-512F); if not, nothing here may
 * be called. */
bool	pgemm_fast(void);
/* Floats of a packed x of rows rows of n_in: whole panels. */
size_t	pgemm_packed_len(size_t rows, size_t n_in);
/* Packs panel p of x (rows, n_in; rows ldx floats apart) into xp, laid
 * out as pgemm_packed_len() says: panel p at xp + p * n_in * PGEMM_PANEL,
 * element (r, k) of the panel at k * PGEMM_PANEL + r, rows past the end
 * zero. */
void	pgemm_pack(float *xp, const float *x, size_t ldx, size_t rows,
	    size_t n_in, size_t p);
/* y[r * ldy + o] = sum over k of x[r][k] w[o * ldw + k], for r < rows and
 * o < nr (nr <= PGEMM_NR), from xp packed by pgemm_pack().  next, if not
 * NULL: PGEMM_NR rows of next_len bytes, next_ld bytes apart, that the
 * caller reads next (the next weight rows), fetched into L2 meanwhile so
 * that the weight stream from memory overlaps the products. */
void	pgemm_rows(float *y, size_t ldy, const float *xp, size_t rows,
	    size_t n_in, const float *w, size_t ldw, size_t nr,
	    const void *next, size_t next_ld, size_t next_len);
/* The element-wise passes of a prefill chunk, with an exp of a few ulp.
 * s[0..n) = softmax(s[0..n)), then s[n..nz) = 0 (n >= 1). */
void	pgemm_softmax(float *s, size_t n, size_t nz);
/* g[i] = silu(g[i]) * u[i] for i < n. */
void	pgemm_swiglu(float *g, const float *u, size_t n);
/* dst[i] = e^((src[i] - sub) * scale) for i < n, with the same exp, and
 * exactly 0 where src[i] is -inf (the sampler's probabilities, sub its
 * largest logit). */
void	pgemm_exp(float *dst, const float *src, size_t n, float sub,
	    float scale);
#endif
