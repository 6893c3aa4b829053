// @ts-check
// POST /openai/v1/chat/completions: one realtime call, on the path every provider-format route
// shares (../realtime/: the token's hour, the account limiter, the library's executor, the
// upstream's own answer, a stream passed through). This file says how OpenAI's wire differs.
import { realtimeCall } from '../realtime/index.js';
import { openaiError } from './errors.js';
import { upstreamOf } from './upstream.js';

/** @type {import('../realtime/index.js').Wire} */
const WIRE = {
  name: 'openai',
  body: 'a Chat Completions request',
  upstream: (_request, config, origin) => upstreamOf(config, origin),
  ratePrefix: 'x-ratelimit-',
  // Who answered, and how long the upstream worked.
  ids: ['x-request-id', 'openai-processing-ms'],
  keyVar: 'OPENAI_API_KEY',
  error: (status, message, code, headers) => openaiError(status, message, { code }, headers),
  // A last chunk reports it when the request asks `stream_options: { include_usage: true }`.
  streamUsage: (chunk) => ({ input: chunk?.usage?.prompt_tokens, output: chunk?.usage?.completion_tokens }),
};

/**
 * @param {Request} request @param {import('../realtime/index.js').Ctx} c
 * @returns {Promise<Response>}
 */
export function createChatCompletion(request, c) {
  return realtimeCall(request, c, WIRE);
}
