/* gateway/http.h - HTTPS listeners and the per-request context shared by
 * the tenant and admin APIs.
 *
 * Every request gets a struct req with a fresh id ("req_" + 24 hex) that is
 * sent back as x-request-id.  A request ends with exactly one http_reply*
 * or http_error call, which sends the response and frees the req; handlers
 * that wait for the database or a runtime keep the req until then.  Errors
 * are OpenAI-style: {"error":{"message","type","param","code"}}. */
#ifndef GATEWAY_HTTP_H
#define GATEWAY_HTTP_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "db/db.h"
#include "gateway/quota.h"

struct evhttp_request;
struct http_server;
struct server;
struct sched_job;

#define HTTP_PATH_MAX		1024
#define HTTP_PATH_PARTS		8

struct event;

struct req {
	struct evhttp_request	*ev;		/* owned by libevent */
	struct server		*srv;
	char			 id[32];
	int64_t			 t0_us;		/* monotonic, at arrival */
	int64_t			 ts_us;		/* wall clock, at arrival */
	int			 method;	/* enum evhttp_cmd_type */
	char			 path[HTTP_PATH_MAX];
	char			*parts[HTTP_PATH_PARTS]; /* into pathbuf */
	int			 n_parts;
	char			 pathbuf[HTTP_PATH_MAX];
	size_t			 bytes_in;	/* request body */
	struct evkeyvalq	 query;		/* parsed on first use */
	bool			 query_parsed;
	/* tenant API */
	char			 tenant_id[64];
	char			 key_id[64];
	bool			 has_scopes;	/* key limited to scopes */
	char			 scopes[1024];	/* JSON array of models */
	struct sched_job	*job;		/* while a runtime computes */
	struct usage_event	 usage;		/* metered before replying */
	struct quota_ticket	 ticket;	/* what admission reserved */
	bool			 metered;	/* usage must be recorded */
	/* reply held back until usage is durable */
	int			 status;
	char			*body;
	size_t			 body_len;
	const char		*reply_ctype;	/* held reply's type (static);
						   NULL: application/json */
	void			*ctx;		/* handler state */
	void			(*ctx_free)(void *);
	/* Called once by http_reply before it sends; true: the hook took
	 * the reply over and calls http_reply again later (admin/idem.c
	 * stores a response durably before sending it). */
	bool			(*on_reply)(struct req *, int status,
				    const char *ctype, const void *body,
				    size_t len);
	/* streamed replies (http_stream_*) */
	bool			 streaming;	/* headers sent, chunks follow */
	bool			 gone;		/* the client's connection closed */
	void			(*on_close)(struct req *);
	struct event		*close_ev;	/* http_watch_close's, or NULL */
};

typedef void	http_handler_fn(struct req *);

/* Creates an HTTPS server on host:port with the server's TLS context and
 * limits; handler is called for every request.  *port receives the bound
 * port (useful with port 0).  NULL after logging on failure. */
struct http_server *http_listen(struct server *, const char *hostport,
		    size_t max_body, http_handler_fn *handler, int *port);
/* Stops accepting new connections; open ones finish their requests. */
void		 http_stop_accepting(struct http_server *);
/* Connections in the middle of sending a request evhttp has not got
 * whole yet (the guard's count): draining waits for them. */
size_t		 http_reading(struct http_server *);
/* Closes every connection and frees the server.  NULL is ok. */
void		 http_free(struct http_server *);

/* Request helpers. */
const char	*http_header(struct req *, const char *name);
/* Request body, contiguous, not NUL-terminated (borrowed until the
 * reply). */
const char	*http_body(struct req *, size_t *len);
/* Query parameter (decoded, borrowed until the reply) or NULL. */
const char	*http_query(struct req *, const char *name);
/* Parses the body as a JSON object: new reference, or NULL with the
 * reason in err. */
json_t		*http_parse_json(struct req *, char *err, size_t errsz);
/* Same, but on failure replies 400 and returns NULL. */
json_t		*http_json_body(struct req *);

/* Replies and frees the req.  body is copied. */
void		 http_reply(struct req *, int status, const char *ctype,
		    const void *body, size_t len);
/* Steals the reference to obj. */
void		 http_reply_json(struct req *, int status, json_t *obj);
/* OpenAI-style error; type from the status unless given; code and param
 * may be NULL. */
void		 http_error(struct req *, int status, const char *code,
		    const char *param, const char *fmt, ...)
		    __attribute__((format(printf, 5, 6)));
/* Builds the error JSON body (new string, caller frees). */
/* type NULL: derived from status. */
char		*http_error_body(int status, const char *type,
		    const char *code, const char *param, const char *msg,
		    size_t *len);
char		*http_error_vbody(int status, const char *type,
		    const char *code, const char *param, size_t *len,
		    const char *fmt, va_list)
		    __attribute__((format(printf, 6, 0)));
/* 405 with an Allow header listing the methods the route takes. */
void		 http_method_not_allowed(struct req *, const char *allow);
/* Adds a response header before the reply. */
void		 http_add_header(struct req *, const char *name,
		    const char *value);

/* Streamed replies (server-sent events): http_stream_start sends the
 * status and headers (x-request-id, ctype, chunked encoding); each
 * http_stream_chunk sends bytes at once and returns -1, sending nothing,
 * once the client has gone; http_stream_end finishes the reply and frees
 * the req.  on_close, if set, is called once when the client's connection
 * closes before http_stream_end (it must not end the req itself). */
void		 http_stream_start(struct req *, int status, const char *ctype);
/* Calls on_close as above when the client's connection closes before a
 * held reply (http_reply) is sent, so that work done for a client who
 * left can stop. */
void		 http_watch_close(struct req *);
int		 http_stream_chunk(struct req *, const void *, size_t);
void		 http_stream_end(struct req *);

int64_t		 http_now_us(void);		/* monotonic */
int64_t		 http_wall_us(void);		/* realtime */
#endif
