# tests/fuzz/auth.mk - API key and admin token parsing (gateway/auth.c).
FUZZ_TARGETS += fuzz_apikey
fuzz_apikey_SRCS := tests/fuzz/fuzz_apikey.c gateway/auth.c gateway/jwt.c \
	$(DB_SRCS) $(COMMON_SRCS)
fuzz_apikey_PKGS := jansson openssl sqlite3 libevent
