/* tests/unit/onnx_testutil.c - see onnx_testutil.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/onnx_testutil.h"
#include "tools/onnxb.h"

struct onnx_model *
onnxt_load_try(Onnx__ModelProto *p, char *err, size_t errlen)
{
	struct onnx_model	*m;
	uint8_t			*buf;
	size_t			 len;

	buf = onnxb_pack(p, &len);
	onnxb_free(p);
	m = onnx_load(buf, len, err, errlen);
	free(buf);
	return m;
}

struct onnx_model *
onnxt_load_ok(Onnx__ModelProto *p)
{
	struct onnx_model	*m;
	char			 err[1024];

	if ((m = onnxt_load_try(p, err, sizeof(err))) == NULL)
		fail_msg("load failed: %s", err);
	return m;
}

void
onnxt_load_err(Onnx__ModelProto *p, const char *want)
{
	struct onnx_model	*m;
	char			 err[1024] = "";

	m = onnxt_load_try(p, err, sizeof(err));
	if (m != NULL || strstr(err, want) == NULL)
		fail_msg("want error containing \"%s\", got \"%s\"", want,
		    m != NULL ? "(loaded)" : err);
	onnx_free(m);
}

const float *
onnxt_run_x(struct onnx_model *m, const float *x, int nd,
    const int64_t *dims, struct ipc_tensor_desc *od)
{
	return onnxt_run_bytes(m, x, nd, dims, od);
}

const float *
onnxt_run_bytes(struct onnx_model *m, const void *x, int nd,
    const int64_t *dims, struct ipc_tensor_desc *od)
{
	struct ipc_tensor	t;
	uint64_t		nb, count = 1;
	char			err[512];

	memset(&t, 0, sizeof(t));
	snprintf(t.desc.name, sizeof(t.desc.name), "x");
	t.desc.dtype = DT_FP32;
	t.desc.ndim = nd;
	for (int i = 0; i < nd; i++)
		count *= (uint64_t)(t.desc.dims[i] = dims[i]);
	t.data = x;
	t.nbytes = count * 4;
	if (onnx_run(m, &t, 1, err, sizeof(err)) != ONNX_OK)
		fail_msg("run failed: %s", err);
	return onnx_output(m, 0, od, &nb);
}

void
onnxt_assert_shape(const struct ipc_tensor_desc *d, int nd,
    const int64_t *want)
{
	assert_int_equal(d->ndim, nd);
	for (int i = 0; i < nd; i++)
		assert_int_equal(d->dims[i], want[i]);
}
