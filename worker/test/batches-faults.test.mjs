// /v1/batches under faults, on real workerd: duplicate deliveries, a consumer that crashes
// after K upstream replies, a batch object reset between claim and commit, and three batches
// sharing one upstream account's limiter. (The workerd process SIGKILLed mid-batch, twice:
// batches-kill.test.mjs.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './harness.mjs';
import { ROOMY_TOKEN, exactlyOnce, requests, results, sessionStats, simSession, submit, waitEnded } from './batches-client.mjs';

const FAST_SIM = { seed: 5, minuteMs: 60_000, latency: { baseMs: 10, perOutputTokenMs: 0, jitterMs: 10 } };
const QUICK = { ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_BATCH_LEASE_MS: '3000', EDGEBATCH_BATCH_REDELIVER_MS: '1500' };

/** The Worker wrapped with fault injection (test-only): `chaos` knobs, see the fixture. */
const chaosWorker = (chaos) => [{ EDGEBATCH_CHAOS: JSON.stringify(chaos) }, { script: 'worker/test/fixtures/chaos-worker.js', workQueues: 2 }];

/**
 * Runs `n` requests on a fresh Worker with `vars` (and startWorker `opts`); `during(worker,
 * batch)` runs alongside.
 */
async function runBatch([vars, opts], n, during) {
  const worker = await startWorker({ ...QUICK, ...vars }, opts);
  try {
    const sim = await simSession(worker.url, FAST_SIM);
    const reqs = requests(n);
    const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { maxRetries: 6, timeoutMs: 2000 }, requests: reqs });
    await during?.(worker, batch);
    const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 60_000 });
    const lines = await results(worker.url, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    const stats = await sessionStats(sim.baseUrl);
    return { ended, lines, stats, duplicates: (stats.byStatus['200'] ?? 0) - ended.request_counts.succeeded };
  } finally {
    await worker.dispose();
  }
}

describe('worker: /v1/batches under faults', { timeout: 300_000 }, () => {
  test('duplicate deliveries claim nothing twice: no item doubled, no upstream call repeated', async () => {
    const r = await runBatch([{}], 200, async (worker, batch) => {
      const queue = await worker.mf.getQueueProducer('WORK_QUEUE');
      const indexes = [...Array(25).keys()];
      for (let i = 0; i < 10; i++) await queue.send({ batchId: batch.id, indexes });
      await queue.send({ batchId: 'batch_nonsense', indexes });
      await queue.send({ unrelated: true });
    });
    assert.equal(r.ended.request_counts.succeeded, 200);
    console.log(`# duplicate deliveries: ${r.stats.requests} upstream calls for 200 items, ${r.duplicates} answered twice`);
    assert.equal(r.duplicates, 0);
    assert.equal(r.ended.edgebatch.leases_lapsed, 0);
  });

  test('a consumer that crashes after K replies: its leases run out and are redone, each item once', async () => {
    const r = await runBatch(chaosWorker({ consumerCrashAfter: 30 }), 150);
    assert.equal(r.ended.request_counts.succeeded, 150);
    // The crashed invocation's uncommitted replies are called again: the only duplicates, each
    // of an item whose lease lapsed.
    const lapsed = r.ended.edgebatch.leases_lapsed;
    console.log(`# consumer crash after 30 replies: ${r.stats.requests} upstream calls for 150 items, ${r.duplicates} answered twice, ${lapsed} leases lapsed`);
    assert.ok(r.duplicates >= 1 && r.duplicates <= lapsed, `${r.duplicates} duplicates, ${lapsed} lapsed leases`);
  });

  test('the batch object reset between claim and commit: nothing lost, nothing doubled', async () => {
    const r = await runBatch(chaosWorker({ ledgerResetAtCommit: 3 }), 150);
    assert.equal(r.ended.request_counts.succeeded, 150);
    console.log(`# batch object reset at commit 3: ${r.stats.requests} upstream calls for 150 items, ${r.duplicates} answered twice`);
    // The reset breaks the calls of both consumers (two shards) talking to it: what their
    // invocations had not committed is redone once their leases lapse, and only that.
    const lapsed = r.ended.edgebatch.leases_lapsed;
    assert.ok(r.duplicates <= lapsed, `${r.duplicates} duplicates, ${lapsed} lapsed leases`);
  });

  test('three batches on one key share one limiter: few 429s, every batch progresses', { timeout: 120_000 }, async () => {
    const worker = await startWorker({ ...QUICK, EDGEBATCH_BATCH_LEASE_MS: '60000' }, { workQueues: 6 });
    try {
      // 40 requests per 5-second window: the limit binds (150 requests need ~15 s).
      const sim = await simSession(worker.url, { ...FAST_SIM, minuteMs: 5_000, requestsPerMinute: 40 });
      const ids = [];
      for (const name of ['a', 'b', 'c']) {
        ids.push((await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { maxRetries: 10, timeoutMs: 5000 }, requests: requests(50, name) })).id);
      }
      const samples = [];
      const ended = await Promise.all(ids.map((id) => waitEnded(worker.url, id, {
        timeoutMs: 100_000,
        everyMs: 250,
        onSample: (b) => samples.push({ id, at: Date.now(), done: b.request_counts.succeeded }),
      })));
      for (const e of ended) assert.equal(e.request_counts.succeeded, 50);
      const s = await sessionStats(sim.baseUrl);
      const rejected = s.byStatus['429'] ?? 0;
      // Fairness: when the first batch had finished, every other had done a good part too.
      const firstEnd = Math.min(...ids.map((id) => samples.find((x) => x.id === id && x.done === 50).at));
      const atFirstEnd = ids.map((id) => Math.max(0, ...samples.filter((x) => x.id === id && x.at <= firstEnd).map((x) => x.done)));
      console.log(`# shared limiter: ${s.requests} upstream calls for 150 items, ${rejected} 429s; done per batch when the first ended: ${atFirstEnd.join(', ')}`);
      assert.ok(rejected <= 0.1 * s.requests, `${rejected} 429s of ${s.requests}`);
      // Not a fair share from the start: the first two batches take the whole first window's
      // 40 before the third's consumers ask (its first results come at 5-8 s, after the
      // refill), and results are committed 10 at a time. So the third had 10-30 done when the
      // first ended (20 most often); a starved one (first come, first served) would have none.
      assert.ok(Math.min(...atFirstEnd) >= 10, `a batch was starved: ${atFirstEnd}`);
    } finally {
      await worker.dispose();
    }
  });
});
