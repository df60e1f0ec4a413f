// suppressions.js — the Suppressions tab (contract §7): numbers that must
// not be called, for this integration or for every integration of the
// owner; add one, import a CSV, remove.

import {list, post, del, query, enc, ApiError} from './api.js';
import {h, replace, field, fmtTime, confirmDialog, toast, clearErrors, formError, uid} from './dom.js';

const PAGE = 50;

export async function suppressionsTab(ctx, it, panel) {
  const base = `/api/integrations/${it.id}/suppressions`;
  const tableWrap = h('div', {class: 'table-wrap', id: 'suppressions-list'});
  const state = {page: 0};

  async function load() {
    const {items, total} = await list(base + query({limit: PAGE, offset: state.page * PAGE}));
    if (!ctx.alive) return;
    replace(tableWrap, items.length === 0 ? h('p', {class: 'muted'}, 'No suppressed numbers.') : [h('table', {},
      h('caption', {class: 'sr-only'}, 'Suppressed numbers'),
      h('thead', {}, h('tr', {}, ['Phone', 'Reason', 'Expires', 'Added', 'For', ''].map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, items.map((s) => {
        const phone = s.phoneNumber;
        // The list holds the owner-wide entries too; they are removed
        // through the owner-wide route.
        const ownerWide = !s.integrationId;
        // An erased person's entry keeps only a hash of the number: it still
        // stops calls, and is lifted by deleting the number (if you know it).
        if (s.erased) {
          return h('tr', {'data-scope': ownerWide ? 'owner' : 'integration', 'data-erased': 'true'},
            h('td', {}, h('em', {title: 'The person was erased; only a keyed hash of the number is kept.'}, 'erased')),
            h('td', {}, s.reason || '—'), h('td', {}, s.expiresAt ? fmtTime(s.expiresAt) : 'never'), h('td', {}, fmtTime(s.createdAt)),
            h('td', {}, ownerWide ? 'every integration' : 'this integration'), h('td', {}));
        }
        return h('tr', {'data-scope': ownerWide ? 'owner' : 'integration'}, h('td', {}, phone), h('td', {}, s.reason || '—'),
          h('td', {}, s.expiresAt ? fmtTime(s.expiresAt) : 'never'), h('td', {}, fmtTime(s.createdAt)),
          h('td', {}, ownerWide ? 'every integration' : 'this integration'),
          h('td', {class: 'actions'}, h('button', {type: 'button', class: 'small danger', onclick: async () => {
            const where = ownerWide ? 'every integration’s suppression list' : 'the suppression list';
            if (!await confirmDialog(`Remove ${phone} from ${where}? Calls to it will be dialled again.`, 'Remove')) return;
            await del(`${ownerWide ? '/api/suppressions' : base}/${enc(phone)}`);
            toast(`Removed ${phone}`);
            load();
          }}, 'Remove', h('span', {class: 'sr-only'}, ' ' + phone))));
      }))),
    total !== null && total > PAGE ? h('nav', {class: 'pager', 'aria-label': 'Pages of suppressions'},
      h('button', {type: 'button', class: 'secondary', disabled: state.page === 0, onclick: () => { state.page--; load(); }}, '← Previous'),
      h('span', {}, `Page ${state.page + 1} of ${Math.ceil(total / PAGE)}`),
      h('button', {type: 'button', class: 'secondary', disabled: (state.page + 1) * PAGE >= total, onclick: () => { state.page++; load(); }}, 'Next →')) : null]);
  }

  const phone = h('input', {name: 'phoneNumber', type: 'tel', required: true, autocomplete: 'off', placeholder: '+380991234567'});
  const reason = h('input', {name: 'reason', autocomplete: 'off'});
  const expires = h('input', {name: 'expiresAt', type: 'datetime-local'});
  const scope = h('select', {name: 'scope'}, h('option', {value: 'integration'}, 'this integration'), h('option', {value: 'owner'}, 'every integration of mine'));
  const add = h('form', {class: 'card', 'aria-labelledby': 'suppress-add-h', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(add);
    const body = {phoneNumber: phone.value.trim()};
    if (reason.value.trim()) body.reason = reason.value.trim();
    if (expires.value) body.expiresAt = new Date(expires.value).toISOString();
    try {
      await post(scope.value === 'owner' ? '/api/suppressions' : base, body);
      toast(`Suppressed ${body.phoneNumber}`);
      phone.value = reason.value = expires.value = '';
      load();
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      formError(add, ex);
    }
  }},
  h('h3', {id: 'suppress-add-h'}, 'Suppress a number'),
  h('div', {class: 'row'}, field('Phone number', phone), field('Reason (optional)', reason), field('Expires (optional)', expires), field('For', scope)),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Suppress')));

  const fileId = uid();
  const file = h('input', {type: 'file', id: fileId, accept: '.csv,text/csv'});
  const importResult = h('div', {role: 'status', 'aria-live': 'polite', id: 'import-result'});
  const importForm = h('form', {class: 'card', 'aria-labelledby': 'suppress-import-h', onsubmit: async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) { replace(importResult, h('p', {class: 'form-error', role: 'alert'}, 'Choose a CSV file first.')); return; }
    try {
      const out = await post(base, await f.text(), {contentType: 'text/csv'});
      const rejected = (out && out.rejected) || [];
      replace(importResult, h('p', {}, out && out.added !== undefined ? `Added ${out.added}, rejected ${rejected.length}.` : 'Imported.'),
        rejected.length ? h('ul', {}, rejected.map((r) => h('li', {}, `row ${r.row}: ${r.field ? r.field + ': ' : ''}${r.message}`))) : null);
      file.value = '';
      load();
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      replace(importResult, h('p', {class: 'form-error', role: 'alert'}, ex.message));
    }
  }},
  h('h3', {id: 'suppress-import-h'}, 'Import a CSV'),
  h('p', {class: 'muted'}, 'Columns ', h('code', {}, 'phone_number,reason,expires_at'), ' with a header row.'),
  h('label', {for: fileId}, 'CSV file'), ' ', file, ' ', h('button', {type: 'submit', class: 'secondary'}, 'Import'), importResult);

  replace(panel, h('h2', {}, 'Suppressions'), h('p', {class: 'muted'}, 'A suppressed number is never dialled: its call ends cancelled with outcome “suppressed”.'),
    tableWrap, add, importForm);
  await load();
}
