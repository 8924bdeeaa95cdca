"""Deployment updates: PATCH /admin/v1/deployments/{name} scales replicas
up and down under load without losing a request (surplus replicas drain:
their requests finish, then they stop), the count survives a restart, and
between min_replicas and max_replicas the autoscaler follows the queue
with hysteresis."""
import time

import numpy as np

from conftest import (HTTP_TIMEOUT, SCALE, proc_alive, tenant_with_key,
                      wait_for)
from sched_helpers import (Load, body_for, deploy_model, metric, metrics,
                           usage_rows)

HEAVY = (784, 2048, 2048, 10)


def _patch(d, name, body):
    return d.admin.patch(d.admin_url(f"/admin/v1/deployments/{name}"),
                         json=body, timeout=HTTP_TIMEOUT)


def _live(d, path, n):
    def ok():
        d.check_alive()
        m = metrics(d)
        return (len(d.runtime_pids(path)) == n and
                metric(m, "maas_replicas_live", deployment="big") == n)
    wait_for(ok, 60 * SCALE, interval=0.05, what=f"{n} live replicas")


def test_scale_up_and_down_under_load_loses_nothing(maasd_factory, models):
    d = maasd_factory()
    path = models.get(HEAVY, seed=21)
    deploy_model(d, "big", path)
    _, k = tenant_with_key(d)
    load = Load(d, k["key"], "big", body_for(np.ones((4, 784))), 6).start()
    try:
        wait_for(lambda: load.count() >= 10, 60 * SCALE, what="load")
        r = _patch(d, "big", {"replicas": 3})
        assert r.status_code == 200, r.text
        row = r.json()
        assert row["replicas"] == 3 and row["min_replicas"] == 3
        _live(d, path, 3)
        three = d.runtime_pids(path)
        n = load.count()
        wait_for(lambda: load.count() >= n + 20, 60 * SCALE, what="load")
        r = _patch(d, "big", {"replicas": 1})
        assert r.status_code == 200, r.text
        _live(d, path, 1)
        n = load.count()
        wait_for(lambda: load.count() >= n + 10, 60 * SCALE, what="load")
    finally:
        load.stop()
    assert not load.errors, load.errors[:3]
    res = load.snapshot()
    assert all(x[2] == 200 for x in res), [x for x in res if x[2] != 200]
    rows = usage_rows(d, [x[3] for x in res])
    assert {r["status"] for r in rows.values()} == {200}
    gone = [p for p in three if p not in d.runtime_pids(path)]
    assert len(gone) == 2
    wait_for(lambda: not any(proc_alive(p) for p in gone), 10 * SCALE,
             what="drained runtimes exited")
    assert "draining replica" in d.log()
    m = metrics(d)
    assert metric(m, "maas_replicas", deployment="big") == 1
    assert metric(m, "maas_retries_total", deployment="big") == 0
    print(f"{len(res)} requests across 1 -> 3 -> 1 replicas, all 200")

    # The stored count is what a restart starts with.
    assert _patch(d, "big", {"replicas": 2}).status_code == 200
    assert d.stop() == 0
    d.start()
    _live(d, path, 2)


def test_patch_is_validated(maasd_factory, models):
    d = maasd_factory()
    deploy_model(d, "big", models.get((784, 16, 10), seed=21))
    for body in ({"replicas": 0}, {"replicas": 65}, {"replicas": "2"},
                 {"min_replicas": 3, "max_replicas": 2},
                 {"min_replicas": 0, "max_replicas": 2}):
        r = _patch(d, "big", body)
        assert r.status_code == 400, (body, r.text)
    r = _patch(d, "nope", {"replicas": 2})
    assert r.status_code == 404
    r = _patch(d, "big", {"min_replicas": 1, "max_replicas": 4})
    assert r.status_code == 200, r.text
    j = r.json()
    assert (j["min_replicas"], j["replicas"], j["max_replicas"]) == (1, 1, 4)
    audit = d.aget("/admin/v1/audit?limit=1000").json()["data"]
    assert any(a["action"] == "deployment.scale" for a in audit)


def test_autoscale_follows_the_queue(maasd_factory, models):
    d = maasd_factory(args=["--autoscale-up-ms", "300",
                            "--autoscale-idle-ms", "1000"])
    path = models.get(HEAVY, seed=21)
    deploy_model(d, "big", path, min_replicas=1, max_replicas=3)
    _, k = tenant_with_key(d)
    load = Load(d, k["key"], "big", body_for(np.ones((4, 784))), 12).start()
    try:
        _live(d, path, 3)
        # Busy at 3 replicas: it stays there (no flapping).
        time.sleep(1.5)
        assert metric(metrics(d), "maas_replicas", deployment="big") == 3
    finally:
        load.stop()
    t_stop = time.monotonic()
    _live(d, path, 1)
    t_down = time.monotonic()
    assert not load.errors, load.errors[:3]
    assert all(x[2] == 200 for x in load.snapshot())
    m = metrics(d)
    assert metric(m, "maas_autoscale_total", deployment="big",
                  direction="up") == 2
    assert metric(m, "maas_autoscale_total", deployment="big",
                  direction="down") == 2
    # Idle: it stays at min_replicas.
    time.sleep(1.5)
    assert len(d.runtime_pids(path)) == 1
    print(f"scaled 1 -> 3 under load, back to 1 {t_down - t_stop:.1f} s "
          f"after the load stopped")
