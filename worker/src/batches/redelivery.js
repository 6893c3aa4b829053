// @ts-check
// What the alarm sends again, and only that: items whose lease ran out (their consumer died),
// and items whose message is lost. Queue messages cost money and a consumer invocation each,
// and a batch queued behind another is not lost, so a message counts as lost only on
// evidence, per item:
// - each item keeps `sent_at`, when its latest message became deliverable (0: sent at the
//   start; the time of a re-send; the end of a deferral, whose delayed copy the consumer sent);
// - each claim raises the batch's `mark` to the latest `sent_at` it took: messages made
//   deliverable up to `mark` are being delivered;
// - a mark seen at one alarm is trusted redeliverMs later (`lost_before`): a queued item made
//   deliverable before it, and not claimed since, is lost (its message went missing);
// - when nothing of the batch was claimed for redeliverMs, one probe (one message: the items
//   sent last) goes out per redeliverMs: if its copy is claimed while older items stay
//   queued, those are lost; a batch merely waiting behind another costs one message a while.
// Each alarm sends at most RESEND_MAX items; the rest waits for the next alarm.
import { ITEMS_PER_MESSAGE } from './queues.js';

/** Items one alarm sends again, at most (100 messages, one `sendBatch`). */
export const RESEND_MAX = 100 * ITEMS_PER_MESSAGE;

/**
 * Picks what the alarm sends again and marks it sent at `now` (synchronous SQL: the caller's
 * transaction). Returns the indexes, ascending.
 * @param {SqlStorage} sql
 * @param {import('./ledger-sql.js').BatchRow} b the batch row, read in the same transaction
 * @param {number} now
 * @param {number} redeliverMs
 * @returns {number[]}
 */
export function pickResends(sql, b, now, redeliverMs) {
  const ids = (/** @type {Iterable<Record<string, SqlStorageValue>>} */ rows) => [...rows].map((r) => Number(r.idx));
  const lapsed = ids(sql.exec(`SELECT idx FROM items WHERE state = 'leased' AND lease_until <= ? ORDER BY lease_until LIMIT ?`,
    now, RESEND_MAX));
  let lostBefore = b.lost_before;
  let pending = b.pending_mark;
  let pendingAt = b.pending_at;
  if (pending !== null && now - pendingAt >= redeliverMs) {
    lostBefore = Math.max(lostBefore, pending);
    pending = null;
  }
  if (pending === null && b.mark > lostBefore) {
    pending = b.mark;
    pendingAt = now;
  }
  const lost = ids(sql.exec(`SELECT idx FROM items WHERE state = 'queued' AND sent_at < ? AND not_before <= ? ORDER BY sent_at, idx LIMIT ?`,
    lostBefore, now, RESEND_MAX - lapsed.length));
  let probe = /** @type {number[]} */ ([]);
  if (lapsed.length + lost.length === 0 && now - b.last_claim_at >= redeliverMs && now - b.probe_at >= redeliverMs) {
    probe = ids(sql.exec(`SELECT idx FROM items WHERE state = 'queued' AND sent_at <= ? AND not_before <= ? ORDER BY sent_at DESC, idx DESC LIMIT ?`,
      now - redeliverMs, now, ITEMS_PER_MESSAGE));
  }
  // A lease that lapsed was (almost surely) charged to the token's hour by its consumer, which
  // reserves right after it claims: the item's next claim is not charged again. (A consumer that
  // died between the two left one item uncharged: the hour's items are a ceiling, not a bill.)
  for (const idx of lapsed) sql.exec(`UPDATE items SET state = 'queued', sent_at = ?, charged = 1 WHERE idx = ?`, now, idx);
  for (const idx of [...lost, ...probe]) sql.exec(`UPDATE items SET sent_at = ? WHERE idx = ?`, now, idx);
  sql.exec(`UPDATE batch SET relet = relet + ?, redelivered = redelivered + ?, lost_before = ?, pending_mark = ?, pending_at = ?,
    probe_at = ? WHERE one = 1`, lapsed.length, lost.length + probe.length, lostBefore, pending, pendingAt,
  probe.length > 0 ? now : b.probe_at);
  return [...lapsed, ...lost, ...probe].sort((x, y) => x - y);
}

/**
 * A send that failed: its items count as lost, for the next alarm to send again.
 * @param {SqlStorage} sql @param {number[]} indexes @param {number} sentAt what pickResends set
 */
export function unsend(sql, indexes, sentAt) {
  for (const idx of indexes) sql.exec(`UPDATE items SET sent_at = -1 WHERE idx = ? AND state = 'queued' AND sent_at = ?`, idx, sentAt);
}
