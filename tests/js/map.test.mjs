// map(): one result per item in input order, the fn contract, the concurrency bound,
// input-order starts, iterables, argument errors.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import {
  sleep, rng, inflightMeter, eventLog, assertResults, sdkError,
} from './helpers.mjs';

const T = { timeout: 20000 };
const srv = await startServer();
after(() => srv.close());

describe('map', T, () => {
  test('one result per item, in input order, with random latencies', async () => {
    const rand = rng(7);
    const items = Array.from({ length: 60 }, (_, i) => ({ id: i, ms: Math.floor(rand() * 40) }));
    const bp = new BatchProcessor({ concurrency: 7 });
    const results = await bp.map(items, async (item) => {
      await sleep(item.ms);
      return { id: item.id, twice: item.id * 2 };
    });
    assertResults(results, items.length);
    results.forEach((r, i) => {
      assert.equal(r.ok, true, `item ${i}: ${JSON.stringify(r.error)}`);
      assert.deepEqual(r.value, { id: i, twice: i * 2 });
      assert.equal(r.attempts, 1);
      assert.ok(r.elapsedMs >= items[i].ms - 1, `elapsedMs ${r.elapsedMs} < latency ${items[i].ms}`);
    });
  });

  test('fn gets (item, { signal, attempt, index })', async () => {
    const seen = [];
    const bp = new BatchProcessor({ concurrency: 2 });
    const items = ['a', 'b', 'c'];
    const results = await bp.map(items, (item, ctx) => {
      seen.push({ item, ctx });
      return item.toUpperCase();
    });
    assert.deepEqual(results.map((r) => r.value), ['A', 'B', 'C']);
    assert.equal(seen.length, 3);
    for (const { item, ctx } of seen) {
      const i = items.indexOf(item);
      assert.equal(ctx.index, i);
      assert.equal(ctx.attempt, 1);
      assert.ok(ctx.signal instanceof AbortSignal, 'ctx.signal is an AbortSignal');
      assert.equal(ctx.signal.aborted, false);
    }
  });

  test('items may be any iterable: Set, generator, Map entries', async () => {
    const bp = new BatchProcessor();
    const fromSet = await bp.map(new Set([3, 1, 2]), (x) => x * 10);
    assert.deepEqual(fromSet.map((r) => r.value), [30, 10, 20]);
    function* gen() {
      yield 'x';
      yield 'y';
    }
    const fromGen = await bp.map(gen(), (s, { index }) => `${s}${index}`);
    assert.deepEqual(fromGen.map((r) => r.value), ['x0', 'y1']);
    const fromMap = await bp.map(new Map([['k', 1]]), ([k, v]) => `${k}=${v}`);
    assert.deepEqual(fromMap.map((r) => r.value), ['k=1']);
  });

  test('empty input resolves to []', async () => {
    const bp = new BatchProcessor();
    let called = 0;
    assert.deepEqual(await bp.map([], () => called++), []);
    assert.equal(called, 0);
  });

  test('rejects with TypeError for non-iterable items or non-function fn', async () => {
    const bp = new BatchProcessor();
    await assert.rejects(() => bp.map(5, (x) => x), TypeError);
    await assert.rejects(() => bp.map({ a: 1 }, (x) => x), TypeError);
    await assert.rejects(() => bp.map(null, (x) => x), TypeError);
    await assert.rejects(() => bp.map(undefined, (x) => x), TypeError);
    await assert.rejects(() => bp.map([1, 2], 'not a function'), TypeError);
    await assert.rejects(() => bp.map([1, 2]), TypeError);
    await assert.rejects(() => bp.map([1, 2], {}), TypeError);
    // The processor still works afterwards.
    const ok = await bp.map([1], (x) => x + 1);
    assert.equal(ok[0].value, 2);
  });

  test('concurrency bound is never exceeded and is reached (task fn meter)', async () => {
    for (const concurrency of [1, 3, 8]) {
      const m = inflightMeter();
      const bp = new BatchProcessor({ concurrency });
      const rand = rng(concurrency);
      const results = await bp.map(Array.from({ length: 40 }, (_, i) => i), async () => {
        m.enter();
        try {
          await sleep(5 + Math.floor(rand() * 20));
        } finally {
          m.leave();
        }
        return true;
      });
      assertResults(results, 40);
      assert.ok(results.every((r) => r.ok));
      assert.ok(m.max <= concurrency, `concurrency ${concurrency}: max in flight ${m.max}`);
      assert.equal(m.max, concurrency, `concurrency ${concurrency} should be used fully`);
    }
  });

  test('default concurrency is 8', async () => {
    const m = inflightMeter();
    const bp = new BatchProcessor();
    await bp.map(Array.from({ length: 40 }, (_, i) => i), async () => {
      m.enter();
      await sleep(15);
      m.leave();
    });
    assert.equal(m.max, 8);
  });

  test('concurrency bound holds across retries (attempts, not items, are bounded)', async () => {
    const m = inflightMeter();
    const bp = new BatchProcessor({ concurrency: 3, maxRetries: 3, backoff: { baseMs: 1, maxMs: 3, jitter: 'none' } });
    const results = await bp.map(Array.from({ length: 20 }, (_, i) => i), async (i, { attempt }) => {
      m.enter();
      try {
        await sleep(5);
        if (attempt <= i % 3) throw sdkError(503);
        return attempt;
      } finally {
        m.leave();
      }
    });
    assertResults(results, 20);
    results.forEach((r, i) => {
      assert.equal(r.ok, true);
      assert.equal(r.attempts, (i % 3) + 1);
    });
    assert.ok(m.max <= 3, `max in flight ${m.max}`);
  });

  test('concurrency bound seen from the server (run with /delay)', async () => {
    srv.reset();
    const bp = new BatchProcessor({ concurrency: 4 });
    const specs = Array.from({ length: 20 }, () => ({ url: `${srv.url}/delay/40` }));
    const results = await bp.run(specs);
    assertResults(results, 20);
    assert.ok(results.every((r) => r.ok), JSON.stringify(results.find((r) => !r.ok)));
    const s = srv.stats();
    assert.equal(s.requests, 20);
    assert.ok(s.maxInFlight <= 4, `server saw ${s.maxInFlight} in flight`);
    assert.ok(s.maxInFlight >= 2, `server saw only ${s.maxInFlight} in flight: no concurrency`);
  });

  test('items start in input order', async () => {
    const starts = [];
    const bp = new BatchProcessor({ concurrency: 4 });
    const rand = rng(99);
    await bp.map(Array.from({ length: 30 }, (_, i) => i), async (i) => {
      starts.push(i);
      await sleep(Math.floor(rand() * 25));
    });
    assert.deepEqual(starts, Array.from({ length: 30 }, (_, i) => i));
  });

  test('start events come in input order too', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ concurrency: 3, onEvent: log.onEvent });
    const rand = rng(5);
    await bp.map(Array.from({ length: 12 }, (_, i) => i), () => sleep(Math.floor(rand() * 20)));
    const firstStarts = log.events.filter((e) => e.type === 'start' && e.attempt === 1).map((e) => e.index);
    assert.deepEqual(firstStarts, Array.from({ length: 12 }, (_, i) => i));
  });

  test('an item waiting out a backoff holds no slot', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({ concurrency: 1, onEvent: log.onEvent });
    const results = await bp.map([0, 1], async (i, { attempt }) => {
      // A 503, not a 429: a 429 pauses the whole batch (tests/js/pacing.test.mjs).
      if (i === 0 && attempt === 1) throw sdkError(503, { headers: { 'retry-after-ms': '300' } });
      await sleep(20);
      return `${i}:${attempt}`;
    });
    assert.deepEqual(results.map((r) => r.value), ['0:2', '1:1']);
    const item1Start = log.of(1).find((e) => e.type === 'start');
    const item0Retry = log.of(0).find((e) => e.type === 'start' && e.attempt === 2);
    assert.ok(item1Start && item0Retry);
    assert.ok(
      item1Start.atMs < item0Retry.atMs,
      `item 1 should run during item 0's backoff (item1 start ${item1Start.atMs}, item0 retry ${item0Retry.atMs})`,
    );
  });

  test('concurrent calls on one processor each get their own complete results', async () => {
    const bp = new BatchProcessor({ concurrency: 4 });
    const [a, b] = await Promise.all([
      bp.map([1, 2, 3], async (x) => {
        await sleep(10);
        return x;
      }),
      bp.map(['p', 'q'], async (x) => {
        await sleep(5);
        return x;
      }),
    ]);
    assert.deepEqual(a.map((r) => r.value), [1, 2, 3]);
    assert.deepEqual(b.map((r) => r.value), ['p', 'q']);
    assertResults(a, 3);
    assertResults(b, 2);
  });

  test('a large batch completes with every item accounted for', async () => {
    const bp = new BatchProcessor({ concurrency: 64 });
    const n = 5000;
    const results = await bp.map(Array.from({ length: n }, (_, i) => i), async (i) => i);
    assert.equal(results.length, n);
    for (let i = 0; i < n; i++) {
      assert.equal(results[i].index, i);
      assert.equal(results[i].value, i);
    }
  });

  test('concurrency is the processor\'s: two concurrent calls share it', async () => {
    const bp = new BatchProcessor({ concurrency: 3 });
    const m = inflightMeter();
    const task = async (i) => {
      m.enter();
      await sleep(5 + (i % 3));
      m.leave();
      return i;
    };
    const items = Array.from({ length: 12 }, (_, i) => i);
    const [a, b] = await Promise.all([bp.map(items, task), bp.map(items, task)]);
    assertResults(a, 12);
    assertResults(b, 12);
    assert.equal(m.max, 3, `at most 3 in flight across both calls, saw ${m.max}`);
  });
});
