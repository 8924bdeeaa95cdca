# tests/unit/llmapi.mk - the OpenAI-compatible API's request validation.
UNIT_TESTS += test_oaireq
test_oaireq_SRCS := tests/unit/test_oaireq.c gateway/oaireq.c $(COMMON_SRCS)
test_oaireq_PKGS := jansson
