// `--worker URL`: sends items to a running edgebatch Worker's POST /v1/batch and reads its
// NDJSON answer line by line as it arrives. Large inputs go in several batches (the Worker caps
// items per batch and the body size), one after the other. Also the fetch and line reading
// that the batch commands (cli/batches.mjs) share.

/** Items per batch and bytes per body, under the Worker's defaults (1000 items, 1 MiB). */
export const CHUNK_ITEMS = 1000;
export const CHUNK_BYTES = 900 * 1024;

/** Splits `items` (with their JSON sizes) into consecutive chunks under both caps. */
export function chunk(items, maxItems = CHUNK_ITEMS, maxBytes = CHUNK_BYTES) {
  const chunks = [];
  let current = [];
  let bytes = 0;
  for (const entry of items) {
    const size = Buffer.byteLength(JSON.stringify(entry.item)) + 1;
    if (current.length > 0 && (current.length >= maxItems || bytes + size > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export class WorkerError extends Error {}

/**
 * fetch() to the Worker: a connection failure or a non-2xx answer becomes a WorkerError saying
 * what happened (the Worker's JSON error type and message when it sent one). A caller's abort
 * is rethrown as is.
 */
export async function workerFetch(url, init) {
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (init.signal?.aborted) throw e;
    throw new WorkerError(`cannot reach the Worker at ${url.origin}: ${e.cause?.message ?? e.message}`);
  }
  if (res.ok) return res;
  const text = await res.text().catch(() => '');
  let message = text.slice(0, 300);
  try {
    const err = JSON.parse(text).error;
    message = `${err.type}: ${err.message}`;
  } catch {
    // not JSON: show the start of the text
  }
  throw Object.assign(new WorkerError(`the Worker answered ${res.status}: ${message}`), { status: res.status });
}

/**
 * POSTs one batch and yields every NDJSON line as a parsed object: item results, then
 * `{ summary }` (or `{ error }` if the Worker failed mid-stream).
 */
export async function* postBatch(base, token, body, signal) {
  const url = new URL('/v1/batch', base);
  const res = await workerFetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
    signal,
  });
  for await (const line of responseLines(res)) yield parseLine(line);
}

/** The non-blank lines of a response body, as text, as they arrive. */
export async function* responseLines(res) {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunkBytes of res.body) {
    buffered += decoder.decode(chunkBytes, { stream: true });
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim() !== '') yield line;
    }
  }
  buffered += decoder.decode();
  if (buffered.trim() !== '') yield buffered;
}

function parseLine(line) {
  try {
    return JSON.parse(line);
  } catch {
    throw new WorkerError(`the Worker sent a line that is not JSON: ${line.slice(0, 120)}`);
  }
}
