// postProcess on Node: the package's Node entry (pkg/node.js), whose stage runs on a
// workerpool pool of worker_threads. Real workers, real module imports, real timers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from '../../pkg/node.js';
import { FAST, sleep } from './helpers.mjs';

const T = { timeout: 30000 };
const MODULE = new URL('./fixtures/post-module.mjs', import.meta.url);
const post = (extra = {}) => ({ postProcess: { module: MODULE, export: 'extract', threads: 2, ...extra } });
const counter = () => new SharedArrayBuffer(8);
const counts = (sab) => Array.from(new Int32Array(sab));

describe('postProcess on worker_threads', T, () => {
  test('map: input order, one result per item, values from the worker, the stage counted', async () => {
    const events = [];
    const progress = [];
    const bp = new BatchProcessor({ ...FAST, concurrency: 4, onEvent: (e) => events.push(e), onProgress: (p) => progress.push(p) });
    const items = Array.from({ length: 12 }, (_, i) => ({ id: i }));
    const results = await bp.map(items, async (item) => {
      await sleep(5 + ((item.id * 7) % 20));
      return { text: `doc ${item.id}`, cpuMs: (item.id * 5) % 30 };
    }, post());
    assert.deepEqual(results.map((r) => r.index), items.map((_, i) => i));
    for (const [i, r] of results.entries()) {
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.deepEqual(r.value, { text: `DOC ${i}`, index: i, item: { id: i } });
      assert.equal(r.attempts, 1);
    }
    const starts = events.filter((e) => e.type === 'processStart').map((e) => e.index).sort((a, b) => a - b);
    const ends = events.filter((e) => e.type === 'processEnd');
    assert.deepEqual(starts, items.map((_, i) => i));
    assert.equal(ends.length, 12);
    assert.ok(ends.every((e) => e.outcome === 'ok' && e.latencyMs >= 0 && e.attempt === 1));
    // Each item's processStart comes after its call's end.
    for (const e of events.filter((x) => x.type === 'processStart')) {
      const callEnd = events.findIndex((x) => x.type === 'end' && x.index === e.index);
      assert.ok(callEnd >= 0 && callEnd < events.indexOf(e), `item ${e.index}: stage before its call ended`);
    }
    assert.ok(progress.some((p) => p.processing > 0), 'some progress counts items in the stage');
    assert.ok(progress.every((p) => p.done + p.processing + p.inFlight + p.queued + p.waiting <= 12));
    assert.deepEqual(
      [progress.at(-1).done, progress.at(-1).ok, progress.at(-1).processing],
      [12, 12, 0],
    );
  });

  test('stream: completion order of the stage, each item once', async () => {
    const bp = new BatchProcessor({ ...FAST, concurrency: 3 });
    const seen = [];
    // Item 0's processing is the longest by far: it comes out last.
    const stream = bp.stream([0, 1, 2, 3], async (i) => ({ text: i, cpuMs: i === 0 ? 400 : 1 }), post({ threads: 3 }));
    for await (const r of stream) seen.push(r.index);
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3]);
    assert.equal(seen.at(-1), 0, `completion order ${seen}`);
  });

  test('a throwing export and a dying worker fail their item only; the pool goes on', async () => {
    const bp = new BatchProcessor({ ...FAST });
    const values = [{ text: 'a' }, { text: 'b', throw: true }, { text: 'c', die: true }, { text: 'd' }, { text: 'e', fn: true }, { text: 'f' }];
    // threads 1: every item after the dead worker ran on its replacement.
    const results = await bp.map(values, async (v) => v, post({ threads: 1 }));
    assert.equal(results.length, 6);
    assert.deepEqual(results.map((r) => r.ok), [true, false, false, true, false, true]);
    const err = (i) => results[i].error;
    assert.equal(err(1).kind, 'process');
    assert.match(err(1).message, /^post-processing failed: postProcess extract of file:.*post-module\.mjs threw: cannot extract from "b"$/);
    assert.equal(err(1).retryable, false);
    assert.equal(err(2).kind, 'process');
    assert.match(err(2).message, /postProcess extract .*: its worker died \(exit code 7\); the worker is replaced/);
    assert.equal(err(4).kind, 'process');
    assert.match(err(4).message, /returned a value that cannot be cloned/);
    assert.equal(results[5].value.text, 'F');
    assert.ok(results.every((r) => r.attempts === 1), 'no call is retried for its processing');
  });

  test('a retried call is processed once; processing time is not attempt time', async () => {
    const sab = counter();
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 150, maxRetries: 2 });
    const tries = [0, 0, 0];
    const results = await bp.map([0, 1, 2], async (i) => {
      tries[i]++;
      if (tries[i] === 1) throw Object.assign(new Error('overloaded'), { status: 529 });
      // 400 ms of CPU after a call whose timeout is 150 ms.
      return { text: i, cpuMs: 400, counter: sab };
    }, post({ threads: 3 }));
    assert.deepEqual(results.map((r) => [r.ok, r.attempts]), [[true, 2], [true, 2], [true, 2]]);
    assert.equal(counts(sab)[0], 3, 'three items, three processing runs');
    assert.ok(results.every((r) => r.elapsedMs >= 400), 'elapsedMs covers the stage');
  });

  test('an attempt timeout fires while the stage burns CPU (not eaten by it)', async () => {
    const bp = new BatchProcessor({ ...FAST, timeoutMs: 200, maxRetries: 0, concurrency: 4 });
    const order = [];
    // Items 1-3: quick calls, then 700 ms of CPU each on one thread (2.1 s in all). Item 0's
    // call hangs: its 200 ms timeout fires on time only if the loop is free.
    const stream = bp.stream([0, 1, 2, 3], (i, { signal }) => (i === 0
      ? new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))))
      : Promise.resolve({ text: i, cpuMs: 700 })), post({ threads: 1 }));
    const results = [];
    for await (const r of stream) {
      order.push(r.index);
      results[r.index] = r;
    }
    assert.equal(results[0].error.kind, 'timeout');
    assert.equal(order[0], 0, `the timed-out item comes first, before the stage's: ${order}`);
    assert.ok([1, 2, 3].every((i) => results[i].ok), 'processing longer than timeoutMs does not time the item out');
  });

  test('cancel during the stage terminates the worker; each item gets its result', async () => {
    const sab = counter();
    const controller = new AbortController();
    // Cancel once the worker's loop is running (a worker can take long to start on a busy
    // machine), looking every 5 ms for at most 10 s.
    const abortWhenRunning = async () => {
      for (let i = 0; i < 2000 && counts(sab)[1] === 0; i++) await sleep(5);
      controller.abort();
    };
    const bp = new BatchProcessor({
      ...FAST,
      onEvent: (e) => e.type === 'processStart' && abortWhenRunning(),
    });
    const results = await bp.map([0, 1], async (i) => ({ text: i, cpuMs: 20000, counter: sab }), {
      ...post({ threads: 1 }),
      signal: controller.signal,
    });
    assert.deepEqual(results.map((r) => r.error?.kind), ['aborted', 'aborted']);
    assert.deepEqual(results.map((r) => r.error.message), [
      'cancelled during post-processing',
      'cancelled before post-processing',
    ]);
    // The 20 s loop ticks slot 1 every ms while it runs: terminated, it stands still.
    await sleep(50);
    const before = counts(sab)[1];
    await sleep(200);
    assert.equal(counts(sab)[1], before, 'the worker still runs after the cancel');
    assert.ok(before > 0, 'the worker ran before the cancel');
  });

  test('the deadline stops the stage', async () => {
    const bp = new BatchProcessor({ ...FAST, deadlineMs: 400 });
    const results = await bp.map([0, 1, 2], async (i) => ({ text: i, cpuMs: i === 0 ? 1 : 20000 }), post({ threads: 1 }));
    assert.equal(results[0].ok, true);
    assert.equal(results[1].error.kind, 'deadline');
    assert.equal(results[1].error.message, 'deadline reached during post-processing');
    assert.equal(results[2].error.message, 'deadline reached before post-processing');
  });

  test('run(): a fetch reply goes through the stage; call failures skip it', async () => {
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      if (req.url === '/bad') return res.writeHead(400).end('{}');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ words: 'one two three' }));
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${server.address().port}`;
      const bp = new BatchProcessor({ ...FAST, maxRetries: 0 });
      const mod = new URL('./fixtures/post-reply.mjs', import.meta.url);
      const results = await bp.run([{ url: `${base}/ok` }, { url: `${base}/bad` }], {
        postProcess: { module: mod, export: 'wordCount' },
      });
      assert.equal(results[0].value, 3);
      assert.equal(results[1].error.kind, 'http');
    } finally {
      server.close();
    }
  });

  test('the provider key never shows in a stage failure', async () => {
    const key = 'sk-ant-post-secret-0123456789';
    const bp = new BatchProcessor({ ...FAST, provider: { name: 'anthropic', apiKey: key, baseUrl: 'http://127.0.0.1:9' } });
    const [r] = await bp.map([0], async () => ({ text: key, throw: true }), post());
    assert.equal(r.error.kind, 'process');
    assert.ok(!r.error.message.includes(key), r.error.message);
    assert.match(r.error.message, /threw: cannot extract from/);
  });

  test('bad postProcess options reject the call, naming the field', async () => {
    const bp = new BatchProcessor();
    const call = (postProcess) => bp.map([1], (x) => x, { postProcess });
    await assert.rejects(call({ module: './x.mjs', export: 'f' }), { name: 'TypeError', message: /postProcess\.module must be a URL or an absolute path/ });
    await assert.rejects(call({ module: MODULE, threads: 0 }), { name: 'RangeError', message: /postProcess\.threads must be an integer from 1/ });
    await assert.rejects(call({ module: MODULE, export: '' }), { name: 'TypeError', message: /postProcess\.export/ });
    await assert.rejects(call({ module: MODULE, thread: 2 }), { name: 'TypeError', message: /unknown option "postProcess\.thread"/ });
    await assert.rejects(call('x'), { name: 'TypeError', message: /postProcess must be an object/ });
  });

  test('an absolute path works, and a missing export fails each item, not the call', async () => {
    const bp = new BatchProcessor();
    const ok = await bp.map(['a b c'], (x) => x, { postProcess: { module: MODULE.pathname } });
    assert.equal(ok[0].value, 3, 'the default export');
    const missing = await bp.map([1, 2], (x) => x, { postProcess: { module: MODULE, export: 'nope' } });
    assert.ok(missing.every((r) => r.error.kind === 'process' && /no function export "nope"/.test(r.error.message)));
  });
});
