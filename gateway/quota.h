/* gateway/quota.h - per-tenant and per-key quotas and budgets, enforced in
 * memory on the event-loop thread.
 *
 * Limits come from the quotas table; counters are seeded at start from
 * usage_events, so a restart never resets a window or a budget.  Windows:
 * requests and tokens per minute count in fixed minute windows (UTC,
 * aligned on the minute); budgets count per calendar month (UTC).
 * Admission reserves (one request, the tokens it may use, the credits it
 * may cost) on the tenant and, if it has limits, the key; settlement
 * replaces the reservation with what the request really used.  Because all
 * of this runs on one thread, N concurrent requests at the edge of a quota
 * admit exactly the remaining count. */
#ifndef GATEWAY_QUOTA_H
#define GATEWAY_QUOTA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUOTA_UNLIMITED		(-1)

struct quota;

struct quota_limits {
	int64_t	 rpm;			/* requests per minute */
	int64_t	 tpm;			/* tokens per minute */
	int64_t	 concurrent;		/* requests in flight */
	int64_t	 month_tokens;		/* tokens per calendar month */
	int64_t	 month_credits;		/* micro-units per calendar month */
	char	**models;		/* allowlist (owned), NULL: all */
	size_t	 n_models;
};

enum quota_verdict {
	QUOTA_OK = 0,
	QUOTA_MODEL,			/* model not in the allowlist */
	QUOTA_RPM,
	QUOTA_TPM,
	QUOTA_CONCURRENCY,
	QUOTA_MONTH_TOKENS,
	QUOTA_MONTH_CREDITS,
};

/* What one admitted request holds until quota_settle(). */
struct quota_ticket {
	char		tenant_id[64];
	char		key_id[64];
	int64_t		minute;		/* window it was admitted in */
	int64_t		month;
	int64_t		tokens;		/* reserved */
	int64_t		credits;	/* reserved */
	bool		active;
};

/* Rate-limit state for the x-ratelimit-* headers: the tighter of tenant
 * and key for each dimension; limit < 0 when unlimited. */
struct quota_status {
	int64_t		req_limit, req_remaining;
	int64_t		tok_limit, tok_remaining;
	int64_t		reset_s;	/* seconds to the next minute window */
	int64_t		retry_after_s;	/* for a refusal */
};

struct quota	*quota_new(void);
void		 quota_free(struct quota *);

/* Replaces the limits of a tenant (key_id NULL) or of one key.  lim NULL
 * removes them (unlimited).  Copies lim. */
void		 quota_set_limits(struct quota *, const char *tenant_id,
		    const char *key_id, const struct quota_limits *lim);
/* Seeds counters from stored usage (start-up): requests and tokens in the
 * current minute window, tokens and credits in the current month. */
void		 quota_seed(struct quota *, const char *tenant_id,
		    const char *key_id, int64_t now_s, int64_t minute_requests,
		    int64_t minute_tokens, int64_t month_tokens,
		    int64_t month_credits);

/* Admits or refuses a request at time now_s (Unix seconds).  On QUOTA_OK
 * the ticket holds the reservation.  st is filled either way. */
enum quota_verdict quota_admit(struct quota *, const char *tenant_id,
		    const char *key_id, const char *model, int64_t tokens,
		    int64_t credits, int64_t now_s, struct quota_ticket *,
		    struct quota_status *st);
/* May this tenant (and key) use model under its allowlists? */
bool		 quota_model_allowed(struct quota *, const char *tenant_id,
		    const char *key_id, const char *model);
/* Replaces the reservation by the real use and releases the concurrency
 * slot.  A monthly credit budget is a hard ceiling: the charge is cut to
 * what the budgets still allow, and the charge kept is returned.  Safe to
 * call on an inactive ticket (does nothing, returns credits). */
int64_t		 quota_settle(struct quota *, struct quota_ticket *,
		    int64_t tokens, int64_t credits);

/* Month index of a Unix time (UTC): year * 12 + month - 1. */
int64_t		 quota_month(int64_t now_s);
/* Unix time of the start of the month after month index m. */
int64_t		 quota_month_end(int64_t m);
const char	*quota_verdict_name(enum quota_verdict);
void		 quota_limits_release(struct quota_limits *);
#endif
