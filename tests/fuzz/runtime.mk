# tests/fuzz/runtime.mk - fuzz targets of the runtime's parsers: the IPC
# frame codec (common/ipc.c) and the ONNX loader.  Seeds: tests/fuzz/corpus/
# (regenerate with tests/fuzz/corpus/gen-seeds.py).
FUZZ_TARGETS += fuzz_ipc fuzz_onnx
fuzz_ipc_SRCS := tests/fuzz/fuzz_ipc.c $(COMMON_SRCS)
fuzz_onnx_SRCS := tests/fuzz/fuzz_onnx.c $(RUNTIME_ONNX_SRCS) $(COMMON_SRCS) \
	$(GEN)/onnx.pb-c.c
fuzz_onnx_PKGS := libprotobuf-c openblas
