// Runs one batch of provider requests and yields each item's result AS IT COMPLETES, then
// returns a summary. Shared by the Worker (POST /v1/batch) and the CLI (in-process mode), so
// it lives beside both in js/ and touches no Worker- or Node-only API.
//
// One processor does it all: `stream(items)` without a task function sends each item as
// `run()` does (a provider request body through the provider, or a fetch spec) with the whole
// policy: retries that honour the server's Retry-After, pacing by the rate-limit headers, the
// pause after a 429, adaptive concurrency, the circuit breaker, timeouts, the deadline. The
// Worker's subrequest budget is the processor's `maxAttempts`: once the last attempt has
// started nothing more goes out, an item that never started fails with kind `budget`, and an
// item whose retry is refused keeps its last error (say the 429).

/**
 * @param {object} edgebatch the initialized pkg module ({ BatchProcessor, summarize })
 * @param {object} args
 * @param {Iterable<object>} args.items provider request bodies (or fetch specs without a provider)
 * @param {object} [args.provider] `{ name, apiKey?, baseUrl?, version? }`; omitted: fetch specs
 * @param {object} [args.options] BatchProcessor options (concurrency, maxRetries, ...)
 * @param {AbortSignal} [args.signal] cancels the batch; every item still yields a result
 * @param {number} [args.subrequestBudget] attempts allowed in all, retries included
 * @param {(p: object) => void} [args.onProgress]
 * @returns {AsyncGenerator<object, object>} item results, then (as the return value) the summary
 * @throws {TypeError | RangeError} at once, for options or a provider edgebatch refuses
 */
export function streamBatch(edgebatch, args) {
  const { BatchProcessor, summarize } = edgebatch;
  const { items, provider, options = {}, signal, onProgress, subrequestBudget: budget, postProcess } = args;
  const started = Date.now();
  const bp = new BatchProcessor({
    ...options,
    ...(provider && { provider }),
    ...(budget !== undefined && { maxAttempts: budget }),
    ...(onProgress && { onProgress }),
  });
  let stream;
  try {
    // postProcess: the CLI's --post-process only; the Worker's routes never pass one.
    stream = bp.stream(items, { signal, ...(postProcess && { postProcess }) });
  } catch (err) {
    bp.free();
    throw err;
  }
  const summary = (kept) => {
    const s = summarize(kept);
    return { ...s, subrequests: s.attempts, elapsedMs: Date.now() - started };
  };
  const reword = budget === undefined ? (error) => error : (error) => inSubrequests(error, budget);
  return results(bp, stream, reword, summary);
}

/** Yields the stream's results (budget messages in the Worker's words), then the summary. */
async function* results(bp, stream, reword, summary) {
  const kept = [];
  try {
    for await (const r of stream) {
      const out = r.ok ? r : { ...r, error: reword(r.error) };
      kept.push(out.ok ? { index: out.index, ok: true, value: null, attempts: out.attempts,
        elapsedMs: out.elapsedMs, ...(out.usage && { usage: out.usage }) } : out);
      yield out;
    }
  } finally {
    bp.free();
  }
  return summary(kept);
}

/**
 * Every attempt is one subrequest, so the Worker says what edgebatch's budget refusal says in
 * those words: `subrequest budget exhausted: all 50 subrequests of this batch are used`. The
 * refusal is read from the error's structured `budget` field (`{ lastError? }`), never from
 * its message.
 */
function inSubrequests(error, budget) {
  const refused = error.budget;
  if (refused === undefined) return error;
  const spent = `subrequest budget exhausted: all ${budget} subrequests of this batch are used`;
  const message = refused.lastError === undefined
    ? spent
    : `retry refused, ${spent}; last error: ${refused.lastError}`;
  return { ...error, message };
}
