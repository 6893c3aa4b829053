// Validates a POST /v1/batch body: `{ provider?, items, options? }`. Every rejection is a 400
// that names the field and the rule. Values are never echoed for provider fields (a base URL
// may carry credentials, a key is a key). Options: this file holds only the Worker's own
// limits (which options a client may set, and the caps it imposes); what an option must be is
// edgebatch's declaration, and `BatchProcessor` names every other problem.
import { BatchProcessor } from '../pkg/edgebatch.js';
import { upstreamKey } from './auth.js';
import { badRequest, HttpError } from './http.js';
import { checkItem } from './item-policy.js';
import { SIM_ORIGIN, UPSTREAMS } from './config.js';

const TOP_LEVEL = new Set(['provider', 'items', 'options']);
const PROVIDER_FIELDS = new Set(['name', 'baseUrl', 'apiKey', 'version']);

/**
 * The options a client may set, each with the Worker's cap on it (`null`: no cap of its own;
 * `concurrency`'s comes from the config). Every name is a declared edgebatch option
 * (worker/test/fuzz.test.mjs checks it against the wasm).
 */
const WORKER_CAPS = {
  concurrency: null,
  maxRetries: 10,
  timeoutMs: 600_000,
  deadlineMs: 900_000,
  backoff: { baseMs: 60_000, maxMs: 600_000 },
  maxRetryAfterMs: 600_000,
  seed: null,
};
export const WORKER_OPTIONS = Object.keys(WORKER_CAPS);

/**
 * @param {string} text the raw body
 * @param {object} config from readConfig
 * @param {string} origin the Worker's own origin (for the simulator's base URL)
 * @returns {{ items: object[], provider: object, options: object, upstream: string }}
 */
export function parseBatchRequest(text, config, origin) {
  const body = parseJsonObject(text, TOP_LEVEL, '{ provider?, items, options? }');

  const items = body.items;
  if (!Array.isArray(items)) throw badRequest(`items must be an array, got ${typeName(items)}`);
  if (items.length > config.maxItems) {
    throw badRequest(`items has ${items.length} entries; at most ${config.maxItems} per batch`);
  }
  // Every item needs at least one subrequest: such a batch could not run, so say so now
  // rather than fail its last items with kind `budget`.
  if (items.length > config.subrequestBudget) {
    throw badRequest(`items has ${items.length} entries but the subrequest budget is ${config.subrequestBudget} per batch`);
  }
  items.forEach((item, i) => {
    if (!isPlainObject(item)) throw badRequest(`items[${i}] must be an object (a request body), got ${typeName(item)}`);
  });

  const { provider, upstream, missingKey } = parseProvider(body.provider, config, origin);
  items.forEach((item, i) => checkItem(item, i, provider.name, config.items));
  const options = parseOptions(body.options, config);
  // Request errors first: a bad option is the client's to fix (400) even when the Worker
  // also lacks a key, which only its operator can fix (500).
  if (missingKey) throw missingKey;
  return { items, provider, options, upstream };
}

export function parseProvider(raw, config, origin) {
  const p = raw === undefined ? { name: 'anthropic' } : raw;
  if (!isPlainObject(p)) throw badRequest(`provider must be an object { name, baseUrl?, apiKey? }, got ${typeName(p)}`);
  for (const key of Object.keys(p)) {
    if (!PROVIDER_FIELDS.has(key)) throw badRequest(`provider has unknown field ${JSON.stringify(key)}`);
  }
  // Own keys only: `constructor` or `toString` must not find Object.prototype's.
  const upstreamOf = typeof p.name === 'string' && Object.hasOwn(UPSTREAMS, p.name) ? UPSTREAMS[p.name] : undefined;
  if (!upstreamOf) {
    throw badRequest(`provider.name must be one of ${Object.keys(UPSTREAMS).join(', ')}`);
  }
  let baseUrl = upstreamOf.baseUrl;
  let toSim = false;
  if (p.baseUrl !== undefined) {
    if (typeof p.baseUrl !== 'string') throw badRequest('provider.baseUrl must be a string');
    const asked = p.baseUrl.replace(/\/+$/, '');
    const sim = config.simOn ? simBase(asked, origin) : null;
    if (sim === null && asked !== upstreamOf.baseUrl) {
      const allowed = [upstreamOf.baseUrl, ...(config.simOn ? [`${SIM_ORIGIN} (the simulator; ${origin}/sim works too)`] : [])];
      throw badRequest(`provider.baseUrl is not allowed; for ${p.name} use one of: ${allowed.join(', ')}`);
    }
    baseUrl = sim ?? asked;
    toSim = sim !== null;
  }
  if (p.version !== undefined && (typeof p.version !== 'string' || !/^[\w.-]{1,40}$/.test(p.version))) {
    throw badRequest('provider.version must be a short string such as "2023-06-01"');
  }

  // A missing server key is the Worker's fault, not the request's: reported only once the
  // request itself is known to be valid (its 400s come first).
  let apiKey;
  let missingKey;
  try {
    apiKey = upstreamKey({ provider: p.name, keyVar: upstreamOf.keyVar, clientKey: p.apiKey, toSim }, config);
  } catch (err) {
    if (!(err instanceof HttpError) || err.status !== 500) throw err;
    missingKey = err;
  }
  const provider = { name: p.name, baseUrl, apiKey, ...(p.version !== undefined && { version: p.version }) };
  return { provider, upstream: toSim ? 'sim' : p.name, missingKey };
}

/**
 * The in-process simulator base for a sim base URL (SIM_ORIGIN, or `<origin>/sim` as clients
 * wrote it before; either with `/s/<session>`), else null. `origin` comes from the request's
 * Host header, which the client chose: harmless here, since the answer is always SIM_ORIGIN,
 * which never leaves the process.
 */
function simBase(url, origin) {
  for (const prefix of [SIM_ORIGIN, `${origin}/sim`]) {
    if (url === prefix) return SIM_ORIGIN;
    const m = /^\/s\/([0-9a-f]{16})$/.exec(url.startsWith(prefix) ? url.slice(prefix.length) : '');
    if (m) return `${SIM_ORIGIN}/s/${m[1]}`;
  }
  return null;
}

export function parseOptions(raw, config) {
  if (raw === undefined) return withDefaults({}, config);
  if (!isPlainObject(raw)) throw badRequest(`options must be an object, got ${typeName(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(WORKER_CAPS, key)) {
      throw badRequest(`options has unknown field ${JSON.stringify(key)} (allowed: ${WORKER_OPTIONS.join(', ')})`);
    }
  }
  capped('options.concurrency', raw.concurrency, config.maxConcurrency,
    ` (Workers allow ${config.maxConcurrency} simultaneous connections per invocation here)`);
  for (const [key, cap] of Object.entries(WORKER_CAPS)) {
    if (typeof cap === 'number') capped(`options.${key}`, raw[key], cap);
  }
  if (isPlainObject(raw.backoff)) {
    for (const [key, cap] of Object.entries(WORKER_CAPS.backoff)) capped(`options.backoff.${key}`, raw.backoff[key], cap);
  }
  const options = withDefaults({ ...raw }, config);
  // Everything else is edgebatch's to judge: the processor the batch will run on, built once
  // here so that a bad option is a 400 before anything else happens.
  try {
    new BatchProcessor(options).free();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw badRequest(`options: ${err.message}`);
    throw err;
  }
  return options;
}

/** A 400 if `value` is a number over the Worker's `cap` (its type and range are edgebatch's). */
function capped(name, value, cap, why = '') {
  if (typeof value === 'number' && value > cap) {
    throw badRequest(`${name} must be at most ${cap} on this Worker${why}, got ${show(value)}`);
  }
}

/**
 * The Worker's defaults: the Workers connection limit, and a deadline, so that a batch against
 * an upstream that is down (edgebatch's circuit breaker then lets one probe through per
 * cooldown, and items wait) still ends.
 */
function withDefaults(out, config) {
  out.concurrency ??= config.maxConcurrency;
  out.deadlineMs ??= WORKER_CAPS.deadlineMs;
  return out;
}

/**
 * A request body that must be a JSON object with no fields but `fields` (a Set); `shape` is
 * how the messages spell it, e.g. `{ config?, hangMs? }`. Throws a 400 naming what is wrong.
 */
export function parseJsonObject(text, fields, shape) {
  let body;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw badRequest(`body is not valid JSON (${e.message})`);
  }
  if (!isPlainObject(body)) throw badRequest(`body must be a JSON object ${shape}`);
  for (const key of Object.keys(body)) {
    if (!fields.has(key)) throw badRequest(`unknown field ${JSON.stringify(key)} (expected ${[...fields].join(', ')})`);
  }
  return body;
}

/** `value` if it is an integer in `min..=max`, else a 400 naming `name`. */
export function int(name, value, min, max, why = '') {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw badRequest(`${name} must be an integer in ${min}..=${max}${why}, got ${show(value)}`);
  }
  return value;
}

function show(value) {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function typeName(v) {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}
