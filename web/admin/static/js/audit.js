// audit.js — the Audit log tab: who changed what and when, newest first,
// paged, each change shown as the fields that differ before and after.
// The API records previews and key names only, never a secret's value.

import {list, query} from './api.js';
import {h, replace, fmtTime} from './dom.js';

const PAGE = 20;

// flatten turns nested JSON into {"a.b": leaf} (arrays as one leaf).
export function flatten(v, prefix = '', out = {}) {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length === 0 && prefix) out[prefix] = '{}';
    for (const k of keys) flatten(v[k], prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix || v !== undefined) {
    out[prefix || '(value)'] = v === undefined ? undefined : JSON.stringify(v);
  }
  return out;
}

// diffRows lists the paths whose values differ between before and after.
export function diffRows(before, after) {
  const b = before == null ? {} : flatten(before);
  const a = after == null ? {} : flatten(after);
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].sort();
  return keys.filter((k) => b[k] !== a[k]).map((k) => [k, b[k], a[k]]);
}

export async function auditTab(ctx, it, panel) {
  const wrap = h('div', {id: 'audit-list'});
  const pager = h('nav', {class: 'pager', 'aria-label': 'Pages of the audit log'});
  const state = {page: 0};

  async function load() {
    const {items, total} = await list(`/api/integrations/${it.id}/audit-logs` + query({limit: PAGE, offset: state.page * PAGE}));
    if (!ctx.alive) return;
    replace(wrap, items.length === 0 ? h('p', {class: 'muted'}, 'No changes recorded.') : h('ol', {class: 'audit'}, items.map((e) => {
      const rows = diffRows(e.before, e.after);
      // A config key changed from its default has no stored "before".
      const noBefore = e.before == null && e.resource === 'config' && e.action === 'update' ? 'default' : '—';
      return h('li', {class: 'card', 'data-action': e.action, 'data-resource': e.resource},
        h('p', {}, h('time', {datetime: e.createdAt}, fmtTime(e.createdAt)), ' · ', h('strong', {}, e.actor), ' ',
          h('span', {class: 'action'}, e.action), ' ', h('span', {}, e.resource), e.resourceId ? [' ', h('code', {}, e.resourceId)] : null),
        rows.length === 0 ? null : h('div', {class: 'table-wrap'}, h('table', {class: 'diff'},
          h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Field'), h('th', {scope: 'col'}, 'Before'), h('th', {scope: 'col'}, 'After'))),
          h('tbody', {}, rows.map(([k, b, a]) => h('tr', {}, h('th', {scope: 'row'}, h('code', {}, k)),
            h('td', {class: 'before'}, b === undefined ? noBefore : h('code', {}, b)),
            h('td', {class: 'after'}, a === undefined ? '—' : h('code', {}, a))))))));
    })));
    const pages = Math.max(1, Math.ceil((total ?? 0) / PAGE));
    replace(pager,
      h('button', {type: 'button', class: 'secondary', disabled: state.page === 0, onclick: () => { state.page--; load(); }}, '← Newer'),
      h('span', {}, `Page ${state.page + 1} of ${pages}`, total !== null ? ` · ${total} changes` : ''),
      h('button', {type: 'button', class: 'secondary', disabled: state.page + 1 >= pages, onclick: () => { state.page++; load(); }}, 'Older →'));
  }
  replace(panel, h('h2', {}, 'Audit log'), wrap, pager);
  await load();
}
