/* gateway/tensorjson.h - KServe v2 tensors (JSON and the binary tensor
 * extension) <-> IPC tensor lists.  Pure functions (no I/O), exported for
 * the handlers, tests and fuzzing.
 *
 * The binary extension (Triton's): a request whose header
 * Inference-Header-Content-Length is N has an N-byte JSON object, then
 * the raw bytes of every input that has "parameters":{"binary_data_size":
 * S} (no "data"), concatenated in the order of "inputs".  Raw tensors are
 * little-endian, row-major; BOOL is one byte 0 or 1; BYTES is, per
 * element, a u32 little-endian length and the bytes.  Outputs asked with
 * "parameters":{"binary_data":true} (or all of them, with the request's
 * "parameters":{"binary_data_output":true}) come back the same way.
 * BYTES tensors travel over IPC in that same length-prefixed form. */
#ifndef GATEWAY_TENSORJSON_H
#define GATEWAY_TENSORJSON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/ipc.h"
#include "common/wire.h"

#define TENSORJSON_MAX_ELEMENTS	(64ULL << 20)	/* per request, all inputs */
#define TENSORJSON_HDR		"Inference-Header-Content-Length"

/* How the response carries the outputs, read from the request. */
struct tensorjson_outspec {
	bool		binary_all;	/* request's binary_data_output */
	uint32_t	n;		/* outputs named in the request, 0: all */
	int8_t		binary[IPC_MAX_TENSORS]; /* per named output: -1 unset */
};

/* Splits an inference request body.  hdrlen is the value of the
 * Inference-Header-Content-Length header or NULL: with it the first
 * hdrlen bytes are the JSON object and the rest binary tensor data,
 * without it the whole body is JSON.  Returns the object (new reference)
 * and sets *bin, *binlen to the binary part (borrowed from body; empty
 * without the header), or NULL with the reason in err. */
json_t	*tensorjson_parse_body(const char *body, size_t len,
	    const char *hdrlen, const uint8_t **bin, size_t *binlen,
	    char *err, size_t errsz);
/* Validates an inference request against the model's metadata and
 * appends the IPC INFER payload to out; bin/binlen is the binary part of
 * the body (NULL/0 if none), which the inputs' binary_data_size must
 * cover exactly.  Fills *spec (may be NULL) for the response.  -1 with a
 * message in err (naming the input or output and what was expected) on a
 * bad request. */
int	tensorjson_encode_infer(const struct ipc_meta *, json_t *request,
	    const uint8_t *bin, size_t binlen, struct wbuf *out,
	    struct tensorjson_outspec *spec, char *err, size_t errsz);
/* The same for a JSON-only request. */
int	tensorjson_encode_request(const struct ipc_meta *, json_t *request,
	    struct wbuf *out, char *err, size_t errsz);
/* Turns an INFER_OK tensor list into the response body appended to
 * body: head (borrowed, e.g. model_name, model_version, id) gets an
 * "outputs" array, and outputs the spec asks in binary are appended raw
 * after the JSON.  *hdr_len is the JSON's length when anything binary
 * follows (the Inference-Header-Content-Length to send), else 0 (the body
 * is plain JSON).  -1 with a message in err if the runtime's payload is
 * malformed or an output cannot be written as JSON (BYTES that are not
 * UTF-8, a UINT64 beyond JSON's integers). */
int	tensorjson_encode_response(const uint8_t *payload, size_t len,
	    const struct tensorjson_outspec *, json_t *head, struct wbuf *body,
	    size_t *hdr_len, char *err, size_t errsz);
/* Turns an INFER_OK tensor list into the "outputs" JSON array; NULL with
 * a message in err if the runtime's payload is malformed. */
json_t	*tensorjson_decode_outputs(const uint8_t *payload, size_t len,
	    char *err, size_t errsz);
/* The metadata JSON {"inputs":[{"name","datatype","shape"}],"outputs":..}
 * stored for a model at registration. */
json_t	*tensorjson_meta_json(const struct ipc_meta *);
#endif
