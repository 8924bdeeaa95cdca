/* tests/unit/test_auth.c - tenant key generation, parsing and hashing, and
 * authentication against a real SQLite database: unknown, wrong secret with
 * a valid prefix, revoked, expired, suspended-free happy path, and the
 * admin token kept apart from tenant keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/sha.h>

#include "db/db.h"
#include "tests/unit/dbfix.h"
#include "gateway/auth.h"


static int
setup(void **state)
{
	*state = dbfix_open("auth");
	return 0;
}

static int
teardown(void **state)
{
	dbfix_close(*state);
	return 0;
}

/* Stores a new key for the tenant; returns its id in id. */
static void
store_key(struct dbfix *f, char secret[AUTH_KEY_LEN + 1], int64_t expires,
    char *id, size_t idsz)
{
	char	prefix[AUTH_PREFIX_LEN + 1];
	uint8_t	hash[32];

	auth_key_generate(secret, prefix, hash);
	db_key_create(f->db, f->tenant, "k", prefix, hash, expires, "test",
	    dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_OK);
	snprintf(id, idsz, "%s", json_string_value(json_object_get(f->row,
	    "id")));
	json_decref(f->row);
}

static void
test_generate_parse(void **state)
{
	char	secret[AUTH_KEY_LEN + 1], secret2[AUTH_KEY_LEN + 1];
	char	prefix[AUTH_PREFIX_LEN + 1], p2[AUTH_PREFIX_LEN + 1];
	uint8_t	hash[32], h2[32], ref[32];

	(void)state;
	auth_key_generate(secret, prefix, hash);
	assert_int_equal(strlen(secret), AUTH_KEY_LEN);
	assert_memory_equal(secret, "maas_sk_", 8);
	assert_memory_equal(prefix, secret + 8, AUTH_PREFIX_LEN);
	SHA256((const unsigned char *)secret, strlen(secret), ref);
	assert_memory_equal(hash, ref, 32);
	assert_int_equal(auth_key_parse(secret, p2, h2), 0);
	assert_string_equal(p2, prefix);
	assert_memory_equal(h2, hash, 32);
	auth_key_generate(secret2, p2, h2);
	assert_string_not_equal(secret, secret2);

	/* Malformed keys are refused before any lookup. */
	assert_int_equal(auth_key_parse("", p2, h2), -1);
	assert_int_equal(auth_key_parse("maas_sk_", p2, h2), -1);
	secret2[AUTH_KEY_LEN - 1] = 'G';	/* not lowercase hex */
	assert_int_equal(auth_key_parse(secret2, p2, h2), -1);
	memcpy(secret2, "maas_pk_", 8);
	assert_int_equal(auth_key_parse(secret2, p2, h2), -1);
	{
		char	longer[AUTH_KEY_LEN + 2];

		snprintf(longer, sizeof(longer), "%sx", secret);
		assert_int_equal(auth_key_parse(longer, p2, h2), -1);
	}
}

static void
test_tenant_auth(void **state)
{
	struct dbfix		*f = *state;
	struct auth_result	 a;
	char			 secret[AUTH_KEY_LEN + 1], id[64];
	char			 hdr[256], wrong[AUTH_KEY_LEN + 1];

	store_key(f, secret, 0, id, sizeof(id));
	snprintf(hdr, sizeof(hdr), "Bearer %s", secret);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_OK);
	assert_string_equal(a.tenant_id, f->tenant);
	assert_string_equal(a.key_id, id);
	snprintf(hdr, sizeof(hdr), "bearer %s", secret);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_OK);

	assert_int_equal(auth_tenant(f->db, NULL, &a), AUTH_MISSING);
	assert_int_equal(auth_tenant(f->db, "Basic abc", &a), AUTH_MALFORMED);
	assert_int_equal(auth_tenant(f->db, "Bearer nope", &a), AUTH_UNKNOWN);
	/* Right prefix, wrong secret. */
	memcpy(wrong, secret, sizeof(wrong));
	wrong[AUTH_KEY_LEN - 1] = wrong[AUTH_KEY_LEN - 1] == '0' ? '1' : '0';
	snprintf(hdr, sizeof(hdr), "Bearer %s", wrong);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_UNKNOWN);
	assert_string_equal(a.tenant_id, "");

	/* Revocation is visible as soon as its callback ran. */
	db_key_revoke(f->db, id, "test", dbfix_done, f);
	dbfix_wait(f);
	json_decref(f->row);
	snprintf(hdr, sizeof(hdr), "Bearer %s", secret);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_REVOKED);
}

static void
test_expired_and_oversized(void **state)
{
	struct dbfix		*f = *state;
	struct auth_result	 a;
	char			 secret[AUTH_KEY_LEN + 1], id[64], hdr[128];
	char			*big;

	store_key(f, secret, (int64_t)time(NULL) - 10, id, sizeof(id));
	snprintf(hdr, sizeof(hdr), "Bearer %s", secret);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_EXPIRED);
	store_key(f, secret, (int64_t)time(NULL) + 3600, id, sizeof(id));
	snprintf(hdr, sizeof(hdr), "Bearer %s", secret);
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_OK);

	big = malloc(AUTH_HEADER_MAX + 64);
	memcpy(big, "Bearer ", 7);
	memset(big + 7, 'a', AUTH_HEADER_MAX + 50);
	big[AUTH_HEADER_MAX + 57] = '\0';
	assert_int_equal(auth_tenant(f->db, big, &a), AUTH_MALFORMED);
	free(big);
}

static void
test_admin_token(void **state)
{
	struct dbfix	*f = *state;
	char		 token[AUTH_ADMIN_LEN + 1], other[AUTH_ADMIN_LEN + 1];
	char		 hdr[128], secret[AUTH_KEY_LEN + 1], id[64];
	uint8_t		 hash[32];
	struct auth_result a;

	auth_admin_generate(token);
	assert_int_equal(strlen(token), AUTH_ADMIN_LEN);
	auth_sha256(token, strlen(token), hash);
	snprintf(hdr, sizeof(hdr), "Bearer %s", token);
	assert_int_equal(auth_admin(hash, hdr), AUTH_OK);
	/* The admin token is not a tenant key... */
	assert_int_equal(auth_tenant(f->db, hdr, &a), AUTH_UNKNOWN);
	/* ...and a tenant key is not the admin token. */
	store_key(f, secret, 0, id, sizeof(id));
	snprintf(hdr, sizeof(hdr), "Bearer %s", secret);
	assert_int_equal(auth_admin(hash, hdr), AUTH_UNKNOWN);
	auth_admin_generate(other);
	snprintf(hdr, sizeof(hdr), "Bearer %s", other);
	assert_int_equal(auth_admin(hash, hdr), AUTH_UNKNOWN);
	assert_int_equal(auth_admin(hash, NULL), AUTH_MISSING);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_parse),
		cmocka_unit_test_setup_teardown(test_tenant_auth, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expired_and_oversized,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_token, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
