"""Metering: one usage_events row per authenticated model request, durable
before the response is sent, with the response's x-request-id; the admin
usage API agrees with the database file and pages/filters correctly."""
import json
import time

import numpy as np
import pytest
import requests

from conftest import (HTTP_TIMEOUT, create_key, deploy_file,
                      request_ids_in_db, running_maasd, tenant_with_key,
                      tensor)

LAYERS = (784, 32, 10)
USAGE_FIELDS = ("request_id", "tenant_id", "key_id", "model", "version",
                "status", "queue_us", "compute_us", "bytes_in", "bytes_out")


@pytest.fixture(scope="module")
def d(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("metering")) as d:
        deploy_file(d, "m", models.get(LAYERS, seed=9))
        yield d


def _good_body(batch=1, seed=0):
    x = np.random.default_rng(seed).random((batch, 784)).astype(np.float32)
    return json.dumps({"inputs": [tensor("input", x)]}).encode()


BAD_BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 3],
                                   "datatype": "FP32",
                                   "data": [1, 2, 3]}]}).encode()


def _send(d, sess, body, model="m"):
    r = sess.post(d.url(f"/v2/models/{model}/infer"), data=body,
                  headers={"Content-Type": "application/json"},
                  timeout=HTTP_TIMEOUT)
    rid = r.headers.get("x-request-id")
    assert rid, r.headers
    # The row is committed before the response is sent: it must be
    # visible in the file the moment we hold the response.
    rows = request_ids_in_db(d, [rid])
    assert rid in rows, f"usage row for {rid} (status {r.status_code}) " \
        "not in the database when the response arrived"
    return {"rid": rid, "status": r.status_code, "bytes_in": len(body),
            "bytes_out": len(r.content), "model": model}


def _all_usage(d, query="", limit=7):
    """Every usage row through the admin API, following the pages."""
    rows, after, pages = [], None, 0
    while True:
        q = f"/admin/v1/usage?limit={limit}" + (f"&{query}" if query else "")
        if after is not None:
            q += f"&after={after}"
        r = d.aget(q)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page.get("object") == "list", page
        assert isinstance(page["has_more"], bool)
        assert len(page["data"]) <= limit
        rows += page["data"]
        pages += 1
        assert pages < 1000
        if not page["has_more"]:
            return rows
        assert page["data"], "has_more with an empty page"
        after = page["data"][-1]["id"]


@pytest.fixture(scope="module")
def traffic(d):
    """Two tenants, three keys, a mix of 200, 400 and 404 requests sent in
    two batches separated by a whole-second boundary."""
    ta, ka1 = tenant_with_key(d)
    ka2 = create_key(d, ta["id"], name="second")
    tb, kb = tenant_with_key(d)
    sa1, sa2, sb = (d.tenant(k["key"]) for k in (ka1, ka2, kb))
    sent = []

    def send(sess, tenant, key, body, model="m"):
        e = _send(d, sess, body, model)
        e.update(tenant_id=tenant["id"], key_id=key["id"])
        sent.append(e)

    for i in range(4):
        send(sa1, ta, ka1, _good_body(1 + i, seed=i))
    send(sa1, ta, ka1, BAD_BODY)
    send(sa2, ta, ka2, BAD_BODY)
    send(sa2, ta, ka2, b"{not json")
    send(sb, tb, kb, _good_body(2, seed=10))
    send(sb, tb, kb, _good_body(1, seed=11), model="absent-model")
    first = len(sent)
    # a whole-second boundary between the batches, for the time filters
    split = int(time.time()) + 1
    time.sleep(max(0.0, split - time.time()) + 0.05)
    for i in range(3):
        send(sa2, ta, ka2, _good_body(3, seed=20 + i))
    send(sb, tb, kb, BAD_BODY)
    send(sb, tb, kb, _good_body(1, seed=30))
    return {"sent": sent, "first": first, "split": split, "ta": ta,
            "tb": tb, "keys": (ka1, ka2, kb)}


def test_statuses_are_mixed(traffic):
    statuses = [e["status"] for e in traffic["sent"]]
    assert statuses.count(200) == 9, statuses
    assert statuses.count(400) == 4, statuses
    assert statuses.count(404) == 1, statuses


def test_one_row_per_request(d, traffic):
    sent = traffic["sent"]
    ids = [e["rid"] for e in sent]
    assert len(set(ids)) == len(ids)
    con = d.db()
    try:
        tenants = (traffic["ta"]["id"], traffic["tb"]["id"])
        rows = [dict(r) for r in con.execute(
            "SELECT * FROM usage_events WHERE tenant_id IN (?, ?)", tenants)]
    finally:
        con.close()
    assert len(rows) == len(sent), (len(rows), len(sent))
    by_id = {r["request_id"]: r for r in rows}
    assert set(by_id) == set(ids)
    for e in sent:
        row = by_id[e["rid"]]
        where = f"request {e['rid']} (status {e['status']})"
        assert row["status"] == e["status"], where
        assert row["tenant_id"] == e["tenant_id"], where
        assert row["key_id"] == e["key_id"], where
        assert row["model"] == e["model"], where
        assert row["bytes_in"] == e["bytes_in"], where
        assert row["bytes_out"] == e["bytes_out"], where
        assert row["bytes_out"] > 0 and row["bytes_in"] > 0, where
        assert row["queue_us"] >= 0 and row["compute_us"] >= 0, where
        if e["status"] == 200:
            assert row["compute_us"] > 0, where
            assert row["version"] == "1", where
        assert abs(row["ts_us"] / 1e6 - time.time()) < 600, where


def test_unauthenticated_requests_are_not_metered(d, traffic):
    con = d.db()
    before = con.execute("SELECT count(*) FROM usage_events").fetchone()[0]
    con.close()
    for h in ({}, {"Authorization": "Bearer maas_sk_" + "ab" * 24},
              {"Authorization": f"Bearer {d.admin_token}"}):
        r = requests.post(d.url("/v2/models/m/infer"), data=_good_body(),
                          headers=h, verify=d.cert, timeout=HTTP_TIMEOUT)
        assert r.status_code == 401
        assert not request_ids_in_db(d, [r.headers["x-request-id"]])
    con = d.db()
    after = con.execute("SELECT count(*) FROM usage_events").fetchone()[0]
    con.close()
    assert after == before


def test_usage_api_agrees_with_db(d, traffic):
    api = _all_usage(d, limit=4)
    ids = [u["request_id"] for u in api]
    assert len(ids) == len(set(ids)), "a row appeared on two pages"
    con = d.db()
    try:
        db_rows = {r["request_id"]: dict(r) for r in
                   con.execute("SELECT * FROM usage_events")}
    finally:
        con.close()
    assert set(ids) == set(db_rows)
    for u in api:
        for f in USAGE_FIELDS:
            assert u[f] == db_rows[u["request_id"]][f], (f, u)
    # pages are in a stable order: ascending id
    assert [u["id"] for u in api] == sorted(u["id"] for u in api)


def test_usage_paging(d, traffic):
    r = d.aget("/admin/v1/usage?limit=3")
    assert r.status_code == 200
    p1 = r.json()
    assert len(p1["data"]) == 3 and p1["has_more"] is True
    r = d.aget(f"/admin/v1/usage?limit=3&after={p1['data'][-1]['id']}")
    p2 = r.json()
    assert len(p2["data"]) == 3
    assert not {u["request_id"] for u in p1["data"]} & \
        {u["request_id"] for u in p2["data"]}
    assert p2["data"][0]["id"] > p1["data"][-1]["id"]
    everything = _all_usage(d, limit=1000)
    r = d.aget(f"/admin/v1/usage?limit=1000&after={everything[-1]['id']}")
    assert r.status_code == 200
    assert r.json()["data"] == [] and r.json()["has_more"] is False
    for bad in ("limit=0", "limit=-1", "limit=abc", "limit=100000"):
        r = d.aget(f"/admin/v1/usage?{bad}")
        assert r.status_code == 400, (bad, r.status_code, r.text)


def test_tenant_filter(d, traffic):
    for t in (traffic["ta"], traffic["tb"]):
        rows = _all_usage(d, f"tenant={t['id']}", limit=3)
        want = {e["rid"] for e in traffic["sent"] if e["tenant_id"] == t["id"]}
        assert {u["request_id"] for u in rows} == want
        assert all(u["tenant_id"] == t["id"] for u in rows)
    assert _all_usage(d, "tenant=ten_000000000000000000000000") == []


def test_time_filters(d, traffic):
    sent, first, split = traffic["sent"], traffic["first"], traffic["split"]
    ta, tb = traffic["ta"]["id"], traffic["tb"]["id"]

    def ids(query):
        return {u["request_id"] for u in _all_usage(d, query, limit=50)
                if u["tenant_id"] in (ta, tb)}
    early = {e["rid"] for e in sent[:first]}
    late = {e["rid"] for e in sent[first:]}
    assert ids(f"from={split}") == late
    assert ids(f"to={split}") == early
    assert ids(f"from={split - 3600}&to={split + 3600}") == early | late
    assert ids(f"from={split + 3600}") == set()
    assert ids(f"to={split - 3600}") == set()
    # ISO forms (UTC)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(split))
    assert ids(f"from={iso}") == late
    assert ids(f"to={iso}") == early
    day = time.strftime("%Y-%m-%d", time.gmtime(split - 86400))
    assert ids(f"from={day}") == early | late
    # combined with the tenant filter
    got = _all_usage(d, f"tenant={ta}&from={split}")
    assert {u["request_id"] for u in got} == \
        {e["rid"] for e in sent[first:] if e["tenant_id"] == ta}
    for bad in ("from=yesterday", "to=2024-13-45", "from=12abc"):
        r = d.aget(f"/admin/v1/usage?{bad}")
        assert r.status_code == 400, (bad, r.status_code, r.text)
