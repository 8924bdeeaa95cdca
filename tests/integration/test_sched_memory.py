"""Memory of replicas: weights are served from the read-only mapping of the
model file, so two replicas of one model share its pages (each runtime's
share of the mapping, its Pss, is about half its Rss, and none of it is
private); ONNX initializers in external data files are mapped the same way
and refused when they point outside the model's directory.  The node's
memory budget (--memory-budget-mb) counts each replica's private memory
and each model file once, and refuses deployments, scaling and traffic
shifts that do not fit with 409 and how many MiB are missing."""
import math
import os
import re
import shutil

import numpy as np
import pytest

from conftest import (SCALE, assert_error, deployment_row, register_model,
                      tenant_with_key, wait_deployment_ready, wait_for)
from sched_helpers import deploy_model

# 512 -> 4096 -> 3584 -> 10: 16.8 M weights, 64 MiB of FP32.
BIG = (512, 4096, 3584, 10)
BIG_WEIGHT_BYTES = 4 * (512 * 4096 + 4096 + 4096 * 3584 + 3584 +
                        3584 * 10 + 10)


def _smaps(pid, path):
    """Sums the smaps fields (kB) of pid's mappings of path."""
    real = os.path.realpath(path)
    out, cur = {}, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                cur = len(head) >= 6 and head[5] == real
                continue
            if cur and head[0].endswith(":") and len(head) >= 2 and \
                    head[1].isdigit():
                k = head[0][:-1]
                out[k] = out.get(k, 0) + int(head[1])
    return out


def _rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            head = line.split()
            if head[0].endswith(":") and len(head) >= 2 and \
                    head[1].isdigit():
                out[head[0][:-1]] = int(head[1])
    return out


def _readable(pid):
    try:
        with open(f"/proc/{pid}/smaps"):
            return True
    except PermissionError:
        return False


def test_replicas_share_weight_pages(maasd_factory, models):
    d = maasd_factory()
    path = models.get(BIG, seed=11)
    deploy_model(d, "big", path, replicas=2)
    pids = d.runtime_pids(path)
    assert len(pids) == 2, (pids, d.log_tail())
    if not all(_readable(p) for p in pids):
        pytest.skip("runtimes' smaps are not readable (not root)")
    weights_kb = BIG_WEIGHT_BYTES >> 10
    for pid in pids:
        m = _smaps(pid, path)
        # The warm-up inference touched every weight, in the mapping.
        assert m.get("Rss", 0) >= 0.95 * weights_kb, (pid, m)
        # Two processes map the same pages: each is charged half.
        assert m["Pss"] <= 0.6 * m["Rss"], (pid, m)
        assert m.get("Private_Clean", 0) + m.get("Private_Dirty", 0) < \
            0.01 * weights_kb, (pid, m)
        assert m.get("Shared_Clean", 0) + m.get("Shared_Dirty", 0) >= \
            0.95 * weights_kb, (pid, m)
        # No copy of the weights on the heap either (a copy per replica
        # is what protobuf-c's unpacking would give).
        anon = _rollup(pid)["Anonymous"]
        assert anon < weights_kb / 2, (pid, anon, weights_kb)


# --- the node memory budget ---------------------------------------------

MIB = 1 << 20


def _traffic(d, name, versions):
    return d.admin.put(d.admin_url(f"/admin/v1/deployments/{name}/traffic"),
                       json={"versions": versions})


def _metric(d, name):
    r = d.aget("/metrics")
    assert r.status_code == 200, r.text
    m = re.search(rf"^{name} (\d+)$", r.text, re.M)
    assert m, r.text[-2000:]
    return int(m.group(1))


def _need(row, replicas):
    """What a deployment of a registered model reserves: private memory
    per replica, the file once."""
    return replicas * row["meta"]["mem_bytes"] + row["size"]


def _refused(r, missing, budget_mb, in_use):
    e = assert_error(r, 409)
    assert e["code"] == "memory_budget_exceeded", e
    want = (f"needs {math.ceil(missing / MIB)} MiB more than the node's "
            f"memory budget of {budget_mb} MiB "
            f"({(in_use + MIB // 2) // MIB} MiB in use)")
    assert e["message"] == want, (e["message"], want)


def _copy(models, path, name):
    """The same model in another file: its pages are not shared."""
    dst = models.root / name
    if not dst.exists():
        shutil.copyfile(path, dst)
        os.chmod(dst, 0o644)
    return dst


def test_budget_refuses_what_does_not_fit(maasd_factory, models):
    path = models.get(BIG, seed=11)
    other = _copy(models, path, "big-copy.onnx")
    # The model's figures, as registration records them.
    d = maasd_factory(args=("--memory-budget-mb", "0"))
    row = register_model(d, "big", "1", path)
    assert row["size"] == os.path.getsize(path), row
    mem = row["meta"]["mem_bytes"]
    # The weights are in the file's mapping, not private memory.
    assert 0 < mem < BIG_WEIGHT_BYTES // 8, row
    assert _metric(d, "maas_memory_budget_bytes") == 0
    d.shutdown()

    # Room for two replicas of the model: one file, two private parts.
    one = _need(row, 1)
    budget_mb = math.ceil(_need(row, 2) / MIB)
    d = maasd_factory(args=("--memory-budget-mb", str(budget_mb)))
    budget = budget_mb * MIB
    row = register_model(d, "big", "1", path)
    register_model(d, "big", "2", other)
    register_model(d, "big2", "1", other)
    assert _metric(d, "maas_memory_budget_bytes") == budget
    assert _metric(d, "maas_memory_reserved_bytes") == 0

    # 64 replicas of it do not fit, though the file counts once.
    assert _need(row, 64) > budget
    r = d.apost("/admin/v1/deployments", {"name": "a", "model": "big",
                                          "version": "1", "replicas": 64})
    _refused(r, _need(row, 64) - budget, budget_mb, 0)
    assert deployment_row(d, "a") is None

    # One does; a second replica of the same file costs only its private
    # memory: scaling within the budget works.
    deploy_model_existing(d, "a", "big", "1", replicas=1)
    assert _metric(d, "maas_memory_reserved_bytes") == one
    r = d.admin.patch(d.admin_url("/admin/v1/deployments/a"),
                      json={"replicas": 2})
    assert r.status_code == 200, r.text
    wait_deployment_ready(d, "a", 2)
    two = _need(row, 2)
    assert two <= budget
    assert _metric(d, "maas_memory_reserved_bytes") == two

    # Another file of the same size does not fit next to it: a new
    # deployment, scaling past the budget, or a canary on a copy.
    r = d.apost("/admin/v1/deployments", {"name": "b", "model": "big2",
                                          "version": "1", "replicas": 1})
    _refused(r, two + one - budget, budget_mb, two)
    r = d.admin.patch(d.admin_url("/admin/v1/deployments/a"),
                      json={"replicas": 64, "max_replicas": 64})
    _refused(r, _need(row, 64) - budget, budget_mb, two)
    r = _traffic(d, "a", [{"version": "1", "weight": 90},
                          {"version": "2", "weight": 10, "replicas": 1}])
    _refused(r, two + one - budget, budget_mb, two)
    assert deployment_row(d, "a")["replicas"] == 2

    # Deleting frees the room.
    r = d.adelete("/admin/v1/deployments/a")
    assert r.status_code == 200, r.text
    assert _metric(d, "maas_memory_reserved_bytes") == 0
    deploy_model_existing(d, "b", "big2", "1", replicas=1)
    assert _metric(d, "maas_memory_reserved_bytes") == one


def deploy_model_existing(d, name, model, version, replicas):
    r = d.apost("/admin/v1/deployments", {"name": name, "model": model,
                                          "version": version,
                                          "replicas": replicas})
    assert r.status_code == 201, r.text
    wait_deployment_ready(d, name, replicas)


# --- ONNX external data ----------------------------------------------------

def _external_model(dirpath, location="weights.bin", seed=5):
    """A 2-layer MLP written by python3-onnx with every initializer in one
    external data file; returns (model path, weights as numpy arrays)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    w = {"W1": rng.standard_normal((16, 8)).astype(np.float32),
         "b1": rng.standard_normal(16).astype(np.float32),
         "W2": rng.standard_normal((4, 16)).astype(np.float32),
         "b2": rng.standard_normal(4).astype(np.float32)}
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1)]
    g = helper.make_graph(
        nodes, "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(v, k) for k, v in w.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    os.makedirs(dirpath, mode=0o755, exist_ok=True)
    path = os.path.join(dirpath, "model.onnx")
    onnx.save_model(m, path, save_as_external_data=True,
                    all_tensors_to_one_file=True, location=location,
                    size_threshold=0)
    for f in os.listdir(dirpath):
        os.chmod(os.path.join(dirpath, f), 0o644)
    return path, w


def _relocate(path, location):
    """Rewrites the model at path so that its tensors name location."""
    import onnx
    m = onnx.load(path, load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def test_external_data_is_served(maasd_factory, models):
    path, w = _external_model(str(models.root / "ext-ok"))
    data = os.path.join(os.path.dirname(path), "weights.bin")
    assert os.path.getsize(data) == sum(v.nbytes for v in w.values())
    d = maasd_factory()
    row = register_model(d, "ext", "1", path)
    # Registration counts the data file in the model's size.
    assert row["size"] == os.path.getsize(path) + os.path.getsize(data), row
    r = d.apost("/admin/v1/deployments", {"name": "ext", "model": "ext",
                                          "version": "1"})
    assert r.status_code == 201, r.text
    wait_deployment_ready(d, "ext", 1)
    _, k = tenant_with_key(d)
    x = np.random.default_rng(9).standard_normal((3, 8)).astype(np.float32)
    r = d.tenant(k["key"]).post(
        d.url("/v2/models/ext/infer"),
        json={"inputs": [{"name": "x", "shape": [3, 8], "datatype": "FP32",
                          "data": x.ravel().tolist()}]})
    assert r.status_code == 200, r.text
    y = np.asarray(r.json()["outputs"][0]["data"], dtype=np.float32)
    h = np.maximum(x @ w["W1"].T + w["b1"], 0)
    want = h @ w["W2"].T + w["b2"]
    np.testing.assert_allclose(y.reshape(3, 4), want, rtol=1e-4, atol=1e-5)
    # The runtime maps the data file (read-only) and keeps no fd on it.
    pid = d.runtime_pids(path)[0]
    if _readable(pid):
        maps = open(f"/proc/{pid}/maps").read()
        assert os.path.realpath(data) in maps


def test_external_data_outside_the_directory_is_refused(maasd_factory,
                                                        models):
    d = maasd_factory()
    root = models.root / "ext-bad"
    path, _ = _external_model(str(root / "m"), location="weights.bin")
    data = root / "m" / "weights.bin"
    shutil.copyfile(data, root / "outside.bin")
    cases = [("../outside.bin", "names a parent directory"),
             (str(root / "outside.bin"), "is an absolute path"),
             ("link.bin", "is outside the model's directory"),
             ("missing.bin", "cannot open external data 'missing.bin'")]
    link = root / "m" / "link.bin"
    if not link.exists():
        os.symlink(root / "outside.bin", link)
    for i, (loc, why) in enumerate(cases):
        _relocate(path, loc)
        r = d.apost("/admin/v1/models", {"name": f"bad{i}", "version": "1",
                                         "path": path})
        e = assert_error(r, 400)
        assert why in e["message"], (loc, e)
        assert "initializer 'W1'" in e["message"], e
    d.check_alive()
