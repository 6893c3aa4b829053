#!/usr/bin/env node
// `npm run dev`: wrangler dev on 127.0.0.1 (port $PORT, default 8787) with the simulator on and
// a bearer token made fresh for this run (or $EDGEBATCH_TOKEN), printed once. A fixed, known
// token would let any page the developer visits (DNS rebinding) spend the real keys a
// .dev.vars may hold. The token reaches wrangler in a private env file (mode 600, removed on
// exit), after .dev.vars, so it wins over a token there and the keys there still load.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';

const here = new URL('.', import.meta.url).pathname;
const port = process.env.PORT ?? '8787';
const token = process.env.EDGEBATCH_TOKEN || randomBytes(24).toString('base64url');
const dir = mkdtempSync(join(tmpdir(), 'edgebatch-dev-'));
const envFile = join(dir, 'token.env');
writeFileSync(envFile, `EDGEBATCH_TOKEN=${token}\n`, { mode: 0o600 });
const envFiles = [...(existsSync(join(here, '.dev.vars')) ? ['.dev.vars'] : []), envFile];

console.log(`edgebatch dev: http://127.0.0.1:${port}  token (Authorization: Bearer ...): ${token}`);
const wrangler = spawn(join(here, 'node_modules/.bin/wrangler'), [
  'dev', '--ip', '127.0.0.1', '--port', port, '--var', 'EDGEBATCH_SIM:on',
  ...envFiles.flatMap((f) => ['--env-file', f]), ...process.argv.slice(2),
], { cwd: here, stdio: 'inherit', env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } });

const cleanup = () => rmSync(dir, { recursive: true, force: true });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => wrangler.kill(signal));
wrangler.on('exit', (code, signal) => {
  cleanup();
  process.exit(code ?? (signal ? 1 : 0));
});
