/* tests/unit/onnx_testutil.h - helpers the ONNX unit tests share: load a
 * graph built with tools/onnxb, expect its load to fail, run it on one
 * FP32 input.  Failures end the current cmocka test. */
#ifndef TESTS_UNIT_ONNX_TESTUTIL_H
#define TESTS_UNIT_ONNX_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

#include "runtime/onnx/onnx.h"

/* Packs p (freed) into an exact-size buffer, so ASan catches any read
 * past its end, and loads it; NULL with the message in err. */
struct onnx_model	*onnxt_load_try(Onnx__ModelProto *p, char *err,
			    size_t errlen);
/* As onnxt_load_try; a failed load fails the test. */
struct onnx_model	*onnxt_load_ok(Onnx__ModelProto *p);
/* The load must fail with a message containing want. */
void			 onnxt_load_err(Onnx__ModelProto *p, const char *want);
/* Runs m on the FP32 input "x" (nd dims) and returns output 0 and its
 * desc; a failed run fails the test. */
const float		*onnxt_run_x(struct onnx_model *m, const float *x,
			    int nd, const int64_t *dims,
			    struct ipc_tensor_desc *od);
/* As onnxt_run_x, on the FP32 elements at x, which may be unaligned. */
const float		*onnxt_run_bytes(struct onnx_model *m, const void *x,
			    int nd, const int64_t *dims,
			    struct ipc_tensor_desc *od);
void			 onnxt_assert_shape(const struct ipc_tensor_desc *d,
			    int nd, const int64_t *want);
#endif
