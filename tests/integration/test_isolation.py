"""Tenant isolation (issue 3): every tenant route and every admin route is
walked with every kind of credential (none, tenant A key, tenant B key, a
scoped key of tenant C, a JWT of tenant A, a JWT of tenant B, the admin
token).  Nobody reads, changes or spends what is not theirs: tenant
credentials never work on the admin port, the admin token never works on
the tenant API, a model hidden from B (allowed_models) or from C's key
(scopes) answers exactly like a model that does not exist, and every usage
row carries the tenant (and key) that made the call."""
import json
import time

import numpy as np
import pytest
import requests

from conftest import (HTTP_TIMEOUT, SCALE, HS256Issuer, assert_error,
                      create_tenant, deploy_file, request_ids_in_db,
                      running_maasd, set_quota, tenant_with_key, tensor)

SMALL = (784, 16, 10)
X = np.linspace(0, 1, 784, dtype=np.float32).reshape(1, 784)
BODY = json.dumps({"inputs": [tensor("input", X)]}).encode()
NOPE = "nope-model"


class World:
    def __init__(self, d):
        self.d = d
        self.iss = HS256Issuer(d)
        self.ta, self.ka = tenant_with_key(d)
        self.tb, self.kb = tenant_with_key(d)
        set_quota(d, self.tb["id"], allowed_models=["shared"])
        self.tc = create_tenant(d)
        r = d.apost(f"/admin/v1/tenants/{self.tc['id']}/keys",
                    {"name": "scoped", "scopes": ["shared"]})
        assert r.status_code == 201, r.text
        self.kc = r.json()
        jwt_key = f"jwt:{self.iss.row['id']}"
        # name -> (Authorization value or None, tenant id, key id)
        self.creds = {
            "none": (None, None, None),
            "A-key": (self.ka["key"], self.ta["id"], self.ka["id"]),
            "B-key": (self.kb["key"], self.tb["id"], self.kb["id"]),
            "C-scoped": (self.kc["key"], self.tc["id"], self.kc["id"]),
            "A-jwt": (self.iss.token(self.ta["id"]), self.ta["id"],
                      jwt_key),
            "B-jwt": (self.iss.token(self.tb["id"]), self.tb["id"],
                      jwt_key),
            "admin": (d.admin_token, None, None),
        }
        self.sessions = {}

    def session(self, name):
        if name not in self.sessions:
            s = requests.Session()
            s.trust_env = False
            s.verify = self.d.cert
            cred = self.creds[name][0]
            if cred is not None:
                s.headers["Authorization"] = f"Bearer {cred}"
            self.sessions[name] = s
        return self.sessions[name]

    def sees(self, name, model):
        """Whether credential name may use model."""
        if name in ("A-key", "A-jwt"):
            return model in ("shared", "private")
        if name in ("B-key", "B-jwt", "C-scoped"):
            return model == "shared"
        return False


@pytest.fixture(scope="module")
def w(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("isolation")) as d:
        deploy_file(d, "shared", models.get(SMALL, seed=3))
        deploy_file(d, "private", models.get(SMALL, seed=4))
        yield World(d)


def _shape(r, model):
    """What a caller can compare between two responses: status, error
    object with the model name blanked, header names."""
    try:
        body = r.json()
    except ValueError:
        body = r.text
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = dict(body["error"])
        body["message"] = body["message"].replace(f"'{model}'", "'X'")
    heads = sorted(h.lower() for h in r.headers
                   if h.lower() not in ("x-request-id", "date",
                                        "content-length"))
    return r.status_code, json.dumps(body, sort_keys=True), heads


MODEL_ROUTES = [
    ("GET", "/v2/models/{m}"),
    ("GET", "/v2/models/{m}/ready"),
    ("GET", "/v2/models/{m}/versions/1"),
    ("GET", "/v2/models/{m}/versions/1/ready"),
    ("POST", "/v2/models/{m}/infer"),
    ("POST", "/v2/models/{m}/versions/1/infer"),
    ("DELETE", "/v2/models/{m}"),
    ("PUT", "/v2/models/{m}/infer"),
]


def test_tenant_routes(w):
    d = w.d
    sent = []       # (credential name, request id, status)
    # public endpoints: the same answer whoever asks
    for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        seen = {}
        for name in w.creds:
            r = w.session(name).get(d.url(path), timeout=HTTP_TIMEOUT)
            assert r.status_code == 200, (path, name, r.status_code)
            seen[name] = r.json()
        assert len({json.dumps(v, sort_keys=True) for v in seen.values()}) \
            == 1, (path, seen)
    for name in w.creds:
        s = w.session(name)
        for method, route in MODEL_ROUTES:
            shapes = {}
            for model in ("shared", "private", NOPE):
                path = route.format(m=model)
                r = s.request(method, d.url(path), data=BODY if
                              method in ("POST", "PUT") else None,
                              headers={"Content-Type": "application/json"},
                              timeout=HTTP_TIMEOUT)
                where = f"{name} {method} {path}: {r.status_code} " \
                    f"{r.text[:200]}"
                rid = r.headers.get("x-request-id")
                assert rid, where
                sent.append((name, rid, r.status_code))
                if name in ("none", "admin"):
                    assert r.status_code == 401, where
                    continue
                # an unrestricted caller gets 405 for a wrong method
                # before the model is looked up
                unrestricted = name in ("A-key", "A-jwt")
                if method in ("DELETE", "PUT") and (
                        w.sees(name, model) or unrestricted):
                    assert r.status_code == 405, where
                elif w.sees(name, model):
                    assert r.status_code == 200, where
                else:
                    assert r.status_code == 404, where
                    e = assert_error(r, 404)
                    assert e["code"] == "model_not_found", where
                shapes[model] = _shape(r, model)
            if name in ("B-key", "B-jwt", "C-scoped"):
                assert shapes["private"] == shapes[NOPE], \
                    (name, method, route, shapes["private"], shapes[NOPE])
    # the admin API is not on the tenant port, for anyone
    for name in w.creds:
        for path in ("/admin/v1/tenants", f"/admin/v1/tenants/"
                     f"{w.ta['id']}/keys", "/admin/v1/usage"):
            r = w.session(name).get(d.url(path), timeout=HTTP_TIMEOUT)
            assert r.status_code in (401, 404), (name, path, r.status_code)
            assert "data" not in r.text, (name, path, r.text[:200])

    # metering: a row carries the caller's tenant and key, or there is none
    rows = request_ids_in_db(d, [rid for _, rid, _ in sent])
    for name, rid, st in sent:
        _, tenant, key = w.creds[name]
        row = rows.get(rid)
        if tenant is None:
            assert row is None, (name, row)
            continue
        if row is not None:
            assert row["tenant_id"] == tenant, (name, row)
            assert row["key_id"] == key, (name, row)
            assert row["status"] == st, (name, row)
    by_tenant = {}
    for r in rows.values():
        by_tenant.setdefault(r["tenant_id"], set()).add(r["model"])
    # A's rows are A's own calls; B and C never ran private
    assert set(by_tenant) <= {w.ta["id"], w.tb["id"], w.tc["id"]}
    for t in (w.tb["id"], w.tc["id"]):
        served = [r for r in rows.values() if r["tenant_id"] == t and
                  r["model"] == "private" and r["status"] == 200]
        assert not served, served


def _snapshot(w):
    d = w.d
    snap = {}
    for path in ("/admin/v1/tenants?limit=1000",
                 f"/admin/v1/tenants/{w.ta['id']}/keys",
                 f"/admin/v1/tenants/{w.tb['id']}/keys",
                 f"/admin/v1/tenants/{w.tc['id']}/keys",
                 "/admin/v1/issuers", "/admin/v1/models",
                 "/admin/v1/deployments", "/admin/v1/prices"):
        r = d.aget(path)
        assert r.status_code == 200, (path, r.text)
        rows = r.json()["data"]
        for row in rows:            # flushed in the background
            row.pop("last_used_at", None)
        snap[path] = rows
    con = d.db()
    try:
        snap["quotas"] = [tuple(r) for r in
                          con.execute("SELECT * FROM quotas ORDER BY id")]
        snap["audit"] = con.execute(
            "SELECT count(*) FROM audit_log").fetchone()[0]
    finally:
        con.close()
    return snap


def _admin_routes(w):
    a, b = w.ta["id"], w.tb["id"]
    ka, kb = w.ka["id"], w.kb["id"]
    bodies = {
        "tenants": {"name": "intruder"},
        "keys": {"name": "intruder"},
        "quota": {"requests_per_minute": 0},
        "rotate": {"grace_seconds": 0},
        "issuers": {"kid": "intruder", "alg": "HS256", "key": "k" * 40,
                    "iss": "x", "aud": "y", "tenant_claim": "tenant"},
        "models": {"name": "intruder", "version": "1", "path": "/etc/passwd"},
        "deployments": {"name": "intruder", "model": "shared",
                        "version": "1", "replicas": 1},
        "prices": {"model": "shared", "per_request_micros": 1},
    }
    paths = ["/admin/v1/tenants", f"/admin/v1/tenants/{a}",
             f"/admin/v1/tenants/{b}/keys", f"/admin/v1/tenants/{a}/keys",
             f"/admin/v1/tenants/{b}/quota", f"/admin/v1/tenants/{a}/quota",
             f"/admin/v1/tenants/{b}/suspend",
             f"/admin/v1/tenants/{a}/resume", f"/admin/v1/keys/{kb}",
             f"/admin/v1/keys/{ka}", f"/admin/v1/keys/{kb}/quota",
             f"/admin/v1/keys/{ka}/rotate", f"/admin/v1/keys/{kb}/rotate",
             "/admin/v1/issuers", f"/admin/v1/issuers/{w.iss.row['id']}",
             "/admin/v1/models", "/admin/v1/deployments",
             "/admin/v1/deployments/private", "/admin/v1/usage",
             f"/admin/v1/usage?tenant={a}", "/admin/v1/audit",
             "/admin/v1/prices"]
    for p in paths:
        last = p.split("?")[0].rstrip("/").split("/")[-1]
        body = bodies.get(last, {})
        for method in ("GET", "POST", "PUT", "DELETE"):
            yield method, p, body


def test_admin_routes_refuse_tenant_credentials(w):
    d = w.d
    before = _snapshot(w)
    n = 0
    for name in ("none", "A-key", "B-key", "C-scoped", "A-jwt", "B-jwt"):
        s = w.session(name)
        for method, path, body in _admin_routes(w):
            r = s.request(method, d.admin_url(path), json=body,
                          timeout=HTTP_TIMEOUT)
            where = f"{name} {method} {path}: {r.status_code} " \
                f"{r.text[:200]}"
            assert r.status_code == 401, where
            assert r.headers.get("WWW-Authenticate", "").startswith(
                "Bearer"), where
            assert "data" not in r.json(), where
            n += 1
        # the tenant API is not on the admin port either
        r = s.post(d.admin_url("/v2/models/shared/infer"), data=BODY,
                   timeout=HTTP_TIMEOUT)
        assert r.status_code in (401, 404), (name, r.status_code)
    assert n >= 6 * 80
    assert _snapshot(w) == before, "a refused request changed something"
    # the admin token reaches every read route (so the paths are real)
    for method, path, _ in _admin_routes(w):
        if method != "GET":
            continue
        r = d.aget(path)
        assert r.status_code in (200, 405), (path, r.status_code, r.text)
    for path in ("/admin/v1/tenants", "/admin/v1/usage", "/admin/v1/audit",
                 "/admin/v1/prices", f"/admin/v1/tenants/{w.ta['id']}/keys"):
        assert d.aget(path).status_code == 200, path
    # and every credential still works as before
    for name in ("A-key", "B-key", "C-scoped", "A-jwt"):
        r = w.session(name).post(d.url("/v2/models/shared/infer"),
                                 data=BODY, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, (name, r.text)


def test_counters_are_per_tenant(w):
    d = w.d
    left = 60 - time.time() % 60
    if left < 3 * SCALE:
        time.sleep(left + 0.05)
    ta, ka = tenant_with_key(d)
    tb, kb = tenant_with_key(d)
    set_quota(d, ta["id"], requests_per_minute=3)
    set_quota(d, tb["id"], requests_per_minute=3)
    sa, sb = d.tenant(ka["key"]), d.tenant(kb["key"])
    url = d.url("/v2/models/shared/infer")
    got_b = [sb.post(url, data=BODY, timeout=HTTP_TIMEOUT).status_code
             for _ in range(5)]
    assert got_b == [200, 200, 200, 429, 429], got_b
    got_a = []
    for _ in range(3):
        r = sa.post(url, data=BODY, timeout=HTTP_TIMEOUT)
        got_a.append((r.status_code,
                      r.headers.get("x-ratelimit-remaining-requests")))
    assert got_a == [(200, "2"), (200, "1"), (200, "0")], got_a
