"""The sandbox of a real maas-runtime served by maasd: seccomp filter mode,
no new privileges, the dropped uid and gid when maasd runs as root, only
stdio, the model file and the IPC socket open; a runtime killed by SIGSYS
(what the filter does to a forbidden call) is restarted and serving goes
on; and a request bigger than what the runtime's memory limit leaves is
refused with 413 instead of aborting the runtime."""
import json
import os
import signal

import numpy as np
import pytest
import requests

from conftest import (HTTP_TIMEOUT, SANITIZED, SCALE, assert_error,
                      deploy_file, proc_alive, tenant_with_key, tensor,
                      wait_for)

LIGHT = (784, 32, 10)


def _status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _infer(d, key, batch=1):
    x = np.zeros((batch, 784), dtype=np.float32)
    return requests.post(
        d.url("/v2/models/m/infer"),
        data=json.dumps({"inputs": [tensor("input", x)]}),
        headers={"Authorization": f"Bearer {key}",
                 "Content-Type": "application/json"},
        verify=d.cert, timeout=HTTP_TIMEOUT)


def _serving(d, models, args=()):
    d = d(args=args)
    path = models.get(LIGHT, seed=7)
    deploy_file(d, "m", path)
    _, k = tenant_with_key(d)
    pids = d.runtime_pids(path)
    assert len(pids) == 1, (pids, d.log_tail())
    return d, path, k["key"], pids[0]


def test_runtime_is_sandboxed(maasd_factory, models):
    d, path, key, pid = _serving(maasd_factory, models)
    assert _infer(d, key).status_code == 200
    st = _status(pid)
    assert st["Seccomp"] == "2", st
    assert int(st.get("Seccomp_filters", "1")) >= 1, st
    assert st["NoNewPrivs"] == "1", st
    if os.geteuid() != 0:
        return                  # not dumpable: only root sees its fds
    assert st["Uid"].split() == ["65534"] * 4, st
    assert st["Gid"].split() == ["65534"] * 4, st
    assert st["Groups"] == "", st
    fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}")
           for fd in os.listdir(f"/proc/{pid}/fd")}
    for fd in (0, 1, 2):
        t = fds.pop(fd, None)
        assert t == "/dev/null" or (t or "").startswith("pipe:"), (fd, t)
    # The model, the socket to maasd, and the eventfd that wakes the
    # read-ahead thread (runtime/serve.c).
    rest = sorted(fds.values())
    assert len(rest) == 3, rest
    assert os.path.realpath(path) in rest, rest
    assert sum(t.startswith("socket:") for t in rest) == 1, rest
    assert rest.count("anon_inode:[eventfd]") == 1, rest


def test_sigsys_runtime_is_restarted(maasd_factory, models):
    d, path, key, pid = _serving(maasd_factory, models)
    os.kill(pid, signal.SIGSYS)
    wait_for(lambda: not proc_alive(pid), 10 * SCALE, what="runtime gone")

    def back():
        d.check_alive()
        now = d.runtime_pids(path)
        return now and pid not in now
    wait_for(back, 30 * SCALE, interval=0.1, what="a new runtime")
    wait_for(lambda: _infer(d, key).status_code == 200, 30 * SCALE,
             interval=0.2, what="serving again")
    assert d.get("/readyz").status_code == 200
    new = d.runtime_pids(path)[0]
    assert _status(new)["Seccomp"] == "2"


@pytest.mark.skipif(SANITIZED, reason="no RLIMIT_AS in sanitized builds")
def test_too_large_for_runtime_memory_is_413(maasd_factory, models):
    # The idle size of such a runtime, then a limit 8 MiB above it.
    d, path, key, pid = _serving(maasd_factory, models)
    idle_mb = int(_status(pid)["VmSize"].split()[0]) >> 10
    d.shutdown()
    d, path, key, pid = _serving(
        maasd_factory, models,
        args=("--runtime-mem-mb", str(idle_mb + 8), "--max-body-mb", "256"))
    batch = (16 << 20) // (784 * 4) + 1             # a 16 MiB tensor
    for _ in range(2):
        r = _infer(d, key, batch)
        e = assert_error(r, 413)
        assert "memory limit" in e["message"], e
    assert d.runtime_pids(path) == [pid], d.log_tail()   # not restarted
    r = _infer(d, key)
    assert r.status_code == 200, r.text
