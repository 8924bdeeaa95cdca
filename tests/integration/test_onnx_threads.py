"""The product pool of a sandboxed maas-runtime deployed with threads=2:
its worker thread ("maas-par") must exist once the runtime serves, since
inside the seccomp sandbox and under the memory limit a thread may not be
creatable any more, and a batch-64 request split over the pool must give
the same answer as the model computed elsewhere.  Its read-ahead thread
("maas-io") must not mix up queued requests."""
import json
import os

import numpy as np
import requests

from conftest import (HTTP_TIMEOUT, assert_close, deploy_file, onnx_forward,
                      output_by_name, tenant_with_key, tensor)

BIG = (784, 512, 512, 10)       # products above the split threshold


def _comms(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def _serving(maasd_factory, models, threads):
    d = maasd_factory()
    path = models.get(BIG, seed=7)
    deploy_file(d, "m", path, threads=threads)
    _, k = tenant_with_key(d)
    pids = d.runtime_pids(path)
    assert len(pids) == 1, (pids, d.log_tail())
    return d, path, k["key"], pids[0]


def _infer(d, key, x):
    return requests.post(
        d.url("/v2/models/m/infer"),
        data=json.dumps({"inputs": [tensor("input", x)]}),
        headers={"Authorization": f"Bearer {key}",
                 "Content-Type": "application/json"},
        verify=d.cert, timeout=HTTP_TIMEOUT)


def test_two_threads_start_a_pool_worker(maasd_factory, models):
    d, path, key, pid = _serving(maasd_factory, models, 2)
    x = np.random.default_rng(3).standard_normal((64, 784)).astype(
        np.float32)
    for _ in range(3):
        r = _infer(d, key, x)
        assert r.status_code == 200, r.text
    assert _comms(pid).count("maas-par") == 1, _comms(pid)
    want = onnx_forward(path, {"input": x})["output"]
    out = output_by_name(r.json(), "output")
    assert_close(np.array(out["data"]).reshape(out["shape"]), want)


def test_one_thread_starts_no_worker(maasd_factory, models):
    d, path, key, pid = _serving(maasd_factory, models, 1)
    x = np.zeros((64, 784), dtype=np.float32)
    assert _infer(d, key, x).status_code == 200
    assert "maas-par" not in _comms(pid), _comms(pid)


def test_pipelined_requests_keep_their_answers(maasd_factory, models):
    """Under load maasd queues a second batch behind the one computing,
    which the runtime's read-ahead thread ("maas-io") reads while the
    first computes: every answer must still be its own request's."""
    from concurrent.futures import ThreadPoolExecutor
    d, path, key, pid = _serving(maasd_factory, models, 1)
    xs = [np.random.default_rng(100 + i).standard_normal((64, 784)).astype(
        np.float32) for i in range(24)]

    def one(x):
        r = _infer(d, key, x)
        assert r.status_code == 200, r.text
        out = output_by_name(r.json(), "output")
        return np.array(out["data"]).reshape(out["shape"])

    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(one, xs))
    for x, y in zip(xs, got):
        assert_close(y, onnx_forward(path, {"input": x})["output"])
    assert _comms(pid).count("maas-io") == 1, _comms(pid)


def _environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return [v.decode() for v in f.read().split(b"\0") if v]


def test_portable_kernels_reach_the_runtime(maasd_factory, models,
                                            monkeypatch):
    """MAAS_KERNELS=portable in maasd's environment is passed to its
    runtimes (whose environment is otherwise built from nothing), and the
    portable products (OpenBLAS instead of the packed kernel) give the
    same answer as the model computed elsewhere."""
    monkeypatch.setenv("MAAS_KERNELS", "portable")
    d, path, key, pid = _serving(maasd_factory, models, 2)
    assert "MAAS_KERNELS=portable" in _environ(pid), _environ(pid)
    x = np.random.default_rng(4).standard_normal((64, 784)).astype(
        np.float32)
    r = _infer(d, key, x)
    assert r.status_code == 200, r.text
    want = onnx_forward(path, {"input": x})["output"]
    out = output_by_name(r.json(), "output")
    assert_close(np.array(out["data"]).reshape(out["shape"]), want)


def test_runtime_environment_is_built_from_nothing(maasd_factory, models,
                                                   monkeypatch):
    monkeypatch.setenv("MAAS_KERNELS", "avx2")
    monkeypatch.setenv("MAAS_TEST_SECRET", "not for the runtime")
    d, path, key, pid = _serving(maasd_factory, models, 1)
    env = _environ(pid)
    assert not any(v.startswith(("MAAS_KERNELS=", "MAAS_TEST_SECRET="))
                   for v in env), env
