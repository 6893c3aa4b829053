// @ts-check
// One small SQLite Durable Object per token: the ids of its batches, newest first, so that
// `GET /v1/batches` lists a token's batches without a global object for everything; and its
// create idempotency keys (`Idempotency-Key`), each bound to the batch it created and the
// hash of the body that created it.
import { DurableObject } from 'cloudflare:workers';

/** A key whose create went quiet this long (its invocation died) may be used again. */
export const KEY_PENDING_MS = 10 * 60_000;

/**
 * @typedef {{ reserved: true } | { pending: true, sinceMs: number } | { id: string, fingerprint: string }} KeyClaim
 */

export class BatchDirectory extends DurableObject {
  /** @param {DurableObjectState} ctx @param {any} env */
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, id TEXT, fingerprint TEXT, at INTEGER NOT NULL);`);
  }

  /**
   * Takes an idempotency key for a create: `{ reserved }` (go on; `add` binds it, `release`
   * frees it), `{ pending }` (another create with it is under way) or the batch it created.
   * @param {string} key
   * @returns {KeyClaim}
   */
  reserve(key) {
    const now = Date.now();
    const row = this.sql.exec(`SELECT id, fingerprint, at FROM keys WHERE key = ?`, key).toArray()[0];
    if (row?.id) return { id: String(row.id), fingerprint: String(row.fingerprint) };
    if (row && now - Number(row.at) < KEY_PENDING_MS) return { pending: true, sinceMs: now - Number(row.at) };
    this.sql.exec(`INSERT OR REPLACE INTO keys (key, id, fingerprint, at) VALUES (?, NULL, NULL, ?)`, key, now);
    return { reserved: true };
  }

  /** Frees a reserved key whose create failed (a retry may use it). @param {string} key */
  release(key) {
    this.sql.exec(`DELETE FROM keys WHERE key = ? AND id IS NULL`, key);
  }

  /**
   * Lists a new batch; with `key`, binds the key to it.
   * @param {string} id @param {number} createdAt @param {string} [key] @param {string} [fingerprint]
   */
  add(id, createdAt, key, fingerprint) {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`INSERT OR IGNORE INTO batches (id, created_at) VALUES (?, ?)`, id, createdAt);
      if (key !== undefined) {
        this.sql.exec(`INSERT OR REPLACE INTO keys (key, id, fingerprint, at) VALUES (?, ?, ?, ?)`, key, id, fingerprint ?? '', Date.now());
      }
    });
  }

  /** @param {string} id */
  remove(id) {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`DELETE FROM batches WHERE id = ?`, id);
      this.sql.exec(`DELETE FROM keys WHERE id = ?`, id);
    });
  }

  /**
   * Up to `limit` ids, newest first, older than `beforeId` when given; `unknownBefore` when
   * `beforeId` is not one of this token's batches (a pager must not start over at page 1).
   * @param {number} limit @param {string} [beforeId]
   * @returns {{ ids: string[], hasMore: boolean, unknownBefore?: true }}
   */
  list(limit, beforeId) {
    const before = beforeId
      ? this.sql.exec(`SELECT created_at, id FROM batches WHERE id = ?`, beforeId).toArray()[0]
      : null;
    if (beforeId && !before) return { ids: [], hasMore: false, unknownBefore: true };
    const rows = before
      ? this.sql.exec(`SELECT id FROM batches WHERE (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?`,
        before.created_at, before.id, limit + 1).toArray()
      : this.sql.exec(`SELECT id FROM batches ORDER BY created_at DESC, id DESC LIMIT ?`, limit + 1).toArray();
    return { ids: rows.slice(0, limit).map((r) => String(r.id)), hasMore: rows.length > limit };
  }
}
