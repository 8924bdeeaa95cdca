"""Fairness between tenants on one replica, measured in units of the
model's own service time (never wall-clock thresholds).

The model is an MLP that computes one row in about 5 ms here; its service
time S is measured first from unloaded requests' compute_us.  Latency is
the scheduler's: queue_us + compute_us of the request's usage row (what a
tenant waits for the model, without the HTTP, TLS and metering costs that
first-come-first-served would not change either); end-to-end times are
printed beside it.
"""
import statistics
import time

import numpy as np

from conftest import SCALE, tenant_with_key, wait_for
from sched_helpers import (Conn, Load, body_for, deploy_model, metric,
                           metrics, usage_rows)

MODEL = (784, 2048, 2048, 10)


def _service_time(d, key, model, body, n=40, warm=10):
    c = Conn(d, key)
    ids = []
    for _ in range(n):
        st, h, data = c.infer(model, body)
        assert st == 200, data[:300]
        ids.append(h["x-request-id"])
    c.close()
    rows = usage_rows(d, ids[warm:])
    return statistics.median(r["compute_us"] for r in rows.values())


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def test_interactive_tenant_beside_a_flood(maasd_factory, models):
    d = maasd_factory()
    deploy_model(d, "fair", models.get(MODEL, seed=5))
    _, ka = tenant_with_key(d)
    _, kb = tenant_with_key(d)
    body = body_for(np.random.default_rng(1).random((1, 784)))
    svc = _service_time(d, kb["key"], "fair", body)
    print(f"service time S = {svc / 1000:.2f} ms")

    flood = Load(d, ka["key"], "fair", body, 32).start()
    try:
        wait_for(lambda: d.check_alive() or flood.count() >= 64,
                 60 * SCALE, what="the flood running")
        c = Conn(d, kb["key"])
        b_ids, e2e = [], []
        for _ in range(150):
            t0 = time.monotonic()
            st, h, data = c.infer("fair", body)
            e2e.append(time.monotonic() - t0)
            assert st == 200, data[:300]
            b_ids.append(h["x-request-id"])
        c.close()
        depth = metric(metrics(d), "maas_tenant_queue_depth",
                       deployment="fair")
    finally:
        flood.stop()
    assert not flood.errors, flood.errors[:3]
    a_ids = [r[3] for r in flood.snapshot()[-300:]]
    rows_b = usage_rows(d, b_ids)
    rows_a = usage_rows(d, a_ids)
    lat_b = [(r["queue_us"] + r["compute_us"]) / svc for r in rows_b.values()]
    lat_a = [(r["queue_us"] + r["compute_us"]) / svc for r in rows_a.values()]
    e2e_b = [t * 1e6 / svc for t in e2e]
    print(f"B: median {statistics.median(lat_b):.2f} S, p99 "
          f"{_pct(lat_b, 0.99):.2f} S (end to end: median "
          f"{statistics.median(e2e_b):.2f} S, p99 {_pct(e2e_b, 0.99):.2f} "
          f"S); A (32 in flight): median {statistics.median(lat_a):.2f} S;"
          f" queue depth at the end {depth:.0f}")
    # The flood really saturated the replica: its own requests waited
    # about 30 service times, what B would wait first-come-first-served.
    assert statistics.median(lat_a) > 15, statistics.median(lat_a)
    # B waits for about the computation under way, then its own: a few
    # service times, where first-come-first-served would give it about
    # A's median.  On a loaded host single computations stretch (A's
    # median then reads 50 to 95 S instead of 30, and B's up to 3.3 S was
    # seen), so both bounds give way with what A saw under the same noise,
    # staying far below it.
    assert statistics.median(lat_b) < max(3, statistics.median(lat_a) / 12), \
        sorted(lat_b)
    assert _pct(lat_b, 0.99) < max(5, statistics.median(lat_a) / 6), \
        sorted(lat_b)


def test_weights_split_service_two_to_one(maasd_factory, models):
    d = maasd_factory()
    deploy_model(d, "fair", models.get(MODEL, seed=5))
    ta, ka = tenant_with_key(d)
    tb, kb = tenant_with_key(d)
    r = d.admin.patch(d.admin_url(f"/admin/v1/tenants/{ta['id']}"),
                      json={"weight": 2}, timeout=30)
    assert r.status_code == 200 and r.json()["weight"] == 2, r.text
    body = body_for(np.random.default_rng(2).random((1, 784)))
    svc = _service_time(d, kb["key"], "fair", body, n=20, warm=5)

    la = Load(d, ka["key"], "fair", body, 16).start()
    lb = Load(d, kb["key"], "fair", body, 16).start()
    try:
        # Long enough for about 1000 requests whatever the machine.
        time.sleep(max(3.0, 1000 * svc / 1e6) * (1.5 if SCALE > 1 else 1))
    finally:
        la.stop()
        lb.stop()
    assert not la.errors and not lb.errors, (la.errors + lb.errors)[:3]
    ra = usage_rows(d, [x[3] for x in la.snapshot()])
    rb = usage_rows(d, [x[3] for x in lb.snapshot()])
    assert all(r["status"] == 200 for r in list(ra.values()) +
               list(rb.values()))

    def starts(rows):
        return sorted(r["ts_us"] + r["queue_us"] for r in rows.values())
    sa, sb = starts(ra), starts(rb)
    # Count what started while both tenants were backlogged: after both
    # had a request served and before either stopped sending.
    lo = max(sa[0], sb[0])
    hi = min(sa[-1], sb[-1])
    lo, hi = lo + (hi - lo) * 0.1, hi - (hi - lo) * 0.1
    na = sum(1 for t in sa if lo <= t <= hi)
    nb = sum(1 for t in sb if lo <= t <= hi)
    ratio = na / max(1, nb)
    print(f"S = {svc / 1000:.2f} ms; served while both saturate: A (weight "
          f"2) {na}, B (weight 1) {nb}, ratio {ratio:.3f}")
    assert na + nb >= 200, (na, nb)
    assert 1.8 <= ratio <= 2.2, (na, nb, ratio)
