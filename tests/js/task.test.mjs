// What fn may do: sync throw, reject with anything, return a non-promise; each outcome affects
// only its own item.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { FAST, assertResults, sleep, sdkError } from './helpers.mjs';

const T = { timeout: 20000 };

describe('task outcomes affect only their own item', T, () => {
  test('a mix of throws, odd rejections and plain values', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2, concurrency: 3 });
    const calls = new Map();
    const cases = [
      { name: 'ok-async', fn: async () => 'fine' },
      { name: 'sync-throw', fn: () => { throw new Error('sync boom'); } },
      { name: 'reject-string', fn: () => Promise.reject('just a string') },
      { name: 'reject-undefined', fn: () => Promise.reject(undefined) },
      { name: 'throw-null', fn: () => { throw null; } },
      { name: 'throw-number', fn: () => { throw 42; } },
      { name: 'return-number', fn: () => 7 },
      { name: 'return-undefined', fn: () => undefined },
      { name: 'return-object', fn: () => ({ nested: { a: [1, 2] } }) },
      { name: 'sdk-error', fn: () => Promise.reject(sdkError(400, { headers: new Headers(), type: 'invalid_request_error' })) },
      { name: 'async-throw', fn: async () => { await sleep(5); throw new RangeError('later'); } },
      { name: 'ok-slow', fn: async () => { await sleep(20); return 'slow fine'; } },
    ];
    const results = await bp.map(cases, (c, ctx) => {
      calls.set(c.name, (calls.get(c.name) ?? 0) + 1);
      return c.fn(ctx);
    });
    assertResults(results, cases.length);
    const by = Object.fromEntries(results.map((r, i) => [cases[i].name, r]));

    assert.equal(by['ok-async'].ok, true);
    assert.equal(by['ok-async'].value, 'fine');
    assert.equal(by['ok-slow'].value, 'slow fine');

    for (const name of ['sync-throw', 'reject-string', 'reject-undefined', 'throw-null', 'throw-number', 'async-throw']) {
      const r = by[name];
      assert.equal(r.ok, false, name);
      assert.equal(r.error.kind, 'task', `${name}: kind ${r.error.kind}`);
      assert.equal(r.error.retryable, false, name);
      assert.equal(r.attempts, 1, name);
      assert.equal(calls.get(name), 1, `${name} must not be retried`);
      assert.equal(typeof r.error.message, 'string', name);
    }
    assert.match(by['sync-throw'].error.message, /sync boom/);
    assert.match(by['reject-string'].error.message, /just a string/);
    assert.match(by['async-throw'].error.message, /later/);
    assert.match(by['throw-number'].error.message, /42/);

    assert.equal(by['return-number'].ok, true);
    assert.equal(by['return-number'].value, 7);
    assert.equal(by['return-undefined'].ok, true);
    assert.equal(by['return-undefined'].value, undefined);
    assert.deepEqual(by['return-object'].value, { nested: { a: [1, 2] } });

    const sdk = by['sdk-error'];
    assert.equal(sdk.ok, false);
    assert.equal(sdk.error.kind, 'http');
    assert.equal(sdk.error.status, 400);
    assert.equal(sdk.error.type, 'invalid_request_error');
    assert.equal(sdk.attempts, 1);
  });

  test('an item-level failure does not stop others from starting or finishing', async () => {
    const bp = new BatchProcessor({ concurrency: 1, maxRetries: 0 });
    const seen = [];
    const results = await bp.map([0, 1, 2, 3], (i) => {
      seen.push(i);
      if (i % 2 === 0) throw new Error(`bad ${i}`);
      return i;
    });
    assert.deepEqual(seen, [0, 1, 2, 3]);
    assert.deepEqual(results.map((r) => r.ok), [false, true, false, true]);
    assert.deepEqual(results.map((r) => r.index), [0, 1, 2, 3]);
  });

  test('the value is what fn returned, passed through as is (same object)', async () => {
    class Reply {
      constructor(text) {
        this.text = text;
      }
    }
    const objects = [new Date(0), new Uint8Array([1, 2, 3]), new Reply('hi'), [null, 'x', { y: true }]];
    const bp = new BatchProcessor();
    const results = await bp.map(objects, async (o) => o);
    results.forEach((r, i) => assert.equal(r.value, objects[i], `value ${i} is not the returned object`));
    assert.ok(results[2].value instanceof Reply);
  });

  test('many synchronous (non-promise) returns in a row', async () => {
    const bp = new BatchProcessor({ concurrency: 2 });
    const results = await bp.map(Array.from({ length: 100 }, (_, i) => i), (i) => i * i);
    assert.deepEqual(results.map((r) => r.value), Array.from({ length: 100 }, (_, i) => i * i));
  });
});
