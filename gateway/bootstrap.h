/* gateway/bootstrap.h - first-start initialization of a data directory and
 * the demo set-up (--demo).  Files made here: admin.token (0600), tls/
 * (self-signed certificate and key), demo.key (0600), models/demo-mlp.onnx,
 * demo-request.json.  Existing files are reused, never overwritten. */
#ifndef GATEWAY_BOOTSTRAP_H
#define GATEWAY_BOOTSTRAP_H
#include <stddef.h>

struct server;

/* Creates the directory (0700) and loads or creates the admin token; fills
 * srv->admin_hash.  -1 after logging. */
int	bootstrap_data_dir(struct server *);
/* Makes DIR/tls/{cert,key}.pem if missing and no --cert/--key was given;
 * sets srv->cfg.cert/key to the files to use.  -1 after logging. */
int	bootstrap_tls(struct server *, char *cert, char *key, size_t sz);
/* Starts the asynchronous demo set-up: tenant "demo" with a key in
 * demo.key, model demo-mlp (generated), deployment demo-mlp.  Prints the
 * banner once the platform answers. */
void	bootstrap_demo(struct server *);
#endif
