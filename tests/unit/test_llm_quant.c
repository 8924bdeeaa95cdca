/* tests/unit/test_llm_quant.c - the weight-row kernels of
 * runtime/llm/quant.c: quant_dot_n and quant_dot_rows, which a decode
 * step's matrices use for its whole batch (one row at a time, or four
 * with AVX-512), must give quant_dot's bits for every row and vector
 * whatever the number of rows and vectors (cut in fours), the strides, a
 * tail of columns past the last 16 or unaligned rows, since the model's
 * batch invariance rests on it; and both must agree with a
 * double-precision sum of the dequantized row.  quant_attend, a decode
 * row's attention, must agree with a double-precision softmax and sum
 * for every number of keys (in fours and the rest) and head sizes on and
 * off the 8- and 64-column steps. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/llm/quant.h"

static uint32_t	rng = 12345;

static uint32_t
next(void)
{
	rng = rng * 1664525u + 1013904223u;
	return rng >> 8;
}

/* Uniform in [-1, 1). */
static float
frand(void)
{
	return (float)next() / (float)(1u << 23) - 1.0f;
}

/* Random rows of type t; F16 values and block scales kept small and
 * finite. */
static void
fill(enum ggml_type t, uint8_t *p, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++)
		p[i] = (uint8_t)next();
	if (t == GGML_T_F32) {
		for (size_t i = 0; i + 4 <= bytes; i += 4) {
			float	f = frand();

			memcpy(p + i, &f, 4);
		}
	} else if (t == GGML_T_F16) {
		for (size_t i = 0; i + 2 <= bytes; i += 2) {
			/* Exponent below 15: |h| < 2. */
			uint16_t	h = (uint16_t)((next() & 0x83ff) |
					    (next() % 15) << 10);

			memcpy(p + i, &h, 2);
		}
	} else if (t == GGML_T_BF16) {
		for (size_t i = 0; i + 2 <= bytes; i += 2) {
			/* Exponent 100..129: 2^-27 <= |h| < 2^3. */
			uint16_t	h = (uint16_t)((next() & 0x807f) |
					    (100 + next() % 30) << 7);

			memcpy(p + i, &h, 2);
		}
	} else if (t == GGML_T_Q4_K || t == GGML_T_Q5_K) {
		size_t	bb = t == GGML_T_Q4_K ? 144 : 176;

		/* d and dmin: the block's two F16 scales. */
		for (size_t i = 0; i + bb <= bytes; i += bb)
			for (int j = 0; j < 2; j++) {
				uint16_t	d = (uint16_t)(0x1c00 |
						    (next() & 0x3ff));

				memcpy(p + i + 2 * j, &d, 2);
			}
	} else if (t == GGML_T_Q6_K) {
		/* d, the F16 after the ints */
		for (size_t i = 0; i + 210 <= bytes; i += 210) {
			uint16_t	d = (uint16_t)(0x1c00 |
					    (next() & 0x3ff));

			memcpy(p + i + 208, &d, 2);
		}
	} else {
		size_t	bb = t == GGML_T_Q8_0 ? 34 : 18;

		for (size_t i = 0; i + bb <= bytes; i += bb) {
			uint16_t	d = (uint16_t)(0x2000 |
					    (next() & 0x3ff));

			memcpy(p + i, &d, 2);
		}
	}
}

/* y (rows of ldy floats, one a vector) as quant_dot_n or (rows)
 * quant_dot_rows left it, against quant_dot's bits and a double sum. */
static void
check_y(enum ggml_type t, size_t n, int nrows, int nx, const uint8_t *w,
    size_t rb, const float *x, size_t ldx, const float *y, size_t ldy,
    float *deq, bool rows)
{
	for (int r = 0; r < nx; r++) {
		const float	*xr = x + (size_t)r * ldx;

		for (int o = 0; o < nrows; o++) {
			const uint8_t	*wo = w + (size_t)o * rb;
			float		 want = quant_dot(t, wo, xr, n);
			float		 got = y[(size_t)r * ldy + (size_t)o];
			double		 ref = 0.0, mag = 0.0;

			if (memcmp(&want, &got, sizeof(got)) != 0)
				fail_msg("%s type %d n %zu rows %d nx %d: row "
				    "%d vector %d: %a, quant_dot %a", rows ?
				    "quant_dot_rows" : "quant_dot_n", (int)t,
				    n, nrows, nx, o, r, (double)got,
				    (double)want);
			quant_dequant(t, wo, deq, n);
			for (size_t i = 0; i < n; i++) {
				ref += (double)deq[i] * xr[i];
				mag += fabs((double)deq[i] * xr[i]);
			}
			if (fabs(got - ref) > 1e-5 * (mag + 1.0))
				fail_msg("type %d n %zu: %g, reference %g",
				    (int)t, n, (double)got, ref);
		}
		/* Nothing written past the rows. */
		assert_true(y[(size_t)r * ldy + (size_t)nrows] == -12345.0f);
		assert_true(y[(size_t)r * ldy + (size_t)nrows + 1] ==
		    -12345.0f);
	}
}

static void
check_shape(enum ggml_type t, size_t n, int nrows, int nx, size_t woff)
{
	size_t	 rb = (size_t)ggml_nbytes(t, n), ldx = n + 3, ldy = (size_t)nrows + 2;
	uint8_t	*wbuf = malloc(rb * (size_t)nrows + woff), *w = wbuf + woff;
	/* Vectors start one float off any 64-byte boundary. */
	float	*xbuf = malloc((ldx * (size_t)nx + 1) * sizeof(float));
	float	*x = xbuf + 1, *y = malloc(ldy * (size_t)nx * sizeof(float));
	float	*deq = malloc(n * sizeof(float));

	assert_non_null(wbuf);
	assert_non_null(xbuf);
	assert_non_null(y);
	assert_non_null(deq);
	fill(t, w, rb * (size_t)nrows);
	for (size_t i = 0; i < ldx * (size_t)nx; i++)
		x[i] = frand();
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ldy * (size_t)nx; i++)
			y[i] = -12345.0f;
		if (pass == 0)
			for (int o = 0; o < nrows; o++)
				quant_dot_n(t, w + (size_t)o * rb, x, ldx, nx,
				    n, y + o, ldy);
		else
			quant_dot_rows(t, w, rb, (size_t)nrows, x, ldx, nx, n,
			    y, ldy);
		check_y(t, n, nrows, nx, w, rb, x, ldx, y, ldy, deq,
		    pass == 1);
	}
	free(deq);
	free(y);
	free(xbuf);
	free(wbuf);
}

/* Every batch shape the kernels have (1 to 4 vectors and more, cut in
 * fours), with column counts on and off the 16-column step. */
static void
test_rows_bit_identical(void **state)
{
	static const enum ggml_type	types[] = { GGML_T_F32, GGML_T_F16,
					    GGML_T_BF16, GGML_T_Q8_0,
					    GGML_T_Q4_0,
					    GGML_T_Q4_K, GGML_T_Q5_K,
					    GGML_T_Q6_K };
	static const size_t		ns[] = { 16, 32, 40, 64, 100, 512,
					    768 };
	static const int		rows[] = { 1, 2, 3, 4, 5, 7, 8, 9 };

	(void)state;
	quant_init();
	for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
		enum ggml_type	t = types[ti];

		for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
			size_t	n = ns[ni];

			if (t != GGML_T_F32 && t != GGML_T_F16 &&
			    t != GGML_T_BF16 && n % 32)
				continue;
			if ((t == GGML_T_Q4_K || t == GGML_T_Q5_K ||
			    t == GGML_T_Q6_K) && n % 256)
				continue;
			for (size_t ri = 0; ri < sizeof(rows) /
			    sizeof(rows[0]); ri++)
				for (int nx = 1; nx <= 11; nx++)
					check_shape(t, n, rows[ri], nx, 0);
			check_shape(t, n, 6, 17, 0);
		}
	}
}

/* Rows at unaligned addresses (the block types are stored unaligned in
 * GGUF; F32 and F16 rows by any 4 or 2 bytes). */
static void
test_rows_unaligned(void **state)
{
	(void)state;
	quant_init();
	for (int nx = 1; nx <= 9; nx++) {
		check_shape(GGML_T_F32, 96, 5, nx, 4);
		check_shape(GGML_T_F16, 96, 5, nx, 2);
		check_shape(GGML_T_BF16, 100, 5, nx, 2);
		check_shape(GGML_T_Q8_0, 96, 5, nx, 1);
		check_shape(GGML_T_Q4_0, 96, 5, nx, 3);
		check_shape(GGML_T_Q4_K, 256, 5, nx, 1);
		check_shape(GGML_T_Q5_K, 256, 5, nx, 2);
		check_shape(GGML_T_Q6_K, 256, 5, nx, 3);
	}
}

/* quant_attend_f16() over k and v rounded to F16 gives the bits of
 * quant_attend() over the floats those hold (k and v are changed). */
static void
check_attend_f16(const float *q, float *k, float *v, int nk, int hd,
    size_t ld, float scale)
{
	size_t		 n = (size_t)nk * ld;
	uint16_t	*kh = malloc(n * sizeof(*kh));
	uint16_t	*vh = malloc(n * sizeof(*vh));
	float		*att = malloc((size_t)nk * sizeof(float));
	float		*o1 = malloc((size_t)hd * sizeof(float));
	float		*o2 = malloc((size_t)hd * sizeof(float));

	assert_non_null(kh);
	assert_non_null(vh);
	assert_non_null(att);
	assert_non_null(o1);
	assert_non_null(o2);
	quant_to_f16_n(kh, k, n);
	quant_to_f16_n(vh, v, n);
	for (size_t i = 0; i < n; i++) {
		k[i] = quant_f16(kh[i]);
		v[i] = quant_f16(vh[i]);
	}
	quant_attend(q, k, v, ld, nk, hd, scale, att, o1);
	quant_attend_f16(q, kh, vh, ld, nk, hd, scale, att, o2);
	if (memcmp(o1, o2, (size_t)hd * sizeof(float)) != 0)
		fail_msg("attend_f16 nk %d hd %d ld %zu: not the bits of "
		    "attend over the same values", nk, hd, ld);
	free(kh);
	free(vh);
	free(att);
	free(o1);
	free(o2);
}

/* Attention against a double-precision reference, keys ld apart. */
static void
check_attend(int nk, int hd, size_t ld)
{
	float	*q = malloc((size_t)hd * sizeof(float));
	float	*k = malloc((size_t)nk * ld * sizeof(float));
	float	*v = malloc((size_t)nk * ld * sizeof(float));
	float	*att = malloc((size_t)nk * sizeof(float));
	float	*att1 = malloc((size_t)nk * sizeof(float));
	float	*out = malloc((size_t)hd * sizeof(float));
	double	*ref = calloc((size_t)nk, sizeof(double));
	double	 mx = -INFINITY, sum = 0.0, scale = 1.0 / sqrt((double)hd);

	assert_non_null(q);
	assert_non_null(k);
	assert_non_null(v);
	assert_non_null(att);
	assert_non_null(att1);
	assert_non_null(out);
	assert_non_null(ref);
	for (int i = 0; i < hd; i++)
		q[i] = 2.0f * frand();
	for (size_t i = 0; i < (size_t)nk * ld; i++) {
		k[i] = 2.0f * frand();
		v[i] = frand();
	}
	quant_attend(q, k, v, ld, nk, hd, (float)scale, att, out);
	for (int t = 0; t < nk; t++) {
		for (int i = 0; i < hd; i++)
			ref[t] += (double)q[i] * k[(size_t)t * ld + (size_t)i];
		ref[t] *= scale;
		if (ref[t] > mx)
			mx = ref[t];
	}
	for (int t = 0; t < nk; t++) {
		ref[t] = exp(ref[t] - mx);
		sum += ref[t];
	}
	for (int i = 0; i < hd; i++) {
		double	o = 0.0;

		for (int t = 0; t < nk; t++)
			o += ref[t] / sum * v[(size_t)t * ld + (size_t)i];
		if (fabs(o - out[i]) > 1e-5 + 1e-4 * fabs(o))
			fail_msg("attend nk %d hd %d: out[%d] %g, want %g",
			    nk, hd, i, (double)out[i], o);
	}
	/* One key: its weight is exactly 1, so out is its value. */
	quant_attend(q, k, v, ld, 1, hd, (float)scale, att1, out);
	for (int i = 0; i < hd; i++)
		assert_true(out[i] == v[i]);
	check_attend_f16(q, k, v, nk, hd, ld, (float)scale);
	free(q);
	free(k);
	free(v);
	free(att);
	free(att1);
	free(out);
	free(ref);
}

/* quant_dequant() of F16 rows gives quant_f16()'s bits for every value
 * (NaNs as NaNs), whatever the length and the start: the vector loops'
 * tails (lengths around 8, 16 and 32) and unaligned rows. */
static void
test_dequant_f16(void **state)
{
	static uint8_t	raw[2 * 65536 + 2];
	static float	out[65536 + 1];

	(void)state;
	quant_init();
	for (uint32_t b = 0; b < 65536; b++) {
		raw[2 * b + 1] = (uint8_t)b;	/* from byte 1: unaligned */
		raw[2 * b + 2] = (uint8_t)(b >> 8);
	}
	for (size_t n = 0; n <= 70; n++) {
		for (size_t s0 = 0; s0 + n <= 65536; s0 += 4093) {
			out[n] = -7.0f;
			quant_dequant(GGML_T_F16, raw + 1 + 2 * s0, out, n);
			for (size_t i = 0; i < n; i++) {
				float	want = quant_f16((uint16_t)(s0 + i));

				if (isnan(want) ? !isnan(out[i]) :
				    memcmp(&want, &out[i], sizeof(want)) != 0)
					fail_msg("n %zu value %#zx: %a, want "
					    "%a", n, s0 + i, (double)out[i],
					    (double)want);
			}
			assert_true(out[n] == -7.0f);
		}
	}
	quant_dequant(GGML_T_F16, raw + 1, out, 65536);
	for (uint32_t b = 0; b < 65536; b++) {
		float	want = quant_f16((uint16_t)b);

		if (isnan(want) ? !isnan(out[b]) :
		    memcmp(&want, &out[b], sizeof(want)) != 0)
			fail_msg("value %#x: %a, want %a", b, (double)out[b],
			    (double)want);
	}
}

/* quant_to_f16() rounds to the nearest F16, ties to even, and the
 * vector conversion (F16C where the CPU has it) agrees with it. */
static void
test_to_f16(void **state)
{
	static const struct {
		float		f;
		uint16_t	h;
	} fixed[] = {
		{ 0.0f, 0x0000 }, { -0.0f, 0x8000 }, { 1.0f, 0x3c00 },
		{ -2.0f, 0xc000 }, { 65504.0f, 0x7bff },
		{ 65519.99f, 0x7bff }, { 65520.0f, 0x7c00 },
		{ 1e6f, 0x7c00 }, { -INFINITY, 0xfc00 },
		{ 0x1p-14f, 0x0400 }, { 0x1p-24f, 0x0001 },
		{ 0x1p-25f, 0x0000 }, { 0x3p-26f, 0x0001 },
		{ 0x1.8p-24f, 0x0002 }, { 0x1p-26f, 0x0000 },
		{ 1.0f + 0x1p-11f, 0x3c00 }, { 1.0f + 0x3p-11f, 0x3c02 },
		{ 0x1.ffep-15f, 0x0400 },
	};
	float		 f[4096];
	uint16_t	 h[4096];
	uint32_t	 x = 12345;

	(void)state;
	quant_init();
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (quant_to_f16(fixed[i].f) != fixed[i].h)
			fail_msg("to_f16(%a) = %#x, want %#x",
			    (double)fixed[i].f, quant_to_f16(fixed[i].f),
			    fixed[i].h);
	assert_true((quant_to_f16(NAN) & 0x7c00) == 0x7c00 &&
	    (quant_to_f16(NAN) & 0x3ff) != 0);
	/* Every F16 value goes back to itself. */
	for (uint32_t b = 0; b < 65536; b++)
		if ((b & 0x7c00) != 0x7c00 || (b & 0x3ff) == 0)
			assert_int_equal(quant_to_f16(quant_f16(
			    (uint16_t)b)), b);
	/* Random bit patterns of every exponent: nearest, and the vector
	 * path gives the same bits. */
	for (int round = 0; round < 64; round++) {
		for (int i = 0; i < 4096; i++) {
			x = x * 1664525u + 1013904223u;
			memcpy(&f[i], &x, sizeof(x));
			if (isnan(f[i]))
				f[i] = 1.5f;
		}
		quant_to_f16_n(h, f, 4096);
		for (int i = 0; i < 4096; i++) {
			uint16_t	s = quant_to_f16(f[i]);
			double		r = quant_f16(s), d = fabs(r - f[i]);

			assert_int_equal(h[i], s);
			if (isinf(r))
				continue;
			/* No neighbour is nearer. */
			if (s != 0x7bff && s != 0xfbff && (s & 0x7fff) != 0)
				assert_true(d <= fabs(quant_f16((uint16_t)(s +
				    1)) - f[i]) && d <= fabs(quant_f16(
				    (uint16_t)(s - 1)) - f[i]));
		}
	}
}

static void
test_attend(void **state)
{
	static const int	hds[] = { 3, 8, 16, 40, 64, 72, 128, 200 };

	(void)state;
	quant_init();
	for (size_t hi = 0; hi < sizeof(hds) / sizeof(hds[0]); hi++)
		for (int nk = 1; nk <= 13; nk++)
			check_attend(nk, hds[hi], (size_t)hds[hi] + 5);
	check_attend(300, 64, 64 * 12);
	/* Keys one after another, as the cache holds them: groups of
	 * eight, then of four, then one by one. */
	check_attend(45, 64, 64);
	check_attend(37, 128, 128);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_rows_bit_identical),
		cmocka_unit_test(test_rows_unaligned),
		cmocka_unit_test(test_attend),
		cmocka_unit_test(test_to_f16),
		cmocka_unit_test(test_dequant_f16),
	};

	printf("kernels: %s\n", quant_kernels());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
