// Retry rules: which outcomes retry, overrides, Retry-After handling, backoff math, seeds.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import { NO_BREAKER, FAST, assertResults, eventLog, sdkError } from './helpers.mjs';

const T = { timeout: 20000 };
let srv;
let n = 0;
const key = (name) => `${name}-${process.pid}-${++n}`;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.close();
});

/** The gap between the end of `attempt` and the start of `attempt + 1` for item `i`. */
function gapAfter(log, i, attempt) {
  const end = log.of(i).find((e) => e.type === 'end' && e.attempt === attempt);
  const next = log.of(i).find((e) => e.type === 'start' && e.attempt === attempt + 1);
  assert.ok(end, `no end event for item ${i} attempt ${attempt}`);
  assert.ok(next, `no start event for item ${i} attempt ${attempt + 1}`);
  return next.atMs - end.atMs;
}

function backoffs(log, i = 0) {
  return log.of(i).filter((e) => e.type === 'backoff').map((e) => e.delayMs);
}

describe('retries against the flaky endpoint (run)', T, () => {
  test('a flaky URL succeeds after N failures; the server counts every attempt', async () => {
    const k = key('flaky');
    const bp = new BatchProcessor({ ...FAST, maxRetries: 4 });
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=2` }]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.equal(r.attempts, 3);
    assert.equal(r.value.status, 200);
    assert.deepEqual(r.value.body, { key: k, attempt: 3 });
    assert.equal(srv.stats().byKey[k], 3);
  });

  test('retries stop after maxRetries; the last error is reported', async () => {
    const k = key('exhaust');
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2 });
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=100` }]);
    assert.equal(r.ok, false);
    assert.equal(r.attempts, 3);
    assert.equal(r.error.kind, 'http');
    assert.equal(r.error.status, 503);
    assert.equal(r.error.retryable, true);
    assert.equal(srv.stats().byKey[k], 3);
  });

  test('maxRetries 0 means a single attempt', async () => {
    const k = key('zero');
    const bp = new BatchProcessor({ ...FAST, maxRetries: 0 });
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=1` }]);
    assert.equal(r.ok, false);
    assert.equal(r.attempts, 1);
    assert.equal(srv.stats().byKey[k], 1);
  });

  test('default maxRetries is 4 (5 attempts)', async () => {
    const k = key('default');
    const bp = new BatchProcessor(FAST);
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=100` }]);
    assert.equal(r.attempts, 5);
    assert.equal(srv.stats().byKey[k], 5);
  });

  for (const status of [408, 409, 429, 500, 502, 503, 504, 529]) {
    test(`status ${status} is retried`, async () => {
      const k = key(`s${status}`);
      const bp = new BatchProcessor({ ...FAST, maxRetries: 2 });
      const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=1&status=${status}` }]);
      assert.equal(r.ok, true, JSON.stringify(r.error));
      assert.equal(r.attempts, 2);
      assert.equal(srv.stats().byKey[k], 2);
    });
  }

  for (const status of [400, 401, 403, 404, 413, 422]) {
    test(`status ${status} is not retried`, async () => {
      const k = key(`s${status}`);
      const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
      const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=1&status=${status}` }]);
      assert.equal(r.ok, false);
      assert.equal(r.attempts, 1);
      assert.equal(r.error.kind, 'http');
      assert.equal(r.error.status, status);
      assert.equal(r.error.retryable, false);
      assert.equal(srv.stats().byKey[k], 1);
    });
  }

  test('a spend-cap 429 (enforced_spend_limit_reached) is not retried', async () => {
    const k = key('spend');
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
    const [r] = await bp.run([
      { url: `${srv.url}/flaky/${k}?fail=1&status=429&spendCap=1&type=rate_limit_error` },
    ]);
    assert.equal(r.ok, false);
    assert.equal(r.attempts, 1);
    assert.equal(r.error.kind, 'http');
    assert.equal(r.error.status, 429);
    assert.equal(r.error.type, 'rate_limit_error');
    assert.equal(r.error.retryable, false);
    assert.equal(srv.stats().byKey[k], 1);
  });

  test('x-should-retry: true makes a 400 retry', async () => {
    const k = key('sr-true');
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=1&status=400&shouldRetry=true` }]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.equal(r.attempts, 2);
    assert.equal(srv.stats().byKey[k], 2);
  });

  test('x-should-retry: false stops a 503 from retrying', async () => {
    const k = key('sr-false');
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=1&status=503&shouldRetry=false` }]);
    assert.equal(r.ok, false);
    assert.equal(r.attempts, 1);
    assert.equal(r.error.status, 503);
    assert.equal(r.error.retryable, false);
    assert.equal(srv.stats().byKey[k], 1);
  });

  test('retry-after-ms from the server is honoured', async () => {
    const k = key('ram');
    const log = eventLog();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2, onEvent: log.onEvent });
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=1&status=429&retryAfterMs=250` }]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.equal(r.attempts, 2);
    assert.deepEqual(backoffs(log), [250]);
    // atMs may be rounded to whole ms: allow 1 ms for rounding, nothing for early timers.
    const gap = gapAfter(log, 0, 1);
    assert.ok(gap >= 249, `waited only ${gap} ms of a 250 ms retry-after-ms`);
  });

  test('retry-after (seconds) from the server is honoured', async () => {
    const k = key('ra');
    const log = eventLog();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2, onEvent: log.onEvent });
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=1&status=503&retryAfter=1` }]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.deepEqual(backoffs(log), [1000]);
    const gap = gapAfter(log, 0, 1);
    assert.ok(gap >= 999, `waited only ${gap} ms of a 1 s retry-after`);
  });

  test('retry-after-ms takes precedence over retry-after', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2, onEvent: log.onEvent });
    const [r] = await bp.map([0], (_, { attempt }) => {
      if (attempt === 1) throw sdkError(503, { headers: { 'retry-after-ms': '120', 'retry-after': '30' } });
      return 'ok';
    });
    assert.equal(r.ok, true);
    assert.deepEqual(backoffs(log), [120]);
  });

  test('retry-after as an HTTP date is honoured', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2, onEvent: log.onEvent });
    let when;
    const [r] = await bp.map([0], (_, { attempt }) => {
      if (attempt === 1) {
        // Whole seconds only: this is 1..2 s from now.
        when = new Date(Date.now() + 2000);
        throw sdkError(503, { headers: new Headers({ 'retry-after': when.toUTCString() }) });
      }
      return 'ok';
    });
    assert.equal(r.ok, true, JSON.stringify(r.error));
    const [delay] = backoffs(log);
    assert.ok(delay >= 500 && delay <= 2000, `HTTP-date retry-after gave delay ${delay}`);
    assert.ok(gapAfter(log, 0, 1) >= delay - 1);
  });

  test('maxRetryAfterMs caps a server Retry-After', async () => {
    const k = key('cap');
    const log = eventLog();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2, maxRetryAfterMs: 100, onEvent: log.onEvent });
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=1&status=429&retryAfterMs=60000` }]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.deepEqual(backoffs(log), [100]);
    assert.ok(gapAfter(log, 0, 1) >= 99);
  });
});

describe('backoff math', T, () => {
  const failing = (times) => (_, { attempt }) => {
    if (attempt <= times) throw sdkError(503);
    return attempt;
  };

  test('jitter "none": baseMs * 2^(retry-1), capped at maxMs', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({
      ...NO_BREAKER,
      maxRetries: 5,
      backoff: { baseMs: 20, maxMs: 70, jitter: 'none' },
      onEvent: log.onEvent,
    });
    const [r] = await bp.map([0], failing(4));
    assert.equal(r.ok, true);
    assert.equal(r.attempts, 5);
    assert.deepEqual(backoffs(log), [20, 40, 70, 70]);
    for (let a = 1; a <= 4; a++) {
      const want = [20, 40, 70, 70][a - 1];
      const gap = gapAfter(log, 0, a);
      assert.ok(gap >= want - 1, `gap after attempt ${a}: ${gap} < ${want}`);
    }
  });

  test('jitter "full": every delay within [0, min(maxMs, baseMs * 2^(retry-1))]', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({
      ...NO_BREAKER,
      maxRetries: 6,
      seed: 1,
      backoff: { baseMs: 10, maxMs: 50, jitter: 'full' },
      onEvent: log.onEvent,
    });
    const [r] = await bp.map([0], failing(6));
    assert.equal(r.ok, true);
    const ds = backoffs(log);
    assert.equal(ds.length, 6);
    ds.forEach((d, i) => {
      const cap = Math.min(50, 10 * 2 ** i);
      assert.ok(d >= 0 && d <= cap, `retry ${i + 1}: delay ${d} outside [0, ${cap}]`);
    });
  });

  test('default jitter is "full" (delays never exceed the exponential cap)', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ ...NO_BREAKER, maxRetries: 3, backoff: { baseMs: 8, maxMs: 30 }, onEvent: log.onEvent });
    await bp.map([0], failing(3));
    const ds = backoffs(log);
    assert.equal(ds.length, 3);
    ds.forEach((d, i) => assert.ok(d >= 0 && d <= Math.min(30, 8 * 2 ** i), `delay ${d}`));
  });

  test('jitter "decorrelated": delays stay within maxMs', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({
      ...NO_BREAKER,
      maxRetries: 6,
      backoff: { baseMs: 5, maxMs: 40, jitter: 'decorrelated' },
      onEvent: log.onEvent,
    });
    const [r] = await bp.map([0], failing(6));
    assert.equal(r.ok, true);
    const ds = backoffs(log);
    assert.equal(ds.length, 6);
    ds.forEach((d) => assert.ok(d >= 0 && d <= 40, `delay ${d} > maxMs`));
  });

  test('the same seed gives the same jitter', async () => {
    const run = async (seed) => {
      const log = eventLog();
      const bp = new BatchProcessor({
      ...NO_BREAKER,
        seed,
        maxRetries: 5,
        backoff: { baseMs: 10, maxMs: 200, jitter: 'full' },
        onEvent: log.onEvent,
      });
      // One item: with several, the order of random draws could depend on timing.
      await bp.map([0], failing(5));
      return backoffs(log, 0);
    };
    const a = await run(12345);
    const b = await run(12345);
    assert.equal(a.length, 5);
    assert.deepEqual(a, b);
  });

  test('default backoff.baseMs is 500 (jitter none)', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ ...NO_BREAKER, maxRetries: 1, backoff: { jitter: 'none' }, onEvent: log.onEvent });
    const [r] = await bp.map([0], failing(1));
    assert.equal(r.ok, true);
    assert.deepEqual(backoffs(log), [500]);
  });
});

describe('classification of thrown values (map)', T, () => {
  test('SDK-shaped error with status + Headers: retried per status, type read', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2 });
    const results = await bp.map([0, 1], (i) => {
      if (i === 0) throw sdkError(503, { headers: new Headers(), type: 'overloaded_error' });
      throw sdkError(400, { headers: new Headers(), type: 'invalid_request_error', message: 'bad field' });
    });
    assertResults(results, 2);
    const [a, b] = results;
    assert.equal(a.error.kind, 'http');
    assert.equal(a.error.status, 503);
    assert.equal(a.error.type, 'overloaded_error');
    assert.equal(a.attempts, 3);
    assert.equal(b.error.kind, 'http');
    assert.equal(b.error.status, 400);
    assert.equal(b.error.type, 'invalid_request_error');
    assert.equal(b.error.retryable, false);
    assert.equal(b.attempts, 1);
    assert.match(b.error.message, /bad field|400/);
  });

  test('type is read from error.error.type, error.type or type', async () => {
    const bp = new BatchProcessor({ maxRetries: 0 });
    const thrown = [
      { status: 400, error: { type: 'error', error: { type: 'anthropic_type' } } },
      { status: 400, error: { type: 'openai_body_type', message: 'm' } },
      Object.assign(new Error('openai'), { status: 400, type: 'top_type' }),
    ];
    const results = await bp.map(thrown, (e) => {
      throw e;
    });
    assert.deepEqual(results.map((r) => r.error.type), ['anthropic_type', 'openai_body_type', 'top_type']);
    assert.ok(results.every((r) => r.error.kind === 'http' && r.error.status === 400));
  });

  test('headers as a plain object are read (retry-after-ms, x-should-retry)', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2, onEvent: log.onEvent });
    const results = await bp.map([0, 1, 2], (i, { attempt }) => {
      if (i === 0 && attempt === 1) throw { status: 429, headers: { 'retry-after-ms': '150' } };
      if (i === 1) throw { status: 503, headers: { 'x-should-retry': 'false' } };
      if (i === 2 && attempt === 1) throw { status: 404, headers: { 'x-should-retry': 'true' } };
      return attempt;
    });
    assert.equal(results[0].ok, true);
    assert.deepEqual(backoffs(log, 0), [150]);
    assert.ok(gapAfter(log, 0, 1) >= 149);
    assert.equal(results[1].ok, false);
    assert.equal(results[1].attempts, 1);
    assert.equal(results[1].error.retryable, false);
    assert.equal(results[2].ok, true);
    assert.equal(results[2].attempts, 2);
  });

  test('x-should-retry in a Headers object overrides too', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2 });
    const [r] = await bp.map([0], () => {
      throw sdkError(500, { headers: new Headers({ 'X-Should-Retry': 'false' }) });
    });
    assert.equal(r.attempts, 1);
    assert.equal(r.error.retryable, false);
  });

  test('an SDK-shaped spend-cap 429 is not retried', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
    let calls = 0;
    const [r] = await bp.map([0], () => {
      calls++;
      throw sdkError(429, { type: 'rate_limit_error', spendCap: true });
    });
    assert.equal(calls, 1);
    assert.equal(r.error.kind, 'http');
    assert.equal(r.error.status, 429);
    assert.equal(r.error.retryable, false);
  });

  test('fetch failures and APIConnectionError are network errors and retried', async () => {
    class APIConnectionError extends Error {
      constructor() {
        super('Connection error.');
        this.name = 'APIConnectionError';
      }
    }
    const makers = [
      () => new TypeError('fetch failed'),
      () => new TypeError('Failed to fetch'),
      () => new TypeError('NetworkError when attempting to fetch resource.'),
      () => new TypeError('Load failed'),
      () => new APIConnectionError(),
    ];
    const bp = new BatchProcessor({ ...FAST, maxRetries: 1 });
    const results = await bp.map(makers, (make) => {
      throw make();
    });
    results.forEach((r, i) => {
      assert.equal(r.ok, false);
      assert.equal(r.error.kind, 'network', `maker ${i}: kind ${r.error.kind}`);
      assert.equal(r.error.retryable, true, `maker ${i}`);
      assert.equal(r.attempts, 2, `maker ${i} should be retried`);
    });
    // A network failure that clears up succeeds.
    const [ok] = await bp.map([0], (_, { attempt }) => {
      if (attempt === 1) throw new TypeError('fetch failed');
      return 'up';
    });
    assert.equal(ok.ok, true);
    assert.equal(ok.value, 'up');
  });

  test('an own boolean retryable property overrides the decision', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2 });
    const results = await bp.map([0, 1, 2, 3], (i, { attempt }) => {
      if (i === 0 && attempt === 1) throw Object.assign(new Error('transient'), { retryable: true });
      if (i === 1) throw { status: 503, retryable: false };
      if (i === 2 && attempt === 1) throw { status: 400, retryable: true };
      if (i === 3) throw Object.assign(new TypeError('fetch failed'), { retryable: false });
      return attempt;
    });
    assert.equal(results[0].ok, true);
    assert.equal(results[0].attempts, 2);
    assert.equal(results[1].ok, false);
    assert.equal(results[1].attempts, 1);
    assert.equal(results[1].error.retryable, false);
    assert.equal(results[2].ok, true);
    assert.equal(results[2].attempts, 2);
    assert.equal(results[3].attempts, 1);
    assert.equal(results[3].error.retryable, false);
  });

  test('anything else is a task error, not retried', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
    let calls = 0;
    const [r] = await bp.map([0], () => {
      calls++;
      throw new Error('boom');
    });
    assert.equal(calls, 1);
    assert.equal(r.error.kind, 'task');
    assert.equal(r.error.retryable, false);
    assert.equal(r.attempts, 1);
    assert.match(r.error.message, /boom/);
  });

  test('a non-numeric status is not an http error', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2 });
    const [r] = await bp.map([0], () => {
      throw { status: '503', message: 'string status' };
    });
    assert.equal(r.error.kind, 'task');
    assert.equal(r.attempts, 1);
  });
});
