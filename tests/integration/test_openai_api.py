"""The OpenAI-compatible API against a real maasd and a real GGUF runtime:
response shapes, streaming, seeded determinism, embeddings, validation
errors, quotas and the usage rows."""
import base64
import json
import math
import struct
import threading
import time

import pytest

from conftest import (HTTP_TIMEOUT, assert_error, deploy_file, genmodel,
                      request_ids_in_db, running_maasd, set_quota,
                      tenant_with_key, wait_for)
from openai_helpers import (chunks_text, gengguf, post, sse_events, stream)

N_CTX = 256
CHAT = "/v1/chat/completions"
COMPL = "/v1/completions"
EMB = "/v1/embeddings"
MSGS = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me about the sea."}]


def _counts(u):
    """usage without the cache detail, which differs between two runs of
    one prompt (the second reuses the first's prefix)."""
    return {k: v for k, v in u.items() if k != "prompt_tokens_details"}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    base = tmp_path_factory.mktemp("openai")
    llm = gengguf(base / "tiny.gguf", seed=11, n_ctx=N_CTX,
                  template="chatml")
    mlp = genmodel(base / "mlp.onnx", (8, 4), seed=3)
    with running_maasd(base) as d:
        deploy_file(d, "llm", llm)
        deploy_file(d, "mlp", mlp)
        yield d


@pytest.fixture(scope="module")
def tk(d):
    t, k = tenant_with_key(d)
    return t, k, d.tenant(k["key"])


def usage_row(d, rid):
    rows = request_ids_in_db(d, [rid])
    assert rid in rows, f"no usage row for {rid}"
    return rows[rid]


def test_models_list(d, tk):
    _, _, s = tk
    r = s.get(d.url("/v1/models"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["object"] == "list"
    ids = {m["id"] for m in j["data"]}
    assert {"llm", "mlp"} <= ids
    for m in j["data"]:
        assert m["object"] == "model" and m["owned_by"] == "maas"
        assert isinstance(m["created"], int)
    r = s.get(d.url("/v1/models/llm"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.json()["id"] == "llm"
    assert_error(s.get(d.url("/v1/models/nope"), timeout=HTTP_TIMEOUT), 404)
    # An allowlist hides the other models, exactly like absent ones.
    t2, k2 = tenant_with_key(d)
    set_quota(d, t2["id"], allowed_models=["llm"])
    s2 = d.tenant(k2["key"])
    r = s2.get(d.url("/v1/models"), timeout=HTTP_TIMEOUT)
    assert [m["id"] for m in r.json()["data"]] == ["llm"]
    e = assert_error(post(s2, d, CHAT, {"model": "mlp", "messages": MSGS}),
                     404)
    e2 = assert_error(post(s2, d, CHAT, {"model": "nothing-here",
                                         "messages": MSGS}), 404)
    assert e["code"] == e2["code"] == "model_not_found"
    assert e["type"] == e2["type"]


def test_chat_shape_and_usage_row(d, tk):
    _, k, s = tk
    r = post(s, d, CHAT, {"model": "llm", "messages": MSGS,
                          "max_tokens": 12, "seed": 5})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["id"].startswith("chatcmpl-")
    assert j["object"] == "chat.completion"
    assert j["model"] == "llm"
    assert isinstance(j["created"], int) and j["system_fingerprint"]
    (c,) = j["choices"]
    assert c["index"] == 0 and c["logprobs"] is None
    assert c["message"]["role"] == "assistant"
    assert isinstance(c["message"]["content"], str)
    assert c["finish_reason"] in ("stop", "length")
    u = j["usage"]
    assert u["prompt_tokens"] > 0
    assert 0 < u["completion_tokens"] <= 12 or c["finish_reason"] == "stop"
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["prompt_tokens_details"]["cached_tokens"] >= 0
    if c["finish_reason"] == "length":
        assert u["completion_tokens"] == 12
    row = usage_row(d, r.headers["x-request-id"])
    assert row["prompt_tokens"] == u["prompt_tokens"]
    assert row["completion_tokens"] == u["completion_tokens"]
    assert row["status"] == 200 and row["model"] == "llm"
    assert row["key_id"] == k["id"]


def test_seeded_determinism_and_stream_equals_json(d, tk):
    _, _, s = tk
    body = {"model": "llm", "messages": MSGS, "max_tokens": 24,
            "seed": 1234, "temperature": 1.0}
    a = post(s, d, CHAT, body).json()
    b = post(s, d, CHAT, body).json()
    assert a["choices"][0]["message"]["content"] == \
        b["choices"][0]["message"]["content"]
    r, ev = stream(s, d, CHAT, dict(body, stream_options={
        "include_usage": True}))
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert ev[-1] == "[DONE]"
    objs = ev[:-1]
    assert all(o["object"] == "chat.completion.chunk" for o in objs)
    assert len({o["id"] for o in objs}) == 1
    assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
    fin = [o for o in objs if o["choices"] and
           o["choices"][0]["finish_reason"]]
    assert len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] == \
        a["choices"][0]["finish_reason"]
    last = objs[-1]
    assert last["choices"] == [] and _counts(last["usage"]) == \
        _counts(a["usage"])
    assert all(o["usage"] is None for o in objs[:-1])
    assert chunks_text(ev) == a["choices"][0]["message"]["content"]
    row = usage_row(d, rid)
    assert row["completion_tokens"] == a["usage"]["completion_tokens"]
    # Without include_usage: no usage chunk, no usage key.
    r, ev = stream(s, d, CHAT, body)
    assert ev[-1] == "[DONE]" and all("usage" not in o for o in ev[:-1])
    assert ev[-2]["choices"][0]["finish_reason"]


def test_logprobs(d, tk):
    _, _, s = tk
    j = post(s, d, CHAT, {"model": "llm", "messages": MSGS, "max_tokens": 5,
                          "seed": 3, "logprobs": True,
                          "top_logprobs": 2}).json()
    lp = j["choices"][0]["logprobs"]["content"]
    assert 0 < len(lp) <= 5
    for e in lp:
        assert e["logprob"] <= 0 and isinstance(e["bytes"], list)
        assert len(e["top_logprobs"]) == 2
        assert e["top_logprobs"][0]["logprob"] >= e["top_logprobs"][1][
            "logprob"]
    j = post(s, d, COMPL, {"model": "llm", "prompt": "The sea", "seed": 3,
                           "max_tokens": 4, "logprobs": 1}).json()
    lp = j["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == \
        len(lp["top_logprobs"]) == len(lp["text_offset"])


def test_completions(d, tk):
    _, _, s = tk
    body = {"model": "llm", "prompt": "Once upon a time", "max_tokens": 10,
            "seed": 9}
    r = post(s, d, COMPL, body)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["id"].startswith("cmpl-") and j["object"] == "text_completion"
    (c,) = j["choices"]
    assert isinstance(c["text"], str) and c["finish_reason"] in (
        "stop", "length")
    r, ev = stream(s, d, COMPL, dict(body, stream_options={
        "include_usage": True}))
    assert ev[-1] == "[DONE]"
    assert all(o["object"] == "text_completion" for o in ev[:-1])
    assert chunks_text(ev, chat=False) == c["text"]
    assert _counts(ev[-2]["usage"]) == _counts(j["usage"])
    # The same tenant's same prompt again: its prefix came from the cache.
    assert ev[-2]["usage"]["prompt_tokens_details"]["cached_tokens"] > 0


def test_stop_sequence(d, tk):
    _, _, s = tk
    body = {"model": "llm", "prompt": "a b c", "max_tokens": 40, "seed": 4,
            "temperature": 0}
    full = post(s, d, COMPL, body).json()["choices"][0]["text"]
    if len(full) < 6:
        pytest.skip("the random model stopped too early to cut its text")
    stop = full[3:6]
    j = post(s, d, COMPL, dict(body, stop=[stop])).json()
    assert j["choices"][0]["finish_reason"] == "stop"
    assert j["choices"][0]["text"] == full[:full.index(stop)]


def test_embeddings(d, tk):
    _, _, s = tk
    r = post(s, d, EMB, {"model": "llm", "input": ["hello world", "sea"]})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["object"] == "list" and j["model"] == "llm"
    assert [e["index"] for e in j["data"]] == [0, 1]
    v0 = j["data"][0]["embedding"]
    assert j["data"][0]["object"] == "embedding"
    assert abs(math.sqrt(sum(x * x for x in v0)) - 1) < 1e-4
    assert j["usage"]["prompt_tokens"] > 0
    assert j["usage"]["total_tokens"] == j["usage"]["prompt_tokens"]
    row = usage_row(d, r.headers["x-request-id"])
    assert row["prompt_tokens"] == j["usage"]["prompt_tokens"]
    assert row["completion_tokens"] == 0
    b = post(s, d, EMB, {"model": "llm", "input": "hello world",
                         "encoding_format": "base64"}).json()
    raw = base64.b64decode(b["data"][0]["embedding"])
    vb = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(vb) == len(v0)
    assert max(abs(x - y) for x, y in zip(vb, v0)) < 1e-6


@pytest.mark.parametrize("body,param", [
    ({"messages": MSGS}, "model"),
    ({"model": "llm"}, "messages"),
    ({"model": "llm", "messages": [{"role": "bot", "content": "x"}]},
     "messages[0].role"),
    ({"model": "llm", "messages": MSGS, "temperature": 2.5}, "temperature"),
    ({"model": "llm", "messages": MSGS, "n": 2}, "n"),
    ({"model": "llm", "messages": MSGS, "stop": ["a"] * 5}, "stop"),
    ({"model": "llm", "messages": MSGS, "logit_bias": {"1": 500}},
     "logit_bias.1"),
    ({"model": "llm", "messages": MSGS, "top_logprobs": 30,
      "logprobs": True}, "top_logprobs"),
    ({"model": "llm", "messages": MSGS, "max_tokens": 0}, "max_tokens"),
    ({"model": "llm", "messages": MSGS, "max_tokens": N_CTX}, "max_tokens"),
    ({"model": "llm", "messages": MSGS, "stream_options": {
        "include_usage": True}}, "stream_options"),
])
def test_bad_params(d, tk, body, param):
    _, _, s = tk
    r = post(s, d, CHAT, body)
    e = assert_error(r, 400)
    assert e["param"] == param, e
    assert e["type"] == "invalid_request_error"
    # Refused requests are metered (and cost nothing).
    row = usage_row(d, r.headers["x-request-id"])
    assert row["status"] == 400 and row["cost_micros"] == 0


def test_errors(d, tk):
    _, _, s = tk
    bad = d.tenant("maas_sk_" + "0" * 48)
    e = assert_error(post(bad, d, CHAT, {"model": "llm", "messages": MSGS}),
                     401)
    assert e["type"] == "authentication_error"
    e = assert_error(post(s, d, CHAT, {"model": "nope", "messages": MSGS}),
                     404)
    assert e["code"] == "model_not_found" and e["param"] == "model"
    e = assert_error(post(s, d, CHAT, {"model": "mlp", "messages": MSGS}),
                     400)
    assert e["param"] == "model"
    r = s.post(d.url(CHAT), data=b"{not json", timeout=HTTP_TIMEOUT)
    assert_error(r, 400)
    assert_error(s.get(d.url(CHAT), timeout=HTTP_TIMEOUT), 405)
    # A prompt that cannot fit the context, streamed or not: a JSON 400.
    long = "sea " * (N_CTX * 2)
    for st in (False, True):
        r = post(s, d, COMPL, {"model": "llm", "prompt": long,
                               "stream": st, "max_tokens": 4})
        e = assert_error(r, 400)
        assert e["code"] == "context_length_exceeded", e
        assert e["param"] == "prompt", e
        r = post(s, d, CHAT, {"model": "llm", "stream": st, "max_tokens": 4,
                              "messages": [{"role": "user",
                                            "content": long}]})
        e = assert_error(r, 400)
        assert e["code"] == "context_length_exceeded", e
        assert e["param"] == "messages", e
        assert "maximum context length" in e["message"], e
    # The runtime still serves.
    assert post(s, d, COMPL, {"model": "llm", "prompt": "hi",
                              "max_tokens": 2}).status_code == 200


def test_tokens_per_minute(d):
    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    set_quota(d, t["id"], tokens_per_minute=200)
    # The reservation (prompt bound + max_tokens) exceeds what is left.
    r = post(s, d, CHAT, {"model": "llm", "messages": MSGS,
                          "max_tokens": 190})
    e = assert_error(r, 429)
    assert e["type"] == "rate_limit_exceeded" or \
        e["code"] == "rate_limit_exceeded" or "rate" in e["type"]
    assert r.headers.get("Retry-After")
    assert r.headers.get("x-ratelimit-limit-tokens") == "200"
    # A small one fits, and settles to the real count.
    r = post(s, d, CHAT, {"model": "llm", "messages": MSGS,
                          "max_tokens": 3, "seed": 1})
    assert r.status_code == 200, r.text
    used = r.json()["usage"]["total_tokens"]
    r2 = post(s, d, CHAT, {"model": "llm", "messages": MSGS,
                           "max_tokens": 3, "seed": 1})
    assert r2.status_code == 200, r2.text
    left = int(r2.headers["x-ratelimit-remaining-tokens"])
    # After the first settled, what remains is the limit minus its real
    # count minus the second's reservation (at least its real count).
    assert left <= 200 - used - used


def test_eight_concurrent_streams_match_alone(d, tk):
    _, _, s = tk
    bodies = [{"model": "llm", "max_tokens": 20, "seed": 100 + i,
               "messages": [{"role": "user", "content": f"story {i}"}]}
              for i in range(8)]
    alone = [chunks_text(stream(s, d, CHAT, b)[1]) for b in bodies]
    got = [None] * 8
    errs = []

    def run(i):
        try:
            sess = d.tenant(tk[1]["key"])
            got[i] = chunks_text(stream(sess, d, CHAT, bodies[i])[1])
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(e)

    th = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for x in th:
        x.start()
    for x in th:
        x.join(120)
    assert not errs, errs
    assert got == alone


def test_prefix_cache_never_crosses_tenants(d):
    """The same long prompt from two tenants: each tenant's second call
    reuses its own prefix; a first call never gets another's."""
    body = {"model": "llm", "max_tokens": 3, "temperature": 0,
            "prompt": "A prompt only these two tenants ever send, " * 3}
    got = {}
    for name in ("a", "b"):
        _, k = tenant_with_key(d)
        s = d.tenant(k["key"])
        first = post(s, d, COMPL, body)
        again = post(s, d, COMPL, body)
        assert first.status_code == again.status_code == 200
        got[name] = (first.json(), again.json())
    for first, again in got.values():
        assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
        assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == \
            again["usage"]["prompt_tokens"] - 1
        assert again["choices"][0]["text"] == first["choices"][0]["text"]
    assert got["a"][0]["choices"][0]["text"] == \
        got["b"][0]["choices"][0]["text"]
