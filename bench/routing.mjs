// Routing by deadline (`completionWindow`, issue 24) on workerd (Miniflare: real Durable
// Objects and Queues) against the simulator: 2,000 requests of one stored batch
//   - with completionWindow "24h", served by the simulated Message Batches API, whose batch takes
//     2-20 minutes (its first item after 2, its last after 20), scaled down 30x here: 4 s + 36 s;
//   - realtime (no window): the consumers call the simulated Messages API, about 3 s a call
//     scaled the same way (100 ms);
//   - with a window too short for the provider ("20s" here, 10 minutes at full scale): the engine
//     submits, cancels at the cutoff (80% of the window) and runs what is left realtime.
// Prints dollars (the batch view's cost: the lines' prices at the library's table; provider
// lines at the batch discount) and the time from create to the last result. Asserts nothing.
//   node bench/routing.mjs            (about 2 minutes)
import { startWorker } from '../worker/test/harness.mjs';
import { ROOMY_TOKEN, api, simSession, submit } from '../worker/test/batches-client.mjs';

const SCALE = 30;
const N = 2000;
const MIN = 60_000 / SCALE;
// Rate limits out of the way: realtime is bound by the consumers' connections (2 x 6 in flight).
const SIM = { seed: 24, minuteMs: 60_000, requestsPerMinute: 1_000_000, inputTokensPerMinute: 1_000_000_000,
  outputTokensPerMinute: 1_000_000_000, faults: {}, latency: { baseMs: 3000 / SCALE, perOutputTokenMs: 0, jitterMs: 20 } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const requests = Array.from({ length: N }, (_, i) => ({
  custom_id: `r${i}`,
  params: { model: 'claude-haiku-4-5', max_tokens: 200,
    messages: [{ role: 'user', content: `Summarize document ${i}: ${'notes on shipping, inventory and returns. '.repeat(20)}` }] },
}));

const worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '500',
  EDGEBATCH_PROVIDER_POLL_MS: String(30_000 / SCALE),
  // The provider's expected turnaround, scaled like the rest (the Worker's default: 1 h).
  EDGEBATCH_PROVIDER_TURNAROUND_MS: String(60 * MIN) }, { workQueues: 2 });
const rows = [];
try {
  const runs = [
    { name: 'provider batch, window 24h', window: '24h' },
    { name: 'realtime', window: undefined },
    { name: 'window 20s (10 min unscaled)', window: '20s' },
  ];
  for (const run of runs.filter((r) => !process.env.EDGEBATCH_BENCH_RUNS || process.env.EDGEBATCH_BENCH_RUNS.split(',').includes(r.window ?? 'realtime'))) {
    const sim = await simSession(worker.url, { ...SIM, batches: { delayMs: 2 * MIN, spreadMs: 18 * MIN } });
    const started = Date.now();
    const batch = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: sim.baseUrl },
      ...(run.window && { options: { completionWindow: run.window } }), requests });
    let view;
    for (;;) {
      view = (await api(worker.url, 'GET', `/v1/batches/${batch.id}`)).json;
      if (view.processing_status === 'ended') break;
      if (process.env.EDGEBATCH_BENCH_VERBOSE) console.error(`#   ${((Date.now() - started) / 1000).toFixed(1)} s ${JSON.stringify(view.request_counts)} ${JSON.stringify(view.edgebatch.waiting ?? null)}`);
      await sleep(250);
    }
    const tookMs = Date.now() - started;
    const byRoute = { provider_batch: 0, realtime: 0 };
    for (let after = 0; ;) {
      const lines = (await api(worker.url, 'GET', `/v1/batches/${batch.id}/results?after=${after}`)).text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      if (lines.length === 0) break;
      for (const l of lines) if (l.edgebatch.route) byRoute[l.edgebatch.route]++;
      after = lines.at(-1).edgebatch.seq;
    }
    rows.push({ run: run.name, ok: view.request_counts.succeeded, ...byRoute, usd: view.edgebatch.cost.usd,
      usdIfRealtime: view.edgebatch.cost.usdIfRealtime, seconds: tookMs / 1000, unscaledMin: (tookMs * SCALE) / 60_000 });
    console.error(`# ${run.name}: ${(tookMs / 1000).toFixed(1)} s`);
  }
} finally {
  await worker.dispose();
}

const realtime = rows.find((r) => r.run === 'realtime');
console.log(`\nrouting: ${N} requests (claude-haiku-4-5, max_tokens 200), simulator; time scaled ${SCALE}x down ` +
  '(provider batch 2-20 min -> 4-40 s, a realtime call ~3 s -> 100 ms, provider poll 30 s -> 1 s), 2 consumer shards');
console.log('| run | succeeded | provider_batch | realtime | $ | $ if realtime | x realtime $ | s to last result | unscaled min | x realtime time |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.run} | ${r.ok} | ${r.provider_batch} | ${r.realtime} | ${r.usd.toFixed(4)} | ${r.usdIfRealtime.toFixed(4)} | ` +
    `${(r.usd / realtime.usd).toFixed(2)} | ${r.seconds.toFixed(1)} | ${r.unscaledMin.toFixed(1)} | ${(r.seconds / realtime.seconds).toFixed(2)} |`);
}
