"""Deployments with several versions: PUT .../traffic splits a public
name's requests by weight (a 10% canary within a binomial bound), clients
pin a version with /v2/models/{m}/versions/{v}/infer, POST .../rollback
returns to the previous split, DELETE drains (no request lost), and the
split survives a restart."""
import json
import math
import threading
import time

import numpy as np
import requests

from conftest import (HTTP_TIMEOUT, SCALE, proc_alive, register_model,
                      tenant_with_key, wait_for)
from sched_helpers import Conn, Load, body_for, deploy_model

SMALL = (784, 16, 10)
HEAVY = (784, 2048, 2048, 10)


def _traffic(d, name, versions):
    return d.admin.put(d.admin_url(f"/admin/v1/deployments/{name}/traffic"),
                       json={"versions": versions}, timeout=HTTP_TIMEOUT)


def _versions_served(d, key, name, n, threads=4):
    """Sends n unpinned requests; returns {model_version: count}."""
    counts, lock, bad = {}, threading.Lock(), []
    body = body_for(np.ones((1, 784)))
    per = [n // threads + (i < n % threads) for i in range(threads)]

    def run(k):
        c = Conn(d, key)
        try:
            for _ in range(k):
                st, _, data = c.infer(name, body)
                if st != 200:
                    bad.append((st, data[:200]))
                    continue
                v = json.loads(data)["model_version"]
                with lock:
                    counts[v] = counts.get(v, 0) + 1
        finally:
            c.close()
    ts = [threading.Thread(target=run, args=(k,)) for k in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad, bad[:3]
    return counts


def _two_versions(d, name, m):
    deploy_model(d, name, m.get(SMALL, seed=1), version="1")
    register_model(d, name, "2", m.get(SMALL, seed=2))


def _meta(d, key, name, v):
    return requests.get(d.url(f"/v2/models/{name}/versions/{v}"),
                        headers={"Authorization": f"Bearer {key}"},
                        verify=d.cert, timeout=HTTP_TIMEOUT)


def _pinned(d, key, name, v):
    c = Conn(d, key)
    try:
        return c.post(f"/v2/models/{name}/versions/{v}/infer",
                      body_for(np.ones((1, 784))))
    finally:
        c.close()


def _wait_pinned_ok(d, key, name, v):
    wait_for(lambda: _pinned(d, key, name, v)[0] == 200, 60 * SCALE,
             interval=0.1, what=f"version {v} serving")


def test_canary_split_pinning_rollback_restart(maasd_factory, models):
    d = maasd_factory()
    _two_versions(d, "cm", models)
    _, k = tenant_with_key(d)
    key = k["key"]
    assert _versions_served(d, key, "cm", 20) == {"1": 20}
    # 404 for a version the deployment does not serve.
    assert _pinned(d, key, "cm", "2")[0] == 404
    assert _pinned(d, key, "cm", "9")[0] == 404

    r = _traffic(d, "cm", [{"version": "2", "weight": 10, "replicas": 1},
                           {"version": "1", "weight": 90}])
    assert r.status_code == 200, r.text
    row = r.json()
    assert {e["version"]: e["weight"] for e in row["traffic"]} == \
        {"1": 90, "2": 10}
    _wait_pinned_ok(d, key, "cm", "2")

    # 10% canary: 1000 requests, count within a 99.9% binomial interval.
    n, p = 1000, 0.10
    counts = _versions_served(d, key, "cm", n)
    assert sum(counts.values()) == n
    half = 3.29 * math.sqrt(n * p * (1 - p))
    lo, hi = n * p - half, n * p + half
    assert lo <= counts.get("2", 0) <= hi, counts
    print(f"canary: {counts} (bounds {lo:.0f}-{hi:.0f})")

    # Pinning: only that version answers.
    for v in ("1", "2"):
        st, _, data = _pinned(d, key, "cm", v)
        assert st == 200, data
        assert json.loads(data)["model_version"] == v
    # Metadata per version.
    for v in ("1", "2"):
        r = _meta(d, key, "cm", v)
        assert r.status_code == 200, r.text
        assert r.json()["versions"] == [v]
    assert _meta(d, key, "cm", "9").status_code == 404

    # All traffic to 2: version 1 drains and stops.
    r = _traffic(d, "cm", [{"version": "2", "weight": 100},
                           {"version": "1", "weight": 0}])
    assert r.status_code == 200, r.text
    assert _versions_served(d, key, "cm", 50) == {"2": 50}
    wait_for(lambda: _pinned(d, key, "cm", "1")[0] == 404, 10 * SCALE,
             what="version 1 gone")

    # Rollback: the previous split (90/10) again.
    r = d.apost("/admin/v1/deployments/cm/rollback")
    assert r.status_code == 200, r.text
    assert {e["version"]: e["weight"] for e in r.json()["traffic"]} == \
        {"1": 90, "2": 10}
    _wait_pinned_ok(d, key, "cm", "1")
    counts = _versions_served(d, key, "cm", 200)
    assert set(counts) == {"1", "2"} and counts["1"] > counts["2"], counts

    audit = d.aget("/admin/v1/audit?limit=1000").json()["data"]
    acts = [a["action"] for a in audit]
    assert acts.count("deployment.traffic") == 2
    assert "deployment.rollback" in acts

    # Persisted across a restart.
    assert d.stop() == 0
    d.start()
    _wait_pinned_ok(d, key, "cm", "1")
    _wait_pinned_ok(d, key, "cm", "2")
    counts = _versions_served(d, key, "cm", 200)
    assert set(counts) == {"1", "2"} and counts["1"] > counts["2"], counts


def test_traffic_is_validated(maasd_factory, models):
    d = maasd_factory()
    _two_versions(d, "cv", models)
    for body in ([], [{"version": "1", "weight": 0}],
                 [{"version": "1", "weight": -1}],
                 [{"version": "1", "weight": "5"}],
                 [{"version": "1", "weight": 5, "replicas": 0}],
                 [{"version": "1", "weight": 5}, {"version": "1",
                                                  "weight": 5}]):
        r = _traffic(d, "cv", body)
        assert r.status_code == 400, (body, r.text)
    assert _traffic(d, "cv", [{"version": "7", "weight": 5}]) \
        .status_code == 404
    assert _traffic(d, "nope", [{"version": "1", "weight": 5}]) \
        .status_code == 404
    # Nothing to roll back to yet.
    assert d.apost("/admin/v1/deployments/cv/rollback").status_code == 409


def test_delete_drains_in_flight_requests(maasd_factory, models):
    d = maasd_factory()
    path = models.get(HEAVY, seed=31)
    deploy_model(d, "gone", path)
    _, k = tenant_with_key(d)
    load = Load(d, k["key"], "gone", body_for(np.ones((4, 784))), 6).start()
    try:
        wait_for(lambda: load.count() >= 10, 60 * SCALE, what="load")
        pids = d.runtime_pids(path)
        t_del = time.monotonic()
        r = d.adelete("/admin/v1/deployments/gone")
        assert r.status_code == 200, r.text
        wait_for(lambda: load.count(404) >= 6, 30 * SCALE,
                 what="requests refused after delete")
    finally:
        load.stop()
    assert not load.errors, load.errors[:3]
    res = load.snapshot()
    assert {x[2] for x in res} <= {200, 404}, {x[2] for x in res}
    # Everything sent well before the delete finished with 200.
    early = [x for x in res if x[0] < t_del - 0.05]
    assert early and all(x[2] == 200 for x in early)
    assert d.aget("/admin/v1/deployments/gone").status_code == 404
    wait_for(lambda: not any(proc_alive(p) for p in pids), 15 * SCALE,
             what="runtimes stopped")
    audit = d.aget("/admin/v1/audit?limit=1000").json()["data"]
    assert "deployment.delete" in [a["action"] for a in audit]
    # The name can be used again.
    r = d.apost("/admin/v1/deployments", {"name": "gone", "model": "gone",
                                          "version": "1"})
    assert r.status_code == 201, r.text
