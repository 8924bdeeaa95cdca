/* gateway/metrics.c - see metrics.h.  The text is rendered family by
 * family (the format wants each family's samples together), walking the
 * scheduler's statistics once per family: a scrape costs a few passes
 * over deployments and tenants, on the loop thread, between requests. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/wire.h"
#include "gateway/http.h"
#include "gateway/metrics.h"
#include "gateway/server.h"
#include "scheduler/sched.h"

enum family {
	FAM_REQUESTS,
	FAM_QUEUE_TIME,
	FAM_COMPUTE_TIME,
	FAM_TENANT_DEPTH,
	FAM_TENANT_WEIGHT,
	FAM_DEPTH,
	FAM_RUNNING,
	FAM_REPLICAS,
	FAM_LIVE,
	FAM_RESTARTS,
	FAM_HANGS,
	FAM_RETRIES,
	FAM_AUTOSCALE,
	FAM_AT_BUDGET,
	FAM_BATCH,
	FAM_MAX
};

static const struct {
	const char	*name;
	const char	*type;
	const char	*help;
	int		 per_tenant;
} families[FAM_MAX] = {
	[FAM_REQUESTS] = { "maas_requests_total", "counter",
	    "Requests the scheduler finished, by outcome.", 1 },
	[FAM_QUEUE_TIME] = { "maas_queue_seconds", "histogram",
	    "Time from submission to the start of computing.", 1 },
	[FAM_COMPUTE_TIME] = { "maas_compute_seconds", "histogram",
	    "Compute time of successful requests (their share of a "
	    "batch).", 1 },
	[FAM_TENANT_DEPTH] = { "maas_tenant_queue_depth", "gauge",
	    "Requests of the tenant waiting for a replica.", 1 },
	[FAM_TENANT_WEIGHT] = { "maas_tenant_weight", "gauge",
	    "Fair-queuing weight of the tenant.", 1 },
	[FAM_DEPTH] = { "maas_queue_depth", "gauge",
	    "Requests waiting for a replica.", 0 },
	[FAM_RUNNING] = { "maas_requests_running", "gauge",
	    "Requests being computed by a replica.", 0 },
	[FAM_REPLICAS] = { "maas_replicas", "gauge",
	    "Replicas the deployment should run.", 0 },
	[FAM_LIVE] = { "maas_replicas_live", "gauge",
	    "Replicas serving now.", 0 },
	[FAM_RESTARTS] = { "maas_runtime_restarts_total", "counter",
	    "Runtime processes restarted after a death.", 0 },
	[FAM_HANGS] = { "maas_runtime_hangs_total", "counter",
	    "Runtimes killed for computing past their deadline.", 0 },
	[FAM_RETRIES] = { "maas_retries_total", "counter",
	    "Requests run again after their runtime died.", 0 },
	[FAM_AUTOSCALE] = { "maas_autoscale_total", "counter",
	    "Replicas the autoscaler added (up) or removed (down).", 0 },
	[FAM_AT_BUDGET] = { "maas_autoscale_at_memory_budget", "gauge",
	    "1 while the autoscaler holds the deployment back because "
	    "another replica does not fit the node's memory budget.", 0 },
	[FAM_BATCH] = { "maas_batch_size", "histogram",
	    "Rows per inference sent to a runtime.", 0 },
};

struct render {
	struct wbuf	*out;
	enum family	 fam;
};

static void	put(struct wbuf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	put_label(struct wbuf *, const char *);
static void	put_labels(struct wbuf *, const char *dep, const char *tenant);
static void	put_time_hist(struct wbuf *, const char *name,
		    const char *dep, const char *tenant,
		    const struct sched_time_hist *);
static void	dep_cb(void *, const struct sched_deploy_stats *);
static void	memory_render(struct sched *, struct wbuf *);
static void	tenant_cb(void *, const char *,
		    const struct sched_tenant_stats *);

static void
put(struct wbuf *w, const char *fmt, ...)
{
	char	buf[256];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		wbuf_put(w, buf, (size_t)n < sizeof(buf) ? (size_t)n :
		    sizeof(buf) - 1);
}

/* A label value, quoted, with \, " and newline escaped as the format
 * requires (names are validated, but a tenant id comes from the
 * database). */
static void
put_label(struct wbuf *w, const char *v)
{
	wbuf_u8(w, '"');
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"') {
			wbuf_u8(w, '\\');
			wbuf_u8(w, (uint8_t)*v);
		} else if (*v == '\n')
			wbuf_put(w, "\\n", 2);
		else
			wbuf_u8(w, (uint8_t)*v);
	}
	wbuf_u8(w, '"');
}

static void
put_labels(struct wbuf *w, const char *dep, const char *tenant)
{
	put(w, "deployment=");
	put_label(w, dep);
	if (tenant != NULL) {
		put(w, ",tenant=");
		put_label(w, tenant);
	}
}

static void
put_time_hist(struct wbuf *w, const char *name, const char *dep,
    const char *tenant, const struct sched_time_hist *h)
{
	uint64_t	cum = 0;

	for (int i = 0; i <= SCHED_TIME_BUCKETS; i++) {
		cum += h->counts[i];
		put(w, "%s_bucket{", name);
		put_labels(w, dep, tenant);
		if (i < SCHED_TIME_BUCKETS)
			put(w, ",le=\"%g\"} %llu\n",
			    (double)sched_time_bounds_us[i] / 1e6,
			    (unsigned long long)cum);
		else
			put(w, ",le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	put(w, "%s_sum{", name);
	put_labels(w, dep, tenant);
	put(w, "} %.6f\n", (double)h->sum_us / 1e6);
	put(w, "%s_count{", name);
	put_labels(w, dep, tenant);
	put(w, "} %llu\n", (unsigned long long)h->n);
}

static void
tenant_cb(void *arg, const char *dep, const struct sched_tenant_stats *t)
{
	struct render	*rd = arg;
	struct wbuf	*w = rd->out;
	const char	*name = families[rd->fam].name;

	switch (rd->fam) {
	case FAM_REQUESTS:
		for (int st = 0; st < SCHED_STATUS_MAX; st++) {
			if (t->requests[st] == 0 && st != SCHED_OK)
				continue;
			put(w, "%s{", name);
			put_labels(w, dep, t->tenant_id);
			put(w, ",status=\"%s\"} %llu\n",
			    sched_status_name((enum sched_status)st),
			    (unsigned long long)t->requests[st]);
		}
		break;
	case FAM_QUEUE_TIME:
		put_time_hist(w, name, dep, t->tenant_id, &t->queue);
		break;
	case FAM_COMPUTE_TIME:
		put_time_hist(w, name, dep, t->tenant_id, &t->compute);
		break;
	case FAM_TENANT_DEPTH:
	case FAM_TENANT_WEIGHT:
		put(w, "%s{", name);
		put_labels(w, dep, t->tenant_id);
		put(w, "} %llu\n", (unsigned long long)(rd->fam ==
		    FAM_TENANT_DEPTH ? t->queued : t->weight));
		break;
	default:
		break;
	}
}

static void
dep_cb(void *arg, const struct sched_deploy_stats *d)
{
	struct render	*rd = arg;
	struct wbuf	*w = rd->out;
	const char	*name = families[rd->fam].name;
	uint64_t	 v, cum = 0;

	switch (rd->fam) {
	case FAM_DEPTH:
		v = d->queued;
		break;
	case FAM_RUNNING:
		v = d->running;
		break;
	case FAM_REPLICAS:
		v = (uint64_t)d->replicas;
		break;
	case FAM_LIVE:
		v = (uint64_t)d->live;
		break;
	case FAM_RESTARTS:
		v = d->restarts;
		break;
	case FAM_HANGS:
		v = d->hangs;
		break;
	case FAM_RETRIES:
		v = d->retries;
		break;
	case FAM_AT_BUDGET:
		v = d->at_memory_budget ? 1 : 0;
		break;
	case FAM_AUTOSCALE:
		put(w, "%s{", name);
		put_labels(w, d->name, NULL);
		put(w, ",direction=\"up\"} %llu\n",
		    (unsigned long long)d->scale_ups);
		put(w, "%s{", name);
		put_labels(w, d->name, NULL);
		put(w, ",direction=\"down\"} %llu\n",
		    (unsigned long long)d->scale_downs);
		return;
	case FAM_BATCH:
		for (int i = 0; i <= SCHED_ROWS_BUCKETS; i++) {
			cum += d->batch.counts[i];
			put(w, "%s_bucket{", name);
			put_labels(w, d->name, NULL);
			if (i < SCHED_ROWS_BUCKETS)
				put(w, ",le=\"%u\"} %llu\n",
				    sched_rows_bounds[i],
				    (unsigned long long)cum);
			else
				put(w, ",le=\"+Inf\"} %llu\n",
				    (unsigned long long)cum);
		}
		put(w, "%s_sum{", name);
		put_labels(w, d->name, NULL);
		put(w, "} %llu\n", (unsigned long long)d->batch.sum);
		put(w, "%s_count{", name);
		put_labels(w, d->name, NULL);
		put(w, "} %llu\n", (unsigned long long)d->batch.n);
		return;
	default:
		return;
	}
	put(w, "%s{", name);
	put_labels(w, d->name, NULL);
	put(w, "} %llu\n", (unsigned long long)v);
}

void
metrics_render(struct sched *s, struct wbuf *out)
{
	struct render	rd = { .out = out };

	for (int f = 0; f < FAM_MAX; f++) {
		rd.fam = (enum family)f;
		put(out, "# HELP %s %s\n", families[f].name, families[f].help);
		put(out, "# TYPE %s %s\n", families[f].name, families[f].type);
		if (families[f].per_tenant)
			sched_stats(s, NULL, tenant_cb, &rd);
		else
			sched_stats(s, dep_cb, NULL, &rd);
	}
	memory_render(s, out);
}

/* The node memory budget and what serving replicas reserve of it. */
static void
memory_render(struct sched *s, struct wbuf *out)
{
	struct sched_memory	m;

	sched_memory(s, &m);
	put(out, "# HELP maas_memory_budget_bytes memory the node's replicas "
	    "may reserve (0: unlimited)\n");
	put(out, "# TYPE maas_memory_budget_bytes gauge\n");
	put(out, "maas_memory_budget_bytes %llu\n",
	    (unsigned long long)m.budget);
	put(out, "# HELP maas_memory_reserved_bytes memory reserved by "
	    "serving replicas: private memory each, model files once\n");
	put(out, "# TYPE maas_memory_reserved_bytes gauge\n");
	put(out, "maas_memory_reserved_bytes %llu\n",
	    (unsigned long long)m.reserved);
}

void
metrics_handle(struct req *r)
{
	struct wbuf	out;

	wbuf_init(&out);
	metrics_render(r->srv->sched, &out);
	http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8",
	    out.data, out.len);
	wbuf_release(&out);
}
