// `npm run dev` (worker/dev.mjs) under real `wrangler dev`: the bearer token is made fresh for
// the run and printed; the old fixed token `dev` is refused.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const workerDir = fileURLToPath(new URL('..', import.meta.url));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test('npm run dev uses a random token, printed once, and refuses "dev"', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const env = { ...process.env, PORT: String(port), CI: 'true' };
  delete env.EDGEBATCH_TOKEN;
  // State of its own: the default folder holds what make run left (its token's hour spent).
  const state = mkdtempSync(join(tmpdir(), 'edgebatch-dev-'));
  const child = spawn(process.execPath, ['dev.mjs', '--show-interactive-dev-session=false', '--persist-to', state],
    { cwd: workerDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const origin = `http://127.0.0.1:${port}`;
    let up = false;
    for (let i = 0; i < 240 && !up; i += 1) {
      up = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
      if (!up) await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(up, `wrangler dev came up: ${out.slice(-800)}`);
    const token = /token \(Authorization: Bearer \.\.\.\): (\S+)/.exec(out)?.[1];
    assert.ok(token && token.length >= 32, `a long token was printed: ${out.slice(0, 300)}`);
    const post = (t) => fetch(`${origin}/v1/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' },
      body: JSON.stringify({ provider: { name: 'anthropic', baseUrl: `${origin}/sim` }, items: [] }),
    });
    assert.equal((await post('dev')).status, 401, 'the old fixed token is refused');
    const ok = await post(token);
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.equal(JSON.parse((await ok.text()).trim()).summary.total, 0);
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(state, { recursive: true, force: true });
  }
});
