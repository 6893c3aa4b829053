// Fault injection for the tests of /v1/batches, read from EDGEBATCH_CHAOS (a JSON object) and
// only while the simulator is on (EDGEBATCH_SIM = "on": development, never production):
//   consumerCrashAfter: K   the consumer invocation throws once after K upstream replies,
//                           before committing them (its leases must run out and be redone)
//   ledgerResetAtCommit: N  the N-th commit call finds its batch object reset (ctx.abort())
//   consumerAlwaysFails     every work message throws (so it ends in the dead-letter queue)
// The first two fire once per isolate.
const fired = new Set();
let replies = 0;
let commits = 0;

function chaosOf(env) {
  if (env.EDGEBATCH_SIM !== 'on' || !env.EDGEBATCH_CHAOS) return {};
  try {
    return JSON.parse(env.EDGEBATCH_CHAOS) ?? {};
  } catch {
    return {};
  }
}

/** Counts an upstream reply; true when the consumer should crash now. */
export function crashNow(env) {
  const k = chaosOf(env).consumerCrashAfter;
  replies++;
  if (!Number.isInteger(k) || fired.has('crash') || replies < k) return false;
  fired.add('crash');
  return true;
}

/** Counts a commit; true when the batch object should reset under it. */
export function resetNow(env) {
  const n = chaosOf(env).ledgerResetAtCommit;
  commits++;
  if (!Number.isInteger(n) || fired.has('reset') || commits < n) return false;
  fired.add('reset');
  return true;
}

/** True when every work message should fail. */
export function failAlways(env) {
  return chaosOf(env).consumerAlwaysFails === true;
}
