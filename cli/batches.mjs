// The CLI commands of batches stored on a Worker (/v1/batches: Durable Objects + Queues), which
// outlive the CLI: submit one, look at it, download its results (resumable), cancel it, list them.
import fs from 'node:fs';
import process from 'node:process';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { checkLine, LineAppender, scanBatchResults } from './batch-results.mjs';
import { intFlags, checkUrl, optionFlags, optionInts, workerTarget } from './flags.mjs';
import { ProgressView } from './progress.mjs';
import { UsageError } from './results-file.mjs';
import { responseLines, workerFetch, WorkerError } from './worker-client.mjs';

export const BATCH_COMMANDS = ['submit', 'status', 'results', 'cancel', 'list'];

/** The edgebatch options `submit` takes as flags (cli/flags.mjs), under the Worker's caps. */
const SUBMIT_OPTIONS = ['concurrency', 'max-retries', 'timeout-ms'];
const WORKER_CAPS = { concurrency: 6, 'max-retries': 10, 'timeout-ms': 600_000 };

export const BATCH_HELP = `
Batches stored on a Worker (POST /v1/batches: they run on without the CLI, and survive it):
  edgebatch submit <requests.jsonl> [--provider P] [--base-url U]
                   ${SUBMIT_OPTIONS.map((f) => `[--${f} N]`).join(' ')} [--rpm N] [--limiter-key K]
      streams the file to the Worker and prints the batch id. A line that is
      { "custom_id", "params" } is sent as is; any other line is a request body and gets
      custom_id "line-<its line number>". --limiter-key K: a limiter of your own that all
      your batches on K share (another token's K is another limiter); --rpm N (with
      --limiter-key): its requests per minute, set by the first batch on K (a later batch
      must send the same, or the Worker answers 409).
  edgebatch status <id> [--follow] [--json]
      the batch's counts; --follow: a progress bar until it ends (exit 1 if any request
      did not succeed)
  edgebatch results <id> -o <out.jsonl> [--follow]
      appends the results done so far, one line per request:
        { "custom_id", "result": { "type": "succeeded", "message" } | { "type": "errored",
          "error" } | { "type": "canceled" } | { "type": "expired" }, "edgebatch": { "seq", ... } }
      and resumes after the last line already in <out.jsonl> (one file per batch);
      --follow: keeps downloading until the batch has ended and every result is in
  edgebatch cancel <id>       queued requests end as canceled; in-flight ones finish
  edgebatch list [--running] [--json]   this token's batches, newest first
  Every one takes --worker URL (or env EDGEBATCH_WORKER), --token T (or env EDGEBATCH_TOKEN),
  -q/--quiet; --follow polls every --interval-ms N (default 1000).
`;

const COMMON = {
  worker: { type: 'string' },
  token: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
};
const FOLLOW = { follow: { type: 'boolean' }, 'interval-ms': { type: 'string' } };
const FLAGS = {
  submit: {
    provider: { type: 'string' },
    'base-url': { type: 'string' },
    ...optionFlags(SUBMIT_OPTIONS),
    rpm: { type: 'string' },
    'limiter-key': { type: 'string' },
  },
  status: { ...FOLLOW, json: { type: 'boolean' } },
  results: { ...FOLLOW, output: { type: 'string', short: 'o' } },
  cancel: {},
  list: { running: { type: 'boolean' }, json: { type: 'boolean' } },
};
/** Option ranges as the Worker checks them (it names the limit again if its config is lower). */
const SUBMIT_INTS = {
  ...optionInts(SUBMIT_OPTIONS, WORKER_CAPS),
  rpm: ['requestsPerMinute', 1, 1e12],
};
const PROVIDERS = ['anthropic', 'openai'];
/** Waits before trying a read again after a dropped connection. */
const RETRY_DELAYS_MS = [250, 500, 1000, 2000];
/** Bytes per upload chunk, about: the body streams from the file, it is never held whole. */
const UPLOAD_CHUNK_BYTES = 64 * 1024;

/** Runs `command` with its arguments; resolves with the exit status. */
export async function batchCommand(command, argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...COMMON, ...FLAGS[command] } });
  } catch (e) {
    throw new UsageError(`${command}: ${e.message}`);
  }
  const { values: v, positionals } = parsed;
  const wanted = command === 'list' ? 0 : 1;
  const what = command === 'submit' ? 'the requests file' : 'the batch id';
  if (positionals.length < wanted) throw new UsageError(`${command}: missing ${what}`);
  if (positionals.length > wanted) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(positionals[wanted])}`);
  const ctx = {
    worker: workerTarget(v, { required: true }),
    quiet: Boolean(v.quiet),
    intervalMs: intFlags(v, { 'interval-ms': ['ms', 100, 3_600_000] }).ms ?? 1000,
    abort: new AbortController(),
  };
  const onSigint = () => {
    if (ctx.abort.signal.aborted) process.exit(130);
    process.stderr.write('\nedgebatch: interrupted (Ctrl-C again to quit now)\n');
    ctx.abort.abort(new Error('interrupted'));
  };
  process.on('SIGINT', onSigint);
  try {
    return await COMMANDS[command](ctx, positionals[0], v);
  } catch (e) {
    if (ctx.abort.signal.aborted && !(e instanceof UsageError)) return 130;
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

const COMMANDS = {
  async submit(ctx, file, v) {
    const header = submitHeader(v);
    const count = await checkRequests(file);
    if (count === 0) throw new UsageError(`${file} has no requests`);
    let res;
    try {
      res = await call(ctx, 'POST', '/v1/batches', {
        headers: { 'content-type': 'application/x-ndjson' },
        body: uploadStream(file, header),
        duplex: 'half',
      });
    } catch (e) {
      // Not sent again: the Worker may have made the batch before the connection dropped.
      if (e instanceof WorkerError && e.status === undefined) e.message += ' (the batch may exist all the same: see `edgebatch list`)';
      throw e;
    }
    const batch = await res.json();
    say(ctx, `submitted ${count} requests from ${file} as ${batch.id} (${batch.processing_status})`);
    console.log(batch.id);
    return 0;
  },

  async status(ctx, id, v) {
    let batch = await describe(ctx, id);
    if (!v.follow) {
      console.log(v.json ? JSON.stringify(batch) : statusLine(batch));
      return 0;
    }
    const view = new ProgressView({ total: totalOf(batch), already: doneOf(batch), quiet: ctx.quiet });
    for (;;) {
      const c = batch.request_counts;
      view.update({ done: doneOf(batch), ok: c.succeeded, failed: c.errored + c.canceled + c.expired });
      if (batch.processing_status === 'ended') break;
      await sleep(ctx.intervalMs, undefined, { signal: ctx.abort.signal });
      batch = await describe(ctx, id);
    }
    view.finish();
    console.log(v.json ? JSON.stringify(batch) : statusLine(batch));
    return batch.request_counts.succeeded === totalOf(batch) ? 0 : 1;
  },

  async results(ctx, id, v) {
    if (v.output === undefined) throw new UsageError('results: missing -o <out.jsonl>');
    const file = await scanBatchResults(v.output);
    if (file.cut) say(ctx, `cut a torn last line of ${file.cut} bytes off ${v.output}`);
    let batch = await describe(ctx, id);
    const view = new ProgressView({ total: totalOf(batch), already: file.lines, quiet: ctx.quiet || !v.follow });
    const before = file.lines;
    const out = new LineAppender(v.output);
    let ended;
    try {
      for (;;) {
        ended = await download(ctx, id, file, out);
        view.update({ done: file.lines, ok: file.succeeded, failed: file.notSucceeded });
        if (ended || !v.follow) break;
        await sleep(ctx.intervalMs, undefined, { signal: ctx.abort.signal });
      }
    } finally {
      out.close();
      view.finish();
    }
    if (ended) batch = await describe(ctx, id);
    const total = totalOf(batch);
    say(ctx, `${file.lines - before} new results appended to ${v.output}; it holds ${file.lines} of ${total} ` +
      `(${file.succeeded} succeeded, ${file.notSucceeded} not); the batch is ${batch.processing_status}`);
    if (ended && file.lines !== total) {
      throw new Error(`${v.output} holds ${file.lines} results but the batch has ${total} requests (is it the file of another batch?)`);
    }
    if (!ended) say(ctx, 'the batch is still running: run again (or add --follow) for the rest');
    return ended && file.notSucceeded === 0 ? 0 : 1;
  },

  async cancel(ctx, id) {
    const batch = await (await call(ctx, 'POST', `/v1/batches/${encodeURIComponent(id)}/cancel`)).json();
    console.log(statusLine(batch));
    return 0;
  },

  async list(ctx, _none, v) {
    let before;
    for (;;) {
      const query = `limit=100${before ? `&before_id=${encodeURIComponent(before)}` : ''}`;
      const page = await (await call(ctx, 'GET', `/v1/batches?${query}`)).json();
      for (const batch of page.data) {
        if (v.running && batch.processing_status === 'ended') continue;
        console.log(v.json ? JSON.stringify(batch) : statusLine(batch));
      }
      if (!page.has_more || !page.last_id) return 0;
      before = page.last_id;
    }
  },
};

/** `{ provider, options }`, the first line of the upload. */
function submitHeader(v) {
  const name = v.provider ?? 'anthropic';
  if (!PROVIDERS.includes(name)) {
    throw new UsageError(`submit: --provider must be one of ${PROVIDERS.join(', ')}, got ${JSON.stringify(name)}` +
      (name === 'http' ? ' (the Worker only calls allowlisted AI APIs)' : ''));
  }
  if (v['base-url'] !== undefined) checkUrl('--base-url', v['base-url']);
  const { requestsPerMinute, ...options } = intFlags(v, SUBMIT_INTS);
  if (requestsPerMinute !== undefined) {
    // The account's shared limiter takes no limits from a batch: --rpm sets a named one's.
    if (v['limiter-key'] === undefined) throw new UsageError('--rpm needs --limiter-key: it sets the limits of a limiter of your own');
    options.rateLimit = { requestsPerMinute };
  }
  if (v['limiter-key'] !== undefined) {
    if (!/^[\w.:-]{1,64}$/.test(v['limiter-key'])) throw new UsageError('--limiter-key must be 1 to 64 characters of letters, digits, _ . : -');
    options.limiterKey = v['limiter-key'];
  }
  const provider = { name, ...(v['base-url'] !== undefined && { baseUrl: v['base-url'].replace(/\/+$/, '') }) };
  return { provider, options };
}

/** The file's request lines as `{ custom_id, params }` objects, with their line numbers. */
async function* requestLines(file) {
  let input;
  try {
    fs.accessSync(file, fs.constants.R_OK);
    input = fs.createReadStream(file, { encoding: 'utf8' });
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${e.message}`);
  }
  let n = 0;
  for await (const text of readline.createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (text.trim() === '') continue;
    let v;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new Error(`${file}:${n}: not valid JSON (${e.message})`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}:${n}: not a JSON object`);
    if (!Object.hasOwn(v, 'custom_id')) {
      yield { custom_id: `line-${n}`, params: v };
      continue;
    }
    const keys = Object.keys(v);
    if (keys.length !== 2 || !Object.hasOwn(v, 'params')) {
      throw new Error(`${file}:${n}: a line with custom_id must be { "custom_id", "params" } and nothing else`);
    }
    yield v;
  }
}

/** Reads the file through once before sending anything, so a bad line is named up front. */
async function checkRequests(file) {
  let count = 0;
  for await (const _ of requestLines(file)) count++;
  return count;
}

/** The NDJSON upload: the header line, then the requests, read from the file as it goes. */
function uploadStream(file, header) {
  const lines = requestLines(file);
  const enc = new TextEncoder();
  let first = `${JSON.stringify(header)}\n`;
  return new ReadableStream({
    async pull(controller) {
      let text = first;
      first = '';
      while (text.length < UPLOAD_CHUNK_BYTES) {
        const next = await lines.next();
        if (next.done) break;
        text += `${JSON.stringify(next.value)}\n`;
      }
      if (text === '') controller.close();
      else controller.enqueue(enc.encode(text));
    },
    cancel: () => lines.return(),
  });
}

/** Appends the results after the file's last seq; returns whether the batch had ended. */
async function download(ctx, id, file, out) {
  const res = await call(ctx, 'GET', `/v1/batches/${encodeURIComponent(id)}/results?after=${file.lastSeq}`);
  const ended = res.headers.get('edgebatch-batch-ended') === 'true';
  let pending = [];
  const flush = () => {
    out.write(pending);
    pending = [];
  };
  try {
    for await (const text of responseLines(res)) {
      const line = checkLine(text, `the Worker's results line after seq ${file.lastSeq}`, file.lastSeq);
      pending.push(text);
      file.lastSeq = line.seq;
      file.lines++;
      if (line.succeeded) file.succeeded++;
      else file.notSucceeded++;
      if (pending.length >= 100) flush();
    }
  } finally {
    flush();
  }
  return ended;
}

/**
 * A call to the Worker. Reads and cancel (both idempotent) are tried again after a dropped
 * connection or a 502/503/504, a few times over ~4 s: a long --follow must not die of one
 * idle keep-alive connection the server closed just as it was reused. A submit is never
 * repeated (it would make a second batch).
 */
async function call(ctx, method, path, init = {}) {
  const retryable = method === 'GET' || path.endsWith('/cancel');
  for (let attempt = 0; ; attempt++) {
    try {
      return await workerFetch(new URL(path, ctx.worker.url), {
        method,
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${ctx.worker.token}` },
        signal: ctx.abort.signal,
      });
    } catch (e) {
      const transient = e instanceof WorkerError && (e.status === undefined || [502, 503, 504].includes(e.status));
      if (!retryable || !transient || attempt >= RETRY_DELAYS_MS.length) throw e;
      await sleep(RETRY_DELAYS_MS[attempt], undefined, { signal: ctx.abort.signal });
    }
  }
}

async function describe(ctx, id) {
  return (await call(ctx, 'GET', `/v1/batches/${encodeURIComponent(id)}`)).json();
}

const totalOf = (b) => Object.values(b.request_counts).reduce((n, k) => n + k, 0);
const doneOf = (b) => totalOf(b) - b.request_counts.processing;

function statusLine(b) {
  const c = b.request_counts;
  return [b.id, b.processing_status, `${doneOf(b)}/${totalOf(b)} done`, `succeeded ${c.succeeded}`, `errored ${c.errored}`,
    `canceled ${c.canceled}`, `expired ${c.expired}`, `created ${b.created_at}`, ...(b.ended_at ? [`ended ${b.ended_at}`] : [])].join('  ');
}

function say(ctx, message) {
  if (!ctx.quiet) process.stderr.write(`edgebatch: ${message}\n`);
}
