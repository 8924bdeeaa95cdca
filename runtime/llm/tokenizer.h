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
/* Limits: longer text makes tok_encode return -1; a vocabulary past these
 * is refused. */
#define TOK_MAX_TEXT		(16u << 20)
#define TOK_MAX_VOCAB		(1 << 21)
#define TOK_MAX_TOKEN_LEN	4096

/* Token types, numbered as tokenizer.ggml.token_type (llama.cpp's). */
enum tok_type {
	TOK_T_UNDEFINED = 0, TOK_T_NORMAL = 1, TOK_T_UNKNOWN = 2,
	TOK_T_CONTROL = 3, TOK_T_USER = 4, TOK_T_UNUSED = 5, TOK_T_BYTE = 6
};

/* A vocabulary from plain arrays (what tok_from_gguf reads; unit tests
 * build small ones by hand).  Everything is borrowed for the call only:
 * the tokenizer copies what it keeps. */
struct tok_vocab {
	enum tok_kind	 kind;
	const char	*pre;		/* BPE: tokenizer.ggml.pre, or NULL */
	int		 n;		/* tokens */
	const char *const *text;	/* n token texts */
	const size_t	*text_len;	/* NULL: texts are NUL-terminated */
	const float	*scores;	/* SPM merge scores; NULL: all 0 */
	const int32_t	*types;		/* enum tok_type; NULL: all normal */
	size_t		 n_merges;	/* BPE: "left right", by rank */
	const char *const *merges;
	const size_t	*merge_len;	/* NULL: NUL-terminated */
	int32_t		 bos, eos, eot, unk;	/* -1: none */
	int		 add_bos;	/* 0, 1, or -1: the kind's default */
	int		 add_space_prefix;	/* SPM: 0, 1, or -1: yes */
};

/* 0, or -1 with a message naming what is wrong with the vocabulary. */
int	tok_new(const struct tok_vocab *, struct tokenizer **out, char *err,
	    size_t errlen);

/* A byte range of text in which special tokens are recognised (the markup
 * a chat template adds, as opposed to the tenant's content). */
struct tok_span {
	size_t	off;
	size_t	len;
};
/* tok_encode with special tokens recognised only when they lie wholly
 * inside one of the n spans (sorted by off, not overlapping; -1 if not).
 * Content between spans is tokenized exactly as in one call over the whole
 * text, so the markup and the content never change each other's ids
 * except where a special token splits them. */
long	tok_encode_spans(const struct tokenizer *, const char *text,
	    size_t len, const struct tok_span *spans, size_t n, int32_t *ids,
	    size_t cap);
/* The text of n ids, as tok_piece concatenated, except that an SPM
 * vocabulary with a space prefix loses the one space tok_encode added
 * in front of the first piece.  Returns the byte count (maybe > cap). */
size_t	tok_decode(const struct tokenizer *, const int32_t *ids, size_t n,
	    bool show_special, char *buf, size_t cap);
/* Type of id (TOK_T_UNDEFINED when out of range). */
enum tok_type tok_type(const struct tokenizer *, int32_t id);

/* The bytes token id stands for (spaces restored, byte tokens decoded;
 * special tokens give "" unless show_special).  Returns the byte count,
 * which may exceed cap (nothing past cap written). */
size_t	tok_piece(const struct tokenizer *, int32_t id, bool show_special,
	    char *buf, size_t cap);
#endif
