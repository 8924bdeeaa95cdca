# tests/unit/gateway.mk - unit tests of gateway/ modules.
UNIT_TESTS += test_auth test_kserve
test_auth_SRCS := tests/unit/test_auth.c tests/unit/dbfix.c gateway/auth.c gateway/jwt.c \
	$(DB_SRCS) \
	$(COMMON_SRCS)
test_auth_PKGS := sqlite3 jansson libevent openssl
test_kserve_SRCS := tests/unit/test_kserve.c gateway/tensorjson.c $(COMMON_SRCS)
test_kserve_PKGS := jansson
UNIT_TESTS += test_quota
test_quota_SRCS := tests/unit/test_quota.c gateway/quota.c $(COMMON_SRCS)
