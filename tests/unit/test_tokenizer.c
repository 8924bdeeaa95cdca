/* tests/unit/test_tokenizer.c - runtime/llm/tokenizer.c (included, to
 * reach its statics): UTF-8 decoding, GPT-2's byte alphabet, the
 * pre-tokenizer patterns, SPM and BPE merging on small hand-made
 * vocabularies with hand-checked ids, special tokens only where asked,
 * round trips of any bytes, a 1 MiB run of one character, and a
 * vocabulary read from a GGUF image built here.
 *
 * `test_tokenizer --split PRE` reads hex-encoded lines on stdin and prints
 * the pre-tokenizer's words, hex-encoded and space-separated, one line per
 * input: tests/integration/test_llmtok_pretok.py compares them with
 * Python's regex module running the patterns themselves.
 * `test_tokenizer --gguf FILE` encodes hex lines with the vocabulary of a
 * GGUF file and prints ids and the decoded text, for
 * tests/integration/test_llmtok_vocab.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/llm/tokenizer.c"

#define SPM_BYTE(b)	(3 + (b))
#define BPE_MAX		64

int	main(int, char **);

/* --- vocabularies --- */

/* SPM: <unk> <s> </s>, the 256 byte tokens, then these with scores. */
static const char *const spm_words[] = {
	"\xe2\x96\x81", "a", "b", "c", "ab", "bc", "abc", "\xe2\x96\x81""a",
	"aa", "h", "i", "\xe2\x96\x81hi", "hi", "\xe2\x96\x81h"
};
static const float spm_scores[] = {
	-1.0f, -2.0f, -3.0f, -4.0f, -5.0f, -0.5f, -0.1f, -6.0f,
	-1.5f, -3.0f, -3.0f, -0.2f, -0.3f, -2.0f
};
enum { SPM_SP = 259, SPM_A, SPM_B, SPM_C, SPM_AB, SPM_BC, SPM_ABC, SPM_SPA,
	SPM_AA, SPM_H, SPM_I, SPM_SPHI, SPM_HI, SPM_SPH, SPM_N };

static struct tokenizer *
spm_new(void)
{
	static char	 bytes[256][8];
	const char	*text[SPM_N];
	float		 score[SPM_N];
	int32_t		 type[SPM_N];
	struct tok_vocab v;
	struct tokenizer *t;
	char		 err[128];
	int		 i;

	text[0] = "<unk>";
	type[0] = TOK_T_UNKNOWN;
	text[1] = "<s>";
	type[1] = TOK_T_CONTROL;
	text[2] = "</s>";
	type[2] = TOK_T_CONTROL;
	for (i = 0; i < 3; i++)
		score[i] = 0.0f;
	for (i = 0; i < 256; i++) {
		snprintf(bytes[i], sizeof(bytes[i]), "<0x%02X>", i);
		text[SPM_BYTE(i)] = bytes[i];
		type[SPM_BYTE(i)] = TOK_T_BYTE;
		score[SPM_BYTE(i)] = 0.0f;
	}
	for (i = SPM_SP; i < SPM_N; i++) {
		text[i] = spm_words[i - SPM_SP];
		score[i] = spm_scores[i - SPM_SP];
		type[i] = TOK_T_NORMAL;
	}
	memset(&v, 0, sizeof(v));
	v.kind = TOK_SPM;
	v.n = SPM_N;
	v.text = text;
	v.scores = score;
	v.types = type;
	v.bos = 1;
	v.eos = 2;
	v.eot = -1;
	v.unk = 0;
	v.add_bos = -1;
	v.add_space_prefix = -1;
	if (tok_new(&v, &t, err, sizeof(err)) == -1)
		fail_msg("tok_new: %s", err);
	return t;
}

/* BPE: the 256 byte tokens (id = byte), then merges' results and
 * specials.  Merges are given in plain bytes and mapped here. */
static const char *const bpe_merges[][2] = {
	{ "h", "e" }, { "l", "l" }, { "he", "ll" }, { "hell", "o" },
	{ " ", "w" }, { "o", "r" }, { " w", "or" }, { "l", "d" },
	{ " wor", "ld" }, { "<", "|" }
};
enum { BPE_HE = 256, BPE_LL, BPE_HELL, BPE_HELLO, BPE_SPW, BPE_OR,
	BPE_SPWOR, BPE_LD, BPE_SPWORLD, BPE_LTBAR, BPE_XYZ, BPE_IMSTART,
	BPE_IMEND, BPE_EOT, BPE_USER, BPE_N };

/* plain bytes to the byte-level alphabet */
static char *
bpe_map(const char *s)
{
	char	*o = xmalloc(strlen(s) * 2 + 1);
	size_t	 n = 0;

	for (; *s; s++)
		n += utf8_put(byte_to_cp((unsigned char)*s), o + n);
	o[n] = '\0';
	return o;
}

static struct tokenizer *
bpe_new(const char *pre)
{
	const char	*text[BPE_N], *merges[BPE_MAX];
	char		*own[BPE_N + BPE_MAX];
	int32_t		 type[BPE_N];
	struct tok_vocab v;
	struct tokenizer *t;
	char		 err[128], one[2] = { 0, 0 }, *a, *b;
	size_t		 nown = 0, i, nm;

	for (i = 0; i < 256; i++) {
		one[0] = (char)i;
		if (i == 0) {
			own[nown] = xstrdup("\xc4\x80");	/* U+0100 */
		} else
			own[nown] = bpe_map(one);
		text[i] = own[nown++];
		type[i] = TOK_T_NORMAL;
	}
	nm = sizeof(bpe_merges) / sizeof(bpe_merges[0]);
	for (i = 0; i < nm; i++) {
		char	cat[64];

		snprintf(cat, sizeof(cat), "%s%s", bpe_merges[i][0],
		    bpe_merges[i][1]);
		text[256 + i] = own[nown++] = bpe_map(cat);
		type[256 + i] = TOK_T_NORMAL;
		a = bpe_map(bpe_merges[i][0]);
		b = bpe_map(bpe_merges[i][1]);
		own[nown] = xmalloc(strlen(a) + strlen(b) + 2);
		snprintf(own[nown], strlen(a) + strlen(b) + 2, "%s %s", a, b);
		merges[i] = own[nown++];
		free(a);
		free(b);
	}
	text[BPE_XYZ] = "xyz";
	type[BPE_XYZ] = TOK_T_NORMAL;
	text[BPE_IMSTART] = "<|im_start|>";
	type[BPE_IMSTART] = TOK_T_CONTROL;
	text[BPE_IMEND] = "<|im_end|>";
	type[BPE_IMEND] = TOK_T_CONTROL;
	text[BPE_EOT] = "<|endoftext|>";
	type[BPE_EOT] = TOK_T_CONTROL;
	text[BPE_USER] = "<|user|>";
	type[BPE_USER] = TOK_T_USER;
	memset(&v, 0, sizeof(v));
	v.kind = TOK_BPE;
	v.pre = pre;
	v.n = BPE_N;
	v.text = text;
	v.types = type;
	v.n_merges = nm;
	v.merges = merges;
	v.bos = BPE_EOT;
	v.eos = BPE_EOT;
	v.eot = -1;
	v.unk = -1;
	v.add_bos = 0;
	v.add_space_prefix = -1;
	if (tok_new(&v, &t, err, sizeof(err)) == -1)
		fail_msg("tok_new: %s", err);
	for (i = 0; i < nown; i++)
		free(own[i]);
	return t;
}

static long
enc(const struct tokenizer *t, const char *s, bool special, int32_t *ids,
    size_t cap)
{
	return tok_encode(t, s, strlen(s), special, ids, cap);
}

static void
expect_ids(const struct tokenizer *t, const char *s, bool special,
    const int32_t *want, size_t nwant)
{
	int32_t	ids[BPE_MAX];
	long	n = enc(t, s, special, ids, BPE_MAX);
	size_t	i;

	if (n != (long)nwant) {
		for (i = 0; i < (size_t)n && i < BPE_MAX; i++)
			print_message("  id %zu = %d\n", i, ids[i]);
		fail_msg("'%s': %ld ids, want %zu", s, n, nwant);
	}
	for (i = 0; i < nwant; i++)
		if (ids[i] != want[i])
			fail_msg("'%s': id %zu is %d, want %d", s, i, ids[i],
			    want[i]);
}

#define EXPECT(t, s, sp, ...) do {					\
	const int32_t	w_[] = { __VA_ARGS__ };				\
	expect_ids((t), (s), (sp), w_, sizeof(w_) / sizeof(w_[0]));	\
} while (0)

static void
roundtrip(const struct tokenizer *t, const char *s, size_t n)
{
	int32_t	*ids;
	char	*back;
	long	 k;
	size_t	 m;

	k = tok_encode(t, s, n, false, NULL, 0);
	assert_true(k >= 0);
	ids = xcalloc((size_t)k + 1, sizeof(*ids));
	assert_int_equal(tok_encode(t, s, n, false, ids, (size_t)k), k);
	m = tok_decode(t, ids, (size_t)k, false, NULL, 0);
	back = xmalloc(m + 1);
	assert_int_equal(tok_decode(t, ids, (size_t)k, false, back, m), m);
	if (m != n || memcmp(back, s, n) != 0)
		fail_msg("round trip of %zu bytes gave %zu bytes (kind %d, "
		    "first %02x -> %02x)", n, m, (int)t->kind,
		    n ? (unsigned char)s[0] : 0, m ? (unsigned char)back[0] : 0);
	free(back);
	free(ids);
}

/* Texts every vocabulary must round-trip. */
static const char *const rt_texts[] = {
	"", "a", " ", "  ", "hello world", "Hello, World! 123 4567",
	"tabs\tand\nnewlines\r\n\n\nend", "   leading and trailing   ",
	"punctuation: ;:!?.,()[]{}<>'\"`~@#$%^&*-_=+|\\/",
	"they're we've I'm you'll he'd IT'S", "caf\xc3\xa9 na\xc3\xafve",
	"\xe4\xb8\xad\xe6\x96\x87\xe6\xb5\x8b\xe8\xaf\x95",
	"emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
	"invalid \xff\xfe\x80 bytes \xc3 and \xe4\xb8",
	"<|im_end|> <s> </s> <|user|> not special in content",
	"1234567890 3.14159",
};
/* SPM writes spaces as U+2581, so it cannot give that character back:
 * only byte-level BPE round-trips it (as in llama.cpp and SentencePiece). */
static const char rt_lower_block[] = "\xe2\x96\x81 the U+2581 character";

/* --- tests --- */

static void
test_utf8(void **state)
{
	uint32_t	cp;

	(void)state;
	assert_int_equal(utf8_next((const unsigned char *)"A", 1, 0, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(utf8_next((const unsigned char *)"\xc3\xa9", 2, 0,
	    &cp), 2);
	assert_int_equal(cp, 0xE9);
	assert_int_equal(utf8_next((const unsigned char *)"\xf0\x9f\x98\x80",
	    4, 0, &cp), 4);
	assert_int_equal(cp, 0x1F600);
	/* truncated, overlong, surrogate, stray continuation */
	assert_int_equal(utf8_next((const unsigned char *)"\xe4\xb8", 2, 0,
	    &cp), 1);
	assert_int_equal(cp, CP_INVALID);
	assert_int_equal(utf8_next((const unsigned char *)"\xc0\x80", 2, 0,
	    &cp), 1);
	assert_int_equal(cp, CP_INVALID);
	assert_int_equal(utf8_next((const unsigned char *)"\xed\xa0\x80", 3,
	    0, &cp), 1);
	assert_int_equal(cp, CP_INVALID);
	assert_int_equal(utf8_next((const unsigned char *)"\x80", 1, 0, &cp),
	    1);
	assert_int_equal(cp, CP_INVALID);
}

static void
test_byte_alphabet(void **state)
{
	unsigned	b;
	int		seen[512];

	(void)state;
	assert_int_equal(byte_to_cp(' '), 0x120);	/* "Ġ" */
	assert_int_equal(byte_to_cp('\n'), 0x10A);	/* "Ċ" */
	assert_int_equal(byte_to_cp('A'), 'A');
	assert_int_equal(byte_to_cp(0xAD), 0x143);
	assert_int_equal(byte_to_cp(0xFF), 0xFF);
	memset(seen, 0, sizeof(seen));
	for (b = 0; b < 256; b++) {
		uint32_t	cp = byte_to_cp(b);

		assert_true(cp < 512);
		assert_int_equal(seen[cp], 0);
		seen[cp] = 1;
		assert_int_equal(cp_to_byte(cp), (int)b);
	}
	assert_int_equal(cp_to_byte(0x20), -1);
	assert_int_equal(cp_to_byte(0x144), -1);
}

static void
test_unicode_classes(void **state)
{
	(void)state;
	assert_int_equal(uni_flags('a'), UNI_LETTER);
	assert_int_equal(uni_flags(0xE9), UNI_LETTER);		/* é */
	assert_int_equal(uni_flags(0x4E2D), UNI_LETTER);	/* 中 */
	assert_int_equal(uni_flags(0x0663), UNI_NUMBER);	/* Arabic 3 */
	assert_int_equal(uni_flags(0x00BD), UNI_NUMBER);	/* ½ */
	assert_int_equal(uni_flags(0x3000), UNI_SPACE);
	assert_int_equal(uni_flags(0x00A0), UNI_SPACE);
	assert_int_equal(uni_flags(0x1F600), 0);		/* emoji */
	assert_int_equal(uni_flags('!'), 0);
	assert_int_equal(uni_flags(0x110000), 0);
}

/* The words of s under pre, joined by '|'. */
static char *
split_join(const char *pre, const char *s, size_t n)
{
	struct tokenizer	*t = bpe_new(pre);
	struct tok_cps		 c;
	size_t			*word, nw, i, pos, o = 0;
	char			*out = xmalloc(2 * n + 2);

	cps_decode(&c, s, n);
	word = xcalloc(c.n + 1, sizeof(*word));
	nw = pre_split(t, &c, word);
	for (i = 0, pos = 0; i < nw; pos = word[i++]) {
		if (i > 0)
			out[o++] = '|';
		memcpy(out + o, s + c.off[pos], c.off[word[i]] - c.off[pos]);
		o += c.off[word[i]] - c.off[pos];
	}
	out[o] = '\0';
	free(word);
	cps_release(&c);
	tok_free(t);
	return out;
}

static void
expect_split(const char *pre, const char *s, const char *want)
{
	char	*got = split_join(pre, s, strlen(s));

	if (strcmp(got, want) != 0)
		fail_msg("%s split of '%s': '%s', want '%s'", pre, s, got,
		    want);
	free(got);
}

/* Expectations worked out by hand from the patterns (and checked against
 * Python's regex module by tests/integration/test_llmtok_pretok.py). */
static void
test_pre_split(void **state)
{
	(void)state;
	expect_split("gpt2", "Hello world's 12345!!  x\n\n",
	    "Hello| world|'s| 12345|!!| | x|\n\n");
	expect_split("gpt2", "I'VE  \tgot", "I|'|VE|  |\t|got");
	expect_split("llama-bpe", "Hello world's 12345!!  x\n\n",
	    "Hello| world|'s| |123|45|!!| | x|\n\n");
	expect_split("llama-bpe", "I'VE  \tgot", "I|'VE|  |\tgot");
	expect_split("llama-bpe", "a\n  \n b", "a|\n  \n| b");
	expect_split("llama-bpe", "x?!\n\nnext", "x|?!\n\n|next");
	expect_split("llama-bpe", "(caf\xc3\xa9)", "(caf\xc3\xa9|)");
	expect_split("qwen2", "abc 123", "abc| |1|2|3");
	expect_split("smollm", "abc 123x", "abc| |1|2|3|x");
	expect_split("smollm", "ab  12", "ab|  |1|2");
}

static void
test_spm_merges(void **state)
{
	struct tokenizer	*t = spm_new();

	(void)state;
	assert_int_equal(tok_kind(t), TOK_SPM);
	assert_true(tok_add_bos(t));
	EXPECT(t, "abc", false, SPM_SP, SPM_ABC);
	EXPECT(t, "hi", false, SPM_SPHI);
	/* equal scores: the leftmost pair first */
	EXPECT(t, "aaa", false, SPM_SP, SPM_AA, SPM_A);
	EXPECT(t, "a b", false, SPM_SPA, SPM_SP, SPM_B);
	/* byte fallback for what is not in the vocabulary */
	EXPECT(t, "\xc3\xa9\n", false, SPM_SP, SPM_BYTE(0xC3),
	    SPM_BYTE(0xA9), SPM_BYTE('\n'));
	EXPECT(t, "\xff", false, SPM_SP, SPM_BYTE(0xFF));
	assert_int_equal(enc(t, "", false, NULL, 0), 0);
	tok_free(t);
}

static void
test_spm_special(void **state)
{
	struct tokenizer	*t = spm_new();
	int32_t			 ids[16];
	long			 n, i;

	(void)state;
	/* in content, "<s>" is three characters */
	n = enc(t, "<s>hi", false, ids, 16);
	for (i = 0; i < n; i++)
		assert_true(ids[i] != 1);
	/* in markup, a token, and the text after it gets its space */
	EXPECT(t, "<s>hi", true, 1, SPM_SPHI);
	EXPECT(t, "hi<s></s>hi", true, SPM_SPHI, 1, 2, SPM_SPHI);
	assert_int_equal(tok_special(t, "</s>"), 2);
	assert_int_equal(tok_special(t, "hi"), -1);
	assert_true(tok_is_eog(t, 2));
	assert_false(tok_is_eog(t, 1));
	/* pieces: spaces restored, bytes decoded, control hidden */
	{
		char	buf[16];

		assert_int_equal(tok_piece(t, SPM_SPHI, false, buf, 16), 3);
		assert_memory_equal(buf, " hi", 3);
		assert_int_equal(tok_piece(t, SPM_BYTE(0x41), false, buf, 16),
		    1);
		assert_int_equal(buf[0], 'A');
		assert_int_equal(tok_piece(t, 1, false, buf, 16), 0);
		assert_int_equal(tok_piece(t, 1, true, buf, 16), 3);
		assert_memory_equal(buf, "<s>", 3);
		assert_int_equal(tok_piece(t, 99999, true, buf, 16), 0);
	}
	tok_free(t);
}

static void
test_bpe_merges(void **state)
{
	struct tokenizer	*t = bpe_new("gpt2");

	(void)state;
	assert_int_equal(tok_kind(t), TOK_BPE);
	assert_false(tok_add_bos(t));
	EXPECT(t, "hello world", false, BPE_HELLO, BPE_SPWORLD);
	EXPECT(t, "hellohello", false, BPE_HELLO, BPE_HELLO);
	/* equal ranks: the leftmost pair first */
	EXPECT(t, "lll", false, BPE_LL, 'l');
	EXPECT(t, "\n\xff", false, '\n', 0xFF);
	/* no merges for xyz: only llama-bpe takes a whole-word token */
	EXPECT(t, "xyz", false, 'x', 'y', 'z');
	tok_free(t);
	t = bpe_new("llama-bpe");
	EXPECT(t, "xyz", false, BPE_XYZ);
	EXPECT(t, "hello world", false, BPE_HELLO, BPE_SPWORLD);
	tok_free(t);
}

static void
test_bpe_special(void **state)
{
	struct tokenizer	*t = bpe_new("llama-bpe");
	int32_t			 ids[32];
	long			 n, i;
	struct tok_span		 sp[2] = { { 0, 12 }, { 17, 10 } };
	const char		*s = "<|im_start|>hello<|im_end|><|im_end|>";

	(void)state;
	n = enc(t, "<|im_end|><|user|>", false, ids, 32);
	assert_true(n > 2);
	for (i = 0; i < n; i++)
		assert_true(ids[i] < 256 || ids[i] == BPE_LTBAR);
	EXPECT(t, "<|im_end|><|user|>", true, BPE_IMEND, BPE_USER);
	EXPECT(t, "hello<|im_end|>", true, BPE_HELLO, BPE_IMEND);
	/* spans: only the markup's specials count; the second <|im_end|>
	 * lies outside them */
	n = tok_encode_spans(t, s, strlen(s), sp, 2, ids, 32);
	assert_true(n > 3);
	assert_int_equal(ids[0], BPE_IMSTART);
	assert_int_equal(ids[1], BPE_HELLO);
	assert_int_equal(ids[2], BPE_IMEND);
	for (i = 3; i < n; i++)
		assert_true(ids[i] < 256 || ids[i] == BPE_LTBAR);
	/* bad spans */
	sp[1].off = 5;
	assert_int_equal(tok_encode_spans(t, s, strlen(s), sp, 2, ids, 32),
	    -1);
	sp[1].off = 30;
	assert_int_equal(tok_encode_spans(t, s, strlen(s), sp, 2, ids, 32),
	    -1);
	assert_true(tok_is_eog(t, BPE_EOT));
	assert_true(tok_is_eog(t, BPE_IMEND));
	assert_false(tok_is_eog(t, BPE_IMSTART));
	tok_free(t);
}

static void
test_cap(void **state)
{
	struct tokenizer	*t = bpe_new("gpt2");
	int32_t			 ids[4] = { -7, -7, -7, -7 };

	(void)state;
	assert_int_equal(enc(t, "a b c d e", false, ids, 2), 9);
	assert_int_equal(ids[0], 'a');
	assert_int_equal(ids[2], -7);
	assert_int_equal(tok_encode(t, "x", (size_t)TOK_MAX_TEXT + 1, false,
	    ids, 4), -1);
	tok_free(t);
}

static void
test_roundtrip_all(void **state)
{
	static const char *const pres[] = { "gpt2", "llama-bpe", "qwen2",
	    "smollm" };
	struct tokenizer	*t;
	unsigned char		 all[256];
	size_t			 i, k;

	(void)state;
	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	t = spm_new();
	for (i = 0; i < sizeof(rt_texts) / sizeof(rt_texts[0]); i++)
		roundtrip(t, rt_texts[i], strlen(rt_texts[i]));
	roundtrip(t, (const char *)all, sizeof(all));
	tok_free(t);
	for (k = 0; k < sizeof(pres) / sizeof(pres[0]); k++) {
		t = bpe_new(pres[k]);
		for (i = 0; i < sizeof(rt_texts) / sizeof(rt_texts[0]); i++)
			roundtrip(t, rt_texts[i], strlen(rt_texts[i]));
		roundtrip(t, (const char *)all, sizeof(all));
		roundtrip(t, rt_lower_block, strlen(rt_lower_block));
		tok_free(t);
	}
}

/* 1 MiB of one character: the heaps keep this O(n log n). */
static void
test_long_run(void **state)
{
	size_t			 n = 1 << 20;
	char			*s = xmalloc(n);
	struct tokenizer	*t;
	int32_t			 ids[4];

	(void)state;
	memset(s, 'a', n);
	t = spm_new();
	/* "aa" (-1.5) beats "\u2581a" (-6): the space alone, then pairs */
	assert_int_equal(tok_encode(t, s, n, false, ids, 4),
	    1 + (long)n / 2);
	assert_int_equal(ids[0], SPM_SP);
	assert_int_equal(ids[1], SPM_AA);
	roundtrip(t, s, n);
	tok_free(t);
	memset(s, 'l', n);
	t = bpe_new("gpt2");
	assert_int_equal(tok_encode(t, s, n, false, ids, 4), (long)n / 2);
	roundtrip(t, s, n);
	tok_free(t);
	free(s);
}

/* --- a GGUF image --- */

struct gbuf {
	uint8_t	*p;
	size_t	 n;
};

static void
gput(struct gbuf *b, const void *p, size_t n)
{
	b->p = xrealloc(b->p, b->n + n);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void
gput_u32(struct gbuf *b, uint32_t v)
{
	gput(b, &v, 4);
}

static void
gput_u64(struct gbuf *b, uint64_t v)
{
	gput(b, &v, 8);
}

static void
gput_str(struct gbuf *b, const char *s)
{
	gput_u64(b, strlen(s));
	gput(b, s, strlen(s));
}

static void
gkey(struct gbuf *b, const char *k, uint32_t type)
{
	gput_str(b, k);
	gput_u32(b, type);
}

static void
test_from_gguf(void **state)
{
	static const char *const toks[] = { "<unk>", "<s>", "</s>",
	    "\xe2\x96\x81", "h", "i", "hi", "\xe2\x96\x81hi" };
	static const float scores[] = { 0, 0, 0, -1, -3, -3, -0.3f, -0.2f };
	static const int32_t types[] = { 2, 3, 3, 1, 1, 1, 1, 1 };
	struct gbuf		 b = { NULL, 0 };
	struct gguf		*g;
	struct tokenizer	*t;
	char			 err[160];
	size_t			 i, n = 8;
	uint8_t			 one = 1;

	(void)state;
	gput_u32(&b, 0x46554747);	/* "GGUF" */
	gput_u32(&b, 3);
	gput_u64(&b, 0);
	gput_u64(&b, 7);
	gkey(&b, "tokenizer.ggml.model", GGUF_T_STRING);
	gput_str(&b, "llama");
	gkey(&b, "tokenizer.ggml.tokens", GGUF_T_ARRAY);
	gput_u32(&b, GGUF_T_STRING);
	gput_u64(&b, n);
	for (i = 0; i < n; i++)
		gput_str(&b, toks[i]);
	gkey(&b, "tokenizer.ggml.scores", GGUF_T_ARRAY);
	gput_u32(&b, GGUF_T_F32);
	gput_u64(&b, n);
	gput(&b, scores, sizeof(scores));
	gkey(&b, "tokenizer.ggml.token_type", GGUF_T_ARRAY);
	gput_u32(&b, GGUF_T_I32);
	gput_u64(&b, n);
	gput(&b, types, sizeof(types));
	gkey(&b, "tokenizer.ggml.bos_token_id", GGUF_T_U32);
	gput_u32(&b, 1);
	gkey(&b, "tokenizer.ggml.eos_token_id", GGUF_T_U32);
	gput_u32(&b, 2);
	gkey(&b, "tokenizer.ggml.add_bos_token", GGUF_T_BOOL);
	gput(&b, &one, 1);
	if (gguf_parse(b.p, b.n, &g, err, sizeof(err)) == -1)
		fail_msg("gguf_parse: %s", err);
	if (tok_from_gguf(g, &t, err, sizeof(err)) == -1)
		fail_msg("tok_from_gguf: %s", err);
	assert_int_equal(tok_n_vocab(t), 8);
	assert_int_equal(tok_bos(t), 1);
	assert_int_equal(tok_eos(t), 2);
	assert_true(tok_add_bos(t));
	EXPECT(t, "hi hi", false, 7, 7);
	/* "x" is no token and there are no byte tokens: <unk> */
	EXPECT(t, "x", false, 3, 0);
	tok_free(t);
	gguf_close(g);
	free(b.p);
}

static void
test_bad_vocab(void **state)
{
	const char	*text[2] = { "a", "b" };
	const char	*merges[1] = { "ab" };
	struct tok_vocab v;
	struct tokenizer *t;
	char		 err[128];

	(void)state;
	memset(&v, 0, sizeof(v));
	v.kind = TOK_BPE;
	v.n = 2;
	v.text = text;
	v.bos = v.eos = v.eot = v.unk = -1;
	/* a byte-level vocabulary without its 256 byte tokens */
	assert_int_equal(tok_new(&v, &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "byte"));
	v.kind = TOK_SPM;
	v.bos = 5;
	assert_int_equal(tok_new(&v, &t, err, sizeof(err)), -1);
	v.bos = -1;
	v.n = 0;
	assert_int_equal(tok_new(&v, &t, err, sizeof(err)), -1);
	v.n = 2;
	v.kind = TOK_BPE;
	v.pre = "unheard-of";
	assert_int_equal(tok_new(&v, &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unheard-of"));
	(void)merges;
}

/* --- the --split helper --- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
split_main(const char *pre)
{
	struct tokenizer	*t = bpe_new(pre);
	char			 line[1 << 16], *s;
	size_t			 n, i, pos, k;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		struct tok_cps		 c;
		size_t			*word, nw;

		s = xmalloc(strlen(line) / 2 + 1);
		for (n = 0; hexval(line[2 * n]) >= 0 &&
		    hexval(line[2 * n + 1]) >= 0; n++)
			s[n] = (char)(hexval(line[2 * n]) * 16 +
			    hexval(line[2 * n + 1]));
		cps_decode(&c, s, n);
		word = xcalloc(c.n + 1, sizeof(*word));
		nw = pre_split(t, &c, word);
		for (i = 0, pos = 0; i < nw; pos = word[i++]) {
			if (i > 0)
				putchar(' ');
			for (k = c.off[pos]; k < c.off[word[i]]; k++)
				printf("%02x", (unsigned char)s[k]);
		}
		putchar('\n');
		free(word);
		cps_release(&c);
		free(s);
	}
	tok_free(t);
	return 0;
}

/* --gguf FILE: for each hex line, the ids of the text (no specials),
 * a tab, and tok_decode of them in hex. */
static int
gguf_main(const char *path)
{
	struct gguf		*g;
	struct tokenizer	*t;
	char			 err[256], line[1 << 16], *s, *back;
	int32_t			*ids;
	size_t			 n, m, i;
	long			 k;

	if (gguf_open(path, 1u << 30, &g, err, sizeof(err)) == -1 ||
	    tok_from_gguf(g, &t, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", path, err);
		return 1;
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		s = xmalloc(strlen(line) / 2 + 1);
		for (n = 0; hexval(line[2 * n]) >= 0 &&
		    hexval(line[2 * n + 1]) >= 0; n++)
			s[n] = (char)(hexval(line[2 * n]) * 16 +
			    hexval(line[2 * n + 1]));
		k = tok_encode(t, s, n, false, NULL, 0);
		ids = xcalloc((size_t)k + 1, sizeof(*ids));
		(void)tok_encode(t, s, n, false, ids, (size_t)k);
		m = tok_decode(t, ids, (size_t)k, false, NULL, 0);
		back = xmalloc(m + 1);
		(void)tok_decode(t, ids, (size_t)k, false, back, m);
		for (i = 0; i < (size_t)k; i++)
			printf(i ? " %d" : "%d", ids[i]);
		putchar('\t');
		for (i = 0; i < m; i++)
			printf("%02x", (unsigned char)back[i]);
		putchar('\n');
		free(back);
		free(ids);
		free(s);
	}
	tok_free(t);
	gguf_close(g);
	return 0;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_byte_alphabet),
		cmocka_unit_test(test_unicode_classes),
		cmocka_unit_test(test_pre_split),
		cmocka_unit_test(test_spm_merges),
		cmocka_unit_test(test_spm_special),
		cmocka_unit_test(test_bpe_merges),
		cmocka_unit_test(test_bpe_special),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_roundtrip_all),
		cmocka_unit_test(test_long_run),
		cmocka_unit_test(test_from_gguf),
		cmocka_unit_test(test_bad_vocab),
	};

	if (argc == 3 && strcmp(argv[1], "--split") == 0)
		return split_main(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--gguf") == 0)
		return gguf_main(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
