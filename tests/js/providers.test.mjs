// Providers (docs/API.md "Providers"): run() takes Anthropic / OpenAI request bodies, sends them
// to the loopback mock API (baseUrl = the test server), parses text, stop reason and usage,
// keeps error types, never leaks the apiKey; summarize(results) totals a batch.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor, pkg } from './load.mjs';
import { startServer } from '../support/server.mjs';
import { assertResults, eventLog } from './helpers.mjs';

const T = { timeout: 20000 };
const KEY = 'sk-test-NEVER-LEAK-9f3b2c';
const FAST = { backoff: { baseMs: 1, maxMs: 5, jitter: 'none' } };

const srv = await startServer();
after(() => srv.close());

const anthropic = (extra = {}) => new BatchProcessor({
  ...FAST,
  provider: { name: 'anthropic', apiKey: KEY, baseUrl: srv.url },
  ...extra,
});
const openai = (extra = {}) => new BatchProcessor({
  ...FAST,
  provider: { name: 'openai', apiKey: KEY, baseUrl: srv.url },
  ...extra,
});
const msg = (model, text = 'hello there') => ({
  model,
  max_tokens: 32,
  messages: [{ role: 'user', content: text }],
});

function assertNoKey(what, value) {
  const text = JSON.stringify(value, (_, v) => (v instanceof Error ? { message: v.message, stack: v.stack } : v));
  assert.ok(!text.includes(KEY), `${what} contains the apiKey: ${text.slice(0, 300)}`);
  assert.ok(!text.includes(KEY.slice(8)), `${what} contains part of the apiKey`);
}

describe('providers: anthropic', T, () => {
  test('a Messages body is POSTed to {baseUrl}/v1/messages with key, version and JSON', async () => {
    srv.reset();
    const body = msg('ok', 'hi ☃');
    const [r] = await anthropic().run([body]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    const [req] = srv.requestLog();
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/v1/messages');
    assert.equal(req.headers['x-api-key'], KEY);
    assert.equal(req.headers['anthropic-version'], '2023-06-01');
    assert.match(req.headers['content-type'], /^application\/json/);
    assert.deepEqual(req.body, body);
  });

  test('version sets anthropic-version', async () => {
    srv.reset();
    const bp = new BatchProcessor({ provider: { name: 'anthropic', apiKey: KEY, baseUrl: srv.url, version: '2099-01-01' } });
    await bp.run([msg('ok')]);
    assert.equal(srv.requestLog()[0].headers['anthropic-version'], '2099-01-01');
  });

  test('dangerouslyAllowBrowser sends anthropic-dangerous-direct-browser-access, and only then', async () => {
    srv.reset();
    const allowed = new BatchProcessor({ provider: { name: 'anthropic', apiKey: KEY, baseUrl: srv.url, dangerouslyAllowBrowser: true } });
    await allowed.run([msg('ok')]);
    await anthropic().run([msg('ok')]);
    const [withFlag, without] = srv.requestLog();
    assert.equal(withFlag.headers['anthropic-dangerous-direct-browser-access'], 'true');
    assert.equal(without.headers['anthropic-dangerous-direct-browser-access'], undefined);
  });

  test('value is { text, stopReason, usage, reply } and the result carries usage', async () => {
    const results = await anthropic().run([msg('ok', 'abc'), msg('ok', 'hello')]);
    assertResults(results, 2);
    const [a, b] = results;
    assert.equal(a.value.text, 'echo: abc');
    assert.equal(a.value.stopReason, 'end_turn');
    assert.deepEqual(a.value.usage, { inputTokens: 3, outputTokens: 9 });
    assert.deepEqual(a.usage, { inputTokens: 3, outputTokens: 9 });
    assert.equal(a.value.reply.id, 'msg_test');
    assert.equal(a.value.reply.type, 'message');
    assert.deepEqual(a.value.reply.content, [{ type: 'text', text: 'echo: abc' }]);
    assert.equal(b.value.text, 'echo: hello');
    assert.deepEqual(b.usage, { inputTokens: 5, outputTokens: 11 });
  });

  test('error replies keep error.type; retryable ones retry, others do not', async () => {
    srv.reset();
    const results = await anthropic({ maxRetries: 2 }).run([
      msg('status:400'),
      msg('status:529'),
      msg('flaky:a1:1:429'),
      msg('spendcap'),
      msg('status:401'),
    ]);
    assertResults(results, 5);
    const [bad, overloaded, flaky, spend, auth] = results;
    assert.equal(bad.error.kind, 'http');
    assert.equal(bad.error.status, 400);
    assert.equal(bad.error.type, 'invalid_request_error');
    assert.equal(bad.attempts, 1);
    assert.equal(overloaded.error.status, 529);
    assert.equal(overloaded.error.type, 'overloaded_error');
    assert.equal(overloaded.attempts, 3);
    assert.equal(flaky.ok, true, JSON.stringify(flaky.error));
    assert.equal(flaky.attempts, 2);
    assert.equal(spend.error.status, 429);
    assert.equal(spend.error.type, 'rate_limit_error');
    assert.equal(spend.attempts, 1);
    assert.equal(spend.error.retryable, false);
    assert.equal(auth.error.type, 'authentication_error');
    assert.equal(auth.attempts, 1);
  });

  test('the apiKey appears in no result, error, event or progress', async () => {
    const log = eventLog();
    const progress = [];
    const bp = anthropic({ maxRetries: 1, onEvent: log.onEvent, onProgress: (p) => progress.push({ ...p }) });
    const results = await bp.run([msg('ok'), msg('status:401'), msg('status:529'), null]);
    assertNoKey('results', results);
    assertNoKey('events', log.events);
    assertNoKey('progress', progress);
    for (const r of results) if (!r.ok) assert.ok(!r.error.message.includes(KEY));
  });

  test('a body that is not an object fails only its item, with kind "invalid"', async () => {
    srv.reset();
    const results = await anthropic().run([msg('ok'), null, 5, 'text', msg('ok')]);
    assertResults(results, 5);
    assert.deepEqual(results.map((r) => r.ok), [true, false, false, false, true]);
    for (const i of [1, 2, 3]) assert.equal(results[i].error.kind, 'invalid');
    assert.equal(srv.requestLog().length, 2);
  });
});

describe('providers: openai', T, () => {
  test('a Chat Completions body is POSTed to {baseUrl}/v1/chat/completions with a Bearer key', async () => {
    srv.reset();
    const body = { model: 'ok', messages: [{ role: 'user', content: 'hey' }] };
    const [r] = await openai().run([body]);
    assert.equal(r.ok, true, JSON.stringify(r.error));
    const [req] = srv.requestLog();
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/v1/chat/completions');
    assert.equal(req.headers.authorization, `Bearer ${KEY}`);
    assert.match(req.headers['content-type'], /^application\/json/);
    assert.deepEqual(req.body, body);
    assert.equal(r.value.text, 'echo: hey');
    assert.equal(r.value.stopReason, 'stop');
    assert.deepEqual(r.value.usage, { inputTokens: 3, outputTokens: 9 });
    assert.deepEqual(r.usage, { inputTokens: 3, outputTokens: 9 });
    assert.equal(r.value.reply.object, 'chat.completion');
  });

  test('error replies keep error.type and follow the retry rules', async () => {
    const results = await openai({ maxRetries: 2 }).run([
      { model: 'status:400', messages: [] },
      { model: 'flaky:o1:2:503', messages: [{ role: 'user', content: 'x' }] },
      { model: 'spendcap', messages: [] },
    ]);
    assert.equal(results[0].error.type, 'invalid_request_error');
    assert.equal(results[0].attempts, 1);
    assert.equal(results[1].ok, true, JSON.stringify(results[1].error));
    assert.equal(results[1].attempts, 3);
    assert.equal(results[2].error.status, 429);
    assert.equal(results[2].attempts, 1);
    assertNoKey('openai results', results);
  });
});

describe('providers: options', T, () => {
  test('provider "http" takes fetch specs, like no provider', async () => {
    const bp = new BatchProcessor({ provider: { name: 'http' } });
    const [r] = await bp.run([{ url: `${srv.url}/text` }]);
    assert.equal(r.value.body, 'hello');
  });

  test('bad provider options throw at construction, naming provider', () => {
    const bad = [
      [{ provider: 'anthropic' }, TypeError],
      [{ provider: { name: 5 } }, TypeError],
      [{ provider: { name: 'anthropic', apiKey: 5 } }, TypeError],
      [{ provider: { name: 'anthropic', baseUrl: {} } }, TypeError],
      [{ provider: { name: 'anthropic', apiKey: KEY, region: 'eu' } }, TypeError],
      [{ provider: { name: 'anthropic', apiKey: KEY, dangerouslyAllowBrowser: 'yes' } }, TypeError],
      [{ provider: { name: 'http', dangerouslyAllowBrowser: true } }, RangeError],
    ];
    for (const [options, cls] of bad) {
      let err;
      try {
        new BatchProcessor(options);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof cls, `${JSON.stringify(options)}: got ${err}`);
      assert.match(err.message, /provider|unknown option/);
      assert.ok(!err.message.includes(KEY), 'the key must not appear in a validation message');
    }
    let err;
    try {
      new BatchProcessor({ provider: { name: 'gemini' } });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof TypeError || err instanceof RangeError, `got ${err}`);
    assert.match(err.message, /^provider/);
  });
});

describe('summarize', T, () => {
  test('totals a provider batch', async () => {
    const results = await anthropic({ maxRetries: 2 }).run([
      msg('ok', 'abc'), // usage 3 / 9
      msg('flaky:s1:1:529', 'hello'), // 2 attempts, usage 5 / 11
      msg('status:400'),
      null,
    ]);
    const s = pkg.summarize(results);
    assert.equal(s.total, 4);
    assert.equal(s.ok, 2);
    assert.equal(s.failed, 2);
    const attempts = results.reduce((n, r) => n + r.attempts, 0);
    assert.equal(s.attempts, attempts);
    assert.equal(s.retries, results.reduce((n, r) => n + Math.max(0, r.attempts - 1), 0));
    assert.equal(s.byKind.http, 1);
    assert.equal(s.byKind.invalid, 1);
    assert.deepEqual(s.usage, { inputTokens: 8, outputTokens: 20 });
  });

  test('works on map results (no usage) and on an empty batch', async () => {
    const bp = new BatchProcessor({ maxRetries: 0 });
    const results = await bp.map([0, 1, 2], (i) => {
      if (i === 2) throw new Error('x');
      return i;
    });
    const s = pkg.summarize(results);
    assert.equal(s.total, 3);
    assert.equal(s.ok, 2);
    assert.equal(s.failed, 1);
    assert.equal(s.attempts, 3);
    assert.equal(s.retries, 0);
    assert.equal(s.byKind.task, 1);
    assert.deepEqual(s.usage, { inputTokens: 0, outputTokens: 0 });
    const empty = pkg.summarize([]);
    assert.equal(empty.total, 0);
    assert.equal(empty.ok, 0);
  });
});
