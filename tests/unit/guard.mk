# tests/unit/guard.mk - the request-framing guard (gateway/guard.c).
UNIT_TESTS += test_guard
test_guard_SRCS := tests/unit/test_guard.c gateway/guard.c gateway/http.c \
	$(COMMON_SRCS)
test_guard_PKGS := libevent libevent_openssl openssl jansson
