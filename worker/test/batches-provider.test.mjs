// Stored batches served by the provider's Batch API (`options.completionWindow`), on real
// workerd with the simulator's Message Batches API (its processing delay shortened): every
// custom_id once with `route: "provider_batch"` and a follower on `?after=` seeing each line
// once; a window too short for the provider (the rest canceled there, finished realtime);
// errored items retried realtime one by one; bad values refused. And a provider that
// misbehaves (fixtures/provider-faults.js): a repeated results line, a failed cancel, a create
// made but answered 503, results that cannot be read, a redirect.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './harness.mjs';
import { ROOMY_TOKEN, api, exactlyOnce, requests, results, simSession, submit, waitEnded } from './batches-client.mjs';
import { LOCATION_SECRETS, startRedirectPair } from '../../tests/support/redirect-pair.mjs';

const FAST_SIM = { seed: 11, minuteMs: 60_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 } };
/** The Worker's settings for these suites: the simulator, a fast alarm and poll, no turnaround rule. */
const FAST_PROVIDER = { EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_PROVIDER_POLL_MS: '200', EDGEBATCH_PROVIDER_TURNAROUND_MS: '0' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** ms of an ISO time. */
const ms = (iso) => Date.parse(iso);

/**
 * A window too short for the provider at `base` (alarm and poll every 200 ms): `reqs` with
 * `window` against a provider spreading them over `spread`. What the provider finished is
 * its lines, the rest ran realtime, each once; the provider batch was canceled there, and the
 * Worker sent that cancel at the cutoff: at or after 80% of the window from the batch's
 * creation, before its end (both on the Worker's clock, the view's times); the batch ended
 * in time (a generous bound: realtime runs the rest in well under a second).
 */
async function windowEnd(base, provider, reqs, window, spread) {
  const w = { s: 1_000, m: 60_000 }[window.slice(-1)] * Number(window.slice(0, -1));
  const sim = await simSession(base, { ...FAST_SIM, batches: spread });
  const started = Date.now();
  const batch = await submit(base, { provider: { name: provider, baseUrl: sim.baseUrl }, options: { completionWindow: window }, requests: reqs });
  const ended = await waitEnded(base, batch.id, { timeoutMs: w + 10_000, everyMs: 100 });
  const tookMs = Date.now() - started;
  assert.equal(ended.request_counts.succeeded, reqs.length);
  const lines = await results(base, batch.id);
  exactlyOnce(lines, reqs.map((r) => r.custom_id));
  const byRoute = { provider_batch: 0, realtime: 0 };
  for (const l of lines) byRoute[l.edgebatch.route]++;
  const [pb] = ended.edgebatch.providerBatches;
  const simPath = provider === 'openai' ? `/v1/batches/${pb.id}` : `/v1/messages/batches/${pb.id}`;
  const there = await (await fetch(`${sim.baseUrl}${simPath}`, { headers: { authorization: 'Bearer k', 'x-api-key': 'k', 'anthropic-version': '2023-06-01' } })).json();
  const canceledAt = ms(pb.cancel_initiated_at) - ms(ended.created_at);
  console.log(`# ${provider}, window ${window}, provider spread ${(spread.delayMs + spread.spreadMs) / 1000} s: ${byRoute.provider_batch} from the provider batch ` +
    `(${there.status ?? there.processing_status} there), ${byRoute.realtime} realtime; cancel sent at ${canceledAt} ms (${(canceledAt / w).toFixed(3)} of the window), ended in ${tookMs} ms`);
  assert.ok(byRoute.provider_batch > 0 && byRoute.realtime > 0, JSON.stringify(byRoute));
  if (provider === 'openai') {
    assert.equal(there.status, 'cancelled', 'canceled there at the cutoff');
    assert.equal(there.request_counts.completed, byRoute.provider_batch, 'what it finished is what it served');
  } else {
    assert.equal(there.processing_status, 'ended');
    assert.ok(there.cancel_initiated_at, 'canceled there at the cutoff');
    assert.equal(there.request_counts.succeeded, byRoute.provider_batch, 'what it finished is what it served');
  }
  assert.ok(['read', 'abandoned'].includes(pb.status), pb.status);
  assert.ok(canceledAt >= 0.8 * w, `the cancel went at ${canceledAt} ms, before the cutoff at ${0.8 * w} ms`);
  assert.ok(canceledAt < w, `the cancel went at ${canceledAt} ms, after the window's end`);
  assert.ok(tookMs < w + 3_000, `ended after ${tookMs} ms: past the ${w} ms window`);
}

describe('worker: /v1/batches through the provider Batch API', { timeout: 60_000, concurrency: true }, () => {
  let worker;
  let base;
  before(async () => {
    worker = await startWorker({ ...ROOMY_TOKEN, ...FAST_PROVIDER });
    base = worker.url;
  });
  after(async () => {
    await worker?.dispose();
  });

  /** Every new line of batch `id` from a cursor on `?after=`, until it has ended. */
  async function follow(id) {
    const seen = [];
    let cursor = 0;
    for (;;) {
      const r = await api(base, 'GET', `/v1/batches/${id}/results?after=${cursor}`);
      const lines = r.text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      seen.push(...lines);
      if (lines.length > 0) cursor = lines.at(-1).edgebatch.seq;
      else if (r.headers.get('edgebatch-batch-ended') === 'true') return seen;
      await sleep(100);
    }
  }

  test('a batch with completionWindow: every custom_id once, served by the provider batch; a follower sees each line once', async () => {
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 300, spreadMs: 1200 } });
    const reqs = requests(150);
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { completionWindow: '1h' }, requests: reqs });
    const followed = follow(batch.id);
    const samples = [];
    const ended = await waitEnded(base, batch.id, { timeoutMs: 30_000, everyMs: 100, onSample: (b) => samples.push(b.edgebatch) });
    assert.equal(ended.request_counts.succeeded, 150);
    const waited = samples.find((e) => e.waiting?.reason === 'provider_batch');
    assert.ok(waited, 'the view says it waits on the provider batch');
    assert.equal(ended.edgebatch.completionWindow, '1h');
    assert.equal(ended.edgebatch.providerBatches.length, 1);
    assert.equal(ended.edgebatch.providerBatches[0].status, 'read');
    assert.match(ended.edgebatch.providerBatches[0].id, /^msgbatch_/);
    assert.deepEqual(ended.edgebatch.providerBatches[0].counts, { processing: 0, succeeded: 150, errored: 0, canceled: 0, expired: 0 });
    assert.equal(ended.edgebatch.waiting, undefined);

    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    assert.ok(lines.every((l) => l.edgebatch.route === 'provider_batch' && l.result.message.type === 'message'), 'every line says provider_batch');
    assert.ok(lines.every((l) => l.edgebatch.usage.outputTokens > 0));
    assert.deepEqual(lines.map((l) => l.edgebatch.seq), [...Array(150).keys()].map((i) => i + 1));
    exactlyOnce(await followed, reqs.map((r) => r.custom_id));
  });

  test('a window too short for the provider (Anthropic): what it has not finished at the cutoff is canceled there and runs realtime', async () => {
    // 10 s: the cutoff is at 8 s; the provider finishes its items over 1-41 s.
    await windowEnd(base, 'anthropic', requests(60, 'w'), '10s', { delayMs: 1000, spreadMs: 40_000 });
  });

  test('errored items of the provider batch are retried realtime one by one; the rest stay provider results', async () => {
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 200, spreadMs: 500, errorRate: 0.3 } });
    const reqs = requests(80, 'e');
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { completionWindow: '30m' }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 30_000, everyMs: 200 });
    assert.equal(ended.request_counts.succeeded, 80);
    const pbErrored = ended.edgebatch.providerBatches[0].counts.errored;
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    const realtime = lines.filter((l) => l.edgebatch.route === 'realtime');
    console.log(`# errorRate 0.3: ${pbErrored} errored in the provider batch, ${realtime.length} retried realtime`);
    assert.ok(pbErrored > 0);
    assert.equal(realtime.length, pbErrored, 'exactly the errored items ran realtime');
    // Each counts the provider attempt and its realtime one.
    assert.ok(realtime.every((l) => l.edgebatch.attempts >= 2), JSON.stringify(realtime.map((l) => l.edgebatch.attempts)));
    assert.equal(ended.edgebatch.providerBatches.length, 1, 'not resubmitted as a batch');
  });

  test('canceling the batch cancels its provider batch: what it had not finished ends canceled, nothing runs realtime', async () => {
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 3000, spreadMs: 1000 } });
    const reqs = requests(40, 'c');
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { completionWindow: '1h' }, requests: reqs });
    for (let i = 0; i < 50; i++) {
      const b = (await api(base, 'GET', `/v1/batches/${batch.id}`)).json;
      if (b.edgebatch.providerBatches[0]?.id) break;
      await sleep(100);
    }
    assert.equal((await api(base, 'POST', `/v1/batches/${batch.id}/cancel`)).status, 200);
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 200 });
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 0, errored: 0, canceled: 40, expired: 0 });
    assert.equal(ended.edgebatch.providerBatches[0].counts.canceled, 40, 'canceled at the provider too');
    exactlyOnce(await results(base, batch.id), reqs.map((r) => r.custom_id));
  });

  test('bad completionWindow values are 400s naming it', async () => {
    const sim = await simSession(base, FAST_SIM);
    const bad = async (provider, completionWindow, pattern) => {
      const r = await api(base, 'POST', '/v1/batches', { body: { provider, options: { completionWindow }, requests: requests(2) } });
      assert.equal(r.status, 400, r.text);
      assert.match(r.json.error.message, pattern);
    };
    const anthropic = { name: 'anthropic', baseUrl: sim.baseUrl };
    for (const v of ['4 hours', '0h', '-1h', '1.5h', '', 30, null, '24H', '2d']) {
      await bad(anthropic, v, /options\.completionWindow must be a duration like "30m", "4h" or "24h"/);
    }
    await bad(anthropic, '25h', /options\.completionWindow 25h is longer than a batch lives \(86400000 ms, EDGEBATCH_BATCH_TTL_MS\)/);
  });

  test('an OpenAI batch with completionWindow: the input file uploaded, every custom_id once, seq 1..N, priced at the batch discount', async () => {
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 300, spreadMs: 800 } });
    const reqs = Array.from({ length: 60 }, (_, i) => ({ custom_id: `o${i}`,
      params: { model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${i}.` }] } }));
    const batch = await submit(base, { provider: { name: 'openai', baseUrl: sim.baseUrl }, options: { completionWindow: '1h' }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 30_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 60);
    const [pb] = ended.edgebatch.providerBatches;
    assert.equal(ended.edgebatch.providerBatches.length, 1);
    assert.equal(pb.status, 'read');
    assert.match(pb.id, /^batch_/);
    assert.deepEqual(pb.counts, { total: 60, completed: 60, failed: 0 });
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    assert.deepEqual(lines.map((l) => l.edgebatch.seq), [...Array(60).keys()].map((i) => i + 1));
    assert.ok(lines.every((l) => l.edgebatch.route === 'provider_batch' && l.result.message.object === 'chat.completion'));
    // gpt-4o-mini: $0.15 / $0.60 per MTok realtime, half through the Batch API.
    for (const l of lines) {
      const { inputTokens, outputTokens } = l.edgebatch.usage;
      const realtime = inputTokens * 150_000 + outputTokens * 600_000; // pico-dollars
      assert.equal(Math.round(l.edgebatch.usdIfRealtime * 1e12), realtime);
      assert.equal(Math.round(l.edgebatch.usd * 1e12), Math.round(realtime / 2));
    }
    const sum = (k) => lines.reduce((s, l) => s + Math.round(l.edgebatch[k] * 1e12), 0) / 1e12;
    assert.deepEqual(ended.edgebatch.cost, { usd: sum('usd'), usdIfRealtime: sum('usdIfRealtime') });
    assert.ok(ended.edgebatch.cost.usd > 0);
    // The input, output and error files are deleted there once read.
    const files = await (await fetch(`${sim.baseUrl}/v1/files`, { headers: { authorization: 'Bearer k' } })).json();
    assert.deepEqual(files.data, []);
  });
});

describe('worker: the provider Batch API and the token\'s hour', { timeout: 60_000 }, () => {
  test('what goes to the provider is charged to the token\'s hour: a chunk as big as the hour allows, the rest waits for it', async () => {
    // 30 items an hour: a 50-request batch fits its 24 h life, not one hour.
    const worker = await startWorker({ EDGEBATCH_ITEMS_PER_HOUR: '30', EDGEBATCH_SUBREQUESTS_PER_HOUR: '1000', ...FAST_PROVIDER });
    try {
      const sim = await simSession(worker.url, { ...FAST_SIM, batches: { delayMs: 200, spreadMs: 200 } });
      const reqs = requests(50, 'h');
      const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { completionWindow: '1h' }, requests: reqs });
      let view;
      for (let i = 0; i < 100; i++) {
        view = (await api(worker.url, 'GET', `/v1/batches/${batch.id}`)).json;
        if (view.request_counts.succeeded === 30 && view.edgebatch.waiting?.reason === 'token_budget') break;
        await sleep(100);
      }
      assert.equal(view.request_counts.succeeded, 30, JSON.stringify(view));
      assert.equal(view.request_counts.processing, 20);
      assert.equal(view.edgebatch.waiting?.reason, 'token_budget', JSON.stringify(view.edgebatch));
      assert.ok(Date.parse(view.edgebatch.waiting.until) > Date.now() + 60_000, `it waits for the hour: ${view.edgebatch.waiting.until}`);
      assert.deepEqual(view.edgebatch.providerBatches.map((p) => p.items), [30]);
      const usage = (await api(worker.url, 'GET', '/v1/usage')).json;
      assert.equal(usage.now.itemsLastHour, 30, JSON.stringify(usage));
      assert.ok(usage.now.subrequestsLastHour <= 2, `a create is one subrequest, the rest went back: ${JSON.stringify(usage.now)}`);
    } finally {
      await worker.dispose();
    }
  });
});

describe('worker: provider batches chunked at their limits', { timeout: 60_000, concurrency: true }, () => {
  // The providers' limits (100,000 requests / 256 MB, 50,000 / 200 MB) lowered on both sides,
  // the Worker's by its operator settings and the simulator's by its session: the same code
  // splits a batch, and the simulator refuses a provider batch one request or one byte over.
  const MAX_REQUESTS = 10;
  const MAX_BYTES = 16_384;
  const limits = { maxRequests: MAX_REQUESTS, maxBytes: MAX_BYTES };
  let worker;
  let base;
  before(async () => {
    worker = await startWorker({ ...ROOMY_TOKEN, ...FAST_PROVIDER, EDGEBATCH_PROVIDER_BATCH_MAX_REQUESTS: String(MAX_REQUESTS),
      EDGEBATCH_PROVIDER_BATCH_MAX_BYTES: String(MAX_BYTES) });
    base = worker.url;
  });
  after(async () => {
    await worker?.dispose();
  });

  const anthropicHeaders = { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
  /** A create body's request line, as the Worker frames it (provider-anthropic.js ANTHROPIC_FRAME). */
  const line = (r) => `{"custom_id":${JSON.stringify(r.custom_id)},"params":${JSON.stringify(r.params)}}`;
  /** A request whose create-body line is exactly `bytes` long (ASCII: one byte a character). */
  const sized = (custom_id, bytes) => {
    const r = (pad) => ({ custom_id, params: { model: 'claude-haiku-4-5', max_tokens: 16, messages: [{ role: 'user', content: `Summarize ${'x'.repeat(pad)}` }] } });
    return r(bytes - line(r(0)).length);
  };

  /** Runs `reqs` to the end: every line once and from the provider; the provider batches' sizes. */
  async function chunked(provider, reqs, batches = {}) {
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 200, spreadMs: 300, ...limits, ...batches } });
    const batch = await submit(base, { provider: { name: provider, baseUrl: sim.baseUrl }, options: { completionWindow: '1h' }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, reqs.length);
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    assert.ok(lines.every((l) => l.edgebatch.route === 'provider_batch'), 'none refused there and run realtime');
    assert.deepEqual(lines.map((l) => l.edgebatch.seq).sort((a, b) => a - b), [...Array(reqs.length).keys()].map((i) => i + 1));
    assert.ok(ended.edgebatch.providerBatches.every((p) => p.status === 'read'), JSON.stringify(ended.edgebatch.providerBatches));
    return { sim, sizes: ended.edgebatch.providerBatches.map((p) => p.items) };
  }

  test('a batch over the requests limit goes as several provider batches, each within it; the simulator refuses one over', async () => {
    const reqs = requests(25, 'n');
    const { sim, sizes } = await chunked('anthropic', reqs);
    assert.deepEqual(sizes, [10, 10, 5]);
    const there = await (await fetch(`${sim.baseUrl}/v1/messages/batches`, { headers: anthropicHeaders })).json();
    assert.deepEqual(there.data.map((b) => b.request_counts.succeeded).sort((a, b) => b - a), [10, 10, 5], 'as the provider saw them');
    const over = await fetch(`${sim.baseUrl}/v1/messages/batches`, { method: 'POST', headers: anthropicHeaders, body: JSON.stringify({ requests: requests(11) }) });
    assert.equal(over.status, 400);
    assert.equal((await over.json()).error.message, 'requests: List should have at most 10 items after validation, not 11');
  });

  test('a batch over the bytes limit: a provider batch of exactly the limit goes whole, one a byte over is cut', async () => {
    // The create body is {"requests":[ + lines joined by , + ]}: 15 bytes and one a line after the first.
    const frame = (n) => '{"requests":['.length + ']}'.length + (n - 1);
    const L = 5455;
    // b0-b2: exactly MAX_BYTES; b3-b5: one byte more (b5 waits for the next); b5-b7: exactly; b8.
    const lengths = [L, L, MAX_BYTES - frame(3) - 2 * L, L, L + 1, L + 2, L, L, L];
    assert.equal(frame(3) + lengths[0] + lengths[1] + lengths[2], MAX_BYTES);
    assert.equal(frame(3) + lengths[3] + lengths[4] + lengths[5], MAX_BYTES + 1);
    assert.equal(frame(3) + lengths[5] + lengths[6] + lengths[7], MAX_BYTES);
    const reqs = lengths.map((n, i) => sized(`b${i}`, n));
    assert.deepEqual(reqs.map((r) => line(r).length), lengths);
    const { sim, sizes } = await chunked('anthropic', reqs);
    assert.deepEqual(sizes, [3, 2, 3, 1]);
    // The simulator counts the body's bytes: one over the limit is Anthropic's 413.
    const body = `{"requests":[${reqs.slice(3, 6).map(line).join(',')}]}`;
    assert.equal(body.length, MAX_BYTES + 1);
    const over = await fetch(`${sim.baseUrl}/v1/messages/batches`, { method: 'POST', headers: anthropicHeaders, body });
    assert.equal(over.status, 413);
    assert.equal((await over.json()).error.type, 'request_too_large');
  });

  test('a request too big for any provider batch runs realtime; the requests after it still go to the provider', async () => {
    // h1's params are under the item cap (EDGEBATCH_MAX_ITEM_BYTES, 16 KiB); its line in a body is over 16 KiB.
    const reqs = [sized('h0', 200), sized('h1', 16_370), sized('h2', 200), sized('h3', 200)];
    assert.ok(line(reqs[1]).length + '{"requests":[]}'.length > MAX_BYTES);
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 200, spreadMs: 300, ...limits } });
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { completionWindow: '1h' }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 4);
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    assert.deepEqual(Object.fromEntries(lines.map((l) => [l.custom_id, l.edgebatch.route])),
      { h0: 'provider_batch', h1: 'realtime', h2: 'provider_batch', h3: 'provider_batch' });
    assert.deepEqual(ended.edgebatch.providerBatches.map((p) => [p.items, p.status]), [[3, 'read']]);
  });

  test('OpenAI: input files within 10 requests and 16 KiB each, every custom_id once', async () => {
    // 3 KB requests: a file holds 5 (its multipart envelope counts too); 12 small ones: 10 a file.
    const big = Array.from({ length: 12 }, (_, i) => sized(`ob${i}`, 3000)).map((r) => ({ ...r, params: { ...r.params, model: 'gpt-4o-mini' } }));
    const { sizes } = await chunked('openai', big);
    assert.deepEqual(sizes, [5, 5, 2]);
    const small = Array.from({ length: 12 }, (_, i) => ({ custom_id: `os${i}`,
      params: { model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${i}.` }] } }));
    assert.deepEqual((await chunked('openai', small)).sizes, [10, 2]);
  });
});

describe('worker: a window too short for the provider\'s turnaround runs realtime', { timeout: 60_000 }, () => {
  test('the default turnaround (1 h): "30m" runs realtime from the start, "4h" goes to the provider', async () => {
    const worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_PROVIDER_POLL_MS: '200' });
    try {
      const sim = await simSession(worker.url, { ...FAST_SIM, batches: { delayMs: 200, spreadMs: 200 } });
      const routes = {};
      for (const window of ['30m', '4h']) {
        const reqs = requests(8, `t${window}`);
        const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { completionWindow: window }, requests: reqs });
        const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 30_000, everyMs: 100 });
        assert.equal(ended.request_counts.succeeded, 8);
        assert.equal(ended.edgebatch.completionWindow, window);
        const lines = await results(worker.url, batch.id);
        exactlyOnce(lines, reqs.map((r) => r.custom_id));
        routes[window] = { view: ended.edgebatch.route ?? 'provider', lines: [...new Set(lines.map((l) => l.edgebatch.route))] };
      }
      assert.deepEqual(routes, { '30m': { view: 'realtime', lines: ['realtime'] }, '4h': { view: 'provider', lines: ['provider_batch'] } });
    } finally {
      await worker.dispose();
    }
  });
});

describe('worker: a provider Batch API that misbehaves', { timeout: 60_000, concurrency: true }, () => {
  let worker;
  let base;
  let pair;
  before(async () => {
    pair = await startRedirectPair();
    pair.setStatus(307);
    worker = await startWorker({ ...ROOMY_TOKEN, ...FAST_PROVIDER },
      { script: 'worker/test/fixtures/provider-faults.js', workQueues: 2 });
    base = worker.url;
  });
  after(async () => {
    await worker?.dispose();
    await pair?.close();
  });

  /** A batch whose provider batch meets `fault` (provider.version, see the fixture); `{ sim, reqs, batch }`. */
  async function faulted(fault, reqs, completionWindow, batches = { delayMs: 200, spreadMs: 300 }, options = {}) {
    const sim = await simSession(base, { ...FAST_SIM, batches });
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl, version: fault }, options: { completionWindow, ...options },
      requests: reqs });
    return { sim, batch };
  }

  test('a results file repeating a custom_id (twice, then canceled) commits each item once and hands none back', async () => {
    const reqs = requests(40, 'd');
    const { batch } = await faulted('fault-repeat', reqs, '1h');
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 40);
    assert.equal(ended.edgebatch.providerBatches[0].status, 'read');
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    assert.ok(lines.every((l) => l.edgebatch.route === 'provider_batch'), 'none ran realtime too');
    assert.deepEqual(lines.map((l) => l.edgebatch.seq), [...Array(40).keys()].map((i) => i + 1), 'each item recorded once: no seq skipped');
    assert.ok(lines.every((l) => l.edgebatch.attempts === 1), 'one attempt each');
  });

  test('a cancel answered 503 is sent again: the provider batch is canceled there', async () => {
    const reqs = requests(30, 'x');
    const { batch } = await faulted('fault-cancel503', reqs, '1h', { delayMs: 3000, spreadMs: 1000 });
    for (let i = 0; i < 50; i++) {
      if ((await api(base, 'GET', `/v1/batches/${batch.id}`)).json.edgebatch.providerBatches[0]?.id) break;
      await sleep(100);
    }
    assert.equal((await api(base, 'POST', `/v1/batches/${batch.id}/cancel`)).status, 200);
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 200 });
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 0, errored: 0, canceled: 30, expired: 0 });
    assert.equal(ended.edgebatch.providerBatches[0].counts.canceled, 30, 'canceled at the provider (the third cancel went through)');
  });

  test('a create made there but answered 503 is not sent again: its requests run realtime, the chunk is lost', async () => {
    const reqs = requests(20, 'l');
    const { sim, batch } = await faulted('fault-create503', reqs, '1h');
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 20);
    assert.deepEqual(ended.edgebatch.providerBatches.map((p) => [p.id, p.status]), [[null, 'lost']]);
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    assert.ok(lines.every((l) => l.edgebatch.route === 'realtime'));
    const made = await fetch(`${sim.baseUrl}/v1/messages/batches`, { headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' } });
    assert.equal((await made.json()).data.length, 1, 'one create reached the provider');
  });

  test('under maxCostUsd, a lost create keeps its requests\' bounds against the cap: the provider may bill them too', async () => {
    const reqs = requests(20, 'u');
    // The requests' bounds at the batch price, as batches-cost.test.mjs works them out (haiku:
    // $2 / MTok its dearest input rate, $5 out), and what a realtime line costs.
    const bound = reqs.reduce((sum, r) => sum + Math.round((Buffer.byteLength(JSON.stringify(r.params)) * 2_000_000 + 16 * 5_000_000) / 2), 0);
    const probe = await faulted('fault-create503', reqs.slice(0, 1).map((r) => ({ ...r, custom_id: 'probe' })), '1h', undefined, { maxCostUsd: 1 });
    const line = (await results(base, (await waitEnded(base, probe.batch.id, { timeoutMs: 20_000, everyMs: 100 })).id))[0];
    const each = Math.round(line.edgebatch.usd * 1e12);
    // Room for every realtime line, were the lost chunk's bounds forgotten; with them, for 5.
    const capPico = bound + 5 * each + Math.floor(each / 2);
    assert.ok(capPico - bound < 20 * each && capPico > 20 * each, 'the cap tells the two apart');
    const { batch } = await faulted('fault-create503', reqs, '1h', undefined, { maxCostUsd: capPico / 1e12 });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.deepEqual(ended.edgebatch.providerBatches.map((p) => [p.status, p.items]), [['lost', 20]]);
    assert.equal(Math.round(ended.edgebatch.cost.unknownUsd * 1e12), bound, 'the lost chunk\'s bounds');
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    const served = lines.filter((l) => l.result.type === 'succeeded');
    assert.ok(served.length >= 1 && served.length <= 5, `${served.length} served realtime within what is left`);
    assert.ok(lines.filter((l) => l.result.type === 'canceled').every((l) => l.result.error.kind === 'cost_cap'));
    assert.ok(Math.round(ended.edgebatch.cost.usd * 1e12) + bound <= capPico, 'spent + what the provider may bill <= the cap');
  });

  for (const fault of ['fault-create429', 'fault-createdrop']) {
    test(`a create that surely made nothing (${fault}) is made again later: one provider batch serves all`, async () => {
      const reqs = requests(20, fault.slice(-4));
      const { sim, batch } = await faulted(fault, reqs, '1h');
      const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
      assert.equal(ended.request_counts.succeeded, 20);
      assert.deepEqual(ended.edgebatch.providerBatches.map((p) => p.status), ['read']);
      const lines = await results(base, batch.id);
      exactlyOnce(lines, reqs.map((r) => r.custom_id));
      assert.ok(lines.every((l) => l.edgebatch.route === 'provider_batch'));
      const made = await fetch(`${sim.baseUrl}/v1/messages/batches`, { headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' } });
      assert.equal((await made.json()).data.length, 1);
    });
  }

  test('an ended provider batch whose results cannot be read is given up at 90% of the window: its requests run realtime', async () => {
    const reqs = requests(20, 'u');
    const started = Date.now();
    const { batch } = await faulted('fault-results503', reqs, '5s');
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    const tookMs = Date.now() - started;
    assert.equal(ended.request_counts.succeeded, 20);
    assert.equal(ended.edgebatch.providerBatches[0].status, 'abandoned');
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    assert.ok(lines.every((l) => l.edgebatch.route === 'realtime'));
    // The provider batch ended at once there: nothing to cancel. Its requests could only run
    // once it was given up, so the batch (the Worker's clock) ended no sooner than 90% of the
    // window: not at the first failed read, nor at the 80% cutoff.
    assert.equal(ended.edgebatch.providerBatches[0].cancel_initiated_at, undefined);
    const endedAt = ms(ended.ended_at) - ms(ended.created_at);
    console.log(`# results unreadable, window 5s: given up, ended ${endedAt} ms after creation (${(endedAt / 5000).toFixed(3)} of the window)`);
    assert.ok(endedAt >= 4_500, `ended ${endedAt} ms after creation: given up before 90% of the window`);
    assert.ok(tookMs < 8_000, `ended after ${tookMs} ms`);
  });

  test('a provider call answered 307 is not followed: the target sees nothing, the log names only its host', async () => {
    const port = new URL(pair.gatewayUrl).port;
    const reqs = requests(10, 'z');
    const { batch } = await faulted(`fault-redirect-${port}`, reqs, '5s');
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 10);
    assert.equal(ended.edgebatch.providerBatches[0].status, 'abandoned', 'never retrieved, given up');
    assert.deepEqual(pair.seen, [], 'the redirect target got no request');
    const logs = worker.logs();
    assert.ok(logs.includes(`redirect not followed: HTTP 307 to host ${pair.targetHost} `), logs.slice(-2000));
    for (const secret of LOCATION_SECRETS) assert.ok(!logs.includes(secret), `${secret} in the logs`);
  });
});

describe('worker: a batch routed to OpenAI\'s Batch API, canceled or out of time', { timeout: 60_000, concurrency: true }, () => {
  let worker;
  let base;
  before(async () => {
    worker = await startWorker({ ...ROOMY_TOKEN, ...FAST_PROVIDER });
    base = worker.url;
  });
  after(async () => {
    await worker?.dispose();
  });

  const openaiRequests = (n, prefix) => Array.from({ length: n }, (_, i) => ({ custom_id: `${prefix}${i}`,
    params: { model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${i}.` }] } }));
  /** The simulator's own view of OpenAI batch `id`. */
  const simBatch = async (sim, id) => (await fetch(`${sim.baseUrl}/v1/batches/${id}`, { headers: { authorization: 'Bearer k' } })).json();

  test('canceling the batch cancels its OpenAI batch there; every item gets one canceled line', async () => {
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 3000, spreadMs: 1000 } });
    const reqs = openaiRequests(30, 'oc');
    const batch = await submit(base, { provider: { name: 'openai', baseUrl: sim.baseUrl }, options: { completionWindow: '1h' }, requests: reqs });
    let id;
    for (let i = 0; i < 50 && !id; i++) {
      id = (await api(base, 'GET', `/v1/batches/${batch.id}`)).json.edgebatch.providerBatches[0]?.id;
      if (!id) await sleep(100);
    }
    assert.match(String(id), /^batch_/);
    assert.equal((await api(base, 'POST', `/v1/batches/${batch.id}/cancel`)).status, 200);
    const ended = await waitEnded(base, batch.id, { timeoutMs: 10_000, everyMs: 100 });
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 0, errored: 0, canceled: 30, expired: 0 });
    const there = await simBatch(sim, id);
    assert.ok(['cancelling', 'cancelled'].includes(there.status), `the OpenAI batch is ${there.status}`);
    assert.ok(there.cancelling_at, 'a cancel reached it');
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    assert.ok(lines.every((l) => l.result.type === 'canceled' && l.edgebatch.route === undefined), 'none was served');
  });

  test('the window\'s end moves what the OpenAI batch has not finished to realtime', async () => {
    // 5 s: the cutoff is at 4 s; the provider finishes its items over 0.5-20.5 s.
    await windowEnd(base, 'openai', openaiRequests(40, 'ow'), '5s', { delayMs: 500, spreadMs: 20_000 });
  });
});
