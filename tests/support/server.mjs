// Loopback HTTP test server: a slow, flaky, rate-limited upstream on 127.0.0.1.
//
// As a module: `const srv = await startServer(); srv.url; await srv.stats(); srv.reset(); await srv.close();`
// As a script: `node tests/support/server.mjs` prints `READY http://127.0.0.1:PORT` and serves
// until SIGTERM/SIGINT or until its stdin closes (so a parent that dies takes it along).
//
// Endpoints (any method; every response carries permissive CORS headers; OPTIONS -> 204):
//   /echo                     200 JSON { method, headers, body }
//   /text                     200 text/plain "hello"
//   /redirect                 302 to http://localhost:PORT/echo?token=t0k3n
//   /status/:code?retryAfter=S&retryAfterMs=MS&type=T&shouldRetry=true|false&spendCap=1
//                             that status, Anthropic-shaped error body, optional retry headers
//   /flaky/:key?fail=N&status=S&retryAfterMs=MS
//                             first N requests for key fail with S (503), then 200 { key, attempt }
//   /delay/:ms                200 { delayed: ms } after ms
//   /hang                     never answers; client aborts are counted in stats.aborted
//   /drop                     destroys the socket without a reply
//   /stats                    { requests, inFlight, maxInFlight, aborted, byKey }
//   /reset                    zeroes the stats
//   POST /v1/messages, POST /v1/chat/completions
//                             mock Anthropic / OpenAI APIs; the body's `model` picks the scenario:
//                             "ok" (or any other) -> a reply echoing the last user message,
//                             "status:CODE" -> that error, "flaky:KEY:N:CODE" -> N errors then ok,
//                             "spendcap" -> the spend-limit 429, "slow:MS" -> ok after MS.
//                             Errors carry retry-after-ms: 10. srv.requestLog() lists what came in.
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import process from 'node:process';
import { serveUntilStopped } from '../../js/serve-until-stopped.mjs';

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

const PROVIDER_ERROR_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

function lastUserText(body) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  const last = msgs.filter((m) => m && m.role === 'user').at(-1);
  if (!last) return '';
  if (typeof last.content === 'string') return last.content;
  if (Array.isArray(last.content)) {
    return last.content.map((b) => (typeof b === 'string' ? b : b?.text ?? '')).join('');
  }
  return '';
}

/** A mock Anthropic Messages / OpenAI Chat Completions reply: [status, body, headers]. */
function providerReply(flavor, body, flaky) {
  const model = typeof body?.model === 'string' ? body.model : 'ok';
  const [scenario, ...args] = model.split(':');
  let failWith = 0;
  let spendCap = false;
  if (scenario === 'status') failWith = parseCode(args[0], 500);
  if (scenario === 'spendcap') {
    failWith = 429;
    spendCap = true;
  }
  if (scenario === 'flaky') {
    const key = `${flavor}:${args[0]}`;
    const attempt = (flaky.get(key) ?? 0) + 1;
    flaky.set(key, attempt);
    if (attempt <= Number(args[1] ?? 1)) failWith = parseCode(args[2], 529);
  }
  const rl = flavor === 'anthropic'
    ? {
      'anthropic-ratelimit-requests-limit': '50',
      'anthropic-ratelimit-requests-remaining': '49',
      'anthropic-ratelimit-requests-reset': new Date(Date.now() + 60000).toISOString(),
      'anthropic-ratelimit-tokens-limit': '100000',
      'anthropic-ratelimit-tokens-remaining': '99000',
      'anthropic-ratelimit-tokens-reset': new Date(Date.now() + 60000).toISOString(),
      'request-id': 'req_test',
    }
    : {
      'x-ratelimit-limit-requests': '500',
      'x-ratelimit-remaining-requests': '499',
      'x-ratelimit-reset-requests': '120ms',
      'x-ratelimit-limit-tokens': '30000',
      'x-ratelimit-remaining-tokens': '29000',
      'x-ratelimit-reset-tokens': '2s',
    };
  if (failWith) {
    const type = PROVIDER_ERROR_TYPES[failWith] ?? 'api_error';
    const message = spendCap
      ? 'You have reached your specified API usage limits.'
      : `mock ${flavor} error ${failWith}`;
    const headers = { ...rl, 'retry-after-ms': '10' };
    if (flavor === 'anthropic') {
      const error = { type, message };
      if (spendCap) error.details = { error_code: 'enforced_spend_limit_reached' };
      return [failWith, { type: 'error', error }, headers];
    }
    const error = { message, type, param: null, code: spendCap ? 'insufficient_quota' : null };
    if (spendCap) error.details = { error_code: 'enforced_spend_limit_reached' };
    return [failWith, { error }, headers];
  }
  const text = `echo: ${lastUserText(body)}`;
  const inputTokens = lastUserText(body).length;
  const outputTokens = text.length;
  if (flavor === 'anthropic') {
    return [200, {
      id: 'msg_test',
      type: 'message',
      role: 'assistant',
      model,
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: inputTokens, output_tokens: outputTokens },
    }, rl];
  }
  return [200, {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    usage: { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens },
  }, rl];
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
  let log = []; // provider requests, newest last, at most 200
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
      } else if (head === 'redirect') {
        // A 302 to /echo on another host name of this server (localhost), with a token in it.
        await readBody(req);
        res.writeHead(302, { ...CORS, location: `http://localhost:${req.socket.localPort}/echo?token=t0k3n` });
        res.end();
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
      } else if (head === 'v1' && (path === '/v1/messages' || path === '/v1/chat/completions')) {
        const raw = await readBody(req);
        let body;
        try {
          body = JSON.parse(raw);
        } catch {
          body = undefined;
        }
        log.push({ method: req.method, path, headers: { ...req.headers }, body, raw });
        if (log.length > 200) log = log.slice(-200);
        const flavor = path === '/v1/messages' ? 'anthropic' : 'openai';
        const [status, reply, headers] = providerReply(flavor, body, flaky);
        const model = typeof body?.model === 'string' ? body.model : '';
        const slow = model.startsWith('slow:') ? Math.max(0, Number(model.slice(5)) || 0) : 0;
        if (slow) {
          const timer = setTimeout(() => send(res, status, reply, headers), slow);
          res.on('close', () => clearTimeout(timer));
        } else {
          send(res, status, reply, headers);
        }
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
    log = [];
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
    /** Provider requests seen since the last reset: { method, path, headers, body, raw }. */
    requestLog: () => log.map((r) => ({ ...r })),
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
  serveUntilStopped(srv);
}
