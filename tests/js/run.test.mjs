// run(specs): fetch specs sent with the global fetch; replies parsed; errors classified.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import { FAST, assertResults } from './helpers.mjs';

const T = { timeout: 20000 };
const srv = await startServer();
after(() => srv.close());

describe('run', T, () => {
  test('an object body is sent as JSON with content-type application/json', async () => {
    const bp = new BatchProcessor();
    const payload = { model: 'm', messages: [{ role: 'user', content: 'hi ☃' }], n: 1.5, ok: true };
    const [r] = await bp.run([{ url: `${srv.url}/echo`, method: 'POST', body: payload }]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.equal(r.attempts, 1);
    assert.equal(r.value.status, 200);
    const echo = r.value.body;
    assert.equal(typeof echo, 'object', 'a JSON reply is parsed');
    assert.equal(echo.method, 'POST');
    assert.match(echo.headers['content-type'], /^application\/json/);
    assert.deepEqual(JSON.parse(echo.body), payload);
  });

  test('a content-type header in the spec wins over the JSON default', async () => {
    const bp = new BatchProcessor();
    const [r] = await bp.run([{
      url: `${srv.url}/echo`,
      method: 'POST',
      headers: { 'Content-Type': 'application/vnd.test+json' },
      body: { a: 1 },
    }]);
    assert.equal(r.value.body.headers['content-type'], 'application/vnd.test+json');
    assert.deepEqual(JSON.parse(r.value.body.body), { a: 1 });
  });

  test('a string body is sent as is; headers and method are passed', async () => {
    const bp = new BatchProcessor();
    const [r] = await bp.run([{
      url: `${srv.url}/echo`,
      method: 'PUT',
      headers: { 'X-Test': 'abc', authorization: 'Bearer t' },
      body: 'raw {not json}',
    }]);
    const echo = r.value.body;
    assert.equal(echo.method, 'PUT');
    assert.equal(echo.body, 'raw {not json}');
    assert.equal(echo.headers['x-test'], 'abc');
    // The credential reached the server; echoed back, it is a secret and comes back scrubbed.
    assert.equal(echo.headers.authorization, '[redacted]');
    assert.notEqual(echo.headers['content-type'], 'application/json');
  });

  test('method defaults to GET', async () => {
    const bp = new BatchProcessor();
    const [r] = await bp.run([{ url: `${srv.url}/echo` }]);
    assert.equal(r.value.body.method, 'GET');
    assert.equal(r.value.body.body, '');
  });

  test('a text reply is returned as text; headers are a plain lower-case object', async () => {
    const bp = new BatchProcessor();
    const [r] = await bp.run([{ url: `${srv.url}/text` }]);
    assert.equal(r.ok, true);
    assert.equal(r.value.status, 200);
    assert.equal(r.value.body, 'hello');
    const h = r.value.headers;
    assert.equal(typeof h, 'object');
    assert.ok(!(h instanceof Headers), 'headers must be a plain object, not Headers');
    assert.equal(Object.getPrototypeOf(h), Object.prototype);
    assert.match(h['content-type'], /^text\/plain/);
    assert.equal(h['access-control-allow-origin'], '*');
    assert.equal(h['content-length'], '5');
    for (const k of Object.keys(h)) assert.equal(k, k.toLowerCase(), `header name ${k} not lower-case`);
  });

  test('a non-2xx reply is an http error with status and type', async () => {
    srv.reset();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
    const results = await bp.run([
      { url: `${srv.url}/status/400?type=invalid_request_error` },
      { url: `${srv.url}/status/404?type=not_found_error` },
      { url: `${srv.url}/text` },
    ]);
    assertResults(results, 3);
    const [a, b, c] = results;
    assert.equal(a.ok, false);
    assert.equal(a.error.kind, 'http');
    assert.equal(a.error.status, 400);
    assert.equal(a.error.type, 'invalid_request_error');
    assert.equal(a.error.retryable, false);
    assert.equal(a.attempts, 1);
    assert.equal(b.error.status, 404);
    assert.equal(b.error.type, 'not_found_error');
    assert.equal(c.ok, true);
    assert.equal(srv.stats().requests, 3);
  });

  test('an http error without a type query still reads the body type', async () => {
    const bp = new BatchProcessor({ maxRetries: 0 });
    const [r] = await bp.run([{ url: `${srv.url}/status/500` }]);
    assert.equal(r.error.kind, 'http');
    assert.equal(r.error.status, 500);
    assert.equal(r.error.type, 'api_error');
  });

  test('invalid specs fail only their own item, with kind "invalid", never sent', async () => {
    srv.reset();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
    const specs = [
      { url: `${srv.url}/text` },
      null,
      42,
      `${srv.url}/text`, // a bare string is not a spec object
      {},
      { url: 5 },
      { method: 'GET' },
      undefined,
      { url: `${srv.url}/echo`, method: 'POST', body: { fine: true } },
    ];
    const results = await bp.run(specs);
    assertResults(results, specs.length);
    assert.equal(results[0].ok, true);
    assert.equal(results[8].ok, true);
    for (const i of [1, 2, 3, 4, 5, 6, 7]) {
      const r = results[i];
      assert.equal(r.ok, false, `spec ${i}`);
      assert.equal(r.error.kind, 'invalid', `spec ${i}: ${r.error.kind}`);
      assert.equal(r.error.retryable, false, `spec ${i}`);
      assert.ok(r.attempts <= 1, `spec ${i} attempts ${r.attempts}`);
    }
    assert.equal(srv.stats().requests, 2, 'only the two good specs reach the server');
  });

  test('a dropped connection is a network error, retried', async () => {
    srv.reset();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 2 });
    const [r, ok] = await bp.run([{ url: `${srv.url}/drop` }, { url: `${srv.url}/text` }]);
    assert.equal(r.ok, false);
    assert.equal(r.error.kind, 'network');
    assert.equal(r.error.retryable, true);
    assert.equal(r.attempts, 3);
    assert.equal(ok.ok, true);
    assert.equal(srv.stats().requests, 4);
  });

  test('a refused connection is a network error', async () => {
    const gone = await startServer();
    const url = gone.url;
    await gone.close();
    const bp = new BatchProcessor({ ...FAST, maxRetries: 1 });
    const [r] = await bp.run([{ url: `${url}/text` }]);
    assert.equal(r.error.kind, 'network');
    assert.equal(r.attempts, 2);
  });

  test('many specs: results in input order, each matching its own request', async () => {
    const bp = new BatchProcessor({ concurrency: 5 });
    const specs = Array.from({ length: 30 }, (_, i) => ({
      url: `${srv.url}/echo`,
      method: 'POST',
      body: { i },
    }));
    const results = await bp.run(specs);
    assertResults(results, 30);
    results.forEach((r, i) => assert.deepEqual(JSON.parse(r.value.body.body), { i }));
  });

  test('flaky endpoint with 429 + retry-after-ms recovers', async () => {
    const bp = new BatchProcessor({ ...FAST, maxRetries: 3 });
    const k = `run-flaky-${process.pid}`;
    const [r] = await bp.run([{ url: `${srv.url}/flaky/${k}?fail=2&status=429&retryAfterMs=20` }]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.equal(r.attempts, 3);
    assert.deepEqual(r.value.body, { key: k, attempt: 3 });
  });
});
