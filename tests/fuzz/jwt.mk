# tests/fuzz/jwt.mk - the JWT verifier (gateway/jwt.c, included by the
# target to reach its statics) with db/ for the symbols it links against.
FUZZ_TARGETS += fuzz_jwt
fuzz_jwt_SRCS := tests/fuzz/fuzz_jwt.c $(DB_SRCS) $(COMMON_SRCS)
fuzz_jwt_PKGS := jansson openssl sqlite3 libevent
