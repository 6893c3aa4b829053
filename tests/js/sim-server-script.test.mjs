// `node js/sim-server.mjs` as a script: it serves until a signal even when its stdin is
// /dev/null (`node js/sim-server.mjs &` from a shell script), and with --until-stdin-closes
// it stops when its stdin closes (a parent holding the pipe takes it along).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../js/sim-server.mjs', import.meta.url));

/** Spawns the script on a free loopback port; resolves the child and its READY url. */
async function start(stdin, extra = []) {
  const child = spawn(process.execPath, [SCRIPT, '--port', '0', ...extra], { stdio: [stdin, 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of child.stdout) {
    out += chunk;
    const m = /READY (\S+)\n/.exec(out);
    if (m) return { child, url: m[1] };
  }
  throw new Error(`sim-server exited before READY: ${out}`);
}

/** The child's exit code, or a failure after `ms`. */
async function exitCode(child, ms) {
  if (child.exitCode !== null) return child.exitCode;
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  return code;
}

describe('js/sim-server.mjs as a script', { timeout: 30_000 }, () => {
  test('with stdin at /dev/null it keeps serving until SIGTERM', async () => {
    const { child, url } = await start('ignore');
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${url}/stats`);
        assert.equal(res.status, 200);
        assert.equal(typeof (await res.json()).requests, 'number');
      }
      assert.equal(child.exitCode, null, 'it stopped on its own');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exitCode(child, 10_000), 0);
  });

  test('with --until-stdin-closes it stops when its stdin closes', async () => {
    const { child, url } = await start('pipe', ['--until-stdin-closes']);
    assert.equal((await fetch(`${url}/stats`)).status, 200);
    child.stdin.end();
    assert.equal(await exitCode(child, 10_000), 0);
  });
});
