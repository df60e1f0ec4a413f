// call.js — one call (/admin/calls/{id}): its state, cancel, and the
// timeline from its history: every attempt, event, outcome, retry reason,
// and the CRM deliveries. Polled until the call ends.

import {get} from './api.js';
import {h, replace, badge, fmtTime, jsonText} from './dom.js';
import {cancelButton, isTerminal} from './calls.js';

const KIND_LABELS = {
  queued: 'Queued', dial: 'Dialling (slot taken)', dial_accepted: 'Dialler accepted', dial_failed: 'Dial failed',
  dial_aborted: 'Dial abandoned', call_start: 'Call started', call_end: 'Call ended', initiation_failed: 'Initiation failed',
  postcall: 'Post-call received', timeout: 'Timed out', retry_due: 'Retry due', cancel: 'Cancelled',
  window_wait: 'Waiting for the calling window', deferred: 'Held by a pacing rule',
};

// HOLDS name the pacing rule a deferred entry says held the call (contract §9).
const HOLDS = {
  dial_rate: 'the dial rate', caller_id: 'every caller number at a limit', contact_cap: 'a contact cap',
  excluded_date: 'an excluded date',
};

// settings are the operator's console settings (/admin/settings.json),
// read once: the trace viewer's URL template, if any.
let settings;
function consoleSettings() {
  settings ??= fetch('/admin/settings.json', {cache: 'no-store'}).then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
  return settings;
}

// traceLink shows an entry's trace id, linked to the trace viewer when the
// operator set CALLQUEUE_TRACE_URL_TEMPLATE (validated at startup as an
// http(s) URL holding {traceId}).
function traceLink(traceId, template) {
  if (!traceId) return null;
  const id = h('code', {}, traceId);
  return h('span', {class: 'trace muted'}, ' trace ', template ?
    h('a', {href: template.replaceAll('{traceId}', encodeURIComponent(traceId)), target: '_blank', rel: 'noopener noreferrer'}, id) : id);
}

export async function callPage(ctx) {
  const id = ctx.params[0];
  const {traceUrlTemplate: template = ''} = await consoleSettings();
  const head = h('div');
  const summary = h('section', {class: 'card', 'aria-labelledby': 'call-summary-h'});
  const timeline = h('section', {class: 'card', 'aria-labelledby': 'timeline-h'});
  const crm = h('section', {class: 'card', 'aria-labelledby': 'crm-h'});
  const extra = h('div');
  replace(ctx.main, head, summary, timeline, crm, extra);
  let last = '';

  async function load() {
    const c = await get(`/api/calls/${id}`);
    if (!ctx.alive) return;
    const key = JSON.stringify(c);
    if (key === last) return;
    last = key;
    replace(head, h('p', {class: 'crumbs'}, h('a', {href: `/admin/integrations/${c.integrationId}?tab=calls`}, 'Calls'), ' / '),
      h('div', {class: 'page-head'}, h('h1', {}, 'Call to ', c.phoneNumber, ' ', badge(c.status)),
        h('div', {class: 'actions'}, isTerminal(c.status) ? null : cancelButton(c, load))));
    const row = (k, v) => [h('dt', {}, k), h('dd', {}, v ?? '—')];
    replace(summary, h('h2', {id: 'call-summary-h'}, 'Summary'), h('dl', {class: 'facts'},
      row('Status', badge(c.status)), row('Attempt', `${c.attempt} / ${c.maxAttempts}`), row('Outcome', c.outcome),
      row('Duration', c.durationSecs == null ? null : `${c.durationSecs} s`), row('Next retry', c.nextRetryAt ? fmtTime(c.nextRetryAt) : null),
      row('Campaign', c.campaignId ? h('a', {href: `/admin/campaigns/${c.campaignId}`}, c.campaignId) : null),
      row('Record id', c.recordId), row('Time zone', c.timezone), row('Caller number', c.callerId), row('VA call id', c.externalCallId),
      row('Conversation id', c.conversationId), row('Created', fmtTime(c.createdAt)), row('Updated', fmtTime(c.updatedAt)), row('Call id', h('code', {}, c.id))));

    // The history grouped by attempt, oldest first.
    const byAttempt = new Map();
    for (const ev of c.events || []) {
      if (!byAttempt.has(ev.attempt)) byAttempt.set(ev.attempt, []);
      byAttempt.get(ev.attempt).push(ev);
    }
    replace(timeline, h('h2', {id: 'timeline-h'}, 'Timeline'),
      byAttempt.size === 0 ? h('p', {class: 'muted'}, 'No history yet.') :
        [...byAttempt].map(([attempt, evs]) => h('div', {class: 'attempt'},
          h('h3', {}, attempt === 0 ? 'Before the first dial' : `Attempt ${attempt}`),
          h('ol', {class: 'timeline'}, evs.map((ev) => h('li', {'data-kind': ev.kind},
            h('time', {datetime: ev.occurredAt}, fmtTime(ev.occurredAt)), ' ',
            h('strong', {}, KIND_LABELS[ev.kind] || ev.kind,
              ev.kind === 'deferred' && ev.detail?.deferred ? `: ${HOLDS[ev.detail.deferred] || ev.detail.deferred}` : ''),
            ev.fromStatus || ev.toStatus ? h('span', {class: 'transition'}, ' ', ev.fromStatus ? badge(ev.fromStatus) : '', ' → ', ev.toStatus ? badge(ev.toStatus) : '') : null,
            traceLink(ev.traceId, template),
            detail(ev.detail)))))));
    replace(crm, h('h2', {id: 'crm-h'}, 'CRM updates'), (c.crm || []).length === 0 ? h('p', {class: 'muted'}, 'None (sent when the call completes or finally fails).') :
      h('table', {}, h('thead', {}, h('tr', {}, ['Event', 'Status', 'Attempts', 'Delivered', 'Last error'].map((t) => h('th', {scope: 'col'}, t)))),
        h('tbody', {}, c.crm.map((d) => h('tr', {}, h('td', {}, d.event), h('td', {}, badge(d.status)), h('td', {}, String(d.attempts)),
          h('td', {}, fmtTime(d.deliveredAt)), h('td', {}, d.lastError || '—'))))));
    replace(extra,
      c.summary ? h('section', {class: 'card'}, h('h2', {}, 'Summary from the call'), h('p', {}, c.summary)) : null,
      hasValue(c.dynamicVariables) ? details('Dynamic variables', c.dynamicVariables) : null,
      hasValue(c.analysis) ? details('Analysis', c.analysis) : null,
      hasValue(c.transcript) ? details('Transcript', c.transcript) : null);
  }
  await ctx.every(1000, load);
}

const hasValue = (v) => v && !(typeof v === 'object' && Object.keys(v).length === 0);

function details(title, v) {
  return h('details', {class: 'card'}, h('summary', {}, title), h('pre', {class: 'json'}, jsonText(v)));
}

// detail shows what an event carried: reason, outcome, duration, errors.
function detail(d) {
  if (!d || typeof d !== 'object' || Object.keys(d).length === 0) return null;
  return h('ul', {class: 'detail'}, Object.entries(d).map(([k, v]) =>
    h('li', {}, h('span', {class: 'muted'}, k + ': '), k === 'nextRetryAt' || k === 'notBefore' ? fmtTime(v) : typeof v === 'object' ? JSON.stringify(v) : String(v))));
}
