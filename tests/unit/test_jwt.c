/* tests/unit/test_jwt.c - gateway/jwt.c: base64url edge cases, the JOSE
 * header parser and the claim checks on hand-made JSON, whole tokens
 * signed here with HS256, RS256 and ES256 keys generated at start (the
 * valid ones and the attack catalogue), the size caps (checked to come
 * before jansson allocates anything), issuer validation, the keyring, and
 * jwt_auth()/auth_tenant() against a real SQLite database with the db/
 * issuer and tenant-status functions.
 *
 * The module's .c is included to reach its statics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "gateway/jwt.c"
#include "tests/unit/dbfix.h"

#define NOW		((int64_t)1700000000)
#define ISS		"https://idp.example"
#define AUD		"maas"
#define TENANT		"ten_0123456789abcdef01234567"
#define HS_SECRET	"0123456789abcdef0123456789abcdef-unit-test"
#define TOK_BUF		16384	/* every token built here fits */

static EVP_PKEY			*rsa_key, *ec_key;
static char			*rsa_pem, *ec_pem;
static struct jwt_keyring	*ring;
static size_t			 json_allocs;	/* jansson mallocs so far */

/* --- helpers --- */

static void *
count_malloc(size_t n)
{
	json_allocs++;
	return malloc(n);
}

static void
b64url_encode(const uint8_t *in, size_t n, char *out)
{
	static const char	 a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t			 i, o = 0;
	uint32_t		 v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
	}
	out[o] = '\0';
}

/* Appends s to the string in buf, which holds bufsz bytes. */
static void
cat(char *buf, size_t bufsz, const char *s)
{
	size_t	 n = strlen(buf), m = strlen(s);

	assert_true(n + m < bufsz);
	memcpy(buf + n, s, m + 1);
}

static char *
pem_of(EVP_PKEY *k)
{
	BIO	*b = BIO_new(BIO_s_mem());
	BUF_MEM	*bm;
	char	*s;

	assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
	BIO_get_mem_ptr(b, &bm);
	s = calloc(1, bm->length + 1);
	memcpy(s, bm->data, bm->length);
	BIO_free(b);
	return s;
}

/* "b64(header).b64(payload)" in a new buffer of TOK_BUF bytes. */
static char *
tok_input(const char *header, const char *payload)
{
	size_t	 hl = strlen(header), pl = strlen(payload);
	char	*t = calloc(1, TOK_BUF);

	assert_true(JWT_B64_LEN(hl) + JWT_B64_LEN(pl) + 2 < TOK_BUF);
	b64url_encode((const uint8_t *)header, hl, t);
	cat(t, TOK_BUF, ".");
	b64url_encode((const uint8_t *)payload, pl, t + strlen(t));
	return t;
}

/* Appends "." and the encoded signature to a TOK_BUF token. */
static void
tok_append_sig(char *t, const uint8_t *sig, size_t n)
{
	cat(t, TOK_BUF, ".");
	assert_true(strlen(t) + JWT_B64_LEN(n) < TOK_BUF);
	b64url_encode(sig, n, t + strlen(t));
}

static size_t
sign_hmac(const void *key, size_t keylen, const char *in, uint8_t *sig)
{
	unsigned int	 n = 0;

	HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)in,
	    strlen(in), sig, &n);
	return n;
}

/* RS256: PKCS#1 v1.5 signature; ES256: raw r||s. */
static size_t
sign_pkey(EVP_PKEY *k, const char *in, uint8_t *sig)
{
	EVP_MD_CTX	*md = EVP_MD_CTX_new();
	uint8_t		 der[512];
	size_t		 n = sizeof(der);
	const uint8_t	*p = der;
	ECDSA_SIG	*es;

	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k),
	    1);
	assert_int_equal(EVP_DigestSign(md, der, &n,
	    (const unsigned char *)in, strlen(in)), 1);
	EVP_MD_CTX_free(md);
	if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
		memcpy(sig, der, n);
		return n;
	}
	assert_non_null(es = d2i_ECDSA_SIG(NULL, &p, (long)n));
	BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
	ECDSA_SIG_free(es);
	return 64;
}

/* A token signed properly for alg with the fixture's key for it. */
static char *
tok_signed(enum jwt_alg alg, const char *header, const char *payload)
{
	char	*t = tok_input(header, payload);
	uint8_t	 sig[1024];
	size_t	 n;

	if (alg == JWT_ALG_HS256)
		n = sign_hmac(HS_SECRET, strlen(HS_SECRET), t, sig);
	else
		n = sign_pkey(alg == JWT_ALG_RS256 ? rsa_key : ec_key, t, sig);
	tok_append_sig(t, sig, n);
	return t;
}

static char *
payload_exp(int64_t exp)
{
	char	*p;

	assert_true(asprintf(&p, "{\"tenant\":\"" TENANT "\",\"iss\":\"" ISS
	    "\",\"aud\":\"" AUD "\",\"exp\":%lld}", (long long)exp) > 0);
	return p;
}

static enum jwt_status
verify(const char *t)
{
	struct jwt_claims	c;

	return jwt_verify(ring, t, strlen(t), NOW, &c);
}

static enum jwt_status
verify_signed(enum jwt_alg alg, const char *header, const char *payload)
{
	char		*t = tok_signed(alg, header, payload);
	enum jwt_status	 st = verify(t);

	free(t);
	return st;
}

static void
ring_add(struct jwt_keyring *r, const char *id, const char *kid,
    const char *alg, const char *key)
{
	struct jwt_issuer	 in = {
		.id = id, .kid = kid, .alg = alg, .key = key,
		.key_len = strlen(key), .iss = ISS, .aud = AUD,
		.tenant_claim = "tenant",
	};
	char			 err[256];

	if (jwt_keyring_add(r, &in, err, sizeof(err)) == -1)
		fail_msg("jwt_keyring_add: %s", err);
}

static int
group_setup(void **state)
{
	(void)state;
	json_set_alloc_funcs(count_malloc, free);
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (rsa_key == NULL || ec_key == NULL)
		return -1;
	rsa_pem = pem_of(rsa_key);
	ec_pem = pem_of(ec_key);
	ring = jwt_keyring_new();
	ring_add(ring, "iss_hs", "kh", "HS256", HS_SECRET);
	ring_add(ring, "iss_rs", "kr", "RS256", rsa_pem);
	ring_add(ring, "iss_es", "ke", "ES256", ec_pem);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	jwt_keyring_free(ring);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	free(rsa_pem);
	free(ec_pem);
	return 0;
}

/* --- base64url --- */

static void
test_b64url(void **state)
{
	uint8_t		 out[16], rnd[100], back[100];
	char		 enc[200];
	size_t		 n, len;

	(void)state;
	assert_int_equal(b64url_decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(b64url_decode("Zg", 2, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(out, "f", 1);
	assert_int_equal(b64url_decode("Zm8", 3, out, sizeof(out), &n), 0);
	assert_memory_equal(out, "fo", 2);
	assert_int_equal(b64url_decode("Zm9v", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(b64url_decode("Zm9vYg", 6, out, sizeof(out), &n), 0);
	assert_memory_equal(out, "foob", 4);
	/* The URL-safe alphabet, not the plain one. */
	assert_int_equal(b64url_decode("-_8", 3, out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0], 0xfb);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(b64url_decode("+/8", 3, out, sizeof(out), &n), -1);
	/* Lengths 1 mod 4 cannot be; padding is not allowed. */
	assert_int_equal(b64url_decode("Z", 1, out, sizeof(out), &n), -1);
	assert_int_equal(b64url_decode("Zm9vY", 5, out, sizeof(out), &n), -1);
	assert_int_equal(b64url_decode("Zg==", 4, out, sizeof(out), &n), -1);
	assert_int_equal(b64url_decode("Zm8=", 4, out, sizeof(out), &n), -1);
	/* Nonzero unused bits: a second spelling of "f" is refused. */
	assert_int_equal(b64url_decode("Zh", 2, out, sizeof(out), &n), -1);
	assert_int_equal(b64url_decode("Zm9", 3, out, sizeof(out), &n), -1);
	/* Bytes outside the alphabet, NUL and spaces included. */
	assert_int_equal(b64url_decode("Zm\0v", 4, out, sizeof(out), &n), -1);
	assert_int_equal(b64url_decode("Zm v", 4, out, sizeof(out), &n), -1);
	assert_int_equal(b64url_decode("Zm9v\n", 5, out, sizeof(out), &n),
	    -1);
	assert_int_equal(b64url_decode("Zm.v", 4, out, sizeof(out), &n), -1);
	assert_int_equal(b64url_decode("Zm\xc3\xa9", 4, out, sizeof(out),
	    &n), -1);
	/* Too big for the buffer: refused before a byte is written. */
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(b64url_decode("Zm9vYmFy", 8, out, 5, &n), -1);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xaa);
	assert_int_equal(b64url_decode("Zm9vYmFy", 8, out, 6, &n), 0);
	/* Sizes. */
	assert_int_equal(b64url_declen(0), 0);
	assert_int_equal(b64url_declen(1), SIZE_MAX);
	assert_int_equal(b64url_declen(2), 1);
	assert_int_equal(b64url_declen(3), 2);
	assert_int_equal(b64url_declen(4), 3);
	assert_int_equal(b64url_declen(JWT_B64_LEN(JWT_HEADER_MAX)),
	    JWT_HEADER_MAX);
	/* Round trips of every length up to 100 bytes. */
	for (len = 0; len <= sizeof(rnd); len++) {
		assert_int_equal(RAND_bytes(rnd, (int)sizeof(rnd)), 1);
		b64url_encode(rnd, len, enc);
		assert_int_equal(strlen(enc), JWT_B64_LEN(len));
		assert_int_equal(b64url_decode(enc, strlen(enc), back,
		    sizeof(back), &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(back, rnd, len);
	}
}

static void
test_split(void **state)
{
	size_t	 l[3];

	(void)state;
	assert_int_equal(jwt_split("a.bc.def", 8, l), 0);
	assert_int_equal(l[0], 1);
	assert_int_equal(l[1], 2);
	assert_int_equal(l[2], 3);
	assert_int_equal(jwt_split("a.b", 3, l), -1);
	assert_int_equal(jwt_split("abc", 3, l), -1);
	assert_int_equal(jwt_split("a.b.c.d", 7, l), -1);
	assert_int_equal(jwt_split("a.b.c.d.e", 9, l), -1);	/* JWE */
	assert_int_equal(jwt_split(".b.c", 4, l), -1);
	assert_int_equal(jwt_split("a..c", 4, l), -1);
	assert_int_equal(jwt_split("a.b.", 4, l), -1);
	assert_int_equal(jwt_split("", 0, l), -1);
	/* len bounds the search, not a NUL. */
	assert_int_equal(jwt_split("a.b.c.d", 5, l), 0);
}

/* --- the JOSE header --- */

static enum jwt_status
hp(const char *json, struct jwt_header *h)
{
	return jwt_header_parse((const uint8_t *)json, strlen(json), h);
}

static void
test_header(void **state)
{
	struct jwt_header	 h;
	char			 buf[512];
	size_t			 i;

	(void)state;
	assert_int_equal(hp("{\"alg\":\"HS256\",\"kid\":\"k1\"}", &h), JWT_OK);
	assert_string_equal(h.alg, "HS256");
	assert_string_equal(h.kid, "k1");
	assert_int_equal(hp("{\"typ\":\"JWT\",\"kid\":\"k\",\"alg\":\"ES256\"}",
	    &h), JWT_OK);
	assert_int_equal(hp("{\"typ\":1,\"kid\":\"k\",\"alg\":\"ES256\"}", &h),
	    JWT_MALFORMED);
	/* alg missing or not a string */
	assert_int_equal(hp("{\"kid\":\"k\"}", &h), JWT_MALFORMED);
	assert_int_equal(hp("{\"alg\":null,\"kid\":\"k\"}", &h),
	    JWT_MALFORMED);
	assert_int_equal(hp("{\"alg\":[\"HS256\"],\"kid\":\"k\"}", &h),
	    JWT_MALFORMED);
	/* alg that cannot be one of ours */
	assert_int_equal(hp("{\"alg\":\"\",\"kid\":\"k\"}", &h),
	    JWT_ALG_MISMATCH);
	assert_int_equal(hp("{\"alg\":\"HS256HS256HS256HS256\",\"kid\":\"k\"}",
	    &h), JWT_ALG_MISMATCH);
	/* kid: required, a string, at most JWT_KID_MAX */
	assert_int_equal(hp("{\"alg\":\"HS256\"}", &h), JWT_UNKNOWN_KID);
	assert_int_equal(hp("{\"alg\":\"HS256\",\"kid\":\"\"}", &h),
	    JWT_UNKNOWN_KID);
	assert_int_equal(hp("{\"alg\":\"HS256\",\"kid\":7}", &h),
	    JWT_UNKNOWN_KID);
	snprintf(buf, sizeof(buf), "{\"alg\":\"HS256\",\"kid\":\"%0*d\"}",
	    JWT_KID_MAX + 1, 0);
	assert_int_equal(hp(buf, &h), JWT_UNKNOWN_KID);
	snprintf(buf, sizeof(buf), "{\"alg\":\"HS256\",\"kid\":\"%0*d\"}",
	    JWT_KID_MAX, 0);
	assert_int_equal(hp(buf, &h), JWT_OK);
	assert_int_equal(strlen(h.kid), JWT_KID_MAX);
	/* \u0000 is refused by jansson without JSON_ALLOW_NUL. */
	assert_int_not_equal(hp("{\"alg\":\"HS256\",\"kid\":\"a\\u0000b\"}",
	    &h), JWT_OK);
	assert_int_not_equal(hp("{\"alg\":\"HS256\\u0000\",\"kid\":\"k\"}", &h),
	    JWT_OK);
	/* Header parameters that pick or carry a key, or demand things. */
	for (i = 0; i < sizeof(jwt_forbidden_params) /
	    sizeof(jwt_forbidden_params[0]); i++) {
		snprintf(buf, sizeof(buf), "{\"alg\":\"HS256\",\"kid\":\"k\","
		    "\"%s\":null}", jwt_forbidden_params[i]);
		assert_int_equal(hp(buf, &h), JWT_FORBIDDEN_HEADER);
	}
	assert_int_equal(hp("{\"alg\":\"RS256\",\"kid\":\"k\",\"jku\":"
	    "\"https://evil.example/jwks.json\"}", &h), JWT_FORBIDDEN_HEADER);
	assert_int_equal(hp("{\"alg\":\"RS256\",\"kid\":\"k\","
	    "\"crit\":[\"b64\"],\"b64\":false}", &h), JWT_FORBIDDEN_HEADER);
	/* Duplicate keys: one parser's alg must not be another's. */
	assert_int_equal(hp("{\"alg\":\"HS256\",\"alg\":\"none\","
	    "\"kid\":\"k\"}", &h), JWT_MALFORMED);
	assert_int_equal(hp("{\"alg\":\"HS256\",\"kid\":\"a\",\"kid\":\"b\"}",
	    &h), JWT_MALFORMED);
	/* Not an object, or not JSON at all. */
	assert_int_equal(hp("[]", &h), JWT_MALFORMED);
	assert_int_equal(hp("\"x\"", &h), JWT_MALFORMED);
	assert_int_equal(hp("", &h), JWT_MALFORMED);
	assert_int_equal(hp("{", &h), JWT_MALFORMED);
	assert_int_equal(hp("{\"alg\":\"HS256\",\"kid\":\"k\"} x", &h),
	    JWT_MALFORMED);
	assert_int_equal(jwt_header_parse((const uint8_t *)"{\"alg\":\"HS256\","
	    "\"kid\":\"k\"}\0", 27, &h), JWT_MALFORMED);
}

/* --- claims --- */

static enum jwt_status
cc(const char *json)
{
	const struct jwt_key	*k = jwt_keyring_find(ring, "kh");
	struct jwt_claims	 c;

	assert_non_null(k);
	return jwt_claims_check(k, (const uint8_t *)json, strlen(json), NOW,
	    &c);
}

/* The claims with one member replaced: field is e.g. "\"exp\":1" or "". */
static enum jwt_status
cc_with(const char *tenant, const char *iss, const char *aud,
    const char *exp, const char *extra)
{
	char	 buf[2048];

	snprintf(buf, sizeof(buf), "{%s%s%s%s%s%s%s%s%s}",
	    tenant, *tenant && (*iss || *aud || *exp || *extra) ? "," : "",
	    iss, *iss && (*aud || *exp || *extra) ? "," : "",
	    aud, *aud && (*exp || *extra) ? "," : "",
	    exp, *exp && *extra ? "," : "", extra);
	return cc(buf);
}

#define T_OK	"\"tenant\":\"" TENANT "\""
#define I_OK	"\"iss\":\"" ISS "\""
#define A_OK	"\"aud\":\"" AUD "\""
#define E_OK	"\"exp\":1700000100"

static void
test_claims(void **state)
{
	const struct jwt_key	*k = jwt_keyring_find(ring, "kh");
	struct jwt_claims	 c;
	const char		*ok = "{" T_OK "," I_OK "," A_OK "," E_OK "}";
	char			 buf[1024], aud[600];

	(void)state;
	assert_int_equal(jwt_claims_check(k, (const uint8_t *)ok, strlen(ok),
	    NOW, &c), JWT_OK);
	assert_string_equal(c.tenant_id, TENANT);
	assert_string_equal(c.issuer_id, "iss_hs");
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, E_OK, ""), JWT_OK);

	/* exp: required, an integer, not a string, a real or a boolean */
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "", ""), JWT_BAD_CLAIMS);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":\"1700000100\"",
	    ""), JWT_BAD_CLAIMS);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":1700000100.0", ""),
	    JWT_BAD_CLAIMS);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":1.7000001e9", ""),
	    JWT_BAD_CLAIMS);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":1e300", ""),
	    JWT_BAD_CLAIMS);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":true", ""),
	    JWT_BAD_CLAIMS);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":null", ""),
	    JWT_BAD_CLAIMS);
	/* beyond int64: jansson refuses the document */
	assert_int_equal(cc_with(T_OK, I_OK, A_OK,
	    "\"exp\":99999999999999999999999", ""), JWT_MALFORMED);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK,
	    "\"exp\":9223372036854775807", ""), JWT_OK);
	/* exp with 60 s of skew */
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":1699999940", ""),
	    JWT_EXPIRED);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":1699999941", ""),
	    JWT_OK);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, "\"exp\":0", ""),
	    JWT_EXPIRED);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK,
	    "\"exp\":-9223372036854775807", ""), JWT_EXPIRED);
	/* nbf: optional, an integer, at most 60 s ahead */
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, E_OK, "\"nbf\":1700000060"),
	    JWT_OK);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, E_OK, "\"nbf\":1700000061"),
	    JWT_NOT_YET_VALID);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, E_OK,
	    "\"nbf\":9223372036854775807"), JWT_NOT_YET_VALID);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, E_OK, "\"nbf\":\"0\""),
	    JWT_BAD_CLAIMS);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, E_OK, "\"nbf\":1.5"),
	    JWT_BAD_CLAIMS);
	assert_int_equal(cc_with(T_OK, I_OK, A_OK, E_OK, "\"nbf\":null"),
	    JWT_BAD_CLAIMS);
	/* iss: exactly ours */
	assert_int_equal(cc_with(T_OK, "", A_OK, E_OK, ""), JWT_WRONG_ISSUER);
	assert_int_equal(cc_with(T_OK, "\"iss\":\"https://evil.example\"", A_OK,
	    E_OK, ""), JWT_WRONG_ISSUER);
	assert_int_equal(cc_with(T_OK, "\"iss\":\"" ISS "/\"", A_OK, E_OK, ""),
	    JWT_WRONG_ISSUER);
	assert_int_equal(cc_with(T_OK, "\"iss\":\"https://idp.exampl\"", A_OK,
	    E_OK, ""), JWT_WRONG_ISSUER);
	assert_int_equal(cc_with(T_OK, "\"iss\":[\"" ISS "\"]", A_OK, E_OK,
	    ""), JWT_WRONG_ISSUER);
	/* aud: ours, or an array of strings holding ours */
	assert_int_equal(cc_with(T_OK, I_OK, "", E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	assert_int_equal(cc_with(T_OK, I_OK, "\"aud\":\"maas2\"", E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	assert_int_equal(cc_with(T_OK, I_OK, "\"aud\":\"MAAS\"", E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	assert_int_equal(cc_with(T_OK, I_OK, "\"aud\":[\"x\",\"maas\"]", E_OK,
	    ""), JWT_OK);
	assert_int_equal(cc_with(T_OK, I_OK, "\"aud\":[\"x\"]", E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	assert_int_equal(cc_with(T_OK, I_OK, "\"aud\":[]", E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	assert_int_equal(cc_with(T_OK, I_OK, "\"aud\":[\"maas\",1]", E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	assert_int_equal(cc_with(T_OK, I_OK, "\"aud\":{\"maas\":1}", E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	assert_int_equal(cc_with(T_OK, I_OK, "\"aud\":null", E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	/* more than JWT_AUD_MAX entries */
	snprintf(aud, sizeof(aud), "\"aud\":[");
	for (int i = 0; i < JWT_AUD_MAX; i++)
		cat(aud, sizeof(aud), "\"x\",");
	cat(aud, sizeof(aud), "\"maas\"]");
	assert_int_equal(cc_with(T_OK, I_OK, aud, E_OK, ""),
	    JWT_WRONG_AUDIENCE);
	/* the tenant claim: a short string of id characters */
	assert_int_equal(cc_with("", I_OK, A_OK, E_OK, ""), JWT_NO_TENANT);
	assert_int_equal(cc_with("\"tenant\":5", I_OK, A_OK, E_OK, ""),
	    JWT_NO_TENANT);
	assert_int_equal(cc_with("\"tenant\":\"\"", I_OK, A_OK, E_OK, ""),
	    JWT_NO_TENANT);
	assert_int_equal(cc_with("\"tenant\":\"ten/../x\"", I_OK, A_OK, E_OK,
	    ""), JWT_NO_TENANT);
	assert_int_equal(cc_with("\"tenant\":\"ten x\"", I_OK, A_OK, E_OK,
	    ""), JWT_NO_TENANT);
	assert_int_equal(cc_with("\"sub\":\"" TENANT "\"", I_OK, A_OK, E_OK,
	    ""), JWT_NO_TENANT);
	snprintf(buf, sizeof(buf), "\"tenant\":\"%0*d\"", JWT_TENANT_MAX, 0);
	assert_int_equal(cc_with(buf, I_OK, A_OK, E_OK, ""), JWT_OK);
	snprintf(buf, sizeof(buf), "\"tenant\":\"%0*d\"", JWT_TENANT_MAX + 1,
	    0);
	assert_int_equal(cc_with(buf, I_OK, A_OK, E_OK, ""), JWT_NO_TENANT);
	/* not an object; duplicate claims */
	assert_int_equal(cc("[1]"), JWT_MALFORMED);
	assert_int_equal(cc("{" T_OK "," I_OK "," A_OK "," E_OK
	    ",\"exp\":9999999999}"), JWT_MALFORMED);
	assert_int_equal(cc("{" T_OK "," I_OK "," A_OK "," E_OK
	    ",\"tenant\":\"ten_other\"}"), JWT_MALFORMED);
}

/* --- whole tokens --- */

static void
test_verify_valid(void **state)
{
	struct jwt_claims	 c;
	char			*p = payload_exp(NOW + 100), *t;

	(void)state;
	t = tok_signed(JWT_ALG_HS256, "{\"alg\":\"HS256\",\"kid\":\"kh\","
	    "\"typ\":\"JWT\"}", p);
	assert_int_equal(jwt_verify(ring, t, strlen(t), NOW, &c), JWT_OK);
	assert_string_equal(c.tenant_id, TENANT);
	assert_string_equal(c.issuer_id, "iss_hs");
	/* Too late by the skew: the same token. */
	assert_int_equal(jwt_verify(ring, t, strlen(t), NOW + 160, &c),
	    JWT_EXPIRED);
	assert_string_equal(c.tenant_id, "");
	free(t);
	t = tok_signed(JWT_ALG_RS256, "{\"alg\":\"RS256\",\"kid\":\"kr\"}", p);
	assert_int_equal(jwt_verify(ring, t, strlen(t), NOW, &c), JWT_OK);
	assert_string_equal(c.issuer_id, "iss_rs");
	free(t);
	t = tok_signed(JWT_ALG_ES256, "{\"alg\":\"ES256\",\"kid\":\"ke\"}", p);
	assert_int_equal(jwt_verify(ring, t, strlen(t), NOW, &c), JWT_OK);
	assert_string_equal(c.issuer_id, "iss_es");
	/* The length is what counts, not a terminating NUL. */
	t[strlen(t) - 1] ^= 1;
	assert_int_not_equal(jwt_verify(ring, t, strlen(t), NOW, &c), JWT_OK);
	free(t);
	free(p);
}

static void
test_verify_attacks(void **state)
{
	static const char *const nones[] = { "none", "None", "NONE", "nOnE" };
	static const char *const kids[] = { "kh", "kr", "ke" };
	char			*p = payload_exp(NOW + 100), *t, *u, hdr[256];
	uint8_t			 sig[600];
	size_t			 n, i, j;

	(void)state;
	/* alg none, in every spelling, with and without a signature. */
	for (i = 0; i < 4; i++)
		for (j = 0; j < 3; j++) {
			snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":"
			    "\"%s\"}", nones[i], kids[j]);
			t = tok_input(hdr, p);
			cat(t, TOK_BUF, ".");
			assert_int_equal(verify(t), JWT_MALFORMED);
			cat(t, TOK_BUF, "AAAA");
			assert_int_equal(verify(t), JWT_ALG_MISMATCH);
			free(t);
		}
	/* HS256 with the RSA and EC public key PEMs as HMAC secrets. */
	t = tok_input("{\"alg\":\"HS256\",\"kid\":\"kr\"}", p);
	n = sign_hmac(rsa_pem, strlen(rsa_pem), t, sig);
	tok_append_sig(t, sig, n);
	assert_int_equal(verify(t), JWT_ALG_MISMATCH);
	free(t);
	t = tok_input("{\"alg\":\"HS256\",\"kid\":\"ke\"}", p);
	n = sign_hmac(ec_pem, strlen(ec_pem), t, sig);
	tok_append_sig(t, sig, n);
	assert_int_equal(verify(t), JWT_ALG_MISMATCH);
	free(t);
	/* An alg of the same family is still not the pinned one. */
	assert_int_equal(verify_signed(JWT_ALG_HS256,
	    "{\"alg\":\"HS512\",\"kid\":\"kh\"}", p), JWT_ALG_MISMATCH);
	assert_int_equal(verify_signed(JWT_ALG_HS256,
	    "{\"alg\":\"hs256\",\"kid\":\"kh\"}", p), JWT_ALG_MISMATCH);
	assert_int_equal(verify_signed(JWT_ALG_RS256,
	    "{\"alg\":\"PS256\",\"kid\":\"kr\"}", p), JWT_ALG_MISMATCH);
	/* Right alg, other key: signed with RSA, presented as the EC kid. */
	assert_int_equal(verify_signed(JWT_ALG_RS256,
	    "{\"alg\":\"ES256\",\"kid\":\"ke\"}", p), JWT_BAD_SIGNATURE);
	/* Stripped signature, truncated, flipped, with padding. */
	t = tok_signed(JWT_ALG_RS256, "{\"alg\":\"RS256\",\"kid\":\"kr\"}", p);
	u = strdup(t);
	*(strrchr(u, '.') + 1) = '\0';
	assert_int_equal(verify(u), JWT_MALFORMED);
	*strrchr(u, '.') = '\0';
	assert_int_equal(verify(u), JWT_MALFORMED);
	free(u);
	u = tok_input("{\"alg\":\"RS256\",\"kid\":\"kr\"}", p);
	n = sign_pkey(rsa_key, u, sig);
	tok_append_sig(u, sig, n - 1);		/* one byte short */
	assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
	free(u);
	u = strdup(t);
	u[strlen(u) - 5] = u[strlen(u) - 5] == 'A' ? 'B' : 'A';
	assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
	free(u);
	assert_true(asprintf(&u, "%s==", t) > 0);
	assert_int_equal(verify(u), JWT_MALFORMED);
	free(u);
	assert_true(asprintf(&u, "%s ", t) > 0);
	assert_int_equal(verify(u), JWT_MALFORMED);
	free(u);
	assert_true(asprintf(&u, "%s.", t) > 0);
	assert_int_equal(verify(u), JWT_MALFORMED);
	free(u);
	free(t);
	/* The payload changed after signing. */
	t = tok_signed(JWT_ALG_HS256, "{\"alg\":\"HS256\",\"kid\":\"kh\"}", p);
	u = tok_input("{\"alg\":\"HS256\",\"kid\":\"kh\"}",
	    "{\"tenant\":\"ten_other\",\"iss\":\"" ISS "\",\"aud\":\"" AUD
	    "\",\"exp\":1700000100}");
	cat(u, TOK_BUF, strrchr(t, '.'));
	assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
	free(u);
	free(t);
	/* ES256 with r = s = 0, r or s = 0, r or s = n, the wrong length,
	 * and a DER signature where raw r||s belongs. */
	t = tok_input("{\"alg\":\"ES256\",\"kid\":\"ke\"}", p);
	n = sign_pkey(ec_key, t, sig);
	u = calloc(1, TOK_BUF);
	memset(sig + 64, 0, 64);
	snprintf(u, TOK_BUF, "%s", t);
	tok_append_sig(u, sig + 64, 64);
	assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
	{
		uint8_t	 bad[65];

		memcpy(bad, sig, 64);
		memset(bad, 0, 32);
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, bad, 64);
		assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
		memcpy(bad, sig, 64);
		memset(bad + 32, 0, 32);
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, bad, 64);
		assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
		memcpy(bad, jwt_p256_order, 32);
		memcpy(bad + 32, sig + 32, 32);
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, bad, 64);
		assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
		memcpy(bad, sig, 32);
		memcpy(bad + 32, jwt_p256_order, 32);
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, bad, 64);
		assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
		memset(bad, 0xff, 64);
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, bad, 64);
		assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
		memcpy(bad, sig, 64);
		bad[64] = 0;
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, bad, 65);
		assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, sig, 63);
		assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
		/* and the genuine one, to show the others failed for their
		 * own reason */
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, sig, n);
		assert_int_equal(verify(u), JWT_OK);
	}
	{
		ECDSA_SIG	*es = ECDSA_SIG_new();
		uint8_t		 der[80], *dp = der;
		int		 dl;

		ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL),
		    BN_bin2bn(sig + 32, 32, NULL));
		dl = i2d_ECDSA_SIG(es, &dp);
		ECDSA_SIG_free(es);
		snprintf(u, TOK_BUF, "%s", t);
		tok_append_sig(u, der, (size_t)dl);
		assert_int_equal(verify(u), JWT_BAD_SIGNATURE);
	}
	free(u);
	free(t);
	/* Unknown kids, path traversal included: no file is ever opened. */
	assert_int_equal(verify_signed(JWT_ALG_HS256,
	    "{\"alg\":\"HS256\",\"kid\":\"nope\"}", p), JWT_UNKNOWN_KID);
	assert_int_equal(verify_signed(JWT_ALG_HS256,
	    "{\"alg\":\"HS256\",\"kid\":\"../../../../dev/null\"}", p),
	    JWT_UNKNOWN_KID);
	assert_int_equal(verify_signed(JWT_ALG_HS256,
	    "{\"alg\":\"HS256\",\"kid\":\"KH\"}", p), JWT_UNKNOWN_KID);
	assert_int_equal(verify_signed(JWT_ALG_HS256,
	    "{\"alg\":\"HS256\",\"kid\":\"kh \"}", p), JWT_UNKNOWN_KID);
	/* A properly signed token that carries its own key. */
	assert_int_equal(verify_signed(JWT_ALG_HS256,
	    "{\"alg\":\"HS256\",\"kid\":\"kh\",\"jwk\":{\"kty\":\"oct\","
	    "\"k\":\"AAAA\"}}", p), JWT_FORBIDDEN_HEADER);
	assert_int_equal(verify_signed(JWT_ALG_RS256,
	    "{\"alg\":\"RS256\",\"kid\":\"kr\",\"x5u\":\"file:///etc/passwd\"}",
	    p), JWT_FORBIDDEN_HEADER);
	/* Claims are checked on a verified token too. */
	free(p);
	p = payload_exp(NOW - 3600);
	assert_int_equal(verify_signed(JWT_ALG_ES256,
	    "{\"alg\":\"ES256\",\"kid\":\"ke\"}", p), JWT_EXPIRED);
	assert_int_equal(verify_signed(JWT_ALG_ES256,
	    "{\"alg\":\"ES256\",\"kid\":\"ke\"}", "{\"tenant\":\"" TENANT
	    "\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}"), JWT_BAD_CLAIMS);
	/* A removed key verifies nothing, at once. */
	free(p);
	p = payload_exp(NOW + 100);
	t = tok_signed(JWT_ALG_HS256, "{\"alg\":\"HS256\",\"kid\":\"kh\"}", p);
	assert_int_equal(verify(t), JWT_OK);
	assert_true(jwt_keyring_remove(ring, "iss_hs"));
	assert_int_equal(verify(t), JWT_UNKNOWN_KID);
	ring_add(ring, "iss_hs", "kh", "HS256", HS_SECRET);
	assert_int_equal(verify(t), JWT_OK);
	free(t);
	free(p);
}

/* Oversized tokens and segments: refused before jansson allocates. */
static void
test_verify_sizes(void **state)
{
	struct jwt_claims	 c;
	char			*t;
	size_t			 n, before;

	(void)state;
	t = malloc(12 << 20);
	memset(t, 'A', 12 << 20);
	before = json_allocs;
	assert_int_equal(jwt_verify(ring, t, 12 << 20, NOW, &c),
	    JWT_TOO_LARGE);
	assert_int_equal(jwt_verify(ring, t, JWT_TOKEN_MAX + 1, NOW, &c),
	    JWT_TOO_LARGE);
	/* A header segment just over its cap, the rest tiny. */
	n = JWT_B64_LEN(JWT_HEADER_MAX) + 1;
	memcpy(t + n, ".e30.AAAA", 9);
	assert_int_equal(jwt_verify(ring, t, n + 9, NOW, &c), JWT_TOO_LARGE);
	/* Payload and signature segments over theirs. */
	memset(t, 'A', 12 << 20);
	memcpy(t, "e30.", 4);
	n = JWT_B64_LEN(JWT_PAYLOAD_MAX) + 1;
	memcpy(t + 4 + n, ".AAAA", 5);
	assert_int_equal(jwt_verify(ring, t, 4 + n + 5, NOW, &c),
	    JWT_TOO_LARGE);
	memset(t, 'A', 12 << 20);
	memcpy(t, "e30.e30.", 8);
	n = JWT_B64_LEN(JWT_SIG_MAX) + 1;
	assert_int_equal(jwt_verify(ring, t, 8 + n, NOW, &c), JWT_TOO_LARGE);
	assert_int_equal(json_allocs, before);
	/* At the cap the header is decoded (and is not JSON). */
	n = JWT_B64_LEN(JWT_HEADER_MAX);
	memset(t, 'A', n);
	memcpy(t + n, ".e30.AAAA", 9);
	assert_int_equal(jwt_verify(ring, t, n + 9, NOW, &c), JWT_MALFORMED);
	free(t);
}

/* --- issuers and the keyring --- */

static const char *
check(const char *kid, const char *alg, const char *key, size_t keylen,
    const char *iss, const char *aud, const char *claim)
{
	struct jwt_issuer	 in = {
		.kid = kid, .alg = alg, .key = key, .key_len = keylen,
		.iss = iss, .aud = aud, .tenant_claim = claim,
	};
	static char		 err[256];
	const char		*field;
	char			 fp[JWT_FP_LEN + 1], *pem;

	if (jwt_issuer_check(&in, fp, &pem, &field, err, sizeof(err)) == 0) {
		free(pem);
		return "ok";
	}
	assert_true(err[0] != '\0');
	assert_non_null(field);
	return field;
}

static size_t
slen(const char *s)
{
	return s != NULL ? strlen(s) : 0;
}

#define CHK(kid, alg, key, iss, aud, claim) \
	check(kid, alg, key, slen(key), iss, aud, claim)

static void
test_issuer_check(void **state)
{
	struct jwt_issuer	 in = {
		.kid = "k", .alg = "RS256", .iss = ISS, .aud = AUD,
		.tenant_claim = "sub",
	};
	EVP_PKEY		*k;
	char			*pem, *out, fp[JWT_FP_LEN + 1], err[256];
	char			 longkid[JWT_KID_MAX + 2], hex[80];
	const char		*field;
	uint8_t			*der = NULL, d[32];
	int			 n;

	(void)state;
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, AUD, "sub"),
	    "ok");
	assert_string_equal(CHK("k", "RS256", rsa_pem, ISS, AUD, "tenant"),
	    "ok");
	assert_string_equal(CHK("k", "ES256", ec_pem, ISS, AUD, "tenant"),
	    "ok");
	/* kid */
	assert_string_equal(CHK("", "HS256", HS_SECRET, ISS, AUD, "sub"),
	    "kid");
	assert_string_equal(CHK(NULL, "HS256", HS_SECRET, ISS, AUD, "sub"),
	    "kid");
	assert_string_equal(CHK("../../../../dev/null", "HS256", HS_SECRET,
	    ISS, AUD, "sub"), "kid");
	assert_string_equal(CHK("a b", "HS256", HS_SECRET, ISS, AUD, "sub"),
	    "kid");
	memset(longkid, 'k', sizeof(longkid));
	longkid[JWT_KID_MAX + 1] = '\0';
	assert_string_equal(CHK(longkid, "HS256", HS_SECRET, ISS, AUD, "sub"),
	    "kid");
	longkid[JWT_KID_MAX] = '\0';
	assert_string_equal(CHK(longkid, "HS256", HS_SECRET, ISS, AUD, "sub"),
	    "ok");
	assert_string_equal(CHK("2024-01_a.b:c~d+e=", "HS256", HS_SECRET, ISS,
	    AUD, "sub"), "ok");
	/* alg */
	assert_string_equal(CHK("k", "none", HS_SECRET, ISS, AUD, "sub"),
	    "alg");
	assert_string_equal(CHK("k", "hs256", HS_SECRET, ISS, AUD, "sub"),
	    "alg");
	assert_string_equal(CHK("k", "HS512", HS_SECRET, ISS, AUD, "sub"),
	    "alg");
	assert_string_equal(CHK("k", NULL, HS_SECRET, ISS, AUD, "sub"), "alg");
	/* iss, aud */
	assert_string_equal(CHK("k", "HS256", HS_SECRET, "", AUD, "sub"),
	    "iss");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, NULL, AUD, "sub"),
	    "iss");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, "a\nb", AUD, "sub"),
	    "iss");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, "", "sub"),
	    "aud");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, NULL, "sub"),
	    "aud");
	/* tenant_claim */
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, AUD, "exp"),
	    "tenant_claim");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, AUD, "iss"),
	    "tenant_claim");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, AUD, "a b"),
	    "tenant_claim");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, AUD, ""),
	    "tenant_claim");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, AUD,
	    "https://example.com/claims:tenant"), "tenant_claim");
	assert_string_equal(CHK("k", "HS256", HS_SECRET, ISS, AUD,
	    "example.com:tenant_id"), "ok");
	/* HMAC secrets: at least 32 bytes, no NUL */
	assert_string_equal(CHK("k", "HS256", "0123456789abcdef0123456789abcde",
	    ISS, AUD, "sub"), "key");
	assert_string_equal(CHK("k", "HS256",
	    "0123456789abcdef0123456789abcdef", ISS, AUD, "sub"), "ok");
	assert_string_equal(check("k", "HS256", "0123456789abcdef\0"
	    "123456789abcdef0", 33, ISS, AUD, "sub"), "key");
	assert_string_equal(CHK("k", "HS256", NULL, ISS, AUD, "sub"), "key");
	/* public keys: the type, the size, and nothing private */
	assert_string_equal(CHK("k", "RS256", ec_pem, ISS, AUD, "sub"), "key");
	assert_string_equal(CHK("k", "ES256", rsa_pem, ISS, AUD, "sub"), "key");
	assert_string_equal(CHK("k", "RS256", HS_SECRET, ISS, AUD, "sub"),
	    "key");
	assert_string_equal(CHK("k", "RS256", "", ISS, AUD, "sub"), "key");
	assert_string_equal(CHK("k", "RS256", "-----BEGIN PUBLIC KEY-----\n"
	    "AAAA\n-----END PUBLIC KEY-----\n", ISS, AUD, "sub"), "key");
	k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	pem = pem_of(k);
	assert_string_equal(CHK("k", "RS256", pem, ISS, AUD, "sub"), "key");
	free(pem);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	pem = pem_of(k);
	assert_string_equal(CHK("k", "ES256", pem, ISS, AUD, "sub"), "key");
	free(pem);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
	pem = pem_of(k);
	assert_string_equal(CHK("k", "ES256", pem, ISS, AUD, "sub"), "key");
	free(pem);
	EVP_PKEY_free(k);
	{
		/* An RSA "key" whose n is prime: anyone knows phi(n) = n - 1
		 * and could sign.  Only the full check sees it. */
		OSSL_PARAM_BLD	*pb = OSSL_PARAM_BLD_new();
		OSSL_PARAM	*params;
		EVP_PKEY_CTX	*pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA",
				    NULL);
		BIGNUM		*pn = BN_new(), *pe = BN_new();

		assert_int_equal(BN_generate_prime_ex(pn, 2048, 0, NULL, NULL,
		    NULL), 1);
		BN_set_word(pe, 65537);
		OSSL_PARAM_BLD_push_BN(pb, OSSL_PKEY_PARAM_RSA_N, pn);
		OSSL_PARAM_BLD_push_BN(pb, OSSL_PKEY_PARAM_RSA_E, pe);
		params = OSSL_PARAM_BLD_to_param(pb);
		k = NULL;
		assert_int_equal(EVP_PKEY_fromdata_init(pc), 1);
		assert_int_equal(EVP_PKEY_fromdata(pc, &k, EVP_PKEY_PUBLIC_KEY,
		    params), 1);
		pem = pem_of(k);
		assert_string_equal(CHK("k", "RS256", pem, ISS, AUD, "sub"),
		    "key");
		in.key = pem;
		in.key_len = strlen(pem);
		in.id = "iss_prime";
		{
			struct jwt_keyring	*r = jwt_keyring_new();

			/* a stored key is trusted to have been checked */
			assert_int_equal(jwt_keyring_add(r, &in, err,
			    sizeof(err)), 0);
			jwt_keyring_free(r);
		}
		in.id = NULL;
		free(pem);
		EVP_PKEY_free(k);
		OSSL_PARAM_free(params);
		OSSL_PARAM_BLD_free(pb);
		EVP_PKEY_CTX_free(pc);
		BN_free(pn);
		BN_free(pe);
	}
	{
		BIO	*b = BIO_new(BIO_s_mem());
		BUF_MEM	*bm;

		PEM_write_bio_PrivateKey(b, ec_key, NULL, NULL, 0, NULL, NULL);
		PEM_write_bio_PUBKEY(b, ec_key);
		BIO_get_mem_ptr(b, &bm);
		assert_string_equal(check("k", "ES256", bm->data, bm->length,
		    ISS, AUD, "sub"), "key");
		BIO_free(b);
	}
	/* The stored PEM is canonical, and the fingerprint is the SHA-256
	 * of the DER public key, whatever surrounded the paste. */
	assert_true(asprintf(&pem, "comment before\n%s\ntrailing",
	    rsa_pem) > 0);
	in.key = pem;
	in.key_len = strlen(pem);
	assert_int_equal(jwt_issuer_check(&in, fp, &out, &field, err,
	    sizeof(err)), 0);
	assert_string_equal(out, rsa_pem);
	n = i2d_PUBKEY(rsa_key, &der);
	SHA256(der, (size_t)n, d);
	OPENSSL_free(der);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	assert_memory_equal(fp, "sha256:", 7);
	assert_string_equal(fp + 7, hex);
	assert_int_equal(jwt_key_fingerprint(JWT_ALG_RS256, rsa_pem,
	    strlen(rsa_pem), fp), 0);
	assert_string_equal(fp + 7, hex);
	free(out);
	free(pem);
	/* HMAC: the SHA-256 of the secret; no PEM */
	in.alg = "HS256";
	in.key = HS_SECRET;
	in.key_len = strlen(HS_SECRET);
	assert_int_equal(jwt_issuer_check(&in, fp, &out, &field, err,
	    sizeof(err)), 0);
	assert_null(out);
	SHA256((const uint8_t *)HS_SECRET, strlen(HS_SECRET), d);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	assert_string_equal(fp + 7, hex);
}

static void
test_keyring(void **state)
{
	struct jwt_keyring	*r = jwt_keyring_new();
	struct jwt_issuer	 in = {
		.id = "iss_a", .kid = "k", .alg = "HS256", .key = HS_SECRET,
		.key_len = strlen(HS_SECRET), .iss = ISS, .aud = AUD,
		.tenant_claim = "sub",
	};
	char			 err[256], id[32], kid[32];

	(void)state;
	assert_int_equal(jwt_keyring_add(r, &in, err, sizeof(err)), 0);
	assert_int_equal(jwt_keyring_count(r), 1);
	/* one kid, one key */
	in.id = "iss_b";
	assert_int_equal(jwt_keyring_add(r, &in, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "iss_a"));
	/* same id: replaced */
	in.id = "iss_a";
	in.kid = "k2";
	assert_int_equal(jwt_keyring_add(r, &in, err, sizeof(err)), 0);
	assert_int_equal(jwt_keyring_count(r), 1);
	assert_null(jwt_keyring_find(r, "k"));
	assert_non_null(jwt_keyring_find(r, "k2"));
	/* no id, bad key: refused, nothing changes */
	in.id = NULL;
	in.kid = "k3";
	assert_int_equal(jwt_keyring_add(r, &in, err, sizeof(err)), -1);
	in.id = "iss_c";
	in.key_len = 8;
	assert_int_equal(jwt_keyring_add(r, &in, err, sizeof(err)), -1);
	assert_int_equal(jwt_keyring_count(r), 1);
	assert_true(jwt_keyring_remove(r, "iss_a"));
	assert_false(jwt_keyring_remove(r, "iss_a"));
	assert_int_equal(jwt_keyring_count(r), 0);
	/* at most JWT_ISSUERS_MAX */
	in.key_len = strlen(HS_SECRET);
	in.id = id;
	in.kid = kid;
	for (int i = 0; i < JWT_ISSUERS_MAX; i++) {
		snprintf(id, sizeof(id), "iss_%d", i);
		snprintf(kid, sizeof(kid), "k%d", i);
		assert_int_equal(jwt_keyring_add(r, &in, err, sizeof(err)), 0);
	}
	snprintf(id, sizeof(id), "iss_x");
	snprintf(kid, sizeof(kid), "kx");
	assert_int_equal(jwt_keyring_add(r, &in, err, sizeof(err)), -1);
	snprintf(id, sizeof(id), "iss_7");
	assert_int_equal(jwt_keyring_add(r, &in, err, sizeof(err)), 0);
	assert_int_equal(jwt_keyring_count(r), JWT_ISSUERS_MAX);
	jwt_keyring_free(r);
	jwt_keyring_free(NULL);
}

/* --- with the database --- */

static int
db_setup(void **state)
{
	*state = dbfix_open("jwt");
	return 0;
}

static int
db_teardown(void **state)
{
	jwt_shared_release();
	dbfix_close(*state);
	return 0;
}

/* "Bearer " + an HS256 token for kid with the given claims. */
static char *
bearer_for(const char *kid, const char *tenant, int64_t exp)
{
	char	*hdr, *p, *t, h[128];

	snprintf(h, sizeof(h), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kid);
	assert_true(asprintf(&p, "{\"tenant\":\"%s\",\"iss\":\"" ISS "\","
	    "\"aud\":[\"other\",\"" AUD "\"],\"exp\":%lld}", tenant,
	    (long long)exp) > 0);
	t = tok_signed(JWT_ALG_HS256, h, p);
	assert_true(asprintf(&hdr, "Bearer %s", t) > 0);
	free(t);
	free(p);
	return hdr;
}

static void
test_db_auth(void **state)
{
	struct dbfix		*f = *state;
	struct db_issuer_in	 in = {
		.kid = "kdb", .alg = "HS256", .key = HS_SECRET, .iss = ISS,
		.aud = AUD, .tenant_claim = "tenant",
		.key_fingerprint = "sha256:test",
	};
	struct auth_result	 a;
	json_t			*j;
	char			 id[64], key_id[80], status[16], *hdr, *dump;
	int64_t			 now = (int64_t)time(NULL);

	/* A stored issuer is what a freshly loaded keyring verifies with. */
	db_issuer_create(f->db, &in, "test", dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_OK);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(
	    f->row, "id")));
	assert_memory_equal(id, "iss_", 4);
	assert_string_equal(json_string_value(json_object_get(f->row, "key")),
	    HS_SECRET);
	assert_true(json_is_null(json_object_get(f->row, "deleted_at")));
	json_decref(f->row);
	db_issuer_create(f->db, &in, "test", dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_CONFLICT);
	json_decref(f->row);

	hdr = bearer_for("kdb", f->tenant, now + 300);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_OK);
	assert_string_equal(a.tenant_id, f->tenant);
	snprintf(key_id, sizeof(key_id), "jwt:%s", id);
	assert_string_equal(a.key_id, key_id);
	assert_int_equal(jwt_keyring_count(jwt_shared(f->db)), 1);
	assert_int_equal(jwt_auth(f->db, hdr + 7, &a), AUTH_OK);

	/* Suspension shows at once; so does reactivation. */
	assert_int_equal(db_tenant_status(f->db, f->tenant, status), 1);
	assert_string_equal(status, "active");
	db_tenant_set_status(f->db, f->tenant, "suspended", "test", dbfix_done,
	    f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_OK);
	assert_string_equal(json_string_value(json_object_get(f->row,
	    "status")), "suspended");
	json_decref(f->row);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_SUSPENDED);
	assert_string_equal(a.tenant_id, "");
	db_tenant_set_status(f->db, f->tenant, "active", "test", dbfix_done, f);
	dbfix_wait(f);
	json_decref(f->row);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_OK);
	db_tenant_set_status(f->db, "ten_nope", "active", "test", dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_NOT_FOUND);
	db_tenant_set_status(f->db, f->tenant, "bogus", "test", dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_ERROR);
	assert_int_equal(db_tenant_status(f->db, "ten_nope", status), 0);
	free(hdr);

	/* Unknown tenant, expired token, garbage. */
	hdr = bearer_for("kdb", "ten_000000000000000000000000", now + 300);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_UNKNOWN);
	free(hdr);
	hdr = bearer_for("kdb", f->tenant, now - 3600);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_EXPIRED);
	free(hdr);
	assert_int_equal(auth_tenant(f->db, "Bearer a.b.c", &a), AUTH_UNKNOWN);
	assert_int_equal(auth_tenant(f->db, "Bearer sk-123", &a),
	    AUTH_UNKNOWN);

	/* Deleting: durable, then dropped from the keyring by the caller
	 * (admin/issuers.c does it in its completion). */
	hdr = bearer_for("kdb", f->tenant, now + 300);
	db_issuer_delete(f->db, id, "test", dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_OK);
	assert_true(json_is_integer(json_object_get(f->row, "deleted_at")));
	json_decref(f->row);
	assert_true(jwt_keyring_remove(jwt_shared(f->db), id));
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_UNKNOWN);
	db_issuer_delete(f->db, id, "test", dbfix_done, f);	/* again */
	dbfix_wait(f);
	assert_int_equal(f->st, DB_OK);
	json_decref(f->row);
	db_issuer_delete(f->db, "iss_nope", "test", dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_NOT_FOUND);
	/* A reload (a restart) does not bring it back. */
	jwt_shared_release();
	assert_int_equal(jwt_keyring_count(jwt_shared(f->db)), 0);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_UNKNOWN);
	free(hdr);
	j = db_issuer_list(f->db, NULL, 10);
	assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
	json_decref(j);
	j = db_issuer_get(f->db, id);
	assert_non_null(j);
	assert_true(json_is_integer(json_object_get(j, "deleted_at")));
	json_decref(j);
	/* The kid stays taken. */
	db_issuer_create(f->db, &in, "test", dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_CONFLICT);

	/* The audit trail has each change once, never the secret. */
	j = db_audit_list(f->db, NULL, 100);
	dump = json_dumps(j, 0);
	assert_null(strstr(dump, HS_SECRET));
	assert_non_null(strstr(dump, "\"issuer.create\""));
	assert_non_null(strstr(dump, "sha256:test"));
	assert_non_null(strstr(dump, "\"issuer.delete\""));
	assert_non_null(strstr(dump, "\"tenant.status\""));
	assert_null(strstr(strstr(dump, "\"issuer.delete\"") + 1,
	    "\"issuer.delete\""));
	free(dump);
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_verify_valid),
		cmocka_unit_test(test_verify_attacks),
		cmocka_unit_test(test_verify_sizes),
		cmocka_unit_test(test_issuer_check),
		cmocka_unit_test(test_keyring),
		cmocka_unit_test_setup_teardown(test_db_auth, db_setup,
		    db_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
