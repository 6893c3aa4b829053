// @ts-check
// Small HTTP helpers: JSON errors and a size- and time-capped body reader. (The bearer check and
// the redactor live in auth.js.)

/**
 * An error that becomes a JSON response `{ error: { type, message, ...details } }` with
 * `status` and the extra response `headers` (say retry-after).
 */
export class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} type
   * @param {string} message
   * @param {Record<string, string>} [headers]
   * @param {Record<string, unknown>} [details]
   */
  constructor(status, type, message, headers = {}, details = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.headers = headers;
    this.details = details;
  }
}

/**
 * Throws a 405 naming the allowed methods unless `request` uses one of `methods`.
 * @param {Request} request
 * @param {string[]} methods
 */
export function allow(request, methods) {
  if (!methods.includes(request.method)) {
    throw new HttpError(405, 'method_not_allowed', `${request.method} is not allowed here; use ${methods.join(' or ')}`);
  }
}

/** @param {string} message */
export const badRequest = (message) => new HttpError(400, 'invalid_request_error', message);

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

/**
 * @param {number} status
 * @param {unknown} payload
 * @param {Record<string, string>} [headers]
 */
export function jsonResponse(status, payload, headers = {}) {
  return new Response(JSON.stringify(payload), { status, headers: { ...JSON_HEADERS, ...headers } });
}

/**
 * @param {unknown} err
 * @param {(s: string) => string} [redact]
 */
export function errorResponse(err, redact = (s) => s) {
  if (err instanceof HttpError) {
    return jsonResponse(err.status, { error: { type: err.type, message: redact(err.message), ...err.details } },
      { ...err.headers, ...(err.status === 401 && { 'www-authenticate': 'Bearer' }) });
  }
  // Not one of ours: say nothing about internals.
  const e = /** @type {{ name?: unknown, message?: unknown } | null | undefined} */ (err);
  console.error(`edgebatch worker: internal error: ${redact(String(e?.name ?? 'Error'))}: ${redact(String(e?.message ?? err))}`);
  return jsonResponse(500, { error: { type: 'api_error', message: 'internal error' } });
}

/** How long an authenticated client has to send its whole body (a var may change it). */
export const BODY_READ_MS = 30_000;
/** How long an early answer (401, 405, 413) waits for the rest of a body before dropping it. */
export const DRAIN_MS = 2_000;
const DRAIN_BYTES = 8 * 1024 * 1024;

/**
 * Reads the body as text, refusing more than `limit` bytes (413) by Content-Length and by
 * counting, since a chunked body has no length up front, and a body that takes longer than
 * `timeoutMs` (408): a client trickling bytes must not hold the invocation. With `between`, the
 * time counts between chunks instead (a large body may take long, but must not stall). An
 * oversize body is still read (and dropped) for a while (DRAIN_MS, DRAIN_BYTES), so the client
 * gets to read the 413 instead of a connection reset; past that the body is cancelled.
 * @param {Request} request
 * @param {number} limit
 * @param {number} [timeoutMs]
 * @param {{ between?: boolean }} [how]
 * @returns {Promise<string>}
 */
export async function readCappedText(request, limit, timeoutMs = BODY_READ_MS, { between = false } = {}) {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await drain(request.body?.getReader(), declared);
    throw tooLarge(limit);
  }
  if (!request.body) return '';
  const reader = request.body.getReader();
  const deadline = Date.now() + timeoutMs;
  /** @type {Uint8Array[]} */
  const chunks = [];
  let size = 0;
  for (;;) {
    const next = await readBefore(reader, between ? Date.now() + timeoutMs : deadline);
    if (next === null) {
      throw new HttpError(408, 'request_timeout', between
        ? `the request body stalled: nothing arrived for ${timeoutMs} ms`
        : `the request body did not arrive within ${timeoutMs} ms`);
    }
    if (next.done) break;
    size += next.value.byteLength;
    if (size > limit) {
      await drain(reader, size);
      throw tooLarge(limit);
    }
    chunks.push(next.value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  chunks.length = 0; // the body is in memory once, not twice, while it is decoded
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(all);
  } catch {
    throw badRequest('body is not valid UTF-8');
  }
}

/**
 * `reader.read()`, or null (and the body cancelled) if nothing comes before `deadline`.
 * @param {ReadableStreamDefaultReader<Uint8Array>} reader
 * @param {number} deadline epoch ms
 * @returns {Promise<ReadableStreamReadResult<Uint8Array> | null>}
 */
export async function readBefore(reader, deadline) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  /** @type {Promise<null>} */
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), Math.max(0, deadline - Date.now()));
  });
  try {
    const next = await Promise.race([reader.read(), late]);
    if (next === null) await reader.cancel().catch(() => {});
    return next;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads and drops what is left of a request body (up to DRAIN_BYTES, for DRAIN_MS) before an
 * early answer (401, 405, ...). Unread, it can make the connection reset under the answer: in
 * front of the static-assets router workerd did so for about one 401 in seven. A body that
 * trickles in slower than that is cancelled: an unauthenticated client must not hold the
 * invocation open.
 */
/** @param {Request} request */
export async function discardBody(request) {
  if (request.body && !request.bodyUsed) await drain(request.body.getReader(), 0).catch(() => {});
}

/**
 * @param {ReadableStreamDefaultReader<Uint8Array> | undefined} reader
 * @param {number} seen bytes already read (or declared)
 */
async function drain(reader, seen) {
  if (!reader) return;
  const deadline = Date.now() + DRAIN_MS;
  let total = 0;
  if (seen <= DRAIN_BYTES) {
    for (;;) {
      const next = await readBefore(reader, deadline);
      if (next === null) return;
      if (next.done) return;
      total += next.value.byteLength;
      if (total > DRAIN_BYTES) break;
    }
  }
  await reader.cancel().catch(() => {});
}

/** @param {number} limit */
function tooLarge(limit) {
  return new HttpError(413, 'request_too_large', `body is larger than ${limit} bytes`);
}
