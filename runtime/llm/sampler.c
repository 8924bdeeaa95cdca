/* runtime/llm/sampler.c - next-token choice for one sequence.
 *
 * Everything a step needs is allocated by sampler_new (n_vocab-sized
 * arrays), so sampling allocates nothing.  A step is O(n_vocab): bias and
 * penalties touch only the listed tokens, top_k is a quickselect, and
 * top_p sorts only as long a prefix of the distribution as it needs (64,
 * then 8 times more, ...).  Candidates are ordered by logit, ties to the
 * lower id, a total order, so the same logits and seed always give the
 * same token whatever the sort does internally.
 *
 * The generator is xoshiro256** seeded through splitmix64: our own, so
 * the text for a seed does not change with the C library. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "runtime/llm/pgemm.h"
#include "runtime/llm/sampler.h"

#define SAMPLER_TOP_P_FIRST	64	/* first prefix top_p sorts */

struct sampler {
	struct sampler_params p;	/* bias entries checked */
	int		 n_vocab;
	uint64_t	 rng[4];	/* xoshiro256** state */
	int32_t		*count;		/* (n_vocab) times each was generated */
	int32_t		*seen;		/* (n_vocab) distinct ones, in order */
	int		 n_seen;
	int32_t		*idx;		/* (n_vocab) candidate ids */
	float		*prob;		/* (n_vocab) unnormalized, by id */
};

static uint64_t	splitmix64(uint64_t *);
static uint64_t	rng_next(struct sampler *);
static double	rng_double(struct sampler *);
static bool	before(const float *, int32_t, int32_t);
static int	cmp_cand(const void *, const void *, void *);
static void	select_top(int32_t *, size_t, size_t, const float *);
static void	sort_top(int32_t *, size_t, size_t, const float *);
static int32_t	argmax(const float *, int);
static void	top_logprobs(const float *, int, int, double,
		    struct sampler_logprob *);

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
rng_next(struct sampler *s)
{
	uint64_t	*r = s->rng;
	uint64_t	 x = r[1] * 5, res, t;

	res = ((x << 7) | (x >> 57)) * 9;
	t = r[1] << 17;
	r[2] ^= r[0];
	r[3] ^= r[1];
	r[1] ^= r[2];
	r[0] ^= r[3];
	r[2] ^= t;
	r[3] = (r[3] << 45) | (r[3] >> 19);
	return res;
}

/* Uniform in [0, 1) with 53 random bits. */
static double
rng_double(struct sampler *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

struct sampler *
sampler_new(const struct sampler_params *p, int n_vocab)
{
	struct sampler	*s;
	uint64_t	 x;
	int		 i, n = 0;

	if (n_vocab <= 0)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->p = *p;
	s->n_vocab = n_vocab;
	/* keep only bias entries that name a token; the API layer has
	 * already refused the others */
	if (s->p.n_bias < 0)
		s->p.n_bias = 0;
	if (s->p.n_bias > SAMPLER_MAX_BIAS)
		s->p.n_bias = SAMPLER_MAX_BIAS;
	for (i = 0; i < s->p.n_bias; i++) {
		if (p->bias_tok[i] < 0 || p->bias_tok[i] >= n_vocab ||
		    !isfinite(p->bias_val[i]))
			continue;
		s->p.bias_tok[n] = p->bias_tok[i];
		s->p.bias_val[n++] = p->bias_val[i];
	}
	s->p.n_bias = n;
	if (s->p.top_logprobs < 0)
		s->p.top_logprobs = 0;
	if (s->p.top_logprobs > SAMPLER_MAX_TOP)
		s->p.top_logprobs = SAMPLER_MAX_TOP;
	if (s->p.top_logprobs > n_vocab)
		s->p.top_logprobs = n_vocab;
	x = p->seed;
	for (i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	s->count = xcalloc((size_t)n_vocab, sizeof(*s->count));
	s->seen = xcalloc((size_t)n_vocab, sizeof(*s->seen));
	s->idx = xcalloc((size_t)n_vocab, sizeof(*s->idx));
	s->prob = xcalloc((size_t)n_vocab, sizeof(*s->prob));
	return s;
}

void
sampler_free(struct sampler *s)
{
	if (s == NULL)
		return;
	free(s->count);
	free(s->seen);
	free(s->idx);
	free(s->prob);
	free(s);
}

void
sampler_accept(struct sampler *s, int32_t tok)
{
	if (tok < 0 || tok >= s->n_vocab)
		return;
	if (s->count[tok]++ == 0)
		s->seen[s->n_seen++] = tok;
}

/* Does a come before b: higher logit, or the same and a lower id? */
static bool
before(const float *lg, int32_t a, int32_t b)
{
	return lg[a] > lg[b] || (lg[a] == lg[b] && a < b);
}

static int
cmp_cand(const void *a, const void *b, void *arg)
{
	const float	*lg = arg;
	int32_t		 x = *(const int32_t *)a, y = *(const int32_t *)b;

	if (x == y)
		return 0;
	return before(lg, x, y) ? -1 : 1;
}

/* Moves the k first candidates of a[0..n) in the candidate order into
 * a[0..k), in no particular order (quickselect, median-of-three). */
static void
select_top(int32_t *a, size_t n, size_t k, const float *lg)
{
	size_t	lo = 0, hi = n, mid, i, st;
	int32_t	pv, tmp;

	while (lo < k && k < hi) {
		mid = lo + (hi - lo) / 2;
		/* median of a[lo], a[mid], a[hi-1] to a[hi-1] */
		if (before(lg, a[mid], a[lo])) {
			tmp = a[mid]; a[mid] = a[lo]; a[lo] = tmp;
		}
		if (before(lg, a[hi - 1], a[lo])) {
			tmp = a[hi - 1]; a[hi - 1] = a[lo]; a[lo] = tmp;
		}
		if (before(lg, a[mid], a[hi - 1])) {
			tmp = a[mid]; a[mid] = a[hi - 1]; a[hi - 1] = tmp;
		}
		pv = a[hi - 1];
		for (st = lo, i = lo; i < hi - 1; i++) {
			if (before(lg, a[i], pv)) {
				tmp = a[i]; a[i] = a[st]; a[st] = tmp;
				st++;
			}
		}
		a[hi - 1] = a[st];
		a[st] = pv;
		if (st < k)
			lo = st + 1;
		else if (st > k)
			hi = st;
		else
			break;
	}
}

/* a[0..k) becomes the k first candidates of a[0..n), sorted. */
static void
sort_top(int32_t *a, size_t n, size_t k, const float *lg)
{
	if (k < n)
		select_top(a, n, k, lg);
	qsort_r(a, k, sizeof(*a), cmp_cand, (void *)(uintptr_t)lg);
}

static int32_t
argmax(const float *lg, int n)
{
	int32_t	best = 0;
	int	i;

	for (i = 1; i < n; i++)
		if (lg[i] > lg[best])
			best = i;
	return best;
}

/* The k most likely tokens, most likely first, ties to the lower id; a
 * sorted insertion into k slots, O(n) for the usual logits. */
static void
top_logprobs(const float *lg, int n, int k, double lse,
    struct sampler_logprob *top)
{
	int	i, j, have = 0;

	for (i = 0; i < n; i++) {
		if (have == k && !before(lg, i, top[k - 1].tok))
			continue;
		j = have < k ? have++ : k - 1;
		for (; j > 0 && before(lg, i, top[j - 1].tok); j--)
			top[j] = top[j - 1];
		top[j].tok = i;
	}
	for (j = 0; j < have; j++)
		top[j].logprob = (float)((double)lg[top[j].tok] - lse);
}

int32_t
sampler_sample(struct sampler *s, float *lg, struct sampler_logprob *chosen,
    struct sampler_logprob *top)
{
	const struct sampler_params *p = &s->p;
	int		 n = s->n_vocab, i;
	size_t		 m, k, j, keep, mz;
	double		 lse = 0.0, z, cum, u;
	float		 mx, inv_t;
	int32_t		 tok, *idx = s->idx;

	/* the model's logits are finite; anything else must not break the
	 * candidate order below */
	for (i = 0; i < n; i++)
		if (isnan(lg[i]))
			lg[i] = -INFINITY;
	for (i = 0; i < p->n_bias; i++)
		lg[p->bias_tok[i]] += p->bias_val[i];
	/* OpenAI: mu[j] -= c[j] * alpha_frequency +
	 *     (c[j] > 0) * alpha_presence */
	for (i = 0; i < s->n_seen; i++)
		lg[s->seen[i]] -= (float)s->count[s->seen[i]] *
		    p->frequency_penalty + p->presence_penalty;

	if (chosen != NULL || (top != NULL && p->top_logprobs > 0)) {
		mx = lg[argmax(lg, n)];
		for (i = 0, z = 0.0; i < n && isfinite(mx); i++)
			z += exp((double)lg[i] - mx);
		lse = isfinite(mx) ? mx + log(z) : 0.0;
		if (top != NULL && p->top_logprobs > 0)
			top_logprobs(lg, n, p->top_logprobs, lse, top);
	}

	if (p->temperature <= 0.0f || p->top_k == 1) {
		tok = argmax(lg, n);
		goto done;
	}

	for (i = 0; i < n; i++)
		idx[i] = i;
	m = (size_t)n;
	if (p->top_k > 0 && (size_t)p->top_k < m) {
		select_top(idx, m, (size_t)p->top_k, lg);
		m = (size_t)p->top_k;
	}
	for (mx = lg[idx[0]], j = 1; j < m; j++)
		if (lg[idx[j]] > mx)
			mx = lg[idx[j]];
	if (!isfinite(mx)) {
		tok = argmax(lg, n);
		goto done;
	}
	inv_t = 1.0f / p->temperature;
	if (m == (size_t)n && pgemm_fast()) {
		/* No top_k: every token, idx[j] == j.  A vector exp: expf()
		 * one value at a time was most of a 16,000-token sampling,
		 * which took 1.7% of a 4-sequence step of the 110M model
		 * (perf). */
		pgemm_exp(s->prob, lg, m, mx, inv_t);
		for (j = 0, z = 0.0; j < m; j++)
			z += s->prob[j];
	} else
		for (j = 0, z = 0.0; j < m; j++) {
			s->prob[idx[j]] = expf((lg[idx[j]] - mx) * inv_t);
			z += s->prob[idx[j]];
		}
	mz = m;
	/* min_p keeps p >= min_p * p_max, a prefix of the candidate order
	 * like top_p's, so filtering it first changes nothing but the work
	 * top_p has left (whose mass still counts the whole top_k set) */
	if (p->min_p > 0.0f) {
		for (j = 0, k = 0; j < m; j++)
			if (s->prob[idx[j]] >= p->min_p)	/* p_max is 1 */
				idx[k++] = idx[j];
		m = k;
	}
	keep = m;
	if (p->top_p < 1.0f) {
		for (k = SAMPLER_TOP_P_FIRST;; k *= 8) {
			if (k > m)
				k = m;
			sort_top(idx, m, k, lg);
			for (j = 0, cum = 0.0; j < k; j++) {
				cum += s->prob[idx[j]];
				if (cum >= (double)p->top_p * z)
					break;
			}
			if (j < k) {
				keep = j + 1;
				break;
			}
			if (k == m)
				break;
		}
	}
	/* Unless min_p dropped candidates or top_p sorted them, z is
	 * already this sum: the same terms, added in the same order. */
	if (keep != mz || p->top_p < 1.0f)
		for (j = 0, z = 0.0; j < keep; j++)
			z += s->prob[idx[j]];
	u = rng_double(s) * z;
	tok = idx[keep - 1];
	for (j = 0, cum = 0.0; j < keep; j++) {
		cum += s->prob[idx[j]];
		if (u < cum) {
			tok = idx[j];
			break;
		}
	}
 done:
	if (chosen != NULL) {
		chosen->tok = tok;
		chosen->logprob = (float)((double)lg[tok] - lse);
	}
	return tok;
}
