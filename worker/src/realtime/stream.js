// @ts-check
// A `stream: true` reply passed through as it arrives: the upstream's server-sent events, line
// by line through the redactor (a secret cannot hide across two chunks of one line), with the
// usage the events report read on the way (the wire's `streamUsage`) for the limiter and the
// token's hour. A stream that reports none leaves the limiter its estimate.
import { pick } from './answer.js';

/** @typedef {{ inputTokens: number, outputTokens: number }} Usage */

/**
 * @param {Response} upstream a 2xx `text/event-stream` reply, unread
 * @param {(s: string) => string} redact
 * @param {Pick<import('./index.js').Wire, 'ids' | 'streamUsage'>} wire
 * @param {(usage: Usage) => void} ended called once: the stream ended, failed or was cancelled
 * @returns {Response}
 */
export function passThrough(upstream, redact, wire, ended) {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  /** @type {Usage} */
  const usage = { inputTokens: 0, outputTokens: 0 };
  let rest = '';
  let over = false;
  const end = () => {
    if (over) return;
    over = true;
    ended(usage);
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
  const body = new ReadableStream({
    async pull(controller) {
      try {
        // Reads until a whole line is in: a pull that enqueues nothing is not called again (the
        // streams spec), so returning on a chunk without a newline would stall the stream.
        for (;;) {
          const next = await reader.read();
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
