// integrations.js — the integrations list (search, sort, paging, delete)
// and the create page (seed 001 /admin/integrations, /admin/integrations/new).

import {list, post, del, query, ApiError} from './api.js';
import {h, replace, field, badge, fmtTime, confirmDialog, toast, clearErrors, formError} from './dom.js';

const PAGE = 20;

export async function integrationsPage(ctx) {
  const state = {
    search: ctx.query.get('search') || '',
    order: ctx.query.get('order') || 'name',
    page: Math.max(0, Number(ctx.query.get('page') || 0) | 0),
  };
  const search = h('input', {type: 'search', name: 'search', value: state.search, placeholder: 'Name or slug'});
  const tableWrap = h('div', {class: 'table-wrap'});
  const pager = h('nav', {class: 'pager', 'aria-label': 'Pages'});
  const summary = h('p', {class: 'muted', 'aria-live': 'polite'});

  let timer;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.search = search.value.trim(); state.page = 0; load(); }, 250);
  });
  ctx.onLeave(() => clearTimeout(timer));

  replace(ctx.main,
    h('div', {class: 'page-head'}, h('h1', {}, 'Integrations'), h('a', {class: 'button primary', href: '/admin/integrations/new'}, 'New integration')),
    h('form', {class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); state.search = search.value.trim(); state.page = 0; load(); }},
      field('Search', search)),
    summary, tableWrap, pager);

  function sortHeader(label, key) {
    const active = state.order.replace('-', '') === key;
    const desc = state.order === '-' + key;
    return h('th', {scope: 'col', 'aria-sort': active ? (desc ? 'descending' : 'ascending') : 'none'},
      h('button', {type: 'button', class: 'sort', onclick: () => {
        state.order = active && !desc ? '-' + key : key;
        state.page = 0;
        load();
      }}, label, active ? (desc ? ' ▼' : ' ▲') : ''));
  }

  async function load() {
    ctx.setQuery({search: state.search, order: state.order === 'name' ? '' : state.order, page: state.page || ''});
    const {items, total} = await list('/api/integrations' + query({search: state.search, order: state.order, limit: PAGE, offset: state.page * PAGE}));
    if (!ctx.alive) return;
    const from = total === 0 ? 0 : state.page * PAGE + 1;
    summary.textContent = total === 0 ? (state.search ? 'No integration matches.' : 'No integrations yet.') :
      `${from}–${state.page * PAGE + items.length} of ${total}`;
    replace(tableWrap, h('table', {},
      h('caption', {class: 'sr-only'}, 'Integrations'),
      h('thead', {}, h('tr', {}, sortHeader('Name', 'name'), h('th', {scope: 'col'}, 'Slug'), h('th', {scope: 'col'}, 'Status'),
        sortHeader('Created', 'createdAt'), h('th', {scope: 'col'}, h('span', {class: 'sr-only'}, 'Actions')))),
      h('tbody', {}, items.map((it) => h('tr', {},
        h('td', {}, h('a', {href: `/admin/integrations/${it.id}`}, it.name)),
        h('td', {}, h('code', {}, it.slug)),
        h('td', {}, badge(it.status)),
        h('td', {}, fmtTime(it.createdAt)),
        h('td', {class: 'actions'}, h('button', {type: 'button', class: 'small danger', 'aria-label': `Delete ${it.name}`, onclick: async () => {
          if (!await confirmDialog(`Delete integration “${it.name}” with its handlers, secrets, configuration and calls?`)) return;
          await del(`/api/integrations/${it.id}`);
          toast(`Deleted ${it.name}`);
          if (items.length === 1 && state.page > 0) state.page--;
          load();
        }}, 'Delete')))))));
    const pages = Math.max(1, Math.ceil((total ?? 0) / PAGE));
    replace(pager,
      h('button', {type: 'button', class: 'secondary', disabled: state.page === 0, onclick: () => { state.page--; load(); }}, '← Previous'),
      h('span', {}, `Page ${state.page + 1} of ${pages}`),
      h('button', {type: 'button', class: 'secondary', disabled: state.page + 1 >= pages, onclick: () => { state.page++; load(); }}, 'Next →'));
  }
  await load();
}

export function newIntegrationPage(ctx) {
  const name = h('input', {name: 'name', required: true, maxlength: 200, autocomplete: 'off'});
  const slug = h('input', {name: 'slug', pattern: '[a-z0-9][a-z0-9-]{0,62}', autocomplete: 'off'});
  const form = h('form', {class: 'card narrow', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = {name: name.value.trim()};
    if (slug.value.trim()) body.slug = slug.value.trim();
    try {
      const it = await post('/api/integrations', body);
      toast(`Created ${it.name}`);
      ctx.navigate(`/admin/integrations/${it.id}`);
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      formError(form, ex);
    }
  }},
  field('Name', name),
  field('Slug (optional)', slug, 'The URL key of its webhooks, e.g. “sales” for /sales/webhook/call-originate. Derived from the name when empty.'),
  h('div', {class: 'actions'}, h('a', {class: 'button secondary', href: '/admin/integrations'}, 'Cancel'),
    h('button', {type: 'submit', class: 'primary'}, 'Create')));
  replace(ctx.main, h('h1', {}, 'New integration'), form);
}
