// The script mode of the loopback servers: print `READY <url>`, then serve until SIGTERM or
// SIGINT, and, with `{ stdin: true }` (the default), also until stdin closes (so a parent that
// dies takes the server along; `node server.mjs &` in a script has /dev/null there and would
// stop at once, which is why the simulator's script makes it a flag), and close cleanly.
import process from 'node:process';

/**
 * @param {{ url: string, close(): Promise<void> | void }} srv a started server
 * @param {{ stdin?: boolean }} [options] also stop when stdin ends (default true)
 */
export function serveUntilStopped(srv, { stdin = true } = {}) {
  process.stdout.write(`READY ${srv.url}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await srv.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (!stdin) return;
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
