// @ts-check
// The account limiter's permits (batches/permits.js) for one realtime call, with what each
// attempt's reply said added to its release. The executor builds a release from what it knows
// of an attempt; a task function's reply is opaque to it, so the task tells this wrapper the
// reply's rate-limit headers and usage, and the release carries them to the limiter, as a
// stored batch's do. One call runs one attempt at a time, so "the attempt being released" is
// the one the task saw last.
//
// A streamed reply keeps its permit until the stream ends: its release waits for `finish`,
// with the usage the stream reported (the limiter's lease bounds a client that never reads).

/**
 * @typedef {{ headers?: Record<string, string>, usage?: { inputTokens: number, outputTokens: number }, stream?: boolean }} Seen
 * @typedef {ReturnType<typeof import('../batches/permits.js').remotePermits>} Remote
 */

/** @param {Remote} inner */
export function observed(inner) {
  /** @type {Seen | null} */
  let seen = null;
  /** @type {{ id: string, outcome: any } | null} */
  let held = null;
  return {
    /** The executor's `permits`. */
    source: {
      /** @param {number} index @param {any} cost */
      acquire: (index, cost) => inner.acquire(index, cost),
      /** @param {string} id @param {any} outcome */
      release(id, outcome) {
        const s = seen;
        seen = null;
        if (!s || outcome?.abandoned) return inner.release(id, outcome);
        const merged = { ...outcome, ...(s.headers && { headers: { ...s.headers, ...outcome.headers } }) };
        if (outcome.ok && s.usage) merged.usage = s.usage;
        if (outcome.ok && s.stream) {
          held = { id, outcome: merged };
          return undefined;
        }
        return inner.release(id, merged);
      },
    },
    /**
     * What the attempt in flight saw of its reply (ignored once its signal fired: the executor
     * has moved on). @param {Seen} s @param {AbortSignal} signal
     */
    observe(s, signal) {
      if (!signal.aborted) seen = s;
    },
    /**
     * Releases a held stream's permit with its usage, or as a failure of `failure`'s kind (a
     * stream the upstream stopped sending: `timeout`), then sends what is left.
     * @param {{ inputTokens: number, outputTokens: number }} [usage]
     * @param {'timeout'} [failure]
     */
    finish(usage, failure) {
      if (held && failure) inner.release(held.id, { ok: false, kind: failure, ...(held.outcome.headers && { headers: held.outcome.headers }) });
      else if (held) inner.release(held.id, usage ? { ...held.outcome, usage } : held.outcome);
      held = null;
      return inner.flush();
    },
    flush: () => inner.flush(),
  };
}
