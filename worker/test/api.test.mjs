// POST /v1/batch on real workerd (Miniflare) with the simulator on and faults on: the NDJSON
// contract, the summary, auth, validation, size caps, and that no secret ever leaks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, TOKEN, messages, ndjson, postBatch, rawPost, simStats, startWorker,
} from './harness.mjs';

const FAULTY_SIM = {
  seed: 11,
  minuteMs: 1000,
  requestsPerMinute: 60,
  latency: { baseMs: 20, perOutputTokenMs: 0, jitterMs: 20 },
  faults: { rate429: 0.1, rate529: 0.08, rate500: 0.05, hang: 0.02, slowBody: 0.02, malformed: 0.02, disconnect: 0.03 },
};
const CLIENT_KEY = 'sk-client-LEAK-me-4e7a90b1';

describe('worker: /v1/batch with the faulty simulator', { timeout: 120_000 }, () => {
  let worker;
  const seen = []; // every response body and header block, for the leak check at the end
  const keep = (r) => {
    seen.push(r.text, JSON.stringify([...r.headers]));
    return r;
  };
  const simBase = () => `${worker.url.origin}/sim`;

  before(async () => {
    worker = await startWorker({ EDGEBATCH_SIM: 'on', EDGEBATCH_SIM_CONFIG: JSON.stringify(FAULTY_SIM) });
  });
  after(async () => {
    await worker?.dispose();
  });

  test('healthz', async () => {
    const res = await fetch(new URL('/healthz', worker.url));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, sim: 'on' });
  });

  test('every item yields exactly one NDJSON line, then a summary that matches', { timeout: 60_000 }, async () => {
    const N = 60;
    const before = await simStats(worker.url);
    const t0 = Date.now();
    const r = keep(await postBatch(worker.url, {
      provider: { name: 'anthropic', baseUrl: simBase() },
      items: messages(N),
      options: { maxRetries: 8, timeoutMs: 1000, backoff: { baseMs: 20, maxMs: 200 } },
    }));
    const wall = Date.now() - t0;
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type'), /^application\/x-ndjson/);
    const lines = ndjson(r.text);
    const summaryLine = lines.pop();
    assert.ok(summaryLine.summary, `last line is the summary: ${JSON.stringify(summaryLine)}`);
    assert.equal(lines.length, N);
    assert.deepEqual(lines.map((l) => l.index).sort((a, b) => a - b), [...Array(N).keys()]);

    const s = summaryLine.summary;
    const ok = lines.filter((l) => l.ok);
    const failed = lines.filter((l) => !l.ok);
    const attempts = lines.reduce((n, l) => n + l.attempts, 0);
    for (const l of ok) {
      assert.equal(typeof l.value.text, 'string');
      assert.ok(l.usage && l.usage.inputTokens > 0, `usage on ok line ${l.index}`);
    }
    for (const l of failed) assert.equal(typeof l.error.kind, 'string');
    assert.equal(s.total, N);
    assert.equal(s.ok, ok.length);
    assert.equal(s.failed, failed.length);
    assert.equal(s.attempts, attempts);
    assert.equal(s.retries, attempts - N);
    assert.equal(s.subrequests, attempts, 'every attempt is one subrequest');
    const byKind = {};
    for (const l of failed) byKind[l.error.kind] = (byKind[l.error.kind] ?? 0) + 1;
    assert.deepEqual(s.byKind, byKind);
    assert.equal(s.usage.inputTokens, ok.reduce((n, l) => n + l.usage.inputTokens, 0));
    assert.equal(s.usage.outputTokens, ok.reduce((n, l) => n + l.usage.outputTokens, 0));
    assert.ok(s.retries > 0, 'faults on: some attempts were retried');
    assert.ok(s.elapsedMs >= 0 && s.elapsedMs <= wall + 50);
    const after = await simStats(worker.url);
    assert.equal(after.requests - before.requests, attempts, 'the sim saw every attempt over real HTTP');
  });

  test('openai through the simulator', async () => {
    const r = keep(await postBatch(worker.url, {
      provider: { name: 'openai', baseUrl: `${simBase()}/` },
      items: Array.from({ length: 5 }, () => ({ model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })),
      options: { concurrency: 3, maxRetries: 8, timeoutMs: 1000, backoff: { baseMs: 20, maxMs: 200 } },
    }));
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    assert.equal(lines.length, 6);
    assert.equal(lines.at(-1).summary.total, 5);
  });

  test('401 without or with a wrong token, as JSON', async () => {
    for (const token of [null, 'wrong-token', `${TOKEN}x`, '']) {
      const r = keep(await postBatch(worker.url, { items: [] }, { token }));
      assert.equal(r.status, 401);
      assert.equal(JSON.parse(r.text).error.type, 'authentication_error');
    }
    const r = keep(await postBatch(worker.url, { items: [] }, { token: null, headers: { authorization: `Basic ${TOKEN}` } }));
    assert.equal(r.status, 401);
  });

  const bad = [
    ['malformed JSON', { raw: '{"items": [' }, /not valid JSON/],
    ['a non-object body', { raw: '[1,2]' }, /body must be a JSON object/],
    ['a non-array items', { body: { items: { 0: {} } } }, /items must be an array/],
    ['missing items', { body: {} }, /items must be an array/],
    ['a non-object item', { body: { items: [{}, 'text'] } }, /items\[1\] must be an object/],
    ['an unknown field', { body: { items: [], option: {} } }, /unknown field "option"/],
    ['an off-allowlist baseUrl', { body: { provider: { name: 'anthropic', baseUrl: 'https://evil.example' }, items: [] } }, /provider.baseUrl is not allowed/],
    ['a look-alike baseUrl', { body: { provider: { name: 'anthropic', baseUrl: 'https://api.anthropic.com.evil.example' }, items: [] } }, /provider.baseUrl is not allowed/],
    ['an unknown provider', { body: { provider: { name: 'http' }, items: [] } }, /provider.name must be one of anthropic, openai/],
    ['a client API key while they are off', { body: { provider: { name: 'anthropic', apiKey: CLIENT_KEY }, items: [] } }, /provider.apiKey is not accepted/],
    ['concurrency over the Workers cap', { body: { items: [], options: { concurrency: 7 } } }, /options.concurrency must be at most 6 on this Worker/],
    ['a non-integer option', { body: { items: [], options: { maxRetries: 1.5 } } }, /options: maxRetries must be an integer in 0..=100, got 1.5/],
    ['a negative timeout', { body: { items: [], options: { timeoutMs: -1 } } }, /options: timeoutMs must be an integer/],
    ['a string deadline', { body: { items: [], options: { deadlineMs: '100' } } }, /options: deadlineMs must be an integer/],
    ['a bad jitter', { body: { items: [], options: { backoff: { jitter: 'some' } } } }, /options: backoff.jitter must be "full", "decorrelated" or "none", got "some"/],
    ['maxMs under baseMs', { body: { items: [], options: { backoff: { baseMs: 500, maxMs: 100 } } } }, /options: backoff.maxMs must be at least backoff.baseMs \(500\), got 100/],
    ['maxMs under the default baseMs (edgebatch says so)', { body: { items: [], options: { backoff: { maxMs: 100 } } } }, /^options: backoff.maxMs must be/],
    ['an unknown option', { body: { items: [], options: { concurency: 2 } } }, /options has unknown field "concurency"/],
    ['too many items', { body: { items: Array.from({ length: 1001 }, () => ({})) } }, /at most 1000 per batch/],
  ];
  for (const [name, req, message] of bad) {
    test(`400 for ${name}`, async () => {
      const r = keep(await postBatch(worker.url, req.body, { raw: req.raw }));
      assert.equal(r.status, 400, r.text);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const { error } = JSON.parse(r.text);
      assert.equal(error.type, 'invalid_request_error');
      assert.match(error.message, message);
    });
  }

  test('413 for an oversize body, with or without Content-Length', async () => {
    const chunk = 'x'.repeat(64 * 1024);
    const body = ['{"items":[{"text":"', ...Array(17).fill(chunk), '"}]}']; // > 1 MiB
    for (const contentLength of [true, false]) {
      const r = keep(await rawPost(worker.url, body, { contentLength }));
      assert.equal(r.status, 413, `contentLength ${contentLength}: ${r.text}`);
      assert.equal(JSON.parse(r.text).error.type, 'request_too_large');
    }
    // Just under the cap is read in full (and then judged on its content).
    const r = keep(await rawPost(worker.url, ['{"items":[],"pad":"', 'y'.repeat(1024 * 1024 - 40), '"}']));
    assert.equal(r.status, 400, r.text);
    assert.match(JSON.parse(r.text).error.message, /unknown field "pad"/);
  });

  test('JSON 404 and 405', async () => {
    let res = await fetch(new URL('/nope', worker.url));
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.type, 'not_found_error');
    res = await fetch(new URL('/v1/batch', worker.url));
    assert.equal(res.status, 405);
    assert.equal((await res.json()).error.type, 'method_not_allowed');
  });

  test('an empty batch is just a summary', async () => {
    const r = keep(await postBatch(worker.url, { items: [] }));
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].summary.total, 0);
  });

  test('no key or token ever appears in a response or the log', () => {
    const everything = seen.join('\n') + worker.logs();
    for (const secret of [FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, TOKEN, CLIENT_KEY]) {
      assert.ok(!everything.includes(secret), `${secret.slice(0, 8)}… leaked`);
    }
    assert.ok(seen.length > 40, 'the check saw the responses of the tests above');
  });
});

describe('worker: production defaults (simulator off)', { timeout: 60_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.dispose();
  });

  test('/sim is 404 and not an allowed baseUrl', async () => {
    for (const path of ['/sim/v1/messages', '/sim/stats']) {
      const res = await fetch(new URL(path, worker.url), { method: path.endsWith('stats') ? 'GET' : 'POST' });
      assert.equal(res.status, 404);
      assert.equal((await res.json()).error.type, 'not_found_error');
    }
    const r = await postBatch(worker.url, { provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` }, items: [] });
    assert.equal(r.status, 400);
    assert.match(JSON.parse(r.text).error.message, /provider.baseUrl is not allowed; for anthropic use one of: https:\/\/api.anthropic.com$/);
  });

  test('no token configured: 500 configuration_error, never open', async () => {
    const bare = await startWorker({ EDGEBATCH_TOKEN: '' });
    try {
      const r = await postBatch(bare.url, { items: [] }, { token: 'anything' });
      assert.equal(r.status, 500);
      assert.equal(JSON.parse(r.text).error.type, 'configuration_error');
    } finally {
      await bare.dispose();
    }
  });
});

describe('worker: no API key configured', { timeout: 60_000 }, () => {
  test('a request error is a 400 before the missing key\'s 500', async () => {
    const keyless = await startWorker({ ANTHROPIC_API_KEY: '' });
    try {
      const body = { items: [{ model: 'claude-haiku-4-5', max_tokens: 1, messages: [] }] };
      const bad = await postBatch(keyless.url, { ...body, options: { maxRetries: 'lots' } });
      assert.equal(bad.status, 400, bad.text);
      assert.match(JSON.parse(bad.text).error.message, /options: maxRetries/);
      const good = await postBatch(keyless.url, body);
      assert.equal(good.status, 500, good.text);
      assert.equal(JSON.parse(good.text).error.type, 'configuration_error');
    } finally {
      await keyless.dispose();
    }
  });
});

describe('worker: client keys allowed', { timeout: 60_000 }, () => {
  test('a client key reaches the upstream but never the response', async () => {
    const worker = await startWorker({ EDGEBATCH_SIM: 'on', EDGEBATCH_ALLOW_CLIENT_KEYS: 'true' });
    try {
      const r = await postBatch(worker.url, {
        provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim`, apiKey: CLIENT_KEY },
        items: messages(4),
        options: { maxRetries: 4, timeoutMs: 2000 },
      });
      assert.equal(r.status, 200, r.text);
      const lines = ndjson(r.text);
      assert.equal(lines.at(-1).summary.total, 4);
      for (const secret of [CLIENT_KEY, FAKE_ANTHROPIC_KEY, TOKEN]) {
        assert.ok(!r.text.includes(secret) && !worker.logs().includes(secret));
      }
    } finally {
      await worker.dispose();
    }
  });
});
