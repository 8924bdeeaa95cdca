#!/usr/bin/python3
# tests/fuzz/corpus/gen-seeds.py - writes the seed corpora of fuzz_onnx and
# fuzz_ipc: tiny models covering every operator maas-runtime runs (made
# with the onnx package's own helpers, so they also cross-check our loader
# against the reference tooling) and one well-formed example of every IPC
# payload fuzz_ipc decodes, in the current wire format (keep in step with
# common/ipc.c: a seed that no longer decodes starts the fuzzer nowhere).
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
    s["cnn"] = model(
        [n("Conv", ["x", "w", "b"], ["c"], pads=[1, 0, 1, 0], strides=[1, 2],
           group=2),
         n("BatchNormalization", ["c", "s", "b", "b", "s"], ["bn"]),
         n("MaxPool", ["bn"], ["m"], kernel_shape=[2, 2], ceil_mode=1),
         n("AveragePool", ["m"], ["a"], kernel_shape=[2, 1],
           auto_pad="SAME_UPPER", count_include_pad=1),
         n("GlobalAveragePool", ["a"], ["g"]),
         n("Flatten", ["g"], ["f"]),
         n("LogSoftmax", ["f"], ["y"])],
        [vi("x", ["N", 2, 4, 5])], [vi("y", ["N", 2])],
        [init("w", (2, 1, 3, 2), 10), init("b", (2,), 11),
         init("s", (2,), 12)])
    s["lstm"] = model(
        [n("LSTM", ["x", "w", "r", "", "", "", "", "p"], ["", "y"],
           hidden_size=2, direction="bidirectional", layout=1)],
        [vi("x", ["N", 3, 2])], [vi("y", ["N", 2, 2])],
        [init("w", (2, 8, 2), 13), init("r", (2, 8, 2), 14),
         init("p", (2, 6), 15)], opset=14)
    s["gru"] = model(
        [n("GRU", ["x", "w", "r", "b"], ["y"], hidden_size=2,
           linear_before_reset=1, direction="reverse", clip=2.0)],
        [vi("x", [3, "N", 2])], [vi("y", [3, 1, "N", 2])],
        [init("w", (1, 6, 2), 16), init("r", (1, 6, 2), 17),
         init("b", (1, 12), 18)])
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


def str32(b):
    return struct.pack("<I", len(b)) + b


def f32s(*v):
    return struct.pack("<%df" % len(v), *v)


def hello(fmt, mem, shared, inputs, outputs, llm=b""):
    # HELLO (common/ipc.c ipc_meta_encode): u8 format | u64 mem_bytes |
    # u32 n, inputs | u32 n, outputs | u64 shared_bytes | llm part (GGUF).
    return (struct.pack("<BQI", fmt, mem, len(inputs)) + b"".join(inputs) +
            struct.pack("<I", len(outputs)) + b"".join(outputs) +
            struct.pack("<Q", shared) + llm)


def llm_meta(n_ctx, n_vocab, n_embd, max_seqs, arch, template):
    return (struct.pack("<IIII", n_ctx, n_vocab, n_embd, max_seqs) +
            str16(arch) + str16(template))


def generate(mode, tenant, msgs, prompt, max_tokens, temp, top_p, min_p,
             pres, freq, top_k, seed, logprobs, top_lp, stop, bias):
    return (struct.pack("<B", mode) + str16(tenant) +
            struct.pack("<I", len(msgs)) +
            b"".join(str16(r) + str32(c) for r, c in msgs) +
            str32(prompt) + struct.pack("<I", max_tokens) +
            f32s(temp, top_p, min_p, pres, freq) +
            struct.pack("<IQBBI", top_k, seed, logprobs, top_lp, len(stop)) +
            b"".join(str16(x) for x in stop) +
            struct.pack("<I", len(bias)) +
            b"".join(struct.pack("<if", t, v) for t, v in bias))


def token(tid, text, lp, top):
    return (struct.pack("<i", tid) + str16(text) + str16(lp[0]) +
            f32s(lp[1]) + struct.pack("<B", len(top)) +
            b"".join(str16(t) + f32s(v) for t, v in top))


def done(finish, prompt, cached, completion, compute_us, embd=()):
    return (struct.pack("<BIIIQI", finish, prompt, cached, completion,
                        compute_us, len(embd)) + f32s(*embd))


def ipc_seeds():
    infer = (struct.pack("<I", 2) + tensor(b"input", [2, 3]) +
             tensor(b"ids", [4], dtype=7, esize=8) +
             struct.pack("<I", 1) + str16(b"output"))
    ok = struct.pack("<QI", 1234, 1) + tensor(b"output", [2, 2])
    meta = hello(1, 4096, 2048, [desc(b"input", [-1, 784])],
                 [desc(b"output", [-1, 10])])
    llm = llm_meta(2048, 512, 64, 8, b"llama", b"chatml")
    # Payloads without a header, as the LLM engine exchanges them.
    return {
        "infer": hdr(3, 7, len(infer)) + infer,
        "infer_ok": hdr(4, 7, len(ok)) + ok,
        "hello": hdr(1, 0, len(meta)) + meta,
        "hello_gguf": hello(2, 1 << 20, 512 << 10, [], [], llm),
        "llm_meta": llm,
        "ping": hdr(10, 99, 0),
        "scalar": struct.pack("<I", 1) + tensor(b"s", []),
        "gen_chat": generate(1, b"ten_a", [(b"system", b"be brief"),
                                           (b"user", b"hi")], b"", 16,
                             0.7, 0.9, 0.0, 0.0, 0.5, 40, 42, 1, 3,
                             [b"\n\n"], [(7, -100.0)]),
        "gen_completion": generate(2, b"", [], b"Once upon", 0, 0.0, 1.0,
                                   0.0, 0.0, 0.0, 0, 0, 0, 0, [], []),
        "token": token(300, "h\u00e9".encode(), (b"h", -0.5),
                       [(b"h", -0.5), (b"x", -2.0)]),
        "token_flush": token(-1, b"tail", (b"", 0.0), []),
        "done": done(1, 10, 2, 5, 1234),
        "done_embd": done(1, 3, 0, 0, 99, (0.6, 0.8)),
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
