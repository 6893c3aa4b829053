// The simulated AI API on a loopback port, for Node: tests, benchmarks, the demo without a key.
//
// As a module:
//   const srv = await startSimServer({ seed: 1, requestsPerMinute: 60, faults: { rate529: 0.1 } });
//   srv.url;  srv.sim.stats();  await srv.close();
// `options` are the Simulator's (see SimulatorOptions in sim/pkg/edgebatch_sim.d.ts) plus `port`
// (default 0: a free one) and `host` (default 127.0.0.1).
//
// As a script: `node js/sim-server.mjs [--port N] [--seed N] [--rpm N] ...` (--help lists all)
// prints `READY http://127.0.0.1:PORT` and serves until SIGTERM/SIGINT (so `node
// js/sim-server.mjs &` in a script keeps serving); with --until-stdin-closes also until its
// stdin closes (so a parent that dies, holding the other end of a pipe, takes it along).
//
// Each HTTP request becomes a fetch-API Request for serveSim (sim-host.mjs); its Response is
// piped back as it arrives (slow bodies chunk by chunk). A client that goes away aborts the
// request (the sim counts it as aborted); a simulated disconnect destroys the socket.
// Loads the simulator's own wasm from ../sim/pkg (build it with scripts/build.sh).
import http from 'node:http';
import { resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { serveSim, isDisconnect } from './sim-host.mjs';
import { serveUntilStopped } from './serve-until-stopped.mjs';

/** The simulator's wasm (sim/pkg), loaded on first use. */
export async function loadSimulator() {
  return (await import('./sim-wasm.mjs')).Simulator;
}

// Connection-level headers the fetch Request must not carry over.
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'expect']);

function toHeaders(raw) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (HOP.has(name) || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

async function answer(sim, req, res, origin) {
  const gone = new AbortController();
  // 'close' before the response finished = the client went away (or its socket died).
  res.on('close', () => {
    if (!res.writableFinished) gone.abort(new Error('client went away'));
  });
  const chunks = [];
  try {
    for await (const c of req) chunks.push(c);
  } catch {
    return;
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const request = new Request(new URL(req.url, origin), {
    method: req.method,
    headers: toHeaders(req.headers),
    body: hasBody ? Buffer.concat(chunks) : undefined,
    signal: gone.signal,
  });
  let response;
  try {
    response = await serveSim(sim, request, { signal: gone.signal });
  } catch (err) {
    if (isDisconnect(err)) req.socket.destroy();
    else if (!gone.signal.aborted && !res.headersSent) res.writeHead(500).end(String(err));
    return;
  }
  if (gone.signal.aborted) {
    await response.body?.cancel().catch(() => {});
    return;
  }
  res.writeHead(response.status, Object.fromEntries(response.headers));
  // Headers go out now, not with the first chunk: a slow body's headers arrive on time.
  res.flushHeaders();
  if (!response.body) return res.end();
  try {
    for await (const chunk of response.body) {
      if (!res.write(chunk)) await new Promise((ok) => res.once('drain', ok));
    }
    res.end();
  } catch {
    res.destroy();
  }
}

/**
 * Starts the simulated API on a loopback port.
 * @param {object} [options] Simulator options, plus `port` and `host`
 * @returns {Promise<{ url: string, sim: import("../sim/pkg/edgebatch_sim.js").Simulator, close(): Promise<void> }>}
 */
export async function startSimServer(options = {}) {
  const { port = 0, host = '127.0.0.1', ...simOptions } = options;
  const Simulator = await loadSimulator();
  const sim = new Simulator(simOptions);
  const sockets = new Set();
  let origin;
  const server = http.createServer((req, res) => {
    answer(sim, req, res, origin).catch(() => res.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // Idle keep-alive sockets are closed after 65 s, not Node's 5 s: a busy client (thousands of
  // requests at once, its event loop late) reuses a socket the server is closing at that very
  // moment, and the request fails with a connection reset (~2% of 10,000 in bench/cache.mjs).
  server.keepAliveTimeout = 65_000;
  await new Promise((ok, fail) => {
    server.once('error', fail);
    // The kernel's accept queue as long as it allows (net.core.somaxconn caps it), not Node's
    // 511: 10,000 connections opened at once overflow 511, and the dropped ones time out.
    server.listen({ port, host, backlog: 65_535 }, ok);
  });
  origin = `http://${host}:${server.address().port}`;
  let closing;
  return {
    url: origin,
    sim,
    close() {
      closing ??= new Promise((ok) => {
        server.close(() => ok());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}

const FLAGS = {
  '--port': ['port'],
  '--host': ['host'],
  '--seed': ['seed'],
  '--epoch-ms': ['epochMs'],
  '--minute-ms': ['minuteMs'],
  '--rpm': ['requestsPerMinute'],
  '--itpm': ['inputTokensPerMinute'],
  '--otpm': ['outputTokensPerMinute'],
  '--max-tokens': ['maxTokens'],
  '--base-ms': ['latency', 'baseMs'],
  '--per-token-ms': ['latency', 'perOutputTokenMs'],
  '--jitter-ms': ['latency', 'jitterMs'],
  '--chunk-ms': ['latency', 'chunkMs'],
  '--rate429': ['faults', 'rate429'],
  '--rate529': ['faults', 'rate529'],
  '--rate500': ['faults', 'rate500'],
  '--hang': ['faults', 'hang'],
  '--slow-body': ['faults', 'slowBody'],
  '--malformed': ['faults', 'malformed'],
  '--disconnect': ['faults', 'disconnect'],
  '--stream-error': ['faults', 'streamError'],
  '--batch-delay-ms': ['batches', 'delayMs'],
  '--batch-spread-ms': ['batches', 'spreadMs'],
  '--batch-error-rate': ['batches', 'errorRate'],
  '--batch-window-ms': ['batches', 'windowMs'],
};

/** `--flag value` pairs (and `--options '<json>'`) to startSimServer options. */
export function parseArgs(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag}: missing value`);
    if (flag === '--options') {
      Object.assign(options, JSON.parse(value));
      continue;
    }
    const path = FLAGS[flag];
    if (!path) throw new Error(`unknown flag ${flag}; flags: ${Object.keys(FLAGS).join(' ')} --options JSON`);
    const v = flag === '--host' ? value : Number(value);
    if (path.length === 1) options[path[0]] = v;
    else (options[path[0]] ??= {})[path[1]] = v;
  }
  return options;
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1]);
if (isMain) {
  const UNTIL_STDIN = '--until-stdin-closes';
  const args = process.argv.slice(2).filter((a) => a !== UNTIL_STDIN);
  if (args.includes('--help')) {
    process.stdout.write(`usage: node js/sim-server.mjs ${Object.keys(FLAGS).map((f) => `[${f} ${f === '--host' ? 'HOST' : 'N'}]`).join(' ')} [--options JSON] [${UNTIL_STDIN}]\n`);
    process.exit(0);
  }
  let srv;
  try {
    srv = await startSimServer(parseArgs(args));
  } catch (err) {
    process.stderr.write(`sim-server: ${err.message}\n`);
    process.exit(2);
  }
  serveUntilStopped(srv, { stdin: process.argv.includes(UNTIL_STDIN) });
}
