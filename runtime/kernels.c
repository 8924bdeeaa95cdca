/* runtime/kernels.c - see kernels.h.  Plain loops for the element-wise
 * kernels (the compiler vectorises the contiguous cases); OpenBLAS for
 * anything with an inner product. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "runtime/kernels.h"
#include "runtime/share.h"

/* The build's -O2 vectorises nothing and targets plain x86-64 (SSE2).
 * The hot element-wise loops are compiled at -O3 once per instruction set
 * and picked at load time by the CPU the runtime finds: a loop over a
 * [64,128,1024] activation is then memory-bound, not compute-bound. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__)
#define KERNEL_VEC	__attribute__((optimize("O3"), \
			    target_clones("arch=x86-64-v4", \
			    "arch=x86-64-v3", "default")))
#define KERNEL_INLINE	static inline __attribute__((optimize("O3"), \
			    always_inline))
/* im2col's rows are short (a CNN's 28 floats): loops, not a memset and
 * a memcpy call per row. */
#define KERNEL_ROWS	__attribute__((optimize("O3", \
			    "no-tree-loop-distribute-patterns")))
#else
#define KERNEL_VEC
#define KERNEL_ROWS
#define KERNEL_INLINE	static inline
#endif

/* Batched products no larger than this (m * n * k) are spread over the
 * runtime's threads one product each, not each over all threads. */
#define KERNEL_PAR_GEMM		(1u << 22)
/* A single product at least this large is cut into chunks for them. */
#define KERNEL_PAR_SPLIT	(1u << 20)
#define KERNEL_PAR_ROWS		128	/* least rows of a chunk */
#define KERNEL_PAR_MAX		16	/* threads of par_run() */
#define KERNEL_PAR_SPIN		2000	/* pauses, about 100 us */
#define KERNEL_PAR_POOL		(1u << 17)	/* least taps of a pool part */

/* One product cut into chunks of rows of y, as gemm_chunk() reads it;
 * the operands as cblas_sgemm takes them. */
struct gemm_job {
	float		*y;
	const float	*a, *b;
	bool		 ta, tb;
	size_t		 m, n, k, lda, ldb, ldy;
	float		 alpha, beta;
	size_t		 chunk;		/* rows per chunk */
};

/* Set while kernel_maxpool() spreads a pool over the threads, so that
 * its parts, which call it again, stay on theirs. */
static _Atomic bool	par_busy;

/* One batched product of views, as views_part() reads it. */
struct views_job {
	const struct kernel_mat	*y, *a, *b;
	const int64_t		*dims;		/* the batch dims */
	int			 nb;
	size_t			 m, n, k;
	float			 alpha, beta;
};

/* Operands of an element-wise pass split by par_ranges(). */
struct ew_args {
	float		*y;
	const float	*x, *a, *b, *scale, *bias;
	size_t		 n, inner, sa, sb;	/* row length, strides */
	size_t		 ia[TENSOR_MAX_DIMS], ib[TENSOR_MAX_DIMS];
	const int64_t	*ys;			/* binary: y's dims */
	int		 k;			/* binary: dims of rows */
	enum kernel_binop op;
	float		 eps;
	float		*mean, *inv;
};

static void	binary_dense(enum kernel_binop, float *restrict,
		    const float *restrict, const float *restrict, size_t);
static void	binary_scalar(enum kernel_binop, float *restrict,
		    const float *restrict, float, size_t, bool);
static void	binary_part(void *, size_t, size_t);
static void	binary_rows(void *, size_t, size_t);
static void	binary_row(enum kernel_binop, float *y, const float *a,
		    size_t sa, const float *b, size_t sb, size_t n);
static void	bcast_strides(size_t *st, const int64_t *yshape, int nd,
		    const int64_t *shape, int xnd);
static void	win_span(int64_t, int64_t, int64_t, int64_t, int64_t *,
		    int64_t *);
static void	win_taps(int64_t, int64_t, int64_t, int64_t, int64_t *,
		    int64_t *);
static bool	maxpool_dense(float *, const float *, size_t,
		    const struct kernel_win *);
static void	maxpool_2x2(float *, const float *, size_t, size_t, size_t,
		    size_t, size_t);
static int64_t	win_count(int64_t, int64_t, int64_t, int64_t, int64_t);
static void	softmax_row(float *, const float *, size_t);
static void	matmul_ab(float *, const int64_t *, const float *,
		    const int64_t *, const float *, const int64_t *, int,
		    float, float);
static void	fill(float *, float, size_t);
static int	par_threads(void);
static void	par_ranges(void (*)(void *, size_t, size_t), void *, size_t,
		    size_t);
static void	par_range_chunk(void *, size_t);
static void	par_run(void (*)(void *, size_t, int), void *, size_t, int);
static void	par_start(int);
static void	par_chunks(int, uint64_t);
static void	par_call2(void *, size_t, int);
static void	maxpool_part(void *, size_t, int);
static size_t	row_wide(size_t, size_t, size_t);
static void	*par_worker(void *);
static void	views_part(void *, size_t, int);
static void	matmul_views(const struct kernel_mat *,
		    const struct kernel_mat *, const struct kernel_mat *,
		    const int64_t *, int, size_t, size_t, size_t, float, float);
static void	gemm(float *, const float *, const float *, bool, bool,
		    size_t, size_t, size_t, float, float);
static void	gemm_chunk(void *, size_t, int);

void
kernel_gemm(float *y, const float *a, const float *b, const float *c,
    size_t m, size_t n, size_t k, int flags, float alpha, float beta,
    size_t cm, size_t cn)
{
	bool	ta = (flags & KERNEL_TRANS_A) != 0;
	bool	tb = (flags & KERNEL_TRANS_B) != 0;
	float	yscale = 0.0f;

	/* Seed y with the broadcast c so that sgemm's beta applies to it. */
	if (c != NULL && beta != 0.0f) {
		for (size_t i = 0; i < m; i++) {
			const float	*crow = c + (cm == 1 ? 0 : i * cn);
			float		*yrow = y + i * n;

			if (cn == 1)
				fill(yrow, crow[0], n);
			else
				memcpy(yrow, crow, n * sizeof(*y));
		}
		yscale = beta;
	}
	gemm(y, a, b, ta, tb, m, n, k, alpha, yscale);
}

KERNEL_VEC void
kernel_bias_rows(float *restrict y, size_t ldy, const float *restrict x,
    size_t ldx, const float *b, size_t rows, size_t n)
{
	for (size_t r = 0; r < rows; r++) {
		float		*yr = y + r * ldy;
		const float	*xr = x + r * ldx;
		float		 br = b != NULL ? b[r] : 0.0f;

		for (size_t j = 0; j < n; j++)
			yr[j] = xr[j] + br;
	}
}

/* y[0..n) = v; a Conv's bias seeds its output planes with it. */
KERNEL_VEC static void
fill(float *y, float v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = v;
}

/* cblas_sgemm of dense row-major operands, over the runtime's threads
 * when it has many rows: chunks of y's rows that the threads take as
 * they come, so that a thread the machine does not schedule holds up no
 * more than the chunk it has taken. */
static void
gemm(float *y, const float *a, const float *b, bool ta, bool tb, size_t m,
    size_t n, size_t k, float alpha, float beta)
{
	struct gemm_job	j = { y, a, b, ta, tb, m, n, k, ta ? m : k,
			    tb ? k : n, n, alpha, beta, m };
	size_t		want, chunks;
	int		nthr;

	/* Each chunk packs the whole of b again, which only many rows
	 * repay; OpenBLAS's own threads do better on fewer. */
	if (m * n * k >= KERNEL_PAR_SPLIT && (nthr = par_threads()) > 1 &&
	    m >= 4 * KERNEL_PAR_ROWS) {
		want = 4 * (size_t)nthr;
		j.chunk = m / want;
		if (j.chunk < KERNEL_PAR_ROWS)
			j.chunk = KERNEL_PAR_ROWS;
		chunks = (m + j.chunk - 1) / j.chunk;
		if (chunks > 1) {
			openblas_set_num_threads(1);
			par_run(gemm_chunk, &j, chunks, nthr);
			openblas_set_num_threads(nthr);
			return;
		}
	}
	gemm_chunk(&j, 0, 0);
}

static void
gemm_chunk(void *arg, size_t c, int thr)
{
	const struct gemm_job	*j = arg;
	size_t			 from = c * j->chunk, m = j->chunk;
	const float		*a = j->a;
	float			*y = j->y + from * j->ldy;
	size_t			 n = j->n;

	(void)thr;
	if (from + m > j->m)
		m = j->m - from;
	/* Rows of op(a): a's rows, or its columns if ta. */
	a += j->ta ? from : from * j->lda;
	cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans,
	    j->tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
	    (blasint)j->k, j->alpha, a, (blasint)j->lda, j->b, (blasint)j->ldb,
	    j->beta, y, (blasint)j->ldy);
}

void
kernel_matmul(float *y, const int64_t *ys, const float *a, const int64_t *as,
    const float *b, const int64_t *bs, int nd)
{
	matmul_ab(y, ys, a, as, b, bs, nd, 1.0f, 0.0f);
}

/* y = alpha * matmul(a, b) + beta * y. */
static void
matmul_ab(float *y, const int64_t *ys, const float *a, const int64_t *as,
    const float *b, const int64_t *bs, int nd, float alpha, float beta)
{
	size_t			m = (size_t)ys[nd - 2], n = (size_t)ys[nd - 1];
	size_t			k = (size_t)as[nd - 1];
	size_t			ma = m * k, mb = k * n, my = m * n, batch = 1;
	bool			b_shared = true, a_full = true;
	int			nb = nd - 2;
	struct kernel_mat	va = { .base = (float *)(uintptr_t)a, .ld = k };
	struct kernel_mat	vb = { .base = (float *)(uintptr_t)b, .ld = n };
	struct kernel_mat	vy = { .base = y, .ld = n };

	for (int i = nb - 1; i >= 0; i--) {
		b_shared = b_shared && bs[i] == 1;
		a_full = a_full && as[i] == ys[i];
		/* 0 where the operand broadcasts. */
		va.bstride[i] = as[i] == 1 ? 0 : ma;
		vb.bstride[i] = bs[i] == 1 ? 0 : mb;
		vy.bstride[i] = my;
		ma *= (size_t)as[i];
		mb *= (size_t)bs[i];
		my *= (size_t)ys[i];
		batch *= (size_t)ys[i];
	}
	if (b_shared && a_full) {
		/* One weight matrix for every batch: a is (batch * m, k). */
		gemm(y, a, b, false, false, batch * m, n, k, alpha, beta);
		return;
	}
	matmul_views(&vy, &va, &vb, ys, nb, m, n, k, alpha, beta);
}

/* Product t of a views_job: batch index t, last dim fastest. */
static void
views_part(void *arg, size_t t, int thr)
{
	const struct views_job	*j = arg;
	size_t			 oy = 0, oa = 0, ob = 0, rest = t;

	(void)thr;
	for (int i = j->nb - 1; i >= 0; i--) {
		size_t	d = (size_t)j->dims[i], x = rest % d;

		oy += x * j->y->bstride[i];
		oa += x * j->a->bstride[i];
		ob += x * j->b->bstride[i];
		rest /= d;
	}
	cblas_sgemm(CblasRowMajor, j->a->trans ? CblasTrans : CblasNoTrans,
	    j->b->trans ? CblasTrans : CblasNoTrans, (blasint)j->m,
	    (blasint)j->n, (blasint)j->k, j->alpha, j->a->base + oa,
	    (blasint)j->a->ld, j->b->base + ob, (blasint)j->b->ld, j->beta,
	    j->y->base + oy, (blasint)j->y->ld);
}

/* y(i) = alpha * a(i) b(i) + beta * y(i) for every batch index i. */
static void
matmul_views(const struct kernel_mat *y, const struct kernel_mat *a,
    const struct kernel_mat *b, const int64_t *dims, int nb, size_t m,
    size_t n, size_t k, float alpha, float beta)
{
	struct views_job	job = { y, a, b, dims, nb, m, n, k, alpha,
				    beta };
	size_t			batch = 1;
	int			nthr;

	for (int i = 0; i < nb; i++)
		batch *= (size_t)dims[i];
	if (batch > 1 && m * n * k <= KERNEL_PAR_GEMM &&
	    (nthr = par_threads()) > 1) {
		/* Attention's many small products: OpenBLAS would wake
		 * its threads for each one, and on a busy machine each
		 * wake-up costs more than the product.  Split the batch
		 * between threads instead, each product on one. */
		openblas_set_num_threads(1);
		par_run(views_part, &job, batch, nthr);
		openblas_set_num_threads(nthr);
		return;
	}
	for (size_t t = 0; t < batch; t++)
		views_part(&job, t, 0);
}

void
kernel_matmul_views(const struct kernel_mat *y, const struct kernel_mat *a,
    const struct kernel_mat *b, const int64_t *dims, int nb, size_t m,
    size_t n, size_t k, float alpha)
{
	matmul_views(y, a, b, dims, nb, m, n, k, alpha, 0.0f);
}

/* Element strides of an operand of rank xnd right-aligned against y's nd
 * dims: 0 where it broadcasts (missing or size-1 dim). */
static void
bcast_strides(size_t *st, const int64_t *ys, int nd, const int64_t *xs,
    int xnd)
{
	size_t	s = 1;

	for (int i = nd - 1; i >= 0; i--) {
		int	j = i - (nd - xnd);

		if (j < 0 || xs[j] == 1 || ys[i] == 1)
			st[i] = 0;
		else {
			st[i] = s;
			s *= (size_t)xs[j];
		}
	}
}

/* y = a op b over n dense elements. */
KERNEL_VEC static void
binary_dense(enum kernel_binop op, float *restrict y, const float *restrict a,
    const float *restrict b, size_t n)
{
	size_t	i;

	switch (op) {
	case KERNEL_ADD:
		for (i = 0; i < n; i++)
			y[i] = a[i] + b[i];
		break;
	case KERNEL_SUB:
		for (i = 0; i < n; i++)
			y[i] = a[i] - b[i];
		break;
	case KERNEL_MUL:
		for (i = 0; i < n; i++)
			y[i] = a[i] * b[i];
		break;
	case KERNEL_DIV:
		for (i = 0; i < n; i++)
			y[i] = a[i] / b[i];
		break;
	}
}

/* y = x op s, or s op x when swap, over n dense elements. */
KERNEL_VEC static void
binary_scalar(enum kernel_binop op, float *restrict y,
    const float *restrict x, float s, size_t n, bool swap)
{
	size_t	i;

	switch (op) {
	case KERNEL_ADD:
		for (i = 0; i < n; i++)
			y[i] = x[i] + s;
		break;
	case KERNEL_SUB:
		if (swap)
			for (i = 0; i < n; i++)
				y[i] = s - x[i];
		else
			for (i = 0; i < n; i++)
				y[i] = x[i] - s;
		break;
	case KERNEL_MUL:
		for (i = 0; i < n; i++)
			y[i] = x[i] * s;
		break;
	case KERNEL_DIV:
		/* Not x * (1 / s): the quotient must round as Div's. */
		if (swap)
			for (i = 0; i < n; i++)
				y[i] = s / x[i];
		else
			for (i = 0; i < n; i++)
				y[i] = x[i] / s;
		break;
	}
}

static void
binary_row(enum kernel_binop op, float *y, const float *a, size_t sa,
    const float *b, size_t sb, size_t n)
{
	size_t	i;

	/* The common layouts get loops the compiler vectorises: both
	 * operands dense, or one of them a scalar across the row. */
	if (sa == 1 && sb == 1) {
		binary_dense(op, y, a, b, n);
		return;
	}
	if (sa == 1 && sb == 0) {
		binary_scalar(op, y, a, b[0], n, false);
		return;
	}
	if (sa == 0 && sb == 1) {
		binary_scalar(op, y, b, a[0], n, true);
		return;
	}
	switch (op) {
	case KERNEL_ADD:
		for (i = 0; i < n; i++)
			y[i] = a[i * sa] + b[i * sb];
		break;
	case KERNEL_SUB:
		for (i = 0; i < n; i++)
			y[i] = a[i * sa] - b[i * sb];
		break;
	case KERNEL_MUL:
		for (i = 0; i < n; i++)
			y[i] = a[i * sa] * b[i * sb];
		break;
	case KERNEL_DIV:
		for (i = 0; i < n; i++)
			y[i] = a[i * sa] / b[i * sb];
		break;
	}
}

void
kernel_binary(enum kernel_binop op, float *y, const int64_t *ys, int nd,
    const float *a, const int64_t *as, int and, const float *b,
    const int64_t *bs, int bnd)
{
	struct ew_args	e;
	size_t		sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
	size_t		rows = 1, n;
	bool		a_dense, a_zero, b_dense, b_zero;
	int		k;

	if (nd == 0) {
		binary_row(op, y, a, 0, b, 0, 1);
		return;
	}
	bcast_strides(sa, ys, nd, as, and);
	bcast_strides(sb, ys, nd, bs, bnd);
	/* Rows as long as possible: trailing dims over which each operand
	 * is either dense or constant fold into one, so that a bias add is
	 * rows of the bias length and a scalar multiply is a single row. */
	n = (size_t)ys[nd - 1];
	a_dense = sa[nd - 1] == 1 || n == 1;
	a_zero = sa[nd - 1] == 0;
	b_dense = sb[nd - 1] == 1 || n == 1;
	b_zero = sb[nd - 1] == 0;
	for (k = nd - 1; k > 0; k--) {
		size_t	d = (size_t)ys[k - 1];
		bool	ad = a_dense && (sa[k - 1] == n || d == 1);
		bool	az = a_zero && (sa[k - 1] == 0 || d == 1);
		bool	bd = b_dense && (sb[k - 1] == n || d == 1);
		bool	bz = b_zero && (sb[k - 1] == 0 || d == 1);

		if (!(ad || az) || !(bd || bz))
			break;
		a_dense = ad;
		a_zero = az;
		b_dense = bd;
		b_zero = bz;
		n *= d;
	}
	for (int i = 0; i < k; i++)
		rows *= (size_t)ys[i];
	e = (struct ew_args){ .y = y, .a = a, .b = b, .n = n, .ys = ys,
	    .k = k, .op = op, .sa = a_dense ? 1 : 0, .sb = b_dense ? 1 : 0 };
	memcpy(e.ia, sa, sizeof(sa));
	memcpy(e.ib, sb, sizeof(sb));
	if (rows == 1)		/* one long row: split it */
		par_ranges(binary_part, &e, n, 1);
	else
		par_ranges(binary_rows, &e, rows, n);
}

/* Pieces [lo, hi) of kernel_binary()'s single row. */
static void
binary_part(void *arg, size_t lo, size_t hi)
{
	const struct ew_args	*e = arg;

	binary_row(e->op, e->y + lo, e->a + lo * e->sa, e->sa,
	    e->b + lo * e->sb, e->sb, hi - lo);
}

/* Rows [lo, hi) of kernel_binary(): each operand's offset from the row's
 * index (digits over y's first k dims), then odometer steps. */
static void
binary_rows(void *arg, size_t lo, size_t hi)
{
	const struct ew_args	*e = arg;
	size_t			 idx[TENSOR_MAX_DIMS] = { 0 };
	size_t			 oa = 0, ob = 0, rest = lo;

	for (int i = e->k - 1; i >= 0; i--) {
		idx[i] = rest % (size_t)e->ys[i];
		rest /= (size_t)e->ys[i];
		oa += idx[i] * e->ia[i];
		ob += idx[i] * e->ib[i];
	}
	for (size_t r = lo; r < hi; r++) {
		binary_row(e->op, e->y + r * e->n, e->a + oa, e->sa,
		    e->b + ob, e->sb, e->n);
		/* Advance the row index, odometer style. */
		for (int i = e->k - 1; i >= 0; i--) {
			oa += e->ia[i];
			ob += e->ib[i];
			if (++idx[i] < (size_t)e->ys[i])
				break;
			oa -= e->ia[i] * (size_t)e->ys[i];
			ob -= e->ib[i] * (size_t)e->ys[i];
			idx[i] = 0;
		}
	}
}

KERNEL_VEC void
kernel_relu(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void
kernel_sigmoid(float *y, const float *x, size_t n)
{
	/* Never exponentiate a positive number: no overflow to inf/inf. */
	for (size_t i = 0; i < n; i++) {
		if (x[i] >= 0.0f)
			y[i] = 1.0f / (1.0f + expf(-x[i]));
		else {
			float	e = expf(x[i]);

			y[i] = e / (1.0f + e);
		}
	}
}

void
kernel_tanh(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = tanhf(x[i]);
}

static void
softmax_rows(void *arg, size_t lo, size_t hi)
{
	const struct ew_args	*e = arg;

	for (size_t o = lo; o < hi; o++)
		softmax_row(e->y + o * e->n, e->x + o * e->n, e->n);
}

void
kernel_softmax(float *y, const float *x, size_t outer, size_t n,
    size_t inner)
{
	if (inner == 1) {
		struct ew_args	e = { .y = y, .x = x, .n = n };

		par_ranges(softmax_rows, &e, outer, n);
		return;
	}
	for (size_t o = 0; o < outer; o++) {
		for (size_t j = 0; j < inner; j++) {
			const float	*xp = x + o * n * inner + j;
			float		*yp = y + o * n * inner + j;
			float		 max = xp[0], sum = 0.0f;

			for (size_t i = 1; i < n; i++)
				if (xp[i * inner] > max)
					max = xp[i * inner];
			for (size_t i = 0; i < n; i++) {
				yp[i * inner] = expf(xp[i * inner] - max);
				sum += yp[i * inner];
			}
			for (size_t i = 0; i < n; i++)
				yp[i * inner] /= sum;
		}
	}
}

int
kernel_warmup(void)
{
	const size_t	 n = 512;
	float		*m;

	if ((m = calloc(3 * n * n, sizeof(*m))) == NULL)
		return -1;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n,
	    (blasint)n, (blasint)n, 1.0f, m, (blasint)n, m + n * n,
	    (blasint)n, 0.0f, m + 2 * n * n, (blasint)n);
	free(m);
	/* The product pool's workers too, while threads may be created:
	 * the sandbox sets RLIMIT_NPROC to 0, where pthread_create() fails
	 * (EAGAIN) and every product would stay on one thread. */
	par_start(par_threads() - 1);
	return 0;
}

/* --- windows: im2col and pooling --- */

/* The output positions o in [*lo, *hi) whose tap lands inside the input:
 * 0 <= o * stride + base < in. */
static void
win_span(int64_t base, int64_t stride, int64_t in, int64_t out,
    int64_t *lo, int64_t *hi)
{
	int64_t	l = 0, h;

	if (base < 0)
		l = (-base + stride - 1) / stride;
	h = in - base > 0 ? (in - base + stride - 1) / stride : 0;
	if (h > out)
		h = out;
	if (l > out)
		l = out;
	if (h < l)
		h = l;
	*lo = l;
	*hi = h;
}

KERNEL_ROWS void
kernel_im2col(float *col, size_t ld, const float *x, size_t channels,
    const struct kernel_win *w)
{
	const int64_t	*in = w->in, *out = w->out, *s = w->stride;
	size_t		 pin = (size_t)(in[0] * in[1] * in[2]);

	for (size_t c = 0; c < channels; c++) {
		const float	*xc = x + c * pin;

		for (int64_t k0 = 0; k0 < w->kern[0]; k0++)
		for (int64_t k1 = 0; k1 < w->kern[1]; k1++)
		for (int64_t k2 = 0; k2 < w->kern[2]; k2++) {
			int64_t	b2 = k2 * w->dil[2] - w->pad[2], lo, hi;
			float	*row = col;

			col += ld;
			win_span(b2, s[2], in[2], out[2], &lo, &hi);
			for (int64_t o0 = 0; o0 < out[0]; o0++) {
				int64_t	i0 = o0 * s[0] + k0 * w->dil[0] -
				    w->pad[0];

				for (int64_t o1 = 0; o1 < out[1]; o1++) {
					int64_t		 i1 = o1 * s[1] + k1 *
					    w->dil[1] - w->pad[1];
					float		*r = row + (o0 * out[1] +
					    o1) * out[2];
					const float	*xr;

					if (i0 < 0 || i0 >= in[0] || i1 < 0 ||
					    i1 >= in[1]) {
						memset(r, 0, (size_t)out[2] *
						    sizeof(*r));
						continue;
					}
					xr = xc + (i0 * in[1] + i1) * in[2] +
					    b2;
					for (int64_t o = 0; o < lo; o++)
						r[o] = 0.0f;
					if (s[2] == 1)
						for (int64_t o = lo; o < hi;
						    o++)
							r[o] = xr[o];
					else
						for (int64_t o = lo; o < hi;
						    o++)
							r[o] = xr[o * s[2]];
					for (int64_t o = hi; o < out[2]; o++)
						r[o] = 0.0f;
				}
			}
		}
	}
}

size_t
kernel_wide_slack(const struct kernel_win *w)
{
	/* The garbage columns of the last output row read past the last
	 * padded row by up to the kernel's dilated width. */
	return (size_t)((w->kern[2] - 1) * w->dil[2] + 1);
}

/* KERNEL_ROWS: the padding is a float or two per row, not worth a call
 * to memset. */
KERNEL_ROWS void
kernel_pad_planes(float *restrict xp, const float *restrict x,
    size_t channels, const struct kernel_win *w)
{
	size_t	h = (size_t)w->in[1], wd = (size_t)w->in[2];
	size_t	top = (size_t)w->pad[1], left = (size_t)w->pad[2];
	size_t	hp = top + h + (size_t)w->pad_end[1];
	size_t	wp = left + wd + (size_t)w->pad_end[2];
	size_t	right = wp - left - wd;

	for (size_t c = 0; c < channels; c++) {
		const float	*xc = x + c * h * wd;

		for (size_t r = 0; r < hp; r++, xp += wp) {
			const float	*xr;

			if (r < top || r >= top + h) {
				for (size_t j = 0; j < wp; j++)
					xp[j] = 0.0f;
				continue;
			}
			xr = xc + (r - top) * wd;
			for (size_t j = 0; j < left; j++)
				xp[j] = 0.0f;
			for (size_t j = 0; j < wd; j++)
				xp[left + j] = xr[j];
			for (size_t j = 0; j < right; j++)
				xp[left + wd + j] = 0.0f;
		}
	}
	for (size_t j = 0, n = kernel_wide_slack(w); j < n; j++)
		xp[j] = 0.0f;
}

void
kernel_im2col_wide(float *col, size_t ld, const float *xp, size_t channels,
    const struct kernel_win *w, size_t r0, size_t r1)
{
	size_t	hp = (size_t)(w->pad[1] + w->in[1] + w->pad_end[1]);
	size_t	wp = (size_t)(w->pad[2] + w->in[2] + w->pad_end[2]);
	size_t	s1 = (size_t)w->stride[1];
	size_t	d1 = (size_t)w->dil[1], d2 = (size_t)w->dil[2];
	size_t	n = (r1 - r0) * wp;

	for (size_t c = 0; c < channels; c++) {
		const float	*xc = xp + c * hp * wp;

		for (int64_t k1 = 0; k1 < w->kern[1]; k1++)
		for (int64_t k2 = 0; k2 < w->kern[2]; k2++, col += ld) {
			const float	*src = xc + (r0 * s1 + (size_t)k1 * d1) *
					    wp + (size_t)k2 * d2;

			if (s1 == 1) {
				memcpy(col, src, n * sizeof(*col));
				continue;
			}
			for (size_t o = 0; o < r1 - r0; o++)
				memcpy(col + o * wp, src + o * s1 * wp,
				    wp * sizeof(*col));
		}
	}
}

/* How many values each row but the last of a copy out may write: n
 * rounded up to whole vectors of 8 when dense rows of y (ldy == n) let
 * the excess fall at the start of the next row, which is written after
 * it, and the values to read lie within xcap of the row's start (the
 * rows after it in x); n otherwise.  Short rows (a CNN's 14 or 7) then
 * take no scalar tail. */
static size_t
row_wide(size_t n, size_t ldy, size_t xcap)
{
	size_t	nw = (n + 7) & ~(size_t)7;

	return ldy == n && nw <= xcap && nw <= 2 * n ? nw : n;
}

KERNEL_VEC void
kernel_plane_bias(float *restrict y, size_t ldy, const float *restrict x,
    size_t ldx, float bias, size_t rows, size_t n, bool relu)
{
	size_t	nw = row_wide(n, ldy, 2 * ldx);

	for (size_t r = 0; r < rows; r++, y += ldy, x += ldx) {
		size_t	len = r + 1 < rows ? nw : n;

		if (relu)
			for (size_t j = 0; j < len; j++) {
				float	v = x[j] + bias;

				y[j] = v > 0.0f ? v : 0.0f;
			}
		else
			for (size_t j = 0; j < len; j++)
				y[j] = x[j] + bias;
	}
}

/* One row of kernel_plane_bias_pool(): the windows over x0 and x1. */
KERNEL_INLINE void
pool_row(float *restrict y, const float *restrict x0,
    const float *restrict x1, float bias, size_t half, bool relu)
{
	if (relu)
		for (size_t q = 0; q < half; q++) {
			float	a = x0[2 * q] + bias, b = x0[2 * q + 1] + bias;
			float	c = x1[2 * q] + bias, d = x1[2 * q + 1] + bias;
			float	m;

			a = a > 0.0f ? a : 0.0f;
			b = b > 0.0f ? b : 0.0f;
			c = c > 0.0f ? c : 0.0f;
			d = d > 0.0f ? d : 0.0f;
			m = b > a ? b : a;
			m = c > m ? c : m;
			y[q] = d > m ? d : m;
		}
	else
		for (size_t q = 0; q < half; q++) {
			float	a = x0[2 * q] + bias, b = x0[2 * q + 1] + bias;
			float	c = x1[2 * q] + bias, d = x1[2 * q + 1] + bias;
			float	m;

			m = b > a ? b : a;
			m = c > m ? c : m;
			y[q] = d > m ? d : m;
		}
}

KERNEL_VEC void
kernel_plane_bias_pool(float *restrict y, size_t ldy, const float *restrict x,
    size_t ldx, float bias, size_t rows, size_t n, bool relu)
{
	size_t	hw = row_wide(n / 2, ldy, ldx);

	for (size_t r = 0; r + 1 < rows; r += 2, y += ldy, x += 2 * ldx)
		pool_row(y, x, x + ldx, bias, r + 3 < rows ? hw : n / 2,
		    relu);
}

/* The taps k in [*lo, *hi) of a window starting at b that land inside
 * [0, in): 0 <= b + k * dil < in. */
static void
win_taps(int64_t b, int64_t kern, int64_t dil, int64_t in, int64_t *lo,
    int64_t *hi)
{
	int64_t	l = 0, h = kern;

	if (b < 0)
		l = (-b + dil - 1) / dil;
	if (b + (h - 1) * dil >= in)
		h = in - b > 0 ? (in - b + dil - 1) / dil : 0;
	if (h < l)
		h = l;
	*lo = l;
	*hi = h;
}

/* Max pooling of 1-D and 2-D windows that never leave the input and have
 * no dilation (the 2x2 stride-2 pools of CNNs): whole output rows at a
 * time, with no bounds to check.  Returns false if w is not such a
 * window. */
static bool
maxpool_dense(float *y, const float *x, size_t planes,
    const struct kernel_win *w)
{
	const int64_t	*in = w->in, *out = w->out, *k = w->kern;
	const int64_t	*s = w->stride;

	for (int d = 0; d < 3; d++)
		if (w->dil[d] != 1 || w->pad[d] != 0 ||
		    (out[d] - 1) * s[d] + k[d] > in[d])
			return false;
	if (k[0] != 1 || s[0] != 1)
		return false;
	/* Dim 0 is then a run of independent planes. */
	planes *= (size_t)in[0];
	if (k[1] == 2 && k[2] == 2 && s[1] == 2 && s[2] == 2) {
		maxpool_2x2(y, x, planes, (size_t)in[1], (size_t)in[2],
		    (size_t)out[1], (size_t)out[2]);
		return true;
	}
	for (size_t c = 0; c < planes; c++) {
		const float	*xc = x + c * (size_t)(in[1] * in[2]);

		for (int64_t o1 = 0; o1 < out[1]; o1++, y += out[2]) {
			const float	*xr = xc + o1 * s[1] * in[2];

			for (int64_t o2 = 0; o2 < out[2]; o2++)
				y[o2] = xr[o2 * s[2]];
			for (int64_t k1 = 0; k1 < k[1]; k1++)
				for (int64_t k2 = 0; k2 < k[2]; k2++) {
					const float	*xk = xr + k1 * in[2] +
							    k2;

					for (int64_t o2 = 0; o2 < out[2];
					    o2++) {
						float	v = xk[o2 * s[2]];

						y[o2] = v > y[o2] ? v : y[o2];
					}
				}
		}
	}
	return true;
}

/* maxpool_dense() of a 2x2 window with stride 2, the CNN's pool: the
 * four taps of an output at once, compared in the same order as the
 * general loop so that NaNs come out the same. */
KERNEL_VEC static void
maxpool_2x2(float *restrict y, const float *restrict x, size_t planes,
    size_t in1, size_t in2, size_t out1, size_t out2)
{
	for (size_t c = 0; c < planes; c++) {
		const float	*xc = x + c * in1 * in2;

		for (size_t o1 = 0; o1 < out1; o1++, y += out2) {
			const float	*r0 = xc + 2 * o1 * in2;
			const float	*r1 = r0 + in2;

			for (size_t o2 = 0; o2 < out2; o2++) {
				float	m = r0[2 * o2], v;

				v = r0[2 * o2 + 1];
				m = v > m ? v : m;
				v = r1[2 * o2];
				m = v > m ? v : m;
				v = r1[2 * o2 + 1];
				y[o2] = v > m ? v : m;
			}
		}
	}
}

/* A kernel_maxpool() without indices over the threads, as
 * maxpool_part() reads it. */
struct maxpool_job {
	float			*y;
	const float		*x;
	const struct kernel_win	*w;
	size_t			 planes;
	size_t			 chunk;		/* planes per part */
};

/* Planes of a maxpool_job. */
static void
maxpool_part(void *arg, size_t c, int thr)
{
	const struct maxpool_job	*j = arg;
	const int64_t			*in = j->w->in, *out = j->w->out;
	size_t				 from = c * j->chunk, n = j->chunk;

	(void)thr;
	if (from + n > j->planes)
		n = j->planes - from;
	kernel_maxpool(j->y + from * (size_t)(out[0] * out[1] * out[2]),
	    NULL, j->x + from * (size_t)(in[0] * in[1] * in[2]), n, j->w,
	    false);
}

void
kernel_maxpool(float *y, int64_t *idx, const float *x, size_t planes,
    const struct kernel_win *w, bool colmajor)
{
	const int64_t	*in = w->in, *out = w->out, *dl = w->dil;
	size_t		 pin = (size_t)(in[0] * in[1] * in[2]);
	/* Element strides of the flat index the Indices output reports. */
	int64_t		 st0 = colmajor ? 1 : in[1] * in[2];
	int64_t		 st1 = colmajor ? in[0] : in[2];
	int64_t		 st2 = colmajor ? in[0] * in[1] : 1;

	size_t		 work = planes * (size_t)(out[0] * out[1] * out[2] *
			    w->kern[0] * w->kern[1] * w->kern[2]);
	int		 nthr;

	/* Planes are independent: a large pool goes over the threads,
	 * two parts each (one of them may be descheduled), as long as
	 * a part has KERNEL_PAR_POOL taps to compare. */
	if (idx == NULL && planes > 1 && work >= 2 * KERNEL_PAR_POOL &&
	    (nthr = par_threads()) > 1 && !par_busy) {
		struct maxpool_job	j = { y, x, w, planes, 0 };
		size_t			parts = 2 * (size_t)nthr;

		if (parts > work / KERNEL_PAR_POOL)
			parts = work / KERNEL_PAR_POOL;
		if (parts > planes)
			parts = planes;
		j.chunk = (planes + parts - 1) / parts;
		par_busy = true;
		par_run(maxpool_part, &j, (planes + j.chunk - 1) / j.chunk,
		    nthr);
		par_busy = false;
		return;
	}
	if (idx == NULL && maxpool_dense(y, x, planes, w))
		return;
	for (size_t c = 0; c < planes; c++) {
		const float	*xc = x + c * pin;

		for (int64_t o0 = 0; o0 < out[0]; o0++)
		for (int64_t o1 = 0; o1 < out[1]; o1++) {
			int64_t	b0 = o0 * w->stride[0] - w->pad[0];
			int64_t	b1 = o1 * w->stride[1] - w->pad[1];
			int64_t	l0, h0, l1, h1;

			/* The taps of the outer dims hold for a whole row
			 * of outputs. */
			win_taps(b0, w->kern[0], dl[0], in[0], &l0, &h0);
			win_taps(b1, w->kern[1], dl[1], in[1], &l1, &h1);
			for (int64_t o2 = 0; o2 < out[2]; o2++) {
				int64_t	b2 = o2 * w->stride[2] - w->pad[2];
				int64_t	l2, h2, at = -1;
				float	max = -INFINITY;

				win_taps(b2, w->kern[2], dl[2], in[2], &l2,
				    &h2);
				for (int64_t k0 = l0; k0 < h0; k0++)
				for (int64_t k1 = l1; k1 < h1; k1++) {
					int64_t		 i0 = b0 + k0 * dl[0];
					int64_t		 i1 = b1 + k1 * dl[1];
					const float	*xr = xc + (i0 * in[1] +
							    i1) * in[2] + b2;

					if (idx == NULL) {
						for (int64_t k2 = l2; k2 < h2;
						    k2++) {
							float	v = xr[k2 *
								    dl[2]];

							max = v > max ? v :
							    max;
						}
						continue;
					}
					for (int64_t k2 = l2; k2 < h2; k2++) {
						float	v = xr[k2 * dl[2]];

						if (at == -1 || v > max) {
							max = v;
							at = i0 * st0 + i1 *
							    st1 + (b2 + k2 *
							    dl[2]) * st2;
						}
					}
				}
				*y++ = max;
				if (idx != NULL)
					*idx++ = (int64_t)(c * pin) +
					    (at < 0 ? 0 : at);
			}
		}
	}
}

/* How many taps of a window starting at b fall in [from, to). */
static int64_t
win_count(int64_t b, int64_t kern, int64_t dil, int64_t from, int64_t to)
{
	int64_t	lo, hi;

	win_taps(b - from, kern, dil, to - from, &lo, &hi);
	return hi - lo;
}

void
kernel_avgpool(float *y, const float *x, size_t planes,
    const struct kernel_win *w, bool include_pad)
{
	const int64_t	*in = w->in, *out = w->out, *dl = w->dil;
	size_t		 pin = (size_t)(in[0] * in[1] * in[2]);

	for (size_t c = 0; c < planes; c++) {
		const float	*xc = x + c * pin;

		for (int64_t o0 = 0; o0 < out[0]; o0++)
		for (int64_t o1 = 0; o1 < out[1]; o1++)
		for (int64_t o2 = 0; o2 < out[2]; o2++) {
			int64_t	b[3], lo[3], hi[3], cnt = 1;
			double	sum = 0.0;

			b[0] = o0 * w->stride[0] - w->pad[0];
			b[1] = o1 * w->stride[1] - w->pad[1];
			b[2] = o2 * w->stride[2] - w->pad[2];
			for (int d = 0; d < 3; d++)
				win_taps(b[d], w->kern[d], dl[d], in[d],
				    &lo[d], &hi[d]);
			for (int64_t k0 = lo[0]; k0 < hi[0]; k0++)
			for (int64_t k1 = lo[1]; k1 < hi[1]; k1++) {
				const float	*xr = xc + ((b[0] + k0 *
						    dl[0]) * in[1] + b[1] +
						    k1 * dl[1]) * in[2] + b[2];

				for (int64_t k2 = lo[2]; k2 < hi[2]; k2++)
					sum += xr[k2 * dl[2]];
			}
			/* The divisor is a product over the dims: windows
			 * are boxes. */
			for (int d = 0; d < 3; d++)
				cnt *= include_pad ?
				    win_count(b[d], w->kern[d], dl[d],
				    -w->pad[d], in[d] + w->pad_end[d]) :
				    hi[d] - lo[d];
			*y++ = cnt > 0 ? (float)(sum / (double)cnt) : 0.0f;
		}
	}
}

void
kernel_logsoftmax(float *y, const float *x, size_t outer, size_t n,
    size_t inner)
{
	for (size_t o = 0; o < outer; o++) {
		for (size_t j = 0; j < inner; j++) {
			const float	*xp = x + o * n * inner + j;
			float		*yp = y + o * n * inner + j;
			float		 max = xp[0], lse;
			double		 sum = 0.0;

			for (size_t i = 1; i < n; i++)
				if (xp[i * inner] > max)
					max = xp[i * inner];
			for (size_t i = 0; i < n; i++)
				sum += exp((double)(xp[i * inner] - max));
			lse = max + (float)log(sum);
			for (size_t i = 0; i < n; i++)
				yp[i * inner] = xp[i * inner] - lse;
		}
	}
}

/* --- vectorised math --- */

/* The loops below keep KERNEL_LANES partial sums or maxima so that a
 * reduction vectorises without reassociating the program's arithmetic. */
#define KERNEL_LANES	16

/* e^x in float with about 2 ulp of error, written so that a loop calling
 * it vectorises: x = k ln2 + r with |r| <= ln2 / 2, e^r by its Taylor
 * series to r^7, 2^k put into the exponent bits.  Inputs below -87 give
 * about 1e-38 instead of a denormal or 0, above 88 give e^88; NaN stays
 * NaN. */
KERNEL_INLINE float
vexpf(float x)
{
	const float	 magic = 12582912.0f;	/* 1.5 * 2^23: rounds */
	float		 k, r, p;
	int32_t		 e;
	uint32_t	 bits;
	float		 scale, c;

	/* NaN fails the first test too: c is never NaN, which (int32_t)k
	 * could not convert. */
	c = x > -87.0f ? x : -87.0f;
	c = c < 88.0f ? c : 88.0f;
	k = (c * 1.44269504f + magic) - magic;
	r = c - k * 0.693359375f;		/* ln2, high bits: exact */
	r = r - k * -2.12194440e-4f;		/* ln2, low bits */
	p = 1.0f / 5040;
	p = p * r + 1.0f / 720;
	p = p * r + 1.0f / 120;
	p = p * r + 1.0f / 24;
	p = p * r + 1.0f / 6;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	e = (int32_t)k + 127;
	bits = (uint32_t)e << 23;
	memcpy(&scale, &bits, sizeof(scale));
	return x != x ? x : p * scale;
}

/* Softmax of one dense row; y may equal x. */
KERNEL_VEC static void
softmax_row(float *y, const float *x, size_t n)
{
	float	lane[KERNEL_LANES], max, sum, inv;
	size_t	i, j, body = n - n % KERNEL_LANES;

	for (j = 0; j < KERNEL_LANES; j++)
		lane[j] = x[0];
	for (i = 0; i < body; i += KERNEL_LANES)
		for (j = 0; j < KERNEL_LANES; j++)
			lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
	max = lane[0];
	for (j = 1; j < KERNEL_LANES; j++)
		max = lane[j] > max ? lane[j] : max;
	for (; i < n; i++)
		max = x[i] > max ? x[i] : max;
	for (i = 0; i < n; i++)
		y[i] = vexpf(x[i] - max);
	for (j = 0; j < KERNEL_LANES; j++)
		lane[j] = 0.0f;
	for (i = 0; i < body; i += KERNEL_LANES)
		for (j = 0; j < KERNEL_LANES; j++)
			lane[j] += y[i + j];
	sum = 0.0f;
	for (j = 0; j < KERNEL_LANES; j++)
		sum += lane[j];
	for (; i < n; i++)
		sum += y[i];
	inv = 1.0f / sum;
	for (i = 0; i < n; i++)
		y[i] *= inv;
}

/* erf(x) = 1 - (1 + a1 x + ... + a6 x^6)^-16 for x >= 0 (Abramowitz and
 * Stegun 7.1.28, error below 3e-7), and near 0, where that form cancels,
 * the Taylor series to x^11 (error below 2e-8 for |x| < 0.5). */
KERNEL_INLINE float
verff(float v)
{
	float	a = v < 0.0f ? -v : v, a2 = v * v;
	float	p, t, big, small;

	p = 4.30638e-5f;
	p = p * a + 2.765672e-4f;
	p = p * a + 1.520143e-4f;
	p = p * a + 9.2705272e-3f;
	p = p * a + 4.22820123e-2f;
	p = p * a + 7.05230784e-2f;
	p = p * a + 1.0f;
	t = p * p;		/* p^2 */
	t = t * t;		/* p^4 */
	t = t * t;		/* p^8 */
	t = t * t;		/* p^16 */
	big = 1.0f - 1.0f / t;
	big = v < 0.0f ? -big : big;
	t = -1.0f / 1320;
	t = t * a2 + 1.0f / 216;
	t = t * a2 - 1.0f / 42;
	t = t * a2 + 1.0f / 10;
	t = t * a2 - 1.0f / 3;
	t = t * a2 + 1.0f;
	small = 1.12837917f * v * t;
	/* A NaN fails both tests and takes big, which is NaN. */
	return a < 0.5f ? small : big;
}

KERNEL_VEC void
kernel_erf(float *restrict y, const float *restrict x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = verff(x[i]);
}


KERNEL_VEC static void
gelu_range(void *arg, size_t lo, size_t hi)
{
	const struct ew_args	*e = arg;
	float			*restrict y = e->y;
	const float		*restrict x = e->x;

	for (size_t i = lo; i < hi; i++)
		y[i] = 0.5f * x[i] * (1.0f + verff(x[i] * 0.70710678f));
}

void
kernel_gelu(float *restrict y, const float *restrict x, size_t n)
{
	struct ew_args	e = { .y = y, .x = x };

	par_ranges(gelu_range, &e, n, 1);
}

/* Layer normalisation of rows [lo, hi) of e->inner dense elements. */
KERNEL_VEC static void
layernorm_rows(void *arg, size_t lo, size_t hi)
{
	const struct ew_args	*e = arg;
	float			*restrict y = e->y;
	const float		*restrict x = e->x;
	const float		*restrict scale = e->scale;
	const float		*restrict bias = e->bias;
	float			*restrict mean_out = e->mean;
	float			*restrict inv_out = e->inv;
	size_t			 inner = e->inner;
	float			 eps = e->eps;
	size_t			 body = inner - inner % KERNEL_LANES;

	for (size_t o = lo; o < hi; o++) {
		const float	*xp = x + o * inner;
		float		*yp = y + o * inner;
		float		 lane[KERNEL_LANES], mean, var, inv;
		size_t		 i, j;

		for (j = 0; j < KERNEL_LANES; j++)
			lane[j] = 0.0f;
		for (i = 0; i < body; i += KERNEL_LANES)
			for (j = 0; j < KERNEL_LANES; j++)
				lane[j] += xp[i + j];
		mean = 0.0f;
		for (j = 0; j < KERNEL_LANES; j++)
			mean += lane[j];
		for (; i < inner; i++)
			mean += xp[i];
		mean /= (float)inner;
		/* Two passes: the variance of values far from 0 keeps its
		 * digits. */
		for (j = 0; j < KERNEL_LANES; j++)
			lane[j] = 0.0f;
		for (i = 0; i < body; i += KERNEL_LANES)
			for (j = 0; j < KERNEL_LANES; j++)
				lane[j] += (xp[i + j] - mean) *
				    (xp[i + j] - mean);
		var = 0.0f;
		for (j = 0; j < KERNEL_LANES; j++)
			var += lane[j];
		for (; i < inner; i++)
			var += (xp[i] - mean) * (xp[i] - mean);
		var /= (float)inner;
		inv = 1.0f / sqrtf(var + eps);
		if (bias != NULL)
			for (i = 0; i < inner; i++)
				yp[i] = (xp[i] - mean) * inv * scale[i] +
				    bias[i];
		else
			for (i = 0; i < inner; i++)
				yp[i] = (xp[i] - mean) * inv * scale[i];
		if (mean_out != NULL)
			mean_out[o] = mean;
		if (inv_out != NULL)
			inv_out[o] = inv;
	}
}

/* Layer normalisation of `outer` dense rows of `inner` elements. */
void
kernel_layernorm(float *y, const float *x, const float *scale,
    const float *bias, size_t outer, size_t inner, float eps,
    float *mean_out, float *inv_out)
{
	struct ew_args	e = { .y = y, .x = x, .scale = scale, .bias = bias,
			    .inner = inner, .eps = eps, .mean = mean_out,
			    .inv = inv_out };

	par_ranges(layernorm_rows, &e, outer, inner);
}

/* --- fused products --- */

void
kernel_matmul_fused(float *y, const int64_t *ys, const float *a,
    const int64_t *as, const float *b, const int64_t *bs, int nd,
    float alpha, const float *bias)
{
	size_t	n = (size_t)ys[nd - 1], rows = 1;

	if (bias == NULL) {
		matmul_ab(y, ys, a, as, b, bs, nd, alpha, 0.0f);
		return;
	}
	/* The bias rows go in first and sgemm adds the product to them,
	 * in the same pass that writes y. */
	for (int i = 0; i < nd - 1; i++)
		rows *= (size_t)ys[i];
	for (size_t r = 0; r < rows; r++)
		memcpy(y + r * n, bias, n * sizeof(*y));
	matmul_ab(y, ys, a, as, b, bs, nd, alpha, 1.0f);
}

/* --- threads --- */

/* Workers for par_run(), started on first use and kept: a request then
 * starts no thread.  Only the runtime's one serving thread calls
 * par_run().  A job is `nchunks` calls fn(arg, chunk, thread), thread
 * 0 the caller's and 1.. the workers' (per-thread scratch), the chunks
 * handed out in shares (share.h); the caller returns once `done` counts
 * them all.  ticket holds the job's generation, which wakes the
 * workers. */
static struct {
	pthread_mutex_t		 mu;
	pthread_cond_t		 go;
	unsigned		 wake;		/* bumped per job, under mu */
	int			 started;	/* workers running */
	bool			 failed;	/* cannot start them */
	/* What a spinning worker reads, on a cache line of its own: the
	 * wake-ups' lock and the count of finished chunks change under
	 * it otherwise, and where the linker happens to put this struct
	 * decided how much the workers' spinning slowed the caller (a
	 * transformer's request by a tenth). */
	_Alignas(64) _Atomic uint64_t ticket;	/* generation << 32 */
	_Atomic int		 nshares;	/* the job's shares */
	void			(*_Atomic fn)(void *, size_t, int);
	void			*_Atomic arg;
	struct share		 share[KERNEL_PAR_MAX];	/* thread i's */
	/* Last, so the struct's tail padding keeps its line its own. */
	_Alignas(64) _Atomic uint32_t done;	/* chunks finished */
} par = { .mu = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER };

/* A spinning thread's hint to the CPU. */
static inline void
par_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* The threads a product may use: the replica's, as main() gave them to
 * OpenBLAS. */
static int
par_threads(void)
{
	int	n = openblas_get_num_threads();

	return n > KERNEL_PAR_MAX ? KERNEL_PAR_MAX : n;
}

/* Computes chunks of job gen on thread self until none is left.  A
 * thread the job has no share for (more workers run than its thread
 * count) takes none, so a task's thread index is below that count. */
static void
par_chunks(int self, uint64_t gen)
{
	int	n = atomic_load(&par.nshares);
	long	c;

	if (self >= n)
		return;
	while ((c = share_next(par.share, n, self, (uint32_t)gen)) != -1) {
		void	(*fn)(void *, size_t, int) = atomic_load(&par.fn);

		fn(atomic_load(&par.arg), (size_t)c, self);
		atomic_fetch_add(&par.done, 1);
	}
}

static void *
par_worker(void *arg)
{
	unsigned	seen = 0;
	uint64_t	gen = 0;
	int		self = (int)(intptr_t)arg;

	for (;;) {
		/* A model's products come in quick succession: watch for
		 * the next one a little while before sleeping, as waking
		 * takes longer than many products. */
		for (int i = 0; i < KERNEL_PAR_SPIN &&
		    atomic_load(&par.ticket) >> 32 == gen; i++)
			par_pause();
		if (atomic_load(&par.ticket) >> 32 == gen) {
			pthread_mutex_lock(&par.mu);
			while (par.wake == seen)
				pthread_cond_wait(&par.go, &par.mu);
			seen = par.wake;
			pthread_mutex_unlock(&par.mu);
		}
		gen = atomic_load(&par.ticket) >> 32;
		par_chunks(self, gen);
	}
	return NULL;
}

/* Starts workers up to want of them, unless starting one failed. */
static void
par_start(int want)
{
	pthread_t	t;

	while (!par.failed && par.started < want) {
		if (pthread_create(&t, NULL, par_worker,
		    (void *)(intptr_t)(par.started + 1)) != 0) {
			par.failed = true;
			break;
		}
		/* A name for ps and the tests, which count the pool's
		 * threads; set from here, as the worker itself may first run
		 * in the sandbox, which has no prctl(). */
		(void)pthread_setname_np(t, "maas-par");
		pthread_detach(t);
		par.started++;
	}
}

/* Runs fn(arg, c) for c in [0, nchunks) on the caller's thread and
 * nthr - 1 workers; returns when all are done. */
static void
par_run(void (*fn)(void *, size_t, int), void *arg, size_t nchunks, int nthr)
{
	uint64_t	gen;
	int		n;

	par_start(nthr - 1);
	if (par.started == 0 || nchunks <= 1 || nchunks > SHARE_MAX) {
		for (size_t c = 0; c < nchunks; c++)
			fn(arg, c, 0);
		return;
	}
	/* The order matters to a worker that sees the new generation in
	 * ticket: the shares, their count, fn and arg it then reads are
	 * this job's.  One still in par_chunks() for an earlier job takes
	 * nothing from these shares, whose generation is not its own.
	 * Workers started for more threads than this job has get no
	 * share. */
	gen = (atomic_load(&par.ticket) >> 32) + 1;
	atomic_store(&par.fn, fn);
	atomic_store(&par.arg, arg);
	atomic_store(&par.done, 0);
	n = par.started + 1 < nthr ? par.started + 1 : nthr;
	atomic_store(&par.nshares, n);
	share_post(par.share, n, nchunks, (uint32_t)gen);
	atomic_store(&par.ticket, gen << 32);
	pthread_mutex_lock(&par.mu);
	par.wake++;
	pthread_cond_broadcast(&par.go);
	pthread_mutex_unlock(&par.mu);
	par_chunks(0, gen);
	/* Only chunks already under way remain, ending within a chunk's
	 * time: spin that long first, as sched_yield() on a busy machine
	 * may hand the CPU to another process for a whole time slice. */
	for (int i = 0; atomic_load(&par.done) < (uint32_t)nchunks; i++) {
		if (i < KERNEL_PAR_SPIN)
			par_pause();
		else
			sched_yield();
	}
}

/* A wake-up with no job: the workers find no chunk, spin for one a
 * while (KERNEL_PAR_SPIN), then sleep again.  On a VM a sleeping worker
 * takes tens to hundreds of microseconds to wake, a good part of a
 * batch-64 MLP layer's share, all of it done by the caller alone. */
void
kernel_par_wake(void)
{
	if (par.started == 0)
		return;
	pthread_mutex_lock(&par.mu);
	par.wake++;
	pthread_cond_broadcast(&par.go);
	pthread_mutex_unlock(&par.mu);
}

int
kernel_par_threads(void)
{
	return par_threads();
}

/* kernel_par_run()'s function and argument, for par_call2(). */
struct par_fn2 {
	void	(*fn)(void *, size_t);
	void	*arg;
};

static void
par_call2(void *arg, size_t c, int thr)
{
	const struct par_fn2	*f = arg;

	(void)thr;
	f->fn(f->arg, c);
}

void
kernel_par_run(void (*fn)(void *, size_t), void *arg, size_t nchunks)
{
	struct par_fn2	f = { fn, arg };

	par_run(par_call2, &f, nchunks, par_threads());
}

/* Elements an element-wise pass must have before par_ranges() splits it
 * across the replica's threads: smaller ones (a batch-1 MLP's) take
 * less time than waking a worker. */
#define PAR_EW_ELEMS	(1u << 15)

/* par_ranges()'s split of [0, n) into nchunks ranges. */
struct par_ranges_job {
	void	(*fn)(void *, size_t, size_t);
	void	*arg;
	size_t	 n, nchunks;
};

static void
par_range_chunk(void *arg, size_t c)
{
	const struct par_ranges_job	*j = arg;

	j->fn(j->arg, j->n * c / j->nchunks, j->n * (c + 1) / j->nchunks);
}

/* fn(arg, lo, hi) over [0, n) units of elems elements each: in one call,
 * or, when there are threads and PAR_EW_ELEMS elements to share, in
 * ranges spread over them.  Each unit is computed by the same code
 * either way, so the bits do not depend on the split. */
static void
par_ranges(void (*fn)(void *, size_t, size_t), void *arg, size_t n,
    size_t elems)
{
	struct par_ranges_job	j = { fn, arg, n, 0 };
	size_t			nthr = (size_t)par_threads();

	if (nthr <= 1 || n < 2 || n * elems < PAR_EW_ELEMS) {
		fn(arg, 0, n);
		return;
	}
	j.nchunks = n < nthr * 4 ? n : nthr * 4;
	kernel_par_run(par_range_chunk, &j, j.nchunks);
}

void
kernel_par_tasks(void (*fn)(void *, size_t, int), void *arg, size_t ntasks)
{
	int	all = par_threads();

	if (all <= 1 || ntasks <= 1) {
		for (size_t c = 0; c < ntasks; c++)
			fn(arg, c, 0);
		return;
	}
	openblas_set_num_threads(1);
	par_run(fn, arg, ntasks, all);
	openblas_set_num_threads(all);
}
