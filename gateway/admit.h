/* gateway/admit.h - admission of an authenticated tenant request to a
 * model: key scopes, the model allowlist, rate limits and budgets.  Shared
 * by every model endpoint (KServe now, OpenAI later).  Settlement happens
 * in meter_reply(), on every way out of an admitted request. */
#ifndef GATEWAY_ADMIT_H
#define GATEWAY_ADMIT_H
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct req;
struct server;

struct sched_job_opts;

/* Authenticates a tenant request (API key or JWT) into r's tenant_id,
 * key_id and scopes; on failure replies 401 (or 503) and returns -1. */
int	admit_auth(struct req *);
/* Queueing options of a model request: the tenant's weight and the
 * x-maas-priority / x-maas-timeout-ms headers.  On a bad header replies
 * 400 (metered) and returns -1. */
int	admit_job_opts(struct req *, struct sched_job_opts *);
/* Admits r (tenant_id and key_id set by authentication) to model,
 * reserving tokens.  Adds the x-ratelimit-* headers either way.  On
 * refusal replies (metered 429 or 404) and returns -1. */
int	admit_model(struct req *, const char *model, int64_t tokens);
/* May r's caller see model at all (key scopes and allowlists)? */
bool	admit_visible(struct req *, const char *model);
/* Prices r->usage and settles the reservation; called by meter_reply. */
void	admit_settle(struct req *);
/* Loads limits, counters and prices from the database (start-up). */
int	admit_load(struct server *);
/* Applies a quota row as db/ returns it (after an admin change). */
void	admit_apply_row(struct server *, json_t *row);
/* Notes that a key was used; last_used_at is written in batches. */
void	admit_touch_key(struct server *, const char *key_id);
void	admit_release(struct server *);
#endif
