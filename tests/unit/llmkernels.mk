# tests/unit/llmkernels.mk - bench/llm-kernels/llmspeed, a timing driver
# for the LLM forward pass (run by hand: see its opening comment).  Built
# with the unit tests so that it keeps compiling; not a test.
LLMSPEED_SRCS := bench/llm-kernels/llmspeed.c runtime/llm/gguf.c \
	runtime/llm/quant.c runtime/llm/model.c runtime/llm/pgemm.c \
	runtime/llm/sampler.c $(COMMON_SRCS)

$(BUILD)/bench/llmspeed: $(call objs,$(LLMSPEED_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call pkglibs,openblas) -lpthread -lm
unit: $(BUILD)/bench/llmspeed
