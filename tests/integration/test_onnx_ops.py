"""ONNX operator breadth end to end: a model with operators maas lacks is
refused at registration with one 400 that lists every one of them and the
nodes using them; a transformer-style graph (a shape subgraph folded per
input shape, Gather over an INT64 input, LayerNormalization, Erf, Where,
Transpose, Softmax-13) is served and checked against numpy.  Models are
built here with python3-onnx and seeded numpy weights."""
import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from conftest import (HTTP_TIMEOUT, assert_error, deploy_file, infer,  # noqa
                      output_by_name, register_model, running_maasd,
                      tenant_with_key, tensor)

H = 8


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with running_maasd(tmp_path_factory.mktemp("onnxops")) as d:
        yield d


def _save(model, path):
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_unsupported_ops_refused_at_registration(d, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("HardMax", ["a"], ["b"], name="hm1"),
        helper.make_node("Celu", ["b"], ["c"], name="celu"),
        helper.make_node("HardMax", ["c"], ["y"], name="hm2"),
    ]
    g = helper.make_graph(nodes, "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "unsupported.onnx"
    onnx.save(m, str(path))
    r = d.apost("/admin/v1/models", {"name": "unsup", "version": "1",
                                     "path": str(path)})
    e = assert_error(r, 400)
    msg = e["message"]
    assert "unsupported operators: HardMax (node 'hm1', node 'hm2'), " \
        "Celu (node 'celu')" in msg, msg


def _transformer_model(path, seed):
    rng = np.random.default_rng(seed)
    vocab, seq = 16, 5
    emb = rng.standard_normal((vocab, H)).astype(np.float32)
    wq = rng.standard_normal((H, H)).astype(np.float32) * 0.3
    gamma = rng.random(H).astype(np.float32) + 0.5
    beta = rng.standard_normal(H).astype(np.float32) * 0.1
    inits = [numpy_helper.from_array(emb, "emb"),
             numpy_helper.from_array(wq, "wq"),
             numpy_helper.from_array(gamma, "gamma"),
             numpy_helper.from_array(beta, "beta"),
             numpy_helper.from_array(np.array([0], np.int64), "i0"),
             numpy_helper.from_array(np.array([0], np.int64), "ax0"),
             numpy_helper.from_array(np.array([-1], np.int64), "m1"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array(1 / math.sqrt(2),
                                              np.float32), "rs2")]
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["e"]),      # [N,S,H]
        helper.make_node("LayerNormalization", ["e", "gamma", "beta"],
                         ["ln"], axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["ln", "wq"], ["q"]),
        # gelu(q) = q * 0.5 * (1 + erf(q / sqrt 2))
        helper.make_node("Mul", ["q", "rs2"], ["qs"]),
        helper.make_node("Erf", ["qs"], ["er"]),
        helper.make_node("Mul", ["q", "er"], ["qe"]),
        helper.make_node("Add", ["q", "qe"], ["g2"]),
        # scores = g2 @ g2^T, masked where ids == 0, softmax over keys
        helper.make_node("Transpose", ["g2"], ["g2t"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["g2", "g2t"], ["sc"]),
        helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT),
        helper.make_node("Equal", ["idsf", "zero"], ["pad"]),
        helper.make_node("Unsqueeze", ["pad", "i0"], ["pad3"]),
        helper.make_node("Transpose", ["pad3"], ["padk"],
                         perm=[1, 0, 2]),
        helper.make_node("Where", ["padk", "zero", "sc"], ["scm"]),
        helper.make_node("Softmax", ["scm"], ["p"], axis=-1),
        # flatten to [N, S*S] with a shape computed from the input's
        # shape: Shape -> Gather -> Concat -> Reshape
        helper.make_node("Shape", ["ids"], ["shp"]),
        helper.make_node("Gather", ["shp", "ax0"], ["n"]),
        helper.make_node("Concat", ["n", "m1"], ["newshape"], axis=0),
        helper.make_node("Reshape", ["p", "newshape"], ["y"]),
    ]
    g = helper.make_graph(
        nodes, "enc",
        [helper.make_tensor_value_info("ids", TensorProto.INT64,
                                       ["N", seq])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["N", seq * seq])],
        inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    _save(m, path)
    return emb, wq, gamma, beta


def _erf(x):
    return np.vectorize(math.erf)(x.astype(np.float64))


def _reference(ids, emb, wq, gamma, beta):
    e = emb[ids].astype(np.float64)
    mu = e.mean(-1, keepdims=True)
    var = ((e - mu) ** 2).mean(-1, keepdims=True)
    ln = (e - mu) / np.sqrt(var + 1e-5) * gamma + beta
    q = ln @ wq
    g2 = q + q * _erf(q / math.sqrt(2))
    sc = g2 @ np.transpose(g2, (0, 2, 1))
    pad = (ids == 0)[:, None, :]
    sc = np.where(pad, 0.0, sc)
    sc = sc - sc.max(-1, keepdims=True)
    p = np.exp(sc) / np.exp(sc).sum(-1, keepdims=True)
    return p.reshape(ids.shape[0], -1)


def test_transformer_ops_served(d, tmp_path):
    path = tmp_path / "enc.onnx"
    w = _transformer_model(path, seed=5)
    deploy_file(d, "enc", path)
    _, key = tenant_with_key(d)
    s = d.tenant(key["key"])
    rng = np.random.default_rng(11)
    for batch in (1, 3, 3, 2):
        ids = rng.integers(0, 16, (batch, 5)).astype(np.int64)
        ids[0, -1] = 0
        r = infer(s, d, "enc", [tensor("ids", ids, datatype="INT64")])
        assert r.status_code == 200, r.text[:500]
        out = output_by_name(r.json(), "y")
        assert out["datatype"] == "FP32"
        assert out["shape"] == [batch, 25]
        got = np.array(out["data"]).reshape(out["shape"])
        np.testing.assert_allclose(got, _reference(ids, *w), rtol=1e-4,
                                   atol=1e-5)
    # the input dtype is checked
    r = infer(s, d, "enc", [tensor("ids", np.zeros((1, 5)))])
    assert_error(r, 400, mention="INT64")
