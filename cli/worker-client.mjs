// `--worker URL`: sends items to a running edgebatch Worker's POST /v1/batch and reads its
// NDJSON answer line by line as it arrives. Large inputs go in several batches (the Worker caps
// items per batch and the body size), one after the other.

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
 * POSTs one batch and yields every NDJSON line as a parsed object: item results, then
 * `{ summary }` (or `{ error }` if the Worker failed mid-stream).
 */
export async function* postBatch(base, token, body, signal) {
  const url = new URL('/v1/batch', base);
  let res;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new WorkerError(`cannot reach the Worker at ${url.origin}: ${e.cause?.message ?? e.message}`);
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    let message = text.slice(0, 300);
    try {
      const err = JSON.parse(text).error;
      message = `${err.type}: ${err.message}`;
    } catch {
      // not JSON: show the start of the text
    }
    throw new WorkerError(`the Worker answered ${res.status}: ${message}`);
  }
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunkBytes of res.body) {
    buffered += decoder.decode(chunkBytes, { stream: true });
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim() !== '') yield parseLine(line);
    }
  }
  buffered += decoder.decode();
  if (buffered.trim() !== '') yield parseLine(buffered);
}

function parseLine(line) {
  try {
    return JSON.parse(line);
  } catch {
    throw new WorkerError(`the Worker sent a line that is not JSON: ${line.slice(0, 120)}`);
  }
}
