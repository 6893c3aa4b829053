// The Worker as bench/batches.mjs runs it: worker/src/index.js unchanged, wrapped to count what
// a batch costs on Cloudflare's meters, and `GET /__bench/counters` to read the counts:
//   http        requests to the Worker from outside (the simulator's own /sim traffic apart)
//   invocations queue consumer invocations, deliveries: messages they got
//   fetches     subrequests by fetch() (here: the upstream calls, to the simulator)
//   do          Durable Object requests, per class.method (RPC calls and alarms)
//   queueWrites messages written to the work queues (send / sendBatch)
//   commitMs    per batch id: [commits, total ms] of the consumer's ledger commits
//   limiters    each limiter object's stats() when read (its adaptive concurrency, in flight)
// The counters are module state: workerd runs the Worker and its Durable Objects in one isolate
// here, so every handler and object bumps the same ones (the bench checks they add up).
import worker, * as engine from '../worker/src/index.js';

const counts = { http: 0, invocations: 0, deliveries: 0, fetches: 0, queueWrites: 0, do: {}, commitMs: {} };
/** The limiter objects of this isolate (one workerd process runs them all here). */
const limiters = [];

const realFetch = globalThis.fetch;
globalThis.fetch = (...args) => {
  counts.fetches++;
  return realFetch(...args);
};

function countQueue(queue) {
  return {
    send(body, opts) {
      counts.queueWrites++;
      return queue.send(body, opts);
    },
    sendBatch(messages, opts) {
      counts.queueWrites += messages.length;
      return queue.sendBatch(messages, opts);
    },
  };
}

/** `env` with every work queue binding counting its writes. */
function countedEnv(env) {
  return new Proxy(env, {
    get(target, key) {
      const value = target[key];
      return typeof key === 'string' && key.startsWith('WORK_QUEUE') && value ? countQueue(value) : value;
    },
  });
}

/**
 * `Base` with every method (and the alarm) counted as one request to the object when it is
 * called from outside: a method the object calls on itself (synchronously, inside another
 * call) is not a request.
 */
function counted(Base, name) {
  class Counted extends Base {
    constructor(ctx, env) {
      super(ctx, countedEnv(env));
      this.benchDepth = 0;
      if (name === 'UpstreamLimiter') limiters.push(this);
    }
  }
  for (const method of Object.getOwnPropertyNames(Base.prototype)) {
    if (method === 'constructor') continue;
    Counted.prototype[method] = function (...args) {
      if (this.benchDepth === 0) {
        const key = `${name}.${method}`;
        counts.do[key] = (counts.do[key] ?? 0) + 1;
      }
      this.benchDepth++;
      try {
        return Base.prototype[method].apply(this, args);
      } finally {
        this.benchDepth--;
      }
    };
  }
  return Counted;
}

/**
 * `env` whose BATCHES stubs time their `commit` calls as the consumer sees them (a round trip
 * to the ledger; Date.now() moves across I/O in workerd, not inside a Durable Object's
 * synchronous SQL), per batch: `commitMs[batch id]` = [commits, total ms].
 */
function timedLedgers(env) {
  if (!env.BATCHES) return env;
  const batches = new Proxy(env.BATCHES, {
    get(target, key) {
      if (key !== 'get') {
        const v = Reflect.get(target, key);
        return typeof v === 'function' ? (...args) => v.apply(target, args) : v;
      }
      return (id) => {
        const stub = target.get(id);
        const batchId = `batch_${id.toString()}`;
        return new Proxy(stub, {
          get(s, k) {
            // An RPC stub's methods are stubs too (even `.bind` would be a remote call): call
            // them on the stub itself.
            if (k === 'then' || typeof k !== 'string') return undefined; // a stub is not a promise
            if (k !== 'commit') return (...args) => s[k](...args);
            return async (...args) => {
              const t0 = Date.now();
              const out = await s.commit(...args);
              const slot = (counts.commitMs[batchId] ??= [0, 0]);
              slot[0]++;
              slot[1] += Date.now() - t0;
              return out;
            };
          },
        });
      };
    },
  });
  return new Proxy(env, { get: (target, key) => (key === 'BATCHES' ? batches : Reflect.get(target, key)) });
}

export const BatchLedger = counted(engine.BatchLedger, 'BatchLedger');
export const BatchDirectory = counted(engine.BatchDirectory, 'BatchDirectory');
export const UpstreamLimiter = counted(engine.UpstreamLimiter, 'UpstreamLimiter');
export const TokenLimits = counted(engine.TokenLimits, 'TokenLimits');

export default {
  async fetch(request, env, ctx) {
    const path = new URL(request.url).pathname;
    if (path === '/__bench/counters') return Response.json({ ...counts, limiters: limiters.map((l) => engine.UpstreamLimiter.prototype.stats.call(l)) });
    if (!path.startsWith('/sim')) counts.http++;
    return worker.fetch(request, countedEnv(env), ctx);
  },
  async queue(batch, env, ctx) {
    counts.invocations++;
    counts.deliveries += batch.messages.length;
    return worker.queue(batch, timedLedgers(countedEnv(env)), ctx);
  },
};
