/* tests/fuzz/fuzz_gguf.c - libFuzzer target for the GGUF parser and the
 * llama model loader on arbitrary bytes.  A file that parses has its
 * metadata and tensors read in full; a model that loads runs a short
 * prefill, a decode step and an embedding on a small KV cache.  Seeds:
 * tiny models from maas-gengguf (see tests/fuzz/llmcore.mk). */
#include <assert.h>
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/llm/gguf.h"
#include "runtime/llm/model.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	openblas_set_num_threads(1);
	return 0;
}

static void
walk(const struct gguf *g)
{
	static const char *const keys[] = { "tokenizer.ggml.tokens",
	    "tokenizer.ggml.merges", "tokenizer.ggml.scores",
	    "tokenizer.ggml.token_type" };
	struct gguf_arr	a;
	struct gguf_str	s;
	uint8_t		sum = 0;
	uint32_t	u;
	float		f;
	bool		b;

	(void)gguf_get_u32(g, "general.alignment", &u);
	(void)gguf_get_f32(g, "llama.rope.freq_base", &f);
	(void)gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b);
	if (gguf_get_str(g, "tokenizer.chat_template", &s))
		for (uint64_t i = 0; i < s.n; i++)
			sum ^= (uint8_t)s.p[i];
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		if (!gguf_get_arr(g, keys[k], &a))
			continue;
		for (uint64_t i = 0; i < a.n; i++) {
			if (a.type == GGUF_T_STRING) {
				assert(gguf_arr_str(&a, i, &s));
				if (s.n > 0)
					sum ^= (uint8_t)(s.p[0] ^ s.p[s.n - 1]);
			} else
				assert(!gguf_arr_str(&a, i, &s));
		}
	}
	for (size_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		const uint8_t *d = t->data;

		assert(gguf_tensor(g, t->name) == t);
		sum ^= d[0] ^ d[t->nbytes - 1];
	}
	(void)sum;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf		*g;
	struct llm_model	*m;
	struct llm_kv		*kv;
	const struct llm_hparams *hp;
	uint8_t			*copy;
	float			*out;
	char			 err[512];
	int32_t			 tok[3] = { 0, 1, 2 };

	/* The parser wants 8-byte alignment, as a mapping has. */
	copy = malloc(size + 1);
	memcpy(copy, data, size);
	err[0] = '\0';
	if (gguf_parse(copy, size, &g, err, sizeof(err)) == -1) {
		assert(err[0] != '\0');
		free(copy);
		return 0;
	}
	walk(g);
	err[0] = '\0';
	if (llm_model_load(g, &m, err, sizeof(err)) == -1) {
		assert(err[0] != '\0');
		gguf_close(g);
		free(copy);
		return 0;
	}
	hp = llm_model_hparams(m);
	if ((kv = llm_kv_new(m, hp->n_ctx < 4 ? hp->n_ctx : 4)) != NULL) {
		out = calloc((size_t)hp->n_vocab + (size_t)hp->n_embd,
		    sizeof(float));
		for (int i = 0; i < 3; i++)
			tok[i] = tok[i] % hp->n_vocab;
		if (llm_prefill(m, kv, tok, 2, out) == 0)
			(void)llm_decode(m, &kv, &tok[2], 1, out);
		(void)llm_embed(m, kv, tok, 1, out);
		free(out);
		llm_kv_free(kv);
	}
	llm_model_free(m);
	gguf_close(g);
	free(copy);
	return 0;
}
