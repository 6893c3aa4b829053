// The dollar ledger from JS, against the simulator over loopback: results carry `usd` (the
// reply's usage at its model's price), summarize().cost adds them exactly, maxCostUsd stops
// starting attempts with kind `cost_cap` and the documented message, and a bad `prices`
// entry throws naming the model and the field (docs/API.md, Cost).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BatchProcessor, pkg } from './load.mjs';
import { startSimServer } from '../../js/sim-server.mjs';

let sim;
before(async () => {
  sim = await startSimServer({ seed: 7, latency: { baseMs: 1, perOutputTokenMs: 0, jitterMs: 0 } });
});
after(() => sim?.close());

const anthropic = (extra = {}) => new BatchProcessor({
  concurrency: 1, maxRetries: 0, provider: { name: 'anthropic', apiKey: 'sk-ant-test', baseUrl: sim.url }, ...extra,
});
const request = (model, i, maxTokens = 200) => ({
  model, max_tokens: maxTokens, messages: [{ role: 'user', content: `question ${i}: say something` }],
});
// Dollars per MTok are pico-dollars per token / 1e6: the hand-computed pico-dollars.
const pico = (usage, inPerMTok, outPerMTok) => usage.inputTokens * inPerMTok * 1e6 + usage.outputTokens * outPerMTok * 1e6;

describe('cost', { timeout: 30_000 }, () => {
  test('results carry usd at the built-in price; summarize().cost adds them', async () => {
    const bp = anthropic();
    const requests = [0, 1, 2].map((i) => request('claude-haiku-4-5', i)).concat([request('sim-unpriced', 3)]);
    const results = await bp.run(requests);
    assert.ok(results.every((r) => r.ok), JSON.stringify(results));
    let want = 0;
    for (const r of results.slice(0, 3)) {
      const p = pico(r.usage, 1, 5); // claude-haiku-4-5: $1 in, $5 out
      assert.equal(r.usd, p / 1e12, JSON.stringify(r));
      want += p;
    }
    assert.equal(results[3].usd, undefined, 'no price, no usd');
    const { cost } = pkg.summarize(results);
    assert.equal(cost.usd, want / 1e12);
    assert.equal(cost.usdIfRealtime, cost.usd);
    assert.equal(cost.unpriced, 1);
    assert.deepEqual(Object.keys(cost.byModel), ['claude-haiku-4-5']);
    bp.free();
  });

  test('prices: a caller row wins; map() values that are SDK replies are priced too', async () => {
    const prices = { 'sim-unpriced': { inputPerMTok: 2, outputPerMTok: 10 } };
    const bp = anthropic({ prices });
    const [r] = await bp.run([request('sim-unpriced', 0)]);
    assert.equal(r.usd, pico(r.usage, 2, 10) / 1e12);
    const mapped = await bp.map([0], async (i) => {
      const res = await fetch(`${sim.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify(request('sim-unpriced', i)),
      });
      return res.json();
    });
    const u = mapped[0].value.usage;
    assert.equal(mapped[0].usd, (u.input_tokens * 2e6 + u.output_tokens * 10e6) / 1e12);
    bp.free();
  });

  test('maxCostUsd stops starting attempts before the cap would be passed', async () => {
    // Each attempt is estimated at its input plus 1,000 output tokens at $5 / MTok: ≥ $0.005.
    // The simulator's replies cost ~$0.001, so a few start before spent + $0.005 passes $0.008.
    const bp = anthropic({ maxCostUsd: 0.008 });
    const results = await bp.run([...Array(10).keys()].map((i) => request('claude-haiku-4-5', i, 1000)));
    assert.equal(results.length, 10, 'every item gets one result');
    const capped = results.filter((r) => !r.ok);
    assert.ok(capped.length > 0 && capped.length < 10, JSON.stringify(results.map((r) => r.usd ?? r.error)));
    const first = results.findIndex((r) => !r.ok);
    assert.ok(results.slice(first).every((r) => !r.ok), 'one at a time: the capped items are the last ones');
    const spent = pkg.summarize(results).cost.usd;
    assert.ok(spent <= 0.008, `spent ${spent}`);
    assert.ok(spent + 0.005 > 0.008, 'it stopped because the next attempt could pass the cap');
    for (const r of capped) {
      assert.equal(r.error.kind, 'cost_cap');
      assert.equal(r.error.retryable, false);
      assert.equal(r.attempts, 0);
      assert.match(r.error.message, /^cost cap reached: this call's maxCostUsd is \$0\.008, \$0\.\d+ is spent and the next attempt could cost up to \$0\.005\d*$/);
    }
    // Per call: a call's own maxCostUsd wins; below one attempt's estimate nothing starts.
    const none = await bp.run([request('claude-haiku-4-5', 9, 1000)], { maxCostUsd: 0.001 });
    assert.equal(none[0].error.kind, 'cost_cap');
    assert.equal(none[0].attempts, 0);
    // Under a cap, a request whose model has no price fails at once.
    const [unpriced] = await bp.run([request('sim-unpriced', 0)]);
    assert.equal(unpriced.error.kind, 'invalid');
    assert.equal(unpriced.error.message, 'maxCostUsd needs a price for the model "sim-unpriced": add it to the processor\'s prices');
    bp.free();
  });

  test('bad prices and caps throw naming the model and the field', () => {
    const cases = [
      [{ prices: { 'my-model': { inputPerMTok: 1 } } }, TypeError, 'prices["my-model"].outputPerMTok must be a number in 0..=1000000, got undefined'],
      [{ prices: { 'my-model': { inputPerMTok: 1, outputPerMTok: -2 } } }, RangeError, 'prices["my-model"].outputPerMTok must be a number in 0..=1000000, got -2'],
      [{ prices: { m: { inputPerMTok: 1, outputPerMTok: 1, batchDiscount: 1.5 } } }, RangeError, 'prices["m"].batchDiscount must be a number in 0..=1, got 1.5'],
      [{ prices: { m: { inputPerMtok: 1 } } }, TypeError, 'unknown option "prices["m"].inputPerMtok"'],
      [{ prices: { m: 3 } }, TypeError, 'prices["m"] must be an object, got 3'],
      [{ prices: [] }, TypeError, 'prices must be an object of names to objects, got a value of type object'],
      [{ maxCostUsd: -1 }, RangeError, 'maxCostUsd must be a number in 0..=1000000000, got -1'],
      [{ maxCostUsd: '5' }, TypeError, 'maxCostUsd must be a number in 0..=1000000000, got "5"'],
    ];
    for (const [options, cls, message] of cases) {
      assert.throws(() => new BatchProcessor(options), (e) => {
        assert.ok(e instanceof cls, `${message}: ${e?.constructor?.name}`);
        assert.equal(e.message, message);
        return true;
      });
    }
  });
});
