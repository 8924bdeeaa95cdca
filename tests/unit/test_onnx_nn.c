/* tests/unit/test_onnx_nn.c - Conv, the pools, BatchNormalization,
 * LogSoftmax and the recurrent layers through small graphs built with
 * tools/onnxb: values worked out by hand for the window operators, a
 * naive direct convolution for a conv with every attribute at once, and
 * a naive step-by-step recurrence (in double) for RNN, GRU and LSTM in
 * the modes the ONNX node tests leave out (reverse, bidirectional,
 * sequence_lens, initial states, linear_before_reset, clip). */
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

#include "common/xmalloc.h"
#include "runtime/onnx/graph.h"
#include "runtime/onnx/onnx.h"
#include "tests/unit/onnx_testutil.h"
#include "tools/onnxb.h"

#define FLOAT	ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define TOL	1e-5

/* x -> op (with initializer w, b if given) -> y. */
static Onnx__ModelProto *
model1(int64_t opset, const char *op, int nd, const int64_t *xd,
    Onnx__NodeProto **node, const char *w, const char *b)
{
	Onnx__ModelProto	*p = onnxb_model(8, opset, "t");
	const char		*in[4] = { "x", w, b, NULL };

	onnxb_input(p, "x", FLOAT, nd, xd, "N");
	*node = onnxb_node(p, op, "n", in, "y");
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	return p;
}

static void
assert_close(const float *got, const double *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fabs(got[i] - want[i]) > TOL * (1 + fabs(want[i])))
			fail_msg("element %zu: got %.9g, want %.9g", i,
			    (double)got[i], want[i]);
}

/* Deterministic values in [-0.5, 0.5). */
static void
fill(float *v, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		v[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
	}
}

/* x -> op -> y with the window attributes; kern may be NULL. */
static const float *
win_run(const char *op, int nd, const int64_t *xd, const float *x,
    const int64_t *kern, const int64_t *stride, const int64_t *pads,
    const char *auto_pad, struct ipc_tensor_desc *od,
    struct onnx_model **mp)
{
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	int			 sp = nd - 2;

	p = model1(13, op, nd, xd, &node, NULL, NULL);
	if (kern != NULL)
		onnxb_attr_ints(node, "kernel_shape", (size_t)sp, kern);
	if (stride != NULL)
		onnxb_attr_ints(node, "strides", (size_t)sp, stride);
	if (pads != NULL)
		onnxb_attr_ints(node, "pads", 2 * (size_t)sp, pads);
	if (auto_pad != NULL)
		onnxb_attr_str(node, "auto_pad", auto_pad);
	*mp = onnxt_load_ok(p);
	return onnxt_run_x(*mp, x, nd, xd, od);
}

/* --- Conv --- */

/* Conv of x (1, 1, 3, 3) = 1..9 with W = [[1, 0], [0, 1]]: each output
 * sums a pixel and its lower-right neighbour. */
static void
test_conv_2d(void **state)
{
	int64_t			 xd[4] = { 1, 1, 3, 3 }, wd[4] = { 1, 1, 2, 2 };
	int64_t			 bd[1] = { 1 }, yd[4] = { 1, 1, 2, 2 };
	int64_t			 st[2] = { 2, 2 }, pd[4] = { 1, 1, 1, 1 };
	float			 x[9], w[4] = { 1, 0, 0, 1 }, b[1] = { 0.5f };
	const double		 plain[4] = { 6.5, 8.5, 12.5, 14.5 };
	/* Padded by one, stride 2: windows at -1 and 1. */
	const double		 padded[4] = { 1, 3, 7, 14 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	(void)state;
	for (int i = 0; i < 9; i++)
		x[i] = (float)(i + 1);
	p = model1(13, "Conv", 4, xd, &node, "w", "b");
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxb_init_f32(p, "b", 1, bd, b);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, x, 4, xd, &od);
	onnxt_assert_shape(&od, 4, yd);
	assert_close(y, plain, 4);
	onnx_free(m);

	p = model1(13, "Conv", 4, xd, &node, "w", NULL);
	onnxb_attr_ints(node, "strides", 2, st);
	onnxb_attr_ints(node, "pads", 4, pd);
	onnxb_init_f32(p, "w", 4, wd, w);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, x, 4, xd, &od);
	onnxt_assert_shape(&od, 4, yd);
	assert_close(y, padded, 4);
	onnx_free(m);
}

/* 1-D: dilation, auto_pad SAME_UPPER and SAME_LOWER. */
static void
test_conv_1d(void **state)
{
	int64_t			 xd[3] = { 1, 1, 5 }, wd[3] = { 1, 1, 2 };
	int64_t			 w3d[3] = { 1, 1, 3 }, x4d[3] = { 1, 1, 4 };
	int64_t			 dil[1] = { 2 }, st[1] = { 2 };
	float			 x[5] = { 1, 2, 3, 4, 5 }, ones[3] = { 1, 1, 1 };
	const double		 dilated[3] = { 4, 6, 8 };
	/* 4 inputs, stride 2, kernel 3: 2 outputs and one pad, after
	 * (SAME_UPPER) or before (SAME_LOWER). */
	const double		 upper[2] = { 6, 7 }, lower[2] = { 3, 9 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	(void)state;
	p = model1(13, "Conv", 3, xd, &node, "w", NULL);
	onnxb_attr_ints(node, "dilations", 1, dil);
	onnxb_init_f32(p, "w", 3, wd, ones);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, x, 3, xd, &od);
	assert_int_equal(od.dims[2], 3);
	assert_close(y, dilated, 3);
	onnx_free(m);

	for (int lo = 0; lo < 2; lo++) {
		p = model1(13, "Conv", 3, x4d, &node, "w", NULL);
		onnxb_attr_ints(node, "strides", 1, st);
		onnxb_attr_str(node, "auto_pad", lo ? "SAME_LOWER" :
		    "SAME_UPPER");
		onnxb_init_f32(p, "w", 3, w3d, ones);
		m = onnxt_load_ok(p);
		y = onnxt_run_x(m, x, 3, x4d, &od);
		assert_int_equal(od.dims[2], 2);
		assert_close(y, lo ? lower : upper, 2);
		onnx_free(m);
	}
}

/* Groups, strides, asymmetric pads and dilations at once, against a
 * direct convolution; the batch is dynamic and grows between runs. */
static void
test_conv_general(void **state)
{
	enum { N = 2, C = 4, H = 5, W = 6, M = 6, G = 2, KH = 3, KW = 2 };
	int64_t			 xd[4] = { ONNXB_DYN, C, H, W };
	int64_t			 wd[4] = { M, C / G, KH, KW }, bd[1] = { M };
	int64_t			 st[2] = { 2, 1 }, dil[2] = { 1, 2 };
	int64_t			 pd[4] = { 1, 0, 0, 1 };
	/* (5 + 1 - 3) / 2 + 1 = 2 rows; (6 + 1 - 3) / 1 + 1 = 5 cols. */
	enum { OH = 2, OW = 5 };
	float			 x[N * C * H * W], w[M * C / G * KH * KW];
	float			 b[M];
	double			 ref[N * M * OH * OW];
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	(void)state;
	fill(x, sizeof(x) / sizeof(x[0]), 1);
	fill(w, sizeof(w) / sizeof(w[0]), 2);
	fill(b, M, 3);
	for (int n = 0; n < N; n++)
	for (int o = 0; o < M; o++)
	for (int i = 0; i < OH; i++)
	for (int j = 0; j < OW; j++) {
		int	g = o / (M / G);
		double	s = b[o];

		for (int c = 0; c < C / G; c++)
		for (int ki = 0; ki < KH; ki++)
		for (int kj = 0; kj < KW; kj++) {
			int	r = i * 2 - 1 + ki, q = j - 0 + kj * 2;

			if (r < 0 || r >= H || q < 0 || q >= W)
				continue;
			s += (double)w[((o * (C / G) + c) * KH + ki) * KW +
			    kj] * x[((n * C + g * (C / G) + c) * H + r) * W +
			    q];
		}
		ref[((n * M + o) * OH + i) * OW + j] = s;
	}
	p = model1(13, "Conv", 4, xd, &node, "w", "b");
	onnxb_attr_int(node, "group", G);
	onnxb_attr_ints(node, "strides", 2, st);
	onnxb_attr_ints(node, "dilations", 2, dil);
	onnxb_attr_ints(node, "pads", 4, pd);
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxb_init_f32(p, "b", 1, bd, b);
	m = onnxt_load_ok(p);
	/* The im2col buffer is a planned scratch value. */
	assert_true(m->nodes[0].scratch >= 0);
	for (int n = 1; n <= N; n++) {
		xd[0] = n;
		y = onnxt_run_x(m, x, 4, xd, &od);
		onnxt_assert_shape(&od, 4, (int64_t[]){ n, M, OH, OW });
		assert_close(y, ref, (size_t)n * M * OH * OW);
	}
	onnx_free(m);
}

/* Images too large for one task of the wide path: an image takes 11 *
 * 112 * 114 floats of unfolding and product, so it goes in blocks of 52
 * output rows, the last one short.  Checked against a direct
 * convolution, then at batch 1. */
static void
test_conv_chunks(void **state)
{
	enum { N = 3, S = 112, M = 2 };
	static float		 x[N * S * S];
	static double		 ref[N * M * S * S];
	int64_t			 xd[4] = { ONNXB_DYN, 1, S, S };
	int64_t			 wd[4] = { M, 1, 3, 3 }, bd[1] = { M };
	int64_t			 pd[4] = { 1, 1, 1, 1 };
	float			 w[M * 9], b[M];
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	(void)state;
	fill(x, sizeof(x) / sizeof(x[0]), 4);
	fill(w, M * 9, 5);
	fill(b, M, 6);
	for (int n = 0; n < N; n++)
	for (int o = 0; o < M; o++)
	for (int i = 0; i < S; i++)
	for (int j = 0; j < S; j++) {
		double	s = b[o];

		for (int ki = 0; ki < 3; ki++)
		for (int kj = 0; kj < 3; kj++) {
			int	r = i - 1 + ki, q = j - 1 + kj;

			if (r >= 0 && r < S && q >= 0 && q < S)
				s += (double)w[o * 9 + ki * 3 + kj] *
				    x[(n * S + r) * S + q];
		}
		ref[((n * M + o) * S + i) * S + j] = s;
	}
	p = model1(13, "Conv", 4, xd, &node, "w", "b");
	onnxb_attr_ints(node, "pads", 4, pd);
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxb_init_f32(p, "b", 1, bd, b);
	m = onnxt_load_ok(p);
	xd[0] = N;
	y = onnxt_run_x(m, x, 4, xd, &od);
	onnxt_assert_shape(&od, 4, (int64_t[]){ N, M, S, S });
	assert_close(y, ref, (size_t)N * M * S * S);
	/* The wide path: (threads, 1, 1, floats per thread). */
	assert_int_equal(m->vals[m->nodes[0].scratch].ndim, 4);
	xd[0] = 1;
	y = onnxt_run_x(m, x + S * S, 4, xd, &od);
	onnxt_assert_shape(&od, 4, (int64_t[]){ 1, M, S, S });
	assert_close(y, ref + M * S * S, (size_t)M * S * S);
	onnx_free(m);
}

/* Conv (3x3, pads 1) then Relu (if relu), which the Conv does, then a
 * MaxPool of kp x kp with stride sp (none if kp is 0), which the Conv
 * also does:
 * while copying out its product for 2x2 windows of stride 2, from its
 * full output for others.  N images of S x S over 2 threads, against a
 * direct convolution. */
static void
conv_relu_case(int N, int S, int kp, int sp, bool relu)
{
	enum { C = 3, M = 8 };
	int64_t			 xd[4] = { ONNXB_DYN, C, S, S };
	int64_t			 wd[4] = { M, C, 3, 3 }, bd[1] = { M };
	int64_t			 pd[4] = { 1, 1, 1, 1 };
	int64_t			 kd[2] = { kp, kp }, sd[2] = { sp, sp };
	int			 P = kp ? (S - kp) / sp + 1 : S;
	size_t			 nx = (size_t)N * C * S * S;
	size_t			 ny = (size_t)N * M * S * S;
	float			*x = xcalloc(nx, sizeof(*x));
	double			*ref = xcalloc(ny, sizeof(*ref));
	double			*pool = xcalloc((size_t)N * M * P * P,
				    sizeof(*pool));
	float			 w[M * C * 9], b[M];
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	fill(x, nx, 7);
	fill(w, M * C * 9, 8);
	fill(b, M, 9);
	for (int n = 0; n < N; n++)
	for (int o = 0; o < M; o++)
	for (int i = 0; i < S; i++)
	for (int j = 0; j < S; j++) {
		double	v = b[o];

		for (int c = 0; c < C; c++)
		for (int ki = 0; ki < 3; ki++)
		for (int kj = 0; kj < 3; kj++) {
			int	r = i - 1 + ki, q = j - 1 + kj;

			if (r >= 0 && r < S && q >= 0 && q < S)
				v += (double)w[((o * C + c) * 3 + ki) * 3 +
				    kj] * x[((n * C + c) * S + r) * S + q];
		}
		ref[((n * M + o) * S + i) * S + j] = v > 0 || !relu ? v : 0;
	}
	for (int n = 0; kp && n < N * M; n++)
	for (int i = 0; i < P; i++)
	for (int j = 0; j < P; j++) {
		double	v = -INFINITY;

		for (int ki = 0; ki < kp; ki++)
		for (int kj = 0; kj < kp; kj++)
			v = fmax(v, ref[(n * S + i * sp + ki) * S + j * sp +
			    kj]);
		pool[(n * P + i) * P + j] = v;
	}
	p = onnxb_model(8, 13, "t");
	onnxb_input(p, "x", FLOAT, 4, xd, "N");
	node = onnxb_node(p, "Conv", "conv", (const char *[]){ "x", "w", "b",
	    NULL }, "c");
	onnxb_attr_ints(node, "pads", 4, pd);
	if (relu)
		onnxb_node(p, "Relu", "relu", (const char *[]){ "c", NULL },
		    kp ? "r" : "y");
	if (kp) {
		node = onnxb_node(p, "MaxPool", "pool", (const char *[]){
		    relu ? "r" : "c", NULL }, "y");
		onnxb_attr_ints(node, "kernel_shape", 2, kd);
		onnxb_attr_ints(node, "strides", 2, sd);
	}
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxb_init_f32(p, "b", 1, bd, b);
	m = onnxt_load_ok(p);
	xd[0] = N;
	y = onnxt_run_x(m, x, 4, xd, &od);
	onnxt_assert_shape(&od, 4, (int64_t[]){ N, M, P, P });
	assert_true(m->nodes[0].relu == relu);
	if (relu)
		assert_true(m->nodes[1].fused);
	if (kp) {
		assert_int_equal(m->nodes[0].pool, relu ? 2 : 1);
		assert_true(m->nodes[relu ? 2 : 1].fused);
	}
	assert_int_equal(m->vals[m->nodes[0].scratch].ndim, 4);
	assert_int_equal(m->vals[m->nodes[0].scratch].shape[0], 2);
	assert_close(y, kp ? pool : ref, (size_t)N * M * P * P);
	onnx_free(m);
	free(x);
	free(ref);
	free(pool);
}

/* Batches of several images per task, one image cut into row blocks for
 * the two threads (an odd number of rows in a block for the Conv alone,
 * even with a 2x2 pool), odd sizes whose last row no window takes, rows
 * copied out wider than the output. */
static void
test_conv_relu_threads(void **state)
{
	int	saved = openblas_get_num_threads();

	(void)state;
	openblas_set_num_threads(2);
	conv_relu_case(16, 12, 0, 0, true);
	conv_relu_case(7, 5, 0, 0, true);
	conv_relu_case(1, 56, 0, 0, true);
	conv_relu_case(1, 57, 0, 0, true);
	conv_relu_case(16, 12, 2, 2, true);
	conv_relu_case(5, 13, 2, 2, true);
	conv_relu_case(1, 57, 2, 2, true);
	conv_relu_case(3, 9, 3, 1, true);
	conv_relu_case(4, 10, 2, 2, false);
	/* Rows of 14 (7 pooled), 16 wide: whole vectors into the next. */
	conv_relu_case(9, 14, 0, 0, true);
	conv_relu_case(9, 14, 2, 2, true);
	conv_relu_case(1, 14, 2, 2, false);
	conv_relu_case(2, 7, 3, 2, false);
	openblas_set_num_threads(saved);
}

/* A node that runs between the Conv and its MaxPool keeps them apart:
 * the MaxPool's output may take memory that node still reads. */
static void
test_conv_pool_apart(void **state)
{
	int64_t			 xd[4] = { 1, 1, 4, 4 }, wd[4] = { 1, 1, 1, 1 };
	int64_t			 kd[2] = { 2, 2 }, pd[4] = { 1, 1, 1, 1 };
	float			 x[16], w[1] = { 2 };
	double			 want[9];
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	(void)state;
	fill(x, 16, 12);
	p = onnxb_model(8, 13, "t");
	onnxb_input(p, "x", FLOAT, 4, xd, "N");
	node = onnxb_node(p, "Conv", "conv", (const char *[]){ "x", "w",
	    NULL }, "c");
	onnxb_attr_ints(node, "pads", 4, pd);
	onnxb_node(p, "Relu", "relu", (const char *[]){ "c", NULL }, "r");
	onnxb_node(p, "Neg", "neg", (const char *[]){ "x", NULL }, "s");
	node = onnxb_node(p, "MaxPool", "pool", (const char *[]){ "r",
	    NULL }, "y");
	onnxb_attr_ints(node, "kernel_shape", 2, kd);
	onnxb_attr_ints(node, "strides", 2, kd);
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_output(p, "s", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_init_f32(p, "w", 4, wd, w);
	m = onnxt_load_ok(p);
	y = onnxt_run_x(m, x, 4, xd, &od);
	onnxt_assert_shape(&od, 4, (int64_t[]){ 1, 1, 3, 3 });
	/* The Conv's output is 2 x with a ring of zeros, 6 x 6. */
	for (int i = 0; i < 3; i++)
	for (int j = 0; j < 3; j++) {
		double	v = 0;

		for (int r = 2 * i; r < 2 * i + 2; r++)
		for (int q = 2 * j; q < 2 * j + 2; q++)
			if (r >= 1 && r <= 4 && q >= 1 && q <= 4)
				v = fmax(v, 2.0 * x[(r - 1) * 4 + q - 1]);
		want[i * 3 + j] = v;
	}
	assert_close(y, want, 9);
	assert_true(m->nodes[0].relu);
	assert_int_equal(m->nodes[0].pool, -1);
	assert_false(m->nodes[3].fused);
	onnx_free(m);
}

/* A grouped 1x1 conv runs straight on the input: no unfolding. */
static void
test_conv_pointwise(void **state)
{
	int64_t			 xd[4] = { 1, 2, 2, 2 }, wd[4] = { 2, 1, 1, 1 };
	float			 x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	float			 w[2] = { 2, -1 };
	const double		 want[8] = { 2, 4, 6, 8, -5, -6, -7, -8 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;

	(void)state;
	p = model1(13, "Conv", 4, xd, &node, "w", NULL);
	onnxb_attr_int(node, "group", 2);
	onnxb_init_f32(p, "w", 4, wd, w);
	m = onnxt_load_ok(p);
	assert_int_equal(m->vals[m->nodes[0].scratch].count, 1);
	assert_close(onnxt_run_x(m, x, 4, xd, &od), want, 8);
	onnx_free(m);
}

static void
test_conv_bad(void **state)
{
	int64_t			 xd[4] = { 1, 3, 4, 4 }, wd[4] = { 2, 2, 3, 3 };
	int64_t			 k5[2] = { 5, 5 }, big[4] = { 1, 9, 4, 4 };
	float			 w[36] = { 0 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;

	(void)state;
	p = model1(13, "Conv", 4, xd, &node, "w", NULL);
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxt_load_err(p, "X has 3 channels, W takes 1 groups of 2");
	p = model1(13, "Conv", 4, big, &node, "w", NULL);
	onnxb_attr_ints(node, "kernel_shape", 2, k5);
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxt_load_err(p, "kernel_shape[0] is 5 but W has 3");
	/* A kernel larger than the input. */
	p = model1(13, "Conv", 4, (int64_t[]){ 1, 2, 2, 2 }, &node, "w",
	    NULL);
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxt_load_err(p, "larger than the padded input");
	p = model1(13, "Conv", 4, xd, &node, "w", NULL);
	onnxb_attr_str(node, "auto_pad", "SOMETIMES");
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxt_load_err(p, "auto_pad 'SOMETIMES' is not supported");
	p = model1(13, "Conv", 4, xd, &node, "w", NULL);
	onnxb_attr_ints(node, "pads", 4, (int64_t[]){ 0, 0, -1, 0 });
	onnxb_init_f32(p, "w", 4, wd, w);
	onnxt_load_err(p, "pads[2] is -1");
}

/* --- pools --- */

static void
test_maxpool(void **state)
{
	int64_t			 xd[4] = { 1, 1, 4, 4 }, k2[2] = { 2, 2 };
	int64_t			 k3[2] = { 3, 3 }, s2[2] = { 2, 2 };
	float			 x[16];
	const double		 want[4] = { 6, 8, 14, 16 };
	/* ceil_mode: windows at 0 and 2, the second cut by the edge. */
	const double		 ceil[4] = { 11, 12, 15, 16 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const int64_t		*ix;
	uint64_t		 nb;

	(void)state;
	for (int i = 0; i < 16; i++)
		x[i] = (float)(i + 1);
	assert_close(win_run("MaxPool", 4, xd, x, k2, s2, NULL, NULL, &od,
	    &m), want, 4);
	onnx_free(m);

	/* The Indices output: flat positions of the maxima. */
	p = model1(13, "MaxPool", 4, xd, &node, NULL, NULL);
	node->output = xreallocarray(node->output, 2,
	    sizeof(*node->output));
	node->output[node->n_output++] = xstrdup("ix");
	onnxb_output(p, "ix", ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
	    ONNXB_NOSHAPE, NULL, NULL);
	onnxb_attr_ints(node, "kernel_shape", 2, k2);
	onnxb_attr_ints(node, "strides", 2, s2);
	m = onnxt_load_ok(p);
	assert_close(onnxt_run_x(m, x, 4, xd, &od), want, 4);
	ix = onnx_output(m, 1, &od, &nb);
	assert_int_equal(od.dtype, DT_INT64);
	assert_int_equal(ix[0], 5);
	assert_int_equal(ix[1], 7);
	assert_int_equal(ix[2], 13);
	assert_int_equal(ix[3], 15);
	onnx_free(m);

	p = model1(13, "MaxPool", 4, xd, &node, NULL, NULL);
	onnxb_attr_ints(node, "kernel_shape", 2, k3);
	onnxb_attr_ints(node, "strides", 2, s2);
	onnxb_attr_int(node, "ceil_mode", 1);
	m = onnxt_load_ok(p);
	assert_close(onnxt_run_x(m, x, 4, xd, &od), ceil, 4);
	onnxt_assert_shape(&od, 4, (int64_t[]){ 1, 1, 2, 2 });
	onnx_free(m);

	p = model1(13, "MaxPool", 4, xd, &node, NULL, NULL);
	onnxt_load_err(p, "kernel_shape is required");
}

/* A MaxPool large enough to be cut into parts for 2 threads: each part
 * pools its planes, padded windows included. */
static void
test_maxpool_threads(void **state)
{
	enum { N = 2, C = 8, S = 64 };
	static float		 x[N * C * S * S];
	static double		 want[N * C * S * S];
	int64_t			 xd[4] = { N, C, S, S }, kd[2] = { 3, 3 };
	int64_t			 pd[4] = { 1, 1, 1, 1 };
	int			 saved = openblas_get_num_threads();
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;
	const float		*y;

	(void)state;
	fill(x, sizeof(x) / sizeof(x[0]), 11);
	for (int c = 0; c < N * C; c++)
	for (int i = 0; i < S; i++)
	for (int j = 0; j < S; j++) {
		double	v = -INFINITY;

		for (int r = i - 1; r <= i + 1; r++)
		for (int q = j - 1; q <= j + 1; q++)
			if (r >= 0 && r < S && q >= 0 && q < S)
				v = fmax(v, x[(c * S + r) * S + q]);
		want[(c * S + i) * S + j] = v;
	}
	openblas_set_num_threads(2);
	y = win_run("MaxPool", 4, xd, x, kd, NULL, pd, NULL, &od, &m);
	onnxt_assert_shape(&od, 4, xd);
	assert_close(y, want, (size_t)N * C * S * S);
	onnx_free(m);
	openblas_set_num_threads(saved);
}

static void
test_avgpool(void **state)
{
	int64_t			 xd[4] = { 1, 1, 4, 4 }, k3[2] = { 3, 3 };
	int64_t			 s2[2] = { 2, 2 }, pd[4] = { 1, 1, 1, 1 };
	float			 x[16];
	/* Windows at -1 and 1 cover 4, 6, 6 and 9 pixels summing to 14,
	 * 30, 57 and 99. */
	const double		 valid[4] = { 14 / 4.0, 30 / 6.0, 57 / 6.0,
				    99 / 9.0 };
	const double		 all[4] = { 14 / 9.0, 30 / 9.0, 57 / 9.0,
				    99 / 9.0 };
	Onnx__NodeProto		*node;
	Onnx__ModelProto	*p;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;

	(void)state;
	for (int i = 0; i < 16; i++)
		x[i] = (float)(i + 1);
	assert_close(win_run("AveragePool", 4, xd, x, k3, s2, pd, NULL, &od,
	    &m), valid, 4);
	onnx_free(m);
	p = model1(13, "AveragePool", 4, xd, &node, NULL, NULL);
	onnxb_attr_ints(node, "kernel_shape", 2, k3);
	onnxb_attr_ints(node, "strides", 2, s2);
	onnxb_attr_ints(node, "pads", 4, pd);
	onnxb_attr_int(node, "count_include_pad", 1);
	m = onnxt_load_ok(p);
	assert_close(onnxt_run_x(m, x, 4, xd, &od), all, 4);
	onnx_free(m);
}

static void
test_global_pools(void **state)
{
	int64_t			 xd[4] = { 1, 2, 2, 2 };
	float			 x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	const double		 avg[2] = { 2.5, 6.5 }, max[2] = { 4, 8 };
	Onnx__NodeProto		*node;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;

	(void)state;
	m = onnxt_load_ok(model1(13, "GlobalAveragePool", 4, xd, &node, NULL,
	    NULL));
	assert_close(onnxt_run_x(m, x, 4, xd, &od), avg, 2);
	onnxt_assert_shape(&od, 4, (int64_t[]){ 1, 2, 1, 1 });
	onnx_free(m);
	m = onnxt_load_ok(model1(13, "GlobalMaxPool", 4, xd, &node, NULL, NULL));
	assert_close(onnxt_run_x(m, x, 4, xd, &od), max, 2);
	onnx_free(m);
}

/* --- BatchNormalization, LogSoftmax --- */

/* Gives node the training outputs running_mean and running_var, as graph
 * outputs. */
static void
bn_train_outputs(Onnx__ModelProto *p, Onnx__NodeProto *node)
{
	node->output = xreallocarray(node->output, 3, sizeof(char *));
	node->output[1] = xstrdup("rm");
	node->output[2] = xstrdup("rv");
	node->n_output = 3;
	onnxb_output(p, "rm", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_output(p, "rv", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
}

static void
test_batchnorm(void **state)
{
	int64_t			 xd[4] = { 1, 2, 1, 2 }, cd[1] = { 2 };
	float			 x[4] = { 1, 2, 3, 4 };
	float			 sc[2] = { 2, 1 }, bi[2] = { 0, 1 };
	float			 mean[2] = { 1, 2 }, var[2] = { 4, 1 };
	/* (x - mean) / sqrt(var) * scale + B, epsilon 0. */
	const double		 want[4] = { 0, 1, 2, 3 };
	/* Training: the batch's statistics, channel 0 {1, 2} (mean 1.5,
	 * variance 0.25) and channel 1 {3, 4} (3.5, 0.25); the running ones
	 * input * 0.9 + batch * 0.1. */
	const double		 want_tr[4] = { -2, 2, 0, 2 };
	const double		 rmean[2] = { 1.05, 2.15 };
	const double		 rvar[2] = { 3.625, 0.925 };
	const char		*in[6] = { "x", "s", "b", "m", "v", NULL };
	Onnx__ModelProto	*p;
	Onnx__NodeProto		*node;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;

	(void)state;
	for (int train = 0; train < 2; train++) {
		p = onnxb_model(8, 15, "t");
		onnxb_input(p, "x", FLOAT, 4, xd, "N");
		node = onnxb_node(p, "BatchNormalization", "n", in, "y");
		onnxb_attr_float(node, "epsilon", 0.0f);
		if (train)
			onnxb_attr_int(node, "training_mode", 1);
		onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
		onnxb_init_f32(p, "s", 1, cd, sc);
		onnxb_init_f32(p, "b", 1, cd, bi);
		onnxb_init_f32(p, "m", 1, cd, mean);
		onnxb_init_f32(p, "v", 1, cd, var);
		if (train) {
			bn_train_outputs(p, node);
			m = onnxt_load_ok(p);
			assert_close(onnxt_run_x(m, x, 4, xd, &od), want_tr,
			    4);
			for (int o = 1; o < 3; o++) {
				uint64_t	nb;

				assert_close(onnx_output(m, (size_t)o, &od,
				    &nb), o == 1 ? rmean : rvar, 2);
				onnxt_assert_shape(&od, 1, cd);
			}
			onnx_free(m);
			continue;
		}
		m = onnxt_load_ok(p);
		assert_close(onnxt_run_x(m, x, 4, xd, &od), want, 4);
		onnx_free(m);
	}
}

static void
test_logsoftmax(void **state)
{
	int64_t			 xd[2] = { 2, 3 };
	float			 x[6] = { 1, 2, 3, 1000, 1000, 1000 };
	/* log(e + e^2 + e^3) = 3.40760596; equal inputs give -log 3. */
	const double		 want[6] = { -2.40760596, -1.40760596,
				    -0.40760596, -1.09861229, -1.09861229,
				    -1.09861229 };
	Onnx__NodeProto		*node;
	struct onnx_model	*m;
	struct ipc_tensor_desc	 od;

	(void)state;
	m = onnxt_load_ok(model1(13, "LogSoftmax", 2, xd, &node, NULL, NULL));
	assert_close(onnxt_run_x(m, x, 2, xd, &od), want, 6);
	onnx_free(m);
}

/* --- RNN, GRU, LSTM --- */

enum { SEQ = 3, BATCH = 2, IN = 3, HID = 2 };

struct rnn_case {
	const char	*op;
	const char	*direction;
	int		 layout;
	int		 lbr;		/* GRU linear_before_reset */
	float		 clip;		/* 0: none */
	bool		 seq_lens, init, peep;
};

static double
sig(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

static double
clipd(const struct rnn_case *c, double x)
{
	if (c->clip == 0.0f)
		return x;
	return x < -c->clip ? -c->clip : x > c->clip ? c->clip : x;
}

/* The recurrence of one direction, one batch entry at a time, straight
 * from the ONNX operator definitions. */
static void
rnn_ref(const struct rnn_case *c, int G, int dirs, const float *x,
    const float *w, const float *r, const float *bias, const float *p,
    const int64_t *lens, const float *h0, const float *c0, double *y,
    double *yh, double *yc)
{
	memset(y, 0, SEQ * dirs * BATCH * HID * sizeof(*y));
	for (int d = 0; d < dirs; d++)
	for (int b = 0; b < BATCH; b++) {
		const float	*W = w + d * G * HID * IN;
		const float	*R = r + d * G * HID * HID;
		const float	*Wb = bias + d * 2 * G * HID;
		const float	*Rb = Wb + G * HID;
		const float	*P = p + d * 3 * HID;
		bool		 rev = strcmp(c->direction, "reverse") == 0 ||
				    d == 1;
		int		 len = c->seq_lens ? (int)lens[b] : SEQ;
		int		 so = c->layout ? (b * dirs + d) * HID :
				    (d * BATCH + b) * HID;
		double		 h[HID], cs[HID], a[4 * HID], nh[HID];

		for (int k = 0; k < HID; k++) {
			h[k] = c->init ? h0[so + k] : 0;
			cs[k] = c->init ? c0[so + k] : 0;
		}
		for (int s = 0; s < len; s++) {
			int		 t = rev ? len - 1 - s : s;
			const float	*xt = x + (c->layout ? b * SEQ + t :
					    t * BATCH + b) * IN;

			/* a = x W^T + Wb, and + h R^T + Rb except for the
			 * GRU's h gate, done below. */
			for (int j = 0; j < G * HID; j++) {
				a[j] = Wb[j];
				for (int i = 0; i < IN; i++)
					a[j] += (double)W[j * IN + i] * xt[i];
				if (G == 3 && j >= 2 * HID)
					continue;
				a[j] += Rb[j];
				for (int l = 0; l < HID; l++)
					a[j] += (double)R[j * HID + l] * h[l];
			}
			for (int k = 0; k < HID; k++) {
				if (G == 1) {
					nh[k] = tanh(clipd(c, a[k]));
				} else if (G == 3) {
					double	z = sig(clipd(c, a[k]));
					double	rr = sig(clipd(c, a[HID + k]));
					double	rh = Rb[2 * HID + k], hh;

					/* (r . h) R^T, or r . (h R^T) */
					for (int l = 0; l < HID; l++)
						rh += (double)R[(2 * HID + k) *
						    HID + l] * (c->lbr ? h[l] :
						    sig(clipd(c, a[HID + l])) *
						    h[l]);
					if (c->lbr)
						rh *= rr;
					hh = tanh(clipd(c, a[2 * HID + k] +
					    rh));
					nh[k] = (1 - z) * hh + z * h[k];
				} else {
					double	i, o, f, g;

					i = a[k] + (c->peep ? P[k] * cs[k] :
					    0);
					f = a[2 * HID + k] + (c->peep ?
					    P[2 * HID + k] * cs[k] : 0);
					i = sig(clipd(c, i));
					f = sig(clipd(c, f));
					g = tanh(clipd(c, a[3 * HID + k]));
					cs[k] = f * cs[k] + i * g;
					o = a[HID + k] + (c->peep ?
					    P[HID + k] * cs[k] : 0);
					o = sig(clipd(c, o));
					nh[k] = o * tanh(cs[k]);
				}
			}
			memcpy(h, nh, sizeof(h));
			for (int k = 0; k < HID; k++)
				y[(c->layout ? (b * SEQ + t) * dirs + d :
				    (t * dirs + d) * BATCH + b) * HID + k] =
				    h[k];
		}
		for (int k = 0; k < HID; k++) {
			yh[so + k] = h[k];
			yc[so + k] = cs[k];
		}
	}
}

static void
rnn_case(const struct rnn_case *c)
{
	int		 G = strcmp(c->op, "GRU") == 0 ? 3 :
			    strcmp(c->op, "LSTM") == 0 ? 4 : 1;
	int		 dirs = strcmp(c->direction, "bidirectional") == 0 ?
			    2 : 1;
	bool		 lstm = G == 4;
	int64_t		 xd[3], wd[3] = { dirs, G * HID, IN };
	int64_t		 rd[3] = { dirs, G * HID, HID };
	int64_t		 bd[2] = { dirs, 2 * G * HID }, pd[2] = { dirs, 3 * HID };
	int64_t		 ld[1] = { BATCH }, hd[3];
	int64_t		 lens[BATCH] = { 1, 3 };
	float		 x[SEQ * BATCH * IN], w[2 * 4 * HID * IN];
	float		 r[2 * 4 * HID * HID], bias[2 * 8 * HID];
	float		 pp[2 * 3 * HID], h0[2 * BATCH * HID];
	float		 c0[2 * BATCH * HID];
	double		 y[SEQ * 2 * BATCH * HID], yh[2 * BATCH * HID];
	double		 yc[2 * BATCH * HID];
	const char	*in[9] = { "x", "w", "r", "b", c->seq_lens ? "l" : "",
			    c->init ? "h0" : "", lstm && c->init ? "c0" : "",
			    lstm && c->peep ? "p" : "", NULL };
	const char	*outs[3] = { "y", "yh", "yc" };
	Onnx__ModelProto *p = onnxb_model(8, 14, "t");
	Onnx__NodeProto	*node;
	struct onnx_model *m;
	struct ipc_tensor_desc od;
	uint64_t	 nb;

	xd[0] = c->layout ? BATCH : SEQ;
	xd[1] = c->layout ? SEQ : BATCH;
	xd[2] = IN;
	hd[0] = c->layout ? BATCH : dirs;
	hd[1] = c->layout ? dirs : BATCH;
	hd[2] = HID;
	fill(x, sizeof(x) / sizeof(x[0]), 11);
	fill(w, sizeof(w) / sizeof(w[0]), 12);
	fill(r, sizeof(r) / sizeof(r[0]), 13);
	fill(bias, sizeof(bias) / sizeof(bias[0]), 14);
	fill(pp, sizeof(pp) / sizeof(pp[0]), 15);
	fill(h0, sizeof(h0) / sizeof(h0[0]), 16);
	fill(c0, sizeof(c0) / sizeof(c0[0]), 17);
	for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
		x[i] *= 4;	/* reach the clip */
	/* Drop trailing optional inputs the case leaves out. */
	for (int i = 7; i >= 4 && in[i][0] == '\0'; i--)
		in[i] = NULL;
	onnxb_input(p, "x", FLOAT, 3, xd, NULL);
	node = onnxb_node(p, c->op, "n", in, "y");
	for (int j = 1; j < (lstm ? 3 : 2); j++) {
		node->output = xreallocarray(node->output, (size_t)j + 1,
		    sizeof(*node->output));
		node->output[node->n_output++] = xstrdup(outs[j]);
	}
	for (int j = 0; j < (lstm ? 3 : 2); j++)
		onnxb_output(p, outs[j], FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxb_attr_int(node, "hidden_size", HID);
	onnxb_attr_str(node, "direction", c->direction);
	onnxb_attr_int(node, "layout", c->layout);
	if (G == 3)
		onnxb_attr_int(node, "linear_before_reset", c->lbr);
	if (c->clip != 0.0f)
		onnxb_attr_float(node, "clip", c->clip);
	onnxb_init_f32(p, "w", 3, wd, w);
	onnxb_init_f32(p, "r", 3, rd, r);
	onnxb_init_f32(p, "b", 2, bd, bias);
	if (c->seq_lens)
		onnxb_init_i64(p, "l", 1, ld, lens);
	if (c->init) {
		onnxb_init_f32(p, "h0", 3, hd, h0);
		if (lstm)
			onnxb_init_f32(p, "c0", 3, hd, c0);
	}
	if (lstm && c->peep)
		onnxb_init_f32(p, "p", 2, pd, pp);
	m = onnxt_load_ok(p);
	rnn_ref(c, G, dirs, x, w, r, bias, pp, lens, h0, c0, y, yh, yc);
	assert_close(onnxt_run_x(m, x, 3, xd, &od), y, SEQ * (size_t)dirs * BATCH *
	    HID);
	if (c->layout)
		onnxt_assert_shape(&od, 4, (int64_t[]){ BATCH, SEQ, dirs, HID });
	else
		onnxt_assert_shape(&od, 4, (int64_t[]){ SEQ, dirs, BATCH, HID });
	assert_close(onnx_output(m, 1, &od, &nb), yh, (size_t)dirs * BATCH *
	    HID);
	onnxt_assert_shape(&od, 3, hd);
	if (lstm)
		assert_close(onnx_output(m, 2, &od, &nb), yc, (size_t)dirs *
		    BATCH * HID);
	onnx_free(m);
}

static void
test_rnn(void **state)
{
	const struct rnn_case	cases[] = {
		{ "RNN", "forward", 0, 0, 0, false, false, false },
		{ "RNN", "reverse", 1, 0, 0.6f, true, true, false },
		{ "RNN", "bidirectional", 0, 0, 0, true, true, false },
		{ "GRU", "forward", 0, 0, 0, false, false, false },
		{ "GRU", "forward", 0, 1, 0, true, true, false },
		{ "GRU", "bidirectional", 1, 0, 0.5f, true, true, false },
		{ "GRU", "reverse", 0, 1, 0, false, true, false },
		{ "LSTM", "forward", 0, 0, 0, false, false, false },
		{ "LSTM", "reverse", 0, 0, 0, true, true, true },
		{ "LSTM", "bidirectional", 1, 0, 0.7f, true, true, true },
		{ "LSTM", "bidirectional", 0, 0, 0, false, true, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		rnn_case(&cases[i]);
}

static void
test_rnn_bad(void **state)
{
	int64_t			 xd[3] = { 2, 1, 3 }, wd[3] = { 1, 3, 3 };
	float			 w[9] = { 0 };
	const char		*in[4] = { "x", "w", "w", NULL };
	Onnx__ModelProto	*p;
	Onnx__NodeProto		*node;

	(void)state;
	p = onnxb_model(8, 14, "t");
	onnxb_input(p, "x", FLOAT, 3, xd, NULL);
	node = onnxb_node(p, "RNN", "n", in, "y");
	onnxb_attr_int(node, "hidden_size", 3);
	onnxb_attr_str(node, "direction", "sideways");
	onnxb_init_f32(p, "w", 3, wd, w);
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxt_load_err(p, "direction 'sideways' is not supported");

	/* R must be (dirs, H, H): with hidden_size 2 this one is not. */
	p = onnxb_model(8, 14, "t");
	onnxb_input(p, "x", FLOAT, 3, xd, NULL);
	node = onnxb_node(p, "RNN", "n", in, "y");
	onnxb_attr_int(node, "hidden_size", 2);
	onnxb_init_f32(p, "w", 3, wd, w);
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	onnxt_load_err(p, "input 'w' is [1,3,3], expected [1,2,3]");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conv_2d),
		cmocka_unit_test(test_conv_1d),
		cmocka_unit_test(test_conv_general),
		cmocka_unit_test(test_conv_chunks),
		cmocka_unit_test(test_conv_relu_threads),
		cmocka_unit_test(test_conv_pool_apart),
		cmocka_unit_test(test_conv_pointwise),
		cmocka_unit_test(test_conv_bad),
		cmocka_unit_test(test_maxpool),
		cmocka_unit_test(test_maxpool_threads),
		cmocka_unit_test(test_avgpool),
		cmocka_unit_test(test_global_pools),
		cmocka_unit_test(test_batchnorm),
		cmocka_unit_test(test_logsoftmax),
		cmocka_unit_test(test_rnn),
		cmocka_unit_test(test_rnn_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
