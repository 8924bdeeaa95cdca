/* tests/fuzz/fuzz_jwt.c - the JWT verification path on arbitrary bytes,
 * against a fixed keyring of one HS256 and one ES256 key.  The first byte
 * picks what the rest is:
 *   0  a compact token, verified as a tenant's would be;
 *   1  a base64url segment (decoded, and if accepted, re-encoded to the
 *      same text: one spelling per byte string) and a JOSE header;
 *   2  a claims payload, checked against both keys;
 *   3  "header JSON \0 claims JSON", signed here with the HS256 or ES256
 *      key and verified whole, so that the claim checks behind a valid
 *      signature are reached too.
 * The module's .c is included to reach its statics. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gateway/jwt.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_NOW	((int64_t)1700000000)
#define FUZZ_SECRET	"fuzz-secret-0123456789abcdef0123456789"
#define FUZZ_IN_MAX	16384

/* A test-only P-256 key. */
static const char fuzz_ec_private[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgTnFjSXJMFjgXbvNe\n"
    "UQPL5lYg65fEKls0ucl53D6yreehRANCAARvGHr4C+PelTO69+ZSxcC8p0mp3C1q\n"
    "K+NFtZHSd2/okI5RBd3hfo4lCt/DLT7vs41HBbfuV48UmgpkkwzM1/k5\n"
    "-----END PRIVATE KEY-----\n";

static struct jwt_keyring	*ring;
static EVP_PKEY			*ec_key;

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

static void
fuzz_init(void)
{
	struct jwt_issuer	 in = {
		.iss = "https://idp.example", .aud = "maas",
		.tenant_claim = "tenant",
	};
	BIO			*b;
	BUF_MEM			*bm;
	char			 err[256];

	ring = jwt_keyring_new();
	in.id = "iss_hs";
	in.kid = "kh";
	in.alg = "HS256";
	in.key = FUZZ_SECRET;
	in.key_len = sizeof(FUZZ_SECRET) - 1;
	if (jwt_keyring_add(ring, &in, err, sizeof(err)) == -1)
		abort();
	b = BIO_new_mem_buf(fuzz_ec_private, -1);
	ec_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	if (ec_key == NULL || PEM_write_bio_PUBKEY(b, ec_key) != 1)
		abort();
	BIO_get_mem_ptr(b, &bm);
	in.id = "iss_es";
	in.kid = "ke";
	in.alg = "ES256";
	in.key = bm->data;
	in.key_len = bm->length;
	in.tenant_claim = "sub";
	if (jwt_keyring_add(ring, &in, err, sizeof(err)) == -1)
		abort();
	BIO_free(b);
}

/* Mode 3: b64(h).b64(p).sig, with sig by the key the flag names. */
static void
fuzz_signed(const uint8_t *data, size_t size, bool es)
{
	struct jwt_claims	 c;
	const uint8_t		*nul;
	EVP_MD_CTX		*md;
	ECDSA_SIG		*sig;
	const uint8_t		*dp;
	uint8_t			 mac[64], der[80];
	unsigned int		 maclen = 0;
	size_t			 hlen, n, derlen = sizeof(der);
	char			*tok;

	if ((nul = memchr(data, '\0', size)) == NULL)
		return;
	hlen = (size_t)(nul - data);
	tok = malloc(JWT_B64_LEN(size) + 4 + JWT_B64_LEN(64));
	b64url_encode(data, hlen, tok);
	n = strlen(tok);
	tok[n++] = '.';
	b64url_encode(nul + 1, size - hlen - 1, tok + n);
	n = strlen(tok);
	if (!es) {
		HMAC(EVP_sha256(), FUZZ_SECRET, sizeof(FUZZ_SECRET) - 1,
		    (const unsigned char *)tok, n, mac, &maclen);
	} else {
		md = EVP_MD_CTX_new();
		if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
		    ec_key) != 1 || EVP_DigestSign(md, der, &derlen,
		    (const unsigned char *)tok, n) != 1)
			abort();
		EVP_MD_CTX_free(md);
		dp = der;
		if ((sig = d2i_ECDSA_SIG(NULL, &dp, (long)derlen)) == NULL)
			abort();
		BN_bn2binpad(ECDSA_SIG_get0_r(sig), mac, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(sig), mac + 32, 32);
		ECDSA_SIG_free(sig);
		maclen = 64;
	}
	tok[n++] = '.';
	b64url_encode(mac, maclen, tok + n);
	(void)jwt_verify(ring, tok, strlen(tok), FUZZ_NOW, &c);
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_claims	 c;
	struct jwt_header	 h;
	const struct jwt_key	*k;
	uint8_t			 buf[FUZZ_IN_MAX];
	char			 enc[FUZZ_IN_MAX * 2];
	size_t			 n;
	uint8_t			 mode;

	if (ring == NULL)
		fuzz_init();
	if (size == 0 || size > FUZZ_IN_MAX)
		return 0;
	mode = data[0];
	data++;
	size--;
	switch (mode & 3) {
	case 0:
		(void)jwt_verify(ring, (const char *)data, size, FUZZ_NOW, &c);
		break;
	case 1:
		if (b64url_decode((const char *)data, size, buf, sizeof(buf),
		    &n) == 0) {
			b64url_encode(buf, n, enc);
			if (strlen(enc) != size || memcmp(enc, data, size) != 0)
				abort();	/* a second spelling */
		}
		(void)jwt_header_parse(data, size, &h);
		break;
	case 2:
		for (k = ring->head; k != NULL; k = k->next)
			(void)jwt_claims_check(k, data, size, FUZZ_NOW, &c);
		break;
	case 3:
		fuzz_signed(data, size, (mode & 4) != 0);
		break;
	}
	return 0;
}
