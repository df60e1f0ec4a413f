// api.js — the console's only way to the server: the public admin API with
// the admin token as a bearer token. The token lives in sessionStorage (this
// tab only, gone when it closes): never in a URL, a cookie or localStorage.

const TOKEN_KEY = 'callqueue.adminToken';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ''; },
  signIn(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  signOut() { sessionStorage.removeItem(TOKEN_KEY); },
};

// ApiError is the contract's {"error": {code, message, field}} answer.
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `request failed with status ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.field = e.field || '';
  }
}

// onUnauthorized is called when the API answers 401: the token is gone
// or was revoked, so the console returns to sign-in.
let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

// request sends method path with an optional JSON body (or a raw string
// body with opts.contentType) and answers {data, headers}.
export async function request(method, path, body, opts = {}) {
  const headers = {Authorization: 'Bearer ' + session.token, Accept: 'application/json'};
  let payload;
  if (body !== undefined) {
    if (opts.contentType) { headers['Content-Type'] = opts.contentType; payload = body; }
    else { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
  }
  const resp = await fetch(path, {method, headers, body: payload, cache: 'no-store'});
  if (resp.status === 401 && !opts.signIn) {
    session.signOut();
    onUnauthorized();
  }
  if (opts.blob && resp.ok) return {data: await resp.blob(), headers: resp.headers};
  const text = await resp.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return {data, headers: resp.headers};
}

export const get = (path, opts) => request('GET', path, undefined, opts).then((r) => r.data);
export const post = (path, body, opts) => request('POST', path, body ?? {}, opts).then((r) => r.data);
export const put = (path, body) => request('PUT', path, body).then((r) => r.data);
export const patch = (path, body) => request('PATCH', path, body).then((r) => r.data);
export const del = (path) => request('DELETE', path).then((r) => r.data);

// list gets a page and its total (X-Total-Count), when the API gives one.
export async function list(path) {
  const r = await request('GET', path);
  const total = r.headers.get('X-Total-Count');
  return {items: r.data || [], total: total === null ? null : Number(total)};
}

// query builds ?a=1&b=2, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

// download fetches path with the token and saves it as filename.
export async function download(path, filename) {
  const {data} = await request('GET', path, undefined, {blob: true});
  const url = URL.createObjectURL(data);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export const enc = encodeURIComponent;
