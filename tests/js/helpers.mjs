// Small shared helpers for the JS tests (not a test file itself).
import assert from 'node:assert/strict';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves after `ms`, or rejects with the signal's reason as soon as `signal` aborts. */
export function sleepOrAbort(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(t);
      reject(signal.reason ?? new Error('aborted'));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Never settles on its own; rejects when `signal` aborts. */
export function waitForAbort(signal) {
  return new Promise((_, reject) => {
    if (signal.aborted) return reject(signal.reason ?? new Error('aborted'));
    signal.addEventListener('abort', () => reject(signal.reason ?? new Error('aborted')), { once: true });
  });
}

/** A deterministic PRNG (mulberry32) so "random" latencies are reproducible. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Polls `cond` until true or `ms` passes; returns whether it became true. */
export async function eventually(cond, ms = 2000, step = 10) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(step);
  }
  return Boolean(await cond());
}

/** An error shaped like the Anthropic / OpenAI SDKs' APIError. */
export function sdkError(status, { headers = {}, type, message, spendCap = false, extra = {} } = {}) {
  const err = new Error(message ?? `${status} status code`);
  err.name = 'APIError';
  err.status = status;
  err.headers = headers;
  const inner = { type: type ?? 'api_error', message: message ?? 'error' };
  if (spendCap) inner.details = { error_code: 'enforced_spend_limit_reached' };
  err.error = { type: 'error', error: inner };
  Object.assign(err, extra);
  return err;
}

/** Tracks attempts in flight inside a task fn. */
export function inflightMeter() {
  const m = { now: 0, max: 0 };
  m.enter = () => {
    m.now += 1;
    m.max = Math.max(m.max, m.now);
  };
  m.leave = () => {
    m.now -= 1;
  };
  return m;
}

/** Collects onEvent events; `of(i)` gives one item's events. */
export function eventLog() {
  const events = [];
  return {
    events,
    onEvent: (e) => events.push({ ...e }),
    of: (i) => events.filter((e) => e.index === i),
  };
}

/** Asserts the general ItemResult shape of `r` for input position `i`. */
export function assertResultShape(r, i) {
  assert.equal(typeof r, 'object');
  assert.equal(r.index, i, `result ${i} has index ${r.index}`);
  assert.equal(typeof r.ok, 'boolean');
  assert.ok(Number.isInteger(r.attempts) && r.attempts >= 0, `attempts ${r.attempts}`);
  assert.equal(typeof r.elapsedMs, 'number');
  assert.ok(r.elapsedMs >= 0, `elapsedMs ${r.elapsedMs}`);
  if (r.ok) {
    assert.ok('value' in r, 'ok result has value');
    assert.ok(!('error' in r) || r.error === undefined, 'ok result has no error');
  } else {
    assert.equal(typeof r.error, 'object');
    assert.equal(typeof r.error.kind, 'string');
    assert.ok(
      ['timeout', 'http', 'network', 'aborted', 'deadline', 'invalid', 'task', 'budget'].includes(r.error.kind),
      `unknown kind ${r.error.kind}`,
    );
    assert.equal(typeof r.error.message, 'string');
    assert.equal(typeof r.error.retryable, 'boolean');
  }
}

/** Asserts `results` is one well-formed result per item, in input order. */
export function assertResults(results, n) {
  assert.ok(Array.isArray(results), 'results is an array');
  assert.equal(results.length, n, `expected ${n} results, got ${results.length}`);
  results.forEach((r, i) => assertResultShape(r, i));
}

/** `fn` must reject (or throw synchronously — accepted here) with `cls`. */
export async function assertFailsWith(fn, cls) {
  let threw;
  try {
    const v = fn();
    if (v && typeof v[Symbol.asyncIterator] === 'function') {
      for await (const _ of v) break;
    } else {
      await v;
    }
  } catch (e) {
    threw = e;
  }
  assert.ok(threw, 'expected a failure');
  assert.ok(threw instanceof cls, `expected ${cls.name}, got ${threw?.constructor?.name}: ${threw?.message}`);
}

/** Fast backoff so retry tests do not wait. */
// Fast retries, and the circuit breaker off: these options serve tests of the retry rules,
// where a run of failures is the point; the breaker is tested on its own (pacing tests).
export const NO_BREAKER = { breaker: { failures: 0 } };
export const FAST = { backoff: { baseMs: 1, maxMs: 5, jitter: 'none' }, ...NO_BREAKER };
