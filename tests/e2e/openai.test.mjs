// tests/e2e/openai.test.mjs - the official openai SDK, unchanged but for
// its baseURL, against maasd over HTTPS (started by launch.mjs, which
// sets NODE_EXTRA_CA_CERTS and MAAS_*).  Errors are checked the way the
// SDK surfaces them: APIError subclasses with status, code and param.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import OpenAI from 'openai';

const env = process.env;
const client = new OpenAI({ baseURL: `${env.MAAS_URL}/v1`,
  apiKey: env.MAAS_KEY, maxRetries: 0, timeout: 120000 });
const MSGS = [{ role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Tell me about the sea.' }];

async function admin(method, p, body) {
  const r = await fetch(`${env.MAAS_ADMIN_URL}${p}`, {
    method,
    headers: { Authorization: `Bearer ${env.MAAS_ADMIN_TOKEN}`,
      'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(r.ok, `${method} ${p}: ${r.status} ${text}`);
  return JSON.parse(text);
}

// The usage row of a request, through the admin API.
async function usageRow(tenant, rid) {
  let after = null;
  for (;;) {
    const page = await admin('GET', `/admin/v1/usage?tenant=${tenant}` +
      `&limit=200${after ? `&after=${after}` : ''}`);
    const row = page.data.find((u) => u.request_id === rid);
    if (row) return row;
    if (!page.has_more || page.data.length === 0) return null;
    after = page.data[page.data.length - 1].id;
  }
}

async function waitUsageRow(tenant, rid) {
  for (let i = 0; i < 600; i++) {
    const row = await usageRow(tenant, rid);
    if (row) return row;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no usage row for ${rid}`);
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

const chatText = (chunks) => chunks.map((c) =>
  c.choices[0]?.delta?.content ?? '').join('');

// Reads the GGUF metadata for a token id (for logit_bias).
function ggufTokenId(file, key) {
  const b = fs.readFileSync(file).subarray(0, 16 << 20);
  let off = 4 + 4 + 8;
  const n = Number(b.readBigUInt64LE(off)); off += 8;
  const size = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8,
    11: 8, 12: 8 };
  const str = () => {
    const len = Number(b.readBigUInt64LE(off)); off += 8;
    const s = b.toString('utf8', off, off + len); off += len;
    return s;
  };
  const skip = (t) => {
    if (t === 8) { str(); return; }
    if (t === 9) {
      const et = b.readUInt32LE(off); off += 4;
      const cnt = Number(b.readBigUInt64LE(off)); off += 8;
      for (let i = 0; i < cnt; i++) skip(et);
      return;
    }
    off += size[t];
  };
  for (let i = 0; i < n; i++) {
    const k = str();
    const t = b.readUInt32LE(off); off += 4;
    if (k === key && t === 4) return b.readUInt32LE(off);
    if (k === key && t === 5) return b.readInt32LE(off);
    skip(t);
  }
  return null;
}

test('models list', async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.object, 'model');
    ids.push(m.id);
  }
  assert.ok(ids.includes('llm') && ids.includes('slow'), ids.join());
  const m = await client.models.retrieve('llm');
  assert.equal(m.id, 'llm');
});

test('chat completion, usage as metered', async () => {
  const { data, response } = await client.chat.completions.create({
    model: 'llm', messages: MSGS, max_tokens: 12, seed: 5,
  }).withResponse();
  assert.match(data.id, /^chatcmpl-/);
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(typeof data.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(data.choices[0].finish_reason));
  const u = data.usage;
  assert.ok(u.prompt_tokens > 0 && u.completion_tokens <= 12);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  const row = await waitUsageRow(env.MAAS_TENANT,
    response.headers.get('x-request-id'));
  assert.equal(row.prompt_tokens, u.prompt_tokens);
  assert.equal(row.completion_tokens, u.completion_tokens);
  assert.equal(row.status, 200);
});

test('chat streaming with include_usage equals the JSON answer', async () => {
  const body = { model: 'llm', messages: MSGS, max_tokens: 20, seed: 77 };
  const whole = await client.chat.completions.create(body);
  const { data: stream, response } = await client.chat.completions.create({
    ...body, stream: true, stream_options: { include_usage: true },
  }).withResponse();
  const chunks = await collect(stream);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  // The same prompt again: its prefix comes from the tenant's KV cache.
  const { prompt_tokens_details: cache, ...counts } = last.usage;
  const { prompt_tokens_details: _, ...wholeCounts } = whole.usage;
  assert.deepEqual(counts, wholeCounts);
  assert.ok(cache.cached_tokens > 0);
  const fin = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(fin.length, 1);
  assert.equal(fin[0].choices[0].finish_reason, whole.choices[0].finish_reason);
  assert.equal(chatText(chunks), whole.choices[0].message.content);
  const row = await waitUsageRow(env.MAAS_TENANT,
    response.headers.get('x-request-id'));
  assert.equal(row.completion_tokens, last.usage.completion_tokens);
  assert.equal(row.prompt_tokens, last.usage.prompt_tokens);
});

test('completions, plain and streamed', async () => {
  const body = { model: 'llm', prompt: 'Once upon a time', max_tokens: 10,
    seed: 9 };
  const c = await client.completions.create(body);
  assert.match(c.id, /^cmpl-/);
  assert.equal(c.object, 'text_completion');
  const chunks = await collect(await client.completions.create({
    ...body, stream: true }));
  assert.equal(chunks.map((x) => x.choices[0]?.text ?? '').join(''),
    c.choices[0].text);
});

test('embeddings: base64 (the SDK default) and float agree', async () => {
  const a = await client.embeddings.create({ model: 'llm',
    input: ['hello world', 'the sea'] });
  assert.equal(a.data.length, 2);
  const v = a.data[0].embedding;
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
  const f = await client.embeddings.create({ model: 'llm',
    input: 'hello world', encoding_format: 'float' });
  const w = f.data[0].embedding;
  assert.equal(w.length, v.length);
  for (let i = 0; i < v.length; i++) assert.ok(Math.abs(v[i] - w[i]) < 1e-6);
  assert.ok(a.usage.prompt_tokens > 0);
});

test('errors as the SDK surfaces them', async () => {
  const bad = new OpenAI({ baseURL: `${env.MAAS_URL}/v1`,
    apiKey: `maas_sk_${'0'.repeat(48)}`, maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: 'llm',
    messages: MSGS }), (e) => e instanceof OpenAI.AuthenticationError &&
    e.status === 401);
  await assert.rejects(client.chat.completions.create({ model: 'nope',
    messages: MSGS }), (e) => e instanceof OpenAI.NotFoundError &&
    e.status === 404 && e.code === 'model_not_found' && e.param === 'model');
  for (const [extra, param] of [[{ temperature: 3 }, 'temperature'],
    [{ n: 2 }, 'n'], [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    [{ top_logprobs: 2 }, 'top_logprobs'],
    [{ logit_bias: { 5: 200 } }, 'logit_bias.5']]) {
    await assert.rejects(client.chat.completions.create({ model: 'llm',
      messages: MSGS, ...extra }), (e) => e instanceof OpenAI.BadRequestError &&
      e.status === 400 && e.param === param &&
      e.type === 'invalid_request_error', param);
  }
  await assert.rejects(client.chat.completions.create({ model: 'llm',
    messages: [{ role: 'user', content: 'sea '.repeat(600) }] }),
  (e) => e instanceof OpenAI.BadRequestError &&
    e.code === 'context_length_exceeded');
  // Streamed, the same error comes as an ordinary JSON error.
  await assert.rejects((async () => collect(await client.completions.create({
    model: 'llm', prompt: 'sea '.repeat(600), stream: true })))(),
  (e) => e instanceof OpenAI.BadRequestError &&
    e.code === 'context_length_exceeded');
});

test('429 over the tokens-per-minute quota', async () => {
  const t = await admin('POST', '/admin/v1/tenants', { name: 'e2e-tpm' });
  const k = await admin('POST', `/admin/v1/tenants/${t.id}/keys`,
    { name: 'k' });
  await admin('PUT', `/admin/v1/tenants/${t.id}/quota`,
    { tokens_per_minute: 100 });
  const c = new OpenAI({ baseURL: `${env.MAAS_URL}/v1`, apiKey: k.key,
    maxRetries: 0 });
  await assert.rejects(c.chat.completions.create({ model: 'llm',
    messages: MSGS, max_tokens: 150 }), (e) =>
    e instanceof OpenAI.RateLimitError && e.status === 429 &&
    e.headers.get('retry-after') !== null);
});

test('eight simultaneous seeded streams each match their lone run', async () => {
  const bodies = Array.from({ length: 8 }, (_, i) => ({ model: 'llm',
    max_tokens: 24, seed: 500 + i, stream: true,
    messages: [{ role: 'user', content: `story number ${i}` }] }));
  const alone = [];
  for (const b of bodies)
    alone.push(chatText(await collect(await client.chat.completions.create(b))));
  const together = await Promise.all(bodies.map(async (b) =>
    chatText(await collect(await client.chat.completions.create(b)))));
  assert.deepEqual(together, alone);
  assert.ok(new Set(alone).size > 1, 'different seeds, different texts');
});

test('a stream aborted mid-way is cancelled and billed partially', async () => {
  const eos = ggufTokenId(env.MAAS_SLOW_GGUF, 'tokenizer.ggml.eos_token_id');
  const eot = ggufTokenId(env.MAAS_SLOW_GGUF, 'tokenizer.ggml.eot_token_id');
  const bias = {};
  for (const id of [eos, eot]) if (id !== null) bias[id] = -100;
  const max = 4000;
  const { data: stream, response } = await client.chat.completions.create({
    model: 'slow', max_tokens: max, seed: 3, logit_bias: bias, stream: true,
    messages: [{ role: 'user', content: 'go on forever' }],
  }).withResponse();
  const rid = response.headers.get('x-request-id');
  let n = 0;
  for await (const c of stream) {
    if (++n === 4) break;	// leaving the loop aborts the request
    assert.ok(c);
  }
  const row = await waitUsageRow(env.MAAS_TENANT, rid);
  assert.equal(row.status, 200);
  assert.ok(row.completion_tokens >= 3 && row.completion_tokens < max,
    `completion_tokens ${row.completion_tokens}`);
});
