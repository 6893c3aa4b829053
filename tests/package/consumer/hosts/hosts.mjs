// One script for the hosts that are not Node but take the package's `node` entry (Bun, Deno):
// `bun hosts.mjs SIM_URL SERVER_URL` / `deno run ... hosts.mjs SIM_URL SERVER_URL`. Each
// section runs one feature against the loopback servers and reports what it saw as JSON, one
// line per section ({ section, out } or { section, error }); the test asserts on those lines.
import { BatchProcessor, summarize } from 'edgebatch';
import process from 'node:process';

const [sim, server] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const brief = (r) => (r.ok ? { index: r.index, ok: true, attempts: r.attempts } : { index: r.index, ok: false, attempts: r.attempts, kind: r.error.kind, status: r.error.status, retryable: r.error.retryable, message: r.error.message });
const stats = async () => (await fetch(`${server}/stats`)).json();
/** Polls the test server until `ok(stats)`, for at most 5 s. */
async function until(ok) {
  for (let i = 0; i < 250; i++) {
    const s = await stats();
    if (ok(s)) return s;
    await sleep(20);
  }
  return stats();
}
const body = (model, text) => ({ model, max_tokens: 32, messages: [{ role: 'user', content: text }] });

const sections = {
  // Which file of the package the host loads.
  async entry() {
    return { resolved: import.meta.resolve('edgebatch').replace(/^.*\/node_modules\//, '') };
  },

  // map: input order whatever the completion order; a 503 retried once after its
  // retry-after-ms; a plain throw is a `task` error, not retried; progress ends at done.
  async map() {
    const progress = [];
    const bp = new BatchProcessor({ concurrency: 3, seed: 1, onProgress: (p) => progress.push(p) });
    const seen = new Map();
    const results = await bp.map([1, 2, 3, 4, 5], async (n, { attempt, signal }) => {
      seen.set(n, attempt);
      if (!(signal instanceof AbortSignal)) throw new Error('no AbortSignal');
      await sleep((5 - n) * 15);
      if (n === 2 && attempt === 1) throw Object.assign(new Error('busy'), { status: 503, headers: { 'retry-after-ms': '5' } });
      if (n === 4) throw new Error('four is bad');
      return n * 10;
    });
    const last = progress.at(-1);
    return {
      results: results.map((r) => ({ ...brief(r), value: r.value })),
      progress: { total: last.total, done: last.done, ok: last.ok, failed: last.failed, retries: last.retries },
      summary: summarize(results),
    };
  },

  // run: Anthropic bodies to the test server's mock API over the host's fetch (a 529 retried,
  // a 400 not), and fetch specs (a JSON echo, a 404).
  async run() {
    const bp = new BatchProcessor({
      concurrency: 4,
      seed: 1,
      backoff: { baseMs: 5, maxMs: 20 },
      provider: { name: 'anthropic', apiKey: 'sk-ant-hosts-secret-key', baseUrl: server },
    });
    const provider = await bp.run([body('ok', 'first'), body(`flaky:${crypto.randomUUID()}:1:529`, 'second'), body('status:400', 'third')]);
    const plain = await new BatchProcessor({ seed: 1 }).run([
      { url: `${server}/echo`, method: 'POST', body: { n: 7 } },
      { url: `${server}/status/404` },
    ]);
    return {
      provider: provider.map((r) => ({ ...brief(r), text: r.value?.text, type: r.error?.type, inputTokens: r.usage?.inputTokens })),
      leaked: JSON.stringify(provider).includes('sk-ant-hosts-secret-key'),
      plain: plain.map((r) => ({ ...brief(r), status: r.value?.status ?? r.error?.status, echoed: r.value?.body?.body })),
    };
  },

  // stream: results in completion order. Each task waits for its gate; the loop opens the
  // next gate when a result arrives, so the completion order is 2, 0, 3, 1 by construction.
  // Then the simulator's replies streamed with no fn (provider bodies, paced, with usage).
  async stream() {
    const order = [2, 0, 3, 1];
    const gates = order.map(() => Promise.withResolvers());
    gates[order[0]].resolve();
    const bp = new BatchProcessor({ concurrency: 4 });
    const yielded = [];
    for await (const r of bp.stream(['a', 'b', 'c', 'd'], async (s, { index }) => {
      await gates[index].promise;
      return s.toUpperCase();
    })) {
      yielded.push([r.index, r.value]);
      const next = order[yielded.length];
      if (next !== undefined) gates[next].resolve();
    }
    const simBp = new BatchProcessor({ concurrency: 3, provider: { name: 'anthropic', apiKey: 'sk-ant-hosts-test', baseUrl: sim } });
    const fromSim = [];
    for await (const r of simBp.stream(['one', 'two', 'three'].map((t) => body('sim-1', `Summarize: ${t}`)))) {
      fromSim.push({ index: r.index, ok: r.ok, text: r.value?.text, outputTokens: r.usage?.outputTokens });
    }
    return { yielded, fromSim };
  },

  // Cancellation: requests hanging on the test server are aborted by the caller's signal
  // (the server sees the sockets close), and a task's signal fires on cancel.
  async cancel() {
    const before = await stats();
    const controller = new AbortController();
    const bp = new BatchProcessor({ concurrency: 4, signal: controller.signal });
    const pending = bp.run([1, 2, 3].map((i) => ({ url: `${server}/hang?i=${i}` })));
    await until((s) => s.inFlight - before.inFlight >= 3);
    controller.abort();
    const results = await pending;
    const after = await until((s) => s.aborted - before.aborted >= 3);
    // A call's own signal, and what the task's signal saw.
    const call = new AbortController();
    let sawAbort = 0;
    const mapped = new BatchProcessor({ concurrency: 2 }).map(['x', 'y'], (item, { signal }) => new Promise((_, reject) => {
      signal.addEventListener('abort', () => {
        sawAbort += 1;
        reject(signal.reason);
      });
    }), { signal: call.signal });
    setTimeout(() => call.abort(), 20);
    const taskResults = await mapped;
    return {
      results: results.map(brief),
      serverAborted: after.aborted - before.aborted,
      taskResults: taskResults.map(brief),
      sawAbort,
    };
  },

  // postProcess: the stage on the host's worker threads (the node entry's pool); a throw in
  // it fails that item alone with kind `process`. A deadline bounds the call.
  async postProcess() {
    const bp = new BatchProcessor({ concurrency: 3, deadlineMs: 4000 });
    const results = await bp.map(['alpha', 'boom', 'gamma'], async (s) => s, {
      postProcess: { module: new URL('./post.js', import.meta.url), export: 'tag', threads: 2 },
    });
    return { results: results.map((r) => ({ ...brief(r), value: r.value })) };
  },

  // The stage's workers: one that dies is reported with its exit code and replaced (one
  // thread: the next value runs on the replacement); the caller's cancel during the stage
  // terminates the worker busy in it (its tick counter stands still after).
  async postWorkers() {
    const stage = (name) => ({ module: new URL('./post.js', import.meta.url), export: name, threads: 1 });
    const died = await new BatchProcessor({ concurrency: 1, deadlineMs: 4000 }).map(['die', 'after'], async (s) => s, { postProcess: stage('tag') });
    const ticks = new SharedArrayBuffer(4);
    const count = () => Atomics.load(new Int32Array(ticks), 0);
    const controller = new AbortController();
    const pending = new BatchProcessor({ deadlineMs: 10_000 }).map([ticks], async (t) => t, { postProcess: stage('spin'), signal: controller.signal });
    for (let i = 0; i < 500 && count() === 0; i++) await sleep(10);
    const ranBefore = count() > 0;
    controller.abort();
    const cancelled = await pending;
    // Terminating a thread is asynchronous (and slower on a loaded machine): the count must
    // stand still for 200 ms within 2 s of the cancel (a spinning worker ticks all the time).
    let stopped = count();
    let still = false;
    for (const end = Date.now() + 2_000; !still && Date.now() < end;) {
      await sleep(200);
      still = count() === stopped;
      stopped = count();
    }
    return {
      died: died.map((r) => ({ ...brief(r), value: r.value })),
      cancelled: cancelled.map(brief),
      ranBefore,
      ranAfter: !still,
    };
  },
};

for (const name of Object.keys(sections)) {
  try {
    console.log(JSON.stringify({ section: name, out: await sections[name]() }));
  } catch (err) {
    console.log(JSON.stringify({ section: name, error: String(err?.stack ?? err) }));
  }
}
