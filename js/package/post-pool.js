// The post-processing runner of the Node and browser entries: a workerpool pool per call
// (worker_threads on Node, Web Workers in browsers), stopped when the call ends, so that no
// idle worker keeps a Node process alive. workerpool replaces a worker that dies; a task
// cancelled by the deadline or the caller's signal terminates its worker (also replaced).
//
// Each worker runs workerpool's own worker script (on Bun, bun-worker.js, which sets up the
// same worker for Bun's threads); the function below is sent to it as
// source (workerpool's `exec(fn)`), imports the caller's module once per worker and calls
// its export. Nothing of the caller's is evaluated as source: the module is imported.
//
// workerpool is imported on first use: a page or script that never sets postProcess loads
// none of it (and a plain page with an import map needs no entry for it until then; mapped to
// workerpool's dist/workerpool.js, a UMD file, it sets globalThis.workerpool).
let loading = null;
const loadWorkerpool = () =>
  (loading ??= import('workerpool').then((m) => {
    const wp = m.default ?? m;
    return typeof wp.pool === 'function' ? wp : globalThis.workerpool;
  }));

// Runs in the worker. Self-contained: it is sent as source text.
async function processInWorker(url, name, label, value, ctx) {
  const cache = (globalThis.__edgebatchPostModules ??= new Map());
  // From a string: a dev server (Vite) rewrites a literal `import(...)` in this file's
  // source, and this function's source is what the worker runs.
  if (!cache.has(url)) cache.set(url, new Function('url', 'return import(url)')(url));
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

/** workerpool's errors, said in the stage's words. */
function explain(e, label) {
  const text = String((e && e.message) || e);
  if (text.startsWith(DIED)) {
    const code = /exitCode: `([^`]*)`/.exec(text);
    return new Error(`${label}: its worker died${code && code[1] !== 'undefined' ? ` (exit code ${code[1]})` : ''}; the worker is replaced`);
  }
  if (e && e.name === 'DataCloneError') return new Error(`${label}: the value or item cannot be cloned into a worker: ${text}`);
  return e;
}

/**
 * The runner for setPostHost. `cores`: the host's logical cores; the default bound is one
 * less (the main thread keeps one), at least 1. `resolvePath` turns an absolute path into
 * the URL a worker imports. `workerScript`: the path of the workers' script, when it is not
 * workerpool's own.
 */
export function poolHost({ cores, resolvePath, workerType, workerScript }) {
  return {
    defaultThreads: Math.max(1, (cores || 2) - 1),
    resolvePath,
    open({ url, name, label, threads }) {
      let pool = null;
      return {
        threads,
        run(value, ctx) {
          let task = null;
          let cancelled = false;
          const out = (async () => {
            // workerTerminateTimeout: a cancelled task's worker first gets a clean-up message,
            // which a worker busy in a CPU loop never reads; terminate it soon after instead.
            pool ??= loadWorkerpool().then((wp) => {
              const options = { maxWorkers: threads, workerType, workerTerminateTimeout: 20 };
              return workerScript ? wp.pool(workerScript, options) : wp.pool(options);
            });
            const ready = await pool;
            if (cancelled) throw new Error(`${label}: cancelled`);
            task = ready.exec(processInWorker, [url, name, label, value, ctx]);
            try {
              return await task;
            } catch (e) {
              throw explain(e, label);
            }
          })();
          out.cancel = () => {
            cancelled = true;
            try {
              task?.cancel();
            } catch {
              // Settled already.
            }
          };
          return out;
        },
        close() {
          pool?.then((ready) => ready.terminate(true)).catch(() => {});
          pool = null;
        },
      };
    },
  };
}
