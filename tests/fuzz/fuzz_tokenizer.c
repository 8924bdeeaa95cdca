/* tests/fuzz/fuzz_tokenizer.c - libFuzzer target for the tokenizers
 * (runtime/llm/tokenizer.c).  The first byte picks the case:
 *   0x80 set   the rest is a GGUF image: whatever vocabulary
 *              tok_from_gguf accepts must encode and decode a fixed text;
 *   otherwise  the rest is text for a small SPM vocabulary or a byte-level
 *              BPE one with the pre-tokenizer chosen by the low bits, with
 *              or without special tokens.  Ids must be in the vocabulary,
 *              a count must not depend on cap, and decode(encode(text))
 *              must give the text back (BPE always; SPM unless the text
 *              holds U+2581, which SPM spells spaces with). */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "runtime/llm/gguf.h"
#include "runtime/llm/tokenizer.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MAX_TEXT	(64 * 1024)

static struct tokenizer	*spm, *bpe[4];

/* GPT-2's byte alphabet, as UTF-8. */
static void
byte_text(unsigned b, char *o)
{
	unsigned	cp = b, i, k = 0;

#define KEPT(x)	(((x) >= 0x21 && (x) <= 0x7E) || ((x) >= 0xA1 && (x) <= 0xAC) || \
		((x) >= 0xAE))
	if (!KEPT(b)) {
		for (i = 0; i < b; i++)
			if (!KEPT(i))
				k++;
		cp = 0x100 + k;
	}
#undef KEPT
	if (cp < 0x80) {
		o[0] = (char)cp;
		o[1] = '\0';
	} else {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		o[2] = '\0';
	}
}

static void
setup(void)
{
	static const char *const pres[4] = { "gpt2", "llama-bpe", "qwen2",
	    "smollm" };
	static const char *const words[] = { "\xe2\x96\x81", "a", "b", "ab",
	    "\xe2\x96\x81""a", "aa", "th", "the", "\xe2\x96\x81the", "<s>" };
	static char	 bytes[256][8], btext[256][4];
	const char	*text[300], *merges[8];
	int32_t		 type[300];
	float		 score[300];
	struct tok_vocab v;
	char		 err[128];
	int		 i, n;

	/* SPM: <unk> <s> </s>, bytes, words (the last "<s>" is normal text
	 * that merges must never confuse with the control token) */
	text[0] = "<unk>";
	text[1] = "<s>";
	text[2] = "</s>";
	type[0] = 2;
	type[1] = type[2] = 3;
	for (i = 0; i < 256; i++) {
		snprintf(bytes[i], sizeof(bytes[i]), "<0x%02X>", i);
		text[3 + i] = bytes[i];
		type[3 + i] = 6;
	}
	n = 259;
	for (i = 0; i < (int)(sizeof(words) / sizeof(words[0])) - 1; i++) {
		text[n] = words[i];
		type[n] = 1;
		score[n] = -(float)(i % 4);
		n++;
	}
	for (i = 0; i < 259; i++)
		score[i] = 0;
	memset(&v, 0, sizeof(v));
	v.kind = TOK_SPM;
	v.n = n;
	v.text = text;
	v.types = type;
	v.scores = score;
	v.bos = 1;
	v.eos = 2;
	v.eot = -1;
	v.unk = 0;
	v.add_bos = v.add_space_prefix = -1;
	if (tok_new(&v, &spm, err, sizeof(err)) == -1)
		abort();

	/* BPE: bytes, a few merges, specials */
	for (i = 0; i < 256; i++) {
		byte_text((unsigned)i, btext[i]);
		text[i] = btext[i];
		type[i] = 1;
	}
	text[256] = "he";
	text[257] = "ll";
	text[258] = "hell";
	text[259] = "\xc4\xa0w";	/* " w" */
	text[260] = "<|im_end|>";
	text[261] = "<|user|>";
	for (i = 256; i < 260; i++)
		type[i] = 1;
	type[260] = 3;
	type[261] = 4;
	merges[0] = "h e";
	merges[1] = "l l";
	merges[2] = "he ll";
	merges[3] = "\xc4\xa0 w";
	memset(&v, 0, sizeof(v));
	v.kind = TOK_BPE;
	v.n = 262;
	v.text = text;
	v.types = type;
	v.n_merges = 4;
	v.merges = merges;
	v.bos = v.eot = v.unk = -1;
	v.eos = 260;
	v.add_bos = v.add_space_prefix = -1;
	for (i = 0; i < 4; i++) {
		v.pre = pres[i];
		if (tok_new(&v, &bpe[i], err, sizeof(err)) == -1)
			abort();
	}
}

static void
check(const struct tokenizer *t, const char *s, size_t n, bool special,
    bool roundtrip)
{
	int32_t	*ids;
	char	*back;
	long	 k, k2;
	size_t	 m, i;

	k = tok_encode(t, s, n, special, NULL, 0);
	assert(k >= 0 && (size_t)k <= 3 * n + 3);
	ids = xcalloc((size_t)k + 1, sizeof(*ids));
	k2 = tok_encode(t, s, n, special, ids, (size_t)k / 2);
	assert(k2 == k);
	k2 = tok_encode(t, s, n, special, ids, (size_t)k);
	assert(k2 == k);
	for (i = 0; i < (size_t)k; i++)
		assert(ids[i] >= 0 && ids[i] < tok_n_vocab(t));
	m = tok_decode(t, ids, (size_t)k, special, NULL, 0);
	back = xmalloc(m + 1);
	assert(tok_decode(t, ids, (size_t)k, special, back, m) == m);
	if (roundtrip && !special)
		assert(m == n && memcmp(back, s, n) == 0);
	for (i = 0; i < (size_t)k; i++) {
		char	p[8];

		(void)tok_piece(t, ids[i], true, p, sizeof(p));
		(void)tok_is_eog(t, ids[i]);
	}
	free(back);
	free(ids);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*s = (const char *)data + 1;
	struct gguf		*g;
	struct tokenizer	*t;
	char			 err[256];
	size_t			 n;
	bool			 special;

	if (spm == NULL)
		setup();
	if (size < 1)
		return 0;
	n = size - 1;
	if (n > FUZZ_MAX_TEXT)
		n = FUZZ_MAX_TEXT;
	if (data[0] & 0x80) {
		if (gguf_parse(data + 1, size - 1, &g, err, sizeof(err)) == -1)
			return 0;
		if (tok_from_gguf(g, &t, err, sizeof(err)) == 0) {
			check(t, "Hello, world! <s> 123 \xc3\xa9\xff", 19, false,
			    tok_kind(t) == TOK_BPE);
			tok_free(t);
		}
		gguf_close(g);
		return 0;
	}
	special = (data[0] & 0x40) != 0;
	if (data[0] & 0x20)
		check(spm, s, n, special,
		    memmem(s, n, "\xe2\x96\x81", 3) == NULL);
	else
		check(bpe[data[0] & 3], s, n, special, true);
	return 0;
}
