// The script mode of the loopback servers: print `READY <url>`, then serve until SIGTERM,
// SIGINT or stdin closes (so a parent that dies takes the server along), and close cleanly.
import process from 'node:process';

/** @param {{ url: string, close(): Promise<void> | void }} srv a started server */
export function serveUntilStopped(srv) {
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
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
