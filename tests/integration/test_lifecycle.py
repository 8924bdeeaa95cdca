"""Process lifecycle: --help, readiness before and after the demo is live,
data-dir file modes, and SIGTERM draining requests in flight."""
import http.client
import json
import os
import re
import select
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

from conftest import (ADMIN_TOKEN_RE, HTTP_TIMEOUT, KEY_RE, MAASD, SCALE,
                      deploy_file, request_ids_in_db, tenant_with_key,
                      tensor, wait_for, _need_binaries)

HEAVY = (784, 2048, 2048, 10)


def test_help_documents_every_flag():
    _need_binaries()
    p = subprocess.run([str(MAASD), "--help"], capture_output=True,
                       timeout=30 * SCALE)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    for flag in ("--data-dir", "--listen", "--admin-listen", "--cert",
                 "--key", "--demo", "--runtime-mem-mb", "--drain-timeout",
                 "--debug", "--max-body-mb", "--help"):
        assert re.search(re.escape(flag) + r"\b", text), \
            f"{flag} missing from --help:\n{text}"


@pytest.mark.parametrize("args", [[], ["--no-such-flag"],
                                  ["--data-dir"],
                                  ["--max-body-mb", "abc"]],
                         ids=["no-data-dir", "unknown", "no-value",
                              "bad-number"])
def test_bad_arguments_exit_nonzero(tmp_path, args):
    _need_binaries()
    if args and args[0] == "--max-body-mb":
        args = ["--data-dir", str(tmp_path / "d")] + args
    p = subprocess.run([str(MAASD)] + args, capture_output=True,
                       timeout=30 * SCALE)
    assert p.returncode != 0
    assert p.stderr, "a usage error should say something on stderr"
    assert not (tmp_path / "d" / "maas.db").exists()


def test_readyz_before_and_after_demo_and_file_modes(maasd_factory):
    d = maasd_factory(demo=True, start=False)
    d.start(wait=False)
    # the first answer of /readyz comes before the demo can be live
    first = None
    deadline = time.monotonic() + 30 * SCALE
    while first is None and time.monotonic() < deadline:
        assert d.running(), d.log_tail()
        if os.path.exists(d.cert):
            try:
                first = requests.get(d.url("/readyz"), verify=d.cert,
                                     timeout=5 * SCALE)
            except requests.RequestException:
                pass
        if first is None:
            time.sleep(0.01)
    assert first is not None, d.log_tail()
    assert first.status_code == 503, first.text
    assert first.headers.get("x-request-id")
    # liveness is not readiness
    assert d.get("/healthz").status_code == 200
    d.wait_ready()
    assert d.get("/readyz").status_code == 200
    assert d.get("/v2/health/ready").status_code == 200

    def mode(p):
        return stat.S_IMODE(os.stat(d.data_dir / p).st_mode)
    token = (d.data_dir / "admin.token").read_text()
    assert ADMIN_TOKEN_RE.match(token.strip()), token
    assert mode("admin.token") == 0o600
    assert KEY_RE.match((d.data_dir / "demo.key").read_text().strip())
    assert mode("demo.key") == 0o600
    assert mode("tls/key.pem") & 0o077 == 0, oct(mode("tls/key.pem"))
    assert mode(".") & 0o077 == 0, oct(mode("."))
    assert (d.data_dir / "maas.db").exists()
    assert (d.data_dir / "demo-request.json").exists()
    # the banner and log never print the admin token
    assert token.strip() not in d.stdout() + d.log()


def _send_held(d, key, body):
    """Opens a TLS connection and sends a full request; returns the
    connection, whose response is read later."""
    ctx = ssl.create_default_context(cafile=d.cert)
    # TLS 1.2: no post-handshake session tickets, so a readable socket
    # means the response has started
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    c = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx,
                                    timeout=HTTP_TIMEOUT[1])
    c.request("POST", "/v2/models/big/infer", body=body,
              headers={"Authorization": f"Bearer {key}",
                       "Content-Type": "application/json"})
    return c


def test_sigterm_drains_in_flight_requests(maasd_factory, models):
    d = maasd_factory()
    deploy_file(d, "big", models.get(HEAVY, seed=1))
    _, k = tenant_with_key(d)
    # 256 rows: each request computes for tens of ms on the heavy model, so
    # several are still queued or running when the signal arrives
    x = np.random.default_rng(0).random((256, 784)).astype(np.float32)
    body = json.dumps({"inputs": [tensor("input", x)]}).encode()
    # a keep-alive connection opened before the signal, for /readyz
    ctx = ssl.create_default_context(cafile=d.cert)
    probe = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx,
                                        timeout=HTTP_TIMEOUT[1])
    probe.request("GET", "/readyz")
    pr = probe.getresponse()
    pr.read()
    assert pr.status == 200

    conns = [_send_held(d, k["key"], body) for _ in range(8)]
    time.sleep(0.05)
    # requests whose response has not started to arrive are in flight
    readable, _, _ = select.select([c.sock for c in conns], [], [], 0)
    in_flight = len(conns) - len(readable)
    assert in_flight >= 2, "the requests finished before SIGTERM; the " \
        "model is too fast for this test"
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    results = [None] * len(conns)

    def read(i):
        try:
            r = conns[i].getresponse()
            results[i] = (r.status, r.getheader("x-request-id"), r.read())
        except Exception as e:                  # noqa: BLE001
            results[i] = (e, None, b"")
    threads = [threading.Thread(target=read, args=(i,))
               for i in range(len(conns))]
    for t in threads:
        t.start()

    # while draining, readiness is refused (or the idle connection closed)
    # and a new connection is not served.  Wait until maasd has taken the
    # signal: a busy loop may still answer a probe sent just after it.
    deadline = time.monotonic() + 5 * SCALE
    while "draining" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.01)
    ready_during_drain = None
    try:
        probe.request("GET", "/readyz")
        ready_during_drain = probe.getresponse().status
    except (OSError, http.client.HTTPException):
        pass
    try:
        fresh = requests.get(d.url("/readyz"), verify=d.cert,
                             timeout=5 * SCALE).status_code
    except requests.RequestException:
        fresh = None
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT[1])
    rc = d.proc.wait(timeout=60 * SCALE)
    elapsed = time.monotonic() - t0

    for i, (status, rid, data) in enumerate(results):
        assert status == 200, f"request {i} of {len(results)} " \
            f"({in_flight} without a response at SIGTERM): {status!r} " \
            f"{data[:300]!r}\n{d.log_tail(4)}"
        out = json.loads(data)["outputs"][0]
        assert out["shape"] == [len(x), 10]
    assert rc == 0, d.log_tail()
    assert ready_during_drain in (None, 503), ready_during_drain
    assert fresh in (None, 503), fresh
    # every drained request was metered before exit
    rows = request_ids_in_db(d, [r[1] for r in results])
    assert len(rows) == len(results)
    assert elapsed < 30 * SCALE


def test_sigterm_idle_exits_quickly(maasd_factory):
    d = maasd_factory()
    t0 = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - t0 < 5 * SCALE


def test_sigterm_waits_for_a_request_being_uploaded(maasd_factory, models):
    """A request whose upload began before SIGTERM is in flight too: the
    drain must not end while its connection is still being read."""
    d = maasd_factory()
    deploy_file(d, "small", models.get((784, 16, 10), seed=2))
    _, k = tenant_with_key(d)
    x = np.random.default_rng(1).random((4, 784)).astype(np.float32)
    body = json.dumps({"inputs": [tensor("input", x)]}).encode()
    ctx = ssl.create_default_context(cafile=d.cert)
    sock = ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", d.port),
                                 timeout=HTTP_TIMEOUT[1]),
        server_hostname="127.0.0.1")
    head = (f"POST /v2/models/small/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {k['key']}\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    half = len(body) // 2
    sock.sendall(head + body[:half])
    time.sleep(0.1 * SCALE)
    d.signal(signal.SIGTERM)
    time.sleep(0.3 * SCALE)             # several drain polls
    outcome = None
    try:
        sock.sendall(body[half:])
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        outcome = (resp.status, resp.read())
    except (OSError, http.client.HTTPException) as e:
        outcome = (e, b"")
    finally:
        sock.close()
    rc = d.proc.wait(timeout=60 * SCALE)
    assert outcome[0] == 200, \
        f"upload started before SIGTERM got {outcome[0]!r}\n{d.log_tail(8)}"
    assert json.loads(outcome[1])["outputs"][0]["shape"] == [4, 10]
    assert rc == 0


def test_port_zero_logs_the_bound_ports(maasd_factory):
    d = maasd_factory(start=False)
    d.start(wait=False, ports=(0, 0))
    m = wait_for(lambda: re.search(
        r"tenant API on https://127\.0\.0\.1:0 \(port (\d+)\), admin API on "
        r"https://127\.0\.0\.1:0 \(port (\d+)\)", d.log()), 30 * SCALE,
        what="the listen line")
    d.port, d.admin_port = int(m.group(1)), int(m.group(2))
    assert d.port > 0 and d.admin_port > 0 and d.port != d.admin_port
    d.wait_healthy()
    assert d.aget("/admin/v1/tenants").status_code == 200
