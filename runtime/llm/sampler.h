/* runtime/llm/sampler.h - token sampling as the OpenAI API describes it,
 * deterministic for a given seed.  Order: logit_bias, presence and
 * frequency penalties, then (temperature 0: argmax) temperature, top_k,
 * top_p, min_p, and one draw from the seeded generator. */
#ifndef RUNTIME_LLM_SAMPLER_H
#define RUNTIME_LLM_SAMPLER_H
#include <stdint.h>

#define SAMPLER_MAX_BIAS	300	/* OpenAI's logit_bias limit */
#define SAMPLER_MAX_TOP		20	/* top_logprobs */

struct sampler_params {
	float		temperature;	/* 0 ..2; 0 = greedy */
	float		top_p;		/* (0,1]; 1 = off */
	int		top_k;		/* 0 = off */
	float		min_p;		/* 0 = off */
	float		presence_penalty;	/* -2..2 */
	float		frequency_penalty;	/* -2..2 */
	uint64_t	seed;
	int		n_bias;
	int32_t		bias_tok[SAMPLER_MAX_BIAS];
	float		bias_val[SAMPLER_MAX_BIAS];	/* -100..100 */
	int		top_logprobs;	/* 0..SAMPLER_MAX_TOP */
};

/* A token with its log-probability under the model's distribution after
 * logit_bias and penalties but before temperature and truncation (as
 * OpenAI reports them). */
struct sampler_logprob {
	int32_t	tok;
	float	logprob;
};

struct sampler;

struct sampler	*sampler_new(const struct sampler_params *, int n_vocab);
void	 sampler_free(struct sampler *);
/* Picks the next token from logits (n_vocab floats, modified in place).
 * When chosen != NULL, fills it; when top != NULL, fills the
 * params.top_logprobs most likely tokens, most likely first. */
int32_t	 sampler_sample(struct sampler *, float *logits,
	    struct sampler_logprob *chosen, struct sampler_logprob *top);
/* Records a generated token (for the penalties). */
void	 sampler_accept(struct sampler *, int32_t tok);
#endif
