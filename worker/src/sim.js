// The simulated AI API (dev only: EDGEBATCH_SIM = "on"), reached two ways:
//   - by the Worker itself, IN-PROCESS: a batch's provider.baseUrl is SIM_ORIGIN, and the
//     global fetch (wrapped by installSimFetch) hands a request for SIM_ORIGIN straight to the
//     simulator, with no network. Nothing the client sends (the Host header) decides where a
//     request goes, and it works wherever this module is loaded: a fetch handler, a Queue
//     consumer, a Durable Object;
//   - by browsers and tools over HTTP under /sim/... (the demo page, `curl /sim/stats`), with
//     CORS only for this Worker's origin, loopback origins and EDGEBATCH_SIM_ORIGINS.
// One default Simulator per isolate, so its rate limits and stats span every request this
// isolate serves; sessions (sim-sessions.js) have their own.
import { env as workerEnv } from 'cloudflare:workers';
import { CORS, isDisconnect, serveSim } from '../../js/sim-host.mjs';
import { loadSimulator } from './sim-wasm.js';
import { readConfig, SIM_ORIGIN } from './config.js';
import { discardBody, errorResponse, HttpError } from './http.js';
import { createSession, MAX_SESSIONS, release, session, target } from './sim-sessions.js';

export { SIM_ORIGIN };

/**
 * How long a simulated hang of the default simulator may last. Over HTTP, workerd cancels a
 * handler that waits on nothing but a promise as "hung" (the caller then sees a 500, not a
 * hang), and it does not tell the callee when the caller aborts a subrequest before the
 * response has started; so the hang also waits on this timer, which ends it (sim.abort).
 */
export const SIM_HANG_CAP_MS = 120_000;

/**
 * Dev settings: a one-second "minute" with 25 requests in it, so a 200-item batch at
 * concurrency 6 runs into the limit (429 with retry-after), plus random 429s, 529s and 500s, slow
 * bodies, a rare hang (cut by the attempt timeout) and dropped connections; it still finishes in
 * about 10 seconds. No token limits: edgebatch's pacing reads the reset times of the rate-limit
 * headers, which have whole-second precision, and a one-second window defeats that.
 * EDGEBATCH_SIM_CONFIG (a JSON object) replaces any top-level field whole:
 * `{"faults":{"hang":1}}` means only hangs (fault rates must sum to <= 1).
 */
export const DEV_SIM = {
  seed: 7,
  minuteMs: 1000,
  requestsPerMinute: 25,
  latency: { baseMs: 60, perOutputTokenMs: 1, jitterMs: 40 },
  faults: { rate429: 0.05, rate529: 0.02, rate500: 0.01, hang: 0.005, slowBody: 0.02, malformed: 0.005, disconnect: 0.005 },
};

let current = { key: '', target: null };

function defaultTarget(overrides) {
  const key = JSON.stringify(overrides);
  if (current.target === null || current.key !== key) {
    current = { key, target: target(new (loadSimulator())({ ...DEV_SIM, ...overrides }), SIM_HANG_CAP_MS) };
  }
  return current.target;
}

/**
 * `fetch` for SIM_ORIGIN URLs, served in-process: `simFetch(url, init)` answers like fetch
 * would, a simulated dropped connection or a hang cut by `init.signal` rejecting as fetch does.
 * With the simulator off it rejects (TypeError), like a host that does not exist.
 */
export async function simFetch(input, init) {
  const request = new Request(input, init);
  const config = readConfig(workerEnv);
  if (!config.simOn) throw new TypeError(`fetch failed: ${SIM_ORIGIN} is served only with EDGEBATCH_SIM = "on"`);
  const url = new URL(request.url);
  return handleSim(request, `${url.pathname}${url.search}`, config.simConfig, { inProcess: true, signal: init?.signal ?? request.signal })
    .catch((err) => {
      if (err instanceof HttpError) return errorResponse(err);
      throw err;
    });
}

const isSimUrl = (input) => {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input?.url;
  return typeof url === 'string' && (url === SIM_ORIGIN || url.startsWith(`${SIM_ORIGIN}/`));
};

/**
 * Wraps the global fetch once so that a request for SIM_ORIGIN goes to simFetch and every
 * other one to the real fetch. edgebatch's wasm calls the global `fetch` at each request, so
 * its providers reach the simulator this way.
 */
export function installSimFetch() {
  if (globalThis.fetch.simFetch) return;
  const real = globalThis.fetch.bind(globalThis);
  const wrapped = (input, init) => (isSimUrl(input) ? simFetch(input, init) : real(input, init));
  wrapped.simFetch = true;
  globalThis.fetch = wrapped;
}

/**
 * Serves `/sim/...` from an HTTP client (a browser, curl). A request from a page on another
 * origin is refused (403) unless that origin is allowed; allowed ones get CORS headers.
 */
export async function handleSimRoute(request, config) {
  const origin = request.headers.get('origin');
  const allowed = origin === null || allowedOrigin(origin, request, config.simOrigins);
  const cors = (response) => withCors(response, allowed && origin);
  if (!allowed) {
    // Read what is left of the body first: unread, workerd may reset the connection under the
    // answer (seen as "fetch failed" by the page instead of the 403).
    await discardBody(request);
    return cors(errorResponse(new HttpError(403, 'permission_error',
      `a page on ${origin.slice(0, 100)} may not use this simulator: only this Worker's origin, loopback origins and EDGEBATCH_SIM_ORIGINS may`)));
  }
  if (request.method === 'OPTIONS') return cors(new Response(null, { status: 204 }));
  const url = new URL(request.url);
  const inner = `${url.pathname.slice('/sim'.length) || '/'}${url.search}`;
  // Its errors too must be readable by the page that asked.
  return cors(await handleSim(request, inner, config.simConfig, { inProcess: false }).catch((err) => errorResponse(err)));
}

/** Routes a simulator path (without the /sim prefix): sessions, a session's API, the default. */
async function handleSim(request, inner, overrides, how) {
  const path = inner.split('?')[0];
  if (path === '/sessions') return createSession(request, loadSimulator());
  const m = /^\/s\/([0-9a-f]{16})(\/.*)?$/.exec(path);
  if (m) {
    const t = session(m[1]);
    if (!t) {
      throw new HttpError(404, 'not_found_error', `no simulator session ${m[1]} (sessions end when ${MAX_SESSIONS} newer ones exist)`);
    }
    return serve(request, inner.slice(`/s/${m[1]}`.length) || '/', t, how);
  }
  return serve(request, inner, defaultTarget(overrides), how);
}

/**
 * Answers from one simulator target. Counted in `active` before anything (the body is read in
 * serveSim), so an eviction meanwhile cannot free the simulator under it. Over HTTP a
 * simulated disconnect (serveSim rejects) becomes a response whose body fails at once: a
 * Worker cannot drop the connection before the status line, so the client sees the
 * connection break while reading; in-process the rejection is the fetch's.
 */
async function serve(request, inner, t, { inProcess, signal }) {
  t.active += 1;
  try {
    const req = new Request(new URL(inner, SIM_ORIGIN), request);
    const cap = AbortSignal.timeout(t.hangMs);
    return await serveSim(t.sim, req, { signal: signal ? AbortSignal.any([signal, cap]) : cap });
  } catch (err) {
    if (inProcess || (!isDisconnect(err) && !(err instanceof Error && /abort|timeout/i.test(`${err.name} ${err.message}`)))) throw err;
    return new Response(new ReadableStream({ start: (c) => c.error(err) }), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  } finally {
    t.active -= 1;
    release(t);
  }
}

/** This Worker's own origin, a loopback origin (any port), or one EDGEBATCH_SIM_ORIGINS names. */
function allowedOrigin(origin, request, named) {
  if (origin === new URL(request.url).origin || named.includes(origin)) return true;
  try {
    const { protocol, hostname } = new URL(origin);
    return (protocol === 'http:' || protocol === 'https:') &&
      (hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]');
  } catch {
    return false;
  }
}

/** The simulator's CORS headers for `origin` (echoed, not `*`), or none at all. */
function withCors(response, origin) {
  const out = new Response(response.body, response);
  for (const name of Object.keys(CORS)) out.headers.delete(name);
  if (origin) {
    for (const [name, value] of Object.entries(CORS)) out.headers.set(name, value);
    out.headers.set('access-control-allow-origin', origin);
    out.headers.append('vary', 'origin');
  }
  return out;
}
