"""The node memory budget under pressure: the autoscaler grows a deployment
up to the budget and no further (saying why in the log and in /metrics)
while requests keep succeeding, and admin changes that arrive together
cannot overcommit the node (each one's room is held from its check until
it is applied, across the database write in between).

The model is a small transformer whose attention scores make each
replica's private memory about 4 MiB (the weights are a few KiB, in the
shared file mapping), so a budget in whole MiB can hold exactly k
replicas."""
import math
import subprocess
import threading

import numpy as np
import requests

from conftest import (HTTP_TIMEOUT, REPO, SCALE, assert_error,
                      register_model, tenant_with_key, wait_for)
from sched_helpers import Load, body_for, deploy_model, metric, metrics

MIB = 1 << 20
SEQ, HIDDEN = 256, 16


def _model(models):
    path = models.root / "budget-transformer.onnx"
    if not path.exists():
        r = subprocess.run(
            ["/usr/bin/python3", str(REPO / "tools" / "gen-onnx.py"),
             "transformer", "-o", str(path), "--layers", "1", "--hidden",
             str(HIDDEN), "--heads", "8", "--seq", str(SEQ), "--seed", "4"],
            capture_output=True, timeout=120 * SCALE)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        path.chmod(0o644)
    return path


def _figures(maasd_factory, path):
    """(private bytes per replica, file bytes) as registration measures
    them, from a maasd without a budget."""
    d = maasd_factory(args=("--memory-budget-mb", "0"))
    row = register_model(d, "probe", "1", path)
    d.shutdown()
    mem, size = row["meta"]["mem_bytes"], row["size"]
    # Whole MiB must be able to tell k replicas from k + 1.
    assert mem >= 2 * MIB, row
    return mem, size


def _budget_mb(mem, size, k):
    """A budget with room for k replicas and half of one more."""
    mb = math.floor((size + (k + 0.5) * mem) / MIB)
    assert size + k * mem <= mb * MIB < size + (k + 1) * mem
    return mb


def test_autoscaler_stops_at_the_memory_budget(maasd_factory, models):
    path = _model(models)
    mem, size = _figures(maasd_factory, path)
    d = maasd_factory(args=("--memory-budget-mb",
                            str(_budget_mb(mem, size, 2)),
                            "--autoscale-up-ms", "300",
                            "--autoscale-idle-ms", "600000"))
    deploy_model(d, "tf", path, min_replicas=1, max_replicas=4)
    _, k = tenant_with_key(d)
    x = np.random.default_rng(3).standard_normal((1, SEQ, HIDDEN))
    load = Load(d, k["key"], "tf", body_for(x), 12).start()
    why = "another replica does not fit the memory budget: not scaling up"
    try:
        # It grows to 2, then the autoscaler wants a third and is held
        # back: said in the log and in /metrics.
        def held():
            d.check_alive()
            m = metrics(d)
            return (metric(m, "maas_autoscale_at_memory_budget",
                           deployment="tf") == 1 and why in d.log())
        wait_for(held, 60 * SCALE, interval=0.1, what="held at the budget")
        m = metrics(d)
        assert metric(m, "maas_replicas", deployment="tf") == 2
        assert metric(m, "maas_memory_reserved_bytes") == size + 2 * mem
        # Twelve clients keep more than the two replicas compute waiting
        # (in the queue, or sent behind the INFER a replica computes).
        assert (metric(m, "maas_queue_depth", deployment="tf") +
                metric(m, "maas_requests_running", deployment="tf")) >= 6
        # Still held while the queue stays deep, and still serving.
        n = load.count()
        wait_for(lambda: load.count() >= n + 40, 60 * SCALE,
                 what="requests served at the budget")
        m = metrics(d)
        assert metric(m, "maas_replicas", deployment="tf") == 2
        assert metric(m, "maas_autoscale_at_memory_budget",
                      deployment="tf") == 1
    finally:
        load.stop()
    assert not load.errors, load.errors[:3]
    res = load.snapshot()
    assert res and all(x[2] == 200 for x in res), \
        [x for x in res if x[2] != 200][:3]
    assert len(d.runtime_pids(path)) == 2
    m = metrics(d)
    assert metric(m, "maas_autoscale_total", deployment="tf",
                  direction="up") == 1
    assert d.log().count(why) == 1, d.log_tail()
    # The queue drained: nothing is held back any more.
    wait_for(lambda: metric(metrics(d), "maas_autoscale_at_memory_budget",
                            deployment="tf") == 0, 30 * SCALE,
             what="no longer at the budget")
    d.check_alive()


def _together(d, calls):
    """Runs the admin calls [(method, path, body)] at the same moment, each
    on its own warm connection; returns their responses in order."""
    sessions = []
    for _ in calls:
        s = requests.Session()
        s.trust_env = False
        s.verify = d.cert
        s.headers["Authorization"] = f"Bearer {d.admin_token}"
        assert s.get(d.admin_url("/admin/v1/deployments"),
                     timeout=HTTP_TIMEOUT).status_code == 200
        sessions.append(s)
    gate = threading.Barrier(len(calls))
    out = [None] * len(calls)

    def run(i, method, path, body):
        gate.wait()
        out[i] = sessions[i].request(method, d.admin_url(path), json=body,
                                     timeout=HTTP_TIMEOUT)
    threads = [threading.Thread(target=run, args=(i, *c))
               for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in sessions:
        s.close()
    return out


def _statuses(rs):
    return sorted(r.status_code for r in rs)


def test_concurrent_admin_changes_cannot_overcommit(maasd_factory, models):
    path = _model(models)
    mem, size = _figures(maasd_factory, path)
    budget_mb = _budget_mb(mem, size, 3)
    d = maasd_factory(args=("--memory-budget-mb", str(budget_mb)))
    register_model(d, "tf", "1", path)

    # Six deployments of one replica each, created at once: the file is
    # shared, so three fit, and only three.
    rs = _together(d, [("POST", "/admin/v1/deployments",
                        {"name": f"c{i}", "model": "tf", "version": "1",
                         "replicas": 1}) for i in range(6)])
    assert _statuses(rs) == [201] * 3 + [409] * 3, [r.text for r in rs]
    for r in rs:
        if r.status_code == 409:
            e = assert_error(r, 409)
            assert e["code"] == "memory_budget_exceeded", e
    made = [f"c{i}" for i, r in enumerate(rs) if r.status_code == 201]
    m = metrics(d)
    assert metric(m, "maas_memory_reserved_bytes") == size + 3 * mem
    assert metric(m, "maas_memory_reserved_bytes") <= budget_mb * MIB

    # Room for one more replica; two deployments each ask for it at once.
    r = d.adelete(f"/admin/v1/deployments/{made[0]}")
    assert r.status_code == 200, r.text
    rs = _together(d, [("PATCH", f"/admin/v1/deployments/{n}",
                        {"replicas": 2}) for n in made[1:]])
    assert _statuses(rs) == [200, 409], [r.text for r in rs]
    assert assert_error(rs[0] if rs[0].status_code == 409 else rs[1],
                        409)["code"] == "memory_budget_exceeded"
    m = metrics(d)
    assert metric(m, "maas_memory_reserved_bytes") == size + 3 * mem
    assert sorted(metric(m, "maas_replicas", deployment=n)
                  for n in made[1:]) == [1, 2]

    # What was refused left nothing held: once a deployment is deleted,
    # its room is there for the next request.
    r = d.adelete(f"/admin/v1/deployments/{made[1]}")
    assert r.status_code == 200, r.text
    r = d.apost("/admin/v1/deployments", {"name": "z", "model": "tf",
                                          "version": "1", "replicas": 1})
    assert r.status_code == 201, r.text
    assert metric(metrics(d), "maas_memory_reserved_bytes") <= \
        budget_mb * MIB
    d.check_alive()
