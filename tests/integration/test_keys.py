"""Tenant key lifecycle for issue 3: suspension and resumption of a tenant
(keys and JWTs), scoped keys, rotation with a grace period, last_used_at,
and the audit trail of these changes."""
import time

import numpy as np
import pytest

from conftest import (HTTP_TIMEOUT, KEY_RE, SCALE, HS256Issuer,
                      assert_error, create_key, create_tenant, deploy_file,
                      infer, running_maasd, set_quota, tenant_with_key,
                      tensor, wait_for)

SMALL = (784, 16, 10)
X = np.linspace(0, 1, 784, dtype=np.float32).reshape(1, 784)


@pytest.fixture(scope="module")
def d(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("keys")) as d:
        deploy_file(d, "m", models.get(SMALL, seed=3))
        deploy_file(d, "other", models.get(SMALL, seed=4))
        yield d


@pytest.fixture(scope="module")
def iss(d):
    return HS256Issuer(d)


def call(d, cred, model="m"):
    return infer(d.tenant(cred), d, model, [tensor("input", X)])


def status(d, cred, model="m"):
    return call(d, cred, model).status_code


def keys_of(d, tenant_id):
    r = d.aget(f"/admin/v1/tenants/{tenant_id}/keys?limit=1000")
    assert r.status_code == 200, r.text
    return {k["id"]: k for k in r.json()["data"]}


def rotate(d, key_id, grace):
    return d.apost(f"/admin/v1/keys/{key_id}/rotate",
                   {"grace_seconds": grace})


# --- suspension --------------------------------------------------------------

def test_suspend_and_resume(d, iss):
    t, k1 = tenant_with_key(d)
    k2 = create_key(d, t["id"], name="second")
    other, ko = tenant_with_key(d)
    tok = iss.token(t["id"])
    creds = (k1["key"], k2["key"], tok)
    assert [status(d, c) for c in creds] == [200, 200, 200]

    r = d.apost(f"/admin/v1/tenants/{t['id']}/suspend")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == t["id"] and r.json()["status"] == "suspended"
    assert d.aget(f"/admin/v1/tenants/{t['id']}").json()["status"] == \
        "suspended"
    for c in creds:       # at once: no wait between the 200 and this
        r = call(d, c)
        assert_error(r, 401)
        r = d.tenant(c).get(d.url("/v2/models/m"), timeout=HTTP_TIMEOUT)
        assert_error(r, 401)
    assert status(d, ko["key"]) == 200          # other tenants unaffected
    # a new key or token made while suspended does not work either
    k3 = create_key(d, t["id"], name="third")
    assert status(d, k3["key"]) == 401
    assert status(d, iss.token(t["id"])) == 401

    r = d.apost(f"/admin/v1/tenants/{t['id']}/resume")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert [status(d, c) for c in creds + (k3["key"],)] == [200] * 4


def test_suspend_unknown_tenant(d):
    for action in ("suspend", "resume"):
        r = d.apost(f"/admin/v1/tenants/ten_000000000000000000000000/"
                    f"{action}")
        assert_error(r, 404)


# --- scopes ------------------------------------------------------------------

def test_scoped_key(d):
    t = create_tenant(d)
    r = d.apost(f"/admin/v1/tenants/{t['id']}/keys",
                {"name": "scoped", "scopes": ["m"]})
    assert r.status_code == 201, r.text
    k = r.json()
    assert KEY_RE.match(k["key"]) and k["scopes"] == ["m"], k
    assert status(d, k["key"], "m") == 200
    denied = call(d, k["key"], "other")
    missing = call(d, k["key"], "nope-model")
    e = assert_error(denied, 404)
    assert e["code"] == "model_not_found", e
    ed = assert_error(missing, 404)
    assert ed == dict(e, message=e["message"].replace("'other'",
                                                      "'nope-model'"))
    r = d.tenant(k["key"]).get(d.url("/v2/models/other"),
                               timeout=HTTP_TIMEOUT)
    assert_error(r, 404)
    # an unscoped key of the same tenant reaches both
    k2 = create_key(d, t["id"], name="unscoped")
    assert status(d, k2["key"], "other") == 200
    # the scopes are stored: the key list shows them
    assert keys_of(d, t["id"])[k["id"]]["scopes"] == ["m"]


@pytest.mark.parametrize("scopes", ["m", [1], [""], ["bad name"],
                                    {"m": 1}])
def test_bad_scopes(d, scopes):
    t = create_tenant(d)
    r = d.apost(f"/admin/v1/tenants/{t['id']}/keys",
                {"name": "k", "scopes": scopes})
    assert_error(r, 400)
    assert keys_of(d, t["id"]) == {}


# --- rotation ----------------------------------------------------------------

def test_rotate_with_grace(d):
    t, k = tenant_with_key(d)
    t0 = time.time()
    r = rotate(d, k["id"], 2)
    assert r.status_code == 201, r.text
    new = r.json()
    assert KEY_RE.match(new["key"]) and new["key"] != k["key"], new
    assert new["id"] != k["id"] and new["tenant_id"] == t["id"]
    assert abs(new["previous_key_expires_at"] - (t0 + 2)) <= 1.5, new
    rows = keys_of(d, t["id"])
    assert rows[k["id"]]["replaced_by"] == new["id"], rows[k["id"]]
    assert rows[k["id"]]["expires_at"] == new["previous_key_expires_at"]
    assert "key" not in rows[new["id"]] and "hash" not in rows[new["id"]]
    # both work during the grace period
    assert status(d, k["key"]) == 200
    assert status(d, new["key"]) == 200
    time.sleep(max(0.0, new["previous_key_expires_at"] - time.time()) + 0.3)
    r = call(d, k["key"])
    assert_error(r, 401)
    assert status(d, new["key"]) == 200
    # the old key was rotated already; the new one is not
    assert_error(rotate(d, k["id"], 0), 404)
    r = rotate(d, new["id"], 0)
    assert r.status_code == 201, r.text
    # grace 0: the previous key stops at once
    assert status(d, new["key"]) == 401
    assert status(d, r.json()["key"]) == 200


def test_rotate_refusals(d):
    t, k = tenant_with_key(d)
    r = d.adelete(f"/admin/v1/keys/{k['id']}")
    assert r.status_code == 200, r.text
    assert_error(rotate(d, k["id"], 10), 404)           # revoked
    assert_error(rotate(d, "key_000000000000000000000000", 10), 404)
    k2 = create_key(d, t["id"], name="b")
    for g in (-1, "10", 1.5, 10**9):
        assert_error(rotate(d, k2["id"], g), 400)
    # none of this created a key
    assert set(keys_of(d, t["id"])) == {k["id"], k2["id"]}


def test_revoking_during_grace(d):
    t, k = tenant_with_key(d)
    r = rotate(d, k["id"], 60)
    assert r.status_code == 201
    new = r.json()
    assert status(d, k["key"]) == 200
    assert d.adelete(f"/admin/v1/keys/{k['id']}").status_code == 200
    assert status(d, k["key"]) == 401
    assert status(d, new["key"]) == 200


def test_rotation_keeps_scopes(d):
    t = create_tenant(d)
    r = d.apost(f"/admin/v1/tenants/{t['id']}/keys",
                {"name": "scoped", "scopes": ["m"]})
    k = r.json()
    r = rotate(d, k["id"], 0)
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["scopes"] == ["m"], new
    assert status(d, new["key"], "m") == 200
    assert status(d, new["key"], "other") == 404


def test_rotation_keeps_expiry(d):
    """The replacement of a key that expires must not outlive it: rotation
    replaces the secret, it does not extend the key's life."""
    t = create_tenant(d)
    exp = int(time.time()) + 3600
    k = create_key(d, t["id"], name="temp", expires_at=exp)
    assert k["expires_at"] == exp
    r = rotate(d, k["id"], 5)
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["expires_at"] == exp, \
        f"rotated key of a key expiring at {exp} expires at " \
        f"{new['expires_at']!r}"


def test_rotating_an_expired_key_does_not_revive_it(d):
    t = create_tenant(d)
    k = create_key(d, t["id"], name="old", expires_at=int(time.time()) + 1)
    time.sleep(max(0.0, k["expires_at"] - time.time()) + 0.2)
    assert status(d, k["key"]) == 401
    r = rotate(d, k["id"], 60)
    if r.status_code == 201:
        new = r.json()
        assert status(d, new["key"]) == 401, \
            f"rotating a key that expired at {k['expires_at']} gave a " \
            f"working key expiring at {new['expires_at']!r}"
    else:
        assert_error(r, 404)


def test_rotation_keeps_key_quota(d):
    """A per-key limit belongs to the credential; rotating it must not
    lift the limit."""
    def run():
        t, k = tenant_with_key(d)
        set_quota(d, key_id=k["id"], requests_per_minute=2)
        r = rotate(d, k["id"], 0)
        assert r.status_code == 201, r.text
        new = r.json()
        got = [status(d, new["key"]) for _ in range(3)]
        assert got == [200, 200, 429], \
            f"the rotated key ignores its key's requests_per_minute=2: {got}"
    left = 60 - time.time() % 60
    if left < 3 * SCALE:
        time.sleep(left + 0.05)
    run()


# --- last_used_at ------------------------------------------------------------

def test_last_used_at(d, iss):
    t, k = tenant_with_key(d)
    idle = create_key(d, t["id"], name="idle")
    assert keys_of(d, t["id"])[k["id"]]["last_used_at"] is None
    t0 = int(time.time())
    assert status(d, k["key"]) == 200
    assert status(d, iss.token(t["id"])) == 200     # a JWT has no key row

    def used():
        return keys_of(d, t["id"])[k["id"]]["last_used_at"]
    lu = wait_for(used, 8 * SCALE, interval=0.2,
                  what="last_used_at of a key used once")
    assert t0 - 1 <= lu <= time.time() + 1, (lu, t0)
    rows = keys_of(d, t["id"])
    assert rows[idle["id"]]["last_used_at"] is None, rows[idle["id"]]


# --- audit -------------------------------------------------------------------

def test_changes_are_audited(d):
    t, k = tenant_with_key(d)
    set_quota(d, t["id"], requests_per_minute=5)
    set_quota(d, key_id=k["id"], requests_per_minute=1)
    d.apost(f"/admin/v1/tenants/{t['id']}/suspend")
    d.apost(f"/admin/v1/tenants/{t['id']}/resume")
    new = rotate(d, k["id"], 0).json()
    rows, after = [], None
    while True:
        q = "/admin/v1/audit?limit=1000" + (f"&after={after}" if after
                                             else "")
        page = d.aget(q).json()
        rows += page["data"]
        if not page.get("has_more"):
            break
        after = page["data"][-1]["id"]
    on_t = [a["action"] for a in rows if a["target"] == t["id"]]
    on_k = [a["action"] for a in rows if a["target"] == k["id"]]
    assert any("quota" in a for a in on_t), on_t
    status_changes = [a for a in on_t if any(
        w in a for w in ("suspend", "resume", "status"))]
    assert len(status_changes) >= 2, on_t
    assert any("quota" in a for a in on_k), on_k
    assert any("rotate" in a for a in on_k), on_k
    # the new secret never reaches the audit trail
    assert new["key"] not in str(rows)
