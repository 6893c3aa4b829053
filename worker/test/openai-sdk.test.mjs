// The official OpenAI SDK (openai, pinned in package.json), unchanged but for its baseURL
// `{worker}/openai/v1` and the edgebatch token as its apiKey, against the Worker on real workerd
// (Miniflare, its R2 bucket included) with the simulator as the upstream: a realtime call through
// the account's one limiter, the Files and Batch APIs end to end, and the errors the SDK raises
// for bad tokens and bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import OpenAI, { toFile } from 'openai';
import { FAKE_OPENAI_KEY, TOKEN, startWorker } from './harness.mjs';
import { ROOMY_TOKEN } from './batches-client.mjs';
import { checkInput } from '../src/openai/jsonl.js';

const OTHER_TOKEN = 'other-openai-caller-7c1e44';
const FILLER_TOKEN = 'filler-openai-caller-2b9d05';
/** The Worker's own simulator, quick and without faults: the SDK's behaviour is what is tested here. */
const SIM = { seed: 7, minuteMs: 60_000, requestsPerMinute: 100_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 }, faults: {},
  // Its Batch API (a batch routed there by completionWindow) ends within a second.
  batches: { delayMs: 200, spreadMs: 300 } };
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
      EDGEBATCH_PROVIDER_POLL_MS: '300',
      EDGEBATCH_TOKENS: [['other', OTHER_TOKEN], ['filler', FILLER_TOKEN]].map(([name, t]) => `${name}:${createHash('sha256').update(t).digest('hex')}`).join(','),
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

  test('batches.create with an edgebatch-options header: completionWindow sends it to the provider\'s Batch API at half the price; a bad header is a 400 naming it', async () => {
    const input = await client.files.create({ file: await jsonl([0, 1, 2].map((i) => line(`w${i}`, ask(i)))), purpose: 'batch' });
    const args = { input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' };
    const created = await client.batches.create(args, { headers: { 'edgebatch-options': JSON.stringify({ completionWindow: '24h' }) } });
    const batch = await poll(created.id, (b) => b.status === 'completed');
    assert.deepEqual(batch.request_counts, { total: 3, completed: 3, failed: 0 });
    assert.deepEqual((await linesOf(batch.output_file_id)).map((l) => [l.custom_id, l.response.status_code]).sort(), [['w0', 200], ['w1', 200], ['w2', 200]]);
    // The engine's view of the same batch: its provider batch, and the discount.
    const view = await (await fetch(new URL(`/v1/batches/${created.id}`, worker.url), { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    assert.equal(view.edgebatch.completionWindow, '24h');
    assert.deepEqual(view.edgebatch.providerBatches.map((p) => p.items), [3]);
    assert.ok(Math.abs(view.edgebatch.cost.usd * 2 - view.edgebatch.cost.usdIfRealtime) < 1e-9, JSON.stringify(view.edgebatch.cost));

    await assert.rejects(client.batches.create(args, { headers: { 'edgebatch-options': '[1]' } }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `${err?.constructor?.name}: ${err?.message}`);
      assert.match(err.message, /the edgebatch-options header must be a JSON object/);
      return true;
    });
  });

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
  /** POST /files with a body made here: `chunked` sends it as a stream (no Content-Length). */
  const rawUpload = async (body, { boundary = 'b0und4ry', type = `multipart/form-data; boundary=${boundary}`, chunked = false } = {}) => {
    const res = await fetch(`${baseURL}/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type },
      body: chunked ? ReadableStream.from([body]) : body,
      ...(chunked && { duplex: 'half' }),
    });
    return { status: res.status, json: await res.json() };
  };
  /** A form of [name, value, filename?] parts, as bytes. */
  const form = (boundary, parts, { preamble = '', close = true } = {}) => Buffer.concat([
    Buffer.from(preamble),
    ...parts.flatMap(([name, value, filename]) => [
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"${filename ?? ''}\r\n\r\n`), Buffer.from(value), Buffer.from('\r\n')]),
    Buffer.from(close ? `--${boundary}--\r\n` : ''),
  ]);

  test('files.create reads the upload as bytes: any UTF-8 kept byte for byte, a form in any order, chunked, faults named', async () => {
    // Characters beyond Latin-1 (a string of them is two bytes a character in V8), CRLF lines.
    const text = `${line('résumé-東京', { ...ask(0), messages: [{ role: 'user', content: 'Naïve café — 東京 🚀' }] })}\r\n${line('two', ask(1))}\n`;
    const sdk = await client.files.create({ file: await toFile(Buffer.from(text), 'ünï.jsonl'), purpose: 'batch' });
    assert.equal(sdk.bytes, Buffer.byteLength(text));
    assert.equal(Buffer.from(await (await client.files.content(sdk.id)).arrayBuffer()).toString(), text, 'the same bytes back');

    // purpose after the file, a preamble, a quoted boundary, filename* (RFC 5987), no Content-Length.
    const boundary = 'a quoted: boundary';
    const body = form(boundary, [['file', text, `; filename="fallback.jsonl"; filename*=UTF-8''%E6%9D%B1%E4%BA%AC.jsonl`], ['purpose', 'batch']],
      { preamble: 'ignored preamble\r\n' });
    const chunked = await rawUpload(body, { type: `multipart/form-data; boundary="${boundary}"; charset=utf-8`, chunked: true });
    assert.equal(chunked.status, 200, JSON.stringify(chunked.json));
    assert.equal(chunked.json.filename, '東京.jsonl');
    assert.equal(chunked.json.bytes, Buffer.byteLength(text));
    assert.equal(await (await client.files.content(chunked.json.id)).text(), text);

    const refused = async (res, pattern, param = 'file') => {
      const { status, json } = await res;
      assert.equal(status, 400, JSON.stringify(json));
      assert.match(json.error.message, pattern);
      assert.equal(json.error.param, param);
    };
    const bad = Buffer.concat([Buffer.from(`${line('a', ask(0))}\n{"custom_id": "`), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
    await refused(rawUpload(form('b0und4ry', [['purpose', 'batch'], ['file', bad, '; filename="x.jsonl"']])), /^line 2 is not valid UTF-8$/);
    await refused(rawUpload(form('b0und4ry', [['purpose', 'batch'], ['file', text, '; filename="x.jsonl"']], { close: false })),
      /^the body is not valid multipart\/form-data: no closing boundary$/);
    await refused(rawUpload(form('b0und4ry', [['purpose', 'batch'], ['file', text]])), /^file is missing: send it as a file field/);
    await refused(rawUpload(form('b0und4ry', [['file', text, '; filename="x.jsonl"']])), /^purpose must be "batch"/, 'purpose');
    await refused(rawUpload(form('b0und4ry', [['purpose', 'batch']]), { type: 'multipart/form-data; charset=utf-8' }), /no valid multipart boundary/);

    // Past EDGEBATCH_FILE_MAX_BYTES (32 MiB): a 413 naming it, by Content-Length and, chunked, by
    // count. On a connection of its own: the rest of the body is dropped, the connection closed.
    const big = form('b0und4ry', [['purpose', 'batch'], ['file', Buffer.alloc(32 * 1024 * 1024, 0x20), '; filename="big.jsonl"']]);
    for (const chunked of [false, true]) {
      const { status, json } = await new Promise((resolve, reject) => {
        const req = http.request(`${baseURL}/files`, {
          method: 'POST',
          agent: false,
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'multipart/form-data; boundary=b0und4ry',
            ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': big.length }) },
        }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(big);
      });
      assert.equal(status, 413, JSON.stringify(json));
      assert.equal(json.error.message, `the upload is larger than ${32 * 1024 * 1024} bytes (EDGEBATCH_FILE_MAX_BYTES)`);
    }
  });

  test('checkInput keeps no more custom_ids than a batch may hold', () => {
    const bytes = Buffer.from(['a', 'b', 'c'].map((id) => line(id, ask(0))).join('\n'));
    assert.equal(checkInput(bytes, 3), 3);
    assert.throws(() => checkInput(bytes, 2), /^Error: line 3: the file has more than 2 requests, the most a batch holds here \(EDGEBATCH_BATCH_MAX_REQUESTS\)$/);
    // A byte order mark opens line 1 only (as the file is read at create).
    assert.equal(checkInput(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]), 3), 3);
    assert.throws(() => checkInput(Buffer.from(`${line('a', ask(0))}\n\uFEFF${line('b', ask(0))}`), 3), /line 2 is not valid JSON/);
  });

  test('an ended batch is finalizing until a retrieve writes its files (after its answer); a list never writes them', async () => {
    const input = await client.files.create({ file: await jsonl([line('f1', ask(1)), line('f2', ask(2))]), purpose: 'batch' });
    const { id } = await client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const listed = async () => (await client.batches.list({ limit: 100 })).data.find((b) => b.id === id);
    let seen = await listed();
    for (const until = Date.now() + 20_000; seen.status !== 'finalizing';) {
      assert.equal(seen.status, 'in_progress');
      assert.ok(Date.now() < until, `batch ${id} is still ${seen.status}`);
      await new Promise((r) => setTimeout(r, 200));
      seen = await listed();
    }
    assert.deepEqual(seen.request_counts, { total: 2, completed: 2, failed: 0 });
    assert.equal(seen.output_file_id, null);
    assert.equal(seen.completed_at, null);
    assert.ok(seen.finalizing_at >= seen.created_at);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await listed()).status, 'finalizing', 'lists do not write the files');
    const outputs = [];
    for await (const f of client.files.list({ purpose: 'batch_output' })) outputs.push(f.filename);
    assert.ok(!outputs.includes(`${id}_output.jsonl`), 'no output file yet');

    const first = await client.batches.retrieve(id);
    assert.equal(first.status, 'finalizing', 'the files are written after the answer');
    const done = await poll(id, (b) => b.status === 'completed', 10_000);
    assert.ok(done.completed_at >= done.finalizing_at);
    assert.deepEqual((await linesOf(done.output_file_id)).map((l) => l.custom_id).sort(), ['f1', 'f2']);
    assert.equal(done.error_file_id, null);
    const again = await listed();
    assert.equal(again.status, 'completed');
    assert.equal(again.output_file_id, done.output_file_id);
  });

  test('files.list with a purpose reads at most max(limit, 1000) files a request: has_more, and last_id goes on from there', async () => {
    // A token of its own, its prefix filled straight in the Worker's R2 bucket: 1,000 input
    // files newer than one output file.
    const bucket = await worker.mf.getR2Bucket('FILES');
    const prefix = 'openai/filler/files/';
    const idAt = (ms, tail) => `file-${(0xffffffffffff - ms).toString(16).padStart(12, '0')}${tail.padStart(20, '0')}`;
    const old = Date.parse('2020-01-01T00:00:00Z');
    const output = idAt(old, 'out');
    await bucket.put(`${prefix}${output}`, 'x', { customMetadata: { filename: 'old_output.jsonl', purpose: 'batch_output', created_at: String(old) } });
    const fillers = Array.from({ length: 1000 }, (_, i) => idAt(old + 1000 + i, String(i)));
    await Promise.all(fillers.map((f) => bucket.put(`${prefix}${f}`, 'x', { customMetadata: { filename: 'in.jsonl', purpose: 'batch', created_at: String(old) } })));
    const filler = new OpenAI({ baseURL, apiKey: FILLER_TOKEN, maxRetries: 0 });
    const page = await filler.get('/files', { query: { purpose: 'batch_output', limit: 5 } });
    assert.deepEqual(page.data, []);
    assert.equal(page.has_more, true);
    assert.equal(page.last_id, fillers[0], 'the oldest filler, the 1,000th file read');
    const next = await filler.get('/files', { query: { purpose: 'batch_output', limit: 5, after: page.last_id } });
    assert.deepEqual(next.data.map((f) => f.id), [output]);
    assert.equal(next.has_more, false);
    assert.equal(next.last_id, output);
    // A page as large as the filter needs: read through in one request.
    const whole = await filler.get('/files', { query: { purpose: 'batch_output', limit: 1001 } });
    assert.deepEqual(whole.data.map((f) => f.id), [output]);
    assert.equal(whole.has_more, false);
    // Unfiltered, a page holds what it read.
    const plain = await filler.get('/files', { query: { limit: 3 } });
    assert.deepEqual(plain.data.map((f) => f.id), fillers.slice(-3).reverse());
    assert.equal(plain.last_id, fillers.at(-3));
    assert.equal(plain.has_more, true);
  });
});
