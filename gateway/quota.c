/* gateway/quota.c - see quota.h.  Entries live in one open-addressing hash
 * table keyed by "t:<tenant id>" or "k:<key id>"; the table only grows
 * (tenants and keys are few next to requests). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xmalloc.h"
#include "gateway/quota.h"

struct quota_entry {
	char			 name[72];	/* "t:<id>" or "k:<id>" */
	bool			 has_limits;
	struct quota_limits	 lim;
	int64_t			 minute;	/* current window: unix_s / 60 */
	int64_t			 req_minute;
	int64_t			 tok_minute;
	int64_t			 month;		/* current month index */
	int64_t			 tok_month;
	int64_t			 credits_month;
	int64_t			 inflight;
};

struct quota {
	struct quota_entry	**slots;	/* open addressing, NULL: empty */
	size_t			  cap;		/* power of two */
	size_t			  n;
};

static struct quota_entry *entry_get(struct quota *, const char *kind,
		    const char *id, bool create);

static uint64_t
hash_str(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

struct quota *
quota_new(void)
{
	struct quota	*q = xcalloc(1, sizeof(*q));

	q->cap = 64;
	q->slots = xcalloc(q->cap, sizeof(*q->slots));
	return q;
}

void
quota_limits_release(struct quota_limits *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n_models; i++)
		free(l->models[i]);
	free(l->models);
	l->models = NULL;
	l->n_models = 0;
}

void
quota_free(struct quota *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->cap; i++) {
		if (q->slots[i] == NULL)
			continue;
		quota_limits_release(&q->slots[i]->lim);
		free(q->slots[i]);
	}
	free(q->slots);
	free(q);
}

static void
table_insert(struct quota_entry **slots, size_t cap, struct quota_entry *e)
{
	size_t	i = hash_str(e->name) & (cap - 1);

	while (slots[i] != NULL)
		i = (i + 1) & (cap - 1);
	slots[i] = e;
}

static struct quota_entry *
entry_get(struct quota *q, const char *kind, const char *id, bool create)
{
	struct quota_entry	*e;
	char			 name[72];
	size_t			 i;

	snprintf(name, sizeof(name), "%s:%s", kind, id);
	for (i = hash_str(name) & (q->cap - 1); q->slots[i] != NULL;
	    i = (i + 1) & (q->cap - 1))
		if (strcmp(q->slots[i]->name, name) == 0)
			return q->slots[i];
	if (!create)
		return NULL;
	if ((q->n + 1) * 2 > q->cap) {
		struct quota_entry	**ns;
		size_t			  ncap = q->cap * 2;

		ns = xcalloc(ncap, sizeof(*ns));
		for (size_t k = 0; k < q->cap; k++)
			if (q->slots[k] != NULL)
				table_insert(ns, ncap, q->slots[k]);
		free(q->slots);
		q->slots = ns;
		q->cap = ncap;
	}
	e = xcalloc(1, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	table_insert(q->slots, q->cap, e);
	q->n++;
	return e;
}

int64_t
quota_month(int64_t now_s)
{
	struct tm	tm;
	time_t		t = (time_t)now_s;

	gmtime_r(&t, &tm);
	return (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
}

int64_t
quota_month_end(int64_t m)
{
	struct tm	tm;

	memset(&tm, 0, sizeof(tm));
	m += 1;
	tm.tm_year = (int)(m / 12) - 1900;
	tm.tm_mon = (int)(m % 12);
	tm.tm_mday = 1;
	return (int64_t)timegm(&tm);
}

/* Moves an entry's windows forward to now. */
static void
entry_roll(struct quota_entry *e, int64_t now_s)
{
	int64_t	minute = now_s / 60, month = quota_month(now_s);

	if (e->minute != minute) {
		e->minute = minute;
		e->req_minute = 0;
		e->tok_minute = 0;
	}
	if (e->month != month) {
		e->month = month;
		e->tok_month = 0;
		e->credits_month = 0;
	}
}

static void
limits_copy(struct quota_limits *dst, const struct quota_limits *src)
{
	*dst = *src;
	dst->models = NULL;
	dst->n_models = 0;
	if (src->models == NULL)
		return;
	dst->models = xcalloc(src->n_models ? src->n_models : 1,
	    sizeof(char *));
	for (size_t i = 0; i < src->n_models; i++)
		dst->models[i] = xstrdup(src->models[i]);
	dst->n_models = src->n_models;
}

void
quota_set_limits(struct quota *q, const char *tenant_id, const char *key_id,
    const struct quota_limits *lim)
{
	struct quota_entry	*e = key_id ? entry_get(q, "k", key_id, true) :
	    entry_get(q, "t", tenant_id, true);

	quota_limits_release(&e->lim);
	e->has_limits = lim != NULL;
	if (lim != NULL)
		limits_copy(&e->lim, lim);
}

void
quota_seed(struct quota *q, const char *tenant_id, const char *key_id,
    int64_t now_s, int64_t minute_requests, int64_t minute_tokens,
    int64_t month_tokens, int64_t month_credits)
{
	struct quota_entry	*e = key_id ? entry_get(q, "k", key_id, true) :
	    entry_get(q, "t", tenant_id, true);

	entry_roll(e, now_s);
	e->req_minute += minute_requests;
	e->tok_minute += minute_tokens;
	e->tok_month += month_tokens;
	e->credits_month += month_credits;
}

static bool
model_allowed(const struct quota_limits *l, const char *model)
{
	if (l->models == NULL)
		return true;
	for (size_t i = 0; i < l->n_models; i++)
		if (strcmp(l->models[i], model) == 0)
			return true;
	return false;
}

/* Would one more request with this reservation exceed e's limits? */
static enum quota_verdict
entry_check(const struct quota_entry *e, const char *model, int64_t tokens,
    int64_t credits, int64_t now_s, int64_t *retry)
{
	const struct quota_limits	*l = &e->lim;

	if (!e->has_limits)
		return QUOTA_OK;
	if (model != NULL && !model_allowed(l, model))
		return QUOTA_MODEL;
	if (l->month_tokens >= 0 && e->tok_month + tokens > l->month_tokens) {
		*retry = quota_month_end(e->month) - now_s;
		return QUOTA_MONTH_TOKENS;
	}
	if (l->month_credits >= 0 &&
	    e->credits_month + credits > l->month_credits) {
		*retry = quota_month_end(e->month) - now_s;
		return QUOTA_MONTH_CREDITS;
	}
	if (l->rpm >= 0 && e->req_minute + 1 > l->rpm) {
		*retry = 60 - now_s % 60;
		return QUOTA_RPM;
	}
	if (l->tpm >= 0 && e->tok_minute + tokens > l->tpm) {
		*retry = 60 - now_s % 60;
		return QUOTA_TPM;
	}
	if (l->concurrent >= 0 && e->inflight + 1 > l->concurrent) {
		*retry = 1;
		return QUOTA_CONCURRENCY;
	}
	return QUOTA_OK;
}

/* Folds e's per-minute state into st, keeping the tighter limit. */
static void
status_merge(struct quota_status *st, const struct quota_entry *e)
{
	int64_t	rem;

	if (e == NULL || !e->has_limits)
		return;
	if (e->lim.rpm >= 0) {
		rem = e->lim.rpm - e->req_minute;
		if (rem < 0)
			rem = 0;
		if (st->req_limit < 0 || rem < st->req_remaining) {
			st->req_limit = e->lim.rpm;
			st->req_remaining = rem;
		}
	}
	if (e->lim.tpm >= 0) {
		rem = e->lim.tpm - e->tok_minute;
		if (rem < 0)
			rem = 0;
		if (st->tok_limit < 0 || rem < st->tok_remaining) {
			st->tok_limit = e->lim.tpm;
			st->tok_remaining = rem;
		}
	}
}

enum quota_verdict
quota_admit(struct quota *q, const char *tenant_id, const char *key_id,
    const char *model, int64_t tokens, int64_t credits, int64_t now_s,
    struct quota_ticket *t, struct quota_status *st)
{
	struct quota_entry	*te = entry_get(q, "t", tenant_id, true);
	struct quota_entry	*ke = key_id && *key_id ?
				    entry_get(q, "k", key_id, true) : NULL;
	enum quota_verdict	 v;
	int64_t			 retry = 0;

	memset(t, 0, sizeof(*t));
	memset(st, 0, sizeof(*st));
	st->req_limit = st->tok_limit = -1;
	st->reset_s = 60 - now_s % 60;
	entry_roll(te, now_s);
	if (ke != NULL)
		entry_roll(ke, now_s);
	v = entry_check(te, model, tokens, credits, now_s, &retry);
	if (v == QUOTA_OK && ke != NULL)
		v = entry_check(ke, model, tokens, credits, now_s, &retry);
	if (v == QUOTA_OK) {
		te->req_minute++;
		te->tok_minute += tokens;
		te->tok_month += tokens;
		te->credits_month += credits;
		te->inflight++;
		if (ke != NULL) {
			ke->req_minute++;
			ke->tok_minute += tokens;
			ke->tok_month += tokens;
			ke->credits_month += credits;
			ke->inflight++;
		}
		snprintf(t->tenant_id, sizeof(t->tenant_id), "%s", tenant_id);
		snprintf(t->key_id, sizeof(t->key_id), "%s",
		    ke ? key_id : "");
		t->minute = now_s / 60;
		t->month = quota_month(now_s);
		t->tokens = tokens;
		t->credits = credits;
		t->active = true;
	}
	status_merge(st, te);
	status_merge(st, ke);
	st->retry_after_s = retry > 0 ? retry : 1;
	return v;
}

bool
quota_model_allowed(struct quota *q, const char *tenant_id,
    const char *key_id, const char *model)
{
	struct quota_entry	*te = entry_get(q, "t", tenant_id, false);
	struct quota_entry	*ke = key_id && *key_id ?
				    entry_get(q, "k", key_id, false) : NULL;

	return (te == NULL || !te->has_limits ||
	    model_allowed(&te->lim, model)) &&
	    (ke == NULL || !ke->has_limits || model_allowed(&ke->lim, model));
}

static void
entry_settle(struct quota_entry *e, const struct quota_ticket *t,
    int64_t tokens, int64_t credits)
{
	if (e == NULL)
		return;
	/* A window that has rolled since admission keeps what it had. */
	if (e->minute == t->minute)
		e->tok_minute += tokens - t->tokens;
	if (e->month == t->month) {
		e->tok_month += tokens - t->tokens;
		e->credits_month += credits - t->credits;
	}
	if (e->inflight > 0)
		e->inflight--;
}

/* The most e's monthly credit budget lets this ticket be charged: its own
 * reservation plus whatever the budget has left beside it. */
static int64_t
entry_credit_cap(const struct quota_entry *e, const struct quota_ticket *t,
    int64_t credits)
{
	int64_t	room;

	if (e == NULL || !e->has_limits || e->lim.month_credits < 0 ||
	    e->month != t->month)
		return credits;
	room = e->lim.month_credits - (e->credits_month - t->credits);
	if (room < 0)
		room = 0;
	return credits < room ? credits : room;
}

int64_t
quota_settle(struct quota *q, struct quota_ticket *t, int64_t tokens,
    int64_t credits)
{
	struct quota_entry	*te, *ke = NULL;

	if (t == NULL || !t->active)
		return credits;
	te = entry_get(q, "t", t->tenant_id, false);
	if (t->key_id[0] != '\0')
		ke = entry_get(q, "k", t->key_id, false);
	credits = entry_credit_cap(te, t, credits);
	credits = entry_credit_cap(ke, t, credits);
	entry_settle(te, t, tokens, credits);
	entry_settle(ke, t, tokens, credits);
	t->active = false;
	return credits;
}

const char *
quota_verdict_name(enum quota_verdict v)
{
	switch (v) {
	case QUOTA_OK: return "ok";
	case QUOTA_MODEL: return "model_not_allowed";
	case QUOTA_RPM: return "requests_per_minute";
	case QUOTA_TPM: return "tokens_per_minute";
	case QUOTA_CONCURRENCY: return "max_concurrent_requests";
	case QUOTA_MONTH_TOKENS: return "monthly_token_budget";
	case QUOTA_MONTH_CREDITS: return "monthly_credit_budget";
	}
	return "unknown";
}
