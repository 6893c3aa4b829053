// @ts-check
// The one entry of the /openai routes: the OpenAI SDK pointed at `{worker}/openai/v1` (its
// baseURL), with the edgebatch token as its apiKey, works unchanged.
//   POST /openai/v1/chat/completions          a realtime call (chat.js)
//   /openai/v1/files[/:id[/content]]          the Files API, on R2 (files.js)
//   /openai/v1/batches[/:id[/cancel]]         the Batch API, on the stored-batch engine (batches.js)
// Auth is the SDK's (`Authorization: Bearer`, upstream.js); every error is in OpenAI's shape
// (errors.js); the upstream is the Worker's own (its key never leaves it).
import { redactor, secretsOf } from '../auth.js';
import { allow, discardBody, HttpError } from '../http.js';
import { handleOpenAIBatches } from './batches.js';
import { createChatCompletion } from './chat.js';
import { toOpenAIResponse } from './errors.js';
import { handleFiles } from './files.js';
import { callerOf, upstreamOf } from './upstream.js';

export const PREFIX = '/openai/v1';

/**
 * @param {Request} request
 * @param {URL} url
 * @param {any} env
 * @param {ExecutionContext} ctx
 * @param {ReturnType<typeof import('../config.js').readConfig>} config
 * @returns {Promise<Response>}
 */
export async function handleOpenAI(request, url, env, ctx, config) {
  let redact = redactor(secretsOf(env));
  try {
    const path = url.pathname.startsWith(`${PREFIX}/`) ? url.pathname.slice(PREFIX.length) : '';
    const [resource, ...parts] = path.split('/').filter(Boolean);
    const known = path === '/chat/completions' || ((resource === 'files' || resource === 'batches') && !path.endsWith('/'));
    if (!known) throw notFound(url.pathname);
    const caller = await callerOf(request, env);
    redact = redactor(secretsOf(env, caller.token));
    if (path === '/chat/completions') {
      allow(request, ['POST']);
      return await createChatCompletion(request, { env, ctx, config, caller, redact, url });
    }
    if (resource === 'files') return await handleFiles({ request, url, env, config, caller }, parts);
    // A create without the Worker's key is a 500 once its input is known to be valid (the engine).
    const { header } = upstreamOf(config, url.origin);
    return await handleOpenAIBatches({ request, url, env, ctx, config, caller, redact, header }, parts);
  } catch (err) {
    await discardBody(request);
    return toOpenAIResponse(err, redact);
  }
}

/** @param {string} path */
function notFound(path) {
  return new HttpError(404, 'invalid_request_error', `Invalid URL: no route for ${path.length > 100 ? `${path.slice(0, 100)}…` : path}`, {}, { code: 'unknown_url' });
}
