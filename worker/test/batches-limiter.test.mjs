// The shared limiter of /v1/batches and the consumer around it (issue 22, findings 2, 3, 4, 9,
// 11), on real workerd: settings that belong to whoever may set them, waits held in the
// limiter object (one RPC per attempt), deferral that lets calls in flight finish, message
// groups that fail alone within one wall-time budget, lease ids no eviction can reuse.
import { mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './harness.mjs';
import { ROOMY_TOKEN, api, requests, sessionStats, simSession, submit, waitEnded } from './batches-client.mjs';

const FAST_SIM = { seed: 5, minuteMs: 60_000, latency: { baseMs: 10, perOutputTokenMs: 0, jitterMs: 10 } };
const QUICK = { ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_BATCH_LEASE_MS: '3000', EDGEBATCH_BATCH_REDELIVER_MS: '1500' };
const BOB = 'bob-token-0c1d2e3f4a5b';
const TWO_TOKENS = { EDGEBATCH_TOKENS: `bob:${createHash('sha256').update(BOB).digest('hex')}` };
const COST = { inputTokens: 10, outputTokens: 10 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The limiter object alone (fixtures/limiter-caller.js): `call(name, method, ...args)`. */
async function limiterCaller(persist) {
  const worker = await startWorker({}, {
    script: 'worker/test/fixtures/limiter-caller.js',
    options: { durableObjects: { LIMITER: { className: 'UpstreamLimiter', useSQLite: true } } },
    persist,
  });
  const call = async (name, method, ...args) => {
    const r = await (await fetch(new URL(`/${name}/${method}`, worker.url), { method: 'POST', body: JSON.stringify(args) })).json();
    if (r.error) throw new Error(r.error);
    return r.value;
  };
  return { call, dispose: () => worker.dispose() };
}

describe('worker: the limiter object', { timeout: 60_000 }, () => {
  test('a wait is held in the object and answered when a permit comes back; a longer one is deferred at once', async () => {
    const l = await limiterCaller();
    try {
      assert.deepEqual(await l.call('a', 'configure', { provider: 'anthropic', concurrency: 1, leaseMs: 60_000 }), { ok: true });
      const first = await l.call('a', 'acquire', 'batch-1', COST, { maxWaitMs: 0 });
      assert.match(first.id, /^[0-9a-f]{12}:\d+$/, 'ids are <epoch>:<n>');
      const t0 = Date.now();
      const held = l.call('a', 'acquire', 'batch-2', COST, { maxWaitMs: 5_000 });
      await sleep(300);
      const busy = await l.call('a', 'acquire', 'batch-3', COST, { maxWaitMs: 0 });
      assert.equal(busy.defer?.reason, 'limiter', JSON.stringify(busy));
      assert.ok(busy.defer.untilMs > Date.now() - 1000, JSON.stringify(busy));
      // The release rides along on another acquire (which then waits its own turn).
      const third = l.call('a', 'acquire', 'batch-1', COST, { releases: [[first.id, { ok: true }]], maxWaitMs: 5_000 });
      const second = await held;
      const waited = Date.now() - t0;
      assert.match(second.id ?? '', /^[0-9a-f]{12}:\d+$/, JSON.stringify(second));
      assert.ok(waited >= 250 && waited < 2_000, `the held acquire was answered after ${waited} ms`);
      assert.equal(await l.call('a', 'releaseMany', [[second.id, { ok: true }], [first.id, { ok: true }]]), 1, 'a second release of one id frees nothing');
      assert.match((await third).id ?? '', /:/);
    } finally {
      await l.dispose();
    }
  });

  test('held waiters take turns by owner: the least recently served goes first', async () => {
    const l = await limiterCaller();
    try {
      await l.call('f', 'configure', { provider: 'anthropic', concurrency: 1, leaseMs: 60_000 });
      let held = await l.call('f', 'acquire', 'x', COST, { maxWaitMs: 0 });
      const order = [];
      const answers = [];
      const wait = (owner) => l.call('f', 'acquire', owner, COST, { maxWaitMs: 10_000 }).then((g) => {
        order.push(owner);
        answers.push(g);
      });
      wait('a');
      wait('a');
      wait('a');
      await sleep(100);
      wait('b');
      await sleep(100);
      for (let i = 0; i < 4; i++) {
        await l.call('f', 'releaseMany', [[held.id, { ok: true }]]);
        // A grant's answer may arrive before the release's own: count answers, in arrival order.
        const until = Date.now() + 15_000;
        while (answers.length <= i) {
          assert.ok(Date.now() < until, `no waiter answered within 15 s of release ${i + 1}; served so far: ${order}`);
          await sleep(10);
        }
        held = answers[i];
        assert.ok(held.id, `release ${i + 1} was answered with ${JSON.stringify(held)}; served so far: ${order}`);
      }
      assert.deepEqual(order, ['a', 'b', 'a', 'a']);
    } finally {
      await l.dispose();
    }
  });

  test('realtime calls go first while batch items wait too, and batches keep one grant in five', async () => {
    const l = await limiterCaller();
    try {
      await l.call('p', 'configure', { provider: 'anthropic', concurrency: 1, leaseMs: 60_000 });
      let held = await l.call('p', 'acquire', 'batch_x', COST, { maxWaitMs: 0 });
      const order = [];
      const answers = [];
      const calls = [];
      const wait = (owner, priority) => calls.push(l.call('p', 'acquire', owner, COST, { maxWaitMs: 20_000, priority }).then((g) => {
        order.push(priority === 'realtime' ? 'R' : 'B');
        answers.push(g);
      }));
      // The batch items were there first.
      for (let i = 0; i < 4; i++) wait('batch_x', undefined);
      await sleep(100);
      for (let i = 0; i < 9; i++) wait('realtime:alice', 'realtime');
      await sleep(100);
      for (let i = 0; i < 12; i++) {
        await l.call('p', 'releaseMany', [[held.id, { ok: true }]]);
        const until = Date.now() + 15_000;
        while (answers.length <= i) {
          assert.ok(Date.now() < until, `no waiter answered within 15 s of release ${i + 1}; served so far: ${order}`);
          await sleep(10);
        }
        held = answers[i];
        assert.ok(held.id, `release ${i + 1} was answered with ${JSON.stringify(held)}; served so far: ${order}`);
      }
      // 4 realtime, 1 batch, 4 realtime, 1 batch; then the realtime calls are all served
      // and the batch's last items go on.
      assert.deepEqual(order.join(''), 'RRRRBRRRRBRB');
      await l.call('p', 'releaseMany', [[held.id, { ok: true }]]);
      await Promise.all(calls);
      assert.equal(order.join(''), 'RRRRBRRRRBRBB');
    } finally {
      await l.dispose();
    }
  });

  test('finding 11: after a restart (eviction) a late release of an old id frees nothing', async () => {
    const state = mkdtempSync(join(tmpdir(), 'edgebatch-limiter-'));
    try {
      let l = await limiterCaller(state);
      await l.call('a', 'configure', { provider: 'anthropic', concurrency: 1, leaseMs: 60_000 });
      const old = await l.call('a', 'acquire', 'batch-1', COST, { maxWaitMs: 0 });
      await l.dispose();
      l = await limiterCaller(state);
      try {
        // The settings were durable; the permits were not.
        const fresh = await l.call('a', 'acquire', 'batch-2', COST, { maxWaitMs: 0 });
        assert.ok(fresh.id, JSON.stringify(fresh));
        assert.notEqual(fresh.id.split(':')[0], old.id.split(':')[0], 'a new instance, a new epoch');
        assert.equal(await l.call('a', 'release', old.id, { ok: true }), false, 'the old lease is not the new one');
        assert.equal((await l.call('a', 'stats')).inFlight, 1, 'the new holder keeps its permit');
        const next = await l.call('a', 'acquire', 'batch-3', COST, { maxWaitMs: 0 });
        assert.ok(next.defer, `still one in flight: ${JSON.stringify(next)}`);
      } finally {
        await l.dispose();
      }
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  test('settings: stored once; a named limiter refuses others, the account limiter follows the Worker', async () => {
    const l = await limiterCaller();
    try {
      const mine = { provider: 'anthropic', concurrency: 48, leaseMs: 60_000, rateLimit: { requestsPerMinute: 100 } };
      assert.deepEqual(await l.call('n', 'configure', mine), { ok: true });
      assert.deepEqual(await l.call('n', 'configure', { ...mine, leaseMs: 30_000 }), { ok: true }, 'the lease is the Worker\'s');
      const other = await l.call('n', 'configure', { ...mine, rateLimit: { requestsPerMinute: 1 } });
      assert.match(other.conflict ?? '', /rateLimit \{"requestsPerMinute":100\}, limiterConcurrency 48/);
      assert.deepEqual(await l.call('n', 'configure', { ...mine, concurrency: 2 }, { replace: true }), { ok: true });
      assert.equal((await l.call('n', 'stats')).settings.concurrency, 2);
    } finally {
      await l.dispose();
    }
  });
});

describe('worker: /v1/batches and its limiters', { timeout: 120_000 }, () => {
  test('finding 2: a named limiter is the token\'s; its settings are set once, a conflict is a 409, settings without a key a 400', async () => {
    const worker = await startWorker({ ...QUICK, ...TWO_TOKENS });
    try {
      const sim = await simSession(worker.url, FAST_SIM);
      const provider = { name: 'anthropic', baseUrl: sim.baseUrl };
      const tight = { limiterKey: 'k', rateLimit: { inputTokensPerMinute: 1 } };
      const first = await submit(worker.url, { provider, options: tight, requests: requests(2, 'a') });
      // Another token's "k" is another limiter: the first batch's settings are not its.
      const r = await api(worker.url, 'POST', '/v1/batches', { token: BOB, body: { provider, options: { limiterKey: 'k' }, requests: requests(5, 'b') } });
      assert.equal(r.status, 201, r.text);
      let ended;
      for (let i = 0; i < 300 && ended?.processing_status !== 'ended'; i++) {
        await sleep(100);
        ended = (await api(worker.url, 'GET', `/v1/batches/${r.json.id}`, { token: BOB })).json;
      }
      const lines = (await api(worker.url, 'GET', `/v1/batches/${r.json.id}/results`, { token: BOB })).text;
      assert.equal(ended.request_counts.succeeded, 5, lines);
      // The first token's own "k" keeps its settings: the same ones are welcome, others a 409.
      const again = await api(worker.url, 'POST', '/v1/batches', { body: { provider, options: tight, requests: requests(1, 'c') } });
      assert.equal(again.status, 201, again.text);
      const other = await api(worker.url, 'POST', '/v1/batches', { body: { provider, options: { limiterKey: 'k' }, requests: requests(1, 'd') } });
      assert.equal(other.status, 409, other.text);
      assert.match(other.json.error.message, /limiterKey "k" already names a limiter of this token with rateLimit \{"inputTokensPerMinute":1\}, limiterConcurrency 48/);
      const keyless = await api(worker.url, 'POST', '/v1/batches', { body: { provider, options: { rateLimit: { requestsPerMinute: 100 } }, requests: requests(1, 'e') } });
      assert.equal(keyless.status, 400, keyless.text);
      assert.match(keyless.json.error.message, /need options\.limiterKey/);
      // The tight limiter refuses its own batch's items, and only those.
      const own = await waitEnded(worker.url, first.id, { timeoutMs: 30_000 });
      assert.equal(own.request_counts.errored, 2);
    } finally {
      await worker.dispose();
    }
  });

  test('finding 4: a limiter deferral lets the calls in flight finish (none cancelled, none sent twice)', async () => {
    const worker = await startWorker({ ...QUICK, EDGEBATCH_BATCH_LEASE_MS: '60000' });
    try {
      const sim = await simSession(worker.url, { ...FAST_SIM, latency: { baseMs: 1000, perOutputTokenMs: 0, jitterMs: 0 } });
      // 6 requests a minute: six go at once, the seventh would wait 10 s (deferred).
      const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl },
        options: { limiterKey: 'six', rateLimit: { requestsPerMinute: 6 } }, requests: requests(12) });
      await sleep(3_000);
      const now = (await api(worker.url, 'GET', `/v1/batches/${batch.id}`)).json;
      const s = await sessionStats(sim.baseUrl);
      console.log(`# deferral: ${s.requests} upstream calls, ${now.request_counts.succeeded} succeeded after 3 s`);
      assert.equal(s.requests, 6, 'six permits, six calls');
      assert.equal(now.request_counts.succeeded, 6, `every call sent was kept: ${JSON.stringify(now.request_counts)}`);
      await api(worker.url, 'POST', `/v1/batches/${batch.id}/cancel`);
    } finally {
      await worker.dispose();
    }
  });

  test('finding 3: a wait for a permit holds no attempt timeout', async () => {
    const worker = await startWorker({ ...QUICK, EDGEBATCH_BATCH_LEASE_MS: '60000' });
    try {
      const sim = await simSession(worker.url, { ...FAST_SIM, latency: { baseMs: 600, perOutputTokenMs: 0, jitterMs: 0 } });
      // One permit at a time, 600 ms each: the fourth waits ~1.8 s, past its 1 s attempt timeout.
      const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl },
        options: { timeoutMs: 1000, limiterKey: 'one', limiterConcurrency: 1 }, requests: requests(4) });
      const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 30_000 });
      const lines = (await api(worker.url, 'GET', `/v1/batches/${batch.id}/results`)).text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const s = await sessionStats(sim.baseUrl);
      console.log(`# one permit, 1 s timeout: ${s.requests} upstream calls for 4 items, attempts ${lines.map((l) => l.edgebatch.attempts)}`);
      assert.equal(ended.request_counts.succeeded, 4, JSON.stringify(lines.map((l) => l.result.error?.message)));
      assert.equal(s.requests, 4, 'no call timed out while waiting for its permit');
    } finally {
      await worker.dispose();
    }
  });

  test('finding 3: when the rate binds, about one limiter call per item (waits held, releases ride along)', async () => {
    const worker = await startWorker({ ...QUICK, EDGEBATCH_BATCH_LEASE_MS: '60000' }, { workQueues: 4, script: 'bench/batches-worker.js' });
    try {
      // 50 requests a second against 4 consumers x 6 in flight / 100 ms = 240 a second.
      const sim = await simSession(worker.url, { ...FAST_SIM, minuteMs: 1000, requestsPerMinute: 50, latency: { baseMs: 100, perOutputTokenMs: 0, jitterMs: 0 } });
      const n = 300;
      const t0 = Date.now();
      const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { maxRetries: 8, timeoutMs: 10_000 }, requests: requests(n) });
      const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 60_000, everyMs: 250 });
      assert.equal(ended.request_counts.succeeded, n);
      const { do: calls } = await (await fetch(new URL('/__bench/counters', worker.url))).json();
      const limiterCalls = Object.entries(calls).filter(([k]) => k.startsWith('UpstreamLimiter.')).reduce((a, [, v]) => a + v, 0);
      const s = await sessionStats(sim.baseUrl);
      const perItem = limiterCalls / n;
      console.log(`# rate bound, 4 consumers: ${n} items in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${s.requests} upstream calls, ` +
        `${perItem.toFixed(2)} limiter calls per item (${JSON.stringify(Object.fromEntries(Object.entries(calls).filter(([k]) => k.startsWith('UpstreamLimiter.'))))})`);
      assert.ok(perItem <= 1.3, `${perItem.toFixed(2)} limiter calls per item`);
    } finally {
      await worker.dispose();
    }
  });
});

describe('worker: the consumer\'s message groups', { timeout: 60_000 }, () => {
  const PROBE = { script: 'worker/test/fixtures/consumer-probe.js', workQueues: 1 };
  const probe = async (worker) => (await fetch(new URL('/__probe', worker.url))).json();

  test('finding 9: a group that fails is retried alone; the other batch\'s message in the delivery is acked', async () => {
    const worker = await startWorker({ ...QUICK, EDGEBATCH_PROBE_TAGGED_ONLY: 'on' }, PROBE);
    try {
      const sim = await simSession(worker.url, FAST_SIM);
      const provider = { name: 'anthropic', baseUrl: sim.baseUrl };
      const failing = await submit(worker.url, { provider, options: { seed: 666 }, requests: requests(2, 'f') });
      const fine = await submit(worker.url, { provider, requests: requests(2, 'g') });
      const queue = await worker.mf.getQueueProducer('WORK_QUEUE');
      await queue.sendBatch([
        { body: { batchId: failing.id, indexes: [0, 1], tag: 'failing' } },
        { body: { batchId: fine.id, indexes: [0, 1], tag: 'fine' } },
      ]);
      let seen;
      for (let i = 0; i < 50; i++) {
        seen = await probe(worker);
        if (seen.deliveries.some((d) => d.tags.includes('fine'))) break;
        await sleep(100);
      }
      const together = seen.deliveries.find((d) => d.tags.includes('fine'));
      assert.ok(together?.tags.includes('failing'), `one delivery with both: ${JSON.stringify(seen.deliveries)}`);
      assert.equal(seen.settled.fine, 'ack', JSON.stringify(seen.settled));
      assert.equal(seen.settled.failing, 'retry', JSON.stringify(seen.settled));
    } finally {
      await worker.dispose();
    }
  });

  test('finding 9: the groups of one delivery share one wall-time budget', async () => {
    // Replies take 3 s; the invocation may run 2 s: two groups must not take 6.
    const worker = await startWorker({ ...QUICK, EDGEBATCH_BATCH_LEASE_MS: '60000', EDGEBATCH_CONSUMER_WALL_MS: '2000', EDGEBATCH_PROBE_TAGGED_ONLY: 'on' }, PROBE);
    try {
      const sim = await simSession(worker.url, { ...FAST_SIM, latency: { baseMs: 3000, perOutputTokenMs: 0, jitterMs: 0 } });
      const provider = { name: 'anthropic', baseUrl: sim.baseUrl };
      const one = await submit(worker.url, { provider, requests: requests(2, 'x') });
      const two = await submit(worker.url, { provider, requests: requests(2, 'y') });
      const queue = await worker.mf.getQueueProducer('WORK_QUEUE');
      await queue.sendBatch([
        { body: { batchId: one.id, indexes: [0, 1], tag: 'one' } },
        { body: { batchId: two.id, indexes: [0, 1], tag: 'two' } },
      ]);
      let d;
      for (let i = 0; i < 150 && !d; i++) {
        await sleep(100);
        d = (await probe(worker)).deliveries.find((x) => x.tags.includes('one') || x.tags.includes('two'));
      }
      assert.ok(d, 'the tagged delivery ran');
      console.log(`# wall budget 2 s: a delivery with ${d.tags.join(', ')} took ${d.ms} ms`);
      assert.ok(d.ms >= 1_500 && d.ms < 3_500, `${d.ms} ms`);
    } finally {
      await worker.dispose();
    }
  });
});
