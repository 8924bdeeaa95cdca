/* tests/fuzz/fuzz_chat.c - libFuzzer target for the chat templates
 * (runtime/llm/chat.c): chat_detect over arbitrary template text, and
 * every template rendering messages cut from the input (roles picked by a
 * byte, contents arbitrary), then tokenized with a byte-level vocabulary.
 * Renders must stay in their buffer, be NUL-terminated, keep their spans
 * inside the text, and tokenizing must never recognise a special token
 * inside a message: the count of <|im_end|> tokens is the template's own. */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "runtime/llm/chat.h"
#include "runtime/llm/tokenizer.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MAX_MSGS	8

static struct tokenizer	*tok;

static void
setup(void)
{
	static char	 btext[256][4];
	const char	*text[260];
	int32_t		 type[260];
	struct tok_vocab v;
	char		 err[128];
	unsigned	 b, i, k, cp;

	for (b = 0; b < 256; b++) {
#define KEPT(x)	(((x) >= 0x21 && (x) <= 0x7E) || ((x) >= 0xA1 && (x) <= 0xAC) || \
		((x) >= 0xAE))
		cp = b;
		if (!KEPT(b)) {
			for (i = 0, k = 0; i < b; i++)
				if (!KEPT(i))
					k++;
			cp = 0x100 + k;
		}
#undef KEPT
		if (cp < 0x80)
			btext[b][0] = (char)cp;
		else {
			btext[b][0] = (char)(0xC0 | (cp >> 6));
			btext[b][1] = (char)(0x80 | (cp & 0x3F));
		}
		text[b] = btext[b];
		type[b] = 1;
	}
	text[256] = "<|im_start|>";
	text[257] = "<|im_end|>";
	text[258] = "<|eot_id|>";
	text[259] = "<s>";
	type[256] = type[257] = type[258] = type[259] = 3;
	memset(&v, 0, sizeof(v));
	v.kind = TOK_BPE;
	v.pre = "llama-bpe";
	v.n = 260;
	v.text = text;
	v.types = type;
	v.bos = 259;
	v.eos = 258;
	v.eot = v.unk = -1;
	v.add_bos = v.add_space_prefix = -1;
	if (tok_new(&v, &tok, err, sizeof(err)) == -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const roles[4] = { "system", "user", "assistant",
	    "tool" };
	struct chat_msg	 m[FUZZ_MAX_MSGS];
	struct tok_span	 sp[3 * FUZZ_MAX_MSGS + 2];
	char		*out;
	int32_t		*ids;
	size_t		 n = 0, i, cap, nsp, pos;
	long		 r, k, j, ime;
	int		 t;

	if (tok == NULL)
		setup();
	(void)chat_detect((const char *)data, size);
	{
		char	sys[64];
		long	l = chat_default_system((const char *)data, size, sys,
			    sizeof(sys));

		assert(l < (long)sizeof(sys));
		assert(l < 0 || sys[l] == '\0');
	}
	if (size < 2)
		return 0;
	cap = data[0] * 4u;
	/* messages: a role byte, then content up to the next 0xFF byte */
	for (pos = 1; pos < size && n < FUZZ_MAX_MSGS;) {
		const uint8_t	*e;

		m[n].role = roles[data[pos] & 3];
		pos++;
		e = memchr(data + pos, 0xFF, size - pos);
		m[n].content = (const char *)data + pos;
		m[n].content_len = (e ? (size_t)(e - data) : size) - pos;
		pos += m[n].content_len + 1;
		n++;
	}
	out = xmalloc(cap + 1);
	for (t = CHAT_NONE; t <= CHAT_LLAMA3; t++) {
		r = chat_render_spans((enum chat_tmpl)t, m, n, out, cap, sp,
		    sizeof(sp) / sizeof(sp[0]), &nsp);
		if (r < 0)
			continue;
		assert((size_t)r < cap && out[r] == '\0');
		for (i = 0; i < nsp; i++)
			assert(sp[i].off + sp[i].len <= (size_t)r);
		k = chat_tokenize((enum chat_tmpl)t, tok, m, n, NULL, 0);
		assert(k >= 0);
		ids = xcalloc((size_t)k + 1, sizeof(*ids));
		assert(chat_tokenize((enum chat_tmpl)t, tok, m, n, ids,
		    (size_t)k) == k);
		/* ChatML writes one <|im_end|> per message; contents none */
		for (j = 0, ime = 0; j < k; j++)
			ime += ids[j] == 257;
		if (t == CHAT_CHATML)
			assert(ime == (long)n);
		else
			assert(ime == 0);
		free(ids);
	}
	free(out);
	return 0;
}
