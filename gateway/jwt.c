/* gateway/jwt.c - see jwt.h.
 *
 * Every buffer a token is decoded into has a fixed size checked against
 * the encoded length first, so a token can make us allocate only what
 * jansson needs for a few KiB of JSON.  The order of the checks matters:
 * nothing from the payload is parsed before the signature verified under
 * the key's pinned alg, and the only thing the header may choose is which
 * registered key to try.
 *
 * OpenSSL leaves errors in the thread's queue when a parse or verify
 * fails; the TLS code on this same event-loop thread reads that queue
 * through SSL_get_error(), so every path that may fail clears it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/auth.h"
#include "gateway/jwt.h"

#define JWT_HS256_SIG_LEN	32
#define JWT_ES256_SIG_LEN	64	/* r || s, 32 bytes each */
#define JWT_ES256_DER_MAX	72	/* DER of ECDSA_SIG for P-256 */
#define JWT_AUD_MAX		32	/* entries of an "aud" array */
#define JWT_ALG_NAME_MAX	16
#define JWT_TENANT_MAX		63	/* fits auth_result.tenant_id */
#define JWT_LOAD_PAGE		1000
/* Unpadded base64url length of n bytes. */
#define JWT_B64_LEN(n)		((n) / 3 * 4 + ((n) % 3 != 0 ? (n) % 3 + 1 : 0))

/* One registered key.  Exactly one of secret and pkey is set. */
struct jwt_key {
	struct jwt_key	*next;
	char		 id[JWT_ISSUER_ID_MAX + 1];	/* "iss_..." */
	char		 kid[JWT_KID_MAX + 1];
	enum jwt_alg	 alg;			/* pinned: the only alg tried */
	uint8_t		*secret;		/* HS256; wiped on free */
	size_t		 secret_len;
	EVP_PKEY	*pkey;			/* RS256, ES256 */
	size_t		 sig_len;		/* exact signature length */
	char		*iss;
	char		*aud;
	char		*tenant_claim;
	char		*tenant_id;	/* NULL: tokens may name any tenant */
};

struct jwt_keyring {
	struct jwt_key	*head;		/* unordered; lookups are by kid */
	size_t		 n;
};

/* How much checking a public key gets (see jwt_pem_parse()). */
enum jwt_key_check {
	JWT_KEY_STORED,		/* type and size: checked in full before */
	JWT_KEY_FULL,		/* also OpenSSL's consistency check */
};

/* A parsed JOSE header: what we read from it, nothing else. */
struct jwt_header {
	char	alg[JWT_ALG_NAME_MAX];
	char	kid[JWT_KID_MAX + 1];
};

/* jwt_shared(): the process's keyring and the database it mirrors. */
static struct jwt_keyring	*jwt_ring;
static struct db		*jwt_ring_db;

static const char *const jwt_alg_names[] = {
	[JWT_ALG_HS256] = "HS256",
	[JWT_ALG_RS256] = "RS256",
	[JWT_ALG_ES256] = "ES256",
};

/* Header parameters that would let a token choose or carry its own key,
 * or demand processing we do not do (RFC 7515 §4.1.11), or say it is a
 * JWE: a token carrying any of them is refused. */
static const char *const jwt_forbidden_params[] = {
	"jku", "x5u", "jwk", "x5c", "crit", "enc",
};

/* Claims the verifier checks itself; none can be the tenant claim. */
static const char *const jwt_reserved_claims[] = {
	"exp", "nbf", "iat", "iss", "aud",
};

/* The order n of the P-256 group, big-endian: r and s must be below it. */
static const uint8_t jwt_p256_order[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
	0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

static size_t		 b64url_declen(size_t);
static int		 b64url_value(char);
static int		 b64url_decode(const char *, size_t, uint8_t *, size_t,
			    size_t *);
static int		 jwt_split(const char *, size_t, size_t[3]);
static enum jwt_status	 jwt_header_parse(const uint8_t *, size_t,
			    struct jwt_header *);
static enum jwt_status	 jwt_claims_check(const struct jwt_key *,
			    const uint8_t *, size_t, int64_t,
			    struct jwt_claims *);
static bool		 jwt_sig_verify(const struct jwt_key *, const char *,
			    size_t, const uint8_t *, size_t);
static bool		 jwt_es256_verify(EVP_PKEY *, const char *, size_t,
			    const uint8_t *);
static bool		 jwt_evp_verify(EVP_PKEY *, const char *, size_t,
			    const uint8_t *, size_t);
static bool		 json_str_eq(json_t *, const char *);
static bool		 str_charset(const char *, size_t, size_t,
			    const char *);
static bool		 str_printable(const char *, size_t);
static int		 jwt_pem_parse(enum jwt_alg, const char *, size_t,
			    enum jwt_key_check, EVP_PKEY **, char *, size_t);
static int		 jwt_issuer_validate(const struct jwt_issuer *,
			    enum jwt_key_check, enum jwt_alg *, EVP_PKEY **,
			    const char **, char *, size_t);
static int		 jwt_no_password(char *, int, int, void *);
static void		 jwt_fp_format(const uint8_t[32],
			    char[JWT_FP_LEN + 1]);
static int		 jwt_pkey_fingerprint(EVP_PKEY *,
			    char[JWT_FP_LEN + 1]);
static int		 jwt_pem_fingerprint(const char *, size_t,
			    char[JWT_FP_LEN + 1]);
static struct jwt_key	*jwt_key_new(const struct jwt_issuer *, char *,
			    size_t);
static void		 jwt_key_free(struct jwt_key *);
static const struct jwt_key *jwt_keyring_find(const struct jwt_keyring *,
			    const char *);
static void		 jwt_keyring_clear(struct jwt_keyring *);

/* --- base64url (RFC 4648 §5, unpadded as RFC 7515 §2 requires) --- */

/* Decoded size of n encoded characters; SIZE_MAX if no unpadded base64
 * string has that length. */
static size_t
b64url_declen(size_t n)
{
	if (n % 4 == 1)
		return SIZE_MAX;
	return n / 4 * 3 + (n % 4 != 0 ? n % 4 - 1 : 0);
}

static int
b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decodes in[0..n) into out, which holds outsz bytes; the decoded size is
 * checked against outsz before a byte is written.  Refuses padding, the
 * '+' and '/' of plain base64, any other byte, a length of 1 mod 4 and
 * nonzero unused bits in the last character, so that every byte string
 * has exactly one accepted encoding.  -1 on any of these. */
static int
b64url_decode(const char *in, size_t n, uint8_t *out, size_t outsz,
    size_t *outlen)
{
	uint32_t	 acc = 0;
	size_t		 i, o = 0, need;
	int		 v, bits = 0;

	*outlen = 0;
	if ((need = b64url_declen(n)) == SIZE_MAX || need > outsz)
		return -1;
	for (i = 0; i < n; i++) {
		if ((v = b64url_value(in[i])) == -1)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)		/* leftover bits must be zero */
		return -1;
	*outlen = o;
	return 0;
}

/* --- parsing --- */

/* Finds the three segments of a compact JWS: lens[i] is the length of
 * segment i; they start at 0, lens[0] + 1 and lens[0] + lens[1] + 2.
 * -1 unless there are exactly two dots and no segment is empty. */
static int
jwt_split(const char *tok, size_t len, size_t lens[3])
{
	const char	*d1, *d2;

	if ((d1 = memchr(tok, '.', len)) == NULL)
		return -1;
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
	if (d2 == NULL ||
	    memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL)
		return -1;
	lens[0] = (size_t)(d1 - tok);
	lens[1] = (size_t)(d2 - d1 - 1);
	lens[2] = len - (size_t)(d2 + 1 - tok);
	if (lens[0] == 0 || lens[1] == 0 || lens[2] == 0)
		return -1;
	return 0;
}

/* Reads alg and kid from a decoded JOSE header. */
static enum jwt_status
jwt_header_parse(const uint8_t *buf, size_t len, struct jwt_header *h)
{
	json_error_t	 je;
	json_t		*o, *alg, *kid, *typ;
	enum jwt_status	 st = JWT_MALFORMED;
	size_t		 i, n;

	memset(h, 0, sizeof(*h));
	/* Duplicates refused: {"alg":"RS256","alg":"none"} must not mean
	 * one thing here and another to some other parser. */
	o = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o))
		goto out;
	for (i = 0; i < sizeof(jwt_forbidden_params) /
	    sizeof(jwt_forbidden_params[0]); i++)
		if (json_object_get(o, jwt_forbidden_params[i]) != NULL) {
			st = JWT_FORBIDDEN_HEADER;
			goto out;
		}
	alg = json_object_get(o, "alg");
	typ = json_object_get(o, "typ");
	if (!json_is_string(alg) || (typ != NULL && !json_is_string(typ)))
		goto out;
	/* A kid we could not have registered is simply unknown. */
	kid = json_object_get(o, "kid");
	if (!json_is_string(kid) || (n = json_string_length(kid)) == 0 ||
	    n > JWT_KID_MAX || memchr(json_string_value(kid), '\0', n)) {
		st = JWT_UNKNOWN_KID;
		goto out;
	}
	memcpy(h->kid, json_string_value(kid), n);
	/* Likewise an alg that cannot equal one of ours never matches. */
	n = json_string_length(alg);
	if (n == 0 || n >= sizeof(h->alg) ||
	    memchr(json_string_value(alg), '\0', n)) {
		st = JWT_ALG_MISMATCH;
		goto out;
	}
	memcpy(h->alg, json_string_value(alg), n);
	st = JWT_OK;
 out:
	json_decref(o);
	return st;
}

/* Whether j is a string equal to s, embedded NULs included. */
static bool
json_str_eq(json_t *j, const char *s)
{
	size_t	 n = strlen(s);

	return json_is_string(j) && json_string_length(j) == n &&
	    memcmp(json_string_value(j), s, n) == 0;
}

/* Checks the claims of a payload whose signature verified under k. */
static enum jwt_status
jwt_claims_check(const struct jwt_key *k, const uint8_t *buf, size_t len,
    int64_t now, struct jwt_claims *out)
{
	json_error_t	 je;
	json_t		*o, *exp, *nbf, *aud, *v, *ten;
	enum jwt_status	 st = JWT_MALFORMED;
	const char	*tid;
	size_t		 i, n;
	bool		 found;

	memset(out, 0, sizeof(*out));
	o = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o))
		goto out;

	/* exp and nbf are NumericDates; we take integers only, so that
	 * "exp":"9999999999" or 1e300 or 1.5 cannot slip through a lax
	 * conversion.  jansson refuses integers beyond int64 outright. */
	st = JWT_BAD_CLAIMS;
	exp = json_object_get(o, "exp");
	nbf = json_object_get(o, "nbf");
	if (!json_is_integer(exp) || (nbf != NULL && !json_is_integer(nbf)))
		goto out;
	/* Written so that nothing overflows: now is a real clock value. */
	if (json_integer_value(exp) <= now - JWT_SKEW_S) {
		st = JWT_EXPIRED;
		goto out;
	}
	if (nbf != NULL && json_integer_value(nbf) > now + JWT_SKEW_S) {
		st = JWT_NOT_YET_VALID;
		goto out;
	}
	if (!json_str_eq(json_object_get(o, "iss"), k->iss)) {
		st = JWT_WRONG_ISSUER;
		goto out;
	}
	aud = json_object_get(o, "aud");
	found = json_str_eq(aud, k->aud);
	if (json_is_array(aud) && json_array_size(aud) <= JWT_AUD_MAX) {
		/* Every entry must be a string: an array we only half
		 * understood is not one we accept. */
		found = json_array_size(aud) > 0;
		json_array_foreach(aud, i, v)
			if (!json_is_string(v))
				found = false;
		if (found) {
			found = false;
			json_array_foreach(aud, i, v)
				if (json_str_eq(v, k->aud))
					found = true;
		}
	}
	if (!found) {
		st = JWT_WRONG_AUDIENCE;
		goto out;
	}
	st = JWT_NO_TENANT;
	ten = json_object_get(o, k->tenant_claim);
	if (!json_is_string(ten))
		goto out;
	tid = json_string_value(ten);
	n = json_string_length(ten);
	if (!str_charset(tid, n, JWT_TENANT_MAX, "._-"))
		goto out;
	/* An issuer bound to a tenant (one customer's identity provider)
	 * cannot speak for another. */
	st = JWT_WRONG_TENANT;
	if (k->tenant_id != NULL && (strlen(k->tenant_id) != n ||
	    memcmp(k->tenant_id, tid, n) != 0))
		goto out;
	memcpy(out->tenant_id, tid, n);
	memcpy(out->issuer_id, k->id, strlen(k->id) + 1);
	st = JWT_OK;
 out:
	json_decref(o);
	return st;
}

/* --- signatures --- */

static bool
jwt_sig_verify(const struct jwt_key *k, const char *input, size_t inlen,
    const uint8_t *sig, size_t siglen)
{
	uint8_t		 mac[EVP_MAX_MD_SIZE];
	unsigned int	 maclen = 0;
	bool		 ok = false;

	if (siglen != k->sig_len)
		return false;
	switch (k->alg) {
	case JWT_ALG_HS256:
		if (HMAC(EVP_sha256(), k->secret, (int)k->secret_len,
		    (const unsigned char *)input, inlen, mac,
		    &maclen) != NULL && maclen == JWT_HS256_SIG_LEN)
			ok = CRYPTO_memcmp(mac, sig, JWT_HS256_SIG_LEN) == 0;
		OPENSSL_cleanse(mac, sizeof(mac));
		break;
	case JWT_ALG_RS256:
		ok = jwt_evp_verify(k->pkey, input, inlen, sig, siglen);
		break;
	case JWT_ALG_ES256:
		ok = jwt_es256_verify(k->pkey, input, inlen, sig);
		break;
	}
	ERR_clear_error();
	return ok;
}

/* SHA-256 then the key's own scheme: PKCS#1 v1.5 for an RSA key (the
 * default padding), ECDSA for an EC key (sig is DER there). */
static bool
jwt_evp_verify(EVP_PKEY *pkey, const char *input, size_t inlen,
    const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX	*md;
	bool		 ok = false;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return false;
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, (const unsigned char *)input,
	    inlen) == 1)
		ok = true;
	EVP_MD_CTX_free(md);
	return ok;
}

/* A JWS ES256 signature is r || s as two 32-byte big-endian integers
 * (RFC 7518 §3.4), which OpenSSL wants as a DER ECDSA-Sig-Value.  r and s
 * must lie in [1, n-1]: r = s = 0 is the "psychic signature" that a
 * verifier skipping this check accepts for any message. */
static bool
jwt_es256_verify(EVP_PKEY *pkey, const char *input, size_t inlen,
    const uint8_t *sig)
{
	static const uint8_t	 zero[32];
	ECDSA_SIG		*es = NULL;
	BIGNUM			*r = NULL, *s = NULL;
	uint8_t			 der[JWT_ES256_DER_MAX], *p = der;
	int			 derlen;
	bool			 ok = false;

	if (memcmp(sig, zero, 32) == 0 || memcmp(sig + 32, zero, 32) == 0 ||
	    memcmp(sig, jwt_p256_order, 32) >= 0 ||
	    memcmp(sig + 32, jwt_p256_order, 32) >= 0)
		return false;
	if ((es = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(sig, 32, NULL)) == NULL ||
	    (s = BN_bin2bn(sig + 32, 32, NULL)) == NULL)
		goto out;
	if (ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL;			/* es owns them now */
	if ((derlen = i2d_ECDSA_SIG(es, NULL)) <= 0 ||
	    derlen > (int)sizeof(der) || i2d_ECDSA_SIG(es, &p) != derlen)
		goto out;
	ok = jwt_evp_verify(pkey, input, inlen, der, (size_t)derlen);
 out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return ok;
}

/* --- verification --- */

enum jwt_status
jwt_verify(const struct jwt_keyring *ring, const char *tok, size_t len,
    int64_t now, struct jwt_claims *out)
{
	const struct jwt_key	*k;
	struct jwt_header	 h;
	enum jwt_status		 st;
	uint8_t			 hbuf[JWT_HEADER_MAX];
	uint8_t			 pbuf[JWT_PAYLOAD_MAX];
	uint8_t			 sig[JWT_SIG_MAX];
	size_t			 lens[3], hlen, plen, siglen;
	const char		*pseg, *sseg;

	memset(out, 0, sizeof(*out));
	if (len > JWT_TOKEN_MAX)
		return JWT_TOO_LARGE;
	if (jwt_split(tok, len, lens) == -1)
		return JWT_MALFORMED;
	pseg = tok + lens[0] + 1;
	sseg = pseg + lens[1] + 1;
	/* All three caps before any decoding. */
	if (lens[0] > JWT_B64_LEN(JWT_HEADER_MAX) ||
	    lens[1] > JWT_B64_LEN(JWT_PAYLOAD_MAX) ||
	    lens[2] > JWT_B64_LEN(JWT_SIG_MAX))
		return JWT_TOO_LARGE;
	if (b64url_decode(tok, lens[0], hbuf, sizeof(hbuf), &hlen) == -1)
		return JWT_MALFORMED;
	if ((st = jwt_header_parse(hbuf, hlen, &h)) != JWT_OK)
		return st;
	if ((k = jwt_keyring_find(ring, h.kid)) == NULL)
		return JWT_UNKNOWN_KID;
	/* The pinned alg decides; the header's may only agree with it.
	 * This is what refuses "none" in any spelling and an HS256 token
	 * for an RSA key. */
	if (strcmp(h.alg, jwt_alg_names[k->alg]) != 0)
		return JWT_ALG_MISMATCH;
	if (b64url_decode(sseg, lens[2], sig, sizeof(sig), &siglen) == -1)
		return JWT_MALFORMED;
	if (!jwt_sig_verify(k, tok, lens[0] + 1 + lens[1], sig, siglen))
		return JWT_BAD_SIGNATURE;
	if (b64url_decode(pseg, lens[1], pbuf, sizeof(pbuf), &plen) == -1)
		return JWT_MALFORMED;
	return jwt_claims_check(k, pbuf, plen, now, out);
}

const char *
jwt_status_name(enum jwt_status st)
{
	switch (st) {
	case JWT_OK:
		return "ok";
	case JWT_TOO_LARGE:
		return "token too large";
	case JWT_MALFORMED:
		return "malformed token";
	case JWT_FORBIDDEN_HEADER:
		return "forbidden header parameter";
	case JWT_UNKNOWN_KID:
		return "unknown kid";
	case JWT_ALG_MISMATCH:
		return "alg is not the key's";
	case JWT_BAD_SIGNATURE:
		return "bad signature";
	case JWT_BAD_CLAIMS:
		return "exp missing or malformed";
	case JWT_EXPIRED:
		return "expired";
	case JWT_NOT_YET_VALID:
		return "not yet valid";
	case JWT_WRONG_ISSUER:
		return "wrong issuer";
	case JWT_WRONG_AUDIENCE:
		return "wrong audience";
	case JWT_NO_TENANT:
		return "no usable tenant claim";
	case JWT_WRONG_TENANT:
		return "tenant not the issuer's";
	}
	return "invalid token";
}

/* --- keys --- */

int
jwt_alg_parse(const char *s, enum jwt_alg *alg)
{
	size_t	 i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(jwt_alg_names) / sizeof(jwt_alg_names[0]); i++)
		if (strcmp(s, jwt_alg_names[i]) == 0) {
			*alg = (enum jwt_alg)i;
			return 0;
		}
	return -1;
}

const char *
jwt_alg_name(enum jwt_alg alg)
{
	return jwt_alg_names[alg];
}

/* Whether s[0..n) is 1 to max characters, each alphanumeric or in
 * extra. */
static bool
str_charset(const char *s, size_t n, size_t max, const char *extra)
{
	size_t	 i;
	char	 c;

	if (s == NULL || n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++) {
		/* ASCII by hand: isalnum() would follow the locale. */
		c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (c == '\0' || strchr(extra, c) == NULL)
			return false;
	}
	return true;
}

/* 1 to JWT_STR_MAX bytes, none of them a control character.  Bytes above
 * 0x7f pass, so that an iss or aud may be any UTF-8 text. */
static bool
str_printable(const char *s, size_t n)
{
	size_t	 i;

	if (s == NULL || n == 0 || n > JWT_STR_MAX)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* PEM pass phrase callback: a public key is never encrypted, and the
 * default callback would prompt on a terminal. */
static int
jwt_no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Parses a public key PEM for alg into *out (caller frees).  JWT_KEY_FULL
 * adds OpenSSL's consistency check of the key (SP 800-56B for RSA: n odd,
 * composite, without small factors; the point on the curve for EC), which
 * catches a pasted key that anyone could forge with, such as a prime n.
 * It costs about 5 ms for RSA-2048 and 25 ms for RSA-4096 against 0.3 ms
 * for the parse, so it is done once, when a key is registered, and not
 * again when stored keys are loaded. */
static int
jwt_pem_parse(enum jwt_alg alg, const char *pem, size_t len,
    enum jwt_key_check check, EVP_PKEY **out, char *err, size_t errsz)
{
	EVP_PKEY	*pkey = NULL;
	EVP_PKEY_CTX	*pc = NULL;
	BIGNUM		*e = NULL;
	BIO		*bio = NULL;
	char		 group[64];
	size_t		 glen = 0;
	int		 bits, ret = -1;

	*out = NULL;
	if (len == 0 || len > JWT_PEM_MAX || memchr(pem, '\0', len) != NULL) {
		snprintf(err, errsz, "'key' must be a PEM public key of at "
		    "most %d bytes", JWT_PEM_MAX);
		goto out;
	}
	/* Whoever pastes a private key here has leaked it to us; storing
	 * it would leak it further. */
	if (memmem(pem, len, "PRIVATE KEY", 11) != NULL ||
	    memmem(pem, len, "ENCRYPTED", 9) != NULL) {
		snprintf(err, errsz, "'key' holds a private key: send only "
		    "the public key");
		goto out;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		goto out;
	pkey = PEM_read_bio_PUBKEY(bio, NULL, jwt_no_password, NULL);
	if (pkey == NULL) {
		snprintf(err, errsz, "'key' is not a PEM public key "
		    "(-----BEGIN PUBLIC KEY-----)");
		goto out;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (alg == JWT_ALG_RS256) {
		/* RSA only (not RSA-PSS); e = 1 would make every padded
		 * message its own signature, and a huge e a slow verify. */
		if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
		    bits < JWT_RSA_MIN_BITS || bits > JWT_RSA_MAX_BITS ||
		    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E,
		    &e) != 1 || !BN_is_odd(e) || BN_num_bits(e) < 2 ||
		    BN_num_bits(e) > 64) {
			snprintf(err, errsz, "RS256 needs an RSA public key of "
			    "%d to %d bits with an odd exponent of at most 64 "
			    "bits", JWT_RSA_MIN_BITS, JWT_RSA_MAX_BITS);
			goto out;
		}
	} else if (alg == JWT_ALG_ES256) {
		/* A named curve only: explicit parameters have no name. */
		if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
		    EVP_PKEY_get_group_name(pkey, group, sizeof(group),
		    &glen) != 1 || (strcmp(group, "prime256v1") != 0 &&
		    strcmp(group, "P-256") != 0)) {
			snprintf(err, errsz, "ES256 needs an EC public key on "
			    "the P-256 curve");
			goto out;
		}
	} else {
		snprintf(err, errsz, "'alg' takes no public key");
		goto out;
	}
	if (check == JWT_KEY_FULL && ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, pkey,
	    NULL)) == NULL || EVP_PKEY_public_check(pc) != 1)) {
		snprintf(err, errsz, "'key' is not a valid public key");
		goto out;
	}
	*out = pkey;
	pkey = NULL;
	ret = 0;
 out:
	EVP_PKEY_CTX_free(pc);
	BN_free(e);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return ret;
}

static void
jwt_fp_format(const uint8_t d[32], char fp[JWT_FP_LEN + 1])
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i;

	memcpy(fp, "sha256:", 7);
	for (i = 0; i < 32; i++) {
		fp[7 + 2 * i] = hex[d[i] >> 4];
		fp[8 + 2 * i] = hex[d[i] & 15];
	}
	fp[JWT_FP_LEN] = '\0';
}

/* The fingerprint of a parsed public key: SHA-256 of its DER SPKI. */
static int
jwt_pkey_fingerprint(EVP_PKEY *pkey, char fp[JWT_FP_LEN + 1])
{
	uint8_t		*der = NULL, d[32];
	int		 n;

	if ((n = i2d_PUBKEY(pkey, &der)) <= 0) {
		ERR_clear_error();
		return -1;
	}
	SHA256(der, (size_t)n, d);
	OPENSSL_free(der);
	jwt_fp_format(d, fp);
	return 0;
}

/* The fingerprint of a stored PEM without parsing the key: the body of a
 * "PUBLIC KEY" block is the DER SubjectPublicKeyInfo itself.  Listing a
 * thousand RSA issuers would otherwise cost a thousand OpenSSL decodes. */
static int
jwt_pem_fingerprint(const char *pem, size_t len, char fp[JWT_FP_LEN + 1])
{
	static const char	 begin[] = "-----BEGIN PUBLIC KEY-----";
	static const char	 end[] = "-----END PUBLIC KEY-----";
	EVP_ENCODE_CTX		*ctx = NULL;
	const char		*b, *e;
	uint8_t			*der = NULL, d[32];
	int			 n, m, ret = -1;

	if (len > JWT_PEM_MAX ||
	    (b = memmem(pem, len, begin, sizeof(begin) - 1)) == NULL)
		return -1;
	b += sizeof(begin) - 1;
	if ((e = memmem(b, len - (size_t)(b - pem), end,
	    sizeof(end) - 1)) == NULL)
		return -1;
	der = xmalloc((size_t)(e - b) + 1);
	if ((ctx = EVP_ENCODE_CTX_new()) == NULL)
		goto out;
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, der, &n, (const unsigned char *)b,
	    (int)(e - b)) == -1 || EVP_DecodeFinal(ctx, der + n, &m) != 1 ||
	    n + m <= 0)
		goto out;
	SHA256(der, (size_t)(n + m), d);
	jwt_fp_format(d, fp);
	ret = 0;
 out:
	EVP_ENCODE_CTX_free(ctx);
	free(der);
	ERR_clear_error();
	return ret;
}

int
jwt_key_fingerprint(enum jwt_alg alg, const char *key, size_t len,
    char fp[JWT_FP_LEN + 1])
{
	uint8_t		 d[32];

	if (alg == JWT_ALG_HS256) {
		SHA256((const unsigned char *)key, len, d);
		jwt_fp_format(d, fp);
		return 0;
	}
	return jwt_pem_fingerprint(key, len, fp);
}

/* Everything jwt_issuer_check() checks, the key as check says.  A public
 * key is returned parsed in *pkey (caller frees; NULL for HMAC). */
static int
jwt_issuer_validate(const struct jwt_issuer *in, enum jwt_key_check check,
    enum jwt_alg *alg, EVP_PKEY **pkey, const char **field, char *err,
    size_t errsz)
{
	size_t	 i;

	*pkey = NULL;
	*field = "kid";
	if (in->kid == NULL || !str_charset(in->kid, strlen(in->kid),
	    JWT_KID_MAX, "._~:+=-")) {
		snprintf(err, errsz, "'kid' must be 1-%d characters of "
		    "letters, digits and ._~:+=-", JWT_KID_MAX);
		return -1;
	}
	*field = "alg";
	if (jwt_alg_parse(in->alg, alg) == -1) {
		snprintf(err, errsz, "'alg' must be HS256, RS256 or ES256");
		return -1;
	}
	*field = "iss";
	if (in->iss == NULL || !str_printable(in->iss, strlen(in->iss))) {
		snprintf(err, errsz, "'iss' must be 1-%d printable characters",
		    JWT_STR_MAX);
		return -1;
	}
	*field = "aud";
	if (in->aud == NULL || !str_printable(in->aud, strlen(in->aud))) {
		snprintf(err, errsz, "'aud' must be 1-%d printable characters",
		    JWT_STR_MAX);
		return -1;
	}
	*field = "tenant_claim";
	if (in->tenant_claim == NULL || !str_charset(in->tenant_claim,
	    strlen(in->tenant_claim), JWT_CLAIM_MAX, "._:-")) {
		snprintf(err, errsz, "'tenant_claim' must be 1-%d characters "
		    "of letters, digits and ._:-", JWT_CLAIM_MAX);
		return -1;
	}
	for (i = 0; i < sizeof(jwt_reserved_claims) /
	    sizeof(jwt_reserved_claims[0]); i++)
		if (strcmp(in->tenant_claim, jwt_reserved_claims[i]) == 0) {
			snprintf(err, errsz, "'tenant_claim' cannot be '%s'",
			    jwt_reserved_claims[i]);
			return -1;
		}
	*field = "tenant_id";
	if (in->tenant_id != NULL && !str_charset(in->tenant_id,
	    strlen(in->tenant_id), JWT_TENANT_MAX, "._-")) {
		snprintf(err, errsz, "'tenant_id' must be 1-%d characters of "
		    "letters, digits and ._-", JWT_TENANT_MAX);
		return -1;
	}
	*field = "key";
	if (in->key == NULL) {
		snprintf(err, errsz, "'key' is required");
		return -1;
	}
	if (*alg == JWT_ALG_HS256) {
		if (in->key_len < JWT_HMAC_MIN || in->key_len > JWT_HMAC_MAX ||
		    memchr(in->key, '\0', in->key_len) != NULL) {
			snprintf(err, errsz, "an HS256 secret must be %d to %d "
			    "bytes (no NUL)", JWT_HMAC_MIN, JWT_HMAC_MAX);
			return -1;
		}
	} else if (jwt_pem_parse(*alg, in->key, in->key_len, check, pkey,
	    err, errsz) == -1)
		return -1;
	*field = NULL;
	return 0;
}

int
jwt_issuer_check(const struct jwt_issuer *in, char fp[JWT_FP_LEN + 1],
    char **pem, const char **field, char *err, size_t errsz)
{
	EVP_PKEY	*pkey = NULL;
	BIO		*bio = NULL;
	BUF_MEM		*bm;
	enum jwt_alg	 alg;
	int		 ret = -1;

	*pem = NULL;
	if (jwt_issuer_validate(in, JWT_KEY_FULL, &alg, &pkey, field, err,
	    errsz) == -1)
		goto out;
	if (alg == JWT_ALG_HS256) {
		(void)jwt_key_fingerprint(alg, in->key, in->key_len, fp);
		ret = 0;
		goto out;
	}
	/* Stored re-encoded: one canonical PEM block, nothing else that
	 * came with the paste. */
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PUBKEY(bio, pkey) != 1 ||
	    BIO_get_mem_ptr(bio, &bm) != 1 ||
	    jwt_pkey_fingerprint(pkey, fp) == -1) {
		*field = "key";
		snprintf(err, errsz, "cannot encode the public key");
		goto out;
	}
	*pem = xmalloc(bm->length + 1);
	memcpy(*pem, bm->data, bm->length);
	(*pem)[bm->length] = '\0';
	ret = 0;
 out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return ret;
}

/* --- the keyring --- */

static struct jwt_key *
jwt_key_new(const struct jwt_issuer *in, char *err, size_t errsz)
{
	struct jwt_key	*k;
	EVP_PKEY	*pkey;
	const char	*field;
	enum jwt_alg	 alg;

	if (in->id == NULL || *in->id == '\0' ||
	    strlen(in->id) > JWT_ISSUER_ID_MAX) {
		snprintf(err, errsz, "bad issuer id");
		return NULL;
	}
	/* Stored keys were checked in full when they were registered. */
	if (jwt_issuer_validate(in, JWT_KEY_STORED, &alg, &pkey, &field,
	    err, errsz) == -1)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	memcpy(k->id, in->id, strlen(in->id) + 1);
	memcpy(k->kid, in->kid, strlen(in->kid) + 1);
	k->alg = alg;
	k->iss = xstrdup(in->iss);
	k->aud = xstrdup(in->aud);
	k->tenant_claim = xstrdup(in->tenant_claim);
	if (in->tenant_id != NULL)
		k->tenant_id = xstrdup(in->tenant_id);
	if (alg == JWT_ALG_HS256) {
		k->secret = xmalloc(in->key_len);
		memcpy(k->secret, in->key, in->key_len);
		k->secret_len = in->key_len;
		k->sig_len = JWT_HS256_SIG_LEN;
	} else {
		k->pkey = pkey;
		k->sig_len = alg == JWT_ALG_ES256 ? JWT_ES256_SIG_LEN :
		    (size_t)EVP_PKEY_get_size(pkey);
	}
	return k;
}

static void
jwt_key_free(struct jwt_key *k)
{
	if (k == NULL)
		return;
	if (k->secret != NULL)
		OPENSSL_cleanse(k->secret, k->secret_len);
	free(k->secret);
	EVP_PKEY_free(k->pkey);
	free(k->iss);
	free(k->aud);
	free(k->tenant_claim);
	free(k->tenant_id);
	free(k);
}

struct jwt_keyring *
jwt_keyring_new(void)
{
	return xcalloc(1, sizeof(struct jwt_keyring));
}

static void
jwt_keyring_clear(struct jwt_keyring *ring)
{
	struct jwt_key	*k, *next;

	for (k = ring->head; k != NULL; k = next) {
		next = k->next;
		jwt_key_free(k);
	}
	ring->head = NULL;
	ring->n = 0;
}

void
jwt_keyring_free(struct jwt_keyring *ring)
{
	if (ring == NULL)
		return;
	jwt_keyring_clear(ring);
	free(ring);
}

/* XXX: a linear scan; fine for the JWT_ISSUERS_MAX issuers we allow, a
 * hash table if that limit ever grows. */
static const struct jwt_key *
jwt_keyring_find(const struct jwt_keyring *ring, const char *kid)
{
	const struct jwt_key	*k;

	for (k = ring->head; k != NULL; k = k->next)
		if (strcmp(k->kid, kid) == 0)
			return k;
	return NULL;
}

int
jwt_keyring_add(struct jwt_keyring *ring, const struct jwt_issuer *in,
    char *err, size_t errsz)
{
	struct jwt_key	*k, *old;
	bool		 replacing = false;

	for (old = ring->head; old != NULL; old = old->next) {
		if (in->id != NULL && strcmp(old->id, in->id) == 0)
			replacing = true;
		else if (in->kid != NULL && strcmp(old->kid, in->kid) == 0) {
			snprintf(err, errsz, "kid is used by issuer '%s'",
			    old->id);
			return -1;
		}
	}
	if (!replacing && ring->n >= JWT_ISSUERS_MAX) {
		snprintf(err, errsz, "too many issuers (at most %d)",
		    JWT_ISSUERS_MAX);
		return -1;
	}
	if ((k = jwt_key_new(in, err, errsz)) == NULL)
		return -1;
	if (replacing)
		(void)jwt_keyring_remove(ring, in->id);
	k->next = ring->head;
	ring->head = k;
	ring->n++;
	return 0;
}

bool
jwt_keyring_remove(struct jwt_keyring *ring, const char *id)
{
	struct jwt_key	**kp, *k;

	for (kp = &ring->head; (k = *kp) != NULL; kp = &k->next)
		if (strcmp(k->id, id) == 0) {
			*kp = k->next;
			ring->n--;
			jwt_key_free(k);
			return true;
		}
	return false;
}

size_t
jwt_keyring_count(const struct jwt_keyring *ring)
{
	return ring->n;
}

int
jwt_keyring_load(struct jwt_keyring *ring, struct db *db)
{
	struct jwt_keyring	 fresh = { NULL, 0 };
	struct jwt_issuer	 in;
	json_t			*page = NULL, *row;
	const char		*after = NULL;
	char			 last[64] = "", err[256];
	size_t			 i;
	int			 ret = -1;

	for (;;) {
		json_decref(page);
		if ((page = db_issuer_list(db, after, JWT_LOAD_PAGE)) == NULL)
			goto out;
		json_array_foreach(json_object_get(page, "data"), i, row) {
			memset(&in, 0, sizeof(in));
			in.id = json_string_value(json_object_get(row, "id"));
			in.kid = json_string_value(json_object_get(row, "kid"));
			in.alg = json_string_value(json_object_get(row, "alg"));
			in.key = json_string_value(json_object_get(row, "key"));
			in.key_len = json_string_length(json_object_get(row,
			    "key"));
			in.iss = json_string_value(json_object_get(row, "iss"));
			in.aud = json_string_value(json_object_get(row, "aud"));
			in.tenant_claim = json_string_value(json_object_get(row,
			    "tenant_claim"));
			in.tenant_id = json_string_value(json_object_get(row,
			    "tenant_id"));
			if (in.id == NULL || strlen(in.id) >= sizeof(last))
				continue;
			memcpy(last, in.id, strlen(in.id) + 1);
			/* A row written by hand or by an older version that
			 * we would not accept today stays unusable. */
			if (jwt_keyring_add(&fresh, &in, err,
			    sizeof(err)) == -1)
				log_warnx("jwt issuer '%s' skipped: %s", in.id,
				    err);
		}
		if (!json_is_true(json_object_get(page, "has_more")))
			break;
		after = last;
	}
	jwt_keyring_clear(ring);
	*ring = fresh;
	fresh.head = NULL;
	ret = 0;
 out:
	json_decref(page);
	jwt_keyring_clear(&fresh);
	return ret;
}

/* --- the process's keyring --- */

struct jwt_keyring *
jwt_shared(struct db *db)
{
	struct jwt_keyring	*ring;

	if (jwt_ring != NULL && jwt_ring_db == db)
		return jwt_ring;
	ring = jwt_keyring_new();
	if (jwt_keyring_load(ring, db) == -1) {
		log_warnx("cannot load the jwt issuers");
		jwt_keyring_free(ring);
		return NULL;
	}
	jwt_shared_release();
	jwt_ring = ring;
	jwt_ring_db = db;
	log_debug("%zu jwt issuer(s) loaded", ring->n);
	return ring;
}

void
jwt_shared_release(void)
{
	jwt_keyring_free(jwt_ring);
	jwt_ring = NULL;
	jwt_ring_db = NULL;
}

enum auth_status
jwt_auth(struct db *db, const char *token, struct auth_result *out)
{
	struct jwt_keyring	*ring;
	struct jwt_claims	 c;
	enum jwt_status		 st;
	char			 status[16];
	size_t			 len;
	int			 r;

	memset(out, 0, sizeof(*out));
	if ((len = strnlen(token, JWT_TOKEN_MAX + 1)) > JWT_TOKEN_MAX)
		return AUTH_MALFORMED;
	if ((ring = jwt_shared(db)) == NULL)
		return AUTH_ERROR;
	if ((st = jwt_verify(ring, token, len, (int64_t)time(NULL),
	    &c)) != JWT_OK) {
		/* The reason goes to the log, never to the caller; the
		 * token itself goes nowhere. */
		log_debug("jwt refused: %s", jwt_status_name(st));
		return st == JWT_EXPIRED ? AUTH_EXPIRED : AUTH_UNKNOWN;
	}
	if ((r = db_tenant_status(db, c.tenant_id, status)) == -1)
		return AUTH_ERROR;
	if (r == 0) {
		log_debug("jwt refused: issuer '%s' names an unknown tenant",
		    c.issuer_id);
		return AUTH_UNKNOWN;
	}
	if (strcmp(status, "active") != 0)
		return AUTH_SUSPENDED;
	memcpy(out->tenant_id, c.tenant_id, sizeof(out->tenant_id));
	snprintf(out->key_id, sizeof(out->key_id), "jwt:%s", c.issuer_id);
	return AUTH_OK;
}
