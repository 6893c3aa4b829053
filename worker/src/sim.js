// The simulated AI API under /sim (dev only: EDGEBATCH_SIM = "on"). One Simulator per isolate,
// so its rate limits and stats span every request this isolate serves. The Worker reaches it
// with real HTTP subrequests to its own origin (baseUrl `${origin}/sim`), which workerd allows
// in `wrangler dev` and Miniflare; this module only strips the /sim prefix and hands the
// fetch-API Request to serveSim, plus two workerd adaptations (see handleSim).
//
// Sessions, for the demo page: `POST /sim/sessions { config?, hangMs? }` makes a simulator of
// its own (its own buckets, faults and stats) answering under `/sim/s/<id>/...`, so each run
// of the page starts from a fresh minute, and a naive run cannot use up edgebatch's budget.
import { CORS, isDisconnect, serveSim } from '../../js/sim-host.mjs';
import { allow, badRequest, errorResponse, HttpError, jsonResponse, readCappedText } from './http.js';
import { int, parseJsonObject } from './validate.js';

/**
 * How long a simulated hang may last in workerd. workerd cancels a handler that waits on
 * nothing but a promise as "hung" (the caller then sees a 500, not a hang), and it does not tell
 * the callee when the caller aborts a subrequest before the response has started; so the hang
 * waits on this timer, which keeps the handler alive and ends it (sim.abort) in the end.
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

/** Sessions kept at once; creating one more drops the oldest (a dev server, not a store). */
export const MAX_SESSIONS = 16;
const SESSION_BODY_BYTES = 16 * 1024;
const HANG_MS_MIN = 100;
const SESSION_FIELDS = new Set(['config', 'hangMs']);

let current = { key: '', sim: null };
/** id -> { sim, hangMs }, oldest first. */
const sessions = new Map();

function simulator(Simulator, overrides) {
  const key = JSON.stringify(overrides);
  if (current.sim === null || current.key !== key) {
    current = { key, sim: new Simulator({ ...DEV_SIM, ...overrides }) };
  }
  return current.sim;
}

/**
 * Serves /sim/... with the prefix stripped; `Simulator` is the wasm export. A simulated
 * disconnect (serveSim rejects) becomes a response whose body fails at once: a Worker cannot
 * drop the connection before the status line, so the client sees the connection break while
 * reading, which is a network error all the same.
 */
export async function handleSim(request, url, Simulator, overrides) {
  const path = url.pathname;
  if (path === '/sim/sessions') {
    // Its errors too must be readable by a page on another origin.
    return createSession(request, Simulator).catch((err) => withCors(errorResponse(err)));
  }
  const m = /^\/sim\/s\/([0-9a-f]{16})(\/.*)?$/.exec(path);
  if (m) {
    const session = sessions.get(m[1]);
    if (!session) {
      throw new HttpError(404, 'not_found_error', `no simulator session ${m[1]} (sessions end when ${MAX_SESSIONS} newer ones exist)`);
    }
    return serve(request, url, m[2] ?? '/', session.sim, session.hangMs);
  }
  return serve(request, url, path.slice('/sim'.length) || '/', simulator(Simulator, overrides), SIM_HANG_CAP_MS);
}

async function serve(request, url, innerPath, sim, hangMs) {
  const inner = new URL(innerPath, url.origin);
  inner.search = url.search;
  const req = new Request(inner, request);
  try {
    return await serveSim(sim, req, { signal: AbortSignal.timeout(hangMs) });
  } catch (err) {
    if (!isDisconnect(err) && !(err instanceof Error && /abort|timeout/i.test(`${err.name} ${err.message}`))) throw err;
    return new Response(new ReadableStream({ start: (c) => c.error(err) }), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  }
}

/**
 * `POST /sim/sessions` with `{ config?, hangMs? }`: `config` is the Simulator's options (a bad
 * one is a 400 naming the field), `hangMs` how long a simulated hang lasts before the server
 * gives up on it (default and most SIM_HANG_CAP_MS). Answers 201 `{ id, baseUrl }`.
 */
async function createSession(request, Simulator) {
  if (request.method === 'OPTIONS') return new Response(null, { status: 204, headers: CORS });
  allow(request, ['POST']);
  const text = await readCappedText(request, SESSION_BODY_BYTES);
  const body = parseJsonObject(text || '{}', SESSION_FIELDS, '{ config?, hangMs? }');
  const { config = {}, hangMs = SIM_HANG_CAP_MS } = body;
  int('hangMs', hangMs, HANG_MS_MIN, SIM_HANG_CAP_MS);
  let sim;
  try {
    sim = new Simulator(config);
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw badRequest(`config: ${err.message}`);
    throw err;
  }
  const id = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('');
  sessions.set(id, { sim, hangMs });
  for (const [old, s] of sessions) {
    if (sessions.size <= MAX_SESSIONS) break;
    sessions.delete(old);
    // A request still being answered (a slow body, a hang) holds it: the GC takes it then.
    if (s.sim.stats().inFlight === 0) s.sim.free();
  }
  return jsonResponse(201, { id, baseUrl: `${new URL(request.url).origin}/sim/s/${id}` }, CORS);
}

function withCors(response) {
  for (const [name, value] of Object.entries(CORS)) response.headers.set(name, value);
  return response;
}
