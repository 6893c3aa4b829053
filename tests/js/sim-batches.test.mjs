// The simulator's Batch APIs over HTTP (js/sim-server.mjs on loopback): Anthropic's Message
// Batches and OpenAI's Files + Batch API, each through a whole round trip, a cancel, an
// expiry, its limits and bad input. Short delays: the whole file runs in a few seconds. The
// cancels run on a server whose items take 400..600 ms, so they come before any is due however
// loaded the machine; which items a later cancel keeps is tested on virtual time
// (sim/src/batches/tests.rs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimServer } from '../../js/sim-server.mjs';

const ANTHROPIC = { 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
const OPENAI = { authorization: 'Bearer sk-test' };

/** A server whose batch items finish delayMs..delayMs + 2 * delayMs after creation and expire after `windowMs`. */
async function server(windowMs = 60_000, delayMs = 40) {
  return startSimServer({ seed: 3, latency: { baseMs: 0, jitterMs: 0, perOutputTokenMs: 0 }, batches: { delayMs, spreadMs: 2 * delayMs, windowMs } });
}

async function call(url, path, { method = 'GET', headers = ANTHROPIC, body } = {}) {
  const res = await fetch(`${url}${path}`, { method, headers, body: typeof body === 'object' && !(body instanceof FormData) ? JSON.stringify(body) : body });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, type, text, json: type.startsWith('application/json') ? JSON.parse(text) : undefined };
}

/** Polls `path` until `done(json)`; fails after `ms`. */
async function until(url, path, headers, done, ms = 3000) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await call(url, path, { headers });
    if (done(r.json)) return r.json;
    assert.ok(Date.now() < end, `still ${JSON.stringify(r.json).slice(0, 300)}`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

const jsonl = (text) => text.trim().split('\n').map((line) => JSON.parse(line));
const message = (text) => ({ model: 'sim-1', max_tokens: 64, messages: [{ role: 'user', content: text }] });
const chat = (id, text) => ({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-sim', messages: [{ role: 'user', content: text }] } });

async function upload(url, lines) {
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n']), 'input.jsonl');
  const r = await call(url, '/v1/files', { method: 'POST', headers: OPENAI, body: form });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function openaiBatch(url, fileId) {
  const r = await call(url, '/v1/batches', { method: 'POST', headers: { ...OPENAI, 'content-type': 'application/json' }, body: { input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' } });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

describe('Anthropic Message Batches', () => {
  let srv;
  before(async () => { srv = await server(); });
  after(() => srv.close());

  test('create, poll, results: every custom_id once, the realtime reply', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `req-${i}`);
    const requests = ids.map((custom_id, i) => ({ custom_id, params: i === 7 ? { model: 'sim-1', messages: [] } : message(`document number ${i}`) }));
    const created = await call(srv.url, '/v1/messages/batches', { method: 'POST', body: { requests } });
    assert.equal(created.status, 200, created.text);
    const b = created.json;
    assert.match(b.id, /^msgbatch_/);
    assert.deepEqual(Object.keys(b).sort(), ['archived_at', 'cancel_initiated_at', 'created_at', 'ended_at', 'expires_at', 'id', 'processing_status', 'request_counts', 'results_url', 'type']);
    assert.equal(b.processing_status, 'in_progress');
    const ended = await until(srv.url, `/v1/messages/batches/${b.id}`, ANTHROPIC, (x) => x.processing_status === 'ended');
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 29, errored: 1, canceled: 0, expired: 0 });
    const results = await call(srv.url, ended.results_url);
    assert.equal(results.status, 200);
    const lines = jsonl(results.text);
    assert.deepEqual(lines.map((l) => l.custom_id).sort(), [...ids].sort());
    const realtime = await call(srv.url, '/v1/messages', { method: 'POST', body: message('document number 3') });
    const three = lines.find((l) => l.custom_id === 'req-3');
    assert.deepEqual(Object.keys(three), ['custom_id', 'result']);
    assert.equal(three.result.type, 'succeeded');
    assert.equal(three.result.message.type, 'message');
    assert.deepEqual(three.result.message.content, realtime.json.content);
    assert.deepEqual(three.result.message.usage, realtime.json.usage);
    assert.deepEqual(lines.find((l) => l.custom_id === 'req-7').result, { type: 'errored', error: { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } } });
    const list = await call(srv.url, '/v1/messages/batches?limit=1');
    assert.deepEqual([list.json.data.length, list.json.first_id, list.json.last_id], [1, b.id, b.id]);
  });

  test('cancel: canceling, then ended with the unfinished items canceled', async () => {
    const slow = await server(60_000, 400);
    try {
      const requests = Array.from({ length: 40 }, (_, i) => ({ custom_id: `c${i}`, params: message(`cancel me ${i}`) }));
      const { json: b } = await call(slow.url, '/v1/messages/batches', { method: 'POST', body: { requests } });
      const canceled = await call(slow.url, `/v1/messages/batches/${b.id}/cancel`, { method: 'POST' });
      assert.equal(canceled.json.processing_status, 'canceling');
      const ended = await until(slow.url, `/v1/messages/batches/${b.id}`, ANTHROPIC, (x) => x.processing_status === 'ended');
      assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 0, errored: 0, canceled: 40, expired: 0 });
      const lines = jsonl((await call(slow.url, `/v1/messages/batches/${b.id}/results`)).text);
      assert.equal(lines.filter((l) => l.result.type === 'canceled').length, 40);
      const deleted = await call(slow.url, `/v1/messages/batches/${b.id}`, { method: 'DELETE' });
      assert.deepEqual(deleted.json, { id: b.id, type: 'message_batch_deleted' });
    } finally {
      await slow.close();
    }
  });

  test('limits and bad input, with the API\'s errors', async () => {
    const one = { custom_id: 'a', params: {} };
    const tooMany = await call(srv.url, '/v1/messages/batches', { method: 'POST', body: { requests: Array(100_001).fill(one) } });
    assert.equal(tooMany.status, 400);
    assert.deepEqual(tooMany.json, { type: 'error', error: { type: 'invalid_request_error', message: 'requests: List should have at most 100000 items after validation, not 100001' } });
    const twice = await call(srv.url, '/v1/messages/batches', { method: 'POST', body: { requests: [one, { custom_id: 'b', params: {} }, one] } });
    assert.equal(twice.status, 400);
    assert.match(twice.json.error.message, /^requests\.2\.custom_id: 'a' is already the custom_id of requests\.0/);
    const badId = await call(srv.url, '/v1/messages/batches', { method: 'POST', body: { requests: [{ custom_id: 'x'.repeat(65), params: {} }] } });
    assert.equal(badId.json.error.message, "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'");
    const noKey = await call(srv.url, '/v1/messages/batches', { headers: { 'anthropic-version': '2023-06-01' } });
    assert.equal(noKey.status, 401);
  });

  test('expiry: a batch not done by its window ends expired', async () => {
    const short = await server(60);
    try {
      const requests = Array.from({ length: 20 }, (_, i) => ({ custom_id: `e${i}`, params: message(`late ${i}`) }));
      const { json: b } = await call(short.url, '/v1/messages/batches', { method: 'POST', body: { requests } });
      const ended = await until(short.url, `/v1/messages/batches/${b.id}`, ANTHROPIC, (x) => x.processing_status === 'ended');
      assert.ok(ended.request_counts.expired > 0, JSON.stringify(ended.request_counts));
      const lines = jsonl((await call(short.url, ended.results_url)).text);
      assert.equal(lines.filter((l) => l.result.type === 'expired').length, ended.request_counts.expired);
    } finally {
      await short.close();
    }
  });
});

describe('OpenAI Files + Batch API', () => {
  let srv;
  before(async () => { srv = await server(); });
  after(() => srv.close());

  test('upload, create, poll to completed, output file in OpenAI\'s line format', async () => {
    const lines = Array.from({ length: 25 }, (_, i) => chat(`q${i}`, `question ${i}`));
    const file = await upload(srv.url, lines);
    assert.equal(file.purpose, 'batch');
    const content = await call(srv.url, `/v1/files/${file.id}/content`, { headers: OPENAI });
    assert.equal(content.text.trim().split('\n').length, 25);
    const b = await openaiBatch(srv.url, file.id);
    assert.equal(b.status, 'validating');
    const seen = new Set([b.status]);
    const done = await until(srv.url, `/v1/batches/${b.id}`, OPENAI, (x) => (seen.add(x.status), x.status === 'completed'));
    assert.ok(seen.has('in_progress'), [...seen].join());
    assert.deepEqual(done.request_counts, { total: 25, completed: 25, failed: 0 });
    assert.equal(done.error_file_id, null);
    const out = jsonl((await call(srv.url, `/v1/files/${done.output_file_id}/content`, { headers: OPENAI })).text);
    assert.deepEqual(out.map((l) => l.custom_id).sort(), lines.map((l) => l.custom_id).sort());
    const line = out.find((l) => l.custom_id === 'q4');
    assert.deepEqual(Object.keys(line), ['id', 'custom_id', 'response', 'error']);
    assert.deepEqual(Object.keys(line.response), ['status_code', 'request_id', 'body']);
    assert.match(line.id, /^batch_req_/);
    assert.equal(line.response.status_code, 200);
    assert.equal(line.error, null);
    const realtime = await call(srv.url, '/v1/chat/completions', { method: 'POST', headers: { ...OPENAI, 'content-type': 'application/json' }, body: chat('q4', 'question 4').body });
    assert.deepEqual(line.response.body.choices, realtime.json.choices);
    assert.deepEqual(line.response.body.usage, realtime.json.usage);
    const again = await call(srv.url, `/v1/batches/${b.id}/cancel`, { method: 'POST', headers: OPENAI });
    assert.equal(again.status, 409);
    assert.equal(again.json.error.message, "Cannot cancel a batch with status 'completed'.");
  });

  test('cancel and expiry put the unfinished items in the error file', async () => {
    const slow = await server(60_000, 400);
    try {
      const file = await upload(slow.url, Array.from({ length: 40 }, (_, i) => chat(`k${i}`, `cancel ${i}`)));
      const b = await openaiBatch(slow.url, file.id);
      const cancelling = await call(slow.url, `/v1/batches/${b.id}/cancel`, { method: 'POST', headers: OPENAI });
      assert.equal(cancelling.json.status, 'cancelling');
      const cancelled = await until(slow.url, `/v1/batches/${b.id}`, OPENAI, (x) => x.status === 'cancelled');
      assert.deepEqual(cancelled.request_counts, { total: 40, completed: 0, failed: 40 });
      assert.equal(cancelled.output_file_id, null);
      const errors = jsonl((await call(slow.url, `/v1/files/${cancelled.error_file_id}/content`, { headers: OPENAI })).text);
      assert.equal(errors.length, 40);
      assert.deepEqual(errors[0].error.code, 'batch_cancelled');
      assert.equal(errors[0].response, null);
    } finally {
      await slow.close();
    }

    const short = await server(60);
    try {
      const f = await upload(short.url, Array.from({ length: 20 }, (_, i) => chat(`x${i}`, `late ${i}`)));
      const e = await openaiBatch(short.url, f.id);
      const expired = await until(short.url, `/v1/batches/${e.id}`, OPENAI, (x) => x.status === 'expired');
      const lines = jsonl((await call(short.url, `/v1/files/${expired.error_file_id}/content`, { headers: OPENAI })).text);
      assert.ok(lines.length > 0 && lines.every((l) => l.error.code === 'batch_expired'));
    } finally {
      await short.close();
    }
  });

  test('bad input: repeated custom_id, unknown endpoint, too many requests', async () => {
    const dup = await upload(srv.url, [chat('a', 'x'), chat('b', 'y'), chat('a', 'z'), '{not json']);
    const failed = await until(srv.url, `/v1/batches/${(await openaiBatch(srv.url, dup.id)).id}`, OPENAI, (x) => x.status !== 'validating');
    assert.equal(failed.status, 'failed');
    assert.deepEqual(failed.errors.data.map((e) => [e.code, e.line]), [['invalid_json_line', 4]]);
    const dupOnly = await upload(srv.url, [chat('a', 'x'), chat('b', 'y'), chat('a', 'z')]);
    const failed2 = await until(srv.url, `/v1/batches/${(await openaiBatch(srv.url, dupOnly.id)).id}`, OPENAI, (x) => x.status !== 'validating');
    assert.deepEqual(failed2.errors.data, [{ code: 'duplicate_custom_id', message: failed2.errors.data[0].message, param: 'custom_id', line: 3 }]);
    const endpoint = await call(srv.url, '/v1/batches', { method: 'POST', headers: OPENAI, body: { input_file_id: dup.id, endpoint: '/v1/unknown', completion_window: '24h' } });
    assert.equal(endpoint.status, 400);
    assert.deepEqual(endpoint.json.error, { message: "Invalid value: '/v1/unknown'. Supported values are: '/v1/chat/completions', '/v1/completions', '/v1/embeddings', and '/v1/responses'.", type: 'invalid_request_error', param: 'endpoint', code: 'invalid_value' });
    const big = await upload(srv.url, Array(50_001).fill('{}'));
    const tooBig = await until(srv.url, `/v1/batches/${(await openaiBatch(srv.url, big.id)).id}`, OPENAI, (x) => x.status !== 'validating');
    assert.equal(tooBig.status, 'failed');
    assert.equal(tooBig.errors.data[0].code, 'batch_too_large');
    const noKey = await call(srv.url, '/v1/batches', { headers: {} });
    assert.equal(noKey.status, 401);
  });
});
