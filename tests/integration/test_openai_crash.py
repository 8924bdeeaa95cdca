"""A runtime killed (SIGKILL) in the middle of LLM generation: the stream
that was producing tokens ends with an SSE error event, a request that was
not streamed gets 503, a stream that had not started yet runs again on the
restarted runtime and produces exactly the text it produces alone, the
next request works, and nothing is billed twice."""
import json
import signal
import threading
import time

import pytest

from conftest import (SCALE, add_price, deploy_file,
                      request_ids_in_db, running_maasd, tenant_with_key,
                      wait_for)
from openai_helpers import gengguf, gguf_kv, post, stream, chunks_text
from sched_helpers import (cont_process, metric, metrics, runtime_pid,
                           stop_process, wait_new_runtime)

CHAT = "/v1/chat/completions"
MAX_TOKENS = 4000
LONG = 300 * SCALE


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    base = tmp_path_factory.mktemp("openai-crash")
    path = gengguf(base / "slow.gguf", seed=5, n_ctx=MAX_TOKENS + 96,
                   n_embd=256, n_layer=4, n_head=4, n_head_kv=4, n_ff=512,
                   template="chatml")
    kv = gguf_kv(path)
    with running_maasd(base) as d:
        deploy_file(d, "slow", path)
        add_price(d, "slow", per_1k_output_micros=1000000)
        d.path = path
        d.no_eos = {str(kv[k]): -100 for k in
                    ("tokenizer.ggml.eos_token_id",
                     "tokenizer.ggml.eot_token_id") if k in kv}
        yield d


def _body(d, content, max_tokens, seed):
    return {"model": "slow", "max_tokens": max_tokens, "seed": seed,
            "temperature": 0.8, "logit_bias": d.no_eos,
            "messages": [{"role": "user", "content": content}]}


def _busy(d):
    m = metrics(d)
    return (metric(m, "maas_queue_depth", deployment="slow") +
            metric(m, "maas_requests_running", deployment="slow"))


class _Events:
    """An SSE response read event by event."""
    def __init__(self, resp):
        self.resp = resp
        self.lines = resp.iter_lines(chunk_size=1)

    def next(self):
        for ln in self.lines:
            if ln.startswith(b"data: "):
                data = ln[6:].decode()
                return data if data == "[DONE]" else json.loads(data)
        return None

    def rest(self):
        out = []
        while (e := self.next()) is not None:
            out.append(e)
        return out


def test_kill_mid_stream(d):
    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    pid = runtime_pid(d, d.path)
    restarts = metric(metrics(d), "maas_runtime_restarts_total",
                      deployment="slow")

    # A: a stream that is producing tokens.
    ra = post(s, d, CHAT, dict(_body(d, "tell a long story", MAX_TOKENS, 1),
                               stream=True), stream=True)
    assert ra.status_code == 200, ra.text
    a = _Events(ra)
    for _ in range(3):
        assert isinstance(a.next(), dict)

    # C: not streamed, running next to A.
    c_resp = {}

    def run_c():
        c_resp["r"] = post(d.tenant(k["key"]), d, CHAT,
                           _body(d, "and another", MAX_TOKENS, 2),
                           timeout=(10, LONG))
    tc = threading.Thread(target=run_c)
    tc.start()
    wait_for(lambda: _busy(d) >= 2, 30 * SCALE, interval=0.02,
             what="C running")
    # Starting a sequence samples its first token at once; C's TOKENs are
    # not visible from here, so give the runtime a moment (a few steps
    # take milliseconds) before it dies.
    time.sleep(1.0 * SCALE)
    assert isinstance(a.next(), dict)

    # B: queued on the stopped runtime, not started when it dies.
    stop_process(pid)
    b_resp = {}

    def run_b():
        b_resp["r"] = stream(d.tenant(k["key"]), d, CHAT, dict(_body(d, "a short one", 24, 3),
                                              stream_options={
                                                  "include_usage": True}))
    tb = threading.Thread(target=run_b)
    try:
        tb.start()
        wait_for(lambda: _busy(d) >= 3, 30 * SCALE, interval=0.02,
                 what="B queued")
        import os
        os.kill(pid, signal.SIGKILL)
    finally:
        cont_process(pid)

    # A ends with an error event, no [DONE].
    rest = a.rest()
    ra.close()
    assert rest and isinstance(rest[-1], dict) and "error" in rest[-1], rest
    assert "[DONE]" not in rest
    assert rest[-1]["error"]["code"] == "model_unavailable", rest[-1]
    # C gets 503.
    tc.join(LONG)
    rc = c_resp["r"]
    assert rc.status_code == 503, rc.text
    assert rc.json()["error"]["code"] == "model_unavailable"
    # B ran again on the restarted runtime, whole.
    tb.join(LONG)
    rb, evb = b_resp["r"]
    assert rb.status_code == 200, rb.text
    assert evb[-1] == "[DONE]"
    usage_b = evb[-2]["usage"]
    assert usage_b["completion_tokens"] == 24
    new = wait_new_runtime(d, d.path, pid)
    assert new != pid
    m = metrics(d)
    assert metric(m, "maas_runtime_restarts_total",
                  deployment="slow") > restarts
    assert metric(m, "maas_retries_total", deployment="slow") >= 1

    # Alone, B gives the same text: the retry started from scratch.
    rb2, evb2 = stream(s, d, CHAT, _body(d, "a short one", 24, 3))
    assert rb2.status_code == 200
    assert chunks_text(evb2) == chunks_text(evb)

    # One row each; B billed once, for what it produced once.
    ids = [ra.headers["x-request-id"], rc.headers["x-request-id"],
           rb.headers["x-request-id"], rb2.headers["x-request-id"]]
    rows = wait_for(lambda: (lambda x: x if len(x) == 4 else None)(
        request_ids_in_db(d, ids)), 30 * SCALE, what="usage rows")
    con = d.db()
    try:
        n = con.execute("SELECT count(*) FROM usage_events WHERE "
                        "tenant_id = ?", (t["id"],)).fetchone()[0]
    finally:
        con.close()
    assert n == 4
    assert rows[ids[0]]["status"] == 503 and rows[ids[1]]["status"] == 503
    assert rows[ids[2]]["status"] == 200
    assert rows[ids[2]]["completion_tokens"] == 24
    assert rows[ids[2]]["cost_micros"] == 24 * 1000
    assert rows[ids[2]]["prompt_tokens"] == usage_b["prompt_tokens"]
