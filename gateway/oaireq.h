/* gateway/oaireq.h - OpenAI-compatible request validation and the small
 * pieces of response JSON shared by the handlers (gateway/openai.c).
 *
 * Pure: no I/O, no server state, so the unit and fuzz tests drive it
 * directly.  A request is validated the way OpenAI validates it: every
 * failure is a 400 invalid_request_error that names the offending
 * parameter ("messages[2].content", "stop[1]", "logit_bias.1234").  The
 * body has already been size-capped by the HTTP guard; every count below
 * is checked before anything is allocated for it. */
#ifndef GATEWAY_OAIREQ_H
#define GATEWAY_OAIREQ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/ipc.h"

enum oai_kind {
	OAI_CHAT = 1,			/* POST /v1/chat/completions */
	OAI_COMPLETION,			/* POST /v1/completions */
	OAI_EMBEDDING			/* POST /v1/embeddings */
};

#define OAI_MODEL_MAX		128	/* bytes of a model name, with NUL */
#define OAI_INPUTS_MAX		256	/* embedding inputs per request */
#define OAI_MAX_TOKENS_MAX	(1U << 20)	/* then capped by the context */
#define OAI_TOP_K_MAX		(1U << 20)
#define OAI_PARAM_MAX		64

/* Why a request was refused: always HTTP 400, type
 * invalid_request_error. */
struct oai_error {
	const char	*code;		/* "invalid_value", ... */
	char		 param[OAI_PARAM_MAX];
	char		 message[320];
};

/* A validated request.  Strings borrow from body (held by a reference)
 * or from owned buffers; everything is released by oai_req_release(). */
struct oai_req {
	enum oai_kind	 kind;
	json_t		*body;		/* new ref */
	const char	*model;
	/* OAI_CHAT */
	uint32_t	 n_msgs;
	struct ipc_str	*roles;		/* n_msgs */
	struct ipc_str	*contents;	/* n_msgs */
	char		**owned;	/* joined text parts, n_owned */
	uint32_t	 n_owned;
	/* OAI_COMPLETION */
	struct ipc_str	 prompt;
	/* OAI_EMBEDDING */
	uint32_t	 n_inputs;
	struct ipc_str	*inputs;	/* n_inputs */
	bool		 base64;	/* encoding_format "base64" */
	/* sampling (chat and completions) */
	bool		 has_max_tokens;
	uint32_t	 max_tokens;
	float		 temperature, top_p, min_p;
	float		 presence_penalty, frequency_penalty;
	uint32_t	 top_k;
	bool		 has_seed;
	uint64_t	 seed;
	bool		 logprobs;
	uint8_t		 top_logprobs;
	uint32_t	 n_stop;
	struct ipc_str	 stop[IPC_STOP_MAX];
	uint32_t	 n_bias;
	int32_t		*bias_tok;	/* n_bias */
	float		*bias_val;	/* n_bias */
	bool		 stream;
	bool		 include_usage;	/* stream_options.include_usage */
};

/* Validates body (a JSON object) as a request of kind.  0: q is filled
 * and takes a reference to body; -1: err says why and q needs no
 * release. */
int		 oai_req_parse(struct oai_req *q, enum oai_kind, json_t *body,
		    struct oai_error *err);
/* NULL is ok; q may be released twice. */
void		 oai_req_release(struct oai_req *q);
/* Fills g (borrowing from q, valid while q is) for input number input
 * (0 for chat and completions).  seed is the one to use when the
 * request gave none. */
void		 oai_req_gen(const struct oai_req *q, const char *tenant,
		    uint32_t input, uint64_t seed, struct ipc_gen_req *g);
/* An upper bound of the prompt's tokens without tokenizing: every
 * tokenizer maas loads produces at most one token per byte, and a chat
 * template adds a bounded number of tokens per message. */
uint64_t	 oai_req_prompt_bound(const struct oai_req *q);

/* --- response pieces --- */
/* {"prompt_tokens","completion_tokens","total_tokens",
 *  "prompt_tokens_details":{"cached_tokens"}}: new reference. */
json_t		*oai_usage(uint32_t prompt, uint32_t completion,
		    uint32_t cached);
/* "stop" or "length". */
const char	*oai_finish_name(enum ipc_finish);
/* A JSON string of bytes that may not be valid UTF-8 (a token's piece):
 * invalid sequences become U+FFFD.  New reference. */
json_t		*oai_string_lossy(const char *p, size_t n);
/* [b0, b1, ...] of a token's bytes.  New reference. */
json_t		*oai_bytes_array(const char *p, size_t n);
/* One entry of a chat choice's logprobs.content (token, logprob, bytes,
 * top_logprobs).  New reference. */
json_t		*oai_chat_logprob(const struct ipc_gen_token *);
/* Appends one token to a completion choice's logprobs object
 * {"tokens","token_logprobs","top_logprobs","text_offset"}. */
void		 oai_completion_logprob(json_t *lp,
		    const struct ipc_gen_token *, size_t text_offset);
/* An empty completion logprobs object.  New reference. */
json_t		*oai_completion_logprobs_new(void);
/* True if p[0..n) is valid UTF-8 without NUL-free requirements. */
bool		 oai_utf8_valid(const char *p, size_t n);
#endif
