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

/* --- the binary extension and other datatypes --- */

static struct ipc_tensor_desc	all_descs[] = {
	{ .name = "i8", .dtype = DT_INT8, .ndim = 1, .dims = { -1 } },
	{ .name = "u8", .dtype = DT_UINT8, .ndim = 1, .dims = { -1 } },
	{ .name = "i16", .dtype = DT_INT16, .ndim = 1, .dims = { -1 } },
	{ .name = "u32", .dtype = DT_UINT32, .ndim = 1, .dims = { -1 } },
	{ .name = "h", .dtype = DT_FP16, .ndim = 1, .dims = { -1 } },
	{ .name = "d", .dtype = DT_FP64, .ndim = 1, .dims = { -1 } },
	{ .name = "b", .dtype = DT_BOOL, .ndim = 1, .dims = { -1 } },
	{ .name = "s", .dtype = DT_BYTES, .ndim = 1, .dims = { -1 } },
};
static const struct ipc_meta	all_meta = {
	.format = MODEL_FORMAT_ONNX, .n_inputs = 8, .n_outputs = 1,
	.inputs = all_descs, .outputs = out_descs,
};

#define ALL_OK(i8, h, s)						\
	"{\"inputs\":[{\"name\":\"i8\",\"datatype\":\"INT8\",\"shape\":[2],"	\
	"\"data\":[" i8 "]},{\"name\":\"u8\",\"datatype\":\"UINT8\","	\
	"\"shape\":[1],\"data\":[255]},{\"name\":\"i16\",\"datatype\":"	\
	"\"INT16\",\"shape\":[1],\"data\":[-32768]},{\"name\":\"u32\","	\
	"\"datatype\":\"UINT32\",\"shape\":[1],\"data\":[4294967295]},"	\
	"{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[3],\"data\":["	\
	h "]},{\"name\":\"d\",\"datatype\":\"FP64\",\"shape\":[1],"	\
	"\"data\":[0.1]},{\"name\":\"b\",\"datatype\":\"BOOL\","	\
	"\"shape\":[2],\"data\":[true,false]},{\"name\":\"s\","		\
	"\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[" s "]}]}"

/* Encodes text against meta m with binary part bin. */
static int
encode_bin(const struct ipc_meta *m, const char *text, const void *bin,
    size_t binlen, struct wbuf *w, struct tensorjson_outspec *spec,
    char *err, size_t errsz)
{
	json_error_t	 je;
	json_t		*j = json_loads(text, 0, &je);
	int		 r;

	if (j == NULL)
		fail_msg("bad test JSON: %s", je.text);
	wbuf_init(w);
	err[0] = '\0';
	r = tensorjson_encode_infer(m, j, bin, binlen, w, spec, err, errsz);
	json_decref(j);
	return r;
}

static void
expect_all_error(const char *text, const char *needle)
{
	struct wbuf	w;
	char		err[512];

	assert_int_equal(encode_bin(&all_meta, text, NULL, 0, &w, NULL, err,
	    sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	wbuf_release(&w);
}

static void
test_json_dtypes(void **state)
{
	struct ipc_tensor	t[8];
	struct wbuf		w;
	struct rbuf		rb;
	char			err[512];
	double			dv;

	(void)state;
	assert_int_equal(encode_bin(&all_meta, ALL_OK("-128,127",
	    "1.5,-65504,1e-7", "\"ab\",\"\""), NULL, 0, &w, NULL, err,
	    sizeof(err)), 0);
	rbuf_init(&rb, w.data, w.len);
	assert_int_equal(ipc_get_tensors(&rb, t, 8), 8);
	assert_int_equal(t[0].nbytes, 2);
	assert_int_equal((int8_t)t[0].data[0], -128);
	assert_int_equal(t[0].data[1], 127);
	assert_int_equal(t[1].data[0], 255);
	assert_int_equal((int16_t)le16_get(t[2].data), -32768);
	assert_int_equal(le32_get(t[3].data), 4294967295U);
	/* FP16: 1.5 = 0x3e00, -65504 = 0xfbff, 1e-7 a subnormal (2^-24
	 * units: 1e-7 / 5.96e-8 rounds to 2). */
	assert_int_equal(t[4].nbytes, 6);
	assert_int_equal(le16_get(t[4].data), 0x3e00);
	assert_int_equal(le16_get(t[4].data + 2), 0xfbff);
	assert_int_equal(le16_get(t[4].data + 4), 0x0002);
	memcpy(&dv, t[5].data, 8);
	assert_true(dv == 0.1);
	assert_int_equal(t[6].data[0], 1);
	assert_int_equal(t[6].data[1], 0);
	/* BYTES: u32 length-prefixed, nbytes patched after the strings */
	assert_int_equal(t[7].desc.dtype, DT_BYTES);
	assert_int_equal(t[7].nbytes, 4 + 2 + 4);
	assert_int_equal(le32_get(t[7].data), 2);
	assert_memory_equal(t[7].data + 4, "ab", 2);
	assert_int_equal(le32_get(t[7].data + 6), 0);
	wbuf_release(&w);

	expect_all_error(ALL_OK("300,1", "1,2,3", "\"a\",\"b\""),
	    "value 300 out of range for INT8");
	expect_all_error(ALL_OK("-129,1", "1,2,3", "\"a\",\"b\""),
	    "out of range for INT8");
	expect_all_error(ALL_OK("1,1", "1,2,70000", "\"a\",\"b\""),
	    "out of range for FP16");
	expect_all_error(ALL_OK("1,1", "1,2,3", "\"a\",7"), "string");
	expect_all_error(ALL_OK("1,1", "1,2,3", "\"a\""), "needs 2 elements");
	expect_all_error(ALL_OK("1,1.5", "1,2,3", "\"a\",\"b\""), "integer");
}

#define BIN_HDR(sz)							\
	"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","	\
	"\"shape\":[1,4],\"parameters\":{\"binary_data_size\":" sz "}},"	\
	MASK "]"

static void
expect_bin_error(const struct ipc_meta *m, const char *text,
    const void *bin, size_t binlen, const char *needle)
{
	struct wbuf	w;
	char		err[512];

	assert_int_equal(encode_bin(m, text, bin, binlen, &w, NULL, err,
	    sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	wbuf_release(&w);
}

static void
test_binary_inputs(void **state)
{
	static const float		 x[4] = { 1, -2, 3.5f, 4 };
	struct tensorjson_outspec	 spec;
	struct ipc_tensor		 t[4];
	struct wbuf			 w;
	struct rbuf			 rb;
	uint8_t				 bytes[32];
	char				 err[512];

	(void)state;
	/* binary FP32 next to a JSON INT64 input; outputs' binary flags */
	assert_int_equal(encode_bin(&meta, BIN_HDR("16") ",\"outputs\":[{"
	    "\"name\":\"output\",\"parameters\":{\"binary_data\":false}}],"
	    "\"parameters\":{\"binary_data_output\":true}}", x, sizeof(x),
	    &w, &spec, err, sizeof(err)), 0);
	assert_true(spec.binary_all);
	assert_int_equal(spec.n, 1);
	assert_int_equal(spec.binary[0], 0);
	rbuf_init(&rb, w.data, w.len);
	assert_int_equal(ipc_get_tensors(&rb, t, 4), 2);
	assert_string_equal(t[0].desc.name, "input");
	assert_int_equal(t[0].nbytes, 16);
	assert_memory_equal(t[0].data, x, 16);
	wbuf_release(&w);

	expect_bin_error(&meta, BIN_HDR("16") "}", x, 12, "exceeds the 12 "
	    "bytes");
	expect_bin_error(&meta, BIN_HDR("12") "}", x, 12, "need 16 bytes");
	expect_bin_error(&meta, BIN_HDR("-1") "}", x, 16, "non-negative");
	expect_bin_error(&meta, BIN_HDR("9223372036854775807") "}", x, 16,
	    "exceeds");
	expect_bin_error(&meta, BIN_HDR("16.0") "}", x, 16, "integer");
	expect_bin_error(&meta, BIN_HDR("\"16\"") "}", x, 16, "integer");
	{
		uint8_t	more[20] = { 0 };

		expect_bin_error(&meta, BIN_HDR("16") "}", more, 20,
		    "4 bytes of binary data beyond");
	}
	expect_bin_error(&meta, "{\"inputs\":[{\"name\":\"input\","
	    "\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4],"
	    "\"parameters\":{\"binary_data_size\":16}}," MASK "]}", x, 16,
	    "both");
	expect_bin_error(&meta, BIN_HDR("16") ",\"parameters\":{"
	    "\"binary_data_output\":1}}", x, 16, "binary_data_output");

	/* BYTES and BOOL in binary */
	memset(bytes, 0, sizeof(bytes));
	le32_put(bytes, 3);
	memcpy(bytes + 4, "abc", 3);
	le32_put(bytes + 7, 0);
	{
		const char *hb = "{\"inputs\":[{\"name\":\"i8\",\"datatype\":"
		    "\"INT8\",\"shape\":[0],\"data\":[]},{\"name\":\"u8\","
		    "\"datatype\":\"UINT8\",\"shape\":[0],\"data\":[]},"
		    "{\"name\":\"i16\",\"datatype\":\"INT16\",\"shape\":[0],"
		    "\"data\":[]},{\"name\":\"u32\",\"datatype\":\"UINT32\","
		    "\"shape\":[0],\"data\":[]},{\"name\":\"h\",\"datatype\":"
		    "\"FP16\",\"shape\":[0],\"data\":[]},{\"name\":\"d\","
		    "\"datatype\":\"FP64\",\"shape\":[0],\"data\":[]},"
		    "{\"name\":\"b\",\"datatype\":\"BOOL\",\"shape\":[2],"
		    "\"parameters\":{\"binary_data_size\":2}},{\"name\":\"s\","
		    "\"datatype\":\"BYTES\",\"shape\":[2],\"parameters\":"
		    "{\"binary_data_size\":%d}}]}";
		char	text[1024];
		uint8_t	buf[64];

		buf[0] = 1;
		buf[1] = 0;
		memcpy(buf + 2, bytes, 11);
		snprintf(text, sizeof(text), hb, 11);
		assert_int_equal(encode_bin(&all_meta, text, buf, 13, &w, NULL,
		    err, sizeof(err)), 0);
		rbuf_init(&rb, w.data, w.len);
		{
			struct ipc_tensor	tt[8];

			assert_int_equal(ipc_get_tensors(&rb, tt, 8), 8);
			assert_int_equal(tt[7].nbytes, 11);
			assert_memory_equal(tt[7].data, bytes, 11);
		}
		wbuf_release(&w);
		/* a length running past the size */
		snprintf(text, sizeof(text), hb, 10);
		expect_bin_error(&all_meta, text, buf, 12, "length-prefixed");
		/* one element instead of two */
		snprintf(text, sizeof(text), hb, 7);
		expect_bin_error(&all_meta, text, buf, 9, "length-prefixed");
		/* BOOL byte 2 */
		buf[0] = 2;
		snprintf(text, sizeof(text), hb, 11);
		expect_bin_error(&all_meta, text, buf, 13, "0 or 1");
	}
}

static void
test_parse_body(void **state)
{
	const char	*body = "{\"a\":1}XYZ";
	const uint8_t	*bin;
	size_t		 binlen;
	json_t		*j;
	char		 err[256];
	const char	*bad[] = { "", "-1", "+7", " 7", "7 ", "0x7", "11",
	    "99999999999999999999", "0", "3" };

	(void)state;
	assert_non_null(j = tensorjson_parse_body(body, 10, "7", &bin,
	    &binlen, err, sizeof(err)));
	assert_int_equal(binlen, 3);
	assert_memory_equal(bin, "XYZ", 3);
	json_decref(j);
	assert_non_null(j = tensorjson_parse_body(body, 7, "7", &bin,
	    &binlen, err, sizeof(err)));
	assert_int_equal(binlen, 0);
	json_decref(j);
	assert_non_null(j = tensorjson_parse_body(body, 7, NULL, &bin,
	    &binlen, err, sizeof(err)));
	assert_null(bin);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (tensorjson_parse_body(body, 10, bad[i], &bin, &binlen, err,
		    sizeof(err)) != NULL)
			fail_msg("header '%s' accepted", bad[i]);
		assert_true(err[0] != '\0');
	}
	/* no header: the binary tail makes it bad JSON */
	assert_null(tensorjson_parse_body(body, 10, NULL, &bin, &binlen, err,
	    sizeof(err)));
	assert_null(tensorjson_parse_body("[1]", 3, NULL, &bin, &binlen, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "object"));
}

static void
test_encode_response(void **state)
{
	struct ipc_tensor_desc		 d1 = { .name = "y", .dtype = DT_FP16,
	    .ndim = 1, .dims = { 2 } };
	struct ipc_tensor_desc		 d2 = { .name = "s", .dtype = DT_BYTES,
	    .ndim = 1, .dims = { 1 } };
	struct ipc_tensor_desc		 d3 = { .name = "u", .dtype = DT_UINT64,
	    .ndim = 1, .dims = { 1 } };
	struct tensorjson_outspec	 spec;
	uint8_t				 h[4], sb[8];
	uint64_t			 big = (1ULL << 63) + 1;
	struct wbuf			 w, body;
	json_t				*head;
	size_t				 hl;
	char				 err[256];

	(void)state;
	le16_put(h, 0x3e00);		/* 1.5 */
	le16_put(h + 2, 0xc000);	/* -2 */
	le32_put(sb, 3);
	memcpy(sb + 4, "h\xc3\xa9", 3);
	wbuf_init(&w);
	wbuf_u32(&w, 2);
	ipc_put_tensor(&w, &d1, h, 4);
	ipc_put_tensor(&w, &d2, sb, 7);

	/* all JSON */
	memset(&spec, 0, sizeof(spec));
	wbuf_init(&body);
	head = json_pack("{s:s}", "model_name", "m");
	assert_int_equal(tensorjson_encode_response(w.data, w.len, &spec, head,
	    &body, &hl, err, sizeof(err)), 0);
	assert_int_equal(hl, 0);
	wbuf_u8(&body, 0);
	assert_string_equal((char *)body.data, "{\"model_name\":\"m\","
	    "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP16\",\"shape\":[2],"
	    "\"data\":[1.5,-2.0]},{\"name\":\"s\",\"datatype\":\"BYTES\","
	    "\"shape\":[1],\"data\":[\"h\xc3\xa9\"]}]}");
	json_decref(head);
	wbuf_release(&body);

	/* the second binary: JSON header, then its 7 raw bytes */
	spec.n = 2;
	spec.binary[0] = -1;
	spec.binary[1] = 1;
	wbuf_init(&body);
	head = json_object();
	assert_int_equal(tensorjson_encode_response(w.data, w.len, &spec, head,
	    &body, &hl, err, sizeof(err)), 0);
	assert_int_equal(hl, body.len - 7);
	assert_memory_equal(body.data + hl, sb, 7);
	assert_non_null(memmem(body.data, hl, "\"binary_data_size\":7", 20));
	json_decref(head);
	wbuf_release(&body);

	/* count differs from the outputs asked */
	spec.n = 1;
	wbuf_init(&body);
	head = json_object();
	assert_int_equal(tensorjson_encode_response(w.data, w.len, &spec, head,
	    &body, &hl, err, sizeof(err)), -1);
	json_decref(head);
	wbuf_release(&body);
	wbuf_release(&w);

	/* BYTES not UTF-8 and a UINT64 past JSON: JSON refused, binary ok */
	sb[4] = 0xff;
	wbuf_init(&w);
	wbuf_u32(&w, 1);
	ipc_put_tensor(&w, &d2, sb, 7);
	memset(&spec, 0, sizeof(spec));
	wbuf_init(&body);
	head = json_object();
	assert_int_equal(tensorjson_encode_response(w.data, w.len, &spec, head,
	    &body, &hl, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "UTF-8"));
	json_decref(head);
	spec.binary_all = true;
	head = json_object();
	assert_int_equal(tensorjson_encode_response(w.data, w.len, &spec, head,
	    &body, &hl, err, sizeof(err)), 0);
	json_decref(head);
	wbuf_release(&body);
	wbuf_release(&w);
	wbuf_init(&w);
	wbuf_u32(&w, 1);
	ipc_put_tensor(&w, &d3, &big, 8);
	memset(&spec, 0, sizeof(spec));
	wbuf_init(&body);
	head = json_object();
	assert_int_equal(tensorjson_encode_response(w.data, w.len, &spec, head,
	    &body, &hl, err, sizeof(err)), -1);
	json_decref(head);
	wbuf_release(&body);

	/* a runtime's BYTES with broken framing is malformed */
	wbuf_reset(&w);
	wbuf_u32(&w, 1);
	le32_put(sb, 9);
	ipc_put_tensor(&w, &d2, sb, 7);
	assert_null(tensorjson_decode_outputs(w.data, w.len, err,
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
		cmocka_unit_test(test_json_dtypes),
		cmocka_unit_test(test_binary_inputs),
		cmocka_unit_test(test_parse_body),
		cmocka_unit_test(test_encode_response),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
