/* tests/fuzz/fuzz_guard.c - the request-framing guard's parser
 * (gateway/guard.c) on arbitrary bytes, with small limits so they are
 * reached.  Besides memory errors it checks:
 * - the caller's bookkeeping: released spans plus held bytes are exactly
 *   what was consumed;
 * - the verdict and the forwarded bytes do not depend on how the input is
 *   split (the first input byte picks a piece size);
 * - what the guard forwards is a fixed point: parsed again it passes
 *   whole and unchanged, with the same requests;
 * - the claim the guard rests on, against the real libevent: the complete
 *   requests it forwards, followed by a sentinel request, are sent to an
 *   evhttp server on loopback (plain TCP), which must dispatch exactly the
 *   same requests - method, target and body length - and then the
 *   sentinel.  One request more or less, or an evhttp error, is a
 *   desynchronization, the thing the guard exists to prevent. */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "gateway/guard.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_MSGS	64
/* The guard never forwards a "{" in a target, evhttp takes it: no input
 * can forge the sentinel. */
#define SENTINEL_URI	"/__end{}"
#define SENTINEL	"GET " SENTINEL_URI " HTTP/1.1\r\nHost: s\r\n\r\n"

struct msg {
	size_t		 start;		/* in the forwarded stream */
	uint64_t	 body;
};

struct result {
	enum guard_result	 r;
	int			 status;
	uint64_t		 messages;
	uint8_t			*fwd;
	size_t			 fwd_len;
	struct msg		 msgs[MAX_MSGS];
	size_t			 nmsgs;
	size_t			 complete;	/* forwarded bytes up to the
						 * end of the last request */
};

static void
run(const struct guard_config *cfg, const uint8_t *in, size_t len,
    size_t step, struct result *res)
{
	struct guard_parser	p;
	size_t			pos = 0, front = 0, used, n, start = 0;
	enum guard_result	r = GUARD_MORE;

	res->fwd = malloc(len + 1);
	res->fwd_len = 0;
	res->nmsgs = 0;
	res->complete = 0;
	guard_parser_init(&p, cfg);
	while (pos < len) {
		n = len - pos < step ? len - pos : step;
		r = guard_parser_feed(&p, in + pos, n, &used);
		if (used > n)
			abort();
		pos += used;
		for (size_t i = 0; i < p.nspans; i++) {
			if (p.spans[i].len == 0 || front + p.spans[i].len > pos)
				abort();
			if (p.spans[i].keep) {
				memcpy(res->fwd + res->fwd_len, in + front,
				    p.spans[i].len);
				res->fwd_len += p.spans[i].len;
			}
			front += p.spans[i].len;
		}
		p.nspans = 0;
		if (front + p.held != pos)
			abort();
		if (r == GUARD_ERROR) {
			if (p.status < 400 || p.status > 599 ||
			    p.code == NULL || p.msg == NULL)
				abort();
			break;
		}
		if (used == 0 && r == GUARD_MORE)
			abort();		/* no progress */
		if (r == GUARD_MESSAGE) {
			if (p.phase != GUARD_IDLE || p.held != 0)
				abort();
			if (res->nmsgs < MAX_MSGS) {
				res->msgs[res->nmsgs].start = start;
				res->msgs[res->nmsgs].body = p.last_body;
				res->nmsgs++;
			}
			start = res->complete = res->fwd_len;
		}
	}
	res->r = r;
	res->status = r == GUARD_ERROR ? p.status : 0;
	res->messages = p.messages;
}

/* --- evhttp on loopback --- */

struct seen {
	char		 method[8];
	char		*uri;
	size_t		 body;
};

static struct event_base	*base;
static struct event		*timeout;	/* evhttp waits: a desync */
static int			 port;
static struct seen		 seen[MAX_MSGS + 1];
static size_t			 nseen;
static bool			 end_seen, closed;

static const char *
method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "?";
	}
}

static void
gencb(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(req);
	const char		*uri = evhttp_request_get_uri(req);

	(void)arg;
	if (strcmp(uri, SENTINEL_URI) == 0)
		end_seen = true;
	else if (nseen <= MAX_MSGS) {
		snprintf(seen[nseen].method, sizeof(seen[nseen].method), "%s",
		    method_name(evhttp_request_get_command(req)));
		seen[nseen].uri = strdup(uri);
		seen[nseen].body = evbuffer_get_length(
		    evhttp_request_get_input_buffer(req));
		nseen++;
	}
	/* Keep the connection whatever the request asked (evhttp closes
	 * after an absolute-form request unless Proxy-Connection says
	 * keep-alive): the sentinel must still be read. */
	evhttp_remove_header(h, "Connection");
	evhttp_remove_header(h, "Proxy-Connection");
	evhttp_add_header(h, "Connection", "keep-alive");
	evhttp_add_header(h, "Proxy-Connection", "keep-alive");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Proxy-Connection", "keep-alive");
	evhttp_send_reply(req, 200, "OK", NULL);
	if (end_seen)
		event_base_loopbreak(base);
}

static void
client_readcb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_drain(bufferevent_get_input(bev),
	    evbuffer_get_length(bufferevent_get_input(bev)));
}

static void
client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		closed = true;
		event_base_loopbreak(base);
	}
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

static void
setup(const struct guard_config *cfg)
{
	struct evhttp			*http;
	struct evhttp_bound_socket	*bound;
	struct sockaddr_in		 sin;
	socklen_t			 sl = sizeof(sin);

	if ((base = event_base_new()) == NULL ||
	    (http = evhttp_new(base)) == NULL ||
	    (timeout = evtimer_new(base, timeout_cb, NULL)) == NULL)
		abort();
	evhttp_set_gencb(http, gencb, NULL);
	/* as http_listen() sets it up */
	evhttp_set_max_headers_size(http,
	    (ev_ssize_t)guard_config_evhttp_headers(cfg));
	evhttp_set_max_body_size(http, (ev_ssize_t)cfg->max_body);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	if ((bound = evhttp_bind_socket_with_handle(http, "127.0.0.1",
	    0)) == NULL ||
	    getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&sin, &sl) == -1)
		abort();
	port = ntohs(sin.sin_port);
}

/* The n complete requests of res, as evhttp frames them. */
static void
differential(const struct result *res, size_t n)
{
	struct bufferevent	*bev;
	struct sockaddr_in	 sin;
	struct timeval		 tv = { 5, 0 };
	struct linger		 lg = { 1, 0 };
	size_t			 end = res->complete;

	nseen = 0;
	end_seen = closed = false;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL || bufferevent_socket_connect(bev,
	    (struct sockaddr *)&sin, sizeof(sin)) == -1)
		abort();
	bufferevent_setcb(bev, client_readcb, NULL, client_eventcb, NULL);
	bufferevent_enable(bev, EV_READ);
	bufferevent_write(bev, res->fwd, end);
	bufferevent_write(bev, SENTINEL, sizeof(SENTINEL) - 1);
	evtimer_add(timeout, &tv);
	event_base_dispatch(base);
	evtimer_del(timeout);
	/* A reset, not a FIN: thousands of connections a second must not
	 * pile up in TIME_WAIT. */
	setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_LINGER, &lg,
	    sizeof(lg));
	bufferevent_free(bev);

	if (!end_seen || nseen != n) {
		fprintf(stderr, "evhttp saw %zu request(s)%s, the guard %zu\n",
		    nseen, end_seen ? "" : closed ? " and closed" :
		    " and waited", n);
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t	*m = res->fwd + res->msgs[i].start;
		size_t		 ml = strlen(seen[i].method);
		size_t		 ul = strlen(seen[i].uri);

		if (memcmp(m, seen[i].method, ml) != 0 || m[ml] != ' ' ||
		    memcmp(m + ml + 1, seen[i].uri, ul) != 0 ||
		    m[ml + 1 + ul] != ' ' ||
		    seen[i].body != res->msgs[i].body) {
			fprintf(stderr, "request %zu: evhttp %s %s body %zu, "
			    "guard body %llu\n", i, seen[i].method,
			    seen[i].uri, seen[i].body,
			    (unsigned long long)res->msgs[i].body);
			abort();
		}
		free(seen[i].uri);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guard_config	cfg;
	static struct result	a, b, c;
	size_t			step;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 16) + 1;
	data++;
	size--;
	guard_config_init(&cfg, 300, 512);
	cfg.max_request_line = 128;
	cfg.max_header_count = 12;
	if (base == NULL)
		setup(&cfg);

	run(&cfg, data, size, size > 0 ? size : 1, &a);
	run(&cfg, data, size, step, &b);
	if (a.status != b.status || a.messages != b.messages ||
	    a.fwd_len != b.fwd_len || memcmp(a.fwd, b.fwd, a.fwd_len) != 0)
		abort();
	if (a.messages > 0) {
		/* The forwarded requests, parsed again: all pass unchanged. */
		run(&cfg, a.fwd, a.complete, a.complete, &c);
		if (c.status != 0 || c.messages != a.messages ||
		    c.fwd_len != a.complete || c.complete != a.complete ||
		    memcmp(c.fwd, a.fwd, a.complete) != 0)
			abort();
		if (c.messages <= MAX_MSGS)
			differential(&c, c.nmsgs);
		free(c.fwd);
	}
	free(a.fwd);
	free(b.fwd);
	return 0;
}
