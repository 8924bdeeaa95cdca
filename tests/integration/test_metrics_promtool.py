"""/metrics (admin port, admin token; the tenant port has none) passes
`promtool check metrics` (Debian package prometheus) after traffic:
successes, client errors, two tenants."""
import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import (HTTP_TIMEOUT, SCALE, deploy_file, running_maasd,
                      tenant_with_key, tensor)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def test_metrics_pass_promtool(tmp_path, models):
    if not shutil.which(PROMTOOL):
        pytest.fail("promtool missing: apt-get install prometheus")
    with running_maasd(tmp_path) as d:
        deploy_file(d, "pm", models.get((8, 4, 2), seed=3))
        for _ in range(2):
            _, k = tenant_with_key(d)
            s = d.tenant(k["key"])
            x = np.ones((1, 8), dtype=np.float32)
            for _ in range(5):
                r = s.post(d.url("/v2/models/pm/infer"), json={
                    "inputs": [tensor("input", x)]}, timeout=HTTP_TIMEOUT)
                assert r.status_code == 200, r.text
            r = s.post(d.url("/v2/models/pm/infer"), data=json.dumps(
                {"inputs": [{"name": "input", "shape": [1, 2],
                             "datatype": "FP32", "data": [1, 2]}]}),
                timeout=HTTP_TIMEOUT)
            assert r.status_code == 400
        r = d.aget("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.text
        assert "# TYPE" in text and "pm" in text
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                           capture_output=True, text=True,
                           timeout=60 * SCALE)
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.stdout.strip() == "" and p.stderr.strip() == "", \
            p.stdout + p.stderr
        # The tenant port serves no metrics.
        assert d.get("/metrics").status_code in (401, 404)
