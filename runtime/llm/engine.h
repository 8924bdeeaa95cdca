/* runtime/llm/engine.h - maas-runtime's LLM server: a GGUF model, its
 * tokenizer and chat template, and the loop that answers GENERATE, CANCEL
 * and PING over the IPC socket with continuous batching.
 *
 * Up to max_seqs sequences are held at once, each with its own KV cache
 * (allocated at load) and its own seeded sampler.  Between two decode
 * steps the engine reads every frame waiting on the socket: a GENERATE
 * is tokenized and queued for prefill; a CANCEL ends its sequence at once;
 * a PING is answered.  Each turn then runs one decode step and about 128
 * tokens of the oldest queued prompts (so that a long prompt does not
 * stop the running streams); a prompt's last chunk samples its first
 * token and the sequence joins the batch.  A step decodes every generating sequence in
 * one llm_decode call (one pass over the weights) and samples each; a
 * sequence that finishes (end-of-generation token, stop string,
 * max_tokens, full context) sends DONE and leaves before the next step.  The TOKEN/DONE
 * rules are those of common/ipc.h.  Prompts and outputs are tenant data
 * and are never logged.
 *
 * Prefix cache: a free slot keeps the prompt its KV cache holds and the
 * tenant it was for.  A GENERATE goes to the free slot of the same tenant
 * sharing the longest prefix with its prompt, whose positions are then
 * not computed again (DONE's cached_tokens); a slot is emptied before it
 * serves another tenant, so no tenant's KV ever serves another's. */
#ifndef RUNTIME_LLM_ENGINE_H
#define RUNTIME_LLM_ENGINE_H
#include <stddef.h>
#include <stdint.h>

#include "common/ipc.h"

#define ENGINE_MAX_SEQS		256	/* --max-seqs upper bound */
#define ENGINE_DEFAULT_SEQS	8
#define ENGINE_CTX_MAX		4096	/* context served, at most */
#define ENGINE_MAX_FILE		(64ULL << 30)	/* largest GGUF accepted */

struct engine;

/* Parses the GGUF file mapped at data (borrowed: it must stay mapped until
 * engine_free), builds the model, tokenizer and chat template, allocates
 * max_seqs KV caches and runs one warm-up step.  0, or -1 with a message
 * for maasd in err ("chat template not supported: ..."). */
int	engine_load(const uint8_t *data, size_t len, int max_seqs,
	    struct engine **out, char *err, size_t errlen);
void	engine_free(struct engine *);
/* Splits each decode step over n threads (same results for any n); call
 * before the sandbox.  0, or -1 if the threads cannot start. */
int	engine_set_threads(struct engine *, int n);
/* HELLO metadata; strings borrowed from the engine (do not release). */
void	engine_meta(const struct engine *, struct ipc_meta *);
/* Serves over fd until EOF or an error; returns SERVE_EOF, SERVE_EIO or
 * SERVE_EPROTO (runtime/serve.h), the process's exit status. */
int	engine_serve(struct engine *, int fd);
#endif
