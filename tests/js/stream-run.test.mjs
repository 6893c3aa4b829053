// stream() without a task function: run()'s items (provider bodies, fetch specs), streamed.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { startServer } from '../support/server.mjs';
import { startSimServer } from '../../js/sim-server.mjs';

const T = { timeout: 20_000 };

describe('stream() with run items', T, () => {
  const servers = [];
  after(async () => Promise.all(servers.map((s) => s.close())));

  test('provider bodies stream in completion order, each once, with usage', async () => {
    const srv = await startSimServer({ seed: 2, latency: { baseMs: 5, perOutputTokenMs: 0.5, jitterMs: 20 } });
    servers.push(srv);
    const bp = new BatchProcessor({ concurrency: 4, provider: { name: 'anthropic', apiKey: 'sk-test', baseUrl: srv.url } });
    const bodies = Array.from({ length: 12 }, (_, i) => ({
      model: 'm', max_tokens: 20 + i * 10, messages: [{ role: 'user', content: `doc ${i}` }],
    }));
    const seen = [];
    for await (const r of bp.stream(bodies)) {
      assert.equal(r.ok, true, JSON.stringify(r.error));
      assert.equal(typeof r.value.text, 'string');
      assert.ok(r.usage.outputTokens > 0 && r.usage.inputTokens > 0);
      seen.push(r.index);
    }
    assert.deepEqual([...seen].sort((a, b) => a - b), bodies.map((_, i) => i), 'every item exactly once');
    assert.notDeepEqual(seen, bodies.map((_, i) => i), 'completion order, not input order');
  });

  test('fetch specs with callOptions in second place; abort ends the stream with every item', async () => {
    const srv = await startServer();
    servers.push(srv);
    const ac = new AbortController();
    const bp = new BatchProcessor({ concurrency: 2 });
    const specs = [{ url: `${srv.url}/delay/10` }, { url: `${srv.url}/hang` }, { url: `${srv.url}/hang` }, { url: `${srv.url}/delay/10` }];
    setTimeout(() => ac.abort(), 200);
    const results = [];
    for await (const r of bp.stream(specs, { signal: ac.signal })) results.push(r);
    assert.equal(results.length, 4);
    const byIndex = Object.fromEntries(results.map((r) => [r.index, r]));
    assert.equal(byIndex[0].ok, true);
    assert.equal(byIndex[0].value.status, 200);
    assert.equal(byIndex[1].error.kind, 'aborted');
    assert.equal(byIndex[3].error.kind, 'aborted');
    assert.equal(byIndex[3].attempts, 0, 'never started: the hanging ones held both slots');
  });
});
