"""Admin API: tenants, keys, models and deployments (create, list, validate),
the audit trail of every change, and key secrets shown exactly once."""
import json
import os

import pytest
import requests

from conftest import (HTTP_TIMEOUT, KEY_RE, assert_error, create_key,
                      create_tenant, deploy, register_model, running_maasd,
                      sha256_file, unique, wait_deployment_ready)

LAYERS = (784, 8, 10)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with running_maasd(tmp_path_factory.mktemp("admin")) as d:
        yield d


def _pages(d, path, limit=100):
    rows, after = [], None
    for _ in range(1000):
        sep = "&" if "?" in path else "?"
        q = f"{path}{sep}limit={limit}" + (f"&after={after}" if after else "")
        r = d.aget(q)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page.get("object") == "list", page
        assert isinstance(page.get("has_more"), bool), page
        rows += page["data"]
        if not page["has_more"]:
            return rows
        after = page["data"][-1]["id"]
    raise AssertionError("paging does not end")


def _audit(d):
    return _pages(d, "/admin/v1/audit", limit=1000)


class AuditWatch:
    """Asserts how many audit rows an operation added."""

    def __init__(self, d):
        self.d = d
        self.before = len(_audit(d))

    def added(self):
        rows = _audit(self.d)
        return rows[self.before:]


# --- tenants -----------------------------------------------------------------

def test_tenant_create_list_get(d):
    name = unique("acme")
    w = AuditWatch(d)
    r = d.apost("/admin/v1/tenants", {"name": name})
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["name"] == name and t["id"].startswith("ten_")
    new = w.added()
    assert len(new) == 1 and t["id"] in json.dumps(new[0]), new
    assert t in _pages(d, "/admin/v1/tenants")
    r = d.aget(f"/admin/v1/tenants/{t['id']}")
    assert r.status_code == 200 and r.json() == t
    assert_error(d.aget("/admin/v1/tenants/ten_000000000000000000000000"),
                 404)
    w = AuditWatch(d)
    assert_error(d.apost("/admin/v1/tenants", {"name": name}), 409)
    assert w.added() == []


@pytest.mark.parametrize("body", [
    {}, {"name": ""}, {"name": " "}, {"name": "has space"},
    {"name": "a" * 300}, {"name": 5}, {"name": None}, {"name": ["x"]},
    {"name": "a/b"}, {"name": "line\nbreak"}, {"name": "<script>"},
], ids=["missing", "empty", "blank", "space", "long", "number", "null",
        "list", "slash", "newline", "markup"])
def test_tenant_name_validation(d, body):
    w = AuditWatch(d)
    before = len(_pages(d, "/admin/v1/tenants"))
    assert_error(d.apost("/admin/v1/tenants", body), 400)
    assert len(_pages(d, "/admin/v1/tenants")) == before
    assert w.added() == []


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"\"name\"", b"null"])
def test_tenant_bad_json(d, raw):
    r = d.admin.post(d.admin_url("/admin/v1/tenants"), data=raw,
                     headers={"Content-Type": "application/json"},
                     timeout=HTTP_TIMEOUT)
    assert_error(r, 400)


def test_list_paging(d):
    made = {create_tenant(d)["id"] for _ in range(5)}
    r = d.aget("/admin/v1/tenants?limit=2")
    assert r.status_code == 200
    p = r.json()
    assert len(p["data"]) == 2 and p["has_more"] is True
    rows = _pages(d, "/admin/v1/tenants", limit=2)
    ids = [t["id"] for t in rows]
    assert len(ids) == len(set(ids))
    assert made <= set(ids)
    for bad in ("limit=0", "limit=x", "limit=-3"):
        assert_error(d.aget(f"/admin/v1/tenants?{bad}"), 400)


# --- keys --------------------------------------------------------------------

def test_key_lifecycle_and_secret_shown_once(d):
    t = create_tenant(d)
    w = AuditWatch(d)
    r = d.apost(f"/admin/v1/tenants/{t['id']}/keys", {"name": "ci"})
    assert r.status_code == 201, r.text
    k = r.json()
    secret = k["key"]
    assert KEY_RE.match(secret) and k["id"].startswith("key_")
    new = w.added()
    assert len(new) == 1 and k["id"] in json.dumps(new[0]), new

    keys = _pages(d, f"/admin/v1/tenants/{t['id']}/keys")
    assert [x["id"] for x in keys] == [k["id"]]
    row = keys[0]
    assert "key" not in row and "hash" not in row and "secret" not in row
    assert secret not in json.dumps(keys)
    assert row["revoked_at"] is None

    w = AuditWatch(d)
    r = d.adelete(f"/admin/v1/keys/{k['id']}")
    assert r.status_code == 200, r.text
    assert secret not in r.text
    new = w.added()
    assert len(new) == 1 and k["id"] in json.dumps(new[0]), new
    keys = _pages(d, f"/admin/v1/tenants/{t['id']}/keys")
    assert keys[0]["revoked_at"] is not None
    assert_error(d.adelete("/admin/v1/keys/key_000000000000000000000000"),
                 404)


def test_key_validation(d):
    t = create_tenant(d)
    assert_error(d.apost("/admin/v1/tenants/ten_000000000000000000000000/keys",
                         {"name": "x"}), 404)
    for body in ({"name": "x", "expires_at": "tomorrow"},
                 {"name": "x", "expires_at": -5},
                 {"name": "x", "expires_at": 1.5},
                 {"name": 7}):
        w = AuditWatch(d)
        assert_error(d.apost(f"/admin/v1/tenants/{t['id']}/keys", body), 400)
        assert w.added() == []
    assert _pages(d, f"/admin/v1/tenants/{t['id']}/keys") == []
    k = create_key(d, t["id"], expires_at=2000000000)
    assert k["expires_at"] == 2000000000


def test_secrets_never_stored_or_listed(d):
    t = create_tenant(d)
    secrets_ = [create_key(d, t["id"], name=f"k{i}")["key"]
                for i in range(3)]
    first = _pages(d, f"/admin/v1/tenants/{t['id']}/keys")[0]
    assert d.adelete(f"/admin/v1/keys/{first['id']}").status_code == 200
    dumps = json.dumps(_audit(d)) + json.dumps(_pages(d, "/admin/v1/tenants"))
    dumps += json.dumps(_pages(d, f"/admin/v1/tenants/{t['id']}/keys"))
    token = d.admin_token
    for s in secrets_:
        body = s[len("maas_sk_"):]
        assert s not in dumps and body not in dumps
    assert token not in dumps
    # nor anywhere in the database files
    blob = b""
    for suffix in ("", "-wal"):
        p = f"{d.db_path}{suffix}"
        if os.path.exists(p):
            with open(p, "rb") as f:
                blob += f.read()
    for s in secrets_:
        assert s[len("maas_sk_"):].encode() not in blob
    assert token.encode() not in blob
    assert token[len("maas_admin_"):].encode() not in blob


# --- models ------------------------------------------------------------------

def test_model_register_and_list(d, models):
    path = models.get(LAYERS, seed=1)
    name = unique("mlp")
    w = AuditWatch(d)
    m = register_model(d, name, "1", path)
    assert m["name"] == name and m["version"] == "1"
    assert m["sha256"] == sha256_file(path)
    assert m["size"] == os.path.getsize(path)
    assert m["format"] == "onnx"
    meta = m["meta"]
    if isinstance(meta, str):
        meta = json.loads(meta)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32",
                               "shape": [-1, 784]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32",
                                "shape": [-1, 10]}]
    new = w.added()
    assert len(new) == 1 and m["id"] in json.dumps(new[0]), new
    listed = [x for x in _pages(d, "/admin/v1/models") if x["name"] == name]
    assert len(listed) == 1 and listed[0]["sha256"] == m["sha256"]

    w = AuditWatch(d)
    r = d.apost("/admin/v1/models", {"name": name, "version": "1",
                                     "path": str(path)})
    assert_error(r, 409)
    assert w.added() == []
    # another version of the same name is fine
    m2 = register_model(d, name, "2", models.get(LAYERS, seed=2))
    assert m2["sha256"] != m["sha256"]


def _register_fails(d, body, status=400, mention=None):
    w = AuditWatch(d)
    n = len(_pages(d, "/admin/v1/models"))
    e = assert_error(d.apost("/admin/v1/models", body), status,
                     mention=mention)
    assert len(_pages(d, "/admin/v1/models")) == n
    assert w.added() == []
    return e


def test_model_validation(d, models, tmp_path):
    good = str(models.get(LAYERS, seed=1))
    _register_fails(d, {"name": "x", "version": "1"})
    _register_fails(d, {"version": "1", "path": good})
    _register_fails(d, {"name": "x", "path": good})
    _register_fails(d, {"name": "bad name", "version": "1", "path": good})
    _register_fails(d, {"name": "x", "version": "1 2", "path": good})
    _register_fails(d, {"name": "x", "version": "1", "path": 17})


def test_model_unreadable_path(d, tmp_path):
    missing = str(tmp_path / "no-such-dir" / "model.onnx")
    _register_fails(d, {"name": unique("m"), "version": "1",
                        "path": missing}, mention=missing)
    _register_fails(d, {"name": unique("m"), "version": "1",
                        "path": str(tmp_path)}, mention=str(tmp_path))


def _bad_file(models, name, data):
    """In the world-readable models dir, so that a runtime probing it as
    nobody fails on the content, not on permissions."""
    p = models.root / unique(name)
    p.write_bytes(data)
    os.chmod(p, 0o644)
    return str(p)


@pytest.mark.parametrize("kind", ["text", "empty", "random", "truncated"])
def test_model_not_onnx(d, models, tmp_path, kind):
    good = models.get(LAYERS, seed=1).read_bytes()
    data = {"text": b"this is not a model\n" * 50, "empty": b"",
            "random": os.urandom(4096),
            "truncated": good[:len(good) // 2]}[kind]
    path = _bad_file(models, f"{kind}.onnx", data)
    _register_fails(d, {"name": unique("m"), "version": "1", "path": path},
                    mention=os.path.basename(path))


def test_model_with_unsupported_operator(d, models):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Det", ["x"], ["y"])], "det",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    path = _bad_file(models, "det.onnx", m.SerializeToString())
    onnx.checker.check_model(onnx.load(path))
    _register_fails(d, {"name": unique("det"), "version": "1",
                        "path": path}, mention="Det")


# --- deployments -------------------------------------------------------------

def test_deployment_create_and_list(d, models):
    name = unique("dep")
    register_model(d, name, "1", models.get(LAYERS, seed=3))
    w = AuditWatch(d)
    row = deploy(d, name, name, "1", replicas=1, threads=1, wait=False)
    assert row["name"] == name and row["model"] == name
    assert row["version"] == "1" and row["id"].startswith("dep_")
    new = w.added()
    assert len(new) == 1 and row["id"] in json.dumps(new[0]), new
    wait_deployment_ready(d, name)
    listed = [x for x in _pages(d, "/admin/v1/deployments")
              if x["name"] == name]
    assert len(listed) == 1 and listed[0]["live_replicas"] == 1
    w = AuditWatch(d)
    r = d.apost("/admin/v1/deployments", {"name": name, "model": name,
                                          "version": "1", "replicas": 1})
    assert_error(r, 409)
    assert w.added() == []


def test_deployment_of_unregistered_model(d, models):
    name = unique("dep")
    register_model(d, name, "1", models.get(LAYERS, seed=3))
    for body in ({"name": unique("x"), "model": "never-registered",
                  "version": "1", "replicas": 1},
                 {"name": unique("x"), "model": name, "version": "9",
                  "replicas": 1}):
        w = AuditWatch(d)
        assert_error(d.apost("/admin/v1/deployments", body), 404)
        assert w.added() == []


@pytest.mark.parametrize("over", [
    {"replicas": 0}, {"replicas": -1}, {"replicas": "two"},
    {"replicas": 100000}, {"threads": 0}, {"threads": "x"},
    {"name": None}, {"name": "bad name"}, {"model": None},
    {"version": None},
], ids=["replicas0", "replicas-1", "replicas-str", "replicas-huge",
        "threads0", "threads-str", "no-name", "bad-name", "no-model",
        "no-version"])
def test_deployment_validation(d, models, over):
    name = unique("dv")
    register_model(d, name, "1", models.get(LAYERS, seed=4))
    body = {"name": unique("x"), "model": name, "version": "1",
            "replicas": 1, "threads": 1}
    for k, v in over.items():
        if v is None:
            del body[k]
        else:
            body[k] = v
    w = AuditWatch(d)
    assert_error(d.apost("/admin/v1/deployments", body), 400)
    assert w.added() == []
    assert body.get("name") not in [x["name"] for x in
                                    _pages(d, "/admin/v1/deployments")]


# --- routing -----------------------------------------------------------------

def test_admin_routing(d):
    assert_error(d.aget("/admin/v1/nothing"), 404)
    assert_error(d.aget("/v2/models/x"), 404)
    r = d.admin.put(d.admin_url("/admin/v1/tenants"), json={},
                    timeout=HTTP_TIMEOUT)
    assert_error(r, 405)
    assert_error(d.adelete("/admin/v1/usage"), 405)
    assert_error(d.apost("/admin/v1/audit", {}), 405)


def test_admin_api_is_not_on_tenant_port(d):
    r = requests.get(d.url("/admin/v1/tenants"), verify=d.cert,
                     headers={"Authorization": f"Bearer {d.admin_token}"},
                     timeout=HTTP_TIMEOUT)
    assert_error(r, 404)
