// Fallbacks: 300 Messages API calls while the first choice's model is overloaded (80% 529s)
// for a 20 s window, then healthy; a second upstream (another simulator, another model) is
// healthy throughout. Prints wall time and items per alternative for edgebatch with
// `fallbacks`, edgebatch without, and a model of a peer that falls back only once an item's
// retries on the first choice are spent. Prints; asserts nothing.
//
// Run: node bench/fallbacks.mjs   (needs pkg/ and sim/pkg/ from `make build`)
//
// The peer is our own model of that behaviour (not a peer's code): per item, up to
// maxRetries + 1 attempts on the first choice with exponential backoff and full jitter
// (500 ms doubling, capped at 30 s; the sim's 529s carry no retry-after), then the same on the
// second choice; the same concurrency, as a pool of workers.
//
// "bound" is the healthy lower bound: items / concurrency × the mean reply latency
// (baseMs + jitterMs / 2), what the same batch takes with no overload at all.
import { BatchProcessor } from '../pkg/node.js';
import { startSimServer } from '../js/sim-server.mjs';

const N = 300;
const CONCURRENCY = 4;
const MAX_RETRIES = 4;
const WINDOW_MS = 20_000;
const LATENCY = { baseMs: 700, perOutputTokenMs: 0, jitterMs: 100, chunkMs: 15 };
const BOUND_MS = (N / CONCURRENCY) * (LATENCY.baseMs + LATENCY.jitterMs / 2);
const HEADERS = { 'content-type': 'application/json', 'x-api-key': 'sk-ant-bench', 'anthropic-version': '2023-06-01' };

const item = (i) => ({ model: 'claude-first', max_tokens: 50, messages: [{ role: 'user', content: `document ${i}` }] });

async function upstreams() {
  const byModel = { 'claude-first': { overloaded: 0.8, untilMs: performance.now() + WINDOW_MS } };
  const first = await startSimServer({ latency: LATENCY, seed: 1, faults: { byModel } });
  const second = await startSimServer({ latency: LATENCY, seed: 2 });
  return { first, second, close: () => Promise.all([first.close(), second.close()]) };
}

async function edgebatch(withFallbacks) {
  const up = await upstreams();
  const bp = new BatchProcessor({
    concurrency: CONCURRENCY,
    maxRetries: MAX_RETRIES,
    provider: { name: 'anthropic', apiKey: 'sk-ant-bench', baseUrl: up.first.url },
    ...(withFallbacks && {
      fallbacks: [{ provider: { name: 'anthropic', apiKey: 'sk-ant-bench', baseUrl: up.second.url }, model: 'claude-second' }],
    }),
  });
  const t0 = performance.now();
  const results = await bp.run(Array.from({ length: N }, (_, i) => item(i)));
  const wall = performance.now() - t0;
  await up.close();
  const served = [0, 0];
  for (const r of results) if (r.ok) served[r.servedBy?.alternative ?? 0]++;
  return { wall, served, failed: results.filter((r) => !r.ok).length };
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function peer() {
  const up = await upstreams();
  const send = async (url, body) => {
    const res = await fetch(`${url}/v1/messages`, { method: 'POST', headers: HEADERS, body: JSON.stringify(body) });
    await res.arrayBuffer();
    return res.status;
  };
  const served = [0, 0];
  let failed = 0;
  let next = 0;
  const one = async (i) => {
    for (const [k, url, model] of [[0, up.first.url, 'claude-first'], [1, up.second.url, 'claude-second']]) {
      for (let attempt = 0; attempt <= MAX_RETRIES; attempt++) {
        if (attempt > 0) await sleep(Math.random() * Math.min(30_000, 500 * 2 ** (attempt - 1)));
        if ((await send(url, { ...item(i), model })) === 200) return served[k]++;
      }
    }
    failed++;
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < N) await one(next++);
  }));
  const wall = performance.now() - t0;
  await up.close();
  return { wall, served, failed };
}

const rows = [
  ['edgebatch, fallbacks', await edgebatch(true)],
  ['edgebatch, no fallbacks', await edgebatch(false)],
  ['peer model: fallback after retries', await peer()],
];
console.log(`\nfallbacks: ${N} items, concurrency ${CONCURRENCY}, maxRetries ${MAX_RETRIES}; first choice 80% 529s for ${WINDOW_MS / 1000} s, second healthy; healthy bound ${(BOUND_MS / 1000).toFixed(1)} s`);
console.log('runner                              wall s   x bound   first   second   failed   first share');
for (const [name, r] of rows) {
  const share = r.served[0] / N;
  console.log(
    `${name.padEnd(34)} ${(r.wall / 1000).toFixed(1).padStart(7)} ${(r.wall / BOUND_MS).toFixed(2).padStart(9)} ${String(r.served[0]).padStart(7)} ${String(r.served[1]).padStart(8)} ${String(r.failed).padStart(8)} ${(100 * share).toFixed(0).padStart(12)}%`,
  );
}
