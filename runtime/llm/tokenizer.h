/* runtime/llm/tokenizer.h - tokenizers from GGUF metadata:
 *   "llama"  SentencePiece-style: scores, "\xe2\x96\x81" for spaces, byte
 *            fallback tokens <0x00>..<0xFF>;
 *   "gpt2"   byte-level BPE with merges (llama3, qwen2, smollm), with the
 *            pre-tokenizer split matching the model's tokenizer.ggml.pre.
 * Special and control tokens (bos, eos, eot, <|im_start|>, ...) are
 * recognised in text only when asked (chat templates), never in tenant
 * content. */
#ifndef RUNTIME_LLM_TOKENIZER_H
#define RUNTIME_LLM_TOKENIZER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf;
struct tokenizer;

enum tok_kind { TOK_SPM = 1, TOK_BPE = 2 };

/* From the tokenizer.ggml.* keys of g (borrowed; strings point into it).
 * 0, or -1 with a message. */
int	tok_from_gguf(const struct gguf *g, struct tokenizer **out, char *err,
	    size_t errlen);
void	tok_free(struct tokenizer *);
enum tok_kind tok_kind(const struct tokenizer *);
int	tok_n_vocab(const struct tokenizer *);
int32_t	tok_bos(const struct tokenizer *);	/* -1 if none */
int32_t	tok_eos(const struct tokenizer *);
bool	tok_add_bos(const struct tokenizer *);	/* prepend bos to prompts? */
/* Is id one that ends generation (eos, eot, <|im_end|>, <|eot_id|>...)? */
bool	tok_is_eog(const struct tokenizer *, int32_t id);
/* Token id of an exact special token text, -1 if none. */
int32_t	tok_special(const struct tokenizer *, const char *text);

/* Encodes len bytes of text (any bytes; invalid UTF-8 goes through byte
 * tokens) into at most cap ids.  parse_special: recognise special tokens'
 * texts.  Returns the number of ids (which may exceed cap: nothing past
 * cap is written), or -1 on an allocation limit. */
long	tok_encode(const struct tokenizer *, const char *text, size_t len,
	    bool parse_special, int32_t *ids, size_t cap);
/* The bytes token id stands for (spaces restored, byte tokens decoded;
 * special tokens give "" unless show_special).  Returns the byte count,
 * which may exceed cap (nothing past cap written). */
size_t	tok_piece(const struct tokenizer *, int32_t id, bool show_special,
	    char *buf, size_t cap);
#endif
