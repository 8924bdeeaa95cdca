/* tests/unit/test_webform.c - the console's parsers of browser input
 * (admin/webform.c): Cookie headers, urlencoded login forms and asset path
 * components, including the malformed and oversized cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/webform.h"

static void
test_cookie(void **state)
{
	char	v[80];

	(void)state;
	assert_int_equal(webform_cookie("maas_session=abc", "maas_session", v,
	    sizeof(v)), 0);
	assert_string_equal(v, "abc");
	assert_int_equal(webform_cookie("a=1; maas_session=x2 ;b=3",
	    "maas_session", v, sizeof(v)), 0);
	assert_string_equal(v, "x2");
	/* A name that only ends or starts the same is another cookie. */
	assert_int_equal(webform_cookie("xmaas_session=1; maas_session_=2",
	    "maas_session", v, sizeof(v)), -1);
	/* The first of two wins. */
	assert_int_equal(webform_cookie("maas_session=1; maas_session=2",
	    "maas_session", v, sizeof(v)), 0);
	assert_string_equal(v, "1");
	assert_int_equal(webform_cookie("maas_session=", "maas_session", v,
	    sizeof(v)), 0);
	assert_string_equal(v, "");
	assert_int_equal(webform_cookie(NULL, "maas_session", v, sizeof(v)),
	    -1);
	assert_int_equal(webform_cookie("", "maas_session", v, sizeof(v)), -1);
	assert_int_equal(webform_cookie(";;; ;", "maas_session", v,
	    sizeof(v)), -1);
	assert_int_equal(webform_cookie("maas_session", "maas_session", v,
	    sizeof(v)), -1);
	/* Does not fit. */
	assert_int_equal(webform_cookie("maas_session=0123456789",
	    "maas_session", v, 5), -1);
}

static void
test_cookie_oversized(void **state)
{
	char	*h = malloc(WEBFORM_HEADER_MAX + 64), v[16];

	(void)state;
	memset(h, 'x', WEBFORM_HEADER_MAX + 63);
	memcpy(h, "maas_session=1;", 15);
	h[WEBFORM_HEADER_MAX + 63] = '\0';
	assert_int_equal(webform_cookie(h, "maas_session", v, sizeof(v)), -1);
	h[WEBFORM_HEADER_MAX] = '\0';
	assert_int_equal(webform_cookie(h, "maas_session", v, sizeof(v)), 0);
	assert_string_equal(v, "1");
	free(h);
}

static void
test_field(void **state)
{
	char		 v[64];
	const char	*b;

	(void)state;
	b = "token=maas_admin_ab%2Bc+d&x=1";
	assert_int_equal(webform_field(b, strlen(b), "token", v, sizeof(v)), 0);
	assert_string_equal(v, "maas_admin_ab+c d");
	assert_int_equal(webform_field(b, strlen(b), "x", v, sizeof(v)), 0);
	assert_string_equal(v, "1");
	assert_int_equal(webform_field(b, strlen(b), "tok", v, sizeof(v)), -1);
	/* The body is not NUL-terminated: only len bytes count. */
	assert_int_equal(webform_field(b, 9, "token", v, sizeof(v)), 0);
	assert_string_equal(v, "maa");
	b = "token=%4";
	assert_int_equal(webform_field(b, strlen(b), "token", v, sizeof(v)),
	    -1);
	b = "token=%zz";
	assert_int_equal(webform_field(b, strlen(b), "token", v, sizeof(v)),
	    -1);
	b = "token=a%00b";
	assert_int_equal(webform_field(b, strlen(b), "token", v, sizeof(v)),
	    -1);
	b = "token=0123456789";
	assert_int_equal(webform_field(b, strlen(b), "token", v, 10), -1);
	assert_int_equal(webform_field(b, strlen(b), "token", v, 11), 0);
	b = "&&token&token=";
	assert_int_equal(webform_field(b, strlen(b), "token", v, sizeof(v)), 0);
	assert_string_equal(v, "");
	assert_int_equal(webform_field("", 0, "token", v, sizeof(v)), -1);
	assert_int_equal(webform_field(b, WEBFORM_BODY_MAX + 1, "token", v,
	    sizeof(v)), -1);
}

static void
test_asset_part(void **state)
{
	char	long_name[80];

	(void)state;
	assert_true(webform_asset_part("index.html"));
	assert_true(webform_asset_part("app-1_2.min.js"));
	assert_false(webform_asset_part(".."));
	assert_false(webform_asset_part("."));
	assert_false(webform_asset_part(".git"));
	assert_false(webform_asset_part(""));
	assert_false(webform_asset_part(NULL));
	assert_false(webform_asset_part("a b"));
	assert_false(webform_asset_part("a\\b"));
	assert_false(webform_asset_part("a%2e"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_false(webform_asset_part(long_name));
	long_name[64] = '\0';
	assert_true(webform_asset_part(long_name));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cookie),
		cmocka_unit_test(test_cookie_oversized),
		cmocka_unit_test(test_field),
		cmocka_unit_test(test_asset_part),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
