"""GET /metrics on the admin port: Prometheus text format 0.0.4 that
promtool accepts, behind the admin credential, with the scheduler's
per-deployment and per-tenant numbers."""
import shutil
import subprocess

import numpy as np
import pytest
import requests

from conftest import HTTP_TIMEOUT, tenant_with_key
from sched_helpers import (Conn, body_for, deploy_model, metric,
                           parse_metrics)


def test_metrics_text_passes_promtool(maasd_factory, models):
    d = maasd_factory()
    path = models.get((784, 32, 10), seed=9)
    deploy_model(d, "m", path)
    deploy_model(d, "mb", models.get((784, 16, 10), seed=9), max_batch=8,
                 max_queue_delay_us=1000)
    ta, ka = tenant_with_key(d)
    tb, kb = tenant_with_key(d)
    for key, n in ((ka["key"], 5), (kb["key"], 3)):
        c = Conn(d, key)
        for _ in range(n):
            assert c.infer("m", body_for(np.ones((2, 784))))[0] == 200
        assert c.infer("mb", body_for(np.ones((1, 784))))[0] == 200
        c.close()
    r = d.aget("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = r.text
    m = parse_metrics(text)
    assert metric(m, "maas_requests_total", deployment="m", tenant=ta["id"],
                  status="ok") == 5
    assert metric(m, "maas_requests_total", deployment="m", tenant=tb["id"],
                  status="ok") == 3
    assert metric(m, "maas_queue_seconds_count", deployment="m",
                  tenant=ta["id"]) == 5
    assert metric(m, "maas_compute_seconds_count", deployment="m",
                  tenant=tb["id"]) == 3
    assert metric(m, "maas_compute_seconds_bucket", deployment="m",
                  tenant=tb["id"], le="+Inf") == 3
    assert metric(m, "maas_replicas_live", deployment="m") == 1
    assert metric(m, "maas_replicas", deployment="mb") == 1
    assert metric(m, "maas_queue_depth", deployment="m") == 0
    assert metric(m, "maas_batch_size_sum", deployment="m") == 16
    assert metric(m, "maas_tenant_weight", deployment="m",
                  tenant=ta["id"]) == 1
    assert ("maas_runtime_restarts_total",
            frozenset({("deployment", "m")})) in m

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package "
                    "'prometheus')")
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, (p.stdout + p.stderr).decode()[-2000:]
    assert not (p.stdout + p.stderr).strip(), (p.stdout + p.stderr)


def test_metrics_need_the_admin_token(maasd_factory):
    d = maasd_factory()
    url = d.admin_url("/metrics")
    r = requests.get(url, verify=d.cert, timeout=HTTP_TIMEOUT)
    assert r.status_code == 401
    r = requests.get(url, verify=d.cert, timeout=HTTP_TIMEOUT,
                     headers={"Authorization": "Bearer maas_admin_" +
                              "0" * 48})
    assert r.status_code == 401
    r = d.admin.post(url, timeout=HTTP_TIMEOUT)
    assert r.status_code == 405 and "GET" in r.headers.get("Allow", "")
    # No deployments yet: still valid, families declared, no samples.
    r = d.aget("/metrics")
    assert r.status_code == 200
    assert "# TYPE maas_requests_total counter" in r.text
    # Tenant port has no metrics.
    r = d.get("/metrics")
    assert r.status_code == 404
