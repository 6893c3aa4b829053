// @ts-check
// What the providers' Batch API adapters (provider-anthropic.js, provider-openai.js) share: one
// HTTP call that never follows a redirect with the key, its typed error, and a JSONL body read
// line by line with an idle timeout instead of a total one.

/** Answers to a create that say it was not taken and may be asked again. */
export const RETRY_LATER = [408, 409, 429, 529];
/** The longest one provider call may take (a create uploads up to 256 MB). */
const CALL_MS = 300_000;
/** A results file is read as long as it takes, but not when nothing comes for this long. */
const RESULTS_IDLE_MS = 60_000;

export class ProviderError extends Error {
  /**
   * @param {string} message @param {number} status the HTTP status (0: no answer)
   * @param {boolean} retryable false when the same call would meet the same refusal
   */
  constructor(message, status, retryable) {
    super(message);
    this.status = status;
    this.retryable = retryable;
    /** Set by an adapter when the call failed before anything that could make a batch. */
    this.beforeCreate = false;
  }
}

/**
 * @typedef {{ body?: ReadableStream, bytes?: number, json?: unknown, type?: string }} Send
 * @typedef {(method: string, path: string, send?: Send, signal?: AbortSignal) => Promise<Response>} Call
 */

/**
 * A caller of one API root: `call(method, path, send?, signal?)` resolves to a 2xx response or
 * throws a ProviderError (redacted, a redirect naming only its host).
 * @param {string} base @param {Record<string, string>} headers @param {(s: string) => string} redact
 * @returns {Call}
 */
export function caller(base, headers, redact) {
  return async (method, path, send, signal = AbortSignal.timeout(CALL_MS)) => {
    /** @type {BodyInit | undefined} */
    let body = send?.json !== undefined ? JSON.stringify(send.json) : send?.body;
    if (send?.body && send.bytes !== undefined && typeof (/** @type {any} */ (globalThis).FixedLengthStream) === 'function') {
      // A known length: the upload goes with content-length, not chunked.
      const fixed = new (/** @type {any} */ (globalThis).FixedLengthStream)(send.bytes);
      send.body.pipeTo(fixed.writable).catch(() => {});
      body = fixed.readable;
    }
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...headers, ...(body !== undefined && { 'content-type': send?.type ?? 'application/json' }) },
      ...(body !== undefined && { body, ...(body instanceof ReadableStream && { duplex: 'half' }) }),
      signal,
      // Never followed: the key would go along to wherever Location points.
      redirect: 'manual',
    });
    if (res.ok) return res;
    if (res.status >= 300 && res.status < 400) {
      res.body?.cancel().catch(() => {});
      // Only the host: the Location's path and query may carry a token.
      let host;
      try {
        host = new URL(res.headers.get('location') ?? '', base).host;
      } catch {
        host = '(an unreadable Location)';
      }
      throw new ProviderError(`${method} ${path || '/'}: redirect not followed: HTTP ${res.status} to host ${host} ` +
        '(provider calls are sent with redirect: "manual")', res.status, false);
    }
    const text = await res.text().catch(() => '');
    const retryable = res.status >= 500 || RETRY_LATER.includes(res.status);
    throw new ProviderError(`${method} ${path || '/'}: ${res.status} ${redact(text.slice(0, 500))}`, res.status, retryable);
  };
}

/**
 * The lines of a JSONL body at `path` as they arrive. No total time (a large file takes what
 * it takes): RESULTS_IDLE_MS without a byte ends the read as a failure.
 * @param {Call} call @param {string} path @returns {AsyncGenerator<string>}
 */
export async function* jsonlLines(call, path) {
  const stop = new AbortController();
  /** @template T @param {Promise<T>} p @returns {Promise<T>} */
  const idle = (p) => {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const quiet = new Promise((_, reject) => {
      timer = setTimeout(() => {
        const err = new ProviderError(`GET ${path}: nothing came for ${RESULTS_IDLE_MS / 1000} s`, 0, true);
        stop.abort(err);
        reject(err);
      }, RESULTS_IDLE_MS);
    });
    return /** @type {Promise<T>} */ (Promise.race([p, quiet]).finally(() => clearTimeout(timer)));
  };
  try {
    const res = await idle(call('GET', path, undefined, stop.signal));
    if (!res.body) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = '';
    for (;;) {
      const { done, value } = await idle(reader.read());
      if (done) break;
      const parts = (rest + value).split('\n');
      rest = /** @type {string} */ (parts.pop());
      yield* parts;
    }
    if (rest !== '') yield rest;
  } finally {
    stop.abort(); // a read left early (a commit failed) lets go of its connection
  }
}

/**
 * A results line parsed, or null (blank, or not JSON: it names no item, and its item goes
 * realtime when the file ends). @param {string} text
 */
export function parseLine(text) {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
