/* db/db.c - see db.h.
 *
 * Threads.  Exactly two threads enter this file:
 *  - the event-loop thread (maasd's main thread): db_open, db_close, every
 *    read (db_*_get/list, db_key_by_prefix) on db->rd, every job
 *    submission, and completion delivery (db_wake_cb);
 *  - the writer thread (db_writer_main): the only user of db->wr once
 *    db_open has returned.
 * They share the job queue, the done list and the counters, all guarded by
 * db->mu, and nothing else.  A job belongs to the submitting thread until
 * it is queued, to the writer from the moment it is taken off the queue
 * until it is put on the done list, and then to the event loop, which runs
 * its callback and frees it.  A job's jansson values are created by the
 * writer and handed over whole, so no json_t is ever used by two threads
 * at once.  Each connection is opened SQLITE_OPEN_NOMUTEX because each is
 * only ever used by one thread.
 *
 * Group commit.  The writer sleeps on db->cv until jobs are queued, takes
 * the whole queue, and runs it as one BEGIN IMMEDIATE ... COMMIT with each
 * job inside SAVEPOINT job / RELEASE job, rolled back to its savepoint if
 * it fails.  While that transaction fsyncs, new jobs pile up in the queue
 * and become the next batch, so under load many usage rows share one
 * fsync and the batch size adapts to the disk's latency by itself.  Only
 * after COMMIT returns are the jobs put on the done list; the writer then
 * writes one byte to a non-blocking pipe whose read end is an EV_PERSIST
 * event in the loop, so libevent needs no thread support (no evthread).
 * A byte is written only when the done list was empty: a non-empty list
 * already has a wake-up on its way, since the loop drains the pipe before
 * it takes the list.
 *
 * Nothing is bounded silently: the queue grows as needed and a queued job
 * always gets its callback, with DB_ERROR if its transaction could not
 * commit.  Completion callbacks must not call db_close().
 *
 * Key hashes are secrets for logging purposes: log ids, never hashes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "db/schema.h"

#define DB_BUSY_TIMEOUT_MS	5000	/* writer: wait out other processes */
#define DB_READ_BUSY_MS		250	/* reader: the event loop waits */
#define DB_PAGE_DEFAULT		100
#define DB_PAGE_MAX		1000
#define DB_ID_SIZE		64	/* "<prefix>_" + 24 hex + NUL fits */
#define DB_JOB_MAX_STR		10	/* an issuer job: actor and 8 fields */
#define DB_SWEEP_S		60	/* idempotency sweeps, at most */

/* --- statements --- */

/* Column lists shared by an insert's RETURNING clause and the reads, so a
 * create returns exactly what a later get or list shows. */
#define TENANT_COLS	"id, name, status, plan, weight, created_at"
#define KEY_COLS	"id, tenant_id, name, prefix, scopes, created_at, " \
			"expires_at, revoked_at, last_used_at, replaced_by"
#define MODEL_COLS	"id, name, version, format, path, sha256, size, " \
			"meta, created_at"
#define DEP_COLS	"id, name, model, version, replicas, threads, " \
			"max_batch, max_queue_delay_us, status, created_at, " \
			"min_replicas, max_replicas, traffic, prev_traffic"
#define USAGE_COLS	"id, request_id, ts_us, tenant_id, key_id, model, " \
			"version, endpoint, status, queue_us, compute_us, " \
			"bytes_in, bytes_out, prompt_tokens, completion_tokens, " \
			"cost_micros"
#define AUDIT_COLS	"id, ts, actor, action, target, detail"
#define QUOTA_COLS	"tenant_id, key_id, requests_per_minute, " \
			"tokens_per_minute, max_concurrent_requests, " \
			"monthly_token_budget, monthly_credit_budget_micros, " \
			"allowed_models"
/* A price's id is its cursor in the price list: "<model>:<starts_at>". */
#define PRICE_COLS	"model || ':' || starts_at AS id, " \
			"model, starts_at, per_1k_input_micros, " \
			"per_1k_output_micros, per_request_micros, " \
			"per_compute_second_micros"
#define ISSUER_COLS	"id, kid, alg, key, iss, aud, tenant_claim, " \
			"tenant_id, created_at, deleted_at"

enum db_sql {
	SQL_BEGIN,
	SQL_COMMIT,
	SQL_ROLLBACK,
	SQL_SAVEPOINT,
	SQL_RELEASE,
	SQL_ROLLBACK_TO,
	SQL_AUDIT_INSERT,
	SQL_AUDIT_LIST,
	SQL_TENANT_INSERT,
	SQL_TENANT_GET,
	SQL_TENANT_BY_NAME,
	SQL_TENANT_LIST,
	SQL_KEY_INSERT,
	SQL_KEY_GET,
	SQL_KEY_REVOKE,
	SQL_KEY_BY_PREFIX,
	SQL_KEY_LIST,
	SQL_MODEL_INSERT,
	SQL_MODEL_GET,
	SQL_MODEL_LIST,
	SQL_DEP_INSERT,
	SQL_DEP_GET,
	SQL_DEP_LIST,
	SQL_USAGE_INSERT,
	SQL_USAGE_LIST,
	SQL_USAGE_LIST_TENANT,
	SQL_TENANT_STATUS,
	SQL_TENANT_SET_STATUS,
	SQL_ISSUER_INSERT,
	SQL_ISSUER_GET,
	SQL_ISSUER_DELETE,
	SQL_ISSUER_LIST,
	SQL_QUOTA_DELETE,
	SQL_QUOTA_INSERT,
	SQL_QUOTA_LIST,
	SQL_SEED_MINUTE,
	SQL_SEED_MONTH,
	SQL_PRICE_INSERT,
	SQL_PRICE_LIST,
	SQL_KEY_ROTATE_OLD,
	SQL_KEY_INSERT_FULL,
	SQL_QUOTA_COPY,
	SQL_QUOTA_OF_KEY,
	SQL_KEY_TOUCH,
	SQL_KEY_SCOPES,
	SQL_TENANT_WEIGHT,
	SQL_TENANT_SET_WEIGHT,
	SQL_DEP_SCALE,
	SQL_DEP_TRAFFIC,
	SQL_DEP_ROLLBACK,
	SQL_DEP_DELETE,
	SQL_PERIOD_INSERT,
	SQL_PERIOD_FREEZE,
	SQL_PERIOD_GET,
	SQL_PERIOD_LIST,
	SQL_INVOICE_LINES,
	SQL_INVOICE_FROZEN,
	SQL_USAGE_REPORT,
	SQL_IDEM_GET,
	SQL_IDEM_INSERT,
	SQL_AUDIT_FILTER,
	SQL_TENANT_FIND,
	SQL_KEY_FIND,
	SQL_MODEL_FIND,
	SQL_DEP_FIND,
	SQL_USAGE_FIND,
	SQL_TENANT_UPDATE,
	SQL_QUOTA_GET,
	SQL_PRICE_PAGE,
	SQL_PERIOD_PAGE,
	SQL_TENANT_PAGE,
	SQL_USAGE_FIND_DESC,
	SQL_USAGE_SERIES,
	SQL_USAGE_TOP,
	SQL_IDEM_DROP,
	SQL_IDEM_SWEEP,
	SQL_COUNT
};

/* The invoice lines of a period, computed from usage_events.  TENANT is
 * the tenant condition on u, UPPER the highest usage row id to count
 * (the period's last_usage_id once it closes), ?2 and ?3 the period's
 * [start, end) in microseconds, ?4 its idx.
 *  - usage: served (2xx) rows of the period;
 *  - adjustment: served rows of an earlier closed period q committed
 *    after q closed (id > q.last_usage_id) that belong here: every month
 *    between q and this period was closed before the row was committed
 *    (its last_usage_id is lower), so this is the first period still
 *    open when the row arrived.
 * Each row is priced with the price in effect at its arrival, as the
 * gateway did, each part rounded half up per request, as price_cost()
 * does; what a budget cut off the gateway's charge (cost_micros below
 * the price) is a 'budget_cap' line, so that the lines always add up to
 * the sum of cost_micros. */
#define BILL_LINES(TENANT, UPPER)					\
	"WITH r AS ("							\
	" SELECT u.tenant_id, 'usage' AS kind, NULL AS for_period,"	\
	"  u.model, u.prompt_tokens AS tin, u.completion_tokens AS tout,"\
	"  u.compute_us AS cus, u.cost_micros AS cost, u.ts_us"		\
	" FROM usage_events AS u WHERE " TENANT				\
	"  AND u.ts_us >= ?2 AND u.ts_us < ?3 AND u.id <= " UPPER	\
	"  AND u.status BETWEEN 200 AND 299"				\
	" UNION ALL"							\
	" SELECT u.tenant_id, 'adjustment', q.period, u.model,"		\
	"  u.prompt_tokens, u.completion_tokens, u.compute_us,"		\
	"  u.cost_micros, u.ts_us"					\
	" FROM billing_periods AS q JOIN usage_events AS u"		\
	"  ON u.ts_us >= q.start_us AND u.ts_us < q.end_us"		\
	"  AND u.id > q.last_usage_id"					\
	" WHERE " TENANT " AND q.idx < ?4 AND u.id <= " UPPER		\
	"  AND u.status BETWEEN 200 AND 299"				\
	"  AND (SELECT count(*) FROM billing_periods AS m"		\
	"  WHERE m.idx > q.idx AND m.idx < ?4 AND m.last_usage_id < u.id)"\
	"  = ?4 - q.idx - 1"						\
	"), v AS ("							\
	" SELECT r.*, (SELECT max(p.starts_at) FROM prices AS p"	\
	"  WHERE p.model = r.model AND p.starts_at <= r.ts_us / 1000000)"\
	"  AS ps FROM r"						\
	"), g AS ("							\
	" SELECT v.tenant_id, v.kind, v.for_period, v.model, v.ps,"	\
	"  count(*) AS n, sum(v.tin) AS tin, sum(v.tout) AS tout,"	\
	"  sum(v.cus) AS cus, sum(v.cost) AS cost,"			\
	"  ifnull(p.per_request_micros, 0) AS pr,"			\
	"  ifnull(p.per_1k_input_micros, 0) AS pi,"			\
	"  ifnull(p.per_1k_output_micros, 0) AS po,"			\
	"  ifnull(p.per_compute_second_micros, 0) AS pc,"		\
	"  sum((ifnull(p.per_1k_input_micros, 0) * v.tin + 500) / 1000)"\
	"  AS ai,"							\
	"  sum((ifnull(p.per_1k_output_micros, 0) * v.tout + 500) / 1000)"\
	"  AS ao,"							\
	"  sum((ifnull(p.per_compute_second_micros, 0) * v.cus + 500000)"\
	"  / 1000000) AS ac"						\
	" FROM v LEFT JOIN prices AS p"					\
	"  ON p.model = v.model AND p.starts_at = v.ps"			\
	" GROUP BY v.tenant_id, v.kind, v.for_period, v.model, v.ps)"	\
	" SELECT tenant_id, kind, for_period, model,"			\
	"  ps AS price_starts_at, unit, quantity, unit_price_micros,"	\
	"  amount_micros FROM ("						\
	"  SELECT *, 1 AS o, 'requests' AS unit, n AS quantity,"	\
	"   pr AS unit_price_micros, n * pr AS amount_micros FROM g"	\
	"  UNION ALL SELECT *, 2, 'input_tokens', tin, pi, ai FROM g"	\
	"   WHERE tin > 0"						\
	"  UNION ALL SELECT *, 3, 'output_tokens', tout, po, ao FROM g"	\
	"   WHERE tout > 0"						\
	"  UNION ALL SELECT *, 4, 'compute_seconds', cus, pc, ac FROM g"\
	"   WHERE cus > 0"						\
	"  UNION ALL SELECT *, 5, 'budget_cap', 0, 0,"			\
	"   cost - (n * pr + ai + ao + ac) FROM g"			\
	"   WHERE cost <> n * pr + ai + ao + ac"			\
	" ) ORDER BY tenant_id, kind DESC, for_period, model,"		\
	"  price_starts_at, o"

#define PERIOD_COLS	"period, idx, start_us, end_us, last_usage_id, closed_at"
#define LINE_COLS	"tenant_id, kind, for_period, model, price_starts_at, " \
			"unit, quantity, unit_price_micros, amount_micros"

/* Listings page by id.  The LIMIT is always the highest-numbered
 * parameter (stmt_page binds it; "L" in the bind format).  "No cursor" is
 * bound as '' or 0, which sort below every id, rather than written as
 * "?1 IS NULL OR id > ?1", so that the index on id stays usable. */
static const char *const db_sql_text[SQL_COUNT] = {
	[SQL_BEGIN] = "BEGIN IMMEDIATE",
	[SQL_COMMIT] = "COMMIT",
	[SQL_ROLLBACK] = "ROLLBACK",
	[SQL_SAVEPOINT] = "SAVEPOINT job",
	[SQL_RELEASE] = "RELEASE job",
	[SQL_ROLLBACK_TO] = "ROLLBACK TO job",
	[SQL_AUDIT_INSERT] =
	    "INSERT INTO audit_log (ts, actor, action, target, detail)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)",
	[SQL_AUDIT_LIST] =
	    "SELECT " AUDIT_COLS " FROM audit_log WHERE id > ?1"
	    " ORDER BY id LIMIT ?2",
	[SQL_TENANT_INSERT] =
	    "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)"
	    " RETURNING " TENANT_COLS,
	[SQL_TENANT_GET] = "SELECT " TENANT_COLS " FROM tenants WHERE id = ?1",
	[SQL_TENANT_BY_NAME] =
	    "SELECT " TENANT_COLS " FROM tenants WHERE name = ?1",
	[SQL_TENANT_LIST] =
	    "SELECT " TENANT_COLS " FROM tenants WHERE id > ?1"
	    " ORDER BY id LIMIT ?2",
	[SQL_KEY_INSERT] =
	    "INSERT INTO api_keys (id, tenant_id, name, prefix, hash,"
	    " created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
	    " RETURNING " KEY_COLS,
	[SQL_KEY_GET] = "SELECT " KEY_COLS " FROM api_keys WHERE id = ?1",
	[SQL_KEY_REVOKE] =
	    "UPDATE api_keys SET revoked_at = ?2"
	    " WHERE id = ?1 AND revoked_at IS NULL RETURNING " KEY_COLS,
	[SQL_KEY_BY_PREFIX] =
	    "SELECT k.id, k.tenant_id, t.status, k.hash, k.expires_at,"
	    " k.revoked_at, k.scopes FROM api_keys AS k"
	    " JOIN tenants AS t ON t.id = k.tenant_id WHERE k.prefix = ?1",
	[SQL_KEY_LIST] =
	    "SELECT " KEY_COLS " FROM api_keys WHERE tenant_id = ?1"
	    " AND id > ?2 ORDER BY id LIMIT ?3",
	[SQL_MODEL_INSERT] =
	    "INSERT INTO models (id, name, version, format, path, sha256,"
	    " size, meta, created_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
	    " RETURNING " MODEL_COLS,
	[SQL_MODEL_GET] =
	    "SELECT " MODEL_COLS " FROM models"
	    " WHERE name = ?1 AND version = ?2",
	[SQL_MODEL_LIST] =
	    "SELECT " MODEL_COLS " FROM models WHERE id > ?1"
	    " ORDER BY id LIMIT ?2",
	/* The API has one replica count for now: min = max = replicas. */
	[SQL_DEP_INSERT] =
	    "INSERT INTO deployments (id, name, model, version, replicas,"
	    " min_replicas, max_replicas, threads, max_batch,"
	    " max_queue_delay_us, created_at, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?10, ?11, ?6, ?7, ?8, ?9, ?9)"
	    " RETURNING " DEP_COLS,
	[SQL_DEP_GET] = "SELECT " DEP_COLS " FROM deployments WHERE name = ?1",
	[SQL_DEP_LIST] =
	    "SELECT " DEP_COLS " FROM deployments WHERE id > ?1"
	    " ORDER BY id LIMIT ?2",
	[SQL_USAGE_INSERT] =
	    "INSERT INTO usage_events (request_id, ts_us, tenant_id, key_id,"
	    " model, version, endpoint, status, queue_us, compute_us,"
	    " bytes_in, bytes_out, prompt_tokens, completion_tokens,"
	    " cost_micros, admitted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
	    " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[SQL_USAGE_LIST] =
	    "SELECT " USAGE_COLS " FROM usage_events"
	    " WHERE ts_us >= ?1 AND ts_us < ?2 AND id > ?3"
	    " ORDER BY id LIMIT ?4",
	/* A separate statement rather than "?1 IS NULL OR tenant_id = ?1",
	 * which would keep the planner off the (tenant_id, ts_us) index. */
	[SQL_USAGE_LIST_TENANT] =
	    "SELECT " USAGE_COLS " FROM usage_events"
	    " WHERE tenant_id = ?1 AND ts_us >= ?2 AND ts_us < ?3 AND id > ?4"
	    " ORDER BY id LIMIT ?5",
	[SQL_TENANT_STATUS] = "SELECT status FROM tenants WHERE id = ?1",
	[SQL_TENANT_SET_STATUS] =
	    "UPDATE tenants SET status = ?2 WHERE id = ?1"
	    " RETURNING " TENANT_COLS,
	[SQL_ISSUER_INSERT] =
	    "INSERT INTO jwt_issuers (id, kid, alg, key, iss, aud,"
	    " tenant_claim, tenant_id, created_at) VALUES (?1, ?2, ?3, ?4,"
	    " ?5, ?6, ?7, ?8, ?9) RETURNING " ISSUER_COLS,
	[SQL_ISSUER_GET] =
	    "SELECT " ISSUER_COLS " FROM jwt_issuers WHERE id = ?1",
	[SQL_ISSUER_DELETE] =
	    "UPDATE jwt_issuers SET deleted_at = ?2"
	    " WHERE id = ?1 AND deleted_at IS NULL RETURNING " ISSUER_COLS,
	[SQL_ISSUER_LIST] =
	    "SELECT " ISSUER_COLS " FROM jwt_issuers"
	    " WHERE deleted_at IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
	[SQL_QUOTA_DELETE] =
	    "DELETE FROM quotas WHERE tenant_id = ?1"
	    " AND ifnull(key_id, '') = ifnull(?2, '')",
	[SQL_QUOTA_INSERT] =
	    "INSERT INTO quotas (tenant_id, key_id, requests_per_minute,"
	    " tokens_per_minute, max_concurrent_requests,"
	    " monthly_token_budget, monthly_credit_budget_micros,"
	    " allowed_models) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
	    " RETURNING " QUOTA_COLS,
	[SQL_QUOTA_LIST] = "SELECT " QUOTA_COLS " FROM quotas ORDER BY id",
	/* Counters a restart must not lose: requests and tokens of the
	 * current minute, tokens and credits of the current month, over
	 * the requests quotas admitted. */
	[SQL_SEED_MINUTE] =
	    "SELECT tenant_id, key_id, count(*) AS requests,"
	    " sum(prompt_tokens + completion_tokens) AS tokens"
	    " FROM usage_events WHERE ts_us >= ?1 AND admitted = 1"
	    " GROUP BY tenant_id, key_id",
	[SQL_SEED_MONTH] =
	    "SELECT tenant_id, key_id,"
	    " sum(prompt_tokens + completion_tokens) AS tokens,"
	    " sum(cost_micros) AS credits"
	    " FROM usage_events WHERE ts_us >= ?1 AND admitted = 1"
	    " GROUP BY tenant_id, key_id",
	[SQL_PRICE_INSERT] =
	    "INSERT INTO prices (model, starts_at, per_1k_input_micros,"
	    " per_1k_output_micros, per_request_micros,"
	    " per_compute_second_micros) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
	    " RETURNING " PRICE_COLS,
	[SQL_PRICE_LIST] =
	    "SELECT " PRICE_COLS " FROM prices ORDER BY model, starts_at",
	[SQL_KEY_ROTATE_OLD] =
	    "UPDATE api_keys SET replaced_by = ?2,"
	    " expires_at = CASE WHEN expires_at IS NULL OR expires_at > ?3"
	    " THEN ?3 ELSE expires_at END"
	    " WHERE id = ?1 AND revoked_at IS NULL AND replaced_by IS NULL"
	    " RETURNING " KEY_COLS,
	/* The new key inherits name, scopes and expiry; only a live key
	 * (not revoked, expired or already rotated) can be rotated. */
	[SQL_KEY_INSERT_FULL] =
	    "INSERT INTO api_keys (id, tenant_id, name, prefix, hash,"
	    " scopes, created_at, expires_at)"
	    " SELECT ?1, tenant_id, name, ?2, ?3, scopes, ?4, expires_at"
	    " FROM api_keys WHERE id = ?5 AND revoked_at IS NULL"
	    " AND replaced_by IS NULL"
	    " AND (expires_at IS NULL OR expires_at > ?4) RETURNING " KEY_COLS,
	[SQL_QUOTA_COPY] =
	    "INSERT INTO quotas (tenant_id, key_id, requests_per_minute,"
	    " tokens_per_minute, max_concurrent_requests,"
	    " monthly_token_budget, monthly_credit_budget_micros,"
	    " allowed_models) SELECT tenant_id, ?2, requests_per_minute,"
	    " tokens_per_minute, max_concurrent_requests,"
	    " monthly_token_budget, monthly_credit_budget_micros,"
	    " allowed_models FROM quotas WHERE key_id = ?1",
	[SQL_QUOTA_OF_KEY] = "SELECT " QUOTA_COLS " FROM quotas"
	    " WHERE key_id = ?1",
	[SQL_KEY_SCOPES] =
	    "UPDATE api_keys SET scopes = ?2 WHERE id = ?1"
	    " RETURNING " KEY_COLS,
	[SQL_KEY_TOUCH] =
	    "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1"
	    " AND (last_used_at IS NULL OR last_used_at < ?2)",
	[SQL_TENANT_WEIGHT] = "SELECT weight FROM tenants WHERE id = ?1",
	[SQL_TENANT_SET_WEIGHT] =
	    "UPDATE tenants SET weight = ?2 WHERE id = ?1"
	    " RETURNING " TENANT_COLS,
	[SQL_DEP_SCALE] =
	    "UPDATE deployments SET replicas = ?2, min_replicas = ?3,"
	    " max_replicas = ?4, updated_at = ?5 WHERE name = ?1"
	    " RETURNING " DEP_COLS,
	/* The set being replaced is kept for rollback. */
	[SQL_DEP_TRAFFIC] =
	    "UPDATE deployments SET prev_traffic = coalesce(traffic,"
	    " json_array(json_object('version', version, 'weight', 100,"
	    " 'replicas', replicas))), traffic = ?2, updated_at = ?3"
	    " WHERE name = ?1 RETURNING " DEP_COLS,
	/* Swaps the two sets: a second rollback undoes the first. */
	[SQL_DEP_ROLLBACK] =
	    "UPDATE deployments SET traffic = prev_traffic,"
	    " prev_traffic = traffic, updated_at = ?2"
	    " WHERE name = ?1 AND prev_traffic IS NOT NULL"
	    " RETURNING " DEP_COLS,
	[SQL_DEP_DELETE] =
	    "DELETE FROM deployments WHERE name = ?1 RETURNING " DEP_COLS,
	/* last_usage_id is read inside the writer's transaction: every
	 * usage row committed before the close has a lower id, every later
	 * one a higher id (rowids only grow: usage rows are never
	 * deleted). */
	[SQL_PERIOD_INSERT] =
	    "INSERT INTO billing_periods (period, idx, start_us, end_us,"
	    " last_usage_id, closed_at) VALUES (?1, ?2, ?3, ?4,"
	    " (SELECT ifnull(max(id), 0) FROM usage_events), ?5)"
	    " RETURNING " PERIOD_COLS,
	[SQL_PERIOD_FREEZE] =
	    "INSERT INTO invoice_lines (period, " LINE_COLS ")"
	    " SELECT ?1, " LINE_COLS " FROM (" BILL_LINES("1",
	    "(SELECT last_usage_id FROM billing_periods WHERE period = ?1)")
	    ")",
	[SQL_PERIOD_GET] =
	    "SELECT " PERIOD_COLS " FROM billing_periods WHERE period = ?1",
	[SQL_PERIOD_LIST] =
	    "SELECT " PERIOD_COLS " FROM billing_periods ORDER BY idx",
	[SQL_INVOICE_LINES] = BILL_LINES("u.tenant_id = ?1", "?5"),
	[SQL_INVOICE_FROZEN] =
	    "SELECT " LINE_COLS " FROM invoice_lines"
	    " WHERE period = ?1 AND tenant_id = ?2 ORDER BY id",
	/* Sorted so that each group's served latencies come in ascending
	 * order: the percentiles are then read off by rank. */
	[SQL_USAGE_REPORT] =
	    "SELECT tenant_id, model, ifnull(key_id, '') AS key_id,"
	    " date(ts_us / 1000000, 'unixepoch') AS day, status,"
	    " prompt_tokens, completion_tokens, queue_us + compute_us AS lat"
	    " FROM usage_events WHERE ts_us >= ?1 AND ts_us < ?2"
	    " AND (?3 IS NULL OR tenant_id = ?3)"
	    " AND (?4 IS NULL OR model = ?4)"
	    " AND (?5 IS NULL OR key_id = ?5)"
	    " ORDER BY tenant_id, model, key_id, day, lat",
	[SQL_IDEM_GET] =
	    "SELECT key, request_hash, status, content_type, body, created_at"
	    " FROM idempotency_keys WHERE key = ?1 AND created_at >= ?2",
	[SQL_IDEM_INSERT] =
	    "INSERT INTO idempotency_keys (key, request_hash, status,"
	    " content_type, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[SQL_AUDIT_FILTER] =
	    "SELECT " AUDIT_COLS " FROM audit_log WHERE id > ?1"
	    " AND (?2 IS NULL OR action = ?2 OR action GLOB ?2 || '.*')"
	    " AND (?3 IS NULL OR target = ?3)"
	    " AND (?4 IS NULL OR actor = ?4)"
	    " AND ts >= ?5 AND ts < ?6 ORDER BY id LIMIT ?7",
	/* Filtered listings; a NULL filter matches every row. */
	[SQL_TENANT_FIND] =
	    "SELECT " TENANT_COLS " FROM tenants WHERE id > ?1"
	    " AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR plan = ?3)"
	    " ORDER BY id LIMIT ?4",
	[SQL_KEY_FIND] =
	    "SELECT " KEY_COLS " FROM api_keys WHERE tenant_id = ?1"
	    " AND id > ?2 AND (?3 IS NULL"
	    " OR (?3 = 'revoked' AND revoked_at IS NOT NULL)"
	    " OR (?3 = 'active' AND revoked_at IS NULL"
	    " AND (expires_at IS NULL OR expires_at > ?4)))"
	    " ORDER BY id LIMIT ?5",
	[SQL_MODEL_FIND] =
	    "SELECT " MODEL_COLS " FROM models WHERE id > ?1"
	    " AND (?2 IS NULL OR name = ?2) ORDER BY id LIMIT ?3",
	[SQL_DEP_FIND] =
	    "SELECT " DEP_COLS " FROM deployments WHERE id > ?1"
	    " AND (?2 IS NULL OR model = ?2) ORDER BY id LIMIT ?3",
	[SQL_USAGE_FIND] =
	    "SELECT " USAGE_COLS " FROM usage_events"
	    " WHERE ts_us >= ?1 AND ts_us < ?2 AND id > ?3"
	    " AND (?4 IS NULL OR tenant_id = ?4)"
	    " AND (?5 IS NULL OR model = ?5) AND (?6 IS NULL OR key_id = ?6)"
	    " AND (?7 = 0 OR status = ?7)"
	    " ORDER BY id LIMIT ?8",
	[SQL_TENANT_UPDATE] =
	    "UPDATE tenants SET weight = ifnull(?2, weight),"
	    " plan = ifnull(?3, plan), status = ifnull(?4, status)"
	    " WHERE id = ?1 RETURNING " TENANT_COLS,
	/* Uses the quotas_scope expression index. */
	[SQL_QUOTA_GET] =
	    "SELECT " QUOTA_COLS " FROM quotas WHERE tenant_id = ?1"
	    " AND ifnull(key_id, '') = ifnull(?2, '')",
	/* Prices page by (model, starts_at), their primary key. */
	[SQL_PRICE_PAGE] =
	    "SELECT " PRICE_COLS " FROM prices"
	    " WHERE (model, starts_at) > (?1, ?2)"
	    " AND (?3 IS NULL OR model = ?3)"
	    " ORDER BY model, starts_at LIMIT ?4",
	/* "YYYY-MM" sorts as the months do. */
	[SQL_PERIOD_PAGE] =
	    "SELECT period AS id, " PERIOD_COLS " FROM billing_periods"
	    " WHERE period > ?1 ORDER BY period LIMIT ?2",
	[SQL_TENANT_PAGE] =
	    "SELECT " TENANT_COLS " FROM tenants WHERE id > ?1"
	    " AND (?2 IS NULL OR id = ?2) ORDER BY id LIMIT ?3",
	[SQL_USAGE_FIND_DESC] =
	    "SELECT " USAGE_COLS " FROM usage_events"
	    " WHERE ts_us >= ?1 AND ts_us < ?2 AND id < ?3"
	    " AND (?4 IS NULL OR tenant_id = ?4)"
	    " AND (?5 IS NULL OR model = ?5) AND (?6 IS NULL OR key_id = ?6)"
	    " AND (?7 = 0 OR status = ?7)"
	    " ORDER BY id DESC LIMIT ?8",
	/* Step b of [?1, ?2) in steps of ?3 microseconds; within a step
	 * the latencies come in ascending order, to be read off by rank.
	 * ts_us >= ?1, so the division floors. */
	[SQL_USAGE_SERIES] =
	    "SELECT (ts_us - ?1) / ?3 AS b, status, prompt_tokens,"
	    " completion_tokens, queue_us + compute_us AS lat, cost_micros"
	    " FROM usage_events WHERE ts_us >= ?1 AND ts_us < ?2"
	    " AND (?4 IS NULL OR tenant_id = ?4)"
	    " ORDER BY b, lat",
	[SQL_USAGE_TOP] =
	    "SELECT tenant_id, count(*) AS requests,"
	    " sum(status NOT BETWEEN 200 AND 299) AS errors,"
	    " sum(prompt_tokens) AS input_tokens,"
	    " sum(completion_tokens) AS output_tokens,"
	    " sum(cost_micros) AS cost_micros"
	    " FROM usage_events WHERE ts_us >= ?1 AND ts_us < ?2"
	    " AND (?3 IS NULL OR tenant_id = ?3)"
	    " GROUP BY tenant_id ORDER BY requests DESC, tenant_id LIMIT ?4",
	/* An expired answer gives its key back (before the sweep). */
	[SQL_IDEM_DROP] =
	    "DELETE FROM idempotency_keys WHERE key = ?1 AND created_at < ?2",
	[SQL_IDEM_SWEEP] =
	    "DELETE FROM idempotency_keys WHERE created_at < ?1",
};

/* One SQLite connection and its statement cache.  Used by one thread. */
struct db_conn {
	sqlite3		*h;
	sqlite3_stmt	*st[SQL_COUNT];	/* prepared on first use, then kept */
	const char	*name;		/* "read" or "write", for log lines */
};

/* --- jobs --- */

/* One statement of a generic write job (db_steps_submit): its arguments
 * are a JSON array bound in order (string, integer, null). */
#define DB_MAX_STEPS	8
struct db_step {
	enum db_sql	 sql;
	json_t		*args;		/* owned */
	unsigned	 flags;
#define STEP_RESULT	0x1		/* its RETURNING row is the result */
#define STEP_REQUIRED	0x2		/* no row back: DB_NOT_FOUND */
};

/* One queued write.  The strings its arguments point to are owned copies
 * listed in str[], so the caller's buffers may go away after submitting. */
struct db_job {
	struct db_job	*next;		/* queue, batch or done list */
	/* Writer thread, inside the job's savepoint: does the change and
	 * sets result.  Anything but DB_OK rolls the savepoint back. */
	enum db_status	(*run)(struct db *, struct db_job *);
	db_done_fn	*done;		/* may be NULL */
	void		*arg;		/* for done */
	enum db_status	 status;	/* outcome, set by the writer */
	json_t		*result;	/* new reference or NULL, for done */
	const char	*actor;		/* audit actor (one of str[]) or NULL */
	char		*str[DB_JOB_MAX_STR];	/* owned, freed with the job */
	size_t		 nstr;		/* used entries of str */
	union {
		struct {
			const char	*name;
		} tenant;
		struct {
			const char	*tenant_id;
			const char	*name;
			const char	*prefix;
			uint8_t		 hash[32];	/* wiped by job_free */
			int64_t		 expires_at;	/* 0: never */
		} key;
		struct {
			const char	*id;
		} revoke;
		struct {
			const char	*name;
			const char	*version;
			const char	*format;
			const char	*path;
			const char	*sha256;
			const char	*meta;		/* JSON text */
			int64_t		 size;
		} model;
		struct {
			const char	*name;
			const char	*model;
			const char	*version;
			int64_t		 replicas;
			int64_t		 threads;
			int64_t		 max_batch;
			int64_t		 max_queue_delay_us;
			int64_t		 min_replicas;
			int64_t		 max_replicas;
		} dep;
		struct usage_event	 usage;
		struct {
			const char	*id;
			const char	*status;
		} tstatus;
		struct {
			const char	*kid;
			const char	*alg;
			const char	*key;		/* wiped by job_free */
			const char	*iss;
			const char	*aud;
			const char	*tenant_claim;
			const char	*tenant_id;
			const char	*key_fingerprint;
		} issuer;
		struct {
			struct db_step	 s[DB_MAX_STEPS];
			size_t		 n;
			const char	*action;	/* audit, NULL: none */
			const char	*target;
			json_t		*detail;	/* owned */
		} steps;
	} u;
};

struct db {
	struct db_conn	 rd;		/* event-loop thread only */
	struct db_conn	 wr;		/* writer thread only, after open */
	int		 version;	/* schema version after migrations */
	int		 wake[2];	/* pipe: writer -> event loop */
	struct event	*wake_ev;	/* EV_READ|EV_PERSIST on wake[0] */
	pthread_t	 writer;
	bool		 writer_running; /* writer must be joined */
	bool		 sync_init;	/* mu and cv initialised */
	int64_t		 swept_at;	/* writer only: last sweep (db_sweep) */

	pthread_mutex_t	 mu;		/* guards all fields below */
	pthread_cond_t	 cv;		/* queue grew, or stopping was set */
	struct db_job	*queue;		/* submitted, not yet taken */
	struct db_job	**queue_tail;
	struct db_job	*done;		/* finished, callback not yet run */
	struct db_job	**done_tail;
	size_t		 pending;	/* submitted, callback not yet run */
	uint64_t	 commits;	/* batches the writer committed */
	bool		 stopping;	/* db_close began: refuse new jobs */
};

static int		 conn_open(struct db_conn *, const char *, int, int);
static void		 conn_close(struct db_conn *);
static sqlite3_stmt	*conn_vbind(struct db_conn *, enum db_sql,
			    const char *, va_list);
static sqlite3_stmt	*conn_bind(struct db_conn *, enum db_sql,
			    const char *, ...);
static enum db_status	 conn_status(struct db_conn *, int);
static void		 stmt_done(sqlite3_stmt *);
static enum db_status	 stmt_row(struct db_conn *, sqlite3_stmt *,
			    json_t **);
static json_t		*stmt_page(struct db_conn *, sqlite3_stmt *, int);
static json_t		*row_json(sqlite3_stmt *);
static json_t		*db_read_one(struct db *, enum db_sql, const char *,
			    ...);
static json_t		*db_read_page(struct db *, enum db_sql, int,
			    const char *, ...);
static int		 parse_row_id(const char *, int64_t *);
static int64_t		 db_now(void);
static void		 db_free(struct db *);

static struct db_job	*job_new(db_done_fn *, void *, const char *);
static const char	*job_str(struct db_job *, const char *);
static void		 job_free(struct db_job *);
static void		 db_submit(struct db *, struct db_job *);
static void		*db_writer_main(void *);
static bool		 db_batch_run(struct db *, struct db_job *);
static int		 db_job_run(struct db *, struct db_job *);
static int		 db_exec(struct db *, enum db_sql);
static void		 db_batch_done(struct db *, struct db_job *, bool);
static void		 db_sweep(struct db *);
static void		 db_wake_cb(evutil_socket_t, short, void *);
static void		 db_deliver(struct db *, struct db_job *);
static enum db_status	 db_audit(struct db *, struct db_job *,
			    const char *, const char *, json_t *);

static enum db_status	 tenant_create_run(struct db *, struct db_job *);
static enum db_status	 key_create_run(struct db *, struct db_job *);
static enum db_status	 key_revoke_run(struct db *, struct db_job *);
static enum db_status	 model_create_run(struct db *, struct db_job *);
static enum db_status	 deployment_create_run(struct db *,
			    struct db_job *);
static enum db_status	 usage_record_run(struct db *, struct db_job *);
static enum db_status	 tenant_status_run(struct db *, struct db_job *);
static enum db_status	 steps_run(struct db *, struct db_job *);
static sqlite3_stmt	*conn_bind_json(struct db_conn *, enum db_sql,
			    json_t *);
static json_t		*db_read_all(struct db *, enum db_sql, json_t *);
static enum db_status	 issuer_create_run(struct db *, struct db_job *);
static enum db_status	 issuer_delete_run(struct db *, struct db_job *);

/* --- open and close --- */

struct db *
db_open(const char *path, struct event_base *base)
{
	struct db	*db;
	sigset_t	 all, old;
	int		 rc;

	db = xcalloc(1, sizeof(*db));
	db->rd.name = "read";
	db->wr.name = "write";
	db->wake[0] = db->wake[1] = -1;
	db->queue_tail = &db->queue;
	db->done_tail = &db->done;

	if (sqlite3_threadsafe() == 0) {
		log_warnx("cannot open database: sqlite3 lacks thread support");
		goto fail;
	}
	/* The writer connection migrates before the reader exists, so the
	 * reader's statements are always prepared against the final schema. */
	if (conn_open(&db->wr, path, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, DB_BUSY_TIMEOUT_MS) == -1)
		goto fail;
	if (schema_migrate(db->wr.h, &db->version) == -1)
		goto fail;
	if (conn_open(&db->rd, path, SQLITE_OPEN_READONLY,
	    DB_READ_BUSY_MS) == -1)
		goto fail;

	if (pipe2(db->wake, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_warn("cannot open database: pipe2");
		goto fail;
	}
	db->wake_ev = event_new(base, db->wake[0], EV_READ | EV_PERSIST,
	    db_wake_cb, db);
	if (db->wake_ev == NULL || event_add(db->wake_ev, NULL) == -1) {
		log_warnx("cannot open database: cannot add wake-up event");
		goto fail;
	}

	if ((rc = pthread_mutex_init(&db->mu, NULL)) != 0) {
		errno = rc;
		log_warn("cannot open database: pthread_mutex_init");
		goto fail;
	}
	if ((rc = pthread_cond_init(&db->cv, NULL)) != 0) {
		pthread_mutex_destroy(&db->mu);
		errno = rc;
		log_warn("cannot open database: pthread_cond_init");
		goto fail;
	}
	db->sync_init = true;

	/* Signals belong to the event loop: the writer blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&db->writer, NULL, db_writer_main, db);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		log_warn("cannot open database: cannot start writer thread");
		goto fail;
	}
	(void)pthread_setname_np(db->writer, "db-writer");
	db->writer_running = true;
	log_debug("database '%s' open at schema version %d", path,
	    db->version);
	return db;
 fail:
	db_free(db);
	return NULL;
}

void
db_close(struct db *db)
{
	struct db_job	*list;

	if (db == NULL)
		return;
	pthread_mutex_lock(&db->mu);
	db->stopping = true;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);

	/* The writer leaves only once the queue is empty, and every batch it
	 * ran is on the done list before it goes. */
	if (db->writer_running) {
		pthread_join(db->writer, NULL);
		db->writer_running = false;
	}
	pthread_mutex_lock(&db->mu);
	list = db->done;
	db->done = NULL;
	db->done_tail = &db->done;
	pthread_mutex_unlock(&db->mu);
	db_deliver(db, list);
	db_free(db);
}

int
db_schema_version(struct db *db)
{
	return db->version;
}

size_t
db_pending(struct db *db)
{
	size_t	 n;

	pthread_mutex_lock(&db->mu);
	n = db->pending;
	pthread_mutex_unlock(&db->mu);
	return n;
}

uint64_t
db_commit_count(struct db *db)
{
	uint64_t	 n;

	pthread_mutex_lock(&db->mu);
	n = db->commits;
	pthread_mutex_unlock(&db->mu);
	return n;
}

/* Tears down whatever db_open got to build.  The writer must be stopped. */
static void
db_free(struct db *db)
{
	if (db->wake_ev != NULL)
		event_free(db->wake_ev);
	if (db->wake[0] != -1)
		close(db->wake[0]);
	if (db->wake[1] != -1)
		close(db->wake[1]);
	/* The reader goes first so that the writer is the last connection
	 * and checkpoints the WAL into the main file as it closes. */
	conn_close(&db->rd);
	conn_close(&db->wr);
	if (db->sync_init) {
		pthread_cond_destroy(&db->cv);
		pthread_mutex_destroy(&db->mu);
	}
	free(db);
}

/* --- connections and statements --- */

static int
conn_open(struct db_conn *c, const char *path, int flags, int busy_ms)
{
	sqlite3_stmt	*st = NULL;
	const char	*mode;
	char		*err = NULL;
	int		 rc, ret = -1;

	rc = sqlite3_open_v2(path, &c->h, flags | SQLITE_OPEN_NOMUTEX |
	    SQLITE_OPEN_EXRESCODE, NULL);
	if (rc != SQLITE_OK) {
		log_warnx("cannot open database '%s': %s", path,
		    c->h != NULL ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
		goto out;
	}
	/* Waits for locks held by other processes (an operator's sqlite3
	 * shell, a checkpoint) instead of failing at once.  WAL readers are
	 * only ever blocked briefly, by recovery, and the reader runs on the
	 * event loop, so it gets a much shorter wait. */
	sqlite3_busy_timeout(c->h, busy_ms);
	if ((flags & SQLITE_OPEN_READONLY) != 0) {
		/* The WAL mode is stored in the file by the writer; the other
		 * pragmas only matter to a connection that writes. */
		ret = 0;
		goto out;
	}
	if (sqlite3_prepare_v2(c->h, "PRAGMA journal_mode=WAL", -1, &st,
	    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		log_warnx("cannot set WAL mode on '%s': %s", path,
		    sqlite3_errmsg(c->h));
		goto out;
	}
	/* Returns the mode now in effect: "memory" for :memory:, say. */
	mode = (const char *)sqlite3_column_text(st, 0);
	if (mode == NULL || strcasecmp(mode, "wal") != 0) {
		log_warnx("cannot use WAL mode on '%s': journal mode is '%s'",
		    path, mode != NULL ? mode : "?");
		goto out;
	}
	/* FULL: a commit is on disk when COMMIT returns, which the metering
	 * contract needs; NORMAL in WAL mode may lose the last commits. */
	if (sqlite3_exec(c->h, "PRAGMA synchronous=FULL;"
	    "PRAGMA foreign_keys=ON", NULL, NULL, &err) != SQLITE_OK) {
		log_warnx("cannot configure database '%s': %s", path, err);
		goto out;
	}
	ret = 0;
 out:
	sqlite3_finalize(st);
	sqlite3_free(err);
	return ret;
}

static void
conn_close(struct db_conn *c)
{
	size_t	 i;

	for (i = 0; i < SQL_COUNT; i++) {
		sqlite3_finalize(c->st[i]);
		c->st[i] = NULL;
	}
	if (c->h != NULL && sqlite3_close(c->h) != SQLITE_OK)
		log_warnx("cannot close %s connection: %s", c->name,
		    sqlite3_errmsg(c->h));
	c->h = NULL;
}

/* Returns the cached statement id of c, prepared on first use, with the
 * arguments bound in order as fmt says:
 *	t  const char *		text; NULL binds NULL
 *	i  int64_t
 *	I  int64_t		0 binds NULL ("never", "none")
 *	b  const uint8_t *, size_t	blob
 *	L  (no argument)	a listing's LIMIT, left to stmt_page()
 * fmt must name every parameter of the statement: a mismatch is a bug in
 * this file and fatal, since varargs cannot be type-checked.  Text and
 * blobs are bound SQLITE_STATIC: they must outlive the step, and
 * stmt_done() clears them.  NULL after logging. */
static sqlite3_stmt *
conn_vbind(struct db_conn *c, enum db_sql id, const char *fmt, va_list ap)
{
	sqlite3_stmt	*st;
	const char	*s;
	const void	*blob;
	size_t		 len;
	int64_t		 n;
	int		 i, rc = SQLITE_OK;

	if ((st = c->st[id]) == NULL) {
		rc = sqlite3_prepare_v3(c->h, db_sql_text[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL);
		if (rc != SQLITE_OK) {
			log_warnx("cannot prepare '%.40s' on %s connection: "
			    "%s", db_sql_text[id], c->name,
			    sqlite3_errmsg(c->h));
			return NULL;
		}
		st = c->st[id];
	}
	if (strlen(fmt) != (size_t)sqlite3_bind_parameter_count(st))
		fatalx("%s: statement %d takes %d parameters, not '%s'",
		    __func__, (int)id, sqlite3_bind_parameter_count(st), fmt);
	for (i = 1; *fmt != '\0' && rc == SQLITE_OK; fmt++, i++) {
		switch (*fmt) {
		case 't':
			s = va_arg(ap, const char *);
			rc = s != NULL ?
			    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) :
			    sqlite3_bind_null(st, i);
			break;
		case 'i':
		case 'I':
			n = va_arg(ap, int64_t);
			rc = n == 0 && *fmt == 'I' ? sqlite3_bind_null(st, i) :
			    sqlite3_bind_int64(st, i, n);
			break;
		case 'b':
			blob = va_arg(ap, const void *);
			len = va_arg(ap, size_t);
			rc = len > INT32_MAX ? SQLITE_TOOBIG :
			    sqlite3_bind_blob(st, i, blob, (int)len,
			    SQLITE_STATIC);
			break;
		case 'L':
			break;
		default:
			fatalx("%s: bad bind format '%c'", __func__, *fmt);
		}
	}
	if (rc != SQLITE_OK) {
		log_warnx("cannot bind parameter %d of '%.40s': %s", i - 1,
		    db_sql_text[id], sqlite3_errstr(rc));
		sqlite3_clear_bindings(st);
		return NULL;
	}
	return st;
}

static sqlite3_stmt *
conn_bind(struct db_conn *c, enum db_sql id, const char *fmt, ...)
{
	sqlite3_stmt	*st;
	va_list		 ap;

	va_start(ap, fmt);
	st = conn_vbind(c, id, fmt, ap);
	va_end(ap);
	return st;
}

/* Maps a failed step to the status the API promises.  Constraint errors
 * are the caller's business and are not logged; anything else is. */
static enum db_status
conn_status(struct db_conn *c, int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return DB_CONFLICT;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return DB_NOT_FOUND;
	default:
		log_warnx("database error on %s connection: %s", c->name,
		    sqlite3_errmsg(c->h));
		return DB_ERROR;
	}
}

/* Reset after every use: a statement left stepped would hold the read
 * transaction open, hiding later commits and blocking checkpoints. */
static void
stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps st once.  With row != NULL, a result row is stored there as a new
 * object (NULL if there was no row).  Always resets st. */
static enum db_status
stmt_row(struct db_conn *c, sqlite3_stmt *st, json_t **row)
{
	enum db_status	 s = DB_OK;
	int		 rc;

	if (row != NULL)
		*row = NULL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && row != NULL) {
		if ((*row = row_json(st)) == NULL)
			s = DB_ERROR;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		s = conn_status(c, rc);
	stmt_done(st);
	return s;
}

/* Runs a listing whose last parameter is its LIMIT: one row more than the
 * page is asked for, to tell has_more.  Returns {"data":[..],"has_more"}
 * or NULL after logging.  Always resets st. */
static json_t *
stmt_page(struct db_conn *c, sqlite3_stmt *st, int limit)
{
	json_t	*page = NULL, *data, *row;
	bool	 more = false;
	int	 n = 0, rc;

	if (limit <= 0)
		limit = DB_PAGE_DEFAULT;
	else if (limit > DB_PAGE_MAX)
		limit = DB_PAGE_MAX;
	if ((data = json_array()) == NULL)
		goto out;
	rc = sqlite3_bind_int(st, sqlite3_bind_parameter_count(st),
	    limit + 1);
	if (rc != SQLITE_OK) {
		log_warnx("cannot bind page limit: %s", sqlite3_errstr(rc));
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == limit) {
			more = true;
			break;
		}
		if ((row = row_json(st)) == NULL ||
		    json_array_append_new(data, row) == -1)
			goto out;
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		(void)conn_status(c, rc);
		goto out;
	}
	page = json_pack("{s:O, s:b}", "data", data, "has_more", more);
 out:
	json_decref(data);
	stmt_done(st);
	return page;
}

/* Columns whose TEXT holds JSON (checked by json_valid() in the schema)
 * and is returned decoded rather than as a string. */
static const char *const db_json_columns[] = {
	"meta", "detail", "scopes", "allowed_models",
};

/* Turns the current row of st into {"column": value, ...}.  Blobs are
 * never selected into JSON (the only blob is a key hash).  NULL after
 * logging. */
static json_t *
row_json(sqlite3_stmt *st)
{
	json_t		*obj, *v;
	const char	*name, *text;
	size_t		 len, k;
	bool		 is_json;
	int		 i, n;

	if ((obj = json_object()) == NULL)
		return NULL;
	n = sqlite3_column_count(st);
	for (i = 0; i < n; i++) {
		v = NULL;
		if ((name = sqlite3_column_name(st, i)) == NULL)
			goto fail;
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			v = json_integer(sqlite3_column_int64(st, i));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(st, i));
			break;
		case SQLITE_TEXT:
			text = (const char *)sqlite3_column_text(st, i);
			len = (size_t)sqlite3_column_bytes(st, i);
			is_json = false;
			for (k = 0; k < sizeof(db_json_columns) /
			    sizeof(db_json_columns[0]); k++)
				if (strcmp(name, db_json_columns[k]) == 0)
					is_json = true;
			v = is_json ?
			    json_loadb(text, len, JSON_DECODE_ANY, NULL) :
			    json_stringn(text, len);
			break;
		case SQLITE_NULL:
			v = json_null();
			break;
		}
		/* json_object_set_new() consumes v, and fails on NULL. */
		if (json_object_set_new(obj, name, v) == -1)
			goto fail;
	}
	return obj;
 fail:
	log_warnx("cannot convert column %d of '%s' to json", i,
	    sqlite3_sql(st));
	json_decref(obj);
	return NULL;
}

/* A get: one row as an object, or NULL if there is none or on error. */
static json_t *
db_read_one(struct db *db, enum db_sql id, const char *fmt, ...)
{
	sqlite3_stmt	*st;
	json_t		*row = NULL;
	va_list		 ap;

	va_start(ap, fmt);
	st = conn_vbind(&db->rd, id, fmt, ap);
	va_end(ap);
	if (st != NULL)
		(void)stmt_row(&db->rd, st, &row);
	return row;
}

/* A listing: see stmt_page(). */
static json_t *
db_read_page(struct db *db, enum db_sql id, int limit, const char *fmt, ...)
{
	sqlite3_stmt	*st;
	va_list		 ap;

	va_start(ap, fmt);
	st = conn_vbind(&db->rd, id, fmt, ap);
	va_end(ap);
	return st != NULL ? stmt_page(&db->rd, st, limit) : NULL;
}

/* The cursor of a listing paged by integer id: NULL or "" is the start. */
static int
parse_row_id(const char *s, int64_t *out)
{
	char		*end;
	long long	 v;

	*out = 0;
	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || *s < '0' || *s > '9')
		return -1;
	*out = v;
	return 0;
}

static int64_t
db_now(void)
{
	return (int64_t)time(NULL);
}

/* --- identifiers --- */

void
db_new_id(const char *prefix, char *out, size_t outsz)
{
	static const char	 hex[] = "0123456789abcdef";
	uint8_t			 rnd[12];
	size_t			 plen, off = 0, i;
	ssize_t			 n;

	plen = strlen(prefix);
	if (outsz < plen + 2 + 2 * sizeof(rnd))
		fatalx("%s: buffer of %zu bytes too small", __func__, outsz);
	while (off < sizeof(rnd)) {
		n = getrandom(rnd + off, sizeof(rnd) - off, 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fatal("%s: getrandom", __func__);
		}
		off += (size_t)n;
	}
	memcpy(out, prefix, plen);
	out[plen++] = '_';
	for (i = 0; i < sizeof(rnd); i++) {
		out[plen++] = hex[rnd[i] >> 4];
		out[plen++] = hex[rnd[i] & 0xf];
	}
	out[plen] = '\0';
}

/* --- reads (event-loop thread) --- */

int
db_key_by_prefix(struct db *db, const char *prefix, struct db_key *out)
{
	sqlite3_stmt	*st;
	const char	*id, *tenant, *status;
	int		 rc, ret = -1;

	memset(out, 0, sizeof(*out));
	if ((st = conn_bind(&db->rd, SQL_KEY_BY_PREFIX, "t", prefix)) == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		(void)conn_status(&db->rd, rc);
		goto out;
	}
	id = (const char *)sqlite3_column_text(st, 0);
	tenant = (const char *)sqlite3_column_text(st, 1);
	status = (const char *)sqlite3_column_text(st, 2);
	if (id == NULL || tenant == NULL || status == NULL ||
	    sqlite3_column_bytes(st, 3) != (int)sizeof(out->hash) ||
	    (size_t)snprintf(out->id, sizeof(out->id), "%s", id) >=
	    sizeof(out->id) ||
	    (size_t)snprintf(out->tenant_id, sizeof(out->tenant_id), "%s",
	    tenant) >= sizeof(out->tenant_id) ||
	    (size_t)snprintf(out->tenant_status, sizeof(out->tenant_status),
	    "%s", status) >= sizeof(out->tenant_status)) {
		log_warnx("api key row '%s' is malformed",
		    id != NULL ? id : "?");
		memset(out, 0, sizeof(*out));
		goto out;
	}
	memcpy(out->hash, sqlite3_column_blob(st, 3), sizeof(out->hash));
	out->expires_at = sqlite3_column_int64(st, 4);	/* NULL reads 0 */
	out->revoked_at = sqlite3_column_int64(st, 5);
	if (sqlite3_column_type(st, 6) == SQLITE_TEXT &&
	    (size_t)snprintf(out->scopes, sizeof(out->scopes), "%s",
	    (const char *)sqlite3_column_text(st, 6)) >= sizeof(out->scopes))
		out->scopes[0] = '\0';		/* too long: fail closed below */
	else if (sqlite3_column_type(st, 6) == SQLITE_TEXT)
		out->has_scopes = true;
	ret = 1;
 out:
	stmt_done(st);
	return ret;
}

json_t *
db_tenant_get(struct db *db, const char *id)
{
	return db_read_one(db, SQL_TENANT_GET, "t", id);
}

json_t *
db_key_get(struct db *db, const char *id)
{
	return db_read_one(db, SQL_KEY_GET, "t", id);
}

json_t *
db_tenant_get_by_name(struct db *db, const char *name)
{
	return db_read_one(db, SQL_TENANT_BY_NAME, "t", name);
}

json_t *
db_tenant_list(struct db *db, const char *after, int limit)
{
	return db_read_page(db, SQL_TENANT_LIST, limit, "tL",
	    after != NULL ? after : "");
}

json_t *
db_key_list(struct db *db, const char *tenant_id, const char *after,
    int limit)
{
	return db_read_page(db, SQL_KEY_LIST, limit, "ttL", tenant_id,
	    after != NULL ? after : "");
}

json_t *
db_model_get(struct db *db, const char *name, const char *version)
{
	return db_read_one(db, SQL_MODEL_GET, "tt", name, version);
}

json_t *
db_model_list(struct db *db, const char *after, int limit)
{
	return db_read_page(db, SQL_MODEL_LIST, limit, "tL",
	    after != NULL ? after : "");
}

json_t *
db_deployment_get(struct db *db, const char *name)
{
	return db_read_one(db, SQL_DEP_GET, "t", name);
}

json_t *
db_deployment_list(struct db *db, const char *after, int limit)
{
	return db_read_page(db, SQL_DEP_LIST, limit, "tL",
	    after != NULL ? after : "");
}

json_t *
db_usage_list(struct db *db, const char *tenant_id, int64_t from,
    int64_t to, const char *after, int limit)
{
	int64_t	 cursor, from_us, to_us;

	if (parse_row_id(after, &cursor) == -1)
		return NULL;
	/* Seconds to microseconds, saturating: 0 means unbounded. */
	from_us = from <= 0 ? INT64_MIN :
	    from > INT64_MAX / 1000000 ? INT64_MAX : from * 1000000;
	to_us = to <= 0 || to > INT64_MAX / 1000000 ? INT64_MAX :
	    to * 1000000;
	if (tenant_id == NULL)
		return db_read_page(db, SQL_USAGE_LIST, limit, "iiiL",
		    from_us, to_us, cursor);
	return db_read_page(db, SQL_USAGE_LIST_TENANT, limit, "tiiiL",
	    tenant_id, from_us, to_us, cursor);
}

json_t *
db_audit_list(struct db *db, const char *after, int limit)
{
	int64_t	 cursor;

	if (parse_row_id(after, &cursor) == -1)
		return NULL;
	return db_read_page(db, SQL_AUDIT_LIST, limit, "iL", cursor);
}

/* --- job submission (event-loop thread) --- */

static struct db_job *
job_new(db_done_fn *done, void *arg, const char *actor)
{
	struct db_job	*j;

	j = xcalloc(1, sizeof(*j));
	j->done = done;
	j->arg = arg;
	j->actor = job_str(j, actor);
	return j;
}

/* An owned copy of s (NULL stays NULL), freed with the job. */
static const char *
job_str(struct db_job *j, const char *s)
{
	if (s == NULL)
		return NULL;
	if (j->nstr == DB_JOB_MAX_STR)
		fatalx("%s: too many strings in one job", __func__);
	j->str[j->nstr] = xstrdup(s);
	return j->str[j->nstr++];
}

static void
job_free(struct db_job *j)
{
	size_t	 i;

	if (j == NULL)
		return;
	for (i = 0; i < j->nstr; i++) {
		/* An issuer job carries an HMAC secret among its strings. */
		explicit_bzero(j->str[i], strlen(j->str[i]));
		free(j->str[i]);
	}
	json_decref(j->result);
	if (j->run == steps_run) {
		for (i = 0; i < j->u.steps.n; i++)
			json_decref(j->u.steps.s[i].args);
		json_decref(j->u.steps.detail);
	}
	explicit_bzero(j, sizeof(*j));	/* a key job holds a hash */
	free(j);
}

static void
db_submit(struct db *db, struct db_job *j)
{
	bool	 refused;

	pthread_mutex_lock(&db->mu);
	refused = db->stopping;
	if (!refused) {
		*db->queue_tail = j;
		db->queue_tail = &j->next;
		db->pending++;
		pthread_cond_signal(&db->cv);
	}
	pthread_mutex_unlock(&db->mu);
	if (refused) {
		/* Only reachable from a callback that db_close() runs. */
		log_warnx("database write refused: the database is closing");
		if (j->done != NULL)
			j->done(j->arg, DB_ERROR, NULL);
		job_free(j);
	}
}

void
db_tenant_create(struct db *db, const char *name, const char *actor,
    db_done_fn *done, void *arg)
{
	struct db_job	*j;

	j = job_new(done, arg, actor);
	j->run = tenant_create_run;
	j->u.tenant.name = job_str(j, name);
	db_submit(db, j);
}

void
db_key_create(struct db *db, const char *tenant_id, const char *name,
    const char *prefix, const uint8_t hash[32], int64_t expires_at,
    const char *actor, db_done_fn *done, void *arg)
{
	struct db_job	*j;

	j = job_new(done, arg, actor);
	j->run = key_create_run;
	j->u.key.tenant_id = job_str(j, tenant_id);
	j->u.key.name = job_str(j, name);
	j->u.key.prefix = job_str(j, prefix);
	memcpy(j->u.key.hash, hash, sizeof(j->u.key.hash));
	j->u.key.expires_at = expires_at;
	db_submit(db, j);
}

void
db_key_revoke(struct db *db, const char *key_id, const char *actor,
    db_done_fn *done, void *arg)
{
	struct db_job	*j;

	j = job_new(done, arg, actor);
	j->run = key_revoke_run;
	j->u.revoke.id = job_str(j, key_id);
	db_submit(db, j);
}

void
db_model_create(struct db *db, const struct db_model_in *in,
    const char *actor, db_done_fn *done, void *arg)
{
	struct db_job	*j;
	char		*meta;

	j = job_new(done, arg, actor);
	j->run = model_create_run;
	j->u.model.name = job_str(j, in->name);
	j->u.model.version = job_str(j, in->version);
	j->u.model.format = job_str(j, in->format);
	j->u.model.path = job_str(j, in->path);
	j->u.model.sha256 = job_str(j, in->sha256);
	j->u.model.size = in->size;
	/* Serialised here: the caller's json_t must not reach the writer.
	 * A meta that cannot be encoded is stored as NULL, which the schema
	 * refuses, so the job fails rather than losing it silently. */
	meta = in->meta != NULL ?
	    json_dumps(in->meta, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	j->u.model.meta = job_str(j, in->meta == NULL ? "{}" : meta);
	free(meta);
	db_submit(db, j);
}

void
db_deployment_create(struct db *db, const struct db_deployment_in *in,
    const char *actor, db_done_fn *done, void *arg)
{
	struct db_job	*j;

	j = job_new(done, arg, actor);
	j->run = deployment_create_run;
	j->u.dep.name = job_str(j, in->name);
	j->u.dep.model = job_str(j, in->model);
	j->u.dep.version = job_str(j, in->version);
	j->u.dep.replicas = in->replicas;
	j->u.dep.threads = in->threads;
	j->u.dep.max_batch = in->max_batch;
	j->u.dep.max_queue_delay_us = in->max_queue_delay_us;
	/* 0: fixed at replicas, as before autoscaling existed. */
	j->u.dep.min_replicas = in->min_replicas > 0 ? in->min_replicas :
	    in->replicas;
	j->u.dep.max_replicas = in->max_replicas > 0 ? in->max_replicas :
	    in->replicas;
	db_submit(db, j);
}

void
db_usage_record(struct db *db, const struct usage_event *ev,
    db_done_fn *done, void *arg)
{
	struct db_job		*j;
	struct usage_event	*u;

	j = job_new(done, arg, NULL);
	j->run = usage_record_run;
	u = &j->u.usage;
	*u = *ev;
	/* The strings are fixed arrays: never read past one. */
	u->request_id[sizeof(u->request_id) - 1] = '\0';
	u->tenant_id[sizeof(u->tenant_id) - 1] = '\0';
	u->key_id[sizeof(u->key_id) - 1] = '\0';
	u->model[sizeof(u->model) - 1] = '\0';
	u->version[sizeof(u->version) - 1] = '\0';
	u->endpoint[sizeof(u->endpoint) - 1] = '\0';
	db_submit(db, j);
}

/* --- the writer thread --- */

static void *
db_writer_main(void *arg)
{
	struct db	*db = arg;
	struct db_job	*batch;
	bool		 committed;

	for (;;) {
		pthread_mutex_lock(&db->mu);
		while (db->queue == NULL && !db->stopping)
			pthread_cond_wait(&db->cv, &db->mu);
		/* Take everything: this is what makes the commit a group. */
		batch = db->queue;
		db->queue = NULL;
		db->queue_tail = &db->queue;
		pthread_mutex_unlock(&db->mu);
		if (batch == NULL)
			break;		/* stopping, and nothing left */
		committed = db_batch_run(db, batch);
		db_batch_done(db, batch, committed);
	}
	return NULL;
}

/* Runs every job of batch in one transaction and sets each status.
 * Returns whether the transaction committed. */
static bool
db_batch_run(struct db *db, struct db_job *batch)
{
	struct db_job	*j;
	bool		 ok;

	ok = db_exec(db, SQL_BEGIN) == 0;
	for (j = batch; j != NULL && ok; j = j->next) {
		/* On some errors (disk full, I/O) SQLite rolls back the whole
		 * transaction, taking the earlier jobs with it; running on
		 * would commit the later ones one by one, out of the batch. */
		if (db_job_run(db, j) == -1 ||
		    sqlite3_get_autocommit(db->wr.h)) {
			log_warnx("database transaction aborted: failing a "
			    "batch of writes");
			ok = false;
		}
	}
	if (ok) {
		db_sweep(db);
		ok = !sqlite3_get_autocommit(db->wr.h);
	}
	if (ok && db_exec(db, SQL_COMMIT) == -1)
		ok = false;
	if (!ok) {
		/* Every job of the batch reports DB_ERROR, also those that
		 * ran and those never started. */
		if (!sqlite3_get_autocommit(db->wr.h))
			(void)db_exec(db, SQL_ROLLBACK);
		for (j = batch; j != NULL; j = j->next) {
			j->status = DB_ERROR;
			json_decref(j->result);
			j->result = NULL;
		}
	}
	return ok;
}

/* Runs one job inside its own savepoint, so that its failure undoes only
 * its own changes (a row and its audit row go together or not at all),
 * and sets its status.  -1 if the transaction can no longer be trusted to
 * hold exactly the changes of the jobs that succeeded. */
static int
db_job_run(struct db *db, struct db_job *j)
{
	if (db_exec(db, SQL_SAVEPOINT) == -1)
		return -1;
	if ((j->status = j->run(db, j)) != DB_OK) {
		json_decref(j->result);
		j->result = NULL;
		if (db_exec(db, SQL_ROLLBACK_TO) == -1)
			return -1;
	}
	return db_exec(db, SQL_RELEASE);
}

/* Writer thread, inside a batch's transaction (sharing its fsync):
 * deletes the idempotent answers older than DB_IDEM_TTL_S, at most once
 * every DB_SWEEP_S, so the table holds about a day of admin POSTs.  In
 * its own savepoint: a failure only delays the sweep. */
static void
db_sweep(struct db *db)
{
	sqlite3_stmt	*st;
	int64_t		 now = db_now();

	if (db->swept_at != 0 && now - db->swept_at < DB_SWEEP_S)
		return;
	db->swept_at = now;
	if (db_exec(db, SQL_SAVEPOINT) == -1)
		return;
	st = conn_bind(&db->wr, SQL_IDEM_SWEEP, "i", now - DB_IDEM_TTL_S);
	if (st == NULL || stmt_row(&db->wr, st, NULL) != DB_OK)
		(void)db_exec(db, SQL_ROLLBACK_TO);
	(void)db_exec(db, SQL_RELEASE);
}

/* Steps one of the parameterless transaction statements.  -1 if it failed
 * (logged). */
static int
db_exec(struct db *db, enum db_sql id)
{
	sqlite3_stmt	*st;

	if ((st = conn_bind(&db->wr, id, "")) == NULL)
		return -1;
	return stmt_row(&db->wr, st, NULL) == DB_OK ? 0 : -1;
}

/* Hands a finished batch to the event loop. */
static void
db_batch_done(struct db *db, struct db_job *batch, bool committed)
{
	struct db_job	*last;
	bool		 was_empty;
	char		 c = 0;

	for (last = batch; last->next != NULL; last = last->next)
		;
	pthread_mutex_lock(&db->mu);
	if (committed)
		db->commits++;
	was_empty = db->done == NULL;
	*db->done_tail = batch;
	db->done_tail = &last->next;
	pthread_mutex_unlock(&db->mu);
	if (!was_empty)
		return;
	/* EAGAIN: the pipe is full of wake-ups already, which is enough. */
	while (write(db->wake[1], &c, 1) == -1 && errno != EAGAIN)
		if (errno != EINTR) {
			log_warn("cannot wake the event loop");
			break;
		}
}

/* --- completion (event-loop thread) --- */

static void
db_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db	*db = arg;
	struct db_job	*list;
	char		 buf[64];

	(void)what;
	/* Drain before taking the list: a byte written after this read is
	 * for jobs we may not take now, and wakes us again. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&db->mu);
	list = db->done;
	db->done = NULL;
	db->done_tail = &db->done;
	pthread_mutex_unlock(&db->mu);
	db_deliver(db, list);
}

/* Runs the callbacks of list in submission order and frees the jobs.  The
 * result reference passes to the callback. */
static void
db_deliver(struct db *db, struct db_job *list)
{
	struct db_job	*j, *next;
	json_t		*result;

	for (j = list; j != NULL; j = next) {
		next = j->next;
		result = j->result;
		j->result = NULL;
		pthread_mutex_lock(&db->mu);
		db->pending--;
		pthread_mutex_unlock(&db->mu);
		if (j->done != NULL)
			j->done(j->arg, j->status, result);
		else
			json_decref(result);
		job_free(j);
	}
}

/* --- the changes (writer thread, inside a job's savepoint) --- */

/* Writes the audit row of an admin change.  detail is consumed; it never
 * holds secrets. */
static enum db_status
db_audit(struct db *db, struct db_job *j, const char *action,
    const char *target, json_t *detail)
{
	sqlite3_stmt	*st;
	enum db_status	 s = DB_ERROR;
	char		*text = NULL;

	if (detail == NULL ||
	    (text = json_dumps(detail, JSON_COMPACT)) == NULL) {
		log_warnx("cannot encode audit detail of '%s'", action);
		goto out;
	}
	st = conn_bind(&db->wr, SQL_AUDIT_INSERT, "itttt", db_now(),
	    j->actor != NULL ? j->actor : "unknown", action, target, text);
	if (st != NULL)
		s = stmt_row(&db->wr, st, NULL);
 out:
	free(text);
	json_decref(detail);
	return s;
}

static enum db_status
tenant_create_run(struct db *db, struct db_job *j)
{
	sqlite3_stmt	*st;
	enum db_status	 s;
	char		 id[DB_ID_SIZE];

	db_new_id("ten", id, sizeof(id));
	st = conn_bind(&db->wr, SQL_TENANT_INSERT, "tti", id,
	    j->u.tenant.name, db_now());
	if (st == NULL)
		return DB_ERROR;
	if ((s = stmt_row(&db->wr, st, &j->result)) != DB_OK)
		return s;
	return db_audit(db, j, "tenant.create", id,
	    json_pack("{s:s?}", "name", j->u.tenant.name));
}

static enum db_status
key_create_run(struct db *db, struct db_job *j)
{
	sqlite3_stmt	*st;
	enum db_status	 s;
	char		 id[DB_ID_SIZE];

	db_new_id("key", id, sizeof(id));
	st = conn_bind(&db->wr, SQL_KEY_INSERT, "ttttbiI", id,
	    j->u.key.tenant_id, j->u.key.name, j->u.key.prefix,
	    (const void *)j->u.key.hash, sizeof(j->u.key.hash), db_now(),
	    j->u.key.expires_at);
	if (st == NULL)
		return DB_ERROR;
	if ((s = stmt_row(&db->wr, st, &j->result)) != DB_OK)
		return s;
	/* The prefix is public (it is how a key is shown); the hash is not
	 * and stays out of the audit trail. */
	return db_audit(db, j, "key.create", id,
	    json_pack("{s:s?, s:s?, s:s?, s:I}", "tenant_id",
	    j->u.key.tenant_id, "name", j->u.key.name, "prefix",
	    j->u.key.prefix, "expires_at", (json_int_t)j->u.key.expires_at));
}

/* Marks one row ended (revoked, deleted) with set, returning it.  Ending
 * an ended row again changes nothing, keeps the first time and is not
 * audited: the row is then read with get, and DB_NOT_FOUND if absent.
 * Returns 1 when the row changed now (the caller audits), else a status
 * through *s. */
static int
end_once(struct db *db, struct db_job *j, enum db_sql set, enum db_sql get,
    enum db_status *s)
{
	sqlite3_stmt	*st;

	*s = DB_ERROR;
	st = conn_bind(&db->wr, set, "ti", j->u.revoke.id, db_now());
	if (st == NULL || (*s = stmt_row(&db->wr, st, &j->result)) != DB_OK)
		return 0;
	if (j->result != NULL)
		return 1;
	if ((st = conn_bind(&db->wr, get, "t", j->u.revoke.id)) == NULL) {
		*s = DB_ERROR;
		return 0;
	}
	if ((*s = stmt_row(&db->wr, st, &j->result)) == DB_OK &&
	    j->result == NULL)
		*s = DB_NOT_FOUND;
	return 0;
}

static enum db_status
key_revoke_run(struct db *db, struct db_job *j)
{
	enum db_status	 s;

	if (!end_once(db, j, SQL_KEY_REVOKE, SQL_KEY_GET, &s))
		return s;
	return db_audit(db, j, "key.revoke", j->u.revoke.id,
	    json_pack("{s:O}", "tenant_id",
	    json_object_get(j->result, "tenant_id")));
}

static enum db_status
model_create_run(struct db *db, struct db_job *j)
{
	sqlite3_stmt	*st;
	enum db_status	 s;
	char		 id[DB_ID_SIZE];

	db_new_id("mod", id, sizeof(id));
	st = conn_bind(&db->wr, SQL_MODEL_INSERT, "ttttttiti", id,
	    j->u.model.name, j->u.model.version, j->u.model.format,
	    j->u.model.path, j->u.model.sha256, j->u.model.size,
	    j->u.model.meta, db_now());
	if (st == NULL)
		return DB_ERROR;
	if ((s = stmt_row(&db->wr, st, &j->result)) != DB_OK)
		return s;
	return db_audit(db, j, "model.create", id,
	    json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:I}",
	    "name", j->u.model.name, "version", j->u.model.version,
	    "format", j->u.model.format, "path", j->u.model.path,
	    "sha256", j->u.model.sha256, "size", (json_int_t)j->u.model.size));
}

static enum db_status
deployment_create_run(struct db *db, struct db_job *j)
{
	sqlite3_stmt	*st;
	enum db_status	 s;
	char		 id[DB_ID_SIZE];

	db_new_id("dep", id, sizeof(id));
	st = conn_bind(&db->wr, SQL_DEP_INSERT, "ttttiiiiiii", id,
	    j->u.dep.name, j->u.dep.model, j->u.dep.version,
	    j->u.dep.replicas, j->u.dep.threads, j->u.dep.max_batch,
	    j->u.dep.max_queue_delay_us, db_now(), j->u.dep.min_replicas,
	    j->u.dep.max_replicas);
	if (st == NULL)
		return DB_ERROR;
	if ((s = stmt_row(&db->wr, st, &j->result)) != DB_OK)
		return s;
	return db_audit(db, j, "deployment.create", id,
	    json_pack("{s:s?, s:s?, s:s?, s:I, s:I, s:I, s:I}",
	    "name", j->u.dep.name, "model", j->u.dep.model,
	    "version", j->u.dep.version,
	    "replicas", (json_int_t)j->u.dep.replicas,
	    "threads", (json_int_t)j->u.dep.threads,
	    "max_batch", (json_int_t)j->u.dep.max_batch,
	    "max_queue_delay_us", (json_int_t)j->u.dep.max_queue_delay_us));
}

/* Empty key_id (JWT callers) and version are stored as NULL. */
static enum db_status
usage_record_run(struct db *db, struct db_job *j)
{
	const struct usage_event	*u = &j->u.usage;
	sqlite3_stmt			*st;

	st = conn_bind(&db->wr, SQL_USAGE_INSERT, "titttttiiiiiiiii",
	    u->request_id, u->ts_us, u->tenant_id,
	    u->key_id[0] != '\0' ? u->key_id : NULL, u->model,
	    u->version[0] != '\0' ? u->version : NULL, u->endpoint,
	    (int64_t)u->status, u->queue_us, u->compute_us, u->bytes_in,
	    u->bytes_out, u->prompt_tokens, u->completion_tokens,
	    u->cost_micros, (int64_t)u->admitted);
	if (st == NULL)
		return DB_ERROR;
	return stmt_row(&db->wr, st, NULL);
}

/* --- tenant status and JWT issuers --- */

int
db_tenant_status(struct db *db, const char *id, char status[16])
{
	sqlite3_stmt	*st;
	const char	*s;
	int		 rc, ret = -1;

	status[0] = '\0';
	if ((st = conn_bind(&db->rd, SQL_TENANT_STATUS, "t", id)) == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		(void)conn_status(&db->rd, rc);
		goto out;
	}
	s = (const char *)sqlite3_column_text(st, 0);
	if (s == NULL || (size_t)snprintf(status, 16, "%s", s) >= 16) {
		log_warnx("tenant row '%s' has a malformed status", id);
		status[0] = '\0';
		goto out;
	}
	ret = 1;
 out:
	stmt_done(st);
	return ret;
}

void
db_tenant_set_status(struct db *db, const char *id, const char *status,
    const char *actor, db_done_fn *done, void *arg)
{
	struct db_job	*j;

	j = job_new(done, arg, actor);
	j->run = tenant_status_run;
	j->u.tstatus.id = job_str(j, id);
	j->u.tstatus.status = job_str(j, status);
	db_submit(db, j);
}

void
db_issuer_create(struct db *db, const struct db_issuer_in *in,
    const char *actor, db_done_fn *done, void *arg)
{
	struct db_job	*j;

	j = job_new(done, arg, actor);
	j->run = issuer_create_run;
	j->u.issuer.kid = job_str(j, in->kid);
	j->u.issuer.alg = job_str(j, in->alg);
	j->u.issuer.key = job_str(j, in->key);
	j->u.issuer.iss = job_str(j, in->iss);
	j->u.issuer.aud = job_str(j, in->aud);
	j->u.issuer.tenant_claim = job_str(j, in->tenant_claim);
	j->u.issuer.tenant_id = job_str(j, in->tenant_id);
	j->u.issuer.key_fingerprint = job_str(j, in->key_fingerprint);
	db_submit(db, j);
}

void
db_issuer_delete(struct db *db, const char *id, const char *actor,
    db_done_fn *done, void *arg)
{
	struct db_job	*j;

	j = job_new(done, arg, actor);
	j->run = issuer_delete_run;
	j->u.revoke.id = job_str(j, id);
	db_submit(db, j);
}

json_t *
db_issuer_get(struct db *db, const char *id)
{
	return db_read_one(db, SQL_ISSUER_GET, "t", id);
}

json_t *
db_issuer_list(struct db *db, const char *after, int limit)
{
	return db_read_page(db, SQL_ISSUER_LIST, limit, "tL",
	    after != NULL ? after : "");
}

static enum db_status
tenant_status_run(struct db *db, struct db_job *j)
{
	sqlite3_stmt	*st;
	enum db_status	 s;

	st = conn_bind(&db->wr, SQL_TENANT_SET_STATUS, "tt",
	    j->u.tstatus.id, j->u.tstatus.status);
	if (st == NULL)
		return DB_ERROR;
	if ((s = stmt_row(&db->wr, st, &j->result)) != DB_OK)
		return s;
	if (j->result == NULL)
		return DB_NOT_FOUND;
	return db_audit(db, j, "tenant.status", j->u.tstatus.id,
	    json_pack("{s:s?}", "status", j->u.tstatus.status));
}

static enum db_status
issuer_create_run(struct db *db, struct db_job *j)
{
	sqlite3_stmt	*st;
	enum db_status	 s;
	char		 id[DB_ID_SIZE];

	db_new_id("iss", id, sizeof(id));
	st = conn_bind(&db->wr, SQL_ISSUER_INSERT, "tttttttti", id,
	    j->u.issuer.kid, j->u.issuer.alg, j->u.issuer.key,
	    j->u.issuer.iss, j->u.issuer.aud, j->u.issuer.tenant_claim,
	    j->u.issuer.tenant_id, db_now());
	if (st == NULL)
		return DB_ERROR;
	if ((s = stmt_row(&db->wr, st, &j->result)) != DB_OK)
		return s;
	/* The fingerprint stands in for the key, which never reaches the
	 * audit trail. */
	return db_audit(db, j, "issuer.create", id,
	    json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}",
	    "kid", j->u.issuer.kid, "alg", j->u.issuer.alg,
	    "iss", j->u.issuer.iss, "aud", j->u.issuer.aud,
	    "tenant_claim", j->u.issuer.tenant_claim,
	    "tenant_id", j->u.issuer.tenant_id,
	    "key_fingerprint", j->u.issuer.key_fingerprint));
}

static enum db_status
issuer_delete_run(struct db *db, struct db_job *j)
{
	enum db_status	 s;

	if (!end_once(db, j, SQL_ISSUER_DELETE, SQL_ISSUER_GET, &s))
		return s;
	return db_audit(db, j, "issuer.delete", j->u.revoke.id,
	    json_pack("{s:O}", "kid", json_object_get(j->result, "kid")));
}

/* --- generic writes and reads --- */

/* Prepares (once) and binds a statement from a JSON array of arguments. */
static sqlite3_stmt *
conn_bind_json(struct db_conn *c, enum db_sql id, json_t *args)
{
	sqlite3_stmt	*st;
	json_t		*v;
	size_t		 i;
	int		 rc = SQLITE_OK;

	if ((st = c->st[id]) == NULL) {
		if (sqlite3_prepare_v3(c->h, db_sql_text[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL) != SQLITE_OK) {
			log_warnx("cannot prepare '%.40s' on %s connection: "
			    "%s", db_sql_text[id], c->name,
			    sqlite3_errmsg(c->h));
			return NULL;
		}
		st = c->st[id];
	}
	if (json_array_size(args) != (size_t)sqlite3_bind_parameter_count(st))
		fatalx("%s: statement %d takes %d parameters, not %zu",
		    __func__, (int)id, sqlite3_bind_parameter_count(st),
		    json_array_size(args));
	json_array_foreach(args, i, v) {
		int	k = (int)i + 1;

		if (json_is_string(v))
			rc = sqlite3_bind_text(st, k, json_string_value(v),
			    (int)json_string_length(v), SQLITE_TRANSIENT);
		else if (json_is_integer(v))
			rc = sqlite3_bind_int64(st, k, json_integer_value(v));
		else if (json_is_boolean(v))
			rc = sqlite3_bind_int64(st, k, json_is_true(v));
		else if (json_is_null(v))
			rc = sqlite3_bind_null(st, k);
		else if (json_is_object(v) && json_string_value(
		    json_object_get(v, "hex")) != NULL) {
			/* {"hex": "..."}: a blob, e.g. a key hash. */
			const char	*h = json_string_value(
			    json_object_get(v, "hex"));
			uint8_t		 blob[64];
			size_t		 bl = strlen(h) / 2;

			if (bl > sizeof(blob) || strlen(h) % 2 != 0)
				fatalx("%s: blob argument too long", __func__);
			for (size_t b = 0; b < bl; b++) {
				unsigned	x;

				if (sscanf(h + 2 * b, "%2x", &x) != 1)
					fatalx("%s: bad hex", __func__);
				blob[b] = (uint8_t)x;
			}
			rc = sqlite3_bind_blob(st, k, blob, (int)bl,
			    SQLITE_TRANSIENT);
			explicit_bzero(blob, sizeof(blob));
		} else
			fatalx("%s: argument %d of statement %d has an "
			    "unbindable type", __func__, k, (int)id);
		if (rc != SQLITE_OK) {
			log_warnx("cannot bind parameter %d of '%.40s': %s", k,
			    db_sql_text[id], sqlite3_errstr(rc));
			sqlite3_clear_bindings(st);
			return NULL;
		}
	}
	return st;
}

/* Writer thread: the steps in order, then the audit row. */
static enum db_status
steps_run(struct db *db, struct db_job *j)
{
	enum db_status	 s;
	sqlite3_stmt	*st;
	json_t		*row;

	for (size_t i = 0; i < j->u.steps.n; i++) {
		struct db_step	*step = &j->u.steps.s[i];

		if ((st = conn_bind_json(&db->wr, step->sql, step->args))
		    == NULL)
			return DB_ERROR;
		if ((s = stmt_row(&db->wr, st, &row)) != DB_OK)
			return s;
		if (row == NULL && (step->flags & STEP_REQUIRED))
			return DB_NOT_FOUND;
		if (row != NULL && (step->flags & STEP_RESULT)) {
			json_decref(j->result);
			j->result = row;
		} else
			json_decref(row);
	}
	if (j->u.steps.action == NULL)
		return DB_OK;
	return db_audit(db, j, j->u.steps.action, j->u.steps.target,
	    json_incref(j->u.steps.detail));
}

/* Queues a job of up to DB_MAX_STEPS statements: sql[i] with args[i]
 * (stolen) and flags[i].  detail is stolen; action NULL: no audit row. */
static void
db_steps_submit(struct db *db, size_t n, const enum db_sql *sql,
    json_t **args, const unsigned *flags, const char *action,
    const char *target, json_t *detail, const char *actor, db_done_fn *done,
    void *arg)
{
	struct db_job	*j = job_new(done, arg, actor);

	if (n > DB_MAX_STEPS)
		fatalx("%s: too many steps", __func__);
	j->run = steps_run;
	for (size_t i = 0; i < n; i++) {
		j->u.steps.s[i].sql = sql[i];
		j->u.steps.s[i].args = args[i];
		j->u.steps.s[i].flags = flags[i];
	}
	j->u.steps.n = n;
	j->u.steps.action = job_str(j, action);
	j->u.steps.target = job_str(j, target);
	j->u.steps.detail = detail;
	db_submit(db, j);
}

/* Every row of a read as a JSON array; NULL after logging. */
static json_t *
db_read_all(struct db *db, enum db_sql id, json_t *args)
{
	sqlite3_stmt	*st = conn_bind_json(&db->rd, id, args);
	json_t		*rows, *row;
	int		 rc;

	json_decref(args);
	if (st == NULL)
		return NULL;
	rows = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((row = row_json(st)) == NULL) {
			rc = SQLITE_ERROR;
			break;
		}
		json_array_append_new(rows, row);
	}
	if (rc != SQLITE_DONE) {
		(void)conn_status(&db->rd, rc);
		json_decref(rows);
		rows = NULL;
	}
	stmt_done(st);
	return rows;
}

/* --- quotas, prices, key rotation --- */

static json_t *
opt_int(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

void
db_quota_put(struct db *db, const struct db_quota_in *q, const char *actor,
    db_done_fn *done, void *arg)
{
	enum db_sql	 sql[2] = { SQL_QUOTA_DELETE, SQL_QUOTA_INSERT };
	unsigned	 flags[2] = { 0, STEP_RESULT | STEP_REQUIRED };
	json_t		*args[2];
	char		*models = NULL;

	if (q->allowed_models != NULL)
		models = json_dumps(q->allowed_models, JSON_COMPACT);
	args[0] = json_pack("[s, s?]", q->tenant_id, q->key_id);
	args[1] = json_pack("[s, s?, o, o, o, o, o, s?]", q->tenant_id,
	    q->key_id, opt_int(q->rpm), opt_int(q->tpm),
	    opt_int(q->concurrent), opt_int(q->month_tokens),
	    opt_int(q->month_credits), models);
	db_steps_submit(db, 2, sql, args, flags, "quota.put",
	    q->key_id ? q->key_id : q->tenant_id,
	    json_pack("{s:s, s:s?, s:o, s:o, s:o, s:o, s:o, s:O?}",
	    "tenant_id", q->tenant_id, "key_id", q->key_id,
	    "requests_per_minute", opt_int(q->rpm),
	    "tokens_per_minute", opt_int(q->tpm),
	    "max_concurrent_requests", opt_int(q->concurrent),
	    "monthly_token_budget", opt_int(q->month_tokens),
	    "monthly_credit_budget_micros", opt_int(q->month_credits),
	    "allowed_models", q->allowed_models), actor, done, arg);
	free(models);
}

json_t *
db_quota_list(struct db *db)
{
	return db_read_all(db, SQL_QUOTA_LIST, json_array());
}

json_t *
db_quota_of_key(struct db *db, const char *key_id)
{
	json_t	*rows = db_read_all(db, SQL_QUOTA_OF_KEY,
	    json_pack("[s]", key_id));
	json_t	*row = json_incref(json_array_get(rows, 0));

	json_decref(rows);
	return row;
}

json_t *
db_usage_seed(struct db *db, int64_t minute_start_us, int64_t month_start_us)
{
	json_t	*minute, *month, *out;

	minute = db_read_all(db, SQL_SEED_MINUTE,
	    json_pack("[I]", (json_int_t)minute_start_us));
	month = db_read_all(db, SQL_SEED_MONTH,
	    json_pack("[I]", (json_int_t)month_start_us));
	if (minute == NULL || month == NULL) {
		json_decref(minute);
		json_decref(month);
		return NULL;
	}
	out = json_pack("{s:o, s:o}", "minute", minute, "month", month);
	return out;
}

void
db_price_add(struct db *db, const struct db_price_in *p, const char *actor,
    db_done_fn *done, void *arg)
{
	enum db_sql	 sql[1] = { SQL_PRICE_INSERT };
	unsigned	 flags[1] = { STEP_RESULT | STEP_REQUIRED };
	json_t		*args[1];

	args[0] = json_pack("[s, I, I, I, I, I]", p->model,
	    (json_int_t)p->starts_at, (json_int_t)p->per_1k_input,
	    (json_int_t)p->per_1k_output, (json_int_t)p->per_request,
	    (json_int_t)p->per_compute_second);
	db_steps_submit(db, 1, sql, args, flags, "price.add", p->model,
	    json_incref(args[0]), actor, done, arg);
}

json_t *
db_price_list(struct db *db)
{
	return db_read_all(db, SQL_PRICE_LIST, json_array());
}

void
db_key_rotate(struct db *db, const char *key_id, const char *prefix,
    const uint8_t hash[32], int64_t grace_until, const char *actor,
    db_done_fn *done, void *arg)
{
	enum db_sql	 sql[3] = { SQL_KEY_INSERT_FULL, SQL_KEY_ROTATE_OLD,
			    SQL_QUOTA_COPY };
	unsigned	 flags[3] = { STEP_RESULT | STEP_REQUIRED,
			    STEP_REQUIRED, 0 };
	json_t		*args[3];
	char		 id[DB_ID_SIZE], hex[65];
	int64_t		 now = db_now();

	db_new_id("key", id, sizeof(id));
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", hash[i]);
	args[0] = json_pack("[s, s, {s:s}, I, s]", id, prefix, "hex", hex,
	    (json_int_t)now, key_id);
	args[1] = json_pack("[s, s, I]", key_id, id, (json_int_t)grace_until);
	args[2] = json_pack("[s, s]", key_id, id);
	explicit_bzero(hex, sizeof(hex));
	db_steps_submit(db, 3, sql, args, flags, "key.rotate", key_id,
	    json_pack("{s:s, s:s, s:I}", "new_key_id", id, "prefix", prefix,
	    "grace_until", (json_int_t)grace_until), actor, done, arg);
}

void
db_keys_touch(struct db *db, const char *const *key_ids, size_t n,
    int64_t ts)
{
	enum db_sql	 sql[DB_MAX_STEPS];
	unsigned	 flags[DB_MAX_STEPS] = { 0 };
	json_t		*args[DB_MAX_STEPS];
	size_t		 k = 0;

	for (size_t i = 0; i < n; i++) {
		sql[k] = SQL_KEY_TOUCH;
		args[k++] = json_pack("[s, I]", key_ids[i], (json_int_t)ts);
		if (k == DB_MAX_STEPS || i + 1 == n) {
			db_steps_submit(db, k, sql, args, flags, NULL, NULL,
			    NULL, NULL, NULL, NULL);
			k = 0;
		}
	}
}

void
db_key_set_scopes(struct db *db, const char *key_id, json_t *scopes,
    const char *actor, db_done_fn *done, void *arg)
{
	enum db_sql	 sql[1] = { SQL_KEY_SCOPES };
	unsigned	 flags[1] = { STEP_RESULT | STEP_REQUIRED };
	json_t		*args[1];
	char		*text = scopes ? json_dumps(scopes, JSON_COMPACT) : NULL;

	args[0] = json_pack("[s, s?]", key_id, text);
	db_steps_submit(db, 1, sql, args, flags, "key.scopes", key_id,
	    json_pack("{s:O?}", "scopes", scopes), actor, done, arg);
	free(text);
}

/* --- scheduling: tenant weights, deployment scale --- */

int
db_tenant_weight(struct db *db, const char *id, int *weight)
{
	sqlite3_stmt	*st;
	int		 rc, ret = -1;

	*weight = 1;
	if ((st = conn_bind(&db->rd, SQL_TENANT_WEIGHT, "t", id)) == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		ret = 0;
	else if (rc == SQLITE_ROW) {
		*weight = sqlite3_column_int(st, 0);
		if (*weight < 1)
			*weight = 1;
		ret = 1;
	} else
		(void)conn_status(&db->rd, rc);
	stmt_done(st);
	return ret;
}

void
db_tenant_set_weight(struct db *db, const char *id, int weight,
    const char *actor, db_done_fn *done, void *arg)
{
	enum db_sql	 sql[1] = { SQL_TENANT_SET_WEIGHT };
	unsigned	 flags[1] = { STEP_RESULT | STEP_REQUIRED };
	json_t		*args[1];

	args[0] = json_pack("[s, i]", id, weight);
	db_steps_submit(db, 1, sql, args, flags, "tenant.weight", id,
	    json_pack("{s:i}", "weight", weight), actor, done, arg);
}

void
db_deployment_scale(struct db *db, const char *name, int replicas,
    int min_replicas, int max_replicas, const char *actor, db_done_fn *done,
    void *arg)
{
	enum db_sql	 sql[1] = { SQL_DEP_SCALE };
	unsigned	 flags[1] = { STEP_RESULT | STEP_REQUIRED };
	json_t		*args[1];

	args[0] = json_pack("[s, i, i, i, I]", name, replicas, min_replicas,
	    max_replicas, (json_int_t)db_now());
	db_steps_submit(db, 1, sql, args, flags, "deployment.scale", name,
	    json_pack("{s:i, s:i, s:i}", "replicas", replicas,
	    "min_replicas", min_replicas, "max_replicas", max_replicas),
	    actor, done, arg);
}

void
db_deployment_traffic(struct db *db, const char *name, json_t *traffic,
    const char *actor, db_done_fn *done, void *arg)
{
	enum db_sql	 sql[1] = { SQL_DEP_TRAFFIC };
	unsigned	 flags[1] = { STEP_RESULT | STEP_REQUIRED };
	json_t		*args[1];
	char		*text = json_dumps(traffic, JSON_COMPACT);

	args[0] = json_pack("[s, s?, I]", name, text, (json_int_t)db_now());
	db_steps_submit(db, 1, sql, args, flags, "deployment.traffic", name,
	    json_pack("{s:O}", "versions", traffic), actor, done, arg);
	free(text);
}

void
db_deployment_rollback(struct db *db, const char *name, const char *actor,
    db_done_fn *done, void *arg)
{
	enum db_sql	 sql[1] = { SQL_DEP_ROLLBACK };
	unsigned	 flags[1] = { STEP_RESULT | STEP_REQUIRED };
	json_t		*args[1];

	args[0] = json_pack("[s, I]", name, (json_int_t)db_now());
	db_steps_submit(db, 1, sql, args, flags, "deployment.rollback", name,
	    json_object(), actor, done, arg);
}

void
db_deployment_delete(struct db *db, const char *name, const char *actor,
    db_done_fn *done, void *arg)
{
	enum db_sql	 sql[1] = { SQL_DEP_DELETE };
	unsigned	 flags[1] = { STEP_RESULT | STEP_REQUIRED };
	json_t		*args[1];

	args[0] = json_pack("[s]", name);
	db_steps_submit(db, 1, sql, args, flags, "deployment.delete", name,
	    json_object(), actor, done, arg);
}

/* --- billing periods and invoices --- */

void
db_period_close(struct db *db, const struct db_period *p, const char *actor,
    db_done_fn *done, void *arg)
{
	enum db_sql	 sql[2] = { SQL_PERIOD_INSERT, SQL_PERIOD_FREEZE };
	unsigned	 flags[2] = { STEP_RESULT | STEP_REQUIRED, 0 };
	json_t		*args[2];

	args[0] = json_pack("[s, I, I, I, I]", p->period, (json_int_t)p->idx,
	    (json_int_t)p->start_us, (json_int_t)p->end_us,
	    (json_int_t)db_now());
	args[1] = json_pack("[s, I, I, I]", p->period,
	    (json_int_t)p->start_us, (json_int_t)p->end_us,
	    (json_int_t)p->idx);
	db_steps_submit(db, 2, sql, args, flags, "billing.period.close",
	    p->period, json_pack("{s:s}", "period", p->period), actor, done,
	    arg);
}

json_t *
db_period_get(struct db *db, const char *period)
{
	return db_read_one(db, SQL_PERIOD_GET, "t", period);
}

json_t *
db_period_list(struct db *db)
{
	return db_read_all(db, SQL_PERIOD_LIST, json_array());
}

json_t *
db_invoice_lines(struct db *db, const char *tenant_id,
    const struct db_period *p, int64_t upper_id)
{
	return db_read_all(db, SQL_INVOICE_LINES, json_pack("[s, I, I, I, I]",
	    tenant_id, (json_int_t)p->start_us, (json_int_t)p->end_us,
	    (json_int_t)p->idx, (json_int_t)upper_id));
}

json_t *
db_invoice_frozen(struct db *db, const char *tenant_id, const char *period)
{
	return db_read_all(db, SQL_INVOICE_FROZEN, json_pack("[s, s]",
	    period, tenant_id));
}

/* --- usage reports --- */

/* One group of the report being built: latencies of its served rows, in
 * ascending order (the statement sorts them). */
struct report_group {
	json_t	*row;
	int64_t	*lat;
	size_t	 n, cap;
};

/* Nearest rank: the smallest value with at least p% of the values at or
 * below it, i.e. the value at rank ceil(p / 100 * n), 1-based. */
static json_t *
nearest_rank(const int64_t *v, size_t n, int p)
{
	size_t	 rank;

	if (n == 0)
		return json_null();
	rank = (n * (size_t)p + 99) / 100;
	if (rank < 1)
		rank = 1;
	return json_integer(v[rank - 1]);
}

static void
report_flush(json_t *out, struct report_group *g)
{
	if (g->row == NULL)
		return;
	json_object_set_new(g->row, "latency_p50_us",
	    nearest_rank(g->lat, g->n, 50));
	json_object_set_new(g->row, "latency_p95_us",
	    nearest_rank(g->lat, g->n, 95));
	json_object_set_new(g->row, "latency_p99_us",
	    nearest_rank(g->lat, g->n, 99));
	json_array_append_new(out, g->row);
	g->row = NULL;
	g->n = 0;
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const char	*s = (const char *)sqlite3_column_text(st, i);

	return s != NULL ? s : "";
}

json_t *
db_usage_report(struct db *db, const struct db_report_q *q)
{
	struct report_group	 g = { NULL, NULL, 0, 0 };
	sqlite3_stmt		*st;
	json_t			*out = NULL, *args;
	int			 rc;

	args = json_pack("[I, I, s?, s?, s?]", (json_int_t)q->from_us,
	    (json_int_t)q->to_us, q->tenant_id, q->model, q->key_id);
	st = conn_bind_json(&db->rd, SQL_USAGE_REPORT, args);
	json_decref(args);
	if (st == NULL)
		return NULL;
	out = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char	*tenant = col_text(st, 0), *model = col_text(st,
				    1), *key = col_text(st, 2), *day =
				    col_text(st, 3);
		int		 status = sqlite3_column_int(st, 4);
		bool		 ok = status >= 200 && status < 300;
		json_t		*r = g.row;

		if (r == NULL ||
		    strcmp(json_string_value(json_object_get(r, "tenant_id")),
		    tenant) != 0 ||
		    strcmp(json_string_value(json_object_get(r, "model")),
		    model) != 0 ||
		    strcmp(json_is_null(json_object_get(r, "key_id")) ? "" :
		    json_string_value(json_object_get(r, "key_id")), key) != 0 ||
		    strcmp(json_string_value(json_object_get(r, "day")),
		    day) != 0) {
			report_flush(out, &g);
			g.row = json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:I,"
			    " s:I}", "tenant_id", tenant, "model", model,
			    "key_id", *key != '\0' ? json_string(key) :
			    json_null(), "day", day, "requests",
			    (json_int_t)0, "errors", (json_int_t)0,
			    "input_tokens", (json_int_t)0, "output_tokens",
			    (json_int_t)0);
			if (g.row == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			r = g.row;
		}
#define BUMP(k, d) json_object_set_new(r, k, json_integer(		\
	json_integer_value(json_object_get(r, k)) + (d)))
		BUMP("requests", 1);
		BUMP("errors", ok ? 0 : 1);
		BUMP("input_tokens", sqlite3_column_int64(st, 5));
		BUMP("output_tokens", sqlite3_column_int64(st, 6));
#undef BUMP
		if (ok) {
			if (g.n == g.cap) {
				g.cap = g.cap ? 2 * g.cap : 64;
				g.lat = xreallocarray(g.lat, g.cap,
				    sizeof(*g.lat));
			}
			g.lat[g.n++] = sqlite3_column_int64(st, 7);
		}
	}
	if (rc != SQLITE_DONE) {
		(void)conn_status(&db->rd, rc);
		json_decref(g.row);
		json_decref(out);
		out = NULL;
	} else
		report_flush(out, &g);
	free(g.lat);
	stmt_done(st);
	return out;
}

/* --- idempotent admin requests --- */

json_t *
db_idem_get(struct db *db, const char *key)
{
	return db_read_one(db, SQL_IDEM_GET, "ti", key,
	    db_now() - DB_IDEM_TTL_S);
}

void
db_idem_put(struct db *db, const char *key, const char *request_hash,
    int status, const char *content_type, const char *body,
    db_done_fn *done, void *arg)
{
	enum db_sql	 sql[2] = { SQL_IDEM_DROP, SQL_IDEM_INSERT };
	unsigned	 flags[2] = { 0, 0 };
	json_t		*args[2];
	int64_t		 now = db_now();

	/* An expired answer not swept yet must not hold its key. */
	args[0] = json_pack("[s, I]", key, (json_int_t)(now - DB_IDEM_TTL_S));
	args[1] = json_pack("[s, s, i, s, s, I]", key, request_hash, status,
	    content_type, body, (json_int_t)now);
	db_steps_submit(db, 2, sql, args, flags, NULL, NULL, NULL, NULL,
	    done, arg);
}

/* --- audit with filters --- */

json_t *
db_audit_query(struct db *db, const struct db_audit_q *q, const char *after,
    int limit)
{
	int64_t	 cursor;

	if (parse_row_id(after, &cursor) == -1)
		return NULL;
	return db_read_page(db, SQL_AUDIT_FILTER, limit, "itttiiL", cursor,
	    q->action, q->target, q->actor, q->from,
	    q->to > 0 ? q->to : INT64_MAX);
}

/* --- filtered listings --- */

json_t *
db_tenant_find(struct db *db, const char *status, const char *plan,
    const char *after, int limit)
{
	return db_read_page(db, SQL_TENANT_FIND, limit, "tttL",
	    after != NULL ? after : "", status, plan);
}

json_t *
db_key_find(struct db *db, const char *tenant_id, const char *status,
    const char *after, int limit)
{
	return db_read_page(db, SQL_KEY_FIND, limit, "tttiL", tenant_id,
	    after != NULL ? after : "", status, db_now());
}

json_t *
db_model_find(struct db *db, const char *name, const char *after, int limit)
{
	return db_read_page(db, SQL_MODEL_FIND, limit, "ttL",
	    after != NULL ? after : "", name);
}

json_t *
db_deployment_find(struct db *db, const char *model, const char *after,
    int limit)
{
	return db_read_page(db, SQL_DEP_FIND, limit, "ttL",
	    after != NULL ? after : "", model);
}

json_t *
db_usage_find(struct db *db, const struct db_usage_q *q, const char *after,
    int limit)
{
	int64_t	 cursor, from_us, to_us;

	if (parse_row_id(after, &cursor) == -1)
		return NULL;
	from_us = q->from <= 0 ? INT64_MIN :
	    q->from > INT64_MAX / 1000000 ? INT64_MAX : q->from * 1000000;
	to_us = q->to <= 0 || q->to > INT64_MAX / 1000000 ? INT64_MAX :
	    q->to * 1000000;
	return db_read_page(db, SQL_USAGE_FIND, limit, "iiitttiL", from_us,
	    to_us, cursor, q->tenant_id, q->model, q->key_id,
	    (int64_t)q->status);
}

void
db_tenant_update(struct db *db, const char *id, int weight,
    const char *plan, const char *status, const char *actor,
    db_done_fn *done, void *arg)
{
	enum db_sql	 sql[1] = { SQL_TENANT_UPDATE };
	unsigned	 flags[1] = { STEP_RESULT | STEP_REQUIRED };
	json_t		*args[1], *w;

	w = weight > 0 ? json_integer(weight) : json_null();
	args[0] = json_pack("[s, O, s?, s?]", id, w, plan, status);
	db_steps_submit(db, 1, sql, args, flags, "tenant.update", id,
	    json_pack("{s:o, s:s?, s:s?}", "weight", w, "plan", plan,
	    "status", status), actor, done, arg);
}

/* --- quota reads, pages of prices, periods and tenants --- */

json_t *
db_quota_get(struct db *db, const char *tenant_id, const char *key_id)
{
	return db_read_one(db, SQL_QUOTA_GET, "tt", tenant_id, key_id);
}

json_t *
db_price_page(struct db *db, const char *model, const char *after_model,
    int64_t after_starts_at, int limit)
{
	return db_read_page(db, SQL_PRICE_PAGE, limit, "titL",
	    after_model != NULL ? after_model : "",
	    after_model != NULL ? after_starts_at : INT64_MIN, model);
}

json_t *
db_period_page(struct db *db, const char *after, int limit)
{
	return db_read_page(db, SQL_PERIOD_PAGE, limit, "tL",
	    after != NULL ? after : "");
}

json_t *
db_tenant_page(struct db *db, const char *only_id, const char *after,
    int limit)
{
	return db_read_page(db, SQL_TENANT_PAGE, limit, "ttL",
	    after != NULL ? after : "", only_id);
}

json_t *
db_usage_find_desc(struct db *db, const struct db_usage_q *q,
    const char *after, int limit)
{
	int64_t	 cursor, from_us, to_us;

	if (parse_row_id(after, &cursor) == -1)
		return NULL;
	if (after == NULL || *after == '\0')
		cursor = INT64_MAX;
	from_us = q->from <= 0 ? INT64_MIN :
	    q->from > INT64_MAX / 1000000 ? INT64_MAX : q->from * 1000000;
	to_us = q->to <= 0 || q->to > INT64_MAX / 1000000 ? INT64_MAX :
	    q->to * 1000000;
	return db_read_page(db, SQL_USAGE_FIND_DESC, limit, "iiitttiL",
	    from_us, to_us, cursor, q->tenant_id, q->model, q->key_id,
	    (int64_t)q->status);
}

/* --- the dashboard's series --- */

/* Fills step i's latency figures from its served latencies (ascending). */
static void
series_flush(json_t *steps, size_t i, const int64_t *lat, size_t n)
{
	json_t	*s = json_array_get(steps, i);

	if (s == NULL)
		return;
	json_object_set_new(s, "latency_p50_us", nearest_rank(lat, n, 50));
	json_object_set_new(s, "latency_p95_us", nearest_rank(lat, n, 95));
	json_object_set_new(s, "latency_p99_us", nearest_rank(lat, n, 99));
}

json_t *
db_usage_series(struct db *db, const struct db_series_q *q)
{
	sqlite3_stmt	*st;
	json_t		*steps, *top, *args, *s;
	int64_t		*lat = NULL, nsteps, b, cur = -1;
	size_t		 n = 0, cap = 0;
	int		 rc;

	if (q->step_us <= 0 || q->to_us <= q->from_us ||
	    (q->to_us - q->from_us) / q->step_us > DB_SERIES_MAX_STEPS)
		return NULL;
	nsteps = (q->to_us - q->from_us + q->step_us - 1) / q->step_us;
	steps = json_array();
	for (b = 0; b < nsteps; b++)
		json_array_append_new(steps, json_pack("{s:I, s:I, s:I, s:I,"
		    " s:I, s:I, s:n, s:n, s:n}", "t",
		    (json_int_t)((q->from_us + b * q->step_us) / 1000000),
		    "requests", (json_int_t)0, "errors", (json_int_t)0,
		    "input_tokens", (json_int_t)0, "output_tokens",
		    (json_int_t)0, "cost_micros", (json_int_t)0,
		    "latency_p50_us", "latency_p95_us", "latency_p99_us"));
	args = json_pack("[I, I, I, s?]", (json_int_t)q->from_us,
	    (json_int_t)q->to_us, (json_int_t)q->step_us, q->tenant_id);
	st = conn_bind_json(&db->rd, SQL_USAGE_SERIES, args);
	json_decref(args);
	if (st == NULL) {
		json_decref(steps);
		return NULL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int	status = sqlite3_column_int(st, 1);

		b = sqlite3_column_int64(st, 0);
		if (b < 0 || b >= nsteps)
			continue;	/* cannot happen: ts_us in range */
		if (b != cur) {
			if (cur >= 0)
				series_flush(steps, (size_t)cur, lat, n);
			cur = b;
			n = 0;
		}
		s = json_array_get(steps, (size_t)b);
#define BUMP(k, d) json_object_set_new(s, k, json_integer(		\
	json_integer_value(json_object_get(s, k)) + (d)))
		BUMP("requests", 1);
		BUMP("errors", status >= 200 && status < 300 ? 0 : 1);
		BUMP("input_tokens", sqlite3_column_int64(st, 2));
		BUMP("output_tokens", sqlite3_column_int64(st, 3));
		BUMP("cost_micros", sqlite3_column_int64(st, 5));
#undef BUMP
		if (status >= 200 && status < 300) {
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				lat = xreallocarray(lat, cap, sizeof(*lat));
			}
			lat[n++] = sqlite3_column_int64(st, 4);
		}
	}
	if (cur >= 0)
		series_flush(steps, (size_t)cur, lat, n);
	free(lat);
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		(void)conn_status(&db->rd, rc);
		json_decref(steps);
		return NULL;
	}
	args = json_pack("[I, I, s?, i]", (json_int_t)q->from_us,
	    (json_int_t)q->to_us, q->tenant_id, q->top > 0 ? q->top : 0);
	if ((top = db_read_all(db, SQL_USAGE_TOP, args)) == NULL) {
		json_decref(steps);
		return NULL;
	}
	return json_pack("{s:o, s:o}", "data", steps, "top_tenants", top);
}
