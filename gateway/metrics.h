/* gateway/metrics.h - GET /metrics on the admin port: the scheduler's
 * counters in the Prometheus text exposition format 0.0.4.
 *
 * It takes the admin credential like every admin route (a scraper sends
 * it with `authorization: {credentials_file: admin.token}`): the labels
 * name tenants and deployments.  Families, all per deployment and, where
 * it says so, per tenant:
 *   maas_requests_total{deployment,tenant,status}	counter
 *   maas_queue_seconds{deployment,tenant}		histogram
 *   maas_compute_seconds{deployment,tenant}		histogram
 *   maas_tenant_queue_depth{deployment,tenant}		gauge
 *   maas_tenant_weight{deployment,tenant}		gauge
 *   maas_queue_depth{deployment}			gauge
 *   maas_requests_running{deployment}			gauge
 *   maas_replicas{deployment}				gauge
 *   maas_replicas_live{deployment}			gauge
 *   maas_runtime_restarts_total{deployment}		counter
 *   maas_runtime_hangs_total{deployment}		counter
 *   maas_retries_total{deployment}			counter
 *   maas_autoscale_total{deployment,direction}	counter
 *   maas_batch_size{deployment}			histogram of rows/INFER
 * status is the scheduler's outcome (sched_status_name()). */
#ifndef GATEWAY_METRICS_H
#define GATEWAY_METRICS_H
#include <stddef.h>

struct req;
struct sched;
struct wbuf;

/* Replies with the metrics text. */
void	metrics_handle(struct req *);
/* Appends the exposition text of s to out (for tests). */
void	metrics_render(struct sched *, struct wbuf *out);
#endif
