"""Usage reports per tenant, model, key and UTC day: requests, errors,
tokens in and out, p50/p95/p99 latency (queue_us + compute_us of served
requests, nearest rank: the value at rank ceil(p * n / 100)).  The JSON
and CSV answers carry the same numbers, and both equal what the usage
rows in the database say."""
import csv
import io
import json
import math
import time

import numpy as np
import pytest

from conftest import (HTTP_TIMEOUT, create_key, deploy_file, running_maasd,
                      tenant_with_key, tensor)

LAYERS = (16, 8, 4)
COLS = ("day", "tenant_id", "model", "key_id", "requests", "errors",
        "input_tokens", "output_tokens", "latency_p50_us", "latency_p95_us",
        "latency_p99_us")


@pytest.fixture(scope="module")
def d(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("report")) as d:
        deploy_file(d, "ra", models.get(LAYERS, seed=11))
        deploy_file(d, "rb", models.get(LAYERS, seed=12))
        yield d


def _send(d, s, model, ok=True):
    if ok:
        x = np.random.default_rng(1).random((1, 16)).astype(np.float32)
        body = {"inputs": [tensor("input", x)]}
    else:
        body = {"inputs": [{"name": "input", "shape": [1, 2],
                            "datatype": "FP32", "data": [1, 2]}]}
    r = s.post(d.url(f"/v2/models/{model}/infer"), data=json.dumps(body),
               timeout=HTTP_TIMEOUT)
    assert r.status_code == (200 if ok else 400), r.text
    return r


def _rank(vals, p):
    if not vals:
        return None
    vals = sorted(vals)
    return vals[max(1, math.ceil(p * len(vals) / 100)) - 1]


def _expected(d, tenants):
    groups = {}
    with d.db() as con:
        for r in con.execute(
                "SELECT tenant_id, model, key_id, ts_us, status,"
                " prompt_tokens, completion_tokens, queue_us, compute_us"
                " FROM usage_events"):
            if r["tenant_id"] not in tenants:
                continue
            day = time.strftime("%Y-%m-%d",
                                time.gmtime(r["ts_us"] // 1_000_000))
            g = groups.setdefault((day, r["tenant_id"], r["model"],
                                   r["key_id"]), {"n": 0, "err": 0, "in": 0,
                                                  "out": 0, "lat": []})
            g["n"] += 1
            g["in"] += r["prompt_tokens"]
            g["out"] += r["completion_tokens"]
            if 200 <= r["status"] < 300:
                g["lat"].append(r["queue_us"] + r["compute_us"])
            else:
                g["err"] += 1
    return {k: (g["n"], g["err"], g["in"], g["out"], _rank(g["lat"], 50),
                _rank(g["lat"], 95), _rank(g["lat"], 99))
            for k, g in groups.items()}


def _from_json(rows, tenants):
    return {(r["day"], r["tenant_id"], r["model"], r["key_id"]):
            (r["requests"], r["errors"], r["input_tokens"],
             r["output_tokens"], r["latency_p50_us"], r["latency_p95_us"],
             r["latency_p99_us"])
            for r in rows if r["tenant_id"] in tenants}


def _from_csv(text, tenants):
    out = {}
    rows = list(csv.DictReader(io.StringIO(text)))
    for r in rows:
        if r["tenant_id"] not in tenants:
            continue
        def num(v):
            return int(v) if v != "" else None
        out[(r["day"], r["tenant_id"], r["model"], r["key_id"] or None)] = \
            tuple(num(r[c]) for c in COLS[4:])
    return out


def test_report_json_csv_and_database_agree(d):
    ta, ka = tenant_with_key(d)
    ka2 = create_key(d, ta["id"], name="second")
    tb, kb = tenant_with_key(d)
    sa, sa2, sb = d.tenant(ka["key"]), d.tenant(ka2["key"]), \
        d.tenant(kb["key"])
    for i in range(23):
        _send(d, sa, "ra")
    for i in range(3):
        _send(d, sa, "ra", ok=False)
    for i in range(7):
        _send(d, sa2, "rb")
    for i in range(5):
        _send(d, sb, "ra")
    _send(d, sb, "rb", ok=False)
    tenants = {ta["id"], tb["id"]}
    want = _expected(d, tenants)
    assert sum(v[0] for v in want.values()) == 39
    r = d.aget("/admin/v1/usage/report")
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["object"] == "usage_report" and "nearest" in rep["latency"]
    got = _from_json(rep["data"], tenants)
    assert got == want
    g = got[next(k for k in got if k[1] == ta["id"] and k[2] == "ra")]
    assert g[0] == 26 and g[1] == 3 and g[4] <= g[5] <= g[6]
    err_only = [v for k, v in got.items() if k[1] == tb["id"] and
                k[2] == "rb"]
    assert err_only == [(1, 1, 0, 0, None, None, None)]
    for how in ({"path": "/admin/v1/usage/report.csv"},
                {"path": "/admin/v1/usage/report",
                 "headers": {"Accept": "text/csv"}},
                {"path": "/admin/v1/usage/report?format=csv"}):
        r = d.aget(how["path"], headers=how.get("headers"))
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/csv")
        assert r.text.splitlines()[0] == ",".join(COLS)
        assert _from_csv(r.text, tenants) == want


def test_report_filters(d):
    ta, ka = tenant_with_key(d)
    kb = create_key(d, ta["id"], name="other")
    _send(d, d.tenant(ka["key"]), "ra")
    _send(d, d.tenant(kb["key"]), "rb")
    r = d.aget(f"/admin/v1/usage/report?tenant={ta['id']}&model=rb")
    rows = r.json()["data"]
    assert [(x["model"], x["key_id"]) for x in rows] == [("rb", kb["id"])]
    r = d.aget(f"/admin/v1/usage/report?key={ka['id']}")
    assert [(x["model"], x["key_id"]) for x in r.json()["data"]] == \
        [("ra", ka["id"])]
    r = d.aget("/admin/v1/usage/report?from=2001-01-01&to=2001-01-02")
    assert r.status_code == 200 and r.json()["data"] == []
    for bad in ("from=yesterday", "from=2020-01-01&to=2024-01-01",
                "from=2020-01-02&to=2020-01-01"):
        r = d.aget("/admin/v1/usage/report?" + bad)
        assert r.status_code == 400, (bad, r.text)
