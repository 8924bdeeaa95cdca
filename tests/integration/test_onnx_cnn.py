"""CNN and recurrent models end to end: a small CNN (Conv with bias and
padding, BatchNormalization, Relu, MaxPool, a grouped strided Conv,
AveragePool, GlobalAveragePool, Flatten, Gemm, LogSoftmax) and a
bidirectional LSTM over a dynamic sequence are registered, served by
maasd over TLS and compared with numpy references.  Models are built here
with python3-onnx from seeded numpy weights."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from conftest import (assert_error, deploy_file, infer,  # noqa: E402
                      output_by_name, running_maasd, tenant_with_key,
                      tensor)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with running_maasd(tmp_path_factory.mktemp("onnxcnn")) as d:
        yield d


@pytest.fixture(scope="module")
def sess(d):
    _, key = tenant_with_key(d)
    return d.tenant(key["key"])


def _save(model, path):
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# --- numpy references ---------------------------------------------------

def _conv(x, w, b, stride=1, pad=0, group=1):
    """Direct 2-D convolution, x (N, C, H, W), w (M, C/group, kh, kw)."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.zeros((n, m, oh, ow))
    mg = m // group
    for o in range(m):
        g = o // mg
        xs = x[:, g * cg:(g + 1) * cg]
        for i in range(oh):
            for j in range(ow):
                win = xs[:, :, i * stride:i * stride + kh,
                         j * stride:j * stride + kw]
                y[:, o, i, j] = (win * w[o]).sum(axis=(1, 2, 3))
        y[:, o] += b[o]
    return y


def _pool(x, k, stride, op):
    n, c, h, w = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = op(x[:, :, i * stride:i * stride + k,
                                 j * stride:j * stride + k], axis=(2, 3))
    return y


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# --- the CNN ------------------------------------------------------------

def _cnn_model(path, seed):
    rng = np.random.default_rng(seed)
    w = {
        "w1": rng.standard_normal((8, 3, 3, 3)) * 0.3,
        "b1": rng.standard_normal(8) * 0.1,
        "scale": rng.random(8) + 0.5,
        "shift": rng.standard_normal(8) * 0.1,
        "mean": rng.standard_normal(8) * 0.1,
        "var": rng.random(8) + 0.5,
        "w2": rng.standard_normal((8, 4, 3, 3)) * 0.3,
        "b2": rng.standard_normal(8) * 0.1,
        "wf": rng.standard_normal((8, 10)) * 0.3,
        "bf": rng.standard_normal(10) * 0.1,
    }
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"],
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization",
                         ["c1", "scale", "shift", "mean", "var"], ["bn"],
                         epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], group=2,
                         kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p2"],
                         kernel_shape=[2, 2], strides=[1, 1]),
        helper.make_node("GlobalAveragePool", ["p2"], ["gp"]),
        helper.make_node("Flatten", ["gp"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], ["y"], axis=-1),
    ]
    g = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       ["N", 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(v, k) for k, v in w.items()])
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
          path)
    return {k: v.astype(np.float64) for k, v in w.items()}


def _cnn_ref(x, w):
    c1 = _conv(x.astype(np.float64), w["w1"], w["b1"], pad=1)
    ch = (slice(None), None, None)
    bn = (c1 - w["mean"][ch]) / np.sqrt(w["var"][ch] + 1e-5) * \
        w["scale"][ch] + w["shift"][ch]
    p1 = _pool(np.maximum(bn, 0), 2, 2, np.max)
    c2 = _conv(p1, w["w2"], w["b2"], stride=2, pad=1, group=2)
    p2 = _pool(np.maximum(c2, 0), 2, 1, np.mean)
    logits = p2.mean(axis=(2, 3)) @ w["wf"] + w["bf"]
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_cnn_served(d, sess, tmp_path):
    w = _cnn_model(tmp_path / "cnn.onnx", seed=3)
    deploy_file(d, "cnn", tmp_path / "cnn.onnx")
    rng = np.random.default_rng(7)
    for batch in (1, 4, 2):
        x = rng.standard_normal((batch, 3, 12, 12)).astype(np.float32)
        r = infer(sess, d, "cnn", [tensor("x", x)])
        assert r.status_code == 200, r.text[:500]
        out = output_by_name(r.json(), "y")
        assert out["shape"] == [batch, 10]
        got = np.array(out["data"]).reshape(out["shape"])
        np.testing.assert_allclose(got, _cnn_ref(x, w), rtol=1e-4,
                                   atol=1e-4)
    # a picture of the wrong size is the caller's error
    r = infer(sess, d, "cnn", [tensor("x", np.zeros((1, 3, 10, 12)))])
    assert_error(r, 400, mention="expected shape")


def test_conv_bad_channels_refused(d, tmp_path):
    w = numpy_helper.from_array(np.zeros((4, 2, 3, 3), np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c")], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["N", 4, 6, 6])],
        [w])
    path = _save(helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17)]),
        tmp_path / "badconv.onnx")
    r = d.apost("/admin/v1/models", {"name": "badconv", "version": "1",
                                     "path": str(path)})
    e = assert_error(r, 400)
    assert "node 'c' (Conv): X has 3 channels" in e["message"], e


# --- the LSTM -----------------------------------------------------------

IN, HID = 4, 5


def _lstm_model(path, seed):
    rng = np.random.default_rng(seed)
    w = {
        "W": rng.standard_normal((2, 4 * HID, IN)) * 0.4,
        "R": rng.standard_normal((2, 4 * HID, HID)) * 0.4,
        "B": rng.standard_normal((2, 8 * HID)) * 0.1,
    }
    w = {k: v.astype(np.float32) for k, v in w.items()}
    g = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R", "B"], ["y", "yh"],
                          hidden_size=HID, direction="bidirectional")],
        "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       ["S", "N", IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["S", 2, "N", HID]),
         helper.make_tensor_value_info("yh", TensorProto.FLOAT,
                                       [2, "N", HID])],
        [numpy_helper.from_array(v, k) for k, v in w.items()])
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]),
          path)
    return {k: v.astype(np.float64) for k, v in w.items()}


def _lstm_ref(x, w):
    s, n, _ = x.shape
    y = np.zeros((s, 2, n, HID))
    yh = np.zeros((2, n, HID))
    for d in range(2):
        wi, ri = w["W"][d], w["R"][d]
        b = w["B"][d][:4 * HID] + w["B"][d][4 * HID:]
        h = np.zeros((n, HID))
        c = np.zeros((n, HID))
        for t in (range(s) if d == 0 else reversed(range(s))):
            a = x[t] @ wi.T + h @ ri.T + b
            i, o, f, g = (a[:, k * HID:(k + 1) * HID] for k in range(4))
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            y[t, d] = h
        yh[d] = h
    return y, yh


def test_lstm_served(d, sess, tmp_path):
    w = _lstm_model(tmp_path / "lstm.onnx", seed=9)
    deploy_file(d, "lstm", tmp_path / "lstm.onnx")
    rng = np.random.default_rng(13)
    for seq, batch in ((6, 1), (3, 4), (6, 1)):
        x = rng.standard_normal((seq, batch, IN)).astype(np.float32)
        r = infer(sess, d, "lstm", [tensor("x", x)])
        assert r.status_code == 200, r.text[:500]
        y, yh = _lstm_ref(x.astype(np.float64), w)
        out = output_by_name(r.json(), "y")
        assert out["shape"] == [seq, 2, batch, HID]
        np.testing.assert_allclose(
            np.array(out["data"]).reshape(out["shape"]), y, rtol=1e-4,
            atol=1e-5)
        out = output_by_name(r.json(), "yh")
        assert out["shape"] == [2, batch, HID]
        np.testing.assert_allclose(
            np.array(out["data"]).reshape(out["shape"]), yh, rtol=1e-4,
            atol=1e-5)
