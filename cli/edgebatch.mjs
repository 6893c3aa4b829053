#!/usr/bin/env node
// edgebatch CLI: `edgebatch run requests.jsonl -o results.jsonl [options]`, and the commands of
// batches stored on a Worker (submit, status, results, cancel, list: cli/batches.mjs).
// `run` runs every request (in-process with the wasm package, or on a Worker with --worker), appends
// one result line per item as it completes, and resumes: items already in the output file are
// skipped. Exit status: 0 every item ok, 1 some failed or the run stopped early, 2 bad usage,
// 130 interrupted.
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import process from 'node:process';
import { streamBatch } from '../worker/src/batch.js';
import { BATCH_COMMANDS, BATCH_HELP, batchCommand } from './batches.mjs';
import { checkUrl, intFlags, optionFlags, optionHelp, optionInts, workerTarget } from './flags.mjs';
import { ProgressView } from './progress.mjs';
import { loadRequests, loadResults, ResultsWriter, UsageError } from './results-file.mjs';
import { chunk, postBatch, WorkerError } from './worker-client.mjs';

/** The edgebatch options `run` takes as flags (cli/flags.mjs holds their ranges and help). */
const RUN_OPTIONS = ['concurrency', 'max-retries', 'timeout-ms', 'deadline-ms'];

const HELP = `Usage: edgebatch run <requests.jsonl> -o <results.jsonl> [options]
       edgebatch submit | status | results | cancel | list ... --worker URL   (see below)

Runs one request per line of <requests.jsonl> (item i = the i-th non-blank line) and appends
one line per item to <results.jsonl> as it completes:
  { "index", "ok", "value" | "error", "attempts", "elapsedMs", "usage"? }
Items already in <results.jsonl> are skipped, so re-running resumes an interrupted run.

Options:
  -o, --output FILE     results file (JSONL, appended)
  --provider NAME       anthropic (default): lines are Messages API bodies
                        openai: lines are Chat Completions bodies
                        http: lines are fetch specs { url, method?, headers?, body? }
  --base-url URL        the provider's base URL (default: its public API)
${optionHelp(RUN_OPTIONS)}
  --retry-failed        run again the items whose line in the output failed (replacing it)
  --worker URL          send the batch to a running edgebatch Worker (POST URL/v1/batch)
  --token T             the Worker's bearer token (default: env EDGEBATCH_TOKEN)
  -q, --quiet           no progress output
  -h, --help            this help

API keys come from the environment only: ANTHROPIC_API_KEY, OPENAI_API_KEY (in --worker mode
the Worker uses its own secrets).
${BATCH_HELP}
Exit status: 0 all ok, 1 some items failed or the run stopped early (results: the batch still
runs; status --follow, results: some request did not succeed), 2 bad usage, 130 interrupted.
`;

const PROVIDERS = ['anthropic', 'openai', 'http'];
const KEY_VARS = { anthropic: 'ANTHROPIC_API_KEY', openai: 'OPENAI_API_KEY' };
const INT_FLAGS = optionInts(RUN_OPTIONS);

function parseCli(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        output: { type: 'string', short: 'o' },
        provider: { type: 'string' },
        'base-url': { type: 'string' },
        ...optionFlags(RUN_OPTIONS),
        'retry-failed': { type: 'boolean' },
        worker: { type: 'string' },
        token: { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError(e.message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return { help: true };
  const [command, input, ...extra] = positionals;
  if (command === undefined) throw new UsageError('missing command: edgebatch run <requests.jsonl> -o <results.jsonl>');
  if (command === 'help') return { help: true };
  if (command !== 'run') {
    throw new UsageError(`unknown command ${JSON.stringify(command)} (commands: run, ${BATCH_COMMANDS.join(', ')})`);
  }
  if (input === undefined) throw new UsageError('missing the requests file: edgebatch run <requests.jsonl> -o <results.jsonl>');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  if (v.output === undefined) throw new UsageError('missing -o <results.jsonl>');

  const provider = v.provider ?? 'anthropic';
  if (!PROVIDERS.includes(provider)) {
    throw new UsageError(`--provider must be one of ${PROVIDERS.join(', ')}, got ${JSON.stringify(provider)}`);
  }
  if (v['base-url'] !== undefined) {
    if (provider === 'http') throw new UsageError('--base-url does not apply to --provider http (each line has its url)');
    checkUrl('--base-url', v['base-url']);
  }
  const options = intFlags(v, INT_FLAGS);
  const worker = workerTarget(v, { required: false });
  if (worker && provider === 'http') {
    throw new UsageError('--provider http cannot go through --worker: the Worker only calls allowlisted AI APIs');
  }
  return {
    input,
    output: v.output,
    provider,
    baseUrl: v['base-url']?.replace(/\/+$/, ''),
    options,
    worker,
    retryFailed: Boolean(v['retry-failed']),
    quiet: Boolean(v.quiet),
  };
}

/** The in-process provider option, with the key from the environment only. */
function providerOption(cli) {
  if (cli.provider === 'http') return undefined;
  const apiKey = process.env[KEY_VARS[cli.provider]];
  if (!apiKey && cli.baseUrl === undefined) {
    throw new UsageError(`set ${KEY_VARS[cli.provider]} in the environment (keys are never taken from flags)`);
  }
  return {
    name: cli.provider,
    ...(apiKey && { apiKey }),
    ...(cli.baseUrl !== undefined && { baseUrl: cli.baseUrl }),
  };
}

async function loadEdgebatch() {
  const wasm = new URL('../pkg/edgebatch_bg.wasm', import.meta.url);
  if (!existsSync(wasm)) throw new Error(`${wasm.pathname} is missing: run \`make build\` first`);
  const mod = await import('../pkg/edgebatch.js');
  mod.initSync({ module: readFileSync(wasm) });
  return mod;
}

/** Runs `todo` in-process; calls `emit(result)` per completion; returns the summary. */
async function runInProcess(cli, todo, emit, signal, view) {
  const edgebatch = await loadEdgebatch();
  let results;
  try {
    results = streamBatch(edgebatch, {
      items: todo.map((e) => e.item),
      provider: providerOption(cli),
      options: cli.options,
      signal,
      onProgress: (p) => view.update({ done: p.done, ok: p.ok, failed: p.failed, inFlight: p.inFlight, retries: p.retries }),
    });
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  for (;;) {
    const next = await results.next();
    if (next.done) return next.value;
    emit({ ...next.value, index: todo[next.value.index].index });
  }
}

/** Sends `todo` to the Worker in chunks; calls `emit(result)` per line; returns the summary. */
async function runOnWorker(cli, todo, emit, signal) {
  const provider = { name: cli.provider, ...(cli.baseUrl !== undefined && { baseUrl: cli.baseUrl }) };
  const total = emptySummary();
  for (const part of chunk(todo)) {
    const body = { provider, items: part.map((e) => e.item), options: cli.options };
    let summary;
    for await (const line of postBatch(cli.worker.url, cli.worker.token, body, signal)) {
      if (line.summary) summary = line.summary;
      else if (line.error) throw new WorkerError(`the Worker stopped: ${line.error.type}: ${line.error.message}`);
      else emit({ ...line, index: part[line.index].index });
    }
    if (!summary) throw new WorkerError('the Worker closed the stream before its summary line');
    addSummary(total, summary);
  }
  return total;
}

function emptySummary() {
  return { total: 0, ok: 0, failed: 0, attempts: 0, retries: 0, byKind: {},
    usage: { inputTokens: 0, outputTokens: 0 }, subrequests: 0, elapsedMs: 0 };
}

function addSummary(into, s) {
  for (const k of ['total', 'ok', 'failed', 'attempts', 'retries', 'subrequests', 'elapsedMs']) into[k] += s[k] ?? 0;
  for (const [kind, n] of Object.entries(s.byKind ?? {})) into.byKind[kind] = (into.byKind[kind] ?? 0) + n;
  into.usage.inputTokens += s.usage?.inputTokens ?? 0;
  into.usage.outputTokens += s.usage?.outputTokens ?? 0;
}

function printSummary(rows) {
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nsummary');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
}

async function main(argv) {
  // The batch commands come first on the line; `run` takes its flags anywhere.
  if (BATCH_COMMANDS.includes(argv[0]) && !argv.includes('-h') && !argv.includes('--help')) return batchCommand(argv[0], argv.slice(1));
  const cli = parseCli(argv);
  if (cli.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const items = loadRequests(cli.input);
  if (!cli.worker) providerOption(cli); // a missing key is a usage error: say so before any work
  const prior = loadResults(cli.output, items.length, { dropFailed: cli.retryFailed });
  const todo = items.map((item, index) => ({ index, item })).filter((e) => !prior.done.has(e.index));
  const where = cli.worker ? `Worker ${new URL(cli.worker.url).origin}` : 'in-process';
  const target = cli.provider === 'http' ? 'fetch specs' : `${cli.provider} ${cli.baseUrl ?? '(public API)'}`;
  console.log(`edgebatch: ${items.length} items in ${cli.input}, ${prior.done.size} already in ${cli.output}` +
    `${prior.dropped ? ` (${prior.dropped} failed ones dropped to retry)` : ''}` +
    `${prior.cut ? ` (cut a torn last line of ${prior.cut} bytes)` : ''}; running ${todo.length} ${where} -> ${target}`);

  const abort = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nedgebatch: interrupted; finishing the lines in hand (Ctrl-C again to quit now)\n');
    abort.abort(new Error('interrupted'));
  };
  process.on('SIGINT', onSigint);

  const view = new ProgressView({ total: todo.length, quiet: cli.quiet });
  const writer = new ResultsWriter(cli.output);
  const seen = { done: 0, ok: 0, failed: 0, written: 0, notWritten: 0 };
  const emit = (r) => {
    // An item cut short by our own abort has no outcome yet: leave it for the next run.
    if (!r.ok && r.error?.kind === 'aborted') {
      seen.notWritten += 1;
      return;
    }
    writer.write(r);
    seen.written += 1;
    seen.done += 1;
    if (r.ok) seen.ok += 1;
    else seen.failed += 1;
    if (cli.worker) view.update({ done: seen.done, ok: seen.ok, failed: seen.failed });
  };

  const t0 = Date.now();
  let summary;
  let failure;
  try {
    summary = todo.length === 0 ? emptySummary()
      : cli.worker ? await runOnWorker(cli, todo, emit, abort.signal)
        : await runInProcess(cli, todo, emit, abort.signal, view);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (!abort.signal.aborted) failure = e;
  } finally {
    writer.close();
    view.finish();
    process.off('SIGINT', onSigint);
  }

  const after = loadResults(cli.output, items.length);
  const kinds = Object.entries(summary?.byKind ?? {}).map(([k, n]) => `${k} ${n}`).join(', ');
  const rows = [
    ['items in input', items.length],
    ['already done (skipped)', prior.done.size],
    ['run now', todo.length],
    ['ok', seen.ok],
    ['failed', `${seen.failed}${kinds ? ` (${kinds})` : ''}`],
  ];
  if (summary) {
    rows.push(['attempts', summary.attempts], ['retries', summary.retries],
      ['input tokens', summary.usage?.inputTokens ?? 0], ['output tokens', summary.usage?.outputTokens ?? 0],
      ['subrequests', summary.subrequests ?? summary.attempts]);
  }
  rows.push(['wall time', `${((Date.now() - t0) / 1000).toFixed(2)} s`],
    ['items in the output file', `${after.done.size}/${items.length}`]);
  printSummary(rows);

  if (failure) {
    console.error(`edgebatch: ${failure.message}`);
    return 1;
  }
  if (interrupted) return 130;
  return after.done.size === items.length && [...after.done.values()].every(Boolean) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => {
    if (e instanceof UsageError) {
      console.error(`edgebatch: ${e.message}\n(see edgebatch --help)`);
      process.exitCode = 2;
    } else {
      console.error(`edgebatch: ${e.message}`);
      process.exitCode = 1;
    }
  },
);
