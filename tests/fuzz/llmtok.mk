# tests/fuzz/llmtok.mk - the LLM tokenizers (text of any bytes, and the
# tokenizer.ggml.* keys of a GGUF image) and the chat templates.
FUZZ_TARGETS += fuzz_tokenizer fuzz_chat
fuzz_tokenizer_SRCS := tests/fuzz/fuzz_tokenizer.c runtime/llm/tokenizer.c \
	runtime/llm/unicode.c runtime/llm/gguf.c $(COMMON_SRCS)
fuzz_chat_SRCS := tests/fuzz/fuzz_chat.c runtime/llm/chat.c \
	runtime/llm/tokenizer.c runtime/llm/unicode.c runtime/llm/gguf.c \
	$(COMMON_SRCS)
