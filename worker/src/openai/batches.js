// @ts-check
// OpenAI's Batch API over the stored-batch engine (../batches/): the same ledger, queues,
// limiter and token budgets as /v1/batches, in OpenAI's shapes.
//   POST /batches              { input_file_id, endpoint, completion_window: "24h", metadata? } -> the batch
//   GET  /batches              ?limit=1..100 (20), ?after=<batch id>; newest first
//   GET  /batches/:id          the batch
//   POST /batches/:id/cancel   the batch, cancelling (or ended)
// The batch id is the engine's own (`batch_<64 hex>`, the same batch on /v1/batches); what the
// engine does not keep (input file, endpoint, metadata, the result files) is in R2 (store.js).
// A batch that has ended gets its output and error files when it is next read by id (GET or
// cancel, output.js), after the answer (waitUntil): until they are written it is `finalizing`
// (`cancelling` if it was cancelled), then `completed`, `cancelled` or `expired`. A list never
// writes them (a page of 100 ended batches would be 100 finalizings in one request).
import { allow, HttpError, jsonResponse, readCappedText } from '../http.js';
import { handleBatches, headerOptions, viewsOf } from '../batches/index.js';
import { invalid } from './errors.js';
import { noSuchFile } from './files.js';
import { ENDPOINTS, fileLine, toRequests } from './jsonl.js';
import { finalize } from './output.js';
import { FILE_ID, bucketOf, claimFinalizing, fileKey, inverted, orderPrefix, readMeta, readTaggedMeta, seconds, writeMeta } from './store.js';

const LIST_MAX = 100;
/** How long a request's claim on writing a batch's files holds: longer than waitUntil's 30 s. */
const CLAIM_MS = 60_000;
const CREATE_FIELDS = ['input_file_id', 'endpoint', 'completion_window', 'metadata'];

/**
 * @typedef {{ request: Request, url: URL, env: any, ctx?: ExecutionContext, config: ReturnType<typeof import('../config.js').readConfig>,
 *   caller: { name: string }, redact: (s: string) => string, header: object }} Ctx header: the provider (upstream.js);
 *   ctx: the invocation's (its waitUntil), absent where there is none
 * @typedef {import('./store.js').BatchMeta} BatchMeta
 * @typedef {import('./store.js').Bucket} Bucket
 */

/**
 * @param {Ctx} c
 * @param {string[]} parts the path after /batches
 * @returns {Promise<Response>}
 */
export async function handleOpenAIBatches(c, parts) {
  const bucket = bucketOf(c.env);
  if (parts.length === 0) {
    allow(c.request, ['GET', 'POST']);
    return c.request.method === 'POST' ? create(c, bucket) : list(c, bucket);
  }
  const [id, action, ...extra] = parts;
  if (extra.length > 0 || (action !== undefined && action !== 'cancel')) throw noSuchBatch(id);
  allow(c.request, action === 'cancel' ? ['POST'] : ['GET']);
  const tagged = await readTaggedMeta(bucket, c.caller.name, id);
  if (!tagged) throw noSuchBatch(id);
  let view;
  try {
    const res = await handleBatches(c.request, c.url, action === 'cancel' ? [id, 'cancel'] : [id], c.env, c.config, c.caller.name, c.redact);
    view = await res.json();
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) throw noSuchBatch(id);
    throw err;
  }
  let meta = tagged.meta;
  if (view.processing_status === 'ended' && meta.finalized_at === undefined) meta = await startFinalizing(c, bucket, tagged, Date.parse(view.ended_at));
  return jsonResponse(200, batchObject(meta, view));
}

/**
 * Has the ended batch's files written, unless a request took that on within CLAIM_MS: after the
 * answer (waitUntil) where the route has an invocation, else now.
 * @param {Ctx} c @param {Bucket} bucket @param {{ meta: BatchMeta, etag: string }} tagged
 * @param {number} endedMs
 * @returns {Promise<BatchMeta>} the meta to answer with (finalized when written now)
 */
async function startFinalizing(c, bucket, { meta, etag }, endedMs) {
  if (meta.finalizing_since !== undefined && Date.now() - meta.finalizing_since < CLAIM_MS) return meta;
  const claimed = await claimFinalizing(bucket, c.caller.name, meta, etag);
  if (!claimed) return meta;
  if (!c.ctx) return finalize(c, bucket, claimed, endedMs);
  c.ctx.waitUntil(finalize(c, bucket, claimed, endedMs).catch((err) => {
    // The claim lapses after CLAIM_MS: a later read tries again.
    console.error(`edgebatch worker: /openai batch ${meta.id}: its files were not written: ${c.redact(String(err?.message ?? err))}`);
  }));
  return claimed;
}

/** @param {Ctx} c @param {Bucket} bucket */
async function create(c, bucket) {
  // /v1/batches' options (completionWindow, maxCostUsd, ...) ride in a header: the body is OpenAI's.
  const options = headerOptions(c.request);
  const body = await readJsonBody(c);
  for (const key of Object.keys(body)) {
    if (!CREATE_FIELDS.includes(key)) throw invalid(`unknown parameter ${JSON.stringify(key)} (expected ${CREATE_FIELDS.join(', ')})`, key);
  }
  const { input_file_id: fileId, endpoint, completion_window: window } = body;
  if (typeof endpoint !== 'string' || !ENDPOINTS.includes(endpoint)) {
    throw invalid(`endpoint ${JSON.stringify(String(endpoint).slice(0, 80))} is not supported here: use ${ENDPOINTS.map((e) => JSON.stringify(e)).join(' or ')}`, 'endpoint');
  }
  if (window !== '24h') throw invalid(`completion_window must be "24h", got ${JSON.stringify(String(window).slice(0, 40))}`, 'completion_window');
  const metadata = checkMetadata(body.metadata);
  if (typeof fileId !== 'string') throw invalid('input_file_id must be a file id (files.create with purpose "batch")', 'input_file_id');
  const file = FILE_ID.test(fileId) ? await bucket.get(fileKey(c.caller.name, fileId)) : null;
  if (!file) throw Object.assign(noSuchFile(fileId), { details: { param: 'input_file_id' } });
  if (file.customMetadata?.purpose !== 'batch') {
    await file.body.cancel();
    throw invalid(`file ${fileId} has purpose ${JSON.stringify(file.customMetadata?.purpose)}: a batch's input must be uploaded with purpose "batch"`, 'input_file_id');
  }

  // The file, streamed, as the engine's NDJSON with the fixed provider header; an SDK retry
  // (its Idempotency-Key) finds the batch its first try made.
  const requests = toRequests(file.body, { provider: c.header, ...(options && { options }) }, endpoint);
  const key = c.request.headers.get('idempotency-key');
  const headers = { 'content-type': 'application/x-ndjson', ...(key !== null && { 'idempotency-key': key }) };
  const engineUrl = new URL('/v1/batches', c.url);
  let view;
  try {
    const res = await handleBatches(new Request(engineUrl, { method: 'POST', headers, body: requests.body }), engineUrl, [], c.env, c.config, c.caller.name, c.redact);
    view = await res.json();
  } catch (err) {
    const fault = requests.fault();
    if (fault instanceof HttpError) throw fault;
    // The engine names its NDJSON lines: the file's are one less (its header line is ours).
    if (err instanceof HttpError) {
      err.message = fileLine(err.message);
      if (err.status === 400 && /^line \d+/.test(err.message)) err.details = { ...err.details, param: 'input_file_id' };
    }
    throw err;
  }
  const createdAt = Date.parse(view.created_at);
  /** @type {BatchMeta} */
  const meta = { id: view.id, input_file_id: fileId, endpoint, completion_window: window, metadata, created_at: createdAt, order: `${inverted(createdAt)}-${view.id}` };
  await writeMeta(bucket, c.caller.name, meta);
  await bucket.put(`${orderPrefix(c.caller.name)}${meta.order}`, '');
  return jsonResponse(200, batchObject(meta, view));
}

/**
 * Newest first; `after`: the page after that batch (the SDK's next page).
 * @param {Ctx} c @param {Bucket} bucket
 */
async function list(c, bucket) {
  const q = c.url.searchParams;
  let limit = 20;
  if (q.has('limit')) {
    limit = Number(q.get('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX) throw invalid(`limit must be an integer in 1..=${LIST_MAX}`, 'limit');
  }
  const after = q.get('after');
  const prefix = orderPrefix(c.caller.name);
  let startAfter;
  if (after !== null && after !== '') {
    const at = await readMeta(bucket, c.caller.name, after);
    if (!at) throw invalid(`after ${JSON.stringify(after.slice(0, 80))} is not a batch of this token: list again without it`, 'after');
    startAfter = `${prefix}${at.order}`;
  }
  const page = await bucket.list({ prefix, limit, ...(startAfter && { startAfter }) });
  const ids = page.objects.map((o) => String(o.key).slice(prefix.length).split('-')[1]);
  const [views, metas] = await Promise.all([
    viewsOf(c.env, c.caller.name, ids),
    Promise.all(ids.map((id) => readMeta(bucket, c.caller.name, id))),
  ]);
  const byId = new Map(views.map((v) => [v.id, v]));
  const data = [];
  for (let i = 0; i < ids.length; i++) {
    const view = byId.get(ids[i]);
    const meta = metas[i];
    // A batch deleted on /v1/batches is gone here too.
    if (view && meta) data.push(batchObject(meta, view));
  }
  return jsonResponse(200, { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.truncated });
}

/**
 * The engine's view and the batch's meta as OpenAI's batch object: an ended batch whose files
 * are not written yet is `finalizing` (`cancelling` when cancelled).
 * @param {BatchMeta} meta @param {any} view
 */
function batchObject(meta, view) {
  const ended = view.processing_status === 'ended';
  const endedMs = ended ? Date.parse(view.ended_at) : null;
  const written = meta.finalized_at !== undefined;
  const n = view.request_counts;
  const cancelAt = view.cancel_initiated_at ? Date.parse(view.cancel_initiated_at) : null;
  const status = !ended || !written ? (cancelAt !== null ? 'cancelling' : ended ? 'finalizing' : 'in_progress')
    : cancelAt !== null ? 'cancelled'
      : n.expired > 0 ? 'expired' : 'completed';
  return {
    id: meta.id,
    object: 'batch',
    endpoint: meta.endpoint,
    errors: null,
    input_file_id: meta.input_file_id,
    completion_window: meta.completion_window,
    status,
    output_file_id: meta.output_file_id ?? null,
    error_file_id: meta.error_file_id ?? null,
    created_at: seconds(meta.created_at),
    in_progress_at: seconds(meta.created_at),
    expires_at: seconds(Date.parse(view.expires_at)),
    finalizing_at: seconds(endedMs),
    completed_at: status === 'completed' ? seconds(meta.finalized_at) : null,
    failed_at: null,
    expired_at: status === 'expired' ? seconds(endedMs) : null,
    cancelling_at: seconds(cancelAt),
    cancelled_at: status === 'cancelled' ? seconds(endedMs) : null,
    // Every request is one of the two once the batch has ended: the error file holds the
    // failed ones, cancelled and expired ones included.
    request_counts: { total: n.processing + n.succeeded + n.errored + n.canceled + n.expired, completed: n.succeeded, failed: n.errored + n.canceled + n.expired },
    metadata: meta.metadata,
  };
}

/** @param {Ctx} c @returns {Promise<Record<string, unknown>>} */
async function readJsonBody(c) {
  const text = await readCappedText(c.request, c.config.maxBodyBytes, c.config.bodyTimeoutMs);
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw invalid('body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('body must be a JSON object { input_file_id, endpoint, completion_window, metadata? }');
  return body;
}

/**
 * OpenAI's metadata rule: at most 16 pairs, keys up to 64 characters, values strings up to 512.
 * @param {unknown} m
 * @returns {Record<string, string> | null}
 */
function checkMetadata(m) {
  if (m === undefined || m === null) return null;
  if (typeof m !== 'object' || Array.isArray(m)) throw invalid('metadata must be an object of string values', 'metadata');
  const entries = Object.entries(m);
  if (entries.length > 16) throw invalid('metadata may hold at most 16 pairs', 'metadata');
  for (const [k, v] of entries) {
    if (k.length > 64) throw invalid(`metadata key ${JSON.stringify(k.slice(0, 64))}… is longer than 64 characters`, 'metadata');
    if (typeof v !== 'string' || v.length > 512) throw invalid(`metadata.${k} must be a string of at most 512 characters`, 'metadata');
  }
  return /** @type {Record<string, string>} */ (Object.fromEntries(entries));
}

/** @param {string} id */
function noSuchBatch(id) {
  const shown = String(id).length > 80 ? `${String(id).slice(0, 80)}…` : id;
  return new HttpError(404, 'invalid_request_error', `No batch found with id '${shown}'.`, {}, { param: 'batch_id' });
}
