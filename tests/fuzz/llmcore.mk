# tests/fuzz/llmcore.mk - the GGUF parser and the llama model loader.
# Seeds in tests/fuzz/corpus/fuzz_gguf/ are tiny models made with
#   maas-gengguf --n-embd 8 --n-head 2 --n-head-kv 1 --n-ff 16 --n-layer 1
#	--vocab 300 --n-ctx 16 [--arch qwen2] [--tokenizer bpe] [--type f16]
# (and --n-embd 32 --n-ff 32 for q8_0 and q4_0).
FUZZ_TARGETS += fuzz_gguf
fuzz_gguf_SRCS := tests/fuzz/fuzz_gguf.c runtime/llm/gguf.c \
	runtime/llm/quant.c runtime/llm/model.c runtime/llm/pgemm.c common/xmalloc.c common/log.c
fuzz_gguf_PKGS := openblas
