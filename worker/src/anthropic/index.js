// @ts-check
// The one entry of the /anthropic routes: the Anthropic SDK pointed at `{worker}/anthropic`
// (its baseURL), with the edgebatch token as its apiKey, works unchanged.
//   POST /anthropic/v1/messages                  a realtime call (messages.js)
//   /anthropic/v1/messages/batches[/:id[/...]]   the Message Batches API (batches.js)
// Auth is the SDK's (`x-api-key` or `Authorization: Bearer`, upstream.js); every error is in
// Anthropic's shape (errors.js); the upstream is the Worker's own (its key never leaves it).
import { redactor, secretsOf } from '../auth.js';
import { allow, discardBody, HttpError } from '../http.js';
import { handleMessageBatches, reword } from './batches.js';
import { toAnthropicResponse } from './errors.js';
import { createMessage } from './messages.js';
import { callerOf, upstreamOf, versionOf } from './upstream.js';

export const PREFIX = '/anthropic';

/**
 * @param {Request} request
 * @param {URL} url
 * @param {any} env
 * @param {ExecutionContext} ctx
 * @param {ReturnType<typeof import('../config.js').readConfig>} config
 * @returns {Promise<Response>}
 */
export async function handleAnthropic(request, url, env, ctx, config) {
  let redact = redactor(secretsOf(env));
  try {
    const path = url.pathname.slice(PREFIX.length);
    const isBatches = path === '/v1/messages/batches' || path.startsWith('/v1/messages/batches/');
    if (path !== '/v1/messages' && !isBatches) throw notFound(url.pathname);
    const caller = await callerOf(request, env);
    redact = redactor(secretsOf(env, caller.token));
    if (!isBatches) {
      allow(request, ['POST']);
      return await createMessage(request, { env, ctx, config, caller, redact, url });
    }
    // A create without the Worker's key is a 500 once its body is known to be valid (the engine).
    const { header } = upstreamOf(config, url.origin, versionOf(request));
    const parts = path.slice('/v1/messages/batches'.length).split('/').filter(Boolean);
    return await handleMessageBatches({ request, url, env, config, caller, redact, header }, parts);
  } catch (err) {
    await discardBody(request);
    return toAnthropicResponse(err, redact, reword);
  }
}

/** @param {string} path */
function notFound(path) {
  return new HttpError(404, 'not_found_error', `no route for ${path.length > 100 ? `${path.slice(0, 100)}…` : path}`);
}
