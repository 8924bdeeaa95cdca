# tests/fuzz/gateway.mk - fuzz targets for the gateway's parsers.
FUZZ_TARGETS += fuzz_tensorjson
fuzz_tensorjson_SRCS := tests/fuzz/fuzz_tensorjson.c gateway/tensorjson.c \
	$(COMMON_SRCS)
fuzz_tensorjson_PKGS := jansson
FUZZ_TARGETS += fuzz_kservebin
fuzz_kservebin_SRCS := tests/fuzz/fuzz_kservebin.c gateway/tensorjson.c \
	$(COMMON_SRCS)
fuzz_kservebin_PKGS := jansson
