# tests/unit/jwt.mk - unit tests of gateway/jwt.c (the test includes the
# .c to reach its statics, so it is not linked again) with db/ and auth.c.
UNIT_TESTS += test_jwt
test_jwt_SRCS := tests/unit/test_jwt.c tests/unit/dbfix.c gateway/auth.c $(DB_SRCS) \
	$(COMMON_SRCS)
test_jwt_PKGS := sqlite3 jansson libevent openssl
