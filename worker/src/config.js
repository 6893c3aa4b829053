// @ts-check
// The Worker's settings, read from its vars and secrets (wrangler.toml [vars], `wrangler secret
// put`, `wrangler dev --var`). Every number has a default and a sane range; a var that is set
// but malformed is a configuration error, reported as such rather than silently ignored.
import { BODY_READ_MS, HttpError } from './http.js';

/** Upstreams the Worker may call: it must never be an open proxy. */
export const UPSTREAMS = {
  anthropic: { baseUrl: 'https://api.anthropic.com', keyVar: 'ANTHROPIC_API_KEY' },
  openai: { baseUrl: 'https://api.openai.com', keyVar: 'OPENAI_API_KEY' },
};

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
    keys: { anthropic: env.ANTHROPIC_API_KEY, openai: env.OPENAI_API_KEY },
    limits: {
      concurrentBatches: intVar(env, 'EDGEBATCH_CONCURRENT_BATCHES', TOKEN_DEFAULTS.concurrentBatches, 1, 1000),
      itemsPerHour: intVar(env, 'EDGEBATCH_ITEMS_PER_HOUR', TOKEN_DEFAULTS.itemsPerHour, 1, 100_000_000),
      subrequestsPerHour: intVar(env, 'EDGEBATCH_SUBREQUESTS_PER_HOUR', TOKEN_DEFAULTS.subrequestsPerHour, 1, 100_000_000),
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
 *   there (`completionWindow`, batches/provider-batch.js): its results take minutes to hours.
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
