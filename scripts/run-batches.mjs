#!/usr/bin/env node
// `make run`'s stored batches (/v1/batches), driven through the CLI so its progress bar is what
// shows:
//   node scripts/run-batches.mjs resume        follows every batch still running (an earlier
//                                              make run killed mid-batch) to its end
//   node scripts/run-batches.mjs new N         submits N requests (worker/sample/documents.jsonl,
//                                              cycled) to the simulator, follows it to the end
// Each batch then downloads its results to test-artifacts/run/batches/<id>.jsonl (resumable)
// and gets a summary: counts, time, what the simulator saw. Needs EDGEBATCH_WORKER and
// EDGEBATCH_TOKEN. Exit status: 0 ok, 1 a request did not succeed or a step failed, 130 Ctrl-C.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const CLI = path.join(root, 'cli/edgebatch.mjs');
const SAMPLE = path.join(root, 'worker/sample/documents.jsonl');
const OUT = path.join(root, 'test-artifacts/run/batches');
const origin = process.env.EDGEBATCH_WORKER;

const note = (s) => console.log(`run: ${s}`);

/** Runs the CLI with the terminal as its stdout/stderr (or stdout captured); resolves { code, stdout }. */
function cli(args, { capture = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] });
    let stdout = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code: signal ? 130 : code, stdout }));
  });
}

/** The CLI's stdout, or exits with its status when it failed. */
async function cliOut(args) {
  const r = await cli(args, { capture: true });
  if (r.code !== 0) process.exit(r.code === 130 ? 130 : 1);
  return r.stdout;
}

async function simStats() {
  const res = await fetch(new URL('/sim/stats', origin));
  return res.ok ? res.json() : null;
}

/** Follows `id` to its end, downloads its results, prints the summary; returns 0 or 1. */
async function finish(id, statsBefore, resumed) {
  const follow = await cli(['status', id, '--follow']);
  if (follow.code === 130) process.exit(130);
  const file = path.join(OUT, `${id}.jsonl`);
  const download = await cli(['results', id, '-o', file, '--follow', '--quiet']);
  if (download.code === 130) process.exit(130);
  const batch = JSON.parse(await cliOut(['status', id, '--json']));
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const ids = new Set(lines.map((l) => l.custom_id));
  const total = Object.values(batch.request_counts).reduce((a, b) => a + b, 0);
  const secs = (Date.parse(batch.ended_at) - Date.parse(batch.created_at)) / 1000;
  const c = batch.request_counts;
  const attempts = lines.reduce((n, l) => n + (l.edgebatch?.attempts ?? 0), 0);
  note(`batch ${id}: ${total} requests, ${batch.processing_status}: succeeded ${c.succeeded}, errored ${c.errored}, ` +
    `canceled ${c.canceled}, expired ${c.expired}`);
  note(`  ${secs.toFixed(1)} s from created to ended (${(total / secs).toFixed(1)} requests/s${resumed ? ', a restart of make run included' : ''}), ` +
    `${attempts} attempts (${(attempts / total).toFixed(3)} per request)`);
  note(`  results: ${path.relative(root, file)}: ${lines.length} lines, ${ids.size} distinct custom_ids`);
  const after = await simStats();
  if (after && statsBefore && !resumed) {
    const byStatus = Object.entries(after.byStatus).map(([k, n]) => [k, n - (statsBefore.byStatus[k] ?? 0)]).filter(([, n]) => n > 0);
    const requests = after.requests - statsBefore.requests;
    note(`  the simulator saw ${requests} requests for it (${byStatus.map(([k, n]) => `${k}: ${n}`).join(', ')}), ` +
      `${(requests / total).toFixed(3)} per request; ${after.hangs - statsBefore.hangs} hangs, ` +
      `${after.disconnects - statsBefore.disconnects} dropped connections`);
  } else if (after) {
    note(`  the simulator (since this Worker started) saw ${after.requests} requests in all`);
  }
  return lines.length === total && ids.size === total && c.succeeded === total ? 0 : 1;
}

async function resume() {
  const running = (await cliOut(['list', '--running'])).split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]);
  if (running.length === 0) {
    note('no stored batch is still running');
    return 0;
  }
  let status = 0;
  for (const id of running) {
    note(`batch ${id} is still running (an earlier make run stopped before its end): following it`);
    status = Math.max(status, await finish(id, null, true));
  }
  return status;
}

async function submitNew(n) {
  const docs = fs.readFileSync(SAMPLE, 'utf8').split('\n').filter(Boolean);
  fs.mkdirSync(OUT, { recursive: true });
  const input = path.join(OUT, `requests-${n}.jsonl`);
  fs.writeFileSync(input, Array.from({ length: n }, (_, i) => `${docs[i % docs.length]}\n`).join(''));
  const before = await simStats();
  note(`submitting ${n} requests (${path.relative(root, input)}) to POST ${origin}/v1/batches -> the simulator at ${origin}/sim`);
  const id = (await cliOut(['submit', input, '--base-url', `${origin}/sim`, '--max-retries', '8', '--timeout-ms', '3000'])).trim();
  note(`batch ${id}: it runs on the Worker's queues now; following it (stopped midway, it stays in the state folder and the next make run finishes it)`);
  return finish(id, before, false);
}

const [command, arg] = process.argv.slice(2);
if (!origin || !process.env.EDGEBATCH_TOKEN) {
  console.error('run-batches: set EDGEBATCH_WORKER and EDGEBATCH_TOKEN');
  process.exit(2);
}
if (command === 'resume') process.exitCode = await resume();
else if (command === 'new' && /^\d+$/.test(arg ?? '')) process.exitCode = await submitNew(Number(arg));
else {
  console.error('usage: node scripts/run-batches.mjs resume | new N');
  process.exit(2);
}
