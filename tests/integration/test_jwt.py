"""JWT tenant authentication (DESIGN.md §6): issuers registered through
/admin/v1/issuers, tokens from them accepted as tenant credentials, and the
attack catalogue: every forged, stale or mis-addressed token is refused with
401 and an OpenAI-style error, and the daemon stays up.

Tokens are built by hand here (json + base64url + hmac / cryptography) so
that a forgery is exactly what the test says it is; PyJWT is used only to
cross-check that ordinary, well-formed tokens of a common library work.
Authentication is observed on /v2/models/nope: an authenticated request
gets 404 model_not_found, an unauthenticated one 401.
"""
import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import time

import jwt as pyjwt
import numpy as np
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)

from conftest import (HTTP_TIMEOUT, SCALE, assert_error, create_key,
                      create_tenant, deploy_file, infer, request_ids_in_db,
                      running_maasd, tensor, unique)

LAYERS = (784, 16, 10)
ISS = "https://idp.example.com"
AUD = "maas-api"
X = np.linspace(0, 1, 784, dtype=np.float32).reshape(1, 784)
P256_N = int("FFFFFFFF00000000FFFFFFFFFFFFFFFF"
             "BCE6FAADA7179E84F3B9CAC2FC632551", 16)


# --- keys and tokens ---------------------------------------------------------

def b64u(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pem_public(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def spki_fingerprint(key):
    der = key.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def signing_input(header, claims):
    h = header if isinstance(header, (bytes, str)) else json.dumps(header)
    c = claims if isinstance(claims, (bytes, str)) else json.dumps(claims)
    return f"{b64u(h)}.{b64u(c)}"


def sign(alg, key, data):
    """The JWS signature of data (str) for alg with key."""
    data = data.encode()
    if alg == "HS256":
        k = key.encode() if isinstance(key, str) else key
        return hmac.new(k, data, hashlib.sha256).digest()
    if alg == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise ValueError(alg)


def token(alg, key, header, claims):
    si = signing_input(header, claims)
    return f"{si}.{b64u(sign(alg, key, si))}"


class Keys:
    def __init__(self):
        self.hs = secrets.token_urlsafe(48)
        self.rsa = rsa.generate_private_key(public_exponent=65537,
                                            key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture(scope="module")
def d(tmp_path_factory, models):
    with running_maasd(tmp_path_factory.mktemp("jwt")) as d:
        deploy_file(d, "m", models.get(LAYERS, seed=5))
        yield d


class Issuers:
    """One tenant and three issuers (HS256, RS256, ES256) on a daemon."""

    def __init__(self, d, keys):
        self.keys = keys
        self.tenant = create_tenant(d)["id"]
        tag = secrets.token_hex(4)
        self.kid = {"HS256": f"hs-{tag}", "RS256": f"rs-{tag}",
                    "ES256": f"es-{tag}"}
        self.key = {"HS256": keys.hs, "RS256": keys.rsa, "ES256": keys.ec}
        # ES256 takes the tenant from "sub", the others from "tenant"
        self.claim = {"HS256": "tenant", "RS256": "tenant", "ES256": "sub"}
        self.row = {}
        for alg, kid in self.kid.items():
            body = {"kid": kid, "alg": alg, "iss": ISS, "aud": AUD,
                    "tenant_claim": self.claim[alg],
                    "key": keys.hs if alg == "HS256" else
                    pem_public(self.key[alg])}
            r = d.apost("/admin/v1/issuers", body)
            assert r.status_code == 201, r.text
            self.row[alg] = r.json()

    def claims(self, alg="HS256", tenant_id=None, **over):
        c = {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 300,
             "iat": int(time.time()),
             self.claim[alg]: tenant_id or self.tenant}
        for k, v in over.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def header(self, which="HS256", **extra):
        """The header of issuer `which`; extra may override alg or kid."""
        h = {"alg": which, "typ": "JWT", "kid": self.kid[which]}
        h.update(extra)
        return h

    def token(self, alg="HS256", header=None, claims=None, **over):
        return token(alg, self.key[alg], header or self.header(alg),
                     claims if claims is not None else
                     self.claims(alg, **over))


@pytest.fixture(scope="module")
def iss(d, keys):
    return Issuers(d, keys)


def call(d, tok, path="/v2/models/nope"):
    return requests.get(d.url(path), verify=d.cert,
                        headers={"Authorization": f"Bearer {tok}"},
                        timeout=HTTP_TIMEOUT)


def accepted(d, tok):
    r = call(d, tok)
    assert r.status_code == 404, f"token refused: {r.status_code} {r.text}"
    assert r.json()["error"]["code"] == "model_not_found", r.text


def refused(d, tok):
    r = call(d, tok)
    e = assert_error(r, 401)
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), \
        dict(r.headers)
    return e


@pytest.fixture(autouse=True)
def _daemon_stays_up(request):
    yield
    if "d" in request.fixturenames:
        d = request.getfixturevalue("d")
        assert d.running(), "maasd died\n" + d.log_tail()
        r = requests.get(d.url("/healthz"), verify=d.cert,
                         timeout=HTTP_TIMEOUT)
        assert r.status_code == 200


# --- the admin API -----------------------------------------------------------

def test_create_shows_no_secret(d, keys, iss):
    for alg, row in iss.row.items():
        assert row["id"].startswith("iss_"), row
        assert row["kid"] == iss.kid[alg] and row["alg"] == alg
        assert row["iss"] == ISS and row["aud"] == AUD
        assert row["tenant_claim"] == iss.claim[alg]
        assert row["deleted_at"] is None
        assert "key" not in row, row
        assert row["key_fingerprint"].startswith("sha256:"), row
    assert iss.row["HS256"]["key_fingerprint"] == \
        "sha256:" + hashlib.sha256(keys.hs.encode()).hexdigest()
    assert iss.row["RS256"]["key_fingerprint"] == spki_fingerprint(keys.rsa)
    assert iss.row["ES256"]["key_fingerprint"] == spki_fingerprint(keys.ec)
    # neither the list, one issuer, nor the audit trail shows the secret
    lst = d.aget("/admin/v1/issuers?limit=1000")
    assert lst.status_code == 200, lst.text
    assert lst.json()["object"] == "list"
    ids = {r["id"] for r in lst.json()["data"]}
    assert {r["id"] for r in iss.row.values()} <= ids
    one = d.aget(f"/admin/v1/issuers/{iss.row['HS256']['id']}")
    assert one.status_code == 200 and one.json()["kid"] == iss.kid["HS256"]
    audit = d.aget("/admin/v1/audit?limit=1000")
    assert audit.status_code == 200
    for text in (lst.text, one.text, audit.text):
        assert keys.hs not in text
        assert '"key"' not in text
    acts = [(a["action"], a["target"]) for a in audit.json()["data"]]
    for row in iss.row.values():
        assert ("issuer.create", row["id"]) in acts


def test_list_pages(d, iss):
    r = d.aget("/admin/v1/issuers?limit=1")
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["data"]) == 1 and page["has_more"] is True
    r = d.aget(f"/admin/v1/issuers?limit=1000&after={page['data'][0]['id']}")
    assert all(x["id"] > page["data"][0]["id"] for x in r.json()["data"])
    assert_error(d.aget("/admin/v1/issuers?limit=0"), 400)
    assert_error(d.aget("/admin/v1/issuers?limit=x"), 400)


def _bad_issuers(keys):
    rsa1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())
    priv = keys.ec.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    ok = {"kid": unique("k"), "alg": "HS256", "key": keys.hs, "iss": ISS,
          "aud": AUD, "tenant_claim": "tenant"}
    cases = {
        "kid-empty": {"kid": ""},
        "kid-traversal": {"kid": "../../../../dev/null"},
        "kid-space": {"kid": "a b"},
        "kid-long": {"kid": "k" * 129},
        "kid-number": {"kid": 7},
        "alg-none": {"alg": "none"},
        "alg-None": {"alg": "None"},
        "alg-hs512": {"alg": "HS512"},
        "alg-rs384": {"alg": "RS384"},
        "alg-lower": {"alg": "hs256"},
        "hmac-short": {"key": "x" * 31},
        "hmac-missing": {"key": None},
        "rsa-1024": {"alg": "RS256", "key": pem_public(rsa1024)},
        "rsa-for-es256": {"alg": "ES256", "key": pem_public(keys.rsa)},
        "ec-for-rs256": {"alg": "RS256", "key": pem_public(keys.ec)},
        "p384-for-es256": {"alg": "ES256", "key": pem_public(p384)},
        "private-key": {"alg": "ES256", "key": priv},
        "not-pem": {"alg": "RS256", "key": "hello"},
        "hmac-as-rs256": {"alg": "RS256", "key": keys.hs},
        "iss-empty": {"iss": ""},
        "iss-missing": {"iss": None},
        "aud-empty": {"aud": ""},
        "aud-missing": {"aud": None},
        "claim-exp": {"tenant_claim": "exp"},
        "claim-space": {"tenant_claim": "a b"},
        "unknown-field": {"jku": "https://evil.example/jwks"},
    }
    for name, over in cases.items():
        body = dict(ok)
        for k, v in over.items():
            if v is None:
                body.pop(k)
            else:
                body[k] = v
        yield name, body


def test_invalid_issuers_refused(d, keys):
    before = d.aget("/admin/v1/issuers?limit=1000").json()["data"]
    for name, body in _bad_issuers(keys):
        r = d.apost("/admin/v1/issuers", body)
        e = assert_error(r, 400)
        assert keys.hs not in r.text, name
        assert e["message"], name
    r = requests.post(d.admin_url("/admin/v1/issuers"), verify=d.cert,
                      headers={"Authorization": f"Bearer {d.admin_token}"},
                      data=b"{not json", timeout=HTTP_TIMEOUT)
    assert_error(r, 400)
    after = d.aget("/admin/v1/issuers?limit=1000").json()["data"]
    assert after == before


def test_admin_routes_need_admin(d, iss):
    for method, path in (("GET", "/admin/v1/issuers"),
                         ("POST", "/admin/v1/issuers"),
                         ("DELETE",
                          f"/admin/v1/issuers/{iss.row['HS256']['id']}")):
        r = requests.request(method, d.admin_url(path), verify=d.cert,
                             json={}, timeout=HTTP_TIMEOUT)
        assert_error(r, 401)
        # nor is a valid tenant JWT an admin credential
        r = requests.request(method, d.admin_url(path), verify=d.cert,
                             json={}, timeout=HTTP_TIMEOUT, headers={
                                 "Authorization": f"Bearer {iss.token()}"})
        assert_error(r, 401)
    accepted(d, iss.token())


def test_duplicate_and_unknown(d, keys, iss):
    body = {"kid": iss.kid["HS256"], "alg": "HS256", "key": keys.hs,
            "iss": ISS, "aud": AUD, "tenant_claim": "tenant"}
    assert_error(d.apost("/admin/v1/issuers", body), 409)
    assert_error(d.aget("/admin/v1/issuers/iss_000000000000000000000000"),
                 404)
    assert_error(d.adelete("/admin/v1/issuers/iss_000000000000000000000000"),
                 404)
    assert_error(d.aget("/admin/v1/issuers/" + "x" * 200), 404)
    r = d.admin.put(d.admin_url("/admin/v1/issuers"), json={},
                    timeout=HTTP_TIMEOUT)
    assert_error(r, 405)
    assert r.headers.get("Allow") == "GET, POST", dict(r.headers)
    one = f"/admin/v1/issuers/{iss.row['ES256']['id']}"
    r = d.admin.post(d.admin_url(one), json={}, timeout=HTTP_TIMEOUT)
    assert_error(r, 405)
    assert r.headers.get("Allow") == "GET, DELETE", dict(r.headers)


# --- accepted tokens ---------------------------------------------------------

@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_valid_tokens(d, iss, alg):
    accepted(d, iss.token(alg))
    # aud as an array holding ours; nbf and exp inside the skew
    now = int(time.time())
    accepted(d, iss.token(alg, aud=["other", AUD]))
    accepted(d, iss.token(alg, nbf=now + 30))
    accepted(d, iss.token(alg, exp=now - 30))
    # the scheme is case-insensitive, like for API keys
    r = requests.get(d.url("/v2/models/nope"), verify=d.cert,
                     headers={"Authorization": f"bearer {iss.token(alg)}"},
                     timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, r.text


def test_pyjwt_tokens(d, keys, iss):
    """Tokens of an ordinary library are accepted as they come."""
    for alg in ("HS256", "RS256", "ES256"):
        t = pyjwt.encode(iss.claims(alg), iss.key[alg], algorithm=alg,
                         headers={"kid": iss.kid[alg]})
        accepted(d, t)


def test_usage_row_names_the_issuer(d, iss):
    for alg in ("HS256", "ES256"):
        s = d.tenant(iss.token(alg))
        r = infer(s, d, "m", [tensor("input", X)])
        assert r.status_code == 200, r.text
        rid = r.headers["x-request-id"]
        rows = request_ids_in_db(d, [rid])
        assert rid in rows, rows
        assert rows[rid]["tenant_id"] == iss.tenant
        assert rows[rid]["key_id"] == f"jwt:{iss.row[alg]['id']}"
        assert rows[rid]["status"] == 200


def test_api_keys_still_work(d, iss):
    k = create_key(d, iss.tenant)
    r = requests.get(d.url("/v2/models/nope"), verify=d.cert,
                     headers={"Authorization": f"Bearer {k['key']}"},
                     timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, r.text


# --- the attack catalogue ----------------------------------------------------

@pytest.mark.parametrize("spelling", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_alg_none(d, iss, alg, spelling):
    h = iss.header(alg, alg=spelling)
    si = signing_input(h, iss.claims(alg))
    refused(d, si + ".")
    refused(d, si)
    refused(d, si + "." + b64u(b"\0" * 32))
    # and a "none" header over a real signature of the key
    refused(d, si + "." + b64u(sign(alg, iss.key[alg], si)))


@pytest.mark.parametrize("victim", ["RS256", "ES256"])
def test_hs256_with_public_key_as_secret(d, keys, iss, victim):
    pem = pem_public(iss.key[victim])
    for secret in (pem, pem.strip(), pem.encode()):
        refused(d, token("HS256", secret, iss.header(victim, alg="HS256"),
                         iss.claims(victim)))


def test_algorithm_substitution(d, iss):
    # RSA signature on the EC issuer's kid, and the reverse
    refused(d, token("RS256", iss.keys.rsa, iss.header("ES256"),
                     iss.claims("ES256")))
    refused(d, token("ES256", iss.keys.ec, iss.header("RS256"),
                     iss.claims("RS256")))
    # an alg the key was not pinned to, signed "correctly" for it
    for alg in ("HS384", "HS512", "PS256", "RS512", "ES384", "EdDSA"):
        si = signing_input(iss.header("HS256", alg=alg), iss.claims())
        refused(d, si + "." + b64u(sign("HS256", iss.keys.hs, si)))


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_stripped_and_tampered_signature(d, iss, alg):
    t = iss.token(alg)
    si, sig = t.rsplit(".", 1)
    refused(d, si + ".")
    refused(d, si)
    refused(d, si + "." + sig[:-4])
    refused(d, si + "." + sig + "==")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 1
    refused(d, si + "." + b64u(bytes(raw)))
    # the claims changed after signing: another tenant
    other = signing_input(iss.header(alg),
                          iss.claims(alg, tenant_id="ten_" + "0" * 24))
    refused(d, other + "." + sig)
    accepted(d, t)


def test_es256_psychic_signatures(d, iss):
    si = signing_input(iss.header("ES256"), iss.claims("ES256"))
    good = sign("ES256", iss.keys.ec, si)
    r, s = good[:32], good[32:]
    zero = b"\0" * 32
    n = P256_N.to_bytes(32, "big")
    for sig in (zero + zero, zero + s, r + zero, n + s, r + n, n + n,
                b"\xff" * 64, good[:63], good + b"\0",
                encode_dss_signature(int.from_bytes(r, "big"),
                                     int.from_bytes(s, "big"))):
        refused(d, si + "." + b64u(sig))
    accepted(d, si + "." + b64u(good))


@pytest.mark.parametrize("case", [
    "expired", "expired-long-ago", "no-exp", "exp-string", "exp-float",
    "exp-null", "nbf-future", "nbf-string", "wrong-iss", "no-iss",
    "wrong-aud", "aud-array-without-ours", "no-aud", "no-tenant",
    "unknown-tenant", "tenant-not-string"])
def test_bad_claims(d, iss, case):
    now = int(time.time())
    over = {
        "expired": {"exp": now - 120},
        "expired-long-ago": {"exp": 1},
        "no-exp": {"exp": None},
        "exp-string": {"exp": str(now + 300)},
        "exp-float": {"exp": now + 300.5},
        "exp-null": {"exp": None, "nbf": None},
        "nbf-future": {"nbf": now + 600},
        "nbf-string": {"nbf": str(now - 10)},
        "wrong-iss": {"iss": "https://evil.example.com"},
        "no-iss": {"iss": None},
        "wrong-aud": {"aud": "other-api"},
        "aud-array-without-ours": {"aud": ["a", "b"]},
        "no-aud": {"aud": None},
        "no-tenant": {"tenant": None},
        "unknown-tenant": {"tenant": "ten_" + "f" * 24},
        "tenant-not-string": {"tenant": 12},
    }[case]
    for alg in ("HS256", "RS256"):
        claims = iss.claims(alg, **over)
        if case == "exp-null":
            claims["exp"] = None
        refused(d, token(alg, iss.key[alg], iss.header(alg), claims))


def test_exp_as_float_string_is_not_an_integer(d, iss):
    # "exp": 1e10 and "exp": "9999999999" would pass a lax verifier
    for raw in ('1e10', '"9999999999"', '9999999999.0', 'true',
                '[9999999999]'):
        body = (f'{{"tenant":"{iss.tenant}","iss":"{ISS}","aud":"{AUD}",'
                f'"exp":{raw}}}')
        refused(d, token("HS256", iss.keys.hs, iss.header(), body))
    body = (f'{{"tenant":"{iss.tenant}","iss":"{ISS}","aud":"{AUD}",'
            f'"exp":{int(time.time()) + 300},"exp":1}}')
    refused(d, token("HS256", iss.keys.hs, iss.header(), body))


@pytest.mark.parametrize("kid", [
    "unknown-kid", "../../../../dev/null", "../../../../etc/passwd",
    "/dev/null", "file:///dev/null", "", None, "HS-UPPER"])
def test_unknown_kid(d, iss, kid):
    h = iss.header()
    if kid is None:
        del h["kid"]
    else:
        h["kid"] = kid
    refused(d, token("HS256", iss.keys.hs, h, iss.claims()))
    # the same with the secret a traversal would point at: empty
    refused(d, token("HS256", b"", h, iss.claims()))


@pytest.mark.parametrize("param,value", [
    ("jku", "https://evil.example/jwks.json"),
    ("x5u", "https://evil.example/cert.pem"),
    ("jwk", {"kty": "oct", "k": "AAAA"}),
    ("x5c", ["MIIB"]),
    ("crit", ["exp"]),
    ("enc", "A128GCM"),
])
def test_forbidden_header_parameters(d, iss, param, value):
    for alg in ("HS256", "ES256"):
        h = iss.header(alg)
        h[param] = value
        refused(d, token(alg, iss.key[alg], h, iss.claims(alg)))


def test_duplicate_header_keys(d, iss):
    h = f'{{"alg":"HS256","kid":"{iss.kid["HS256"]}","alg":"none"}}'
    refused(d, token("HS256", iss.keys.hs, h, iss.claims()))


def test_malformed_tokens(d, iss):
    good = iss.token()
    for t in ("a.b.c", "..", "a..c", "e30.e30.e30", good + ".x",
              good.replace(".", ".."), good[:20] + " " + good[20:],
              good[:20] + "\t" + good[20:], "x" * 100,
              good.replace("-", "+").replace("_", "/") + "+/",
              ".".join(good.split(".") + ["x", "y"])):
        refused(d, t)


def test_oversized_tokens(d, iss):
    # just over the 8 KiB Authorization cap: refused by maasd itself
    pad = "p" * 9000
    t = iss.token(pad=pad)
    assert len(t) > 8192
    refused(d, t)
    # a big but well-formed payload under the cap is refused by its own
    # segment cap (5 KiB of claims)
    t = iss.token(pad="p" * 5500)
    assert len(t) < 8192
    refused(d, t)
    # 12 MiB: evhttp's header limit answers before maasd sees it, or
    # drops the connection; either way maasd stays up
    big = "A" * (12 << 20) + "." + "A" * 8 + "." + "A" * 8
    try:
        r = requests.get(d.url("/v2/models/nope"), verify=d.cert,
                         headers={"Authorization": f"Bearer {big}"},
                         timeout=HTTP_TIMEOUT)
        assert r.status_code in (400, 401, 413, 431), r.status_code
    except requests.ConnectionError:
        pass
    assert d.running()
    r = requests.get(d.url("/healthz"), verify=d.cert, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200
    accepted(d, iss.token())


def test_suspended_tenant(d, keys, iss):
    """No admin route suspends a tenant yet: the row is updated the way an
    operator's sqlite3 shell would (db_tenant_set_status is covered by the
    unit tests).  Status is read per request, so it takes effect at once."""
    t = create_tenant(d)["id"]
    tok = iss.token("RS256", tenant_id=t)
    accepted(d, tok)

    def set_status(status):
        con = sqlite3.connect(str(d.db_path), timeout=10 * SCALE)
        try:
            con.execute("UPDATE tenants SET status = ? WHERE id = ?",
                        (status, t))
            con.commit()
        finally:
            con.close()
    set_status("suspended")
    e = refused(d, tok)
    assert "suspended" in e["message"]
    refused(d, iss.token("ES256", tenant_id=t))
    set_status("active")
    accepted(d, tok)


def test_deleted_issuer_stops_at_once(d, keys):
    t = create_tenant(d)["id"]
    kid = unique("del")
    r = d.apost("/admin/v1/issuers", {
        "kid": kid, "alg": "ES256", "key": pem_public(keys.ec), "iss": ISS,
        "aud": AUD, "tenant_claim": "tenant"})
    assert r.status_code == 201, r.text
    row = r.json()
    claims = {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 300,
              "tenant": t}
    tok = token("ES256", keys.ec, {"alg": "ES256", "kid": kid}, claims)
    # on one keep-alive session, as a client would
    s = d.tenant(tok)
    assert s.get(d.url("/v2/models/nope"),
                 timeout=HTTP_TIMEOUT).status_code == 404
    r = d.adelete(f"/admin/v1/issuers/{row['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] is True and r.json()["deleted_at"]
    assert "key" not in r.json()
    assert_error(s.get(d.url("/v2/models/nope"), timeout=HTTP_TIMEOUT), 401)
    refused(d, tok)
    # gone from the list, still readable by id, audited once
    ids = [x["id"] for x in
           d.aget("/admin/v1/issuers?limit=1000").json()["data"]]
    assert row["id"] not in ids
    assert d.aget(f"/admin/v1/issuers/{row['id']}").json()["deleted_at"]
    assert d.adelete(f"/admin/v1/issuers/{row['id']}").status_code == 200
    acts = [(a["action"], a["target"]) for a in
            d.aget("/admin/v1/audit?limit=1000").json()["data"]]
    assert acts.count(("issuer.delete", row["id"])) == 1
    # its kid cannot come back with another key
    r = d.apost("/admin/v1/issuers", {
        "kid": kid, "alg": "HS256", "key": keys.hs, "iss": ISS, "aud": AUD,
        "tenant_claim": "tenant"})
    assert_error(r, 409)
    refused(d, token("HS256", keys.hs, {"alg": "HS256", "kid": kid}, claims))


def test_issuer_bound_to_a_tenant(d, keys):
    """An issuer registered with tenant_id (one customer's identity
    provider) signs in that tenant only: a token of its naming another
    tenant is refused with 401, while an unbound issuer may name any; a
    binding to a tenant that does not exist is refused at registration."""
    a, b = create_tenant(d)["id"], create_tenant(d)["id"]
    kid = unique("bound")
    r = d.apost("/admin/v1/issuers", {
        "kid": kid, "alg": "ES256", "key": pem_public(keys.ec), "iss": ISS,
        "aud": AUD, "tenant_claim": "tenant", "tenant_id": a})
    assert r.status_code == 201, r.text
    assert r.json()["tenant_id"] == a and "key" not in r.json()
    assert d.aget(f"/admin/v1/issuers/{r.json()['id']}").json()[
        "tenant_id"] == a

    def tok(tenant):
        return token("ES256", keys.ec, {"alg": "ES256", "kid": kid},
                     {"iss": ISS, "aud": AUD, "tenant": tenant,
                      "exp": int(time.time()) + 300})
    accepted(d, tok(a))
    e = refused(d, tok(b))
    assert b not in e["message"]
    refused(d, tok("ten_" + "0" * 24))
    # audited with its binding
    audit = [x for x in d.aget("/admin/v1/audit?limit=1000").json()["data"]
             if x["action"] == "issuer.create" and
             x["target"] == r.json()["id"]]
    assert len(audit) == 1 and audit[0]["detail"]["tenant_id"] == a, audit
    for bad in ("ten_" + "f" * 24, "a b", "", "x" * 200):
        r = d.apost("/admin/v1/issuers", {
            "kid": unique("bad"), "alg": "HS256", "key": keys.hs,
            "iss": ISS, "aud": AUD, "tenant_id": bad})
        e = assert_error(r, 400)
        assert e["param"] == "tenant_id", e


def test_issuers_survive_restart(tmp_path, keys):
    """The keyring is rebuilt from SQLite at start: a live issuer still
    verifies, a deleted one still does not, a bound one is still bound."""
    with running_maasd(tmp_path) as d:
        t = create_tenant(d)["id"]
        other = create_tenant(d)["id"]
        ids = {}
        for kid in ("keep", "drop", "bound"):
            body = {"kid": kid, "alg": "RS256", "key": pem_public(keys.rsa),
                    "iss": ISS, "aud": AUD, "tenant_claim": "sub"}
            if kid == "bound":
                body["tenant_id"] = t
            r = d.apost("/admin/v1/issuers", body)
            assert r.status_code == 201, r.text
            ids[kid] = r.json()["id"]
        claims = {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 600,
                  "sub": t}

        def tok(kid, sub=t):
            return token("RS256", keys.rsa, {"alg": "RS256", "kid": kid},
                         dict(claims, sub=sub))
        keep, drop = tok("keep"), tok("drop")
        accepted(d, keep)
        accepted(d, drop)
        accepted(d, tok("bound"))
        refused(d, tok("bound", other))
        assert d.adelete(f"/admin/v1/issuers/{ids['drop']}") \
            .status_code == 200
        assert d.stop() == 0
        d.start()
        accepted(d, keep)
        refused(d, drop)
        accepted(d, tok("bound"))
        refused(d, tok("bound", other))
        accepted(d, tok("keep", other))
