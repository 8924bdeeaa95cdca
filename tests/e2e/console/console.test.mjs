// tests/e2e/console/console.test.mjs - the web console in a real browser
// (Debian's chromium driven by playwright-core) against a real maasd.
//
// maasd is started here on random free ports with a fresh data directory
// and the repository's web/ assets; a small ONNX model is made with
// maas-genmodel.  Through the console we log in, create a tenant, issue a
// key (read from the page), register and deploy the model and price it;
// the key then calls the model over HTTPS, and the request must show on
// the dashboard and on the invoice, whose CSV totals are checked.  The
// session cookie's flags, CSRF refusals and the static files' headers are
// checked with plain HTTPS calls.  Screenshots go to ./artifacts/.
// maasd is stopped by its PID at the end.  Binaries: $MAAS_BIN (default
// <repo>/bin).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const bin = path.resolve(repo, process.env.MAAS_BIN || 'bin');
const artifacts = path.join(here, 'artifacts');
const CHROMIUM = process.env.MAAS_CHROMIUM || '/usr/bin/chromium';
const PRICE = 2500;	// micro-units per request of the test model

let tmp, data, maasd, logFile, port, adminPort, admin, ca, browser, page;
const state = {};	// what one step leaves for the next

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// One HTTPS request trusting only maasd's certificate.
function call(p, method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null :
      typeof body === 'string' ? body : JSON.stringify(body);
    const req = https.request({
      host: '127.0.0.1', port: p, path: url, method, ca,
      headers: {
        ...(payload !== null ? { 'Content-Length': Buffer.byteLength(payload) } : {}),
        ...headers,
      },
      timeout: 30000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode,
        headers: res.headers, text }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    if (payload !== null) req.write(payload);
    req.end();
  });
}

async function waitFor(what, fn, ms) {
  const end = Date.now() + ms;
  let last = null;
  while (Date.now() < end) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what} ${last ?? ''}`);
}

async function shot(name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`),
    fullPage: true });
}

const consoleUrl = (hash = '') => `https://127.0.0.1:${adminPort}/${hash}`;

async function sessionCookie() {
  const all = await page.context().cookies(consoleUrl());
  return all.find((c) => c.name === 'maas_session');
}

function parseCsv(text) {
  const [head, ...rows] = text.trim().split(/\r?\n/);
  const cols = head.split(',');
  return rows.map((r) => Object.fromEntries(r.split(',')
    .map((v, i) => [cols[i], v])));
}

before(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'maas-console-'));
  fs.chmodSync(tmp, 0o755);	// the sandboxed runtime reads the model
  data = path.join(tmp, 'data');
  state.model = path.join(tmp, 'mlp.onnx');
  const g = spawnSync(path.join(bin, 'maas-genmodel'), ['mlp', '--layers',
    '16,32,4', '--seed', '9', '-o', state.model], { encoding: 'utf8' });
  assert.equal(g.status, 0, g.stderr);
  fs.chmodSync(state.model, 0o644);
  port = await freePort();
  do adminPort = await freePort(); while (adminPort === port);
  logFile = path.join(tmp, 'maasd.log');
  const log = fs.openSync(logFile, 'a');
  maasd = spawn(path.join(bin, 'maasd'), ['--data-dir', data,
    '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`,
    '--web-dir', path.join(repo, 'web')], { stdio: ['ignore', log, log] });
  await waitFor('maasd', async () => {
    if (!fs.existsSync(path.join(data, 'tls', 'cert.pem'))) return false;
    ca = fs.readFileSync(path.join(data, 'tls', 'cert.pem'));
    return (await call(port, 'GET', '/healthz')).status === 200;
  }, 60000);
  admin = fs.readFileSync(path.join(data, 'admin.token'), 'utf8').trim();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true,
    acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  page.on('dialog', (d) => d.accept());
  state.pageErrors = [];
  page.on('pageerror', (e) => state.pageErrors.push(e.message));
});

// SIGTERM by PID; SIGKILL if it has not exited 20 s later.
async function stopMaasd() {
  if (!maasd || maasd.exitCode !== null || maasd.signalCode !== null)
    return maasd?.exitCode;
  const gone = new Promise((r) => maasd.once('exit', (code) => r(code)));
  process.kill(maasd.pid, 'SIGTERM');
  const t = setTimeout(() => {
    if (maasd.exitCode === null) process.kill(maasd.pid, 'SIGKILL');
  }, 20000);
  const code = await gone;
  clearTimeout(t);
  return code;
}

after(async () => {
  if (browser) await browser.close();
  await stopMaasd();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('static files carry a strict CSP and no path leaves web/', async () => {
  for (const url of ['/', '/login.html', '/js/app.js', '/app.css']) {
    const r = await call(adminPort, 'GET', url);
    assert.equal(r.status, 200, url);
    const csp = r.headers['content-security-policy'];
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['x-frame-options'], 'DENY');
  }
  assert.match((await call(adminPort, 'GET', '/js/app.js'))
    .headers['content-type'], /^text\/javascript/);
  // No inline script anywhere: every <script> has a src.
  const index = (await call(adminPort, 'GET', '/')).text;
  assert.doesNotMatch(index, /<script(?![^>]*\ssrc=)[^>]*>/);
  for (const bad of ['/../maas.db', '/%2e%2e/%2e%2e/etc/passwd',
    '/js/%2e%2e/%2e%2e/admin.token', '/.git/config', '/js/..%2f..%2fx',
    `/${'a/'.repeat(20)}x.js`, '/index.html%00.js']) {
    const r = await call(adminPort, 'GET', bad);
    assert.ok(r.status === 404 || r.status === 400, `${bad}: ${r.status}`);
    assert.equal(JSON.parse(r.text).error.type !== undefined, true);
  }
  const r = await call(adminPort, 'POST', '/index.html', { body: 'x' });
  assert.equal(r.status, 405);
  assert.equal((await call(adminPort, 'GET', '/admin/v1/tenants')).status, 401);
});

test('login: a wrong token is refused; the right one, typed with the ' +
  'keyboard, gives a strict session cookie', async () => {
  await page.goto(consoleUrl());
  await page.waitForURL('**/login.html');
  await page.getByLabel('Admin token').fill(`maas_admin_${'0'.repeat(48)}`);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/login.html');
  await assert.doesNotReject(page.getByRole('alert')
    .filter({ hasText: 'not accepted' }).waitFor());
  assert.equal(await sessionCookie(), undefined);
  await shot('01-login-refused');

  await page.getByLabel('Admin token').focus();
  await page.keyboard.type(admin);
  await page.keyboard.press('Enter');
  await page.waitForURL(consoleUrl());
  await page.locator('#dash-requests').waitFor();
  const c = await sessionCookie();
  assert.ok(c, 'session cookie set');
  assert.match(c.value, /^[0-9a-f]{64}$/);
  assert.equal(c.httpOnly, true);
  assert.equal(c.secure, true);
  assert.equal(c.sameSite, 'Strict');
  assert.equal(c.path, '/');
  assert.ok(!page.url().includes(admin), 'token kept out of the URL');
  // HttpOnly: the page's own script cannot read it.
  assert.doesNotMatch(await page.evaluate(() => document.cookie),
    /maas_session/);
  state.cookie = c.value;
  await shot('02-dashboard-empty');
});

test('keyboard and labels: skip link, navigation, every field labelled',
  async () => {
    await page.goto(consoleUrl('#/dashboard'));
    await page.reload();
    await page.locator('#dash-requests').waitFor();
    const focused = () => page.evaluate(() =>
      document.activeElement.textContent.trim());
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Skip to content');
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Dashboard');
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Tenants and keys');
    await page.keyboard.press('Enter');
    await page.locator('#tenant-create').waitFor();
    assert.equal(await page.getAttribute('nav a[href="#/tenants"]',
      'aria-current'), 'page');
    for (const r of ['tenants', 'issuers', 'models', 'quotas', 'billing',
      'audit']) {
      await page.goto(consoleUrl(`#/${r}`));
      await page.locator('main h1').waitFor();
      await page.locator('main[aria-busy]').waitFor({ state: 'detached' });
      const unlabelled = await page.evaluate(() => [...document
        .querySelectorAll('input, select, textarea')]
        .filter((e) => e.labels.length === 0).map((e) => e.name));
      assert.deepEqual(unlabelled, [], `unlabelled fields on ${r}`);
    }
  });

test('CSRF: state-changing calls with the cookie need X-CSRF-Token', async () => {
  const cookie = `maas_session=${state.cookie}`;
  const body = JSON.stringify({ name: 'csrf-victim' });
  const json = { 'Content-Type': 'application/json' };
  // Reads work with the cookie alone.
  assert.equal((await call(adminPort, 'GET', '/admin/v1/tenants',
    { headers: { Cookie: cookie } })).status, 200);
  // A cookie-only POST is refused, as is a wrong token.
  let r = await call(adminPort, 'POST', '/admin/v1/tenants',
    { headers: { Cookie: cookie, ...json }, body });
  assert.equal(r.status, 403);
  assert.equal(JSON.parse(r.text).error.code, 'csrf_token_invalid');
  r = await call(adminPort, 'POST', '/admin/v1/tenants', { headers:
    { Cookie: cookie, 'X-CSRF-Token': 'f'.repeat(64), ...json }, body });
  assert.equal(r.status, 403);
  const s = JSON.parse((await call(adminPort, 'GET', '/session',
    { headers: { Cookie: cookie } })).text);
  assert.match(s.csrf_token, /^[0-9a-f]{64}$/);
  // The right token from another origin is refused too.
  r = await call(adminPort, 'POST', '/admin/v1/tenants', { headers:
    { Cookie: cookie, 'X-CSRF-Token': s.csrf_token,
      Origin: 'https://evil.example', ...json }, body });
  assert.equal(r.status, 403);
  // DELETE without the header is refused as well.
  r = await call(adminPort, 'DELETE', '/admin/v1/keys/key_x',
    { headers: { Cookie: cookie } });
  assert.equal(r.status, 403);
  // In the browser: a fetch without the header is refused.
  const st = await page.evaluate(async () => (await fetch('/admin/v1/tenants',
    { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'csrf-victim' }) })).status);
  assert.equal(st, 403);
  // None of the refused calls created anything.
  const list = JSON.parse((await call(adminPort, 'GET', '/admin/v1/tenants',
    { headers: { Authorization: `Bearer ${admin}` } })).text);
  assert.equal(list.data.filter((t) => t.name === 'csrf-victim').length, 0);
  // An unknown session is 401, not a fallback to anything else.
  r = await call(adminPort, 'GET', '/admin/v1/tenants',
    { headers: { Cookie: `maas_session=${'0'.repeat(64)}` } });
  assert.equal(r.status, 401);
});

test('tenant, key, model, deployment and price through the console', async () => {
  await page.getByRole('link', { name: 'Tenants and keys' }).click();
  await page.getByLabel('Tenant name').fill('acme');
  await page.getByRole('button', { name: 'Create tenant' }).click();
  await page.locator('#tenant-detail h2', { hasText: 'Tenant acme' }).waitFor();
  state.tenant = decodeURIComponent(page.url().split('#/tenants/')[1]);
  assert.match(state.tenant, /^ten_/);

  await page.getByLabel('Key name').fill('web');
  await page.getByRole('button', { name: 'Issue key' }).click();
  const secret = page.locator('#new-key-secret');
  await secret.waitFor();
  state.key = (await secret.textContent()).trim();
  assert.match(state.key, /^maas_sk_[0-9a-f]{48}$/);
  await shot('03-key-issued');
  // Shown once: after a reload the page no longer has it.
  await page.reload();
  await page.locator('#key-list').waitFor();
  assert.equal(await page.locator('#new-key-secret').count(), 0);
  assert.ok(!(await page.content()).includes(state.key));

  await page.getByRole('link', { name: 'Models and deployments' }).click();
  await page.getByLabel('Model name').fill('mlp');
  await page.getByLabel('Model file path on the server').fill(state.model);
  await page.getByRole('button', { name: 'Register model' }).click();
  await page.locator('#model-list td', { hasText: 'mlp' }).first().waitFor();
  await page.getByLabel('Deployment name').fill('mlp');
  await page.getByLabel('Model', { exact: true }).selectOption('mlp');
  await page.getByRole('button', { name: 'Deploy' }).click();
  await page.locator('#deployment-detail h2', { hasText: 'Deployment mlp' })
    .waitFor();
  await waitFor('deployment ready', async () => {
    await page.reload();
    const row = page.locator('#deployment-list tr', { hasText: 'mlp' });
    return (await row.textContent()).includes('ready') &&
      !(await row.textContent()).includes('not ready');
  }, 60000);
  await shot('04-deployed');

  await page.getByRole('link', { name: 'Quotas and prices' }).click();
  const pf = page.locator('#price-create');
  await pf.getByLabel('Model').selectOption('mlp');
  await pf.getByLabel('Per request').fill(String(PRICE));
  await pf.getByRole('button', { name: 'Add price' }).click();
  await page.locator('#price-list td', { hasText: 'mlp' }).waitFor();
  await shot('05-price');

  // The quota form shows what is stored, also after a reload.
  let qf = page.locator('#quota-set');
  await qf.getByLabel('Tenant', { exact: true }).selectOption(state.tenant);
  await page.locator('#quota-current', { hasText: 'No quota set' }).waitFor();
  await qf.getByLabel('Requests per minute').fill('6000');
  await qf.getByLabel('Allowed models').fill('mlp');
  await qf.getByRole('button', { name: 'Set quota' }).click();
  await page.locator('#status', { hasText: 'Quota set.' }).waitFor();
  await page.reload();
  qf = page.locator('#quota-set');
  await qf.getByLabel('Tenant', { exact: true }).selectOption(state.tenant);
  await page.locator('#quota-current', { hasText: 'stored' }).waitFor();
  assert.equal(await qf.getByLabel('Requests per minute').inputValue(), '6000');
  assert.equal(await qf.getByLabel('Tokens per minute').inputValue(), '');
  assert.equal(await qf.getByLabel('Allowed models').inputValue(), 'mlp');

  // A JWT issuer bound to the tenant: the list shows the binding.
  await page.getByRole('link', { name: 'Issuers' }).click();
  const isf = page.locator('#issuer-create');
  await isf.getByLabel('Key id (kid)').fill('acme-idp');
  await isf.getByLabel('Issuer (iss)').fill('https://idp.acme.test');
  await isf.getByLabel('Audience (aud)').fill('maas');
  await isf.getByLabel('Only for tenant (id, optional)').fill(state.tenant);
  await isf.getByLabel('Key (HS256 secret or PEM public key)')
    .fill('s'.repeat(40));
  await isf.getByRole('button', { name: 'Add issuer' }).click();
  const irow = page.locator('#issuer-list tr', { hasText: 'acme-idp' });
  await irow.waitFor();
  assert.ok((await irow.textContent()).includes(state.tenant));
});

test('the key calls the model over HTTPS; the request is on the dashboard ' +
  'and the invoice, and the CSVs add up', async () => {
  const req = { inputs: [{ name: 'input', shape: [1, 16], datatype: 'FP32',
    data: Array.from({ length: 16 }, (_, i) => i / 16) }] };
  await waitFor('model ready', async () => (await call(port, 'GET',
    '/v2/models/mlp/ready', { headers: { Authorization: `Bearer ${state.key}` } }))
    .status === 200, 60000);
  const r = await call(port, 'POST', '/v2/models/mlp/infer', {
    headers: { Authorization: `Bearer ${state.key}`,
      'Content-Type': 'application/json' }, body: req });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(JSON.parse(r.text).outputs[0].shape, [1, 4]);
  const rid = r.headers['x-request-id'];
  assert.match(rid, /^req_/);

  await page.getByRole('link', { name: 'Dashboard' }).click();
  const row = page.locator('#recent-requests tr', { hasText: rid });
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[2], 'acme');
  assert.equal(cells[3], 'mlp');
  assert.equal(cells[4], '200');
  assert.equal(cells[7], '0.002500');
  await page.locator('#top-tenants td', { hasText: 'acme' }).waitFor();
  await shot('06-dashboard-request');

  const period = new Date().toISOString().slice(0, 7);
  await page.goto(consoleUrl(`#/billing/${state.tenant}/${period}`));
  const total = page.locator('#invoice-total');
  await total.waitFor();
  assert.equal(await total.getAttribute('data-micros'), String(PRICE));
  assert.equal((await total.textContent()).trim(), '0.002500');
  const reqLine = page.locator('#invoice-lines tbody tr',
    { hasText: 'requests' });
  assert.match(await reqLine.textContent(), /1 request/);
  await shot('07-invoice');

  // The invoice CSV, downloaded by the browser with its session.
  let [dl] = await Promise.all([page.waitForEvent('download'),
    page.locator('#invoice-csv').click()]);
  const invFile = path.join(artifacts, 'invoice.csv');
  await dl.saveAs(invFile);
  const inv = parseCsv(fs.readFileSync(invFile, 'utf8'));
  const lines = inv.filter((x) => x.kind !== 'total');
  const totalRow = inv.find((x) => x.kind === 'total');
  assert.ok(totalRow, 'a total row');
  const sum = lines.reduce((s, x) => s + Number(x.amount_micros), 0);
  assert.equal(sum, PRICE);
  assert.equal(Number(totalRow.amount_micros), PRICE);
  const reqs = lines.find((x) => x.unit === 'requests' && x.model === 'mlp');
  assert.equal(Number(reqs.quantity), 1);
  assert.equal(Number(reqs.amount_micros), PRICE);
  // ...and it says what the API says.
  const api = JSON.parse((await call(adminPort, 'GET',
    `/admin/v1/invoices/${state.tenant}/${period}`,
  { headers: { Authorization: `Bearer ${admin}` } })).text);
  assert.equal(api.total_micros, Number(totalRow.amount_micros));

  // The usage report CSV of the same page: one request, no error.
  await page.locator('#usage-table td', { hasText: 'mlp' }).first().waitFor();
  [dl] = await Promise.all([page.waitForEvent('download'),
    page.locator('#usage-csv').click()]);
  const useFile = path.join(artifacts, 'usage.csv');
  await dl.saveAs(useFile);
  const use = parseCsv(fs.readFileSync(useFile, 'utf8'))
    .filter((x) => x.tenant_id === state.tenant);
  assert.equal(use.reduce((s, x) => s + Number(x.requests), 0), 1);
  assert.equal(use.reduce((s, x) => s + Number(x.errors), 0), 0);
  const shown = await page.locator('#usage-table tr', { hasText: 'mlp' })
    .locator('td').allTextContents();
  assert.equal(shown[4], '1');
});

test('rotate and revoke a key from the console', async () => {
  await page.goto(consoleUrl(`#/tenants/${state.tenant}`));
  await page.getByRole('button', { name: 'Rotate web' }).click();
  const secret = page.locator('#new-key-secret');
  await secret.waitFor();
  const rotated = (await secret.textContent()).trim();
  assert.match(rotated, /^maas_sk_[0-9a-f]{48}$/);
  assert.notEqual(rotated, state.key);
  const infer = async (key) => (await call(port, 'GET', '/v2/models/mlp',
    { headers: { Authorization: `Bearer ${key}` } })).status;
  assert.equal(await infer(rotated), 200);
  assert.equal(await infer(state.key), 200, 'the old key works in its grace');
  // Revoke the new key: its row is the one with its prefix.
  await page.locator('#key-list tr', { hasText: rotated.slice(8, 20) })
    .getByRole('button', { name: 'Revoke web' }).click();
  await page.locator('#key-list tr', { hasText: rotated.slice(8, 20) })
    .filter({ hasText: 'revoked' }).waitFor();
  assert.equal(await infer(rotated), 401);
  await shot('08-keys');
});

test('the audit log shows the console\'s changes', async () => {
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByLabel('Action (e.g. key.create)').fill('tenant.create');
  await page.getByRole('button', { name: 'Filter' }).click();
  // Every row shown is a tenant creation, and acme's is among them.
  await waitFor('filtered audit log', async () => {
    const actions = await page.locator('#audit-list tbody tr td:nth-child(3)')
      .allTextContents();
    const targets = await page.locator('#audit-list tbody tr td:nth-child(4)')
      .allTextContents();
    return actions.length > 0 &&
      actions.every((x) => x === 'tenant.create') &&
      targets.includes(state.tenant);
  }, 10000);
  // Made through the console, so audited as the console's.
  const acme = page.locator('#audit-list tbody tr', { hasText: state.tenant });
  assert.equal(await acme.locator('td:nth-child(2)').textContent(), 'console');
  await shot('09-audit');
});

test('logout ends the session on the server', async () => {
  await page.goto(consoleUrl('#/dashboard'));
  await page.locator('#dash-requests').waitFor();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL('**/login.html');
  const r = await call(adminPort, 'GET', '/admin/v1/tenants',
    { headers: { Cookie: `maas_session=${state.cookie}` } });
  assert.equal(r.status, 401);
  await page.goto(consoleUrl());
  await page.waitForURL('**/login.html');
  assert.deepEqual(state.pageErrors, []);
  // Nothing secret reached maasd's log.
  const log = fs.readFileSync(logFile, 'utf8');
  for (const s of [admin, state.key, state.cookie])
    assert.ok(!log.includes(s), 'a secret in the log');
});

test('maasd stops cleanly, with no sanitizer report in its log', async () => {
  assert.equal(await stopMaasd(), 0);
  const log = fs.readFileSync(logFile, 'utf8');
  assert.doesNotMatch(log, /ERROR: (Address|Leak)Sanitizer|runtime error:/);
});
