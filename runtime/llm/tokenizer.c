/* runtime/llm/tokenizer.c - the two tokenizers llama-family GGUF files
 * carry, producing the ids llama.cpp produces for the same vocabulary.
 *
 * SPM ("llama"): spaces become U+2581 and a space is put in front of every
 * run of text that starts the input or follows a special token; the text
 * is split into UTF-8 characters, and the adjacent pair whose concatenation
 * is the best-scoring token is merged until none is left (a heap of
 * candidate pairs over a linked list of symbols, so a long run of one
 * character stays O(n log n)).  Characters that are not tokens fall back to
 * the <0xXX> byte tokens.
 *
 * BPE ("gpt2"): the text is first split into words by the pre-tokenizer
 * pattern of tokenizer.ggml.pre (GPT-2's, Llama 3's, Qwen2's, or SmolLM's
 * digit split before GPT-2's), written out by hand below; each word's bytes
 * start as the 256 byte-level tokens and the pair of lowest merge rank is
 * merged until no pair has a rank.  Any bytes round-trip.
 *
 * Control and user-defined tokens are matched in text only when the caller
 * asks (chat template markup), never inside tenant content, and merges
 * never produce them: a tenant who types "<|im_end|>" gets plain text.
 * llama.cpp matches user-defined tokens even without parse_special; maas
 * does not, on purpose. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "runtime/llm/gguf.h"
#include "runtime/llm/tokenizer.h"
#include "runtime/llm/unicode.h"

#define TOK_MAX_EOG	8
#define CP_INVALID	0xFFFFFFFFu	/* a byte that is not valid UTF-8 */

enum tok_pre {
	PRE_GPT2 = 0,		/* GPT-2's pattern ("default", "gpt-2") */
	PRE_LLAMA3,		/* "llama-bpe": digits by 3, ignore_merges */
	PRE_QWEN2,		/* Llama 3's pattern with single digits */
	PRE_SMOLLM		/* each digit alone, then GPT-2's pattern */
};

/* One BPE merge, hashed by its (left, right) token ids. */
struct tok_merge {
	int32_t		left;		/* -1: empty slot */
	int32_t		right;
	int32_t		result;		/* token of left+right */
	uint32_t	rank;
};

struct tokenizer {
	enum tok_kind	 kind;
	enum tok_pre	 pre;
	int		 n;		/* vocabulary size */
	char		*strs;		/* every token text, NUL-separated */
	uint32_t	*off;		/* (n) text of id at strs + off[id] */
	uint32_t	*len;		/* (n) its length */
	float		*score;		/* (n) SPM scores */
	uint8_t		*type;		/* (n) enum tok_type */
	int32_t		*ht;		/* text -> id (open addressing), -1 */
	size_t		 ht_mask;
	struct tok_merge *mh;		/* BPE merges, open addressing */
	size_t		 mh_mask;
	int32_t		 byte_tok[256];	/* token of each byte, -1 if none */
	int32_t		*special;	/* control + user ids, longest first */
	size_t		 n_special;
	int32_t		 bos, eos, eot, unk;
	bool		 add_bos;
	bool		 add_space_prefix;
	int32_t		 eog[TOK_MAX_EOG];
	int		 n_eog;
};

/* Output ids: counted past cap, written up to it. */
struct tok_out {
	int32_t		*ids;
	size_t		 cap;
	size_t		 n;
};

/* A symbol of the merge loops: a byte range of the working text in a
 * doubly linked list; n == 0 once merged into its left neighbour. */
struct tok_sym {
	uint32_t	off;
	uint32_t	n;
	int32_t		prev;
	int32_t		next;
	int32_t		id;		/* BPE: its token */
};

/* A candidate merge of sym[left] and its right neighbour, valid while
 * their lengths still add up to size.  Smallest key first, then the
 * leftmost: key is -score for SPM and the rank for BPE. */
struct tok_bigram {
	double		key;
	int32_t		left;
	uint32_t	size;
	int32_t		result;
};

struct tok_heap {
	struct tok_bigram *v;
	size_t		 n;
	size_t		 cap;
};

/* Text decoded into codepoints for the pre-tokenizer. */
struct tok_cps {
	uint32_t	*cp;		/* (n) CP_INVALID for a stray byte */
	uint32_t	*off;		/* (n + 1) byte offsets */
	uint8_t		*fl;		/* (n) UNI_* flags */
	size_t		 n;
};

static uint64_t	hash_bytes(const void *, size_t);
static uint64_t	hash_pair(int32_t, int32_t);
static int32_t	lookup(const struct tokenizer *, const char *, size_t);
static const struct tok_merge *merge_find(const struct tokenizer *, int32_t,
		    int32_t);
static bool	mergeable(const struct tokenizer *, int32_t);
static void	emit(struct tok_out *, int32_t);
static size_t	utf8_next(const unsigned char *, size_t, size_t, uint32_t *);
static size_t	utf8_put(uint32_t, char *);
static uint32_t	byte_to_cp(unsigned);
static int	cp_to_byte(uint32_t);
static int	spec_cmp(const void *, const void *, void *);
static int32_t	match_special(const struct tokenizer *, const char *, size_t,
		    size_t *);
static void	heap_push(struct tok_heap *, const struct tok_bigram *);
static bool	heap_pop(struct tok_heap *, struct tok_bigram *);
static bool	bigram_less(const struct tok_bigram *,
		    const struct tok_bigram *);
static void	encode_raw(const struct tokenizer *, const char *, size_t, bool,
		    struct tok_out *);
static void	encode_spm(const struct tokenizer *, const char *, size_t, bool,
		    struct tok_out *);
static void	spm_bigram(const struct tokenizer *, const char *,
		    const struct tok_sym *, int32_t, struct tok_heap *);
static void	encode_bpe(const struct tokenizer *, const char *, size_t,
		    struct tok_out *);
static void	bpe_word(const struct tokenizer *, const unsigned char *,
		    size_t, struct tok_sym *, struct tok_heap *, char *,
		    struct tok_out *);
static void	bpe_bigram(const struct tokenizer *, const struct tok_sym *,
		    int32_t, struct tok_heap *);
static void	cps_decode(struct tok_cps *, const char *, size_t);
static void	cps_release(struct tok_cps *);
static size_t	pre_split(const struct tokenizer *, const struct tok_cps *,
		    size_t *);
static size_t	pre_gpt2(const struct tok_cps *, size_t, size_t);
static size_t	pre_llama3(const struct tok_cps *, size_t, size_t, size_t);
static void	seterr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* --- helpers --- */

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t
hash_bytes(const void *p, size_t n)
{
	const unsigned char	*s = p;
	uint64_t		 h = 0xcbf29ce484222325ULL;
	size_t			 i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

static uint64_t
hash_pair(int32_t a, int32_t b)
{
	uint64_t	x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;

	/* splitmix64's finalizer spreads the bits of both ids */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int32_t
lookup(const struct tokenizer *t, const char *s, size_t n)
{
	size_t	i = hash_bytes(s, n) & t->ht_mask;
	int32_t	id;

	while ((id = t->ht[i]) >= 0) {
		if (t->len[id] == n && memcmp(t->strs + t->off[id], s, n) == 0)
			return id;
		i = (i + 1) & t->ht_mask;
	}
	return -1;
}

static const struct tok_merge *
merge_find(const struct tokenizer *t, int32_t a, int32_t b)
{
	const struct tok_merge	*m;
	size_t			 i;

	if (t->mh == NULL || a < 0 || b < 0)
		return NULL;
	i = hash_pair(a, b) & t->mh_mask;
	for (m = &t->mh[i]; m->left >= 0; m = &t->mh[i]) {
		if (m->left == a && m->right == b)
			return m;
		i = (i + 1) & t->mh_mask;
	}
	return NULL;
}

/* May merging produce id, or a plain lookup of text return it?  Only
 * ordinary tokens: never control, user-defined, byte or unused ones. */
static bool
mergeable(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && (t->type[id] == TOK_T_NORMAL ||
	    t->type[id] == TOK_T_UNDEFINED);
}

static void
emit(struct tok_out *o, int32_t id)
{
	if (o->n < o->cap)
		o->ids[o->n] = id;
	o->n++;
}

/* Decodes the UTF-8 character at s[i] (i < n) into *cp and returns its
 * length; a byte that does not start a valid, shortest-form sequence is
 * returned alone as CP_INVALID. */
static size_t
utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
	unsigned char	c = s[i];
	uint32_t	v, min;
	size_t		k, need;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
		v = c & 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		v = c & 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		v = c & 0x07;
		min = 0x10000;
	} else {
		*cp = CP_INVALID;
		return 1;
	}
	if (n - i <= need) {
		*cp = CP_INVALID;
		return 1;
	}
	for (k = 1; k <= need; k++) {
		if ((s[i + k] & 0xC0) != 0x80) {
			*cp = CP_INVALID;
			return 1;
		}
		v = (v << 6) | (s[i + k] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
		*cp = CP_INVALID;
		return 1;
	}
	*cp = v;
	return need + 1;
}

static size_t
utf8_put(uint32_t cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* GPT-2's byte-level alphabet: printable Latin-1 bytes stand for
 * themselves, the other 68 are moved, in order, to U+0100 onwards. */
static uint32_t
byte_to_cp(unsigned b)
{
	unsigned	i, k = 0;

	if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
	    (b >= 0xAE && b <= 0xFF))
		return b;
	for (i = 0; i < b; i++)
		if (!((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) ||
		    (i >= 0xAE && i <= 0xFF)))
			k++;
	return 0x100 + k;
}

static int
cp_to_byte(uint32_t cp)
{
	unsigned	b;

	if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) ||
	    (cp >= 0xAE && cp <= 0xFF))
		return (int)cp;
	if (cp < 0x100 || cp >= 0x100 + 68)
		return -1;
	for (b = 0; b < 256; b++)
		if (byte_to_cp(b) == cp)
			return (int)b;
	return -1;
}

/* --- construction --- */

/* Longest first, so that a special token is never cut short by another
 * that is its prefix. */
static int
spec_cmp(const void *a, const void *b, void *arg)
{
	const struct tokenizer	*t = arg;
	int32_t			 x = *(const int32_t *)a;
	int32_t			 y = *(const int32_t *)b;
	uint32_t		 lx = t->len[x], ly = t->len[y];

	if (lx != ly)
		return lx > ly ? -1 : 1;
	return x < y ? -1 : x > y;
}

int
tok_new(const struct tok_vocab *v, struct tokenizer **out, char *err,
    size_t errlen)
{
	static const char *const eog_names[] = { "<|im_end|>", "<|eot_id|>",
	    "<|end_of_text|>", "<|endoftext|>", "<|end|>" };
	struct tokenizer	*t = NULL;
	size_t			 total = 0, i, hsz, mlen;
	int32_t			 id;
	int			 ret = -1;

	*out = NULL;
	if (v->kind != TOK_SPM && v->kind != TOK_BPE) {
		seterr(err, errlen, "unknown tokenizer kind");
		goto out;
	}
	if (v->n <= 0 || v->n > TOK_MAX_VOCAB) {
		seterr(err, errlen, "vocabulary of %d tokens (1..%d)", v->n,
		    TOK_MAX_VOCAB);
		goto out;
	}
	t = xcalloc(1, sizeof(*t));
	t->kind = v->kind;
	t->n = v->n;
	t->off = xcalloc((size_t)v->n, sizeof(*t->off));
	t->len = xcalloc((size_t)v->n, sizeof(*t->len));
	t->score = xcalloc((size_t)v->n, sizeof(*t->score));
	t->type = xcalloc((size_t)v->n, sizeof(*t->type));
	for (i = 0; i < (size_t)v->n; i++) {
		size_t	l;

		if (v->text[i] == NULL) {
			seterr(err, errlen, "token %zu has no text", i);
			goto out;
		}
		l = v->text_len ? v->text_len[i] : strlen(v->text[i]);
		if (l > TOK_MAX_TOKEN_LEN) {
			seterr(err, errlen, "token %zu is %zu bytes long (at "
			    "most %d)", i, l, TOK_MAX_TOKEN_LEN);
			goto out;
		}
		t->len[i] = (uint32_t)l;
		total += l + 1;
	}
	t->strs = xmalloc(total);
	for (i = 0, total = 0; i < (size_t)v->n; i++) {
		memcpy(t->strs + total, v->text[i], t->len[i]);
		t->strs[total + t->len[i]] = '\0';
		t->off[i] = (uint32_t)total;
		total += t->len[i] + 1;
		t->score[i] = v->scores ? v->scores[i] : 0.0f;
		t->type[i] = TOK_T_NORMAL;
		if (v->types && v->types[i] >= 0 && v->types[i] <= TOK_T_BYTE)
			t->type[i] = (uint8_t)v->types[i];
	}

	/* text -> id; a repeated text names its last id, as in llama.cpp */
	for (hsz = 16; hsz < (size_t)v->n * 2; hsz <<= 1)
		;
	t->ht = xmalloc(hsz * sizeof(*t->ht));
	memset(t->ht, 0xff, hsz * sizeof(*t->ht));
	t->ht_mask = hsz - 1;
	for (id = 0; id < v->n; id++) {
		size_t	h = hash_bytes(t->strs + t->off[id], t->len[id]) &
			    t->ht_mask;

		while (t->ht[h] >= 0 && !(t->len[t->ht[h]] == t->len[id] &&
		    memcmp(t->strs + t->off[t->ht[h]], t->strs + t->off[id],
		    t->len[id]) == 0))
			h = (h + 1) & t->ht_mask;
		t->ht[h] = id;
	}

	for (i = 0; i < 256; i++)
		t->byte_tok[i] = -1;
	if (t->kind == TOK_SPM) {
		for (id = 0; id < v->n; id++) {
			const char	*s = t->strs + t->off[id];
			unsigned	 b;

			if (t->type[id] == TOK_T_BYTE && t->len[id] == 6 &&
			    sscanf(s, "<0x%2X>", &b) == 1 && b < 256 &&
			    t->byte_tok[b] < 0)
				t->byte_tok[b] = id;
		}
	} else {
		const char	*pre = v->pre ? v->pre : "default";
		char		 u[4];

		if (strcmp(pre, "default") == 0 || strcmp(pre, "gpt-2") == 0 ||
		    strcmp(pre, "gpt2") == 0)
			t->pre = PRE_GPT2;
		else if (strcmp(pre, "llama-bpe") == 0 ||
		    strcmp(pre, "llama3") == 0)
			t->pre = PRE_LLAMA3;
		else if (strcmp(pre, "qwen2") == 0)
			t->pre = PRE_QWEN2;
		else if (strcmp(pre, "smollm") == 0 ||
		    strcmp(pre, "starcoder") == 0)
			t->pre = PRE_SMOLLM;
		else {
			seterr(err, errlen, "pre-tokenizer '%.64s' is not "
			    "supported (default, gpt-2, llama-bpe, qwen2, "
			    "smollm)", pre);
			goto out;
		}
		for (i = 0; i < 256; i++) {
			id = lookup(t, u, utf8_put(byte_to_cp((unsigned)i), u));
			if (!mergeable(t, id)) {
				seterr(err, errlen, "byte-level vocabulary "
				    "lacks the token of byte 0x%02zx", i);
				goto out;
			}
			t->byte_tok[i] = id;
		}
		if (v->n_merges > (size_t)TOK_MAX_VOCAB * 2) {
			seterr(err, errlen, "%zu merges (at most %d)",
			    v->n_merges, TOK_MAX_VOCAB * 2);
			goto out;
		}
		for (hsz = 16; hsz < v->n_merges * 2; hsz <<= 1)
			;
		t->mh = xmalloc(hsz * sizeof(*t->mh));
		for (i = 0; i < hsz; i++)
			t->mh[i].left = -1;
		t->mh_mask = hsz - 1;
		for (i = 0; i < v->n_merges; i++) {
			const char	*m = v->merges[i], *sp;
			char		 cat[2 * TOK_MAX_TOKEN_LEN];
			int32_t		 a, b, r;
			size_t		 h, la, lb;

			if (m == NULL)
				continue;
			mlen = v->merge_len ? v->merge_len[i] : strlen(m);
			/* the separator is the first space after the first
			 * byte (the alphabet has no space of its own) */
			if (mlen < 3 || (sp = memchr(m + 1, ' ', mlen - 1)) ==
			    NULL) {
				seterr(err, errlen, "merge %zu is not "
				    "'left right'", i);
				goto out;
			}
			la = (size_t)(sp - m);
			lb = mlen - la - 1;
			if (la + lb > sizeof(cat))
				continue;
			a = lookup(t, m, la);
			b = lookup(t, sp + 1, lb);
			memcpy(cat, m, la);
			memcpy(cat + la, sp + 1, lb);
			r = lookup(t, cat, la + lb);
			/* a merge whose parts or result is not an ordinary
			 * token can never apply */
			if (a < 0 || b < 0 || !mergeable(t, r))
				continue;
			h = hash_pair(a, b) & t->mh_mask;
			while (t->mh[h].left >= 0 && !(t->mh[h].left == a &&
			    t->mh[h].right == b))
				h = (h + 1) & t->mh_mask;
			if (t->mh[h].left >= 0)
				continue;	/* the first rank wins */
			t->mh[h].left = a;
			t->mh[h].right = b;
			t->mh[h].result = r;
			t->mh[h].rank = (uint32_t)i;
		}
	}

	for (id = 0; id < v->n; id++)
		if ((t->type[id] == TOK_T_CONTROL || t->type[id] == TOK_T_USER)
		    && t->len[id] > 0)
			t->n_special++;
	if (t->n_special > 0) {
		t->special = xcalloc(t->n_special, sizeof(*t->special));
		for (id = 0, i = 0; id < v->n; id++)
			if ((t->type[id] == TOK_T_CONTROL ||
			    t->type[id] == TOK_T_USER) && t->len[id] > 0)
				t->special[i++] = id;
		qsort_r(t->special, t->n_special, sizeof(*t->special),
		    spec_cmp, t);
	}

#define TOK_ID_OK(x)	((x) >= -1 && (x) < v->n)
	if (!TOK_ID_OK(v->bos) || !TOK_ID_OK(v->eos) || !TOK_ID_OK(v->eot) ||
	    !TOK_ID_OK(v->unk)) {
		seterr(err, errlen, "a special token id is out of the "
		    "vocabulary");
		goto out;
	}
#undef TOK_ID_OK
	t->bos = v->bos;
	t->eos = v->eos;
	t->eot = v->eot;
	t->unk = v->unk;
	if (v->add_bos >= 0)
		t->add_bos = v->add_bos != 0;
	else
		t->add_bos = t->kind == TOK_SPM || t->pre == PRE_LLAMA3;
	t->add_bos = t->add_bos && t->bos >= 0;
	t->add_space_prefix = t->kind == TOK_SPM && v->add_space_prefix != 0;

	if (t->eos >= 0)
		t->eog[t->n_eog++] = t->eos;
	if (t->eot >= 0 && t->eot != t->eos)
		t->eog[t->n_eog++] = t->eot;
	for (i = 0; i < sizeof(eog_names) / sizeof(eog_names[0]); i++) {
		int	k;

		id = lookup(t, eog_names[i], strlen(eog_names[i]));
		if (id < 0 || t->type[id] != TOK_T_CONTROL)
			continue;
		for (k = 0; k < t->n_eog && t->eog[k] != id; k++)
			;
		if (k == t->n_eog && t->n_eog < TOK_MAX_EOG)
			t->eog[t->n_eog++] = id;
	}

	*out = t;
	t = NULL;
	ret = 0;
 out:
	tok_free(t);
	return ret;
}

/* Reads a GGUF array of n numbers of type want into dst (elements of
 * size sz), through memcpy since the data may be unaligned. */
static bool	gguf_nums(const struct gguf *, const char *, enum gguf_type,
		    size_t, uint64_t, void **);

static bool
gguf_nums(const struct gguf *g, const char *key, enum gguf_type want,
    size_t sz, uint64_t n, void **dst)
{
	struct gguf_arr	a;

	*dst = NULL;
	if (!gguf_get_arr(g, key, &a))
		return true;		/* absent: defaults */
	if (a.type != want || a.n != n)
		return false;
	*dst = xcalloc(n, sz);
	memcpy(*dst, a.data, n * sz);
	return true;
}

int
tok_from_gguf(const struct gguf *g, struct tokenizer **out, char *err,
    size_t errlen)
{
	struct tok_vocab v;
	struct gguf_str	 s;
	struct gguf_arr	 toks, merges;
	const char	**text = NULL, **mtext = NULL;
	size_t		*tlen = NULL, *mlen = NULL;
	void		*scores = NULL, *types = NULL;
	char		 pre[64];
	uint32_t	 u;
	bool		 b;
	uint64_t	 i;
	int		 ret = -1;

	*out = NULL;
	memset(&v, 0, sizeof(v));
	if (!gguf_get_str(g, "tokenizer.ggml.model", &s)) {
		seterr(err, errlen, "no tokenizer.ggml.model");
		goto out;
	}
	if (gguf_str_eq(&s, "llama"))
		v.kind = TOK_SPM;
	else if (gguf_str_eq(&s, "gpt2"))
		v.kind = TOK_BPE;
	else {
		seterr(err, errlen, "tokenizer.ggml.model '%.*s' is not "
		    "supported (llama, gpt2)", (int)(s.n > 32 ? 32 : s.n), s.p);
		goto out;
	}
	if (!gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) ||
	    toks.type != GGUF_T_STRING) {
		seterr(err, errlen, "no tokenizer.ggml.tokens string array");
		goto out;
	}
	if (toks.n == 0 || toks.n > TOK_MAX_VOCAB) {
		seterr(err, errlen, "vocabulary of %llu tokens (1..%d)",
		    (unsigned long long)toks.n, TOK_MAX_VOCAB);
		goto out;
	}
	v.n = (int)toks.n;
	text = xcalloc(toks.n, sizeof(*text));
	tlen = xcalloc(toks.n, sizeof(*tlen));
	for (i = 0; i < toks.n; i++) {
		if (!gguf_arr_str(&toks, i, &s) || s.n > TOK_MAX_TOKEN_LEN) {
			seterr(err, errlen, "token %llu is unreadable or "
			    "longer than %d bytes", (unsigned long long)i,
			    TOK_MAX_TOKEN_LEN);
			goto out;
		}
		text[i] = s.p;
		tlen[i] = (size_t)s.n;
	}
	v.text = text;
	v.text_len = tlen;
	if (!gguf_nums(g, "tokenizer.ggml.scores", GGUF_T_F32, sizeof(float),
	    toks.n, &scores) ||
	    !gguf_nums(g, "tokenizer.ggml.token_type", GGUF_T_I32,
	    sizeof(int32_t), toks.n, &types)) {
		seterr(err, errlen, "tokenizer.ggml.scores or token_type is "
		    "not one number per token");
		goto out;
	}
	v.scores = scores;
	v.types = types;
	if (v.kind == TOK_BPE) {
		if (!gguf_get_arr(g, "tokenizer.ggml.merges", &merges) ||
		    merges.type != GGUF_T_STRING) {
			seterr(err, errlen, "no tokenizer.ggml.merges");
			goto out;
		}
		if (merges.n > (uint64_t)TOK_MAX_VOCAB * 2) {
			seterr(err, errlen, "too many merges");
			goto out;
		}
		mtext = xcalloc(merges.n + 1, sizeof(*mtext));
		mlen = xcalloc(merges.n + 1, sizeof(*mlen));
		for (i = 0; i < merges.n; i++) {
			if (!gguf_arr_str(&merges, i, &s) ||
			    s.n > 2 * TOK_MAX_TOKEN_LEN) {
				seterr(err, errlen, "merge %llu is unreadable",
				    (unsigned long long)i);
				goto out;
			}
			mtext[i] = s.p;
			mlen[i] = (size_t)s.n;
		}
		v.n_merges = (size_t)merges.n;
		v.merges = mtext;
		v.merge_len = mlen;
		if (gguf_get_str(g, "tokenizer.ggml.pre", &s)) {
			snprintf(pre, sizeof(pre), "%.*s",
			    (int)(s.n > 63 ? 63 : s.n), s.p);
			v.pre = pre;
		}
	}
	v.bos = v.eos = v.eot = v.unk = -1;
	if (gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u) && u < toks.n)
		v.bos = (int32_t)u;
	if (gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &u) && u < toks.n)
		v.eos = (int32_t)u;
	if (gguf_get_u32(g, "tokenizer.ggml.eot_token_id", &u) && u < toks.n)
		v.eot = (int32_t)u;
	if (gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &u) &&
	    u < toks.n)
		v.unk = (int32_t)u;
	else if (v.kind == TOK_SPM && types != NULL) {
		/* llama.cpp's default: the (first) unknown-type token */
		for (i = 0; i < toks.n && v.unk < 0; i++)
			if (((const int32_t *)types)[i] == TOK_T_UNKNOWN)
				v.unk = (int32_t)i;
	}
	v.add_bos = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) ?
	    b : -1;
	v.add_space_prefix = gguf_get_bool(g, "tokenizer.ggml.add_space_prefix",
	    &b) ? b : -1;
	ret = tok_new(&v, out, err, errlen);
 out:
	free(text);
	free(tlen);
	free(mtext);
	free(mlen);
	free(scores);
	free(types);
	return ret;
}

void
tok_free(struct tokenizer *t)
{
	if (t == NULL)
		return;
	free(t->strs);
	free(t->off);
	free(t->len);
	free(t->score);
	free(t->type);
	free(t->ht);
	free(t->mh);
	free(t->special);
	free(t);
}

/* --- accessors --- */

enum tok_kind
tok_kind(const struct tokenizer *t)
{
	return t->kind;
}

int
tok_n_vocab(const struct tokenizer *t)
{
	return t->n;
}

int32_t
tok_bos(const struct tokenizer *t)
{
	return t->bos;
}

int32_t
tok_eos(const struct tokenizer *t)
{
	return t->eos;
}

bool
tok_add_bos(const struct tokenizer *t)
{
	return t->add_bos;
}

bool
tok_is_eog(const struct tokenizer *t, int32_t id)
{
	int	i;

	for (i = 0; i < t->n_eog; i++)
		if (t->eog[i] == id)
			return true;
	return false;
}

int32_t
tok_special(const struct tokenizer *t, const char *text)
{
	int32_t	id = lookup(t, text, strlen(text));

	if (id >= 0 && (t->type[id] == TOK_T_CONTROL ||
	    t->type[id] == TOK_T_USER))
		return id;
	return -1;
}

enum tok_type
tok_type(const struct tokenizer *t, int32_t id)
{
	if (id < 0 || id >= t->n)
		return TOK_T_UNDEFINED;
	return (enum tok_type)t->type[id];
}

/* --- encoding --- */

long
tok_encode(const struct tokenizer *t, const char *text, size_t len,
    bool parse_special, int32_t *ids, size_t cap)
{
	struct tok_span	all = { 0, len };

	return tok_encode_spans(t, text, len, &all, parse_special ? 1 : 0,
	    ids, cap);
}

/* The longest special token at s (n bytes available), or -1. */
static int32_t
match_special(const struct tokenizer *t, const char *s, size_t n,
    size_t *mlen)
{
	size_t	i;

	for (i = 0; i < t->n_special; i++) {
		int32_t	id = t->special[i];
		size_t	l = t->len[id];

		if (l <= n && t->strs[t->off[id]] == s[0] &&
		    memcmp(t->strs + t->off[id], s, l) == 0) {
			*mlen = l;
			return id;
		}
	}
	return -1;
}

long
tok_encode_spans(const struct tokenizer *t, const char *text, size_t len,
    const struct tok_span *spans, size_t nspans, int32_t *ids, size_t cap)
{
	struct tok_out	o = { ids, cap, 0 };
	size_t		pos = 0, k, p, end, ml;
	bool		prev_special = true;	/* start of input */
	int32_t		id;

	if (len > TOK_MAX_TEXT)
		return -1;
	for (k = 0; k < nspans; k++) {
		if (spans[k].off > len || spans[k].len > len - spans[k].off)
			return -1;
		if (k > 0 && spans[k].off < spans[k - 1].off + spans[k - 1].len)
			return -1;
	}
	for (k = 0; k < nspans && t->n_special > 0; k++) {
		end = spans[k].off + spans[k].len;
		for (p = spans[k].off > pos ? spans[k].off : pos; p < end;) {
			id = match_special(t, text + p, end - p, &ml);
			if (id < 0) {
				p++;
				continue;
			}
			if (p > pos) {
				encode_raw(t, text + pos, p - pos, prev_special,
				    &o);
				prev_special = false;
			}
			emit(&o, id);
			prev_special = true;
			p += ml;
			pos = p;
		}
	}
	if (len > pos)
		encode_raw(t, text + pos, len - pos, prev_special, &o);
	return (long)o.n;
}

static void
encode_raw(const struct tokenizer *t, const char *s, size_t n,
    bool after_special, struct tok_out *o)
{
	if (t->kind == TOK_SPM)
		encode_spm(t, s, n, after_special && t->add_space_prefix, o);
	else
		encode_bpe(t, s, n, o);
}

/* --- the heap of candidate merges --- */

static bool
bigram_less(const struct tok_bigram *a, const struct tok_bigram *b)
{
	if (a->key != b->key)
		return a->key < b->key;
	return a->left < b->left;
}

static void
heap_push(struct tok_heap *h, const struct tok_bigram *b)
{
	size_t	i;

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->v = xreallocarray(h->v, h->cap, sizeof(*h->v));
	}
	i = h->n++;
	while (i > 0 && bigram_less(b, &h->v[(i - 1) / 2])) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = *b;
}

static bool
heap_pop(struct tok_heap *h, struct tok_bigram *out)
{
	struct tok_bigram	last;
	size_t			i = 0, c;

	if (h->n == 0)
		return false;
	*out = h->v[0];
	last = h->v[--h->n];
	for (;;) {
		c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && bigram_less(&h->v[c + 1], &h->v[c]))
			c++;
		if (!bigram_less(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n > 0)
		h->v[i] = last;
	return true;
}

/* --- SentencePiece --- */

static void
spm_bigram(const struct tokenizer *t, const char *w, const struct tok_sym *sym,
    int32_t left, struct tok_heap *h)
{
	struct tok_bigram	b;
	int32_t			right, id;

	if (left < 0 || (right = sym[left].next) < 0)
		return;
	b.size = sym[left].n + sym[right].n;
	id = lookup(t, w + sym[left].off, b.size);
	if (!mergeable(t, id))
		return;
	b.key = -(double)t->score[id];
	b.left = left;
	b.result = id;
	heap_push(h, &b);
}

static void
encode_spm(const struct tokenizer *t, const char *s, size_t n, bool prefix,
    struct tok_out *o)
{
	struct tok_heap		 h = { NULL, 0, 0 };
	struct tok_bigram	 b;
	struct tok_sym		*sym;
	char			*w;
	size_t			 wn = 0, i, nsym = 0;
	int32_t			 k, id, r;

	/* U+2581 for every space, and one in front when asked */
	w = xmalloc(n * 3 + 3);
	if (prefix) {
		memcpy(w, "\xe2\x96\x81", 3);
		wn = 3;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == ' ') {
			memcpy(w + wn, "\xe2\x96\x81", 3);
			wn += 3;
		} else
			w[wn++] = s[i];
	}
	sym = xcalloc(wn ? wn : 1, sizeof(*sym));
	for (i = 0; i < wn;) {
		uint32_t	cp;
		size_t		l = utf8_next((const unsigned char *)w, wn, i,
				    &cp);

		sym[nsym].off = (uint32_t)i;
		sym[nsym].n = (uint32_t)l;
		sym[nsym].prev = (int32_t)nsym - 1;
		sym[nsym].next = (int32_t)nsym + 1;
		nsym++;
		i += l;
	}
	if (nsym > 0)
		sym[nsym - 1].next = -1;
	for (k = 0; k + 1 < (int32_t)nsym; k++)
		spm_bigram(t, w, sym, k, &h);
	while (heap_pop(&h, &b)) {
		struct tok_sym	*l = &sym[b.left];

		if (l->n == 0 || l->next < 0 || l->n + sym[l->next].n != b.size)
			continue;	/* stale: a side was merged since */
		r = l->next;
		l->n += sym[r].n;
		sym[r].n = 0;
		l->next = sym[r].next;
		if (l->next >= 0)
			sym[l->next].prev = b.left;
		spm_bigram(t, w, sym, l->prev, &h);
		spm_bigram(t, w, sym, b.left, &h);
	}
	for (k = nsym > 0 ? 0 : -1; k >= 0; k = sym[k].next) {
		id = lookup(t, w + sym[k].off, sym[k].n);
		if (mergeable(t, id)) {
			emit(o, id);
			continue;
		}
		/* not a token: its bytes, or <unk> without byte tokens */
		for (i = 0; i < sym[k].n; i++) {
			id = t->byte_tok[(unsigned char)w[sym[k].off + i]];
			if (id < 0) {
				if (t->unk >= 0)
					emit(o, t->unk);
				break;
			}
			emit(o, id);
		}
	}
	free(h.v);
	free(sym);
	free(w);
}

/* --- byte-level BPE --- */

#define CPI(c, i)	((c)->cp[i])
#define FLI(c, i)	((c)->fl[i])
#define IS_NL(x)	((x) == '\r' || (x) == '\n')
#define ANYCLASS	(UNI_LETTER | UNI_NUMBER | UNI_SPACE)

/* Length in codepoints of the match at pos (< e) of GPT-2's
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
 *   \s+(?!\S)|\s+
 * with the text ending at e. */
static size_t
pre_gpt2(const struct tok_cps *c, size_t pos, size_t e)
{
	uint32_t	cp = CPI(c, pos), n1, n2;
	size_t		p = pos, n;
	int		f2 = FLI(c, pos);

	if (cp == '\'' && pos + 1 < e) {
		n1 = CPI(c, pos + 1);
		if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')
			return 2;
		if (pos + 2 < e) {
			n2 = CPI(c, pos + 2);
			if ((n1 == 'r' && n2 == 'e') ||
			    (n1 == 'v' && n2 == 'e') ||
			    (n1 == 'l' && n2 == 'l'))
				return 3;
		}
	}
	if (cp == ' ' && pos + 1 < e) {
		p = pos + 1;
		f2 = FLI(c, p);
	}
	if (f2 & (UNI_LETTER | UNI_NUMBER)) {
		int	cls = f2 & (UNI_LETTER | UNI_NUMBER);

		for (p++; p < e && (FLI(c, p) & cls); p++)
			;
		return p - pos;
	}
	if (!(f2 & ANYCLASS)) {
		for (p++; p < e && !(FLI(c, p) & ANYCLASS); p++)
			;
		return p - pos;
	}
	for (n = 0; pos + n < e && (FLI(c, pos + n) & UNI_SPACE); n++)
		;
	if (n > 1 && pos + n < e)
		return n - 1;	/* leave the last space to the next word */
	return n > 0 ? n : 1;
}

/* Llama 3's pattern (Qwen2's with digits = 1):
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t
pre_llama3(const struct tok_cps *c, size_t pos, size_t e, size_t digits)
{
	uint32_t	cp = CPI(c, pos), n1, n2;
	size_t		p, n, last_nl;
	int		f = FLI(c, pos), f2;

	if (cp == '\'' && pos + 1 < e) {
		n1 = CPI(c, pos + 1);
		n1 = n1 >= 'A' && n1 <= 'Z' ? n1 + 32 : n1;
		if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')
			return 2;
		if (pos + 2 < e) {
			n2 = CPI(c, pos + 2);
			n2 = n2 >= 'A' && n2 <= 'Z' ? n2 + 32 : n2;
			if ((n1 == 'r' && n2 == 'e') ||
			    (n1 == 'v' && n2 == 'e') ||
			    (n1 == 'l' && n2 == 'l'))
				return 3;
		}
	}
	if (!IS_NL(cp) && !(f & UNI_NUMBER) && ((f & UNI_LETTER) ||
	    (pos + 1 < e && (FLI(c, pos + 1) & UNI_LETTER)))) {
		for (p = pos + 1; p < e && (FLI(c, p) & UNI_LETTER); p++)
			;
		return p - pos;
	}
	if (f & UNI_NUMBER) {
		for (n = 1; n < digits && pos + n < e &&
		    (FLI(c, pos + n) & UNI_NUMBER); n++)
			;
		return n;
	}
	p = pos;
	f2 = f;
	if (cp == ' ' && pos + 1 < e) {
		p = pos + 1;
		f2 = FLI(c, p);
	}
	if (!(f2 & ANYCLASS)) {
		for (p++; p < e && !(FLI(c, p) & ANYCLASS); p++)
			;
		while (p < e && IS_NL(CPI(c, p)))
			p++;
		return p - pos;
	}
	last_nl = 0;
	for (n = 0; pos + n < e && (FLI(c, pos + n) & UNI_SPACE); n++)
		if (IS_NL(CPI(c, pos + n)))
			last_nl = n + 1;
	if (last_nl > 0)
		return last_nl;
	if (n > 1 && pos + n < e)
		return n - 1;
	return n > 0 ? n : 1;
}

static void
bpe_bigram(const struct tokenizer *t, const struct tok_sym *sym, int32_t left,
    struct tok_heap *h)
{
	const struct tok_merge	*m;
	struct tok_bigram	 b;
	int32_t			 right;

	if (left < 0 || (right = sym[left].next) < 0)
		return;
	if ((m = merge_find(t, sym[left].id, sym[right].id)) == NULL)
		return;
	b.key = (double)m->rank;
	b.left = left;
	b.size = sym[left].n + sym[right].n;
	b.result = m->result;
	heap_push(h, &b);
}

/* One pre-tokenized word of n bytes; sym has room for n symbols and
 * scratch for 2n bytes. */
static void
bpe_word(const struct tokenizer *t, const unsigned char *s, size_t n,
    struct tok_sym *sym, struct tok_heap *h, char *scratch, struct tok_out *o)
{
	struct tok_bigram	b;
	size_t			i, sl = 0;
	int32_t			k, id, r;

	if (n == 1) {
		emit(o, t->byte_tok[s[0]]);
		return;
	}
	if (t->pre == PRE_LLAMA3) {
		/* ignore_merges: a word that is a token is that token */
		for (i = 0; i < n; i++)
			sl += utf8_put(byte_to_cp(s[i]), scratch + sl);
		id = lookup(t, scratch, sl);
		if (mergeable(t, id)) {
			emit(o, id);
			return;
		}
	}
	for (i = 0; i < n; i++) {
		sym[i].off = (uint32_t)i;
		sym[i].n = 1;
		sym[i].prev = (int32_t)i - 1;
		sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
		sym[i].id = t->byte_tok[s[i]];
	}
	h->n = 0;
	for (k = 0; k + 1 < (int32_t)n; k++)
		bpe_bigram(t, sym, k, h);
	while (heap_pop(h, &b)) {
		struct tok_sym	*l = &sym[b.left];

		if (l->n == 0 || l->next < 0 || l->n + sym[l->next].n != b.size)
			continue;
		r = l->next;
		l->n += sym[r].n;
		l->id = b.result;
		sym[r].n = 0;
		l->next = sym[r].next;
		if (l->next >= 0)
			sym[l->next].prev = b.left;
		bpe_bigram(t, sym, l->prev, h);
		bpe_bigram(t, sym, b.left, h);
	}
	for (k = 0; k >= 0; k = sym[k].next)
		emit(o, sym[k].id);
}

static void
cps_decode(struct tok_cps *c, const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, l;

	c->cp = xcalloc(n ? n : 1, sizeof(*c->cp));
	c->off = xcalloc(n + 1, sizeof(*c->off));
	c->fl = xcalloc(n ? n : 1, sizeof(*c->fl));
	c->n = 0;
	for (i = 0; i < n; i += l) {
		l = utf8_next(u, n, i, &c->cp[c->n]);
		c->off[c->n] = (uint32_t)i;
		c->fl[c->n] = c->cp[c->n] == CP_INVALID ? 0 :
		    (uint8_t)uni_flags(c->cp[c->n]);
		c->n++;
	}
	c->off[c->n] = (uint32_t)n;
}

static void
cps_release(struct tok_cps *c)
{
	free(c->cp);
	free(c->off);
	free(c->fl);
}

/* Splits c into words by t's pattern; word[i] is the end (in
 * codepoints) of word i, and there is room for c->n.  Returns the count. */
static size_t
pre_split(const struct tokenizer *t, const struct tok_cps *c, size_t *word)
{
	size_t	pos, e, l, nword = 0;

	for (pos = 0; pos < c->n;) {
		/* SmolLM splits off every digit first; the pattern then
		 * sees the text between digits on its own */
		e = c->n;
		if (t->pre == PRE_SMOLLM) {
			if (c->fl[pos] & UNI_NUMBER) {
				word[nword++] = ++pos;
				continue;
			}
			for (e = pos; e < c->n && !(c->fl[e] & UNI_NUMBER); e++)
				;
		}
		while (pos < e) {
			switch (t->pre) {
			case PRE_LLAMA3:
				l = pre_llama3(c, pos, e, 3);
				break;
			case PRE_QWEN2:
				l = pre_llama3(c, pos, e, 1);
				break;
			default:
				l = pre_gpt2(c, pos, e);
				break;
			}
			pos += l;
			word[nword++] = pos;
		}
	}
	return nword;
}

static void
encode_bpe(const struct tokenizer *t, const char *s, size_t n,
    struct tok_out *o)
{
	const unsigned char	*u = (const unsigned char *)s;
	struct tok_cps		 c;
	struct tok_heap		 h = { NULL, 0, 0 };
	struct tok_sym		*sym;
	char			*scratch;
	size_t			 i, pos, maxw = 0, nword;
	size_t			*word;		/* word ends, in codepoints */

	cps_decode(&c, s, n);
	word = xcalloc(c.n ? c.n : 1, sizeof(*word));
	nword = pre_split(t, &c, word);
	for (i = 0, pos = 0; i < nword; pos = word[i++])
		if (c.off[word[i]] - c.off[pos] > maxw)
			maxw = c.off[word[i]] - c.off[pos];
	sym = xcalloc(maxw ? maxw : 1, sizeof(*sym));
	scratch = xmalloc(maxw * 2 + 1);
	for (i = 0, pos = 0; i < nword; pos = word[i++])
		bpe_word(t, u + c.off[pos], c.off[word[i]] - c.off[pos], sym,
		    &h, scratch, o);
	free(scratch);
	free(sym);
	free(h.v);
	free(word);
	cps_release(&c);
}

/* --- decoding --- */

size_t
tok_piece(const struct tokenizer *t, int32_t id, bool show_special, char *buf,
    size_t cap)
{
	const char	*s;
	char		 tmp[4];
	size_t		 n = 0, i, l, k;
	unsigned	 b;
	uint32_t	 cp;

	if (id < 0 || id >= t->n)
		return 0;
	s = t->strs + t->off[id];
	l = t->len[id];
	switch (t->type[id]) {
	case TOK_T_CONTROL:
		if (!show_special)
			return 0;
		/* FALLTHROUGH */
	case TOK_T_USER:
		for (i = 0; i < l; i++, n++)
			if (n < cap)
				buf[n] = s[i];
		return n;
	case TOK_T_UNUSED:
		return 0;
	case TOK_T_UNKNOWN:
		s = "\xe2\x96\x85";	/* what llama.cpp shows for <unk> */
		for (i = 0; i < 3; i++, n++)
			if (n < cap)
				buf[n] = s[i];
		return n;
	case TOK_T_BYTE:
		if (l == 6 && sscanf(s, "<0x%2X>", &b) == 1) {
			if (cap > 0)
				buf[0] = (char)b;
			return 1;
		}
		break;
	}
	if (t->kind == TOK_SPM) {
		for (i = 0; i < l; i++) {
			if (i + 2 < l &&
			    memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
				if (n < cap)
					buf[n] = ' ';
				n++;
				i += 2;
				continue;
			}
			if (n < cap)
				buf[n] = s[i];
			n++;
		}
		return n;
	}
	/* byte-level: each character of the alphabet is one byte */
	for (i = 0; i < l; i += k) {
		int	v;

		k = utf8_next((const unsigned char *)s, l, i, &cp);
		if (cp != CP_INVALID && (v = cp_to_byte(cp)) >= 0) {
			if (n < cap)
				buf[n] = (char)v;
			n++;
			continue;
		}
		memcpy(tmp, s + i, k);
		for (b = 0; b < k; b++, n++)
			if (n < cap)
				buf[n] = tmp[b];
	}
	return n;
}

size_t
tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n,
    bool show_special, char *buf, size_t cap)
{
	char	 tmp[TOK_MAX_TOKEN_LEN];	/* a piece is never longer */
	size_t	 total = 0, i, l, k, skip;
	bool	 first = t->kind == TOK_SPM && t->add_space_prefix;

	for (i = 0; i < n; i++) {
		l = tok_piece(t, ids[i], show_special, tmp, sizeof(tmp));
		if (l > sizeof(tmp))
			l = sizeof(tmp);
		skip = 0;
		if (first && l > 0) {
			first = false;
			skip = tmp[0] == ' ';
		}
		for (k = skip; k < l; k++, total++)
			if (total < cap)
				buf[total] = tmp[k];
	}
	return total;
}
