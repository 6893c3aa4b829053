// deadlineMs: the whole call, counted from the call; items past it fail with kind "deadline";
// a wait that would pass it fails the item at once with retryAfterMs.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import {
  FAST, assertResults, eventLog, eventually, sleep, sleepOrAbort, waitForAbort, sdkError,
} from './helpers.mjs';

const T = { timeout: 20000 };
const srv = await startServer();
after(() => srv.close());

describe('deadline', T, () => {
  test('running and queued items fail with kind "deadline"; the promise resolves', async () => {
    const fired = [];
    const log = eventLog();
    const bp = new BatchProcessor({ concurrency: 2, deadlineMs: 200, onEvent: log.onEvent });
    const t0 = Date.now();
    const results = await bp.map([0, 1, 2, 3, 4], async (i, { signal }) => {
      signal.addEventListener('abort', () => fired.push(i));
      if (i === 0) return 'fast';
      return sleepOrAbort(5000, signal);
    });
    assert.ok(Date.now() - t0 >= 190, 'resolved before the deadline');
    assertResults(results, 5);
    assert.equal(results[0].ok, true);
    assert.equal(results[0].value, 'fast');
    for (const i of [1, 2, 3, 4]) {
      assert.equal(results[i].ok, false, `item ${i}`);
      assert.equal(results[i].error.kind, 'deadline', `item ${i}: ${results[i].error.kind}`);
      assert.equal(results[i].error.retryable, false);
    }
    // Items 1 and 2 were running when the deadline came; 3 and 4 never started.
    assert.equal(results[1].attempts, 1);
    assert.equal(results[2].attempts, 1);
    assert.equal(results[3].attempts, 0);
    assert.equal(results[4].attempts, 0);
    assert.ok(await eventually(() => fired.includes(1) && fired.includes(2), 1000), `signals fired: ${fired}`);
    assert.ok(!fired.includes(0));
    const ends = log.events.filter((e) => e.type === 'end' && e.index === 1);
    assert.equal(ends.at(-1)?.outcome, 'deadline');
  });

  test('a deadline aborts an in-flight fetch', async () => {
    srv.reset();
    const bp = new BatchProcessor({ deadlineMs: 150 });
    const [r] = await bp.run([{ url: `${srv.url}/hang` }]);
    assert.equal(r.error.kind, 'deadline');
    assert.ok(await eventually(() => srv.stats().aborted === 1, 2000), `aborted=${srv.stats().aborted}`);
  });

  test('a task ignoring its signal still ends at the deadline', async () => {
    const bp = new BatchProcessor({ deadlineMs: 150 });
    const [r] = await bp.map([0], () => new Promise(() => {}));
    assert.equal(r.error.kind, 'deadline');
  });

  test('a retry-after longer than the time left fails at once with retryAfterMs', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ ...FAST, deadlineMs: 3000, maxRetries: 3, onEvent: log.onEvent });
    const order = [];
    const it = bp.stream([0, 1], async (i, { signal }) => {
      if (i === 0) throw sdkError(429, { headers: { 'retry-after-ms': '10000' } });
      await sleepOrAbort(600, signal);
      return 'slow ok';
    });
    const got = [];
    for await (const r of it) {
      order.push(r.index);
      got[r.index] = r;
    }
    // Item 0 must be reported before the 600 ms item, i.e. not after sleeping until the deadline.
    assert.deepEqual(order, [0, 1]);
    const r = got[0];
    assert.equal(r.ok, false);
    assert.equal(r.error.kind, 'deadline');
    assert.equal(r.error.retryAfterMs, 10000);
    assert.equal(r.error.status, 429);
    assert.equal(r.attempts, 1);
    assert.equal(log.of(0).filter((e) => e.type === 'backoff').length, 0, 'no backoff past the deadline');
    assert.equal(got[1].value, 'slow ok');
  });

  test('the same with a server reply (run + retry-after seconds)', async () => {
    const bp = new BatchProcessor({ ...FAST, deadlineMs: 2000 });
    const results = await bp.run([
      { url: `${srv.url}/status/503?retryAfter=30` },
      { url: `${srv.url}/delay/400` },
    ]);
    // Without a stream, compare item timings: the failed item's elapsed time stays below the
    // 400 ms of its neighbour only if it did not sleep.
    assert.equal(results[0].error.kind, 'deadline');
    assert.equal(results[0].error.retryAfterMs, 30000);
    assert.equal(results[0].attempts, 1);
    assert.ok(results[1].ok);
    assert.ok(results[0].elapsedMs < results[1].elapsedMs, `${results[0].elapsedMs} vs ${results[1].elapsedMs}`);
  });

  test('a retry-after that fits before the deadline is waited out', async () => {
    const bp = new BatchProcessor({ ...FAST, deadlineMs: 3000 });
    const [r] = await bp.map([0], (_, { attempt }) => {
      if (attempt === 1) throw sdkError(429, { headers: { 'retry-after-ms': '100' } });
      return 'after wait';
    });
    assert.equal(r.ok, true);
    assert.equal(r.attempts, 2);
  });

  test('an exponential backoff that would pass the deadline fails at once too', async () => {
    const bp = new BatchProcessor({
      deadlineMs: 2000,
      maxRetries: 3,
      backoff: { baseMs: 60000, maxMs: 60000, jitter: 'none' },
    });
    const out = [];
    for await (const r of bp.stream([0, 1], async (i, { signal }) => {
      if (i === 0) throw sdkError(503);
      await sleepOrAbort(400, signal);
      return 'ok';
    })) out.push(r);
    assert.deepEqual(out.map((r) => r.index), [0, 1]);
    assert.equal(out[0].error.kind, 'deadline');
    assert.equal(out[0].error.retryAfterMs, 60000);
  });

  test('deadline counts from each call, not from construction', async () => {
    const bp = new BatchProcessor({ deadlineMs: 250 });
    const first = await bp.map([1, 2], (x) => x);
    assert.ok(first.every((r) => r.ok));
    await sleep(300);
    const second = await bp.map([3, 4], async (x) => {
      await sleep(20);
      return x;
    });
    assert.ok(second.every((r) => r.ok), JSON.stringify(second));
  });

  test('items finished before the deadline keep their results', async () => {
    const bp = new BatchProcessor({ concurrency: 4, deadlineMs: 300 });
    const results = await bp.map([10, 20, 2000, 30], (ms, { signal }) => sleepOrAbort(ms, signal).then(() => ms));
    assert.deepEqual(results.map((r) => r.ok), [true, true, false, true]);
    assert.equal(results[2].error.kind, 'deadline');
  });

  test('the signal fires with the deadline for a running task', async () => {
    let sawAbort = false;
    const bp = new BatchProcessor({ deadlineMs: 120 });
    await bp.map([0], async (_, { signal }) => {
      try {
        await waitForAbort(signal);
      } finally {
        sawAbort = signal.aborted;
      }
    });
    assert.ok(await eventually(() => sawAbort, 1000));
  });
});
