// Simulator sessions, for the demo page: `POST /sim/sessions { config?, hangMs? }` makes a
// simulator of its own (its own buckets, faults and stats) answering under `/sim/s/<id>/...`,
// so each run of the page starts from a fresh minute, and a naive run cannot use up
// edgebatch's budget. Anyone who can reach the dev server can make one, so what a session may
// configure is capped (SESSION_CAPS), and only the newest MAX_SESSIONS are kept.
import { allow, badRequest, jsonResponse, readCappedText } from './http.js';
import { int, parseJsonObject } from './validate.js';

/** Sessions kept at once; creating one more drops the oldest (a dev server, not a store). */
export const MAX_SESSIONS = 16;
/** How long a session's simulated hang may last (the page's default is 10 s). */
export const SESSION_HANG_CAP_MS = 30_000;
/**
 * The most a session may ask for, so that a page cannot turn the dev server into something
 * that holds requests for minutes or answers a small request with megabytes: with these a
 * reply takes at most 10 + 10 + 4096 * 5 ms ≈ 40 s and carries at most 4096 tokens.
 */
export const SESSION_CAPS = {
  maxTokens: 4096,
  'latency.baseMs': 10_000,
  'latency.jitterMs': 10_000,
  'latency.perOutputTokenMs': 5,
  'latency.chunkMs': 100,
  capacity: 1000,
  queue: 1000,
  shedMs: 10_000,
};
const SESSION_BODY_BYTES = 16 * 1024;
const HANG_MS_MIN = 100;
const SESSION_FIELDS = new Set(['config', 'hangMs']);

/** id -> target ({ sim, hangMs, active, evicted }), oldest first. */
const sessions = new Map();

/** A simulator to serve from, with the count of requests it is answering (see `release`). */
export function target(sim, hangMs) {
  return { sim, hangMs, active: 0, evicted: false };
}

export function session(id) {
  return sessions.get(id);
}

/**
 * Frees an evicted session's simulator once nothing uses it: no request of ours between
 * arrival and answer (`active`, counted BEFORE the body is read: a session freed while a
 * request was still reading its body was a use-after-free), and no reply still streaming
 * (`inFlight`, until the sim's finish/abort). A streaming one is left to the GC.
 */
export function release(t) {
  if (t.evicted && t.active === 0 && !t.freed && t.sim.stats().inFlight === 0) {
    t.freed = true;
    t.sim.free();
  }
}

/** `POST /sim/sessions`: answers 201 `{ id, path }`; a bad or over-cap setting is a 400 naming it. */
export async function createSession(request, Simulator) {
  allow(request, ['POST']);
  const text = await readCappedText(request, SESSION_BODY_BYTES, 5_000);
  const body = parseJsonObject(text || '{}', SESSION_FIELDS, '{ config?, hangMs? }');
  const { config = {}, hangMs = SESSION_HANG_CAP_MS } = body;
  int('hangMs', hangMs, HANG_MS_MIN, SESSION_HANG_CAP_MS);
  checkCaps(config);
  let sim;
  try {
    sim = new Simulator(config);
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw badRequest(`config: ${err.message}`);
    throw err;
  }
  const id = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('');
  sessions.set(id, target(sim, hangMs));
  for (const [old, t] of sessions) {
    if (sessions.size <= MAX_SESSIONS) break;
    sessions.delete(old);
    t.evicted = true;
    release(t);
  }
  // A path, not a URL: a URL would be built from the Host header, which the client chose.
  return jsonResponse(201, { id, path: `/sim/s/${id}` });
}

function checkCaps(config) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) return; // the Simulator says why
  for (const [name, cap] of Object.entries(SESSION_CAPS)) {
    const [head, tail] = name.split('.');
    const outer = Object.hasOwn(config, head) ? config[head] : undefined;
    const value = tail === undefined ? outer : outer && typeof outer === 'object' && Object.hasOwn(outer, tail) ? outer[tail] : undefined;
    if (typeof value === 'number' && value > cap) {
      throw badRequest(`config.${name} must be at most ${cap} for a session, got ${value}`);
    }
  }
}
