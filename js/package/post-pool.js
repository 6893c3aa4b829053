// The post-processing runner of the Node and browser entries: a workerpool pool per call
// (worker_threads on Node, Web Workers in browsers), stopped when the call ends, so that no
// idle worker keeps a Node process alive. workerpool replaces a worker that dies; a task
// cancelled by the deadline or the caller's signal terminates its worker (also replaced).
//
// Each worker runs workerpool's own worker script; the function below is sent to it as
// source (workerpool's `exec(fn)`), imports the caller's module once per worker and calls
// its export. Nothing of the caller's is evaluated as source: the module is imported.
import workerpool from 'workerpool';

// Runs in the worker. Self-contained: it is sent as source text.
async function processInWorker(url, name, label, value, ctx) {
  const cache = (globalThis.__edgebatchPostModules ??= new Map());
  if (!cache.has(url)) cache.set(url, import(url));
  let mod;
  try {
    mod = await cache.get(url);
  } catch (e) {
    cache.delete(url);
    throw new Error(`${label}: the module could not be imported: ${e && e.message}`);
  }
  const fn = mod[name];
  if (typeof fn !== 'function') throw new Error(`${label}: the module has no function export "${name}"`);
  let out;
  try {
    out = fn(value, ctx);
    if (out && typeof out.next === 'function' && typeof out[Symbol.iterator] === 'function') {
      let step;
      while (!(step = out.next()).done);
      out = step.value;
    }
    out = await out;
  } catch (e) {
    throw new Error(`${label} threw: ${e && e.message !== undefined ? e.message : String(e)}`);
  }
  // Checked here for a clear message: postMessage would fail with an empty one.
  try {
    structuredClone(out);
  } catch (e) {
    throw new Error(`${label} returned a value that cannot be cloned: ${e && e.message}`);
  }
  return out;
}

const DIED = 'Workerpool Worker terminated Unexpectedly';

/**
 * The runner for setPostHost. `cores`: the host's logical cores; the default bound is one
 * less (the main thread keeps one), at least 1. `resolvePath` turns an absolute path into
 * the URL a worker imports.
 */
export function poolHost({ cores, resolvePath, workerType }) {
  return {
    defaultThreads: Math.max(1, (cores || 2) - 1),
    resolvePath,
    open({ url, name, label, threads }) {
      let pool = null;
      return {
        threads,
        run(value, ctx) {
          // workerTerminateTimeout: a cancelled task's worker first gets a clean-up message,
          // which a worker busy in a CPU loop never reads; terminate it soon after instead.
          pool ??= workerpool.pool({ maxWorkers: threads, workerType, workerTerminateTimeout: 20 });
          const task = pool.exec(processInWorker, [url, name, label, value, ctx]);
          const out = task.catch((e) => {
            const text = String((e && e.message) || e);
            if (text.startsWith(DIED)) {
              const code = /exitCode: `([^`]*)`/.exec(text);
              throw new Error(`${label}: its worker died${code ? ` (exit code ${code[1]})` : ''}; the worker is replaced`);
            }
            if (e && e.name === 'DataCloneError') throw new Error(`${label}: the value or item cannot be cloned into a worker: ${text}`);
            throw e;
          });
          out.cancel = () => {
            try {
              task.cancel();
            } catch {
              // Settled already.
            }
          };
          return out;
        },
        close() {
          if (pool) pool.terminate(true).catch(() => {});
          pool = null;
        },
      };
    },
  };
}
