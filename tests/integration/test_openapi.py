"""The admin API's OpenAPI document (/admin/v1/openapi.json) against the
routes that really exist: every operation is described (the document is
built from the router's table; an undescribed route would be flagged),
every $ref resolves, every documented operation is routed (anything but
the router's 404/405), and on every documented path the methods it does
not list answer 405."""
import re

import pytest

from conftest import HTTP_TIMEOUT, create_key, create_tenant, running_maasd

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with running_maasd(tmp_path_factory.mktemp("openapi")) as d:
        yield d


@pytest.fixture(scope="module")
def doc(d):
    r = d.aget("/admin/v1/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def _refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.append(v)
            else:
                _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


def test_document_is_complete(doc):
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    ops = [(p, m, op) for p, item in doc["paths"].items()
           for m, op in item.items()]
    assert len(ops) >= 35
    for p, m, op in ops:
        assert not op.get("x-undocumented"), (m, p)
        assert op["summary"] and op["responses"], (m, p)
        for name in re.findall(r"{(\w+)}", p):
            assert any(x["name"] == name and x["in"] == "path"
                       for x in op["parameters"]), (m, p, name)
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc, []):
        assert ref.startswith("#/components/schemas/")
        assert ref.split("/")[-1] in schemas, ref
    for must in ("/admin/v1/tenants", "/admin/v1/invoices",
                 "/admin/v1/usage/report", "/admin/v1/audit",
                 "/admin/v1/prices", "/admin/v1/issuers",
                 "/admin/v1/billing/periods/{period}/close"):
        assert must in doc["paths"], must
    # Every POST takes an Idempotency-Key.
    for p, m, op in ops:
        if m == "post":
            assert any(x["name"] == "Idempotency-Key"
                       for x in op["parameters"]), p


def _router_miss(r):
    if r.status_code == 405:
        return True
    if r.status_code != 404:
        return False
    try:
        msg = r.json()["error"]["message"]
    except ValueError:
        return True
    return msg.startswith("nothing at") or msg.startswith("no route")


def test_documented_routes_exist_and_others_are_405(d, doc):
    t = create_tenant(d)
    k = create_key(d, t["id"])
    values = {"tenant_id": t["id"], "key_id": k["id"],
              "issuer_id": "iss_000000000000000000000000",
              "name": "no-such-deployment", "period": "2001-01"}
    sess = d.admin
    for p, item in doc["paths"].items():
        url = re.sub(r"{(\w+)}", lambda m: values[m.group(1)], p)
        for m in METHODS:
            kw = {"timeout": HTTP_TIMEOUT}
            if m in ("post", "put", "patch"):
                kw["json"] = {}
            r = sess.request(m.upper(), d.admin_url(url), **kw)
            if m in item:
                assert not _router_miss(r), (m, url, r.status_code, r.text)
            else:
                assert r.status_code == 405, (m, url, r.status_code)
                assert r.headers.get("Allow"), (m, url)
    r = d.aget("/admin/v1/no-such-thing")
    assert r.status_code == 404 and _router_miss(r)


def test_needs_admin_token(d):
    import requests
    r = requests.get(d.admin_url("/admin/v1/openapi.json"), verify=d.cert,
                     timeout=HTTP_TIMEOUT)
    assert r.status_code == 401
