/* runtime/kernels.h - FP32 compute kernels of maas-runtime.
 *
 * Every kernel writes a dense row-major output it does not own and reads
 * dense row-major inputs; nothing here allocates (but for starting the
 * worker threads, once), logs or fails.  Shapes
 * have been checked by the caller (the ONNX executor): sizes fit a BLAS
 * int, broadcast shapes are compatible, outputs never alias inputs unless
 * a kernel says so.  Matrix products go through OpenBLAS cblas_sgemm,
 * large ones over as many threads as OpenBLAS is given
 * (openblas_set_num_threads): kernel_gemm and kernel_matmul* share one
 * set of worker threads, started on first use, and must be called from
 * one thread at a time.  The hot element-wise kernels are vectorised for
 * the CPU the runtime finds. */
#ifndef RUNTIME_KERNELS_H
#define RUNTIME_KERNELS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"

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

/* One operand (or the result) of a batched product as a view of memory:
 * the matrix of batch index (i_0, .., i_nb-1) starts at base + sum of
 * i_d * bstride[d] floats (0 where it broadcasts); its rows are ld floats
 * apart, or, if trans, it is stored transposed (its columns ld apart).
 * A Transpose that feeds a MatMul, or that alone reads one, becomes such
 * a view (runtime/onnx/exec.c) instead of a copy. */
struct kernel_mat {
	float		*base;
	size_t		 bstride[TENSOR_MAX_DIMS];
	size_t		 ld;
	bool		 trans;
};

/* y(i) = alpha * a(i) b(i), (m, k) times (k, n), for every batch index i
 * over dims[0..nb); y is never transposed and overlaps neither a nor
 * b.  Each product is one cblas_sgemm, whatever the batch. */
void	kernel_matmul_views(const struct kernel_mat *y,
	    const struct kernel_mat *a, const struct kernel_mat *b,
	    const int64_t *dims, int nb, size_t m, size_t n, size_t k,
	    float alpha);

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
 * fail, and OpenBLAS retries it forever.  Also starts the workers of
 * kernel_par_run(), which the sandbox would not let start later.  Returns
 * -1 if memory is short. */
int	kernel_warmup(void);

/* Softmax over the middle index of x viewed as (outer, n, inner); y may
 * equal x. */
void	kernel_softmax(float *y, const float *x, size_t outer, size_t n,
	    size_t inner);

/* A window sliding over the spatial dims of one channel plane (Conv and
 * the pools).  Always three dims: a 1-D or 2-D operator puts size-1 dims
 * in front, with kernel 1, stride 1, dilation 1 and no padding.  The
 * caller has checked that every output position is well defined and
 * that each window has at least one input element. */
struct kernel_win {
	int64_t	in[3];		/* input spatial dims */
	int64_t	out[3];		/* output spatial dims */
	int64_t	kern[3];	/* kernel dims */
	int64_t	stride[3];
	int64_t	dil[3];
	int64_t	pad[3];		/* implicit zeros before each dim */
	int64_t	pad_end[3];	/* and after it (AveragePool's divisor) */
};

/* Unfolds `channels` planes of x (channels, in...) into col (channels *
 * prod(kern), prod(out)), whose rows are ld floats apart: row (c, k)
 * holds, for every output position, the input under kernel tap k, or 0
 * in the padding.  A convolution is then one sgemm of the weights (m,
 * channels * prod(kern)) with col; ld > prod(out) lays the columns of
 * several images side by side for a single sgemm over a batch. */
void	kernel_im2col(float *col, size_t ld, const float *x,
	    size_t channels, const struct kernel_win *);
/* y (rows, n) = x (rows, n) + b[row] (or + 0 if b is NULL); rows ldy
 * and ldx floats apart, y and x disjoint.  Scatters a batched Conv's
 * product to NCHW. */
void	kernel_bias_rows(float *y, size_t ldy, const float *x, size_t ldx,
	    const float *b, size_t rows, size_t n);

/* The "wide" unfolding of a window whose last dim has stride 1 and
 * whose first dim is trivial (1-D and 2-D Conv): the planes are first
 * copied into xp with their padding made real, (channels, hp, wp) with
 * hp and wp the padded sizes, followed by kernel_wide_slack() zeros.
 * Row (c, k1, k2) of col (ld floats apart) then holds, for output rows
 * [r0, r1), wp columns each: xp[c][o1 * stride + k1 * dil][j + k2 *
 * dil], one contiguous run of xp when the stride of dim 1 is 1.  Its
 * columns j >= out[2] of each output row are garbage that the caller
 * drops. */
size_t	kernel_wide_slack(const struct kernel_win *);
void	kernel_pad_planes(float *xp, const float *x, size_t channels,
	    const struct kernel_win *);
void	kernel_im2col_wide(float *col, size_t ld, const float *xp,
	    size_t channels, const struct kernel_win *, size_t r0, size_t r1);
/* y (rows, n) = x (rows, n) + bias, then max(0, .) if relu; rows ldy
 * and ldx floats apart, y and x disjoint.  Takes a wide Conv product to
 * its place in NCHW. */
void	kernel_plane_bias(float *y, size_t ldy, const float *x, size_t ldx,
	    float bias, size_t rows, size_t n, bool relu);
/* As kernel_plane_bias(), then a 2x2 max pool with stride 2 of the
 * result into y (rows / 2, n / 2), compared in the order of
 * kernel_maxpool(): a Conv, its Relu and the MaxPool after them in one
 * pass. */
void	kernel_plane_bias_pool(float *y, size_t ldy, const float *x,
	    size_t ldx, float bias, size_t rows, size_t n, bool relu);

/* Max over each window of `planes` planes of x into y (planes, out...).
 * If idx is not NULL, it receives the flat index into x of each max
 * (the first one on ties), row-major or, with colmajor, with the
 * spatial dims of a plane in column-major order. */
void	kernel_maxpool(float *y, int64_t *idx, const float *x, size_t planes,
	    const struct kernel_win *, bool colmajor);
/* Mean over each window; the divisor counts the padding with
 * include_pad, else only the input elements under the window. */
void	kernel_avgpool(float *y, const float *x, size_t planes,
	    const struct kernel_win *, bool include_pad);

/* log(softmax(x)) over the middle index of x viewed as (outer, n,
 * inner); y may equal x. */
void	kernel_logsoftmax(float *y, const float *x, size_t outer, size_t n,
	    size_t inner);

/* Element-wise erf, within 5e-7 of the exact value; y must not alias x. */
void	kernel_erf(float *y, const float *x, size_t n);

/* LayerNormalization of x viewed as (outer, inner) over inner: y = (x -
 * mean) / sqrt(var + eps) * scale + bias (bias may be NULL).  mean_out and
 * inv_out, if not NULL, receive each row's mean and 1 / sqrt(var + eps).
 * y must not alias x. */
void	kernel_layernorm(float *y, const float *x, const float *scale,
	    const float *bias, size_t outer, size_t inner, float eps,
	    float *mean_out, float *inv_out);

/* y = alpha * matmul(a, b) + bias as in kernel_matmul, the n values of
 * bias added to every row of y; bias may be NULL. */
void	kernel_matmul_fused(float *y, const int64_t *yshape, const float *a,
	    const int64_t *ashape, const float *b, const int64_t *bshape,
	    int nd, float alpha, const float *bias);

/* y = x / 2 * (1 + erf(x / sqrt(2))), erf as kernel_erf(). */
void	kernel_gelu(float *y, const float *x, size_t n);

/* The worker threads the products use, for other kernels (runtime/gemm.c):
 * kernel_par_run() calls fn(arg, c) for every c in [0, nchunks), spread
 * over kernel_par_threads() threads (the replica's, as main() gave them
 * to OpenBLAS), the caller's among them, and returns when all are done.
 * fn must not call OpenBLAS or kernel_par_run(). */
int	kernel_par_threads(void);
void	kernel_par_run(void (*fn)(void *, size_t), void *arg, size_t nchunks);
/* As kernel_par_run(), for the operators: fn(arg, t, thread) for every
 * task t in [0, ntasks), where thread, in [0, kernel_par_threads()),
 * names the thread that runs it, so that fn may use scratch of its own.
 * fn may call kernel_gemm() and OpenBLAS, which then stay on fn's
 * thread, but not kernel_par_*().  One task, or one thread, runs fn
 * inline on the caller's thread with thread 0. */
void	kernel_par_tasks(void (*fn)(void *, size_t, int), void *arg,
	    size_t ntasks);
/* A hint from the serving loop, which knows when products will come: a
 * request large enough to be split has begun to arrive.  Workers asleep
 * wake and spin a while for its first product, so that their wake-up
 * overlaps the request's read instead of that product. */
void	kernel_par_wake(void);
#endif
