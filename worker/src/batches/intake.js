// @ts-check
// Reads the body of POST /v1/batches into a new ledger: `application/json`
// `{ provider?, options?, requests: [{ custom_id, params }] }` (at most
// EDGEBATCH_BATCH_MAX_JSON_BYTES: it is parsed whole), or `application/x-ndjson` with one
// `{ custom_id, params }` per line (a first line without `custom_id` may carry
// `{ provider?, options? }`), streamed in and appended in chunks, never held whole: a line is
// size-checked as its bytes arrive, and a body that stalls longer than EDGEBATCH_BODY_TIMEOUT_MS
// between chunks is a 408. Every refusal is a 400 naming the request and field, or a 413 naming
// the limit. With `options.maxCostUsd`, a request whose model has no price is one of them
// (needsPrice).
import * as edgebatch from '../../pkg/edgebatch.js';
import { badRequest, HttpError, readBefore, readCappedText } from '../http.js';
import { checkItem } from '../item-policy.js';
import { parseJsonObject } from '../validate.js';

/**
 * @typedef {object} IntakeLimits
 * @property {number} maxRequests EDGEBATCH_BATCH_MAX_REQUESTS
 * @property {number} maxBytes EDGEBATCH_BATCH_MAX_BYTES: the whole body
 * @property {number} maxJsonBytes EDGEBATCH_BATCH_MAX_JSON_BYTES: a JSON body (parsed whole)
 * @property {number} maxRequestBytes EDGEBATCH_BATCH_MAX_REQUEST_BYTES: one request's params
 * @property {number} bodyTimeoutMs EDGEBATCH_BODY_TIMEOUT_MS: the longest a body may stall
 * @property {{ max: number, refuse: (requests: number, exact: boolean) => HttpError }} [budget]
 *   what the token can send before the batch expires (token-limits.js ttlBudget)
 * @typedef {{ provider: string, rules: object }} Policy
 * @typedef {{ custom_id: string, params: string }} Row params: the request body as JSON text
 * @typedef {{ header: { provider?: unknown, options?: unknown }, fields: Set<string>, shape: string }} Fixed
 */

const TOP_LEVEL = new Set(['provider', 'options', 'requests']);
const HEADER_FIELDS = new Set(['provider', 'options']);
const REQUEST_FIELDS = new Set(['custom_id', 'params']);
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;
/** Rows per append call, and bytes: a Durable Object call's payload stays small. */
const CHUNK_ROWS = 500;
const CHUNK_BYTES = 4 * 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * The longest NDJSON line: twice a request's params limit (room for spaces and \u escapes,
 * which its re-serialized params do not keep) and 1 KiB for custom_id and the braces.
 * @param {IntakeLimits} limits
 */
export const maxLineBytes = (limits) => 2 * limits.maxRequestBytes + 1024;

/**
 * @param {Request} request
 * @param {IntakeLimits} limits
 * @param {(header: { provider?: unknown, options?: unknown }) => Promise<Policy>} begin called
 *   once with `{ provider, options }` before the first row (validates them, creates the ledger);
 *   returns the provider's name and the item rules (item-policy.js) every `params` must meet
 * @param {(rows: Row[]) => Promise<unknown>} append
 * @param {Fixed} [fixed] a provider-format route's create (../anthropic/): JSON only, with no
 *   top-level fields but `fixed.fields`, and the header `fixed.header` instead of the body's
 * @returns {Promise<number>} the number of requests
 */
export async function readBatch(request, limits, begin, append, fixed) {
  const type = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  const sink = new RowSink(limits, append);
  if (!fixed && (type === 'application/x-ndjson' || type === 'application/jsonl')) {
    let began = false;
    for await (const { line, text } of lines(request, limits)) {
      if (text.trim() === '') continue;
      const value = parseLine(text, line);
      if (!began) {
        if (value === null || typeof value !== 'object' || Array.isArray(value)) {
          throw badRequest(`line ${line} must be a JSON object: a header { provider?, options? } or a request { custom_id, params }, ` +
            `not ${kindOf(value)}`);
        }
        began = true;
        if (!Object.hasOwn(value, 'custom_id')) {
          for (const key of Object.keys(value)) {
            if (!HEADER_FIELDS.has(key)) throw badRequest(`line ${line}: unknown field ${JSON.stringify(key)} (a first line without custom_id may hold provider, options)`);
          }
          sink.policy = await begin(value);
          sink.capped = capped(value);
          continue;
        }
        sink.policy = await begin({});
      }
      await sink.add(value, `line ${line}`, text.length);
    }
    if (!began) await begin({});
  } else {
    const body = parseJsonObject(await readJson(request, limits), fixed?.fields ?? TOP_LEVEL, fixed?.shape ?? '{ provider?, options?, requests }');
    if (!Array.isArray(body.requests)) throw badRequest('requests must be an array of { custom_id, params }');
    const n = body.requests.length;
    if (n > limits.maxRequests) throw tooManyRequests(limits);
    if (limits.budget && n > limits.budget.max) throw limits.budget.refuse(n, true);
    const header = fixed ? fixed.header : { provider: body.provider, options: body.options };
    sink.policy = await begin(header);
    sink.capped = capped(header);
    for (let i = 0; i < n; i++) {
      await sink.add(body.requests[i], `requests[${i}]`, JSON.stringify(body.requests[i] ?? null).length);
    }
  }
  await sink.flush();
  if (sink.count === 0) throw badRequest('the batch has no requests');
  return sink.count;
}

/**
 * Whether a header (validated by `begin`) sets options.maxCostUsd.
 * @param {{ options?: unknown }} header
 */
function capped(header) {
  const o = header.options;
  return o !== null && typeof o === 'object' && /** @type {Record<string, unknown>} */ (o).maxCostUsd !== undefined;
}

/**
 * A cap cannot bound what it cannot price: under options.maxCostUsd a request whose model has
 * no price in the library's table (the Worker's wasm costBound) is a 400 at create, as the
 * library's `run()` with maxCostUsd fails such a request before its first attempt (instead of
 * its ending in a consumer, or past a provider batch, hours later).
 * @param {unknown} model @param {string} where
 */
function needsPrice(model, where) {
  // The Worker's build only (cargo feature `limiter`), as provider-batch.js replyCost.
  const bound = typeof model === 'string' ? /** @type {any} */ (edgebatch).costBound(model, 0, 0) : undefined;
  if (bound) return;
  const shown = typeof model === 'string' ? JSON.stringify(model.slice(0, 100)) : '(none)';
  throw badRequest(`${where}.params.model: options.maxCostUsd needs a price for the model ${shown}, and the price table has none ` +
    '(a batch with a dollar cap runs priced models only)');
}

class RowSink {
  /**
   * @param {IntakeLimits} limits
   * @param {(rows: Row[]) => Promise<unknown>} append
   */
  constructor(limits, append) {
    this.limits = limits;
    this.append = append;
    /** @type {Row[]} */
    this.rows = [];
    this.bytes = 0;
    this.count = 0;
    /** @type {Set<string>} */
    this.ids = new Set();
    /** @type {Policy} */
    this.policy = { provider: '', rules: {} };
    /** The header set options.maxCostUsd: every request's model needs a price. */
    this.capped = false;
  }

  /**
   * @param {unknown} value one request, as parsed
   * @param {string} where how errors name it (`line 3`, `requests[2]`)
   * @param {number} size about its size in bytes (for the append chunks)
   */
  async add(value, where, size) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw badRequest(`${where} must be an object { custom_id, params }`);
    const v = /** @type {Record<string, unknown>} */ (value);
    for (const key of Object.keys(v)) {
      if (!REQUEST_FIELDS.has(key)) throw badRequest(`${where} has unknown field ${JSON.stringify(key)} (expected custom_id, params)`);
    }
    const id = v.custom_id;
    if (typeof id !== 'string' || !CUSTOM_ID.test(id)) {
      throw badRequest(`${where}.custom_id must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -`);
    }
    // Duplicates within the batch: named here (the ledger checks again across chunks).
    if (this.ids.has(id)) throw badRequest(`${where}: duplicate custom_id ${JSON.stringify(id)}`);
    this.ids.add(id);
    const p = v.params;
    if (p === null || typeof p !== 'object' || Array.isArray(p)) throw badRequest(`${where}.params must be an object (a request body)`);
    try {
      checkItem(p, this.count, this.policy.provider, this.policy.rules);
    } catch (err) {
      // Its messages say `items[i]`: here the item is `params`.
      if (err instanceof HttpError) err.message = err.message.replace(/^items\[\d+\]/, `${where}.params`);
      throw err;
    }
    if (this.capped) needsPrice(/** @type {Record<string, unknown>} */ (p).model, where);
    const params = JSON.stringify(p);
    if (params.length > this.limits.maxRequestBytes) {
      throw new HttpError(413, 'request_too_large', `${where}.params is larger than ${this.limits.maxRequestBytes} bytes (EDGEBATCH_BATCH_MAX_REQUEST_BYTES)`);
    }
    this.count++;
    if (this.count > this.limits.maxRequests) throw tooManyRequests(this.limits);
    if (this.limits.budget && this.count > this.limits.budget.max) throw this.limits.budget.refuse(this.count, false);
    this.rows.push({ custom_id: id, params });
    this.bytes += size;
    if (this.rows.length >= CHUNK_ROWS || this.bytes >= CHUNK_BYTES) await this.flush();
  }

  async flush() {
    if (this.rows.length === 0) return;
    const rows = this.rows;
    this.rows = [];
    this.bytes = 0;
    await this.append(rows);
  }
}

/**
 * A JSON body, whole: capped far below an NDJSON one (the text, its parse and its rows are all
 * in the isolate's 128 MB at once); a 413 says to send NDJSON instead.
 * @param {Request} request
 * @param {IntakeLimits} limits
 * @returns {Promise<string>}
 */
async function readJson(request, limits) {
  const json = limits.maxJsonBytes < limits.maxBytes;
  const cap = json ? limits.maxJsonBytes : limits.maxBytes;
  try {
    return await readCappedText(request, cap, limits.bodyTimeoutMs, { between: true });
  } catch (err) {
    if (err instanceof HttpError && err.status === 413) {
      err.message = json
        ? `a JSON body is larger than ${cap} bytes (EDGEBATCH_BATCH_MAX_JSON_BYTES): send a batch this large as NDJSON ` +
          `(content-type: application/x-ndjson, one { custom_id, params } per line, a first line { provider, options }), ` +
          `up to ${limits.maxBytes} bytes (EDGEBATCH_BATCH_MAX_BYTES)`
        : `body is larger than ${cap} bytes (EDGEBATCH_BATCH_MAX_BYTES)`;
    } else if (err instanceof HttpError && err.status === 408) {
      err.message = `the request body stalled: nothing arrived for ${limits.bodyTimeoutMs} ms (EDGEBATCH_BODY_TIMEOUT_MS)`;
    }
    throw err;
  }
}

/**
 * @param {string} text
 * @param {number} line
 * @returns {unknown}
 */
function parseLine(text, line) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`line ${line} is not valid JSON (${/** @type {Error} */ (e).message})`);
  }
}

/** @param {unknown} value */
function kindOf(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/**
 * The body's lines as their bytes arrive, numbered from 1 (blank ones too): each line's bytes
 * are kept as the chunks that hold them and decoded once, when its newline comes. 413 past
 * EDGEBATCH_BATCH_MAX_BYTES (by Content-Length up front, else by counting) or as soon as the
 * line being read passes maxLineBytes; 400 for a line that is not UTF-8; 408 when nothing
 * arrives for EDGEBATCH_BODY_TIMEOUT_MS (the time spent appending rows does not count).
 * @param {Request} request
 * @param {IntakeLimits} limits
 * @returns {AsyncGenerator<{ line: number, text: string }>}
 */
async function* lines(request, limits) {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > limits.maxBytes) throw bodyTooLarge(limits.maxBytes);
  if (!request.body) return;
  const reader = request.body.getReader();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const maxLine = maxLineBytes(limits);
  /** @param {Uint8Array} bytes @param {number} line */
  const decode = (bytes, line) => {
    try {
      return decoder.decode(bytes);
    } catch {
      throw badRequest(`line ${line} is not valid UTF-8`);
    }
  };
  let size = 0;
  let line = 0;
  /** @type {Uint8Array[]} the bytes of the line being read, so far */
  let pending = [];
  let pendingBytes = 0;
  try {
    for (;;) {
      const next = await readBefore(reader, Date.now() + limits.bodyTimeoutMs);
      if (next === null) {
        throw new HttpError(408, 'request_timeout', `the request body stalled: nothing arrived for ${limits.bodyTimeoutMs} ms ` +
          '(EDGEBATCH_BODY_TIMEOUT_MS)');
      }
      if (next.done) break;
      const chunk = next.value;
      size += chunk.byteLength;
      if (size > limits.maxBytes) throw bodyTooLarge(limits.maxBytes);
      let from = 0;
      for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, from)) {
        line++;
        if (pendingBytes + nl - from > maxLine) throw lineTooLong(line, maxLine, limits);
        const piece = chunk.subarray(from, nl);
        const bytes = pending.length === 0 ? piece : concat([...pending, piece], pendingBytes + piece.byteLength);
        pending = [];
        pendingBytes = 0;
        from = nl + 1;
        yield { line, text: decode(bytes, line) };
      }
      if (from < chunk.byteLength) {
        pendingBytes += chunk.byteLength - from;
        if (pendingBytes > maxLine) throw lineTooLong(line + 1, maxLine, limits);
        // A copy of the tail only: the chunk it came in is not held for it.
        pending.push(chunk.slice(from));
      }
    }
    if (pendingBytes > 0) {
      line++;
      yield { line, text: decode(concat(pending, pendingBytes), line) };
    }
  } finally {
    // Refused early (413, 408, a bad line): the rest is not read; the answer goes out now.
    reader.cancel().catch(() => {});
  }
}

/**
 * @param {Uint8Array[]} parts
 * @param {number} total their bytes
 */
function concat(parts, total) {
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return all;
}

/** @param {IntakeLimits} limits */
function tooManyRequests(limits) {
  return new HttpError(413, 'request_too_large', `the batch has more than ${limits.maxRequests} requests (EDGEBATCH_BATCH_MAX_REQUESTS)`);
}

/** @param {number} limit */
function bodyTooLarge(limit) {
  return new HttpError(413, 'request_too_large', `body is larger than ${limit} bytes (EDGEBATCH_BATCH_MAX_BYTES)`);
}

/**
 * @param {number} line
 * @param {number} maxLine
 * @param {IntakeLimits} limits
 */
function lineTooLong(line, maxLine, limits) {
  return new HttpError(413, 'request_too_large', `line ${line} is longer than ${maxLine} bytes: a request's params may be at most ` +
    `${limits.maxRequestBytes} bytes (EDGEBATCH_BATCH_MAX_REQUEST_BYTES), its line twice that and 1 KiB`);
}
