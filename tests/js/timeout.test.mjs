// timeoutMs: per attempt, really aborts (signal fires, fetch is cancelled), retried, and time
// spent queued does not count.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import {
  FAST, assertResults, eventLog, eventually, sleep, sleepOrAbort, waitForAbort,
} from './helpers.mjs';

const T = { timeout: 20000 };
const srv = await startServer();
after(() => srv.close());

describe('per-attempt timeout', T, () => {
  test('a hung fetch is aborted: the server sees the client go away', async () => {
    srv.reset();
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 150, maxRetries: 0 });
    const [r] = await bp.run([{ url: `${srv.url}/hang` }]);
    assert.equal(r.ok, false);
    assert.equal(r.error.kind, 'timeout');
    assert.equal(r.error.retryable, true);
    assert.equal(r.attempts, 1);
    assert.ok(r.elapsedMs >= 149, `elapsedMs ${r.elapsedMs}`);
    assert.ok(await eventually(() => srv.stats().aborted === 1, 2000), `aborted=${srv.stats().aborted}`);
    assert.equal(srv.stats().inFlight, 0);
  });

  test('timeouts are retried, each attempt aborted', async () => {
    srv.reset();
    const log = eventLog();
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 80, maxRetries: 2, onEvent: log.onEvent });
    const [r] = await bp.run([{ url: `${srv.url}/hang` }]);
    assert.equal(r.error.kind, 'timeout');
    assert.equal(r.attempts, 3);
    assert.ok(await eventually(() => srv.stats().aborted === 3, 2000), `aborted=${srv.stats().aborted}`);
    assert.equal(srv.stats().requests, 3);
    const ends = log.of(0).filter((e) => e.type === 'end');
    assert.deepEqual(ends.map((e) => e.outcome), ['timeout', 'timeout', 'timeout']);
    ends.forEach((e) => assert.ok(e.latencyMs >= 79, `latency ${e.latencyMs}`));
  });

  test("the task's signal fires on timeout, with the item failing as timeout", async () => {
    const fired = [];
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 100, maxRetries: 1 });
    const [r] = await bp.map(['x'], (_, { signal, attempt }) => {
      signal.addEventListener('abort', () => fired.push(attempt));
      return waitForAbort(signal);
    });
    assert.equal(r.error.kind, 'timeout');
    assert.equal(r.attempts, 2);
    assert.ok(await eventually(() => fired.length === 2, 1000));
    assert.deepEqual(fired, [1, 2]);
  });

  test('a task that ignores its signal still times out', async () => {
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 100, maxRetries: 0 });
    const results = await bp.map([0, 1], (i) => (i === 0 ? new Promise(() => {}) : 'quick'));
    assert.equal(results[0].error.kind, 'timeout');
    assert.equal(results[1].value, 'quick');
  });

  test('a timed-out attempt followed by a good one succeeds', async () => {
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 100, maxRetries: 2 });
    const [r] = await bp.map([0], async (_, { signal, attempt }) => {
      if (attempt === 1) return waitForAbort(signal);
      return 'second time lucky';
    });
    assert.equal(r.ok, true);
    assert.equal(r.attempts, 2);
    assert.equal(r.value, 'second time lucky');
  });

  test('a result that arrives after the timeout is not used', async () => {
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 60, maxRetries: 0 });
    const [r] = await bp.map([0], () => sleep(200).then(() => 'too late'));
    assert.equal(r.ok, false);
    assert.equal(r.error.kind, 'timeout');
  });

  test('queued time does not count against the timeout', async () => {
    const bp = new BatchProcessor({ concurrency: 1, timeoutMs: 500, maxRetries: 0 });
    const results = await bp.map([0, 1, 2, 3], (_, { signal }) => sleepOrAbort(300, signal).then(() => 'done'));
    assertResults(results, 4);
    results.forEach((r, i) => {
      assert.equal(r.ok, true, `item ${i}: ${JSON.stringify(r.error)}`);
      assert.equal(r.attempts, 1);
      assert.ok(r.elapsedMs >= 299, `elapsedMs ${r.elapsedMs}`);
    });
  });

  test('the timeout is per attempt, not per item', async () => {
    // Three attempts of ~120 ms each (360 ms in all) under a 200 ms timeout all count as fine.
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 200, maxRetries: 3 });
    const [r] = await bp.map([0], async (_, { signal, attempt }) => {
      await sleepOrAbort(120, signal);
      if (attempt < 3) throw { status: 503 };
      return attempt;
    });
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.equal(r.value, 3);
  });

  test('the default timeout (60 s) does not cut short a normal call', async () => {
    const bp = new BatchProcessor();
    const [r] = await bp.run([{ url: `${srv.url}/delay/100` }]);
    assert.equal(r.ok, true);
    assert.deepEqual(r.value.body, { delayed: 100 });
  });
});
