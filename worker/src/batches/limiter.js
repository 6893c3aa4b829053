// One limiter Durable Object per upstream account: every consumer of every batch on that
// account asks it before each attempt and tells it what the reply said. It runs edgebatch's
// own pacer (the wasm `Limiter`: rate-limit-header budgets, the pause after a 429, adaptive
// concurrency, the breaker) behind leases that expire, so a crashed consumer cannot keep a
// permit, and owners (batches) take turns. State is in memory: an evicted object starts
// afresh and relearns from the next replies' headers, which is what a new process would do.
import { DurableObject } from 'cloudflare:workers';
import * as edgebatch from '../../pkg/edgebatch.js';

/** Attempts in flight over all consumers of one account, at most (the adaptive ceiling). */
export const DEFAULT_LIMITER_CONCURRENCY = 48;

export class UpstreamLimiter extends DurableObject {
  #limiter = null;
  #config = null;

  /** `config`: `{ provider, concurrency?, rateLimit?, leaseMs? }`, used by the first caller. */
  #ensure(config) {
    if (this.#limiter === null) {
      this.#limiter = new edgebatch.Limiter(config, Date.now());
      this.#config = config;
    }
    return this.#limiter;
  }

  /** `{ id }`, `{ waitMs }` or `{ never }` for one attempt of `owner` with `cost`. */
  acquire(config, owner, cost) {
    return this.#ensure(config).acquire(owner, cost.inputTokens ?? 0, cost.outputTokens ?? 0, Date.now());
  }

  /** Reports an attempt's outcome; false when its lease had already run out. */
  release(id, outcome) {
    if (this.#limiter === null) return false;
    return this.#limiter.release(id, outcome, Date.now());
  }

  stats() {
    if (this.#limiter === null) return { inFlight: 0, granted: 0, config: null };
    return { ...this.#limiter.stats(Date.now()), config: { ...this.#config } };
  }
}

/**
 * The limiter object for an account: a user-named `limiterKey` (keys of one organisation
 * share its limits), else the provider, its base URL and a hash of the key.
 */
export async function limiterName(provider, apiKey, limiterKey) {
  if (limiterKey) return `named:${provider.name}:${limiterKey}`;
  const data = new TextEncoder().encode(`${provider.name}\n${provider.baseUrl}\n${apiKey ?? ''}`);
  const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', data))]
    .map((b) => b.toString(16).padStart(2, '0')).join('');
  return `key:${provider.name}:${hash.slice(0, 32)}`;
}
