// Memory per MB of reply: a loopback upstream serves large bodies (a 2xx JSON reply and a
// 503 error body), edgebatch's run() fetches them, and a sampler records the peak RSS and the
// wasm linear memory. Figures, not pass/fail.
//
// Each case runs in its own process, so one case's heap does not inflate the next one's peak.
//
// Run: node bench/memory.mjs   (needs pkg/ from `make build`)
// Env: BENCH_MB (default 30), BENCH_PKG (default ../pkg/, another build to compare against)
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CASES = ['2xx', '503', 'provider'];
const only = process.env.BENCH_CASE;
if (!only) {
  for (const c of CASES) {
    const out = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url)], {
      env: { ...process.env, BENCH_CASE: c },
    });
    process.stdout.write(out);
  }
  process.exit(0);
}

const MB = Number(process.env.BENCH_MB ?? 30);
const pkgDir = new URL(process.env.BENCH_PKG ?? '../pkg/', import.meta.url);
const mod = await import(new URL('edgebatch.js', pkgDir));
const wasm = mod.initSync({ module: readFileSync(new URL('edgebatch_bg.wasm', pkgDir)) });
const { BatchProcessor } = mod;

// One JSON body of about MB megabytes, built once and served from memory.
const big = Buffer.from(JSON.stringify({ data: 'x'.repeat(MB * 1024 * 1024) }));
// The same size as an Anthropic Messages reply, for run() with a provider.
const message = Buffer.from(JSON.stringify({
  type: 'message', content: [{ type: 'text', text: 'x'.repeat(MB * 1024 * 1024) }], stop_reason: 'end_turn',
  usage: { input_tokens: 1, output_tokens: 1 },
}));
const server = http.createServer((req, res) => {
  const status = req.url.startsWith('/503') ? 503 : 200;
  const body = req.url.startsWith('/v1/messages') ? message : big;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

const mib = (n) => (n / 1024 / 1024).toFixed(0);
async function measure(name, specs, options) {
  globalThis.gc?.();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 2);
  const bp = new BatchProcessor({ concurrency: 4, backoff: { baseMs: 1, maxMs: 2, jitter: 'none' }, ...options });
  const results = await bp.run(specs);
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  const wasmMb = wasm.memory.buffer.byteLength;
  const replyMb = (specs.length * big.length) / 1024 / 1024;
  const outcome = results.map((r) => (r.ok ? 'ok' : `${r.error.kind}${r.error.status ?? ''}x${r.attempts}`)).join(',');
  console.log(
    `${name.padEnd(36)} rss ${mib(rss0)} -> peak ${mib(peak)} MB (+${mib(peak - rss0)} MB, ` +
      `${((peak - rss0) / 1024 / 1024 / replyMb).toFixed(1)} MB per MB of reply), wasm memory ${mib(wasmMb)} MB; ${outcome}`,
  );
  return results;
}

const from = process.env.BENCH_PKG ?? 'pkg/';
// Big enough for the 2xx replies, whatever the build's default cap.
const roomy = 'maxResponseBytes' in (await probeOptions()) ? { maxResponseBytes: 256 * 1024 * 1024 } : {};
if (only === '2xx') {
  await measure(`2 x ${mib(big.length)} MB 2xx (${from})`, [{ url: `${base}/ok/1` }, { url: `${base}/ok/2` }], roomy);
} else if (only === '503') {
  await measure(`${mib(big.length)} MB 503 x 4 (${from})`, [{ url: `${base}/503` }], { maxRetries: 3, ...roomy });
} else {
  const body = { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] };
  await measure(`2 x ${mib(message.length)} MB provider replies (${from})`, [body, body], {
    ...roomy, provider: { name: 'anthropic', apiKey: 'bench-key', baseUrl: base },
  });
}
server.close();

// Whether this build knows the option (the build before the cap did not).
async function probeOptions() {
  try {
    new BatchProcessor({ maxResponseBytes: 1024 });
    return { maxResponseBytes: true };
  } catch {
    return {};
  }
}
