/* gateway/tls.c - see tls.h. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "gateway/tls.h"

/* Mozilla intermediate configuration (TLS 1.2 part) without the DHE
 * suites: ECDHE with AEAD only. */
#define TLS12_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
	"TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS	"X25519:prime256v1:secp384r1"

static void
tls_log_errors(const char *what)
{
	unsigned long	e;
	char		buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_warnx("%s: %s", what, buf);
	}
}

SSL_CTX *
tls_ctx_new(const char *cert_file, const char *key_file)
{
	SSL_CTX	*ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) ||
	    !SSL_CTX_set1_groups_list(ctx, TLS_GROUPS))
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION);
	/* Our order (AES-GCM, then ChaCha20) rather than the client's: TLS
	 * scanners rate a missing server order as a weakness. */
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		log_warnx("cannot load certificate '%s'", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_warnx("cannot load private key '%s'", key_file);
		goto fail;
	}
	return ctx;
 fail:
	tls_log_errors("tls");
	SSL_CTX_free(ctx);
	return NULL;
}

static int
tls_add_ext(X509 *crt, int nid, const char *value)
{
	X509V3_CTX	 v3;
	X509_EXTENSION	*ext;
	int		 ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, crt, crt, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

int
tls_selfsigned_create(const char *cert_file, const char *key_file)
{
	EVP_PKEY	*pkey = NULL;
	X509		*crt = NULL;
	X509_NAME	*name;
	FILE		*f = NULL;
	int		 fd = -1, ret = -1;
	unsigned char	 serial[16];

	if ((pkey = EVP_EC_gen("P-256")) == NULL || (crt = X509_new()) == NULL)
		goto out;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	{
		BIGNUM	*bn = BN_bin2bn(serial, sizeof(serial), NULL);

		if (bn == NULL)
			goto out;
		BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt));
		BN_free(bn);
	}
	X509_set_version(crt, 2);
	X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
	X509_gmtime_adj(X509_getm_notAfter(crt), 825L * 24 * 3600);
	X509_set_pubkey(crt, pkey);
	name = X509_get_subject_name(crt);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"maas", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(crt, name);
	/* A self-signed CA certificate that is also the server certificate:
	 * clients can trust this one file with --cacert or ca=. */
	if (tls_add_ext(crt, NID_basic_constraints, "critical,CA:TRUE") == -1 ||
	    tls_add_ext(crt, NID_key_usage,
	    "critical,digitalSignature,keyCertSign") == -1 ||
	    tls_add_ext(crt, NID_ext_key_usage, "serverAuth") == -1 ||
	    tls_add_ext(crt, NID_subject_key_identifier, "hash") == -1 ||
	    tls_add_ext(crt, NID_subject_alt_name,
	    "DNS:localhost,IP:127.0.0.1,IP:::1") == -1)
		goto out;
	if (X509_sign(crt, pkey, EVP_sha256()) == 0)
		goto out;

	if ((fd = open(key_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1 || (f = fdopen(fd, "w")) == NULL) {
		log_warn("cannot create '%s'", key_file);
		goto out;
	}
	fd = -1;
	if (!PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) ||
	    fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	if ((f = fopen(cert_file, "w")) == NULL) {
		log_warn("cannot create '%s'", cert_file);
		goto out;
	}
	if (!PEM_write_X509(f, crt) || fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	ret = 0;
 out:
	if (ret == -1)
		tls_log_errors("cannot make a self-signed certificate");
	if (f != NULL)
		fclose(f);
	if (fd != -1)
		close(fd);
	X509_free(crt);
	EVP_PKEY_free(pkey);
	return ret;
}
