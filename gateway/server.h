/* gateway/server.h - maasd's process-wide context, shared by the tenant
 * API (gateway/) and the admin API (admin/).  One instance, created in
 * main.c; everything runs on its event loop thread. */
#ifndef GATEWAY_SERVER_H
#define GATEWAY_SERVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct console;
struct db;
struct event_base;
struct prices;
struct quota;
struct http_server;
struct sched;
struct work;

struct server_config {
	const char	*data_dir;
	const char	*listen;	/* host:port, tenant API */
	const char	*admin_listen;	/* host:port, admin API */
	const char	*cert;		/* PEM files */
	const char	*key;
	const char	*runtime_path;
	const char	*genmodel_path;
	const char	*web_dir;	/* console assets; NULL: none */
	bool		 demo;
	size_t		 max_body;	/* bytes, tenant API */
	size_t		 max_headers;	/* bytes */
	int		 drain_timeout_s;
};

struct server {
	struct server_config	 cfg;
	struct event_base	*base;
	SSL_CTX			*tls;
	struct db		*db;
	struct sched		*sched;
	struct work		*work;		/* blocking jobs (hashing) */
	struct quota		*quota;		/* limits and counters */
	struct prices		*prices;	/* price list */
	struct event		*touch_ev;	/* flushes keys' last_used_at */
	char			**touched;	/* key ids used since the flush */
	size_t			 n_touched;
	struct http_server	*http;		/* tenant API */
	struct http_server	*admin_http;
	struct console		*console;	/* web console, admin port */
	uint8_t			 admin_hash[32];	/* SHA-256 of admin token */
	size_t			 requests;	/* HTTP requests not yet answered */
	bool			 draining;
	bool			 demo_ready;	/* demo bootstrap finished */
	int			 tenant_port;	/* bound ports, for the banner */
	int			 admin_port;
};
#endif
