// @ts-check
// The attempts of one realtime call: through the library's executor (one BatchProcessor `map`:
// its retry rule, backoff and Retry-After handling) with the account limiter as its permits.
//
// The attempt is a task function rather than `run()`, because `run()` reads and parses the
// reply: the task hands back the upstream Response unread, so a `stream: true` reply is passed
// through as it arrives (stream.js), and a failure's exact body can be answered (answer.js).
// What the reply said (rate-limit headers, usage) is added to the permit's release
// (observe.js), so the limiter learns from every call as it does from a batch's.
import * as edgebatch from '../../pkg/edgebatch.js';
import { accountPermits } from '../batches/index.js';
import { parseJson } from './body.js';
import { failed } from './answer.js';
import { observed } from './observe.js';

/** A call the limiter defers asks again after at most this long (while its wait lasts). */
const REASK_MS = 1_000;

/**
 * @typedef {import('./answer.js').Failure} Failure
 * @typedef {{ status: number, headers: Headers, text: string, usage?: { inputTokens: number, outputTokens: number } }} Reply
 * @typedef {ReturnType<typeof observed>} Permits
 */

/**
 * Runs the call. When the limiter defers (its estimate of the wait passes what the call may
 * still wait), the call asks again later, until its `waitMs` is over; then it is a 429 with
 * retry-after.
 * @param {Request} request @param {Record<string, unknown>} body @param {boolean} streaming
 * @param {import('./index.js').Provider} provider
 * @param {number} maxAttempts what the token's hour granted
 * @param {ReturnType<typeof import('./index.js').realtimeSettings>} settings
 * @param {{ env: any, caller: { name: string }, redact: (s: string) => string }} c
 * @param {import('./index.js').Wire} wire
 * @param {{ attempts: number }} tally counts each attempt as it starts (an upstream request made),
 *   so the caller charges them however the call ends, a throw included
 * @returns {Promise<{ ok: true, reply: Reply | Response, permits: Permits }
 *   | { ok: false, answer: Response, permits: Permits, kind: string }>} kind: the last error's
 */
export async function callUpstream(request, body, streaming, provider, maxAttempts, settings, c, wire, tally) {
  const start = Date.now();
  const waitEnd = start + settings.waitMs;
  const deadline = start + settings.deadlineMs;
  const endpoint = edgebatch.Limiter.request(provider);
  const payload = JSON.stringify(body);
  const cost = edgebatch.Limiter.estimate(wire.name, body);
  /** @type {Failure | null} the last upstream failure */
  let lastFailure = null;
  let attempts = 0;
  for (;;) {
    const permits = observed(await accountPermits(c.env, provider, `realtime:${c.caller.name}`,
      () => Math.max(0, Math.min(waitEnd, deadline) - Date.now())));
    /** @type {(item: unknown, ctx: { signal: AbortSignal }) => Promise<any>} */
    const task = async (_item, { signal }) => {
      tally.attempts++;
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
    } catch (err) {
      // What was granted goes back before the error is answered (no waitUntil carries it).
      await permits.flush();
      throw err;
    } finally {
      bp.free();
    }
    attempts += r.attempts;
    if (r.ok) return { ok: true, reply: r.value, permits };
    const e = r.error;
    const waitOver = Math.min(waitEnd, deadline);
    if (e.kind === 'deferred' && attempts < maxAttempts && Date.now() < waitOver) {
      // The limiter's time is an estimate from how fast its queue moved (a long queue behind a
      // 429 pause can look minutes long): the call asks again by then, or within REASK_MS,
      // until its wait is over.
      await permits.flush();
      const at = Math.min(Date.now() + (e.retryAfterMs ?? 0), Date.now() + REASK_MS, waitOver);
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, at - Date.now())));
      continue;
    }
    return { ok: false, answer: failed(e, lastFailure, c.redact, settings, wire), permits, kind: e.kind };
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
 * @param {Headers} headers @param {string} prefix the provider's rate-limit headers
 */
function rateHeaders(headers, prefix) {
  /** @type {Record<string, string>} */
  const out = {};
  headers.forEach((value, name) => {
    if (name.startsWith(prefix) || name === 'retry-after' || name === 'retry-after-ms') out[name] = value;
  });
  return out;
}
