// Fallbacks end to end (docs/API.md "Fallbacks"): run() with two alternatives against the
// simulator on loopback, the first choice's model overloaded (80% 529s) for a window while the
// second upstream is healthy; and the construction errors that name the bad entry.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor, pkg } from './load.mjs';
import { startSimServer } from '../../js/sim-server.mjs';

const LATENCY = { baseMs: 40, perOutputTokenMs: 0, jitterMs: 0, chunkMs: 15 };
const servers = [];
after(() => Promise.all(servers.map((s) => s.close())));

const item = (i) => ({ model: 'claude-busy', max_tokens: 100, messages: [{ role: 'user', content: `doc ${i}` }] });

test('no item fails while the first choice is overloaded; results say who served them', { timeout: 30000 }, async () => {
  // The window is in the simulator's clock (the host's performance.now()).
  const byModel = { 'claude-busy': { overloaded: 0.8, untilMs: performance.now() + 600 } };
  const first = await startSimServer({ latency: LATENCY, seed: 3, faults: { byModel } });
  const second = await startSimServer({ latency: LATENCY, seed: 4 });
  servers.push(first, second);
  const moves = [];
  let progress;
  const bp = new BatchProcessor({
    concurrency: 8,
    maxRetries: 2,
    provider: { name: 'anthropic', apiKey: 'sk-ant-first-key', baseUrl: first.url },
    fallbacks: [
      {
        provider: { name: 'anthropic', apiKey: 'sk-ant-second-key', baseUrl: second.url },
        model: 'claude-calm',
        overrides: { max_tokens: 64 },
      },
    ],
    onEvent: (e) => e.type === 'fallback' && moves.push(e),
    onProgress: (p) => (progress = p),
  });
  const results = await bp.run(Array.from({ length: 200 }, (_, i) => item(i)));
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], 'no item failed');
  const moved = results.filter((r) => r.servedBy.alternative === 1);
  const stayed = results.filter((r) => r.servedBy.alternative === 0);
  assert.ok(moved.length > 0 && stayed.length > 0, `${moved.length} moved, ${stayed.length} stayed`);
  for (const r of moved) {
    assert.deepEqual(r.servedBy, { provider: 'anthropic', model: 'claude-calm', alternative: 1 });
    assert.equal(r.value.reply.model, 'claude-calm');
    assert.ok(r.usage.outputTokens <= 64, 'the override went with it');
  }
  for (const r of stayed) assert.deepEqual(r.servedBy, { provider: 'anthropic', model: 'claude-busy', alternative: 0 });
  // A 529 moves at once: nothing waited out a retry on the overloaded model.
  assert.ok(results.every((r) => r.attempts <= 2), 'one failed attempt at most, then served');
  // Each move is an event and a progress count; the second upstream saw only moved items.
  assert.equal(progress.fallbacks, moves.length);
  assert.ok(moves.every((e) => e.from === 0 && e.to === 1));
  assert.equal(second.sim.stats().requests, moved.length);
  // Once the window was over, the first choice served again.
  assert.ok(stayed.some((r) => r.index >= 150), 'back to the first choice after the window');
  const s = pkg.summarize(results);
  assert.equal(s.byModel['claude-calm'].items, moved.length);
  assert.equal(s.byModel['claude-busy'].items, stayed.length);
  assert.ok(!JSON.stringify(results).includes('second-key'));
});

test('bad fallbacks throw at construction, naming the entry', () => {
  const provider = { name: 'anthropic', apiKey: 'sk-ant-x' };
  const bad = [
    [{ provider, fallbacks: [] }, TypeError, 'fallbacks must be a non-empty array of objects'],
    [{ provider, fallbacks: {} }, TypeError, 'fallbacks must be a non-empty array of objects'],
    [{ fallbacks: [{ model: 'm' }] }, TypeError, 'fallbacks needs a provider'],
    [{ provider, fallbacks: [{ model: 'm' }, {}] }, RangeError, 'fallbacks[1] must name a provider or a model (or both)'],
    [{ provider, fallbacks: [{ provider: { name: 'gemini' } }] }, RangeError, 'fallbacks[0].provider.name must be'],
    [{ provider, fallbacks: [{ provider: { name: 'openai' } }] }, RangeError, "fallbacks[0].provider.name must be \"anthropic\", the first choice's API"],
    [{ provider, fallbacks: [{ model: 'm', overrides: { max_tokens: -1 } }] }, RangeError, 'fallbacks[0].overrides.max_tokens must be an integer in 1..=10000000, got -1'],
    [{ provider, fallbacks: [{ model: 'm', overrides: { top_k: 1 } }] }, TypeError, 'unknown option "fallbacks[0].overrides.top_k"'],
    [{ provider, fallbacks: [{ model: 5 }] }, TypeError, 'fallbacks[0].model must be a string, got 5'],
    [{ provider, fallbackAfterMs: 1000 }, RangeError, 'fallbackAfterMs applies only with fallbacks'],
  ];
  for (const [options, type, message] of bad) {
    assert.throws(() => new BatchProcessor(options), (e) => e instanceof type && e.message.startsWith(message), message);
  }
  const secret = 'sk-ant-never-shown-123';
  assert.throws(
    () => new BatchProcessor({ provider, fallbacks: [{ provider: { name: 'anthropic', apiKey: 7 } }] }),
    (e) => e.message === 'fallbacks[0].provider.apiKey must be a string, got a value of type number',
  );
  assert.doesNotThrow(() => new BatchProcessor({ provider, fallbacks: [{ provider: { name: 'anthropic', apiKey: secret } }], fallbackAfterMs: 0 }));
});
