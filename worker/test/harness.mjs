// Starts the Worker on real workerd through Miniflare, on 127.0.0.1 and a free port, with the
// compatibility date and flags of wrangler.toml and the vars a test gives. Not a test file.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { unstable_getMiniflareWorkerOptions as miniflareOptionsOf } from 'wrangler';

const root = fileURLToPath(new URL('../../', import.meta.url));
const toml = readFileSync(new URL('../wrangler.toml', import.meta.url), 'utf8');

/** The values of wrangler.toml that Miniflare needs too, read so the two cannot drift. */
function tomlValue(key) {
  const m = new RegExp(`^${key}\\s*=\\s*(.+)$`, 'm').exec(toml);
  if (!m) throw new Error(`wrangler.toml has no ${key}`);
  return JSON.parse(m[1].replace(/\s+#.*$/, ''));
}

/** The [vars] of wrangler.toml: the production defaults every test starts from. */
function tomlVars() {
  const section = /^\[vars\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml)?.[1] ?? '';
  const vars = {};
  for (const line of section.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)\s*=\s*(".*")\s*$/.exec(line.trim());
    if (m) vars[m[1]] = JSON.parse(m[2]);
  }
  return vars;
}

export const TOKEN = 'test-token-9f2c7a41d3';
export const FAKE_ANTHROPIC_KEY = 'sk-ant-FAKE-secret-5b8e1c0a77d4';
export const FAKE_OPENAI_KEY = 'sk-FAKE-openai-secret-c3d9e2f1';

/**
 * The Durable Objects, Queues and R2 buckets of wrangler.toml, as wrangler itself reads them; with
 * `workQueues` (1..8), that many work-queue shards (WORK_QUEUE, WORK_QUEUE_1 ...), each
 * consumed like wrangler.toml's second one: locally each shard is one consumer at a time.
 */
function engines(workQueues) {
  const { workerOptions: o } = miniflareOptionsOf(fileURLToPath(new URL('../wrangler.toml', import.meta.url)));
  const { queueProducers: producers, queueConsumers: consumers } = o;
  if (workQueues !== undefined) {
    const template = consumers[producers.WORK_QUEUE_1.queueName];
    for (let i = 1; i < 8; i++) {
      const binding = `WORK_QUEUE_${i}`;
      const name = producers[binding]?.queueName ?? `edgebatch-work-${i}`;
      delete producers[binding];
      delete consumers[name];
      if (i < workQueues) {
        producers[binding] = { queueName: name };
        consumers[name] = { ...template };
      }
    }
  }
  return { durableObjects: o.durableObjects, queueProducers: producers, queueConsumers: consumers, r2Buckets: o.r2Buckets };
}

/**
 * @param {Record<string, string>} vars merged over wrangler.toml's [vars], the test token and
 *   fake upstream keys
 * @param {{ script?: string, twin?: boolean, options?: object, persist?: string, port?: number, workQueues?: number }} [opts]
 *   `script`: another Worker script than worker/src/index.js (a path from the repository root),
 *   with Miniflare worker `options` of its own (queues, ...); wrangler.toml's Durable Objects and
 *   Queues come with the Worker's own script, or with one that wraps it when `workQueues` is
 *   given; `twin`: a second copy of the Worker in an isolate of its own, bound to the FIRST
 *   one's Durable Objects (as two isolates of one deployed Worker are), reachable through
 *   `twin.fetch(url, init)`; `persist`: a folder for the Durable Objects' state (kept across
 *   restarts on the same folder); `workQueues`: work-queue shards (see engines)
 * @returns {Promise<{ url: URL, mf: Miniflare, twin?: { fetch: typeof fetch }, dispose(): Promise<void>, logs(): string }>}
 */
export async function startWorker(vars = {}, { script = 'worker/src/index.js', twin = false, options = {}, persist, port = 0, workQueues } = {}) {
  if (workQueues !== undefined && !(Number.isInteger(workQueues) && workQueues >= 1 && workQueues <= 8)) {
    throw new RangeError(`workQueues must be an integer in 1..=8, got ${workQueues}`);
  }
  let logs = '';
  const own = script === 'worker/src/index.js';
  const engine = own || workQueues !== undefined ? engines(workQueues) : {};
  const worker = {
    modules: true,
    scriptPath: `${root}${script}`,
    modulesRoot: root,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: tomlValue('compatibility_date'),
    compatibilityFlags: tomlValue('compatibility_flags'),
    bindings: {
      ...tomlVars(),
      EDGEBATCH_TOKEN: TOKEN,
      ANTHROPIC_API_KEY: FAKE_ANTHROPIC_KEY,
      OPENAI_API_KEY: FAKE_OPENAI_KEY,
      ...vars,
    },
    // wrangler.toml's Durable Objects and Queues (the Worker's own script only).
    ...engine,
    ...options,
  };
  const mf = new Miniflare({
    workers: [
      {
        name: 'edgebatch',
        ...worker,
        // The demo page, as wrangler.toml's [assets] serves it (build.sh puts the wasm in www/pkg).
        assets: { directory: `${root}www`, routerConfig: { has_user_worker: true } },
      },
      ...(twin ? [{
        ...worker,
        name: 'edgebatch-twin',
        // The same objects, not copies; and no second consumer of the queues.
        durableObjects: Object.fromEntries(Object.entries(engine.durableObjects ?? {})
          .map(([name, o]) => [name, { ...o, scriptName: 'edgebatch' }])),
        queueConsumers: {},
      }] : []),
    ],
    ...(persist && { durableObjectsPersist: persist }),
    host: '127.0.0.1',
    port,
    handleRuntimeStdio(stdout, stderr) {
      stdout.on('data', (d) => (logs += d));
      stderr.on('data', (d) => (logs += d));
    },
  });
  const url = await mf.ready;
  const other = twin ? await mf.getWorker('edgebatch-twin') : undefined;
  return { url, mf, ...(other && { twin: { fetch: (u, init) => other.fetch(u, init) } }), dispose: () => mf.dispose(), logs: () => logs };
}

/** POST /v1/batch; returns { status, headers, text } (the whole body). */
export async function postBatch(url, body, { token = TOKEN, headers = {}, raw } = {}) {
  const res = await fetch(new URL('/v1/batch', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }), ...headers },
    body: raw ?? JSON.stringify(body),
    ...(raw instanceof ReadableStream && { duplex: 'half' }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Splits an NDJSON body into parsed lines; throws on any line that is not JSON. */
export function ndjson(text) {
  assertEndsWithNewline(text);
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

function assertEndsWithNewline(text) {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error(`NDJSON body does not end with a newline: ${text.slice(-80)}`);
}

export async function simStats(url) {
  const res = await fetch(new URL('/sim/stats', url));
  if (!res.ok) throw new Error(`/sim/stats answered ${res.status}`);
  return res.json();
}

/** `n` short Anthropic Messages bodies. */
export function messages(n, maxTokens = 16) {
  return Array.from({ length: n }, (_, i) => ({
    model: 'claude-haiku-4-5',
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: `Summarize document ${i}: notes on shipping and inventory.` }],
  }));
}

/**
 * POSTs `chunks` to /v1/batch on a connection of its own (`agent: false`), with or without a
 * Content-Length. For oversize bodies: the Worker answers before reading them all and the
 * connection may close under the upload, which must not poison fetch's shared pool.
 */
export function rawPost(url, chunks, { contentLength = true, token = TOKEN } = {}) {
  return new Promise((resolve, reject) => {
    const length = chunks.reduce((n, c) => n + Buffer.byteLength(c), 0);
    const req = http.request(new URL('/v1/batch', url), {
      method: 'POST',
      agent: false,
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        ...(contentLength ? { 'content-length': length } : { 'transfer-encoding': 'chunked' }),
      },
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: new Headers(res.headers), text }));
      res.on('error', () => resolve({ status: res.statusCode, headers: new Headers(res.headers), text }));
    });
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    (async () => {
      for (const c of chunks) {
        if (req.destroyed || answered) break;
        if (!req.write(c)) await new Promise((r) => req.once('drain', r).once('close', r));
      }
      req.end();
    })().catch(() => {});
  });
}
