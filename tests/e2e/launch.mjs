// tests/e2e/launch.mjs - starts a real maasd for the end-to-end tests and
// runs `node --test` against it.
//
// It generates tiny seeded GGUF models with maas-gengguf, starts maasd on
// random free ports with a fresh data directory, creates a tenant with an
// API key through the admin API, deploys the models, then runs the test
// files with NODE_EXTRA_CA_CERTS pointing at maasd's self-signed
// certificate (so the openai SDK trusts it unchanged) and MAAS_* variables
// describing the server.  maasd is stopped by its PID at the end, whatever
// happened.  Binaries come from $MAAS_BIN (default <repo>/bin).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const bin = path.resolve(repo, process.env.MAAS_BIN || 'bin');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'maas-e2e-'));
const data = path.join(tmp, 'data');
let maasd = null;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function gengguf(file, args) {
  const r = spawnSync(path.join(bin, 'maas-gengguf'),
    [...args, '-o', file], { encoding: 'utf8', timeout: 300000 });
  if (r.status !== 0)
    throw new Error(`maas-gengguf ${args.join(' ')}: ${r.stderr}`);
  fs.chmodSync(file, 0o644);
  return file;
}

// One HTTPS request trusting only maasd's certificate.
function call(port, method, p, token, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null : JSON.stringify(body);
    const req = https.request({
      host: '127.0.0.1', port, path: p, method,
      ca: fs.readFileSync(path.join(data, 'tls', 'cert.pem')),
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(payload ? { 'Content-Type': 'application/json' } : {}),
      },
      timeout: 30000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    if (payload) req.write(payload);
    req.end();
  });
}

async function waitFor(what, fn, ms) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    if (maasd.exitCode !== null)
      throw new Error(`maasd exited (${maasd.exitCode}) waiting for ${what}`);
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}: ${last ?? ''}`);
}

async function stop() {
  if (maasd === null || maasd.exitCode !== null) return;
  const gone = new Promise((r) => maasd.once('exit', r));
  process.kill(maasd.pid, 'SIGTERM');
  const t = setTimeout(() => {
    if (maasd.exitCode === null) process.kill(maasd.pid, 'SIGKILL');
  }, 20000);
  await gone;
  clearTimeout(t);
}

async function main() {
  const tiny = gengguf(path.join(tmp, 'tiny.gguf'),
    ['--seed', '11', '--n-ctx', '256', '--template', 'chatml']);
  // Slow enough to abort a stream in the middle of it.
  const slow = gengguf(path.join(tmp, 'slow.gguf'),
    ['--seed', '5', '--n-ctx', '4096', '--n-embd', '256', '--n-layer', '4',
      '--n-head', '4', '--n-head-kv', '4', '--n-ff', '512',
      '--template', 'chatml']);
  const port = await freePort();
  let adminPort = await freePort();
  while (adminPort === port) adminPort = await freePort();
  const log = fs.openSync(path.join(tmp, 'maasd.log'), 'a');
  maasd = spawn(path.join(bin, 'maasd'), ['--data-dir', data,
    '--listen', `127.0.0.1:${port}`,
    '--admin-listen', `127.0.0.1:${adminPort}`],
  { stdio: ['ignore', log, log] });
  await waitFor('/healthz', async () =>
    fs.existsSync(path.join(data, 'tls', 'cert.pem')) &&
    (await call(port, 'GET', '/healthz')).status === 200, 60000);
  const admin = fs.readFileSync(path.join(data, 'admin.token'), 'utf8').trim();
  const must = async (method, p, body, want) => {
    const r = await call(adminPort, method, p, admin, body);
    if (r.status !== want)
      throw new Error(`${method} ${p}: ${r.status} ${r.text}`);
    return JSON.parse(r.text);
  };
  const tenant = await must('POST', '/admin/v1/tenants', { name: 'e2e' }, 201);
  const key = await must('POST', `/admin/v1/tenants/${tenant.id}/keys`,
    { name: 'e2e' }, 201);
  for (const [name, file] of [['llm', tiny], ['slow', slow]]) {
    await must('POST', '/admin/v1/models',
      { name, version: '1', path: file }, 201);
    await must('POST', '/admin/v1/deployments',
      { name, model: name, version: '1', replicas: 1, threads: 1 }, 201);
  }
  await waitFor('/readyz', async () =>
    (await call(port, 'GET', '/readyz')).status === 200, 120000);

  const files = process.argv.slice(2).length ? process.argv.slice(2) :
    fs.readdirSync(here).filter((f) => f.endsWith('.test.mjs'))
      .map((f) => path.join(here, f));
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1',
    ...files], {
    stdio: 'inherit',
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: path.join(data, 'tls', 'cert.pem'),
      MAAS_URL: `https://127.0.0.1:${port}`,
      MAAS_ADMIN_URL: `https://127.0.0.1:${adminPort}`,
      MAAS_ADMIN_TOKEN: admin,
      MAAS_KEY: key.key,
      MAAS_TENANT: tenant.id,
      MAAS_SLOW_GGUF: slow,
    },
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(`launch: ${e.stack || e}`);
  try {
    console.error(fs.readFileSync(path.join(tmp, 'maasd.log'), 'utf8')
      .split('\n').slice(-40).join('\n'));
  } catch { /* no log */ }
} finally {
  await stop();
}
// maasd must have stopped cleanly (under ASan, a leak makes this fail).
if (code === 0 && maasd !== null && maasd.exitCode !== 0) {
  console.error(`launch: maasd exited with ${maasd.exitCode} ` +
    `(signal ${maasd.signalCode})`);
  code = 1;
}
if (code === 0) fs.rmSync(tmp, { recursive: true, force: true });
else console.error(`launch: maasd's data and log kept in ${tmp}`);
process.exit(code ?? 1);
