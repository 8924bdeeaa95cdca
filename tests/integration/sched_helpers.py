"""Helpers for the scheduler's integration tests (test_sched_*.py): a light
persistent HTTPS client for load, deployments with scheduling options,
Prometheus text parsing and runtime process control."""
import http.client
import json
import os
import signal
import ssl
import threading
import time

import numpy as np

from conftest import (HTTP_TIMEOUT, SCALE, register_model, tensor,
                      wait_deployment_ready, wait_for)


def deploy_model(d, name, path, version="1", replicas=1, wait=True, **opts):
    """Registers path and deploys it as `name` with extra deployment
    fields (max_batch, max_queue_delay_us, threads)."""
    register_model(d, name, version, path)
    body = {"name": name, "model": name, "version": version,
            "replicas": replicas}
    body.update(opts)
    r = d.apost("/admin/v1/deployments", body)
    assert r.status_code == 201, r.text
    if wait:
        wait_deployment_ready(d, name, replicas)
    return r.json()


def body_for(x, name="input", outputs=None, req_id=None):
    b = {"inputs": [tensor(name, np.asarray(x, dtype=np.float32))]}
    if outputs is not None:
        b["outputs"] = [{"name": o} for o in outputs]
    if req_id is not None:
        b["id"] = req_id
    return json.dumps(b).encode()


class Conn:
    """One kept-alive HTTPS connection to the tenant API (cheaper per
    request than requests.Session, which matters on a 2-core box where the
    client competes with maasd and the runtime)."""

    def __init__(self, d, key):
        self.d, self.key = d, key
        ctx = ssl.create_default_context(cafile=d.cert)
        ctx.check_hostname = False
        self.ctx = ctx
        self.c = None

    def post(self, path, body, headers=None):
        """Returns (status, headers dict (lowercase), body bytes)."""
        h = {"Authorization": f"Bearer {self.key}",
             "Content-Type": "application/json"}
        if headers:
            h.update(headers)
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPSConnection(
                    "127.0.0.1", self.d.port, context=self.ctx,
                    timeout=HTTP_TIMEOUT[1])
            try:
                self.c.request("POST", path, body=body, headers=h)
                r = self.c.getresponse()
                data = r.read()
                return (r.status, {k.lower(): v for k, v in
                                   r.getheaders()}, data)
            except (http.client.RemoteDisconnected,
                    http.client.CannotSendRequest, BrokenPipeError,
                    ConnectionResetError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def infer(self, model, body, headers=None):
        return self.post(f"/v2/models/{model}/infer", body, headers)

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


class Load:
    """n threads, each keeping one request in flight on its own connection
    until stopped.  results: (t_sent, t_done, status, request id)."""

    def __init__(self, d, key, model, body, n, headers=None):
        self.d, self.key, self.model, self.body = d, key, model, body
        self.headers = headers
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.errors = []
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(n)]

    def _run(self):
        c = Conn(self.d, self.key)
        try:
            while not self.stop_ev.is_set():
                t0 = time.monotonic()
                try:
                    st, h, _ = c.infer(self.model, self.body, self.headers)
                except Exception as e:      # noqa: BLE001 - reported
                    with self.lock:
                        self.errors.append(repr(e))
                    c.close()
                    continue
                with self.lock:
                    self.results.append((t0, time.monotonic(), st,
                                         h.get("x-request-id")))
        finally:
            c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=HTTP_TIMEOUT[1] + 5)

    def count(self, status=200):
        with self.lock:
            return sum(1 for r in self.results if r[2] == status)

    def snapshot(self):
        with self.lock:
            return list(self.results)


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float} of a Prometheus text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            rest = rest.rstrip("}")
            for part in _split_labels(rest):
                k, v = part.split("=", 1)
                labels[k] = json.loads(v)
        else:
            name = name_labels
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def _split_labels(s):
    parts, cur, q, esc = [], "", False, False
    for ch in s:
        if esc:
            cur += ch
            esc = False
            continue
        if ch == "\\":
            cur += ch
            esc = True
            continue
        if ch == '"':
            q = not q
        if ch == "," and not q:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    if cur:
        parts.append(cur)
    return parts


def metrics(d):
    r = d.aget("/metrics")
    assert r.status_code == 200, r.text
    return parse_metrics(r.text)


def metric(m, name, **labels):
    """Sum of the samples of name whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= ls)


def runtime_pid(d, path):
    pids = d.runtime_pids(path)
    assert len(pids) == 1, pids
    return pids[0]


def wait_new_runtime(d, path, old, timeout=None):
    def fresh():
        d.check_alive()
        p = d.runtime_pids(path)
        return p if p and old not in p else None
    return wait_for(fresh, timeout or 30 * SCALE, interval=0.05,
                    what="a new runtime")[0]


def stop_process(pid):
    os.kill(pid, signal.SIGSTOP)


def cont_process(pid):
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def usage_rows(d, ids):
    """usage_events rows by request id, waiting until all are written."""
    from conftest import request_ids_in_db
    ids = [i for i in ids if i]
    return wait_for(lambda: (lambda rows: rows if len(rows) == len(set(ids))
                             else None)(request_ids_in_db(d, ids)),
                    30 * SCALE, what="usage rows")
