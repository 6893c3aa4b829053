// The work queues and the timings of /v1/batches, read from the Worker's vars in one place.
//
// A message is `{ batchId, indexes }`: never a request body (messages are at most 128 KB).
// Work may be spread over several queues (bindings WORK_QUEUE, WORK_QUEUE_1 ... WORK_QUEUE_7):
// each queue's consumer runs as its own invocation with its own 6 connections. On Cloudflare
// one queue with `max_concurrency` scales by itself; Miniflare and `wrangler dev` deliver one
// batch per queue at a time, so locally the shards are what runs consumers side by side.

import { intVar } from '../config.js';

/** Items per queue message: one consumer invocation leases them together. */
export const ITEMS_PER_MESSAGE = 25;
/** Messages per `sendBatch` call (the Queues limit is 100). */
const SEND_BATCH = 100;


/**
 * Read like every other var (config.js's `intVar`): a value out of range is a 500
 * `configuration_error`, never a silent default. The routes read them once per request, so a
 * bad var is refused before a batch exists to be run by alarms and consumers.
 *
 * - alarmMs: how often a running batch's alarm looks at it (leases, lost messages, expiry);
 * - redeliverMs: queued items nobody claimed for this long are sent again;
 * - leaseMs: how long a consumer holds claimed items (its work is cut off before);
 * - deferMs: a limiter wait longer than this gives the items back and retries the message
 *   later (`retry({ delaySeconds })`) instead of sleeping in the invocation.
 */
export function batchTimings(env) {
  return {
    alarmMs: intVar(env, 'EDGEBATCH_BATCH_ALARM_MS', 5_000, 100, 3_600_000),
    redeliverMs: intVar(env, 'EDGEBATCH_BATCH_REDELIVER_MS', 60_000, 500, 86_400_000),
    leaseMs: intVar(env, 'EDGEBATCH_BATCH_LEASE_MS', 300_000, 2_000, 840_000),
    deferMs: intVar(env, 'EDGEBATCH_BATCH_DEFER_MS', 3_000, 100, 60_000),
  };
}

/** The work queue bindings present, shard 0 first. */
export function workQueues(env) {
  const queues = [env.WORK_QUEUE];
  for (let i = 1; i < 8; i++) if (env[`WORK_QUEUE_${i}`]) queues.push(env[`WORK_QUEUE_${i}`]);
  return queues.filter(Boolean);
}

/** Where the next message goes: round robin over the shards, across batches of this isolate. */
let nextShard = Math.floor(Math.random() * 8);

/** Sends `indexes` of a batch as messages of ITEMS_PER_MESSAGE, round robin over the shards. */
export async function enqueueItems(env, batchId, indexes, delaySeconds = 0) {
  const queues = workQueues(env);
  if (queues.length === 0) throw new Error('no WORK_QUEUE binding: /v1/batches needs a queue');
  const perQueue = queues.map(() => []);
  for (let at = 0; at < indexes.length; at += ITEMS_PER_MESSAGE) {
    const body = { batchId, indexes: indexes.slice(at, at + ITEMS_PER_MESSAGE) };
    perQueue[nextShard++ % queues.length].push({ body, ...(delaySeconds > 0 && { delaySeconds }) });
  }
  await Promise.all(perQueue.map(async (messages, q) => {
    for (let at = 0; at < messages.length; at += SEND_BATCH) {
      await queues[q].sendBatch(messages.slice(at, at + SEND_BATCH));
    }
  }));
}
