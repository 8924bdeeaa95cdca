# tests/fuzz/module.mk - libFuzzer targets, built with clang into build/fuzz
# by `make fuzz`.  Each part lists its targets in tests/fuzz/<part>.mk:
#   FUZZ_TARGETS += fuzz_foo
#   fuzz_foo_SRCS := tests/fuzz/fuzz_foo.c common/...   (C sources)
#   fuzz_foo_PKGS := ...                                 (pkg-config names)
# `make fuzz` builds them and runs each for FUZZ_SECONDS (default 60) with
# scripts/fuzz.sh, from a copy of its seeds in tests/fuzz/corpus/<target>/;
# `make test` runs a short smoke pass of each.
FUZZ_BUILD	:= build/fuzz
FUZZ_CFLAGS	:= -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
		   -fsanitize=fuzzer,address,undefined -I. -I$(GEN) -DMAAS_FUZZ
include $(filter-out tests/fuzz/module.mk,$(wildcard tests/fuzz/*.mk))

define fuzz_target
FUZZ_BINS += $(FUZZ_BUILD)/$(1)
$(FUZZ_BUILD)/$(1): $(2) $(if $(filter $(GEN)/%,$(2)),$(GEN)/onnx.pb-c.h)
	@mkdir -p $$(dir $$@)
	clang $$(FUZZ_CFLAGS) $(if $(3),$$(call pkgcflags,$(3))) -o $$@ $(2) $(if $(3),$$(call pkglibs,$(3))) -lpthread -lm
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_target,$(t),$($(t)_SRCS),$($(t)_PKGS))))

FUZZ_SECONDS ?= 60
.PHONY: fuzz-build
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@scripts/fuzz.sh $(FUZZ_SECONDS)
