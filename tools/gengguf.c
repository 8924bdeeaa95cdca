/* tools/gengguf.c - maas-gengguf: tiny seeded random-weight GGUF llama
 * models with a real tokenizer, for tests and demos.
 *
 *   maas-gengguf [--arch llama|qwen2] [--tokenizer spm|bpe]
 *	[--template chatml|llama2|llama3|none|'<jinja text>']
 *	[--type f32|f16|bf16|q8_0|q4_0|q4_k|q4_k_m|q5_k|q5_k_m|q6_k]
 *	[--seed N]
 *	[--n-embd 64] [--n-layer 2] [--n-head 4] [--n-head-kv 2] [--n-ff 128]
 *	[--n-ctx 256]
 *	[--vocab 512] -o FILE
 *
 * The vocabulary is learnt when the tool runs, from the English text of
 * tools/corpus.h: byte-level BPE ("gpt2", GPT-2's byte-to-unicode mapping,
 * merges by pair counting) or SentencePiece-style pieces ("llama", U+2581
 * for spaces, byte fallback, log-frequency scores).  If the text runs out
 * of pairs before the vocabulary is full, the rest are unused reserved
 * tokens.  Weights come from one splitmix64 stream seeded by --seed, so
 * the same arguments always give the same bytes.  2-D weights take --type;
 * norms and biases stay F32.  q4_k_m and q5_k_m mix as llama.cpp's Q4_K_M
 * and Q5_K_M files do: Q6_K for the output matrix and for attn_v and
 * ffn_down of every other layer, Q4_K (Q5_K) for the rest (the quantizers
 * here are plain min/max ones, not llama.cpp's search for the best
 * scales: the blocks are valid and exercise every bit of the format).
 * llama writes a separate output matrix, qwen2 ties it to the token embeddings (as Qwen2's small models do) and
 * has Q/K/V biases. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "tools/corpus.h"
#include "tools/genutil.h"

#define GG_ALIGN	32
#define GG_MAX_VOCAB	(1 << 18)
#define GG_MAX_DIM	16384
#define GG_MAX_LAYER	256
#define GG_MAX_PARAMS	(2LL << 30)

/* ggml tensor types and GGUF value types used here. */
#define T_F32		0
#define T_F16		1
#define T_Q4_0		2
#define T_Q8_0		8
#define T_Q4_K		12
#define T_Q5_K		13
#define T_Q6_K		14
#define T_BF16		30
#define V_U32		4
#define V_I32		5
#define V_F32		6
#define V_BOOL		7
#define V_STRING	8
#define V_ARRAY		9

/* token_type values of tokenizer.ggml.token_type. */
#define TT_NORMAL	1
#define TT_UNKNOWN	2
#define TT_CONTROL	3
#define TT_UNUSED	5
#define TT_BYTE		6

static const char tmpl_chatml[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] "
    "!= 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant."
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' "
    "+ message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char tmpl_llama2[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = "
    "messages[1:] %}{% set system_message = messages[0]['content'] %}{% "
    "else %}{% set loop_messages = messages %}{% set system_message = false "
    "%}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
    "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('"
    "Conversation roles must alternate user/assistant/user/assistant/...') "
    "}}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% "
    "set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
    "message['content'] %}{% else %}{% set content = message['content'] %}"
    "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' "
    "+ content.strip() + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif "
    "%}{% endfor %}";
static const char tmpl_llama3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' "
    "%}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

struct opts {
	const char	*arch;		/* llama, qwen2 */
	bool		 bpe;
	const char	*tmpl_name;	/* chatml, llama2, llama3, none, raw */
	const char	*tmpl;		/* Jinja text, NULL for none */
	int		 type;		/* T_F32, T_F16, T_Q8_0, ... */
	bool		 kmix;		/* q4_k_m: some matrices Q6_K */
	uint64_t	 seed;
	int		 n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
	int		 n_vocab;
	const char	*out;
};

/* The vocabulary being built. */
struct vocab {
	char		**text;		/* (n) NUL-terminated token texts */
	float		 *score;	/* (n) */
	int32_t		 *type;		/* (n) TT_* */
	int		  n, cap;
	int32_t		 *hash;		/* open addressing: id + 1, 0 empty */
	size_t		  hcap;
	char		**merges;	/* (n_merges) "left right" */
	int		  n_merges;
	int32_t		  bos, eos, eot;
	bool		  add_bos;
};

/* A word of the corpus as a sequence of token ids. */
struct word {
	int32_t		*sym;
	int		 n;
};

struct tensor {
	char		 name[64];
	int		 ndim;
	uint64_t	 ne[2];
	int		 type;
	uint64_t	 off;		/* in the data section */
	int		 init;		/* INIT_* */
	float		 scale;
};
#define INIT_UNIFORM	0
#define INIT_NORM	1	/* 1 + U(-scale, scale) */

struct buf {
	uint8_t		*p;
	size_t		 n, cap;
};

static void	usage(void) __attribute__((noreturn));
static uint16_t	f32_to_f16(float);
static float	f16_to_f32(uint16_t);
static void	put_f16(uint8_t *, float);
static int	clampi(long, int, int);
static void	quant_k45(const float *, uint8_t *, int);
static void	quant_q6k(const float *, uint8_t *);
static uint64_t	fnv(const char *);
static int32_t	voc_find(const struct vocab *, const char *);
static int32_t	voc_add(struct vocab *, const char *, float, int32_t);
static void	utf8_put(char *, size_t *, uint32_t);
static void	learn_bpe(struct vocab *, const struct opts *);
static void	learn_spm(struct vocab *, const struct opts *);
static int	learn_merges(struct vocab *, struct word *, int, int, bool,
		    double);
static void	add_specials(struct vocab *, const char *const *, int);
static void	pad_vocab(struct vocab *, int, const char *);
static void	b_put(struct buf *, const void *, size_t);
static void	b_u32(struct buf *, uint32_t);
static void	b_u64(struct buf *, uint64_t);
static void	b_str(struct buf *, const char *);
static void	kv_u32(struct buf *, int *, const char *, uint32_t);
static void	kv_f32(struct buf *, int *, const char *, float);
static void	kv_bool(struct buf *, int *, const char *, bool);
static void	kv_str(struct buf *, int *, const char *, const char *);
static void	add_tensor(struct tensor *, int *, const char *, int,
		    uint64_t, uint64_t, int, int, float);
static uint64_t	tensor_bytes(const struct tensor *);
static void	write_tensor(FILE *, const struct tensor *, uint64_t *,
		    float *, uint8_t *);
static void	build(const struct opts *);

static void
usage(void)
{
	fprintf(stderr, "usage: maas-gengguf [--arch llama|qwen2] "
	    "[--tokenizer spm|bpe]\n"
	    "\t[--template chatml|llama2|llama3|none|JINJA] "
	    "[--type f32|f16|bf16|q8_0|q4_0|q4_k|q4_k_m|q5_k|q5_k_m|q6_k]\n"
	    "\t[--seed N] [--n-embd N] [--n-layer N] [--n-head N] "
	    "[--n-head-kv N]\n\t[--n-ff N] [--n-ctx N] [--vocab N] -o FILE\n");
	exit(1);
}

/* IEEE half precision, rounding to nearest even. */
static uint16_t
f32_to_f16(float f)
{
	uint32_t	x, sign, e, m, hm, rem, half, shift;
	int32_t		ne;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	e = (x >> 23) & 0xff;
	m = x & 0x7fffff;
	if (e == 0xff)
		return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
	ne = (int32_t)e - 127 + 15;
	if (ne >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (ne <= 0) {
		if (ne < -10)
			return (uint16_t)sign;
		m |= 0x800000;
		shift = (uint32_t)(14 - ne);
		hm = m >> shift;
		rem = m & ((1u << shift) - 1);
		half = 1u << (shift - 1);
		if (rem > half || (rem == half && (hm & 1)))
			hm++;
		return (uint16_t)(sign | hm);
	}
	hm = m >> 13;
	rem = m & 0x1fff;
	x = sign | ((uint32_t)ne << 10) | hm;
	if (rem > 0x1000 || (rem == 0x1000 && (hm & 1)))
		x++;		/* a carry into the exponent is right */
	return (uint16_t)x;
}


/* --- vocabulary --- */

static uint64_t
fnv(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static int32_t
voc_find(const struct vocab *v, const char *s)
{
	size_t	i = fnv(s) & (v->hcap - 1);

	for (; v->hash[i] != 0; i = (i + 1) & (v->hcap - 1)) {
		if (strcmp(v->text[v->hash[i] - 1], s) == 0)
			return v->hash[i] - 1;
	}
	return -1;
}

static int32_t
voc_add(struct vocab *v, const char *s, float score, int32_t type)
{
	size_t	i;

	if (v->n == v->cap)
		fatalx("vocabulary overflow");
	v->text[v->n] = xstrdup(s);
	v->score[v->n] = score;
	v->type[v->n] = type;
	for (i = fnv(s) & (v->hcap - 1); v->hash[i] != 0;
	    i = (i + 1) & (v->hcap - 1))
		;
	v->hash[i] = v->n + 1;
	return v->n++;
}

static void
utf8_put(char *out, size_t *n, uint32_t cp)
{
	if (cp < 0x80)
		out[(*n)++] = (char)cp;
	else if (cp < 0x800) {
		out[(*n)++] = (char)(0xc0 | (cp >> 6));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*n)++] = (char)(0xe0 | (cp >> 12));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/* Merges pairs of adjacent symbols of words, the most frequent pair first
 * (ties to the smaller ids), until the vocabulary holds limit tokens or
 * no pair is left.  spm: the merged piece gets a log-frequency score
 * below every earlier one; bpe: the merge is recorded as "left right". */
static int
learn_merges(struct vocab *v, struct word *w, int nw, int limit, bool spm,
    double total)
{
	size_t		 tcap = 1;
	uint64_t	*key;
	uint32_t	*cnt;
	float		 last = 0.0f;
	int		 nsym = 0, made = 0;

	for (int i = 0; i < nw; i++)
		nsym += w[i].n;
	while (tcap < (size_t)nsym * 2 + 16)
		tcap <<= 1;
	key = xcalloc(tcap, sizeof(*key));
	cnt = xcalloc(tcap, sizeof(*cnt));
	while (v->n < limit) {
		uint64_t	best = 0;
		uint32_t	bestc = 0;
		int32_t		a, b, id;
		char		*s;
		size_t		la, lb;

		memset(cnt, 0, tcap * sizeof(*cnt));
		for (int i = 0; i < nw; i++) {
			for (int j = 0; j + 1 < w[i].n; j++) {
				uint64_t k = (uint64_t)w[i].sym[j] << 32 |
				    (uint32_t)w[i].sym[j + 1];
				size_t h = (size_t)((k * 0x9e3779b97f4a7c15ULL)
				    >> 20) & (tcap - 1);

				while (cnt[h] != 0 && key[h] != k)
					h = (h + 1) & (tcap - 1);
				key[h] = k;
				cnt[h]++;
			}
		}
		for (size_t h = 0; h < tcap; h++) {
			if (cnt[h] > bestc || (cnt[h] == bestc && cnt[h] != 0 &&
			    key[h] < best)) {
				bestc = cnt[h];
				best = key[h];
			}
		}
		if (bestc == 0)
			break;
		a = (int32_t)(best >> 32);
		b = (int32_t)(best & 0xffffffff);
		la = strlen(v->text[a]);
		lb = strlen(v->text[b]);
		s = xmalloc(la + lb + 2);
		memcpy(s, v->text[a], la);
		memcpy(s + la, v->text[b], lb + 1);
		if ((id = voc_find(v, s)) == -1) {
			float sc = (float)log((double)bestc / total);

			if (made > 0 && sc >= last)
				sc = last - 0.001f;
			last = sc;
			id = voc_add(v, s, spm ? sc : 0.0f, TT_NORMAL);
			made++;
		}
		if (!spm) {
			s[la] = ' ';
			memcpy(s + la + 1, v->text[b], lb + 1);
			v->merges = xreallocarray(v->merges,
			    (size_t)v->n_merges + 1, sizeof(*v->merges));
			v->merges[v->n_merges++] = s;
		} else
			free(s);
		for (int i = 0; i < nw; i++) {
			int	o = 0;

			for (int j = 0; j < w[i].n; j++) {
				if (j + 1 < w[i].n && w[i].sym[j] == a &&
				    w[i].sym[j + 1] == b) {
					w[i].sym[o++] = id;
					j++;
				} else
					w[i].sym[o++] = w[i].sym[j];
			}
			w[i].n = o;
		}
	}
	free(key);
	free(cnt);
	return made;
}

static void
add_specials(struct vocab *v, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		voc_add(v, names[i], 0.0f, TT_CONTROL);
}

static void
pad_vocab(struct vocab *v, int upto, const char *fmt)
{
	char	name[64];

	for (int i = 0; v->n < upto; i++) {
		snprintf(name, sizeof(name), fmt, i);
		voc_add(v, name, 0.0f, TT_UNUSED);
	}
}

/* GPT-2 byte-level BPE.  Words: an optional leading space and a run of
 * letters, of up to three digits, or of other printable characters; runs
 * of whitespace stand alone. */
static void
learn_bpe(struct vocab *v, const struct opts *o)
{
	static const char *const specials[] = {
		"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
		"<|start_header_id|>", "<|end_header_id|>", "<|im_start|>",
		"<|im_end|>"
	};
	const int	 nspec = (int)(sizeof(specials) / sizeof(specials[0]));
	const char	*c = gengguf_corpus;
	size_t		 len = sizeof(gengguf_corpus) - 1, i = 0;
	struct word	*w = xcalloc(len, sizeof(*w));
	int		 nw = 0, k = 0;
	uint32_t	 cp[256];
	char		 t[8];
	size_t		 tn;

	/* bytes_to_unicode: printable bytes stand for themselves, the
	 * others for 256, 257, ... in byte order. */
	for (int b = 0, extra = 0; b < 256; b++) {
		bool keep = (b >= '!' && b <= '~') || (b >= 0xa1 &&
		    b <= 0xac) || (b >= 0xae && b <= 0xff);

		cp[b] = keep ? (uint32_t)b : (uint32_t)(256 + extra++);
	}
	for (int b = 0; b < 256; b++) {
		tn = 0;
		utf8_put(t, &tn, cp[b]);
		t[tn] = '\0';
		voc_add(v, t, 0.0f, TT_NORMAL);
	}
	while (i < len) {
		size_t	s = i;
		int	cls;

#define CLS(ch) (((ch) >= 'a' && (ch) <= 'z') || ((ch) >= 'A' && \
    (ch) <= 'Z') ? 1 : ((ch) >= '0' && (ch) <= '9') ? 2 : \
    ((ch) == ' ' || (ch) == '\n') ? 0 : 3)
		if (c[i] == ' ' && i + 1 < len && CLS(c[i + 1]) != 0)
			i++;
		cls = CLS(c[i]);
		k = 0;
		while (i < len && CLS(c[i]) == cls && (cls != 2 || k < 3)) {
			i++;
			k++;
		}
#undef CLS
		w[nw].sym = xcalloc(i - s, sizeof(int32_t));
		for (size_t j = s; j < i; j++)
			w[nw].sym[w[nw].n++] = (unsigned char)c[j];
		nw++;
	}
	learn_merges(v, w, nw, o->n_vocab - nspec, false, (double)len);
	pad_vocab(v, o->n_vocab - nspec, "<|reserved_%d|>");
	add_specials(v, specials, nspec);
	v->bos = voc_find(v, "<|begin_of_text|>");
	if (o->tmpl_name != NULL && strcmp(o->tmpl_name, "chatml") == 0) {
		v->eos = v->eot = voc_find(v, "<|im_end|>");
		v->add_bos = false;
	} else if (o->tmpl_name != NULL &&
	    strcmp(o->tmpl_name, "llama3") == 0) {
		v->eos = v->eot = voc_find(v, "<|eot_id|>");
		v->add_bos = true;
	} else {
		v->eos = voc_find(v, "<|end_of_text|>");
		v->eot = -1;
		v->add_bos = true;
	}
	for (int j = 0; j < nw; j++)
		free(w[j].sym);
	free(w);
}

/* SentencePiece-style: <unk> <s> </s>, byte fallback <0x00>..<0xFF>, the
 * characters of the text, then merged pieces.  Spaces become U+2581 and
 * every word gets one in front (SentencePiece's dummy prefix). */
static void
learn_spm(struct vocab *v, const struct opts *o)
{
	static const char *const chatml[] = { "<|im_start|>", "<|im_end|>" };
	const char	*c = gengguf_corpus;
	size_t		 len = sizeof(gengguf_corpus) - 1, i = 0;
	struct word	*w = xcalloc(len, sizeof(*w));
	uint32_t	 freq[128] = { 0 };
	int32_t		 charid[128], sp;
	int		 nw = 0, nspec = 0;
	double		 total = 0;
	char		 t[16];
	bool		 isc = o->tmpl_name != NULL &&
			    strcmp(o->tmpl_name, "chatml") == 0;

	if (isc)
		nspec = 2;
	voc_add(v, "<unk>", 0.0f, TT_UNKNOWN);
	voc_add(v, "<s>", 0.0f, TT_CONTROL);
	voc_add(v, "</s>", 0.0f, TT_CONTROL);
	for (int b = 0; b < 256; b++) {
		snprintf(t, sizeof(t), "<0x%02X>", b);
		voc_add(v, t, 0.0f, TT_BYTE);
	}
	/* Character pieces, most frequent first (ties by code). */
	for (i = 0; i < len; i++) {
		if (c[i] != '\n' && c[i] != ' ' && (unsigned char)c[i] < 128)
			freq[(unsigned char)c[i]]++;
		if (c[i] == ' ' || c[i] == '\n' || i == 0)
			freq[' ']++;	/* the U+2581 of each word */
		total++;
	}
	for (;;) {
		int	best = -1;

		for (int ch = 1; ch < 128; ch++) {
			if (freq[ch] > 0 && (best == -1 ||
			    freq[ch] > freq[best]))
				best = ch;
		}
		if (best == -1)
			break;
		if (best == ' ')
			memcpy(t, "\xe2\x96\x81", 4);
		else {
			t[0] = (char)best;
			t[1] = '\0';
		}
		charid[best] = voc_add(v, t, (float)log(freq[best] / total),
		    TT_NORMAL);
		freq[best] = 0;
	}
	if (v->n + nspec > o->n_vocab)
		fatalx("--vocab %d is too small: spm needs at least %d",
		    o->n_vocab, v->n + nspec);
	sp = charid[' '];
	for (i = 0; i < len;) {
		size_t	s;

		while (i < len && (c[i] == ' ' || c[i] == '\n'))
			i++;
		if (i == len)
			break;
		for (s = i; i < len && c[i] != ' ' && c[i] != '\n'; i++)
			;
		w[nw].sym = xcalloc(i - s + 1, sizeof(int32_t));
		w[nw].sym[w[nw].n++] = sp;
		for (size_t j = s; j < i; j++)
			w[nw].sym[w[nw].n++] = charid[(unsigned char)c[j]];
		nw++;
	}
	learn_merges(v, w, nw, o->n_vocab - nspec, true, total);
	pad_vocab(v, o->n_vocab - nspec, "<unused%d>");
	if (isc)
		add_specials(v, chatml, nspec);
	v->bos = 1;
	v->eos = 2;
	v->eot = isc ? voc_find(v, "<|im_end|>") : -1;
	v->add_bos = true;
	for (int j = 0; j < nw; j++)
		free(w[j].sym);
	free(w);
}

/* --- the file --- */

static void
b_put(struct buf *b, const void *p, size_t n)
{
	if (b->cap - b->n < n) {
		while (b->cap - b->n < n)
			b->cap = b->cap ? b->cap * 2 : 4096;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void
b_u32(struct buf *b, uint32_t v)
{
	uint8_t	x[4];

	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	b_put(b, x, 4);
}

static void
b_u64(struct buf *b, uint64_t v)
{
	uint8_t	x[8];

	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	b_put(b, x, 8);
}

static void
b_str(struct buf *b, const char *s)
{
	size_t	n = strlen(s);

	b_u64(b, n);
	b_put(b, s, n);
}

static void
kv_u32(struct buf *b, int *nkv, const char *k, uint32_t v)
{
	b_str(b, k);
	b_u32(b, V_U32);
	b_u32(b, v);
	(*nkv)++;
}


static void
kv_f32(struct buf *b, int *nkv, const char *k, float v)
{
	uint32_t	x;

	memcpy(&x, &v, 4);
	b_str(b, k);
	b_u32(b, V_F32);
	b_u32(b, x);
	(*nkv)++;
}

static void
kv_bool(struct buf *b, int *nkv, const char *k, bool v)
{
	uint8_t	x = v;

	b_str(b, k);
	b_u32(b, V_BOOL);
	b_put(b, &x, 1);
	(*nkv)++;
}

static void
kv_str(struct buf *b, int *nkv, const char *k, const char *v)
{
	b_str(b, k);
	b_u32(b, V_STRING);
	b_str(b, v);
	(*nkv)++;
}

static void
add_tensor(struct tensor *t, int *n, const char *name, int ndim,
    uint64_t ne0, uint64_t ne1, int type, int init, float scale)
{
	struct tensor	*x = &t[(*n)++];

	snprintf(x->name, sizeof(x->name), "%s", name);
	x->ndim = ndim;
	x->ne[0] = ne0;
	x->ne[1] = ne1;
	x->type = ndim == 1 ? T_F32 : type;
	x->init = init;
	x->scale = scale;
}

static float
f16_to_f32(uint16_t h)
{
	uint32_t	sign = (uint32_t)(h & 0x8000) << 16, e = h >> 10 & 31;
	uint32_t	m = h & 0x3ff, x;
	float		f;

	if (e == 0) {
		f = ldexpf((float)m, -24);
		return sign ? -f : f;
	}
	if (e == 31)
		x = sign | 0x7f800000 | m << 13;
	else
		x = sign | (e + 112) << 23 | m << 13;
	memcpy(&f, &x, 4);
	return f;
}

/* Stores f as F16 at p (little-endian). */
static void
put_f16(uint8_t *p, float f)
{
	uint16_t	h = f32_to_f16(f);

	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

static int
clampi(long v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : (int)v;
}

/* One Q4_K block (levels 15) or Q5_K block (levels 31) of x[0..256) at
 * b: each 32-element sub-block s gets scale (max - min) / levels and min
 * offset -min (min taken at most 0), both as 6-bit multiples of the
 * block's F16 d and dmin; q = round((x + m) / scale) in 0..levels, its
 * low nibble at byte 32 * (s / 2) + i of the nibbles (high nibble for odd
 * s) and, for Q5_K, its fifth bit at bit s of byte i of the 32 before
 * them. */
static void
quant_k45(const float *x, uint8_t *b, int levels)
{
	float		sc[8], mn[8], msc = 0.0f, mmn = 0.0f, d, dmin;
	int		ls[8], lm[8];
	uint8_t		*scales = b + 4, *qh = b + 16;
	uint8_t		*qs = levels == 31 ? b + 48 : b + 16;

	for (int s = 0; s < 8; s++) {
		float	lo = x[32 * s], hi = x[32 * s];

		for (int i = 1; i < 32; i++) {
			lo = fminf(lo, x[32 * s + i]);
			hi = fmaxf(hi, x[32 * s + i]);
		}
		if (lo > 0.0f)
			lo = 0.0f;
		sc[s] = (hi - lo) / (float)levels;
		mn[s] = -lo;
		msc = fmaxf(msc, sc[s]);
		mmn = fmaxf(mmn, mn[s]);
	}
	put_f16(b, msc / 63.0f);
	put_f16(b + 2, mmn / 63.0f);
	d = f16_to_f32((uint16_t)(b[0] | b[1] << 8));
	dmin = f16_to_f32((uint16_t)(b[2] | b[3] << 8));
	for (int s = 0; s < 8; s++) {
		ls[s] = d > 0.0f ? clampi(lroundf(sc[s] / d), 0, 63) : 0;
		lm[s] = dmin > 0.0f ? clampi(lroundf(mn[s] / dmin), 0, 63) :
		    0;
	}
	/* Sub-blocks 0..3 in the low 6 bits of bytes 0..3 (scales) and
	 * 4..7 (mins); 4..7 in the nibbles of bytes 8..11 and the top two
	 * bits of bytes 0..7. */
	for (int j = 0; j < 4; j++) {
		scales[j] = (uint8_t)(ls[j] | (ls[j + 4] >> 4) << 6);
		scales[j + 4] = (uint8_t)(lm[j] | (lm[j + 4] >> 4) << 6);
		scales[j + 8] = (uint8_t)((ls[j + 4] & 15) |
		    (lm[j + 4] & 15) << 4);
	}
	memset(qs, 0, 128);
	if (levels == 31)
		memset(qh, 0, 32);
	for (int s = 0; s < 8; s++) {
		float	dl = d * (float)ls[s], ml = dmin * (float)lm[s];

		for (int i = 0; i < 32; i++) {
			int	q = dl > 0.0f ? clampi(lroundf((x[32 * s + i] +
				    ml) / dl), 0, levels) : 0;

			qs[32 * (s / 2) + i] |= (uint8_t)(s % 2 ?
			    (q & 15) << 4 : q & 15);
			if (levels == 31)
				qh[i] |= (uint8_t)((q >> 4) << s);
		}
	}
}

/* One Q6_K block of x[0..256): each 16-element sub-block gets scale
 * max|x| / 31 as an int8 multiple of the block's F16 d; q = round(x /
 * scale) in -32..31, stored as q + 32 in 6 bits: for element e, half h
 * = e / 128, quarter k = e % 128 / 32, l = e % 32, the low nibble in
 * byte h * 64 + l + 32 * (k % 2) (its high nibble for k >= 2) and the
 * top two bits at bit 2k of byte 128 + h * 32 + l. */
static void
quant_q6k(const float *x, uint8_t *b)
{
	float		sc[16], msc = 0.0f, d;
	int8_t		*scales = (int8_t *)(void *)(b + 192);

	memset(b, 0, 208);
	for (int s = 0; s < 16; s++) {
		float	amax = 0.0f;

		for (int i = 0; i < 16; i++)
			amax = fmaxf(amax, fabsf(x[16 * s + i]));
		sc[s] = amax / 31.0f;
		msc = fmaxf(msc, sc[s]);
	}
	put_f16(b + 208, msc / 127.0f);
	d = f16_to_f32((uint16_t)(b[208] | b[209] << 8));
	for (int s = 0; s < 16; s++)
		scales[s] = (int8_t)(d > 0.0f ? clampi(lroundf(sc[s] / d),
		    -128, 127) : 0);
	for (int e = 0; e < 256; e++) {
		int	h = e / 128, k = e % 128 / 32, l = e % 32;
		float	dl = d * (float)scales[e / 16];
		int	q = (dl != 0.0f ? clampi(lroundf(x[e] / dl), -32, 31) :
			    0) + 32;
		uint8_t	*lo = b + h * 64 + l + 32 * (k % 2);

		*lo |= (uint8_t)(k >= 2 ? (q & 15) << 4 : q & 15);
		b[128 + h * 32 + l] |= (uint8_t)((q >> 4) << (2 * k));
	}
}

static uint64_t
tensor_bytes(const struct tensor *t)
{
	uint64_t	n = t->ne[0] * t->ne[1];

	switch (t->type) {
	case T_F16:
	case T_BF16:
		return n * 2;
	case T_Q8_0:
		return n / 32 * 34;
	case T_Q4_0:
		return n / 32 * 18;
	case T_Q4_K:
		return n / 256 * 144;
	case T_Q5_K:
		return n / 256 * 176;
	case T_Q6_K:
		return n / 256 * 210;
	default:
		return n * 4;
	}
}

/* Draws one tensor's values row by row and writes them in its type. */
static void
write_tensor(FILE *f, const struct tensor *t, uint64_t *rng, float *row,
    uint8_t *out)
{
	uint64_t	ne0 = t->ne[0];
	size_t		n;

	for (uint64_t r = 0; r < t->ne[1]; r++) {
		for (uint64_t i = 0; i < ne0; i++) {
			row[i] = gen_uniform(rng, t->scale);
			if (t->init == INIT_NORM)
				row[i] += 1.0f;
		}
		switch (t->type) {
		case T_F16:
			for (uint64_t i = 0; i < ne0; i++) {
				uint16_t h = f32_to_f16(row[i]);

				out[2 * i] = (uint8_t)h;
				out[2 * i + 1] = (uint8_t)(h >> 8);
			}
			n = ne0 * 2;
			break;
		case T_BF16:
			/* The top half of the F32, rounded to nearest
			 * even (the values are finite). */
			for (uint64_t i = 0; i < ne0; i++) {
				uint32_t	u;

				memcpy(&u, &row[i], 4);
				u += 0x7fff + (u >> 16 & 1);
				out[2 * i] = (uint8_t)(u >> 16);
				out[2 * i + 1] = (uint8_t)(u >> 24);
			}
			n = ne0 * 2;
			break;
		case T_Q8_0:
			/* As ggml's reference quantizer: d = max|x| / 127,
			 * q = round(x / d), d stored as F16. */
			for (uint64_t bk = 0; bk < ne0 / 32; bk++) {
				const float	*x = row + bk * 32;
				uint8_t		*q = out + bk * 34;
				float		 amax = 0.0f, d, id;
				uint16_t	 h;

				for (int i = 0; i < 32; i++)
					amax = fmaxf(amax, fabsf(x[i]));
				d = amax / 127.0f;
				id = d != 0.0f ? 1.0f / d : 0.0f;
				h = f32_to_f16(d);
				q[0] = (uint8_t)h;
				q[1] = (uint8_t)(h >> 8);
				for (int i = 0; i < 32; i++)
					q[2 + i] = (uint8_t)(int8_t)roundf(
					    x[i] * id);
			}
			n = ne0 / 32 * 34;
			break;
		case T_Q4_0:
			/* As ggml's reference quantizer: d = -m / 8 for the
			 * m of largest magnitude, nibbles q + 8. */
			for (uint64_t bk = 0; bk < ne0 / 32; bk++) {
				const float	*x = row + bk * 32;
				uint8_t		*q = out + bk * 18;
				float		 amax = 0.0f, mx = 0.0f, d, id;
				uint16_t	 h;

				for (int i = 0; i < 32; i++) {
					if (amax < fabsf(x[i])) {
						amax = fabsf(x[i]);
						mx = x[i];
					}
				}
				d = mx / -8.0f;
				id = d != 0.0f ? 1.0f / d : 0.0f;
				h = f32_to_f16(d);
				q[0] = (uint8_t)h;
				q[1] = (uint8_t)(h >> 8);
				for (int i = 0; i < 16; i++) {
					int lo = (int)(int8_t)(x[i] * id + 8.5f);
					int hi = (int)(int8_t)(x[16 + i] * id +
					    8.5f);

					lo = lo > 15 ? 15 : lo;
					hi = hi > 15 ? 15 : hi;
					q[2 + i] = (uint8_t)(lo | hi << 4);
				}
			}
			n = ne0 / 32 * 18;
			break;
		case T_Q4_K:
			for (uint64_t bk = 0; bk < ne0 / 256; bk++)
				quant_k45(row + bk * 256, out + bk * 144, 15);
			n = ne0 / 256 * 144;
			break;
		case T_Q5_K:
			for (uint64_t bk = 0; bk < ne0 / 256; bk++)
				quant_k45(row + bk * 256, out + bk * 176, 31);
			n = ne0 / 256 * 176;
			break;
		case T_Q6_K:
			for (uint64_t bk = 0; bk < ne0 / 256; bk++)
				quant_q6k(row + bk * 256, out + bk * 210);
			n = ne0 / 256 * 210;
			break;
		default:
			for (uint64_t i = 0; i < ne0; i++)
				memcpy(out + 4 * i, &row[i], 4);
			n = ne0 * 4;
			break;
		}
		if (fwrite(out, 1, n, f) != n)
			fatal("write '%s'", t->name);
	}
}

static void
build(const struct opts *o)
{
	struct vocab	 v = { 0 };
	struct buf	 kv = { 0 }, hdr = { 0 };
	struct tensor	*t;
	int		 nkv = 0, nt = 0, hd = o->n_embd / o->n_head;
	int		 kvd = hd * o->n_head_kv;
	bool		 qwen = strcmp(o->arch, "qwen2") == 0;
	char		 k[128], name[64];
	uint64_t	 off = 0, rng = o->seed, maxrow;
	float		*row;
	uint8_t		*out;
	FILE		*f;
	static const uint8_t zero[GG_ALIGN];

	v.cap = o->n_vocab + 512;	/* the fixed tokens may overshoot */
	v.text = xcalloc((size_t)v.cap, sizeof(*v.text));
	v.score = xcalloc((size_t)v.cap, sizeof(*v.score));
	v.type = xcalloc((size_t)v.cap, sizeof(*v.type));
	for (v.hcap = 1; v.hcap < (size_t)v.cap * 2; v.hcap <<= 1)
		;
	v.hash = xcalloc(v.hcap, sizeof(*v.hash));
	if (o->bpe)
		learn_bpe(&v, o);
	else
		learn_spm(&v, o);
	if (v.n != o->n_vocab)
		fatalx("vocabulary of %d tokens, not %d", v.n, o->n_vocab);

	/* Metadata. */
	kv_str(&kv, &nkv, "general.architecture", o->arch);
	kv_str(&kv, &nkv, "general.name", qwen ? "maas tiny qwen2" :
	    "maas tiny llama");
	kv_u32(&kv, &nkv, "general.alignment", GG_ALIGN);
	/* llama.cpp's file types: MOSTLY_Q4_K_S 14, _Q4_K_M 15, _Q5_K_S
	 * 16, _Q5_K_M 17, _Q6_K 18, _BF16 32 */
	kv_u32(&kv, &nkv, "general.file_type", o->type == T_F32 ? 0 :
	    o->type == T_F16 ? 1 : o->type == T_BF16 ? 32 :
	    o->type == T_Q4_0 ? 2 : o->type == T_Q8_0 ? 7 :
	    o->type == T_Q6_K ? 18 :
	    (o->type == T_Q5_K ? 16 : 14) + o->kmix);
#define AK(s)	(snprintf(k, sizeof(k), "%s." s, o->arch), k)
	kv_u32(&kv, &nkv, AK("context_length"), (uint32_t)o->n_ctx);
	kv_u32(&kv, &nkv, AK("embedding_length"), (uint32_t)o->n_embd);
	kv_u32(&kv, &nkv, AK("block_count"), (uint32_t)o->n_layer);
	kv_u32(&kv, &nkv, AK("feed_forward_length"), (uint32_t)o->n_ff);
	kv_u32(&kv, &nkv, AK("attention.head_count"), (uint32_t)o->n_head);
	kv_u32(&kv, &nkv, AK("attention.head_count_kv"),
	    (uint32_t)o->n_head_kv);
	kv_u32(&kv, &nkv, AK("rope.dimension_count"), (uint32_t)hd);
	kv_f32(&kv, &nkv, AK("rope.freq_base"), qwen ? 1000000.0f : 10000.0f);
	kv_f32(&kv, &nkv, AK("attention.layer_norm_rms_epsilon"),
	    qwen ? 1e-6f : 1e-5f);
	kv_u32(&kv, &nkv, AK("vocab_size"), (uint32_t)o->n_vocab);
#undef AK
	kv_str(&kv, &nkv, "tokenizer.ggml.model", o->bpe ? "gpt2" : "llama");
	if (o->bpe)
		kv_str(&kv, &nkv, "tokenizer.ggml.pre", qwen ? "qwen2" :
		    o->tmpl_name != NULL && strcmp(o->tmpl_name, "chatml") == 0 ?
		    "smollm" : "llama-bpe");
	b_str(&kv, "tokenizer.ggml.tokens");
	b_u32(&kv, V_ARRAY);
	b_u32(&kv, V_STRING);
	b_u64(&kv, (uint64_t)v.n);
	for (int i = 0; i < v.n; i++)
		b_str(&kv, v.text[i]);
	nkv++;
	if (!o->bpe) {
		b_str(&kv, "tokenizer.ggml.scores");
		b_u32(&kv, V_ARRAY);
		b_u32(&kv, V_F32);
		b_u64(&kv, (uint64_t)v.n);
		for (int i = 0; i < v.n; i++) {
			uint32_t x;

			memcpy(&x, &v.score[i], 4);
			b_u32(&kv, x);
		}
		nkv++;
	}
	b_str(&kv, "tokenizer.ggml.token_type");
	b_u32(&kv, V_ARRAY);
	b_u32(&kv, V_I32);
	b_u64(&kv, (uint64_t)v.n);
	for (int i = 0; i < v.n; i++)
		b_u32(&kv, (uint32_t)v.type[i]);
	nkv++;
	if (o->bpe) {
		b_str(&kv, "tokenizer.ggml.merges");
		b_u32(&kv, V_ARRAY);
		b_u32(&kv, V_STRING);
		b_u64(&kv, (uint64_t)v.n_merges);
		for (int i = 0; i < v.n_merges; i++)
			b_str(&kv, v.merges[i]);
		nkv++;
	}
	kv_u32(&kv, &nkv, "tokenizer.ggml.bos_token_id", (uint32_t)v.bos);
	kv_u32(&kv, &nkv, "tokenizer.ggml.eos_token_id", (uint32_t)v.eos);
	if (v.eot >= 0)
		kv_u32(&kv, &nkv, "tokenizer.ggml.eot_token_id",
		    (uint32_t)v.eot);
	if (!o->bpe)
		kv_u32(&kv, &nkv, "tokenizer.ggml.unknown_token_id", 0);
	kv_bool(&kv, &nkv, "tokenizer.ggml.add_bos_token", v.add_bos);
	if (o->tmpl != NULL)
		kv_str(&kv, &nkv, "tokenizer.chat_template", o->tmpl);

	/* Tensors, in the order llama.cpp's converter writes them. */
	t = xcalloc(4 + 12 * (size_t)o->n_layer, sizeof(*t));
	/* Tied (qwen2): the embeddings are also the output matrix, so they
	 * get its scale. */
	add_tensor(t, &nt, "token_embd.weight", 2, (uint64_t)o->n_embd,
	    (uint64_t)o->n_vocab, o->type, INIT_UNIFORM,
	    qwen ? 2.0f / sqrtf((float)o->n_embd) : 1.0f);
	for (int l = 0; l < o->n_layer; l++) {
		float	se = 1.0f / sqrtf((float)o->n_embd);
		float	sf = 1.0f / sqrtf((float)o->n_ff);

#define TN(s)	(snprintf(name, sizeof(name), "blk.%d." s, l), name)
		add_tensor(t, &nt, TN("attn_norm.weight"), 1,
		    (uint64_t)o->n_embd, 1, T_F32, INIT_NORM, 0.1f);
		add_tensor(t, &nt, TN("attn_q.weight"), 2, (uint64_t)o->n_embd,
		    (uint64_t)o->n_embd, o->type, INIT_UNIFORM, se);
		add_tensor(t, &nt, TN("attn_k.weight"), 2, (uint64_t)o->n_embd,
		    (uint64_t)kvd, o->type, INIT_UNIFORM, se);
		add_tensor(t, &nt, TN("attn_v.weight"), 2, (uint64_t)o->n_embd,
		    (uint64_t)kvd, o->kmix && l % 2 == 0 ? T_Q6_K : o->type,
		    INIT_UNIFORM, se);
		if (qwen) {
			add_tensor(t, &nt, TN("attn_q.bias"), 1,
			    (uint64_t)o->n_embd, 1, T_F32, INIT_UNIFORM, 0.1f);
			add_tensor(t, &nt, TN("attn_k.bias"), 1,
			    (uint64_t)kvd, 1, T_F32, INIT_UNIFORM, 0.1f);
			add_tensor(t, &nt, TN("attn_v.bias"), 1,
			    (uint64_t)kvd, 1, T_F32, INIT_UNIFORM, 0.1f);
		}
		add_tensor(t, &nt, TN("attn_output.weight"), 2,
		    (uint64_t)o->n_embd, (uint64_t)o->n_embd, o->type,
		    INIT_UNIFORM, se);
		add_tensor(t, &nt, TN("ffn_norm.weight"), 1,
		    (uint64_t)o->n_embd, 1, T_F32, INIT_NORM, 0.1f);
		add_tensor(t, &nt, TN("ffn_gate.weight"), 2,
		    (uint64_t)o->n_embd, (uint64_t)o->n_ff, o->type,
		    INIT_UNIFORM, se);
		add_tensor(t, &nt, TN("ffn_up.weight"), 2, (uint64_t)o->n_embd,
		    (uint64_t)o->n_ff, o->type, INIT_UNIFORM, se);
		add_tensor(t, &nt, TN("ffn_down.weight"), 2, (uint64_t)o->n_ff,
		    (uint64_t)o->n_embd, o->kmix && l % 2 == 0 ? T_Q6_K :
		    o->type, INIT_UNIFORM, sf);
#undef TN
	}
	add_tensor(t, &nt, "output_norm.weight", 1, (uint64_t)o->n_embd, 1,
	    T_F32, INIT_NORM, 0.1f);
	if (!qwen)
		add_tensor(t, &nt, "output.weight", 2, (uint64_t)o->n_embd,
		    (uint64_t)o->n_vocab, o->kmix ? T_Q6_K : o->type,
		    INIT_UNIFORM, 2.0f / sqrtf((float)o->n_embd));

	/* Header, metadata, tensor infos, padding. */
	b_put(&hdr, "GGUF", 4);
	b_u32(&hdr, 3);
	b_u64(&hdr, (uint64_t)nt);
	b_u64(&hdr, (uint64_t)nkv);
	b_put(&hdr, kv.p, kv.n);
	maxrow = 0;
	for (int i = 0; i < nt; i++) {
		t[i].off = off;
		off += (tensor_bytes(&t[i]) + GG_ALIGN - 1) / GG_ALIGN *
		    GG_ALIGN;
		if (t[i].ne[0] > maxrow)
			maxrow = t[i].ne[0];
		b_str(&hdr, t[i].name);
		b_u32(&hdr, (uint32_t)t[i].ndim);
		for (int d = 0; d < t[i].ndim; d++)
			b_u64(&hdr, t[i].ne[d]);
		b_u32(&hdr, (uint32_t)t[i].type);
		b_u64(&hdr, t[i].off);
	}
	b_put(&hdr, zero, (GG_ALIGN - hdr.n % GG_ALIGN) % GG_ALIGN);

	if ((f = fopen(o->out, "wb")) == NULL)
		fatal("cannot create '%s'", o->out);
	if (fwrite(hdr.p, 1, hdr.n, f) != hdr.n)
		fatal("write '%s'", o->out);
	row = xcalloc(maxrow, sizeof(*row));
	out = xcalloc(maxrow, 4);
	for (int i = 0; i < nt; i++) {
		uint64_t nb = tensor_bytes(&t[i]);

		write_tensor(f, &t[i], &rng, row, out);
		if (fwrite(zero, 1, (GG_ALIGN - nb % GG_ALIGN) % GG_ALIGN, f) !=
		    (GG_ALIGN - nb % GG_ALIGN) % GG_ALIGN)
			fatal("write '%s'", o->out);
	}
	if (fclose(f) != 0)
		fatal("write '%s'", o->out);

	free(row);
	free(out);
	free(t);
	free(kv.p);
	free(hdr.p);
	for (int i = 0; i < v.n; i++)
		free(v.text[i]);
	for (int i = 0; i < v.n_merges; i++)
		free(v.merges[i]);
	free(v.text);
	free(v.score);
	free(v.type);
	free(v.hash);
	free(v.merges);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "arch", required_argument, NULL, 'a' },
		{ "tokenizer", required_argument, NULL, 'k' },
		{ "template", required_argument, NULL, 't' },
		{ "type", required_argument, NULL, 'y' },
		{ "seed", required_argument, NULL, 's' },
		{ "n-embd", required_argument, NULL, 'E' },
		{ "n-layer", required_argument, NULL, 'L' },
		{ "n-head", required_argument, NULL, 'H' },
		{ "n-head-kv", required_argument, NULL, 'K' },
		{ "n-ff", required_argument, NULL, 'F' },
		{ "n-ctx", required_argument, NULL, 'C' },
		{ "vocab", required_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts	o = {
		.arch = "llama", .bpe = false, .tmpl_name = "chatml",
		.type = T_F32, .seed = 1, .n_embd = 64, .n_layer = 2,
		.n_head = 4, .n_head_kv = 2, .n_ff = 128, .n_ctx = 256,
		.n_vocab = 512
	};
	long long	params;
	int		ch;

	log_init("maas-gengguf", false);
	while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			if (strcmp(optarg, "llama") != 0 &&
			    strcmp(optarg, "qwen2") != 0)
				fatalx("--arch: llama or qwen2");
			o.arch = optarg;
			break;
		case 'k':
			if (strcmp(optarg, "bpe") != 0 &&
			    strcmp(optarg, "spm") != 0)
				fatalx("--tokenizer: spm or bpe");
			o.bpe = strcmp(optarg, "bpe") == 0;
			break;
		case 't':
			o.tmpl_name = optarg;
			break;
		case 'y':
			if (strcmp(optarg, "f32") == 0)
				o.type = T_F32;
			else if (strcmp(optarg, "f16") == 0)
				o.type = T_F16;
			else if (strcmp(optarg, "bf16") == 0)
				o.type = T_BF16;
			else if (strcmp(optarg, "q8_0") == 0)
				o.type = T_Q8_0;
			else if (strcmp(optarg, "q4_0") == 0)
				o.type = T_Q4_0;
			else if (strncmp(optarg, "q4_k", 4) == 0 ||
			    strncmp(optarg, "q5_k", 4) == 0) {
				o.type = optarg[1] == '4' ? T_Q4_K : T_Q5_K;
				o.kmix = strcmp(optarg + 4, "_m") == 0;
				if (!o.kmix && optarg[4] != '\0')
					fatalx("--type: no '%s'", optarg);
			} else if (strcmp(optarg, "q6_k") == 0)
				o.type = T_Q6_K;
			else
				fatalx("--type: f32, f16, bf16, q8_0, q4_0, "
				    "q4_k, q4_k_m, q5_k, q5_k_m or q6_k");
			break;
		case 's':
			o.seed = (uint64_t)gen_num_arg("--seed", optarg, 0,
			    INT64_MAX);
			break;
		case 'E':
			o.n_embd = (int)gen_num_arg("--n-embd", optarg, 2,
			    GG_MAX_DIM);
			break;
		case 'L':
			o.n_layer = (int)gen_num_arg("--n-layer", optarg, 1,
			    GG_MAX_LAYER);
			break;
		case 'H':
			o.n_head = (int)gen_num_arg("--n-head", optarg, 1,
			    1024);
			break;
		case 'K':
			o.n_head_kv = (int)gen_num_arg("--n-head-kv", optarg, 1,
			    1024);
			break;
		case 'F':
			o.n_ff = (int)gen_num_arg("--n-ff", optarg, 1,
			    4 * GG_MAX_DIM);
			break;
		case 'C':
			o.n_ctx = (int)gen_num_arg("--n-ctx", optarg, 1,
			    1 << 20);
			break;
		case 'V':
			o.n_vocab = (int)gen_num_arg("--vocab", optarg, 300,
			    GG_MAX_VOCAB);
			break;
		case 'o':
			o.out = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || o.out == NULL)
		usage();
	if (strcmp(o.tmpl_name, "chatml") == 0)
		o.tmpl = tmpl_chatml;
	else if (strcmp(o.tmpl_name, "llama2") == 0)
		o.tmpl = tmpl_llama2;
	else if (strcmp(o.tmpl_name, "llama3") == 0)
		o.tmpl = tmpl_llama3;
	else if (strcmp(o.tmpl_name, "none") == 0) {
		o.tmpl = NULL;
		o.tmpl_name = NULL;
	} else {
		o.tmpl = o.tmpl_name;
		o.tmpl_name = "raw";
	}
	if (o.n_embd % o.n_head != 0 || (o.n_embd / o.n_head) % 2 != 0)
		fatalx("--n-embd must be n-head times an even head size");
	if (o.n_head % o.n_head_kv != 0)
		fatalx("--n-head must be a multiple of --n-head-kv");
	if ((o.type == T_Q8_0 || o.type == T_Q4_0) && (o.n_embd % 32 != 0 ||
	    o.n_ff % 32 != 0))
		fatalx("q8_0 and q4_0 need --n-embd and --n-ff multiples of 32");
	if ((o.type == T_Q4_K || o.type == T_Q5_K || o.type == T_Q6_K) &&
	    (o.n_embd % 256 != 0 || o.n_ff % 256 != 0))
		fatalx("the k types need --n-embd and --n-ff multiples of 256");
	params = (long long)o.n_vocab * o.n_embd * 2 + (long long)o.n_layer *
	    ((long long)o.n_embd * o.n_embd * 4 + 3LL * o.n_embd * o.n_ff);
	if (params > GG_MAX_PARAMS)
		fatalx("%lld parameters, more than %lld", params,
		    GG_MAX_PARAMS);
	build(&o);
	return 0;
}
