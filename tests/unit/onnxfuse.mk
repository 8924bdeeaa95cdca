# The ONNX executor's aliases and fusions and the vectorised kernels.
# Recursive: RT_TEST_SRCS comes from runtime.mk, whichever is read first.
UNIT_TESTS += test_onnx_fuse
test_onnx_fuse_SRCS = tests/unit/test_onnx_fuse.c $(ONNX_TESTUTIL_SRCS) \
	$(RT_TEST_SRCS)
test_onnx_fuse_PKGS := libprotobuf-c openblas
TESTS_NEED_ONNX += tests/unit/test_onnx_fuse.c
