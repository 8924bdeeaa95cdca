/* gateway/jwt.h - tenant authentication with JWTs from registered issuers
 * (DESIGN.md §6).
 *
 * A token is accepted only if every one of these holds, checked in this
 * order, each before the next input is looked at:
 *  - the whole token is at most JWT_TOKEN_MAX bytes and is exactly three
 *    base64url segments (no padding, canonical trailing bits), each under
 *    its own cap, checked before anything is decoded or allocated;
 *  - the JOSE header is a JSON object without duplicate keys whose "kid"
 *    names a registered, non-deleted key and whose "alg" is exactly that
 *    key's pinned alg; a header carrying "jku", "x5u", "jwk", "x5c",
 *    "crit" or "enc" is refused whatever else it says;
 *  - the signature verifies with OpenSSL under the pinned alg (HS256:
 *    HMAC-SHA256; RS256: RSASSA-PKCS1-v1_5 with SHA-256; ES256: ECDSA
 *    P-256 with a raw 64-byte r||s, r and s in [1, n-1]);
 *  - the payload is a JSON object without duplicate keys; "exp" is
 *    required and an integer, "nbf" if present an integer, both within
 *    JWT_SKEW_S of now; "iss" equals the issuer's; "aud" equals it or is
 *    an array of strings containing it; the issuer's tenant claim is a
 *    string naming a tenant;
 *  - (jwt_auth only) that tenant exists and is active.
 * libjwt is not used: Debian's 1.10.2 takes the alg from the token and
 * checks no claims, so every check above would have to be redone around
 * it anyway.  Verification never touches the filesystem: a kid is only
 * ever compared with registered kids.
 *
 * The keyring is the in-memory copy of the jwt_issuers table that requests
 * are verified against, so the hot path reads no issuer from SQLite.  It is
 * used only on maasd's event-loop thread; not thread-safe. */
#ifndef GATEWAY_JWT_H
#define GATEWAY_JWT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/auth.h"

struct db;
struct jwt_keyring;	/* opaque */

#define JWT_TOKEN_MAX		AUTH_HEADER_MAX	/* whole compact token */
#define JWT_HEADER_MAX		1024	/* decoded JOSE header, bytes */
#define JWT_PAYLOAD_MAX		5120	/* decoded claims, bytes */
#define JWT_SIG_MAX		512	/* decoded signature (RSA-4096) */
#define JWT_SKEW_S		60	/* clock skew allowed on exp, nbf */
#define JWT_KID_MAX		128
#define JWT_CLAIM_MAX		64	/* tenant claim name */
#define JWT_STR_MAX		512	/* iss, aud */
#define JWT_HMAC_MIN		32	/* HS256 secret, bytes */
#define JWT_HMAC_MAX		4096
#define JWT_PEM_MAX		16384
#define JWT_RSA_MIN_BITS	2048
#define JWT_RSA_MAX_BITS	4096	/* bounds the cost of checking a key */
#define JWT_ISSUERS_MAX		1024	/* registered at once */
#define JWT_FP_LEN		71	/* "sha256:" + 64 hex */
#define JWT_ISSUER_ID_MAX	47	/* "jwt:" + id fits a key_id[64] */

enum jwt_alg {
	JWT_ALG_HS256 = 0,
	JWT_ALG_RS256,
	JWT_ALG_ES256,
};

enum jwt_status {
	JWT_OK = 0,
	JWT_TOO_LARGE,		/* token or a segment over its cap */
	JWT_MALFORMED,		/* not three base64url JSON segments */
	JWT_FORBIDDEN_HEADER,	/* jku, x5u, jwk, x5c, crit or enc */
	JWT_UNKNOWN_KID,	/* no kid, or not a registered one */
	JWT_ALG_MISMATCH,	/* alg is not the key's pinned alg */
	JWT_BAD_SIGNATURE,
	JWT_BAD_CLAIMS,		/* exp missing or not an integer, ... */
	JWT_EXPIRED,
	JWT_NOT_YET_VALID,	/* nbf in the future */
	JWT_WRONG_ISSUER,
	JWT_WRONG_AUDIENCE,
	JWT_NO_TENANT,		/* the tenant claim is missing or unusable */
	JWT_WRONG_TENANT,	/* not the tenant the issuer is bound to */
};

/* What a verified token says. */
struct jwt_claims {
	char	tenant_id[64];		/* value of the issuer's tenant claim */
	char	issuer_id[JWT_ISSUER_ID_MAX + 1]; /* "iss_..." that verified */
};

/* An issuer's fields as the admin API gives them or the database holds
 * them.  All borrowed. */
struct jwt_issuer {
	const char	*id;		/* "iss_..."; NULL when only checking */
	const char	*kid;
	const char	*alg;
	const char	*key;		/* HMAC secret, or public key PEM */
	size_t		 key_len;
	const char	*iss;
	const char	*aud;
	const char	*tenant_claim;
	const char	*tenant_id;	/* NULL: any tenant */
};

/* --- keys --- */
/* Parses an alg name; -1 if it is not one of HS256, RS256, ES256. */
int		 jwt_alg_parse(const char *, enum jwt_alg *);
const char	*jwt_alg_name(enum jwt_alg);
/* Validates an issuer as the admin API would register it: kid of 1 to
 * JWT_KID_MAX characters of [A-Za-z0-9._~:+=-]; alg HS256, RS256 or ES256;
 * iss and aud of 1 to JWT_STR_MAX printable characters; tenant_claim of 1
 * to JWT_CLAIM_MAX characters of [A-Za-z0-9._:-], not a registered claim
 * the verifier checks itself (exp, nbf, iat, iss, aud); and the key: an
 * HMAC secret of JWT_HMAC_MIN..JWT_HMAC_MAX bytes without NUL, or one
 * SubjectPublicKeyInfo PEM ("PUBLIC KEY") holding RSA of
 * JWT_RSA_MIN_BITS..JWT_RSA_MAX_BITS bits with an odd public exponent of
 * 3 to 64 bits for RS256, or a P-256 point for ES256.  A PEM that holds a
 * private key is refused.  id is not checked.
 * On success writes the key's fingerprint to fp and, for a public key, the
 * key re-encoded as canonical PEM to *pem (caller frees; NULL for HMAC),
 * which is what should be stored.  -1 with the offending field in *field
 * and a reason for the admin in err. */
int		 jwt_issuer_check(const struct jwt_issuer *,
		    char fp[JWT_FP_LEN + 1], char **pem, const char **field,
		    char *err, size_t errsz);
/* The fingerprint shown instead of a key: "sha256:" + hex of the SHA-256
 * of the HMAC secret, or of the DER SubjectPublicKeyInfo in a public key
 * PEM (read from the PEM body, without parsing the key: cheap enough for
 * listings).  -1 if the PEM holds no "PUBLIC KEY" block. */
int		 jwt_key_fingerprint(enum jwt_alg, const char *key,
		    size_t key_len, char fp[JWT_FP_LEN + 1]);

/* --- the keyring --- */
/* An empty keyring; caller frees with jwt_keyring_free(). */
struct jwt_keyring *jwt_keyring_new(void);
/* Wipes the secrets and frees.  NULL is ok. */
void		 jwt_keyring_free(struct jwt_keyring *);
/* Adds an issuer, replacing one with the same id.  Everything is copied.
 * Fields are checked as jwt_issuer_check() does, except for OpenSSL's
 * consistency check of a public key (milliseconds for RSA), which was done
 * when the key was registered.  -1 with the reason in err if a field is
 * invalid, the kid is taken by another id, or the keyring holds
 * JWT_ISSUERS_MAX issuers. */
int		 jwt_keyring_add(struct jwt_keyring *,
		    const struct jwt_issuer *, char *err, size_t errsz);
/* Removes the issuer with this id; tokens of its key fail from now on.
 * Returns whether it was there. */
bool		 jwt_keyring_remove(struct jwt_keyring *, const char *id);
size_t		 jwt_keyring_count(const struct jwt_keyring *);
/* Replaces the contents with the non-deleted issuers of the database.
 * -1 on a database error (the keyring is left as it was).  A stored row
 * that no longer validates is skipped and logged. */
int		 jwt_keyring_load(struct jwt_keyring *, struct db *);

/* --- verification --- */
/* Verifies a compact JWT of len bytes (it need not be NUL-terminated) at
 * Unix time now.  JWT_OK fills out; anything else leaves it zeroed. */
enum jwt_status	 jwt_verify(const struct jwt_keyring *, const char *token,
		    size_t len, int64_t now, struct jwt_claims *out);
const char	*jwt_status_name(enum jwt_status);

/* --- the process's keyring and the auth entry point --- */
/* maasd has one database and one keyring bound to it.  The keyring is
 * loaded from db on first use (the first JWT or issuer admin request) and
 * kept current by admin/issuers.c; borrowed, valid until
 * jwt_shared_release().  NULL if it cannot be loaded (logged); the next
 * call tries again. */
struct jwt_keyring *jwt_shared(struct db *);
/* Frees the process's keyring.  Whoever closes that database calls it
 * (shutdown, tests), so that a later database never sees a stale keyring
 * bound to the old one's address. */
void		 jwt_shared_release(void);
/* Authenticates a bearer credential that is not an API key: jwt_verify()
 * against jwt_shared(db) at the current time, then the tenant must exist
 * and be active.  On AUTH_OK fills out with the tenant id and key_id
 * "jwt:<issuer id>".  Failures are AUTH_UNKNOWN (any bad token),
 * AUTH_EXPIRED, AUTH_SUSPENDED or AUTH_ERROR (database). */
enum auth_status jwt_auth(struct db *, const char *token,
		    struct auth_result *out);
#endif
