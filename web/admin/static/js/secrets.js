// secrets.js — the Secrets & credentials tab: keys with value previews only
// (the API never returns a value), create, replace a value, delete.

import {get, post, put, del, ApiError} from './api.js';
import {h, replace, field, fmtTime, confirmDialog, toast, clearErrors, formError} from './dom.js';

export async function secretsTab(ctx, it, panel) {
  const secrets = h('section', {'aria-labelledby': 'secrets-h'});
  const credentials = h('section', {'aria-labelledby': 'credentials-h'});
  replace(panel, secrets, credentials);
  await Promise.all([
    kindSection(ctx, it, secrets, 'secrets', 'Secrets', 'Confidential values the service reads: VA_AUTH_TOKEN, ELEVENLABS_API_KEY, ELEVENLABS_WEBHOOK_SECRET, CRM keys, LLM_API_KEY.'),
    kindSection(ctx, it, credentials, 'credentials', 'Credentials', 'Other account details (API keys, user names).'),
  ]);
}

async function kindSection(ctx, it, section, kind, title, hint) {
  const base = `/api/integrations/${it.id}/${kind}`;
  const tableWrap = h('div', {class: 'table-wrap'});
  const key = h('input', {name: 'key', required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[A-Za-z0-9_.-]{1,128}'});
  const value = h('input', {name: 'value', type: 'password', required: true, autocomplete: 'new-password'});
  const form = h('form', {class: 'card', 'aria-label': `Add ${kind.slice(0, -1)}`, novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const s = await post(base, {key: key.value.trim(), value: value.value});
      value.value = '';
      key.value = '';
      toast(`Saved ${s.key} (${s.valuePreview})`);
      load();
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      formError(form, ex);
    }
  }},
  h('div', {class: 'row'}, field('Key', key), field('Value', value)),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, `Add ${kind.slice(0, -1)}`)));

  async function load() {
    const items = await get(base);
    if (!ctx.alive) return;
    replace(tableWrap, items.length === 0 ? h('p', {class: 'muted'}, `No ${kind} yet.`) : h('table', {id: `${kind}-table`},
      h('caption', {class: 'sr-only'}, title),
      h('thead', {}, h('tr', {}, ['Key', 'Value', 'Updated', ''].map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, items.map((s) => {
        const actions = h('td', {class: 'actions'});
        const row = h('tr', {}, h('td', {}, h('code', {}, s.key)), h('td', {}, h('code', {class: 'preview'}, s.valuePreview || '(empty)')),
          h('td', {}, fmtTime(s.updatedAt)), actions);
        function buttons() {
          replace(actions,
            h('button', {type: 'button', class: 'small secondary', onclick: replaceValue}, 'Replace value', h('span', {class: 'sr-only'}, ' of ' + s.key)),
            h('button', {type: 'button', class: 'small danger', onclick: async () => {
              if (!await confirmDialog(`Delete ${kind.slice(0, -1)} ${s.key}?`)) return;
              await del(`${base}/${s.id}`);
              toast(`Deleted ${s.key}`);
              load();
            }}, 'Delete', h('span', {class: 'sr-only'}, ' ' + s.key)));
        }
        function replaceValue() {
          const nv = h('input', {type: 'password', name: 'value', autocomplete: 'new-password', 'aria-label': `New value of ${s.key}`});
          const f = h('form', {class: 'inline', onsubmit: async (e) => {
            e.preventDefault();
            clearErrors(f);
            try {
              await put(`${base}/${s.id}`, {key: s.key, value: nv.value});
              toast(`Replaced ${s.key}`);
              load();
            } catch (ex) {
              if (!(ex instanceof ApiError)) throw ex;
              formError(f, ex);
            }
          }}, nv, h('button', {type: 'submit', class: 'small primary'}, 'Save'), h('button', {type: 'button', class: 'small secondary', onclick: buttons}, 'Cancel'));
          replace(actions, f);
          nv.focus();
        }
        buttons();
        return row;
      }))));
  }
  replace(section, h('h2', {id: `${kind}-h`}, title), h('p', {class: 'muted'}, hint), tableWrap, form);
  await load();
}
