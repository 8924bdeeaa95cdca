// web/js/lib.js - the console's small toolkit: calls to the admin API with
// the session's CSRF token, and DOM building that only ever sets text
// (never HTML), so nothing from the API can inject markup.

let csrf = null;
let leaving = false;

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code || null;
  }
}

// Once: a call that finds the session gone while logout() ends it would
// otherwise start a second navigation, which aborts the first.
function toLogin() {
  if (!leaving) {
    leaving = true;
    location.assign('/login.html');
  }
  return new Promise(() => {});	// the page is going away
}

// Reads the session's CSRF token; sends the browser to the login page
// when there is no session.
export async function session() {
  const r = await fetch('/session', { credentials: 'same-origin' });
  if (r.status === 401) return toLogin();
  if (!r.ok) throw new ApiError(r.status, null);
  const s = await r.json();
  csrf = s.csrf_token;
  return s;
}

// One admin API call: path relative to /admin/v1/, body sent as JSON.
// Anything but GET carries X-CSRF-Token.
export async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`/admin/v1/${path}`, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) return toLogin();
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, j);
  return j;
}

export async function logout() {
  try {
    await fetch('/logout', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrf || '' },
    });
  } catch {
    // The page is leaving already (a call found the session gone).
  }
  return toLogin();
}

// Every page of a list (at most max rows).
export async function apiAll(path, max = 5000) {
  const out = [];
  let after = null;
  const sep = path.includes('?') ? '&' : '?';
  for (;;) {
    const q = after === null ? '' : `&after=${encodeURIComponent(after)}`;
    const page = await api('GET', `${path}${sep}limit=1000${q}`);
    out.push(...page.data);
    if (!page.has_more || page.data.length === 0 || out.length >= max)
      return out;
    const last = page.data[page.data.length - 1];
    after = last.id ?? last.tenant_id;
  }
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// h('td', {class: 'num'}, 'text', child, ...): attributes starting with
// "on" are listeners; children are nodes or text.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;

// A labelled field: {name, label, type, value, options, required, ...}.
export function field(f) {
  const id = `f${++uid}-${f.name}`;
  let input;
  if (f.options) {
    input = h('select', { id, name: f.name, required: f.required },
      f.options.map((o) => {
        const [v, t] = Array.isArray(o) ? o : [o, o];
        return h('option', { value: v, selected: String(v) === String(f.value) }, t);
      }));
  } else if (f.type === 'textarea') {
    input = h('textarea', { id, name: f.name, rows: 4, cols: 50,
      required: f.required }, f.value ?? '');
  } else {
    input = h('input', { id, name: f.name, type: f.type || 'text',
      value: f.value ?? '', required: f.required, min: f.min, max: f.max,
      placeholder: f.placeholder, inputmode: f.inputmode,
      autocomplete: 'off', spellcheck: 'false' });
  }
  return h('div', {}, h('label', { for: id }, f.label), input);
}

// A form of fields whose submit calls onsubmit(values) and reports
// success or the API's error message in the status line.
export function form(title, fields, submitLabel, onsubmit, opts = {}) {
  const f = h('form', { class: 'inline', 'aria-label': title,
    id: opts.id }, fields.map(field),
  h('button', { type: 'submit' }, submitLabel));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const el of f.elements)
      if (el.name) values[el.name] = el.value.trim();
    const btn = f.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      await onsubmit(values);
    } catch (e) {
      status(e.message, true);
    } finally {
      btn.disabled = false;
    }
  });
  return f;
}

export function status(msg, isError = false) {
  const s = document.getElementById('status');
  s.textContent = msg;
  s.className = isError ? 'error' : '';
}

// A table: columns [{label, get(row) -> text|node, num}], rows.
export function table(caption, columns, rows, opts = {}) {
  return h('table', { id: opts.id },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map((c) =>
      h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
    h('tbody', {}, rows.length === 0 ?
      h('tr', {}, h('td', { colspan: columns.length, class: 'muted' },
        opts.empty || 'Nothing yet.')) :
      rows.map((r) => h('tr', { class: opts.rowClass?.(r) },
        columns.map((c) => h('td', { class: c.num ? 'num' : null },
          c.get(r)))))));
}

export function button(label, onclick, cls = 'secondary', extra = {}) {
  return h('button', { type: 'button', class: cls, onclick: async (ev) => {
    ev.currentTarget.disabled = true;
    const b = ev.currentTarget;
    try {
      await onclick();
    } catch (e) {
      status(e.message, true);
    } finally {
      b.disabled = false;
    }
  }, ...extra }, label);
}

export function time(sec) {
  if (sec === null || sec === undefined) return '—';
  return new Date(sec * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

// Micro-units as a decimal amount with six places (exact: integers).
export function money(micros) {
  const neg = micros < 0;
  const m = Math.abs(micros);
  const s = `${Math.floor(m / 1e6)}.${String(m % 1e6).padStart(6, '0')}`;
  return neg ? `-${s}` : s;
}

export function ms(us) {
  return us === null || us === undefined ? '—' : (us / 1000).toFixed(2);
}

export function num(v) {
  return v === '' || v === undefined ? undefined : Number(v);
}

export function thisMonth() {
  return new Date().toISOString().slice(0, 7);
}
