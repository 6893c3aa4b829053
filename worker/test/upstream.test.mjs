// What the Worker does about a bad upstream and a client that leaves, on real workerd: a
// hanging upstream is cut by the attempt timeout; a client disconnect stops the upstream calls;
// the subrequest budget holds; the upstream's retry-after is honoured.
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
    assert.deepEqual(lines.map((l) => l.index).sort(), [0, 1]);
    assert.equal(lines.reduce((n, l) => n + l.attempts, 0), 5);
    // Every 429 would be retried: the budget ends them all. An item that never started fails
    // with kind budget; one whose retry was refused keeps its 429. Both say why in the
    // Worker's words, and nothing more goes out.
    const spent = 'subrequest budget exhausted: all 5 subrequests of this batch are used';
    for (const l of lines) {
      assert.equal(l.ok, false);
      if (l.attempts === 0) {
        assert.deepEqual(l.error, { kind: 'budget', message: spent, retryable: false });
      } else {
        assert.deepEqual([l.error.kind, l.error.status, l.error.retryable], ['http', 429, true]);
        assert.ok(l.error.message.startsWith(`retry refused, ${spent}; last error: `), l.error.message);
      }
    }
    assert.equal((await simStats(worker.url)).requests, 5);
  } finally {
    await worker.dispose();
  }
});

test("the upstream's retry-after is honoured inside the Worker", { timeout: 60_000 }, async () => {
  // Three requests per 3 s: of four items sent at once, one gets a 429 whose retry-after-ms
  // says when a request fits again. With the client's own backoff at 1 ms and one retry, that
  // item ends ok only if its retry waited for the server's time (one 429 in all); a retry after
  // the backoff would meet a second 429 and fail.
  const worker = await startWorker({
    EDGEBATCH_SIM: 'on',
    EDGEBATCH_SIM_CONFIG: JSON.stringify({
      minuteMs: 3000, requestsPerMinute: 3, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 0 }, faults: {},
    }),
  });
  try {
    const r = await postBatch(worker.url, {
      provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` },
      items: messages(4),
      options: { concurrency: 4, maxRetries: 1, backoff: { baseMs: 1, maxMs: 1, jitter: 'none' } },
    });
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    const { summary } = lines.pop();
    assert.ok(lines.every((l) => l.ok), r.text);
    assert.deepEqual(lines.map((l) => l.attempts).sort(), [1, 1, 1, 2]);
    assert.equal(summary.subrequests, 5);
    const stats = await simStats(worker.url);
    assert.equal(stats.requests, 5, JSON.stringify(stats));
    assert.deepEqual(stats.byStatus, { 200: 4, 429: 1 });
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
