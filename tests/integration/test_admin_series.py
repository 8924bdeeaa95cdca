"""GET /admin/v1/usage/series, the dashboard's per-step numbers: requests,
errors (status not 2xx), tokens in and out, charge and p50/p95/p99 latency
(queue_us + compute_us of served requests, nearest rank) per step, and the
top tenants, computed by maasd over a bounded range.  Checked against the
same numbers computed here from the SQLite file, for requests served
through the gateway and for rows of a past hour written to the file."""
import json
import math
import random

import numpy as np
import pytest

from conftest import (HTTP_TIMEOUT, deploy_file, running_maasd,
                      tenant_with_key, tensor, unique)

LAYERS = (16, 8, 4)
HOUR = 978_310_800      # 2001-01-01T01:00:00Z


@pytest.fixture(scope="module")
def d(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("series")) as d:
        deploy_file(d, "sa", models.get(LAYERS, seed=21))
        yield d


def _rank(vals, p):
    if not vals:
        return None
    vals = sorted(vals)
    return vals[max(1, math.ceil(p * len(vals) / 100)) - 1]


def _expected(d, start, end, step, tenant=None):
    """The series computed from the database file, independently."""
    n = -(-(end - start) // step)
    steps = [{"t": start + i * step, "requests": 0, "errors": 0,
              "input_tokens": 0, "output_tokens": 0, "cost_micros": 0,
              "lat": []} for i in range(n)]
    top = {}
    with d.db() as con:
        rows = con.execute(
            "SELECT tenant_id, ts_us, status, prompt_tokens,"
            " completion_tokens, queue_us, compute_us, cost_micros"
            " FROM usage_events").fetchall()
    for r in rows:
        if not start * 10**6 <= r["ts_us"] < end * 10**6:
            continue
        if tenant is not None and r["tenant_id"] != tenant:
            continue
        s = steps[(r["ts_us"] - start * 10**6) // (step * 10**6)]
        ok = 200 <= r["status"] < 300
        s["requests"] += 1
        s["errors"] += 0 if ok else 1
        s["input_tokens"] += r["prompt_tokens"]
        s["output_tokens"] += r["completion_tokens"]
        s["cost_micros"] += r["cost_micros"]
        if ok:
            s["lat"].append(r["queue_us"] + r["compute_us"])
        t = top.setdefault(r["tenant_id"], {
            "tenant_id": r["tenant_id"], "requests": 0, "errors": 0,
            "input_tokens": 0, "output_tokens": 0, "cost_micros": 0})
        t["requests"] += 1
        t["errors"] += 0 if ok else 1
        t["input_tokens"] += r["prompt_tokens"]
        t["output_tokens"] += r["completion_tokens"]
        t["cost_micros"] += r["cost_micros"]
    for s in steps:
        lat = s.pop("lat")
        for p in (50, 95, 99):
            s[f"latency_p{p}_us"] = _rank(lat, p)
    tops = sorted(top.values(), key=lambda x: (-x["requests"],
                                                x["tenant_id"]))[:10]
    return steps, tops


def _insert_hour(d, tenants):
    """Rows of a past hour with spread-out latencies, statuses, tokens."""
    rnd = random.Random(7)
    rows = []
    for i in range(600):
        ts = HOUR * 10**6 + rnd.randrange(0, 3600 * 10**6)
        if i < 4:       # on the step boundaries exactly
            ts = (HOUR + 60 * i) * 10**6
        rows.append((unique("rq"), ts, rnd.choice(tenants),
                     rnd.choice((200, 200, 200, 201, 400, 429, 500)),
                     rnd.randrange(0, 5000), rnd.randrange(0, 90000),
                     rnd.randrange(0, 300), rnd.randrange(0, 300),
                     rnd.randrange(0, 5000)))
    con = __import__("sqlite3").connect(str(d.db_path), timeout=30)
    try:
        with con:
            con.executemany(
                "INSERT INTO usage_events (request_id, ts_us, tenant_id,"
                " model, endpoint, status, queue_us, compute_us,"
                " prompt_tokens, completion_tokens, cost_micros)"
                " VALUES (?, ?, ?, 'sa', 'chat', ?, ?, ?, ?, ?, ?)", rows)
    finally:
        con.close()


def _series(d, q):
    r = d.aget(f"/admin/v1/usage/series{q}")
    assert r.status_code == 200, r.text
    return r.json()


def test_past_hour_matches_the_database(d):
    tenants = [tenant_with_key(d)[0]["id"] for _ in range(3)]
    _insert_hour(d, tenants)
    for step in (60, 7, 3600, 1):
        end = HOUR + 3600 if step != 1 else HOUR + 600
        got = _series(d, f"?from={HOUR}&to={end}&step={step}")
        steps, tops = _expected(d, HOUR, end, step)
        assert (got["from"], got["to"], got["step"]) == (HOUR, end, step)
        assert got["data"] == steps, step
        assert got["top_tenants"] == tops
    assert sum(s["requests"] for s in got["data"]) > 0
    # One tenant; the ISO form of the times.
    got = _series(d, f"?from=2001-01-01T01:00:00Z&to=2001-01-01T01:30:00Z"
                     f"&step=120&tenant={tenants[1]}")
    steps, tops = _expected(d, HOUR, HOUR + 1800, 120, tenants[1])
    assert got["data"] == steps and got["top_tenants"] == tops
    assert [t["tenant_id"] for t in tops] == [tenants[1]]
    # A last step shorter than the others.
    got = _series(d, f"?from={HOUR}&to={HOUR + 150}&step=60")
    assert [s["t"] for s in got["data"]] == [HOUR, HOUR + 60, HOUR + 120]
    assert got["data"] == _expected(d, HOUR, HOUR + 150, 60)[0]


def test_served_requests_show_in_the_default_window(d):
    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    x = np.random.default_rng(3).random((1, 16)).astype(np.float32)
    good = json.dumps({"inputs": [tensor("input", x)]})
    bad = json.dumps({"inputs": [{"name": "input", "shape": [1, 2],
                                  "datatype": "FP32", "data": [1, 2]}]})
    codes = [s.post(d.url("/v2/models/sa/infer"), data=b,
                    timeout=HTTP_TIMEOUT).status_code
             for b in (good, good, good, bad, good)]
    assert codes == [200, 200, 200, 400, 200]
    got = _series(d, "")
    assert got["step"] == 60 and len(got["data"]) == 30
    assert got["to"] - got["from"] == 1800 and got["to"] % 60 == 0
    steps, tops = _expected(d, got["from"], got["to"], 60)
    assert got["data"] == steps and got["top_tenants"] == tops
    mine = _series(d, f"?tenant={t['id']}&from={got['from']}"
                      f"&to={got['to']}")
    assert sum(x["requests"] for x in mine["data"]) == 5
    assert sum(x["errors"] for x in mine["data"]) == 1
    assert any(x["latency_p99_us"] for x in mine["data"])


@pytest.mark.parametrize("q", [
    "?step=0", "?step=86401", "?step=x", "?step=", "?from=soon",
    f"?from={HOUR}&to={HOUR}", f"?from={HOUR + 60}&to={HOUR}",
    f"?from={HOUR}&to={HOUR + 1441 * 60}&step=60",
    f"?from=0&to={HOUR}&step=86400",
])
def test_bad_ranges_are_400(d, q):
    r = d.aget(f"/admin/v1/usage/series{q}")
    assert r.status_code == 400, (q, r.text)
    assert r.json()["error"]["type"]


def test_at_most_1440_steps(d):
    got = _series(d, f"?from={HOUR}&to={HOUR + 1440 * 60}&step=60")
    assert len(got["data"]) == 1440
