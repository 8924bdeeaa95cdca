/* tests/unit/test_guard.c - the request-framing guard's parser
 * (gateway/guard.c) on byte strings: what it forwards to evhttp, what it
 * drops, and its verdict on every kind of malformed or smuggling request.
 * Every case is also run split at every byte boundary and one byte at a
 * time: the verdict and the forwarded bytes must not change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/guard.h"

#define MAX_BODY	1000

struct outcome {
	enum guard_result	 last;		/* GUARD_ERROR or not */
	int			 status;
	const char		*code;
	uint64_t		 messages;
	char			 fwd[40000];	/* kept bytes, in order */
	size_t			 fwd_len;
	size_t			 dropped;
	size_t			 consumed;	/* fed and accepted */
};

static struct guard_config	cfg;

static void
config(void)
{
	guard_config_init(&cfg, MAX_BODY, 16 * 1024);
}

/* Feeds in[0..len) in pieces: first `split` bytes, then pieces of `step`
 * (0: the rest at once), like the connection code does: held bytes stay
 * in front and spans release them. */
static void
run(const char *in, size_t len, size_t split, size_t step,
    struct outcome *o)
{
	struct guard_parser	p;
	size_t			pos = 0, front = 0, used, n;
	enum guard_result	r = GUARD_MORE;

	memset(o, 0, sizeof(*o));
	guard_parser_init(&p, &cfg);
	while (pos < len) {
		if (pos < split)
			n = split - pos;
		else
			n = step == 0 ? len - pos : step;
		if (n > len - pos)
			n = len - pos;
		r = guard_parser_feed(&p, in + pos, n, &used);
		assert_true(used <= n);
		pos += used;
		for (size_t i = 0; i < p.nspans; i++) {
			if (p.spans[i].keep) {
				assert_true(o->fwd_len + p.spans[i].len <=
				    sizeof(o->fwd));
				memcpy(o->fwd + o->fwd_len, in + front,
				    p.spans[i].len);
				o->fwd_len += p.spans[i].len;
			} else
				o->dropped += p.spans[i].len;
			front += p.spans[i].len;
		}
		p.nspans = 0;
		assert_int_equal(front + p.held, pos);
		if (r == GUARD_ERROR)
			break;
		if (used == 0 && r == GUARD_MORE)
			fail_msg("no progress at %zu", pos);
	}
	o->last = r;
	o->status = r == GUARD_ERROR ? p.status : 0;
	o->code = r == GUARD_ERROR ? p.code : NULL;
	o->messages = p.messages;
	o->consumed = pos;
}

static void
check_same(const struct outcome *a, const struct outcome *b, size_t at)
{
	if (a->status != b->status || a->messages != b->messages ||
	    a->fwd_len != b->fwd_len ||
	    memcmp(a->fwd, b->fwd, a->fwd_len) != 0 ||
	    a->dropped != b->dropped)
		fail_msg("split at %zu: status %d/%d messages %llu/%llu "
		    "forwarded %zu/%zu dropped %zu/%zu", at, a->status,
		    b->status, (unsigned long long)a->messages,
		    (unsigned long long)b->messages, a->fwd_len, b->fwd_len,
		    a->dropped, b->dropped);
}

/* Runs whole, split at every boundary and byte by byte; all agree. */
static void
parse(const char *in, size_t len, struct outcome *o)
{
	static struct outcome	alt;

	run(in, len, 0, 0, o);
	for (size_t k = 1; k < len; k++) {
		run(in, len, k, 0, &alt);
		check_same(o, &alt, k);
	}
	run(in, len, 0, 1, &alt);
	check_same(o, &alt, 0);
}

#define PARSE(s, o)	parse((s), sizeof(s) - 1, (o))

/* A request the guard must pass through untouched. */
static void
expect_pass(const char *in, size_t len, uint64_t messages)
{
	struct outcome	o;

	parse(in, len, &o);
	if (o.last == GUARD_ERROR)
		fail_msg("refused (%d %s): %.*s", o.status, o.code,
		    (int)(len > 200 ? 200 : len), in);
	assert_int_equal(o.messages, messages);
	assert_int_equal(o.fwd_len, len);
	assert_memory_equal(o.fwd, in, len);
	assert_int_equal(o.dropped, 0);
}

#define PASS(s, n)	expect_pass((s), sizeof(s) - 1, (n))

/* A request refused with status and code; nothing after the bad request
 * may have been forwarded (messages counts the good ones before it). */
static void
expect_fail(const char *in, size_t len, int status, const char *code,
    uint64_t messages)
{
	struct outcome	o;

	parse(in, len, &o);
	if (o.last != GUARD_ERROR)
		fail_msg("accepted, wanted %d %s: %.*s", status, code,
		    (int)(len > 200 ? 200 : len), in);
	if (o.status != status || strcmp(o.code, code) != 0)
		fail_msg("got %d %s, wanted %d %s: %.*s", o.status, o.code,
		    status, code, (int)(len > 200 ? 200 : len), in);
	assert_int_equal(o.messages, messages);
}

#define FAIL(s, st, code)	expect_fail((s), sizeof(s) - 1, (st), (code), 0)

static void
test_valid_requests(void **state)
{
	(void)state;
	config();
	PASS("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1);
	PASS("GET /v1/models?x=1&y=%2F HTTP/1.1\r\nHost: a:8443\r\n"
	    "User-Agent: t/1\r\nAccept: */*\r\nX-Empty:\r\n"
	    "X-Spaces:   inner  value   \r\nX-Obs: caf\xc3\xa9\r\n\r\n", 1);
	PASS("GET / HTTP/1.0\r\n\r\n", 1);		/* no Host in 1.0 */
	PASS("HEAD /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 1);
	PASS("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 1);
	PASS("GET http://example.com:443/a?b HTTP/1.1\r\nHost: a\r\n\r\n", 1);
	PASS("GET HTTPS://10.0.0.1/ HTTP/1.1\r\nHost: a\r\n\r\n", 1);
	PASS("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	    1);
	PASS("POST /p HTTP/1.1\r\nHost: a\r\ncontent-length:  5  \r\n"
	    "CONTENT-LENGTH: 5\r\n\r\nhello", 1);	/* equal duplicates */
	PASS("POST /p HTTP/1.0\r\nContent-Length: 000\r\n\r\n", 1);
	PASS("PUT /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n"
	    "\r\n5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n", 1);
	PASS("POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
	    "Content-Length: 2\r\n\r\nhi", 1);
	PASS("POST /p HTTP/1.0\r\nExpect: whatever\r\n"
	    "Content-Length: 2\r\n\r\nhi", 1);	/* ignored in 1.0 */
	PASS("GET /%41%7e HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 1);
	PASS("DELETE /a HTTP/1.1\r\nHost: a\r\nX-Tab:\tv\tw\t\r\n\r\n", 1);
	{
		static char	buf[2000];
		size_t		n;

		n = (size_t)snprintf(buf, sizeof(buf), "PATCH /a HTTP/1.1\r\n"
		    "Host: a\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
		memset(buf + n, 'x', MAX_BODY);	/* exactly the limit */
		expect_pass(buf, n + MAX_BODY, 1);
	}
}

static void
test_pipelined(void **state)
{
	static const char *const parts[] = {
		"GET /a HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		"\r\n3\r\nxyz\r\n0\r\n\r\n",
		"HEAD /d HTTP/1.0\r\n\r\n",
	};
	char			in[512];
	size_t			ends[4], len = 0, off = 0, used;
	struct guard_parser	p;
	int			k = 0;
	enum guard_result	r;

	(void)state;
	config();
	for (size_t i = 0; i < 4; i++) {
		memcpy(in + len, parts[i], strlen(parts[i]));
		len += strlen(parts[i]);
		ends[i] = len;
	}
	expect_pass(in, len, 4);
	/* The parser stops right after each message, so the connection
	 * code can hold the next one back until evhttp took this one. */
	guard_parser_init(&p, &cfg);
	while (off < len) {
		r = guard_parser_feed(&p, in + off, len - off, &used);
		p.nspans = 0;
		off += used;
		if (r == GUARD_MESSAGE) {
			assert_true(k < 4);
			assert_int_equal(off, ends[k]);
			assert_int_equal(p.phase, GUARD_IDLE);
			k++;
		} else
			assert_int_equal(r, GUARD_MORE);
	}
	assert_int_equal(k, 4);
}

static void
test_chunk_extensions_and_trailers_dropped(void **state)
{
	static const char	in[] =
	    "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5;name=value\r\nhello\r\n"
	    "3 ; a ; b=\"q \\\" s\" ;c=tok\r\nxyz\r\n"
	    "0;last\r\nX-Trailer: 1\r\nAuthorization: Bearer smuggled\r\n\r\n"
	    "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char	want[] =
	    "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n3\r\nxyz\r\n0\r\n\r\n"
	    "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
	struct outcome		o;

	(void)state;
	config();
	PARSE(in, &o);
	assert_int_not_equal(o.last, GUARD_ERROR);
	assert_int_equal(o.messages, 2);
	assert_int_equal(o.fwd_len, sizeof(want) - 1);
	assert_memory_equal(o.fwd, want, sizeof(want) - 1);
	assert_int_equal(o.dropped, sizeof(in) - sizeof(want));
}

static void
test_leading_empty_lines(void **state)
{
	static const char	in[] =
	    "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
	struct outcome		o;

	(void)state;
	config();
	PARSE(in, &o);
	assert_int_not_equal(o.last, GUARD_ERROR);
	assert_int_equal(o.messages, 1);
	assert_int_equal(o.dropped, 4);
	assert_memory_equal(o.fwd, in + 4, sizeof(in) - 5);
	FAIL("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_request_line");
	FAIL("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_request_line");
}

static void
test_smuggling(void **state)
{
	(void)state;
	config();
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
	    "Content-Length: 44\r\n\r\n", 400, "conflicting_content_length");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
	    400, "invalid_content_length");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
	    400, "invalid_content_length");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\nhello",
	    400, "invalid_content_length");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n",
	    400, "invalid_content_length");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
	    400, "invalid_content_length");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
	    400, "invalid_content_length");
	/* evhttp strips only spaces: a tab near a framing value is out. */
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5\t\r\n\r\nhello",
	    400, "invalid_header");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t5\r\n\r\nhello",
	    400, "invalid_header");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n"
	    "\r\n0\r\n\r\n", 400, "invalid_header");
	/* CL.TE and TE.CL */
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400,
	    "content_length_with_transfer_encoding");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400,
	    "content_length_with_transfer_encoding");
	/* TE.TE */
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: x\r\n\r\n", 400,
	    "unsupported_transfer_encoding");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 400,
	    "unsupported_transfer_encoding");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n"
	    "\r\n", 400, "unsupported_transfer_encoding");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked"
	    "\r\n\r\n", 400, "unsupported_transfer_encoding");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, "
	    "chunked\r\n\r\n", 400, "unsupported_transfer_encoding");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n"
	    "\r\n", 400, "invalid_header");
	FAIL("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\n", 400, "unsupported_transfer_encoding");
	/* evhttp reads no body after HEAD */
	FAIL("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\n"
	    "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", 400, "unexpected_body");
	FAIL("HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n0\r\n\r\n", 400, "unexpected_body");
	/* the smuggled part after a good request is refused */
	expect_fail("GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	    "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
	    "Content-Length: 2\r\n\r\n", 103, 400,
	    "conflicting_content_length", 1);
}

static void
test_header_syntax(void **state)
{
	(void)state;
	config();
	FAIL("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "invalid_header");
	FAIL("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "invalid_header");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400,
	    "obs_fold");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400,
	    "obs_fold");
	FAIL("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "obs_fold");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400,
	    "invalid_header");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n", 400,
	    "invalid_header");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400,
	    "invalid_line_ending");
	FAIL("GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400,
	    "invalid_header");
	FAIL("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "invalid_request_line");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "invalid_header");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400,
	    "invalid_line_ending");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n", 400,
	    "invalid_header");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nNo-Colon\r\n\r\n", 400,
	    "invalid_header");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\n: empty-name\r\n\r\n", 400,
	    "invalid_header");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400,
	    "invalid_header");
	FAIL("GET / HTTP/1.1\r\n\r\n", 400, "missing_host");
	FAIL("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
	    "invalid_host");
	FAIL("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid_host");
	FAIL("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid_host");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n"
	    "Content-Length: 1\r\n\r\nx", 417, "expectation_failed");
}

static void
test_request_line(void **state)
{
	(void)state;
	config();
	FAIL("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_method");
	FAIL("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_method");
	FAIL(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_request_line");
	FAIL("get / HTTP/1.1\r\nHost: a\r\n\r\n", 501,
	    "method_not_implemented");
	FAIL("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 501,
	    "method_not_implemented");
	FAIL("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501,
	    "method_not_implemented");
	FAIL("GETTTTTTTTTTTTT / HTTP/1.1\r\nHost: a\r\n\r\n", 501,
	    "method_not_implemented");
	FAIL("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
	FAIL("GET //evil:99999/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_target");
	FAIL("GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
	FAIL("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
	FAIL("GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
	FAIL("GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
	FAIL("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_target");
	FAIL("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
	FAIL("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
	FAIL("GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
	FAIL("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_target");
	FAIL("GET http://a:99999/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_target");
	FAIL("GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_target");
	FAIL("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "invalid_target");
	FAIL("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, "invalid_http_version");
	FAIL("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400, "invalid_http_version");
	FAIL("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400,
	    "invalid_http_version");
	FAIL("GET / http/1.1\r\nHost: a\r\n\r\n", 400, "invalid_http_version");
	FAIL("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 400, "invalid_http_version");
	FAIL("GET /\r\n\r\n", 400, "invalid_target");
	FAIL("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "invalid_request_line");
	FAIL("GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "invalid_line_ending");
}

static void
test_chunk_syntax(void **state)
{
#define CH "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	(void)state;
	config();
	FAIL(CH "0x5\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "+5\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "-5\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH " 5\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5 \r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "\r\n5\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "00000000000000005\r\nhello\r\n0\r\n\r\n", 400,
	    "invalid_chunk");
	FAIL(CH "5;\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5;a=\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5;a=\"x\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5;a b\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5;a=b c\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5\nhello\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5\rhello\r\n0\r\n\r\n", 400, "invalid_line_ending");
	FAIL(CH "5\r\nhelloX\r\n0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5\r\nhello\r0\r\n\r\n", 400, "invalid_chunk");
	FAIL(CH "5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", 400, "obs_fold");
	FAIL(CH "5\r\nhello\r\n0\r\nX : a\r\n\r\n", 400, "invalid_header");
	FAIL(CH "5\r\nhello\r\n0\r\n\n", 400, "invalid_header");
	/* BWS before ';' is chunk-ext syntax: valid, and dropped */
	{
		static const char	in[] =
		    CH "5 ;a=b\r\nhello\r\n0\r\n\r\n";
		static const char	want[] = CH "5\r\nhello\r\n0\r\n\r\n";
		struct outcome		o;

		PARSE(in, &o);
		assert_int_equal(o.status, 0);
		assert_int_equal(o.messages, 1);
		assert_int_equal(o.fwd_len, sizeof(want) - 1);
		assert_memory_equal(o.fwd, want, sizeof(want) - 1);
	}
#undef CH
}

static void
test_limits(void **state)
{
	static char	buf[40000];
	size_t		n;
	struct outcome	o;

	(void)state;
	config();
	/* request line: exactly the limit passes, one more is 414 */
	n = (size_t)snprintf(buf, sizeof(buf), "GET /");
	while (n < cfg.max_request_line - strlen(" HTTP/1.1\r\n"))
		buf[n++] = 'a';
	n += (size_t)snprintf(buf + n, sizeof(buf) - n,
	    " HTTP/1.1\r\nHost: a\r\n\r\n");
	run(buf, n, 0, 0, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.messages, 1);
	memmove(buf + 6, buf + 5, n - 5);
	buf[5] = 'a';
	run(buf, n + 1, 0, 0, &o);
	assert_int_equal(o.status, 414);
	/* 414 is decided before the line ends */
	run(buf, cfg.max_request_line + 1, 0, 0, &o);
	assert_int_equal(o.status, 414);

	/* header count */
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (size_t k = 1; k < cfg.max_header_count; k++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
		    "X-%zu: v\r\n", k);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
	run(buf, n, 0, 0, &o);
	assert_int_equal(o.status, 0);
	n -= 2;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-last: v\r\n\r\n");
	run(buf, n, 0, 0, &o);
	assert_int_equal(o.status, 431);
	assert_string_equal(o.code, "too_many_headers");

	/* header bytes: the section, terminator included, is the limit */
	n = (size_t)snprintf(buf, sizeof(buf),
	    "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
	while (n < strlen("GET / HTTP/1.1\r\n") + cfg.max_header_bytes - 4)
		buf[n++] = 'b';
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n\r\n");
	run(buf, n, 0, 0, &o);
	assert_int_equal(o.status, 0);
	memmove(buf + 32, buf + 31, n - 31);
	run(buf, n + 1, 0, 0, &o);
	assert_int_equal(o.status, 431);
	assert_string_equal(o.code, "headers_too_large");

	/* body: Content-Length over the limit is refused before the body */
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413,
	    "request_too_large");
	FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
	    "99999999999999999999999999\r\n\r\n", 413, "request_too_large");
	/* chunked: the sum counts, up to the limit exactly */
	n = (size_t)snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n1f4\r\n");
	memset(buf + n, 'x', 500);
	n += 500;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n1f4\r\n");
	memset(buf + n, 'y', 500);
	n += 500;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n0\r\n\r\n");
	parse(buf, n, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.messages, 1);
	memcpy(buf + n - 7 - 500 - 5, "1f5", 3);
	run(buf, n, 0, 0, &o);
	assert_int_equal(o.status, 413);
	assert_string_equal(o.code, "request_too_large");
	/* and it is refused at the size line, before its data */
	assert_int_equal(o.consumed, n - 7 - 500);
}

static void
test_config(void **state)
{
	struct guard_config	c;
	char			err[128];

	(void)state;
	guard_config_init(&c, 5, 16384);
	assert_int_equal(c.max_request_line, 8192);
	assert_int_equal(c.max_header_bytes, 16384);
	assert_int_equal(c.max_header_count, 100);
	assert_int_equal(c.handshake_ms, 10000);
	assert_int_equal(c.head_ms, 10000);
	assert_int_equal(c.idle_ms, 60000);
	assert_int_equal(c.max_conns, 4096);
	assert_int_equal(c.max_conns_per_ip, 256);
	assert_int_equal(guard_config_parse(&c, NULL, err, sizeof(err)), 0);
	assert_int_equal(guard_config_parse(&c, "", err, sizeof(err)), 0);
	assert_int_equal(guard_config_parse(&c,
	    "head_ms=1500,idle_ms=2000,per_ip=3,max_conns=10,handshake_ms=700",
	    err, sizeof(err)), 0);
	assert_int_equal(c.head_ms, 1500);
	assert_int_equal(c.idle_ms, 2000);
	assert_int_equal(c.max_conns_per_ip, 3);
	assert_int_equal(c.max_conns, 10);
	assert_int_equal(c.handshake_ms, 700);
	assert_int_equal(guard_config_parse(&c, "nope=1", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "nope"));
	assert_int_equal(guard_config_parse(&c, "head_ms=0", err,
	    sizeof(err)), -1);
	assert_int_equal(guard_config_parse(&c, "head_ms=-5", err,
	    sizeof(err)), -1);
	assert_int_equal(guard_config_parse(&c, "head_ms=5x", err,
	    sizeof(err)), -1);
	assert_int_equal(guard_config_parse(&c, "head_ms", err, sizeof(err)),
	    -1);
	assert_int_equal(guard_config_evhttp_headers(&c), 8192 + 16384);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_valid_requests),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_chunk_extensions_and_trailers_dropped),
		cmocka_unit_test(test_leading_empty_lines),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_header_syntax),
		cmocka_unit_test(test_request_line),
		cmocka_unit_test(test_chunk_syntax),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
