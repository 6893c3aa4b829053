// @ts-check
// What the client of a realtime call gets back of the upstream's reply: the headers an answer
// keeps, and, for a call that failed, the upstream's own last error or the provider's error
// for what stopped it.

/** Kept on every answer but a stream: when to come back, and whether to (a stream succeeded). */
const RETRY_HEADERS = ['retry-after', 'x-should-retry'];

/** @typedef {{ status: number, headers: Headers, text: string }} Failure the last upstream failure */

/**
 * The answer for a call that failed: the upstream's own last error when the failure was one
 * (status, body, retry-after), else the provider's error for what stopped it.
 * @param {any} e the item's error @param {Failure | null} last
 * @param {(s: string) => string} redact
 * @param {ReturnType<typeof import('./index.js').realtimeSettings>} settings
 * @param {import('./index.js').Wire} wire
 */
export function failed(e, last, redact, settings, wire) {
  /** @type {Record<string, string>} */
  const retryAfter = e.retryAfterMs ? { 'retry-after': String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))) } : {};
  if (e.kind === 'http' && last && last.status === e.status) {
    if (last.status >= 300 && last.status < 400) {
      return wire.error(502, 'the upstream answered with a redirect, which is never followed', 'upstream_redirect');
    }
    // The upstream refused the Worker's key, not the caller's token: a fault of the Worker.
    if (last.status === 401) {
      return wire.error(500, `the upstream refused the Worker's ${wire.keyVar} (401): its operator must set a valid one`, 'upstream_auth');
    }
    return new Response(redact(last.text), { status: last.status, headers: { ...kept(last.headers, wire), ...retryAfter } });
  }
  if (e.kind === 'deferred') {
    return wire.error(429, `the upstream account is at its rate limit: no turn came within ${settings.waitMs} ms ` +
      '(EDGEBATCH_REALTIME_WAIT_MS); retry after retry-after', 'rate_limit_exceeded', retryAfter);
  }
  if (e.kind === 'invalid') return wire.error(400, redact(String(e.message)), null);
  if (e.kind === 'timeout') {
    return wire.error(504, `the upstream did not answer within ${settings.timeoutMs} ms (EDGEBATCH_REALTIME_TIMEOUT_MS)`, 'timeout');
  }
  return wire.error(500, `the upstream call failed (${e.kind}): ${redact(String(e.message))}`, null, retryAfter);
}

/**
 * The headers a JSON answer keeps of the upstream's: who answered, when to come back, and its
 * content type.
 * @param {Headers} headers @param {{ ids: string[] }} wire
 */
export function kept(headers, wire) {
  return {
    'content-type': headers.get('content-type') ?? 'application/json',
    'cache-control': 'no-store',
    ...pick(headers, [...wire.ids, ...RETRY_HEADERS]),
  };
}

/**
 * Those of `names` the upstream sent.
 * @param {Headers} headers @param {string[]} names
 */
export function pick(headers, names) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const name of names) {
    const v = headers.get(name);
    if (v !== null) out[name] = v;
  }
  return out;
}
