# tests/unit/llmtok.mk - the LLM tokenizers, chat templates and sampler
# (runtime/llm/tokenizer.c, chat.c, sampler.c).  test_tokenizer includes
# tokenizer.c to reach its statics, so it is not linked again.
UNIT_TESTS += test_tokenizer test_sampler test_chat
test_tokenizer_SRCS := tests/unit/test_tokenizer.c runtime/llm/unicode.c \
	runtime/llm/gguf.c $(COMMON_SRCS)
test_sampler_SRCS := tests/unit/test_sampler.c runtime/llm/sampler.c \
	runtime/llm/pgemm.c $(COMMON_SRCS)
test_chat_SRCS := tests/unit/test_chat.c runtime/llm/chat.c \
	runtime/llm/tokenizer.c runtime/llm/unicode.c runtime/llm/gguf.c \
	$(COMMON_SRCS)
