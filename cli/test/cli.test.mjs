// The CLI: bad flags exit 2; a run killed midway (SIGKILL) and run again leaves every item in
// the output exactly once; --worker mode reads a real Worker's NDJSON stream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimServer } from '../../js/sim-server.mjs';
import { CLI, cli, cliAsync, env, requestsFile, results, simEnv, sleep } from './cli-helpers.mjs';

describe('cli: usage errors exit 2 with a clear message', () => {
  const cases = [
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--concurrency', 'abc'], /--concurrency must be an integer in 1..=10000, got "abc"/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--max-retries', '-1'], /--max-retries/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--bogus'], /Unknown option '--bogus'/],
    [['run', 'in.jsonl'], /missing -o <results.jsonl>/],
    [['run', '-o', 'out.jsonl'], /missing the requests file/],
    [['go', 'in.jsonl', '-o', 'out.jsonl'], /unknown command "go"/],
    [[], /missing command/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--provider', 'gemini'], /--provider must be one of anthropic, openai, http/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--base-url', 'ftp://x'], /--base-url must be an http\(s\) URL/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--worker', 'http://127.0.0.1:1'], /--worker needs --token/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--token', 't'], /--token only applies with --worker/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--api-key', 'sk-x'], /Unknown option '--api-key'/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--post-threads', '2'], /--post-threads only applies with --post-process/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--post-process', 'x.mjs#'], /--post-process must be MODULE or MODULE#EXPORT/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--post-process', 'x.mjs', '--post-threads', '0'], /--post-threads must be an integer in 1..=1024/],
    [['run', 'in.jsonl', '-o', 'out.jsonl', '--post-process', 'x.mjs', '--worker', 'http://127.0.0.1:1', '--token', 't'], /--post-process runs in-process only/],
  ];
  for (const [args, message] of cases) {
    test(args.join(' ') || '(no arguments)', () => {
      const r = cli(args);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
    });
  }

  test('no key in the environment for the public API is a usage error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgebatch-cli-'));
    try {
      const r = cli(['run', requestsFile(dir, 1), '-o', join(dir, 'out.jsonl')]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /set ANTHROPIC_API_KEY in the environment/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--help', () => {
    const r = cli(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Usage: edgebatch run <requests.jsonl> -o <results.jsonl>/);
  });
});

describe('cli: in-process against the simulator server', { timeout: 120_000 }, () => {
  let sim;
  let dir;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgebatch-cli-'));
    sim = await startSimServer({
      seed: 3,
      latency: { baseMs: 40, perOutputTokenMs: 0, jitterMs: 20 },
      faults: { rate429: 0.05, rate529: 0.05, rate500: 0.03 },
    });
  });
  after(async () => {
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('killed midway with SIGKILL, run again: every item exactly once', { timeout: 90_000 }, async () => {
    const N = 120;
    const input = requestsFile(dir, N);
    const output = join(dir, 'results.jsonl');
    const args = ['run', input, '-o', output, '--base-url', sim.url, '--concurrency', '4',
      '--max-retries', '8', '--timeout-ms', '3000'];

    const child = spawn(process.execPath, [CLI, ...args], { env: simEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let firstErr = '';
    child.stderr.on('data', (d) => (firstErr += d));
    const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
    const deadline = Date.now() + 30_000;
    let count = 0;
    while (Date.now() < deadline) {
      try {
        count = readFileSync(output, 'utf8').split('\n').filter(Boolean).length;
      } catch {
        count = 0;
      }
      if (count >= 20) break;
      await sleep(10);
    }
    child.kill('SIGKILL');
    const { signal } = await exited;
    assert.equal(signal, 'SIGKILL', `the first run was killed, not finished: ${firstErr}`);
    assert.ok(count >= 20 && count < N, `killed midway (${count} of ${N} lines)`);
    // A torn last line, as a kill in the middle of a write would leave.
    appendFileSync(output, '{"index":7,"ok":tr');

    const second = await cliAsync(args, { env: simEnv });
    assert.ok(second.code === 0 || second.code === 1, `exit ${second.code}\n${second.stdout}\n${second.stderr}`);
    assert.match(second.stdout, /already in/);
    assert.match(second.stdout, /cut a torn last line/);
    assert.match(second.stdout, /summary/);

    const lines = results(output);
    assert.equal(lines.length, N);
    assert.deepEqual(lines.map((l) => l.index).sort((a, b) => a - b), [...Array(N).keys()]);
    for (const l of lines) {
      assert.equal(typeof l.attempts, 'number');
      assert.equal(typeof l.elapsedMs, 'number');
      // 13% random faults, 8 retries: every item gets through (a 401 here would mean the key
      // never reached the simulator).
      assert.ok(l.ok, `item ${l.index} failed: ${JSON.stringify(l.error)}`);
      assert.equal(typeof l.value.text, 'string');
    }

    // A third run has nothing left to do.
    const third = await cliAsync(args, { env: simEnv });
    assert.match(third.stdout, /running 0 in-process/);
    assert.equal(results(output).length, N);
  });

  test('--post-process: each reply goes through the named export on worker threads', async () => {
    // Fetch specs (--provider http) carry their own key: no key in the CLI's environment.
    const input = join(dir, 'specs.jsonl');
    const spec = (i) => JSON.stringify({
      url: `${sim.url}/v1/messages`,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-cli-test', 'anthropic-version': '2023-06-01' },
      body: { model: 'sim-1', max_tokens: 16, messages: [{ role: 'user', content: `Summarize document ${i}.` }] },
    });
    writeFileSync(input, `${[0, 1, 2, 3, 4, 5].map(spec).join('\n')}\n`);
    const output = join(dir, 'post.jsonl');
    const module = join(dir, 'shout.mjs');
    writeFileSync(module, 'export const shout = (v, { index }) => ({ index, text: v.body.content[0].text.toUpperCase() });\n');
    const r = await cliAsync(['run', input, '-o', output, '--provider', 'http', '--max-retries', '8',
      '--post-process', `${module}#shout`, '--post-threads', '2']);
    assert.equal(r.code, 0, `${r.stderr}\n${readFileSync(output, 'utf8')}`);
    const lines = results(output).sort((a, b) => a.index - b.index);
    assert.equal(lines.length, 6);
    for (const l of lines) {
      assert.equal(l.value.index, l.index);
      assert.match(l.value.text, /^SUMMARY/);
    }
  });

  test('plain progress lines when stderr is not a TTY', async () => {
    const input = requestsFile(dir, 10);
    const output = join(dir, 'progress.jsonl');
    const r = await cliAsync(['run', input, '-o', output, '--base-url', sim.url, '--max-retries', '8'], { env: simEnv });
    assert.match(r.stderr, /^progress: 10\/10 {2}ok 10 {2}failed 0/m);
    assert.doesNotMatch(r.stderr, /\r/);
  });
});

describe('cli: --worker mode against a Worker on workerd', { timeout: 120_000 }, () => {
  test('streams the batch through POST /v1/batch and resumes', { timeout: 90_000 }, async () => {
    const { startWorker, TOKEN } = await import('../../worker/test/harness.mjs');
    const worker = await startWorker({ EDGEBATCH_SIM: 'on', EDGEBATCH_SIM_CONFIG: JSON.stringify({
      minuteMs: 1000, requestsPerMinute: 50, latency: { baseMs: 20, perOutputTokenMs: 0, jitterMs: 10 },
      faults: { rate529: 0.05 },
    }) });
    const dir = mkdtempSync(join(tmpdir(), 'edgebatch-cli-'));
    try {
      const N = 40;
      const input = requestsFile(dir, N);
      const output = join(dir, 'results.jsonl');
      // Half the items are done already: only the rest go to the Worker.
      const prior = Array.from({ length: N / 2 }, (_, i) => JSON.stringify({ index: i * 2, ok: true, value: 'earlier', attempts: 1, elapsedMs: 1 }));
      writeFileSync(output, `${prior.join('\n')}\n`);
      const base = `${worker.url.origin}`;
      const r = await cliAsync(['run', input, '-o', output, '--worker', base, '--token', TOKEN,
        '--base-url', `${base}/sim`, '--max-retries', '8']);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /running 20 Worker/);
      assert.match(r.stdout, /subrequests\s+\d+/);
      const lines = results(output);
      assert.equal(lines.length, N);
      assert.deepEqual(lines.map((l) => l.index).sort((a, b) => a - b), [...Array(N).keys()]);
      const fresh = lines.filter((l) => l.index % 2 === 1);
      assert.ok(fresh.every((l) => l.ok && typeof l.value.text === 'string'));

      const bad = await cliAsync(['run', input, '-o', join(dir, 'x.jsonl'), '--worker', base, '--token', 'nope',
        '--base-url', `${base}/sim`]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /the Worker answered 401: authentication_error/);
    } finally {
      await worker.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cli: --worker batches', () => {
  test('split under both the item and the byte cap, in order', async () => {
    const { chunk } = await import('../worker-client.mjs');
    const entries = Array.from({ length: 25 }, (_, index) => ({ index, item: { text: 'x'.repeat(90) } }));
    const byCount = chunk(entries, 10, 1e9);
    assert.deepEqual(byCount.map((c) => c.length), [10, 10, 5]);
    const byBytes = chunk(entries, 1000, 1000); // each item is ~103 bytes of JSON
    assert.ok(byBytes.every((c) => c.length === 9 || c === byBytes.at(-1)));
    assert.deepEqual(byBytes.flat().map((e) => e.index), [...Array(25).keys()]);
    assert.deepEqual(chunk([], 10, 10), []);
  });
});
