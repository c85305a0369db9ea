// api.js - every call to the API: JSON in and out, the bearer token (asked once on a 401 and
// kept in sessionStorage), errors as ApiError with the status and the API's `detail`, and the
// live event stream (Server-Sent Events read through fetch, so the token can be sent).

const TOKEN_KEY = 'enms_api_token';

export class ApiError extends Error {
  // status: HTTP status, or 0 when the API could not be reached; body: the parsed answer.
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }
  get network() { return this.status === 0; }
  // 404 (unknown path) and 501 (not implemented yet): the feature has no data to show.
  get unavailable() { return this.status === 404 || this.status === 501; }
}

let tokenPrompt = null; // one pending prompt shared by every request that met a 401
let declined = false; // the last prompt was cancelled: the event stream does not ask again

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

function askToken() {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const dlg = document.getElementById('token-dialog');
    const input = document.getElementById('token-input');
    input.value = '';
    const done = () => {
      dlg.removeEventListener('close', done);
      const ok = dlg.returnValue === 'ok' && input.value.trim() !== '';
      if (ok) {
        try { sessionStorage.setItem(TOKEN_KEY, input.value.trim()); } catch { /* private mode */ }
      }
      tokenPrompt = null;
      declined = !ok;
      resolve(ok);
    };
    dlg.addEventListener('close', done);
    dlg.returnValue = '';
    dlg.showModal();
  });
  return tokenPrompt;
}

function headers(extra) {
  const h = Object.assign({ Accept: 'application/json' }, extra || {});
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

// Builds "/api/v1/..." with the non-empty entries of query.
export function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// How long a call may wait for the API's answer before it fails as "no answer" (a call that
// never settles would leave the page without any toast).
export const REQUEST_TIMEOUT_MS = 30000;

// request(method, path, {query, body}) -> parsed JSON; throws ApiError. On a 401 the token is
// asked for (once, shared by every call that meets the 401) and the call is retried once with
// it; a call whose 401 came back after another call already got a new token just retries.
export async function request(method, path, opts = {}) {
  const sent = token();
  const init = { method, cache: 'no-store', headers: headers() };
  if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body);
    init.headers['Content-Type'] = 'application/json';
  }
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), REQUEST_TIMEOUT_MS);
  init.signal = ctrl.signal;
  let resp;
  let text;
  try {
    resp = await fetch(url(path, opts.query), init);
    text = await resp.text();
  } catch (e) {
    throw new ApiError(0, ctrl.signal.aborted
      ? `The API did not answer within ${REQUEST_TIMEOUT_MS / 1000} s.`
      : 'Could not connect to the API. Please check your connection.', {});
  } finally {
    clearTimeout(timer);
  }
  if (resp.status === 401 && !opts.retried) {
    const fresh = token() !== '' && token() !== sent;
    if (fresh || (await askToken())) return request(method, path, Object.assign({}, opts, { retried: true }));
  }
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!resp.ok) {
    const detail = (body && (body.detail || body.reason)) || `API returned ${resp.status}: ${resp.statusText}`;
    throw new ApiError(resp.status, detail, body);
  }
  return body;
}

export const get = (path, query) => request('GET', path, { query });
export const post = (path, body, query) => request('POST', path, { body, query });

// Like get(), but 404/501 become `fallback` (the endpoint has nothing to show yet).
export async function getOr(path, query, fallback) {
  try {
    return await get(path, query);
  } catch (e) {
    if (e instanceof ApiError && e.unavailable) return fallback;
    throw e;
  }
}

// The live event stream. onEvent(name, data) for each event; onState('live'|'down').
// Reconnects after `retry` ms. Returns a stop() function.
export function subscribe(onEvent, onState) {
  let stopped = false;
  let ctrl = null;
  let retryMs = 3000;

  async function run() {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const sent = token();
        const resp = await fetch('/api/v1/events', {
          headers: headers({ Accept: 'text/event-stream' }), cache: 'no-store', signal: ctrl.signal,
        });
        if (resp.status === 401) {
          const fresh = token() !== '' && token() !== sent;
          if (!fresh && (declined || !(await askToken()))) throw new Error('no token');
          continue;
        }
        if (!resp.ok || !resp.body) throw new Error(`events: ${resp.status}`);
        onState('live');
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
            let name = 'message';
            const data = [];
            for (const line of block.split(/\r?\n/)) {
              if (line.startsWith('event:')) name = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
              else if (line.startsWith('retry:')) retryMs = Math.max(500, parseInt(line.slice(6), 10) || 3000);
            }
            if (data.length) {
              try { onEvent(name, JSON.parse(data.join('\n'))); } catch { /* not JSON: ignore */ }
            }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      if (stopped) return;
      onState('down');
      await new Promise((r) => setTimeout(r, retryMs));
    }
  }
  run();
  return () => { stopped = true; if (ctrl) ctrl.abort(); };
}
