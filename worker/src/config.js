// @ts-check
// The Worker's settings, read from its vars and secrets (wrangler.toml [vars], `wrangler secret
// put`, `wrangler dev --var`). Every number has a default and a sane range; a var that is set
// but malformed is a configuration error, reported as such rather than silently ignored.
import { BODY_READ_MS, HttpError } from './http.js';

/**
 * Upstreams the Worker may call: it must never be an open proxy. These two always exist; an
 * operator adds more in EDGEBATCH_UPSTREAMS (upstreamsOf). `api` is the wire format a request
 * body is in (edgebatch's provider name).
 * @typedef {{ api: 'anthropic' | 'openai', baseUrl: string, keyVar: string }} Upstream
 * @type {Record<string, Upstream>}
 */
export const UPSTREAMS = {
  anthropic: { api: 'anthropic', baseUrl: 'https://api.anthropic.com', keyVar: 'ANTHROPIC_API_KEY' },
  openai: { api: 'openai', baseUrl: 'https://api.openai.com', keyVar: 'OPENAI_API_KEY' },
};

const UPSTREAM_NAME = /^[a-z][a-z0-9_-]{0,39}$/;
const KEY_VAR = /^[A-Z][A-Z0-9_]{0,63}$/;
const UPSTREAM_FIELDS = new Set(['api', 'baseUrl', 'keyVar']);
/** The last EDGEBATCH_UPSTREAMS read, and what it gave: vars do not change in an isolate. */
let parsedUpstreams = { raw: /** @type {unknown} */ (undefined), upstreams: UPSTREAMS };

/**
 * Every upstream this Worker may call: the built-in two and the operator's own, from
 * EDGEBATCH_UPSTREAMS, a JSON object `{ "<name>": { api, baseUrl, keyVar }, ... }`:
 * - name: 1 to 40 of a-z 0-9 _ - (starting with a letter), not a built-in one;
 * - api: "anthropic" or "openai", the format of the requests it takes;
 * - baseUrl: an https:// origin (and path), without credentials, query or fragment;
 * - keyVar: the Worker secret holding its key (A-Z 0-9 _, not an EDGEBATCH_ var).
 * Clients name an upstream (`provider.name`, `fallbacks[].provider.name`), never its URL or
 * key. Malformed: a 500 `configuration_error` naming the entry, on every request.
 * @param {Record<string, any>} env
 * @returns {Record<string, Upstream>}
 */
export function upstreamsOf(env) {
  const raw = env.EDGEBATCH_UPSTREAMS;
  if (raw === undefined || raw === '') return UPSTREAMS;
  if (parsedUpstreams.raw !== raw) parsedUpstreams = { raw, upstreams: parseUpstreams(raw) };
  return parsedUpstreams.upstreams;
}

/** @param {unknown} raw @returns {Record<string, Upstream>} */
function parseUpstreams(raw) {
  const bad = (/** @type {string} */ why) => new HttpError(500, 'configuration_error', `EDGEBATCH_UPSTREAMS${why.startsWith("[") ? "" : " "}${why}`);
  let value = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      throw bad('must be a JSON object { "<name>": { api, baseUrl, keyVar } }');
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad('must be a JSON object { "<name>": { api, baseUrl, keyVar } }');
  }
  /** @type {Record<string, Upstream>} */
  const out = { ...UPSTREAMS };
  for (const [name, entry] of Object.entries(value)) {
    const at = `[${JSON.stringify(name.slice(0, 40))}]`;
    if (!UPSTREAM_NAME.test(name)) throw bad(`${at}: a name is 1 to 40 of a-z, 0-9, _ and -, starting with a letter`);
    if (Object.hasOwn(UPSTREAMS, name) || name === 'sim') throw bad(`${at}: ${name} is built in; choose another name`);
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw bad(`${at} must be an object { api, baseUrl, keyVar }`);
    for (const key of Object.keys(entry)) {
      if (!UPSTREAM_FIELDS.has(key)) throw bad(`${at} has unknown field ${JSON.stringify(key.slice(0, 40))} (allowed: api, baseUrl, keyVar)`);
    }
    const { api, baseUrl, keyVar } = entry;
    if (api !== 'anthropic' && api !== 'openai') throw bad(`${at}.api must be "anthropic" or "openai"`);
    let url;
    try {
      url = new URL(String(baseUrl));
    } catch {
      url = null;
    }
    // Never shown: a URL may carry what should not be logged.
    if (typeof baseUrl !== 'string' || !url || url.protocol !== 'https:' || url.username || url.password || url.search || url.hash) {
      throw bad(`${at}.baseUrl must be an https:// URL without credentials, query or fragment`);
    }
    if (typeof keyVar !== 'string' || !KEY_VAR.test(keyVar) || keyVar.startsWith('EDGEBATCH_')) {
      throw bad(`${at}.keyVar must name the Worker secret holding its key (A-Z, 0-9, _; not an EDGEBATCH_ var)`);
    }
    out[name] = { api, baseUrl: baseUrl.replace(/\/+$/, ''), keyVar };
  }
  return out;
}

/**
 * The keys of the operator's own upstreams (EDGEBATCH_UPSTREAMS), for the redactor: the
 * built-in ones are in auth.js secretsOf already. @param {Record<string, any>} env
 * @returns {string[]}
 */
export function upstreamSecrets(env) {
  let upstreams;
  try {
    upstreams = upstreamsOf(env);
  } catch {
    return []; // the request fails on the var anyway, before any key is used
  }
  return Object.entries(upstreams).filter(([name]) => !Object.hasOwn(UPSTREAMS, name))
    .map(([, u]) => env[u.keyVar]).filter((k) => typeof k === 'string' && k !== '');
}

/**
 * Where the Worker reaches its own simulator (EDGEBATCH_SIM = "on"): never over the network,
 * the global fetch hands requests for this origin to the simulator in-process (sim.js). A
 * fixed name, so that nothing a client sends (the Host header) can point a batch elsewhere.
 */
export const SIM_ORIGIN = 'http://sim.edgebatch.internal';

/**
 * Workers allow 6 simultaneous open connections per invocation; more wait in a queue, where an
 * attempt's timeout would already be running. So at most 6 attempts in flight by default.
 */
export const DEFAULT_MAX_CONCURRENCY = 6;
/** Every attempt is a subrequest (retries too). Paid plans allow 10,000 per invocation, Free 50. */
export const DEFAULT_SUBREQUEST_BUDGET = 1000;
export const DEFAULT_MAX_ITEMS = 1000;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * Per-token limits (TokenLimits, token-limits.js), and what an item may ask for. Together they
 * bound what a leaked token can cost (worker/README.md, "Threat model"): at most 2000
 * subrequests an hour, each with at most 16 KiB of text input and 1024 output tokens, on a
 * cheap model: $75.78 an hour at most on Claude Haiku 4.5.
 */
export const TOKEN_DEFAULTS = {
  concurrentBatches: 4,
  itemsPerHour: 1000,
  subrequestsPerHour: 2000,
  models: ['claude-haiku-4-5', 'gpt-4o-mini'],
  maxOutputTokens: 1024,
  maxItemBytes: 16 * 1024,
};

/** The Worker's settings for one request. @param {Record<string, any>} env */
export function readConfig(env) {
  return {
    simOn: env.EDGEBATCH_SIM === 'on',
    simConfig: parseSimConfig(env.EDGEBATCH_SIM_CONFIG),
    simOrigins: String(env.EDGEBATCH_SIM_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    allowClientKeys: env.EDGEBATCH_ALLOW_CLIENT_KEYS === 'true',
    maxConcurrency: intVar(env, 'EDGEBATCH_MAX_CONCURRENCY', DEFAULT_MAX_CONCURRENCY, 1, 1000),
    subrequestBudget: intVar(env, 'EDGEBATCH_SUBREQUEST_BUDGET', DEFAULT_SUBREQUEST_BUDGET, 1, 1_000_000),
    maxItems: intVar(env, 'EDGEBATCH_MAX_ITEMS', DEFAULT_MAX_ITEMS, 1, 100_000),
    maxBodyBytes: intVar(env, 'EDGEBATCH_MAX_BODY_BYTES', DEFAULT_MAX_BODY_BYTES, 1024, 100 * 1024 * 1024),
    bodyTimeoutMs: intVar(env, 'EDGEBATCH_BODY_TIMEOUT_MS', BODY_READ_MS, 100, 300_000),
    upstreams: upstreamsOf(env),
    // By upstream name (auth.js upstreamKey).
    keys: Object.fromEntries(Object.entries(upstreamsOf(env)).map(([name, u]) => [name, env[u.keyVar]])),
    limits: {
      concurrentBatches: intVar(env, 'EDGEBATCH_CONCURRENT_BATCHES', TOKEN_DEFAULTS.concurrentBatches, 1, 1000),
      itemsPerHour: intVar(env, 'EDGEBATCH_ITEMS_PER_HOUR', TOKEN_DEFAULTS.itemsPerHour, 1, 100_000_000),
      subrequestsPerHour: intVar(env, 'EDGEBATCH_SUBREQUESTS_PER_HOUR', TOKEN_DEFAULTS.subrequestsPerHour, 1, 100_000_000),
      // Dollars per sliding hour (token-limits.js); null: no dollar limit, only the others.
      usdPerHour: usdVar(env, 'EDGEBATCH_USD_PER_HOUR'),
    },
    items: {
      models: listVar(env, 'EDGEBATCH_MODELS', TOKEN_DEFAULTS.models),
      maxOutputTokens: intVar(env, 'EDGEBATCH_MAX_OUTPUT_TOKENS', TOKEN_DEFAULTS.maxOutputTokens, 1, 10_000_000),
      maxItemBytes: intVar(env, 'EDGEBATCH_MAX_ITEM_BYTES', TOKEN_DEFAULTS.maxItemBytes, 64, 100 * 1024 * 1024),
      serverTools: env.EDGEBATCH_ALLOW_SERVER_TOOLS === 'true',
      media: env.EDGEBATCH_ALLOW_MEDIA === 'true',
    },
  };
}

/**
 * The timings and budgets of /v1/batches, read once per handler call (a var out of range is a
 * 500 `configuration_error`, never a silent default):
 * - alarmMs: how often a running batch's alarm looks at it (leases, lost messages, expiry);
 * - redeliverMs: how long a queued item's message may go unclaimed before the alarm probes
 *   whether it was lost (redelivery.js: only lost items are sent again, bounded per alarm);
 * - leaseMs: how long a consumer holds claimed items (its work is cut off before); also how
 *   long a limiter permit lives without a release (no attempt outlives its invocation's lease);
 * - deferMs: the longest a consumer waits for a limiter permit before giving its items back
 *   for later (a delayed message) instead of waiting in the invocation;
 * - wallMs: one consumer invocation's whole budget (Queues allow 15 minutes of wall time):
 *   each group of a delivery gets what is left of it;
 * - retryDelaySeconds: how long a message of a group that failed waits before its redelivery;
 * - subrequestBudget: subrequests per invocation (every attempt, every limiter call);
 * - dlqName: the dead-letter queue, whose messages fail their items as `delivery`;
 * - providerPollMs: how often the alarm asks a provider Batch API about a batch it submitted
 *   there (`completionWindow`, batches/provider-batch.js): its results take minutes to hours;
 * - providerTurnaroundMs: how long the provider's Batch API is expected to take (Anthropic:
 *   "most batches finish in less than 1 hour"). A window whose share before the hand-back
 *   cutoff is shorter runs realtime from the start: the provider would hold its items until
 *   the cutoff and the rest would then run realtime anyway, later than realtime alone;
 * - providerBatchMaxRequests, providerBatchMaxBytes: the largest provider batch to make, within
 *   the provider's own limits (batches/provider-batch.js chunkFrame).
 * @param {Record<string, any>} env
 */
export function batchTimings(env) {
  return {
    alarmMs: intVar(env, 'EDGEBATCH_BATCH_ALARM_MS', 5_000, 100, 3_600_000),
    redeliverMs: intVar(env, 'EDGEBATCH_BATCH_REDELIVER_MS', 60_000, 500, 86_400_000),
    leaseMs: intVar(env, 'EDGEBATCH_BATCH_LEASE_MS', 300_000, 2_000, 840_000),
    deferMs: intVar(env, 'EDGEBATCH_BATCH_DEFER_MS', 3_000, 100, 60_000),
    wallMs: intVar(env, 'EDGEBATCH_CONSUMER_WALL_MS', 840_000, 1_000, 900_000),
    retryDelaySeconds: intVar(env, 'EDGEBATCH_CONSUMER_RETRY_DELAY_S', 5, 0, 43_200),
    subrequestBudget: intVar(env, 'EDGEBATCH_SUBREQUEST_BUDGET', DEFAULT_SUBREQUEST_BUDGET, 1, 1_000_000),
    dlqName: String(env.EDGEBATCH_DLQ_NAME || 'edgebatch-dlq'),
    providerPollMs: intVar(env, 'EDGEBATCH_PROVIDER_POLL_MS', 30_000, 100, 3_600_000),
    providerTurnaroundMs: intVar(env, 'EDGEBATCH_PROVIDER_TURNAROUND_MS', 3_600_000, 0, 86_400_000),
    providerBatchMaxRequests: intVar(env, 'EDGEBATCH_PROVIDER_BATCH_MAX_REQUESTS', 100_000, 1, 100_000),
    providerBatchMaxBytes: intVar(env, 'EDGEBATCH_PROVIDER_BATCH_MAX_BYTES', 256 * 1024 * 1024, 1024, 256 * 1024 * 1024),
  };
}

/** @typedef {ReturnType<typeof batchTimings>} BatchTimings */

/**
 * A var that must be an integer in `min..=max` when set; malformed is a 500 naming it.
 * @param {Record<string, any>} env @param {string} name @param {number} fallback
 * @param {number} min @param {number} max
 * @returns {number}
 */
export function intVar(env, name, fallback, min, max) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HttpError(500, 'configuration_error', `${name} must be an integer in ${min}..=${max}`);
  }
  return n;
}

/**
 * A var of dollars (a decimal number above 0, at most 1e9) when set, else null; malformed is a
 * 500 naming it. @param {Record<string, any>} env @param {string} name
 * @returns {number | null}
 */
function usdVar(env, name) {
  const raw = env[name];
  if (raw === undefined || raw === '') return null;
  const n = Number(raw);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(String(raw).trim()) || !(n > 0) || n > 1e9) {
    throw new HttpError(500, 'configuration_error', `${name} must be dollars above 0 and at most 1e9 (e.g. "20" or "2.5")`);
  }
  return n;
}

/**
 * A comma-separated list; `*` alone means any value.
 * @param {Record<string, any>} env @param {string} name @param {string[]} fallback
 */
function listVar(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const list = String(raw).split(',').map((v) => v.trim()).filter(Boolean);
  if (list.length === 0) throw new HttpError(500, 'configuration_error', `${name} must be a comma-separated list (or *)`);
  return list;
}

/** @param {unknown} raw @returns {Record<string, any>} */
function parseSimConfig(raw) {
  if (raw === undefined || raw === '') return {};
  if (raw !== null && typeof raw === 'object') return /** @type {Record<string, any>} */ (raw);
  try {
    const v = JSON.parse(String(raw));
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch {
    // fall through
  }
  throw new HttpError(500, 'configuration_error', 'EDGEBATCH_SIM_CONFIG must be a JSON object');
}
