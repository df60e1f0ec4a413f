// people.js — the People page (contract §11): everything stored about one
// phone number across your integrations (or one), and its erasure. The
// number stays out of the page's address, so it is kept in no history.

import {get, del, query, enc, ApiError} from './api.js';
import {h, replace, field, jsonText, confirmDialog, toast, clearErrors, formError} from './dom.js';
import {docLink} from './docs.js';

export async function peoplePage(ctx) {
  const integrations = await get('/api/integrations' + query({limit: 100, order: 'name'}));
  if (!ctx.alive) return;
  const phone = h('input', {name: 'phone', type: 'tel', required: true, autocomplete: 'off', placeholder: '+380991234567'});
  const integration = h('select', {name: 'integrationId'}, h('option', {value: ''}, 'every integration'),
    integrations.map((it) => h('option', {value: it.id}, it.name)));
  const result = h('div', {id: 'person', 'aria-live': 'polite'});
  const target = () => `/api/people/${enc(phone.value.trim())}` + query({integrationId: integration.value});

  async function show() {
    const doc = await get(target());
    if (!ctx.alive) return;
    const calls = doc.calls.length, sups = doc.suppressions.length;
    const erase = h('button', {type: 'button', class: 'danger', id: 'erase-person', onclick: async () => {
      const where = integration.value ? 'this integration' : 'every integration';
      if (!await confirmDialog(`Erase ${doc.phoneNumber} from ${where}? Its ${calls} call(s) with their history, transcripts and CRM updates are deleted for good; a suppression stays, as a hash only.`, 'Erase')) return;
      try {
        const out = await del(target());
        toast(`Erased ${out.erased.calls} call(s)`);
        await show();
      } catch (ex) {
        if (!(ex instanceof ApiError)) throw ex;
        toast(ex.message);
      }
    }}, 'Erase this person');
    replace(result, h('p', {id: 'person-summary'}, `${doc.phoneNumber}: ${calls} call(s), ${sups} suppression(s)${doc.truncated ? ' (first 1,000 calls shown)' : ''}.`),
      calls + sups > 0 ? h('div', {class: 'actions'}, erase) : null,
      h('pre', {class: 'mono', id: 'person-document'}, jsonText(doc)));
  }

  const form = h('form', {class: 'card', 'aria-labelledby': 'people-h', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    try { await show(); } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      formError(form, ex);
    }
  }},
  h('h2', {id: 'people-h'}, 'Find a person'),
  h('p', {class: 'muted'}, 'Everything stored about a phone number (right of access), and its erasure. ', docLink('people', 'What is kept, and for how long')),
  h('div', {class: 'row'}, field('Phone number', phone), field('In', integration)),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Search')));
  replace(ctx.main, h('h1', {}, 'People'), form, result);
}
