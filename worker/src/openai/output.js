// @ts-check
// A batch's output and error files, made once when it has ended: the engine's results (its
// ledger's lines, already redacted, read page by page through /v1/batches/:id/results) in
// OpenAI's line format, `{ id, custom_id, response: { status_code, request_id, body }, error }`;
// successes in the output file, everything else in the error file (an upstream's error reply
// as its `response`, a failure without one, a cancelled or an expired request as `error`).
//
// Written into R2 rather than computed at each `content`: a file then has a size, is listed
// and can be deleted like any other. The results are read twice, never held: once to count
// each file's bytes, once to stream them into R2 (a put of a stream must know its length).
// Written after the answer of the by-id read that claims it (batches.js); the files' ids are
// fixed by the batch, so should two requests write them (a claim that lapsed) they write the
// same bytes under the same keys; a file with no line is not made (its id stays null).
import { handleBatches } from '../batches/index.js';
import { typeOfStatus } from './errors.js';
import { fileKey, resultFileId, writeMeta } from './store.js';
import { linesOf } from './jsonl.js';

/** Bytes gathered before a write into a file's stream. */
const CHUNK_BYTES = 64 * 1024;

/**
 * @typedef {{ request: Request, url: URL, env: any, config: ReturnType<typeof import('../config.js').readConfig>,
 *   caller: { name: string }, redact: (s: string) => string }} Ctx
 * @typedef {import('./store.js').BatchMeta} BatchMeta
 */

/**
 * Makes the ended batch's files and records their ids in its meta (returned).
 * @param {Ctx} c @param {import('./store.js').Bucket} bucket @param {BatchMeta} meta
 * @param {number} endedMs when the batch ended
 * @returns {Promise<BatchMeta>}
 */
export async function finalize(c, bucket, meta, endedMs) {
  const sizes = { o: 0, e: 0 };
  await eachLine(c, meta.id, (kind, bytes) => {
    sizes[kind] += bytes.byteLength;
  });
  const FixedLengthStream = /** @type {any} */ (globalThis).FixedLengthStream;
  /** @type {Record<'o' | 'e', { id: string, writer: WritableStreamDefaultWriter<Uint8Array>, put: Promise<unknown>, pending: Uint8Array[], bytes: number } | null>} */
  const files = { o: null, e: null };
  for (const kind of /** @type {const} */ (['o', 'e'])) {
    if (sizes[kind] === 0) continue;
    const id = resultFileId(meta.id, endedMs, kind);
    const stream = new FixedLengthStream(sizes[kind]);
    const customMetadata = { filename: `${meta.id}_${kind === 'o' ? 'output' : 'error'}.jsonl`, purpose: 'batch_output', created_at: String(endedMs) };
    const put = bucket.put(fileKey(c.caller.name, id), stream.readable, { httpMetadata: { contentType: 'application/jsonl' }, customMetadata });
    put.catch(() => {}); // awaited below; a failure also fails the writes
    files[kind] = { id, writer: stream.writable.getWriter(), put, pending: [], bytes: 0 };
  }
  /** @param {NonNullable<typeof files.o>} f */
  const drain = async (f) => {
    if (f.bytes === 0) return;
    const all = new Uint8Array(f.bytes);
    let at = 0;
    for (const p of f.pending) {
      all.set(p, at);
      at += p.byteLength;
    }
    f.pending = [];
    f.bytes = 0;
    await f.writer.write(all);
  };
  await eachLine(c, meta.id, async (kind, bytes) => {
    const f = /** @type {NonNullable<typeof files.o>} */ (files[kind]);
    f.pending.push(bytes);
    f.bytes += bytes.byteLength;
    if (f.bytes >= CHUNK_BYTES) await drain(f);
  });
  for (const f of [files.o, files.e]) {
    if (!f) continue;
    await drain(f);
    await f.writer.close();
    await f.put;
  }
  const { finalizing_since: _, ...rest } = meta;
  const done = { ...rest, output_file_id: files.o?.id ?? null, error_file_id: files.e?.id ?? null, finalized_at: Date.now() };
  await writeMeta(bucket, c.caller.name, done);
  return done;
}

/**
 * Calls `use` with each result as OpenAI's line, in the results' order (completion order).
 * @param {Ctx} c @param {string} id
 * @param {(kind: 'o' | 'e', bytes: Uint8Array) => unknown} use
 */
async function eachLine(c, id, use) {
  const url = new URL(`/v1/batches/${id}/results`, c.url);
  const get = new Request(url, { method: 'GET' });
  const res = await handleBatches(get, url, [id, 'results'], c.env, c.config, c.caller.name, c.redact);
  const encoder = new TextEncoder();
  const hex = id.slice(6);
  for await (const { text } of linesOf(/** @type {ReadableStream<Uint8Array>} */ (res.body))) {
    if (text === '') continue;
    const { ok, line } = openaiLine(hex, JSON.parse(text));
    await use(ok ? 'o' : 'e', encoder.encode(`${JSON.stringify(line)}\n`));
  }
}

/**
 * One engine results line `{ custom_id, result, edgebatch: { seq } }` as OpenAI's. The line's
 * `id` and `request_id` are made from the batch and the result's seq (the engine keeps no
 * upstream request id), so they are the same at every read.
 * @param {string} hex the batch id's hex @param {{ custom_id: string, result: any, edgebatch?: { seq?: number } }} r
 */
export function openaiLine(hex, r) {
  const tag = `${hex.slice(0, 16)}${Number(r.edgebatch?.seq ?? 0).toString(16).padStart(8, '0')}`;
  const head = { id: `batch_req_${tag}`, custom_id: r.custom_id };
  const request_id = `req_${tag}`;
  const result = r.result ?? {};
  if (result.type === 'succeeded') {
    return { ok: true, line: { ...head, response: { status_code: 200, request_id, body: result.message }, error: null } };
  }
  if (result.type === 'errored') {
    const e = result.error ?? {};
    const message = String(e.message ?? '');
    if (typeof e.status === 'number') {
      const body = { error: { message, type: typeof e.type === 'string' ? e.type : typeOfStatus(e.status), param: null, code: null } };
      return { ok: false, line: { ...head, response: { status_code: e.status, request_id, body }, error: null } };
    }
    return { ok: false, line: { ...head, response: null, error: { code: e.kind === 'timeout' ? 'request_timeout' : String(e.kind ?? 'error'), message } } };
  }
  const error = result.type === 'expired'
    ? { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' }
    : { code: 'batch_cancelled', message: 'This request was not executed: the batch was cancelled first.' };
  return { ok: false, line: { ...head, response: null, error } };
}
