// @ts-check
// Errors on the /openai routes, in OpenAI's shape: `{ error: { message, type, param, code } }`
// with its status, so the SDK raises the class it would raise for api.openai.com
// (BadRequestError, AuthenticationError, NotFoundError, RateLimitError, ...). The Worker's own
// errors (HttpError, thrown by the code shared with the native routes) are reworded into that
// shape here, once. An HttpError may carry OpenAI's `param` and `code` in its details.
import { HttpError, jsonResponse } from '../http.js';

/**
 * @param {number} status
 * @param {string} message
 * @param {{ type?: string, param?: string | null, code?: string | null }} [what] type by status when not given
 * @param {Record<string, string>} [headers]
 */
export function openaiError(status, message, what = {}, headers = {}) {
  const type = what.type ?? typeOfStatus(status);
  return jsonResponse(status, { error: { message, type, param: what.param ?? null, code: what.code ?? null } }, headers);
}

/**
 * OpenAI's error type for a status: `invalid_request_error` for a 4xx (401 and 404 too),
 * `requests` for a 429 (a request-rate limit), `server_error` for a 5xx.
 * @param {number} status
 */
export function typeOfStatus(status) {
  if (status === 429) return 'requests';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/**
 * A 400 of these routes naming the parameter at fault.
 * @param {string} message @param {string | null} [param] @param {number} [status]
 */
export function invalid(message, param = null, status = 400) {
  return new HttpError(status, 'invalid_request_error', message, {}, { param });
}

/**
 * Any error of these routes as OpenAI's error response, its message redacted. The Worker's own
 * error types become OpenAI's `code` (`request_too_large`, `method_not_allowed`, ...); a 401 is
 * OpenAI's `invalid_api_key`, a 429 its `rate_limit_exceeded` (with `retry-after`), a 501 (a
 * deployment without the bindings) a 500 like any fault of the Worker.
 * @param {unknown} err
 * @param {(s: string) => string} redact
 */
export function toOpenAIResponse(err, redact) {
  if (err instanceof HttpError) {
    const status = err.status === 501 ? 500 : err.status;
    const details = /** @type {{ param?: string | null, code?: string | null }} */ (err.details);
    const own = err.type === 'invalid_request_error' || err.type === 'authentication_error' || err.type === 'not_found_error' ? null : err.type;
    const code = details.code !== undefined ? details.code
      : status === 401 ? 'invalid_api_key'
        : status === 429 ? 'rate_limit_exceeded'
          : own;
    const retry = err.headers['retry-after'];
    return openaiError(status, redact(err.message), { param: details.param ?? null, code }, retry ? { 'retry-after': retry } : {});
  }
  const e = /** @type {{ name?: unknown, message?: unknown } | null | undefined} */ (err);
  console.error(`edgebatch worker: /openai internal error: ${redact(String(e?.name ?? 'Error'))}: ${redact(String(e?.message ?? err))}`);
  return openaiError(500, 'internal error', { type: 'server_error' });
}
