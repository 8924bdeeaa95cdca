"""The web console's server side on the admin port (admin/console.c):
static assets with strict headers and no way out of web/, login with the
admin token into a session cookie (HttpOnly, Secure, SameSite=Strict),
the admin API accepting that cookie, CSRF refusals of cookie-only changes,
logout.  The browser side is tests/e2e/console (Playwright)."""
import re
import time

import pytest
import requests

from conftest import HTTP_TIMEOUT, running_maasd, _session


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    # No --web-dir: maasd finds the repository's web/ next to its binary.
    with running_maasd(tmp_path_factory.mktemp("console")) as d:
        yield d


def anon(d):
    return _session(d.cert)


def login(d, token=None):
    """A requests session logged in through the form; its cookie and the
    raw Set-Cookie header."""
    s = anon(d)
    tok = d.admin_token if token is None else token
    r = s.post(d.admin_url("/login"), data={"token": tok},
               allow_redirects=False, timeout=HTTP_TIMEOUT)
    return s, r


def csrf(d, s):
    r = s.get(d.admin_url("/session"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


def test_assets_and_headers(d):
    s = anon(d)
    for path, ctype in (("/", "text/html"), ("/login.html", "text/html"),
                        ("/js/app.js", "text/javascript"),
                        ("/app.css", "text/css")):
        r = s.get(d.admin_url(path), timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, path
        assert r.headers["Content-Type"].startswith(ctype)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
    r = s.head(d.admin_url("/"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.content == b""
    assert s.put(d.admin_url("/"), timeout=HTTP_TIMEOUT).status_code == 405


@pytest.mark.parametrize("path", [
    "/%2e%2e/%2e%2e/etc/passwd", "/js/%2e%2e/%2e%2e/data/admin.token",
    "/.hidden", "/js/.x.js", "/index.html%00.js", "/nope.html",
    "/a/b/c/d/e/f.js", "/js/app.js%2f..", "/data/maas.db",
])
def test_no_traversal(d, path):
    # Raw path, as sent: requests would normalize "..".
    r = requests.Request("GET", d.admin_url(path)).prepare()
    r.url = d.admin_url(path)
    resp = anon(d).send(r, timeout=HTTP_TIMEOUT)
    assert resp.status_code in (400, 404), path
    assert "error" in resp.json()


def test_login_wrong_token(d):
    for tok in ("maas_admin_" + "0" * 48, "", "x" * 500,
                d.admin_token + "0", d.admin_token[:-1]):
        s, r = login(d, tok)
        assert r.status_code == 303
        assert r.headers["Location"] == "/login.html#failed"
        assert "Set-Cookie" not in r.headers
    s, r = login(d, "x" * 5000)
    assert r.status_code == 413 and "Set-Cookie" not in r.headers
    # Not a form: refused before looking at it.
    r = anon(d).post(d.admin_url("/login"), json={"token": d.admin_token},
                     allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert r.status_code == 415
    r = anon(d).get(d.admin_url("/login"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 405
    # From another origin: refused even with the right token.
    r = anon(d).post(d.admin_url("/login"), data={"token": d.admin_token},
                     headers={"Origin": "https://evil.example"},
                     allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert r.status_code == 403 and "Set-Cookie" not in r.headers


def test_login_cookie_flags(d):
    s, r = login(d)
    assert r.status_code == 303 and r.headers["Location"] == "/"
    set_cookie = r.headers["Set-Cookie"]
    m = re.match(r"maas_session=([0-9a-f]{64});", set_cookie)
    assert m, set_cookie
    attrs = {a.strip().split("=")[0].lower() for a in set_cookie.split(";")}
    assert {"httponly", "secure", "path", "max-age", "samesite"} <= attrs
    assert "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
    # 256 random bits: two logins never share a session.
    _, r2 = login(d)
    assert r2.headers["Set-Cookie"][:77] != set_cookie[:77]
    # The token and the session id stay out of the log.
    assert d.admin_token not in d.log()
    assert m.group(1) not in d.log()


def test_cookie_reads_and_csrf(d):
    s, _ = login(d)
    r = s.get(d.admin_url("/admin/v1/tenants"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200
    assert s.get(d.admin_url("/metrics"), timeout=HTTP_TIMEOUT) \
        .status_code == 200
    # Cookie-only changes: 403, nothing created.
    r = s.post(d.admin_url("/admin/v1/tenants"), json={"name": "csrf1"},
               timeout=HTTP_TIMEOUT)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "csrf_token_invalid"
    r = s.post(d.admin_url("/admin/v1/tenants"), json={"name": "csrf1"},
               headers={"X-CSRF-Token": "0" * 64}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 403
    tok = csrf(d, s)
    r = s.post(d.admin_url("/admin/v1/tenants"), json={"name": "csrf1"},
               headers={"X-CSRF-Token": tok,
                        "Origin": "https://evil.example"},
               timeout=HTTP_TIMEOUT)
    assert r.status_code == 403
    r = s.post(d.admin_url("/admin/v1/tenants"), json={"name": "csrf1"},
               headers={"X-CSRF-Token": tok,
                        "Sec-Fetch-Site": "cross-site"},
               timeout=HTTP_TIMEOUT)
    assert r.status_code == 403
    names = [t["name"] for t in
             d.aget("/admin/v1/tenants?limit=1000").json()["data"]]
    assert "csrf1" not in names
    # Another session's token does not fit this one.
    s2, _ = login(d)
    r = s.post(d.admin_url("/admin/v1/tenants"), json={"name": "csrf1"},
               headers={"X-CSRF-Token": csrf(d, s2)}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 403
    # The right token, same origin: the change is made.
    r = s.post(d.admin_url("/admin/v1/tenants"), json={"name": "csrf1"},
               headers={"X-CSRF-Token": tok,
                        "Origin": d.admin_url("")}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 201, r.text
    # The bearer token still works alone, and wins over a bad cookie.
    r = d.admin.get(d.admin_url("/admin/v1/tenants"),
                    cookies={"maas_session": "f" * 64}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200


def test_audit_names_the_console(d):
    """A change made through a console session is audited as "console",
    one made with the bearer token as "admin"."""
    s, _ = login(d)
    hdr = {"X-CSRF-Token": csrf(d, s), "Origin": d.admin_url("")}
    name = f"viaconsole{time.monotonic_ns()}"
    r = s.post(d.admin_url("/admin/v1/tenants"), json={"name": name},
               headers=hdr, timeout=HTTP_TIMEOUT)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    r = s.put(d.admin_url(f"/admin/v1/tenants/{tid}/quota"),
              json={"requests_per_minute": 9}, headers=hdr,
              timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert d.apost(f"/admin/v1/tenants/{tid}/suspend").status_code == 200
    rows = d.aget(f"/admin/v1/audit?target={tid}").json()["data"]
    assert [(a["action"], a["actor"]) for a in rows] == [
        ("tenant.create", "console"), ("quota.put", "console"),
        ("tenant.status", "admin")], rows
    mine = d.aget(f"/admin/v1/audit?target={tid}&actor=console").json()
    assert len(mine["data"]) == 2


def test_bad_cookies(d):
    for v in ("", "zz", "f" * 64, "0" * 63, "A" * 64, "f" * 4000):
        r = anon(d).get(d.admin_url("/admin/v1/tenants"),
                        cookies={"maas_session": v}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 401, v
        assert r.json()["error"]["code"] == "session_expired"
    r = anon(d).get(d.admin_url("/session"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 401


def test_logout(d):
    s, _ = login(d)
    tok = csrf(d, s)
    r = s.post(d.admin_url("/logout"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 403
    r = s.post(d.admin_url("/logout"), headers={"X-CSRF-Token": tok},
               timeout=HTTP_TIMEOUT)
    assert r.status_code == 200
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    # The server forgot it: the old cookie is refused.
    s, _ = login(d)
    cookie = s.cookies.get("maas_session")
    s.post(d.admin_url("/logout"), headers={"X-CSRF-Token": csrf(d, s)},
           timeout=HTTP_TIMEOUT)
    r = anon(d).get(d.admin_url("/admin/v1/tenants"),
                    cookies={"maas_session": cookie}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 401


def test_session_table_is_bounded(d):
    # More logins than the table holds: the oldest sessions go, the
    # newest work, and maasd stays healthy.
    cookies = []
    for _ in range(260):
        s, r = login(d)
        assert r.status_code == 303
        cookies.append(s.cookies.get("maas_session"))
    first = anon(d).get(d.admin_url("/session"),
                        cookies={"maas_session": cookies[0]},
                        timeout=HTTP_TIMEOUT)
    last = anon(d).get(d.admin_url("/session"),
                       cookies={"maas_session": cookies[-1]},
                       timeout=HTTP_TIMEOUT)
    assert first.status_code == 401
    assert last.status_code == 200


def _expiring(maasd_factory, monkeypatch, idle, ttl):
    monkeypatch.setenv("MAAS_CONSOLE_IDLE_S", str(idle))
    monkeypatch.setenv("MAAS_CONSOLE_TTL_S", str(ttl))
    return maasd_factory()


def test_session_idle_expiry(maasd_factory, monkeypatch):
    d = _expiring(maasd_factory, monkeypatch, 5, 3600)
    s, r = login(d)
    assert "Max-Age=3600" in r.headers["Set-Cookie"]
    assert s.get(d.admin_url("/admin/v1/tenants"),
                 timeout=HTTP_TIMEOUT).status_code == 200
    time.sleep(6)
    r = s.get(d.admin_url("/admin/v1/tenants"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "session_expired"


def test_session_lifetime_expiry(maasd_factory, monkeypatch):
    # Used every second, the session still ends at its lifetime.
    d = _expiring(maasd_factory, monkeypatch, 3600, 5)
    s, r = login(d)
    assert "Max-Age=5" in r.headers["Set-Cookie"]
    # The cookie is sent by hand: a client keeping it past Max-Age must
    # still be refused by the server.
    cookie = {"Cookie": f"maas_session={s.cookies.get('maas_session')}"}
    start = time.monotonic()
    codes = []
    while time.monotonic() - start < 7:
        codes.append(anon(d).get(d.admin_url("/session"), headers=cookie,
                                 timeout=HTTP_TIMEOUT).status_code)
        time.sleep(1)
    assert codes[-1] == 401
    assert set(codes) <= {200, 401}
    # once ended, it never comes back
    assert codes == sorted(codes)
