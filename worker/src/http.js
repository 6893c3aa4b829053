// Small HTTP helpers: JSON errors, a size-capped body reader, the bearer-token check, and a
// redactor that keeps secrets out of everything the Worker sends or logs.

/** An error that becomes a JSON response `{ error: { type, message } }` with `status`. */
export class HttpError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/** Throws a 405 naming the allowed methods unless `request` uses one of `methods`. */
export function allow(request, methods) {
  if (!methods.includes(request.method)) {
    throw new HttpError(405, 'method_not_allowed', `${request.method} is not allowed here; use ${methods.join(' or ')}`);
  }
}

export const badRequest = (message) => new HttpError(400, 'invalid_request_error', message);

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

export function jsonResponse(status, payload, headers = {}) {
  return new Response(JSON.stringify(payload), { status, headers: { ...JSON_HEADERS, ...headers } });
}

export function errorResponse(err, redact = (s) => s) {
  if (err instanceof HttpError) {
    return jsonResponse(err.status, { error: { type: err.type, message: redact(err.message) } },
      err.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
  }
  // Not one of ours: say nothing about internals.
  console.error(`edgebatch worker: internal error: ${redact(String(err?.name ?? 'Error'))}: ${redact(String(err?.message ?? err))}`);
  return jsonResponse(500, { error: { type: 'api_error', message: 'internal error' } });
}

/**
 * Reads the body as text, refusing more than `limit` bytes (413) by Content-Length and by
 * counting, since a chunked body has no length up front. An oversize body is still read (and
 * dropped) up to `DRAIN_BYTES`, so the client gets to read the 413 instead of a connection
 * reset; past that the body is cancelled.
 */
export async function readCappedText(request, limit) {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await drain(request.body?.getReader(), declared);
    throw tooLarge(limit);
  }
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await drain(reader, size);
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(all);
  } catch {
    throw badRequest('body is not valid UTF-8');
  }
}

const DRAIN_BYTES = 8 * 1024 * 1024;

/**
 * Reads and drops what is left of a request body (up to DRAIN_BYTES) before an early answer
 * (401, 405, ...). Unread, it can make the connection reset under the answer: in front of the
 * static-assets router workerd did so for about one 401 in seven.
 */
export async function discardBody(request) {
  if (request.body && !request.bodyUsed) await drain(request.body.getReader(), 0).catch(() => {});
}

async function drain(reader, seen) {
  if (!reader) return;
  let total = 0;
  if (seen <= DRAIN_BYTES) {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      total += value.byteLength;
      if (total > DRAIN_BYTES) break;
    }
  }
  await reader.cancel().catch(() => {});
}

function tooLarge(limit) {
  return new HttpError(413, 'request_too_large', `body is larger than ${limit} bytes`);
}

/**
 * Checks `Authorization: Bearer <token>` in constant time: both sides are hashed first so
 * neither the comparison nor an early length mismatch says how much of a guess was right.
 */
export async function checkBearer(request, expected) {
  if (!expected) {
    throw new HttpError(500, 'configuration_error', 'EDGEBATCH_TOKEN is not set on the Worker');
  }
  const header = request.headers.get('authorization') ?? '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match || !(await equalSecret(match[1], expected))) {
    throw new HttpError(401, 'authentication_error', 'missing or wrong bearer token');
  }
}

async function equalSecret(a, b) {
  const enc = new TextEncoder();
  const [ha, hb] = await Promise.all([
    crypto.subtle.digest('SHA-256', enc.encode(a)),
    crypto.subtle.digest('SHA-256', enc.encode(b)),
  ]);
  if (typeof crypto.subtle.timingSafeEqual === 'function') return crypto.subtle.timingSafeEqual(ha, hb);
  const x = new Uint8Array(ha);
  const y = new Uint8Array(hb);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** Replaces every occurrence of the given secrets (ignoring short or empty ones) in a string. */
export function redactor(secrets) {
  const list = [...new Set(secrets.filter((s) => typeof s === 'string' && s.length >= 6))];
  if (list.length === 0) return (s) => s;
  return (s) => {
    let out = s;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    return out;
  };
}
