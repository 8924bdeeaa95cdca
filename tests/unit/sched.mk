# tests/unit/sched.mk - unit tests of scheduler/: fair queuing and
# batching (pure), and the scheduler with fake runtimes.
UNIT_TESTS += test_sched_fairq
test_sched_fairq_SRCS := tests/unit/test_sched_fairq.c scheduler/fairq.c \
	scheduler/batch.c $(COMMON_SRCS)
test_sched_fairq_PKGS := libevent
# test_sched runs the scheduler against fake_runtime (a test helper that
# speaks the runtime's IPC; never installed), built next to it.
UNIT_TESTS += test_sched
test_sched_SRCS := tests/unit/test_sched.c $(SCHED_SRCS) $(COMMON_SRCS)
test_sched_PKGS := libevent openssl
$(BUILD)/tests/test_sched: | $(BUILD)/tests/fake_runtime
$(BUILD)/tests/fake_runtime: $(call objs,tests/unit/fake_runtime.c $(COMMON_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lm
