// @ts-check
// The /v1/batches routes, in Anthropic Message Batches' shape:
//   POST   /v1/batches                 create (JSON or NDJSON, streamed in) -> 201 the batch
//                                      (Idempotency-Key: a retry answers 200 the same batch)
//   GET    /v1/batches                 this token's batches, newest first (?limit, ?before_id)
//   GET    /v1/batches/:id             the batch, counts current
//   GET    /v1/batches/:id/results     JSONL, completion order; ?after=<seq> resumes, also
//                                      while the batch runs
//   POST   /v1/batches/:id/cancel      queued items -> canceled; in-flight ones finish
//   DELETE /v1/batches/:id             only once ended
// A batch of another token is a 404, exactly like one that does not exist.
import { batchTimings, intVar } from '../config.js';
import { allow, badRequest, HttpError, jsonResponse } from '../http.js';
import { int, parseFallbacks, parseOptions, parseProvider, repeatedModels, splitFallbacks } from '../validate.js';
import { readBatch } from './intake.js';
import { ttlBudget } from '../token-limits.js';
import { ledgerOf } from './consumer.js';
import { fingerprinted, idempotencyKey, replay } from './idempotency.js';
import { DEFAULT_LIMITER_CONCURRENCY, describeSettings, limiterName } from './limiter.js';
import { remotePermits } from './permits.js';
import { BATCH_PROVIDERS, HANDBACK_SHARE, parseWindow, warmsCache } from './provider-batch.js';

const BATCH_OPTIONS = new Set(['limiterKey', 'rateLimit', 'limiterConcurrency', 'completionWindow', 'maxCostUsd', 'cacheAware', 'cacheTtl']);
/** The largest options.maxCostUsd (the library's own bound on maxCostUsd). */
const MAX_COST_USD = 1e9;
const RATE_FIELDS = ['requestsPerMinute', 'inputTokensPerMinute', 'outputTokensPerMinute'];
const RESULTS_PAGE = 500;

/**
 * @typedef {ReturnType<typeof import('../config.js').readConfig>} Config
 * @typedef {import('./ledger-sql.js').BatchConfig} BatchConfig
 * @typedef {import('./limiter.js').LimiterSettings} LimiterSettings
 * @typedef {ReturnType<typeof batchLimits>} BatchLimits
 * @typedef {{ provider?: unknown, options?: unknown }} Header what precedes the requests of a body
 * @typedef {{ rateLimit?: Record<string, number>, concurrency?: number }} LimiterAsk a batch's own limiter options
 * @typedef {(text: string) => string} Redact
 * @typedef {ReturnType<import('./directory.js').BatchDirectory['list']>} Listing a page of the token's batch ids
 */

/** The limits of /v1/batches, from the vars. @param {any} env */
export function batchLimits(env) {
  return {
    maxRequests: intVar(env, 'EDGEBATCH_BATCH_MAX_REQUESTS', 100_000, 1, 10_000_000),
    maxBytes: intVar(env, 'EDGEBATCH_BATCH_MAX_BYTES', 256 * 1024 * 1024, 1024, 4 * 1024 * 1024 * 1024),
    maxRequestBytes: intVar(env, 'EDGEBATCH_BATCH_MAX_REQUEST_BYTES', 1024 * 1024, 256, 1536 * 1024),
    // A JSON body is parsed whole in the isolate's 128 MB: larger batches come as NDJSON.
    maxJsonBytes: intVar(env, 'EDGEBATCH_BATCH_MAX_JSON_BYTES', 32 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    ttlMs: intVar(env, 'EDGEBATCH_BATCH_TTL_MS', 24 * 3_600_000, 1_000, 7 * 24 * 3_600_000),
  };
}

/**
 * @param {Request} request
 * @param {URL} url
 * @param {string[]} parts the path after /v1/batches, split on '/'
 * @param {any} env
 * @param {Config} config
 * @param {string} owner who is asking (the token's name)
 * @param {Redact} redact
 * @param {import('./intake.js').Fixed} [fixed] a provider-format route's create (../anthropic/):
 *   the body's only fields and the provider/options it runs with (readBatch)
 * @returns {Promise<Response>}
 */
export async function handleBatches(request, url, parts, env, config, owner, redact, fixed) {
  if (!env.BATCHES || !env.LIMITER || !env.DIRECTORY) {
    throw new HttpError(501, 'not_implemented', 'this deployment has no BATCHES / LIMITER / DIRECTORY Durable Object bindings');
  }
  batchTimings(env); // a bad timing var is a 500 here, not a failing alarm later
  const directory = directoryOf(env, owner);
  if (parts.length === 0) {
    allow(request, ['GET', 'POST']);
    return request.method === 'POST'
      ? create(request, url, env, config, owner, directory, fixed)
      : list(url, env, owner, directory);
  }
  const [id, action, ...extra] = parts;
  const ledger = /^batch_[0-9a-f]{64}$/.test(id) && extra.length === 0 ? ledgerOf(env, id) : null;
  if (!ledger) throw notFound(id);
  if (action === undefined) {
    allow(request, ['GET', 'DELETE']);
    if (request.method === 'GET') return jsonResponse(200, found(await ledger.describe(owner), id));
    const gone = found(await ledger.remove(owner), id);
    if (gone.conflict) throw new HttpError(409, 'invalid_request_error', `batch ${id} is still in progress: cancel it and wait for it to end first`);
    await directory.remove(id);
    return jsonResponse(200, gone);
  }
  if (action === 'cancel') {
    allow(request, ['POST']);
    return jsonResponse(200, found(await ledger.cancel(owner), id));
  }
  if (action === 'results') {
    allow(request, ['GET']);
    return results(url, ledger, owner, id, redact);
  }
  throw notFound(id);
}

/**
 * @param {Request} request @param {URL} url @param {any} env @param {Config} config @param {string} owner
 * @param {any} directory the token's BatchDirectory stub
 * @param {import('./intake.js').Fixed} [fixed]
 * @returns {Promise<Response>}
 */
async function create(request, url, env, config, owner, directory, fixed) {
  const limits = batchLimits(env);
  const key = idempotencyKey(request);
  if (key !== undefined) {
    const held = await directory.reserve(key);
    if (held.pending) {
      throw new HttpError(409, 'invalid_request_error', `a create with Idempotency-Key ${JSON.stringify(key)} is under way ` +
        `(for ${Math.round(held.sinceMs / 1000)} s): retry later with the same key`);
    }
    if (held.id) return replay(request, key, held, limits.maxBytes, (id) => ledgerOf(env, id)?.start());
  }
  const body = key === undefined ? { request, digest: async () => undefined } : fingerprinted(request);
  /** @type {any} */
  let ledger = null;
  let meta = /** @type {BatchConfig | null} */ (null);
  /** @type {string | undefined} options.cacheTtl, set on the rows as they are stored */
  let cacheTtl;
  /** @param {Header} header */
  const begin = async (header) => {
    // Its id is set just below, before the ledger sees it.
    const made = await batchMeta(header, env, config, url.origin, owner, limits);
    meta = /** @type {BatchConfig} */ (made.meta);
    cacheTtl = made.cacheTtl;
    const doId = env.BATCHES.newUniqueId();
    meta.id = `batch_${doId.toString()}`;
    ledger = env.BATCHES.get(doId);
    await ledger.init(meta);
    return { provider: meta.provider.name, rules: { ...config.items, repeats: made.repeats } };
  };
  try {
    // The token must be able to send the batch before it expires (a 400 naming the limits).
    const intake = { ...limits, bodyTimeoutMs: config.bodyTimeoutMs, budget: ttlBudget(config.limits, limits.ttlMs) };
    await readBatch(body.request, intake, begin, (rows) => ledger.append(cacheTtl ? rows.map((r) => withCacheTtl(r, /** @type {string} */ (cacheTtl))) : rows), fixed);
  } catch (err) {
    await ledger?.discard().catch(() => {});
    if (key !== undefined) await directory.release(key).catch(() => {});
    // The ledger's own refusal (a duplicate across chunks) arrives as a plain Error.
    if (!(err instanceof HttpError) && /^duplicate custom_id/.test(/** @type {Error} */ (err)?.message ?? '')) {
      throw badRequest(/** @type {Error} */ (err).message);
    }
    throw err;
  }
  // Listed (and the key bound) before it starts: a retry finds it, whatever happens next.
  const made = /** @type {BatchConfig} */ (meta); // begin ran: readBatch calls it before any row
  await directory.add(made.id, made.createdAt, key, await body.digest());
  return jsonResponse(201, await ledger.start());
}

/** The header a provider-format route's create takes `options` from (its body is the API's own). */
export const OPTIONS_HEADER = 'edgebatch-options';

/**
 * A provider-format create's `options` (../anthropic/, ../openai/): the JSON object in its
 * `edgebatch-options` header, validated later as /v1/batches' `options` are, or undefined
 * without one. The official SDKs send it unchanged (a client's `defaultHeaders`, or a call's
 * `headers` option), e.g. `{"completionWindow":"24h","maxCostUsd":20}`.
 * @param {Request} request
 * @returns {Record<string, unknown> | undefined}
 */
export function headerOptions(request) {
  const raw = request.headers.get(OPTIONS_HEADER);
  if (raw === null) return undefined;
  let v;
  try {
    v = JSON.parse(raw);
  } catch {
    v = undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw badRequest(`the ${OPTIONS_HEADER} header must be a JSON object of /v1/batches options, like {"completionWindow":"24h"}; got ${JSON.stringify(raw.slice(0, 60))}`);
  }
  return v;
}

/**
 * Validates `{ provider?, options? }` into what the ledger keeps (never an API key).
 * @param {Header} header @param {any} env @param {Config} config @param {string} origin @param {string} owner
 * @param {BatchLimits} limits
 * @returns {Promise<{ meta: Omit<BatchConfig, 'id'>, repeats: Map<string, number> | undefined, cacheTtl: '1h' | undefined }>}
 *   `repeats`: models an item may not ask for (validate.js repeatedModels); `cacheTtl`: set on
 *   the requests' cache_control blocks as they are stored (cacheTtlOf)
 */
async function batchMeta(header, env, config, origin, owner, limits) {
  const rawProvider = header.provider;
  if (rawProvider && typeof rawProvider === 'object' && Object.hasOwn(rawProvider, 'apiKey')) {
    throw badRequest('provider.apiKey is not accepted by /v1/batches: a stored batch never holds a key (the Worker uses its own secret)');
  }
  const { provider, upstream, name, missingKey } = parseProvider(rawProvider, config, origin);
  const raw = /** @type {Record<string, unknown>} */ (header.options ?? {});
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw badRequest('options must be an object');
  const { fallbacks, rest } = splitFallbacks(raw);
  const alternatives = parseFallbacks(fallbacks.list, { provider, name }, config, origin, { clientKeys: false });
  const common = Object.fromEntries(Object.entries(/** @type {Record<string, unknown>} */ (rest)).filter(([k]) => !BATCH_OPTIONS.has(k)));
  const options = parseOptions(common, config);
  delete options.deadlineMs; // a batch ends at expires_at; each invocation has its own deadline
  /** @type {LimiterAsk} */
  const limiter = {};
  if (raw.rateLimit !== undefined) {
    const r = raw.rateLimit;
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw badRequest('options.rateLimit must be an object');
    limiter.rateLimit = {};
    for (const [k, v] of Object.entries(r)) {
      if (!RATE_FIELDS.includes(k)) throw badRequest(`options.rateLimit has unknown field ${JSON.stringify(k)} (allowed: ${RATE_FIELDS.join(', ')})`);
      limiter.rateLimit[k] = int(`options.rateLimit.${k}`, v, 1, 1e12);
    }
  }
  if (raw.limiterConcurrency !== undefined) limiter.concurrency = int('options.limiterConcurrency', raw.limiterConcurrency, 1, 1000);
  if (raw.limiterKey !== undefined && (typeof raw.limiterKey !== 'string' || !/^[\w.:-]{1,64}$/.test(raw.limiterKey))) {
    throw badRequest('options.limiterKey must be 1 to 64 characters of letters, digits, _ . : -');
  }
  // The account's limiter is every batch's on that key: no batch may set its limits.
  if (raw.limiterKey === undefined && Object.keys(limiter).length > 0) {
    throw badRequest('options.rateLimit and options.limiterConcurrency need options.limiterKey: they set a limiter of your own ' +
      '(the account\'s shared limiter takes its limits from the upstream\'s headers)');
  }
  // The provider's Batch API is called with the built-in upstream's key (provider-batch.js).
  const window = completionWindowOf(raw.completionWindow, name === 'anthropic' || upstream === 'sim' ? provider.name : name, limits.ttlMs,
    batchTimings(env).providerTurnaroundMs);
  const cap = maxCostOf(raw.maxCostUsd);
  if (raw.cacheAware !== undefined && typeof raw.cacheAware !== 'boolean') {
    throw badRequest(`options.cacheAware must be true or false, got ${JSON.stringify(raw.cacheAware)?.slice(0, 40)}`);
  }
  if (raw.cacheAware !== undefined) options.cacheAware = raw.cacheAware;
  // A warmed provider batch's requests run minutes to hours after its primer wrote the shared
  // prefix (Anthropic advises the 1-hour cache for batches): unless the batch names a lifetime,
  // its cache_control blocks without one get "1h" (one write at 2x instead of 1.25x, per group).
  const warmed = window.completionWindowMs !== undefined && warmsCache({ provider, options });
  const cacheTtl = raw.cacheTtl === undefined && warmed ? '1h' : cacheTtlOf(raw.cacheTtl, provider.name);
  // Request errors first; the Worker's missing key (a 500) only for a valid request.
  if (missingKey) throw missingKey;
  const missing = alternatives?.find((a) => a.missingKey);
  if (missing) throw missing.missingKey;
  const settings = await configureLimiter(env, { provider: provider.name, concurrency: DEFAULT_LIMITER_CONCURRENCY, ...limiter },
    await limiterName(provider, provider.apiKey, raw.limiterKey, owner), raw.limiterKey);
  if (alternatives) {
    options.fallbacks = await alternativeLimiters(env, alternatives, settings.name, owner);
    if (fallbacks.after !== undefined) options.fallbackAfterMs = fallbacks.after;
  }
  const createdAt = Date.now();
  const meta = {
    owner,
    provider: { name: provider.name, baseUrl: provider.baseUrl, ...(provider.version && { version: provider.version }), sim: upstream === 'sim',
      ...(name !== provider.name && { upstream: name }) },
    options,
    limiter: settings.settings,
    limiterKey: settings.name,
    createdAt,
    expiresAt: createdAt + limits.ttlMs,
    ...window,
    ...cap,
  };
  return { meta, repeats: repeatedModels(alternatives), cacheTtl };
}

/**
 * `options.cacheTtl`: the prompt cache's lifetime for the batch's `cache_control` blocks that
 * name none (Anthropic). "1h" keeps an entry for items served far apart (a window refilled
 * later, items given back, a provider batch after a realtime primer), where the 5-minute
 * default ("5m") would be written again; its writes cost 2x the input price instead of 1.25x
 * (the replies say `cache_creation.ephemeral_1h_input_tokens`, and the ledger prices them so).
 * @param {unknown} v @param {string} provider the API the batch speaks
 * @returns {'1h' | undefined} what to set on the requests (nothing for "5m")
 */
function cacheTtlOf(v, provider) {
  if (v === undefined) return undefined;
  if (v !== '5m' && v !== '1h') throw badRequest(`options.cacheTtl must be "5m" or "1h", got ${JSON.stringify(v)?.slice(0, 40)}`);
  if (provider !== 'anthropic') {
    throw badRequest(`options.cacheTtl applies to anthropic batches (prompt caching with cache_control); this batch's provider is ${provider}`);
  }
  return v === '1h' ? v : undefined;
}

/**
 * A stored row with `ttl` on each `cache_control` block of its request that names none: tools,
 * system blocks, message content blocks, and the top-level (automatic) one. A block's own ttl
 * is kept.
 * @param {import('./intake.js').Row} row @param {string} ttl
 * @returns {import('./intake.js').Row}
 */
function withCacheTtl(row, ttl) {
  const params = JSON.parse(row.params);
  /** @param {any} block */
  const mark = (block) => {
    const cc = block?.cache_control;
    if (cc && typeof cc === 'object' && !Array.isArray(cc) && cc.ttl === undefined) cc.ttl = ttl;
  };
  /** @param {unknown} list */
  const each = (list) => Array.isArray(list) && list.forEach(mark);
  each(params.tools);
  each(params.system);
  if (Array.isArray(params.messages)) params.messages.forEach((/** @type {any} */ m) => each(m?.content));
  mark(params);
  return { ...row, params: JSON.stringify(params) };
}

/**
 * `options.maxCostUsd`: the most the batch may spend, in dollars (the consumers pass what is
 * left of it to the library's cap, consumer.js; a provider batch takes the requests whose
 * bounds fit it, provider-batch.js #admit).
 * @param {unknown} v
 * @returns {{ maxCostUsd?: number }}
 */
function maxCostOf(v) {
  if (v === undefined) return {};
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > MAX_COST_USD) {
    throw badRequest(`options.maxCostUsd must be a number of dollars above 0 and at most ${MAX_COST_USD}, got ${JSON.stringify(v)?.slice(0, 40)}`);
  }
  return { maxCostUsd: v };
}

/**
 * What a stored batch keeps of its fallbacks (never a key: the consumer reads the upstream's
 * secret), each with the limiter that paces it: an alternative on another upstream is paced by
 * that upstream's account limiter, which every batch on it shares; one on the first choice's
 * upstream (another model) by a limiter of its own for that model (`<first's>/model/<model>`),
 * so that one model's overload, which opens its limiter's breaker, does not hold the other back.
 * @param {any} env @param {import('../validate.js').Alternative[]} alternatives
 * @param {string} firstLimiter the first choice's limiter name @param {string} owner
 */
async function alternativeLimiters(env, alternatives, firstLimiter, owner) {
  const out = [];
  for (const a of alternatives) {
    const p = a.provider;
    const name = a.sameUpstream ? `${firstLimiter}/model/${a.model}` : await limiterName(p, p.apiKey, undefined, owner);
    await configureLimiter(env, { provider: p.name, concurrency: DEFAULT_LIMITER_CONCURRENCY }, name, undefined);
    out.push({
      provider: { name: p.name, baseUrl: p.baseUrl, ...(p.version && { version: p.version }), sim: a.sim, upstream: a.name },
      ...(a.model !== undefined && { model: a.model }),
      ...(a.overrides && { overrides: a.overrides }),
      limiterKey: name,
    });
  }
  return out;
}

/**
 * `options.completionWindow`: by when the batch must be done, so it may go to the provider's
 * Batch API (provider-batch.js); absent, it runs realtime. It must fit the batch's TTL. A
 * window too short for the provider's expected turnaround (its part before the hand-back
 * cutoff) runs realtime too: kept as asked, without `completionWindowMs`.
 * @param {unknown} v @param {string} provider @param {number} ttlMs @param {number} turnaroundMs
 * @returns {{ completionWindow?: string, completionWindowMs?: number }}
 */
function completionWindowOf(v, provider, ttlMs, turnaroundMs) {
  if (v === undefined) return {};
  const ms = parseWindow(v);
  if (ms === null) {
    throw badRequest(`options.completionWindow must be a duration like "30m", "4h" or "24h" (a whole number of s, m or h), got ${JSON.stringify(v)?.slice(0, 40)}`);
  }
  if (!BATCH_PROVIDERS.includes(provider)) {
    throw badRequest(`options.completionWindow is supported for ${BATCH_PROVIDERS.join(' and ')} batches (this batch's provider is ${provider})`);
  }
  if (ms > ttlMs) {
    throw badRequest(`options.completionWindow ${v} is longer than a batch lives (${ttlMs} ms, EDGEBATCH_BATCH_TTL_MS): its requests would expire first`);
  }
  if (ms * (1 - HANDBACK_SHARE) < turnaroundMs) return { completionWindow: String(v) };
  return { completionWindow: String(v), completionWindowMs: ms };
}

/**
 * Stores the settings of the batch's limiter in it (durably, before the batch exists). A named
 * limiter keeps the settings it was first given: asking for others is a 409 naming them. The
 * account limiter's settings are the Worker's own and follow it.
 * @param {any} env
 * @param {Omit<LimiterSettings, 'leaseMs'>} asked
 * @param {string} name the limiter object's name
 * @param {string | undefined} key the client's limiterKey
 */
async function configureLimiter(env, asked, name, key) {
  // A permit lives as long as the lease of the invocation that holds it, at most.
  const settings = { ...asked, leaseMs: batchTimings(env).leaseMs };
  const answer = await env.LIMITER.get(env.LIMITER.idFromName(name)).configure(settings, { replace: key === undefined });
  if (answer.conflict) {
    throw new HttpError(409, 'invalid_request_error', `options.limiterKey ${JSON.stringify(key)} already names a limiter of this token ` +
      `with ${answer.conflict}; this batch asks for ${describeSettings(settings)}: send the same settings, or use another limiterKey`);
  }
  if (answer.invalid) throw badRequest(`options.rateLimit: ${answer.invalid}`);
  return { settings, name };
}

/**
 * @param {URL} url @param {any} env @param {string} owner @param {any} directory the token's BatchDirectory stub
 * @returns {Promise<Response>}
 */
async function list(url, env, owner, directory) {
  const limit = url.searchParams.has('limit') ? int('limit', Number(url.searchParams.get('limit')), 1, 100) : 20;
  const before = url.searchParams.get('before_id') ?? undefined;
  const { ids, hasMore, unknownBefore } = /** @type {Listing} */ (await directory.list(limit, before));
  if (unknownBefore) {
    throw badRequest(`before_id ${JSON.stringify(String(before).slice(0, 80))} is not a batch of this token (deleted, or never one): list again without it`);
  }
  const data = (await Promise.all(ids.map((id) => ledgerOf(env, id)?.describe(owner)))).filter(Boolean);
  return jsonResponse(200, { data, has_more: hasMore, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
}

/**
 * @param {URL} url @param {any} ledger the batch's stub @param {string} owner @param {string} id @param {Redact} redact
 * @returns {Promise<Response>}
 */
function results(url, ledger, owner, id, redact) {
  const raw = url.searchParams.get('after');
  const after = raw === null ? 0 : Number(raw);
  if (!Number.isInteger(after) || after < 0) throw badRequest(`after must be a non-negative integer (a result's edgebatch.seq), got ${JSON.stringify(raw)}`);
  return (async () => {
    const first = found(await ledger.results(owner, after, RESULTS_PAGE), id);
    const enc = new TextEncoder();
    let page = first;
    let cursor = after;
    const body = new ReadableStream({
      async pull(controller) {
        if (!page) {
          page = await ledger.results(owner, cursor, RESULTS_PAGE);
          if (!page) return controller.close();
        }
        const { rows, more } = page;
        page = null;
        if (rows.length === 0) return controller.close();
        cursor = rows.at(-1).seq;
        controller.enqueue(enc.encode(rows.map((/** @type {{ line: string }} */ r) => `${redact(r.line)}\n`).join('')));
        // A page ends at a row or a byte bound (more) or at the last result so far.
        if (!more) page = { rows: [] };
      },
    });
    return new Response(body, {
      status: 200,
      headers: {
        'content-type': 'application/x-ndjson; charset=utf-8',
        'cache-control': 'no-store',
        'edgebatch-batch-ended': String(first.ended),
      },
    });
  })();
}

// ---- for the provider-format routes (../anthropic/): the same engine, other shapes ----

/** The BatchDirectory stub of a token: its batch ids, newest first. @param {any} env @param {string} owner */
export function directoryOf(env, owner) {
  return env.DIRECTORY.get(env.DIRECTORY.idFromName(`owner:${owner}`));
}

/**
 * The views of `ids` (batches of `owner`, as GET /v1/batches/:id shows them), in that order;
 * one that is gone is left out. @param {any} env @param {string} owner @param {string[]} ids
 * @returns {Promise<any[]>}
 */
export async function viewsOf(env, owner, ids) {
  return (await Promise.all(ids.map((id) => ledgerOf(env, id)?.describe(owner)))).filter(Boolean);
}

/**
 * Permits for realtime calls from the account limiter of `provider`: the one limiter every
 * stored batch on that upstream account (no limiterKey) uses, with the settings a batch would
 * give it; realtime calls go first, batches keep a minimum share (limiter.js BATCH_MIN_SHARE).
 * `owner` takes turns with the other realtime owners. The settings are sent once per isolate.
 * @param {any} env
 * @param {{ name: string, baseUrl: string, apiKey?: string }} provider
 * @param {string} owner who asks (the limiter's turns are per owner)
 * @param {() => number} maxWaitMs the longest wait to hold for, asked at each acquire
 */
export async function accountPermits(env, provider, owner, maxWaitMs) {
  const name = await limiterName(provider, provider.apiKey, undefined, owner);
  const asked = { provider: provider.name, concurrency: DEFAULT_LIMITER_CONCURRENCY };
  const key = `${name}\n${batchTimings(env).leaseMs}`;
  if (!configuredLimiters.has(key)) {
    await configureLimiter(env, asked, name, undefined);
    configuredLimiters.add(key);
  }
  return remotePermits(env.LIMITER.get(env.LIMITER.idFromName(name)), owner, maxWaitMs, 'realtime');
}

/** Account limiters this isolate has configured (their settings are durable in the object). */
const configuredLimiters = new Set();

/**
 * `value`, or a 404 for batch `id` when there is none.
 * @template T
 * @param {T} value @param {string} id
 * @returns {NonNullable<T>}
 */
function found(value, id) {
  if (value === null || value === undefined) throw notFound(id);
  return value;
}

/** @param {string} id */
function notFound(id) {
  const shown = String(id).length > 80 ? `${String(id).slice(0, 80)}…` : id;
  return new HttpError(404, 'not_found_error', `no batch ${shown}`);
}
