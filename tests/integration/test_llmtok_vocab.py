"""The tokenizers of runtime/llm/tokenizer.c on real vocabularies made by
maas-gengguf (byte-level BPE with llama-bpe, qwen2 and smollm
pre-tokenizers, and SentencePiece-style), checked two ways:

- the ids equal those of a plain Python reference written here from the
  algorithms' definitions (regex pre-split with Python's regex module,
  GPT-2's byte alphabet, lowest-rank-first merging; SPM's U+2581 spaces,
  best-score-first merging and <0xXX> byte fallback), naive and quadratic
  so that it shares nothing with the C heaps;
- decoding the ids gives the text back, invalid UTF-8 included.

The C side runs through the unit test binary's --gguf mode
(<build>/tests/test_tokenizer next to $MAAS_BIN).
"""
import random
import subprocess
import zlib

import pytest
import regex

from conftest import BIN, REPO
from llm_ref import read_gguf
from test_llmtok_pretok import GPT2, LLAMA3, QWEN2, _splitter

GENGGUF = BIN / "maas-gengguf"

TEXTS = [
    "hello world", "Hello, World! The quick brown fox.",
    "they're we've I'm you'll he'd IT'S", "  leading and trailing  ",
    "tabs\tand\nnewlines\r\n\n\nend", "1234567890 3.14159 42",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9", "\u4e2d\u6587\u6d4b\u8bd5",
    "emoji \U0001F600\U0001F44D\U0001F3FD", "<|im_end|> <s> [INST] text",
    "punctuation: ;:!?.,()[]{}<>'\"`~@#$%^&*-_=+|\\/", "",
]


def _byte_alphabet():
    kept = (list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) +
            list(range(0xAE, 0x100)))
    m, k = {}, 0
    for b in range(256):
        if b in kept:
            m[b] = chr(b)
        else:
            m[b] = chr(0x100 + k)
            k += 1
    return m


BYTES = _byte_alphabet()


def _smollm_split(s):
    out, seg = [], ""
    for ch in s:
        if regex.match(r"\p{N}", ch):
            out += regex.findall(GPT2, seg) + [ch]
            seg = ""
        else:
            seg += ch
    return out + regex.findall(GPT2, seg)


class RefBPE:
    def __init__(self, meta):
        self.tokens = meta["tokenizer.ggml.tokens"]
        self.types = meta["tokenizer.ggml.token_type"]
        self.pre = meta.get("tokenizer.ggml.pre", "default")
        self.id = {}
        for i, t in enumerate(self.tokens):
            self.id[t] = i
        self.rank = {}
        for r, m in enumerate(meta["tokenizer.ggml.merges"]):
            a, b = m.split(" ", 1)
            if (a, b) not in self.rank and self.types[self.id.get(a + b, 0)] == 1:
                self.rank[(a, b)] = r

    def words(self, s):
        if self.pre == "llama-bpe":
            return regex.findall(LLAMA3, s)
        if self.pre == "qwen2":
            return regex.findall(QWEN2, s)
        if self.pre == "smollm":
            return _smollm_split(s)
        return regex.findall(GPT2, s)

    def encode(self, s):
        ids = []
        for w in self.words(s):
            sym = [BYTES[b] for b in w.encode()]
            whole = "".join(sym)
            if (self.pre == "llama-bpe" and whole in self.id and
                    self.types[self.id[whole]] == 1):
                ids.append(self.id[whole])
                continue
            while len(sym) > 1:
                best = None
                for i in range(len(sym) - 1):
                    r = self.rank.get((sym[i], sym[i + 1]))
                    if r is not None and (best is None or r < best[0]):
                        best = (r, i)
                if best is None:
                    break
                i = best[1]
                sym[i:i + 2] = [sym[i] + sym[i + 1]]
            ids += [self.id[x] for x in sym]
        return ids


class RefSPM:
    def __init__(self, meta):
        self.tokens = meta["tokenizer.ggml.tokens"]
        self.types = meta["tokenizer.ggml.token_type"]
        self.scores = meta["tokenizer.ggml.scores"]
        self.id = {t: i for i, t in enumerate(self.tokens)}
        self.byte = {}
        for i, t in enumerate(self.tokens):
            if self.types[i] == 6:
                self.byte[int(t[3:5], 16)] = i

    def normal(self, text):
        i = self.id.get(text)
        return i if i is not None and self.types[i] == 1 else None

    def encode(self, s):
        if not s:
            return []
        sym = list(("\u2581" + s).replace(" ", "\u2581"))
        while True:
            best = None
            for i in range(len(sym) - 1):
                t = self.normal(sym[i] + sym[i + 1])
                if t is not None and (best is None or
                                      self.scores[t] > best[0]):
                    best = (self.scores[t], i)
            if best is None:
                break
            i = best[1]
            sym[i:i + 2] = [sym[i] + sym[i + 1]]
        ids = []
        for x in sym:
            t = self.normal(x)
            if t is not None:
                ids.append(t)
            else:
                ids += [self.byte[b] for b in x.encode()]
        return ids


def _gen(tmp_path, name, *args):
    out = tmp_path / f"{name}.gguf"
    subprocess.run([str(GENGGUF), *args, "--vocab", "600", "--n-embd", "8",
                    "--n-layer", "1", "--n-head", "2", "--n-head-kv", "1",
                    "--n-ff", "8", "--n-ctx", "16", "-o", str(out)],
                   check=True, capture_output=True, timeout=60)
    return out


def _run(path, texts):
    data = "".join(t.hex() + "\n" for t in texts)
    r = subprocess.run([str(_splitter()), "--gguf", str(path)], input=data,
                       capture_output=True, text=True, timeout=120,
                       check=True)
    out = []
    for ln in r.stdout.split("\n")[:len(texts)]:
        ids, back = ln.split("\t")
        out.append(([int(x) for x in ids.split()], bytes.fromhex(back)))
    return out


def _random_texts(seed, n):
    rnd = random.Random(seed)
    words = ("the a of and to in is it that was for on are with as his "
             "they I at be this have from or one had by word but not "
             "what all were we when your can said there use an each "
             "which she do how their if will up other about out many").split()
    out = []
    for _ in range(n):
        k = rnd.randint(1, 12)
        parts = []
        for _ in range(k):
            w = rnd.choice(words)
            if rnd.random() < 0.2:
                w = w.capitalize()
            if rnd.random() < 0.1:
                w += rnd.choice([",", ".", "'s", "!", "\n", "  ", "123"])
            parts.append(w)
        out.append(" ".join(parts))
    return out


CASES = [
    ("bpe-llama3", RefBPE, ["--tokenizer", "bpe", "--template", "llama3"],
     "llama-bpe"),
    ("bpe-smollm", RefBPE, ["--tokenizer", "bpe", "--template", "chatml"],
     "smollm"),
    ("bpe-qwen2", RefBPE, ["--tokenizer", "bpe", "--arch", "qwen2"],
     "qwen2"),
    ("spm", RefSPM, ["--tokenizer", "spm", "--template", "llama2"], None),
]


@pytest.mark.parametrize("name,ref,args,pre", CASES,
                         ids=[c[0] for c in CASES])
def test_against_reference(tmp_path, name, ref, args, pre):
    path = _gen(tmp_path, name, *args)
    meta, _ = read_gguf(path)
    assert meta.get("tokenizer.ggml.pre") == pre
    r = ref(meta)
    texts = TEXTS + _random_texts(zlib.crc32(name.encode()), 300)
    got = _run(path, [t.encode() for t in texts])
    merged = 0
    for t, (ids, back) in zip(texts, got):
        assert ids == r.encode(t), f"{name}: {t!r}"
        assert back == t.encode(), f"{name}: round trip of {t!r}"
        merged += len(ids) < len(t.encode())
    # the vocabulary is real: most texts take fewer tokens than bytes
    assert merged > len(texts) // 2


@pytest.mark.parametrize("name,ref,args,pre", CASES,
                         ids=[c[0] for c in CASES])
def test_any_bytes_round_trip(tmp_path, name, ref, args, pre):
    path = _gen(tmp_path, name, *args)
    rnd = random.Random(7)
    texts = [bytes(range(256)), b"\xff\xfe\x80 bad \xc3 \xe4\xb8 x",
             b"a" * 5000]
    texts += [bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
              for _ in range(200)]
    for t, (ids, back) in zip(texts, _run(path, texts)):
        assert back == t, f"{name}: round trip of {t!r}"
