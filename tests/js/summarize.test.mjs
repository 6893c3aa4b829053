// summarize() over map() results whose values are API replies (what the Anthropic and OpenAI
// SDKs return: a Message with `usage.input_tokens`, a ChatCompletion with
// `usage.prompt_tokens`): their usage counts, from the simulated API over real HTTP.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BatchProcessor, pkg } from './load.mjs';
import { startSimServer } from '../../js/sim-server.mjs';

let sim;
before(async () => {
  sim = await startSimServer({ seed: 5, latency: { baseMs: 1, perOutputTokenMs: 0, jitterMs: 0 } });
});
after(() => sim?.close());

const HEADERS = {
  '/v1/messages': { 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01' },
  '/v1/chat/completions': { authorization: 'Bearer sk-test' },
};

/** map() whose task returns the parsed reply, as an SDK call would. */
async function replies(path, prompts) {
  const bp = new BatchProcessor({ concurrency: 2, maxRetries: 0 });
  return bp.map(prompts, async (content, { signal }) => {
    const res = await fetch(`${sim.url}${path}`, {
      method: 'POST',
      signal,
      headers: { 'content-type': 'application/json', ...HEADERS[path] },
      body: JSON.stringify({ model: 'sim-1', max_tokens: 40, messages: [{ role: 'user', content }] }),
    });
    if (!res.ok) throw Object.assign(new Error(await res.text()), { status: res.status });
    return res.json();
  });
}

describe('summarize() of map() results', { timeout: 30_000 }, () => {
  test('counts the usage of Anthropic Message values (usage.input_tokens / output_tokens)', async () => {
    const results = await replies('/v1/messages', ['first prompt here', 'a second, longer prompt']);
    assert.ok(results.every((r) => r.ok && r.usage === undefined), JSON.stringify(results));
    const want = results.reduce((n, r) => [n[0] + r.value.usage.input_tokens, n[1] + r.value.usage.output_tokens], [0, 0]);
    assert.ok(want[0] > 0 && want[1] > 0);
    assert.deepEqual(pkg.summarize(results).usage, { inputTokens: want[0], outputTokens: want[1] });
  });

  test('counts the usage of OpenAI ChatCompletion values (usage.prompt_tokens / completion_tokens)', async () => {
    const results = await replies('/v1/chat/completions', ['hello there']);
    const [r] = results;
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(pkg.summarize(results).usage, {
      inputTokens: r.value.usage.prompt_tokens,
      outputTokens: r.value.usage.completion_tokens,
    });
  });

  test('values without a usable usage count nothing; failed items count nothing', async () => {
    const bp = new BatchProcessor({ maxRetries: 0 });
    const values = [{ usage: null }, { usage: 'lots' }, { usage: { input_tokens: -3, output_tokens: 'x' } }, 7, null];
    const results = await bp.map([...values, 'fail'], (v) => {
      if (v === 'fail') throw Object.assign(new Error('no'), { usage: { input_tokens: 100 } });
      return v;
    });
    const s = pkg.summarize(results);
    assert.equal(s.failed, 1);
    assert.deepEqual(s.usage, { inputTokens: 0, outputTokens: 0 });
  });
});
