// Dollars in stored batches, on real workerd with the simulator: every realtime result line
// carries its `usd` at the library's prices, the batch view's `cost` is the exact sum of its
// lines, and `options.maxCostUsd` stops starting requests before the cap would be passed (the
// library's rule: what is spent plus the next request's estimate, input at 4 characters a token
// and output at max_tokens), the rest ending canceled with kind cost_cap; bad values are 400s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './harness.mjs';
import { ROOMY_TOKEN, api, exactlyOnce, results, sessionStats, simSession, submit, waitEnded } from './batches-client.mjs';

const FAST_SIM = { seed: 5, minuteMs: 60_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 } };
/** claude-haiku-4-5, pico-dollars a token: $1 in, $5 out per MTok. */
const HAIKU = { input: 1_000_000, output: 5_000_000 };
/** Requests whose prompts have the same length, so each costs the same and has the same estimate. */
const requests = (n, prefix) => Array.from({ length: n }, (_, i) => ({ custom_id: `${prefix}${i}`,
  params: { model: 'claude-haiku-4-5', max_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${100 + i}.` }] } }));
/** The library's estimate of one of them: ceil(22 characters / 4) in, max_tokens out. */
const ESTIMATE = Math.ceil('Summarize document 100.'.length / 4) * HAIKU.input + 16 * HAIKU.output;
const pico = (usd) => Math.round(usd * 1e12);
/** A model the Worker allows that the price table does not know. */
const UNPRICED = 'acme-unpriced-1';

describe('worker: dollars in /v1/batches', { timeout: 60_000 }, () => {
  let worker;
  let base;
  /** What one of the requests above costs at the simulator, pico-dollars (from the first test). */
  let each;
  before(async () => {
    // UNPRICED is allowed here (EDGEBATCH_MODELS) but has no price in the library's table.
    worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_PROVIDER_POLL_MS: '200', EDGEBATCH_PROVIDER_TURNAROUND_MS: '0',
      EDGEBATCH_MODELS: `claude-haiku-4-5,claude-opus-4-5,gpt-4o-mini,${UNPRICED}` });
    base = worker.url;
  });
  after(async () => {
    await worker?.dispose();
  });

  test('every result line carries its usd; the view\'s cost is the exact sum of its lines', async () => {
    const sim = await simSession(base, FAST_SIM);
    const reqs = requests(30, 'u');
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 30);
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    for (const l of lines) {
      const { inputTokens, outputTokens } = l.edgebatch.usage;
      assert.equal(pico(l.edgebatch.usd), inputTokens * HAIKU.input + outputTokens * HAIKU.output, JSON.stringify(l.edgebatch));
      assert.equal(l.edgebatch.route, 'realtime');
    }
    const sum = lines.reduce((s, l) => s + pico(l.edgebatch.usd), 0);
    assert.deepEqual(ended.edgebatch.cost, { usd: sum / 1e12, usdIfRealtime: sum / 1e12 });
    const costs = new Set(lines.map((l) => pico(l.edgebatch.usd)));
    assert.equal(costs.size, 1, 'requests of one length cost the same');
    [each] = costs;
  });

  test('maxCostUsd: requests start while spent + the next estimate fits; the rest end canceled with kind cost_cap', async () => {
    assert.ok(each, 'the first test measured a request\'s cost');
    const sim = await simSession(base, FAST_SIM);
    // Room for the estimate after 9.5 requests' worth: requests 1..10 start (spent 9 each + the
    // estimate fits), the 11th does not (spent 10 each + the estimate passes the cap). One at a
    // time, so that the count is exact whatever the estimate is next to the real cost.
    const maxCostUsd = (ESTIMATE + 9.5 * each) / 1e12;
    const k = Math.floor((pico(maxCostUsd) - ESTIMATE) / each) + 1;
    assert.equal(k, 10);
    const reqs = requests(40, 'c');
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { maxCostUsd, concurrency: 1 }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: k, errored: 0, canceled: 40 - k, expired: 0 });
    assert.equal(pico(ended.edgebatch.cost.usd), k * each);
    assert.ok(pico(ended.edgebatch.cost.usd) + ESTIMATE > pico(maxCostUsd), 'stopped only when the next could pass the cap');
    console.log(`# maxCostUsd $${maxCostUsd}: a request costs ${each / 1e12}, estimated ${ESTIMATE / 1e12}: ${k} ran, ${40 - k} cost_cap`);
    assert.equal(ended.edgebatch.cost.maxCostUsd, maxCostUsd);
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    const capped = lines.filter((l) => l.result.type === 'canceled');
    assert.equal(capped.length, 40 - k);
    for (const l of capped) {
      assert.equal(l.result.error.kind, 'cost_cap');
      assert.equal(l.result.error.retryable, false);
      assert.match(l.result.error.message, /^cost cap reached: this batch's maxCostUsd is \$0\.\d+, \$0\.\d+ is spent/);
    }
    const dollars = (p) => (p / 1e12).toFixed(12).replace(/\.?0+$/, '');
    assert.equal(capped[0].result.error.message, `cost cap reached: this batch's maxCostUsd is $${dollars(pico(maxCostUsd))}, ` +
      `$${dollars(k * each)} is spent and the next request could cost more than the $${dollars(pico(maxCostUsd) - k * each)} left`);
  });

  test('maxCostUsd far above the batch\'s cost: both consumers run it at once (a slice each), every request once, within the cap', async () => {
    // 100 ms a request: the two work-queue shards' runs overlap. One run holding the whole rest
    // at a time (as before slices) never had more than its 6 connections in flight.
    const sim = await simSession(base, { ...FAST_SIM, latency: { baseMs: 100, perOutputTokenMs: 0, jitterMs: 0 } });
    const reqs = requests(96, 's');
    const maxCostUsd = 5;
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { maxCostUsd }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 30_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 96, JSON.stringify(ended.request_counts));
    exactlyOnce(await results(base, batch.id), reqs.map((r) => r.custom_id));
    const stats = await sessionStats(sim.baseUrl);
    console.log(`# maxCostUsd $${maxCostUsd}, 96 requests on 2 consumers: at most ${stats.maxInFlight} in flight, $${ended.edgebatch.cost.usd} spent`);
    assert.ok(stats.maxInFlight > 6, `at most ${stats.maxInFlight} requests in flight: one consumer at a time`);
    assert.ok(ended.edgebatch.cost.usd <= maxCostUsd);
  });

  test('a slice too small for a fallback\'s dearer model: those requests run on the whole rest, none canceled', async () => {
    // Haiku always overloaded: every request falls back to Opus with max_tokens 1,024, whose
    // estimate is more than a claim's slice (its requests' Haiku bounds) holds.
    const sim = await simSession(base, { ...FAST_SIM, faults: { byModel: { 'claude-haiku-4-5': { overloaded: 1 } } } });
    const reqs = requests(12, 'f');
    const maxCostUsd = 10;
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl },
      options: { maxCostUsd, maxRetries: 3, fallbacks: [{ model: 'claude-opus-4-5', overrides: { max_tokens: 1024 } }] }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 30_000, everyMs: 100 });
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 12, errored: 0, canceled: 0, expired: 0 });
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    for (const l of lines) assert.equal(l.result.message.model, 'claude-opus-4-5', JSON.stringify(l.edgebatch));
    assert.ok(ended.edgebatch.cost.usd > 0 && ended.edgebatch.cost.usd <= maxCostUsd);
  });

  test('an OpenAI provider batch with errors: its errored lines run realtime at the full price, the rest at half; the sums are the lines\'', async () => {
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 200, spreadMs: 400, errorRate: 0.3 } });
    const reqs = Array.from({ length: 40 }, (_, i) => ({ custom_id: `e${i}`,
      params: { model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${100 + i}.` }] } }));
    const batch = await submit(base, { provider: { name: 'openai', baseUrl: sim.baseUrl }, options: { completionWindow: '1h' }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 40);
    const failed = ended.edgebatch.providerBatches[0].counts.failed;
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    const realtime = lines.filter((l) => l.edgebatch.route === 'realtime');
    console.log(`# OpenAI errorRate 0.3: ${failed} failed in the provider batch (error file), ${realtime.length} retried realtime`);
    assert.ok(failed > 0);
    assert.equal(realtime.length, failed, 'exactly the failed lines ran realtime');
    for (const l of lines) {
      const { inputTokens, outputTokens } = l.edgebatch.usage;
      const full = inputTokens * 150_000 + outputTokens * 600_000; // gpt-4o-mini: $0.15 / $0.60 per MTok
      assert.equal(pico(l.edgebatch.usd), l.edgebatch.route === 'realtime' ? full : Math.round(full / 2));
    }
    const sum = (f) => lines.reduce((s, l) => s + f(l), 0) / 1e12;
    assert.deepEqual(ended.edgebatch.cost, { usd: sum((l) => pico(l.edgebatch.usd)),
      usdIfRealtime: sum((l) => pico(l.edgebatch.usdIfRealtime ?? l.edgebatch.usd)) });
    assert.ok(ended.edgebatch.cost.usd < ended.edgebatch.cost.usdIfRealtime);
  });

  test('bad maxCostUsd values are 400s naming it', async () => {
    const sim = await simSession(base, FAST_SIM);
    const provider = { name: 'anthropic', baseUrl: sim.baseUrl };
    for (const v of [0, -1, '1', null, 1e10, true]) {
      const r = await api(base, 'POST', '/v1/batches', { body: { provider, options: { maxCostUsd: v }, requests: requests(2, 'b') } });
      assert.equal(r.status, 400, r.text);
      assert.match(r.json.error.message, /options\.maxCostUsd must be a number of dollars above 0/);
    }
  });

  test('under maxCostUsd, a request of an unpriced model is a 400 at create naming it and its model; without a cap it is taken', async () => {
    const sim = await simSession(base, FAST_SIM);
    const provider = { name: 'anthropic', baseUrl: sim.baseUrl };
    const reqs = requests(4, 'p');
    reqs[2].params.model = UNPRICED;
    const message = `options.maxCostUsd needs a price for the model "${UNPRICED}", and the price table has none (a batch with a dollar cap runs priced models only)`;
    for (const options of [{ maxCostUsd: 1 }, { maxCostUsd: 1, completionWindow: '1h' }]) {
      const r = await api(base, 'POST', '/v1/batches', { body: { provider, options, requests: reqs } });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.message, `requests[2].params.model: ${message}`);
    }
    // NDJSON: the header line first, so the request is line 4.
    const ndjson = [{ provider, options: { maxCostUsd: 1 } }, ...reqs].map((l) => JSON.stringify(l)).join('\n');
    const r = await api(base, 'POST', '/v1/batches', { raw: ndjson, type: 'application/x-ndjson' });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.message, `line 4.params.model: ${message}`);
    // The priced ones alone under the cap, and all of them without one, are taken.
    const priced = await submit(base, { provider, options: { maxCostUsd: 1 }, requests: reqs.filter((q) => q.params.model !== UNPRICED) });
    const uncapped = await submit(base, { provider, requests: reqs });
    for (const b of [priced, uncapped]) assert.equal((await api(base, 'POST', `/v1/batches/${b.id}/cancel`)).status, 200);
  });

  test('maxCostUsd with a provider batch: a chunk takes the requests whose bounds fit, lines replace the holds, the rest end cost_cap', async () => {
    const sim = await simSession(base, { ...FAST_SIM, batches: { delayMs: 100, spreadMs: 100 } });
    const reqs = requests(24, 'p');
    // One request's bound at the batch price (token-limits.js sizeBound): a token per byte of its
    // JSON at haiku's dearest input rate ($2 / MTok, a 1-hour cache write), max_tokens out, half.
    const bound = Math.round((Buffer.byteLength(JSON.stringify(reqs[0].params)) * 2_000_000 + 16 * HAIKU.output) / 2);
    const capPico = Math.floor(5.5 * bound);
    const maxCostUsd = capPico / 1e12;
    const batch = await submit(base, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { maxCostUsd, completionWindow: '1h' }, requests: reqs });
    const ended = await waitEnded(base, batch.id, { timeoutMs: 20_000, everyMs: 100 });
    const lines = await results(base, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    const served = lines.filter((l) => l.result.type === 'succeeded');
    assert.ok(served.every((l) => l.edgebatch.route === 'provider_batch'), 'none ran realtime');
    const costs = new Set(served.map((l) => pico(l.edgebatch.usd)));
    assert.equal(costs.size, 1, 'requests of one length cost the same');
    const [each] = costs;
    // The rule, run by hand: a chunk of what fits the cap less what is spent (nothing is held
    // between chunks: the next waits for the lines), until not one more bound fits.
    const chunks = [];
    for (let spent = 0, n = 0; ;) {
      const k = Math.min(reqs.length - n, Math.floor((capPico - spent) / bound));
      if (k === 0) break;
      chunks.push(k);
      n += k;
      spent += k * each;
    }
    const n = chunks.reduce((a, k) => a + k, 0);
    console.log(`# maxCostUsd ${maxCostUsd} = 5.5 bounds (${bound / 1e12} each), a line costs ${each / 1e12}: chunks ${chunks.join(', ')}, ${reqs.length - n} cost_cap`);
    assert.equal(chunks[0], 5);
    assert.ok(chunks.length > 1, 'later chunks use what the bounds over-estimated');
    assert.ok(n < reqs.length, 'the cap stops the batch');
    assert.deepEqual(ended.edgebatch.providerBatches.map((p) => p.items), chunks);
    assert.deepEqual(served.map((l) => l.custom_id).sort(), reqs.slice(0, n).map((r) => r.custom_id).sort(), 'the first n went');
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: n, errored: 0, canceled: reqs.length - n, expired: 0 });
    const spent = n * each;
    assert.equal(pico(ended.edgebatch.cost.usd), spent);
    assert.ok(spent <= capPico && capPico - spent < bound, 'within the cap, and not one more bound fits');
    assert.equal(ended.edgebatch.cost.heldUsd, undefined, 'nothing held once over');
    const dollars = (p) => (p / 1e12).toFixed(12).replace(/\.?0+$/, '');
    for (const l of lines.filter((x) => x.result.type === 'canceled')) {
      assert.deepEqual(l.result.error, { kind: 'cost_cap', retryable: false, message: `cost cap reached: this batch's maxCostUsd is $${dollars(capPico)}, ` +
        `$${dollars(spent)} is spent and the next request could cost more than the $${dollars(capPico - spent)} left` });
    }
  });
});
