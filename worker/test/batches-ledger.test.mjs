// The batch ledger on real workerd (issue 22), driven call by call through a test-only wrapper
// (fixtures/ledger-probe.js: a gated work queue, the alarm on demand, rows read per call): an
// alarm that waits at its queue send while a commit or a cancel lands, redelivery of what is
// lost and only that, claims of items not yet due or of an expired batch, counts that cost the
// same at any size, results pages bounded by bytes, a batch object of the old layout. Then on
// the whole Worker: create idempotency, `before_id` of no batch, and a batch queued behind
// another (no redelivery storm).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, TOKEN } from './harness.mjs';
import { ROOMY_TOKEN, api, exactlyOnce, requests, results, simSession, submit, waitEnded } from './batches-client.mjs';
import { ITEMS_PER_MESSAGE } from '../src/batches/queues.js';
import { MIN_WINDOW } from '../src/batches/window.js';

const OWNER = 'me';
const REDELIVER_MS = 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('worker: the batch ledger, call by call', { timeout: 60_000, concurrency: true }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      // No alarm of its own during a test: the test runs it.
      EDGEBATCH_BATCH_ALARM_MS: '3600000',
      EDGEBATCH_BATCH_REDELIVER_MS: String(REDELIVER_MS),
    }, {
      script: 'worker/test/fixtures/ledger-probe.js',
      options: { durableObjects: { BATCHES: { className: 'BatchLedger', useSQLite: true } } },
    });
  });
  after(async () => {
    await worker?.dispose();
  });

  /** A fresh ledger: `L(method, ...args)` calls it; throws its error. */
  async function ledger() {
    const { id } = await (await fetch(new URL('/new', worker.url), { method: 'POST' })).json();
    return async (method, ...args) => {
      const r = await (await fetch(new URL(`/${id}/${method}`, worker.url), { method: 'POST', body: JSON.stringify(args) })).json();
      if (r.error) throw new Error(r.error);
      return r.value;
    };
  }

  /** A ledger with `n` items, created (started unless `start` is false); its sends taken. */
  async function created(n, { ttlMs = 3_600_000, start = true, bytes = 0 } = {}) {
    const L = await ledger();
    const now = Date.now();
    await L('init', { id: 'batch_probe', owner: OWNER, provider: { name: 'anthropic' }, options: {}, limiter: {}, limiterKey: 'k', createdAt: now, expiresAt: now + ttlMs });
    for (let at = 0; at < n; at += 500) {
      const rows = [];
      for (let i = at; i < Math.min(n, at + 500); i++) rows.push({ custom_id: `r${i}`, params: JSON.stringify({ i, pad: 'x'.repeat(bytes) }) });
      await L('append', rows);
    }
    if (start) await L('start');
    L.initial = sentIndexes(await L('takeSent'));
    return L;
  }

  const result = (it, text = 'ok') => ({ index: it.index, token: it.token, result: { type: 'succeeded', message: { text } }, attempts: 1, elapsedMs: 1 });
  const sentIndexes = (bodies) => bodies.flatMap((b) => b.indexes);

  test('an alarm waiting at its queue send writes no stale copy back: a commit in between keeps seq unique', async () => {
    const L = await created(3);
    await L('claim', [0], 200); // its lease lapses: the alarm sends it again
    const { items: [one] } = await L('claim', [1], 60_000);
    await sleep(REDELIVER_MS + 100);
    await L('gateMode', 'hold');
    assert.equal(await L('runAlarm'), 'held');
    assert.equal((await L('commit', [result(one)])).accepted, 1);
    await L('gateMode', 'pass');
    assert.equal(await L('alarmDone'), 'done');
    await L('cancel', OWNER);
    const { rows } = await L('results', OWNER, 0, 100);
    assert.deepEqual(rows.map((r) => r.seq), [1, 2, 3], 'one seq per result, 1..N');
  });

  test('an alarm waiting at its queue send writes no stale copy back: a cancel in between is kept', async () => {
    const L = await created(3);
    await L('claim', [0], 200);
    const { items: [one] } = await L('claim', [1], 60_000);
    await sleep(REDELIVER_MS + 100);
    await L('gateMode', 'hold');
    assert.equal(await L('runAlarm'), 'held');
    await L('commit', [result(one)]);
    const canceled = await L('cancel', OWNER);
    assert.equal(canceled.processing_status, 'ended');
    await L('gateMode', 'pass');
    await L('alarmDone');
    const b = await L('describe', OWNER);
    assert.equal(b.processing_status, 'ended');
    assert.equal(b.cancel_initiated_at, canceled.cancel_initiated_at);
    assert.deepEqual(b.request_counts, { processing: 0, succeeded: 1, errored: 0, canceled: 2, expired: 0 });
    assert.deepEqual((await L('results', OWNER, 0, 100)).rows.map((r) => r.seq), [1, 2, 3]);
  });

  test('redelivery: a backlog nobody claims gets a small probe per alarm; only a delivered probe shows it lost', async () => {
    const L = await created(3000);
    // A window goes out at the start, not the batch: a batch created later waits for no more.
    assert.ok(L.initial.length >= MIN_WINDOW && L.initial.length < 3000, `${L.initial.length} items sent at the start`);
    assert.deepEqual(L.initial, [...Array(L.initial.length).keys()], 'in index order');
    await sleep(REDELIVER_MS + 100);
    assert.equal(await L('runAlarm'), 'done');
    const probe = sentIndexes(await L('takeSent'));
    assert.ok(probe.length > 0 && probe.length <= ITEMS_PER_MESSAGE, `a probe of ${probe.length} items, not the backlog`);
    assert.equal(await L('runAlarm'), 'done');
    assert.deepEqual(await L('takeSent'), [], 'at most one probe per redeliver interval');
    // Work going on (an item of the backlog claimed): nothing is sent for the rest of it.
    await L('claim', [5], 60_000);
    await L('runAlarm');
    assert.deepEqual(await L('takeSent'), []);
    // The probe's copy arrives: what was sent before it and is still queued is lost. It goes
    // again, at most 100 messages an alarm.
    const { items } = await L('claim', probe, 60_000);
    assert.equal(items.length, probe.length);
    await L('commit', items.map((it) => result(it)));
    let again = [];
    for (let i = 0; i < 3; i++) {
      await L('runAlarm');
      const sent = sentIndexes(await L('takeSent'));
      assert.ok(sent.length <= 2500, `${sent.length} sent by one alarm`);
      again.push(...sent);
      await sleep(REDELIVER_MS + 100);
    }
    again = [...new Set(again)].sort((a, b) => a - b);
    // Lost: what was sent and not claimed; nothing of the rest of the batch (never sent).
    const lost = L.initial.filter((i) => i !== 5 && !probe.includes(i));
    assert.deepEqual(again, lost, 'every lost item once, no other');
    const b = await L('describe', OWNER);
    assert.equal(b.edgebatch.redelivered, probe.length + lost.length);
  });

  test('claim skips items not yet due (an early copy claims nothing) and claims nothing past expires_at', async () => {
    const L = await created(3, { ttlMs: 1500 });
    const { items } = await L('claim', [0, 1], 60_000);
    const until = Date.now() + 500;
    assert.equal(await L('unclaim', [{ index: 0, token: items[0].token, attempts: 0 }], until), 1);
    assert.deepEqual((await L('claim', [0], 60_000)).items, [], 'an early copy claims nothing');
    await sleep(until - Date.now() + 20);
    assert.equal((await L('claim', [0], 60_000)).items.length, 1, 'the copy due now claims it');
    await sleep(1500 - 500);
    assert.deepEqual(await L('claim', [2], 60_000), { batch: null, items: [] }, 'past expires_at');
  });

  test('a batch that waits says why and until when; an item charged once is never charged again', async () => {
    const L = await created(2);
    const { items } = await L('claim', [0, 1], 60_000);
    assert.ok(items.every((it) => it.charged === false));
    const until = Date.now() + 300;
    await L('unclaim', [{ index: 0, token: items[0].token, attempts: 0, charged: true }], until, 'token_budget');
    assert.deepEqual((await L('describe', OWNER)).edgebatch.waiting, { reason: 'token_budget', until: new Date(until).toISOString() });
    await sleep(until - Date.now() + 20);
    const again = await L('claim', [0], 60_000);
    assert.equal(again.items[0].charged, true);
    assert.equal((await L('describe', OWNER)).edgebatch.waiting, undefined, 'a claim after until ends the wait');
    await L('unclaim', [{ index: 1, token: items[1].token, attempts: 1, charged: true }], Date.now() + 60_000, 'limiter');
    assert.equal((await L('describe', OWNER)).edgebatch.waiting.reason, 'limiter');
    await L('commit', [result(again.items[0])]);
    assert.equal((await L('describe', OWNER)).edgebatch.waiting?.reason, 'limiter', 'a commit of another item does not end the wait of this one');
  });

  test('an item whose lease lapsed is sent again by the alarm, and not charged to the token again', async () => {
    const L = await created(2);
    const { items } = await L('claim', [0, 1], 100);
    assert.ok(items.every((it) => it.charged === false));
    await sleep(150);
    await L('runAlarm');
    assert.deepEqual(sentIndexes(await L('takeSent')), [0, 1], 'both lapsed, both sent again');
    const again = await L('claim', [0, 1], 60_000);
    assert.deepEqual(again.items.map((it) => [it.index, it.charged]), [[0, true], [1, true]]);
    assert.equal((await L('describe', OWNER)).edgebatch.leases_lapsed, 2);
  });

  test('start arms the alarm before it sends: a send that fails leaves an armed batch the alarm delivers', async () => {
    const L = await created(3, { start: false });
    await L('gateMode', 'fail');
    await L('start').catch(() => {});
    assert.notEqual(await L('alarmAt'), null, 'the alarm is set');
    await L('gateMode', 'pass');
    await L('runAlarm');
    assert.deepEqual(sentIndexes(await L('takeSent')).sort(), [0, 1, 2]);
  });

  test('counts are kept, not scanned: a commit and a GET read a few rows at 3,000 items', async () => {
    const L = await created(3000);
    const { items } = await L('claim', [7], 60_000);
    await L('rowsRead');
    await L('commit', [result(items[0])]);
    const commit = await L('rowsRead');
    const view = await L('describe', OWNER);
    const get = await L('rowsRead');
    assert.equal(view.request_counts.succeeded, 1);
    console.log(`# rows read at 3,000 items: commit ${commit}, GET ${get}`);
    assert.ok(commit < 50 && get < 50, `rows read: commit ${commit}, GET ${get}`);
  });

  test('a batch object written in the layout before wakes up migrated: counts, seq, leases carry on', async () => {
    const L = await ledger();
    const now = Date.now();
    const line = (id, seq) => JSON.stringify({ custom_id: id, result: { type: 'succeeded', message: {} }, edgebatch: { attempts: 1, elapsedMs: 1, seq } });
    await L('legacy', { id: 'batch_old', owner: OWNER, provider: { name: 'anthropic' }, options: {}, limiter: {}, limiterKey: 'k',
      createdAt: now, expiresAt: now + 3_600_000, started: true, total: 4, seq: 2, lastClaimAt: now, relet: 1, redelivered: 0 }, [
      { custom_id: 'a', state: 'succeeded', seq: 1, result: line('a', 1), token: 2 },
      { custom_id: 'b', state: 'succeeded', seq: 2, result: line('b', 2), token: 2 },
      { custom_id: 'c', state: 'queued' },
      { custom_id: 'd', state: 'leased', token: 1, lease_until: now + 60_000 },
    ]).catch(() => {}); // the call ends with the reset it asked for
    const b = await L('describe', OWNER);
    assert.deepEqual(b.request_counts, { processing: 2, succeeded: 2, errored: 0, canceled: 0, expired: 0 });
    assert.equal(b.edgebatch.leases_lapsed, 1);
    assert.equal((await L('commit', [result({ index: 3, token: 1 })])).accepted, 1);
    const { items } = await L('claim', [2], 60_000);
    assert.equal((await L('commit', [result(items[0])])).accepted, 1);
    assert.equal((await L('describe', OWNER)).processing_status, 'ended');
    assert.deepEqual((await L('results', OWNER, 0, 100)).rows.map((r) => r.seq), [1, 2, 3, 4]);
  });

  test('a results page is bounded by bytes as well as rows', async () => {
    const L = await created(12);
    const { items } = await L('claim', [...Array(12).keys()], 60_000);
    await L('commit', items.map((it) => result(it, 'y'.repeat(200_000))));
    const seqs = [];
    let after = 0;
    for (;;) {
      const page = await L('results', OWNER, after, 500);
      if (page.rows.length === 0) break;
      const bytes = page.rows.reduce((n, r) => n + r.line.length, 0);
      assert.ok(page.rows.length === 1 || bytes <= 1024 * 1024, `a page of ${bytes} bytes`);
      seqs.push(...page.rows.map((r) => r.seq));
      after = page.rows.at(-1).seq;
    }
    assert.deepEqual(seqs, [...Array(12).keys()].map((i) => i + 1));
  });
});

describe('worker: /v1/batches create and list, on the whole Worker', { timeout: 60_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '300' });
  });
  after(async () => {
    await worker?.dispose();
  });

  const post = (payload, key) => fetch(new URL('/v1/batches', worker.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...(key && { 'idempotency-key': key }) },
    body: JSON.stringify(payload),
  }).then(async (r) => ({ status: r.status, json: await r.json(), replayed: r.headers.get('idempotent-replayed') }));

  test('Idempotency-Key: a retry answers the batch the first try created; another body with the key is a 422 naming it', async () => {
    const sim = await simSession(worker.url, { seed: 1, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 0 } });
    const payload = { provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: requests(3) };
    const first = await post(payload, 'create-7f3a');
    assert.equal(first.status, 201, JSON.stringify(first.json));
    const retry = await post(payload, 'create-7f3a');
    assert.deepEqual([retry.status, retry.json.id, retry.replayed], [200, first.json.id, 'true']);
    const other = await post({ ...payload, requests: requests(4) }, 'create-7f3a');
    assert.equal(other.status, 422);
    assert.match(other.json.error.message, /Idempotency-Key "create-7f3a" was used to create batch batch_[0-9a-f]+ with another body/);
    const fresh = await post(payload, 'create-other');
    assert.equal(fresh.status, 201);
    assert.notEqual(fresh.json.id, first.json.id);
    const listed = (await api(worker.url, 'GET', '/v1/batches?limit=100')).json.data.map((b) => b.id);
    assert.equal(listed.filter((id) => id === first.json.id).length, 1, 'listed once');
    assert.equal((await post(payload, 'bad key')).status, 400);
  });

  test('Idempotency-Key: a create still under way makes a second one with the key a 409; a refused create frees its key', async () => {
    const sim = await simSession(worker.url, { seed: 2, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 0 } });
    const enc = new TextEncoder();
    let release;
    const held = new Promise((r) => (release = r));
    const lines = [{ provider: { name: 'anthropic', baseUrl: sim.baseUrl } }, ...requests(2)].map((l) => `${JSON.stringify(l)}\n`);
    const slow = fetch(new URL('/v1/batches', worker.url), {
      method: 'POST',
      duplex: 'half',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-ndjson', 'idempotency-key': 'slow-1' },
      body: new ReadableStream({
        async start(c) {
          c.enqueue(enc.encode(lines[0]));
          await held;
          for (const l of lines.slice(1)) c.enqueue(enc.encode(l));
          c.close();
        },
      }),
    });
    await sleep(300);
    const second = await post({ provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: requests(2) }, 'slow-1');
    assert.equal(second.status, 409);
    assert.match(second.json.error.message, /Idempotency-Key "slow-1" is under way/);
    release();
    assert.equal((await slow).status, 201);
    // A create refused (400) leaves its key free for the corrected retry.
    assert.equal((await post({ provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: [] }, 'fix-1')).status, 400);
    assert.equal((await post({ provider: { name: 'anthropic', baseUrl: sim.baseUrl }, requests: requests(1) }, 'fix-1')).status, 201);
  });

  test('GET /v1/batches?before_id= of no batch of this token is a 400 naming it, not page 1 again', async () => {
    const r = await api(worker.url, 'GET', `/v1/batches?before_id=batch_${'0'.repeat(64)}`);
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /before_id "batch_0+" is not a batch of this token/);
  });
});

describe('worker: /v1/batches, a batch queued behind another', { timeout: 60_000 }, () => {
  test('is not redelivered while it waits: at most one probe message per redeliver interval', async () => {
    const R = 800;
    const worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200', EDGEBATCH_BATCH_REDELIVER_MS: String(R) },
      { workQueues: 1 });
    try {
      const sim = await simSession(worker.url, { seed: 4, latency: { baseMs: 40, perOutputTokenMs: 0, jitterMs: 10 } });
      const provider = { name: 'anthropic', baseUrl: sim.baseUrl };
      const first = await submit(worker.url, { provider, requests: requests(240, 'a') });
      const second = await submit(worker.url, { provider, requests: requests(120, 'b') });
      const t0 = Date.now();
      let waitedMs;
      const ended = await waitEnded(worker.url, second.id, {
        everyMs: 100,
        onSample: (b) => (waitedMs ??= b.request_counts.succeeded > 0 ? Date.now() - t0 : undefined),
      });
      exactlyOnce(await results(worker.url, second.id), requests(120, 'b').map((r) => r.custom_id));
      await waitEnded(worker.url, first.id);
      const probes = Math.ceil(waitedMs / R);
      console.log(`# a batch of 120 behind one of 240: first result after ${waitedMs} ms, redelivered ${ended.edgebatch.redelivered} (at most ${probes} probes of ${ITEMS_PER_MESSAGE})`);
      assert.ok(ended.edgebatch.redelivered <= ITEMS_PER_MESSAGE * probes, JSON.stringify(ended.edgebatch));
    } finally {
      await worker.dispose();
    }
  });

  test('waits for a window of the batch ahead, not for all of it: its first result comes while the big one has most to do', async () => {
    const worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '200' }, { workQueues: 1 });
    try {
      const sim = await simSession(worker.url, { seed: 4, latency: { baseMs: 40, perOutputTokenMs: 0, jitterMs: 10 } });
      const provider = { name: 'anthropic', baseUrl: sim.baseUrl };
      const big = await submit(worker.url, { provider, requests: requests(2000, 'a') });
      const small = await submit(worker.url, { provider, requests: requests(40, 'b') });
      await waitEnded(worker.url, small.id, { everyMs: 100 });
      const ahead = (await api(worker.url, 'GET', `/v1/batches/${big.id}`)).json.request_counts;
      console.log(`# 40 behind 2,000: ended with the big one at ${ahead.succeeded} of 2000`);
      // Sent whole, the big batch's 2,000 would all be ahead of it in the queue.
      assert.ok(ahead.processing > 1000, `the small batch waited for most of the big one: ${JSON.stringify(ahead)}`);
      await waitEnded(worker.url, big.id, { timeoutMs: 120_000 });
      exactlyOnce(await results(worker.url, big.id), requests(2000, 'a').map((r) => r.custom_id));
    } finally {
      await worker.dispose();
    }
  });
});
