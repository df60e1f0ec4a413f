// main.js — the console's entry: sign-in, the router (History API, so deep
// links and back/forward work) and the page lifecycle. Each page is a
// function that draws into <main> and may register pollers that stop when
// the user leaves it.

import {session, whenUnauthorized, request, ApiError} from './api.js';
import {h, replace, field, toast} from './dom.js';
import {integrationsPage, newIntegrationPage} from './integrations.js';
import {integrationPage} from './integration.js';
import {callPage} from './call.js';
import {campaignPage} from './campaign.js';
import {deadLettersPage} from './deadletters.js';
import {peoplePage} from './people.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');

const routes = [
  [/^\/admin\/?$/, () => navigate('/admin/integrations', {replace: true})],
  [/^\/admin\/integrations\/?$/, integrationsPage],
  [/^\/admin\/integrations\/new\/?$/, newIntegrationPage],
  [/^\/admin\/integrations\/([0-9a-f-]{36})\/?$/, integrationPage],
  [/^\/admin\/calls\/([0-9a-f-]{36})\/?$/, callPage],
  [/^\/admin\/campaigns\/([0-9a-f-]{36})\/?$/, campaignPage],
  [/^\/admin\/dead-letters\/?$/, deadLettersPage],
  [/^\/admin\/people\/?$/, peoplePage],
];

// current is the page on screen; leaving it runs its cleanups.
let current = {cleanups: [], alive: false};

function leave() {
  current.alive = false;
  for (const fn of current.cleanups) fn();
}

// navigate goes to path (and query) inside the console.
// focus names what gets the focus once the page is drawn: its heading by
// default, or a selector (a tab keeps the focus when the user switches tabs).
export function navigate(path, {replace: rep = false, focus = true} = {}) {
  if (rep) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render({focus});
}

function render({focus = false} = {}) {
  leave();
  const page = {cleanups: [], alive: true};
  current = page;
  if (!session.token) {
    nav.hidden = true;
    signIn();
    return;
  }
  nav.hidden = false;
  const path = location.pathname;
  for (const [re, fn] of routes) {
    const m = path.match(re);
    if (!m) continue;
    const ctx = {
      main, params: m.slice(1), query: new URLSearchParams(location.search), navigate,
      get alive() { return page.alive; },
      onLeave(fn) { page.cleanups.push(fn); },
      // every(ms, fn) runs fn now and then every ms while the page is shown,
      // never two at once (a slow answer delays the next poll). The first
      // run's error is the page's (a 404 shows "Not found"); a later one is
      // logged and the polling goes on.
      async every(ms, fn) {
        let timer;
        const tick = async () => {
          if (!page.alive) return;
          try { await fn(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) console.error(e); }
          if (page.alive) timer = setTimeout(tick, ms);
        };
        page.cleanups.push(() => clearTimeout(timer));
        await fn();
        if (page.alive) timer = setTimeout(tick, ms);
      },
      // setQuery rewrites the query string without drawing the page again.
      setQuery(params) {
        const q = new URLSearchParams(location.search);
        for (const [k, v] of Object.entries(params)) (v === '' || v === null || v === undefined) ? q.delete(k) : q.set(k, v);
        const s = q.toString();
        history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
      },
    };
    const before = document.activeElement;
    Promise.resolve(fn(ctx)).then(() => {
      // Never take the focus from a field the user went to while the
      // page was loading.
      const moved = document.activeElement !== before && document.activeElement !== document.body;
      if (!page.alive || moved) return;
      if (typeof focus === 'string') document.querySelector(focus)?.focus();
      else if (focus) focusHeading();
    }).catch((e) => showError(e));
    return;
  }
  replace(main, h('h1', {tabindex: -1}, 'Not found'), h('p', {}, 'No console page here. ', h('a', {href: '/admin/integrations'}, 'Integrations')));
}

function focusHeading() {
  const h1 = main.querySelector('h1');
  if (h1) { h1.setAttribute('tabindex', '-1'); h1.focus({preventScroll: true}); }
}

function showError(e) {
  if (e instanceof ApiError && e.status === 401) return;
  const what = e instanceof ApiError && e.status === 404 ? 'Not found' : 'Something went wrong';
  replace(main, h('h1', {tabindex: -1}, what), h('p', {class: 'form-error', role: 'alert'}, e.message),
    h('p', {}, h('a', {href: '/admin/integrations'}, 'Back to integrations')));
}

function signIn(message) {
  const input = h('input', {type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false'});
  const err = h('p', {class: 'form-error', role: 'alert', hidden: !message}, message || '');
  const form = h('form', {class: 'card narrow', 'aria-labelledby': 'signin-h', onsubmit: async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    session.signIn(token);
    try {
      await request('GET', '/api/integrations?limit=1', undefined, {signIn: true});
    } catch (ex) {
      session.signOut();
      err.textContent = ex.status === 401 ? 'That token was not accepted.' : ex.message;
      err.hidden = false;
      input.focus();
      return;
    }
    if (location.pathname === '/admin/' || location.pathname === '/admin') history.replaceState(null, '', '/admin/integrations');
    render({focus: true});
  }},
  h('h1', {id: 'signin-h'}, 'Sign in'),
  h('p', {}, 'Use an admin API token (', h('code', {}, 'callqueue token create --owner YOU'), ' prints one; ',
    h('code', {}, 'make run'), ' prints a demo token). It is kept for this tab only.'),
  err,
  field('Admin token', input),
  h('button', {type: 'submit', class: 'primary'}, 'Sign in'));
  replace(main, form);
  input.focus();
}

whenUnauthorized(() => {
  leave();
  nav.hidden = true;
  signIn('Your session has ended: sign in again.');
});

document.getElementById('sign-out').addEventListener('click', () => {
  session.signOut();
  render();
  toast('Signed out');
});

// Links inside the console change the page without a reload.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/admin/') || url.pathname.startsWith('/admin/static/') ||
    url.pathname.startsWith('/admin/docs/')) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => render({focus: true}));

render();
