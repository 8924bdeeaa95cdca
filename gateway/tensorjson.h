/* gateway/tensorjson.h - KServe v2 JSON tensors <-> IPC tensor lists.
 * Pure functions (no I/O), exported for the handlers, tests and fuzzing. */
#ifndef GATEWAY_TENSORJSON_H
#define GATEWAY_TENSORJSON_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/ipc.h"
#include "common/wire.h"

#define TENSORJSON_MAX_ELEMENTS	(64ULL << 20)	/* per request, all inputs */

/* Validates a KServe JSON inference request against the model's metadata
 * and appends the IPC INFER payload to out.  -1 with a message in err
 * (naming the input and what was expected) on a bad request. */
int	tensorjson_encode_request(const struct ipc_meta *, json_t *request,
	    struct wbuf *out, char *err, size_t errsz);
/* Turns an INFER_OK tensor list into the "outputs" JSON array; NULL with
 * a message in err if the runtime's payload is malformed. */
json_t	*tensorjson_decode_outputs(const uint8_t *payload, size_t len,
	    char *err, size_t errsz);
/* The metadata JSON {"inputs":[{"name","datatype","shape"}],"outputs":..}
 * stored for a model at registration. */
json_t	*tensorjson_meta_json(const struct ipc_meta *);
#endif
