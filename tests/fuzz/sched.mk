# tests/fuzz/sched.mk - fuzz target of the scheduler's batching parsers.
FUZZ_TARGETS += fuzz_batch
fuzz_batch_SRCS := tests/fuzz/fuzz_batch.c scheduler/batch.c $(COMMON_SRCS)
