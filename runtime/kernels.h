/* runtime/kernels.h - FP32 compute kernels of maas-runtime.
 *
 * Every kernel writes a dense row-major output it does not own and reads
 * dense row-major inputs; nothing here allocates, logs or fails.  Shapes
 * have been checked by the caller (the ONNX executor): sizes fit a BLAS
 * int, broadcast shapes are compatible, outputs never alias inputs unless
 * a kernel says so.  Matrix products go through OpenBLAS cblas_sgemm. */
#ifndef RUNTIME_KERNELS_H
#define RUNTIME_KERNELS_H
#include <stddef.h>
#include <stdint.h>

#define KERNEL_TRANS_A	0x1	/* use a transposed: a is (k, m) */
#define KERNEL_TRANS_B	0x2	/* use b transposed: b is (n, k) */

enum kernel_binop {
	KERNEL_ADD,
	KERNEL_SUB,
	KERNEL_MUL,
	KERNEL_DIV
};

/* y (m, n) = alpha * op(a) op(b) + beta * c, where op(a) is (m, k) and
 * op(b) is (k, n) per flags.  c is broadcast from (cm, cn), cm in {1, m},
 * cn in {1, n}; c may be NULL (then beta is ignored). */
void	kernel_gemm(float *y, const float *a, const float *b, const float *c,
	    size_t m, size_t n, size_t k, int flags, float alpha, float beta,
	    size_t cm, size_t cn);

/* numpy matmul of a (..., m, k) and b (..., k, n) into y (..., m, n).
 * All three have the same rank nd >= 2 (the caller lifts 1-D operands and
 * pads batch dims with 1); batch dims of a and b are 1 or equal to y's. */
void	kernel_matmul(float *y, const int64_t *yshape, const float *a,
	    const int64_t *ashape, const float *b, const int64_t *bshape,
	    int nd);

/* y = a op b with numpy broadcasting.  a and b have ranks <= nd and are
 * right-aligned against y's shape (nd dims); each of their dims is 1 or
 * equal to y's. */
void	kernel_binary(enum kernel_binop, float *y, const int64_t *yshape,
	    int nd, const float *a, const int64_t *ashape, int and,
	    const float *b, const int64_t *bshape, int bnd);

/* Element-wise; y may equal x. */
void	kernel_relu(float *y, const float *x, size_t n);
void	kernel_sigmoid(float *y, const float *x, size_t n);
void	kernel_tanh(float *y, const float *x, size_t n);

/* Makes OpenBLAS allocate its work buffer now, with a product too big for
 * its small-matrix path: later, under RLIMIT_AS, that allocation could
 * fail, and OpenBLAS retries it forever.  Returns -1 if memory is short. */
int	kernel_warmup(void);

/* Softmax over the middle index of x viewed as (outer, n, inner); y may
 * equal x. */
void	kernel_softmax(float *y, const float *x, size_t outer, size_t n,
	    size_t inner);
#endif
