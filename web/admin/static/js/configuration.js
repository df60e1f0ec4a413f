// configuration.js — the Configuration tab: forms for the known config keys
// (agent, voice, call handling, CRM and its field names, personal data) and JSON for every
// other key. The API validates; a 422 is shown on the field it names.

import {get, put, patch, del, ApiError, enc} from './api.js';
import {h, replace, field, jsonText, parseJSON, toast, clearErrors, formError, showFieldError, uid} from './dom.js';
import {docRef} from './docs.js';

const KNOWN = ['agent', 'voice', 'call_handling', 'crm', 'crm_fields', 'data'];
const DAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

export async function configurationTab(ctx, it, panel) {
  const cfg = await get(`/api/integrations/${it.id}/config`);
  if (!ctx.alive) return;
  const path = (key) => `/api/integrations/${it.id}/config/${enc(key)}`;

  // section draws one key's form; read() turns the inputs into its value.
  function section(key, title, hint, inputs, read, extra) {
    const form = h('form', {class: 'card', id: `config-${key}`, 'aria-labelledby': `config-${key}-h`, novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      clearErrors(form);
      let value;
      try { value = read(); } catch (bad) { showFieldError(form, bad.field, bad.message); return; }
      try {
        // The key first: a value it refuses leaves the rest unsaved too.
        cfg[key] = await put(path(key), value);
        if (extra) await extra();
        toast(`${title} saved`);
      } catch (ex) {
        if (!(ex instanceof ApiError)) throw ex;
        formError(form, ex);
      }
    }},
    h('h2', {id: `config-${key}-h`}, title), hint ? h('p', {class: 'muted'}, hint) : null, docRef(key),
    inputs,
    h('div', {class: 'actions'},
      h('button', {type: 'button', class: 'secondary', onclick: async () => {
        cfg[key] = await del(path(key));
        toast(`${title}: defaults restored`);
        configurationTab(ctx, it, panel);
      }}, 'Restore defaults'),
      h('button', {type: 'submit', class: 'primary'}, 'Save')));
    return form;
  }
  const text = (name, value, attrs = {}) => h('input', {name, value: value ?? '', autocomplete: 'off', ...attrs});
  const num = (name, value, attrs = {}) => h('input', {name, type: 'number', inputmode: 'numeric', value: value ?? '', ...attrs});
  const select = (name, value, options) => h('select', {name}, options.map((o) => h('option', {value: o, selected: o === value}, o)));
  const val = (form, name) => form.querySelector(`[name="${name}"]`).value.trim();
  const numVal = (form, name) => {
    const v = val(form, name);
    if (v === '' || !/^-?\d+$/.test(v)) throw {field: name, message: 'must be a whole number'};
    return Number(v);
  };

  // Agent: the integration's own fields (seed 000) and the agent key.
  const ag = cfg.agent || {};
  const prompt = h('textarea', {name: 'agentPrompt', rows: 4}); prompt.value = it.agentPrompt || '';
  const agent = section('agent', 'Agent', 'What the voice agent is and where it runs.', [
    field('Prompt', prompt),
    h('div', {class: 'row'},
      field('ElevenLabs agent id', text('elevenLabsAgentId', it.elevenLabsAgentId)),
      field('Assistant name', text('saasAssistantName', it.saasAssistantName))),
    h('div', {class: 'row'},
      field('Phone number', text('phoneNumber', it.phoneNumber, {type: 'tel'})),
      field('SIP id', text('voiceAssistantSipId', it.voiceAssistantSipId))),
    h('div', {class: 'row'},
      field('Time zone', text('timezone', ag.timezone), 'IANA name, e.g. Europe/Kyiv: the date and time the agent is told.'),
      field('Locale', text('locale', ag.locale))),
  ], () => ({...ag, timezone: val(agent, 'timezone'), locale: val(agent, 'locale')}), async () => {
    const fields = {};
    for (const n of ['agentPrompt', 'elevenLabsAgentId', 'saasAssistantName', 'phoneNumber', 'voiceAssistantSipId']) {
      fields[n] = agent.querySelector(`[name="${n}"]`).value;
    }
    Object.assign(it, await patch(`/api/integrations/${it.id}`, fields));
  });

  const vo = cfg.voice || {};
  // The caller number pool (voice.caller_ids): one row per number with its
  // own limits. Inputs are named by their path in the voice value
  // (caller_ids[3].number), renumbered on read, so a 422 lands on its input.
  const LIMITS = [['concurrency_limit', 'Live calls', 1, 1000], ['per_second', 'Per second', 0.01, 1000],
    ['max_per_hour', 'Per hour', 1, 100000], ['max_per_day', 'Per day', 1, 1000000]];
  const callerRows = h('div', {class: 'caller-ids'});
  const callerRow = (c = {}) => {
    const row = h('div', {class: 'row caller-id'},
      field('Number', text('caller_ids[].number', c.number, {'data-k': 'number', placeholder: '+14155550100', inputmode: 'tel'})),
      field('SIP id', text('caller_ids[].sip_id', c.sip_id, {'data-k': 'sip_id', placeholder: 'the voice SIP id'})),
      field('Phone number id', text('caller_ids[].agent_phone_number_id', c.agent_phone_number_id, {'data-k': 'agent_phone_number_id'})),
      LIMITS.map(([k, label, min, max]) => field(label, h('input', {name: `caller_ids[].${k}`, 'data-k': k, type: 'number', min, max,
        step: k === 'per_second' ? 'any' : 1, value: c[k] ?? '', placeholder: 'no limit'}))),
      h('button', {type: 'button', class: 'secondary remove-caller', 'aria-label': 'Remove this number', onclick: () => row.remove()}, 'Remove'));
    return row;
  };
  for (const c of vo.caller_ids || []) callerRows.append(callerRow(c));
  const readCallerIDs = () => [...callerRows.querySelectorAll('.caller-id')].map((row, i) => {
    for (const input of row.querySelectorAll('[data-k]')) {
      input.name = `caller_ids[${i}].${input.dataset.k}`;
      input.closest('.field').dataset.field = input.name;
    }
    const get = (k) => row.querySelector(`[data-k="${k}"]`).value.trim();
    const c = {number: get('number')};
    for (const k of ['sip_id', 'agent_phone_number_id']) if (get(k) !== '') c[k] = get(k);
    for (const [k] of LIMITS) {
      const x = get(k);
      if (x === '') continue;
      if (!/^\d*\.?\d+$/.test(x)) throw {field: `caller_ids[${i}].${k}`, message: `“${x}” is not a number`};
      c[k] = Number(x);
    }
    return c;
  });
  const callerPool = h('fieldset', {class: 'caller-pool'}, h('legend', {}, 'Caller numbers'),
    h('p', {class: 'muted'}, 'Numbers dialled from, each with its own limits (empty: none). A number at a limit is never taken; ' +
      'a call that finds every number at one waits (deferred: caller_id). Without numbers, the trunk\'s own is shown.'),
    callerRows,
    h('div', {class: 'row'},
      h('button', {type: 'button', class: 'secondary add-caller', onclick: () => callerRows.append(callerRow())}, 'Add number'),
      field('Strategy', select('caller_id_strategy', vo.caller_id_strategy || 'local', ['local', 'round_robin', 'least_used', 'sticky']),
        'local: the recipient’s area code, else country; sticky: the number the recipient saw before.'),
      h('span', {class: 'check'}, h('input', {type: 'checkbox', name: 'rotate_on_retry', id: 'rotate-on-retry', checked: !!vo.rotate_on_retry}),
        h('label', {for: 'rotate-on-retry'}, 'A retry prefers a number the recipient has not seen'))));
  const voice = section('voice', 'Voice', 'The dialler: the Voice Assistant platform (va), ElevenLabs, or the simulator (dials nobody). Its secret (VA_AUTH_TOKEN or ELEVENLABS_API_KEY) goes under Secrets.', [
    h('div', {class: 'row'}, field('Provider', select('provider', vo.provider, ['va', 'elevenlabs', 'simulator'])),
      field('Base URL', text('base_url', vo.base_url, {type: 'url'}))),
    h('div', {class: 'row'}, field('SIP id (va)', text('sip_id', vo.sip_id)), field('Assistant id (va)', text('assistant_id', vo.assistant_id))),
    h('div', {class: 'row'}, field('Agent id (elevenlabs)', text('agent_id', vo.agent_id)),
      field('Agent phone number id (elevenlabs)', text('agent_phone_number_id', vo.agent_phone_number_id)),
      field('Via (elevenlabs)', select('via', vo.via || '', ['', 'sip_trunk', 'twilio']))),
    h('div', {class: 'row'}, field('Ring timeout (s, elevenlabs)', num('ring_timeout_secs', vo.ring_timeout_secs, {min: 1, max: 600, placeholder: '45'}),
      'How long the phone rings before ElevenLabs gives up (1–600; empty: 45).')),
    callerPool,
  ], () => {
    const v = {...vo};
    for (const n of ['provider', 'base_url', 'sip_id', 'assistant_id', 'agent_id', 'agent_phone_number_id', 'via']) {
      const x = val(voice, n);
      if (x !== '' || n in v) v[n] = x;
    }
    // Empty leaves it to the API's default; a bad value is the API's to refuse.
    if (val(voice, 'ring_timeout_secs') === '') delete v.ring_timeout_secs;
    else v.ring_timeout_secs = numVal(voice, 'ring_timeout_secs');
    const pool = readCallerIDs();
    if (pool.length) v.caller_ids = pool; else delete v.caller_ids;
    const strategy = val(voice, 'caller_id_strategy');
    if (strategy !== 'local' || 'caller_id_strategy' in v) v.caller_id_strategy = strategy;
    if (voice.querySelector('[name="rotate_on_retry"]').checked) v.rotate_on_retry = true; else delete v.rotate_on_retry;
    return v;
  });

  const ch = cfg.call_handling || {};
  const cw = ch.calling_window;
  const windowOn = h('input', {type: 'checkbox', name: 'window_on', id: uid(), checked: !!cw});
  const days = h('div', {class: 'field', 'data-field': 'calling_window.days'},
    h('fieldset', {}, h('legend', {}, 'Days'), DAYS.map((d, i) => {
      const id = uid();
      return h('span', {class: 'check'}, h('input', {type: 'checkbox', id, name: 'day', value: i + 1, checked: cw ? cw.days.includes(i + 1) : i < 5}),
        h('label', {for: id}, d));
    })), h('p', {class: 'field-error', hidden: true}));
  const policy = h('textarea', {name: 'retry_policy', rows: 4, class: 'mono', spellcheck: 'false',
    placeholder: '{"no_answer": {"max_attempts": 4, "delays_secs": [1800, 7200]}}'});
  policy.value = ch.retry_policy ? jsonText(ch.retry_policy) : '';
  const callHandling = section('call_handling', 'Call handling', null, [
    h('div', {class: 'row'},
      field('Concurrency limit', num('concurrency_limit', ch.concurrency_limit, {min: 1, max: 1000}), 'Calls live at once (1–1000).'),
      field('Max attempts', num('max_attempts', ch.max_attempts, {min: 1, max: 20}))),
    h('div', {class: 'row'},
      field('Shortest counted call (s)', num('min_call_duration_secs', ch.min_call_duration_secs, {min: 0, max: 600}), 'Shorter calls are retried.'),
      field('Longest call (s)', num('max_call_duration_secs', ch.max_call_duration_secs, {min: 10, max: 86400}))),
    field('Retry delays (s)', text('retry_delays_secs', (ch.retry_delays_secs || []).join(', ')), 'Comma-separated, one per retry.'),
    field('Retry policy by outcome (JSON, optional)', policy),
    h('fieldset', {class: 'window'}, h('legend', {}, 'Calling window'),
      h('span', {class: 'check'}, windowOn, h('label', {for: windowOn.id}, 'Only call inside a window')),
      h('div', {class: 'row'},
        field('Time zone', text('calling_window.timezone', cw ? cw.timezone : 'Europe/Kyiv'), '“recipient” uses each recipient’s own.'),
        field('Start', text('calling_window.start', cw ? cw.start : '09:00', {placeholder: 'HH:MM'})),
        field('End', text('calling_window.end', cw ? cw.end : '20:00', {placeholder: 'HH:MM'}))),
      days,
      field('Excluded dates', text('calling_window.exclude_dates', cw && cw.exclude_dates ? cw.exclude_dates.join(', ') : '',
        {placeholder: '2026-12-25, 2027-01-01'}), 'Holidays: nothing is dialled on them, read in the window’s zone (up to 366).')),
    h('fieldset', {class: 'pacing'}, h('legend', {}, 'Pacing and contact rules'),
      h('div', {class: 'row'},
        field('Dial rate (per second)', text('dial_rate.per_second', ch.dial_rate ? String(ch.dial_rate.per_second) : '',
          {inputmode: 'decimal', placeholder: 'no limit'}), 'Originates a second across every replica (0.01–1000).'),
        field('Burst', num('dial_rate.burst', ch.dial_rate ? ch.dial_rate.burst : '', {min: 1, max: 1000}), 'At once after a quiet spell (1–1000).')),
      h('div', {class: 'row'},
        field('Contact caps', text('contact_caps', (ch.contact_caps || []).map((c) => `${c.max_dials}/${c.days}`).join(', '),
          {placeholder: '7/7'}), 'Most dials to one number / in days, e.g. 7/7 (up to 5 caps).'),
        field('Caps count dials of', select('contact_caps_scope', ch.contact_caps_scope || 'integration', ['integration', 'owner'])))),
  ], () => {
    const v = {...ch};
    for (const n of ['concurrency_limit', 'max_attempts', 'min_call_duration_secs', 'max_call_duration_secs']) v[n] = numVal(callHandling, n);
    const delays = val(callHandling, 'retry_delays_secs');
    v.retry_delays_secs = delays === '' ? [] : delays.split(/[,\s]+/).filter(Boolean).map((d) => {
      if (!/^\d+$/.test(d)) throw {field: 'retry_delays_secs', message: `“${d}” is not a number of seconds`};
      return Number(d);
    });
    if (policy.value.trim()) {
      const {value, error} = parseJSON(policy.value);
      if (error) throw {field: 'retry_policy', message: `Not valid JSON: ${error}`};
      v.retry_policy = value;
    } else delete v.retry_policy;
    v.calling_window = windowOn.checked ? {
      timezone: val(callHandling, 'calling_window.timezone'), start: val(callHandling, 'calling_window.start'),
      end: val(callHandling, 'calling_window.end'),
      days: [...callHandling.querySelectorAll('input[name="day"]:checked')].map((c) => Number(c.value)),
    } : null;
    const holidays = val(callHandling, 'calling_window.exclude_dates').split(/[,\s]+/).filter(Boolean);
    if (v.calling_window && holidays.length) v.calling_window.exclude_dates = holidays;
    const rate = val(callHandling, 'dial_rate.per_second');
    if (rate === '') delete v.dial_rate;
    else {
      if (!/^\d*\.?\d+$/.test(rate)) throw {field: 'dial_rate.per_second', message: `“${rate}” is not a number of originates a second`};
      v.dial_rate = {per_second: Number(rate)};
      if (val(callHandling, 'dial_rate.burst') !== '') v.dial_rate.burst = numVal(callHandling, 'dial_rate.burst');
    }
    const caps = val(callHandling, 'contact_caps').split(/[,\s]+/).filter(Boolean).map((c) => {
      const m = /^(\d+)\/(\d+)$/.exec(c);
      if (!m) throw {field: 'contact_caps', message: `“${c}” is not dials/days, e.g. 7/7`};
      return {max_dials: Number(m[1]), days: Number(m[2])};
    });
    if (caps.length) v.contact_caps = caps; else delete v.contact_caps;
    const scope = val(callHandling, 'contact_caps_scope');
    if (caps.length || scope !== 'integration') v.contact_caps_scope = scope; else delete v.contact_caps_scope;
    return v;
  });

  const cr = cfg.crm || {};
  const labels = h('textarea', {name: 'status_values', rows: 3, class: 'mono', spellcheck: 'false',
    placeholder: '{"completed": "Called", "no_answer": "No answer"}'});
  labels.value = cr.status_values ? jsonText(cr.status_values) : '';
  const callLog = h('input', {type: 'checkbox', name: 'call_log', id: uid(), checked: !!cr.call_log});
  const crm = section('crm', 'CRM', 'Where finished calls are reported. NetHunt needs the NETHUNT_EMAIL and NETHUNT_API_KEY secrets (set them first: saving checks them, the folder and the field names with NetHunt); the webhook CRM signs with CRM_WEBHOOK_SECRET.', [
    h('div', {class: 'row'}, field('Kind', select('kind', cr.kind, ['none', 'nethunt', 'webhook'])), field('Folder id (nethunt)', text('folder_id', cr.folder_id)),
      field('Base URL (nethunt)', text('base_url', cr.base_url, {type: 'url'}))),
    field('Status labels by outcome (nethunt, JSON, optional)', labels, 'The status dropdown’s option for each outcome; others are written as their name.'),
    h('span', {class: 'check'}, callLog, h('label', {for: callLog.id}, 'Also write NetHunt’s call log (nethunt)')),
    h('div', {class: 'row'}, field('Lookup URL (webhook)', text('lookup_url', cr.lookup_url, {type: 'url'})),
      field('Update URL (webhook)', text('update_url', cr.update_url, {type: 'url'}))),
  ], () => {
    const v = {...cr, kind: val(crm, 'kind')};
    for (const n of ['folder_id', 'base_url', 'lookup_url', 'update_url']) {
      const x = val(crm, n);
      if (x) v[n] = x; else delete v[n];
    }
    if (labels.value.trim()) {
      const {value, error} = parseJSON(labels.value);
      if (error) throw {field: 'status_values', message: `Not valid JSON: ${error}`};
      v.status_values = value;
    } else delete v.status_values;
    if (callLog.checked) v.call_log = true; else delete v.call_log;
    return v;
  });

  const cf = cfg.crm_fields || {};
  const fieldNames = ['phone', 'name', 'company', 'source', 'status'];
  // With NetHunt the CRM, the folder's own field names are offered to choose from.
  const nethunt = cr.kind === 'nethunt';
  const choices = h('datalist', {id: uid('crm-field-names')});
  const loadNames = nethunt ? h('button', {type: 'button', class: 'secondary', onclick: async () => {
    clearErrors(crmFields);
    loadNames.disabled = true;
    try {
      const {fields} = await get(`/api/integrations/${it.id}/crm/fields`);
      replace(choices, fields.map((n) => h('option', {value: n})));
      toast(`NetHunt folder: ${fields.length} field names`);
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      formError(crmFields, ex);
    } finally {
      loadNames.disabled = false;
    }
  }}, 'Load field names') : null;
  const crmFields = section('crm_fields', 'CRM field names', 'The names of these fields in your CRM.' +
    (nethunt ? ' Load field names offers the NetHunt folder’s own (they are case-sensitive).' : ''), [
    h('div', {class: 'row'}, fieldNames.map((n) => field(n, text(n, cf[n], nethunt ? {list: choices.id} : {})))),
    nethunt ? h('div', {class: 'actions'}, loadNames) : null, choices,
  ], () => {
    const v = {...cf};
    for (const n of fieldNames) v[n] = val(crmFields, n);
    return v;
  });

  // Personal data (contract §11): what calls keep, and for how long.
  const dt = cfg.data || {};
  const data = section('data', 'Personal data', 'What a call keeps of its content: everything; no transcripts or audio (no_content); or only statuses, outcomes, durations and ids (minimal). Retention deletes finished calls this many days after their last change; empty keeps them.', [
    h('div', {class: 'row'}, field('Stored', select('store', dt.store || 'everything', ['everything', 'no_content', 'minimal'])),
      field('Retention (days, 1–3650)', num('retention_days', dt.retention_days, {min: 1, max: 3650}))),
  ], () => {
    const v = {store: val(data, 'store')};
    if (val(data, 'retention_days') !== '') v.retention_days = numVal(data, 'retention_days');
    return v;
  });

  // Every other key, as JSON.
  const others = Object.keys(cfg).filter((k) => !KNOWN.includes(k)).sort();
  const otherForms = others.map((key) => {
    const ta = h('textarea', {name: key, rows: 5, class: 'mono', spellcheck: 'false'});
    ta.value = jsonText(cfg[key]);
    return section(key, key, null, [field('Value (JSON)', ta)], () => {
      const {value, error} = parseJSON(ta.value);
      if (error) throw {field: key, message: `Not valid JSON: ${error}`};
      return value;
    });
  });
  const newKey = h('input', {name: 'key', pattern: '[a-z0-9_.-]{1,64}', autocomplete: 'off', placeholder: 'analysis'});
  const newVal = h('textarea', {name: 'value', rows: 4, class: 'mono', spellcheck: 'false'});
  const addForm = h('form', {class: 'card', 'aria-labelledby': 'config-add-h', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(addForm);
    const {value, error} = parseJSON(newVal.value);
    if (!newKey.value.trim()) { showFieldError(addForm, 'key', 'Key is required'); return; }
    if (error) { showFieldError(addForm, 'value', `Not valid JSON: ${error}`); return; }
    try {
      await put(path(newKey.value.trim()), value);
      toast(`Saved ${newKey.value.trim()}`);
      configurationTab(ctx, it, panel);
    } catch (ex) {
      if (!(ex instanceof ApiError)) throw ex;
      formError(addForm, ex.field ? {field: 'value', message: `${ex.field}: ${ex.message}`} : ex);
    }
  }},
  h('h2', {id: 'config-add-h'}, 'Other keys'),
  h('p', {class: 'muted'}, 'Any other key, as JSON: e.g. analysis (an LLM that analyses finished calls) or predial (an eligibility check before each dial).'),
  h('div', {class: 'row'}, field('Key', newKey), field('Value (JSON)', newVal)),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Save key')));

  replace(panel, agent, voice, callHandling, crm, crmFields, data, otherForms, addForm);
}
