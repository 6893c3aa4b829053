// One SQLite-backed Durable Object per batch: the ledger, and the only truth about it. Each
// item's state, lease and result live in its row; queue messages only say "work on these
// indexes". A consumer claims items (a lease whose token only grows), commits each result with
// that token (the first commit wins; a stale lease is refused), and the alarm puts back what a
// crashed consumer or a lost message left behind, expires the batch and ends it.
//
// Item states: queued -> leased -> succeeded | errored | canceled | expired; leased -> queued
// (lease ran out, or the consumer gave it back to wait for the limiter).
import { DurableObject } from 'cloudflare:workers';
import { resetNow } from './chaos.js';
import { batchTimings, enqueueItems } from './queues.js';

const FINAL = ['succeeded', 'errored', 'canceled', 'expired'];
const COUNT_KEYS = { queued: 'processing', leased: 'processing', succeeded: 'succeeded', errored: 'errored', canceled: 'canceled', expired: 'expired' };

export class BatchLedger extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS items (
      idx INTEGER PRIMARY KEY, custom_id TEXT NOT NULL UNIQUE, params TEXT NOT NULL,
      state TEXT NOT NULL DEFAULT 'queued', token INTEGER NOT NULL DEFAULT 0,
      lease_until INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0,
      attempts INTEGER NOT NULL DEFAULT 0, claims INTEGER NOT NULL DEFAULT 0,
      seq INTEGER, result TEXT)`);
    this.sql.exec(`CREATE INDEX IF NOT EXISTS items_state ON items (state)`);
    this.sql.exec(`CREATE INDEX IF NOT EXISTS items_seq ON items (seq) WHERE seq IS NOT NULL`);
  }

  #meta() {
    const row = this.sql.exec(`SELECT v FROM meta WHERE k = 'batch'`).toArray()[0];
    return row ? JSON.parse(row.v) : null;
  }

  #save(meta) {
    this.sql.exec(`INSERT OR REPLACE INTO meta (k, v) VALUES ('batch', ?)`, JSON.stringify(meta));
  }

  /** The batch as the API shows it, or null when `owner` may not see it (or it is not one). */
  #view(meta) {
    const counts = { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 0 };
    for (const r of this.sql.exec(`SELECT state, COUNT(*) AS n FROM items GROUP BY state`)) {
      counts[COUNT_KEYS[r.state]] += r.n;
    }
    const iso = (ms) => (ms == null ? null : new Date(ms).toISOString());
    return {
      id: meta.id,
      type: 'batch',
      processing_status: meta.endedAt ? 'ended' : meta.cancelAt ? 'canceling' : 'in_progress',
      request_counts: counts,
      created_at: iso(meta.createdAt),
      expires_at: iso(meta.expiresAt),
      ended_at: iso(meta.endedAt),
      cancel_initiated_at: iso(meta.cancelAt),
      results_url: `/v1/batches/${meta.id}/results`,
      // Recovery at work: items whose lease lapsed (their consumer died) and items sent again
      // because nobody claimed them (their message was lost).
      edgebatch: { leases_lapsed: meta.relet ?? 0, redelivered: meta.redelivered ?? 0 },
    };
  }

  #owned(owner) {
    const meta = this.#meta();
    return meta && meta.owner === owner && !meta.deleted && meta.started ? meta : null;
  }

  // ---- creation: init, append (repeatedly), start; or discard ----

  async init(meta) {
    if (this.#meta()) throw new Error('batch already exists');
    this.#save({ ...meta, started: false, total: 0, seq: 0 });
  }

  /** Appends `rows` ([{ custom_id, params }], params a JSON string). Throws on a duplicate. */
  async append(rows) {
    const meta = this.#meta();
    if (!meta || meta.started) throw new Error('batch is not being created');
    let idx = meta.total;
    this.ctx.storage.transactionSync(() => {
      for (const row of rows) {
        const dup = this.sql.exec(`SELECT 1 FROM items WHERE custom_id = ?`, row.custom_id).toArray().length > 0;
        if (dup) throw new Error(`duplicate custom_id ${JSON.stringify(row.custom_id)}`);
        this.sql.exec(`INSERT INTO items (idx, custom_id, params) VALUES (?, ?, ?)`, idx++, row.custom_id, row.params);
      }
    });
    meta.total = idx;
    this.#save(meta);
    return idx;
  }

  async start() {
    const meta = this.#meta();
    if (!meta || meta.started) throw new Error('batch is not being created');
    meta.started = true;
    meta.lastClaimAt = Date.now();
    this.#save(meta);
    const indexes = this.sql.exec(`SELECT idx FROM items ORDER BY idx`).toArray().map((r) => r.idx);
    await enqueueItems(this.env, meta.id, indexes);
    await this.#arm(meta);
    return this.#view(meta);
  }

  async discard() {
    await this.ctx.storage.deleteAll();
  }

  // ---- the API ----

  async describe(owner) {
    const meta = this.#owned(owner);
    if (!meta) return null;
    await this.#arm(meta);
    return this.#view(meta);
  }

  /** Done items after `after` (a seq), in completion order: [{ seq, line }]. */
  async results(owner, after, limit) {
    const meta = this.#owned(owner);
    if (!meta) return null;
    await this.#arm(meta);
    const rows = this.sql.exec(`SELECT seq, result FROM items WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit).toArray();
    return { rows: rows.map((r) => ({ seq: r.seq, line: r.result })), ended: Boolean(meta.endedAt) };
  }

  async cancel(owner) {
    const meta = this.#owned(owner);
    if (!meta) return null;
    if (!meta.endedAt && !meta.cancelAt) {
      meta.cancelAt = Date.now();
      this.#save(meta);
      this.#finish(meta, `state = 'queued'`, 'canceled');
      this.#maybeEnd(meta);
    }
    await this.#arm(meta);
    return this.#view(meta);
  }

  /** Deletes an ended batch: null if unknown, { conflict } if it is still running. */
  async remove(owner) {
    const meta = this.#owned(owner);
    if (!meta) return null;
    if (!meta.endedAt) return { conflict: true };
    await this.ctx.storage.deleteAlarm();
    // The rows go; a tombstone stays so the id stays a 404 rather than a fresh empty batch.
    this.sql.exec(`DELETE FROM items`);
    this.#save({ id: meta.id, owner, deleted: true });
    return { id: meta.id, type: 'batch_deleted' };
  }

  // ---- consumers ----

  /**
   * Leases the given items that are queued (or whose lease ran out) for `leaseMs`:
   * `{ batch: { provider, options, limiterKey, owner }, items: [{ index, token, params, attempts }] }`.
   */
  async claim(indexes, leaseMs) {
    const meta = this.#meta();
    if (!meta || !meta.started || meta.endedAt || meta.cancelAt || meta.deleted) return { batch: null, items: [] };
    const now = Date.now();
    const items = [];
    this.ctx.storage.transactionSync(() => {
      for (const index of indexes) {
        const row = this.sql.exec(
          `UPDATE items SET state = 'leased', token = token + 1, claims = claims + 1, lease_until = ?
           WHERE idx = ? AND (state = 'queued' OR (state = 'leased' AND lease_until <= ?))
           RETURNING idx, token, params, attempts`, now + leaseMs, index, now).toArray()[0];
        if (row) items.push({ index: row.idx, token: row.token, params: row.params, attempts: row.attempts });
      }
    });
    if (items.length > 0) {
      meta.lastClaimAt = now;
      this.#save(meta);
    }
    const { provider, options, limiter, limiterKey, owner } = meta;
    return { batch: { provider, options, limiter, limiterKey, owner, id: meta.id }, items };
  }

  /**
   * Commits results `[{ index, token, result, attempts, elapsedMs, usage? }]` (`result` as the
   * results line shows it: `{ type: "succeeded", message }` or `{ type: "errored", error }`);
   * one whose token is not the item's current lease is refused. Returns the counts.
   */
  async commit(results) {
    if (resetNow(this.env)) this.ctx.abort(new Error('chaos: the batch object resets'));
    const meta = this.#meta();
    if (!meta || meta.deleted) return { accepted: 0, refused: results.length };
    let accepted = 0;
    this.ctx.storage.transactionSync(() => {
      for (const r of results) {
        const row = this.sql.exec(
          `UPDATE items SET attempts = attempts + ? WHERE idx = ? AND token = ? AND state = 'leased'
           RETURNING idx, custom_id, attempts`, r.attempts, r.index, r.token).toArray()[0];
        if (!row) continue;
        const edgebatch = { attempts: row.attempts, elapsedMs: r.elapsedMs, ...(r.usage && { usage: r.usage }) };
        this.#record(meta, row, r.result.type, r.result, edgebatch);
        accepted++;
      }
      if (accepted > 0) this.#save(meta);
    });
    this.#maybeEnd(meta);
    return { accepted, refused: results.length - accepted };
  }

  /** Gives leased items back (the limiter asked to wait): queued again, not before `notBefore`. */
  async unclaim(entries, notBefore) {
    const meta = this.#meta();
    if (!meta || meta.deleted) return 0;
    let n = 0;
    for (const e of entries) {
      n += this.sql.exec(
        `UPDATE items SET state = 'queued', not_before = ?, attempts = attempts + ?
         WHERE idx = ? AND token = ? AND state = 'leased' RETURNING idx`,
        notBefore, e.attempts, e.index, e.token).toArray().length;
    }
    if (meta.cancelAt) this.#finish(meta, `state = 'queued'`, 'canceled');
    this.#maybeEnd(meta);
    return n;
  }

  /** The dead-letter queue's verdict: items of a message that kept failing, not yet final. */
  async failDelivery(indexes, reason) {
    const meta = this.#meta();
    if (!meta || meta.deleted || meta.endedAt) return 0;
    const now = Date.now();
    const error = { kind: 'delivery', message: `the work queue gave up on this request: ${reason}`, retryable: false };
    let n = 0;
    this.ctx.storage.transactionSync(() => {
      for (const index of indexes) {
        const row = this.sql.exec(
          `SELECT idx, custom_id, attempts FROM items WHERE idx = ? AND (state = 'queued' OR (state = 'leased' AND lease_until <= ?))`,
          index, now).toArray()[0];
        if (!row) continue;
        this.#record(meta, row, 'errored', { type: 'errored', error }, { attempts: row.attempts, elapsedMs: 0 });
        n++;
      }
      if (n > 0) this.#save(meta);
    });
    this.#maybeEnd(meta);
    return n;
  }

  // ---- the alarm: leases, lost messages, expiry, the end ----

  async alarm() {
    const meta = this.#meta();
    if (!meta || !meta.started || meta.deleted || meta.endedAt) return;
    const now = Date.now();
    const t = batchTimings(this.env);
    if (now >= meta.expiresAt) {
      this.#finish(meta, `state IN ('queued', 'leased')`, 'expired');
    } else {
      // Leases that ran out: their consumer died (or was killed) holding them. Sent again now.
      const lapsed = this.sql.exec(`UPDATE items SET state = 'queued', not_before = ? WHERE state = 'leased' AND lease_until <= ? RETURNING idx`, now, now)
        .toArray().map((r) => r.idx);
      if (meta.cancelAt) this.#finish(meta, `state = 'queued'`, 'canceled');
      else if (lapsed.length > 0) {
        meta.relet = (meta.relet ?? 0) + lapsed.length;
        this.#save(meta);
        await enqueueItems(this.env, meta.id, lapsed.sort((a, b) => a - b));
      }
      // Queued items nobody has claimed for a while: their message was lost (a queue broker
      // restart loses its backlog) or is stuck; send them again. A duplicate costs one claim
      // that finds nothing, never a second upstream call.
      if (!meta.cancelAt && now - (meta.lastClaimAt ?? 0) >= t.redeliverMs) {
        const stale = this.sql.exec(`SELECT idx FROM items WHERE state = 'queued' AND not_before <= ? ORDER BY idx`, now - t.redeliverMs)
          .toArray().map((r) => r.idx);
        if (stale.length > 0) {
          meta.lastClaimAt = now;
          meta.redelivered = (meta.redelivered ?? 0) + stale.length;
          this.#save(meta);
          this.sql.exec(`UPDATE items SET not_before = ? WHERE state = 'queued' AND not_before <= ?`, now, now - t.redeliverMs);
          await enqueueItems(this.env, meta.id, stale);
        }
      }
    }
    this.#maybeEnd(meta);
    await this.#arm(meta);
  }

  /** Keeps one alarm set while the batch runs (also after a restart: any call re-arms it). */
  async #arm(meta) {
    if (!meta.started || meta.endedAt || meta.deleted) return;
    if ((await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(Date.now() + batchTimings(this.env).alarmMs);
    }
  }

  /** Every item matching `where` gets the final `type` (canceled / expired) with no attempt. */
  #finish(meta, where, type) {
    const rows = this.sql.exec(`SELECT idx, custom_id, attempts FROM items WHERE ${where}`).toArray();
    if (rows.length === 0) return;
    this.ctx.storage.transactionSync(() => {
      for (const row of rows) this.#record(meta, row, type, { type }, { attempts: row.attempts, elapsedMs: 0 });
      this.#save(meta);
    });
  }

  /** An item's final result, with the next seq; the caller saves `meta` once after its loop. */
  #record(meta, row, state, result, edgebatch) {
    meta.seq += 1;
    const line = JSON.stringify({ custom_id: row.custom_id, result, edgebatch: { ...edgebatch, seq: meta.seq } });
    this.sql.exec(`UPDATE items SET state = ?, result = ?, seq = ?, token = token + 1 WHERE idx = ?`, state, line, meta.seq, row.idx);
  }

  #maybeEnd(meta) {
    if (meta.endedAt) return;
    const open = this.sql.exec(`SELECT COUNT(*) AS n FROM items WHERE state NOT IN (${FINAL.map(() => '?').join(',')})`, ...FINAL).one().n;
    if (open === 0) {
      meta.endedAt = Date.now();
      this.#save(meta);
    }
  }
}
