// @ts-check
// A realtime call's request body: read within the Worker's caps, a JSON object, and allowed by
// the item rules (item-policy.js, the ones a stored batch's items meet), with their messages
// reworded for a route where the item is the body.
import { HttpError, readCappedText } from '../http.js';
import { checkItem } from '../item-policy.js';

/**
 * @param {Request} request
 * @param {import('./index.js').Config} config
 * @param {{ name: string, body: string }} wire the provider, and what its request body is
 */
export async function readJsonBody(request, config, wire) {
  const text = await readCappedText(request, config.maxBodyBytes, config.bodyTimeoutMs).catch((err) => {
    if (err instanceof HttpError && err.status === 413) err.message += ' (EDGEBATCH_MAX_BODY_BYTES)';
    throw err;
  });
  const body = parseJson(text);
  if (body === undefined) throw new HttpError(400, 'invalid_request_error', 'body is not valid JSON');
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'invalid_request_error', `body must be a JSON object (${wire.body})`);
  }
  try {
    checkItem(body, 0, wire.name, config.items);
  } catch (err) {
    // Its messages name `items[0]`: here the item is the body. The field at fault is kept as
    // `param` (OpenAI's errors name it; Anthropic's have no place for it).
    if (err instanceof HttpError) {
      const field = /^items\[0\]\.(\w+)/.exec(err.message)?.[1];
      err.message = err.message.replace(/^items\[0\]\./, '').replace(/^items\[0\]/, 'the body');
      if (field) err.details = { ...err.details, param: field };
    }
    throw err;
  }
  return /** @type {Record<string, unknown>} */ (body);
}

/** @param {string} text @returns {any} undefined when it is not JSON */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
