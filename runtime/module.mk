# runtime/module.mk - maas-runtime.
RUNTIME_ONNX_SRCS := runtime/onnx/load.c runtime/onnx/ops.c \
	runtime/onnx/exec.c runtime/kernels.c runtime/arena.c
RUNTIME_SRCS := runtime/main.c runtime/modelfile.c runtime/sandbox.c \
	runtime/serve.c $(RUNTIME_ONNX_SRCS)
