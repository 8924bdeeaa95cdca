"""Speaks the maasd <-> maas-runtime IPC of common/ipc.h to a real
maas-runtime over a socketpair, playing maasd: the GGUF engine is driven
frame by frame (GENERATE, TOKEN, DONE, CANCEL, PING)."""
import os, socket, struct, subprocess, threading, time

MAGIC = 0x5341414D
HELLO, ERROR, INFER, INFER_OK, INFER_ERR, GENERATE, TOKEN, DONE, CANCEL, PING, PONG = range(1, 12)
CHAT, COMPLETION, EMBEDDING = 1, 2, 3
FIN_STOP, FIN_LENGTH, FIN_CANCELLED = 1, 2, 3
ERR_BAD_INPUT, ERR_INTERNAL, ERR_TOO_LARGE, ERR_CONTEXT = 1, 2, 3, 4


def s16(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<H", len(b)) + b


def s32(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<I", len(b)) + b


def gen_req(mode=COMPLETION, prompt=b"", msgs=(), tenant="ten_t",
            max_tokens=16, temperature=0.0, top_p=1.0, min_p=0.0,
            presence=0.0, frequency=0.0, top_k=0, seed=0, logprobs=0,
            top_logprobs=0, stop=(), bias=()):
    b = bytes([mode]) + s16(tenant) + struct.pack("<I", len(msgs))
    for role, content in msgs:
        b += s16(role) + s32(content)
    b += s32(prompt) + struct.pack("<I", max_tokens)
    b += struct.pack("<fffff", temperature, top_p, min_p, presence, frequency)
    b += struct.pack("<IQBB", top_k, seed, logprobs, top_logprobs)
    b += struct.pack("<I", len(stop)) + b"".join(s16(s) for s in stop)
    b += struct.pack("<I", len(bias))
    for t, v in bias:
        b += struct.pack("<if", t, v)
    return b


class Reader:
    def __init__(self, b):
        self.b, self.o = b, 0

    def take(self, n):
        v = self.b[self.o:self.o + n]
        assert len(v) == n
        self.o += n
        return v

    def u(self, fmt):
        n = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(n))[0]

    def s16(self):
        return self.take(self.u("<H"))


def parse_token(p):
    r = Reader(p)
    tid = r.u("<i")
    text = r.s16()
    lp_tok = r.s16()
    lp = r.u("<f")
    n = r.u("<B")
    top = [(r.s16(), r.u("<f")) for _ in range(n)]
    assert r.o == len(p)
    return {"id": tid, "text": text, "lp": (lp_tok, lp), "top": top}


def parse_done(p):
    r = Reader(p)
    fin, pt, ct, comp, us, ne = struct.unpack("<BIIIQI", r.take(25))
    emb = list(struct.unpack("<%df" % ne, r.take(4 * ne)))
    assert r.o == len(p)
    return {"finish": fin, "prompt": pt, "cached": ct, "completion": comp,
            "compute_us": us, "embd": emb}


def parse_hello(p):
    r = Reader(p)
    fmt = r.u("<B")
    mem = r.u("<Q")
    ni = r.u("<I")
    no = r.u("<I")
    assert ni == 0 and no == 0
    shared = r.u("<Q")
    n_ctx, n_vocab, n_embd, max_seqs = struct.unpack("<IIII", r.take(16))
    arch = r.s16().decode()
    tmpl = r.s16().decode()
    assert r.o == len(p)
    return {"format": fmt, "mem_bytes": mem, "shared_bytes": shared,
            "n_ctx": n_ctx,
            "n_vocab": n_vocab, "n_embd": n_embd, "max_seqs": max_seqs,
            "arch": arch, "template": tmpl}


class Runtime:
    """A real maas-runtime on one end of a socketpair; we play maasd."""

    def __init__(self, runtime, model, max_seqs=None, timeout=60,
                 threads=None):
        self.sock, theirs = socket.socketpair()
        args = [str(runtime), "--fd", str(theirs.fileno()), "--model",
                str(model)]
        if max_seqs is not None:
            args += ["--max-seqs", str(max_seqs)]
        if threads is not None:
            args += ["--threads", str(threads)]
        self.proc = subprocess.Popen(args, pass_fds=[theirs.fileno()],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        theirs.close()
        self.log = []
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()
        self.sock.settimeout(timeout)
        self.next_id = 1

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace"))

    @staticmethod
    def frame(typ, req, payload=b""):
        return struct.pack("<IHHQI", MAGIC, 1, typ, req,
                           len(payload)) + payload

    def send(self, typ, req, payload=b""):
        self.sock.sendall(self.frame(typ, req, payload))

    def _recv_exact(self, n):
        b = b""
        while len(b) < n:
            c = self.sock.recv(n - len(b))
            if not c:
                raise EOFError("runtime closed the socket")
            b += c
        return b

    def recv(self):
        magic, ver, typ, req, n = struct.unpack("<IHHQI",
                                                self._recv_exact(20))
        assert magic == MAGIC and ver == 1
        return typ, req, self._recv_exact(n) if n else b""

    def hello(self):
        typ, req, p = self.recv()
        if typ == ERROR:
            return None, Reader(p).s16().decode()
        assert typ == HELLO and req == 0
        return parse_hello(p), None

    def generate(self, payload, then=b""):
        """Sends a GENERATE, and the frames then (bytes) in the same
        write, so that they wait in the socket before the runtime has read
        the GENERATE; returns its request id."""
        req = self.next_id
        self.next_id += 1
        self.sock.sendall(self.frame(GENERATE, req, payload) + then)
        return req

    def collect(self, reqs):
        """Reads until every req in reqs ended; returns {req: result}."""
        out = {r: {"tokens": [], "text": b"", "done": None, "err": None}
               for r in reqs}
        left = set(reqs)
        while left:
            typ, req, p = self.recv()
            assert req in out, (typ, req)
            if typ == TOKEN:
                t = parse_token(p)
                out[req]["tokens"].append(t)
                out[req]["text"] += t["text"]
            elif typ == DONE:
                out[req]["done"] = parse_done(p)
                left.discard(req)
            elif typ == INFER_ERR:
                r = Reader(p)
                out[req]["err"] = (r.u("<H"), r.s16().decode())
                left.discard(req)
            else:
                raise AssertionError("unexpected frame %d" % typ)
        return out

    def run(self, payload):
        req = self.generate(payload)
        return self.collect([req])[req]

    def close(self):
        self.sock.close()
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._t.join(timeout=5)
        log = "".join(self.log)
        assert "Sanitizer" not in log and "runtime error:" not in log, log
        return rc
