// @ts-check
// Anthropic's Message Batches API as an adapter of provider-batch.js: one create of a JSON body
// `{"requests":[{ custom_id, params }, …]}` (100,000 requests, 256 MB), retrieve, cancel, and
// the results JSONL read into the engine's ResultLines.
import { UPSTREAMS } from '../config.js';
import { ProviderError, caller, jsonlLines, parseLine } from './provider-call.js';

const DEFAULT_VERSION = '2023-06-01';
/** Error types of an `errored` line worth a realtime try: the provider's trouble, not the request's. */
const RETRYABLE = new Set(['api_error', 'overloaded_error', 'rate_limit_error', 'timeout_error']);
/** The HTTP status a realtime call would have met with each error type. */
const STATUS = /** @type {Record<string, number>} */ ({ invalid_request_error: 400, authentication_error: 401, billing_error: 402,
  permission_error: 403, not_found_error: 404, request_too_large: 413, rate_limit_error: 429, api_error: 500, timeout_error: 504,
  overloaded_error: 529 });

/** How a create body is framed: its limits and what goes around and between its request lines. */
export const ANTHROPIC_FRAME = {
  maxRequests: 100_000,
  maxBytes: 256 * 1024 * 1024,
  open: '{"requests":[',
  sep: ',',
  close: ']}',
  /** A request line up to its params (the line ends with `}`). @param {string} customId */
  prefix: (customId) => `{"custom_id":${JSON.stringify(customId)},"params":`,
};

/**
 * Reads one results line into a ResultLine (null: it names no item).
 * @param {any} l @returns {import('./provider-batch-sql.js').ResultLine | null}
 */
export function anthropicLine(l) {
  if (typeof l?.custom_id !== 'string') return null;
  const type = l.result?.type;
  if (type === 'succeeded') {
    const u = l.result?.message?.usage;
    const usage = u && { inputTokens: Number(u.input_tokens ?? 0), outputTokens: Number(u.output_tokens ?? 0) };
    return { custom_id: l.custom_id, type: 'succeeded', message: l.result?.message, ...(usage && { usage }) };
  }
  if (type === 'errored') {
    // Anthropic's error response ({ type: "error", error: { type, message } }), or its inner part.
    const e = l.result?.error?.error ?? l.result?.error ?? {};
    const errType = typeof e.type === 'string' ? e.type : 'api_error';
    return { custom_id: l.custom_id, type: 'errored', retryable: RETRYABLE.has(errType),
      error: { ...(STATUS[errType] && { status: STATUS[errType] }), type: errType, message: String(e.message ?? 'the provider batch reported an error') } };
  }
  return { custom_id: l.custom_id, type: 'unfinished' }; // expired, canceled: never run there
}

/**
 * The adapter at the batch's base URL.
 * @param {import('./ledger-sql.js').BatchConfig['provider']} p @param {string} apiKey @param {(s: string) => string} redact
 */
export function anthropicApi(p, apiKey, redact) {
  const call = caller(`${String(p.baseUrl ?? UPSTREAMS.anthropic.baseUrl).replace(/\/+$/, '')}/v1/messages/batches`,
    { 'x-api-key': apiKey, 'anthropic-version': p.version ?? DEFAULT_VERSION }, redact);
  /** @param {any} b */
  const state = (b) => ({ status: String(b.processing_status), counts: b.request_counts ?? null });
  return {
    frame: ANTHROPIC_FRAME,
    /** @param {ReadableStream} body @param {number} bytes */
    create: async (body, bytes) => {
      const made = await (await call('POST', '', { body, bytes })).json();
      if (typeof made?.id !== 'string') throw new Error('the create answer names no batch id');
      return { id: made.id, ...state(made) };
    },
    /** @param {string} id */
    retrieve: async (id) => state(await (await call('GET', `/${encodeURIComponent(id)}`)).json()),
    /** @param {string} id */
    cancel: async (id) => (await call('POST', `/${encodeURIComponent(id)}/cancel`)).json(),
    /** A cancel that failed because the batch is over there already. @param {unknown} err */
    alreadyEnded: (err) => err instanceof ProviderError && err.status >= 400 && err.status < 500
      && /already ended|has ended|already (been )?cancell?ed/i.test(err.message),
    /** @param {string} id */
    async *results(id) {
      for await (const text of jsonlLines(call, `/${encodeURIComponent(id)}/results`)) {
        const line = anthropicLine(parseLine(text));
        if (line) yield line;
      }
    },
  };
}
