// Scheduling overhead: 100,000 no-op async tasks at concurrency 64, edgebatch vs p-limit vs
// p-queue, all in this one process. Each runner is warmed up once, then measured 3 times;
// the best of 3 is reported. Also prints the gzipped size of the wasm module.
//
// Run: node bench/overhead.mjs            (needs pkg/ from `make build` and `npm ci`)
// Env: BENCH_TASKS (default 100000), BENCH_CONCURRENCY (64), BENCH_RUNS (3)
import { readFileSync, statSync } from 'node:fs';
import { gzipSync, constants } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import pLimit from 'p-limit';
import PQueue from 'p-queue';

const TASKS = Number(process.env.BENCH_TASKS ?? 100_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const wasmUrl = new URL('../pkg/edgebatch_bg.wasm', import.meta.url);
const wasmBytes = readFileSync(wasmUrl);
const { initSync, BatchProcessor } = await import('../pkg/edgebatch.js');
initSync({ module: wasmBytes });

const items = Array.from({ length: TASKS }, (_, i) => i);
let calls = 0;
const noop = async () => {
  calls++;
};

const runners = {
  edgebatch: async () => {
    const bp = new BatchProcessor({ concurrency: CONCURRENCY });
    const results = await bp.map(items, noop);
    bp.free?.();
    return results.length;
  },
  'p-limit': async () => {
    const limit = pLimit(CONCURRENCY);
    const results = await Promise.all(items.map(() => limit(noop)));
    return results.length;
  },
  'p-queue': async () => {
    const queue = new PQueue({ concurrency: CONCURRENCY });
    const results = await Promise.all(items.map(() => queue.add(noop)));
    return results.length;
  },
};

/** Runs `fn` once and checks that every task really ran exactly once. */
async function once(name, fn) {
  calls = 0;
  const n = await fn();
  if (n !== TASKS || calls !== TASKS) throw new Error(`${name}: ${n} results, ${calls} task calls, expected ${TASKS}`);
}

async function measure(name, fn) {
  await once(name, fn); // warm-up
  const times = [];
  for (let r = 0; r < RUNS; r++) {
    globalThis.gc?.();
    const t0 = performance.now();
    await once(name, fn);
    times.push(performance.now() - t0);
  }
  const best = Math.min(...times);
  return { name, best, times, perSec: TASKS / (best / 1000) };
}

const rows = [];
for (const [name, fn] of Object.entries(runners)) rows.push(await measure(name, fn));

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const pad = (s, w) => String(s).padEnd(w);
const lpad = (s, w) => String(s).padStart(w);

console.log(`edgebatch overhead: ${fmt(TASKS)} no-op async tasks, concurrency ${CONCURRENCY}, best of ${RUNS} after a warm-up`);
console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
console.log('');
console.log(`${pad('runner', 12)}${lpad('tasks/s', 14)}${lpad('best ms', 11)}   all runs (ms)`);
console.log('-'.repeat(64));
for (const r of rows) {
  console.log(
    `${pad(r.name, 12)}${lpad(fmt(r.perSec), 14)}${lpad(r.best.toFixed(1), 11)}   ${r.times.map((t) => t.toFixed(1)).join(', ')}`,
  );
}
const eb = rows.find((r) => r.name === 'edgebatch');
const pl = rows.find((r) => r.name === 'p-limit');
const pq = rows.find((r) => r.name === 'p-queue');
console.log('-'.repeat(64));
console.log(`ratio edgebatch/p-limit (tasks/s): ${(eb.perSec / pl.perSec).toFixed(2)}`);
console.log(`ratio edgebatch/p-queue (tasks/s): ${(eb.perSec / pq.perSec).toFixed(2)}`);

const gz = gzipSync(wasmBytes, { level: constants.Z_BEST_COMPRESSION });
console.log('');
console.log(
  `pkg/edgebatch_bg.wasm: ${(statSync(wasmUrl).size / 1024).toFixed(1)} KB raw, ${(gz.length / 1024).toFixed(1)} KB gzip -9`,
);
