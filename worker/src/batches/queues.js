// @ts-check
// The work queues of /v1/batches (their timings: config.js's batchTimings).
//
// A message is `{ batchId, indexes }`: never a request body (messages are at most 128 KB).
// Work may be spread over several queues (bindings WORK_QUEUE, WORK_QUEUE_1 ... WORK_QUEUE_7):
// each queue's consumer runs as its own invocation with its own 6 connections. On Cloudflare
// one queue with `max_concurrency` scales by itself; Miniflare and `wrangler dev` deliver one
// batch per queue at a time, so locally the shards are what runs consumers side by side.

import { DEFAULT_MAX_CONCURRENCY } from '../config.js';

/**
 * A work message: work on these items of this batch (never a request body).
 * @typedef {{ batchId: string, indexes: number[] }} WorkMessage
 */

/**
 * Items per queue message: one consumer invocation leases them together. Whole rounds of the
 * invocation's connections (7 x 6): a delivery of 2 messages is 14 rounds with no round
 * part-empty. 40 left 4 of 6 connections idle for the last attempt of each delivery: 0.88 of
 * the bound at 8 consumers where 42 and 48 gave 0.92 (bench/batches.mjs, 20,000 x 8); 42 puts
 * a second batch's first result 1 s sooner than 48 (a delivery is shorter).
 */
export const ITEMS_PER_MESSAGE = 7 * DEFAULT_MAX_CONCURRENCY;
/** Messages per `sendBatch` call (the Queues limit is 100). */
const SEND_BATCH = 100;

/**
 * The work queue bindings present, shard 0 first.
 * @param {any} env
 * @returns {Queue<WorkMessage>[]}
 */
export function workQueues(env) {
  const queues = [env.WORK_QUEUE];
  for (let i = 1; i < 8; i++) if (env[`WORK_QUEUE_${i}`]) queues.push(env[`WORK_QUEUE_${i}`]);
  return queues.filter(Boolean);
}

/** Where the next message goes: round robin over the shards, across batches of this isolate. */
let nextShard = Math.floor(Math.random() * 8);

/**
 * Sends `indexes` of a batch as messages of ITEMS_PER_MESSAGE, round robin over the shards.
 * @param {any} env
 * @param {string} batchId
 * @param {number[]} indexes
 * @param {number} [delaySeconds] when the messages become deliverable
 */
export async function enqueueItems(env, batchId, indexes, delaySeconds = 0) {
  const queues = workQueues(env);
  if (queues.length === 0) throw new Error('no WORK_QUEUE binding: /v1/batches needs a queue');
  /** @type {MessageSendRequest<WorkMessage>[][]} */
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
