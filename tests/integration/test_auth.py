"""Tenant API keys and the admin token: every way to be refused, revocation
taking effect at once, expiry, and the separation of the two credentials."""
import secrets
import time

import numpy as np
import pytest
import requests

from conftest import (HTTP_TIMEOUT, assert_error, create_key, create_tenant,
                      deploy_file, infer, running_maasd, tenant_with_key,
                      tensor)

LAYERS = (784, 16, 10)


@pytest.fixture(scope="module")
def d(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("auth")) as d:
        deploy_file(d, "m", models.get(LAYERS, seed=3))
        yield d


X = np.linspace(0, 1, 784, dtype=np.float32).reshape(1, 784)


def _infer_with_header(d, value):
    h = {} if value is None else {"Authorization": value}
    return requests.post(d.url("/v2/models/m/infer"), verify=d.cert,
                         headers=h, json={"inputs": [tensor("input", X)]},
                         timeout=HTTP_TIMEOUT)


def _ok(d, key):
    r = infer(d.tenant(key), d, "m", [tensor("input", X)])
    assert r.status_code == 200, r.text
    return r


def test_valid_key_works(d):
    _, k = tenant_with_key(d)
    r = _ok(d, k["key"])
    assert r.json()["outputs"][0]["shape"] == [1, 10]


def test_missing_header(d):
    assert_error(_infer_with_header(d, None), 401)
    for path in ("/v2/models/m", "/v2/models/m/ready"):
        r = requests.get(d.url(path), verify=d.cert, timeout=HTTP_TIMEOUT)
        assert_error(r, 401)


@pytest.mark.parametrize("value", [
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "maas_sk_" + "0" * 48,                       # no scheme
    "Bearer maas_sk_abc",                        # too short
    "Bearer maas_sk_" + "g" * 48,                # not hex
    "Bearer maas_sk_" + "0" * 48 + "00",         # too long
    "Bearer sk-" + "0" * 48,                     # another vendor's key
    "Bearer " + "x" * 9000,                      # oversized
])
def test_malformed_header(d, value):
    assert_error(_infer_with_header(d, value), 401)


def test_unknown_key(d):
    assert_error(_infer_with_header(
        d, "Bearer maas_sk_" + secrets.token_hex(24)), 401)


def test_wrong_secret_with_valid_prefix(d):
    _, k = tenant_with_key(d)
    key = k["key"]
    # keep "maas_sk_" + the 12-hex public prefix, change the rest
    body = key[len("maas_sk_"):]
    tail = "".join("0" if c != "0" else "1" for c in body[12:])
    forged = "maas_sk_" + body[:12] + tail
    assert forged != key and len(forged) == len(key)
    assert_error(_infer_with_header(d, f"Bearer {forged}"), 401)
    # flipping only the last character is refused as well
    last = "0" if key[-1] != "0" else "1"
    assert_error(_infer_with_header(d, f"Bearer {key[:-1]}{last}"), 401)
    _ok(d, key)                      # the real key still works


def test_revoked_key_stops_at_once(d):
    t, k = tenant_with_key(d)
    other = create_key(d, t["id"], name="other")
    s = d.tenant(k["key"])
    _ok(d, k["key"])
    r = d.adelete(f"/admin/v1/keys/{k['id']}")
    assert r.status_code == 200, r.text
    # the very next request, on the same keep-alive session, is refused
    assert_error(infer(s, d, "m", [tensor("input", X)]), 401)
    assert_error(_infer_with_header(d, f"Bearer {k['key']}"), 401)
    assert_error(s.get(d.url("/v2/models/m"), timeout=HTTP_TIMEOUT), 401)
    _ok(d, other["key"])             # the tenant's other key is unaffected


def test_expired_key(d):
    t = create_tenant(d)
    past = create_key(d, t["id"], name="old", expires_at=int(time.time()) - 60)
    assert_error(_infer_with_header(d, f"Bearer {past['key']}"), 401)
    future = create_key(d, t["id"], name="new",
                        expires_at=int(time.time()) + 3600)
    _ok(d, future["key"])


def test_key_expiring_soon_stops_working(d):
    t = create_tenant(d)
    k = create_key(d, t["id"], name="short", expires_at=int(time.time()) + 2)
    _ok(d, k["key"])
    time.sleep(3.2)
    assert_error(_infer_with_header(d, f"Bearer {k['key']}"), 401)


def test_admin_token_on_tenant_api(d):
    r = _infer_with_header(d, f"Bearer {d.admin_token}")
    assert_error(r, 401)
    r = requests.get(d.url("/v2/models/m"), verify=d.cert,
                     headers={"Authorization": f"Bearer {d.admin_token}"},
                     timeout=HTTP_TIMEOUT)
    assert_error(r, 401)


def test_tenant_key_on_admin_api(d):
    _, k = tenant_with_key(d)
    h = {"Authorization": f"Bearer {k['key']}"}
    for method, path, body in [
            ("GET", "/admin/v1/tenants", None),
            ("POST", "/admin/v1/tenants", {"name": "evil"}),
            ("GET", "/admin/v1/usage", None),
            ("DELETE", f"/admin/v1/keys/{k['id']}", None)]:
        r = requests.request(method, d.admin_url(path), verify=d.cert,
                             headers=h, json=body, timeout=HTTP_TIMEOUT)
        assert_error(r, 401)
    # nothing happened: no tenant "evil", the key still works
    names = [t["name"] for t in d.aget("/admin/v1/tenants?limit=1000")
             .json()["data"]]
    assert "evil" not in names
    _ok(d, k["key"])


def test_admin_api_refuses_missing_and_wrong_token(d):
    r = requests.get(d.admin_url("/admin/v1/tenants"), verify=d.cert,
                     timeout=HTTP_TIMEOUT)
    assert_error(r, 401)
    bad = "maas_admin_" + secrets.token_hex(24)
    r = requests.get(d.admin_url("/admin/v1/tenants"), verify=d.cert,
                     headers={"Authorization": f"Bearer {bad}"},
                     timeout=HTTP_TIMEOUT)
    assert_error(r, 401)


def test_health_routes_need_no_auth(d):
    for path in ("/healthz", "/readyz", "/v2/health/live",
                 "/v2/health/ready"):
        r = requests.get(d.url(path), verify=d.cert, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert r.headers.get("x-request-id"), path
