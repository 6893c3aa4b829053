// Shared by the CLI's tests: the CLI as a child process with no real keys, and its files.
// Not a test file.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../edgebatch.mjs', import.meta.url));
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// No real keys reach a child: the tests talk to local simulators only.
export const env = { ...process.env };
delete env.ANTHROPIC_API_KEY;
delete env.OPENAI_API_KEY;
delete env.EDGEBATCH_TOKEN;
delete env.EDGEBATCH_WORKER;
/** `env` plus made-up keys the loopback simulator accepts (it only needs one to be there). */
export const simEnv = { ...env, ANTHROPIC_API_KEY: 'sk-ant-cli-test-local', OPENAI_API_KEY: 'sk-cli-test-local' };

/** `n` Messages bodies, one per line, in `dir`/`name`. */
export function requestsFile(dir, n, name = 'requests.jsonl') {
  const path = join(dir, name);
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({
    model: 'claude-haiku-4-5',
    max_tokens: 16,
    messages: [{ role: 'user', content: `Summarize document ${i}.` }],
  }));
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** The parsed lines of a JSONL file. */
export function results(path) {
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

export function cli(args, opts = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 30_000, ...opts });
}

/**
 * Runs the CLI to its end; resolves with { code, stdout, stderr }. `onChild(child)` sees the
 * process (to signal it); `env` replaces the key-free environment.
 */
export function cliAsync(args, { timeoutMs = 60_000, onChild, env: childEnv = env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI did not finish in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    onChild?.(child);
  });
}
