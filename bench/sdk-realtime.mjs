// Realtime calls of the official Python SDK, unchanged, direct to the simulator vs through the
// Worker's {worker}/anthropic (issue 23, "one quota for every process"). N processes (1, 3, 8)
// each run the pattern users start from (tests/python/realtime.py, mode "bench": AsyncAnthropic
// + asyncio.Semaphore(10) + gather, the SDK's retries off), CALLS calls in all, started together,
// while the upstream's rate limit binds:
//   direct   js/sim-server.mjs on loopback (its own process), the SDK's base_url its origin
//   worker   the Worker on workerd (Miniflare), the SDK's base_url {worker}/anthropic; its
//            upstream is its in-process simulator (EDGEBATCH_SIM = "on") with the same options
// Per run: items (successes) per second against the simulator's limit, what the clients saw by
// status, and the upstream's requests by status (the simulator's own count). Then, at low load
// (1 process, LOW_RATE calls/s, far under the limit, no latency jitter so that call i takes the
// same upstream time on both paths), the latency the Worker adds per call (p50/p99 of worker_i -
// direct_i). A fresh simulator (and Worker) per run: a full bucket and a new limiter each time.
// Prints a table; not a test.
//
// Run: node bench/sdk-realtime.mjs   (after `make build`; the venv .tools/venv is made by
// scripts/setup.sh). About 2.5 minutes.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startWorker, TOKEN } from '../worker/test/harness.mjs';
import { ROOMY_TOKEN } from '../worker/test/batches-client.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const PYTHON = `${root}.tools/venv/bin/python`;
const SCRIPT = `${root}tests/python/realtime.py`;
const MODEL = 'claude-haiku-4-5';
/** The simulator's limit: requests per one-second "minute" (its bucket starts full), as worker/test/python-sdk.test.mjs. */
const LIMIT = 50;
const MINUTE_MS = 1000;
const LATENCY = { baseMs: 40, perOutputTokenMs: 1, jitterMs: 20 };
/** No random faults: every 429 is the rate limit's. */
const SIM = { seed: 11, minuteMs: MINUTE_MS, requestsPerMinute: LIMIT, latency: LATENCY, faults: {} };
const PROCESSES = [1, 3, 8];
/** Calls per run, split across its processes. */
const CALLS = 300;
/** Low load: LOW_CALLS calls at LOW_RATE calls/s from one process, the first left out (a cold start). */
const LOW_CALLS = 201;
const LOW_RATE = 5;
/** Bounds: a run that has not ended by then is killed and reported as such. */
const RUN_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 60_000;

if (!existsSync(PYTHON)) {
  console.error(`${PYTHON} is missing: scripts/setup.sh (make setup) makes it`);
  process.exit(1);
}

/** Resolves with the first line of `stream` that matches `re`, or rejects after `ms`. */
function lineOf(stream, re, ms, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(reject, new Error(`${what}: no line matching ${re} in ${ms} ms: ${buf.slice(-500)}`)), ms);
    const onData = (d) => {
      buf += d;
      const m = buf.split('\n').map((l) => re.exec(l)).find(Boolean);
      if (m) done(resolve, m);
    };
    const onClose = () => done(reject, new Error(`${what} exited before ${re}: ${buf.slice(-500)}`));
    function done(fn, v) {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('close', onClose);
      fn(v);
    }
    stream.on('data', onData);
    stream.on('close', onClose);
  });
}

/** Stops a child this bench started (by its pid) and waits for it to exit. */
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** js/sim-server.mjs in a process of its own on 127.0.0.1; { url, stats(), close() }. */
async function startSim(options) {
  const child = spawn(process.execPath, [`${root}js/sim-server.mjs`, '--options', JSON.stringify(options), '--until-stdin-closes'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8');
  try {
    const [, url] = await lineOf(child.stdout, /^READY (http:\/\/127\.0\.0\.1:\d+)/, 30_000, 'sim-server');
    return {
      url,
      stats: async () => (await fetch(`${url}/stats`)).json(),
      close: () => stop(child),
    };
  } catch (e) {
    await stop(child);
    throw e;
  }
}

/** One tests/python/realtime.py "bench" process; `ready` resolves once the SDK is loaded. */
function python(job) {
  const child = spawn(PYTHON, [SCRIPT, JSON.stringify({ ...job, mode: 'bench', model: MODEL, go: true })], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8');
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const ready = lineOf(child.stdout, /^READY$/, READY_TIMEOUT_MS, 'realtime.py');
  const result = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`realtime.py exited ${code ?? child.signalCode}: ${err.slice(-2000)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()));
      } catch {
        reject(new Error(`realtime.py printed no JSON line: ${out.slice(-500)} ${err.slice(-500)}`));
      }
    });
  });
  result.catch(() => {});
  return { child, ready, result, go: () => child.stdin.end('go\n') };
}

/** Runs `jobs` as processes started together; every call [startMs, ms, status] of all of them. */
async function processes(jobs) {
  const procs = jobs.map(python);
  const timer = setTimeout(() => procs.forEach((p) => p.child.kill('SIGKILL')), RUN_TIMEOUT_MS);
  try {
    await Promise.all(procs.map((p) => p.ready));
    procs.forEach((p) => p.go());
    const runs = await Promise.all(procs.map((p) => p.result));
    return { calls: runs.flatMap((r) => r.calls), sdk: runs[0].sdk };
  } finally {
    clearTimeout(timer);
    await Promise.all(procs.map((p) => stop(p.child)));
  }
}

/** One of the two paths, fresh: `{ baseUrl, stats(), close() }`. */
async function upstream(path, sim) {
  if (path === 'direct') {
    const s = await startSim(sim);
    return { baseUrl: s.url, stats: s.stats, close: s.close };
  }
  const worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_SIM_CONFIG: JSON.stringify(sim), EDGEBATCH_BATCH_ALARM_MS: '300' });
  const base = worker.url.origin;
  return { baseUrl: `${base}/anthropic`, stats: async () => (await fetch(`${base}/sim/stats`)).json(), close: () => worker.dispose() };
}

/** `n` calls split as evenly as can be over `k` processes. */
const split = (n, k) => Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));

async function throughput(path, procs) {
  const up = await upstream(path, SIM);
  try {
    const { calls, sdk } = await processes(split(CALLS, procs).map((n) => ({ baseUrl: up.baseUrl, token: TOKEN, n })));
    const stats = await up.stats();
    const t0 = Math.min(...calls.map((c) => c[0]));
    const end = Math.max(...calls.map((c) => c[0] + c[1]));
    const ok = calls.filter((c) => c[2] === 200).length;
    const seen = {};
    for (const c of calls) if (c[2] !== 200) seen[c[2]] = (seen[c[2]] ?? 0) + 1;
    return { path, procs, calls: calls.length, ok, seen, secs: (end - t0) / 1000, upstream: stats.byStatus, sdk };
  } finally {
    await up.close();
  }
}

async function lowLoad(path) {
  const up = await upstream(path, { ...SIM, latency: { ...LATENCY, jitterMs: 0 } });
  try {
    const { calls } = await processes([{ baseUrl: up.baseUrl, token: TOKEN, n: LOW_CALLS, rate: LOW_RATE }]);
    const bad = calls.filter((c) => c[2] !== 200).length;
    if (bad > 0) throw new Error(`low load, ${path}: ${bad} of ${calls.length} calls failed`);
    return { cold: calls[0][1], ms: calls.slice(1).map((c) => c[1]) };
  } finally {
    await up.close();
  }
}

/** Nearest-rank percentile. */
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(p * xs.length) - 1)];
const f = (x, d) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const byStatus = (o) => Object.entries(o).filter(([k]) => k !== '200').map(([k, n]) => `${k}:${n}`).join(' ') || 'none';

function print(head, body) {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(head));
  for (const b of body) console.log(line(b));
}

// The best any client can do with CALLS calls: the bucket starts full (LIMIT at once), then
// LIMIT per second, and the last one takes a reply's time (baseMs + ~16 tokens).
const bound = CALLS / ((CALLS - LIMIT) / LIMIT + (LATENCY.baseMs + 16) / 1000);
console.log(`Realtime, the Python SDK (Semaphore(10) + gather, max_retries=0) x N processes, ${CALLS} calls per run: ` +
  `direct to the simulator vs through the Worker's /anthropic. Simulator: ${LIMIT} requests per ${MINUTE_MS} ms "minute" ` +
  `(bucket starts full), latency ${LATENCY.baseMs} ms + ${LATENCY.perOutputTokenMs} ms/token + U(0, ${LATENCY.jitterMs}) ms, no random faults.`);
const rows = [];
for (const procs of PROCESSES) {
  for (const path of ['direct', 'worker']) {
    const t = Date.now();
    const r = await throughput(path, procs);
    rows.push(r);
    console.log(`  ${path} x ${procs}: ${r.ok}/${r.calls} ok in ${r.secs.toFixed(2)} s, clients saw ${byStatus(r.seen)} ` +
      `(${((Date.now() - t) / 1000).toFixed(0)} s with startup)`);
  }
}
const low = {};
for (const path of ['direct', 'worker']) {
  low[path] = await lowLoad(path);
  console.log(`  low load, ${path}: ${low[path].ms.length} calls at ${LOW_RATE}/s, p50 ${f(pct(low[path].ms, 0.5), 1)} ms`);
}

console.log(`\nPython anthropic ${rows[0].sdk}. calls/s = the clients' calls (failed ones too) / (last reply - first call); items/s = successes / the same; x limit = items/s / ${LIMIT}; ` +
  `x bound = items/s / ${f(bound, 1)} (the best ${CALLS} calls can do: ${LIMIT} at once from the full bucket, then ${LIMIT}/s). ` +
  'Direct, most calls fail fast (429), so a run ends early and its few successes, half of them from the full bucket, ' +
  'make a high items/s: compare ok. clients saw: the failures the SDK raised, by status; upstream: the simulator\'s answers other than 200.\n');
print(['path', 'procs', 'calls', 'ok', 'secs', 'calls/s', 'items/s', 'x limit', 'x bound', 'clients saw', 'upstream non-200'],
  rows.map((r) => [r.path, String(r.procs), String(r.calls), String(r.ok), f(r.secs, 2), f(r.calls / r.secs, 1), f(r.ok / r.secs, 1), f(r.ok / r.secs / LIMIT, 2),
    f(r.ok / r.secs / bound, 2), byStatus(r.seen), byStatus(r.upstream)]));

const added = low.worker.ms.map((ms, i) => ms - low.direct.ms[i]);
console.log(`\nLow load: 1 process, ${LOW_CALLS - 1} calls at ${LOW_RATE}/s (the limit: ${LIMIT}/s), no jitter: call i takes the same ` +
  'upstream time on both paths; the first call (a cold start: connection, isolate, limiter) is left out, shown as "cold". ' +
  `added = worker_i - direct_i. p99 (nearest rank) of ${LOW_CALLS - 1}: the ${Math.ceil(0.99 * (LOW_CALLS - 1))}th smallest.\n`);
print(['', 'p50 ms', 'p99 ms', 'cold ms'], [
  ['direct', f(pct(low.direct.ms, 0.5), 1), f(pct(low.direct.ms, 0.99), 1), f(low.direct.cold, 1)],
  ['worker', f(pct(low.worker.ms, 0.5), 1), f(pct(low.worker.ms, 0.99), 1), f(low.worker.cold, 1)],
  ['added', f(pct(added, 0.5), 1), f(pct(added, 0.99), 1), f(low.worker.cold - low.direct.cold, 1)],
]);
