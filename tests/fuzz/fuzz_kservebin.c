/* tests/fuzz/fuzz_kservebin.c - a tenant's inference body in the binary
 * tensor extension: the input is "<Inference-Header-Content-Length
 * value>\n<body>" (no newline: no header, a JSON body).  The body is split,
 * its JSON header checked against a fixed model taking FP32, BOOL, INT64
 * and BYTES inputs, and the binary part consumed by binary_data_size; the
 * payload built is then decoded as the runtime would, and the response
 * encoder is run on the same bytes as if a runtime had sent them. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/tensorjson.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct ipc_tensor_desc	in_descs[4] = {
	{ .name = "x", .dtype = DT_FP32, .ndim = 2, .dims = { -1, 4 } },
	{ .name = "m", .dtype = DT_BOOL, .ndim = 1, .dims = { -1 } },
	{ .name = "i", .dtype = DT_INT64, .ndim = 1, .dims = { 2 } },
	{ .name = "s", .dtype = DT_BYTES, .ndim = 1, .dims = { -1 } },
};
static struct ipc_tensor_desc	out_descs[2] = {
	{ .name = "y", .dtype = DT_FP32, .ndim = 1, .dims = { -1 } },
	{ .name = "t", .dtype = DT_BYTES, .ndim = 1, .dims = { -1 } },
};
static const struct ipc_meta	meta = {
	.format = MODEL_FORMAT_ONNX, .n_inputs = 4, .n_outputs = 2,
	.inputs = in_descs, .outputs = out_descs,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tensorjson_outspec	 spec;
	struct ipc_tensor		*t;
	const uint8_t			*nl, *bin;
	struct wbuf			 w, body;
	struct rbuf			 rb;
	const char			*hdr = NULL;
	char				 hbuf[64], err[512];
	size_t				 binlen, hl;
	json_t				*j, *head;

	nl = memchr(data, '\n', size < sizeof(hbuf) ? size : sizeof(hbuf));
	if (nl != NULL) {
		memcpy(hbuf, data, (size_t)(nl - data));
		hbuf[nl - data] = '\0';
		hdr = hbuf;
		size -= (size_t)(nl - data) + 1;
		data = nl + 1;
	}
	/* The response side on the raw bytes, each way. */
	memset(&spec, 0, sizeof(spec));
	spec.binary_all = size > 0 && (data[0] & 1);
	wbuf_init(&body);
	head = json_object();
	(void)tensorjson_encode_response(data, size, &spec, head, &body, &hl,
	    err, sizeof(err));
	json_decref(head);
	wbuf_release(&body);

	j = tensorjson_parse_body((const char *)data, size, hdr, &bin, &binlen,
	    err, sizeof(err));
	if (j == NULL)
		return 0;
	wbuf_init(&w);
	if (tensorjson_encode_infer(&meta, j, bin, binlen, &w, &spec, err,
	    sizeof(err)) == 0) {
		/* What the gateway built must decode. */
		t = calloc(IPC_MAX_TENSORS, sizeof(*t));
		rbuf_init(&rb, w.data, w.len);
		if (t == NULL || ipc_get_tensors(&rb, t, IPC_MAX_TENSORS) != 4)
			abort();
		free(t);
	}
	wbuf_release(&w);
	json_decref(j);
	return 0;
}
