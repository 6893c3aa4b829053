// The few steps that are cheaper done in JS than across the wasm boundary, one call each:
// calling the task, building its context and building result objects. Imported by
// src/web/task.rs and src/bindings.rs; wasm-bindgen copies it into pkg/snippets/.

const CONTROLLER = Symbol("edgebatch.controller");
const ABORTED = Symbol("edgebatch.aborted");

// The task's second argument. The AbortController is made only when the task reads `signal`:
// a task that never looks pays nothing for it.
class TaskContext {
  constructor(attempt, index) {
    this.attempt = attempt;
    this.index = index;
    this[CONTROLLER] = undefined;
    this[ABORTED] = false;
  }
  get signal() {
    if (this[CONTROLLER] === undefined) {
      this[CONTROLLER] = new AbortController();
      if (this[ABORTED]) this[CONTROLLER].abort();
    }
    return this[CONTROLLER].signal;
  }
}

// Calls fn(items[index], ctx) and reports the outcome through settle(id, ok, value): a sync
// throw, a rejection with any value and a plain return value all arrive the same way.
export function invokeTask(fn, items, index, attempt, id, settle) {
  const ctx = new TaskContext(attempt, index);
  let out;
  try {
    out = fn(items[index], ctx);
    if (out !== null && (typeof out === "object" || typeof out === "function") && typeof out.then === "function") {
      Promise.resolve(out).then((v) => settle(id, true, v), (e) => settle(id, false, e));
      return ctx;
    }
  } catch (e) {
    settle(id, false, e);
    return ctx;
  }
  settle(id, true, out);
  return ctx;
}

// The attempt is over without an answer (timeout, deadline, cancel): fire its signal.
export function abortTask(ctx) {
  ctx[ABORTED] = true;
  if (ctx[CONTROLLER] !== undefined) ctx[CONTROLLER].abort();
}

export function makeResult(index, ok, payload, attempts, elapsedMs, usage) {
  if (!ok) return { index, ok: false, error: payload, attempts, elapsedMs };
  return usage === undefined
    ? { index, ok: true, value: payload, attempts, elapsedMs }
    : { index, ok: true, value: payload, attempts, elapsedMs, usage };
}

// Totals of a batch's results (any iterable of results).
export function summarize(results) {
  const s = { total: 0, ok: 0, failed: 0, attempts: 0, retries: 0, byKind: {},
    usage: { inputTokens: 0, outputTokens: 0 } };
  for (const r of results) {
    s.total++;
    s.attempts += r.attempts;
    s.retries += Math.max(0, r.attempts - 1);
    if (r.ok) s.ok++;
    else {
      s.failed++;
      s.byKind[r.error.kind] = (s.byKind[r.error.kind] ?? 0) + 1;
    }
    const usage = usageOf(r);
    s.usage.inputTokens += usage.inputTokens;
    s.usage.outputTokens += usage.outputTokens;
  }
  return s;
}

// A result's token usage: the provider's (lifted onto the result), else what a map() value
// says of itself: an Anthropic SDK Message (`usage.input_tokens`), an OpenAI ChatCompletion
// (`usage.prompt_tokens`), or an object already in this shape. Anything else counts nothing.
function usageOf(r) {
  const tokens = (n) => (typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : 0);
  if (r.usage) return { inputTokens: tokens(r.usage.inputTokens), outputTokens: tokens(r.usage.outputTokens) };
  const u = r.ok && r.value !== null && typeof r.value === 'object' ? r.value.usage : undefined;
  if (u === null || typeof u !== 'object') return { inputTokens: 0, outputTokens: 0 };
  return {
    inputTokens: tokens(u.input_tokens ?? u.prompt_tokens ?? u.inputTokens),
    outputTokens: tokens(u.output_tokens ?? u.completion_tokens ?? u.outputTokens),
  };
}

export function makeError(kind, status, type, message, retryable, retryAfterMs) {
  const error = { kind };
  if (status !== undefined) error.status = status;
  if (type !== undefined) error.type = type;
  error.message = message;
  error.retryable = retryable;
  if (retryAfterMs !== undefined) error.retryAfterMs = retryAfterMs;
  return error;
}
