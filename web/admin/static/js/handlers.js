// handlers.js — the Handlers tab: the integration's handler registry
// (seed 000/001): create and edit with defaultArgs as checked JSON, delete,
// sync from an OpenAPI document, and invoke with args, showing the result.

import {get, post, put, del, ApiError} from './api.js';
import {h, replace, field, jsonText, parseJSON, confirmDialog, toast, clearErrors, formError, showFieldError} from './dom.js';

// The built-ins a handler can run when invoked (webhooks.Builtins).
const BUILTINS = ['call-originate', 'call-events', 'agent-init', 'agent-postcall', 'retry', 'setup', 'health'];

export async function handlersTab(ctx, it, panel) {
  const base = `/api/integrations/${it.id}/handlers`;
  const listWrap = h('div', {class: 'table-wrap'});
  const editor = h('div');
  const invoker = h('div');

  async function load() {
    const items = await get(base);
    if (!ctx.alive) return;
    replace(listWrap, items.length === 0 ? h('p', {class: 'muted'}, 'No handlers yet.') : h('table', {},
      h('caption', {class: 'sr-only'}, 'Handlers'),
      h('thead', {}, h('tr', {}, ['Name', 'Default args', ''].map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, items.map((hd) => h('tr', {'data-handler': hd.name},
        h('td', {}, h('code', {}, hd.name)),
        h('td', {}, h('pre', {class: 'json small'}, jsonText(hd.defaultArgs))),
        h('td', {class: 'actions'},
          h('button', {type: 'button', class: 'small', 'data-action': 'invoke', onclick: () => showInvoke(hd)}, 'Invoke', h('span', {class: 'sr-only'}, ' ' + hd.name)),
          h('button', {type: 'button', class: 'small secondary', 'data-action': 'edit', onclick: () => showEditor(hd)}, 'Edit', h('span', {class: 'sr-only'}, ' ' + hd.name)),
          h('button', {type: 'button', class: 'small danger', 'data-action': 'delete', onclick: async () => {
            if (!await confirmDialog(`Delete handler “${hd.name}”?`)) return;
            await del(`${base}/${hd.id}`);
            toast(`Deleted ${hd.name}`);
            load();
          }}, 'Delete', h('span', {class: 'sr-only'}, ' ' + hd.name))))))));
  }

  function showEditor(hd) {
    const name = h('input', {name: 'name', required: true, value: hd ? hd.name : '', list: 'builtin-names', autocomplete: 'off'});
    const args = h('textarea', {name: 'defaultArgs', rows: 6, class: 'mono', spellcheck: 'false'});
    args.value = jsonText(hd ? hd.defaultArgs : {});
    const save = h('button', {type: 'submit', class: 'primary'}, hd ? 'Save' : 'Create');
    const form = h('form', {class: 'card', 'aria-label': hd ? `Edit handler ${hd.name}` : 'New handler', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      clearErrors(form);
      const parsed = checkArgs();
      if (!parsed) return;
      try {
        if (hd) await put(`${base}/${hd.id}`, {name: name.value.trim(), defaultArgs: parsed});
        else await post(base, {name: name.value.trim(), defaultArgs: parsed});
        toast(hd ? 'Handler saved' : 'Handler created');
        replace(editor);
        load();
      } catch (ex) {
        if (!(ex instanceof ApiError)) throw ex;
        formError(form, ex);
      }
    }},
    h('h3', {}, hd ? `Edit ${hd.name}` : 'New handler'),
    h('datalist', {id: 'builtin-names'}, BUILTINS.map((b) => h('option', {value: b}))),
    field('Name', name, 'Invoke runs the built-in of this name: ' + BUILTINS.join(', ') + '.'),
    field('Default args (JSON object)', args, 'retries and timeout (ms) are handler options; the rest is the built-in’s body.'),
    h('div', {class: 'actions'}, h('button', {type: 'button', class: 'secondary', onclick: () => replace(editor)}, 'Cancel'), save));
    // Checked as the user types, so a broken object never reaches the API.
    function checkArgs() {
      clearErrors(form);
      const {value, error} = parseJSON(args.value || '{}');
      const bad = error ? `Not valid JSON: ${error}` : (value === null || typeof value !== 'object' || Array.isArray(value)) ? 'Must be a JSON object' : '';
      save.disabled = !!bad;
      if (bad) { showFieldError(form, 'defaultArgs', bad); args.focus(); return null; }
      return value;
    }
    args.addEventListener('input', () => { checkArgs(); });
    replace(editor, form);
    name.focus();
  }

  function showInvoke(hd) {
    const args = h('textarea', {name: 'args', rows: 5, class: 'mono', spellcheck: 'false'});
    args.value = '{}';
    const result = h('div', {class: 'result', role: 'status', 'aria-live': 'polite'});
    const form = h('form', {class: 'card', 'aria-label': `Invoke ${hd.name}`, novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      clearErrors(form);
      const {value, error} = parseJSON(args.value || '{}');
      if (error) { showFieldError(form, 'args', `Not valid JSON: ${error}`); return; }
      replace(result, h('p', {class: 'muted'}, 'Running…'));
      try {
        const out = await post(`/api/handlers/${hd.id}/invoke`, {args: value});
        replace(result, h('h4', {}, 'Result'), h('pre', {class: 'json', id: 'invoke-result'}, jsonText(out)));
      } catch (ex) {
        if (!(ex instanceof ApiError)) throw ex;
        replace(result);
        formError(form, ex);
      }
    }},
    h('h3', {}, `Invoke ${hd.name}`),
    h('p', {class: 'muted'}, 'Args are laid over the default args. The built-in really runs: call-originate queues a call.'),
    field('Args (JSON object)', args),
    h('div', {class: 'actions'}, h('button', {type: 'button', class: 'secondary', onclick: () => replace(invoker)}, 'Close'),
      h('button', {type: 'submit', class: 'primary'}, 'Run')),
    result);
    replace(invoker, form);
    args.focus();
  }

  const syncName = h('input', {name: 'integrationName', value: it.slug, required: true});
  const syncBase = h('input', {name: 'baseUrl', type: 'url', placeholder: location.origin});
  const syncResult = h('div', {role: 'status', 'aria-live': 'polite'});
  const syncForm = h('form', {class: 'card', 'aria-label': 'Sync from OpenAPI', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(syncForm);
    const body = {integrationName: syncName.value.trim()};
    if (syncBase.value.trim()) body.baseUrl = syncBase.value.trim();
    try {
      const out = await post(`/api/integrations/${it.id}/sync-handlers`, body);
      replace(syncResult, h('p', {id: 'sync-result'}, `Created ${out.created}, updated ${out.updated}.`),
        h('ul', {}, out.handlers.map((s) => h('li', {}, h('code', {}, s.name), ` ${s.method} ${s.url}`))));
      load();
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      replace(syncResult);
      formError(syncForm, ex);
    }
  }},
  h('h3', {}, 'Sync from OpenAPI'),
  h('p', {class: 'muted'}, 'Fetches {base URL}/{integration name}/openapi.json and creates or updates one handler per operation.'),
  h('div', {class: 'row'}, field('Integration name', syncName), field('Base URL (optional)', syncBase)),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'secondary'}, 'Sync')),
  syncResult);

  replace(panel,
    h('div', {class: 'page-head'}, h('h2', {}, 'Handlers'), h('button', {type: 'button', class: 'primary', onclick: () => showEditor(null)}, 'New handler')),
    editor, invoker, listWrap, syncForm);
  await load();
}
