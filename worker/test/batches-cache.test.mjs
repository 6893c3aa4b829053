// Prompt caching in stored batches, on real workerd with the simulator: the consumers run the
// library's executor, so `cacheAware` (on by default) applies to each delivery's group of items:
// one request of a shared cached prefix goes first, the rest once its reply began, and they
// read the entry it wrote. The simulator's cache model (an entry readable only once its
// writer's reply began) and its stats say how many wrote and how many read. A completionWindow
// batch is warmed (one realtime primer per prefix group, the rest to the provider batch once
// it is done); `/v1/batch` takes `cacheAware` too.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './harness.mjs';
import { ROOMY_TOKEN, api, exactlyOnce, results, sessionStats, simSession, submit, waitEnded } from './batches-client.mjs';

// 100 ms to a reply's headers: long enough that requests sent together would all write.
const SIM = { seed: 9, minuteMs: 60_000, latency: { baseMs: 100, perOutputTokenMs: 0, jitterMs: 5 } };
// 1,250 tokens (the sim's 4 characters a token): over claude-sonnet-4-5's 1,024-token minimum.
const SYSTEM = 'You triage support tickets for a shop. '.repeat(130).slice(0, 5000);
const TOKENS = 1250;
const requests = (n) => Array.from({ length: n }, (_, i) => ({
  custom_id: `t${i}`,
  params: { model: 'claude-sonnet-4-5', max_tokens: 16,
    system: [{ type: 'text', text: SYSTEM, cache_control: { type: 'ephemeral' } }],
    messages: [{ role: 'user', content: `Ticket ${i}: where is my order?` }] },
}));

describe('worker: prompt caching in /v1/batches', { timeout: 60_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_MODELS: 'claude-sonnet-4-5,gpt-4o-mini',
      EDGEBATCH_PROVIDER_POLL_MS: '200', EDGEBATCH_PROVIDER_TURNAROUND_MS: '0' });
  });
  after(async () => {
    await worker?.dispose();
  });

  test('a stored batch sharing a cached system prompt writes it once per delivery and reads it for the rest', async () => {
    const N = 20;
    const sim = await simSession(worker.url, SIM);
    const reqs = requests(N);
    const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: reqs });
    const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 30_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, N);
    const lines = await results(worker.url, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    const usage = lines.map((l) => l.result.message.usage);
    const writes = usage.filter((u) => u.cache_creation_input_tokens === TOKENS).length;
    const reads = usage.filter((u) => u.cache_read_input_tokens === TOKENS).length;
    const stats = await sessionStats(sim.baseUrl);
    // The sim counted the same: every request admitted once, each a write or a read.
    assert.equal(stats.requests, N);
    assert.deepEqual([stats.cacheWriteTokens, stats.cacheReadTokens], [writes * TOKENS, reads * TOKENS]);
    assert.equal(writes + reads, N);
    // Each delivery (a queue message's claim of items) primes its group once: as many writes
    // as deliveries ran at the same moment, at most. Sent without the rule, every item of a
    // delivery in flight together (6 at once) would write.
    console.log(`# ${N} items: ${writes} cache writes, ${reads} reads`);
    assert.ok(writes >= 1 && writes <= 2, `${writes} writes`);
    assert.ok(reads >= N - 2, `${reads} reads`);
    // The same batch with options.cacheAware false: the items in flight together all write.
    const naive = await runBatch({ cacheAware: false });
    console.log(`# cacheAware false: ${naive.writes} cache writes, ${naive.reads} reads`);
    assert.ok(naive.writes > 2, `${naive.writes} writes`);
  });

  test('options.cacheTtl "1h" puts the 1-hour lifetime on the requests\' cache_control; the ledger prices 1-hour writes', async () => {
    const { lines, writes, reads } = await runBatch({ cacheTtl: '1h' });
    assert.equal(writes + reads, 20);
    // claude-sonnet-4-5, pico-dollars a token: $3 in, $15 out, $6 a 1-hour write, $0.30 a read per MTok.
    for (const l of lines) {
      const u = l.result.message.usage;
      const hour = u.cache_creation?.ephemeral_1h_input_tokens ?? 0;
      assert.equal(u.cache_creation?.ephemeral_5m_input_tokens ?? 0, 0, JSON.stringify(u));
      assert.equal(hour, u.cache_creation_input_tokens, JSON.stringify(u));
      const want = u.input_tokens * 3e6 + u.output_tokens * 15e6 + hour * 6e6 + u.cache_read_input_tokens * 3e5;
      assert.equal(Math.round(l.edgebatch.usd * 1e12), want, JSON.stringify(u));
    }
    assert.ok(lines.some((l) => l.result.message.usage.cache_creation.ephemeral_1h_input_tokens === TOKENS));
  });

  test('bad cacheAware / cacheTtl are 400s naming the option', async () => {
    const sim = await simSession(worker.url, SIM);
    for (const [options, text] of [
      [{ cacheAware: 'yes' }, /options\.cacheAware must be true or false/],
      [{ cacheTtl: '2h' }, /options\.cacheTtl must be "5m" or "1h", got "2h"/],
    ]) {
      const r = await api(worker.url, 'POST', '/v1/batches', { body: { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options, requests: requests(1) } });
      assert.equal(r.status, 400, r.text);
      assert.match(r.json.error.message, text);
    }
    const r = await api(worker.url, 'POST', '/v1/batches', { body: { provider: { name: 'openai', baseUrl: sim.baseUrl }, options: { cacheTtl: '1h' },
      requests: [{ custom_id: 'o', params: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] } }] } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /options\.cacheTtl applies to anthropic batches/);
  });

  test('a completionWindow batch is warmed: one realtime primer writes the entry, the provider batch reads it', async () => {
    // The provider runs the items 300-350 ms after the create: together, within the 100 ms
    // before a first writer's reply begins, so a cold batch writes the entry for most of them.
    const sim = { ...SIM, batches: { delayMs: 300, spreadMs: 50 } };
    const warm = await windowBatch(sim, {});
    const realtime = warm.lines.filter((l) => l.edgebatch.route === 'realtime');
    assert.deepEqual(realtime.map((l) => l.custom_id), ['t0'], 'the group\'s first item is its primer, served realtime');
    assert.equal(realtime[0].result.message.usage.cache_creation_input_tokens, TOKENS);
    // Warmed for a provider batch, the entry lives an hour (the requests named no lifetime).
    assert.deepEqual(realtime[0].result.message.usage.cache_creation, { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: TOKENS });
    const batched = warm.lines.filter((l) => l.edgebatch.route === 'provider_batch');
    assert.equal(batched.length, 19);
    assert.deepEqual(count(batched), { writes: 0, reads: 19 });
    assert.equal(warm.ended.edgebatch.providerBatches.length, 1);
    // The sim's realtime side wrote the entry once (the primer) and read it never.
    assert.deepEqual([warm.stats.cacheWriteTokens, warm.stats.cacheReadTokens], [TOKENS, 0], JSON.stringify(warm.stats));
    // The same batch with cacheAware false: no primer, and the provider batch writes the entry many times.
    const cold = await windowBatch(sim, { cacheAware: false });
    assert.ok(cold.lines.every((l) => l.edgebatch.route === 'provider_batch'));
    const c = count(cold.lines);
    const written = cold.lines.filter((l) => l.result.message.usage.cache_creation_input_tokens > 0);
    assert.ok(written.every((l) => l.result.message.usage.cache_creation.ephemeral_5m_input_tokens === TOKENS), 'cold: the default 5 minutes');
    console.log(`# 20 items to the provider batch: warmed 1 write (realtime) + 19 reads; cold ${c.writes} writes, ${c.reads} reads; ` +
      `usd warmed ${usd(warm.lines)}, cold ${usd(cold.lines)}`);
    assert.ok(c.writes >= 5, `${c.writes} writes`);
    assert.ok(usd(warm.lines) < usd(cold.lines));
  });

  test('/v1/batch takes options.cacheAware: on by default (one write), false sends them as they come; else a 400', async () => {
    const items = requests(12).map((r) => r.params);
    const run = async (options) => {
      // A session each: the entry of one run must not serve the next.
      const sim = await simSession(worker.url, SIM);
      const r = await api(worker.url, 'POST', '/v1/batch', { body: { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, items, options } });
      assert.equal(r.status, 200, r.text);
      const lines = r.text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.index !== undefined);
      assert.ok(lines.every((l) => l.ok), r.text.slice(0, 400));
      return count(lines.map((l) => ({ result: { message: l.value.reply } })));
    };
    assert.deepEqual(await run(undefined), { writes: 1, reads: 11 });
    const naive = await run({ cacheAware: false });
    assert.ok(naive.writes >= 5, `${naive.writes} writes`);
    const r = await api(worker.url, 'POST', '/v1/batch', { body: { provider: { name: 'anthropic' }, items, options: { cacheAware: 1 } } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /options\.cacheAware must be true or false, got 1/);
  });

  /** Lines' cache writes and reads of the whole prefix. */
  function count(lines) {
    const usage = lines.map((l) => l.result.message.usage);
    return { writes: usage.filter((u) => u.cache_creation_input_tokens === TOKENS).length, reads: usage.filter((u) => u.cache_read_input_tokens === TOKENS).length };
  }

  /** The lines' dollars. */
  function usd(lines) {
    return Math.round(lines.reduce((a, l) => a + l.edgebatch.usd, 0) * 1e6) / 1e6;
  }

  /** The 20-request batch with completionWindow and `options` on a sim session of `config`, to its end. */
  async function windowBatch(config, options) {
    const sim = await simSession(worker.url, config);
    const reqs = requests(20);
    const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options: { completionWindow: '1h', ...options }, requests: reqs });
    const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 30_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 20);
    const lines = await results(worker.url, batch.id);
    exactlyOnce(lines, reqs.map((r) => r.custom_id));
    return { ended, lines, stats: await sessionStats(sim.baseUrl) };
  }

  /** The 20-request batch with `options`, to its end: its lines, and the writes and reads they report. */
  async function runBatch(options) {
    const sim = await simSession(worker.url, SIM);
    const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, options, requests: requests(20) });
    const ended = await waitEnded(worker.url, batch.id, { timeoutMs: 30_000, everyMs: 100 });
    assert.equal(ended.request_counts.succeeded, 20);
    const lines = await results(worker.url, batch.id);
    const usage = lines.map((l) => l.result.message.usage);
    return { lines, writes: usage.filter((u) => u.cache_creation_input_tokens === TOKENS).length,
      reads: usage.filter((u) => u.cache_read_input_tokens === TOKENS).length };
  }
});
