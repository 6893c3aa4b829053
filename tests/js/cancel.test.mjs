// Cancellation: options.signal (every call of the processor) and callOptions.signal (one call).
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import {
  FAST, assertResults, eventually, sleep, sleepOrAbort, sdkError,
} from './helpers.mjs';

const T = { timeout: 20000 };
const srv = await startServer();
after(() => srv.close());

/** Items 0 and 1 finish in 10 ms; the rest take 5 s unless aborted. */
const mixed = (fired, calls) => async (i, { signal }) => {
  calls?.push(i);
  signal.addEventListener('abort', () => fired.push(i));
  await sleepOrAbort(i < 2 ? 10 : 5000, signal);
  return i;
};

function assertCancelled(results, n, okCount) {
  assertResults(results, n);
  for (let i = 0; i < n; i++) {
    const r = results[i];
    if (i < okCount) {
      assert.equal(r.ok, true, `item ${i}: ${JSON.stringify(r.error)}`);
      assert.equal(r.value, i);
    } else {
      assert.equal(r.ok, false, `item ${i}`);
      assert.equal(r.error.kind, 'aborted', `item ${i}: ${r.error.kind}`);
      assert.equal(r.error.retryable, false);
    }
  }
}

describe('cancellation', T, () => {
  test('options.signal aborted mid-run: every item accounted for, the promise resolves', async () => {
    const ac = new AbortController();
    const fired = [];
    const calls = [];
    const bp = new BatchProcessor({ concurrency: 3, signal: ac.signal });
    setTimeout(() => ac.abort(), 150);
    const results = await bp.map([0, 1, 2, 3, 4, 5, 6, 7], mixed(fired, calls));
    assertCancelled(results, 8, 2);
    // 0,1 finished; 2,3,4 were running (slots freed by 0 and 1); 5,6,7 never started.
    assert.deepEqual(calls, [0, 1, 2, 3, 4]);
    assert.deepEqual(results.map((r) => r.attempts), [1, 1, 1, 1, 1, 0, 0, 0]);
    assert.ok(await eventually(() => [2, 3, 4].every((i) => fired.includes(i)), 1000), `fired ${fired}`);
  });

  test('callOptions.signal aborted mid-run', async () => {
    const ac = new AbortController();
    const fired = [];
    const bp = new BatchProcessor({ concurrency: 3 });
    setTimeout(() => ac.abort(), 150);
    const results = await bp.map([0, 1, 2, 3, 4, 5], mixed(fired), { signal: ac.signal });
    assertCancelled(results, 6, 2);
    assert.deepEqual(results.map((r) => r.attempts), [1, 1, 1, 1, 1, 0]);
    assert.ok(await eventually(() => [2, 3, 4].every((i) => fired.includes(i)), 1000));
  });

  test('callOptions.signal cancels only its own call', async () => {
    const ac = new AbortController();
    const bp = new BatchProcessor({ concurrency: 8 });
    setTimeout(() => ac.abort(), 80);
    const [cancelled, other] = await Promise.all([
      bp.map([0, 1, 2], (_, { signal }) => sleepOrAbort(3000, signal), { signal: ac.signal }),
      bp.map([0, 1, 2], async (i, { signal }) => {
        await sleepOrAbort(200, signal);
        return i;
      }),
    ]);
    assert.ok(cancelled.every((r) => r.error?.kind === 'aborted'));
    assert.deepEqual(other.map((r) => r.value), [0, 1, 2]);
  });

  test('options.signal cancels every call of the processor', async () => {
    const ac = new AbortController();
    const bp = new BatchProcessor({ signal: ac.signal });
    setTimeout(() => ac.abort(), 80);
    const [a, b] = await Promise.all([
      bp.map([0, 1], (_, { signal }) => sleepOrAbort(3000, signal)),
      bp.map([0, 1], (_, { signal }) => sleepOrAbort(3000, signal)),
    ]);
    for (const r of [...a, ...b]) assert.equal(r.error?.kind, 'aborted');
    // A call made after the abort does not run anything.
    let called = 0;
    const later = await bp.map([0, 1], () => called++);
    assert.equal(called, 0);
    assert.ok(later.every((r) => r.error?.kind === 'aborted' && r.attempts === 0));
  });

  test('an already-aborted call signal runs nothing', async () => {
    const bp = new BatchProcessor();
    let called = 0;
    const results = await bp.map([0, 1, 2], () => called++, { signal: AbortSignal.abort() });
    assert.equal(called, 0);
    assertResults(results, 3);
    assert.ok(results.every((r) => r.error.kind === 'aborted' && r.attempts === 0));
  });

  test('aborting during a backoff ends the wait at once', async () => {
    const ac = new AbortController();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3, signal: ac.signal });
    let attempts = 0;
    setTimeout(() => ac.abort(), 100);
    // The 30 s retry-after would outlast this test's timeout if the wait were not cut short.
    const [r] = await bp.map([0], () => {
      attempts++;
      throw sdkError(429, { headers: { 'retry-after-ms': '30000' } });
    });
    assert.equal(attempts, 1);
    assert.equal(r.error.kind, 'aborted');
    assert.equal(r.attempts, 1);
  });

  test('aborting a run() cancels the in-flight fetches', async () => {
    srv.reset();
    const ac = new AbortController();
    const bp = new BatchProcessor({ concurrency: 2 });
    setTimeout(() => ac.abort(), 100);
    const results = await bp.run(
      [{ url: `${srv.url}/hang` }, { url: `${srv.url}/hang` }, { url: `${srv.url}/text` }],
      { signal: ac.signal },
    );
    assertResults(results, 3);
    assert.ok(results.every((r) => r.error?.kind === 'aborted'), JSON.stringify(results));
    assert.ok(await eventually(() => srv.stats().aborted === 2, 2000), `aborted=${srv.stats().aborted}`);
    assert.equal(srv.stats().requests, 2, 'the queued spec must not be sent');
  });

  test('a task that ignores its signal still ends as aborted', async () => {
    const ac = new AbortController();
    const bp = new BatchProcessor();
    setTimeout(() => ac.abort(), 60);
    const [r] = await bp.map([0], () => new Promise(() => {}), { signal: ac.signal });
    assert.equal(r.error.kind, 'aborted');
  });

  test('caller aborts are not retried even with retries left', async () => {
    const ac = new AbortController();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 5 });
    let calls = 0;
    setTimeout(() => ac.abort(), 50);
    const [r] = await bp.map([0], (_, { signal }) => {
      calls++;
      return sleepOrAbort(2000, signal);
    }, { signal: ac.signal });
    await sleep(50);
    assert.equal(calls, 1);
    assert.equal(r.attempts, 1);
    assert.equal(r.error.kind, 'aborted');
  });
});
