// @ts-check
// OpenAI's Files API, for batch files, on R2 (store.js):
//   POST   /files               multipart { file, purpose: "batch" } -> the file object (the JSONL
//                               checked first: jsonl.js names the faulty line)
//   GET    /files               ?limit=1..10000 (10000), ?after=<file id>, ?purpose; newest first
//   GET    /files/:id           the file object
//   GET    /files/:id/content   its bytes
//   DELETE /files/:id           { id, object: "file", deleted: true }
// A batch's output and error files (purpose "batch_output") are files like these (output.js).
// Uploads are read whole (the isolate holds a file and its form once): at most
// EDGEBATCH_FILE_MAX_BYTES (32 MiB), a 413 naming it past that.
import { intVar } from '../config.js';
import { allow, HttpError, jsonResponse, readCappedText } from '../http.js';
import { invalid } from './errors.js';
import { checkInput } from './jsonl.js';
import { bucketOf, FILE_ID, fileKey, newFileId, prefixOf, seconds } from './store.js';

const LIST_MAX = 10_000;

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
  const max = intVar(c.env, 'EDGEBATCH_FILE_MAX_BYTES', 32 * 1024 * 1024, 1024, 100 * 1024 * 1024);
  const type = c.request.headers.get('content-type') ?? '';
  if (!/^multipart\/form-data\s*;/i.test(type)) throw invalid('send the file as multipart/form-data with the fields file and purpose', 'file');
  const text = await readCappedText(c.request, max, c.config.bodyTimeoutMs, { between: true }).catch((err) => {
    if (err instanceof HttpError && err.status === 413) err.message = `the upload is larger than ${max} bytes (EDGEBATCH_FILE_MAX_BYTES)`;
    throw err;
  });
  let form;
  try {
    form = await new Response(text, { headers: { 'content-type': type } }).formData();
  } catch {
    throw invalid('the body is not valid multipart/form-data', 'file');
  }
  const purpose = form.get('purpose');
  if (purpose !== 'batch') throw invalid(`purpose must be "batch" here (the Batch API's input), got ${JSON.stringify(String(purpose).slice(0, 40))}`, 'purpose');
  const file = form.get('file');
  if (file === null || typeof file === 'string') throw invalid('file is missing: send it as a file field of the form', 'file');
  const content = await file.text();
  checkInput(content);
  const now = Date.now();
  const id = newFileId(now);
  const filename = String(file.name ?? 'upload.jsonl').slice(0, 255);
  const meta = { filename, purpose: 'batch', created_at: String(now) };
  const put = await bucket.put(fileKey(c.caller.name, id), content, { httpMetadata: { contentType: 'application/jsonl' }, customMetadata: meta });
  return jsonResponse(200, fileObject(id, { size: put?.size ?? new TextEncoder().encode(content).byteLength, customMetadata: meta }));
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
  // A purpose filter can leave a page short: R2 is read on until it is full or at its end.
  while (data.length < limit && more) {
    const page = await bucket.list({ prefix, limit: Math.min(1000, limit - data.length), include: ['customMetadata'], ...(startAfter && { startAfter }) });
    for (const o of page.objects) {
      const f = fileObject(o.key.slice(prefix.length), o);
      if (purpose === null || f.purpose === purpose) data.push(f);
    }
    more = page.truncated && page.objects.length > 0;
    startAfter = page.objects.at(-1)?.key;
  }
  const ids = data.map((f) => /** @type {{ id: string }} */ (f).id);
  return jsonResponse(200, { object: 'list', data, first_id: ids[0] ?? null, last_id: ids.at(-1) ?? null, has_more: more });
}

/** @param {string} id */
export function noSuchFile(id) {
  const shown = String(id).length > 80 ? `${String(id).slice(0, 80)}…` : id;
  return new HttpError(404, 'invalid_request_error', `No such File object: ${shown}`, {}, { param: 'id' });
}
