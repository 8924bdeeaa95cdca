/* admin/tenancy.c - see tenancy.h.  Every change goes through db/ (and its
 * audit row) first; the in-memory state of the gateway (quota limits,
 * prices) is updated from the committed row in the completion callback,
 * so memory never runs ahead of the database. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "admin/admin.h"
#include "admin/tenancy.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/admit.h"
#include "gateway/auth.h"
#include "gateway/http.h"
#include "gateway/price.h"
#include "gateway/server.h"

#define GRACE_MAX_S	(30 * 24 * 3600)

static const char *const quota_fields[] = {
	"requests_per_minute", "tokens_per_minute", "max_concurrent_requests",
	"monthly_token_budget", "monthly_credit_budget_micros",
};

static void
reply_failed(struct req *r, enum db_status st, const char *what)
{
	if (st == DB_NOT_FOUND)
		http_error(r, 404, "not_found", NULL, "%s does not exist",
		    what);
	else if (st == DB_CONFLICT)
		http_error(r, 409, "already_exists", NULL, "%s already exists",
		    what);
	else
		http_error(r, 500, "internal_error", NULL,
		    "the change could not be stored");
}

/* Reads one limit: absent or null is unlimited (-1). */
static int
limit_field(json_t *body, const char *k, int64_t *out)
{
	json_t	*v = json_object_get(body, k);

	*out = -1;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

static void
quota_stored(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;

	if (st != DB_OK) {
		json_decref(row);
		reply_failed(r, st, "the tenant or key");
		return;
	}
	admit_apply_row(r->srv, row);
	http_reply_json(r, 200, row);
}

static void
quota_put(struct req *r, const char *tenant_id, const char *key_id)
{
	struct db_quota_in	 q;
	json_t			*body = http_json_body(r), *m, *v;
	int64_t			*dst[5] = { &q.rpm, &q.tpm, &q.concurrent,
				    &q.month_tokens, &q.month_credits };
	const char		*k;
	size_t			 i;

	if (body == NULL)
		return;
	memset(&q, 0, sizeof(q));
	q.tenant_id = tenant_id;
	q.key_id = key_id;
	json_object_foreach(body, k, v) {
		bool	known = strcmp(k, "allowed_models") == 0;

		for (i = 0; i < 5; i++)
			known = known || strcmp(k, quota_fields[i]) == 0;
		if (!known) {
			http_error(r, 400, "invalid_request", k,
			    "unknown quota field '%.64s'", k);
			json_decref(body);
			return;
		}
	}
	for (i = 0; i < 5; i++) {
		if (limit_field(body, quota_fields[i], dst[i]) == -1) {
			http_error(r, 400, "invalid_request", quota_fields[i],
			    "'%s' must be a non-negative integer or null",
			    quota_fields[i]);
			json_decref(body);
			return;
		}
	}
	m = json_object_get(body, "allowed_models");
	if (m != NULL && !json_is_null(m)) {
		bool	ok = json_is_array(m) && json_array_size(m) <= 1000;

		json_array_foreach(m, i, v)
			ok = ok && json_is_string(v) &&
			    json_string_length(v) > 0 &&
			    json_string_length(v) <= 64;
		if (!ok) {
			http_error(r, 400, "invalid_request", "allowed_models",
			    "'allowed_models' must be null or an array of "
			    "model names");
			json_decref(body);
			return;
		}
		q.allowed_models = m;
	}
	db_quota_put(r->srv->db, &q, admin_actor(r), quota_stored, r);
	json_decref(body);
}

/* The quota routes name a tenant or a key; each replies 404 and returns
 * -1 if it does not exist.  key_tenant() copies the key's tenant id. */
static int
tenant_exists(struct req *r, const char *id)
{
	json_t	*t = db_tenant_get(r->srv->db, id);

	if (t == NULL) {
		http_error(r, 404, "not_found", NULL,
		    "tenant '%.64s' does not exist", id);
		return -1;
	}
	json_decref(t);
	return 0;
}

static int
key_tenant(struct req *r, const char *id, char *tenant, size_t len)
{
	json_t	*k = db_key_get(r->srv->db, id);

	if (k == NULL) {
		http_error(r, 404, "not_found", NULL,
		    "key '%.64s' does not exist", id);
		return -1;
	}
	snprintf(tenant, len, "%s", json_string_value(
	    json_object_get(k, "tenant_id")));
	json_decref(k);
	return 0;
}

void
admin_tenant_quota_put(struct req *r, char **arg)
{
	if (tenant_exists(r, arg[0]) == -1)
		return;
	quota_put(r, arg[0], NULL);
}

void
admin_key_quota_put(struct req *r, char **arg)
{
	char	tenant[64];

	if (key_tenant(r, arg[0], tenant, sizeof(tenant)) == -1)
		return;
	quota_put(r, tenant, arg[0]);
}

static void
quota_reply(struct req *r, const char *tenant_id, const char *key_id)
{
	json_t	*q = db_quota_get(r->srv->db, tenant_id, key_id);
	bool	 set = q != NULL;

	if (q == NULL)
		q = json_pack("{s:s, s:s?, s:n, s:n, s:n, s:n, s:n, s:n}",
		    "tenant_id", tenant_id, "key_id", key_id,
		    "requests_per_minute", "tokens_per_minute",
		    "max_concurrent_requests", "monthly_token_budget",
		    "monthly_credit_budget_micros", "allowed_models");
	json_object_set_new(q, "set", json_boolean(set));
	http_reply_json(r, 200, q);
}

void
admin_tenant_quota_get(struct req *r, char **arg)
{
	if (tenant_exists(r, arg[0]) == -1)
		return;
	quota_reply(r, arg[0], NULL);
}

void
admin_key_quota_get(struct req *r, char **arg)
{
	char	tenant[64];

	if (key_tenant(r, arg[0], tenant, sizeof(tenant)) == -1)
		return;
	quota_reply(r, tenant, arg[0]);
}

/* --- suspension --- */

static void
status_stored(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;

	if (st != DB_OK) {
		json_decref(row);
		reply_failed(r, st, "the tenant");
		return;
	}
	http_reply_json(r, 200, row);
}

void
admin_tenant_suspend(struct req *r, char **arg)
{
	db_tenant_set_status(r->srv->db, arg[0], "suspended",
	    admin_actor(r), status_stored, r);
}

void
admin_tenant_resume(struct req *r, char **arg)
{
	db_tenant_set_status(r->srv->db, arg[0], "active", admin_actor(r),
	    status_stored, r);
}

/* --- rotation --- */

struct rotate_ctx {
	char	secret[AUTH_KEY_LEN + 1];
	int64_t	grace_until;
};

static void
rotate_ctx_free(void *p)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, sizeof(struct rotate_ctx));
	free(p);
}

static void
rotated(void *arg, enum db_status st, json_t *row)
{
	struct req		*r = arg;
	struct rotate_ctx	*c = r->ctx;

	if (st != DB_OK) {
		json_decref(row);
		reply_failed(r, st, "an active, not yet rotated key with this "
		    "id");
		return;
	}
	{
		json_t	*q = db_quota_of_key(r->srv->db, json_string_value(
		    json_object_get(row, "id")));

		if (q != NULL)
			admit_apply_row(r->srv, q);
		json_decref(q);
	}
	json_object_set_new(row, "key", json_string(c->secret));
	json_object_set_new(row, "previous_key_expires_at",
	    json_integer(c->grace_until));
	http_reply_json(r, 201, row);
}

void
admin_key_rotate(struct req *r, char **arg)
{
	struct rotate_ctx	*c;
	json_t			*body, *g;
	char			 prefix[AUTH_PREFIX_LEN + 1];
	uint8_t			 hash[32];
	int64_t			 grace = 0;

	if ((body = http_json_body(r)) == NULL)
		return;
	g = json_object_get(body, "grace_seconds");
	if (g != NULL && !json_is_null(g)) {
		if (!json_is_integer(g) || json_integer_value(g) < 0 ||
		    json_integer_value(g) > GRACE_MAX_S) {
			json_decref(body);
			http_error(r, 400, "invalid_request", "grace_seconds",
			    "'grace_seconds' must be an integer from 0 to %d",
			    GRACE_MAX_S);
			return;
		}
		grace = json_integer_value(g);
	}
	json_decref(body);
	c = xcalloc(1, sizeof(*c));
	r->ctx = c;
	r->ctx_free = rotate_ctx_free;
	c->grace_until = (int64_t)time(NULL) + grace;
	auth_key_generate(c->secret, prefix, hash);
	db_key_rotate(r->srv->db, arg[0], prefix, hash, c->grace_until,
	    admin_actor(r), rotated, r);
	OPENSSL_cleanse(hash, sizeof(hash));
}

/* --- prices --- */

/* A price cursor, "<model>:<starts_at>" (a price's id): the model is
 * what precedes the last ':', so a model name may hold ':' too. */
static int
price_cursor(const char *after, char *model, size_t modelsz,
    int64_t *starts_at)
{
	const char	*colon;
	char		*end;
	long long	 v;

	if ((colon = strrchr(after, ':')) == NULL || colon == after ||
	    (size_t)(colon - after) >= modelsz || colon[1] == '\0')
		return -1;
	errno = 0;
	v = strtoll(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	memcpy(model, after, (size_t)(colon - after));
	model[colon - after] = '\0';
	*starts_at = v;
	return 0;
}

/* GET /admin/v1/prices?model=&limit=&after=: by model, then start. */
void
admin_price_list(struct req *r, char **arg)
{
	const char	*after;
	char		 model[65];
	int64_t		 starts_at = 0;
	json_t		*page;
	int		 limit;

	(void)arg;
	if (admin_page_params(r, &limit, &after) == -1)
		return;
	if (after != NULL && price_cursor(after, model, sizeof(model),
	    &starts_at) == -1) {
		http_error(r, 400, "invalid_request", "after", "'after' must "
		    "be the id of a price, <model>:<starts_at>");
		return;
	}
	page = db_price_page(r->srv->db, http_query(r, "model"),
	    after != NULL ? model : NULL, starts_at, limit);
	admin_reply_list(r, page);
}

static void
price_stored(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;

	if (st != DB_OK) {
		json_decref(row);
		reply_failed(r, st, "a price of this model starting then");
		return;
	}
	prices_add_row(r->srv->prices, row);
	http_reply_json(r, 201, row);
}

void
admin_price_add(struct req *r, char **arg)
{
	static const char *const fields[] = { "per_1k_input_micros",
	    "per_1k_output_micros", "per_request_micros",
	    "per_compute_second_micros" };
	struct db_price_in	 p;
	int64_t			*dst[4] = { &p.per_1k_input, &p.per_1k_output,
				    &p.per_request, &p.per_compute_second };
	json_t			*body, *s;
	int64_t			 now = (int64_t)time(NULL);

	(void)arg;
	if ((body = http_json_body(r)) == NULL)
		return;
	memset(&p, 0, sizeof(p));
	p.model = json_string_value(json_object_get(body, "model"));
	if (p.model == NULL || *p.model == '\0' || strlen(p.model) > 64) {
		json_decref(body);
		http_error(r, 400, "invalid_request", "model",
		    "'model' must name a model");
		return;
	}
	for (int i = 0; i < 4; i++) {
		if (limit_field(body, fields[i], dst[i]) == -1) {
			json_decref(body);
			http_error(r, 400, "invalid_request", fields[i],
			    "'%s' must be a non-negative integer", fields[i]);
			return;
		}
		if (*dst[i] < 0)
			*dst[i] = 0;
	}
	/* A price applies from its start; by default from now.  A start in
	 * the past would reprice usage already billed: refused. */
	s = json_object_get(body, "starts_at");
	p.starts_at = now;
	if (s != NULL && !json_is_null(s)) {
		if (!json_is_integer(s) || json_integer_value(s) < now) {
			json_decref(body);
			http_error(r, 400, "invalid_request", "starts_at",
			    "'starts_at' must be a Unix time not in the past");
			return;
		}
		p.starts_at = json_integer_value(s);
	}
	db_price_add(r->srv->db, &p, admin_actor(r), price_stored, r);
	json_decref(body);
}
