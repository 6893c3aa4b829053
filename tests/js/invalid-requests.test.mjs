// Requests that can never succeed fail before sending: kind invalid, 0 attempts, not retried
// as network errors and not counted by the breaker against the healthy items.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import { assertResults } from './helpers.mjs';

const srv = await startServer();
after(() => srv.close());

describe('requests that can never be sent', { timeout: 10000 }, () => {
  test('fail as invalid with 0 attempts, before sending; the healthy item is not held back', async () => {
    // The default breaker (5 failures) and real backoff: were these retried as network
    // errors, they would open it and hold the healthy item back for seconds.
    const bp = new BatchProcessor({ concurrency: 1, maxRetries: 3 });
    const bad = [
      [{ url: `${srv.url}/echo`, method: 'GET', body: 'x' }, /a GET request cannot have a body/],
      [{ url: `${srv.url}/echo`, method: 'head', body: { a: 1 } }, /a HEAD request cannot have a body/],
      [{ url: 'ftp://127.0.0.1/file' }, /scheme ftp: fetch cannot send/],
      [{ url: `${srv.url}/echo`, method: 'BAD METHOD' }, /"BAD METHOD" is not a valid HTTP method/],
      [{ url: `${srv.url}/echo`, method: 'TRACE' }, /fetch refuses the method TRACE/],
      [{ url: 'http://' }, /"http:\/\/" is not a valid URL/],
      [{ url: '/relative' }, /is not a valid URL/],
      [{ url: `${srv.url}/echo`, method: 7 }, /`method` must be a string/],
    ];
    srv.reset();
    const started = Date.now();
    const results = await bp.run([...bad.map(([spec]) => spec), { url: `${srv.url}/text` }]);
    assertResults(results, bad.length + 1);
    bad.forEach(([, message], i) => {
      const r = results[i];
      assert.equal(r.ok, false, `item ${i}`);
      assert.deepEqual([r.error.kind, r.error.retryable, r.attempts], ['invalid', false, 0], `item ${i}: ${r.error.message}`);
      assert.match(r.error.message, message);
    });
    assert.equal(results.at(-1).ok, true);
    assert.equal(results.at(-1).attempts, 1);
    assert.ok(Date.now() - started < 2000, 'no backoff, no breaker cooldown');
    assert.equal((await srv.stats()).requests, 1, 'only the healthy item was sent');
  });

  test('a provider body without its required fields fails before sending', async () => {
    const bp = new BatchProcessor({ provider: { name: 'anthropic', apiKey: 'k', baseUrl: srv.url } });
    const results = await bp.run([{ model: 'ok', messages: [] }, 'not an object']);
    assert.deepEqual(results.map((r) => [r.error.kind, r.attempts]), [['invalid', 0], ['invalid', 0]]);
    assert.match(results[0].error.message, /request body needs `max_tokens`/);
    assert.match(results[1].error.message, /a request body must be an object/);
  });
});
