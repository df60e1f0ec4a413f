// dom.js — a small element builder, so pages describe their markup as
// nested calls without a template language (and without inline script,
// which the Content-Security-Policy forbids).

// h('button', {class: 'primary', onclick: fn}, 'Save') builds an element.
// Attributes named on* become listeners; false/null/undefined are left out;
// children may be strings, numbers, nodes, arrays or null.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// replace swaps el's children for the given ones.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
// uid makes ids for label/aria-describedby pairs.
export function uid(prefix = 'f') { return `${prefix}-${++ids}`; }

// field is a labelled input with a place for its error message; name is
// the JSON path the API names in error.field.
export function field(label, input, hint) {
  const id = input.id || (input.id = uid());
  const err = h('p', {class: 'field-error', id: id + '-error', hidden: true});
  input.setAttribute('aria-describedby', id + '-error');
  return h('div', {class: 'field', 'data-field': input.name || ''},
    h('label', {for: id}, label), input, hint ? h('p', {class: 'hint'}, hint) : null, err);
}

// showFieldError marks the input for path (the API's error.field) inside
// form; it answers false when the form has no such field.
export function showFieldError(form, path, message) {
  // The field itself, else the nearest enclosing one the form has:
  // retry_delays_secs[1] → retry_delays_secs, retry_policy.busy.delays_secs → retry_policy.
  const fields = [...form.querySelectorAll('.field')].filter((f) => f.dataset.field);
  let wrap = null;
  for (let p = String(path || ''); p && !wrap;) {
    wrap = fields.find((f) => f.dataset.field === p) || null;
    const shorter = p.replace(/(\[\d+\]|\.[^.[\]]*)$/, '');
    if (shorter === p) break;
    p = shorter;
  }
  if (!wrap) return false;
  const input = wrap.querySelector('input, select, textarea');
  const err = wrap.querySelector('.field-error');
  input.setAttribute('aria-invalid', 'true');
  err.textContent = message;
  err.hidden = false;
  input.focus();
  return true;
}

// clearErrors undoes showFieldError and empties the form's general error.
export function clearErrors(form) {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.field-error, .form-error')) { el.textContent = ''; el.hidden = true; }
}

// formError shows an error for the whole form, or for its field when the
// API named one the form has.
export function formError(form, err) {
  if (err.field && showFieldError(form, err.field, err.message)) return;
  let el = form.querySelector('.form-error');
  if (!el) form.prepend(el = h('p', {class: 'form-error', role: 'alert'}));
  el.textContent = err.field ? `${err.field}: ${err.message}` : err.message;
  el.hidden = false;
}

export function fmtTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString(undefined, {dateStyle: 'short', timeStyle: 'medium'});
}

export function badge(status) {
  return h('span', {class: `badge s-${status}`}, String(status || '—').replace(/_/g, ' '));
}

// confirmDialog asks a yes/no question in a modal <dialog>; it resolves true
// when the user confirms.
export function confirmDialog(question, confirmLabel = 'Delete') {
  return new Promise((resolve) => {
    const d = h('dialog', {class: 'confirm', 'aria-labelledby': 'confirm-q'},
      h('form', {method: 'dialog'},
        h('p', {id: 'confirm-q'}, question),
        h('div', {class: 'actions'},
          h('button', {value: 'cancel', type: 'submit', class: 'secondary'}, 'Cancel'),
          h('button', {value: 'ok', type: 'submit', class: 'danger'}, confirmLabel))));
    d.addEventListener('close', () => { d.remove(); resolve(d.returnValue === 'ok'); });
    document.body.append(d);
    d.showModal();
  });
}

let toastTimer;
// toast announces a short message in the polite live region.
export function toast(message) {
  const el = document.getElementById('status');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

// jsonText pretty-prints a value for a <pre> or a <textarea>.
export function jsonText(v) { return JSON.stringify(v ?? null, null, 2); }

// parseJSON parses text, answering {value} or {error} with the reason.
export function parseJSON(text) {
  try { return {value: JSON.parse(text)}; } catch (e) { return {error: e.message}; }
}

// copyButton copies text to the clipboard.
export function copyButton(text, label) {
  return h('button', {type: 'button', class: 'small secondary', 'aria-label': label, onclick: async () => {
    try { await navigator.clipboard.writeText(text); toast('Copied'); } catch { toast('Copy failed: select the text and copy it'); }
  }}, 'Copy');
}
