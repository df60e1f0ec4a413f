// docs.js — links from the console to the documentation it serves at
// /admin/docs/: the pages of docs/ in the repository, built into the binary,
// so they work offline. docs/'s tests check that every page and #anchor
// named here exists.

import {h} from './dom.js';

// DOCS maps a console topic — a configuration key, a tab, a page — to the
// page (and section) that explains it.
export const DOCS = {
  // Configuration sections, by config key.
  agent: 'elevenlabs.md',
  voice: 'voice-assistant.md',
  call_handling: 'retries.md',
  crm: 'crm.md',
  crm_fields: 'crm.md',
  data: 'personal-data.md',
  predial: 'pacing.md#pre-dial-check',
  pacing: 'pacing.md',
  // An integration's tabs and cards.
  webhooks: 'voice-assistant.md',
  handlers: 'api.md#api-reference-handlers-setup-and-audit-log',
  secrets: 'security.md',
  configuration: 'configuration.md#integration-configuration-keys',
  calls: 'guarantees.md',
  campaigns: 'campaigns.md',
  suppressions: 'pacing.md#suppressions-never-call-a-number-again',
  audit: 'api.md#api-reference-handlers-setup-and-audit-log',
  // The other pages.
  'dead-letters': 'monitoring.md#alerts-and-what-to-do',
  people: 'personal-data.md',
};

// docLink is a link to the page about topic, opened beside the console, or
// null when there is none.
export function docLink(topic, label = 'Documentation') {
  const page = DOCS[topic];
  if (!page) return null;
  return h('a', {href: `/admin/docs/${page}`, class: 'doc-link', target: '_blank', rel: 'noopener'}, label);
}

// docRef is docLink in a paragraph of its own, or null.
export function docRef(topic, label) {
  const a = docLink(topic, label);
  return a ? h('p', {class: 'doc-ref small'}, a) : null;
}
