// Reads the body of POST /v1/batches into a new ledger: `application/json`
// `{ provider?, options?, requests: [{ custom_id, params }] }`, or `application/x-ndjson` with
// one `{ custom_id, params }` per line (a first line without `custom_id` may carry
// `{ provider?, options? }`), streamed in and appended in chunks, never held whole. Every
// refusal is a 400 naming the request and field, or a 413 naming the limit.
import { badRequest, HttpError, readCappedText } from '../http.js';
import { checkItem } from '../item-policy.js';
import { parseJsonObject } from '../validate.js';

const TOP_LEVEL = new Set(['provider', 'options', 'requests']);
const HEADER_FIELDS = new Set(['provider', 'options']);
const REQUEST_FIELDS = new Set(['custom_id', 'params']);
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;
/** Rows per append call, and bytes: a Durable Object call's payload stays small. */
const CHUNK_ROWS = 500;
const CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * @param {Request} request
 * @param {{ maxRequests: number, maxBytes: number, maxRequestBytes: number }} limits
 * @param {(header: object) => Promise<{ provider: string, rules: object }>} begin called once
 *   with `{ provider, options }` before the first row (validates them, creates the ledger);
 *   returns the provider's name and the item rules (item-policy.js) every `params` must meet
 * @param {(rows: object[]) => Promise<void>} append
 * @returns {Promise<number>} the number of requests
 */
export async function readBatch(request, limits, begin, append) {
  const type = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  const sink = new RowSink(limits, append);
  if (type === 'application/x-ndjson' || type === 'application/jsonl') {
    let began = false;
    let line = 0;
    for await (const text of lines(request, limits.maxBytes)) {
      line++;
      if (text.trim() === '') continue;
      const value = parseLine(text, line);
      if (!began && !Object.hasOwn(value, 'custom_id')) {
        for (const key of Object.keys(value)) {
          if (!HEADER_FIELDS.has(key)) throw badRequest(`line ${line}: unknown field ${JSON.stringify(key)} (a first line without custom_id may hold provider, options)`);
        }
        sink.policy = await begin(value);
        began = true;
        continue;
      }
      if (!began) {
        sink.policy = await begin({});
        began = true;
      }
      await sink.add(value, `line ${line}`, text.length);
    }
    if (!began) await begin({});
  } else {
    const text = await readCappedText(request, limits.maxBytes);
    const body = parseJsonObject(text, TOP_LEVEL, '{ provider?, options?, requests }');
    if (!Array.isArray(body.requests)) throw badRequest('requests must be an array of { custom_id, params }');
    sink.policy = await begin({ provider: body.provider, options: body.options });
    for (let i = 0; i < body.requests.length; i++) {
      await sink.add(body.requests[i], `requests[${i}]`, JSON.stringify(body.requests[i] ?? null).length);
    }
  }
  await sink.flush();
  if (sink.count === 0) throw badRequest('the batch has no requests');
  return sink.count;
}

class RowSink {
  constructor(limits, append) {
    this.limits = limits;
    this.append = append;
    this.rows = [];
    this.bytes = 0;
    this.count = 0;
    this.ids = new Set();
  }

  async add(value, where, size) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw badRequest(`${where} must be an object { custom_id, params }`);
    for (const key of Object.keys(value)) {
      if (!REQUEST_FIELDS.has(key)) throw badRequest(`${where} has unknown field ${JSON.stringify(key)} (expected custom_id, params)`);
    }
    const id = value.custom_id;
    if (typeof id !== 'string' || !CUSTOM_ID.test(id)) {
      throw badRequest(`${where}.custom_id must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -`);
    }
    // Duplicates within the batch: named here (the ledger checks again across chunks).
    if (this.ids.has(id)) throw badRequest(`${where}: duplicate custom_id ${JSON.stringify(id)}`);
    this.ids.add(id);
    const p = value.params;
    if (p === null || typeof p !== 'object' || Array.isArray(p)) throw badRequest(`${where}.params must be an object (a request body)`);
    try {
      checkItem(p, this.count, this.policy.provider, this.policy.rules);
    } catch (err) {
      // Its messages say `items[i]`: here the item is `params`.
      if (err instanceof HttpError) err.message = err.message.replace(/^items\[\d+\]/, `${where}.params`);
      throw err;
    }
    const params = JSON.stringify(p);
    if (params.length > this.limits.maxRequestBytes) {
      throw new HttpError(413, 'request_too_large', `${where}.params is larger than ${this.limits.maxRequestBytes} bytes (EDGEBATCH_BATCH_MAX_REQUEST_BYTES)`);
    }
    this.count++;
    if (this.count > this.limits.maxRequests) {
      throw new HttpError(413, 'request_too_large', `the batch has more than ${this.limits.maxRequests} requests (EDGEBATCH_BATCH_MAX_REQUESTS)`);
    }
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

function parseLine(text, line) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`line ${line} is not valid JSON (${e.message})`);
  }
}

/** The body's lines as they arrive; 413 past `maxBytes`, 400 for bytes that are not UTF-8. */
async function* lines(request, maxBytes) {
  if (!request.body) return;
  const reader = request.body.getReader();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let size = 0;
  let rest = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) throw new HttpError(413, 'request_too_large', `body is larger than ${maxBytes} bytes (EDGEBATCH_BATCH_MAX_BYTES)`);
      let chunk;
      try {
        chunk = decoder.decode(value, { stream: true });
      } catch {
        throw badRequest('body is not valid UTF-8');
      }
      const parts = (rest + chunk).split('\n');
      rest = parts.pop();
      yield* parts;
    }
    if (rest !== '') yield rest;
  } finally {
    reader.cancel().catch(() => {});
  }
}
