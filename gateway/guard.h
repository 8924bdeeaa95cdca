/* gateway/guard.h - the request-framing guard between TLS and evhttp.
 *
 * libevent 2.1.12's evhttp frames requests loosely: it takes the first of
 * two differing Content-Length headers, reads " 5\t" and "+5" as lengths,
 * accepts bare LF, obs-fold, chunk sizes like "0x5" and Content-Length next
 * to Transfer-Encoding, so a peer can make it see a different message
 * boundary than any other HTTP implementation would (request smuggling).
 * Its own 400/413 answers are HTML, and it has no header deadline and no
 * connection caps.
 *
 * The guard is a bufferevent filter over each connection's SSL bufferevent.
 * Its parser (below) follows HTTP/1.1 framing byte by byte on the decrypted
 * stream: request line, header section, then the Content-Length or chunked
 * body, then the next pipelined request.  Only bytes it has validated reach
 * evhttp; what evhttp sees is always a subset that evhttp frames exactly as
 * the guard did.  On a violation the guard answers itself with an
 * OpenAI-style JSON error, "Connection: close" and x-request-id, written to
 * the SSL bufferevent once evhttp has answered every earlier request, and
 * closes the connection; nothing after the bad request is dispatched.
 *
 * Everything runs on the event loop thread; nothing here is thread-safe. */
#ifndef GATEWAY_GUARD_H
#define GATEWAY_GUARD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct guard;

/* Limits and deadlines of one listener.  guard_config_init() fills the
 * defaults; the MAAS_GUARD environment variable may override them (see
 * guard_config_parse), which is how tests shorten the deadlines. */
struct guard_config {
	size_t	 max_request_line;	/* bytes, with CRLF: 414 */
	size_t	 max_header_bytes;	/* header section + trailers: 431 */
	size_t	 max_header_count;	/* field lines, trailers too: 431 */
	size_t	 max_body;		/* Content-Length or chunk sum: 413 */
	int	 handshake_ms;		/* accept to TLS handshake done */
	int	 head_ms;		/* accept, or first byte of a later
					 * request, to the end of its head */
	int	 idle_ms;		/* keep-alive: response end to the
					 * next request's first byte */
	int	 linger_ms;		/* after our error reply: wait this
					 * long for the peer to close */
	size_t	 max_conns;		/* open connections on the listener */
	size_t	 max_conns_per_ip;	/* per IPv4 address, IPv6 /64 */
	/* Writes a fresh request id ("req_" + hex) for x-request-id; the
	 * HTTP layer supplies its own generator so ids look alike.  NULL:
	 * the guard's replies carry no x-request-id. */
	void	(*new_id)(char *out, size_t outsz);
};

#define GUARD_MAX_REQUEST_LINE	(8 * 1024)
#define GUARD_MAX_HEADER_COUNT	100
#define GUARD_HANDSHAKE_MS	10000
#define GUARD_HEAD_MS		10000
#define GUARD_IDLE_MS		60000
#define GUARD_LINGER_MS		2000
#define GUARD_MAX_CONNS		4096
#define GUARD_MAX_CONNS_PER_IP	256

/* Defaults above, with the listener's body limit and the server's header
 * limit (max_headers). */
void	 guard_config_init(struct guard_config *, size_t max_body,
	    size_t max_header_bytes);
/* Applies "key=value,key=value" overrides (NULL or "" changes nothing).
 * Keys: request_line, header_bytes, header_count, handshake_ms, head_ms,
 * idle_ms, linger_ms, max_conns, per_ip (the body limit stays
 * --max-body-mb).  -1 with a message in err on an unknown key or a bad
 * number; cfg may be partly changed. */
int	 guard_config_parse(struct guard_config *, const char *spec,
	    char *err, size_t errsz);
/* The header-size limit evhttp must be given so that it never refuses a
 * head the guard let through (a backstop; the guard's limits bind). */
size_t	 guard_config_evhttp_headers(const struct guard_config *);

/* --- the parser: pure, no I/O; exposed for the unit and fuzz tests ---
 *
 * It takes the strict reading of RFC 9112, narrowed to what evhttp parses
 * the same way; anything else is refused (400 unless noted):
 * - Lines end in CRLF.  A bare LF or a CR not followed by LF anywhere in a
 *   head, chunk line or trailer is refused.  Up to two empty lines before
 *   a request line are dropped.
 * - Request line: method SP target SP version, single spaces.  Methods are
 *   tokens; only GET HEAD POST PUT DELETE PATCH OPTIONS are served (others
 *   501).  Targets: origin-form of RFC 3986 characters with valid %XX and
 *   not starting "//" (evhttp would read an authority), absolute-form
 *   http(s)://host[:port] with a plain host name or IPv4 address, or "*"
 *   for OPTIONS; no fragment.  Version exactly HTTP/1.0 or HTTP/1.1.
 *   Longer than max_request_line: 414.
 * - Field lines: token ":" OWS value OWS.  No whitespace before the colon,
 *   no obs-fold, no NUL or other control character but HTAB.  A HTAB in a
 *   Content-Length, Transfer-Encoding, Host or Expect line is refused:
 *   evhttp strips only spaces.  Over max_header_count lines or
 *   max_header_bytes (section with terminator; trailers count too): 431.
 * - Framing: Content-Length is plain digits, repeated only with the same
 *   value; over max_body is 413 before any body byte.  Transfer-Encoding
 *   appears once, is exactly "chunked", and never with Content-Length or
 *   in HTTP/1.0.  HEAD has no body (evhttp would read it as the next
 *   request).  HTTP/1.1 needs exactly one valid Host.  Expect other than
 *   100-continue is 417 (HTTP/1.1; evhttp ignores it in 1.0).
 * - Chunks: 1 to 16 hex digits, extensions per RFC 9112 (BWS, token,
 *   token or quoted-string value) and dropped, since evhttp refuses
 *   them; data then CRLF; the sizes summed over max_body are 413.  The
 *   trailer section is validated like the header section and dropped,
 *   since evhttp would merge it into the header fields. */

enum guard_result {
	GUARD_MORE,		/* everything given was consumed */
	GUARD_MESSAGE,		/* stopped right after a complete request */
	GUARD_ERROR		/* stopped at a violation: status, code, msg */
};

enum guard_phase {
	GUARD_IDLE,		/* between requests, nothing consumed */
	GUARD_HEAD,		/* inside a request line or header section */
	GUARD_BODY		/* head forwarded, body or trailers follow */
};

/* Consumed bytes leave the parser as spans, in stream order: kept bytes go
 * to evhttp, dropped ones are discarded (leading empty lines, chunk
 * extensions, trailer fields). */
struct guard_span {
	size_t	 len;
	bool	 keep;
};

#define GUARD_SPANS	8

/* Fields are the parser's own; callers read only the documented ones. */
struct guard_parser {
	/* limits, copied at init */
	size_t		 max_request_line;
	size_t		 max_header_bytes;
	size_t		 max_header_count;
	uint64_t	 max_body;
	/* results */
	enum guard_phase phase;
	int		 status;	/* on GUARD_ERROR: HTTP status */
	const char	*code;		/* on GUARD_ERROR: error.code */
	const char	*msg;		/* on GUARD_ERROR: error.message */
	size_t		 held;		/* consumed, not yet in a span */
	struct guard_span spans[GUARD_SPANS];
	size_t		 nspans;
	uint64_t	 messages;	/* complete requests */
	uint64_t	 heads;		/* complete heads */
	uint64_t	 last_body;	/* body bytes of the last request */
	/* state machine */
	int		 state;
	size_t		 line;		/* request line bytes so far */
	size_t		 empty_lines;	/* before the request line */
	size_t		 hbytes;	/* header section + trailer bytes */
	size_t		 nfields;
	int		 method;	/* index into the method table */
	char		 mbuf[8];
	size_t		 mlen;
	size_t		 idx;		/* position in a literal */
	unsigned	 port;
	size_t		 port_digits;
	bool		 http10;
	bool		 trailer;	/* parsing the trailer section */
	int		 field;		/* which framing header this line is */
	char		 name[24];
	size_t		 name_len;
	char		 val[24];
	size_t		 val_len;	/* may exceed sizeof(val): then long */
	size_t		 val_sp;	/* trailing SP not yet part of val */
	uint64_t	 cl_cur;	/* this Content-Length line's value */
	bool		 have_cl;
	uint64_t	 cl;
	bool		 have_te;
	bool		 have_host;
	bool		 expect_100;
	uint64_t	 remaining;	/* body or chunk-data bytes left */
	uint64_t	 body_total;	/* chunk sizes so far */
	uint64_t	 chunk;		/* size on this chunk line */
	size_t		 chunk_digits;
	size_t		 chunk_line;
};

void	 guard_parser_init(struct guard_parser *, const struct guard_config *);
/* Consumes bytes from buf; *used tells how many (less than len after
 * GUARD_MESSAGE or GUARD_ERROR, or when the span array is nearly full).
 * After each call the caller applies spans[0..nspans) to the front of its
 * stream of consumed bytes and sets nspans to 0; the next held bytes stay
 * at the front until a later span releases them.  After GUARD_ERROR the
 * parser must not be fed again. */
enum guard_result guard_parser_feed(struct guard_parser *, const void *buf,
		    size_t len, size_t *used);

/* --- connections --- */

/* A guard for one listener: limits, connection counts.  NULL on a bad
 * config (logged).  guard_free() may run while connections are open: they
 * keep what they need until they end.  NULL is ok. */
struct guard	*guard_new(struct event_base *, const struct guard_config *);
void		 guard_free(struct guard *);
/* Wraps a new server-side SSL bufferevent (no fd yet) in the guard filter
 * and returns the filter for evhttp's bevcb.  The filter owns tls, and tls
 * owns the socket evhttp sets through the filter (BEV_CTRL_SET_FD is passed
 * down).  On failure tls is freed and NULL returned. */
struct bufferevent *guard_wrap(struct guard *, struct bufferevent *tls);
/* Connections in the middle of receiving a request (its head started, its
 * body not complete): evhttp has not dispatched it yet, so a drain that
 * counts dispatched requests does not see it. */
size_t		 guard_reading(const struct guard *);
#endif
