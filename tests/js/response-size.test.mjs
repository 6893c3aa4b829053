// maxResponseBytes: a 2xx body past the cap fails its item (kind http, not retried, the
// message names the option); an error body is read only as far as its message needs, so a
// huge 503 is still a retryable 503; reply bodies stay out of the wasm memory.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { BatchProcessor, wasm } from './load.mjs';
import { FAST } from './helpers.mjs';

// /<status>/<bytes>[/chunked]: a JSON body of about that many bytes.
let server;
let base;
before(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/v1/messages') {
      // An Anthropic reply with 8 MB of text in two blocks.
      const text = 'y'.repeat(4_000_000);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'message', content: [{ type: 'text', text }, { type: 'text', text }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } }));
      return;
    }
    const [, status, bytes, chunked] = req.url.split('/');
    const body = JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'big' }, pad: 'x'.repeat(Number(bytes)) });
    const headers = { 'content-type': 'application/json' };
    if (!chunked) headers['content-length'] = Buffer.byteLength(body);
    res.writeHead(Number(status), headers);
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server?.close());

describe('maxResponseBytes', { timeout: 10000 }, () => {
  test('a 2xx body past the cap fails its item, with or without content-length', async () => {
    const bp = new BatchProcessor({ ...FAST, maxResponseBytes: 10_000 });
    const results = await bp.run([{ url: `${base}/200/50000` }, { url: `${base}/200/50000/chunked` }, { url: `${base}/200/100` }]);
    for (const r of results.slice(0, 2)) {
      assert.equal(r.ok, false);
      assert.deepEqual([r.error.kind, r.error.status, r.error.retryable, r.attempts], ['http', 200, false, 1]);
      assert.match(r.error.message, /larger than maxResponseBytes \(10000 bytes/);
    }
    assert.equal(results[2].ok, true);
  });

  test('a huge error body is cut to its message: the 503 stays a retryable 503', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2 });
    const [r] = await bp.run([{ url: `${base}/503/2000000` }]);
    assert.deepEqual([r.error.kind, r.error.status, r.error.retryable, r.attempts], ['http', 503, true, 3]);
  });

  test('the option is validated at construction', () => {
    assert.throws(() => new BatchProcessor({ maxResponseBytes: 0 }), RangeError);
    assert.throws(() => new BatchProcessor({ maxResponseBytes: '1mb' }), /maxResponseBytes must be an integer/);
  });

  test('8 MB replies (a fetch spec\'s, a provider\'s text) do not grow the wasm memory', async () => {
    const bp = new BatchProcessor();
    await bp.run([{ url: `${base}/200/1000` }]);
    const before = wasm.memory.buffer.byteLength;
    const [r] = await bp.run([{ url: `${base}/200/8000000` }]);
    assert.equal(r.ok, true);
    assert.equal(r.value.body.pad.length, 8_000_000);
    // Nor does a provider reply's text, joined from its blocks.
    const provider = new BatchProcessor({ provider: { name: 'anthropic', apiKey: 'k', baseUrl: base } });
    const [p] = await provider.run([{ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }]);
    assert.equal(p.value.text.length, 8_000_000);
    const grown = wasm.memory.buffer.byteLength - before;
    assert.ok(grown < 1_000_000, `the wasm memory grew by ${grown} bytes`);
  });
});
