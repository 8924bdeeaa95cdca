/* tests/unit/test_kserve.c - the KServe v2 JSON tensor codec
 * (gateway/tensorjson.c): valid requests produce exactly the IPC payload
 * the runtime decodes, and every kind of bad request is refused with a
 * message naming the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/tensorjson.h"

static struct ipc_tensor_desc	in_descs[2] = {
	{ .name = "input", .dtype = DT_FP32, .ndim = 2, .dims = { -1, 4 } },
	{ .name = "mask", .dtype = DT_INT64, .ndim = 1, .dims = { 3 } },
};
static struct ipc_tensor_desc	out_descs[1] = {
	{ .name = "output", .dtype = DT_FP32, .ndim = 2, .dims = { -1, 2 } },
};
static const struct ipc_meta	meta = {
	.format = MODEL_FORMAT_ONNX, .n_inputs = 2, .n_outputs = 1,
	.inputs = in_descs, .outputs = out_descs,
};

/* Encodes text; returns 0/-1 and leaves the error in err. */
static int
encode(const char *text, struct wbuf *w, char *err, size_t errsz)
{
	json_error_t	 je;
	json_t		*j = json_loads(text, 0, &je);
	int		 r;

	assert_non_null(j);
	wbuf_init(w);
	err[0] = '\0';
	r = tensorjson_encode_request(&meta, j, w, err, errsz);
	json_decref(j);
	return r;
}

static void
test_valid_nested_and_flat(void **state)
{
	const char	*texts[] = {
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
		"\"shape\":[2,4],\"data\":[[1,2,3,4],[5,6,7,8.5]]},"
		"{\"name\":\"mask\",\"datatype\":\"INT64\",\"shape\":[3],"
		"\"data\":[1,-2,3]}],\"outputs\":[{\"name\":\"output\"}]}",
		"{\"inputs\":[{\"name\":\"mask\",\"datatype\":\"INT64\","
		"\"shape\":[3],\"data\":[1,-2,3]},{\"name\":\"input\","
		"\"datatype\":\"FP32\",\"shape\":[2,4],"
		"\"data\":[1,2,3,4,5,6,7,8.5]}],\"outputs\":[{\"name\":\"output\"}]}",
	};
	(void)state;
	for (size_t k = 0; k < 2; k++) {
		struct ipc_tensor	t[4];
		struct wbuf		w;
		struct rbuf		rb;
		char			err[256], name[64];
		uint32_t		nout;
		int			n, fi;
		float			x;
		int64_t			v;

		assert_int_equal(encode(texts[k], &w, err, sizeof(err)), 0);
		rbuf_init(&rb, w.data, w.len);
		assert_int_equal(n = ipc_get_tensors(&rb, t, 4), 2);
		fi = strcmp(t[0].desc.name, "input") == 0 ? 0 : 1;
		assert_int_equal(t[fi].desc.dtype, DT_FP32);
		assert_int_equal(t[fi].desc.dims[0], 2);
		assert_int_equal(t[fi].nbytes, 32);
		memcpy(&x, t[fi].data + 28, 4);
		assert_true(x == 8.5f);
		assert_int_equal(t[1 - fi].nbytes, 24);
		memcpy(&v, t[1 - fi].data + 8, 8);
		assert_int_equal(v, -2);
		assert_int_equal(rbuf_u32(&rb, &nout), 0);
		assert_int_equal(nout, 1);
		assert_int_equal(rbuf_str16(&rb, name, sizeof(name)), 0);
		assert_string_equal(name, "output");
		assert_int_equal(rbuf_left(&rb), 0);
		wbuf_release(&w);
	}
}

static void
expect_error(const char *text, const char *needle)
{
	struct wbuf	w;
	char		err[512];

	assert_int_equal(encode(text, &w, err, sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	wbuf_release(&w);
}

#define MASK	"{\"name\":\"mask\",\"datatype\":\"INT64\",\"shape\":[3]," \
		"\"data\":[1,2,3]}"

static void
test_bad_requests(void **state)
{
	(void)state;
	expect_error("{}", "'inputs'");
	expect_error("{\"inputs\":[]}", "'inputs'");
	expect_error("{\"inputs\":[{\"name\":\"nope\",\"datatype\":\"FP32\","
	    "\"shape\":[1,4],\"data\":[1,2,3,4]}," MASK "]}", "unknown input "
	    "'nope'");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"INT32\","
	    "\"shape\":[1,4],\"data\":[1,2,3,4]}," MASK "]}",
	    "expected datatype FP32");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[4],\"data\":[1,2,3,4]}," MASK "]}", "expected shape "
	    "[-1,4]");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,5],\"data\":[1,2,3,4,5]}," MASK "]}", "got [1,5]");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,4],\"data\":[1,2,3]}," MASK "]}", "needs 4 elements, "
	    "data has 3");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,4],\"data\":[1,2,3,4,5]}," MASK "]}",
	    "more elements");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,4],\"data\":[1,2,\"x\",4]}," MASK "]}", "numeric");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,4],\"data\":[1,2,3,4]}]}", "missing input 'mask'");
	expect_error("{\"inputs\":[" MASK "," MASK "]}", "appears twice");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,-4],\"data\":[]}," MASK "]}", "non-negative");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1000000000000,4],\"data\":[]}," MASK "]}", "too large");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,4],\"data\":[[[[[[[[[[1]]]]]]]]]]}," MASK "]}",
	    "nested deeper");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,4],\"data\":[1,2,3,4]},{\"name\":\"mask\","
	    "\"datatype\":\"INT64\",\"shape\":[3],\"data\":[1,2.5,3]}]}",
	    "integer");
	expect_error("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
	    "\"shape\":[1,4],\"data\":[1,2,3,4]}," MASK "],\"outputs\":"
	    "[{\"name\":\"logits\"}]}", "unknown output 'logits'");
}

static void
test_decode_outputs(void **state)
{
	struct ipc_tensor_desc	 d = { .name = "output", .dtype = DT_FP32,
	    .ndim = 2, .dims = { 1, 2 } };
	float			 v[2] = { 0.25f, -1.5f };
	struct wbuf		 w;
	json_t			*o;
	char			 err[128], *s;

	(void)state;
	wbuf_init(&w);
	wbuf_u32(&w, 1);
	ipc_put_tensor(&w, &d, v, sizeof(v));
	assert_non_null(o = tensorjson_decode_outputs(w.data, w.len, err,
	    sizeof(err)));
	s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
	assert_string_equal(s, "[{\"name\":\"output\",\"datatype\":\"FP32\","
	    "\"shape\":[1,2],\"data\":[0.25,-1.5]}]");
	free(s);
	json_decref(o);
	/* Truncated at every length: refused, never read past the end. */
	for (size_t n = 0; n < w.len; n++)
		assert_null(tensorjson_decode_outputs(w.data, n, err,
		    sizeof(err)));
	wbuf_release(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_nested_and_flat),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_decode_outputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
