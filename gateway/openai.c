/* gateway/openai.c - see openai.h.
 *
 * One request is one struct oai_ctx hung on the req.  Chat and
 * completions run as one streaming job: TOKEN frames either go out at
 * once as SSE chunks or are gathered for one JSON answer; DONE carries
 * the exact usage, which is metered before the last byte (the JSON body,
 * or the stream's "data: [DONE]") is sent.  Embeddings run one job per
 * input, one after the other.
 *
 * A stream's status and headers go out with its first token, so that
 * anything failing before it (queue full, deadline, prompt too long) is
 * an ordinary JSON error; a failure after it is an SSE error event.  A
 * client that closes a stream cancels its job; DONE still comes back
 * with the tokens produced, and those are metered and billed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/http.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/admit.h"
#include "gateway/http.h"
#include "gateway/meter.h"
#include "gateway/oaireq.h"
#include "gateway/openai.h"
#include "gateway/server.h"
#include "scheduler/sched.h"

#define MODELS_MAX		1000	/* listed by GET /v1/models */
#define CTX_FALLBACK		4096	/* reservation cap before HELLO */
#define TEXT_MAX		(64U << 20)	/* gathered completion text */

struct oai_ctx {
	struct req		*r;
	struct oai_req		 q;		/* the validated request */
	char			 id[48];	/* chatcmpl-..., cmpl-... */
	int64_t			 created;	/* Unix seconds */
	char			 fingerprint[80];	/* system_fingerprint */
	uint64_t		 seed;		/* when the request has none */
	struct sched_job	*job;		/* while a runtime has it */
	char			 model[OAI_MODEL_MAX];
	char			 version[64];
	bool			 finished;	/* done was called */
	bool			 cancelled;	/* CANCEL sent */
	/* gathered answer (not streamed) */
	char			*text;
	size_t			 len, cap;
	json_t			*lp;		/* logprobs being built */
	bool			 bad;		/* a runtime frame did not decode */
	/* streaming */
	bool			 started;	/* status and headers sent */
	bool			 in_cb;		/* inside a scheduler callback */
	bool			 cancel;	/* the client left during in_cb */
	size_t			 sent;		/* bytes streamed */
	size_t			 text_off;	/* text bytes streamed */
	/* embeddings */
	uint32_t		 input;		/* being computed */
	json_t			*data;		/* finished vectors */
	uint64_t		 emb_prompt;	/* tokens of finished inputs */
	struct sched_job_opts	 opts;
};

static void	oai_models(struct req *);
static void	oai_generate(struct req *, enum oai_kind);
static void	oai_ctx_free(void *);
static int	oai_submit(struct oai_ctx *);
static void	oai_on_token(void *, const uint8_t *, size_t);
static void	oai_on_done(void *, const struct sched_result *);
static void	oai_on_close(struct req *);
static void	oai_emb_done(void *, const struct sched_result *);
static void	oai_fail(struct oai_ctx *, const struct sched_result *);
static void	oai_reply_json(struct oai_ctx *, const struct ipc_gen_done *);
static void	oai_stream_done(struct oai_ctx *, const struct ipc_gen_done *);
static void	oai_stream_end(struct req *, bool);
static void	oai_stream_end_error(struct req *, bool);
static void	oai_stream_start(struct oai_ctx *);
static void	oai_stream_send(struct oai_ctx *, json_t *);
static json_t	*oai_chunk(struct oai_ctx *, json_t *choice);
static void	oai_append(struct oai_ctx *, const char *, size_t);

/* --- routing --- */

void
openai_handle(struct req *r)
{
	char	**p = r->parts;
	int	  n = r->n_parts;

	if (n == 2 && strcmp(p[1], "models") == 0) {
		if (r->method != EVHTTP_REQ_GET) {
			http_method_not_allowed(r, "GET");
			return;
		}
		oai_models(r);
		return;
	}
	if ((n == 3 && strcmp(p[1], "chat") == 0 &&
	    strcmp(p[2], "completions") == 0) ||
	    (n == 2 && (strcmp(p[1], "completions") == 0 ||
	    strcmp(p[1], "embeddings") == 0))) {
		if (r->method != EVHTTP_REQ_POST) {
			http_method_not_allowed(r, "POST");
			return;
		}
		oai_generate(r, n == 3 ? OAI_CHAT :
		    strcmp(p[1], "completions") == 0 ? OAI_COMPLETION :
		    OAI_EMBEDDING);
		return;
	}
	if (n == 3 && strcmp(p[1], "models") == 0) {
		if (r->method != EVHTTP_REQ_GET) {
			http_method_not_allowed(r, "GET");
			return;
		}
		if (admit_auth(r) == -1)
			return;
		if (!admit_visible(r, p[2]) ||
		    !sched_exists(r->srv->sched, p[2])) {
			http_error(r, 404, "model_not_found", "model",
			    "The model '%.128s' does not exist", p[2]);
			return;
		}
		http_reply_json(r, 200, json_pack("{s:s, s:s, s:I, s:s}",
		    "id", p[2], "object", "model", "created",
		    (json_int_t)(r->ts_us / 1000000), "owned_by", "maas"));
		return;
	}
	http_error(r, 404, "not_found", NULL, "no route for '%.200s'",
	    r->path);
}

/* The deployments this caller may use, in OpenAI's list shape. */
static void
oai_models(struct req *r)
{
	json_t		*out, *page, *row;
	const char	*name, *after = NULL;
	char		 cursor[OAI_MODEL_MAX] = "";
	size_t		 i, listed = 0;

	if (admit_auth(r) == -1)
		return;
	out = json_array();
	for (;;) {
		page = db_deployment_list(r->srv->db, after, 100);
		if (page == NULL) {
			json_decref(out);
			http_error(r, 503, "db_unavailable", NULL,
			    "the model list cannot be read; retry");
			return;
		}
		json_array_foreach(json_object_get(page, "data"), i, row) {
			name = json_string_value(json_object_get(row, "name"));
			if (name == NULL)
				continue;
			snprintf(cursor, sizeof(cursor), "%s", name);
			if (!admit_visible(r, name) ||
			    !sched_exists(r->srv->sched, name))
				continue;
			json_array_append_new(out, json_pack("{s:s, s:s, s:I, "
			    "s:s}", "id", name, "object", "model", "created",
			    json_integer_value(json_object_get(row,
			    "created_at")), "owned_by", "maas"));
			listed++;
		}
		if (!json_is_true(json_object_get(page, "has_more")) ||
		    listed >= MODELS_MAX || cursor[0] == '\0') {
			json_decref(page);
			break;
		}
		json_decref(page);
		after = cursor;
	}
	http_reply_json(r, 200, json_pack("{s:s, s:o}", "object", "list",
	    "data", out));
}

/* --- chat, completions, embeddings --- */

static void
oai_ctx_free(void *arg)
{
	struct oai_ctx	*c = arg;

	if (c == NULL)
		return;
	oai_req_release(&c->q);
	free(c->text);
	json_decref(c->lp);
	json_decref(c->data);
	free(c);
}

static void
oai_generate(struct req *r, enum oai_kind kind)
{
	struct server		*srv = r->srv;
	const struct ipc_meta	*meta = NULL;
	const char		*v;
	struct oai_ctx		*c;
	struct oai_error	 e;
	json_t			*body;
	uint64_t		 tokens, ctx, want;
	char			 err[512];

	if (admit_auth(r) == -1)
		return;
	r->metered = true;
	snprintf(r->usage.endpoint, sizeof(r->usage.endpoint), "%s",
	    kind == OAI_CHAT ? "chat" : kind == OAI_COMPLETION ?
	    "completions" : "embeddings");
	if ((body = http_parse_json(r, err, sizeof(err))) == NULL) {
		meter_error(r, 400, "invalid_json", NULL, "%s", err);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->r = r;
	r->ctx = c;
	r->ctx_free = oai_ctx_free;
	if (oai_req_parse(&c->q, kind, body, &e) == -1) {
		json_decref(body);
		meter_error(r, 400, e.code, e.param[0] ? e.param : NULL, "%s",
		    e.message);
		return;
	}
	json_decref(body);
	snprintf(c->model, sizeof(c->model), "%s", c->q.model);
	snprintf(r->usage.model, sizeof(r->usage.model), "%s", c->model);
	if (!sched_exists(srv->sched, c->model)) {
		meter_error(r, 404, "model_not_found", "model",
		    "The model '%.128s' does not exist", c->model);
		return;
	}
	if ((v = sched_pick(srv->sched, c->model)) != NULL)
		meta = sched_meta_version(srv->sched, c->model, v, NULL);
	/* Reserve the most this request can use: the prompt's upper bound
	 * and the completion, never more than the context holds. */
	ctx = meta != NULL && meta->llm.n_ctx > 0 ? meta->llm.n_ctx :
	    CTX_FALLBACK;
	tokens = oai_req_prompt_bound(&c->q);
	if (kind == OAI_EMBEDDING) {
		if (tokens > ctx * c->q.n_inputs)
			tokens = ctx * c->q.n_inputs;
	} else {
		want = c->q.has_max_tokens ? c->q.max_tokens : ctx;
		tokens = tokens + want > ctx ? ctx : tokens + want;
	}
	if (admit_model(r, c->model, (int64_t)tokens) == -1)
		return;
	if (meta == NULL) {
		http_add_header(r, "Retry-After", "1");
		meter_error(r, 503, "model_not_ready", NULL,
		    "the model '%.128s' is not ready yet", c->model);
		return;
	}
	snprintf(r->usage.version, sizeof(r->usage.version), "%s", v);
	if (meta->format != MODEL_FORMAT_GGUF) {
		meter_error(r, 400, "unsupported_model", "model", "The model "
		    "'%.128s' is a tensor model; call it with POST "
		    "/v2/models/%.128s/infer", c->model, c->model);
		return;
	}
	if (kind == OAI_CHAT && meta->llm.chat_template.n == 0) {
		meter_error(r, 400, "unsupported_model", "model", "The model "
		    "'%.128s' has no chat template; use /v1/completions",
		    c->model);
		return;
	}
	if (kind != OAI_EMBEDDING && c->q.has_max_tokens &&
	    c->q.max_tokens >= ctx) {
		meter_error(r, 400, "context_length_exceeded", "max_tokens",
		    "This model's maximum context length is "
		    "%llu tokens; max_tokens must be below it, got %u.",
		    (unsigned long long)ctx, c->q.max_tokens);
		return;
	}
	if (admit_job_opts(r, &c->opts) == -1)
		return;
	snprintf(c->version, sizeof(c->version), "%s", v);
	c->opts.version = c->version;	/* the one meta describes */
	c->created = r->ts_us / 1000000;
	/* "req_" + 24 hex: the hex is the completion id's tail. */
	snprintf(c->id, sizeof(c->id), "%s%s", kind == OAI_CHAT ?
	    "chatcmpl-" : "cmpl-", r->id + 4);
	snprintf(c->fingerprint, sizeof(c->fingerprint), "fp_maas_%.64s", v);
	if (getrandom(&c->seed, sizeof(c->seed), 0) != sizeof(c->seed))
		c->seed = (uint64_t)r->t0_us;
	if (kind == OAI_EMBEDDING)
		c->data = json_array();
	else if (c->q.logprobs && !c->q.stream)
		c->lp = kind == OAI_CHAT ? json_array() :
		    oai_completion_logprobs_new();
	r->on_close = oai_on_close;
	/* A client who leaves before the answer cancels the job; what the
	 * runtime produced until then is billed (oai_on_done). */
	if (oai_submit(c) == 0 && c->job != NULL)
		http_watch_close(r);
}

/* Queues the job for the request (or its next embedding input).  The
 * scheduler calls done itself when it cannot queue; a deployment that
 * went away in between is answered here. */
static int
oai_submit(struct oai_ctx *c)
{
	struct req		*r = c->r;
	struct ipc_gen_req	 g;
	struct wbuf		 payload;
	bool			 emb = c->q.kind == OAI_EMBEDDING;

	oai_req_gen(&c->q, r->tenant_id, c->input, c->seed, &g);
	wbuf_init(&payload);
	ipc_gen_req_encode(&payload, &g);
	c->finished = false;
	c->job = sched_submit_stream(r->srv->sched, c->model, &c->opts,
	    &payload, oai_on_token, emb ? oai_emb_done : oai_on_done, r);
	wbuf_release(&payload);
	if (c->job == NULL && !c->finished) {
		meter_error(r, 404, "model_not_found", "model",
		    "The model '%.128s' does not exist", c->model);
		return -1;
	}
	return c->job != NULL ? 0 : -1;
}

static void
oai_on_close(struct req *r)
{
	struct oai_ctx	*c = r->ctx;

	if (c == NULL || c->job == NULL || c->cancelled)
		return;
	if (c->in_cb) {
		c->cancel = true;	/* after the callback returns */
		return;
	}
	c->cancelled = true;
	sched_stream_cancel(c->job);
}

static void
oai_append(struct oai_ctx *c, const char *p, size_t n)
{
	if (c->len + n > TEXT_MAX) {
		c->bad = true;
		return;
	}
	if (c->len + n + 1 > c->cap) {
		c->cap = (c->len + n + 1) * 2;
		c->text = xrealloc(c->text, c->cap);
	}
	memcpy(c->text + c->len, p, n);
	c->len += n;
	c->text[c->len] = '\0';
}

static json_t *
oai_chunk(struct oai_ctx *c, json_t *choice)
{
	json_t	*o;

	o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[]}", "id", c->id,
	    "object", c->q.kind == OAI_CHAT ? "chat.completion.chunk" :
	    "text_completion", "created", (json_int_t)c->created, "model",
	    c->model, "system_fingerprint", c->fingerprint, "choices");
	if (choice != NULL)
		json_array_append_new(json_object_get(o, "choices"), choice);
	if (c->q.include_usage)
		json_object_set_new(o, "usage", json_null());
	return o;
}

/* Sends obj (stolen) as one SSE event. */
static void
oai_stream_send(struct oai_ctx *c, json_t *obj)
{
	char	*s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));
	char	*ev;
	size_t	 n;

	json_decref(obj);
	if (s == NULL)
		return;
	n = strlen(s) + 8;
	ev = xmalloc(n + 1);
	snprintf(ev, n + 1, "data: %s\n\n", s);
	free(s);
	if (http_stream_chunk(c->r, ev, n) == 0)
		c->sent += n;
	free(ev);
}

static void
oai_stream_start(struct oai_ctx *c)
{
	c->started = true;
	http_stream_start(c->r, 200, "text/event-stream");
	if (c->q.kind == OAI_CHAT)
		oai_stream_send(c, oai_chunk(c, json_pack("{s:i, s:{s:s, "
		    "s:s}, s:n, s:n}", "index", 0, "delta", "role",
		    "assistant", "content", "", "logprobs", "finish_reason")));
}

static void
oai_on_token(void *arg, const uint8_t *payload, size_t len)
{
	struct req		*r = arg;
	struct oai_ctx		*c = r->ctx;
	struct ipc_gen_token	 t;
	struct rbuf		 rb;
	json_t			*choice, *lp = NULL;
	size_t			 off = c->len;

	if (c->q.kind == OAI_EMBEDDING || c->bad)
		return;
	rbuf_init(&rb, payload, len);
	if (ipc_gen_token_decode(&rb, &t) == -1) {
		log_warnx("req=%s tenant=%s undecodable TOKEN from '%s'", r->id,
		    r->tenant_id, c->model);
		c->bad = true;
		return;
	}
	if (!c->q.stream) {
		oai_append(c, t.text.p, t.text.n);
		if (c->lp != NULL && t.id >= 0) {
			if (c->q.kind == OAI_CHAT)
				json_array_append_new(c->lp,
				    oai_chat_logprob(&t));
			else
				oai_completion_logprob(c->lp, &t, off);
		}
		return;
	}
	c->in_cb = true;
	if (!c->started)
		oai_stream_start(c);
	if (t.text.n > 0 || (c->q.logprobs && t.id >= 0)) {
		if (c->q.logprobs && t.id >= 0) {
			if (c->q.kind == OAI_CHAT)
				lp = json_pack("{s:[o]}", "content",
				    oai_chat_logprob(&t));
			else {
				lp = oai_completion_logprobs_new();
				oai_completion_logprob(lp, &t, c->text_off);
			}
		}
		if (c->q.kind == OAI_CHAT)
			choice = json_pack("{s:i, s:{s:o}, s:o, s:n}", "index",
			    0, "delta", "content", oai_string_lossy(t.text.p,
			    t.text.n), "logprobs", lp ? lp : json_null(),
			    "finish_reason");
		else
			choice = json_pack("{s:i, s:o, s:o, s:n}", "index", 0,
			    "text", oai_string_lossy(t.text.p, t.text.n),
			    "logprobs", lp ? lp : json_null(),
			    "finish_reason");
		oai_stream_send(c, oai_chunk(c, choice));
	}
	c->text_off += t.text.n;
	c->in_cb = false;
	if ((c->cancel || r->gone) && !c->cancelled && c->job != NULL) {
		c->cancel = false;
		c->cancelled = true;
		sched_stream_cancel(c->job);
	}
}

static void
oai_on_done(void *arg, const struct sched_result *res)
{
	struct req		*r = arg;
	struct oai_ctx		*c = r->ctx;
	struct ipc_gen_done	 d;
	struct rbuf		 rb;

	c->job = NULL;
	c->finished = true;
	r->usage.queue_us = res->queue_us;
	r->usage.compute_us = res->compute_us;
	if (res->version != NULL)
		snprintf(r->usage.version, sizeof(r->usage.version), "%s",
		    res->version);
	if ((res->status == SCHED_OK || res->status == SCHED_CANCELLED) &&
	    res->payload != NULL) {
		rbuf_init(&rb, res->payload, res->len);
		if (ipc_gen_done_decode(&rb, &d) == -1) {
			log_warnx("req=%s tenant=%s undecodable DONE from "
			    "'%s'", r->id, r->tenant_id, c->model);
			c->bad = true;
		}
		if (!c->bad) {
			r->usage.prompt_tokens = d.prompt_tokens;
			r->usage.completion_tokens = d.completion_tokens;
			if (d.compute_us > 0)
				r->usage.compute_us = (int64_t)d.compute_us;
			if (c->q.stream)
				oai_stream_done(c, &d);
			else
				oai_reply_json(c, &d);
			return;
		}
	}
	oai_fail(c, res);
}

/* The answer of a request that was not streamed. */
static void
oai_reply_json(struct oai_ctx *c, const struct ipc_gen_done *d)
{
	json_t	*resp, *choice, *text;
	char	*s;

	text = oai_string_lossy(c->text ? c->text : "", c->len);
	if (c->q.kind == OAI_CHAT)
		choice = json_pack("{s:i, s:{s:s, s:o, s:n}, s:o, s:s}",
		    "index", 0, "message", "role", "assistant", "content", text,
		    "refusal", "logprobs", c->lp != NULL ? json_pack("{s:O}",
		    "content", c->lp) : json_null(), "finish_reason",
		    oai_finish_name(d->finish));
	else
		choice = json_pack("{s:o, s:i, s:o, s:s}", "text", text,
		    "index", 0, "logprobs", c->lp != NULL ? json_incref(c->lp) :
		    json_null(), "finish_reason", oai_finish_name(d->finish));
	resp = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o], s:o}", "id", c->id,
	    "object", c->q.kind == OAI_CHAT ? "chat.completion" :
	    "text_completion", "created", (json_int_t)c->created, "model",
	    c->model, "system_fingerprint", c->fingerprint, "choices", choice,
	    "usage", oai_usage(d->prompt_tokens, d->completion_tokens,
	    d->cached_tokens));
	s = resp != NULL ? json_dumps(resp, JSON_COMPACT |
	    JSON_REAL_PRECISION(9)) : NULL;
	json_decref(resp);
	if (s == NULL) {
		meter_error(c->r, 500, "internal_error", NULL,
		    "cannot encode the response");
		return;
	}
	meter_reply(c->r, 200, s, strlen(s));
}

/* The end of a stream: the finish_reason chunk, the usage chunk when
 * asked for, then metering, then "data: [DONE]". */
static void
oai_stream_done(struct oai_ctx *c, const struct ipc_gen_done *d)
{
	json_t	*choice, *last;

	if (!c->started)
		oai_stream_start(c);
	if (c->q.kind == OAI_CHAT)
		choice = json_pack("{s:i, s:{}, s:n, s:s}", "index", 0,
		    "delta", "logprobs", "finish_reason",
		    oai_finish_name(d->finish));
	else
		choice = json_pack("{s:i, s:s, s:n, s:s}", "index", 0, "text",
		    "", "logprobs", "finish_reason",
		    oai_finish_name(d->finish));
	oai_stream_send(c, oai_chunk(c, choice));
	if (c->q.include_usage) {
		last = oai_chunk(c, NULL);
		json_object_set_new(last, "usage", oai_usage(d->prompt_tokens,
		    d->completion_tokens, d->cached_tokens));
		oai_stream_send(c, last);
	}
	/* The tokens went out (or were produced before the client left):
	 * either way they are billed. */
	meter_record(c->r, 200, c->sent, oai_stream_end);
}

static void
oai_stream_end(struct req *r, bool ok)
{
	static const char	 done[] = "data: [DONE]\n\n";
	char			*body;
	size_t			 len;

	if (ok)
		(void)http_stream_chunk(r, done, sizeof(done) - 1);
	else {
		body = http_error_body(500, NULL, "metering_failed", NULL,
		    "the request could not be recorded", &len);
		(void)http_stream_chunk(r, "data: ", 6);
		(void)http_stream_chunk(r, body, len);
		(void)http_stream_chunk(r, "\n\n", 2);
		free(body);
	}
	http_stream_end(r);
}

static void
oai_stream_end_error(struct req *r, bool ok)
{
	(void)ok;
	http_stream_end(r);
}

/* A job that failed: a JSON error before the stream started, an SSE
 * error event after. */
static void
oai_fail(struct oai_ctx *c, const struct sched_result *res)
{
	struct req	*r = c->r;
	const char	*code = "model_error", *param = NULL, *msg;
	char		 retry[16], m[512];
	int		 status = 500;
	char		*body;
	size_t		 len;

	msg = res->message != NULL ? res->message : "the model failed";
	snprintf(retry, sizeof(retry), "%d", res->retry_after_s > 0 ?
	    res->retry_after_s : 1);
	switch (c->bad ? SCHED_INTERNAL : res->status) {
	case SCHED_BAD_INPUT:
		status = 400;
		code = "invalid_request";
		param = c->q.kind == OAI_CHAT ? "messages" :
		    c->q.kind == OAI_COMPLETION ? "prompt" : "input";
		break;
	case SCHED_CONTEXT:
		status = 400;
		code = "context_length_exceeded";
		param = c->q.kind == OAI_CHAT ? "messages" :
		    c->q.kind == OAI_COMPLETION ? "prompt" : "input";
		break;
	case SCHED_TOO_LARGE:
		status = 413;
		code = "request_too_large";
		break;
	case SCHED_QUARANTINED:
		status = 400;
		code = "input_crashes_model";
		break;
	case SCHED_TIMED_OUT:
		status = 504;
		code = "deadline_exceeded";
		break;
	case SCHED_OVERLOADED:
		status = 503;
		code = "overloaded";
		if (!c->started)
			http_add_header(r, "Retry-After", retry);
		break;
	case SCHED_CANCELLED:
		status = 499;		/* the client closed the connection */
		code = "cancelled";
		break;
	case SCHED_UNAVAILABLE:
	case SCHED_SHUTDOWN:
		status = 503;
		code = "model_unavailable";
		if (!c->started)
			http_add_header(r, "Retry-After", retry);
		break;
	case SCHED_OK:
	case SCHED_INTERNAL:
	case SCHED_STATUS_MAX:
		if (c->bad)
			msg = "the model's runtime sent a malformed answer";
		break;
	}
	snprintf(m, sizeof(m), "%s", msg);
	/* The runtime's text is not trusted to be UTF-8 or printable. */
	for (char *p = m; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x80)
			*p = '?';
	if (!c->started) {
		meter_error(r, status, code, param, "%s", m);
		return;
	}
	body = http_error_body(status, NULL, code, param, m, &len);
	(void)http_stream_chunk(r, "data: ", 6);
	(void)http_stream_chunk(r, body, len);
	(void)http_stream_chunk(r, "\n\n", 2);
	c->sent += len + 8;
	free(body);
	meter_record(r, status, c->sent, oai_stream_end_error);
}

/* --- embeddings --- */

static void
oai_emb_done(void *arg, const struct sched_result *res)
{
	struct req		*r = arg;
	struct oai_ctx		*c = r->ctx;
	struct ipc_gen_done	 d;
	struct rbuf		 rb;
	json_t			*vec, *resp;
	char			*s, *b64;
	float			 f;
	uint32_t		 u;

	c->job = NULL;
	c->finished = true;
	r->usage.queue_us += res->queue_us;
	if (res->status != SCHED_OK || res->payload == NULL) {
		oai_fail(c, res);
		return;
	}
	rbuf_init(&rb, res->payload, res->len);
	if (ipc_gen_done_decode(&rb, &d) == -1 || d.n_embd == 0) {
		log_warnx("req=%s tenant=%s bad embedding DONE from '%s'",
		    r->id, r->tenant_id, c->model);
		c->bad = true;
		oai_fail(c, res);
		return;
	}
	c->emb_prompt += d.prompt_tokens;
	r->usage.compute_us += d.compute_us > 0 ? (int64_t)d.compute_us :
	    res->compute_us;
	if (c->q.base64) {
		/* OpenAI's base64 form: the little-endian float32 bytes. */
		b64 = xmalloc(4 * (((size_t)d.n_embd * 4 + 2) / 3) + 1);
		EVP_EncodeBlock((unsigned char *)b64, d.embd,
		    (int)d.n_embd * 4);
		vec = json_string(b64);
		free(b64);
	} else {
		vec = json_array();
		for (uint32_t i = 0; i < d.n_embd; i++) {
			u = le32_get(d.embd + 4 * (size_t)i);
			memcpy(&f, &u, sizeof(f));
			json_array_append_new(vec, json_real((double)f));
		}
	}
	json_array_append_new(c->data, json_pack("{s:s, s:I, s:o}", "object",
	    "embedding", "index", (json_int_t)c->input, "embedding", vec));
	if (++c->input < c->q.n_inputs) {
		(void)oai_submit(c);
		return;
	}
	r->usage.prompt_tokens = (int64_t)c->emb_prompt;
	resp = json_pack("{s:s, s:O, s:s, s:{s:I, s:I}}", "object", "list",
	    "data", c->data, "model", c->model, "usage", "prompt_tokens",
	    (json_int_t)c->emb_prompt, "total_tokens",
	    (json_int_t)c->emb_prompt);
	s = resp != NULL ? json_dumps(resp, JSON_COMPACT |
	    JSON_REAL_PRECISION(9)) : NULL;
	json_decref(resp);
	if (s == NULL) {
		meter_error(r, 500, "internal_error", NULL,
		    "cannot encode the response");
		return;
	}
	meter_reply(r, 200, s, strlen(s));
}
