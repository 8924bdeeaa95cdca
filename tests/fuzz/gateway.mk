# tests/fuzz/gateway.mk - fuzz targets for the gateway's parsers.
FUZZ_TARGETS += fuzz_tensorjson
fuzz_tensorjson_SRCS := tests/fuzz/fuzz_tensorjson.c gateway/tensorjson.c \
	$(COMMON_SRCS)
fuzz_tensorjson_PKGS := jansson
