// The Worker is deployable as is: `wrangler deploy --dry-run` bundles src/index.js with the
// wasm from ../pkg as a CompiledWasm module, and the production vars keep the simulator off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const workerDir = fileURLToPath(new URL('..', import.meta.url));

test('wrangler deploy --dry-run bundles the Worker and its wasm', { timeout: 60_000 }, async () => {
  const out = await mkdtemp(join(tmpdir(), 'edgebatch-bundle-'));
  try {
    const { stdout, stderr } = await new Promise((resolve, reject) => {
      execFile(join(workerDir, 'node_modules/.bin/wrangler'), ['deploy', '--dry-run', '--outdir', out], {
        cwd: workerDir,
        timeout: 50_000,
        env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' },
      }, (err, stdout, stderr) => (err ? reject(Object.assign(err, { stdout, stderr })) : resolve({ stdout, stderr })));
    });
    const files = await readdir(out);
    assert.ok(files.includes('index.js'), files.join(', '));
    assert.ok(files.some((f) => f.endsWith('edgebatch_bg.wasm')), `the wasm is a module of its own: ${files.join(', ')}`);
    const log = stdout + stderr;
    assert.match(log, /env\.EDGEBATCH_SIM \("off"\)/);
    assert.match(log, /--dry-run: exiting now/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
