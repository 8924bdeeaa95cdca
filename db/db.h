/* db/db.h - maas's SQLite store: the only module that calls sqlite3_*.
 *
 * Threading: db_open() is called from maasd's main thread before the event
 * loop runs.  It opens two connections to the same WAL database:
 *  - a read connection used synchronously from the event-loop thread by the
 *    db_*_get/list/lookup functions below (indexed reads take microseconds);
 *  - a write connection owned by one writer thread.  Every change is a job
 *    queued to that thread.  The writer takes all queued jobs, runs them in
 *    one transaction (each inside its own SAVEPOINT, so one failing job does
 *    not undo the others), commits with synchronous=FULL (group commit), and
 *    only then hands each job's completion back to the event-loop thread,
 *    where its callback runs.  A callback therefore always sees its change
 *    durable, and any read issued from the callback sees it too.
 *
 * Results of listings and of writes are jansson objects whose keys are the
 * column names of the API (ids are strings such as "ten_3f9c..."; times are
 * integer Unix seconds; NULL columns are JSON null).  db/ knows nothing of
 * HTTP: callers turn enum db_status into status codes.
 *
 * Schema changes are numbered migrations applied at open (PRAGMA
 * user_version); see db/schema.c. */
#ifndef DB_DB_H
#define DB_DB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct db;
struct event_base;

enum db_status {
	DB_OK = 0,
	DB_ERROR,		/* I/O or SQLite failure (logged once) */
	DB_NOT_FOUND,		/* a referenced row does not exist */
	DB_CONFLICT,		/* a unique constraint was violated */
};

/* Called on the event-loop thread once the job's transaction committed
 * (DB_OK) or failed.  result is a new reference (caller decrefs) or NULL. */
typedef void	db_done_fn(void *arg, enum db_status, json_t *result);

/* Opens (creating if needed) the database at path, applies migrations and
 * starts the writer thread; completions are delivered through base.
 * Returns NULL after logging why. */
struct db	*db_open(const char *path, struct event_base *base);
/* Finishes queued writes, stops the writer thread, closes.  NULL is ok. */
void		 db_close(struct db *);
/* Schema version after migrations (PRAGMA user_version). */
int		 db_schema_version(struct db *);
/* Number of write jobs queued or running (for draining on shutdown). */
size_t		 db_pending(struct db *);
/* Transactions the writer thread has committed since db_open: each one
 * carries a whole batch of jobs (for tests, metrics and benchmarks). */
uint64_t	 db_commit_count(struct db *);

/* --- identifiers --- */
/* Writes "<prefix>_" + 24 lowercase hex chars from getrandom(2) into out;
 * outsz must be >= strlen(prefix) + 26. */
void		 db_new_id(const char *prefix, char *out, size_t outsz);

/* --- authentication (read connection, event-loop thread) --- */
struct db_key {
	char		id[64];
	char		tenant_id[64];
	char		tenant_status[16];	/* "active", "suspended" */
	uint8_t		hash[32];		/* SHA-256 of the whole secret */
	int64_t		expires_at;		/* 0: never */
	int64_t		revoked_at;		/* 0: not revoked */
	bool		has_scopes;		/* false: every model */
	char		scopes[1024];		/* JSON array of model names */
};
/* Looks a key up by its public prefix.  1 found, 0 not found, -1 error. */
int		 db_key_by_prefix(struct db *, const char *prefix,
		    struct db_key *out);

/* --- tenants --- */
/* result {"id","name","status","plan","weight","created_at"} */
void		 db_tenant_create(struct db *, const char *name,
		    const char *actor, db_done_fn *, void *arg);
json_t		*db_tenant_get(struct db *, const char *id);	/* NULL: none */
json_t		*db_tenant_get_by_name(struct db *, const char *name);
/* Pages by id: rows with id > after (NULL: from the start), at most limit.
 * Returns {"data":[...], "has_more":bool}. */
json_t		*db_tenant_list(struct db *, const char *after, int limit);

/* --- API keys --- */
/* Stores a key whose secret the caller generated; only prefix and hash are
 * kept.  expires_at 0 = never.  DB_NOT_FOUND if the tenant does not exist.
 * result {"id","tenant_id","name","prefix","created_at","expires_at",
 * "revoked_at","last_used_at"} */
void		 db_key_create(struct db *, const char *tenant_id,
		    const char *name, const char *prefix, const uint8_t hash[32],
		    int64_t expires_at, const char *actor, db_done_fn *,
		    void *arg);
/* Sets revoked_at = now.  DB_NOT_FOUND if no such key. */
void		 db_key_revoke(struct db *, const char *key_id,
		    const char *actor, db_done_fn *, void *arg);
json_t		*db_key_get(struct db *, const char *id);	/* NULL: none */
json_t		*db_key_list(struct db *, const char *tenant_id,
		    const char *after, int limit);

/* --- models --- */
struct db_model_in {
	const char	*name;
	const char	*version;
	const char	*format;	/* "onnx", "gguf" */
	const char	*path;		/* absolute */
	const char	*sha256;	/* 64 hex chars */
	int64_t		 size;		/* bytes */
	json_t		*meta;		/* borrowed: {"inputs":[..],"outputs":[..]} */
};
/* DB_CONFLICT if (name, version) exists.  result: the row as
 * {"id","name","version","format","path","sha256","size","meta",
 * "created_at"} */
void		 db_model_create(struct db *, const struct db_model_in *,
		    const char *actor, db_done_fn *, void *arg);
json_t		*db_model_get(struct db *, const char *name,
		    const char *version);
json_t		*db_model_list(struct db *, const char *after, int limit);

/* --- deployments --- */
struct db_deployment_in {
	const char	*name;		/* public model name */
	const char	*model;		/* registered model name */
	const char	*version;	/* registered model version */
	int		 replicas;
	int		 threads;	/* OpenBLAS threads per replica */
	int		 max_batch;
	int64_t		 max_queue_delay_us;
	int		 min_replicas;	/* autoscaling bounds; 0: replicas */
	int		 max_replicas;
};
/* DB_CONFLICT if the name exists, DB_NOT_FOUND if the model version does
 * not.  result {"id","name","model","version","replicas","threads",
 * "max_batch","max_queue_delay_us","status","created_at","min_replicas",
 * "max_replicas"} */
void		 db_deployment_create(struct db *,
		    const struct db_deployment_in *, const char *actor,
		    db_done_fn *, void *arg);
json_t		*db_deployment_get(struct db *, const char *name);
json_t		*db_deployment_list(struct db *, const char *after, int limit);

/* --- metering --- */
struct usage_event {
	char		request_id[64];
	int64_t		ts_us;		/* Unix time of arrival, microseconds */
	char		tenant_id[64];
	char		key_id[64];
	char		model[128];	/* public (deployment) name */
	char		version[64];
	char		endpoint[32];	/* "infer", "chat", ... */
	int		status;		/* HTTP status sent */
	int64_t		queue_us;
	int64_t		compute_us;
	int64_t		bytes_in;
	int64_t		bytes_out;
	int64_t		prompt_tokens;
	int64_t		completion_tokens;
	int64_t		cost_micros;	/* price of the request */
	bool		admitted;	/* counted against quotas */
};
/* Queues one usage row (copied).  The callback runs once the row is
 * durable; the gateway sends the response from it.  DB_CONFLICT if the
 * request id was already recorded. */
void		 db_usage_record(struct db *, const struct usage_event *,
		    db_done_fn *, void *arg);
/* Usage rows filtered by tenant (NULL: all) and [from, to) in Unix seconds
 * (0: unbounded), ordered by id, paged with after (a usage row id as a
 * decimal string).  {"data":[...],"has_more":bool} */
json_t		*db_usage_list(struct db *, const char *tenant_id,
		    int64_t from, int64_t to, const char *after, int limit);

/* --- tenant status --- */
/* The status of a tenant, copied into status ("active", "suspended").
 * 1 found, 0 no such tenant, -1 error (logged).  Read per request by the
 * JWT path so that suspending a tenant takes effect at once. */
int		 db_tenant_status(struct db *, const char *id,
		    char status[16]);
/* Sets a tenant's status to "active" or "suspended" (anything else fails
 * the schema's CHECK: DB_ERROR).  DB_NOT_FOUND if no such tenant.
 * result: the tenant row as db_tenant_get() shows it. */
void		 db_tenant_set_status(struct db *, const char *id,
		    const char *status, const char *actor, db_done_fn *,
		    void *arg);

/* --- JWT issuers --- */
/* A signing key that tenants' JWTs may be verified with.  The caller
 * (admin/issuers.c through gateway/jwt.c) has validated every field; db/
 * only stores them.  key is an HMAC secret or a public key PEM. */
struct db_issuer_in {
	const char	*kid;
	const char	*alg;		/* "HS256", "RS256", "ES256" */
	const char	*key;		/* secret: never logged nor audited */
	const char	*iss;
	const char	*aud;
	const char	*tenant_claim;
	const char	*tenant_id;	/* NULL: tokens may name any tenant */
	const char	*key_fingerprint; /* goes into the audit row instead */
};
/* Rows of jwt_issuers are {"id","kid","alg","key","iss","aud",
 * "tenant_claim","tenant_id","created_at","deleted_at"}.  They hold the
 * key: callers strip it before showing a row to anyone.  Ids are "iss_"
 * + 24 hex. */
/* DB_CONFLICT if the kid was ever registered (a deleted issuer keeps its
 * kid, so a kid never names two keys).  result: the new row. */
void		 db_issuer_create(struct db *, const struct db_issuer_in *,
		    const char *actor, db_done_fn *, void *arg);
/* Sets deleted_at = now.  DB_NOT_FOUND if no such issuer; deleting a
 * deleted issuer again changes nothing and is not audited.  result: the
 * row. */
void		 db_issuer_delete(struct db *, const char *id,
		    const char *actor, db_done_fn *, void *arg);
json_t		*db_issuer_get(struct db *, const char *id);	/* NULL: none */
/* Issuers not deleted, paged by id: {"data":[...],"has_more":bool}. */
json_t		*db_issuer_list(struct db *, const char *after, int limit);

/* --- quotas, prices, key rotation, key use --- */
/* Limits of a tenant (key_id NULL) or of one of its keys; -1: unlimited.
 * allowed_models: borrowed JSON array of model names, NULL: all. */
struct db_quota_in {
	const char	*tenant_id;
	const char	*key_id;
	int64_t		 rpm;
	int64_t		 tpm;
	int64_t		 concurrent;
	int64_t		 month_tokens;
	int64_t		 month_credits;
	json_t		*allowed_models;
};
/* Replaces the quota row.  DB_NOT_FOUND if the tenant or key does not
 * exist.  result: the row {tenant_id, key_id, requests_per_minute, ...}
 * with null for unlimited. */
void		 db_quota_put(struct db *, const struct db_quota_in *,
		    const char *actor, db_done_fn *, void *arg);
/* The quota row of a key, or NULL. */
json_t		*db_quota_of_key(struct db *, const char *key_id);
/* Every quota row, as a JSON array (start-up). */
json_t		*db_quota_list(struct db *);
/* Counters to seed in-memory quotas with after a restart:
 * {"minute":[{tenant_id,key_id,requests,tokens}..],
 *  "month":[{tenant_id,key_id,tokens,credits}..]}
 * over usage rows since the given times (microseconds), 429s excluded. */
json_t		*db_usage_seed(struct db *, int64_t minute_start_us,
		    int64_t month_start_us);

/* A price of a model from starts_at (Unix seconds) on, in micro-units. */
struct db_price_in {
	const char	*model;
	int64_t		 starts_at;
	int64_t		 per_1k_input;
	int64_t		 per_1k_output;
	int64_t		 per_request;
	int64_t		 per_compute_second;
};
/* DB_CONFLICT if the model already has a price starting then. */
void		 db_price_add(struct db *, const struct db_price_in *,
		    const char *actor, db_done_fn *, void *arg);
/* Every price row ordered by model, starts_at (start-up). */
json_t		*db_price_list(struct db *);

/* Replaces key_id with a new key (same tenant, name, scopes, expiry and
 * key quota) whose prefix and hash the caller made; the old key keeps
 * working until grace_until.  DB_NOT_FOUND if the key does not exist, is
 * revoked, expired or already rotated.  result: the new key's row. */
void		 db_key_rotate(struct db *, const char *key_id,
		    const char *prefix, const uint8_t hash[32],
		    int64_t grace_until, const char *actor, db_done_fn *,
		    void *arg);
/* Restricts a key to the models in scopes (a JSON array of names; NULL:
 * every model).  result: the key row. */
void		 db_key_set_scopes(struct db *, const char *key_id,
		    json_t *scopes, const char *actor, db_done_fn *,
		    void *arg);
/* Records that keys were used at ts (fire and forget, no audit). */
void		 db_keys_touch(struct db *, const char *const *key_ids,
		    size_t n, int64_t ts);

/* --- scheduling --- */
/* A tenant's fair-queuing weight (>= 1) into *weight: 1 found, 0 no such
 * tenant (*weight = 1), -1 error (logged).  Read per request. */
int		 db_tenant_weight(struct db *, const char *id, int *weight);
/* Sets a tenant's weight (>= 1, else DB_ERROR from the schema's CHECK).
 * DB_NOT_FOUND if no such tenant.  result: the tenant row. */
void		 db_tenant_set_weight(struct db *, const char *id, int weight,
		    const char *actor, db_done_fn *, void *arg);
/* Sets a deployment's replica count and bounds (min <= replicas <= max,
 * else DB_ERROR from the schema's CHECK).  DB_NOT_FOUND if no such
 * deployment.  result: the deployment row. */
void		 db_deployment_scale(struct db *, const char *name,
		    int replicas, int min_replicas, int max_replicas,
		    const char *actor, db_done_fn *, void *arg);
/* Stores a deployment's traffic split (a JSON array of {"version",
 * "weight","replicas"}, borrowed) and keeps the one it replaces for
 * rollback.  DB_NOT_FOUND if no such deployment.  result: the row, with
 * "traffic" and "prev_traffic" as JSON text (NULL: the row's version
 * takes all traffic). */
void		 db_deployment_traffic(struct db *, const char *name,
		    json_t *traffic, const char *actor, db_done_fn *,
		    void *arg);
/* Swaps the traffic split with the previous one.  DB_NOT_FOUND if no
 * such deployment or it never changed.  result: the row. */
void		 db_deployment_rollback(struct db *, const char *name,
		    const char *actor, db_done_fn *, void *arg);
/* Removes a deployment.  DB_NOT_FOUND if none.  result: its last row. */
void		 db_deployment_delete(struct db *, const char *name,
		    const char *actor, db_done_fn *, void *arg);

/* --- audit --- */
/* Every db_*_create/revoke above writes its own audit row in the same
 * transaction.  {"data":[{"id","ts","actor","action","target","detail"}..]} */
json_t		*db_audit_list(struct db *, const char *after, int limit);
/* The same, filtered: action (exact, or a prefix such as "key" matching
 * "key.create"), target, actor (NULL: any) and ts in [from, to) (Unix
 * seconds; to 0: unbounded). */
struct db_audit_q {
	const char	*action;
	const char	*target;
	const char	*actor;
	int64_t		 from;
	int64_t		 to;
};
json_t		*db_audit_query(struct db *, const struct db_audit_q *,
		    const char *after, int limit);

/* --- filtered listings: a NULL filter matches every row; pages as the
 * unfiltered listings above --- */
/* status "active" / "suspended", plan: exact. */
json_t		*db_tenant_find(struct db *, const char *status,
		    const char *plan, const char *after, int limit);
/* status "active" (not revoked nor expired) or "revoked". */
json_t		*db_key_find(struct db *, const char *tenant_id,
		    const char *status, const char *after, int limit);
json_t		*db_model_find(struct db *, const char *name,
		    const char *after, int limit);
json_t		*db_deployment_find(struct db *, const char *model,
		    const char *after, int limit);
struct db_usage_q {
	const char	*tenant_id;
	const char	*model;
	const char	*key_id;
	int		 status;	/* HTTP status; 0: any */
	int64_t		 from;		/* Unix seconds, [from, to); 0: open */
	int64_t		 to;
};
json_t		*db_usage_find(struct db *, const struct db_usage_q *,
		    const char *after, int limit);
/* Changes any of weight (> 0; 0: unchanged), plan and status (NULL:
 * unchanged).  DB_NOT_FOUND if no such tenant; a bad status or weight
 * fails the schema's CHECK (DB_ERROR).  result: the tenant row. */
void		 db_tenant_update(struct db *, const char *id, int weight,
		    const char *plan, const char *status, const char *actor,
		    db_done_fn *, void *arg);

/* --- billing --- */
/* A calendar month (UTC): "YYYY-MM", idx = year * 12 + month - 1, and
 * its [start, end) in microseconds. */
struct db_period {
	char		period[8];
	int64_t		idx;
	int64_t		start_us;
	int64_t		end_us;
};
/* Closes a period: records the id of the last usage row committed (rows
 * of the period committed later are adjustments of the next open
 * period) and freezes every tenant's invoice lines, in one transaction.
 * DB_CONFLICT if already closed.  result: the billing_periods row
 * {"period","idx","start_us","end_us","last_usage_id","closed_at"}. */
void		 db_period_close(struct db *, const struct db_period *,
		    const char *actor, db_done_fn *, void *arg);
json_t		*db_period_get(struct db *, const char *period); /* NULL: open */
json_t		*db_period_list(struct db *);	/* closed ones, by idx */
/* A tenant's invoice lines of a period computed from usage_events, with
 * usage rows up to upper_id (INT64_MAX for an open period): an array of
 * {"tenant_id","kind" (usage|adjustment),"for_period","model",
 * "price_starts_at","unit" (requests|input_tokens|output_tokens|
 * compute_seconds|budget_cap),"quantity","unit_price_micros",
 * "amount_micros"}; quantities of compute_seconds are microseconds.
 * Their amounts add up to the sum of cost_micros.  NULL on error. */
json_t		*db_invoice_lines(struct db *, const char *tenant_id,
		    const struct db_period *, int64_t upper_id);
/* The lines frozen when the period closed, same shape. */
json_t		*db_invoice_frozen(struct db *, const char *tenant_id,
		    const char *period);

/* --- usage reports --- */
struct db_report_q {
	int64_t		 from_us;	/* [from, to) */
	int64_t		 to_us;
	const char	*tenant_id;	/* NULL: any */
	const char	*model;
	const char	*key_id;
};
/* One row per tenant, model, key and UTC day: {"tenant_id","model",
 * "key_id" (null: JWT),"day","requests","errors" (status not 2xx),
 * "input_tokens","output_tokens","latency_p50_us","latency_p95_us",
 * "latency_p99_us"}.  Latency is queue_us + compute_us of the served
 * (2xx) requests, nearest-rank percentiles (the value at rank
 * ceil(p * n / 100)); null when none was served.  NULL on error.
 * XXX: reads every row of the range on the event loop; the caller bounds
 * the range. */
json_t		*db_usage_report(struct db *, const struct db_report_q *);

/* --- idempotent admin requests --- */
/* An answer is kept DB_IDEM_TTL_S: older ones are not found, may be
 * stored again under the same key, and are deleted by the writer thread
 * (at its next commit, at most once a minute). */
#define DB_IDEM_TTL_S	(24 * 60 * 60)
/* {"key","request_hash","status","content_type","body","created_at"} of
 * an answer younger than DB_IDEM_TTL_S, or NULL. */
json_t		*db_idem_get(struct db *, const char *key);
/* Stores the response given to a request with an Idempotency-Key.
 * DB_CONFLICT if the key is stored already. */
void		 db_idem_put(struct db *, const char *key,
		    const char *request_hash, int status,
		    const char *content_type, const char *body, db_done_fn *,
		    void *arg);

/* --- reads for the console and paged lists --- */
/* The quota row of a tenant (key_id NULL) or of one key, or NULL if none
 * is set (unlimited, or the tenant's limits for a key). */
json_t		*db_quota_get(struct db *, const char *tenant_id,
		    const char *key_id);
/* Prices ordered by (model, starts_at) after the cursor (after_model
 * NULL: from the start), only model's if not NULL.  Rows carry
 * "id": "<model>:<starts_at>", the cursor of the next page. */
json_t		*db_price_page(struct db *, const char *model,
		    const char *after_model, int64_t after_starts_at,
		    int limit);
/* Closed billing periods after the period "YYYY-MM" after (NULL: from
 * the first); rows carry "id": the period. */
json_t		*db_period_page(struct db *, const char *after, int limit);
/* Tenants with id > after, only only_id's row if not NULL. */
json_t		*db_tenant_page(struct db *, const char *only_id,
		    const char *after, int limit);
/* As db_usage_find, newest first: rows with id < after (NULL: the
 * newest). */
json_t		*db_usage_find_desc(struct db *, const struct db_usage_q *,
		    const char *after, int limit);

/* Per-step usage for the dashboard over [from_us, to_us) in steps of
 * step_us (the last may be shorter), at most DB_SERIES_MAX_STEPS. */
#define DB_SERIES_MAX_STEPS	1440
struct db_series_q {
	int64_t		 from_us;
	int64_t		 to_us;
	int64_t		 step_us;
	const char	*tenant_id;	/* NULL: every tenant */
	int		 top;		/* tenants in top_tenants */
};
/* {"data":[{"t" (Unix seconds of the step's start),"requests","errors"
 * (status not 2xx),"input_tokens","output_tokens","cost_micros",
 * "latency_p50_us","latency_p95_us","latency_p99_us"}..] (every step,
 * also empty ones; latency as in db_usage_report, null when none was
 * served), "top_tenants":[{"tenant_id","requests","errors",
 * "input_tokens","output_tokens","cost_micros"}..] (most requests
 * first)}.  NULL on error or a bad range.  Reads the range's rows on the
 * event loop: the caller bounds it. */
json_t		*db_usage_series(struct db *, const struct db_series_q *);
#endif
