"""The request-framing guard (gateway/guard.c) in front of evhttp: malformed
and smuggling requests get a JSON 4xx, the connection closes, and the
request hidden behind them is never dispatched; limits answer 413/414/431
before the body is read; a slow head and an idle keep-alive connection are
closed on time; connection caps hold per address and in total; and good
requests, keep-alive, pipelining, chunked bodies and 100-continue still work.

Smuggled requests are admin calls that create a tenant, sent on the admin
port after the malformed one: if the tenant exists afterwards, a request
got through.  Deadlines are shortened with MAAS_GUARD."""
import contextlib
import json
import os
import socket
import ssl
import time
from pathlib import Path

import pytest
import requests

from conftest import RUNTIME, SCALE, Maasd, unique

GUARD = "head_ms=1500,idle_ms=3000,handshake_ms=1500,linger_ms=300"
HEAD_S, IDLE_S = 1.5, 3.0
SLACK = 1.5 * SCALE


@contextlib.contextmanager
def guarded_maasd(base, guard, args=(), label="maasd"):
    """maasd with MAAS_GUARD set; only maasd itself is needed."""
    extra = [] if os.access(RUNTIME, os.X_OK) else ["--runtime", "/bin/true"]
    d = Maasd(Path(base) / "data", Path(base), args=list(args) + extra,
              label=label)
    old = os.environ.get("MAAS_GUARD")
    os.environ["MAAS_GUARD"] = guard
    try:
        d.start()
    finally:
        if old is None:
            del os.environ["MAAS_GUARD"]
        else:
            os.environ["MAAS_GUARD"] = old
    try:
        yield d
    finally:
        d.shutdown()


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with guarded_maasd(tmp_path_factory.mktemp("hardening"), GUARD,
                       args=["--max-body-mb", "1"]) as d:
        yield d


# --- raw TLS ----------------------------------------------------------------

def connect(d, port=None, src=None, timeout=None):
    ctx = ssl.create_default_context(cafile=d.cert)
    raw = socket.create_connection(
        ("127.0.0.1", port or d.port), timeout=timeout or 10 * SCALE,
        source_address=(src, 0) if src else None)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def read_until_close(s, timeout):
    """Everything the server sends until it closes: (bytes, closed)."""
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return out, True
            out += b
    except socket.timeout:
        return out, False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return out, True


def parse_responses(data):
    """[(status, headers, body)] of Content-Length-framed responses (or
    one close-delimited last response)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:300]!r}"
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        assert parts[0] in (b"HTTP/1.1", b"HTTP/1.0"), lines[0]
        status = int(parts[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        if status == 100:
            out.append((status, headers, b""))
            data = rest
            continue
        if "content-length" not in headers:     # HTTP/1.0: until close
            out.append((status, headers, rest))
            break
        n = int(headers["content-length"])
        assert len(rest) >= n, f"truncated body: {rest!r}"
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


def exchange(d, payload, port=None, timeout=None):
    """Sends payload on a fresh connection; returns (responses, closed)."""
    with contextlib.closing(connect(d, port)) as s:
        s.sendall(payload)
        data, closed = read_until_close(s, timeout or 5 * SCALE)
    return parse_responses(data), closed


def assert_json_error(status, headers, body, want):
    assert status == want, (status, body)
    assert headers.get("content-type") == "application/json", headers
    assert headers.get("x-request-id", "").startswith("req_"), headers
    assert headers.get("connection", "").lower() == "close", headers
    e = json.loads(body)["error"]
    for k in ("message", "type", "param", "code"):
        assert k in e, body
    assert isinstance(e["message"], str) and e["message"], body
    return e


def tenant_names(d):
    r = d.aget("/admin/v1/tenants?limit=100")
    assert r.status_code == 200, r.text
    return {t["name"] for t in r.json()["data"]}


def create_tenant_request(d, name, extra_headers=""):
    body = json.dumps({"name": name}).encode()
    return (f"POST /admin/v1/tenants HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {d.admin_token}\r\n"
            f"Content-Type: application/json\r\n{extra_headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# --- smuggling and malformed framing -----------------------------------------

H = "Host: localhost\r\n"


def _cases(s):
    """(id, bytes before the smuggled request s, status, code)."""
    n = len(s)
    te = "POST /admin/v1/tenants HTTP/1.1\r\n" + H + \
        "Transfer-Encoding: chunked\r\n\r\n"
    return [
        ("duplicate-cl", f"POST /healthz HTTP/1.1\r\n{H}Content-Length: 0\r\n"
         f"Content-Length: {n}\r\n\r\n", 400, "conflicting_content_length"),
        ("cl-plus", f"POST /healthz HTTP/1.1\r\n{H}"
         "Content-Length: +0\r\n\r\n", 400, "invalid_content_length"),
        ("cl-list", f"POST /healthz HTTP/1.1\r\n{H}"
         "Content-Length: 0,0\r\n\r\n", 400, "invalid_content_length"),
        ("cl-tab", f"POST /healthz HTTP/1.1\r\n{H}"
         "Content-Length: 0\t\r\n\r\n", 400, "invalid_header"),
        ("space-before-colon", f"POST /healthz HTTP/1.1\r\n{H}"
         f"Content-Length : {n}\r\n\r\n", 400, "invalid_header"),
        ("obs-fold", f"GET /healthz HTTP/1.1\r\n{H}X-A: a\r\n b\r\n\r\n",
         400, "obs_fold"),
        ("nul-in-header", f"GET /healthz HTTP/1.1\r\n{H}X-A: a\0b\r\n\r\n",
         400, "invalid_header"),
        ("bare-cr", f"GET /healthz HTTP/1.1\r\n{H}X-A: a\rb\r\n\r\n",
         400, "invalid_line_ending"),
        ("bare-lf", "GET /healthz HTTP/1.1\nHost: localhost\n\n",
         400, "invalid_request_line"),
        ("chunk-0x", te + "0x0\r\n\r\n", 400, "invalid_chunk"),
        ("chunk-plus", te + "+0\r\n\r\n", 400, "invalid_chunk"),
        ("chunk-overlong", te + "00000000000000000\r\n\r\n", 400,
         "invalid_chunk"),
        ("chunk-bad-extension", te + "0;a=\"\x01\"\r\n\r\n", 400,
         "invalid_chunk"),
        ("cl-and-te", f"POST /healthz HTTP/1.1\r\n{H}Content-Length: 5\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
         "content_length_with_transfer_encoding"),
        ("te-not-chunked", f"POST /healthz HTTP/1.1\r\n{H}"
         "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400,
         "unsupported_transfer_encoding"),
        ("te-twice", f"POST /healthz HTTP/1.1\r\n{H}Transfer-Encoding: "
         "chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400,
         "unsupported_transfer_encoding"),
        ("head-with-body", f"HEAD /healthz HTTP/1.1\r\n{H}Content-Length: "
         f"{n}\r\n\r\n", 400, "unexpected_body"),
        ("http-1.2", f"GET /healthz HTTP/1.2\r\n{H}\r\n", 400,
         "invalid_http_version"),
        ("http-2", f"GET /healthz HTTP/2.0\r\n{H}\r\n", 400,
         "invalid_http_version"),
        ("bad-method", f"G(T /healthz HTTP/1.1\r\n{H}\r\n", 400,
         "invalid_method"),
        ("unknown-method", f"BREW /healthz HTTP/1.1\r\n{H}\r\n", 501,
         "method_not_implemented"),
        ("no-host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "missing_host"),
        ("uri-too-long", "GET /" + "a" * 9000 + f" HTTP/1.1\r\n{H}\r\n", 414,
         "uri_too_long"),
        ("too-many-headers", f"GET /healthz HTTP/1.1\r\n{H}" +
         "".join(f"X-{i}: v\r\n" for i in range(101)) + "\r\n", 431,
         "too_many_headers"),
        ("headers-too-large", f"GET /healthz HTTP/1.1\r\n{H}X-Big: " +
         "b" * 17000 + "\r\n\r\n", 431, "headers_too_large"),
        ("cl-over-max-body", f"POST /admin/v1/tenants HTTP/1.1\r\n{H}"
         f"Content-Length: {(1 << 20) + 1}\r\n\r\n", 413,
         "request_too_large"),
        ("expect-other", f"POST /healthz HTTP/1.1\r\n{H}Expect: 200-ok\r\n"
         "Content-Length: 0\r\n\r\n", 417, "expectation_failed"),
    ]


_SMUGGLE_IDS = [c[0] for c in _cases(b"")]


@pytest.mark.parametrize("case", _SMUGGLE_IDS)
def test_malformed_request_refused_and_smuggled_one_not_dispatched(d, case):
    name = unique("smuggled-" + case)
    s = create_tenant_request(d, name)
    _, before, status, code = next(c for c in _cases(s) if c[0] == case)
    resps, closed = exchange(d, before.encode("latin-1") + s, d.admin_port)
    assert len(resps) == 1, f"{len(resps)} responses: {resps}"
    e = assert_json_error(*resps[0], status)
    assert e["code"] == code, e
    assert closed, "connection left open after a framing error"
    assert name not in tenant_names(d), "the smuggled request was dispatched"


def test_control_pipelined_request_is_dispatched(d):
    """The oracle works: a smuggled request after a good one does run."""
    name = unique("control")
    first = f"GET /admin/v1/tenants?limit=1 HTTP/1.1\r\n{H}" \
        f"Authorization: Bearer {d.admin_token}\r\n\r\n".encode()
    resps, _ = exchange(d, first + create_tenant_request(
        d, name, "Connection: close\r\n"), d.admin_port)
    assert [r[0] for r in resps] == [200, 201], resps
    assert name in tenant_names(d)


def test_error_after_good_pipelined_request_comes_in_order(d):
    """Request 1 is answered by evhttp, then the guard answers request 2,
    and request 3 (smuggled) never runs."""
    name = unique("after-good")
    payload = (f"GET /healthz HTTP/1.1\r\n{H}\r\n"
               f"POST /healthz HTTP/1.1\r\n{H}Content-Length: 1\r\n"
               f"Content-Length: 2\r\n\r\n").encode() + \
        create_tenant_request(d, name)
    resps, closed = exchange(d, payload, d.admin_port)
    assert [r[0] for r in resps] == [404, 400], resps
    assert_json_error(*resps[1], 400)
    assert closed
    assert name not in tenant_names(d)


def test_chunked_sum_over_max_body_is_413(d):
    """The admin listener takes 1 MiB: two chunks summing over it."""
    with contextlib.closing(connect(d, d.admin_port)) as s:
        s.sendall(f"POST /admin/v1/tenants HTTP/1.1\r\n{H}"
                  "Transfer-Encoding: chunked\r\n\r\n100000\r\n".encode())
        s.sendall(b"x" * (1 << 20) + b"\r\n1\r\n")
        data, closed = read_until_close(s, 5 * SCALE)
    resps = parse_responses(data)
    assert len(resps) == 1
    assert_json_error(*resps[0], 413)
    assert closed


def test_413_is_sent_before_the_body(d):
    """Only the head is sent: the answer must not wait for the body."""
    with contextlib.closing(connect(d)) as s:
        s.sendall(f"POST /v2/models/m/infer HTTP/1.1\r\n{H}"
                  f"Content-Length: {64 << 20}\r\n\r\n".encode())
        t0 = time.monotonic()
        data, closed = read_until_close(s, 5 * SCALE)
    assert time.monotonic() - t0 < 2 * SCALE
    (resp,) = parse_responses(data)
    assert_json_error(*resp, 413)
    assert closed


# --- good traffic -----------------------------------------------------------

def test_keepalive_and_pipelining_work(d):
    sess = requests.Session()
    sess.trust_env = False
    for _ in range(5):
        r = sess.get(d.url("/healthz"), verify=d.cert, timeout=10 * SCALE)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
    # three pipelined requests in one write, the last one closes
    payload = (f"GET /healthz HTTP/1.1\r\n{H}\r\n"
               f"GET /readyz HTTP/1.1\r\n{H}\r\n"
               f"GET /nope HTTP/1.1\r\n{H}Connection: close\r\n\r\n").encode()
    resps, closed = exchange(d, payload)
    assert [r[0] for r in resps] == [200, 200, 404], resps
    assert json.loads(resps[0][2]) == {"status": "ok"}
    ids = {r[1]["x-request-id"] for r in resps}
    assert len(ids) == 3
    assert closed


def test_keepalive_survives_a_pause_longer_than_the_head_deadline(d):
    with contextlib.closing(connect(d)) as s:
        for i in range(2):
            s.sendall(f"GET /healthz HTTP/1.1\r\n{H}\r\n".encode())
            s.settimeout(5 * SCALE)
            data = b""
            while b"{\"status\":\"ok\"}" not in data:
                b = s.recv(4096)
                assert b, f"closed before response {i}"
                data += b
            assert data.startswith(b"HTTP/1.1 200 ")
            if i == 0:
                time.sleep(HEAD_S + 0.5)    # < idle deadline


def test_http10_and_connection_close_responses_are_complete(d):
    for req in (b"GET /healthz HTTP/1.0\r\n\r\n",
                f"GET /healthz HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
                .encode()):
        resps, closed = exchange(d, req)
        assert len(resps) == 1 and resps[0][0] == 200, resps
        assert json.loads(resps[0][2]) == {"status": "ok"}
        assert closed


def test_chunked_body_with_extensions_and_trailers(d):
    name = unique("chunked")
    body = json.dumps({"name": name}).encode()
    payload = (f"POST /admin/v1/tenants HTTP/1.1\r\n{H}"
               f"Authorization: Bearer {d.admin_token}\r\n"
               "Content-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               f"{5:x};ext=\"v\"\r\n").encode() + body[:5] + \
        f"\r\n{len(body) - 5:x}\r\n".encode() + body[5:] + \
        b"\r\n0\r\nX-Trailer: t\r\n\r\n"
    resps, _ = exchange(d, payload, d.admin_port)
    assert [r[0] for r in resps] == [201], resps
    assert name in tenant_names(d)


def test_expect_100_continue(d):
    name = unique("expect")
    body = json.dumps({"name": name}).encode()
    with contextlib.closing(connect(d, d.admin_port)) as s:
        s.sendall((f"POST /admin/v1/tenants HTTP/1.1\r\n{H}"
                   f"Authorization: Bearer {d.admin_token}\r\n"
                   "Expect: 100-continue\r\nConnection: close\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode())
        s.settimeout(5 * SCALE)
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n"), first
        s.sendall(body)
        data, _ = read_until_close(s, 5 * SCALE)
    resps = parse_responses(first + data)
    assert [r[0] for r in resps] == [100, 201], resps


# --- deadlines ---------------------------------------------------------------

def test_slowloris_head_is_cut_at_the_deadline(d):
    """A header line every 0.4 s never completes the head: the connection
    is closed head_ms after it started, with a 408."""
    t0 = time.monotonic()
    with contextlib.closing(connect(d)) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\n{H}".encode())
        data, closed = b"", False
        s.settimeout(0.4)
        for i in range(int((HEAD_S + SLACK + 2) / 0.4)):
            try:
                s.sendall(f"X-Slow-{i}: v\r\n".encode())
            except OSError:
                break
            part, closed = read_until_close(s, 0.4)
            data += part
            if closed:
                break
        elapsed = time.monotonic() - t0
    assert closed, "slow head not cut"
    assert HEAD_S - 0.3 <= elapsed <= HEAD_S + SLACK, elapsed
    (resp,) = parse_responses(data)
    assert_json_error(*resp, 408)


def test_silent_connection_is_closed_without_reply(d):
    t0 = time.monotonic()
    with contextlib.closing(connect(d)) as s:
        data, closed = read_until_close(s, HEAD_S + SLACK + 2)
    elapsed = time.monotonic() - t0
    assert closed and data == b"", data
    assert HEAD_S - 0.3 <= elapsed <= HEAD_S + SLACK, elapsed


def test_idle_keepalive_connection_is_closed(d):
    with contextlib.closing(connect(d)) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\n{H}\r\n".encode())
        s.settimeout(5 * SCALE)
        data = b""
        while b"{\"status\":\"ok\"}" not in data:
            data += s.recv(4096)
        t0 = time.monotonic()
        rest, closed = read_until_close(s, IDLE_S + SLACK + 2)
        elapsed = time.monotonic() - t0
    assert closed and rest == b"", rest
    assert IDLE_S - 0.3 <= elapsed <= IDLE_S + SLACK, elapsed


# --- connection caps ---------------------------------------------------------

def _refused(d, src):
    """True if a connection from src is closed at once (no request works)."""
    try:
        s = connect(d, src=src, timeout=5 * SCALE)
    except (OSError, ssl.SSLError):
        return True
    with contextlib.closing(s):
        try:
            s.sendall(f"GET /healthz HTTP/1.1\r\n{H}\r\n".encode())
            s.settimeout(5 * SCALE)
            return s.recv(4096) == b""
        except (OSError, ssl.SSLError):
            return True


def _works(d, src):
    with contextlib.closing(connect(d, src=src)) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
                  .encode())
        data, _ = read_until_close(s, 5 * SCALE)
    return data.startswith(b"HTTP/1.1 200 ")


def test_connection_caps(tmp_path):
    with guarded_maasd(tmp_path, GUARD + ",per_ip=4,max_conns=6") as d:
        held = []
        try:
            for _ in range(4):
                held.append(connect(d, src="127.0.0.1"))
            assert _refused(d, "127.0.0.1"), "per-address cap not enforced"
            for _ in range(2):
                held.append(connect(d, src="127.0.0.2"))
            assert _refused(d, "127.0.0.3"), "global cap not enforced"
            # held connections still work
            held[0].sendall(f"GET /healthz HTTP/1.1\r\n{H}\r\n".encode())
            held[0].settimeout(5 * SCALE)
            assert held[0].recv(4096).startswith(b"HTTP/1.1 200 ")
            # closing frees the slots again
            held.pop().close()
            held.pop(0).close()
            deadline = time.monotonic() + 5 * SCALE
            while not _works(d, "127.0.0.3"):
                assert time.monotonic() < deadline, "slots not released"
                time.sleep(0.1)
            assert _works(d, "127.0.0.1")
        finally:
            for s in held:
                s.close()
