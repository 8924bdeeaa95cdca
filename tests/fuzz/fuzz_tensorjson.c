/* tests/fuzz/fuzz_tensorjson.c - a tenant's inference body: JSON parsing
 * with the gateway's flags, then the KServe tensor codec against a fixed
 * two-input model; and the output decoder on the same bytes, as if a
 * runtime had sent them. */
#include <stddef.h>
#include <stdint.h>

#include "gateway/tensorjson.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct ipc_tensor_desc	in_descs[2] = {
	{ .name = "input", .dtype = DT_FP32, .ndim = 2, .dims = { -1, 4 } },
	{ .name = "mask", .dtype = DT_BOOL, .ndim = 1, .dims = { -1 } },
};
static struct ipc_tensor_desc	out_descs[1] = {
	{ .name = "output", .dtype = DT_FP32, .ndim = 1, .dims = { -1 } },
};
static const struct ipc_meta	meta = {
	.format = MODEL_FORMAT_ONNX, .n_inputs = 2, .n_outputs = 1,
	.inputs = in_descs, .outputs = out_descs,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t	 je;
	json_t		*j, *o;
	struct wbuf	 w;
	char		 err[512];

	if ((o = tensorjson_decode_outputs(data, size, err, sizeof(err))))
		json_decref(o);
	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return 0;
	wbuf_init(&w);
	if (json_is_object(j))
		(void)tensorjson_encode_request(&meta, j, &w, err, sizeof(err));
	wbuf_release(&w);
	json_decref(j);
	return 0;
}
