// Issue 15: the dev simulator cannot be turned into a proxy or crashed, on real workerd
// (Miniflare). The Worker reaches its simulator in-process, so the Host header cannot point a
// batch at another listener; sessions hand out paths, not Host-built URLs; only this Worker's
// origin and loopback origins may use /sim from a page; what a session may configure is capped
// (sessions.test.mjs); a session evicted while a request reads its body is not freed under it.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { TOKEN, messages, ndjson, startWorker } from './harness.mjs';

/** A request with a Host header of our choosing (fetch would send the real one). */
function withHost(url, path, host, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, url), {
      method: 'POST',
      agent: false,
      headers: { host, 'content-type': 'application/json', ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('worker: the simulator is not a proxy', { timeout: 90_000 }, () => {
  let worker;
  let listener;
  const seen = [];
  before(async () => {
    worker = await startWorker({
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_SIM_CONFIG: JSON.stringify({ latency: { baseMs: 0, perOutputTokenMs: 0, jitterMs: 0 }, faults: {} }),
      EDGEBATCH_SIM_ORIGINS: 'https://demo.example, https://other.example',
    });
    listener = http.createServer((req, res) => {
      seen.push(req.url);
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ content: [{ type: 'text', text: 'from the listener' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } }));
    });
    await new Promise((r) => listener.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await worker?.dispose();
    listener?.closeAllConnections();
    await new Promise((r) => (listener ? listener.close(r) : r()));
  });

  test('a Host header naming another listener does not make the Worker call it', async () => {
    const host = `127.0.0.1:${listener.address().port}`;
    const r = await withHost(worker.url, '/v1/batch', host, {
      provider: { name: 'anthropic', baseUrl: `http://${host}/sim` },
      items: messages(3),
    }, { authorization: `Bearer ${TOKEN}` });
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    assert.equal(lines.at(-1).summary.ok, 3, r.text);
    for (const l of lines.slice(0, -1)) assert.notEqual(l.value.text, 'from the listener');
    assert.deepEqual(seen, [], 'the listener got no request');
  });

  test('the in-process simulator base works; other hosts are refused', async () => {
    const post = (baseUrl) => withHost(worker.url, '/v1/batch', worker.url.host, {
      provider: { name: 'anthropic', baseUrl }, items: messages(1),
    }, { authorization: `Bearer ${TOKEN}` });
    const ok = await post('http://sim.edgebatch.internal');
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ndjson(ok.text).at(-1).summary.ok, 1);
    const bad = await post(`http://127.0.0.1:${listener.address().port}/sim/v1`);
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.text).error.message, /provider.baseUrl is not allowed; for anthropic use one of: https:\/\/api.anthropic.com, http:\/\/sim.edgebatch.internal/);
  });

  test('a session answer carries no Host-built URL', async () => {
    const r = await withHost(worker.url, '/sim/sessions', 'evil.example', {});
    assert.equal(r.status, 201, r.text);
    assert.ok(!r.text.includes('evil.example'), r.text);
    assert.match(JSON.parse(r.text).path, /^\/sim\/s\/[0-9a-f]{16}$/);
  });

  test('CORS only for this origin, loopback origins and EDGEBATCH_SIM_ORIGINS; other pages get a 403', async () => {
    const create = (origin, method = 'POST') => fetch(new URL('/sim/sessions', worker.url), {
      method,
      headers: { origin, 'content-type': 'application/json', 'access-control-request-method': 'POST' },
      ...(method === 'POST' && { body: '{}' }),
    });
    for (const origin of ['https://evil.example', 'http://127.0.0.1.evil.example', 'null']) {
      for (const method of ['POST', 'OPTIONS']) {
        const res = await create(origin, method);
        assert.equal(res.status, 403, `${method} from ${origin}`);
        assert.equal(res.headers.get('access-control-allow-origin'), null);
        assert.equal((await res.json()).error.type, 'permission_error');
      }
    }
    const stats = await fetch(new URL('/sim/stats', worker.url), { headers: { origin: 'https://evil.example' } });
    assert.equal(stats.status, 403, 'nor can another page read the stats');
    for (const origin of ['http://localhost:5173', 'http://127.0.0.1:9999', 'http://[::1]:8080', 'https://demo.example', worker.url.origin]) {
      const pre = await create(origin, 'OPTIONS');
      assert.equal(pre.status, 204, origin);
      assert.equal(pre.headers.get('access-control-allow-origin'), origin);
      const res = await create(origin);
      assert.equal(res.status, 201, origin);
      assert.equal(res.headers.get('access-control-allow-origin'), origin);
    }
  });

  test('a session evicted while a request is reading its body answers that request', async () => {
    const session = async () => (await (await fetch(new URL('/sim/sessions', worker.url), { method: 'POST', body: '{}' })).json()).path;
    const path = await session();
    const body = JSON.stringify(messages(1)[0]);
    let push;
    const upload = new ReadableStream({ start: (c) => (push = c) });
    push.enqueue(new TextEncoder().encode(body.slice(0, 10)));
    const pending = fetch(new URL(`${path}/v1/messages`, worker.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'k', 'anthropic-version': '2023-06-01' },
      body: upload,
      duplex: 'half',
    });
    await new Promise((r) => setTimeout(r, 300)); // the Worker has the request and waits for its body
    for (let i = 0; i < 17; i += 1) await session(); // evicts it
    push.enqueue(new TextEncoder().encode(body.slice(10)));
    push.close();
    const res = await pending;
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(JSON.parse(text).type, 'message');
    assert.ok(!/null pointer/.test(worker.logs()), worker.logs().slice(-500));
  });
});

test('a Queue consumer reaches the in-process simulator (no incoming request)', { timeout: 60_000 }, async () => {
  const worker = await startWorker({ EDGEBATCH_SIM: 'on', EDGEBATCH_SIM_CONFIG: JSON.stringify({ faults: {} }) }, {
    script: 'worker/test/fixtures/sim-from-queue.js',
    options: { queueProducers: { WORK: { queueName: 'work' } }, queueConsumers: { work: { maxBatchTimeout: 0 } } },
  });
  try {
    assert.equal((await fetch(new URL('/start', worker.url), { method: 'POST' })).status, 202);
    let results = [];
    for (let i = 0; i < 100 && results.length < 3; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      results = await (await fetch(new URL('/results', worker.url))).json();
    }
    assert.equal(results.length, 3, JSON.stringify(results));
    for (const r of results) {
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.match(r.value.text, /^Summary [0-9a-f]{8}: queued item \d/);
    }
  } finally {
    await worker.dispose();
  }
});
