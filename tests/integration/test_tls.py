"""TLS on the tenant port: TLS 1.2 and 1.3 only, AEAD ECDHE suites for 1.2,
the X25519/P-256/P-384 groups, a connection that never sends a ClientHello
is closed, and testssl.sh (when installed) finds nothing HIGH or CRITICAL
beyond what a self-signed certificate implies.

Two checks need a change in gateway/tls.c (owned by the lead; see the
guard report): with an RSA certificate the DHE-RSA suites of Mozilla's
intermediate list are negotiable, and no server cipher order is set, which
testssl rates HIGH.  They are strict xfails: once tls.c is fixed they pass,
pytest reports XPASS as a failure, and the marker must go."""
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
import warnings

import pytest

from conftest import SCALE
from test_http_hardening import guarded_maasd

HANDSHAKE_S = 1.0
GUARD = "handshake_ms=1000,head_ms=4000,idle_ms=5000,linger_ms=300"
AEAD_ECDHE = re.compile(r"^ECDHE-(ECDSA|RSA)-(AES128-GCM-SHA256|"
                        r"AES256-GCM-SHA384|CHACHA20-POLY1305)$")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with guarded_maasd(tmp_path_factory.mktemp("tls"), GUARD) as d:
        yield d


@pytest.fixture(scope="module")
def d_rsa(tmp_path_factory):
    """maasd with an RSA certificate, placed where maasd looks for its own:
    RSA suites become negotiable, and in TLS 1.2 the groups no longer
    depend on the certificate's curve."""
    base = tmp_path_factory.mktemp("tls-rsa")
    tls = base / "data" / "tls"
    tls.mkdir(parents=True, mode=0o700)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(tls / "key.pem"), "-out",
                    str(tls / "cert.pem"), "-days", "2", "-subj",
                    "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    with guarded_maasd(base, GUARD) as d:
        yield d


def _ctx(minv, maxv, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = minv
        ctx.maximum_version = maxv
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def handshake(port, ctx):
    """(version, cipher) or raises ssl.SSLError / OSError."""
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=5 * SCALE) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.version(), s.cipher()[0]


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_modern_versions_work(d, version):
    v = getattr(ssl.TLSVersion, version)
    ctx = ssl.create_default_context(cafile=d.cert)
    ctx.minimum_version = ctx.maximum_version = v
    with socket.create_connection(("127.0.0.1", d.port),
                                  timeout=5 * SCALE) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == version.replace("_", ".")
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                      b"Connection: close\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_versions_refused(d, version):
    v = getattr(ssl.TLSVersion, version)
    # SECLEVEL=0 lets this client offer them; the server must say no.
    ctx = _ctx(v, v, "DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError) as e:
        handshake(d.port, ctx)
    assert "PROTOCOL_VERSION" in str(e.value).upper(), e.value


def _tls12_suites():
    ctx = _ctx(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2,
               "ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    names = {c["name"] for c in ctx.get_ciphers()
             if c["protocol"] != "TLSv1.3"}
    assert len(names) > 30, names       # the probe really probes
    return sorted(names)


def _accepted_tls12(port):
    ok = []
    for name in _tls12_suites():
        ctx = _ctx(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2,
                   name + ":@SECLEVEL=0")
        try:
            version, cipher = handshake(port, ctx)
        except (ssl.SSLError, OSError):
            continue
        assert version == "TLSv1.2"
        ok.append(cipher)
    return ok


def test_tls12_suites_are_aead_ecdhe(d):
    ok = _accepted_tls12(d.port)
    assert ok, "no TLS 1.2 suite accepted"
    bad = [c for c in ok if not AEAD_ECDHE.match(c)]
    assert not bad, f"non-AEAD-ECDHE suites accepted: {bad}"


def test_tls12_suites_are_aead_ecdhe_with_rsa_cert(d_rsa):
    ok = _accepted_tls12(d_rsa.port)
    assert any(c.startswith("ECDHE-RSA-") for c in ok), ok
    bad = [c for c in ok if not AEAD_ECDHE.match(c)]
    assert not bad, f"non-AEAD-ECDHE suites accepted: {bad}"


def _s_client(port, *args):
    r = subprocess.run(["openssl", "s_client", "-connect",
                        f"127.0.0.1:{port}", "-servername", "localhost",
                        *args], input=b"", capture_output=True,
                       timeout=20 * SCALE)
    return r.returncode, r.stdout.decode(errors="replace") + \
        r.stderr.decode(errors="replace")


def _temp_key(out):
    m = re.search(r"Server Temp Key: ([^\n]+)", out)
    assert m, out[-1500:]
    return m.group(1)


GROUPS = [("X25519", "X25519"), ("P-256", "prime256v1"),
          ("P-384", "secp384r1")]


@pytest.mark.parametrize("group,name", GROUPS)
def test_groups_offered_tls13(d, group, name):
    rc, out = _s_client(d.port, "-tls1_3", "-groups", group)
    assert rc == 0, out[-1500:]
    assert name in _temp_key(out)


@pytest.mark.parametrize("group,name", GROUPS)
def test_groups_offered_tls12(d_rsa, group, name):
    rc, out = _s_client(d_rsa.port, "-tls1_2", "-cipher", "ECDHE",
                        "-groups", group)
    assert rc == 0, out[-1500:]
    assert name in _temp_key(out)


@pytest.mark.parametrize("group", ["P-521", "X448", "ffdhe2048"])
def test_other_groups_refused_tls13(d, group):
    rc, out = _s_client(d.port, "-tls1_3", "-groups", group)
    assert rc != 0 and "Server Temp Key" not in out, out[-1500:]


@pytest.mark.parametrize("group", ["P-521", "X448"])
def test_other_groups_refused_tls12(d_rsa, group):
    rc, out = _s_client(d_rsa.port, "-tls1_2", "-cipher", "ECDHE",
                        "-groups", group)
    assert rc != 0 and "Server Temp Key" not in out, out[-1500:]


@pytest.mark.parametrize("send", [b"", b"\x16\x03\x01\x02\x00\x01"],
                         ids=["nothing", "partial-clienthello"])
def test_no_clienthello_is_closed(d, send):
    with socket.create_connection(("127.0.0.1", d.port),
                                  timeout=5 * SCALE) as s:
        t0 = time.monotonic()
        if send:
            s.sendall(send)
        s.settimeout(HANDSHAKE_S + 3 * SCALE)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - t0
    assert data == b"", data
    # the head deadline here is 4 s: this is the handshake deadline
    assert HANDSHAKE_S - 0.3 <= elapsed <= HANDSHAKE_S + 1.5 * SCALE, \
        elapsed


# --- testssl.sh --------------------------------------------------------------

# About the self-signed certificate: no trust chain, and no CRL or OCSP URI
# (only a CA could provide them).
CERT_EXEMPT = {"cert_chain_of_trust", "cert_revocation"}


@pytest.fixture(scope="module")
def testssl(tmp_path_factory):
    exe = shutil.which("testssl") or shutil.which("testssl.sh")
    if exe is None:
        pytest.skip("testssl.sh is not installed (apt-get install "
                    "testssl.sh)")
    # The default deadlines: the short ones above slow testssl down.
    with guarded_maasd(tmp_path_factory.mktemp("testssl-d"), "") as d:
        return _run_testssl(exe, d, tmp_path_factory)


def _run_testssl(exe, d, tmp_path_factory):
    out = tmp_path_factory.mktemp("testssl") / "out.json"
    # Everything but client simulation, which alone takes minutes.
    cmd = [exe, "-p", "-s", "-f", "-P", "-S", "-U", "-h", "--jsonfile",
           str(out), "--warnings", "off", "--color", "0", "--quiet",
           f"127.0.0.1:{d.port}"]
    r = subprocess.run(cmd, capture_output=True, timeout=150 * SCALE)
    assert out.exists(), r.stdout.decode(errors="replace")[-3000:]
    findings = json.loads(out.read_text())
    assert any(f["id"] == "TLS1_3" for f in findings), "no protocol scan"
    return findings


def _serious(findings):
    return [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]


def test_testssl_no_high_or_critical_findings(testssl):
    bad = [f for f in _serious(testssl)
           if f["id"] not in CERT_EXEMPT and f["id"] != "cipher_order"]
    assert not bad, json.dumps(bad, indent=1)


def test_testssl_cipher_order(testssl):
    bad = [f for f in _serious(testssl) if f["id"] == "cipher_order"]
    assert not bad, json.dumps(bad, indent=1)


def test_testssl_protocols(testssl):
    by_id = {f["id"]: f["finding"] for f in testssl}
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert by_id.get(old, "").startswith("not offered"), (old, by_id)
    assert by_id.get("TLS1_2", "").startswith("offered"), by_id
    assert by_id.get("TLS1_3", "").startswith("offered"), by_id
