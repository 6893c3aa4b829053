// The Worker as bench/batches.mjs runs it: worker/src/index.js unchanged, wrapped to count what
// a batch costs on Cloudflare's meters, and `GET /__bench/counters` to read the counts:
//   http        requests to the Worker from outside (the simulator's own /sim traffic apart)
//   invocations queue consumer invocations, deliveries: messages they got
//   fetches     subrequests by fetch() (here: the upstream calls, to the simulator)
//   do          Durable Object requests, per class.method (RPC calls and alarms)
//   queueWrites messages written to the work queues (send / sendBatch)
// The counters are module state: workerd runs the Worker and its Durable Objects in one isolate
// here, so every handler and object bumps the same ones (the bench checks they add up).
import worker, * as engine from '../worker/src/index.js';

const counts = { http: 0, invocations: 0, deliveries: 0, fetches: 0, queueWrites: 0, do: {} };

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

/** `Base` with every method (and the alarm) counted as one request to the object. */
function counted(Base, name) {
  class Counted extends Base {
    constructor(ctx, env) {
      super(ctx, countedEnv(env));
    }
  }
  for (const method of Object.getOwnPropertyNames(Base.prototype)) {
    if (method === 'constructor') continue;
    Counted.prototype[method] = function (...args) {
      const key = `${name}.${method}`;
      counts.do[key] = (counts.do[key] ?? 0) + 1;
      return Base.prototype[method].apply(this, args);
    };
  }
  return Counted;
}

export const BatchLedger = counted(engine.BatchLedger, 'BatchLedger');
export const BatchDirectory = counted(engine.BatchDirectory, 'BatchDirectory');
export const UpstreamLimiter = counted(engine.UpstreamLimiter, 'UpstreamLimiter');
export const TokenLimits = counted(engine.TokenLimits, 'TokenLimits');

export default {
  async fetch(request, env, ctx) {
    const path = new URL(request.url).pathname;
    if (path === '/__bench/counters') return Response.json(counts);
    if (!path.startsWith('/sim')) counts.http++;
    return worker.fetch(request, countedEnv(env), ctx);
  },
  async queue(batch, env, ctx) {
    counts.invocations++;
    counts.deliveries += batch.messages.length;
    return worker.queue(batch, countedEnv(env), ctx);
  },
};
