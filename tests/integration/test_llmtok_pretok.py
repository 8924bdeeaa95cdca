"""The BPE pre-tokenizers of runtime/llm/tokenizer.c against the patterns
they implement by hand, run by Python's regex module (Debian
python3-regex), which supports \\p{L} and \\p{N} as Hugging Face's
tokenizers do.  Thousands of seeded random strings over an alphabet chosen
to hit every branch: contractions in both cases, letters and digits of
several scripts, Unicode spaces, CR/LF runs, punctuation, emoji.

The splitter is reached through the unit test binary's --split mode
(test_tokenizer, built next to $MAAS_BIN: <build>/tests/test_tokenizer).
"""
import random
import subprocess
import zlib

import regex

from conftest import BIN, REPO

GPT2 = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
        r"|\s+(?!\S)|\s+")
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+"
          r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

# Characters whose class every implementation agrees on (no U+001C..1F,
# whose \s-ness differs between Python and Rust, nor case-folding oddities
# such as U+017F that (?i) would match as "s").
ALPHABET = (list("aAbBsStTrReEvVmMlLdDxyz") + ["'"] * 6 +
            list("0123456789") + [" "] * 8 + ["\n", "\r", "\t"] * 2 +
            list(".,!?;:-_()[]{}<>|/\\\"#$%&*+=@^`~") +
            ["\u00e9", "\u00df", "\u4e2d", "\u6587", "\u0663", "\u00bd",
             "\u2167", "\u00a0", "\u3000", "\u2003", "\u0085",
             "\U0001F600", "\u2581", "\u0301", "\u05d0"])


def _splitter():
    b = BIN.parent / "tests" / "test_tokenizer"
    if BIN == (REPO / "bin").resolve():
        b = REPO / "build" / "tests" / "test_tokenizer"
    assert b.exists(), f"{b} is not built (make unit)"
    return b


def _expected(pattern, s):
    return [m.group(0) for m in regex.finditer(pattern, s)]


def _smollm(s):
    out, seg = [], ""
    for ch in s:
        if regex.match(r"\p{N}", ch):
            out += _expected(GPT2, seg) + [ch]
            seg = ""
        else:
            seg += ch
    return out + _expected(GPT2, seg)


def _strings(seed, n):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        k = rnd.randint(1, 24)
        out.append("".join(rnd.choice(ALPHABET) for _ in range(k)))
    return out


def _run(pre, strings):
    data = "".join(s.encode().hex() + "\n" for s in strings)
    r = subprocess.run([str(_splitter()), "--split", pre], input=data,
                       capture_output=True, text=True, timeout=120,
                       check=True)
    lines = r.stdout.split("\n")[:len(strings)]
    return [[bytes.fromhex(w).decode() for w in ln.split(" ") if w]
            for ln in lines]


def _check(pre, expect):
    strings = _strings(zlib.crc32(pre.encode()), 3000)
    got = _run(pre, strings)
    bad = [(s, g, expect(s)) for s, g in zip(strings, got) if g != expect(s)]
    assert not bad, f"{len(bad)} mismatches, first: {bad[:3]!r}"


def test_gpt2():
    _check("gpt2", lambda s: _expected(GPT2, s))


def test_llama3():
    _check("llama-bpe", lambda s: _expected(LLAMA3, s))


def test_qwen2():
    _check("qwen2", lambda s: _expected(QWEN2, s))


def test_smollm():
    _check("smollm", _smollm)


def test_fixed_cases():
    # the unit test's hand-worked cases, confirmed by the real patterns
    assert _expected(GPT2, "I'VE  \tgot") == ["I", "'", "VE", "  ", "\t",
                                             "got"]
    assert _expected(LLAMA3, "I'VE  \tgot") == ["I", "'VE", "  ", "\tgot"]
    assert _expected(LLAMA3, "a\n  \n b") == ["a", "\n  \n", " b"]
    assert _smollm("ab  12") == ["ab", "  ", "1", "2"]
