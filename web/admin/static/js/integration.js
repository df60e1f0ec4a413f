// integration.js — one integration's page (/admin/integrations/{id}): its
// status with pause/resume, webhook URLs and token, and the tabs. The tab is
// in the query (?tab=calls) so it survives a reload and back/forward.

import {get, patch, post, ApiError} from './api.js';
import {h, replace, badge, copyButton, confirmDialog, toast} from './dom.js';
import {docLink, docRef} from './docs.js';
import {handlersTab} from './handlers.js';
import {secretsTab} from './secrets.js';
import {configurationTab} from './configuration.js';
import {callsTab} from './calls.js';
import {campaignsTab} from './campaigns.js';
import {suppressionsTab} from './suppressions.js';
import {auditTab} from './audit.js';

export const tabs = [
  ['handlers', 'Handlers', handlersTab],
  ['secrets', 'Secrets & credentials', secretsTab],
  ['configuration', 'Configuration', configurationTab],
  ['calls', 'Calls', callsTab],
  ['campaigns', 'Campaigns', campaignsTab],
  ['suppressions', 'Suppressions', suppressionsTab],
  ['audit', 'Audit log', auditTab],
];

const WEBHOOKS = ['call-originate', 'call-events', 'agent-init', 'agent-postcall'];

// postcallNote says what ElevenLabs' post-call webhook settings must be: a
// post-call answered 503 (JetStream unavailable) is lost unless ElevenLabs
// retries it, which it does only when retries are switched on.
function postcallNote() {
  return h('p', {class: 'muted', id: 'postcall-note'},
    'In ElevenLabs\' webhook settings, switch retries on (they are off by default, and never under HIPAA): ',
    'a post-call answered 503 while the queue is unavailable is otherwise lost. ',
    'Choose the JSON transcript format, and allow overrides in the agent\'s security settings ',
    'when the integration sends its prompt, first message or language.');
}

export async function integrationPage(ctx) {
  const id = ctx.params[0];
  let it = await get(`/api/integrations/${id}`);
  if (!ctx.alive) return;
  const selected = tabs.find(([key]) => key === ctx.query.get('tab')) || tabs[0];

  const head = h('div', {class: 'page-head'});
  const hooks = h('section', {class: 'card', 'aria-labelledby': 'hooks-h'});
  function drawHead() {
    const paused = it.status === 'paused';
    replace(head,
      h('div', {}, h('p', {class: 'crumbs'}, h('a', {href: '/admin/integrations'}, 'Integrations'), ' / '),
        h('h1', {}, it.name, ' ', badge(it.status)),
        h('p', {class: 'muted'}, 'slug ', h('code', {}, it.slug), ' · ',
          h('a', {href: `/${it.slug}/docs`, target: '_blank', rel: 'noopener'}, 'API docs'), ' · ',
          h('a', {href: `/${it.slug}/openapi.json`, target: '_blank', rel: 'noopener'}, 'OpenAPI'))),
      h('div', {class: 'actions'}, h('button', {type: 'button', class: paused ? 'primary' : 'secondary', onclick: async () => {
        it = await patch(`/api/integrations/${id}`, {status: paused ? 'active' : 'paused'});
        toast(paused ? 'Resumed: calls are dialled again' : 'Paused: nothing new is dialled');
        drawHead();
      }}, paused ? 'Resume' : 'Pause')));
  }
  function drawHooks() {
    const token = h('input', {type: 'password', readonly: true, value: it.webhookToken, id: 'webhook-token', class: 'mono'});
    replace(hooks,
      h('h2', {id: 'hooks-h'}, 'Webhooks'),
      h('p', {class: 'muted'}, 'Send the token as ', h('code', {}, 'X-Webhook-Token'), ' (or a bearer token). ', docLink('webhooks', 'How to wire them')),
      h('ul', {class: 'urls'}, WEBHOOKS.map((name) => {
        const url = `${location.origin}/${it.slug}/webhook/${name}`;
        return h('li', {}, h('code', {}, url), ' ', copyButton(url, `Copy the ${name} URL`),
          name === 'agent-postcall' ? postcallNote() : null);
      })),
      h('div', {class: 'inline'},
        h('label', {for: 'webhook-token'}, 'Webhook token'), token,
        h('button', {type: 'button', class: 'small secondary', 'aria-pressed': 'false', onclick: (e) => {
          const show = token.type === 'password';
          token.type = show ? 'text' : 'password';
          e.currentTarget.textContent = show ? 'Hide' : 'Show';
          e.currentTarget.setAttribute('aria-pressed', String(show));
        }}, 'Show'),
        copyButton(it.webhookToken, 'Copy the webhook token'),
        h('button', {type: 'button', class: 'small danger', onclick: async () => {
          if (!await confirmDialog('Rotate the webhook token? Callers using the old token get 401 from now on.', 'Rotate')) return;
          it = await post(`/api/integrations/${id}/rotate-webhook-token`);
          toast('Webhook token rotated');
          drawHooks();
        }}, 'Rotate token')));
  }
  drawHead();
  drawHooks();

  const tablist = h('div', {role: 'tablist', 'aria-label': 'Integration sections', class: 'tabs', onkeydown: (e) => {
    const i = tabs.indexOf(selected);
    const next = {ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1}[e.key];
    if (next === undefined) return;
    e.preventDefault();
    go(tabs[(next + tabs.length) % tabs.length][0]);
  }}, tabs.map(([key, label]) => h('button', {type: 'button', role: 'tab', id: `tab-${key}`, 'aria-controls': 'tabpanel',
    'aria-selected': String(key === selected[0]), tabindex: key === selected[0] ? 0 : -1, onclick: () => go(key)}, label)));
  const panel = h('section', {role: 'tabpanel', id: 'tabpanel', 'aria-labelledby': `tab-${selected[0]}`, tabindex: 0, class: 'panel'});

  function go(key) {
    ctx.navigate(`/admin/integrations/${id}?tab=${key}`, {focus: `#tab-${key}`});
  }
  replace(ctx.main, head, hooks, tablist, docRef(selected[0]), panel);
  try {
    await selected[2](ctx, it, panel);
  } catch (e) {
    // A tab that cannot load says so in its panel; the rest of the page stays.
    if (!(e instanceof ApiError) || e.status === 401) throw e;
    replace(panel, h('p', {class: 'form-error', role: 'alert'}, `${selected[1]} could not be loaded: ${e.message}`));
  }
}
