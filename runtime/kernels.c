/* runtime/kernels.c - see kernels.h.  Plain loops for the element-wise
 * kernels (the compiler vectorises the contiguous cases); OpenBLAS for
 * anything with an inner product. */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "runtime/kernels.h"

static void	binary_row(enum kernel_binop, float *y, const float *a,
		    size_t sa, const float *b, size_t sb, size_t n);
static void	bcast_strides(size_t *st, const int64_t *yshape, int nd,
		    const int64_t *shape, int xnd);

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

			if (cn == 1) {
				for (size_t j = 0; j < n; j++)
					yrow[j] = crow[0];
			} else
				memcpy(yrow, crow, n * sizeof(*y));
		}
		yscale = beta;
	}
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
	    tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
	    (blasint)k, alpha, a, (blasint)(ta ? m : k), b,
	    (blasint)(tb ? k : n), yscale, y, (blasint)n);
}

void
kernel_matmul(float *y, const int64_t *ys, const float *a, const int64_t *as,
    const float *b, const int64_t *bs, int nd)
{
	size_t	m = (size_t)ys[nd - 2], n = (size_t)ys[nd - 1];
	size_t	k = (size_t)as[nd - 1];
	size_t	sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
	size_t	idx[TENSOR_MAX_DIMS] = { 0 };
	size_t	batch = 1, oa = 0, ob = 0, ma = 1, mb = 1;
	bool	b_shared = true, a_full = true;
	int	nb = nd - 2;

	for (int i = nb - 1; i >= 0; i--) {
		batch *= (size_t)ys[i];
		b_shared = b_shared && bs[i] == 1;
		a_full = a_full && as[i] == ys[i];
		/* Strides in whole matrices; 0 where the operand broadcasts. */
		sa[i] = as[i] == 1 ? 0 : ma;
		sb[i] = bs[i] == 1 ? 0 : mb;
		ma *= (size_t)as[i];
		mb *= (size_t)bs[i];
	}
	if (b_shared && a_full) {
		/* One weight matrix for every batch: a is (batch * m, k). */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
		    (blasint)(batch * m), (blasint)n, (blasint)k, 1.0f, a,
		    (blasint)k, b, (blasint)n, 0.0f, y, (blasint)n);
		return;
	}
	for (size_t t = 0; t < batch; t++) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
		    (blasint)m, (blasint)n, (blasint)k, 1.0f, a + oa * m * k,
		    (blasint)k, b + ob * k * n, (blasint)n, 0.0f,
		    y + t * m * n, (blasint)n);
		for (int i = nb - 1; i >= 0; i--) {
			oa += sa[i];
			ob += sb[i];
			if (++idx[i] < (size_t)ys[i])
				break;
			oa -= sa[i] * (size_t)ys[i];
			ob -= sb[i] * (size_t)ys[i];
			idx[i] = 0;
		}
	}
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

static void
binary_row(enum kernel_binop op, float *y, const float *a, size_t sa,
    const float *b, size_t sb, size_t n)
{
	size_t	i;

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
	size_t	sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
	size_t	idx[TENSOR_MAX_DIMS] = { 0 };
	size_t	rows = 1, n, oa = 0, ob = 0;

	if (nd == 0) {
		binary_row(op, y, a, 0, b, 0, 1);
		return;
	}
	bcast_strides(sa, ys, nd, as, and);
	bcast_strides(sb, ys, nd, bs, bnd);
	n = (size_t)ys[nd - 1];
	for (int i = 0; i < nd - 1; i++)
		rows *= (size_t)ys[i];
	for (size_t r = 0; r < rows; r++) {
		binary_row(op, y + r * n, a + oa, sa[nd - 1], b + ob,
		    sb[nd - 1], n);
		/* Advance the row index, odometer style. */
		for (int i = nd - 2; i >= 0; i--) {
			oa += sa[i];
			ob += sb[i];
			if (++idx[i] < (size_t)ys[i])
				break;
			oa -= sa[i] * (size_t)ys[i];
			ob -= sb[i] * (size_t)ys[i];
			idx[i] = 0;
		}
	}
}

void
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

void
kernel_softmax(float *y, const float *x, size_t outer, size_t n,
    size_t inner)
{
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
	return 0;
}
