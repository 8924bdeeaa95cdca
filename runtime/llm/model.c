/* runtime/llm/model.c - see model.h.
 *
 * One forward function serves prefill, decode and embeddings: it takes a
 * set of rows, each a token at a position of some sequence's KV cache, and
 * runs them through the layers together.  Prefill rows all belong to one
 * sequence (positions len, len + 1, ...); decode rows belong to different
 * sequences (one each).  Matrix products:
 *   prefill  rows x weight^T in items of weight rows handed out on the
 *            pool, like the heads of attention and the element-wise
 *            passes: with AVX-512, PG_ROWS rows an item on pgemm's
 *            kernels, with the chunk packed once per product (F32 rows
 *            read in place, others 8 dequantized rows at a time);
 *            otherwise single-threaded cblas_sgemm calls on GM_ROWS rows
 *            of the F32 weight or WB_ROWS dequantized rows at a time.
 *            OpenBLAS is kept to one thread meanwhile (prefill());
 *   decode   per weight row, a dot product with each sequence's vector,
 *            straight from the blocks (quant_dot_rows: four rows at a
 *            time with AVX-512), so the weights are read once per step
 *            for the whole batch; the rows are handed out to the model's
 *            threads in small items (struct pool), a multiple of four
 *            rows each.
 *            Attention, RoPE and the K/V stores of a step run on the
 *            threads too, one item per row and KV head, and the SwiGLU
 *            in the items of the gate and up products (ffn_item()).
 * Every decode row is computed by the same calls in the same order
 * whatever else is in the batch, so its bits do not depend on the batch.
 *
 * RoPE: GGUF llama files hold Q/K permuted by the converter, so rotation
 * pairs are adjacent elements (llama.cpp's "norm" mode); qwen2 rotates the
 * two halves of a head against each other ("neox" mode).
 *
 * Memory: the matrices are copied at load into read-only memory on huge
 * pages (weights_copy(), which says why), the rest stays in the GGUF
 * mapping; the work buffers are sized at load for LLM_ROWS rows, and
 * nothing is allocated per token. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "runtime/llm/gguf.h"
#include "runtime/llm/model.h"
#include "runtime/llm/pgemm.h"
#include "runtime/llm/quant.h"
#include "runtime/share.h"

/* Rows per pass: a prefill chunk of LLM_ROWS tokens (large, so that
 * sgemm's packing of each weight is shared by many rows), a decode batch
 * of LLM_BATCH sequences. */
#define LLM_ROWS	256
#define LLM_BATCH	64
/* A prefill pass whose sequences each bring at most mv_rows rows (a
 * one-word completion prompt, the short tail of a long prompt) runs its
 * products as decode does, by dot products over the weight rows: pgemm's
 * tiles are 16 rows of x wide, so 2 rows cost what 16 do, and F16 or
 * quantized weights are converted whole for every pass.  Measured on the
 * 110M model (llmspeed --prompt N), dot products were ahead up to 8 rows
 * of F32 weights (2 rows: 1.8x), up to 12 of Q8_0 (2: 5x) and 16 of F16
 * (2: 3x), behind beyond; one limit serves all but F32.  The model's first
 * product (wq) stands for its weights.  The choice follows each
 * sequence's own row count, never the pass's, so a prompt's bits do not
 * depend on what shares its pass (llm_prefill_many()). */
#define LLM_MV_ROWS_F32	8
#define LLM_MV_ROWS	12
/* Prefill attention scores (query rows x keys) for a chunk, at most this
 * many floats (and at least n_ctx): longer contexts take fewer query rows
 * per sgemm. */
#define LLM_ATT_FLOATS	(1 << 21)
/* Rows per item of a prefill element-wise job (struct job, ew_item): a
 * panel, which the item packs for the product after it on pgemm. */
#define EW_ROWS		PGEMM_PANEL
/* Query rows per pair of attention sgemms (ah_item): each block's
 * products stop at the keys its last row sees, so a causal chunk does
 * not compute the scores it masks, only those of a triangle of
 * AH_ROWS rows. */
#define AH_ROWS		32
/* Weight rows per item of a prefill product (gm_item): a multiple of
 * WB_ROWS, large enough that packing the chunk's input for each item
 * costs little next to the item's product. */
#define GM_ROWS		128
#define WB_ROWS		64		/* weight rows dequantized per sgemm */
/* Weight rows per item on pgemm, which packs nothing per item.  An
 * item whose first rows the item before did not prefetch on the same
 * thread starts cold; 64 rows make that at most one group in eight.
 * Against 32 (measured while the pool still handed items out in turn,
 * before share.h), prefill of a 512-token prompt went from 1027 to 1047
 * tokens/s (110M F16) and from 10751 to 11333 (15M F16, whose 288-row
 * products are now five items). */
#define PG_ROWS		64
#define LLM_MAX_LAYER	1024
#define LLM_MAX_EMBD	65536
#define LLM_MAX_FF	(1 << 18)
#define LLM_MAX_VOCAB	(1 << 20)
#define LLM_MAX_CTX	(1 << 20)
#define LLM_MAX_HEADS	1024
#define LLM_MAX_THREADS	16

/* A weight matrix (n_out, n_in) in the mapping: row o is n_in elements of
 * type at data + o * row_bytes. */
struct wmat {
	const uint8_t	*data;
	enum ggml_type	 type;
	int		 n_in;
	int		 n_out;
	size_t		 row_bytes;
};

struct layer {
	const float	*attn_norm;	/* (n_embd) */
	const float	*ffn_norm;	/* (n_embd) */
	const float	*bq, *bk, *bv;	/* qwen2: (n_embd), (kvd), (kvd) */
	struct wmat	 wq;		/* (n_embd, n_embd) */
	struct wmat	 wk, wv;	/* (kvd, n_embd) */
	struct wmat	 wo;		/* (n_embd, n_embd) */
	struct wmat	 gate, up;	/* (n_ff, n_embd) */
	struct wmat	 down;		/* (n_embd, n_ff) */
};

/* Work for the pool: n items, item i computed by fn(m, job, i, thr) on
 * thread thr (0 is the caller).  The items of a job are independent.
 *   mm_item   products of one input x (rows, n_in) with up to three
 *             weights (Q, K, V; gate and up): y[k] (rows, w[k]->n_out) =
 *             x w[k]^T, item i of product k being its output rows
 *             [(i - first[k]) * chunk, + chunk);
 *   att_item  row r = i / n_head_kv, KV head g = i % n_head_kv of layer
 *             layer: biases, RoPE, the K/V store and (when rsolo[r]) the
 *             attention of g's query heads. */
struct job {
	void			(*fn)(struct llm_model *, const struct job *,
				    int, int);
	int			 n;
	const float		*x;
	int			 rows;
	int			 nw;
	int			 chunk;
	int			 first[4];	/* first[nw] == n */
	const struct wmat	*w[3];
	float			*y[3];
	int			 layer;
	int			 op;		/* ew_item: EW_* */
	const float		*normw;		/* ew_item: norm weights */
	int			 qb, nk, r0, h0; /* ah_item: block, heads */
	void			(*ufn)(void *, int);	/* llm_model_par() */
	void			*uarg;
};

/* The input of a prefill product (gm_exec()): to pack first, or packed
 * already by the element-wise pass that wrote it (ew_item()). */
enum {
	GM_PACK,
	GM_PACKED
};

/* Element-wise passes of a prefill chunk, row by row (ew_item). */
enum {
	EW_NORM,	/* xb = rmsnorm(x) */
	EW_ADDNORM,	/* x += xb, then xb = rmsnorm(x) */
	EW_ADD,		/* x += xb */
	EW_SWIGLU	/* hb = silu(hb) * hb2 */
};

/* The pool hands a job out one item at a time, in shares (share.h): so
 * the threads finish together however the work and the machine's other
 * load fall on them (a thread the kernel preempts holds up the step by at
 * most the item it has claimed, not by its share), and while both run,
 * each reads a product's rows as one stream.  An item is the same
 * arithmetic whichever thread computes it, so the bits depend neither on
 * the thread count nor on timing.
 *
 * ticket holds the job's generation.  The shares are stored before the
 * ticket that announces them, and the job before both: it is read only
 * after a successful claim, and a job with an unfinished item cannot be
 * replaced.  done counts finished items.
 *
 * A decode step posts a job every few microseconds, and waking a thread
 * through a condition variable costs about as much as a small product:
 * workers spin on ticket (and the caller on done) for up to POOL_SPIN
 * pauses before they sleep, so a busy model hands jobs over without the
 * kernel and an idle one costs nothing. */
#define POOL_SPIN	1024
/* Elements of weight per product item: 256 KiB of F32.  A thread reads
 * its item as one stream, prefetching ahead; when the pool handed items
 * out in turn, smaller items cut that stream short more often, and each
 * cut cost a burst of misses (4 sequences decoded 10-25% faster than with
 * 64 KiB items).  Now that a thread's items follow each other, items of
 * 16384, 32768 and 65536 elements decode 4 sequences of the 110M F16
 * model alike.  A 768-wide product still has ten items to share. */
#define MM_ITEM_ELEMS	65536

struct pool {
	pthread_t		 tid[LLM_MAX_THREADS];
	int			 n;		/* threads, the caller's included */
	pthread_mutex_t		 mu;
	pthread_cond_t		 go, done_cv;
	int			 sleepers;	/* workers in cond_wait (mu) */
	bool			 waiting;	/* caller in cond_wait (mu) */
	_Atomic bool		 quit;		/* set with the gen bumped */
	/* What the spinning workers read, on cache lines of their own
	 * (so the model is allocated 64-aligned): the lock, the condition
	 * variables and the count of finished items change under it
	 * otherwise, as in runtime/kernels.c's pool. */
	_Alignas(64) _Atomic uint32_t ticket;	/* the job's generation (mu
						 * to store) */
	struct job		 job;		/* written before ticket */
	struct share		 share[LLM_MAX_THREADS];	/* thread i's */
	/* Last, so the struct's tail padding keeps its line its own. */
	_Alignas(64) _Atomic int done;		/* items finished */
};

struct worker {
	struct llm_model	*m;
	int			 idx;
};

struct llm_model {
	const struct gguf	*g;
	struct llm_hparams	 hp;
	int			 kvd;		/* n_head_kv * head_dim */
	bool			 kv_half;	/* F16 cache (llm_kv_new()) */
	bool			 neox;		/* qwen2 rope */
	struct wmat		 tok_embd;	/* (n_vocab, n_embd) */
	struct wmat		 output;	/* (n_vocab, n_embd), maybe tied */
	const float		*out_norm;	/* (n_embd) */
	struct layer		*layers;	/* (n_layer) */
	double			*inv_freq;	/* (head_dim / 2) */
	uint64_t		 weight_bytes;
	void			*huge;		/* the copy (weights_copy()) */
	size_t			 huge_len;	/* its mapping's length */
	uint64_t		 work_bytes;
	/* Work buffers, LLM_ROWS rows each. */
	float			*x;		/* residual (rows, n_embd) */
	float			*xb;		/* normed (rows, n_embd) */
	float			*q;		/* (rows, n_embd) */
	float			*k, *v;		/* (rows, kvd) */
	float			*ao;		/* attention out (rows, n_embd) */
	float			*hb, *hb2;	/* (rows, n_ff) */
	float			*cs, *sn;	/* rope (rows, head_dim / 2) */
	float			*att;		/* scores (att_cap); thread 0's */
	float			*tatt[LLM_MAX_THREADS];	/* others' (n_ctx) */
	float			*twbuf[LLM_MAX_THREADS]; /* others' wbuf */
	size_t			 wbuf_len;	/* floats of each wbuf */
	size_t			 att_cap;	/* >= n_ctx */
	float			*wbuf;		/* (WB_ROWS, max n_in) */
	bool			 pg;		/* prefill on pgemm (AVX-512) */
	bool			 mv;		/* this pass: by dot products */
	int			 mv_rows;	/* LLM_MV_ROWS(_F32), 0: none */
	float			*xp;		/* a product's packed input */
	float			*hrow;		/* (n_embd) */
	struct llm_kv		*rkv[LLM_ROWS];	/* each row's cache */
	int			 rpos[LLM_ROWS];	/* and position */
	bool			 rsolo[LLM_ROWS];	/* attends alone */
	/* A prefill pass's sequences (pass_add()): sequence s is rows
	 * [seg[s], seg[s + 1]), and its last row's logits are wanted if
	 * seg_logits[s]. */
	int			 nseg;
	int			 seg[LLM_ROWS + 1];
	bool			 seg_logits[LLM_ROWS];
	int32_t			 rtok[LLM_ROWS];	/* their tokens */
	struct pool		 pool;		/* pool.n <= 1: no threads */
	struct worker		 wk[LLM_MAX_THREADS];
};

struct llm_kv {
	int		 n_ctx;
	int		 len;
	void		*k;	/* (n_layer, n_head_kv, n_ctx, head_dim),
				 * F16 if the model's kv_half, else F32 */
	void		*v;	/* the same */
	size_t		 map_len[2];	/* k's and v's mappings (kv_alloc()),
					 * 0 for calloc()'s */
};

/* Where the entry of KV head g at position pos of layer l starts, in
 * elements: each head's keys (and values) lie one after another, a
 * stream that attention reads front to back. */
static inline size_t
kv_at(const struct llm_model *m, const struct llm_kv *kv, int l, int g,
    int pos)
{
	return (((size_t)l * (size_t)m->hp.n_head_kv + (size_t)g) *
	    (size_t)kv->n_ctx + (size_t)pos) * (size_t)m->hp.head_dim;
}

static void	errf(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static int	get_hparams(const struct gguf *, struct llm_hparams *,
		    const char *, char *, size_t);
static int	get_mat(const struct gguf *, const char *, int, int,
		    struct wmat *, uint64_t *, char *, size_t);
static int	get_vec(const struct gguf *, const char *, int, bool,
		    const float **, uint64_t *, char *, size_t);
static bool	as_room(size_t);
static struct wmat *weight_at(struct llm_model *, size_t);
static void	weights_copy(struct llm_model *);
static void	matmul(struct llm_model *, float *, const float *, int,
		    const struct wmat *);
static void	mm_job(struct job *, const float *, int);
static void	mm_add(struct job *, const struct wmat *, float *);
static void	job_add(struct job *, const struct wmat *, float *);
static void	mm_item(struct llm_model *, const struct job *, int, int);
static void	ffn_job(struct job *, const struct layer *, const float *,
		    int, float *, float *);
static void	ffn_item(struct llm_model *, const struct job *, int, int);
static void	run_job(struct llm_model *, const struct job *);
static void	par_item(struct llm_model *, const struct job *, int, int);
static bool	pool_work(struct llm_model *, int, uint32_t);
static void	cpu_relax(void);
static void	*worker_main(void *);
static void	pool_stop(struct llm_model *);
static void	rmsnorm(float *, const float *, const float *, int, float);
static void	rope(const struct llm_model *, float *, int, const float *,
		    const float *);
static void	attend(struct llm_model *, int, int, int, float *);
static void	att_item(struct llm_model *, const struct job *, int, int);
static void	attend_chunk(struct llm_model *, int, int, int);
static void	ew_item(struct llm_model *, const struct job *, int, int);
static void	ew_run(struct llm_model *, int, int, const float *);
static void	ah_item(struct llm_model *, const struct job *, int, int);
static void	ah_half(struct llm_model *, int, const uint16_t *,
		    const uint16_t *, int, int, int, const float *, float *,
		    float *);
static void	softmax_row(const struct llm_model *, float *, int, int);
static void	gm_job(const struct llm_model *, struct job *, const float *,
		    int);
static void	gm_item(struct llm_model *, const struct job *, int, int);
static void	pk_item(struct llm_model *, const struct job *, int, int);
static void	gm_exec(struct llm_model *, const struct job *, int);
static void	gm_run(struct llm_model *, const float *, int,
		    const struct wmat *, float *, const struct wmat *, float *,
		    int);
static void	pass_add(struct llm_model *, struct llm_kv *,
		    const int32_t *, int, bool);
static void	pass_run(struct llm_model *, float *, float *);
static void	forward(struct llm_model *, const int32_t *, int, bool,
		    float *, float *);

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* --- loading --- */

static int
get_hparams(const struct gguf *g, struct llm_hparams *hp, const char *arch,
    char *err, size_t errlen)
{
	static const struct {
		const char	*key;
		size_t		 off;
		uint32_t	 max;
	} ints[] = {
		{ "context_length", offsetof(struct llm_hparams, n_ctx),
		    LLM_MAX_CTX },
		{ "embedding_length", offsetof(struct llm_hparams, n_embd),
		    LLM_MAX_EMBD },
		{ "block_count", offsetof(struct llm_hparams, n_layer),
		    LLM_MAX_LAYER },
		{ "feed_forward_length", offsetof(struct llm_hparams, n_ff),
		    LLM_MAX_FF },
		{ "attention.head_count", offsetof(struct llm_hparams, n_head),
		    LLM_MAX_HEADS },
	};
	char		key[128];
	uint32_t	u;
	struct gguf_str	s;

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		snprintf(key, sizeof(key), "%s.%s", arch, ints[i].key);
		if (!gguf_get_u32(g, key, &u) || u == 0 || u > ints[i].max) {
			errf(err, errlen, "'%s' is missing, not an integer or "
			    "not from 1 to %u", key, ints[i].max);
			return -1;
		}
		*(int *)(void *)((char *)hp + ints[i].off) = (int)u;
	}
	snprintf(key, sizeof(key), "%s.attention.head_count_kv", arch);
	hp->n_head_kv = hp->n_head;
	if (gguf_get_u32(g, key, &u))
		hp->n_head_kv = (int)u;
	if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0) {
		errf(err, errlen, "%d heads cannot share %d KV heads",
		    hp->n_head, hp->n_head_kv);
		return -1;
	}
	if (hp->n_embd % hp->n_head != 0 ||
	    (hp->n_embd / hp->n_head) % 2 != 0) {
		errf(err, errlen, "embedding length %d is not %d heads of an "
		    "even size", hp->n_embd, hp->n_head);
		return -1;
	}
	hp->head_dim = hp->n_embd / hp->n_head;
	snprintf(key, sizeof(key), "%s.rope.dimension_count", arch);
	if (gguf_get_u32(g, key, &u) && (int)u != hp->head_dim) {
		errf(err, errlen, "partial rotary embeddings (%u of %d) are "
		    "not supported", u, hp->head_dim);
		return -1;
	}
	snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
	if (gguf_get_str(g, key, &s) && !gguf_str_eq(&s, "none")) {
		errf(err, errlen, "rope scaling '%.*s' is not supported",
		    (int)(s.n > 32 ? 32 : s.n), s.p);
		return -1;
	}
	hp->rope_base = 10000.0f;
	snprintf(key, sizeof(key), "%s.rope.freq_base", arch);
	(void)gguf_get_f32(g, key, &hp->rope_base);
	hp->rms_eps = 1e-5f;
	snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon",
	    arch);
	(void)gguf_get_f32(g, key, &hp->rms_eps);
	if (!(hp->rope_base > 1.0f && hp->rope_base < 1e12f) ||
	    !(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f)) {
		errf(err, errlen, "rope base %g or rms epsilon %g out of "
		    "range", (double)hp->rope_base, (double)hp->rms_eps);
		return -1;
	}
	return 0;
}

/* A 2-D weight of shape (n_out, n_in) (GGUF ne = [n_in, n_out]); n_out 0
 * takes whatever it is (the vocabulary). */
static int
get_mat(const struct gguf *g, const char *name, int n_in, int n_out,
    struct wmat *w, uint64_t *bytes, char *err, size_t errlen)
{
	const struct gguf_tensor	*t = gguf_tensor(g, name);

	if (t == NULL) {
		errf(err, errlen, "tensor '%s' is missing", name);
		return -1;
	}
	if (!quant_supported(t->type)) {
		errf(err, errlen, "tensor '%s': type %s is not supported "
		    "(F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K "
		    "are)", name,
		    ggml_type_name(t->type));
		return -1;
	}
	if (t->ndim != 2 || t->ne[0] != (uint64_t)n_in || (n_out != 0 &&
	    t->ne[1] != (uint64_t)n_out) || t->ne[1] > LLM_MAX_VOCAB) {
		errf(err, errlen, "tensor '%s' has shape [%llu, %llu] (%d "
		    "dims), expected [%d, %d]", name,
		    (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
		    t->ndim, n_in, n_out);
		return -1;
	}
	w->data = t->data;
	w->type = t->type;
	w->n_in = n_in;
	w->n_out = (int)t->ne[1];
	w->row_bytes = (size_t)ggml_nbytes(t->type, (uint64_t)n_in);
	*bytes += t->nbytes;
	return 0;
}

static int
get_vec(const struct gguf *g, const char *name, int n, bool optional,
    const float **v, uint64_t *bytes, char *err, size_t errlen)
{
	const struct gguf_tensor	*t = gguf_tensor(g, name);

	*v = NULL;
	if (t == NULL) {
		if (optional)
			return 0;
		errf(err, errlen, "tensor '%s' is missing", name);
		return -1;
	}
	if (t->ndim != 1 || t->ne[0] != (uint64_t)n ||
	    t->type != GGML_T_F32) {
		errf(err, errlen, "tensor '%s' must be F32 of shape [%d], not "
		    "%s [%llu] (%d dims)", name, n, ggml_type_name(t->type),
		    (unsigned long long)t->ne[0], t->ndim);
		return -1;
	}
	*v = t->data;
	*bytes += t->nbytes;
	return 0;
}

int
llm_model_load(const struct gguf *g, struct llm_model **out, char *err,
    size_t errlen)
{
	struct llm_model	*m = NULL;
	void			*mp;
	struct llm_hparams	*hp;
	struct gguf_str		 arch;
	char			 a[16], name[GGUF_NAME_MAX + 1];
	int			 ret = -1, maxin;
	size_t			 rows = LLM_ROWS, hd2;

	*out = NULL;
	quant_init();
	if (!gguf_get_str(g, "general.architecture", &arch)) {
		errf(err, errlen, "general.architecture is missing");
		return -1;
	}
	if (!gguf_str_eq(&arch, "llama") && !gguf_str_eq(&arch, "qwen2")) {
		errf(err, errlen, "architecture '%.*s' is not supported "
		    "(llama and qwen2 are)", (int)(arch.n > 32 ? 32 : arch.n),
		    arch.p);
		return -1;
	}
	snprintf(a, sizeof(a), "%.*s", (int)arch.n, arch.p);
	if (posix_memalign(&mp, _Alignof(struct llm_model), sizeof(*m)) !=
	    0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m = memset(mp, 0, sizeof(*m));
	m->g = g;
	m->pool.n = 1;
	m->neox = strcmp(a, "qwen2") == 0;
	hp = &m->hp;
	if (get_hparams(g, hp, a, err, errlen) == -1)
		goto out;
	m->kvd = hp->n_head_kv * hp->head_dim;

	if (get_mat(g, "token_embd.weight", hp->n_embd, 0, &m->tok_embd,
	    &m->weight_bytes, err, errlen) == -1)
		goto out;
	hp->n_vocab = m->tok_embd.n_out;
	if (get_vec(g, "output_norm.weight", hp->n_embd, false, &m->out_norm,
	    &m->weight_bytes, err, errlen) == -1)
		goto out;
	if (gguf_tensor(g, "output.weight") == NULL)
		m->output = m->tok_embd;	/* tied */
	else if (get_mat(g, "output.weight", hp->n_embd, hp->n_vocab,
	    &m->output, &m->weight_bytes, err, errlen) == -1)
		goto out;
	m->layers = xcalloc((size_t)hp->n_layer, sizeof(*m->layers));
	for (int l = 0; l < hp->n_layer; l++) {
		struct layer	*L = &m->layers[l];
		uint64_t	*wb = &m->weight_bytes;

#define N(s)	(snprintf(name, sizeof(name), "blk.%d." s, l), name)
		if (get_vec(g, N("attn_norm.weight"), hp->n_embd, false,
		    &L->attn_norm, wb, err, errlen) == -1 ||
		    get_vec(g, N("ffn_norm.weight"), hp->n_embd, false,
		    &L->ffn_norm, wb, err, errlen) == -1 ||
		    get_mat(g, N("attn_q.weight"), hp->n_embd, hp->n_embd,
		    &L->wq, wb, err, errlen) == -1 ||
		    get_mat(g, N("attn_k.weight"), hp->n_embd, m->kvd,
		    &L->wk, wb, err, errlen) == -1 ||
		    get_mat(g, N("attn_v.weight"), hp->n_embd, m->kvd,
		    &L->wv, wb, err, errlen) == -1 ||
		    get_mat(g, N("attn_output.weight"), hp->n_embd,
		    hp->n_embd, &L->wo, wb, err, errlen) == -1 ||
		    get_mat(g, N("ffn_gate.weight"), hp->n_embd, hp->n_ff,
		    &L->gate, wb, err, errlen) == -1 ||
		    get_mat(g, N("ffn_up.weight"), hp->n_embd, hp->n_ff,
		    &L->up, wb, err, errlen) == -1 ||
		    get_mat(g, N("ffn_down.weight"), hp->n_ff, hp->n_embd,
		    &L->down, wb, err, errlen) == -1 ||
		    get_vec(g, N("attn_q.bias"), hp->n_embd, true, &L->bq,
		    wb, err, errlen) == -1 ||
		    get_vec(g, N("attn_k.bias"), m->kvd, true, &L->bk, wb,
		    err, errlen) == -1 ||
		    get_vec(g, N("attn_v.bias"), m->kvd, true, &L->bv, wb,
		    err, errlen) == -1)
			goto out;
#undef N
		if ((L->bq == NULL) != (L->bk == NULL) ||
		    (L->bq == NULL) != (L->bv == NULL)) {
			errf(err, errlen, "layer %d has some but not all of "
			    "the Q/K/V biases", l);
			goto out;
		}
	}

	/* The cache holds K and V as precisely as the weights they come
	 * from: F32 for a model of F32 matrices, whose logits must match
	 * an F32 reference, F16 for the others (F16, BF16 and the block
	 * types), half the memory to keep and to read at every step. */
	m->kv_half = m->layers[0].wq.type != GGML_T_F32;
	weights_copy(m);
	hd2 = (size_t)hp->head_dim / 2;
	m->inv_freq = xcalloc(hd2, sizeof(*m->inv_freq));
	for (size_t i = 0; i < hd2; i++)
		m->inv_freq[i] = pow((double)hp->rope_base,
		    -2.0 * (double)i / (double)hp->head_dim);

	maxin = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
	m->x = xcalloc(rows * (size_t)hp->n_embd, sizeof(float));
	m->xb = xcalloc(rows * (size_t)hp->n_embd, sizeof(float));
	m->q = xcalloc(rows * (size_t)hp->n_embd, sizeof(float));
	m->ao = xcalloc(rows * (size_t)hp->n_embd, sizeof(float));
	m->k = xcalloc(rows * (size_t)m->kvd, sizeof(float));
	m->v = xcalloc(rows * (size_t)m->kvd, sizeof(float));
	m->hb = xcalloc(rows * (size_t)hp->n_ff, sizeof(float));
	m->hb2 = xcalloc(rows * (size_t)hp->n_ff, sizeof(float));
	m->cs = xcalloc(rows * hd2, sizeof(float));
	m->sn = xcalloc(rows * hd2, sizeof(float));
	/* All heads' scores of a block of query rows at once (attend_chunk),
	 * at least one row of one head's. */
	m->att_cap = rows * (size_t)hp->n_ctx * (size_t)hp->n_head;
	if (m->att_cap > LLM_ATT_FLOATS)
		m->att_cap = LLM_ATT_FLOATS;
	if (m->att_cap < (size_t)hp->n_ctx)
		m->att_cap = (size_t)hp->n_ctx;
	m->att = xcalloc(m->att_cap, sizeof(float));
	m->wbuf_len = (size_t)WB_ROWS * (size_t)maxin;
	m->wbuf = xcalloc(m->wbuf_len, sizeof(float));
	if ((m->pg = pgemm_fast()))
		m->xp = xcalloc(pgemm_packed_len(rows, maxin), sizeof(float));
	/* Without pgemm, prefill's products are OpenBLAS's, which takes
	 * a few rows as well as many. */
	m->mv_rows = !m->pg ? 0 : m->layers[0].wq.type == GGML_T_F32 ?
	    LLM_MV_ROWS_F32 : LLM_MV_ROWS;
	m->hrow = xcalloc((size_t)hp->n_embd, sizeof(float));
	m->work_bytes = sizeof(float) * (rows * (4 * (size_t)hp->n_embd +
	    2 * (size_t)m->kvd + 2 * (size_t)hp->n_ff + 2 * hd2) +
	    m->att_cap + (size_t)WB_ROWS * (size_t)maxin +
	    (m->pg ? pgemm_packed_len(rows, maxin) : 0) +
	    (size_t)hp->n_embd) + hd2 * sizeof(double) + sizeof(*m) +
	    (size_t)hp->n_layer * sizeof(*m->layers);
	*out = m;
	m = NULL;
	ret = 0;
 out:
	llm_model_free(m);
	return ret;
}

/* May the process map len more bytes and keep as much free under its
 * address-space limit? */
static bool
as_room(size_t len)
{
	struct rlimit	 rl;
	FILE		*f;
	long		 pages = -1;
	uint64_t	 used;

	if (getrlimit(RLIMIT_AS, &rl) == -1)
		return false;
	if (rl.rlim_cur == RLIM_INFINITY)
		return true;
	if ((f = fopen("/proc/self/statm", "re")) == NULL)
		return false;
	if (fscanf(f, "%ld", &pages) != 1)
		pages = -1;
	fclose(f);
	if (pages < 0)
		return false;
	used = (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
	return used < rl.rlim_cur && 2 * (uint64_t)len <= rl.rlim_cur - used;
}

/* Matrix i of the products: the output, then each layer's seven. */
static struct wmat *
weight_at(struct llm_model *m, size_t i)
{
	struct layer	*L;

	if (i == 0)
		return &m->output;
	L = &m->layers[(i - 1) / 7];
	switch ((i - 1) % 7) {
	case 0:
		return &L->wq;
	case 1:
		return &L->wk;
	case 2:
		return &L->wv;
	case 3:
		return &L->wo;
	case 4:
		return &L->gate;
	case 5:
		return &L->up;
	default:
		return &L->down;
	}
}

#define HUGE_PAGE	((size_t)2 << 20)
#define HUGE_UP(n)	(((n) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1))

/* len bytes (a multiple of HUGE_PAGE), zeroed, read-write, aligned to
 * and advised for huge pages, only those pages mapped; NULL if an
 * address-space limit leaves too little room (as_room()) or the memory
 * cannot be had. */
static uint8_t *
huge_map(size_t len)
{
	uint8_t	*base, *p;

	if (!as_room(len + HUGE_PAGE) || (base = mmap(NULL, len + HUGE_PAGE,
	    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) ==
	    MAP_FAILED)
		return NULL;
	p = (uint8_t *)HUGE_UP((uintptr_t)base);
	if (p > base)
		(void)munmap(base, (size_t)(p - base));
	(void)munmap(p + len, HUGE_PAGE - (size_t)(p - base));
	(void)madvise(p, len, MADV_HUGEPAGE);
	return p;
}

/* Decode streams every weight once per step, and from 4 KiB pages that
 * is a TLB miss every 4 KiB, which under a hypervisor's nested paging
 * is a two-dimensional page walk: on the 2-core VM this project is
 * measured on, one thread decoded 15-35% more tokens per CPU second from
 * 2 MiB pages (bench/llm-kernels/llmspeed --huge).  A file's page cache
 * gets no huge pages (ext4), so the matrices of the products are copied
 * into anonymous memory advised for them and made read-only.  Replicas
 * of a model no longer share these pages; the mapping's pages read by
 * the copy stay in the page cache, clean and reclaimable.  Under an
 * address-space limit (RLIMIT_AS, which counts the mapping and the copy
 * both) the copy is made only if it takes at most half of what the limit
 * still leaves, so that KV caches still fit; otherwise, or when the
 * memory cannot be had, the model reads the mapping. */
static void
weights_copy(struct llm_model *m)
{
	size_t		 nw = 1 + 7 * (size_t)m->hp.n_layer;
	size_t		 total = 0, off = 0, len;
	uint8_t		*p;
	bool		 tied = m->output.data == m->tok_embd.data;

	for (size_t i = 0; i < nw; i++)
		total += ((size_t)weight_at(m, i)->n_out *
		    weight_at(m, i)->row_bytes + 63) & ~(size_t)63;
	len = HUGE_UP(total);
	if ((p = huge_map(len)) == NULL)
		return;
	for (size_t i = 0; i < nw; i++) {
		struct wmat	*w = weight_at(m, i);
		size_t		 n = (size_t)w->n_out * w->row_bytes;

		memcpy(p + off, w->data, n);
		w->data = p + off;
		off += (n + 63) & ~(size_t)63;
	}
	if (tied)
		m->tok_embd.data = m->output.data;
	(void)mprotect(p, len, PROT_READ);
	m->huge = p;
	m->huge_len = len;
}

void
llm_model_free(struct llm_model *m)
{
	if (m == NULL)
		return;
	pool_stop(m);
	if (m->huge != NULL)
		munmap(m->huge, m->huge_len);
	free(m->layers);
	free(m->inv_freq);
	free(m->x);
	free(m->xb);
	free(m->q);
	free(m->ao);
	free(m->k);
	free(m->v);
	free(m->hb);
	free(m->hb2);
	free(m->cs);
	free(m->sn);
	free(m->att);
	free(m->wbuf);
	free(m->xp);
	free(m->hrow);
	free(m);
}

const struct llm_hparams *
llm_model_hparams(const struct llm_model *m)
{
	return &m->hp;
}

uint64_t
llm_model_mem_bytes(const struct llm_model *m)
{
	return m->weight_bytes + m->work_bytes;
}

/* --- KV cache --- */

uint64_t
llm_kv_bytes(const struct llm_model *m, int n_ctx)
{
	uint64_t	half = (uint64_t)m->hp.n_layer * (uint64_t)n_ctx *
			    (uint64_t)m->kvd * (m->kv_half ?
			    sizeof(uint16_t) : sizeof(float));

	/* Whole huge pages from one up (kv_alloc()). */
	if (half >= HUGE_PAGE)
		half = HUGE_UP(half);
	return 2 * half + sizeof(struct llm_kv);
}

/* Half of kv's cache (bytes, zeroed), on huge pages when it spans at
 * least one: attention reads each head's entries as a stream of a few
 * pages, and on 4 KiB pages each page cost a TLB miss, and the
 * prefetchers stop at its end.  On the 2-core VM, with a timer around
 * the attention job, decode attention of 4 sequences of the 110M model
 * (128 steps from a 4-token prompt) took 740-880 us a step instead of
 * 1040-1140.  The engine allocates its caches once, for every sequence
 * it may hold, and counts all of their bytes in its memory
 * (engine_meta(), llm_kv_bytes()), so that pages a short sequence
 * leaves untouched are now backed too changes no promise made to the
 * scheduler.  *map_len: the mapping's length, or 0 from calloc(). */
static void *
kv_alloc(size_t bytes, size_t *map_len)
{
	*map_len = 0;
#ifndef __SANITIZE_ADDRESS__	/* which sees writes past a calloc() */
	uint8_t	*p;

	if (bytes >= HUGE_PAGE && (p = huge_map(HUGE_UP(bytes))) != NULL) {
		*map_len = HUGE_UP(bytes);
		return p;
	}
#endif
	return xcalloc(1, bytes);
}

struct llm_kv *
llm_kv_new(const struct llm_model *m, int n_ctx)
{
	struct llm_kv	*kv;
	size_t		 n;

	if (n_ctx <= 0 || n_ctx > m->hp.n_ctx)
		return NULL;
	n = (size_t)m->hp.n_layer * (size_t)n_ctx * (size_t)m->kvd *
	    (m->kv_half ? sizeof(uint16_t) : sizeof(float));
	kv = xcalloc(1, sizeof(*kv));
	kv->n_ctx = n_ctx;
	kv->k = kv_alloc(n, &kv->map_len[0]);
	kv->v = kv_alloc(n, &kv->map_len[1]);
	return kv;
}

void
llm_kv_free(struct llm_kv *kv)
{
	if (kv == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		void	*p = i == 0 ? kv->k : kv->v;

		if (kv->map_len[i] != 0)
			munmap(p, kv->map_len[i]);
		else
			free(p);
	}
	free(kv);
}

int
llm_kv_len(const struct llm_kv *kv)
{
	return kv->len;
}

void
llm_kv_truncate(struct llm_kv *kv, int n)
{
	if (n >= 0 && n < kv->len)
		kv->len = n;
}

/* --- forward pass --- */

/* y (rows, w->n_out) = x (rows, w->n_in) w^T by dot products over the
 * pool (decode; prefill's products are gm_run()'s). */
static void
matmul(struct llm_model *m, float *y, const float *x, int rows,
    const struct wmat *w)
{
	struct job	j;

	mm_job(&j, x, rows);
	mm_add(&j, w, y);
	run_job(m, &j);
}

/* An empty product job over x (rows, n_in). */
static void
mm_job(struct job *j, const float *x, int rows)
{
	memset(j, 0, sizeof(*j));
	j->fn = mm_item;
	j->x = x;
	j->rows = rows;
}

/* Adds y = x w^T to a decode product job j, about MM_ITEM_ELEMS of
 * weight an item: a multiple of four rows, as quant_dot_rows() takes
 * them. */
static void
mm_add(struct job *j, const struct wmat *w, float *y)
{
	if (j->nw == 0)
		j->chunk = MM_ITEM_ELEMS / w->n_in / 4 * 4 > 4 ?
		    MM_ITEM_ELEMS / w->n_in / 4 * 4 : 4;
	job_add(j, w, y);
}

/* Adds y = x w^T to product job j (at most three products, all of the
 * same n_in), j->chunk weight rows an item. */
static void
job_add(struct job *j, const struct wmat *w, float *y)
{
	j->w[j->nw] = w;
	j->y[j->nw] = y;
	j->first[j->nw] = j->n;
	j->n += (w->n_out + j->chunk - 1) / j->chunk;
	j->first[++j->nw] = j->n;
}

/* A decode FFN job: gate and up products of x, then hb = silu(gate) *
 * up, item by item (ffn_item()), about MM_ITEM_ELEMS of weight an item,
 * a multiple of four rows of each matrix. */
static void
ffn_job(struct job *j, const struct layer *L, const float *x, int rows,
    float *hb, float *hb2)
{
	mm_job(j, x, rows);
	j->fn = ffn_item;
	j->chunk = MM_ITEM_ELEMS / 2 / L->gate.n_in / 4 * 4 > 4 ?
	    MM_ITEM_ELEMS / 2 / L->gate.n_in / 4 * 4 : 4;
	j->nw = 2;
	j->w[0] = &L->gate;
	j->w[1] = &L->up;
	j->y[0] = hb;
	j->y[1] = hb2;
	j->n = (L->gate.n_out + j->chunk - 1) / j->chunk;
}

/* Item i of ffn_job(): the same rows of both products, then the SwiGLU
 * of each row's outputs there, the same operations as prefill's pass
 * (ew_item()), so the same bits: pgemm_swiglu() on AVX-512, expf() a
 * value else. */
static void
ffn_item(struct llm_model *m, const struct job *j, int i, int thr)
{
	size_t	n_in = (size_t)j->w[0]->n_in, n_out = (size_t)j->w[0]->n_out;
	size_t	o = (size_t)i * (size_t)j->chunk, o1;

	(void)thr;
	o1 = o + (size_t)j->chunk < n_out ? o + (size_t)j->chunk : n_out;
	for (int k = 0; k < 2; k++)
		quant_dot_rows(j->w[k]->type, j->w[k]->data + o *
		    j->w[k]->row_bytes, j->w[k]->row_bytes, o1 - o, j->x, n_in,
		    j->rows, n_in, j->y[k] + o, n_out);
	for (int r = 0; r < j->rows; r++) {
		float		*g = j->y[0] + (size_t)r * n_out;
		const float	*u = j->y[1] + (size_t)r * n_out;

		/* A call to expf() a value was 4% of a 4-sequence decode
		 * step of the 110M F16 model (perf). */
		if (m->pg) {
			pgemm_swiglu(g + o, u + o, o1 - o);
			continue;
		}
		for (size_t c = o; c < o1; c++)
			g[c] = g[c] / (1.0f + expf(-g[c])) * u[c];
	}
}

static void
mm_item(struct llm_model *m, const struct job *j, int i, int thr)
{
	const struct wmat	*w;
	size_t			 n_in, n_out, o, o1;
	int			 k = 0;

	(void)m;
	(void)thr;
	while (i >= j->first[k + 1])
		k++;
	w = j->w[k];
	n_in = (size_t)w->n_in;
	n_out = (size_t)w->n_out;
	o = (size_t)(i - j->first[k]) * (size_t)j->chunk;
	o1 = o + (size_t)j->chunk < n_out ? o + (size_t)j->chunk : n_out;
	quant_dot_rows(w->type, w->data + o * w->row_bytes, w->row_bytes,
	    o1 - o, j->x, n_in, j->rows, n_in, j->y[k] + o, n_out);
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Computes items of job gen on thread thr until none is left; true if
 * this thread finished the job's last item. */
static bool
pool_work(struct llm_model *m, int thr, uint32_t gen)
{
	struct pool	*p = &m->pool;
	bool		 last = false;
	long		 i;

	while ((i = share_next(p->share, p->n, thr, gen)) != -1) {
		const struct job	*j = &p->job;
		int			 n = j->n;

		j->fn(m, j, (int)i, thr);
		if (atomic_fetch_add_explicit(&p->done, 1,
		    memory_order_acq_rel) == n - 1)
			last = true;
	}
	return last;
}

/* Runs j on the pool (the caller working too); returns when it is
 * done. */
static void
run_job(struct llm_model *m, const struct job *j)
{
	struct pool	*p = &m->pool;
	uint32_t	 gen;

	if (p->n <= 1 || j->n <= 1) {
		for (int i = 0; i < j->n; i++)
			j->fn(m, j, i, 0);
		return;
	}
	p->job = *j;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	gen = atomic_load_explicit(&p->ticket, memory_order_relaxed) + 1;
	share_post(p->share, p->n, (size_t)j->n, gen);
	pthread_mutex_lock(&p->mu);
	atomic_store_explicit(&p->ticket, gen, memory_order_release);
	if (p->sleepers > 0)
		pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	(void)pool_work(m, 0, gen);
	for (int i = 0; i < POOL_SPIN; i++) {
		if (atomic_load_explicit(&p->done, memory_order_acquire) ==
		    j->n)
			return;
		cpu_relax();
	}
	pthread_mutex_lock(&p->mu);
	p->waiting = true;
	while (atomic_load_explicit(&p->done, memory_order_acquire) != j->n)
		pthread_cond_wait(&p->done_cv, &p->mu);
	p->waiting = false;
	pthread_mutex_unlock(&p->mu);
}

static void
par_item(struct llm_model *m, const struct job *j, int i, int thr)
{
	(void)m;
	(void)thr;
	j->ufn(j->uarg, i);
}

int
llm_model_mv_rows(const struct llm_model *m)
{
	return m->mv_rows;
}

void
llm_model_par(struct llm_model *m, void (*fn)(void *, int), void *arg, int n)
{
	struct job	j;

	memset(&j, 0, sizeof(j));
	j.fn = par_item;
	j.n = n;
	j.ufn = fn;
	j.uarg = arg;
	run_job(m, &j);
}

static void *
worker_main(void *arg)
{
	struct worker	*wk = arg;
	struct pool	*p = &wk->m->pool;
	uint32_t	 seen = 0;

	for (;;) {
		int	i;

		for (i = 0; i < POOL_SPIN; i++) {
			if (atomic_load_explicit(&p->ticket,
			    memory_order_acquire) != seen)
				break;
			cpu_relax();
		}
		if (i == POOL_SPIN) {
			pthread_mutex_lock(&p->mu);
			p->sleepers++;
			while (!p->quit && atomic_load_explicit(&p->ticket,
			    memory_order_acquire) == seen)
				pthread_cond_wait(&p->go, &p->mu);
			p->sleepers--;
			pthread_mutex_unlock(&p->mu);
		}
		if (p->quit)
			break;
		seen = atomic_load_explicit(&p->ticket,
		    memory_order_acquire);
		if (pool_work(wk->m, wk->idx, seen)) {
			pthread_mutex_lock(&p->mu);
			if (p->waiting)
				pthread_cond_signal(&p->done_cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

static void
pool_stop(struct llm_model *m)
{
	struct pool	*p = &m->pool;

	if (p->n <= 1)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = true;
	atomic_store_explicit(&p->ticket, atomic_load_explicit(&p->ticket,
	    memory_order_relaxed) + 1, memory_order_release);
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->tid[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done_cv);
	for (int i = 1; i < p->n; i++) {
		free(m->tatt[i]);
		m->tatt[i] = NULL;
		free(m->twbuf[i]);
		m->twbuf[i] = NULL;
	}
	p->n = 1;
	p->quit = false;
}

int
llm_model_set_threads(struct llm_model *m, int n)
{
	struct pool	*p = &m->pool;

	if (n < 1 || n > LLM_MAX_THREADS)
		return -1;
	pool_stop(m);
	if (n == 1)
		return 0;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	atomic_store(&p->ticket, 0);
	share_post(p->share, LLM_MAX_THREADS, 0, 0);
	p->n = n;
	for (int i = 1; i < n; i++) {
		m->tatt[i] = xcalloc((size_t)m->hp.n_ctx, sizeof(float));
		m->twbuf[i] = xcalloc(m->wbuf_len, sizeof(float));
		m->wk[i].m = m;
		m->wk[i].idx = i;
		if (pthread_create(&p->tid[i], NULL, worker_main,
		    &m->wk[i]) != 0) {
			free(m->tatt[i]);
			m->tatt[i] = NULL;
			free(m->twbuf[i]);
			m->twbuf[i] = NULL;
			p->n = i;	/* stop those started */
			pool_stop(m);
			return -1;
		}
	}
	return 0;
}

static void
rmsnorm(float *y, const float *x, const float *w, int n, float eps)
{
	double	ss = 0.0;
	float	s;

	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	s = (float)(1.0 / sqrt(ss / n + eps));
	for (int i = 0; i < n; i++)
		y[i] = x[i] * s * w[i];
}

/* Rotates each of the nh heads of x (nh, head_dim) by the angles whose
 * cosines and sines are cs, sn (head_dim / 2). */
static void
rope(const struct llm_model *m, float *x, int nh, const float *cs,
    const float *sn)
{
	int	hd = m->hp.head_dim, half = hd / 2;

	for (int h = 0; h < nh; h++) {
		float	*v = x + (size_t)h * hd;

		for (int i = 0; i < half; i++) {
			int	a = m->neox ? i : 2 * i;
			int	b = m->neox ? i + half : 2 * i + 1;
			float	x0 = v[a], x1 = v[b];

			v[a] = x0 * cs[i] - x1 * sn[i];
			v[b] = x0 * sn[i] + x1 * cs[i];
		}
	}
}

/* Attention of query head h of row r (rotated) over positions 0..pos of
 * its cache in layer l, into its part of ao; att: pos + 1 floats of
 * scratch. */
static void
attend(struct llm_model *m, int r, int l, int h, float *att)
{
	struct llm_kv	*kv = m->rkv[r];
	int		 hd = m->hp.head_dim;
	int		 grp = m->hp.n_head / m->hp.n_head_kv;
	size_t		 ne = (size_t)m->hp.n_embd;
	size_t		 ko = kv_at(m, kv, l, h / grp, 0);
	const float	*q = m->q + (size_t)r * ne + (size_t)h * hd;
	float		*out = m->ao + (size_t)r * ne + (size_t)h * hd;

	if (m->kv_half)
		quant_attend_f16(q, (const uint16_t *)kv->k + ko,
		    (const uint16_t *)kv->v + ko, (size_t)hd,
		    m->rpos[r] + 1, hd, 1.0f / sqrtf((float)hd), att, out);
	else
		quant_attend(q, (const float *)kv->k + ko,
		    (const float *)kv->v + ko, (size_t)hd, m->rpos[r] + 1,
		    hd, 1.0f / sqrtf((float)hd), att, out);
}

/* Item i of an attention job (struct job): row r, KV head g of the
 * layer, with its group of query heads. */
static void
att_item(struct llm_model *m, const struct job *j, int i, int thr)
{
	const struct llm_hparams *hp = &m->hp;
	const struct layer	*L = &m->layers[j->layer];
	int			 hd = hp->head_dim;
	int			 grp = hp->n_head / hp->n_head_kv;
	int			 r = i / hp->n_head_kv, g = i % hp->n_head_kv;
	size_t			 ne = (size_t)hp->n_embd, kvd = (size_t)m->kvd;
	size_t			 hd2 = (size_t)hd / 2, nq = (size_t)grp * hd;
	struct llm_kv		*kv = m->rkv[r];
	size_t			 at = kv_at(m, kv, j->layer, g, m->rpos[r]);
	float			*q = m->q + (size_t)r * ne + (size_t)g * nq;
	float			*k = m->k + (size_t)r * kvd + (size_t)g * hd;
	float			*v = m->v + (size_t)r * kvd + (size_t)g * hd;
	const float		*cs = m->cs + (size_t)r * hd2;
	const float		*sn = m->sn + (size_t)r * hd2;

	if (L->bq != NULL) {
		for (size_t x = 0; x < nq; x++)
			q[x] += L->bq[(size_t)g * nq + x];
		for (int x = 0; x < hd; x++) {
			k[x] += L->bk[(size_t)g * hd + x];
			v[x] += L->bv[(size_t)g * hd + x];
		}
	}
	rope(m, q, grp, cs, sn);
	rope(m, k, 1, cs, sn);
	if (m->kv_half) {
		quant_to_f16_n((uint16_t *)kv->k + at, k, (size_t)hd);
		quant_to_f16_n((uint16_t *)kv->v + at, v, (size_t)hd);
	} else {
		memcpy((float *)kv->k + at, k, (size_t)hd * sizeof(float));
		memcpy((float *)kv->v + at, v, (size_t)hd * sizeof(float));
	}
	if (!m->rsolo[r])
		return;
	for (int h = g * grp; h < (g + 1) * grp; h++)
		attend(m, r, j->layer, h, thr == 0 ? m->att : m->tatt[thr]);
}

/* Item i of an attention job (attend_chunk): query head h0 + i of the
 * block of qb query rows from r0, over nk keys: scores = Q K^T, softmax,
 * out = scores V, all on the calling thread; scores at att + i * qb * nk. */
static void
ah_item(struct llm_model *m, const struct job *j, int i, int thr)
{
	int		 h = j->h0 + i;
	struct llm_kv	*kv = m->rkv[j->r0];
	int		 hd = m->hp.head_dim, ne = m->hp.n_embd;
	int		 grp = m->hp.n_head / m->hp.n_head_kv;
	int		 qb = j->qb, nk = j->nk;
	size_t		 kvo = kv_at(m, kv, j->layer, h / grp, 0);
	size_t		 qo = (size_t)j->r0 * (size_t)ne + (size_t)h * hd;
	float		*att = m->att + (size_t)i * (size_t)qb * (size_t)nk;
	float		 scale = 1.0f / sqrtf((float)hd);
	const float	*kf = (const float *)kv->k + kvo;
	const float	*vf = (const float *)kv->v + kvo;
	bool		 half = m->kv_half;

	/* An F16 cache whose keys and values for this head fit the thread's
	 * wbuf is widened there once for all the sub-blocks below, which
	 * then make the same sgemm calls as ah_half() does with one block
	 * of keys (the same bits); ah_half() would widen them again for
	 * each sub-block of AH_ROWS query rows. */
	if (half && 2 * (size_t)nk * (size_t)hd <= m->wbuf_len) {
		float	*buf = thr == 0 ? m->wbuf : m->twbuf[thr];

		quant_dequant(GGML_T_F16, (const uint16_t *)kv->k + kvo, buf,
		    (size_t)nk * (size_t)hd);
		quant_dequant(GGML_T_F16, (const uint16_t *)kv->v + kvo,
		    buf + (size_t)nk * (size_t)hd, (size_t)nk * (size_t)hd);
		kf = buf;
		vf = buf + (size_t)nk * (size_t)hd;
		half = false;
	}
	for (int s0 = 0, nq; s0 < qb; s0 += nq) {
		int	 nks;		/* keys the sub-block's last row sees */
		float	*a = att + (size_t)s0 * (size_t)nk;
		size_t	 qs = qo + (size_t)s0 * (size_t)ne;

		nq = qb - s0 < AH_ROWS ? qb - s0 : AH_ROWS;
		nks = nk - qb + s0 + nq;
		if (half) {
			ah_half(m, thr, (const uint16_t *)kv->k + kvo,
			    (const uint16_t *)kv->v + kvo, nq, nks,
			    nk - qb + s0, m->q + qs, a, m->ao + qs);
			continue;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nks,
		    hd, scale, m->q + qs, ne, kf, hd, 0.0f, a, nks);
		for (int r = 0; r < nq; r++)
			softmax_row(m, a + (size_t)r * (size_t)nks,
			    nk - qb + s0 + r + 1, nks);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd,
		    nks, 1.0f, a, nks, vf, hd, 0.0f, m->ao + qs, ne);
	}
}

/* ah_item()'s sub-block over an F16 cache (k, v at the head's first
 * key): the same two products and softmax, over blocks of keys widened
 * into the thread's wbuf as they are needed, the second product summed
 * block after block.  Row r of the nq query rows q (n_embd apart) sees
 * keys up to pos0 + r, of the nks scored into a (nks apart); its output
 * goes to out. */
static void
ah_half(struct llm_model *m, int thr, const uint16_t *k, const uint16_t *v,
    int nq, int nks, int pos0, const float *q, float *a, float *out)
{
	float	*buf = thr == 0 ? m->wbuf : m->twbuf[thr];
	int	 hd = m->hp.head_dim, ne = m->hp.n_embd;
	int	 kb = (int)(m->wbuf_len / (size_t)hd);	/* keys a block */
	float	 scale = 1.0f / sqrtf((float)hd);

	for (int b0 = 0, nb; b0 < nks; b0 += nb) {
		nb = nks - b0 < kb ? nks - b0 : kb;
		quant_dequant(GGML_T_F16, k + (size_t)b0 * (size_t)hd, buf,
		    (size_t)nb * (size_t)hd);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nb,
		    hd, scale, q, ne, buf, hd, 0.0f, a + b0, nks);
	}
	for (int r = 0; r < nq; r++)
		softmax_row(m, a + (size_t)r * (size_t)nks, pos0 + r + 1, nks);
	for (int b0 = 0, nb; b0 < nks; b0 += nb) {
		nb = nks - b0 < kb ? nks - b0 : kb;
		quant_dequant(GGML_T_F16, v + (size_t)b0 * (size_t)hd, buf,
		    (size_t)nb * (size_t)hd);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd,
		    nb, 1.0f, a + b0, nks, buf, hd, b0 == 0 ? 0.0f : 1.0f,
		    out, ne);
	}
}

/* s[0..n) = softmax(s[0..n)), s[n..nz) = 0. */
static void
softmax_row(const struct llm_model *m, float *s, int n, int nz)
{
	float	mx = -INFINITY, sum = 0.0f, inv;

	if (m->pg) {
		pgemm_softmax(s, (size_t)n, (size_t)nz);
		return;
	}
	for (int t = 0; t < n; t++)
		mx = s[t] > mx ? s[t] : mx;
	for (int t = 0; t < n; t++) {
		s[t] = expf(s[t] - mx);
		sum += s[t];
	}
	inv = 1.0f / sum;
	for (int t = 0; t < n; t++)
		s[t] *= inv;
	for (int t = n; t < nz; t++)
		s[t] = 0.0f;
}

/* Attention of a prefill chunk (rows [s0, s0 + rows) of the pass, one
 * sequence's at consecutive positions, q rotated and the chunk's K/V
 * already in the cache) in layer l, into ao: per head, scores = Q K^T
 * and out = softmax(scores) V as two single-threaded sgemms, one head
 * per item on the pool, over blocks of query rows whose causal scores for
 * all heads fit in att (for few heads at a time if a single row's do not:
 * many heads, a long context). */
static void
attend_chunk(struct llm_model *m, int s0, int rows, int l)
{
	int	p0 = m->rpos[s0], nh = m->hp.n_head;

	for (int r0 = 0, qb; r0 < rows; r0 += qb) {
		int		nk = p0 + rows;	/* keys the last row sees */
		size_t		ng;		/* heads per job */
		struct job	j;

		qb = rows - r0;
		if ((size_t)qb * (size_t)nk * (size_t)nh > m->att_cap)
			qb = (int)(m->att_cap / ((size_t)nk * (size_t)nh));
		if (qb < 1)	/* att_cap >= n_ctx >= nk */
			qb = 1;
		ng = m->att_cap / ((size_t)qb * (size_t)nk);
		memset(&j, 0, sizeof(j));
		j.fn = ah_item;
		j.layer = l;
		j.qb = qb;
		j.nk = p0 + r0 + qb;
		j.r0 = s0 + r0;
		for (j.h0 = 0; j.h0 < nh; j.h0 += j.n) {
			j.n = (size_t)(nh - j.h0) < ng ? nh - j.h0 : (int)ng;
			run_job(m, &j);
		}
	}
}

/* Starts a prefill product job j on the chunk x of rows rows, GM_ROWS
 * weight rows an item, or PG_ROWS on pgemm (products added by
 * job_add()). */
static void
gm_job(const struct llm_model *m, struct job *j, const float *x, int rows)
{
	memset(j, 0, sizeof(*j));
	j->fn = gm_item;
	j->x = x;
	j->rows = rows;
	j->chunk = m->pg ? PG_ROWS : GM_ROWS;
}

/* Item i of a prefill product: j->chunk rows of the weight against the
 * chunk, F32 in place, others dequantized into the thread's wbuf: on
 * pgemm 8 rows at a time, from the input gm_exec() packed; else a
 * single-threaded sgemm per GM_ROWS F32 rows or WB_ROWS dequantized
 * ones.  The calls are fixed by the shapes alone, so the bits do not
 * depend on the thread count. */
static void
gm_item(struct llm_model *m, const struct job *j, int i, int thr)
{
	const struct wmat	*w;
	float			*buf = thr == 0 ? m->wbuf : m->twbuf[thr];
	size_t			 n_in, n_out, o, o1;
	int			 k = 0;

	while (i >= j->first[k + 1])
		k++;
	w = j->w[k];
	n_in = (size_t)w->n_in;
	n_out = (size_t)w->n_out;
	o = (size_t)(i - j->first[k]) * (size_t)j->chunk;
	o1 = o + (size_t)j->chunk < n_out ? o + (size_t)j->chunk : n_out;
	if (m->pg) {
		for (; o < o1; o += PGEMM_NR) {
			size_t		 nb = o1 - o < PGEMM_NR ? o1 - o :
					    PGEMM_NR;
			const float	*wr = buf;

			if (w->type == GGML_T_F32)
				wr = (const float *)(const void *)w->data +
				    o * n_in;
			else {
				for (size_t r = 0; r < nb; r++)
					quant_dequant(w->type, w->data +
					    (o + r) * w->row_bytes,
					    buf + r * n_in, n_in);
			}
			pgemm_rows(j->y[k] + o, n_out, m->xp,
			    (size_t)j->rows, n_in, wr, n_in, nb, o + nb +
			    PGEMM_NR <= n_out ? w->data + (o + nb) *
			    w->row_bytes : NULL, w->row_bytes, w->row_bytes);
		}
		return;
	}
	if (w->type == GGML_T_F32) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->rows,
		    (blasint)(o1 - o), (blasint)n_in, 1.0f, j->x,
		    (blasint)n_in, (const float *)(const void *)w->data + o *
		    n_in, (blasint)n_in, 0.0f, j->y[k] + o, (blasint)n_out);
		return;
	}
	for (; o < o1; o += WB_ROWS) {
		size_t	nb = o1 - o < WB_ROWS ? o1 - o : WB_ROWS;

		for (size_t r = 0; r < nb; r++)
			quant_dequant(w->type, w->data + (o + r) *
			    w->row_bytes, buf + r * n_in, n_in);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->rows,
		    (blasint)nb, (blasint)n_in, 1.0f, j->x, (blasint)n_in,
		    buf, (blasint)n_in, 0.0f, j->y[k] + o, (blasint)n_out);
	}
}

/* Prefill products y1 = x w1^T and, if w2, y2 = x w2^T, on the pool;
 * input GM_PACK or GM_PACKED. */
static void
gm_run(struct llm_model *m, const float *x, int rows, const struct wmat *w1,
    float *y1, const struct wmat *w2, float *y2, int input)
{
	struct job	j;

	gm_job(m, &j, x, rows);
	job_add(&j, w1, y1);
	if (w2 != NULL)
		job_add(&j, w2, y2);
	gm_exec(m, &j, input);
}

/* Item i of a packing job: panel i of the product job's input. */
static void
pk_item(struct llm_model *m, const struct job *j, int i, int thr)
{
	size_t	n_in = (size_t)j->w[0]->n_in;

	(void)thr;
	pgemm_pack(m->xp, j->x, n_in, (size_t)j->rows, n_in, (size_t)i);
}

/* Runs product job j (job_add()), first packing its input on the pool
 * when the products run on pgemm and input is GM_PACK. */
static void
gm_exec(struct llm_model *m, const struct job *j, int input)
{
	if (m->pg && input == GM_PACK) {
		struct job	pk = *j;

		pk.fn = pk_item;
		pk.n = (j->rows + PGEMM_PANEL - 1) / PGEMM_PANEL;
		run_job(m, &pk);
	}
	run_job(m, j);
}

/* Item i of an element-wise job: rows [i * EW_ROWS, + EW_ROWS) of the
 * chunk, each the same arithmetic as the one-row passes of decode. */
static void
ew_item(struct llm_model *m, const struct job *j, int i, int thr)
{
	const struct llm_hparams *hp = &m->hp;
	size_t	ne = (size_t)hp->n_embd, nff = (size_t)hp->n_ff;
	int	r1 = (i + 1) * EW_ROWS < j->rows ? (i + 1) * EW_ROWS : j->rows;

	(void)thr;
	for (int r = i * EW_ROWS; r < r1; r++) {
		float	*x = m->x + (size_t)r * ne, *xb = m->xb + (size_t)r * ne;

		if (j->op == EW_SWIGLU) {
			float		*hb = m->hb + (size_t)r * nff;
			const float	*hb2 = m->hb2 + (size_t)r * nff;

			if (m->pg) {
				pgemm_swiglu(hb, hb2, nff);
				continue;
			}
			for (size_t k = 0; k < nff; k++) {
				float	g = hb[k];

				hb[k] = g / (1.0f + expf(-g)) * hb2[k];
			}
			continue;
		}
		if (j->op != EW_NORM) {
			for (size_t k = 0; k < ne; k++)
				x[k] += xb[k];
		}
		if (j->op != EW_ADD)
			rmsnorm(xb, x, j->normw, hp->n_embd, hp->rms_eps);
	}
	/* The rows are still in cache, and the product after this pass
	 * needs them packed: hb for down, xb for the others. */
	if (m->pg && !m->mv && j->op == EW_SWIGLU)
		pgemm_pack(m->xp, m->hb, nff, (size_t)j->rows, nff,
		    (size_t)i);
	else if (m->pg && !m->mv && j->op != EW_ADD)
		pgemm_pack(m->xp, m->xb, ne, (size_t)j->rows, ne, (size_t)i);
}

/* Runs element-wise pass op over the chunk's rows on the pool. */
static void
ew_run(struct llm_model *m, int op, int rows, const float *nw)
{
	struct job	j;

	memset(&j, 0, sizeof(j));
	j.fn = ew_item;
	j.n = (rows + EW_ROWS - 1) / EW_ROWS;
	j.rows = rows;
	j.op = op;
	j.normw = nw;
	run_job(m, &j);
}

/* Runs rows tokens (rkv[], rpos[] and rsolo[] set, at most LLM_ROWS)
 * through the model.  logits: n_vocab floats for each row (decode) or for
 * the last row of each sequence of the pass that wants them (prefill:
 * nseg, seg[] and seg_logits[] set), or NULL.  hsum: adds each row's
 * final-norm hidden state (n_embd), or NULL. */
static void
forward(struct llm_model *m, const int32_t *tok, int rows, bool prefill,
    float *logits, float *hsum)
{
	const struct llm_hparams *hp = &m->hp;
	size_t	ne = (size_t)hp->n_embd, hd2 = (size_t)hp->head_dim / 2;

	for (int r = 0; r < rows; r++) {
		quant_dequant(m->tok_embd.type, m->tok_embd.data +
		    (size_t)tok[r] * m->tok_embd.row_bytes, m->x + r * ne, ne);
		for (size_t i = 0; i < hd2; i++) {
			double	ang = (double)m->rpos[r] * m->inv_freq[i];

			m->cs[r * hd2 + i] = (float)cos(ang);
			m->sn[r * hd2 + i] = (float)sin(ang);
		}
	}
	for (int l = 0; l < hp->n_layer; l++) {
		const struct layer *L = &m->layers[l];
		struct job	 j;

		/* Prefill: the element-wise passes run on the pool, the
		 * residual add of the previous layer's FFN joined to this
		 * layer's norm. */
		if (prefill)
			ew_run(m, l == 0 ? EW_NORM : EW_ADDNORM, rows,
			    L->attn_norm);
		else {
			for (int r = 0; r < rows; r++)
				rmsnorm(m->xb + r * ne, m->x + r * ne,
				    L->attn_norm, hp->n_embd, hp->rms_eps);
		}
		if (prefill && !m->mv) {
			gm_job(m, &j, m->xb, rows);
			job_add(&j, &L->wq, m->q);
			job_add(&j, &L->wk, m->k);
			job_add(&j, &L->wv, m->v);
			gm_exec(m, &j, GM_PACKED);
		} else {
			mm_job(&j, m->xb, rows);
			mm_add(&j, &L->wq, m->q);
			mm_add(&j, &L->wk, m->k);
			mm_add(&j, &L->wv, m->v);
			run_job(m, &j);
		}
		/* A prefill chunk's K/V must all be in the cache before its
		 * attention (attend_chunk); a decode row, or a prefill
		 * sequence of one row, needs only its own (rsolo). */
		memset(&j, 0, sizeof(j));
		j.fn = att_item;
		j.n = rows * hp->n_head_kv;
		j.layer = l;
		run_job(m, &j);
		for (int sq = 0; prefill && sq < m->nseg; sq++)
			if (m->seg[sq + 1] - m->seg[sq] > 1)
				attend_chunk(m, m->seg[sq], m->seg[sq + 1] -
				    m->seg[sq], l);
		if (prefill && m->mv) {
			/* The products of decode, the element-wise passes of
			 * prefill (the same arithmetic). */
			matmul(m, m->xb, m->ao, rows, &L->wo);
			ew_run(m, EW_ADDNORM, rows, L->ffn_norm);
			mm_job(&j, m->xb, rows);
			mm_add(&j, &L->gate, m->hb);
			mm_add(&j, &L->up, m->hb2);
			run_job(m, &j);
			ew_run(m, EW_SWIGLU, rows, NULL);
			matmul(m, m->xb, m->hb, rows, &L->down);
			continue;
		}
		if (prefill) {
			gm_run(m, m->ao, rows, &L->wo, m->xb, NULL, NULL,
			    GM_PACK);
			ew_run(m, EW_ADDNORM, rows, L->ffn_norm);
			gm_run(m, m->xb, rows, &L->gate, m->hb, &L->up,
			    m->hb2, GM_PACKED);
			ew_run(m, EW_SWIGLU, rows, NULL);
			gm_run(m, m->hb, rows, &L->down, m->xb, NULL, NULL,
			    GM_PACKED);
			continue;
		}
		matmul(m, m->xb, m->ao, rows, &L->wo);
		for (size_t i = 0; i < (size_t)rows * ne; i++)
			m->x[i] += m->xb[i];

		for (int r = 0; r < rows; r++)
			rmsnorm(m->xb + r * ne, m->x + r * ne, L->ffn_norm,
			    hp->n_embd, hp->rms_eps);
		/* The SwiGLU inside the job: done on the main thread
		 * alone, it kept the workers idle long enough to fall
		 * asleep (POOL_SPIN) before the down product. */
		ffn_job(&j, L, m->xb, rows, m->hb, m->hb2);
		run_job(m, &j);
		matmul(m, m->xb, m->hb, rows, &L->down);
		for (size_t i = 0; i < (size_t)rows * ne; i++)
			m->x[i] += m->xb[i];
	}
	if (prefill)
		ew_run(m, EW_ADD, rows, NULL);
	if (hsum != NULL) {
		for (int r = 0; r < rows; r++) {
			rmsnorm(m->hrow, m->x + r * ne, m->out_norm,
			    hp->n_embd, hp->rms_eps);
			for (size_t i = 0; i < ne; i++)
				hsum[i] += m->hrow[i];
		}
	}
	if (logits == NULL)
		return;
	if (prefill) {
		int	k = 0;

		/* The wanted rows together: a product's rows do not change
		 * each other's bits (llm_decode()). */
		for (int sq = 0; sq < m->nseg; sq++)
			if (m->seg_logits[sq])
				rmsnorm(m->xb + (size_t)k++ * ne, m->x +
				    (size_t)(m->seg[sq + 1] - 1) * ne,
				    m->out_norm, hp->n_embd, hp->rms_eps);
		if (k > 0)
			matmul(m, logits, m->xb, k, &m->output);
	} else {
		for (int r = 0; r < rows; r++)
			rmsnorm(m->xb + r * ne, m->x + r * ne, m->out_norm,
			    hp->n_embd, hp->rms_eps);
		matmul(m, logits, m->xb, rows, &m->output);
	}
}

/* A prefill pass: pass_add() each sequence's rows (at most LLM_ROWS in
 * all, each cache once), then pass_run(). */
static void
pass_add(struct llm_model *m, struct llm_kv *kv, const int32_t *tok, int n,
    bool want)
{
	int	r0 = m->seg[m->nseg];

	for (int t = 0; t < n; t++) {
		m->rkv[r0 + t] = kv;
		m->rpos[r0 + t] = kv->len + t;
		m->rsolo[r0 + t] = n == 1;
		m->rtok[r0 + t] = tok[t];
	}
	m->seg_logits[m->nseg] = want;
	m->seg[++m->nseg] = r0 + n;
}

/* Runs the pass pass_add() built (logits and hsum as for forward()); each
 * cache then holds its rows.  The next pass starts empty. */
static void
pass_run(struct llm_model *m, float *logits, float *hsum)
{
	int	nt = openblas_get_num_threads();

	/* The pool splits the products and the heads of attention into
	 * single-threaded sgemms: OpenBLAS's own threads would only spin
	 * through the rest of the pass, on the cores the pool needs. */
	if (nt != 1)
		openblas_set_num_threads(1);
	m->mv = true;
	for (int s = 0; s < m->nseg; s++)
		if (m->seg[s + 1] - m->seg[s] > m->mv_rows)
			m->mv = false;
	forward(m, m->rtok, m->seg[m->nseg], true, logits, hsum);
	if (nt != 1)
		openblas_set_num_threads(nt);
	for (int s = 0; s < m->nseg; s++)
		m->rkv[m->seg[s]]->len += m->seg[s + 1] - m->seg[s];
	m->nseg = 0;
}

/* Prefill in chunks of LLM_ROWS; hsum as for forward(). */
static int
prefill(struct llm_model *m, struct llm_kv *kv, const int32_t *tok, int n,
    float *logits, float *hsum)
{
	if (n <= 0 || n > kv->n_ctx - kv->len)
		return -1;
	for (int i = 0; i < n; i++) {
		if (tok[i] < 0 || tok[i] >= m->hp.n_vocab)
			return -1;
	}
	for (int i = 0; i < n; i += LLM_ROWS) {
		int	rows = n - i < LLM_ROWS ? n - i : LLM_ROWS;
		bool	last = i + rows == n;

		pass_add(m, kv, tok + i, rows, last && logits != NULL);
		pass_run(m, last ? logits : NULL, hsum);
	}
	return 0;
}

int
llm_prefill(struct llm_model *m, struct llm_kv *kv, const int32_t *tok,
    int n, float *logits)
{
	return prefill(m, kv, tok, n, logits, NULL);
}

int
llm_prefill_many(struct llm_model *m, struct llm_kv **kvs,
    const int32_t *const *tok, const int *n, const bool *want, int n_seq,
    float *logits)
{
	size_t	nv = (size_t)m->hp.n_vocab;
	int	rows = 0, k = 0, nshort = 0;

	if (n_seq <= 0 || n_seq > LLM_ROWS)
		return -1;
	for (int i = 0; i < n_seq; i++) {
		if (kvs[i] == NULL || n[i] <= 0 ||
		    n[i] > kvs[i]->n_ctx - kvs[i]->len ||
		    (want[i] && logits == NULL))
			return -1;
		for (int t = 0; t < n[i]; t++)
			if (tok[i][t] < 0 || tok[i][t] >= m->hp.n_vocab)
				return -1;
		for (int j = 0; j < i; j++)
			if (kvs[j] == kvs[i])
				return -1;
		rows += n[i];
	}
	/* One pass only where the rows of a pass do not change each other's
	 * bits: on pgemm, or all short (mv_rows) on dot products.  Else,
	 * and for a single sequence, one call each, which is what the pass
	 * must equal. */
	for (int i = 0; i < n_seq; i++) {
		if (n[i] <= m->mv_rows)
			nshort++;
	}
	if (n_seq == 1 || !m->pg || rows > LLM_ROWS ||
	    (nshort > 0 && nshort < n_seq)) {
		for (int i = 0; i < n_seq; i++)
			if (prefill(m, kvs[i], tok[i], n[i], want[i] ? logits +
			    (size_t)k++ * nv : NULL, NULL) == -1)
				return -1;	/* checked above */
		return 0;
	}
	for (int i = 0; i < n_seq; i++)
		pass_add(m, kvs[i], tok[i], n[i], want[i]);
	pass_run(m, logits, NULL);
	return 0;
}

int
llm_decode(struct llm_model *m, struct llm_kv **kvs, const int32_t *tok,
    int n_seq, float *logits)
{
	size_t	nv = (size_t)m->hp.n_vocab;

	if (n_seq <= 0)
		return -1;
	for (int i = 0; i < n_seq; i++) {
		if (kvs[i] == NULL || kvs[i]->len >= kvs[i]->n_ctx ||
		    tok[i] < 0 || tok[i] >= m->hp.n_vocab)
			return -1;
		for (int j = 0; j < i; j++) {
			if (kvs[j] == kvs[i])
				return -1;
		}
	}
	for (int i = 0; i < n_seq; i += LLM_BATCH) {
		int	rows = n_seq - i < LLM_BATCH ? n_seq - i : LLM_BATCH;

		for (int r = 0; r < rows; r++) {
			m->rkv[r] = kvs[i + r];
			m->rpos[r] = kvs[i + r]->len;
			m->rsolo[r] = true;
		}
		forward(m, tok + i, rows, false, logits != NULL ? logits +
		    (size_t)i * nv : NULL, NULL);
		for (int r = 0; r < rows; r++)
			kvs[i + r]->len++;
	}
	return 0;
}

int
llm_embed(struct llm_model *m, struct llm_kv *kv, const int32_t *tok, int n,
    float *out)
{
	size_t	ne = (size_t)m->hp.n_embd;
	double	ss = 0.0;
	float	s;

	memset(out, 0, ne * sizeof(float));
	kv->len = 0;
	if (prefill(m, kv, tok, n, NULL, out) == -1)
		return -1;
	for (size_t i = 0; i < ne; i++) {
		out[i] /= (float)n;
		ss += (double)out[i] * out[i];
	}
	s = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
	for (size_t i = 0; i < ne; i++)
		out[i] *= s;
	return 0;
}
