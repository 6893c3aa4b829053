// The official Anthropic SDK (@anthropic-ai/sdk, pinned in package.json), unchanged but for its
// baseURL `{worker}/anthropic` and the edgebatch token as its apiKey, against the Worker on real
// workerd (Miniflare) with the simulator as the upstream: realtime calls through the account's
// one limiter, a streamed message, the Message Batches API end to end, and the errors the SDK
// raises for bad tokens and bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Anthropic from '@anthropic-ai/sdk';
import { FAKE_ANTHROPIC_KEY, TOKEN, startWorker } from './harness.mjs';
import { ROOMY_TOKEN } from './batches-client.mjs';

const OTHER_TOKEN = 'other-sdk-caller-3b9d21';
/** The Worker's own simulator, quick and without faults: the SDK's behaviour is what is tested here. */
const SIM = { seed: 5, minuteMs: 60_000, requestsPerMinute: 100_000, latency: { baseMs: 5, perOutputTokenMs: 0, jitterMs: 5 }, faults: {},
  // Its Message Batches (a batch routed there by completionWindow) end within a second.
  batches: { delayMs: 200, spreadMs: 300 } };
const MODEL = 'claude-haiku-4-5';
const ask = (i) => ({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${i}.` }] });

/** The account limiter's object name for the simulator upstream (batches/limiter.js limiterName). */
const SIM_LIMITER = `key:anthropic:${createHash('sha256').update('anthropic\nhttp://sim.edgebatch.internal\nsim-key').digest('hex').slice(0, 32)}`;

describe('worker: the Anthropic SDK against {worker}/anthropic', { timeout: 90_000 }, () => {
  let worker;
  let client;
  let baseURL;

  before(async () => {
    worker = await startWorker({
      ...ROOMY_TOKEN,
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_SIM_CONFIG: JSON.stringify(SIM),
      EDGEBATCH_BATCH_ALARM_MS: '300',
      EDGEBATCH_PROVIDER_POLL_MS: '300',
      EDGEBATCH_TOKENS: `other:${createHash('sha256').update(OTHER_TOKEN).digest('hex')}`,
    });
    baseURL = new URL('/anthropic', worker.url).href;
    client = new Anthropic({ baseURL, apiKey: TOKEN, maxRetries: 0 });
  });
  after(async () => {
    await worker?.dispose();
  });

  const limiterStats = async () => {
    const ns = await worker.mf.getDurableObjectNamespace('LIMITER');
    return ns.get(ns.idFromName(SIM_LIMITER)).stats();
  };

  test('messages.create: a realtime call through the account limiter; the upstream\'s own errors come back as they are', async () => {
    const msg = await client.messages.create(ask(1));
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.content[0].type, 'text');
    assert.ok(msg.content[0].text.length > 0);
    assert.ok(msg.usage.input_tokens > 0 && msg.usage.output_tokens > 0, JSON.stringify(msg.usage));

    // Authorization: Bearer (the SDK's authToken) is the other way in.
    const bearer = new Anthropic({ baseURL, apiKey: null, authToken: TOKEN, maxRetries: 0 });
    assert.equal((await bearer.messages.create(ask(2))).type, 'message');
    const stats = await limiterStats();
    assert.ok(stats.granted >= 2, `the account limiter granted ${stats.granted} permits`);
    assert.equal(stats.inFlight, 0);

    // The Worker's item rules: a 400 naming the field.
    await assert.rejects(client.messages.create({ model: MODEL, messages: ask(3).messages }), (err) => {
      assert.ok(err instanceof Anthropic.BadRequestError, String(err));
      assert.equal(err.error.type, 'error');
      assert.equal(err.error.error.type, 'invalid_request_error');
      assert.match(err.error.error.message, /^max_tokens is required here/);
      return true;
    });
    // The upstream's 400 (a role it refuses) is answered as the upstream sent it.
    await assert.rejects(client.messages.create({ ...ask(4), messages: [{ role: 'system', content: 'x' }] }), (err) => {
      assert.ok(err instanceof Anthropic.BadRequestError, String(err));
      assert.equal(err.error.error.type, 'invalid_request_error');
      assert.match(err.error.error.message, /messages\.0\.role/);
      return true;
    });
  });

  test('stream: true passes the server-sent events through', async () => {
    const stream = client.messages.stream(ask(5));
    const types = [];
    let text = '';
    stream.on('streamEvent', (e) => types.push(e.type));
    stream.on('text', (t) => (text += t));
    const final = await stream.finalMessage();
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    assert.ok(types.includes('content_block_delta'));
    assert.equal(final.content[0].text, text);
    assert.ok(final.usage.output_tokens > 0);
    // The permit was held while the stream ran and given back when it ended.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await limiterStats()).inFlight, 0);
  });

  test('Message Batches with an edgebatch-options header: completionWindow sends them to the provider\'s Batch API at half the price; a bad header is a 400 naming it', async () => {
    const requests = [0, 1, 2].map((i) => ({ custom_id: `w${i}`, params: ask(i) }));
    const options = { headers: { 'edgebatch-options': JSON.stringify({ completionWindow: '24h' }) } };
    const created = await client.messages.batches.create({ requests }, options);
    let batch = created;
    for (const until = Date.now() + 30_000; batch.processing_status !== 'ended';) {
      assert.ok(Date.now() < until, `not ended: ${JSON.stringify(batch.request_counts)}`);
      await new Promise((r) => setTimeout(r, 200));
      batch = await client.messages.batches.retrieve(created.id);
    }
    assert.equal(batch.request_counts.succeeded, 3);
    const lines = [];
    for await (const line of await client.messages.batches.results(created.id)) lines.push(line);
    assert.deepEqual(lines.map((l) => [l.custom_id, l.result.type]).sort(), [['w0', 'succeeded'], ['w1', 'succeeded'], ['w2', 'succeeded']]);
    // The engine's view of the same batch: its provider batch, and the discount.
    const res = await fetch(new URL(`/v1/batches/${created.id.replace('msgbatch_', 'batch_')}`, worker.url), { headers: { authorization: `Bearer ${TOKEN}` } });
    const view = await res.json();
    assert.equal(view.edgebatch.completionWindow, '24h');
    assert.deepEqual(view.edgebatch.providerBatches.map((p) => p.items), [3]);
    assert.ok(view.edgebatch.cost.usd > 0);
    assert.ok(Math.abs(view.edgebatch.cost.usd * 2 - view.edgebatch.cost.usdIfRealtime) < 1e-9, JSON.stringify(view.edgebatch.cost));

    for (const bad of ['24h', '{"completionWindow":"3 days"}']) {
      await assert.rejects(client.messages.batches.create({ requests }, { headers: { 'edgebatch-options': bad } }), (err) => {
        assert.ok(err instanceof Anthropic.BadRequestError, `${err?.constructor?.name}: ${err?.message}`);
        assert.match(err.message, bad === '24h' ? /the edgebatch-options header must be a JSON object/ : /completionWindow/);
        return true;
      });
    }
  });

  test('Message Batches: create, poll, results: every custom_id once, typed', async () => {
    const requests = Array.from({ length: 30 }, (_, i) => ({ custom_id: `q${i}`, params: ask(i) }));
    // One the upstream refuses: an `errored` result with the upstream's error type.
    requests.push({ custom_id: 'bad-role', params: { ...ask(99), messages: [{ role: 'system', content: 'x' }] } });
    const created = await client.messages.batches.create({ requests });
    assert.match(created.id, /^msgbatch_[0-9a-f]{64}$/);
    assert.equal(created.type, 'message_batch');
    assert.equal(created.processing_status, 'in_progress');
    assert.deepEqual(created.request_counts, { processing: 31, succeeded: 0, errored: 0, canceled: 0, expired: 0 });
    assert.equal(created.results_url, null);
    assert.equal(created.archived_at, null);
    assert.ok(Date.parse(created.expires_at) > Date.parse(created.created_at));

    let batch = created;
    for (const until = Date.now() + 30_000; batch.processing_status !== 'ended';) {
      assert.ok(Date.now() < until, `not ended: ${JSON.stringify(batch.request_counts)}`);
      await new Promise((r) => setTimeout(r, 200));
      batch = await client.messages.batches.retrieve(created.id);
    }
    assert.deepEqual(batch.request_counts, { processing: 0, succeeded: 30, errored: 1, canceled: 0, expired: 0 });
    assert.equal(batch.results_url, `${baseURL}/v1/messages/batches/${created.id}/results`);
    assert.ok(batch.ended_at);

    const seen = new Map();
    for await (const line of await client.messages.batches.results(created.id)) {
      assert.deepEqual(Object.keys(line).sort(), ['custom_id', 'result']);
      seen.set(line.custom_id, (seen.get(line.custom_id) ?? 0) + 1);
      if (line.custom_id === 'bad-role') {
        assert.equal(line.result.type, 'errored');
        assert.equal(line.result.error.type, 'error');
        assert.equal(line.result.error.error.type, 'invalid_request_error');
        assert.match(line.result.error.error.message, /role/);
      } else {
        assert.equal(line.result.type, 'succeeded', JSON.stringify(line));
        assert.equal(line.result.message.type, 'message');
        assert.equal(line.result.message.content[0].type, 'text');
      }
    }
    assert.deepEqual([...seen.keys()].sort(), requests.map((r) => r.custom_id).sort());
    assert.ok([...seen.values()].every((n) => n === 1), 'every custom_id exactly once');
  });

  test('list pages with after_id and before_id; cancel; delete', async () => {
    const made = [];
    for (let b = 0; b < 3; b++) made.push((await client.messages.batches.create({ requests: [{ custom_id: 'only', params: ask(b) }] })).id);
    const page = await client.messages.batches.list({ limit: 2 });
    assert.equal(page.data.length, 2);
    assert.equal(page.has_more, true);
    assert.deepEqual(page.data.map((b) => b.id), [made[2], made[1]], 'newest first');
    assert.equal(page.first_id, made[2]);
    assert.equal(page.last_id, made[1]);
    // The SDK follows after_id = last_id to the older pages.
    const all = [];
    for await (const b of client.messages.batches.list({ limit: 2 })) all.push(b.id);
    assert.deepEqual(all.slice(0, 3), [made[2], made[1], made[0]]);
    assert.equal(new Set(all).size, all.length, 'no batch twice across pages');
    // before_id: the page just newer than a batch.
    const newer = await client.messages.batches.list({ before_id: made[0], limit: 1 });
    assert.deepEqual(newer.data.map((b) => b.id), [made[1]]);
    assert.equal(newer.has_more, true);

    // Cancel: queued requests end canceled at once.
    const big = await client.messages.batches.create({ requests: Array.from({ length: 400 }, (_, i) => ({ custom_id: `c${i}`, params: ask(i) })) });
    const canceled = await client.messages.batches.cancel(big.id);
    assert.ok(['canceling', 'ended'].includes(canceled.processing_status), canceled.processing_status);
    assert.ok(canceled.cancel_initiated_at);
    // A running batch cannot be deleted (cancel it and let it end first).
    if (canceled.processing_status !== 'ended') {
      await assert.rejects(client.messages.batches.delete(big.id), Anthropic.BadRequestError);
    }
    let ended = canceled;
    for (const until = Date.now() + 20_000; ended.processing_status !== 'ended';) {
      assert.ok(Date.now() < until, 'the canceled batch did not end');
      await new Promise((r) => setTimeout(r, 200));
      ended = await client.messages.batches.retrieve(big.id);
    }
    assert.ok(ended.request_counts.canceled > 0, JSON.stringify(ended.request_counts));
    assert.equal(ended.request_counts.canceled + ended.request_counts.succeeded, 400);
    let canceledLines = 0;
    for await (const line of await client.messages.batches.results(big.id)) if (line.result.type === 'canceled') canceledLines++;
    assert.equal(canceledLines, ended.request_counts.canceled);

    // Delete, then it is gone.
    assert.deepEqual(await client.messages.batches.delete(big.id), { id: big.id, type: 'message_batch_deleted' });
    await assert.rejects(client.messages.batches.retrieve(big.id), Anthropic.NotFoundError);
  });

  test('a wrong token, another token\'s batch, bad input: the SDK\'s own errors', async () => {
    const wrong = new Anthropic({ baseURL, apiKey: 'not-the-token', maxRetries: 0 });
    for (const call of [() => wrong.messages.create(ask(0)), () => wrong.messages.batches.list()]) {
      await assert.rejects(call(), (err) => {
        assert.ok(err instanceof Anthropic.AuthenticationError, String(err));
        assert.equal(err.error.type, 'error');
        assert.equal(err.error.error.type, 'authentication_error');
        assert.match(err.error.error.message, /^missing or wrong token: send the edgebatch token as x-api-key/);
        return true;
      });
    }
    const mine = await client.messages.batches.create({ requests: [{ custom_id: 'x', params: ask(0) }] });
    const other = new Anthropic({ baseURL, apiKey: OTHER_TOKEN, maxRetries: 0 });
    await assert.rejects(other.messages.batches.retrieve(mine.id), (err) => {
      assert.ok(err instanceof Anthropic.NotFoundError, String(err));
      assert.equal(err.error.error.type, 'not_found_error');
      assert.match(err.error.error.message, new RegExp(`no message batch ${mine.id}`));
      return true;
    });
    const bad = async (body, pattern) => {
      await assert.rejects(client.messages.batches.create(body), (err) => {
        assert.ok(err instanceof Anthropic.BadRequestError, String(err));
        assert.equal(err.error.error.type, 'invalid_request_error');
        assert.match(err.error.error.message, pattern);
        return true;
      });
    };
    await bad({ requests: [{ custom_id: 'a', params: ask(0) }, { custom_id: 'a', params: ask(1) }] }, /requests\[1\]: duplicate custom_id "a"/);
    await bad({ requests: [{ custom_id: 'a', params: ask(0) }], provider: { name: 'openai' } }, /unknown field "provider" \(expected requests\)/);
    await bad({ requests: [{ custom_id: 'a', params: { ...ask(0), model: 'claude-opus-4' } }] }, /requests\[0\]\.params\.model must be one of/);
    await assert.rejects(client.messages.batches.retrieve('msgbatch_nope'), Anthropic.NotFoundError);
    await assert.rejects(client.messages.create({ ...ask(0), messages: [{ role: 'user', content: 'x'.repeat(1100 * 1024) }] }), (err) => {
      assert.equal(err.status, 413);
      assert.equal(err.error.error.type, 'request_too_large');
      assert.match(err.error.error.message, /larger than 1048576 bytes \(EDGEBATCH_MAX_BODY_BYTES\)/);
      return true;
    });

    // No secret of the Worker in anything the SDK got back, nor in the logs.
    assert.ok(!worker.logs().includes(FAKE_ANTHROPIC_KEY));
    assert.ok(!worker.logs().includes(TOKEN));
  });
});

describe('worker: realtime calls wait for the account limiter instead of being refused', { timeout: 60_000 }, () => {
  let worker;
  before(async () => {
    // 20 requests a (one-second) minute, and the upstream's own 429s and 529s on top.
    const sim = { ...SIM, minuteMs: 1000, requestsPerMinute: 20, latency: { baseMs: 20, perOutputTokenMs: 0, jitterMs: 10 },
      faults: { rate429: 0.05, rate529: 0.03 } };
    // The token's hour holds exactly these 60 calls.
    worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_ITEMS_PER_HOUR: '60', EDGEBATCH_SIM: 'on', EDGEBATCH_SIM_CONFIG: JSON.stringify(sim) });
  });
  after(async () => {
    await worker?.dispose();
  });

  test('60 calls at once against 20 a second, SDK retries off: every one succeeds; the 61st is past the token\'s hour', async () => {
    const client = new Anthropic({ baseURL: new URL('/anthropic', worker.url).href, apiKey: TOKEN, maxRetries: 0 });
    const started = Date.now();
    const out = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => client.messages.create(ask(i))));
    const elapsed = Date.now() - started;
    const failed = out.filter((o) => o.status === 'rejected').map((o) => String(o.reason).slice(0, 200));
    const stats = await (await fetch(new URL('/sim/stats', worker.url))).json();
    console.log(`# 60 realtime calls at 20/s: ${elapsed} ms, ${stats.requests} upstream requests ${JSON.stringify(stats.byStatus)}`);
    assert.deepEqual(failed, []);
    assert.ok(stats.requests >= 60);
    await assert.rejects(client.messages.create(ask(60)), (err) => {
      assert.ok(err instanceof Anthropic.RateLimitError, String(err));
      assert.equal(err.error.error.type, 'rate_limit_error');
      assert.match(err.error.error.message, /items_per_hour.*EDGEBATCH_ITEMS_PER_HOUR/);
      assert.ok(Number(err.headers.get('retry-after')) > 0);
      return true;
    });
  });
});
