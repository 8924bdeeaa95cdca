/* runtime/llm/chat.c - the chat templates maas can apply, written in C
 * to give the text the models' own Jinja gives for system, user and
 * assistant turns with add_generation_prompt:
 *
 * ChatML  '<|im_start|>' + role + '\n' + content + '<|im_end|>\n' per
 *         message, then '<|im_start|>assistant\n'.  Content as is.
 * Llama 2 Meta's template: an optional first system message is folded
 *         into the first user turn as '<<SYS>>\n' + sys + '\n<</SYS>>\n\n';
 *         user turns are bos + '[INST] ' + content.strip() + ' [/INST]',
 *         assistant turns ' ' + content.strip() + ' ' + eos; roles must
 *         alternate user/assistant.
 * Llama 3 '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
 *         content|trim + '<|eot_id|>' per message, bos first, then
 *         '<|start_header_id|>assistant<|end_header_id|>\n\n'.
 *
 * The leading bos is the caller's (see chat.h).  What the template writes
 * is recorded as markup spans, so that only there can text become special
 * tokens; message content never can. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "runtime/llm/chat.h"
#include "runtime/llm/tokenizer.h"
#include "runtime/llm/unicode.h"

#define CHAT_MSG_OVERHEAD	64	/* template bytes a message adds */
#define CHAT_FIXED_OVERHEAD	64	/* generation prompt and NUL */
#define CHAT_SPANS_PER_MSG	3

/* The render target: bytes and markup spans, with overflow noted. */
struct chat_out {
	char		*buf;
	size_t		 cap;
	size_t		 n;
	struct tok_span	*sp;
	size_t		 max;
	size_t		 nsp;
	bool		 full;
};

static bool	has(const char *, size_t, const char *);
static void	put(struct chat_out *, const char *, size_t, bool);
static void	puts_markup(struct chat_out *, const char *);
static size_t	ws_len_fwd(const char *, size_t);
static size_t	ws_len_back(const char *, size_t);
static bool	is_pyspace(uint32_t);
static void	strip_from(struct chat_out *, size_t);
static int	role_ok(const char *);
static long	render_chatml(const struct chat_msg *, size_t,
		    struct chat_out *);
static long	render_llama2(const struct chat_msg *, size_t,
		    struct chat_out *);
static long	render_llama3(const struct chat_msg *, size_t,
		    struct chat_out *);

static bool
has(const char *s, size_t n, const char *needle)
{
	return memmem(s, n, needle, strlen(needle)) != NULL;
}

enum chat_tmpl
chat_detect(const char *tmpl, size_t len)
{
	if (tmpl == NULL)
		return CHAT_NONE;
	if (has(tmpl, len, "<|start_header_id|>") &&
	    has(tmpl, len, "<|end_header_id|>") && has(tmpl, len, "<|eot_id|>"))
		return CHAT_LLAMA3;
	if (has(tmpl, len, "<|im_start|>") && has(tmpl, len, "<|im_end|>"))
		return CHAT_CHATML;
	/* Mistral's [INST] templates have no <<SYS>> and render
	 * differently: they are not Llama 2's */
	if (has(tmpl, len, "[INST]") && has(tmpl, len, "[/INST]") &&
	    has(tmpl, len, "<<SYS>>"))
		return CHAT_LLAMA2;
	return CHAT_NONE;
}

long
chat_default_system(const char *tmpl, size_t len, char *out, size_t cap)
{
	static const char	 head[] = "<|im_start|>system";
	static const char	 tail[] = "<|im_end|>\n";
	const char		*p, *end;
	size_t			 n, hl = sizeof(head) - 1;
	size_t			 tl = sizeof(tail) - 1;
	char			 q;

	if (tmpl == NULL || cap == 0)
		return -1;
	end = tmpl + len;
	for (p = tmpl; (p = memmem(p, (size_t)(end - p), head, hl)) != NULL;
	    p += hl) {
		/* a Jinja string literal that starts with the header */
		if (p == tmpl || (p[-1] != '\'' && p[-1] != '"'))
			continue;
		q = p[-1];
		for (n = 0; p < end && *p != q; p++) {
			char	c = *p;

			if (c == '\\' && p + 1 < end) {
				p++;
				c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
			}
			if (n + 1 >= cap)
				return -1;
			out[n++] = c;
		}
		if (p == end || n < hl + 1 + tl || out[hl] != '\n' ||
		    memcmp(out + n - tl, tail, tl) != 0)
			return -1;
		n -= hl + 1 + tl;
		memmove(out, out + hl + 1, n);
		out[n] = '\0';
		return (long)n;
	}
	return -1;
}

const char *
chat_tmpl_name(enum chat_tmpl t)
{
	switch (t) {
	case CHAT_CHATML:
		return "chatml";
	case CHAT_LLAMA2:
		return "llama2";
	case CHAT_LLAMA3:
		return "llama3";
	default:
		return "none";
	}
}

bool
chat_wants_bos(enum chat_tmpl t)
{
	return t == CHAT_LLAMA2 || t == CHAT_LLAMA3;
}

/* --- output --- */

static void
put(struct chat_out *o, const char *s, size_t n, bool markup)
{
	if (o->full || n == 0)
		return;
	if (n >= o->cap - o->n) {	/* keep a byte for the NUL */
		o->full = true;
		return;
	}
	memcpy(o->buf + o->n, s, n);
	if (markup && o->sp != NULL) {
		if (o->nsp > 0 && o->sp[o->nsp - 1].off + o->sp[o->nsp - 1].len
		    == o->n)
			o->sp[o->nsp - 1].len += n;	/* adjacent: extend */
		else if (o->nsp == o->max)
			o->full = true;
		else {
			o->sp[o->nsp].off = o->n;
			o->sp[o->nsp].len = n;
			o->nsp++;
		}
	}
	o->n += n;
}

static void
puts_markup(struct chat_out *o, const char *s)
{
	put(o, s, strlen(s), true);
}

/* Python's str.isspace(), which Jinja's strip and trim use. */
static bool
is_pyspace(uint32_t cp)
{
	return (uni_flags(cp) & UNI_SPACE) || (cp >= 0x1C && cp <= 0x1F);
}

/* Bytes of whitespace at the start of s[0..n). */
static size_t
ws_len_fwd(const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0, l;
	uint32_t		 cp;

	while (i < n) {
		if (u[i] < 0x80) {
			cp = u[i];
			l = 1;
		} else if ((u[i] & 0xE0) == 0xC0 && i + 1 < n) {
			cp = ((uint32_t)(u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F);
			l = 2;
		} else if ((u[i] & 0xF0) == 0xE0 && i + 2 < n) {
			cp = ((uint32_t)(u[i] & 0x0F) << 12) |
			    ((uint32_t)(u[i + 1] & 0x3F) << 6) |
			    (u[i + 2] & 0x3F);
			l = 3;
		} else
			break;		/* no white space has 4 bytes */
		if (!is_pyspace(cp))
			break;
		/* only shortest forms count, as a decoder would see them */
		if ((l == 2 && (u[i + 1] & 0xC0) != 0x80) || (l == 3 &&
		    ((u[i + 1] & 0xC0) != 0x80 || (u[i + 2] & 0xC0) != 0x80)))
			break;
		if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800))
			break;
		i += l;
	}
	return i;
}

/* Bytes of whitespace at the end of s[0..n). */
static size_t
ws_len_back(const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 end = n, st;

	while (end > 0) {
		/* back to the start of the last character (at most 3) */
		for (st = end - 1; st > 0 && end - st < 3 &&
		    (u[st] & 0xC0) == 0x80; st--)
			;
		if (ws_len_fwd(s + st, end - st) != end - st)
			break;
		end = st;
	}
	return n - end;
}

/* Python's strip() over everything written since start. */
static void
strip_from(struct chat_out *o, size_t start)
{
	size_t	lead, trail;

	if (o->full)
		return;
	lead = ws_len_fwd(o->buf + start, o->n - start);
	memmove(o->buf + start, o->buf + start + lead, o->n - start - lead);
	o->n -= lead;
	trail = ws_len_back(o->buf + start, o->n - start);
	o->n -= trail;
}

static int
role_ok(const char *r)
{
	return r != NULL && (strcmp(r, "system") == 0 ||
	    strcmp(r, "user") == 0 || strcmp(r, "assistant") == 0);
}

/* --- templates --- */

static long
render_chatml(const struct chat_msg *m, size_t n, struct chat_out *o)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (!role_ok(m[i].role))
			return -1;
		puts_markup(o, "<|im_start|>");
		puts_markup(o, m[i].role);
		puts_markup(o, "\n");
		put(o, m[i].content, m[i].content_len, false);
		puts_markup(o, "<|im_end|>\n");
	}
	puts_markup(o, "<|im_start|>assistant\n");
	return 0;
}

static long
render_llama2(const struct chat_msg *m, size_t n, struct chat_out *o)
{
	const struct chat_msg	*sys = NULL;
	size_t			 i, k, start;

	if (n > 0 && m[0].role != NULL && strcmp(m[0].role, "system") == 0) {
		sys = &m[0];
		m++;
		n--;
	}
	for (i = 0; i < n; i++) {
		k = i % 2;
		if (m[i].role == NULL || strcmp(m[i].role, k == 0 ? "user" :
		    "assistant") != 0)
			return -1;	/* roles must alternate */
		if (k == 0) {
			if (i > 0)
				puts_markup(o, "<s>");
			puts_markup(o, "[INST] ");
			start = o->n;
			if (i == 0 && sys != NULL) {
				put(o, "<<SYS>>\n", 8, false);
				put(o, sys->content, sys->content_len, false);
				put(o, "\n<</SYS>>\n\n", 11, false);
			}
			put(o, m[i].content, m[i].content_len, false);
			strip_from(o, start);
			puts_markup(o, " [/INST]");
		} else {
			puts_markup(o, " ");
			start = o->n;
			put(o, m[i].content, m[i].content_len, false);
			strip_from(o, start);
			puts_markup(o, " </s>");
		}
	}
	return 0;
}

static long
render_llama3(const struct chat_msg *m, size_t n, struct chat_out *o)
{
	size_t	i, start;

	for (i = 0; i < n; i++) {
		if (!role_ok(m[i].role))
			return -1;
		puts_markup(o, "<|start_header_id|>");
		puts_markup(o, m[i].role);
		puts_markup(o, "<|end_header_id|>\n\n");
		start = o->n;
		put(o, m[i].content, m[i].content_len, false);
		strip_from(o, start);
		puts_markup(o, "<|eot_id|>");
	}
	puts_markup(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	return 0;
}

long
chat_render_spans(enum chat_tmpl t, const struct chat_msg *msgs, size_t n,
    char *out, size_t cap, struct tok_span *spans, size_t max,
    size_t *nspans)
{
	struct chat_out	o = { out, cap, 0, spans, max, 0, false };
	long		r;
	size_t		i;

	if (nspans != NULL)
		*nspans = 0;
	if (cap == 0)
		return -1;
	for (i = 0; i < n; i++)
		if (msgs[i].content == NULL && msgs[i].content_len > 0)
			return -1;
	switch (t) {
	case CHAT_CHATML:
		r = render_chatml(msgs, n, &o);
		break;
	case CHAT_LLAMA2:
		r = render_llama2(msgs, n, &o);
		break;
	case CHAT_LLAMA3:
		r = render_llama3(msgs, n, &o);
		break;
	default:
		return -1;
	}
	if (r == -1 || o.full)
		return -1;
	out[o.n] = '\0';
	if (nspans != NULL)
		*nspans = o.nsp;
	return (long)o.n;
}

long
chat_render(enum chat_tmpl t, const struct chat_msg *msgs, size_t n,
    char *out, size_t cap)
{
	return chat_render_spans(t, msgs, n, out, cap, NULL, 0, NULL);
}

long
chat_tokenize(enum chat_tmpl t, const struct tokenizer *tok,
    const struct chat_msg *msgs, size_t n, int32_t *ids, size_t cap)
{
	struct tok_span	*sp = NULL;
	char		*buf = NULL;
	size_t		 need = CHAT_FIXED_OVERHEAD, i, nsp, maxsp, off = 0;
	long		 len, r = -1;

	for (i = 0; i < n; i++) {
		if (msgs[i].content_len > TOK_MAX_TEXT)
			return -1;
		need += msgs[i].content_len + CHAT_MSG_OVERHEAD;
		if (need > TOK_MAX_TEXT)
			return -1;
	}
	maxsp = n * CHAT_SPANS_PER_MSG + 2;
	buf = xmalloc(need);
	sp = xcalloc(maxsp, sizeof(*sp));
	if ((len = chat_render_spans(t, msgs, n, buf, need, sp, maxsp,
	    &nsp)) == -1)
		goto out;
	if (tok_bos(tok) >= 0 && (tok_add_bos(tok) || chat_wants_bos(t))) {
		if (cap > 0)
			ids[0] = tok_bos(tok);
		off = 1;
	}
	r = tok_encode_spans(tok, buf, (size_t)len, sp, nsp,
	    cap > off ? ids + off : NULL, cap > off ? cap - off : 0);
	if (r >= 0)
		r += (long)off;
 out:
	free(sp);
	free(buf);
	return r;
}
