/* gateway/auth.h - tenant API keys and the admin token.
 *
 * A tenant key is "maas_sk_" followed by 48 lowercase hex characters (24
 * random bytes).  The first 12 hex characters are its public prefix, used
 * to find the row; only the SHA-256 of the whole key is stored, and it is
 * compared in constant time.  The admin token is "maas_admin_" + 48 hex and
 * is never accepted as a tenant key (nor a tenant key as admin). */
#ifndef GATEWAY_AUTH_H
#define GATEWAY_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

#define AUTH_KEY_PREFIX		"maas_sk_"
#define AUTH_ADMIN_PREFIX	"maas_admin_"
#define AUTH_SECRET_HEX		48
#define AUTH_KEY_LEN		(sizeof(AUTH_KEY_PREFIX) - 1 + AUTH_SECRET_HEX)
#define AUTH_ADMIN_LEN		(sizeof(AUTH_ADMIN_PREFIX) - 1 + AUTH_SECRET_HEX)
#define AUTH_PREFIX_LEN		12
#define AUTH_HEADER_MAX		8192	/* Authorization header cap */

enum auth_status {
	AUTH_OK = 0,
	AUTH_MISSING,		/* no Authorization header */
	AUTH_MALFORMED,		/* not "Bearer <credential>" or too long */
	AUTH_UNKNOWN,		/* no such key, or wrong secret */
	AUTH_REVOKED,
	AUTH_EXPIRED,
	AUTH_SUSPENDED,		/* the tenant is suspended */
	AUTH_ERROR,		/* database failure */
};

struct auth_result {
	char	tenant_id[64];
	char	key_id[64];
	bool	has_scopes;		/* false: the key may call any model */
	char	scopes[1024];		/* JSON array of model names */
};

/* Makes a new tenant key: secret (NUL-terminated, AUTH_KEY_LEN chars),
 * its prefix (AUTH_PREFIX_LEN chars) and SHA-256.  The caller shows the
 * secret once and wipes it with OPENSSL_cleanse(). */
void		 auth_key_generate(char secret[AUTH_KEY_LEN + 1],
		    char prefix[AUTH_PREFIX_LEN + 1], uint8_t hash[32]);
/* Splits a presented key into prefix and hash; -1 if it is not a
 * well-formed tenant key. */
int		 auth_key_parse(const char *key, char prefix[AUTH_PREFIX_LEN + 1],
		    uint8_t hash[32]);
/* Authenticates an Authorization header value (may be NULL). */
enum auth_status auth_tenant(struct db *, const char *header,
		    struct auth_result *);
/* A new admin token (AUTH_ADMIN_LEN chars). */
void		 auth_admin_generate(char token[AUTH_ADMIN_LEN + 1]);
/* Checks an Authorization header against the admin token's hash. */
enum auth_status auth_admin(const uint8_t admin_hash[32], const char *header);
void		 auth_sha256(const void *, size_t, uint8_t out[32]);
const char	*auth_status_message(enum auth_status);
#endif
