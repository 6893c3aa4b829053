// The Worker in a process of its own, for the hard-kill test: `node batches-child.mjs <port>
// <persist dir> <vars JSON>` prints `READY <url>` and serves until killed.
import { startWorker } from './harness.mjs';

const [port, persist, vars] = process.argv.slice(2);
const worker = await startWorker(JSON.parse(vars), { persist, port: Number(port) });
process.stdout.write(`READY ${worker.url.origin}\n`);
process.on('SIGTERM', () => worker.dispose().finally(() => process.exit(0)));
setInterval(() => {}, 60_000);
