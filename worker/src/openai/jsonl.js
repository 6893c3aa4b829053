// @ts-check
// The batch input file: JSONL, one request a line, `{ custom_id, method: "POST", url, body }`.
//   checkInput   at upload (purpose "batch"): every line is checked, the first fault named by
//                its line (not UTF-8, not JSON, a missing or unknown field, another method, an
//                endpoint this Worker does not run, a custom_id seen before, one request more
//                than a batch may hold)
//   toRequests   at batch create: the stored file, streamed, as the engine's NDJSON: a header
//                line with the fixed provider (and the create's options), then `{ custom_id, params }` for each line (a
//                blank line stays blank, so the engine's line n is the file's line n - 1)
// What the engine checks itself (the item rules, custom_id's characters, the sizes) it names by
// its line, which `fileLine` turns back into the file's.
import { invalid } from './errors.js';

/** The endpoints a batch (and each of its lines) may name. */
export const ENDPOINTS = ['/v1/chat/completions'];
const FIELDS = ['custom_id', 'method', 'url', 'body'];

/**
 * @param {Uint8Array} bytes the whole file (lines are decoded one at a time: the file is held
 *   once, as bytes)
 * @param {number} maxRequests the most a batch may hold (EDGEBATCH_BATCH_MAX_REQUESTS): also
 *   bounds the custom_ids kept to find a repeated one
 * @returns {number} its requests
 */
export function checkInput(bytes, maxRequests) {
  /** @type {Map<string, number>} */
  const seen = new Map();
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let line = 0;
  for (let start = 0; start <= bytes.length;) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    line++;
    let t;
    try {
      t = decoder.decode(bytes.subarray(start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end));
    } catch {
      throw invalid(`line ${line} is not valid UTF-8`, 'file');
    }
    start = end + 1;
    // As linesOf reads it at create: a byte order mark opening the file is not part of line 1.
    if (line === 1 && t.startsWith('\uFEFF')) t = t.slice(1);
    if (t.trim() === '') continue;
    const v = parseLine(t, line);
    for (const key of Object.keys(v)) {
      if (!FIELDS.includes(key)) throw invalid(`line ${line}: unknown field ${JSON.stringify(key)} (a line is { custom_id, method, url, body })`, 'file');
    }
    for (const key of FIELDS) if (!Object.hasOwn(v, key)) throw invalid(`line ${line}: ${key} is missing (a line is { custom_id, method, url, body })`, 'file');
    if (typeof v.custom_id !== 'string' || v.custom_id === '') throw invalid(`line ${line}: custom_id must be a non-empty string`, 'file');
    const first = seen.get(v.custom_id);
    if (first !== undefined) throw invalid(`line ${line}: custom_id ${JSON.stringify(v.custom_id.slice(0, 64))} is repeated (first on line ${first}): each must be unique`, 'file');
    if (seen.size === maxRequests) {
      throw invalid(`line ${line}: the file has more than ${maxRequests} requests, the most a batch holds here (EDGEBATCH_BATCH_MAX_REQUESTS)`, 'file');
    }
    seen.set(v.custom_id, line);
    if (v.method !== 'POST') throw invalid(`line ${line}: method must be "POST"`, 'file');
    if (!ENDPOINTS.includes(v.url)) {
      throw invalid(`line ${line}: url ${JSON.stringify(String(v.url).slice(0, 80))} is not an endpoint this Worker runs (${ENDPOINTS.join(', ')})`, 'file');
    }
    if (v.body === null || typeof v.body !== 'object' || Array.isArray(v.body)) throw invalid(`line ${line}: body must be an object (a request body)`, 'file');
  }
  if (seen.size === 0) throw invalid('the file has no requests (one JSON object a line)', 'file');
  return seen.size;
}

/**
 * The engine's NDJSON for a stored input file.
 * @param {ReadableStream<Uint8Array>} file
 * @param {{ provider: object, options?: object }} header its first line: the fixed provider
 *   (upstream.js), and the options of the create's edgebatch-options header
 * @param {string} endpoint the batch's endpoint: every line must name it
 * @returns {{ body: ReadableStream<Uint8Array>, fault: () => unknown }} `fault`: what stopped the
 *   stream, if anything (the engine, reading it as a request body, may see another error)
 */
export function toRequests(file, header, endpoint) {
  const encoder = new TextEncoder();
  const lines = linesOf(file);
  let began = false;
  /** @type {unknown} */
  let fault;
  const body = new ReadableStream({
    async pull(controller) {
      try {
        await step(controller);
      } catch (err) {
        fault = err;
        throw err;
      }
    },
    cancel() {
      lines.return(undefined).catch(() => {});
    },
  });
  /** @param {ReadableStreamDefaultController<Uint8Array>} controller */
  async function step(controller) {
    if (!began) {
      began = true;
      controller.enqueue(encoder.encode(`${JSON.stringify(header)}\n`));
      return;
    }
    const next = await lines.next();
    if (next.done) return controller.close();
    const { line, text } = next.value;
    if (text.trim() === '') return controller.enqueue(encoder.encode('\n'));
    const v = parseLine(text, line);
    if (v.url !== endpoint) {
      throw invalid(`line ${line}: url ${JSON.stringify(String(v.url).slice(0, 80))} is not the batch's endpoint ${JSON.stringify(endpoint)}`, 'input_file_id');
    }
    controller.enqueue(encoder.encode(`${JSON.stringify({ custom_id: v.custom_id, params: v.body })}\n`));
  }
  return { body, fault: () => fault };
}

/**
 * An engine message about its NDJSON line n, about the file's line n - 1 (`line 4.params.model
 * must be …` reads `line 3: body.model must be …`).
 * @param {string} message
 */
export function fileLine(message) {
  return message.replace(/\bline (\d+)(\.params)?(\.custom_id)?/g, (_, n, params, id) => `line ${Number(n) - 1}${params ? ': body' : id ? ': custom_id' : ''}`);
}

/**
 * @param {string} text @param {number} line
 * @returns {Record<string, any>}
 */
function parseLine(text, line) {
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalid(`line ${line} is not valid JSON (${/** @type {Error} */ (e).message})`, 'file');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(`line ${line} must be a JSON object { custom_id, method, url, body }`, 'file');
  return v;
}

/**
 * The lines of a UTF-8 stream, numbered from 1 (blank ones too), a trailing `\r` dropped.
 * @param {ReadableStream<Uint8Array>} stream
 * @returns {AsyncGenerator<{ line: number, text: string }>}
 */
export async function* linesOf(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let rest = '';
  let line = 0;
  /** @param {string} t */
  const clean = (t) => (t.endsWith('\r') ? t.slice(0, -1) : t);
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      const parts = (rest + decoder.decode(next.value, { stream: true })).split('\n');
      rest = /** @type {string} */ (parts.pop());
      for (const p of parts) yield { line: ++line, text: clean(p) };
    }
    rest += decoder.decode();
    if (rest !== '') yield { line: ++line, text: clean(rest) };
  } finally {
    reader.cancel().catch(() => {});
  }
}
