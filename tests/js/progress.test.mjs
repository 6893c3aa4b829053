// onProgress and onEvent: shapes, sequences, final totals, and callbacks that throw.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { assertResults, eventLog, sleep, sleepOrAbort, sdkError } from './helpers.mjs';

const T = { timeout: 20000 };
const PROGRESS_KEYS = ['total', 'done', 'ok', 'failed', 'inFlight', 'queued', 'waiting', 'retries', 'elapsedMs'];

/** Items 0, 3, 6 fail once with 503 then succeed; items 4 and 9 fail for good (task). */
const mixedFn = async (i, { attempt }) => {
  await sleep(3 + (i % 4) * 4);
  if (i % 5 === 4) throw new Error(`bad ${i}`);
  if (i % 3 === 0 && attempt === 1) throw sdkError(503);
  return i;
};

describe('progress', T, () => {
  test('every progress has the documented shape and consistent counts; the last equals the totals', async () => {
    const snaps = [];
    const concurrency = 3;
    const bp = new BatchProcessor({
      concurrency,
      maxRetries: 2,
      backoff: { baseMs: 10, maxMs: 10, jitter: 'none' },
      onProgress: (p) => snaps.push({ ...p }),
    });
    const n = 12;
    const results = await bp.map(Array.from({ length: n }, (_, i) => i), mixedFn);
    assertResults(results, n);
    assert.ok(snaps.length > 0, 'onProgress was never called');

    for (const p of snaps) {
      for (const k of PROGRESS_KEYS) assert.equal(typeof p[k], 'number', `progress.${k} is ${typeof p[k]}`);
      assert.equal(p.total, n);
      assert.equal(p.ok + p.failed, p.done, JSON.stringify(p));
      assert.equal(p.done + p.inFlight + p.queued + p.waiting, p.total, JSON.stringify(p));
      assert.ok(p.inFlight <= concurrency, JSON.stringify(p));
      for (const k of PROGRESS_KEYS) assert.ok(p[k] >= 0, `${k} negative: ${JSON.stringify(p)}`);
    }
    for (let i = 1; i < snaps.length; i++) {
      assert.ok(snaps[i].done >= snaps[i - 1].done, 'done never goes down');
      assert.ok(snaps[i].retries >= snaps[i - 1].retries, 'retries never go down');
      assert.ok(snaps[i].elapsedMs >= snaps[i - 1].elapsedMs, 'elapsedMs never goes down');
    }
    assert.ok(snaps.some((p) => p.waiting > 0), 'an item in backoff shows as waiting');
    assert.ok(snaps.some((p) => p.inFlight === concurrency), 'full concurrency shows in progress');

    const last = snaps.at(-1);
    const okCount = results.filter((r) => r.ok).length;
    const retries = results.reduce((s, r) => s + Math.max(0, r.attempts - 1), 0);
    assert.equal(okCount, 10); // 12 items, 4 and 9 fail
    assert.equal(retries, 3); // items 0, 3, 6 retried once (9 fails as a task first)
    assert.deepEqual(
      { total: last.total, done: last.done, ok: last.ok, failed: last.failed, inFlight: last.inFlight, queued: last.queued, waiting: last.waiting, retries: last.retries },
      { total: n, done: n, ok: okCount, failed: n - okCount, inFlight: 0, queued: 0, waiting: 0, retries },
    );
  });

  test('the first progress shows items queued, not done', async () => {
    const snaps = [];
    const bp = new BatchProcessor({ concurrency: 2, onProgress: (p) => snaps.push({ ...p }) });
    await bp.map([0, 1, 2, 3, 4], () => sleep(5));
    assert.equal(snaps[0].done, 0);
    assert.ok(snaps[0].queued + snaps[0].inFlight === 5, JSON.stringify(snaps[0]));
    assert.ok(snaps.some((p) => p.queued >= 3), 'queued items are counted');
  });

  test('a throwing onProgress does not break the batch', async () => {
    let calls = 0;
    const bp = new BatchProcessor({
      concurrency: 2,
      onProgress: () => {
        calls++;
        throw new Error('progress callback exploded');
      },
    });
    const results = await bp.map([0, 1, 2, 3], async (i) => {
      await sleep(5);
      return i;
    });
    assert.deepEqual(results.map((r) => r.value), [0, 1, 2, 3]);
    assert.ok(calls > 1, 'onProgress keeps being called after it threw');
  });

  test('a throwing onEvent does not break the batch, nor do non-Error throws', async () => {
    let calls = 0;
    const bp = new BatchProcessor({
      maxRetries: 1,
      backoff: { baseMs: 1, maxMs: 1, jitter: 'none' },
      onEvent: () => {
        calls++;
        throw 'a string';
      },
      onProgress: () => {
        throw undefined;
      },
    });
    const results = await bp.map([0, 1], (i, { attempt }) => {
      if (i === 1 && attempt === 1) throw sdkError(500);
      return i;
    });
    assert.deepEqual(results.map((r) => r.value), [0, 1]);
    assert.ok(calls >= 5, `onEvent calls: ${calls}`);
  });
});

describe('events', T, () => {
  test('start / end / backoff sequence for a flaky item', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({
      maxRetries: 3,
      backoff: { baseMs: 15, maxMs: 100, jitter: 'none' },
      onEvent: log.onEvent,
    });
    const [r] = await bp.map(['only'], async (_, { attempt }) => {
      await sleep(5);
      if (attempt <= 2) throw sdkError(503);
      return 'finally';
    });
    assert.equal(r.attempts, 3);
    const ev = log.of(0);
    assert.deepEqual(
      ev.map((e) => e.type),
      ['start', 'end', 'backoff', 'start', 'end', 'backoff', 'start', 'end'],
    );
    assert.deepEqual(ev.filter((e) => e.type === 'start').map((e) => e.attempt), [1, 2, 3]);
    assert.deepEqual(ev.filter((e) => e.type === 'end').map((e) => e.attempt), [1, 2, 3]);
    assert.deepEqual(ev.filter((e) => e.type === 'end').map((e) => e.outcome), ['http', 'http', 'ok']);
    assert.deepEqual(ev.filter((e) => e.type === 'end').slice(0, 2).map((e) => e.status), [503, 503]);
    assert.deepEqual(ev.filter((e) => e.type === 'backoff').map((e) => e.delayMs), [15, 30]);
    for (let i = 1; i < ev.length; i++) assert.ok(ev[i].atMs >= ev[i - 1].atMs, 'atMs never goes down');
    for (const e of ev) {
      assert.equal(e.index, 0);
      assert.equal(typeof e.atMs, 'number');
      assert.ok(e.atMs >= 0);
      assert.ok(Number.isInteger(e.attempt) && e.attempt >= 1);
      if (e.type === 'end') {
        assert.equal(typeof e.latencyMs, 'number');
        assert.ok(e.latencyMs >= 4, `latencyMs ${e.latencyMs} for a 5 ms attempt`);
      }
      if (e.type === 'backoff') assert.equal(typeof e.delayMs, 'number');
    }
    // The end of each attempt is at least its latency after its start.
    const starts = ev.filter((e) => e.type === 'start');
    const ends = ev.filter((e) => e.type === 'end');
    ends.forEach((e, k) => assert.ok(e.atMs >= starts[k].atMs, 'end after start'));
  });

  test('end outcomes name the error kind; every start has one end; starts match attempts', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ maxRetries: 0, timeoutMs: 50, onEvent: log.onEvent });
    const results = await bp.map(['ok', 'task', 'http', 'timeout', 'network'], (kind, { signal }) => {
      if (kind === 'ok') return 1;
      if (kind === 'task') throw new Error('x');
      if (kind === 'http') throw { status: 418 };
      if (kind === 'timeout') return sleepOrAbort(1000, signal);
      throw new TypeError('fetch failed');
    });
    const outcomes = results.map((_, i) => log.of(i).filter((e) => e.type === 'end').map((e) => e.outcome));
    assert.deepEqual(outcomes, [['ok'], ['task'], ['http'], ['timeout'], ['network']]);
    assert.equal(log.of(2).find((e) => e.type === 'end').status, 418);
    results.forEach((r, i) => {
      const starts = log.of(i).filter((e) => e.type === 'start').length;
      const ends = log.of(i).filter((e) => e.type === 'end').length;
      assert.equal(starts, r.attempts);
      assert.equal(ends, starts);
    });
  });

  test('atMs counts from the call', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ concurrency: 1, onEvent: log.onEvent });
    await sleep(500); // time since construction must not show up
    await bp.map([0, 1], () => sleep(50));
    const first = log.of(0)[0];
    const second = log.of(1)[0];
    assert.equal(first.type, 'start');
    assert.ok(first.atMs < 450, `first start at ${first.atMs} ms: not counted from the call`);
    assert.ok(second.atMs >= 49, `second start at ${second.atMs} ms`);
  });
});
