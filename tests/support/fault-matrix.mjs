// The fault matrix, run as its own process by tests/js/fault-matrix.test.mjs (which checks that
// it exits by itself: no timer or socket left behind). An Anthropic-shaped upstream is scripted
// per item and per attempt; each row faults the middle one of three items, in run(), in map()
// (a small SDK-like task over fetch) and through the Worker on workerd (POST /v1/batch, its
// outgoing fetches routed to the same upstream), and checks: one result per item in order, the
// faulted item's kind/status/retryable/attempts, the healthy items ok, no secret in any output,
// no unhandled rejection, bounded time. Prints the table, then one JSON line with the rows.
import http from 'node:http';
import { BatchProcessor } from '../js/load.mjs';

const KEY = 'sk-ant-api03-MATRIXsecretKey0123456789-abcd';
// Every key that must never show; the Worker's own (from its harness) joins below.
const KEYS = [KEY];
const unhandled = [];
process.on('unhandledRejection', (e) => unhandled.push(String(e?.message ?? e)));

// Model "<row>:<a1>,<a2>,...": attempt n of that item does action an (the last repeats).
const attempts = new Map();
const sockets = new Set();
const message = { type: 'message', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } };
const errorBody = (type, text = `fault ${type}`) => JSON.stringify({ type: 'error', error: { type, message: text } });
function upstream(req, res) {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const model = JSON.parse(body || '{}').model ?? 'ok';
    const n = (attempts.get(model) ?? 0) + 1;
    attempts.set(model, n);
    const script = (model.split(':')[1] ?? 'ok').split(',');
    const action = script[Math.min(n, script.length) - 1];
    const json = (status, text, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'retry-after-ms': '5', ...headers });
      res.end(text);
    };
    const status = /^s(\d{3})$/.exec(action);
    if (action === 'ok') json(200, JSON.stringify(message));
    else if (status) json(Number(status[1]), errorBody(Number(status[1]) === 529 ? 'overloaded_error' : 'api_error'));
    else if (action === 'cap') json(429, JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'cap', details: { error_code: 'enforced_spend_limit_reached' } } }));
    else if (action === 'ra3600') json(429, errorBody('rate_limit_error'), { 'retry-after': '3600', 'retry-after-ms': '' });
    else if (action === 'echo') json(401, errorBody('authentication_error', `invalid x-api-key: ${req.headers['x-api-key']}`));
    else if (action === 'err200') json(200, errorBody('overloaded_error'));
    else if (action === 'garbage') json(200, '{"type":"message","content":[');
    else if (action === 'big') json(200, JSON.stringify({ ...message, pad: 'x'.repeat(200_000) }));
    else if (action === 'reset') req.socket.destroy();
    else if (action === 'slowbody') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"message",');
      setTimeout(() => res.end('"content":[]}'), 6000).unref();
    }
    // 'hang': never answers; the client's timeout aborts it.
  });
}
const server = http.createServer(upstream);
server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

const OK = { ok: true };
const fail = (kind, status, retryable, attempts) => ({ kind, status, retryable, attempts });
// [name, script, expected in run(), in map() (null: not for an SDK task), through the Worker
// (null: the Worker's options or its outbound path cannot carry the fault)]
const ROWS = [
  ['healthy', 'ok', { ...OK, attempts: 1 }, { ...OK, attempts: 1 }, { ...OK, attempts: 1 }],
  ['529 then ok', 's529,ok', { ...OK, attempts: 2 }, { ...OK, attempts: 2 }, { ...OK, attempts: 2 }],
  ['500 storm', 's500', fail('http', 500, true, 3), fail('http', 500, true, 3), fail('http', 500, true, 3)],
  ['400', 's400', fail('http', 400, false, 1), fail('http', 400, false, 1), fail('http', 400, false, 1)],
  ['spend cap 429', 'cap', fail('http', 429, false, 1), fail('http', 429, false, 1), fail('http', 429, false, 1)],
  ['429 then ok', 's429,ok', { ...OK, attempts: 2 }, { ...OK, attempts: 2 }, { ...OK, attempts: 2 }],
  ['429 past the deadline', 'ra3600', fail('deadline', 429, true, 1), fail('deadline', 429, true, 1), fail('deadline', 429, true, 1)],
  // On a loaded machine the retry after a hang may itself run past the short attempt
  // timeout these rows need: 2 or 3 attempts, as long as the item ends ok.
  ['hang then ok', 'hang,ok', { ...OK, attempts: [2, 3] }, { ...OK, attempts: [2, 3] }, { ...OK, attempts: [2, 3] }],
  ['hang always', 'hang', fail('timeout', undefined, true, 3), fail('timeout', undefined, true, 3), fail('timeout', undefined, true, 3)],
  ['reset then ok', 'reset,ok', { ...OK, attempts: 2 }, { ...OK, attempts: 2 }, null],
  ['slow body then ok', 'slowbody,ok', { ...OK, attempts: [2, 3] }, { ...OK, attempts: [2, 3] }, { ...OK, attempts: [2, 3] }],
  ['cut-off JSON then ok', 'garbage,ok', { ...OK, attempts: 2 }, { ...OK, attempts: 2 }, { ...OK, attempts: 2 }],
  ['200 overloaded error then ok', 'err200,ok', { ...OK, attempts: 2 }, null, { ...OK, attempts: 2 }],
  ['reply over maxResponseBytes', 'big', fail('http', 200, false, 1), null, null],
  ['401 echoing the key', 'echo', fail('http', 401, false, 1), fail('http', 401, false, 1), fail('http', 401, false, 1)],
];

// Only rows whose fault is a hang need a short attempt timeout; the others get a long one, so
// that a loaded machine cannot turn a slow healthy attempt into a timeout and a retry.
const options = (script) => ({
  concurrency: 3,
  maxRetries: 2,
  timeoutMs: /hang|slowbody/.test(script) ? 1500 : 10_000,
  deadlineMs: 5000,
  maxResponseBytes: 100_000,
  backoff: { baseMs: 1, maxMs: 5, jitter: 'none' },
  breaker: { failures: 0 },
  provider: { name: 'anthropic', apiKey: KEY, baseUrl: base },
});

// What an SDK does: POST, throw an error with status/headers/body on non-2xx, a retryable
// error on a body that is not JSON.
async function sdkTask(body, { signal }) {
  const res = await fetch(`${base}/v1/messages`, {
    method: 'POST', body: JSON.stringify(body), signal, headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw Object.assign(new Error('the reply is not JSON'), { retryable: true });
  }
  if (!res.ok) {
    throw Object.assign(new Error(json?.error?.message ?? `HTTP ${res.status}`), {
      name: 'APIError', status: res.status, headers: Object.fromEntries(res.headers), error: json,
    });
  }
  return json;
}

function check(results, want) {
  const problems = [];
  if (results.length !== 3 || results.some((r, i) => r.index !== i)) problems.push('not one result per item in order');
  if (!results[0]?.ok || !results[2]?.ok) problems.push(`healthy items failed: ${JSON.stringify([results[0]?.error, results[2]?.error])}`);
  const r = results[1];
  const got = r.ok ? { ok: true, attempts: r.attempts } : { kind: r.error.kind, status: r.error.status, retryable: r.error.retryable, attempts: r.attempts };
  // `attempts` may be a list of the counts allowed (see the hang rows).
  const fits = Array.isArray(want.attempts) && want.attempts.includes(got.attempts);
  const wanted = fits ? { ...want, attempts: got.attempts } : want;
  if (JSON.stringify(got) !== JSON.stringify(wanted)) problems.push(`got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  if (want.kind === 'deadline' && typeof r.error?.retryAfterMs !== 'number') problems.push('no retryAfterMs');
  const text = JSON.stringify(results);
  for (const key of KEYS) {
    for (let i = 0; i + 8 <= key.length; i++) {
      if (text.includes(key.slice(i, i + 8))) {
        problems.push('a key leaked');
        break;
      }
    }
  }
  return problems;
}

/** One row through POST /v1/batch: the result lines, in input order. */
async function viaWorker(worker, items, script) {
  const { provider, maxResponseBytes, breaker, ...rest } = options(script);
  const r = await worker.post(worker.url, { items, options: rest });
  if (r.status !== 200) return [{ index: -1, ok: false, error: { kind: `HTTP ${r.status}: ${r.text}` } }];
  const lines = worker.ndjson(r.text).filter((l) => !l.summary);
  return lines.sort((a, b) => a.index - b.index);
}

async function cell(name, script, row, mode, want, worker) {
  if (!want) return { name, mode, status: 'n/a' };
  const items = ['ok', script, 'ok'].map((s, i) => ({ model: `${mode}${row}.${i}:${s}`, max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }));
  const bp = new BatchProcessor(options(script));
  const t0 = Date.now();
  const results = mode === 'run' ? await bp.run(items) : mode === 'map' ? await bp.map(items, sdkTask) : await viaWorker(worker, items, script);
  const ms = Date.now() - t0;
  const problems = check(results, want);
  if (ms > 8000) problems.push(`took ${ms} ms`);
  return { name, mode, status: problems.length ? 'FAIL' : 'pass', ms, problems };
}

const started = Date.now();
// run() and map() first, then the Worker: Miniflare, once loaded, changes this process's
// fetch dispatcher, whose connection pool the hung requests of other cells would then share.
const rows = await Promise.all(ROWS.flatMap(([name, script, wantRun, wantMap], row) => [
  cell(name, script, row, 'run', wantRun),
  cell(name, script, row, 'map', wantMap),
]));
const harness = await import('../../worker/test/harness.mjs');
KEYS.push(harness.FAKE_ANTHROPIC_KEY);
// The Worker's outgoing fetches (to api.anthropic.com, with its own key) reach `upstream`.
// The cells run at once, with models named for the cell: this token may run them all.
const worker = await harness.startWorker({
  EDGEBATCH_MODELS: '*',
  EDGEBATCH_CONCURRENT_BATCHES: '100',
  EDGEBATCH_ITEMS_PER_HOUR: '100000',
  EDGEBATCH_SUBREQUESTS_PER_HOUR: '1000000',
}, { options: { outboundService: { node: upstream } } });
Object.assign(worker, { post: harness.postBatch, ndjson: harness.ndjson });
rows.push(...(await Promise.all(ROWS.map(([name, script, , , wantWorker], row) => cell(name, script, row, 'worker', wantWorker, worker)))));

for (const s of sockets) s.destroy();
server.close();
await worker.dispose();

const byName = new Map();
for (const r of rows) byName.set(r.name, { ...byName.get(r.name), [r.mode]: r });
const width = Math.max(...ROWS.map(([n]) => n.length));
console.log(`${'fault'.padEnd(width)}  run()  map()  Worker`);
for (const [name, m] of byName) {
  console.log(`${name.padEnd(width)}  ${m.run.status.padEnd(5)}  ${m.map.status.padEnd(5)}  ${m.worker.status}`);
}
console.log(`${rows.filter((r) => r.status !== 'n/a').length} cells in ${Date.now() - started} ms; unhandled rejections: ${unhandled.length}`);
console.log(JSON.stringify({ rows, unhandled }));
