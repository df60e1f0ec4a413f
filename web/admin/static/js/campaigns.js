// campaigns.js — the Campaigns tab (contract §6): the integration's
// campaigns with their progress, pause/resume/cancel, and a create form.
// A campaign's own page (campaign.js) takes the recipients' CSV.

import {list, post, query, ApiError} from './api.js';
import {h, replace, field, badge, parseJSON, toast, clearErrors, formError, showFieldError} from './dom.js';

const PAGE = 20;
// Progress segments in the order they are drawn, with their labels.
const SEGMENTS = [['completed', 'completed'], ['failed', 'failed'], ['cancelled', 'cancelled'], ['suppressed', 'suppressed'],
  ['waitingPostcall', 'waiting post-call'], ['active', 'active'], ['retryScheduled', 'retry scheduled'], ['queued', 'queued']];

// progressBar draws a campaign's progress as one bar per status, with the
// counts written out for those who do not see the bar.
export function progressBar(p) {
  p = p || {};
  const total = p.total || 0;
  const bar = h('div', {class: 'stack', 'aria-hidden': 'true'});
  for (const [key] of SEGMENTS) {
    const seg = h('span', {class: `seg p-${key}`});
    seg.style.width = total ? (100 * (p[key] || 0) / total) + '%' : '0';
    bar.append(seg);
  }
  const done = (p.completed || 0) + (p.failed || 0) + (p.cancelled || 0) + (p.suppressed || 0);
  return h('div', {class: 'progress'}, bar,
    h('p', {class: 'legend small'}, h('strong', {}, `${done} of ${total} done`), ' · ',
      SEGMENTS.filter(([k]) => p[k]).map(([k, label]) => h('span', {class: 'item'}, h('span', {class: `dot p-${k}`, 'aria-hidden': 'true'}), `${label} ${p[k]}`))));
}

// campaignActions are pause/resume/cancel as the status allows.
export function campaignActions(c, done) {
  const act = (verb, label, cls) => h('button', {type: 'button', class: `small ${cls}`, 'data-action': verb, onclick: async () => {
    try {
      await post(`/api/campaigns/${c.id}/${verb}`);
      toast(`${c.name}: ${verb === 'cancel' ? 'cancelled' : verb + 'd'}`);
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      toast(ex.message);
    }
    done();
  }}, label, h('span', {class: 'sr-only'}, ' ' + c.name));
  const open = c.status !== 'completed' && c.status !== 'cancelled';
  return [
    c.status === 'running' || c.status === 'scheduled' ? act('pause', 'Pause', 'secondary') : null,
    c.status === 'paused' ? act('resume', 'Resume', 'primary') : null,
    open ? act('cancel', 'Cancel', 'danger') : null,
  ];
}

export async function campaignsTab(ctx, it, panel) {
  const tableWrap = h('div', {class: 'table-wrap', id: 'campaigns-list'});
  const state = {page: 0};
  let last = '';

  async function load() {
    const {items, total} = await list('/api/campaigns' + query({integrationId: it.id, limit: PAGE, offset: state.page * PAGE}));
    if (!ctx.alive) return;
    const key = JSON.stringify([items, total]);
    if (key === last) return;
    last = key;
    replace(tableWrap, items.length === 0 ? h('p', {class: 'muted'}, 'No campaigns yet.') : [h('table', {},
      h('caption', {class: 'sr-only'}, 'Campaigns'),
      h('thead', {}, h('tr', {}, ['Name', 'Status', 'Progress', ''].map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, items.map((c) => h('tr', {'data-campaign': c.id, 'data-status': c.status},
        h('td', {}, h('a', {href: `/admin/campaigns/${c.id}`}, c.name)),
        h('td', {}, badge(c.status)),
        h('td', {class: 'wide'}, progressBar(c.progress)),
        h('td', {class: 'actions'}, campaignActions(c, () => { last = ''; load(); })))))),
    total !== null && total > PAGE ? h('nav', {class: 'pager', 'aria-label': 'Pages of campaigns'},
      h('button', {type: 'button', class: 'secondary', disabled: state.page === 0, onclick: () => { state.page--; load(); }}, '← Previous'),
      h('span', {}, `Page ${state.page + 1} of ${Math.ceil(total / PAGE)}`),
      h('button', {type: 'button', class: 'secondary', disabled: (state.page + 1) * PAGE >= total, onclick: () => { state.page++; load(); }}, 'Next →')) : null]);
  }

  const name = h('input', {name: 'name', required: true, autocomplete: 'off'});
  const limit = h('input', {name: 'concurrencyLimit', type: 'number', min: 1, inputmode: 'numeric'});
  const priority = h('input', {name: 'priority', type: 'number', min: 1, max: 10, value: 5, inputmode: 'numeric'});
  const attempts = h('input', {name: 'maxAttempts', type: 'number', min: 1, max: 20, inputmode: 'numeric'});
  const startAt = h('input', {name: 'startAt', type: 'datetime-local'});
  const win = h('textarea', {name: 'callingWindow', rows: 2, class: 'mono', spellcheck: 'false', placeholder: '{"timezone": "recipient", "start": "09:00", "end": "20:00", "days": [1,2,3,4,5]}'});
  const policy = h('textarea', {name: 'retryPolicy', rows: 2, class: 'mono', spellcheck: 'false', placeholder: '{"no_answer": {"max_attempts": 4, "delays_secs": [1800, 7200]}}'});
  const form = h('form', {class: 'card', 'aria-labelledby': 'new-campaign-h', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = {name: name.value.trim()};
    for (const [k, el] of [['concurrencyLimit', limit], ['priority', priority], ['maxAttempts', attempts]]) if (el.value !== '') body[k] = Number(el.value);
    if (startAt.value) body.startAt = new Date(startAt.value).toISOString();
    for (const [k, el] of [['callingWindow', win], ['retryPolicy', policy]]) {
      if (!el.value.trim()) continue;
      const {value, error} = parseJSON(el.value);
      if (error) { showFieldError(form, k, `Not valid JSON: ${error}`); return; }
      body[k] = value;
    }
    try {
      const c = await post(`/api/integrations/${it.id}/campaigns`, body);
      toast(`Created campaign ${c.name}`);
      ctx.navigate(`/admin/campaigns/${c.id}`);
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      formError(form, ex);
    }
  }},
  h('h3', {id: 'new-campaign-h'}, 'New campaign'),
  h('div', {class: 'row'}, field('Name', name), field('Concurrency limit (optional)', limit, 'Its share of the integration’s slots.'),
    field('Priority (1–10)', priority), field('Max attempts (optional)', attempts)),
  h('div', {class: 'row'}, field('Start at (optional)', startAt), field('Calling window (JSON, optional)', win), field('Retry policy (JSON, optional)', policy)),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Create campaign')));

  replace(panel, h('h2', {}, 'Campaigns'), tableWrap, form);
  await ctx.every(2000, load);
}
