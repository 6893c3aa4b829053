// Issue 15: named tokens and per-token limits on real workerd (Miniflare), held in the
// TokenLimits Durable Object (SQLite) across two isolates of the Worker: concurrent batches,
// items and subrequests per hour, the item rules (models, max_tokens, server tools), and
// GET /v1/usage for the token's own usage.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { TOKEN, messages, ndjson, startWorker } from './harness.mjs';

const ALICE = 'alice-token-4c1e9a7b2f60d8e3';
const BOB = 'bob-token-7d2a0c5e9b13f486';
const sha = (t) => createHash('sha256').update(t).digest('hex');
const TOKENS = `alice:${sha(ALICE)}, bob:${sha(BOB)}`;
const QUICK_SIM = JSON.stringify({ latency: { baseMs: 0, perOutputTokenMs: 0, jitterMs: 0 }, faults: {} });

function call(fetcher, url, path, token, body) {
  return fetcher(new URL(path, url), {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  }).then(async (res) => ({ status: res.status, headers: res.headers, text: await res.text() }));
}

const simBatch = (url, items, options = {}) => ({ provider: { name: 'anthropic', baseUrl: `${url.origin}/sim` }, items, options });

describe('worker: named tokens, usage, hourly limits', { timeout: 90_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_SIM_CONFIG: QUICK_SIM,
      EDGEBATCH_TOKENS: TOKENS,
      EDGEBATCH_ITEMS_PER_HOUR: '8',
      EDGEBATCH_SUBREQUESTS_PER_HOUR: '12',
    });
  });
  after(() => worker?.dispose());
  const post = (token, body) => call(fetch, worker.url, '/v1/batch', token, body);
  const usage = async (token) => JSON.parse((await call(fetch, worker.url, '/v1/usage', token)).text);

  test('each named token and the default one is accepted; anything else is a 401', async () => {
    for (const t of [ALICE, BOB, TOKEN]) assert.equal((await call(fetch, worker.url, '/v1/usage', t)).status, 200);
    for (const t of ['alice', sha(ALICE), `${ALICE}x`, '']) {
      const r = await post(t, simBatch(worker.url, []));
      assert.equal(r.status, 401, t);
      assert.equal(JSON.parse(r.text).error.type, 'authentication_error');
    }
    assert.equal((await usage(ALICE)).token, 'alice');
    assert.equal((await usage(TOKEN)).token, 'default');
  });

  test("a token's usage is its own; unused subrequests go back to the hour", async () => {
    const r = await post(ALICE, simBatch(worker.url, messages(3)));
    assert.equal(r.status, 200, r.text);
    const { summary } = ndjson(r.text).at(-1);
    assert.equal(summary.ok, 3);
    assert.equal(summary.subrequests, 3);
    const a = await usage(ALICE);
    assert.deepEqual(a.limits, { concurrentBatches: 4, itemsPerHour: 8, subrequestsPerHour: 12 });
    assert.deepEqual(a.now, { batches: 0, itemsLastHour: 3, subrequestsLastHour: 3 }, 'granted 12, used 3: 9 went back');
    assert.equal(a.total.batches, 1);
    assert.equal(a.total.items, 3);
    assert.equal(a.total.requests, 3);
    assert.equal(a.total.inputTokens, summary.usage.inputTokens);
    assert.equal(a.total.outputTokens, summary.usage.outputTokens);
    assert.ok(a.total.inputTokens > 0 && a.total.outputTokens > 0);
    const b = await usage(BOB);
    assert.deepEqual(b.total, { batches: 0, items: 0, requests: 0, subrequests: 0, inputTokens: 0, outputTokens: 0 });
  });

  test('items and subrequests per hour: 429 with retry-after naming the limit; never-fitting is a 400', async () => {
    // alice has used 3 items and 3 subrequests of 8 and 12.
    let r = await post(ALICE, simBatch(worker.url, messages(6)));
    assert.equal(r.status, 429, r.text);
    let error = JSON.parse(r.text).error;
    assert.equal(error.type, 'rate_limit_error');
    assert.equal(error.limit, 'items_per_hour');
    assert.match(error.message, /token limit items_per_hour: 3 of 8 items per hour are used; this asks for 6/);
    const wait = Number(r.headers.get('retry-after'));
    assert.ok(wait > 3000 && wait <= 3600, `retry-after ${wait} s: when alice's first batch leaves the hour`);
    r = await post(ALICE, simBatch(worker.url, messages(9)));
    assert.equal(r.status, 400, r.text);
    assert.match(JSON.parse(r.text).error.message, /token limit items_per_hour: 9 items can never fit/);
    assert.equal((await post(BOB, simBatch(worker.url, messages(6)))).status, 200, "bob's hour is his own");
    // bob: 6 of 12 subrequests used; 5 items at 1 attempt each fit, and get only 6 subrequests.
    r = await post(BOB, simBatch(worker.url, messages(2)));
    assert.equal(r.status, 200);
    assert.equal((await usage(BOB)).now.subrequestsLastHour, 8);
    r = await post(BOB, simBatch(worker.url, [...messages(2)]));
    assert.equal(r.status, 429, 'items_per_hour: 8 + 2 > 8');
    assert.equal(JSON.parse(r.text).error.limit, 'items_per_hour');
  });

  test('the item rules: allowed models, max_tokens cap, no server tools (400 naming the rule)', async () => {
    const m = messages(1)[0];
    const cases = [
      [{ ...m, model: 'claude-opus-4-1' }, /items\[0\]\.model must be one of claude-haiku-4-5, gpt-4o-mini \(EDGEBATCH_MODELS\)/],
      [{ ...m, max_tokens: 64000 }, /items\[0\]\.max_tokens must be an integer in 1\.\.=1024 \(EDGEBATCH_MAX_OUTPUT_TOKENS\)/],
      [{ model: m.model, messages: m.messages }, /items\[0\]\.max_tokens is required here/],
      [{ ...m, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, /items\[0\]\.tools\[0\] is a server-side tool/],
      [{ ...m, messages: [{ role: 'user', content: 'x'.repeat(17_000) }] }, /items\[0\] is \d+ bytes; at most 16384 per item/],
      [{ ...m, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'url', url: 'https://example.com/a.pdf' } }] }] },
        /items\[0\]\.messages\[0\]\.content\[0\] has type "document": only text content is allowed here/],
      [{ ...m, system: [{ type: 'text', text: 'hi' }], messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'image', source: {} }] }] }] },
        /items\[0\]\.messages\[0\]\.content\[0\]\.content\[0\] has type "image"/],
    ];
    for (const [item, message] of cases) {
      for (const baseUrl of [undefined, `${worker.url.origin}/sim`]) {
        const r = await post(BOB, { provider: { name: 'anthropic', ...(baseUrl && { baseUrl }) }, items: [item] });
        assert.equal(r.status, 400, `${r.text} (${baseUrl ?? 'api.anthropic.com'})`);
        assert.match(JSON.parse(r.text).error.message, message);
      }
    }
    const openai = await post(BOB, { provider: { name: 'openai' }, items: [{ model: 'gpt-4o-mini', messages: m.messages, n: 3, max_tokens: 5 }] });
    assert.match(JSON.parse(openai.text).error.message, /items\[0\]\.n must be 1/);
    const custom = { ...m, tools: [{ name: 'lookup', input_schema: { type: 'object' } }] };
    assert.equal((await post(TOKEN, simBatch(worker.url, [custom]))).status, 200, 'a client tool is fine');
  });

  test('a malformed EDGEBATCH_TOKENS is a 500 naming the entry, never its value', async () => {
    const bad = await startWorker({ EDGEBATCH_TOKENS: `alice:${sha(ALICE)},bob:not-a-hash-SECRETISH` });
    try {
      const r = await call(fetch, bad.url, '/v1/usage', ALICE);
      assert.equal(r.status, 500);
      const { error } = JSON.parse(r.text);
      assert.equal(error.type, 'configuration_error');
      assert.match(error.message, /EDGEBATCH_TOKENS entry 2 must be name:sha256hex/);
      assert.ok(!r.text.includes('SECRETISH'));
    } finally {
      await bad.dispose();
    }
  });
});

describe('worker: concurrent batches per token, across two isolates', { timeout: 90_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_SIM_CONFIG: JSON.stringify({ latency: { baseMs: 3000, perOutputTokenMs: 0, jitterMs: 0 }, faults: {} }),
      EDGEBATCH_TOKENS: TOKENS,
    }, { twin: true });
  });
  after(() => worker?.dispose());

  test('the 5th concurrent batch of a token is a 429 on either isolate; another token is not held up', async () => {
    const slow = simBatch(worker.url, messages(1), { timeoutMs: 10_000 });
    const isolates = [fetch, worker.twin.fetch];
    // 4 slow batches, 2 on each isolate; wait until all 4 hold their slot.
    const running = [0, 1, 2, 3].map((i) => call(isolates[i % 2], worker.url, '/v1/batch', ALICE, slow));
    const usageOf = async (t) => JSON.parse((await call(fetch, worker.url, '/v1/usage', t)).text);
    for (let i = 0; i < 200 && (await usageOf(ALICE)).now.batches < 4; i += 1) await new Promise((r) => setTimeout(r, 5));
    assert.equal((await usageOf(ALICE)).now.batches, 4);
    for (const f of isolates) {
      const r = await call(f, worker.url, '/v1/batch', ALICE, slow);
      assert.equal(r.status, 429, r.text);
      const { error } = JSON.parse(r.text);
      assert.equal(error.limit, 'concurrent_batches');
      assert.match(error.message, /token limit concurrent_batches: 4 of 4 concurrent batches of this token are running/);
      assert.equal(r.headers.get('retry-after'), '5');
    }
    const bob = await call(worker.twin.fetch, worker.url, '/v1/batch', BOB, slow);
    assert.equal(bob.status, 200, 'bob has his own slots');
    for (const r of await Promise.all(running)) {
      assert.equal(r.status, 200, r.text);
      assert.equal(ndjson(r.text).at(-1).summary.ok, 1);
    }
    for (let i = 0; i < 200 && (await usageOf(ALICE)).now.batches > 0; i += 1) await new Promise((r) => setTimeout(r, 20));
    const again = await call(worker.twin.fetch, worker.url, '/v1/batch', ALICE, simBatch(worker.url, messages(1)));
    assert.equal(again.status, 200, 'the slots are free again once the batches end');
    assert.equal((await usageOf(ALICE)).total.batches, 5);
  });
});
