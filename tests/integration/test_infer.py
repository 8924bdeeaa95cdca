"""KServe v2 inference over HTTPS checked against a numpy forward pass of
the same ONNX file; metadata; output selection; versioned route; id echo;
the --demo flow, including a restart on the same data dir."""
import json
import re
import shlex
import subprocess

import numpy as np
import pytest

from conftest import (HTTP_TIMEOUT, KEY_RE, SCALE, assert_close,
                      assert_error, deploy, deploy_file, infer, onnx_forward,
                      onnx_io, output_by_name, running_maasd, tenant_with_key,
                      tensor, wait_for)

LAYERS = (784, 128, 64, 10)
ONNX_FLOAT = 1


@pytest.fixture(scope="module")
def env(tmp_path_factory, models):
    base = tmp_path_factory.mktemp("infer")
    with running_maasd(base) as d:
        mlp = models.get(LAYERS, seed=42)
        raw = models.get(LAYERS, seed=7, softmax=False)
        deploy_file(d, "mlp", mlp)
        deploy_file(d, "mlp-raw", raw)
        _, key = tenant_with_key(d)
        yield {"d": d, "s": d.tenant(key["key"]), "mlp": mlp, "raw": raw,
               "key": key}


def _x(batch, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.random((batch, 784)) * scale).astype(np.float32)


def _check_against_reference(resp, path, x, model, version="1"):
    assert resp.status_code == 200, resp.text[:500]
    j = resp.json()
    assert j["model_name"] == model
    assert j["model_version"] == version
    assert len(j["outputs"]) == 1, j["outputs"]
    out = output_by_name(j, "output")
    assert out["datatype"] == "FP32"
    assert out["shape"] == [x.shape[0], 10]
    assert len(out["data"]) == x.shape[0] * 10
    want = onnx_forward(path, {"input": x})["output"]
    assert_close(np.array(out["data"]).reshape(out["shape"]), want)
    return np.array(out["data"]).reshape(out["shape"])


def test_model_metadata_matches_file(env):
    d, s = env["d"], env["s"]
    r = s.get(d.url("/v2/models/mlp"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-request-id")
    m = r.json()
    assert m["name"] == "mlp"
    assert m["versions"] == ["1"]
    assert isinstance(m["platform"], str) and m["platform"]
    ins, outs = onnx_io(env["mlp"])
    assert ins == [("input", ONNX_FLOAT, [-1, 784])]
    assert outs == [("output", ONNX_FLOAT, [-1, 10])]
    assert m["inputs"] == [{"name": "input", "datatype": "FP32",
                            "shape": [-1, 784]}]
    assert m["outputs"] == [{"name": "output", "datatype": "FP32",
                             "shape": [-1, 10]}]
    r = s.get(d.url("/v2/models/mlp/versions/1"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.json()["inputs"] == m["inputs"]
    assert_error(s.get(d.url("/v2/models/mlp/versions/9"),
                       timeout=HTTP_TIMEOUT), 404)
    assert_error(s.get(d.url("/v2/models/no-such-model"),
                       timeout=HTTP_TIMEOUT), 404)


def test_ready_and_server_routes(env):
    d, s = env["d"], env["s"]
    r = s.get(d.url("/v2/models/mlp/ready"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert_error(s.get(d.url("/v2/models/no-such-model/ready"),
                       timeout=HTTP_TIMEOUT), 404)
    r = s.get(d.url("/v2"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and isinstance(r.json().get("name"), str)
    assert "extensions" in r.json()
    assert s.get(d.url("/v2/health/live"),
                 timeout=HTTP_TIMEOUT).status_code == 200
    assert s.get(d.url("/v2/health/ready"),
                 timeout=HTTP_TIMEOUT).status_code == 200
    assert d.get("/readyz").status_code == 200


def test_batch1_flat_matches_numpy(env):
    d, s = env["d"], env["s"]
    x = _x(1, seed=1)
    r = infer(s, d, "mlp", [tensor("input", x)])
    y = _check_against_reference(r, env["mlp"], x, "mlp")
    assert abs(y.sum() - 1.0) < 1e-4          # softmax rows sum to 1


def test_batch8_nested_matches_numpy(env):
    d, s = env["d"], env["s"]
    x = _x(8, seed=2)
    r = infer(s, d, "mlp", [tensor("input", x, nested=True)])
    y = _check_against_reference(r, env["mlp"], x, "mlp")
    assert np.allclose(y.sum(axis=1), 1.0, atol=1e-4)
    # rows really differ (the batch is not one row repeated)
    assert not np.allclose(y[0], y[1])


def test_batch8_flat_and_no_softmax_model(env):
    d, s = env["d"], env["s"]
    x = _x(8, seed=3, scale=4.0)
    r = infer(s, d, "mlp-raw", [tensor("input", x)])
    y = _check_against_reference(r, env["raw"], x, "mlp-raw")
    assert not np.allclose(y.sum(axis=1), 1.0, atol=1e-3)  # raw logits


def test_flat_and_nested_give_identical_results(env):
    d, s = env["d"], env["s"]
    x = _x(3, seed=4)
    a = infer(s, d, "mlp", [tensor("input", x)])
    b = infer(s, d, "mlp", [tensor("input", x, nested=True)])
    assert a.status_code == b.status_code == 200
    assert a.json()["outputs"] == b.json()["outputs"]


def test_output_selection(env):
    d, s = env["d"], env["s"]
    x = _x(2, seed=5)
    r = infer(s, d, "mlp", [tensor("input", x)], outputs=[{"name": "output"}])
    _check_against_reference(r, env["mlp"], x, "mlp")
    r = infer(s, d, "mlp", [tensor("input", x)], outputs=[{"name": "nope"}])
    assert_error(r, 400, mention="nope")


def test_versioned_route(env):
    d, s = env["d"], env["s"]
    x = _x(2, seed=6)
    r = infer(s, d, "mlp", [tensor("input", x)], version="1")
    _check_against_reference(r, env["mlp"], x, "mlp", version="1")
    plain = infer(s, d, "mlp", [tensor("input", x)])
    assert plain.json()["outputs"] == r.json()["outputs"]
    r = infer(s, d, "mlp", [tensor("input", x)], version="2")
    assert_error(r, 404)


def test_id_is_echoed(env):
    d, s = env["d"], env["s"]
    x = _x(1, seed=7)
    r = infer(s, d, "mlp", [tensor("input", x)], req_id="client-req-42")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "client-req-42"
    r = infer(s, d, "mlp", [tensor("input", x)])
    assert r.status_code == 200 and "id" not in r.json()
    ids = {infer(s, d, "mlp", [tensor("input", x)]).headers["x-request-id"]
           for _ in range(3)}
    assert len(ids) == 3, "x-request-id must be unique per request"


def _custom_model(path):
    """Two outputs and Gemm attributes genmodel never writes: transB=0 with
    alpha/beta on the first Gemm, transB=1 on the second.  Input 'pixels'
    [N,6] -> logits [N,3] and probs [N,3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    w1 = rng.standard_normal((6, 5)).astype(np.float32)
    b1 = rng.standard_normal((5,)).astype(np.float32)
    w2 = rng.standard_normal((3, 5)).astype(np.float32)
    b2 = rng.standard_normal((3,)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["pixels", "w1", "b1"], ["hidden"],
                         alpha=0.5, beta=2.0, transB=0),
        helper.make_node("Relu", ["hidden"], ["act"]),
        helper.make_node("Gemm", ["act", "w2", "b2"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    g = helper.make_graph(
        nodes, "custom",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                       ["N", 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["N", 3]),
         helper.make_tensor_value_info("probs", TensorProto.FLOAT,
                                       ["N", 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
         numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                          producer_name="maas-tests")
    m.ir_version = 7
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def test_gemm_attributes_and_two_outputs(env, models):
    d, s = env["d"], env["s"]
    path = _custom_model(models.root / "custom.onnx")
    deploy_file(d, "custom", path)
    m = s.get(d.url("/v2/models/custom"), timeout=HTTP_TIMEOUT).json()
    assert m["inputs"] == [{"name": "pixels", "datatype": "FP32",
                            "shape": [-1, 6]}]
    assert sorted(o["name"] for o in m["outputs"]) == ["logits", "probs"]
    x = np.random.default_rng(12).standard_normal((4, 6)).astype(np.float32)
    want = onnx_forward(path, {"pixels": x})
    r = infer(s, d, "custom", [tensor("pixels", x)])
    assert r.status_code == 200, r.text
    j = r.json()
    assert sorted(o["name"] for o in j["outputs"]) == ["logits", "probs"]
    for name in ("logits", "probs"):
        o = output_by_name(j, name)
        assert o["shape"] == [4, 3]
        assert_close(np.array(o["data"]).reshape(4, 3), want[name])
    r = infer(s, d, "custom", [tensor("pixels", x)],
              outputs=[{"name": "probs"}])
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["outputs"]] == ["probs"]
    assert_close(np.array(r.json()["outputs"][0]["data"]).reshape(4, 3),
                 want["probs"])


# --- the demo ----------------------------------------------------------------

def _banner_curl(stdout):
    """The curl command of the banner, continuation lines joined."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("curl "):
            cmd = []
            for part in lines[i:]:
                part = part.strip()
                if part.endswith("\\"):
                    cmd.append(part[:-1].strip())
                    continue
                cmd.append(part)
                break
            return " ".join(cmd)
    raise AssertionError(f"no curl line in the banner:\n{stdout}")


def _demo_model_path(d):
    r = d.aget("/admin/v1/models")
    assert r.status_code == 200, r.text
    rows = [m for m in r.json()["data"] if m["name"] == "demo-mlp"]
    assert len(rows) == 1, r.json()
    return rows[0]["path"]


def _run_banner_curl(d):
    wait_for(lambda: d.check_alive() or "curl " in d.stdout(), 60 * SCALE,
             interval=0.1,
             what="the demo banner")
    cmd = _banner_curl(d.stdout())
    assert "--cacert" in cmd and str(d.port) in cmd, cmd
    p = subprocess.run(["sh", "-c", cmd], capture_output=True,
                       timeout=60 * SCALE)
    assert p.returncode == 0, f"{cmd}\n{p.stderr.decode()}"
    try:
        return cmd, json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"curl output is not JSON: {p.stdout[:500]!r}")


def test_demo_flow_and_restart(maasd_factory):
    d = maasd_factory(demo=True)
    d.wait_ready()
    key = (d.data_dir / "demo.key").read_text().strip()
    assert KEY_RE.match(key), key
    token = d.admin_token
    cert_pem = (d.data_dir / "tls" / "cert.pem").read_bytes()
    wait_for(lambda: key in d.stdout(), 30 * SCALE, what="key in banner")

    # The banner's curl line, verbatim.
    cmd, out = _run_banner_curl(d)
    assert shlex.split(cmd)[0] == "curl"
    req = json.loads((d.data_dir / "demo-request.json").read_text())
    inp = req["inputs"][0]
    x = np.array(inp["data"], dtype=np.float32).reshape(inp["shape"])
    model = _demo_model_path(d)
    want = onnx_forward(model, {inp["name"]: x})
    assert out.get("model_name") == "demo-mlp", out
    o = out["outputs"][0]
    assert_close(np.array(o["data"]).reshape(o["shape"]),
                 want[o["name"]])

    # A metered request whose id must survive the restart.
    s = d.tenant(key)
    r = s.post(d.url("/v2/models/demo-mlp/infer"), json=req,
               timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    assert d.stop() == 0

    # Second start on the same data dir: same secrets, same objects.
    d2 = maasd_factory(demo=True, data_dir=d.data_dir)
    d2.wait_ready()
    assert (d2.data_dir / "demo.key").read_text().strip() == key
    assert d2.admin_token == token
    assert (d2.data_dir / "tls" / "cert.pem").read_bytes() == cert_pem
    cmd2, out2 = _run_banner_curl(d2)
    assert out2["outputs"] == out["outputs"]
    tenants = d2.aget("/admin/v1/tenants").json()["data"]
    assert [t["name"] for t in tenants].count("demo") == 1, tenants
    mods = d2.aget("/admin/v1/models").json()["data"]
    assert [m["name"] for m in mods].count("demo-mlp") == 1, mods
    deps = d2.aget("/admin/v1/deployments").json()["data"]
    assert [x["name"] for x in deps].count("demo-mlp") == 1, deps
    usage = d2.aget("/admin/v1/usage?limit=1000").json()["data"]
    assert rid in {u["request_id"] for u in usage}
    r = d2.tenant(key).post(d2.url("/v2/models/demo-mlp/infer"), json=req,
                            timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert re.search(r"maas_sk_[0-9a-f]{48}", d2.stdout()).group(0) == key


def test_concurrent_requests_get_their_own_results(env, models):
    """Several clients at once, two replicas: every response is the
    forward pass of that request's own input (no mix-ups)."""
    import threading

    d = env["d"]
    path = models.get(LAYERS, seed=42)
    deploy(d, "mlp-2r", "mlp", "1", replicas=2)
    results, errors = {}, []

    def worker(w):
        s = d.tenant(env["key"]["key"])
        try:
            for i in range(6):
                seed = 1000 + w * 100 + i
                x = _x(1 + (seed % 4), seed=seed)
                r = infer(s, d, "mlp-2r", [tensor("input", x)],
                          req_id=f"w{w}-{i}")
                results[(w, i)] = (x, r.status_code, r.json())
        except Exception as e:                  # noqa: BLE001
            errors.append(repr(e))
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=HTTP_TIMEOUT[1] * 2)
    assert not errors, errors
    assert len(results) == 24
    for (w, i), (x, status, j) in results.items():
        assert status == 200, j
        assert j["id"] == f"w{w}-{i}"
        out = output_by_name(j, "output")
        assert_close(np.array(out["data"]).reshape(out["shape"]),
                     onnx_forward(path, {"input": x})["output"])
