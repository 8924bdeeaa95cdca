/* runtime/llm/chat.h - chat templates.  maas does not run Jinja: it
 * recognises the templates models ship in tokenizer.chat_template (ChatML,
 * Llama 2, Llama 3, and others it knows) and renders them in C.  A model
 * whose template it does not recognise is refused at registration. */
#ifndef RUNTIME_LLM_CHAT_H
#define RUNTIME_LLM_CHAT_H
#include <stddef.h>

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
#endif
