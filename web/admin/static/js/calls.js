// calls.js — the Calls tab: a live view of the integration (calls holding a
// slot against its limit, queued, retry-scheduled, ...) and a filterable
// list, both refreshed by polling the stats and calls endpoints.

import {get, post, query, ApiError} from './api.js';
import {timeseriesCharts} from './charts.js';
import {h, replace, field, badge, fmtTime, toast, clearErrors, formError, showFieldError} from './dom.js';

export const STATUSES = ['queued', 'initiated', 'in_progress', 'waiting_postcall', 'retry_scheduled', 'completed', 'failed', 'cancelled'];
const TERMINAL = ['completed', 'failed', 'cancelled'];
export const isTerminal = (s) => TERMINAL.includes(s);
const PAGE = 25;
const POLL_MS = 1000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function callsTab(ctx, it, panel) {
  const live = h('div', {class: 'live', id: 'live', 'aria-label': 'Live view'});
  const tableWrap = h('div', {class: 'table-wrap', id: 'calls-list'});
  const pager = h('nav', {class: 'pager', 'aria-label': 'Pages of calls'});
  const q = ctx.query;
  const state = {page: Math.max(0, Number(q.get('page') || 0) | 0)};

  const status = h('select', {name: 'status'}, h('option', {value: ''}, 'any'), STATUSES.map((s) => h('option', {value: s, selected: q.get('status') === s}, s.replace(/_/g, ' '))));
  const phone = h('input', {name: 'phone', type: 'search', value: q.get('phone') || '', autocomplete: 'off'});
  const campaign = h('input', {name: 'campaignId', value: q.get('campaignId') || '', autocomplete: 'off', placeholder: 'campaign id'});
  const from = h('input', {name: 'createdFrom', type: 'datetime-local', value: q.get('from') || ''});
  const to = h('input', {name: 'createdTo', type: 'datetime-local', value: q.get('to') || ''});
  const filters = h('form', {class: 'toolbar filters', 'aria-label': 'Filter calls', onsubmit: (e) => { e.preventDefault(); apply(); }, onchange: apply},
    field('Status', status), field('Phone', phone), field('Campaign', campaign), field('Created from', from), field('Created to', to),
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'secondary'}, 'Filter')));

  const charts = timeseriesCharts(ctx, 'integration', it.id, async () => (await get(`/api/integrations/${it.id}/stats`)).limit);
  replace(panel, h('h2', {}, 'Calls'), live, charts.section, filters, tableWrap, pager);
  charts.start();

  // The polls use the filter last applied, not what is being typed: a half
  // typed campaign id is not a request.
  const read = () => ({status: status.value, phone: phone.value.trim(), campaignId: campaign.value.trim(), from: from.value, to: to.value});
  let applied = read();
  let shownError = '';
  function apply() {
    clearErrors(filters);
    shownError = '';
    const next = read();
    if (next.campaignId && !UUID.test(next.campaignId)) {
      showFieldError(filters, 'campaignId', 'Not a campaign id: campaign ids are UUIDs.');
      return;
    }
    applied = next;
    state.page = 0;
    refresh();
  }

  const iso = (local) => local ? new Date(local).toISOString() : '';
  async function refresh() {
    const f = applied;
    ctx.setQuery({status: f.status, phone: f.phone, campaignId: f.campaignId, from: f.from, to: f.to, page: state.page || ''});
    let stats, calls;
    try {
      [stats, calls] = await Promise.all([
        get(`/api/integrations/${it.id}/stats`),
        get('/api/calls' + query({integrationId: it.id, status: f.status, phone: f.phone, campaignId: f.campaignId,
          createdFrom: iso(f.from), createdTo: iso(f.to), order: '-createdAt', limit: PAGE, offset: state.page * PAGE})),
      ]);
    } catch (ex) {
      // A filter the API refuses is shown on its field, once (a poll
      // must not take the focus again and again).
      if (!(ex instanceof ApiError) || ex.status !== 400) throw ex;
      if (ctx.alive && ex.message !== shownError) { shownError = ex.message; formError(filters, ex); }
      return;
    }
    if (!ctx.alive) return;
    // Redrawn only on a change, so a poll does not take the focus away.
    const key = JSON.stringify([stats, calls, state.page]);
    if (key === last) return;
    last = key;
    drawLive(stats);
    drawList(calls);
  }
  let last = '';

  function drawLive(s) {
    const pct = s.limit ? Math.min(100, Math.round(100 * s.active / s.limit)) : 0;
    const stat = (label, n, key) => h('div', {class: 'stat', 'data-stat': key}, h('span', {class: 'n'}, String(n)), h('span', {class: 'label'}, label));
    replace(live,
      h('div', {class: 'slots'},
        h('div', {class: 'slots-label', id: 'slots-label'}, 'Active calls ', h('strong', {'data-stat': 'active'}, `${s.active} / ${s.limit}`),
          it.status === 'paused' ? ' · paused' : '', it.status === 'not_configured' ? ' · not configured: nothing is dialled' : ''),
        h('div', {class: 'meter', role: 'meter', 'aria-labelledby': 'slots-label', 'aria-valuemin': 0, 'aria-valuemax': s.limit, 'aria-valuenow': s.active},
          h('div', {class: 'fill', style: null, 'data-pct': pct}))),
      h('div', {class: 'stats'},
        stat('queued', s.queued, 'queued'), stat('retry scheduled', s.retryScheduled, 'retryScheduled'),
        stat('waiting post-call', s.waitingPostcall, 'waitingPostcall'), stat('completed', s.completed, 'completed'),
        stat('failed', s.failed, 'failed'), stat('cancelled', s.cancelled, 'cancelled')));
    // Width through the CSSOM: the CSP allows no inline style attributes.
    live.querySelector('.fill').style.width = pct + '%';
  }

  function drawList(calls) {
    replace(tableWrap, calls.length === 0 ? h('p', {class: 'muted'}, 'No calls match.') : h('table', {},
      h('caption', {class: 'sr-only'}, 'Calls, newest first'),
      h('thead', {}, h('tr', {}, ['Phone', 'Status', 'Attempt', 'Outcome', 'Duration', 'Created', ''].map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, calls.map((c) => h('tr', {'data-call': c.id, 'data-status': c.status},
        h('td', {}, h('a', {href: `/admin/calls/${c.id}`}, c.phoneNumber)),
        h('td', {}, badge(c.status), c.nextRetryAt && c.status === 'retry_scheduled' ? h('span', {class: 'muted small'}, ' at ' + fmtTime(c.nextRetryAt)) : null),
        h('td', {}, `${c.attempt} / ${c.maxAttempts}`),
        h('td', {}, c.outcome || '—'),
        h('td', {}, c.durationSecs == null ? '—' : `${c.durationSecs} s`),
        h('td', {}, fmtTime(c.createdAt)),
        h('td', {class: 'actions'}, isTerminal(c.status) ? null : cancelButton(c, refresh)))))));
    replace(pager,
      h('button', {type: 'button', class: 'secondary', disabled: state.page === 0, onclick: () => { state.page--; refresh(); }}, '← Newer'),
      h('span', {}, `Page ${state.page + 1}`),
      h('button', {type: 'button', class: 'secondary', disabled: calls.length < PAGE, onclick: () => { state.page++; refresh(); }}, 'Older →'));
  }

  await ctx.every(POLL_MS, refresh);
}

// cancelButton cancels a call that has not ended; done runs afterwards.
export function cancelButton(c, done) {
  return h('button', {type: 'button', class: 'small danger', onclick: async (e) => {
    e.currentTarget.disabled = true;
    try {
      await post(`/api/calls/${c.id}/cancel`);
      toast(`Cancelled the call to ${c.phoneNumber}`);
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      toast(ex.status === 409 ? 'The call has already ended' : ex.message);
    }
    done();
  }}, 'Cancel call', h('span', {class: 'sr-only'}, ' to ' + c.phoneNumber));
}
