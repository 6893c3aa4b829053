// CPU post-processing inline vs offloaded (issue 14): 200 items, each a 50 ms call to a
// real HTTP server on loopback, then 40 ms of CPU. Inline: the CPU runs in the task, on the
// event loop (what a user does without postProcess). Offloaded: the same CPU in
// `postProcess`, on the Node entry's worker_threads pool. Every 20th item's call hangs, with
// timeoutMs 300 and no retry: how late its timeout fires shows what the loop's blocking does
// to timers. Figures: wall time, the event loop's delay p50/p99 (monitorEventLoopDelay,
// its default 10 ms resolution) and the attempt timeouts' lateness (elapsedMs - 300).
//
// Run: node bench/post-cpu.mjs   (needs pkg/ from `make build`)
// Env: BENCH_ITEMS (200), BENCH_CALL_MS (50), BENCH_CPU_MS (40), BENCH_CONCURRENCY (16),
//      BENCH_THREADS (the cores: the main thread is mostly idle while the stage runs)
import http from 'node:http';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { BatchProcessor } from '../pkg/node.js';
import { burn } from './post-cpu-work.mjs';

const ITEMS = Number(process.env.BENCH_ITEMS ?? 200);
const CALL_MS = Number(process.env.BENCH_CALL_MS ?? 50);
const CPU_MS = Number(process.env.BENCH_CPU_MS ?? 40);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const THREADS = Number(process.env.BENCH_THREADS ?? availableParallelism());
const TIMEOUT_MS = 300;

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/hang')) return; // never answers: the attempt times out
  setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: `reply ${req.url}` })), CALL_MS);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}`;
const items = Array.from({ length: ITEMS }, (_, i) => i);
const hangs = (i) => i % 20 === 19;

async function call(i, signal) {
  const res = await fetch(`${base}/${hangs(i) ? 'hang' : 'ok'}/${i}`, { signal });
  return res.json();
}

async function measure(name, runBatch) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const started = performance.now();
  const results = await runBatch();
  const wall = performance.now() - started;
  delay.disable();
  const late = results.filter((r) => !r.ok && r.error.kind === 'timeout').map((r) => r.elapsedMs - TIMEOUT_MS).sort((a, b) => a - b);
  const ok = results.filter((r) => r.ok).length;
  const q = (p) => late[Math.min(late.length - 1, Math.floor(p * late.length))] ?? NaN;
  const row = {
    name, wall, ok, timeouts: late.length,
    p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6,
    lateP50: q(0.5), lateMax: late.at(-1) ?? NaN,
  };
  console.log(`${name.padEnd(24)} wall ${wall.toFixed(0).padStart(6)} ms   ok ${ok}/${ITEMS}   loop delay p50 ${row.p50.toFixed(1)} ms  p99 ${row.p99.toFixed(1)} ms  max ${row.max.toFixed(1)} ms   timeouts ${late.length}: late p50 ${row.lateP50.toFixed(1)} ms  max ${row.lateMax.toFixed(1)} ms`);
  return row;
}

const options = { concurrency: CONCURRENCY, timeoutMs: TIMEOUT_MS, maxRetries: 0 };
console.log(`# post-processing: ${ITEMS} items, ${CALL_MS} ms calls, ${CPU_MS} ms CPU each, concurrency ${CONCURRENCY}, ${availableParallelism()} cores`);
const inline = await measure('inline (CPU in the task)', () =>
  new BatchProcessor(options).map(items, async (i, { signal }) => burn(await call(i, signal), { ms: CPU_MS })));
const module = new URL('./post-cpu-work.mjs', import.meta.url);
const offloaded = await measure(`postProcess, ${THREADS} threads`, () =>
  new BatchProcessor(options).map(items, async (i, { signal }) => call(i, signal), {
    postProcess: { module, export: 'burn', threads: THREADS },
  }));
const byDefault = await measure('postProcess, default', () =>
  new BatchProcessor(options).map(items, async (i, { signal }) => call(i, signal), {
    postProcess: { module, export: 'burn' },
  }));
server.close();
console.log(`# the default (cores - 1 threads): wall ${(byDefault.wall / inline.wall).toFixed(2)}x inline (goal <= 0.7), loop delay p99 ${byDefault.p99.toFixed(1)} ms (goal < 20) vs ${inline.p99.toFixed(1)} ms inline; ` +
  `${THREADS} threads: ${(offloaded.wall / inline.wall).toFixed(2)}x, p99 ${offloaded.p99.toFixed(1)} ms (the main thread shares the cores); ` +
  `inline, CPU time ate ${inline.timeouts - byDefault.timeouts} healthy items' attempt timeouts`);
