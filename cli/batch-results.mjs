// The output file of `edgebatch results`: the JSONL of GET /v1/batches/:id/results, appended in
// the Worker's completion order. Each line carries `edgebatch.seq`, so the last line's seq is
// where a resumed download starts (`?after=`). Written whole lines per write(2) on an O_APPEND
// descriptor: a killed download leaves whole lines plus at most one torn last line, which the
// next run cuts off. Read as a stream, never whole: a 100,000-request batch is a big file.
import fs from 'node:fs';
import readline from 'node:readline';
import { UsageError } from './results-file.mjs';

/** Bytes read at a time when looking for the last newline from the end. */
const TAIL_BLOCK = 64 * 1024;

/**
 * Cuts a torn last line off `path`, then reads it through.
 * @returns {Promise<{ lines: number, lastSeq: number, succeeded: number, notSucceeded: number, cut: number }>}
 *   (all zero for a missing file)
 */
export async function scanBatchResults(path) {
  const empty = { lines: 0, lastSeq: 0, succeeded: 0, notSucceeded: 0, cut: 0 };
  let size;
  try {
    size = fs.statSync(path).size;
  } catch (e) {
    if (e.code === 'ENOENT') return empty;
    throw new UsageError(`cannot read ${path}: ${e.message}`);
  }
  const cut = cutTornLine(path, size);
  const scan = { ...empty, cut };
  const input = fs.createReadStream(path, { encoding: 'utf8' });
  let n = 0;
  for await (const text of readline.createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (text.trim() === '') continue;
    const line = checkLine(text, `${path}:${n}`, scan.lastSeq);
    scan.lastSeq = line.seq;
    scan.lines++;
    if (line.succeeded) scan.succeeded++;
    else scan.notSucceeded++;
  }
  return scan;
}

/**
 * One results line: `{ custom_id, result: { type }, edgebatch: { seq } }` with a seq above
 * `after`. Returns `{ seq, succeeded }`; throws naming `where` otherwise.
 */
export function checkLine(text, where, after) {
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(`${where} is not valid JSON; fix or remove that line to resume`);
  }
  const seq = v?.edgebatch?.seq;
  if (typeof v?.custom_id !== 'string' || typeof v?.result?.type !== 'string' || !Number.isSafeInteger(seq)) {
    throw new Error(`${where} is not a line of /v1/batches results ({ custom_id, result, edgebatch: { seq } })`);
  }
  if (seq <= after) throw new Error(`${where}: edgebatch.seq ${seq} does not follow ${after} (is this file from another batch?)`);
  return { seq, succeeded: v.result.type === 'succeeded' };
}

/** Truncates `path` after its last newline; returns the bytes cut. */
function cutTornLine(path, size) {
  if (size === 0) return 0;
  const fd = fs.openSync(path, 'r');
  try {
    const buf = Buffer.alloc(Math.min(TAIL_BLOCK, size));
    for (let end = size; end > 0; end -= buf.length) {
      const start = Math.max(0, end - buf.length);
      fs.readSync(fd, buf, 0, end - start, start);
      const nl = buf.subarray(0, end - start).lastIndexOf(0x0a);
      if (nl >= 0) {
        const keep = start + nl + 1;
        if (keep < size) fs.truncateSync(path, keep);
        return size - keep;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.truncateSync(path, 0);
  return size;
}

/** Appends whole lines to `path`, each call one write. */
export class LineAppender {
  constructor(path) {
    this.fd = fs.openSync(path, 'a');
  }

  write(lines) {
    if (lines.length > 0) fs.writeSync(this.fd, `${lines.join('\n')}\n`);
  }

  close() {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
