/* tests/unit/test_db.c - db/ against real SQLite files in a mkdtemp(3)
 * directory and a real event_base: completions arrive through the wake
 * pipe exactly as in maasd.  A second, independent sqlite3 connection
 * checks what is really on disk.  Timings are printed, never asserted. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "common/log.h"
#include "db/db.h"
#include "db/schema.h"

#define WAIT_SECONDS	120	/* a hung writer fails the test, not CI */

struct fx {
	char			 dir[256];
	char			 path[300];
	struct event_base	*base;
	struct event		*tick;	/* bounds each loop turn to 100 ms */
	struct db		*db;
};

/* One job's completion, as the callback saw it. */
struct res {
	int		 calls;
	enum db_status	 status;
	json_t		*result;
};

/* Counts completions of many jobs. */
struct tally {
	int		 calls;
	int		 ok;
	int		 conflict;
	int		 error;
};

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static double
now_s(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_done(void *arg, enum db_status s, json_t *result)
{
	struct res	*r = arg;

	r->calls++;
	r->status = s;
	json_decref(r->result);
	r->result = result;
}

static void
on_tally(void *arg, enum db_status s, json_t *result)
{
	struct tally	*t = arg;

	t->calls++;
	if (s == DB_OK)
		t->ok++;
	else if (s == DB_CONFLICT)
		t->conflict++;
	else
		t->error++;
	json_decref(result);
}

static void
res_clear(struct res *r)
{
	json_decref(r->result);
	memset(r, 0, sizeof(*r));
}

/* Runs the loop until *counter reaches target. */
static void
wait_for(struct fx *f, const int *counter, int target)
{
	double	 deadline = now_s() + WAIT_SECONDS;

	while (*counter < target) {
		assert_true(now_s() < deadline);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
}

/* Submits one job with res as its completion and waits for it. */
#define RUN(f, r, call) do {					\
	res_clear(r);						\
	call;							\
	wait_for((f), &(r)->calls, 1);				\
	assert_int_equal((r)->calls, 1);			\
} while (0)

static void
fx_open(struct fx *f)
{
	f->db = db_open(f->path, f->base);
	assert_non_null(f->db);
}

static void
rm_db_files(const char *path)
{
	char	 p[512];

	(void)unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	(void)unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	(void)unlink(p);
}

static int
fx_setup(void **state)
{
	struct fx	*f;
	struct timeval	 tv = { 0, 100000 };
	const char	*tmp;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(f->dir, sizeof(f->dir), "%s/test_db.XXXXXX", tmp);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/maas.db", f->dir);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->tick = event_new(f->base, -1, EV_PERSIST, tick_cb, NULL);
	assert_non_null(f->tick);
	assert_int_equal(event_add(f->tick, &tv), 0);
	fx_open(f);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx	*f = *state;
	char		 p[400];

	db_close(f->db);
	event_free(f->tick);
	event_base_free(f->base);
	rm_db_files(f->path);
	snprintf(p, sizeof(p), "%s/dur.db", f->dir);
	rm_db_files(p);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* --- an independent look at the file --- */

static sqlite3 *
raw_open(const char *path)
{
	sqlite3	*h = NULL;

	assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	sqlite3_busy_timeout(h, 5000);
	return h;
}

static int64_t
raw_int(sqlite3 *h, const char *sql)
{
	sqlite3_stmt	*st;
	int64_t		 v;

	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void
raw_text(sqlite3 *h, const char *sql, char *out, size_t outsz)
{
	sqlite3_stmt	*st;

	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, outsz, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static int64_t
count_rows(const char *path, const char *table)
{
	sqlite3	*h = raw_open(path);
	char	 sql[128];
	int64_t	 n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	n = raw_int(h, sql);
	sqlite3_close(h);
	return n;
}

/* --- helpers for the API --- */

static const char *
str(json_t *obj, const char *key)
{
	const char	*s = json_string_value(json_object_get(obj, key));

	assert_non_null(s);
	return s;
}

static size_t
page_len(json_t *page)
{
	assert_non_null(page);
	assert_true(json_is_array(json_object_get(page, "data")));
	return json_array_size(json_object_get(page, "data"));
}

static bool
page_more(json_t *page)
{
	assert_true(json_is_boolean(json_object_get(page, "has_more")));
	return json_is_true(json_object_get(page, "has_more"));
}

static json_t *
page_row(json_t *page, size_t i)
{
	return json_array_get(json_object_get(page, "data"), i);
}

static void
tenant_new(struct fx *f, const char *name, char *id, size_t idsz)
{
	struct res	 r = { 0 };

	RUN(f, &r, db_tenant_create(f->db, name, "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	snprintf(id, idsz, "%s", str(r.result, "id"));
	res_clear(&r);
}

static void
usage_fill(struct usage_event *e, const char *rid, const char *tenant,
    int64_t ts_us)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->request_id, sizeof(e->request_id), "%s", rid);
	snprintf(e->tenant_id, sizeof(e->tenant_id), "%s", tenant);
	snprintf(e->key_id, sizeof(e->key_id), "key_0123");
	snprintf(e->model, sizeof(e->model), "tiny");
	snprintf(e->version, sizeof(e->version), "1");
	snprintf(e->endpoint, sizeof(e->endpoint), "chat");
	e->ts_us = ts_us;
	e->status = 200;
	e->queue_us = 10;
	e->compute_us = 2000;
	e->bytes_in = 100;
	e->bytes_out = 300;
	e->prompt_tokens = 12;
	e->completion_tokens = 34;
}

/* Queues n usage rows "<tag>-<i>" without running the loop in between. */
static void
usage_burst(struct db *db, const char *tag, int n, struct tally *t)
{
	struct usage_event	 e;
	char			 rid[64];
	int			 i;

	for (i = 0; i < n; i++) {
		snprintf(rid, sizeof(rid), "%s-%d", tag, i);
		usage_fill(&e, rid, "ten_a", 1700000000000000LL + i);
		db_usage_record(db, &e, on_tally, t);
	}
}

/* --- tests --- */

static void
test_new_id(void **state)
{
	char	 a[64], b[64];
	size_t	 i;

	(void)state;
	db_new_id("ten", a, sizeof(a));
	db_new_id("ten", b, sizeof(b));
	assert_int_equal(strlen(a), 4 + 24);
	assert_memory_equal(a, "ten_", 4);
	for (i = 4; i < strlen(a); i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_string_not_equal(a, b);
	db_close(NULL);		/* a no-op */
}

static void
test_migrations(void **state)
{
	static const char *const tables[] = {
		"tenants", "api_keys", "jwt_issuers", "quotas", "models",
		"deployments", "prices", "usage_events", "audit_log",
		"usage_events_tenant_ts", "usage_events_ts",
	};
	struct fx	*f = *state;
	sqlite3		*h;
	char		 sql[256], mode[16], id[64];
	json_t		*t;
	size_t		 i;

	assert_true(schema_latest() >= 1);
	assert_int_equal(db_schema_version(f->db), schema_latest());
	h = raw_open(f->path);
	assert_int_equal(raw_int(h, "PRAGMA user_version"), schema_latest());
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_schema"
		    " WHERE name = '%s'", tables[i]);
		if (raw_int(h, sql) != 1)
			fail_msg("'%s' missing", tables[i]);
	}
	raw_text(h, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	sqlite3_close(h);

	/* Reopening applies nothing again: migration 1 has no IF NOT EXISTS
	 * and would fail, and the data survives. */
	tenant_new(f, "survivor", id, sizeof(id));
	db_close(f->db);
	fx_open(f);
	assert_int_equal(db_schema_version(f->db), schema_latest());
	t = db_tenant_get(f->db, id);
	assert_non_null(t);
	json_decref(t);
	db_close(f->db);
	f->db = NULL;

	/* A database from a newer binary is refused, and left alone. */
	h = raw_open(f->path);
	assert_int_equal(sqlite3_exec(h, "PRAGMA user_version = 99", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_null(db_open(f->path, f->base));
	h = raw_open(f->path);
	assert_int_equal(raw_int(h, "PRAGMA user_version"), 99);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    schema_latest());
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	fx_open(f);
}

static void
test_tenants(void **state)
{
	struct fx	*f = *state;
	struct res	 r = { 0 };
	char		 ids[3][64], after[64];
	json_t		*t, *page;

	RUN(f, &r, db_tenant_create(f->db, "acme", "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	assert_memory_equal(str(r.result, "id"), "ten_", 4);
	assert_string_equal(str(r.result, "name"), "acme");
	assert_string_equal(str(r.result, "status"), "active");
	assert_int_equal(json_integer_value(json_object_get(r.result,
	    "weight")), 1);
	assert_true(json_integer_value(json_object_get(r.result,
	    "created_at")) > 1600000000);
	snprintf(ids[0], sizeof(ids[0]), "%s", str(r.result, "id"));

	/* The callback's result is what a read shows afterwards. */
	t = db_tenant_get(f->db, ids[0]);
	assert_true(json_equal(t, r.result));
	json_decref(t);
	t = db_tenant_get_by_name(f->db, "acme");
	assert_true(json_equal(t, r.result));
	json_decref(t);
	assert_null(db_tenant_get(f->db, "ten_000000000000000000000000"));
	assert_null(db_tenant_get_by_name(f->db, "nobody"));

	RUN(f, &r, db_tenant_create(f->db, "acme", "admin", on_done, &r));
	assert_int_equal(r.status, DB_CONFLICT);
	assert_null(r.result);
	res_clear(&r);

	tenant_new(f, "globex", ids[1], sizeof(ids[1]));
	tenant_new(f, "initech", ids[2], sizeof(ids[2]));

	page = db_tenant_list(f->db, NULL, 2);
	assert_int_equal(page_len(page), 2);
	assert_true(page_more(page));
	assert_true(strcmp(str(page_row(page, 0), "id"),
	    str(page_row(page, 1), "id")) < 0);
	snprintf(after, sizeof(after), "%s", str(page_row(page, 1), "id"));
	json_decref(page);
	page = db_tenant_list(f->db, after, 2);
	assert_int_equal(page_len(page), 1);
	assert_false(page_more(page));
	assert_true(strcmp(str(page_row(page, 0), "id"), after) > 0);
	json_decref(page);
	page = db_tenant_list(f->db, NULL, 0);	/* default limit */
	assert_int_equal(page_len(page), 3);
	assert_false(page_more(page));
	json_decref(page);
	page = db_tenant_list(f->db, NULL, 3);	/* exactly full */
	assert_int_equal(page_len(page), 3);
	assert_false(page_more(page));
	json_decref(page);
}

/* Runs in the revoke's completion: the change must already be visible to
 * the read connection. */
struct revoke_check {
	struct db	*db;
	const char	*prefix;
	int		 calls;
	enum db_status	 status;
	int64_t		 revoked_at;
};

static void
on_revoked(void *arg, enum db_status s, json_t *result)
{
	struct revoke_check	*rc = arg;
	struct db_key		 k;

	rc->calls++;
	rc->status = s;
	assert_int_equal(db_key_by_prefix(rc->db, rc->prefix, &k), 1);
	rc->revoked_at = k.revoked_at;
	json_decref(result);
}

static void
test_keys(void **state)
{
	struct fx		*f = *state;
	struct res		 r = { 0 };
	struct revoke_check	 rc = { 0 };
	struct db_key		 k;
	uint8_t			 hash[32];
	char			 tid[64], other[64], kid[64], prefix[32];
	json_t			*page, *row;
	int64_t			 first;
	int			 i;

	for (i = 0; i < 32; i++)
		hash[i] = (uint8_t)(i * 7 + 1);
	tenant_new(f, "acme", tid, sizeof(tid));
	tenant_new(f, "globex", other, sizeof(other));

	RUN(f, &r, db_key_create(f->db, tid, "ci", "maas_sk_aaaa", hash, 0,
	    "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	assert_memory_equal(str(r.result, "id"), "key_", 4);
	assert_string_equal(str(r.result, "tenant_id"), tid);
	assert_string_equal(str(r.result, "prefix"), "maas_sk_aaaa");
	assert_true(json_is_null(json_object_get(r.result, "expires_at")));
	assert_true(json_is_null(json_object_get(r.result, "revoked_at")));
	assert_null(json_object_get(r.result, "hash"));
	snprintf(kid, sizeof(kid), "%s", str(r.result, "id"));

	RUN(f, &r, db_key_create(f->db, "ten_000000000000000000000000", "x",
	    "maas_sk_bbbb", hash, 0, "admin", on_done, &r));
	assert_int_equal(r.status, DB_NOT_FOUND);
	RUN(f, &r, db_key_create(f->db, other, "dup", "maas_sk_aaaa", hash,
	    0, "admin", on_done, &r));
	assert_int_equal(r.status, DB_CONFLICT);
	RUN(f, &r, db_key_create(f->db, tid, "expiring", "maas_sk_cccc",
	    hash, 4102444800LL, "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	assert_int_equal(json_integer_value(json_object_get(r.result,
	    "expires_at")), 4102444800LL);

	assert_int_equal(db_key_by_prefix(f->db, "maas_sk_aaaa", &k), 1);
	assert_string_equal(k.id, kid);
	assert_string_equal(k.tenant_id, tid);
	assert_string_equal(k.tenant_status, "active");
	assert_memory_equal(k.hash, hash, sizeof(hash));
	assert_int_equal(k.expires_at, 0);
	assert_int_equal(k.revoked_at, 0);
	assert_int_equal(db_key_by_prefix(f->db, "maas_sk_cccc", &k), 1);
	assert_int_equal(k.expires_at, 4102444800LL);
	assert_int_equal(db_key_by_prefix(f->db, "maas_sk_zzzz", &k), 0);
	assert_int_equal(db_key_by_prefix(f->db, "maas_sk_bbbb", &k), 0);

	/* Revocation is visible to authentication from its callback on. */
	rc.db = f->db;
	rc.prefix = "maas_sk_aaaa";
	db_key_revoke(f->db, kid, "admin", on_revoked, &rc);
	wait_for(f, &rc.calls, 1);
	assert_int_equal(rc.status, DB_OK);
	assert_true(rc.revoked_at > 0);
	first = rc.revoked_at;

	/* Revoking again is not an error and keeps the first time. */
	RUN(f, &r, db_key_revoke(f->db, kid, "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	assert_int_equal(json_integer_value(json_object_get(r.result,
	    "revoked_at")), first);
	RUN(f, &r, db_key_revoke(f->db, "key_000000000000000000000000",
	    "admin", on_done, &r));
	assert_int_equal(r.status, DB_NOT_FOUND);
	assert_null(r.result);
	res_clear(&r);

	/* Listing is per tenant and pages by id. */
	for (i = 0; i < 3; i++) {
		snprintf(prefix, sizeof(prefix), "maas_sk_l%d", i);
		RUN(f, &r, db_key_create(f->db, tid, NULL, prefix, hash, 0,
		    "admin", on_done, &r));
		assert_int_equal(r.status, DB_OK);
	}
	RUN(f, &r, db_key_create(f->db, other, "theirs", "maas_sk_o", hash,
	    0, "admin", on_done, &r));
	res_clear(&r);
	page = db_key_list(f->db, tid, NULL, 4);
	assert_int_equal(page_len(page), 4);
	assert_true(page_more(page));
	row = page_row(page, 3);
	assert_null(json_object_get(row, "hash"));
	snprintf(kid, sizeof(kid), "%s", str(row, "id"));
	json_decref(page);
	page = db_key_list(f->db, tid, kid, 4);
	assert_int_equal(page_len(page), 1);
	assert_false(page_more(page));
	assert_string_equal(str(page_row(page, 0), "tenant_id"), tid);
	json_decref(page);
	page = db_key_list(f->db, other, NULL, 10);
	assert_int_equal(page_len(page), 1);
	json_decref(page);
}

static void
test_models_deployments(void **state)
{
	struct fx		*f = *state;
	struct res		 r = { 0 };
	struct db_model_in	 m = { 0 };
	struct db_deployment_in	 d = { 0 };
	json_t			*meta, *got, *page;
	char			 after[64];

	meta = json_pack("{s:[{s:s, s:[i,i]}], s:[{s:s}]}", "inputs",
	    "name", "x", "shape", -1, 4, "outputs", "name", "y");
	assert_non_null(meta);
	m.name = "iris";
	m.version = "1";
	m.format = "onnx";
	m.path = "/var/lib/maas/models/iris-1.onnx";
	m.sha256 = "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef";
	m.size = 4096;
	m.meta = meta;
	RUN(f, &r, db_model_create(f->db, &m, "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	assert_memory_equal(str(r.result, "id"), "mod_", 4);
	assert_true(json_equal(json_object_get(r.result, "meta"), meta));
	assert_int_equal(json_integer_value(json_object_get(r.result, "size")),
	    4096);
	got = db_model_get(f->db, "iris", "1");
	assert_true(json_equal(got, r.result));
	json_decref(got);
	assert_null(db_model_get(f->db, "iris", "2"));

	RUN(f, &r, db_model_create(f->db, &m, "admin", on_done, &r));
	assert_int_equal(r.status, DB_CONFLICT);
	m.version = "2";
	m.meta = NULL;		/* stored as {} */
	RUN(f, &r, db_model_create(f->db, &m, "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	assert_true(json_is_object(json_object_get(r.result, "meta")));
	res_clear(&r);
	json_decref(meta);

	page = db_model_list(f->db, NULL, 1);
	assert_int_equal(page_len(page), 1);
	assert_true(page_more(page));
	snprintf(after, sizeof(after), "%s", str(page_row(page, 0), "id"));
	json_decref(page);
	page = db_model_list(f->db, after, 1);
	assert_int_equal(page_len(page), 1);
	assert_false(page_more(page));
	json_decref(page);

	d.name = "iris-prod";
	d.model = "iris";
	d.version = "3";	/* not registered */
	d.replicas = 2;
	d.threads = 1;
	d.max_batch = 8;
	d.max_queue_delay_us = 2000;
	RUN(f, &r, db_deployment_create(f->db, &d, "admin", on_done, &r));
	assert_int_equal(r.status, DB_NOT_FOUND);
	d.version = "1";
	RUN(f, &r, db_deployment_create(f->db, &d, "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	assert_memory_equal(str(r.result, "id"), "dep_", 4);
	assert_string_equal(str(r.result, "status"), "active");
	assert_int_equal(json_integer_value(json_object_get(r.result,
	    "max_batch")), 8);
	got = db_deployment_get(f->db, "iris-prod");
	assert_true(json_equal(got, r.result));
	json_decref(got);
	assert_null(db_deployment_get(f->db, "nope"));
	RUN(f, &r, db_deployment_create(f->db, &d, "admin", on_done, &r));
	assert_int_equal(r.status, DB_CONFLICT);
	d.name = "iris-canary";
	d.version = "2";
	RUN(f, &r, db_deployment_create(f->db, &d, "admin", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	res_clear(&r);
	page = db_deployment_list(f->db, NULL, 10);
	assert_int_equal(page_len(page), 2);
	assert_false(page_more(page));
	json_decref(page);
}

static void
test_audit(void **state)
{
	static const char *const actions[] = {
		"tenant.create", "key.create", "key.revoke", "model.create",
		"deployment.create",
	};
	struct fx		*f = *state;
	struct res		 r = { 0 };
	struct db_model_in	 m = { 0 };
	struct db_deployment_in	 d = { 0 };
	uint8_t			 hash[32];
	char			 targets[5][64], *text;
	json_t			*page, *row;
	size_t			 i;

	memset(hash, 0xab, sizeof(hash));
	RUN(f, &r, db_tenant_create(f->db, "acme", "alice", on_done, &r));
	snprintf(targets[0], 64, "%s", str(r.result, "id"));
	RUN(f, &r, db_key_create(f->db, targets[0], "k", "maas_sk_a", hash, 0,
	    "alice", on_done, &r));
	snprintf(targets[1], 64, "%s", str(r.result, "id"));
	RUN(f, &r, db_key_revoke(f->db, targets[1], "bob", on_done, &r));
	snprintf(targets[2], 64, "%s", targets[1]);
	m.name = "iris";
	m.version = "1";
	m.format = "onnx";
	m.path = "/m/iris.onnx";
	m.sha256 = "ffffffffffffffffffffffffffffffff"
	    "ffffffffffffffffffffffffffffffff";
	RUN(f, &r, db_model_create(f->db, &m, "alice", on_done, &r));
	snprintf(targets[3], 64, "%s", str(r.result, "id"));
	d.name = "iris";
	d.model = "iris";
	d.version = "1";
	d.replicas = 1;
	d.threads = 1;
	d.max_batch = 1;
	RUN(f, &r, db_deployment_create(f->db, &d, "alice", on_done, &r));
	snprintf(targets[4], 64, "%s", str(r.result, "id"));

	/* Failed writes leave no audit row: it shares their savepoint. */
	RUN(f, &r, db_tenant_create(f->db, "acme", "mallory", on_done, &r));
	assert_int_equal(r.status, DB_CONFLICT);
	RUN(f, &r, db_key_revoke(f->db, targets[1], "bob", on_done, &r));
	assert_int_equal(r.status, DB_OK);	/* already revoked: no change */
	res_clear(&r);

	page = db_audit_list(f->db, NULL, 0);
	assert_int_equal(page_len(page), 5);
	assert_false(page_more(page));
	for (i = 0; i < 5; i++) {
		row = page_row(page, i);
		assert_string_equal(str(row, "action"), actions[i]);
		assert_string_equal(str(row, "target"), targets[i]);
		assert_string_equal(str(row, "actor"), i == 2 ? "bob" :
		    "alice");
		assert_true(json_is_object(json_object_get(row, "detail")));
		assert_true(json_is_integer(json_object_get(row, "id")));
		text = json_dumps(row, 0);
		assert_null(strstr(text, "hash"));
		assert_null(strstr(text, "abab"));
		free(text);
	}
	assert_string_equal(str(json_object_get(page_row(page, 1), "detail"),
	    "prefix"), "maas_sk_a");
	json_decref(page);

	page = db_audit_list(f->db, "2", 2);
	assert_int_equal(page_len(page), 2);
	assert_true(page_more(page));
	assert_int_equal(json_integer_value(json_object_get(page_row(page, 0),
	    "id")), 3);
	json_decref(page);
	assert_null(db_audit_list(f->db, "x1", 10));
	assert_int_equal(count_rows(f->path, "audit_log"), 5);
}

static void
test_usage_group_commit(void **state)
{
	struct fx		*f = *state;
	struct tally		 t = { 0 };
	struct usage_event	 e;
	json_t			*page;
	uint64_t		 c0, commits;
	char			 rid[64];
	double			 t0, dt;
	int			 i, n = 1000, big = 20000;

	c0 = db_commit_count(f->db);
	t0 = now_s();
	usage_burst(f->db, "burst", n, &t);
	assert_true(db_pending(f->db) > 0);
	wait_for(f, &t.calls, n);
	dt = now_s() - t0;
	commits = db_commit_count(f->db) - c0;
	assert_int_equal(t.ok, n);
	assert_int_equal(db_pending(f->db), 0);
	assert_int_equal(count_rows(f->path, "usage_events"), n);
	assert_true(commits >= 1);
	assert_true(commits < (uint64_t)n / 10);
	printf("  group commit: %d rows in %.1f ms, %" PRIu64 " transactions,"
	    " %.0f rows/s\n", n, dt * 1e3, commits, n / dt);

	/* Paging limits: clamped to 1000, default 100. */
	page = db_usage_list(f->db, NULL, 0, 0, NULL, 5000);
	assert_int_equal(page_len(page), 1000);
	assert_false(page_more(page));
	json_decref(page);
	page = db_usage_list(f->db, NULL, 0, 0, NULL, -1);
	assert_int_equal(page_len(page), 100);
	assert_true(page_more(page));
	json_decref(page);

	/* For comparison: one row per transaction, waiting for each. */
	memset(&t, 0, sizeof(t));
	t0 = now_s();
	for (i = 0; i < 100; i++) {
		snprintf(rid, sizeof(rid), "seq-%d", i);
		usage_fill(&e, rid, "ten_a", 1);
		db_usage_record(f->db, &e, on_tally, &t);
		wait_for(f, &t.calls, i + 1);
	}
	dt = now_s() - t0;
	assert_int_equal(t.ok, 100);
	printf("  one at a time: 100 rows in %.1f ms, %.2f ms per commit,"
	    " %.0f rows/s\n", dt * 1e3, dt * 1e3 / 100, 100 / dt);

	/* A larger burst, for the number. */
	memset(&t, 0, sizeof(t));
	c0 = db_commit_count(f->db);
	t0 = now_s();
	usage_burst(f->db, "big", big, &t);
	wait_for(f, &t.calls, big);
	dt = now_s() - t0;
	assert_int_equal(t.ok, big);
	printf("  group commit: %d rows in %.1f ms, %" PRIu64 " transactions,"
	    " %.0f rows/s\n", big, dt * 1e3, db_commit_count(f->db) - c0,
	    big / dt);
}

/* A closed loop like the gateway's: inflight requests at a time, each
 * completion starting the next request, until total rows are in. */
struct stream {
	struct db	*db;
	int		 pass;		/* keeps request ids unique */
	int		 submitted;
	int		 total;
	struct tally	 t;
};

static void	stream_done(void *, enum db_status, json_t *);

static void
stream_next(struct stream *s)
{
	struct usage_event	 e;
	char			 rid[64];

	snprintf(rid, sizeof(rid), "stream%d-%d", s->pass, s->submitted++);
	usage_fill(&e, rid, "ten_a", 1);
	db_usage_record(s->db, &e, stream_done, s);
}

static void
stream_done(void *arg, enum db_status st, json_t *result)
{
	struct stream	*s = arg;

	on_tally(&s->t, st, result);
	if (s->submitted < s->total)
		stream_next(s);
}

static void
test_usage_stream(void **state)
{
	static const int	 inflight[] = { 1, 8, 64, 512 };
	struct fx		*f = *state;
	struct stream		 s;
	uint64_t		 c0, commits;
	double			 t0, dt;
	size_t			 k;
	int			 i;

	for (k = 0; k < sizeof(inflight) / sizeof(inflight[0]); k++) {
		memset(&s, 0, sizeof(s));
		s.db = f->db;
		s.pass = (int)k;
		s.total = inflight[k] * 20 < 200 ? 200 : inflight[k] * 20;
		c0 = db_commit_count(f->db);
		t0 = now_s();
		for (i = 0; i < inflight[k]; i++)
			stream_next(&s);
		wait_for(f, &s.t.calls, s.total);
		dt = now_s() - t0;
		commits = db_commit_count(f->db) - c0;
		assert_int_equal(s.t.ok, s.total);
		printf("  %3d in flight: %5d rows in %6.1f ms, %.1f rows per"
		    " commit, %.0f rows/s\n", inflight[k], s.total, dt * 1e3,
		    (double)s.total / (double)commits, s.total / dt);
		/* Rows per transaction grows with the load. */
		if (inflight[k] >= 64)
			assert_true(commits < (uint64_t)s.total / 4);
	}
}

static void
test_usage_duplicate(void **state)
{
	struct fx		*f = *state;
	struct res		 r[4] = { { 0 } };
	struct usage_event	 e;
	sqlite3			*blocker;
	uint64_t		 c0;
	int			 calls;

	/* Hold the write lock from outside so that the writer stalls in
	 * BEGIN IMMEDIATE with job 0, and jobs 1-3 queue up behind it and
	 * become one batch. */
	blocker = raw_open(f->path);
	assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	c0 = db_commit_count(f->db);
	usage_fill(&e, "req-0", "ten_a", 1);
	db_usage_record(f->db, &e, on_done, &r[0]);
	usleep(100000);
	usage_fill(&e, "req-1", "ten_a", 2);
	db_usage_record(f->db, &e, on_done, &r[1]);
	usage_fill(&e, "req-1", "ten_a", 3);		/* duplicate */
	db_usage_record(f->db, &e, on_done, &r[2]);
	usage_fill(&e, "req-3", "ten_a", 4);
	db_usage_record(f->db, &e, on_done, &r[3]);
	assert_int_equal(db_pending(f->db), 4);
	assert_int_equal(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(blocker);

	calls = 0;
	while (calls < 4) {
		wait_for(f, &r[calls].calls, 1);
		calls++;
	}
	assert_int_equal(r[0].status, DB_OK);
	assert_int_equal(r[1].status, DB_OK);
	assert_int_equal(r[2].status, DB_CONFLICT);
	assert_int_equal(r[3].status, DB_OK);
	assert_true(db_commit_count(f->db) - c0 <= 2);
	assert_int_equal(count_rows(f->path, "usage_events"), 3);

	/* The same request id later, alone, is still a conflict. */
	usage_fill(&e, "req-3", "ten_a", 5);
	RUN(f, &r[0], db_usage_record(f->db, &e, on_done, &r[0]));
	assert_int_equal(r[0].status, DB_CONFLICT);
	/* NULL callbacks are allowed. */
	usage_fill(&e, "req-4", "ten_a", 6);
	db_usage_record(f->db, &e, NULL, NULL);
	usage_fill(&e, "req-5", "ten_a", 7);
	RUN(f, &r[0], db_usage_record(f->db, &e, on_done, &r[0]));
	assert_int_equal(r[0].status, DB_OK);
	assert_int_equal(count_rows(f->path, "usage_events"), 5);
	res_clear(&r[0]);
}

static void
test_usage_list(void **state)
{
	struct fx		*f = *state;
	struct tally		 t = { 0 };
	struct usage_event	 e;
	json_t			*page, *row;
	char			 rid[64], after[32];
	int			 i;

	/* Tenants a and b, at seconds 1000, 2000, 3000. */
	for (i = 0; i < 6; i++) {
		snprintf(rid, sizeof(rid), "r%d", i);
		usage_fill(&e, rid, i % 2 ? "ten_b" : "ten_a",
		    (int64_t)(1 + i / 2) * 1000 * 1000000);
		if (i == 5) {
			e.key_id[0] = '\0';	/* a JWT caller */
			e.version[0] = '\0';
		}
		db_usage_record(f->db, &e, on_tally, &t);
	}
	wait_for(f, &t.calls, 6);
	assert_int_equal(t.ok, 6);

	page = db_usage_list(f->db, "ten_b", 0, 0, NULL, 10);
	assert_int_equal(page_len(page), 3);
	row = page_row(page, 2);
	assert_string_equal(str(row, "request_id"), "r5");
	assert_true(json_is_null(json_object_get(row, "key_id")));
	assert_true(json_is_null(json_object_get(row, "version")));
	assert_int_equal(json_integer_value(json_object_get(row,
	    "completion_tokens")), 34);
	assert_int_equal(json_integer_value(json_object_get(row, "ts_us")),
	    3000LL * 1000000);
	json_decref(page);

	page = db_usage_list(f->db, NULL, 2000, 3000, NULL, 10);
	assert_int_equal(page_len(page), 2);
	assert_string_equal(str(page_row(page, 0), "request_id"), "r2");
	assert_string_equal(str(page_row(page, 1), "request_id"), "r3");
	json_decref(page);
	page = db_usage_list(f->db, "ten_a", 2000, 0, NULL, 10);
	assert_int_equal(page_len(page), 2);
	json_decref(page);

	page = db_usage_list(f->db, "ten_a", 0, 0, NULL, 2);
	assert_int_equal(page_len(page), 2);
	assert_true(page_more(page));
	snprintf(after, sizeof(after), "%" JSON_INTEGER_FORMAT,
	    json_integer_value(json_object_get(page_row(page, 1), "id")));
	json_decref(page);
	page = db_usage_list(f->db, "ten_a", 0, 0, after, 2);
	assert_int_equal(page_len(page), 1);
	assert_false(page_more(page));
	assert_string_equal(str(page_row(page, 0), "request_id"), "r4");
	json_decref(page);

	assert_null(db_usage_list(f->db, NULL, 0, 0, "12abc", 10));
	assert_null(db_usage_list(f->db, NULL, 0, 0, "-1", 10));
}

/* Nearest-rank percentiles over the served rows of each group: 1..100
 * ms latencies shuffled in, plus errors that count but have no latency. */
static void
test_usage_report(void **state)
{
	struct fx		*f = *state;
	struct tally		 t = { 0 };
	struct usage_event	 e;
	struct db_report_q	 q;
	json_t			*rows, *row;
	char			 rid[64];
	int			 i, n = 0;

	for (i = 0; i < 100; i++) {
		snprintf(rid, sizeof(rid), "p%d", i);
		usage_fill(&e, rid, "ten_a", 86400LL * 1000000 + i);
		e.queue_us = 0;
		e.compute_us = (int64_t)((i * 37) % 100 + 1) * 1000;
		db_usage_record(f->db, &e, on_tally, &t);
		n++;
	}
	for (i = 0; i < 3; i++) {
		snprintf(rid, sizeof(rid), "err%d", i);
		usage_fill(&e, rid, "ten_a", 86400LL * 1000000 + 500);
		e.status = 500;
		e.compute_us = 999999999;
		db_usage_record(f->db, &e, on_tally, &t);
		n++;
	}
	/* The next UTC day, one row: every percentile is that row. */
	usage_fill(&e, "next-day", "ten_a", 2 * 86400LL * 1000000);
	db_usage_record(f->db, &e, on_tally, &t);
	n++;
	wait_for(f, &t.calls, n);
	assert_int_equal(t.ok, n);

	memset(&q, 0, sizeof(q));
	q.from_us = 0;
	q.to_us = INT64_MAX;
	rows = db_usage_report(f->db, &q);
	assert_non_null(rows);
	assert_int_equal(json_array_size(rows), 2);
	row = json_array_get(rows, 0);
	assert_string_equal(str(row, "day"), "1970-01-02");
	assert_int_equal(json_integer_value(json_object_get(row, "requests")),
	    103);
	assert_int_equal(json_integer_value(json_object_get(row, "errors")), 3);
	assert_int_equal(json_integer_value(json_object_get(row,
	    "input_tokens")), 103 * 12);
	/* ceil(0.5 * 100) = 50th value: 50 ms, and so on. */
	assert_int_equal(json_integer_value(json_object_get(row,
	    "latency_p50_us")), 50000);
	assert_int_equal(json_integer_value(json_object_get(row,
	    "latency_p95_us")), 95000);
	assert_int_equal(json_integer_value(json_object_get(row,
	    "latency_p99_us")), 99000);
	row = json_array_get(rows, 1);
	assert_string_equal(str(row, "day"), "1970-01-03");
	assert_int_equal(json_integer_value(json_object_get(row,
	    "latency_p99_us")), 2010);
	json_decref(rows);
	q.tenant_id = "ten_none";
	rows = db_usage_report(f->db, &q);
	assert_int_equal(json_array_size(rows), 0);
	json_decref(rows);
}

static int64_t
lines_total(json_t *lines, const char *kind)
{
	json_t	*l;
	size_t	 i;
	int64_t	 sum = 0;

	json_array_foreach(lines, i, l)
		if (kind == NULL || strcmp(str(l, "kind"), kind) == 0)
			sum += json_integer_value(json_object_get(l,
			    "amount_micros"));
	return sum;
}

/* Closing freezes exactly the recomputed lines; a row of the closed
 * period stored afterwards is an adjustment of the next period. */
static void
test_period_close(void **state)
{
	struct fx		*f = *state;
	struct tally		 t = { 0 };
	struct res		 r = { 0 };
	struct usage_event	 e;
	struct db_period	 p1, p2;
	struct db_price_in	 price;
	json_t			*frozen, *live, *next;

	memset(&p1, 0, sizeof(p1));
	snprintf(p1.period, sizeof(p1.period), "1970-01");
	p1.idx = 1970 * 12;
	p1.start_us = 0;
	p1.end_us = 31LL * 86400 * 1000000;
	p2 = p1;
	snprintf(p2.period, sizeof(p2.period), "1970-02");
	p2.idx++;
	p2.start_us = p1.end_us;
	p2.end_us = p2.start_us + 28LL * 86400 * 1000000;

	memset(&price, 0, sizeof(price));
	price.model = "tiny";
	price.starts_at = 0;
	price.per_request = 7;
	price.per_1k_input = 1001;	/* 12 tokens: 12.012 -> 12 */
	price.per_1k_output = 2500;	/* 34 tokens: 85 */
	price.per_compute_second = 333;	/* 2000 us: 0.666 -> 1 */
	RUN(f, &r, db_price_add(f->db, &price, "test", on_done, &r));
	assert_int_equal(r.status, DB_OK);

	usage_fill(&e, "c1", "ten_a", 1000);
	e.cost_micros = 7 + 12 + 85 + 1;
	db_usage_record(f->db, &e, on_tally, &t);
	usage_fill(&e, "c2", "ten_a", 2000);
	e.cost_micros = 50;		/* a budget cut the charge */
	db_usage_record(f->db, &e, on_tally, &t);
	wait_for(f, &t.calls, 2);

	live = db_invoice_lines(f->db, "ten_a", &p1, INT64_MAX);
	assert_int_equal(lines_total(live, NULL), 105 + 50);
	assert_int_equal(json_array_size(live), 5);	/* 4 units + cap */
	assert_string_equal(str(json_array_get(live, 4), "unit"),
	    "budget_cap");
	RUN(f, &r, db_period_close(f->db, &p1, "test", on_done, &r));
	assert_int_equal(r.status, DB_OK);
	RUN(f, &r, db_period_close(f->db, &p1, "test", on_done, &r));
	assert_int_equal(r.status, DB_CONFLICT);
	frozen = db_invoice_frozen(f->db, "ten_a", "1970-01");
	assert_true(json_equal(frozen, live));

	usage_fill(&e, "c3", "ten_a", 3000);	/* late for 1970-01 */
	e.cost_micros = 105;
	db_usage_record(f->db, &e, on_tally, &t);
	wait_for(f, &t.calls, 3);
	assert_int_equal(t.ok, 3);
	json_decref(frozen);
	frozen = db_invoice_frozen(f->db, "ten_a", "1970-01");
	assert_true(json_equal(frozen, live));
	next = db_invoice_lines(f->db, "ten_a", &p2, INT64_MAX);
	assert_int_equal(lines_total(next, "adjustment"), 105);
	assert_int_equal(lines_total(next, "usage"), 0);
	assert_string_equal(str(json_array_get(next, 0), "for_period"),
	    "1970-01");
	json_decref(next);
	json_decref(frozen);
	json_decref(live);
	res_clear(&r);
}

/* The last completion db_close() runs tries to write again. */
struct late {
	struct tally	 t;
	struct db	*db;
	int		 n;
	struct res	 refused;
};

static void
on_late(void *arg, enum db_status s, json_t *result)
{
	struct late		*l = arg;
	struct usage_event	 e;

	on_tally(&l->t, s, result);
	if (l->t.calls == l->n) {
		usage_fill(&e, "too-late", "ten_a", 1);
		db_usage_record(l->db, &e, on_done, &l->refused);
	}
}

static void
test_close_with_queued(void **state)
{
	struct fx		*f = *state;
	struct late		 l = { 0 };
	struct usage_event	 e;
	char			 rid[64];
	int			 i;

	l.db = f->db;
	l.n = 500;
	for (i = 0; i < l.n; i++) {
		snprintf(rid, sizeof(rid), "close-%d", i);
		usage_fill(&e, rid, "ten_a", i);
		db_usage_record(f->db, &e, on_late, &l);
	}
	/* No loop turn: db_close itself must commit and call back. */
	assert_int_equal(db_pending(f->db), l.n);
	db_close(f->db);
	f->db = NULL;
	assert_int_equal(l.t.calls, l.n);
	assert_int_equal(l.t.ok, l.n);
	assert_int_equal(l.refused.calls, 1);
	assert_int_equal(l.refused.status, DB_ERROR);
	assert_int_equal(count_rows(f->path, "usage_events"), l.n);
	fx_open(f);
}

/* The child records n rows, waits for every callback, and _exit()s without
 * db_close: whatever a callback reported must be on disk. */
static void
durability_child(const char *path, int n)
{
	struct event_base	*base;
	struct db		*db;
	struct tally		 t = { 0 };
	struct usage_event	 e;
	char			 rid[64];
	int			 i;

	if ((base = event_base_new()) == NULL ||
	    (db = db_open(path, base)) == NULL)
		_exit(2);
	for (i = 0; i < n; i++) {
		snprintf(rid, sizeof(rid), "dur-%d", i);
		usage_fill(&e, rid, "ten_a", i);
		db_usage_record(db, &e, on_tally, &t);
		if (i % 7 == 0)		/* several batches, not one */
			event_base_loop(base, EVLOOP_NONBLOCK);
	}
	while (t.calls < n)
		event_base_loop(base, EVLOOP_ONCE);
	_exit(t.ok == n ? 0 : 3);
}

static void
test_durability_fork(void **state)
{
	struct fx	*f = *state;
	struct db	*db;
	sqlite3		*h;
	json_t		*page;
	char		 path[400], check[64];
	pid_t		 pid;
	int		 status, n = 300;

	snprintf(path, sizeof(path), "%s/dur.db", f->dir);
	/* Fork from a single-threaded parent: a child may start threads only
	 * if no other thread could have held a lock at fork time. */
	db_close(f->db);
	f->db = NULL;
	fflush(NULL);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		durability_child(path, n);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* The WAL was never checkpointed: reopening recovers it. */
	h = raw_open(path);
	assert_int_equal(raw_int(h, "SELECT count(*) FROM usage_events"), n);
	raw_text(h, "PRAGMA integrity_check", check, sizeof(check));
	assert_string_equal(check, "ok");
	sqlite3_close(h);

	/* And maasd itself opens it again, with nothing to migrate. */
	db = db_open(path, f->base);
	assert_non_null(db);
	page = db_usage_list(db, NULL, 0, 0, NULL, 1000);
	assert_int_equal(page_len(page), n);
	json_decref(page);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_id),
		cmocka_unit_test_setup_teardown(test_migrations, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenants, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_keys, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_models_deployments,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_usage_group_commit,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_usage_stream, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_usage_duplicate, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_usage_list, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_usage_report, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_period_close, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_with_queued,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_durability_fork,
		    fx_setup, fx_teardown),
	};

	log_init("test_db", false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
