// The worker script of the postProcess pool on Bun (the node entry picks it there; Node and
// Deno run workerpool's own). A Bun worker thread has both parentPort and the Web Worker
// globals, so workerpool's worker script takes its Web Worker path and listens with
// addEventListener('message'), which Bun never calls for a message from the parent (only
// parentPort's listeners get it): no task would ever start. Without addEventListener while
// workerpool sets itself up, it takes its worker_threads path (parentPort) instead. The stage
// itself is unchanged: post-pool.js sends its function as source (workerpool's built-in `run`
// method), which imports the caller's module.
const addEventListener = globalThis.addEventListener;
globalThis.addEventListener = undefined;
const { default: workerpool } = await import('workerpool');
workerpool.worker({});
// workerpool chose its path above; the caller's module gets the host's globals as they were.
globalThis.addEventListener = addEventListener;
