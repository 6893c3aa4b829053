// Issue 15, the small findings, on real workerd (Miniflare): a body trickled in slowly cannot
// hold the invocation (401 and 408 come anyway); prototype keys are 400s naming the key;
// partial and masked echoes of a key are redacted; the demo page's assets carry CSP, nosniff
// and frame-ancestors.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { FAKE_ANTHROPIC_KEY, TOKEN, messages, ndjson, postBatch, startWorker } from './harness.mjs';

/**
 * Sends a request head declaring `Content-Length: 1000` and 10 bytes of body, then keeps the
 * socket open without sending more. Resolves with the status line the Worker answers, or
 * `null` if none came within `waitMs`.
 */
function trickle(url, headers, waitMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let got = '';
    const timer = setTimeout(() => finish(null), waitMs);
    function finish(value) {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    }
    socket.on('error', (e) => (got ? finish(got.split('\r\n')[0]) : reject(e)));
    socket.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) finish(got.split('\r\n')[0]);
    });
    const head = [`POST /v1/batch HTTP/1.1`, `Host: ${url.host}`, 'Content-Type: application/json',
      'Content-Length: 1000', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    socket.write(`${head.join('\r\n')}\r\n\r\n{"items":[`);
  });
}

describe('worker: hardening', { timeout: 90_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ EDGEBATCH_SIM: 'on', EDGEBATCH_BODY_TIMEOUT_MS: '1000' });
  });
  after(() => worker?.dispose());

  test('an unauthenticated slow body gets its 401 within seconds', async () => {
    const status = await trickle(worker.url, {}, 8000);
    assert.match(String(status), /^HTTP\/1\.1 401/, 'the 401 came while the body was still open');
  });

  test('an authenticated body slower than EDGEBATCH_BODY_TIMEOUT_MS is a 408', async () => {
    const status = await trickle(worker.url, { Authorization: `Bearer ${TOKEN}` }, 8000);
    assert.match(String(status), /^HTTP\/1\.1 408/);
  });

  test('prototype keys are 400s naming the key, never 500s', async () => {
    const cases = [
      ['{"items":[],"options":{"constructor":1}}', /options has unknown field "constructor"/],
      ['{"items":[],"options":{"toString":1}}', /options has unknown field "toString"/],
      ['{"items":[],"options":{"__proto__":{}}}', /options has unknown field "__proto__"/],
      ['{"items":[],"options":{"hasOwnProperty":5}}', /options has unknown field "hasOwnProperty"/],
      ['{"items":[],"options":{"backoff":{"constructor":1}}}', /options: unknown option "backoff.constructor"/],
      ['{"items":[],"options":{"backoff":{"__proto__":{}}}}', /options: unknown option "backoff.__proto__"/],
      ['{"items":[],"provider":{"name":"constructor"}}', /provider\.name must be one of anthropic, openai/],
      ['{"items":[],"provider":{"name":"__proto__"}}', /provider\.name must be one of anthropic, openai/],
      ['{"items":[],"__proto__":{}}', /unknown field "__proto__"/],
    ];
    for (const [raw, message] of cases) {
      const r = await postBatch(worker.url, null, { raw });
      assert.equal(r.status, 400, `${raw}: ${r.text}`);
      assert.match(JSON.parse(r.text).error.message, message, raw);
    }
  });

  test('an upstream echoing part of a key, or a masked key, gets [redacted]', async () => {
    const k = FAKE_ANTHROPIC_KEY;
    // The simulator's reply text starts with the first words of the message: an upstream that
    // echoes what it was sent. (It keeps 24 characters of a word.)
    const echoes = [
      `${k.slice(0, 7)}…${k.slice(-4)}`, // sk-ant-…77d4
      `${k.slice(0, 8)}${'*'.repeat(8)}${k.slice(-4)}`, // OpenAI's "Incorrect API key" style
      `${k.slice(0, 3)}...${k.slice(-6)}`,
      k.slice(5, 17), // a run of 12 of its characters
    ];
    const items = echoes.map((echo) => ({ ...messages(1)[0], messages: [{ role: 'user', content: `${echo} was sent` }] }));
    const r = await postBatch(worker.url, {
      provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` },
      items,
      options: { maxRetries: 8, backoff: { baseMs: 10, maxMs: 50 } },
    });
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    const ok = lines.filter((l) => l.ok);
    assert.ok(ok.length > 0, 'some replies came back');
    for (const l of ok) assert.match(l.value.text, /^Summary [0-9a-f]{8}: \[redacted\] was sent/, l.value.text);
    for (const e of echoes) assert.ok(!r.text.includes(e), `${e} reached the client`);
    for (const part of [k.slice(-8), k.slice(0, 12), k.slice(8, 16)]) assert.ok(!r.text.includes(part), `${part} reached the client`);
  });

  test("the demo page's assets carry CSP, nosniff and frame-ancestors", async () => {
    for (const path of ['/', '/app.js', '/pkg/edgebatch_bg.wasm']) {
      const res = await fetch(new URL(path, worker.url));
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/, path);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
    }
    assert.equal((await fetch(new URL('/_headers', worker.url))).status, 404, 'the rules file is not served');
  });
});
