/* gateway/openai.h - the OpenAI-compatible tenant API for GGUF models:
 * GET /v1/models, POST /v1/chat/completions, /v1/completions and
 * /v1/embeddings, with server-sent-event streaming.  Requests are
 * validated by gateway/oaireq.c, admitted by gateway/admit.c (tokens
 * reserved as a prompt upper bound plus max_tokens, settled to the
 * runtime's exact counts) and run as scheduler streaming jobs. */
#ifndef GATEWAY_OPENAI_H
#define GATEWAY_OPENAI_H

struct req;

/* Handles a tenant request whose path starts with /v1; ends r. */
void	openai_handle(struct req *);
#endif
