// Runs one batch of provider requests and yields each item's result AS IT COMPLETES, then
// returns a summary. Shared by the Worker (POST /v1/batch) and the CLI (in-process mode); it
// touches no Worker- or Node-only API.
//
// Why two processors: `run()` (which knows the providers: request building, reply parsing,
// usage, key handling) resolves only when the whole batch is done, and `stream()` (completion
// order) takes a task function. So the outer processor streams with the caller's policy
// (concurrency, retries, timeouts, deadline, backoff, pacing), and each of its attempts is ONE
// `run([item])` of a fresh inner provider processor with `maxRetries: 0` and no timeout of its
// own: the inner one does the HTTP exchange, the outer one decides. The attempt's signal
// reaches the inner call, so a timeout, a deadline or a disconnect aborts the real fetch.
// The price: the outer processor sees a reply's status, type and retry decision, but not the
// server's Retry-After (an http ItemError carries `retryAfterMs` only if edgebatch puts it
// there; toThrown passes it on when it does) nor the rate-limit headers provider mode paces by.

/** Largest timeoutMs edgebatch accepts: the inner processor leaves timing to the outer one. */
const NO_TIMEOUT_MS = 2147483647;

/**
 * @param {object} edgebatch the initialized pkg module ({ BatchProcessor, summarize })
 * @param {object} args
 * @param {Iterable<object>} args.items provider request bodies (or fetch specs without a provider)
 * @param {object} [args.provider] `{ name, apiKey?, baseUrl?, version? }`; omitted: fetch specs
 * @param {object} [args.options] BatchProcessor options (concurrency, maxRetries, ...)
 * @param {AbortSignal} [args.signal] cancels the batch; every item still yields a result
 * @param {number} [args.subrequestBudget] attempts allowed in all; past it an item fails
 * @param {(p: object) => void} [args.onProgress]
 * @returns {AsyncGenerator<object, object>} item results, then (as the return value) the summary
 * @throws {TypeError | RangeError} at once, for options or a provider edgebatch refuses
 */
export function streamBatch(edgebatch, args) {
  const { BatchProcessor, summarize } = edgebatch;
  const { items, provider, options = {}, signal, onProgress } = args;
  const budget = args.subrequestBudget ?? Infinity;
  const started = Date.now();
  let subrequests = 0;
  // Failures that are the item's own fault (inner kind "invalid"): reported as they are.
  const invalid = new Map();

  // Policy is the outer processor's alone. A fresh inner processor per attempt carries no
  // state from one attempt to the next (learned rate limits, a pause after a 429, a circuit
  // breaker, adaptive concurrency), so it never waits inside an outer attempt's time.
  const innerOptions = {
    ...(provider && { provider }),
    maxRetries: 0,
    timeoutMs: NO_TIMEOUT_MS,
    adaptive: false,
    breaker: { failures: 0 },
  };
  new BatchProcessor(innerOptions).free(); // a bad provider throws here, once, not per attempt
  const outer = new BatchProcessor({ ...options, ...(onProgress && { onProgress }) });

  const attempt = async (item, ctx) => {
    if (subrequests >= budget) throw budgetExhausted(budget);
    subrequests += 1;
    const inner = new BatchProcessor(innerOptions);
    let r;
    try {
      [r] = await inner.run([item], { signal: ctx.signal });
    } finally {
      inner.free();
    }
    if (r.ok) return r.value;
    if (r.error.kind === 'invalid') invalid.set(ctx.index, r.error);
    throw toThrown(r.error);
  };

  const totals = () => ({ subrequests, elapsedMs: Date.now() - started });
  return results(outer.stream(items, attempt, { signal }), invalid, totals, summarize);
}

/** Yields the stream's results (usage on top, inner `invalid` errors as they were). */
async function* results(stream, invalid, totals, summarize) {
  const kept = [];
  for await (const r of stream) {
    const out = invalid.has(r.index) && !r.ok ? { ...r, error: invalid.get(r.index) } : r;
    if (out.ok && out.value && typeof out.value === 'object' && out.value.usage) {
      out.usage = out.value.usage;
    }
    kept.push(out.ok ? { index: out.index, ok: true, value: null, attempts: out.attempts,
      elapsedMs: out.elapsedMs, ...(out.usage && { usage: out.usage }) } : out);
    yield out;
  }
  return { ...summarize(kept), ...totals() };
}

/**
 * Rebuilds what the inner call failed with as something the outer processor classifies the
 * same way (see "Classification" in docs/API.md): an SDK-shaped error for HTTP replies, a
 * connection error for network failures, and a non-retryable error for the rest.
 */
function toThrown(e) {
  const err = new Error(e.message);
  if (e.kind === 'http') {
    err.name = 'APIError';
    err.status = e.status;
    err.headers = e.retryAfterMs !== undefined ? { 'retry-after-ms': String(e.retryAfterMs) } : {};
    if (e.type !== undefined) err.error = { type: 'error', error: { type: e.type, message: e.message } };
    // The inner call already applied the spend-cap and x-should-retry rules.
    err.retryable = e.retryable;
  } else if (e.kind === 'network') {
    err.name = 'APIConnectionError';
  } else {
    err.name = 'EdgebatchInnerError';
    err.retryable = false;
  }
  return err;
}

function budgetExhausted(budget) {
  const err = new Error(`subrequest budget exhausted: all ${budget} subrequests of this batch are used`);
  err.name = 'SubrequestBudgetError';
  err.retryable = false;
  return err;
}
