// The post-processing module of hosts.mjs: where it ran (a worker thread, not the main one)
// and what it made of the value; "boom" makes it throw, "die" ends its worker thread.
import process from 'node:process';
import { isMainThread } from 'node:worker_threads';

export function tag(text, { index }) {
  if (text === 'boom') throw new Error(`no boom at ${index}`);
  if (text === 'die') process.exit(7);
  return { text: String(text).toUpperCase(), index, mainThread: isMainThread };
}

/** Busy CPU (no await) for up to 5 s, adding 1 to the SharedArrayBuffer `ticks` every ms. */
export function spin(ticks) {
  const count = new Int32Array(ticks);
  const end = Date.now() + 5_000;
  let last = Date.now();
  while (Date.now() < end) {
    if (Date.now() !== last) {
      last = Date.now();
      Atomics.add(count, 0, 1);
    }
  }
}
