# tests/unit/runtime.mk - unit tests of common/ipc, common/wire and the
# runtime (kernels, ONNX loader and executor, the maas-runtime process).
UNIT_TESTS += test_ipc test_kernels test_onnx_ops test_onnx_load \
	test_runtime

test_ipc_SRCS := tests/unit/test_ipc.c $(COMMON_SRCS)

test_kernels_SRCS := tests/unit/test_kernels.c runtime/kernels.c
test_kernels_PKGS := openblas

RT_TEST_SRCS := $(RUNTIME_ONNX_SRCS) $(TOOLS_ONNXB_SRCS) $(COMMON_SRCS) \
	$(GEN)/onnx.pb-c.c
# Loading, running and checking a graph in the ONNX tests.
ONNX_TESTUTIL_SRCS := tests/unit/onnx_testutil.c
test_onnx_ops_SRCS := tests/unit/test_onnx_ops.c $(ONNX_TESTUTIL_SRCS) \
	$(RT_TEST_SRCS)
test_onnx_ops_PKGS := libprotobuf-c openblas
test_onnx_load_SRCS := tests/unit/test_onnx_load.c tests/unit/alloccount.c $(ONNX_TESTUTIL_SRCS) \
	$(RT_TEST_SRCS)
test_onnx_load_PKGS := libprotobuf-c openblas
# Conv, pools, BatchNormalization, LogSoftmax, RNN/GRU/LSTM.
UNIT_TESTS += test_onnx_nn
test_onnx_nn_SRCS := tests/unit/test_onnx_nn.c $(ONNX_TESTUTIL_SRCS) \
	$(RT_TEST_SRCS)
test_onnx_nn_PKGS := libprotobuf-c openblas
TESTS_NEED_ONNX += tests/unit/test_onnx_nn.c

# Weights left in the model's files; external data files.
UNIT_TESTS += test_weights
test_weights_SRCS := tests/unit/test_weights.c runtime/modelfile.c \
	$(RT_TEST_SRCS)
test_weights_PKGS := libprotobuf-c openblas
TESTS_NEED_ONNX += tests/unit/test_weights.c

# Drives the real binary over a socketpair (MAAS_RUNTIME overrides).
test_runtime_SRCS := tests/unit/test_runtime.c $(TOOLS_ONNXB_SRCS) \
	$(COMMON_SRCS) $(GEN)/onnx.pb-c.c
test_runtime_PKGS := libprotobuf-c
$(BUILD)/tests/test_runtime: | $(BIN)/maas-runtime $(BIN)/maas-genmodel
$(BUILD)/obj/tests/unit/test_runtime.o: \
	ALL_CFLAGS += -DMAAS_RUNTIME_BIN='"$(abspath $(BIN))/maas-runtime"'

TESTS_NEED_ONNX += tests/unit/test_onnx_ops.c tests/unit/test_onnx_load.c \
	tests/unit/test_runtime.c tests/unit/onnx_testutil.c

# The ONNX node-test conformance runner (tests/conformance/): built with
# the unit tests, run by scripts/test.sh over libonnx-testdata.
UNIT_TESTS += onnx_conformance
onnx_conformance_SRCS := tests/conformance/onnx_conformance.c \
	$(RUNTIME_ONNX_SRCS) $(COMMON_SRCS) $(GEN)/onnx.pb-c.c
onnx_conformance_PKGS := libprotobuf-c openblas
TESTS_NEED_ONNX += tests/conformance/onnx_conformance.c
