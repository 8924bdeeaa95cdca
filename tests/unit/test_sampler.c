/* tests/unit/test_sampler.c - runtime/llm/sampler.c on small logit
 * vectors with exact expectations: greedy ties, logit_bias, OpenAI's
 * penalty formula, log-softmax logprobs and sorted top_logprobs, the
 * truncations (top_k, top_p, min_p) as sets of reachable tokens, and the
 * seeded generator (same seed, same draws; frequencies near the
 * distribution for a fixed seed, so the result cannot vary). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/llm/sampler.h"

int	main(void);

static struct sampler_params
params(float temp)
{
	struct sampler_params	p;

	memset(&p, 0, sizeof(p));
	p.temperature = temp;
	p.top_p = 1.0f;
	p.seed = 42;
	return p;
}

/* log-softmax of x[i] in double, the reference */
static double
ref_logprob(const float *x, int n, int i)
{
	double	mx = x[0], z = 0.0;
	int	k;

	for (k = 1; k < n; k++)
		if (x[k] > mx)
			mx = x[k];
	for (k = 0; k < n; k++)
		z += exp((double)x[k] - mx);
	return (double)x[i] - mx - log(z);
}

static void
test_greedy(void **state)
{
	struct sampler_params	 p = params(0.0f);
	struct sampler		*s = sampler_new(&p, 5);
	float			 lg[5] = { 1.0f, 3.0f, -2.0f, 3.0f, 0.5f };
	struct sampler_logprob	 ch;

	(void)state;
	/* ties go to the lower id */
	assert_int_equal(sampler_sample(s, lg, &ch, NULL), 1);
	assert_int_equal(ch.tok, 1);
	assert_float_equal(ch.logprob, ref_logprob(lg, 5, 1), 1e-6);
	sampler_free(s);
	assert_null(sampler_new(&p, 0));
}

static void
test_bias(void **state)
{
	struct sampler_params	 p = params(0.0f);
	struct sampler		*s;
	float			 lg[4] = { 5.0f, 1.0f, 0.0f, 2.0f };

	(void)state;
	p.n_bias = 3;
	p.bias_tok[0] = 0;
	p.bias_val[0] = -100.0f;
	p.bias_tok[1] = 2;
	p.bias_val[1] = 2.5f;
	p.bias_tok[2] = 9;		/* out of the vocabulary: ignored */
	p.bias_val[2] = 100.0f;
	s = sampler_new(&p, 4);
	assert_int_equal(sampler_sample(s, lg, NULL, NULL), 2);
	assert_float_equal(lg[0], -95.0f, 0);
	assert_float_equal(lg[2], 2.5f, 0);
	sampler_free(s);
}

static void
test_penalties(void **state)
{
	struct sampler_params	 p = params(0.0f);
	struct sampler		*s;
	float			 lg[4] = { 2.0f, 2.0f, 1.0f, 0.0f }, want[4];
	struct sampler_logprob	 ch;
	int			 i;

	(void)state;
	p.frequency_penalty = 0.5f;
	p.presence_penalty = 0.25f;
	s = sampler_new(&p, 4);
	sampler_accept(s, 0);
	sampler_accept(s, 0);
	sampler_accept(s, 1);
	sampler_accept(s, -3);		/* ignored */
	/* mu[j] -= c[j] * 0.5 + (c[j] > 0) * 0.25 */
	want[0] = 2.0f - 2 * 0.5f - 0.25f;
	want[1] = 2.0f - 1 * 0.5f - 0.25f;
	want[2] = 1.0f;
	want[3] = 0.0f;
	assert_int_equal(sampler_sample(s, lg, &ch, NULL), 1);
	for (i = 0; i < 4; i++)
		assert_float_equal(lg[i], want[i], 1e-6);
	/* logprobs come from the penalized logits */
	assert_float_equal(ch.logprob, ref_logprob(want, 4, 1), 1e-6);
	sampler_free(s);
}

static void
test_logprobs(void **state)
{
	struct sampler_params	 p = params(0.0f);
	struct sampler		*s;
	float			 lg[6] = { 0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.5f };
	float			 cp[6];
	struct sampler_logprob	 top[SAMPLER_MAX_TOP], ch;
	static const int32_t	 order[5] = { 1, 3, 4, 0, 5 };
	int			 i;

	(void)state;
	memcpy(cp, lg, sizeof(cp));
	p.top_logprobs = 5;
	p.temperature = 0.7f;	/* logprobs ignore temperature */
	s = sampler_new(&p, 6);
	(void)sampler_sample(s, lg, &ch, top);
	for (i = 0; i < 5; i++) {
		assert_int_equal(top[i].tok, order[i]);
		assert_float_equal(top[i].logprob, ref_logprob(cp, 6, order[i]),
		    1e-6);
	}
	assert_float_equal(ch.logprob, ref_logprob(cp, 6, ch.tok), 1e-6);
	sampler_free(s);
	/* more than the vocabulary: clamped */
	p.top_logprobs = SAMPLER_MAX_TOP;
	s = sampler_new(&p, 3);
	memcpy(lg, cp, sizeof(cp));
	(void)sampler_sample(s, lg, NULL, top);
	assert_int_equal(top[0].tok, 1);
	assert_int_equal(top[1].tok, 0);
	assert_int_equal(top[2].tok, 2);
	sampler_free(s);
}

/* Draws n tokens from fresh copies of lg; counts per token. */
static void
draws(struct sampler *s, const float *lg, int nv, int n, int *count)
{
	float	*x = calloc((size_t)nv, sizeof(*x));
	int	 i;
	int32_t	 t;

	memset(count, 0, (size_t)nv * sizeof(*count));
	for (i = 0; i < n; i++) {
		memcpy(x, lg, (size_t)nv * sizeof(*x));
		t = sampler_sample(s, x, NULL, NULL);
		assert_true(t >= 0 && t < nv);
		count[t]++;
	}
	free(x);
}

static void
test_distribution(void **state)
{
	struct sampler_params	 p = params(1.0f);
	struct sampler		*s;
	float			 lg[2] = { 0.0f, (float)log(3.0) };
	int			 c[2];

	(void)state;
	s = sampler_new(&p, 2);
	draws(s, lg, 2, 20000, c);
	/* p = 0.75; a fixed seed makes this one exact number, and it is
	 * within 1% of 15000 */
	assert_in_range(c[1], 14850, 15150);
	sampler_free(s);
	/* temperature flattens: T = 2 gives sqrt(3) : 1, p ~ 0.634 */
	p.temperature = 2.0f;
	s = sampler_new(&p, 2);
	draws(s, lg, 2, 20000, c);
	assert_in_range(c[1], 12480, 12880);
	sampler_free(s);
}

/* A vocabulary wide enough for the vector exp (pgemm_exp()), and not a
 * multiple of its 16 lanes: one token in four has 8 times the weight of
 * the others, and a -inf token is never drawn. */
static void
test_distribution_wide(void **state)
{
	struct sampler_params	 p = params(1.0f);
	struct sampler		*s;
	enum { NV = 4099 };
	float			 lg[NV];
	int			 c[NV], heavy = 0;

	(void)state;
	for (int i = 0; i < NV; i++)
		lg[i] = i % 4 == 0 ? (float)log(8.0) : 0.0f;
	lg[4097] = -INFINITY;		/* in the last, partial block */
	lg[5] = -INFINITY;
	s = sampler_new(&p, NV);
	draws(s, lg, NV, 20000, c);
	for (int i = 0; i < NV; i += 4)
		heavy += c[i];
	/* 1025 * 8 / (1025 * 8 + 3072) = 0.7274: 14548 of 20000, sd 63 */
	assert_in_range(heavy, 14250, 14850);
	assert_int_equal(c[4097], 0);
	assert_int_equal(c[5], 0);
	sampler_free(s);
	/* T = 2: sqrt(8) : 1, 1025 * 2.828 / (1025 * 2.828 + 3072) = 0.4855,
	 * 9710 of 20000, sd 71 */
	p.temperature = 2.0f;
	s = sampler_new(&p, NV);
	draws(s, lg, NV, 20000, c);
	heavy = 0;
	for (int i = 0; i < NV; i += 4)
		heavy += c[i];
	assert_in_range(heavy, 9400, 10000);
	sampler_free(s);
}

static void
test_truncation(void **state)
{
	struct sampler_params	 p = params(1.0f);
	struct sampler		*s;
	/* probabilities 0.5, 0.3, 0.15, 0.05 */
	float			 lg[4] = { (float)log(0.5), (float)log(0.3),
				    (float)log(0.15), (float)log(0.05) };
	int			 c[4];

	(void)state;
	p.top_k = 2;
	s = sampler_new(&p, 4);
	draws(s, lg, 4, 4000, c);
	assert_int_equal(c[2] + c[3], 0);
	assert_true(c[0] > 0 && c[1] > 0);
	sampler_free(s);

	p.top_k = 0;
	p.top_p = 0.79f;
	s = sampler_new(&p, 4);
	draws(s, lg, 4, 4000, c);
	assert_int_equal(c[2] + c[3], 0);
	assert_true(c[1] > 0);
	sampler_free(s);

	p.top_p = 0.81f;
	s = sampler_new(&p, 4);
	draws(s, lg, 4, 4000, c);
	assert_int_equal(c[3], 0);
	assert_true(c[2] > 0);
	sampler_free(s);

	p.top_p = 1.0f;
	p.min_p = 0.4f;		/* keeps p >= 0.2 */
	s = sampler_new(&p, 4);
	draws(s, lg, 4, 4000, c);
	assert_int_equal(c[2] + c[3], 0);
	assert_true(c[1] > 0);
	sampler_free(s);

	p.min_p = 0.0f;
	p.top_k = 1;		/* greedy whatever the temperature */
	s = sampler_new(&p, 4);
	draws(s, lg, 4, 100, c);
	assert_int_equal(c[0], 100);
	sampler_free(s);
}

/* top_p over more candidates than the first sorted prefix: 1000 equal
 * logits, top_p 0.5 keeps the 500 lowest ids (ties by id). */
static void
test_top_p_wide(void **state)
{
	struct sampler_params	 p = params(1.0f);
	struct sampler		*s;
	float			*lg = calloc(1000, sizeof(*lg));
	int			*c = calloc(1000, sizeof(*c));
	int			 i, hi = 0;

	(void)state;
	p.top_p = 0.5f;
	s = sampler_new(&p, 1000);
	draws(s, lg, 1000, 5000, c);
	for (i = 0; i < 1000; i++)
		if (c[i] > 0)
			hi = i;
	assert_in_range(hi, 450, 501);
	sampler_free(s);
	free(lg);
	free(c);
}

static void
test_seed(void **state)
{
	struct sampler_params	 p = params(0.9f);
	struct sampler		*a, *b, *d;
	float			 lg[50], x[50], y[50], z[50];
	int			 i, k, same_d = 0;
	int32_t			 ta, tb, td;

	(void)state;
	for (i = 0; i < 50; i++)
		lg[i] = (float)((i * 37) % 11) * 0.3f;
	p.top_k = 40;
	p.top_p = 0.95f;
	p.min_p = 0.01f;
	p.presence_penalty = 0.3f;
	a = sampler_new(&p, 50);
	b = sampler_new(&p, 50);
	p.seed = 43;
	d = sampler_new(&p, 50);
	for (k = 0; k < 200; k++) {
		memcpy(x, lg, sizeof(x));
		memcpy(y, lg, sizeof(y));
		memcpy(z, lg, sizeof(z));
		ta = sampler_sample(a, x, NULL, NULL);
		tb = sampler_sample(b, y, NULL, NULL);
		td = sampler_sample(d, z, NULL, NULL);
		assert_int_equal(ta, tb);
		same_d += ta == td;
		sampler_accept(a, ta);
		sampler_accept(b, tb);
		sampler_accept(d, td);
	}
	assert_true(same_d < 200);
	sampler_free(a);
	sampler_free(b);
	sampler_free(d);
}

static void
test_nonfinite(void **state)
{
	struct sampler_params	 p = params(1.0f);
	struct sampler		*s = sampler_new(&p, 3);
	float			 lg[3] = { NAN, -INFINITY, 1.0f };
	float			 all[3] = { -INFINITY, -INFINITY, -INFINITY };

	(void)state;
	assert_int_equal(sampler_sample(s, lg, NULL, NULL), 2);
	assert_int_equal(sampler_sample(s, all, NULL, NULL), 0);
	sampler_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy),
		cmocka_unit_test(test_bias),
		cmocka_unit_test(test_penalties),
		cmocka_unit_test(test_logprobs),
		cmocka_unit_test(test_distribution),
		cmocka_unit_test(test_distribution_wide),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_top_p_wide),
		cmocka_unit_test(test_seed),
		cmocka_unit_test(test_nonfinite),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
