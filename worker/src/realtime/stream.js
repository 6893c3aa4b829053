// @ts-check
// A `stream: true` reply passed through as it arrives: the upstream's server-sent events, line
// by line through the redactor (a secret cannot hide across two chunks of one line), with the
// usage the events report read on the way (the wire's `streamUsage`) for the limiter and the
// token's hour. A stream that reports none leaves the limiter its estimate.
//
// Bounded where the upstream could hold things open: a stream that sends nothing for `idleMs`
// is cut (its permit goes back as a timeout, before the limiter's lease would lapse and admit
// one too many), and so is one with a line past MAX_LINE (a line is held whole for the
// redactor). The client learns it in the stream, as the providers say a mid-stream failure: an
// error event carrying the provider's error body (the SDKs raise it), then the end; the
// upstream's reader is cancelled.
import { pick } from './answer.js';

/** The longest line of a stream, in UTF-16 units (about 1 MiB of text). */
export const MAX_LINE = 1 << 20;
/** What goes before an error event's `data:` line: Anthropic names its events, OpenAI does not. */
const ERROR_EVENT = /** @type {Record<string, string>} */ ({ anthropic: 'event: error\n' });

/** @typedef {{ inputTokens: number, outputTokens: number }} Usage */

/**
 * @param {Response} upstream a 2xx `text/event-stream` reply, unread
 * @param {(s: string) => string} redact
 * @param {Pick<import('./index.js').Wire, 'name' | 'ids' | 'streamUsage' | 'error'>} wire
 * @param {number} idleMs the longest wait for the upstream's next chunk (EDGEBATCH_REALTIME_TIMEOUT_MS)
 * @param {(usage: Usage, failure?: 'timeout') => void} ended called once: the stream ended,
 *   failed or was cancelled; `timeout` when the upstream went quiet
 * @returns {Response}
 */
export function passThrough(upstream, redact, wire, idleMs, ended) {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  /** @type {Usage} */
  const usage = { inputTokens: 0, outputTokens: 0 };
  let rest = '';
  let over = false;
  /** @param {'timeout'} [failure] */
  const end = (failure) => {
    if (over) return;
    over = true;
    ended(usage, failure);
  };
  /** @param {string} line */
  const read = (line) => {
    // OpenAI ends with `data: [DONE]`, which is not JSON.
    if (!line.startsWith('data:') || line.trim() === 'data: [DONE]') return;
    let event;
    try {
      event = JSON.parse(line.slice(5));
    } catch {
      return;
    }
    const { input, output } = wire.streamUsage(event);
    if (typeof input === 'number') usage.inputTokens = input;
    if (typeof output === 'number') usage.outputTokens = output;
  };
  const reader = /** @type {ReadableStream<Uint8Array>} */ (upstream.body).getReader();
  /**
   * Cuts the stream: the provider's error event to the client, then the end.
   * @param {ReadableStreamDefaultController<Uint8Array>} controller
   * @param {number} status @param {string} message @param {string} code @param {'timeout'} [failure]
   */
  const cut = async (controller, status, message, code, failure) => {
    end(failure);
    reader.cancel(new Error(message)).catch(() => {});
    const data = JSON.stringify(await wire.error(status, message, code).json());
    // The blank line first ends an event the upstream left half sent (a blank line more is none).
    controller.enqueue(encoder.encode(`\n${ERROR_EVENT[wire.name] ?? ''}data: ${data}\n\n`));
    controller.close();
  };
  const body = new ReadableStream({
    async pull(controller) {
      try {
        // Reads until a whole line is in: a pull that enqueues nothing is not called again (the
        // streams spec), so returning on a chunk without a newline would stall the stream.
        for (;;) {
          const next = await within(reader.read(), idleMs);
          if (next === null) {
            await cut(controller, 504, `the upstream sent nothing for ${idleMs} ms (EDGEBATCH_REALTIME_TIMEOUT_MS): the stream is cut`, 'timeout', 'timeout');
            return;
          }
          if (next.done) {
            rest += decoder.decode();
            if (rest !== '') {
              read(rest);
              controller.enqueue(encoder.encode(redact(rest)));
            }
            controller.close();
            end();
            return;
          }
          const lines = (rest + decoder.decode(next.value, { stream: true })).split('\n');
          rest = /** @type {string} */ (lines.pop());
          if (rest.length > MAX_LINE) {
            rest = '';
            await cut(controller, 502, `the upstream sent a line longer than ${MAX_LINE} characters: the stream is cut`, 'upstream_line_too_long');
            return;
          }
          if (lines.length === 0) continue;
          for (const line of lines) read(line);
          controller.enqueue(encoder.encode(lines.map((l) => `${redact(l)}\n`).join('')));
          return;
        }
      } catch (err) {
        // The upstream broke off mid-stream: the client sees the stream end in error.
        controller.error(err);
        end();
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason).catch(() => {});
    },
  });
  const headers = { 'content-type': upstream.headers.get('content-type') ?? 'text/event-stream', 'cache-control': 'no-cache' };
  return new Response(body, { status: upstream.status, headers: { ...headers, ...pick(upstream.headers, wire.ids) } });
}

/**
 * What `read` gives within `ms`, else null (the read is left pending: the caller cancels it).
 * @template T @param {Promise<T>} read @param {number} ms
 * @returns {Promise<T | null>}
 */
async function within(read, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  try {
    return await Promise.race([read, new Promise((/** @type {(v: null) => void} */ resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}
