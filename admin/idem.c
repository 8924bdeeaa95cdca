/* admin/idem.c - see idem.h.
 *
 * Keys being answered are kept in a list on the event-loop thread (the
 * only thread that runs admin handlers), so that a second request with
 * the same key cannot run the change twice while the first one is still
 * waiting for the database.  An entry lives from admin_idem_begin until
 * the answer is stored and sent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "admin/idem.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/http.h"
#include "gateway/server.h"

#define IDEM_KEY_MAX	255

struct idem {
	struct idem	*next;
	struct req	*r;
	char		 key[IDEM_KEY_MAX + 1];
	char		 hash[65];	/* SHA-256 of method, URI and body */
	/* the answer, held while it is stored */
	int		 status;
	char		*ctype;
	char		*body;
	size_t		 len;
};

static struct idem	*idem_pending;

static bool	 idem_on_reply(struct req *, int, const char *, const void *,
		    size_t);

static bool
valid_key(const char *k)
{
	size_t	n = strlen(k);

	if (n == 0 || n > IDEM_KEY_MAX)
		return false;
	for (; *k != '\0'; k++)
		if (*k < 0x21 || *k > 0x7e)
			return false;
	return true;
}

static void
request_hash(struct req *r, char out[65])
{
	EVP_MD_CTX	*md = EVP_MD_CTX_new();
	const char	*uri = evhttp_request_get_uri(r->ev);
	const char	*body;
	unsigned char	 dig[32];
	size_t		 len;

	body = http_body(r, &len);
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, "POST ", 5);
	EVP_DigestUpdate(md, uri != NULL ? uri : "", uri != NULL ?
	    strlen(uri) + 1 : 1);		/* the NUL separates */
	if (len > 0)
		EVP_DigestUpdate(md, body, len);
	EVP_DigestFinal_ex(md, dig, NULL);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", dig[i]);
}

static struct idem *
pending_find(const char *key, struct req *r)
{
	struct idem	*e;

	for (e = idem_pending; e != NULL; e = e->next)
		if ((key != NULL && strcmp(e->key, key) == 0) ||
		    (r != NULL && e->r == r))
			return e;
	return NULL;
}

static void
pending_remove(struct idem *e)
{
	struct idem	**pp;

	for (pp = &idem_pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	free(e->ctype);
	if (e->body != NULL)
		OPENSSL_cleanse(e->body, e->len);	/* may hold a key */
	free(e->body);
	free(e);
}

bool
admin_idem_begin(struct req *r)
{
	const char	*key = http_header(r, "Idempotency-Key");
	struct idem	*e;
	json_t		*row;
	char		 hash[65];

	if (key == NULL || r->method != EVHTTP_REQ_POST)
		return false;
	if (!valid_key(key)) {
		http_error(r, 400, "invalid_request", "Idempotency-Key",
		    "'Idempotency-Key' must be 1-%d printable characters",
		    IDEM_KEY_MAX);
		return true;
	}
	if (pending_find(key, NULL) != NULL) {
		http_error(r, 409, "idempotency_key_in_use", "Idempotency-Key",
		    "a request with this Idempotency-Key is still running");
		return true;
	}
	request_hash(r, hash);
	if ((row = db_idem_get(r->srv->db, key)) != NULL) {
		const char	*h = json_string_value(json_object_get(row,
				    "request_hash"));
		const char	*body = json_string_value(json_object_get(row,
				    "body"));
		const char	*ctype = json_string_value(json_object_get(row,
				    "content_type"));

		if (h == NULL || strcmp(h, hash) != 0 || body == NULL ||
		    ctype == NULL)
			http_error(r, 409, "idempotency_key_reused",
			    "Idempotency-Key", "this Idempotency-Key was used "
			    "with another request");
		else {
			http_add_header(r, "Idempotent-Replayed", "true");
			http_reply(r, (int)json_integer_value(json_object_get(
			    row, "status")), ctype, body, strlen(body));
		}
		json_decref(row);
		return true;
	}
	e = xcalloc(1, sizeof(*e));
	e->r = r;
	snprintf(e->key, sizeof(e->key), "%s", key);
	memcpy(e->hash, hash, sizeof(e->hash));
	e->next = idem_pending;
	idem_pending = e;
	r->on_reply = idem_on_reply;
	return false;
}

static void
idem_stored(void *arg, enum db_status st, json_t *result)
{
	struct idem	*e = arg;
	struct req	*r = e->r;

	json_decref(result);
	/* The change is done either way: the answer goes out.  Unstored, a
	 * replay would do the change again, which is worth a line. */
	if (st != DB_OK)
		log_warnx("idempotency key of req=%s not stored", r->id);
	http_reply(r, e->status, e->ctype, e->body, e->len);
	pending_remove(e);
}

/* The stored copy of an answer: without a secret key. */
static char *
stored_body(const char *ctype, const void *body, size_t len)
{
	json_t	*j;
	char	*s;

	if (strncmp(ctype, "application/json", 16) == 0 &&
	    (j = json_loadb(body, len, 0, NULL)) != NULL) {
		if (json_is_string(json_object_get(j, "key")))
			json_object_set_new(j, "key", json_null());
		s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
		json_decref(j);
		if (s != NULL)
			return s;
	}
	s = xmalloc(len + 1);
	memcpy(s, body, len);
	s[len] = '\0';
	return s;
}

static bool
idem_on_reply(struct req *r, int status, const char *ctype,
    const void *body, size_t len)
{
	struct idem	*e = pending_find(NULL, r);
	char		*stored;

	if (e == NULL)
		return false;
	if (status >= 500 || (len > 0 && memchr(body, '\0', len) != NULL)) {
		pending_remove(e);
		return false;
	}
	e->status = status;
	e->ctype = xstrdup(ctype);
	e->body = xmalloc(len + 1);
	memcpy(e->body, body, len);
	e->body[len] = '\0';
	e->len = len;
	stored = stored_body(ctype, body, len);
	db_idem_put(r->srv->db, e->key, e->hash, status, ctype, stored,
	    idem_stored, e);
	free(stored);
	return true;
}
