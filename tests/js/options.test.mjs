// new BatchProcessor(options): defaults, validation, error classes and messages (docs/API.md).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';

/** Expects construction to throw `cls` with a message that starts with `name` and shows `shown`. */
function rejects(options, cls, name, shown) {
  let err;
  try {
    new BatchProcessor(options);
  } catch (e) {
    err = e;
  }
  const what = JSON.stringify(options, (_, v) => (typeof v === 'function' ? '[fn]' : v));
  assert.ok(err, `expected ${what} to throw`);
  assert.ok(err instanceof cls, `${what}: expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.startsWith(name), `${what}: message should start with "${name}": ${err.message}`);
  if (shown !== undefined) {
    assert.ok(err.message.includes(shown), `${what}: message should show the value ${shown}: ${err.message}`);
  }
  return err;
}

/** For values of the right JS type that are not integers (1.5, NaN, Infinity) either class is fine. */
function rejectsEither(options, name) {
  let err;
  try {
    new BatchProcessor(options);
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${JSON.stringify(options)} to throw`);
  assert.ok(err instanceof TypeError || err instanceof RangeError, `got ${err?.constructor?.name}: ${err?.message}`);
  assert.ok(err.message.startsWith(name), `message should start with "${name}": ${err.message}`);
}

describe('options', () => {
  test('no options, empty options and every valid option construct', () => {
    assert.ok(new BatchProcessor() instanceof BatchProcessor);
    assert.ok(new BatchProcessor({}) instanceof BatchProcessor);
    const ac = new AbortController();
    const bp = new BatchProcessor({
      concurrency: 3,
      maxRetries: 2,
      timeoutMs: 1000,
      deadlineMs: 5000,
      backoff: { baseMs: 10, maxMs: 100, jitter: 'decorrelated' },
      maxRetryAfterMs: 500,
      seed: 42,
      signal: ac.signal,
      onProgress: () => {},
      onEvent: () => {},
    });
    assert.equal(typeof bp.map, 'function');
    assert.equal(typeof bp.run, 'function');
    assert.equal(typeof bp.stream, 'function');
  });

  test('range boundaries are inclusive', () => {
    const ok = [
      { concurrency: 1 },
      { concurrency: 10000 },
      { maxRetries: 0 },
      { maxRetries: 100 },
      { timeoutMs: 1 },
      { timeoutMs: 2147483647 },
      { deadlineMs: 1 },
      { deadlineMs: 2147483647 },
      { backoff: { baseMs: 1 } },
      { backoff: { baseMs: 3600000, maxMs: 3600000 } },
      { backoff: { baseMs: 200, maxMs: 200 } },
      { backoff: { jitter: 'full' } },
      { backoff: { jitter: 'none' } },
      { backoff: { jitter: 'decorrelated' } },
      { backoff: {} },
      { maxRetryAfterMs: 0 },
      { maxRetryAfterMs: 3600000 },
      { seed: 0 },
      { seed: 2 ** 53 - 1 },
    ];
    for (const o of ok) {
      assert.doesNotThrow(() => new BatchProcessor(o), `${JSON.stringify(o)} should be accepted`);
    }
  });

  test('wrong types throw TypeError naming the option and showing the value', () => {
    const err = rejects({ concurrency: 'abc' }, TypeError, 'concurrency', '"abc"');
    // The documented example message.
    assert.match(err.message, /^concurrency must be an integer in 1\.\.=10000, got "abc"/);
    rejects({ concurrency: '8' }, TypeError, 'concurrency', '"8"');
    rejects({ concurrency: true }, TypeError, 'concurrency', 'true');
    rejects({ maxRetries: '3' }, TypeError, 'maxRetries', '"3"');
    rejects({ timeoutMs: '100' }, TypeError, 'timeoutMs', '"100"');
    rejects({ deadlineMs: {} }, TypeError, 'deadlineMs');
    rejects({ maxRetryAfterMs: [] }, TypeError, 'maxRetryAfterMs');
    rejects({ seed: '1' }, TypeError, 'seed', '"1"');
    rejects({ backoff: 5 }, TypeError, 'backoff', '5');
    rejects({ backoff: 'fast' }, TypeError, 'backoff', '"fast"');
    rejects({ backoff: { baseMs: '10' } }, TypeError, 'backoff.baseMs', '"10"');
    rejects({ backoff: { maxMs: false } }, TypeError, 'backoff.maxMs', 'false');
    rejects({ backoff: { jitter: 5 } }, TypeError, 'backoff.jitter', '5');
    rejects({ signal: {} }, TypeError, 'signal');
    rejects({ signal: 'abort' }, TypeError, 'signal', '"abort"');
    rejects({ signal: new AbortController() }, TypeError, 'signal'); // the controller, not its signal
    rejects({ onProgress: 5 }, TypeError, 'onProgress', '5');
    rejects({ onProgress: {} }, TypeError, 'onProgress');
    rejects({ onEvent: 'log' }, TypeError, 'onEvent', '"log"');
  });

  test('null is a wrong type, not "use the default"', () => {
    rejects({ concurrency: null }, TypeError, 'concurrency', 'null');
    rejects({ timeoutMs: null }, TypeError, 'timeoutMs', 'null');
    rejects({ signal: null }, TypeError, 'signal', 'null');
  });

  test('out-of-range values throw RangeError naming the option and showing the value', () => {
    rejects({ concurrency: 0 }, RangeError, 'concurrency', '0');
    rejects({ concurrency: -1 }, RangeError, 'concurrency', '-1');
    rejects({ concurrency: 10001 }, RangeError, 'concurrency', '10001');
    rejects({ maxRetries: -1 }, RangeError, 'maxRetries', '-1');
    rejects({ maxRetries: 101 }, RangeError, 'maxRetries', '101');
    rejects({ timeoutMs: 0 }, RangeError, 'timeoutMs', '0');
    rejects({ timeoutMs: 2147483648 }, RangeError, 'timeoutMs', '2147483648');
    rejects({ deadlineMs: 0 }, RangeError, 'deadlineMs', '0');
    rejects({ deadlineMs: 2147483648 }, RangeError, 'deadlineMs', '2147483648');
    rejects({ backoff: { baseMs: 0 } }, RangeError, 'backoff.baseMs', '0');
    rejects({ backoff: { baseMs: 3600001, maxMs: 3600000 } }, RangeError, 'backoff.baseMs', '3600001');
    rejects({ backoff: { maxMs: 3600001 } }, RangeError, 'backoff.maxMs', '3600001');
    // maxMs must be >= baseMs (explicit, and against the default baseMs of 500).
    rejects({ backoff: { baseMs: 1000, maxMs: 999 } }, RangeError, 'backoff.maxMs', '999');
    rejects({ backoff: { maxMs: 100 } }, RangeError, 'backoff.maxMs', '100');
    rejects({ maxRetryAfterMs: -1 }, RangeError, 'maxRetryAfterMs', '-1');
    rejects({ maxRetryAfterMs: 3600001 }, RangeError, 'maxRetryAfterMs', '3600001');
    rejects({ seed: -1 }, RangeError, 'seed', '-1');
    rejects({ seed: 2 ** 53 }, RangeError, 'seed');
  });

  test('non-integer numbers are rejected (TypeError or RangeError) naming the option', () => {
    rejectsEither({ concurrency: 1.5 }, 'concurrency');
    rejectsEither({ concurrency: NaN }, 'concurrency');
    rejectsEither({ concurrency: Infinity }, 'concurrency');
    rejectsEither({ maxRetries: 0.5 }, 'maxRetries');
    rejectsEither({ timeoutMs: 10.25 }, 'timeoutMs');
    rejectsEither({ deadlineMs: NaN }, 'deadlineMs');
    rejectsEither({ backoff: { baseMs: 1.5 } }, 'backoff.baseMs');
    rejectsEither({ seed: 0.1 }, 'seed');
    rejectsEither({ backoff: { jitter: 'random' } }, 'backoff.jitter');
  });

  test('unknown keys throw TypeError: unknown option "name"', () => {
    let err;
    try {
      new BatchProcessor({ concurency: 4 });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof TypeError, `got ${err}`);
    assert.match(err.message, /unknown option "concurency"/);

    err = undefined;
    try {
      new BatchProcessor({ concurrency: 4, timeout: 100 });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof TypeError, `got ${err}`);
    assert.match(err.message, /unknown option "timeout"/);

    // Inside backoff too.
    err = undefined;
    try {
      new BatchProcessor({ backoff: { base: 10 } });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof TypeError, `got ${err}`);
    assert.match(err.message, /unknown option/);
    assert.match(err.message, /base/);
  });

  test('undefined is "not given" at every level; nested groups are checked by name', () => {
    for (const o of [{ concurrency: undefined }, { backoff: undefined }, { backoff: { baseMs: undefined } },
      { rateLimit: {} }, { breaker: { failures: undefined } }, { signal: undefined, onEvent: undefined }]) {
      assert.doesNotThrow(() => new BatchProcessor(o).free(), JSON.stringify(o));
    }
    rejects({ backoff: null }, TypeError, 'backoff must be an object', 'null');
    rejects({ rateLimit: [] }, TypeError, 'rateLimit must be an object');
    rejects({ breaker: { cooldownMs: 0 } }, RangeError, 'breaker.cooldownMs must be an integer in 1..=3600000', '0');
    rejects({ breaker: { failures: '5' } }, TypeError, 'breaker.failures', '"5"');
    assert.throws(() => new BatchProcessor({ rateLimit: { rpm: 5 } }), (e) => e instanceof TypeError && e.message === 'unknown option "rateLimit.rpm"');
    assert.throws(() => new BatchProcessor({ provider: { name: 'anthropic', key: 'k' } }), /unknown option "provider.key"/);
    rejects({ provider: { name: 5 } }, TypeError, 'provider.name must be "anthropic", "openai" or "http"', '5');
    rejects({ cost: 'cheap' }, TypeError, 'cost must be a function', '"cheap"');
    // An apiKey of the wrong type is named, never shown.
    const err = rejects({ provider: { name: 'anthropic', apiKey: 12345678 } }, TypeError, 'provider.apiKey must be a string');
    assert.doesNotMatch(err.message, /12345678/);
  });

  test('a getter that answers differently on the second read gets defaults, not a crash', async () => {
    let reads = 0;
    const sly = { get backoff() { reads++; return reads === 1 ? {} : 5; } };
    const bp = new BatchProcessor(sly);
    assert.ok(reads >= 2, 'read by the key check and again by serde');
    assert.equal((await bp.map([2], (x) => x * 2))[0].value, 4);
  });

  test('call options: only the declared ones', async () => {
    const bp = new BatchProcessor();
    await assert.rejects(bp.map([1], (x) => x, { signals: [] }), /unknown option "signals"/);
    await assert.rejects(bp.map([1], (x) => x, { signal: 5 }), /signal must be an AbortSignal, got 5/);
    assert.equal((await bp.map([1], (x) => x, { signal: undefined }))[0].value, 1);
  });

  test('a rejected construction does not poison later ones', async () => {
    assert.throws(() => new BatchProcessor({ concurrency: 0 }), RangeError);
    const bp = new BatchProcessor({ concurrency: 2 });
    const results = await bp.map([1, 2, 3], (x) => x * 2);
    assert.deepEqual(results.map((r) => r.value), [2, 4, 6]);
  });
});
