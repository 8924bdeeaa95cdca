# runtime/gemm.c, the packed-weight products: the kernel against a triple
# loop (the test includes the .c), and Gemm/MatMul through the executor.
UNIT_TESTS += test_gemm test_onnx_gemm
test_gemm_SRCS := tests/unit/test_gemm.c runtime/kernels.c
test_gemm_PKGS := openblas
# Recursive: RT_TEST_SRCS comes from runtime.mk, whichever is read first.
test_onnx_gemm_SRCS = tests/unit/test_onnx_gemm.c tests/unit/alloccount.c $(ONNX_TESTUTIL_SRCS) \
	$(RT_TEST_SRCS)
test_onnx_gemm_PKGS := libprotobuf-c openblas
TESTS_NEED_ONNX += tests/unit/test_onnx_gemm.c
