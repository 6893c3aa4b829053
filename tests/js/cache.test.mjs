// cacheAware against the simulator's prompt cache over loopback: requests sharing a cached
// system prompt write it once and read it after (the rest of the group waits for the first
// reply's headers); `cacheAware: false` fans them out and every one writes. The dollars
// follow (docs/API.md, Prompt caching).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BatchProcessor, pkg } from './load.mjs';
import { startSimServer } from '../../js/sim-server.mjs';

let sim;
before(async () => {
  sim = await startSimServer({ seed: 3, latency: { baseMs: 30, perOutputTokenMs: 0, jitterMs: 0 } });
});
after(() => sim?.close());

// 3,000 tokens of system prompt (4 characters a token), marked for caching.
const system = [{ type: 'text', text: 'rule '.repeat(2400), cache_control: { type: 'ephemeral' } }];
const request = (i) => ({
  model: 'claude-sonnet-4-5', max_tokens: 20, system, messages: [{ role: 'user', content: `question ${i}` }],
});

async function run(options) {
  const before = sim.sim.stats();
  const bp = new BatchProcessor({
    concurrency: 8, maxRetries: 0, provider: { name: 'anthropic', apiKey: 'sk-ant-test', baseUrl: sim.url }, ...options,
  });
  // 6 share the prompt; 2 plain requests need no group.
  const plain = [0, 1].map((i) => ({ model: 'claude-sonnet-4-5', max_tokens: 20, messages: [{ role: 'user', content: `plain ${i}` }] }));
  const results = await bp.run([...[0, 1, 2, 3, 4, 5].map(request), ...plain]);
  bp.free();
  assert.ok(results.every((r) => r.ok), JSON.stringify(results.map((r) => r.error)));
  const stats = sim.sim.stats();
  return {
    results,
    writes: stats.cacheWriteTokens - before.cacheWriteTokens,
    reads: stats.cacheReadTokens - before.cacheReadTokens,
  };
}

describe('cacheAware', { timeout: 30_000 }, () => {
  test('one write, then reads; off: every request writes, at a higher cost', async () => {
    // A fresh prefix per run: the simulator's cache outlives a call.
    system[0].text = `A${'rule '.repeat(2400).slice(1)}`;
    const aware = await run({});
    assert.deepEqual([aware.writes, aware.reads], [3000, 5 * 3000]);
    const reads = aware.results.slice(0, 6).map((r) => r.value.reply.usage.cache_read_input_tokens);
    assert.deepEqual(reads.sort(), [0, 3000, 3000, 3000, 3000, 3000]);
    system[0].text = `B${'rule '.repeat(2400).slice(1)}`;
    const naive = await run({ cacheAware: false });
    assert.deepEqual([naive.writes, naive.reads], [6 * 3000, 0]);
    const usd = (r) => pkg.summarize(r.results).cost.usd;
    // Sonnet 4.5: $3 / MTok in, $3.75 written, $0.30 read.
    assert.ok(usd(aware) < 0.4 * usd(naive), `${usd(aware)} vs ${usd(naive)}`);
  });
});
