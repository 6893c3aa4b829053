// @ts-check
// One realtime call of a provider-format route, provider-neutral: attempts through the
// library's executor (one BatchProcessor `map`: its retry rule, backoff and Retry-After
// handling) with the account limiter as its permits (the UpstreamLimiter every stored batch on
// that account uses), and what the client gets when it fails. `wire` says what differs between
// providers: the name the library knows, the prefix of the rate-limit headers, the headers an
// answer keeps, and how an error of the Worker's own reads.
// (/anthropic/v1/messages runs the same loop in anthropic/messages.js; this file is written so
// that route can use it too.)
//
// The attempt is a task function rather than `run()`, because `run()` reads and parses the
// reply: the task hands back the upstream Response unread, so a `stream: true` reply is passed
// through as it arrives, and a failure's exact body can be answered. What the reply said
// (rate-limit headers, usage) is added to the permit's release (anthropic/observe.js).
import * as edgebatch from '../../pkg/edgebatch.js';
import { accountPermits } from '../batches/index.js';
import { observed } from '../anthropic/observe.js';

/** A call the limiter defers asks again after at most this long (while its wait lasts). */
const REASK_MS = 1_000;

/**
 * @typedef {{ name: string, ratePrefix: string, keep: string[], keyVar: string,
 *   error: (status: number, message: string, code: string | null, headers?: Record<string, string>) => Response }} Wire
 * @typedef {{ status: number, headers: Headers, text: string }} Failure the last upstream failure
 * @typedef {{ waitMs: number, deadlineMs: number, timeoutMs: number, maxRetries: number }} Settings
 * @typedef {{ env: any, caller: { name: string }, redact: (s: string) => string }} Ctx
 * @typedef {{ status: number, headers: Headers, text: string, usage?: { inputTokens: number, outputTokens: number } }} Reply
 * @typedef {ReturnType<typeof observed>} Permits
 */

/**
 * Runs the call. When the limiter defers (its estimate of the wait passes what the call may
 * still wait), the call asks again later, until its `waitMs` is over; then it is a 429 with
 * retry-after.
 * @param {Request} request @param {Record<string, unknown>} body @param {boolean} streaming
 * @param {{ name: string, baseUrl: string, apiKey?: string }} provider
 * @param {number} maxAttempts what the token's hour granted
 * @param {Settings} settings @param {Ctx} c @param {Wire} wire
 * @returns {Promise<{ ok: true, reply: Reply | Response, permits: Permits, attempts: number }
 *   | { ok: false, answer: Response, permits: Permits, attempts: number }>}
 */
export async function callUpstream(request, body, streaming, provider, maxAttempts, settings, c, wire) {
  const start = Date.now();
  const waitEnd = start + settings.waitMs;
  const deadline = start + settings.deadlineMs;
  const endpoint = edgebatch.Limiter.request(provider);
  const payload = JSON.stringify(body);
  const cost = edgebatch.Limiter.estimate(wire.name, body);
  /** @type {Failure | null} */
  let lastFailure = null;
  let attempts = 0;
  for (;;) {
    const permits = observed(await accountPermits(c.env, provider, `realtime:${c.caller.name}`,
      () => Math.max(0, Math.min(waitEnd, deadline) - Date.now())));
    /** @type {(item: unknown, ctx: { signal: AbortSignal }) => Promise<any>} */
    const task = async (_item, { signal }) => {
      const res = await fetch(endpoint.url, { method: 'POST', headers: endpoint.headers, body: payload, signal, redirect: 'manual' });
      const seen = rateHeaders(res.headers, wire.ratePrefix);
      if (res.status >= 200 && res.status < 300) {
        if (streaming && (res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
          permits.observe({ headers: seen, stream: true }, signal);
          return res;
        }
        const text = await readBody(res);
        const reply = parseJson(text);
        if (reply === undefined) throw Object.assign(new Error('the reply is not valid JSON'), { retryable: true });
        const usage = edgebatch.Limiter.usage(wire.name, reply);
        permits.observe({ headers: seen, usage }, signal);
        return { status: res.status, headers: res.headers, text, usage };
      }
      const text = await readBody(res);
      if (!signal.aborted) lastFailure = { status: res.status, headers: res.headers, text };
      permits.observe({ headers: seen }, signal);
      // As SDK errors carry them: the executor's retry rule reads status, headers and body.
      throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status, headers: res.headers, error: parseJson(text) });
    };
    const bp = new edgebatch.BatchProcessor({
      concurrency: 1,
      maxRetries: settings.maxRetries,
      timeoutMs: settings.timeoutMs,
      deadlineMs: Math.max(1, deadline - Date.now()),
      maxAttempts: Math.max(1, maxAttempts - attempts),
      // The shared limiter paces and breaks for every caller; locally: retries and timeouts.
      adaptive: false,
      breaker: { failures: 0 },
      cost: () => cost,
    });
    let r;
    try {
      [r] = await bp.map([body], task, { permits: permits.source, signal: request.signal });
    } finally {
      bp.free();
    }
    attempts += r.attempts;
    if (r.ok) return { ok: true, reply: r.value, permits, attempts };
    const e = r.error;
    const waitOver = Math.min(waitEnd, deadline);
    if (e.kind === 'deferred' && attempts < maxAttempts && Date.now() < waitOver) {
      // The limiter's time is an estimate from how fast its queue moved: the call asks again
      // by then, or within REASK_MS, until its wait is over.
      await permits.flush();
      const at = Math.min(Date.now() + (e.retryAfterMs ?? 0), Date.now() + REASK_MS, waitOver);
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, at - Date.now())));
      continue;
    }
    return { ok: false, answer: failed(e, lastFailure, c.redact, settings, wire), permits, attempts };
  }
}

/**
 * What the client gets for a call that failed: the upstream's own last error when the failure
 * was one (status, body, retry-after), else the provider's error for what stopped it.
 * @param {any} e the item's error @param {Failure | null} last
 * @param {(s: string) => string} redact @param {Settings} settings @param {Wire} wire
 */
function failed(e, last, redact, settings, wire) {
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
    return new Response(redact(last.text), { status: last.status, headers: { ...kept(last.headers, wire.keep), ...retryAfter } });
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

/** @param {string} text @returns {any} undefined when it is not JSON */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A reply body as text; one that breaks off is a failure worth another attempt.
 * @param {Response} res
 */
async function readBody(res) {
  try {
    return await res.text();
  } catch (err) {
    throw Object.assign(new Error(`the reply broke off: ${/** @type {Error} */ (err)?.message}`), { retryable: true });
  }
}

/**
 * The rate-limit and retry headers of a reply, for the limiter (lower-case names).
 * @param {Headers} headers @param {string} prefix
 */
function rateHeaders(headers, prefix) {
  /** @type {Record<string, string>} */
  const out = {};
  headers.forEach((value, name) => {
    if (name.startsWith(prefix) || name === 'retry-after' || name === 'retry-after-ms') out[name] = value;
  });
  return out;
}

/**
 * The headers an answer keeps of the upstream's, and its content type.
 * @param {Headers} headers @param {string[]} keep
 */
export function kept(headers, keep) {
  /** @type {Record<string, string>} */
  const out = { 'content-type': headers.get('content-type') ?? 'application/json', 'cache-control': 'no-store' };
  for (const name of keep) {
    const v = headers.get(name);
    if (v !== null) out[name] = v;
  }
  return out;
}
