/* tests/unit/test_onnx_fuse.c - the executor's aliases and fusions
 * (runtime/onnx/exec.c) and the vectorised kernels they call.
 *
 * Each graph is built with tools/onnxb, run through onnx_run() and checked
 * against a double-precision reference; the tests also look into the
 * graph to see that the fusion under test did (or did not) happen, since
 * an unfused graph computes the same numbers.  Graphs are run at two
 * batch sizes so that aliases survive a re-plan. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>

#include "runtime/kernels.h"
#include "runtime/onnx/graph.h"
#include "runtime/onnx/onnx.h"
#include "tests/unit/onnx_testutil.h"
#include "tools/onnxb.h"

#define FLOAT	ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define TOL	1e-4
#define K	6	/* inner width of the products */
#define N	5	/* outer width */
#define MAXB	3	/* largest batch run */

static float	xs[MAXB * 2 * K];	/* inputs, [batch, 2, K] */
static float	w[K * N];		/* [K, N] */
static float	bias[N];

/* A model with input x [batch, 2, K] and the given outputs. */
static Onnx__ModelProto *
model_x(int64_t opset, int nout, const char *const *outs)
{
	Onnx__ModelProto	*p = onnxb_model(8, opset, "t");
	const int64_t		 xd[3] = { ONNXB_DYN, 2, K };

	onnxb_input(p, "x", FLOAT, 3, xd, "batch");
	for (int i = 0; i < nout; i++)
		onnxb_output(p, outs[i], FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_init_f32(p, "w", 2, (int64_t[]){ K, N }, w);
	onnxb_init_f32(p, "b", 1, (int64_t[]){ N }, bias);
	return p;
}

static void
node2(Onnx__ModelProto *p, const char *op, const char *a, const char *b,
    const char *y)
{
	const char	*in[3] = { a, b, NULL };

	onnxb_node(p, op, y, in, y);
}

static void
scalar(Onnx__ModelProto *p, const char *name, float v)
{
	onnxb_init_f32(p, name, 0, NULL, &v);
}

/* Runs m on xs's first batch rows from data (xs, or a copy of them
 * anywhere). */
static void
run_from(struct onnx_model *m, int64_t batch, const void *data)
{
	struct ipc_tensor_desc	od;

	(void)onnxt_run_bytes(m, data, 3, (int64_t[]){ batch, 2, K }, &od);
}

static void
run_batch(struct onnx_model *m, int64_t batch)
{
	run_from(m, batch, xs);
}

static void
assert_out(struct onnx_model *m, size_t i, const double *want, size_t n)
{
	struct ipc_tensor_desc	 d;
	uint64_t		 nb;
	const float		*y = onnx_output(m, i, &d, &nb);

	assert_int_equal(nb, n * sizeof(float));
	for (size_t k = 0; k < n; k++)
		if (fabs(y[k] - want[k]) > TOL + TOL * fabs(want[k]))
			fail_msg("output %zu[%zu] = %.7g, want %.7g", i, k,
			    (double)y[k], want[k]);
}

/* x W for rows r of x, times scale, plus bias if with_bias. */
static void
ref_matmul(double *y, size_t rows, double scale, bool with_bias)
{
	for (size_t r = 0; r < rows; r++)
		for (int j = 0; j < N; j++) {
			double	s = 0;

			for (int k = 0; k < K; k++)
				s += (double)xs[r * K + k] * w[k * N + j];
			y[r * N + j] = s * scale + (with_bias ? bias[j] : 0);
		}
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

/* --- MatMul + Add, MatMul + Mul --- */

static void
test_bias_fused(void **state)
{
	static const char *const	outs[] = { "y", "z" };
	double				want[MAXB * 2 * N];

	(void)state;
	/* y = Add(b, MatMul(x, w)); z = MatMul(x, w) * 0.5 + b, which
	 * takes the scale but not the bias (the Add reads the Mul). */
	for (int order = 0; order < 2; order++) {
		Onnx__ModelProto	*p = model_x(13, 2, outs);
		struct onnx_model	*m;

		node2(p, "MatMul", "x", "w", "mm");
		if (order == 0)
			node2(p, "Add", "mm", "b", "y");
		else
			node2(p, "Add", "b", "mm", "y");
		scalar(p, "half", 0.5f);
		node2(p, "MatMul", "x", "w", "mm2");
		node2(p, "Mul", "half", "mm2", "sc");
		node2(p, "Add", "sc", "b", "z");
		m = onnxt_load_ok(p);
		for (int64_t batch = MAXB; batch >= 1; batch -= 2) {
			run_batch(m, batch);
			ref_matmul(want, (size_t)batch * 2, 1, true);
			assert_out(m, 0, want, (size_t)batch * 2 * N);
			ref_matmul(want, (size_t)batch * 2, 0.5, true);
			assert_out(m, 1, want, (size_t)batch * 2 * N);
		}
		assert_true(node_named(m, "y")->fused);
		assert_true(node_named(m, "mm")->bias >= 0);
		assert_true(node_named(m, "sc")->fused);
		assert_true(node_named(m, "mm2")->scale == 0.5f);
		assert_int_equal(node_named(m, "mm2")->bias, -1);
		assert_false(node_named(m, "z")->fused);
		onnx_free(m);
	}
}

static void
test_bias_not_fused(void **state)
{
	static const char *const	outs[] = { "y", "z" };
	Onnx__ModelProto		*p = model_x(13, 2, outs);
	struct onnx_model		*m;
	double				want[MAXB * 2 * N];

	(void)state;
	/* The product has a second reader, which must see it bare. */
	node2(p, "MatMul", "x", "w", "mm");
	node2(p, "Add", "mm", "b", "y");
	onnxb_node(p, "Neg", "z", (const char *[]){ "mm", NULL }, "z");
	m = onnxt_load_ok(p);
	run_batch(m, 2);
	ref_matmul(want, 4, 1, true);
	assert_out(m, 0, want, 4 * N);
	ref_matmul(want, 4, -1, false);
	assert_out(m, 1, want, 4 * N);
	assert_false(node_named(m, "y")->fused);
	assert_int_equal(node_named(m, "mm")->bias, -1);
	onnx_free(m);
}

/* --- GELU --- */

static void
gelu_case(bool torch)
{
	static const char *const	outs[] = { "y" };
	Onnx__ModelProto		*p = model_x(13, 1, outs);
	struct onnx_model		*m;
	double				want[MAXB * 2 * K];

	scalar(p, "half", 0.5f);
	scalar(p, "one", 1.0f);
	onnxb_node(p, "Relu", "a", (const char *[]){ "x", NULL }, "a");
	node2(p, "Sub", "x", "a", "v");		/* min(x, 0) ... */
	node2(p, "Add", "v", "x", "u");		/* ... plus x */
	if (torch) {
		/* x * (1 + erf(x / sqrt(2))) * 0.5, PyTorch's export */
		scalar(p, "s2", 1.41421356f);
		node2(p, "Div", "u", "s2", "t1");
		onnxb_node(p, "Erf", "t2", (const char *[]){ "t1", NULL },
		    "t2");
		node2(p, "Add", "one", "t2", "t3");
		node2(p, "Mul", "u", "t3", "t4");
		node2(p, "Mul", "t4", "half", "y");
	} else {
		scalar(p, "r2", 0.70710678f);
		node2(p, "Mul", "r2", "u", "t1");
		onnxb_node(p, "Erf", "t2", (const char *[]){ "t1", NULL },
		    "t2");
		node2(p, "Add", "t2", "one", "t3");
		node2(p, "Mul", "u", "half", "t4");
		node2(p, "Mul", "t3", "t4", "y");
	}
	m = onnxt_load_ok(p);
	for (int64_t batch = 1; batch <= MAXB; batch += 2) {
		size_t	n = (size_t)batch * 2 * K;

		run_batch(m, batch);
		for (size_t i = 0; i < n; i++) {
			double	u = (xs[i] > 0 ? 0 : xs[i]) + xs[i];

			want[i] = 0.5 * u * (1 + erf(u / sqrt(2.0)));
		}
		assert_out(m, 0, want, n);
	}
	assert_int_equal(node_named(m, "y")->gelu, node_named(m, "u")->out[0]);
	assert_true(node_named(m, "t2")->fused);
	assert_true(node_named(m, "t3")->fused);
	onnx_free(m);
}

static void
test_gelu(void **state)
{
	(void)state;
	gelu_case(false);
	gelu_case(true);
}

/* --- Transpose into MatMul --- */

static void
transpose(Onnx__ModelProto *p, const char *x, const char *y,
    const int64_t perm[4])
{
	Onnx__NodeProto	*nd = onnxb_node(p, "Transpose", y,
			    (const char *[]){ x, NULL }, y);

	onnxb_attr_ints(nd, "perm", 4, perm);
}

/* Attention's heads: x [B, 3, 4] seen as [B, S=3, H=2, Dh=2];
 *	q = heads(x), k = Transpose(-x) to [B, H, Dh, S], v = heads(2x)
 *	y = Transpose(MatMul(MatMul(q, k), v)) back to [B, S, H, Dh]
 * The MatMuls read q, k and v where x, -x and 2x lie and the last writes
 * y's layout; none of those Transposes runs.  z = MatMul(u, r) with u
 * moving the last dim (not a view with contiguous rows) keeps its
 * Transpose. */
static void
test_transpose_matmul(void **state)
{
	static const int64_t	 heads[4] = { 0, 2, 1, 3 };
	static const int64_t	 keys[4] = { 0, 2, 3, 1 };
	static const int64_t	 swap[4] = { 0, 1, 3, 2 };
	static const int64_t	 split[4] = { -1, 3, 2, 2 };
	static const int64_t	 xd[3] = { ONNXB_DYN, 3, 4 };
	static const char *const outs[] = { "y", "z" };
	Onnx__ModelProto	*p = onnxb_model(8, 13, "t");
	struct onnx_model	*m;
	double			 want[2][MAXB * 12];

	(void)state;
	onnxb_input(p, "x", FLOAT, 3, xd, "batch");
	for (int i = 0; i < 2; i++)
		onnxb_output(p, outs[i], FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_init_i64(p, "split", 1, (int64_t[]){ 4 }, split);
	node2(p, "Reshape", "x", "split", "r");
	onnxb_node(p, "Neg", "nx", (const char *[]){ "x", NULL }, "nx");
	node2(p, "Reshape", "nx", "split", "rn");
	node2(p, "Add", "x", "x", "x2");
	node2(p, "Reshape", "x2", "split", "r2");
	transpose(p, "r", "q", heads);
	transpose(p, "rn", "k", keys);
	transpose(p, "r2", "v", heads);
	node2(p, "MatMul", "q", "k", "s");
	node2(p, "MatMul", "s", "v", "c");
	transpose(p, "c", "y", heads);
	transpose(p, "r", "u", swap);
	node2(p, "MatMul", "u", "r", "z");
	m = onnxt_load_ok(p);
	for (int64_t batch = MAXB; batch >= 1; batch -= 2) {
		struct ipc_tensor_desc	od;

		(void)onnxt_run_bytes(m, xs, 3, (int64_t[]){ batch, 3, 4 },
		    &od);
		for (int64_t b = 0; b < batch; b++) {
			const float	*xb = xs + b * 12;
			double		*yb = want[0] + b * 12;
			double		*zb = want[1] + b * 12;

			for (int h = 0; h < 2; h++)
				for (int i = 0; i < 3; i++)
					for (int d = 0; d < 2; d++) {
						double	c = 0;

						for (int j = 0; j < 3; j++) {
							double	sc = 0;

							for (int e = 0; e < 2;
							    e++)
								sc -= (double)
								    xb[i * 4 +
								    h * 2 + e] *
								    xb[j * 4 +
								    h * 2 + e];
							c += sc * 2 *
							    xb[j * 4 + h * 2 +
							    d];
						}
						yb[i * 4 + h * 2 + d] = c;
					}
			/* z[s][i][j] = sum_k x[s][k*2+i] x[s][k*2+j] */
			for (int s2 = 0; s2 < 3; s2++)
				for (int i = 0; i < 2; i++)
					for (int j = 0; j < 2; j++)
						zb[s2 * 4 + i * 2 + j] =
						    (double)xb[s2 * 4 + i] *
						    xb[s2 * 4 + j] +
						    (double)xb[s2 * 4 + 2 + i] *
						    xb[s2 * 4 + 2 + j];
		}
		assert_out(m, 0, want[0], (size_t)batch * 12);
		assert_out(m, 1, want[1], (size_t)batch * 12);
	}
	assert_true(node_named(m, "q")->fused);
	assert_true(node_named(m, "k")->fused);
	assert_true(node_named(m, "v")->fused);
	assert_true(node_named(m, "y")->fused);
	assert_false(node_named(m, "u")->fused);
	assert_int_equal(node_named(m, "s")->tr[0], node_named(m, "q")->idx);
	assert_int_equal(node_named(m, "s")->tr[1], node_named(m, "k")->idx);
	assert_int_equal(node_named(m, "s")->tr_out, -1);
	assert_int_equal(node_named(m, "c")->tr[0], -1);
	assert_int_equal(node_named(m, "c")->tr[1], node_named(m, "v")->idx);
	assert_int_equal(node_named(m, "c")->tr_out, node_named(m, "y")->idx);
	assert_int_equal(node_named(m, "z")->tr[0], -1);
	onnx_free(m);
}

/* --- aliases --- */

static void
test_reshape_alias(void **state)
{
	static const char *const	outs[] = { "y", "z" };
	Onnx__ModelProto		*p = model_x(13, 2, outs);
	struct onnx_model		*m;
	double				want[2][MAXB * 2 * K];
	const int64_t			shape[2] = { -1, K };

	(void)state;
	/* a = x + x; r = Reshape(a) shares a's memory; y = Relu(r) must
	 * not work in place (a is read again); z = -a reads a after it. */
	onnxb_init_i64(p, "shape", 1, (int64_t[]){ 2 }, shape);
	node2(p, "Add", "x", "x", "a");
	node2(p, "Reshape", "a", "shape", "r");
	onnxb_node(p, "Relu", "y", (const char *[]){ "r", NULL }, "y");
	onnxb_node(p, "Neg", "z", (const char *[]){ "a", NULL }, "z");
	m = onnxt_load_ok(p);
	for (int64_t batch = MAXB; batch >= 1; batch -= 2) {
		size_t	n = (size_t)batch * 2 * K;

		run_batch(m, batch);
		for (size_t i = 0; i < n; i++) {
			want[0][i] = xs[i] > 0 ? 2.0 * xs[i] : 0;
			want[1][i] = -2.0 * xs[i];
		}
		assert_out(m, 0, want[0], n);
		assert_out(m, 1, want[1], n);
	}
	assert_true(node_named(m, "r")->fused);
	assert_int_equal(m->vals[node_named(m, "r")->out[0]].alias,
	    node_named(m, "a")->out[0]);
	assert_int_equal(m->vals[node_named(m, "y")->out[0]].alias, -1);
	onnx_free(m);
}

/* An input nothing aliases is read where the request holds it, when
 * its floats are aligned, and is never written; one a Reshape aliases,
 * one that is a graph output, or one that is not aligned, is copied into
 * the arena first.  Either
 * way the same numbers come out, plan after plan. */
static void
test_input_borrowed(void **state)
{
	static const char *const	outs[] = { "y", "z" };
	static uint8_t			raw[MAXB * 2 * K * 4 + 1];
	static float			keep[MAXB * 2 * K];
	const int64_t			shape[2] = { -1, K };
	struct onnx_model		*m;
	const struct onnx_value		*x;
	double				want[2][MAXB * 2 * K];

	(void)state;
	for (int alias = 0; alias < 2; alias++) {
		Onnx__ModelProto	*p = model_x(13, 2, outs);

		/* y = Relu(x) + x; z = Neg(x), or Neg(Reshape(x)), the
		 * Reshape then sharing x's memory. */
		onnxb_node(p, "Relu", "r", (const char *[]){ "x", NULL },
		    "r");
		node2(p, "Add", "r", "x", "y");
		if (alias) {
			onnxb_init_i64(p, "shape", 1, (int64_t[]){ 2 },
			    shape);
			node2(p, "Reshape", "x", "shape", "s");
			onnxb_node(p, "Neg", "z", (const char *[]){ "s",
			    NULL }, "z");
		} else
			onnxb_node(p, "Neg", "z", (const char *[]){ "x",
			    NULL }, "z");
		m = onnxt_load_ok(p);
		x = &m->vals[m->inputs[0]];
		memcpy(keep, xs, sizeof(keep));
		for (int64_t batch = MAXB; batch >= 1; batch -= 2)
			for (int odd = 0; odd < 2; odd++) {
				size_t		 n = (size_t)batch * 2 * K;
				const uint8_t	*src = odd ? raw + 1 :
						    (const uint8_t *)xs;

				memcpy(raw + 1, xs, sizeof(xs));
				run_from(m, batch, src);
				for (size_t i = 0; i < n; i++) {
					want[0][i] = (xs[i] > 0 ? xs[i] : 0) +
					    xs[i];
					want[1][i] = -(double)xs[i];
				}
				assert_out(m, 0, want[0], n);
				assert_out(m, 1, want[1], n);
				assert_true(x->borrow == !alias);
				assert_true((x->data == src) == (!alias &&
				    !odd));
				assert_memory_equal(xs, keep, sizeof(xs));
				assert_memory_equal(raw + 1, keep, sizeof(xs));
			}
		onnx_free(m);
	}
	/* An input that is also a graph output is read after the run, when
	 * the request's bytes may be gone: copied. */
	{
		static const char *const	xo[] = { "x" };
		Onnx__ModelProto		*p = model_x(13, 1, xo);

		m = onnxt_load_ok(p);
		run_from(m, MAXB, (const uint8_t *)xs);
		x = &m->vals[m->inputs[0]];
		assert_false(x->borrow);
		assert_ptr_not_equal(x->data, xs);
		for (size_t i = 0; i < MAXB * 2 * K; i++)
			want[0][i] = xs[i];
		assert_out(m, 0, want[0], MAXB * 2 * K);
		onnx_free(m);
	}
}

static void
test_relu_in_place(void **state)
{
	static const char *const	outs[] = { "y" };
	Onnx__ModelProto		*p = model_x(13, 1, outs);
	struct onnx_model		*m;
	double				want[MAXB * 2 * K];

	(void)state;
	node2(p, "Mul", "x", "x", "a");
	onnxb_node(p, "Relu", "r", (const char *[]){ "a", NULL }, "r");
	node2(p, "Sub", "r", "x", "y");
	m = onnxt_load_ok(p);
	run_batch(m, MAXB);
	for (size_t i = 0; i < MAXB * 2 * K; i++)
		want[i] = (double)xs[i] * xs[i] - xs[i];
	assert_out(m, 0, want, MAXB * 2 * K);
	assert_int_equal(m->vals[node_named(m, "r")->out[0]].alias,
	    node_named(m, "a")->out[0]);
	onnx_free(m);
}

/* Relu(Gemm(x, W, b)) is fused into the Gemm, whose product writes
 * max(y, 0); a second reader of the product keeps the Relu apart. */
static void
test_gemm_relu(void **state)
{
	static const char *const	outs[] = { "y", "z" };
	static const int		nouts[] = { 1, 2 };
	double				want[MAXB * 2 * N];

	(void)state;
	for (int v = 0; v < 2; v++) {
		Onnx__ModelProto	*p = model_x(13, nouts[v], outs);
		struct onnx_model	*m;
		const int64_t		 flat[2] = { -1, K };

		onnxb_init_i64(p, "shape", 1, (int64_t[]){ 2 }, flat);
		node2(p, "Reshape", "x", "shape", "x2");
		onnxb_node(p, "Gemm", "g", (const char *[]){ "x2", "w", "b",
		    NULL }, "g");
		onnxb_node(p, "Relu", "y", (const char *[]){ "g", NULL }, "y");
		if (v == 1)
			node2(p, "Add", "g", "g", "z");
		m = onnxt_load_ok(p);
		for (int64_t batch = MAXB; batch >= 1; batch -= 2) {
			run_batch(m, batch);
			ref_matmul(want, (size_t)batch * 2, 1.0, true);
			for (size_t i = 0; i < (size_t)batch * 2 * N; i++)
				want[i] = want[i] > 0 ? want[i] : 0;
			assert_out(m, 0, want, (size_t)batch * 2 * N);
		}
		assert_int_equal(node_named(m, "g")->relu, v == 0);
		assert_int_equal(node_named(m, "y")->fused, v == 0);
		onnx_free(m);
	}
}

/* --- kernels --- */

static void
test_kernel_erf_gelu(void **state)
{
	enum { n = 4001 };
	static float	x[n], y[n], g[n];

	(void)state;
	for (int i = 0; i < n; i++)
		x[i] = -8.0f + 16.0f * (float)i / (n - 1);
	x[n / 2 + 1] = 1e-30f;
	kernel_erf(y, x, n);
	kernel_gelu(g, x, n);
	for (int i = 0; i < n; i++) {
		double	e = erf((double)x[i]);
		double	ge = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));

		if (fabs(y[i] - e) > 5e-7 + 1e-6 * fabs(e))
			fail_msg("erf(%.7g) = %.9g, want %.9g", (double)x[i],
			    (double)y[i], e);
		if (fabs(g[i] - ge) > 2e-6 + 1e-6 * fabs(ge))
			fail_msg("gelu(%.7g) = %.9g, want %.9g", (double)x[i],
			    (double)g[i], ge);
	}
	x[0] = NAN;
	kernel_erf(y, x, 1);
	assert_true(isnan(y[0]));
}

static void
test_kernel_softmax_rows(void **state)
{
	static float	x[3 * 70], y[3 * 70];

	(void)state;
	/* Row lengths around the vector width, and large magnitudes. */
	for (size_t n = 1; n <= 70; n++) {
		for (size_t i = 0; i < 3 * n; i++)
			x[i] = (float)((i * 37) % 23) * (i % 2 ? 3.1f : -4.7f);
		kernel_softmax(y, x, 3, n, 1);
		for (size_t o = 0; o < 3; o++) {
			double	max = -INFINITY, sum = 0;

			for (size_t i = 0; i < n; i++)
				max = fmax(max, x[o * n + i]);
			for (size_t i = 0; i < n; i++)
				sum += exp(x[o * n + i] - max);
			for (size_t i = 0; i < n; i++) {
				double	want = exp(x[o * n + i] - max) / sum;

				if (fabs(y[o * n + i] - want) > 1e-6 +
				    1e-5 * want)
					fail_msg("n %zu row %zu [%zu]: %.9g, "
					    "want %.9g", n, o, i,
					    (double)y[o * n + i], want);
			}
		}
	}
}

static void
test_kernel_layernorm(void **state)
{
	enum { outer = 3, inner = 37 };
	float	x[outer * inner], y[outer * inner], sc[inner], bi[inner];
	float	mean[outer], inv[outer];

	(void)state;
	for (int i = 0; i < inner; i++) {
		sc[i] = 0.5f + (float)i / inner;
		bi[i] = (float)(i % 5) - 2.0f;
	}
	for (int i = 0; i < outer * inner; i++)
		x[i] = 1000.0f + (float)((i * 13) % 17) * 0.25f;
	kernel_layernorm(y, x, sc, bi, outer, inner, 1e-5f, mean, inv);
	for (int o = 0; o < outer; o++) {
		double	mu = 0, var = 0;

		for (int i = 0; i < inner; i++)
			mu += x[o * inner + i];
		mu /= inner;
		for (int i = 0; i < inner; i++)
			var += (x[o * inner + i] - mu) * (x[o * inner + i] - mu);
		var /= inner;
		assert_true(fabs(mean[o] - mu) < 1e-3);
		assert_true(fabs(inv[o] - 1 / sqrt(var + 1e-5)) <
		    1e-3 / sqrt(var + 1e-5));
		for (int i = 0; i < inner; i++) {
			double	want = (x[o * inner + i] - mu) /
			    sqrt(var + 1e-5) * sc[i] + bi[i];

			if (fabs(y[o * inner + i] - want) > 1e-3)
				fail_msg("row %d [%d]: %.7g, want %.7g", o, i,
				    (double)y[o * inner + i], want);
		}
	}
}

static void
test_kernel_matmul_threads(void **state)
{
	/* a [3,1,4,5] x b [1,2,5,6]: batch [3,2] with both operands
	 * broadcasting, split over threads one product each. */
	static const int64_t	as[4] = { 3, 1, 4, 5 }, bs[4] = { 1, 2, 5, 6 };
	static const int64_t	ys[4] = { 3, 2, 4, 6 };
	float			a[3 * 4 * 5], b[2 * 5 * 6], y[3 * 2 * 4 * 6];
	int			saved = openblas_get_num_threads();

	(void)state;
	for (size_t i = 0; i < sizeof(a) / sizeof(a[0]); i++)
		a[i] = (float)((i * 7) % 13) - 6.0f;
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
		b[i] = 0.5f * (float)((i * 5) % 11) - 2.0f;
	for (int thr = 1; thr <= 3; thr++) {
		openblas_set_num_threads(thr);
		memset(y, 0, sizeof(y));
		kernel_matmul_fused(y, ys, a, as, b, bs, 4, 2.0f, NULL);
		assert_int_equal(openblas_get_num_threads(), thr);
		for (int i = 0; i < 3; i++)
		for (int j = 0; j < 2; j++)
		for (int r = 0; r < 4; r++)
		for (int c = 0; c < 6; c++) {
			double	want = 0;

			for (int k = 0; k < 5; k++)
				want += (double)a[(i * 4 + r) * 5 + k] *
				    b[(j * 5 + k) * 6 + c];
			want *= 2;
			if (fabs(y[((i * 2 + j) * 4 + r) * 6 + c] - want) >
			    1e-4)
				fail_msg("threads %d: y[%d,%d,%d,%d] = %g, "
				    "want %g", thr, i, j, r, c,
				    (double)y[((i * 2 + j) * 4 + r) * 6 + c],
				    want);
		}
	}
	openblas_set_num_threads(saved);
}

/* kernel_gemm large enough to be cut into chunks of rows (the second
 * with a last, shorter chunk), every transpose, against a naive
 * product. */
static void
test_kernel_gemm_chunks(void **state)
{
	static const size_t	dims[2][3] = { { 1024, 70, 16 }, { 1100, 9, 120 } };
	int			saved = openblas_get_num_threads();

	(void)state;
	openblas_set_num_threads(2);
	for (int d = 0; d < 2; d++)
	for (int flags = 0; flags < 4; flags++) {
		size_t	m = dims[d][0], n = dims[d][1], k = dims[d][2];
		float	*a = malloc(m * k * sizeof(float));
		float	*b = malloc(k * n * sizeof(float));
		float	*c = malloc(n * sizeof(float));
		float	*y = malloc(m * n * sizeof(float));
		bool	 ta = flags & KERNEL_TRANS_A, tb = flags & KERNEL_TRANS_B;

		for (size_t i = 0; i < m * k; i++)
			a[i] = (float)((i * 7) % 19) * 0.1f - 0.9f;
		for (size_t i = 0; i < k * n; i++)
			b[i] = (float)((i * 3) % 17) * 0.1f - 0.8f;
		for (size_t i = 0; i < n; i++)
			c[i] = (float)i * 0.01f;
		kernel_gemm(y, a, b, c, m, n, k, flags, 0.5f, 2.0f, 1, n);
		for (size_t i = 0; i < m; i++)
			for (size_t j = 0; j < n; j++) {
				double	want = 0;

				for (size_t l = 0; l < k; l++)
					want += (double)(ta ? a[l * m + i] :
					    a[i * k + l]) * (tb ? b[j * k + l] :
					    b[l * n + j]);
				want = 0.5 * want + 2.0 * c[j];
				if (fabs(y[i * n + j] - want) > 1e-3)
					fail_msg("%zux%zux%zu flags %d: "
					    "y[%zu,%zu] = %g, want %g", m, n,
					    k, flags, i, j,
					    (double)y[i * n + j], want);
			}
		assert_int_equal(openblas_get_num_threads(), 2);
		free(a);
		free(b);
		free(c);
		free(y);
	}
	openblas_set_num_threads(saved);
}

static int
setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); i++)
		xs[i] = 0.37f * (float)((int)(i * 7 % 11) - 5);
	for (int i = 0; i < K * N; i++)
		w[i] = 0.1f * (float)((i * 5) % 9 - 4);
	for (int i = 0; i < N; i++)
		bias[i] = 0.25f * (float)(i - 2);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_bias_fused),
		cmocka_unit_test(test_bias_not_fused),
		cmocka_unit_test(test_gelu),
		cmocka_unit_test(test_transpose_matmul),
		cmocka_unit_test(test_reshape_alias),
		cmocka_unit_test(test_relu_in_place),
		cmocka_unit_test(test_input_borrowed),
		cmocka_unit_test(test_gemm_relu),
		cmocka_unit_test(test_kernel_erf_gelu),
		cmocka_unit_test(test_kernel_softmax_rows),
		cmocka_unit_test(test_kernel_layernorm),
		cmocka_unit_test(test_kernel_matmul_threads),
		cmocka_unit_test(test_kernel_gemm_chunks),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
