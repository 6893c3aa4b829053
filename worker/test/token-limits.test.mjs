// The TokenLimits Durable Object called directly over RPC (as /v1/batches' code calls it), on
// real workerd with SQLite storage: leases that expire and renew, grants and refunds of
// subrequests, usage records, refusals naming the limit, bad arguments; and the stored batches'
// form, acquirePart: the part of a claim that fits the hour, each item charged once; and the
// dollars per hour (EDGEBATCH_USD_PER_HOUR): holds, /v1/batch's 429, a stored batch waiting.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { TOKEN, messages, ndjson, postBatch, startWorker } from './harness.mjs';
import { ROOMY_TOKEN, api, requests, results, simSession, submit } from './batches-client.mjs';

let worker;
let ns;
before(async () => {
  worker = await startWorker({ EDGEBATCH_CONCURRENT_BATCHES: '2', EDGEBATCH_ITEMS_PER_HOUR: '50', EDGEBATCH_SUBREQUESTS_PER_HOUR: '40' });
  ns = await worker.mf.getDurableObjectNamespace('TOKEN_LIMITS');
});
after(() => worker?.dispose());

/** The RPC answers are proxies: JSON makes them plain values. */
const plain = async (p) => JSON.parse(JSON.stringify(await p));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('leases expire unless renewed, and a slot comes back when one does', { timeout: 30_000 }, async () => {
  const limits = ns.get(ns.idFromName('carol'));
  // Generous lease times: each call here crosses Miniflare's Node-side proxy.
  const short = await plain(limits.acquire({ items: 1, leaseMs: 3000 }));
  const long = await plain(limits.acquire({ items: 1, leaseMs: 3000 }));
  assert.equal(short.ok && long.ok, true);
  const full = await plain(limits.acquire({ items: 1 }));
  assert.deepEqual([full.ok, full.limit, full.retryAfterMs], [false, 'concurrent_batches', 5000]);
  const renewed = await plain(limits.renew(long.lease, 60_000));
  assert.equal(renewed.ok, true);
  assert.ok(renewed.expiresAt > long.expiresAt);
  await sleep(Math.max(0, short.expiresAt - Date.now()) + 300);
  assert.equal((await plain(limits.usage())).now.batches, 1, 'the unrenewed lease expired; the renewed one holds');
  assert.equal((await plain(limits.renew(short.lease, 1000))).ok, false, 'an expired lease cannot be renewed');
  const again = await plain(limits.acquire({ items: 1 }));
  assert.equal(again.ok, true);
  await limits.release(long.lease, { subrequests: 1 });
  await limits.release(again.lease, { subrequests: 1 });
  assert.equal((await plain(limits.usage())).now.batches, 0);
});

test('grants: at least one subrequest per item, a fair share, the unused part refunded; usage recorded', async () => {
  const limits = ns.get(ns.idFromName('dave'));
  // 40 an hour, 2 slots: the first batch may take half of it.
  const a = await plain(limits.acquire({ items: 4, subrequests: 100 }));
  assert.equal(a.subrequests, 20);
  const b = await plain(limits.acquire({ items: 5, subrequests: 100 }));
  assert.equal(b.subrequests, 20, 'the rest, with one slot left');
  await limits.record({ requests: 3, inputTokens: 120, outputTokens: 45 });
  await limits.release(a.lease, { subrequests: 6, requests: 3, inputTokens: 100, outputTokens: 40 });
  let u = await plain(limits.usage());
  assert.deepEqual(u.now, { batches: 1, itemsLastHour: 9, subrequestsLastHour: 26 }, '14 of a\'s 20 went back');
  assert.deepEqual(u.total, { batches: 2, items: 9, requests: 6, subrequests: 6, inputTokens: 220, outputTokens: 85 });
  const c = await plain(limits.acquire({ items: 20, subrequests: 100 }));
  assert.deepEqual([c.ok, c.limit], [false, 'subrequests_per_hour'], JSON.stringify(c));
  assert.match(c.message, /26 of 40 subrequests per hour are used; this needs at least 20/);
  assert.ok(c.retryAfterMs > 3_500_000 && c.retryAfterMs <= 3_600_000, String(c.retryAfterMs));
  await limits.release(b.lease, {});
  u = await plain(limits.usage());
  assert.equal(u.now.subrequestsLastHour, 26, 'released without a count: the whole grant counts as used');
  const never = await plain(limits.acquire({ items: 60 }));
  assert.deepEqual([never.ok, never.limit, never.retryAfterMs], [false, 'items_per_hour', null]);
});

test('bad arguments are TypeErrors naming the argument (called from inside workerd)', { timeout: 30_000 }, async () => {
  const caller = await startWorker({}, {
    script: 'worker/test/fixtures/limits-caller.js',
    options: { durableObjects: { TOKEN_LIMITS: { className: 'TokenLimits', useSQLite: true } } },
  });
  try {
    const call = async (method, ...args) => (await fetch(new URL(`/${method}`, caller.url), { method: 'POST', body: JSON.stringify(args) })).json();
    assert.deepEqual(await call('acquire', { items: -1 }), { error: 'TypeError: items must be a non-negative integer, got -1' });
    assert.deepEqual(await call('acquire', { subrequests: 1.5 }), { error: 'TypeError: subrequests must be a non-negative integer, got 1.5' });
    assert.deepEqual(await call('record', { inputTokens: 'many' }), { error: 'TypeError: inputTokens must be a non-negative integer, got many' });
    assert.deepEqual(await call('renew', 'no-such-lease', 1000), { value: { ok: false, message: 'no such lease (expired or released)' } });
    assert.equal((await call('usage')).value.total.batches, 0, 'nothing was taken');
  } finally {
    await caller.dispose();
  }
});

describe('acquirePart: the part of a claim that fits the hour, each item charged once', { timeout: 30_000 }, () => {
  let caller;
  before(async () => {
    caller = await startWorker({ EDGEBATCH_ITEMS_PER_HOUR: '10', EDGEBATCH_SUBREQUESTS_PER_HOUR: '30' }, {
      script: 'worker/test/fixtures/limits-caller.js',
      options: { durableObjects: { TOKEN_LIMITS: { className: 'TokenLimits', useSQLite: true } } },
    });
  });
  after(() => caller?.dispose());
  const call = async (token, method, ...args) => {
    const r = await (await fetch(new URL(`/${method}?token=${token}`, caller.url), { method: 'POST', body: JSON.stringify(args) })).json();
    if (r.error) throw new Error(r.error);
    return r.value;
  };

  test('a claim larger than the hour gets what fits; given-back items are not charged again', async () => {
    // 25 claimed, none charged before, 5 attempts each asked: 10 fit the hour's items.
    const a = await call('gina', 'acquirePart', { items: 25, subrequests: 125 });
    assert.deepEqual([a.ok, a.items, a.charged], [true, 10, 10], JSON.stringify(a));
    assert.ok(a.subrequests >= 10 && a.subrequests <= 30, JSON.stringify(a));
    await call('gina', 'release', a.lease, { subrequests: 4 });
    // The hour's items are spent: nothing new fits, and the answer says when one will.
    const full = await call('gina', 'acquirePart', { items: 15 });
    assert.deepEqual([full.ok, full.limit], [false, 'items_per_hour'], JSON.stringify(full));
    assert.match(full.message, /10 of 10 items per hour are used \(EDGEBATCH_ITEMS_PER_HOUR\)/);
    assert.ok(full.retryAfterMs > 3_500_000 && full.retryAfterMs <= 3_600_000, String(full.retryAfterMs));
    // 6 of those 10 were given back unfinished: claimed again, they run without a new charge,
    // and the 2 new ones of this claim wait.
    const b = await call('gina', 'acquirePart', { items: 8, uncharged: 2, subrequests: 16 });
    assert.deepEqual([b.ok, b.items, b.charged], [true, 6, 0], JSON.stringify(b));
    assert.ok(b.subrequests >= 6 && b.subrequests <= 12, JSON.stringify(b));
    await call('gina', 'release', b.lease, { subrequests: 6 });
    const u = await call('gina', 'usage');
    assert.deepEqual(u.now, { batches: 0, itemsLastHour: 10, subrequestsLastHour: 10 });
    assert.equal(u.total.items, 10);
    assert.equal(u.total.subrequests, 10);
  });

  test('subrequests bound the part too; an hour without them is a refusal with a wait', async () => {
    const a = await call('hugo', 'acquirePart', { items: 8, subrequests: 8 });
    assert.deepEqual([a.items, a.charged, a.subrequests], [8, 8, 8]);
    // 22 subrequests left: 2 items fit by items, and charged ones are bounded by subrequests.
    const b = await call('hugo', 'acquirePart', { items: 40, uncharged: 10, subrequests: 40 });
    assert.deepEqual([b.items, b.charged], [22, 0], 'the 30 charged ones first, as many as there are subrequests');
    const none = await call('hugo', 'acquirePart', { items: 1, uncharged: 0 });
    assert.deepEqual([none.ok, none.limit], [false, 'subrequests_per_hour'], JSON.stringify(none));
    assert.match(none.message, /30 of 30 subrequests per hour are used \(EDGEBATCH_SUBREQUESTS_PER_HOUR\)/);
    assert.ok(none.retryAfterMs > 3_500_000, String(none.retryAfterMs));
    await assert.rejects(call('hugo', 'acquirePart', { items: 0 }), /RangeError: items must be at least 1/);
    await assert.rejects(call('hugo', 'acquirePart', { items: 2, uncharged: 3 }), /RangeError: uncharged \(3\) must be at most items \(2\)/);
    await assert.rejects(call('hugo', 'acquirePart', { items: 2, subrequests: 1 }), /RangeError: subrequests \(1\) must be at least items/);
    await assert.rejects(call('hugo', 'acquirePart', { items: 1.5 }), /TypeError: items must be a non-negative integer/);
  });
});

describe('EDGEBATCH_USD_PER_HOUR: a token\'s dollars per sliding hour, held before work starts', { timeout: 60_000 }, () => {
  const CAP = 1e9; // $0.001, in pico-dollars
  /** claude-haiku-4-5's bound: a token per JSON byte at its 1-hour cache write ($2/MTok), max_tokens at $5/MTok. */
  const bound = (body) => Buffer.byteLength(JSON.stringify(body)) * 2e6 + body.max_tokens * 5e6;
  const sha = (t) => createHash('sha256').update(t).digest('hex');
  const JAY = 'jay-token-5a1f0c9e7d3b2846';
  let worker;
  before(async () => {
    worker = await startWorker({ EDGEBATCH_USD_PER_HOUR: '0.001', EDGEBATCH_SIM: 'on', EDGEBATCH_MODELS: 'claude-haiku-4-5,sim-unpriced',
      EDGEBATCH_TOKENS: `jay:${sha(JAY)}`, EDGEBATCH_BATCH_ALARM_MS: '200', ...ROOMY_TOKEN });
  });
  after(() => worker?.dispose());
  const usd = async (token) => (await api(worker.url, 'GET', '/v1/usage', { token })).json.usd;

  test('holds: refused while another grant holds the dollars, freed when its cost replaces the hold', async () => {
    const limits = (await worker.mf.getDurableObjectNamespace('TOKEN_LIMITS')).get((await worker.mf.getDurableObjectNamespace('TOKEN_LIMITS')).idFromName('kim'));
    const a = await plain(limits.acquire({ items: 1, usdPico: 600e6 }));
    const b = await plain(limits.acquire({ items: 1, usdPico: 500e6 }));
    assert.deepEqual([b.ok, b.limit, b.retryAfterMs], [false, 'usd_per_hour', 5000], 'a still holds: asked again soon');
    assert.match(b.message, /\$0\.0006 of \$0\.001 per hour are spent or held; this can cost up to \$0\.0005 \(EDGEBATCH_USD_PER_HOUR\)/);
    const never = await plain(limits.acquire({ items: 1, usdPico: 2e9 }));
    assert.deepEqual([never.ok, never.retryAfterMs], [false, null]);
    await limits.release(a.lease, { usdPico: 100e6 });
    // 900e6 left: three holds of 300e6 of the four asked fit.
    const part = await plain(limits.acquirePart({ items: 4, usdPico: [300e6, 300e6, 300e6, 300e6] }));
    assert.deepEqual([part.ok, part.items, part.restAfterMs], [true, 3, 5000], JSON.stringify(part));
    await limits.release(part.lease, {}); // no cost reported: the hold counts as spent
    assert.deepEqual(await plain(limits.usage()).then((u) => u.usd), { perHour: 0.001, lastHour: 0.001, total: 0.001 });
    const full = await plain(limits.acquirePart({ items: 1, usdPico: [1] }));
    assert.deepEqual([full.ok, full.limit], [false, 'usd_per_hour']);
    assert.ok(full.retryAfterMs > 3_500_000, 'nothing holds: it waits for the hour');
  });

  test('/v1/batch: an unpriced model is a 400; batches run while spent + their bound fits, then 429 usd_per_hour', async () => {
    const post = (items) => postBatch(worker.url, { provider: { name: 'anthropic', baseUrl: `${worker.url.origin}/sim` }, items }, { token: JAY });
    const unpriced = await post([{ ...messages(1)[0], model: 'sim-unpriced' }]);
    assert.equal(unpriced.status, 400, unpriced.text);
    assert.match(JSON.parse(unpriced.text).error.message, /items\[0\]: model "sim-unpriced" has no price .*EDGEBATCH_USD_PER_HOUR/);
    const items = messages(2);
    const held = items.reduce((s, it) => s + bound(it), 0);
    let spent = 0;
    for (let round = 0; ; round++) {
      const r = await post(items);
      if (spent + held > CAP) {
        assert.equal(r.status, 429, r.text);
        assert.equal(JSON.parse(r.text).error.limit, 'usd_per_hour');
        assert.ok(Number(r.headers.get('retry-after')) > 3000, 'no hold is open: when the hour frees it');
        break;
      }
      assert.equal(r.status, 200, r.text);
      const lines = ndjson(r.text).filter((l) => 'index' in l);
      spent += lines.reduce((s, l) => s + Math.round(l.usd * 1e12), 0);
      assert.ok(round < 10 && spent > 0);
      // The hold of the bound was replaced by the lines' price, exactly.
      assert.deepEqual(await usd(JAY), { perHour: 0.001, lastHour: spent / 1e12, total: spent / 1e12 });
    }
    const tooBig = await post(messages(4));
    assert.equal(tooBig.status, 400, 'a batch whose bound alone passes the hour never fits');
  });

  test('stored batch: what fits the hour runs, the rest waits with token_budget', async () => {
    const sim = await simSession(worker.url, { seed: 3, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 } });
    // A bound of about $0.0004 each (two fit the hour's $0.001), a price of about half that.
    const reqs = requests(12, 'd').map((r) => ({ ...r, params: { ...r.params, max_tokens: 40 } }));
    const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: reqs });
    let view;
    let lines;
    for (let i = 0; ; i++) {
      view = (await api(worker.url, 'GET', `/v1/batches/${batch.id}`)).json;
      lines = await results(worker.url, batch.id);
      const spent = lines.reduce((s, l) => s + Math.round((l.edgebatch.usd ?? 0) * 1e12), 0);
      // Settled: waiting, every hold replaced by its price, and no request's bound fits what is left.
      const left = Math.min(...reqs.filter((r) => !lines.some((l) => l.custom_id === r.custom_id)).map((r) => bound(r.params)));
      if (view.edgebatch.waiting?.reason === 'token_budget' && Math.round((await usd(TOKEN)).lastHour * 1e12) === spent && spent + left > CAP) break;
      assert.ok(i < 200, `never waited on the dollars: ${JSON.stringify(view)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const spent = lines.reduce((s, l) => s + Math.round(l.edgebatch.usd * 1e12), 0);
    const done = new Set(lines.map((l) => l.custom_id));
    const left = reqs.filter((r) => !done.has(r.custom_id));
    assert.ok(left.length > 0, `${lines.length} ran`);
    assert.ok(lines.every((l) => l.result.type === 'succeeded'));
    assert.ok(spent <= CAP, `spent ${spent}`);
    assert.ok(lines.reduce((b, l) => b + bound(reqs.find((r) => r.custom_id === l.custom_id).params), 0) > CAP,
      `more ran than their holds alone would let in (${lines.length}): each hold was replaced by its price`);
    assert.equal(view.request_counts.processing, left.length);
    await api(worker.url, 'POST', `/v1/batches/${batch.id}/cancel`);
  });
});
