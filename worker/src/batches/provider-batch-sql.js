// @ts-check
// The ledger's state changes for batches served by a provider's Batch API (`completionWindow`;
// the calls and the rule of when: provider-batch.js). Synchronous SQL, run inside the ledger's
// `transactionSync`, like ledger-sql.js.
//
// An item's way: queued with sent_at = AWAIT_PROVIDER (the window and redelivery.js leave it
// alone) -> leased to a provider batch (token + 1, the token kept in provider_items: a result
// line of that batch counts only while the item still holds that lease, so a line read twice,
// or read after the item was handed back, is refused exactly as a stale consumer commit is)
// -> final (succeeded, or a non-retryable error), or handed back to the realtime path: queued
// with sent_at = NEVER_SENT, the window rewound to it (window.js), and from there on it is
// an item like any other.
//
// Cache warming (Anthropic, provider-batch.js warmsCache): before the first submission, the
// waiting items are grouped by their prompt-cache prefix key (table cache_keys); of a group
// big enough, the first item is its primer, handed to the realtime path as above, and the
// rest wait with sent_at = AWAIT_PRIMER (no chunk takes them) until the primer's line is
// final or it is late (table cache_primers: running -> warm | cold); then AWAIT_PROVIDER.
import { endIfDone, finishWhere, record } from './ledger-sql.js';
import { NEVER_SENT, rewind } from './window.js';

/** Queued items that wait for a provider batch: later than any time, but not NEVER_SENT. */
export const AWAIT_PROVIDER = NEVER_SENT - 1;
/** Queued items that wait for their prefix group's primer before a provider batch (cache warming). */
export const AWAIT_PRIMER = NEVER_SENT - 2;
/** Provider batch states that are over for the ledger: read to the end, given up, refused or lost at submission. */
export const CLOSED = ['read', 'abandoned', 'refused', 'lost'];
const utf8 = new TextEncoder();

/**
 * @typedef {{ n: number, id: string | null, status: string, counts: string | null, submitted_at: number, polled_at: number,
 *   cancel_sent: number, items: number, bytes: number, lines_read: number }} ProviderRow cancel_sent: 0, or
 *   when the cancel was sent there (ms)
 * @typedef {object} ResultLine a results line as an adapter read it (provider-anthropic.js, provider-openai.js)
 * @property {string} custom_id
 * @property {'succeeded' | 'errored' | 'unfinished'} type unfinished: expired or canceled there, never run
 * @property {unknown} [message] the reply (succeeded)
 * @property {{ inputTokens: number, outputTokens: number }} [usage]
 * @property {{ status?: number, type: string, message: string }} [error] (errored)
 * @property {boolean} [retryable] (errored) the provider's trouble, worth a realtime try
 * @property {number} [usd] what it cost there (the batch discount), when its model has a price
 * @property {number} [usdIfRealtime] what it would have cost realtime
 * @typedef {{ maxRequests: number, maxBytes: number, open: string, sep: string, close: string,
 *   prefix: (customId: string) => string }} Frame how an adapter's create body is framed:
 *   open, then the request lines (prefix + params + '}') joined by sep, then close
 */

/** At start: every item waits for a provider batch instead of the work queue. @param {SqlStorage} sql */
export function holdForProvider(sql) {
  sql.exec(`UPDATE items SET sent_at = ? WHERE state = 'queued' AND sent_at = ?`, AWAIT_PROVIDER, NEVER_SENT);
}

/**
 * The items waiting for the provider that the token's hour has not been charged for yet,
 * among the next `max` of them (charged ones first, as the token's acquirePart takes them).
 * @param {SqlStorage} sql @param {number} max
 * @returns {{ items: number, uncharged: number }}
 */
export function waitingToSubmit(sql, max) {
  const r = sql.exec(`SELECT count(*) AS items, coalesce(sum(1 - charged), 0) AS uncharged FROM
    (SELECT charged FROM items WHERE state = 'queued' AND sent_at = ? ORDER BY charged DESC, idx LIMIT ?)`, AWAIT_PROVIDER, max).one();
  return { items: Number(r.items), uncharged: Number(r.uncharged) };
}

/**
 * Marks the next `k` waiting items (charged ones first) as charged to the token's hour: the
 * only ones the next leaseChunk takes, and never charged again (a hand-back to realtime or a
 * chunk cut short by its byte limit keeps the mark). @param {SqlStorage} sql @param {number} k
 */
export function markCharged(sql, k) {
  sql.exec(`UPDATE items SET charged = 1 WHERE idx IN (SELECT idx FROM items WHERE state = 'queued' AND sent_at = ?
    ORDER BY charged DESC, idx LIMIT ?)`, AWAIT_PROVIDER, k);
}

/**
 * Leases the next provider batch's items (the charged ones, in index order, within the
 * frame's requests and bytes of body) until `leaseUntil`, and numbers it: null when none wait.
 * A request too big for any provider batch (the operator's EDGEBATCH_PROVIDER_BATCH_MAX_BYTES
 * below it) goes to the realtime path instead of holding back every request after it.
 * @param {SqlStorage} sql @param {number} now @param {number} leaseUntil @param {Frame} frame
 * @returns {{ n: number, items: number, bytes: number } | null}
 */
export function leaseChunk(sql, now, leaseUntil, frame) {
  const n = Number(sql.exec(`SELECT coalesce(max(n), 0) + 1 AS n FROM provider_batches`).one().n);
  const empty = utf8.encode(frame.open + frame.close).byteLength;
  let bytes = empty;
  let items = 0;
  /** @type {number[]} */
  const oversize = [];
  for (const r of sql.exec(`SELECT idx, custom_id, length(CAST(params AS BLOB)) AS size FROM items
    WHERE state = 'queued' AND sent_at = ? AND charged = 1 ORDER BY idx`, AWAIT_PROVIDER)) {
    const alone = utf8.encode(frame.prefix(String(r.custom_id))).byteLength + Number(r.size) + 1;
    if (empty + alone > frame.maxBytes) {
      oversize.push(Number(r.idx));
      continue;
    }
    const line = alone + (items > 0 ? frame.sep.length : 0);
    if (items === frame.maxRequests || bytes + line > frame.maxBytes) break;
    const leased = sql.exec(`UPDATE items SET state = 'leased', token = token + 1, lease_until = ? WHERE idx = ? RETURNING token`,
      leaseUntil, r.idx).one();
    sql.exec(`INSERT OR REPLACE INTO provider_items (idx, batch, token) VALUES (?, ?, ?)`, r.idx, n, leased.token);
    bytes += line;
    items++;
  }
  for (const idx of oversize) sql.exec(`UPDATE items SET sent_at = ? WHERE idx = ?`, NEVER_SENT, idx);
  if (oversize.length > 0) rewind(sql, Math.min(...oversize));
  if (items === 0) return null;
  sql.exec(`INSERT INTO provider_batches (n, status, submitted_at, items, bytes) VALUES (?, 'submitting', ?, ?, ?)`, n, now, items, bytes);
  return { n, items, bytes };
}

/**
 * The create body's request lines of provider batch `n` after index `after`, a page at a time.
 * @param {SqlStorage} sql @param {number} n @param {number} after @param {number} limit @param {Frame['prefix']} prefix
 */
export function bodyPage(sql, n, after, limit, prefix) {
  return sql.exec(`SELECT p.idx, i.custom_id, i.params FROM provider_items p JOIN items i ON i.idx = p.idx
    WHERE p.batch = ? AND p.idx > ? ORDER BY p.idx LIMIT ?`, n, after, limit).toArray()
    .map((r) => ({ idx: Number(r.idx), line: `${prefix(String(r.custom_id))}${r.params}}` }));
}

/**
 * The provider took batch `n`: its id, and its items leased until `leaseUntil` (the batch's
 * expiry: the provider's time, not a consumer's). @param {SqlStorage} sql @param {number} n
 * @param {{ id: string, status: string, counts: unknown }} made @param {number} now @param {number} leaseUntil
 */
export function submitted(sql, n, made, now, leaseUntil) {
  sql.exec(`UPDATE provider_batches SET id = ?, status = ?, counts = ?, polled_at = ? WHERE n = ?`,
    made.id, made.status, JSON.stringify(made.counts ?? null), now, n);
  sql.exec(`UPDATE items SET lease_until = ? WHERE state = 'leased' AND idx IN (SELECT p.idx FROM provider_items p WHERE p.batch = ? AND p.token = items.token)`,
    leaseUntil, n);
}

/**
 * A create that failed: its items wait for the next provider batch (`retry`); or that the
 * provider refused, or whose outcome is unknown (`lost`: the object stopped during it, or an
 * answer that does not say): they go to the realtime path now, and a lost one's dollar holds
 * count against maxCostUsd for good. @param {SqlStorage} sql @param {import('./ledger-sql.js').BatchRow} b
 * @param {number} n @param {'retry' | 'refused' | 'lost'} how @param {number} now
 */
export function unsubmit(sql, b, n, how, now) {
  if (how === 'retry') {
    for (const idx of held(sql, n)) sql.exec(`UPDATE items SET state = 'queued', sent_at = ? WHERE idx = ?`, AWAIT_PROVIDER, idx);
    sql.exec(`DELETE FROM provider_items WHERE batch = ?`, n);
    sql.exec(`DELETE FROM provider_batches WHERE n = ?`, n);
  } else {
    const heldBefore = Number(sql.exec(`SELECT held_pico FROM batch WHERE one = 1`).one().held_pico);
    handBack(sql, b, held(sql, n), now);
    // Lost: the provider may have made it and may run (and bill) its requests. What their holds
    // were (items_unheld dropped them as they went back) stays against maxCostUsd for good.
    if (how === 'lost') sql.exec(`UPDATE batch SET unknown_pico = unknown_pico + (? - held_pico) WHERE one = 1`, heldBefore);
    sql.exec(`UPDATE provider_batches SET status = ? WHERE n = ?`, how, n);
  }
}

/** Items of provider batch `n` that still hold its lease. @param {SqlStorage} sql @param {number} n @returns {number[]} */
export function held(sql, n) {
  return sql.exec(`SELECT p.idx FROM provider_items p JOIN items i ON i.idx = p.idx WHERE p.batch = ? AND i.state = 'leased' AND i.token = p.token
    ORDER BY p.idx`, n).toArray().map((r) => Number(r.idx));
}

/**
 * Items to the realtime path (a canceling batch: canceled), and off their provider batch.
 * @param {SqlStorage} sql @param {import('./ledger-sql.js').BatchRow} b @param {number[]} indexes @param {number} now
 */
export function handBack(sql, b, indexes, now) {
  if (indexes.length === 0) return;
  for (const idx of indexes) sql.exec(`DELETE FROM provider_items WHERE idx = ?`, idx);
  if (b.cancel_at !== null) {
    for (const idx of indexes) finishWhere(sql, `idx = ? AND state IN ('queued', 'leased')`, 'canceled', idx);
  } else {
    // Leased ones only: an item already final stays so (exactly once).
    for (const idx of indexes) {
      sql.exec(`UPDATE items SET state = 'queued', sent_at = ?, not_before = 0 WHERE idx = ? AND state = 'leased'`, NEVER_SENT, idx);
    }
    rewind(sql, Math.min(...indexes));
  }
  endIfDone(sql, now);
}

/**
 * Everything still waiting for a provider batch goes to the realtime path (the window's end
 * is near, or the batch stops). @param {SqlStorage} sql @param {import('./ledger-sql.js').BatchRow} b @param {number} now
 */
export function handBackWaiting(sql, b, now) {
  const first = sql.exec(`SELECT min(idx) AS first FROM items WHERE state = 'queued' AND sent_at IN (?, ?)`, AWAIT_PROVIDER, AWAIT_PRIMER).one().first;
  if (first === null) return;
  if (b.cancel_at !== null) finishWhere(sql, `state = 'queued' AND sent_at IN (?, ?)`, 'canceled', AWAIT_PROVIDER, AWAIT_PRIMER);
  else {
    sql.exec(`UPDATE items SET sent_at = ? WHERE state = 'queued' AND sent_at IN (?, ?)`, NEVER_SENT, AWAIT_PROVIDER, AWAIT_PRIMER);
    rewind(sql, Number(first));
  }
  endIfDone(sql, now);
}

/** @param {SqlStorage} sql @param {number} n @param {string} status @param {unknown} counts @param {number} now */
export function noteStatus(sql, n, status, counts, now) {
  sql.exec(`UPDATE provider_batches SET status = ?, counts = ?, polled_at = ? WHERE n = ?`, status, JSON.stringify(counts ?? null), now, n);
}

/**
 * Commits results lines of provider batch `n` as a consumer would (the same line shape, the
 * next seqs), with `route: "provider_batch"` and the line's dollars: succeeded and
 * non-retryable errors are final; retryable errors and unfinished lines go to the realtime
 * path. A line of an item that no longer holds this batch's lease is refused, and so is a
 * second line of an item in the same call (its first decided it: a file repeating a custom_id
 * must not both commit the item and hand it back).
 * @param {SqlStorage} sql @param {import('./ledger-sql.js').BatchRow} b @param {number} n
 * @param {ResultLine[]} lines @param {number} elapsedMs @param {(s: string) => string} redact @param {number} now
 * @returns {{ accepted: number, handedBack: number, refused: number }}
 */
export function commitLines(sql, b, n, lines, elapsedMs, redact, now) {
  const finals = [];
  const back = [];
  /** @type {Set<number>} */
  const seen = new Set();
  for (const l of lines) {
    const row = sql.exec(`SELECT i.idx, i.custom_id, i.attempts FROM items i JOIN provider_items p ON p.idx = i.idx
      WHERE i.custom_id = ? AND p.batch = ? AND i.token = p.token AND i.state = 'leased'`, l.custom_id, n).toArray()[0];
    if (!row) continue;
    const idx = Number(row.idx);
    if (seen.has(idx)) continue;
    seen.add(idx);
    const edgebatch = { attempts: Number(row.attempts) + 1, elapsedMs, route: 'provider_batch' };
    if (l.type === 'succeeded') {
      const cost = typeof l.usd === 'number' ? { usd: l.usd, usdIfRealtime: l.usdIfRealtime } : {};
      finals.push({ idx, custom_id: String(row.custom_id), state: /** @type {const} */ ('succeeded'),
        result: { type: 'succeeded', message: l.message }, edgebatch: { ...edgebatch, ...(l.usage && { usage: l.usage }), ...cost } });
    } else if (l.type === 'errored') {
      sql.exec(`UPDATE items SET attempts = attempts + 1 WHERE idx = ?`, idx);
      if (l.retryable) {
        back.push(idx);
        continue;
      }
      const e = l.error ?? { type: 'api_error', message: 'the provider batch reported an error' };
      const error = { kind: 'http', ...(e.status && { status: e.status }), type: e.type, message: redact(e.message), retryable: false };
      finals.push({ idx, custom_id: String(row.custom_id), state: /** @type {const} */ ('errored'), result: { type: 'errored', error }, edgebatch });
    } else {
      back.push(idx); // expired, canceled: never run there
    }
  }
  for (const f of finals) sql.exec(`UPDATE items SET attempts = ? WHERE idx = ?`, f.edgebatch.attempts, f.idx);
  if (finals.length > 0) {
    const seq = Number(sql.exec(`SELECT seq FROM batch WHERE one = 1`).one().seq);
    record(sql, finals, seq);
    for (const f of finals) sql.exec(`DELETE FROM provider_items WHERE idx = ?`, f.idx);
  }
  handBack(sql, b, back, now);
  sql.exec(`UPDATE provider_batches SET lines_read = lines_read + ? WHERE n = ?`, lines.length, n);
  endIfDone(sql, now);
  return { accepted: finals.length, handedBack: back.length, refused: lines.length - finals.length - back.length };
}

/**
 * Provider batches as the batch view shows them, and `waiting` while any is open.
 * @param {SqlStorage} sql @param {import('./ledger-sql.js').BatchRow} b @param {number} waitUntil
 */
export function providerView(sql, b, waitUntil) {
  const rows = /** @type {ProviderRow[]} */ (sql.exec(`SELECT * FROM provider_batches ORDER BY n`).toArray());
  // cancel_sent: when the cancel went there (ms; 1 in objects from before it was a time).
  const providerBatches = rows.map((r) => ({ id: r.id, status: r.status, items: r.items, counts: r.counts ? JSON.parse(r.counts) : null,
    ...(r.cancel_sent > 1 && { cancel_initiated_at: new Date(r.cancel_sent).toISOString() }) }));
  const open = rows.some((r) => !CLOSED.includes(r.status))
    || sql.exec(`SELECT 1 FROM items WHERE state = 'queued' AND sent_at IN (?, ?) LIMIT 1`, AWAIT_PROVIDER, AWAIT_PRIMER).toArray().length > 0;
  return { providerBatches, waiting: open && b.ended_at === null ? { reason: 'provider_batch', until: waitUntil } : null };
}

/**
 * Cache warming's tables (created on first use: only Anthropic batches with a
 * completionWindow have them): each grouped item's prefix key, each group's primer and its
 * state, and whether the batch's items were grouped. @param {SqlStorage} sql
 */
export function warmingSchema(sql) {
  sql.exec(`CREATE TABLE IF NOT EXISTS cache_keys (idx INTEGER PRIMARY KEY, key TEXT NOT NULL)`);
  sql.exec(`CREATE INDEX IF NOT EXISTS cache_keys_key ON cache_keys (key)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS cache_primers (key TEXT PRIMARY KEY, idx INTEGER NOT NULL, items INTEGER NOT NULL,
    state TEXT NOT NULL, started_at INTEGER NOT NULL)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS cache_warming (one INTEGER PRIMARY KEY CHECK (one = 1), primers INTEGER NOT NULL)`);
}

/** Whether the batch's items were grouped (once, before its first submission). @param {SqlStorage} sql */
export function grouped(sql) {
  return sql.exec(`SELECT 1 FROM cache_warming`).toArray().length > 0;
}

/**
 * The next waiting items after index `after` whose request may mark a cacheable prefix (the
 * key itself is the library's to compute), a page at a time.
 * @param {SqlStorage} sql @param {number} after @param {number} limit
 * @returns {{ idx: number, params: string }[]}
 */
export function keyPage(sql, after, limit) {
  return sql.exec(`SELECT idx, params FROM items WHERE state = 'queued' AND sent_at = ? AND idx > ? AND instr(params, '"cache_control"') > 0
    ORDER BY idx LIMIT ?`, AWAIT_PROVIDER, after, limit).toArray().map((r) => ({ idx: Number(r.idx), params: String(r.params) }));
}

/** @param {SqlStorage} sql @param {{ idx: number, key: string }[]} keys */
export function noteKeys(sql, keys) {
  for (const k of keys) sql.exec(`INSERT OR REPLACE INTO cache_keys (idx, key) VALUES (?, ?)`, k.idx, k.key);
}

/**
 * Once the keys are noted: each group of at least `minItems` gets its first item as primer,
 * handed to the realtime path (the window rewound to it); the rest of the group waits for
 * it. Smaller groups, and items without a key, wait for the provider as before. Marks the
 * batch grouped; returns how many primers went.
 * @param {SqlStorage} sql @param {number} minItems @param {number} now
 */
export function startPrimers(sql, minItems, now) {
  sql.exec(`INSERT INTO cache_primers (key, idx, items, state, started_at)
    SELECT key, min(idx), count(*), 'running', ? FROM cache_keys GROUP BY key HAVING count(*) >= ?`, now, minItems);
  sql.exec(`DELETE FROM cache_keys WHERE key NOT IN (SELECT key FROM cache_primers)`);
  sql.exec(`UPDATE items SET sent_at = ? WHERE state = 'queued' AND sent_at = ? AND idx IN
    (SELECT k.idx FROM cache_keys k JOIN cache_primers p ON p.key = k.key WHERE k.idx <> p.idx)`, AWAIT_PRIMER, AWAIT_PROVIDER);
  const primers = sql.exec(`UPDATE items SET sent_at = ? WHERE state = 'queued' AND sent_at = ? AND idx IN (SELECT idx FROM cache_primers)
    RETURNING idx`, NEVER_SENT, AWAIT_PROVIDER).toArray().map((r) => Number(r.idx));
  if (primers.length > 0) rewind(sql, Math.min(...primers));
  sql.exec(`INSERT OR REPLACE INTO cache_warming (one, primers) VALUES (1, ?)`, primers.length);
  return primers.length;
}

/**
 * Groups whose primer is over go to the provider: `warm` once its line succeeded (its reply
 * wrote the entry, or read one), `cold` when it ended otherwise or has run for `waitMs`
 * without a line (its group is not held back longer than that).
 * @param {SqlStorage} sql @param {number} now @param {number} waitMs
 * @returns {number} the groups released
 */
export function releaseGroups(sql, now, waitMs) {
  const running = sql.exec(`SELECT p.key, p.started_at, i.state FROM cache_primers p JOIN items i ON i.idx = p.idx
    WHERE p.state = 'running'`).toArray();
  let released = 0;
  for (const r of running) {
    const state = r.state === 'succeeded' ? 'warm'
      : r.state !== 'queued' && r.state !== 'leased' ? 'cold'
        : now - Number(r.started_at) >= waitMs ? 'cold' : null;
    if (state === null) continue;
    sql.exec(`UPDATE items SET sent_at = ? WHERE state = 'queued' AND sent_at = ? AND idx IN (SELECT idx FROM cache_keys WHERE key = ?)`,
      AWAIT_PROVIDER, AWAIT_PRIMER, r.key);
    sql.exec(`UPDATE cache_primers SET state = ? WHERE key = ?`, state, r.key);
    released++;
  }
  return released;
}
