// /v1/batches on workerd (Miniflare: real Durable Objects and Queues) against the simulator at a
// fixed latency and rate limit: items/s with 1, 2, 4 and 8 consumers, against the ideal
// min(consumers x 6 / latency, RPM / 60); 429s per 1,000 attempts; retries and duplicate
// upstream calls per item; time to the first result; and what 10,000 items cost on
// Cloudflare's meters, counted inside the Worker (bench/batches-worker.js wraps it).
//
// Consumers: Miniflare delivers one message batch per queue at a time, so N work-queue shards
// (WORK_QUEUE, WORK_QUEUE_1 ...) are N consumer invocations side by side. Each run gets a fresh
// Worker, hence a fresh simulator (its stats are that run's) and a fresh limiter.
//   node bench/batches.mjs            the table (a few minutes)
//   EDGEBATCH_BENCH_BATCHES=2000x1,10000x8 node bench/batches.mjs     runs of your choice
import { startWorker, TOKEN, messages } from '../worker/test/harness.mjs';
import { ROOMY_TOKEN } from '../worker/test/batches-client.mjs';

const LATENCY_MS = 100;
/** The simulator's limit: 100 requests per 1-second "minute", i.e. 6,000 a minute. */
const SIM_MINUTE_MS = 1000;
const SIM_REQUESTS_PER_MINUTE = 100;
const RPM = SIM_REQUESTS_PER_MINUTE * (60_000 / SIM_MINUTE_MS);
const POLL_MS = 100;
const RUNS = (process.env.EDGEBATCH_BENCH_BATCHES ?? '2000x1,2000x2,2000x4,2000x8,10000x4')
  .split(',').map((s) => {
    const m = /^(\d+)x([1-8])$/.exec(s.trim());
    if (!m) throw new Error(`EDGEBATCH_BENCH_BATCHES: "${s}" is not <items>x<consumers 1..8>`);
    return { items: Number(m[1]), consumers: Number(m[2]) };
  });

const auth = { authorization: `Bearer ${TOKEN}` };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * fetch() and parse JSON. workerd under load sometimes closes a connection before the last
 * chunk of a reply ("other side closed"): a GET is tried again; a POST is not (see submit).
 */
async function json(url, init) {
  for (let attempt = 0; ; attempt++) {
    let res;
    try {
      res = await fetch(url, init);
      if (!res.ok) throw Object.assign(new Error(`${init?.method ?? 'GET'} ${url} answered ${res.status}: ${await res.text()}`), { status: res.status });
      return await res.json();
    } catch (e) {
      if (e.status !== undefined || (init?.method ?? 'GET') !== 'GET' || attempt >= 4) throw e;
      await sleep(250 * 2 ** attempt);
    }
  }
}

/** POST /v1/batches; a dropped connection after the upload may still have made it: look. */
async function submit(base, body) {
  try {
    return await json(`${base}/v1/batches`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...auth }, body });
  } catch (e) {
    if (e.status !== undefined) throw e;
    const { data } = await json(`${base}/v1/batches`, { headers: auth });
    if (data.length !== 1) throw e; // a fresh Worker per run: its only batch is this one
    return data[0];
  }
}

/** Every results line of an ended batch, resuming with ?after= if the connection drops. */
async function results(url) {
  const lines = [];
  for (let attempt = 0; ; attempt++) {
    const after = lines.at(-1)?.edgebatch.seq ?? 0;
    try {
      const res = await fetch(`${url}?after=${after}`, { headers: auth });
      if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
      const text = await res.text();
      for (const l of text.split('\n')) if (l) lines.push(JSON.parse(l));
      return lines;
    } catch (e) {
      if (attempt >= 4 || /answered/.test(e.message)) throw e;
      await sleep(250 * 2 ** attempt);
    }
  }
}

async function run({ items, consumers }) {
  const sim = { minuteMs: SIM_MINUTE_MS, requestsPerMinute: SIM_REQUESTS_PER_MINUTE,
    latency: { baseMs: LATENCY_MS, perOutputTokenMs: 0, jitterMs: 0 }, faults: {} };
  const worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '1000', EDGEBATCH_SIM_CONFIG: JSON.stringify(sim) },
    { workQueues: consumers, script: 'bench/batches-worker.js' });
  try {
    const base = worker.url.origin;
    const header = { provider: { name: 'anthropic', baseUrl: `${base}/sim` }, options: { maxRetries: 8, timeoutMs: 10_000 } };
    const body = [header, ...messages(items).map((params, i) => ({ custom_id: `r-${i}`, params }))]
      .map((l) => JSON.stringify(l)).join('\n');
    const t0 = performance.now();
    const batch = await submit(base, body);
    const submitted = performance.now();
    let polls = 0;
    let firstMs;
    let now = batch;
    const deadline = Date.now() + 60_000 + items * 20; // at least 50 items/s, or it is reported as stuck
    while (now.processing_status !== 'ended') {
      if (Date.now() > deadline) throw new Error(`${items} items x ${consumers}: not ended by the deadline: ${JSON.stringify(now.request_counts)}`);
      await sleep(POLL_MS);
      now = await json(`${base}/v1/batches/${batch.id}`, { headers: auth });
      polls++;
      if (firstMs === undefined && now.request_counts.processing < items) firstMs = performance.now() - submitted;
    }
    const lines = await results(`${base}/v1/batches/${batch.id}/results`);
    const stats = await json(`${base}/sim/stats`);
    const counters = await json(`${base}/__bench/counters`);
    return measure({ items, consumers, batch: now, lines, stats, counters, polls, firstMs, submitMs: submitted - t0 });
  } finally {
    await worker.dispose();
  }
}

function measure({ items, consumers, batch, lines, stats, counters, polls, firstMs, submitMs }) {
  const secs = (Date.parse(batch.ended_at) - Date.parse(batch.created_at)) / 1000;
  const ideal = Math.min((consumers * 6) / (LATENCY_MS / 1000), RPM / 60);
  const ids = new Set(lines.map((l) => l.custom_id));
  const attempts = lines.reduce((n, l) => n + l.edgebatch.attempts, 0);
  const ok = stats.byStatus['200'] ?? 0;
  const per10k = (n) => Math.round((n * 10_000) / items);
  // The bench's own status polls are not the batch's cost: one describe per poll.
  const doCalls = { ...counters.do, 'BatchLedger.describe': (counters.do['BatchLedger.describe'] ?? 0) - polls };
  const doTotal = Object.values(doCalls).reduce((a, b) => a + b, 0);
  // Cloudflare Queues: a write, a read and a delete per message (64 KB each; these are small).
  const queueOps = counters.queueWrites + 2 * counters.deliveries;
  return {
    items, consumers, ideal, secs, rate: items / secs, ratio: items / secs / ideal,
    exactlyOnce: lines.length === items && ids.size === items && batch.request_counts.succeeded === items,
    per1k429: ((stats.byStatus['429'] ?? 0) / stats.requests) * 1000,
    retries: (attempts - items) / items,
    dups: (ok - items) / items,
    firstS: firstMs / 1000,
    submitS: submitMs / 1000,
    cost: {
      http: per10k(counters.http - polls),
      invocations: per10k(counters.invocations),
      fetches: per10k(counters.fetches),
      doTotal: per10k(doTotal),
      queueOps: per10k(queueOps),
    },
    doCalls,
  };
}

function table(rows) {
  const head = ['items', 'cons', 'ideal/s', 'items/s', 'ratio', '429/1k', 'retry/it', 'dup/it', '1st s',
    'http', 'invoc', 'fetch', 'DO req', 'queue ops'];
  const body = rows.map((r) => [r.items, r.consumers, r.ideal.toFixed(0), r.rate.toFixed(1), r.ratio.toFixed(2),
    r.per1k429.toFixed(1), r.retries.toFixed(3), r.dups.toFixed(3), r.firstS.toFixed(2),
    r.cost.http, r.cost.invocations, r.cost.fetches, r.cost.doTotal, r.cost.queueOps].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log(line(head));
  for (const b of body) console.log(line(b));
}

console.log(`/v1/batches on workerd (Miniflare), simulator: ${LATENCY_MS} ms per request, ${SIM_REQUESTS_PER_MINUTE} requests ` +
  `per ${SIM_MINUTE_MS} ms (= ${RPM} RPM), no faults; maxRetries 8. A consumer = one work-queue shard.`);
const rows = [];
for (const spec of RUNS) {
  const t = Date.now();
  const r = await run(spec);
  rows.push(r);
  console.log(`  ${spec.items} items x ${spec.consumers} consumers: ${r.secs.toFixed(1)} s, ${r.rate.toFixed(1)} items/s, ` +
    `submit ${r.submitS.toFixed(2)} s${r.exactlyOnce ? ', one succeeded line per custom_id' : ', NOT exactly once'} (${((Date.now() - t) / 1000).toFixed(0)} s with startup)`);
}
console.log('\nideal = min(consumers x 6 / latency, RPM / 60); ratio = items/s / ideal; retry/it and dup/it per item ' +
  '(attempts beyond the first; 200s the simulator sent beyond one per item); 1st s = first result after the 201.');
console.log('Cost per 10,000 items: http = requests to the Worker (submit + one results download, status polls left out), ' +
  'invoc = queue consumer invocations, fetch = upstream subrequests, DO req = Durable Object requests (calls and alarms), ' +
  'queue ops = writes + reads + deletes.\n');
table(rows);
const last = rows.at(-1);
console.log(`\nDurable Object requests of the last run by method (${last.items} items): ` +
  Object.entries(last.doCalls).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', '));
if (rows.some((r) => !r.exactlyOnce)) process.exitCode = 1;
