"""Idempotency-Key on admin POSTs: a replay with the same key and body
returns the first status and body and changes nothing (also across a
restart: the answers are in SQLite); the same key with another body is
409; a key's secret is never stored, so its replay shows null."""
import pytest

from conftest import KEY_RE, running_maasd, unique


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with running_maasd(tmp_path_factory.mktemp("idem")) as d:
        yield d


def _count(d, sql, *args):
    with d.db() as con:
        return con.execute(sql, args).fetchone()[0]


def test_replay_returns_first_result_and_changes_nothing(d):
    name = unique("idem")
    h = {"Idempotency-Key": "create-" + name}
    r1 = d.apost("/admin/v1/tenants", {"name": name}, headers=h)
    assert r1.status_code == 201, r1.text
    audits = _count(d, "SELECT count(*) FROM audit_log")
    r2 = d.apost("/admin/v1/tenants", {"name": name}, headers=h)
    assert r2.status_code == 201, r2.text
    assert r2.json() == r1.json()
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in r1.headers
    assert _count(d, "SELECT count(*) FROM tenants WHERE name = ?",
                  name) == 1
    assert _count(d, "SELECT count(*) FROM audit_log") == audits
    # Without the key the same body is a new request: 409 by name.
    assert d.apost("/admin/v1/tenants", {"name": name}).status_code == 409


def test_same_key_other_body_is_409(d):
    h = {"Idempotency-Key": unique("k")}
    assert d.apost("/admin/v1/tenants", {"name": unique("a")},
                   headers=h).status_code == 201
    other = unique("b")
    r = d.apost("/admin/v1/tenants", {"name": other}, headers=h)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "idempotency_key_reused"
    assert _count(d, "SELECT count(*) FROM tenants WHERE name = ?",
                  other) == 0


def test_errors_replay_too_and_bad_keys_are_refused(d):
    h = {"Idempotency-Key": unique("bad")}
    r1 = d.apost("/admin/v1/tenants", {"name": ""}, headers=h)
    assert r1.status_code == 400
    r2 = d.apost("/admin/v1/tenants", {"name": ""}, headers=h)
    assert (r2.status_code, r2.json()) == (400, r1.json())
    for bad in ("", "x" * 256, "has space"):
        r = d.apost("/admin/v1/tenants", {"name": unique("c")},
                    headers={"Idempotency-Key": bad})
        assert r.status_code == 400, (bad, r.text)


def test_key_secret_is_not_stored(d):
    t = d.apost("/admin/v1/tenants", {"name": unique("sec")}).json()
    h = {"Idempotency-Key": unique("key")}
    r1 = d.apost(f"/admin/v1/tenants/{t['id']}/keys", {"name": "k"},
                 headers=h)
    assert r1.status_code == 201 and KEY_RE.match(r1.json()["key"])
    secret = r1.json()["key"]
    r2 = d.apost(f"/admin/v1/tenants/{t['id']}/keys", {"name": "k"},
                 headers=h)
    assert r2.status_code == 201
    assert r2.json()["key"] is None
    assert r2.json()["id"] == r1.json()["id"]
    assert _count(d, "SELECT count(*) FROM api_keys WHERE tenant_id = ?",
                  t["id"]) == 1
    with d.db() as con:
        bodies = [b for (b,) in con.execute(
            "SELECT body FROM idempotency_keys")]
    assert not [b for b in bodies if secret in b or secret[8:] in b]


def test_replay_survives_restart(tmp_path):
    with running_maasd(tmp_path) as d:
        name = unique("restart")
        h = {"Idempotency-Key": "r-" + name}
        r1 = d.apost("/admin/v1/tenants", {"name": name}, headers=h)
        assert r1.status_code == 201
        d.stop()
        d.start()
        r2 = d.apost("/admin/v1/tenants", {"name": name}, headers=h)
        assert (r2.status_code, r2.json()) == (201, r1.json())
        assert _count(d, "SELECT count(*) FROM tenants WHERE name = ?",
                      name) == 1


def _age(d, key, seconds):
    """Makes a stored answer older, as time passing would."""
    con = __import__("sqlite3").connect(str(d.db_path), timeout=30)
    try:
        with con:
            n = con.execute("UPDATE idempotency_keys SET created_at ="
                            " created_at - ? WHERE key = ?",
                            (seconds, key)).rowcount
    finally:
        con.close()
    assert n == 1


DAY = 24 * 3600


def test_keys_expire_after_a_day(d):
    key = unique("exp")
    h = {"Idempotency-Key": key}
    a, b = unique("a"), unique("b")
    assert d.apost("/admin/v1/tenants", {"name": a},
                   headers=h).status_code == 201
    # Just under a day: still answered from the store.
    _age(d, key, DAY - 60)
    r = d.apost("/admin/v1/tenants", {"name": b}, headers=h)
    assert r.status_code == 409 and \
        r.json()["error"]["code"] == "idempotency_key_reused"
    # Past a day the key is free: a new request, stored anew.
    _age(d, key, 120)
    r = d.apost("/admin/v1/tenants", {"name": b}, headers=h)
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    assert _count(d, "SELECT count(*) FROM tenants WHERE name = ?", b) == 1
    r2 = d.apost("/admin/v1/tenants", {"name": b}, headers=h)
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.json() == r.json()
    assert _count(d, "SELECT count(*) FROM idempotency_keys WHERE key = ?",
                  key) == 1


def test_writer_sweeps_expired_keys(tmp_path):
    with running_maasd(tmp_path) as d:
        old, fresh = unique("old"), unique("fresh")
        for k in (old, fresh):
            assert d.apost("/admin/v1/tenants", {"name": unique("s")},
                           headers={"Idempotency-Key": k}).status_code == 201
        _age(d, old, DAY + 1)
        # The writer sweeps at its first commit after start (then at
        # most once a minute): restart, then make it commit something.
        d.stop()
        d.start()
        assert d.apost("/admin/v1/tenants",
                       {"name": unique("t")}).status_code == 201
        keys = {k for (k,) in d.db().execute(
            "SELECT key FROM idempotency_keys")}
        assert old not in keys and fresh in keys
