// @ts-check
// POST /openai/v1/chat/completions: one realtime call, through the same pieces as a stored
// batch's items and as /anthropic/v1/messages: the token's hourly budget (token-limits.js), the
// ONE limiter of the upstream account (the call waits there for its turn, up to
// EDGEBATCH_REALTIME_WAIT_MS, instead of being refused) and the library's executor
// (realtime.js). The answer is the upstream's own: its body (redacted) and status, its error on
// failure with `retry-after` when the client should come back; a stream is passed through
// (stream.js) and holds its permit until it ends. The realtime settings are the Anthropic
// route's (one set of EDGEBATCH_REALTIME_* vars for both).
import { HttpError, readCappedText } from '../http.js';
import { checkItem } from '../item-policy.js';
import { acquireOrThrow, tokenLimits } from '../token-limits.js';
import { realtimeSettings } from '../anthropic/messages.js';
import { invalid, openaiError } from './errors.js';
import { callUpstream, kept, parseJson } from './realtime.js';
import { passThrough } from './stream.js';
import { upstreamOf } from './upstream.js';

/** @type {import('./realtime.js').Wire} */
const WIRE = {
  name: 'openai',
  ratePrefix: 'x-ratelimit-',
  // Who answered, when to come back, how long the upstream worked.
  keep: ['x-request-id', 'retry-after', 'x-should-retry', 'openai-processing-ms'],
  keyVar: 'OPENAI_API_KEY',
  error: (status, message, code, headers) => openaiError(status, message, { code }, headers),
};

/**
 * @param {Request} request
 * @param {{ env: any, ctx: ExecutionContext, config: ReturnType<typeof import('../config.js').readConfig>,
 *   caller: { name: string }, redact: (s: string) => string, url: URL }} c
 * @returns {Promise<Response>}
 */
export async function createChatCompletion(request, c) {
  const { env, ctx, config, redact } = c;
  const settings = realtimeSettings(env);
  const text = await readCappedText(request, config.maxBodyBytes, config.bodyTimeoutMs).catch((err) => {
    if (err instanceof HttpError && err.status === 413) err.message += ' (EDGEBATCH_MAX_BODY_BYTES)';
    throw err;
  });
  const body = parseBody(text);
  try {
    checkItem(body, 0, 'openai', config.items);
  } catch (err) {
    // Its messages name `items[0]`: here the item is the body, and OpenAI names the param.
    if (err instanceof HttpError) {
      const field = /^items\[0\]\.(\w+)/.exec(err.message)?.[1];
      err.message = err.message.replace(/^items\[0\]\./, '').replace(/^items\[0\]/, 'the body');
      if (field) err.details = { ...err.details, param: field };
    }
    throw err;
  }
  const { provider, missingKey } = upstreamOf(config, c.url.origin);
  if (missingKey) throw missingKey;
  const streaming = body.stream === true;

  const limits = tokenLimits(env, c.caller.name);
  const lease = await acquireOrThrow(limits, { batches: 0, items: 1, subrequests: settings.maxRetries + 1 });
  const used = { attempts: 0, requests: 0, inputTokens: 0, outputTokens: 0 };
  const done = () => limits.release(lease.lease, { subrequests: used.attempts, requests: used.requests, inputTokens: used.inputTokens, outputTokens: used.outputTokens })
    .catch((/** @type {any} */ err) => console.error(`edgebatch worker: releasing a realtime lease failed: ${redact(String(err?.message ?? err))}`));
  let handedOff = false;
  try {
    const call = await callUpstream(request, body, streaming, provider, lease.subrequests, settings, c, WIRE);
    used.attempts = call.attempts;
    if (!call.ok) {
      ctx.waitUntil(call.permits.flush());
      return call.answer;
    }
    const { reply, permits } = call;
    if (reply instanceof Response) {
      handedOff = true;
      // Settled when the stream ends (or the client goes): the permit, then the hour's usage.
      return passThrough(reply, redact, WIRE.keep, (usage) => {
        used.requests = 1;
        used.inputTokens = usage.inputTokens;
        used.outputTokens = usage.outputTokens;
        ctx.waitUntil(permits.finish(usage).then(done));
      });
    }
    ctx.waitUntil(permits.flush());
    used.requests = 1;
    used.inputTokens = reply.usage?.inputTokens ?? 0;
    used.outputTokens = reply.usage?.outputTokens ?? 0;
    return new Response(redact(reply.text), { status: reply.status, headers: kept(reply.headers, WIRE.keep) });
  } finally {
    if (!handedOff) ctx.waitUntil(done());
  }
}

/** @param {string} text */
function parseBody(text) {
  const body = parseJson(text);
  if (body === undefined) throw invalid('body is not valid JSON');
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('body must be a JSON object (a Chat Completions request)');
  return /** @type {Record<string, unknown>} */ (body);
}
