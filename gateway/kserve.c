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
static json_t	*deployment_versions(json_t *, const char *);

/* --- handlers --- */

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
		http_reply_json(r, 200, json_pack("{s:s, s:s, s:[s]}",
		    "name", "maas", "version", "0.1.0", "extensions",
		    "binary_tensor_data"));
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
	if (admit_auth(r) == -1)
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

/* The versions a deployment serves: those of its traffic split with a
 * weight, else its one version (new ref).  A versioned route lists only
 * its own. */
static json_t *
deployment_versions(json_t *dep, const char *mver)
{
	const char	*text = json_string_value(json_object_get(dep,
			    "traffic"));
	json_t		*t, *e, *vers = json_array();
	size_t		 i;

	if (text != NULL && (t = json_loads(text, 0, NULL)) != NULL) {
		json_array_foreach(t, i, e) {
			json_t	*v = json_object_get(e, "version");
			json_t	*w = json_object_get(e, "weight");

			if (json_is_string(v) && (w == NULL ||
			    json_integer_value(w) > 0))
				json_array_append(vers, v);
		}
		json_decref(t);
	}
	if (json_array_size(vers) == 0 && mver != NULL)
		json_array_append_new(vers, json_string(mver));
	return vers;
}

static void
kserve_model_meta(struct req *r, const char *model, const char *version)
{
	const struct ipc_meta	*live = NULL;
	json_t			*dep, *mod, *meta, *out, *io = NULL;
	const char		*mname, *mver, *v = NULL, *fmt;
	char			 platform[32];

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

		live = sched_meta_version(r->srv->sched, model, version,
		    &exists);
		if (exists)
			mver = version;
	} else if ((live = sched_meta(r->srv->sched, model, &v)) != NULL)
		mver = v;
	if (version != NULL && (mver == NULL || strcmp(version, mver) != 0)) {
		json_decref(dep);
		http_error(r, 404, "model_not_found", NULL,
		    "the model '%.128s' has no version '%.64s'", model,
		    version);
		return;
	}
	mod = (mname && mver) ? db_model_get(r->srv->db, mname, mver) : NULL;
	/* What a live replica said in HELLO, else what registration
	 * recorded from the same HELLO. */
	if (live != NULL && live->format == MODEL_FORMAT_ONNX)
		meta = io = tensorjson_meta_json(live);
	else
		meta = mod ? json_object_get(mod, "meta") : NULL;
	if (meta == NULL) {
		json_decref(io);
		json_decref(dep);
		json_decref(mod);
		http_error(r, 500, "internal_error", NULL,
		    "the model '%.128s' has no metadata", model);
		return;
	}
	/* Triton names platforms "<runtime>_<format>" (onnxruntime_onnx). */
	fmt = json_string_value(json_object_get(mod, "format"));
	snprintf(platform, sizeof(platform), "maas_%s", fmt ? fmt : "onnx");
	out = json_pack("{s:s, s:o, s:s, s:O, s:O}", "name", model,
	    "versions", version != NULL ? json_pack("[s]", mver) :
	    deployment_versions(dep, mver), "platform", platform,
	    "inputs", json_object_get(meta, "inputs"),
	    "outputs", json_object_get(meta, "outputs"));
	json_decref(io);
	json_decref(dep);
	json_decref(mod);
	http_reply_json(r, 200, out);
}

struct infer_ctx {
	json_t				*id;	/* the request's "id", echoed */
	struct tensorjson_outspec	 spec;	/* JSON or binary outputs */
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
	struct tensorjson_outspec spec;
	struct wbuf		 payload;
	const uint8_t		*bin;
	const char		*raw;
	size_t			 rawlen, binlen;
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
	/* JSON, or the binary tensor extension: a JSON header, then raw
	 * tensors, both in this body (bounded by the listener). */
	raw = http_body(r, &rawlen);
	if ((body = tensorjson_parse_body(raw, rawlen, http_header(r,
	    TENSORJSON_HDR), &bin, &binlen, err, sizeof(err))) == NULL) {
		meter_error(r, 400, "invalid_json", NULL, "%s", err);
		return;
	}
	wbuf_init(&payload);
	if (tensorjson_encode_infer(meta, body, bin, binlen, &payload, &spec,
	    err, sizeof(err)) == -1) {
		json_decref(body);
		wbuf_release(&payload);
		meter_error(r, 400, "invalid_input", "inputs", "%s", err);
		return;
	}
	if (admit_job_opts(r, &opts) == -1) {
		json_decref(body);
		wbuf_release(&payload);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = json_incref(json_object_get(body, "id"));
	c->spec = spec;
	r->ctx = c;
	r->ctx_free = infer_ctx_free;
	json_decref(body);
	opts.version = v;	/* the version meta encoded it for */
	r->job = sched_submit_opts(srv->sched, model, &opts, &payload,
	    kserve_infer_done, r);
	wbuf_release(&payload);
}

static void
kserve_infer_done(void *arg, const struct sched_result *res)
{
	struct req		*r = arg;
	struct infer_ctx	*c = r->ctx;
	json_t			*resp;
	struct wbuf		 out;
	size_t			 hdr_len;
	char			 err[256];

	r->job = NULL;
	r->usage.queue_us = res->queue_us;
	r->usage.compute_us = res->compute_us;
	switch (res->status) {
	case SCHED_OK:
		break;
	case SCHED_BAD_INPUT:
	case SCHED_CONTEXT:
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
	resp = json_pack("{s:s, s:s}", "model_name", r->usage.model,
	    "model_version", res->version ? res->version : "");
	if (c != NULL && c->id != NULL)
		json_object_set(resp, "id", c->id);
	wbuf_init(&out);
	if (c == NULL || tensorjson_encode_response(res->payload, res->len,
	    &c->spec, resp, &out, &hdr_len, err, sizeof(err)) == -1) {
		json_decref(resp);
		wbuf_release(&out);
		meter_error(r, 500, "model_error", NULL, "%s", c ? err :
		    "no request context");
		return;
	}
	json_decref(resp);
	if (hdr_len != 0) {
		/* XXX: should metering fail, the JSON 500 that replaces this
		 * body still carries the header; clients read errors by
		 * status, so it is harmless. */
		snprintf(err, sizeof(err), "%zu", hdr_len);
		http_add_header(r, TENSORJSON_HDR, err);
		r->reply_ctype = "application/octet-stream";
	}
	/* meter_reply takes the buffer (xmalloc'd). */
	meter_reply(r, 200, (char *)out.data, out.len);
}
