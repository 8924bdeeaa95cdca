/* gateway/kserve.h - the KServe v2 / Triton inference protocol on the
 * tenant port: server and model metadata, readiness, JSON inference. */
#ifndef GATEWAY_KSERVE_H
#define GATEWAY_KSERVE_H
struct req;

/* Routes GET /v2..., POST /v2/models/{m}[/versions/{v}]/infer. */
void	kserve_handle(struct req *);
#endif
