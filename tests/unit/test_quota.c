/* tests/unit/test_quota.c - in-memory quota admission and settlement:
 * exact admission at the edge of each limit, tenant and key limits
 * together, reservations settled to real use, windows rolling over, and
 * seeding (what a restart does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/quota.h"

#define T0	1795305600	/* 2026-11-22T00:00:00Z, a minute boundary */

static struct quota_limits
unlimited(void)
{
	struct quota_limits	l = { QUOTA_UNLIMITED, QUOTA_UNLIMITED,
	    QUOTA_UNLIMITED, QUOTA_UNLIMITED, QUOTA_UNLIMITED, NULL, 0 };

	return l;
}

static void
test_rpm_exact(void **state)
{
	struct quota		*q = quota_new();
	struct quota_limits	 l = unlimited();
	struct quota_ticket	 t[70];
	struct quota_status	 st;
	int			 ok = 0;

	(void)state;
	l.rpm = 50;
	quota_set_limits(q, "ten_a", NULL, &l);
	for (int i = 0; i < 64; i++)
		if (quota_admit(q, "ten_a", "key_1", "m", 0, 0, T0 + 5, &t[i],
		    &st) == QUOTA_OK)
			ok++;
	assert_int_equal(ok, 50);
	assert_int_equal(st.req_limit, 50);
	assert_int_equal(st.req_remaining, 0);
	assert_int_equal(st.reset_s, 55);
	assert_int_equal(st.retry_after_s, 55);
	/* Settling does not give requests back within the window... */
	for (int i = 0; i < 50; i++)
		quota_settle(q, &t[i], 0, 0);
	assert_int_equal(quota_admit(q, "ten_a", "key_1", "m", 0, 0, T0 + 59,
	    &t[0], &st), QUOTA_RPM);
	/* ...the next minute does. */
	assert_int_equal(quota_admit(q, "ten_a", "key_1", "m", 0, 0, T0 + 60,
	    &t[0], &st), QUOTA_OK);
	assert_int_equal(st.req_remaining, 49);
	/* Another tenant is not affected. */
	assert_int_equal(quota_admit(q, "ten_b", "key_2", "m", 0, 0, T0 + 5,
	    &t[1], &st), QUOTA_OK);
	assert_int_equal(st.req_limit, -1);
	quota_free(q);
}

static void
test_tokens_reserve_and_settle(void **state)
{
	struct quota		*q = quota_new();
	struct quota_limits	 l = unlimited();
	struct quota_ticket	 a, b;
	struct quota_status	 st;

	(void)state;
	l.tpm = 1000;
	quota_set_limits(q, "ten_a", NULL, &l);
	assert_int_equal(quota_admit(q, "ten_a", "k", "m", 600, 0, T0, &a,
	    &st), QUOTA_OK);
	assert_int_equal(st.tok_remaining, 400);
	/* 600 reserved: 500 more does not fit until a settles. */
	assert_int_equal(quota_admit(q, "ten_a", "k", "m", 500, 0, T0, &b,
	    &st), QUOTA_TPM);
	quota_settle(q, &a, 100, 0);
	assert_int_equal(quota_admit(q, "ten_a", "k", "m", 500, 0, T0, &b,
	    &st), QUOTA_OK);
	assert_int_equal(st.tok_remaining, 400);
	quota_settle(q, &b, 500, 0);
	quota_settle(q, &b, 500, 0);	/* twice: no effect */
	assert_false(b.active);
	quota_free(q);
}

static void
test_concurrency_and_key_limits(void **state)
{
	struct quota		*q = quota_new();
	struct quota_limits	 tl = unlimited(), kl = unlimited();
	struct quota_ticket	 t[4];
	struct quota_status	 st;

	(void)state;
	tl.concurrent = 3;
	kl.rpm = 2;
	quota_set_limits(q, "ten_a", NULL, &tl);
	quota_set_limits(q, "ten_a", "key_1", &kl);
	assert_int_equal(quota_admit(q, "ten_a", "key_1", "m", 0, 0, T0, &t[0],
	    &st), QUOTA_OK);
	assert_int_equal(quota_admit(q, "ten_a", "key_1", "m", 0, 0, T0, &t[1],
	    &st), QUOTA_OK);
	/* The key's tighter rpm applies to it... */
	assert_int_equal(quota_admit(q, "ten_a", "key_1", "m", 0, 0, T0, &t[2],
	    &st), QUOTA_RPM);
	assert_int_equal(st.req_limit, 2);
	/* ...not to the tenant's other key, which meets the concurrency cap. */
	assert_int_equal(quota_admit(q, "ten_a", "key_2", "m", 0, 0, T0, &t[2],
	    &st), QUOTA_OK);
	assert_int_equal(quota_admit(q, "ten_a", "key_2", "m", 0, 0, T0, &t[3],
	    &st), QUOTA_CONCURRENCY);
	quota_settle(q, &t[0], 0, 0);
	assert_int_equal(quota_admit(q, "ten_a", "key_2", "m", 0, 0, T0, &t[3],
	    &st), QUOTA_OK);
	quota_free(q);
}

static void
test_budgets_and_allowlist(void **state)
{
	struct quota		*q = quota_new();
	struct quota_limits	 l = unlimited();
	struct quota_ticket	 t;
	struct quota_status	 st;
	char			*models[] = { "demo-mlp" };
	int64_t			 nov = T0, dec1 = 1796083200; /* 2026-12-01 */

	(void)state;
	l.month_credits = 1000;
	l.month_tokens = 5000;
	l.models = models;
	l.n_models = 1;
	quota_set_limits(q, "ten_a", NULL, &l);
	assert_int_equal(quota_admit(q, "ten_a", "k", "other", 0, 0, nov, &t,
	    &st), QUOTA_MODEL);
	assert_int_equal(quota_admit(q, "ten_a", "k", "demo-mlp", 0, 600, nov,
	    &t, &st), QUOTA_OK);
	quota_settle(q, &t, 0, 700);
	assert_int_equal(quota_admit(q, "ten_a", "k", "demo-mlp", 0, 400, nov,
	    &t, &st), QUOTA_MONTH_CREDITS);
	assert_int_equal(st.retry_after_s, dec1 - nov);
	assert_int_equal(quota_admit(q, "ten_a", "k", "demo-mlp", 0, 300, nov,
	    &t, &st), QUOTA_OK);
	quota_settle(q, &t, 0, 300);
	assert_int_equal(quota_admit(q, "ten_a", "k", "demo-mlp", 0, 1, nov,
	    &t, &st), QUOTA_MONTH_CREDITS);
	/* A new calendar month resets the budget. */
	assert_int_equal(quota_admit(q, "ten_a", "k", "demo-mlp", 0, 1, dec1,
	    &t, &st), QUOTA_OK);
	assert_int_equal(quota_month_end(quota_month(nov)), dec1);
	assert_int_equal(quota_month_end(quota_month(1798761599)), 1798761600);
	quota_free(q);
}

/* Two requests in flight whose real cost exceeds their reservations: the
 * second is charged only what the budget has left, never beyond it. */
static void
test_credit_budget_is_a_ceiling(void **state)
{
	struct quota		*q = quota_new();
	struct quota_limits	 l = unlimited();
	struct quota_ticket	 a, b, c;
	struct quota_status	 st;

	(void)state;
	l.month_credits = 1000;
	quota_set_limits(q, "ten_a", NULL, &l);
	assert_int_equal(quota_admit(q, "ten_a", "k", "m", 0, 400, T0, &a,
	    &st), QUOTA_OK);
	assert_int_equal(quota_admit(q, "ten_a", "k", "m", 0, 400, T0, &b,
	    &st), QUOTA_OK);
	assert_int_equal(quota_settle(q, &a, 0, 600), 600);
	assert_int_equal(quota_settle(q, &b, 0, 600), 400);
	assert_int_equal(quota_admit(q, "ten_a", "k", "m", 0, 0, T0, &c,
	    &st), QUOTA_OK);
	assert_int_equal(quota_settle(q, &c, 0, 5), 0);
	assert_int_equal(quota_settle(q, &c, 0, 5), 5);	/* inactive */
	quota_free(q);
}

static void
test_seed_after_restart(void **state)
{
	struct quota		*q = quota_new();
	struct quota_limits	 l = unlimited();
	struct quota_ticket	 t;
	struct quota_status	 st;
	int			 ok = 0;

	(void)state;
	l.rpm = 10;
	l.month_tokens = 100;
	quota_set_limits(q, "ten_a", NULL, &l);
	/* 7 requests this minute and 95 tokens this month were stored. */
	quota_seed(q, "ten_a", NULL, T0 + 10, 7, 0, 95, 0);
	for (int i = 0; i < 10; i++)
		if (quota_admit(q, "ten_a", "k", "m", 1, 0, T0 + 11, &t, &st)
		    == QUOTA_OK)
			ok++;
	assert_int_equal(ok, 3);
	assert_int_equal(quota_admit(q, "ten_a", "k", "m", 3, 0, T0 + 61, &t,
	    &st), QUOTA_MONTH_TOKENS);
	quota_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rpm_exact),
		cmocka_unit_test(test_tokens_reserve_and_settle),
		cmocka_unit_test(test_concurrency_and_key_limits),
		cmocka_unit_test(test_budgets_and_allowlist),
		cmocka_unit_test(test_credit_budget_is_a_ceiling),
		cmocka_unit_test(test_seed_after_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
