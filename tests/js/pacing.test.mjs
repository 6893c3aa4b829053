// Pacing against the simulated API over real HTTP: header-driven pacing with no configured
// budget, the never-fits rejection, adaptive concurrency under overload, the circuit breaker.
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { eventLog, sleep } from './helpers.mjs';
import { startSimServer } from '../../js/sim-server.mjs';

const T = { timeout: 30_000 };

function requests(n, words = 8) {
  return Array.from({ length: n }, (_, i) => ({
    model: 'claude-test',
    max_tokens: 32,
    messages: [{ role: 'user', content: `Document ${i}: ${'lorem '.repeat(words)}` }],
  }));
}

describe('pacing against the simulator', T, () => {
  let srv;
  // Each test starts its own server; one whose test failed is closed here, so the process exits.
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
  });

  test('with no configured budget, the headers alone keep the batch out of 429s after the first reply', async () => {
    // 30 requests per 2 s "minute"; 70 requests: the budget runs out and must be paced.
    srv = await startSimServer({ seed: 7, minuteMs: 2000, requestsPerMinute: 30, latency: { baseMs: 20, jitterMs: 10 } });
    const log = eventLog();
    const bp = new BatchProcessor({
      concurrency: 8,
      maxRetries: 8,
      provider: { name: 'anthropic', apiKey: 'sk-test', baseUrl: srv.url },
      onEvent: log.onEvent,
    });
    const results = await bp.run(requests(70));
    assert.equal(results.filter((r) => r.ok).length, 70, 'every item succeeds');
    const firstReply = Math.min(...log.events.filter((e) => e.type === 'end').map((e) => e.atMs));
    const starts = new Map(log.events.filter((e) => e.type === 'start').map((e) => [`${e.index}:${e.attempt}`, e.atMs]));
    const late429 = log.events.filter((e) => e.type === 'end' && e.status === 429
      && starts.get(`${e.index}:${e.attempt}`) > firstReply);
    assert.deepEqual(late429, [], 'no request sent after the first reply met a 429');
    const stats = srv.sim.stats();
    assert.equal(stats.byStatus['200'], 70);
  });

  test('a request no budget can ever hold fails at once as invalid and is never sent', async () => {
    srv = await startSimServer({ seed: 1, latency: { baseMs: 5 } });
    const bp = new BatchProcessor({
      provider: { name: 'anthropic', apiKey: 'sk-test', baseUrl: srv.url },
      rateLimit: { inputTokensPerMinute: 50 },
    });
    const items = requests(3);
    items[1].messages[0].content = 'x'.repeat(4000); // ~1000 input tokens > 50
    const results = await bp.run(items);
    assert.equal(results[0].ok, true);
    assert.equal(results[2].ok, true);
    assert.equal(results[1].ok, false);
    assert.equal(results[1].error.kind, 'invalid');
    assert.equal(results[1].attempts, 0);
    assert.match(results[1].error.message, /input tokens.*budget of 50/);
    assert.equal(srv.sim.stats().requests, 2, 'the impossible request was never sent');
  });

  test('random 529s leave the concurrency; a server at capacity brings it down to what it serves (progress.limitReason says why); adaptive: false keeps it', async () => {
    srv = await startSimServer({ seed: 3, latency: { baseMs: 15, jitterMs: 5 }, faults: { rate529: 0.4 } });
    const seen = [];
    const options = { concurrency: 8, maxRetries: 10, backoff: { baseMs: 5, maxMs: 20 }, breaker: { failures: 0 } };
    const bp = new BatchProcessor({
      ...options,
      provider: { name: 'anthropic', apiKey: 'sk-test', baseUrl: srv.url },
      onProgress: (p) => seen.push([p.limit, p.limitReason]),
    });
    const results = await bp.run(requests(40));
    assert.ok(results.every((r) => r.ok), 'retries carry every item through');
    assert.deepEqual(seen[0], [8, 'configured']);
    assert.deepEqual(seen.at(-1), [8, 'configured'], 'random failures do not lower the limit');
    assert.ok(seen.every(([, why]) => why === 'configured' || why === 'held'), JSON.stringify(seen.filter(([, w]) => w !== 'configured')));
    await srv.close();

    // Serves 3 at once, 1 more slower, sheds the rest in 2 ms: concurrency 12 is too much.
    srv = await startSimServer({ seed: 3, latency: { baseMs: 100, jitterMs: 5, perOutputTokenMs: 0 }, capacity: 3, queue: 1, shedMs: 2 });
    const capped = [];
    const bp2 = new BatchProcessor({
      ...options,
      concurrency: 12,
      maxRetries: 30, // retries of shed requests are part of finding the capacity
      provider: { name: 'anthropic', apiKey: 'sk-test', baseUrl: srv.url },
      onProgress: (p) => capped.push([p.limit, p.limitReason]),
    });
    const r2 = await bp2.run(requests(60));
    assert.ok(r2.every((r) => r.ok));
    const [limit, why] = capped.at(-1);
    // Real sockets: our count of attempts in flight runs a little ahead of the server's (a
    // reply is sent before we have read it), so the knee may sit a level or two above 4.
    assert.ok(limit >= 3 && limit <= 6, `settled at ${limit} (${why}), about capacity + queue`);
    assert.ok(why === 'shedding' || why === 'probe', why);
    const st = srv.sim.stats();
    assert.ok(st.requests / 60 < 2.5, `${st.requests} requests for 60 items (${st.shed} shed; fixed: several per item)`);

    const fixed = [];
    const bp3 = new BatchProcessor({
      ...options, adaptive: false,
      provider: { name: 'anthropic', apiKey: 'sk-test', baseUrl: srv.url },
      onProgress: (p) => fixed.push(p.limit),
    });
    await bp3.run(requests(20));
    assert.ok(fixed.every((l) => l === 8), 'adaptive: false never moves the limit');
  });
});

describe('circuit breaker (map)', T, () => {
  test('a burst of failures sends on; a 2 s outage opens it: nothing is sent for the cool-down, items wait, not fail', async () => {
    const sent = [];
    const t0 = Date.now();
    const bp = new BatchProcessor({
      concurrency: 1,
      maxRetries: 100,
      adaptive: false,
      backoff: { baseMs: 50, maxMs: 50, jitter: 'none' },
      breaker: { failures: 3, cooldownMs: 300 },
    });
    const results = await bp.map([0, 1], async () => {
      const at = Date.now() - t0;
      sent.push(at);
      await sleep(5);
      if (at < 2100) throw new TypeError('fetch failed');
      return 'ok';
    });
    assert.ok(results.every((r) => r.ok), 'items waited out the outage');
    // Failures every ~55 ms for 2 s: no pause before the outage has lasted 2 s, then one.
    const gaps = sent.slice(1).map((t, i) => [sent[i], t - sent[i]]);
    const early = gaps.filter(([at]) => at < 1900);
    assert.ok(early.length >= 20 && early.every(([, g]) => g < 280), `sent on through the first 2 s: ${JSON.stringify(early)}`);
    assert.ok(gaps.some(([at, g]) => at >= 1900 && g >= 290), `then a cool-down: ${JSON.stringify(gaps.slice(-5))}`);
  });

  test('options are validated', () => {
    assert.throws(() => new BatchProcessor({ breaker: { failures: -1 } }), RangeError);
    assert.throws(() => new BatchProcessor({ breaker: { cooldown: 5 } }), /unknown option "breaker.cooldown"/);
    assert.throws(() => new BatchProcessor({ rateLimit: { rpm: 5 } }), /unknown option "rateLimit.rpm"/);
    assert.throws(() => new BatchProcessor({ rateLimit: { requestsPerMinute: 0 } }), RangeError);
    assert.throws(() => new BatchProcessor({ adaptive: 'yes' }), /adaptive must be a boolean, got "yes"/);
  });
});
