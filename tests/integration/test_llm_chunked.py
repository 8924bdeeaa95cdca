"""Chunked prefill in the LLM engine of maas-runtime (runtime/llm/engine.c),
driven over its IPC socket by a real maas-runtime serving a tiny seeded
GGUF model: a long prompt arriving while a stream runs is computed in
chunks of 256 tokens with a decode step of the running stream between
them, both produce exactly what they produce alone, and a prompt
cancelled in the middle of its prefill leaves a prefix cache that serves
the next request right."""
import pytest

from conftest import BIN, RUNTIME
import llm_ipc as ipc

CHUNK = 256                 # ENGINE_CHUNK in runtime/llm/engine.c


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import subprocess
    path = tmp_path_factory.mktemp("llm") / "long.gguf"
    subprocess.run([str(BIN / "maas-gengguf"), "--seed", "5", "--template",
                    "chatml", "--n-ctx", "1024", "-o", str(path)],
                   check=True, timeout=120)
    return path


@pytest.fixture
def rt(model):
    r = ipc.Runtime(RUNTIME, model)
    meta, err = r.hello()
    assert err is None, err
    yield r
    assert r.close() == 0, "".join(r.log)


def running(seed, tenant="ten_a"):
    return ipc.gen_req(prompt=b"Once upon a time", max_tokens=400,
                       temperature=0.8, seed=seed, tenant=tenant)


def long_prompt(seed, tenant="ten_b"):
    return ipc.gen_req(prompt=b"the harbour at dawn, grey stones and gulls. "
                       * 30, max_tokens=12, temperature=0.8, seed=seed,
                       tenant=tenant)


def ids(r):
    return [t["id"] for t in r["tokens"]]


def test_long_prompt_interleaves_with_running_stream(rt):
    alone_a = rt.run(running(1))
    alone_b = rt.run(long_prompt(2))
    n_prompt = alone_b["done"]["prompt"]
    assert n_prompt > 2 * CHUNK, "the prompt must take several chunks"
    # Other tenants, so that neither reuses the other's cached prefix.
    a = rt.generate(running(1, tenant="ten_c"))
    typ, req, p = rt.recv()             # A is decoding
    assert (typ, req) == (ipc.TOKEN, a)
    b = rt.generate(long_prompt(2, tenant="ten_d"))
    out = {a: {"tokens": [ipc.parse_token(p)], "done": None},
           b: {"tokens": [], "done": None}}
    a_between = 0                       # A's tokens before B's first
    while out[a]["done"] is None or out[b]["done"] is None:
        typ, req, p = rt.recv()
        if typ == ipc.TOKEN:
            out[req]["tokens"].append(ipc.parse_token(p))
            if req == a and not out[b]["tokens"]:
                a_between += 1
        else:
            assert typ == ipc.DONE, typ
            out[req]["done"] = ipc.parse_done(p)
    # One decode step of A runs before each of B's chunks: a long prompt
    # does not stop a running stream.
    chunks = -(-n_prompt // CHUNK)
    assert a_between >= chunks, (a_between, chunks)
    # Neither is changed by the other: the same tokens as alone.
    assert ids(out[a]) == ids(alone_a)
    assert ids(out[b]) == ids(alone_b)
    assert out[b]["done"]["prompt"] == n_prompt
    assert out[b]["done"]["cached"] == 0
    assert out[a]["done"]["completion"] == alone_a["done"]["completion"]


def test_short_prompts_join_a_running_step_as_alone(rt):
    # Short prompts that arrive while a stream decodes are prefilled in
    # that stream's next decode pass (engine.c, mixed_step()).  Each
    # stream still gives what it gives alone, to the bit: every token's
    # logprobs are compared exactly.
    def req(prompt, seed, tenant, n):
        return ipc.gen_req(prompt=prompt, max_tokens=n, temperature=0.8,
                           seed=seed, logprobs=1, top_logprobs=3,
                           tenant=tenant)
    shorts = (b"stone", b"grey gulls", b"the sea")
    alone_a = rt.run(req(b"Once upon a time", 1, "alone_a", 60))
    alone = [rt.run(req(p, 10 + i, f"alone_{i}", 8))
             for i, p in enumerate(shorts)]
    assert all(x["done"]["prompt"] <= 8 for x in alone), [
        x["done"]["prompt"] for x in alone]
    a = rt.generate(req(b"Once upon a time", 1, "ten_a", 60))
    typ, r, p = rt.recv()               # A is decoding
    assert (typ, r) == (ipc.TOKEN, a)
    joined = [rt.generate(req(p, 10 + i, f"ten_{i}", 8))
              for i, p in enumerate(shorts)]
    out = rt.collect([a] + joined)
    assert [ipc.parse_token(p)] + out[a]["tokens"] == alone_a["tokens"]
    for i, j in enumerate(joined):
        assert out[j]["tokens"] == alone[i]["tokens"], i
        assert out[j]["done"]["cached"] == 0


def test_cancel_during_prefill_keeps_cache_right(rt):
    alone = rt.run(long_prompt(3))
    # The same prompt again from another tenant, cancelled at once: it
    # ends during or after its prefill, either way cancelled.
    b = rt.generate(long_prompt(3, tenant="ten_e"))
    rt.send(ipc.CANCEL, b)
    r = rt.collect([b])[b]
    assert r["done"]["finish"] == ipc.FIN_CANCELLED
    assert r["done"]["completion"] == len([t for t in r["tokens"]
                                           if t["id"] >= 0])
    # That tenant's next request reuses what the cancelled prefill put
    # in the cache, and still yields what the prompt yields alone.
    again = rt.run(long_prompt(3, tenant="ten_e"))
    assert ids(again) == ids(alone)
    assert again["done"]["cached"] <= alone["done"]["prompt"] - 1
