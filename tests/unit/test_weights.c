/* tests/unit/test_weights.c - weights left in the model's files: aligned
 * raw_data is used in place (borrowed) and not counted as private memory,
 * misaligned raw_data and copies are not borrowed, external data is
 * bounds-checked against its file, malformed layouts are refused; and
 * runtime/modelfile.c keeps external data files inside the model's
 * directory. */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/xmalloc.h"
#include "runtime/modelfile.h"
#include "runtime/onnx/graph.h"
#include "tools/onnxb.h"

static float	ext_data[64];	/* the "w.bin" of ext_fn */

static const void *
ext_fn(void *arg, const char *loc, size_t *len, char *err, size_t errlen)
{
	(void)arg;
	if (strcmp(loc, "w.bin") != 0) {
		snprintf(err, errlen, "no '%s'", loc);
		return NULL;
	}
	*len = sizeof(ext_data);
	return ext_data;
}

/* x [N,4] -> Gemm(W [3,4], transB) -> y [N,3]. */
static Onnx__ModelProto *
gemm_model(void)
{
	static const char *const in[] = { "x", "W", NULL };
	Onnx__ModelProto	*p = onnxb_model(8, 13, "g");
	Onnx__NodeProto		*n;
	int64_t			 xd[2] = { ONNXB_DYN, 4 }, yd[2] = { ONNXB_DYN,
				    3 }, wd[2] = { 3, 4 };
	float			 w[12];

	for (int i = 0; i < 12; i++)
		w[i] = (float)i;
	onnxb_input(p, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, xd, "N");
	onnxb_output(p, "y", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, yd, "N");
	n = onnxb_node(p, "Gemm", "gemm", in, "y");
	onnxb_attr_int(n, "transB", 1);
	onnxb_init_f32(p, "W", 2, wd, w);
	return p;
}

static struct onnx_model *
load(const uint8_t *buf, size_t len, bool borrow, char *err, size_t errlen)
{
	struct onnx_source	src = { .buf = buf, .len = len,
				    .borrow = borrow, .ext = ext_fn };

	return onnx_load_source(&src, err, errlen);
}

static const struct onnx_value *
value(const struct onnx_model *m, const char *name)
{
	for (size_t i = 0; i < m->n_vals; i++)
		if (strcmp(m->vals[i].name, name) == 0)
			return &m->vals[i];
	fail_msg("no value '%s'", name);
	return NULL;
}

static bool
inside(const void *p, const uint8_t *buf, size_t len)
{
	return (const uint8_t *)p >= buf && (const uint8_t *)p < buf + len;
}

static void
test_borrowed(void **state)
{
	Onnx__ModelProto	*p = gemm_model();
	struct onnx_model	*m;
	uint8_t			*buf, *copy;
	size_t			 len;
	char			 err[512];

	(void)state;
	assert_int_equal(onnxb_align(p, 64), 0);
	buf = onnxb_pack(p, &len);
	/* A 64-aligned copy, as a page-aligned mapping would be. */
	assert_int_equal(posix_memalign((void **)&copy, 64, len), 0);
	memcpy(copy, buf, len);
	m = load(copy, len, true, err, sizeof(err));
	assert_non_null(m);
	assert_true(inside(value(m, "W")->data, copy, len));
	assert_true(m->const_bytes == 0);
	assert_int_equal(onnx_run_dummy(m, 2, err, sizeof(err)), ONNX_OK);
	onnx_free(m);

	/* Not borrowed: the weights are copied and counted. */
	m = load(copy, len, false, err, sizeof(err));
	assert_non_null(m);
	assert_false(inside(value(m, "W")->data, copy, len));
	assert_int_equal(m->const_bytes, 12 * sizeof(float));
	onnx_free(m);

	/* Misaligned by one byte: copied, not borrowed. */
	free(copy);
	assert_int_equal(posix_memalign((void **)&copy, 64, len + 1), 0);
	memcpy(copy + 1, buf, len);
	m = load(copy + 1, len, true, err, sizeof(err));
	assert_non_null(m);
	assert_false(inside(value(m, "W")->data, copy + 1, len));
	assert_int_equal(m->const_bytes, 12 * sizeof(float));
	onnx_free(m);
	free(copy);
	free(buf);
	onnxb_free(p);
}

static void
set_external(Onnx__TensorProto *t, const char *loc, const char *off,
    const char *len)
{
	const char	*k[3] = { "location", "offset", "length" };
	const char	*v[3] = { loc, off, len };

	free(t->raw_data.data);
	t->raw_data.data = NULL;
	t->raw_data.len = 0;
	t->has_raw_data = 0;
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	for (int i = 0; i < 3; i++) {
		Onnx__StringStringEntryProto	*e;

		if (v[i] == NULL)
			continue;
		e = xmalloc(sizeof(*e));
		onnx__string_string_entry_proto__init(e);
		e->key = xstrdup(k[i]);
		e->value = xstrdup(v[i]);
		t->external_data = xreallocarray(t->external_data,
		    t->n_external_data + 1, sizeof(*t->external_data));
		t->external_data[t->n_external_data++] = e;
	}
}

/* Loads the Gemm model with W external as given; false and err if
 * refused. */
static bool
load_ext(const char *loc, const char *off, const char *len, char *err,
    size_t errlen, bool with_ext)
{
	Onnx__ModelProto	*p = gemm_model();
	struct onnx_source	 src = { 0 };
	struct onnx_model	*m;
	uint8_t			*buf;
	size_t			 n;

	set_external(p->graph->initializer[0], loc, off, len);
	buf = onnxb_pack(p, &n);
	src.buf = buf;
	src.len = n;
	src.borrow = true;
	src.ext = with_ext ? ext_fn : NULL;
	err[0] = '\0';
	m = onnx_load_source(&src, err, errlen);
	onnx_free(m);
	free(buf);
	onnxb_free(p);
	return m != NULL;
}

static void
test_external(void **state)
{
	Onnx__ModelProto	*p = gemm_model();
	struct onnx_source	 src = { .borrow = true, .ext = ext_fn };
	struct onnx_model	*m;
	uint8_t			*buf;
	char			 err[512];

	(void)state;
	for (int i = 0; i < 64; i++)
		ext_data[i] = (float)i;
	/* At offset 16: W is elements 4..15 of the file. */
	set_external(p->graph->initializer[0], "w.bin", "16", "48");
	buf = onnxb_pack(p, &src.len);
	src.buf = buf;
	m = onnx_load_source(&src, err, sizeof(err));
	assert_non_null(m);
	assert_ptr_equal(value(m, "W")->data, &ext_data[4]);
	assert_true(m->const_bytes == 0);
	onnx_free(m);
	free(buf);
	onnxb_free(p);

	assert_false(load_ext("w.bin", "256", "48", err, sizeof(err), true));
	assert_string_equal(err, "initializer 'W': external data at offset "
	    "256, length 48, is past the end of its file (256 bytes)");
	assert_false(load_ext("w.bin", "0", "1000", err, sizeof(err), true));
	assert_non_null(strstr(err, "past the end"));
	/* Without length: the rest of the file, which is too much. */
	assert_false(load_ext("w.bin", "16", NULL, err, sizeof(err), true));
	assert_string_equal(err, "initializer 'W': raw_data holds 240 bytes, "
	    "expected 48");
	assert_false(load_ext("w.bin", "-1", "48", err, sizeof(err), true));
	assert_string_equal(err, "initializer 'W': external data offset is "
	    "not a number");
	assert_false(load_ext(NULL, "0", "48", err, sizeof(err), true));
	assert_string_equal(err, "initializer 'W': external data has no "
	    "location");
	assert_false(load_ext("x.bin", "0", "48", err, sizeof(err), true));
	assert_string_equal(err, "initializer 'W': no 'x.bin'");
	assert_false(load_ext("w.bin", "0", "48", err, sizeof(err), false));
	assert_string_equal(err, "initializer 'W': external data cannot be "
	    "read here");
}

static void
test_malformed(void **state)
{
	Onnx__ModelProto	*p = gemm_model();
	uint8_t			*buf, *two;
	size_t			 len;
	char			 err[512];

	(void)state;
	buf = onnxb_pack(p, &len);
	/* The same ModelProto twice: its graph field appears twice, which
	 * protobuf-c would merge. */
	two = xmalloc(2 * len);
	memcpy(two, buf, len);
	memcpy(two + len, buf, len);
	assert_null(load(two, 2 * len, true, err, sizeof(err)));
	assert_string_equal(err, "not a valid ONNX model: the graph appears "
	    "twice");
	/* Truncated inside the weights. */
	assert_null(load(buf, len - 8, true, err, sizeof(err)));
	assert_string_equal(err, "not a valid ONNX model: protobuf parse "
	    "failed");
	free(two);
	free(buf);
	onnxb_free(p);
}

static void
test_modelfile_external(void **state)
{
	struct modelfile	 mf;
	char			 dir[] = "/tmp/test_weights.XXXXXX";
	char			 path[256], err[512], cmd[600];
	const void		*a, *b;
	size_t			 len;
	FILE			*f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/m/model.onnx", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("not really a model", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s/m/w.bin", dir);
	assert_non_null(f = fopen(cmd, "w"));
	fputs("0123456789abcdef", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s/outside.bin", dir);
	assert_non_null(f = fopen(cmd, "w"));
	fputs("secret", f);
	fclose(f);
	snprintf(err, sizeof(err), "%s/m/link.bin", dir);
	assert_int_equal(symlink(cmd, err), 0);
	snprintf(err, sizeof(err), "%s/m/empty.bin", dir);
	assert_non_null(f = fopen(err, "w"));
	fclose(f);

	assert_int_equal(modelfile_open(&mf, path, 1 << 20, err, sizeof(err)),
	    0);
	assert_non_null(a = modelfile_external(&mf, "w.bin", &len, err,
	    sizeof(err)));
	assert_int_equal(len, 16);
	assert_memory_equal(a, "0123456789abcdef", 16);
	b = modelfile_external(&mf, "w.bin", &len, err, sizeof(err));
	assert_ptr_equal(a, b);		/* mapped once */
	assert_true(modelfile_mapped(&mf) == 18 + 16);
	assert_null(modelfile_external(&mf, "../outside.bin", &len, err,
	    sizeof(err)));
	assert_string_equal(err, "external data '../outside.bin' names a "
	    "parent directory");
	assert_null(modelfile_external(&mf, "a/../../outside.bin", &len, err,
	    sizeof(err)));
	assert_null(modelfile_external(&mf, cmd, &len, err, sizeof(err)));
	assert_non_null(strstr(err, "is an absolute path"));
	assert_null(modelfile_external(&mf, "link.bin", &len, err,
	    sizeof(err)));
	assert_string_equal(err, "external data 'link.bin' is outside the "
	    "model's directory");
	assert_null(modelfile_external(&mf, "empty.bin", &len, err,
	    sizeof(err)));
	assert_string_equal(err, "external data 'empty.bin' is empty");
	assert_null(modelfile_external(&mf, "", &len, err, sizeof(err)));
	modelfile_seal(&mf);
	assert_null(modelfile_external(&mf, "other.bin", &len, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "cannot be opened any more"));
	/* Still mapped after sealing. */
	assert_memory_equal(a, "0123456789abcdef", 16);
	modelfile_close(&mf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_borrowed),
		cmocka_unit_test(test_external),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_modelfile_external),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
