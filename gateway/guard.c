/* gateway/guard.c - see guard.h.
 *
 * How the filter sits in libevent 2.1.12 (all of this was read in its
 * sources and is exercised by tests/integration/test_http_hardening.py):
 *
 * - evhttp calls bufferevent_setfd() on what the bevcb returned; the filter
 *   passes BEV_CTRL_SET_FD and GET_FD to its underlying bufferevent
 *   (be_filter_ctrl), so the SSL bufferevent gets the socket and owns it.
 *   The filter is made with BEV_OPT_CLOSE_ON_FREE, so evhttp does not close
 *   the fd itself and freeing the filter frees the SSL bufferevent, which
 *   closes the fd.
 *
 * - Input: the filter's input callback is the guard (guard_filter_in).  It
 *   leaves a request head in the SSL bufferevent's input buffer until the
 *   whole head is valid, then moves it to evhttp with
 *   evbuffer_remove_buffer; body bytes move as they arrive.  At most one
 *   complete request waits in evhttp's input at a time: the next one is not
 *   parsed until evhttp has consumed the previous one.
 *
 * - Output is where the stock filter does not fit evhttp.  The filter calls
 *   evhttp's write callback as soon as it has moved bytes into the SSL
 *   bufferevent, before they are encrypted and written; evhttp then frees
 *   a "Connection: close" connection and shutdown()s the socket, and the
 *   reply is lost.  It also never looks at output that evhttp adds while
 *   its EV_WRITE is disabled, which is how evhttp builds every response.
 *   So the guard handles output itself: evhttp's bytes stay in the
 *   filter's output buffer until the SSL bufferevent has written them; the
 *   SSL bufferevent gets them by reference (evbuffer_add_buffer_reference,
 *   no copy), and the guard calls evhttp's write callback itself
 *   (bufferevent_trigger) only when both buffers are empty, exactly when
 *   the plain SSL bufferevent would have.  The length evhttp sees in its
 *   output buffer is the number of bytes not yet on the socket.
 *
 * - To do that the guard takes over the SSL bufferevent's callbacks, which
 *   bufferevent_filter_new() had set to the filter's own: reads and events
 *   go on to the filter's callbacks (fetched with bufferevent_getcb), the
 *   write callback is the guard's.
 *
 * - The guard's own replies go straight into the SSL bufferevent, after
 *   evhttp has written everything it owes (evhttp is "idle": back in a
 *   reading state with nothing queued).  Once written: close_notify,
 *   shutdown(SHUT_WR), a short linger that reads and discards what the
 *   peer still sends (so our reply is not lost to a TCP reset), then an
 *   error event on the filter makes evhttp free the connection.
 *
 * - Deferred work (the "step": caps at accept, moving output, parsing input
 *   that waited for evhttp) runs from an event made active on the loop,
 *   holding a reference on the filter so it cannot be finalized meanwhile.
 *   evhttp frees a connection by bufferevent_free(), which clears the
 *   filter's callbacks: a filter without an event callback is dead and the
 *   guard only lets its memory go (guard_conn_free, from the filter's
 *   free_context when libevent finalizes it). */
#include <sys/socket.h>
#include <sys/random.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "gateway/guard.h"
#include "gateway/http.h"

#define GUARD_CHUNK_LINE_MAX	1024	/* chunk size + extensions */
#define GUARD_EMPTY_LINES_MAX	2	/* ignored before a request line */
#define GUARD_TLS_RECORD	(16 * 1024 + 512)

/* --- the parser --- */

enum {
	S_START, S_START_LF, S_METHOD, S_TARGET_FIRST, S_ORIGIN_SECOND,
	S_ASTERISK, S_ABS_SCHEME, S_ABS_HOST, S_ABS_PORT, S_TARGET, S_PCT1,
	S_PCT2, S_VERSION, S_VERSION_CR, S_VERSION_LF,
	S_FIELD_START, S_NAME, S_OWS, S_VALUE, S_FIELD_LF, S_SECTION_LF,
	S_BODY,
	S_CHUNK_START, S_CHUNK_SIZE, S_CEXT_BWS, S_CEXT_NAME0, S_CEXT_NAME,
	S_CEXT_NAME_BWS, S_CEXT_VAL0, S_CEXT_TOKEN, S_CEXT_QSTR,
	S_CEXT_QPAIR, S_CEXT_QEND, S_CHUNK_LF, S_DATA, S_DATA_CR, S_DATA_LF,
	S_DEAD
};

/* Header fields that decide framing or routing. */
enum { F_OTHER, F_CL, F_TE, F_HOST, F_EXPECT };

/* What http_listen() allows; anything else is 501 here, not evhttp's
 * HTML 501.  Keep the two lists equal. */
static const char *const methods[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"
};
#define M_HEAD		1
#define M_OPTIONS	6

static void	parser_release(struct guard_parser *, size_t, bool);
static void	parser_reset_message(struct guard_parser *);
static int	parser_fail(struct guard_parser *, int, const char *,
		    const char *);
static int	parser_value_byte(struct guard_parser *, unsigned);
static int	parser_field_end(struct guard_parser *);
static int	parser_head_end(struct guard_parser *);

static bool
is_tchar(unsigned c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'':
	case '*': case '+': case '-': case '.': case '^': case '_':
	case '`': case '|': case '~':
		return true;
	default:
		return false;
	}
}

/* RFC 3986 pchar and "/" "?", without "%" (checked apart). */
static bool
is_uri_char(unsigned c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '-': case '.': case '_': case '~':			/* unreserved */
	case '!': case '$': case '&': case '\'': case '(': case ')':
	case '*': case '+': case ',': case ';': case '=':	/* sub-delims */
	case ':': case '@': case '/': case '?':
		return true;
	default:
		return false;
	}
}

static bool
is_host_char(unsigned c)
{
	if (c == '[' || c == ']' || c == '%')
		return true;
	return is_uri_char(c) && c != '/' && c != '?' && c != '@';
}

static int
hex_value(unsigned c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (int)(c - 'A' + 10);
	return -1;
}

/* field-vchar: VCHAR or obs-text. */
static bool
is_vchar(unsigned c)
{
	return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static unsigned
ascii_lower(unsigned c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

void
guard_parser_init(struct guard_parser *p, const struct guard_config *cfg)
{
	memset(p, 0, sizeof(*p));
	p->max_request_line = cfg->max_request_line;
	p->max_header_bytes = cfg->max_header_bytes;
	p->max_header_count = cfg->max_header_count;
	p->max_body = cfg->max_body;
	parser_reset_message(p);
}

static void
parser_reset_message(struct guard_parser *p)
{
	p->phase = GUARD_IDLE;
	p->state = S_START;
	p->line = p->empty_lines = p->hbytes = p->nfields = 0;
	p->method = -1;
	p->mlen = p->idx = p->port_digits = 0;
	p->port = 0;
	p->http10 = p->trailer = false;
	p->have_cl = p->have_te = p->have_host = p->expect_100 = false;
	p->cl = p->remaining = p->body_total = p->chunk = 0;
	p->chunk_digits = p->chunk_line = 0;
}

/* Moves n consumed bytes from held into a span. */
static void
parser_release(struct guard_parser *p, size_t n, bool keep)
{
	if (n == 0)
		return;
	p->held -= n;
	if (p->nspans > 0 && p->spans[p->nspans - 1].keep == keep) {
		p->spans[p->nspans - 1].len += n;
		return;
	}
	p->spans[p->nspans].len = n;
	p->spans[p->nspans].keep = keep;
	p->nspans++;
}

static int
parser_fail(struct guard_parser *p, int status, const char *code,
    const char *msg)
{
	p->state = S_DEAD;
	p->status = status;
	p->code = code;
	p->msg = msg;
	return -1;
}

static bool
is_framing_field(int field)
{
	return field == F_CL || field == F_TE || field == F_HOST ||
	    field == F_EXPECT;
}

/* A byte of a field value that is not OWS.  Spaces seen since the last one
 * (val_sp) are inside the value. */
static int
parser_value_byte(struct guard_parser *p, unsigned c)
{
	switch (p->field) {
	case F_CL:
		if (c < '0' || c > '9' || (p->val_sp > 0 && p->val_len > 0))
			return parser_fail(p, 400, "invalid_content_length",
			    "Content-Length must be plain decimal digits");
		if (p->cl_cur > (UINT64_MAX - 9) / 10)
			p->cl_cur = UINT64_MAX;		/* saturates: 413 */
		else
			p->cl_cur = p->cl_cur * 10 + (c - '0');
		p->val_len++;
		break;
	case F_HOST:
		if (!is_host_char(c) || (p->val_sp > 0 && p->val_len > 0))
			return parser_fail(p, 400, "invalid_host",
			    "the Host header is malformed");
		p->val_len++;
		break;
	case F_TE:
	case F_EXPECT:
		if (p->val_len > 0)
			for (; p->val_sp > 0; p->val_sp--, p->val_len++)
				if (p->val_len < sizeof(p->val))
					p->val[p->val_len] = ' ';
		if (p->val_len < sizeof(p->val))
			p->val[p->val_len] = (char)ascii_lower(c);
		p->val_len++;
		break;
	default:
		break;
	}
	p->val_sp = 0;
	return 0;
}

static bool
val_is(const struct guard_parser *p, const char *s)
{
	size_t	n = strlen(s);

	return p->val_len == n && n <= sizeof(p->val) &&
	    memcmp(p->val, s, n) == 0;
}

/* The end of a field line (CRLF consumed). */
static int
parser_field_end(struct guard_parser *p)
{
	if (++p->nfields > p->max_header_count)
		return parser_fail(p, 431, "too_many_headers",
		    "the request has too many header fields");
	if (p->trailer)
		return 0;		/* trailers are dropped unread */
	switch (p->field) {
	case F_CL:
		if (p->val_len == 0)
			return parser_fail(p, 400, "invalid_content_length",
			    "Content-Length is empty");
		if (p->have_cl && p->cl != p->cl_cur)
			return parser_fail(p, 400,
			    "conflicting_content_length",
			    "the request has differing Content-Length "
			    "headers");
		p->have_cl = true;
		p->cl = p->cl_cur;
		break;
	case F_TE:
		if (!val_is(p, "chunked"))
			return parser_fail(p, 400,
			    "unsupported_transfer_encoding",
			    "Transfer-Encoding must be exactly \"chunked\"");
		p->have_te = true;
		break;
	case F_HOST:
		p->have_host = true;
		break;
	case F_EXPECT:
		/* evhttp ignores Expect in HTTP/1.0; so do we. */
		if (p->http10)
			break;
		if (!val_is(p, "100-continue"))
			return parser_fail(p, 417, "expectation_failed",
			    "only \"Expect: 100-continue\" is supported");
		p->expect_100 = true;
		break;
	default:
		break;
	}
	return 0;
}

/* The empty line after the header section (CRLF consumed): decide the
 * framing.  Returns 1 if the message has no body. */
static int
parser_head_end(struct guard_parser *p)
{
	if (!p->http10 && !p->have_host)
		return parser_fail(p, 400, "missing_host",
		    "HTTP/1.1 requests need a Host header");
	if (p->have_te) {
		if (p->have_cl)
			return parser_fail(p, 400,
			    "content_length_with_transfer_encoding",
			    "Content-Length and Transfer-Encoding cannot be "
			    "used together");
		if (p->http10)
			return parser_fail(p, 400,
			    "unsupported_transfer_encoding",
			    "HTTP/1.0 requests cannot use "
			    "Transfer-Encoding");
	}
	if (p->have_cl && p->cl > p->max_body)
		return parser_fail(p, 413, "request_too_large",
		    "the request body is too large");
	/* evhttp never reads a body after HEAD; its bytes would be taken
	 * for the next request. */
	if (p->method == M_HEAD && (p->have_te || p->cl > 0))
		return parser_fail(p, 400, "unexpected_body",
		    "a HEAD request cannot have a body");
	parser_release(p, p->held, true);
	p->heads++;
	if (p->have_te) {
		p->phase = GUARD_BODY;
		p->state = S_CHUNK_START;
		return 0;
	}
	if (p->cl > 0) {
		p->phase = GUARD_BODY;
		p->state = S_BODY;
		p->remaining = p->cl;
		return 0;
	}
	return 1;
}

static int
parser_field_id(const struct guard_parser *p)
{
	static const struct {
		const char	*name;
		int		 id;
	} ids[] = {
		{ "content-length", F_CL }, { "transfer-encoding", F_TE },
		{ "host", F_HOST }, { "expect", F_EXPECT },
	};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (p->name_len == strlen(ids[i].name) &&
		    memcmp(p->name, ids[i].name, p->name_len) == 0)
			return ids[i].id;
	return F_OTHER;
}

#define FAIL(st, code, msg) do {					\
	parser_fail(p, (st), (code), (msg));				\
	goto fail;							\
} while (0)
#define CHECK(expr) do {						\
	if ((expr) == -1)						\
		goto fail;						\
} while (0)
#define BAD_LINE	FAIL(400, "invalid_request_line",		\
			    "the request line is malformed")
#define BAD_TARGET	FAIL(400, "invalid_target",			\
			    "the request target is malformed")
#define BAD_VERSION	FAIL(400, "invalid_http_version",		\
			    "only HTTP/1.0 and HTTP/1.1 are supported")
#define BARE_CR		FAIL(400, "invalid_line_ending",		\
			    "lines must end in CRLF")
#define BAD_FIELD	FAIL(400, "invalid_header",			\
			    "a header field is malformed")
#define BAD_CHUNK	FAIL(400, "invalid_chunk",			\
			    "the chunked body is malformed")

enum guard_result
guard_parser_feed(struct guard_parser *p, const void *buf, size_t len,
    size_t *used)
{
	const unsigned char	*s = buf;
	size_t			 i = 0, n;
	unsigned		 c;
	int			 v, r;

	while (i < len) {
		/* A byte releases at most three spans (a chunk line). */
		if (p->nspans + 3 > GUARD_SPANS)
			break;
		if (p->state == S_BODY || p->state == S_DATA) {
			n = len - i;
			if (n > p->remaining)
				n = (size_t)p->remaining;
			i += n;
			p->held += n;
			p->remaining -= n;
			parser_release(p, n, true);
			if (p->remaining > 0)
				continue;
			if (p->state == S_DATA) {
				p->state = S_DATA_CR;
				continue;
			}
			goto message;
		}
		c = s[i++];
		p->held++;
		if (p->state >= S_METHOD && p->state <= S_VERSION_LF &&
		    ++p->line > p->max_request_line)
			FAIL(414, "uri_too_long",
			    "the request line is too long");
		if (p->state >= S_FIELD_START && p->state <= S_SECTION_LF &&
		    ++p->hbytes > p->max_header_bytes)
			FAIL(431, "headers_too_large",
			    "the request header fields are too large");
		if (p->state >= S_CHUNK_START && p->state <= S_CHUNK_LF &&
		    ++p->chunk_line > GUARD_CHUNK_LINE_MAX)
			FAIL(400, "invalid_chunk", "a chunk line is too long");

		switch (p->state) {
		case S_START:
			p->phase = GUARD_HEAD;
			if (c == '\r') {
				p->state = S_START_LF;
				break;
			}
			if (!is_tchar(c))
				BAD_LINE;
			p->mbuf[0] = (char)c;
			p->mlen = 1;
			p->line = 1;
			p->state = S_METHOD;
			break;
		case S_START_LF:
			if (c != '\n')
				BARE_CR;
			if (++p->empty_lines > GUARD_EMPTY_LINES_MAX)
				BAD_LINE;
			parser_release(p, p->held, false);
			p->state = S_START;
			break;
		case S_METHOD:
			if (is_tchar(c)) {
				if (p->mlen < sizeof(p->mbuf))
					p->mbuf[p->mlen] = (char)c;
				p->mlen++;
				break;
			}
			if (c != ' ')
				FAIL(400, "invalid_method",
				    "the request method is not a valid token");
			for (size_t k = 0; k < sizeof(methods) /
			    sizeof(methods[0]); k++)
				if (strlen(methods[k]) == p->mlen &&
				    memcmp(methods[k], p->mbuf, p->mlen) == 0)
					p->method = (int)k;
			if (p->method == -1)
				FAIL(501, "method_not_implemented",
				    "the request method is not supported");
			p->state = S_TARGET_FIRST;
			break;
		case S_TARGET_FIRST:
			if (c == '/')
				p->state = S_ORIGIN_SECOND;
			else if (c == '*' && p->method == M_OPTIONS)
				p->state = S_ASTERISK;
			else if (c == 'h' || c == 'H') {
				p->idx = 1;
				p->state = S_ABS_SCHEME;
			} else
				BAD_TARGET;
			break;
		case S_ORIGIN_SECOND:
			/* evhttp would parse "//x" as an authority. */
			if (c == '/')
				BAD_TARGET;
			p->state = S_TARGET;
			goto target;
		case S_ASTERISK:
			if (c != ' ')
				BAD_TARGET;
			p->idx = 0;
			p->state = S_VERSION;
			break;
		case S_ABS_SCHEME: {
			static const char	scheme[] = "https://";

			/* "http://" or "https://", any case */
			if (p->idx == 4 && c == ':')
				p->idx = 5;
			if (ascii_lower(c) != (unsigned char)scheme[p->idx])
				BAD_TARGET;
			if (++p->idx == 8) {
				p->idx = 0;
				p->state = S_ABS_HOST;
			}
			break;
		}
		case S_ABS_HOST:
			/* A plain name or IPv4 address: what evhttp's
			 * authority parser surely accepts. */
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '.' || c == '-') {
				p->idx++;
				break;
			}
			if (p->idx == 0)
				BAD_TARGET;
			if (c == ':') {
				p->port = 0;
				p->port_digits = 0;
				p->state = S_ABS_PORT;
			} else if (c == '/' || c == '?')
				p->state = S_TARGET;
			else if (c == ' ') {
				p->idx = 0;
				p->state = S_VERSION;
			} else
				BAD_TARGET;
			break;
		case S_ABS_PORT:
			if (c >= '0' && c <= '9') {
				p->port = p->port * 10 + (c - '0');
				if (++p->port_digits > 5 || p->port > 65535)
					BAD_TARGET;
				break;
			}
			if (p->port_digits == 0)
				BAD_TARGET;
			if (c == '/' || c == '?')
				p->state = S_TARGET;
			else if (c == ' ') {
				p->idx = 0;
				p->state = S_VERSION;
			} else
				BAD_TARGET;
			break;
		case S_TARGET:
 target:
			if (c == '%')
				p->state = S_PCT1;
			else if (c == ' ') {
				p->idx = 0;
				p->state = S_VERSION;
			} else if (!is_uri_char(c))
				BAD_TARGET;
			break;
		case S_PCT1:
		case S_PCT2:
			if (hex_value(c) == -1)
				BAD_TARGET;
			p->state = p->state == S_PCT1 ? S_PCT2 : S_TARGET;
			break;
		case S_VERSION:
			if (p->idx < 7) {
				if (c != (unsigned char)"HTTP/1."[p->idx])
					BAD_VERSION;
				p->idx++;
				break;
			}
			if (c != '0' && c != '1')
				BAD_VERSION;
			p->http10 = c == '0';
			p->state = S_VERSION_CR;
			break;
		case S_VERSION_CR:
			if (c >= '0' && c <= '9')
				BAD_VERSION;
			if (c != '\r')
				BAD_LINE;
			p->state = S_VERSION_LF;
			break;
		case S_VERSION_LF:
			if (c != '\n')
				BARE_CR;
			p->state = S_FIELD_START;
			break;
		case S_FIELD_START:
			if (c == '\r') {
				p->state = S_SECTION_LF;
				break;
			}
			if (c == ' ' || c == '\t')
				FAIL(400, "obs_fold", "a header line starts "
				    "with whitespace (obsolete line folding)");
			if (!is_tchar(c))
				BAD_FIELD;
			p->name[0] = (char)ascii_lower(c);
			p->name_len = 1;
			p->state = S_NAME;
			break;
		case S_NAME:
			if (is_tchar(c)) {
				if (p->name_len < sizeof(p->name))
					p->name[p->name_len] =
					    (char)ascii_lower(c);
				p->name_len++;
				break;
			}
			if (c == ' ' || c == '\t')
				FAIL(400, "invalid_header", "whitespace "
				    "between a header field name and its "
				    "colon");
			if (c != ':')
				BAD_FIELD;
			p->field = p->trailer ? F_OTHER : parser_field_id(p);
			if (p->field == F_HOST && p->have_host)
				FAIL(400, "invalid_host", "the request has "
				    "more than one Host header");
			if (p->field == F_TE && p->have_te)
				FAIL(400, "unsupported_transfer_encoding",
				    "the request has more than one "
				    "Transfer-Encoding header");
			p->val_len = p->val_sp = 0;
			p->cl_cur = 0;
			p->state = S_OWS;
			break;
		case S_OWS:
		case S_VALUE:
			if (c == '\r') {
				p->state = S_FIELD_LF;
				break;
			}
			/* evhttp strips only leading spaces, so a tab near a
			 * framing value could make it read another value. */
			if (c == '\t' && is_framing_field(p->field))
				FAIL(400, "invalid_header", "a tab in a "
				    "Content-Length, Transfer-Encoding, Host "
				    "or Expect header");
			if (c == ' ' || c == '\t') {
				if (p->state == S_VALUE)
					p->val_sp++;
				break;
			}
			if (!is_vchar(c))
				FAIL(400, "invalid_header", "a header field "
				    "value contains a control character");
			CHECK(parser_value_byte(p, c));
			p->state = S_VALUE;
			break;
		case S_FIELD_LF:
			if (c != '\n')
				BARE_CR;
			CHECK(parser_field_end(p));
			p->state = S_FIELD_START;
			break;
		case S_SECTION_LF:
			if (c != '\n')
				BARE_CR;
			if (p->trailer) {
				/* Trailer fields are validated and dropped:
				 * evhttp would merge them into the header
				 * fields, which RFC 9110 forbids. */
				parser_release(p, p->held - 2, false);
				parser_release(p, 2, true);
				goto message;
			}
			CHECK(r = parser_head_end(p));
			if (r == 1)
				goto message;
			break;
		case S_CHUNK_START:
			if ((v = hex_value(c)) == -1)
				FAIL(400, "invalid_chunk", "a chunk size must "
				    "be hexadecimal digits");
			p->chunk = (uint64_t)v;
			p->chunk_digits = 1;
			p->state = S_CHUNK_SIZE;
			break;
		case S_CHUNK_SIZE:
			if ((v = hex_value(c)) != -1) {
				if (++p->chunk_digits > 16)
					FAIL(400, "invalid_chunk",
					    "a chunk size has too many digits");
				p->chunk = p->chunk * 16 + (uint64_t)v;
				break;
			}
			if (c == ';')
				p->state = S_CEXT_NAME0;
			else if (c == ' ' || c == '\t')
				p->state = S_CEXT_BWS;
			else if (c == '\r')
				p->state = S_CHUNK_LF;
			else
				FAIL(400, "invalid_chunk", "a chunk size must "
				    "be hexadecimal digits");
			break;
		case S_CEXT_BWS:
			if (c == ';')
				p->state = S_CEXT_NAME0;
			else if (c != ' ' && c != '\t')
				BAD_CHUNK;
			break;
		case S_CEXT_NAME0:
			if (is_tchar(c))
				p->state = S_CEXT_NAME;
			else if (c != ' ' && c != '\t')
				BAD_CHUNK;
			break;
		case S_CEXT_NAME:
		case S_CEXT_TOKEN:
			if (is_tchar(c))
				break;
			if (c == ' ' || c == '\t')
				p->state = p->state == S_CEXT_NAME ?
				    S_CEXT_NAME_BWS : S_CEXT_BWS;
			else if (c == '=' && p->state == S_CEXT_NAME)
				p->state = S_CEXT_VAL0;
			else if (c == ';')
				p->state = S_CEXT_NAME0;
			else if (c == '\r')
				p->state = S_CHUNK_LF;
			else
				BAD_CHUNK;
			break;
		case S_CEXT_NAME_BWS:
			if (c == '=')
				p->state = S_CEXT_VAL0;
			else if (c == ';')
				p->state = S_CEXT_NAME0;
			else if (c != ' ' && c != '\t')
				BAD_CHUNK;
			break;
		case S_CEXT_VAL0:
			if (c == '"')
				p->state = S_CEXT_QSTR;
			else if (is_tchar(c))
				p->state = S_CEXT_TOKEN;
			else if (c != ' ' && c != '\t')
				BAD_CHUNK;
			break;
		case S_CEXT_QSTR:
			if (c == '"')
				p->state = S_CEXT_QEND;
			else if (c == '\\')
				p->state = S_CEXT_QPAIR;
			else if (c != '\t' && c != ' ' && !is_vchar(c))
				BAD_CHUNK;
			break;
		case S_CEXT_QPAIR:
			if (c != '\t' && c != ' ' && !is_vchar(c))
				BAD_CHUNK;
			p->state = S_CEXT_QSTR;
			break;
		case S_CEXT_QEND:
			if (c == ' ' || c == '\t')
				p->state = S_CEXT_BWS;
			else if (c == ';')
				p->state = S_CEXT_NAME0;
			else if (c == '\r')
				p->state = S_CHUNK_LF;
			else
				BAD_CHUNK;
			break;
		case S_CHUNK_LF:
			if (c != '\n')
				BARE_CR;
			if (p->chunk > p->max_body - p->body_total)
				FAIL(413, "request_too_large",
				    "the request body is too large");
			/* evhttp reads "<hex>" CRLF only: extensions, which a
			 * recipient must ignore anyway, are dropped. */
			parser_release(p, p->chunk_digits, true);
			parser_release(p, p->held - 2, false);
			parser_release(p, 2, true);
			p->body_total += p->chunk;
			p->chunk_line = 0;
			if (p->chunk == 0) {
				p->trailer = true;
				p->state = S_FIELD_START;
			} else {
				p->remaining = p->chunk;
				p->state = S_DATA;
			}
			break;
		case S_DATA_CR:
		case S_DATA_LF:
			if (c != (p->state == S_DATA_CR ? '\r' : '\n'))
				FAIL(400, "invalid_chunk",
				    "chunk data must end in CRLF");
			parser_release(p, 1, true);
			p->state = p->state == S_DATA_CR ? S_DATA_LF :
			    S_CHUNK_START;
			break;
		default:
			FAIL(400, "invalid_request",
			    "the request is malformed");
		}
		continue;
 message:
		p->last_body = p->have_te ? p->body_total : p->cl;
		p->messages++;
		parser_reset_message(p);
		*used = i;
		return GUARD_MESSAGE;
	}
	*used = i;
	return GUARD_MORE;
 fail:
	*used = i;
	return GUARD_ERROR;
}

#undef FAIL
#undef CHECK
#undef BAD_LINE
#undef BAD_TARGET
#undef BAD_VERSION
#undef BARE_CR
#undef BAD_FIELD
#undef BAD_CHUNK

/* --- config --- */

void
guard_config_init(struct guard_config *cfg, size_t max_body,
    size_t max_header_bytes)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_request_line = GUARD_MAX_REQUEST_LINE;
	cfg->max_header_bytes = max_header_bytes;
	cfg->max_header_count = GUARD_MAX_HEADER_COUNT;
	cfg->max_body = max_body;
	cfg->handshake_ms = GUARD_HANDSHAKE_MS;
	cfg->head_ms = GUARD_HEAD_MS;
	cfg->idle_ms = GUARD_IDLE_MS;
	cfg->linger_ms = GUARD_LINGER_MS;
	cfg->max_conns = GUARD_MAX_CONNS;
	cfg->max_conns_per_ip = GUARD_MAX_CONNS_PER_IP;
}

int
guard_config_parse(struct guard_config *cfg, const char *spec, char *err,
    size_t errsz)
{
	static const struct {
		const char	*key;
		size_t		 off;
		bool		 ms;		/* an int, else a size_t */
		unsigned long long lo, hi;
	} keys[] = {
#define K(name, field, ms, lo, hi) \
	{ name, offsetof(struct guard_config, field), ms, lo, hi }
		K("request_line", max_request_line, false, 64, 1 << 20),
		K("header_bytes", max_header_bytes, false, 256, 1 << 24),
		K("header_count", max_header_count, false, 1, 100000),
		K("handshake_ms", handshake_ms, true, 1, 3600000),
		K("head_ms", head_ms, true, 1, 3600000),
		K("idle_ms", idle_ms, true, 1, 86400000),
		K("linger_ms", linger_ms, true, 0, 60000),
		K("max_conns", max_conns, false, 1, 1 << 24),
		K("per_ip", max_conns_per_ip, false, 1, 1 << 24),
#undef K
	};
	const char		*p = spec, *eq, *end;
	char			*numend;
	unsigned long long	 v;
	size_t			 k, klen;

	if (spec == NULL)
		return 0;
	while (*p != '\0') {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq == NULL) {
			snprintf(err, errsz, "'%.*s' is not key=value",
			    (int)(end - p), p);
			return -1;
		}
		klen = (size_t)(eq - p);
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strlen(keys[k].key) == klen &&
			    memcmp(keys[k].key, p, klen) == 0)
				break;
		if (k == sizeof(keys) / sizeof(keys[0])) {
			snprintf(err, errsz, "unknown key '%.*s'", (int)klen,
			    p);
			return -1;
		}
		errno = 0;
		v = strtoull(eq + 1, &numend, 10);
		if (errno != 0 || numend != end || numend == eq + 1 ||
		    eq[1] == '-' || v < keys[k].lo || v > keys[k].hi) {
			snprintf(err, errsz, "%s must be an integer from %llu "
			    "to %llu", keys[k].key, keys[k].lo, keys[k].hi);
			return -1;
		}
		if (keys[k].ms)
			*(int *)(void *)((char *)cfg + keys[k].off) = (int)v;
		else
			*(size_t *)(void *)((char *)cfg + keys[k].off) =
			    (size_t)v;
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

size_t
guard_config_evhttp_headers(const struct guard_config *cfg)
{
	/* evhttp counts the request line and every header and trailer
	 * line without their CRLF; the guard forwards no trailer lines. */
	return cfg->max_request_line + cfg->max_header_bytes;
}

/* --- listener state: connection counts --- */

struct guard_ip {
	uint8_t		 key[16];	/* IPv4-mapped, or IPv6 /64 */
	uint32_t	 count;		/* 0: free slot */
};

struct guard {
	struct event_base	*base;
	struct guard_config	 cfg;
	size_t			 refs;		/* the owner + each conn */
	size_t			 nconns;	/* counted connections */
	size_t			 reading;	/* conns inside a request */
	struct guard_ip		*ips;		/* linear probing */
	size_t			 mask;		/* table size - 1 */
	uint64_t		 k0, k1;	/* hash key: peers cannot
						 * aim at one bucket chain */
	time_t			 last_cap_log;
};

static void	guard_unref(struct guard *);

struct guard *
guard_new(struct event_base *base, const struct guard_config *cfg)
{
	struct guard	*g;
	size_t		 size = 64;
	uint64_t	 k[2];

	if (cfg->max_conns_per_ip == 0 || cfg->max_conns == 0) {
		log_warnx("guard: connection caps must be positive");
		return NULL;
	}
	/* At most max_conns distinct peers: keep the load under 1/2. */
	while (size < 2 * cfg->max_conns)
		size *= 2;
	if (getrandom(k, sizeof(k), 0) != sizeof(k))
		fatal("getrandom");
	g = xcalloc(1, sizeof(*g));
	g->base = base;
	g->cfg = *cfg;
	g->refs = 1;
	g->ips = xcalloc(size, sizeof(*g->ips));
	g->mask = size - 1;
	g->k0 = k[0];
	g->k1 = k[1];
	return g;
}

void
guard_free(struct guard *g)
{
	if (g != NULL)
		guard_unref(g);
}

static void
guard_unref(struct guard *g)
{
	if (--g->refs > 0)
		return;
	free(g->ips);
	free(g);
}

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static size_t
ip_hash(const struct guard *g, const uint8_t key[16])
{
	uint64_t	a, b;

	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	return (size_t)(mix64(a ^ g->k0) ^ mix64(b ^ g->k1 ^ mix64(a)));
}

/* The slot holding key, or the free slot where it belongs. */
static size_t
ip_slot(const struct guard *g, const uint8_t key[16])
{
	size_t	i = ip_hash(g, key) & g->mask;

	while (g->ips[i].count != 0 && memcmp(g->ips[i].key, key, 16) != 0)
		i = (i + 1) & g->mask;
	return i;
}

static void
ip_release(struct guard *g, const uint8_t key[16])
{
	size_t	i = ip_slot(g, key), j, h;

	if (g->ips[i].count == 0 || --g->ips[i].count > 0)
		return;
	/* Backward-shift deletion keeps every probe chain unbroken. */
	for (j = i;;) {
		j = (j + 1) & g->mask;
		if (g->ips[j].count == 0)
			break;
		h = ip_hash(g, g->ips[j].key) & g->mask;
		if ((j > i && (h <= i || h > j)) ||
		    (j < i && h <= i && h > j)) {
			g->ips[i] = g->ips[j];
			i = j;
		}
	}
	g->ips[i].count = 0;
}

/* --- connections --- */

enum conn_phase {
	C_OPEN,			/* bytes flow */
	C_FAILING,		/* verdict taken, waiting for evhttp */
	C_SENDING,		/* our reply is being written */
	C_LINGER,		/* reply written, draining the peer */
	C_CLOSED		/* evhttp told to free the connection */
};

enum conn_timer { T_NONE, T_HEAD, T_IDLE, T_CLOSE };

struct guard_conn {
	struct guard		*g;
	struct bufferevent	*bev;		/* the filter; evhttp's */
	struct bufferevent	*tls;		/* owned by bev */
	bufferevent_data_cb	 filter_readcb;	/* the filter's own */
	bufferevent_event_cb	 filter_eventcb;
	void			*filter_arg;
	struct evbuffer_cb_entry *in_cb;	/* on bev's input */
	struct evbuffer_cb_entry *out_cb;	/* on bev's output */
	struct event		*ev_step;
	struct event		*ev_handshake;
	struct event		*ev_timer;	/* head, idle or close */
	enum conn_timer		 timer;
	struct guard_parser	 p;
	enum conn_phase		 phase;
	int			 status;	/* our reply; 0: none */
	const char		*code;
	const char		*msg;
	size_t			 out_sent;	/* bytes of bev's output
						 * referenced by tls's */
	bool			 started;	/* the first step ran */
	bool			 counted;	/* in nconns and ips */
	bool			 handshaken;
	bool			 step_pending;
	bool			 reading;	/* counted in g->reading */
	uint8_t			 ipkey[16];
	char			 peer[64];	/* for logs */
};

static enum bufferevent_filter_result guard_filter_in(struct evbuffer *,
		    struct evbuffer *, ev_ssize_t, enum bufferevent_flush_mode,
		    void *);
static enum bufferevent_filter_result guard_filter_out(struct evbuffer *,
		    struct evbuffer *, ev_ssize_t, enum bufferevent_flush_mode,
		    void *);
static void	guard_conn_free(void *);
static void	conn_readcb(struct bufferevent *, void *);
static void	conn_writecb(struct bufferevent *, void *);
static void	conn_eventcb(struct bufferevent *, short, void *);
static void	conn_inbuf_cb(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);
static void	conn_outbuf_cb(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);
static void	conn_step(evutil_socket_t, short, void *);
static void	conn_handshake_timeout(evutil_socket_t, short, void *);
static void	conn_timeout(evutil_socket_t, short, void *);
static void	conn_schedule(struct guard_conn *);
static bool	conn_dead(struct guard_conn *);
static bool	conn_start(struct guard_conn *);
static size_t	conn_pump_in(struct guard_conn *);
static void	conn_pump_out(struct guard_conn *);
static void	conn_fail(struct guard_conn *, int, const char *,
		    const char *);
static void	conn_try_reply(struct guard_conn *);
static void	conn_close_now(struct guard_conn *);
static void	conn_set_timer(struct guard_conn *, enum conn_timer, int);
static void	conn_set_reading(struct guard_conn *, bool);

struct bufferevent *
guard_wrap(struct guard *g, struct bufferevent *tls)
{
	struct guard_conn	*c = xcalloc(1, sizeof(*c));
	struct bufferevent	*bev;

	/* CLOSE_ON_FREE: evhttp then leaves the fd to us, and freeing the
	 * filter frees tls, which closes it. */
	bev = bufferevent_filter_new(tls, guard_filter_in, guard_filter_out,
	    BEV_OPT_CLOSE_ON_FREE, guard_conn_free, c);
	if (bev == NULL) {
		free(c);
		bufferevent_free(tls);
		return NULL;
	}
	c->g = g;
	g->refs++;
	c->bev = bev;
	c->tls = tls;
	guard_parser_init(&c->p, &g->cfg);
	snprintf(c->peer, sizeof(c->peer), "?");
	c->ev_step = event_new(g->base, -1, 0, conn_step, c);
	c->ev_handshake = evtimer_new(g->base, conn_handshake_timeout, c);
	c->ev_timer = evtimer_new(g->base, conn_timeout, c);
	if (c->ev_step == NULL || c->ev_handshake == NULL ||
	    c->ev_timer == NULL)
		fatalx("guard: event_new");
	bufferevent_getcb(tls, &c->filter_readcb, NULL, &c->filter_eventcb,
	    &c->filter_arg);
	bufferevent_setcb(tls, conn_readcb, conn_writecb, conn_eventcb, c);
	/* A head waits whole in tls's input; beyond that, stop reading. */
	bufferevent_setwatermark(tls, EV_READ, 0, g->cfg.max_request_line +
	    g->cfg.max_header_bytes + GUARD_CHUNK_LINE_MAX + GUARD_TLS_RECORD);
	c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), conn_inbuf_cb,
	    c);
	c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev),
	    conn_outbuf_cb, c);
	if (c->in_cb == NULL || c->out_cb == NULL)
		fatalx("guard: evbuffer_add_cb");
	/* evhttp sets the fd and its callbacks after we return: look at the
	 * peer then.  Not conn_schedule(): without evhttp's callbacks yet,
	 * bev would pass for dead.  If evhttp drops bev instead, this
	 * reference is the last one and the step frees it. */
	c->step_pending = true;
	bufferevent_incref(bev);
	event_active(c->ev_step, EV_TIMEOUT, 1);
	return bev;
}

size_t
guard_reading(const struct guard *g)
{
	return g->reading;
}

/* The filter's free_context: libevent finalizes the filter. */
static void
guard_conn_free(void *arg)
{
	struct guard_conn	*c = arg;

	event_free(c->ev_step);
	event_free(c->ev_handshake);
	event_free(c->ev_timer);
	evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
	evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
	if (c->counted) {
		c->g->nconns--;
		ip_release(c->g, c->ipkey);
	}
	conn_set_reading(c, false);
	guard_unref(c->g);
	free(c);
}

/* evhttp frees a connection with bufferevent_free(), which clears the
 * callbacks; it never clears the event callback otherwise. */
static bool
conn_dead(struct guard_conn *c)
{
	bufferevent_event_cb	ecb;

	bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
	return ecb == NULL;
}

static void
conn_schedule(struct guard_conn *c)
{
	if (c->step_pending || conn_dead(c))
		return;
	c->step_pending = true;
	bufferevent_incref(c->bev);	/* dropped at the end of the step */
	event_active(c->ev_step, EV_TIMEOUT, 1);
}

static void
conn_set_reading(struct guard_conn *c, bool reading)
{
	if (reading == c->reading)
		return;
	c->reading = reading;
	if (reading)
		c->g->reading++;
	else
		c->g->reading--;
}

static void
conn_set_timer(struct guard_conn *c, enum conn_timer t, int ms)
{
	struct timeval	tv;

	c->timer = t;
	if (t == T_NONE) {
		evtimer_del(c->ev_timer);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->ev_timer, &tv);
}

/* evhttp is back in a reading state with nothing left to write: every
 * request it was given has been answered. */
static bool
conn_evhttp_idle(struct guard_conn *c)
{
	bufferevent_data_cb	rcb;

	bufferevent_getcb(c->bev, &rcb, NULL, NULL, NULL);
	return rcb != NULL && (bufferevent_get_enabled(c->bev) & EV_READ) &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->tls)) == 0;
}

static void
peer_key(const struct sockaddr_storage *ss, uint8_t key[16], char *name,
    size_t namesz)
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
		inet_ntop(AF_INET, &sin->sin_addr, name, (socklen_t)namesz);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			memcpy(key, &sin6->sin6_addr, 16);
		else		/* one site gets one /64: count it once */
			memcpy(key, &sin6->sin6_addr, 8);
		inet_ntop(AF_INET6, &sin6->sin6_addr, name, (socklen_t)namesz);
	} else
		snprintf(name, namesz, "local");
}

/* The first step, once evhttp has given the socket: caps and deadlines.
 * False if the connection was refused. */
static bool
conn_start(struct guard_conn *c)
{
	struct guard		*g = c->g;
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	evutil_socket_t		 fd = bufferevent_getfd(c->bev);
	struct timeval		 tv;
	size_t			 slot;
	time_t			 now;

	c->started = true;
	memset(&ss, 0, sizeof(ss));
	if (fd == -1 || getpeername(fd, (struct sockaddr *)&ss, &sl) == -1) {
		conn_close_now(c);
		return false;
	}
	peer_key(&ss, c->ipkey, c->peer, sizeof(c->peer));
	slot = ip_slot(g, c->ipkey);
	if (g->nconns >= g->cfg.max_conns ||
	    g->ips[slot].count >= g->cfg.max_conns_per_ip) {
		now = time(NULL);
		if (now != g->last_cap_log) {
			g->last_cap_log = now;
			log_warnx("guard: refusing a connection from %s: %s "
			    "limit reached", c->peer, g->nconns >=
			    g->cfg.max_conns ? "connection" : "per-address");
		}
		conn_close_now(c);
		return false;
	}
	if (g->ips[slot].count == 0)
		memcpy(g->ips[slot].key, c->ipkey, 16);
	g->ips[slot].count++;
	g->nconns++;
	c->counted = true;
	tv.tv_sec = g->cfg.handshake_ms / 1000;
	tv.tv_usec = (g->cfg.handshake_ms % 1000) * 1000;
	evtimer_add(c->ev_handshake, &tv);
	/* The first head is due head_ms after the connection starts. */
	conn_set_timer(c, T_HEAD, g->cfg.head_ms);
	return true;
}

static void
conn_step(evutil_socket_t fd, short what, void *arg)
{
	struct guard_conn	*c = arg;

	(void)fd;
	(void)what;
	c->step_pending = false;
	if (conn_dead(c))
		goto out;
	if (!c->started && !conn_start(c))
		goto out;
	if (c->phase == C_OPEN || c->phase == C_FAILING)
		conn_pump_out(c);
	if (c->phase == C_OPEN && conn_pump_in(c) > 0) {
		bufferevent_trigger(c->bev, EV_READ, 0);
		if (conn_dead(c))
			goto out;
	}
	if (c->phase == C_FAILING)
		conn_try_reply(c);
	else if (c->phase == C_OPEN && c->timer == T_NONE &&
	    c->p.phase == GUARD_IDLE && c->p.messages > 0 &&
	    evbuffer_get_length(bufferevent_get_input(c->tls)) == 0 &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
	    conn_evhttp_idle(c))
		conn_set_timer(c, T_IDLE, c->g->cfg.idle_ms);
 out:
	bufferevent_decref(c->bev);	/* may finalize; c lives until then */
}

/* Parses what tls has read and moves what is valid to evhttp.  Returns the
 * number of bytes given to evhttp. */
static size_t
conn_pump_in(struct guard_conn *c)
{
	struct evbuffer		*src = bufferevent_get_input(c->tls);
	struct evbuffer		*dst = bufferevent_get_input(c->bev);
	struct evbuffer_ptr	 pos;
	struct evbuffer_iovec	 v;
	struct guard_parser	*p = &c->p;
	enum guard_result	 r;
	enum guard_phase	 before;
	uint64_t		 heads;
	size_t			 used, moved = 0;

	while (c->phase == C_OPEN) {
		/* One complete request at a time in evhttp's input. */
		if (p->phase == GUARD_IDLE && evbuffer_get_length(dst) > 0)
			break;
		if (evbuffer_get_length(src) <= p->held)
			break;
		if (evbuffer_ptr_set(src, &pos, p->held,
		    EVBUFFER_PTR_SET) == -1 ||
		    evbuffer_peek(src, -1, &pos, &v, 1) < 1 ||
		    v.iov_len == 0)
			break;
		before = p->phase;
		heads = p->heads;
		r = guard_parser_feed(p, v.iov_base, v.iov_len, &used);
		for (size_t i = 0; i < p->nspans; i++) {
			if (p->spans[i].keep) {
				evbuffer_remove_buffer(src, dst,
				    p->spans[i].len);
				moved += p->spans[i].len;
			} else
				evbuffer_drain(src, p->spans[i].len);
		}
		p->nspans = 0;
		if (p->heads != heads) {
			if (c->timer == T_HEAD)
				conn_set_timer(c, T_NONE, 0);
		} else if (before == GUARD_IDLE && p->phase != GUARD_IDLE &&
		    c->timer != T_HEAD)
			conn_set_timer(c, T_HEAD, c->g->cfg.head_ms);
		if (r == GUARD_ERROR)
			conn_fail(c, p->status, p->code, p->msg);
	}
	conn_set_reading(c, c->phase == C_OPEN && p->phase != GUARD_IDLE);
	return moved;
}

/* evhttp's bytes go to tls by reference and leave bev's output only when
 * tls has written them (see the top of the file). */
static void
conn_pump_out(struct guard_conn *c)
{
	struct evbuffer	*src = bufferevent_get_output(c->bev);
	struct evbuffer	*dst = bufferevent_get_output(c->tls);
	size_t		 len;

	if (evbuffer_get_length(dst) > 0)
		return;
	if (c->out_sent > 0) {
		evbuffer_drain(src, c->out_sent);
		c->out_sent = 0;
	}
	if ((len = evbuffer_get_length(src)) == 0)
		return;
	if (evbuffer_add_buffer_reference(dst, src) == 0)
		c->out_sent = len;
	else		/* file segments cannot be referenced: move them */
		evbuffer_add_buffer(dst, src);
}

static enum bufferevent_filter_result
guard_filter_in(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct guard_conn	*c = arg;

	/* src and dst are tls's and bev's input.  lim is unused: evhttp
	 * sets no read watermark, and one request at most is passed. */
	(void)src;
	(void)dst;
	(void)lim;
	(void)mode;
	return conn_pump_in(c) > 0 ? BEV_OK : BEV_NEED_MORE;
}

static enum bufferevent_filter_result
guard_filter_out(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct guard_conn	*c = arg;

	(void)src;
	(void)dst;
	(void)lim;
	(void)mode;
	if (c->phase == C_OPEN || c->phase == C_FAILING)
		conn_pump_out(c);
	/* Never BEV_OK: that would make the filter call evhttp's write
	 * callback before tls has written anything. */
	return BEV_NEED_MORE;
}

static void
conn_readcb(struct bufferevent *tls, void *arg)
{
	struct guard_conn	*c = arg;

	if (conn_dead(c))
		return;
	bufferevent_incref(c->bev);
	switch (c->phase) {
	case C_OPEN:
		/* The filter's read callback runs guard_filter_in and then
		 * evhttp's read callback. */
		c->filter_readcb(tls, c->filter_arg);
		if (c->phase == C_FAILING)
			conn_try_reply(c);
		break;
	case C_FAILING:
		break;		/* left unread: the watermark stops tls */
	default:
		evbuffer_drain(bufferevent_get_input(tls),
		    evbuffer_get_length(bufferevent_get_input(tls)));
		break;
	}
	bufferevent_decref(c->bev);
}

/* tls has written everything it had (its write callback runs only when
 * its output is empty). */
static void
conn_writecb(struct bufferevent *tls, void *arg)
{
	struct guard_conn	*c = arg;
	SSL			*ssl;
	evutil_socket_t		 fd;

	if (conn_dead(c))
		return;
	bufferevent_incref(c->bev);
	if (c->phase == C_SENDING) {
		if (evbuffer_get_length(bufferevent_get_output(tls)) == 0) {
			/* close_notify and FIN, then read what the peer
			 * still sends until it closes. */
			if ((ssl = bufferevent_openssl_get_ssl(tls)) != NULL) {
				SSL_shutdown(ssl);
				ERR_clear_error();
			}
			if ((fd = bufferevent_getfd(tls)) != -1)
				shutdown(fd, SHUT_WR);
			c->phase = C_LINGER;
			conn_set_timer(c, T_CLOSE, c->g->cfg.linger_ms);
		}
	} else if (c->phase == C_OPEN || c->phase == C_FAILING) {
		conn_pump_out(c);
		if (evbuffer_get_length(bufferevent_get_output(tls)) == 0) {
			/* What the plain SSL bufferevent would do now. */
			bufferevent_trigger(c->bev, EV_WRITE, 0);
		} else if (bufferevent_get_enabled(c->bev) & EV_WRITE) {
			/* Progress: restart evhttp's write timeout. */
			bufferevent_enable(c->bev, EV_WRITE);
		}
		conn_schedule(c);
	}
	bufferevent_decref(c->bev);
}

static void
conn_eventcb(struct bufferevent *tls, short what, void *arg)
{
	struct guard_conn	*c = arg;

	if (conn_dead(c))
		return;
	bufferevent_incref(c->bev);
	if (what & BEV_EVENT_CONNECTED) {
		c->handshaken = true;
		evtimer_del(c->ev_handshake);
	}
	if ((c->phase == C_SENDING || c->phase == C_LINGER) &&
	    (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		conn_close_now(c);
	else if (c->phase != C_CLOSED)
		c->filter_eventcb(tls, what, c->filter_arg);
	bufferevent_decref(c->bev);
}

static void
conn_inbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	/* evhttp took a request: the next one may be parsed. */
	if (info->n_deleted > 0 && evbuffer_get_length(buf) == 0)
		conn_schedule(arg);
}

static void
conn_outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	(void)buf;
	/* evhttp wrote; it may have done so with EV_WRITE disabled. */
	if (info->n_added > 0)
		conn_schedule(arg);
}

static void
conn_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct guard_conn	*c = arg;

	(void)fd;
	(void)what;
	if (conn_dead(c) || c->handshaken || c->phase != C_OPEN)
		return;
	log_debug("guard: %s: no TLS handshake within %d ms", c->peer,
	    c->g->cfg.handshake_ms);
	conn_fail(c, 0, NULL, NULL);
}

static void
conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct guard_conn	*c = arg;
	enum conn_timer		 t = c->timer;

	(void)fd;
	(void)what;
	c->timer = T_NONE;
	if (conn_dead(c))
		return;
	bufferevent_incref(c->bev);
	switch (t) {
	case T_HEAD:
		if (c->phase != C_OPEN)
			break;
		log_debug("guard: %s: no complete request head within %d ms",
		    c->peer, c->g->cfg.head_ms);
		/* Silence if not a byte of the request came. */
		if (c->p.phase == GUARD_IDLE)
			conn_fail(c, 0, NULL, NULL);
		else
			conn_fail(c, 408, "request_timeout",
			    "the request head was not received in time");
		break;
	case T_IDLE:
		if (c->phase == C_OPEN && c->p.phase == GUARD_IDLE)
			conn_fail(c, 0, NULL, NULL);
		break;
	case T_CLOSE:
		if (c->phase == C_SENDING || c->phase == C_LINGER)
			conn_close_now(c);
		break;
	default:
		break;
	}
	bufferevent_decref(c->bev);
}

/* status 0: close without a reply. */
static void
conn_fail(struct guard_conn *c, int status, const char *code,
    const char *msg)
{
	if (c->phase != C_OPEN)
		return;
	c->phase = C_FAILING;
	conn_set_reading(c, false);
	c->status = status;
	c->code = code;
	c->msg = msg;
	conn_set_timer(c, T_NONE, 0);
	if (status != 0 && status != 408)
		log_info("guard: refused a request from %s: %d %s", c->peer,
		    status, code);
	conn_try_reply(c);
}

static const char *
guard_reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	default: return "Error";
	}
}

/* Answers once evhttp owes nothing more, then closes. */
static void
conn_try_reply(struct guard_conn *c)
{
	struct evbuffer	*out;
	char		 id[32], msg[160];
	char		*body;
	size_t		 len;

	if (c->phase != C_FAILING || conn_dead(c) || !conn_evhttp_idle(c))
		return;
	if (c->status == 0 || !c->handshaken) {
		conn_close_now(c);
		return;
	}
	if (c->status == 413)
		snprintf(msg, sizeof(msg), "%s (limit %llu bytes)", c->msg,
		    (unsigned long long)c->g->cfg.max_body);
	else
		snprintf(msg, sizeof(msg), "%s", c->msg);
	id[0] = '\0';
	if (c->g->cfg.new_id != NULL)
		c->g->cfg.new_id(id, sizeof(id));
	body = http_error_body(c->status, NULL, c->code, NULL, msg, &len);
	out = bufferevent_get_output(c->tls);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "Connection: close\r\n", c->status, guard_reason(c->status), len);
	if (id[0] != '\0')
		evbuffer_add_printf(out, "x-request-id: %s\r\n", id);
	evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, body, len);
	free(body);
	c->phase = C_SENDING;
	/* A peer that does not read must not keep us either. */
	conn_set_timer(c, T_CLOSE, c->g->cfg.linger_ms + c->g->cfg.head_ms);
}

/* Makes evhttp free the connection (and with it bev, tls and the fd).  An
 * error, not EOF: evhttp may take EOF as the end of a body. */
static void
conn_close_now(struct guard_conn *c)
{
	c->phase = C_CLOSED;
	conn_set_timer(c, T_NONE, 0);
	evtimer_del(c->ev_handshake);
	if (!conn_dead(c))
		bufferevent_trigger_event(c->bev,
		    BEV_EVENT_ERROR | BEV_EVENT_READING, 0);
}
