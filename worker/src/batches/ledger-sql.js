// @ts-check
// The batch ledger's tables and its state changes. Everything here is synchronous SQL, run by
// the ledger inside `transactionSync`: nothing here awaits, so nothing read here can be
// written back after another call changed it (a Durable Object's input gate opens only at an
// await).
//
//   batch  one row: the settings as created (`config`, never changed) and what changes, with
//          the dollars of the result lines kept as running sums (usd_pico, realtime_pico) and
//          `maxCostUsd`'s state (the one consumer run holding the rest of the budget, what the
//          requests at a provider batch hold of it, the cap once reached)
//   cost_slices  consumer runs holding a slice of maxCostUsd: their items' bounds (grantCost)
//   counts items per state, kept by triggers on `items`: a commit or a GET costs the same at
//          any size of batch
//   items  one row per request: state, lease token, when a claim may take it (not_before),
//          when its latest message became deliverable (sent_at: NEVER_SENT = not yet sent,
//          window.js; -1 = a send that failed), whether the token budget was charged for it, its result line,
//          and while it is at a provider batch, its bound held against maxCostUsd (cost_hold);
//          rest_only: a slice of maxCostUsd was too small for it, it runs only on the whole rest
//   provider_batches, provider_items  the batches submitted to a provider's Batch API
//          (`completionWindow`: provider-batch.js) and which items each holds, with the
//          item's lease token at submission (its result counts only with that token)

import { sizeBound } from '../token-limits.js';

/** @typedef {'queued' | 'leased' | 'succeeded' | 'errored' | 'canceled' | 'expired'} ItemState */
/**
 * @typedef {object} BatchConfig what create stores once
 * @property {string} id
 * @property {string} owner
 * @property {{ name: string, baseUrl?: string, version?: string, sim?: boolean }} provider
 * @property {Record<string, unknown>} options
 * @property {Record<string, unknown>} limiter
 * @property {string} limiterKey
 * @property {number} createdAt
 * @property {number} expiresAt
 * @property {string} [completionWindow] as asked ("4h"): the batch may go to the provider's Batch API
 * @property {number} [completionWindowMs] the same in ms, from createdAt
 * @property {number} [maxCostUsd] the most the batch may spend (consumer.js: no request starts that could pass it)
 */
/**
 * @typedef {object} BatchRow the `batch` row, config parsed
 * @property {BatchConfig} config
 * @property {number | null} started_at
 * @property {number | null} ended_at
 * @property {number | null} cancel_at
 * @property {number} deleted
 * @property {number} total
 * @property {number} seq
 * @property {number} relet items whose lease lapsed and were sent again
 * @property {number} redelivered items sent again because their message was lost (or probed)
 * @property {number} last_claim_at
 * @property {number} probe_at
 * @property {number} mark the latest send time of an item claimed
 * @property {number | null} pending_mark a mark seen at `pending_at`, not yet trusted
 * @property {number} pending_at
 * @property {number} lost_before queued items whose message became deliverable before this are lost
 * @property {string | null} waiting_reason
 * @property {number | null} waiting_until
 * @property {number} next_send the first index never sent (window.js)
 * @property {number} claimed_first items claimed at least once
 * @property {number} bucket_at
 * @property {number} bucket_n claims in the bucket that began at bucket_at
 * @property {number} last_bucket_n claims in the bucket before
 * @property {number} usd_pico the result lines' dollars, in pico-dollars (exact sums)
 * @property {number} realtime_pico what they would have cost realtime
 * @property {string | null} cost_hold the consumer run holding what is left of maxCostUsd
 * @property {number} cost_hold_until when that hold lapses (a crashed consumer's)
 * @property {string | null} cost_capped the error message once maxCostUsd stopped the batch
 * @property {number} held_pico what the requests at provider batches hold of maxCostUsd (their bounds)
 * @property {number} unknown_pico what the requests of a create whose outcome is unknown may have
 *   cost there (their bounds): kept against maxCostUsd for good, as the provider may run them
 */

/** @type {ItemState[]} */
export const STATES = ['queued', 'leased', 'succeeded', 'errored', 'canceled', 'expired'];
export const WAIT_REASONS = ['token_budget', 'limiter', 'upstream_429', 'cost_hold'];
/** Columns added to `batch` after its first layout: (name, declaration). */
const BATCH_COLUMNS = [['usd_pico', 'INTEGER NOT NULL DEFAULT 0'], ['realtime_pico', 'INTEGER NOT NULL DEFAULT 0'],
  ['cost_hold', 'TEXT'], ['cost_hold_until', 'INTEGER NOT NULL DEFAULT 0'], ['cost_capped', 'TEXT'], ['held_pico', 'INTEGER NOT NULL DEFAULT 0'],
  ['unknown_pico', 'INTEGER NOT NULL DEFAULT 0']];
/** Columns added to `items` after its first layout. */
const ITEM_COLUMNS = [['cost_hold', 'INTEGER NOT NULL DEFAULT 0'], ['rest_only', 'INTEGER NOT NULL DEFAULT 0']];

/** @param {SqlStorage} sql */
export function createSchema(sql) {
  sql.exec(`
    CREATE TABLE IF NOT EXISTS batch (
      one INTEGER PRIMARY KEY CHECK (one = 1), config TEXT NOT NULL,
      started_at INTEGER, ended_at INTEGER, cancel_at INTEGER, deleted INTEGER NOT NULL DEFAULT 0,
      total INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,
      relet INTEGER NOT NULL DEFAULT 0, redelivered INTEGER NOT NULL DEFAULT 0,
      last_claim_at INTEGER NOT NULL DEFAULT 0, probe_at INTEGER NOT NULL DEFAULT 0,
      mark INTEGER NOT NULL DEFAULT 0, pending_mark INTEGER, pending_at INTEGER NOT NULL DEFAULT 0,
      lost_before INTEGER NOT NULL DEFAULT 0, waiting_reason TEXT, waiting_until INTEGER,
      next_send INTEGER NOT NULL DEFAULT 0, claimed_first INTEGER NOT NULL DEFAULT 0,
      bucket_at INTEGER NOT NULL DEFAULT 0, bucket_n INTEGER NOT NULL DEFAULT 0, last_bucket_n INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS items (
      idx INTEGER PRIMARY KEY, custom_id TEXT NOT NULL UNIQUE, params TEXT NOT NULL,
      state TEXT NOT NULL DEFAULT 'queued', token INTEGER NOT NULL DEFAULT 0,
      lease_until INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0,
      sent_at INTEGER NOT NULL DEFAULT 0, charged INTEGER NOT NULL DEFAULT 0,
      attempts INTEGER NOT NULL DEFAULT 0, claims INTEGER NOT NULL DEFAULT 0,
      seq INTEGER, result TEXT, cost_hold INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS provider_batches (
      n INTEGER PRIMARY KEY, id TEXT, status TEXT NOT NULL, counts TEXT,
      submitted_at INTEGER NOT NULL, polled_at INTEGER NOT NULL DEFAULT 0, cancel_sent INTEGER NOT NULL DEFAULT 0,
      items INTEGER NOT NULL, bytes INTEGER NOT NULL, lines_read INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS provider_items (idx INTEGER PRIMARY KEY, batch INTEGER NOT NULL, token INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS cost_slices (hold TEXT PRIMARY KEY, pico INTEGER NOT NULL, until INTEGER NOT NULL);`);
  migrateMeta(sql);
  // A batch object made before the cost columns gets them once, empty.
  const has = new Set(sql.exec(`SELECT name FROM pragma_table_info('batch')`).toArray().map((r) => String(r.name)));
  for (const [name, decl] of BATCH_COLUMNS) if (!has.has(name)) sql.exec(`ALTER TABLE batch ADD COLUMN ${name} ${decl}`);
  const hasItem = new Set(sql.exec(`SELECT name FROM pragma_table_info('items')`).toArray().map((r) => String(r.name)));
  for (const [name, decl] of ITEM_COLUMNS) if (!hasItem.has(name)) sql.exec(`ALTER TABLE items ADD COLUMN ${name} ${decl}`);
  sql.exec(`
    CREATE INDEX IF NOT EXISTS items_sent ON items (state, sent_at);
    CREATE INDEX IF NOT EXISTS items_seq ON items (seq) WHERE seq IS NOT NULL;
    CREATE INDEX IF NOT EXISTS provider_items_batch ON provider_items (batch, idx);
    CREATE TRIGGER IF NOT EXISTS items_added AFTER INSERT ON items BEGIN
      UPDATE counts SET n = n + 1 WHERE state = new.state;
    END;
    CREATE TRIGGER IF NOT EXISTS items_moved AFTER UPDATE OF state ON items WHEN old.state <> new.state BEGIN
      UPDATE counts SET n = n - 1 WHERE state = old.state;
      UPDATE counts SET n = n + 1 WHERE state = new.state;
    END;
    -- A request's hold on maxCostUsd ends as it leaves its provider batch: final (its line's usd
    -- is in the sums in the same transaction), handed back, or sent again later.
    CREATE TRIGGER IF NOT EXISTS items_unheld AFTER UPDATE OF state ON items WHEN old.cost_hold > 0 AND new.state <> 'leased' BEGIN
      UPDATE batch SET held_pico = held_pico - old.cost_hold WHERE one = 1;
      UPDATE items SET cost_hold = 0 WHERE idx = new.idx;
    END;`);
}

/**
 * A batch object written before this layout (its state one JSON row in a \`meta\` table; no
 * sent_at, charged, counts) moves to it once, the first time it wakes up after the deploy.
 * @param {SqlStorage} sql
 */
function migrateMeta(sql) {
  if (sql.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).toArray().length === 0) return;
  const old = sql.exec(`SELECT v FROM meta WHERE k = 'batch'`).toArray()[0];
  sql.exec(`ALTER TABLE items ADD COLUMN sent_at INTEGER NOT NULL DEFAULT 0`);
  sql.exec(`ALTER TABLE items ADD COLUMN charged INTEGER NOT NULL DEFAULT 0`);
  sql.exec(`DROP INDEX IF EXISTS items_state`);
  if (old) {
    const m = JSON.parse(String(old.v));
    const { id, owner, provider, options, limiter, limiterKey, createdAt, expiresAt } = m;
    insertBatch(sql, { id, owner, provider, options, limiter, limiterKey, createdAt, expiresAt });
    sql.exec(`UPDATE batch SET started_at = ?, ended_at = ?, cancel_at = ?, deleted = ?, total = ?, seq = ?, relet = ?,
      redelivered = ?, last_claim_at = ?, next_send = ?, claimed_first = ? WHERE one = 1`, m.started ? (m.lastClaimAt ?? createdAt ?? 0) : null,
    m.endedAt ?? null, m.cancelAt ?? null, m.deleted ? 1 : 0, m.total ?? 0, m.seq ?? 0, m.relet ?? 0, m.redelivered ?? 0, m.lastClaimAt ?? 0,
    m.total ?? 0, m.total ?? 0); // the old layout sent every item at the start
    for (const r of sql.exec(`SELECT state, COUNT(*) AS n FROM items GROUP BY state`).toArray()) {
      sql.exec(`UPDATE counts SET n = ? WHERE state = ?`, r.n, r.state);
    }
  }
  sql.exec(`DROP TABLE meta`);
}

/** @param {SqlStorage} sql @returns {BatchRow | null} */
export function batchRow(sql) {
  const row = sql.exec(`SELECT * FROM batch WHERE one = 1`).toArray()[0];
  return row ? /** @type {BatchRow} */ ({ ...row, config: JSON.parse(String(row.config)) }) : null;
}

/** @param {SqlStorage} sql @param {BatchConfig} config */
export function insertBatch(sql, config) {
  sql.exec(`INSERT INTO batch (one, config) VALUES (1, ?)`, JSON.stringify(config));
  for (const s of STATES) sql.exec(`INSERT OR REPLACE INTO counts (state, n) VALUES (?, 0)`, s);
}

/** @param {SqlStorage} sql @returns {Record<ItemState, number>} */
export function readCounts(sql) {
  const counts = /** @type {Record<ItemState, number>} */ (Object.fromEntries(STATES.map((s) => [s, 0])));
  for (const r of sql.exec(`SELECT state, n FROM counts`)) counts[/** @type {ItemState} */ (r.state)] = Number(r.n);
  return counts;
}

/** Pico-dollars of an amount in dollars (exact for what a line carries: pico / 1e12). @param {number} usd */
export const pico = (usd) => Math.round(usd * 1e12);

/**
 * Gives items their final state and result line, numbered from `seq` on, and adds the lines'
 * dollars (`edgebatch.usd`; `usdIfRealtime`, else the same) to the batch's sums; returns the
 * last seq used (the caller stores it in the same transaction).
 * @param {SqlStorage} sql
 * @param {{ idx: number, custom_id: string, state: ItemState, result: object, edgebatch: { attempts: number, usd?: number, usdIfRealtime?: number } }[]} finals
 * @param {number} seq
 */
export function record(sql, finals, seq) {
  let usd = 0;
  let realtime = 0;
  for (const f of finals) {
    seq += 1;
    const line = JSON.stringify({ custom_id: f.custom_id, result: f.result, edgebatch: { ...f.edgebatch, seq } });
    sql.exec(`UPDATE items SET state = ?, result = ?, seq = ?, token = token + 1 WHERE idx = ?`, f.state, line, seq, f.idx);
    if (typeof f.edgebatch.usd === 'number') {
      usd += pico(f.edgebatch.usd);
      realtime += pico(f.edgebatch.usdIfRealtime ?? f.edgebatch.usd);
    }
  }
  sql.exec(`UPDATE batch SET seq = ?, usd_pico = usd_pico + ?, realtime_pico = realtime_pico + ? WHERE one = 1`, seq, usd, realtime);
  return seq;
}

/**
 * Every item matching `where` ends as `type` (canceled / expired) with no attempt; canceled by
 * the batch's maxCostUsd (`cost_capped`), its line says so (`error.kind: "cost_cap"`).
 * @param {SqlStorage} sql @param {string} where @param {'canceled' | 'expired'} type @param {unknown[]} args
 */
export function finishWhere(sql, where, type, ...args) {
  const rows = sql.exec(`SELECT idx, custom_id, attempts FROM items WHERE ${where} ORDER BY idx`, ...args).toArray();
  if (rows.length === 0) return;
  const b = sql.exec(`SELECT seq, cost_capped, cancel_at FROM batch WHERE one = 1`).one();
  const capped = type === 'canceled' && b.cancel_at === null && b.cost_capped !== null ? capError(String(b.cost_capped)) : null;
  record(sql, rows.map((r) => ({ idx: Number(r.idx), custom_id: String(r.custom_id), state: type, result: capped ? { type, error: capped } : { type },
    edgebatch: { attempts: Number(r.attempts), elapsedMs: 0 } })), Number(b.seq));
}

/** The error of a request that maxCostUsd kept from starting. @param {string} message */
export const capError = (message) => ({ kind: 'cost_cap', message, retryable: false });

/** Dollars as the cap's messages show them. @param {number} p pico-dollars */
export const dollars = (p) => (p / 1e12).toFixed(12).replace(/\.?0+$/, '');

/**
 * What is left of the batch's maxCostUsd for new work, in pico-dollars: the cap minus the
 * lines' dollars, what the requests at provider batches hold (their bounds, until their
 * lines replace them) and what a lost create's requests may have cost there; null without a
 * cap. @param {BatchRow} b
 */
export function costLeft(b) {
  return b.config.maxCostUsd === undefined ? null : Math.max(0, pico(b.config.maxCostUsd) - b.usd_pico - b.held_pico - b.unknown_pico);
}

/**
 * Each matching item's dollar bound (token-limits.js sizeBound: its JSON bytes as input tokens
 * at the model's dearest input rate, its max_tokens as output), read in SQL (no request parsed
 * in JS); `pico` null when its model has no price.
 * @param {SqlStorage} sql @param {string} where over items `i` (and `p`, provider_items)
 * @param {string} tail @param {'realtime' | 'provider_batch'} served
 * @returns {{ idx: number, pico: number | null, restOnly: boolean }[]}
 */
export function pricedItems(sql, where, tail, served) {
  const rows = sql.exec(`SELECT i.idx, json_extract(i.params, '$.model') AS model, length(CAST(i.params AS BLOB)) AS bytes,
    coalesce(json_extract(i.params, '$.max_tokens'), json_extract(i.params, '$.max_completion_tokens')) AS output,
    coalesce(json_array_length(i.params, '$.tools'), 0) AS tools, i.rest_only
    FROM items i LEFT JOIN provider_items p ON p.idx = i.idx WHERE ${where} ${tail}`).toArray();
  return rows.map((r) => {
    /** @type {number | null} */
    let pico = null;
    try {
      pico = sizeBound({ model: r.model, bytes: Number(r.bytes), tools: Number(r.tools) > 0, output: r.output }, served, 'a request');
    } catch {
      // No price for its model: no bound.
    }
    return { idx: Number(r.idx), pico, restOnly: Number(r.rest_only) === 1 };
  });
}

/** Whether one consumer run holds the whole rest of maxCostUsd now. @param {BatchRow} b @param {number} now */
export const restHeld = (b, now) => b.cost_hold !== null && b.cost_hold_until > now;

/**
 * What the consumer runs' slices of maxCostUsd hold now, in pico-dollars (a lapsed one, its
 * consumer gone, is dropped). @param {SqlStorage} sql @param {number} now
 */
export function slicedPico(sql, now) {
  sql.exec(`DELETE FROM cost_slices WHERE until <= ?`, now);
  return Number(sql.exec(`SELECT coalesce(sum(pico), 0) AS n FROM cost_slices`).one().n);
}

/**
 * What a claim of `indexes` (just leased) may spend of a batch's maxCostUsd; each grant is held
 * until the run settles (releaseHold) or its lease lapses:
 * - a slice, the claimed requests' bounds at the realtime price, while what is left (less the
 *   other runs' slices) covers them: runs on every consumer at once, and the library's cap
 *   never stops one of them for want of room (a bound is above the library's estimate);
 * - else the whole rest, to this run alone, once no other run holds anything: near the cap one
 *   run decides, so its cost_cap is final (ledger.js commit);
 * - else `busyUntil`: the claim waits (the consumer gives its items back).
 * A request a slice turned out too small for (a fallback's dearer model, a billed retry) is
 * marked rest_only: its next claim asks for the whole rest.
 * @param {SqlStorage} sql @param {BatchRow} b @param {number[]} indexes @param {number} now @param {number} leaseMs
 * @returns {{ hold: string, leftUsd: number, slice?: true } | { busyUntil: number }}
 */
export function grantCost(sql, b, indexes, now, leaseMs) {
  if (restHeld(b, now)) return { busyUntil: b.cost_hold_until };
  const sliced = slicedPico(sql, now);
  const left = Math.max(0, /** @type {number} */ (costLeft(b)) - sliced);
  const bounds = pricedItems(sql, `i.idx IN (${indexes.map((i) => Math.trunc(i)).join(',')})`, '', 'realtime');
  const need = bounds.some((r) => r.pico === null || r.restOnly) ? null : bounds.reduce((a, r) => a + /** @type {number} */ (r.pico), 0);
  const hold = crypto.randomUUID();
  if (need !== null && need <= left) {
    sql.exec(`INSERT INTO cost_slices (hold, pico, until) VALUES (?, ?, ?)`, hold, need, now + leaseMs);
    return { hold, leftUsd: need / 1e12, slice: true };
  }
  if (sliced > 0) {
    return { busyUntil: Number(sql.exec(`SELECT min(until) AS t FROM cost_slices`).one().t) };
  }
  sql.exec(`UPDATE batch SET cost_hold = ?, cost_hold_until = ? WHERE one = 1`, hold, now + leaseMs);
  return { hold, leftUsd: left / 1e12 };
}

/** A run's grant of maxCostUsd ends (its run settled). @param {SqlStorage} sql @param {string} hold */
export function releaseHold(sql, hold) {
  sql.exec(`DELETE FROM cost_slices WHERE hold = ?`, hold);
  sql.exec(`UPDATE batch SET cost_hold = NULL, cost_hold_until = 0 WHERE one = 1 AND cost_hold = ?`, hold);
}

/**
 * Requests going to a provider batch hold their bounds against maxCostUsd (items_unheld lets
 * each go). @param {SqlStorage} sql @param {{ idx: number, pico: number }[]} holds
 */
export function holdCost(sql, holds) {
  let sum = 0;
  for (const h of holds) {
    sql.exec(`UPDATE items SET cost_hold = ? WHERE idx = ?`, h.pico, h.idx);
    sum += h.pico;
  }
  sql.exec(`UPDATE batch SET held_pico = held_pico + ? WHERE one = 1`, sum);
}

/**
 * The batch stops at its maxCostUsd: the cap's message (naming it, what is spent and what is
 * left; kept from the first stop), every queued request canceled with it. Returns the message.
 * @param {SqlStorage} sql @param {number} now
 */
export function stopAtCap(sql, now) {
  const b = /** @type {BatchRow} */ (batchRow(sql));
  const max = pico(/** @type {number} */ (b.config.maxCostUsd));
  const message = `cost cap reached: this batch's maxCostUsd is $${dollars(max)}, $${dollars(b.usd_pico)} is spent ` +
    `and the next request could cost more than the $${dollars(Math.max(0, max - b.usd_pico))} left`;
  sql.exec(`UPDATE batch SET cost_capped = ? WHERE one = 1 AND cost_capped IS NULL`, message);
  finishWhere(sql, `state = 'queued'`, 'canceled');
  endIfDone(sql, now);
  return String(sql.exec(`SELECT cost_capped FROM batch WHERE one = 1`).one().cost_capped);
}

/** Ends the batch once no item is queued or leased. @param {SqlStorage} sql @param {number} now */
export function endIfDone(sql, now) {
  const c = readCounts(sql);
  if (c.queued + c.leased === 0) sql.exec(`UPDATE batch SET ended_at = ? WHERE one = 1 AND ended_at IS NULL`, now);
}
