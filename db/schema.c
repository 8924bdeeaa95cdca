/* db/schema.c - the maas data model (DESIGN.md §4) as numbered migrations.
 *
 * schema_migrations[i] takes a database from user_version i to i + 1.  A
 * migration is never edited once released: a schema change is a new string
 * appended to the array, nothing else.  Each migration runs inside its own
 * BEGIN IMMEDIATE transaction together with its user_version bump, and the
 * version is read again inside that transaction, so two processes opening
 * the same file cannot apply a migration twice.
 *
 * Conventions: ids are TEXT "<prefix>_<24 hex>" except for the append-only
 * logs (usage_events, audit_log) whose INTEGER PRIMARY KEY is the rowid and
 * gives them a cheap total order for paging.  Times are integer Unix
 * seconds; usage_events.ts_us is microseconds.  Columns holding JSON are
 * TEXT checked with json_valid().  NULL in a quota column means unlimited.
 * Tables are STRICT so that a value of the wrong type is an error, not a
 * silent conversion. */
#include <stdio.h>

#include <sqlite3.h>

#include "common/log.h"
#include "db/schema.h"

static const char *const schema_migrations[] = {
	/* 1: the whole data model for the first milestones. */
	"CREATE TABLE tenants ("
	"  id		TEXT PRIMARY KEY CHECK (id GLOB 'ten_*'),"
	"  name		TEXT NOT NULL UNIQUE"
	"		CHECK (length(name) BETWEEN 1 AND 256),"
	"  status	TEXT NOT NULL DEFAULT 'active'"
	"		CHECK (status IN ('active', 'suspended')),"
	"  plan		TEXT NOT NULL DEFAULT 'default',"
	"  weight	INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 1),"
	"  created_at	INTEGER NOT NULL"
	") STRICT;"

	/* Only the public prefix and SHA-256 of a secret are kept. */
	"CREATE TABLE api_keys ("
	"  id		TEXT PRIMARY KEY CHECK (id GLOB 'key_*'),"
	"  tenant_id	TEXT NOT NULL REFERENCES tenants(id),"
	"  name		TEXT,"
	"  prefix	TEXT NOT NULL UNIQUE CHECK (prefix <> ''),"
	"  hash		BLOB NOT NULL CHECK (length(hash) = 32),"
	"  scopes	TEXT CHECK (scopes IS NULL OR json_valid(scopes)),"
	"  created_at	INTEGER NOT NULL,"
	"  expires_at	INTEGER,"
	"  revoked_at	INTEGER,"
	"  last_used_at	INTEGER,"
	"  replaced_by	TEXT REFERENCES api_keys(id)"
	") STRICT;"
	"CREATE INDEX api_keys_tenant ON api_keys(tenant_id, id);"

	/* alg is pinned per key and never taken from a token. */
	"CREATE TABLE jwt_issuers ("
	"  id		TEXT PRIMARY KEY,"
	"  kid		TEXT NOT NULL UNIQUE,"
	"  alg		TEXT NOT NULL CHECK (alg IN ('RS256', 'RS384',"
	"		'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384',"
	"		'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512')),"
	"  key		TEXT NOT NULL,"
	"  iss		TEXT NOT NULL,"
	"  aud		TEXT,"
	"  tenant_claim	TEXT NOT NULL DEFAULT 'sub',"
	"  created_at	INTEGER NOT NULL,"
	"  deleted_at	INTEGER"
	") STRICT;"

	/* One row per tenant (key_id NULL) and per key that overrides it.
	 * The expression index makes the NULL key_id unique as well. */
	"CREATE TABLE quotas ("
	"  id		INTEGER PRIMARY KEY,"
	"  tenant_id	TEXT NOT NULL REFERENCES tenants(id),"
	"  key_id	TEXT REFERENCES api_keys(id),"
	"  requests_per_minute		INTEGER"
	"		CHECK (requests_per_minute >= 0),"
	"  tokens_per_minute		INTEGER"
	"		CHECK (tokens_per_minute >= 0),"
	"  max_concurrent_requests	INTEGER"
	"		CHECK (max_concurrent_requests >= 0),"
	"  monthly_token_budget		INTEGER"
	"		CHECK (monthly_token_budget >= 0),"
	"  monthly_credit_budget_micros	INTEGER"
	"		CHECK (monthly_credit_budget_micros >= 0),"
	"  allowed_models	TEXT"
	"		CHECK (allowed_models IS NULL OR"
	"		json_valid(allowed_models))"
	") STRICT;"
	"CREATE UNIQUE INDEX quotas_scope ON quotas(tenant_id,"
	"  ifnull(key_id, ''));"

	"CREATE TABLE models ("
	"  id		TEXT PRIMARY KEY CHECK (id GLOB 'mod_*'),"
	"  name		TEXT NOT NULL CHECK (name <> ''),"
	"  version	TEXT NOT NULL CHECK (version <> ''),"
	"  format	TEXT NOT NULL CHECK (format IN ('onnx', 'gguf')),"
	"  path		TEXT NOT NULL,"
	"  sha256	TEXT NOT NULL CHECK (length(sha256) = 64),"
	"  size		INTEGER NOT NULL CHECK (size >= 0),"
	"  meta		TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),"
	"  created_at	INTEGER NOT NULL,"
	"  UNIQUE (name, version)"
	") STRICT;"

	"CREATE TABLE deployments ("
	"  id		TEXT PRIMARY KEY CHECK (id GLOB 'dep_*'),"
	"  name		TEXT NOT NULL UNIQUE CHECK (name <> ''),"
	"  model	TEXT NOT NULL,"
	"  version	TEXT NOT NULL,"
	"  replicas	INTEGER NOT NULL,"
	"  min_replicas	INTEGER NOT NULL CHECK (min_replicas >= 0),"
	"  max_replicas	INTEGER NOT NULL CHECK (max_replicas >= min_replicas),"
	"  threads	INTEGER NOT NULL DEFAULT 1 CHECK (threads >= 1),"
	"  max_batch	INTEGER NOT NULL DEFAULT 1 CHECK (max_batch >= 1),"
	"  max_queue_delay_us	INTEGER NOT NULL DEFAULT 0"
	"		CHECK (max_queue_delay_us >= 0),"
	"  status	TEXT NOT NULL DEFAULT 'active',"
	"  created_at	INTEGER NOT NULL,"
	"  updated_at	INTEGER NOT NULL,"
	"  CHECK (replicas BETWEEN min_replicas AND max_replicas),"
	"  FOREIGN KEY (model, version) REFERENCES models(name, version)"
	") STRICT;"
	"CREATE INDEX deployments_model ON deployments(model, version);"

	/* A price applies from starts_at until the next row of the model. */
	"CREATE TABLE prices ("
	"  model	TEXT NOT NULL,"
	"  starts_at	INTEGER NOT NULL,"
	"  per_1k_input_micros		INTEGER NOT NULL DEFAULT 0"
	"		CHECK (per_1k_input_micros >= 0),"
	"  per_1k_output_micros		INTEGER NOT NULL DEFAULT 0"
	"		CHECK (per_1k_output_micros >= 0),"
	"  per_request_micros		INTEGER NOT NULL DEFAULT 0"
	"		CHECK (per_request_micros >= 0),"
	"  per_compute_second_micros	INTEGER NOT NULL DEFAULT 0"
	"		CHECK (per_compute_second_micros >= 0),"
	"  PRIMARY KEY (model, starts_at)"
	") STRICT;"

	/* The metering record.  Deliberately no foreign keys and no range
	 * checks: a request that was served must always be recordable, so
	 * the only refusal is a duplicate request_id. */
	"CREATE TABLE usage_events ("
	"  id		INTEGER PRIMARY KEY,"
	"  request_id	TEXT NOT NULL UNIQUE CHECK (request_id <> ''),"
	"  ts_us	INTEGER NOT NULL,"
	"  tenant_id	TEXT NOT NULL,"
	"  key_id	TEXT,"
	"  model	TEXT NOT NULL,"
	"  version	TEXT,"
	"  endpoint	TEXT NOT NULL,"
	"  status	INTEGER NOT NULL,"
	"  queue_us	INTEGER NOT NULL DEFAULT 0,"
	"  compute_us	INTEGER NOT NULL DEFAULT 0,"
	"  bytes_in	INTEGER NOT NULL DEFAULT 0,"
	"  bytes_out	INTEGER NOT NULL DEFAULT 0,"
	"  prompt_tokens	INTEGER NOT NULL DEFAULT 0,"
	"  completion_tokens	INTEGER NOT NULL DEFAULT 0"
	") STRICT;"
	"CREATE INDEX usage_events_tenant_ts ON usage_events(tenant_id, ts_us);"
	"CREATE INDEX usage_events_ts ON usage_events(ts_us);"

	"CREATE TABLE audit_log ("
	"  id		INTEGER PRIMARY KEY,"
	"  ts		INTEGER NOT NULL,"
	"  actor	TEXT NOT NULL,"
	"  action	TEXT NOT NULL,"
	"  target	TEXT,"
	"  detail	TEXT CHECK (detail IS NULL OR json_valid(detail))"
	") STRICT;",

	/* 2: the price of each request, so budgets and invoices sum it. */
	"ALTER TABLE usage_events ADD COLUMN cost_micros INTEGER NOT NULL"
	"  DEFAULT 0;",

	/* 3: whether quotas admitted the request (refusals and unknown
	 * models are metered too, but never counted against a limit). */
	"ALTER TABLE usage_events ADD COLUMN admitted INTEGER NOT NULL"
	"  DEFAULT 1;",

	/* 4: the versions a deployment's name serves and their weights,
	 * [{"version","weight","replicas"}..] (NULL: its one version, all
	 * traffic), and the set before the last change, for rollback. */
	"ALTER TABLE deployments ADD COLUMN traffic TEXT"
	"  CHECK (traffic IS NULL OR json_valid(traffic));"
	"ALTER TABLE deployments ADD COLUMN prev_traffic TEXT"
	"  CHECK (prev_traffic IS NULL OR json_valid(prev_traffic));",

	/* 5: billing periods and idempotent admin requests.
	 * A closed period keeps the last usage row id committed when it
	 * closed: rows of its months with a higher id arrived late and are
	 * billed as adjustments on the next open period.  Its invoice lines
	 * are frozen in invoice_lines.  idx is year * 12 + month - 1, so
	 * that "the months between two periods" is arithmetic. */
	"CREATE TABLE billing_periods ("
	"  period	TEXT PRIMARY KEY CHECK (period GLOB"
	"		'[0-9][0-9][0-9][0-9]-[0-1][0-9]'),"
	"  idx		INTEGER NOT NULL UNIQUE,"
	"  start_us	INTEGER NOT NULL,"
	"  end_us	INTEGER NOT NULL CHECK (end_us > start_us),"
	"  last_usage_id	INTEGER NOT NULL,"
	"  closed_at	INTEGER NOT NULL"
	") STRICT;"
	"CREATE TABLE invoice_lines ("
	"  id		INTEGER PRIMARY KEY,"
	"  period	TEXT NOT NULL REFERENCES billing_periods(period),"
	"  tenant_id	TEXT NOT NULL,"
	"  kind		TEXT NOT NULL CHECK (kind IN ('usage', 'adjustment')),"
	"  for_period	TEXT,"
	"  model	TEXT NOT NULL,"
	"  price_starts_at	INTEGER,"
	"  unit		TEXT NOT NULL,"
	"  quantity	INTEGER NOT NULL,"
	"  unit_price_micros	INTEGER NOT NULL,"
	"  amount_micros	INTEGER NOT NULL"
	") STRICT;"
	"CREATE INDEX invoice_lines_period ON invoice_lines(period, tenant_id);"
	/* The response of an admin POST sent with an Idempotency-Key, so a
	 * replay answers the same without doing the change again. */
	"CREATE TABLE idempotency_keys ("
	"  key		TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),"
	"  request_hash	TEXT NOT NULL,"
	"  status	INTEGER NOT NULL,"
	"  content_type	TEXT NOT NULL,"
	"  body		TEXT NOT NULL,"
	"  created_at	INTEGER NOT NULL"
	") STRICT;",

	/* 5 -> 6: an issuer may be bound to one tenant, whose id its
	 * tokens must name; NULL trusts it for every tenant. */
	"ALTER TABLE jwt_issuers ADD COLUMN tenant_id TEXT"
	"  REFERENCES tenants(id);",
};

#define SCHEMA_NMIGRATIONS \
	((int)(sizeof(schema_migrations) / sizeof(schema_migrations[0])))

static int	schema_version(sqlite3 *, int *);
static int	schema_apply(sqlite3 *, int, int *);

int
schema_latest(void)
{
	return SCHEMA_NMIGRATIONS;
}

int
schema_migrate(sqlite3 *h, int *version)
{
	int	 v, applied;

	if (schema_version(h, &v) == -1) {
		log_warnx("cannot read schema version: %s", sqlite3_errmsg(h));
		return -1;
	}
	if (v > SCHEMA_NMIGRATIONS) {
		log_warnx("database schema version %d is newer than this "
		    "binary's %d", v, SCHEMA_NMIGRATIONS);
		return -1;
	}
	while (v < SCHEMA_NMIGRATIONS) {
		if (schema_apply(h, v, &applied) == -1)
			return -1;
		if (applied)
			log_info("database migrated to schema version %d",
			    v + 1);
		v++;
	}
	*version = v;
	return 0;
}

/* Reads PRAGMA user_version; -1 leaves the error in h for the caller. */
static int
schema_version(sqlite3 *h, int *version)
{
	sqlite3_stmt	*st = NULL;
	int		 ret = -1;

	if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto out;
	*version = sqlite3_column_int(st, 0);
	ret = 0;
 out:
	sqlite3_finalize(st);
	return ret;
}

/* Moves the database from version from to from + 1.  *applied is 0 when
 * another process got there first. */
static int
schema_apply(sqlite3 *h, int from, int *applied)
{
	char	 bump[64];
	char	*err = NULL;
	int	 v, ret = -1;

	*applied = 0;
	if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK)
		goto out;
	if (schema_version(h, &v) == -1)
		goto out;
	if (v > from) {
		ret = 0;	/* the ROLLBACK below ends our transaction */
		goto out;
	}
	/* PRAGMA takes no bound parameters; the value is our own integer. */
	(void)snprintf(bump, sizeof(bump), "PRAGMA user_version = %d",
	    from + 1);
	if (sqlite3_exec(h, schema_migrations[from], NULL, NULL,
	    &err) != SQLITE_OK ||
	    sqlite3_exec(h, bump, NULL, NULL, &err) != SQLITE_OK ||
	    sqlite3_exec(h, "COMMIT", NULL, NULL, &err) != SQLITE_OK)
		goto out;
	*applied = 1;
	ret = 0;
 out:
	if (ret == -1)
		log_warnx("cannot apply schema migration %d: %s", from + 1,
		    err != NULL ? err : sqlite3_errmsg(h));
	if (!sqlite3_get_autocommit(h))
		(void)sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_free(err);
	return ret;
}
