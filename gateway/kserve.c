/* gateway/kserve.c - see kserve.h.  Handlers only: the JSON tensor codec
 * is in tensorjson.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/admit.h"
#include "gateway/auth.h"
#include "gateway/http.h"
#include "gateway/kserve.h"
#include "gateway/tensorjson.h"
#include "gateway/meter.h"
#include "gateway/server.h"
#include "scheduler/sched.h"

static void	kserve_infer(struct req *, const char *model,
		    const char *version);
static void	kserve_infer_done(void *, const struct sched_result *);
static void	kserve_model_meta(struct req *, const char *model,
		    const char *version);
static int	kserve_auth(struct req *);
static int	kserve_job_opts(struct req *, struct sched_job_opts *);

/* Scheduling headers of an inference request: see kserve_job_opts(). */
#define TIMEOUT_DEFAULT_MS	30000
#define TIMEOUT_MAX_MS		300000

/* --- handlers --- */

/* Authenticates a tenant request; replies 401 and returns -1 on failure. */
static int
kserve_auth(struct req *r)
{
	struct auth_result	 a;
	enum auth_status	 st;

	st = auth_tenant(r->srv->db, http_header(r, "Authorization"), &a);
	if (st == AUTH_OK) {
		snprintf(r->tenant_id, sizeof(r->tenant_id), "%s", a.tenant_id);
		snprintf(r->key_id, sizeof(r->key_id), "%s", a.key_id);
		r->has_scopes = a.has_scopes;
		memcpy(r->scopes, a.scopes, sizeof(r->scopes));
		admit_touch_key(r->srv, a.key_id);
		return 0;
	}
	if (st == AUTH_ERROR) {
		http_error(r, 503, "auth_unavailable", NULL, "%s",
		    auth_status_message(st));
		return -1;
	}
	http_add_header(r, "WWW-Authenticate", "Bearer realm=\"maas\"");
	http_error(r, 401, "invalid_api_key", NULL, "%s",
	    auth_status_message(st));
	return -1;
}

void
kserve_handle(struct req *r)
{
	struct server	*srv = r->srv;
	char		**p = r->parts;
	int		 n = r->n_parts;
	const char	*model, *version = NULL, *allow = "GET";
	int		 rest;

	/* /v2, /v2/health/{live,ready} */
	if (n == 1) {
		if (r->method != EVHTTP_REQ_GET)
			goto method;
		http_reply_json(r, 200, json_pack("{s:s, s:s, s:[]}",
		    "name", "maas", "version", "0.1.0", "extensions"));
		return;
	}
	if (n == 3 && strcmp(p[1], "health") == 0) {
		bool	ready;

		if (r->method != EVHTTP_REQ_GET)
			goto method;
		if (strcmp(p[2], "live") == 0) {
			http_reply_json(r, 200, json_pack("{s:b}", "live", 1));
			return;
		}
		if (strcmp(p[2], "ready") == 0) {
			ready = !srv->draining && sched_ready(srv->sched);
			http_reply_json(r, ready ? 200 : 503,
			    json_pack("{s:b}", "ready", ready));
			return;
		}
		goto notfound;
	}
	if (n < 3 || strcmp(p[1], "models") != 0)
		goto notfound;
	/* /v2/models/{m}[/versions/{v}][/ready|/infer] */
	model = p[2];
	rest = 3;
	if (n >= 5 && strcmp(p[3], "versions") == 0) {
		version = p[4];
		rest = 5;
	}
	if (kserve_auth(r) == -1)
		return;
	if (!admit_visible(r, model)) {
		if (n == rest + 1 && strcmp(p[rest], "infer") == 0 &&
		    r->method == EVHTTP_REQ_POST) {
			r->metered = true;
			snprintf(r->usage.model, sizeof(r->usage.model), "%s",
			    model);
			snprintf(r->usage.endpoint, sizeof(r->usage.endpoint),
			    "infer");
			meter_error(r, 404, "model_not_found", "model",
			    "the model '%.128s' does not exist", model);
		} else
			http_error(r, 404, "model_not_found", "model",
			    "the model '%.128s' does not exist", model);
		return;
	}
	if (n == rest) {
		if (r->method != EVHTTP_REQ_GET)
			goto method;
		kserve_model_meta(r, model, version);
		return;
	}
	if (n == rest + 1 && strcmp(p[rest], "ready") == 0) {
		const char	*v = NULL;
		bool		 ready = false;

		if (r->method != EVHTTP_REQ_GET)
			goto method;
		if (sched_meta(srv->sched, model, &v) == NULL &&
		    !sched_exists(srv->sched, model)) {
			http_error(r, 404, "model_not_found", NULL,
			    "the model '%.128s' does not exist", model);
			return;
		}
		if (version != NULL) {
			bool	exists = false;

			ready = sched_meta_version(srv->sched, model, version,
			    &exists) != NULL;
			if (!exists) {
				http_error(r, 404, "model_not_found", NULL,
				    "the model '%.128s' has no version "
				    "'%.64s'", model, version);
				return;
			}
		}
		ready = sched_deployment_ready(srv->sched, model) &&
		    (version == NULL || ready);
		http_reply_json(r, ready ? 200 : 503, json_pack(
		    "{s:s, s:b}", "name", model, "ready", ready));
		return;
	}
	if (n == rest + 1 && strcmp(p[rest], "infer") == 0) {
		allow = "POST";
		if (r->method != EVHTTP_REQ_POST)
			goto method;
		kserve_infer(r, model, version);
		return;
	}
 notfound:
	http_error(r, 404, "not_found", NULL, "no route for '%.200s'",
	    r->path);
	return;
 method:
	http_method_not_allowed(r, allow);
}

static void
kserve_model_meta(struct req *r, const char *model, const char *version)
{
	json_t		*dep, *mod, *meta, *out;
	const char	*mname, *mver, *v = NULL;

	dep = db_deployment_get(r->srv->db, model);
	if (dep == NULL) {
		http_error(r, 404, "model_not_found", NULL,
		    "the model '%.128s' does not exist", model);
		return;
	}
	mname = json_string_value(json_object_get(dep, "model"));
	mver = json_string_value(json_object_get(dep, "version"));
	/* The version asked for, else the one with most traffic. */
	if (version != NULL) {
		bool	exists = false;

		(void)sched_meta_version(r->srv->sched, model, version,
		    &exists);
		if (exists)
			mver = version;
	} else if (sched_meta(r->srv->sched, model, &v) != NULL)
		mver = v;
	if (version != NULL && (mver == NULL || strcmp(version, mver) != 0)) {
		json_decref(dep);
		http_error(r, 404, "model_not_found", NULL,
		    "the model '%.128s' has no version '%.64s'", model,
		    version);
		return;
	}
	mod = (mname && mver) ? db_model_get(r->srv->db, mname, mver) : NULL;
	meta = mod ? json_object_get(mod, "meta") : NULL;
	if (meta == NULL) {
		json_decref(dep);
		json_decref(mod);
		http_error(r, 500, "internal_error", NULL,
		    "the model '%.128s' has no metadata", model);
		return;
	}
	out = json_pack("{s:s, s:[s], s:s, s:O, s:O}", "name", model,
	    "versions", mver, "platform",
	    json_string_value(json_object_get(mod, "format")),
	    "inputs", json_object_get(meta, "inputs"),
	    "outputs", json_object_get(meta, "outputs"));
	json_decref(dep);
	json_decref(mod);
	http_reply_json(r, 200, out);
}

struct infer_ctx {
	json_t	*id;		/* the request's "id", echoed */
};

static void
infer_ctx_free(void *p)
{
	struct infer_ctx	*c = p;

	if (c == NULL)
		return;
	json_decref(c->id);
	free(c);
}

static void
kserve_infer(struct req *r, const char *model, const char *version)
{
	struct server		*srv = r->srv;
	const struct ipc_meta	*meta;
	const char		*v = NULL;
	struct infer_ctx	*c;
	struct sched_job_opts	 opts;
	struct wbuf		 payload;
	json_t			*body;
	char			 err[512];

	r->metered = true;
	snprintf(r->usage.model, sizeof(r->usage.model), "%s", model);
	snprintf(r->usage.endpoint, sizeof(r->usage.endpoint), "infer");
	if (!sched_exists(srv->sched, model)) {
		meter_error(r, 404, "model_not_found", "model",
		    "the model '%.128s' does not exist", model);
		return;
	}
	/* Admission first: a model the tenant may not use must look exactly
	 * like one that does not exist, ready or not. */
	if (admit_model(r, model, 0) == -1)
		return;
	/* A deployment whose model loaded once takes requests even while
	 * its runtimes restart: they queue, and the scheduler refuses them
	 * itself when no runtime will be back soon. */
	if (version != NULL) {
		bool	exists = false;

		meta = sched_meta_version(srv->sched, model, version, &exists);
		if (!exists) {
			meter_error(r, 404, "model_not_found", "version",
			    "the model '%.128s' has no version '%.64s'",
			    model, version);
			return;
		}
		v = version;
	} else if ((v = sched_pick(srv->sched, model)) != NULL)
		meta = sched_meta_version(srv->sched, model, v, NULL);
	else
		meta = NULL;
	if (meta == NULL) {
		http_add_header(r, "Retry-After", "1");
		meter_error(r, 503, "model_not_ready", NULL,
		    "the model '%.128s' is not ready yet", model);
		return;
	}
	snprintf(r->usage.version, sizeof(r->usage.version), "%s", v);
	if ((body = http_parse_json(r, err, sizeof(err))) == NULL) {
		meter_error(r, 400, "invalid_json", NULL, "%s", err);
		return;
	}
	wbuf_init(&payload);
	if (tensorjson_encode_request(meta, body, &payload, err,
	    sizeof(err)) == -1) {
		json_decref(body);
		wbuf_release(&payload);
		meter_error(r, 400, "invalid_input", "inputs", "%s", err);
		return;
	}
	if (kserve_job_opts(r, &opts) == -1) {
		json_decref(body);
		wbuf_release(&payload);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = json_incref(json_object_get(body, "id"));
	r->ctx = c;
	r->ctx_free = infer_ctx_free;
	json_decref(body);
	opts.version = v;	/* the version meta encoded it for */
	r->job = sched_submit_opts(srv->sched, model, &opts, &payload,
	    kserve_infer_done, r);
	wbuf_release(&payload);
}

/* x-maas-priority (high, normal, low) and x-maas-timeout-ms (1 ms to 300
 * s to start computing, longer values capped; default 30 s), and the
 * tenant's weight.  On a bad header replies 400 (metered) and returns
 * -1. */
static int
kserve_job_opts(struct req *r, struct sched_job_opts *o)
{
	const char	*pri = http_header(r, "x-maas-priority");
	const char	*tmo = http_header(r, "x-maas-timeout-ms");
	int		 w;

	memset(o, 0, sizeof(*o));
	o->tenant_id = r->tenant_id;
	o->priority = SCHED_PRIO_NORMAL;
	o->timeout_us = (int64_t)TIMEOUT_DEFAULT_MS * 1000;
	if (pri != NULL) {
		if (strcmp(pri, "high") == 0)
			o->priority = SCHED_PRIO_HIGH;
		else if (strcmp(pri, "low") == 0)
			o->priority = SCHED_PRIO_LOW;
		else if (strcmp(pri, "normal") != 0) {
			meter_error(r, 400, "invalid_priority",
			    "x-maas-priority", "x-maas-priority must be "
			    "'high', 'normal' or 'low'");
			return -1;
		}
	}
	if (tmo != NULL) {
		char		*end;
		long long	 v;

		errno = 0;
		v = strtoll(tmo, &end, 10);
		if (errno == ERANGE && v > 0)
			v = TIMEOUT_MAX_MS;
		else if (errno != 0 || end == tmo || *end != '\0' || v < 1) {
			meter_error(r, 400, "invalid_timeout",
			    "x-maas-timeout-ms", "x-maas-timeout-ms must be a "
			    "positive integer of milliseconds");
			return -1;
		}
		if (v > TIMEOUT_MAX_MS)
			v = TIMEOUT_MAX_MS;
		o->timeout_us = (int64_t)v * 1000;
	}
	/* The weight is read per request so an admin change applies at
	 * once; it is one indexed read on the read connection. */
	if (db_tenant_weight(r->srv->db, r->tenant_id, &w) == 1)
		o->weight = (unsigned)w;
	return 0;
}

static void
kserve_infer_done(void *arg, const struct sched_result *res)
{
	struct req		*r = arg;
	struct infer_ctx	*c = r->ctx;
	json_t			*outs, *resp;
	char			 err[256];
	char			*s;

	r->job = NULL;
	r->usage.queue_us = res->queue_us;
	r->usage.compute_us = res->compute_us;
	switch (res->status) {
	case SCHED_OK:
		break;
	case SCHED_BAD_INPUT:
		meter_error(r, 400, "invalid_input", "inputs", "%s",
		    res->message);
		return;
	case SCHED_TOO_LARGE:
		meter_error(r, 413, "request_too_large", NULL, "%s",
		    res->message);
		return;
	case SCHED_INTERNAL:
		meter_error(r, 500, "model_error", NULL,
		    "the model failed: %s", res->message);
		return;
	case SCHED_QUARANTINED:
		meter_error(r, 400, "input_crashes_model", "inputs",
		    "%s; it will not be retried", res->message);
		return;
	case SCHED_TIMED_OUT:
		meter_error(r, 504, "deadline_exceeded", NULL, "%s",
		    res->message);
		return;
	case SCHED_OVERLOADED:
		snprintf(err, sizeof(err), "%d", res->retry_after_s > 0 ?
		    res->retry_after_s : 1);
		http_add_header(r, "Retry-After", err);
		meter_error(r, 503, "overloaded", NULL, "%s", res->message);
		return;
	case SCHED_UNAVAILABLE:
	case SCHED_SHUTDOWN:
	case SCHED_CANCELLED:
	case SCHED_STATUS_MAX:
		snprintf(err, sizeof(err), "%d", res->retry_after_s > 0 ?
		    res->retry_after_s : 1);
		http_add_header(r, "Retry-After", err);
		meter_error(r, 503, "model_unavailable", NULL, "%s",
		    res->message);
		return;
	}
	if ((outs = tensorjson_decode_outputs(res->payload, res->len, err,
	    sizeof(err))) == NULL) {
		meter_error(r, 500, "model_error", NULL, "%s", err);
		return;
	}
	resp = json_pack("{s:s, s:s, s:o}", "model_name", r->usage.model,
	    "model_version", res->version ? res->version : "",
	    "outputs", outs);
	if (c != NULL && c->id != NULL)
		json_object_set(resp, "id", c->id);
	s = json_dumps(resp, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(resp);
	if (s == NULL) {
		meter_error(r, 500, "internal_error", NULL,
		    "cannot encode the response");
		return;
	}
	meter_reply(r, 200, s, strlen(s));
}
