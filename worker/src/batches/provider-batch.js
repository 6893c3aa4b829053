// @ts-check
// Batches served by the provider's Batch API (`options.completionWindow`: Anthropic's Message
// Batches, OpenAI's Batch API), followed from the ledger's alarm: an upstream kind, not a
// second engine. The ledger stays the truth (provider-batch-sql.js); this file decides when,
// and an adapter per provider makes the calls (provider-anthropic.js, provider-openai.js: the
// body's framing and limits, create, retrieve, cancel, results read into one line shape).
//
// Each alarm (at most every providerPollMs per provider batch):
// - before the cutoff: the items still waiting are submitted, the provider's requests / bytes
//   limits at a time, or the operator's lower ones (chunkFrame; the body streamed from SQLite,
//   never held whole);
// - each provider batch is retrieved; once `ended`, its results JSONL is read line by line and
//   committed RESULT_CHUNK lines a transaction, so `?after=` followers see them as they come;
// - the cutoff is the start of the window's last HANDBACK_SHARE (20%): from then on, nothing
//   more goes to the provider, open provider batches are canceled there, and what they did not
//   finish (their `canceled` lines) goes to the realtime path. A proportional margin, not a
//   fixed one: the realtime rest needs time that grows with the batch while the window is the
//   only size the caller gave (20% of 24 h is 4.8 h; of 30 m, 6 minutes). A provider batch that
//   has not ended by the start of the last GIVE_UP_SHARE (10%) is left: its items go realtime
//   at once (a late line of it is refused by the lease token).
// Each succeeded line is priced by the library's table (the wasm's replyCost): `usd` at the
// batch discount, `usdIfRealtime` beside it.
// The token's hour pays for what goes to the provider as it does for realtime items: a chunk is
// only as big as acquirePart grants (an item charged once, however it is served in the end; a
// create is one subrequest); what does not fit waits for the hour (`waiting: token_budget`).
// With EDGEBATCH_USD_PER_HOUR its dollars too: a chunk is held at its requests' bound at the
// batch price (token-limits.js sizeBound) and, once made (or perhaps made), keeps that hold as
// its charge: its real cost comes hours later, past the hour it was charged to.
// Cache warming (Anthropic; warmsCache): a provider batch runs its requests in parallel, so
// those sharing a cached prefix all write the entry (1.25x the input price, 2x for 1 h) and
// few read it (0.1x). So before the first submission the waiting requests are grouped by the
// library's prefix key (the wasm's cacheKey, as `cacheAware` groups them); of each group of
// WARM_MIN_GROUP or more, the first request runs realtime (the work queue, the consumer, the
// limiter: an item like any other, its line `route: "realtime"`), and the rest are submitted
// once its line is final: they read the entry it wrote while it lives (its lifetime, 5 m or
// 1 h, renewed by each read). A primer late by primerWaitMs, or not succeeded, lets its group
// go cold (provider-batch-sql.js releaseGroups).
// With the batch's maxCostUsd, a chunk takes only the waiting requests whose bounds (the same
// sizeBound, at the batch price) fit what is left of it; each holds its bound in the ledger
// (ledger-sql.js holdCost) until its line, whose usd replaces it, comes (#admit, #lease).
// Keys stay here: the Worker's own upstream key, as the consumer uses it; errors are redacted.
import * as edgebatch from '../../pkg/edgebatch.js';
import { batchTimings, readConfig, UPSTREAMS } from '../config.js';
import { redactor, secretsOf } from '../auth.js';
import { tokenLimits } from '../token-limits.js';
import { batchRow, costLeft, holdCost, pricedItems, restHeld, slicedPico, stopAtCap } from './ledger-sql.js';
import { NEVER_SENT, rewind } from './window.js';
import { AWAIT_PROVIDER, CLOSED, bodyPage, commitLines, handBack, handBackWaiting, held, leaseChunk, markCharged,
  noteStatus, submitted, unsubmit, waitingToSubmit } from './provider-batch-sql.js';
import { ProviderError, RETRY_LATER } from './provider-call.js';
import { anthropicApi } from './provider-anthropic.js';
import { openaiApi } from './provider-openai.js';
import { grouped, keyPage, noteKeys, releaseGroups, startPrimers, warmingSchema } from './provider-batch-sql.js';

export const HANDBACK_SHARE = 0.2;
export const GIVE_UP_SHARE = 0.1;
/** Provider batches submitted per alarm at most (each up to 100,000 requests). */
const SUBMITS_PER_ALARM = 4;
/** Results lines committed per ledger transaction. */
const RESULT_CHUNK = 100;
/** Create-body lines read from SQLite at a time. */
const BODY_PAGE = 200;
/**
 * No new create once one alarm has spent this long creating (a create may still take minutes):
 * an alarm has 15 minutes, and the results reads come after.
 */
const CREATE_BUDGET_MS = 60_000;
/** The providers with a Batch API adapter. */
export const BATCH_PROVIDERS = ['anthropic', 'openai'];
/**
 * The smallest prefix group that gets a primer. With P the prefix's input price and s the
 * rest of one request's, warming costs 0.625P + 0.5s more than a cold provider batch that
 * writes the entry once (the primer at the realtime price, not half; 1 h: P + 0.5s), and
 * saves 0.575P (1 h: 0.95P) for each more write the cold batch makes: it pays from 3 cold
 * writes. A provider runs a batch's requests in parallel, so a cold group writes about once
 * per request that starts before the first write began: most groups of 4 or more do.
 */
export const WARM_MIN_GROUP = 4;
/** A group waits for its primer at most this long (and at most PRIMER_WAIT_SHARE of the window). */
const PRIMER_WAIT_MS = 600_000;
const PRIMER_WAIT_SHARE = 0.1;
/** Requests read at a time to key their prefixes. */
const KEY_PAGE = 500;

/**
 * Whether a batch's prefix groups are warmed before they go to the provider: Anthropic's API
 * (its cache_control marks; OpenAI caches on its own with no write price) and `cacheAware` not
 * false. Whatever `cacheTtl`: see WARM_MIN_GROUP and worker/README.md for when it pays.
 * @param {{ provider: { name: string }, options: { cacheAware?: boolean } }} c a BatchConfig, or
 *   the parts of one at create (routes.js: the 1-hour default of a warmed batch)
 */
export function warmsCache(c) {
  return c.provider.name === 'anthropic' && c.options.cacheAware !== false;
}

/** @typedef {import('./ledger-sql.js').BatchRow} BatchRow */
/** @typedef {import('./provider-batch-sql.js').ProviderRow} ProviderRow */
/** @typedef {ReturnType<typeof anthropicApi>} Api what both adapters offer */

/**
 * When a batch with `completionWindow` stops sending to the provider, and when it stops
 * waiting for it. @param {import('./ledger-sql.js').BatchConfig} c
 */
export function windowTimes(c) {
  const w = Number(c.completionWindowMs);
  return { cutoff: c.createdAt + Math.floor(w * (1 - HANDBACK_SHARE)), giveUp: c.createdAt + Math.floor(w * (1 - GIVE_UP_SHARE)) };
}

/**
 * `"30m"`, `"4h"`, `"24h"` (a whole number of s, m or h) in ms; null when it is not one.
 * @param {unknown} v
 */
export function parseWindow(v) {
  const m = typeof v === 'string' ? /^([1-9][0-9]{0,5})(s|m|h)$/.exec(v) : null;
  return m ? Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[/** @type {'s' | 'm' | 'h'} */ (m[2])] : null;
}

/**
 * What a failed create means for its items. `retry` (they wait for the next create) only when
 * the provider surely made nothing: it said so (RETRY_LATER), or the body never reached its
 * end, so no complete request left this object. `refused`: another 4xx, or a redirect. Else
 * `lost` (they run realtime): a 5xx, a timeout or a connection broken after the whole body
 * went may have made the batch there, and a second create would run and bill them twice.
 * @param {unknown} err @param {boolean} wholeBodyRead
 * @returns {'retry' | 'refused' | 'lost'}
 */
export function createOutcome(err, wholeBodyRead) {
  if (err instanceof ProviderError && RETRY_LATER.includes(err.status)) return 'retry';
  if (err instanceof ProviderError && !err.retryable) return 'refused';
  // An adapter's step before anything that could make a batch (OpenAI's file upload).
  if (/** @type {any} */ (err)?.beforeCreate === true) return 'retry';
  return wholeBodyRead ? 'lost' : 'retry';
}

/**
 * The largest provider batch this Worker makes: the provider's limits (the adapter's frame:
 * Anthropic 100,000 requests / 256 MB of body, OpenAI 50,000 / 200 MB), or the operator's
 * lower ones, EDGEBATCH_PROVIDER_BATCH_MAX_REQUESTS and EDGEBATCH_PROVIDER_BATCH_MAX_BYTES.
 * Smaller provider batches cost the same and end sooner (a provider batch's results are read
 * once all of it has ended), and each create uploads less in its alarm; a key whose tier caps
 * the requests queued at the provider wants them smaller too (config.js batchTimings).
 * @param {import('../config.js').BatchTimings} t @param {import('./provider-batch-sql.js').Frame} frame
 * @returns {import('./provider-batch-sql.js').Frame}
 */
function chunkFrame(t, frame) {
  return { ...frame, maxRequests: Math.min(frame.maxRequests, t.providerBatchMaxRequests), maxBytes: Math.min(frame.maxBytes, t.providerBatchMaxBytes) };
}

/**
 * The adapter of the batch's provider, its frame within the operator's limits (chunkFrame).
 * @param {import('./ledger-sql.js').BatchConfig['provider']} p @param {string} apiKey @param {(s: string) => string} redact
 * @param {import('../config.js').BatchTimings} t
 * @returns {Api}
 */
function adapterOf(p, apiKey, redact, t) {
  const api = p.name === 'openai' ? openaiApi(p, apiKey, redact) : anthropicApi(p, apiKey, redact);
  return { ...api, frame: chunkFrame(t, api.frame) };
}

/**
 * A line's dollars at the library's prices: `usd` at the batch discount, `usdIfRealtime`.
 * @param {import('./provider-batch-sql.js').ResultLine} line
 */
function priced(line) {
  // The Worker's build only (cargo feature `limiter`), as `Limiter`: not in the package's types.
  const pico = line.type === 'succeeded' ? /** @type {any} */ (edgebatch).replyCost(line.message) : undefined;
  return pico ? { ...line, usd: pico[1] / 1e12, usdIfRealtime: pico[0] / 1e12 } : line;
}

/** Follows one ledger's provider batches; one run at a time per object. */
export class ProviderFollower {
  /**
   * @param {SqlStorage} sql
   * @param {<T>(fn: () => T) => T} tx the ledger's transactionSync
   * @param {any} env
   */
  constructor(sql, tx, env) {
    this.sql = sql;
    this.tx = tx;
    this.env = env;
    this.running = false;
    /** No create before this (ms): a create that failed and may work later waits a poll. */
    this.createAfter = 0;
  }

  /** One alarm's turn; failures are logged (redacted) and left to the next alarm. */
  async follow() {
    if (this.running) return;
    this.running = true;
    const redact = redactor(secretsOf(this.env));
    try {
      await this.#follow(redact);
    } catch (err) {
      console.error(`edgebatch ledger: following provider batches failed (tried again at the next alarm): ${redact(String(/** @type {any} */ (err)?.message ?? err))}`);
    } finally {
      this.running = false;
    }
  }

  /** @param {(s: string) => string} redact */
  async #follow(redact) {
    const b = batchRow(this.sql);
    if (!b || !b.config.completionWindowMs || b.started_at === null || b.deleted) return;
    const now = Date.now();
    const t = batchTimings(this.env);
    const { cutoff, giveUp } = windowTimes(b.config);
    const stopping = b.ended_at !== null || b.cancel_at !== null || now >= b.config.expiresAt || now >= cutoff;
    const api = adapterOf(b.config.provider, apiKeyOf(this.env, b.config.provider), redact, t);
    // A create that was under way when the object last stopped: its outcome is unknown, its
    // items go realtime (were it made after all, its lines are refused by the lease token).
    for (const r of this.#rows().filter((x) => x.status === 'submitting')) this.tx(() => unsubmit(this.sql, b, r.n, 'lost', now));
    if (!stopping && warmsCache(b.config)) this.#warm(b.config, now);
    if (stopping) this.tx(() => handBackWaiting(this.sql, /** @type {BatchRow} */ (batchRow(this.sql)), now));
    else if (now >= this.createAfter) {
      for (let i = 0; i < SUBMITS_PER_ALARM && Date.now() < now + CREATE_BUDGET_MS; i++) {
        const lease = await this.#charge(b, t.leaseMs, this.tx(() => this.#admit(api.frame.maxRequests)));
        if (!lease) break;
        /** @type {{ n: number, items: number, bytes: number } | null} */
        let chunk = null;
        /** @type {'made' | 'retry' | 'refused' | 'lost'} until it is known, as if it may have been made */
        let outcome = 'lost';
        try {
          // Each create may take minutes: a chunk's lease and submitted_at start with it.
          const at = Date.now();
          chunk = this.tx(() => this.#lease(at, at + t.leaseMs, api.frame));
          if (chunk) outcome = await this.#submit(api, chunk, b.config.expiresAt, t.providerPollMs, redact);
        } finally {
          // Also when the chunk could not be leased: the hour's lease must not be left held. Its
          // dollars: the chunk's bound when it was (or may have been) made, else nothing.
          const usdPico = chunk && (outcome === 'made' || outcome === 'lost') ? this.#bounds(`p.batch = ${chunk.n}`).reduce((a, x) => a + x, 0) : 0;
          await lease.release(chunk ? 1 : 0, usdPico);
        }
        if (outcome !== 'made') break;
      }
    }
    for (const r of this.#rows()) {
      if (CLOSED.includes(r.status) || r.id === null) continue;
      try {
        await this.#followOne(api, r, stopping, giveUp, t.providerPollMs, redact);
      } catch (err) {
        console.error(`edgebatch ledger: following provider batch ${r.id} failed (tried again later): ${redact(String(/** @type {any} */ (err)?.message ?? err))}`);
      }
    }
  }

  /**
   * One provider batch: canceled there when the batch stops, retrieved every pollMs, read
   * once ended (a read that fails is tried again a pollMs later), given up past `giveUp`,
   * whether or not it has ended: an ended batch whose results cannot be read counts too.
   * @param {Api} api @param {ProviderRow} r @param {boolean} stopping
   * @param {number} giveUp @param {number} pollMs @param {(s: string) => string} redact
   */
  async #followOne(api, r, stopping, giveUp, pollMs, redact) {
    const id = /** @type {string} */ (r.id);
    const row = /** @type {BatchRow} */ (batchRow(this.sql));
    const over = row.ended_at !== null || Date.now() >= row.config.expiresAt;
    if ((stopping || row.cancel_at !== null || over) && !r.cancel_sent && r.status !== 'ended') {
      // Marked sent (at when it went, for the view) only once it was: a cancel that failed is
      // sent again at the next alarm.
      const at = Date.now();
      const sent = await api.cancel(id).then(() => true, (err) => {
        if (api.alreadyEnded(err)) return true;
        console.error(`edgebatch ledger: canceling provider batch ${id} failed (tried again later): ${redact(String(err?.message ?? err))}`);
        return false;
      });
      if (sent) this.tx(() => this.sql.exec(`UPDATE provider_batches SET cancel_sent = ?, polled_at = 0 WHERE n = ?`, at, r.n));
    }
    if (over) {
      // The ledger expired (or ended) its items itself.
      this.tx(() => this.sql.exec(`UPDATE provider_batches SET status = 'abandoned' WHERE n = ?`, r.n));
      return;
    }
    const fresh = this.sql.exec(`SELECT polled_at FROM provider_batches WHERE n = ?`, r.n).one();
    if (Date.now() - Number(fresh.polled_at) < pollMs) {
      if (Date.now() >= giveUp) this.#giveUp(r);
      return;
    }
    try {
      const pb = r.status === 'ended' ? { status: 'ended', counts: JSON.parse(r.counts ?? 'null') } : await api.retrieve(id);
      this.tx(() => noteStatus(this.sql, r.n, pb.status, pb.counts, Date.now()));
      if (pb.status === 'ended') await this.#read(api, r, redact);
      else if (Date.now() >= giveUp) this.#giveUp(r);
    } catch (err) {
      // A retrieve or a read that failed: tried again a pollMs later, until the give-up time.
      this.tx(() => this.sql.exec(`UPDATE provider_batches SET polled_at = ? WHERE n = ?`, Date.now(), r.n));
      if (Date.now() >= giveUp) this.#giveUp(r);
      throw err;
    }
  }

  /**
   * Charges the token's hour for the next chunk's items (those not charged yet) and one
   * create; null when nothing waits or nothing fits now (then the batch waits for the hour).
   * @param {BatchRow} b @param {number} leaseMs @param {number} maxRequests the provider's per batch
   * @returns {Promise<{ release: (subrequests: number, usdPico: number) => Promise<unknown> } | null>}
   */
  async #charge(b, leaseMs, maxRequests) {
    const want = waitingToSubmit(this.sql, maxRequests);
    if (want.items === 0) return null;
    const owner = tokenLimits(this.env, b.config.owner);
    // With a dollar limit, each waiting item's hold, in the order markCharged takes them.
    const usdPico = readConfig(this.env).limits.usdPerHour === null ? []
      : this.#bounds(`i.state = 'queued' AND i.sent_at = ${AWAIT_PROVIDER}`, `ORDER BY i.charged DESC, i.idx LIMIT ${want.items}`);
    // acquirePart asks one subrequest per item; all but the create's one go back at release.
    const spend = await owner.acquirePart({ items: want.items, uncharged: want.uncharged, subrequests: want.items, usdPico, leaseMs });
    if (!spend.ok) {
      this.createAfter = Date.now() + spend.retryAfterMs;
      this.tx(() => this.sql.exec(`UPDATE batch SET waiting_reason = 'token_budget', waiting_until = ? WHERE one = 1`, this.createAfter));
      return null;
    }
    this.tx(() => markCharged(this.sql, spend.items));
    return { release: (subrequests, usd) => owner.release(spend.lease, { subrequests, usdPico: usd }).catch(() => {}) };
  }

  /**
   * Each matching item's dollar bound for the token's hour (#priced); none without
   * EDGEBATCH_USD_PER_HOUR. A model without a price counts as more than the hour (it never
   * goes; realtime ends it, naming the model).
   * @param {string} where over items `i` (and `p`, provider_items) @param {string} [tail]
   * @returns {number[]}
   */
  #bounds(where, tail = '') {
    const { limits } = readConfig(this.env);
    if (limits.usdPerHour === null) return [];
    const never = Math.round(limits.usdPerHour * 1e12) + 1;
    return this.#priced(where, tail).map((r) => r.pico ?? never);
  }

  /**
   * Each matching item's dollar bound at the batch price (ledger-sql.js pricedItems).
   * @param {string} where over items `i` (and `p`, provider_items) @param {string} [tail]
   */
  #priced(where, tail = '') {
    return pricedItems(this.sql, where, tail, 'provider_batch');
  }

  /**
   * maxCostUsd at submission (without a cap: `max`): how many of the next `max` waiting
   * requests, in the order the token's hour takes them, fit what is left of the cap at their
   * bounds at the batch price (spent + held + these <= cap; a prefix, as the realtime cap asks
   * of the next request). When none fits: while requests at provider batches hold part of the
   * cap (their lines usually cost less) or consumer runs hold the rest or slices of it, they wait; else the
   * batch stops at its cap, every waiting request canceled with kind cost_cap. A request whose
   * model has no price cannot be bounded: it goes realtime, where the library's cap ends it
   * (kind invalid, naming the model). Inside a transaction. @param {number} max
   */
  #admit(max) {
    const b = /** @type {BatchRow} */ (batchRow(this.sql));
    const now = Date.now();
    const capLeft = costLeft(b);
    if (capLeft === null) return max;
    if (b.cost_capped !== null || restHeld(b, now)) return 0;
    // Less what consumer runs hold as slices of it (ledger-sql.js grantCost).
    const sliced = slicedPico(this.sql, now);
    const left = Math.max(0, capLeft - sliced);
    const rows = this.#priced(`i.state = 'queued' AND i.sent_at = ${AWAIT_PROVIDER}`, `ORDER BY i.charged DESC, i.idx LIMIT ${max}`);
    const unpriced = rows.filter((r) => r.pico === null).map((r) => r.idx);
    for (const idx of unpriced) this.sql.exec(`UPDATE items SET sent_at = ? WHERE idx = ?`, NEVER_SENT, idx);
    if (unpriced.length > 0) rewind(this.sql, Math.min(...unpriced));
    let fit = 0;
    let sum = 0;
    for (const r of rows) {
      if (r.pico === null) continue;
      if (sum + r.pico > left) break;
      sum += r.pico;
      fit++;
    }
    if (fit === 0 && unpriced.length < rows.length && b.held_pico === 0 && sliced === 0) stopAtCap(this.sql, now);
    return fit;
  }

  /**
   * Leases the next chunk (provider-batch-sql.js leaseChunk), as many requests as #admit lets
   * go, each holding its bound against maxCostUsd until its line replaces it. Inside a transaction.
   * @param {number} now @param {number} leaseUntil @param {import('./provider-batch-sql.js').Frame} frame
   */
  #lease(now, leaseUntil, frame) {
    const max = this.#admit(frame.maxRequests);
    if (max === 0) return null;
    const chunk = leaseChunk(this.sql, now, leaseUntil, { ...frame, maxRequests: max });
    if (chunk && batchRow(this.sql)?.config.maxCostUsd !== undefined) {
      holdCost(this.sql, this.#priced(`p.batch = ${chunk.n}`).map((r) => ({ idx: r.idx, pico: r.pico ?? 0 })));
    }
    return chunk;
  }

  /** @returns {ProviderRow[]} */
  #rows() {
    return /** @type {ProviderRow[]} */ (this.sql.exec(`SELECT * FROM provider_batches ORDER BY n`).toArray());
  }

  /**
   * Cache warming's turn (before any submission): the waiting requests grouped by prefix once
   * (their keys noted a page at a time), primers handed to the realtime path; each turn, the
   * groups whose primer is over released to the provider.
   * @param {import('./ledger-sql.js').BatchConfig} c @param {number} now
   */
  #warm(c, now) {
    warmingSchema(this.sql);
    if (!grouped(this.sql)) {
      for (let after = -1; ;) {
        const page = keyPage(this.sql, after, KEY_PAGE);
        /** @type {{ idx: number, key: string }[]} */
        const keys = [];
        for (const r of page) {
          // The Worker's build only (cargo feature `limiter`), as replyCost. Stored params are JSON.
          const key = /** @type {any} */ (edgebatch).cacheKey(JSON.parse(r.params));
          if (typeof key === 'string') keys.push({ idx: r.idx, key });
        }
        this.tx(() => noteKeys(this.sql, keys));
        if (page.length < KEY_PAGE) break;
        after = page[page.length - 1].idx;
      }
      this.tx(() => startPrimers(this.sql, WARM_MIN_GROUP, now));
    }
    const waitMs = Math.min(PRIMER_WAIT_MS, Number(c.completionWindowMs) * PRIMER_WAIT_SHARE);
    this.tx(() => releaseGroups(this.sql, now, waitMs));
  }

  /** @param {ProviderRow} r */
  #giveUp(r) {
    this.tx(() => {
      handBack(this.sql, /** @type {BatchRow} */ (batchRow(this.sql)), held(this.sql, r.n), Date.now());
      this.sql.exec(`UPDATE provider_batches SET status = 'abandoned' WHERE n = ?`, r.n);
    });
  }

  /**
   * Creates provider batch `chunk` there: `made`, or why not (createOutcome).
   * @param {Api} api @param {{ n: number, items: number, bytes: number }} chunk
   * @param {number} leaseUntil @param {number} pollMs @param {(s: string) => string} redact
   * @returns {Promise<'made' | 'retry' | 'refused' | 'lost'>}
   */
  async #submit(api, chunk, leaseUntil, pollMs, redact) {
    const body = this.#body(chunk, api.frame);
    try {
      const made = await api.create(body.stream, chunk.bytes);
      this.tx(() => submitted(this.sql, chunk.n, made, Date.now(), leaseUntil));
      return 'made';
    } catch (err) {
      const how = createOutcome(err, body.whole());
      this.tx(() => unsubmit(this.sql, /** @type {BatchRow} */ (batchRow(this.sql)), chunk.n, how, Date.now()));
      if (how === 'retry') this.createAfter = Date.now() + pollMs;
      const then = { retry: 'tried again later', refused: 'they run realtime', lost: 'it may have been made there: they run realtime, not sent again' }[how];
      console.error(`edgebatch ledger: creating a provider batch of ${chunk.items} requests failed (${then}): ` +
        `${redact(String(/** @type {any} */ (err)?.message ?? err))}`);
      return how;
    }
  }

  /**
   * The create body of `chunk`, read from SQLite a page at a time as the upload pulls it;
   * `whole()`: whether its last bytes were read (before that, no complete request went).
   * @param {{ n: number }} chunk @param {import('./provider-batch-sql.js').Frame} frame
   */
  #body(chunk, frame) {
    const enc = new TextEncoder();
    let after = -1;
    let first = true;
    let done = false;
    const stream = new ReadableStream({
      pull: (controller) => {
        if (done) return controller.close();
        const page = bodyPage(this.sql, chunk.n, after, BODY_PAGE, frame.prefix);
        let text = first ? frame.open : '';
        if (page.length > 0) {
          text += (first ? '' : frame.sep) + page.map((p) => p.line).join(frame.sep);
          after = page[page.length - 1].idx;
          first = false;
        }
        if (page.length < BODY_PAGE) {
          text += frame.close;
          done = true;
        }
        controller.enqueue(enc.encode(text));
      },
    }, { highWaterMark: 0 }); // read when the upload asks, not ahead: whole() then says what could have gone
    return { stream, whole: () => done };
  }

  /**
   * Reads an ended provider batch's results and commits them as they come.
   * @param {Api} api @param {ProviderRow} r @param {(s: string) => string} redact
   */
  async #read(api, r, redact) {
    /** @type {import('./provider-batch-sql.js').ResultLine[]} */
    let lines = [];
    const flush = () => {
      const chunk = lines;
      lines = [];
      this.tx(() => commitLines(this.sql, /** @type {BatchRow} */ (batchRow(this.sql)), r.n, chunk, Date.now() - r.submitted_at, redact, Date.now()));
    };
    for await (const line of api.results(/** @type {string} */ (r.id))) {
      lines.push(priced(line));
      if (lines.length >= RESULT_CHUNK) flush();
    }
    flush();
    // Whatever the file did not account for runs realtime.
    this.#giveUp(r);
    this.tx(() => this.sql.exec(`UPDATE provider_batches SET status = 'read' WHERE n = ?`, r.n));
  }
}

/**
 * The Worker's key for the batch's upstream (the simulator's needs none), as the consumer's.
 * @param {any} env @param {import('./ledger-sql.js').BatchConfig['provider']} p
 */
function apiKeyOf(env, p) {
  return p.sim ? 'sim-key' : String(env[UPSTREAMS[/** @type {'anthropic' | 'openai'} */ (p.name)]?.keyVar] ?? '');
}
