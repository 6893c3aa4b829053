// @ts-check
// Where the /openai routes keep what the stored-batch engine does not: files and the OpenAI
// side of each batch, in the R2 bucket bound as FILES, under a prefix of the token's own
// (`openai/<token name>/`), so another token's file or batch is simply not found (a 404):
//   files/<file id>                 a file's bytes; customMetadata { filename, purpose, created_at }
//   batches/<batch id>              the batch's OpenAI fields (JSON, below)
//   batch-order/<inverted ms>-<id>  empty: lists a token's batches newest first
// File ids and the order keys start with the inverted creation time (12 hex digits), so R2's
// lexicographic listing is newest first, and `after` is R2's `startAfter`.
import { HttpError } from '../http.js';

/**
 * The R2 bucket as these routes use it (a minimal stand-in for the runtime's R2Bucket type).
 * @typedef {{
 *   get(key: string): Promise<any>,
 *   head(key: string): Promise<any>,
 *   put(key: string, value: any, options?: any): Promise<any>,
 *   delete(key: string | string[]): Promise<void>,
 *   list(options: { prefix: string, limit?: number, startAfter?: string, include?: string[] }): Promise<{ objects: any[], truncated: boolean }>,
 * }} Bucket
 * @typedef {{ id: string, input_file_id: string, endpoint: string, completion_window: string,
 *   metadata: Record<string, string> | null, created_at: number, order: string,
 *   output_file_id?: string | null, error_file_id?: string | null, finalized_at?: number,
 *   finalizing_since?: number }} BatchMeta
 *   created_at, finalized_at (its files written) and finalizing_since (a request took on writing
 *   them) in ms
 */

const MAX_TIME = 0xffffffffffff;
export const FILE_ID = /^file-[0-9a-z]{32}$/;
export const BATCH_ID = /^batch_[0-9a-f]{64}$/;

/** @param {any} env @returns {Bucket} */
export function bucketOf(env) {
  if (!env.FILES) throw new HttpError(500, 'configuration_error', 'this deployment has no FILES R2 bucket binding (see wrangler.toml [[r2_buckets]])');
  return env.FILES;
}

/** The token's prefix. @param {string} owner */
export const prefixOf = (owner) => `openai/${encodeURIComponent(owner)}/`;

/** @param {number} ms */
export const inverted = (ms) => (MAX_TIME - ms).toString(16).padStart(12, '0');

/** A new file id: newest sort first. @param {number} ms */
export function newFileId(ms) {
  const random = [...crypto.getRandomValues(new Uint8Array(10))].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `file-${inverted(ms)}${random}`;
}

/**
 * The id of a batch's output or error file: fixed by the batch (two finalizers write the same
 * file), sorting by when the batch ended. @param {string} batchId @param {number} endedMs @param {'o' | 'e'} kind
 */
export const resultFileId = (batchId, endedMs, kind) => `file-${inverted(endedMs)}${batchId.slice(6, 25)}${kind}`;

/** @param {string} owner @param {string} id */
export const fileKey = (owner, id) => `${prefixOf(owner)}files/${id}`;
/** @param {string} owner @param {string} id */
export const batchKey = (owner, id) => `${prefixOf(owner)}batches/${id}`;
/** @param {string} owner */
export const orderPrefix = (owner) => `${prefixOf(owner)}batch-order/`;

/**
 * A batch's OpenAI fields, or null when it is not an /openai batch of this token.
 * @param {Bucket} bucket @param {string} owner @param {string} id
 * @returns {Promise<BatchMeta | null>}
 */
export async function readMeta(bucket, owner, id) {
  return (await readTaggedMeta(bucket, owner, id))?.meta ?? null;
}

/**
 * readMeta with the object's etag (for claimFinalizing).
 * @param {Bucket} bucket @param {string} owner @param {string} id
 * @returns {Promise<{ meta: BatchMeta, etag: string } | null>}
 */
export async function readTaggedMeta(bucket, owner, id) {
  if (!BATCH_ID.test(id)) return null;
  const obj = await bucket.get(batchKey(owner, id));
  return obj ? { meta: JSON.parse(await obj.text()), etag: obj.etag } : null;
}

/**
 * Takes on writing an ended batch's files: records `finalizing_since` if the meta is still the
 * one read (its etag), so of the requests that find the files missing at once one writes them.
 * @param {Bucket} bucket @param {string} owner @param {BatchMeta} meta @param {string} etag
 * @returns {Promise<BatchMeta | null>} the claimed meta, or null when another request changed it first
 */
export async function claimFinalizing(bucket, owner, meta, etag) {
  const claimed = { ...meta, finalizing_since: Date.now() };
  const put = await bucket.put(batchKey(owner, meta.id), JSON.stringify(claimed), { httpMetadata: { contentType: 'application/json' }, onlyIf: { etagMatches: etag } });
  return put ? claimed : null;
}

/** @param {Bucket} bucket @param {string} owner @param {BatchMeta} meta */
export async function writeMeta(bucket, owner, meta) {
  await bucket.put(batchKey(owner, meta.id), JSON.stringify(meta), { httpMetadata: { contentType: 'application/json' } });
}

/** Unix seconds of epoch ms (null stays null). @param {number | null | undefined} ms */
export const seconds = (ms) => (ms == null ? null : Math.floor(ms / 1000));
