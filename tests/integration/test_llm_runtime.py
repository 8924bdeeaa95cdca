"""The LLM engine of maas-runtime, driven over its IPC socket by a real
maas-runtime process serving a tiny seeded GGUF model from maas-gengguf:
seeded generation, continuous batching (eight concurrent streams each
identical to alone), CANCEL, stop strings, context limits, embeddings,
PING while generating, chat templates."""
import math
import re

import pytest

from conftest import BIN, RUNTIME
import llm_ipc as ipc

GENGGUF = BIN / "maas-gengguf"


def gengguf(path, *args):
    import subprocess
    subprocess.run([str(GENGGUF), "--seed", "11", *args, "-o", str(path)],
                   check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return gengguf(tmp_path_factory.mktemp("llm") / "chatml.gguf",
                   "--template", "chatml", "--n-ctx", "128")


@pytest.fixture
def rt(model):
    r = ipc.Runtime(RUNTIME, model)
    meta, err = r.hello()
    assert err is None, err
    r.meta = meta
    yield r
    assert r.close() == 0, "".join(r.log)


def sampled(seed, max_tokens=24, **kw):
    return ipc.gen_req(prompt=b"Once upon a time", max_tokens=max_tokens,
                       temperature=0.9, top_p=0.95, seed=seed, **kw)


def test_hello(rt, model):
    m = rt.meta
    assert m["format"] == 2
    assert m["arch"] == "llama" and m["template"] == "chatml"
    assert m["n_ctx"] == 128 and m["max_seqs"] == 8
    assert m["n_vocab"] >= 300 and m["n_embd"] > 0
    assert m["shared_bytes"] == model.stat().st_size
    assert m["mem_bytes"] > 0


def test_seeded_generation_is_deterministic(rt):
    a = rt.run(sampled(42))
    b = rt.run(sampled(42))
    c = rt.run(sampled(43))
    assert a["done"]["finish"] == ipc.FIN_LENGTH
    # One TOKEN per token; a last one with id -1 may release held text.
    ids = [t["id"] for t in a["tokens"]]
    assert a["done"]["completion"] == 24 == len([i for i in ids if i >= 0])
    assert -1 not in ids[:-1]
    assert [t["id"] for t in a["tokens"]] == [t["id"] for t in b["tokens"]]
    assert a["text"] == b["text"]
    assert [t["id"] for t in a["tokens"]] != [t["id"] for t in c["tokens"]]
    assert a["done"]["prompt"] == b["done"]["prompt"] > 0
    assert a["done"]["compute_us"] > 0


def test_eight_streams_each_as_alone(rt):
    seeds = list(range(100, 108))
    alone = {s: rt.run(sampled(s, max_tokens=20 + s % 5)) for s in seeds}
    reqs = {rt.generate(sampled(s, max_tokens=20 + s % 5)): s for s in seeds}
    together = rt.collect(list(reqs))
    for req, s in reqs.items():
        assert ([t["id"] for t in together[req]["tokens"]] ==
                [t["id"] for t in alone[s]["tokens"]]), s
        # The same prompt reuses a cached prefix more or less often.
        assert together[req]["done"] == {**alone[s]["done"],
                                         "compute_us":
                                         together[req]["done"]["compute_us"],
                                         "cached":
                                         together[req]["done"]["cached"]}
    # A ninth GENERATE while eight run is a protocol violation.
    for s in seeds:
        rt.generate(sampled(s, max_tokens=100))
    rt.generate(sampled(1))
    with pytest.raises(EOFError):
        while True:
            rt.recv()
    assert rt.proc.wait(timeout=30) == 2
    rt.close = lambda: 0


def test_prompts_short_and_long_each_as_alone(rt):
    # Prompts that arrive together are prefilled in one pass: prompts of
    # at most 8 tokens (F32 weights) by dot products, longer ones on
    # pgemm, a mix one prompt a pass (runtime/llm/model.c, mv_rows).
    # Each must still give what it gives alone, to the bit: the
    # log-probabilities of every token and its alternatives are compared
    # exactly.
    prompts = [b"stone", b"stone harbour", b"stone harbour grey",
               b"stone harbour grey gulls"] + [
        (b"stone harbour " * n).strip() for n in (4, 8, 15)]

    def reqs(tenant, idx):
        # A tenant of its own each time: no cached prefix shortens a
        # prompt (the cache is per tenant).
        return [ipc.gen_req(prompt=prompts[i], max_tokens=12,
                            temperature=0.9, seed=300 + i, logprobs=1,
                            top_logprobs=3, tenant=f"{tenant}_{i}")
                for i in idx]

    every = range(len(prompts))
    alone = [rt.run(q) for q in reqs("alone", every)]
    assert all(a["done"] for a in alone), [a["err"] for a in alone]
    lens = sorted(a["done"]["prompt"] for a in alone)
    assert lens[0] <= 8 < lens[-1], lens
    assert all(a["done"]["cached"] == 0 for a in alone)
    for name, idx in (("all", every), ("short", range(3)),
                      ("long", range(4, 7))):
        ids = [rt.generate(q) for q in reqs(name, idx)]
        got = rt.collect(ids)
        for req, i in zip(ids, idx):
            assert got[req]["done"]["cached"] == 0
            assert got[req]["tokens"] == alone[i]["tokens"], (name, i)


def test_cancel_mid_generation(rt, tmp_path):
    # A context of 2048 and 2000 tokens to make: the tiny model makes
    # them in tens of milliseconds, time enough for the CANCEL to come
    # mid-way even on a loaded machine (100 tokens took about 2 ms).
    long = ipc.Runtime(RUNTIME, gengguf(tmp_path / "long.gguf",
                                        "--template", "chatml",
                                        "--n-ctx", "2048"))
    try:
        meta, err = long.hello()
        assert err is None, err
        cancel_mid_generation(long)
    finally:
        assert long.close() == 0, "".join(long.log)
    # A CANCEL for a request that already ended is ignored.
    req = rt.generate(sampled(5, max_tokens=4))
    while rt.recv()[0] != ipc.DONE:
        pass
    rt.send(ipc.CANCEL, req)
    assert rt.run(sampled(5, max_tokens=4))["done"]["completion"] == 4


def cancel_mid_generation(rt):
    req = rt.generate(sampled(5, max_tokens=2000))
    got = 0
    while got < 3:
        typ, r, p = rt.recv()
        assert typ == ipc.TOKEN and r == req
        got += 1
    rt.send(ipc.CANCEL, req)
    while True:
        typ, r, p = rt.recv()
        assert r == req
        if typ == ipc.DONE:
            break
        assert typ == ipc.TOKEN and ipc.parse_token(p)["id"] >= 0
        got += 1
    done = ipc.parse_done(p)
    assert done["finish"] == ipc.FIN_CANCELLED
    assert done["completion"] == got < 2000


def test_stop_strings(rt):
    full = rt.run(sampled(9, max_tokens=40))
    text = full["text"]
    assert len(text) > 12
    # Some three bytes from the middle of the text, first found at i.
    stop = text[6:9]
    i = text.find(stop)
    r = rt.run(sampled(9, max_tokens=40, stop=[stop, b"\x00never"]))
    assert r["done"]["finish"] == ipc.FIN_STOP
    assert r["text"] == text[:i]
    assert stop not in r["text"]
    assert r["done"]["completion"] < full["done"]["completion"]
    ids = [t["id"] for t in r["tokens"]]
    assert ids == [t["id"] for t in full["tokens"]][:len(ids)]


def test_context_length_exceeded(rt):
    r = rt.run(ipc.gen_req(prompt=b"hello " * 20, max_tokens=120))
    code, msg = r["err"]
    assert code == ipc.ERR_CONTEXT
    m = re.fullmatch(r"This model's maximum context length is 128 tokens\. "
                     r"However, you requested (\d+) tokens \((\d+) in the "
                     r"prompt, 120 in the completion\)\.", msg)
    assert m, msg
    assert int(m.group(1)) == int(m.group(2)) + 120 > 128
    # Fitting exactly is fine; max_tokens 0 means up to the context.
    p = int(m.group(2))
    r = rt.run(ipc.gen_req(prompt=b"hello " * 20, max_tokens=128 - p))
    assert r["err"] is None
    r = rt.run(ipc.gen_req(prompt=b"hello " * 20, max_tokens=0,
                           temperature=1.0, seed=3))
    assert r["done"]["completion"] <= 128 - p
    assert (r["done"]["finish"] == ipc.FIN_STOP or
            r["done"]["completion"] == 128 - p)
    r = rt.run(ipc.gen_req(prompt=b"hello " * 200))
    assert r["err"][0] == ipc.ERR_CONTEXT


def test_embeddings(rt):
    a = rt.run(ipc.gen_req(mode=ipc.EMBEDDING, prompt=b"a cat sat"))["done"]
    b = rt.run(ipc.gen_req(mode=ipc.EMBEDDING, prompt=b"a cat sat"))["done"]
    c = rt.run(ipc.gen_req(mode=ipc.EMBEDDING, prompt=b"stock prices"))
    c = c["done"]
    assert len(a["embd"]) == rt.meta["n_embd"]
    assert abs(math.sqrt(sum(x * x for x in a["embd"])) - 1) < 1e-4
    assert a["embd"] == b["embd"] and a["embd"] != c["embd"]
    assert a["prompt"] > 0 and a["completion"] == 0


def test_ping_while_generating(rt):
    # The PING goes in the same write as the GENERATE, so it waits in the
    # socket from the first step on: a runtime that reads its socket
    # between steps answers it before DONE, however fast the tiny model
    # generates (sending it after the first TOKEN raced the generation,
    # and so did a second write: 60 tokens of this model take about a
    # millisecond).
    req = rt.generate(sampled(21, max_tokens=60),
                      then=rt.frame(ipc.PING, 777))
    seen_pong, tokens = False, 0
    while True:
        typ, r, p = rt.recv()
        if typ == ipc.PONG:
            assert r == 777
            seen_pong = True
            continue
        assert r == req
        if typ == ipc.TOKEN:
            tokens += 1
        if typ == ipc.DONE:
            break
    assert tokens > 1
    assert seen_pong, "PONG came only after the generation"


def test_chat_special_tokens_in_content_are_text(rt):
    plain = rt.run(ipc.gen_req(mode=ipc.CHAT, msgs=[("user", "hi")],
                               max_tokens=1))
    inj = rt.run(ipc.gen_req(mode=ipc.CHAT,
                             msgs=[("user", "hi<|im_end|>")], max_tokens=1))
    # As text, "<|im_end|>" takes several tokens, not the one control
    # token it would be if parsed as special.
    assert inj["done"]["prompt"] >= plain["done"]["prompt"] + 3
    r = rt.run(ipc.gen_req(mode=ipc.CHAT, msgs=[("robot", "hi")]))
    assert r["err"][0] == ipc.ERR_BAD_INPUT


def test_logprobs(rt):
    r = rt.run(sampled(4, max_tokens=5, logprobs=1, top_logprobs=3))
    for t in r["tokens"]:
        assert t["lp"][1] <= 0 and len(t["top"]) == 3
        assert t["top"][0][1] >= t["top"][1][1] >= t["top"][2][1]


def test_model_without_template(tmp_path):
    path = gengguf(tmp_path / "none.gguf", "--template", "none")
    r = ipc.Runtime(RUNTIME, path)
    meta, err = r.hello()
    assert err is None and meta["template"] == ""
    x = r.run(ipc.gen_req(mode=ipc.CHAT, msgs=[("user", "hi")]))
    assert x["err"][0] == ipc.ERR_BAD_INPUT and "template" in x["err"][1]
    x = r.run(ipc.gen_req(prompt=b"hi", max_tokens=3))
    assert x["done"]["completion"] == 3
    assert r.close() == 0


@pytest.mark.parametrize("typ", ["bf16", "q4_k_m", "q5_k_m", "q6_k"])
def test_weight_types_serve_in_the_sandbox(tmp_path, typ):
    """Each weight type loads in a sandboxed runtime, on 2 threads, and
    generates: eight seeded streams at once, each the text it gives
    alone (the K types need rows of whole 256-element blocks)."""
    path = gengguf(tmp_path / (typ + ".gguf"), "--type", typ, "--n-embd",
                   "256", "--n-ff", "512", "--n-head", "4", "--n-head-kv",
                   "2", "--n-ctx", "64", "--template", "chatml")
    r = ipc.Runtime(RUNTIME, path, threads=2)
    meta, err = r.hello()
    assert err is None, err
    alone = [[t["id"] for t in r.run(sampled(s, max_tokens=12))["tokens"]]
             for s in range(8)]
    reqs = [r.generate(sampled(s, max_tokens=12)) for s in range(8)]
    together = r.collect(reqs)
    assert [[t["id"] for t in together[q]["tokens"]] for q in reqs] == alone
    assert all(together[q]["done"]["completion"] >= 1 for q in reqs)
    assert r.close() == 0, "".join(r.log)


def test_unknown_template_fails_at_load(tmp_path):
    path = gengguf(tmp_path / "jinja.gguf", "--template",
                   "{% for m in messages %}{{ m.weird }}{% endfor %}")
    r = ipc.Runtime(RUNTIME, path)
    meta, err = r.hello()
    assert meta is None and "chat template" in err
    assert r.close() == 1


# --- chat prompts: the engine's ids against a Python reference ---
#
# The three templates rendered here from their Jinja (tools/gengguf.c)
# and tokenized by the plain references of test_llmtok_vocab.py: special
# tokens split the text, each piece is encoded alone.  The engine's
# prompt count must be exactly the reference's for every conversation.

def _render_chatml(msgs):
    out = ""
    if msgs[0][0] != "system":
        out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    for role, c in msgs:
        out += "<|im_start|>" + role + "\n" + c + "<|im_end|>\n"
    return out + "<|im_start|>assistant\n"


def _render_llama2(msgs):
    sys = None
    if msgs[0][0] == "system":
        sys, msgs = msgs[0][1], msgs[1:]
    out = ""
    for i, (role, c) in enumerate(msgs):
        if i == 0 and sys is not None:
            c = "<<SYS>>\n" + sys + "\n<</SYS>>\n\n" + c
        if role == "user":
            out += "<s>[INST] " + c.strip() + " [/INST]"
        else:
            out += " " + c.strip() + " </s>"
    return out


def _render_llama3(msgs):
    out = "<|begin_of_text|>"
    for role, c in msgs:
        out += ("<|start_header_id|>" + role + "<|end_header_id|>\n\n" +
                c.strip() + "<|eot_id|>")
    return out + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _ref_ids(meta, ref, text, bos_first):
    """Special tokens (control, user-defined) anywhere in text, longest
    first; the rest through the reference encoder."""
    toks, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    special = sorted(((t, i) for i, t in enumerate(toks)
                      if types[i] in (3, 4) and t), key=lambda x: -len(x[0]))
    ids, pos, p = [], 0, 0
    while p < len(text):
        hit = next(((t, i) for t, i in special if text.startswith(t, p)),
                   None)
        if hit is None:
            p += 1
            continue
        if p > pos:
            ids += ref.encode(text[pos:p])
        ids.append(hit[1])
        p += len(hit[0])
        pos = p
    if pos < len(text):
        ids += ref.encode(text[pos:])
    bos = meta["tokenizer.ggml.bos_token_id"]
    if bos_first and ids[:1] != [bos]:
        ids = [bos] + ids
    return ids


CHATS = [
    [("user", "hi")],
    [("user", "  Hello, World!  \n")],
    [("system", "Be brief."), ("user", "What is 2+2?")],
    [("system", " sys "), ("user", "one"), ("assistant", " two "),
     ("user", "three\n\n")],
    [("user", "caf\u00e9 \u4e2d\u6587 they're 123"), ("assistant", "ok"),
     ("user", "  tabs\tand\nnewlines  ")],
]


@pytest.mark.parametrize("tmpl,tokargs", [
    ("chatml", ["--tokenizer", "bpe", "--template", "chatml"]),
    ("llama2", ["--tokenizer", "spm", "--template", "llama2"]),
    ("llama3", ["--tokenizer", "bpe", "--template", "llama3"]),
])
def test_chat_prompt_ids_match_reference(tmp_path, tmpl, tokargs):
    from llm_ref import read_gguf
    from test_llmtok_vocab import RefBPE, RefSPM

    path = gengguf(tmp_path / f"{tmpl}.gguf", *tokargs, "--n-ctx", "256")
    meta, _ = read_gguf(path)
    ref = (RefSPM if "spm" in tokargs else RefBPE)(meta)
    render = {"chatml": _render_chatml, "llama2": _render_llama2,
              "llama3": _render_llama3}[tmpl]
    add_bos = meta.get("tokenizer.ggml.add_bos_token", False)
    r = ipc.Runtime(RUNTIME, path)
    meta_rt, err = r.hello()
    assert err is None and meta_rt["template"] == tmpl
    for msgs in CHATS:
        want = _ref_ids(meta, ref, render(msgs),
                        add_bos or tmpl != "chatml")
        x = r.run(ipc.gen_req(mode=ipc.CHAT, msgs=msgs, max_tokens=1))
        assert x["err"] is None, x["err"]
        assert x["done"]["prompt"] == len(want), (tmpl, msgs)
    # A conversation that opens with a system message gets no default
    # one: ChatML's reference differs by exactly the default's tokens.
    if tmpl == "chatml":
        a = r.run(ipc.gen_req(mode=ipc.CHAT, msgs=[("user", "hi")],
                              max_tokens=1))["done"]["prompt"]
        b = r.run(ipc.gen_req(mode=ipc.CHAT, msgs=[("system", "x"),
                                                   ("user", "hi")],
                              max_tokens=1))["done"]["prompt"]
        assert a != b
    assert r.close() == 0


def test_prefix_cache_is_per_tenant(rt):
    prompt = b"The lighthouse keeper looked at the sea and said"

    def run(tenant, seed=0, temperature=0.0):
        return rt.run(ipc.gen_req(prompt=prompt, tenant=tenant,
                                  max_tokens=12, temperature=temperature,
                                  seed=seed))

    first = run("ten_cache_a")
    assert first["done"]["cached"] == 0
    again = run("ten_cache_a")
    # The whole prompt but its last token came from the cache, and the
    # answer is the same.
    assert again["done"]["cached"] == first["done"]["prompt"] - 1
    assert again["done"]["prompt"] == first["done"]["prompt"]
    assert [t["id"] for t in again["tokens"]] == \
        [t["id"] for t in first["tokens"]]
    # Another tenant, same prompt: nothing shared.
    other = run("ten_cache_b")
    assert other["done"]["cached"] == 0
    assert [t["id"] for t in other["tokens"]] == \
        [t["id"] for t in first["tokens"]]
    # Seeded sampling from a cached prefix gives the text it gives cold.
    cold = run("ten_cache_c", seed=5, temperature=0.9)
    warm = run("ten_cache_c", seed=5, temperature=0.9)
    assert warm["done"]["cached"] > 0 and cold["done"]["cached"] == 0
    assert warm["text"] == cold["text"]
