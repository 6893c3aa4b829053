// /v1/batches on real workerd (Miniflare) with real Durable Objects and Queues: a 2,000-item
// batch through several consumer invocations, NDJSON intake, cancel, expiry, the dead-letter
// queue, bad inputs and auth on every route.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startWorker } from './harness.mjs';
import { ROOMY_TOKEN, api, exactlyOnce, requests, results, sessionStats, simSession, submit, waitEnded } from './batches-client.mjs';

const OTHER_TOKEN = 'other-caller-token-7c1e55';
const FAST_SIM = { seed: 3, minuteMs: 60_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 10 } };

describe('worker: /v1/batches', { timeout: 240_000 }, () => {
  let worker;
  let base;

  before(async () => {
    worker = await startWorker({
      ...ROOMY_TOKEN,
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_BATCH_ALARM_MS: '300',
      EDGEBATCH_BATCH_MAX_REQUESTS: '5000',
      // A second caller with a token of its own.
      EDGEBATCH_TOKENS: `other:${createHash('sha256').update(OTHER_TOKEN).digest('hex')}`,
    });
    base = worker.url;
  });
  after(async () => {
    await worker?.dispose();
  });

  test('2,000 requests through several consumer invocations: one result per custom_id, counts add up', { timeout: 120_000 }, async () => {
    const sim = await simSession(base, { ...FAST_SIM, faults: { rate429: 0.02, rate529: 0.01, rate500: 0.01 } });
    const reqs = requests(2000);
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { maxRetries: 8, timeoutMs: 5000, backoff: { baseMs: 10, maxMs: 100 } }, requests: reqs });
    assert.match(batch.id, /^batch_[0-9a-f]{64}$/);
    assert.equal(batch.type, 'batch');
    assert.equal(batch.processing_status, 'in_progress');
    assert.deepEqual(batch.request_counts, { processing: 2000, succeeded: 0, errored: 0, canceled: 0, expired: 0 });
    assert.equal(batch.results_url, `/v1/batches/${batch.id}/results`);

    // Partial results while it runs, then the rest from the cursor.
    let partial = [];
    const ended = await waitEnded(base, batch.id, {
      timeoutMs: 110_000,
      onSample: async (b) => {
        if (partial.length === 0 && b.request_counts.succeeded > 0 && b.processing_status !== 'ended') partial = await results(base, batch.id);
      },
    });
    const c = ended.request_counts;
    assert.equal(c.processing, 0);
    assert.equal(c.succeeded + c.errored + c.canceled + c.expired, 2000);
    assert.ok(c.succeeded >= 1990, JSON.stringify(c));
    assert.ok(ended.ended_at);

    const all = await results(base, batch.id);
    exactlyOnce(all, reqs.map((r) => r.custom_id));
    assert.deepEqual(all.map((l) => l.edgebatch.seq), [...Array(2000).keys()].map((i) => i + 1), 'seq is 1..N in completion order');
    if (partial.length > 0) {
      const rest = await results(base, batch.id, partial.at(-1).edgebatch.seq);
      exactlyOnce([...partial, ...rest], reqs.map((r) => r.custom_id));
    }
    const ok = all.find((l) => l.result.type === 'succeeded');
    assert.equal(ok.result.message.type, 'message');
    assert.ok(ok.edgebatch.attempts >= 1 && ok.edgebatch.usage.outputTokens > 0);

    const s = await sessionStats(sim.baseUrl);
    const attempts = all.reduce((n, l) => n + l.edgebatch.attempts, 0);
    const upstream200 = s.byStatus['200'] ?? 0;
    console.log(`# 2,000 items: ${s.requests} upstream requests (${upstream200} ok, 429: ${s.byStatus['429'] ?? 0}, ` +
      `529: ${s.byStatus['529'] ?? 0}, 500: ${s.byStatus['500'] ?? 0}), ${attempts} attempts in the results; ` +
      `answered twice (a 200 that did not arrive in time, retried): ${upstream200 - c.succeeded}`);
    // Every upstream call is an attempt of some item's one committed result: nothing ran
    // behind the ledger's back (an attempt may fail before it reaches the upstream).
    assert.ok(s.requests <= attempts, `${s.requests} upstream calls, ${attempts} attempts recorded`);
    assert.ok(s.requests > 2000);
  });

  test('NDJSON intake with a header line; duplicates, limits and bad requests are 4xx naming them', async () => {
    const sim = await simSession(base, FAST_SIM);
    const header = JSON.stringify({ provider: { name: 'anthropic', baseUrl: sim.baseUrl } });
    const lines = requests(30).map((r) => JSON.stringify(r));
    const enc = new TextEncoder();
    const body = new ReadableStream({
      start(c) {
        // Split mid-line, as a network would.
        const text = `${header}\n${lines.join('\n')}\n`;
        for (let at = 0; at < text.length; at += 97) c.enqueue(enc.encode(text.slice(at, at + 97)));
        c.close();
      },
    });
    const r = await api(base, 'POST', '/v1/batches', { raw: body, type: 'application/x-ndjson' });
    assert.equal(r.status, 201, r.text);
    await waitEnded(base, r.json.id);
    exactlyOnce(await results(base, r.json.id), requests(30).map((q) => q.custom_id));

    const bad = async (payload, status, pattern, opts = {}) => {
      const res = await api(base, 'POST', '/v1/batches', { body: payload, ...opts });
      assert.equal(res.status, status, res.text);
      assert.match(res.json.error.message, pattern);
    };
    const p = { name: 'anthropic', baseUrl: sim.baseUrl };
    await bad({ provider: p, requests: [...requests(3), requests(1)[0]] }, 400, /requests\[3\]: duplicate custom_id "r0"/);
    // Across append chunks (500 rows each) the ledger finds it.
    const many = requests(700);
    many[650] = { ...many[650], custom_id: 'r10' };
    await bad({ provider: p, requests: many }, 400, /duplicate custom_id "r10"/);
    await bad({ provider: p, requests: requests(5001) }, 413, /more than 5000 requests \(EDGEBATCH_BATCH_MAX_REQUESTS\)/);
    await bad({ provider: p, requests: [{ custom_id: 'a b', params: {} }] }, 400, /requests\[0\]\.custom_id must be 1 to 64/);
    await bad({ provider: p, requests: [{ custom_id: 'a', params: [] }] }, 400, /requests\[0\]\.params must be an object/);
    await bad({ provider: p, requests: [{ custom_id: 'a', params: {}, extra: 1 }] }, 400, /unknown field "extra"/);
    await bad({ provider: p, requests: [] }, 400, /no requests/);
    // The Worker's item rules (item-policy.js) hold for every request of a stored batch too.
    await bad({ provider: p, requests: [{ custom_id: 'm', params: { ...requests(1)[0].params, model: 'claude-opus-4' } }] }, 400,
      /requests\[0\]\.params\.model must be one of/);
    await bad({ provider: p, requests: [{ custom_id: 'm', params: { ...requests(1)[0].params, max_tokens: 100_000 } }] }, 400,
      /requests\[0\]\.params\.max_tokens must be an integer in 1\.\.=1024/);
    await bad({ provider: p, requests: 'x' }, 400, /requests must be an array/);
    await bad({ provider: { ...p, apiKey: 'sk-x' }, requests: requests(1) }, 400, /provider\.apiKey is not accepted/);
    await bad({ provider: { name: 'anthropic', baseUrl: 'https://evil.example' }, requests: requests(1) }, 400, /provider\.baseUrl is not allowed/);
    await bad({ provider: p, options: { concurrency: 7 }, requests: requests(1) }, 400, /options\.concurrency must be at most 6 on this Worker/);
    await bad({ provider: p, options: { rateLimit: { rpm: 1 } }, requests: requests(1) }, 400, /options\.rateLimit has unknown field "rpm"/);
    const nd = await api(base, 'POST', '/v1/batches', { raw: `${header}\n${lines[0]}\nnot json\n`, type: 'application/x-ndjson' });
    assert.equal(nd.status, 400);
    assert.match(nd.json.error.message, /line 3 is not valid JSON/);
    // Nothing of a refused batch is listed.
    const listed = await api(base, 'GET', '/v1/batches?limit=100');
    assert.ok(listed.json.data.every((b) => b.request_counts.processing + b.request_counts.succeeded > 0));
  });

  test('cancel: queued items end canceled, in-flight ones finish; delete only once ended', async () => {
    const sim = await simSession(base, { ...FAST_SIM, latency: { baseMs: 150, perOutputTokenMs: 0, jitterMs: 0 } });
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: requests(600) });
    const early = await api(base, 'DELETE', `/v1/batches/${batch.id}`);
    assert.equal(early.status, 409);
    assert.match(early.json.error.message, /still in progress/);
    await waitFor(async () => (await api(base, 'GET', `/v1/batches/${batch.id}`)).json.request_counts.succeeded > 0);
    const c = await api(base, 'POST', `/v1/batches/${batch.id}/cancel`);
    assert.equal(c.status, 200);
    assert.ok(['canceling', 'ended'].includes(c.json.processing_status));
    assert.ok(c.json.cancel_initiated_at);
    const ended = await waitEnded(base, batch.id);
    const n = ended.request_counts;
    assert.equal(n.succeeded + n.canceled + n.errored, 600);
    // Two consumers lease up to 100 each (4 messages of 25): the rest was still queued.
    assert.ok(n.canceled >= 300 && n.succeeded > 0, JSON.stringify(n));
    const lines = await results(base, batch.id);
    exactlyOnce(lines, requests(600).map((r) => r.custom_id));
    assert.ok(lines.filter((l) => l.result.type === 'canceled').every((l) => Object.keys(l.result).length === 1));
    const del = await api(base, 'DELETE', `/v1/batches/${batch.id}`);
    assert.equal(del.status, 200);
    assert.deepEqual(del.json, { id: batch.id, type: 'batch_deleted' });
    assert.equal((await api(base, 'GET', `/v1/batches/${batch.id}`)).status, 404);
    assert.equal((await api(base, 'GET', '/v1/batches?limit=100')).json.data.some((b) => b.id === batch.id), false);
  });

  test('unknown batches are 404 on every route; every route needs the token', async () => {
    const ghost = `batch_${'ab'.repeat(32)}`;
    for (const [method, path] of [['GET', `/v1/batches/${ghost}`], ['GET', `/v1/batches/${ghost}/results`],
      ['POST', `/v1/batches/${ghost}/cancel`], ['DELETE', `/v1/batches/${ghost}`], ['GET', '/v1/batches/nope'],
      ['GET', `/v1/batches/${ghost}/other`]]) {
      const r = await api(base, method, path);
      assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
      assert.equal(r.json.error.type, 'not_found_error');
    }
    for (const [method, path] of [['GET', '/v1/batches'], ['POST', '/v1/batches'], ['GET', `/v1/batches/${ghost}`],
      ['GET', `/v1/batches/${ghost}/results`], ['POST', `/v1/batches/${ghost}/cancel`], ['DELETE', `/v1/batches/${ghost}`]]) {
      for (const token of [undefined, 'wrong-token-123456']) {
        const r = await api(base, method, path, { token: token ?? '' });
        assert.equal(r.status, 401, `${method} ${path} with ${token ? 'a wrong' : 'no'} token`);
        assert.equal(r.json.error.type, 'authentication_error');
      }
    }
    const r = await api(base, 'PUT', '/v1/batches');
    assert.equal(r.status, 405);
    const sim = await simSession(base, FAST_SIM);
    const real = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: requests(1) });
    for (const after of ['-1', 'x', '1.5']) {
      const bad = await api(base, 'GET', `/v1/batches/${real.id}/results?after=${after}`);
      assert.equal(bad.status, 400);
      assert.match(bad.json.error.message, /after must be a non-negative integer/);
    }
    assert.equal((await api(base, 'GET', '/v1/batches?limit=0')).status, 400);
    // Another token's batch is a 404 on every route, exactly like one that does not exist,
    // and its list does not show it.
    for (const [method, path] of [['GET', `/v1/batches/${real.id}`], ['GET', `/v1/batches/${real.id}/results`],
      ['POST', `/v1/batches/${real.id}/cancel`], ['DELETE', `/v1/batches/${real.id}`]]) {
      const r = await api(base, method, path, { token: OTHER_TOKEN });
      assert.equal(r.status, 404, `${method} ${path} as the other token: ${r.text}`);
    }
    const theirs = await api(base, 'GET', '/v1/batches', { token: OTHER_TOKEN });
    assert.equal(theirs.status, 200);
    assert.deepEqual(theirs.json.data, []);
    const mine = await api(base, 'GET', '/v1/batches?limit=100');
    assert.ok(mine.json.data.some((b) => b.id === real.id));
  });
});

describe('worker: /v1/batches expiry and the dead-letter queue', { timeout: 120_000 }, () => {
  test('a batch past expires_at ends with its unfinished items expired', async () => {
    const worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_BATCH_TTL_MS: '2500' });
    try {
      // Every request hangs (the session ends a hang after 20 s): nothing can finish in time.
      const sim = await simSession(worker.url, { ...FAST_SIM, faults: { hang: 1 } }, 20_000);
      const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { timeoutMs: 30_000 }, requests: requests(40) });
      const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 30_000 });
      assert.equal(ended.request_counts.expired, 40, JSON.stringify(ended.request_counts));
      const lines = await results(worker.url, batch.id);
      exactlyOnce(lines, requests(40).map((r) => r.custom_id));
      assert.ok(lines.every((l) => l.result.type === 'expired'));
    } finally {
      await worker.dispose();
    }
  });

  test('messages that keep failing reach the dead-letter queue: their items end errored, kind delivery', async () => {
    const worker = await startWorker({
      ...ROOMY_TOKEN,
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_BATCH_ALARM_MS: '200',
      EDGEBATCH_BATCH_REDELIVER_MS: '600000',
      EDGEBATCH_CHAOS: JSON.stringify({ consumerAlwaysFails: true }),
    }, { script: 'worker/test/fixtures/chaos-worker.js', workQueues: 2 });
    try {
      const sim = await simSession(worker.url, FAST_SIM);
      const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: requests(30) });
      const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 60_000 });
      assert.equal(ended.request_counts.errored, 30, JSON.stringify(ended.request_counts));
      const lines = await results(worker.url, batch.id);
      exactlyOnce(lines, requests(30).map((r) => r.custom_id));
      for (const l of lines) {
        assert.equal(l.result.error.kind, 'delivery');
        assert.match(l.result.error.message, /work queue gave up/);
      }
      assert.equal((await sessionStats(sim.baseUrl)).requests, 0);
    } finally {
      await worker.dispose();
    }
  });
});

describe('worker: /v1/batches under the token\'s hourly budget', { timeout: 60_000 }, () => {
  test('a stored batch draws on its token\'s items per hour: past it, the rest waits', async () => {
    const worker = await startWorker({ EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_ITEMS_PER_HOUR: '30' });
    try {
      const sim = await simSession(worker.url, FAST_SIM);
      const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: requests(60) });
      // Messages of 25: the first fits the hour's 30; of the second, the 5 that still fit run
      // and the other 20 wait for the hour, with the batch saying so.
      await waitFor(async () => (await api(worker.url, 'GET', `/v1/batches/${batch.id}`)).json.request_counts.succeeded >= 30);
      await new Promise((r) => setTimeout(r, 2000));
      const b = (await api(worker.url, 'GET', `/v1/batches/${batch.id}`)).json;
      assert.deepEqual([b.request_counts.succeeded, b.request_counts.processing, b.processing_status], [30, 30, 'in_progress']);
      assert.equal(b.edgebatch.waiting?.reason, 'token_budget', JSON.stringify(b.edgebatch));
      assert.ok(Date.parse(b.edgebatch.waiting.until) > Date.now() + 30 * 60_000, `waits for the hour: ${b.edgebatch.waiting.until}`);
      assert.equal((await sessionStats(sim.baseUrl)).requests, 30);
      const usage = (await api(worker.url, 'GET', '/v1/usage')).json;
      assert.equal(usage.now.itemsLastHour, 30);
      assert.equal(usage.total.requests, 30);
      assert.ok(usage.total.outputTokens > 0);
    } finally {
      await worker.dispose();
    }
  });
});

async function waitFor(check, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
