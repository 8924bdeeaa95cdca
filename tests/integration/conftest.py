"""Shared fixtures and helpers for the maas integration tests.

Every test talks to a real maasd started on 127.0.0.1 with free ports and a
fresh data directory, over HTTPS, verifying the daemon's self-signed
certificate.  The binaries come from $MAAS_BIN (default <repo>/bin); make test
runs the suite against bin/ and build/asan/bin.

A daemon is stopped with SIGTERM at teardown; unless the test killed it, it
must exit 0 (under LeakSanitizer a leak makes that fail).  Whatever is left
of it and of its maas-runtime children is then killed by PID.  Its stderr is
kept in a file and scanned for sanitizer reports, which fail the test.
"""
import contextlib
import faulthandler
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def _bin_dir():
    b = os.environ.get("MAAS_BIN")
    if not b:
        return REPO / "bin"
    p = Path(b)
    if not p.is_absolute():
        p = (Path.cwd() / p) if (Path.cwd() / p).exists() else (REPO / p)
    return p.resolve()


BIN = _bin_dir()
MAASD = BIN / "maasd"
RUNTIME = BIN / "maas-runtime"
GENMODEL = BIN / "maas-genmodel"


def _sanitized(path):
    try:
        return b"__asan_init" in path.read_bytes()
    except OSError:
        return False


SANITIZED = _sanitized(MAASD)
SCALE = float(os.environ.get("MAAS_TEST_TIMEOUT_SCALE") or
              (3.0 if SANITIZED else 1.0))
TEST_TIMEOUT = 150 * SCALE          # seconds per test, enforced by watchdog
HTTP_TIMEOUT = (10 * SCALE, 60 * SCALE)

KEY_RE = re.compile(r"^maas_sk_[0-9a-f]{48}$")
ADMIN_TOKEN_RE = re.compile(r"^maas_admin_[0-9a-f]{48}$")
SANITIZER_RE = re.compile(
    r"==\d+==(ERROR|WARNING): \w*Sanitizer|Sanitizer has encountered a "
    r"fatal error|\.[ch]:\d+:\d+: runtime error:|SUMMARY: \w+Sanitizer|"
    r"Sanitizer:DEADLYSIGNAL")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GiveUp(AssertionError):
    """Raised by a wait_for predicate to stop waiting at once."""


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a true value; returns that value.
    Exceptions count as "not yet", except GiveUp."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except GiveUp:
            raise
        except Exception as e:          # noqa: BLE001 - reported below
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for "
                         f"{what}" + (f" (last error: {last_exc!r})"
                                      if last_exc else ""))


# --- processes ---------------------------------------------------------------

def proc_children(pid):
    """Direct children of pid, from /proc/<pid>/task/*/children."""
    kids = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids.update(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return sorted(kids)


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def proc_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


_LIVE = []                  # every Maasd not yet shut down (for the watchdog)
_LIVE_LOCK = threading.Lock()


class Maasd:
    """One maasd process on free ports with its data dir."""

    def __init__(self, data_dir, log_dir, args=(), demo=False, label="maasd"):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.args = list(args)
        self.demo = demo
        self.label = label
        self.proc = None
        self.port = self.admin_port = None
        self.killed = False          # the test killed it on purpose
        self.seen_children = set()
        self.starts = 0
        self._admin = None
        self.stdout_path = self.stderr_path = None

    # paths
    @property
    def cert(self):
        return str(self.data_dir / "tls" / "cert.pem")

    @property
    def db_path(self):
        return self.data_dir / "maas.db"

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    def admin_url(self, path):
        return f"https://127.0.0.1:{self.admin_port}{path}"

    # lifecycle
    def start(self, wait=True, ports=None):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(4):
            self.starts += 1
            if ports is not None:
                self.port, self.admin_port = ports
            else:
                self.port, self.admin_port = free_port(), free_port()
                while self.admin_port == self.port:
                    self.admin_port = free_port()
            cmd = [str(MAASD), "--data-dir", str(self.data_dir),
                   "--listen", f"127.0.0.1:{self.port}",
                   "--admin-listen", f"127.0.0.1:{self.admin_port}"]
            if self.demo:
                cmd.append("--demo")
            cmd += self.args
            n = self.starts
            self.stdout_path = self.log_dir / f"{self.label}.{n}.stdout"
            self.stderr_path = self.log_dir / f"{self.label}.{n}.stderr"
            env = dict(os.environ)
            if SANITIZED:
                env.setdefault("ASAN_OPTIONS",
                               "detect_leaks=1:abort_on_error=0")
                env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
            with open(self.stdout_path, "wb") as out, \
                    open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True)
            self.killed = False
            with _LIVE_LOCK:
                _LIVE.append(self)
            if not wait:
                return self
            try:
                self.wait_healthy()
                return self
            except _PortTaken:
                self._forget()
                if ports is not None:
                    raise
                continue
        raise AssertionError("could not start maasd on free ports:\n" +
                             self.log_tail())

    def wait_healthy(self, timeout=None):
        timeout = timeout or 30 * SCALE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                log = self.log()
                if "cannot listen" in log and "in use" in log.lower():
                    raise _PortTaken()
                raise AssertionError(f"maasd exited with {rc} during "
                                     f"start:\n{self.log_tail()}")
            if os.path.exists(self.cert):
                try:
                    r = requests.get(self.url("/healthz"), verify=self.cert,
                                     timeout=2 * SCALE)
                    if r.status_code == 200:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"maasd not healthy after {timeout:.0f}s:\n" +
                             self.log_tail())

    def check_alive(self):
        """GiveUp if maasd exited or logged that the demo set-up failed."""
        if not self.running():
            raise GiveUp(f"maasd exited with {self.proc.poll()}:\n" +
                         self.log_tail())
        if "demo set-up: cannot" in self.log():
            raise GiveUp("the demo set-up failed:\n" + self.log_tail())

    def wait_ready(self, timeout=None):
        """Polls /readyz until 200."""
        def ready():
            self.check_alive()
            return requests.get(self.url("/readyz"), verify=self.cert,
                                timeout=5 * SCALE).status_code == 200
        wait_for(ready, timeout or 60 * SCALE, interval=0.1,
                 what="/readyz 200")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _forget(self):
        with _LIVE_LOCK:
            if self in _LIVE:
                _LIVE.remove(self)

    def children(self):
        """Live maas-runtime children (also remembered for cleanup)."""
        if not self.running():
            return []
        kids = [p for p in proc_children(self.pid)
                if "maas-runtime" in proc_cmdline(p)]
        self.seen_children.update(kids)
        return kids

    def runtime_pids(self, model=None):
        """Runtime children, optionally only those serving a model file."""
        kids = self.children()
        if model is not None:
            kids = [p for p in kids if str(model) in proc_cmdline(p)]
        return kids

    def signal(self, sig):
        self.children()
        os.kill(self.pid, sig)

    def kill9(self):
        self.children()
        self.killed = True
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10 * SCALE)
        self._forget()

    def stop(self, timeout=None):
        """SIGTERM and wait; returns the exit code."""
        self.children()
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout or 40 * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._forget()
            self.reap_children()
            raise AssertionError("maasd did not exit within the drain "
                                 "timeout after SIGTERM:\n" + self.log_tail())
        self._forget()
        return rc

    def reap_children(self):
        """Kills, by PID, any runtime of this daemon still alive."""
        left = []
        for p in sorted(self.seen_children):
            if proc_alive(p) and "maas-runtime" in proc_cmdline(p):
                left.append(p)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        return left

    def shutdown(self):
        """Fixture teardown: SIGTERM, expect exit 0, kill leftovers."""
        problems = []
        if self.proc is not None and self.running():
            rc = self.stop()
            if rc != 0 and not self.killed:
                problems.append(f"maasd exited with {rc} after SIGTERM")
        elif self.proc is not None and not self.killed:
            rc = self.proc.poll()
            if rc not in (0, None) and not getattr(self, "expected_exit",
                                                   False):
                problems.append(f"maasd had already exited with {rc}")
        self._forget()
        time.sleep(0.05)
        self.reap_children()
        for path in self.log_files():
            bad = sanitizer_lines(path)
            if bad:
                problems.append(f"sanitizer report in {path}:\n" +
                                "\n".join(bad[:40]))
        if problems:
            raise AssertionError("; ".join(problems) + "\n" +
                                 self.log_tail())

    # logs
    def log_files(self):
        out = []
        for i in range(1, self.starts + 1):
            for kind in ("stderr", "stdout"):
                p = self.log_dir / f"{self.label}.{i}.{kind}"
                if p.exists():
                    out.append(p)
        return out

    def log(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def stdout(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def log_tail(self, n=60):
        lines = self.log().splitlines()
        return "--- maasd stderr (tail) ---\n" + "\n".join(lines[-n:])

    # clients
    @property
    def admin_token(self):
        return (self.data_dir / "admin.token").read_text().strip()

    @property
    def admin(self):
        if self._admin is None:
            s = _session(self.cert)
            s.headers["Authorization"] = f"Bearer {self.admin_token}"
            self._admin = s
        return self._admin

    def tenant(self, key):
        s = _session(self.cert)
        if key is not None:
            s.headers["Authorization"] = f"Bearer {key}"
        return s

    def aget(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.admin.get(self.admin_url(path), **kw)

    def apost(self, path, body=None, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.admin.post(self.admin_url(path), json=body, **kw)

    def adelete(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.admin.delete(self.admin_url(path), **kw)

    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        kw.setdefault("verify", self.cert)
        return requests.get(self.url(path), **kw)

    # database (read-only, like an auditor would)
    def db(self):
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True,
                              timeout=10 * SCALE)
        con.row_factory = sqlite3.Row
        return con


def _session(cert):
    """A Session that verifies with cert.  trust_env is off: requests lets
    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify."""
    s = requests.Session()
    s.trust_env = False
    s.verify = cert
    return s


class _PortTaken(Exception):
    pass


def sanitizer_lines(path):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if SANITIZER_RE.search(line):
            return lines[max(0, i - 2):i + 60]
    return []


def kill_everything():
    """Watchdog: SIGKILL every live daemon and its runtimes, by PID."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for d in live:
        with contextlib.suppress(Exception):
            d.children()
        with contextlib.suppress(Exception):
            d.killed = True
            os.kill(d.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            d.reap_children()


@pytest.fixture(autouse=True)
def _watchdog(request):
    """pytest-timeout is not installed: a test that runs longer than
    TEST_TIMEOUT gets its daemons killed (so its blocking calls fail), and
    a hard stack dump + exit follows if even that does not end it."""
    fired = []

    def fire():
        fired.append(True)
        kill_everything()

    t = threading.Timer(TEST_TIMEOUT, fire)
    t.daemon = True
    t.start()
    faulthandler.dump_traceback_later(TEST_TIMEOUT + 120 * SCALE, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
    t.cancel()
    assert not fired, f"test exceeded {TEST_TIMEOUT:.0f}s; daemons killed"


def pytest_sessionfinish(session, exitstatus):
    kill_everything()


def pytest_configure(config):
    # A SIGTERM to pytest (a CI timeout) must not leave daemons behind:
    # they run in their own sessions.
    def on_term(sig, frame):
        kill_everything()
        raise SystemExit(128 + sig)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)


def pytest_report_header(config):
    return [f"maas binaries: {BIN} (sanitized: {SANITIZED}, "
            f"timeout scale {SCALE})"]


# --- daemon fixtures ---------------------------------------------------------

def _need_binaries():
    missing = [str(p) for p in (MAASD, RUNTIME, GENMODEL)
               if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail("binaries missing (run make all): " + ", ".join(missing))


@contextlib.contextmanager
def running_maasd(base, args=(), demo=False, label="maasd", start=True):
    """Starts maasd in base/data (created by maasd) with logs in base."""
    _need_binaries()
    d = Maasd(Path(base) / "data", Path(base), args=args, demo=demo,
              label=label)
    try:
        if start:
            d.start()
        yield d
    finally:
        d.shutdown()


@pytest.fixture
def maasd_factory(tmp_path):
    """Starts daemons on demand; each one is shut down at teardown."""
    made = []

    def make(args=(), demo=False, data_dir=None, start=True, label=None):
        _need_binaries()
        n = len(made) + 1
        d = Maasd(data_dir or tmp_path / f"data{n}", tmp_path,
                  args=args, demo=demo, label=label or f"maasd{n}")
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    errors = []
    for d in reversed(made):
        try:
            d.shutdown()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


# --- models ------------------------------------------------------------------

def genmodel(path, layers, seed, softmax=True):
    cmd = [str(GENMODEL), "mlp", "--layers", ",".join(map(str, layers)),
           "--seed", str(seed), "-o", str(path)]
    if not softmax:
        cmd.append("--no-softmax")
    r = subprocess.run(cmd, capture_output=True, timeout=60 * SCALE)
    assert r.returncode == 0, f"{cmd} failed: {r.stderr.decode()[-2000:]}"
    assert Path(path).stat().st_size > 0
    os.chmod(path, 0o644)
    return Path(path)


class ModelFiles:
    """Generates each (layers, seed, softmax) model once per session.
    Files live in a world-readable directory so a runtime that dropped its
    privileges can still open them."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cache = {}

    def get(self, layers, seed=42, softmax=True):
        k = (tuple(layers), seed, softmax)
        if k not in self.cache:
            name = "mlp_" + "x".join(map(str, layers)) + f"_s{seed}" + \
                ("" if softmax else "_nosm") + ".onnx"
            self.cache[k] = genmodel(self.root / name, layers, seed, softmax)
        return self.cache[k]


@pytest.fixture(scope="session")
def models():
    # Not under pytest's 0700 temp dirs: a runtime may run as nobody.
    root = tempfile.mkdtemp(prefix="maas-it-models-")
    os.chmod(root, 0o755)
    yield ModelFiles(root)
    shutil.rmtree(root, ignore_errors=True)


# --- admin helpers -----------------------------------------------------------

_counter = [0]


def unique(prefix):
    _counter[0] += 1
    return f"{prefix}-{os.getpid()}-{_counter[0]}"


def create_tenant(d, name=None):
    r = d.apost("/admin/v1/tenants", {"name": name or unique("tenant")})
    assert r.status_code == 201, r.text
    return r.json()


def create_key(d, tenant_id, name="k", expires_at=None):
    body = {"name": name}
    if expires_at is not None:
        body["expires_at"] = expires_at
    r = d.apost(f"/admin/v1/tenants/{tenant_id}/keys", body)
    assert r.status_code == 201, r.text
    k = r.json()
    assert KEY_RE.match(k["key"]), k
    return k


def tenant_with_key(d, name=None):
    """Returns (tenant row, key row with "key")."""
    t = create_tenant(d, name)
    return t, create_key(d, t["id"])


def register_model(d, name, version, path):
    r = d.apost("/admin/v1/models", {"name": name, "version": version,
                                     "path": str(path)})
    assert r.status_code == 201, r.text
    return r.json()


def deployment_row(d, name):
    after = None
    while True:
        q = "/admin/v1/deployments?limit=100" + (f"&after={after}"
                                                  if after else "")
        r = d.aget(q)
        assert r.status_code == 200, r.text
        page = r.json()
        for row in page["data"]:
            if row["name"] == name:
                return row
        if not page.get("has_more") or not page["data"]:
            return None
        after = page["data"][-1]["id"]


def wait_deployment_ready(d, name, replicas=1, timeout=None):
    def ready():
        d.check_alive()
        row = deployment_row(d, name)
        return row is not None and row.get("live_replicas", 0) >= replicas
    wait_for(ready, timeout or 60 * SCALE, interval=0.1,
             what=f"deployment '{name}' live")


def deploy(d, name, model, version, replicas=1, threads=1, wait=True):
    r = d.apost("/admin/v1/deployments", {
        "name": name, "model": model, "version": version,
        "replicas": replicas, "threads": threads})
    assert r.status_code == 201, r.text
    if wait:
        wait_deployment_ready(d, name, replicas)
    return r.json()


def deploy_file(d, name, path, version="1", replicas=1, threads=1):
    """Registers path as model `name` version and deploys it as `name`."""
    register_model(d, name, version, path)
    return deploy(d, name, name, version, replicas, threads)


# --- requests ----------------------------------------------------------------

def tensor(name, arr, nested=False, datatype="FP32"):
    arr = np.asarray(arr)
    return {"name": name, "shape": list(arr.shape), "datatype": datatype,
            "data": arr.tolist() if nested else arr.ravel().tolist()}


def infer(sess, d, model, inputs, outputs=None, req_id=None, version=None,
          raw=None, **kw):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version
                                    else "") + "/infer"
    kw.setdefault("timeout", HTTP_TIMEOUT)
    if raw is not None:
        return sess.post(d.url(path), data=raw,
                         headers={"Content-Type": "application/json"}, **kw)
    body = {"inputs": inputs}
    if outputs is not None:
        body["outputs"] = outputs
    if req_id is not None:
        body["id"] = req_id
    return sess.post(d.url(path), json=body, **kw)


def assert_error(resp, status, mention=None, allow_non_json=False):
    """Checks an OpenAI-style error: {"error":{"message","type","param",
    "code"}} plus an x-request-id header.  Returns the error object."""
    body = resp.text[:600]
    assert resp.status_code == status, \
        f"expected {status}, got {resp.status_code}: {body}"
    assert resp.headers.get("x-request-id"), \
        f"no x-request-id on {status}: {dict(resp.headers)}"
    try:
        j = resp.json()
    except ValueError:
        if allow_non_json:
            return None
        raise AssertionError(f"{status} body is not JSON: {body!r}")
    assert isinstance(j, dict) and isinstance(j.get("error"), dict), body
    e = j["error"]
    for k in ("message", "type", "param", "code"):
        assert k in e, f"error object lacks '{k}': {body}"
    assert isinstance(e["message"], str) and e["message"], body
    assert isinstance(e["type"], str) and e["type"], body
    if mention is not None:
        assert mention in e["message"], \
            f"error message does not mention {mention!r}: {e['message']!r}"
    return e


def request_ids_in_db(d, ids):
    """usage_events rows (as dicts) for the given request ids."""
    con = d.db()
    try:
        rows = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ("SELECT * FROM usage_events WHERE request_id IN (%s)" %
                 ",".join("?" * len(chunk)))
            for row in con.execute(q, chunk):
                rows[row["request_id"]] = dict(row)
        return rows
    finally:
        con.close()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- numpy reference for ONNX MLPs ------------------------------------------

def onnx_forward(path, feeds):
    """Runs the ONNX graph at path on feeds (name -> array) in float64 with
    numpy.  Supports what MLPs use: Gemm (alpha, beta, transA, transB),
    MatMul, Add, Relu, Sigmoid, Tanh, Softmax, Identity, Flatten."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    opset = max((o.version for o in m.opset_import
                 if o.domain in ("", "ai.onnx")), default=13)
    env = {t.name: numpy_helper.to_array(t).astype(np.float64)
           for t in g.initializer}
    for k, v in feeds.items():
        env[k] = np.asarray(v, dtype=np.float32).astype(np.float64)

    def attr(node, name, default):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    for node in g.node:
        x = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Gemm":
            a, b = x[0], x[1]
            if attr(node, "transA", 0):
                a = a.T
            if attr(node, "transB", 0):
                b = b.T
            y = attr(node, "alpha", 1.0) * (a @ b)
            if len(x) > 2 and x[2] is not None:
                y = y + attr(node, "beta", 1.0) * x[2]
        elif op == "MatMul":
            y = x[0] @ x[1]
        elif op == "Add":
            y = x[0] + x[1]
        elif op == "Relu":
            y = np.maximum(x[0], 0)
        elif op == "Sigmoid":
            y = 1 / (1 + np.exp(-x[0]))
        elif op == "Tanh":
            y = np.tanh(x[0])
        elif op == "Identity":
            y = x[0]
        elif op == "Flatten":
            ax = attr(node, "axis", 1)
            y = x[0].reshape(int(np.prod(x[0].shape[:ax])), -1)
        elif op == "Softmax":
            ax = attr(node, "axis", -1 if opset >= 13 else 1)
            z = x[0] - x[0].max(axis=ax, keepdims=True)
            e = np.exp(z)
            y = e / e.sum(axis=ax, keepdims=True)
        else:
            raise NotImplementedError(f"reference has no op {op}")
        env[node.output[0]] = y
    return {o.name: env[o.name] for o in g.output}


def onnx_io(path):
    """[(name, elem_type, dims)] of graph inputs (minus initializers) and
    outputs; dims use -1 for symbolic/unknown dimensions."""
    import onnx

    m = onnx.load(str(path))
    inits = {t.name for t in m.graph.initializer}

    def desc(v):
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1
                for d in t.shape.dim]
        return v.name, t.elem_type, dims
    ins = [desc(v) for v in m.graph.input if v.name not in inits]
    outs = [desc(v) for v in m.graph.output]
    return ins, outs


def assert_close(got, want, rtol=1e-4, atol=1e-5):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        err = np.abs(got - want)
        i = np.unravel_index(np.argmax(err), err.shape)
        raise AssertionError(f"values differ: max abs err {err.max():.3g} at "
                             f"{i}: got {got[i]!r}, want {want[i]!r}")


def output_by_name(resp_json, name):
    for o in resp_json["outputs"]:
        if o["name"] == name:
            return o
    raise AssertionError(f"no output {name!r} in "
                         f"{json.dumps(resp_json)[:300]}")


# --- quotas, prices and JWT issuers (tenant security tests) ----------------

def aput(d, path, body=None, **kw):
    """PUT on the admin API with the admin token."""
    kw.setdefault("timeout", HTTP_TIMEOUT)
    return d.admin.put(d.admin_url(path), json=body, **kw)


def set_quota(d, tenant_id=None, key_id=None, **limits):
    """PUT /admin/v1/{tenants,keys}/{id}/quota with limits; returns the
    stored row.  Limits not given are absent (unlimited)."""
    path = (f"/admin/v1/keys/{key_id}/quota" if key_id is not None else
            f"/admin/v1/tenants/{tenant_id}/quota")
    r = aput(d, path, limits)
    assert r.status_code == 200, r.text
    return r.json()


def add_price(d, model, **fields):
    """POST /admin/v1/prices; returns the stored row."""
    r = d.apost("/admin/v1/prices", dict(model=model, **fields))
    assert r.status_code == 201, r.text
    return r.json()


class HS256Issuer:
    """An HS256 JWT issuer registered on d; token(tenant_id) signs a valid
    token for that tenant with python3-jwt."""

    def __init__(self, d, kid=None):
        import secrets
        self.secret = secrets.token_hex(32)
        self.kid = kid or unique("kid")
        self.iss = "https://idp.example.test"
        self.aud = "maas"
        r = d.apost("/admin/v1/issuers", {
            "kid": self.kid, "alg": "HS256", "key": self.secret,
            "iss": self.iss, "aud": self.aud, "tenant_claim": "tenant"})
        assert r.status_code == 201, r.text
        self.row = r.json()

    def token(self, tenant_id, ttl=300):
        import jwt as pyjwt
        now = int(time.time())
        return pyjwt.encode({"iss": self.iss, "aud": self.aud, "iat": now,
                             "exp": now + ttl, "tenant": tenant_id},
                            self.secret, algorithm="HS256",
                            headers={"kid": self.kid})
