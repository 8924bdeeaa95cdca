"""Billing: invoices per tenant and calendar month (UTC) computed from
usage_events; their totals equal the sum of cost_micros to the micro-unit,
also after a kill -9 of maasd under concurrent load; CSV and JSON agree;
closing a month freezes it and usage committed later for it is billed as
an adjustment of the next open month; versioned prices."""
import calendar
import csv
import io
import json
import threading
import time

import numpy as np
import pytest
import requests

from conftest import (HTTP_TIMEOUT, SCALE, add_price, deploy_file,
                      running_maasd, tenant_with_key, tensor, wait_for)

LAYERS = (16, 8, 4)
PRICE = dict(per_request_micros=1500, per_compute_second_micros=2_000_000,
             per_1k_input_micros=0, per_1k_output_micros=0)


def _body(seed=0):
    x = np.random.default_rng(seed).random((1, 16)).astype(np.float32)
    return json.dumps({"inputs": [tensor("input", x)]}).encode()


BAD = json.dumps({"inputs": [{"name": "input", "shape": [1, 3],
                              "datatype": "FP32", "data": [1, 2, 3]}]})


def _post(d, sess, body, model="bm"):
    return sess.post(d.url(f"/v2/models/{model}/infer"), data=body,
                     headers={"Content-Type": "application/json"},
                     timeout=HTTP_TIMEOUT)


def _month(offset=0):
    """'YYYY-MM' of the current UTC month plus offset months, and its
    [start, end) in microseconds."""
    t = time.gmtime()
    idx = t.tm_year * 12 + t.tm_mon - 1 + offset
    y, m = divmod(idx, 12)
    m += 1
    start = calendar.timegm((y, m, 1, 0, 0, 0))
    ny, nm = divmod(idx + 1, 12)
    end = calendar.timegm((ny, nm + 1, 1, 0, 0, 0))
    return f"{y:04d}-{m:02d}", start * 1_000_000, end * 1_000_000


def _db_cost(d, tenant, start_us, end_us):
    with d.db() as con:
        row = con.execute(
            "SELECT count(*), ifnull(sum(cost_micros), 0),"
            " ifnull(sum(CASE WHEN status BETWEEN 200 AND 299 THEN 1 END), 0)"
            " FROM usage_events WHERE tenant_id = ? AND ts_us >= ?"
            " AND ts_us < ?", (tenant, start_us, end_us)).fetchone()
    return row[0], row[1], row[2]


def _invoice(d, tenant, period):
    r = d.aget(f"/admin/v1/invoices/{tenant}/{period}")
    assert r.status_code == 200, r.text
    inv = r.json()
    assert inv["object"] == "invoice" and inv["period"] == period
    assert sum(l["amount_micros"] for l in inv["lines"]) == \
        inv["total_micros"]
    assert inv["usage_micros"] + inv["adjustments_micros"] == \
        inv["total_micros"]
    return inv


def _csv_invoice(d, tenant, period, how):
    if how == "suffix":
        r = d.aget(f"/admin/v1/invoices/{tenant}/{period}.csv")
    else:
        r = d.aget(f"/admin/v1/invoices/{tenant}/{period}",
                   headers={"Accept": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and rows[-1]["kind"] == "total"
    return rows[:-1], int(rows[-1]["amount_micros"])


@pytest.fixture(scope="module")
def d(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("billing")) as d:
        deploy_file(d, "bm", models.get(LAYERS, seed=5))
        deploy_file(d, "bm2", models.get(LAYERS, seed=6))
        yield d


def test_invoice_equals_usage_and_csv_agrees(d):
    add_price(d, "bm", **PRICE)
    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    ok = sum(_post(d, s, _body(i)).status_code == 200 for i in range(12))
    assert ok == 12
    for _ in range(3):
        assert _post(d, s, BAD).status_code == 400
    period, start, end = _month()
    n, cost, served = _db_cost(d, t["id"], start, end)
    assert (n, served) == (15, 12)
    inv = _invoice(d, t["id"], period)
    assert inv["status"] == "open" and inv["tenant_id"] == t["id"]
    assert inv["total_micros"] == cost
    assert cost >= 12 * PRICE["per_request_micros"]
    req = [l for l in inv["lines"] if l["unit"] == "requests"]
    assert len(req) == 1 and req[0]["quantity"] == 12
    assert req[0]["unit_price_micros"] == 1500
    assert req[0]["amount_micros"] == 12 * 1500
    comp = [l for l in inv["lines"] if l["unit"] == "compute_seconds"]
    assert len(comp) == 1 and comp[0]["quantity_unit"] == "microsecond"
    assert comp[0]["price_per"] == "second"
    # Priced exactly as the gateway priced each request: no difference.
    assert not [l for l in inv["lines"] if l["unit"] == "budget_cap"]
    for how in ("suffix", "accept"):
        lines, total = _csv_invoice(d, t["id"], period, how)
        assert total == inv["total_micros"]
        assert sum(int(l["amount_micros"]) for l in lines) == total
        assert [(l["model"], l["unit"], int(l["quantity"]),
                 int(l["amount_micros"])) for l in lines] == \
            [(l["model"], l["unit"], l["quantity"], l["amount_micros"])
             for l in inv["lines"]]
    # The list shows the same total for the tenant.
    r = d.aget(f"/admin/v1/invoices?period={period}&tenant={t['id']}")
    assert r.status_code == 200, r.text
    assert [(i["tenant_id"], i["total_micros"]) for i in r.json()["data"]] \
        == [(t["id"], cost)]


def test_new_price_applies_from_its_start(d):
    add_price(d, "bm2", per_request_micros=100)
    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    assert _post(d, s, _body(), "bm2").status_code == 200
    starts = int(time.time()) + 2
    add_price(d, "bm2", per_request_micros=700, starts_at=starts)
    wait_for(lambda: time.time() >= starts + 1, 10 * SCALE)
    assert _post(d, s, _body(), "bm2").status_code == 200
    period, start, end = _month()
    inv = _invoice(d, t["id"], period)
    req = sorted((l["unit_price_micros"], l["quantity"])
                 for l in inv["lines"] if l["unit"] == "requests")
    assert req == [(100, 1), (700, 1)]
    r = d.aget("/admin/v1/prices?model=bm2")
    assert [(p["model"], p["per_request_micros"]) for p in r.json()["data"]] \
        == [("bm2", 100), ("bm2", 700)]
    assert inv["total_micros"] == _db_cost(d, t["id"], start, end)[1] == 800


def test_bad_requests(d):
    t, _ = tenant_with_key(d)
    for path in (f"/admin/v1/invoices/{t['id']}/2026-13",
                 f"/admin/v1/invoices/{t['id']}/26-11",
                 "/admin/v1/invoices?period=nope"):
        r = d.aget(path)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["param"] == "period"
    r = d.aget("/admin/v1/invoices/ten_nope/2026-01")
    assert r.status_code == 404
    period, _, _ = _month()
    r = d.apost(f"/admin/v1/billing/periods/{period}/close")
    assert r.status_code == 409 and \
        r.json()["error"]["code"] == "period_not_over", r.text


def _insert_usage(d, rows):
    """Stores usage rows as the metering writer does (the gateway cannot be
    made to serve a request in a past month)."""
    con = __import__("sqlite3").connect(str(d.db_path), timeout=30)
    try:
        with con:
            con.executemany(
                "INSERT INTO usage_events (request_id, ts_us, tenant_id,"
                " key_id, model, version, endpoint, status, queue_us,"
                " compute_us, prompt_tokens, completion_tokens,"
                " cost_micros) VALUES (?, ?, ?, NULL, ?, '1', 'chat', ?,"
                " 0, ?, ?, ?, ?)", rows)
    finally:
        con.close()


def _price_of(p, tin, tout, cus):
    def rnd(a, b, dd):
        return (a * b + dd // 2) // dd
    return (p["per_request_micros"] + rnd(p["per_1k_input_micros"], tin, 1000)
            + rnd(p["per_1k_output_micros"], tout, 1000)
            + rnd(p["per_compute_second_micros"], cus, 1_000_000))


_seq = [0]


def _rows(tenant, model, ts_us, n, price, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        _seq[0] += 1
        tin, tout = int(rng.integers(1, 5000)), int(rng.integers(0, 900))
        cus = int(rng.integers(0, 3_000_000))
        out.append((f"req_late_{seed}_{_seq[0]}", ts_us, tenant, model, 200,
                    cus, tin, tout, _price_of(price, tin, tout, cus)))
    # An error costs nothing and is not billed.
    out.append((f"req_late_{seed}_{_seq[0]}_err", ts_us, tenant, model, 500,
                0, 0, 0, 0))
    return out


def test_close_freezes_and_late_usage_is_an_adjustment(d):
    t, _ = tenant_with_key(d)
    price = dict(per_request_micros=1000, per_1k_input_micros=2345,
                 per_1k_output_micros=6789, per_compute_second_micros=500001)
    model = "late-model"
    with d.db() as con:
        taken = con.execute("SELECT count(*) FROM billing_periods"
                            ).fetchone()[0]
    assert taken == 0
    # A price from long ago, stored as the admin API would have then.
    con = __import__("sqlite3").connect(str(d.db_path), timeout=30)
    with con:
        con.execute("INSERT INTO prices VALUES (?, 0, ?, ?, ?, ?)",
                    (model, price["per_1k_input_micros"],
                     price["per_1k_output_micros"],
                     price["per_request_micros"],
                     price["per_compute_second_micros"]))
    con.close()
    p2, s2, _ = _month(-2)
    p1, s1, _ = _month(-1)
    p0, _, _ = _month(0)
    a = _rows(t["id"], model, s2 + 5, 7, price, 1)
    _insert_usage(d, a)
    cost_a = sum(r[-1] for r in a)

    r = d.apost(f"/admin/v1/billing/periods/{p2}/close")
    assert r.status_code == 201, r.text
    assert r.json()["period"] == p2 and r.json()["status"] == "closed"
    assert d.apost(f"/admin/v1/billing/periods/{p2}/close").status_code \
        == 409
    inv2 = _invoice(d, t["id"], p2)
    assert inv2["status"] == "closed" and inv2["total_micros"] == cost_a
    assert not [l for l in inv2["lines"] if l["unit"] == "budget_cap"]
    assert [l["quantity"] for l in inv2["lines"]
            if l["unit"] == "requests"] == [7]

    # Late for p2 (committed after it closed): billed on p1, still open.
    b = _rows(t["id"], model, s2 + 10, 4, price, 2)
    _insert_usage(d, b)
    cost_b = sum(r[-1] for r in b)
    assert _invoice(d, t["id"], p2) == inv2        # frozen
    inv1 = _invoice(d, t["id"], p1)
    assert inv1["status"] == "open"
    assert inv1["adjustments_micros"] == cost_b == inv1["total_micros"]
    assert {l["for_period"] for l in inv1["lines"]} == {p2}
    assert {l["kind"] for l in inv1["lines"]} == {"adjustment"}

    # Closing p1 freezes that adjustment; later rows of p2 go to p0.
    c1 = _rows(t["id"], model, s1 + 7, 3, price, 3)
    _insert_usage(d, c1)
    cost_c1 = sum(r[-1] for r in c1)
    r = d.apost(f"/admin/v1/billing/periods/{p1}/close")
    assert r.status_code == 201, r.text
    inv1c = _invoice(d, t["id"], p1)
    assert inv1c["status"] == "closed"
    assert inv1c["adjustments_micros"] == cost_b
    assert inv1c["usage_micros"] == cost_c1
    late = _rows(t["id"], model, s2 + 20, 2, price, 4) + \
        _rows(t["id"], model, s1 + 20, 5, price, 5)
    _insert_usage(d, late)
    assert _invoice(d, t["id"], p1) == inv1c
    inv0 = _invoice(d, t["id"], p0)
    assert inv0["adjustments_micros"] == sum(r[-1] for r in late)
    by = {}
    for l in inv0["lines"]:
        if l["kind"] == "adjustment":
            by[l["for_period"]] = by.get(l["for_period"], 0) + \
                l["amount_micros"]
    assert by == {p2: sum(r[-1] for r in late[:3]),
                  p1: sum(r[-1] for r in late[3:])}

    # Over all months, every micro-unit of cost is billed exactly once.
    with d.db() as con:
        total = con.execute("SELECT sum(cost_micros) FROM usage_events"
                            " WHERE tenant_id = ?", (t["id"],)).fetchone()[0]
    assert inv2["total_micros"] + inv1c["total_micros"] + \
        inv0["total_micros"] == total
    r = d.aget("/admin/v1/billing/periods")
    assert [p["period"] for p in r.json()["data"]] == [p2, p1]
    r = d.aget(f"/admin/v1/audit?action=billing&target={p1}")
    assert [e["action"] for e in r.json()["data"]] == \
        ["billing.period.close"]


def test_totals_survive_kill9_under_load(tmp_path, models):
    with running_maasd(tmp_path) as d:
        deploy_file(d, "km", models.get(LAYERS, seed=7))
        add_price(d, "km", **PRICE)
        t, k = tenant_with_key(d)
        stop = threading.Event()
        seen = {"ok": 0, "fail": 0}
        lock = threading.Lock()
        body = _body(3)

        def client():
            s = d.tenant(k["key"])
            while not stop.is_set():
                try:
                    r = _post(d, s, body, "km")
                    with lock:
                        seen["ok" if r.status_code == 200 else "fail"] += 1
                except requests.RequestException:
                    with lock:
                        seen["fail"] += 1
        threads = [threading.Thread(target=client) for _ in range(4)]
        for th in threads:
            th.start()
        wait_for(lambda: seen["ok"] >= 40, 60 * SCALE, what="load")
        d.kill9()
        stop.set()
        for th in threads:
            th.join(timeout=30 * SCALE)
        ok_before = seen["ok"]
        d.start()
        d.wait_ready()
        period, start, end = _month()
        n, cost, served = _db_cost(d, t["id"], start, end)
        # Every success a client saw is metered (maybe a few more that
        # committed but whose reply the kill cut off).
        assert served >= ok_before
        inv = _invoice(d, t["id"], period)
        assert inv["total_micros"] == cost
        assert [l["quantity"] for l in inv["lines"]
                if l["unit"] == "requests"] == [served]
        _, csv_total = _csv_invoice(d, t["id"], period, "suffix")
        assert csv_total == cost
