// The host side of the post-processing stage (`postProcess`): reading the option, and
// running one value through `module[export](value, { item, index })` on the host's runner.
// What runs when, how many at once, and what the deadline or a cancel does is the core's
// (src/core/post.rs); this file only starts and stops single jobs.
//
// Runners: the npm package's Node and browser entries install a worker pool
// (js/package/post-pool.js, workerpool over worker_threads / Web Workers) with setPostHost;
// without one (workerd, or the raw glue) values are processed inline, one at a time, in
// slices that give the event loop back (see runInline).
//
// Values cross into the runner by the structured-clone rules (what postMessage copies:
// plain objects, arrays, strings, numbers, Dates, Maps, typed arrays...; no functions, no
// class prototypes), inline too, so that a module behaves alike on every host.

let host = null;

/** Installs the runner of this host (the npm entries call it once, at import). */
export function setPostHost(runner) {
  host = runner;
}

const bad = (Kind, message) => new Kind(`postProcess.${message}`);
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]+:/;
const ABSOLUTE = /^(\/|[A-Za-z]:[\\/]|\\\\)/;

/**
 * Reads the call option into a job: `{ threads, task(value, ctx), closed }` (setting
 * `closed` stops its pool). `task` runs one value with `{ item, index }` and stops when
 * `ctx.signal` fires. Throws a TypeError / RangeError naming the bad field. The pool starts
 * on the first value.
 */
export function openPost(spec, items) {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new TypeError(`postProcess must be an object { module, export?, threads? }, got ${show(spec)}`);
  }
  // Its keys were checked against their declaration (src/options/mod.rs, POST_PROCESS) already.
  const name = spec.export === undefined ? 'default' : spec.export;
  if (typeof name !== 'string' || name === '') throw bad(TypeError, `export must be a non-empty string, got ${show(name)}`);
  const threads = spec.threads;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 1024)) {
    throw bad(RangeError, `threads must be an integer from 1 to 1024, got ${show(threads)}`);
  }
  const module = spec.module;
  let url = null;
  if (module instanceof URL) url = module.href;
  else if (typeof module === 'string') {
    if (SCHEME.test(module) && !ABSOLUTE.test(module)) url = module;
    else if (ABSOLUTE.test(module)) url = host ? host.resolvePath(module) : module;
    else throw bad(TypeError, `module must be a URL or an absolute path, got the relative ${show(module)} (write new URL(${show(module)}, import.meta.url))`);
  } else if (module === null || typeof module !== 'object') {
    throw bad(TypeError, `module must be a URL, an absolute path or a module namespace object, got ${show(module)}`);
  } else if (typeof module[name] !== 'function') {
    throw bad(TypeError, `module has no function export "${name}"`);
  }
  const label = `postProcess ${name}${url ? ` of ${url}` : ''}`;
  // A module object cannot cross into a worker: it always runs inline.
  const runner = url !== null && host
    ? host.open({ url, name, label, threads: threads ?? host.defaultThreads })
    : inlineJob(module, url, name, label);
  return {
    threads: runner.threads,
    task(value, ctx) {
      const index = ctx.index;
      let item;
      try {
        item = items[index];
      } catch (e) {
        throw new Error(`${label}: reading item ${index} threw: ${message(e)}`);
      }
      const running = runner.run(value, { item, index });
      ctx.signal.addEventListener('abort', () => running.cancel(), { once: true });
      return running;
    },
    set closed(_) {
      runner.close();
    },
  };
}

function message(e) {
  const text = e instanceof Error ? e.message : typeof e === 'string' ? e : show(e);
  return text || (e && e.name) || 'failed';
}

function show(v) {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  if (v === null || typeof v !== 'object') return typeof v === 'function' ? 'a function' : String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}

// ---- inline: workerd (no threads) and hosts without a pool ----

// workerd's clock stands still while code runs, so a slice cannot be measured there: each
// `yield` of a generator export gives the event loop back. Elsewhere a slice runs ~8 ms.
const STILL_CLOCK = globalThis.navigator?.userAgent === 'Cloudflare-Workers';
const SLICE_MS = 8;
const now = () => (globalThis.performance ? performance.now() : Date.now());
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

// Made from a string, not written as `import(url)`: workerd's module checker refuses any
// dynamic import whose specifier is not a literal, and bundlers rewrite (or warn about) one.
// workerd allows no code from strings either: there the module object is the way.
function importByUrl(url) {
  let dynamicImport;
  try {
    dynamicImport = new Function('url', 'return import(url)');
  } catch (e) {
    return Promise.reject(new Error(`this host cannot import a module by URL (${message(e)}): pass the module object, import * as m from "..."`));
  }
  return dynamicImport(url);
}

function inlineJob(module, url, name, label) {
  let loaded = url === null ? Promise.resolve(module) : null;
  const load = () => (loaded ??= importByUrl(url));
  return {
    threads: 1,
    run(value, ctx) {
      const state = { cancelled: false };
      const promise = runInline(load, name, label, value, ctx, state);
      promise.cancel = () => {
        state.cancelled = true;
      };
      return promise;
    },
    close() {},
  };
}

/**
 * One value inline: after a turn of the event loop, `fn(value, ctx)`. A plain function runs
 * as one slice (it cannot be interrupted: keep it short, or write it as a generator); a
 * generator function (`function*`) is run in slices at its `yield`s, its `return` value being
 * the result; a Promise is awaited. A cancel stops a generator at its next slice.
 */
async function runInline(load, name, label, value, ctx, state) {
  let mod;
  try {
    mod = await load();
  } catch (e) {
    throw new Error(`${label}: the module could not be imported: ${message(e)}`);
  }
  const fn = mod[name];
  if (typeof fn !== 'function') throw new Error(`${label}: the module has no function export "${name}"`);
  await turn();
  if (state.cancelled) throw new Error(`${label}: cancelled`);
  let out;
  try {
    out = fn(structuredClone(value), structuredClone(ctx));
    if (out && typeof out.next === 'function' && typeof out[Symbol.iterator] === 'function') {
      out = await drive(out, state, label);
    }
    out = await out;
  } catch (e) {
    throw new Error(`${label} threw: ${message(e)}`);
  }
  try {
    return structuredClone(out);
  } catch (e) {
    throw new Error(`${label} returned a value that cannot be cloned: ${message(e)}`);
  }
}

async function drive(it, state, label) {
  for (;;) {
    const began = now();
    for (;;) {
      const step = it.next();
      if (step.done) return step.value;
      if (STILL_CLOCK || now() - began >= SLICE_MS) break;
    }
    await turn();
    if (state.cancelled) {
      it.return?.();
      throw new Error(`${label}: cancelled`);
    }
  }
}
