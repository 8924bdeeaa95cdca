"""Dynamic batching: compatible queued requests are concatenated along
dimension 0 into one inference and the outputs split back; the results
are identical, bit for bit, to the same requests computed one by one.

Bit-identity also needs the runtime's matrix products to give a row the
same bits whatever the number of rows around it and its position among
them.  OpenBLAS does not promise that: it picks kernels by problem size (a
small-matrix SGEMM below about M*N*K = 10^6, tail kernels for leftover
rows), and e.g. a 2048x10 layer gives row 1 of 4 different last bits than
row 1 alone.  So the test first checks that the runtime is row-stable for
its model on this machine (784x2048x2048x16 is, here, up to 16 rows);
if it is not, the test is an expected failure naming the runtime, since
no scheduler can make it bit-identical then."""
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import SCALE, tenant_with_key, wait_for
from sched_helpers import (Conn, body_for, deploy_model, metric, metrics,
                           runtime_pid, stop_process, cont_process)

MODEL = (784, 2048, 2048, 16)
MAX_BATCH = 16


def _outputs(data):
    return {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(
        o["shape"]) for o in json.loads(data)["outputs"]}


def _require_row_stable_runtime(c, rng):
    """xfail unless the runtime computes every row of an m-row request
    (m <= MAX_BATCH) bit for bit as it computes that row alone."""
    x = (rng.standard_normal((MAX_BATCH, 784)) * 3).astype(np.float32)
    alone = []
    for i in range(MAX_BATCH):
        st, _, data = c.infer("plain", body_for(x[i:i + 1]))
        assert st == 200, data[:300]
        alone.append(_outputs(data)["output"][0])
    for m in (2, 3, 5, 8, MAX_BATCH):
        st, _, data = c.infer("plain", body_for(x[:m]))
        y = _outputs(data)["output"]
        bad = [i for i in range(m) if not np.array_equal(
            y[i].view(np.uint32), alone[i].view(np.uint32))]
        if bad:
            np.testing.assert_allclose(y[bad[0]], alone[bad[0]], rtol=1e-4,
                                       atol=1e-6)
            pytest.xfail(f"maas-runtime is not row-stable on this CPU: "
                         f"rows {bad} of a {m}-row request differ in "
                         f"their last bits from the same rows alone "
                         f"(OpenBLAS kernel choice)")


def test_batched_outputs_identical_to_unbatched(maasd_factory, models):
    d = maasd_factory()
    plain_path = models.get(MODEL, seed=11)
    # The same bytes under another name, to tell the runtimes apart.
    path = models.root / f"batched_{os.getpid()}.onnx"
    shutil.copyfile(plain_path, path)
    os.chmod(path, 0o644)
    deploy_model(d, "plain", plain_path)
    deploy_model(d, "batched", path, version="2", max_batch=MAX_BATCH,
                 max_queue_delay_us=20000)
    row = d.aget("/admin/v1/deployments/batched").json()
    assert row["max_batch"] == MAX_BATCH
    assert row["max_queue_delay_us"] == 20000
    _, k = tenant_with_key(d)
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal((int(rng.integers(1, 4)), 784)) * 3
              for _ in range(48)]
    bodies = [body_for(x) for x in inputs]

    c = Conn(d, k["key"])
    want = []
    for b in bodies:
        st, _, data = c.infer("plain", b)
        assert st == 200, data[:300]
        want.append(_outputs(data))
    _require_row_stable_runtime(c, rng)
    c.close()

    # Hold the batched deployment's runtime so that all 48 queue, then
    # let it go: they leave the queue as batches of up to 16 rows.
    pid = runtime_pid(d, path)
    with ThreadPoolExecutor(48) as pool:
        def send(b):
            cc = Conn(d, k["key"])
            try:
                return cc.infer("batched", b)
            finally:
                cc.close()
        stop_process(pid)
        try:
            futs = [pool.submit(send, b) for b in bodies]
            wait_for(lambda: metric(metrics(d), "maas_queue_depth",
                                    deployment="batched") +
                     metric(metrics(d), "maas_requests_running",
                            deployment="batched") >= 48, 30 * SCALE,
                     interval=0.02, what="48 requests queued")
        finally:
            cont_process(pid)
        got = [f.result(timeout=60 * SCALE) for f in futs]
    for i, (st, _, data) in enumerate(got):
        assert st == 200, data[:300]
        out = _outputs(data)
        assert out.keys() == want[i].keys()
        for name in out:
            assert out[name].shape == want[i][name].shape
            assert np.array_equal(out[name].view(np.uint32),
                                  want[i][name].view(np.uint32)), \
                f"request {i}: output {name} differs from unbatched"
    m = metrics(d)
    infers = metric(m, "maas_batch_size_count", deployment="batched")
    rows = metric(m, "maas_batch_size_sum", deployment="batched")
    singles = metric(m, "maas_batch_size_bucket", deployment="batched",
                     le="1")
    total = sum(x.shape[0] for x in inputs)
    print(f"{len(inputs)} requests, {total} rows in {infers:.0f} "
          f"inferences")
    assert rows == total
    assert infers <= len(inputs) / 2, infers
    assert infers - singles >= 1
    # Unbatched deployments send one inference per request.
    assert metric(m, "maas_batch_size_count", deployment="plain") == \
        metric(m, "maas_requests_total", deployment="plain")


def test_incompatible_requests_are_not_mixed(maasd_factory, models):
    d = maasd_factory()
    path = models.get((4, 8, 3), seed=12, softmax=False)
    deploy_model(d, "b", path, max_batch=64, max_queue_delay_us=50000)
    _, k = tenant_with_key(d)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    plain = body_for(x)
    named = body_for(x, outputs=["output"])
    pid = runtime_pid(d, path)
    with ThreadPoolExecutor(8) as pool:
        def send(b):
            cc = Conn(d, k["key"])
            try:
                return cc.infer("b", b)
            finally:
                cc.close()
        stop_process(pid)
        try:
            futs = [pool.submit(send, plain if i % 2 else named)
                    for i in range(8)]
            wait_for(lambda: metric(metrics(d), "maas_queue_depth",
                                    deployment="b") >= 7, 30 * SCALE,
                     interval=0.02, what="queued")
        finally:
            cont_process(pid)
        res = [f.result(timeout=60 * SCALE) for f in futs]
    outs = [_outputs(r[2]) for r in res]
    assert all(r[0] == 200 for r in res)
    for o in outs:
        assert np.array_equal(o["output"], outs[0]["output"])
    m = metrics(d)
    # The first request went alone; the rest formed one batch of each
    # kind (requested outputs differ), never one mixed batch.
    assert metric(m, "maas_batch_size_count", deployment="b") >= 3


def test_batching_settings_are_validated(maasd_factory, models):
    d = maasd_factory()
    path = models.get((4, 8, 3), seed=12, softmax=False)
    r = d.apost("/admin/v1/models", {"name": "v", "version": "1",
                                     "path": str(path)})
    assert r.status_code == 201, r.text
    for body in ({"max_batch": 0}, {"max_batch": 5000},
                 {"max_batch": "8"}, {"max_queue_delay_us": -1},
                 {"max_queue_delay_us": 10 ** 9}):
        r = d.apost("/admin/v1/deployments", dict(
            name="v", model="v", version="1", **body))
        assert r.status_code == 400, (body, r.text)
