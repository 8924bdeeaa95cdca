"""The C llama forward pass (runtime/llm/model.c, driven by the test helper
llm_logits) against the numpy reference of llm_ref.py, on tiny models made
by maas-gengguf: logits at several positions, by prefill (one sgemm pass,
also across prefill chunks) and by decode steps, and embeddings.

Tolerances (max abs difference of logits): 1e-4 for every weight type.
The reference dequantizes F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K
exactly as ggml defines them
and runs in float64, and maas computes in float32 without quantizing the
activations, so the quantized types are as tight as F32: what remains is
float32 rounding in the C code.
"""
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import llm_ref
from conftest import BIN, REPO

GENGGUF = BIN / "maas-gengguf"


def _helper():
    env = os.environ.get("MAAS_LLM_LOGITS")
    if env:
        return Path(env)
    for p in (BIN.parent / "tests" / "llm_logits",
              REPO / "build" / "tests" / "llm_logits"):
        if p.exists():
            return p
    pytest.skip("llm_logits helper not built (make unit)")


TOL = {"f32": 1e-4, "f16": 1e-4, "bf16": 1e-4, "q8_0": 1e-4, "q4_0": 1e-4, "q4_k": 1e-4,
       "q5_k": 1e-4, "q6_k": 1e-4}


def gen(tmp_path, name, *args):
    out = tmp_path / name
    subprocess.run([str(GENGGUF), *args, "-o", str(out)], check=True,
                   timeout=120)
    return out


def run_c(model, tokens, prefill=None, embed=False, threads=1):
    cmd = [str(_helper()), str(model), "--threads", str(threads)]
    if embed:
        cmd.append("--embed")
    if prefill is not None:
        cmd += ["--prefill", str(prefill)]
    cmd += [str(t) for t in tokens]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {}
    emb = None
    for line in r.stdout.splitlines():
        f = line.split()
        if f[0] == "logits":
            rows[int(f[1])] = np.array([float(x) for x in f[2:]])
        elif f[0] == "embed":
            emb = np.array([float(x) for x in f[1:]])
    return rows, emb


CONFIGS = [
    ("llama-spm-f32", ["--arch", "llama", "--tokenizer", "spm",
                       "--type", "f32", "--seed", "7"], "f32"),
    ("qwen2-bpe-f32", ["--arch", "qwen2", "--tokenizer", "bpe",
                       "--template", "chatml", "--type", "f32",
                       "--seed", "8"], "f32"),
    ("llama-bpe-f16", ["--arch", "llama", "--tokenizer", "bpe",
                       "--template", "llama3", "--type", "f16",
                       "--seed", "9"], "f16"),
    ("qwen2-spm-bf16", ["--arch", "qwen2", "--tokenizer", "spm",
                        "--type", "bf16", "--seed", "18"], "bf16"),
    ("llama-spm-q8_0", ["--arch", "llama", "--tokenizer", "spm",
                        "--template", "llama2", "--type", "q8_0",
                        "--seed", "10"], "q8_0"),
    ("qwen2-bpe-q8_0", ["--arch", "qwen2", "--tokenizer", "bpe",
                        "--type", "q8_0", "--seed", "11", "--n-head", "8",
                        "--n-head-kv", "2"], "q8_0"),
    ("llama-spm-q4_0", ["--arch", "llama", "--tokenizer", "spm",
                        "--type", "q4_0", "--seed", "12"], "q4_0"),
    # The K types need rows of whole 256-element blocks.  q4_k_m mixes
    # Q4_K and Q6_K as llama.cpp's Q4_K_M files do, q5_k_m Q5_K and Q6_K.
    ("llama-spm-q4_k_m", ["--arch", "llama", "--tokenizer", "spm",
                          "--type", "q4_k_m", "--seed", "15", "--n-embd",
                          "256", "--n-ff", "512", "--n-head", "4",
                          "--n-head-kv", "2"], "q4_k"),
    ("llama-bpe-q5_k_m", ["--arch", "llama", "--tokenizer", "bpe",
                          "--type", "q5_k_m", "--seed", "17", "--n-embd",
                          "256", "--n-ff", "768", "--n-head", "2",
                          "--n-head-kv", "1"], "q5_k"),
    ("qwen2-bpe-q6_k", ["--arch", "qwen2", "--tokenizer", "bpe",
                        "--type", "q6_k", "--seed", "16", "--n-embd", "256",
                        "--n-ff", "256", "--n-head", "8", "--n-head-kv",
                        "2"], "q6_k"),
    # FFN wider than one prefill product item (GM_ROWS in model.c), the
    # last item partial (and, for q8_0, its last dequantized block).
    ("llama-wide-f32", ["--arch", "llama", "--type", "f32", "--seed", "13",
                        "--n-ff", "352"], "f32"),
    ("llama-wide-q8_0", ["--arch", "llama", "--type", "q8_0",
                         "--seed", "14", "--n-ff", "352"], "q8_0"),
]


@pytest.mark.parametrize("name,args,typ", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_logits_match_numpy(tmp_path, name, args, typ):
    model = gen(tmp_path, name + ".gguf", *args)
    ref = llm_ref.Model(model)
    nv = ref.w["token_embd.weight"].shape[0]
    rng = np.random.default_rng(len(name))
    # Prompts: short; decoded on 2 threads; a longer one; each followed
    # by decode steps.  (Prompts longer than a prefill chunk: below.)
    for n, npre, th in ((6, 3, 1), (12, 1, 2), (80, 70, 1)):
        toks = [int(t) for t in rng.integers(0, nv, n)]
        got, _ = run_c(model, toks, prefill=npre, threads=th)
        want, _ = ref.forward(toks)
        assert sorted(got) == list(range(npre - 1, n))
        for pos, row in got.items():
            diff = np.max(np.abs(row - want[pos]))
            assert diff <= TOL[typ], (name, n, pos, diff)


@pytest.mark.parametrize("args,typ", [
    (["--arch", "llama", "--type", "f32", "--seed", "21"], "f32"),
    (["--arch", "qwen2", "--tokenizer", "bpe", "--type", "q8_0",
      "--seed", "22", "--n-head", "8", "--n-head-kv", "2"], "q8_0"),
], ids=["llama-f32", "qwen2-q8_0"])
def test_long_prompt_crosses_prefill_chunks(tmp_path, args, typ):
    """A 560-token prompt is prefilled in three chunks of at most 256 rows
    (LLM_ROWS in model.c), on 2 threads: each chunk's attention reads the
    K/V the chunks before it stored.  The last prompt position and the
    decode steps after it match numpy."""
    model = gen(tmp_path, "long.gguf", *args, "--n-ctx", "600")
    ref = llm_ref.Model(model)
    nv = ref.w["token_embd.weight"].shape[0]
    rng = np.random.default_rng(560)
    n, npre = 566, 560
    toks = [int(t) for t in rng.integers(0, nv, n)]
    got, _ = run_c(model, toks, prefill=npre, threads=2)
    want, _ = ref.forward(toks)
    assert sorted(got) == list(range(npre - 1, n))
    for pos, row in got.items():
        diff = np.max(np.abs(row - want[pos]))
        assert diff <= TOL[typ], (pos, diff)


def test_prefill_equals_decode(tmp_path):
    """Positions computed by prefill and by decode agree (to float32
    rounding: sgemm and dot products sum in different orders)."""
    model = gen(tmp_path, "m.gguf", "--seed", "3")
    toks = [5, 77, 300, 12, 9, 400, 1, 2]
    a, _ = run_c(model, toks, prefill=8)
    b, _ = run_c(model, toks, prefill=1)
    assert np.max(np.abs(a[7] - b[7])) <= 1e-5


@pytest.mark.parametrize("args", [["--arch", "llama"],
                                  ["--arch", "qwen2", "--type", "q8_0"]])
def test_embedding_matches_numpy(tmp_path, args):
    model = gen(tmp_path, "e.gguf", *args, "--seed", "5")
    ref = llm_ref.Model(model)
    for toks in ([1, 50, 60, 70], list(range(3, 100, 3))):
        _, emb = run_c(model, toks, embed=True)
        want = ref.embed(toks)
        assert abs(np.linalg.norm(emb) - 1.0) < 1e-5
        assert np.max(np.abs(emb - want)) <= 1e-5


def test_generator_is_deterministic(tmp_path):
    args = ["--tokenizer", "bpe", "--type", "q8_0", "--seed", "42"]
    a = gen(tmp_path, "a.gguf", *args)
    b = gen(tmp_path, "b.gguf", *args)
    c = gen(tmp_path, "c.gguf", *args[:-1], "43")
    h = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert h[0] == h[1]
    assert h[0] != h[2]


def test_generator_vocabulary(tmp_path):
    """The learnt vocabularies have the shape the tokenizers expect."""
    m, _ = llm_ref.read_gguf(gen(tmp_path, "s.gguf", "--tokenizer", "spm",
                                 "--template", "chatml"))
    toks = m["tokenizer.ggml.tokens"]
    types = m["tokenizer.ggml.token_type"]
    assert m["tokenizer.ggml.model"] == "llama"
    assert toks[:3] == ["<unk>", "<s>", "</s>"]
    assert toks[3 + 0x41] == "<0x41>" and types[3 + 0x41] == 6
    assert "\u2581the" in toks
    assert len(set(toks)) == len(toks) == 512
    assert toks.index("<|im_end|>") == m["tokenizer.ggml.eot_token_id"]
    sc = m["tokenizer.ggml.scores"]
    assert all(s <= 0 for s in sc)
    assert "<|im_start|>" in m["tokenizer.chat_template"]

    m, _ = llm_ref.read_gguf(gen(tmp_path, "b.gguf", "--tokenizer", "bpe",
                                 "--template", "llama3"))
    toks = m["tokenizer.ggml.tokens"]
    types = m["tokenizer.ggml.token_type"]
    merges = m["tokenizer.ggml.merges"]
    assert m["tokenizer.ggml.model"] == "gpt2"
    assert m["tokenizer.ggml.pre"] == "llama-bpe"
    assert toks[ord("a")] == "a" and toks[ord(" ")] == "\u0120"
    assert "\u0120the" in toks
    assert len(set(toks)) == len(toks) == 512
    for mg in merges:
        left, right = mg.split(" ")
        assert left in toks and right in toks and left + right in toks
    for s in ("<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
              "<|end_header_id|>", "<|im_start|>", "<|im_end|>"):
        assert types[toks.index(s)] == 3
    assert toks[m["tokenizer.ggml.bos_token_id"]] == "<|begin_of_text|>"
    assert toks[m["tokenizer.ggml.eos_token_id"]] == "<|eot_id|>"
    assert "<|start_header_id|>" in m["tokenizer.chat_template"]
