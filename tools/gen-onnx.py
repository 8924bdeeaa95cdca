#!/usr/bin/python3
"""tools/gen-onnx.py - seeded ONNX models for tests and benchmarks that
maas-genmodel (MLPs only) does not make.  Run with Debian's python3 (it needs
python3-onnx and python3-numpy):

    tools/gen-onnx.py io          -o FILE   two inputs, three outputs
    tools/gen-onnx.py identity    -o FILE --dtype INT64   x -> Identity -> y
    tools/gen-onnx.py cast        -o FILE --dtype BOOL    x -> Cast(FLOAT) -> y
    tools/gen-onnx.py mlp         -o FILE [--layers 784,512,512,10]
    tools/gen-onnx.py cnn         -o FILE   [N,1,28,28] -> 2x(Conv Relu
                                            MaxPool) -> Flatten -> Gemm
    tools/gen-onnx.py transformer -o FILE [--layers 2 --hidden 256
                                  --heads 4 --seq 128]   encoder, post-LN,
                                            Erf GELU

Every model has a dynamic batch dimension "N" and weights drawn from
numpy's default_rng(--seed) (default 42): the same arguments always give
the same file.  The graphs use only standard ONNX operators (opset 17).
"""
import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
DTYPES = {
    "FP32": TensorProto.FLOAT, "FP16": TensorProto.FLOAT16,
    "FP64": TensorProto.DOUBLE, "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16, "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64, "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16, "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64, "BOOL": TensorProto.BOOL,
    "BYTES": TensorProto.STRING,
}


class Graph:
    """Collects nodes and initializers with unique names."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, arr, base="c"):
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def weight(self, shape, fan_in, base="w"):
        b = 1.0 / np.sqrt(fan_in)
        return self.const(self.rng.uniform(-b, b, shape).astype(np.float32),
                          base)

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def model(self, name, inputs, outputs):
        g = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("",
                                                                    OPSET)],
                              producer_name="maas-gen-onnx")
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def rename_last(g, old, new):
    for node in g.nodes:
        for i, o in enumerate(node.output):
            if o == old:
                node.output[i] = new


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def gen_io(a):
    """a, b [N,4] -> sum = a + b, prod = a * b, relu = Relu(a + b)."""
    g = Graph(a.seed)
    g.nodes += [helper.make_node("Add", ["a", "b"], ["sum"]),
                helper.make_node("Mul", ["a", "b"], ["prod"]),
                helper.make_node("Relu", ["sum"], ["relu"])]
    f = TensorProto.FLOAT
    return g.model("io", [vi("a", f, ["N", 4]), vi("b", f, ["N", 4])],
                   [vi("sum", f, ["N", 4]), vi("prod", f, ["N", 4]),
                    vi("relu", f, ["N", 4])])


def gen_identity(a):
    g = Graph(a.seed)
    g.nodes.append(helper.make_node("Identity", ["x"], ["y"]))
    t = DTYPES[a.dtype]
    return g.model("identity", [vi("x", t, ["N", 3])],
                   [vi("y", t, ["N", 3])])


def gen_cast(a):
    g = Graph(a.seed)
    g.nodes.append(helper.make_node("Cast", ["x"], ["y"],
                                    to=TensorProto.FLOAT))
    return g.model("cast", [vi("x", DTYPES[a.dtype], ["N", 3])],
                   [vi("y", TensorProto.FLOAT, ["N", 3])])


def gen_mlp(a):
    g = Graph(a.seed)
    widths = [int(x) for x in a.layers.split(",")]
    x = "input"
    for i in range(len(widths) - 1):
        w = g.weight((widths[i + 1], widths[i]), widths[i])
        b = g.weight((widths[i + 1],), widths[i], "b")
        x = g.op("Gemm", [x, w, b], transB=1)
        if i < len(widths) - 2:
            x = g.op("Relu", [x])
    x = g.op("Softmax", [x], axis=-1)
    rename_last(g, x, "output")
    f = TensorProto.FLOAT
    return g.model("mlp", [vi("input", f, ["N", widths[0]])],
                   [vi("output", f, ["N", widths[-1]])])


def gen_cnn(a):
    g = Graph(a.seed)
    x = "input"
    cin = 1
    for cout in (8, 16):
        w = g.weight((cout, cin, 3, 3), cin * 9)
        b = g.weight((cout,), cin * 9, "b")
        x = g.op("Conv", [x, w, b], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        x = g.op("Relu", [x])
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        cin = cout
    x = g.op("Flatten", [x], axis=1)
    w = g.weight((10, 16 * 7 * 7), 16 * 7 * 7)
    b = g.weight((10,), 16 * 7 * 7, "b")
    x = g.op("Gemm", [x, w, b], transB=1)
    rename_last(g, x, "output")
    f = TensorProto.FLOAT
    return g.model("cnn", [vi("input", f, ["N", 1, 28, 28])],
                   [vi("output", f, ["N", 10])])


def gen_transformer(a):
    g = Graph(a.seed)
    d, h, s = a.hidden, a.heads, a.seq
    dh = d // h
    if d % h:
        sys.exit("gen-onnx: --hidden must be a multiple of --heads")
    split = g.const(np.array([-1, s, h, dh], dtype=np.int64), "shape")
    merge = g.const(np.array([-1, s, d], dtype=np.int64), "shape")
    scale = g.const(np.array(1.0 / np.sqrt(dh), dtype=np.float32), "scale")
    half = g.const(np.array(0.5, dtype=np.float32), "half")
    one = g.const(np.array(1.0, dtype=np.float32), "one")
    rsqrt2 = g.const(np.array(1.0 / np.sqrt(2.0), dtype=np.float32), "r2")

    def linear(x, n_in, n_out):
        w = g.weight((n_in, n_out), n_in)
        b = g.weight((n_out,), n_in, "b")
        return g.op("Add", [g.op("MatMul", [x, w]), b])

    def layernorm(x):
        gamma = g.const(np.ones(d, dtype=np.float32), "gamma")
        beta = g.const(np.zeros(d, dtype=np.float32), "beta")
        return g.op("LayerNormalization", [x, gamma, beta], axis=-1,
                    epsilon=1e-5)

    def heads(x):				# [N,S,D] -> [N,H,S,Dh]
        return g.op("Transpose", [g.op("Reshape", [x, split])],
                    perm=[0, 2, 1, 3])

    x = "input"
    for _ in range(a.layers):
        q = heads(linear(x, d, d))
        k = g.op("Transpose", [g.op("Reshape", [linear(x, d, d), split])],
                 perm=[0, 2, 3, 1])		# [N,H,Dh,S]
        v = heads(linear(x, d, d))
        att = g.op("Softmax", [g.op("Mul", [g.op("MatMul", [q, k]),
                                           scale])], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [att, v])],
                   perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge])
        x = layernorm(g.op("Add", [x, linear(ctx, d, d)]))
        f1 = linear(x, d, 4 * d)
        gelu = g.op("Mul", [g.op("Mul", [f1, half]),
                            g.op("Add", [g.op("Erf", [g.op("Mul", [
                                f1, rsqrt2])]), one])])
        x = layernorm(g.op("Add", [x, linear(gelu, 4 * d, d)]))
    rename_last(g, x, "output")
    f = TensorProto.FLOAT
    return g.model("transformer", [vi("input", f, ["N", s, d])],
                   [vi("output", f, ["N", s, d])])


KINDS = {"io": gen_io, "identity": gen_identity, "cast": gen_cast,
         "mlp": gen_mlp, "cnn": gen_cnn, "transformer": gen_transformer}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dtype", default="INT64", choices=sorted(DTYPES))
    p.add_argument("--layers", default=None)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    a = p.parse_args()
    if a.kind == "mlp":
        a.layers = a.layers or "784,512,512,10"
    elif a.kind == "transformer":
        a.layers = int(a.layers or 2)
    onnx.save(KINDS[a.kind](a), a.output)


if __name__ == "__main__":
    main()
