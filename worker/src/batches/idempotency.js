// @ts-check
// Create idempotency for POST /v1/batches: a client that sends `Idempotency-Key` and retries
// (a timeout, a 500, a dropped connection) gets the batch its first try created, never a
// second run of it. The token's BatchDirectory keeps each key with the batch it created and a
// SHA-256 of the body: the same key with another body is a 422 naming both.
import { badRequest, HttpError, jsonResponse } from '../http.js';

/**
 * The request's Idempotency-Key, or undefined; a 400 for one that is not 1 to 255 visible
 * ASCII characters.
 * @param {Request} request
 */
export function idempotencyKey(request) {
  const key = request.headers.get('idempotency-key');
  if (key === null) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) throw badRequest('Idempotency-Key must be 1 to 255 visible ASCII characters');
  return key;
}

/**
 * The request with its body hashed as it is read: `digest()` (after the body was read to its
 * end) answers the SHA-256 of the bytes, in hex.
 * @param {Request} request
 * @returns {{ request: Request, digest: () => Promise<string> }}
 */
export function fingerprinted(request) {
  const hash = new crypto.DigestStream('SHA-256');
  const writer = hash.getWriter();
  const tap = new TransformStream({
    async transform(chunk, controller) {
      await writer.write(chunk);
      controller.enqueue(chunk);
    },
  });
  const body = request.body ? request.body.pipeThrough(tap) : null;
  const copy = new Request(request.url, { method: request.method, headers: request.headers, body, signal: request.signal });
  return {
    request: copy,
    digest: async () => {
      await writer.close();
      return hex(await hash.digest);
    },
  };
}

/**
 * A retry of a create whose key is bound to batch `held.id`: the body must be the one that
 * created it (422 otherwise); the answer is that batch, now (200).
 * @param {Request} request
 * @param {string} key
 * @param {{ id: string, fingerprint: string }} held
 * @param {number} maxBytes
 * @param {(id: string) => Promise<object | null | undefined>} startOrView starts the batch if its
 *   first create died before it did (a no-op otherwise) and answers its view
 */
export async function replay(request, key, held, maxBytes, startOrView) {
  if ((await digestOf(request, maxBytes)) !== held.fingerprint) {
    throw new HttpError(422, 'invalid_request_error', `Idempotency-Key ${JSON.stringify(key)} was used to create batch ${held.id} ` +
      'with another body: a retry must send the same body; use a new key for a new batch');
  }
  const view = await startOrView(held.id);
  if (!view) throw new HttpError(404, 'not_found_error', `no batch ${held.id} (created with Idempotency-Key ${JSON.stringify(key)})`);
  return jsonResponse(200, view, { 'idempotent-replayed': 'true' });
}

/** @param {Request} request @param {number} maxBytes */
async function digestOf(request, maxBytes) {
  const hash = new crypto.DigestStream('SHA-256');
  if (request.body) {
    let size = 0;
    await request.body.pipeThrough(new TransformStream({
      transform(chunk, controller) {
        size += chunk.byteLength;
        if (size > maxBytes) throw new HttpError(413, 'request_too_large', `body is larger than ${maxBytes} bytes (EDGEBATCH_BATCH_MAX_BYTES)`);
        controller.enqueue(chunk);
      },
    })).pipeTo(hash);
  } else {
    await hash.getWriter().close();
  }
  return hex(await hash.digest);
}

/** @param {ArrayBuffer} buf */
function hex(buf) {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
