/* tests/unit/test_onnx_gemm.c - Gemm and MatMul with constant weights
 * through the executor, on the weights runtime/gemm.c packs at load: a
 * batched MatMul with the bias Add exec.c folds into it, a Gemm with
 * transB, alpha, beta and C, a MatMul with a folded scaling Mul; checked
 * against double precision at two batch sizes and two thread counts,
 * whose results must agree bit for bit; a shape seen before allocates
 * nothing.  On a CPU without AVX2 and FMA nothing is packed and the same
 * checks cover the cblas_sgemm path. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>

#include "runtime/gemm.h"
#include "runtime/onnx/graph.h"
#include "runtime/onnx/onnx.h"
#include "tests/unit/alloccount.h"
#include "tests/unit/onnx_testutil.h"
#include "tools/onnxb.h"

#define FLOAT	ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define TOL	1e-4
#define S	3	/* rows per batch item */
#define K1	40	/* x's width */
#define N1	50	/* after the first MatMul */
#define N2	33	/* after the Gemm */
#define N3	40	/* after the last MatMul */
#define MAXB	5

static float	x[MAXB * S * K1];
static float	w1[K1 * N1], b1[N1];	/* (K1, N1) */
static float	w2[N2 * N1], c2[N2];	/* (N2, N1): transB */
static float	w3[N2 * N3];		/* (N2, N3) */

static uint64_t	rng = 7;

static float
frand(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((rng >> 40) * 0x1.0p-24) - 0.5f;
}

static void
fill(float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = frand();
}

/* x [B, S, K1] -> MatMul w1 -> Add b1 -> Reshape [-1, N1] -> Gemm (w2,
 * transB, alpha 0.5, C c2 with beta 2) = "g" -> MatMul w3 -> Mul 0.25 =
 * "y". */
static Onnx__ModelProto *
model(void)
{
	Onnx__ModelProto	*p = onnxb_model(8, 13, "products");
	Onnx__NodeProto		*n;
	const int64_t		 xd[3] = { ONNXB_DYN, S, K1 };
	const int64_t		 shape[2] = { -1, N1 };
	const float		 quarter = 0.25f;

	onnxb_input(p, "x", FLOAT, 3, xd, "batch");
	onnxb_output(p, "g", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_init_f32(p, "w1", 2, (int64_t[]){ K1, N1 }, w1);
	onnxb_init_f32(p, "b1", 1, (int64_t[]){ N1 }, b1);
	onnxb_init_f32(p, "w2", 2, (int64_t[]){ N2, N1 }, w2);
	onnxb_init_f32(p, "c2", 1, (int64_t[]){ N2 }, c2);
	onnxb_init_f32(p, "w3", 2, (int64_t[]){ N2, N3 }, w3);
	onnxb_init_i64(p, "shape", 1, (int64_t[]){ 2 }, shape);
	onnxb_init_f32(p, "quarter", 0, NULL, &quarter);
	onnxb_node(p, "MatMul", "mm1", (const char *[]){ "x", "w1", NULL },
	    "h");
	onnxb_node(p, "Add", "add1", (const char *[]){ "h", "b1", NULL },
	    "hb");
	onnxb_node(p, "Reshape", "flat", (const char *[]){ "hb", "shape",
	    NULL }, "r");
	n = onnxb_node(p, "Gemm", "gemm2", (const char *[]){ "r", "w2", "c2",
	    NULL }, "g");
	onnxb_attr_int(n, "transB", 1);
	onnxb_attr_float(n, "alpha", 0.5f);
	onnxb_attr_float(n, "beta", 2.0f);
	onnxb_node(p, "MatMul", "mm3", (const char *[]){ "g", "w3", NULL },
	    "s");
	onnxb_node(p, "Mul", "scale3", (const char *[]){ "s", "quarter",
	    NULL }, "y");
	return p;
}

/* The model in double for `rows` rows of x: g (rows, N2), y (rows, N3). */
static void
reference(size_t rows, double *g, double *y)
{
	double	h[N1];

	for (size_t r = 0; r < rows; r++) {
		for (int j = 0; j < N1; j++) {
			h[j] = b1[j];
			for (int k = 0; k < K1; k++)
				h[j] += (double)x[r * K1 + k] * w1[k * N1 + j];
		}
		for (int j = 0; j < N2; j++) {
			double	s = 0;

			for (int k = 0; k < N1; k++)
				s += h[k] * w2[j * N1 + k];
			g[r * N2 + j] = 0.5 * s + 2.0 * c2[j];
		}
		for (int j = 0; j < N3; j++) {
			double	s = 0;

			for (int k = 0; k < N2; k++)
				s += g[r * N2 + k] * w3[k * N3 + j];
			y[r * N3 + j] = 0.25 * s;
		}
	}
}

static void
run_batch(struct onnx_model *m, int64_t batch)
{
	struct ipc_tensor_desc	od;

	(void)onnxt_run_bytes(m, x, 3, (int64_t[]){ batch, S, K1 }, &od);
}

/* Output i, checked against want (n values); a copy the caller frees. */
static float *
out_check(struct onnx_model *m, size_t i, const double *want, size_t n)
{
	struct ipc_tensor_desc	 d;
	uint64_t		 nb;
	const float		*y = onnx_output(m, i, &d, &nb);
	float			*copy;

	assert_int_equal(nb, n * sizeof(float));
	for (size_t k = 0; k < n; k++)
		if (fabs(y[k] - want[k]) > TOL + TOL * fabs(want[k]))
			fail_msg("output %zu[%zu] = %.7g, want %.7g", i, k,
			    (double)y[k], want[k]);
	copy = malloc(n * sizeof(float));
	assert_non_null(copy);
	memcpy(copy, y, n * sizeof(float));
	return copy;
}

static const struct onnx_node *
node_named(const struct onnx_model *m, const char *name)
{
	for (size_t i = 0; i < m->n_nodes; i++)
		if (strcmp(m->nodes[i].name, name) == 0)
			return &m->nodes[i];
	fail_msg("no node '%s'", name);
	return NULL;
}

static void
test_products(void **state)
{
	static double		 g[MAXB * S * N2], y[MAXB * S * N3];
	struct onnx_model	*m;
	float			*g5, *y5, *g1, *y1, *g2, *y2;
	uint64_t		 packed;

	(void)state;
	fill(x, sizeof(x) / sizeof(x[0]));
	fill(w1, sizeof(w1) / sizeof(w1[0]));
	fill(b1, sizeof(b1) / sizeof(b1[0]));
	fill(w2, sizeof(w2) / sizeof(w2[0]));
	fill(c2, sizeof(c2) / sizeof(c2[0]));
	fill(w3, sizeof(w3) / sizeof(w3[0]));
	reference(MAXB * S, g, y);
	openblas_set_num_threads(1);
	m = onnxt_load_ok(model());
	packed = (gemm_pack_floats(K1, N1) + gemm_pack_floats(N1, N2) +
	    gemm_pack_floats(N2, N3)) * sizeof(float);
	if (gemm_fast()) {
		assert_non_null(node_named(m, "mm1")->pack);
		assert_non_null(node_named(m, "gemm2")->pack);
		assert_non_null(node_named(m, "mm3")->pack);
		assert_true(m->const_bytes >= packed);
	} else
		assert_null(node_named(m, "gemm2")->pack);

#ifdef COUNT_ALLOCS
	{
		unsigned long	before = n_allocs;

		/* The first plan grows the arena: the count is live. */
		run_batch(m, MAXB);
		assert_true(n_allocs > before);
	}
#else
	run_batch(m, MAXB);
#endif
	/* The bias Add and the scaling Mul ran inside the products. */
	assert_true(node_named(m, "add1")->fused);
	assert_true(node_named(m, "scale3")->fused);
	g5 = out_check(m, 0, g, MAXB * S * N2);
	y5 = out_check(m, 1, y, MAXB * S * N3);

	/* A row comes out the same whatever the batch around it: a
	 * promise of the packed kernel; OpenBLAS, the portable path
	 * (MAAS_KERNELS=portable), blocks differently for each shape. */
	run_batch(m, 1);
	g1 = out_check(m, 0, g, S * N2);
	y1 = out_check(m, 1, y, S * N3);
	if (gemm_fast()) {
		assert_memory_equal(g1, g5, S * N2 * sizeof(float));
		assert_memory_equal(y1, y5, S * N3 * sizeof(float));
	}

#ifdef COUNT_ALLOCS
	{
		unsigned long	before = n_allocs;

		/* Both shapes planned already: the products allocate
		 * nothing. */
		run_batch(m, MAXB);
		run_batch(m, 1);
		/* (On the portable path OpenBLAS's small-matrix kernels
		 * malloc a few bytes per call themselves.) */
		if (gemm_fast() && n_allocs != before)
			fail_msg("%lu allocations", n_allocs - before);
	}
#endif

	/* And whatever the thread count. */
	openblas_set_num_threads(2);
	run_batch(m, MAXB);
	g2 = out_check(m, 0, g, MAXB * S * N2);
	y2 = out_check(m, 1, y, MAXB * S * N3);
	if (gemm_fast()) {
		assert_memory_equal(g2, g5, MAXB * S * N2 * sizeof(float));
		assert_memory_equal(y2, y5, MAXB * S * N3 * sizeof(float));
	}
	openblas_set_num_threads(1);
	free(g5);
	free(y5);
	free(g1);
	free(y1);
	free(g2);
	free(y2);
	onnx_free(m);
}

/* Gemm with beta 0 does not read C, as before packing: a C of NaN
 * leaves no trace. */
static void
test_beta_zero(void **state)
{
	Onnx__ModelProto	*p = onnxb_model(8, 13, "beta0");
	Onnx__NodeProto		*n;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 d;
	static float		 w[K1 * N2], c[N2], in[2 * K1];
	const float		*y;
	const int64_t		 xd[2] = { ONNXB_DYN, K1 };

	(void)state;
	fill(w, K1 * N2);
	fill(in, 2 * K1);
	for (int j = 0; j < N2; j++)
		c[j] = NAN;
	onnxb_input(p, "x", FLOAT, 2, xd, "batch");
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_init_f32(p, "w", 2, (int64_t[]){ K1, N2 }, w);
	onnxb_init_f32(p, "c", 1, (int64_t[]){ N2 }, c);
	n = onnxb_node(p, "Gemm", "gemm", (const char *[]){ "x", "w", "c",
	    NULL }, "y");
	onnxb_attr_float(n, "beta", 0.0f);
	m = onnxt_load_ok(p);
	assert_true(!gemm_fast() || node_named(m, "gemm")->pack != NULL);
	y = onnxt_run_x(m, in, 2, (int64_t[]){ 2, K1 }, &d);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < N2; j++) {
			double	s = 0;

			for (int k = 0; k < K1; k++)
				s += (double)in[i * K1 + k] * w[k * N2 + j];
			assert_true(fabs(y[i * N2 + j] - s) <= TOL);
		}
	onnx_free(m);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_products),
		cmocka_unit_test(test_beta_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
