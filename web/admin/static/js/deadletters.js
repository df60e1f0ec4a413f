// deadletters.js — the dead-letter page: messages the workers could not
// process (their reason, trace id and integration), and replaying them, one
// or all that match the filters. A replayed message is processed under its
// original identity, so replaying twice changes nothing.

import {request, post, get, query, ApiError} from './api.js';
import {h, replace, field, fmtTime, confirmDialog, toast} from './dom.js';
import {docLink} from './docs.js';

const PAGE = 50;
const STREAMS = [['', 'every stream'], ['originate', 'call-originate'], ['events', 'call-events'], ['postcall', 'agent-postcall']];

export async function deadLettersPage(ctx) {
  const state = {stream: ctx.query.get('stream') || '', integrationId: ctx.query.get('integrationId') || ''};
  const integrations = await get('/api/integrations' + query({limit: 100, order: 'name'}));
  if (!ctx.alive) return;
  const names = new Map(integrations.map((it) => [it.id, it.name]));

  const stream = h('select', {name: 'stream'}, STREAMS.map(([v, label]) => h('option', {value: v, selected: v === state.stream}, label)));
  const integration = h('select', {name: 'integrationId'}, h('option', {value: ''}, 'every integration'),
    integrations.map((it) => h('option', {value: it.id, selected: it.id === state.integrationId}, it.name)));
  const summary = h('p', {class: 'muted', 'aria-live': 'polite', id: 'dead-letters-summary'});
  const tableWrap = h('div', {class: 'table-wrap', id: 'dead-letters-list'});
  const more = h('button', {type: 'button', class: 'secondary', hidden: true}, 'Load more');
  const replayAll = h('button', {type: 'button', class: 'primary', id: 'replay-all', disabled: true}, 'Replay all shown');
  let rows = [];
  let next = '';

  const filters = () => ({stream: state.stream, integrationId: state.integrationId});
  const onChange = () => {
    state.stream = stream.value;
    state.integrationId = integration.value;
    ctx.setQuery(filters());
    load(false);
  };
  stream.addEventListener('change', onChange);
  integration.addEventListener('change', onChange);
  more.addEventListener('click', () => load(true));

  async function replay(body, question) {
    if (!await confirmDialog(question, 'Replay')) return;
    try {
      const out = await post('/api/dead-letters/replay', body);
      toast(out.more ? `Replayed ${out.count}; more are left: replay again.` : `Replayed ${out.count}`);
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      toast(ex.status === 404 ? 'Already replayed' : ex.message);
    }
    await load(false);
  }

  replayAll.addEventListener('click', () => replay({all: true, ...Object.fromEntries(Object.entries(filters()).filter(([, v]) => v))},
    'Replay every dead letter that matches the filters? Each goes back to its workers once.'));

  function draw() {
    summary.textContent = rows.length === 0 ? 'No dead letters: every message was processed.' :
      `${rows.length}${next ? '+' : ''} dead letter${rows.length === 1 ? '' : 's'}`;
    replayAll.disabled = rows.length === 0;
    more.hidden = !next;
    replace(tableWrap, rows.length === 0 ? null : h('table', {},
      h('caption', {class: 'sr-only'}, 'Dead letters'),
      h('thead', {}, h('tr', {}, ['#', 'Kind', 'Integration', 'Reason', 'Trace', 'Dead at', ''].map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, rows.map((dl) => h('tr', {'data-seq': dl.seq},
        h('td', {}, String(dl.seq)),
        h('td', {}, dl.kind),
        h('td', {}, h('a', {href: `/admin/integrations/${dl.integrationId}`}, names.get(dl.integrationId) || dl.integrationId)),
        h('td', {class: 'reason'}, dl.reason || '—'),
        h('td', {}, dl.traceId ? h('code', {}, dl.traceId) : '—'),
        h('td', {}, fmtTime(dl.deadAt)),
        h('td', {class: 'actions'}, h('button', {type: 'button', class: 'small secondary', onclick: () =>
          replay({seq: dl.seq}, `Replay dead letter #${dl.seq} (${dl.kind})? It goes back to its workers once.`)},
        'Replay', h('span', {class: 'sr-only'}, ' #' + dl.seq))))))));
  }

  async function load(append) {
    const r = await request('GET', '/api/dead-letters' + query({...filters(), limit: PAGE, after: append ? next : ''}));
    if (!ctx.alive) return;
    rows = append ? rows.concat(r.data || []) : (r.data || []);
    next = r.headers.get('X-Next-After') || '';
    draw();
  }

  replace(ctx.main,
    h('div', {class: 'page-head'}, h('h1', {}, 'Dead letters'), h('div', {class: 'actions'}, replayAll)),
    h('p', {class: 'muted'}, 'Messages the workers could not process after their retries. Fix the cause (the reason says it), then replay them. ', docLink('dead-letters', 'What to do')),
    h('form', {class: 'toolbar filters', onsubmit: (e) => e.preventDefault()}, field('Stream', stream), field('Integration', integration)),
    summary, tableWrap, more);
  await load(false);
}
