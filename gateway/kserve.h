/* gateway/kserve.h - the KServe v2 / Triton inference protocol on the
 * tenant port: server and model metadata, readiness, JSON inference.
 * The JSON <-> IPC tensor conversion is exported for tests and fuzzing. */
#ifndef GATEWAY_KSERVE_H
#define GATEWAY_KSERVE_H
#include <stddef.h>

#include <jansson.h>

#include "common/ipc.h"
#include "common/wire.h"

struct req;

#define KSERVE_MAX_ELEMENTS	(64ULL << 20)	/* per request, all inputs */

/* Routes GET /v2..., POST /v2/models/{m}[/versions/{v}]/infer. */
void	kserve_handle(struct req *);

/* Validates a KServe JSON inference request against the model's metadata
 * and appends the IPC INFER payload to out.  -1 with a message in err
 * (naming the input and what was expected) on a bad request. */
int	kserve_encode_request(const struct ipc_meta *, json_t *request,
	    struct wbuf *out, char *err, size_t errsz);
/* Turns an INFER_OK tensor list into the "outputs" JSON array; NULL with
 * a message in err if the runtime's payload is malformed. */
json_t	*kserve_decode_outputs(const uint8_t *payload, size_t len,
	    char *err, size_t errsz);
/* The metadata JSON {"inputs":[{"name","datatype","shape"}],"outputs":..}
 * stored for a model at registration. */
json_t	*kserve_meta_json(const struct ipc_meta *);
#endif
