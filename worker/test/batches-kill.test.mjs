// /v1/batches through two crashes: workerd SIGKILLed twice while two batches run and a
// follower reads one of them on ?after=, restarted each time on its persisted state (the
// in-memory queue broker loses its backlog with the process: the ledgers' alarms must find
// what was lost). Every custom_id ends exactly once, the seqs are 1..N with no gap or
// repeat, and what the follower saw is the final set, line for line.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOMY_TOKEN, api, exactlyOnce, requests, results, submit, waitEnded } from './batches-client.mjs';
import { freePort, startChild } from './child.mjs';

const SIM = { seed: 7, minuteMs: 60_000, requestsPerMinute: 1_000_000, faults: {}, latency: { baseMs: 40, perOutputTokenMs: 0, jitterMs: 20 } };
const VARS = {
  ...ROOMY_TOKEN,
  EDGEBATCH_SIM: 'on',
  EDGEBATCH_SIM_CONFIG: JSON.stringify(SIM),
  EDGEBATCH_BATCH_ALARM_MS: '200',
  EDGEBATCH_BATCH_LEASE_MS: '3000',
  EDGEBATCH_BATCH_REDELIVER_MS: '1500',
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Reads `id`'s results on ?after= until the batch has ended and nothing new comes; rides out restarts. */
async function follow(base, id, until) {
  const seen = [];
  let after = 0;
  while (Date.now() < until) {
    let r;
    try {
      r = await api(base, 'GET', `/v1/batches/${id}/results?after=${after}`);
    } catch {
      await sleep(100); // the Worker is down between a kill and its restart
      continue;
    }
    if (r.status !== 200) {
      await sleep(100);
      continue;
    }
    const lines = r.text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    seen.push(...lines);
    if (lines.length > 0) after = lines.at(-1).edgebatch.seq;
    if (lines.length === 0 && r.headers.get('edgebatch-batch-ended') === 'true') return seen;
    await sleep(lines.length === 0 ? 50 : 0);
  }
  throw new Error(`follower of ${id} timed out after ${seen.length} lines`);
}

async function succeededOf(base, id) {
  try {
    return (await api(base, 'GET', `/v1/batches/${id}`)).json?.request_counts?.succeeded ?? 0;
  } catch {
    return 0;
  }
}

test('two SIGKILLs with two batches and a follower: every custom_id once, seq 1..N, the follower saw the final set', { timeout: 180_000 }, async () => {
  const state = mkdtempSync(join(tmpdir(), 'edgebatch-kill2-'));
  const port = await freePort();
  let child = await startChild(port, state, VARS);
  try {
    const base = new URL(child.url);
    const provider = { name: 'anthropic', baseUrl: `${child.url}/sim` };
    const a = requests(600, 'a');
    const b = requests(300, 'b');
    const batchA = await submit(base, { provider, options: { timeoutMs: 3000 }, requests: a });
    const batchB = await submit(base, { provider, options: { timeoutMs: 3000 }, requests: b });
    const follower = follow(base, batchA.id, Date.now() + 150_000);
    const killedAt = [];
    for (const at of [100, 350]) {
      const until = Date.now() + 60_000;
      while ((await succeededOf(base, batchA.id)) < at) {
        assert.ok(Date.now() < until, `batch A never reached ${at} results`);
        await sleep(20);
      }
      killedAt.push(await succeededOf(base, batchA.id));
      child.kill();
      await child.exited;
      child = await startChild(port, state, VARS);
    }
    const [endedA, endedB] = await Promise.all([batchA, batchB].map((x) => waitEnded(base, x.id, { timeoutMs: 120_000 })));
    assert.equal(endedA.request_counts.succeeded, 600, JSON.stringify(endedA.request_counts));
    assert.equal(endedB.request_counts.succeeded, 300, JSON.stringify(endedB.request_counts));
    const linesA = await results(base, batchA.id);
    const linesB = await results(base, batchB.id);
    exactlyOnce(linesA, a.map((r) => r.custom_id));
    exactlyOnce(linesB, b.map((r) => r.custom_id));
    for (const lines of [linesA, linesB]) {
      const seqs = lines.map((l) => l.edgebatch.seq);
      assert.deepEqual(seqs, Array.from({ length: lines.length }, (_, i) => i + 1), 'seq is 1..N in completion order');
    }
    const followed = await follower;
    const key = (l) => `${l.edgebatch.seq} ${l.custom_id}`;
    assert.deepEqual(followed.map(key), linesA.map(key), 'the follower saw exactly the final lines, in order');
    console.log(`# two kills at ${killedAt.join(' and ')} of 600 done; A: ${linesA.length} lines (leases lapsed ${endedA.edgebatch.leases_lapsed}, redelivered ${endedA.edgebatch.redelivered}), B: ${linesB.length}; follower ${followed.length} lines`);
  } finally {
    child.kill();
    await child.exited;
    rmSync(state, { recursive: true, force: true });
  }
});
