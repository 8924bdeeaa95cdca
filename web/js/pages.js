// web/js/pages.js - one function per console page.  Each takes the <main>
// element and the route's arguments, fills it from the admin API and
// returns an optional cleanup function (the dashboard's refresh timer).
import {
  api, apiAll, button, field, form, h, money, ms, num, query, status, table,
  thisMonth, time,
} from './lib.js';
import { barChart, lineChart } from './chart.js';

function page(main, title, ...children) {
  main.replaceChildren(h('h1', {}, title), ...children);
}

async function tenantNames() {
  const m = new Map();
  for (const t of await apiAll('tenants')) m.set(t.id, t.name);
  return m;
}

// --- dashboard ---

// maasd computes the per-minute numbers (GET usage/series): the page
// never pulls raw usage rows but the latest few.
export async function dashboard(main) {
  const body = h('div', {});
  page(main, 'Dashboard', h('p', { class: 'muted' },
    'The last 30 minutes, per minute, from the metered requests; ',
    'refreshed every 10 seconds. ', button('Refresh now', () => fill())),
  body);
  async function fill() {
    const [ser, recent, deps, names] = await Promise.all([
      api('GET', 'usage/series'),
      api('GET', `usage${query({ order: 'desc', limit: 20 })}`),
      apiAll('deployments'), tenantNames()]);
    // The whole window as one step: its exact percentiles.
    const all = (await api('GET', `usage/series${query({ from: ser.from,
      to: ser.to, step: ser.to - ser.from })}`)).data[0];
    const b = ser.data;
    const labels = b.map((x) =>
      new Date(x.t * 1000).toISOString().slice(11, 16));
    const msOf = (us) => (us === null ? null : us / 1000);
    const ready = deps.filter((d) => d.ready).length;
    body.replaceChildren(
      h('div', { class: 'cards', id: 'dash-cards' },
        card('Requests (30 min)', all.requests, 'dash-requests'),
        card('Errors', all.errors, 'dash-errors'),
        card('p50 latency', `${ms(all.latency_p50_us)} ms`, 'dash-p50'),
        card('p99 latency', `${ms(all.latency_p99_us)} ms`, 'dash-p99'),
        card('Deployments ready', `${ready} / ${deps.length}`, 'dash-ready')),
      h('div', { class: 'charts' },
        lineChart('Requests per second', labels,
          [{ name: 'requests/s', values: b.map((x) => x.requests / ser.step) }],
          'req/s'),
        lineChart('Tokens per second', labels, [{ name: 'tokens/s',
          values: b.map((x) => (x.input_tokens + x.output_tokens) / ser.step) }],
        'tok/s'),
        lineChart('Error rate', labels, [{ name: 'errors',
          values: b.map((x) => (x.requests ? 100 * x.errors / x.requests : null)) }],
        '%'),
        lineChart('Latency', labels, [
          { name: 'p50', values: b.map((x) => msOf(x.latency_p50_us)) },
          { name: 'p99', cls: 'line2',
            values: b.map((x) => msOf(x.latency_p99_us)) }], 'ms')),
      h('h2', {}, 'Top tenants'),
      table('Tenants by requests in the last 30 minutes', [
        { label: 'Tenant', get: (t) => names.get(t.tenant_id) || t.tenant_id },
        { label: 'Requests', num: true, get: (t) => t.requests },
        { label: 'Errors', num: true, get: (t) => t.errors },
        { label: 'Tokens', num: true,
          get: (t) => t.input_tokens + t.output_tokens },
        { label: 'Charged', num: true, get: (t) => money(t.cost_micros) },
      ], ser.top_tenants, { id: 'top-tenants', empty: 'No requests yet.' }),
      h('h2', {}, 'Replica health'),
      table('Deployments', [
        { label: 'Deployment', get: (d) => d.name },
        { label: 'Versions', get: (d) => (d.traffic || [])
          .map((t) => `${t.version}: ${t.weight}%`).join(', ') },
        { label: 'Live replicas', num: true,
          get: (d) => `${d.live_replicas ?? '?'} / ${d.replicas}` },
        { label: 'Ready', get: (d) => h('span',
          { class: d.ready ? 'ok' : 'bad' }, d.ready ? 'ready' : 'not ready') },
      ], deps, { id: 'replica-health', empty: 'No deployments.' }),
      h('h2', {}, 'Recent requests'),
      table('The latest 20 requests', [
        { label: 'Time (UTC)', get: (r) => time(Math.floor(r.ts_us / 1e6)) },
        { label: 'Request', get: (r) => h('code', {}, r.request_id) },
        { label: 'Tenant', get: (r) => names.get(r.tenant_id) || r.tenant_id },
        { label: 'Model', get: (r) => r.model },
        { label: 'Status', num: true, get: (r) => r.status },
        { label: 'Latency (ms)', num: true,
          get: (r) => ms(r.queue_us + r.compute_us) },
        { label: 'Tokens', num: true,
          get: (r) => (r.prompt_tokens || 0) + (r.completion_tokens || 0) },
        { label: 'Charged', num: true, get: (r) => money(r.cost_micros) },
      ], recent.data, { id: 'recent-requests', empty: 'No requests yet.' }));
  }
  function card(label, value, id) {
    return h('div', { class: 'card' }, h('div', { class: 'muted' }, label),
      h('div', { class: 'v', id }, value));
  }
  await fill();
  const t = setInterval(() => fill().catch((e) => status(e.message, true)),
    10000);
  return () => clearInterval(t);
}

// --- tenants and keys ---

export async function tenants(main, id) {
  const tenantsList = await apiAll('tenants');
  const create = form('Create tenant', [
    { name: 'name', label: 'Tenant name', required: true },
  ], 'Create tenant', async (v) => {
    const t = await api('POST', 'tenants', { name: v.name });
    status(`Tenant ${t.name} created.`);
    location.hash = `#/tenants/${t.id}`;
  }, { id: 'tenant-create' });
  const list = table('Tenants', [
    { label: 'Name', get: (t) => h('a', { href: `#/tenants/${t.id}` }, t.name) },
    { label: 'Id', get: (t) => h('code', {}, t.id) },
    { label: 'Status', get: (t) => t.status },
    { label: 'Plan', get: (t) => t.plan },
    { label: 'Weight', num: true, get: (t) => t.weight },
    { label: 'Created (UTC)', get: (t) => time(t.created_at) },
  ], tenantsList, { id: 'tenant-list' });
  page(main, 'Tenants and keys', create, list);
  if (id) main.append(await tenantDetail(id));
}

async function tenantDetail(id) {
  const [t, keys] = await Promise.all([api('GET', `tenants/${id}`),
    apiAll(`tenants/${id}/keys`)]);
  const secretBox = h('div', { id: 'secret-box' });
  const refresh = async () => {
    const again = await tenantDetail(id);
    sec.replaceWith(again);
    return again;
  };
  const keyStatus = (k) => (k.revoked_at ? 'revoked' :
    k.expires_at && k.expires_at * 1000 < Date.now() ? 'expired' : 'active');
  const sec = h('section', { id: 'tenant-detail',
    'aria-labelledby': 'tenant-detail-h' },
  h('h2', { id: 'tenant-detail-h' }, `Tenant ${t.name}`),
  h('p', {}, `Status: ${t.status}. `,
    t.status === 'active' ?
      button('Suspend tenant', async () => {
        await api('POST', `tenants/${id}/suspend`);
        status(`Tenant ${t.name} suspended.`);
        await refresh();
      }, 'danger') :
      button('Resume tenant', async () => {
        await api('POST', `tenants/${id}/resume`);
        status(`Tenant ${t.name} resumed.`);
        await refresh();
      })),
  form('Tenant settings', [
    { name: 'weight', label: 'Fair-share weight (1-1000)', type: 'number',
      min: 1, max: 1000, value: t.weight },
    { name: 'plan', label: 'Plan', value: t.plan },
  ], 'Save settings', async (v) => {
    await api('PATCH', `tenants/${id}`, { weight: num(v.weight),
      plan: v.plan || undefined });
    status('Tenant settings saved.');
  }),
  h('h3', {}, 'Keys'),
  form('Issue key', [
    { name: 'name', label: 'Key name', required: true },
    { name: 'expires', label: 'Expires (UTC date, optional)', type: 'date' },
    { name: 'scopes', label: 'Models it may call (comma list, optional)' },
  ], 'Issue key', async (v) => {
    const body = { name: v.name };
    if (v.expires) body.expires_at = Math.floor(Date.parse(`${v.expires}T00:00:00Z`) / 1000);
    if (v.scopes) body.scopes = v.scopes.split(',').map((x) => x.trim()).filter(Boolean);
    const k = await api('POST', `tenants/${id}/keys`, body);
    const again = await refresh();
    again.querySelector('#secret-box').replaceChildren(
      ...secretFor(`New key ${k.name}`, k.key));
    status(`Key ${k.name} issued.`);
  }, { id: 'key-create' }),
  secretBox,
  h('div', { class: 'inline', id: 'rotate-grace' }, field({ name: 'grace',
    label: 'On rotation, the old secret keeps working for (seconds)',
    type: 'number', min: 0, value: 3600 })),
  table('Keys', [
    { label: 'Name', get: (k) => k.name },
    { label: 'Prefix', get: (k) => h('code', {}, k.prefix) },
    { label: 'Status', get: keyStatus },
    { label: 'Created (UTC)', get: (k) => time(k.created_at) },
    { label: 'Last used (UTC)', get: (k) => time(k.last_used_at) },
    { label: 'Expires (UTC)', get: (k) => time(k.expires_at) },
    { label: 'Actions', get: (k) => (k.revoked_at ? '' : h('span', {},
      button(`Rotate ${k.name}`, async () => {
        const g = Number(sec.querySelector('#rotate-grace input').value || 0);
        const r = await api('POST', `keys/${k.id}/rotate`, { grace_seconds: g });
        const again = await refresh();
        again.querySelector('#secret-box').replaceChildren(
          ...secretFor(`Rotated key ${k.name}`, r.key));
        status(`Key ${k.name} rotated; the old secret works for ${g} s.`);
      }), ' ',
      button(`Revoke ${k.name}`, async () => {
        if (!confirm(`Revoke key ${k.name}? Calls with it stop at once.`))
          return;
        await api('DELETE', `keys/${k.id}`);
        status(`Key ${k.name} revoked.`);
        await refresh();
      }, 'danger'))) },
  ], keys, { id: 'key-list', empty: 'No keys.' }));
  return sec;
}

function secretFor(title, key) {
  return [h('section', { class: 'secret', 'aria-live': 'assertive' },
    h('h3', {}, title),
    h('p', {}, 'Copy this secret now: it is shown once and never stored.'),
    h('output', { id: 'new-key-secret' }, key ?? '(not available)'))];
}

// --- issuers ---

export async function issuers(main) {
  const rows = await apiAll('issuers');
  page(main, 'JWT issuers',
    form('Add issuer', [
      { name: 'kid', label: 'Key id (kid)', required: true },
      { name: 'alg', label: 'Algorithm', options: ['HS256', 'RS256', 'ES256'] },
      { name: 'iss', label: 'Issuer (iss)', required: true },
      { name: 'aud', label: 'Audience (aud)', required: true },
      { name: 'tenant_claim', label: 'Tenant claim', value: 'tenant' },
      { name: 'tenant_id', label: 'Only for tenant (id, optional)' },
      { name: 'key', label: 'Key (HS256 secret or PEM public key)',
        type: 'textarea', required: true },
    ], 'Add issuer', async (v) => {
      await api('POST', 'issuers', { kid: v.kid, alg: v.alg, iss: v.iss,
        aud: v.aud, tenant_claim: v.tenant_claim || undefined,
        tenant_id: v.tenant_id || undefined, key: v.key });
      status(`Issuer ${v.kid} added.`);
      await issuers(main);
    }, { id: 'issuer-create' }),
    table('Issuers', [
      { label: 'kid', get: (i) => i.kid },
      { label: 'Algorithm', get: (i) => i.alg },
      { label: 'iss', get: (i) => i.iss },
      { label: 'aud', get: (i) => i.aud ?? '—' },
      { label: 'Tenant claim', get: (i) => i.tenant_claim },
      { label: 'Tenant', get: (i) => i.tenant_id ?? 'any' },
      { label: 'Key fingerprint', get: (i) => h('code', {}, i.key_fingerprint || '') },
      { label: 'Created (UTC)', get: (i) => time(i.created_at) },
      { label: 'Actions', get: (i) => (i.deleted_at ? 'deleted' :
        button(`Delete ${i.kid}`, async () => {
          if (!confirm(`Delete issuer ${i.kid}?`)) return;
          await api('DELETE', `issuers/${i.id}`);
          status(`Issuer ${i.kid} deleted.`);
          await issuers(main);
        }, 'danger')) },
    ], rows, { id: 'issuer-list', empty: 'No issuers.' }));
}

// --- models and deployments ---

export async function models(main, name) {
  const [ms_, deps] = await Promise.all([apiAll('models'), apiAll('deployments')]);
  const modelNames = [...new Set(ms_.map((m) => m.name))];
  page(main, 'Models and deployments',
    form('Register model', [
      { name: 'name', label: 'Model name', required: true },
      { name: 'version', label: 'Version', required: true, value: '1' },
      { name: 'path', label: 'Model file path on the server (ONNX or GGUF)',
        required: true },
    ], 'Register model', async (v) => {
      status(`Registering ${v.name} (hashing and probing the file)…`);
      await api('POST', 'models', v);
      status(`Model ${v.name} ${v.version} registered.`);
      await models(main);
    }, { id: 'model-create' }),
    table('Models', [
      { label: 'Name', get: (m) => m.name },
      { label: 'Version', get: (m) => m.version },
      { label: 'Format', get: (m) => m.format },
      { label: 'Size (bytes)', num: true, get: (m) => m.size },
      { label: 'SHA-256', get: (m) => h('code', { title: m.sha256 }, m.sha256.slice(0, 12)) },
      { label: 'Registered (UTC)', get: (m) => time(m.created_at) },
    ], ms_, { id: 'model-list', empty: 'No models.' }),
    h('h2', {}, 'Deployments'),
    form('Deploy', [
      { name: 'name', label: 'Deployment name', required: true },
      { name: 'model', label: 'Model', options: modelNames, required: true },
      { name: 'version', label: 'Version', required: true, value: '1' },
      { name: 'replicas', label: 'Replicas', type: 'number', min: 1, value: 1 },
      { name: 'threads', label: 'Threads', type: 'number', min: 1, value: 1 },
      { name: 'max_batch', label: 'Max batch', type: 'number', min: 1, value: 1 },
    ], 'Deploy', async (v) => {
      status(`Deploying ${v.name}…`);
      await api('POST', 'deployments', { name: v.name, model: v.model,
        version: v.version, replicas: num(v.replicas), threads: num(v.threads),
        max_batch: num(v.max_batch) });
      status(`Deployment ${v.name} created.`);
      location.hash = `#/models/${encodeURIComponent(v.name)}`;
    }, { id: 'deploy-create' }),
    table('Deployments', [
      { label: 'Name', get: (d) => h('a', { href: `#/models/${encodeURIComponent(d.name)}` }, d.name) },
      { label: 'Model', get: (d) => d.model },
      { label: 'Traffic', get: (d) => (d.traffic || [])
        .map((t) => `${t.version}: ${t.weight}%`).join(', ') },
      { label: 'Replicas (live / desired)', num: true,
        get: (d) => `${d.live_replicas ?? '?'} / ${d.replicas}` },
      { label: 'Min–max', get: (d) => `${d.min_replicas}–${d.max_replicas}` },
      { label: 'Ready', get: (d) => h('span', { class: d.ready ? 'ok' : 'bad' },
        d.ready ? 'ready' : 'not ready') },
    ], deps, { id: 'deployment-list', empty: 'No deployments.' }));
  const d = deps.find((x) => x.name === name);
  if (!d) return;
  const versions = ms_.filter((m) => m.name === d.model).map((m) => m.version);
  main.append(h('section', { id: 'deployment-detail' },
    h('h2', {}, `Deployment ${d.name}`),
    form('Scale', [
      { name: 'replicas', label: 'Replicas', type: 'number', min: 0, value: d.replicas },
      { name: 'min_replicas', label: 'Min replicas', type: 'number', min: 0, value: d.min_replicas },
      { name: 'max_replicas', label: 'Max replicas', type: 'number', min: 1, value: d.max_replicas },
    ], 'Scale', async (v) => {
      await api('PATCH', `deployments/${encodeURIComponent(d.name)}`, {
        replicas: num(v.replicas), min_replicas: num(v.min_replicas),
        max_replicas: num(v.max_replicas) });
      status(`Deployment ${d.name} scaled.`);
      await models(main, d.name);
    }, { id: 'deploy-scale' }),
    form('Traffic (canary)', [
      { name: 'traffic', label: `Version=weight pairs (versions: ${versions.join(', ')})`,
        value: (d.traffic || []).map((t) => `${t.version}=${t.weight}`).join(', '),
        required: true },
    ], 'Set traffic', async (v) => {
      const list = v.traffic.split(',').map((p) => p.trim()).filter(Boolean)
        .map((p) => {
          const [ver, w] = p.split('=').map((x) => x.trim());
          if (!ver || w === undefined || !/^\d+$/.test(w))
            throw new Error(`"${p}" is not version=weight`);
          return { version: ver, weight: Number(w) };
        });
      await api('PUT', `deployments/${encodeURIComponent(d.name)}/traffic`,
        { versions: list });
      status(`Traffic of ${d.name} set.`);
      await models(main, d.name);
    }, { id: 'deploy-traffic' }),
    h('p', {},
      button('Roll back to the previous traffic', async () => {
        await api('POST', `deployments/${encodeURIComponent(d.name)}/rollback`);
        status(`Deployment ${d.name} rolled back.`);
        await models(main, d.name);
      }, 'secondary', { disabled: !d.prev_traffic }), ' ',
      button(`Delete deployment ${d.name}`, async () => {
        if (!confirm(`Delete deployment ${d.name}? Requests in flight finish.`))
          return;
        await api('DELETE', `deployments/${encodeURIComponent(d.name)}`);
        status(`Deployment ${d.name} deleted (draining).`);
        location.hash = '#/models';
      }, 'danger'))));
}

// --- quotas and prices ---

export async function quotas(main) {
  const [ts, prices, ms_] = await Promise.all([apiAll('tenants'),
    apiAll('prices'), apiAll('models')]);
  const intOrNull = (v) => (v === '' ? null : Number(v));
  const current = h('p', { id: 'quota-current', 'aria-live': 'polite' });
  page(main, 'Quotas and prices',
    h('p', { class: 'muted' }, 'A quota replaces the previous one whole; ',
      'an empty field means unlimited.'),
    current,
    form('Tenant quota', [
      { name: 'tenant', label: 'Tenant', options: ts.map((t) => [t.id, t.name]) },
      { name: 'requests_per_minute', label: 'Requests per minute', type: 'number', min: 0 },
      { name: 'tokens_per_minute', label: 'Tokens per minute', type: 'number', min: 0 },
      { name: 'max_concurrent_requests', label: 'Concurrent requests', type: 'number', min: 0 },
      { name: 'monthly_token_budget', label: 'Monthly token budget', type: 'number', min: 0 },
      { name: 'monthly_credit_budget_micros', label: 'Monthly credit budget (micro-units)', type: 'number', min: 0 },
      { name: 'allowed_models', label: 'Allowed models (comma list; empty: all)' },
    ], 'Set quota', async (v) => {
      const q = {};
      for (const k of QUOTA_FIELDS) q[k] = intOrNull(v[k]);
      q.allowed_models = v.allowed_models ?
        v.allowed_models.split(',').map((x) => x.trim()).filter(Boolean) : null;
      await api('PUT', `tenants/${v.tenant}/quota`, q);
      status('Quota set.');
      await showQuota();
    }, { id: 'quota-set' }),
    h('h2', {}, 'Prices'),
    h('p', { class: 'muted' }, 'Amounts are integer micro-units of the ',
      'currency; a new price applies from its start and old usage keeps its price.'),
    form('Add price', [
      { name: 'model', label: 'Model', options: [...new Set(ms_.map((m) => m.name))] },
      { name: 'per_request_micros', label: 'Per request', type: 'number', min: 0, value: 0 },
      { name: 'per_1k_input_micros', label: 'Per 1K input tokens', type: 'number', min: 0, value: 0 },
      { name: 'per_1k_output_micros', label: 'Per 1K output tokens', type: 'number', min: 0, value: 0 },
      { name: 'per_compute_second_micros', label: 'Per compute second', type: 'number', min: 0, value: 0 },
      { name: 'starts_at', label: 'Starts (UTC date; empty: now)', type: 'date' },
    ], 'Add price', async (v) => {
      const p = { model: v.model };
      for (const k of ['per_request_micros', 'per_1k_input_micros',
        'per_1k_output_micros', 'per_compute_second_micros'])
        p[k] = Number(v[k] || 0);
      if (v.starts_at) p.starts_at = Math.floor(Date.parse(`${v.starts_at}T00:00:00Z`) / 1000);
      await api('POST', 'prices', p);
      status(`Price for ${v.model} added.`);
      await quotas(main);
    }, { id: 'price-create' }),
    table('Price list', [
      { label: 'Model', get: (p) => p.model },
      { label: 'Starts (UTC)', get: (p) => time(p.starts_at) },
      { label: 'Per request', num: true, get: (p) => p.per_request_micros },
      { label: 'Per 1K input', num: true, get: (p) => p.per_1k_input_micros },
      { label: 'Per 1K output', num: true, get: (p) => p.per_1k_output_micros },
      { label: 'Per compute second', num: true, get: (p) => p.per_compute_second_micros },
    ], prices, { id: 'price-list', empty: 'No prices: usage is free.' }));
  // The form shows the chosen tenant's quota as stored.
  const qf = main.querySelector('#quota-set');
  async function showQuota() {
    const id = qf.elements.tenant.value;
    if (!id) return;
    const q = await api('GET', `tenants/${encodeURIComponent(id)}/quota`);
    if (qf.elements.tenant.value !== id) return;	// changed meanwhile
    for (const k of QUOTA_FIELDS) qf.elements[k].value = q[k] ?? '';
    qf.elements.allowed_models.value = (q.allowed_models || []).join(', ');
    current.textContent = q.set ? 'Showing the quota stored for this tenant.' :
      'No quota set for this tenant: unlimited.';
  }
  qf.elements.tenant.addEventListener('change',
    () => showQuota().catch((e) => status(e.message, true)));
  await showQuota();
}

const QUOTA_FIELDS = ['requests_per_minute', 'tokens_per_minute',
  'max_concurrent_requests', 'monthly_token_budget',
  'monthly_credit_budget_micros'];

// --- usage and invoices ---

export async function billing(main, tenant, period) {
  const p = period || thisMonth();
  const monthStart = `${p}-01`;
  const [invs, periods, names] = await Promise.all([
    apiAll(`invoices${query({ period: p })}`), apiAll('billing/periods'),
    tenantNames()]);
  const usageBox = h('div', { id: 'usage-report' });
  page(main, 'Usage and invoices',
    form('Billing month', [
      { name: 'period', label: 'Month (YYYY-MM, UTC)', value: p, placeholder: 'YYYY-MM' },
    ], 'Show month', async (v) => {
      location.hash = `#/billing/-/${v.period}`;
    }, { id: 'period-pick' }),
    h('div', { class: 'charts' }, barChart(`Invoice totals ${p}`,
      invs.map((i) => names.get(i.tenant_id) || i.tenant_id),
      invs.map((i) => i.total_micros / 1e6), 'currency')),
    table(`Invoices for ${p}`, [
      { label: 'Tenant', get: (i) => h('a', { href: `#/billing/${i.tenant_id}/${p}` },
        names.get(i.tenant_id) || i.tenant_id) },
      { label: 'Status', get: (i) => i.status },
      { label: 'Usage', num: true, get: (i) => money(i.usage_micros) },
      { label: 'Adjustments', num: true, get: (i) => money(i.adjustments_micros) },
      { label: 'Total', num: true, get: (i) => money(i.total_micros) },
      { label: 'Lines', num: true, get: (i) => i.line_count },
    ], invs, { id: 'invoice-list', empty: 'No invoices for this month.' }),
    h('p', {}, `Closed months: ${periods.map((x) => x.period).join(', ') || 'none'}. `,
      button(`Close ${p}`, async () => {
        if (!confirm(`Close ${p}? Its invoices can never change again.`)) return;
        await api('POST', `billing/periods/${p}/close`);
        status(`Month ${p} closed.`);
        await billing(main, tenant, p);
      }, 'danger')));
  if (tenant && tenant !== '-') main.append(await invoiceDetail(tenant, p, names));
  main.append(h('h2', {}, 'Usage report'),
    form('Usage report range', [
      { name: 'from', label: 'From (UTC date)', type: 'date', value: monthStart },
      { name: 'to', label: 'To (UTC date, exclusive)', type: 'date', value: '' },
      { name: 'tenant', label: 'Tenant', options: [['', 'all'],
        ...[...names].map(([id, n]) => [id, n])] },
    ], 'Show usage', async (v) => fillUsage(v), { id: 'usage-range' }),
    usageBox);
  async function fillUsage(v) {
    const q = query({ from: v.from, to: v.to, tenant: v.tenant });
    const rep = await api('GET', `usage/report${q}`);
    const days = [...new Set(rep.data.map((r) => r.day))].sort();
    const per = (f) => days.map((d) => rep.data.filter((r) => r.day === d)
      .reduce((s, r) => s + r[f], 0));
    usageBox.replaceChildren(
      h('p', {}, h('a', { href: `/admin/v1/usage/report.csv${q}`,
        download: 'usage-report.csv', id: 'usage-csv' }, 'Download usage CSV')),
      h('div', { class: 'charts' },
        barChart('Requests per day', days, per('requests'), 'requests'),
        barChart('Tokens per day', days,
          days.map((_, i) => per('input_tokens')[i] + per('output_tokens')[i]), 'tokens')),
      table('Usage per day, tenant, model and key', [
        { label: 'Day', get: (r) => r.day },
        { label: 'Tenant', get: (r) => names.get(r.tenant_id) || r.tenant_id },
        { label: 'Model', get: (r) => r.model },
        { label: 'Key', get: (r) => h('code', {}, r.key_id || '—') },
        { label: 'Requests', num: true, get: (r) => r.requests },
        { label: 'Errors', num: true, get: (r) => r.errors },
        { label: 'Input tokens', num: true, get: (r) => r.input_tokens },
        { label: 'Output tokens', num: true, get: (r) => r.output_tokens },
        { label: 'p50 ms', num: true, get: (r) => ms(r.latency_p50_us) },
        { label: 'p95 ms', num: true, get: (r) => ms(r.latency_p95_us) },
        { label: 'p99 ms', num: true, get: (r) => ms(r.latency_p99_us) },
      ], rep.data, { id: 'usage-table', empty: 'No usage in this range.' }));
  }
  await fillUsage({ from: monthStart, to: '',
    tenant: tenant && tenant !== '-' ? tenant : '' });
}

async function invoiceDetail(tenant, p, names) {
  const inv = await api('GET', `invoices/${tenant}/${p}`);
  const csv = `/admin/v1/invoices/${tenant}/${p}.csv`;
  return h('section', { id: 'invoice-detail' },
    h('h2', {}, `Invoice ${names.get(tenant) || tenant}, ${p} (${inv.status})`),
    h('p', {}, h('a', { href: csv, download: `invoice-${tenant}-${p}.csv`,
      id: 'invoice-csv' }, 'Download invoice CSV'), ' ',
    h('a', { href: `/admin/v1/invoices/${tenant}/${p}`,
      download: `invoice-${tenant}-${p}.json` }, 'Download JSON')),
    h('table', { id: 'invoice-lines' },
      h('caption', {}, 'Invoice lines (amounts in micro-units shown as units)'),
      h('thead', {}, h('tr', {}, ['Kind', 'Model', 'Unit', 'Quantity',
        'Unit price', 'Amount'].map((c, i) => h('th',
        { scope: 'col', class: i >= 3 ? 'num' : null }, c)))),
      h('tbody', {}, inv.lines.map((l) => h('tr', {},
        h('td', {}, l.kind + (l.for_period ? ` (${l.for_period})` : '')),
        h('td', {}, l.model ?? '—'),
        h('td', {}, l.unit),
        h('td', { class: 'num' }, `${l.quantity} ${l.quantity_unit || ''}`),
        h('td', { class: 'num' }, `${money(l.unit_price_micros)} / ${l.price_per || ''}`),
        h('td', { class: 'num' }, money(l.amount_micros))))),
      h('tfoot', {}, h('tr', { class: 'total' },
        h('td', { colspan: 5 }, 'Total'),
        h('td', { class: 'num', id: 'invoice-total',
          'data-micros': inv.total_micros }, money(inv.total_micros))))));
}

// --- audit log ---

export async function audit(main) {
  const filters = { action: '', target: '', actor: '' };
  let after = null;
  const box = h('div', {});
  page(main, 'Audit log',
    form('Filter', [
      { name: 'action', label: 'Action (e.g. key.create)' },
      { name: 'target', label: 'Target id' },
      { name: 'actor', label: 'Actor' },
    ], 'Filter', async (v) => {
      Object.assign(filters, v);
      after = null;
      await fill();
    }, { id: 'audit-filter' }),
    box);
  async function fill() {
    const pageData = await api('GET', `audit${query({ ...filters, after,
      limit: 100 })}`);
    const rows = pageData.data;
    box.replaceChildren(table('Changes, oldest first', [
      { label: 'Time (UTC)', get: (a) => time(a.ts) },
      { label: 'Actor', get: (a) => a.actor },
      { label: 'Action', get: (a) => a.action },
      { label: 'Target', get: (a) => h('code', {}, a.target ?? '') },
      { label: 'Detail', get: (a) => h('code', {}, JSON.stringify(a.detail)) },
    ], rows, { id: 'audit-list', empty: 'No entries.' }),
    pageData.has_more ? button('Next page', async () => {
      after = rows[rows.length - 1].id;
      await fill();
    }) : '');
  }
  await fill();
}
