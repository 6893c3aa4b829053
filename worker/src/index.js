// The edgebatch Worker.
//   POST /v1/batch   { provider?, items, options? } -> NDJSON: one line per item as it
//                    completes, then { summary }. Bearer token required.
//   /v1/batches      batches past one request: Durable Objects + Queues (batches/routes.js)
//   GET  /healthz    liveness
//   /sim/v1/messages, /sim/v1/chat/completions, /sim/stats   the simulator (EDGEBATCH_SIM = "on")
// Errors are JSON { error: { type, message } }. See worker/README.md for the limits and why.
import mod from '../pkg/edgebatch_bg.wasm';
import * as edgebatch from '../pkg/edgebatch.js';
import { streamBatch } from './batch.js';
import { consume } from './batches/consumer.js';
import { handleBatches } from './batches/routes.js';
import { readConfig, secretsOf } from './config.js';
import { allow, badRequest, checkBearer, discardBody, errorResponse, HttpError, jsonResponse, readCappedText, redactor } from './http.js';
import { handleSim } from './sim.js';
import { loadSimulator } from './sim-wasm.js';
import { parseBatchRequest } from './validate.js';

edgebatch.initSync({ module: mod });

// The Durable Object classes of /v1/batches (wrangler.toml binds them).
export { BatchLedger } from './batches/ledger.js';
export { BatchDirectory } from './batches/directory.js';
export { UpstreamLimiter } from './batches/limiter.js';

export default {
  async fetch(request, env, ctx) {
    const redact = redactor(secretsOf(env));
    try {
      return await route(request, env, ctx, redact);
    } catch (err) {
      await discardBody(request);
      return errorResponse(err, redact);
    }
  },

  // The work queues of /v1/batches (and their dead-letter queue).
  async queue(batch, env) {
    await consume(batch, env, secretsOf(env));
  },
};

async function route(request, env, ctx, redact) {
  const url = new URL(request.url);
  const config = readConfig(env);
  const path = url.pathname;

  if (path === '/healthz') {
    allow(request, ['GET', 'HEAD']);
    return jsonResponse(200, { ok: true, sim: config.simOn ? 'on' : 'off' });
  }
  if (path === '/v1/batch') {
    allow(request, ['POST']);
    await checkBearer(request, config.token);
    const text = await readCappedText(request, config.maxBodyBytes);
    const batch = parseBatchRequest(text, config, url.origin);
    return batchResponse(batch, request, config, redact);
  }
  if (path === '/v1/batches' || path.startsWith('/v1/batches/')) {
    await checkBearer(request, config.token);
    const parts = path.slice('/v1/batches'.length).split('/').filter(Boolean);
    return handleBatches(request, url, parts, env, config, 'default', redact);
  }
  if (path === '/sim' || path.startsWith('/sim/')) {
    if (!config.simOn) throw notFound(path);
    return handleSim(request, url, loadSimulator(), config.simConfig);
  }
  throw notFound(path);
}

function batchResponse({ items, provider, options }, request, config, redact) {
  // A client that goes away aborts the batch: request.signal (compatibility flag
  // enable_request_signal) and, belt and braces, the response stream's cancel.
  const abort = new AbortController();
  const onGone = () => abort.abort(new Error('client disconnected'));
  request.signal?.addEventListener('abort', onGone, { once: true });

  let results;
  try {
    results = streamBatch(edgebatch, {
      items,
      provider,
      options,
      signal: abort.signal,
      subrequestBudget: config.subrequestBudget,
    });
  } catch (err) {
    // What validate.js let through but edgebatch refuses (its messages name the option).
    if (err instanceof TypeError || err instanceof RangeError) throw badRequest(`options: ${err.message}`);
    throw err;
  }
  const enc = new TextEncoder();
  const line = (value) => enc.encode(`${redact(JSON.stringify(value))}\n`);
  const body = new ReadableStream({
    async pull(controller) {
      try {
        const next = await results.next();
        if (next.done) {
          controller.enqueue(line({ summary: next.value }));
          controller.close();
          request.signal?.removeEventListener('abort', onGone);
        } else {
          controller.enqueue(line(next.value));
        }
      } catch (err) {
        // The status line is long gone: the error is the stream's last line.
        console.error(`edgebatch worker: batch failed: ${redact(String(err?.message ?? err))}`);
        controller.enqueue(line({ error: { type: 'api_error', message: 'batch failed: internal error' } }));
        controller.close();
      }
    },
    cancel() {
      onGone();
      results.return(undefined).catch(() => {});
    },
  });
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' },
  });
}

function notFound(path) {
  return new HttpError(404, 'not_found_error', `no route for ${path.length > 100 ? `${path.slice(0, 100)}…` : path}`);
}
