// Odd replies and odd throws: a 200 whose body is an Anthropic error object is classified by
// its error type; thrown plain objects keep a readable message; a baseUrl with no host is
// refused at construction.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { BatchProcessor } from './load.mjs';
import { FAST } from './helpers.mjs';

// POST /v1/messages: the first request of each model answers 200 with an error object of
// that type, later ones a normal message.
let server;
let base;
const seen = new Map();
before(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const { model } = JSON.parse(body);
      const n = (seen.get(model) ?? 0) + 1;
      seen.set(model, n);
      const reply = n === 1
        ? { type: 'error', error: { type: model, message: `first try: ${model}` } }
        : { type: 'message', content: [{ type: 'text', text: 'hi' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server?.close());

describe('odd replies and throws', { timeout: 10000 }, () => {
  test('a 200 carrying an error object is classified by its type', async () => {
    const bp = new BatchProcessor({ ...FAST, provider: { name: 'anthropic', apiKey: 'k', baseUrl: base } });
    const body = (model) => ({ model, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    const [overloaded, invalid] = await bp.run([body('overloaded_error'), body('invalid_request_error')]);
    assert.equal(overloaded.ok, true, JSON.stringify(overloaded.error));
    assert.equal(overloaded.attempts, 2, 'retried like a 529');
    assert.equal(invalid.ok, false);
    assert.deepEqual(
      [invalid.error.kind, invalid.error.status, invalid.error.type, invalid.error.retryable, invalid.attempts],
      ['http', 200, 'invalid_request_error', false, 1],
    );
    assert.equal(invalid.error.message, 'first try: invalid_request_error');
  });

  test('thrown plain objects keep a readable message, never [object Object]', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 0 });
    const thrown = [{ code: 42, detail: 'x' }, { error: { message: 'inner message' } }, Object.create(null), { message: '' }];
    const results = await bp.map(thrown, async (e) => {
      throw e;
    });
    assert.deepEqual(results.map((r) => r.error.message), [
      '{"code":42,"detail":"x"}',
      'inner message',
      'a thrown value that cannot be printed', // no prototype: String() itself throws
      '{"message":""}',
    ]);
    for (const r of results) assert.ok(!r.error.message.includes('[object Object]'), r.error.message);
    // The deadline's "last error" uses the same message.
    const slow = new BatchProcessor({ ...FAST, maxRetries: 5, deadlineMs: 150, backoff: { baseMs: 100, maxMs: 100, jitter: 'none' } });
    const [r] = await slow.map([1], async () => {
      throw Object.assign({ status: 503 }, { why: 'busy' });
    });
    assert.equal(r.error.kind, 'deadline');
    assert.match(r.error.message, /last error: \{"status":503,"why":"busy"\}/);
  });

  test('a baseUrl without a host is refused at construction', () => {
    for (const baseUrl of ['http://', 'https://', 'https:///v1', 'http://:80']) {
      assert.throws(() => new BatchProcessor({ provider: { name: 'anthropic', apiKey: 'k', baseUrl } }), (e) => e instanceof RangeError && /provider\.baseUrl must be an http\(s\) URL with a host/.test(e.message), baseUrl);
    }
  });
});
