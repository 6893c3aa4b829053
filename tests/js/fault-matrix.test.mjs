// The fault matrix (tests/support/fault-matrix.mjs) in its own process: every cell passes, no
// unhandled rejection, and the process exits by itself (nothing left running) in bounded time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../support/fault-matrix.mjs', import.meta.url));
const BOUND_MS = 40_000; // usually ~10 s: workerd starts in 2-5 s on a loaded machine

test('fault matrix: scripted upstream faults x run(), map(), the Worker', { timeout: BOUND_MS + 5000 }, async () => {
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), BOUND_MS);
  const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  clearTimeout(killer);
  const lines = out.trimEnd().split('\n');
  console.log(lines.slice(0, -1).join('\n'));
  assert.equal(signal, null, `the matrix process did not exit by itself within ${BOUND_MS} ms\n${out}\n${err}`);
  assert.equal(code, 0, err);
  const { rows, unhandled } = JSON.parse(lines.at(-1));
  assert.deepEqual(unhandled, []);
  const failed = rows.filter((r) => r.status === 'FAIL');
  assert.deepEqual(failed.map((r) => `${r.name} ${r.mode}: ${r.problems.join('; ')}`), []);
  assert.ok(rows.filter((r) => r.status === 'pass').length >= 41, 'the matrix ran');
});
