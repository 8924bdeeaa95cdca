/* gateway/auth.c - see auth.h. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/log.h"
#include "db/db.h"
#include "gateway/auth.h"
#include "gateway/jwt.h"

static void	random_hex(char *out, size_t nhex);
static const char *bearer(const char *header, enum auth_status *);

void
auth_sha256(const void *p, size_t n, uint8_t out[32])
{
	SHA256(p, n, out);
}

static void
random_hex(char *out, size_t nhex)
{
	static const char	hex[] = "0123456789abcdef";
	uint8_t			rnd[64];

	if (nhex / 2 > sizeof(rnd) ||
	    getrandom(rnd, nhex / 2, 0) != (ssize_t)(nhex / 2))
		fatal("getrandom");
	for (size_t i = 0; i < nhex / 2; i++) {
		out[2 * i] = hex[rnd[i] >> 4];
		out[2 * i + 1] = hex[rnd[i] & 15];
	}
	out[nhex] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
}

void
auth_key_generate(char secret[AUTH_KEY_LEN + 1],
    char prefix[AUTH_PREFIX_LEN + 1], uint8_t hash[32])
{
	size_t	plen = sizeof(AUTH_KEY_PREFIX) - 1;

	memcpy(secret, AUTH_KEY_PREFIX, plen);
	random_hex(secret + plen, AUTH_SECRET_HEX);
	memcpy(prefix, secret + plen, AUTH_PREFIX_LEN);
	prefix[AUTH_PREFIX_LEN] = '\0';
	auth_sha256(secret, AUTH_KEY_LEN, hash);
}

void
auth_admin_generate(char token[AUTH_ADMIN_LEN + 1])
{
	size_t	plen = sizeof(AUTH_ADMIN_PREFIX) - 1;

	memcpy(token, AUTH_ADMIN_PREFIX, plen);
	random_hex(token + plen, AUTH_SECRET_HEX);
}

static int
is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int
auth_key_parse(const char *key, char prefix[AUTH_PREFIX_LEN + 1],
    uint8_t hash[32])
{
	size_t	plen = sizeof(AUTH_KEY_PREFIX) - 1;

	if (strnlen(key, AUTH_KEY_LEN + 1) != AUTH_KEY_LEN ||
	    strncmp(key, AUTH_KEY_PREFIX, plen) != 0 ||
	    !is_lower_hex(key + plen, AUTH_SECRET_HEX))
		return -1;
	memcpy(prefix, key + plen, AUTH_PREFIX_LEN);
	prefix[AUTH_PREFIX_LEN] = '\0';
	auth_sha256(key, AUTH_KEY_LEN, hash);
	return 0;
}

/* The credential after "Bearer ", or NULL with *st set. */
static const char *
bearer(const char *header, enum auth_status *st)
{
	if (header == NULL) {
		*st = AUTH_MISSING;
		return NULL;
	}
	if (strnlen(header, AUTH_HEADER_MAX + 1) > AUTH_HEADER_MAX ||
	    strncasecmp(header, "Bearer ", 7) != 0) {
		*st = AUTH_MALFORMED;
		return NULL;
	}
	header += 7;
	while (*header == ' ')
		header++;
	return header;
}

enum auth_status
auth_tenant(struct db *db, const char *header, struct auth_result *out)
{
	enum auth_status	 st = AUTH_OK;
	struct db_key		 k;
	char			 prefix[AUTH_PREFIX_LEN + 1];
	uint8_t			 hash[32];
	const char		*cred;
	int			 r;

	memset(out, 0, sizeof(*out));
	if ((cred = bearer(header, &st)) == NULL)
		return st;
	/* Anything that is not one of our keys may be a JWT. */
	if (strncmp(cred, AUTH_KEY_PREFIX, sizeof(AUTH_KEY_PREFIX) - 1) != 0)
		return jwt_auth(db, cred, out);
	if (auth_key_parse(cred, prefix, hash) == -1)
		return AUTH_UNKNOWN;
	if ((r = db_key_by_prefix(db, prefix, &k)) == -1)
		return AUTH_ERROR;
	/* Compare even when the prefix is unknown so both paths cost the
	 * same; k.hash is zeroed by the lookup then. */
	if (r == 0)
		memset(&k, 0, sizeof(k));
	if (CRYPTO_memcmp(hash, k.hash, sizeof(hash)) != 0 || r == 0)
		return AUTH_UNKNOWN;
	if (k.revoked_at != 0 && k.revoked_at <= time(NULL))
		return AUTH_REVOKED;
	if (k.expires_at != 0 && k.expires_at <= time(NULL))
		return AUTH_EXPIRED;
	if (strcmp(k.tenant_status, "active") != 0)
		return AUTH_SUSPENDED;
	snprintf(out->tenant_id, sizeof(out->tenant_id), "%s", k.tenant_id);
	snprintf(out->key_id, sizeof(out->key_id), "%s", k.id);
	out->has_scopes = k.has_scopes;
	memcpy(out->scopes, k.scopes, sizeof(out->scopes));
	return AUTH_OK;
}

enum auth_status
auth_admin(const uint8_t admin_hash[32], const char *header)
{
	enum auth_status	 st = AUTH_OK;
	const char		*cred;
	uint8_t			 hash[32];

	if ((cred = bearer(header, &st)) == NULL)
		return st;
	if (strnlen(cred, AUTH_ADMIN_LEN + 1) != AUTH_ADMIN_LEN ||
	    strncmp(cred, AUTH_ADMIN_PREFIX, sizeof(AUTH_ADMIN_PREFIX) - 1))
		return AUTH_UNKNOWN;
	auth_sha256(cred, AUTH_ADMIN_LEN, hash);
	return CRYPTO_memcmp(hash, admin_hash, 32) == 0 ? AUTH_OK :
	    AUTH_UNKNOWN;
}

const char *
auth_status_message(enum auth_status st)
{
	switch (st) {
	case AUTH_OK:
		return "ok";
	case AUTH_MISSING:
		return "missing credentials: send 'Authorization: Bearer "
		    "<api key or token>'";
	case AUTH_MALFORMED:
		return "malformed Authorization header: expected 'Bearer "
		    "<api key>'";
	case AUTH_UNKNOWN:
		return "incorrect API key or token provided";
	case AUTH_REVOKED:
		return "this API key has been revoked";
	case AUTH_EXPIRED:
		return "this credential has expired";
	case AUTH_SUSPENDED:
		return "this tenant is suspended";
	case AUTH_ERROR:
		return "cannot check credentials right now";
	}
	return "unauthorized";
}
