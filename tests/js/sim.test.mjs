// The simulated AI API (Simulator + js/sim-host.mjs + js/sim-server.mjs) over real HTTP on
// loopback: reply shapes, rate-limit headers, 429s, faults, stats, determinism, options.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { Simulator } from '../../js/sim-wasm.mjs';
import { startSimServer } from '../../js/sim-server.mjs';
import { eventually } from './helpers.mjs';

const T = { timeout: 15000 };
const FAST = { latency: { baseMs: 2, perOutputTokenMs: 0, jitterMs: 0, chunkMs: 15 } };
const ANTHROPIC = { 'x-api-key': 'sk-ant-sim', 'anthropic-version': '2023-06-01' };
const OPENAI = { authorization: 'Bearer sk-sim' };

const servers = [];
async function server(options = {}) {
  const srv = await startSimServer({ ...FAST, ...options });
  servers.push(srv);
  return srv;
}
after(() => Promise.all(servers.map((s) => s.close())));

function post(srv, path, body, headers, init = {}) {
  return fetch(srv.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
    ...init,
  });
}

const messages = (text, extra = {}) => ({
  model: 'claude-sim',
  max_tokens: 200,
  messages: [{ role: 'user', content: text }],
  ...extra,
});
const chat = (text, extra = {}) => ({ model: 'gpt-sim', messages: [{ role: 'user', content: text }], ...extra });

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;
const GO_DURATION = /^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$/;

/** Asserts the rate-limit headers of `api` are on `res`, complete and well-formed. */
function assertRateHeaders(res, api) {
  const h = (name) => res.headers.get(name);
  if (api === 'anthropic') {
    assert.match(h('request-id') ?? '', /^req_/);
    for (const kind of ['requests', 'tokens', 'input-tokens', 'output-tokens']) {
      const p = `anthropic-ratelimit-${kind}`;
      const [limit, remaining] = [Number(h(`${p}-limit`)), Number(h(`${p}-remaining`))];
      assert.ok(Number.isInteger(limit) && Number.isInteger(remaining) && remaining <= limit, `${p}`);
      assert.match(h(`${p}-reset`) ?? '', RFC3339, `${p}-reset`);
      const reset = Date.parse(h(`${p}-reset`));
      assert.ok(reset >= Date.now() - 2000 && reset <= Date.now() + 62000, `${p}-reset ${h(`${p}-reset`)}`);
    }
  } else {
    assert.match(h('x-request-id') ?? '', /^req_/);
    for (const kind of ['requests', 'tokens']) {
      const [limit, remaining] = [Number(h(`x-ratelimit-limit-${kind}`)), Number(h(`x-ratelimit-remaining-${kind}`))];
      assert.ok(Number.isInteger(limit) && Number.isInteger(remaining) && remaining <= limit, kind);
      assert.match(h(`x-ratelimit-reset-${kind}`) ?? '', GO_DURATION, `x-ratelimit-reset-${kind}`);
    }
  }
}

const LIMITS = { requestsPerMinute: 1000, inputTokensPerMinute: 100000, outputTokensPerMinute: 50000 };

describe('reply shapes', T, () => {
  test('Anthropic Messages', async () => {
    const srv = await server(LIMITS);
    const text = 'Summarise the quarterly report for the board';
    const res = await post(srv, '/v1/messages', messages(text, { system: 'Be brief.' }), ANTHROPIC);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assertRateHeaders(res, 'anthropic');
    const body = await res.json();
    assert.equal(body.type, 'message');
    assert.equal(body.role, 'assistant');
    assert.equal(body.model, 'claude-sim');
    assert.match(body.id, /^msg_sim_[0-9a-f]{16}$/);
    assert.equal(body.content.length, 1);
    assert.equal(body.content[0].type, 'text');
    assert.match(body.content[0].text, /^Summary [0-9a-f]{8}: Summarise the quarterly report for the board/);
    assert.equal(body.stop_reason, 'end_turn');
    assert.equal(body.stop_sequence, null);
    // "Be brief." (9) + the text (44) = 53 chars -> 14 tokens.
    assert.equal(body.usage.input_tokens, Math.ceil((9 + text.length) / 4));
    assert.ok(body.usage.output_tokens >= 20 && body.usage.output_tokens <= 200);
    assert.equal(res.headers.get('anthropic-ratelimit-requests-remaining'), '999');
  });

  test('OpenAI Chat Completions', async () => {
    const srv = await server(LIMITS);
    const res = await post(srv, '/v1/chat/completions', chat('Hello there, model', { max_tokens: 4 }), OPENAI);
    assert.equal(res.status, 200);
    assertRateHeaders(res, 'openai');
    const body = await res.json();
    assert.equal(body.object, 'chat.completion');
    assert.match(body.id, /^chatcmpl-sim/);
    assert.ok(Math.abs(body.created - Date.now() / 1000) < 5, `created ${body.created}`);
    assert.equal(body.choices[0].index, 0);
    assert.equal(body.choices[0].message.role, 'assistant');
    assert.equal(body.choices[0].finish_reason, 'length');
    assert.equal(body.choices[0].message.content, 'Summary '.padEnd(16, body.choices[0].message.content.slice(8)));
    assert.deepEqual(body.usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
  });

  test('validation and auth errors have the real shapes', async () => {
    const srv = await server(LIMITS);
    const cases = [
      ['/v1/messages', messages('hi'), {}, 401, 'authentication_error'],
      ['/v1/messages', { model: 'm', messages: [{ role: 'user', content: 'x' }] }, ANTHROPIC, 400, 'invalid_request_error'],
      ['/v1/messages', '{"model":', ANTHROPIC, 400, 'invalid_request_error'],
      ['/v1/chat/completions', chat('hi'), { authorization: 'Basic x' }, 401, 'invalid_request_error'],
      ['/v1/chat/completions', { model: 'm' }, OPENAI, 400, 'invalid_request_error'],
      ['/v1/nothing', messages('hi'), ANTHROPIC, 404, 'not_found_error'],
    ];
    for (const [path, body, headers, status, type] of cases) {
      const res = await post(srv, path, body, headers);
      const json = await res.json();
      assert.equal(res.status, status, `${path} ${JSON.stringify(json)}`);
      assert.equal(json.error.type, type);
      assert.equal(typeof json.error.message, 'string');
      if (path.includes('chat')) assert.ok('param' in json.error && 'code' in json.error);
      else assert.equal(json.type, 'error');
      if (status !== 404) assertRateHeaders(res, path.includes('chat') ? 'openai' : 'anthropic');
    }
    const missing = await (await post(srv, '/v1/chat/completions', { model: 'm' }, OPENAI)).json();
    assert.deepEqual(missing.error, {
      message: "Missing required parameter: 'messages'.",
      type: 'invalid_request_error',
      param: 'messages',
      code: 'missing_required_parameter',
    });
  });

  test('GET /stats, CORS preflight', async () => {
    const srv = await server();
    const pre = await fetch(srv.url + '/v1/messages', { method: 'OPTIONS' });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    const stats = await (await fetch(srv.url + '/stats')).json();
    assert.equal(stats.requests, 0);
    assert.deepEqual(stats.byStatus, {});
  });
});

describe('rate limits', T, () => {
  test('429 under a tight limit, with a retry-after that is enough', async () => {
    const srv = await server({ minuteMs: 600, requestsPerMinute: 2 });
    const send = () => post(srv, '/v1/messages', messages('limit me'), ANTHROPIC);
    assert.equal((await send()).status, 200);
    assert.equal((await send()).status, 200);
    const limited = await send();
    assert.equal(limited.status, 429);
    const body = await limited.json();
    assert.equal(body.error.type, 'rate_limit_error');
    const waitMs = Number(limited.headers.get('retry-after-ms'));
    assert.ok(waitMs > 0 && waitMs <= 300, `retry-after-ms ${waitMs}`);
    assert.equal(limited.headers.get('retry-after'), '1');
    assert.equal(limited.headers.get('anthropic-ratelimit-requests-remaining'), '0');
    await new Promise((r) => setTimeout(r, waitMs));
    assert.equal((await send()).status, 200);
    const o = await post(srv, '/v1/chat/completions', chat('x'), OPENAI);
    assert.equal(o.status, 429);
    const err = (await o.json()).error;
    assert.equal(err.type, 'requests');
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.match(o.headers.get('x-ratelimit-reset-requests'), GO_DURATION);
  });

  test('every reply of a mixed run carries the headers', async () => {
    const srv = await server({ ...LIMITS, requestsPerMinute: 5, faults: { rate500: 0.2, rate529: 0.2 } });
    const seen = new Set();
    for (let i = 0; i < 16; i++) {
      const openai = i % 2 === 1;
      const res = openai
        ? await post(srv, '/v1/chat/completions', chat(`item ${i}`), OPENAI)
        : await post(srv, '/v1/messages', messages(`item ${i}`), ANTHROPIC);
      seen.add(res.status);
      assertRateHeaders(res, openai ? 'openai' : 'anthropic');
      await res.arrayBuffer();
    }
    assert.ok(seen.has(429), `statuses ${[...seen]}`);
  });

  test('edgebatch map() gets every item through the limit by honouring retry-after', async () => {
    const srv = await server({ minuteMs: 400, requestsPerMinute: 4 });
    const bp = new BatchProcessor({ concurrency: 4, maxRetries: 10, backoff: { baseMs: 1, maxMs: 5, jitter: 'none' } });
    const results = await bp.map(Array.from({ length: 10 }, (_, i) => i), async (i, { signal }) => {
      const res = await post(srv, '/v1/messages', messages(`doc ${i}`), ANTHROPIC, { signal });
      if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status, headers: res.headers });
      return (await res.json()).content[0].text;
    });
    assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
    results.forEach((r, i) => assert.match(r.value, new RegExp(`^Summary [0-9a-f]{8}: doc ${i}`)));
    const stats = srv.sim.stats();
    assert.equal(stats.byStatus['200'], 10);
    assert.ok(stats.byStatus['429'] >= 1);
  });
});

describe('faults', T, () => {
  test('a hang is counted as aborted when the client aborts', async () => {
    const srv = await server({ faults: { hang: 1 } });
    const started = Date.now();
    await assert.rejects(
      post(srv, '/v1/messages', messages('hang'), ANTHROPIC, { signal: AbortSignal.timeout(150) }),
      (e) => e.name === 'TimeoutError' || e.name === 'AbortError',
    );
    assert.ok(Date.now() - started >= 140);
    assert.ok(await eventually(() => srv.sim.stats().aborted === 1, 3000), JSON.stringify(srv.sim.stats()));
    const s = srv.sim.stats();
    assert.equal(s.hangs, 1);
    assert.equal(s.inFlight, 0);
  });

  test('a disconnect makes fetch reject', async () => {
    const srv = await server({ faults: { disconnect: 1 } });
    await assert.rejects(post(srv, '/v1/chat/completions', chat('drop'), OPENAI), (e) => e instanceof TypeError);
    const s = srv.sim.stats();
    assert.equal(s.disconnects, 1);
    assert.equal(s.inFlight, 0);
    assert.deepEqual(s.byStatus, {});
  });

  test('malformed JSON comes with a 200', async () => {
    const srv = await server({ faults: { malformed: 1 } });
    const res = await post(srv, '/v1/messages', messages('break me'), ANTHROPIC);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const text = await res.text();
    assert.ok(text.startsWith('{"id":"msg_sim_'), text);
    assert.throws(() => JSON.parse(text), SyntaxError);
    assert.equal(srv.sim.stats().malformed, 1);
  });

  test('a slow body arrives complete, chunk by chunk', async () => {
    const srv = await server({ faults: { slowBody: 1 } });
    const started = performance.now();
    const res = await post(srv, '/v1/messages', messages('trickle'), ANTHROPIC);
    const headersAt = performance.now() - started;
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const chunks = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
    const total = performance.now() - started;
    assert.ok(chunks.length >= 4, `${chunks.length} chunks`);
    assert.ok(total - headersAt >= 7 * 15 - 10, `headers at ${headersAt} ms, body done at ${total} ms`);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    assert.equal(body.type, 'message');
    assert.ok(await eventually(() => srv.sim.stats().finished === 1, 1000));
    assert.equal(srv.sim.stats().slowBodies, 1);
  });

  test('a client leaving during a slow body is counted as aborted', async () => {
    const srv = await server({ faults: { slowBody: 1 }, latency: { baseMs: 1, jitterMs: 0, chunkMs: 200 } });
    const ac = new AbortController();
    const res = await post(srv, '/v1/messages', messages('leave'), ANTHROPIC, { signal: ac.signal });
    assert.equal(res.status, 200);
    ac.abort();
    await assert.rejects(res.text());
    assert.ok(await eventually(() => srv.sim.stats().aborted === 1, 3000), JSON.stringify(srv.sim.stats()));
    assert.equal(srv.sim.stats().inFlight, 0);
  });
});

describe('stats and determinism', T, () => {
  test('stats count requests, statuses, tokens and flight', async () => {
    const srv = await server({ requestsPerMinute: 3 });
    const replies = await Promise.all(
      Array.from({ length: 5 }, (_, i) => post(srv, '/v1/messages', messages(`abcd ${i}`, { max_tokens: 7 }), ANTHROPIC)),
    );
    await Promise.all(replies.map((r) => r.arrayBuffer()));
    const s = srv.sim.stats();
    assert.equal(s.requests, 5);
    assert.deepEqual(s.byStatus, { 200: 3, 429: 2 });
    assert.equal(s.finished, 5);
    assert.equal(s.inFlight, 0);
    assert.ok(s.maxInFlight >= 1 && s.maxInFlight <= 5);
    assert.equal(s.inputTokens, 3 * 2);
    assert.equal(s.outputTokens, 3 * 7);
    assert.ok(s.meanLatencyMs >= 0);
    assert.deepEqual(await (await fetch(srv.url + '/stats')).json(), srv.sim.stats());
  });

  test('the same seed gives the same replies; another seed does not', async () => {
    const run = async (seed) => {
      const srv = await server({ seed, faults: { rate500: 0.3, malformed: 0.2 }, latency: { baseMs: 1, perOutputTokenMs: 0, jitterMs: 3 } });
      const out = [];
      for (let i = 0; i < 12; i++) {
        const res = await post(srv, '/v1/messages', messages(`same ${i}`), ANTHROPIC);
        out.push([res.status, res.headers.get('request-id'), await res.text()]);
      }
      return out;
    };
    const [a, b, c] = [await run(7), await run(7), await run(8)];
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });
});

describe('new Simulator(options)', T, () => {
  test('bad options throw errors that name them', () => {
    const cases = [
      [{ faults: { hang: 2 } }, RangeError, 'faults.hang must be a number in 0..=1, got 2'],
      [{ faults: { hang: 0.6, disconnect: 0.6 } }, RangeError, 'faults must add up to at most 1, got 1.2'],
      [{ minuteMs: 'fast' }, TypeError, 'minuteMs must be an integer in 1..=3600000, got "fast"'],
      [{ requestsPerMinute: 0 }, RangeError, 'requestsPerMinute must be an integer in 1..=1000000000, got 0'],
      [{ latency: { baseMs: -1 } }, RangeError, 'latency.baseMs must be a number in 0..=3600000, got -1'],
      [{ latency: 5 }, TypeError, 'latency must be an object, got 5'],
      [{ fault: {} }, TypeError, 'unknown option "fault"'],
      [{ faults: { rate503: 0.1 } }, TypeError, 'unknown option "faults.rate503"'],
      ['fast', TypeError, 'options must be an object, got fast'],
    ];
    for (const [options, cls, message] of cases) {
      assert.throws(() => new Simulator(options), (e) => e instanceof cls && e.message === message, message);
    }
    new Simulator().free();
    new Simulator({ seed: 1, faults: { rate429: 0.5, rate500: 0.5 } }).free();
  });

  test('handle() takes plain-object, Headers and pair-list headers', () => {
    const sim = new Simulator({ latency: { jitterMs: 0 } });
    const body = JSON.stringify(messages('direct'));
    for (const headers of [ANTHROPIC, new Headers(ANTHROPIC), Object.entries(ANTHROPIC)]) {
      const d = sim.handle('POST', '/v1/messages', headers, body, 0);
      assert.equal(d.status, 200);
      assert.equal(d.action, 'reply');
      assert.equal(typeof d.delayMs, 'number');
      assert.equal(d.headers['content-type'], 'application/json');
      assert.ok(sim.finish(d.id, 1));
    }
    assert.throws(() => sim.handle('POST', '/v1/messages', 5, body, 0), TypeError);
    assert.throws(() => sim.handle('POST', '/v1/messages', {}, 42, 0), TypeError);
    assert.equal(sim.stats().finished, 3);
    sim.free();
  });
});
