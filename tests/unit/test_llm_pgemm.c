/* tests/unit/test_llm_pgemm.c - the prefill products of
 * runtime/llm/pgemm.c against a double-precision triple loop, over row
 * counts that end mid-panel and mid-tile and fewer weight rows than a
 * kernel takes; and the bits of every element must not depend on how
 * the weight rows are cut into calls (the model's thread invariance
 * rests on it); softmax and SwiGLU against double precision, with
 * tails past the last 16 and arguments where exp underflows and
 * overflows.  Skipped on a CPU without AVX-512F. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/llm/pgemm.h"

static uint32_t	rng = 777;

static float
frand(void)
{
	rng = rng * 1664525u + 1013904223u;
	return (float)(rng >> 8) / (float)(1u << 23) - 1.0f;
}

static void
check_shape(size_t rows, size_t n_in, size_t n_out)
{
	size_t	 ldx = n_in + 3, ldy = n_out + 5;
	size_t	 np = (rows + PGEMM_PANEL - 1) / PGEMM_PANEL;
	float	*x = calloc(rows * ldx, sizeof(float));
	float	*w = calloc(n_out * n_in, sizeof(float));
	float	*xp = calloc(pgemm_packed_len(rows, n_in), sizeof(float));
	float	*y = calloc(rows * ldy, sizeof(float));
	float	*y1 = calloc(rows * ldy, sizeof(float));

	assert_non_null(x);
	assert_non_null(w);
	assert_non_null(xp);
	assert_non_null(y);
	assert_non_null(y1);
	for (size_t i = 0; i < rows * ldx; i++)
		x[i] = frand();
	for (size_t i = 0; i < n_out * n_in; i++)
		w[i] = frand();
	for (size_t i = 0; i < rows * ldy; i++)
		y[i] = y1[i] = 12345.0f;	/* past n_out: untouched */
	for (size_t p = 0; p < np; p++)
		pgemm_pack(xp, x, ldx, rows, n_in, p);
	for (size_t o = 0; o < n_out; o += PGEMM_NR) {
		size_t		 nr = n_out - o < PGEMM_NR ? n_out - o :
				    PGEMM_NR;
		const float	*next = o + 2 * PGEMM_NR <= n_out ?
				    w + (o + PGEMM_NR) * n_in : NULL;

		pgemm_rows(y + o, ldy, xp, rows, n_in, w + o * n_in, n_in, nr,
		    next, n_in * sizeof(float), n_in * sizeof(float));
	}
	/* The same products one weight row a call. */
	for (size_t o = 0; o < n_out; o++)
		pgemm_rows(y1 + o, ldy, xp, rows, n_in, w + o * n_in, n_in, 1,
		    NULL, 0, 0);
	for (size_t r = 0; r < rows; r++) {
		for (size_t o = 0; o < n_out; o++) {
			double	s = 0.0, a = 0.0;

			for (size_t k = 0; k < n_in; k++) {
				s += (double)x[r * ldx + k] * w[o * n_in + k];
				a += fabs((double)x[r * ldx + k] *
				    w[o * n_in + k]);
			}
			assert_true(fabs(y[r * ldy + o] - s) <=
			    1e-6 * a + 1e-30);
			assert_memory_equal(&y[r * ldy + o], &y1[r * ldy + o],
			    sizeof(float));
		}
		for (size_t o = n_out; o < ldy; o++)
			assert_true(y[r * ldy + o] == 12345.0f);
	}
	free(x);
	free(w);
	free(xp);
	free(y);
	free(y1);
}

static void
test_shapes(void **state)
{
	static const size_t	shapes[][3] = {
		{ 1, 32, 8 }, { 5, 48, 3 }, { 16, 64, 16 }, { 17, 40, 13 },
		{ 33, 96, 8 }, { 48, 32, 24 }, { 49, 72, 9 }, { 100, 288, 21 },
		{ 256, 64, 40 },
	};

	(void)state;
	if (!pgemm_fast())
		skip();
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		check_shape(shapes[i][0], shapes[i][1], shapes[i][2]);
}

static void
test_elementwise(void **state)
{
	static const size_t	lens[] = { 1, 7, 16, 17, 40, 300 };
	float			s[320], g[320], u[320], s2[320], g2[320];

	(void)state;
	if (!pgemm_fast())
		skip();
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t	n = lens[li], nz = n + 5;
		double	mx = -INFINITY, sum = 0.0;

		for (size_t i = 0; i < nz; i++) {
			s[i] = 30.0f * frand();
			g[i] = i % 7 == 3 ? 120.0f * frand() : 8.0f * frand();
			u[i] = frand();
		}
		for (size_t i = 0; i < n; i++)
			mx = s[i] > mx ? s[i] : mx;
		for (size_t i = 0; i < n; i++)
			sum += exp(s[i] - mx);
		memcpy(s2, s, sizeof(s));
		memcpy(g2, g, sizeof(g));
		pgemm_softmax(s2, n, nz);
		pgemm_swiglu(g2, u, n);
		for (size_t i = 0; i < n; i++) {
			double	want = exp(s[i] - mx) / sum;
			double	gw = g[i] / (1.0 + exp(-(double)g[i])) * u[i];

			/* s - max is rounded to float first: an error of up
			 * to |s - max| ulp. */
			assert_true(fabs(s2[i] - want) <= want * (1e-6 +
			    1.2e-7 * fabs(s[i] - mx)) + 1e-30);
			assert_true(fabs(g2[i] - gw) <= 1e-6 * fabs(gw) +
			    1e-30);
		}
		for (size_t i = n; i < nz; i++) {
			assert_true(s2[i] == 0.0f);
			assert_true(g2[i] == g[i]);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_elementwise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
