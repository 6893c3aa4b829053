// options.fallbacks on the Worker (issue 26), on real workerd (Miniflare): alternatives name the
// Worker's upstreams (EDGEBATCH_UPSTREAMS adds one here, `backup`), keys stay server-side, each
// alternative asks its own limiter. Two simulator sessions are two upstreams: the first choice's
// overloads (faults.byModel), the backup's is healthy; every item succeeds, and `servedBy` says
// who answered, checked against each session's own count of what it answered. Then the 400s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FAKE_ANTHROPIC_KEY, messages, ndjson, postBatch, startWorker } from './harness.mjs';
import { redactor, secretsOf } from '../src/auth.js';
import { api, requests, ROOMY_TOKEN, sessionStats, simSession, submit, waitEnded, results } from './batches-client.mjs';

const BACKUP_KEY = 'sk-backup-FAKE-secret-7d1e0c9a';
const UPSTREAMS = {
  backup: { api: 'anthropic', baseUrl: 'https://backup.example.com', keyVar: 'BACKUP_API_KEY' },
  'openai-eu': { api: 'openai', baseUrl: 'https://eu.example.com', keyVar: 'OPENAI_EU_KEY' },
};
const MODELS = 'claude-haiku-4-5,claude-sonnet-4-5,gpt-4o-mini';
/** Quick replies, no other faults: only the overload under test. */
const QUIET = { minuteMs: 1000, requestsPerMinute: 10_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 }, faults: {} };
/** The first choice: most requests for claude-haiku-4-5 answer 529 overloaded_error. */
const OVERLOADED = { ...QUIET, seed: 3, faults: { byModel: { 'claude-haiku-4-5': { overloaded: 0.7 } } } };
/** A first choice that answers nothing but 529s. */
const DOWN = { ...QUIET, faults: { byModel: { 'claude-haiku-4-5': { overloaded: 1 } } } };

describe('worker: options.fallbacks', { timeout: 90_000 }, () => {
  let worker;
  const seen = [];
  const keep = (r) => {
    seen.push(r.text);
    return r;
  };

  before(async () => {
    worker = await startWorker({
      ...ROOMY_TOKEN,
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_UPSTREAMS: JSON.stringify(UPSTREAMS),
      EDGEBATCH_MODELS: MODELS,
      BACKUP_API_KEY: BACKUP_KEY,
    });
  });
  after(async () => {
    await worker?.dispose();
    // No key in any answer or log line (the sessions get a placeholder; a key must not leak anyway).
    for (const text of [...seen, worker?.logs() ?? '']) {
      assert.ok(!text.includes(BACKUP_KEY) && !text.includes(FAKE_ANTHROPIC_KEY), 'a key leaked');
    }
  });

  /** Two upstreams: the first choice (overloaded) and the backup (healthy), each a session. */
  const sessions = async () => [await simSession(worker.url, OVERLOADED), await simSession(worker.url, QUIET)];
  /** What each session answered with a 200. */
  const limiterOf = (s) => ({ stats: async () => (await limiterOfWith(worker)(s)).stats() });
  const answered = async (s) => (await sessionStats(s.baseUrl)).byStatus['200'] ?? 0;

  test('/v1/batch across two upstreams: every item succeeds, servedBy names who answered', async () => {
    const [first, backup] = await sessions();
    const N = 24;
    const r = keep(await postBatch(worker.url, {
      provider: { name: 'anthropic', baseUrl: first.baseUrl },
      items: messages(N),
      options: { maxRetries: 3, fallbacks: [{ provider: { name: 'backup', baseUrl: backup.baseUrl } }] },
    }));
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text);
    const { summary } = lines.pop();
    assert.equal(lines.length, N);
    assert.deepEqual(lines.filter((l) => !l.ok), [], 'no item failed');
    const by = countBy(lines.map((l) => l.servedBy));
    // servedBy agrees with what each upstream says it answered.
    assert.equal(by.get('0 anthropic') ?? 0, await answered(first), JSON.stringify([...by]));
    assert.equal(by.get('1 backup') ?? 0, await answered(backup), JSON.stringify([...by]));
    assert.ok((by.get('1 backup') ?? 0) > 0 && (by.get('0 anthropic') ?? 0) > 0, `both answered: ${JSON.stringify([...by])}`);
    assert.equal(summary.failed, 0);
    console.log(`/v1/batch: ${N} items, served by (alternative upstream) ${JSON.stringify(Object.fromEntries(by))}, ` +
      `first choice's 529s ${(await sessionStats(first.baseUrl)).byStatus['529']}`);
  });

  test('a stored batch across two upstreams: every item succeeds, each alternative through its own limiter', async () => {
    const [first, backup] = await sessions();
    const N = 30;
    const ids = Array.from({ length: N }, (_, i) => `r${i}`);
    const t0 = Date.now();
    const batch = await submit(worker.url, {
      provider: { name: 'anthropic', baseUrl: first.baseUrl },
      options: { maxRetries: 3, fallbacks: [{ provider: { name: 'backup', baseUrl: backup.baseUrl } }] },
      requests: requests(N),
    });
    const view = await waitEnded(worker.url, batch.id, { timeoutMs: 60_000 });
    const lines = await results(worker.url, batch.id);
    keep({ text: JSON.stringify(lines) });
    assert.equal(view.request_counts.succeeded, N, JSON.stringify(view.request_counts));
    assert.deepEqual(lines.map((l) => l.custom_id).sort(), [...ids].sort());
    const by = countBy(lines.map((l) => l.result.servedBy));
    assert.equal(by.get('0 anthropic') ?? 0, await answered(first), JSON.stringify([...by]));
    assert.equal(by.get('1 backup') ?? 0, await answered(backup), JSON.stringify([...by]));
    assert.ok((by.get('1 backup') ?? 0) > 0, `the backup answered: ${JSON.stringify([...by])}`);
    // Every attempt went through the limiter of the upstream it was sent to, and came back to it.
    for (const s of [first, backup]) {
      const stats = await limiterOf(s).stats();
      assert.equal(stats.granted, (await sessionStats(s.baseUrl)).requests, `${s.baseUrl}: ${JSON.stringify(stats)}`);
      assert.equal(stats.inFlight, 0);
    }
    console.log(`stored batch: ${N} items in ${Date.now() - t0} ms, served by ${JSON.stringify(Object.fromEntries(by))}, ` +
      `first choice's 529s ${(await sessionStats(first.baseUrl)).byStatus['529']}`);
  });

  test('a stored batch whose first choice is down and its limiter deferring: every item is served by the second, none waits', async () => {
    // The first choice answers only 529s, and its limiter (one of the batch's own: 2 requests a
    // minute) defers every ask after the first two, as an open breaker's cool-down does. Its
    // items move to the backup then, instead of the batch being given back to wait (the batch
    // view's edgebatch.waiting.reason "limiter").
    const [first, backup] = [await simSession(worker.url, DOWN), await simSession(worker.url, QUIET)];
    const N = 60;
    const t0 = Date.now();
    const batch = await submit(worker.url, {
      provider: { name: 'anthropic', baseUrl: first.baseUrl },
      options: { maxRetries: 3, limiterKey: 'first-down', rateLimit: { requestsPerMinute: 2 },
        fallbacks: [{ provider: { name: 'backup', baseUrl: backup.baseUrl } }] },
      requests: requests(N),
    });
    const waits = new Set();
    const view = await waitEnded(worker.url, batch.id, { timeoutMs: 30_000, onSample: (v) => v.edgebatch?.waiting && waits.add(v.edgebatch.waiting.reason) });
    const lines = await results(worker.url, batch.id);
    keep({ text: JSON.stringify(lines) });
    assert.equal(view.request_counts.succeeded, N, JSON.stringify(view.request_counts));
    assert.deepEqual([...countBy(lines.map((l) => l.result.servedBy))], [['1 backup', N]]);
    assert.equal(await answered(backup), N);
    assert.deepEqual([...waits], [], 'no item was given back to wait');
    const stats = await sessionStats(first.baseUrl);
    assert.ok((stats.byStatus['529'] ?? 0) <= 2, `only the limiter's two grants reached the first choice: ${JSON.stringify(stats.byStatus)}`);
    console.log(`stored batch, first choice down and deferring: ${N} items in ${Date.now() - t0} ms, first choice's 529s ${stats.byStatus['529']}`);
  });

  test('/v1/batch, another model on the same upstream: the overloaded model\'s items are answered by the other', async () => {
    const [first] = await sessions();
    const N = 12;
    const r = keep(await postBatch(worker.url, {
      provider: { name: 'anthropic', baseUrl: first.baseUrl },
      items: messages(N),
      options: { maxRetries: 3, fallbacks: [{ model: 'claude-sonnet-4-5', overrides: { max_tokens: 32 } }] },
    }));
    assert.equal(r.status, 200, r.text);
    const lines = ndjson(r.text).slice(0, -1);
    assert.deepEqual(lines.filter((l) => !l.ok), [], 'no item failed');
    const models = countBy(lines.map((l) => ({ ...l.servedBy, upstream: l.servedBy.model })));
    assert.equal((models.get('0 claude-haiku-4-5') ?? 0) + (models.get('1 claude-sonnet-4-5') ?? 0), N, JSON.stringify([...models]));
    assert.ok((models.get('1 claude-sonnet-4-5') ?? 0) > 0, JSON.stringify([...models]));
    assert.equal(lines.find((l) => l.servedBy.alternative === 1).servedBy.upstream, 'anthropic');
  });

  test('bad fallbacks are a 400 naming what is wrong', async () => {
    const [first] = await sessions();
    const post = (fallbacks, extra = {}) => postBatch(worker.url, {
      provider: { name: 'anthropic', baseUrl: first.baseUrl },
      items: messages(1),
      options: { fallbacks, ...extra },
    });
    const cases = [
      [[], /options\.fallbacks must be a non-empty array/],
      [[{ provider: { name: 'nowhere' } }], /options\.fallbacks\[0\]\.provider\.name must be one of anthropic, openai, backup, openai-eu/],
      [[{ provider: { name: 'backup' } }, { provider: { name: 'backup' } }], /options\.fallbacks\[1\] repeats options\.fallbacks\[0\]/],
      [[{ provider: { name: 'anthropic', baseUrl: first.baseUrl } }], /options\.fallbacks\[0\] repeats the first choice/],
      [[{ model: 'claude-opus-4-1' }], /options\.fallbacks\[0\]\.model must be one of claude-haiku-4-5, claude-sonnet-4-5, gpt-4o-mini \(EDGEBATCH_MODELS\)/],
      [[{ provider: { name: 'openai-eu' } }], /options\.fallbacks\[0\]\.provider\.name "openai-eu" is an openai upstream; the first choice's API is anthropic/],
      [[{ provider: { name: 'backup', baseUrl: 'https://evil.example' } }], /options\.fallbacks\[0\]\.provider\.baseUrl is not allowed/],
      [[{ provider: { name: 'backup', apiKey: 'sk-mine' } }], /options\.fallbacks\[0\]\.provider\.apiKey is not accepted/],
      [[{ model: 'claude-sonnet-4-5', overrides: { max_tokens: 5000 } }], /options\.fallbacks\[0\]\.overrides\.max_tokens must be an integer in 1\.\.=1024/],
      [[{}], /options\.fallbacks\[0\] must name a provider or a model/],
      // The item asks for the model an alternative on the same upstream sends: a cycle.
      [[{ model: 'claude-haiku-4-5' }], /items\[0\]\.model "claude-haiku-4-5" is options\.fallbacks\[0\]'s model on the same upstream/],
    ];
    for (const [fallbacks, message] of cases) {
      const r = keep(await post(fallbacks));
      assert.equal(r.status, 400, `${JSON.stringify(fallbacks)}: ${r.text}`);
      assert.match(JSON.parse(r.text).error.message, message);
    }
    const r = keep(await postBatch(worker.url, { items: messages(1), options: { fallbackAfterMs: 100 } }));
    assert.equal(r.status, 400);
    assert.match(JSON.parse(r.text).error.message, /options\.fallbackAfterMs needs options\.fallbacks/);
    // The same rules for a stored batch, and a key is never taken there.
    for (const [fallbacks, message] of [
      [[{ provider: { name: 'nowhere' } }], /options\.fallbacks\[0\]\.provider\.name must be one of/],
      [[{ provider: { name: 'backup', apiKey: 'sk-mine' } }], /options\.fallbacks\[0\]\.provider\.apiKey is not accepted by \/v1\/batches/],
    ]) {
      const s = keep(await api(worker.url, 'POST', '/v1/batches', { body: { options: { fallbacks }, requests: requests(1) } }));
      assert.equal(s.status, 400, s.text);
      assert.match(s.json.error.message, message);
    }
  });
});

describe('worker: EDGEBATCH_UPSTREAMS', { timeout: 30_000 }, () => {
  test("every route's secrets include the keys of the operator's upstreams", () => {
    const env = { EDGEBATCH_UPSTREAMS: JSON.stringify(UPSTREAMS), BACKUP_API_KEY: BACKUP_KEY, OPENAI_EU_KEY: 'sk-eu-FAKE-0a1b2c3d4e' };
    const redact = redactor(secretsOf(env));
    assert.equal(redact(`keys ${BACKUP_KEY} and sk-eu-FAKE-0a1b2c3d4e`), 'keys [redacted] and [redacted]');
  });

  test('a malformed var is a 500 configuration_error naming the entry', async () => {
    const worker = await startWorker({ EDGEBATCH_UPSTREAMS: JSON.stringify({ backup: { api: 'anthropic', baseUrl: 'http://plain.example', keyVar: 'K' } }) });
    try {
      const r = await postBatch(worker.url, { items: messages(1) });
      assert.equal(r.status, 500, r.text);
      const { error } = JSON.parse(r.text);
      assert.equal(error.type, 'configuration_error');
      assert.match(error.message, /EDGEBATCH_UPSTREAMS\["backup"\]\.baseUrl must be an https:\/\/ URL/);
    } finally {
      await worker.dispose();
    }
  });
});

/**
 * The account limiter of a simulator session (batches/limiter.js limiterName: the API, the base
 * URL and the key the Worker sends it, the simulator's placeholder).
 */
function limiterOfWith(worker) {
  return async (session) => {
    const ns = await worker.mf.getDurableObjectNamespace('LIMITER');
    const hash = createHash('sha256').update(`anthropic\nhttp://sim.edgebatch.internal/s/${session.id}\nsim-key`).digest('hex');
    return ns.get(ns.idFromName(`key:anthropic:${hash.slice(0, 32)}`));
  };
}

/** Counts of `servedBy` by "<alternative> <upstream>". */
function countBy(served) {
  const by = new Map();
  for (const s of served) {
    assert.ok(s, 'every result carries servedBy');
    const k = `${s.alternative} ${s.upstream}`;
    by.set(k, (by.get(k) ?? 0) + 1);
  }
  return by;
}
