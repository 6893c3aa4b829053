// stream(): the same results as map, in completion order; `break` aborts the rest.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import {
  assertResultShape, assertFailsWith, eventually, sleep, sleepOrAbort, rng,
} from './helpers.mjs';

const T = { timeout: 20000 };
const srv = await startServer();
after(() => srv.close());

describe('stream', T, () => {
  test('returns an async iterable', () => {
    const bp = new BatchProcessor();
    const it = bp.stream([1], (x) => x);
    assert.equal(typeof it[Symbol.asyncIterator], 'function');
    return (async () => {
      for await (const _ of it);
    })();
  });

  test('yields every result in completion order (a fast item after a slow one comes first)', async () => {
    const bp = new BatchProcessor({ concurrency: 3 });
    const delays = [300, 10, 150];
    const out = [];
    for await (const r of bp.stream(delays, async (ms, { signal }) => {
      await sleepOrAbort(ms, signal);
      return ms;
    })) {
      assertResultShape(r, r.index);
      out.push(r);
    }
    assert.deepEqual(out.map((r) => r.index), [1, 2, 0]);
    assert.deepEqual(out.map((r) => r.value), [10, 150, 300]);
  });

  test('every item exactly once, failures included, matching map()', async () => {
    const rand = rng(3);
    const items = Array.from({ length: 40 }, (_, i) => ({ i, ms: Math.floor(rand() * 30), bad: i % 7 === 0 }));
    const fn = async (it) => {
      await sleep(it.ms);
      if (it.bad) throw new Error(`bad ${it.i}`);
      return it.i;
    };
    const bp = new BatchProcessor({ concurrency: 6, maxRetries: 0 });
    const seen = new Map();
    for await (const r of bp.stream(items, fn)) {
      assert.ok(!seen.has(r.index), `index ${r.index} yielded twice`);
      seen.set(r.index, r);
    }
    assert.equal(seen.size, items.length);
    const mapped = await bp.map(items, fn);
    for (const m of mapped) {
      const s = seen.get(m.index);
      assert.equal(s.ok, m.ok);
      if (m.ok) assert.equal(s.value, m.value);
      else assert.equal(s.error.kind, m.error.kind);
    }
  });

  test('break aborts the rest: running tasks see their signal fire, queued ones never start', async () => {
    const fired = [];
    const started = [];
    const bp = new BatchProcessor({ concurrency: 3 });
    const items = [0, 1, 2, 3, 4, 5, 6, 7];
    let first;
    for await (const r of bp.stream(items, async (i, { signal }) => {
      started.push(i);
      signal.addEventListener('abort', () => fired.push(i));
      await sleepOrAbort(i === 0 ? 10 : 5000, signal);
      return i;
    })) {
      first = r;
      break;
    }
    assert.equal(first.index, 0);
    // Item 0's slot went to item 3 before or as we broke out; 1, 2 (and 3 if started) are aborted.
    assert.ok(await eventually(() => started.filter((i) => i !== 0).every((i) => fired.includes(i)), 1000),
      `started ${started}, fired ${fired}`);
    await sleep(100);
    assert.ok(started.length <= 4, `items kept starting after break: ${started}`);
    const settled = started.length;
    await sleep(100);
    assert.equal(started.length, settled);
  });

  test('break cancels in-flight fetches of a run-like stream', async () => {
    srv.reset();
    const bp = new BatchProcessor({ concurrency: 2 });
    const items = ['text', 'hang', 'hang', 'hang'];
    for await (const r of bp.stream(items, async (p, { signal }) => {
      const res = await fetch(`${srv.url}/${p}`, { signal });
      return res.text();
    })) {
      assert.equal(r.value, 'hello');
      break;
    }
    // At most two /hang requests can have started (concurrency 2); each must be aborted.
    assert.ok(await eventually(() => srv.stats().inFlight === 0, 2000), JSON.stringify(srv.stats()));
    const s = srv.stats();
    assert.ok(s.aborted >= 1, `aborted=${s.aborted}`);
    assert.ok(s.requests <= 3, `requests=${s.requests}`);
  });

  test('an aborted call signal ends the stream with every item yielded as aborted', async () => {
    const ac = new AbortController();
    const bp = new BatchProcessor({ concurrency: 2 });
    setTimeout(() => ac.abort(), 80);
    const out = [];
    for await (const r of bp.stream([0, 1, 2, 3], (i, { signal }) => sleepOrAbort(i === 0 ? 5 : 3000, signal).then(() => i), { signal: ac.signal })) {
      out.push(r);
    }
    assert.equal(out.length, 4);
    assert.deepEqual(out.map((r) => r.index).sort(), [0, 1, 2, 3]);
    assert.equal(out[0].index, 0);
    assert.equal(out[0].ok, true);
    for (const r of out.slice(1)) assert.equal(r.error.kind, 'aborted');
  });

  test('a stream with a deadline yields deadline failures', async () => {
    const bp = new BatchProcessor({ concurrency: 1, deadlineMs: 100 });
    const out = [];
    for await (const r of bp.stream([0, 1], (_, { signal }) => sleepOrAbort(2000, signal))) out.push(r);
    assert.equal(out.length, 2);
    assert.ok(out.every((r) => r.error?.kind === 'deadline'));
  });

  test('an empty stream ends at once', async () => {
    const bp = new BatchProcessor();
    const out = [];
    for await (const r of bp.stream([], (x) => x)) out.push(r);
    assert.deepEqual(out, []);
  });

  test('non-iterable items or a non-function fn are a TypeError', async () => {
    const bp = new BatchProcessor();
    await assertFailsWith(() => bp.stream(5, (x) => x), TypeError);
    await assertFailsWith(() => bp.stream([1], 'nope'), TypeError);
  });
});
