/* gateway/admit.c - see admit.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/admit.h"
#include "gateway/auth.h"
#include "gateway/http.h"
#include "gateway/meter.h"
#include "gateway/price.h"
#include "gateway/quota.h"
#include "gateway/server.h"
#include "scheduler/sched.h"

#define TOUCH_FLUSH_S		5	/* last_used_at granularity */
#define TIMEOUT_DEFAULT_MS	30000	/* to start computing */
#define TIMEOUT_MAX_MS		300000
#define TOUCH_MAX		4096	/* distinct keys between flushes */

static bool
scope_allows(const char *scopes, const char *model)
{
	json_t	*arr = json_loads(scopes, 0, NULL), *v;
	size_t	 i;
	bool	 ok = false;

	json_array_foreach(arr, i, v)
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), model) == 0)
			ok = true;
	json_decref(arr);
	return ok;
}

static void
ratelimit_headers(struct req *r, const struct quota_status *st)
{
	char	v[32];

	if (st->req_limit >= 0) {
		snprintf(v, sizeof(v), "%lld", (long long)st->req_limit);
		http_add_header(r, "x-ratelimit-limit-requests", v);
		snprintf(v, sizeof(v), "%lld", (long long)st->req_remaining);
		http_add_header(r, "x-ratelimit-remaining-requests", v);
		snprintf(v, sizeof(v), "%llds", (long long)st->reset_s);
		http_add_header(r, "x-ratelimit-reset-requests", v);
	}
	if (st->tok_limit >= 0) {
		snprintf(v, sizeof(v), "%lld", (long long)st->tok_limit);
		http_add_header(r, "x-ratelimit-limit-tokens", v);
		snprintf(v, sizeof(v), "%lld", (long long)st->tok_remaining);
		http_add_header(r, "x-ratelimit-remaining-tokens", v);
		snprintf(v, sizeof(v), "%llds", (long long)st->reset_s);
		http_add_header(r, "x-ratelimit-reset-tokens", v);
	}
}

int
admit_auth(struct req *r)
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

int
admit_job_opts(struct req *r, struct sched_job_opts *o)
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
	/* Read per request so that an admin change applies at once. */
	if (db_tenant_weight(r->srv->db, r->tenant_id, &w) == 1)
		o->weight = (unsigned)w;
	return 0;
}

bool
admit_visible(struct req *r, const char *model)
{
	if (r->has_scopes && !scope_allows(r->scopes, model))
		return false;
	return quota_model_allowed(r->srv->quota, r->tenant_id, r->key_id,
	    model);
}

int
admit_model(struct req *r, const char *model, int64_t tokens)
{
	struct server		*srv = r->srv;
	struct quota_status	 st;
	struct price		 p;
	enum quota_verdict	 v;
	int64_t			 now = r->ts_us / 1000000, credits;
	char			 retry[32];

	if (r->has_scopes && !scope_allows(r->scopes, model)) {
		meter_error(r, 404, "model_not_found", "model",
		    "the model '%.128s' does not exist", model);
		return -1;
	}
	p = prices_at(srv->prices, model, now);
	/* Reserve what a request of this model has recently cost at most;
	 * settlement replaces it by the real cost, cut to what the monthly
	 * credit budget still allows, so the budget is never overspent. */
	credits = price_cost(&p, tokens, 0,
	    prices_compute_estimate(srv->prices, model));
	v = quota_admit(srv->quota, r->tenant_id, r->key_id, model, tokens,
	    credits, now, &r->ticket, &st);
	ratelimit_headers(r, &st);
	if (v == QUOTA_OK)
		return 0;
	if (v == QUOTA_MODEL) {
		meter_error(r, 404, "model_not_found", "model",
		    "the model '%.128s' does not exist", model);
		return -1;
	}
	snprintf(retry, sizeof(retry), "%lld", (long long)st.retry_after_s);
	http_add_header(r, "Retry-After", retry);
	if (v == QUOTA_MONTH_TOKENS || v == QUOTA_MONTH_CREDITS) {
		meter_error_typed(r, 429, "insufficient_quota",
		    quota_verdict_name(v), NULL, "the %s of this %s is spent "
		    "for this month", v == QUOTA_MONTH_TOKENS ?
		    "monthly token budget" : "monthly credit budget",
		    "account");
		return -1;
	}
	meter_error_typed(r, 429, "rate_limit_exceeded",
	    quota_verdict_name(v), NULL, "rate limit reached (%s); retry "
	    "after %lld s", quota_verdict_name(v),
	    (long long)st.retry_after_s);
	return -1;
}

void
admit_settle(struct req *r)
{
	struct usage_event	*u = &r->usage;
	struct price		 p;

	if (!r->ticket.active)
		return;
	if (u->compute_us > 0)
		prices_note_compute(r->srv->prices, u->model, u->compute_us);
	/* Only what was served is billed: an error costs nothing. */
	if (u->status >= 200 && u->status < 300) {
		p = prices_at(r->srv->prices, u->model, r->ts_us / 1000000);
		u->cost_micros = price_cost(&p, u->prompt_tokens,
		    u->completion_tokens, u->compute_us);
	} else
		u->cost_micros = 0;
	u->cost_micros = quota_settle(r->srv->quota, &r->ticket,
	    u->prompt_tokens + u->completion_tokens, u->cost_micros);
}

static struct quota_limits
limits_of(json_t *row)
{
	struct quota_limits	 l;
	json_t			*m, *v;
	size_t			 i;

	memset(&l, 0, sizeof(l));
#define LIM(k) (json_is_integer(json_object_get(row, k)) ? \
	(int64_t)json_integer_value(json_object_get(row, k)) : QUOTA_UNLIMITED)
	l.rpm = LIM("requests_per_minute");
	l.tpm = LIM("tokens_per_minute");
	l.concurrent = LIM("max_concurrent_requests");
	l.month_tokens = LIM("monthly_token_budget");
	l.month_credits = LIM("monthly_credit_budget_micros");
#undef LIM
	m = json_object_get(row, "allowed_models");
	if (json_is_array(m)) {
		l.models = xcalloc(json_array_size(m) + 1, sizeof(char *));
		json_array_foreach(m, i, v)
			if (json_is_string(v))
				l.models[l.n_models++] =
				    xstrdup(json_string_value(v));
	}
	return l;
}

void
admit_apply_row(struct server *srv, json_t *row)
{
	struct quota_limits	 l = limits_of(row);
	const char		*tenant = json_string_value(
	    json_object_get(row, "tenant_id"));

	if (tenant != NULL)
		quota_set_limits(srv->quota, tenant, json_string_value(
		    json_object_get(row, "key_id")), &l);
	quota_limits_release(&l);
}

static void
admit_flush_touched(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;

	(void)fd;
	(void)what;
	if (srv->n_touched == 0)
		return;
	db_keys_touch(srv->db, (const char *const *)srv->touched,
	    srv->n_touched, (int64_t)time(NULL));
	for (size_t i = 0; i < srv->n_touched; i++)
		free(srv->touched[i]);
	srv->n_touched = 0;
}

void
admit_touch_key(struct server *srv, const char *key_id)
{
	if (key_id == NULL || strncmp(key_id, "key_", 4) != 0)
		return;		/* JWT callers have no key row */
	for (size_t i = 0; i < srv->n_touched; i++)
		if (strcmp(srv->touched[i], key_id) == 0)
			return;
	if (srv->n_touched == TOUCH_MAX)
		admit_flush_touched(-1, 0, srv);
	srv->touched[srv->n_touched++] = xstrdup(key_id);
}

int
admit_load(struct server *srv)
{
	json_t		*rows, *seed, *row;
	struct timeval	 tv = { TOUCH_FLUSH_S, 0 };
	int64_t		 now = (int64_t)time(NULL);
	size_t		 i;

	srv->quota = quota_new();
	srv->prices = prices_new();
	srv->touched = xcalloc(TOUCH_MAX, sizeof(char *));
	srv->touch_ev = event_new(srv->base, -1, EV_PERSIST,
	    admit_flush_touched, srv);
	event_add(srv->touch_ev, &tv);
	if ((rows = db_quota_list(srv->db)) == NULL)
		return -1;
	json_array_foreach(rows, i, row)
		admit_apply_row(srv, row);
	json_decref(rows);
	if ((rows = db_price_list(srv->db)) == NULL)
		return -1;
	json_array_foreach(rows, i, row)
		prices_add_row(srv->prices, row);
	json_decref(rows);
	seed = db_usage_seed(srv->db, (now - now % 60) * 1000000,
	    (quota_month_end(quota_month(now) - 1)) * 1000000);
	if (seed == NULL)
		return -1;
	json_array_foreach(json_object_get(seed, "minute"), i, row) {
		const char	*t = json_string_value(json_object_get(row,
		    "tenant_id"));
		const char	*k = json_string_value(json_object_get(row,
		    "key_id"));
		int64_t		 n = json_integer_value(json_object_get(row,
		    "requests"));
		int64_t		 tok = json_integer_value(json_object_get(row,
		    "tokens"));

		if (t == NULL)
			continue;
		quota_seed(srv->quota, t, NULL, now, n, tok, 0, 0);
		if (k != NULL)
			quota_seed(srv->quota, t, k, now, n, tok, 0, 0);
	}
	json_array_foreach(json_object_get(seed, "month"), i, row) {
		const char	*t = json_string_value(json_object_get(row,
		    "tenant_id"));
		const char	*k = json_string_value(json_object_get(row,
		    "key_id"));
		int64_t		 tok = json_integer_value(json_object_get(row,
		    "tokens"));
		int64_t		 cr = json_integer_value(json_object_get(row,
		    "credits"));

		if (t == NULL)
			continue;
		quota_seed(srv->quota, t, NULL, now, 0, 0, tok, cr);
		if (k != NULL)
			quota_seed(srv->quota, t, k, now, 0, 0, tok, cr);
	}
	json_decref(seed);
	return 0;
}

void
admit_release(struct server *srv)
{
	if (srv->touch_ev != NULL) {
		admit_flush_touched(-1, 0, srv);
		event_free(srv->touch_ev);
	}
	free(srv->touched);
	quota_free(srv->quota);
	prices_free(srv->prices);
}
