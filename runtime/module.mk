# runtime/module.mk - maas-runtime.
RUNTIME_ONNX_SRCS := runtime/onnx/load.c runtime/onnx/weights.c \
	runtime/onnx/ops.c runtime/onnx/exec.c runtime/kernels.c runtime/arena.c \
	runtime/gemm.c
RUNTIME_ONNX_SRCS += runtime/onnx/tensor.c runtime/onnx/ops_elem.c \
	runtime/onnx/ops_shape.c runtime/onnx/ops_nn.c runtime/onnx/ops_rnn.c
# LLM serving (GGUF): each part appends its sources here.
RUNTIME_LLM_SRCS :=
RUNTIME_LLM_SRCS += runtime/llm/gguf.c runtime/llm/quant.c runtime/llm/model.c \
	runtime/llm/pgemm.c
# llmserve: the engine, and the tokenizer, sampler and chat templates it
# needs (listed again by their part does no harm: $^ drops duplicates).
RUNTIME_LLM_SRCS += runtime/llm/engine.c runtime/llm/tokenizer.c \
	runtime/llm/unicode.c runtime/llm/sampler.c runtime/llm/chat.c
RUNTIME_SRCS = runtime/main.c runtime/modelfile.c runtime/sandbox.c \
	runtime/serve.c $(RUNTIME_ONNX_SRCS) $(RUNTIME_LLM_SRCS)
