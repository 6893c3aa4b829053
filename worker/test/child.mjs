// The Worker in a child process of its own (batches-child.mjs), for the hard-kill tests: a
// SIGKILL to its process group takes workerd with it, as a crash would. Not a test file.
import { spawn } from 'node:child_process';
import net from 'node:net';

/** A free TCP port on 127.0.0.1 (the child binds it; a restart reuses it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/**
 * Starts the child Worker on `port` with its Durable Objects' state in `state`.
 * @returns {Promise<{ url: string, exited: Promise<unknown>, kill(): void }>}
 */
export function startChild(port, state, vars) {
  const proc = spawn(process.execPath, [new URL('./batches-child.mjs', import.meta.url).pathname, String(port), state, JSON.stringify(vars)], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not start: ${err.slice(-500)}`)), 30_000);
    proc.stdout.on('data', (d) => {
      const m = /READY (\S+)/.exec(String(d));
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          exited,
          kill: () => {
            try {
              process.kill(-proc.pid, 'SIGKILL');
            } catch {
              // already gone
            }
          },
        });
      }
    });
    proc.once('exit', (code) => reject(new Error(`child exited (${code}): ${err.slice(-500)}`)));
  });
}
