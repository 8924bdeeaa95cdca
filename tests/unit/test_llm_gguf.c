/* tests/unit/test_llm_gguf.c - the GGUF parser (runtime/llm/gguf.c) and
 * the llama model (runtime/llm/model.c) on files built here in memory:
 * lookups; refusals of truncated files (at every byte), huge counts and
 * lengths, bad and misaligned offsets, unknown types, bad dims, duplicate
 * keys and tensors; model load refusals (missing tensor, wrong shape or
 * type, bad hyperparameters); and the forward pass's invariants: a
 * sequence's decode logits are bit-identical whatever else is in the
 * batch, and truncating a KV cache then recomputing gives the same bits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cblas.h>

#include "runtime/llm/gguf.h"
#include "runtime/llm/model.h"

/* --- a GGUF writer --- */

struct wb {
	uint8_t	*p;
	size_t	 n, cap;
};

static void
put(struct wb *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->cap - b->n < n) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void
u32(struct wb *b, uint32_t v)
{
	uint8_t	x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
		    (uint8_t)(v >> 24) };

	put(b, x, 4);
}

static void
u64(struct wb *b, uint64_t v)
{
	u32(b, (uint32_t)v);
	u32(b, (uint32_t)(v >> 32));
}

static void
str(struct wb *b, const char *s)
{
	u64(b, strlen(s));
	put(b, s, strlen(s));
}

static void
kv_u32(struct wb *b, const char *k, uint32_t v)
{
	str(b, k);
	u32(b, GGUF_T_U32);
	u32(b, v);
}

static void
kv_f32(struct wb *b, const char *k, float v)
{
	uint32_t	x;

	memcpy(&x, &v, 4);
	str(b, k);
	u32(b, GGUF_T_F32);
	u32(b, x);
}

static void
kv_str(struct wb *b, const char *k, const char *v)
{
	str(b, k);
	u32(b, GGUF_T_STRING);
	str(b, v);
}

struct tspec {
	char		 name[80];
	uint32_t	 ndim;
	uint64_t	 ne[5];
	uint32_t	 type;
	uint64_t	 off;		/* UINT64_MAX: computed */
};

static uint64_t	rng = 88172645463325252ULL;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 32);
}

/* Values for a tensor's bytes: small floats, halves, Q8_0 blocks with a
 * sane scale. */
static void
fill(uint8_t *p, const struct tspec *t, uint64_t nb)
{
	uint64_t	n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];

	if (t->type == GGML_T_F32) {
		for (uint64_t i = 0; i < n; i++) {
			float	f = ((float)(rnd() % 2001) - 1000.0f) / 4000.0f;

			if (t->ndim == 1)
				f += 1.0f;	/* norms */
			memcpy(p + 4 * i, &f, 4);
		}
	} else if (t->type == GGML_T_F16) {
		for (uint64_t i = 0; i < n; i++) {
			uint16_t h = (uint16_t)((rnd() & 0x8000) |
			    (10 + rnd() % 4) << 10 | (rnd() & 0x3ff));

			memcpy(p + 2 * i, &h, 2);
		}
	} else if (t->type == GGML_T_Q8_0) {
		for (uint64_t bk = 0; bk < nb / 34; bk++) {
			uint16_t d = 0x211f;	/* about 0.01 */

			memcpy(p + bk * 34, &d, 2);
			for (int j = 0; j < 32; j++)
				p[bk * 34 + 2 + j] = (uint8_t)rnd();
		}
	} else {
		for (uint64_t i = 0; i < nb; i++)
			p[i] = (uint8_t)rnd();
	}
}

/* A file of the metadata in kv (nkv pairs) and tensors t. */
static uint8_t *
build(const struct wb *kv, uint64_t nkv, const struct tspec *t, size_t nt,
    size_t *len)
{
	struct wb	b = { 0 };
	uint64_t	off = 0, *offs = calloc(nt + 1, sizeof(*offs));
	static const uint8_t	zero[32];

	put(&b, "GGUF", 4);
	u32(&b, 3);
	u64(&b, nt);
	u64(&b, nkv);
	put(&b, kv->p, kv->n);
	for (size_t i = 0; i < nt; i++) {
		uint64_t n = t[i].ne[0] * t[i].ne[1] * t[i].ne[2] * t[i].ne[3];
		uint64_t nb = ggml_nbytes((enum ggml_type)t[i].type, n);

		offs[i] = t[i].off != UINT64_MAX ? t[i].off : off;
		off += (nb + 31) / 32 * 32;
		str(&b, t[i].name);
		u32(&b, t[i].ndim);
		for (uint32_t d = 0; d < t[i].ndim; d++)
			u64(&b, t[i].ne[d]);
		u32(&b, t[i].type);
		u64(&b, offs[i]);
	}
	put(&b, zero, (32 - b.n % 32) % 32);
	for (size_t i = 0; i < nt; i++) {
		uint64_t n = t[i].ne[0] * t[i].ne[1] * t[i].ne[2] * t[i].ne[3];
		uint64_t nb = ggml_nbytes((enum ggml_type)t[i].type, n);
		uint8_t	*d = calloc(1, (size_t)((nb + 31) / 32 * 32) + 1);

		fill(d, &t[i], nb);
		put(&b, d, (size_t)((nb + 31) / 32 * 32));
		free(d);
	}
	free(offs);
	*len = b.n;
	return b.p;
}

static void
tset(struct tspec *t, const char *name, uint32_t type, uint64_t ne0,
    uint64_t ne1)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ndim = ne1 ? 2 : 1;
	t->ne[0] = ne0;
	t->ne[1] = ne1 ? ne1 : 1;
	t->ne[2] = t->ne[3] = t->ne[4] = 1;
	t->type = type;
	t->off = UINT64_MAX;
}

/* Expects gguf_parse to refuse the bytes with a message containing what
 * (when not NULL). */
static void
refused(const uint8_t *p, size_t len, const char *what)
{
	struct gguf	*g = (struct gguf *)1;
	char		 err[256];
	uint8_t		*copy = malloc(len + 1);

	/* A private copy: the sanitizer catches any read past len. */
	memcpy(copy, p, len);
	err[0] = '\0';
	assert_int_equal(gguf_parse(copy, len, &g, err, sizeof(err)), -1);
	assert_null(g);
	assert_true(err[0] != '\0');
	if (what != NULL && strstr(err, what) == NULL) {
		print_error("message '%s' lacks '%s'\n", err, what);
		fail();
	}
	free(copy);
}

/* --- the parser --- */

static uint8_t *
small_file(size_t *len)
{
	struct wb	kv = { 0 };
	struct tspec	t[2];
	uint8_t		*p;
	static const char *const toks[] = { "a", "", "h\xc3\xa9llo" };

	kv_str(&kv, "general.architecture", "llama");
	kv_u32(&kv, "general.alignment", 32);
	str(&kv, "tokenizer.ggml.tokens");
	u32(&kv, GGUF_T_ARRAY);
	u32(&kv, GGUF_T_STRING);
	u64(&kv, 3);
	for (int i = 0; i < 3; i++)
		str(&kv, toks[i]);
	str(&kv, "small.i8");
	u32(&kv, GGUF_T_I8);
	put(&kv, "\xfe", 1);
	str(&kv, "arr.f32");
	u32(&kv, GGUF_T_ARRAY);
	u32(&kv, GGUF_T_F32);
	u64(&kv, 2);
	u32(&kv, 0x3f800000);
	u32(&kv, 0x40000000);
	kv_f32(&kv, "x.eps", 0.5f);
	tset(&t[0], "w", GGML_T_F32, 4, 3);
	tset(&t[1], "q", GGML_T_Q8_0, 64, 2);
	p = build(&kv, 6, t, 2, len);
	free(kv.p);
	return p;
}

static void
test_parse_ok(void **state)
{
	struct gguf			*g;
	const struct gguf_tensor	*t;
	struct gguf_str			 s;
	struct gguf_arr			 a;
	uint32_t			 u;
	float				 f;
	size_t				 len;
	uint8_t				*p = small_file(&len);
	char				 err[256];

	(void)state;
	assert_int_equal(gguf_parse(p, len, &g, err, sizeof(err)), 0);
	assert_int_equal(gguf_version(g), 3);
	assert_true(gguf_get_str(g, "general.architecture", &s));
	assert_true(gguf_str_eq(&s, "llama"));
	assert_false(gguf_str_eq(&s, "llam"));
	assert_true(gguf_get_u32(g, "general.alignment", &u));
	assert_int_equal(u, 32);
	assert_false(gguf_get_u32(g, "small.i8", &u));	/* -2 */
	assert_false(gguf_get_u32(g, "general.architecture", &u));
	assert_false(gguf_get_u32(g, "nope", &u));
	assert_true(gguf_get_f32(g, "x.eps", &f));
	assert_true(f == 0.5f);
	assert_true(gguf_get_arr(g, "tokenizer.ggml.tokens", &a));
	assert_int_equal(a.type, GGUF_T_STRING);
	assert_int_equal(a.n, 3);
	assert_true(gguf_arr_str(&a, 2, &s));
	assert_true(gguf_str_eq(&s, "h\xc3\xa9llo"));
	assert_true(gguf_arr_str(&a, 1, &s));
	assert_int_equal(s.n, 0);
	assert_false(gguf_arr_str(&a, 3, &s));
	assert_true(gguf_get_arr(g, "arr.f32", &a));
	assert_int_equal(a.type, GGUF_T_F32);
	assert_false(gguf_arr_str(&a, 0, &s));
	assert_int_equal(gguf_n_tensors(g), 2);
	assert_non_null(t = gguf_tensor(g, "q"));
	assert_int_equal(t->type, GGML_T_Q8_0);
	assert_int_equal(t->nbytes, 4 * 34);
	assert_int_equal(((uintptr_t)t->data - (uintptr_t)p) % 32, 0);
	assert_non_null(t = gguf_tensor(g, "w"));
	assert_int_equal(t->ne[0], 4);
	assert_int_equal(t->ne[1], 3);
	assert_ptr_equal(gguf_tensor_at(g, 0), t);
	assert_null(gguf_tensor(g, "x"));
	assert_null(gguf_tensor_at(g, 2));
	gguf_close(g);
	free(p);
}

static void
test_truncated_everywhere(void **state)
{
	struct gguf			*g;
	const struct gguf_tensor	*t;
	size_t				 len, end;
	uint8_t				*p = small_file(&len);
	char				 err[256];

	(void)state;
	/* Up to the end of the last tensor's data (its padding is not
	 * needed). */
	assert_int_equal(gguf_parse(p, len, &g, err, sizeof(err)), 0);
	assert_non_null(t = gguf_tensor(g, "q"));
	end = (size_t)((const uint8_t *)t->data - p) + t->nbytes;
	gguf_close(g);
	assert_int_equal(gguf_parse(p, end, &g, err, sizeof(err)), 0);
	gguf_close(g);
	for (size_t n = 0; n < end; n++)
		refused(p, n, NULL);
	free(p);
}

/* A header with given counts followed by what is in tail. */
static void
header(struct wb *b, uint32_t ver, uint64_t nt, uint64_t nkv)
{
	b->n = 0;
	put(b, "GGUF", 4);
	u32(b, ver);
	u64(b, nt);
	u64(b, nkv);
}

static void
test_header_refusals(void **state)
{
	struct wb	b = { 0 };

	(void)state;
	header(&b, 3, 0, 0);
	b.p[0] = 'X';
	refused(b.p, b.n, "magic");
	header(&b, 1, 0, 0);
	refused(b.p, b.n, "version 1");
	header(&b, 0x03000000, 0, 0);
	refused(b.p, b.n, "big-endian");
	header(&b, 3, 1ULL << 40, 0);
	refused(b.p, b.n, "exceed");
	header(&b, 3, 0, 1ULL << 62);
	refused(b.p, b.n, "exceed");
	header(&b, 3, 1000, 1000);
	refused(b.p, b.n, "cannot fit");
	/* A key whose length runs past the end. */
	header(&b, 3, 0, 1);
	u64(&b, 1ULL << 60);
	put(&b, "abcdefghijklmnop", 16);
	refused(b.p, b.n, "past the end");
	/* A string array claiming more strings than bytes. */
	header(&b, 3, 0, 1);
	str(&b, "k");
	u32(&b, GGUF_T_ARRAY);
	u32(&b, GGUF_T_STRING);
	u64(&b, UINT64_MAX);
	u64(&b, 0);
	refused(b.p, b.n, "cannot fit");
	header(&b, 3, 0, 1);
	str(&b, "k");
	u32(&b, GGUF_T_ARRAY);
	u32(&b, GGUF_T_U32);
	u64(&b, UINT64_MAX / 2);
	u64(&b, 0);
	refused(b.p, b.n, "past the end");
	/* Nested arrays. */
	header(&b, 3, 0, 1);
	str(&b, "k");
	u32(&b, GGUF_T_ARRAY);
	u32(&b, GGUF_T_ARRAY);
	u64(&b, 1);
	u32(&b, GGUF_T_U8);
	u64(&b, 0);
	refused(b.p, b.n, "not supported");
	/* Unknown value type, bad bool, duplicate key, bad alignment. */
	header(&b, 3, 0, 1);
	str(&b, "k");
	u32(&b, 77);
	u64(&b, 0);
	refused(b.p, b.n, "unknown value type 77");
	header(&b, 3, 0, 1);
	str(&b, "k");
	u32(&b, GGUF_T_BOOL);
	put(&b, "\x02", 1);
	put(&b, "padpadpadpad", 12);
	refused(b.p, b.n, "bool");
	header(&b, 3, 0, 2);
	kv_u32(&b, "same", 1);
	kv_u32(&b, "same", 2);
	refused(b.p, b.n, "duplicate key 'same'");
	for (uint32_t al = 0; al < 3; al++) {
		uint32_t v[3] = { 0, 12, 1u << 20 };

		header(&b, 3, 0, 1);
		kv_u32(&b, "general.alignment", v[al]);
		refused(b.p, b.n, "alignment");
	}
	free(b.p);
}

static void
test_tensor_refusals(void **state)
{
	struct wb	kv = { 0 };
	struct tspec	t[2];
	uint8_t		*p;
	size_t		 len;

	(void)state;
	/* Unknown type, named by its number. */
	tset(&t[0], "w", 99, 4, 4);
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "unknown tensor type 99");
	free(p);
	/* Duplicate names. */
	tset(&t[0], "w", GGML_T_F32, 4, 4);
	tset(&t[1], "w", GGML_T_F32, 4, 4);
	p = build(&kv, 0, t, 2, &len);
	refused(p, len, "duplicate tensor 'w'");
	free(p);
	/* Misaligned and out-of-file offsets, and one that wraps. */
	tset(&t[0], "w", GGML_T_F32, 4, 4);
	t[0].off = 4;
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "not a multiple");
	free(p);
	t[0].off = 1024;
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "past the end");
	free(p);
	t[0].off = UINT64_MAX - 31;
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "past the end");
	free(p);
	/* Tensors overlapping the end of the file by one byte. */
	tset(&t[0], "w", GGML_T_F32, 8, 4);
	p = build(&kv, 0, t, 1, &len);
	refused(p, len - 1, "past the end");
	free(p);
	/* Dims: zero, too many, a product that overflows. */
	tset(&t[0], "w", GGML_T_F32, 0, 4);
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "dimension 0");
	free(p);
	tset(&t[0], "w", GGML_T_F32, 4, 4);
	t[0].ndim = 5;
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "5 dimensions");
	free(p);
	tset(&t[0], "w", GGML_T_F32, 1ULL << 40, 1ULL << 30);
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "too large");
	free(p);
	/* A Q8_0 row that is not whole blocks. */
	tset(&t[0], "w", GGML_T_Q8_0, 33, 2);
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "whole number");
	free(p);
	/* A name longer than GGUF's limit. */
	tset(&t[0], "blk.0.a_very_long_tensor_name_that_goes_on_and_on_and_"
	    "on_forever_and_more", GGML_T_F32, 4, 4);
	p = build(&kv, 0, t, 1, &len);
	refused(p, len, "longer than");
	free(p);
	free(kv.p);
}

/* --- the model --- */

#define M_EMBD	32
#define M_HEAD	4
#define M_HKV	2
#define M_FF	64
#define M_LAYER	2
#define M_VOCAB	64
#define M_CTX	48
#define M_KVD	(M_EMBD / M_HEAD * M_HKV)

enum mut { MUT_NONE, MUT_MISSING, MUT_SHAPE, MUT_NORM_TYPE, MUT_Q4_1,
	MUT_HEADS, MUT_ARCH, MUT_NO_EMBD, MUT_HALF_BIAS };

/* A tiny llama (or qwen2 with biases) with weights of type wt, changed
 * as mut says. */
static uint8_t *
tiny_model(uint32_t wt, bool qwen, enum mut mut, size_t *len)
{
	struct wb	 kv = { 0 };
	struct tspec	 t[64];
	size_t		 nt = 0;
	char		 n[80];
	const char	*a = qwen ? "qwen2" : "llama";
	uint8_t		*p;

	kv_str(&kv, "general.architecture", mut == MUT_ARCH ? "gpt2" : a);
#define K(s)	(snprintf(n, sizeof(n), "%s." s, a), n)
	kv_u32(&kv, K("context_length"), M_CTX);
	kv_u32(&kv, K("embedding_length"), M_EMBD);
	kv_u32(&kv, K("block_count"), M_LAYER);
	kv_u32(&kv, K("feed_forward_length"), M_FF);
	kv_u32(&kv, K("attention.head_count"), M_HEAD);
	kv_u32(&kv, K("attention.head_count_kv"), mut == MUT_HEADS ? 3 :
	    M_HKV);
	kv_f32(&kv, K("rope.freq_base"), 10000.0f);
	kv_f32(&kv, K("attention.layer_norm_rms_epsilon"), 1e-5f);
#undef K
	if (mut != MUT_NO_EMBD)
		tset(&t[nt++], "token_embd.weight", wt, M_EMBD, M_VOCAB);
	tset(&t[nt++], "output_norm.weight", GGML_T_F32, M_EMBD, 0);
	if (!qwen)
		tset(&t[nt++], "output.weight", wt, M_EMBD, M_VOCAB);
	for (int l = 0; l < M_LAYER; l++) {
#define T(s)	(snprintf(n, sizeof(n), "blk.%d." s, l), n)
		tset(&t[nt++], T("attn_norm.weight"), mut == MUT_NORM_TYPE ?
		    GGML_T_F16 : GGML_T_F32, M_EMBD, 0);
		tset(&t[nt++], T("attn_q.weight"), wt, M_EMBD, M_EMBD);
		tset(&t[nt++], T("attn_k.weight"), wt, M_EMBD,
		    mut == MUT_SHAPE ? M_EMBD : M_KVD);
		tset(&t[nt++], T("attn_v.weight"), wt, M_EMBD, M_KVD);
		tset(&t[nt++], T("attn_output.weight"), wt, M_EMBD, M_EMBD);
		tset(&t[nt++], T("ffn_norm.weight"), GGML_T_F32, M_EMBD, 0);
		tset(&t[nt++], T("ffn_gate.weight"), wt, M_EMBD, M_FF);
		tset(&t[nt++], T("ffn_up.weight"), wt, M_EMBD, M_FF);
		if (mut != MUT_MISSING || l != 1)
			tset(&t[nt++], T("ffn_down.weight"), mut == MUT_Q4_1 ?
			    GGML_T_Q4_1 : wt, mut == MUT_Q4_1 ? 256 : M_FF,
			    M_EMBD);
		if (qwen) {
			tset(&t[nt++], T("attn_q.bias"), GGML_T_F32, M_EMBD,
			    0);
			tset(&t[nt++], T("attn_k.bias"), GGML_T_F32, M_KVD, 0);
			if (mut != MUT_HALF_BIAS)
				tset(&t[nt++], T("attn_v.bias"), GGML_T_F32,
				    M_KVD, 0);
		}
#undef T
	}
	p = build(&kv, 9, t, nt, len);
	free(kv.p);
	return p;
}

static void
load_refused(enum mut mut, const char *what)
{
	struct gguf		*g;
	struct llm_model	*m = (struct llm_model *)1;
	size_t			 len;
	uint8_t			*p = tiny_model(GGML_T_F32, mut == MUT_HALF_BIAS,
				    mut, &len);
	char			 err[256];

	assert_int_equal(gguf_parse(p, len, &g, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(llm_model_load(g, &m, err, sizeof(err)), -1);
	assert_null(m);
	if (strstr(err, what) == NULL) {
		print_error("message '%s' lacks '%s'\n", err, what);
		fail();
	}
	gguf_close(g);
	free(p);
}

static void
test_model_refusals(void **state)
{
	(void)state;
	load_refused(MUT_MISSING, "'blk.1.ffn_down.weight' is missing");
	load_refused(MUT_SHAPE, "'blk.0.attn_k.weight' has shape [32, 32]");
	load_refused(MUT_NORM_TYPE, "'blk.0.attn_norm.weight' must be F32");
	load_refused(MUT_Q4_1, "Q4_1 is not supported");
	load_refused(MUT_HEADS, "cannot share 3 KV heads");
	load_refused(MUT_ARCH, "architecture 'gpt2'");
	load_refused(MUT_NO_EMBD, "'token_embd.weight' is missing");
	load_refused(MUT_HALF_BIAS, "some but not all");
}

struct loaded {
	uint8_t			*p;
	struct gguf		*g;
	struct llm_model	*m;
};

static void
load(struct loaded *l, uint32_t wt, bool qwen)
{
	size_t	len;
	char	err[256];

	l->p = tiny_model(wt, qwen, MUT_NONE, &len);
	assert_int_equal(gguf_parse(l->p, len, &l->g, err, sizeof(err)), 0);
	if (llm_model_load(l->g, &l->m, err, sizeof(err)) != 0) {
		print_error("%s\n", err);
		fail();
	}
}

static void
unload(struct loaded *l)
{
	llm_model_free(l->m);
	gguf_close(l->g);
	free(l->p);
}

/* Decoding sequences together gives each the bits it gets alone, for
 * batches smaller and larger than the model's pass (64 rows), and on any
 * number of threads. */
static void
batch_invariance(uint32_t wt, bool qwen, int nseq)
{
	struct loaded	 l;
	struct llm_kv	**a = calloc((size_t)nseq, sizeof(*a));
	struct llm_kv	**b = calloc((size_t)nseq, sizeof(*b));
	int32_t		*tok = calloc((size_t)nseq, sizeof(*tok));
	float		*la = calloc((size_t)nseq * M_VOCAB, sizeof(float));
	float		*lb = calloc(M_VOCAB, sizeof(float));
	int32_t		 prompt[8];

	load(&l, wt, qwen);
	assert_int_equal(llm_model_hparams(l.m)->n_vocab, M_VOCAB);
	for (int s = 0; s < nseq; s++) {
		int	n = 1 + s % 7;

		for (int i = 0; i < n; i++)
			prompt[i] = (int32_t)((s * 7 + i * 13) % M_VOCAB);
		assert_non_null(a[s] = llm_kv_new(l.m, 16));
		assert_non_null(b[s] = llm_kv_new(l.m, 16));
		assert_int_equal(llm_prefill(l.m, a[s], prompt, n, NULL), 0);
		assert_int_equal(llm_prefill(l.m, b[s], prompt, n, NULL), 0);
	}
	for (int step = 0; step < 3; step++) {
		for (int s = 0; s < nseq; s++)
			tok[s] = (int32_t)((s * 31 + step * 5) % M_VOCAB);
		/* The batch on 2 or 3 threads, each alone on 1. */
		assert_int_equal(llm_model_set_threads(l.m, 2 + step % 2), 0);
		assert_int_equal(llm_decode(l.m, a, tok, nseq, la), 0);
		assert_int_equal(llm_model_set_threads(l.m, 1), 0);
		for (int s = 0; s < nseq; s++) {
			assert_int_equal(llm_decode(l.m, &b[s], &tok[s], 1,
			    lb), 0);
			assert_memory_equal(la + (size_t)s * M_VOCAB, lb,
			    M_VOCAB * sizeof(float));
			assert_int_equal(llm_kv_len(a[s]), llm_kv_len(b[s]));
		}
	}
	for (int s = 0; s < nseq; s++) {
		llm_kv_free(a[s]);
		llm_kv_free(b[s]);
	}
	free(a);
	free(b);
	free(tok);
	free(la);
	free(lb);
	unload(&l);
}

static void
test_batch_invariance(void **state)
{
	(void)state;
	batch_invariance(GGML_T_F32, false, 5);
	batch_invariance(GGML_T_F16, true, 3);
	batch_invariance(GGML_T_Q8_0, false, 70);
}

/* A prefill gives the same bits on any number of the model's threads
 * and whatever OpenBLAS's own thread count, which it leaves as it was. */
static void
prefill_threads(uint32_t wt, bool qwen)
{
	struct loaded	 l;
	struct llm_kv	*kv;
	float		 a[M_VOCAB], b[M_VOCAB];
	int32_t		 p[40], t = 7;

	load(&l, wt, qwen);
	for (int i = 0; i < 40; i++)
		p[i] = (int32_t)((i * 11 + 3) % M_VOCAB);
	assert_non_null(kv = llm_kv_new(l.m, M_CTX));
	for (int n = 1; n <= 3; n++) {
		float	*y = n == 1 ? a : b;

		openblas_set_num_threads(n == 2 ? 1 : 2);
		assert_int_equal(llm_model_set_threads(l.m, n), 0);
		llm_kv_truncate(kv, 0);
		assert_int_equal(llm_prefill(l.m, kv, p, 40, y), 0);
		assert_int_equal(openblas_get_num_threads(), n == 2 ? 1 : 2);
		/* The cache it left: a decode step over it. */
		assert_int_equal(llm_decode(l.m, &kv, &t, 1, y), 0);
		if (n > 1)
			assert_memory_equal(a, b, sizeof(a));
	}
	assert_int_equal(llm_model_set_threads(l.m, 1), 0);
	llm_kv_free(kv);
	unload(&l);
}

/* Counts, per item, the runs llm_model_par() made of it. */
static void
count_item(void *arg, int i)
{
	atomic_fetch_add((_Atomic int *)arg + i, 1);
}

/* The pool runs every item of a job exactly once, for item counts below,
 * at and above the thread count, whatever thread ends up taking it from
 * another's share: a worker that wakes late leaves its share to the
 * others, and the job still completes. */
static void
test_pool_items_once(void **state)
{
	static _Atomic int	 runs[300];
	struct loaded		 l;

	(void)state;
	load(&l, GGML_T_F32, false);
	for (int t = 2; t <= 5; t++) {
		assert_int_equal(llm_model_set_threads(l.m, t), 0);
		for (int n = 0; n <= 300; n += n < 12 ? 1 : 37) {
			for (int i = 0; i < 300; i++)
				atomic_store(&runs[i], 0);
			llm_model_par(l.m, count_item, runs, n);
			for (int i = 0; i < 300; i++)
				if (atomic_load(&runs[i]) != (i < n))
					fail_msg("%d threads, %d items: item %d "
					    "ran %d times", t, n, i,
					    atomic_load(&runs[i]));
		}
	}
	assert_int_equal(llm_model_set_threads(l.m, 1), 0);
	unload(&l);
}

static void
test_prefill_threads(void **state)
{
	(void)state;
	prefill_threads(GGML_T_F32, false);
	prefill_threads(GGML_T_F16, true);
	prefill_threads(GGML_T_Q8_0, false);
}

/* Several sequences' prefill at once (llm_prefill_many()): each gets the
 * bits of its own llm_prefill() (logits and the cache it leaves, seen
 * through a decode step), with caches of different lengths, sequences of
 * one token and of many, logits wanted by some; on 1 and 2 threads.
 * Refusals change nothing. */
static void
prefill_many(uint32_t wt, bool qwen)
{
	enum { NS = 4 };
	static const int	 pre[NS] = { 0, 3, 1, 5 }, len[NS] = { 1, 6, 2,
				    17 };
	static const bool	 want[NS] = { true, false, true, true };
	struct loaded		 l;
	struct llm_kv		*a[NS], *b[NS], *dup[2];
	const int32_t		*toks[NS];
	int32_t			 p[NS][24], t = 9, bad = M_VOCAB;
	float			*la = calloc(NS * M_VOCAB, sizeof(float));
	float			*lb = calloc(NS * M_VOCAB, sizeof(float));
	int			 one = 1;
	bool			 yes = true;

	assert_non_null(la);
	assert_non_null(lb);
	load(&l, wt, qwen);
	for (int thr = 1; thr <= 2; thr++) {
		int	k = 0;

		assert_int_equal(llm_model_set_threads(l.m, thr), 0);
		for (int s = 0; s < NS; s++) {
			for (int i = 0; i < pre[s] + len[s]; i++)
				p[s][i] = (int32_t)((s * 17 + i * 5 + 1) %
				    M_VOCAB);
			assert_non_null(a[s] = llm_kv_new(l.m, M_CTX));
			assert_non_null(b[s] = llm_kv_new(l.m, M_CTX));
			if (pre[s] > 0) {
				assert_int_equal(llm_prefill(l.m, a[s], p[s],
				    pre[s], NULL), 0);
				assert_int_equal(llm_prefill(l.m, b[s], p[s],
				    pre[s], NULL), 0);
			}
			toks[s] = p[s] + pre[s];
		}
		assert_int_equal(llm_prefill_many(l.m, a, toks, len, want, NS,
		    la), 0);
		for (int s = 0; s < NS; s++) {
			assert_int_equal(llm_prefill(l.m, b[s], toks[s], len[s],
			    want[s] ? lb + (size_t)k * M_VOCAB : NULL), 0);
			if (want[s])
				k++;
			assert_int_equal(llm_kv_len(a[s]), pre[s] + len[s]);
		}
		assert_memory_equal(la, lb, (size_t)k * M_VOCAB *
		    sizeof(float));
		for (int s = 0; s < NS; s++) {
			assert_int_equal(llm_decode(l.m, &a[s], &t, 1, la), 0);
			assert_int_equal(llm_decode(l.m, &b[s], &t, 1, lb), 0);
			assert_memory_equal(la, lb, M_VOCAB * sizeof(float));
		}
		/* Refused: a token out of range, the same cache twice, a
		 * cache without room, logits wanted without a buffer. */
		toks[1] = &bad;
		assert_int_equal(llm_prefill_many(l.m, a, toks, len, want, 2,
		    la), -1);
		dup[0] = dup[1] = a[0];
		toks[1] = p[1];
		assert_int_equal(llm_prefill_many(l.m, dup, toks, len, want, 2,
		    la), -1);
		llm_kv_truncate(a[2], 0);
		for (int i = 0; i < M_CTX; i++)
			assert_int_equal(llm_decode(l.m, &a[2], &t, 1, la), 0);
		assert_int_equal(llm_prefill_many(l.m, a + 2, toks, &one, &yes,
		    1, la), -1);
		assert_int_equal(llm_prefill_many(l.m, a, toks, &one, &yes, 1,
		    NULL), -1);
		for (int s = 0; s < NS; s++)
			assert_int_equal(llm_kv_len(a[s]), s == 2 ? M_CTX :
			    pre[s] + len[s] + 1);
		for (int s = 0; s < NS; s++) {
			llm_kv_free(a[s]);
			llm_kv_free(b[s]);
		}
	}
	assert_int_equal(llm_model_set_threads(l.m, 1), 0);
	free(la);
	free(lb);
	unload(&l);
}

static void
test_prefill_many(void **state)
{
	(void)state;
	prefill_many(GGML_T_F32, false);
	prefill_many(GGML_T_F16, true);
	prefill_many(GGML_T_Q8_0, false);
}

static void
test_truncate_and_limits(void **state)
{
	struct loaded	 l;
	struct llm_kv	*kv, *kv2;
	float		 x[M_VOCAB], y[M_VOCAB], e[M_EMBD];
	int32_t		 p[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	int32_t		 t = 11, bad = M_VOCAB;
	double		 ss = 0;

	(void)state;
	load(&l, GGML_T_Q8_0, false);
	assert_int_equal(llm_model_set_threads(l.m, 0), -1);
	assert_int_equal(llm_model_set_threads(l.m, 17), -1);
	assert_int_equal(llm_model_set_threads(l.m, 2), 0);	/* freed */
	assert_null(llm_kv_new(l.m, M_CTX + 1));
	assert_null(llm_kv_new(l.m, 0));
	assert_non_null(kv = llm_kv_new(l.m, 12));
	/* A Q8_0 model's cache holds F16 entries; an F32 model's, F32. */
	assert_true(llm_kv_bytes(l.m, 12) >= 2ULL * M_LAYER * 12 * M_KVD * 2);
	assert_true(llm_kv_bytes(l.m, 12) < 2ULL * M_LAYER * 12 * M_KVD * 4);
	{
		struct loaded	f;

		load(&f, GGML_T_F32, false);
		assert_true(llm_kv_bytes(f.m, 12) >= 2ULL * M_LAYER * 12 *
		    M_KVD * 4);
		unload(&f);
	}
	assert_true(llm_model_mem_bytes(l.m) > 0);
	assert_int_equal(llm_prefill(l.m, kv, p, 10, NULL), 0);
	assert_int_equal(llm_decode(l.m, &kv, &t, 1, x), 0);
	assert_int_equal(llm_kv_len(kv), 11);
	/* Recompute the last step after truncating: the same bits. */
	llm_kv_truncate(kv, 10);
	assert_int_equal(llm_decode(l.m, &kv, &t, 1, y), 0);
	assert_memory_equal(x, y, sizeof(x));
	/* Truncate deeper and prefill again. */
	llm_kv_truncate(kv, 4);
	assert_int_equal(llm_kv_len(kv), 4);
	assert_int_equal(llm_prefill(l.m, kv, p + 4, 6, NULL), 0);
	assert_int_equal(llm_decode(l.m, &kv, &t, 1, y), 0);
	for (int i = 0; i < M_VOCAB; i++)
		assert_true(fabsf(x[i] - y[i]) < 1e-4f);
	/* Full cache, bad tokens, the same cache twice in a batch. */
	assert_int_equal(llm_decode(l.m, &kv, &t, 1, y), 0);
	assert_int_equal(llm_kv_len(kv), 12);
	assert_int_equal(llm_decode(l.m, &kv, &t, 1, y), -1);
	assert_int_equal(llm_prefill(l.m, kv, p, 1, y), -1);
	llm_kv_truncate(kv, 0);
	assert_int_equal(llm_prefill(l.m, kv, p, 13, y), -1);
	assert_int_equal(llm_kv_len(kv), 0);
	assert_int_equal(llm_prefill(l.m, kv, &bad, 1, y), -1);
	assert_int_equal(llm_decode(l.m, &kv, &bad, 1, y), -1);
	{
		struct llm_kv	*two[2] = { kv, kv };
		int32_t		 tt[2] = { 1, 2 };

		assert_int_equal(llm_decode(l.m, two, tt, 2, NULL), -1);
	}
	/* Embeddings: unit length, independent of what the cache held. */
	assert_non_null(kv2 = llm_kv_new(l.m, 12));
	assert_int_equal(llm_prefill(l.m, kv2, p, 5, NULL), 0);
	assert_int_equal(llm_embed(l.m, kv2, p, 3, e), 0);
	for (int i = 0; i < M_EMBD; i++)
		ss += (double)e[i] * e[i];
	assert_true(fabs(ss - 1.0) < 1e-5);
	assert_int_equal(llm_embed(l.m, kv, p, 3, x), 0);
	assert_memory_equal(e, x, sizeof(e));
	llm_kv_free(kv);
	llm_kv_free(kv2);
	unload(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test(test_tensor_refusals),
		cmocka_unit_test(test_model_refusals),
		cmocka_unit_test(test_batch_invariance),
		cmocka_unit_test(test_prefill_threads),
		cmocka_unit_test(test_prefill_many),
		cmocka_unit_test(test_pool_items_once),
		cmocka_unit_test(test_truncate_and_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
