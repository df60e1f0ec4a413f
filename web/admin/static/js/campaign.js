// campaign.js — one campaign (/admin/campaigns/{id}): progress, pause,
// resume, cancel, recipients' CSV upload with the rejected rows shown, and
// the CSV export of its calls.

import {get, post, download, ApiError} from './api.js';
import {h, replace, badge, fmtTime, jsonText, toast, uid} from './dom.js';
import {progressBar, campaignActions} from './campaigns.js';
import {timeseriesCharts} from './charts.js';

// MAX_ROWS is the API's row limit per upload, checked here first.
const MAX_ROWS = 10000;

export async function campaignPage(ctx) {
  const id = ctx.params[0];
  const head = h('div');
  const facts = h('section', {class: 'card', 'aria-labelledby': 'campaign-facts-h'});
  const result = h('div', {role: 'status', 'aria-live': 'polite', id: 'upload-result'});
  const fileId = uid();
  const file = h('input', {type: 'file', id: fileId, name: 'csv', accept: '.csv,text/csv'});
  const upload = h('form', {class: 'card', 'aria-labelledby': 'upload-h', onsubmit: async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) { replace(result, h('p', {class: 'form-error', role: 'alert'}, 'Choose a CSV file first.')); return; }
    const text = await f.text();
    const rows = text.split(/\r?\n/).filter((l) => l.trim()).length - 1;
    if (rows > MAX_ROWS) { replace(result, h('p', {class: 'form-error', role: 'alert'}, `${rows} rows: at most ${MAX_ROWS} per upload. Split the file.`)); return; }
    replace(result, h('p', {class: 'muted'}, 'Uploading…'));
    try {
      const out = await post(`/api/campaigns/${id}/recipients`, text, {contentType: 'text/csv'});
      replace(result,
        h('p', {}, h('strong', {}, `Added ${out.added}`), `, duplicates ${out.duplicates}, rejected ${(out.rejected || []).length}.`),
        (out.rejected || []).length ? h('table', {id: 'rejected-rows'}, h('caption', {}, 'Rejected rows'),
          h('thead', {}, h('tr', {}, ['Row', 'Field', 'Problem'].map((t) => h('th', {scope: 'col'}, t)))),
          h('tbody', {}, out.rejected.map((r) => h('tr', {}, h('td', {}, String(r.row)), h('td', {}, r.field || '—'), h('td', {}, r.message))))) : null);
      file.value = '';
      last = '';
      load();
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      replace(result, h('p', {class: 'form-error', role: 'alert'}, ex.message));
    }
  }},
  h('h2', {id: 'upload-h'}, 'Add recipients'),
  h('p', {class: 'muted'}, 'A CSV with a header row: ', h('code', {}, 'phone_number'), ' (required), ', h('code', {}, 'record_id'), ', ',
    h('code', {}, 'external_id'), ', ', h('code', {}, 'timezone'), '; every other column becomes a dynamic variable. A recipient already in the campaign is skipped.'),
  h('label', {for: fileId}, 'CSV file'), ' ', file, ' ',
  h('button', {type: 'submit', class: 'primary'}, 'Upload'), result);
  const charts = timeseriesCharts(ctx, 'campaign', id);
  replace(ctx.main, head, facts, charts.section, upload);
  charts.start();
  let last = '';

  async function load() {
    const c = await get(`/api/campaigns/${id}`);
    if (!ctx.alive) return;
    const key = JSON.stringify(c);
    if (key === last) return;
    last = key;
    replace(head, h('p', {class: 'crumbs'}, h('a', {href: `/admin/integrations/${c.integrationId}?tab=campaigns`}, 'Campaigns'), ' / '),
      h('div', {class: 'page-head'}, h('h1', {}, c.name, ' ', badge(c.status)),
        h('div', {class: 'actions'}, campaignActions(c, () => { last = ''; load(); }),
          h('button', {type: 'button', class: 'small secondary', 'data-action': 'export', onclick: () => download(`/api/campaigns/${id}/calls.csv`, `campaign-${id}.csv`).catch((e) => toast(e.message))}, 'Export CSV'),
          h('a', {class: 'button small secondary', href: `/admin/integrations/${c.integrationId}?tab=calls&campaignId=${id}`}, 'Its calls'))));
    const row = (k, v) => [h('dt', {}, k), h('dd', {}, v ?? '—')];
    // What is in force: the campaign's own value, else the integration's (effective).
    const eff = c.effective || {};
    const inherited = (v) => h('span', {}, v, h('span', {class: 'muted'}, ' (the integration’s)'));
    const shown = (v) => v == null ? 'none' : h('code', {}, jsonText(v));
    replace(facts, h('h2', {id: 'campaign-facts-h'}, 'Progress'), progressBar(c.progress),
      h('dl', {class: 'facts'},
        row('Concurrency limit', c.concurrencyLimit == null ? 'the integration’s' : String(c.concurrencyLimit)), row('Priority', String(c.priority ?? '—')),
        row('Max attempts', c.maxAttempts == null ? inherited(String(eff.maxAttempts ?? '—')) : String(c.maxAttempts)),
        row('Start at', c.startAt ? fmtTime(c.startAt) : 'at once'),
        row('Calling window', c.callingWindow ? shown(c.callingWindow) : inherited(shown(eff.callingWindow))),
        row('Retry policy', c.retryPolicy ? shown(c.retryPolicy) : inherited(shown(eff.retryPolicy))),
        row('Created', fmtTime(c.createdAt)), row('Updated', fmtTime(c.updatedAt))));
  }
  await ctx.every(2000, load);
}
