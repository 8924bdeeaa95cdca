// web/js/app.js - the console's entry point: checks the session, routes
// "#/page/arg..." to a page of pages.js, and keeps the navigation's
// aria-current and the keyboard focus right on every change.
import { logout, session, status } from './lib.js';
import * as pages from './pages.js';

const routes = {
  dashboard: pages.dashboard,
  tenants: pages.tenants,
  issuers: pages.issuers,
  models: pages.models,
  quotas: pages.quotas,
  billing: pages.billing,
  audit: pages.audit,
};

let cleanup = null;
let seq = 0;

async function render() {
  const [name, ...args] = location.hash.replace(/^#\/?/, '').split('/')
    .map(decodeURIComponent);
  const fn = routes[name] || routes.dashboard;
  const main = document.getElementById('main');
  const mine = ++seq;
  if (cleanup) cleanup();
  cleanup = null;
  for (const a of document.querySelectorAll('nav a'))
    if (a.getAttribute('href') === `#/${routes[name] ? name : 'dashboard'}`)
      a.setAttribute('aria-current', 'page');
    else
      a.removeAttribute('aria-current');
  main.setAttribute('aria-busy', 'true');
  try {
    const c = await fn(main, ...args);
    if (mine === seq) cleanup = c || null;
    else if (c) c();
  } catch (e) {
    status(e.message, true);
  } finally {
    main.removeAttribute('aria-busy');
  }
  document.title = `${main.querySelector('h1')?.textContent || 'maas'} — maas console`;
}

document.getElementById('logout').addEventListener('click', () => logout());
window.addEventListener('hashchange', () => {
  status('');
  render().then(() => document.getElementById('main').focus());
});
await session();
await render();
