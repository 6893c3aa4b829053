// The CLI's batch commands against a Worker on workerd (Durable Objects, Queues): submit, follow
// and download end with exactly one line per custom_id; a download cut off midway resumes with
// none doubled and none missing; cancel, list and Ctrl-C.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, cliAsync, requestsFile, results } from './cli-helpers.mjs';
import { ROOMY_TOKEN } from '../../worker/test/batches-client.mjs';

describe('cli: batch commands, usage errors exit 2', () => {
  const w = ['--worker', 'http://127.0.0.1:1', '--token', 't'];
  const cases = [
    [['submit', ...w], /submit: missing the requests file/],
    [['status', 'batch_x'], /missing --worker URL \(or env EDGEBATCH_WORKER\)/],
    [['status', 'batch_x', '--worker', 'http://127.0.0.1:1'], /--worker needs --token/],
    [['results', 'batch_x', ...w], /results: missing -o <out.jsonl>/],
    [['submit', 'in.jsonl', '--concurrency', '7', ...w], /--concurrency must be an integer in 1..=6, got "7"/],
    [['submit', 'in.jsonl', '--limiter-key', 'a b', ...w], /--limiter-key must be 1 to 64 characters/],
    [['submit', 'in.jsonl', '--rpm', '5', ...w], /--rpm needs --limiter-key/],
    [['status', 'a', 'b', ...w], /status: unexpected argument "b"/],
    [['cancel', 'a', '--follow', ...w], /cancel: Unknown option '--follow'/],
    [['status', 'a', '--interval-ms', '5', ...w], /--interval-ms must be an integer in 100..=3600000/],
  ];
  for (const [args, message] of cases) {
    test(args.join(' '), () => {
      const r = cli(args);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
    });
  }
});

describe('cli: batch commands against a Worker on workerd', { timeout: 150_000 }, () => {
  let worker;
  let dir;
  let flags;
  before(async () => {
    const { startWorker, TOKEN } = await import('../../worker/test/harness.mjs');
    worker = await startWorker({ ...ROOMY_TOKEN, EDGEBATCH_SIM: 'on', EDGEBATCH_BATCH_ALARM_MS: '500' });
    dir = mkdtempSync(join(tmpdir(), 'edgebatch-cli-batches-'));
    flags = ['--worker', worker.url.origin, '--token', TOKEN];
  });
  after(async () => {
    await worker?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const submit = async (input, extra = []) => {
    const r = await cliAsync(['submit', input, ...flags, '--base-url', `${worker.url.origin}/sim`, ...extra]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const id = r.stdout.trim();
    assert.match(id, /^batch_[0-9a-f]{64}$/);
    return id;
  };

  let done; // { id, output, expected custom_ids, exit code of a complete download }
  test('submit, status --follow, results --follow: one line per custom_id', { timeout: 90_000 }, async () => {
    const N = 100;
    // Plain request bodies (custom_id line-<n>), some lines already { custom_id, params }, a blank line.
    const bodies = readFileSync(requestsFile(dir, N), 'utf8').split('\n').filter(Boolean);
    const lines = bodies.map((b, i) => (i % 10 === 3 ? JSON.stringify({ custom_id: `doc-${i}`, params: JSON.parse(b) }) : b));
    lines.splice(50, 0, '');
    const input = join(dir, 'mixed.jsonl');
    writeFileSync(input, `${lines.join('\n')}\n`);
    const expected = lines.map((l, n) => (l === '' ? null : JSON.parse(l).custom_id ?? `line-${n + 1}`)).filter(Boolean);
    assert.equal(new Set(expected).size, N);

    const id = await submit(input, ['--max-retries', '8', '--timeout-ms', '3000']);
    const output = join(dir, 'out.jsonl');
    // Right away: whatever is done so far (maybe nothing), exit 1 while the batch runs.
    const early = await cliAsync(['results', id, '-o', output, ...flags]);
    assert.ok(early.code === 0 || early.code === 1, early.stderr);

    const status = await cliAsync(['status', id, '--follow', '--interval-ms', '200', ...flags]);
    assert.match(status.stderr, new RegExp(`progress: ${N}/${N}`));
    assert.match(status.stdout, new RegExp(`^${id}  ended  ${N}/${N} done  succeeded \\d+`));
    const r = await cliAsync(['results', id, '-o', output, '--follow', '--interval-ms', '200', ...flags]);
    assert.match(r.stderr, new RegExp(`it holds ${N} of ${N}`));

    const got = results(output);
    assert.deepEqual(got.map((l) => l.custom_id).sort(), [...expected].sort());
    const seqs = got.map((l) => l.edgebatch.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'completion order');
    const allOk = got.every((l) => l.result.type === 'succeeded');
    assert.equal(r.code, allOk ? 0 : 1, r.stderr);
    assert.equal(status.code, allOk ? 0 : 1, status.stderr);
    for (const l of got.filter((x) => x.result.type === 'succeeded')) assert.equal(l.result.message.type, 'message');
    done = { id, output, code: r.code };
  });

  test('results resumes a download cut off midway: none doubled, none missing', async (t) => {
    if (!done) return t.skip('needs the batch of the previous test');
    const full = readFileSync(done.output, 'utf8');
    const lines = full.split('\n').filter(Boolean);
    const half = join(dir, 'half.jsonl');
    // Half the lines, and a torn one, as a download killed in the middle of a write leaves.
    writeFileSync(half, `${lines.slice(0, lines.length / 2).join('\n')}\n${lines[lines.length / 2].slice(0, 40)}`);
    const r = await cliAsync(['results', done.id, '-o', half, ...flags]);
    assert.equal(r.code, done.code, r.stderr);
    assert.match(r.stderr, /cut a torn last line of 40 bytes/);
    assert.match(r.stderr, new RegExp(`${lines.length / 2} new results appended`));
    assert.equal(readFileSync(half, 'utf8'), full);
    // Nothing left: a third run appends nothing.
    const again = await cliAsync(['results', done.id, '-o', half, ...flags]);
    assert.match(again.stderr, /0 new results appended/);
    assert.equal(readFileSync(half, 'utf8'), full);
  });

  test('list --running, Ctrl-C on status --follow (130), cancel', { timeout: 60_000 }, async () => {
    const N = 40;
    // 2 requests per minute on a limiter of its own: the batch crawls until canceled.
    const id = await submit(requestsFile(dir, N, 'slow.jsonl'), ['--rpm', '2', '--limiter-key', 'cli-test-slow']);
    const listed = await cliAsync(['list', '--running', ...flags]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${id}  in_progress  `, 'm'));

    const interrupted = await cliAsync(['status', id, '--follow', ...flags], {
      onChild: (child) => child.stderr.once('data', () => child.kill('SIGINT')),
    });
    assert.equal(interrupted.code, 130, interrupted.stderr);

    const canceled = await cliAsync(['cancel', id, ...flags]);
    assert.equal(canceled.code, 0, canceled.stderr);
    assert.match(canceled.stdout, new RegExp(`^${id}  (canceling|ended)  `));
    const output = join(dir, 'slow.out.jsonl');
    const r = await cliAsync(['results', id, '-o', output, '--follow', '--interval-ms', '200', ...flags]);
    assert.equal(r.code, 1, 'not every request succeeded');
    const got = results(output);
    assert.equal(new Set(got.map((l) => l.custom_id)).size, N);
    assert.equal(got.length, N);
    assert.ok(got.filter((l) => l.result.type === 'canceled').length >= N / 2, 'most were still queued');
    const after = await cliAsync(['list', '--running', ...flags]);
    assert.doesNotMatch(after.stdout, new RegExp(id));
  });
});
