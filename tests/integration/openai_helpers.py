"""Helpers for the OpenAI-API tests: tiny GGUF models made by
maas-gengguf, a reader of their metadata, and a server-sent-events client
over requests."""
import json
import os
import struct
import subprocess
from pathlib import Path

from conftest import BIN, HTTP_TIMEOUT, SCALE

GENGGUF = BIN / "maas-gengguf"


def gengguf(path, seed=1, **opts):
    """Writes a seeded random GGUF llama model; opts are maas-gengguf's
    long options with _ for -, e.g. n_ctx=512, template="chatml"."""
    cmd = [str(GENGGUF), "--seed", str(seed), "-o", str(path)]
    for k, v in opts.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    r = subprocess.run(cmd, capture_output=True, timeout=120 * SCALE)
    assert r.returncode == 0, f"{cmd}: {r.stderr.decode()[-2000:]}"
    os.chmod(path, 0o644)
    return Path(path)


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
           7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gguf_kv(path):
    """The metadata key/values of a GGUF file (arrays of strings and
    numbers are returned as lists)."""
    with open(path, "rb") as f:
        data = f.read(16 << 20)
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from(fmt, data, off)[0]
        off += struct.calcsize(fmt)
        return v

    def string():
        nonlocal off
        n = take("<Q")
        s = data[off:off + n].decode("utf-8", "replace")
        off += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(_SCALAR[t])

    assert data[:4] == b"GGUF"
    off = 4
    take("<I")
    take("<Q")
    n_kv = take("<Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("<I"))
    return kv


def post(sess, d, path, body, **kw):
    kw.setdefault("timeout", HTTP_TIMEOUT)
    return sess.post(d.url(path), data=json.dumps(body),
                     headers={"Content-Type": "application/json"}, **kw)


def sse_events(resp):
    """The data payloads of a text/event-stream response, in order:
    parsed JSON objects, or the string "[DONE]"."""
    out, buf = [], []
    for line in resp.iter_lines(decode_unicode=False):
        if line == b"":
            if buf:
                data = b"\n".join(buf).decode()
                out.append(data if data == "[DONE]" else json.loads(data))
                buf = []
            continue
        if line.startswith(b"data: "):
            buf.append(line[6:])
        elif line.startswith(b"data:"):
            buf.append(line[5:])
    if buf:
        data = b"\n".join(buf).decode()
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def stream(sess, d, path, body):
    """POSTs a streaming request; returns (response, events)."""
    r = post(sess, d, path, dict(body, stream=True), stream=True)
    if r.status_code != 200:
        return r, None
    assert r.headers["Content-Type"].startswith("text/event-stream")
    ev = sse_events(r)
    r.close()
    return r, ev


def chunks_text(events, chat=True):
    text = ""
    for e in events:
        if e == "[DONE]" or not e["choices"]:
            continue
        c = e["choices"][0]
        text += (c["delta"].get("content") or "") if chat else c["text"]
    return text
