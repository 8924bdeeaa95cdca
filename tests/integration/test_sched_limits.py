"""Queue limits: the per-request deadline (504), the bounded queue (503
with Retry-After, the room going to the tenant with fewer queued
requests), priorities within a tenant, and the scheduling headers'
validation.  The runtime is frozen with SIGSTOP to hold requests in the
queue, so every outcome is deterministic."""
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from conftest import SCALE, assert_error, tenant_with_key, wait_for
from sched_helpers import (Conn, body_for, cont_process, deploy_model,
                           metric, metrics, runtime_pid, stop_process,
                           usage_rows)

LIGHT = (784, 32, 10)
BODY = body_for(np.random.default_rng(3).random((1, 784)))


class Req:
    """Runs requests in the background, one connection each."""

    def __init__(self, d, pool):
        self.d, self.pool = d, pool

    def send(self, key, headers=None, model="m"):
        def run():
            c = Conn(self.d, key)
            try:
                return c.infer(model, BODY, headers)
            finally:
                c.close()
        return self.pool.submit(run)


def _wait_gauges(d, running=None, queued=None):
    def ok():
        d.check_alive()
        m = metrics(d)
        return ((running is None or metric(m, "maas_requests_running",
                                           deployment="m") == running) and
                (queued is None or metric(m, "maas_queue_depth",
                                          deployment="m") == queued))
    wait_for(ok, 30 * SCALE, interval=0.02,
             what=f"running={running} queued={queued}")


def _error(resp):
    st, h, data = resp
    e = json.loads(data)["error"]
    assert e["message"] and e["type"], e
    assert h.get("x-request-id")
    return e


def test_deadline_504(maasd_factory, models):
    d = maasd_factory()
    path = models.get(LIGHT, seed=3)
    deploy_model(d, "m", path)
    _, k = tenant_with_key(d)
    pid = runtime_pid(d, path)
    with ThreadPoolExecutor(4) as pool:
        q = Req(d, pool)
        stop_process(pid)
        try:
            first = q.send(k["key"])
            _wait_gauges(d, running=1)
            late = q.send(k["key"], {"x-maas-timeout-ms": "200"})
            st, h, data = late.result(timeout=30 * SCALE)
            assert st == 504, data
            e = _error((st, h, data))
            assert e["code"] == "deadline_exceeded", e
            assert "deadline" in e["message"]
        finally:
            cont_process(pid)
        assert first.result(timeout=30 * SCALE)[0] == 200
    rows = usage_rows(d, [h["x-request-id"]])
    row = rows[h["x-request-id"]]
    assert row["status"] == 504 and row["cost_micros"] == 0
    assert row["queue_us"] >= 200000
    m = metrics(d)
    assert metric(m, "maas_requests_total", deployment="m",
                  status="timed_out") == 1


def test_queue_full_503_and_fair_room(maasd_factory, models):
    d = maasd_factory(args=["--max-queue", "3"])
    path = models.get(LIGHT, seed=3)
    deploy_model(d, "m", path)
    _, ka = tenant_with_key(d)
    _, kb = tenant_with_key(d)
    pid = runtime_pid(d, path)
    with ThreadPoolExecutor(8) as pool:
        q = Req(d, pool)
        stop_process(pid)
        try:
            running = q.send(ka["key"])
            _wait_gauges(d, running=1)
            queued = []
            for i in range(3):
                queued.append(q.send(ka["key"]))
                _wait_gauges(d, queued=i + 1)
            # A's own next request finds the queue full of A's: refused.
            st, h, data = q.send(ka["key"]).result(timeout=30 * SCALE)
            assert st == 503, data
            assert _error((st, h, data))["code"] == "overloaded"
            ra = h.get("retry-after")
            assert ra is not None and ra.isdigit() and 1 <= int(ra) <= 60, h
            # B gets in: A's newest queued request makes room.
            b = q.send(kb["key"])
            st, h, data = queued[-1].result(timeout=30 * SCALE)
            assert st == 503 and h.get("retry-after"), (st, data)
            _wait_gauges(d, queued=3)
        finally:
            cont_process(pid)
        assert running.result(timeout=30 * SCALE)[0] == 200
        for f in queued[:-1]:
            assert f.result(timeout=30 * SCALE)[0] == 200
        assert b.result(timeout=30 * SCALE)[0] == 200
    m = metrics(d)
    assert metric(m, "maas_requests_total", deployment="m",
                  status="overloaded") == 2


def test_priorities_order_a_tenants_requests(maasd_factory, models):
    d = maasd_factory()
    path = models.get(LIGHT, seed=3)
    deploy_model(d, "m", path)
    _, k = tenant_with_key(d)
    pid = runtime_pid(d, path)
    futs = {}
    with ThreadPoolExecutor(8) as pool:
        q = Req(d, pool)
        stop_process(pid)
        try:
            blocker = q.send(k["key"])
            _wait_gauges(d, running=1)
            for i, p in enumerate(["low", "normal", "low", "high",
                                   "normal", "high"]):
                futs[f"{p}{i}"] = q.send(k["key"], {"x-maas-priority": p})
                _wait_gauges(d, queued=i + 1)
        finally:
            cont_process(pid)
        assert blocker.result(timeout=30 * SCALE)[0] == 200
        res = {n: f.result(timeout=30 * SCALE) for n, f in futs.items()}
    assert all(r[0] == 200 for r in res.values()), res
    ids = {n: r[1]["x-request-id"] for n, r in res.items()}
    rows = usage_rows(d, ids.values())
    # One replica computes them one after the other, and usage rows are
    # written in the order results come back: row ids give the order.
    done = {n: rows[i]["id"] for n, i in ids.items()}
    order = sorted(done, key=done.get)
    assert order == ["high3", "high5", "normal1", "normal4", "low0",
                     "low2"], order


def test_scheduling_headers_are_validated(maasd_factory, models):
    d = maasd_factory()
    deploy_model(d, "m", models.get(LIGHT, seed=3))
    _, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    url = d.url("/v2/models/m/infer")
    hdr = {"Content-Type": "application/json"}
    for name, value, code in [("x-maas-priority", "urgent",
                               "invalid_priority"),
                              ("x-maas-timeout-ms", "soon",
                               "invalid_timeout"),
                              ("x-maas-timeout-ms", "0", "invalid_timeout"),
                              ("x-maas-timeout-ms", "-5", "invalid_timeout")]:
        r = s.post(url, data=BODY, headers=dict(hdr, **{name: value}))
        e = assert_error(r, 400)
        assert e["code"] == code and e["param"] == name, e
    # A timeout beyond the cap is capped, not refused.
    for v in ("300000", "99999999999999999999999"):
        r = s.post(url, data=BODY, headers=dict(hdr, **{
            "x-maas-timeout-ms": v, "x-maas-priority": "high"}))
        assert r.status_code == 200, r.text
