# tests/unit/llmcore.mk - the GGUF loader and the llama forward pass.
# test_llm_gguf builds GGUF files in memory (parser refusals, model load
# refusals); test_llm_model runs models made by maas-gengguf (batch
# invariance, prefill against decode).  llm_logits is a helper the numpy
# comparison (tests/integration/test_llm_ref.py) runs; never installed.
LLMCORE_SRCS := runtime/llm/gguf.c runtime/llm/quant.c runtime/llm/model.c runtime/llm/pgemm.c \
	$(COMMON_SRCS)

$(BUILD)/tests/llm_logits: $(call objs,tests/unit/llm_logits.c $(LLMCORE_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call pkglibs,openblas) -lpthread -lm
unit: $(BUILD)/tests/llm_logits

UNIT_TESTS += test_llm_gguf
test_llm_gguf_SRCS := tests/unit/test_llm_gguf.c $(LLMCORE_SRCS)
test_llm_gguf_PKGS := openblas

UNIT_TESTS += test_llm_quant
test_llm_quant_SRCS := tests/unit/test_llm_quant.c runtime/llm/quant.c \
	runtime/llm/pgemm.c \
	runtime/llm/gguf.c common/xmalloc.c
test_llm_quant_PKGS :=

UNIT_TESTS += test_llm_pgemm
test_llm_pgemm_SRCS := tests/unit/test_llm_pgemm.c runtime/llm/pgemm.c
test_llm_pgemm_PKGS :=
