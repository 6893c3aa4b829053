// Loopback HTTP test server: a slow, flaky, rate-limited upstream on 127.0.0.1.
//
// As a module: `const srv = await startServer(); srv.url; await srv.stats(); srv.reset(); await srv.close();`
// As a script: `node tests/support/server.mjs` prints `READY http://127.0.0.1:PORT` and serves
// until SIGTERM/SIGINT or until its stdin closes (so a parent that dies takes it along).
//
// Endpoints (any method; every response carries permissive CORS headers; OPTIONS -> 204):
//   /echo                     200 JSON { method, headers, body }
//   /text                     200 text/plain "hello"
//   /status/:code?retryAfter=S&retryAfterMs=MS&type=T&shouldRetry=true|false&spendCap=1
//                             that status, Anthropic-shaped error body, optional retry headers
//   /flaky/:key?fail=N&status=S&retryAfterMs=MS
//                             first N requests for key fail with S (503), then 200 { key, attempt }
//   /delay/:ms                200 { delayed: ms } after ms
//   /hang                     never answers; client aborts are counted in stats.aborted
//   /drop                     destroys the socket without a reply
//   /stats                    { requests, inFlight, maxInFlight, aborted, byKey }
//   /reset                    zeroes the stats
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import process from 'node:process';

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': '*',
  'access-control-allow-methods': '*',
  'access-control-expose-headers': '*',
};

function freshStats() {
  return { requests: 0, inFlight: 0, maxInFlight: 0, aborted: 0, byKey: {} };
}

function send(res, status, body, headers = {}) {
  if (res.destroyed || res.writableEnded) return;
  const isText = typeof body === 'string';
  const payload = isText ? body : JSON.stringify(body);
  res.writeHead(status, {
    ...CORS,
    'content-type': isText ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function retryHeaders(q) {
  const h = {};
  if (q.has('retryAfter')) h['retry-after'] = q.get('retryAfter');
  if (q.has('retryAfterMs')) h['retry-after-ms'] = q.get('retryAfterMs');
  if (q.has('shouldRetry')) h['x-should-retry'] = q.get('shouldRetry');
  return h;
}

function errorBody(status, q) {
  const type = q.get('type') || 'api_error';
  const error = { type, message: `test server: status ${status}` };
  if (q.get('spendCap') === '1') {
    error.details = { error_code: 'enforced_spend_limit_reached' };
    error.message = 'You have reached your specified API usage limits.';
  }
  return { type: 'error', error };
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function parseCode(s, fallback) {
  const n = Number(s);
  return Number.isInteger(n) && n >= 100 && n <= 999 ? n : fallback;
}

/**
 * Starts the server on 127.0.0.1 at a free port.
 * @returns {Promise<{ url: string, close(): Promise<void>, stats(): object, reset(): void }>}
 */
export async function startServer() {
  let stats = freshStats();
  const flaky = new Map(); // key -> attempts seen
  const sockets = new Set();

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const path = url.pathname;
    const q = url.searchParams;

    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...CORS, 'access-control-max-age': '600' });
      res.end();
      return;
    }
    if (path === '/stats') {
      send(res, 200, snapshot());
      return;
    }
    if (path === '/reset') {
      reset();
      send(res, 200, { reset: true });
      return;
    }

    // Everything else is counted.
    stats.requests += 1;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    const gen = stats; // a reset mid-request must not make the new counters go negative
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      gen.inFlight -= 1;
    };
    res.on('finish', finish);
    res.on('close', () => {
      if (!res.writableFinished && !settled) gen.aborted += 1;
      finish();
    });

    const parts = path.split('/').filter(Boolean);
    const head = parts[0];
    try {
      if (head === 'echo') {
        const body = await readBody(req);
        send(res, 200, { method: req.method, headers: req.headers, body });
      } else if (head === 'text') {
        await readBody(req);
        send(res, 200, 'hello');
      } else if (head === 'status') {
        await readBody(req);
        const code = parseCode(parts[1], 500);
        send(res, code, errorBody(code, q), retryHeaders(q));
      } else if (head === 'flaky') {
        await readBody(req);
        const key = decodeURIComponent(parts[1] ?? 'default');
        const attempt = (flaky.get(key) ?? 0) + 1;
        flaky.set(key, attempt);
        gen.byKey[key] = attempt;
        const fail = Number(q.get('fail') ?? 0);
        if (attempt <= fail) {
          const code = parseCode(q.get('status'), 503);
          send(res, code, errorBody(code, q), retryHeaders(q));
        } else {
          send(res, 200, { key, attempt });
        }
      } else if (head === 'delay') {
        await readBody(req);
        const ms = Math.max(0, Number(parts[1]) || 0);
        const timer = setTimeout(() => send(res, 200, { delayed: ms }), ms);
        res.on('close', () => clearTimeout(timer));
      } else if (head === 'hang') {
        // Never answer. The 'close' handler above counts the client's abort.
        req.resume();
      } else if (head === 'drop') {
        finish(); // our own doing, not a client abort
        req.socket.destroy();
      } else {
        await readBody(req);
        send(res, 404, { type: 'error', error: { type: 'not_found_error', message: `no route ${path}` } });
      }
    } catch (e) {
      send(res, 500, { type: 'error', error: { type: 'api_error', message: String(e) } });
    }
  });

  server.keepAliveTimeout = 1000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  function snapshot() {
    return {
      requests: stats.requests,
      inFlight: stats.inFlight,
      maxInFlight: stats.maxInFlight,
      aborted: stats.aborted,
      byKey: { ...stats.byKey },
    };
  }
  function reset() {
    // Requests still open at a reset settle against the old counters (see `gen` above), so
    // the new ones start from zero and never go negative.
    stats = freshStats();
    flaky.clear();
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    stats: snapshot,
    reset,
    close() {
      return new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    },
  };
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const srv = await startServer();
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
