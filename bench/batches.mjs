// /v1/batches on workerd (Miniflare: real Durable Objects and Queues) against the simulator at a
// fixed latency, with the rate limit binding (the simulator allows 60% of what the consumers
// could send) and without: per run, items/s against the bound min(consumers x 6 / latency,
// RPM / 60) and its spread from the first to the last 10% of the batch; what each item costs
// (limiter RPCs, Durable Object requests, queue operations, redeliveries, 429s, duplicate
// upstream calls); time to the first result, and that of a second batch of 1,000 submitted
// behind the running one; time per GET and per commit on the 1,000-row batch against the big
// one; the workerd process's peak memory. Counted inside the Worker by bench/batches-worker.js.
//
// Consumers: Miniflare delivers one message batch per queue at a time, so N work-queue shards
// (WORK_QUEUE, WORK_QUEUE_1 ...) are N consumer invocations side by side. Each run gets a fresh
// Worker, hence a fresh simulator (its stats are that run's) and a fresh limiter.
//   node bench/batches.mjs            the default table (about half an hour)
//   EDGEBATCH_BENCH_BATCHES=100000x1,100000x1r,...,100000x8r node bench/batches.mjs
//                                     runs of your choice: <items>x<consumers 1..8>, r = rate binds
//   EDGEBATCH_BENCH_JITTER_MS=40 ...    each request 100 ms + U(0, 40) ms (the bound at the mean)
import { readFileSync, readdirSync } from 'node:fs';
import { startWorker, TOKEN, messages } from '../worker/test/harness.mjs';
import { ROOMY_TOKEN } from '../worker/test/batches-client.mjs';

const LATENCY_MS = 100;
/**
 * EDGEBATCH_BENCH_JITTER_MS: each request's latency is LATENCY_MS + U(0, jitter) (default 0);
 * the bound then takes the mean, LATENCY_MS + jitter / 2.
 */
const JITTER_MS = Number(process.env.EDGEBATCH_BENCH_JITTER_MS ?? 0);
if (!(Number.isFinite(JITTER_MS) && JITTER_MS >= 0 && JITTER_MS <= 10_000)) {
  throw new Error(`EDGEBATCH_BENCH_JITTER_MS: "${process.env.EDGEBATCH_BENCH_JITTER_MS}" is not a number of ms in 0..=10000`);
}
const MEAN_LATENCY_MS = LATENCY_MS + JITTER_MS / 2;
/** The simulator's "minute" is 1 s here: its RPM is requests per second. */
const SIM_MINUTE_MS = 1000;
/** With the rate binding: the simulator allows this share of what the consumers could send. */
const BINDING_SHARE = 0.6;
const SECOND_BATCH = 1000;
const POLL_MS = 100;
const RUNS = (process.env.EDGEBATCH_BENCH_BATCHES ?? '10000x1,10000x1r,20000x2,20000x2r,50000x4,50000x4r,100000x8,100000x8r')
  .split(',').map((s) => {
    const m = /^(\d+)x([1-8])(r?)$/.exec(s.trim());
    if (!m) throw new Error(`EDGEBATCH_BENCH_BATCHES: "${s}" is not <items>x<consumers 1..8>[r]`);
    return { items: Number(m[1]), consumers: Number(m[2]), binding: m[3] === 'r' };
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

/** NDJSON of `n` requests with ids `prefix-i`, after a header line. */
function ndjson(header, n, prefix) {
  return [header, ...messages(n).map((params, i) => ({ custom_id: `${prefix}-${i}`, params }))].map((l) => JSON.stringify(l)).join('\n');
}

/** The workerd processes this one started (Miniflare spawns them). */
function workerdPids() {
  const pids = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S (\d+)/.exec(stat);
      if (m && m[1].startsWith('workerd') && Number(m[2]) === process.pid) pids.push(Number(d));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Peak resident memory (VmHWM) of those processes, in MB. */
function peakMb(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      kb += Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

/** GET a batch, timed. */
async function describe(base, id) {
  const t = performance.now();
  const b = await json(`${base}/v1/batches/${id}`, { headers: auth });
  return { b, ms: performance.now() - t };
}

async function run({ items, consumers, binding }) {
  const concurrencyBound = (consumers * 6) / (MEAN_LATENCY_MS / 1000);
  const rps = binding ? Math.round(concurrencyBound * BINDING_SHARE) : 1_000_000;
  const sim = { minuteMs: SIM_MINUTE_MS, requestsPerMinute: rps, latency: { baseMs: LATENCY_MS, perOutputTokenMs: 0, jitterMs: JITTER_MS }, faults: {} };
  const worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '1000', EDGEBATCH_SIM_CONFIG: JSON.stringify(sim) },
    { workQueues: consumers, script: 'bench/batches-worker.js' });
  const pids = workerdPids();
  try {
    const base = worker.url.origin;
    const header = { provider: { name: 'anthropic', baseUrl: `${base}/sim` }, options: { maxRetries: 8, timeoutMs: 10_000 } };
    const t0 = performance.now();
    const batch = await submit(base, ndjson(header, items, 'a'));
    const submitted = performance.now();
    const samples = [];
    const gets = { big: [], small: [] };
    let second = null;
    let now = batch;
    const deadline = Date.now() + 120_000 + items * 40; // at least 25 items/s, or it is reported as stuck
    while (now.processing_status !== 'ended' || (second && !second.ended)) {
      if (Date.now() > deadline) throw new Error(`${items} items x ${consumers}: not ended by the deadline: ${JSON.stringify(now.request_counts)}`);
      await sleep(POLL_MS);
      if (now.processing_status !== 'ended') {
        const got = await describe(base, batch.id);
        now = got.b;
        gets.big.push(got.ms);
        samples.push({ t: performance.now() - submitted, done: items - now.request_counts.processing });
      }
      if (!second && samples.at(-1)?.done >= items / 10) {
        const at = performance.now();
        second = { at, batch: await submit(base, ndjson(header, SECOND_BATCH, 'b')), firstS: undefined, ended: false };
      } else if (second && !second.ended) {
        const got = await describe(base, second.batch.id);
        gets.small.push(got.ms);
        if (second.firstS === undefined && got.b.request_counts.processing < SECOND_BATCH) second.firstS = (performance.now() - second.at) / 1000;
        second.ended = got.b.processing_status === 'ended';
        second.view = got.b;
      }
    }
    const lines = await results(`${base}/v1/batches/${batch.id}/results`);
    const stats = await json(`${base}/sim/stats`);
    const counters = await json(`${base}/__bench/counters`);
    return measure({ items, consumers, binding, ideal: Math.min(concurrencyBound, rps), batch: now, second, lines, stats, counters,
      polls: gets.big.length + gets.small.length, samples, gets, peak: peakMb(pids), submitMs: submitted - t0 });
  } finally {
    await worker.dispose();
  }
}

const median = (xs) => (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);

/** Items/s over the first and the last 10% of the batch (from its first result to its end). */
/**
 * Items/s over the first and the last tenth, from the status polls alone (one clock: the
 * bench's, from the 201; the batch's own created_at/ended_at are the Worker's, and the upload
 * of a big batch lies between the two).
 */
function spread(samples, items) {
  const at = (n) => samples.find((s) => s.done >= n);
  const rate = (a, b) => (a && b && b.t > a.t ? (b.done - a.done) / ((b.t - a.t) / 1000) : NaN);
  return { first: rate(at(1), at(items / 10)), last: rate(at(items * 0.9), at(items)) };
}

function measure({ items, consumers, binding, ideal, batch, second, lines, stats, counters, polls, samples, gets, peak, submitMs }) {
  const secs = (Date.parse(batch.ended_at) - Date.parse(batch.created_at)) / 1000;
  const bothEnd = Math.max(Date.parse(batch.ended_at), Date.parse(second?.view?.ended_at ?? batch.ended_at));
  const bothSecs = (bothEnd - Date.parse(batch.created_at)) / 1000;
  const all = items + SECOND_BATCH;
  const ids = new Set(lines.map((l) => l.custom_id));
  const ok = stats.byStatus['200'] ?? 0;
  // The bench's own status polls are not the batches' cost: one describe per poll.
  const doCalls = { ...counters.do, 'BatchLedger.describe': (counters.do['BatchLedger.describe'] ?? 0) - polls };
  const doTotal = Object.values(doCalls).reduce((a, b) => a + b, 0);
  const limiterRpcs = Object.entries(counters.do).filter(([k]) => k.startsWith('UpstreamLimiter.') && k !== 'UpstreamLimiter.configure')
    .reduce((n, [, v]) => n + v, 0);
  // Cloudflare Queues: a write, a read and a delete per message (64 KB each; these are small).
  const queueOps = counters.queueWrites + 2 * counters.deliveries;
  const commit = (id) => {
    const [n, ms] = counters.commitMs[id] ?? [0, 0];
    return n === 0 ? NaN : ms / n;
  };
  const firstResult = samples.find((s) => s.done > 0);
  // The account limiter: the one that granted the most (a fresh Worker per run).
  const limiter = (counters.limiters ?? []).reduce((a, b) => ((b.granted ?? 0) > (a?.granted ?? -1) ? b : a), null);
  return {
    // Both batches ran on the same consumers: their items over the time until both had ended.
    items, consumers, binding, ideal, secs, rate: all / bothSecs, ratio: all / bothSecs / ideal,
    spread: spread(samples, items),
    exactlyOnce: lines.length === items && ids.size === items && batch.request_counts.succeeded === items
      && second?.view?.request_counts.succeeded === SECOND_BATCH,
    per1k429: ((stats.byStatus['429'] ?? 0) / stats.requests) * 1000,
    dups: (ok - all) / all,
    firstS: (firstResult?.t ?? NaN) / 1000,
    secondFirstS: second?.firstS ?? NaN,
    submitS: submitMs / 1000,
    limiterPerItem: limiterRpcs / all,
    doPerItem: doTotal / all,
    queuePerItem: queueOps / all,
    redelivered: (batch.edgebatch.redelivered ?? 0) + (second?.view?.edgebatch.redelivered ?? 0),
    getMs: { small: median(gets.small), big: median(gets.big.slice(-20)) },
    commitMs: { small: commit(second?.batch.id), big: commit(batch.id) },
    peak,
    limiterConcurrency: limiter?.concurrency ?? NaN,
    doCalls,
  };
}

function table(rows) {
  const head = ['items', 'cons', 'rate', 'bound/s', 'items/s', 'ratio', '1st10%/s', 'last10%/s', '1st s', '2nd 1st s',
    'lim/it', 'DO/it', 'queue/it', 'redeliv', '429/1k', 'dup/it', 'GET ms 1k|N', 'commit ms 1k|N', 'peak MB', 'lim conc'];
  const f = (x, d) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const body = rows.map((r) => [r.items, r.consumers, r.binding ? 'binds' : 'free', f(r.ideal, 0), f(r.rate, 1), f(r.ratio, 2),
    f(r.spread.first, 1), f(r.spread.last, 1), f(r.firstS, 2), f(r.secondFirstS, 2), f(r.limiterPerItem, 2), f(r.doPerItem, 2),
    f(r.queuePerItem, 3), r.redelivered, f(r.per1k429, 1), f(r.dups, 3), `${f(r.getMs.small, 1)}|${f(r.getMs.big, 1)}`,
    `${f(r.commitMs.small, 1)}|${f(r.commitMs.big, 1)}`, f(r.peak, 0), f(r.limiterConcurrency, 0)].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log(line(head));
  for (const b of body) console.log(line(b));
}

console.log(`/v1/batches on workerd (Miniflare), simulator: ${LATENCY_MS} ms${JITTER_MS > 0 ? ` + U(0, ${JITTER_MS}) ms` : ''} per request, no faults; maxRetries 8. ` +
  `A consumer = one work-queue shard; "binds": the simulator allows ${BINDING_SHARE * 100}% of consumers x 6 / latency.`);
const rows = [];
for (const spec of RUNS) {
  const t = Date.now();
  const r = await run(spec);
  rows.push(r);
  console.log(`  ${spec.items} items x ${spec.consumers} consumers${spec.binding ? ', rate binding' : ''}: ${r.secs.toFixed(1)} s, ` +
    `${r.rate.toFixed(1)} items/s (${r.ratio.toFixed(2)} of the bound), submit ${r.submitS.toFixed(2)} s` +
    `${r.exactlyOnce ? ', one succeeded line per custom_id (both batches)' : ', NOT exactly once'} (${((Date.now() - t) / 1000).toFixed(0)} s with startup)`);
}
console.log('\nbound = min(consumers x 6 / latency, the simulator\'s requests/s); items/s: both batches\' items until both had ended; ratio = items/s / bound; 1st10%/s and last10%/s: items/s ' +
  'over the first and the last tenth of the batch; 1st s = its first result after the 201; 2nd 1st s = the same for a second batch of ' +
  `${SECOND_BATCH} submitted once the first is 10% done. Per item (both batches): lim = limiter RPCs, DO = Durable Object requests ` +
  '(calls and alarms; status polls left out), queue = queue operations (writes + reads + deletes); redeliv = items sent again by the ' +
  'alarm; dup/it = 200s beyond one per item. GET and commit ms: median GET of the 1,000-row batch and of the big one (its last 20 ' +
  `polls), mean commit round trip from the consumer; peak MB = the workerd process's peak resident memory; lim conc = the account ` +
  'limiter\'s adaptive concurrency at the end (its ceiling: 48).\n');
table(rows);
const last = rows.at(-1);
console.log(`\nDurable Object requests of the last run by method (${last.items} + ${SECOND_BATCH} items): ` +
  Object.entries(last.doCalls).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', '));
if (rows.some((r) => !r.exactlyOnce)) process.exitCode = 1;
