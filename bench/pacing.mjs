// Pacing: the same batch of Messages API calls against the project's simulated API on loopback,
// run by edgebatch and by what a typical user writes instead (p-limit + p-retry, p-queue,
// bottleneck, Python's asyncio.Semaphore + the anthropic SDK). Prints a table; not a test.
//
// Run: node bench/pacing.mjs        (needs pkg/ from `make build`, `npm ci`, python3 for the
// Python row: the first run makes bench/python/.venv and pip-installs the pinned SDK there)
// Env: PACING_ONLY=1,3 runs those scenarios only; PACING_RUNNERS=edgebatch,python runs the
// runners whose names contain one of the words; PACING_NO_PYTHON=1 skips the Python rows.
//
// Every runner of a scenario gets its own fresh simulator (same seed), the same request bodies,
// the same concurrency, retry budget (maxRetries retries after the first attempt) and attempt
// timeout. A "minute" of the simulator lasts `minuteMs`; a budget given to a runner is the sim's
// per-"minute" limit, scaled to what the runner's API means by it (edgebatch: per real minute).
//
// "bound" is a physical lower bound on the wall time: the larger of
//   - per rate limit: max(0, total - capacity) / (capacity per ms) + the fastest reply, and
//   - the sum of all reply latencies in expectation (the sim's jitter is U(0, jitterMs): its
//     mean, jitterMs / 2, is in every reply, failed ones too), plus the expected random 529/500
//     replies' (baseMs + jitterMs / 2 each), / min(concurrency, the server's capacity): the
//     expected total work over the most that can run at once, which no client's expected wall
//     time can beat,
//   - for hang scenarios: one attempt timeout + the fastest reply.
// Totals (output tokens per reply are a function of the prompt) come from a calibration pass
// against an unlimited, fault-free simulator.
//
// Why a 6 s "minute": real anthropic-ratelimit-*-reset headers are whole seconds, ~2% of a
// real 60 s window. A client that reads its refill rate from the headers (edgebatch) needs the
// reset to be fine against the window: with whole-second resets a 2 s "minute" leaves it
// several times too slow, a 6 s one ~17% resolution. (Millisecond resets would allow less.)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync, constants } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const wasmPath = new URL('../pkg/edgebatch_bg.wasm', import.meta.url);
if (!existsSync(wasmPath)) {
  console.error('pkg/edgebatch_bg.wasm not found: run `make build` first');
  process.exit(1);
}
const pkg = await import('../pkg/edgebatch.js');
pkg.initSync({ module: readFileSync(wasmPath) });
const { BatchProcessor } = pkg;

// ---- child mode: the memory measurement runs in its own `node --expose-gc` process ----------
if (process.argv[2] === '--memory-child') {
  await memoryChild(Number(process.argv[3] ?? 100_000), process.argv[4] ?? 'edgebatch');
  process.exit(0);
}

const { startSimServer } = await import('../js/sim-server.mjs');
const { default: pLimit } = await import('p-limit');
const { default: pRetry } = await import('p-retry');
const { default: PQueue } = await import('p-queue');
const { default: Bottleneck } = await import('bottleneck');

const SEED = 7;
const API_KEY = 'k';
const PY_SDK = 'anthropic==2.13.0';
const VENV = `${root}bench/python/.venv`;
const VENV_PY = `${VENV}/bin/python`;

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// ---- the job: N Messages API bodies with prompts of varying length ---------------------------
const WORDS = 'the quarterly report shows revenue growth in every region while costs stayed flat and the team shipped two releases on time'.split(' ');
function makeBodies(n, maxTokens) {
  return Array.from({ length: n }, (_, i) => {
    const words = Array.from({ length: 8 + ((i * 7) % 40) }, (_, k) => WORDS[(i + k * 3) % WORDS.length]);
    return {
      model: 'claude-sonnet-4-5',
      max_tokens: maxTokens,
      messages: [{ role: 'user', content: `Summarize note ${i}: ${words.join(' ')}.` }],
    };
  });
}

// ---- scenarios --------------------------------------------------------------------------------
const latency = { baseMs: 30, perOutputTokenMs: 0.1, jitterMs: 20 };
const llmLatency = { baseMs: 250, perOutputTokenMs: 0.5, jitterMs: 100 };
const SCENARIOS = [
  {
    id: 1,
    title: 'tight requests/minute, concurrency set too high',
    n: 160, concurrency: 64, maxRetries: 4, timeoutMs: 10_000, maxTokens: 256,
    sim: { minuteMs: 6000, requestsPerMinute: 80, maxTokens: 200, latency },
    budget: true,
  },
  {
    id: 2,
    title: 'tight output-tokens/minute (max_tokens 256, replies 20..200 tokens)',
    n: 160, concurrency: 16, maxRetries: 4, timeoutMs: 10_000, maxTokens: 256,
    sim: { minuteMs: 6000, outputTokensPerMinute: 8500, maxTokens: 200, latency },
    budget: true,
  },
  {
    id: 3,
    title: '20% overload: 10% 529 + 10% 500, no rate limit',
    n: 200, concurrency: 16, maxRetries: 4, timeoutMs: 10_000, maxTokens: 256,
    sim: { minuteMs: 6000, maxTokens: 200, latency, faults: { rate529: 0.1, rate500: 0.1 } },
    budget: false,
  },
  {
    id: 4,
    title: '3% hangs, attempt timeout 1000 ms, no rate limit',
    n: 200, concurrency: 16, maxRetries: 4, timeoutMs: 1000, maxTokens: 256,
    sim: { minuteMs: 6000, maxTokens: 200, latency, faults: { hang: 0.03 } },
    budget: false,
  },
  {
    id: 5,
    title: 'rate-limit headers only (requests + output tokens; no runner gets a budget)',
    n: 160, concurrency: 32, maxRetries: 4, timeoutMs: 10_000, maxTokens: 256,
    sim: { minuteMs: 6000, requestsPerMinute: 100, outputTokensPerMinute: 12000, maxTokens: 200, latency },
    budget: false,
  },
  // Issue 10: random failures (sending less cannot make them rarer) against a server that is
  // really full (sending less is the cure), and the two mixed. Latency like an LLM's.
  {
    id: 6,
    title: 'random 20% failures: 15% 529 + 5% 500, no rate limit, no capacity limit',
    n: 300, concurrency: 10, maxRetries: 5, timeoutMs: 10_000, maxTokens: 256,
    sim: { minuteMs: 6000, maxTokens: 200, latency: llmLatency, faults: { rate529: 0.15, rate500: 0.05 } },
    budget: false, fixed: true,
  },
  {
    id: 7,
    title: 'saturated: the server serves 8 at once, queues 4 more (slower), sheds the rest (529 in 5 ms)',
    n: 240, concurrency: 32, maxRetries: 5, timeoutMs: 10_000, maxTokens: 256,
    sim: { minuteMs: 6000, maxTokens: 200, latency: llmLatency, capacity: 8, queue: 4, shedMs: 5 },
    budget: false, fixed: true,
  },
  {
    id: 8,
    title: 'mixed: capacity 8 + queue 4 as in [7], plus 10% random failures (5% 529 + 5% 500)',
    n: 240, concurrency: 32, maxRetries: 5, timeoutMs: 10_000, maxTokens: 256,
    sim: { minuteMs: 6000, maxTokens: 200, latency: llmLatency, capacity: 8, queue: 4, shedMs: 5, faults: { rate529: 0.05, rate500: 0.05 } },
    budget: false, fixed: true,
  },
];

// ---- a typical user's fetch: AbortController timeout over the whole exchange ----------------
class HttpError extends Error {
  constructor(status, retryAfter) {
    super(`HTTP ${status}`);
    this.status = status;
    this.retryAfter = retryAfter; // seconds, from the retry-after header
  }
}
async function callApi(baseUrl, body, timeoutMs) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const res = await fetch(`${baseUrl}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: ac.signal,
    });
    const text = await res.text();
    if (!res.ok) {
      const ra = Number(res.headers.get('retry-after'));
      throw new HttpError(res.status, Number.isFinite(ra) && ra > 0 ? ra : undefined);
    }
    return JSON.parse(text);
  } finally {
    clearTimeout(timer);
  }
}
const retryableError = (error) => !(error instanceof HttpError) || error.status === 429 || error.status >= 500;
// p-retry with its defaults (1 s, 2 s, 4 s, ... no jitter) and the server's retry-after on top.
const withRetry = (sc, fn) =>
  pRetry(fn, {
    retries: sc.maxRetries,
    shouldRetry: ({ error }) => retryableError(error),
    onFailedAttempt: async ({ error }) => {
      if (error.retryAfter) await sleep(error.retryAfter * 1000);
    },
  });

/** Requests per sim "minute" a user would derive from the known limits (tokens via max_tokens). */
function knownRequestsPerWindow(sc, bodies) {
  const caps = [];
  if (sc.sim.requestsPerMinute) caps.push(sc.sim.requestsPerMinute);
  if (sc.sim.outputTokensPerMinute) caps.push(Math.floor(sc.sim.outputTokensPerMinute / sc.maxTokens));
  if (sc.sim.inputTokensPerMinute) {
    const maxIn = Math.max(...bodies.map((b) => Math.ceil(b.messages[0].content.length / 4)));
    caps.push(Math.floor(sc.sim.inputTokensPerMinute / maxIn));
  }
  return caps.length ? Math.max(1, Math.min(...caps)) : undefined;
}

// ---- runners: each returns the number of items that ended ok ---------------------------------
function edgebatchRunner(withBudget, adaptive = true) {
  return async (sc, url, bodies) => {
    const scale = 60_000 / sc.sim.minuteMs;
    const rateLimit = {};
    if (withBudget) {
      if (sc.sim.requestsPerMinute) rateLimit.requestsPerMinute = Math.round(sc.sim.requestsPerMinute * scale);
      if (sc.sim.inputTokensPerMinute) rateLimit.inputTokensPerMinute = Math.round(sc.sim.inputTokensPerMinute * scale);
      if (sc.sim.outputTokensPerMinute) rateLimit.outputTokensPerMinute = Math.round(sc.sim.outputTokensPerMinute * scale);
    }
    const bp = new BatchProcessor({
      provider: { name: 'anthropic', apiKey: API_KEY, baseUrl: url },
      concurrency: sc.concurrency,
      maxRetries: sc.maxRetries,
      timeoutMs: sc.timeoutMs,
      seed: SEED,
      adaptive,
      ...(withBudget ? { rateLimit } : {}),
    });
    const results = await bp.run(bodies);
    bp.free?.();
    return results.filter((r) => r.ok).length;
  };
}

async function pLimitRunner(sc, url, bodies) {
  const limit = pLimit(sc.concurrency);
  const settled = await Promise.allSettled(
    bodies.map((b) => limit(() => withRetry(sc, () => callApi(url, b, sc.timeoutMs)))),
  );
  return settled.filter((s) => s.status === 'fulfilled').length;
}

function pQueueRunner(withBudget) {
  return async (sc, url, bodies) => {
    const perWindow = withBudget ? knownRequestsPerWindow(sc, bodies) : undefined;
    const queue = new PQueue({
      concurrency: sc.concurrency,
      ...(perWindow ? { intervalCap: perWindow, interval: sc.sim.minuteMs } : {}),
    });
    const settled = await Promise.allSettled(
      bodies.map((b) => queue.add(() => withRetry(sc, () => callApi(url, b, sc.timeoutMs)))),
    );
    return settled.filter((s) => s.status === 'fulfilled').length;
  };
}

function bottleneckRunner(withBudget) {
  return async (sc, url, bodies) => {
    const perWindow = withBudget ? knownRequestsPerWindow(sc, bodies) : undefined;
    const limiter = new Bottleneck({
      maxConcurrent: sc.concurrency,
      ...(perWindow
        ? {
            reservoir: perWindow,
            reservoirRefreshAmount: perWindow,
            reservoirRefreshInterval: sc.sim.minuteMs,
          }
        : {}),
    });
    // Bottleneck's own retry idiom: the 'failed' handler returns the delay; retries go through
    // the limiter again (and count against the reservoir).
    limiter.on('failed', (error, info) => {
      if (info.retryCount >= sc.maxRetries || !retryableError(error)) return undefined;
      return error.retryAfter ? error.retryAfter * 1000 : 1000 * 2 ** info.retryCount;
    });
    const settled = await Promise.allSettled(bodies.map((b) => limiter.schedule(() => callApi(url, b, sc.timeoutMs))));
    await limiter.stop({ dropWaitingJobs: true }).catch(() => {});
    return settled.filter((s) => s.status === 'fulfilled').length;
  };
}

// ---- Python: venv with the pinned SDK, made once and reused --------------------------------
let pythonState; // { ok: true } or { ok: false, why }
function ensurePython() {
  if (pythonState) return pythonState;
  if (process.env.PACING_NO_PYTHON) return (pythonState = { ok: false, why: 'skipped (PACING_NO_PYTHON)' });
  const want = PY_SDK.split('==')[1];
  const have = () => {
    if (!existsSync(VENV_PY)) return null;
    const r = spawnSync(VENV_PY, ['-c', 'import anthropic; print(anthropic.__version__)'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  if (have() === want) return (pythonState = { ok: true });
  process.stderr.write(`setting up ${VENV} with ${PY_SDK} (first run only)...\n`);
  if (!existsSync(VENV_PY)) {
    const v = spawnSync('python3', ['-m', 'venv', VENV], { encoding: 'utf8' });
    if (v.status !== 0) return (pythonState = { ok: false, why: `python3 -m venv failed: ${(v.stderr || v.error?.message || '').trim().split('\n').pop()}` });
  }
  const p = spawnSync(`${VENV}/bin/pip`, ['install', '--quiet', '--disable-pip-version-check', PY_SDK], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (p.status !== 0 || have() !== want) {
    const why = (p.stderr || p.error?.message || 'unknown error').trim().split('\n').pop();
    return (pythonState = { ok: false, why: `pip install ${PY_SDK} failed: ${why}` });
  }
  return (pythonState = { ok: true });
}

function pythonRunner(sc, url, bodies) {
  const job = JSON.stringify({
    baseUrl: url, apiKey: API_KEY, concurrency: sc.concurrency, maxRetries: sc.maxRetries, timeoutMs: sc.timeoutMs, bodies,
  });
  return new Promise((ok, fail) => {
    const child = spawn(VENV_PY, [`${root}bench/python/seed.py`, '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('close', (code) => {
      clearTimeout(killer);
      const line = out.trim().split('\n').pop();
      try {
        const r = JSON.parse(line);
        ok({ okCount: r.ok, wallMs: r.wallMs, errors: r.errors });
      } catch {
        fail(new Error(`seed.py exited ${code}: ${err.trim().split('\n').pop() ?? ''}`));
      }
    });
    child.stdin.end(job);
  });
}

// ---- one scenario ---------------------------------------------------------------------------
function runnersFor(sc) {
  const limited = Boolean(sc.sim.requestsPerMinute || sc.sim.inputTokensPerMinute || sc.sim.outputTokensPerMinute);
  const rows = [];
  if (limited && sc.budget) {
    rows.push(['edgebatch (headers only)', edgebatchRunner(false)]);
    rows.push(['edgebatch + rateLimit', edgebatchRunner(true)]);
  } else {
    rows.push([limited ? 'edgebatch (headers only)' : 'edgebatch', edgebatchRunner(false)]);
  }
  if (sc.fixed) rows.push(['edgebatch fixed (adaptive: false)', edgebatchRunner(false, false)]);
  const b = limited && sc.budget;
  rows.push(['p-limit + p-retry', pLimitRunner]);
  rows.push([b ? 'p-queue (intervalCap) + p-retry' : 'p-queue + p-retry', pQueueRunner(b)]);
  rows.push([b ? 'bottleneck (reservoir)' : 'bottleneck', bottleneckRunner(b)]);
  rows.push(['python Semaphore + anthropic SDK', 'python']);
  const want = process.env.PACING_RUNNERS?.split(',');
  return want ? rows.filter(([name]) => want.some((w) => name.includes(w))) : rows;
}

/** Totals the bound needs: output tokens and reply latencies of each body (no faults, no limits). */
async function calibrate(sc, bodies) {
  const { faults, requestsPerMinute, inputTokensPerMinute, outputTokensPerMinute, capacity, queue, shedMs, ...rest } = sc.sim;
  const srv = await startSimServer({ ...rest, seed: SEED, latency: { baseMs: 0, perOutputTokenMs: 0, jitterMs: 0 } });
  try {
    const bp = new BatchProcessor({ provider: { name: 'anthropic', apiKey: API_KEY, baseUrl: srv.url }, concurrency: 32, maxRetries: 0 });
    const res = await bp.run(bodies);
    bp.free?.();
    if (res.some((r) => !r.ok)) throw new Error('calibration: an item failed');
    const out = res.map((r) => r.usage.outputTokens);
    const inp = res.map((r) => r.usage.inputTokens);
    return { out, inp };
  } finally {
    await srv.close();
  }
}

function boundMs(sc, cal) {
  const { baseMs, perOutputTokenMs, jitterMs = 0 } = sc.sim.latency;
  const lat = cal.out.map((t) => baseMs + perOutputTokenMs * t + jitterMs / 2);
  const fastest = Math.min(...lat);
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  // Random 529/500s are answered after baseMs (+ jitter): in expectation n * p / (1 - p). A
  // server with a capacity serves at most `capacity` at once at full speed (more in its
  // queue share its time: no faster), whatever the concurrency.
  const p = (sc.sim.faults?.rate529 ?? 0) + (sc.sim.faults?.rate500 ?? 0);
  const failed = p > 0 ? ((sc.n * p) / (1 - p)) * (baseMs + jitterMs / 2) : 0;
  const parallel = Math.min(sc.concurrency, sc.sim.capacity ?? Infinity);
  const parts = [(sum(lat) + failed) / parallel];
  const rate = (total, cap) => Math.max(0, total - cap) / (cap / sc.sim.minuteMs) + fastest;
  if (sc.sim.requestsPerMinute) parts.push(rate(sc.n, sc.sim.requestsPerMinute));
  if (sc.sim.inputTokensPerMinute) parts.push(rate(sum(cal.inp), sc.sim.inputTokensPerMinute));
  if (sc.sim.outputTokensPerMinute) parts.push(rate(sum(cal.out), sc.sim.outputTokensPerMinute));
  if (sc.sim.faults?.hang) parts.push(sc.timeoutMs + fastest);
  return Math.max(...parts);
}

async function runScenario(sc) {
  const bodies = makeBodies(sc.n, sc.maxTokens);
  const cal = await calibrate(sc, bodies);
  const bound = boundMs(sc, cal);
  const rows = [];
  for (const [name, runner] of runnersFor(sc)) {
    if (runner === 'python') {
      const py = ensurePython();
      if (!py.ok) {
        rows.push({ name, note: py.why });
        continue;
      }
    }
    const srv = await startSimServer({ ...sc.sim, seed: SEED });
    try {
      let okCount;
      let wallMs;
      let note = '';
      if (runner === 'python') {
        const r = await pythonRunner(sc, srv.url, bodies);
        ({ okCount, wallMs } = r);
        if (Object.keys(r.errors).length) note = Object.entries(r.errors).map(([k, v]) => `${k}×${v}`).join(' ');
      } else {
        const t0 = performance.now();
        okCount = await runner(sc, srv.url, bodies);
        wallMs = performance.now() - t0;
      }
      // Let aborted/hung requests settle before reading the stats.
      await sleep(50);
      const st = srv.sim.stats();
      if (st.shed) note = `${note} ${st.shed} shed`.trim();
      rows.push({
        name,
        ok: okCount,
        lost: sc.n - okCount,
        wallMs,
        reqPerItem: st.requests / sc.n,
        r429: st.byStatus['429'] ?? 0,
        note,
      });
    } catch (err) {
      rows.push({ name, note: `error: ${err.message}` });
    } finally {
      await srv.close();
    }
  }
  return { bound, rows, outTotal: cal.out.reduce((a, b) => a + b, 0) };
}

// ---- memory: a child `node --expose-gc` process --------------------------------------------
async function memoryChild(n, which) {
  const items = Array.from({ length: n }, (_, i) => i);
  const gc = globalThis.gc ?? (() => {});
  const settle = () => {
    gc();
    gc();
    return process.memoryUsage();
  };
  const before = settle();
  let peakRss = before.rss;
  let peakHeap = before.heapUsed;
  const sample = () => {
    const m = process.memoryUsage();
    if (m.rss > peakRss) peakRss = m.rss;
    if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
  };
  const timer = setInterval(sample, 5);
  const batch = async () => {
    if (which === 'edgebatch') {
      const bp = new BatchProcessor({ concurrency: 64 });
      const results = await bp.map(items, async () => 1);
      bp.free?.();
      sample();
      return results.filter((r) => r.ok).length;
    }
    const { default: pLimitChild } = await import('p-limit');
    const limit = pLimitChild(64);
    const results = await Promise.all(items.map(() => limit(async () => 1)));
    sample();
    return results.length;
  };
  const t0 = performance.now();
  const ok = await batch();
  const ms = performance.now() - t0;
  const after1 = settle();
  const ok2 = await batch();
  const after2 = settle();
  clearInterval(timer);
  console.log(JSON.stringify({ which, n, ok: Math.min(ok, ok2), ms, before, peakRss, peakHeap, after1, after2, gc: Boolean(globalThis.gc) }));
}

function measureMemory(which) {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--memory-child', '100000', which], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || '').trim().split('\n').pop() };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// ---- main -----------------------------------------------------------------------------------
const fmtS = (ms) => (ms / 1000).toFixed(2);
const pad = (s, w) => String(s).padEnd(w);
const lpad = (s, w) => String(s).padStart(w);
const MB = (b) => `${(b / 1048576).toFixed(1)} MB`;

const only = process.env.PACING_ONLY?.split(',').map(Number);
const started = performance.now();
console.log(`edgebatch pacing bench: simulated Anthropic API on loopback (seed ${SEED}), node ${process.version}, ${process.platform}/${process.arch}`);
console.log('Every runner: same bodies, concurrency, retries and attempt timeout, a fresh simulator each.');
console.log('bound = physical lower bound on wall time (rate limits and reply latency, see the file header).');
console.log('lost = items not ok in the end (or missing); req/item = requests the sim saw / items.');
console.log('* = items were lost: the bound assumes all of them succeed, so wall/bound < 1 is possible.');
console.log('Python wall time is measured inside seed.py (interpreter start and SDK import excluded).');

for (const sc of SCENARIOS) {
  if (only && !only.includes(sc.id)) continue;
  const { bound, rows, outTotal } = await runScenario(sc);
  const lim = [
    sc.sim.requestsPerMinute && `${sc.sim.requestsPerMinute} req`,
    sc.sim.inputTokensPerMinute && `${sc.sim.inputTokensPerMinute} in-tok`,
    sc.sim.outputTokensPerMinute && `${sc.sim.outputTokensPerMinute} out-tok`,
  ].filter(Boolean);
  console.log('');
  console.log(`[${sc.id}] ${sc.title}`);
  console.log(
    `    ${sc.n} items, concurrency ${sc.concurrency}, maxRetries ${sc.maxRetries}, timeout ${sc.timeoutMs} ms; ` +
      `sim minute ${sc.sim.minuteMs} ms${lim.length ? `, limits ${lim.join(' + ')} per minute` : ''}; ` +
      `latency ${sc.sim.latency.baseMs} ms + ${sc.sim.latency.perOutputTokenMs} ms/token + U(0,${sc.sim.latency.jitterMs}); ` +
      `${outTotal} output tokens in all`,
  );
  console.log(
    `${pad('runner', 34)}${lpad('ok', 5)}${lpad('lost', 6)}${lpad('wall s', 9)}${lpad('bound s', 9)}${lpad('wall/bound ', 12)}${lpad('req/item', 10)}${lpad('429s', 7)}  notes`,
  );
  console.log('-'.repeat(100));
  for (const r of rows) {
    if (r.ok === undefined) {
      console.log(`${pad(r.name, 34)}${lpad('-', 5)}${lpad('-', 6)}${lpad('-', 9)}${lpad(fmtS(bound), 9)}${lpad('-', 12)}${lpad('-', 10)}${lpad('-', 7)}  ${r.note}`);
      continue;
    }
    console.log(
      `${pad(r.name, 34)}${lpad(r.ok, 5)}${lpad(r.lost, 6)}${lpad(fmtS(r.wallMs), 9)}${lpad(fmtS(bound), 9)}` +
        `${lpad((r.wallMs / bound).toFixed(2) + (r.lost ? '*' : ' '), 12)}${lpad(r.reqPerItem.toFixed(2), 10)}${lpad(r.r429, 7)}  ${r.note}`,
    );
  }
}

console.log('');
console.log('Memory: 100,000-item map(items, async () => 1), concurrency 64, in a child `node --expose-gc`;');
console.log('the batch runs twice; "after gc" is heapUsed after global.gc() following the 1st / 2nd batch, results dropped.');
console.log(`${pad('runner', 12)}${lpad('rss before', 13)}${lpad('rss peak', 12)}${lpad('heap before', 13)}${lpad('heap peak', 12)}${lpad('after gc 1st/2nd', 20)}${lpad('1st ms', 8)}`);
for (const which of ['edgebatch', 'p-limit']) {
  const m = measureMemory(which);
  if (m.error) {
    console.log(`${pad(which, 12)} failed: ${m.error}`);
    continue;
  }
  console.log(
    `${pad(which, 12)}${lpad(MB(m.before.rss), 13)}${lpad(MB(m.peakRss), 12)}${lpad(MB(m.before.heapUsed), 13)}` +
      `${lpad(MB(m.peakHeap), 12)}${lpad(`${MB(m.after1.heapUsed)} / ${MB(m.after2.heapUsed)}`, 20)}${lpad(Math.round(m.ms), 8)}` +
      `${m.gc ? '' : '  (no global.gc)'}${m.ok === m.n ? '' : `  (${m.ok} of ${m.n} ok!)`}`,
  );
}

const wasm = readFileSync(wasmPath);
const gz = gzipSync(wasm, { level: constants.Z_BEST_COMPRESSION });
console.log('');
console.log(`pkg/edgebatch_bg.wasm: ${wasm.length.toLocaleString('en-US')} bytes, ${gz.length.toLocaleString('en-US')} bytes gzipped (level 9)`);
// The simulator is its own crate and wasm (sim/pkg), never in the library's.
const simWasm = new URL('../sim/pkg/edgebatch_sim_bg.wasm', import.meta.url);
if (existsSync(simWasm)) {
  const sw = readFileSync(simWasm);
  const sz = gzipSync(sw, { level: constants.Z_BEST_COMPRESSION }).length;
  console.log(`sim/pkg/edgebatch_sim_bg.wasm (the simulator, not shipped): ${sw.length.toLocaleString('en-US')} bytes, ${sz.toLocaleString('en-US')} gzipped`);
}
console.log(`total bench time ${fmtS(performance.now() - started)} s`);
