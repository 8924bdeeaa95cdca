"""A numpy reference for maas's llama forward pass (runtime/llm/model.c).

Reads a GGUF file with its own small parser (independent of the C one),
dequantizes F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K weights exactly as
ggml defines them, and runs the
decoder in float64, with K and V rounded to float16 where maas caches them
so: RMSNorm, RoPE (adjacent pairs for llama, halves for
qwen2, as llama.cpp applies them to GGUF files), grouped-query causal
attention, SwiGLU, tied or separate output matrix, qwen2's Q/K/V biases.
"""
import struct

import numpy as np

GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i",
                6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0 = 0, 1, 2, 8
GGML_Q4_K, GGML_Q5_K, GGML_Q6_K, GGML_BF16 = 12, 13, 14, 30


def dequant_q4_k(blk):
    """(nb, 144) Q4_K blocks -> (nb, 256): F16 d and dmin, twelve bytes of
    6-bit sub-block scales and mins, 128 bytes of nibbles (sub-blocks 2i
    and 2i+1 in the low and high nibbles of bytes 32i..32i+31)."""
    return dequant_k45(blk, None, blk[:, 16:])


def dequant_q5_k(blk):
    """(nb, 176) Q5_K blocks -> (nb, 256): Q4_K's fields with 32 bytes of
    fifth bits between the scales and the nibbles, bit s of byte l for
    element l of sub-block s."""
    return dequant_k45(blk, blk[:, 16:48], blk[:, 48:])


def dequant_k45(blk, qh, qs):
    d = blk[:, 0:2].copy().view("<f2").astype(np.float32)
    dmin = blk[:, 2:4].copy().view("<f2").astype(np.float32)
    sc = blk[:, 4:16].astype(np.int32)
    qs = qs.astype(np.int32)
    scale = np.empty((len(blk), 8), np.int32)
    mins = np.empty((len(blk), 8), np.int32)
    for j in range(8):
        if j < 4:
            scale[:, j] = sc[:, j] & 63
            mins[:, j] = sc[:, j + 4] & 63
        else:
            scale[:, j] = (sc[:, j + 4] & 15) | ((sc[:, j - 4] >> 6) << 4)
            mins[:, j] = (sc[:, j + 4] >> 4) | ((sc[:, j] >> 6) << 4)
    out = np.empty((len(blk), 256), np.float32)
    for j in range(8):
        q = qs[:, 32 * (j // 2):32 * (j // 2) + 32]
        q = (q >> 4) if j % 2 else (q & 15)
        if qh is not None:
            q = q | (((qh.astype(np.int32) >> j) & 1) << 4)
        d1 = d * scale[:, j:j + 1].astype(np.float32)
        m1 = dmin * mins[:, j:j + 1].astype(np.float32)
        out[:, 32 * j:32 * j + 32] = d1 * q.astype(np.float32) - m1
    return out


def dequant_q6_k(blk):
    """(nb, 210) Q6_K blocks -> (nb, 256): 128 bytes of low nibbles, 64 of
    high bit pairs, sixteen int8 scales, F16 d; value d * scale * (q - 32)
    with q's 6 bits spread as ggml lays them out."""
    ql = blk[:, :128].astype(np.int32)
    qh = blk[:, 128:192].astype(np.int32)
    sc = blk[:, 192:208].copy().view(np.int8).astype(np.float32)
    d = blk[:, 208:210].copy().view("<f2").astype(np.float32)
    q = np.empty((len(blk), 256), np.int32)
    for h in range(2):
        lo = ql[:, 64 * h:64 * h + 64]
        hi = qh[:, 32 * h:32 * h + 32]
        base = 128 * h
        q[:, base:base + 32] = (lo[:, :32] & 15) | ((hi & 3) << 4)
        q[:, base + 32:base + 64] = (lo[:, 32:] & 15) | (((hi >> 2) & 3) << 4)
        q[:, base + 64:base + 96] = (lo[:, :32] >> 4) | (((hi >> 4) & 3) << 4)
        q[:, base + 96:base + 128] = (lo[:, 32:] >> 4) | (((hi >> 6) & 3) << 4)
    scale = np.repeat(sc, 16, axis=1)
    return d * scale * (q - 32).astype(np.float32)


class Reader:
    def __init__(self, data):
        self.d = data
        self.o = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)[0]
        self.o += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.o:self.o + n]
        self.o += n
        return s.decode("utf-8", "surrogateescape")

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et = self.take("<I")
            n = self.take("<Q")
            return [self.value(et) for _ in range(n)]
        return self.take(GGUF_SCALARS[t])


def read_gguf(path, types=None):
    """Returns (metadata dict, {name: float32 array of shape ne[::-1]});
    each tensor's GGML type goes into the dict types, if given."""
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    assert data[:4] == b"GGUF"
    r.o = 4
    version = r.take("<I")
    assert version in (2, 3)
    nt = r.take("<Q")
    nkv = r.take("<Q")
    meta = {}
    for _ in range(nkv):
        k = r.string()
        meta[k] = r.value(r.take("<I"))
    infos = []
    for _ in range(nt):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        typ = r.take("<I")
        off = r.take("<Q")
        infos.append((name, ne, typ, off))
        if types is not None:
            types[name] = typ
    align = meta.get("general.alignment", 32)
    base = (r.o + align - 1) // align * align
    tensors = {}
    for name, ne, typ, off in infos:
        n = int(np.prod(ne))
        p = base + off
        if typ == GGML_F32:
            a = np.frombuffer(data, "<f4", n, p).astype(np.float32)
        elif typ == GGML_F16:
            a = np.frombuffer(data, "<f2", n, p).astype(np.float32)
        elif typ == GGML_BF16:
            a = (np.frombuffer(data, "<u2", n, p).astype(np.uint32) << 16
                 ).view(np.float32)
        elif typ == GGML_Q8_0:
            nb = n // 32
            blk = np.frombuffer(data, np.uint8, nb * 34, p).reshape(nb, 34)
            d = blk[:, :2].copy().view("<f2").astype(np.float32)
            q = blk[:, 2:].copy().view(np.int8).astype(np.float32)
            a = (q * d).reshape(n)
        elif typ == GGML_Q4_0:
            nb = n // 32
            blk = np.frombuffer(data, np.uint8, nb * 18, p).reshape(nb, 18)
            d = blk[:, :2].copy().view("<f2").astype(np.float32)
            qs = blk[:, 2:]
            q = np.concatenate([(qs & 15), (qs >> 4)], axis=1)
            a = ((q.astype(np.float32) - 8) * d).reshape(n)
        elif typ == GGML_Q4_K:
            nb = n // 256
            a = dequant_q4_k(np.frombuffer(data, np.uint8, nb * 144, p)
                             .reshape(nb, 144)).reshape(n)
        elif typ == GGML_Q5_K:
            nb = n // 256
            a = dequant_q5_k(np.frombuffer(data, np.uint8, nb * 176, p)
                             .reshape(nb, 176)).reshape(n)
        elif typ == GGML_Q6_K:
            nb = n // 256
            a = dequant_q6_k(np.frombuffer(data, np.uint8, nb * 210, p)
                             .reshape(nb, 210)).reshape(n)
        else:
            raise ValueError("tensor type %d" % typ)
        tensors[name] = a.reshape(ne[::-1])
    return meta, tensors


class Model:
    def __init__(self, path):
        types = {}
        self.meta, self.t = read_gguf(path, types)
        # maas keeps K and V in F16 unless the matrices are F32
        # (model.c): the reference rounds them the same way.
        self.kv_half = types["blk.0.attn_q.weight"] != GGML_F32
        m = self.meta
        a = m["general.architecture"]
        self.arch = a
        self.n_embd = m[a + ".embedding_length"]
        self.n_layer = m[a + ".block_count"]
        self.n_head = m[a + ".attention.head_count"]
        self.n_head_kv = m.get(a + ".attention.head_count_kv", self.n_head)
        self.hd = self.n_embd // self.n_head
        self.base = m.get(a + ".rope.freq_base", 10000.0)
        self.eps = m[a + ".attention.layer_norm_rms_epsilon"]
        self.neox = a == "qwen2"
        self.w = {k: v.astype(np.float64) for k, v in self.t.items()}
        if "output.weight" not in self.w:
            self.w["output.weight"] = self.w["token_embd.weight"]

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) +
                           self.eps) * w

    def rope(self, x, pos):
        """x: (n, heads, hd); pos: (n,)."""
        hd = self.hd
        half = hd // 2
        inv = self.base ** (-np.arange(half, dtype=np.float64) * 2.0 / hd)
        ang = pos[:, None].astype(np.float64) * inv[None, :]
        cos = np.cos(ang)[:, None, :]
        sin = np.sin(ang)[:, None, :]
        y = x.copy()
        if self.neox:
            a, b = x[..., :half], x[..., half:]
            y[..., :half] = a * cos - b * sin
            y[..., half:] = a * sin + b * cos
        else:
            a, b = x[..., 0::2], x[..., 1::2]
            y[..., 0::2] = a * cos - b * sin
            y[..., 1::2] = a * sin + b * cos
        return y

    def forward(self, tokens):
        """Logits (n, n_vocab) and final-norm hidden states (n, n_embd)
        of every position of tokens, causally."""
        w = self.w
        n = len(tokens)
        pos = np.arange(n)
        x = w["token_embd.weight"][np.array(tokens)]
        grp = self.n_head // self.n_head_kv
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for l in range(self.n_layer):
            p = "blk.%d." % l
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            q = h @ w[p + "attn_q.weight"].T
            k = h @ w[p + "attn_k.weight"].T
            v = h @ w[p + "attn_v.weight"].T
            if p + "attn_q.bias" in w:
                q = q + w[p + "attn_q.bias"]
                k = k + w[p + "attn_k.bias"]
                v = v + w[p + "attn_v.bias"]
            q = self.rope(q.reshape(n, self.n_head, self.hd), pos)
            k = self.rope(k.reshape(n, self.n_head_kv, self.hd), pos)
            v = v.reshape(n, self.n_head_kv, self.hd)
            if self.kv_half:
                k = k.astype(np.float16).astype(np.float64)
                v = v.astype(np.float16).astype(np.float64)
            out = np.empty((n, self.n_head, self.hd))
            for hh in range(self.n_head):
                kh = k[:, hh // grp, :]
                vh = v[:, hh // grp, :]
                s = q[:, hh, :] @ kh.T / np.sqrt(self.hd) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                out[:, hh, :] = s @ vh
            x = x + out.reshape(n, self.n_embd) @ w[p + "attn_output.weight"].T
            h = self.rmsnorm(x, w[p + "ffn_norm.weight"])
            g = h @ w[p + "ffn_gate.weight"].T
            u = h @ w[p + "ffn_up.weight"].T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
        hn = self.rmsnorm(x, w["output_norm.weight"])
        return hn @ w["output.weight"].T, hn

    def embed(self, tokens):
        _, hn = self.forward(tokens)
        e = hn.mean(axis=0)
        return e / np.linalg.norm(e)
