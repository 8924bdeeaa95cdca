/* tests/unit/test_onnx_ops.c - each operator through a small graph built
 * with tools/onnxb: shapes inferred at load (dynamic dims as -1) and per
 * request, attribute semantics (Softmax before and after opset 13,
 * Flatten's axis, Reshape's 0 and -1, Gemm's transposes and C), constant
 * folding, and the results against naive references. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/onnx/graph.h"
#include "runtime/onnx/onnx.h"
#include "tests/unit/onnx_testutil.h"
#include "tools/onnxb.h"

#define FLOAT	ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define TOL	1e-5

static float	seq24[24];	/* 0.1 * (i - 12) */

/* A graph x -> op -> y; x has dims xd (ONNXB_DYN for "N"). */
static Onnx__ModelProto *
model1(int64_t opset, const char *op, int nd, const int64_t *xd,
    Onnx__NodeProto **node, const char *extra)
{
	Onnx__ModelProto	*p = onnxb_model(8, opset, "t");
	const char		*in[3] = { "x", extra, NULL };

	onnxb_input(p, "x", FLOAT, nd, xd, "N");
	*node = onnxb_node(p, op, "n", in, "y");
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	return p;
}

static void
assert_meta_out(const struct onnx_model *m, int nd, const int64_t *want)
{
	struct ipc_meta	meta;

	onnx_meta(m, &meta);
	onnxt_assert_shape(&meta.outputs[0], nd, want);
	ipc_meta_release(&meta);
}

static void
assert_close(const float *got, const double *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fabs(got[i] - want[i]) > TOL * (1 + fabs(want[i])))
			fail_msg("element %zu: got %.9g, want %.9g", i,
			    (double)got[i], want[i]);
}

/* --- Softmax --- */

/* Softmax of x viewed as (outer, n, inner) along n. */
static void
softmax_ref(double *y, const float *x, size_t outer, size_t n, size_t inner)
{
	for (size_t o = 0; o < outer; o++)
		for (size_t j = 0; j < inner; j++) {
			double	sum = 0;

			for (size_t i = 0; i < n; i++)
				sum += exp(x[(o * n + i) * inner + j]);
			for (size_t i = 0; i < n; i++)
				y[(o * n + i) * inner + j] =
				    exp(x[(o * n + i) * inner + j]) / sum;
		}
}

static void
softmax_case(int64_t opset, int64_t axis, bool set, size_t outer, size_t n,
    size_t inner)
{
	int64_t			 d[3] = { 2, 3, 4 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	double			 ref[24];
	const float		*y;

	p = model1(opset, "Softmax", 3, d, &node, NULL);
	if (set)
		onnxb_attr_int(node, "axis", axis);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, seq24, 3, d, &od);
	onnxt_assert_shape(&od, 3, d);
	softmax_ref(ref, seq24, outer, n, inner);
	assert_close(y, ref, 24);
	onnx_free(m);
}

static void
test_softmax(void **state)
{
	(void)state;
	/* Opset 13+: one axis; default -1. */
	softmax_case(13, 0, true, 1, 2, 12);
	softmax_case(13, 1, true, 2, 3, 4);
	softmax_case(13, -2, true, 2, 3, 4);
	softmax_case(13, 2, true, 6, 4, 1);
	softmax_case(13, 0, false, 6, 4, 1);
	/* Before 13: coerced to 2-D at axis; default 1. */
	softmax_case(11, 0, true, 1, 24, 1);
	softmax_case(11, 1, true, 2, 12, 1);
	softmax_case(11, 2, true, 6, 4, 1);
	softmax_case(11, -1, true, 6, 4, 1);
	softmax_case(11, 0, false, 2, 12, 1);
}

static void
test_softmax_bad_axis(void **state)
{
	int64_t		 d[2] = { ONNXB_DYN, 4 };
	Onnx__NodeProto	*node;
	Onnx__ModelProto *p;

	(void)state;
	p = model1(13, "Softmax", 2, d, &node, NULL);
	onnxb_attr_int(node, "axis", 2);
	onnxt_load_err(p, "node 'n' (Softmax): axis 2 is out of range for rank 2");
	p = model1(13, "Softmax", 2, d, &node, NULL);
	onnxb_attr_float(node, "axis", 1.0f);
	onnxt_load_err(p, "attribute 'axis' has the wrong type");
}

/* --- Flatten --- */

static void
flatten_case(int64_t axis, int64_t d0, int64_t d1)
{
	int64_t			 d[3] = { 2, 3, 4 }, want[2] = { d0, d1 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	p = model1(13, "Flatten", 3, d, &node, NULL);
	onnxb_attr_int(node, "axis", axis);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, seq24, 3, d, &od);
	onnxt_assert_shape(&od, 2, want);
	assert_memory_equal(y, seq24, sizeof(seq24));
	onnx_free(m);
}

static void
test_flatten(void **state)
{
	int64_t			 d[3] = { ONNXB_DYN, 3, 4 };
	int64_t			 want[2] = { -1, 12 }, run[3] = { 2, 3, 4 };
	int64_t			 got[2] = { 2, 12 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;

	(void)state;
	flatten_case(0, 1, 24);
	flatten_case(1, 2, 12);
	flatten_case(2, 6, 4);
	flatten_case(3, 24, 1);
	flatten_case(-1, 6, 4);
	flatten_case(-3, 1, 24);
	/* Dynamic batch: [-1, 12] at load, concrete per request. */
	m = onnxt_load_ok(model1(13, "Flatten", 3, d, &node, NULL));
	assert_meta_out(m, 2, want);
	onnxt_run_x(m, seq24, 3, run, &od);
	onnxt_assert_shape(&od, 2, got);
	onnx_free(m);
	/* Axis 0 with a dynamic dim: both sides unknown until run. */
	p = model1(13, "Flatten", 3, d, &node, NULL);
	onnxb_attr_int(node, "axis", 2);
	m = onnxt_load_ok(p);
	want[0] = -1;
	want[1] = 4;
	assert_meta_out(m, 2, want);
	onnx_free(m);
	p = model1(13, "Flatten", 3, d, &node, NULL);
	onnxb_attr_int(node, "axis", 4);
	onnxt_load_err(p, "axis 4 is out of range for rank 3");
}

/* --- Reshape --- */

/* x [2,3,4] (or [N,3,4]) reshaped by an INT64 initializer "s". */
static Onnx__ModelProto *
reshape_model(bool dyn, int n, const int64_t *shape, bool constant)
{
	int64_t			 d[3] = { dyn ? ONNXB_DYN : 2, 3, 4 };
	int64_t			 sd = n;
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;

	p = model1(13, "Reshape", 3, d, &node, "s");
	if (constant) {
		Onnx__NodeProto	*c = onnxb_node(p, "Constant", "c", NULL,
				    "s");

		onnxb_attr_value_i64(c, (size_t)n, shape);
		/* The Constant must come first. */
		p->graph->node[1] = p->graph->node[0];
		p->graph->node[0] = c;
	} else
		onnxb_init_i64(p, "s", 1, &sd, shape);
	return p;
}

static void
reshape_case(bool dyn, int n, const int64_t *shape, int wn,
    const int64_t *meta_want, const int64_t *run_want, bool constant)
{
	int64_t			 d[3] = { 2, 3, 4 };
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	m = onnxt_load_ok(reshape_model(dyn, n, shape, constant));
	assert_meta_out(m, wn, meta_want);
	y = onnxt_run_x(m, seq24, 3, d, &od);
	onnxt_assert_shape(&od, wn, run_want);
	assert_memory_equal(y, seq24, sizeof(seq24));
	onnx_free(m);
}

static void
test_reshape(void **state)
{
	(void)state;
	reshape_case(false, 2, (int64_t[]){ 0, -1 }, 2,
	    (int64_t[]){ 2, 12 }, (int64_t[]){ 2, 12 }, false);
	reshape_case(false, 2, (int64_t[]){ -1, 4 }, 2,
	    (int64_t[]){ 6, 4 }, (int64_t[]){ 6, 4 }, false);
	reshape_case(false, 3, (int64_t[]){ 2, -1, 2 }, 3,
	    (int64_t[]){ 2, 6, 2 }, (int64_t[]){ 2, 6, 2 }, true);
	reshape_case(false, 4, (int64_t[]){ 0, 0, 2, 2 }, 4,
	    (int64_t[]){ 2, 3, 2, 2 }, (int64_t[]){ 2, 3, 2, 2 }, false);
	reshape_case(false, 1, (int64_t[]){ 24 }, 1,
	    (int64_t[]){ 24 }, (int64_t[]){ 24 }, false);
	/* Dynamic batch. */
	reshape_case(true, 2, (int64_t[]){ 0, -1 }, 2,
	    (int64_t[]){ -1, 12 }, (int64_t[]){ 2, 12 }, false);
	reshape_case(true, 3, (int64_t[]){ -1, 2, 6 }, 3,
	    (int64_t[]){ -1, 2, 6 }, (int64_t[]){ 2, 2, 6 }, true);
	reshape_case(true, 2, (int64_t[]){ 4, -1 }, 2,
	    (int64_t[]){ 4, -1 }, (int64_t[]){ 4, 6 }, false);
	reshape_case(true, 3, (int64_t[]){ 0, 2, -1 }, 3,
	    (int64_t[]){ -1, 2, 6 }, (int64_t[]){ 2, 2, 6 }, false);
	reshape_case(true, 3, (int64_t[]){ -1, 0, 2 }, 3,
	    (int64_t[]){ -1, 3, 2 }, (int64_t[]){ 4, 3, 2 }, false);
}

static void
test_reshape_bad(void **state)
{
	int64_t			 d[3] = { 2, 3, 4 };
	struct ipc_tensor	 t;
	struct onnx_model	*m;
	char			 err[256];
	float			 x[60] = { 0 };

	(void)state;
	onnxt_load_err(reshape_model(false, 2, (int64_t[]){ -1, -1 }, false),
	    "shape has more than one -1");
	onnxt_load_err(reshape_model(false, 2, (int64_t[]){ 5, 5 }, false),
	    "cannot reshape [2,3,4] to [5,5]");
	onnxt_load_err(reshape_model(false, 2, (int64_t[]){ 5, -1 }, false),
	    "cannot reshape [2,3,4] to [5,-1]");
	onnxt_load_err(reshape_model(false, 4, (int64_t[]){ 0, 0, 0, 0 }, false),
	    "shape[3] is 0 but the input has rank 3");
	onnxt_load_err(reshape_model(false, 2, (int64_t[]){ -7, 2 }, false),
	    "shape[0] is -7");
	/* Fine at load, wrong for this batch: a bad request, not a crash. */
	m = onnxt_load_ok(reshape_model(true, 2, (int64_t[]){ 5, -1 }, false));
	memset(&t, 0, sizeof(t));
	snprintf(t.desc.name, sizeof(t.desc.name), "x");
	t.desc.dtype = DT_FP32;
	t.desc.ndim = 3;
	memcpy(t.desc.dims, d, sizeof(d));
	t.data = (const uint8_t *)x;
	t.nbytes = 24 * 4;
	assert_int_equal(onnx_run(m, &t, 1, err, sizeof(err)), ONNX_EINPUT);
	assert_string_equal(err, "node 'n' (Reshape): cannot reshape "
	    "[2,3,4] to [5,-1]");
	/* The next good request still works. */
	t.desc.dims[0] = 5;
	t.nbytes = sizeof(x);
	assert_int_equal(onnx_run(m, &t, 1, err, sizeof(err)), ONNX_OK);
	onnx_free(m);
}

/* --- MatMul, Gemm, broadcasting ops --- */

static void
matmul_case(int an, const int64_t *ad, int bn, const int64_t *bd, int yn,
    const int64_t *yd, const double *want)
{
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;
	size_t			 ny = 1;

	for (int i = 0; i < yn; i++)
		ny *= (size_t)yd[i];
	p = model1(13, "MatMul", an, ad, &node, "w");
	onnxb_init_f32(p, "w", bn, bd, seq24);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, seq24, an, ad, &od);
	onnxt_assert_shape(&od, yn, yd);
	assert_close(y, want, ny);
	onnx_free(m);
}

static void
test_matmul(void **state)
{
	double	want[24];

	(void)state;
	/* [2,3] x [3,2]: rows of seq24 as matrices. */
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			want[i * 2 + j] = 0;
			for (int k = 0; k < 3; k++)
				want[i * 2 + j] += (double)seq24[i * 3 + k] *
				    seq24[k * 2 + j];
		}
	matmul_case(2, (int64_t[]){ 2, 3 }, 2, (int64_t[]){ 3, 2 }, 2,
	    (int64_t[]){ 2, 2 }, want);
	/* 1-D a: [3] x [3,2] -> [2]. */
	matmul_case(1, (int64_t[]){ 3 }, 2, (int64_t[]){ 3, 2 }, 1,
	    (int64_t[]){ 2 }, want);
	/* 1-D b: [2,3] x [3] -> [2]. */
	for (int i = 0; i < 2; i++) {
		want[i] = 0;
		for (int k = 0; k < 3; k++)
			want[i] += (double)seq24[i * 3 + k] * seq24[k];
	}
	matmul_case(2, (int64_t[]){ 2, 3 }, 1, (int64_t[]){ 3 }, 1,
	    (int64_t[]){ 2 }, want);
	/* Batched against shared weights: [2,2,3] x [3,2]. */
	for (int b = 0; b < 2; b++)
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++) {
				double	s = 0;

				for (int k = 0; k < 3; k++)
					s += (double)seq24[b * 6 + i * 3 + k] *
					    seq24[k * 2 + j];
				want[b * 4 + i * 2 + j] = s;
			}
	matmul_case(3, (int64_t[]){ 2, 2, 3 }, 2, (int64_t[]){ 3, 2 }, 3,
	    (int64_t[]){ 2, 2, 2 }, want);
	/* [1,2,3] x [2,3,2] broadcasts a. */
	for (int b = 0; b < 2; b++)
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++) {
				double	s = 0;

				for (int k = 0; k < 3; k++)
					s += (double)seq24[i * 3 + k] *
					    seq24[b * 6 + k * 2 + j];
				want[b * 4 + i * 2 + j] = s;
			}
	matmul_case(3, (int64_t[]){ 1, 2, 3 }, 3, (int64_t[]){ 2, 3, 2 }, 3,
	    (int64_t[]){ 2, 2, 2 }, want);
}

static void
test_matmul_bad(void **state)
{
	int64_t			 ad[2] = { ONNXB_DYN, 3 }, bd[2] = { 4, 2 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;

	(void)state;
	p = model1(13, "MatMul", 2, ad, &node, "w");
	onnxb_init_f32(p, "w", 2, bd, seq24);
	onnxt_load_err(p, "node 'n' (MatMul): inner dimensions differ: [-1,3] "
	    "times [4,2]");
}

static void
test_gemm(void **state)
{
	int64_t			 ad[2] = { ONNXB_DYN, 3 }, run[2] = { 4, 3 };
	int64_t			 bd[2] = { 2, 3 }, cd[2] = { 4, 1 };
	int64_t			 want[2] = { -1, 2 }, yd[2] = { 4, 2 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;
	const char		*in[4] = { "x", "w", "c", NULL };
	double			 ref[8];

	(void)state;
	/* y = 0.5 * x w^T + 2 * c, c (4,1) broadcast along columns. */
	p = onnxb_model(8, 13, "t");
	onnxb_input(p, "x", FLOAT, 2, ad, "N");
	node = onnxb_node(p, "Gemm", "g", in, "y");
	onnxb_attr_int(node, "transB", 1);
	onnxb_attr_float(node, "alpha", 0.5f);
	onnxb_attr_float(node, "beta", 2.0f);
	onnxb_init_f32(p, "w", 2, bd, seq24 + 3);
	onnxb_init_f32(p, "c", 2, cd, seq24 + 10);
	onnxb_output(p, "y", FLOAT, 2, (int64_t[]){ ONNXB_DYN, 2 }, "N");
	m = onnxt_load_ok(p);
	assert_meta_out(m, 2, want);
	y = onnxt_run_x(m, seq24, 2, run, &od);
	onnxt_assert_shape(&od, 2, yd);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 2; j++) {
			double	s = 0;

			for (int k = 0; k < 3; k++)
				s += (double)seq24[i * 3 + k] *
				    seq24[3 + j * 3 + k];
			ref[i * 2 + j] = 0.5 * s + 2.0 * seq24[10 + i];
		}
	assert_close(y, ref, 8);
	onnx_free(m);

	/* transA, no C. */
	p = onnxb_model(8, 13, "t");
	onnxb_input(p, "x", FLOAT, 2, (int64_t[]){ 3, 4 }, NULL);
	in[2] = NULL;
	node = onnxb_node(p, "Gemm", "g", in, "y");
	onnxb_attr_int(node, "transA", 1);
	onnxb_init_f32(p, "w", 2, (int64_t[]){ 3, 2 }, seq24);
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, seq24, 2, (int64_t[]){ 3, 4 }, &od);
	onnxt_assert_shape(&od, 2, (int64_t[]){ 4, 2 });
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 2; j++) {
			double	s = 0;

			for (int k = 0; k < 3; k++)
				s += (double)seq24[k * 4 + i] *
				    seq24[k * 2 + j];
			ref[i * 2 + j] = s;
		}
	assert_close(y, ref, 8);
	onnx_free(m);

	/* C that does not broadcast. */
	p = onnxb_model(8, 13, "t");
	onnxb_input(p, "x", FLOAT, 2, ad, "N");
	in[2] = "c";
	node = onnxb_node(p, "Gemm", "g", in, "y");
	onnxb_attr_int(node, "transB", 1);
	onnxb_init_f32(p, "w", 2, bd, seq24);
	onnxb_init_f32(p, "c", 1, (int64_t[]){ 3 }, seq24);
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxt_load_err(p, "node 'g' (Gemm): C of shape [3] does not broadcast to "
	    "[-1,2]");
}

static void
binary_case(const char *op, int xn, const int64_t *xd, int wn,
    const int64_t *wd, int yn, const int64_t *yd, const int64_t *run,
    const int64_t *yrun)
{
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;
	size_t			 ny = 1;
	double			 ref[24];

	p = model1(13, op, xn, xd, &node, "w");
	onnxb_init_f32(p, "w", wn, wd, seq24 + 12);
	m = onnxt_load_ok(p);
	assert_meta_out(m, yn, yd);
	y = onnxt_run_x(m, seq24, xn, run, &od);
	onnxt_assert_shape(&od, yn, yrun);
	/* x is [b, 1] or [b, 3]; w is [3] or [1, 3]; y is [b, 3]. */
	for (int64_t i = 0; i < yrun[0]; i++)
		for (int j = 0; j < 3; j++) {
			double	a = seq24[xd[1] == 1 ? i : i * 3 + j];
			double	b = seq24[12 + j];

			if (strcmp(op, "Add") == 0)
				ref[i * 3 + j] = a + b;
			else if (strcmp(op, "Sub") == 0)
				ref[i * 3 + j] = a - b;
			else if (strcmp(op, "Mul") == 0)
				ref[i * 3 + j] = a * b;
			else
				ref[i * 3 + j] = a / b;
		}
	for (int i = 0; i < yn; i++)
		ny *= (size_t)yrun[i];
	assert_close(y, ref, ny);
	onnx_free(m);
}

static void
test_binary(void **state)
{
	static const char	*ops[] = { "Add", "Sub", "Mul", "Div" };
	int64_t			 xd[2] = { ONNXB_DYN, 3 };
	int64_t			 x1[2] = { ONNXB_DYN, 1 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;

	(void)state;
	for (size_t o = 0; o < 4; o++) {
		binary_case(ops[o], 2, xd, 1, (int64_t[]){ 3 }, 2,
		    (int64_t[]){ -1, 3 }, (int64_t[]){ 4, 3 },
		    (int64_t[]){ 4, 3 });
		binary_case(ops[o], 2, x1, 2, (int64_t[]){ 1, 3 }, 2,
		    (int64_t[]){ -1, 3 }, (int64_t[]){ 5, 1 },
		    (int64_t[]){ 5, 3 });
	}
	p = model1(13, "Add", 2, xd, &node, "w");
	onnxb_init_f32(p, "w", 1, (int64_t[]){ 4 }, seq24);
	onnxt_load_err(p, "node 'n' (Add): cannot broadcast [-1,3] with [4]");
}

static void
test_unary(void **state)
{
	static const char	*ops[] = { "Relu", "Sigmoid", "Tanh",
				    "Identity" };
	int64_t			 d[2] = { ONNXB_DYN, 4 }, run[2] = { 6, 4 };
	Onnx__NodeProto		*node;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;
	double			 ref[24];

	(void)state;
	for (size_t o = 0; o < 4; o++) {
		m = onnxt_load_ok(model1(13, ops[o], 2, d, &node, NULL));
		y = onnxt_run_x(m, seq24, 2, run, &od);
		onnxt_assert_shape(&od, 2, run);
		for (int i = 0; i < 24; i++) {
			double	x = seq24[i];

			ref[i] = o == 0 ? (x > 0 ? x : 0) :
			    o == 1 ? 1 / (1 + exp(-x)) : o == 2 ? tanh(x) : x;
		}
		assert_close(y, ref, 24);
		onnx_free(m);
	}
}

/* Nodes whose inputs are all constant are computed at load. */
static void
test_folding(void **state)
{
	int64_t			 d[1] = { 3 }, xd[2] = { ONNXB_DYN, 3 };
	Onnx__ModelProto	*p = onnxb_model(8, 13, "t");
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;
	const char		*in1[3] = { "a", "b", NULL };
	const char		*in2[3] = { "x", "ab", NULL };
	double			 ref[6];

	(void)state;
	onnxb_input(p, "x", FLOAT, 2, xd, "N");
	onnxb_init_f32(p, "a", 1, d, seq24);
	onnxb_init_f32(p, "b", 1, d, seq24 + 3);
	onnxb_node(p, "Mul", "ab", in1, "ab");
	onnxb_node(p, "Add", "y", in2, "y");
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	m = onnxt_load_ok(p);
	assert_true(m->nodes[0].when == ONNX_AT_LOAD);
	assert_false(m->nodes[1].when == ONNX_AT_LOAD);
	y = onnxt_run_x(m, seq24, 2, (int64_t[]){ 2, 3 }, &od);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++)
			ref[i * 3 + j] = (double)seq24[i * 3 + j] +
			    (double)seq24[j] * seq24[3 + j];
	assert_close(y, ref, 6);
	onnx_free(m);
}

/* --- empty tensors --- */

/* Runs m on an empty "x" of dims xd; the run must fail with want. */
static void
run_empty_err(struct onnx_model *m, int nd, const int64_t *xd,
    const char *want)
{
	struct ipc_tensor	t;
	char			err[256] = "";

	memset(&t, 0, sizeof(t));
	snprintf(t.desc.name, sizeof(t.desc.name), "x");
	t.desc.dtype = DT_FP32;
	t.desc.ndim = nd;
	memcpy(t.desc.dims, xd, (size_t)nd * sizeof(*xd));
	assert_int_equal(onnx_run(m, &t, 1, err, sizeof(err)), ONNX_EINPUT);
	if (strstr(err, want) == NULL)
		fail_msg("want an error containing \"%s\", got \"%s\"", want,
		    err);
}

/* A graph input x (dims xd, dynamic ones "N") and output y. */
static Onnx__ModelProto *
model_xy(int nd, const int64_t *xd)
{
	Onnx__ModelProto	*p = onnxb_model(8, 13, "t");

	onnxb_input(p, "x", FLOAT, nd, xd, "N");
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	return p;
}

/* A dimension of 0 goes through: ops with an empty output do not run,
 * the few with an empty input and a non-empty output compute it from
 * nothing (Concat, ReduceSum, MatMul and Gemm with K = 0), the others
 * refuse the request. */
static void
test_empty(void **state)
{
	int64_t			 xd[2] = { ONNXB_DYN, 3 }, e03[2] = { 0, 3 };
	int64_t			 cd[2] = { 2, 3 }, kd[2] = { 2, ONNXB_DYN };
	int64_t			 e20[2] = { 2, 0 }, wd[2] = { 0, 3 };
	int64_t			 bd[1] = { 3 }, one[1] = { 1 }, zero = 0;
	double			 want[9];
	Onnx__ModelProto	*p;
	Onnx__NodeProto		*node;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	(void)state;
	/* Concat of an empty part and c [2,3] is c; Relu of the empty x
	 * does not run. */
	p = model_xy(2, xd);
	onnxb_init_f32(p, "c", 2, cd, seq24);
	onnxb_node(p, "Relu", "r", (const char *[]){ "x", NULL }, "r");
	node = onnxb_node(p, "Concat", "cat", (const char *[]){ "r", "c",
	    NULL }, "y");
	onnxb_attr_int(node, "axis", 0);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, seq24, 2, e03, &od);
	onnxt_assert_shape(&od, 2, cd);
	for (int i = 0; i < 6; i++)
		want[i] = seq24[i];
	assert_close(y, want, 6);
	/* And a batch again after the empty one. */
	y = onnxt_run_x(m, seq24, 2, (int64_t[]){ 1, 3 }, &od);
	onnxt_assert_shape(&od, 2, (int64_t[]){ 3, 3 });
	for (int i = 0; i < 9; i++)
		want[i] = i < 3 ? fmax(seq24[i], 0) : seq24[i - 3];
	assert_close(y, want, 9);
	onnx_free(m);

	/* The sum over an empty axis is 0. */
	p = model_xy(2, xd);
	node = onnxb_node(p, "ReduceSum", "s", (const char *[]){ "x",
	    NULL }, "y");
	onnxb_attr_ints(node, "axes", 1, &zero);
	onnxb_attr_int(node, "keepdims", 0);
	p->opset_import[0]->version = 11;	/* axes as an attribute */
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, seq24, 2, e03, &od);
	onnxt_assert_shape(&od, 1, bd);
	memset(want, 0, sizeof(want));
	assert_close(y, want, 3);
	onnx_free(m);

	/* MatMul with K = 0 and a bias Add folded in: the bias. */
	p = model_xy(2, kd);
	onnxb_init_f32(p, "w", 2, wd, seq24);
	onnxb_init_f32(p, "b", 1, bd, seq24);
	onnxb_node(p, "MatMul", "mm", (const char *[]){ "x", "w", NULL },
	    "xw");
	onnxb_node(p, "Add", "add", (const char *[]){ "xw", "b", NULL }, "y");
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, seq24, 2, e20, &od);
	onnxt_assert_shape(&od, 2, cd);
	for (int i = 0; i < 6; i++)
		want[i] = seq24[i % 3];
	assert_close(y, want, 6);
	onnx_free(m);

	/* Gemm with K = 0: beta * C. */
	p = model_xy(2, kd);
	onnxb_init_f32(p, "w", 2, wd, seq24);
	onnxb_init_f32(p, "b", 1, bd, seq24);
	node = onnxb_node(p, "Gemm", "g", (const char *[]){ "x", "w", "b",
	    NULL }, "y");
	onnxb_attr_float(node, "beta", 0.5f);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, seq24, 2, e20, &od);
	onnxt_assert_shape(&od, 2, cd);
	for (int i = 0; i < 6; i++)
		want[i] = 0.5 * seq24[i % 3];
	assert_close(y, want, 6);
	onnx_free(m);

	/* A pool has no window to average over an empty plane. */
	p = onnxb_model(8, 13, "t");
	onnxb_input(p, "x", FLOAT, 4, (int64_t[]){ 1, 2, ONNXB_UNSET,
	    ONNXB_UNSET }, NULL);
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_node(p, "GlobalAveragePool", "gap", (const char *[]){ "x",
	    NULL }, "y");
	m = onnxt_load_ok(p);
	run_empty_err(m, 4, (int64_t[]){ 1, 2, 0, 2 }, "node 'gap' "
	    "(GlobalAveragePool): input 'x' is empty, which this operator "
	    "does not support");
	onnx_free(m);

	/* Gather from an empty axis has no row to give. */
	p = model_xy(2, xd);
	onnxb_init_i64(p, "i", 1, one, &zero);
	onnxb_node(p, "Gather", "ga", (const char *[]){ "x", "i", NULL },
	    "y");
	m = onnxt_load_ok(p);
	run_empty_err(m, 2, e03, "indices are out of range of an empty "
	    "axis 0");
	onnx_free(m);
}

static int
setup(void **state)
{
	(void)state;
	for (int i = 0; i < 24; i++)
		seq24[i] = 0.1f * (float)(i - 12) + 0.05f;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_softmax),
		cmocka_unit_test(test_softmax_bad_axis),
		cmocka_unit_test(test_flatten),
		cmocka_unit_test(test_reshape),
		cmocka_unit_test(test_reshape_bad),
		cmocka_unit_test(test_matmul),
		cmocka_unit_test(test_matmul_bad),
		cmocka_unit_test(test_gemm),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_unary),
		cmocka_unit_test(test_folding),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
