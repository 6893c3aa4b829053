// @ts-check
// Per-token limits, held across isolates: one SQLite Durable Object per token name
// (`env.TOKEN_LIMITS.idFromName(name)`), so every invocation anywhere sees the same counts.
// It limits concurrent batches (leases that expire, so a crashed invocation cannot hold a slot
// for ever), items and subrequests per sliding hour, and keeps the token's usage (batches,
// items, requests, subrequests, input and output tokens, dollars) for GET /v1/usage.
//
// Dollars per sliding hour (EDGEBATCH_USD_PER_HOUR, off unless set) bound a leaked token in
// the unit the bill is in. A reply's cost is known only once it came, so a grant HOLDS the
// most its requests can cost (requestBound: a token per byte of the request's JSON at the
// model's dearest input rate, `max_tokens` of output), and its release puts what they did cost
// in its place. Holds count against the hour like spending, so two runs of one token cannot
// both take the same dollars: the budget hold across batches. What never reports a cost (a
// lease that lapsed: its invocation died; a chunk sent to a provider's Batch API, whose results
// come hours later) stays at its hold, never below what it can have cost.
//
// API (RPC on the stub; also what /v1/batches calls):
//   acquire({ batches = 1, items = 0, subrequests = items, usdPico = 0, leaseMs }) ->
//       { ok: true, lease, subrequests, expiresAt }   subrequests: what was granted: at least
//                                                     `items`, at most the asked number and
//                                                     a fair share (what is left of the hour
//                                                     / the free batch slots)
//     | { ok: false, limit, message, retryAfterMs }   limit: concurrent_batches |
//                                                     items_per_hour | subrequests_per_hour |
//                                                     usd_per_hour; usdPico: the hold
//   acquirePart({ items, uncharged = items, subrequests = items, usdPico = [], leaseMs }) ->
//                                                     (stored batches; usdPico: each item's hold)
//       { ok: true, lease, items: k, charged, subrequests, expiresAt, restAfterMs }   k >= 1: run
//                                                     the first k of the claimed items, the
//                                                     already charged ones first; `charged` of
//                                                     them were charged now; the rest may run in
//                                                     restAfterMs; no concurrent-batch slot taken;
//                                                     as many as their holds fit the dollars
//     | { ok: false, limit, message, retryAfterMs }   nothing fits now; retryAfterMs: when one
//                                                     item will (never null)
//   renew(lease, leaseMs)                    -> { ok, expiresAt }   (a long batch keeps its slot)
//   record({ requests, inputTokens, outputTokens })                  usage so far, lease kept
//   release(lease, { subrequests, requests, inputTokens, outputTokens, usdPico })   frees the
//       slot; the unused part of the granted subrequests goes back to the hour; usdPico (what
//       the work cost) replaces the grant's dollar hold (absent: the hold counts as spent)
//   usage() -> { limits, now: { batches, itemsLastHour, subrequestsLastHour }, total: {...},
//       usd: { perHour, lastHour, total } }   dollars; lastHour includes the holds
// ttlBudget(limits, ttlMs) (not RPC): how many requests a stored batch may hold, so that create
// refuses one its token cannot send before it expires.
// Each call runs alone on the object (its SQL is synchronous), so check-and-take is atomic.
import { DurableObject } from 'cloudflare:workers';
import * as edgebatch from '../pkg/edgebatch.js';
import { readConfig } from './config.js';
import { HttpError } from './http.js';

/**
 * @typedef {{ concurrentBatches: number, itemsPerHour: number, subrequestsPerHour: number, usdPerHour: number | null }} Limits
 * @typedef {'concurrent_batches' | 'items_per_hour' | 'subrequests_per_hour' | 'usd_per_hour'} LimitName
 * @typedef {{ ok: false, limit: LimitName, message: string, retryAfterMs: number | null }} Refusal
 * @typedef {{ ok: true, lease: string, subrequests: number, expiresAt: number }} Grant
 * @typedef {{ ok: true, lease: string, items: number, charged: number, subrequests: number, expiresAt: number, restAfterMs: number }} PartGrant
 * @typedef {{ subrequests?: number, requests?: number, inputTokens?: number, outputTokens?: number, usdPico?: number }} Usage
 */

const HOUR_MS = 3_600_000;
/** A lease outlives the longest /v1/batch (deadline 900 s) by a minute unless renewed. */
export const DEFAULT_LEASE_MS = 960_000;
/** When to try again after the concurrency limit: a guess, batches do not say when they end. */
export const CONCURRENT_RETRY_MS = 5_000;
/** Pico-dollars in a dollar: the hour's dollars are integers, so its sums are exact. */
const PICO = 1e12;
/** Input tokens a request with tools may use beyond its bytes (the provider's tool-use prompt). */
const TOOLS_ALLOWANCE = 1_000;
/** Dollars in a message. @param {number} pico */
const shown = (pico) => `$${Number((pico / PICO).toFixed(6))}`;

/**
 * @param {string} name
 * @param {unknown} v
 * @returns {number}
 */
const count = (name, v) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new TypeError(`${name} must be a non-negative integer, got ${v}`);
  return v;
};

export class TokenLimits extends DurableObject {
  /**
   * @param {DurableObjectState} ctx
   * @param {Record<string, any>} env
   */
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, batches INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS spend (id INTEGER PRIMARY KEY AUTOINCREMENT, lease TEXT NOT NULL, at INTEGER NOT NULL,
        items INTEGER NOT NULL, subrequests INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), batches INTEGER, items INTEGER,
        requests INTEGER, subrequests INTEGER, input_tokens INTEGER, output_tokens INTEGER);
      INSERT OR IGNORE INTO totals (id, batches, items, requests, subrequests, input_tokens, output_tokens) VALUES (0, 0, 0, 0, 0, 0, 0);`);
    // Dollars, in pico-dollars: added to objects made before them (so the INSERT above names
    // its columns: a constructor runs again on every object that has the column already).
    for (const table of ['spend', 'totals']) {
      const has = this.sql.exec(`SELECT 1 FROM pragma_table_info('${table}') WHERE name = 'usd'`).toArray().length > 0;
      if (!has) this.sql.exec(`ALTER TABLE ${table} ADD COLUMN usd INTEGER NOT NULL DEFAULT 0`);
    }
  }

  /** @returns {Limits} */
  limits() {
    return readConfig(/** @type {Record<string, any>} */ (this.env)).limits;
  }

  /**
   * /v1/batch: a concurrent-batch slot, all of `items`, and up to `subrequests` (at least one
   * per item) of the hour, or a refusal (`retryAfterMs` null: it can never fit).
   * `usdPico`: the most the batch can cost (requestBound), held until release.
   * @param {{ batches?: number, items?: number, subrequests?: number, usdPico?: number, leaseMs?: number }} [ask]
   * @returns {Grant | Refusal}
   */
  acquire({ batches = 1, items = 0, subrequests = items, usdPico = 0, leaseMs = DEFAULT_LEASE_MS } = {}) {
    Object.entries({ batches, items, subrequests, usdPico, leaseMs }).forEach(([n, v]) => count(n, v));
    const now = Date.now();
    this.expire(now);
    const lim = this.limits();
    const active = this.one('SELECT coalesce(sum(batches), 0) AS n FROM leases').n;
    if (batches > 0 && active + batches > lim.concurrentBatches) {
      return refusal('concurrent_batches', `${active} of ${lim.concurrentBatches} concurrent batches of this token are running ` +
        '(EDGEBATCH_CONCURRENT_BATCHES)', CONCURRENT_RETRY_MS);
    }
    const hour = this.hour();
    if (items > lim.itemsPerHour || items > lim.subrequestsPerHour) {
      return refusal(items > lim.itemsPerHour ? 'items_per_hour' : 'subrequests_per_hour',
        `${items} items can never fit: this token may send ${Math.min(lim.itemsPerHour, lim.subrequestsPerHour)} per hour`, null);
    }
    if (hour.items + items > lim.itemsPerHour) {
      return refusal('items_per_hour', `${hour.items} of ${lim.itemsPerHour} items per hour are used; this asks for ${items} ` +
        '(EDGEBATCH_ITEMS_PER_HOUR)', this.waitFor('items', hour.items + items - lim.itemsPerHour, now));
    }
    const room = lim.subrequestsPerHour - hour.subrequests;
    if (room < items || (room <= 0 && subrequests > 0)) {
      const need = Math.max(items, 1);
      return refusal('subrequests_per_hour', `${hour.subrequests} of ${lim.subrequestsPerHour} subrequests per hour are used; ` +
        `this needs at least ${need} (EDGEBATCH_SUBREQUESTS_PER_HOUR)`, this.waitFor('subrequests', need - room, now));
    }
    const dollars = this.dollarRefusal(lim, hour, usdPico, now);
    if (dollars) return dollars;
    // A fair share of what is left, so that one batch cannot take the hour from the other
    // slots; never less than one per item (checked above), never more than asked.
    const share = Math.floor(room / Math.max(1, lim.concurrentBatches - active));
    const granted = Math.min(subrequests, room, Math.max(items, share));
    return { ok: true, ...this.take(now, leaseMs, batches, items, granted, usdPico), subrequests: granted };
  }

  /**
   * The refusal of a hold of `usdPico` when it does not fit the token's dollars per hour;
   * null when it fits (or there is no such limit).
   * @param {Limits} lim @param {{ usd: number }} hour @param {number} usdPico @param {number} now
   * @returns {Refusal | null}
   */
  dollarRefusal(lim, hour, usdPico, now) {
    if (lim.usdPerHour === null) return null;
    const cap = Math.round(lim.usdPerHour * PICO);
    if (usdPico > cap) {
      return refusal('usd_per_hour', `this can cost up to ${shown(usdPico)}, more than this token may spend in an hour ` +
        `(${shown(cap)}, EDGEBATCH_USD_PER_HOUR)`, null);
    }
    if (hour.usd + usdPico <= cap) return null;
    return refusal('usd_per_hour', `${shown(hour.usd)} of ${shown(cap)} per hour are spent or held; this can cost up to ` +
      `${shown(usdPico)} (EDGEBATCH_USD_PER_HOUR)`, this.dollarWait(hour.usd + usdPico - cap, now));
  }

  /**
   * When `excess` pico-dollars will be free: as they leave the hour, or sooner when a run
   * still holds some (its release puts its smaller cost in place): asked again by then.
   * @param {number} excess @param {number} now
   */
  dollarWait(excess, now) {
    const wait = this.waitFor('usd', excess, now);
    const holding = this.one('SELECT count(*) AS n FROM spend WHERE usd > 0 AND lease IN (SELECT id FROM leases)').n > 0;
    return holding ? Math.min(wait, CONCURRENT_RETRY_MS) : wait;
  }

  /**
   * Stored batches: the part of a claim of `items` that fits in the hour now. Of the claimed
   * items, `items - uncharged` were charged by an earlier claim (given back since) and are not
   * charged again; they come first. Grants k >= 1 items (charging `max(0, k - already)`) and up
   * to `subrequests * k / items` subrequests (at least k, at most what is left of the hour and a
   * fair share of it), or refuses with when one item will fit. No concurrent-batch slot: the
   * lease only ties the grant to its release, which hands the unused subrequests back. With a
   * dollar limit, `usdPico` holds each claimed item's bound (in the claim's order): k is also
   * at most the first items whose holds fit what is left of the hour's dollars.
   * @param {{ items: number, uncharged?: number, subrequests?: number, usdPico?: number[], leaseMs?: number }} ask
   * @returns {PartGrant | Refusal}
   */
  acquirePart({ items, uncharged = items, subrequests = items, usdPico = [], leaseMs = DEFAULT_LEASE_MS }) {
    Object.entries({ items, uncharged, subrequests, leaseMs }).forEach(([n, v]) => count(n, v));
    if (items < 1) throw new RangeError(`items must be at least 1, got ${items}`);
    if (uncharged > items) throw new RangeError(`uncharged (${uncharged}) must be at most items (${items})`);
    if (subrequests < items) throw new RangeError(`subrequests (${subrequests}) must be at least items (${items}): one attempt per item`);
    if (!Array.isArray(usdPico) || (usdPico.length !== 0 && usdPico.length !== items)) {
      throw new TypeError(`usdPico must be an array of one hold per item (${items}), or empty`);
    }
    usdPico.forEach((v, i) => count(`usdPico[${i}]`, v));
    const now = Date.now();
    this.expire(now);
    const lim = this.limits();
    const hour = this.hour();
    const itemRoom = Math.max(0, lim.itemsPerHour - hour.items);
    const room = Math.max(0, lim.subrequestsPerHour - hour.subrequests);
    const already = items - uncharged;
    let k = Math.min(already + Math.min(uncharged, itemRoom), room);
    // The dollars: the first items whose holds fit what is left of the hour's.
    const usdCap = lim.usdPerHour === null || usdPico.length === 0 ? null : Math.round(lim.usdPerHour * PICO);
    let held = 0;
    let byDollars = false;
    if (usdCap !== null) {
      let fit = 0;
      while (fit < k && hour.usd + held + usdPico[fit] <= usdCap) held += usdPico[fit++];
      byDollars = fit < k;
      k = fit;
    }
    if (k === 0 && byDollars) {
      // A first item that can never fit is the caller's to end (consumer.js); asked again in an hour.
      return /** @type {Refusal} */ ({ ...this.dollarRefusal(lim, hour, usdPico[0], now), retryAfterMs: usdPico[0] > /** @type {number} */ (usdCap)
        ? HOUR_MS : this.dollarWait(hour.usd + usdPico[0] - /** @type {number} */ (usdCap), now) });
    }
    if (k === 0) {
      if (room === 0) {
        return refusal('subrequests_per_hour', `${hour.subrequests} of ${lim.subrequestsPerHour} subrequests per hour are used ` +
          '(EDGEBATCH_SUBREQUESTS_PER_HOUR)', this.waitFor('subrequests', hour.subrequests + 1 - lim.subrequestsPerHour, now));
      }
      return refusal('items_per_hour', `${hour.items} of ${lim.itemsPerHour} items per hour are used (EDGEBATCH_ITEMS_PER_HOUR)`,
        this.waitFor('items', hour.items + 1 - lim.itemsPerHour, now));
    }
    const charged = Math.max(0, k - already);
    const active = this.one('SELECT coalesce(sum(batches), 0) AS n FROM leases').n;
    const share = Math.floor(room / Math.max(1, lim.concurrentBatches - active));
    const granted = Math.min(Math.ceil((subrequests * k) / items), room, Math.max(k, share));
    const { lease, expiresAt } = this.take(now, leaseMs, 0, charged, granted, held);
    // When the first item left out could run: the consumer's give-back waits that long.
    let restAfterMs = 0;
    if (byDollars) restAfterMs = this.dollarWait(hour.usd + held + usdPico[k] - /** @type {number} */ (usdCap), now);
    else if (k < items) {
      const usedItems = hour.items + charged;
      const usedSubrequests = hour.subrequests + granted;
      if (usedItems >= lim.itemsPerHour) restAfterMs = this.waitFor('items', usedItems + 1 - lim.itemsPerHour, now);
      else if (usedSubrequests >= lim.subrequestsPerHour) restAfterMs = this.waitFor('subrequests', usedSubrequests + 1 - lim.subrequestsPerHour, now);
    }
    return { ok: true, lease, items: k, charged, subrequests: granted, expiresAt, restAfterMs };
  }

  /**
   * Records a grant (both acquires): a lease holding `batches` slots, and `items`,
   * `subrequests` and a hold of `usdPico` spent in the hour from `now`.
   * @param {number} now @param {number} leaseMs @param {number} batches @param {number} items @param {number} subrequests
   * @param {number} usdPico
   */
  take(now, leaseMs, batches, items, subrequests, usdPico) {
    const lease = crypto.randomUUID();
    const expiresAt = now + leaseMs;
    this.sql.exec('INSERT INTO leases VALUES (?, ?, ?)', lease, batches, expiresAt);
    this.sql.exec('INSERT INTO spend (lease, at, items, subrequests, usd) VALUES (?, ?, ?, ?, ?)', lease, now, items, subrequests, usdPico);
    this.sql.exec('UPDATE totals SET batches = batches + ?, items = items + ? WHERE id = 0', batches, items);
    return { lease, expiresAt };
  }

  /**
   * @param {string} lease
   * @param {number} [leaseMs]
   * @returns {{ ok: true, expiresAt: number } | { ok: false, message: string }}
   */
  renew(lease, leaseMs = DEFAULT_LEASE_MS) {
    count('leaseMs', leaseMs);
    const expiresAt = Date.now() + leaseMs;
    const changed = this.sql.exec('UPDATE leases SET expires_at = ? WHERE id = ?', expiresAt, String(lease)).rowsWritten;
    return changed > 0 ? { ok: true, expiresAt } : { ok: false, message: 'no such lease (expired or released)' };
  }

  /** @param {Omit<Usage, 'subrequests'>} [usage] */
  record({ requests = 0, inputTokens = 0, outputTokens = 0 } = {}) {
    Object.entries({ requests, inputTokens, outputTokens }).forEach(([n, v]) => count(n, v));
    this.sql.exec('UPDATE totals SET requests = requests + ?, input_tokens = input_tokens + ?, output_tokens = output_tokens + ? WHERE id = 0',
      requests, inputTokens, outputTokens);
  }

  /**
   * @param {string} lease
   * @param {Usage} [used] subrequests: how many of the grant were used (all when absent);
   *   usdPico: what the work cost, in place of the hold (the hold when absent)
   */
  release(lease, { subrequests, usdPico, ...usage } = {}) {
    const id = String(lease);
    const grant = this.one('SELECT coalesce(sum(subrequests), 0) AS n, coalesce(sum(usd), 0) AS usd FROM spend WHERE lease = ?', id);
    const granted = grant.n;
    const used = subrequests === undefined ? granted : Math.min(count('subrequests', subrequests), granted);
    // Hand the unused part of the grant back to the hour (onto the newest row of this lease).
    this.sql.exec('UPDATE spend SET subrequests = max(0, subrequests - ?) WHERE id = (SELECT max(id) FROM spend WHERE lease = ?)', granted - used, id);
    // What it cost replaces the hold (a lease has one spend row); more than the hold counts too.
    const cost = usdPico === undefined ? grant.usd : count('usdPico', usdPico);
    if (usdPico !== undefined) this.sql.exec('UPDATE spend SET usd = ? WHERE id = (SELECT max(id) FROM spend WHERE lease = ?)', cost, id);
    this.sql.exec('DELETE FROM leases WHERE id = ?', id);
    this.sql.exec('UPDATE totals SET subrequests = subrequests + ?, usd = usd + ? WHERE id = 0', used, cost);
    this.record(usage);
  }

  usage() {
    const now = Date.now();
    this.expire(now);
    const hour = this.hour();
    const t = this.one('SELECT * FROM totals WHERE id = 0');
    const { usdPerHour, ...limits } = this.limits();
    return {
      limits,
      now: { batches: this.one('SELECT coalesce(sum(batches), 0) AS n FROM leases').n, itemsLastHour: hour.items, subrequestsLastHour: hour.subrequests },
      total: { batches: t.batches, items: t.items, requests: t.requests, subrequests: t.subrequests, inputTokens: t.input_tokens, outputTokens: t.output_tokens },
      // Dollars (EDGEBATCH_USD_PER_HOUR; perHour null without it): the last hour's spending and
      // holds, and what released work cost in all.
      usd: { perHour: usdPerHour, lastHour: hour.usd / PICO, total: t.usd / PICO },
    };
  }

  /** @returns {{ items: number, subrequests: number, usd: number }} what the sliding hour holds (usd: pico) */
  hour() {
    return this.one('SELECT coalesce(sum(items), 0) AS items, coalesce(sum(subrequests), 0) AS subrequests, coalesce(sum(usd), 0) AS usd FROM spend');
  }

  /** @param {number} now */
  expire(now) {
    this.sql.exec('DELETE FROM leases WHERE expires_at <= ?', now);
    this.sql.exec('DELETE FROM spend WHERE at <= ?', now - HOUR_MS);
  }

  /**
   * Milliseconds until `excess` of `column` has left the sliding hour.
   * @param {'items' | 'subrequests' | 'usd'} column
   * @param {number} excess
   * @param {number} now
   */
  waitFor(column, excess, now) {
    let freed = 0;
    for (const row of this.sql.exec(`SELECT at, ${column} AS n FROM spend ORDER BY at`)) {
      freed += Number(row.n);
      if (freed >= excess) return Math.max(1000, Number(row.at) + HOUR_MS - now);
    }
    return HOUR_MS;
  }

  /**
   * @param {string} query
   * @param {...any} args
   * @returns {any}
   */
  one(query, ...args) {
    return this.sql.exec(query, ...args).one();
  }
}

/**
 * @param {LimitName} limit
 * @param {string} message
 * @param {number | null} retryAfterMs
 * @returns {Refusal}
 */
function refusal(limit, message, retryAfterMs) {
  return { ok: false, limit, message, retryAfterMs };
}

/**
 * The TokenLimits object of a token name; a 500 if the binding is missing.
 * @param {Record<string, any>} env
 * @param {string} name
 * @returns {any} the object's stub (RPC: acquire, acquirePart, renew, record, release, usage)
 */
export function tokenLimits(env, name) {
  if (!env.TOKEN_LIMITS) {
    throw new HttpError(500, 'configuration_error', 'the TOKEN_LIMITS Durable Object binding is missing (see wrangler.toml)');
  }
  return env.TOKEN_LIMITS.get(env.TOKEN_LIMITS.idFromName(name));
}

/**
 * `stub.acquire(ask)`, a refusal thrown as the Worker's 429 (with retry-after) naming the limit,
 * or a 400 for a request that can never fit.
 * @param {any} stub
 * @param {{ batches?: number, items?: number, subrequests?: number, usdPico?: number, leaseMs?: number }} ask
 * @returns {Promise<Grant>}
 */
export async function acquireOrThrow(stub, ask) {
  const got = await stub.acquire(ask);
  if (got.ok) return got;
  const message = `token limit ${got.limit}: ${got.message}`;
  if (got.retryAfterMs === null) throw new HttpError(400, 'invalid_request_error', message, {}, { limit: got.limit });
  throw new HttpError(429, 'rate_limit_error', message, { 'retry-after': String(Math.ceil(got.retryAfterMs / 1000)) }, { limit: got.limit });
}

/**
 * How many requests a stored batch may hold: what its token can send before the batch expires
 * at the hourly limits (each request is an item and at least one subrequest; the sliding hour
 * gives its budget again once per started hour of the TTL). A necessary bound, not a promise:
 * the token's other batches draw on the same hours.
 * @param {Limits} limits the token's limits (readConfig(env).limits)
 * @param {number} ttlMs the batch TTL (EDGEBATCH_BATCH_TTL_MS)
 * @returns {{ max: number, refuse: (requests: number, exact: boolean) => HttpError }}
 */
export function ttlBudget(limits, ttlMs) {
  const hours = Math.ceil(ttlMs / HOUR_MS);
  const perHour = Math.min(limits.itemsPerHour, limits.subrequestsPerHour);
  const max = perHour * hours;
  const by = limits.subrequestsPerHour < limits.itemsPerHour ? ' (one subrequest at least per request)' : '';
  return {
    max,
    refuse: (requests, exact) => new HttpError(400, 'invalid_request_error',
      `the batch has ${exact ? '' : 'more than '}${exact ? requests : max} requests: at this token's limits ` +
      `(EDGEBATCH_ITEMS_PER_HOUR = ${limits.itemsPerHour}, EDGEBATCH_SUBREQUESTS_PER_HOUR = ${limits.subrequestsPerHour}: ` +
      `${perHour} requests an hour${by}) at most ${max} can be sent before it expires (EDGEBATCH_BATCH_TTL_MS = ${ttlMs}, ` +
      `${hours} h); send at most ${max} requests per batch, or raise the limits`,
      {}, { limit: limits.subrequestsPerHour < limits.itemsPerHour ? 'subrequests_per_hour' : 'items_per_hour', max }),
  };
}

const utf8 = new TextEncoder();

/**
 * The most a request can cost, in pico-dollars, held against its token's dollars per hour
 * before it starts: a token per byte of its JSON (a token is never less than a byte of text;
 * the JSON's quotes and keys cover the messages' framing; tools add the provider's tool-use
 * prompt, TOOLS_ALLOWANCE) at the model's dearest input rate (a one-hour cache write), and
 * `max_tokens` (or `max_completion_tokens`) of output, realtime or at the Batch API's price
 * (`served`). Null without EDGEBATCH_USD_PER_HOUR; a model the price table lacks is a 400 then:
 * a dollar limit cannot bound what it cannot price.
 * @param {Limits} limits @param {any} body a request body (the item rules checked it)
 * @param {{ json?: string, served?: 'realtime' | 'provider_batch', at?: string }} [how] `json`: the
 *   body as sent, when the caller has it; `at`: what the 400 names (`items[3]`)
 * @returns {number | null}
 */
export function requestBound(limits, body, { json, served = 'realtime', at = 'the request' } = {}) {
  if (limits.usdPerHour === null) return null;
  const bytes = utf8.encode(json ?? JSON.stringify(body)).length;
  return sizeBound({ model: body?.model, bytes, tools: Array.isArray(body?.tools) && body.tools.length > 0,
    output: body?.max_tokens ?? body?.max_completion_tokens }, served, at);
}

/**
 * requestBound from a request's size alone (what SQL reads of a stored one without parsing it
 * in JS): its model, JSON bytes, whether it has tools, and its output cap.
 * @param {{ model: unknown, bytes: number, tools: boolean, output: unknown }} r
 * @param {'realtime' | 'provider_batch'} served @param {string} at what the 400 names
 */
export function sizeBound(r, served, at) {
  const model = typeof r.model === 'string' ? r.model : '';
  const output = Number(r.output ?? 1024);
  // The Worker's build only (cargo feature `limiter`), beside replyCost: not in the package's types.
  const bound = /** @type {any} */ (edgebatch).costBound(model, r.bytes + (r.tools ? TOOLS_ALLOWANCE : 0), output);
  if (!bound) {
    throw new HttpError(400, 'invalid_request_error', `${at}: model ${JSON.stringify(model.slice(0, 100))} has no price in the ` +
      'price table, and this Worker limits each token\'s dollars per hour (EDGEBATCH_USD_PER_HOUR): only priced models may run');
  }
  return bound[served === 'realtime' ? 0 : 1];
}

/**
 * What one finished request is charged against the token's dollars, in pico-dollars: its
 * reply's price (the library's `usd`); nothing when no attempt reached the upstream or the
 * upstream refused it with an HTTP error (not billed); else its bound (`hold`: an attempt cut
 * off mid-reply by a timeout or a broken connection may have been billed, at most that).
 * @param {{ ok: boolean, usd?: number, attempts?: number, error?: { kind: string } }} r a library result
 * @param {number} hold the request's requestBound (0 without a dollar limit)
 */
export function billed(r, hold) {
  if (r.ok) return typeof r.usd === 'number' ? Math.round(r.usd * PICO) : hold;
  if (!r.attempts || r.error?.kind === 'http' || r.error?.kind === 'deferred' || r.error?.kind === 'cost_cap') return 0;
  return hold;
}

/**
 * What a reply (a Message or a chat completion) cost realtime, in pico-dollars, at the price
 * table (the wasm's replyCost); `fallback` when its model has no price or it has no usage.
 * @param {unknown} reply @param {number} fallback
 */
export function replyPico(reply, fallback) {
  const pico = reply && typeof reply === 'object' ? /** @type {any} */ (edgebatch).replyCost(reply) : undefined;
  return pico ? pico[0] : fallback;
}
