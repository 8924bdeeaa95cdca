/* runtime/llm/chat.h - chat templates.  maas does not run Jinja: it
 * recognises the templates models ship in tokenizer.chat_template (ChatML,
 * Llama 2, Llama 3, and others it knows) and renders them in C.  A model
 * whose template it does not recognise is refused at registration. */
#ifndef RUNTIME_LLM_CHAT_H
#define RUNTIME_LLM_CHAT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/llm/tokenizer.h"

enum chat_tmpl { CHAT_NONE = 0, CHAT_CHATML, CHAT_LLAMA2, CHAT_LLAMA3 };

struct chat_msg {
	const char	*role;		/* system, user, assistant */
	const char	*content;
	size_t		 content_len;
};

/* The template a model's tokenizer.chat_template text names; CHAT_NONE
 * when it is not one maas can apply (the caller reports it). */
enum chat_tmpl chat_detect(const char *tmpl, size_t len);
const char *chat_tmpl_name(enum chat_tmpl);
/* Renders msgs and the assistant prompt into out (at most cap bytes,
 * NUL-terminated).  Returns the length, or -1 if it does not fit or a
 * role is unknown to the template. */
long	chat_render(enum chat_tmpl, const struct chat_msg *msgs, size_t n,
	    char *out, size_t cap);

/* The system message a ChatML template writes by itself when the
 * conversation does not start with one (Qwen2's "You are a helpful
 * assistant."): its text, unescaped, into out (NUL-terminated).  Returns
 * the length, or -1 when the template has none or it does not fit.  The
 * caller keeps it from load and, when msgs[0] is not a system message,
 * passes it as a first {"system", text} message, which renders exactly as
 * the Jinja's literal does. */
long	chat_default_system(const char *tmpl, size_t len, char *out,
	    size_t cap);

/* BOS rule (no prompt ever gets two): chat_render never writes the
 * beginning-of-sequence token that Llama 2's and Llama 3's Jinja put first
 * ({{ bos_token }}); the caller prepends tok_bos() as an id, once, when
 * tok_add_bos() or chat_wants_bos() says so.  BOS/EOS texts inside the
 * conversation (Llama 2's "</s><s>" between turns) are rendered as text in
 * markup spans.  chat_tokenize() applies this rule. */
bool	chat_wants_bos(enum chat_tmpl);
/* chat_render, also listing in spans (room for max) the byte ranges the
 * template itself wrote, where special tokens may be recognised
 * (tok_encode_spans); the content of messages lies outside them.  -1 as
 * chat_render, or when the spans do not fit. */
long	chat_render_spans(enum chat_tmpl, const struct chat_msg *msgs,
	    size_t n, char *out, size_t cap, struct tok_span *spans,
	    size_t max, size_t *nspans);
/* Renders and tokenizes msgs for tok: BOS by the rule above, special
 * tokens only in the template's markup (a tenant who writes "<|im_end|>"
 * gets it as plain text).  Returns the number of ids (which may exceed
 * cap: nothing past cap is written), or -1 as chat_render or when the
 * rendered text exceeds TOK_MAX_TEXT. */
long	chat_tokenize(enum chat_tmpl, const struct tokenizer *,
	    const struct chat_msg *msgs, size_t n, int32_t *ids, size_t cap);
#endif
