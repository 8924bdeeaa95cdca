# tests/unit/sandbox.mk - the sandbox proved: test_sandbox runs
# hostile_runtime (a test helper that enters maas-runtime's sandbox and
# then misbehaves; never installed), built next to it.
UNIT_TESTS += test_sandbox
test_sandbox_SRCS := tests/unit/test_sandbox.c $(COMMON_SRCS)
$(BUILD)/tests/test_sandbox: | $(BUILD)/tests/hostile_runtime
$(BUILD)/obj/tests/unit/test_sandbox.o: \
	ALL_CFLAGS += -DHOSTILE_BIN='"$(abspath $(BUILD))/tests/hostile_runtime"'
$(BUILD)/tests/hostile_runtime: $(call objs,tests/unit/hostile_runtime.c \
    runtime/sandbox.c $(COMMON_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call pkglibs,libseccomp) -lm
