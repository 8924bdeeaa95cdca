#!/usr/bin/python3
# tools/check-runtime.py - serves a maas-genmodel MLP through maas-runtime
# over a socketpair, exactly as maasd would (frames of common/ipc.h), and
# compares every answer with a numpy forward pass of the same file read
# with onnx.numpy_helper.  Prints the sandbox state seen in /proc and the
# largest absolute difference; exits non-zero above 1e-5.
#   build/rt/bin/maas-genmodel mlp --layers 784,128,64,10 --seed 42 -o m.onnx
#   /usr/bin/python3 tools/check-runtime.py build/rt/bin/maas-runtime m.onnx
import os
import socket
import struct
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

MAGIC = 0x5341414D
HELLO, ERROR, INFER, INFER_OK, INFER_ERR, PING, PONG = 1, 2, 3, 4, 5, 10, 11


def frame(t, req, payload=b""):
    return struct.pack("<IHHQI", MAGIC, 1, t, req, len(payload)) + payload


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("runtime closed the socket")
        b += c
    return b


def read_frame(s):
    magic, ver, t, req, n = struct.unpack("<IHHQI", recv_exact(s, 20))
    assert magic == MAGIC and ver == 1
    return t, req, recv_exact(s, n)


def str16(b):
    return struct.pack("<H", len(b)) + b


def put_tensor(name, a):
    a = np.ascontiguousarray(a, dtype="<f4")
    return (str16(name.encode()) + struct.pack("<BB", 1, a.ndim) +
            b"".join(struct.pack("<q", d) for d in a.shape) +
            struct.pack("<Q", a.nbytes) + a.tobytes())


def get_tensors(b, off):
    (n,), off = struct.unpack_from("<I", b, off), off + 4
    out = {}
    for _ in range(n):
        (ln,) = struct.unpack_from("<H", b, off)
        name = b[off + 2:off + 2 + ln].decode()
        off += 2 + ln
        dt, nd = struct.unpack_from("<BB", b, off)
        dims = struct.unpack_from("<%dq" % nd, b, off + 2)
        off += 2 + 8 * nd
        (nb,) = struct.unpack_from("<Q", b, off)
        off += 8
        assert dt == 1
        out[name] = np.frombuffer(b[off:off + nb], "<f4").reshape(dims)
        off += nb
    return out


def forward(model, x, dtype):
    w = {t.name: numpy_helper.to_array(t).astype(dtype)
         for t in model.graph.initializer}
    v = {model.graph.input[0].name: x.astype(dtype)}
    for n in model.graph.node:
        a = [v[i] if i in v else w[i] for i in n.input]
        if n.op_type == "Gemm":
            y = a[0] @ a[1].T + a[2]
        elif n.op_type == "Relu":
            y = np.maximum(a[0], 0)
        elif n.op_type == "Softmax":
            e = np.exp(a[0] - a[0].max(axis=-1, keepdims=True))
            y = e / e.sum(axis=-1, keepdims=True)
        else:
            raise SystemExit("unexpected op " + n.op_type)
        v[n.output[0]] = y
    return v[model.graph.output[0].name]


def main():
    rt, path = sys.argv[1], sys.argv[2]
    model = onnx.load(path)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    p = subprocess.Popen([rt, "--fd", str(theirs.fileno()), "--model", path,
                          "--threads", "2"], pass_fds=(theirs.fileno(),))
    theirs.close()
    t, _, payload = read_frame(ours)
    if t != HELLO:
        raise SystemExit("runtime refused the model: %r" % payload[2:])
    status = open("/proc/%d/status" % p.pid).read()
    seccomp = [l for l in status.splitlines() if l.startswith("Seccomp:")]
    fds = sorted(os.readlink("/proc/%d/fd/%s" % (p.pid, f))
                 for f in os.listdir("/proc/%d/fd" % p.pid))
    print("pid %d: %s; fds %s" % (p.pid, seccomp[0], fds))

    rng = np.random.default_rng(1)
    width = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    worst32 = worst64 = 0.0
    for req, batch in enumerate([1, 2, 7, 64, 7, 1], start=1):
        x = rng.standard_normal((batch, width)).astype(np.float32)
        ours.sendall(frame(INFER, req, struct.pack("<I", 1) +
                           put_tensor("input", x) + struct.pack("<I", 0)))
        t, r, payload = read_frame(ours)
        assert t == INFER_OK and r == req, (t, r, payload)
        (us,) = struct.unpack_from("<Q", payload)
        y = get_tensors(payload, 8)["output"]
        d32 = float(np.abs(y - forward(model, x, np.float32)).max())
        d64 = float(np.abs(y - forward(model, x, np.float64)).max())
        worst32, worst64 = max(worst32, d32), max(worst64, d64)
        print("batch %2d: %5d us, max |diff| %.3g (numpy fp32) %.3g (fp64)"
              % (batch, us, d32, d64))
    ours.sendall(frame(PING, 99))
    assert read_frame(ours)[:2] == (PONG, 99)
    ours.close()
    rc = p.wait()
    print("max abs diff: %.3g vs numpy fp32, %.3g vs fp64; exit %d"
          % (worst32, worst64, rc))
    sys.exit(0 if max(worst32, worst64) < 1e-5 and rc == 0 else 1)


main()
