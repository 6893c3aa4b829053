// @ts-check
// A `stream: true` reply passed through as it arrives: the upstream's server-sent events, line
// by line through the redactor (a secret cannot hide across two chunks of one line), with the
// usage the chunks report read on the way for the limiter and the token's hour (OpenAI sends
// it in a last chunk when the request asks `stream_options: { include_usage: true }`; without
// it the stream reports none and the limiter keeps its estimate).

/** @typedef {{ inputTokens: number, outputTokens: number }} Usage */

/**
 * @param {Response} upstream a 2xx `text/event-stream` reply, unread
 * @param {(s: string) => string} redact
 * @param {string[]} keep upstream headers the answer keeps
 * @param {(usage: Usage) => void} ended called once: the stream ended, failed or was cancelled
 * @returns {Response}
 */
export function passThrough(upstream, redact, keep, ended) {
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
    if (!line.startsWith('data:') || line.trim() === 'data: [DONE]') return;
    let chunk;
    try {
      chunk = JSON.parse(line.slice(5));
    } catch {
      return;
    }
    const u = chunk?.usage;
    if (typeof u?.prompt_tokens === 'number') usage.inputTokens = u.prompt_tokens;
    if (typeof u?.completion_tokens === 'number') usage.outputTokens = u.completion_tokens;
  };
  const reader = /** @type {ReadableStream<Uint8Array>} */ (upstream.body).getReader();
  const body = new ReadableStream({
    async pull(controller) {
      try {
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
        if (lines.length === 0) return;
        for (const line of lines) read(line);
        controller.enqueue(encoder.encode(lines.map((l) => `${redact(l)}\n`).join('')));
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
  /** @type {Record<string, string>} */
  const headers = { 'content-type': upstream.headers.get('content-type') ?? 'text/event-stream', 'cache-control': 'no-cache' };
  for (const name of keep) {
    const v = upstream.headers.get(name);
    if (v !== null && name !== 'retry-after') headers[name] = v;
  }
  return new Response(body, { status: upstream.status, headers });
}
