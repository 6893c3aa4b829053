// POST /v1/batches intake and the token's budget, on real workerd (Miniflare): NDJSON lines
// size-checked as their bytes arrive, a stalled body a 408, a JSON body capped far below the
// NDJSON one, a first line that is not an object a 400 naming it; a batch its token cannot send
// before it expires refused at create; a token's hour charged once per item and granted in part;
// a revoked token's batches stop.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ownerActive } from '../src/auth.js';
import { ROOMY_TOKEN, api, requests, results, simSession, submit, waitEnded } from './batches-client.mjs';
import { TOKEN, startWorker } from './harness.mjs';

const FAST_SIM = { seed: 5, minuteMs: 60_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha = (t) => createHash('sha256').update(t).digest('hex');

/**
 * A POST /v1/batches on a raw socket, chunked, that the test feeds piece by piece and may leave
 * open: `send(text)`, `answer(waitMs)` -> `{ status, json }` or null if no answer came in time.
 */
function openPost(url, type) {
  const socket = net.connect(Number(url.port), url.hostname);
  socket.on('error', () => {});
  let got = '';
  socket.on('data', (d) => (got += d));
  const head = ['POST /v1/batches HTTP/1.1', `Host: ${url.host}`, `Content-Type: ${type}`, `Authorization: Bearer ${TOKEN}`,
    'Transfer-Encoding: chunked', 'Connection: close'];
  socket.write(`${head.join('\r\n')}\r\n\r\n`);
  return {
    send(text) {
      if (!socket.destroyed) socket.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
    },
    end() {
      if (!socket.destroyed) socket.write('0\r\n\r\n');
    },
    async answer(waitMs) {
      const until = Date.now() + waitMs;
      while (!/\r\n\r\n[\s\S]*\}/.test(got) && Date.now() < until) await sleep(20);
      socket.destroy();
      if (!got.includes('\r\n')) return null;
      const status = Number(got.split(' ')[1]);
      const body = got.slice(got.indexOf('\r\n\r\n') + 4);
      const json = body.includes('{') ? JSON.parse(body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1)) : undefined;
      return { status, json };
    },
  };
}

describe('worker: /v1/batches intake', { timeout: 60_000 }, () => {
  let worker;
  let base;
  let header;
  before(async () => {
    worker = await startWorker({
      ...ROOMY_TOKEN,
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_BODY_TIMEOUT_MS: '1000',
      EDGEBATCH_BATCH_MAX_REQUEST_BYTES: '4096',
      EDGEBATCH_BATCH_MAX_JSON_BYTES: '65536',
    });
    base = worker.url;
    const sim = await simSession(base, FAST_SIM);
    header = JSON.stringify({ provider: { name: 'anthropic', baseUrl: sim.baseUrl } });
  });
  after(() => worker?.dispose());

  test('a first line that is not a JSON object is a 400 naming the line', async () => {
    for (const [body, line] of [['null\n', 1], ['5\n', 1], ['[]\n', 1], ['"header"\n', 1], ['\ntrue\n', 2]]) {
      const r = await api(base, 'POST', '/v1/batches', { raw: body, type: 'application/x-ndjson' });
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.match(r.json.error.message, new RegExp(`^line ${line} must be a JSON object: a header \\{ provider\\?, options\\? \\} or a request \\{ custom_id, params \\}`));
    }
  });

  test('an NDJSON line longer than the limit is a 413 while its bytes still arrive', async () => {
    const post = openPost(base, 'application/x-ndjson');
    post.send(`${header}\n`);
    post.send(`${JSON.stringify(requests(1)[0])}\n`);
    // One line of 40 KB (the limit: 2 x 4096 + 1024 bytes), never finished.
    const start = `{"custom_id":"big","params":{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"`;
    post.send(start);
    for (let i = 0; i < 5; i++) post.send('x'.repeat(8192));
    const r = await post.answer(3000);
    assert.ok(r, 'no answer while the line was still open: it is only checked once complete');
    assert.equal(r.status, 413);
    assert.match(r.json.error.message, /^line 3 is longer than 9216 bytes/);
    assert.match(r.json.error.message, /EDGEBATCH_BATCH_MAX_REQUEST_BYTES/);
  });

  test('an NDJSON body that stalls longer than EDGEBATCH_BODY_TIMEOUT_MS is a 408; a slow steady one is not', async () => {
    const stalled = openPost(base, 'application/x-ndjson');
    stalled.send(`${header}\n${JSON.stringify(requests(1)[0])}\n`);
    const r = await stalled.answer(4000);
    assert.ok(r, 'no answer: the stalled body holds the invocation');
    assert.equal(r.status, 408);
    assert.equal(r.json.error.type, 'request_timeout');
    assert.match(r.json.error.message, /EDGEBATCH_BODY_TIMEOUT_MS/);

    // 1.5 s in all, never 1 s without a byte: accepted.
    const steady = openPost(base, 'application/x-ndjson');
    steady.send(`${header}\n`);
    for (const q of requests(5)) {
      await sleep(300);
      steady.send(`${JSON.stringify(q)}\n`);
    }
    steady.end();
    const ok = await steady.answer(4000);
    assert.equal(ok?.status, 201, JSON.stringify(ok));
    assert.equal(ok.json.request_counts.processing, 5);
  });

  test('a JSON body over EDGEBATCH_BATCH_MAX_JSON_BYTES is a 413 that says to send NDJSON', async () => {
    const payload = { ...JSON.parse(header), requests: requests(600) };
    assert.ok(JSON.stringify(payload).length > 65536);
    const r = await api(base, 'POST', '/v1/batches', { body: payload });
    assert.equal(r.status, 413, r.text);
    assert.equal(r.json.error.type, 'request_too_large');
    assert.match(r.json.error.message, /larger than 65536 bytes \(EDGEBATCH_BATCH_MAX_JSON_BYTES\)/);
    assert.match(r.json.error.message, /application\/x-ndjson/);
    // The same requests as NDJSON are fine.
    const nd = await api(base, 'POST', '/v1/batches', {
      raw: [header, ...payload.requests.map((q) => JSON.stringify(q))].join('\n'),
      type: 'application/x-ndjson',
    });
    assert.equal(nd.status, 201, nd.text);
    assert.equal(nd.json.request_counts.processing, 600);
  });
});

describe("worker: /v1/batches within the token's hourly budget", { timeout: 60_000 }, () => {
  let worker;
  let base;
  let provider;
  before(async () => {
    worker = await startWorker({
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_BATCH_ALARM_MS: '200',
      EDGEBATCH_ITEMS_PER_HOUR: '10',
      EDGEBATCH_SUBREQUESTS_PER_HOUR: '1000',
      EDGEBATCH_BATCH_TTL_MS: String(2 * 3_600_000),
    });
    base = worker.url;
    provider = { name: 'anthropic', baseUrl: (await simSession(base, FAST_SIM)).baseUrl };
  });
  after(() => worker?.dispose());

  test('a batch its token cannot send before it expires is a 400 naming the limits and the numbers', async () => {
    const check = (r) => {
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.type, 'invalid_request_error');
      const m = r.json.error.message;
      for (const p of [/EDGEBATCH_ITEMS_PER_HOUR = 10\b/, /EDGEBATCH_BATCH_TTL_MS = 7200000\b/, /at most 20 /]) assert.match(m, p);
    };
    const json = await api(base, 'POST', '/v1/batches', { body: { provider, requests: requests(21) } });
    check(json);
    assert.match(json.json.error.message, /^the batch has 21 requests/);
    const nd = await api(base, 'POST', '/v1/batches', {
      raw: [JSON.stringify({ provider }), ...requests(21).map((q) => JSON.stringify(q))].join('\n'),
      type: 'application/x-ndjson',
    });
    check(nd);
    assert.match(nd.json.error.message, /^the batch has more than 20 requests/);
  });

  test('a claim larger than what is left of the hour gets the part that fits; the rest waits', async () => {
    const batch = await submit(base, { provider, requests: requests(20) });
    const until = Date.now() + 10_000;
    let view;
    do {
      await sleep(200);
      view = (await api(base, 'GET', `/v1/batches/${batch.id}`)).json;
    } while (view.request_counts.succeeded < 10 && Date.now() < until);
    await sleep(500);
    view = (await api(base, 'GET', `/v1/batches/${batch.id}`)).json;
    assert.deepEqual([view.request_counts.succeeded, view.request_counts.processing], [10, 10], JSON.stringify(view));
    const usage = (await api(base, 'GET', '/v1/usage')).json;
    assert.equal(usage.now.itemsLastHour, 10);
  });
});

describe("worker: /v1/batches charges a token's hour once per item", { timeout: 60_000 }, () => {
  test('items given back (the attempts granted ran out) are not charged again when claimed again', async () => {
    // 80 subrequests an hour: a claim of 20 is granted about one attempt per item, so the
    // upstream's 500s leave some items without an attempt: they go back and are claimed again.
    const worker = await startWorker({
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_BATCH_ALARM_MS: '200',
      EDGEBATCH_ITEMS_PER_HOUR: '1000',
      EDGEBATCH_SUBREQUESTS_PER_HOUR: '80',
    });
    try {
      const sim = await simSession(worker.url, { ...FAST_SIM, faults: { rate500: 0.3 } });
      const batch = await submit(worker.url, {
        provider: { name: 'anthropic', baseUrl: sim.baseUrl },
        options: { backoff: { baseMs: 10, maxMs: 50 } },
        requests: requests(20),
      });
      const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 30_000 });
      const c = ended.request_counts;
      assert.equal(c.succeeded + c.errored, 20, JSON.stringify(c));
      const usage = (await api(worker.url, 'GET', '/v1/usage')).json;
      assert.equal(usage.now.itemsLastHour, 20, `20 items charged ${usage.now.itemsLastHour} times`);
      assert.equal(usage.total.items, 20);
    } finally {
      await worker.dispose();
    }
  });
});

describe('revoking a token', { timeout: 90_000 }, () => {
  const ALICE = 'alice-token-0b7e3c9d14a2';
  const BOB = 'bob-token-55d1e0a9c7f3';

  test('ownerActive: a name configured now is active; a removed one is not; no token call, no DO call', () => {
    const env = { EDGEBATCH_TOKENS: `alice:${sha(ALICE)}, bob:${sha(BOB)}`, EDGEBATCH_TOKEN: 'plain-token-value' };
    assert.equal(ownerActive(env, 'alice'), true);
    assert.equal(ownerActive(env, 'bob'), true);
    assert.equal(ownerActive(env, 'default'), true);
    assert.equal(ownerActive(env, 'carol'), false);
    assert.equal(ownerActive({ EDGEBATCH_TOKENS: `bob:${sha(BOB)}` }, 'alice'), false, 'alice revoked');
    assert.equal(ownerActive({ EDGEBATCH_TOKENS: `bob:${sha(BOB)}` }, 'default'), false, 'no EDGEBATCH_TOKEN');
    assert.equal(ownerActive({}, 'alice'), false);
    assert.throws(() => ownerActive({ EDGEBATCH_TOKENS: 'alice:nothex' }, 'alice'), /EDGEBATCH_TOKENS entry 1 must be name:sha256hex/);
  });

  test("a revoked token's batch: GET and cancel are 401; its items end canceled, none sent upstream", async () => {
    const state = mkdtempSync(join(tmpdir(), 'edgebatch-revoke-'));
    const vars = {
      ...ROOMY_TOKEN,
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_BATCH_ALARM_MS: '200',
      EDGEBATCH_BATCH_REDELIVER_MS: '500',
      // Items leased by the first run's consumer when it stopped are canceled once their lease
      // runs out: short here, so the test's wait does not depend on when that run stopped.
      EDGEBATCH_BATCH_LEASE_MS: '3000',
      EDGEBATCH_SIM_CONFIG: JSON.stringify({ ...FAST_SIM, latency: { baseMs: 300, perOutputTokenMs: 0, jitterMs: 0 } }),
    };
    let worker = await startWorker({ ...vars, EDGEBATCH_TOKENS: `alice:${sha(ALICE)},bob:${sha(BOB)}` }, { persist: state });
    try {
      const provider = { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` };
      const r = await api(worker.url, 'POST', '/v1/batches', { body: { provider, requests: requests(200) }, token: ALICE });
      assert.equal(r.status, 201, r.text);
      const id = r.json.id;
      await worker.dispose();
      // Alice's token leaves the Worker's secret: the same state, restarted without her.
      worker = await startWorker({ ...vars, EDGEBATCH_TOKENS: `bob:${sha(BOB)}` }, { persist: state });
      for (const [method, path] of [['GET', `/v1/batches/${id}`], ['POST', `/v1/batches/${id}/cancel`], ['GET', `/v1/batches/${id}/results`]]) {
        const denied = await api(worker.url, method, path, { token: ALICE });
        assert.equal(denied.status, 401, `${method} ${path}: ${denied.text}`);
      }
      // The ledger seen directly: her batch ends, what had not run canceled, nothing sent.
      const ns = await worker.mf.getDurableObjectNamespace('BATCHES');
      const ledger = ns.get(ns.idFromString(id.slice('batch_'.length)));
      const until = Date.now() + 15_000;
      let view;
      do {
        await sleep(200);
        view = JSON.parse(JSON.stringify(await ledger.describe('alice')));
      } while (view.processing_status !== 'ended' && Date.now() < until);
      assert.equal(view.processing_status, 'ended', JSON.stringify(view));
      const c = view.request_counts;
      assert.ok(c.canceled > 0 && c.succeeded + c.canceled + c.errored + c.expired === 200, JSON.stringify(c));
      assert.ok(view.cancel_initiated_at);
      const stats = await (await fetch(new URL('/sim/stats', worker.url))).json();
      assert.equal(stats.requests, 0, `sent upstream after the revocation: ${JSON.stringify(stats)}`);
    } finally {
      await worker.dispose();
      rmSync(state, { recursive: true, force: true });
    }
  });
});
