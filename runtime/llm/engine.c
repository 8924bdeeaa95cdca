/* runtime/llm/engine.c - see engine.h.
 *
 * The loop is single-threaded (OpenBLAS and the model may use threads
 * inside a call).  The sandbox allows no poll(), so "is a frame waiting?"
 * is a recv(MSG_PEEK | MSG_DONTWAIT) of one byte; frames from maasd are
 * written whole, so once a byte is there the rest follows at once.
 *
 * Chunked prefill: a new sequence's prompt is computed in chunks of
 * ENGINE_CHUNK tokens, about ENGINE_CHUNK prompt tokens per turn of the
 * loop (one chunk of a long prompt, or several short prompts), between
 * the decode steps of the sequences already generating, oldest prompt
 * first.  A long prompt therefore delays a running stream by one chunk
 * per token instead of by the whole prompt, and frames (a CANCEL of that
 * very prompt, a PING) are read between chunks.  A prompt is cut every
 * ENGINE_CHUNK tokens whatever the load, so that its bits do not depend
 * on what else runs.  Each prefill pass reads (and sgemm packs) every
 * weight once: 256 rows (LLM_ROWS, one pass) prefill a tenth faster
 * than 128 on a 110M model, and take a few decode steps' time.
 *
 * Per sequence state (KV cache, sampler, held-back text, counts) is kept
 * in its slot and nowhere else, so a seeded sequence yields the same
 * tokens alone or in a batch (llm_decode is batch-independent). */
#include <sys/socket.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ipc.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "runtime/llm/chat.h"
#include "runtime/llm/engine.h"
#include "runtime/llm/gguf.h"
#include "runtime/llm/model.h"
#include "runtime/llm/sampler.h"
#include "runtime/llm/tokenizer.h"
#include "runtime/serve.h"

#define PIECE_MAX	1024		/* bytes of one token's text */
#define ENGINE_CHUNK	256		/* prompt tokens per prefill call */
#define PEND_MAX	(IPC_STOP_LEN + 2 * PIECE_MAX)	/* held-back text */
#define ERR_MAX		512
/* Template bytes one message may add, at most (chat.c's budget is 64):
 * beyond it a failed chat_tokenize is a too large input, not bad roles. */
#define CHAT_OVERHEAD_MAX	64

struct seq {
	bool			 active;
	bool			 prefilling;	/* prompt not all in kv yet */
	uint64_t		 order;		/* arrival, for prefill order */
	uint64_t		 req;		/* IPC request id */
	struct llm_kv		*kv;		/* owned by the engine */
	struct sampler		*smp;
	int32_t			 next;		/* sampled, not yet in kv */
	uint32_t		 n_prompt;
	uint32_t		 n_gen;		/* tokens sampled */
	uint32_t		 max_gen;
	bool			 logprobs;
	int			 top_logprobs;
	uint32_t		 n_stop;
	char			 stop[IPC_STOP_MAX][IPC_STOP_LEN];
	uint32_t		 stop_len[IPC_STOP_MAX];
	char			 pend[PEND_MAX];	/* text held back */
	size_t			 pend_len;
	uint64_t		 compute_us;
	/* The step's sampled token, its sampling time and its logprobs,
	 * written by whichever thread sampled it (step()). */
	int32_t			 drawn;
	uint64_t		 draw_us;
	struct sampler_logprob	 chosen;
	struct sampler_logprob	 top[SAMPLER_MAX_TOP];
	/* Prefix cache: the first n_hist positions of kv hold the prompt
	 * hist of tenant's last request; reused only for the same tenant.
	 * While prefilling, hist is the whole prompt (n_prompt tokens) and
	 * n_hist the positions computed so far. */
	char			 tenant[IPC_NAME_MAX + 1];
	int32_t			*hist;		/* n_ctx */
	uint32_t		 n_hist;
	uint32_t		 n_cached;	/* prompt tokens reused now */
};

struct engine {
	struct gguf		*g;
	struct llm_model	*m;
	struct tokenizer	*tok;
	const struct llm_hparams *hp;
	size_t			 file_len;	/* the mapped GGUF */
	enum chat_tmpl		 tmpl;
	char			*defsys;	/* the template's own system
						 * message, NUL-terminated, or
						 * NULL */
	size_t			 defsys_len;
	char			 arch[IPC_LLM_STR_MAX + 1];
	int			 n_ctx;		/* served, per sequence */
	int			 n_vocab;
	int			 max_seqs;
	struct seq		*seqs;		/* max_seqs slots */
	int			 n_active;	/* prefilling ones included */
	uint64_t		 n_arrived;	/* GENERATEs taken, ever */
	/* Work buffers, allocated at load. */
	int32_t			*ids;		/* n_ctx prompt tokens */
	float			*logits;	/* max_seqs x n_vocab */
	float			*embd;		/* n_embd */
	/* A decode step's sequences, or a prefill turn's (with pf_*). */
	struct llm_kv		**batch_kv;	/* max_seqs */
	int32_t			*batch_tok;	/* max_seqs */
	struct seq		**batch_seq;	/* max_seqs */
	const int32_t		**pf_tok;	/* max_seqs: a turn's chunks */
	int			*pf_n;		/* max_seqs */
	bool			*pf_want;	/* max_seqs: the prompt's last */
	/* I/O */
	int			 fd;
	uint8_t			*buf;		/* frame payload, grown */
	size_t			 cap;
	struct wbuf		 out;
	char			 err[ERR_MAX];
};

static uint64_t	now_us(void);
static bool	frame_waiting(int);
static int	handle_frame(struct engine *, const struct ipc_hdr *);
static int	gen_start(struct engine *, uint64_t, size_t);
static int	gen_embed(struct engine *, struct seq *, long, uint64_t);
static long	gen_tokens(struct engine *, const struct ipc_gen_req *);
static long	chat_tokens(struct engine *, const struct ipc_gen_req *);
static long	encode_into(struct engine *, const char *, size_t, size_t);
static int	step(struct engine *);
static int	mixed_step(struct engine *, int, bool *);
static void	draw(void *, int);
static int	prefill_turn(struct engine *);
static int	prefill_chunks(struct engine *, int, uint32_t);
static int	on_token(struct engine *, struct seq *, int32_t);
static int	send_token(struct engine *, struct seq *, int32_t,
		    const char *, size_t);
static int	seq_done(struct engine *, struct seq *, enum ipc_finish);
static void	seq_release(struct engine *, struct seq *);
static int	reply_err(struct engine *, uint64_t, enum ipc_err);
static size_t	utf8_cut(const char *, size_t);
static size_t	stop_hold(const struct seq *);
static struct seq *seq_find(struct engine *, uint64_t);
static struct seq *seq_pick(struct engine *, const struct ipc_str *, long,
		    uint32_t *);

static uint64_t
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* --- load --- */

int
engine_load(const uint8_t *data, size_t len, int max_seqs,
    struct engine **out, char *err, size_t errlen)
{
	struct engine	*e;
	struct gguf_str	 s;
	int32_t		 warm;

	e = xcalloc(1, sizeof(*e));
	e->fd = -1;
	e->file_len = len;
	wbuf_init(&e->out);
	if (gguf_parse(data, len, &e->g, err, errlen) == -1)
		goto fail;
	if (!gguf_get_str(e->g, "general.architecture", &s) || s.n == 0 ||
	    s.n > IPC_LLM_STR_MAX || memchr(s.p, '\0', s.n) != NULL) {
		snprintf(err, errlen, "general.architecture is missing or "
		    "not a short name");
		goto fail;
	}
	memcpy(e->arch, s.p, s.n);
	if (llm_model_load(e->g, &e->m, err, errlen) == -1 ||
	    tok_from_gguf(e->g, &e->tok, err, errlen) == -1)
		goto fail;
	e->hp = llm_model_hparams(e->m);
	e->n_vocab = e->hp->n_vocab;
	if (tok_n_vocab(e->tok) > e->n_vocab) {
		snprintf(err, errlen, "the tokenizer has %d tokens, the model "
		    "only %d", tok_n_vocab(e->tok), e->n_vocab);
		goto fail;
	}
	/* A model without a template serves completions and embeddings;
	 * one with a template maas cannot apply is refused, so that
	 * registration says so instead of chats failing later. */
	e->tmpl = CHAT_NONE;
	if (gguf_get_str(e->g, "tokenizer.chat_template", &s) && s.n > 0 &&
	    (e->tmpl = chat_detect(s.p, (size_t)s.n)) == CHAT_NONE) {
		snprintf(err, errlen, "the model's chat template is not one "
		    "maas can apply (it knows ChatML, Llama 2 and Llama 3)");
		goto fail;
	}
	if (e->tmpl != CHAT_NONE) {
		long	k;

		e->defsys = xmalloc((size_t)s.n + 1);
		if ((k = chat_default_system(s.p, (size_t)s.n, e->defsys,
		    (size_t)s.n + 1)) < 0) {
			free(e->defsys);
			e->defsys = NULL;
		} else
			e->defsys_len = (size_t)k;
	}
	e->n_ctx = e->hp->n_ctx < ENGINE_CTX_MAX ? e->hp->n_ctx :
	    ENGINE_CTX_MAX;
	if (e->n_ctx < 2) {
		snprintf(err, errlen, "context length %d is too small",
		    e->hp->n_ctx);
		goto fail;
	}
	e->max_seqs = max_seqs;
	e->seqs = xcalloc((size_t)max_seqs, sizeof(*e->seqs));
	for (int i = 0; i < max_seqs; i++) {
		e->seqs[i].hist = xcalloc((size_t)e->n_ctx,
		    sizeof(*e->seqs[i].hist));
		if ((e->seqs[i].kv = llm_kv_new(e->m, e->n_ctx)) == NULL) {
			snprintf(err, errlen, "cannot allocate the KV cache "
			    "of %d sequences", max_seqs);
			goto fail;
		}
	}
	e->ids = xcalloc((size_t)e->n_ctx, sizeof(*e->ids));
	e->logits = xcalloc((size_t)max_seqs * (size_t)e->n_vocab,
	    sizeof(*e->logits));
	e->embd = xcalloc((size_t)e->hp->n_embd, sizeof(*e->embd));
	e->batch_kv = xcalloc((size_t)max_seqs, sizeof(*e->batch_kv));
	e->batch_tok = xcalloc((size_t)max_seqs, sizeof(*e->batch_tok));
	e->batch_seq = xcalloc((size_t)max_seqs, sizeof(*e->batch_seq));
	e->pf_tok = xcalloc((size_t)max_seqs, sizeof(*e->pf_tok));
	e->pf_n = xcalloc((size_t)max_seqs, sizeof(*e->pf_n));
	e->pf_want = xcalloc((size_t)max_seqs, sizeof(*e->pf_want));

	/* Warm-up before the sandbox: one prefill and one decode step, so
	 * that whatever the kernels allocate lazily exists. */
	warm = tok_bos(e->tok) >= 0 ? tok_bos(e->tok) : 0;
	e->batch_kv[0] = e->seqs[0].kv;
	if (llm_prefill(e->m, e->seqs[0].kv, &warm, 1, e->logits) == -1 ||
	    llm_decode(e->m, e->batch_kv, &warm, 1, e->logits) == -1) {
		snprintf(err, errlen, "warm-up step failed");
		goto fail;
	}
	llm_kv_truncate(e->seqs[0].kv, 0);
	log_info("llm '%s': %d layers, %d embd, vocab %d, context %d, "
	    "%d sequences, chat template %s", e->arch, e->hp->n_layer,
	    e->hp->n_embd, e->n_vocab, e->n_ctx, max_seqs,
	    e->tmpl == CHAT_NONE ? "none" : chat_tmpl_name(e->tmpl));
	*out = e;
	return 0;
 fail:
	engine_free(e);
	return -1;
}

int
engine_set_threads(struct engine *e, int n)
{
	return llm_model_set_threads(e->m, n);
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	for (int i = 0; e->seqs != NULL && i < e->max_seqs; i++) {
		sampler_free(e->seqs[i].smp);
		llm_kv_free(e->seqs[i].kv);
		free(e->seqs[i].hist);
	}
	free(e->seqs);
	free(e->ids);
	free(e->logits);
	free(e->embd);
	free(e->batch_kv);
	free(e->batch_tok);
	free(e->batch_seq);
	free(e->pf_tok);
	free(e->pf_n);
	free(e->pf_want);
	free(e->buf);
	free(e->defsys);
	wbuf_release(&e->out);
	tok_free(e->tok);
	llm_model_free(e->m);
	gguf_close(e->g);
	free(e);
}

void
engine_meta(const struct engine *e, struct ipc_meta *meta)
{
	const char	*t = e->tmpl == CHAT_NONE ? "" : chat_tmpl_name(e->tmpl);

	memset(meta, 0, sizeof(*meta));
	meta->format = MODEL_FORMAT_GGUF;
	meta->mem_bytes = llm_model_mem_bytes(e->m) +
	    (uint64_t)e->max_seqs * llm_kv_bytes(e->m, e->n_ctx);
	meta->shared_bytes = e->file_len;	/* weights are used in place */
	meta->llm.n_ctx = (uint32_t)e->n_ctx;
	meta->llm.n_vocab = (uint32_t)e->n_vocab;
	meta->llm.n_embd = (uint32_t)e->hp->n_embd;
	meta->llm.max_seqs = (uint32_t)e->max_seqs;
	meta->llm.arch = (struct ipc_str){ e->arch, (uint32_t)strlen(e->arch) };
	meta->llm.chat_template = (struct ipc_str){ t, (uint32_t)strlen(t) };
}

/* --- the loop --- */

static bool
frame_waiting(int fd)
{
	uint8_t	b;
	ssize_t	r;

	do
		r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	while (r == -1 && errno == EINTR);
	/* EOF and errors count as waiting: the read reports them. */
	return !(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

int
engine_serve(struct engine *e, int fd)
{
	struct ipc_hdr	h;
	int		r, ret;

	e->fd = fd;
	for (;;) {
		/* Idle: block on the socket.  Busy: take what is waiting,
		 * then step. */
		while (e->n_active == 0 || frame_waiting(fd)) {
			errno = 0;
			r = ipc_read_frame(fd, &h, &e->buf, &e->cap,
			    IPC_MAX_PAYLOAD);
			if (r == 0)
				return SERVE_EOF;
			if (r == -1 && errno == ENOMEM &&
			    h.type == IPC_GENERATE) {
				snprintf(e->err, sizeof(e->err), "request of "
				    "%u bytes exceeds the runtime's memory "
				    "limit", h.len);
				if ((ret = reply_err(e, h.req_id,
				    IPC_ERR_TOO_LARGE)) != -1)
					return ret;
				continue;
			}
			if (r == -1 && (errno == EPROTO || errno == ENOMEM ||
			    errno == 0)) {
				log_warnx("malformed or truncated frame from "
				    "maasd");
				return SERVE_EPROTO;
			}
			if (r == -1) {
				log_warn("cannot read from maasd");
				return SERVE_EIO;
			}
			if ((ret = handle_frame(e, &h)) != -1) {
				if (ret == SERVE_EPROTO)
					log_warnx("req=%llu: bad %s frame "
					    "from maasd",
					    (unsigned long long)h.req_id,
					    ipc_type_name((enum ipc_type)
					    h.type));
				return ret;
			}
		}
		if ((ret = step(e)) != -1 || (ret = prefill_turn(e)) != -1)
			return ret;
	}
}

/* -1 when handled, else a SERVE_* status to end with. */
static int
handle_frame(struct engine *e, const struct ipc_hdr *h)
{
	struct seq	*q;

	switch (h->type) {
	case IPC_GENERATE:
		return gen_start(e, h->req_id, h->len);
	case IPC_CANCEL:
		if (h->len != 0)
			return SERVE_EPROTO;
		/* Not found: it finished, and its DONE crossed the CANCEL. */
		if ((q = seq_find(e, h->req_id)) != NULL)
			return seq_done(e, q, IPC_FINISH_CANCELLED);
		return -1;
	case IPC_PING:
		if (h->len != 0)
			return SERVE_EPROTO;
		return ipc_write_frame(e->fd, IPC_PONG, h->req_id, NULL, 0) ==
		    -1 ? SERVE_EIO : -1;
	default:
		return SERVE_EPROTO;
	}
}

/* A free slot for a request of tenant whose n prompt tokens are in
 * e->ids: the one holding the longest prefix of them from the same
 * tenant (*cached: its length, at most n - 1 so that one token is left
 * to compute the logits), else an empty one, else any.  The slot is
 * given to tenant; a KV cache never serves two tenants. */
static struct seq *
seq_pick(struct engine *e, const struct ipc_str *tenant, long n,
    uint32_t *cached)
{
	struct seq	*best = NULL, *empty = NULL, *any = NULL, *s;
	uint32_t	 k, best_k = 0;
	bool		 named = tenant->n > 0 && tenant->n <= IPC_NAME_MAX;

	for (int i = 0; i < e->max_seqs; i++) {
		s = &e->seqs[i];
		if (s->active)
			continue;
		if (any == NULL)
			any = s;
		if (empty == NULL && s->n_hist == 0)
			empty = s;
		if (!named || s->n_hist == 0 || strlen(s->tenant) !=
		    tenant->n || memcmp(s->tenant, tenant->p, tenant->n) != 0)
			continue;
		for (k = 0; k < s->n_hist && (long)k < n - 1 &&
		    s->hist[k] == e->ids[k]; k++)
			;
		if (k > best_k) {
			best = s;
			best_k = k;
		}
	}
	if (best == NULL) {
		best = empty != NULL ? empty : any;
		best->n_hist = 0;
	}
	*cached = best_k;
	memset(best->tenant, 0, sizeof(best->tenant));
	if (named)
		memcpy(best->tenant, tenant->p, tenant->n);
	return best;
}

static struct seq *
seq_find(struct engine *e, uint64_t req)
{
	for (int i = 0; i < e->max_seqs; i++)
		if (e->seqs[i].active && e->seqs[i].req == req)
			return &e->seqs[i];
	return NULL;
}

static int
reply_err(struct engine *e, uint64_t req, enum ipc_err code)
{
	wbuf_reset(&e->out);
	wbuf_u16(&e->out, (uint16_t)code);
	wbuf_str16(&e->out, e->err);
	log_debug("req=%llu generate refused: %s", (unsigned long long)req,
	    e->err);
	if (ipc_write_frame(e->fd, IPC_INFER_ERR, req, e->out.data,
	    e->out.len) == -1) {
		log_warn("cannot write to maasd");
		return SERVE_EIO;
	}
	return -1;
}

/* --- a new sequence --- */

static int
gen_start(struct engine *e, uint64_t req, size_t len)
{
	struct ipc_gen_req	 q;
	struct sampler_params	 sp;
	struct rbuf		 r;
	struct seq		*s = NULL;
	uint64_t		 t0;
	uint32_t		 want, cached;
	long			 n;
	int			 ret = -1;

	rbuf_init(&r, e->buf, len);
	if (ipc_gen_req_decode(&r, &q) == -1)
		return SERVE_EPROTO;
	/* The scheduler never sends more than max_seqs, nor reuses an id
	 * in flight: either is a broken peer. */
	if (e->n_active >= e->max_seqs || seq_find(e, req) != NULL) {
		ipc_gen_req_release(&q);
		return SERVE_EPROTO;
	}
	t0 = now_us();
	e->err[0] = '\0';
	for (uint32_t i = 0; i < q.n_bias; i++)
		if (q.bias_tok[i] < 0 || q.bias_tok[i] >= e->n_vocab) {
			snprintf(e->err, sizeof(e->err), "logit_bias: token "
			    "%d is not in the vocabulary", q.bias_tok[i]);
			ret = reply_err(e, req, IPC_ERR_BAD_INPUT);
			goto out;
		}
	if (q.mode == IPC_GEN_CHAT && e->tmpl == CHAT_NONE) {
		snprintf(e->err, sizeof(e->err), "this model has no chat "
		    "template: use completions");
		ret = reply_err(e, req, IPC_ERR_BAD_INPUT);
		goto out;
	}
	if ((n = gen_tokens(e, &q)) < 0) {
		ret = reply_err(e, req, n == -2 ? IPC_ERR_TOO_LARGE :
		    IPC_ERR_BAD_INPUT);
		goto out;
	}
	if (n == 0) {
		snprintf(e->err, sizeof(e->err), "the input is empty");
		ret = reply_err(e, req, IPC_ERR_BAD_INPUT);
		goto out;
	}
	want = q.mode == IPC_GEN_EMBEDDING ? 0 : q.max_tokens;
	if ((uint64_t)n + (want ? want : q.mode != IPC_GEN_EMBEDDING) >
	    (uint64_t)e->n_ctx) {
		snprintf(e->err, sizeof(e->err), "This model's maximum "
		    "context length is %d tokens. However, you requested "
		    "%llu tokens (%ld in the %s, %u in the completion).",
		    e->n_ctx, (unsigned long long)n + want, n,
		    q.mode == IPC_GEN_CHAT ? "messages" : "prompt", want);
		ret = reply_err(e, req, IPC_ERR_CONTEXT);
		goto out;
	}
	s = seq_pick(e, &q.tenant, q.mode == IPC_GEN_EMBEDDING ? 0 : n,
	    &cached);
	if (q.mode == IPC_GEN_EMBEDDING) {
		ret = gen_embed(e, s, n, req);
		goto out;
	}

	memset(&sp, 0, sizeof(sp));
	sp.temperature = q.temperature;
	sp.top_p = q.top_p > 0 && q.top_p < 1 ? q.top_p : 1;
	sp.top_k = q.top_k > (uint32_t)e->n_vocab ? 0 : (int)q.top_k;
	sp.min_p = q.min_p;
	sp.presence_penalty = q.presence_penalty;
	sp.frequency_penalty = q.frequency_penalty;
	sp.seed = q.seed;
	sp.n_bias = (int)q.n_bias;
	for (uint32_t i = 0; i < q.n_bias; i++) {
		sp.bias_tok[i] = q.bias_tok[i];
		sp.bias_val[i] = q.bias_val[i];
	}
	sp.top_logprobs = q.top_logprobs;

	s->req = req;
	s->n_prompt = (uint32_t)n;
	s->n_gen = 0;
	s->max_gen = want ? want : (uint32_t)(e->n_ctx - n);
	s->logprobs = q.logprobs != 0;
	s->top_logprobs = q.top_logprobs;
	s->n_stop = q.n_stop;
	for (uint32_t i = 0; i < q.n_stop; i++) {
		memcpy(s->stop[i], q.stop[i].p, q.stop[i].n);
		s->stop_len[i] = q.stop[i].n;
	}
	s->pend_len = 0;
	sampler_free(s->smp);
	s->smp = sampler_new(&sp, e->n_vocab);
	/* The slot's KV holds this tenant's cached prefix, if any; the
	 * rest of the prompt is computed by prefill_turn(). */
	llm_kv_truncate(s->kv, (int)cached);
	s->n_cached = cached;
	memcpy(s->hist, e->ids, (size_t)n * sizeof(*s->hist));
	s->n_hist = cached;
	s->active = true;
	s->prefilling = true;
	s->order = e->n_arrived++;
	e->n_active++;
	log_debug("req=%llu generate: %ld prompt tokens (%u cached), up to "
	    "%u more", (unsigned long long)req, n, cached, s->max_gen);
	s->compute_us = now_us() - t0;
 out:
	ipc_gen_req_release(&q);
	return ret;
}

/* An embedding: one pass over the tokens in e->ids, using s's KV cache
 * as scratch; DONE carries the vector (little-endian floats, as the
 * host's: maas runs on little-endian machines only, like GGUF). */
static int
gen_embed(struct engine *e, struct seq *s, long n, uint64_t req)
{
	struct ipc_gen_done	d;
	uint64_t		t0 = now_us();
	int			r;

	r = llm_embed(e->m, s->kv, e->ids, (int)n, e->embd);
	llm_kv_truncate(s->kv, 0);
	s->n_hist = 0;
	if (r == -1) {
		snprintf(e->err, sizeof(e->err), "embedding failed");
		return reply_err(e, req, IPC_ERR_INTERNAL);
	}
	memset(&d, 0, sizeof(d));
	d.finish = IPC_FINISH_STOP;
	d.prompt_tokens = (uint32_t)n;
	d.compute_us = now_us() - t0;
	d.n_embd = (uint32_t)e->hp->n_embd;
	d.embd = (const uint8_t *)e->embd;
	wbuf_reset(&e->out);
	ipc_gen_done_encode(&e->out, &d);
	if (ipc_write_frame(e->fd, IPC_DONE, req, e->out.data,
	    e->out.len) == -1) {
		log_warn("cannot write to maasd");
		return SERVE_EIO;
	}
	return -1;
}

/* Tokenizes the request into e->ids.  Returns the token count (which may
 * exceed n_ctx: only the first n_ctx are written), -1 with e->err set for
 * a bad request, -2 for one too large to tokenize. */
static long
gen_tokens(struct engine *e, const struct ipc_gen_req *q)
{
	long	n = 0, k;

	if (q->mode == IPC_GEN_CHAT)
		return chat_tokens(e, q);
	if (tok_add_bos(e->tok) && tok_bos(e->tok) >= 0) {
		e->ids[0] = tok_bos(e->tok);
		n = 1;
	}
	/* Tenant text: special tokens' texts are plain text here. */
	if ((k = encode_into(e, q->prompt.p, q->prompt.n, (size_t)n)) < 0)
		return k;
	return n + k;
}

/* Encodes text after the first at tokens of e->ids; returns how many
 * tokens it takes (written while they fit n_ctx). */
static long
encode_into(struct engine *e, const char *text, size_t len, size_t at)
{
	long	k;

	if (len == 0)
		return 0;
	k = tok_encode(e->tok, text, len, false, e->ids + (at < (size_t)
	    e->n_ctx ? at : 0), at < (size_t)e->n_ctx ? (size_t)e->n_ctx - at :
	    0);
	if (k < 0) {
		snprintf(e->err, sizeof(e->err), "the input is too large to "
		    "tokenize");
		return -2;
	}
	return k;
}

/* Tokenizes the chat with chat_tokenize (BOS once as an id, content
 * stripped or trimmed as the template's Jinja does, special tokens only
 * in the template's markup: a tenant who writes "<|im_start|>" gets those
 * characters, never the control token).  A template that writes a system
 * message by itself gets it here when the chat does not start with one. */
static long
chat_tokens(struct engine *e, const struct ipc_gen_req *q)
{
	struct chat_msg	*msgs;
	char		*roles;
	size_t		 n = 0, total = 0;
	long		 r;

	msgs = xcalloc((size_t)q->n_msgs + 1, sizeof(*msgs));
	roles = xcalloc((size_t)q->n_msgs + 1, IPC_NAME_MAX + 1);
	if (e->defsys != NULL && (q->n_msgs == 0 || q->roles[0].n != 6 ||
	    memcmp(q->roles[0].p, "system", 6) != 0)) {
		msgs[n].role = "system";
		msgs[n].content = e->defsys;
		msgs[n].content_len = e->defsys_len;
		total += e->defsys_len;
		n++;
	}
	for (uint32_t i = 0; i < q->n_msgs; i++, n++) {
		char	*role = roles + (size_t)i * (IPC_NAME_MAX + 1);

		/* A role too long or with a NUL stays "": unknown. */
		if (q->roles[i].n <= IPC_NAME_MAX &&
		    memchr(q->roles[i].p, '\0', q->roles[i].n) == NULL)
			memcpy(role, q->roles[i].p, q->roles[i].n);
		msgs[n].role = role;
		msgs[n].content = q->contents[i].p;
		msgs[n].content_len = q->contents[i].n;
		total += q->contents[i].n;
	}
	r = chat_tokenize(e->tmpl, e->tok, msgs, n, e->ids, (size_t)e->n_ctx);
	if (r < 0 && total + (n + 1) * CHAT_OVERHEAD_MAX > TOK_MAX_TEXT) {
		snprintf(e->err, sizeof(e->err), "the input is too large to "
		    "tokenize");
		r = -2;
	} else if (r < 0)
		snprintf(e->err, sizeof(e->err), "the messages do not fit "
		    "the model's chat template (roles are system, user and "
		    "assistant)");
	free(msgs);
	free(roles);
	return r;
}

/* --- stepping --- */

/* One decode step of every active sequence, in one call (with the short
 * prompts waiting, when mixed_step() takes them). */
static int
step(struct engine *e)
{
	uint64_t	t0, share;
	int		n = 0, ret;
	bool		ran;

	for (int i = 0; i < e->max_seqs; i++) {
		struct seq	*s = &e->seqs[i];

		if (!s->active || s->prefilling)
			continue;
		e->batch_seq[n] = s;
		e->batch_kv[n] = s->kv;
		e->batch_tok[n] = s->next;
		n++;
	}
	if (n == 0)
		return -1;
	if ((ret = mixed_step(e, n, &ran)) != -1 || ran)
		return ret;
	t0 = now_us();
	if (llm_decode(e->m, e->batch_kv, e->batch_tok, n, e->logits) == -1) {
		/* Our own bookkeeping keeps every kv within n_ctx. */
		log_warnx("decode step of %d sequences failed", n);
		return SERVE_EPROTO;
	}
	share = (now_us() - t0) / (uint64_t)n;
	/* The sequences' samplers are independent (each its own logits
	 * row, state and random stream), so they run on the model's
	 * threads; the tokens then go out in slot order. */
	llm_model_par(e->m, draw, e, n);
	for (int i = 0; i < n; i++) {
		struct seq	*s = e->batch_seq[i];

		s->compute_us += share + s->draw_us;
		if ((ret = on_token(e, s, s->drawn)) != -1)
			return ret;
	}
	return -1;
}

/* A decode step that also prefills the short prompts waiting (at most
 * llm_model_mv_rows() tokens left each, oldest first), in one pass over
 * the weights: a prompt that arrives while others decode costs them no
 * pass of its own.  Each row gets the bits it would get alone (the
 * decode step's as from llm_decode(), each prompt's as from its own
 * prefill), so a seeded sequence yields the same tokens either way.
 * The step's nd decoding sequences are in e->batch_seq and batch_kv.
 * *ran false (and -1): nothing to mix, the plain step runs; else -1 or a
 * SERVE_* status. */
static int
mixed_step(struct engine *e, int nd, bool *ran)
{
	uint64_t	 t0, took, after = 0;
	int		 mv = llm_model_mv_rows(e->m), n = nd, ret, rows = nd;
	struct seq	*s;

	*ran = false;
	if (mv <= 0)
		return -1;
	for (int i = 0; i < nd; i++) {
		e->pf_tok[i] = &e->batch_seq[i]->next;
		e->pf_n[i] = 1;
		e->pf_want[i] = true;
	}
	for (;;) {
		s = NULL;
		for (int i = 0; i < e->max_seqs; i++) {
			struct seq	*q = &e->seqs[i];

			if (q->active && q->prefilling &&
			    q->n_prompt - q->n_hist <= (uint32_t)mv &&
			    (n == nd || q->order > after) && (s == NULL ||
			    q->order < s->order))
				s = q;
		}
		if (s == NULL || rows + (int)(s->n_prompt - s->n_hist) >
		    ENGINE_CHUNK)
			break;
		after = s->order;
		e->batch_seq[n] = s;
		e->batch_kv[n] = s->kv;
		e->pf_tok[n] = s->hist + s->n_hist;
		e->pf_n[n] = (int)(s->n_prompt - s->n_hist);
		e->pf_want[n] = true;
		rows += e->pf_n[n];
		n++;
	}
	if (n == nd)
		return -1;
	*ran = true;
	t0 = now_us();
	if (llm_prefill_many(e->m, e->batch_kv, e->pf_tok, e->pf_n,
	    e->pf_want, n, e->logits) == -1) {
		/* Our own bookkeeping keeps every kv within n_ctx and the
		 * tokenizer's ids within the vocabulary. */
		log_warnx("mixed step of %d rows failed", rows);
		return SERVE_EPROTO;
	}
	took = now_us() - t0;
	llm_model_par(e->m, draw, e, n);
	for (int i = 0; i < n; i++) {
		s = e->batch_seq[i];
		s->compute_us += took * (uint64_t)e->pf_n[i] / (uint64_t)rows +
		    s->draw_us;
		if (i >= nd) {
			s->n_hist += (uint32_t)e->pf_n[i];
			s->prefilling = false;
		}
		if ((ret = on_token(e, s, s->drawn)) != -1)
			return ret;
	}
	return -1;
}

/* Samples the token of the step's sequence i (llm_model_par()). */
static void
draw(void *arg, int i)
{
	struct engine	*e = arg;
	struct seq	*s = e->batch_seq[i];
	uint64_t	 t0 = now_us();

	s->drawn = sampler_sample(s->smp, e->logits + (size_t)i *
	    (size_t)e->n_vocab, s->logprobs ? &s->chosen : NULL,
	    s->top_logprobs ? s->top : NULL);
	s->draw_us = now_us() - t0;
}

/* A turn's prefill: chunks of the oldest prompts, up to ENGINE_CHUNK
 * tokens in all (so that short prompts arriving together all start in
 * one turn), but always one chunk.  Each prompt is cut every ENGINE_CHUNK
 * tokens whatever the turn holds.  The chunks go to the model together
 * (llm_prefill_many()), each computed as it would be alone.  -1, or a
 * SERVE_* status. */
static int
prefill_turn(struct engine *e)
{
	struct seq	*s;
	uint32_t	 k, spent = 0;
	uint64_t	 after = 0;	/* order of the last taken */
	int		 n = 0;

	for (;;) {
		s = NULL;
		for (int i = 0; i < e->max_seqs; i++) {
			struct seq	*q = &e->seqs[i];

			if (q->active && q->prefilling && (n == 0 ||
			    q->order > after) && (s == NULL ||
			    q->order < s->order))
				s = q;
		}
		if (s == NULL)
			break;
		k = s->n_prompt - s->n_hist;
		if (k > ENGINE_CHUNK)
			k = ENGINE_CHUNK;
		if (spent > 0 && spent + k > ENGINE_CHUNK)
			break;
		spent += k;
		after = s->order;
		e->batch_seq[n] = s;
		e->batch_kv[n] = s->kv;
		e->pf_tok[n] = s->hist + s->n_hist;
		e->pf_n[n] = (int)k;
		e->pf_want[n] = s->n_hist + k == s->n_prompt;
		n++;
	}
	return n == 0 ? -1 : prefill_chunks(e, n, spent);
}

/* Computes the turn's n chunks (spent tokens in all); each sequence whose
 * chunk ends its prompt samples its first token and joins the decode
 * steps.  -1, or a SERVE_* status. */
static int
prefill_chunks(struct engine *e, int n, uint32_t spent)
{
	uint64_t	 t0 = now_us(), took;
	int		 ret, row = 0;

	if (llm_prefill_many(e->m, e->batch_kv, e->pf_tok, e->pf_n,
	    e->pf_want, n, e->logits) == -1) {
		/* Our bookkeeping keeps every prompt within its cache and
		 * the tokenizer's ids within the vocabulary. */
		snprintf(e->err, sizeof(e->err), "prefill failed");
		for (int i = 0; i < n; i++) {
			struct seq	*s = e->batch_seq[i];
			uint64_t	 req = s->req;

			llm_kv_truncate(s->kv, 0);
			s->n_hist = 0;
			seq_release(e, s);
			if ((ret = reply_err(e, req, IPC_ERR_INTERNAL)) != -1)
				return ret;
		}
		return -1;
	}
	took = now_us() - t0;
	for (int i = 0; i < n; i++) {
		struct seq	*s = e->batch_seq[i];
		int32_t		 tok;

		s->n_hist += (uint32_t)e->pf_n[i];
		s->compute_us += took * (uint64_t)e->pf_n[i] / spent;
		if (!e->pf_want[i])
			continue;
		t0 = now_us();
		s->prefilling = false;
		tok = sampler_sample(s->smp, e->logits + (size_t)row++ *
		    (size_t)e->n_vocab, s->logprobs ? &s->chosen : NULL,
		    s->top_logprobs ? s->top : NULL);
		s->compute_us += now_us() - t0;
		if ((ret = on_token(e, s, tok)) != -1)
			return ret;
	}
	return -1;
}

/* Longest k such that the first k bytes of buf do not end inside a
 * UTF-8 character (invalid bytes count as whole characters). */
static size_t
utf8_cut(const char *buf, size_t n)
{
	for (size_t back = 1; back <= 4 && back <= n; back++) {
		unsigned char	c = (unsigned char)buf[n - back];
		size_t		want;

		if ((c & 0xc0) == 0x80)
			continue;		/* continuation byte */
		if (c < 0x80)
			return n;
		want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		return want > back ? n - back : n;
	}
	return n;
}

/* Bytes at the end of the held text that are the start of a stop
 * string: they must wait for the next token. */
static size_t
stop_hold(const struct seq *s)
{
	size_t	hold = 0;

	for (uint32_t i = 0; i < s->n_stop; i++) {
		size_t	k = s->stop_len[i] - 1;

		if (k > s->pend_len)
			k = s->pend_len;
		for (; k > hold; k--)
			if (memcmp(s->pend + s->pend_len - k, s->stop[i], k) ==
			    0) {
				hold = k;
				break;
			}
	}
	return hold;
}

/* A token was sampled for s: account it, send its text, and end s when
 * it is done.  -1, or a SERVE_* status. */
static int
on_token(struct engine *e, struct seq *s, int32_t tok)
{
	char	 piece[PIECE_MAX];
	size_t	 n, emit, best = SIZE_MAX;
	int	 ret;

	s->n_gen++;
	sampler_accept(s->smp, tok);
	if (tok_is_eog(e->tok, tok))
		return seq_done(e, s, IPC_FINISH_STOP);
	n = tok_piece(e->tok, tok, false, piece, sizeof(piece));
	if (n > sizeof(piece))
		n = sizeof(piece);	/* XXX: no real token is this long */
	if (s->pend_len + n > sizeof(s->pend)) {
		/* Cannot happen: the hold is shorter than a stop string. */
		n = sizeof(s->pend) - s->pend_len;
	}
	memcpy(s->pend + s->pend_len, piece, n);
	s->pend_len += n;

	for (uint32_t i = 0; i < s->n_stop; i++) {
		const char	*hit = memmem(s->pend, s->pend_len, s->stop[i],
				    s->stop_len[i]);

		if (hit != NULL && (size_t)(hit - s->pend) < best)
			best = (size_t)(hit - s->pend);
	}
	if (best != SIZE_MAX) {
		if ((ret = send_token(e, s, tok, s->pend, best)) != -1)
			return ret;
		s->pend_len = 0;	/* the stop string is never sent */
		return seq_done(e, s, IPC_FINISH_STOP);
	}
	emit = utf8_cut(s->pend, s->pend_len - stop_hold(s));
	if ((ret = send_token(e, s, tok, s->pend, emit)) != -1)
		return ret;
	memmove(s->pend, s->pend + emit, s->pend_len - emit);
	s->pend_len -= emit;
	if (s->n_gen >= s->max_gen)
		return seq_done(e, s, IPC_FINISH_LENGTH);
	s->next = tok;
	return -1;
}

static int
send_token(struct engine *e, struct seq *s, int32_t tok, const char *text,
    size_t len)
{
	struct ipc_gen_token	t;
	char			lp[IPC_TOP_MAX + 1][128];
	size_t			n;

	memset(&t, 0, sizeof(t));
	t.id = tok;
	t.text = (struct ipc_str){ text, (uint32_t)len };
	if (tok >= 0 && s->logprobs) {
		n = tok_piece(e->tok, s->chosen.tok, true, lp[0],
		    sizeof(lp[0]));
		t.lp.token = (struct ipc_str){ lp[0], (uint32_t)(n <
		    sizeof(lp[0]) ? n : sizeof(lp[0])) };
		t.lp.logprob = s->chosen.logprob;
		t.n_top = (uint32_t)s->top_logprobs;
		for (int i = 0; i < s->top_logprobs; i++) {
			n = tok_piece(e->tok, s->top[i].tok, true, lp[i + 1],
			    sizeof(lp[i + 1]));
			t.top[i].token = (struct ipc_str){ lp[i + 1],
			    (uint32_t)(n < sizeof(lp[0]) ? n :
			    sizeof(lp[0])) };
			t.top[i].logprob = s->top[i].logprob;
		}
	}
	wbuf_reset(&e->out);
	ipc_gen_token_encode(&e->out, &t);
	if (ipc_write_frame(e->fd, IPC_TOKEN, s->req, e->out.data,
	    e->out.len) == -1) {
		log_warn("cannot write to maasd");
		return SERVE_EIO;
	}
	return -1;
}

/* Ends s: releases held-back text (not after a cancel), sends DONE and
 * frees the slot. */
static int
seq_done(struct engine *e, struct seq *s, enum ipc_finish fin)
{
	struct ipc_gen_done	d;
	int			ret;

	if (fin != IPC_FINISH_CANCELLED && s->pend_len > 0 &&
	    (ret = send_token(e, s, -1, s->pend, s->pend_len)) != -1)
		return ret;
	memset(&d, 0, sizeof(d));
	d.finish = fin;
	d.prompt_tokens = s->n_prompt;
	d.cached_tokens = s->n_cached;
	d.completion_tokens = s->n_gen;
	d.compute_us = s->compute_us;
	wbuf_reset(&e->out);
	ipc_gen_done_encode(&e->out, &d);
	log_debug("req=%llu done: %u + %u tokens, %llu us",
	    (unsigned long long)s->req, s->n_prompt, s->n_gen,
	    (unsigned long long)s->compute_us);
	seq_release(e, s);
	if (ipc_write_frame(e->fd, IPC_DONE, s->req, e->out.data,
	    e->out.len) == -1) {
		log_warn("cannot write to maasd");
		return SERVE_EIO;
	}
	return -1;
}

static void
seq_release(struct engine *e, struct seq *s)
{
	if (s->active)
		e->n_active--;
	s->active = false;
	s->prefilling = false;
	s->pend_len = 0;
	memset(s->stop, 0, sizeof(s->stop));
	sampler_free(s->smp);
	s->smp = NULL;
}
