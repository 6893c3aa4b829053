// maxAttempts: the attempt budget of one call of map/run/stream (docs/API.md, Attempt budget).
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor, pkg } from './load.mjs';
import { startServer } from '../support/server.mjs';
import { FAST, assertResults, sdkError } from './helpers.mjs';

const T = { timeout: 20_000 };
const spent = (n) => `attempt budget exhausted: all ${n} attempts of this call are used`;

const srv = await startServer();
after(() => srv.close());

describe('maxAttempts', T, () => {
  test('is validated like the other options', () => {
    const message = (v) => `maxAttempts must be an integer in 1..=1000000000, got ${v}`;
    for (const [value, cls, shown] of [
      [0, RangeError, '0'],
      [1.5, RangeError, '1.5'],
      [1e9 + 1, RangeError, '1000000001'],
      [Infinity, RangeError, 'Infinity'],
      ['50', TypeError, '"50"'],
      [null, TypeError, 'a value of type null'],
    ]) {
      assert.throws(() => new BatchProcessor({ maxAttempts: value }), (e) => {
        assert.ok(e instanceof cls, `${value}: ${e?.constructor?.name}`);
        assert.equal(e.message, message(shown));
        return true;
      });
    }
    for (const value of [1, 10_000, 1e9, undefined]) new BatchProcessor({ maxAttempts: value }).free();
  });

  test('map: items past the budget fail as budget, in input order, with 0 attempts', async () => {
    let calls = 0;
    const bp = new BatchProcessor({ concurrency: 2, maxAttempts: 3 });
    const results = await bp.map(['a', 'b', 'c', 'd', 'e'], async (x) => {
      calls += 1;
      return x.toUpperCase();
    });
    assertResults(results, 5);
    assert.equal(calls, 3);
    assert.deepEqual(results.slice(0, 3).map((r) => r.value), ['A', 'B', 'C']);
    for (const r of results.slice(3)) {
      assert.equal(r.ok, false);
      assert.equal(r.attempts, 0);
      assert.deepEqual(r.error, { kind: 'budget', message: spent(3), retryable: false });
      // The refusal, structured for hosts that word it their own way (not enumerable).
      assert.deepEqual(r.error.budget, {});
      assert.equal(Object.keys(r.error).includes('budget'), false);
    }
    assert.deepEqual(pkg.summarize(results).byKind, { budget: 2 });
  });

  test('a refused retry keeps the last real error and says why', async () => {
    let calls = 0;
    const bp = new BatchProcessor({ concurrency: 2, maxRetries: 10, maxAttempts: 5, ...FAST });
    const results = await bp.map([1, 2], () => {
      calls += 1;
      throw sdkError(429, { type: 'rate_limit_error', message: 'slow down' });
    });
    assertResults(results, 2);
    assert.equal(calls, 5, 'exactly the budget');
    assert.equal(results[0].attempts + results[1].attempts, 5);
    for (const r of results) {
      assert.equal(r.error.kind, 'http');
      assert.equal(r.error.status, 429);
      assert.equal(r.error.type, 'rate_limit_error');
      assert.equal(r.error.retryable, true);
      assert.equal(r.error.message, `retry refused, ${spent(5)}; last error: slow down`);
      assert.deepEqual(r.error.budget, { lastError: 'slow down' });
      assert.equal(JSON.stringify(r.error).includes('budget"'), false);
    }
  });

  test('run: the upstream sees exactly the budget, and the budget is per call', async () => {
    const bp = new BatchProcessor({ concurrency: 1, maxRetries: 10, maxAttempts: 4, ...FAST });
    for (const call of ['first', 'second']) {
      srv.reset();
      const specs = [0, 1, 2].map((i) => ({ url: `${srv.url}/flaky/${call}-${i}?fail=2&status=503` }));
      const results = await bp.run(specs);
      assertResults(results, 3);
      assert.equal((await srv.stats()).requests, 4, `${call} call: 4 requests`);
      assert.equal(results.reduce((n, r) => n + r.attempts, 0), 4);
      // Each item needs 3 attempts (2 failures, then ok): at most one gets them all.
      assert.ok(results.filter((r) => r.ok).length <= 1);
      for (const r of results.filter((x) => !x.ok)) {
        if (r.attempts === 0) assert.equal(r.error.kind, 'budget');
        else assert.deepEqual([r.error.kind, r.error.status, r.error.retryable], ['http', 503, true]);
      }
    }
  });

  test('stream without a function: each item once, budget results included', async () => {
    srv.reset();
    const bp = new BatchProcessor({ concurrency: 2, maxAttempts: 3 });
    const specs = Array.from({ length: 6 }, (_, i) => ({ url: `${srv.url}/delay/${5 + i}` }));
    const seen = [];
    for await (const r of bp.stream(specs)) seen.push(r);
    assert.deepEqual(seen.map((r) => r.index).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5]);
    assert.equal(seen.filter((r) => r.ok).length, 3);
    assert.equal(seen.filter((r) => r.error?.kind === 'budget').length, 3);
    assert.equal((await srv.stats()).requests, 3);
  });
});
