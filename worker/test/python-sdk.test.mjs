// The official Python SDK (PyPI `anthropic`, pinned in tests/python/requirements.txt, in the venv
// scripts/setup.sh makes at .tools/venv), unchanged but for its base_url `{worker}/anthropic` and
// the edgebatch token as its api_key, against the Worker on real workerd (Miniflare) with the
// simulator as the upstream. The pattern users start from (tests/python/realtime.py:
// AsyncAnthropic + asyncio.Semaphore(10) + asyncio.gather, SDK retries off) in 3 processes at
// once, 100 calls each, while the simulator's rate limit binds and it throws in 429s and 529s of
// its own: the account's one limiter and the Worker's retries keep every error from the clients.
// Then a streamed message and a Message Batches round trip, in Python. On the same Worker, the
// official Python `openai` SDK (tests/python/openai_sdk.py) unchanged but for base_url
// `{worker}/openai/v1`: the same pattern over 60 chat completions, a streamed completion with its
// usage, and a Batch API round trip through the Files API.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TOKEN, simStats, startWorker } from './harness.mjs';
import { ROOMY_TOKEN } from './batches-client.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const PYTHON = `${root}.tools/venv/bin/python`;
const SCRIPT = `${root}tests/python/realtime.py`;
const OPENAI_SCRIPT = `${root}tests/python/openai_sdk.py`;
const MODEL = 'claude-haiku-4-5';
const OPENAI_MODEL = 'gpt-4o-mini';
/** The simulator's limit: requests per one-second "minute" (its bucket starts full). */
const LIMIT = 50;
const SIM = {
  seed: 11, minuteMs: 1000, requestsPerMinute: LIMIT,
  latency: { baseMs: 40, perOutputTokenMs: 1, jitterMs: 20 },
  faults: { rate429: 0.03, rate529: 0.03 },
};
/** The account limiter's object name for the simulator upstream (batches/limiter.js limiterName). */
const SIM_LIMITER = `key:anthropic:${createHash('sha256').update('anthropic\nhttp://sim.edgebatch.internal\nsim-key').digest('hex').slice(0, 32)}`;
const SIM_OPENAI_LIMITER = `key:openai:${createHash('sha256').update('openai\nhttp://sim.edgebatch.internal\nsim-key').digest('hex').slice(0, 32)}`;

/** Runs `script` (tests/python/realtime.py unless told) with `job`; resolves with the JSON line it prints. */
function python(job, script = SCRIPT) {
  const name = script.split('/').pop();
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [script, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${name} ${job.mode} exited ${code}: ${err.slice(-2000)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()));
      } catch {
        reject(new Error(`${name} ${job.mode} printed no JSON line: ${out.slice(-500)} ${err.slice(-500)}`));
      }
    });
  });
}

describe('worker: the Python SDKs against {worker}/anthropic and {worker}/openai/v1', { timeout: 90_000 }, () => {
  let worker;
  let base;

  before(async () => {
    assert.ok(existsSync(PYTHON), `${PYTHON} is missing: scripts/setup.sh (make setup) makes it`);
    worker = await startWorker({
      ...ROOMY_TOKEN,
      EDGEBATCH_SIM: 'on',
      EDGEBATCH_SIM_CONFIG: JSON.stringify(SIM),
      EDGEBATCH_BATCH_ALARM_MS: '300',
    });
    base = worker.url.href.replace(/\/$/, '');
  });
  after(async () => {
    await worker?.dispose();
  });

  test('3 processes x 100 calls (Semaphore(10) + gather, SDK retries off) while the upstream limit binds: 300 successes, no error seen', async () => {
    const runs = await Promise.all([0, 1, 2].map(() => python({ worker: base, token: TOKEN, mode: 'realtime', n: 100, model: MODEL })));
    const stats = await simStats(worker.url);
    const ns = await worker.mf.getDurableObjectNamespace('LIMITER');
    const limiter = await ns.get(ns.idFromName(SIM_LIMITER)).stats();
    const seconds = (Math.max(...runs.map((r) => r.endedMs)) - Math.min(...runs.map((r) => r.startedMs))) / 1000;
    console.log(`# Python SDK ${runs[0].sdk}: 300 calls in ${seconds.toFixed(2)} s = ${(300 / seconds).toFixed(1)} calls/s ` +
      `against the simulator's ${LIMIT}/s (its bucket starts full: ${LIMIT} at once, so at best ${((300 - LIMIT) / LIMIT).toFixed(1)} s); ` +
      `upstream ${stats.requests} requests ${JSON.stringify(stats.byStatus)}`);
    assert.deepEqual(runs.flatMap((r) => r.errors), []);
    assert.deepEqual(runs.map((r) => r.ok), [100, 100, 100]);
    // Every call went through the account's one limiter, and the simulator answered each once.
    assert.ok(limiter.granted >= 300, `the account limiter granted ${limiter.granted} permits`);
    assert.equal(limiter.inFlight, 0);
    assert.ok((stats.byStatus['200'] ?? 0) >= 300, JSON.stringify(stats.byStatus));
  });

  test('messages.create(stream=True) and messages.stream: the events, the text, the usage', async () => {
    const r = await python({ worker: base, token: TOKEN, mode: 'stream', model: MODEL });
    assert.equal(r.types[0], 'message_start');
    assert.equal(r.types.at(-1), 'message_stop');
    assert.ok(r.types.filter((t) => t === 'content_block_delta').length >= 2, r.types.join(' '));
    assert.deepEqual(r.types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    assert.ok(r.text.length > 0);
    // The reply depends only on the prompt: the raw events and the helper saw the same text.
    assert.equal(r.rawText, r.text);
    assert.equal(r.finalText, r.text);
    assert.ok(['end_turn', 'max_tokens'].includes(r.stopReason), r.stopReason);
    assert.ok(r.usage.input_tokens > 0 && r.usage.output_tokens > 1, JSON.stringify(r.usage));
  });

  test('Message Batches: create, poll retrieve, results: every custom_id once, succeeded', async () => {
    const r = await python({ worker: base, token: TOKEN, mode: 'batch', n: 20, model: MODEL });
    assert.match(r.id, /^msgbatch_/);
    assert.equal(r.createdStatus, 'in_progress');
    assert.deepEqual(r.counts, { processing: 0, succeeded: 20, errored: 0, canceled: 0, expired: 0 });
    const want = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`py${i}`, 'succeeded']));
    assert.deepEqual(r.results, want);
  });

  // The Python `openai` SDK, on the same Worker and simulator (its limit, its 429s and 529s).
  const openaiPy = (job) => python({ worker: base, token: TOKEN, model: OPENAI_MODEL, ...job }, OPENAI_SCRIPT);

  test('openai: 60 chat.completions.create (AsyncOpenAI, Semaphore(10) + gather, SDK retries off): 60 replies, no error seen', async () => {
    const before = await simStats(worker.url);
    const r = await openaiPy({ mode: 'realtime', n: 60 });
    const stats = await simStats(worker.url);
    const ns = await worker.mf.getDurableObjectNamespace('LIMITER');
    const limiter = await ns.get(ns.idFromName(SIM_OPENAI_LIMITER)).stats();
    const byStatus = Object.fromEntries(Object.entries(stats.byStatus).map(([k, v]) => [k, v - (before.byStatus[k] ?? 0)]).filter(([, v]) => v > 0));
    console.log(`# Python openai SDK ${r.sdk}: 60 calls, upstream ${stats.requests - before.requests} requests ${JSON.stringify(byStatus)}`);
    assert.deepEqual(r.errors, []);
    assert.equal(r.ok, 60);
    // Every call went through the account's one limiter for the OpenAI upstream.
    assert.ok(limiter.granted >= 60, `the account limiter granted ${limiter.granted} permits`);
    assert.equal(limiter.inFlight, 0);
  });

  test('openai: chat.completions.create(stream=True, include_usage): the text reassembles, usage in the last chunk', async () => {
    const r = await openaiPy({ mode: 'stream' });
    assert.deepEqual(r.objects, ['chat.completion.chunk']);
    assert.ok(r.chunks >= 3, `${r.chunks} chunks`);
    assert.ok(r.text.length > 0);
    // The simulator's reply depends only on the prompt: streamed or not, the same text.
    assert.equal(r.text, r.wholeText);
    assert.ok(['stop', 'length'].includes(r.finishReason), r.finishReason);
    assert.deepEqual(r.usageIndexes, [r.chunks - 1], 'usage in the last chunk only');
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 1, JSON.stringify(r.usage));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  test('openai: files.create, batches.create, poll retrieve, files.content: every custom_id once, status 200', async () => {
    const r = await openaiPy({ mode: 'batch', n: 20 });
    assert.match(r.fileId, /^file-/);
    assert.equal(r.filePurpose, 'batch');
    assert.equal(r.createdStatus, 'in_progress');
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.counts, { total: 20, completed: 20, failed: 0 });
    assert.equal(r.errorFileId, null);
    const ids = r.results.map(([id]) => id);
    assert.deepEqual([...ids].sort(), Array.from({ length: 20 }, (_, i) => `py${i}`).sort(), 'every custom_id once');
    for (const [id, status, content] of r.results) {
      assert.equal(status, 200, id);
      assert.ok(content?.length > 0, `${id}: ${content}`);
    }
  });
});
