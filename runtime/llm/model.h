/* runtime/llm/model.h - a llama-architecture decoder (Llama 2/3,
 * TinyLlama, SmolLM, Mistral, Qwen2 with QKV biases): RMSNorm, RoPE,
 * grouped-query attention over a KV cache, SwiGLU.  Weights (F32, F16,
 * BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) are dequantized per use, from a
 * read-only copy on huge pages made at load (or from the GGUF mapping if
 * that memory cannot be had); prefill runs as matrix products on OpenBLAS sgemm, decode steps a
 * batch of sequences at once on the model's threads.
 *
 * A model owns its work buffers: calls on one model must not overlap
 * (one thread drives it; OpenBLAS may use its own threads inside).  A
 * KV cache belongs to one sequence and may be used with one model only. */
#ifndef RUNTIME_LLM_MODEL_H
#define RUNTIME_LLM_MODEL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf;

struct llm_hparams {
	int	n_vocab;
	int	n_ctx;		/* context length the model was trained for */
	int	n_embd;
	int	n_layer;
	int	n_head;
	int	n_head_kv;
	int	n_ff;
	int	head_dim;	/* n_embd / n_head */
	float	rope_base;
	float	rms_eps;
};

struct llm_model;
struct llm_kv;		/* one sequence's KV cache */

/* Builds the model over g (borrowed; must outlive the model): checks every
 * tensor's presence, type and shape against the hparams.  0, or -1 with a
 * message. */
int	llm_model_load(const struct gguf *g, struct llm_model **out,
	    char *err, size_t errlen);
void	llm_model_free(struct llm_model *);
const struct llm_hparams *llm_model_hparams(const struct llm_model *);
/* Decode steps (and single-row products) use n threads (1 to 16; 1, the
 * default, starts none).  The results are the same bits for any n.  Call
 * before sandboxing; 0, or -1 if n is out of range or a thread cannot be
 * started (then the model runs on 1). */
int	llm_model_set_threads(struct llm_model *, int n);
/* Runs fn(arg, i) for every i in [0, n) on the model's threads, the
 * caller's among them, and returns when all are done: work of a decode
 * step that is not the model's (sampling each sequence's token).  The
 * calls must not touch each other's data. */
void	llm_model_par(struct llm_model *, void (*fn)(void *, int), void *arg,
	    int n);
/* Prompts of at most this many tokens (0: none) are prefilled by the
 * dot products of decode: llm_prefill_many() of such prompts only, 1-token
 * ones included, gives each the bits llm_prefill() alone would, and a
 * 1-token one the bits of llm_decode(), so a decode step and short
 * prompts can share one pass. */
int	llm_model_mv_rows(const struct llm_model *);
/* Bytes the model needs resident: weights plus work buffers, without KV
 * (the copy of the weights is counted, not the mapping's page cache). */
uint64_t llm_model_mem_bytes(const struct llm_model *);

/* A KV cache for up to n_ctx positions (n_ctx <= hparams n_ctx): F32
 * entries for a model whose matrices are F32, F16 for the others. */
struct llm_kv *llm_kv_new(const struct llm_model *, int n_ctx);
void	llm_kv_free(struct llm_kv *);
int	llm_kv_len(const struct llm_kv *);	/* positions held */
void	llm_kv_truncate(struct llm_kv *, int n);	/* keep the first n */
uint64_t llm_kv_bytes(const struct llm_model *, int n_ctx);

/* Appends n tokens to kv and computes them in one pass (sgemm); writes the
 * logits of the last one (n_vocab floats) when logits != NULL.  0, or -1
 * if kv has no room or a token id is out of range. */
int	llm_prefill(struct llm_model *, struct llm_kv *, const int32_t *tok,
	    int n, float *logits);
/* Prefill of n_seq sequences at once: n[i] tokens tok[i] appended to
 * kvs[i] (all different), and for each sequence with want[i], in order,
 * one row of logits (n_vocab floats) for its last token.  Each sequence
 * gets the same bits as from llm_prefill() alone; with the AVX-512
 * kernels, where a pass's rows do not change each other's bits, the
 * sequences share one pass when their tokens fit one (256), so that
 * short prompts arriving together read the weights once.  0, or -1 (and
 * nothing computed) if a cache has no room, a token id is out of range,
 * two caches are the same, or logits are wanted and logits is NULL. */
int	llm_prefill_many(struct llm_model *, struct llm_kv **kvs,
	    const int32_t *const *tok, const int *n, const bool *want,
	    int n_seq, float *logits);
/* One decode step for n_seq sequences: tok[i] is appended to kvs[i];
 * logits gets n_seq x n_vocab.  The result for a sequence is the same
 * whatever else is in the batch. */
int	llm_decode(struct llm_model *, struct llm_kv **kvs, const int32_t *tok,
	    int n_seq, float *logits);
/* Embedding of a token sequence: the final-norm hidden states, mean-pooled
 * over positions and L2-normalized, into out (n_embd floats).  Uses kv as
 * scratch (cleared first). */
int	llm_embed(struct llm_model *, struct llm_kv *, const int32_t *tok,
	    int n, float *out);
#endif
