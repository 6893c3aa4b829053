// @ts-check
// Anthropic's Message Batches API over the stored-batch engine (../batches/): the same ledger,
// queues, limiter and token budgets as /v1/batches, in Anthropic's shapes.
//   POST   /v1/messages/batches                 { requests: [{ custom_id, params }] } -> the batch
//   GET    /v1/messages/batches                 ?limit=1..1000 (20), ?after_id (older), ?before_id (newer)
//   GET    /v1/messages/batches/:id             the batch
//   POST   /v1/messages/batches/:id/cancel      the batch, canceling (or ended)
//   DELETE /v1/messages/batches/:id             { id, type: "message_batch_deleted" } once ended
//   GET    /v1/messages/batches/:id/results     JSONL { custom_id, result } once ended
// Ids: the engine's `batch_<64 hex>` is `msgbatch_<the same hex>` here, so every id maps both
// ways without a table. A batch of another token is a 404, as on /v1/batches.
import { allow, badRequest, HttpError, jsonResponse } from '../http.js';
import { directoryOf, handleBatches, headerOptions, viewsOf } from '../batches/index.js';
import { anthropicType } from './errors.js';

const NATIVE = /^batch_([0-9a-f]{64})$/;
const OURS = /^msgbatch_([0-9a-f]{64})$/;
const LIST_MAX = 1000;
/** Ids read per directory call while looking for a `before_id`. */
const WALK_PAGE = 100;

/** @param {string} id the engine's id */
const toOurs = (id) => id.replace(NATIVE, 'msgbatch_$1');

/** Every engine id in a message, as this route spells it. @param {string} message */
export const reword = (message) => message.replace(/\bbatch_([0-9a-f]{64})\b/g, 'msgbatch_$1');

/**
 * @typedef {ReturnType<typeof import('../config.js').readConfig>} Config
 * @typedef {{ name: string, token: string }} Caller
 * @typedef {{ request: Request, url: URL, env: any, config: Config, caller: Caller, redact: (s: string) => string,
 *   header: object }} Ctx header: the provider a new batch runs on (upstream.js)
 */

/**
 * @param {Ctx} c
 * @param {string[]} parts the path after /v1/messages/batches
 * @returns {Promise<Response>}
 */
export async function handleMessageBatches(c, parts) {
  if (parts.length === 0) {
    allow(c.request, ['GET', 'POST']);
    return c.request.method === 'POST' ? create(c) : list(c);
  }
  const [id, action, ...extra] = parts;
  const m = OURS.exec(id);
  if (!m || extra.length > 0 || (action !== undefined && action !== 'cancel' && action !== 'results')) throw notFound(id);
  const native = `batch_${m[1]}`;
  if (action === 'cancel') allow(c.request, ['POST']);
  else if (action === 'results') allow(c.request, ['GET']);
  else allow(c.request, ['GET', 'DELETE']);
  let res;
  try {
    res = await engine(c, action === undefined ? [native] : [native, action]);
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) throw notFound(id);
    // Anthropic refuses to delete a running batch with a 400 (the engine says 409).
    if (err instanceof HttpError && err.status === 409 && c.request.method === 'DELETE') err.status = 400;
    throw err;
  }
  if (action === 'results') return results(res, id);
  const view = await res.json();
  if (c.request.method === 'DELETE') return jsonResponse(200, { id, type: 'message_batch_deleted' });
  return jsonResponse(200, messageBatch(view, c.url.origin));
}

/**
 * The engine's route for `parts` (its request body, if any, is this request's).
 * @param {Ctx} c @param {string[]} parts @param {URL} [url]
 */
function engine(c, parts, url = c.url) {
  return handleBatches(c.request, url, parts, c.env, c.config, c.caller.name, c.redact);
}

/** @param {Ctx} c */
async function create(c) {
  // /v1/batches' options (completionWindow, maxCostUsd, ...) ride in a header: the body is Anthropic's.
  const options = headerOptions(c.request);
  const fixed = { header: { provider: c.header, ...(options && { options }) }, fields: new Set(['requests']), shape: '{ requests }' };
  let res;
  try {
    res = await handleBatches(c.request, c.url, [], c.env, c.config, c.caller.name, c.redact, fixed);
  } catch (err) {
    // The engine's advice (send NDJSON) is not this API's: it takes JSON only.
    if (err instanceof HttpError && err.status === 413 && /^a JSON body is larger than/.test(err.message)) {
      err.message = err.message.replace(/: send a batch this large as NDJSON.*$/, '');
    }
    throw err;
  }
  return jsonResponse(200, messageBatch(await res.json(), c.url.origin));
}

/**
 * Newest first. `after_id`: the page after that batch (older ones; the SDK's next page);
 * `before_id`: the page just before it (newer ones), found by reading the ids from the newest.
 * @param {Ctx} c
 */
async function list(c) {
  const q = c.url.searchParams;
  let limit = 20;
  if (q.has('limit')) {
    limit = Number(q.get('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX) throw badRequest(`limit must be an integer in 1..=${LIST_MAX}, got ${JSON.stringify(String(q.get('limit')).slice(0, 40))}`);
  }
  const after = cursor(q, 'after_id');
  const before = cursor(q, 'before_id');
  if (after && before) throw badRequest('give after_id or before_id, not both');
  const directory = directoryOf(c.env, c.caller.name);
  /** @type {string[]} */
  let ids;
  let hasMore;
  if (before) {
    ({ ids, hasMore } = await newerThan(directory, before, limit));
  } else {
    const page = await directory.list(limit, after);
    if (page.unknownBefore) throw unknownCursor('after_id', q.get('after_id'));
    ({ ids, hasMore } = page);
  }
  const data = (await viewsOf(c.env, c.caller.name, ids)).map((v) => messageBatch(v, c.url.origin));
  return jsonResponse(200, { data, has_more: hasMore, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
}

/**
 * The `limit` ids just newer than `before`, newest first, and whether there are newer still.
 * @param {any} directory @param {string} before an engine id @param {number} limit
 */
async function newerThan(directory, before, limit) {
  /** @type {string[]} */
  const newer = [];
  /** @type {string | undefined} */
  let from;
  for (;;) {
    const page = await directory.list(WALK_PAGE, from);
    const at = page.ids.indexOf(before);
    if (at >= 0) {
      newer.push(...page.ids.slice(0, at));
      return { ids: newer.slice(-limit), hasMore: newer.length > limit };
    }
    newer.push(...page.ids);
    if (!page.hasMore || page.ids.length === 0) throw unknownCursor('before_id', toOurs(before));
    from = page.ids.at(-1);
  }
}

/**
 * A cursor parameter as an engine id, or undefined; one that is no batch id at all is a 400.
 * @param {URLSearchParams} q @param {string} name
 */
function cursor(q, name) {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  const m = OURS.exec(raw);
  if (!m) throw unknownCursor(name, raw);
  return `batch_${m[1]}`;
}

/** @param {string} name @param {string | null} raw */
function unknownCursor(name, raw) {
  return badRequest(`${name} ${JSON.stringify(String(raw).slice(0, 80))} is not a message batch of this token (deleted, or never one): list again without it`);
}

/**
 * The engine's batch view as a MessageBatch. `results_url` only once it has ended, as
 * Anthropic does (the SDK's `batches.results()` reads it).
 * @param {any} v @param {string} origin
 */
export function messageBatch(v, origin) {
  const id = toOurs(v.id);
  const ended = v.processing_status === 'ended';
  return {
    id,
    type: 'message_batch',
    processing_status: v.processing_status,
    request_counts: v.request_counts,
    ended_at: v.ended_at,
    created_at: v.created_at,
    expires_at: v.expires_at,
    cancel_initiated_at: v.cancel_initiated_at,
    archived_at: null,
    results_url: ended ? `${origin}/anthropic/v1/messages/batches/${id}/results` : null,
  };
}

/**
 * The engine's results lines (already redacted) as Anthropic's, streamed as they are read. A
 * batch still running has none yet here (its `results_url` is null); /v1/batches serves
 * partial results.
 * @param {Response} res the engine's results response @param {string} id
 */
async function results(res, id) {
  if (res.headers.get('edgebatch-batch-ended') !== 'true') {
    await res.body?.cancel();
    throw badRequest(`message batch ${id} has not ended yet: its results are available once processing_status is "ended"`);
  }
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let rest = '';
  /** @param {string} line */
  const convert = (line) => `${JSON.stringify(resultLine(JSON.parse(line)))}\n`;
  const body = /** @type {ReadableStream<Uint8Array>} */ (res.body).pipeThrough(new TransformStream({
    transform(chunk, controller) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n');
      rest = /** @type {string} */ (lines.pop());
      const out = lines.filter((l) => l !== '').map(convert).join('');
      if (out) controller.enqueue(encoder.encode(out));
    },
    flush(controller) {
      rest += decoder.decode();
      if (rest.trim() !== '') controller.enqueue(encoder.encode(convert(rest)));
    },
  }));
  return new Response(body, { status: 200, headers: { 'content-type': 'application/binary', 'cache-control': 'no-store' } });
}

/**
 * One results line: `succeeded` with the message, `errored` with Anthropic's error body,
 * `canceled`, `expired`; the engine's own fields (attempts, usage, seq) stay on /v1/batches.
 * @param {{ custom_id: string, result: any }} line
 */
function resultLine({ custom_id, result }) {
  if (result.type !== 'errored') return { custom_id, result };
  const e = result.error ?? {};
  return { custom_id, result: { type: 'errored', error: { type: 'error', error: { type: anthropicType(e.type, e.status), message: String(e.message ?? '') } } } };
}

/** @param {string} id */
function notFound(id) {
  const shown = String(id).length > 80 ? `${String(id).slice(0, 80)}…` : id;
  return new HttpError(404, 'not_found_error', `no message batch ${shown}`);
}
