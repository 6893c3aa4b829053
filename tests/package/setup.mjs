// Support for the consumer tests (not a test file): packs pkg/ with `npm pack`, copies the
// consumer projects of ./consumer into one temp dir, installs the tarball there once, offline
// (with its dependencies packed from the repository's node_modules), and runs the repository's pinned tools (root and worker/
// package-lock.json) against that dir, as a user's project would run its own.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = {
  tsc: join(ROOT, 'node_modules/.bin/tsc'),
  esbuild: join(ROOT, 'node_modules/.bin/esbuild'),
  vite: join(ROOT, 'node_modules/.bin/vite'),
  wrangler: join(ROOT, 'worker/node_modules/.bin/wrangler'),
  publint: join(ROOT, 'node_modules/.bin/publint'),
  attw: join(ROOT, 'node_modules/.bin/attw'),
  // The runtimes' own binaries, shipped inside their npm packages (root devDependencies).
  bun: join(ROOT, 'node_modules/.bin/bun'),
  deno: join(ROOT, 'node_modules/.bin/deno'),
};

/** Runs a command; resolves { stdout, stderr }, rejects with both in the message. */
export function run(file, args, { cwd, env = {}, timeout = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, {
      cwd,
      timeout,
      maxBuffer: 16 << 20,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1', ...env },
    }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/**
 * `npm pack ./pkg` into a fresh temp dir, the consumer projects beside the tarball, and the
 * tarball installed into them. Returns the dir, npm's file list, and `dispose()`.
 */
export async function packAndInstall() {
  const dir = mkdtempSync(join(tmpdir(), 'edgebatch-consumers-'));
  try {
    const { stdout } = await run('npm', ['pack', join(ROOT, 'pkg'), '--json', '--pack-destination', dir], { cwd: dir });
    const [packed] = JSON.parse(stdout);
    const consumer = join(dir, 'consumer');
    cpSync(fileURLToPath(new URL('./consumer', import.meta.url)), consumer, { recursive: true });
    // The package's dependencies (workerpool) come packed from the repository's own pinned
    // node_modules: installed together, npm needs no registry metadata to resolve them.
    const { dependencies = {} } = JSON.parse(readFileSync(join(ROOT, 'pkg/package.json'), 'utf8'));
    const deps = [];
    for (const name of Object.keys(dependencies)) {
      const out = await run('npm', ['pack', join(ROOT, 'node_modules', name), '--json', '--pack-destination', dir], { cwd: dir });
      deps.push(join(dir, JSON.parse(out.stdout)[0].filename));
    }
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-save', join(dir, packed.filename), ...deps], { cwd: consumer });
    return {
      consumer,
      packed,
      tarball: join(dir, packed.filename),
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };

/** A static file server for `dir` on 127.0.0.1 and a free port. */
export async function serveDir(dir) {
  const server = http.createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/\/$/, '/index.html');
    try {
      if (path.includes('..')) throw new Error('outside');
      const body = await readFile(join(dir, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

/** The `version` of a package in the repository's node_modules (what the lock file pinned). */
export function pinned(name, under = '') {
  return JSON.parse(readFileSync(join(ROOT, under, 'node_modules', name, 'package.json'), 'utf8')).version;
}
