// The post-processing module of hosts.mjs: where it ran (a worker thread, not the main one)
// and what it made of the value; "boom" makes it throw.
import { isMainThread } from 'node:worker_threads';

export function tag(text, { index }) {
  if (text === 'boom') throw new Error(`no boom at ${index}`);
  return { text: String(text).toUpperCase(), index, mainThread: isMainThread };
}
