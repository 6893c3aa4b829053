// Validates a POST /v1/batch body: `{ provider?, items, options? }`. Every rejection is a 400
// that names the field and the rule. Values are never echoed for provider fields (a base URL
// may carry credentials, a key is a key). Options: this file holds only the Worker's own
// limits (which options a client may set, and the caps it imposes); what an option must be is
// edgebatch's declaration, and `BatchProcessor` names every other problem.
import { BatchProcessor } from '../pkg/edgebatch.js';
import { upstreamKey } from './auth.js';
import { badRequest, HttpError } from './http.js';
import { checkItem, OUTPUT_FIELDS } from './item-policy.js';
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
  // Prompt-cache-aware starts (Anthropic): a boolean, checked below with a message of its own.
  cacheAware: null,
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

  const { provider, upstream, name, missingKey } = parseProvider(body.provider, config, origin);
  const { fallbacks, rest } = splitFallbacks(body.options);
  const alternatives = parseFallbacks(fallbacks.list, { provider, name }, config, origin);
  const rules = { ...config.items, repeats: repeatedModels(alternatives) };
  items.forEach((item, i) => checkItem(item, i, provider.name, rules));
  const options = parseOptions(rest, config);
  if (alternatives) {
    options.fallbacks = alternatives.map((a) => a.option);
    if (fallbacks.after !== undefined) options.fallbackAfterMs = fallbacks.after;
  }
  // Request errors first: a bad option is the client's to fix (400) even when the Worker
  // also lacks a key, which only its operator can fix (500).
  if (missingKey) throw missingKey;
  const missing = alternatives?.find((a) => a.missingKey);
  if (missing) throw missing.missingKey;
  // Which upstream answered, by alternative (a result's servedBy.alternative): 0 is the first choice.
  const upstreams = [name, ...(alternatives ?? []).map((a) => a.name)];
  return { items, provider, options, upstream, upstreams };
}

/**
 * `options.fallbacks` and `options.fallbackAfterMs`, which the Worker reads itself (alternatives
 * name its upstreams), apart from the rest of the options (edgebatch's to judge).
 * @param {unknown} raw the body's options
 */
export function splitFallbacks(raw) {
  if (!isPlainObject(raw)) return { fallbacks: { list: undefined, after: undefined }, rest: raw };
  const { fallbacks: list, fallbackAfterMs: after, ...rest } = /** @type {Record<string, unknown>} */ (raw);
  if (after !== undefined && list === undefined) throw badRequest('options.fallbackAfterMs needs options.fallbacks');
  if (after !== undefined) int('options.fallbackAfterMs', after, 0, WORKER_CAPS.deadlineMs);
  return { fallbacks: { list, after }, rest };
}

export function parseProvider(raw, config, origin) {
  const p = raw === undefined ? { name: 'anthropic' } : raw;
  if (!isPlainObject(p)) throw badRequest(`provider must be an object { name, baseUrl?, apiKey? }, got ${typeName(p)}`);
  for (const key of Object.keys(p)) {
    if (!PROVIDER_FIELDS.has(key)) throw badRequest(`provider has unknown field ${JSON.stringify(key)}`);
  }
  // Own keys only: `constructor` or `toString` must not find Object.prototype's.
  const upstreams = config.upstreams ?? UPSTREAMS;
  const upstreamOf = typeof p.name === 'string' && Object.hasOwn(upstreams, p.name) ? upstreams[p.name] : undefined;
  if (!upstreamOf) {
    throw badRequest(`provider.name must be one of ${Object.keys(upstreams).join(', ')} (this Worker's upstreams)`);
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
  // edgebatch's provider is the upstream's API; `name` is the upstream the client chose.
  const provider = { name: upstreamOf.api ?? p.name, baseUrl, apiKey, ...(p.version !== undefined && { version: p.version }) };
  return { provider, upstream: toSim ? 'sim' : p.name, name: p.name, missingKey };
}

/** Alternatives per batch, at most (each is an upstream and a pacer, or a limiter, more). */
export const MAX_FALLBACKS = 4;
const FALLBACK_FIELDS = new Set(['provider', 'model', 'overrides']);

/**
 * @typedef {object} Alternative one entry of options.fallbacks, read
 * @property {string} name the upstream it names (the first choice's when it names none)
 * @property {{ name: string, baseUrl: string, apiKey?: string, version?: string }} provider
 *   edgebatch's provider (name: the API), its key only where one may be sent
 * @property {boolean} sim whether it is the simulator
 * @property {boolean} sameUpstream whether it is the first choice's upstream (another model)
 * @property {string} [model]
 * @property {Record<string, number>} [overrides]
 * @property {object} option the edgebatch `fallbacks` entry, key included
 * @property {HttpError} [missingKey] the Worker lacks this upstream's key (a 500, after the 400s)
 */

/**
 * `options.fallbacks`: `[{ provider?: { name, baseUrl?, apiKey? }, model?, overrides? }, ...]`.
 * An alternative names one of this Worker's upstreams, with parseProvider's rules (its base URL
 * or the simulator's, a client key only with EDGEBATCH_ALLOW_CLIENT_KEYS), and/or a model the
 * Worker allows (EDGEBATCH_MODELS), with output caps the Worker allows. Each is a 400 naming
 * the entry: an empty list, an unknown upstream, another API than the first choice's (bodies
 * are sent unchanged), an entry that repeats the first choice or an earlier one (same upstream,
 * base URL and model: a cycle), a model or a cap the Worker does not allow.
 * @param {unknown} list
 * @param {{ provider: { name: string, baseUrl: string }, name: string }} first parseProvider's reading of the first choice
 * @param {any} config @param {string} origin
 * @param {{ clientKeys?: boolean }} [opts] clientKeys false: a key is refused (a stored batch holds none)
 * @returns {Alternative[] | null}
 */
export function parseFallbacks(list, first, config, origin, { clientKeys = true } = {}) {
  if (list === undefined) return null;
  const at = 'options.fallbacks';
  if (!Array.isArray(list) || list.length === 0) {
    throw badRequest(`${at} must be a non-empty array of { provider?, model?, overrides? }, got ${list === null || Array.isArray(list) ? show(list) : typeName(list)}`);
  }
  if (list.length > MAX_FALLBACKS) throw badRequest(`${at} has ${list.length} entries; at most ${MAX_FALLBACKS}`);
  const api = first.provider.name;
  const seen = new Map([[identity(first.name, first.provider.baseUrl, undefined), 'the first choice']]);
  return list.map((entry, i) => {
    const here = `${at}[${i}]`;
    if (!isPlainObject(entry)) throw badRequest(`${here} must be an object { provider?, model?, overrides? }, got ${typeName(entry)}`);
    for (const key of Object.keys(entry)) {
      if (!FALLBACK_FIELDS.has(key)) throw badRequest(`${here} has unknown field ${JSON.stringify(key.slice(0, 40))} (allowed: provider, model, overrides)`);
    }
    if (entry.provider === undefined && entry.model === undefined) throw badRequest(`${here} must name a provider or a model (or both)`);
    let read = { provider: first.provider, name: first.name, upstream: '', missingKey: undefined };
    if (entry.provider !== undefined) {
      if (!clientKeys && isPlainObject(entry.provider) && Object.hasOwn(entry.provider, 'apiKey')) {
        throw badRequest(`${here}.provider.apiKey is not accepted by /v1/batches: a stored batch never holds a key (the Worker uses its own secrets)`);
      }
      try {
        read = parseProvider(entry.provider, config, origin);
      } catch (err) {
        if (err instanceof HttpError && err.status === 400) err.message = `${here}.${err.message}`;
        throw err;
      }
      if (read.provider.name !== api) {
        throw badRequest(`${here}.provider.name ${JSON.stringify(read.name)} is an ${read.provider.name} upstream; the first choice's API is ${api}, ` +
          'and an alternative must take the same request bodies (they are sent unchanged)');
      }
    }
    const model = entry.model;
    if (model !== undefined) {
      if (typeof model !== 'string' || model === '') throw badRequest(`${here}.model must be a non-empty string`);
      const allowed = config.items.models;
      if (!allowed.includes('*') && !allowed.includes(model)) throw badRequest(`${here}.model must be one of ${allowed.join(', ')} (EDGEBATCH_MODELS)`);
    }
    const overrides = parseOverrides(entry.overrides, `${here}.overrides`, api, config.items.maxOutputTokens);
    const id = identity(read.name, read.provider.baseUrl, model);
    const earlier = seen.get(id);
    if (earlier) throw badRequest(`${here} repeats ${earlier} (the same upstream and model): an alternative must differ from the ones before it`);
    seen.set(id, here);
    const p = read.provider;
    return {
      name: read.name,
      provider: p,
      sim: read.upstream === 'sim',
      sameUpstream: read.name === first.name && p.baseUrl === first.provider.baseUrl,
      ...(model !== undefined && { model }),
      ...(overrides && { overrides }),
      option: { ...(entry.provider !== undefined && { provider: p }), ...(model !== undefined && { model }), ...(overrides && { overrides }) },
      ...(read.missingKey && { missingKey: read.missingKey }),
    };
  });
}

/** @param {string} name @param {string} baseUrl @param {string | undefined} model */
function identity(name, baseUrl, model) {
  return JSON.stringify([name, baseUrl, model ?? null]);
}

/**
 * `overrides: { max_tokens?, max_completion_tokens? }`: the API's output caps, each at most the
 * Worker's (EDGEBATCH_MAX_OUTPUT_TOKENS), as an item's own.
 * @param {unknown} raw @param {string} at @param {string} api @param {number} max
 * @returns {Record<string, number> | undefined}
 */
function parseOverrides(raw, at, api, max) {
  if (raw === undefined) return undefined;
  const fields = OUTPUT_FIELDS[/** @type {'anthropic'} */ (api)] ?? ['max_tokens'];
  if (!isPlainObject(raw)) throw badRequest(`${at} must be an object { ${fields.map((f) => `${f}?`).join(', ')} }`);
  /** @type {Record<string, number>} */
  const out = {};
  for (const [key, value] of Object.entries(/** @type {object} */ (raw))) {
    if (!fields.includes(key)) throw badRequest(`${at} has unknown field ${JSON.stringify(key.slice(0, 40))} (allowed for ${api}: ${fields.join(', ')})`);
    out[key] = int(`${at}.${key}`, value, 1, max, ' (EDGEBATCH_MAX_OUTPUT_TOKENS)');
  }
  return out;
}

/**
 * Models that alternatives on the first choice's upstream send: an item that asks for one of
 * them would have that alternative repeat its first choice (item-policy.js refuses it).
 * @param {Alternative[] | null} alternatives
 * @returns {Map<string, number> | undefined} model -> the alternative's index
 */
export function repeatedModels(alternatives) {
  if (!alternatives) return undefined;
  const out = new Map();
  alternatives.forEach((a, k) => {
    if (a.sameUpstream && a.model !== undefined) out.set(a.model, k);
  });
  return out;
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
  if (raw.cacheAware !== undefined && typeof raw.cacheAware !== 'boolean') {
    throw badRequest(`options.cacheAware must be true or false, got ${show(raw.cacheAware)}`);
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
