"""Pipelined INFERs: under load, a large request (64 KiB or more of
tensors) is sent behind the one a runtime computes, so that the runtime
finds it in its socket when it answers; small requests keep their place
in the fair queue until a replica is free.  A runtime that dies or hangs
with two INFERs takes only the computing one's attempt: the waiting one
runs again without a retry charged to it.  The runtime is frozen with
SIGSTOP to hold requests where the test wants them."""
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from conftest import SCALE, onnx_forward, tenant_with_key, wait_for
from sched_helpers import (Conn, body_for, cont_process, deploy_model,
                           metric, metrics, runtime_pid, stop_process,
                           usage_rows, wait_new_runtime)

LIGHT = (784, 32, 10)
BIG_ROWS = 32          # 32 x 784 floats: 100 KB of tensor, pipelined


def _x(seed, rows):
    return np.random.default_rng(seed).random((rows, 784)).astype(
        np.float32)


def _send(pool, d, key, x):
    def run():
        c = Conn(d, key)
        try:
            return c.infer("m", body_for(x))
        finally:
            c.close()
    return pool.submit(run)


def _gauges(d, running, queued):
    def ok():
        d.check_alive()
        m = metrics(d)
        return (metric(m, "maas_requests_running", deployment="m") ==
                running and metric(m, "maas_queue_depth",
                                   deployment="m") == queued)
    wait_for(ok, 30 * SCALE, interval=0.02,
             what=f"running={running} queued={queued}")


def _deployed(maasd_factory, models, seed, args=()):
    """maasd with one replica of a LIGHT model: (d, path, key, pid)."""
    d = maasd_factory(args=list(args))
    path = models.get(LIGHT, seed=seed)
    deploy_model(d, "m", path)
    _, k = tenant_with_key(d)
    return d, path, k["key"], runtime_pid(d, path)


def _check(path, x, resp):
    st, h, data = resp
    assert st == 200, data[:300]
    out = json.loads(data)["outputs"][0]
    got = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
    want = onnx_forward(path, {"input": x})[out["name"]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    return h["x-request-id"]


def test_large_requests_wait_in_the_runtime_small_ones_in_the_queue(
        maasd_factory, models):
    d, path, key, pid = _deployed(maasd_factory, models, 3)
    big = [_x(i, BIG_ROWS) for i in range(3)]
    small = _x(9, 1)
    with ThreadPoolExecutor(4) as pool:
        stop_process(pid)
        try:
            futs = [_send(pool, d, key, big[0])]
            _gauges(d, running=1, queued=0)
            # The second goes behind the first, the third waits.
            futs.append(_send(pool, d, key, big[1]))
            _gauges(d, running=2, queued=0)
            futs.append(_send(pool, d, key, big[2]))
            _gauges(d, running=2, queued=1)
            futs.append(_send(pool, d, key, small))
            _gauges(d, running=2, queued=2)
        finally:
            cont_process(pid)
        ids = [_check(path, x, f.result(timeout=30 * SCALE))
               for x, f in zip(big + [small], futs)]
    rows = usage_rows(d, ids)
    assert {r["status"] for r in rows.values()} == {200}
    m = metrics(d)
    assert metric(m, "maas_retries_total", deployment="m") == 0
    # The runtime answered the two INFERs in order: nothing was retried
    # or restarted.
    assert metric(m, "maas_runtime_restarts_total", deployment="m") == 0


def test_small_requests_are_not_pipelined(maasd_factory, models):
    d, path, key, pid = _deployed(maasd_factory, models, 3)
    xs = [_x(20 + i, 4) for i in range(3)]
    with ThreadPoolExecutor(4) as pool:
        stop_process(pid)
        try:
            futs = [_send(pool, d, key, xs[0])]
            _gauges(d, running=1, queued=0)
            futs.append(_send(pool, d, key, xs[1]))
            futs.append(_send(pool, d, key, xs[2]))
            _gauges(d, running=1, queued=2)
        finally:
            cont_process(pid)
        for x, f in zip(xs, futs):
            _check(path, x, f.result(timeout=30 * SCALE))


def test_killed_with_two_infers_only_the_computing_one_retries(
        maasd_factory, models):
    d, path, key, pid = _deployed(maasd_factory, models, 5)
    big = [_x(30 + i, BIG_ROWS) for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        stop_process(pid)
        futs = [_send(pool, d, key, big[0])]
        _gauges(d, running=1, queued=0)
        futs.append(_send(pool, d, key, big[1]))
        _gauges(d, running=2, queued=0)
        os.kill(pid, signal.SIGKILL)        # from outside: not a crash
        wait_new_runtime(d, path, pid)
        ids = [_check(path, x, f.result(timeout=30 * SCALE))
               for x, f in zip(big, futs)]
    assert {r["status"] for r in usage_rows(d, ids).values()} == {200}
    m = metrics(d)
    assert metric(m, "maas_retries_total", deployment="m") == 1
    assert metric(m, "maas_runtime_restarts_total", deployment="m") == 1


def test_hang_with_two_infers_charges_the_computing_one(maasd_factory,
                                                        models):
    d, path, key, pid = _deployed(maasd_factory, models, 6,
                                  ("--compute-timeout-ms", "500"))
    big = [_x(40 + i, BIG_ROWS) for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        stop_process(pid)                   # frozen: it never answers
        try:
            futs = [_send(pool, d, key, big[0])]
            _gauges(d, running=1, queued=0)
            futs.append(_send(pool, d, key, big[1]))
            ids = [_check(path, x, f.result(timeout=30 * SCALE))
                   for x, f in zip(big, futs)]
        finally:
            cont_process(pid)
    assert {r["status"] for r in usage_rows(d, ids).values()} == {200}
    assert d.log().count("hung: computing for more than") == 1
    m = metrics(d)
    assert metric(m, "maas_runtime_hangs_total", deployment="m") == 1
    assert metric(m, "maas_retries_total", deployment="m") == 1
