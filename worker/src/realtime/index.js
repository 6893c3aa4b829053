// @ts-check
// One realtime call of a provider-format route (POST /anthropic/v1/messages, POST
// /openai/v1/chat/completions), through the same pieces as a stored batch's items: the token's
// hourly budget (token-limits.js), the ONE limiter of the upstream account (the UpstreamLimiter
// every stored batch on it uses: the call waits there for its turn, up to
// EDGEBATCH_REALTIME_WAIT_MS, instead of being refused), and the library's executor (call.js).
// The answer is the upstream's own: its body (redacted) and status, its error on failure with
// `retry-after` when the client should come back (answer.js); a stream is passed through
// (stream.js) and keeps its permit until it ends.
//
// Both routes run this one path; a `Wire` says what differs between the providers, so a rule
// of the call (the retry loop, the failure answer, the hour's accounting) exists once.
import { intVar } from '../config.js';
import { acquireOrThrow, replyPico, requestBound, tokenLimits } from '../token-limits.js';
import { readJsonBody } from './body.js';
import { callUpstream } from './call.js';
import { kept } from './answer.js';
import { passThrough } from './stream.js';

/**
 * What differs between providers:
 * - name: the library's provider name, and the item rules' (`anthropic`, `openai`);
 * - body: what a request body is, for the error when it is not an object;
 * - upstream: the Worker's upstream for this request (the provider, or the 500 of a missing key);
 * - ratePrefix: the reply's rate-limit headers, for the limiter;
 * - ids: the upstream headers that say who answered, kept on every answer (a stream's too);
 * - keyVar: the var of the Worker's key, named when the upstream refuses it;
 * - error: the provider's error response (`code` where its errors carry one);
 * - streamUsage: the usage one server-sent event reports, in tokens (absent: not reported).
 * @typedef {{ name: string, body: string, ratePrefix: string, ids: string[], keyVar: string,
 *   upstream: (request: Request, config: Config, origin: string) => { provider: Provider, missingKey?: unknown },
 *   error: (status: number, message: string, code: string | null, headers?: Record<string, string>) => Response,
 *   streamUsage: (event: any) => { input?: unknown, output?: unknown } }} Wire
 * @typedef {{ name: string, baseUrl: string, apiKey?: string, version?: string }} Provider
 * @typedef {ReturnType<typeof import('../config.js').readConfig>} Config
 * @typedef {{ env: any, ctx: ExecutionContext, config: Config, caller: { name: string },
 *   redact: (s: string) => string, url: URL }} Ctx
 */

/**
 * The realtime settings, from vars (a malformed one is a 500 naming it), one set for every route:
 * - waitMs: how long a call may wait for the limiter in all (EDGEBATCH_REALTIME_WAIT_MS; at
 *   most 25 s: a client that leaves mid-wait has its late grant handed back by a flush in
 *   waitUntil, which lives about 30 s after the answer);
 * - deadlineMs: a call's whole time, waits, attempts and retries (EDGEBATCH_REALTIME_DEADLINE_MS);
 * - timeoutMs: one attempt, up to the reply's headers for a stream, then the longest a stream
 *   may go without a chunk (EDGEBATCH_REALTIME_TIMEOUT_MS);
 * - maxRetries: retries after the first attempt (EDGEBATCH_REALTIME_MAX_RETRIES).
 * @param {Record<string, any>} env
 */
export function realtimeSettings(env) {
  return {
    waitMs: intVar(env, 'EDGEBATCH_REALTIME_WAIT_MS', 20_000, 0, 25_000),
    deadlineMs: intVar(env, 'EDGEBATCH_REALTIME_DEADLINE_MS', 300_000, 1_000, 900_000),
    timeoutMs: intVar(env, 'EDGEBATCH_REALTIME_TIMEOUT_MS', 120_000, 1_000, 600_000),
    maxRetries: intVar(env, 'EDGEBATCH_REALTIME_MAX_RETRIES', 4, 0, 10),
  };
}

/**
 * @param {Request} request @param {Ctx} c @param {Wire} wire
 * @returns {Promise<Response>}
 */
export async function realtimeCall(request, c, wire) {
  const { env, ctx, config, redact } = c;
  const settings = realtimeSettings(env);
  const body = await readJsonBody(request, config, wire);
  const { provider, missingKey } = wire.upstream(request, config, c.url.origin);
  if (missingKey) throw missingKey;
  const streaming = body.stream === true;

  const limits = tokenLimits(env, c.caller.name);
  // With EDGEBATCH_USD_PER_HOUR the most the call can cost is held, then replaced by its price.
  const bound = requestBound(config.limits, body) ?? 0;
  const lease = await acquireOrThrow(limits, { batches: 0, items: 1, subrequests: settings.maxRetries + 1, usdPico: bound });
  // `attempts` is counted by callUpstream as each one starts: charged however the call ends
  // (and the dollars at the hold, unless the price of its reply or a refusal says less).
  const used = { attempts: 0, requests: 0, inputTokens: 0, outputTokens: 0, usdPico: bound };
  const done = () => limits.release(lease.lease, { subrequests: used.attempts, requests: used.requests, inputTokens: used.inputTokens,
    outputTokens: used.outputTokens, usdPico: used.attempts === 0 ? 0 : used.usdPico })
    .catch((/** @type {any} */ err) => console.error(`edgebatch worker: releasing a realtime lease failed: ${redact(String(err?.message ?? err))}`));
  let handedOff = false;
  try {
    const call = await callUpstream(request, body, streaming, provider, lease.subrequests, settings, c, wire, used);
    if (!call.ok) {
      // The upstream's own error answer (or the limiter's refusal) is not billed.
      if (call.kind === 'http' || call.kind === 'deferred') used.usdPico = 0;
      // In waitUntil, so it outlives the answer: a client that left while the call waited for
      // the limiter leaves an acquire in flight, whose late grant flush() waits for and gives back.
      ctx.waitUntil(call.permits.flush());
      return call.answer;
    }
    const { reply, permits } = call;
    if (reply instanceof Response) {
      handedOff = true;
      // Settled when the stream ends (or the client goes): the permit, then the hour's usage.
      return passThrough(reply, redact, wire, settings.timeoutMs, (usage, failure) => {
        used.requests = 1;
        used.inputTokens = usage.inputTokens;
        used.outputTokens = usage.outputTokens;
        // Its events do not report every cache token: with a dollar limit it keeps its hold.
        if (bound === 0) used.usdPico = replyPico({ model: body.model, usage: { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens } }, 0);
        ctx.waitUntil(permits.finish(usage, failure).then(done));
      });
    }
    ctx.waitUntil(permits.flush());
    used.requests = 1;
    used.inputTokens = reply.usage?.inputTokens ?? 0;
    used.outputTokens = reply.usage?.outputTokens ?? 0;
    used.usdPico = replyPico(parsed(reply.text), bound);
    return new Response(redact(reply.text), { status: reply.status, headers: kept(reply.headers, wire) });
  } finally {
    if (!handedOff) ctx.waitUntil(done());
  }
}

/** @param {string} text @returns {unknown} */
function parsed(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
