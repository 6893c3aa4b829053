// @ts-check
// How much of a batch is in the work queue at once: a window, not the whole batch. A batch of
// 100,000 sent at once puts every batch created after it behind 100,000 items (a queue is
// first in, first out), and makes "not claimed for a while" say nothing about a lost message.
// So the ledger sends items in index order as they are needed: a window of about
// WINDOW_SECONDS of the batch's recent claims (never less than MIN_WINDOW), topped up when a
// claim (or the alarm) finds less than half of it still waiting in the queue. A batch created
// behind a running one waits for at most that window, whatever the running one's size.
//
// State (the `batch` row): next_send, the first index never sent (items from there on carry
// sent_at = NEVER_SENT); claimed_first, items claimed at least once; bucket_at / bucket_n /
// last_bucket_n, claims counted per one-second bucket (the demand the window follows).
import { ITEMS_PER_MESSAGE } from './queues.js';

/** An item never sent: later than any time, so no rule of redelivery.js ever picks it. */
export const NEVER_SENT = Number.MAX_SAFE_INTEGER;
/** The smallest window, in items: the next consumer delivery (2 messages) and one to spare. */
export const MIN_WINDOW = 3 * ITEMS_PER_MESSAGE;
/** The window covers this many seconds of the batch's claims (its consumers' demand). */
const WINDOW_SECONDS = 1.5;
const BUCKET_MS = 1_000;

/** @typedef {{ indexes: number[], from: number, to: number, skipped: number }} Refill what a refill sent: next_send moved from `from` to `to`, `skipped` stepped over */

/**
 * Counts `n` claims, `first` of them of items never claimed before (a claim's transaction).
 * @param {SqlStorage} sql @param {import('./ledger-sql.js').BatchRow} b @param {number} now
 * @param {number} n @param {number} first
 */
export function countClaims(sql, b, now, n, first) {
  if (now - b.bucket_at >= BUCKET_MS) {
    // A bucket left empty for longer than one bucket means no demand in the last one.
    const last = now - b.bucket_at >= 2 * BUCKET_MS ? 0 : b.bucket_n;
    sql.exec(`UPDATE batch SET bucket_at = ?, bucket_n = ?, last_bucket_n = ?, claimed_first = claimed_first + ? WHERE one = 1`,
      now, n, last, first);
  } else {
    sql.exec(`UPDATE batch SET bucket_n = bucket_n + ?, claimed_first = claimed_first + ? WHERE one = 1`, n, first);
  }
}

/**
 * The items to send now to refill the window (marked sent at `now`, next_send moved past
 * them): none while half of the window is still waiting in the queue. The caller sends them
 * after its transaction and calls `unwindow` if the send fails. Items from next_send on that
 * are not waiting to be sent (a provider batch holds them, or has finished them:
 * provider-batch.js) are stepped over and count as claimed: no claim will come for them.
 * @param {SqlStorage} sql @param {number} now
 * @returns {Refill}
 */
export function refill(sql, now) {
  const b = sql.exec(`SELECT total, next_send, claimed_first, bucket_n, last_bucket_n, cancel_at, ended_at FROM batch WHERE one = 1`).one();
  const total = Number(b.total);
  const from = Number(b.next_send);
  const none = { indexes: [], from, to: from, skipped: 0 };
  if (b.cancel_at !== null || b.ended_at !== null || from >= total) return none;
  const demand = Math.max(Number(b.last_bucket_n), Number(b.bucket_n)) * WINDOW_SECONDS;
  const window = Math.max(MIN_WINDOW, demand);
  const waiting = from - Number(b.claimed_first);
  if (waiting > window / 2) return none;
  const want = Math.ceil((window - waiting) / ITEMS_PER_MESSAGE) * ITEMS_PER_MESSAGE;
  const indexes = sql.exec(`SELECT idx FROM items WHERE state = 'queued' AND sent_at = ? AND idx >= ? ORDER BY idx LIMIT ?`,
    NEVER_SENT, from, want).toArray().map((r) => Number(r.idx));
  const to = indexes.length < want ? total : indexes[indexes.length - 1] + 1;
  sql.exec(`UPDATE items SET sent_at = ? WHERE state = 'queued' AND sent_at = ? AND idx >= ? AND idx < ?`, now, NEVER_SENT, from, to);
  const skipped = to - from - indexes.length;
  sql.exec(`UPDATE batch SET next_send = ?, claimed_first = claimed_first + ? WHERE one = 1`, to, skipped);
  return { indexes, from, to, skipped };
}

/**
 * Items handed back to the window (queued again with sent_at = NEVER_SENT by the caller: a
 * provider batch did not finish them, provider-batch-sql.js): the window moves back to the
 * first of them, so the next refills send them in index order. What lies between is stepped
 * over again, so the claims counted for it are taken back first.
 * @param {SqlStorage} sql @param {number} first the smallest index handed back
 */
export function rewind(sql, first) {
  sql.exec(`UPDATE batch SET claimed_first = claimed_first - (next_send - ?), next_send = ? WHERE one = 1 AND next_send > ?`, first, first, first);
}

/**
 * A refill whose send failed: its items are unsent again (the next claim or alarm sends them),
 * unless another refill has moved on since (then they count as lost: redelivery.js).
 * @param {SqlStorage} sql @param {Refill} sent @param {number} now
 */
export function unwindow(sql, sent, now) {
  const back = sql.exec(`UPDATE batch SET next_send = ?, claimed_first = claimed_first - ? WHERE one = 1 AND next_send = ? RETURNING one`,
    sent.from, sent.skipped, sent.to).toArray().length > 0;
  sql.exec(`UPDATE items SET sent_at = ? WHERE idx >= ? AND idx < ? AND state = 'queued' AND sent_at = ?`,
    back ? NEVER_SENT : -1, sent.from, sent.to, now);
}
