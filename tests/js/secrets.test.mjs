// Secrets never leave in results, errors or events, even when the upstream echoes them: the
// provider's key and a fetch spec's credential headers, whole, in part or masked.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { BatchProcessor } from './load.mjs';
import { FAST, eventLog } from './helpers.mjs';

const KEY = 'sk-ant-api03-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0-LmNoPq';
const TOKEN = 'tok_live_51HqLyjWDarjtT1zdp7dcXyZ';

// Echoes the credential it got: whole in the message, masked in `hint`, in part in the type
// and whole in a header; the status comes from the path (/401, /429, /500) or the model.
let server;
let base;
before(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const key = req.headers['x-api-key'] ?? (req.headers.authorization ?? '').replace(/^Bearer /, '');
      const model = body ? JSON.parse(body).model : '';
      const status = Number((model || req.url).match(/\d{3}/)?.[0] ?? 200);
      const masked = `${key.slice(0, 7)}…${key.slice(-4)}`;
      const reply = {
        type: 'error',
        error: { type: `bad_key_${key.slice(3, 15)}`, message: `invalid x-api-key: ${key} (${masked}, ${key.slice(5, 20)})` },
      };
      res.writeHead(status, { 'content-type': 'application/json', 'x-echo': `key=${key}`, 'retry-after': '0' });
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server?.close());

function assertClean(what, secret) {
  const text = JSON.stringify(what);
  assert.ok(text.length > 0);
  for (let i = 0; i + 8 <= secret.length; i++) {
    const run = secret.slice(i, i + 8);
    assert.ok(!text.includes(run), `"${run}" of the secret leaked in ${text.slice(0, 400)}`);
  }
  assert.ok(!text.includes(`${secret.slice(0, 7)}…${secret.slice(-4)}`), `masked secret leaked: ${text}`);
}

describe('secrets', { timeout: 10000 }, () => {
  test('a provider key echoed in 401, 429 and 500 bodies is scrubbed', async () => {
    const log = eventLog();
    const bp = new BatchProcessor({
      ...FAST,
      maxRetries: 1,
      provider: { name: 'anthropic', apiKey: KEY, baseUrl: base },
      onEvent: log.onEvent,
    });
    const bodies = [401, 429, 500].map((s) => ({ model: `status:${s}`, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    const results = await bp.run(bodies);
    assert.deepEqual(results.map((r) => r.error?.status), [401, 429, 500]);
    for (const r of results) assert.match(r.error.message, /invalid x-api-key: \[redacted\]/);
    assertClean(results, KEY);
    assertClean(log.events, KEY);
  });

  test('a fetch spec bearer token echoed in the body and a header is scrubbed', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 0 });
    const headers = { authorization: `Bearer ${TOKEN}` };
    const results = await bp.run([
      { url: `${base}/401`, headers },
      { url: `${base}/200`, headers: [['Authorization', `Bearer ${TOKEN}`]] },
      { url: `${base}/500`, headers: new Headers({ 'x-api-key': TOKEN }) },
    ]);
    assert.deepEqual(results.map((r) => r.ok), [false, true, false]);
    assert.equal(results[1].value.headers['x-echo'], 'key=[redacted]');
    // A 2xx body has each secret replaced where it appears whole; errors and headers also
    // lose every run of 8 characters of one, and masked forms.
    const body = JSON.stringify(results[1].value.body);
    assert.ok(!body.includes(TOKEN) && body.includes('[redacted]'), body);
    assertClean([results[0], results[2], results[1].value.headers], TOKEN);
  });

  test('an SDK error thrown by a map() task with the provider key in it is scrubbed', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 0, deadlineMs: 5000, provider: { name: 'anthropic', apiKey: KEY } });
    const results = await bp.map([1, 2], async (i) => {
      const e = new Error(i === 1 ? `401 invalid x-api-key: ${KEY}` : `key ${KEY.slice(0, 10)}… rejected`);
      e.status = 401;
      throw e;
    });
    assert.match(results[0].error.message, /\[redacted\]/);
    assertClean(results, KEY);
  });
});
