// @ts-check
// POST /anthropic/v1/messages: one realtime call, on the path every provider-format route
// shares (../realtime/: the token's hour, the account limiter, the library's executor, the
// upstream's own answer, a stream passed through). This file says how Anthropic's wire differs.
import { realtimeCall } from '../realtime/index.js';
import { anthropicError, anthropicType } from './errors.js';
import { upstreamOf, versionOf } from './upstream.js';

/** @type {import('../realtime/index.js').Wire} */
const WIRE = {
  name: 'anthropic',
  body: 'a Messages request',
  upstream: (request, config, origin) => upstreamOf(config, origin, versionOf(request)),
  ratePrefix: 'anthropic-ratelimit-',
  ids: ['request-id'],
  keyVar: 'ANTHROPIC_API_KEY',
  // Anthropic's errors have a type (by status here) and no code.
  error: (status, message, _code, headers) => anthropicError(status, anthropicType(undefined, status), message, headers),
  // `message_start` reports the input tokens, `message_delta` the output tokens so far.
  streamUsage: (event) => {
    const u = event?.type === 'message_start' ? event.message?.usage : event?.type === 'message_delta' ? event.usage : undefined;
    return { input: u?.input_tokens, output: u?.output_tokens };
  },
};

/**
 * @param {Request} request @param {import('../realtime/index.js').Ctx} c
 * @returns {Promise<Response>}
 */
export function createMessage(request, c) {
  return realtimeCall(request, c, WIRE);
}
