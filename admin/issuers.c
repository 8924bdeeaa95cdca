/* admin/issuers.c - see issuers.h.
 *
 * Validation is gateway/jwt.c's (jwt_issuer_check), so that what the
 * admin API accepts is exactly what the verifier can load.  A public key
 * is stored as the canonical PEM re-encoded from the parsed key; an HMAC
 * secret as given.  The stored rows hold the key, so every row leaves
 * this file through issuer_public(), which replaces it by a fingerprint. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "admin/admin.h"
#include "admin/issuers.h"
#include "common/log.h"
#include "db/db.h"
#include "gateway/http.h"
#include "gateway/jwt.h"
#include "gateway/server.h"

#define ISSUERS_ID_MAX		64

static json_t	*issuer_public(json_t *);
static int	 issuers_page_params(struct req *, int *, const char **);
static void	 issuer_create(struct req *);
static void	 issuer_created(void *, enum db_status, json_t *);
static void	 issuer_list(struct req *);
static void	 issuer_get(struct req *, const char *);
static void	 issuer_deleted(void *, enum db_status, json_t *);

/* The fields a POST may carry; anything else is a typo we would rather
 * report than ignore in a security setting. */
static const char *const issuer_fields[] = {
	"kid", "alg", "key", "iss", "aud", "tenant_claim", "tenant_id",
};

void
admin_issuers_handle(struct req *r)
{
	char	**p = r->parts;
	int	  n = r->n_parts, m = r->method;

	if (n == 3 && m == EVHTTP_REQ_POST) {
		issuer_create(r);
		return;
	}
	if (n == 3 && m == EVHTTP_REQ_GET) {
		issuer_list(r);
		return;
	}
	if (n == 4 && strlen(p[3]) > ISSUERS_ID_MAX) {
		http_error(r, 404, "not_found", NULL, "no such issuer");
		return;
	}
	if (n == 4 && m == EVHTTP_REQ_GET) {
		issuer_get(r, p[3]);
		return;
	}
	if (n == 4 && m == EVHTTP_REQ_DELETE) {
		db_issuer_delete(r->srv->db, p[3], admin_actor(r),
		    issuer_deleted, r);
		return;
	}
	if (n == 3 || n == 4) {
		/* RFC 9110 15.5.6: a 405 names what is allowed. */
		http_add_header(r, "Allow", n == 3 ? "GET, POST" :
		    "GET, DELETE");
		http_error(r, 405, "method_not_allowed", NULL,
		    "method not allowed for '%.200s'", r->path);
		return;
	}
	http_error(r, 404, "not_found", NULL, "nothing at '%.200s'", r->path);
}

/* Turns a stored row into what the API shows: "key" replaced by
 * "key_fingerprint".  Modifies and returns row. */
static json_t *
issuer_public(json_t *row)
{
	json_t		*key = json_object_get(row, "key");
	enum jwt_alg	 alg;
	char		 fp[JWT_FP_LEN + 1];

	if (json_is_string(key) && jwt_alg_parse(json_string_value(
	    json_object_get(row, "alg")), &alg) == 0 &&
	    jwt_key_fingerprint(alg, json_string_value(key),
	    json_string_length(key), fp) == 0)
		json_object_set_new(row, "key_fingerprint", json_string(fp));
	else
		json_object_set_new(row, "key_fingerprint", json_null());
	json_object_del(row, "key");
	return row;
}

/* Parses limit and after; replies 400 and returns -1 if malformed. */
static int
issuers_page_params(struct req *r, int *limit, const char **after)
{
	const char	*l = http_query(r, "limit");
	char		*end;
	long		 v;

	*after = http_query(r, "after");
	*limit = 100;
	if (l == NULL)
		return 0;
	errno = 0;
	v = strtol(l, &end, 10);
	if (errno != 0 || *end != '\0' || end == l || v < 1 || v > 1000) {
		http_error(r, 400, "invalid_request", "limit",
		    "limit must be an integer from 1 to 1000");
		return -1;
	}
	*limit = (int)v;
	return 0;
}

/* --- create --- */

static void
issuer_create(struct req *r)
{
	struct db_issuer_in	 din;
	struct jwt_issuer	 in;
	struct jwt_keyring	*ring;
	json_t			*body, *v, *tenant = NULL;
	const char		*k, *field;
	char			 fp[JWT_FP_LEN + 1], err[256];
	char			*pem = NULL;
	size_t			 i;
	bool			 known;

	if ((body = http_json_body(r)) == NULL)
		return;
	json_object_foreach(body, k, v) {
		known = false;
		for (i = 0; i < sizeof(issuer_fields) /
		    sizeof(issuer_fields[0]); i++)
			if (strcmp(k, issuer_fields[i]) == 0)
				known = true;
		if (!known) {
			http_error(r, 400, "invalid_request", NULL,
			    "unknown field '%.64s'", k);
			goto out;
		}
		if (!json_is_string(v)) {
			http_error(r, 400, "invalid_request", k,
			    "'%s' must be a string", k);
			goto out;
		}
	}
	memset(&in, 0, sizeof(in));
	in.kid = json_string_value(json_object_get(body, "kid"));
	in.alg = json_string_value(json_object_get(body, "alg"));
	in.key = json_string_value(json_object_get(body, "key"));
	in.key_len = json_string_length(json_object_get(body, "key"));
	in.iss = json_string_value(json_object_get(body, "iss"));
	in.aud = json_string_value(json_object_get(body, "aud"));
	in.tenant_claim = json_string_value(json_object_get(body,
	    "tenant_claim"));
	if (in.tenant_claim == NULL)
		in.tenant_claim = "sub";
	in.tenant_id = json_string_value(json_object_get(body, "tenant_id"));
	if (jwt_issuer_check(&in, fp, &pem, &field, err, sizeof(err)) == -1) {
		http_error(r, 400, "invalid_request", field, "%s", err);
		goto out;
	}
	/* A binding to a tenant that does not exist would leave the issuer
	 * unable to sign anyone in: refused rather than stored. */
	if (in.tenant_id != NULL && (tenant = db_tenant_get(r->srv->db,
	    in.tenant_id)) == NULL) {
		http_error(r, 400, "invalid_request", "tenant_id",
		    "no tenant '%s'", in.tenant_id);
		goto out;
	}
	json_decref(tenant);
	/* Early answers for what the keyring already knows; the database
	 * still decides (a deleted issuer's kid is taken too). */
	if ((ring = jwt_shared(r->srv->db)) == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot read the issuers");
		goto out;
	}
	if (jwt_keyring_count(ring) >= JWT_ISSUERS_MAX) {
		http_error(r, 409, "limit_reached", NULL,
		    "at most %d issuers can be registered", JWT_ISSUERS_MAX);
		goto out;
	}
	memset(&din, 0, sizeof(din));
	din.kid = in.kid;
	din.alg = in.alg;
	din.key = pem != NULL ? pem : in.key;
	din.iss = in.iss;
	din.aud = in.aud;
	din.tenant_claim = in.tenant_claim;
	din.tenant_id = in.tenant_id;
	din.key_fingerprint = fp;
	db_issuer_create(r->srv->db, &din, admin_actor(r), issuer_created,
	    r);
 out:
	free(pem);
	json_decref(body);
}

static void
issuer_created(void *arg, enum db_status st, json_t *row)
{
	struct req		*r = arg;
	struct jwt_keyring	*ring;
	struct jwt_issuer	 in;
	char			 err[256];

	if (st == DB_CONFLICT) {
		json_decref(row);
		http_error(r, 409, "already_exists", "kid", "this kid is "
		    "registered already (a kid is never reused, even after "
		    "its issuer was deleted)");
		return;
	}
	if (st != DB_OK || row == NULL) {
		json_decref(row);
		http_error(r, 500, "internal_error", NULL,
		    "the issuer could not be stored");
		return;
	}
	/* A keyring loaded just now read this row already; adding it again
	 * replaces it by id. */
	if ((ring = jwt_shared(r->srv->db)) != NULL) {
		memset(&in, 0, sizeof(in));
		in.id = json_string_value(json_object_get(row, "id"));
		in.kid = json_string_value(json_object_get(row, "kid"));
		in.alg = json_string_value(json_object_get(row, "alg"));
		in.key = json_string_value(json_object_get(row, "key"));
		in.key_len = json_string_length(json_object_get(row, "key"));
		in.iss = json_string_value(json_object_get(row, "iss"));
		in.aud = json_string_value(json_object_get(row, "aud"));
		in.tenant_claim = json_string_value(json_object_get(row,
		    "tenant_claim"));
		in.tenant_id = json_string_value(json_object_get(row,
		    "tenant_id"));
		if (jwt_keyring_add(ring, &in, err, sizeof(err)) == -1)
			log_warnx("jwt issuer '%s' stored but not usable: %s",
			    in.id != NULL ? in.id : "?", err);
	}
	http_reply_json(r, 201, issuer_public(row));
}

/* --- read --- */

static void
issuer_list(struct req *r)
{
	json_t		*page, *row;
	const char	*after;
	size_t		 i;
	int		 limit;

	if (issuers_page_params(r, &limit, &after) == -1)
		return;
	if ((page = db_issuer_list(r->srv->db, after, limit)) == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot read the database");
		return;
	}
	json_array_foreach(json_object_get(page, "data"), i, row)
		issuer_public(row);
	json_object_set_new(page, "object", json_string("list"));
	http_reply_json(r, 200, page);
}

static void
issuer_get(struct req *r, const char *id)
{
	json_t	*row;

	if ((row = db_issuer_get(r->srv->db, id)) == NULL) {
		http_error(r, 404, "not_found", NULL, "no such issuer");
		return;
	}
	http_reply_json(r, 200, issuer_public(row));
}

/* --- delete --- */

static void
issuer_deleted(void *arg, enum db_status st, json_t *row)
{
	struct req		*r = arg;
	struct jwt_keyring	*ring;
	const char		*id;

	if (st == DB_NOT_FOUND) {
		json_decref(row);
		http_error(r, 404, "not_found", NULL, "no such issuer");
		return;
	}
	if (st != DB_OK || row == NULL) {
		json_decref(row);
		http_error(r, 500, "internal_error", NULL,
		    "the issuer could not be deleted");
		return;
	}
	/* Durable now: drop the key before anyone is told it is gone.  A
	 * keyring that must be loaded for this reads it deleted already. */
	id = json_string_value(json_object_get(row, "id"));
	if (id != NULL && (ring = jwt_shared(r->srv->db)) != NULL)
		(void)jwt_keyring_remove(ring, id);
	json_object_set_new(row, "deleted", json_true());
	http_reply_json(r, 200, issuer_public(row));
}
