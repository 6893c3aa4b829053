// Hostile items: getters and Proxies that throw, throwing generators, revoked Proxies,
// sparse, frozen and exotic arrays, 200,000 items. An item that cannot be read fails alone
// (kind invalid, no attempt); a list whose length or iterator throws rejects the call.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import { FAST, assertResults } from './helpers.mjs';

const T = { timeout: 10000 };
const srv = await startServer();
after(() => srv.close());

const echo = async (x) => x;

/** An array of `n` numbers whose element `bad` is a getter that throws. */
function withThrowingGetter(n, bad) {
  const items = Array.from({ length: n }, (_, i) => i);
  Object.defineProperty(items, bad, {
    get() {
      throw new Error(`getter ${bad} says no`);
    },
  });
  return items;
}

function assertOnlyUnreadable(results, n, bad) {
  assertResults(results, n);
  for (const r of results) {
    if (r.index === bad) {
      assert.equal(r.ok, false);
      assert.equal(r.error.kind, 'invalid');
      assert.equal(r.error.retryable, false);
      assert.equal(r.attempts, 0, 'found before any attempt');
      assert.match(r.error.message, new RegExp(`reading item ${bad} threw: .*says no`));
    } else {
      assert.equal(r.ok, true, `item ${r.index}: ${JSON.stringify(r.error)}`);
    }
  }
}

describe('hostile items', T, () => {
  test('a throwing getter fails that item only, in map, run and stream', async () => {
    const bp = new BatchProcessor(FAST);
    assertOnlyUnreadable(await bp.map(withThrowingGetter(6, 3), echo), 6, 3);

    const specs = Array.from({ length: 4 }, () => ({ url: `${srv.url}/text` }));
    const proxy = new Proxy(specs, {
      get(target, key, receiver) {
        if (key === '2') throw new Error('proxy [2] says no');
        return Reflect.get(target, key, receiver);
      },
    });
    assertOnlyUnreadable(await bp.run(proxy), 4, 2);

    const streamed = [];
    for await (const r of bp.stream(withThrowingGetter(5, 0), echo)) streamed.push(r);
    assertOnlyUnreadable(streamed.sort((a, b) => a.index - b.index), 5, 0);
  });

  test('with a provider and a cost function, an unreadable item still fails alone', async () => {
    const bp = new BatchProcessor({
      ...FAST,
      provider: { name: 'anthropic', apiKey: 'k', baseUrl: srv.url },
      cost: () => {
        throw new Error('cost says no');
      },
    });
    const body = { model: 'ok', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] };
    const items = [body, body, body];
    Object.defineProperty(items, 1, {
      get() {
        throw new Error('getter 1 says no');
      },
    });
    assertOnlyUnreadable(await bp.run(items), 3, 1);
  });

  test('a request whose messages are a throwing Proxy fails as invalid, not the batch', async () => {
    const bp = new BatchProcessor({ ...FAST, provider: { name: 'anthropic', apiKey: 'k', baseUrl: srv.url } });
    const messages = new Proxy([], {
      get() {
        throw new Error('messages say no');
      },
    });
    const ok = { model: 'ok', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] };
    const results = await bp.run([ok, { model: 'ok', max_tokens: 5, messages }, ok]);
    assertResults(results, 3);
    assert.deepEqual(results.map((r) => r.ok), [true, false, true]);
    assert.equal(results[1].error.kind, 'invalid');
    assert.match(results[1].error.message, /messages say no/);
  });

  test('a length or an iterator that throws rejects the call (never a sync throw)', async () => {
    const bp = new BatchProcessor();
    const badLength = new Proxy([1, 2], {
      get(t, k, r) {
        if (k === 'length') throw new Error('length says no');
        return Reflect.get(t, k, r);
      },
    });
    function* gen() {
      yield 1;
      yield 2;
      throw new Error('generator says no');
    }
    const { proxy: revoked, revoke } = Proxy.revocable([], {});
    revoke();
    const badIterator = {
      [Symbol.iterator]() {
        throw new Error('iterator says no');
      },
    };
    const cases = [
      [badLength, /reading items\.length threw: length says no/],
      [gen, /iterating the items \(after 2\) threw: generator says no/],
      [revoked, /Array\.isArray\(items\) threw/],
      [badIterator, /starting to iterate the items threw: iterator says no/],
      ['abc', /got a string \(strings are refused on purpose/],
      [42, /items must be an array or an iterable of items, got 42/],
    ];
    for (const [list, message] of cases) {
      // A generator is drained by the first call: each call gets a fresh one.
      const items = list === gen ? gen() : list;
      let promise;
      assert.doesNotThrow(() => {
        promise = bp.map(items, echo);
      });
      await assert.rejects(promise, (e) => e instanceof TypeError && message.test(e.message));
      assert.throws(() => bp.stream(list === gen ? gen() : list, echo), (e) => e instanceof TypeError && message.test(e.message));
    }
  });

  test('sparse, frozen, exotic and typed arrays run like any list', async () => {
    const bp = new BatchProcessor();
    const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
    const results = await bp.map(sparse, echo);
    assert.deepEqual(results.map((r) => [r.ok, r.value]), [[true, 1], [true, undefined], [true, 3]]);
    const frozen = Object.freeze([Object.freeze({ a: 1 }), Object.create(null)]);
    assert.deepEqual((await bp.map(frozen, echo)).map((r) => r.ok), [true, true]);
    class Items extends Array {}
    assert.equal((await bp.map(Items.from([1, 2, 3]), echo)).length, 3);
    assert.deepEqual((await bp.map(new Uint8Array([7, 8]), echo)).map((r) => r.value), [7, 8]);
    assert.deepEqual((await bp.map(new Set(['a', 'b']), echo)).map((r) => r.value), ['a', 'b']);
  });

  test('200,000 items, one of them unreadable', async () => {
    const n = 200_000;
    const bp = new BatchProcessor({ concurrency: 64 });
    const results = await bp.map(withThrowingGetter(n, n - 7), (x) => x);
    assert.equal(results.length, n);
    assert.equal(results.filter((r) => r.ok).length, n - 1);
    assert.equal(results[n - 7].error.kind, 'invalid');
    assert.equal(results[n - 1].value, n - 1);
  });
});
