#!/usr/bin/python3
# tests/fuzz/corpus/gen-seeds.py - writes the seed corpora of fuzz_onnx and
# fuzz_ipc: tiny models covering every operator maas-runtime runs (made
# with the onnx package's own helpers, so they also cross-check our loader
# against the reference tooling) and a few well-formed IPC payloads.
# Every file stays well under a KiB.  Run with Debian's python3:
#   /usr/bin/python3 tests/fuzz/corpus/gen-seeds.py
import os
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
F = TensorProto.FLOAT


def init(name, shape, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(
        rng.uniform(-1, 1, shape).astype(dtype), name)


def model(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "seed", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def vi(name, shape):
    return helper.make_tensor_value_info(name, F, shape)


def onnx_seeds():
    n = helper.make_node
    s = {}
    s["mlp"] = model(
        [n("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
         n("Relu", ["h"], ["r"]),
         n("Gemm", ["r", "w2", "b2"], ["z"], transB=1),
         n("Softmax", ["z"], ["y"])],
        [vi("x", ["N", 4])], [vi("y", ["N", 2])],
        [init("w1", (3, 4), 1), init("b1", (3,), 2),
         init("w2", (2, 3), 3), init("b2", (2,), 4)])
    s["matmul_bcast"] = model(
        [n("MatMul", ["x", "w"], ["m"]), n("Add", ["m", "b"], ["y"])],
        [vi("x", ["N", 2, 3])], [vi("y", ["N", 2, 4])],
        [init("w", (3, 4), 5), init("b", (4,), 6)])
    s["reshape_flatten"] = model(
        [n("Constant", [], ["s"], value=numpy_helper.from_array(
            np.array([0, -1, 2], dtype=np.int64))),
         n("Reshape", ["x", "s"], ["r"]),
         n("Flatten", ["r"], ["f"], axis=1),
         n("Sigmoid", ["f"], ["y"])],
        [vi("x", ["N", 2, 3, 2])], [vi("y", ["N", 12])])
    s["softmax_v11"] = model(
        [n("Softmax", ["x"], ["t"], axis=1), n("Tanh", ["t"], ["y"])],
        [vi("x", ["N", 3, 2])], [vi("y", ["N", 3, 2])], opset=11)
    s["arith_fold"] = model(
        [n("Mul", ["a", "b"], ["ab"]), n("Sub", ["x", "ab"], ["d"]),
         n("Div", ["d", "c"], ["q"]), n("Identity", ["q"], ["y"])],
        [vi("x", ["N", 3])], [vi("y", ["N", 3])],
        [init("a", (3,), 7), init("b", (1, 3), 8), init("c", (3,), 9)])
    s["two_inputs"] = model(
        [n("Add", ["x", "z"], ["s"]), n("Relu", ["s"], ["y"])],
        [vi("x", ["N", 2]), vi("z", ["N", 1])], [vi("y", ["N", 2])])
    return s


def str16(b):
    return struct.pack("<H", len(b)) + b


def tensor(name, dims, dtype=1, esize=4):
    count = int(np.prod(dims)) if dims else 1
    return (str16(name) + struct.pack("<BB", dtype, len(dims)) +
            b"".join(struct.pack("<q", d) for d in dims) +
            struct.pack("<Q", count * esize) + bytes(count * esize))


def desc(name, dims, dtype=1):
    return (str16(name) + struct.pack("<BB", dtype, len(dims)) +
            b"".join(struct.pack("<q", d) for d in dims))


def hdr(t, req, n):
    return struct.pack("<IHHQI", 0x5341414d, 1, t, req, n)


def ipc_seeds():
    infer = (struct.pack("<I", 2) + tensor(b"input", [2, 3]) +
             tensor(b"ids", [4], dtype=7, esize=8) +
             struct.pack("<I", 1) + str16(b"output"))
    ok = struct.pack("<QI", 1234, 1) + tensor(b"output", [2, 2])
    meta = (struct.pack("<BQI", 1, 4096, 1) + desc(b"input", [-1, 784]) +
            struct.pack("<I", 1) + desc(b"output", [-1, 10]))
    return {
        "infer": hdr(3, 7, len(infer)) + infer,
        "infer_ok": hdr(4, 7, len(ok)) + ok,
        "hello": hdr(1, 0, len(meta)) + meta,
        "ping": hdr(10, 99, 0),
        "scalar": struct.pack("<I", 1) + tensor(b"s", []),
    }


def write(target, seeds):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        assert len(data) < 1024, name
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


write("fuzz_onnx", onnx_seeds())
write("fuzz_ipc", ipc_seeds())
