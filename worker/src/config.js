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

export function readConfig(env) {
  return {
    simOn: env.EDGEBATCH_SIM === 'on',
    simConfig: parseSimConfig(env.EDGEBATCH_SIM_CONFIG),
    simOrigins: (env.EDGEBATCH_SIM_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean),
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

/** A var that must be an integer in `min..=max` when set; malformed is a 500 naming it. */
export function intVar(env, name, fallback, min, max) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HttpError(500, 'configuration_error', `${name} must be an integer in ${min}..=${max}`);
  }
  return n;
}

/** A comma-separated list; `*` alone means any value. */
function listVar(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const list = String(raw).split(',').map((v) => v.trim()).filter(Boolean);
  if (list.length === 0) throw new HttpError(500, 'configuration_error', `${name} must be a comma-separated list (or *)`);
  return list;
}

function parseSimConfig(raw) {
  if (raw === undefined || raw === '') return {};
  if (typeof raw === 'object') return raw;
  try {
    const v = JSON.parse(raw);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch {
    // fall through
  }
  throw new HttpError(500, 'configuration_error', 'EDGEBATCH_SIM_CONFIG must be a JSON object');
}
