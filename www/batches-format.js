// What the batches page says about a batch, as pure functions (no DOM, no fetch), so the words
// and the rate are the same wherever they are shown and can be checked on their own.

/** Why a batch waits (`edgebatch.waiting.reason`), in words. */
const REASONS = {
  token_budget: "waiting for the token's hourly budget",
  limiter: "waiting for the upstream's rate limit (the shared limiter)",
  upstream_429: 'waiting after the upstream answered 429 (rate limited)',
};

const pad = (n) => String(n).padStart(2, '0');

/**
 * A moment as the person reads it: local `HH:MM:SS`, with the date (`YYYY-MM-DD`) in front
 * when it is not today.
 * @param {string | number | Date} at
 * @param {Date} [now]
 */
export function clockTime(at, now = new Date()) {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return String(at);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/**
 * `edgebatch.waiting` in words ("waiting for the token's hourly budget until 10:42:05"), or ''
 * when the batch does not wait.
 * @param {{ reason: string, until?: string | null } | undefined} waiting
 * @param {Date} [now]
 */
export function describeWaiting(waiting, now = new Date()) {
  if (!waiting) return '';
  const words = REASONS[waiting.reason] ?? `waiting (${waiting.reason})`;
  return waiting.until ? `${words} until ${clockTime(waiting.until, now)}` : words;
}

/** The status as the table shows it. @param {{ processing_status: string, cancel_initiated_at?: string | null }} batch */
export function describeStatus(batch) {
  switch (batch.processing_status) {
    case 'in_progress': return 'in progress';
    case 'canceling': return 'canceling';
    case 'ended': return batch.cancel_initiated_at ? 'ended (canceled)' : 'ended';
    default: return batch.processing_status;
  }
}

/** `request_counts` summed: how many requests in all, how many finished. */
export function totals(counts) {
  const done = counts.succeeded + counts.errored + counts.canceled + counts.expired;
  return { total: done + counts.processing, done };
}

/** `batch_` and the last 8 hex digits: enough to tell a token's batches apart on screen. */
export const shortId = (id) => (id.length > 16 ? `${id.slice(0, 6)}…${id.slice(-8)}` : id);

/**
 * Items per second of one batch, from the polls: requests that ran (succeeded + errored) over
 * the last `windowMs`. Canceled and expired ones are left out: a cancel ends hundreds at once,
 * which is not work done.
 */
export class RateMeter {
  /** @param {number} [windowMs] */
  constructor(windowMs = 10_000) {
    this.windowMs = windowMs;
    /** @type {{ t: number, ran: number }[]} */
    this.samples = [];
  }

  /** @param {number} t ms @param {{ succeeded: number, errored: number }} counts */
  add(t, counts) {
    this.samples.push({ t, ran: counts.succeeded + counts.errored });
    while (this.samples.length > 2 && t - this.samples[1].t >= this.windowMs) this.samples.shift();
  }

  /** Items/s over the window, or null before two polls a moment apart. */
  rate() {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || last.t - first.t < 500) return null;
    return Math.max(0, last.ran - first.ran) / ((last.t - first.t) / 1000);
  }
}

/** A rate as the table shows it: "12.5 items/s", "0 items/s", or "—" before there is one. */
export function describeRate(rate) {
  if (rate === null) return '—';
  if (rate === 0) return '0 items/s';
  return `${rate < 10 ? rate.toFixed(1) : Math.round(rate)} items/s`;
}

/**
 * What the Create button sends for the pasted text: one JSON object `{ provider?, options?,
 * requests }` as application/json, else JSONL (one `{ custom_id, params }` per line, optionally
 * after a `{ provider?, options? }` line) as application/x-ndjson. A line that is not JSON is
 * named here, before anything is sent; the Worker checks the rest and names what it refuses.
 * @param {string} text
 * @returns {{ type: string, body: string, count: number }}
 */
export function createBody(text) {
  const trimmed = text.trim();
  if (trimmed === '') throw new Error('paste the requests first: JSONL (one {"custom_id", "params"} per line) or a JSON {"requests": [...]}');
  try {
    const whole = JSON.parse(trimmed);
    if (whole && typeof whole === 'object' && !Array.isArray(whole) && Array.isArray(whole.requests)) {
      return { type: 'application/json', body: trimmed, count: whole.requests.length };
    }
  } catch {
    // Not one JSON value: JSONL, checked line by line below.
  }
  const lines = trimmed.split('\n').map((l) => l.trim()).filter(Boolean);
  let count = 0;
  lines.forEach((line, i) => {
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`line ${i + 1} is not JSON: ${line.length > 60 ? `${line.slice(0, 60)}…` : line}`);
    }
    if (value && typeof value === 'object' && 'custom_id' in value) count += 1;
  });
  if (count === 0) throw new Error('no request found: each line needs {"custom_id": ..., "params": {...}}');
  return { type: 'application/x-ndjson', body: `${lines.join('\n')}\n`, count };
}
