// @ts-check
// OpenAI's Files API, for batch files, on R2 (store.js):
//   POST   /files               multipart { file, purpose: "batch" } -> the file object (the JSONL
//                               checked first: jsonl.js names the faulty line)
//   GET    /files               ?limit=1..10000 (10000), ?after=<file id>, ?purpose; newest first
//                               (at most max(limit, 1000) files read: a filtered page may come
//                               short with has_more, last_id the last file read)
//   GET    /files/:id           the file object
//   GET    /files/:id/content   its bytes
//   DELETE /files/:id           { id, object: "file", deleted: true }
// A batch's output and error files (purpose "batch_output") are files like these (output.js).
// An upload is read whole, as bytes, and held once (multipart.js): at most
// EDGEBATCH_FILE_MAX_BYTES (32 MiB, also the most it may be set to), a 413 naming it past that.
// Its peak in the isolate is about the upload (twice it, for a moment, without a
// Content-Length), one line decoded at a time and the custom_ids seen (at most
// EDGEBATCH_BATCH_MAX_REQUESTS: 100,000 ids of 10 characters are ~7 MB; in Node the whole
// check of a 32 MiB file of 100,000 lines added ~23 MB, uncollected garbage included): ~60 MB
// of the Worker's 128 MB at 32 MiB, ~95 MB when chunked.
import { batchLimits } from '../batches/routes.js';
import { intVar } from '../config.js';
import { allow, HttpError, jsonResponse } from '../http.js';
import { invalid } from './errors.js';
import { checkInput } from './jsonl.js';
import { parseMultipart, readUpload } from './multipart.js';
import { bucketOf, FILE_ID, fileKey, newFileId, prefixOf, seconds } from './store.js';

const LIST_MAX = 10_000;
/** A filtered list reads at most max(limit, SCAN_MIN) files: 1 to 10 R2 list calls, as unfiltered. */
const SCAN_MIN = 1000;
/** The largest upload, and the default. */
const FILE_MAX = 32 * 1024 * 1024;
/** What one write of an upload into R2 holds. */
const PUT_SLICE = 1024 * 1024;

/**
 * @typedef {{ request: Request, url: URL, env: any, config: ReturnType<typeof import('../config.js').readConfig>,
 *   caller: { name: string } }} Ctx
 */

/**
 * @param {Ctx} c
 * @param {string[]} parts the path after /files
 * @returns {Promise<Response>}
 */
export async function handleFiles(c, parts) {
  const bucket = bucketOf(c.env);
  if (parts.length === 0) {
    allow(c.request, ['GET', 'POST']);
    return c.request.method === 'POST' ? upload(c, bucket) : list(c, bucket);
  }
  const [id, action, ...extra] = parts;
  if (extra.length > 0 || (action !== undefined && action !== 'content')) throw noSuchFile(id);
  allow(c.request, action === 'content' ? ['GET'] : ['GET', 'DELETE']);
  const key = FILE_ID.test(id) ? fileKey(c.caller.name, id) : null;
  if (action === 'content') {
    const obj = key && await bucket.get(key);
    if (!obj) throw noSuchFile(id);
    return new Response(obj.body, { status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': String(obj.size), 'cache-control': 'no-store' } });
  }
  const head = key && await bucket.head(key);
  if (!head) throw noSuchFile(id);
  if (c.request.method === 'DELETE') {
    await bucket.delete(/** @type {string} */ (key));
    return jsonResponse(200, { id, object: 'file', deleted: true });
  }
  return jsonResponse(200, fileObject(id, head));
}

/**
 * A stored file as OpenAI's file object. @param {string} id @param {any} obj an R2 object or head
 */
export function fileObject(id, obj) {
  const m = obj.customMetadata ?? {};
  return { id, object: 'file', bytes: obj.size, created_at: seconds(Number(m.created_at)), filename: m.filename ?? '', purpose: m.purpose ?? 'batch', status: 'processed' };
}

/** @param {Ctx} c @param {import('./store.js').Bucket} bucket */
async function upload(c, bucket) {
  const max = intVar(c.env, 'EDGEBATCH_FILE_MAX_BYTES', FILE_MAX, 1024, FILE_MAX);
  const type = c.request.headers.get('content-type') ?? '';
  if (!/^multipart\/form-data\s*;/i.test(type)) throw invalid('send the file as multipart/form-data with the fields file and purpose', 'file');
  const body = await readUpload(c.request, max, c.config.bodyTimeoutMs,
    (limit) => new HttpError(413, 'request_too_large', `the upload is larger than ${limit} bytes (EDGEBATCH_FILE_MAX_BYTES)`));
  const parts = parseMultipart(body, type);
  const purposePart = parts.find((p) => p.name === 'purpose');
  const purpose = purposePart && purposePart.filename === null ? new TextDecoder().decode(purposePart.bytes.subarray(0, 64)) : null;
  if (purpose !== 'batch') throw invalid(`purpose must be "batch" here (the Batch API's input), got ${JSON.stringify(String(purpose).slice(0, 40))}`, 'purpose');
  const file = parts.find((p) => p.name === 'file');
  if (!file || file.filename === null) throw invalid('file is missing: send it as a file field of the form', 'file');
  const content = file.bytes;
  checkInput(content, batchLimits(c.env).maxRequests);
  const now = Date.now();
  const id = newFileId(now);
  const meta = { filename: (file.filename || 'upload.jsonl').slice(0, 255), purpose: 'batch', created_at: String(now) };
  // Streamed from the view in slices: R2 is given no copy of the whole file.
  const FixedLengthStream = /** @type {any} */ (globalThis).FixedLengthStream;
  const stream = new FixedLengthStream(content.byteLength);
  const put = bucket.put(fileKey(c.caller.name, id), stream.readable, { httpMetadata: { contentType: 'application/jsonl' }, customMetadata: meta });
  put.catch(() => {}); // awaited below; a failure also fails the writes
  const writer = stream.writable.getWriter();
  for (let at = 0; at < content.byteLength; at += PUT_SLICE) await writer.write(content.subarray(at, at + PUT_SLICE));
  await writer.close();
  await put;
  return jsonResponse(200, fileObject(id, { size: content.byteLength, customMetadata: meta }));
}

/** @param {Ctx} c @param {import('./store.js').Bucket} bucket */
async function list(c, bucket) {
  const q = c.url.searchParams;
  let limit = LIST_MAX;
  if (q.has('limit')) {
    limit = Number(q.get('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX) throw invalid(`limit must be an integer in 1..=${LIST_MAX}`, 'limit');
  }
  const order = q.get('order') ?? 'desc';
  if (order !== 'desc') throw invalid('order must be "desc" here: files are listed newest first', 'order');
  const purpose = q.get('purpose');
  const after = q.get('after');
  if (after !== null && !FILE_ID.test(after)) throw invalid(`after ${JSON.stringify(after.slice(0, 80))} is not a file id`, 'after');
  const prefix = `${prefixOf(c.caller.name)}files/`;
  /** @type {object[]} */
  const data = [];
  let startAfter = after === null ? undefined : `${prefix}${after}`;
  let more = true;
  // A purpose filter can leave a page short: R2 is read on until it is full, at its end, or
  // `scan` files have been read (a token's thousands of files are not all read for one
  // request: has_more then, last_id the last file read, the `after` that goes on from there).
  const scan = Math.max(limit, SCAN_MIN);
  for (let scanned = 0; data.length < limit && more && scanned < scan;) {
    const want = purpose === null ? limit - data.length : 1000;
    const page = await bucket.list({ prefix, limit: Math.min(1000, want, scan - scanned), include: ['customMetadata'], ...(startAfter && { startAfter }) });
    more = page.truncated && page.objects.length > 0;
    for (const o of page.objects) {
      if (data.length === limit) {
        more = true; // the page is full before R2's is read through
        break;
      }
      scanned++;
      startAfter = o.key;
      const f = fileObject(o.key.slice(prefix.length), o);
      if (purpose === null || f.purpose === purpose) data.push(f);
    }
  }
  const ids = data.map((f) => /** @type {{ id: string }} */ (f).id);
  const lastRead = more && startAfter !== undefined ? startAfter.slice(prefix.length) : null;
  return jsonResponse(200, { object: 'list', data, first_id: ids[0] ?? null, last_id: lastRead ?? ids.at(-1) ?? null, has_more: more });
}

/** @param {string} id */
export function noSuchFile(id) {
  const shown = String(id).length > 80 ? `${String(id).slice(0, 80)}…` : id;
  return new HttpError(404, 'invalid_request_error', `No such File object: ${shown}`, {}, { param: 'id' });
}
