# Makefile - maas, one non-recursive build.  Each directory lists its sources
# in module.mk.  Targets:
#   all      bin/maasd bin/maas-runtime bin/maas-genmodel
#   run      install what is missing, build, start the platform on ./var
#   test     install what is missing, build (plain and ASan+UBSan), run every suite
#   check    unit tests of the current build       asan   the sanitizer build
#   fuzz     libFuzzer targets (clang)              bench  benchmarks (bench/)
#   deps     install missing Debian packages        fmt, clean
BUILD	?= build
BIN	?= bin
GEN	:= build/gen
SAN	?=
CC	?= cc

PKGS_MAASD	:= libevent libevent_openssl libevent_pthreads openssl sqlite3 jansson
PKGS_RUNTIME	:= libprotobuf-c libseccomp openblas
pkgcflags	= $(shell pkg-config --cflags $(1))
pkglibs		= $(shell pkg-config --libs $(1))

WARN	:= -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
	   -Wpointer-arith -Wcast-qual
CFLAGS	?= -O2 -g
ifneq ($(CI),)
WARN	+= -Werror
endif
ifneq ($(SAN),)
CFLAGS	:= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
endif
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -MMD -MP -I. -I$(GEN) \
	   $(call pkgcflags,$(PKGS_MAASD) $(PKGS_RUNTIME) cmocka)

objs	= $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all run test check asan fuzz bench deps fmt clean unit
all:

include common/module.mk
include db/module.mk
include scheduler/module.mk
include gateway/module.mk
include admin/module.mk
include runtime/module.mk
include tools/module.mk
include tests/unit/module.mk
-include tests/fuzz/module.mk

# protobuf-c code for ONNX, generated from Debian's onnx.proto.
ONNX_PROTO	:= /usr/include/onnx/onnx.proto
$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h &: $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)
ONNX_GEN_SRCS	:= $(GEN)/onnx.pb-c.c
$(BUILD)/obj/$(GEN)/onnx.pb-c.o: $(GEN)/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(CFLAGS) -w -I$(GEN) -c -o $@ $<
$(RUNTIME_SRCS:%.c=$(BUILD)/obj/%.o) $(TOOLS_GENMODEL_SRCS:%.c=$(BUILD)/obj/%.o): $(GEN)/onnx.pb-c.h
$(TESTS_NEED_ONNX:%.c=$(BUILD)/obj/%.o): $(GEN)/onnx.pb-c.h

MAASD_SRCS	:= $(GATEWAY_SRCS) $(ADMIN_SRCS) $(SCHED_SRCS) $(DB_SRCS) \
		   $(COMMON_SRCS)
RUNTIME_ALL_SRCS := $(RUNTIME_SRCS) $(COMMON_SRCS) $(ONNX_GEN_SRCS)

all: $(BIN)/maasd $(BIN)/maas-runtime $(BIN)/maas-genmodel $(BIN)/maas-gengguf

$(BIN)/maasd: $(call objs,$(MAASD_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call pkglibs,$(PKGS_MAASD)) -lpthread -lm

$(BIN)/maas-runtime: $(call objs,$(RUNTIME_ALL_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call pkglibs,$(PKGS_RUNTIME)) -lpthread -lm

$(BIN)/maas-genmodel: $(call objs,$(TOOLS_GENMODEL_SRCS) $(COMMON_SRCS) $(ONNX_GEN_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call pkglibs,libprotobuf-c) -lm

$(BIN)/maas-gengguf: $(call objs,$(TOOLS_GENGGUF_SRCS) $(COMMON_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lm

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Unit tests: tests/unit/module.mk calls $(eval $(call unit_test,NAME,SRCS,PKGS)).
define unit_test
UNIT_BINS += $(BUILD)/tests/$(1)
$(BUILD)/tests/$(1): $(call objs,$(2))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(call pkglibs,cmocka $(3)) -lpthread -lm
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_test,$(t),$($(t)_SRCS),$($(t)_PKGS))))

unit: $(UNIT_BINS)
check: all unit
	@scripts/run-unit.sh $(UNIT_BINS)

asan:
	$(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin SAN=1 \
	    all unit

deps:
	@scripts/deps.sh

NPROC	:= $(shell nproc 2>/dev/null || echo 2)

run:
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@scripts/run.sh

test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory -j$(NPROC) all unit
	@$(MAKE) --no-print-directory -j$(NPROC) asan
	@scripts/test.sh

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@bench/run.sh

fmt:
	clang-format -i $(filter-out $(GEN)/%,$(wildcard */*.[ch] */*/*.[ch]))

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
