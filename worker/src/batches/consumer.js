// The queue consumer of /v1/batches. Per message `{ batchId, indexes }`: claim the items from
// the batch's ledger (a lease), run them with one BatchProcessor (at most 6 attempts in flight:
// the Workers connection cap, enforced here since `wrangler dev` does not), asking the
// account's limiter before every attempt and telling it every outcome, commit each result with
// its lease token, then ack. Delivery is at least once: a duplicate message claims nothing; a
// consumer that dies leaves leases the ledger's alarm takes back.
import * as edgebatch from '../../pkg/edgebatch.js';
import { UPSTREAMS } from '../config.js';
import { redactor } from '../auth.js';
import { tokenLimits } from '../token-limits.js';
import { crashNow, failAlways } from './chaos.js';
import { batchTimings, enqueueItems } from './queues.js';

/** Results committed per ledger call (fewer Durable Object requests than one per item). */
const COMMIT_EVERY = 10;
/** Time kept back from the lease for committing and giving back what is left. */
const leaseMargin = (leaseMs) => Math.min(20_000, Math.floor(leaseMs / 4));
/** Error kinds that are this invocation's limits, not the item's fate: the item goes back. */
const GIVE_BACK = new Set(['aborted', 'deadline', 'budget']);

/** The ledger of a batch id, or null when the id is not one this namespace made. */
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
 * The messages of one batch in a delivery run together, on one processor: with several
 * messages a delivery, the tail of one (its slowest items) overlaps the next's start.
 */
export async function consume(batch, env, secrets) {
  const dead = batch.queue === (env.EDGEBATCH_DLQ_NAME || 'edgebatch-dlq');
  const groups = new Map();
  for (const msg of batch.messages) {
    const { batchId, indexes } = msg.body ?? {};
    const ledger = typeof batchId === 'string' && Array.isArray(indexes) ? ledgerOf(env, batchId) : null;
    if (!ledger) {
      msg.ack();
      continue;
    }
    if (dead) {
      await ledger.failDelivery(indexes, `delivery failed ${msg.attempts} times`);
      msg.ack();
      continue;
    }
    if (!groups.has(batchId)) groups.set(batchId, { indexes: [], messages: [] });
    const g = groups.get(batchId);
    g.indexes.push(...indexes.filter(Number.isInteger));
    g.messages.push(msg);
  }
  for (const [batchId, g] of groups) {
    if (failAlways(env)) throw new Error('chaos: this consumer fails every message');
    await work(env, batchId, g.indexes, redactor(secrets));
    for (const msg of g.messages) msg.ack();
  }
}

async function work(env, batchId, indexes, redact) {
  const t = batchTimings(env);
  const ledger = ledgerOf(env, batchId);
  const { batch, items } = await ledger.claim(indexes, t.leaseMs);
  if (!batch || items.length === 0) return;
  const provider = batch.provider;
  const apiKey = provider.sim ? 'sim-key' : env[UPSTREAMS[provider.name]?.keyVar];
  if (!apiKey) {
    const error = { kind: 'configuration', message: `no API key for ${provider.name} on the Worker`, retryable: false };
    await ledger.commit(items.map((it) => ({ ...it, result: { type: 'errored', error }, attempts: 0, elapsedMs: 0 })));
    return;
  }
  // The token's hourly budgets (items, subrequests) pace a stored batch as they do /v1/batch:
  // a leaked token costs no more an hour here than there.
  const options = batch.options ?? {};
  const owner = tokenLimits(env, batch.owner);
  const perItem = (options.maxRetries ?? 4) + 1;
  const spend = await owner.acquire({ batches: 0, items: items.length, subrequests: items.length * perItem, leaseMs: t.leaseMs });
  if (!spend.ok) {
    const waitMs = spend.retryAfterMs ?? 60_000;
    await ledger.unclaim(items.map((it) => ({ index: it.index, token: it.token, attempts: 0 })), Date.now() + waitMs);
    await enqueueItems(env, batchId, items.map((it) => it.index), Math.ceil(waitMs / 1000));
    return;
  }
  const limiter = env.LIMITER.get(env.LIMITER.idFromName(batch.limiterKey));
  const limiterConfig = { provider: provider.name, ...batch.limiter };
  const endpoint = edgebatch.Limiter.request({ name: provider.name, baseUrl: provider.baseUrl, version: provider.version, apiKey });
  const stop = new AbortController();
  const releases = [];
  let deferMs = 0;
  const waitCap = Math.min(t.deferMs, Math.floor((options.timeoutMs ?? 60_000) / 3));

  const attempt = async (item, { signal }) => {
    let id;
    for (;;) {
      const g = await limiter.acquire(limiterConfig, batch.id, item.cost);
      if (g.id !== undefined) {
        id = g.id;
        break;
      }
      if (g.never !== undefined) {
        throw Object.assign(new Error(`refused by the rate limiter: ${g.never}`), { retryable: false });
      }
      if (g.waitMs > waitCap) {
        // Not worth sleeping in the invocation: give everything left back, try again later.
        deferMs = Math.max(deferMs, g.waitMs);
        stop.abort(new Error('deferred: the limiter asked to wait'));
      }
      await sleep(g.waitMs, signal);
    }
    const release = (outcome) => releases.push(limiter.release(id, outcome).catch(() => false));
    let res;
    let text;
    try {
      res = await fetch(endpoint.url, { method: 'POST', headers: endpoint.headers, body: item.params, signal, redirect: 'manual' });
      text = await res.text();
    } catch (err) {
      release(stop.signal.aborted ? { abandoned: true } : { ok: false, kind: signal.aborted ? 'timeout' : 'network' });
      throw err;
    }
    const headers = Object.fromEntries(res.headers);
    const body = parse(text);
    if (res.status >= 200 && res.status < 300 && body !== undefined) {
      const usage = edgebatch.Limiter.usage(provider.name, body);
      release({ ok: true, usage, headers });
      return { message: body, usage };
    }
    if (res.status >= 200 && res.status < 300) {
      release({ ok: false, kind: 'network' });
      throw Object.assign(new Error('the reply is not JSON'), { retryable: true });
    }
    release({ ok: false, status: res.status, headers, error: body });
    if (res.status >= 300 && res.status < 400) {
      const host = hostOf(res.headers.get('location'));
      throw Object.assign(new Error(`the upstream redirected (${res.status}) to ${host}; redirects are not followed`),
        { status: res.status, retryable: false });
    }
    throw Object.assign(new Error(errorMessage(body, text, res.status)), { status: res.status, headers: res.headers, error: body });
  };

  const work = items.map((it) => ({ ...it, cost: edgebatch.Limiter.estimate(provider.name, parse(it.params) ?? {}) }));
  const bp = new edgebatch.BatchProcessor({
    concurrency: Math.min(options.concurrency ?? 6, 6),
    ...pick(options, ['maxRetries', 'timeoutMs', 'backoff', 'maxRetryAfterMs', 'seed']),
    // The shared limiter paces and breaks for every consumer; locally: retries and timeouts.
    adaptive: false,
    breaker: { failures: 0 },
    deadlineMs: t.leaseMs - leaseMargin(t.leaseMs),
    // Each attempt is a subrequest, and so are the limiter's two calls around it; and no more
    // than the token's hour granted.
    maxAttempts: Math.min(spend.subrequests, Math.max(work.length, Math.floor(subrequestBudget(env) / 3))),
  });
  const pending = [];
  const givenBack = [];
  const used = { attempts: 0, requests: 0, inputTokens: 0, outputTokens: 0 };
  const flush = async () => {
    const chunk = pending.splice(0);
    if (chunk.length > 0) await ledger.commit(chunk);
  };
  try {
    for await (const r of bp.stream(work, attempt, { signal: stop.signal })) {
      const it = work[r.index];
      used.attempts += r.attempts;
      if (r.ok) {
        used.requests += 1;
        used.inputTokens += r.value.usage?.inputTokens ?? 0;
        used.outputTokens += r.value.usage?.outputTokens ?? 0;
      }
      if (crashNow(env)) throw new Error('chaos: the consumer crashes before committing');
      if (!r.ok && GIVE_BACK.has(r.error.kind)) {
        givenBack.push({ index: it.index, token: it.token, attempts: r.attempts });
        if (r.error.retryAfterMs) deferMs = Math.max(deferMs, r.error.retryAfterMs);
        continue;
      }
      const result = r.ok
        ? { type: 'succeeded', message: r.value.message }
        : { type: 'errored', error: JSON.parse(redact(JSON.stringify(errorOf(r.error)))) };
      const usage = r.ok ? r.value.usage : undefined;
      pending.push({ index: it.index, token: it.token, result, attempts: r.attempts, elapsedMs: r.elapsedMs, ...(usage && { usage }) });
      if (pending.length >= COMMIT_EVERY) await flush();
    }
    await flush();
  } finally {
    bp.free();
    await Promise.all(releases);
    await owner.release(spend.lease, { subrequests: used.attempts, requests: used.requests, inputTokens: used.inputTokens, outputTokens: used.outputTokens })
      .catch(() => {});
  }
  if (givenBack.length > 0) {
    const notBefore = Date.now() + deferMs;
    await ledger.unclaim(givenBack, notBefore);
    // A new delayed message rather than msg.retry(): retries count toward the dead-letter
    // queue, and waiting for a rate limit is not a failed delivery.
    await enqueueItems(env, batchId, givenBack.map((g) => g.index), Math.ceil(deferMs / 1000));
  }
}

function subrequestBudget(env) {
  const n = Number(env.EDGEBATCH_SUBREQUEST_BUDGET);
  return Number.isInteger(n) && n > 0 ? n : 1000;
}

function pick(obj, keys) {
  return Object.fromEntries(keys.filter((k) => obj[k] !== undefined).map((k) => [k, obj[k]]));
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function hostOf(location) {
  try {
    return new URL(location).host || 'an unnamed host';
  } catch {
    return 'an unreadable location';
  }
}

function errorMessage(body, text, status) {
  const m = body?.error?.message ?? body?.message;
  const said = typeof m === 'string' ? m : text.slice(0, 300);
  return `HTTP ${status}${said ? `: ${said}` : ''}`;
}

function errorOf(e) {
  return {
    kind: e.kind,
    ...(e.status !== undefined && { status: e.status }),
    ...(e.type !== undefined && { type: e.type }),
    message: e.message,
    retryable: e.retryable,
  };
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
