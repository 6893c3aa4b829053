// @ts-check
// The queue consumer of /v1/batches. The messages of one batch in a delivery form a group, and
// each group is worked on its own: claim (a lease from the batch's ledger) -> reserve (the
// token's hourly budget) -> run (one BatchProcessor, at most 6 attempts in flight: the Workers
// connection cap, each attempt asking the shared limiter for a permit) -> settle (commit, give
// back what could not run, release budgets). A group that fails is retried alone
// (`msg.retry`); the others are acked. The whole delivery shares one wall-time budget.
// Delivery is at least once: a duplicate message claims nothing; a consumer that dies leaves
// leases the ledger's alarm takes back.
import * as edgebatch from '../../pkg/edgebatch.js';
import { batchTimings, readConfig, upstreamsOf } from '../config.js';
import { ownerActive, redactor } from '../auth.js';
import { billed, requestBound, tokenLimits } from '../token-limits.js';
import { remotePermits, routedPermits } from './permits.js';
import { enqueueItems } from './queues.js';

/** Results committed per ledger call (fewer Durable Object requests than one per item). */
const COMMIT_EVERY = 10;
/** Time kept back from the lease for committing and giving back what is left. */
const leaseMargin = (/** @type {number} */ leaseMs) => Math.min(20_000, Math.floor(leaseMs / 4));
/** A group with less wall time left than this is sent again for a later invocation. */
const minGroupMs = (/** @type {number} */ wallMs) => Math.min(5_000, Math.floor(wallMs / 10));
/** Error kinds that are this invocation's limits, not the item's fate: the item goes back. */
const GIVE_BACK = new Set(['aborted', 'deadline', 'budget', 'deferred']);

/**
 * @typedef {import('../config.js').BatchTimings} Timings
 * @typedef {{ wallEnd: number, subrequests: number }} Budget what is left of the delivery's
 * @typedef {{ index: number, token: number, params: string, attempts: number, charged?: boolean }} Claimed
 * @typedef {{ name: 'anthropic' | 'openai', baseUrl: string, version?: string, sim?: boolean, upstream?: string }} StoredProvider
 *   `upstream`: the Worker's upstream (config.js), when not the API's built-in one
 * @typedef {{ id: string, provider: StoredProvider, options: Record<string, any>, limiterKey: string, owner: string }} BatchInfo
 * @typedef {{ index: number, token: number, attempts: number, charged: boolean, restOnly?: boolean }} GivenBack
 * @typedef {{ batch: BatchInfo, ledger: any, items: Claimed[], apiKey: string, fallbackKeys: string[],
 *   spend: { lease: string, subrequests: number }, owner: any, maxAttempts: number, cost?: { hold: string, leftUsd: number, slice?: true },
 *   holds: Map<number, number> }} Job
 *   `cost`: this run's grant of the batch's maxCostUsd, a slice or the whole rest (ledger.js CostGrant);
 *   `holds`: by index, what the token's dollars per hour hold for the items still running
 * @typedef {{ givenBack: GivenBack[], untilMs: number, reason: 'limiter' | 'upstream_429',
 *   used: { attempts: number, requests: number, inputTokens: number, outputTokens: number, usdPico: number },
 *   permits: ReturnType<typeof routedPermits> | null, upstreams: string[] }} Run `upstreams`: by alternative
 */

/**
 * The ledger of a batch id, or null when the id is not one this namespace made.
 * @param {any} env @param {string} batchId
 */
export function ledgerOf(env, batchId) {
  let id;
  try {
    id = env.BATCHES.idFromString(batchId.slice('batch_'.length));
  } catch {
    return null;
  }
  return env.BATCHES.get(id);
}

/**
 * The queue handler: work messages, and dead-lettered ones (their items fail as `delivery`).
 * @param {{ queue: string, messages: any[] }} delivery
 * @param {any} env
 * @param {string[]} secrets
 */
export async function consume(delivery, env, secrets) {
  const t = batchTimings(env);
  /** @type {Budget} the whole delivery's: its groups share it */
  const budget = { wallEnd: Date.now() + t.wallMs, subrequests: t.subrequestBudget };
  const redact = redactor(secrets);
  /** @type {Map<string, { indexes: number[], messages: any[] }>} */
  const groups = new Map();
  for (const msg of delivery.messages) {
    const { batchId, indexes } = msg.body ?? {};
    const ledger = typeof batchId === 'string' && Array.isArray(indexes) ? ledgerOf(env, batchId) : null;
    if (!ledger) {
      msg.ack();
    } else if (delivery.queue === t.dlqName) {
      await settleMessages([msg], redact, t, () => ledger.failDelivery(indexes, `delivery failed ${msg.attempts} times`));
    } else {
      const g = groups.get(batchId) ?? { indexes: [], messages: [] };
      groups.set(batchId, g);
      g.indexes.push(...indexes.filter(Number.isInteger));
      g.messages.push(msg);
    }
  }
  for (const [batchId, g] of groups) {
    const spent = budget.wallEnd - Date.now() < minGroupMs(t.wallMs) || attemptBudget(budget, g.indexes.length) < 1;
    await settleMessages(g.messages, redact, t, () => (spent
      ? enqueueItems(env, batchId, g.indexes)
      : work(env, t, batchId, g.indexes, redact, budget)));
  }
}

/**
 * Runs `fn` for `messages`: acked when it succeeds, each retried after a delay when it throws.
 * @param {any[]} messages @param {(s: string) => string} redact @param {Timings} t
 * @param {() => Promise<unknown>} fn
 */
async function settleMessages(messages, redact, t, fn) {
  try {
    await fn();
    for (const msg of messages) msg.ack();
  } catch (err) {
    console.error(`edgebatch consumer: a message group failed, retried in ${t.retryDelaySeconds} s: ${redact(String(/** @type {any} */ (err)?.message ?? err))}`);
    for (const msg of messages) msg.retry({ delaySeconds: t.retryDelaySeconds });
  }
}

/**
 * One group: claim -> reserve -> run -> settle.
 * @param {any} env @param {Timings} t @param {string} batchId @param {number[]} indexes
 * @param {(s: string) => string} redact @param {Budget} budget
 */
async function work(env, t, batchId, indexes, redact, budget) {
  const ledger = ledgerOf(env, batchId);
  const { batch, items, cost } = await ledger.claim(indexes, t.leaseMs);
  if (!batch || items.length === 0) return;
  if (cost && 'busyUntil' in cost) {
    // Other runs hold what these would need of the batch's maxCostUsd: they wait a little.
    const back = items.map((/** @type {Claimed} */ it) => ({ index: it.index, token: it.token, attempts: 0, charged: Boolean(it.charged) }));
    await giveBack(env, ledger, batchId, back, Date.now() + t.deferMs, 'cost_hold');
    return;
  }
  const deadline = Math.min(Date.now() + t.leaseMs - leaseMargin(t.leaseMs), budget.wallEnd);
  const job = await reserve(env, t, ledger, batch, items, budget);
  if (!job) {
    if (cost) await ledger.releaseCost(cost.hold);
    return;
  }
  if (cost) job.cost = cost;
  /** @type {Run} */
  const run = { givenBack: [], untilMs: 0, reason: 'limiter', used: { attempts: 0, requests: 0, inputTokens: 0, outputTokens: 0, usdPico: 0 },
    permits: null, upstreams: [] };
  try {
    await runItems(env, t, job, run, redact, deadline);
  } finally {
    await settle(env, job, run);
    if (job.cost) await ledger.releaseCost(job.cost.hold);
    const limiterCalls = run.permits ? run.permits.counts.acquires + run.permits.counts.releaseCalls : 0;
    budget.subrequests -= run.used.attempts + limiterCalls + overheadOf(job.items.length);
  }
}

/**
 * The token's hourly budgets (items, subrequests) pace a stored batch as they do /v1/batch. An
 * item is charged once (`charged`), however often it is given back and claimed again; what
 * does not fit the hour goes back. A revoked token's batch is canceled. Null when nothing may
 * run now (the items were committed, given back or canceled).
 * @param {any} env @param {Timings} t @param {any} ledger @param {BatchInfo} batch @param {Claimed[]} claimed
 * @param {Budget} budget
 * @returns {Promise<Job | null>}
 */
async function reserve(env, t, ledger, batch, claimed, budget) {
  const entries = (/** @type {Claimed[]} */ list) => list.map((it) => ({ index: it.index, token: it.token, attempts: 0, charged: Boolean(it.charged) }));
  // The first choice's key, then each fallback's (options.fallbacks, as routes.js stored them).
  const keys = [batch.provider, ...(batch.options.fallbacks ?? []).map((/** @type {any} */ f) => f.provider)].map((p) => keyOf(env, p));
  const [apiKey, ...fallbackKeys] = /** @type {string[]} */ (keys); // none missing past the check below
  const missing = keys.findIndex((k) => !k);
  if (missing !== -1) {
    const p = missing === 0 ? batch.provider : batch.options.fallbacks[missing - 1].provider;
    const error = { kind: 'configuration', message: `no API key for ${p.upstream ?? p.name} on the Worker`, retryable: false };
    await ledger.commit(claimed.map((it) => ({ index: it.index, token: it.token, result: { type: 'errored', error }, attempts: 0, elapsedMs: 0 })));
    return null;
  }
  if (!(await ownerStillActive(env, t, ledger, batch, entries(claimed)))) return null;
  // Already charged first: they run before anything new is charged.
  let items = [...claimed].sort((a, b) => Number(Boolean(b.charged)) - Number(Boolean(a.charged)));
  // With EDGEBATCH_USD_PER_HOUR, each item's hold (token-limits.js requestBound); one that can
  // never fit the token's hour (an unpriced model, or more than the hour's dollars) ends here.
  const bounds = await dollarBounds(env, ledger, items);
  items = items.filter((it) => bounds.has(it.index));
  if (items.length === 0) return null;
  const owner = tokenLimits(env, batch.owner);
  const spend = await owner.acquirePart({ items: items.length, uncharged: items.filter((it) => !it.charged).length,
    subrequests: Math.max(items.length, attemptBudget(budget, items.length)), leaseMs: t.leaseMs,
    usdPico: readConfig(env).limits.usdPerHour === null ? [] : items.map((it) => /** @type {number} */ (bounds.get(it.index))) });
  if (!spend.ok) {
    await giveBack(env, ledger, batch.id, entries(items), Date.now() + spend.retryAfterMs, 'token_budget');
    return null;
  }
  if (spend.items < items.length) {
    await giveBack(env, ledger, batch.id, entries(items.slice(spend.items)), Date.now() + Math.max(t.deferMs, spend.restAfterMs), 'token_budget');
  }
  const granted = items.slice(0, spend.items);
  const holds = new Map(granted.map((it) => [it.index, /** @type {number} */ (bounds.get(it.index))]));
  return { batch, ledger, items: granted, apiKey, fallbackKeys, spend, owner, holds,
    maxAttempts: Math.max(1, Math.min(spend.subrequests, attemptBudget(budget, granted.length))) };
}

/**
 * The claimed items' dollar holds by index (0 each without EDGEBATCH_USD_PER_HOUR). An item
 * that can never fit the token's dollars per hour is committed `errored` (kind `cost_cap`,
 * naming why) and left out: waiting would never run it.
 * @param {any} env @param {any} ledger @param {Claimed[]} items
 * @returns {Promise<Map<number, number>>}
 */
async function dollarBounds(env, ledger, items) {
  const { limits } = readConfig(env);
  if (limits.usdPerHour === null) return new Map(items.map((it) => [it.index, 0]));
  /** @type {Map<number, number>} */
  const bounds = new Map();
  const never = [];
  for (const it of items) {
    let message;
    try {
      const b = requestBound(limits, JSON.parse(it.params), { json: it.params }) ?? 0;
      if (b <= Math.round(limits.usdPerHour * 1e12)) bounds.set(it.index, b);
      else message = `the request can cost up to $${Number((b / 1e12).toFixed(6))}, more than its token may spend in an hour ($${limits.usdPerHour}, EDGEBATCH_USD_PER_HOUR)`;
    } catch (err) {
      message = String(/** @type {any} */ (err)?.message ?? err);
    }
    if (message !== undefined) {
      never.push({ index: it.index, token: it.token, result: { type: 'errored', error: { kind: 'cost_cap', message, retryable: false } }, attempts: 0, elapsedMs: 0 });
    }
  }
  if (never.length > 0) await ledger.commit(never);
  return bounds;
}

/**
 * False when the batch's token was revoked: the batch is canceled, its claimed items with it.
 * A malformed token list says nothing about the owner: the items go back, the delivery retries.
 * @param {any} env @param {Timings} t @param {any} ledger @param {BatchInfo} batch @param {GivenBack[]} entries
 */
async function ownerStillActive(env, t, ledger, batch, entries) {
  let active;
  try {
    active = ownerActive(env, batch.owner);
  } catch (err) {
    await ledger.unclaim(entries, Date.now() + t.retryDelaySeconds * 1000, 'token_budget');
    throw err;
  }
  if (active) return true;
  await ledger.cancel(batch.owner);
  await ledger.unclaim(entries, Date.now(), 'token_budget');
  return false;
}

/**
 * Runs the claimed items and commits their results as they come, keeping in `run` what must
 * go back and what was used.
 * @param {any} env @param {Timings} t @param {Job} job @param {Run} run
 * @param {(s: string) => string} redact @param {number} deadline
 */
async function runItems(env, t, job, run, redact, deadline) {
  const { batch, items, ledger } = job;
  const { fallbacks = [], ...options } = batch.options;
  // A wait for a permit holds a local slot but no attempt timeout: up to deferMs, and never
  // past this invocation's deadline; a longer one gives the items back for later. Each
  // alternative (options.fallbacks) asks its own limiter.
  const maxWait = () => Math.min(t.deferMs, deadline - Date.now());
  const sources = [batch.limiterKey, ...fallbacks.map((/** @type {any} */ f) => f.limiterKey)]
    .map((name) => remotePermits(env.LIMITER.get(env.LIMITER.idFromName(name)), batch.id, maxWait));
  const permits = routedPermits(sources);
  run.permits = permits;
  run.upstreams = [batch.provider, ...fallbacks.map((/** @type {any} */ f) => f.provider)].map((p) => p.upstream ?? p.name);
  const bp = new edgebatch.BatchProcessor({
    ...options,
    provider: providerOf(batch.provider, job.apiKey),
    ...(fallbacks.length > 0 && {
      fallbacks: fallbacks.map((/** @type {any} */ f, /** @type {number} */ k) => ({
        provider: providerOf(f.provider, job.fallbackKeys[k]),
        ...(f.model !== undefined && { model: f.model }),
        ...(f.overrides && { overrides: f.overrides }),
      })),
    }),
    // The shared limiters pace and break for every consumer; locally: retries and timeouts.
    adaptive: false,
    breaker: { failures: 0 },
    deadlineMs: Math.max(1, deadline - Date.now()),
    maxAttempts: job.maxAttempts,
  });
  /** @type {object[]} */
  const pending = [];
  try {
    // With maxCostUsd, the library's cap over what is left of it: no attempt starts that could pass it.
    const call = { permits, ...(job.cost && { maxCostUsd: job.cost.leftUsd }) };
    for await (const r of bp.stream(items.map((it) => JSON.parse(it.params)), call)) {
      const entry = outcomeOf(r, items[r.index], job, run, redact);
      if (entry) pending.push(entry);
      if (pending.length >= COMMIT_EVERY) await ledger.commit(pending.splice(0), job.cost?.hold);
    }
    if (pending.length > 0) await ledger.commit(pending.splice(0), job.cost?.hold);
  } finally {
    bp.free();
  }
}

/**
 * What one item's result means: a ledger commit, or (returning null) a give-back in `run`.
 * @param {any} r an ItemResult of a provider request @param {Claimed} it @param {Job} job @param {Run} run
 * @param {(s: string) => string} redact
 */
function outcomeOf(r, it, job, run, redact) {
  run.used.attempts += r.attempts;
  run.used.usdPico += billed(r, job.holds.get(it.index) ?? 0);
  job.holds.delete(it.index);
  if (r.ok) {
    const usage = r.value.usage;
    run.used.requests += 1;
    run.used.inputTokens += usage?.inputTokens ?? 0;
    run.used.outputTokens += usage?.outputTokens ?? 0;
    return { index: it.index, token: it.token, result: { type: 'succeeded', message: r.value.reply, ...servedBy(r, run) }, attempts: r.attempts,
      elapsedMs: r.elapsedMs, ...(usage && { usage: { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens } }),
      ...(typeof r.usd === 'number' && { usd: r.usd }) };
  }
  if (GIVE_BACK.has(r.error.kind)) {
    run.givenBack.push({ index: it.index, token: it.token, attempts: r.attempts, charged: true });
    const until = r.error.retryAfterMs ? Date.now() + r.error.retryAfterMs : 0;
    if (until > run.untilMs) {
      run.untilMs = until;
      run.reason = r.error.status === 429 ? 'upstream_429' : 'limiter';
    }
    return null;
  }
  if (r.error.kind === 'cost_cap' && job.cost?.slice) {
    // Never started, for want of room in this run's slice, not in the batch's cap: back to the
    // queue, to run on the whole rest (ledger-sql.js grantCost).
    run.givenBack.push({ index: it.index, token: it.token, attempts: r.attempts, charged: true, restOnly: true });
    return null;
  }
  const error = JSON.parse(redact(JSON.stringify(errorOf(r.error))));
  // Never started: the batch's maxCostUsd ends it canceled, with the cap's reason (ledger.js).
  if (r.error.kind === 'cost_cap') return { index: it.index, token: it.token, result: { type: 'canceled', error }, attempts: r.attempts, elapsedMs: 0 };
  return { index: it.index, token: it.token, result: { type: 'errored', error, ...servedBy(r, run) }, attempts: r.attempts, elapsedMs: r.elapsedMs };
}

/**
 * Releases what is left of the permits and of the token's budget, and gives back what could
 * not run, not before the limiter's (or the upstream's) time.
 * @param {any} env @param {Job} job @param {Run} run
 */
async function settle(env, job, run) {
  await run.permits?.flush();
  const { used } = run;
  // Items with no result (the run broke off) may have been billed: their holds stay.
  let usdPico = used.usdPico;
  for (const hold of job.holds.values()) usdPico += hold;
  await job.owner.release(job.spend.lease, { subrequests: used.attempts, requests: used.requests, inputTokens: used.inputTokens,
    outputTokens: used.outputTokens, usdPico }).catch(() => {});
  if (run.givenBack.length === 0) return;
  const limiterUntil = run.permits?.deferred?.untilMs ?? 0;
  const [untilMs, reason] = limiterUntil >= run.untilMs ? [limiterUntil, /** @type {const} */ ('limiter')] : [run.untilMs, run.reason];
  // Items given back for this invocation's own limits (its deadline, its subrequests) do not
  // wait for anything: the batch shows no waiting reason for them.
  const now = Date.now();
  await giveBack(env, job.ledger, job.batch.id, run.givenBack, Math.max(untilMs, now), untilMs > now ? reason : undefined);
}

/**
 * Items back to the ledger, and a delayed message for them: rather than msg.retry(), since
 * retries count toward the dead-letter queue, and waiting for a budget is not a failed delivery.
 * @param {any} env @param {any} ledger @param {string} batchId @param {GivenBack[]} entries
 * @param {number} notBefore @param {'token_budget' | 'limiter' | 'upstream_429' | 'cost_hold' | undefined} reason
 *   what they wait for (undefined: nothing)
 */
async function giveBack(env, ledger, batchId, entries, notBefore, reason) {
  await ledger.unclaim(entries, notBefore, reason);
  await enqueueItems(env, batchId, entries.map((e) => e.index), Math.ceil(Math.max(0, notBefore - Date.now()) / 1000));
}

/**
 * Attempts a group of `items` may make with what is left of the delivery's subrequests: each
 * attempt is one, and so is (about) its limiter call; the group's ledger and token calls are
 * kept aside. Below 1: nothing may start.
 * @param {Budget} budget @param {number} items
 */
function attemptBudget(budget, items) {
  return Math.floor((budget.subrequests - overheadOf(items)) / 2);
}

/** Subrequests of a group besides its attempts: claim, budget, commits, give-back, releases. @param {number} items */
function overheadOf(items) {
  return 8 + Math.ceil(items / COMMIT_EVERY);
}

/**
 * The Worker's key for a stored provider (the first choice or a fallback): its upstream's
 * secret (config.js upstreamsOf), a placeholder for the simulator; undefined when the Worker
 * has none (or the upstream is no longer configured).
 * @param {any} env @param {StoredProvider} p
 * @returns {string | undefined}
 */
function keyOf(env, p) {
  if (p.sim) return 'sim-key';
  const upstreams = upstreamsOf(env);
  const name = p.upstream ?? p.name;
  return Object.hasOwn(upstreams, name) ? env[upstreams[name].keyVar] || undefined : undefined;
}

/**
 * With fallbacks: `servedBy: { provider, model, alternative, upstream }` (which upstream answered).
 * @param {any} r @param {Run} run
 */
function servedBy(r, run) {
  if (!r.servedBy) return {};
  return { servedBy: { ...r.servedBy, upstream: run.upstreams[r.servedBy.alternative] } };
}

/** The processor's provider: the batch's upstream with the Worker's key. @param {BatchInfo['provider']} p @param {string} apiKey */
function providerOf(p, apiKey) {
  return { name: p.name, baseUrl: p.baseUrl, apiKey, ...(p.version && { version: p.version }) };
}

/** @param {any} e */
function errorOf(e) {
  return {
    kind: e.kind,
    ...(e.status !== undefined && { status: e.status }),
    ...(e.type !== undefined && { type: e.type }),
    message: e.message,
    retryable: e.retryable,
  };
}
