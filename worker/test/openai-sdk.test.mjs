// The official OpenAI SDK (openai, pinned in package.json), unchanged but for its baseURL
// `{worker}/openai/v1` and the edgebatch token as its apiKey, against the Worker on real workerd
// (Miniflare, its R2 bucket included) with the simulator as the upstream: a realtime call through
// the account's one limiter, the Files and Batch APIs end to end, and the errors the SDK raises
// for bad tokens and bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { FAKE_OPENAI_KEY, TOKEN, startWorker } from './harness.mjs';
import { ROOMY_TOKEN } from './batches-client.mjs';

const OTHER_TOKEN = 'other-openai-caller-7c1e44';
/** The Worker's own simulator, quick and without faults: the SDK's behaviour is what is tested here. */
const SIM = { seed: 7, minuteMs: 60_000, requestsPerMinute: 100_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 }, faults: {} };
const MODEL = 'gpt-4o-mini';
const ask = (i) => ({ model: MODEL, max_completion_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${i}.` }] });
/** One batch input line. */
const line = (custom_id, body, url = '/v1/chat/completions') => JSON.stringify({ custom_id, method: 'POST', url, body });
const jsonl = (lines) => toFile(Buffer.from(`${lines.join('\n')}\n`), 'input.jsonl');

/** The account limiter's object name for the simulator upstream (batches/limiter.js limiterName). */
const SIM_LIMITER = `key:openai:${createHash('sha256').update('openai\nhttp://sim.edgebatch.internal\nsim-key').digest('hex').slice(0, 32)}`;

describe('worker: the OpenAI SDK against {worker}/openai/v1', { timeout: 90_000 }, () => {
  let worker;
  let client;
  let baseURL;

  before(async () => {
    worker = await startWorker({
      ...ROOMY_TOKEN,
      EDGEBATCH_CONCURRENT_BATCHES: '20',
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_SIM_CONFIG: JSON.stringify(SIM),
      EDGEBATCH_BATCH_ALARM_MS: '300',
      EDGEBATCH_TOKENS: `other:${createHash('sha256').update(OTHER_TOKEN).digest('hex')}`,
    });
    baseURL = new URL('/openai/v1', worker.url).href;
    client = new OpenAI({ baseURL, apiKey: TOKEN, maxRetries: 0 });
  });
  after(async () => {
    await worker?.dispose();
  });

  const limiterStats = async () => {
    const ns = await worker.mf.getDurableObjectNamespace('LIMITER');
    return ns.get(ns.idFromName(SIM_LIMITER)).stats();
  };

  /** Retrieves the batch until `done(batch)`, at most `ms`. */
  const poll = async (id, done, ms = 30_000) => {
    let batch = await client.batches.retrieve(id);
    for (const until = Date.now() + ms; !done(batch);) {
      assert.ok(Date.now() < until, `batch ${id} is still ${batch.status}: ${JSON.stringify(batch.request_counts)}`);
      await new Promise((r) => setTimeout(r, 200));
      batch = await client.batches.retrieve(id);
    }
    return batch;
  };
  const linesOf = async (fileId) => (await (await client.files.content(fileId)).text()).split('\n').filter(Boolean).map((l) => JSON.parse(l));

  test('chat.completions.create: a realtime call through the account limiter; the upstream\'s own errors come back as they are', async () => {
    const before = (await limiterStats().catch(() => ({ granted: 0 }))).granted;
    const reply = await client.chat.completions.create(ask(1));
    assert.equal(reply.object, 'chat.completion');
    assert.equal(reply.choices[0].message.role, 'assistant');
    assert.ok(reply.choices[0].message.content.length > 0);
    assert.ok(reply.usage.prompt_tokens > 0 && reply.usage.completion_tokens > 0, JSON.stringify(reply.usage));
    const stats = await limiterStats();
    assert.equal(stats.granted, before + 1, 'one permit of the account limiter');
    assert.equal(stats.inFlight, 0);

    // The Worker's item rules: a 400 naming the field, in OpenAI's shape.
    await assert.rejects(client.chat.completions.create({ ...ask(2), model: 'gpt-5' }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.deepEqual(Object.keys(err.error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(err.error.type, 'invalid_request_error');
      assert.equal(err.error.param, 'model');
      assert.match(err.error.message, /^model must be one of/);
      return true;
    });
    // The upstream's 400 (a role it refuses) is answered as the upstream sent it.
    await assert.rejects(client.chat.completions.create({ ...ask(3), messages: [{ role: 'robot', content: 'x' }] }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.error.type, 'invalid_request_error');
      assert.match(err.error.message, /messages\[0\]\.role/);
      assert.match(err.headers.get('x-request-id') ?? '', /^req_/);
      return true;
    });
  });

  test('stream: true passes the server-sent events through', async () => {
    const stream = await client.chat.completions.create({ ...ask(5), stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      text += chunk.choices[0]?.delta?.content ?? '';
      usage = chunk.usage ?? usage;
    }
    assert.ok(text.length > 0);
    assert.ok(usage?.completion_tokens > 0);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await limiterStats()).inFlight, 0);
  });

  test('Batch API: files.create, batches.create, poll, the output and error files: every custom_id once, OpenAI\'s line shape', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `q${i}`);
    // One the upstream refuses: a line of the error file with the upstream's status and body.
    const input = await client.files.create({ file: await jsonl([...ids.map((id, i) => line(id, ask(i))),
      line('bad-role', { ...ask(99), messages: [{ role: 'robot', content: 'x' }] })]), purpose: 'batch' });
    assert.match(input.id, /^file-[0-9a-z]{32}$/);
    assert.equal(input.object, 'file');
    assert.equal(input.purpose, 'batch');
    assert.equal(input.filename, 'input.jsonl');
    assert.equal(input.status, 'processed');
    assert.ok(input.bytes > 0 && Number.isInteger(input.created_at));
    assert.deepEqual(await client.files.retrieve(input.id), input);

    const created = await client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h',
      metadata: { project: 'sdk-test' } });
    assert.match(created.id, /^batch_[0-9a-f]{64}$/);
    assert.equal(created.object, 'batch');
    assert.equal(created.status, 'in_progress');
    assert.equal(created.input_file_id, input.id);
    assert.equal(created.endpoint, '/v1/chat/completions');
    assert.equal(created.completion_window, '24h');
    assert.deepEqual(created.metadata, { project: 'sdk-test' });
    assert.deepEqual(created.request_counts, { total: 31, completed: 0, failed: 0 });
    assert.equal(created.output_file_id, null);
    assert.equal(created.errors, null);
    assert.ok(created.expires_at - created.created_at >= 23 * 3600, 'expires 24 h after creation (Unix seconds)');
    assert.deepEqual(Object.keys(created).sort(), ['cancelled_at', 'cancelling_at', 'completed_at', 'completion_window', 'created_at', 'endpoint',
      'error_file_id', 'errors', 'expired_at', 'expires_at', 'failed_at', 'finalizing_at', 'id', 'in_progress_at', 'input_file_id', 'metadata',
      'object', 'output_file_id', 'request_counts', 'status']);

    const batch = await poll(created.id, (b) => b.status === 'completed');
    assert.deepEqual(batch.request_counts, { total: 31, completed: 30, failed: 1 });
    assert.ok(batch.completed_at >= batch.finalizing_at && batch.finalizing_at >= batch.created_at);
    assert.match(batch.output_file_id, /^file-/);
    assert.match(batch.error_file_id, /^file-/);

    const out = await linesOf(batch.output_file_id);
    assert.deepEqual(out.map((l) => l.custom_id).sort(), [...ids].sort(), 'every custom_id once');
    for (const l of out) {
      assert.deepEqual(Object.keys(l).sort(), ['custom_id', 'error', 'id', 'response']);
      assert.match(l.id, /^batch_req_/);
      assert.equal(l.error, null);
      assert.deepEqual(Object.keys(l.response).sort(), ['body', 'request_id', 'status_code']);
      assert.equal(l.response.status_code, 200);
      assert.equal(l.response.body.object, 'chat.completion');
      assert.ok(l.response.body.choices[0].message.content.length > 0);
    }
    assert.equal(new Set(out.map((l) => l.id)).size, out.length, 'line ids are unique');
    const [bad, ...rest] = await linesOf(batch.error_file_id);
    assert.deepEqual(rest, []);
    assert.equal(bad.custom_id, 'bad-role');
    assert.equal(bad.error, null);
    assert.equal(bad.response.status_code, 400);
    assert.equal(bad.response.body.error.type, 'invalid_request_error');
    assert.match(bad.response.body.error.message, /role/);

    // The result files are files: retrieve (their size), list, delete.
    const outFile = await client.files.retrieve(batch.output_file_id);
    assert.equal(outFile.purpose, 'batch_output');
    assert.equal(outFile.bytes, Buffer.byteLength(await (await client.files.content(batch.output_file_id)).text()));
    const listed = [];
    for await (const f of client.files.list({ limit: 2 })) listed.push(f.id);
    for (const id of [input.id, batch.output_file_id, batch.error_file_id]) assert.ok(listed.includes(id), `${id} is listed`);
    assert.equal(new Set(listed).size, listed.length, 'no file twice across pages');
    assert.deepEqual(await client.files.delete(batch.error_file_id), { id: batch.error_file_id, object: 'file', deleted: true });
    await assert.rejects(client.files.retrieve(batch.error_file_id), OpenAI.NotFoundError);
  });

  test('batches.list pages newest first with after; cancel', async () => {
    const input = await client.files.create({ file: await jsonl([line('only', ask(0))]), purpose: 'batch' });
    const made = [];
    for (let b = 0; b < 3; b++) {
      made.push((await client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id);
      await new Promise((r) => setTimeout(r, 5)); // distinct creation times
    }
    const page = await client.batches.list({ limit: 2 });
    assert.deepEqual(page.data.map((b) => b.id), [made[2], made[1]], 'newest first');
    assert.equal(page.has_more, true);
    // The list's own cursors (the SDK's page keeps data and has_more only).
    const raw = await client.get('/batches', { query: { limit: 2 } });
    assert.equal(raw.object, 'list');
    assert.equal(raw.first_id, made[2]);
    assert.equal(raw.last_id, made[1]);
    // The SDK follows after = the last id to the older pages.
    const all = [];
    for await (const b of client.batches.list({ limit: 2 })) all.push(b.id);
    assert.deepEqual(all.slice(0, 3), [made[2], made[1], made[0]]);
    assert.equal(new Set(all).size, all.length, 'no batch twice across pages');

    // Cancel: queued requests end cancelled at once; the error file says so, line by line.
    const many = await client.files.create({ file: await jsonl(Array.from({ length: 400 }, (_, i) => line(`c${i}`, ask(i)))), purpose: 'batch' });
    const big = await client.batches.create({ input_file_id: many.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const cancelling = await client.batches.cancel(big.id);
    assert.ok(['cancelling', 'cancelled'].includes(cancelling.status), cancelling.status);
    assert.ok(cancelling.cancelling_at >= cancelling.created_at);
    const ended = await poll(big.id, (b) => b.status === 'cancelled', 20_000);
    assert.ok(ended.cancelled_at >= ended.cancelling_at);
    const { total, completed, failed } = ended.request_counts;
    assert.equal(total, 400);
    assert.equal(completed + failed, 400);
    assert.ok(failed > 0, JSON.stringify(ended.request_counts));
    const errors = await linesOf(ended.error_file_id);
    assert.equal(errors.length, failed);
    assert.ok(errors.every((l) => l.response === null && l.error.code === 'batch_cancelled'), JSON.stringify(errors[0]));
    if (completed > 0) assert.equal((await linesOf(ended.output_file_id)).length, completed);
  });

  test('a wrong token, another token\'s file and batch, bad input: the SDK\'s own errors', async () => {
    const wrong = new OpenAI({ baseURL, apiKey: 'not-the-token', maxRetries: 0 });
    for (const call of [() => wrong.chat.completions.create(ask(0)), () => wrong.batches.list(), () => wrong.files.list()]) {
      await assert.rejects(call(), (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
        assert.deepEqual(err.error, { message: err.error.message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' });
        assert.match(err.error.message, /^Incorrect API key provided: send the edgebatch token/);
        assert.ok(!err.error.message.includes('not-the'), 'the wrong key is not echoed');
        return true;
      });
    }

    const bad = async (promise, pattern, param) => {
      await assert.rejects(promise, (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, String(err));
        assert.equal(err.error.type, 'invalid_request_error');
        assert.match(err.error.message, pattern);
        if (param !== undefined) assert.equal(err.error.param, param);
        return true;
      });
    };
    // Malformed JSONL, a repeated custom_id, another endpoint: refused at upload, the line named.
    await bad(client.files.create({ file: await jsonl([line('a', ask(0)), '{"custom_id": "b", "method": "POST",']), purpose: 'batch' }),
      /^line 2 is not valid JSON/, 'file');
    await bad(client.files.create({ file: await jsonl([line('a', ask(0)), line('b', ask(1)), line('a', ask(2))]), purpose: 'batch' }),
      /^line 3: custom_id "a" is repeated \(first on line 1\)/, 'file');
    await bad(client.files.create({ file: await jsonl([line('a', ask(0), '/v1/embeddings')]), purpose: 'batch' }),
      /^line 1: url "\/v1\/embeddings" is not an endpoint this Worker runs/);
    await bad(client.files.create({ file: await jsonl([line('a', ask(0))]), purpose: 'fine-tune' }), /^purpose must be "batch"/, 'purpose');

    const input = await client.files.create({ file: await jsonl([line('a', ask(0)), '', line('b', { ...ask(1), model: 'gpt-5' })]), purpose: 'batch' });
    await bad(client.batches.create({ input_file_id: input.id, endpoint: '/v1/embeddings', completion_window: '24h' }),
      /^endpoint "\/v1\/embeddings" is not supported here/, 'endpoint');
    await bad(client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '1h' }),
      /^completion_window must be "24h"/, 'completion_window');
    // The item rules, checked by the engine at create, name the file's line.
    await bad(client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      /^line 3: body\.model must be one of/, 'input_file_id');

    // Another token's file and batch are not found.
    const other = new OpenAI({ baseURL, apiKey: OTHER_TOKEN, maxRetries: 0 });
    const theirs = await other.files.create({ file: await jsonl([line('x', ask(0))]), purpose: 'batch' });
    await assert.rejects(client.files.retrieve(theirs.id), OpenAI.NotFoundError);
    await assert.rejects(client.files.content(theirs.id), OpenAI.NotFoundError);
    await assert.rejects(client.batches.create({ input_file_id: theirs.id, endpoint: '/v1/chat/completions', completion_window: '24h' }), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.error.message, `No such File object: ${theirs.id}`);
      assert.equal(err.error.param, 'input_file_id');
      return true;
    });
    const theirBatch = await other.batches.create({ input_file_id: theirs.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await assert.rejects(client.batches.retrieve(theirBatch.id), OpenAI.NotFoundError);
    await assert.rejects(client.batches.cancel(theirBatch.id), OpenAI.NotFoundError);
    assert.ok(!(await client.batches.list({ limit: 100 })).data.some((b) => b.id === theirBatch.id));

    // No secret of the Worker in the logs.
    assert.ok(!worker.logs().includes(FAKE_OPENAI_KEY));
    assert.ok(!worker.logs().includes(TOKEN));
  });
});
