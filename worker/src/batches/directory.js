// One small SQLite Durable Object per token: the ids of its batches, newest first, so that
// `GET /v1/batches` lists a token's batches without a global object for everything.
import { DurableObject } from 'cloudflare:workers';

export class BatchDirectory extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL)`);
  }

  add(id, createdAt) {
    this.sql.exec(`INSERT OR IGNORE INTO batches (id, created_at) VALUES (?, ?)`, id, createdAt);
  }

  remove(id) {
    this.sql.exec(`DELETE FROM batches WHERE id = ?`, id);
  }

  /** Up to `limit` ids, newest first, older than `beforeId` when given. */
  list(limit, beforeId) {
    const before = beforeId
      ? this.sql.exec(`SELECT created_at, id FROM batches WHERE id = ?`, beforeId).toArray()[0]
      : null;
    const rows = before
      ? this.sql.exec(`SELECT id FROM batches WHERE (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?`,
        before.created_at, before.id, limit + 1).toArray()
      : this.sql.exec(`SELECT id FROM batches ORDER BY created_at DESC, id DESC LIMIT ?`, limit + 1).toArray();
    return { ids: rows.slice(0, limit).map((r) => r.id), hasMore: rows.length > limit };
  }
}
