// The `permits` call option: a shared permit source asked before every attempt of run/map/
// stream, told every outcome, against the loopback server. The wait holds no timeout; `never`
// fails one item; `defer` lets attempts in flight finish and ends the rest `deferred`; every
// granted id is released once, in the shape the Worker's Limiter.release reads.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import { sleep, eventually } from './helpers.mjs';

const T = { timeout: 20000 };
const srv = await startServer();
after(() => srv.close());

// The Worker's build (scripts/build.sh writes worker/pkg): its Limiter reads the outcomes.
const worker = await import('../../worker/pkg/edgebatch.js');
worker.initSync({ module: readFileSync(new URL('../../worker/pkg/edgebatch_bg.wasm', import.meta.url)) });

/** A permits object: `answer(index, nth)` says after how long and what acquire answers. */
function source(answer) {
  const log = { asked: [], released: [] };
  let granted = 0;
  const permits = {
    async acquire(index, cost) {
      log.asked.push({ index, cost });
      const [ms, what] = answer(index, log.asked.length - 1);
      await sleep(ms);
      if (what === 'grant') return { id: `p${++granted}:${index}` };
      return what;
    },
    release(id, outcome) {
      log.released.push([id, outcome]);
    },
  };
  return { permits, log };
}

/** Each id released once; the outcomes by the item the id was granted to. */
function releasesByItem(log) {
  const ids = log.released.map(([id]) => id);
  assert.equal(new Set(ids).size, ids.length, `an id released twice: ${ids}`);
  const out = {};
  for (const [id, outcome] of log.released) (out[id.split(':')[1]] ??= []).push(outcome);
  return out;
}

describe('permits', T, () => {
  test('the wait holds no timeout and counts no attempt; a timeout is released as one', async () => {
    const { permits, log } = source(() => [500, 'grant']);
    const bp = new BatchProcessor({ timeoutMs: 300, maxRetries: 0 });
    const started = Date.now();
    const [fast, hung] = await bp.run([{ url: `${srv.url}/delay/100` }, { url: `${srv.url}/hang` }], { permits });
    assert.ok(Date.now() - started >= 500, 'the permit was waited for');
    assert.equal(fast.ok, true, JSON.stringify(fast.error));
    assert.equal(fast.attempts, 1);
    assert.ok(fast.elapsedMs < 300, `the wait is not the attempt's: ${fast.elapsedMs} ms`);
    assert.equal(hung.error.kind, 'timeout');
    assert.deepEqual(log.asked.map((a) => a.cost), [0, 0].map(() => ({ requests: 1, inputTokens: 0, outputTokens: 0 })));
    const by = releasesByItem(log);
    assert.deepEqual(by[0], [{ ok: true }]);
    assert.deepEqual(by[1], [{ ok: false, kind: 'timeout' }]);
  });

  test('never fails one item; defer ends the rest deferred while the attempt in flight finishes', async () => {
    // Concurrency 3: item 0 (300 ms) and item 1 (a 503, then a 2 s backoff) are granted; item
    // 2 is refused; item 3 is deferred after 50 ms, item 4 would be granted after 200 ms.
    const { permits, log } = source((i) => [
      [0, 'grant'], [0, 'grant'], [0, { never: 'needs more than the budget' }],
      [50, { defer: { untilMs: Date.now() + 5000, reason: 'the account limiter is saturated' } }],
    ][i] ?? [200, 'grant']);
    const bp = new BatchProcessor({
      concurrency: 3, adaptive: false, backoff: { baseMs: 2000, maxMs: 2000, jitter: 'none' },
    });
    const specs = [`${srv.url}/delay/300`, `${srv.url}/status/503`, ...Array(4).fill(`${srv.url}/echo`)];
    const started = Date.now();
    const rs = await bp.run(specs.map((url) => ({ url })), { permits });
    assert.ok(Date.now() - started >= 300, 'the attempt in flight ran to its end');
    assert.equal(rs[0].ok, true);
    assert.deepEqual(rs.slice(1).map((r) => r.error.kind), ['deferred', 'invalid', 'deferred', 'deferred', 'deferred']);
    assert.equal(rs[2].error.message, 'refused by the rate limiter: needs more than the budget');
    assert.equal(rs[2].error.retryable, false);
    for (const r of [rs[1], ...rs.slice(3)]) {
      assert.equal(r.error.retryable, true);
      assert.ok(r.error.retryAfterMs > 4000 && r.error.retryAfterMs <= 5000, `retryAfterMs ${r.error.retryAfterMs}`);
      assert.match(r.error.message, /^deferred by the rate limiter for \d+ ms: the account limiter is saturated/);
    }
    assert.deepEqual([rs[1].attempts, rs[1].error.status], [1, 503], 'the backoff ended deferred, its 503 kept');
    assert.deepEqual(rs.slice(2).map((r) => r.attempts), [0, 0, 0, 0]);
    assert.deepEqual(log.asked.map((a) => a.index), [0, 1, 2, 3, 4], 'nothing asked after the deferral');
    // Item 4's grant came after its ask was dropped: it is given back, once.
    assert.ok(await eventually(() => log.released.length === 3, 1000));
    const by = releasesByItem(log);
    assert.deepEqual(by[0], [{ ok: true }]);
    assert.equal(by[1][0].status, 503);
    assert.deepEqual(by[4], [{ abandoned: true }]);
  });

  test('cancel: the attempt in flight and a late grant are released abandoned, once each', async () => {
    const { permits, log } = source((i) => [i === 0 ? 0 : 300, 'grant']);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const bp = new BatchProcessor({ concurrency: 2 });
    const rs = await bp.run([{ url: `${srv.url}/hang` }, { url: `${srv.url}/echo` }], { permits, signal: ac.signal });
    assert.deepEqual(rs.map((r) => [r.error.kind, r.attempts]), [['aborted', 1], ['aborted', 0]]);
    assert.equal(rs[1].error.message, 'cancelled before the item started');
    assert.ok(await eventually(() => log.released.length === 2, 1000));
    await sleep(50);
    assert.deepEqual(releasesByItem(log), { 0: [{ abandoned: true }], 1: [{ abandoned: true }] });
  });

  test('outcomes carry what the Worker\'s Limiter reads: status, retry wait, rate limits, usage', async () => {
    const { permits, log } = source(() => [0, 'grant']);
    const bp = new BatchProcessor({
      provider: { name: 'anthropic', apiKey: 'k', baseUrl: srv.url },
      backoff: { baseMs: 1, maxMs: 5, jitter: 'none' },
    });
    const body = (model) => ({ model, max_tokens: 32, messages: [{ role: 'user', content: 'hello' }] });
    const rs = await bp.run([body('ok'), body(`flaky:permits-${Date.now()}:1:429`)], { permits });
    assert.deepEqual(rs.map((r) => [r.ok, r.attempts]), [[true, 1], [true, 2]]);
    const by = releasesByItem(log);
    const [limited, ok] = by[1];
    assert.deepEqual([limited.ok, limited.kind, limited.status], [false, 'http', 429]);
    assert.equal(limited.headers['retry-after-ms'], '10');
    assert.equal(limited.headers['anthropic-ratelimit-requests-limit'], '50');
    assert.match(limited.headers['anthropic-ratelimit-requests-reset'], /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(limited.error, { type: 'error', error: { type: 'rate_limit_error' } });
    assert.deepEqual([ok.ok, ok.usage], [true, { inputTokens: 5, outputTokens: 11 }]);
    assert.equal(ok.headers['anthropic-ratelimit-requests-remaining'], '49');
    // The Worker's limiter takes both: the 429's wait pauses everyone for it.
    const now = Date.now();
    const limiter = new worker.Limiter({ provider: 'anthropic', concurrency: 4 }, now);
    const a = limiter.acquire('b', 0, 0, now);
    const b = limiter.acquire('b', 0, 0, now);
    assert.equal(limiter.release(a.id, ok, now), true);
    assert.equal(limiter.release(b.id, limited, now), true);
    assert.equal(limiter.stats(now).pausedForMs, 10);
  });

  test('a rejected acquire defers for a second; a throwing release is ignored', async () => {
    const bp = new BatchProcessor();
    const failing = { acquire: () => Promise.reject(new Error('limiter unreachable')), release() {} };
    const rs = await bp.run([{ url: `${srv.url}/echo` }, { url: `${srv.url}/echo` }], { permits: failing });
    for (const r of rs) {
      assert.equal(r.error.kind, 'deferred');
      assert.ok(r.error.retryAfterMs > 900 && r.error.retryAfterMs <= 1000, `${r.error.retryAfterMs}`);
      assert.match(r.error.message, /permits\.acquire failed: limiter unreachable/);
    }
    let released = 0;
    const throwing = {
      acquire: (i) => ({ id: i }),
      release() {
        released += 1;
        throw new Error('release failed');
      },
    };
    const ok = await bp.map([1, 2], async (x) => x * 2, { permits: throwing });
    assert.deepEqual(ok.map((r) => r.value), [2, 4]);
    assert.equal(released, 2);
  });

  test('a permits value that is not an object with acquire and release is a TypeError naming it', async () => {
    const bp = new BatchProcessor();
    const items = [{ url: `${srv.url}/echo` }];
    await assert.rejects(bp.run(items, { permits: 5 }), { name: 'TypeError', message: 'permits must be an object, got 5' });
    await assert.rejects(bp.map([1], (x) => x, { permits: null }), {
      name: 'TypeError', message: 'permits must be an object, got a value of type null',
    });
    assert.throws(() => bp.stream(items, { permits: { acquire() {} } }), {
      name: 'TypeError', message: 'permits.release must be a function, got undefined',
    });
  });
});
