// A small client of /v1/batches for the tests (not a test file).
import { TOKEN } from './harness.mjs';

/**
 * Hourly token budgets (EDGEBATCH_ITEMS_PER_HOUR, _SUBREQUESTS_PER_HOUR) roomy enough that
 * they never pace a test's batches (the production defaults would: 1,000 items an hour).
 */
export const ROOMY_TOKEN = { EDGEBATCH_ITEMS_PER_HOUR: '10000000', EDGEBATCH_SUBREQUESTS_PER_HOUR: '100000000' };

/**
 * `method path` with the bearer token; JSON bodies unless `raw`. Returns { status, headers,
 * text, json }. A GET that meets a reset socket (undici reusing a keep-alive connection the
 * server side has just closed, seen under load) is sent once more: polling is idempotent.
 */
export async function api(base, method, path, opts = {}) {
  try {
    return await call(base, method, path, opts);
  } catch (err) {
    if (method !== 'GET' || !(err instanceof TypeError)) throw err;
    return call(base, method, path, opts);
  }
}

async function call(base, method, path, { body, raw, type = 'application/json', token = TOKEN } = {}) {
  const res = await fetch(new URL(path, base), {
    method,
    headers: { ...(token && { authorization: `Bearer ${token}` }), ...(body !== undefined || raw !== undefined ? { 'content-type': type } : {}) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    ...(raw !== undefined && { body: raw }),
    ...(raw instanceof ReadableStream && { duplex: 'half' }),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** `n` requests `{ custom_id, params }` of short Messages bodies. */
export function requests(n, prefix = 'r') {
  return Array.from({ length: n }, (_, i) => ({
    custom_id: `${prefix}${i}`,
    params: { model: 'claude-haiku-4-5', max_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${i}.` }] },
  }));
}

/** A simulator session of its own: `{ id, baseUrl }`. */
export async function simSession(base, config, hangMs) {
  const res = await fetch(new URL('/sim/sessions', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ config, ...(hangMs && { hangMs }) }),
  });
  if (res.status !== 201) throw new Error(`sim session: ${res.status} ${await res.text()}`);
  const { id, path } = await res.json();
  return { id, baseUrl: new URL(path, base).href };
}

export async function sessionStats(baseUrl) {
  return (await fetch(`${baseUrl}/stats`)).json();
}

/** Creates a batch; throws unless 201. */
export async function submit(base, payload) {
  const r = await api(base, 'POST', '/v1/batches', { body: payload });
  if (r.status !== 201) throw new Error(`POST /v1/batches: ${r.status} ${r.text}`);
  return r.json;
}

/** Polls until the batch has ended (or `timeoutMs`); returns the last view and every sample. */
export async function waitEnded(base, id, { timeoutMs = 60_000, everyMs = 200, onSample } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await api(base, 'GET', `/v1/batches/${id}`);
    if (r.status !== 200) throw new Error(`GET batch: ${r.status} ${r.text}`);
    onSample?.(r.json);
    if (r.json.processing_status === 'ended') return r.json;
    if (Date.now() > until) throw new Error(`batch ${id} did not end in ${timeoutMs} ms: ${JSON.stringify(r.json.request_counts)}`);
    await new Promise((res) => setTimeout(res, everyMs));
  }
}

/** Every results line of a batch, parsed (following ?after= pages). */
export async function results(base, id, after = 0) {
  const r = await api(base, 'GET', `/v1/batches/${id}/results?after=${after}`);
  if (r.status !== 200) throw new Error(`results: ${r.status} ${r.text}`);
  return r.text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** Asserts-by-throwing that `lines` hold exactly one line per custom_id of `ids`. */
export function exactlyOnce(lines, ids) {
  const seen = new Map();
  for (const l of lines) seen.set(l.custom_id, (seen.get(l.custom_id) ?? 0) + 1);
  const doubled = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
  const missing = ids.filter((id) => !seen.has(id));
  const extra = [...seen.keys()].filter((k) => !ids.includes(k));
  if (doubled.length || missing.length || extra.length) {
    throw new Error(`results not exactly once: doubled ${doubled.slice(0, 5)}, missing ${missing.slice(0, 5)} (${missing.length}), unknown ${extra.slice(0, 5)}`);
  }
}
