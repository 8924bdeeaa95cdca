/* tests/unit/test_kernels.c - runtime/kernels.c against naive references
 * computed in double: sgemm against a triple loop (transposes, alpha,
 * beta, every C broadcast), batched matmul with broadcasting, broadcasting
 * binary ops, the activations and softmax over several axes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cblas.h>

#include "common/tensor.h"
#include "runtime/kernels.h"

#define TOL	1e-5

static uint64_t	rng_state = 12345;

static float
frand(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((rng_state >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
}

static float *
randv(size_t n)
{
	float	*v = malloc(n * sizeof(*v) + 1);

	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = frand();
	return v;
}

/* |got - want| <= TOL * (1 + scale), where scale is |want| or, for a
 * sum, the sum of the magnitudes of its terms (its condition). */
static void
assert_close_scaled(const float *got, const double *want,
    const double *scale, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double	d = fabs((double)got[i] - want[i]);
		double	s = scale != NULL ? scale[i] : fabs(want[i]);

		if (d > TOL * (1.0 + s))
			fail_msg("element %zu: got %.9g, want %.9g", i,
			    (double)got[i], want[i]);
	}
}

static void
assert_close(const float *got, const double *want, size_t n)
{
	assert_close_scaled(got, want, NULL, n);
}

/* --- gemm --- */

static void
gemm_case(size_t m, size_t n, size_t k, int flags, float alpha, float beta,
    size_t cm, size_t cn, int with_c)
{
	float	*a = randv(m * k), *b = randv(k * n), *c = randv(cm * cn);
	float	*y = randv(m * n);	/* garbage that must not leak in */
	double	*ref = calloc(m * n, sizeof(double));
	double	*mag = calloc(m * n, sizeof(double));
	int	 ta = flags & KERNEL_TRANS_A, tb = flags & KERNEL_TRANS_B;

	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			double	s = 0, g = 0, t;

			for (size_t p = 0; p < k; p++) {
				t = (double)(ta ? a[p * m + i] : a[i * k + p]) *
				    (tb ? b[j * k + p] : b[p * n + j]);
				s += t;
				g += fabs(t);
			}
			s *= alpha;
			g *= fabs(alpha);
			if (with_c) {
				t = beta * (double)c[(cm == 1 ? 0 : i) * cn +
				    (cn == 1 ? 0 : j)];
				s += t;
				g += fabs(t);
			}
			ref[i * n + j] = s;
			mag[i * n + j] = g;
		}
	kernel_gemm(y, a, b, with_c ? c : NULL, m, n, k, flags, alpha, beta,
	    cm, cn);
	assert_close_scaled(y, ref, mag, m * n);
	free(mag);
	free(a);
	free(b);
	free(c);
	free(y);
	free(ref);
}

static void
test_gemm(void **state)
{
	static const size_t	sz[][3] = { { 1, 1, 1 }, { 5, 7, 3 },
				    { 33, 17, 29 }, { 64, 10, 784 } };

	(void)state;
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		size_t	m = sz[s][0], n = sz[s][1], k = sz[s][2];

		for (int fl = 0; fl < 4; fl++) {
			gemm_case(m, n, k, fl, 1.0f, 1.0f, m, n, 0);
			gemm_case(m, n, k, fl, 1.0f, 1.0f, m, n, 1);
			gemm_case(m, n, k, fl, 0.5f, 2.0f, 1, n, 1);
			gemm_case(m, n, k, fl, -1.5f, 0.25f, m, 1, 1);
			gemm_case(m, n, k, fl, 2.0f, -1.0f, 1, 1, 1);
			gemm_case(m, n, k, fl, 1.0f, 0.0f, m, n, 1);
		}
	}
}

/* --- matmul --- */

static size_t
prod(const int64_t *d, int n)
{
	size_t	p = 1;

	for (int i = 0; i < n; i++)
		p *= (size_t)d[i];
	return p;
}

/* Flat offset of output index idx in a broadcast operand of shape s. */
static size_t
bcast_off(const size_t *idx, const int64_t *s, int nd)
{
	size_t	off = 0;

	for (int i = 0; i < nd; i++)
		off = off * (size_t)s[i] + (s[i] == 1 ? 0 : idx[i]);
	return off;
}

static void
matmul_case(int nd, const int64_t *as, const int64_t *bs)
{
	int64_t	ys[TENSOR_MAX_DIMS];
	size_t	idx[TENSOR_MAX_DIMS], na = prod(as, nd), nb = prod(bs, nd);
	size_t	m, n, k, ny, batch;
	float	*a = randv(na), *b = randv(nb), *y;
	double	*ref;

	for (int i = 0; i < nd - 2; i++)
		ys[i] = as[i] > bs[i] ? as[i] : bs[i];
	m = (size_t)(ys[nd - 2] = as[nd - 2]);
	n = (size_t)(ys[nd - 1] = bs[nd - 1]);
	k = (size_t)as[nd - 1];
	ny = prod(ys, nd);
	batch = ny / (m * n);
	y = randv(ny);
	ref = calloc(ny, sizeof(double));
	for (size_t t = 0; t < batch; t++) {
		size_t	rest = t, oa, ob;

		for (int i = nd - 3; i >= 0; i--) {
			idx[i] = rest % (size_t)ys[i];
			rest /= (size_t)ys[i];
		}
		oa = bcast_off(idx, as, nd - 2) * m * k;
		ob = bcast_off(idx, bs, nd - 2) * k * n;
		for (size_t i = 0; i < m; i++)
			for (size_t j = 0; j < n; j++) {
				double	s = 0;

				for (size_t p = 0; p < k; p++)
					s += (double)a[oa + i * k + p] *
					    b[ob + p * n + j];
				ref[t * m * n + i * n + j] = s;
			}
	}
	kernel_matmul(y, ys, a, as, b, bs, nd);
	assert_close(y, ref, ny);
	free(a);
	free(b);
	free(y);
	free(ref);
}

static void
test_matmul(void **state)
{
	(void)state;
	matmul_case(2, (int64_t[]){ 4, 5 }, (int64_t[]){ 5, 6 });
	/* Shared weights: folded into one sgemm. */
	matmul_case(4, (int64_t[]){ 2, 3, 4, 5 }, (int64_t[]){ 1, 1, 5, 6 });
	/* Both batched alike. */
	matmul_case(3, (int64_t[]){ 3, 4, 5 }, (int64_t[]){ 3, 5, 2 });
	/* Broadcast both ways. */
	matmul_case(4, (int64_t[]){ 2, 1, 4, 5 }, (int64_t[]){ 1, 3, 5, 6 });
	/* a broadcast against batched b. */
	matmul_case(3, (int64_t[]){ 1, 4, 5 }, (int64_t[]){ 3, 5, 6 });
	matmul_case(5, (int64_t[]){ 2, 1, 3, 1, 7 },
	    (int64_t[]){ 1, 2, 1, 7, 3 });
}

/* --- broadcasting binary ops --- */

static double
apply(enum kernel_binop op, double a, double b)
{
	switch (op) {
	case KERNEL_ADD:
		return a + b;
	case KERNEL_SUB:
		return a - b;
	case KERNEL_MUL:
		return a * b;
	case KERNEL_DIV:
		return a / b;
	}
	return 0;
}

static void
binary_case(enum kernel_binop op, int and, const int64_t *as, int bnd,
    const int64_t *bs)
{
	int64_t	ys[TENSOR_MAX_DIMS], pa[TENSOR_MAX_DIMS], pb[TENSOR_MAX_DIMS];
	size_t	idx[TENSOR_MAX_DIMS];
	int	nd = and > bnd ? and : bnd;
	float	*a = randv(prod(as, and)), *b = randv(prod(bs, bnd)), *y;
	double	*ref;
	size_t	ny;

	for (int i = 0; i < nd; i++) {
		pa[i] = i < nd - and ? 1 : as[i - (nd - and)];
		pb[i] = i < nd - bnd ? 1 : bs[i - (nd - bnd)];
		ys[i] = pa[i] > pb[i] ? pa[i] : pb[i];
	}
	/* Division by values near 0 is ill-conditioned: keep b away. */
	for (size_t i = 0; op == KERNEL_DIV && i < prod(bs, bnd); i++)
		b[i] = b[i] < 0 ? b[i] - 0.5f : b[i] + 0.5f;
	ny = prod(ys, nd);
	y = randv(ny);
	ref = calloc(ny ? ny : 1, sizeof(double));
	for (size_t t = 0; t < ny; t++) {
		size_t	rest = t;

		for (int i = nd - 1; i >= 0; i--) {
			idx[i] = rest % (size_t)ys[i];
			rest /= (size_t)ys[i];
		}
		ref[t] = apply(op, a[bcast_off(idx, pa, nd)],
		    b[bcast_off(idx, pb, nd)]);
	}
	kernel_binary(op, y, ys, nd, a, as, and, b, bs, bnd);
	assert_close(y, ref, ny);
	free(a);
	free(b);
	free(y);
	free(ref);
}

static void
test_binary(void **state)
{
	(void)state;
	for (int op = KERNEL_ADD; op <= KERNEL_DIV; op++) {
		binary_case(op, 2, (int64_t[]){ 3, 4 }, 2, (int64_t[]){ 3, 4 });
		binary_case(op, 2, (int64_t[]){ 3, 4 }, 0, NULL);
		binary_case(op, 0, NULL, 2, (int64_t[]){ 3, 4 });
		binary_case(op, 0, NULL, 0, NULL);
		binary_case(op, 2, (int64_t[]){ 3, 4 }, 1, (int64_t[]){ 4 });
		binary_case(op, 2, (int64_t[]){ 3, 1 }, 2, (int64_t[]){ 1, 4 });
		binary_case(op, 1, (int64_t[]){ 4 }, 2, (int64_t[]){ 3, 4 });
		binary_case(op, 3, (int64_t[]){ 2, 1, 4 }, 2,
		    (int64_t[]){ 3, 1 });
		binary_case(op, 4, (int64_t[]){ 2, 3, 1, 5 }, 3,
		    (int64_t[]){ 3, 4, 1 });
		binary_case(op, 2, (int64_t[]){ 1, 1 }, 3,
		    (int64_t[]){ 2, 3, 4 });
	}
}

/* --- activations and softmax --- */

static void
test_unary(void **state)
{
	float	x[] = { -100, -20, -3, -0.5f, 0, 0.5f, 3, 20, 100 };
	size_t	n = sizeof(x) / sizeof(x[0]);
	float	y[sizeof(x) / sizeof(x[0])];
	double	ref[sizeof(x) / sizeof(x[0])];

	(void)state;
	kernel_relu(y, x, n);
	for (size_t i = 0; i < n; i++)
		ref[i] = x[i] > 0 ? x[i] : 0;
	assert_close(y, ref, n);
	kernel_sigmoid(y, x, n);
	for (size_t i = 0; i < n; i++)
		ref[i] = 1.0 / (1.0 + exp(-(double)x[i]));
	assert_close(y, ref, n);
	kernel_tanh(y, x, n);
	for (size_t i = 0; i < n; i++)
		ref[i] = tanh((double)x[i]);
	assert_close(y, ref, n);
	/* In place. */
	memcpy(y, x, sizeof(x));
	kernel_relu(y, y, n);
	assert_true(y[0] == 0 && y[8] == 100);
}

static void
softmax_case(size_t outer, size_t n, size_t inner, float scale)
{
	size_t	 total = outer * n * inner;
	float	*x = randv(total), *y = randv(total);
	double	*ref = calloc(total, sizeof(double));

	for (size_t i = 0; i < total; i++)
		x[i] *= scale;
	for (size_t o = 0; o < outer; o++)
		for (size_t j = 0; j < inner; j++) {
			double	max = -INFINITY, sum = 0;

			for (size_t i = 0; i < n; i++)
				max = fmax(max, x[(o * n + i) * inner + j]);
			for (size_t i = 0; i < n; i++)
				sum += exp(x[(o * n + i) * inner + j] - max);
			for (size_t i = 0; i < n; i++)
				ref[(o * n + i) * inner + j] =
				    exp(x[(o * n + i) * inner + j] - max) / sum;
		}
	kernel_softmax(y, x, outer, n, inner);
	assert_close(y, ref, total);
	kernel_softmax(x, x, outer, n, inner);	/* in place */
	assert_close(x, ref, total);
	free(x);
	free(y);
	free(ref);
}

static void
test_softmax(void **state)
{
	(void)state;
	/* A (2, 3, 4) tensor along axis 0, 1, 2, and coerced to 2-D. */
	softmax_case(1, 2, 12, 1.0f);
	softmax_case(2, 3, 4, 1.0f);
	softmax_case(6, 4, 1, 1.0f);
	softmax_case(2, 12, 1, 1.0f);
	softmax_case(1, 24, 1, 1.0f);
	softmax_case(5, 10, 1, 100.0f);		/* large logits: no inf */
	softmax_case(3, 1, 2, 1.0f);
}

/* --- element-wise passes on the replica's threads --- */

static float *
filled(size_t n, unsigned seed)
{
	float	*p = malloc(n * sizeof(float));

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (float)((seed >> 8) % 20001) / 1000.0f - 10.0f;
	}
	return p;
}

/* y, n floats, computed by fn on one thread and on two: the same bits. */
static void
same_on_two(void (*fn)(float *, const void *), const void *arg, size_t n)
{
	float	*y1 = calloc(n, sizeof(float)), *y2 = calloc(n, sizeof(float));

	assert_non_null(y1);
	assert_non_null(y2);
	openblas_set_num_threads(1);
	fn(y1, arg);
	openblas_set_num_threads(2);
	fn(y2, arg);
	openblas_set_num_threads(1);
	assert_memory_equal(y1, y2, n * sizeof(float));
	free(y1);
	free(y2);
}

struct ew_case {
	const float	*a, *b, *s;
	const int64_t	*ys, *as, *bs;
	int		 nd, and, bnd;
	size_t		 outer, n;
	enum kernel_binop op;
};

static void
run_gelu(float *y, const void *arg)
{
	const struct ew_case	*c = arg;

	kernel_gelu(y, c->a, c->n);
}

static void
run_softmax(float *y, const void *arg)
{
	const struct ew_case	*c = arg;

	kernel_softmax(y, c->a, c->outer, c->n, 1);
}

static void
run_layernorm(float *y, const void *arg)
{
	const struct ew_case	*c = arg;

	/* The row means and inverse deviations after the rows. */
	kernel_layernorm(y, c->a, c->s, c->b, c->outer, c->n, 1e-5f,
	    y + c->outer * c->n, y + c->outer * c->n + c->outer);
}

static void
run_binary(float *y, const void *arg)
{
	const struct ew_case	*c = arg;

	kernel_binary(c->op, y, c->ys, c->nd, c->a, c->as, c->and, c->b,
	    c->bs, c->bnd);
}

/* Passes large enough to be split (tens of thousands of elements) give
 * the bits they give on one thread, row layouts and broadcasts
 * included. */
static void
test_ew_threads(void **state)
{
	float		*a = filled(300000, 1), *b = filled(300000, 2);
	float		*s = filled(1000, 3);
	struct ew_case	 c = { .a = a, .b = b, .s = s };

	(void)state;
	c.n = 100003;
	same_on_two(run_gelu, &c, c.n);
	c.outer = 517;
	c.n = 129;
	same_on_two(run_softmax, &c, c.outer * c.n);
	c.outer = 300;
	c.n = 257;
	same_on_two(run_layernorm, &c, c.outer * c.n + 2 * c.outer);
	c.b = NULL;
	same_on_two(run_layernorm, &c, c.outer * c.n + 2 * c.outer);
	c.b = b;
	for (int op = KERNEL_ADD; op <= KERNEL_DIV; op++) {
		c.op = (enum kernel_binop)op;
		/* A bias over rows. */
		c.ys = (const int64_t[]){ 37, 61, 64 };
		c.nd = 3;
		c.as = c.ys;
		c.and = 3;
		c.bs = (const int64_t[]){ 64 };
		c.bnd = 1;
		same_on_two(run_binary, &c, 37 * 61 * 64);
		/* One long dense row, and one against a scalar. */
		c.ys = c.as = c.bs = (const int64_t[]){ 1000, 97 };
		c.bnd = 2;
		c.nd = c.and = 2;
		same_on_two(run_binary, &c, 97000);
		c.bnd = 0;
		same_on_two(run_binary, &c, 97000);
		/* Broadcast in the middle: rows start mid-odometer. */
		c.ys = (const int64_t[]){ 37, 61, 64 };
		c.nd = 3;
		c.as = (const int64_t[]){ 37, 1, 64 };
		c.and = 3;
		c.bs = c.ys;
		c.bnd = 3;
		same_on_two(run_binary, &c, 37 * 61 * 64);
	}
	free(a);
	free(b);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gemm),
		cmocka_unit_test(test_matmul),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_unary),
		cmocka_unit_test(test_softmax),
		cmocka_unit_test(test_ew_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
