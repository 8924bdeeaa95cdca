/* tests/unit/test_onnx_load.c - the ONNX loader and executor as a whole:
 * metadata, every load-time check and its message, request validation,
 * and a full MLP forward pass against a naive one in double. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/wire.h"
#include "common/xmalloc.h"
#include "runtime/onnx/onnx.h"
#include "tests/unit/alloccount.h"
#include "tests/unit/onnx_testutil.h"
#include "tools/onnxb.h"

#define FLOAT	ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define INT64	ONNX__TENSOR_PROTO__DATA_TYPE__INT64
#define DOUBLE	ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE

static struct onnx_model *
load_bytes(const void *buf, size_t len, char *err, size_t errlen)
{
	/* An exact-size copy, so ASan catches any read past the end. */
	uint8_t			*copy = xmalloc(len ? len : 1);
	struct onnx_model	*m;

	memcpy(copy, buf, len);
	m = onnx_load(copy, len, err, errlen);
	free(copy);
	return m;
}

static void
load_err(Onnx__ModelProto *p, const char *want)
{
	struct onnx_model	*m;
	char			 err[1024] = "";

	m = onnxt_load_try(p, err, sizeof(err));
	if (m != NULL)
		fail_msg("loaded, want \"%s\"", want);
	if (strcmp(err, want) != 0)
		fail_msg("want \"%s\", got \"%s\"", want, err);
}

/* --- an MLP and its naive forward pass --- */

#define MLP_LAYERS	4
static const int64_t	mlp_w[MLP_LAYERS] = { 20, 16, 12, 5 };

static float
wval(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((*s >> 40) * 0x1.0p-24) - 0.5f;
}

/* input [N,20] -> Gemm+Relu -> Gemm+Relu -> Gemm -> Softmax, like
 * maas-genmodel's; weights[l] (out, in) and biases[l] kept for the
 * reference. */
static Onnx__ModelProto *
mlp(float **weights, float **biases)
{
	Onnx__ModelProto	*p = onnxb_model(8, 13, "mlp");
	int64_t			 io[2] = { ONNXB_DYN, mlp_w[0] };
	uint64_t		 s = 42;
	char			 prev[16] = "input", w[16], b[16], y[16];

	onnxb_input(p, "input", FLOAT, 2, io, "N");
	for (int l = 1; l < MLP_LAYERS; l++) {
		int64_t		 wd[2] = { mlp_w[l], mlp_w[l - 1] };
		const char	*in[4] = { prev, w, b, NULL };
		const char	*rin[2] = { y, NULL };

		weights[l] = xcalloc((size_t)(wd[0] * wd[1]), sizeof(float));
		biases[l] = xcalloc((size_t)wd[0], sizeof(float));
		for (int64_t i = 0; i < wd[0] * wd[1]; i++)
			weights[l][i] = wval(&s);
		for (int64_t i = 0; i < wd[0]; i++)
			biases[l][i] = wval(&s);
		snprintf(w, sizeof(w), "w%d", l);
		snprintf(b, sizeof(b), "b%d", l);
		snprintf(y, sizeof(y), "fc%d", l);
		onnxb_init_f32(p, w, 2, wd, weights[l]);
		onnxb_init_f32(p, b, 1, wd, biases[l]);
		onnxb_attr_int(onnxb_node(p, "Gemm", y, in, y), "transB", 1);
		snprintf(prev, sizeof(prev), "%s", y);
		if (l < MLP_LAYERS - 1) {
			snprintf(prev, sizeof(prev), "relu%d", l);
			onnxb_node(p, "Relu", prev, rin, prev);
		}
	}
	onnxb_node(p, "Softmax", "softmax", (const char *[]){ prev, NULL },
	    "output");
	io[1] = mlp_w[MLP_LAYERS - 1];
	onnxb_output(p, "output", FLOAT, 2, io, "N");
	return p;
}

static void
mlp_ref(double *out, const float *x, size_t batch, float **wt, float **bs)
{
	double	a[32], h[32];

	for (size_t r = 0; r < batch; r++) {
		for (int i = 0; i < mlp_w[0]; i++)
			a[i] = x[r * (size_t)mlp_w[0] + (size_t)i];
		for (int l = 1; l < MLP_LAYERS; l++) {
			for (int o = 0; o < mlp_w[l]; o++) {
				h[o] = bs[l][o];
				for (int i = 0; i < mlp_w[l - 1]; i++)
					h[o] += (double)wt[l][o * mlp_w[l - 1] +
					    i] * a[i];
				if (l < MLP_LAYERS - 1 && h[o] < 0)
					h[o] = 0;
			}
			memcpy(a, h, sizeof(a));
		}
		double	max = a[0], sum = 0;

		for (int o = 1; o < mlp_w[MLP_LAYERS - 1]; o++)
			max = fmax(max, a[o]);
		for (int o = 0; o < mlp_w[MLP_LAYERS - 1]; o++)
			sum += exp(a[o] - max);
		for (int o = 0; o < mlp_w[MLP_LAYERS - 1]; o++)
			out[r * 5 + (size_t)o] = exp(a[o] - max) / sum;
	}
}

static void
input_tensor(struct ipc_tensor *t, const char *name, int nd,
    const int64_t *dims, const float *data)
{
	uint64_t	count = 1;

	memset(t, 0, sizeof(*t));
	snprintf(t->desc.name, sizeof(t->desc.name), "%s", name);
	t->desc.dtype = DT_FP32;
	t->desc.ndim = nd;
	for (int i = 0; i < nd; i++)
		count *= (uint64_t)(t->desc.dims[i] = dims[i]);
	t->data = (const uint8_t *)data;
	t->nbytes = count * sizeof(float);
}

static void
test_mlp(void **state)
{
	float			*wt[MLP_LAYERS], *bs[MLP_LAYERS];
	struct onnx_model	*m;
	struct ipc_meta		 meta;
	struct ipc_tensor_desc	 od;
	struct ipc_tensor	 t;
	static const size_t	 batches[] = { 3, 1, 7, 3 };
	float			 x[7 * 20];
	double			 ref[7 * 5];
	uint64_t		 nb, s = 7;
	const float		*y;
	char			 err[256];

	(void)state;
	m = onnxt_load_ok(mlp(wt, bs));
	assert_int_equal(onnx_opset(m), 13);
	onnx_meta(m, &meta);
	assert_int_equal(meta.format, MODEL_FORMAT_ONNX);
	assert_int_equal(meta.n_inputs, 1);
	assert_int_equal(meta.n_outputs, 1);
	assert_string_equal(meta.inputs[0].name, "input");
	assert_int_equal(meta.inputs[0].dtype, DT_FP32);
	assert_int_equal(meta.inputs[0].ndim, 2);
	assert_int_equal(meta.inputs[0].dims[0], -1);
	assert_int_equal(meta.inputs[0].dims[1], 20);
	assert_string_equal(meta.outputs[0].name, "output");
	assert_int_equal(meta.outputs[0].dims[0], -1);
	assert_int_equal(meta.outputs[0].dims[1], 5);
	/* The weights at least: (20*16 + 16 + 16*12 + 12 + 12*5 + 5) * 4. */
	assert_true(meta.mem_bytes >= 605 * 4);
	ipc_meta_release(&meta);

	for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
		x[i] = 4.0f * wval(&s);
	for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
		int64_t	dims[2] = { (int64_t)batches[k], 20 };

		input_tensor(&t, "input", 2, dims, x);
		assert_int_equal(onnx_run(m, &t, 1, err, sizeof(err)),
		    ONNX_OK);
		y = onnx_output(m, 0, &od, &nb);
		assert_string_equal(od.name, "output");
		assert_int_equal(od.ndim, 2);
		assert_int_equal(od.dims[0], dims[0]);
		assert_int_equal(od.dims[1], 5);
		assert_int_equal(nb, batches[k] * 5 * sizeof(float));
		mlp_ref(ref, x, batches[k], wt, bs);
		for (size_t i = 0; i < batches[k] * 5; i++)
			assert_true(fabs(y[i] - ref[i]) < 1e-5);
	}
	assert_int_equal(onnx_output_index(m, "output", 6), 0);
	assert_int_equal(onnx_output_index(m, "outpu", 5), -1);
	assert_int_equal(onnx_n_outputs(m), 1);
	assert_int_equal(onnx_run_dummy(m, 2, err, sizeof(err)), ONNX_OK);
	onnx_free(m);
	for (int l = 1; l < MLP_LAYERS; l++) {
		free(wt[l]);
		free(bs[l]);
	}
}

/* Growing the arena is the only allocation; a shape seen before, or a
 * smaller one, allocates nothing at all. */
static void
test_no_alloc(void **state)
{
#ifdef COUNT_ALLOCS
	static const struct {
		int64_t		batch;
		bool		may_alloc;	/* the arena grows */
	} steps[] = {
		{ 3, true }, { 3, false }, { 1, false }, { 3, false },
		{ 9, true }, { 9, false }, { 2, false }, { 9, false },
		{ 0, false }, { 0, false }, { 9, false },
	};
	float			*wt[MLP_LAYERS], *bs[MLP_LAYERS];
	struct onnx_model	*m;
	struct ipc_tensor	 t;
	static float		 x[9 * 20];
	unsigned long		 before;
	char			 err[256];

	(void)state;
	m = onnxt_load_ok(mlp(wt, bs));
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		input_tensor(&t, "input", 2, (int64_t[]){ steps[k].batch, 20 },
		    x);
		before = n_allocs;
		assert_int_equal(onnx_run(m, &t, 1, err, sizeof(err)),
		    ONNX_OK);
		if (!steps[k].may_alloc && n_allocs != before)
			fail_msg("batch %lld allocated %lu times",
			    (long long)steps[k].batch, n_allocs - before);
		/* Growing does allocate: the count is live. */
		if (steps[k].may_alloc)
			assert_true(n_allocs > before);
	}
	onnx_free(m);
	for (int l = 1; l < MLP_LAYERS; l++) {
		free(wt[l]);
		free(bs[l]);
	}
#else
	(void)state;
	skip();
#endif
}

/* --- request validation --- */

static void
run_err(struct onnx_model *m, const struct ipc_tensor *t, size_t n,
    enum onnx_status want, const char *msg)
{
	char	err[256] = "";

	assert_int_equal(onnx_run(m, t, n, err, sizeof(err)), want);
	if (strcmp(err, msg) != 0)
		fail_msg("want \"%s\", got \"%s\"", msg, err);
}

static void
test_validation(void **state)
{
	float			*wt[MLP_LAYERS], *bs[MLP_LAYERS];
	struct onnx_model	*m;
	struct ipc_tensor	 t[3];
	static float		 x[64 * 20];

	(void)state;
	m = onnxt_load_ok(mlp(wt, bs));
	input_tensor(&t[0], "input", 2, (int64_t[]){ 2, 19 }, x);
	run_err(m, t, 1, ONNX_EINPUT,
	    "input 'input': expected shape [-1,20], got [2,19]");
	input_tensor(&t[0], "input", 3, (int64_t[]){ 2, 20, 1 }, x);
	run_err(m, t, 1, ONNX_EINPUT,
	    "input 'input': expected shape [-1,20], got [2,20,1]");
	input_tensor(&t[0], "input", 2, (int64_t[]){ -3, 20 }, x);
	run_err(m, t, 1, ONNX_EINPUT,
	    "input 'input': expected shape [-1,20], got [-3,20]");
	/* An empty batch is a batch: nothing in, nothing out. */
	input_tensor(&t[0], "input", 2, (int64_t[]){ 0, 20 }, x);
	t[0].data = NULL;
	run_err(m, t, 1, ONNX_OK, "");
	{
		struct ipc_tensor_desc	od;
		uint64_t		nb;

		(void)onnx_output(m, 0, &od, &nb);
		assert_int_equal(nb, 0);
		assert_int_equal(od.dims[0], 0);
		assert_int_equal(od.dims[1], 5);
	}
	input_tensor(&t[0], "input", 2, (int64_t[]){ 2, 20 }, x);
	t[0].desc.dtype = DT_INT32;
	run_err(m, t, 1, ONNX_EINPUT,
	    "input 'input': expected dtype FP32, got INT32");
	run_err(m, t, 0, ONNX_EINPUT, "missing input 'input'");
	input_tensor(&t[0], "inp\nut", 2, (int64_t[]){ 2, 20 }, x);
	run_err(m, t, 1, ONNX_EINPUT, "unknown input 'inp?ut'");
	input_tensor(&t[0], "input", 2, (int64_t[]){ 2, 20 }, x);
	input_tensor(&t[1], "input", 2, (int64_t[]){ 2, 20 }, x);
	run_err(m, t, 2, ONNX_EINPUT, "input 'input' is given more than once");
	/* Still serves after all that. */
	run_err(m, t, 1, ONNX_OK, "");
	onnx_free(m);
	for (int l = 1; l < MLP_LAYERS; l++) {
		free(wt[l]);
		free(bs[l]);
	}
}

/* Two inputs sharing dim_param N must agree on it. */
static void
test_dim_params(void **state)
{
	Onnx__ModelProto	*p = onnxb_model(8, 13, "t");
	int64_t			 da[2] = { ONNXB_DYN, 3 };
	int64_t			 dc[2] = { ONNXB_UNSET, 3 };
	struct onnx_model	*m;
	struct ipc_tensor	 t[3];
	struct ipc_meta		 meta;
	static float		 x[64];

	(void)state;
	onnxb_input(p, "a", FLOAT, 2, da, "N");
	onnxb_input(p, "b", FLOAT, 2, da, "N");
	onnxb_input(p, "c", FLOAT, 2, dc, NULL);
	onnxb_node(p, "Add", "ab", (const char *[]){ "a", "b", NULL }, "ab");
	onnxb_node(p, "Mul", "y", (const char *[]){ "ab", "c", NULL }, "y");
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	m = onnxt_load_ok(p);
	onnx_meta(m, &meta);
	assert_int_equal(meta.n_inputs, 3);
	assert_int_equal(meta.inputs[2].dims[0], -1);
	assert_int_equal(meta.outputs[0].dims[0], -1);
	ipc_meta_release(&meta);
	input_tensor(&t[0], "a", 2, (int64_t[]){ 2, 3 }, x);
	input_tensor(&t[1], "b", 2, (int64_t[]){ 3, 3 }, x);
	input_tensor(&t[2], "c", 2, (int64_t[]){ 1, 3 }, x);
	run_err(m, t, 3, ONNX_EINPUT, "input 'b': dimension 0 (N) is 3 but "
	    "it is 2 in input 'a'");
	/* c's first dim has no name: 1 broadcasts, 2 matches. */
	input_tensor(&t[1], "b", 2, (int64_t[]){ 2, 3 }, x);
	run_err(m, t, 3, ONNX_OK, "");
	input_tensor(&t[2], "c", 2, (int64_t[]){ 5, 3 }, x);
	run_err(m, t, 3, ONNX_EINPUT,
	    "node 'y' (Mul): cannot broadcast [2,3] with [5,3]");
	onnx_free(m);
}

/* An output too big to hold is refused, not attempted. */
static void
test_too_big(void **state)
{
	Onnx__ModelProto	*p = onnxb_model(8, 13, "t");
	int64_t			 dx[2] = { ONNXB_DYN, 1 }, dw[2] = { 1, 65536 };
	struct onnx_model	*m;
	struct ipc_tensor	 t;
	float			*x = xcalloc(65536, sizeof(float));
	float			*w = xcalloc(65536, sizeof(float));

	(void)state;
	onnxb_input(p, "x", FLOAT, 2, dx, "N");
	onnxb_init_f32(p, "w", 2, dw, w);
	onnxb_node(p, "Add", "y", (const char *[]){ "x", "w", NULL }, "y");
	onnxb_output(p, "y", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	m = onnxt_load_ok(p);
	input_tensor(&t, "x", 2, (int64_t[]){ 65536, 1 }, x);
	run_err(m, &t, 1, ONNX_ETOOBIG, "node 'y' (Add): output "
	    "[65536,65536] would have more than 2147483647 elements");
	input_tensor(&t, "x", 2, (int64_t[]){ 2, 1 }, x);
	run_err(m, &t, 1, ONNX_OK, "");
	onnx_free(m);
	free(x);
	free(w);
}

/* --- load-time checks --- */

/* x [N,4] -> Relu "r" -> y: a valid base to break. */
static Onnx__ModelProto *
base(int64_t opset)
{
	Onnx__ModelProto	*p = onnxb_model(8, opset, "t");
	int64_t			 d[2] = { ONNXB_DYN, 4 };

	onnxb_input(p, "x", FLOAT, 2, d, "N");
	onnxb_node(p, "Relu", "r", (const char *[]){ "x", NULL }, "y");
	onnxb_output(p, "y", FLOAT, 2, d, "N");
	return p;
}

static void
test_unsupported(void **state)
{
	Onnx__ModelProto	*p = base(13);
	const char		*in[2] = { "x", NULL };
	Onnx__NodeProto		*n;

	(void)state;
	onnxb_node(p, "ConvTranspose", "c1", in, "c1");
	onnxb_node(p, "MaxUnpool", "l1", in, "l1");
	onnxb_node(p, "ConvTranspose", "c2", in, "c2");
	onnxb_node(p, "Gemm", "g", in, "g");
	n = onnxb_node(p, "FusedGemm", "f", in, "f");
	n->domain = xstrdup("com.microsoft");
	load_err(p, "unsupported operators: ConvTranspose (node 'c1', "
	    "node 'c2'), MaxUnpool (node 'l1'), com.microsoft.FusedGemm "
	    "(node 'f')");
	/* Attributes an operator we have does not know, in the same one
	 * message. */
	p = base(13);
	onnxb_node(p, "Foo", "f1", in, "f1");
	n = onnxb_node(p, "Gemm", "g1", (const char *[]){ "x", "x", NULL },
	    "g1");
	onnxb_attr_int(n, "transC", 1);
	n = onnxb_node(p, "Relu", NULL, in, "r2");
	onnxb_attr_float(n, "alpha", 1.0f);
	load_err(p, "unsupported operators: Foo (node 'f1'); unsupported "
	    "attributes: node 'g1' (Gemm): 'transC', node #3 (Relu): "
	    "'alpha'");
}

static void
test_references(void **state)
{
	Onnx__ModelProto	*p;
	Onnx__NodeProto		*tmp;
	int64_t			 d[2] = { 4, 4 };
	static const float	 z[16];

	(void)state;
	p = base(13);
	onnxb_node(p, "Gemm", "gemm1", (const char *[]){ "y", "w", NULL },
	    "g");
	load_err(p, "node 'gemm1' (Gemm): input 'w' is not produced by any "
	    "node");

	p = base(13);
	onnxb_node(p, "Relu", "r2", (const char *[]){ "y", NULL }, "z");
	tmp = p->graph->node[0];
	p->graph->node[0] = p->graph->node[1];
	p->graph->node[1] = tmp;
	load_err(p, "node 'r2' (Relu): input 'y' comes from node 'r' (Relu), "
	    "which is later in the graph (nodes must be in topological "
	    "order)");

	p = base(13);
	onnxb_node(p, "Relu", NULL, (const char *[]){ "y", NULL }, "y");
	load_err(p, "node #1 (Relu): output 'y' is already defined");

	p = base(13);
	onnxb_node(p, "Relu", "self", (const char *[]){ "s", NULL }, "s");
	load_err(p, "node 'self' (Relu): input 's' comes from node 'self' "
	    "(Relu), which is later in the graph (nodes must be in "
	    "topological order)");

	p = base(13);
	onnxb_output(p, "nowhere", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	load_err(p, "graph output 'nowhere' is not produced by any node");

	p = base(13);
	onnxb_node(p, "Gemm", "g", (const char *[]){ "y", NULL }, "g");
	load_err(p, "node 'g' (Gemm): has 1 inputs, expected 2 to 3");

	p = base(13);
	onnxb_node(p, "Gemm", "g", (const char *[]){ "y", "", NULL }, "g");
	load_err(p, "node 'g' (Gemm): input 1 is missing");

	p = base(13);
	onnxb_init_f32(p, "w", 2, d, z);
	onnxb_init_f32(p, "w", 2, d, z);
	load_err(p, "initializer 'w' is defined twice");

	p = base(13);
	onnxb_input(p, "x", FLOAT, 2, d, NULL);
	load_err(p, "graph input 'x' is listed twice");

	/* Reshape's shape from a graph input of unknown size cannot be
	 * planned (a small fixed one can: see test_onnx_ops). */
	p = base(13);
	onnxb_input(p, "s", INT64, 1, (int64_t[]){ ONNXB_DYN }, "K");
	onnxb_node(p, "Reshape", "rs", (const char *[]){ "y", "s", NULL },
	    "rs");
	load_err(p, "node 'rs' (Reshape): shape 's' must be a constant or "
	    "computed from shapes");
	p = base(13);
	onnxb_node(p, "Reshape", "rs", (const char *[]){ "y", "y", NULL },
	    "rs");
	load_err(p, "node 'rs' (Reshape): input 'y' has data type FP32, "
	    "which is not supported here");
	p = base(13);
	onnxb_init_i64(p, "s", 1, (int64_t[]){ 2 }, (int64_t[]){ 1, 1 });
	onnxb_node(p, "Sqrt", "ri", (const char *[]){ "s", NULL }, "ri");
	load_err(p, "node 'ri' (Sqrt): input 's' has data type INT64, which "
	    "is not supported here");
}

static void
test_tensors(void **state)
{
	Onnx__ModelProto	*p;
	Onnx__TensorProto	*t;
	int64_t			 d[2] = { 2, 2 };
	static const float	 z[4];

	(void)state;
	p = base(13);
	t = onnxb_init_f32(p, "w", 2, d, z);
	t->raw_data.len = 12;
	load_err(p, "initializer 'w': raw_data holds 12 bytes, expected 16");

	p = base(13);
	t = onnxb_init_f32(p, "w", 2, d, z);
	t->data_type = DOUBLE;
	load_err(p, "initializer 'w': data type DOUBLE is not supported (only "
	    "FLOAT, FLOAT16, INT64, INT32 and BOOL)");

	p = base(13);
	t = onnxb_init_f32(p, "w", 2, d, z);
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	load_err(p, "initializer 'w': holds raw_data and external data");

	p = base(13);
	t = onnxb_init_f32(p, "w", 2, d, z);
	t->dims[1] = -3;
	load_err(p, "initializer 'w': dimension 1 is -3");

	/* float_data instead of raw_data. */
	p = base(13);
	t = onnxb_init_f32(p, "w", 2, d, z);
	free(t->raw_data.data);
	t->raw_data.data = NULL;
	t->has_raw_data = 0;
	t->raw_data.len = 0;
	t->n_float_data = 3;
	t->float_data = xcalloc(3, sizeof(float));
	load_err(p, "initializer 'w': holds 3 values, expected 4");
	p = base(13);
	t = onnxb_init_f32(p, "w", 2, d, z);
	free(t->raw_data.data);
	t->raw_data.data = NULL;
	t->has_raw_data = 0;
	t->raw_data.len = 0;
	t->n_float_data = 4;
	t->float_data = xcalloc(4, sizeof(float));
	onnx_free(onnxt_load_ok(p));

	/* An initializer also listed as an input (IR < 4) is a constant. */
	p = base(13);
	onnxb_init_f32(p, "w", 1, (int64_t[]){ 4 }, z);
	onnxb_input(p, "w", FLOAT, 1, (int64_t[]){ 4 }, NULL);
	onnxb_node(p, "Add", "a", (const char *[]){ "y", "w", NULL }, "a");
	{
		struct onnx_model	*m = onnxt_load_ok(p);
		struct ipc_meta		 meta;

		onnx_meta(m, &meta);
		assert_int_equal(meta.n_inputs, 1);
		assert_string_equal(meta.inputs[0].name, "x");
		ipc_meta_release(&meta);
		onnx_free(m);
	}
}

static void
test_graph_io(void **state)
{
	Onnx__ModelProto	*p;
	int64_t			 d[2] = { 0, 4 }, d9[9] = { 1, 1, 1, 1, 1, 1,
				    1, 1, 1 };

	(void)state;
	p = base(13);
	onnxb_input(p, "u", FLOAT, ONNXB_NOSHAPE, NULL, NULL);
	load_err(p, "graph input 'u' has no shape");
	p = base(13);
	onnxb_input(p, "u", FLOAT, 2, d, NULL);
	onnx_free(onnxt_load_ok(p));	/* empty tensors are tensors */
	p = base(13);
	onnxb_input(p, "u", FLOAT, 9, d9, NULL);
	load_err(p, "graph input 'u' has rank 9, above 8");
	p = base(13);
	onnxb_output(p, "y", FLOAT, 2, (int64_t[]){ ONNXB_DYN, 5 }, "N");
	load_err(p, "graph output 'y': dimension 1 is declared 5 but "
	    "computed as [-1,4]");
	p = base(13);
	onnxb_output(p, "y", INT64, ONNXB_NOSHAPE, NULL, NULL);
	load_err(p, "graph output 'y' is declared INT64 but computed as FP32");
	p = base(13);
	p->graph->n_output = 0;
	onnx__value_info_proto__free_unpacked(p->graph->output[0], NULL);
	load_err(p, "graph has no outputs");
}

static void
test_opset(void **state)
{
	Onnx__ModelProto	*p;

	(void)state;
	/* Below 7 only operators whose semantics have not changed since:
	 * Relu's since 6, Add's (its broadcast attribute went at 7) not. */
	onnx_free(onnxt_load_ok(base(6)));
	load_err(base(5), "opset 5 is not supported (only 7 to 21; below 7 "
	    "only for operators unchanged since, and Relu is not one)");
	p = base(6);
	onnxb_node(p, "Add", "a", (const char *[]){ "x", "x", NULL }, "z");
	load_err(p, "opset 6 is not supported (only 7 to 21; below 7 only "
	    "for operators unchanged since, and Add is not one)");
	load_err(base(0), "opset 0 is not supported (only 7 to 21)");
	load_err(base(22), "opset 22 is not supported (only 7 to 21)");
	p = base(13);
	free(p->opset_import[0]->domain);
	p->opset_import[0]->domain = xstrdup("ai.onnx.ml");
	load_err(p, "model does not import the default ONNX opset (other "
	    "domains are not supported)");
	p = base(13);
	free(p->opset_import[0]->domain);
	p->opset_import[0]->domain = xstrdup("ai.onnx");
	onnx_free(onnxt_load_ok(p));
}

/* Wraps w's bytes as field f (length-delimited) of an outer message. */
static void
wrap(struct wbuf *w, unsigned f)
{
	struct wbuf	o;
	size_t		n = w->len;

	wbuf_init(&o);
	wbuf_u8(&o, (uint8_t)(f << 3 | 2));
	do {
		wbuf_u8(&o, (uint8_t)((n & 0x7f) | (n > 0x7f ? 0x80 : 0)));
		n >>= 7;
	} while (n > 0);
	wbuf_put(&o, w->data, w->len);
	wbuf_release(w);
	*w = o;
}

static void
test_not_onnx(void **state)
{
	struct wbuf	w;
	char		err[256];
	uint8_t		junk[64];

	(void)state;
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	assert_null(load_bytes(junk, sizeof(junk), err, sizeof(err)));
	assert_string_equal(err, "not a valid ONNX model: protobuf parse "
	    "failed");
	assert_null(load_bytes("", 0, err, sizeof(err)));
	assert_string_equal(err, "not a valid ONNX model: no graph");

	/* TypeProto -> Sequence -> TypeProto ... nested 1000 deep, which
	 * would recurse in protobuf-c: refused up front. */
	wbuf_init(&w);
	for (int i = 0; i < 1000; i++) {
		wrap(&w, 1);		/* Sequence.elem_type */
		wrap(&w, 4);		/* TypeProto.sequence_type */
	}
	wrap(&w, 2);			/* ValueInfoProto.type */
	wrap(&w, 11);			/* GraphProto.input */
	wrap(&w, 7);			/* ModelProto.graph */
	assert_null(load_bytes(w.data, w.len, err, sizeof(err)));
	assert_string_equal(err, "not a valid ONNX model: protobuf parse "
	    "failed");
	wbuf_release(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mlp),
		cmocka_unit_test(test_no_alloc),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_dim_params),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_references),
		cmocka_unit_test(test_tensors),
		cmocka_unit_test(test_graph_io),
		cmocka_unit_test(test_opset),
		cmocka_unit_test(test_not_onnx),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
