/* gateway/http.c - see http.h.  libevent's evhttp over bufferevent_openssl:
 * one SSL per connection, created in the bevcb.  evhttp enforces the header
 * and body size limits while reading, before our handler runs. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "gateway/guard.h"
#include "gateway/http.h"
#include "gateway/server.h"

#define HTTP_TIMEOUT_S		120

struct http_server {
	struct server	*srv;
	http_handler_fn	*handler;
	struct evhttp	*http;
	struct guard	*guard;		/* framing, deadlines, caps */
};

static struct bufferevent *http_bevcb(struct event_base *, void *);
static void	http_gencb(struct evhttp_request *, void *);
static void	req_free(struct req *);
static void	req_new_id(char *, size_t);
static int	req_split_path(struct req *, const char *);
static void	http_closecb(struct evhttp_connection *, void *);
static void	http_rdhup_cb(evutil_socket_t, short, void *);
static void	http_gone(struct req *);

int64_t
http_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
http_wall_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct bufferevent *
http_bevcb(struct event_base *base, void *arg)
{
	struct http_server	*l = arg;
	SSL		*ssl = SSL_new(l->srv->tls);
	struct bufferevent	*tls;

	if (ssl == NULL)
		return NULL;
	/* tls owns ssl and the socket evhttp sets on it. */
	if ((tls = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* evhttp talks to the guard's filter, which owns tls. */
	return guard_wrap(l->guard, tls);
}

struct http_server *
http_listen(struct server *srv, const char *hostport, size_t max_body,
    http_handler_fn *handler, int *port)
{
	struct evhttp			*http;
	struct evhttp_bound_socket	*bound;
	struct http_server			*l;
	char				 host[256];
	const char			*colon = strrchr(hostport, ':');
	char				*end;
	long				 p;
	struct guard_config		 gcfg;
	char				 err[256];
	const char			*spec = getenv("MAAS_GUARD");

	if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host)) {
		log_warnx("listen address '%s' is not HOST:PORT", hostport);
		return NULL;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || p < 0 ||
	    p > 65535) {
		log_warnx("listen address '%s' has a bad port", hostport);
		return NULL;
	}
	guard_config_init(&gcfg, max_body, srv->cfg.max_headers);
	gcfg.new_id = req_new_id;
	if (guard_config_parse(&gcfg, spec, err, sizeof(err)) == -1) {
		log_warnx("MAAS_GUARD: %s", err);
		return NULL;
	}
	if ((http = evhttp_new(srv->base)) == NULL)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->srv = srv;
	l->http = http;
	l->handler = handler;
	if ((l->guard = guard_new(srv->base, &gcfg)) == NULL) {
		http_free(l);
		return NULL;
	}
	evhttp_set_bevcb(http, http_bevcb, l);
	evhttp_set_gencb(http, http_gencb, l);
	evhttp_set_max_body_size(http, (ev_ssize_t)max_body);
	/* The guard enforces the limits first, with JSON errors; these are
	 * evhttp's backstops and never bind. */
	evhttp_set_max_headers_size(http,
	    (ev_ssize_t)guard_config_evhttp_headers(&gcfg));
	evhttp_set_timeout(http, HTTP_TIMEOUT_S);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	evhttp_set_default_content_type(http, "application/json");
	if ((bound = evhttp_bind_socket_with_handle(http, host,
	    (ev_uint16_t)p)) == NULL) {
		log_warn("cannot listen on '%s'", hostport);
		http_free(l);
		return NULL;
	}
	/* Accepted sockets inherit TCP_NODELAY from the listener on Linux;
	 * without it a response written as header + body waits ~40 ms for
	 * the client's delayed ACK (Nagle). */
	{
		int	one = 1;

		if (setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP,
		    TCP_NODELAY, &one, sizeof(one)) == -1)
			log_warn("TCP_NODELAY on '%s'", hostport);
	}
	if (port != NULL) {
		struct sockaddr_storage	ss;
		socklen_t		sl = sizeof(ss);
		evutil_socket_t		fd = evhttp_bound_socket_get_fd(bound);

		*port = (int)p;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
			if (ss.ss_family == AF_INET)
				*port = ntohs(((struct sockaddr_in *)&ss)->
				    sin_port);
			else if (ss.ss_family == AF_INET6)
				*port = ntohs(((struct sockaddr_in6 *)&ss)->
				    sin6_port);
		}
	}
	return l;
}

void
http_free(struct http_server *l)
{
	if (l == NULL)
		return;
	evhttp_free(l->http);
	guard_free(l->guard);	/* open connections keep it until they end */
	free(l);
}

static void
http_stop_one(struct evhttp_bound_socket *bound, void *arg)
{
	(void)arg;
	/* Closing the listening fd is enough; evhttp frees the rest. */
	evconnlistener_disable(evhttp_bound_socket_get_listener(bound));
}

size_t
http_reading(struct http_server *l)
{
	return l != NULL ? guard_reading(l->guard) : 0;
}

void
http_stop_accepting(struct http_server *l)
{
	if (l != NULL)
		evhttp_foreach_bound_socket(l->http, http_stop_one, NULL);
}

static void
req_new_id(char *out, size_t outsz)
{
	uint8_t		rnd[12];
	static const char hex[] = "0123456789abcdef";
	size_t		n = 0;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		fatal("getrandom");
	n = (size_t)snprintf(out, outsz, "req_");
	for (size_t i = 0; i < sizeof(rnd) && n + 2 < outsz; i++) {
		out[n++] = hex[rnd[i] >> 4];
		out[n++] = hex[rnd[i] & 15];
	}
	out[n] = '\0';
}

/* Splits the decoded path into components; -1 if malformed. */
static int
req_split_path(struct req *r, const char *raw)
{
	char	*dec, *p, *save = NULL;
	size_t	 n;

	if (raw == NULL || *raw != '/' || strlen(raw) >= HTTP_PATH_MAX)
		return -1;
	snprintf(r->path, sizeof(r->path), "%s", raw);
	snprintf(r->pathbuf, sizeof(r->pathbuf), "%s", raw);
	for (p = strtok_r(r->pathbuf, "/", &save); p != NULL;
	    p = strtok_r(NULL, "/", &save)) {
		if (r->n_parts == HTTP_PATH_PARTS)
			return -1;
		if ((dec = evhttp_uridecode(p, 0, &n)) == NULL)
			return -1;
		if (n > strlen(p) || memchr(dec, '\0', n) != NULL ||
		    memchr(dec, '/', n) != NULL) {
			free(dec);
			return -1;
		}
		memcpy(p, dec, n + 1);	/* decoding never grows */
		free(dec);
		r->parts[r->n_parts++] = p;
	}
	return 0;
}

static void
http_gencb(struct evhttp_request *ev, void *arg)
{
	struct http_server		*l = arg;
	struct req		*r = xcalloc(1, sizeof(*r));
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(ev);

	r->ev = ev;
	r->srv = l->srv;
	r->t0_us = http_now_us();
	r->ts_us = http_wall_us();
	r->method = evhttp_request_get_command(ev);
	r->bytes_in = evbuffer_get_length(evhttp_request_get_input_buffer(ev));
	req_new_id(r->id, sizeof(r->id));
	l->srv->requests++;
	if (uri == NULL || req_split_path(r, evhttp_uri_get_path(uri)) == -1) {
		http_error(r, 400, "invalid_path", NULL,
		    "the request path is malformed");
		return;
	}
	l->handler(r);
}

static void
req_free(struct req *r)
{
	if (r == NULL)
		return;
	if (r->ctx_free != NULL)
		r->ctx_free(r->ctx);
	if (r->close_ev != NULL)
		event_free(r->close_ev);
	free(r->body);
	if (r->query_parsed)
		evhttp_clear_headers(&r->query);
	r->srv->requests--;
	free(r);
}

const char *
http_header(struct req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->ev),
	    name);
}

const char *
http_body(struct req *r, size_t *len)
{
	struct evbuffer	*in = evhttp_request_get_input_buffer(r->ev);
	const char	*p;

	*len = evbuffer_get_length(in);
	p = (const char *)evbuffer_pullup(in, -1);	/* contiguous */
	return p != NULL ? p : "";
}

const char *
http_query(struct req *r, const char *name)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(r->ev);
	const char		*query;

	if (!r->query_parsed) {
		TAILQ_INIT(&r->query);
		r->query_parsed = true;
		if (uri != NULL &&
		    (query = evhttp_uri_get_query(uri)) != NULL &&
		    evhttp_parse_query_str(query, &r->query) == -1)
			evhttp_clear_headers(&r->query);
	}
	return evhttp_find_header(&r->query, name);
}

json_t *
http_parse_json(struct req *r, char *err, size_t errsz)
{
	json_error_t	 jerr;
	json_t		*j;
	size_t		 len;
	const char	*body = http_body(r, &len);

	if (len == 0) {
		snprintf(err, errsz, "the request body is empty; expected a "
		    "JSON object");
		return NULL;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		snprintf(err, errsz, "the request body is not valid JSON: %s "
		    "at line %d column %d", jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errsz, "the request body must be a JSON object");
		return NULL;
	}
	return j;
}

json_t *
http_json_body(struct req *r)
{
	json_t	*j;
	char	 err[256];

	if ((j = http_parse_json(r, err, sizeof(err))) == NULL)
		http_error(r, 400, "invalid_json", NULL, "%s", err);
	return j;
}

void
http_method_not_allowed(struct req *r, const char *allow)
{
	http_add_header(r, "Allow", allow);
	http_error(r, 405, "method_not_allowed", NULL, "'%.200s' takes %s",
	    r->path, allow);
}

void
http_add_header(struct req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->ev), name,
	    value);
}

static const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

void
http_reply(struct req *r, int status, const char *ctype, const void *body,
    size_t len)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(r->ev);
	struct evhttp_connection *evcon;
	struct evbuffer		*out;
	bool			(*hook)(struct req *, int, const char *,
				    const void *, size_t) = r->on_reply;

	r->on_reply = NULL;
	if (hook != NULL && hook(r, status, ctype, body, len))
		return;
	out = evbuffer_new();
	evhttp_add_header(h, "x-request-id", r->id);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (len > 0)
		evbuffer_add(out, body, len);
	/* Once replied, a later close of this connection is not ours. */
	if (r->close_ev != NULL)
		event_del(r->close_ev);
	if (r->on_close != NULL &&
	    (evcon = evhttp_request_get_connection(r->ev)) != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	evhttp_send_reply(r->ev, status, http_reason(status), out);
	evbuffer_free(out);
	req_free(r);
}

void
http_reply_json(struct req *r, int status, json_t *obj)
{
	char	*s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));

	json_decref(obj);
	if (s == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot encode the response");
		return;
	}
	http_reply(r, status, "application/json", s, strlen(s));
	free(s);
}

static const char *
http_error_type(int status)
{
	switch (status) {
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 409: return "conflict_error";
	case 429: return "rate_limit_error";
	default:
		return status >= 500 ? "server_error" :
		    "invalid_request_error";
	}
}

char *
http_error_body(int status, const char *type, const char *code,
    const char *param, const char *msg, size_t *len)
{
	json_t	*j;
	char	*s;

	j = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error",
	    "message", msg, "type", type ? type : http_error_type(status),
	    "param", param ? json_string(param) : json_null(),
	    "code", code ? json_string(code) : json_null());
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (s == NULL)
		s = xstrdup("{\"error\":{\"message\":\"internal error\","
		    "\"type\":\"server_error\",\"param\":null,"
		    "\"code\":null}}");
	*len = strlen(s);
	return s;
}

char *
http_error_vbody(int status, const char *type, const char *code,
    const char *param, size_t *len, const char *fmt, va_list ap)
{
	char	msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* jansson rejects invalid UTF-8; messages may quote client bytes. */
	for (char *p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x80)
			*p = '?';
	return http_error_body(status, type, code, param, msg, len);
}

void
http_error(struct req *r, int status, const char *code, const char *param,
    const char *fmt, ...)
{
	char	*body;
	size_t	 len;
	va_list	 ap;

	va_start(ap, fmt);
	body = http_error_vbody(status, NULL, code, param, &len, fmt, ap);
	va_end(ap);
	http_reply(r, status, "application/json", body, len);
	free(body);
}

/* --- streamed replies --- */

/* The connection is going away with the reply unfinished: evhttp has
 * detached the request (it stays ours to end) and frees the
 * connection after this returns. */
static void
http_closecb(struct evhttp_connection *evcon, void *arg)
{
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	http_gone(arg);
}

/* Something happened on a connection evhttp is not reading (it reads no
 * more once a request is complete, and only a failed write would tell
 * it).  A FIN is EPOLLRDHUP (EV_CLOSED); a client that closes with our
 * TLS session tickets unread sends an RST, which only wakes readers.
 * HTTP/1.1 clients do not half-close and then wait for an answer, so
 * either is a client gone.  Bytes from a live client (a pipelined
 * request) are left to evhttp, and only a FIN is watched for then. */
static void
http_rdhup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct req	*r = arg;
	struct pollfd	 p = { .fd = fd, .events = POLLRDHUP };

	if (!(what & EV_CLOSED) && poll(&p, 1, 0) == 1 &&
	    (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0) {
		event_free(r->close_ev);
		if ((r->close_ev = event_new(r->srv->base, fd, EV_CLOSED,
		    http_rdhup_cb, r)) != NULL &&
		    event_add(r->close_ev, NULL) == -1) {
			event_free(r->close_ev);
			r->close_ev = NULL;
		}
		return;
	}
	http_gone(r);
}

static void
http_gone(struct req *r)
{
	/* One-shot; deleted too when evhttp frees the connection first,
	 * so that it never fires on a later connection with the same fd. */
	if (r->close_ev != NULL)
		event_del(r->close_ev);
	if (r->gone)
		return;
	r->gone = true;
	if (r->on_close != NULL)
		r->on_close(r);
}

void
http_stream_start(struct req *r, int status, const char *ctype)
{
	struct evkeyvalq		*h = evhttp_request_get_output_headers(
	    r->ev);
	struct evhttp_connection	*evcon;

	evhttp_add_header(h, "x-request-id", r->id);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply_start(r->ev, status, http_reason(status));
	r->streaming = true;
	if ((evcon = evhttp_request_get_connection(r->ev)) != NULL)
		evhttp_connection_set_closecb(evcon, http_closecb, r);
	else
		r->gone = true;
}

void
http_watch_close(struct req *r)
{
	struct evhttp_connection	*evcon;
	struct bufferevent		*bev;
	evutil_socket_t			 fd;

	if ((evcon = evhttp_request_get_connection(r->ev)) == NULL) {
		r->gone = true;
		return;
	}
	evhttp_connection_set_closecb(evcon, http_closecb, r);
	if (r->close_ev != NULL || !(event_base_get_features(r->srv->base) &
	    EV_FEATURE_EARLY_CLOSE) ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL ||
	    (fd = bufferevent_getfd(bev)) == -1)
		return;
	r->close_ev = event_new(r->srv->base, fd, EV_READ | EV_CLOSED,
	    http_rdhup_cb, r);
	if (r->close_ev != NULL && event_add(r->close_ev, NULL) == -1) {
		event_free(r->close_ev);
		r->close_ev = NULL;
	}
}

int
http_stream_chunk(struct req *r, const void *p, size_t n)
{
	struct evbuffer	*b;

	if (r->gone || evhttp_request_get_connection(r->ev) == NULL) {
		r->gone = true;
		return -1;
	}
	if (n == 0)
		return 0;
	b = evbuffer_new();
	evbuffer_add(b, p, n);
	evhttp_send_reply_chunk(r->ev, b);
	evbuffer_free(b);
	return 0;
}

void
http_stream_end(struct req *r)
{
	struct evhttp_connection	*evcon;

	/* Once ended, a later close of this connection is not ours. */
	if ((evcon = evhttp_request_get_connection(r->ev)) != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	evhttp_send_reply_end(r->ev);	/* frees ev if it was detached */
	req_free(r);
}
