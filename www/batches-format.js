// What the batches page says about a batch, as pure functions (no DOM, no fetch), so the words,
// the dollars and the rate are the same wherever they are shown and can be checked on their own;
// and what its create form sends.

/** Why a batch waits (`edgebatch.waiting.reason`), in words. */
const REASONS = {
  token_budget: "waiting for the token's hourly budget",
  limiter: "waiting for the upstream's rate limit (the shared limiter)",
  upstream_429: 'waiting after the upstream answered 429 (rate limited)',
  cost_hold: 'waiting near its spending cap: the requests running now hold what is left of it',
  provider_batch: "waiting for the provider's Batch API",
};

/** What `until` is, for a reason where it is not the end of the wait: the window's cutoff. */
const UNTIL = {
  provider_batch: (at) => `; what it has not finished by ${at} runs realtime`,
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
  if (!waiting.until) return words;
  const at = clockTime(waiting.until, now);
  return `${words}${UNTIL[waiting.reason]?.(at) ?? ` until ${at}`}`;
}

/**
 * The status as the table shows it; an ended batch says whether a cancel or its spending cap
 * ended it. @param {{ processing_status: string, cancel_initiated_at?: string | null, request_counts: { canceled: number }, edgebatch?: any }} batch
 */
export function describeStatus(batch) {
  switch (batch.processing_status) {
    case 'in_progress': return 'in progress';
    case 'canceling': return 'canceling';
    case 'ended': return batch.cancel_initiated_at ? 'ended (canceled)' : capStopped(batch) > 0 ? 'ended (spending cap reached)' : 'ended';
    default: return batch.processing_status;
  }
}

/**
 * How many of a batch's requests its spending cap kept from running (their lines say
 * `canceled`, `error.kind: "cost_cap"`). The view has no count of its own for them, but only a
 * cancel (which sets `cancel_initiated_at`) or the cap cancels requests, so without a cancel
 * every canceled request is the cap's. After a cancel the two cannot be told apart: 0.
 * @param {{ cancel_initiated_at?: string | null, request_counts: { canceled: number }, edgebatch?: { cost?: { maxCostUsd?: number } } }} batch
 */
export function capStopped(batch) {
  if (batch.cancel_initiated_at || batch.edgebatch?.cost?.maxCostUsd === undefined) return 0;
  return batch.request_counts.canceled;
}

/**
 * Dollars as the page shows them: cents from a dollar up ("$12.50", "$1,204.00"); below it three
 * significant digits with at least cents ("$0.42", "$0.0123", "$0.000825"), since a request to
 * a small model costs a fraction of a cent; "$0" for nothing.
 * @param {number} n
 */
export function usd(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '—';
  if (n === 0) return '$0';
  if (n >= 1) return `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const decimals = Math.min(20, Math.max(2, 2 - Math.floor(Math.log10(n))));
  return `$${n.toFixed(decimals).replace(/(\.\d\d\d*?)0+$/, '$1')}`;
}

/** Two dollar sums the same to the pico-dollar (the ledger's unit). */
const sameUsd = (a, b) => Math.round(a * 1e12) === Math.round(b * 1e12);

/**
 * `edgebatch.cost` in words, or null when the view has none: `spent` ("$0.42 (realtime:
 * $0.84)", the second figure only where the provider's Batch API made it cheaper), `cap` (the
 * cap, what requests at the provider hold of it, or that it stopped the batch; '' without a
 * cap) and `unknown` (what a provider batch whose create went unanswered may still bill; '').
 * @param {{ cancel_initiated_at?: string | null, request_counts: { canceled: number }, edgebatch?: { cost?: { usd: number, usdIfRealtime: number, maxCostUsd?: number, heldUsd?: number, unknownUsd?: number } } }} batch
 */
export function describeCost(batch) {
  const cost = batch.edgebatch?.cost;
  if (!cost) return null;
  const spent = sameUsd(cost.usd, cost.usdIfRealtime) ? usd(cost.usd) : `${usd(cost.usd)} (realtime: ${usd(cost.usdIfRealtime)})`;
  let cap = '';
  if (cost.maxCostUsd !== undefined) {
    const stopped = capStopped(batch);
    cap = `cap ${usd(cost.maxCostUsd)}`;
    if (stopped > 0) cap += ` reached: ${stopped} request${stopped === 1 ? '' : 's'} not run`;
    else if (cost.heldUsd) cap += `, ${usd(cost.heldUsd)} of it held for requests at the provider`;
  }
  const unknown = cost.unknownUsd ? `up to ${usd(cost.unknownUsd)} more may be billed (a provider batch whose create went unanswered)` : '';
  return { spent, cap, unknown };
}

/** A provider batch's `status` in words. */
const PROVIDER_STATUS = {
  submitting: 'being submitted',
  in_progress: 'running at the provider',
  canceling: 'canceling at the provider',
  ended: 'ended, results being read',
  read: 'results read',
  abandoned: 'given up (late): its unfinished requests ran realtime',
  lost: 'create unanswered: its requests ran realtime',
};

/**
 * One of `edgebatch.providerBatches` in words: "msgbat…5283a014: 5 requests, results read (5
 * succeeded)". `counts` are the provider's own: Anthropic's request_counts, or OpenAI's
 * `{ total, completed, failed }`; null before the first poll.
 * @param {{ id: string | null, status: string, items: number, counts: Record<string, number> | null }} pb
 */
export function describeProviderBatch(pb) {
  const name = pb.id ? shortId(pb.id) : 'a new provider batch';
  const words = PROVIDER_STATUS[pb.status] ?? pb.status;
  const c = pb.counts;
  let counts = '';
  if (c && 'completed' in c) {
    counts = `${c.completed} of ${c.total} completed${c.failed ? `, ${c.failed} failed` : ''}`;
  } else if (c) {
    counts = [['succeeded', 'succeeded'], ['errored', 'errored'], ['canceled', 'canceled'], ['expired', 'expired'], ['processing', 'running']]
      .filter(([k], i) => i === 0 || c[k] > 0).map(([k, w]) => `${c[k] ?? 0} ${w}`).join(', ');
  }
  return `${name}: ${pb.items} request${pb.items === 1 ? '' : 's'}, ${words}${counts ? ` (${counts})` : ''}`;
}

/**
 * How the batch runs: `how` ("realtime", or its completion window and where that sends it) and
 * `batches`, its provider batches in words (describeProviderBatch).
 * @param {{ completionWindow?: string, route?: string, providerBatches?: any[] } | undefined} edgebatch
 */
export function describeRoute(edgebatch) {
  const window = edgebatch?.completionWindow;
  if (!window) return { how: 'realtime', batches: [] };
  if (!edgebatch.providerBatches) {
    return { how: `realtime: its ${window} window is too short for the provider's Batch API`, batches: [] };
  }
  const batches = edgebatch.providerBatches.map(describeProviderBatch);
  return { how: `${window} window: the provider's Batch API`, batches: batches.length ? batches : ['not submitted yet'] };
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

/** An input that cannot be sent: `field` names which form field (its option's name). */
export class FieldError extends Error {
  /** @param {'completionWindow' | 'maxCostUsd'} field @param {string} message */
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/** The create form's fields, by the option each one sets. */
export const FIELD_LABELS = { completionWindow: 'Completion window', maxCostUsd: 'Spending cap (USD)' };

/**
 * The create form's own fields as batch options: `completionWindow` ('' for realtime, else a
 * duration as the Worker takes it: "4h", "24h") and `maxCostUsd` (text: dollars, '' for no
 * cap; "$0.50" and "0.5" are the same). A value the Worker would refuse is a FieldError
 * naming the field, before anything is sent.
 * @param {{ completionWindow?: string, maxCostUsd?: string }} fields
 * @returns {{ completionWindow?: string, maxCostUsd?: number }}
 */
export function formOptions({ completionWindow = '', maxCostUsd = '' } = {}) {
  const out = {};
  if (completionWindow !== '') {
    if (!/^[1-9]\d*[smh]$/.test(completionWindow)) {
      throw new FieldError('completionWindow', `${FIELD_LABELS.completionWindow} must be a duration like "4h" or "24h", got ${JSON.stringify(completionWindow)}`);
    }
    out.completionWindow = completionWindow;
  }
  const cap = maxCostUsd.trim().replace(/^\$\s*/, '');
  if (cap !== '') {
    const n = /^(\d+(\.\d*)?|\.\d+)$/.test(cap) ? Number(cap) : NaN;
    if (!(n > 0 && n <= 1e9)) {
      throw new FieldError('maxCostUsd', `${FIELD_LABELS.maxCostUsd} must be a number of dollars above 0 and at most 1000000000, like 0.50; got ${JSON.stringify(maxCostUsd.trim().slice(0, 40))}`);
    }
    out.maxCostUsd = n;
  }
  return out;
}

/**
 * The form's options over the pasted ones. A field the pasted options set to something else is
 * a FieldError: which one was meant is not for the page to guess.
 * @param {unknown} pasted @param {Record<string, unknown>} extra
 */
function mergeOptions(pasted, extra) {
  if (pasted !== undefined && (pasted === null || typeof pasted !== 'object' || Array.isArray(pasted))) {
    throw new Error('the pasted "options" must be an object');
  }
  const merged = { ...(/** @type {object | undefined} */ (pasted)) };
  for (const [key, value] of Object.entries(extra)) {
    if (merged[key] !== undefined && merged[key] !== value) {
      throw new FieldError(/** @type {any} */ (key), `${FIELD_LABELS[key]}: the pasted options set ${key} to ${JSON.stringify(merged[key])}; ` +
        'clear the field or that option');
    }
    merged[key] = value;
  }
  return merged;
}

/**
 * What the Create button sends for the pasted text: one JSON object `{ provider?, options?,
 * requests }` as application/json, else JSONL (one `{ custom_id, params }` per line, optionally
 * after a `{ provider?, options? }` line) as application/x-ndjson; with the form's `fields`
 * (formOptions) in its options. A line that is not JSON is named here, before anything is sent;
 * the Worker checks the rest and names what it refuses.
 * @param {string} text
 * @param {{ completionWindow?: string, maxCostUsd?: string }} [fields]
 * @returns {{ type: string, body: string, count: number, options: { completionWindow?: string, maxCostUsd?: number } }}
 */
export function createBody(text, fields = {}) {
  const options = formOptions(fields);
  const extra = Object.keys(options).length > 0;
  const trimmed = text.trim();
  if (trimmed === '') throw new Error('paste the requests first: JSONL (one {"custom_id", "params"} per line) or a JSON {"requests": [...]}');
  let whole;
  try {
    whole = JSON.parse(trimmed);
  } catch {
    // Not one JSON value: JSONL, checked line by line below.
  }
  if (whole && typeof whole === 'object' && !Array.isArray(whole) && Array.isArray(whole.requests)) {
    const body = extra ? JSON.stringify({ ...whole, options: mergeOptions(whole.options, options) }) : trimmed;
    return { type: 'application/json', body, count: whole.requests.length, options };
  }
  const lines = trimmed.split('\n').map((l) => l.trim()).filter(Boolean);
  let count = 0;
  const values = lines.map((line, i) => {
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`line ${i + 1} is not JSON: ${line.length > 60 ? `${line.slice(0, 60)}…` : line}`);
    }
    if (value && typeof value === 'object' && 'custom_id' in value) count += 1;
    return value;
  });
  if (count === 0) throw new Error('no request found: each line needs {"custom_id": ..., "params": {...}}');
  if (extra) {
    // The form's options go in the header line: the first line, when it is not a request.
    const first = values[0];
    if (first && typeof first === 'object' && !Array.isArray(first) && !('custom_id' in first)) {
      lines[0] = JSON.stringify({ ...first, options: mergeOptions(first.options, options) });
    } else {
      lines.unshift(JSON.stringify({ options }));
    }
  }
  return { type: 'application/x-ndjson', body: `${lines.join('\n')}\n`, count, options };
}

/**
 * Which form field a Worker's 400 message is about ("options.maxCostUsd must be ..."), or null.
 * @param {string} message
 * @returns {'completionWindow' | 'maxCostUsd' | null}
 */
export function fieldOf(message) {
  const m = /\boptions\.(completionWindow|maxCostUsd)\b/.exec(message);
  return m ? /** @type {any} */ (m[1]) : null;
}
