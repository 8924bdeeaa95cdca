# runtime/module.mk - maas-runtime.
RUNTIME_ONNX_SRCS := runtime/onnx/load.c runtime/onnx/ops.c \
	runtime/onnx/exec.c runtime/kernels.c runtime/arena.c
# LLM serving (GGUF): each part appends its sources here.
RUNTIME_LLM_SRCS :=
RUNTIME_SRCS = runtime/main.c runtime/modelfile.c runtime/sandbox.c \
	runtime/serve.c $(RUNTIME_ONNX_SRCS) $(RUNTIME_LLM_SRCS)
