"""Admin lists page (limit + after) and filter; tenants have a plan, a
weight and a status changed by PATCH; every change is in the audit log,
which filters by action, target, actor and time."""
import time

import pytest

from conftest import create_key, running_maasd, tenant_with_key, unique


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with running_maasd(tmp_path_factory.mktemp("lists")) as d:
        yield d


def _all(d, path, limit=2):
    rows, after = [], None
    sep = "&" if "?" in path else "?"
    for _ in range(500):
        q = f"{path}{sep}limit={limit}" + (f"&after={after}" if after
                                           else "")
        r = d.aget(q)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["data"]) <= limit
        rows += page["data"]
        if not page["has_more"]:
            return rows
        after = page["data"][-1]["id"]
    raise AssertionError("too many pages")


def test_tenant_patch_plan_status_weight_and_filters(d):
    t1, k1 = tenant_with_key(d)
    t2, _ = tenant_with_key(d)
    plan = unique("gold").replace("-", "_")
    r = d.admin.patch(d.admin_url(f"/admin/v1/tenants/{t1['id']}"),
                      json={"plan": plan, "weight": 7})
    assert r.status_code == 200, r.text
    assert (r.json()["plan"], r.json()["weight"], r.json()["status"]) == \
        (plan, 7, "active")
    r = d.admin.patch(d.admin_url(f"/admin/v1/tenants/{t2['id']}"),
                      json={"status": "suspended", "plan": plan})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    # Suspension works at once for the tenant's keys.
    assert d.tenant(k1["key"]).get(d.url("/v2/models/x/ready"),
                                   timeout=30).status_code != 401
    on_plan = _all(d, f"/admin/v1/tenants?plan={plan}")
    assert sorted(x["id"] for x in on_plan) == sorted([t1["id"], t2["id"]])
    sus = _all(d, f"/admin/v1/tenants?plan={plan}&status=suspended")
    assert [x["id"] for x in sus] == [t2["id"]]
    everyone = _all(d, "/admin/v1/tenants", limit=1)
    assert len({x["id"] for x in everyone}) == len(everyone) >= 2
    for bad in ({"status": "gone"}, {"weight": 0}, {"plan": ""},
                {"nope": 1}, {}):
        r = d.admin.patch(d.admin_url(f"/admin/v1/tenants/{t1['id']}"),
                          json=bad)
        assert r.status_code == 400, (bad, r.text)
    r = d.admin.patch(d.admin_url("/admin/v1/tenants/ten_nope"),
                      json={"plan": "x"})
    assert r.status_code == 404
    audit = _all(d, f"/admin/v1/audit?action=tenant.update&target="
                    f"{t2['id']}")
    assert [(a["action"], a["detail"]["status"]) for a in audit] == \
        [("tenant.update", "suspended")]


def test_key_filters(d):
    t, k = tenant_with_key(d)
    k2 = create_key(d, t["id"], name="two")
    assert d.adelete(f"/admin/v1/keys/{k2['id']}").status_code == 200
    act = _all(d, f"/admin/v1/tenants/{t['id']}/keys?status=active")
    rev = _all(d, f"/admin/v1/tenants/{t['id']}/keys?status=revoked")
    assert [x["id"] for x in act] == [k["id"]]
    assert [x["id"] for x in rev] == [k2["id"]]


def test_audit_filters(d):
    t0 = int(time.time())
    t, k = tenant_with_key(d)
    by_prefix = _all(d, f"/admin/v1/audit?action=key&from={t0}")
    assert k["id"] in {a["target"] for a in by_prefix}
    assert {a["action"].split(".")[0] for a in by_prefix} == {"key"}
    mine = _all(d, f"/admin/v1/audit?target={t['id']}&actor=admin")
    assert [a["action"] for a in mine] == ["tenant.create"]
    assert _all(d, "/admin/v1/audit?to=2001-01-01") == []
    assert _all(d, "/admin/v1/audit?actor=nobody") == []
    for bad in ("action=*", "from=soon", "after=x"):
        assert d.aget("/admin/v1/audit?" + bad).status_code == 400, bad


def _insert(d, sql, rows):
    """Rows the API cannot make now (closed months, prices in the past),
    written to the SQLite file as maasd would."""
    con = __import__("sqlite3").connect(str(d.db_path), timeout=30)
    try:
        with con:
            con.executemany(sql, rows)
    finally:
        con.close()


def test_prices_page_by_model_then_start(d):
    models = [unique("pm").replace("-", "_") for _ in range(3)]
    # Two versions of each; one model name with a ':' in it, which the
    # cursor "<model>:<starts_at>" must survive.
    models[1] += ":x"
    _insert(d, "INSERT INTO prices (model, starts_at, per_request_micros)"
               " VALUES (?, ?, ?)",
            [(m, s, i) for i, m in enumerate(models) for s in (100, 200)])
    everything = _all(d, "/admin/v1/prices", limit=1)
    keys = [(p["model"], p["starts_at"]) for p in everything]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert {(m, s) for m in models for s in (100, 200)} <= set(keys)
    for p in everything:
        assert p["id"] == f"{p['model']}:{p['starts_at']}"
    for limit in (2, 3, 1000):
        assert _all(d, "/admin/v1/prices", limit=limit) == everything
    one = _all(d, f"/admin/v1/prices?model={models[1]}", limit=1)
    assert [(p["model"], p["starts_at"]) for p in one] == \
        [(models[1], 100), (models[1], 200)]
    # A page starts right after the cursor.
    r = d.aget(f"/admin/v1/prices?limit=1&after={models[1]}:100")
    assert [(p["model"], p["starts_at"]) for p in r.json()["data"]] == \
        [(models[1], 200)]
    for bad in ("nocolon", ":100", f"{models[0]}:", f"{models[0]}:1x",
                "x" * 70 + ":1"):
        r = d.aget(f"/admin/v1/prices?after={bad}")
        assert r.status_code == 400 and \
            r.json()["error"]["param"] == "after", (bad, r.text)
    # A price made by POST carries its id (the cursor) too.
    p = d.apost("/admin/v1/prices", {"model": models[2],
                                     "per_request_micros": 5}).json()
    assert p["id"] == f"{models[2]}:{p['starts_at']}"


def test_periods_page(d):
    months = ["2001-%02d" % m for m in range(1, 6)]
    for m in months:
        r = d.apost(f"/admin/v1/billing/periods/{m}/close")
        assert r.status_code == 201, r.text
    rows = _all(d, "/admin/v1/billing/periods", limit=2)
    assert [p["period"] for p in rows][:5] == months
    assert all(p["id"] == p["period"] for p in rows)
    r = d.aget("/admin/v1/billing/periods?after=2001-03&limit=1")
    assert [p["period"] for p in r.json()["data"]] == ["2001-04"]
    assert r.json()["has_more"] is True
    for bad in ("2001-13", "x", "2001-3"):
        assert d.aget(f"/admin/v1/billing/periods?after={bad}") \
            .status_code == 400, bad
    assert d.aget("/admin/v1/billing/periods?limit=0").status_code == 400


def test_invoice_list_tenant_filter_pages_like_the_rest(d):
    t1, _ = tenant_with_key(d)
    t2, _ = tenant_with_key(d)
    period = time.strftime("%Y-%m", time.gmtime())
    every = _all_invoices(d, f"/admin/v1/invoices?period={period}", 1)
    ids = [i["tenant_id"] for i in every]
    assert ids == sorted(ids) and {t1["id"], t2["id"]} <= set(ids)
    for t in (t1, t2):
        base = f"/admin/v1/invoices?period={period}&tenant={t['id']}"
        assert [i["tenant_id"] for i in _all_invoices(d, base, 1)] == \
            [t["id"]]
        # The same cursor rule: ids above after.
        below = ids[ids.index(t["id"]) - 1] if ids.index(t["id"]) else ""
        r = d.aget(f"{base}&after={below}" if below else base)
        assert [i["tenant_id"] for i in r.json()["data"]] == [t["id"]]
        r = d.aget(f"{base}&after={t['id']}")
        assert r.json() == {"object": "list", "data": [], "has_more": False}
    r = d.aget(f"/admin/v1/invoices?period={period}&tenant=ten_nope")
    assert r.status_code == 200 and r.json()["data"] == []


def _all_invoices(d, path, limit):
    rows, after = [], None
    for _ in range(500):
        q = f"{path}&limit={limit}" + (f"&after={after}" if after else "")
        page = d.aget(q).json()
        assert len(page["data"]) <= limit
        rows += page["data"]
        if not page["has_more"]:
            return rows
        after = page["data"][-1]["tenant_id"]
    raise AssertionError("too many pages")


def test_quota_reads_show_what_was_set(d):
    t, k = tenant_with_key(d)
    r = d.aget(f"/admin/v1/tenants/{t['id']}/quota")
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["set"] is False and q["tenant_id"] == t["id"]
    assert q["requests_per_minute"] is None and q["allowed_models"] is None
    body = {"requests_per_minute": 60, "tokens_per_minute": None,
            "max_concurrent_requests": 4, "monthly_token_budget": 10 ** 9,
            "monthly_credit_budget_micros": 0, "allowed_models": ["a", "b"]}
    assert d.admin.put(d.admin_url(f"/admin/v1/tenants/{t['id']}/quota"),
                       json=body).status_code == 200
    q = d.aget(f"/admin/v1/tenants/{t['id']}/quota").json()
    assert q["set"] is True and q["key_id"] is None
    assert {k_: q[k_] for k_ in body} == body
    # A key's own quota is separate from its tenant's.
    kq = d.aget(f"/admin/v1/keys/{k['id']}/quota").json()
    assert kq["set"] is False and kq["key_id"] == k["id"]
    assert d.admin.put(d.admin_url(f"/admin/v1/keys/{k['id']}/quota"),
                       json={"requests_per_minute": 5}).status_code == 200
    kq = d.aget(f"/admin/v1/keys/{k['id']}/quota").json()
    assert (kq["set"], kq["requests_per_minute"], kq["tenant_id"]) == \
        (True, 5, t["id"])
    assert d.aget(f"/admin/v1/tenants/{t['id']}/quota").json() == q
    assert d.aget("/admin/v1/tenants/ten_nope/quota").status_code == 404
    assert d.aget("/admin/v1/keys/key_nope/quota").status_code == 404


def test_usage_newest_first(d):
    t, _ = tenant_with_key(d)
    base = 978307200_000000     # 2001-01-01, out of everyone's way
    _insert(d, "INSERT INTO usage_events (request_id, ts_us, tenant_id,"
               " model, endpoint, status) VALUES (?, ?, ?, 'm', 'infer', 200)",
            [(unique("rq"), base + i, t["id"]) for i in range(5)])
    asc = _all(d, f"/admin/v1/usage?tenant={t['id']}", limit=2)
    desc = _all(d, f"/admin/v1/usage?tenant={t['id']}&order=desc", limit=2)
    assert len(asc) == 5 and desc == asc[::-1]
    r = d.aget(f"/admin/v1/usage?tenant={t['id']}&order=desc&limit=1")
    assert r.json()["data"][0]["id"] == asc[-1]["id"]
    assert d.aget("/admin/v1/usage?order=up").status_code == 400
