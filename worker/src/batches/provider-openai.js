// @ts-check
// OpenAI's Batch API as an adapter of provider-batch.js: a create is two calls, the JSONL input
// file uploaded (multipart, streamed with its exact length: 50,000 lines, 200 MB) and a batch
// made of it (`completion_window: "24h"`, the API's only one); retrieve, cancel; once it is
// over, its output file and then its error file read into the engine's ResultLines. A failed
// upload made no batch, so it is always safe to try again; only the batch create can be lost.
import { UPSTREAMS } from '../config.js';
import { ProviderError, caller, jsonlLines, parseLine } from './provider-call.js';

const ENDPOINT = '/v1/chat/completions';
/** The provider's statuses as the engine follows them. */
const STATE = /** @type {Record<string, string>} */ ({ validating: 'in_progress', in_progress: 'in_progress', finalizing: 'in_progress',
  cancelling: 'canceling', completed: 'ended', expired: 'ended', cancelled: 'ended', failed: 'ended' });

/**
 * The multipart framing of one upload: `boundary` a fixed length, so a body's size is known
 * before it is read. @param {string} boundary
 */
export function openaiFrame(boundary) {
  return {
    maxRequests: 50_000,
    maxBytes: 200 * 1024 * 1024,
    boundary,
    open: `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="edgebatch.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n`,
    sep: '\n',
    close: `\r\n--${boundary}--\r\n`,
    /** A request line up to its body (the line ends with `}`). @param {string} customId */
    prefix: (customId) => `{"custom_id":${JSON.stringify(customId)},"method":"POST","url":"${ENDPOINT}","body":`,
  };
}

/**
 * Reads one output- or error-file line into a ResultLine (null: it names no item). A response
 * of 429 or 5xx is worth a realtime try; a line with no response (cancelled, expired) never ran.
 * @param {any} l @returns {import('./provider-batch-sql.js').ResultLine | null}
 */
export function openaiLine(l) {
  if (typeof l?.custom_id !== 'string') return null;
  const r = l.response;
  if (!r || typeof r.status_code !== 'number') return { custom_id: l.custom_id, type: 'unfinished' };
  if (r.status_code >= 200 && r.status_code < 300) {
    const u = r.body?.usage;
    const usage = u && { inputTokens: Number(u.prompt_tokens ?? 0), outputTokens: Number(u.completion_tokens ?? 0) };
    return { custom_id: l.custom_id, type: 'succeeded', message: r.body, ...(usage && { usage }) };
  }
  const e = r.body?.error ?? {};
  return { custom_id: l.custom_id, type: 'errored', retryable: r.status_code === 429 || r.status_code >= 500,
    error: { status: r.status_code, type: typeof e.type === 'string' ? e.type : 'api_error', message: String(e.message ?? 'the provider batch reported an error') } };
}

/**
 * The adapter at the batch's base URL.
 * @param {import('./ledger-sql.js').BatchConfig['provider']} p @param {string} apiKey @param {(s: string) => string} redact
 */
export function openaiApi(p, apiKey, redact) {
  const call = caller(`${String(p.baseUrl ?? UPSTREAMS.openai.baseUrl).replace(/\/+$/, '')}/v1`, { authorization: `Bearer ${apiKey}` }, redact);
  const frame = openaiFrame(`edgebatch-${crypto.randomUUID().replaceAll('-', '')}`);
  /** @param {any} b */
  const state = (b) => ({ status: STATE[String(b.status)] ?? 'in_progress', counts: b.request_counts ?? null });
  /** @param {string} id */
  const retrieve = async (id) => (await call('GET', `/batches/${encodeURIComponent(id)}`)).json();
  /** Best effort: a file left behind only costs storage there. @param {unknown} id */
  const remove = (id) => (typeof id === 'string' ? call('DELETE', `/files/${encodeURIComponent(id)}`).then(() => {}, () => {}) : Promise.resolve());
  return {
    frame,
    /** @param {ReadableStream} body @param {number} bytes */
    create: async (body, bytes) => {
      let file;
      try {
        file = await (await call('POST', '/files', { body, bytes, type: `multipart/form-data; boundary=${frame.boundary}` })).json();
        if (typeof file?.id !== 'string') throw new ProviderError('POST /files: the upload answer names no file id', 0, true);
      } catch (err) {
        // No batch can come of a failed upload: its items wait for the next create.
        if (err instanceof ProviderError) err.beforeCreate = true;
        else if (err instanceof Error) Object.assign(err, { beforeCreate: true });
        throw err;
      }
      let made;
      try {
        made = await (await call('POST', '/batches', { json: { input_file_id: file.id, endpoint: ENDPOINT, completion_window: '24h' } })).json();
      } catch (err) {
        if (err instanceof ProviderError && err.status >= 400 && err.status < 500) await remove(file.id);
        throw err;
      }
      if (typeof made?.id !== 'string') throw new Error('the create answer names no batch id');
      return { id: made.id, ...state(made) };
    },
    /** @param {string} id */
    retrieve: async (id) => state(await retrieve(id)),
    /** @param {string} id */
    cancel: async (id) => (await call('POST', `/batches/${encodeURIComponent(id)}/cancel`)).json(),
    /** A cancel that failed because the batch is over there already. @param {unknown} err */
    alreadyEnded: (err) => err instanceof ProviderError && err.status >= 400 && err.status < 500
      && /cannot cancel a batch with status '(completed|failed|expired|cancelled)'/i.test(err.message),
    /** The output file's lines, then the error file's; the files are deleted once read. @param {string} id */
    async *results(id) {
      const b = await retrieve(id);
      for (const file of [b.output_file_id, b.error_file_id]) {
        if (typeof file !== 'string') continue;
        for await (const text of jsonlLines(call, `/files/${encodeURIComponent(file)}/content`)) {
          const line = openaiLine(parseLine(text));
          if (line) yield line;
        }
      }
      await Promise.all([b.input_file_id, b.output_file_id, b.error_file_id].map(remove));
    },
  };
}
