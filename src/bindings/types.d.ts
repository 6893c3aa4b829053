/** Options of `new BatchProcessor(options)`. Invalid values throw TypeError/RangeError. */
export interface BatchOptions {
  /** Attempts in flight at once, at most, across every call of this processor (1..=10000, default 8). */
  concurrency?: number;
  /** Retries after the first attempt (0..=100, default 4). */
  maxRetries?: number;
  /** Per-attempt timeout in ms; the attempt's signal aborts (default 60000). */
  timeoutMs?: number;
  /** Whole-call deadline in ms from the call of map/run/stream (default none). */
  deadlineMs?: number;
  /** Exponential backoff between attempts when the server gives no Retry-After. */
  backoff?: { baseMs?: number; maxMs?: number; jitter?: "full" | "decorrelated" | "none" };
  /** Cap on a server's Retry-After in ms (default 60000). */
  maxRetryAfterMs?: number;
  /**
   * Attempts one call of map/run/stream may start in all, retries included (1..=1e9, default
   * unlimited), e.g. a Worker's subrequest limit. Once used up nothing more starts: an item that
   * never started fails with kind `budget`; an item whose retry is refused keeps its last error
   * (kind, status, type), its message saying why.
   */
  maxAttempts?: number;
  /** Seed for the jitter, for repeatable runs. */
  seed?: number;
  /** Cancels every call of this processor. */
  signal?: AbortSignal;
  /** Called on every change of the counts. */
  onProgress?: (progress: Progress) => void;
  /** Called for every attempt start, end and backoff. */
  onEvent?: (event: AttemptEvent) => void;
  /** Makes `run()` take the provider's own request bodies. */
  provider?: ProviderOptions;
  /**
   * Budgets per minute: a starting guess that every reply's rate-limit headers correct. Before
   * sending, 1 request, the estimated input tokens and `max_tokens` output tokens are
   * reserved; the actual usage is refunded. A request larger than a whole budget fails at once
   * as `invalid`. Without any budget the headers alone pace the batch.
   */
  rateLimit?: { requestsPerMinute?: number; inputTokensPerMinute?: number; outputTokensPerMinute?: number };
  /** Lower the concurrency only when failures follow our own load (a knee in the failure rate by in-flight attempts); 429s never move it (default true). */
  adaptive?: boolean;
  /** run()/stream() with an Anthropic provider: requests sharing a prompt-cache prefix (up to their last `cache_control`) start one first, the rest once its reply began, so they read the cache instead of all writing it (default true). See docs/API.md, "Prompt caching". */
  cacheAware?: boolean;
  /** Stop sending after at least `failures` outage failures in a row with no success for 2 s, for `cooldownMs` (doubling per failed probe, up to 30 s), then probe (default 5, 500; failures 0 turns it off). */
  breaker?: { failures?: number; cooldownMs?: number };
  /**
   * The expected cost of an item; wins over the estimate from a provider request body. The item
   * is `unknown` (options do not know the batch's item type): annotate the parameter with your
   * item type, which a method signature accepts, or narrow it.
   */
  cost?(item: unknown, index: number): { inputTokens?: number; outputTokens?: number } | undefined;
  /** Largest 2xx reply body run()/stream() read, in bytes (default 16 MiB); a larger one fails its item (kind http, not retried). */
  maxResponseBytes?: number;
  /**
   * Other models or upstreams of the provider's API for `run()`/`stream()` without a
   * function, tried in order: an item moves at its first overload (503, 529,
   * `overloaded_error`) or rate limit whose wait passes the deadline or `fallbackAfterMs`, and
   * skips an alternative whose breaker is open; never on a request, auth or spend-cap error.
   * Each alternative is paced by its own pacer; one retry count, `maxAttempts` and deadline per
   * item across all of them. Results say which one answered (`servedBy`).
   */
  fallbacks?: Fallback[];
  /** A rate-limit wait longer than this (ms, 0..=2147483647) moves an item to its next alternative (default: only a wait past the deadline moves). Needs `fallbacks`. */
  fallbackAfterMs?: number;
  /**
   * Dollars one call of map/run/stream may spend (0..=1e9, default unlimited; a call's own
   * `maxCostUsd` wins). No attempt starts that could pass it (what is spent, plus the estimates
   * of the attempts in flight, plus this one's: its input estimate and `max_tokens` at its
   * model's price); the items left end with kind `cost_cap`. See docs/API.md, "Cost".
   */
  maxCostUsd?: number;
  /** Prices per model over the built-in table (dollars per million tokens), e.g. `{ "my-model": { inputPerMTok: 1, outputPerMTok: 4 } }`. */
  prices?: Record<string, ModelPrice>;
}

/** One model's price, in dollars per million tokens (each 0..=1000000). */
export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
  /** Default `inputPerMTok`. */
  cacheWrite5mPerMTok?: number;
  /** Default `cacheWrite5mPerMTok`. */
  cacheWrite1hPerMTok?: number;
  /** Default `inputPerMTok`. */
  cacheReadPerMTok?: number;
  /** The share the provider's Batch API takes off, 0..=1 (default 0; 0.5 is half price). */
  batchDiscount?: number;
}

/** One alternative of `fallbacks`: another upstream of the same API and/or another model. */
export interface Fallback {
  /** Default: the first choice's provider (same key, same base URL). Its `name` must be the first choice's. */
  provider?: ProviderOptions;
  /** Sent in place of the request's `model`. */
  model?: string;
  /** Request fields for this alternative only (1..=10000000 each). */
  overrides?: { max_tokens?: number; max_completion_tokens?: number };
}

/** Which alternative answered an item (`run()` with `fallbacks`): 0 is the first choice. */
export interface ServedBy {
  provider: "anthropic" | "openai";
  model: string | null;
  alternative: number;
}

/** The API `run()` talks to. The key is sent only to `baseUrl` and never appears in results. */
export interface ProviderOptions {
  name: "anthropic" | "openai" | "http";
  apiKey?: string;
  /** Default https://api.anthropic.com or https://api.openai.com. */
  baseUrl?: string;
  /** `anthropic-version` (default 2023-06-01). */
  version?: string;
  /**
   * You knowingly send `apiKey` from a browser page (anyone who can read the page can read the
   * key). For Anthropic this adds `anthropic-dangerous-direct-browser-access: true`, without
   * which the API refuses cross-origin calls. Not for `http`.
   */
  dangerouslyAllowBrowser?: boolean;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
}

/** One rate limit as the reply's headers reported it. */
export interface RateLimit {
  limit: number | null;
  remaining: number | null;
  resetMs: number | null;
}

/** A request body of the provider's API (Messages API or Chat Completions). */
export interface ProviderRequest {
  model: string;
  messages: unknown[];
  max_tokens?: number;
  [key: string]: unknown;
}

/** The value of a successful provider item. */
export interface ProviderValue {
  text: string;
  stopReason: string | null;
  usage: Usage;
  rateLimits?: { requests?: RateLimit; tokens?: RateLimit; inputTokens?: RateLimit; outputTokens?: RateLimit };
  /** The parsed JSON reply. */
  reply: unknown;
}

/** Totals of a batch, from `summarize(results)`. */
export interface BatchSummary {
  total: number;
  ok: number;
  failed: number;
  attempts: number;
  retries: number;
  byKind: Partial<Record<ErrorKind, number>>;
  usage: Usage;
  /** Items, successes and usage per model (`servedBy.model`, else the reply's `model`), when results name one. */
  byModel?: Record<string, { items: number; ok: number; inputTokens: number; outputTokens: number }>;
  /**
   * Dollars: the sum of the results' `usd` (`usdIfRealtime`: what they would have cost
   * realtime), per model when results name one; `unpriced`: successful results with no `usd`
   * (no usage, or a model with no price).
   */
  cost: { usd: number; usdIfRealtime: number; unpriced: number; byModel?: Record<string, number> };
}

/** Totals of a batch's results. */
export function summarize(results: Iterable<ItemResult>): BatchSummary;

/** Options of one call of map/run/stream. */
export interface CallOptions {
  /** Cancels this call only. */
  signal?: AbortSignal;
  /** CPU post-processing of each successful value, off the event loop (see PostProcess). */
  postProcess?: PostProcess;
  /** A shared permit source (a rate limiter other processes use too), see Permits. */
  permits?: Permits;
  /** Dollars this call may spend, in place of the processor's `maxCostUsd`. */
  maxCostUsd?: number;
}

/** What one attempt is expected to cost, as `Permits.acquire` is told. */
export interface PermitCost {
  requests: number;
  inputTokens: number;
  outputTokens: number;
}

/** Where the attempt `Permits.acquire` is asked for goes: 0 the first choice, k `fallbacks[k - 1]`. */
export interface PermitAsk {
  alternative: number;
}

/** `Permits.acquire`'s answer: send now, never, or not before `untilMs` (ms since the epoch). */
export type PermitAnswer =
  | { id: unknown }
  | { never: string }
  | { defer: { untilMs: number; reason: string } };

/** How a granted attempt ended, in the shape the Worker's `Limiter.release` reads. */
export type PermitOutcome =
  | { ok: true; usage?: Usage; headers?: Record<string, string> }
  | { ok: false; kind: ErrorKind; status?: number; headers?: Record<string, string>; error?: unknown }
  | { abandoned: true };

/**
 * A permit source asked before every attempt of a call, once the processor's own slot and
 * pacer admit it. The wait holds that slot but no attempt timeout, and counts no attempt.
 * `{ id }`: the attempt starts, and `release(id, outcome)` follows exactly once (a timeout is
 * a failure of kind `timeout`; an attempt stopped by cancel or the deadline is
 * `{ abandoned: true }`; `headers` carry `retry-after-ms` and the provider's rate-limit headers
 * as read). `{ never }`: the item fails (`invalid`, not retryable). `{ defer }`: with
 * `fallbacks`, the item moves to the next alternative not deferred (a `fallback` event) and
 * this alternative is not asked again in the call; once every alternative deferred (at once
 * without fallbacks) nothing more starts; attempts in flight finish, and every other item
 * ends with kind `deferred` (retryable, `retryAfterMs` = what is left until the earliest
 * `untilMs`). A throw or rejection of `acquire` defers for 1 s; one of `release` is ignored.
 */
export interface Permits {
  acquire(index: number, cost: PermitCost, ask: PermitAsk): PermitAnswer | Promise<PermitAnswer>;
  release(id: unknown, outcome: PermitOutcome): unknown;
}

/**
 * The post-processing stage: after an item's call succeeds, its value goes to
 * `module[export](value, { item, index })` and the item's value becomes what that returns
 * (awaited; a generator's return value). Values cross by the structured-clone rules on every
 * host. Runs on a worker pool (Node worker_threads, browser Web Workers) or, on workerd and
 * for a module object, inline in slices. Not part of the attempt: not timed by `timeoutMs`,
 * not re-run by a retry; the deadline and the signal stop it. A failure fails that item with
 * kind `process`.
 */
export interface PostProcess {
  /** An ES module: a URL, an absolute path, or (runs inline) the module namespace object. */
  module: string | URL | object;
  /** The export to call; default `"default"`. */
  export?: string;
  /** Values in processing at once (1..1024); default the host's cores - 1, at least 1 (inline: 1). */
  threads?: number;
}

/** Call options with a post-processing stage: the results carry the export's values. */
export type PostCallOptions = CallOptions & { postProcess: PostProcess };

/** The second argument of the task function. */
export interface TaskContext {
  /** Fires on timeout, cancel or deadline: pass it to fetch or your SDK. */
  signal: AbortSignal;
  /** Attempt number, from 1. */
  attempt: number;
  /** The item's index in the input. */
  index: number;
}

export type ErrorKind = "timeout" | "http" | "network" | "aborted" | "deadline" | "invalid" | "task" | "budget" | "process" | "deferred" | "cost_cap";

export interface ItemError {
  kind: ErrorKind;
  status?: number;
  type?: string;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
  /**
   * Set (non-enumerable: not in JSON) when `maxAttempts` refused the item: `{}` if it never
   * started, `{ lastError }` (the message of its last failure) if its retry was refused.
   */
  readonly budget?: { lastError?: string };
}

export type ItemResult<T = unknown> =
  | { index: number; ok: true; value: T; attempts: number; elapsedMs: number; usage?: Usage; servedBy?: ServedBy; usd?: number }
  | { index: number; ok: false; error: ItemError; attempts: number; elapsedMs: number; servedBy?: ServedBy };

export interface Progress {
  total: number;
  done: number;
  ok: number;
  failed: number;
  inFlight: number;
  queued: number;
  /** Items waiting out a backoff, or for a permit (`permits`). */
  waiting: number;
  retries: number;
  /** Items sent to another alternative than their own so far (`fallbacks`). */
  fallbacks: number;
  /** Items whose call succeeded, in post-processing or waiting for it (not yet `done`). */
  processing: number;
  /** Attempts allowed in flight now (adaptive concurrency moves it). */
  limit: number;
  /** Why `limit` is what it is: the configured concurrency, a knee found (fast rejections: shedding), a probe above it, or slots held after fast rejections before the first success. */
  limitReason: 'configured' | 'overload' | 'shedding' | 'probe' | 'held';
  elapsedMs: number;
}

export type AttemptEvent =
  | { type: "start"; index: number; attempt: number; atMs: number }
  | { type: "end"; index: number; attempt: number; atMs: number; latencyMs: number; outcome: "ok" | ErrorKind; status?: number }
  | { type: "backoff"; index: number; attempt: number; atMs: number; delayMs: number }
  /** An item goes to alternative `to` instead of `from` (0: the first choice); `attempt`: its attempts so far. */
  | { type: "fallback"; index: number; attempt: number; atMs: number; from: number; to: number; delayMs: number }
  | { type: "processStart"; index: number; attempt: number; atMs: number }
  | { type: "processEnd"; index: number; attempt: number; atMs: number; latencyMs: number; outcome: "ok" | ErrorKind };

/** A request for `run()`: an object body is sent as JSON. */
export interface FetchSpec {
  url: string;
  method?: string;
  headers?: HeadersInit;
  body?: unknown;
  /** Default `"manual"`: a 3xx reply fails the item (not retried) instead of being followed. */
  redirect?: "follow" | "manual" | "error";
}

/** The value of a successful `run()` item. */
export interface FetchValue {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Runs batches of calls with bounded concurrency, retries, timeouts, a deadline and cancellation. */
export class BatchProcessor {
  constructor(options?: BatchOptions);
  /**
   * One result per item, in input order. Never rejects for one item's sake. `items` is an
   * array or any iterable object; a string is refused (it would run one item per character).
   * With `postProcess`, the values are the export's (type them with `P`).
   */
  map<T, R, P = unknown>(
    items: Iterable<T> & object,
    fn: (item: T, ctx: TaskContext) => R | PromiseLike<R>,
    options: PostCallOptions,
  ): Promise<ItemResult<P>[]>;
  map<T, R>(
    items: Iterable<T> & object,
    fn: (item: T, ctx: TaskContext) => R | PromiseLike<R>,
    options?: CallOptions,
  ): Promise<ItemResult<Awaited<R>>[]>;
  /** With `postProcess`: the values are the export's. */
  run<P = unknown>(specs: Iterable<FetchSpec | ProviderRequest>, options: PostCallOptions): Promise<ItemResult<P>[]>;
  /** Sends each fetch spec with the global fetch (no provider, or provider `http`). */
  run(specs: Iterable<FetchSpec>, options?: CallOptions): Promise<ItemResult<FetchValue>[]>;
  /** With a `provider`: sends each request body of the provider's own API. */
  run<V = ProviderValue>(requests: Iterable<ProviderRequest>, options?: CallOptions): Promise<ItemResult<V>[]>;
  /** Results in completion order; `break` cancels the rest. */
  stream<T, R, P = unknown>(
    items: Iterable<T> & object,
    fn: (item: T, ctx: TaskContext) => R | PromiseLike<R>,
    options: PostCallOptions,
  ): AsyncIterableIterator<ItemResult<P>>;
  stream<T, R>(
    items: Iterable<T> & object,
    fn: (item: T, ctx: TaskContext) => R | PromiseLike<R>,
    options?: CallOptions,
  ): AsyncIterableIterator<ItemResult<Awaited<R>>>;
  /** Without a function: fetch specs sent as `run()` sends them, in completion order. */
  stream(specs: Iterable<FetchSpec>, options?: CallOptions): AsyncIterableIterator<ItemResult<FetchValue>>;
  /** Without a function, with a `provider`: its request bodies, paced, in completion order. */
  stream<V = ProviderValue>(requests: Iterable<ProviderRequest>, options?: CallOptions): AsyncIterableIterator<ItemResult<V>>;
  /** Frees the wasm memory of this processor. */
  free(): void;
}
