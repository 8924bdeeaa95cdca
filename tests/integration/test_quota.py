"""Quotas and budgets on the tenant API (issue 3): the admin quota API, the
429 shapes and x-ratelimit-* headers, exact admission under 64 parallel
requests, per-key limits on top of tenant limits, concurrency slots, credit
budgets against prices, and counters that survive a restart (SIGTERM or
kill -9) of maasd on the same data directory.

Minute windows are UTC-aligned: every test that needs its requests in one
window runs inside in_one_minute(), which starts it early enough in a
window and retries it with fresh tenants if a boundary was crossed anyway.
"""
import calendar
import json
import re
import socket
import ssl
import threading
import time
from collections import Counter

import numpy as np
import pytest

from conftest import (HTTP_TIMEOUT, SCALE, HS256Issuer, add_price, aput,
                      assert_error, create_key, deploy_file,
                      request_ids_in_db, running_maasd, set_quota,
                      tenant_with_key, tensor, wait_deployment_ready,
                      wait_for)

SMALL = (784, 16, 10)
SLOW = (784, 1024, 1024, 1024, 10)      # ~0.1 s for a batch of 64
X = np.linspace(0, 1, 784, dtype=np.float32).reshape(1, 784)
BODY = json.dumps({"inputs": [tensor("input", X)]}).encode()
SLOW_BODY = json.dumps({"inputs": [tensor(
    "input", np.random.default_rng(1).random((64, 784)).astype(
        np.float32))]}).encode()
# Requests that hold their concurrency slot long after maasd admitted
# them: 1024 rows of the slow model, ~3 GFLOP of products, sent with the
# binary tensor extension so that admitting one costs maasd next to
# nothing (parsing as many floats of JSON would take longer than
# computing them, and the slots would come back one by one).
SLOW_ROWS = 1024
_SLOW_X = np.random.default_rng(1).random((SLOW_ROWS, 784)).astype("<f4")
_SLOW_HDR = json.dumps({"inputs": [{
    "name": "input", "shape": [SLOW_ROWS, 784], "datatype": "FP32",
    "parameters": {"binary_data_size": _SLOW_X.nbytes}}]}).encode()
SLOW_BIN = _SLOW_HDR + _SLOW_X.tobytes()
SLOW_BIN_HEADERS = {"Inference-Header-Content-Length": str(len(_SLOW_HDR)),
                    "Content-Type": "application/octet-stream"}
BAD_BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 3],
                                   "datatype": "FP32",
                                   "data": [1, 2, 3]}]}).encode()
RESET_RE = re.compile(r"^(\d+)s$")


@pytest.fixture(scope="module")
def d(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("quota")) as d:
        deploy_file(d, "m", models.get(SMALL, seed=3))
        deploy_file(d, "other", models.get(SMALL, seed=4))
        deploy_file(d, "slow", models.get(SLOW, seed=5))
        yield d


# --- helpers -----------------------------------------------------------------

def post(d, sess, model="m", body=BODY, headers=None):
    return sess.post(d.url(f"/v2/models/{model}/infer"), data=body,
                     headers=headers or {"Content-Type": "application/json"},
                     timeout=HTTP_TIMEOUT)


def burst(d, key, n, model="m", body=BODY, headers=None):
    """n requests released together from n threads, each on its own
    (already connected) HTTPS connection.  Returns the responses."""
    sessions = [d.tenant(key) for _ in range(n)]
    for s in sessions:      # connect and handshake before the barrier
        assert s.get(d.url("/v2"), timeout=HTTP_TIMEOUT).status_code == 200
    gate = threading.Barrier(n)
    out = [None] * n

    def one(i):
        try:
            gate.wait(timeout=30 * SCALE)
            out[i] = post(d, sessions[i], model, body, headers)
        except Exception as e:          # noqa: BLE001 - reported below
            out[i] = e
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120 * SCALE)
    for s in sessions:
        s.close()
    errs = [o for o in out if not hasattr(o, "status_code")]
    assert not errs, f"{len(errs)} requests failed: {errs[:3]}"
    return out


def in_one_minute(fn, need=3.0, tries=3):
    """Runs fn() so that it starts and ends in the same UTC minute window:
    waits for the next window if fewer than need*SCALE seconds are left,
    and runs fn again (it must set up fresh tenants) if a boundary was
    crossed anyway (also when fn failed after crossing one)."""
    need *= SCALE
    for _ in range(tries):
        left = 60 - time.time() % 60
        if left < need:
            time.sleep(left + 0.05)
        m0 = int(time.time()) // 60
        try:
            out = fn()
        except AssertionError:
            if int(time.time()) // 60 == m0:
                raise
            continue        # the window rolled under the test: again
        if int(time.time()) // 60 == m0:
            return out
    pytest.fail(f"crossed a minute boundary {tries} times")


def remaining(r):
    v = r.headers.get("x-ratelimit-remaining-requests")
    assert v is not None, f"no x-ratelimit-remaining-requests on " \
        f"{r.status_code}: {dict(r.headers)}"
    return int(v)


def assert_rate_limited(r, code, type_="rate_limit_exceeded"):
    e = assert_error(r, 429)
    assert e["type"] == type_, e
    assert e["code"] == code, e
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.isdigit() and int(ra) >= 1, \
        f"bad Retry-After {ra!r}: {dict(r.headers)}"
    return int(ra)


def month_end(now):
    t = time.gmtime(now)
    y, m = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year,
                                                       t.tm_mon + 1)
    return calendar.timegm((y, m, 1, 0, 0, 0))


def usage_rows(d, tenant_id):
    con = d.db()
    try:
        return [dict(r) for r in con.execute(
            "SELECT * FROM usage_events WHERE tenant_id = ? ORDER BY id",
            (tenant_id,))]
    finally:
        con.close()


# --- the admin API -----------------------------------------------------------

LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute",
                "max_concurrent_requests", "monthly_token_budget",
                "monthly_credit_budget_micros")


def test_quota_put_stores_the_row(d):
    t, k = tenant_with_key(d)
    row = set_quota(d, t["id"], requests_per_minute=7,
                    monthly_credit_budget_micros=0, allowed_models=["m"])
    assert row["tenant_id"] == t["id"] and row["key_id"] is None, row
    assert row["requests_per_minute"] == 7
    assert row["monthly_credit_budget_micros"] == 0
    assert row["allowed_models"] == ["m"]
    for f in ("tokens_per_minute", "max_concurrent_requests",
              "monthly_token_budget"):
        assert row[f] is None, (f, row)     # absent = unlimited
    # a PUT replaces the whole row: explicit nulls are unlimited too
    row = set_quota(d, t["id"], **{f: None for f in LIMIT_FIELDS},
                    allowed_models=None)
    assert all(row[f] is None for f in LIMIT_FIELDS), row
    assert row["allowed_models"] is None
    # the key quota is stored against the key and its tenant
    row = set_quota(d, key_id=k["id"], max_concurrent_requests=3)
    assert row["key_id"] == k["id"] and row["tenant_id"] == t["id"], row
    assert row["max_concurrent_requests"] == 3


@pytest.mark.parametrize("body", [
    {"requests_per_minute": -1},
    {"tokens_per_minute": -5},
    {"max_concurrent_requests": 1.5},
    {"monthly_token_budget": "10"},
    {"monthly_credit_budget_micros": True},
    {"requests_per_minute": 5, "rpm": 5},          # unknown field
    {"tenant_id": "ten_x"},                        # not a quota field
    {"allowed_models": "m"},
    {"allowed_models": [1]},
    {"allowed_models": [""]},
], ids=lambda b: json.dumps(b))
def test_quota_put_rejects_bad_bodies(d, body):
    t, k = tenant_with_key(d)
    for path in (f"/admin/v1/tenants/{t['id']}/quota",
                 f"/admin/v1/keys/{k['id']}/quota"):
        r = aput(d, path, body)
        assert_error(r, 400)
    # nothing was stored: the tenant still has no limit headers
    r = post(d, d.tenant(k["key"]))
    assert r.status_code == 200, r.text
    assert not [h for h in r.headers if h.lower().startswith("x-ratelimit")]


def test_quota_put_unknown_tenant_or_key(d):
    for path in ("/admin/v1/tenants/ten_000000000000000000000000/quota",
                 "/admin/v1/keys/key_000000000000000000000000/quota"):
        r = aput(d, path, {"requests_per_minute": 1})
        assert_error(r, 404)


# --- requests per minute -----------------------------------------------------

def test_rpm_headers_and_429_shape(d):
    def run():
        t, k = tenant_with_key(d)
        set_quota(d, t["id"], requests_per_minute=3)
        s = d.tenant(k["key"])
        seen = []
        for want in (2, 1, 0):
            r = post(d, s)
            assert r.status_code == 200, r.text
            assert r.headers["x-ratelimit-limit-requests"] == "3"
            assert remaining(r) == want
            m = RESET_RE.match(r.headers["x-ratelimit-reset-requests"])
            assert m and 1 <= int(m.group(1)) <= 60, dict(r.headers)
            assert "x-ratelimit-limit-tokens" not in r.headers
            seen.append(r)
        r = post(d, s)
        now = time.time()
        ra = assert_rate_limited(r, "requests_per_minute")
        assert abs(ra - (60 - int(now) % 60)) <= 2, (ra, now % 60)
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert remaining(r) == 0
        reset = int(RESET_RE.match(
            r.headers["x-ratelimit-reset-requests"]).group(1))
        assert abs(reset - ra) <= 1, (reset, ra)
    in_one_minute(run)


def test_tokens_headers_and_clearing_limits(d):
    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    set_quota(d, t["id"], tokens_per_minute=1000)
    r = post(d, s)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-ratelimit-limit-tokens") == "1000", \
        dict(r.headers)
    assert int(r.headers["x-ratelimit-remaining-tokens"]) <= 1000
    assert RESET_RE.match(r.headers["x-ratelimit-reset-tokens"])
    assert "x-ratelimit-limit-requests" not in r.headers
    # an admitted request that fails carries them too
    r = post(d, s, body=BAD_BODY)
    assert r.status_code == 400, r.text
    assert r.headers.get("x-ratelimit-limit-tokens") == "1000", \
        dict(r.headers)
    # clearing every limit removes the headers
    set_quota(d, t["id"])
    r = post(d, s)
    assert r.status_code == 200
    assert not [h for h in r.headers if h.lower().startswith("x-ratelimit")]


def test_key_limit_is_tighter_and_both_apply(d):
    def run():
        t, k1 = tenant_with_key(d)
        k2 = create_key(d, t["id"], name="second")
        set_quota(d, t["id"], requests_per_minute=10)
        set_quota(d, key_id=k1["id"], requests_per_minute=3)
        s1, s2 = d.tenant(k1["key"]), d.tenant(k2["key"])
        for want in (2, 1, 0):
            r = post(d, s1)
            assert r.status_code == 200, r.text
            # the key's limit is the tighter one
            assert r.headers["x-ratelimit-limit-requests"] == "3"
            assert remaining(r) == want
        assert_rate_limited(post(d, s1), "requests_per_minute")
        # the other key only has the tenant limit: 10 - 3 left
        ok = 0
        while True:
            r = post(d, s2)
            if r.status_code != 200:
                break
            ok += 1
            assert r.headers["x-ratelimit-limit-requests"] == "10"
            assert remaining(r) == 10 - 3 - ok
            assert ok <= 10, "the tenant limit is not enforced"
        assert_rate_limited(r, "requests_per_minute")
        assert ok == 7, f"second key got {ok} requests, want 7"
    in_one_minute(run)


def test_rpm_exact_under_64_parallel_requests(d):
    def run():
        t, k = tenant_with_key(d)
        set_quota(d, t["id"], requests_per_minute=60)
        s = d.tenant(k["key"])
        for _ in range(10):
            assert post(d, s).status_code == 200
        out = burst(d, k["key"], 64)
        return t, out
    t, out = in_one_minute(run, need=6)
    st = Counter(r.status_code for r in out)
    assert st == Counter({200: 50, 429: 14}), st
    # each admitted request saw its own place in the window
    rem = sorted(remaining(r) for r in out if r.status_code == 200)
    assert rem == list(range(50)), rem
    for r in out:
        if r.status_code == 429:
            assert_rate_limited(r, "requests_per_minute")
            assert remaining(r) == 0
    rows = request_ids_in_db(d, [r.headers["x-request-id"] for r in out])
    assert len(rows) == 64
    assert Counter(r["status"] for r in rows.values()) == st


def test_key_rpm_exact_under_64_parallel_requests(d):
    def run():
        t, k = tenant_with_key(d)
        set_quota(d, t["id"], requests_per_minute=1000)
        set_quota(d, key_id=k["id"], requests_per_minute=20)
        return burst(d, k["key"], 64)
    out = in_one_minute(run, need=6)
    st = Counter(r.status_code for r in out)
    assert st == Counter({200: 20, 429: 44}), st
    for r in out:
        assert r.headers["x-ratelimit-limit-requests"] == "20"


def test_rate_limited_requests_are_metered_at_no_cost(d):
    add_price(d, "other", per_request_micros=500)

    def run():
        t, k = tenant_with_key(d)
        set_quota(d, t["id"], requests_per_minute=2)
        s = d.tenant(k["key"])
        return t, k, [post(d, s, "other") for _ in range(4)]
    t, k, out = in_one_minute(run)
    assert [r.status_code for r in out] == [200, 200, 429, 429]
    rows = request_ids_in_db(d, [r.headers["x-request-id"] for r in out])
    assert len(rows) == 4, "a 429 was not metered"
    for r in out:
        row = rows[r.headers["x-request-id"]]
        assert row["status"] == r.status_code
        assert row["tenant_id"] == t["id"] and row["key_id"] == k["id"]
        assert row["model"] == "other"
        want = 500 if r.status_code == 200 else 0
        assert row["cost_micros"] == want, row


# --- allowed models ----------------------------------------------------------

def _shape(r):
    """What a caller can compare between two 404s."""
    j = r.json()
    e = dict(j["error"])
    e["message"] = e["message"].replace("'other'", "'X'").replace(
        "'nope-model'", "'X'")
    heads = sorted(h.lower() for h in r.headers
                   if h.lower() not in ("x-request-id", "date",
                                        "content-length"))
    return r.status_code, e, heads


def test_allowed_models_hide_models(d):
    t, k = tenant_with_key(d)
    set_quota(d, t["id"], allowed_models=["m"], requests_per_minute=100)
    s = d.tenant(k["key"])
    assert post(d, s, "m").status_code == 200
    denied = post(d, s, "other")
    missing = post(d, s, "nope-model")
    e = assert_error(denied, 404)
    assert e["code"] == "model_not_found", e
    assert _shape(denied) == _shape(missing)
    for path in ("/v2/models/{}", "/v2/models/{}/ready",
                 "/v2/models/{}/versions/1",
                 "/v2/models/{}/versions/1/ready"):
        a = s.get(d.url(path.format("other")), timeout=HTTP_TIMEOUT)
        b = s.get(d.url(path.format("nope-model")), timeout=HTTP_TIMEOUT)
        assert a.status_code == 404, (path, a.status_code, a.text)
        assert _shape(a) == _shape(b), path
    # a key-level allowlist narrows further
    k2 = create_key(d, t["id"], name="narrow")
    set_quota(d, key_id=k2["id"], allowed_models=["other"])
    s2 = d.tenant(k2["key"])
    assert_error(post(d, s2, "m"), 404)       # not in the key's list
    assert_error(post(d, s2, "other"), 404)   # not in the tenant's list


# --- concurrency -------------------------------------------------------------

def test_max_concurrent_requests(d):
    t, k = tenant_with_key(d)
    set_quota(d, t["id"], max_concurrent_requests=2)
    out = burst(d, k["key"], 8, model="slow", body=SLOW_BIN,
                headers=SLOW_BIN_HEADERS)
    st = Counter(r.status_code for r in out)
    assert set(st) <= {200, 429}, [(r.status_code, r.text[:200])
                                  for r in out]
    assert st[429] >= 1, f"8 parallel slow requests, limit 2: {st}"
    assert st[200] >= 2, st
    for r in out:
        if r.status_code == 429:
            assert_rate_limited(r, "max_concurrent_requests")
    # every slot came back: two at once are admitted again
    out = burst(d, k["key"], 2, model="slow", body=SLOW_BIN,
                headers=SLOW_BIN_HEADERS)
    assert [r.status_code for r in out] == [200, 200], \
        [r.text[:200] for r in out]


def _abandon(d, key, body):
    """Sends an infer request on a raw TLS connection and closes it before
    the reply."""
    ctx = ssl.create_default_context(cafile=d.cert)
    raw = socket.create_connection(("127.0.0.1", d.port),
                                   timeout=10 * SCALE)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall((f"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    time.sleep(0.03 * SCALE)
    s.close()


def test_concurrency_slot_released_when_client_goes_away(d):
    t, k = tenant_with_key(d)
    set_quota(d, t["id"], max_concurrent_requests=1)
    s = d.tenant(k["key"])
    for _ in range(3):
        _abandon(d, k["key"], SLOW_BODY)

        def admitted():
            r = post(d, s)
            assert r.status_code in (200, 429), r.text
            return r.status_code == 200
        wait_for(admitted, 15 * SCALE, interval=0.1,
                 what="the concurrency slot of an abandoned request")
    assert d.running(), d.log_tail()


# --- prices and credit budgets -----------------------------------------------

def test_prices_and_cost(d, models):
    deploy_file(d, "priced", models.get(SMALL, seed=6))
    now = int(time.time())
    r = d.apost("/admin/v1/prices", {"model": "priced",
                                     "per_request_micros": 1,
                                     "starts_at": now - 5})
    assert_error(r, 400)
    r = d.apost("/admin/v1/prices", {"model": "priced",
                                     "per_request_micros": -1})
    assert_error(r, 400)
    p1 = add_price(d, "priced", per_request_micros=700,
                   per_compute_second_micros=3_000_000)
    assert p1["per_request_micros"] == 700
    assert p1["per_compute_second_micros"] == 3_000_000
    assert abs(p1["starts_at"] - time.time()) <= 2
    start2 = int(time.time()) + 2
    p2 = add_price(d, "priced", per_request_micros=50, starts_at=start2)
    assert p2["starts_at"] == start2
    listed = d.aget("/admin/v1/prices").json()["data"]
    assert {(p["model"], p["starts_at"]) for p in listed} >= \
        {("priced", p1["starts_at"]), ("priced", start2)}, listed

    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    before = [post(d, s, "priced") for _ in range(3)]
    before.append(post(d, s, "priced", BAD_BODY))
    assert [r.status_code for r in before] == [200, 200, 200, 400]
    time.sleep(max(0.0, start2 - time.time()) + 0.1)
    after = post(d, s, "priced")
    assert after.status_code == 200
    usage = {u["request_id"]: u for u in
             d.aget(f"/admin/v1/usage?tenant={t['id']}&limit=100")
             .json()["data"]}
    for r in before + [after]:
        u = usage[r.headers["x-request-id"]]
        assert "cost_micros" in u, u
        if r is after:
            want = 50
        elif r.status_code == 200:
            want = 700 + round(3_000_000 * u["compute_us"] / 1e6)
        else:
            want = 0
        assert u["cost_micros"] == want, (u, want)


def test_credit_budget_exact_and_kept_across_kill9(maasd_factory, models):
    d = maasd_factory()
    deploy_file(d, "m", models.get(SMALL, seed=3))
    t, k = tenant_with_key(d)
    add_price(d, "m", per_request_micros=1000)
    set_quota(d, t["id"], monthly_credit_budget_micros=10_500)
    out = burst(d, k["key"], 64)
    st = Counter(r.status_code for r in out)
    assert st == Counter({200: 10, 429: 54}), st
    for r in out:
        if r.status_code == 429:
            ra = assert_rate_limited(r, "monthly_credit_budget",
                                     "insufficient_quota")
            assert abs(ra - (month_end(time.time()) - time.time())) <= 5, ra
    rows = usage_rows(d, t["id"])
    assert len(rows) == 64
    spent = sum(r["cost_micros"] for r in rows if 200 <= r["status"] < 300)
    assert spent <= 10_500, f"budget overspent: {spent}"
    assert spent == 10_000
    assert all(r["cost_micros"] == 0 for r in rows if r["status"] == 429)

    d.kill9()
    d.start()
    wait_deployment_ready(d, "m")
    r = post(d, d.tenant(k["key"]))
    assert_rate_limited(r, "monthly_credit_budget", "insufficient_quota")
    # the seeded spend is exact: 2 000 more micros admit exactly 2
    set_quota(d, t["id"], monthly_credit_budget_micros=12_000)
    got = [post(d, d.tenant(k["key"])).status_code for _ in range(3)]
    assert got == [200, 200, 429], got


def test_credit_budget_not_overspent_with_compute_price(d, models):
    """Reservations (one compute-second) exceed the real cost: the budget
    is reserved, settled and re-admitted under parallel load without ever
    being overspent."""
    deploy_file(d, "metered", models.get(SMALL, seed=8))
    add_price(d, "metered", per_request_micros=1000,
              per_compute_second_micros=5000)
    t, k = tenant_with_key(d)
    budget = 20_000
    set_quota(d, t["id"], monthly_credit_budget_micros=budget)
    out = burst(d, k["key"], 64, model="metered")
    st = Counter(r.status_code for r in out)
    assert set(st) == {200, 429}, st
    assert st[200] >= 3, st      # 3 reservations of 6 000 fit at once
    s = d.tenant(k["key"])
    for _ in range(40):
        r = post(d, s, "metered")
        if r.status_code != 200:
            break
    assert_rate_limited(r, "monthly_credit_budget", "insufficient_quota")
    rows = usage_rows(d, t["id"])
    spent = sum(r["cost_micros"] for r in rows if 200 <= r["status"] < 300)
    assert spent <= budget, f"budget {budget} overspent: {spent}"
    # and nearly all of it was usable: less than one reservation is left
    assert budget - spent < 6000, spent


def test_small_credit_budget_is_usable(d, models):
    """A budget far larger than what one request costs must admit it.
    (Admission reserves one whole compute-second of credits per request, so
    with a compute price a budget below that price refuses everything with
    insufficient_quota although nothing was spent.)"""
    deploy_file(d, "cheap", models.get(SMALL, seed=7))
    t, k = tenant_with_key(d)
    # costs 10 + 1 per compute microsecond; it computes in ~25 us
    add_price(d, "cheap", per_request_micros=10,
              per_compute_second_micros=1_000_000)
    set_quota(d, t["id"], monthly_credit_budget_micros=200_000)
    r = post(d, d.tenant(k["key"]), "cheap")
    assert r.status_code == 200, \
        f"nothing spent of a 200 000 micro budget, got {r.status_code}: " \
        f"{r.text}"
    row = request_ids_in_db(d, [r.headers["x-request-id"]])
    cost = next(iter(row.values()))["cost_micros"]
    assert cost < 200_000, cost


# --- restarts keep the counters ----------------------------------------------

@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_restart_keeps_minute_counters(maasd_factory, models, how):
    d = maasd_factory()
    deploy_file(d, "m", models.get(SMALL, seed=3))

    def run():
        t, k1 = tenant_with_key(d)
        k2 = create_key(d, t["id"], name="second")
        set_quota(d, t["id"], requests_per_minute=10)
        set_quota(d, key_id=k1["id"], requests_per_minute=3)
        s1, s2 = d.tenant(k1["key"]), d.tenant(k2["key"])
        got = [post(d, s1).status_code for _ in range(5)]
        assert got == [200, 200, 200, 429, 429], got
        r = post(d, s2)
        assert r.status_code == 200
        assert remaining(r) == 6        # 4 admitted; the 429s do not count
        r = post(d, s2)
        assert remaining(r) == 5
        if how == "sigterm":
            assert d.stop() == 0
        else:
            d.kill9()
        d.start()
        wait_deployment_ready(d, "m")
        s1, s2 = d.tenant(k1["key"]), d.tenant(k2["key"])
        r = post(d, s2)
        assert r.status_code == 200, r.text
        assert remaining(r) == 4, \
            "tenant counter after restart: want 4 left (5 before, minus " \
            f"this one), got {remaining(r)}"
        r = post(d, s1)
        assert_rate_limited(r, "requests_per_minute")   # key: 3 of 3 used
        r = post(d, s2)
        assert remaining(r) == 3
    in_one_minute(run, need=8)


def test_restart_does_not_count_requests_that_were_not_admitted(
        maasd_factory, models):
    """404s for a missing model or a model outside allowed_models never
    reached admission, so they do not count toward requests_per_minute;
    after a restart they must not count either."""
    d = maasd_factory()
    deploy_file(d, "m", models.get(SMALL, seed=3))
    deploy_file(d, "other", models.get(SMALL, seed=4))

    def run():
        t, k = tenant_with_key(d)
        set_quota(d, t["id"], requests_per_minute=10, allowed_models=["m"])
        s = d.tenant(k["key"])
        assert post(d, s).status_code == 200
        for model in ("nope-model", "nope-model", "other", "other"):
            assert post(d, s, model).status_code == 404
        r = post(d, s)
        live = remaining(r)
        assert d.stop() == 0
        d.start()
        wait_deployment_ready(d, "m")
        r = post(d, d.tenant(k["key"]))
        assert r.status_code == 200, r.text
        assert remaining(r) == live - 1, \
            f"{live} left before the restart, {remaining(r)} after one " \
            "more request (the restart counted the 404 rows)"
    in_one_minute(run, need=6)


def test_jwt_calls_share_the_tenant_limits(d):
    iss = HS256Issuer(d)

    def run():
        t, k = tenant_with_key(d)
        set_quota(d, t["id"], requests_per_minute=4)
        sk, sj = d.tenant(k["key"]), d.tenant(iss.token(t["id"]))
        got = [post(d, s).status_code for s in (sk, sj, sk, sj)]
        assert got == [200] * 4, got
        assert_rate_limited(post(d, sj), "requests_per_minute")
        assert_rate_limited(post(d, sk), "requests_per_minute")
    in_one_minute(run)
