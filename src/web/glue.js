// The few steps that are cheaper done in JS than across the wasm boundary, one call each:
// calling the task, building its context, the clock's timers and building result objects.
// Imported by src/web/task.rs, src/web/clock.rs and src/bindings.rs; wasm-bindgen copies it
// into pkg/snippets/.

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

// A sleep of the JS clock (src/web/clock.rs): settle(id, true) once `ms` have passed, like a
// task's answer; a sleep dropped first is cleared by abortTask.
class Timer {
  constructor(ms, id, settle) {
    this.handle = setTimeout(() => settle(id, true, undefined), ms);
  }
}
export function startTimer(ms, id, settle) {
  return new Timer(ms, id, settle);
}

// The attempt is over without an answer (timeout, deadline, cancel): fire its signal (or,
// for a sleep, clear its timer).
export function abortTask(ctx) {
  if (ctx instanceof Timer) return clearTimeout(ctx.handle);
  ctx[ABORTED] = true;
  if (ctx[CONTROLLER] !== undefined) ctx[CONTROLLER].abort();
}

// `servedBy`: run() with fallbacks (routeRequest below), else undefined and left out; `usd`:
// what the item cost, when its model has a price (the ledger is src/core/cost/).
export function makeResult(index, ok, payload, attempts, elapsedMs, usage, servedBy, usd) {
  const r = !ok
    ? { index, ok: false, error: payload, attempts, elapsedMs }
    : usage === undefined
      ? { index, ok: true, value: payload, attempts, elapsedMs }
      : { index, ok: true, value: payload, attempts, elapsedMs, usage };
  if (servedBy !== undefined) r.servedBy = servedBy;
  if (usd !== undefined) r.usd = usd;
  return r;
}

// run() with fallbacks: the request body of `item` on `alternative` (the executor picked it:
// 0, the first choice, sends the item as it is; another a copy with that alternative's model
// and validated overrides), noted as the item's `servedBy` in `served` (one slot per item).
// Only data shaping: which alternative, and what is valid, was decided in Rust.
export function routeRequest(served, index, item, alternative, provider, model, overrides) {
  let body = item;
  if (alternative > 0) {
    body = Object.assign({}, item);
    if (model !== undefined) body.model = model;
    Object.assign(body, overrides);
  }
  let sent = null;
  try {
    if ((typeof body === "object" && body !== null) || typeof body === "function") sent = body.model ?? null;
  } catch {
    // A throwing getter: the item fails when its body is read; servedBy names no model.
  }
  served[index] = { provider, model: sent, alternative };
  return body;
}

// Totals of a batch's results (any iterable of results). Dollars are added as whole
// pico-dollars (the ledger's unit), so the total is exact where each result's `usd` is.
export function summarize(results) {
  const s = { total: 0, ok: 0, failed: 0, attempts: 0, retries: 0, byKind: {},
    usage: { inputTokens: 0, outputTokens: 0 } };
  const pico = { usd: 0, realtime: 0, byModel: undefined };
  let unpriced = 0;
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
    // Per model: by `servedBy.model` (run() with fallbacks), else the model a provider reply
    // names. Results with neither are not counted there.
    const model = r?.servedBy?.model ?? r?.value?.reply?.model;
    if (typeof model === 'string') {
      s.byModel ??= {};
      const m = (s.byModel[model] ??= { items: 0, ok: 0, inputTokens: 0, outputTokens: 0 });
      m.items++;
      if (r.ok) m.ok++;
      m.inputTokens += usage.inputTokens;
      m.outputTokens += usage.outputTokens;
    }
    // `usdIfRealtime`: what a provider-batch result would have cost realtime (the Worker's
    // stored batches say it); a realtime result's is its `usd`.
    if (typeof r?.usd === 'number') {
      const p = Math.round(r.usd * 1e12);
      pico.usd += p;
      pico.realtime += typeof r.usdIfRealtime === 'number' ? Math.round(r.usdIfRealtime * 1e12) : p;
      if (typeof model === 'string') {
        pico.byModel ??= {};
        pico.byModel[model] = (pico.byModel[model] ?? 0) + p;
      }
    } else if (r.ok) unpriced++;
  }
  s.cost = { usd: pico.usd / 1e12, usdIfRealtime: pico.realtime / 1e12, unpriced };
  if (pico.byModel) {
    s.cost.byModel = {};
    for (const [m, p] of Object.entries(pico.byModel)) s.cost.byModel[m] = p / 1e12;
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
// `stream` (a 2xx, not truncated, that says it is `text/event-stream`: an upstream may ignore
// the ask and send the Message itself): the body is a Messages stream the caller did not ask
// for, given back as the Message (messageFromEvents); its events may take STREAM_BYTES times
// `maxBytes`.
export async function readBody(response, maxBytes, truncate, secrets, stream) {
  stream &&= !truncate && /^\s*text\/event-stream/i.test(response.headers.get("content-type") ?? "");
  const max = maxBytes;
  if (stream) maxBytes *= STREAM_BYTES;
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
  // After a stream is put together: a secret echoed back may come split across two deltas.
  if (stream) text = messageFromEvents(text, max);
  for (const secret of secrets) {
    if (text.includes(secret)) text = text.split(secret).join("[redacted]");
  }
  return text;
}

// Each text delta of a stream wraps a few words in ~100 bytes of event.
const STREAM_BYTES = 8;

// A prompt-cache primer's request (src/web/provider.rs provider_request): its body with
// `"stream": true` added (the body itself is the caller's), the body as the caller wrote it
// kept beside it for an upstream that refuses the stream (fetchOnce).
export function streamed(init, body) {
  init.plain = init.body;
  init.body = JSON.stringify({ ...body, stream: true });
}

// The global fetch (looked up at each call). A primer's request (`init.plain`, above) refused
// with a 4xx that is no reason to wait (an upstream that takes no `stream`) goes once more as
// its caller wrote it: at worst the same refusal, one request later.
export async function fetchOnce(url, init) {
  const res = await fetch(url, init);
  if (init.plain === undefined || res.status < 400 || res.status > 499 || res.status === 408 || res.status === 429) return res;
  res.body?.cancel().catch(() => {});
  return fetch(url, { ...init, body: init.plain, plain: undefined });
}

// A Messages API stream (the server-sent events of `stream: true`) put back together as the
// Message the same request without `stream` returns, as JSON text: what the reply of a
// prompt-cache primer is (src/web/attempt.rs streams it so that its first byte, which the rest
// of its group waits for, comes when the provider starts the reply, not when it is done). An
// `error` event gives its `{ type: "error", error }` body, read as a 200's error is. A stream
// cut short, garbled or with a content delta this code cannot apply gives an `api_error` body
// naming why: an error worth another attempt, and that one goes without `stream` (its group
// opened at the first byte). Throws { tooLarge: bytes } past `maxBytes` of JSON.
export function messageFromEvents(text, maxBytes) {
  try {
    return assembled(text, maxBytes);
  } catch (e) {
    if (e.tooLarge !== undefined) throw e;
    const why = e.delta !== undefined ? `has a content delta of type "${e.delta}" this version cannot put together` : `is not a whole Messages stream (${e.message})`;
    return JSON.stringify({ type: "error", error: { type: "api_error", message: `the streamed reply (a prompt-cache primer's) ${why}` } });
  }
}

function assembled(text, maxBytes) {
  let message = null;
  const partial = [];
  for (const block of text.replace(/\r\n?/g, "\n").split("\n\n")) {
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("data:")) data += (data === "" ? "" : "\n") + line.slice(line.startsWith("data: ") ? 6 : 5);
    }
    if (data === "") continue;
    const event = JSON.parse(data);
    switch (event.type) {
      case "message_start":
        message = { ...event.message, content: [] };
        break;
      case "content_block_start":
        message.content[event.index] = { ...event.content_block };
        break;
      case "content_block_delta":
        applyDelta(message.content[event.index], event.delta, partial, event.index);
        break;
      case "content_block_stop":
        if (partial[event.index] !== undefined) {
          message.content[event.index].input = partial[event.index] === "" ? {} : JSON.parse(partial[event.index]);
        }
        break;
      case "message_delta":
        Object.assign(message, event.delta);
        message.usage = { ...message.usage, ...event.usage };
        break;
      case "message_stop": {
        const json = JSON.stringify(message);
        const bytes = json.length * 3 > maxBytes ? new TextEncoder().encode(json).byteLength : json.length;
        if (bytes > maxBytes) throw { tooLarge: bytes };
        return json;
      }
      case "error":
        return data;
      default: // ping, and events added later that carry nothing of the Message
    }
  }
  throw new Error("it ended before message_stop");
}

// One content delta onto its block: text (`text_delta`, `thinking_delta`, `signature_delta`:
// a string field appended), a tool's input JSON in pieces (parsed at the block's stop) or a
// citation.
function applyDelta(block, delta, partial, index) {
  if (delta.type === "input_json_delta") {
    partial[index] = (partial[index] ?? "") + delta.partial_json;
    return;
  }
  if (delta.type === "citations_delta") {
    (block.citations ??= []).push(delta.citation);
    return;
  }
  const fields = Object.keys(delta).filter((k) => k !== "type");
  if (fields.length !== 1 || typeof delta[fields[0]] !== "string") throw { delta: String(delta.type) };
  block[fields[0]] = (block[fields[0]] ?? "") + delta[fields[0]];
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

// The call option `permits` (options[key], named `name`), checked as the option declarations
// word it (src/options/mod.rs: an object with the methods acquire and release), as the batch's
// permit source: the caller's object, the ids it granted (the batch knows each by its place)
// and the provider whose rate-limit headers outcomes carry. Undefined when not given (only
// `undefined` is: `null` is a wrong value).
export function permitSource(options, key, name, provider) {
  const permits = options[key];
  if (permits === undefined) return undefined;
  const refuse = (what, expected, v) => new TypeError(`${what} must be ${expected}, got ${shown(v)}`);
  if (permits === null || typeof permits !== "object" || Array.isArray(permits)) {
    throw refuse(name, "an object", permits);
  }
  for (const method of ["acquire", "release"]) {
    if (typeof permits[method] !== "function") throw refuse(`${name}.${method}`, "a function", permits[method]);
  }
  return { permits, ids: [], provider };
}

// A value as option messages show it (src/options/mod.rs, `Raw`): strings quoted, other
// non-primitives by their type.
function shown(v) {
  if (typeof v === "string") return JSON.stringify(v);
  if (v === undefined || typeof v === "number" || typeof v === "boolean") return String(v);
  return `a value of type ${v === null ? "null" : typeof v}`;
}

// permits.acquire(index, cost, { alternative }), its answer reported through settle(id, true, answer) as the
// granted id's place in src.ids, the message of a `never`, or { deferMs, reason }: a throw,
// a rejection or an answer of another shape defers for a second. Returns the context
// abortTask gets when the ask is dropped before its answer reached the batch: a permit
// granted anyway is given back.
export function askPermit(src, index, alternative, inputTokens, outputTokens, id, settle) {
  const answer = new Promise((resolve) =>
    resolve(src.permits.acquire(index, { requests: 1, inputTokens, outputTokens }, { alternative }))
  ).then((a) => permitAnswer(src, a), (e) => ({ deferMs: 1000, reason: `permits.acquire failed: ${thrownMessage(e)}` }));
  answer.then((a) => settle(id, true, a));
  const giveBack = (a) => typeof a !== "number" || sendRelease(src, a, { abandoned: true });
  return { [ABORTED]: false, [CONTROLLER]: { abort: () => answer.then(giveBack) } };
}

function permitAnswer(src, a) {
  if (a?.id !== undefined && a.id !== null) return src.ids.push(a.id) - 1;
  if (a?.never !== undefined && a.never !== null && a.never !== false) {
    return typeof a.never === "string" && a.never !== "" ? a.never : "the request can never fit its budget";
  }
  const d = a?.defer;
  if (d !== undefined && d !== null) {
    const ms = Number(d.untilMs) - Date.now();
    const reason = typeof d.reason === "string" && d.reason !== "" ? d.reason : "no reason given";
    return { deferMs: Number.isFinite(ms) ? Math.max(0, ms) : 1000, reason };
  }
  return { deferMs: 1000, reason: "permits.acquire answered neither { id }, { never } nor { defer }" };
}

// permits.release(id, outcome) of the id at `at` in src.ids, once; a throw or a rejection is
// dropped: the batch goes on.
function sendRelease(src, at, outcome) {
  const id = src.ids[at];
  if (id === undefined) return;
  src.ids[at] = undefined;
  try {
    const r = src.permits.release(id, outcome);
    if (r !== null && typeof r === "object" && typeof r.then === "function") r.then(undefined, () => {});
  } catch {}
}

// A rate-limit snapshot's names in the providers' headers.
const LIMITS = { requests: "requests", tokens: "tokens", inputTokens: "input-tokens", outputTokens: "output-tokens" };

// Releases the id at `at` with its attempt's outcome, in the shape the Worker's
// Limiter.release reads: the reply's retry wait and rate-limit snapshot (`limits`, as a
// provider value's `rateLimits`) back in headers of the provider's own names and formats; the
// error type and spend cap in an error body.
export function releasePermit(src, at, kind, status, retryAfterMs, spendCap, errorType, usage, limits) {
  if (kind === "abandoned") return sendRelease(src, at, { abandoned: true });
  const out = kind === "ok" ? { ok: true } : { ok: false, kind };
  if (!Number.isNaN(status)) out.status = status;
  if (usage !== undefined) out.usage = usage;
  const headers = {};
  if (!Number.isNaN(retryAfterMs)) headers["retry-after-ms"] = String(retryAfterMs);
  const provider = src.provider;
  for (const [key, limit] of provider === "" || limits === undefined ? [] : Object.entries(limits)) {
    const name = LIMITS[key];
    for (const [part, v] of [["limit", limit.limit], ["remaining", limit.remaining], ["reset", limit.resetMs]]) {
      if (v === null) continue;
      const value = part !== "reset" ? String(v)
        : provider === "openai" ? `${v}ms` : new Date(Date.now() + v).toISOString();
      headers[provider === "openai" ? `x-ratelimit-${part}-${name}` : `anthropic-ratelimit-${name}-${part}`] = value;
    }
  }
  if (Object.keys(headers).length > 0) out.headers = headers;
  if (errorType !== "" || spendCap) {
    const error = { type: errorType === "" ? "error" : errorType };
    if (spendCap) error.details = { error_code: "enforced_spend_limit_reached" };
    out.error = { type: "error", error };
  }
  sendRelease(src, at, out);
}
