// The simulator's two Batch APIs (js/sim-server.mjs on loopback) driven by the official npm SDKs,
// unchanged but for their base URL: what checkers and users point at the simulator. Anthropic's
// Message Batches (create, retrieve, list with its cursors and auto-pagination, results through
// the batch's `results_url`, cancel, delete) and OpenAI's Files + Batch API (uploads in the SDK's
// own multipart encoding, create, list, cancel, the output and error files, delete), with
// partial failures and the limits arriving as the SDKs' error classes. The raw HTTP shapes are
// tested in tests/js/sim-batches.test.mjs; here, that the SDKs parse and follow them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI, { toFile } from 'openai';
import { startSimServer } from '../../js/sim-server.mjs';

const QUICK = { latency: { baseMs: 0, jitterMs: 0, perOutputTokenMs: 0 } };
/** Lowered limits (the API's own errors, at a size a test can send). */
const LIMITS = { maxRequests: 20, maxBytes: 100_000 };
let fast;
let slow;
before(async () => {
  // Items finish 40..120 ms after creation; a quarter of them fail (errorRate).
  fast = await startSimServer({ seed: 7, ...QUICK, batches: { delayMs: 40, spreadMs: 80, errorRate: 0.25, ...LIMITS } });
  // Items due 600..800 ms after creation: a cancel sent at once comes before any of them.
  slow = await startSimServer({ seed: 7, ...QUICK, batches: { delayMs: 600, spreadMs: 200 } });
});
after(() => Promise.all([fast?.close(), slow?.close()]));

/** Calls `get` until `done(value)`; fails after 5 s. */
async function until(get, done) {
  const end = Date.now() + 5000;
  for (;;) {
    const v = await get();
    if (done(v)) return v;
    assert.ok(Date.now() < end, `still ${JSON.stringify(v).slice(0, 300)}`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

/** `err` is an instance of `Class` with `status`. */
function fails(Class, status) {
  return (err) => {
    assert.ok(err instanceof Class, `${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, status);
    return true;
  };
}

describe('@anthropic-ai/sdk: messages.batches against the simulator', () => {
  const ask = (text) => ({ model: 'claude-haiku-4-5', max_tokens: 32, messages: [{ role: 'user', content: text }] });
  const client = (srv) => new Anthropic({ baseURL: srv.url, apiKey: 'sk-ant-sim', maxRetries: 0 });

  test('create, list and its cursors, retrieve until ended, results with partial failures', async () => {
    const c = client(fast);
    const ids = [];
    for (let k = 0; k < 3; k += 1) {
      const requests = Array.from({ length: 12 }, (_, i) => ({ custom_id: `b${k}-r${i}`, params: i === 5 ? { model: 'claude-haiku-4-5', messages: [] } : ask(`document ${k}.${i}`) }));
      const b = await c.messages.batches.create({ requests });
      assert.equal(b.processing_status, 'in_progress');
      assert.equal(b.results_url, null);
      ids.push(b.id);
    }
    const newest = [...ids].reverse();

    const page = await c.messages.batches.list({ limit: 2 });
    assert.deepEqual([page.data.map((b) => b.id), page.has_more, page.first_id, page.last_id], [newest.slice(0, 2), true, newest[0], newest[1]]);
    const all = [];
    for await (const b of c.messages.batches.list({ limit: 2 })) all.push(b.id);
    assert.deepEqual(all, newest, 'auto-pagination follows after_id to the end');
    assert.deepEqual((await c.messages.batches.list({ limit: 1, after_id: ids[2] })).data.map((b) => b.id), [ids[1]]);
    assert.deepEqual((await c.messages.batches.list({ limit: 1, before_id: ids[0] })).data.map((b) => b.id), [ids[1]]);

    const ended = await until(() => c.messages.batches.retrieve(ids[0]), (b) => b.processing_status === 'ended');
    const counts = ended.request_counts;
    assert.equal(counts.succeeded + counts.errored, 12);
    assert.ok(counts.errored >= 2, `the bad request and the error rate's share: ${JSON.stringify(counts)}`);
    assert.ok(ended.ended_at && ended.results_url, JSON.stringify(ended));

    // results() fetches the batch's results_url from the same base.
    const lines = [];
    for await (const line of await c.messages.batches.results(ids[0])) lines.push(line);
    assert.deepEqual(lines.map((l) => l.custom_id).sort(), Array.from({ length: 12 }, (_, i) => `b0-r${i}`).sort());
    const by = (type) => lines.filter((l) => l.result.type === type);
    assert.equal(by('succeeded').length, counts.succeeded);
    assert.equal(by('errored').length, counts.errored);
    const bad = lines.find((l) => l.custom_id === 'b0-r5').result;
    assert.deepEqual(bad, { type: 'errored', error: { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } } });
    assert.ok(by('errored').some((l) => l.result.error.error.type === 'api_error'), 'a failure from the error rate');
    const ok = by('succeeded')[0].result.message;
    assert.equal(ok.type, 'message');
    assert.ok(ok.content[0].text.length > 0 && ok.usage.output_tokens > 0, JSON.stringify(ok));
  });

  test('cancel: canceling, then ended with every request canceled; delete; the limits as error classes', async () => {
    const c = client(slow);
    const requests = Array.from({ length: 5 }, (_, i) => ({ custom_id: `c${i}`, params: ask(`cancel ${i}`) }));
    const b = await c.messages.batches.create({ requests });
    await assert.rejects(c.messages.batches.delete(b.id), fails(Anthropic.BadRequestError, 400), 'not before it has ended');
    const canceling = await c.messages.batches.cancel(b.id);
    assert.equal(canceling.processing_status, 'canceling');
    assert.ok(canceling.cancel_initiated_at);
    const ended = await until(() => c.messages.batches.retrieve(b.id), (x) => x.processing_status === 'ended');
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 0, errored: 0, canceled: 5, expired: 0 });
    const types = [];
    for await (const line of await c.messages.batches.results(b.id)) types.push(line.result.type);
    assert.deepEqual(types, Array(5).fill('canceled'));
    assert.deepEqual(await c.messages.batches.delete(b.id), { id: b.id, type: 'message_batch_deleted' });
    await assert.rejects(c.messages.batches.retrieve(b.id), fails(Anthropic.NotFoundError, 404));

    const f = client(fast);
    const many = Array.from({ length: 21 }, (_, i) => ({ custom_id: `m${i}`, params: ask('x') }));
    await assert.rejects(f.messages.batches.create({ requests: many }), (err) => {
      fails(Anthropic.BadRequestError, 400)(err);
      assert.deepEqual(err.error, { type: 'error', error: { type: 'invalid_request_error', message: 'requests: List should have at most 20 items after validation, not 21' } });
      return true;
    });
    await assert.rejects(f.messages.batches.create({ requests: [{ custom_id: 'big', params: ask('x'.repeat(100_000)) }] }), (err) => {
      fails(Anthropic.ContentTooLargeError, 413)(err);
      assert.equal(err.error.error.type, 'request_too_large');
      return true;
    });
    await assert.rejects(f.messages.batches.create({ requests: [{ custom_id: 'a', params: ask('x') }, { custom_id: 'a', params: ask('y') }] }), (err) => {
      fails(Anthropic.BadRequestError, 400)(err);
      assert.match(err.error.error.message, /^requests\.1\.custom_id: 'a' is already the custom_id of requests\.0/);
      return true;
    });
    await assert.rejects(f.messages.batches.create({ requests: [{ custom_id: 'no spaces', params: ask('x') }] }), fails(Anthropic.BadRequestError, 400));
    await assert.rejects(f.messages.batches.list({ limit: 0 }), (err) => err.error.error.message === 'limit: Input should be greater than or equal to 1');
  });
});

describe('openai: files and batches against the simulator', () => {
  const client = (srv) => new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'sk-sim', maxRetries: 0 });
  const line = (id, text) => ({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }] } });
  const jsonl = (lines) => lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  const rows = async (c, fileId) => (await (await c.files.content(fileId)).text()).trim().split('\n').map((l) => JSON.parse(l));

  test('upload, create, list and its cursor, retrieve until completed, the output and error files, delete', async () => {
    const c = client(fast);
    const text = jsonl(Array.from({ length: 10 }, (_, i) => line(`q${i}`, `question ${i}`)));
    // The SDK's multipart encoding, from a Buffer (toFile) and from a File.
    const file = await c.files.create({ file: await toFile(Buffer.from(text), 'input.jsonl'), purpose: 'batch' });
    assert.deepEqual([file.object, file.purpose, file.filename, file.bytes], ['file', 'batch', 'input.jsonl', Buffer.byteLength(text)]);
    const second = await c.files.create({ file: new File([text], 'second.jsonl'), purpose: 'batch' });
    assert.equal((await c.files.retrieve(second.id)).filename, 'second.jsonl');
    assert.equal(await (await c.files.content(file.id)).text(), text);

    const ids = [];
    for (const f of [file, second, file]) {
      const b = await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      assert.equal(b.status, 'validating');
      ids.push(b.id);
    }
    const newest = [...ids].reverse();
    const page = await c.batches.list({ limit: 2 });
    assert.deepEqual([page.data.map((b) => b.id), page.has_more, page.hasNextPage()], [newest.slice(0, 2), true, true]);
    const all = [];
    for await (const b of c.batches.list({ limit: 2 })) all.push(b.id);
    assert.deepEqual(all, newest, 'auto-pagination follows after to the end');
    assert.deepEqual((await c.batches.list({ limit: 1, after: ids[2] })).data.map((b) => b.id), [ids[1]]);

    const done = await until(() => c.batches.retrieve(ids[0]), (b) => b.status === 'completed');
    const { total, completed, failed } = done.request_counts;
    assert.deepEqual([total, completed + failed], [10, 10]);
    assert.ok(failed >= 1 && completed >= 1, JSON.stringify(done.request_counts));
    const out = await rows(c, done.output_file_id);
    const errs = await rows(c, done.error_file_id);
    assert.deepEqual([...out, ...errs].map((l) => l.custom_id).sort(), Array.from({ length: 10 }, (_, i) => `q${i}`).sort());
    assert.equal(out.length, completed);
    assert.ok(out.every((l) => l.response.status_code === 200 && l.response.body.choices[0].message.content.length > 0 && l.error === null));
    assert.ok(errs.every((l) => l.response.status_code === 500 && l.response.body.error.type === 'server_error'));
    assert.equal((await c.files.retrieve(done.output_file_id)).purpose, 'batch_output');
    await assert.rejects(c.batches.cancel(ids[0]), fails(OpenAI.ConflictError, 409));

    assert.deepEqual(await c.files.delete(second.id), { id: second.id, object: 'file', deleted: true });
    await assert.rejects(c.files.retrieve(second.id), fails(OpenAI.NotFoundError, 404));
  });

  test('cancel: cancelling, then cancelled with every request in the error file; bad input', async () => {
    const c = client(slow);
    const file = await c.files.create({ file: await toFile(Buffer.from(jsonl(Array.from({ length: 5 }, (_, i) => line(`k${i}`, `cancel ${i}`)))), 'k.jsonl'), purpose: 'batch' });
    const b = await c.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    assert.equal((await c.batches.cancel(b.id)).status, 'cancelling');
    const cancelled = await until(() => c.batches.retrieve(b.id), (x) => x.status === 'cancelled');
    assert.deepEqual([cancelled.request_counts, cancelled.output_file_id], [{ total: 5, completed: 0, failed: 5 }, null]);
    const errs = await rows(c, cancelled.error_file_id);
    assert.deepEqual(errs.map((l) => [l.custom_id, l.response, l.error.code]), Array.from({ length: 5 }, (_, i) => [`k${i}`, null, 'batch_cancelled']));

    const f = client(fast);
    await assert.rejects(f.batches.create({ input_file_id: file.id, endpoint: '/v1/nope', completion_window: '24h' }), (err) => {
      fails(OpenAI.BadRequestError, 400)(err);
      assert.deepEqual([err.param, err.code], ['endpoint', 'invalid_value']);
      return true;
    });
    await assert.rejects(f.files.create({ file: await toFile(Buffer.from('{}\n'), 'x.jsonl'), purpose: 'batches' }), (err) => {
      fails(OpenAI.BadRequestError, 400)(err);
      assert.deepEqual([err.param, err.code], ['purpose', 'invalid_value']);
      return true;
    });
    // As the API does, a wrong input file fails the batch in validation, naming the line.
    const over = await f.files.create({ file: await toFile(Buffer.from(jsonl(Array.from({ length: 21 }, (_, i) => line(`o${i}`, 'x')))), 'o.jsonl'), purpose: 'batch' });
    const badLine = await f.files.create({ file: await toFile(Buffer.from(`${jsonl([line('a', 'x')])}{oops\n`), 'bad.jsonl'), purpose: 'batch' });
    const failed = [];
    for (const input of [over, badLine]) {
      const made = await f.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      failed.push(await until(() => f.batches.retrieve(made.id), (x) => x.status !== 'validating'));
    }
    assert.deepEqual(failed.map((x) => [x.status, x.errors.data[0].code, x.errors.data[0].line]), [['failed', 'batch_too_large', null], ['failed', 'invalid_json_line', 2]]);
  });
});
