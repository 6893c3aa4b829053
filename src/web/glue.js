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

// Calls fn(item, ctx) and reports the outcome through settle(id, ok, value): a sync
// throw, a rejection with any value and a plain return value all arrive the same way.
export function invokeTask(fn, item, index, attempt, id, settle) {
  const ctx = new TaskContext(attempt, index);
  let out;
  try {
    out = fn(item, ctx);
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

export function makeError(kind, status, type, message, retryable, retryAfterMs, budgetAt) {
  const error = { kind };
  if (status !== undefined) error.status = status;
  if (type !== undefined) error.type = type;
  error.message = message;
  error.retryable = retryable;
  if (retryAfterMs !== undefined) error.retryAfterMs = retryAfterMs;
  // The attempt budget refused the item: `{}` (it never started) or `{ lastError }` (its
  // retry was refused; what its last attempt said), for a host that words the refusal its own
  // way. Not enumerable: results print, compare and serialise as before.
  if (budgetAt !== undefined) {
    const budget = budgetAt === 0 ? {} : { lastError: message.slice(budgetAt) };
    Object.defineProperty(error, 'budget', { value: budget, enumerable: false });
  }
  return error;
}

// Reads a reply's body as text, in JS: a large body never passes through the wasm memory
// (which grows and never shrinks). Past `maxBytes` the read stops and the stream is cancelled
// (freeing the connection): `truncate` keeps what was read (an error body, read only for its
// message), else it rejects with { tooLarge: bytes }. Each of `secrets` is replaced whole.
export async function readBody(response, maxBytes, truncate, secrets) {
  let text = "";
  if (response.body !== null) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let bytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > maxBytes) {
        reader.cancel().catch(() => {});
        if (!truncate) throw { tooLarge: bytes };
        text += decoder.decode(value.subarray(0, value.byteLength - (bytes - maxBytes)));
        break;
      }
      text += decoder.decode(value, { stream: true });
    }
    text += decoder.decode();
  }
  for (const secret of secrets) {
    if (text.includes(secret)) text = text.split(secret).join("[redacted]");
  }
  return text;
}

// Why fetch could never send a spec `{ url, method?, headers?, body? }` (empty string when it
// could): not an object, a URL that does not parse (relative URLs resolve against the page,
// where there is one) or with a scheme fetch does not speak, a method that is not an HTTP
// token or that fetch forbids, a body on GET or HEAD. Found before sending, so the item fails
// as `invalid` instead of being retried as a network error.
export function specProblem(spec) {
  if (spec === null || typeof spec !== "object") return `a fetch spec must be an object with a url, got ${String(spec)}`;
  const { url, method = "GET", body } = spec;
  if (typeof url !== "string" || url === "") return "fetch spec needs a non-empty string `url`";
  let parsed;
  try {
    parsed = new URL(url, globalThis.location?.href);
  } catch {
    return `fetch spec \`url\` ${JSON.stringify(url)} is not a valid URL`;
  }
  if (!["http:", "https:", "data:", "blob:"].includes(parsed.protocol)) {
    return `fetch spec \`url\` has the scheme ${parsed.protocol} fetch cannot send (http:, https:, data: or blob: only)`;
  }
  if (typeof method !== "string") return `fetch spec \`method\` must be a string, got ${String(method)}`;
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) return `fetch spec \`method\` ${JSON.stringify(method)} is not a valid HTTP method`;
  const upper = method.toUpperCase();
  if (["CONNECT", "TRACE", "TRACK"].includes(upper)) return `fetch refuses the method ${upper}`;
  if (body !== undefined && body !== null && (upper === "GET" || upper === "HEAD")) return `a ${upper} request cannot have a body`;
  return "";
}

// The caller's items as an array, or a TypeError naming what is wrong: done in JS, where a
// throwing length, iterator or generator is caught at once (see src/bindings/items.rs).
export function readItems(items) {
  const fail = (what, e) => new TypeError(`${what} threw: ${e?.message ?? String(e)}`);
  if (typeof items === "string") {
    throw new TypeError("items must be an array or an iterable of items, got a string (strings are refused on purpose: a string would run one item per character; wrap it as [text])");
  }
  if (items === null || typeof items !== "object") {
    throw new TypeError(`items must be an array or an iterable of items, got ${String(items)}`);
  }
  let isArray;
  try {
    isArray = Array.isArray(items);
  } catch (e) {
    throw fail("Array.isArray(items)", e);
  }
  if (isArray) {
    let length;
    try {
      length = items.length;
    } catch (e) {
      throw fail("reading items.length", e);
    }
    if (!Number.isInteger(length) || length < 0 || length > 2 ** 32 - 1) {
      throw new TypeError("items.length is not a valid array length");
    }
    return [items, length];
  }
  let iterator;
  try {
    const start = items[Symbol.iterator];
    if (typeof start !== "function") {
      throw new TypeError(`items must be an array or an iterable of items, got ${String(items)}`);
    }
    iterator = start.call(items);
  } catch (e) {
    throw e instanceof TypeError && e.message.startsWith("items must") ? e : fail("starting to iterate the items", e);
  }
  const out = [];
  for (;;) {
    let next;
    try {
      next = iterator.next();
      if (next.done) return [out, out.length];
      out.push(next.value);
    } catch (e) {
      throw fail(`iterating the items (after ${out.length})`, e);
    }
  }
}

// The credentials a fetch spec sends in its headers (to scrub from what its item reports).
export function specSecrets(spec) {
  const names = ["authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"];
  try {
    const headers = new Headers(spec?.headers ?? undefined);
    return names.map((n) => headers.get(n)).filter((v) => v !== null);
  } catch {
    return [];
  }
}

// The message of a thrown value: its `message`, else a nested `error.message` (SDK errors and
// API error bodies), else String(value) — but JSON, not "[object Object]", for a plain object.
export function thrownMessage(e) {
  try {
    for (const m of [e?.message, e?.error?.message, e?.error?.error?.message]) {
      if (typeof m === "string" && m !== "") return m;
    }
    const text = String(e);
    if (!text.startsWith("[object ")) return text;
    const json = JSON.stringify(e);
    if (json === undefined || json === "{}") return text;
    return json.length > 300 ? `${json.slice(0, 300)}…` : json;
  } catch {
    return "a thrown value that cannot be printed";
  }
}
