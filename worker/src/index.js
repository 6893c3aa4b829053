// The edgebatch Worker.
//   POST /v1/batch   { provider?, items, options? } -> NDJSON: one line per item as it
//                    completes, then { summary }. Bearer token required.
//   /v1/batches      batches past one request: Durable Objects + Queues (batches/index.js)
//   /anthropic/...   the Anthropic SDK's routes (baseURL {worker}/anthropic): anthropic/index.js
//   /openai/v1/...   the OpenAI SDK's routes (baseURL {worker}/openai/v1): openai/index.js
//   GET  /healthz    liveness
//   /sim/v1/messages, /sim/v1/chat/completions, /sim/stats   the simulator (EDGEBATCH_SIM = "on")
// Errors are JSON { error: { type, message } }. See worker/README.md for the limits and why.
import mod from '../pkg/edgebatch_bg.wasm';
import * as edgebatch from '../pkg/edgebatch.js';
import { streamBatch } from '../../js/batch-stream.mjs';
import { readConfig } from './config.js';
import { authenticate, redactor, secretsOf } from './auth.js';
import { acquireOrThrow, billed, requestBound, tokenLimits } from './token-limits.js';
import { allow, badRequest, discardBody, errorResponse, HttpError, jsonResponse, readCappedText } from './http.js';
import { handleSimRoute, installSimFetch } from './sim.js';
import { consume, handleBatches } from './batches/index.js';
import { handleAnthropic } from './anthropic/index.js';
import { handleOpenAI } from './openai/index.js';
import { parseBatchRequest } from './validate.js';

edgebatch.initSync({ module: mod });
// Requests for SIM_ORIGIN (the dev simulator) are served in-process, from any handler.
installSimFetch();

// ---- issue 15: per-token limits (a Durable Object per token name) ----
export { TokenLimits } from './token-limits.js';

// The Durable Object classes of /v1/batches (wrangler.toml binds them).
export { BatchLedger, BatchDirectory, UpstreamLimiter } from './batches/index.js';

export default {
  async fetch(request, env, ctx) {
    // The caller's own token joins the redactor's secrets once known (configured ones are hashes).
    const scope = { redact: redactor(secretsOf(env)) };
    try {
      return await route(request, env, ctx, scope);
    } catch (err) {
      await discardBody(request);
      return errorResponse(err, scope.redact);
    }
  },

  // The work queues of /v1/batches (and their dead-letter queue).
  async queue(batch, env) {
    await consume(batch, env, secretsOf(env));
  },
};

async function route(request, env, ctx, scope) {
  const url = new URL(request.url);
  const config = readConfig(env);
  const path = url.pathname;

  if (path === '/healthz') {
    allow(request, ['GET', 'HEAD']);
    return jsonResponse(200, { ok: true, sim: config.simOn ? 'on' : 'off' });
  }
  if (path === '/v1/batch') {
    allow(request, ['POST']);
    const caller = await authenticate(request, env);
    scope.redact = redactor(secretsOf(env, caller.token));
    const text = await readCappedText(request, config.maxBodyBytes, config.bodyTimeoutMs);
    const batch = parseBatchRequest(text, config, url.origin);
    // One concurrent-batch slot, the items, and up to the budget of subrequests of this
    // token's hour; what the batch did not use goes back when it ends.
    const limits = tokenLimits(env, caller.name);
    // With EDGEBATCH_USD_PER_HOUR, the most each item can cost is held until the batch ends.
    const bounds = batch.items.map((item, i) => requestBound(config.limits, item, { at: `items[${i}]` }) ?? 0);
    const lease = await acquireOrThrow(limits, { items: batch.items.length, subrequests: config.subrequestBudget,
      usdPico: bounds.reduce((a, b) => a + b, 0) });
    const done = (usage) => ctx.waitUntil(limits.release(lease.lease, usage).catch((err) => {
      console.error(`edgebatch worker: releasing a batch lease failed: ${scope.redact(String(err?.message ?? err))}`);
    }));
    try {
      return batchResponse(batch, request, { ...config, subrequestBudget: lease.subrequests, bounds }, scope.redact, done);
    } catch (err) {
      done({ subrequests: 0, usdPico: 0 });
      throw err;
    }
  }
  if (path === '/v1/usage') {
    allow(request, ['GET']);
    const caller = await authenticate(request, env);
    return jsonResponse(200, { token: caller.name, ...(await tokenLimits(env, caller.name).usage()) });
  }
  if (path === '/v1/batches' || path.startsWith('/v1/batches/')) {
    const caller = await authenticate(request, env);
    scope.redact = redactor(secretsOf(env, caller.token));
    const parts = path.slice('/v1/batches'.length).split('/').filter(Boolean);
    return handleBatches(request, url, parts, env, config, caller.name, scope.redact);
  }
  if (path.startsWith('/anthropic/')) return handleAnthropic(request, url, env, ctx, config);
  if (path.startsWith('/openai/')) return handleOpenAI(request, url, env, ctx, config);
  if (path === '/sim' || path.startsWith('/sim/')) {
    if (!config.simOn) throw notFound(path);
    return handleSimRoute(request, config);
  }
  throw notFound(path);
}

/**
 * Streams the batch; `done(usage)` is called once when it ends however it ends (summary,
 * failure, client gone) with what it used: `{ subrequests, requests, inputTokens, outputTokens }`.
 */
function batchResponse({ items, provider, options, upstreams }, request, config, redact, done) {
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
  const used = { subrequests: 0, requests: 0, inputTokens: 0, outputTokens: 0, usdPico: 0 };
  let ended = false;
  // Items with no line when the batch ends early (the client left) may have been billed: their holds stay.
  const unseen = new Set(config.bounds.keys());
  const end = () => {
    if (ended) return;
    ended = true;
    for (const i of unseen) used.usdPico += config.bounds[i];
    done(used);
  };
  const count = (r) => {
    used.subrequests += r.attempts ?? 0;
    used.requests += r.attempts ?? 0;
    used.inputTokens += r.usage?.inputTokens ?? 0;
    used.outputTokens += r.usage?.outputTokens ?? 0;
    used.usdPico += billed(r, config.bounds[r.index] ?? 0);
    unseen.delete(r.index);
  };
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
          end();
        } else {
          count(next.value);
          controller.enqueue(line(named(next.value, upstreams)));
        }
      } catch (err) {
        // The status line is long gone: the error is the stream's last line.
        console.error(`edgebatch worker: batch failed: ${redact(String(err?.message ?? err))}`);
        controller.enqueue(line({ error: { type: 'api_error', message: 'batch failed: internal error' } }));
        controller.close();
        end();
      }
    },
    cancel() {
      onGone();
      end();
      results.return(undefined).catch(() => {});
    },
  });
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' },
  });
}

/**
 * With options.fallbacks, a result's servedBy also names the upstream that answered (two of one
 * API are told apart by it, not only by `alternative`).
 */
function named(r, upstreams) {
  const k = r.servedBy?.alternative;
  return k === undefined || upstreams?.[k] === undefined ? r : { ...r, servedBy: { ...r.servedBy, upstream: upstreams[k] } };
}

function notFound(path) {
  return new HttpError(404, 'not_found_error', `no route for ${path.length > 100 ? `${path.slice(0, 100)}…` : path}`);
}
