"""A client that closes a stream mid-way cancels its generation: the usage
row records (and bills) the tokens produced up to then, far fewer than
asked for, and the runtime goes on serving."""
import json
import socket
import ssl
import time

import pytest

from conftest import (HTTP_TIMEOUT, SCALE, add_price, deploy_file,
                      request_ids_in_db, running_maasd, tenant_with_key,
                      wait_for)
from openai_helpers import gengguf, gguf_kv, post

N_CTX = 4096
MAX_TOKENS = 4000


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    base = tmp_path_factory.mktemp("openai-disconnect")
    # Big enough that 4000 tokens take a while to generate.
    path = gengguf(base / "slow.gguf", seed=5, n_ctx=N_CTX, n_embd=256,
                   n_layer=4, n_head=4, n_head_kv=4, n_ff=512,
                   template="chatml")
    kv = gguf_kv(path)
    with running_maasd(base) as d:
        deploy_file(d, "slow", path)
        add_price(d, "slow", per_1k_output_micros=1000000)
        d.no_eos = {str(kv[k]): -100 for k in
                    ("tokenizer.ggml.eos_token_id",
                     "tokenizer.ggml.eot_token_id") if k in kv}
        yield d


def test_disconnect_cancels_and_bills_partial(d):
    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    body = {"model": "slow", "stream": True, "max_tokens": MAX_TOKENS,
            "seed": 7, "logit_bias": d.no_eos,
            "messages": [{"role": "user", "content": "go on forever"}]}
    # A raw TLS connection, so that closing it is exactly a close.
    ctx = ssl.create_default_context(cafile=d.cert)
    raw = socket.create_connection(("127.0.0.1", d.port),
                                   timeout=30 * SCALE)
    conn = ctx.wrap_socket(raw, server_hostname="localhost")
    data = json.dumps(body).encode()
    conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n"
                 b"Host: 127.0.0.1\r\n"
                 b"Authorization: Bearer " + k["key"].encode() + b"\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: " + str(len(data)).encode() + b"\r\n"
                 b"\r\n" + data)
    got = b""
    while got.count(b"data: ") < 4:
        b = conn.recv(65536)
        assert b, got
        got += b
    head = got.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200"), head
    rid = [h.split(":", 1)[1].strip() for h in head.split("\r\n")
           if h.lower().startswith("x-request-id:")][0]
    conn.close()

    def row():
        return request_ids_in_db(d, [rid]).get(rid)
    u = wait_for(row, 60 * SCALE, interval=0.1, what="the usage row")
    assert u["status"] == 200
    assert u["prompt_tokens"] > 0
    assert 3 <= u["completion_tokens"] < MAX_TOKENS, u
    # Billed for what was produced: 1 credit per output token.
    assert u["cost_micros"] == u["completion_tokens"] * 1000, u
    # The runtime is free again and answers.
    r = post(s, d, "/v1/chat/completions", {
        "model": "slow", "max_tokens": 2,
        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text


def _tenant_rows(d, tenant_id):
    con = d.db()
    try:
        return [dict(r) for r in con.execute(
            "SELECT * FROM usage_events WHERE tenant_id = ?", (tenant_id,))]
    finally:
        con.close()


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions",
     {"messages": [{"role": "user", "content": "go on forever"}]}),
    ("/v1/completions", {"prompt": "Once upon a time"}),
])
def test_disconnect_before_answer_cancels(d, path, body):
    """Not streamed: the client leaves while its answer is computed; the
    job is cancelled at once and the row bills what was produced."""
    from sched_helpers import metric, metrics
    t, k = tenant_with_key(d)
    s = d.tenant(k["key"])
    body = {**body, "model": "slow", "max_tokens": MAX_TOKENS, "seed": 9,
            "logit_bias": d.no_eos}
    ctx = ssl.create_default_context(cafile=d.cert)
    raw = socket.create_connection(("127.0.0.1", d.port),
                                   timeout=30 * SCALE)
    conn = ctx.wrap_socket(raw, server_hostname="localhost")
    data = json.dumps(body).encode()
    conn.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\n"
                 b"Host: 127.0.0.1\r\n"
                 b"Authorization: Bearer " + k["key"].encode() + b"\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: " + str(len(data)).encode() + b"\r\n"
                 b"\r\n" + data)
    # Running means the runtime was sent the job, not that it has sampled
    # yet (a loaded sanitized runtime may still be reading it). A pause
    # lets it produce some tokens: far fewer than 4000 at this model size.
    wait_for(lambda: metric(metrics(d), "maas_requests_running",
                            deployment="slow") >= 1, 30 * SCALE,
             interval=0.02, what="the job running")
    time.sleep(0.5 * SCALE)
    conn.close()
    u = wait_for(lambda: (_tenant_rows(d, t["id"]) or [None])[0],
                 60 * SCALE, interval=0.1, what="the usage row")
    assert u["prompt_tokens"] > 0, u
    assert 1 <= u["completion_tokens"] < MAX_TOKENS, u
    assert u["status"] == 200, u
    assert u["cost_micros"] == u["completion_tokens"] * 1000, u
    wait_for(lambda: metric(metrics(d), "maas_requests_running",
                            deployment="slow") == 0, 30 * SCALE,
             interval=0.05, what="the runtime free")
    r = post(s, d, "/v1/completions", {"model": "slow", "prompt": "hi",
                                       "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert len(_tenant_rows(d, t["id"])) == 2
