// Serves edgebatch's simulated AI API over the fetch API: a `Request` in, a `Response` out.
// Plain ES module, no dependencies: runs in workerd, Node and the browser.
//
//   import { Simulator } from "./sim-wasm.mjs";  // Node; elsewhere sim/pkg/edgebatch_sim.js, initialised
//   import { serveSim } from "./sim-host.mjs";
//   const sim = new Simulator({ requestsPerMinute: 50, faults: { rate529: 0.05 } });
//   const response = await serveSim(sim, request, { signal });  // e.g. in a Worker's fetch()
//
// The wasm `Simulator` decides each request (status, headers, body, delay, action); this module
// plays the decision out in real time:
//   reply, malformed  the response after `delayMs` (malformed bodies are already broken JSON)
//   slow_body         status and headers after `delayMs`, then the body `chunkBytes` at a time,
//                     one chunk every `chunkMs`
//   stream            (a `stream: true` reply) status and headers after `delayMs`, then the
//                     body's server-sent events one every `eventMs`, the first at once: the
//                     reply's generation time spread over its events
//   hang              nothing, until `request.signal` or `signal` aborts; then sim.abort(id)
//   disconnect        after `delayMs`, serveSim rejects with a TypeError("fetch failed") marked
//                     by isDisconnect(): a fetch shim that calls serveSim rejects like a real
//                     dropped connection, and a socket server (sim-server.mjs) drops the socket
// Every request ends in exactly one sim.finish(id) or sim.abort(id), so stats().inFlight is true.
// A hang ends only through a signal: in workerd, `request.signal` fires on client disconnect
// only with the `enable_request_signal` compatibility flag, so pass `{ signal }` there.
// Routes: POST …/v1/messages, POST …/v1/chat/completions, the Batch APIs (…/v1/messages/batches,
// …/v1/batches, …/v1/files: their state lives in the Simulator; a file upload's multipart form
// is read here, see readBody) (anything else: the sim's JSON 404), GET …/stats (sim.stats() as
// JSON), OPTIONS (CORS preflight, 204). Every response allows CORS.

/** The headers every simulator response carries: any page may call it and read everything. */
export const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': '*',
  'access-control-allow-methods': '*',
  'access-control-expose-headers': '*',
};

/** Whether `err` is serveSim's simulated dropped connection. */
export function isDisconnect(err) {
  return Boolean(err && err.simDisconnect === true);
}

function disconnectError() {
  const cause = new Error('simulated disconnect: the connection was reset before a reply');
  cause.code = 'ECONNRESET';
  return Object.assign(new TypeError('fetch failed', { cause }), { simDisconnect: true });
}

function abortReason(signal) {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/**
 * Resolves after `ms` (never, for Infinity); rejects with the reason of the first of `signals`
 * to abort. Listeners and the timer are removed either way.
 */
function sleep(ms, signals) {
  return new Promise((resolve, reject) => {
    const hit = signals.find((s) => s.aborted);
    if (hit) return reject(abortReason(hit));
    let timer;
    const done = (fn, value) => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', onAbort);
      fn(value);
    };
    function onAbort() {
      done(reject, abortReason(signals.find((s) => s.aborted)));
    }
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
    if (Number.isFinite(ms)) timer = setTimeout(() => done(resolve), Math.max(0, ms));
  });
}

function json(value, status = 200) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { 'content-type': 'application/json', ...CORS },
  });
}

/** The body as a stream: `chunkBytes` every `chunkMs`; finish at the end, abort on cancel. */
function slowBody(sim, d, signals) {
  const bytes = new TextEncoder().encode(d.body);
  const size = Math.max(1, d.chunkBytes ?? 16);
  const cancelled = new AbortController();
  const all = [...signals, cancelled.signal];
  let offset = 0;
  return new ReadableStream({
    async pull(controller) {
      try {
        await sleep(d.chunkMs ?? 0, all);
      } catch (err) {
        sim.abort(d.id);
        if (!cancelled.signal.aborted) controller.error(err);
        return;
      }
      const end = Math.min(offset + size, bytes.length);
      controller.enqueue(bytes.slice(offset, end));
      offset = end;
      if (offset >= bytes.length) {
        controller.close();
        sim.finish(d.id, performance.now());
      }
    },
    cancel() {
      cancelled.abort();
      sim.abort(d.id);
    },
  });
}

/**
 * A stream's server-sent events (each ends with a blank line): event i is due `i * eventMs`
 * after the headers, and every event due by the time the reader asks goes in one chunk (so a
 * lagging timer or a slow reader costs no extra wake-ups). Finish at the end, abort on cancel.
 */
function eventStream(sim, d, signals) {
  const events = d.body.split(/(?<=\n\n)/);
  const step = d.eventMs ?? 0;
  const encoder = new TextEncoder();
  const cancelled = new AbortController();
  const all = [...signals, cancelled.signal];
  const start = performance.now();
  const due = () => (step > 0 ? Math.min(events.length, Math.floor((performance.now() - start) / step) + 1) : events.length);
  let sent = 0;
  return new ReadableStream({
    async pull(controller) {
      try {
        if (due() <= sent) await sleep(start + sent * step - performance.now(), all);
      } catch (err) {
        sim.abort(d.id);
        if (!cancelled.signal.aborted) controller.error(err);
        return;
      }
      const upto = Math.max(due(), sent + 1);
      controller.enqueue(encoder.encode(events.slice(sent, upto).join('')));
      sent = upto;
      if (sent >= events.length) {
        controller.close();
        sim.finish(d.id, performance.now());
      }
    },
    cancel() {
      cancelled.abort();
      sim.abort(d.id);
    },
  });
}

/**
 * The body as the simulator reads it, with its size in `content-length` (the Batch APIs'
 * limits are in bytes). An upload to `…/v1/files` (multipart/form-data, as the OpenAI SDKs
 * send it) becomes `{ purpose, filename, bytes, content, lines }`, each JSONL line parsed
 * here (`false` for one that is not JSON): the simulator has no parser of its own.
 */
async function readBody(request, path) {
  const headers = new Headers(request.headers);
  if (request.method === 'GET' || request.method === 'HEAD') return { body: '', headers };
  const type = headers.get('content-type') ?? '';
  if (/\/v1\/files\/?$/.test(path) && /^multipart\/form-data/i.test(type)) {
    let form;
    try {
      form = await request.formData();
    } catch {
      return { body: '', headers };
    }
    const file = form.get('file');
    const content = typeof file === 'object' && file !== null ? await file.text() : undefined;
    const lines = content === undefined ? [] : content.replace(/\r?\n$/, '').split(/\r?\n/).map((line) => {
      try {
        return JSON.parse(line);
      } catch {
        return false;
      }
    });
    const purpose = form.get('purpose') ?? undefined;
    return { body: JSON.stringify({ purpose, filename: file?.name, bytes: file?.size, content, lines }), headers };
  }
  const bytes = await request.arrayBuffer();
  headers.set('content-length', String(bytes.byteLength));
  return { body: new TextDecoder().decode(bytes), headers };
}

/**
 * Answers one fetch-API `Request` from the simulator `sim`, in real time.
 * @param {import("../pkg/edgebatch.js").Simulator} sim
 * @param {Request} request
 * @param {{ signal?: AbortSignal }} [options] aborts the answer (like the client going away)
 * @returns {Promise<Response>} rejects for hang (when aborted) and disconnect
 */
export async function serveSim(sim, request, { signal } = {}) {
  const path = new URL(request.url).pathname;
  if (request.method === 'OPTIONS') return new Response(null, { status: 204, headers: CORS });
  if (request.method === 'GET' && /\/stats\/?$/.test(path)) return json(sim.stats());
  const signals = [request.signal, signal].filter(Boolean);
  const { body, headers } = await readBody(request, path);
  const d = sim.handle(request.method, path + new URL(request.url).search, headers, body, performance.now());
  try {
    await sleep(d.action === 'hang' ? Infinity : d.delayMs, signals);
  } catch (err) {
    sim.abort(d.id);
    throw err;
  }
  if (d.action === 'disconnect') {
    sim.finish(d.id, performance.now());
    throw disconnectError();
  }
  const init = { status: d.status, headers: { ...d.headers, ...CORS } };
  if (d.action === 'slow_body') return new Response(slowBody(sim, d, signals), init);
  if (d.action === 'stream') return new Response(eventStream(sim, d, signals), init);
  sim.finish(d.id, performance.now());
  return new Response(d.body, init);
}
