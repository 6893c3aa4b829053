// @ts-check
// One limiter Durable Object per upstream account (or per token-scoped `limiterKey`): every
// consumer of every batch on it asks before each attempt and tells it what the reply said. It
// runs edgebatch's own pacer (the wasm `Limiter`: rate-limit-header budgets, the pause after a
// 429, adaptive concurrency, the breaker) behind leases that expire, so a crashed consumer
// cannot keep a permit.
//
// A caller that must wait is held here, not told to ask again: waiters are woken when a permit
// comes back or when the pacer's time comes, owners (batches) taking turns, least recently
// served first. A wait longer than the caller allows is answered at once with `defer`, so the
// consumer gives its items back instead of sleeping in its invocation.
//
// Realtime calls (the provider-format routes: a person is waiting) go before batch items (a
// batch has hours), but not always: while both wait, at least BATCH_MIN_SHARE of the grants go
// to batches, so a steady stream of realtime calls slows batches down without stopping them.
//
// Settings are durable (set at create by `configure`); the pacer's state is in memory: an
// evicted object starts afresh and relearns from the next replies' headers. Lease ids carry a
// random epoch per instance, so a late release from before an eviction frees nothing.
import { DurableObject } from 'cloudflare:workers';
import * as edgebatch from '../../pkg/edgebatch.js';

/** Attempts in flight over all consumers of one account, at most (the adaptive ceiling). */
export const DEFAULT_LIMITER_CONCURRENCY = 48;

/** While realtime calls and batch items both wait, at least this share of grants goes to batches. */
export const BATCH_MIN_SHARE = 0.2;

/** How late after its time a held waiter is looked at again when nothing else wakes it. */
const IDLE_WAKE_MS = 1_000;

/**
 * @typedef {{ requestsPerMinute?: number, inputTokensPerMinute?: number, outputTokensPerMinute?: number }} RateLimit
 * @typedef {{ provider: string, concurrency: number, leaseMs: number, rateLimit?: RateLimit }} LimiterSettings
 * @typedef {{ inputTokens?: number, outputTokens?: number, requests?: number }} Cost
 * @typedef {{ untilMs: number, reason: 'limiter' }} Deferral
 * @typedef {{ id: string } | { never: string } | { defer: Deferral }} Grant
 * @typedef {[string, object]} Release a lease id and its outcome (as the wasm Limiter reads it)
 * @typedef {'realtime' | 'batch'} Priority
 * @typedef {{ owner: string, cost: Cost, realtime: boolean, arrived: number, deadline: number, waitMs: number,
 *   resolve: (g: Grant) => void }} Waiter
 */

export class UpstreamLimiter extends DurableObject {
  /** @type {any} the wasm Limiter, built from the stored settings on first use */
  #limiter = null;
  /** @type {LimiterSettings | null} */
  #settings = null;
  #epoch = randomEpoch();
  /** @type {Waiter[]} in arrival order */
  #waiters = [];
  /** @type {Map<string, number>} owner -> when it was last granted a permit */
  #served = new Map();
  /** Smoothed time between two grants while callers wait (how fast the queue moves), ms. */
  #gapMs = 0;
  #lastGrantAt = 0;
  /** Until when the pacer held every waiter back the last time none could go (a pause is no gap). */
  #blockedUntil = 0;
  /** Grants to each class since both last began to wait (the batches' share is kept from these). */
  #contended = { realtime: 0, batch: 0 };
  /** @type {ReturnType<typeof setTimeout> | null} */
  #timer = null;
  #timerAt = Infinity;

  /** @param {DurableObjectState} ctx @param {unknown} env */
  constructor(ctx, env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      this.#settings = (await ctx.storage.get('settings')) ?? null;
    });
  }

  /**
   * Stores this limiter's settings. The user's part (concurrency, rateLimit) must equal what
   * is stored unless `replace` (the account limiter, whose settings are the Worker's own);
   * the Worker's part (leaseMs) follows the Worker.
   * @param {LimiterSettings} settings
   * @param {{ replace?: boolean }} [opts]
   * @returns {Promise<{ ok: true } | { conflict: string } | { invalid: string }>}
   */
  async configure(settings, { replace = false } = {}) {
    const old = this.#settings;
    if (old && !replace && userPart(old) !== userPart(settings)) {
      return { conflict: describeSettings(old) };
    }
    if (old && JSON.stringify(canonical(old)) === JSON.stringify(canonical(settings))) return { ok: true };
    try {
      new edgebatch.Limiter(settings, Date.now()).free();
    } catch (err) {
      return { invalid: String(/** @type {Error} */ (err)?.message ?? err) };
    }
    await this.ctx.storage.put('settings', settings);
    this.#settings = settings;
    this.#reset();
    return { ok: true };
  }

  /**
   * One attempt of `owner` costing `cost`: `{ id }` (send now, then release it), `{ never }`
   * (it can never fit), or `{ defer: { untilMs } }` when the wait would pass `maxWaitMs`.
   * `releases` are applied first: the outcomes of earlier attempts ride along. `priority`:
   * 'realtime' for a call someone waits on (served first, see BATCH_MIN_SHARE).
   * @param {string} owner
   * @param {Cost} cost
   * @param {{ releases?: Release[], maxWaitMs?: number, priority?: Priority }} [opts]
   * @returns {Promise<Grant>}
   */
  async acquire(owner, cost, { releases = [], maxWaitMs = 0, priority = 'batch' } = {}) {
    this.#releaseAll(releases);
    if (!this.#ready()) return { never: 'this rate limiter has no settings (the batch predates them): create the batch again' };
    const now = Date.now();
    /** @type {Promise<Grant>} */
    const answer = new Promise((resolve) => {
      this.#waiters.push({ owner, cost, realtime: priority === 'realtime', arrived: now, deadline: now + Math.max(0, maxWaitMs), waitMs: 0, resolve });
    });
    this.#pump();
    return answer;
  }

  /**
   * What is left to release at the end of an invocation. Returns how many were current.
   * @param {Release[]} releases
   */
  releaseMany(releases) {
    const n = this.#releaseAll(releases);
    this.#pump();
    return n;
  }

  /**
   * One release; false when the lease had already run out or is from another instance.
   * @param {string} id @param {object} outcome
   */
  release(id, outcome) {
    const n = this.#releaseAll([[id, outcome]]);
    this.#pump();
    return n === 1;
  }

  stats() {
    const base = this.#limiter ? this.#limiter.stats(Date.now()) : { inFlight: 0, granted: 0 };
    return { ...base, waiting: this.#waiters.length, epoch: this.#epoch, settings: this.#settings && { ...this.#settings } };
  }

  /** @param {Release[]} releases */
  #releaseAll(releases) {
    if (!this.#limiter || !Array.isArray(releases)) return 0;
    let n = 0;
    const now = Date.now();
    for (const [id, outcome] of releases) {
      const [epoch, seq] = String(id).split(':');
      if (epoch !== this.#epoch || !/^\d+$/.test(seq ?? '')) continue;
      if (this.#limiter.release(Number(seq), outcome ?? { abandoned: true }, now)) n++;
    }
    return n;
  }

  #ready() {
    if (!this.#limiter && this.#settings) this.#limiter = new edgebatch.Limiter(this.#settings, Date.now());
    return this.#limiter !== null;
  }

  /** New settings: a new pool and epoch; held waiters are told to come back at once. */
  #reset() {
    this.#limiter?.free();
    this.#limiter = null;
    this.#epoch = randomEpoch();
    for (const w of this.#waiters.splice(0)) w.resolve({ defer: { untilMs: Date.now(), reason: 'limiter' } });
  }

  /**
   * Grants what can go now, owners least recently served first (each owner's waiters in
   * arrival order); answers `defer` to waiters that would wait past their deadline; sets one
   * timer for the next moment something may change.
   */
  #pump() {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
    if (this.#waiters.length === 0 || !this.#ready()) return;
    const now = Date.now();
    for (let granted = true; granted && this.#waiters.length > 0;) {
      granted = false;
      const heads = this.#heads();
      for (const w of heads) {
        // The order is this object's (heads): the pacer is not asked to make owners take turns.
        const g = this.#limiter.acquire(w.owner, w.cost.inputTokens ?? 0, w.cost.outputTokens ?? 0, now, true);
        if (g.waitMs !== undefined) {
          w.waitMs = g.waitMs;
          continue;
        }
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        if (g.id !== undefined) {
          this.#served.set(w.owner, now);
          this.#timeGrant(w, now);
          if (heads.some((h) => h.realtime !== w.realtime)) this.#contended[w.realtime ? 'realtime' : 'batch']++;
          w.resolve({ id: `${this.#epoch}:${g.id}` });
        } else {
          w.resolve({ never: String(g.never) });
        }
        granted = true;
        break;
      }
    }
    const heads = this.#heads();
    if (heads.length > 0 && heads.every((h) => h.waitMs > 0)) this.#blockedUntil = now + Math.min(...heads.map((h) => h.waitMs));
    // The soonest any head may go; a waiter behind its owner's head waits at least as long,
    // and behind those served before it about one grant's gap each (a realtime call: the
    // realtime calls ahead of it; a batch item: everyone ahead).
    const headWait = new Map(heads.map((w) => [w.owner, w.waitMs]));
    let next = Infinity;
    const ahead = { all: 0, realtime: 0 };
    this.#waiters = this.#waiters.filter((w) => {
      const waitMs = Math.max(w.waitMs, headWait.get(w.owner) ?? 0);
      const expectMs = Math.max(waitMs, (w.realtime ? ahead.realtime : ahead.all) * this.#gapMs);
      if (now + expectMs > w.deadline) {
        w.resolve({ defer: { untilMs: now + Math.max(expectMs, 1), reason: 'limiter' } });
        return false;
      }
      ahead.all++;
      if (w.realtime) ahead.realtime++;
      next = Math.min(next, now + waitMs, w.deadline);
      return true;
    });
    if (!this.#waiters.some((w) => w.realtime) || this.#waiters.every((w) => w.realtime)) this.#contended = { realtime: 0, batch: 0 };
    for (const [owner, at] of this.#served) if (now - at > 600_000) this.#served.delete(owner);
    if (this.#waiters.length > 0) this.#wakeAt(Math.min(next, now + IDLE_WAKE_MS));
  }

  /** Learns how fast held waiters are served. @param {Waiter} w @param {number} now */
  #timeGrant(w, now) {
    if (w.arrived < now && this.#lastGrantAt > 0) {
      // Never more than this waiter waited (an idle spell before it is no queue), nor since the
      // pacer last held everyone back (a pause after a 429 is not how fast the queue moves).
      const since = this.#blockedUntil <= now ? Math.max(this.#lastGrantAt, this.#blockedUntil) : this.#lastGrantAt;
      const gap = Math.min(now - since, now - w.arrived);
      this.#gapMs = this.#gapMs === 0 ? gap : 0.8 * this.#gapMs + 0.2 * gap;
    }
    this.#lastGrantAt = now;
  }

  /**
   * The first waiter of each owner, in the order they may go: realtime calls first unless the
   * batches' share of the grants since both began to wait would fall below BATCH_MIN_SHARE;
   * within a class, owners least recently served first.
   */
  #heads() {
    /** @type {Map<string, Waiter>} */
    const heads = new Map();
    for (const w of this.#waiters) if (!heads.has(w.owner)) heads.set(w.owner, w);
    const { realtime, batch } = this.#contended;
    const batchTurn = batch + 1 <= BATCH_MIN_SHARE * (realtime + batch + 1);
    const rank = (/** @type {Waiter} */ w) => (w.realtime === batchTurn ? 1 : 0);
    return [...heads.values()].sort((a, b) => rank(a) - rank(b) || (this.#served.get(a.owner) ?? 0) - (this.#served.get(b.owner) ?? 0));
  }

  /** @param {number} at */
  #wakeAt(at) {
    if (at >= this.#timerAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#pump(), Math.max(0, at - Date.now()));
  }
}

/**
 * The limiter object's name for an account: a `limiterKey` is scoped to the token that names
 * it (another token's "k" is another limiter), else the provider, its base URL and a hash of
 * the key (every batch on one upstream account shares it).
 * @param {{ name: string, baseUrl: string }} provider
 * @param {string | undefined} apiKey
 * @param {string | undefined} limiterKey
 * @param {string} owner the token's name
 */
export async function limiterName(provider, apiKey, limiterKey, owner) {
  if (limiterKey) return `named:${owner}:${provider.name}:${limiterKey}`;
  const data = new TextEncoder().encode(`${provider.name}\n${provider.baseUrl}\n${apiKey ?? ''}`);
  const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', data))]
    .map((b) => b.toString(16).padStart(2, '0')).join('');
  return `key:${provider.name}:${hash.slice(0, 32)}`;
}

/** How settings read in a 409: the options that set them. @param {LimiterSettings} s */
export function describeSettings(s) {
  const rate = s.rateLimit ? `rateLimit ${JSON.stringify(canonical(s.rateLimit))}` : 'no rateLimit';
  return `${rate}, limiterConcurrency ${s.concurrency}`;
}

/** @param {LimiterSettings} s */
function userPart(s) {
  return JSON.stringify(canonical({ concurrency: s.concurrency, rateLimit: s.rateLimit ?? {} }));
}

/** `v` with object keys sorted, so equal settings compare equal as JSON. @param {any} v @returns {any} */
function canonical(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
}

function randomEpoch() {
  return [...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, '0')).join('');
}
