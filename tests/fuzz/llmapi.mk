# tests/fuzz/llmapi.mk - the OpenAI-compatible API's request validation.
FUZZ_TARGETS += fuzz_oaireq
fuzz_oaireq_SRCS := tests/fuzz/fuzz_oaireq.c gateway/oaireq.c $(COMMON_SRCS)
fuzz_oaireq_PKGS := jansson
