// @ts-check
// The shared limiter as a permit source for one consumer invocation: the remote adapter behind
// the executor's `permits` option. One RPC per attempt: the wait is held in the limiter object
// (not polled), and the outcomes of earlier attempts ride along on the next acquire. Once the
// limiter defers, no attempt starts again in this invocation (no RPC either): attempts in
// flight finish, the rest goes back to the ledger for later.
//
// An acquire can outlive the run that asked (a realtime client that leaves while its call waits,
// a consumer whose stream stopped): the executor gives a grant that comes after its ask was
// dropped back as abandoned (askPermit, src/web/glue.js). `flush()` waits for those acquires, so
// that give-back is sent within the invocation instead of the permit being held for its lease.

/**
 * A release waits for the next acquire to take it along, at most this long (then it is sent on
 * its own): a call someone waits on (realtime) lets its permit go soon; a batch waits one and a
 * half of its recent gaps between acquires, within these bounds. A permit that waits is still
 * counted in flight by the limiter, so waiting long costs the other consumers at its ceiling;
 * too short sends releases alone. At 36 requests/s one consumer asks every 28 ms: a fixed 25 ms
 * sent a third of its releases alone (1.35 limiter calls an item; 100 ms: 1.12, but 8 consumers
 * at the limiter's ceiling lost 0.015 of the bound to the permits held longer).
 * flush() sends what is left at the end of an invocation without waiting.
 */
const RELEASE_LINGER_MS = { realtime: 25, min: 25, max: 100 };
/** Weight of the newest gap in the running mean of gaps between acquires. */
const GAP_WEIGHT = 0.2;
/** After a failed limiter call: give everything back for this long (the executor's rule too). */
const UNREACHABLE_DEFER_MS = 1_000;
/** How much longer than its maxWaitMs flush() waits for an acquire in flight (the RPC's trip). */
const ACQUIRE_GRACE_MS = 5_000;

/**
 * @typedef {import('./limiter.js').Cost} Cost
 * @typedef {import('./limiter.js').Grant} Grant
 * @typedef {import('./limiter.js').Deferral} Deferral
 * @typedef {import('./limiter.js').Release} Release
 * @typedef {{
 *   acquire(owner: string, cost: Cost, opts: { releases: Release[], maxWaitMs: number, priority: import('./limiter.js').Priority }): Promise<Grant>,
 *   releaseMany(releases: Release[]): Promise<number>,
 * }} LimiterStub
 * @typedef {{ acquires: number, releaseCalls: number }} PermitCounts
 */

/**
 * @param {LimiterStub} limiter the limiter object's stub
 * @param {string} owner whose turn it is (the batch id: owners take turns)
 * @param {() => number} maxWaitMs the longest wait to hold for, asked at each acquire
 * @param {import('./limiter.js').Priority} [priority] 'realtime' for a call someone waits on
 */
export function remotePermits(limiter, owner, maxWaitMs, priority = 'batch') {
  /** @type {Release[]} */
  let pending = [];
  /** @type {Deferral | null} */
  let deferred = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let linger = null;
  /** @type {Promise<unknown>[]} */
  const sending = [];
  /** @type {Set<Promise<void>>} acquires in flight, each settled by its answer or its bound */
  const asking = new Set();
  /** @type {PermitCounts} */
  const counts = { acquires: 0, releaseCalls: 0 };
  /** The running mean of the gaps between acquires (0 until two), and when the last one asked. */
  let gapMs = 0;
  let lastAskAt = 0;
  const lingerMs = () => (priority === 'realtime' ? RELEASE_LINGER_MS.realtime
    : Math.min(RELEASE_LINGER_MS.max, Math.max(RELEASE_LINGER_MS.min, 1.5 * gapMs)));

  const sendPending = () => {
    if (linger !== null) clearTimeout(linger);
    linger = null;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    counts.releaseCalls++;
    sending.push(limiter.releaseMany(batch).catch(() => 0));
  };

  return {
    counts,
    /** The deferral that stopped this invocation, if one did. */
    get deferred() {
      return deferred;
    },
    /**
     * @param {number} _index the item (unused: the limiter paces by cost and owner)
     * @param {Cost} cost
     * @returns {Promise<Grant>}
     */
    async acquire(_index, cost) {
      if (deferred) return { defer: deferred };
      const now = Date.now();
      if (lastAskAt > 0) gapMs = gapMs === 0 ? now - lastAskAt : (1 - GAP_WEIGHT) * gapMs + GAP_WEIGHT * (now - lastAskAt);
      lastAskAt = now;
      const releases = pending;
      pending = [];
      counts.acquires++;
      const wait = Math.max(0, Math.floor(maxWaitMs()));
      const call = limiter.acquire(owner, cost, { releases, maxWaitMs: wait, priority });
      asking.add(tracked(call, wait + ACQUIRE_GRACE_MS, asking));
      try {
        const g = await call;
        if ('defer' in g) deferred = laterOf(deferred, g.defer);
        return g;
      } catch {
        // A release already applied is refused the second time (its lease is gone): harmless.
        pending.push(...releases);
        deferred = laterOf(deferred, { untilMs: Date.now() + UNREACHABLE_DEFER_MS, reason: 'limiter' });
        return { defer: deferred };
      }
    },
    /** @param {string} id @param {object} outcome */
    release(id, outcome) {
      pending.push([id, outcome]);
      linger ??= setTimeout(sendPending, lingerMs());
    },
    /**
     * Sends what is left (at the end of the invocation), once the acquires still in flight are
     * answered (or past their wait): a grant nobody takes any more is released with the rest.
     */
    async flush() {
      while (asking.size > 0) {
        await Promise.all(asking);
        // The executor's give-back of a late grant is a few promise steps behind its answer.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      sendPending();
      await Promise.all(sending);
    },
  };
}

/**
 * A promise that settles (never rejects) when `call` does or after `boundMs`, whichever is first,
 * and leaves `set` then.
 * @param {Promise<unknown>} call @param {number} boundMs @param {Set<Promise<void>>} set
 * @returns {Promise<void>}
 */
function tracked(call, boundMs, set) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const bound = new Promise((resolve) => {
    timer = setTimeout(resolve, boundMs);
  });
  /** @type {Promise<void>} */
  const done = Promise.race([call.then(() => {}, () => {}), bound]).then(() => {
    clearTimeout(timer);
    set.delete(done);
  });
  return done;
}

/** @param {Deferral | null} a @param {Deferral} b @returns {Deferral} */
function laterOf(a, b) {
  return a && a.untilMs >= b.untilMs ? a : b;
}

/**
 * One permit source per alternative of a batch with fallbacks (its first choice, then each of
 * options.fallbacks), as the one `permits` the executor asks: each attempt asks the limiter of
 * the alternative the executor names (acquire's third argument, `{ alternative }`), and its
 * release goes back to the limiter that granted it, so a fallback is paced like any other
 * call, never sent around a limiter. A limiter that defers (its breaker open, its wait too
 * long) sends the items that asked it to the next alternative: the executor stops starting
 * attempts only once every alternative's limiter has deferred. Without fallbacks it is
 * `sources[0]` under another name.
 * @param {ReturnType<typeof remotePermits>[]} sources by alternative
 */
export function routedPermits(sources) {
  return {
    get counts() {
      return {
        acquires: sources.reduce((n, s) => n + s.counts.acquires, 0),
        releaseCalls: sources.reduce((n, s) => n + s.counts.releaseCalls, 0),
      };
    },
    /**
     * Once every alternative's limiter deferred (what deferred the executor's items), the
     * earliest of them; before that, none: the items went on elsewhere.
     */
    get deferred() {
      const all = sources.map((s) => s.deferred);
      if (all.some((d) => d === null)) return null;
      return /** @type {Deferral[]} */ (all).reduce((a, b) => (a.untilMs <= b.untilMs ? a : b));
    },
    /**
     * @param {number} index @param {Cost} cost @param {{ alternative?: number }} [ask]
     * @returns {Promise<Grant | { id: [number, string] }>}
     */
    async acquire(index, cost, ask) {
      const k = ask?.alternative ?? 0;
      const g = await sources[k].acquire(index, cost);
      return 'id' in g ? { id: [k, g.id] } : g;
    },
    /** @param {[number, string]} id the alternative and its limiter's id @param {object} outcome */
    release([k, id], outcome) {
      sources[k].release(id, outcome);
    },
    async flush() {
      await Promise.all(sources.map((s) => s.flush()));
    },
  };
}
