// What a realtime call gives back when it ends early, on real workerd (Miniflare), the Worker
// wrapped by fixtures/stalling-upstream.js: a client that leaves while its call waits for the
// account limiter does not leave a permit held for the limiter's lease (5 min); a stream whose
// upstream stops sending, or sends a line that never ends, is cut and its permit given back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { TOKEN, startWorker } from './harness.mjs';
import { ROOMY_TOKEN } from './batches-client.mjs';

const SIM = { seed: 5, minuteMs: 60_000, requestsPerMinute: 100_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 }, faults: {} };
/** The account limiter's object name for the simulator upstream (batches/limiter.js limiterName). */
const SIM_LIMITER = `key:anthropic:${createHash('sha256').update('anthropic\nhttp://sim.edgebatch.internal\nsim-key').digest('hex').slice(0, 32)}`;
const IDLE_MS = 1_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('worker: realtime calls give their permits back however they end', { timeout: 60_000 }, () => {
  let worker;
  let limiter;
  before(async () => {
    worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_SIM_CONFIG: JSON.stringify(SIM),
      EDGEBATCH_REALTIME_TIMEOUT_MS: String(IDLE_MS) }, { script: 'worker/test/fixtures/stalling-upstream.js', workQueues: 1 });
    const ns = await worker.mf.getDurableObjectNamespace('LIMITER');
    limiter = ns.get(ns.idFromName(SIM_LIMITER));
  });
  after(async () => {
    await worker?.dispose();
  });

  /** POST /anthropic/v1/messages with `text` as the user's message. */
  const call = (text, { stream = false, headers = {} } = {}) => fetch(new URL('/anthropic/v1/messages', worker.url), {
    method: 'POST',
    headers: { 'x-api-key': TOKEN, 'anthropic-version': '2023-06-01', 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 16, stream, messages: [{ role: 'user', content: text }] }),
  });
  /** Polls the limiter's stats until `ok` holds or `ms` pass; returns the last stats. */
  const statsWhen = async (ok, ms) => {
    let s = await limiter.stats();
    for (const until = Date.now() + ms; !ok(s) && Date.now() < until; s = await limiter.stats()) await sleep(50);
    return s;
  };

  test('a client that leaves while its call waits for the limiter: the late grant is given back at once', async () => {
    // The first call configures the account limiter (once per isolate); then it admits one at a time.
    assert.equal((await call('warm up')).status, 200);
    assert.equal((await limiter.configure({ provider: 'anthropic', concurrency: 1, leaseMs: 300_000 }, { replace: true })).ok, true);
    const held = await limiter.acquire('someone-else', { inputTokens: 10, outputTokens: 10 }, { maxWaitMs: 0 });
    assert.match(held.id ?? '', /:/, JSON.stringify(held));

    // The client leaves after 500 ms (the fixture fires request.signal, as workerd does when a
    // client disconnects): the call stops waiting and answers; its acquire is still in the limiter.
    const left = call('wait for a turn', { headers: { 'x-fixture-leave-after-ms': '500' } });
    const queued = await statsWhen((s) => s.waiting === 1, 5_000);
    assert.equal(queued.waiting, 1, `the realtime call waits in the limiter: ${JSON.stringify(queued)}`);
    const answer = await left;
    assert.ok(answer.status >= 400, `the call that lost its client answered ${answer.status}`);
    await answer.text();
    await sleep(300);
    assert.equal((await limiter.stats()).waiting, 1, 'the abandoned acquire still waits in the limiter');

    // The permit comes back: the limiter grants it to the call nobody waits on any more.
    assert.equal(await limiter.releaseMany([[held.id, { ok: true }]]), 1);
    const s = await statsWhen((x) => x.inFlight === 0 && x.waiting === 0, 2_000);
    assert.equal(s.waiting, 0, JSON.stringify(s));
    assert.equal(s.inFlight, 0, `the late grant is still held (until the 5 min lease): ${JSON.stringify(s)}`);
    assert.ok(s.granted >= 2, `the waiting call was granted its permit: ${JSON.stringify(s)}`);

    // The limiter admits the next call at once.
    assert.equal((await call('after')).status, 200);
    assert.equal((await statsWhen((x) => x.inFlight === 0, 2_000)).inFlight, 0);
  });

  test('a stream whose upstream goes quiet is cut after EDGEBATCH_REALTIME_TIMEOUT_MS; its permit comes back', async () => {
    const res = await call('STALL', { stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    // Nothing more comes after the first event: the Worker ends the stream with the provider's
    // error event (as the SDK raises it) instead of holding it open.
    const events = (await res.text()).split(/\n{2,}/);
    assert.match(events[0], /^event: message_start\ndata: /);
    assert.equal(events[1], 'event: error\ndata: {"type":"error","error":{"type":"timeout_error",' +
      `"message":"the upstream sent nothing for ${IDLE_MS} ms (EDGEBATCH_REALTIME_TIMEOUT_MS): the stream is cut"}}`);
    assert.deepEqual(events.slice(2), ['']);
    const s = await statsWhen((x) => x.inFlight === 0, 2_000);
    assert.equal(s.inFlight, 0, JSON.stringify(s));
    const cancels = await (await fetch(new URL('/__upstream/cancels', worker.url))).json();
    assert.deepEqual(cancels, [`the upstream sent nothing for ${IDLE_MS} ms (EDGEBATCH_REALTIME_TIMEOUT_MS): the stream is cut`]);
  });

  test('a stream line past 1 MiB ends the stream in error; its permit comes back', async () => {
    const res = await call('LONG-LINE', { stream: true });
    assert.equal(res.status, 200);
    const events = (await res.text()).split(/\n{2,}/);
    assert.equal(events.length, 3, 'the first event, the error event, the end');
    assert.match(events[1], /^event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"the upstream sent a line longer than 1048576 characters/);
    const s = await statsWhen((x) => x.inFlight === 0, 2_000);
    assert.equal(s.inFlight, 0, JSON.stringify(s));
    const cancels = await (await fetch(new URL('/__upstream/cancels', worker.url))).json();
    assert.equal(cancels.length, 2);
    assert.equal(cancels[1], 'the upstream sent a line longer than 1048576 characters: the stream is cut');
  });
});
