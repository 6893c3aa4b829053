// POST /sim/sessions on real workerd (Miniflare): a simulator of its own per session (the demo
// page makes one per run), its validation, its limits and its eviction; the demo page assets.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { messages, startWorker } from './harness.mjs';

describe('worker: simulator sessions and the demo page', { timeout: 60_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ EDGEBATCH_SIM: 'on' });
  });
  after(() => worker?.dispose());

  const session = (body) => fetch(new URL('/sim/sessions', worker.url), { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  const ask = (baseUrl) => fetch(`${baseUrl}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'k', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(messages(1)[0]),
  });
  // A request to a session that no longer exists has no effect, so it may be sent once more when
  // it meets a reset socket (undici reusing a keep-alive connection the dev server's proxy has
  // just closed: seen once on a loaded machine, never alone).
  const askGone = (baseUrl) => ask(baseUrl).catch((err) => {
    if (!(err instanceof TypeError)) throw err;
    return ask(baseUrl);
  });

  test('a session has its own limits and stats', async () => {
    const res = await session({ config: { requestsPerMinute: 2, minuteMs: 600000, latency: { baseMs: 0, jitterMs: 0, perOutputTokenMs: 0 } }, hangMs: 1000 });
    assert.equal(res.status, 201);
    const { id, path } = await res.json();
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.equal(path, `/sim/s/${id}`);
    const baseUrl = new URL(path, worker.url).href;
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await ask(baseUrl)).status);
    assert.deepEqual(statuses, [200, 200, 429], 'its own 2 requests per minute');
    const other = await (await session({})).json();
    assert.equal((await ask(new URL(other.path, worker.url).href)).status, 200, 'another session is not limited by the first');
    const stats = await (await fetch(`${baseUrl}/stats`)).json();
    assert.equal(stats.requests, 3);
    assert.deepEqual(stats.byStatus, { 200: 2, 429: 1 });
  });

  test('a session with a capacity model serves, queues and sheds, mixed with random faults', async () => {
    const res = await session({ config: { capacity: 2, queue: 1, shedMs: 2, latency: { baseMs: 300, jitterMs: 0, perOutputTokenMs: 0 } } });
    const { path } = await res.json();
    const baseUrl = new URL(path, worker.url).href;
    // Six at once: two at full speed, one more served slower, three shed fast with 529.
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 6 }, async () => {
      const r = await ask(baseUrl);
      await r.text();
      return { status: r.status, ms: Date.now() - t0 };
    }));
    const shed = answers.filter((a) => a.status === 529);
    assert.equal(shed.length, 3, JSON.stringify(answers));
    assert.equal(answers.filter((a) => a.status === 200).length, 3);
    const slowestOk = Math.max(...answers.filter((a) => a.status === 200).map((a) => a.ms));
    assert.ok(Math.max(...shed.map((a) => a.ms)) < slowestOk, 'shedding answers before the served ones');
    const stats = await (await fetch(`${baseUrl}/stats`)).json();
    assert.equal(stats.shed, 3);
    assert.equal(stats.maxServed, 3);
    const bad = await session({ config: { capacity: 5000 } });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /config\.capacity must be at most 1000 for a session/);
    const orphan = await session({ config: { queue: 3 } });
    assert.equal(orphan.status, 400);
    assert.match((await orphan.json()).error.message, /config: queue needs capacity/);
  });

  test('bad sessions are 400 with a message naming the field', async () => {
    const cases = [
      ['not json', /body is not valid JSON/],
      [[1], /JSON object/],
      [{ config: { requestsPerMinute: 0 } }, /config: requestsPerMinute/],
      [{ config: { faults: { hang: 2 } } }, /config: faults\.hang/],
      [{ config: { bogus: 1 } }, /config: unknown option "bogus"/],
      [{ hangMs: 5 }, /hangMs must be an integer in 100\.\.=30000, got 5/],
      [{ hangMs: 120000 }, /hangMs must be an integer in 100\.\.=30000, got 120000/],
      [{ config: { latency: { baseMs: 600000 } } }, /config\.latency\.baseMs must be at most 10000 for a session, got 600000/],
      [{ config: { maxTokens: 500000 } }, /config\.maxTokens must be at most 4096 for a session/],
      [{ config: { latency: { chunkMs: 5000 } } }, /config\.latency\.chunkMs must be at most 100/],
      [{ colour: 'red' }, /unknown field "colour" \(expected config, hangMs\)/],
    ];
    for (const [body, message] of cases) {
      const res = await session(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      const { error } = await res.json();
      assert.equal(error.type, 'invalid_request_error');
      assert.match(error.message, message);
    }
    assert.equal((await fetch(new URL('/sim/sessions', worker.url))).status, 405);
    assert.equal((await fetch(new URL('/sim/sessions', worker.url), { method: 'OPTIONS' })).status, 204);
  });

  test('the newest 16 sessions are kept; an unknown one is 404', async () => {
    const first = await (await session({})).json();
    for (let i = 0; i < 16; i += 1) assert.equal((await session({})).status, 201);
    const res = await askGone(new URL(first.path, worker.url).href);
    assert.equal(res.status, 404);
    assert.match((await res.json()).error.message, /no simulator session/);
    assert.equal((await askGone(`${worker.url.origin}/sim/s/0123456789abcdef`)).status, 404);
  });

  test('the demo page and its wasm are served as static assets', async () => {
    const page = await fetch(new URL('/', worker.url));
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /text\/html/);
    assert.match(await page.text(), /<script type="module" src="app.js">/);
    const wasm = await fetch(new URL('/pkg/edgebatch_bg.wasm', worker.url));
    assert.equal(wasm.status, 200);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.ok(WebAssembly.validate(new Uint8Array(await wasm.arrayBuffer())));
  });
});

describe('worker: sessions with the simulator off', { timeout: 30_000 }, () => {
  test('POST /sim/sessions is 404', async () => {
    const worker = await startWorker();
    try {
      assert.equal((await fetch(new URL('/sim/sessions', worker.url), { method: 'POST', body: '{}' })).status, 404);
    } finally {
      await worker.dispose();
    }
  });
});
