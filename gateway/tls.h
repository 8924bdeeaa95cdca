/* gateway/tls.h - the TLS server context and the self-signed certificate
 * maasd makes for itself on first start. */
#ifndef GATEWAY_TLS_H
#define GATEWAY_TLS_H
#include <openssl/ssl.h>

/* TLS 1.2 and 1.3 only, ECDHE with AEAD suites (Mozilla intermediate
 * without DHE), groups X25519, P-256, P-384, server cipher order, no
 * renegotiation, no compression.  NULL after logging on failure.
 * Caller frees with SSL_CTX_free(). */
SSL_CTX	*tls_ctx_new(const char *cert_file, const char *key_file);
/* Writes a new P-256 key (mode 0600) and a self-signed certificate for
 * localhost and 127.0.0.1, valid for 825 days.  -1 after logging. */
int	 tls_selfsigned_create(const char *cert_file, const char *key_file);
#endif
