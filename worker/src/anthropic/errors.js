// @ts-check
// Errors on the /anthropic routes, in Anthropic's shape: `{ type: "error", error: { type,
// message } }` with its status, so the SDK raises the error class it would raise for
// api.anthropic.com (BadRequestError, AuthenticationError, NotFoundError, RateLimitError, ...).
// The Worker's own errors (HttpError, thrown by the code shared with the native routes) are
// reworded into that shape here, once.
import { HttpError, jsonResponse } from '../http.js';

/** Anthropic's error types, by the status it sends them with. */
export const TYPE_OF_STATUS = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};
const TYPES = new Set(Object.values(TYPE_OF_STATUS));

/**
 * An error type Anthropic sends: `type` if it is one, else the one of `status` (a 4xx without
 * one of its own is an `invalid_request_error`, a 5xx an `api_error`).
 * @param {string | undefined} type @param {number | undefined} status
 */
export function anthropicType(type, status) {
  if (type && TYPES.has(type)) return type;
  const byStatus = status === undefined ? undefined : /** @type {Record<number, string>} */ (TYPE_OF_STATUS)[status];
  if (byStatus) return byStatus;
  return status !== undefined && status >= 400 && status < 500 ? 'invalid_request_error' : 'api_error';
}

/**
 * @param {number} status @param {string} type @param {string} message
 * @param {Record<string, string>} [headers]
 */
export function anthropicError(status, type, message, headers = {}) {
  return jsonResponse(status, { type: 'error', error: { type, message } }, headers);
}

/**
 * Any error of these routes as Anthropic's error response, its message redacted. The Worker's
 * own types (`configuration_error`, `method_not_allowed`, `request_timeout`) become
 * Anthropic's (`api_error`, `invalid_request_error`); the status stays, except a 501 (a
 * deployment without the Durable Objects) which is a 500 like any fault of the Worker.
 * @param {unknown} err
 * @param {(s: string) => string} redact
 * @param {(message: string) => string} [reword] how ids read on this route
 */
export function toAnthropicResponse(err, redact, reword = (m) => m) {
  if (err instanceof HttpError) {
    const status = err.status === 501 ? 500 : err.status;
    const retry = err.headers['retry-after'];
    return anthropicError(status, anthropicType(err.type, status), redact(reword(err.message)), retry ? { 'retry-after': retry } : {});
  }
  const e = /** @type {{ name?: unknown, message?: unknown } | null | undefined} */ (err);
  console.error(`edgebatch worker: /anthropic internal error: ${redact(String(e?.name ?? 'Error'))}: ${redact(String(e?.message ?? err))}`);
  return anthropicError(500, 'api_error', 'internal error');
}
