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

export function readConfig(env) {
  return {
    token: env.EDGEBATCH_TOKEN,
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
  };
}

/** Every secret the Worker knows, for the redactor. */
export function secretsOf(env) {
  return [env.EDGEBATCH_TOKEN, env.ANTHROPIC_API_KEY, env.OPENAI_API_KEY];
}

function intVar(env, name, fallback, min, max) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HttpError(500, 'configuration_error', `${name} must be an integer in ${min}..=${max}`);
  }
  return n;
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
