// @ts-check
// POST /anthropic/v1/messages: one realtime call, through the same pieces as a stored batch's
// items: the token's hourly budget (token-limits.js), the ONE limiter of the upstream account
// (the UpstreamLimiter every stored batch on it uses: the call waits there for its turn, up to
// EDGEBATCH_REALTIME_WAIT_MS, instead of being refused), and the library's executor (one
// BatchProcessor `map` with the limiter as its `permits`): its retry rule, backoff and
// Retry-After handling. The answer is the upstream's own: its body (redacted) and status, its
// error on failure with `retry-after` when the client should come back.
//
// The attempt is a task function rather than `run()`, because `run()` reads and parses the
// reply: the task hands back the upstream Response unread, so a `stream: true` reply is passed
// through as it arrives (stream.js), and a failure's exact body can be answered. What the
// reply said (rate-limit headers, usage) is added to the permit's release (observe.js), so the
// limiter learns from every call as it does from a batch's; a stream keeps its permit until it
// ends and releases it with its real usage.
import * as edgebatch from '../../pkg/edgebatch.js';
import { intVar } from '../config.js';
import { readCappedText, HttpError } from '../http.js';
import { checkItem } from '../item-policy.js';
import { acquireOrThrow, tokenLimits } from '../token-limits.js';
import { accountPermits } from '../batches/index.js';
import { anthropicError } from './errors.js';
import { observed } from './observe.js';
import { passThrough } from './stream.js';
import { upstreamOf, versionOf } from './upstream.js';

/** A call the limiter defers asks again after at most this long (while its wait lasts). */
const REASK_MS = 1_000;
/** Upstream headers an answer keeps: who answered, and when to come back. */
const KEPT_HEADERS = ['request-id', 'retry-after', 'x-should-retry'];

/**
 * The realtime settings, from vars (a malformed one is a 500 naming it):
 * - waitMs: how long a call may wait for the limiter in all (EDGEBATCH_REALTIME_WAIT_MS);
 * - deadlineMs: a call's whole time, waits, attempts and retries (EDGEBATCH_REALTIME_DEADLINE_MS);
 * - timeoutMs: one attempt, up to the reply's headers for a stream (EDGEBATCH_REALTIME_TIMEOUT_MS);
 * - maxRetries: retries after the first attempt (EDGEBATCH_REALTIME_MAX_RETRIES).
 * @param {Record<string, any>} env
 */
export function realtimeSettings(env) {
  return {
    waitMs: intVar(env, 'EDGEBATCH_REALTIME_WAIT_MS', 60_000, 0, 600_000),
    deadlineMs: intVar(env, 'EDGEBATCH_REALTIME_DEADLINE_MS', 300_000, 1_000, 900_000),
    timeoutMs: intVar(env, 'EDGEBATCH_REALTIME_TIMEOUT_MS', 120_000, 1_000, 600_000),
    maxRetries: intVar(env, 'EDGEBATCH_REALTIME_MAX_RETRIES', 4, 0, 10),
  };
}

/**
 * @param {Request} request
 * @param {{ env: any, ctx: ExecutionContext, config: ReturnType<typeof import('../config.js').readConfig>,
 *   caller: { name: string }, redact: (s: string) => string, url: URL }} c
 * @returns {Promise<Response>}
 */
export async function createMessage(request, c) {
  const { env, ctx, config, redact } = c;
  const settings = realtimeSettings(env);
  const text = await readCappedText(request, config.maxBodyBytes, config.bodyTimeoutMs).catch((err) => {
    if (err instanceof HttpError && err.status === 413) err.message += ' (EDGEBATCH_MAX_BODY_BYTES)';
    throw err;
  });
  const body = parseBody(text);
  try {
    checkItem(body, 0, 'anthropic', config.items);
  } catch (err) {
    // Its messages name `items[0]`: here the item is the body.
    if (err instanceof HttpError) err.message = err.message.replace(/^items\[0\]\./, '').replace(/^items\[0\]/, 'the body');
    throw err;
  }
  const { provider, missingKey } = upstreamOf(config, c.url.origin, versionOf(request));
  if (missingKey) throw missingKey;
  const streaming = body.stream === true;

  const limits = tokenLimits(env, c.caller.name);
  const lease = await acquireOrThrow(limits, { batches: 0, items: 1, subrequests: settings.maxRetries + 1 });
  /** @type {{ attempts: number, requests: number, inputTokens: number, outputTokens: number }} */
  const used = { attempts: 0, requests: 0, inputTokens: 0, outputTokens: 0 };
  const done = () => limits.release(lease.lease, { subrequests: used.attempts, requests: used.requests, inputTokens: used.inputTokens, outputTokens: used.outputTokens })
    .catch((/** @type {any} */ err) => console.error(`edgebatch worker: releasing a realtime lease failed: ${redact(String(err?.message ?? err))}`));
  let handedOff = false;
  try {
    const call = await run(request, body, streaming, provider, lease.subrequests, settings, c);
    used.attempts = call.attempts;
    if (!call.ok) {
      ctx.waitUntil(call.permits.flush());
      return call.answer;
    }
    const { reply, permits } = call;
    if (streaming && reply instanceof Response) {
      handedOff = true;
      // Settled when the stream ends (or the client goes): the permit, then the hour's usage.
      return passThrough(reply, redact, (usage) => {
        used.requests = 1;
        used.inputTokens = usage.inputTokens;
        used.outputTokens = usage.outputTokens;
        ctx.waitUntil(permits.finish(usage).then(done));
      });
    }
    ctx.waitUntil(permits.flush());
    const usage = /** @type {any} */ (reply).usage;
    used.requests = 1;
    used.inputTokens = usage?.inputTokens ?? 0;
    used.outputTokens = usage?.outputTokens ?? 0;
    return new Response(redact(/** @type {any} */ (reply).text), { status: reply.status, headers: kept(reply.headers, 'application/json') });
  } finally {
    if (!handedOff) ctx.waitUntil(done());
  }
}

/**
 * Runs the call: attempts through the executor with the account limiter as its permits. When
 * the limiter defers (its estimate of the wait passes what the call may still wait), the call
 * asks again later, until its `waitMs` is over; then it is a 429 with retry-after.
 * @param {Request} request @param {Record<string, unknown>} body @param {boolean} streaming
 * @param {{ name: string, baseUrl: string, apiKey?: string, version?: string }} provider
 * @param {number} maxAttempts what the token's hour granted
 * @param {ReturnType<typeof realtimeSettings>} settings
 * @param {{ caller: { name: string }, env: any, redact: (s: string) => string }} c
 */
async function run(request, body, streaming, provider, maxAttempts, settings, c) {
  const start = Date.now();
  const waitEnd = start + settings.waitMs;
  const deadline = start + settings.deadlineMs;
  const endpoint = edgebatch.Limiter.request(provider);
  const payload = JSON.stringify(body);
  const cost = edgebatch.Limiter.estimate('anthropic', body);
  /** @type {{ status: number, headers: Headers, text: string } | null} the last upstream failure */
  let lastFailure = null;
  let attempts = 0;
  for (;;) {
    const permits = observed(await accountPermits(c.env, provider, `realtime:${c.caller.name}`,
      () => Math.max(0, Math.min(waitEnd, deadline) - Date.now())));
    /** @type {(item: unknown, ctx: { signal: AbortSignal }) => Promise<any>} */
    const task = async (_item, { signal }) => {
      const res = await fetch(endpoint.url, { method: 'POST', headers: endpoint.headers, body: payload, signal, redirect: 'manual' });
      const seen = rateHeaders(res.headers);
      if (res.status >= 200 && res.status < 300) {
        if (streaming && (res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
          permits.observe({ headers: seen, stream: true }, signal);
          return res;
        }
        const text = await readBody(res);
        const reply = parseJson(text);
        if (reply === undefined) throw Object.assign(new Error('the reply is not valid JSON'), { retryable: true });
        const usage = edgebatch.Limiter.usage('anthropic', reply);
        permits.observe({ headers: seen, usage }, signal);
        return { status: res.status, headers: res.headers, text, usage };
      }
      const text = await readBody(res);
      if (!signal.aborted) lastFailure = { status: res.status, headers: res.headers, text };
      permits.observe({ headers: seen }, signal);
      const error = parseJson(text);
      // As SDK errors carry them: the executor's retry rule reads status, headers and body.
      throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status, headers: res.headers, error });
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
    if (r.ok) return { ok: /** @type {const} */ (true), reply: r.value, permits, attempts };
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
    return { ok: /** @type {const} */ (false), answer: failed(e, lastFailure, c.redact, settings), permits, attempts };
  }
}

/**
 * What the client gets for a call that failed: the upstream's own last error when the failure
 * was one (status, body, retry-after), else Anthropic's error for what stopped it.
 * @param {any} e the item's error @param {{ status: number, headers: Headers, text: string } | null} last
 * @param {(s: string) => string} redact @param {ReturnType<typeof realtimeSettings>} settings
 */
function failed(e, last, redact, settings) {
  /** @type {Record<string, string>} */
  const retryAfter = e.retryAfterMs ? { 'retry-after': String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))) } : {};
  if (e.kind === 'http' && last && last.status === e.status) {
    if (last.status >= 300 && last.status < 400) {
      return anthropicError(502, 'api_error', 'the upstream answered with a redirect, which is never followed');
    }
    // The upstream refused the Worker's key, not the caller's token: a fault of the Worker.
    if (last.status === 401) {
      return anthropicError(500, 'api_error', 'the upstream refused the Worker\'s ANTHROPIC_API_KEY (401): its operator must set a valid one');
    }
    return new Response(redact(last.text), { status: last.status, headers: { ...kept(last.headers, 'application/json'), ...retryAfter } });
  }
  if (e.kind === 'deferred') {
    return anthropicError(429, 'rate_limit_error', `the upstream account is at its rate limit: no turn came within ${settings.waitMs} ms ` +
      '(EDGEBATCH_REALTIME_WAIT_MS); retry after retry-after', retryAfter);
  }
  if (e.kind === 'invalid') return anthropicError(400, 'invalid_request_error', redact(String(e.message)));
  if (e.kind === 'timeout') {
    return anthropicError(504, 'timeout_error', `the upstream did not answer within ${settings.timeoutMs} ms (EDGEBATCH_REALTIME_TIMEOUT_MS)`);
  }
  return anthropicError(500, 'api_error', `the upstream call failed (${e.kind}): ${redact(String(e.message))}`, retryAfter);
}

/** @param {string} text */
function parseBody(text) {
  const body = parseJson(text);
  if (body === undefined) throw new HttpError(400, 'invalid_request_error', 'body is not valid JSON');
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'invalid_request_error', 'body must be a JSON object (a Messages request)');
  return /** @type {Record<string, unknown>} */ (body);
}

/** @param {string} text @returns {any} undefined when it is not JSON */
function parseJson(text) {
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
 * @param {Headers} headers
 */
function rateHeaders(headers) {
  /** @type {Record<string, string>} */
  const out = {};
  headers.forEach((value, name) => {
    if (name.startsWith('anthropic-ratelimit-') || name === 'retry-after' || name === 'retry-after-ms') out[name] = value;
  });
  return out;
}

/**
 * The headers an answer keeps of the upstream's, and its content type.
 * @param {Headers} headers @param {string} type
 */
function kept(headers, type) {
  /** @type {Record<string, string>} */
  const out = { 'content-type': headers.get('content-type') ?? type, 'cache-control': 'no-store' };
  for (const name of KEPT_HEADERS) {
    const v = headers.get(name);
    if (v !== null) out[name] = v;
  }
  return out;
}
