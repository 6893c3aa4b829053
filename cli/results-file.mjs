// The results JSONL file: read what a previous run left (to resume by index), append one line
// per item as it completes. Each line goes out in one write(2) call on an O_APPEND descriptor,
// so a killed process leaves whole lines plus at most one torn last line, which the next run
// cuts off before appending.
import fs from 'node:fs';

export class UsageError extends Error {}

/**
 * Loads the indexes already present in `path` (a missing file is an empty one). Cuts a torn
 * last line. With `dropFailed`, rewrites the file without its failed lines (atomically) so
 * those items run again.
 * @returns {{ done: Map<number, boolean>, cut: number, dropped: number }} index -> ok
 */
export function loadResults(path, total, { dropFailed = false } = {}) {
  let text;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return { done: new Map(), cut: 0, dropped: 0 };
    throw new UsageError(`cannot read ${path}: ${e.message}`);
  }
  let cut = 0;
  const end = text.lastIndexOf('\n') + 1;
  if (end < text.length) {
    cut = text.length - end;
    fs.truncateSync(path, Buffer.byteLength(text.slice(0, end)));
    text = text.slice(0, end);
  }
  const done = new Map();
  const keep = [];
  let dropped = 0;
  text.split('\n').forEach((line, n) => {
    if (line.trim() === '') return;
    let r;
    try {
      r = JSON.parse(line);
    } catch {
      throw new Error(`${path}:${n + 1} is not valid JSON; fix or remove that line to resume`);
    }
    if (!Number.isInteger(r?.index) || r.index < 0 || r.index >= total || typeof r.ok !== 'boolean') {
      throw new Error(`${path}:${n + 1} is not a result of this input (index ${JSON.stringify(r?.index)} of ${total} items)`);
    }
    if (dropFailed && !r.ok) {
      dropped += 1;
      return;
    }
    done.set(r.index, r.ok);
    keep.push(line);
  });
  if (dropFailed && dropped > 0) {
    const tmp = `${path}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, keep.map((l) => `${l}\n`).join(''));
    fs.renameSync(tmp, path);
  }
  return { done, cut, dropped };
}

/** Appends result lines to `path`, one write per line. */
export class ResultsWriter {
  constructor(path) {
    this.fd = fs.openSync(path, 'a');
  }

  write(result) {
    fs.writeSync(this.fd, `${JSON.stringify(result)}\n`);
  }

  close() {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Reads the requests JSONL: one JSON object per non-blank line; item i is the i-th non-blank
 * line, which is what result indexes refer to.
 */
export function loadRequests(path) {
  let text;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${e.message}`);
  }
  const items = [];
  text.split('\n').forEach((line, n) => {
    if (line.trim() === '') return;
    let v;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path}:${n + 1}: not valid JSON (${e.message})`);
    }
    items.push(v);
  });
  return items;
}
