# tests/fuzz/guard.mk - the request-framing guard's parser (gateway/guard.c).
FUZZ_TARGETS += fuzz_guard
fuzz_guard_SRCS := tests/fuzz/fuzz_guard.c gateway/guard.c gateway/http.c \
	$(COMMON_SRCS)
fuzz_guard_PKGS := libevent libevent_openssl openssl jansson
