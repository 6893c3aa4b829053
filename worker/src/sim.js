// The simulated AI API under /sim (dev only: EDGEBATCH_SIM = "on"). One Simulator per isolate,
// so its rate limits and stats span every request this isolate serves. The Worker reaches it
// with real HTTP subrequests to its own origin (baseUrl `${origin}/sim`), which workerd allows
// in `wrangler dev` and Miniflare; this module only strips the /sim prefix and hands the
// fetch-API Request to serveSim, plus two workerd adaptations (see handleSim).
import { isDisconnect, serveSim } from '../../js/sim-host.mjs';

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

let current = { key: '', sim: null };

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
  const inner = new URL(url.pathname.slice('/sim'.length) || '/', url.origin);
  inner.search = url.search;
  const req = new Request(inner, request);
  try {
    return await serveSim(simulator(Simulator, overrides), req, { signal: AbortSignal.timeout(SIM_HANG_CAP_MS) });
  } catch (err) {
    if (!isDisconnect(err) && !(err instanceof Error && /abort|timeout/i.test(`${err.name} ${err.message}`))) throw err;
    return new Response(new ReadableStream({ start: (c) => c.error(err) }), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  }
}
