// What the Worker does about a bad upstream and a client that leaves, on real workerd: a
// hanging upstream is cut by the attempt timeout; a client disconnect stops the upstream calls;
// the subrequest budget holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TOKEN, messages, ndjson, postBatch, simStats, startWorker } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('a hanging upstream is cut by the attempt timeout', { timeout: 60_000 }, async () => {
  const worker = await startWorker({
    EDGEBATCH_SIM: 'on',
    EDGEBATCH_SIM_CONFIG: JSON.stringify({ latency: { baseMs: 5, jitterMs: 0 }, faults: { hang: 1 } }),
  });
  try {
    const t0 = Date.now();
    const r = await postBatch(worker.url, {
      provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` },
      // 4 timeouts: under the circuit breaker's default threshold (5), which would pause 5 s.
      items: messages(2),
      options: { concurrency: 2, maxRetries: 1, timeoutMs: 300, backoff: { baseMs: 10, maxMs: 10 } },
    });
    const wall = Date.now() - t0;
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    const { summary } = lines.pop();
    assert.equal(lines.length, 2);
    for (const l of lines) {
      assert.equal(l.ok, false);
      assert.equal(l.error.kind, 'timeout');
      assert.equal(l.attempts, 2);
    }
    assert.deepEqual(summary.byKind, { timeout: 2 });
    assert.ok(wall < 3000, `two 300 ms attempts per item took ${wall} ms in all`);
    const stats = await simStats(worker.url);
    assert.equal(stats.requests, 4, JSON.stringify(stats));
    assert.equal(stats.hangs, 4, JSON.stringify(stats));
  } finally {
    await worker.dispose();
  }
});

test('a client disconnect stops the upstream calls', { timeout: 60_000 }, async () => {
  const worker = await startWorker({
    EDGEBATCH_SIM: 'on',
    EDGEBATCH_SIM_CONFIG: JSON.stringify({ latency: { baseMs: 150, perOutputTokenMs: 0, jitterMs: 0 }, faults: {} }),
  });
  try {
    const N = 60;
    const client = new AbortController();
    const res = await fetch(new URL('/v1/batch', worker.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` },
        items: messages(N),
        options: { concurrency: 2, timeoutMs: 5000 },
      }),
      signal: client.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    let text = '';
    while (text.split('\n').length <= 3) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream ended before 3 lines');
      text += new TextDecoder().decode(value);
    }
    client.abort();
    await sleep(400); // attempts in flight at the disconnect settle
    const atStop = (await simStats(worker.url)).requests;
    await sleep(1500); // ten more sim latencies: a batch still running would send ~20 more
    const later = await simStats(worker.url);
    assert.ok(atStop < N / 2, `only the first few items were sent (${atStop})`);
    assert.equal(later.requests, atStop, 'no upstream request after the disconnect');
    assert.equal(later.inFlight, 0);
    assert.ok(later.maxInFlight <= 2, `concurrency 2 held: ${later.maxInFlight}`);
  } finally {
    await worker.dispose();
  }
});

test('the subrequest budget counts every attempt and is reported', { timeout: 60_000 }, async () => {
  const worker = await startWorker({
    EDGEBATCH_SIM: 'on',
    EDGEBATCH_SUBREQUEST_BUDGET: '5',
    EDGEBATCH_SIM_CONFIG: JSON.stringify({ latency: { baseMs: 5, jitterMs: 0 }, faults: { rate429: 1 } }),
  });
  try {
    let r = await postBatch(worker.url, { provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` }, items: messages(6) });
    assert.equal(r.status, 400);
    assert.match(JSON.parse(r.text).error.message, /subrequest budget is 5/);

    r = await postBatch(worker.url, {
      provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` },
      items: messages(2),
      options: { concurrency: 1, maxRetries: 10, backoff: { baseMs: 1, maxMs: 5 } },
    });
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    const { summary } = lines.pop();
    assert.equal(summary.subrequests, 5);
    assert.equal(lines.length, 2);
    // The first item burns the budget on retries; then nothing more goes out.
    assert.ok(lines.some((l) => /subrequest budget exhausted/.test(l.error?.message)), r.text);
    assert.equal((await simStats(worker.url)).requests, 5);
  } finally {
    await worker.dispose();
  }
});

test('at most 6 attempts in flight by default (the Workers connection limit)', { timeout: 60_000 }, async () => {
  const worker = await startWorker({
    EDGEBATCH_SIM: 'on',
    EDGEBATCH_SIM_CONFIG: JSON.stringify({ latency: { baseMs: 60, perOutputTokenMs: 0, jitterMs: 20 }, faults: {} }),
  });
  try {
    const r = await postBatch(worker.url, { provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` }, items: messages(36) });
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    assert.equal(lines.pop().summary.ok, 36);
    const stats = await simStats(worker.url);
    assert.equal(stats.maxInFlight, 6, JSON.stringify(stats));
  } finally {
    await worker.dispose();
  }
});
