// @ts-check
// One SQLite-backed Durable Object per batch: the ledger, and the only truth about it. Each
// item's state, lease and result live in its row; queue messages only say "work on these
// indexes". A consumer claims items (a lease whose token only grows), commits each result with
// that token (the first commit wins; a stale lease is refused), and the alarm puts back what a
// crashed consumer or a lost message left behind (redelivery.js), expires the batch and ends it.
//
// Item states: queued -> leased -> succeeded | errored | canceled | expired; leased -> queued
// (lease ran out, or the consumer gave it back to wait).
//
// Every state change is synchronous SQL in one transaction (ledger-sql.js); the awaits (the
// alarm's setAlarm, queue sends) come after it, and nothing read before an await is written
// after it: another call may run while this one waits (the input gate opens at a send).
import { DurableObject } from 'cloudflare:workers';
import { batchTimings } from '../config.js';
import { enqueueItems } from './queues.js';
import { batchRow, capError, createSchema, endIfDone, finishWhere, grantCost, insertBatch, readCounts, record, releaseHold, stopAtCap, WAIT_REASONS } from './ledger-sql.js';
import { pickResends, unsend } from './redelivery.js';
import { countClaims, NEVER_SENT, refill, unwindow } from './window.js';
import { holdForProvider, providerView } from './provider-batch-sql.js';
import { ProviderFollower, windowTimes } from './provider-batch.js';

/** A results page stops at this many bytes of lines (or at its row limit), one line at least. */
export const RESULTS_PAGE_BYTES = 1024 * 1024;
const utf8 = new TextEncoder();

/** @typedef {import('./ledger-sql.js').BatchConfig} BatchConfig */
/** @typedef {import('./ledger-sql.js').BatchRow} BatchRow */
/** @typedef {{ index: number, token: number, params: string, attempts: number, charged: boolean }} ClaimedItem */
/**
 * @typedef {object} CommitEntry
 * @property {number} index
 * @property {number} token
 * @property {{ type: 'succeeded', message: unknown } | { type: 'errored' | 'canceled', error: unknown }} result as the results line shows it
 *   (canceled: only a request the library's maxCostUsd kept from starting)
 * @property {number} attempts
 * @property {number} elapsedMs
 * @property {object} [usage]
 * @property {number} [usd] what it cost (the library's `usd`), when its model has a price
 */
/**
 * @typedef {{ hold: string, leftUsd: number, slice?: true } | { busyUntil: number }} CostGrant what a
 * claim of a batch with maxCostUsd gets (ledger-sql.js grantCost): a slice of it (its requests'
 * bounds: a cost_cap under it is not the batch's), or the whole rest, held by this claim alone
 * until it is released (so the library's cap rule decides over the whole rest, and its cost_cap
 * is final), or that other claims hold what it would need now
 */


export class BatchLedger extends DurableObject {
  /** @param {DurableObjectState} ctx @param {any} env */
  constructor(ctx, env) {
    super(ctx, env);
    /** @type {SqlStorage} */
    this.sql = ctx.storage.sql;
    createSchema(this.sql);
    /** A batch with `completionWindow`: its provider batches, followed by the alarm. */
    this.provider = new ProviderFollower(this.sql, (fn) => this.#tx(fn), env);
  }

  /** @template T @param {() => T} fn @returns {T} */
  #tx(fn) {
    return this.ctx.storage.transactionSync(fn);
  }

  /** @param {string} owner */
  #owned(owner) {
    const b = batchRow(this.sql);
    return b && b.config.owner === owner && !b.deleted && b.started_at !== null ? b : null;
  }

  /** The batch as the API shows it. @param {BatchRow} b */
  #view(b) {
    const c = readCounts(this.sql);
    const iso = (/** @type {number | null} */ ms) => (ms == null ? null : new Date(ms).toISOString());
    const rowWaits = b.waiting_reason !== null && (b.waiting_until ?? 0) > Date.now();
    const pv = b.config.completionWindowMs ? providerView(this.sql, b, windowTimes(b.config).cutoff) : null;
    return {
      id: b.config.id,
      type: 'batch',
      processing_status: b.ended_at !== null ? 'ended' : b.cancel_at !== null ? 'canceling' : 'in_progress',
      request_counts: { processing: c.queued + c.leased, succeeded: c.succeeded, errored: c.errored, canceled: c.canceled, expired: c.expired },
      created_at: iso(b.config.createdAt),
      expires_at: iso(b.config.expiresAt),
      ended_at: iso(b.ended_at),
      cancel_initiated_at: iso(b.cancel_at),
      results_url: `/v1/batches/${b.config.id}/results`,
      // Recovery at work: items whose lease lapsed (their consumer died) and items sent again
      // because their message was lost; and why the batch waits, while it does.
      edgebatch: {
        leases_lapsed: b.relet,
        redelivered: b.redelivered,
        ...(rowWaits && { waiting: { reason: b.waiting_reason, until: iso(b.waiting_until) } }),
        // Served by the provider's Batch API as the window allows (provider-batch.js).
        ...(pv && { completionWindow: b.config.completionWindow, providerBatches: pv.providerBatches }),
        // A window too short for the provider's turnaround (routes.js): realtime from the start.
        ...(!pv && b.config.completionWindow && { completionWindow: b.config.completionWindow, route: 'realtime' }),
        ...(!rowWaits && pv?.waiting && { waiting: { reason: pv.waiting.reason, until: iso(pv.waiting.until) } }),
        // The result lines' dollars, summed as they are committed (never a scan).
        cost: { usd: b.usd_pico / 1e12, usdIfRealtime: b.realtime_pico / 1e12,
          ...(b.config.maxCostUsd !== undefined && { maxCostUsd: b.config.maxCostUsd }),
          // What the requests at provider batches hold of it until their lines come (their bounds).
          ...(b.held_pico > 0 && { heldUsd: b.held_pico / 1e12 }),
          // What a provider batch whose create's outcome is unknown may have cost (its bounds).
          ...(b.unknown_pico > 0 && { unknownUsd: b.unknown_pico / 1e12 }) },
      },
    };
  }

  /**
   * Keeps one alarm set while the batch runs (also after a restart: any call re-arms it).
   * @param {boolean} [force] @param {number} [at] when (default: alarmMs from now)
   */
  async #arm(force = false, at = undefined) {
    const b = batchRow(this.sql);
    if (!b || b.started_at === null || b.ended_at !== null || b.deleted) return;
    if (force || (await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(at ?? Date.now() + batchTimings(this.env).alarmMs);
    }
  }

  // ---- creation: init, append (repeatedly), start; or discard ----

  /** @param {BatchConfig} config */
  async init(config) {
    this.#tx(() => {
      if (batchRow(this.sql)) throw new Error('batch already exists');
      insertBatch(this.sql, config);
    });
  }

  /**
   * Appends `rows` (params a JSON string); throws on a duplicate custom_id. Returns the total.
   * @param {{ custom_id: string, params: string }[]} rows
   */
  async append(rows) {
    return this.#tx(() => {
      const b = batchRow(this.sql);
      if (!b || b.started_at !== null) throw new Error('batch is not being created');
      let idx = b.total;
      for (const row of rows) {
        const added = this.sql.exec(`INSERT INTO items (idx, custom_id, params, sent_at) VALUES (?, ?, ?, ?) ON CONFLICT (custom_id) DO NOTHING RETURNING idx`,
          idx, row.custom_id, row.params, NEVER_SENT).toArray();
        if (added.length === 0) throw new Error(`duplicate custom_id ${JSON.stringify(row.custom_id)}`);
        idx++;
      }
      this.sql.exec(`UPDATE batch SET total = ? WHERE one = 1`, idx);
      return idx;
    });
  }

  /**
   * Starts the batch (again: a no-op that answers the view): the alarm is armed before the
   * first window of messages goes (window.js), so a send that fails, or a crash during it,
   * leaves the sending to the next claim or alarm, never a batch that nothing runs. A failed
   * send is logged, not thrown: the batch exists and will run.
   */
  async start() {
    const now = Date.now();
    const sent = this.#tx(() => {
      const b = batchRow(this.sql);
      if (!b || b.deleted) throw new Error('batch is not being created');
      if (b.started_at !== null) return null;
      this.sql.exec(`UPDATE batch SET started_at = ?, last_claim_at = ? WHERE one = 1`, now, now);
      // With a completionWindow the items wait for the alarm to submit them to the provider.
      if (b.config.completionWindowMs) holdForProvider(this.sql);
      return { id: b.config.id, window: refill(this.sql, now) };
    });
    await this.#arm(false, batchRow(this.sql)?.config.completionWindowMs ? now : undefined);
    if (sent) await this.#send(sent.id, sent.window, now);
    return this.#view(/** @type {BatchRow} */ (batchRow(this.sql)));
  }

  /**
   * Sends a refill of batch `id`'s window (after the transaction that chose it); a failed
   * send puts it back. @param {string} id @param {import('./window.js').Refill} sent @param {number} now
   */
  async #send(id, sent, now) {
    if (sent.indexes.length === 0) return;
    try {
      await enqueueItems(this.env, id, sent.indexes);
    } catch (err) {
      this.#tx(() => unwindow(this.sql, sent, now));
      console.error(`edgebatch ledger: sending ${sent.indexes.length} items of ${id} failed (sent again later): ${/** @type {Error} */ (err)?.message}`);
    }
  }

  async discard() {
    await this.ctx.storage.deleteAll();
  }

  // ---- the API ----

  /** @param {string} owner */
  async describe(owner) {
    const b = this.#owned(owner);
    if (!b) return null;
    const view = this.#view(b);
    await this.#arm();
    return view;
  }

  /**
   * Done items after `after` (a seq), in completion order: at most `limit` rows and
   * RESULTS_PAGE_BYTES of lines (one line at least); `more` when the page stopped at a bound.
   * @param {string} owner @param {number} after @param {number} limit
   * @returns {Promise<{ rows: { seq: number, line: string }[], ended: boolean, more: boolean } | null>}
   */
  async results(owner, after, limit) {
    const b = this.#owned(owner);
    if (!b) return null;
    const rows = [];
    let bytes = 0;
    let more = false;
    for (const r of this.sql.exec(`SELECT seq, result FROM items WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit + 1)) {
      const line = String(r.result);
      const size = utf8.encode(line).byteLength;
      if (rows.length === limit || (rows.length > 0 && bytes + size > RESULTS_PAGE_BYTES)) {
        more = true;
        break;
      }
      rows.push({ seq: Number(r.seq), line });
      bytes += size;
    }
    await this.#arm();
    return { rows, ended: b.ended_at !== null, more };
  }

  /** @param {string} owner */
  async cancel(owner) {
    if (!this.#owned(owner)) return null;
    const now = Date.now();
    this.#tx(() => {
      const first = this.sql.exec(`UPDATE batch SET cancel_at = ? WHERE one = 1 AND ended_at IS NULL AND cancel_at IS NULL RETURNING one`, now).toArray();
      if (first.length === 0) return;
      finishWhere(this.sql, `state = 'queued'`, 'canceled');
      endIfDone(this.sql, now);
    });
    const view = this.#view(/** @type {BatchRow} */ (batchRow(this.sql)));
    await this.#arm();
    return view;
  }

  /**
   * Deletes an ended batch: null if unknown, { conflict } if it is still running.
   * @param {string} owner
   */
  async remove(owner) {
    const b = this.#owned(owner);
    if (!b) return null;
    if (b.ended_at === null) return { conflict: true };
    // The rows go; a tombstone stays so the id stays a 404 rather than a fresh empty batch.
    this.#tx(() => {
      this.sql.exec(`DELETE FROM items`);
      this.sql.exec(`UPDATE counts SET n = 0`);
      this.sql.exec(`UPDATE batch SET deleted = 1 WHERE one = 1`);
    });
    await this.ctx.storage.deleteAlarm();
    return { id: b.config.id, type: 'batch_deleted' };
  }

  // ---- consumers ----

  /**
   * Leases the given items that are queued and due (or whose lease ran out) for `leaseMs`.
   * The batch is null once it is past expires_at, ended, canceling, stopped by its maxCostUsd
   * or deleted. A batch with maxCostUsd also answers `cost` (CostGrant) when items were claimed.
   * @param {number[]} indexes @param {number} leaseMs
   * @returns {Promise<{ batch: { id: string, provider: object, options: object, limiter: object, limiterKey: string, owner: string } | null,
   *   items: ClaimedItem[], cost?: CostGrant }>}
   */
  async claim(indexes, leaseMs) {
    const now = Date.now();
    const claimed = this.#tx(() => {
      const b = batchRow(this.sql);
      if (!b || b.started_at === null || b.ended_at !== null || b.cancel_at !== null || b.cost_capped !== null || b.deleted ||
        now >= b.config.expiresAt) {
        return { batch: null, items: [], sent: { indexes: [], from: 0, to: 0, skipped: 0 } };
      }
      /** @type {ClaimedItem[]} */
      const items = [];
      let mark = b.mark;
      let first = 0;
      for (const index of indexes) {
        if (!Number.isInteger(index)) continue;
        const row = this.sql.exec(
          `UPDATE items SET state = 'leased', token = token + 1, claims = claims + 1, lease_until = ?
           WHERE idx = ? AND not_before <= ? AND (state = 'queued' OR (state = 'leased' AND lease_until <= ?))
           RETURNING idx, token, params, attempts, charged, sent_at, claims`, now + leaseMs, index, now, now).toArray()[0];
        if (!row) continue;
        items.push({ index: Number(row.idx), token: Number(row.token), params: String(row.params), attempts: Number(row.attempts), charged: row.charged === 1 });
        if (Number(row.sent_at) < NEVER_SENT) mark = Math.max(mark, Number(row.sent_at));
        if (Number(row.claims) === 1) first++;
      }
      if (items.length > 0) {
        const waitOver = b.waiting_until !== null && now >= b.waiting_until;
        this.sql.exec(`UPDATE batch SET last_claim_at = ?, mark = ?${waitOver ? ', waiting_reason = NULL, waiting_until = NULL' : ''} WHERE one = 1`, now, mark);
        countClaims(this.sql, b, now, items.length, first);
      }
      /** @type {CostGrant | undefined} */
      let cost;
      if (b.config.maxCostUsd !== undefined && items.length > 0) cost = grantCost(this.sql, b, items.map((it) => it.index), now, leaseMs);
      const { id, provider, options, limiter, limiterKey, owner } = b.config;
      return { batch: { id, provider, options, limiter, limiterKey, owner }, items, cost, sent: refill(this.sql, now) };
    });
    if (claimed.batch) await this.#send(claimed.batch.id, claimed.sent, now);
    return { batch: claimed.batch, items: claimed.items, ...(claimed.cost && { cost: claimed.cost }) };
  }

  /** A claim's grant of maxCostUsd ends (its run settled). @param {string} hold */
  async releaseCost(hold) {
    this.#tx(() => releaseHold(this.sql, String(hold)));
  }

  /**
   * Commits results; one whose token is not the item's current lease is refused. A request
   * the library's cap kept from starting (`{ type: "canceled", error: { kind: "cost_cap" } }`)
   * counts only from the claim holding the rest of maxCostUsd (`hold`): its cap was the whole
   * rest, so nothing can start any more. The batch stops there: it and every queued request
   * end canceled with the cap's error, naming it.
   * @param {CommitEntry[]} results @param {string} [hold] the claim's CostGrant hold
   * @returns {Promise<{ accepted: number, refused: number }>}
   */
  async commit(results, hold) {
    const now = Date.now();
    return this.#tx(() => {
      const b = batchRow(this.sql);
      if (!b || b.deleted) return { accepted: 0, refused: results.length };
      const finals = [];
      const capped = [];
      for (const r of results) {
        const type = r?.result?.type;
        const cap = type === 'canceled' && /** @type {any} */ (r.result).error?.kind === 'cost_cap';
        if (type !== 'succeeded' && type !== 'errored' && !(cap && hold !== undefined && hold === b.cost_hold)) continue;
        const row = this.sql.exec(
          `UPDATE items SET attempts = attempts + ?, state = ? WHERE idx = ? AND token = ? AND state = 'leased'
           RETURNING idx, custom_id, attempts`, r.attempts, type, r.index, r.token).toArray()[0];
        if (!row) continue;
        if (cap) {
          capped.push({ idx: Number(row.idx), custom_id: String(row.custom_id), state: /** @type {const} */ ('canceled'),
            edgebatch: { attempts: Number(row.attempts), elapsedMs: 0 } });
          continue;
        }
        const cost = typeof r.usd === 'number' ? { usd: r.usd } : {};
        const edgebatch = { attempts: Number(row.attempts), elapsedMs: r.elapsedMs, ...(r.usage && { usage: r.usage }), route: 'realtime', ...cost };
        finals.push({ idx: Number(row.idx), custom_id: String(row.custom_id), state: type, result: r.result, edgebatch });
      }
      let seq = b.seq;
      if (finals.length > 0) seq = record(this.sql, finals, seq);
      if (capped.length > 0) {
        // The queued ones end first (stopAtCap), then these, still leased, with the same error.
        const error = capError(stopAtCap(this.sql, now));
        record(this.sql, capped.map((c) => ({ ...c, result: { type: 'canceled', error } })), Number(batchRow(this.sql)?.seq));
      }
      if (finals.length + capped.length > 0) endIfDone(this.sql, now);
      return { accepted: finals.length + capped.length, refused: results.length - finals.length - capped.length };
    });
  }

  /**
   * Gives leased items back to wait: queued again, claimable from `notBefore` (the consumer
   * sends their delayed message). `charged`: the token budget was charged for the item, never
   * again; `restOnly`: a slice of maxCostUsd was too small for it (ledger-sql.js grantCost).
   * The batch view shows `edgebatch.waiting: { reason, until }` (the longest wait ahead) until
   * `until` has passed or a claim from then on clears it.
   * @param {{ index: number, token: number, attempts: number, charged?: boolean, restOnly?: boolean }[]} entries
   * @param {number} notBefore epoch ms
   * @param {'token_budget' | 'limiter' | 'upstream_429' | 'cost_hold'} [reason]
   * @returns {Promise<number>} how many were given back
   */
  async unclaim(entries, notBefore, reason) {
    if (reason !== undefined && !WAIT_REASONS.includes(reason)) {
      throw new TypeError(`unclaim: reason must be one of ${WAIT_REASONS.join(', ')}, got ${JSON.stringify(reason)}`);
    }
    const now = Date.now();
    return this.#tx(() => {
      const b = batchRow(this.sql);
      if (!b || b.deleted) return 0;
      let n = 0;
      for (const e of entries) {
        n += this.sql.exec(
          `UPDATE items SET state = 'queued', not_before = ?, sent_at = ?, attempts = attempts + ?, charged = max(charged, ?),
             rest_only = max(rest_only, ?)
           WHERE idx = ? AND token = ? AND state = 'leased' RETURNING idx`,
          notBefore, notBefore, e.attempts ?? 0, e.charged ? 1 : 0, e.restOnly ? 1 : 0, e.index, e.token).toArray().length;
      }
      if (b.cancel_at !== null || b.cost_capped !== null) finishWhere(this.sql, `state = 'queued'`, 'canceled');
      else if (n > 0 && reason !== undefined) {
        // The longest wait still ahead is the one to show (a short one must not hide it).
        this.sql.exec(`UPDATE batch SET waiting_reason = ?, waiting_until = ?
          WHERE one = 1 AND (waiting_until IS NULL OR waiting_until <= ? OR waiting_until <= ?)`, reason, notBefore, now, notBefore);
      }
      endIfDone(this.sql, now);
      return n;
    });
  }

  /**
   * The dead-letter queue's verdict: items of a message that kept failing, not yet final.
   * @param {number[]} indexes @param {string} reason
   */
  async failDelivery(indexes, reason) {
    const now = Date.now();
    const error = { kind: 'delivery', message: `the work queue gave up on this request: ${reason}`, retryable: false };
    return this.#tx(() => {
      const b = batchRow(this.sql);
      if (!b || b.deleted || b.ended_at !== null) return 0;
      const finals = [];
      for (const index of indexes) {
        const row = this.sql.exec(
          `UPDATE items SET state = 'errored' WHERE idx = ? AND (state = 'queued' OR (state = 'leased' AND lease_until <= ?))
           RETURNING idx, custom_id, attempts`, index, now).toArray()[0];
        if (!row) continue;
        finals.push({ idx: Number(row.idx), custom_id: String(row.custom_id), state: /** @type {const} */ ('errored'),
          result: { type: 'errored', error }, edgebatch: { attempts: Number(row.attempts), elapsedMs: 0, route: 'realtime' } });
      }
      if (finals.length > 0) {
        record(this.sql, finals, b.seq);
        endIfDone(this.sql, now);
      }
      return finals.length;
    });
  }

  // ---- the alarm: provider batches, leases, lost messages, expiry, the end ----

  async alarm() {
    await this.provider.follow();
    const now = Date.now();
    const t = batchTimings(this.env);
    const plan = this.#tx(() => {
      const b = batchRow(this.sql);
      if (!b || b.started_at === null || b.deleted || b.ended_at !== null) return null;
      let resend = /** @type {number[]} */ ([]);
      if (now >= b.config.expiresAt) finishWhere(this.sql, `state IN ('queued', 'leased')`, 'expired');
      else if (b.cancel_at !== null || b.cost_capped !== null) finishWhere(this.sql, `state IN ('queued', 'leased') AND lease_until <= ?`, 'canceled', now);
      else resend = pickResends(this.sql, b, now, t.redeliverMs);
      endIfDone(this.sql, now);
      return { id: b.config.id, resend, sent: refill(this.sql, now) };
    });
    if (!plan) return;
    await this.#arm(true);
    await this.#send(plan.id, plan.sent, now);
    if (plan.resend.length === 0) return;
    try {
      await enqueueItems(this.env, plan.id, plan.resend);
    } catch (err) {
      this.#tx(() => unsend(this.sql, plan.resend, now));
      console.error(`edgebatch ledger: re-sending ${plan.resend.length} items of ${plan.id} failed (the next alarm tries again): ${/** @type {Error} */ (err)?.message}`);
    }
  }
}
